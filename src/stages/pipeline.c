/* pipeline.c — the request flow, as two tables, and its driver.
 *
 *   client ─► server: route, read body, request id
 *          ─► auth ─► parse ─► resume ─► idempotency ─► limits ─► route ─► cache
 *          ─► semantic ─► coalesce ─► batch ─► proxy ─► provider
 *                                   └─► passthrough ─► provider (other /v1/... routes)
 *                                                                         │
 *                                         sl_req_finish(r) ◄── answer ◄───┘
 *                                         (or any stage that answers itself)
 *   client ◄─ sink ◄── on_response hooks, in reverse ◄── price (meter.c)
 *          └─ observers[], once per finished request: access log, metrics, stats
 *
 * A stage slots into `stages[]` without touching the others: the order of
 * that array is the whole story. Each stage gets its own zeroed context from
 * the request's arena, indexed by its position; the driver checks the
 * request's magic number on every turn, so a stage that keeps a request past
 * its release fails loudly at the next step instead of corrupting another. */
#include "sluice/pipeline.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

#include "sluice/access.h"
#include "sluice/meter.h"
#include "sluice/metrics.h"
#include "sluice/stages.h"
#include "sluice/stats.h"
#include "sluice/trace.h"

static const sl_stage *const default_stages[] = {
    &sl_stage_auth,     &sl_stage_parse,       &sl_stage_resume, &sl_stage_idempotency,
    &sl_stage_limits,   &sl_stage_passthrough, &sl_stage_route,  &sl_stage_cache,
    &sl_stage_semantic, &sl_stage_coalesce,    &sl_stage_batch,  &sl_stage_proxy,
};

static const sl_observer access_log = {"access_log", sl_access_log_req};
static const sl_observer metrics = {"metrics", sl_metrics_request};
static const sl_observer stats = {"stats", sl_stats_request};
static const sl_observer tracing = {"tracing", sl_trace_request};
static const sl_observer *const default_observers[] = {&access_log, &metrics, &stats};
/* With tracing on (trace.h), its observer joins; off, it costs nothing. */
static const sl_observer *const traced_observers[] = {&access_log, &metrics, &stats, &tracing};

enum { MAX_OBSERVERS = 8 };

/* The wiring in force: copies of the tables, so a caller's may be temporary. */
static struct {
    sl_env env;
    const sl_stage *stages[SL_REQ_MAX_STAGES];
    int n_stages;
    const sl_observer *observers[MAX_OBSERVERS];
    size_t n_observers;
    bool wired;
} pl;

_Static_assert(SL_ARRAY_LEN(default_stages) <= SL_REQ_MAX_STAGES, "stage_ctx[] is too small");

static void fini_stages(int n)
{
    for (int i = n - 1; i >= 0; i--) {
        if (pl.stages[i]->fini)
            pl.stages[i]->fini();
    }
}

int sl_pipeline_init_with(const sl_env *env, const sl_stage *const *stages, size_t n_stages,
                          const sl_observer *const *observers, size_t n_observers)
{
    if (!stages)
        stages = default_stages, n_stages = SL_ARRAY_LEN(default_stages);
    if (!observers && sl_trace_on)
        observers = traced_observers, n_observers = SL_ARRAY_LEN(traced_observers);
    if (!observers)
        observers = default_observers, n_observers = SL_ARRAY_LEN(default_observers);
    if (n_stages > SL_REQ_MAX_STAGES || n_observers > MAX_OBSERVERS)
        return SL_EINVAL;
    sl_pipeline_fini();
    pl.env = *env;
    memcpy(pl.stages, stages, n_stages * sizeof(*stages));
    pl.n_stages = (int)n_stages;
    memcpy(pl.observers, observers, n_observers * sizeof(*observers));
    pl.n_observers = n_observers;
    for (int i = 0; i < pl.n_stages; i++) {
        int rc = pl.stages[i]->init ? pl.stages[i]->init(&pl.env) : SL_OK;
        if (rc != SL_OK) {
            fini_stages(i);
            return rc;
        }
    }
    pl.wired = true;
    return SL_OK;
}

