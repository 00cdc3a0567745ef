/* pipeline.h — the stages every LLM request passes, and the driver.
 *
 * A stage is one file exporting one `const sl_stage`. The order of the table in
 * pipeline.c is the whole request flow. on_request returns:
 *   SL_NEXT  go on with the next stage;
 *   SL_WAIT  the stage parked the request and will call sl_pipeline_resume(r);
 *   SL_DONE  the stage took charge of the answer: it has called (or will call)
 *            sl_pipeline_complete(r) exactly once.
 * on_response runs in reverse order for every stage whose on_request ran, once
 * the answer is complete (plain: before the body is written, so stages may add
 * headers such as the cost; streams: after the last chunk). */
#ifndef SLUICE_PIPELINE_H
#define SLUICE_PIPELINE_H

#include "sluice/req.h"

typedef enum { SL_NEXT, SL_WAIT, SL_DONE } sl_step;

typedef struct sl_stage {
    const char *name;
    sl_step (*on_request)(sl_req *r);
    void (*on_response)(sl_req *r);
    /* optional: the client went away while this stage had the request parked */
    void (*on_abort)(sl_req *r);
} sl_stage;

/* Starts the request at the first stage. */
void sl_pipeline_start(sl_req *r);
/* Continues a parked request with the next stage, from the loop (never re-entrant). */
void sl_pipeline_resume(sl_req *r);
/* The answer is complete: runs on_response hooks, writes a buffered body to the
 * sink and ends it, then drops the pipeline's reference. Idempotent. */
void sl_pipeline_complete(sl_req *r);
/* The client is gone: tells the stage that holds the request, which completes it. */
void sl_pipeline_abort(sl_req *r);
/* The same, bypassing r->abort_guard (the last waiter of a flight left). */
void sl_pipeline_abort_now(sl_req *r);

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
