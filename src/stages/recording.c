/* recording.c — live recordings of answers: SSE ids, listeners, stored
 * answers (recording.h).
 *
 * Reads:  r->id, r->tenant, r->conf (streams, idempotency), r->env->redis,
 *         r->content_type, r->client_gone.
 * Writes: r->sink (the recorder while it runs), r->rec, r->abort_guard;
 *         a listener's answer (status, body, stream). */
#include "sluice/recording.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

#include "sluice/lease.h"
#include "sluice/redis.h"

typedef struct listener {
    sl_req *r;
    sl_rec *rc;
    size_t after;    /* events the listener already has */
    bool origin_ids; /* a resumed stream: events carry the recording's ids */
    bool live;       /* receiving events as they come */
    sl_rec_unserved unserved;
    struct listener *next, *prev;
} listener;

struct sl_rec {
    sl_req *r;      /* the producer, until the end */
    sl_sink sink;   /* the recorder installed on r */
    sl_sink *inner; /* r's sink before it */
    bool (*prev_guard)(sl_req *r);
    char rid[64];
    char *tenant;
    bool is_stream; /* found by request id, stored for streams.resume_s */
    bool has_idem;  /* leads an idempotency key, stored for idempotency.ttl_s */
    sl_cache_key idem, fp;
    char lock_key[96];
    char token[33];
    sl_lease lease; /* the idempotency lock, renewed while the call runs */
    bool headed, sse, overflow;
    bool replayed; /* the answer came from a stored one: not stored again */
    int status;
    char *content_type;
    sl_buf body;     /* the plain body, or the event frames without ids */
    size_t n_events; /* SSE events passed on */
    sl_buf tail;     /* a partial event */
    listener *listeners;
    sl_rec *next, *prev; /* every live recording */
};

enum { STORE_BYTES = 32u << 20 }; /* stored answers in process, LRU beyond it */

static sl_rec *live_recs;
static sl_answers *store;

int sl_rec_init(const sl_env *env)
{
    SL_UNUSED(env);
    if (!store)
        store = sl_answers_new(STORE_BYTES);
    return store ? SL_OK : SL_ENOMEM;
}

void sl_rec_fini(void)
{
    sl_answers_free(store);
    store = NULL;
}

sl_answers *sl_rec_store(void)
{
    return store;
}

const sl_cache_key *sl_rec_fp(const sl_rec *rc)
{
    return &rc->fp;
}
const char *sl_rec_tenant(const sl_rec *rc)
{
    return rc->tenant ? rc->tenant : "";
}
bool sl_rec_is_sse(const sl_rec *rc)
{
    return rc->headed ? rc->sse : rc->r && rc->r->llm.stream;
}

bool sl_rec_sofar(const sl_rec *rc, sl_str *frames, sl_str *partial)
{
    if (!rc->headed || !rc->sse || rc->overflow || rc->body.err || rc->tail.err)
        return false;
    *frames = sl_buf_str(&rc->body);
    *partial = sl_buf_str(&rc->tail);
    return true;
}

sl_rec *sl_rec_find_idem(const sl_cache_key *idem)
{
    for (sl_rec *rc = live_recs; rc; rc = rc->next) {
        if (rc->has_idem && rc->idem.hi == idem->hi && rc->idem.lo == idem->lo)
            return rc;
    }
    return NULL;
}

sl_rec *sl_rec_find_stream(const char *tenant, const char *rid)
{
    for (sl_rec *rc = live_recs; rc; rc = rc->next) {
        if (rc->is_stream && strcmp(rc->rid, rid) == 0 && strcmp(sl_rec_tenant(rc), tenant) == 0)
            return rc;
    }
    return NULL;
}

bool sl_rec_parse_id(const char *id, char *rid, size_t *seq)
{
    const char *dash = id ? strrchr(id, '-') : NULL;
    if (!dash || dash == id || (size_t)(dash - id) >= 64 || !dash[1])
        return false;
    char *end;
    unsigned long long n = strtoull(dash + 1, &end, 10);
    if (*end || dash[1] < '0' || dash[1] > '9')
        return false;
    memcpy(rid, id, (size_t)(dash - id));
    rid[dash - id] = '\0';
    *seq = (size_t)n;
    return true;
}

/* ---- sending ----------------------------------------------------------------- */

/* "id: RID-N\n" then the event, into out (no printf: once per event). */
static void frame_with_id(sl_buf *out, const char *rid, size_t n, const char *p, size_t len)
{
    sl_buf_reset(out);
    sl_buf_append(out, "id: ", 4);
    sl_buf_append_c(out, rid);
    sl_buf_append(out, "-", 1);
    sl_buf_append_i64(out, (int64_t)n);
    sl_buf_append(out, "\n", 1);
    sl_buf_append(out, p, len);
}

