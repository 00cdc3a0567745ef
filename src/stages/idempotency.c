/* idempotency.c — stage: a request with `Idempotency-Key: K` runs at most
 * once per tenant and key within idempotency.ttl_s.
 *
 *   - the first with a key leads: its answer is recorded (recording.h) and,
 *     at its end, stored under (tenant, K) with the request's fingerprint;
 *   - a duplicate while it runs listens to its recording (a stream gets what
 *     was sent, then the live events); one that comes later gets the stored
 *     answer; both with `x-sluice-idempotent-replay: true`, the first's
 *     status and body, and no usage (cost 0);
 *   - the same key with another request (path or body bytes differ): 422
 *     idempotency_key_reused; an empty key or one over 255 bytes: 400;
 *   - a first attempt that failed before any byte reached its client (5xx
 *     after retries, breaker open, 429, a client that left) is not stored:
 *     its waiting duplicates and later retries run again.
 * Across instances (Redis): one script reads the stored answer and, when
 * there is none, takes the key's lock (SET NX PX, a lease of
 * coalesce.lease_ms renewed by the holder). A request that finds the lock
 * taken polls the same script every 20 ms: the answer appears -> it replays
 * it; the lock vanishes without one (the holder died or failed) -> it takes
 * the lock and runs. The holder stores the answer, then releases the lock.
 *
 * Reads:  r->idem_key, r->tenant, r->path, r->body, r->env->redis.
 * Writes: r->rec (a leader's recording), x-sluice-idempotent-replay, a
 *         duplicate's answer.
 * Context: idem_ctx: the key, the fingerprint, the lock and its poll timer. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "sluice/lease.h"
#include "sluice/recording.h"
#include "sluice/redis.h"
#include "sluice/stages.h"

enum { MAX_KEY_BYTES = 255, POLL_MS = 20 };

typedef struct idem_ctx { /* small: every request gets one, most carry no key */
    sl_req *r;
    sl_cache_key key, fp;
    bool listening;
    char token[33]; /* the lock's, once claimed */
    struct event *poll_ev;
    uint64_t wait_until_ms;
} idem_ctx;

/* The stored answer if any, else the lock if free: a string (the answer),
 * 1 (the lock is ours) or 0 (someone else holds it). */
static const char *const CLAIM_SCRIPT =
    "local v = redis.call('GET', KEYS[1]) if v then return v end "
    "if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end return 0";

static sl_step decide(sl_req *r, idem_ctx *ctx);

static bool same_fp(const sl_cache_key *a, const sl_cache_key *b)
{
    return a->hi == b->hi && a->lo == b->lo;
}

static sl_step refuse_reused(sl_req *r)
{
    sl_req_error(r, 422, "invalid_request_error", "idempotency_key_reused", NULL,
                 "this Idempotency-Key was already used with a different request");
    return sl_stage_answer(r);
}

/* Answers r with a stored answer (blob); SL_DONE either way once decoded. */
static bool replay(sl_req *r, idem_ctx *ctx, const char *blob, size_t len)
{
    sl_answer a;
    if (sl_answer_decode(blob, len, &a) != SL_OK)
        return false;
    if (!same_fp(&a.fp, &ctx->fp)) {
        refuse_reused(r);
        return true;
    }
    if (r->rec)
        sl_rec_replayed(r->rec);
    sl_req_header(r, "x-sluice-idempotent-replay", "true");
    if (a.sse) {
        sl_pipeline_stream_head(r, a.status);
        if (a.body.len)
            sl_pipeline_stream_data(r, a.body.p, a.body.len);
    } else {
        r->status = a.status;
        if (a.content_type.len)
            r->content_type = sl_arena_strndup(&r->arena, a.content_type.p, a.content_type.len);
        sl_buf_reset(&r->body_out);
        sl_buf_append_str(&r->body_out, a.body);
    }
    sl_req_finish(r);
    return true;
}

/* The flight this request listened to failed without an answer worth
 * sharing: it decides again (leads, or follows whoever leads now). */
static void on_unserved(sl_req *r)
{
    idem_ctx *ctx = sl_pipeline_ctx(r, &sl_stage_idempotency);
    ctx->listening = false;
    if (r->client_gone) {
        sl_req_client_closed(r);
        sl_req_finish(r);
        return;
    }
    if (decide(r, ctx) == SL_NEXT)
        sl_pipeline_resume(r);
}

static sl_step attach(sl_req *r, idem_ctx *ctx, sl_rec *rc)
{
    if (!same_fp(sl_rec_fp(rc), &ctx->fp))
        return refuse_reused(r);
    if (!sl_rec_listen(rc, r, 0, false, on_unserved)) { /* it marks the answer a replay */
        sl_req_error(r, 409, "invalid_request_error", "idempotency_key_in_use", NULL,
                     "the first request with this Idempotency-Key is still running and its "
                     "answer is too large to share; retry when it is done");
        return sl_stage_answer(r);
    }
    ctx->listening = true;
    return SL_DONE;
}

/* ---- across instances ------------------------------------------------------ */

static int claim(idem_ctx *ctx);

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    idem_ctx *ctx = arg;
    if (claim(ctx) != SL_OK) {
        sl_pipeline_resume(ctx->r); /* Redis away: run (local rules only) */
        sl_req_release(ctx->r);     /* the poll's reference */
    }
}

