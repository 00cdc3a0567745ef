/* coalesce.c — stage: identical in-flight requests share one upstream call.
 *
 * The first request with a given cache key leads a *flight*: its sink is
 * wrapped by the flight's fan-out sink, so everything its upstream call
 * produces also reaches every follower. A follower that arrives later attaches
 * to the flight instead of calling upstream:
 *   - a streaming follower of a streaming flight first receives the chunks
 *     already sent, then the live ones. The chunks sent are replayed from the
 *     leader's recording (recording.h: every stream has one, for resumes),
 *     not from a second copy; only a stream without one keeps its own;
 *   - a plain follower of a streaming flight receives the assembled object;
 *   - a streaming follower of a plain flight receives the answer replayed as SSE.
 * A follower leaving only detaches itself. The leader's client leaving does
 * not cancel the call while followers wait (abort_guard); when the last waiter
 * is gone, the upstream call is cancelled. Bounds (waiters per flight, replay
 * bytes) send the excess upstream on its own.
 *
 * Across instances (with Redis) a flight's leader first takes a lock on the
 * key (SET NX PX, random token). The lock is a lease of coalesce.lease_ms
 * that the holder renews every lease/3 while its call runs (a compare-and-
 * renew script on its token), so a long call keeps it and a dead holder loses
 * it within one lease. Holding it, the leader calls upstream; the cache
 * stage stores the answer in L2, and only then (the flight's end, after every
 * on_response hook queued its commands) the lock is released by a
 * compare-and-delete script. A leader that finds the lock taken polls L2 and
 * the lock together (MGET) every few ms: the entry appears -> it answers from
 * it, as do its local followers; the lock vanishes without an entry (the
 * holder died or failed) -> it takes the lock and calls upstream itself. No
 * one waits longer than a lease after the holder's death (and never longer
 * than timeouts.total_ms plus a lease); Redis away -> local only.
 *
 * Reads:  r->key, r->has_key, r->cache_control, r->llm.stream, r->env->redis.
 * Writes: a leader's r->sink (the fan-out) and r->abort_guard; a follower's
 *         r->cache (coalesced), r->led_by, its answer, tokens and provider.
 * Context: coalesce_ctx, the flight the request leads or the one it joined. */
#include <stdlib.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>

#include "sluice/completion.h"
#include "sluice/lease.h"
#include "sluice/recording.h"
#include "sluice/redis.h"
#include "sluice/responses.h"
#include "sluice/sse.h"
#include "sluice/stages.h"
#include "sluice/trace.h"

typedef struct flight flight;
typedef struct member member;

/* The stage's context: a request leads a flight, or joined one, or neither. */
typedef struct coalesce_ctx {
    flight *leads;  /* the flight this request's upstream call feeds */
    member *joined; /* this request's place in another request's flight */
} coalesce_ctx;

struct member {
    sl_req *r;
    flight *f;
    coalesce_ctx *ctx; /* the follower's context */
    bool stream;       /* the follower asked for SSE */
    bool live;         /* it is receiving the flight's chunks as they come */
    struct member *next;
    struct member *prev;
};

struct flight {
    sl_cache_key key;
    struct flight *hnext;
    sl_req *leader;
    coalesce_ctx *leader_ctx;
    sl_redis *redis;               /* the store the lock lives in (NULL: local only) */
    sl_sink sink;                  /* the fan-out sink installed on the leader */
    sl_sink *leader_sink;          /* the leader's own client sink */
    bool (*prev_guard)(sl_req *r); /* the leader's abort guard before ours (a recording's) */
    member *members;
    size_t n_members;
    bool sse; /* the leader's answer is a stream */
    bool headed;
    bool closed;       /* no more joins (replay overflow, ending) */
    size_t replay_len; /* SSE bytes so far (bounded by coalesce.max_replay_bytes) */
    size_t replay_max;
    sl_buf replay; /* ... kept here only when the leader has no recording */
    sl_buf plain;  /* the plain body, for followers */
    /* stream -> object for plain followers, only when one comes and the
     * leader's proxy does not assemble the stream already (cache off) */
    sl_asm *assembler;
    sl_sse *sse_parser;
    /* across instances (allocated with the first lock taken: Redis only) */
    struct flight_lock {
        char lock_key[80];
        char value_key[80];
        char token[33];
    } * lk;
    sl_lease lease; /* held by this instance's leader: renewed while its call runs */
    struct event *poll_ev;
    uint64_t wait_until_ms;
};