int sl_pipeline_init(const sl_env *env)
{
    return sl_pipeline_init_with(env, NULL, 0, NULL, 0);
}

void sl_pipeline_fini(void)
{
    if (pl.wired)
        fini_stages(pl.n_stages);
    pl.wired = false;
}

const sl_env *sl_pipeline_env(void)
{
    return &pl.env;
}

void *sl_pipeline_ctx(const sl_req *r, const sl_stage *stage)
{
    for (int i = 0; i < r->reached; i++) {
        if (pl.stages[i] == stage)
            return r->stage_ctx[i];
    }
    return NULL;
}

/* A request that is not (or no longer) one: a use after release. */
static void check_magic(const sl_req *r)
{
    if (r->magic != SL_REQ_MAGIC) {
        fprintf(stderr, "pipeline: request %p has bad magic %08x\n", (const void *)r, r->magic);
        abort();
    }
}

/* LLM requests between sl_pipeline_start and sl_req_finish, newest first:
 * what the drain deadline has to end (sl_pipeline_cut_all). */
static sl_req *inflight;
static size_t n_inflight;

static void track(sl_req *r)
{
    r->run_prev = NULL;
    r->run_next = inflight;
    if (inflight)
        inflight->run_prev = r;
    inflight = r;
    r->tracked = true;
    n_inflight++;
}

static void untrack(sl_req *r)
{
    if (!r->tracked)
        return;
    if (r->run_prev)
        r->run_prev->run_next = r->run_next;
    else
        inflight = r->run_next;
    if (r->run_next)
        r->run_next->run_prev = r->run_prev;
    r->tracked = false;
    n_inflight--;
}

/* Enters stage i: its context first, then its on_request. */
static sl_step enter(sl_req *r, int i)
{
    const sl_stage *s = pl.stages[i];
    r->stage = i + 1;
    r->reached = r->stage;
    if (s->ctx_size && !(r->stage_ctx[i] = sl_arena_calloc(&r->arena, s->ctx_size))) {
        sl_req_error(r, 500, "api_error", "out_of_memory", NULL, "out of memory");
        sl_req_finish(r);
        return SL_DONE;
    }
    if (!r->trace)
        return s->on_request(r, r->stage_ctx[i]);
    const sl_trace *outer = sl_trace_current; /* a hook may start another request's */
    sl_trace_current = r->trace;
    sl_step step = s->on_request(r, r->stage_ctx[i]);
    sl_trace_current = outer;
    return step;
}

static void run(sl_req *r)
{
    check_magic(r);
    while (r->stage < pl.n_stages && !r->completed) {
        if (r->client_gone) {
            sl_req_client_closed(r);
            sl_req_finish(r);
            return;
        }
        if (enter(r, r->stage) != SL_NEXT)
            return;
        check_magic(r);
    }
    if (!r->completed) {
        sl_req_error(r, 500, "api_error", "no_answer", NULL, "no stage produced an answer");
        sl_req_finish(r);
    }
}

void sl_pipeline_start(sl_req *r)
{
    r->stage = 0;
    r->reached = 0;
    r->env = &pl.env;
    if (!r->is_llm) { /* not an LLM request: nothing to run */
        sl_req_finish(r);
        return;
    }
    if (!r->tracked)
        track(r);
    run(r);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    sl_req *r = arg;
    run(r);
    sl_req_release(r); /* the reference taken by sl_pipeline_resume */
}

void sl_pipeline_resume(sl_req *r)
{
    check_magic(r);
    if (!r->resume_ev) {
        r->resume_ev = event_new(r->base, -1, 0, resume_cb, r);
        if (!r->resume_ev) {
            run(r); /* out of memory for an event: run inline rather than hang */
            return;
        }
    }
    sl_req_ref(r);
    event_active(r->resume_ev, 0, 0);
}

void sl_pipeline_abort(sl_req *r)
{
    if (r->client_gone || r->completed)
        return;
    r->client_gone = true;
    if (r->abort_guard && r->abort_guard(r))
        return; /* others still wait on this request's work */
    sl_pipeline_abort_now(r);
}

