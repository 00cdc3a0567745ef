/* coalesce.c — stage: identical in-flight requests share one upstream call.
 *
 * The first request with a given cache key leads a *flight*: its sink is
 * wrapped by the flight's fan-out sink, so everything its upstream call
 * produces also reaches every follower. A follower that arrives later attaches
 * to the flight instead of calling upstream:
 *   - a streaming follower of a streaming flight first receives the chunks
 *     already sent (the replay buffer), then the live ones;
 *   - a plain follower of a streaming flight receives the assembled object;
 *   - a streaming follower of a plain flight receives the answer replayed as SSE.
 * A follower leaving only detaches itself. The leader's client leaving does
 * not cancel the call while followers wait (abort_guard); when the last waiter
 * is gone, the upstream call is cancelled. Bounds (waiters per flight, replay
 * bytes) send the excess upstream on its own. */
#include <stdlib.h>

#include "sluice/completion.h"
#include "sluice/sse.h"
#include "sluice/stages.h"

typedef struct flight flight;

typedef struct member {
    sl_req *r;
    flight *f;
    bool stream;         /* the follower asked for SSE */
    bool live;           /* it is receiving the flight's chunks as they come */
    struct member *next;
    struct member *prev;
} member;

struct flight {
    sl_cache_key key;
    struct flight *hnext;
    sl_req *leader;
    sl_sink sink;             /* the fan-out sink installed on the leader */
    sl_sink *leader_sink;     /* the leader's own client sink */
    member *members;
    size_t n_members;
    bool sse;                 /* the leader's answer is a stream */
    bool headed;
    bool closed;              /* no more joins (replay overflow, ending) */
    sl_buf replay;            /* SSE bytes so far, for late stream joiners */
    sl_buf plain;             /* the plain body, for followers */
    sl_asm assembler;         /* stream -> object, for plain followers */
    sl_sse sse_parser;
    bool asm_on;
};

enum { N_BUCKETS = 4096 };
static flight *buckets[N_BUCKETS];
static uint64_t coalesced_total;
static size_t flights_live;

uint64_t sl_coalesce_count(void) { return coalesced_total; }
size_t sl_coalesce_flights(void) { return flights_live; }

static flight **bucket_of(const sl_cache_key *k) { return &buckets[k->lo % N_BUCKETS]; }

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

/* ---- the fan-out sink ---------------------------------------------------- */

static int on_flight_event(void *ud, sl_str event, sl_str data)
{
    SL_UNUSED(event);
    flight *f = ud;
    if (!(data.len == 6 && memcmp(data.p, "[DONE]", 6) == 0))
        sl_asm_chunk(&f->assembler, data.p, data.len);
    return 0;
}