enum { POLL_MS = 20 };

enum { N_BUCKETS = 4096 };
static flight *buckets[N_BUCKETS];
static uint64_t coalesced_total;
static size_t flights_live;
static size_t replay_held; /* bytes in the flights' own replay copies */

uint64_t sl_coalesce_count(void)
{
    return coalesced_total;
}
size_t sl_coalesce_flights(void)
{
    return flights_live;
}
size_t sl_coalesce_replay_bytes(void)
{
    return replay_held;
}

static flight **bucket_of(const sl_cache_key *k)
{
    return &buckets[k->lo % N_BUCKETS];
}

static flight *find_flight(const sl_cache_key *k)
{
    for (flight *f = *bucket_of(k); f; f = f->hnext) {
        if (f->key.hi == k->hi && f->key.lo == k->lo)
            return f;
    }
    return NULL;
}

static void unlink_flight(flight *f)
{
    for (flight **pp = bucket_of(&f->key); *pp; pp = &(*pp)->hnext) {
        if (*pp == f) {
            *pp = f->hnext;
            return;
        }
    }
}

static void unlink_member(flight *f, member *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        f->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    f->n_members--;
}

/* ---- the replay: the stream so far, for late joiners ------------------------- */

/* The bytes the flight passed on so far, as up to two slices: the leader's
 * recording's (it keeps every stream for resumes), else the flight's own. */
static bool replay_sofar(const flight *f, sl_str *a, sl_str *b)
{
    const sl_rec *rc = f->leader->rec;
    if (rc)
        return sl_rec_sofar(rc, a, b);
    *a = sl_buf_str(&f->replay);
    *b = (sl_str){"", 0};
    return true;
}

/* n more SSE bytes passed (the leader's sinks already took them): past the
 * bound, or not all kept, the flight takes no more joins. */
static void replay_kept(flight *f, const char *p, size_t n)
{
    sl_str a, b;
    f->replay_len += n;
    if (f->replay_max && f->replay_len > f->replay_max) {
        f->closed = true;
    } else if (f->leader->rec) {
        f->closed = !replay_sofar(f, &a, &b);
    } else {
        size_t had = f->replay.cap;
        f->closed = sl_buf_append(&f->replay, p, n) != SL_OK;
        replay_held += f->replay.cap - had;
    }
}

static void replay_free(flight *f)
{
    replay_held -= f->replay.cap;
    sl_buf_free(&f->replay);
}

/* ---- the fan-out sink ---------------------------------------------------- */

static int on_flight_event(void *ud, sl_str event, sl_str data)
{
    SL_UNUSED(event);
    flight *f = ud;
    if (!(data.len == 6 && memcmp(data.p, "[DONE]", 6) == 0))
        sl_asm_chunk(f->assembler, data.p, data.len);
    return 0;
}

/* A plain follower of a stream needs it as one object. The leader's proxy
 * builds that when the cache wants it (r->want_assembled); otherwise the
 * flight makes its own assembler now, fed the bytes seen so far (the replay
 * buffer: a flight that outgrew it takes no more joins). */