/* One event to r, with the id line `rid-n` in front. */
static void send_numbered(sl_req *r, const char *rid, size_t n, const char *p, size_t len)
{
    static sl_buf out; /* reused: no allocation per event once warm */
    frame_with_id(&out, rid, n, p, len);
    if (!out.err)
        sl_pipeline_stream_data(r, out.p, out.len);
}

/* The end of the frame starting at p (after its blank line: \n\n or
 * \r\n\r\n, as a relayed provider may frame it), or NULL. */
static const char *frame_end(const char *p, const char *end)
{
    for (const char *q = p; q < end && (q = memchr(q, '\n', (size_t)(end - q))); q++) {
        if (q + 1 < end && q[1] == '\n')
            return q + 2;
        if (q + 2 < end && q[1] == '\r' && q[2] == '\n')
            return q + 3;
    }
    return NULL;
}

void sl_rec_send_frames(sl_req *r, sl_str frames, size_t after, const char *rid)
{
    const char *p = frames.p, *end = frames.p + frames.len;
    for (size_t n = 1; p < end; n++) {
        const char *e = frame_end(p, end);
        if (!e)
            e = end;
        if (n > after)
            send_numbered(r, rid, n, p, (size_t)(e - p));
        p = e;
    }
}

/* The recording headed as a stream: the listener gets the head and what passed. */
/* A duplicate's answer says it is one (set only now: one that ends up
 * running on its own is not a replay). */
static void mark_replay(const listener *l)
{
    if (l->unserved)
        sl_req_header(l->r, "x-sluice-idempotent-replay", "true");
}

static void start_listener(sl_rec *rc, listener *l)
{
    mark_replay(l);
    sl_pipeline_stream_head(l->r, rc->status);
    if (l->origin_ids)
        sl_rec_send_frames(l->r, sl_buf_str(&rc->body), l->after, rc->rid);
    else if (rc->body.len)
        sl_pipeline_stream_data(l->r, rc->body.p, rc->body.len);
    l->live = true;
}

static void unlink_listener(sl_rec *rc, listener *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        rc->listeners = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->rc = NULL;
}

bool sl_rec_listen(sl_rec *rc, sl_req *r, size_t after, bool origin_ids, sl_rec_unserved unserved)
{
    if (rc->overflow)
        return false; /* not all of it was kept */
    listener *l = sl_arena_calloc(&r->arena, sizeof(*l));
    if (!l)
        return false;
    l->r = r;
    l->rc = rc;
    l->after = after;
    l->origin_ids = origin_ids;
    l->unserved = unserved;
    l->next = rc->listeners;
    if (rc->listeners)
        rc->listeners->prev = l;
    rc->listeners = l;
    sl_req_ref(r);
    if (rc->headed && rc->sse)
        start_listener(rc, l);
    return true;
}

bool sl_rec_unlisten(sl_req *r)
{
    for (sl_rec *rc = live_recs; rc; rc = rc->next) {
        for (listener *l = rc->listeners; l; l = l->next) {
            if (l->r != r)
                continue;
            unlink_listener(rc, l);
            sl_req_client_closed(r);
            sl_req_finish(r);
            sl_req_release(r); /* the listener's reference */
            return true;
        }
    }
    return false;
}

/* ---- the recorder sink --------------------------------------------------------- */

static sl_rec *of_sink(sl_sink *s)
{
    return (sl_rec *)((char *)s - offsetof(sl_rec, sink));
}

static void rec_head(sl_sink *s, sl_req *r, int status, bool sse)
{
    sl_rec *rc = of_sink(s);
    rc->headed = true;
    rc->sse = sse;
    rc->status = status;
    if (r->content_type && !rc->content_type)
        rc->content_type = strdup(r->content_type);
    rc->inner->ops->head(rc->inner, r, status, sse);
    if (!sse)
        return;
    for (listener *l = rc->listeners; l; l = l->next)
        start_listener(rc, l);
}

static void cancel_cb(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    sl_req *r = arg;
    if (!r->completed)
        sl_pipeline_abort_now(r);
    sl_req_release(r);
}

/* No room left to keep the stream: without a client nobody can resume it,
 * so the call stops (from the loop: this runs inside the producer's write). */
static void overflowed(sl_rec *rc)
{
    rc->overflow = true;
    sl_req *r = rc->r;
    if (!r->client_gone)
        return;
    sl_req_ref(r);
    struct timeval now = {0, 0};
    if (event_base_once(r->base, -1, EV_TIMEOUT, cancel_cb, r, &now) != 0)
        sl_req_release(r);
}

