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
#include <stdlib.h>

#include "sluice/access.h"
#include "sluice/metrics.h"
#include "sluice/stats.h"
#include "sluice/stages.h"

static const sl_stage *const stages[] = {
    &sl_stage_auth,  &sl_stage_parse, &sl_stage_limits,   &sl_stage_meter,
    &sl_stage_route, &sl_stage_cache, &sl_stage_coalesce, &sl_stage_proxy,
};
enum { N_STAGES = (int)SL_ARRAY_LEN(stages) };

/* LLM requests between sl_pipeline_start and sl_pipeline_complete, newest
 * first: what the drain deadline has to end (sl_pipeline_cut_all). */
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

static void run(sl_req *r)
{
    while (r->stage < N_STAGES && !r->completed) {
        if (r->client_gone) {
            r->status = 499;
            r->error = "client closed";
            sl_pipeline_complete(r);
            return;
        }
        const sl_stage *s = stages[r->stage++];
        r->reached = r->stage;
        if (s->on_request(r) != SL_NEXT)
            return;
    }
    if (!r->completed) {
        sl_req_error(r, 500, "api_error", "no_answer", NULL, "no stage produced an answer");
        sl_pipeline_complete(r);
    }
}

void sl_pipeline_start(sl_req *r)
{
    r->stage = 0;
    r->reached = 0;
    if (!r->is_llm) { /* operational routes answered by the server: no stages */
        sl_pipeline_complete(r);
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

void sl_pipeline_complete(sl_req *r)
{
    if (r->completed)
        return;
    r->completed = true;
    untrack(r);
    if (r->cut)
        answer_cut(r);
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