static void flight_asm_start(flight *f)
{
    sl_req *r = f->leader;
    if (f->assembler || !f->sse || r->want_assembled || r->llm.api == SL_API_RESPONSES)
        return; /* the proxy's object: the assembled chat stream, or Responses' final object */
    f->assembler = malloc(sizeof(*f->assembler));
    f->sse_parser = malloc(sizeof(*f->sse_parser));
    if (!f->assembler || !f->sse_parser) {
        free(f->assembler);
        free(f->sse_parser);
        f->assembler = NULL;
        f->sse_parser = NULL;
        return; /* the follower gets a 502 at the end */
    }
    sl_asm_init_for(f->assembler, r->llm.api, r->conf->server.max_response_bytes);
    sl_sse_init(f->sse_parser, r->conf->server.max_response_bytes, on_flight_event, f);
    sl_str a, b;
    if (replay_sofar(f, &a, &b)) {
        sl_sse_feed(f->sse_parser, a.p, a.len);
        sl_sse_feed(f->sse_parser, b.p, b.len);
    }
}

static void flight_asm_free(flight *f)
{
    if (!f->assembler)
        return;
    sl_asm_free(f->assembler);
    sl_sse_free(f->sse_parser);
    free(f->assembler);
    free(f->sse_parser);
    f->assembler = NULL;
    f->sse_parser = NULL;
}

/* The stream as one object for a plain follower: the leader's, or ours. */
static int flight_object(const flight *f, sl_buf *out)
{
    const sl_req *leader = f->leader;
    if (f->assembler)
        return sl_asm_result(f->assembler, out);
    if (!leader->assembled.len)
        return SL_EINVAL;
    return sl_buf_append(out, leader->assembled.p, leader->assembled.len);
}

static void fan_head(sl_sink *s, sl_req *r, int status, bool sse)
{
    flight *f = (flight *)((char *)s - offsetof(flight, sink));
    f->headed = true;
    f->sse = sse;
    f->leader_sink->ops->head(f->leader_sink, r, status, sse);
    if (!sse)
        return;
    for (member *m = f->members; m; m = m->next) {
        if (m->stream) {
            m->live = true;
            sl_pipeline_stream_head(m->r, status);
        } else {
            flight_asm_start(f);
        }
    }
}

static void fan_data(sl_sink *s, sl_req *r, const char *p, size_t n)
{
    flight *f = (flight *)((char *)s - offsetof(flight, sink));
    f->leader_sink->ops->data(f->leader_sink, r, p, n);
    if (!f->sse) {
        if (sl_buf_append(&f->plain, p, n) != SL_OK)
            f->closed = true;
        return;
    }
    if (f->sse_parser)
        sl_sse_feed(f->sse_parser, p, n);
    if (!f->closed)
        replay_kept(f, p, n); /* too much to replay: later arrivals go upstream alone */
    for (member *m = f->members; m; m = m->next) {
        if (m->live)
            sl_pipeline_stream_data(m->r, p, n);
    }
}

