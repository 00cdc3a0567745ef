/* pipeline.h — the stages every LLM request passes, their environment, and the driver.
 *
 * A stage is one file exporting one `const sl_stage`. The order of the table in
 * pipeline.c is the whole request flow. on_request returns:
 *   SL_NEXT  go on with the next stage;
 *   SL_WAIT  the stage parked the request and will call sl_pipeline_resume(r);
 *   SL_DONE  the stage took charge of the answer: it has called (or will call)
 *            sl_req_finish(r) exactly once.
 * on_response runs in reverse order for every stage whose on_request ran, once
 * the answer is complete (plain: before the body is written, so stages may add
 * headers; streams: after the last chunk). The pipeline prices the answer
 * (r->cost_usd, meter.h) before that reverse pass, and tells its observers
 * once the sink has ended.
 *
 * Ownership:
 *   - the pipeline owns the per-request stage contexts: `ctx_size` zeroed
 *     bytes from the request's arena, made when the stage is reached, passed
 *     to every hook of that stage and gone with the request. A stage keeps its
 *     per-request state there and nowhere else (no slots on sl_req);
 *   - main owns the stores named by sl_env and keeps them alive while the
 *     pipeline runs; stages borrow them through r->env (or the env given to
 *     init), never through file-static pointers of their own;
 *   - what stages share lives in named fields of sl_req (req.h); each stage
 *     file's top comment says which ones it reads and writes. */
#ifndef SLUICE_PIPELINE_H
#define SLUICE_PIPELINE_H

#include "sluice/req.h"

struct sl_l1;
struct sl_redis;
struct sl_semstore;

/* What the stages run against. redis NULL: embedded mode (in-process state). */
typedef struct sl_env {
    struct event_base *base;
    struct sl_l1 *l1;             /* the in-process response cache */
    struct sl_redis *redis;       /* shared state, or NULL */
    struct sl_semstore *semantic; /* the semantic cache's index, or NULL (off) */
} sl_env;

typedef enum { SL_NEXT, SL_WAIT, SL_DONE } sl_step;

typedef struct sl_stage {
    const char *name;
    size_t ctx_size; /* per-request context made by the pipeline (0: ctx is NULL) */
    /* optional: once per sl_pipeline_init, in table order; non-zero refuses the start */
    int (*init)(const sl_env *env);
    void (*fini)(void); /* optional: at sl_pipeline_fini, in reverse order */
    sl_step (*on_request)(sl_req *r, void *ctx);
    void (*on_response)(sl_req *r, void *ctx); /* optional */
    /* optional: the client went away while this stage had the request parked */
    void (*on_abort)(sl_req *r, void *ctx);
} sl_stage;

/* Called once per finished request, after its sink ended (access log,
 * metrics, dashboard; tracing can join without touching the driver). */
typedef struct sl_observer {
    const char *name;
    void (*on_finish)(const sl_req *r);
} sl_observer;

/* Wires the pipeline: copies env, runs every stage's init. Calling it again
 * rewires (fini, then init with the new env) for requests that start from
 * then on; the caller keeps the old stores alive until the in-flight drain. */
int sl_pipeline_init(const sl_env *env);
/* The same with other tables (NULL: the built-in ones); for tests. */
int sl_pipeline_init_with(const sl_env *env, const sl_stage *const *stages, size_t n_stages,
                          const sl_observer *const *observers, size_t n_observers);
void sl_pipeline_fini(void);
/* The environment the pipeline runs with (what /health reports on). */
const sl_env *sl_pipeline_env(void);

/* Starts an LLM request at the first stage (anything else: sl_req_finish). */
void sl_pipeline_start(sl_req *r);
/* Continues a parked request with the next stage, from the loop (never re-entrant). */
void sl_pipeline_resume(sl_req *r);
/* The one verb to answer: the answer on r (status, headers, body_out, or a
 * stream in progress) is complete. Prices it, runs the on_response hooks of
 * the stages that ran, writes a buffered body to the sink and ends it, tells
 * the observers, then drops the pipeline's reference. A body_out whose
 * writing failed (sticky error) becomes one 500 instead of a truncated body.
 * Idempotent. Every answer leaves through here: LLM or not, refusals too. */
void sl_req_finish(sl_req *r);
/* The client is gone: tells the stage that holds the request, which finishes it. */
void sl_pipeline_abort(sl_req *r);
/* The same, bypassing r->abort_guard (the last waiter of a flight left). */
void sl_pipeline_abort_now(sl_req *r);
/* A stage's own context on r, for its callbacks that are not handed it
 * (NULL when the stage was not reached). Never another stage's. */
void *sl_pipeline_ctx(const sl_req *r, const sl_stage *stage);

/* The drain deadline: ends every LLM request still in flight the way a failure
 * would (its stage cancels the upstream call), answering 503 shutting_down, or
 * an SSE error event with that code on a stream whose head went out; each gets
 * its on_response hooks (settlement), access-log line and metrics. Requests
 * parked where no stage can cancel them end so when they resume. Returns how
 * many it cut. */
size_t sl_pipeline_cut_all(void);

/* Sends the head now (streams): marks head_sent. */
void sl_pipeline_stream_head(sl_req *r, int status);
void sl_pipeline_stream_data(sl_req *r, const char *p, size_t n);

#endif