static void fan_head(sl_sink *s, sl_req *r, int status, bool sse)
{
    flight *f = (flight *)((char *)s - offsetof(flight, sink));
    f->headed = true;
    f->sse = sse;
    f->leader_sink->ops->head(f->leader_sink, r, status, sse);
    if (!sse)
        return;
    sl_asm_init(&f->assembler, r->llm.api == SL_API_COMPLETIONS, r->conf->server.max_response_bytes);
    sl_sse_init(&f->sse_parser, r->conf->server.max_response_bytes, on_flight_event, f);
    f->asm_on = true;
    for (member *m = f->members; m; m = m->next) {
        if (m->stream) {
            m->live = true;
            sl_pipeline_stream_head(m->r, status);
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
    sl_sse_feed(&f->sse_parser, p, n);
    if (!f->closed && sl_buf_append(&f->replay, p, n) != SL_OK)
        f->closed = true; /* too much to replay: later arrivals go upstream alone */
    for (member *m = f->members; m; m = m->next) {
        if (m->live)
            sl_pipeline_stream_data(m->r, p, n);
    }
}

/* Hands the finished flight's answer to one follower and completes it. */
static void deliver(flight *f, member *m)
{
    sl_req *leader = f->leader, *r = m->r;
    r->prompt_tokens = leader->prompt_tokens;
    r->completion_tokens = leader->completion_tokens;
    r->provider = leader->provider;
    if (m->live) { /* got every chunk already, error event included */
        sl_pipeline_complete(r);
        return;
    }
    bool ok = leader->status == 200 && !leader->error;
    if (f->sse && !m->stream) {
        sl_buf_reset(&r->body_out);
        if (ok && sl_asm_result(&f->assembler, &r->body_out) == SL_OK)
            r->status = 200;
        else
            sl_req_error(r, 502, "api_error", "upstream_stream_error", NULL,
                         leader->error ? leader->error : "the shared upstream stream failed");
    } else if (!f->sse && m->stream && ok) {
        sl_buf sse;
        sl_buf_init(&sse, 0);
        sl_replay_sse(f->plain.p, f->plain.len, r->llm.include_usage, 8, &sse);
        sl_pipeline_stream_head(r, 200);
        sl_pipeline_stream_data(r, sse.p, sse.len);
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
    sl_pipeline_complete(r);
}

static void fan_end(sl_sink *s, sl_req *r)
{
    flight *f = (flight *)((char *)s - offsetof(flight, sink));
    f->closed = true;
    unlink_flight(f);
    flights_live--;
    f->leader_sink->ops->end(f->leader_sink, r);
    r->sink = f->leader_sink;
    r->abort_guard = NULL;
    r->stage_data[SL_SLOT_COALESCE] = NULL;
    while (f->members) {
        member *m = f->members;
        unlink_member(f, m);
        m->r->stage_data[SL_SLOT_COALESCE] = NULL;
        deliver(f, m);
        sl_req_release(m->r); /* the flight's reference */
    }
    if (f->asm_on) {
        sl_asm_free(&f->assembler);
        sl_sse_free(&f->sse_parser);
    }
    sl_buf_free(&f->replay);
    sl_buf_free(&f->plain);
    free(f);
}

static const sl_sink_ops fan_ops = {.head = fan_head, .data = fan_data, .end = fan_end};

/* The leader's client left: keep the call going while followers wait. */
static bool leader_guard(sl_req *r)
{
    flight *f = r->stage_data[SL_SLOT_COALESCE];
    if (!f || f->n_members == 0)
        return false;
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

static sl_step join(sl_req *r, flight *f)
{
    member *m = sl_arena_calloc(&r->arena, sizeof(*m));
    if (!m)
        return SL_NEXT;
    m->r = r;
    m->f = f;
    m->stream = r->llm.stream;
    m->next = f->members;
    if (f->members)
        f->members->prev = m;
    f->members = m;
    f->n_members++;
    sl_req_ref(r);
    r->stage_data[SL_SLOT_COALESCE] = m;
    r->cache = SL_CACHE_COALESCED;
    r->led_by = f->leader->id;
    coalesced_total++;
    if (f->headed && f->sse && m->stream) { /* join mid-stream: replay what was sent */
        m->live = true;
        sl_pipeline_stream_head(r, 200);
        if (f->replay.len)
            sl_pipeline_stream_data(r, f->replay.p, f->replay.len);
    }
    return SL_DONE;
}

static sl_step lead(sl_req *r)
{
    flight *f = calloc(1, sizeof(*f));
    if (!f)
        return SL_NEXT;
    f->key = r->key;
    f->leader = r;
    f->sink.ops = &fan_ops;
    f->leader_sink = r->sink;
    sl_buf_init(&f->replay, r->conf->coalesce.max_replay_bytes);
    sl_buf_init(&f->plain, r->conf->server.max_response_bytes);
    flight **b = bucket_of(&f->key);
    f->hnext = *b;
    *b = f;
    flights_live++;
    r->sink = &f->sink;
    r->abort_guard = leader_guard;
    r->stage_data[SL_SLOT_COALESCE] = f;
    return SL_NEXT;
}

static sl_step coalesce_request(sl_req *r)
{
    if (!may_coalesce(r))
        return SL_NEXT;
    flight *f = find_flight(&r->key);
    if (!f)
        return lead(r);
    bool full = f->n_members >= r->conf->coalesce.max_waiters;
    if (f->closed || full)
        return SL_NEXT; /* beyond the bounds: go upstream alone */
    return join(r, f);
}

/* A follower's client left: detach it; if it was the last waiter and the
 * leader's client is gone too, cancel the upstream call. */
static void coalesce_abort(sl_req *r)
{
    member *m = r->stage_data[SL_SLOT_COALESCE];
    if (!m || r->cache != SL_CACHE_COALESCED)
        return;
    flight *f = m->f;
    r->stage_data[SL_SLOT_COALESCE] = NULL;
    unlink_member(f, m);
    if (f->n_members == 0 && f->leader->client_gone)
        sl_pipeline_abort_now(f->leader);
    r->status = 499;
    r->error = "client closed";
    sl_buf_reset(&r->body_out);
    sl_pipeline_complete(r);
    sl_req_release(r); /* the flight's reference */
}

const sl_stage sl_stage_coalesce = {
    .name = "coalesce",
    .on_request = coalesce_request,
    .on_abort = coalesce_abort,
};