void sl_pipeline_abort_now(sl_req *r)
{
    check_magic(r);
    if (r->completed)
        return;
    r->client_gone = true;
    int at = r->stage - 1;
    if (at >= 0 && at < pl.n_stages && pl.stages[at]->on_abort)
        pl.stages[at]->on_abort(r, r->stage_ctx[at]);
    /* Stages without on_abort notice client_gone when they resume. */
}

void sl_pipeline_stream_head(sl_req *r, int status)
{
    if (r->head_sent)
        return;
    r->head_sent = true;
    r->streaming = true;
    r->status = status;
    r->sink->ops->head(r->sink, r, status, true);
}

void sl_pipeline_stream_data(sl_req *r, const char *p, size_t n)
{
    r->bytes_out += n;
    r->sink->ops->data(r->sink, r, p, n);
}

size_t sl_pipeline_cut_all(void)
{
    /* Snapshot first: ending one request may end others (a flight's followers). */
    size_t n = n_inflight, k = 0;
    sl_req **all = n ? malloc(n * sizeof(*all)) : NULL;
    if (!all)
        return 0;
    for (sl_req *r = inflight; r && k < n; r = r->run_next) {
        r->cut = true;
        sl_req_ref(r);
        all[k++] = r;
    }
    for (size_t i = 0; i < k; i++) {
        if (!all[i]->completed)
            sl_pipeline_abort_now(all[i]);
        sl_req_release(all[i]);
    }
    free(all);
    return k;
}

/* A request the drain deadline cut: whatever its stage answered (499 on an
 * abort), the client is told the gateway is shutting down. */
static void answer_cut(sl_req *r)
{
    if (!r->head_sent)
        sl_req_header(r, "Retry-After", "1");
    else
        r->status = 200; /* what the stream's head said (an abort wrote 499) */
    sl_req_error(r, 503, "api_error", "shutting_down", NULL,
                 "the gateway is shutting down; retry the request");
}

/* A body whose writing failed (out of memory, over its bound) is not sent
 * cut short: it becomes one error answer, before any hook can store it. */
static void check_body(sl_req *r)
{
    if (!r->body_out.err || r->head_sent)
        return;
    bool oom = r->body_out.err == SL_ENOMEM;
    sl_req_error(r, 500, "api_error", oom ? "out_of_memory" : "response_too_large", NULL,
                 oom ? "out of memory while writing the answer"
                     : "the answer is larger than server.max_response_bytes");
    if (r->body_out.err)
        sl_buf_reset(&r->body_out); /* not even the error fits: status only */
}

static void reverse_pass(sl_req *r)
{
    const sl_trace *outer = sl_trace_current;
    if (r->trace) /* the cache's SET, limits' settlement: this request's Redis commands */
        sl_trace_current = r->trace;
    for (int i = r->reached - 1; i >= 0; i--) {
        if (pl.stages[i]->on_response)
            pl.stages[i]->on_response(r, r->stage_ctx[i]);
    }
    sl_trace_current = outer;
}

static void write_out(sl_req *r)
{
    if (!r->head_sent) {
        r->head_sent = true;
        if (!r->status)
            r->status = 500;
        r->sink->ops->head(r->sink, r, r->status, r->streaming);
    }
    if (r->body_out.len) {
        r->bytes_out += r->body_out.len;
        r->sink->ops->data(r->sink, r, r->body_out.p, r->body_out.len);
    }
    r->t_end = sl_now_us();
    r->sink->ops->end(r->sink, r);
}

void sl_req_finish(sl_req *r)
{
    check_magic(r);
    if (r->completed)
        return;
    r->completed = true;
    untrack(r);
    if (r->cut)
        answer_cut(r);
    check_body(r);
    sl_meter_price(r); /* before the hooks: limits settles with the real cost */
    reverse_pass(r);
    write_out(r);
    for (size_t i = 0; i < pl.n_observers; i++)
        pl.observers[i]->on_finish(r);
    sl_req_release(r);
}