/* Hands the finished flight's answer to one follower and completes it. */
static void deliver(flight *f, member *m)
{
    sl_req *leader = f->leader, *r = m->r;
    if (r->trace)
        r->trace->t_wait_end = sl_now_us();
    r->prompt_tokens = leader->prompt_tokens;
    r->completion_tokens = leader->completion_tokens;
    r->cached_tokens = leader->cached_tokens;
    r->cache_write_tokens = leader->cache_write_tokens;
    r->cache_write_1h_tokens = leader->cache_write_1h_tokens;
    r->reasoning_tokens = leader->reasoning_tokens;
    r->prompt_has_cache = leader->prompt_has_cache;
    r->provider = leader->provider;
    if (m->live) { /* got every chunk already, error event included */
        sl_req_finish(r);
        return;
    }
    bool ok = leader->status == 200 && !leader->error;
    if (f->sse && !m->stream) {
        sl_buf_reset(&r->body_out);
        if (ok && flight_object(f, &r->body_out) == SL_OK)
            r->status = 200;
        else
            sl_req_error(r, 502, "api_error", "upstream_stream_error", NULL,
                         leader->error ? leader->error : "the shared upstream stream failed");
    } else if (f->plain.err) { /* the shared copy could not be kept whole */
        sl_req_error(r, 502, "api_error", "upstream_error", NULL, "the shared answer was lost");
    } else if (!f->sse && m->stream && ok) {
        sl_buf sse;
        sl_buf_init(&sse, 0);
        int rc = r->llm.api == SL_API_RESPONSES
                     ? sl_responses_replay(f->plain.p, f->plain.len, &sse)
                     : sl_replay_sse_for(r->llm.api, f->plain.p, f->plain.len, r->llm.include_usage,
                                         8, &sse);
        if (rc == SL_OK) {
            sl_pipeline_stream_head(r, 200);
            sl_pipeline_stream_data(r, sse.p, sse.len);
        } else {
            sl_req_error(r, 502, "api_error", "upstream_error", NULL,
                         "the shared answer could not be replayed as a stream");
        }
        sl_buf_free(&sse);
    } else {
        r->status = leader->status;
        r->error = leader->error;
        sl_buf_reset(&r->body_out);
        sl_buf_append(&r->body_out, f->plain.p ? f->plain.p : "", f->plain.len);
        const char *ra = sl_req_header_get(leader, "Retry-After");
        if (ra)
            sl_req_header(r, "Retry-After", sl_arena_strndup(&r->arena, ra, strlen(ra)));
    }
    sl_req_finish(r);
}

static void fan_end(sl_sink *s, sl_req *r)
{
    flight *f = (flight *)((char *)s - offsetof(flight, sink));
    f->closed = true;
    unlink_flight(f);
    flights_live--;
    sl_lease_release(&f->lease); /* after the cache queued its SET: pollers find the entry */
    if (f->poll_ev)
        event_free(f->poll_ev);
    r->sink = f->leader_sink; /* before its end: a recording's end restores its own */
    r->abort_guard = f->prev_guard;
    f->leader_sink->ops->end(f->leader_sink, r);
    f->leader_ctx->leads = NULL;
    while (f->members) {
        member *m = f->members;
        unlink_member(f, m);
        m->ctx->joined = NULL;
        deliver(f, m);
        sl_req_release(m->r); /* the flight's reference */
    }
    flight_asm_free(f);
    replay_free(f);
    sl_buf_free(&f->plain);
    free(f->lk);
    free(f);
}

/* The leader's client sets the pace (followers' answers queue in their own sinks). */
static bool fan_congested(sl_sink *s, sl_req *r)
{
    flight *f = (flight *)((char *)s - offsetof(flight, sink));
    const sl_sink_ops *ops = f->leader_sink->ops;
    return ops->congested && ops->congested(f->leader_sink, r);
}

static const sl_sink_ops fan_ops = {
    .head = fan_head, .data = fan_data, .end = fan_end, .congested = fan_congested};

/* The leader's client left: keep the call going while followers wait. */
static bool leader_guard(sl_req *r)
{
    coalesce_ctx *ctx = sl_pipeline_ctx(r, &sl_stage_coalesce);
    flight *f = ctx ? ctx->leads : NULL;
    if (!f)
        return false;
    if (f->n_members == 0) /* nobody else waits: whoever guarded before us decides */
        return f->prev_guard && f->prev_guard(r);
    f->closed = true; /* no new joins onto a leaderless flight */
    return true;
}

/* ---- the stage -------------------------------------------------------------- */

static bool may_coalesce(const sl_req *r)
{
    if (!r->conf->coalesce.enabled || !r->has_key)
        return false;
    return !(r->cache_control && strstr(r->cache_control, "no-store"));
}