static void emit_frame(sl_rec *rc, const char *p, size_t n)
{
    size_t seq = ++rc->n_events;
    sl_req *r = rc->r;
    static sl_buf out;
    frame_with_id(&out, rc->rid, seq, p, n);
    if (!out.err)
        rc->inner->ops->data(rc->inner, r, out.p, out.len);
    size_t cap = r->conf->streams.max_resumable_bytes;
    if (!rc->overflow && (rc->body.len + n > cap || sl_buf_append(&rc->body, p, n) != SL_OK))
        overflowed(rc);
    for (listener *l = rc->listeners; l; l = l->next) {
        if (!l->live)
            continue;
        if (l->origin_ids)
            send_numbered(l->r, rc->rid, seq, p, n);
        else
            sl_pipeline_stream_data(l->r, p, n);
    }
}

/* Splits [p, p+n) into frames; returns the bytes of complete frames. */
static size_t emit_frames(sl_rec *rc, const char *p, size_t n)
{
    const char *at = p, *end = p + n, *e;
    while (at < end && (e = frame_end(at, end))) {
        emit_frame(rc, at, (size_t)(e - at));
        at = e;
    }
    return (size_t)(at - p);
}

static void rec_data(sl_sink *s, sl_req *r, const char *p, size_t n)
{
    sl_rec *rc = of_sink(s);
    if (!rc->sse) {
        if (!rc->overflow && sl_buf_append(&rc->body, p, n) != SL_OK)
            rc->overflow = true;
        rc->inner->ops->data(rc->inner, r, p, n);
        return;
    }
    if (!rc->tail.len) { /* the usual case: whole events, no copy */
        size_t done = emit_frames(rc, p, n);
        if (done < n)
            sl_buf_append(&rc->tail, p + done, n - done);
        return;
    }
    sl_buf_append(&rc->tail, p, n);
    size_t done = emit_frames(rc, rc->tail.p, rc->tail.len);
    sl_buf_consume(&rc->tail, done);
}

/* What is worth keeping: a stream that reached its client, or a plain answer
 * that is not a passing failure (5xx, 429, 408, a client that left). */
static bool worth_keeping(const sl_rec *rc)
{
    if (!rc->headed || rc->overflow || rc->body.err)
        return false;
    if (rc->sse)
        return true;
    int s = rc->status;
    return s > 0 && s < 500 && s != 429 && s != 408 && s != 499;
}

static void persist(sl_rec *rc, const sl_config *c, bool worth)
{
    sl_buf blob;
    sl_buf_init(&blob, 0);
    sl_answer a = {
        .fp = rc->fp,
        .tenant = {sl_rec_tenant(rc), strlen(sl_rec_tenant(rc))},
        .status = rc->status,
        .sse = rc->sse,
        .n_events = rc->n_events,
        .content_type =
            rc->content_type ? (sl_str){rc->content_type, strlen(rc->content_type)} : SL_STR(""),
        .body = sl_buf_str(&rc->body),
    };
    char rkey[96];
    if (worth && !rc->replayed && sl_answer_encode(&a, &blob) == SL_OK) {
        if (rc->is_stream && rc->sse && c->streams.resume_s > 0) {
            sl_cache_key k;
            sl_answers_key("s", sl_rec_tenant(rc), rc->rid, &k);
            sl_answers_redis_key("s", &k, "v", rkey);
            sl_answers_put(store, rc->r->env->redis, &k, rkey, blob.p, blob.len,
                           (uint64_t)c->streams.resume_s * 1000u);
        }
        if (rc->has_idem) {
            sl_answers_redis_key("i", &rc->idem, "v", rkey);
            sl_answers_put(store, rc->r->env->redis, &rc->idem, rkey, blob.p, blob.len,
                           (uint64_t)c->idempotency.ttl_s * 1000u);
        }
    }
    sl_buf_free(&blob);
    sl_lease_release(&rc->lease); /* after the SET, on the same connection */
}

/* The recording's answer, to one listener that waited for all of it. */
static void deliver_plain(sl_rec *rc, sl_req *r)
{
    r->status = rc->status ? rc->status : 502;
    r->streaming = false;
    if (rc->content_type)
        r->content_type = sl_arena_strndup(&r->arena, rc->content_type, strlen(rc->content_type));
    sl_buf_reset(&r->body_out);
    sl_buf_append(&r->body_out, rc->body.p ? rc->body.p : "", rc->body.len);
    if (rc->overflow)
        sl_req_error(r, 502, "api_error", "upstream_error", NULL, "the shared answer was lost");
}