static void on_claim(void *ud, const redisReply *rep, int status)
{
    idem_ctx *ctx = ud;
    sl_req *r = ctx->r;
    if (r->client_gone || status != SL_OK || !rep) {
        sl_pipeline_resume(r); /* gone: 499 there; Redis trouble: run */
    } else if (rep->type == REDIS_REPLY_STRING) {
        if (replay(r, ctx, rep->str, rep->len))
            sl_answers_keep(sl_rec_store(), &ctx->key, rep->str, rep->len,
                            SL_MIN(60000u, (uint64_t)r->conf->idempotency.ttl_s * 1000u));
        else
            sl_pipeline_resume(r); /* not an answer of ours: run */
    } else if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) {
        char lock_key[96];
        sl_answers_redis_key("i", &ctx->key, "lock", lock_key);
        if (r->rec)
            sl_rec_set_lock(r->rec, r->env->redis, lock_key, ctx->token);
        sl_pipeline_resume(r); /* the lock is ours: run */
    } else if (sl_now_ms() >= ctx->wait_until_ms) {
        sl_req_error(r, 409, "invalid_request_error", "idempotency_key_in_use", NULL,
                     "the first request with this Idempotency-Key is still running");
        sl_req_finish(r);
    } else {
        if (!ctx->poll_ev)
            ctx->poll_ev = evtimer_new(r->base, on_poll, ctx);
        struct timeval tv = {0, POLL_MS * 1000};
        if (ctx->poll_ev)
            evtimer_add(ctx->poll_ev, &tv);
        else
            sl_pipeline_resume(r);
        return; /* the reference stays with the poll */
    }
    sl_req_release(r);
}

static int claim(idem_ctx *ctx)
{
    sl_req *r = ctx->r;
    char px[16];
    snprintf(px, sizeof px, "%d", sl_lease_ms(r->conf));
    char value_key[96], lock_key[96];
    sl_answers_redis_key("i", &ctx->key, "v", value_key);
    sl_answers_redis_key("i", &ctx->key, "lock", lock_key);
    const char *argv[] = {value_key, lock_key, ctx->token, px};
    return sl_redis_eval(r->env->redis, CLAIM_SCRIPT, 2, 4, argv, NULL, on_claim, ctx);
}

static sl_step claim_first(sl_req *r, idem_ctx *ctx)
{
    uint8_t raw[16];
    sl_random_bytes(raw, sizeof raw);
    for (int i = 0; i < 16; i++)
        snprintf(ctx->token + 2 * i, 3, "%02x", raw[i]);
    ctx->wait_until_ms =
        sl_now_ms() + (uint64_t)sl_lease_ms(r->conf) + (uint64_t)r->conf->timeouts.total_ms;
    sl_req_ref(r); /* held by the claim, then the polls */
    if (claim(ctx) == SL_OK)
        return SL_WAIT;
    sl_req_release(r);
    return SL_NEXT; /* Redis down: this instance's rules only */
}

/* ---- the stage -------------------------------------------------------------- */

static sl_step decide(sl_req *r, idem_ctx *ctx)
{
    sl_rec *rc = sl_rec_find_idem(&ctx->key);
    if (rc)
        return attach(r, ctx, rc);
    sl_l1_entry *e = sl_answers_get(sl_rec_store(), &ctx->key);
    if (e) {
        bool done = replay(r, ctx, sl_l1_entry_data(e), sl_l1_entry_len(e));
        sl_l1_entry_unref(e);
        if (done)
            return SL_DONE;
    }
    /* Lead here at once, so local duplicates listen instead of polling. */
    rc = sl_rec_start(r);
    if (!rc)
        return SL_NEXT;
    sl_rec_set_idem(rc, &ctx->key, &ctx->fp);
    return r->env->redis ? claim_first(r, ctx) : SL_NEXT;
}

static sl_step idem_request(sl_req *r, void *vctx)
{
    idem_ctx *ctx = vctx;
    if (!r->idem_key)
        return SL_NEXT;
    size_t n = strlen(r->idem_key);
    if (n == 0 || n > MAX_KEY_BYTES) {
        sl_req_error(r, 400, "invalid_request_error",
                     n ? "idempotency_key_too_long" : "invalid_idempotency_key", NULL,
                     n ? "Idempotency-Key is longer than 255 bytes"
                       : "Idempotency-Key must not be empty");
        return sl_stage_answer(r);
    }
    ctx->r = r;
    sl_answers_key("i", r->tenant, r->idem_key, &ctx->key);
    XXH3_state_t st;
    XXH3_128bits_reset(&st);
    XXH3_128bits_update(&st, r->path, strlen(r->path) + 1);
    XXH3_128bits_update(&st, r->body.p, r->body.len);
    XXH128_hash_t h = XXH3_128bits_digest(&st);
    ctx->fp = (sl_cache_key){h.high64, h.low64};
    return decide(r, ctx);
}

static void idem_response(sl_req *r, void *vctx)
{
    SL_UNUSED(r);
    idem_ctx *ctx = vctx;
    if (ctx->poll_ev)
        event_free(ctx->poll_ev);
    ctx->poll_ev = NULL;
}

static void idem_abort(sl_req *r, void *vctx)
{
    idem_ctx *ctx = vctx;
    if (ctx->listening)
        sl_rec_unlisten(r);
}

const sl_stage sl_stage_idempotency = {
    .name = "idempotency",
    .ctx_size = sizeof(idem_ctx),
    .on_request = idem_request,
    .on_response = idem_response,
    .on_abort = idem_abort,
};
