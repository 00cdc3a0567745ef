/* pipeline.c — the request flow, as one table, and its three-line driver.
 *
 *   client ─► server: route, read body, request id
 *          ─► auth ─► parse ─► limits ─► meter ─► route ─► cache ─► coalesce ─► proxy ─► provider
 *   client ◄─ sink ◄── on_response hooks, in reverse ◄───────────────── answer
 *                      (meter prices it; then one access-log line)
 *
 * Later stages (auth, limits, cache, coalesce, meter) slot into `stages[]`
 * without touching the others: the order of that array is the whole story. */
#include "sluice/pipeline.h"

#include <event2/event.h>

#include "sluice/access.h"
#include "sluice/metrics.h"
#include "sluice/stats.h"
#include "sluice/stages.h"

static const sl_stage *const stages[] = {
    &sl_stage_auth,  &sl_stage_parse, &sl_stage_limits,   &sl_stage_meter,
    &sl_stage_route, &sl_stage_cache, &sl_stage_coalesce, &sl_stage_proxy,
};
enum { N_STAGES = (int)SL_ARRAY_LEN(stages) };

static void run(sl_req *r)
{
    while (r->stage < N_STAGES && !r->completed) {
        if (r->client_gone) {
            r->status = 499;
            r->error = "client closed";
            sl_req_finish(r);
            return;
        }
        const sl_stage *s = stages[r->stage++];
        r->reached = r->stage;
        if (s->on_request(r) != SL_NEXT)
            return;
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
    if (!r->is_llm) { /* not an LLM request: nothing to run */
        sl_req_finish(r);
        return;
    }
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
    if (r->completed)
        return;
    r->client_gone = true;
    int at = r->stage - 1;
    if (at >= 0 && at < N_STAGES && stages[at]->on_abort)
        stages[at]->on_abort(r);
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

void sl_req_finish(sl_req *r)
{
    if (r->completed)
        return;
    r->completed = true;
    check_body(r);
    for (int i = r->reached - 1; i >= 0; i--) {
        if (stages[i]->on_response)
            stages[i]->on_response(r);
    }
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
    sl_access_log_req(r);
    sl_metrics_request(r);
    sl_stats_request(r);
    sl_req_release(r);
}