static void deliver_all(sl_rec *rc, bool worth)
{
    while (rc->listeners) {
        listener *l = rc->listeners;
        sl_req *r = l->r;
        unlink_listener(rc, l);
        if (!worth && l->unserved && !l->live) {
            l->unserved(r); /* runs on its own */
        } else {
            if (!l->live) {
                mark_replay(l);
                deliver_plain(rc, r);
            }
            sl_req_finish(r);
        }
        sl_req_release(r); /* the listener's reference */
    }
}

static void rec_free(sl_rec *rc)
{
    if (rc->prev)
        rc->prev->next = rc->next;
    else
        live_recs = rc->next;
    if (rc->next)
        rc->next->prev = rc->prev;
    sl_lease_stop(&rc->lease);
    sl_buf_free(&rc->body);
    sl_buf_free(&rc->tail);
    free(rc->tenant);
    free(rc->content_type);
    free(rc);
}

static void rec_end(sl_sink *s, sl_req *r)
{
    sl_rec *rc = of_sink(s);
    if (rc->sse && rc->tail.len) /* a last event without its blank line */
        emit_frame(rc, rc->tail.p, rc->tail.len);
    r->sink = rc->inner;
    r->rec = NULL;
    r->abort_guard = rc->prev_guard;
    rc->inner->ops->end(rc->inner, r);
    bool worth = worth_keeping(rc);
    persist(rc, r->conf, worth);
    rc->has_idem = rc->is_stream = false; /* no new listeners from here on */
    deliver_all(rc, worth);
    rec_free(rc);
}

/* The client paces the stream while it is there; a gone one does not. */
static bool rec_congested(sl_sink *s, sl_req *r)
{
    sl_rec *rc = of_sink(s);
    const sl_sink_ops *ops = rc->inner->ops;
    return !r->client_gone && ops->congested && ops->congested(rc->inner, r);
}

static const sl_sink_ops rec_ops = {
    .head = rec_head, .data = rec_data, .end = rec_end, .congested = rec_congested};

static void drained_cb(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    sl_req *r = arg;
    void (*fn)(sl_req *) = r->on_drained;
    r->on_drained = NULL;
    if (fn && !r->completed)
        fn(r);
    sl_req_release(r);
}

/* A producer paused for the client that left would wait for ever: it goes
 * on (from the loop: the client's connection is being torn down here). */
static void unpause(sl_req *r)
{
    if (!r->on_drained)
        return;
    sl_req_ref(r);
    struct timeval now = {0, 0};
    if (event_base_once(r->base, -1, EV_TIMEOUT, drained_cb, r, &now) != 0)
        sl_req_release(r);
}

/* The client left: keep the call going while its answer can still be used. */
static bool rec_guard(sl_req *r)
{
    sl_rec *rc = r->rec;
    if (!rc)
        return false;
    bool keep = (rc->prev_guard && rc->prev_guard(r)) ||
                rc->has_idem || /* the retry gets the answer instead of a second call */
                (rc->is_stream && r->conf->streams.resume_s > 0 && !rc->overflow);
    if (keep)
        unpause(r);
    return keep;
}

sl_rec *sl_rec_start(sl_req *r)
{
    if (r->rec)
        return r->rec;
    sl_rec *rc = calloc(1, sizeof(*rc));
    if (!rc)
        return NULL;
    rc->r = r;
    rc->sink.ops = &rec_ops;
    rc->inner = r->sink;
    snprintf(rc->rid, sizeof rc->rid, "%s", r->id);
    rc->tenant = strdup(r->tenant ? r->tenant : "");
    rc->is_stream = r->llm.stream;
    sl_buf_init(&rc->body, r->conf->server.max_response_bytes);
    sl_buf_init(&rc->tail, r->conf->server.max_response_bytes);
    rc->prev_guard = r->abort_guard;
    r->abort_guard = rec_guard;
    r->sink = &rc->sink;
    r->rec = rc;
    rc->next = live_recs;
    if (live_recs)
        live_recs->prev = rc;
    live_recs = rc;
    return rc;
}

void sl_rec_set_idem(sl_rec *rc, const sl_cache_key *idem, const sl_cache_key *fp)
{
    rc->has_idem = true;
    rc->idem = *idem;
    rc->fp = *fp;
}

void sl_rec_set_lock(sl_rec *rc, sl_redis *redis, const char *lock_key, const char *token)
{
    snprintf(rc->lock_key, sizeof rc->lock_key, "%s", lock_key);
    snprintf(rc->token, sizeof rc->token, "%s", token);
    if (redis && !rc->lease.renew_ev)
        sl_lease_hold(&rc->lease, rc->r->base, redis, rc->lock_key, rc->token,
                      sl_lease_ms(rc->r->conf));
}

void sl_rec_replayed(sl_rec *rc)
{
    rc->replayed = true;
}