static sl_step join(sl_req *r, coalesce_ctx *ctx, flight *f)
{
    member *m = sl_arena_calloc(&r->arena, sizeof(*m));
    if (!m)
        return SL_NEXT;
    m->r = r;
    m->f = f;
    m->ctx = ctx;
    m->stream = r->llm.stream;
    m->next = f->members;
    if (f->members)
        f->members->prev = m;
    f->members = m;
    f->n_members++;
    sl_req_ref(r);
    ctx->joined = m;
    r->cache = SL_CACHE_COALESCED;
    r->led_by = f->leader->id;
    if (r->trace)
        r->trace->t_wait_start = sl_now_us();
    coalesced_total++;
    if (f->headed && f->sse && !m->stream)
        flight_asm_start(f);
    if (f->headed && f->sse && m->stream) { /* join mid-stream: replay what was sent */
        m->live = true;
        sl_pipeline_stream_head(r, 200);
        sl_str a, b;
        if (replay_sofar(f, &a, &b)) { /* (an open flight has all of it) */
            if (a.len)
                sl_pipeline_stream_data(r, a.p, a.len);
            if (b.len)
                sl_pipeline_stream_data(r, b.p, b.len);
        }
    }
    return SL_DONE;
}

/* ---- across instances ------------------------------------------------------ */

static int try_lock(flight *f);

/* The leader's wait is over: go upstream (NEXT), or it was answered. */
static void stop_waiting(flight *f, bool go_upstream)
{
    if (go_upstream)
        sl_pipeline_resume(f->leader);
}

/* A leader whose own client left with nobody else waiting ends here. */
static bool abandoned(flight *f)
{
    if (!f->leader->client_gone || f->n_members)
        return false;
    sl_pipeline_resume(f->leader); /* the pipeline answers 499 */
    return true;
}

static void on_poll_reply(void *ud, const redisReply *rep, int status)
{
    flight *f = ud;
    sl_req *r = f->leader;
    if (abandoned(f)) {
        sl_req_release(r);
        return;
    }
    if (status != SL_OK || !rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        stop_waiting(f, true); /* Redis trouble: call upstream ourselves */
    } else if (rep->element[0]->type == REDIS_REPLY_STRING) {
        sl_cache_outcome was = r->cache;
        r->cache = SL_CACHE_COALESCED;
        r->led_by = "another instance";
        if (!sl_cache_serve_entry(r, rep->element[0]->str, rep->element[0]->len, "l2")) {
            r->cache = was; /* not an entry: call upstream ourselves */
            r->led_by = NULL;
            stop_waiting(f, true);
        }
    } else if (rep->element[1]->type == REDIS_REPLY_NIL) {
        if (try_lock(f) != SL_OK) /* the holder is gone: take over */
            stop_waiting(f, true);
    } else if (sl_now_ms() >= f->wait_until_ms) {
        stop_waiting(f, true); /* waited long enough */
    } else {
        struct timeval tv = {0, POLL_MS * 1000};
        evtimer_add(f->poll_ev, &tv);
    }
    sl_req_release(r);
}

static void on_poll_timer(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    flight *f = arg;
    const char *argv[] = {"MGET", f->lk->value_key, f->lk->lock_key};
    sl_req_ref(f->leader);
    if (sl_redis_cmd(f->redis, on_poll_reply, f, 3, argv, NULL) != SL_OK) {
        sl_req_release(f->leader);
        if (!abandoned(f))
            stop_waiting(f, true);
    }
}

static void on_lock_reply(void *ud, const redisReply *rep, int status)
{
    flight *f = ud;
    sl_req *r = f->leader;
    if (abandoned(f)) {
        sl_req_release(r);
        return;
    }
    if (status == SL_OK && rep && rep->type == REDIS_REPLY_STATUS) {
        /* ours: call upstream, renewing the lease meanwhile */
        sl_lease_hold(&f->lease, f->leader->base, f->redis, f->lk->lock_key, f->lk->token,
                      sl_lease_ms(f->leader->conf));
        stop_waiting(f, true);
    } else if (status == SL_OK && rep && rep->type == REDIS_REPLY_NIL) {
        if (!f->poll_ev)
            f->poll_ev = evtimer_new(r->base, on_poll_timer, f);
        struct timeval tv = {0, POLL_MS * 1000};
        evtimer_add(f->poll_ev, &tv);
    } else {
        stop_waiting(f, true);
    }
    sl_req_release(r);
}

