/* resume.c — stage: numbered SSE events, and streams resumed after an id.
 *
 * Every streaming request gets a recording (recording.h), so each event
 * sluice sends carries `id: <request id>-<n>`. A request with
 * `Last-Event-ID: <request id>-<n>` (the same request re-sent by a client
 * that lost its stream) and `GET /v1/streams/{request_id}` (with or without
 * that header) receive exactly the events after n of that stream:
 *   - from the live recording while the original still runs (then its live
 *     events, until its end);
 *   - from the stored stream once it finished, for streams.resume_s, in
 *     process or, with Redis, from any instance.
 * Nothing goes upstream for a resume and nothing is billed (no usage). Only
 * the tenant that made a stream can resume it; to any other it does not
 * exist (404 stream_not_found).
 *
 * Reads:  r->last_event_id, r->llm.stream, r->tenant, r->path (the route),
 *         r->env->redis.
 * Writes: r->rec (through sl_rec_start), the resumed answer.
 * Context: resume_ctx, whether the request listens to a live recording. */
#include <stdio.h>
#include <stdlib.h>

#include "sluice/recording.h"
#include "sluice/redis.h"
#include "sluice/stages.h"

typedef struct resume_ctx {
    bool listening;
} resume_ctx;

static void not_found(sl_req *r, const char *rid)
{
    sl_req_error(r, 404, "invalid_request_error", "stream_not_found", NULL,
                 sl_arena_printf(&r->arena,
                                 "no resumable stream `%.64s` (it never existed, belongs to "
                                 "another key, or ended more than streams.resume_s ago)",
                                 rid));
}

/* Answers r from a stored stream blob; false when it is not one of r's. */
static bool serve_stored(sl_req *r, const char *blob, size_t len, const char *rid, size_t after)
{
    sl_answer a;
    if (sl_answer_decode(blob, len, &a) != SL_OK || !a.sse || !sl_str_eq_c(a.tenant, r->tenant))
        return false;
    sl_pipeline_stream_head(r, a.status);
    sl_rec_send_frames(r, a.body, after, rid);
    sl_req_finish(r);
    return true;
}

typedef struct lookup {
    sl_req *r;
    char rid[64];
    size_t after;
} lookup;

static void on_stored_reply(void *ud, const redisReply *rep, int status)
{
    lookup *lk = ud;
    sl_req *r = lk->r;
    bool ok = status == SL_OK && rep && rep->type == REDIS_REPLY_STRING;
    if (r->client_gone) {
        sl_req_client_closed(r);
        sl_req_finish(r);
    } else if (!ok || !serve_stored(r, rep->str, rep->len, lk->rid, lk->after)) {
        not_found(r, lk->rid);
        sl_req_finish(r);
    }
    sl_req_release(r);
}

/* Looks rid up: live, stored here, stored in Redis. Answers r (now or later). */
static void resume_from(sl_req *r, const char *rid, size_t after, bool *listening)
{
    sl_rec *rc = sl_rec_find_stream(r->tenant, rid);
    if (rc) {
        if (sl_rec_listen(rc, r, after, true, NULL)) {
            *listening = true;
            return;
        }
        sl_req_error(r, 410, "invalid_request_error", "stream_not_resumable", NULL,
                     "the stream is larger than streams.max_resumable_bytes: it cannot be resumed");
        sl_req_finish(r);
        return;
    }
    sl_cache_key k;
    sl_answers_key("s", r->tenant, rid, &k); /* a tenant's ids never meet another's */
    sl_l1_entry *e = sl_answers_get(sl_rec_store(), &k);
    if (e) {
        bool served = serve_stored(r, sl_l1_entry_data(e), sl_l1_entry_len(e), rid, after);
        sl_l1_entry_unref(e);
        if (served)
            return;
    }
    lookup *lk = sl_arena_calloc(&r->arena, sizeof(*lk));
    char key[96];
    sl_answers_redis_key("s", &k, "v", key);
    const char *argv[] = {"GET", key};
    if (lk && r->env && r->env->redis) {
        lk->r = r;
        snprintf(lk->rid, sizeof lk->rid, "%s", rid);
        lk->after = after;
        sl_req_ref(r);
        if (sl_redis_cmd(r->env->redis, on_stored_reply, lk, 2, argv, NULL) == SL_OK)
            return;
        sl_req_release(r);
    }
    not_found(r, rid);
    sl_req_finish(r);
}

static sl_step resume_request(sl_req *r, void *vctx)
{
    resume_ctx *ctx = vctx;
    if (!r->last_event_id) {
        if (r->llm.stream && !sl_rec_start(r)) {
            sl_req_error(r, 500, "api_error", "out_of_memory", NULL, "out of memory");
            return sl_stage_answer(r);
        }
        return SL_NEXT;
    }
    char rid[64];
    size_t after;
    if (!sl_rec_parse_id(r->last_event_id, rid, &after)) {
        sl_req_error(r, 400, "invalid_request_error", "invalid_last_event_id", NULL,
                     "Last-Event-ID must be an event id sluice sent: <request id>-<number>");
        return sl_stage_answer(r);
    }
    resume_from(r, rid, after, &ctx->listening);
    return SL_DONE;
}

static void resume_abort(sl_req *r, void *vctx)
{
    resume_ctx *ctx = vctx;
    if (ctx->listening)
        sl_rec_unlisten(r);
}

static int resume_init(const sl_env *env)
{
    return sl_rec_init(env);
}

static void resume_fini(void)
{
    sl_rec_fini();
}

const sl_stage sl_stage_resume = {
    .name = "resume",
    .ctx_size = sizeof(resume_ctx),
    .init = resume_init,
    .fini = resume_fini,
    .on_request = resume_request,
    .on_abort = resume_abort,
};

/* ---- GET /v1/streams/{request_id} ------------------------------------------ */

/* The client of a GET that listens left: detach it (the server has no stage to tell). */
static bool route_guard(sl_req *r)
{
    sl_rec_unlisten(r);
    return true;
}

void sl_stream_resume_route(sl_req *r)
{
    const char *rid = r->path + strlen("/v1/streams/");
    char id[64];
    size_t after = 0;
    if (r->last_event_id && (!sl_rec_parse_id(r->last_event_id, id, &after) || strcmp(id, rid))) {
        sl_req_error(r, 400, "invalid_request_error", "invalid_last_event_id", NULL,
                     "Last-Event-ID must be an id of this stream: <request id>-<number>");
        sl_req_finish(r);
        return;
    }
    if (strlen(rid) >= sizeof id || strchr(rid, '/')) {
        not_found(r, rid);
        sl_req_finish(r);
        return;
    }
    bool listening = false;
    r->env = sl_pipeline_env();
    resume_from(r, rid, after, &listening);
    if (listening)
        r->abort_guard = route_guard;
}