static int try_lock(flight *f)
{
    sl_req *r = f->leader;
    const sl_config *c = r->conf;
    int ttl = sl_lease_ms(c);
    if (!f->lk) {
        f->lk = malloc(sizeof(*f->lk));
        if (!f->lk)
            return SL_ENOMEM;
        uint8_t raw[16];
        sl_random_bytes(raw, sizeof raw);
        for (int i = 0; i < 16; i++)
            snprintf(f->lk->token + 2 * i, 3, "%02x", raw[i]);
        sl_cache_key_redis(&f->key, "lock", f->lk->lock_key);
        sl_cache_key_redis(&f->key, SL_CACHE_KEY_VERSION, f->lk->value_key);
        /* a live holder renews for as long as its call may run */
        f->wait_until_ms = sl_now_ms() + (uint64_t)ttl + (uint64_t)c->timeouts.total_ms;
    }
    char px[16];
    snprintf(px, sizeof px, "%d", ttl);
    const char *argv[] = {"SET", f->lk->lock_key, f->lk->token, "NX", "PX", px};
    sl_req_ref(r);
    int rc = sl_redis_cmd(f->redis, on_lock_reply, f, 6, argv, NULL);
    if (rc != SL_OK)
        sl_req_release(r);
    return rc;
}

static sl_step lead(sl_req *r, coalesce_ctx *ctx)
{
    flight *f = calloc(1, sizeof(*f));
    if (!f)
        return SL_NEXT;
    f->key = r->key;
    f->leader = r;
    f->leader_ctx = ctx;
    f->redis = r->env->redis;
    f->sink.ops = &fan_ops;
    f->leader_sink = r->sink;
    f->replay_max = r->conf->coalesce.max_replay_bytes;
    sl_buf_init(&f->replay, f->replay_max);
    sl_buf_init(&f->plain, r->conf->server.max_response_bytes);
    flight **b = bucket_of(&f->key);
    f->hnext = *b;
    *b = f;
    flights_live++;
    r->sink = &f->sink;
    f->prev_guard = r->abort_guard;
    r->abort_guard = leader_guard;
    ctx->leads = f;
    bool fresh_only = r->cache_control && strstr(r->cache_control, "no-cache");
    if (!f->redis || fresh_only || try_lock(f) != SL_OK)
        return SL_NEXT; /* local coalescing only */
    return SL_WAIT;
}

static sl_step coalesce_request(sl_req *r, void *ctx)
{
    if (!may_coalesce(r))
        return SL_NEXT;
    flight *f = find_flight(&r->key);
    if (!f)
        return lead(r, ctx);
    bool full = f->n_members >= r->conf->coalesce.max_waiters;
    if (f->closed || full)
        return SL_NEXT; /* beyond the bounds: go upstream alone */
    return join(r, ctx, f);
}

/* A follower's client left: detach it; if it was the last waiter and the
 * leader's client is gone too, cancel the upstream call. */
static void coalesce_abort(sl_req *r, void *vctx)
{
    coalesce_ctx *ctx = vctx;
    member *m = ctx->joined;
    if (!m || r->cache != SL_CACHE_COALESCED)
        return;
    flight *f = m->f;
    ctx->joined = NULL;
    unlink_member(f, m);
    if (f->n_members == 0 && f->leader->client_gone && !(f->prev_guard && f->prev_guard(f->leader)))
        sl_pipeline_abort_now(f->leader); /* unless its recording keeps it for a resume */
    sl_req_client_closed(r);
    sl_req_finish(r);
    sl_req_release(r); /* the flight's reference */
}

const sl_stage sl_stage_coalesce = {
    .name = "coalesce",
    .ctx_size = sizeof(coalesce_ctx),
    .on_request = coalesce_request,
    .on_abort = coalesce_abort,
};
