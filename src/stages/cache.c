/* cache.c — stage: answers identical requests from the cache.
 *
 * Lookup order: L1 (in process) then L2 (Redis, bounded by its command
 * timeout; Redis slow or down is a miss, never an error). A hit answers as
 * JSON or, for a streaming client, replays the stored object as SSE. On the
 * way back a fresh, complete 200 answer is stored in L1 and L2 — a streamed
 * answer as the object the proxy assembled from its chunks, and only when the
 * stream ended with [DONE].
 *
 * Cache-Control: no-cache skips the lookup but stores; no-store does neither;
 * x-sluice-cache-ttl sets this entry's TTL. Keys are scoped by tenant unless
 * cache.shared. Entries hold: 8-byte stored-at (ms, wall) + the JSON body. */
#include <stdio.h>
#include <stdlib.h>

#include "sluice/cache.h"
#include "sluice/completion.h"
#include "sluice/log.h"
#include "sluice/metrics.h"
#include "sluice/redis.h"
#include "sluice/stages.h"

/* An entry: stored-at (ms, 8 bytes), prompt and completion tokens (4 + 4),
 * then the JSON answer. The usage rides in the header so a hit needs no parse. */
enum { ENTRY_HEADER = SL_CACHE_ENTRY_HEADER, REPLAY_PIECES = 8 };

static struct {
    sl_l1 *l1;
    sl_redis *redis;
    size_t l1_max;
} cache;

void sl_cache_setup(sl_l1 *l1, sl_redis *redis)
{
    cache.l1 = l1;
    cache.redis = redis;
}

static void serve(sl_req *r, const char *entry, size_t len, const char *layer);

typedef struct cache_state {
    sl_req *r;
    bool lookup_pending; /* an L2 GET is out: its callback owns a reference */
    bool store;          /* store the answer on the way back */
} cache_state;

static const char *route_scope(const sl_req *r)
{
    return r->conf->cache.shared ? "-" : r->tenant;
}

static void key_text(const sl_cache_key *k, char out[80])
{
    sl_cache_key_redis(k, SL_CACHE_KEY_VERSION, out);
}

/* Serves a stored entry (header + JSON) to the client. */
void sl_cache_serve_entry(sl_req *r, const char *entry, size_t len, const char *layer)
{
    serve(r, entry, len, layer);
}

static void serve(sl_req *r, const char *entry, size_t len, const char *layer)
{
    int64_t stored_at;
    memcpy(&stored_at, entry, sizeof stored_at);
    const char *json = entry + ENTRY_HEADER;
    size_t jlen = len - ENTRY_HEADER;
    if (r->cache != SL_CACHE_COALESCED) /* coalescing across instances serves through here too */
        r->cache = SL_CACHE_HIT;
    r->cache_detail = layer;
    int64_t age = (sl_wall_ms() - stored_at) / 1000;
    sl_req_header(r, "Age", sl_arena_printf(&r->arena, "%lld", (long long)(age > 0 ? age : 0)));
    uint32_t tokens[2];
    memcpy(tokens, entry + 8, sizeof tokens);
    r->prompt_tokens = tokens[0];
    r->completion_tokens = tokens[1];
    if (r->llm.stream) {
        sl_buf sse;
        sl_buf_init(&sse, 0);
        sl_replay_sse(json, jlen, r->llm.include_usage, REPLAY_PIECES, &sse);
        sl_pipeline_stream_head(r, 200);
        sl_pipeline_stream_data(r, sse.p, sse.len);
        sl_buf_free(&sse);
    } else {
        r->status = 200;
        sl_buf_append(&r->body_out, json, jlen);
    }
    sl_metric_add(SL_M_CACHE_LOOKUPS, 1,
                  (const char *const[]){layer[1] == '1' ? "hit_l1" : "hit_l2"});
    sl_pipeline_complete(r);
}

static void on_l2_reply(void *ud, const redisReply *reply, int status)
{
    cache_state *st = ud;
    sl_req *r = st->r;
    st->lookup_pending = false;
    if (r->client_gone) {
        sl_pipeline_resume(r); /* the pipeline notices and answers 499 */
    } else if (status == SL_OK && reply && reply->type == REDIS_REPLY_STRING &&
               reply->len > ENTRY_HEADER) {
        uint64_t ttl_ms = (uint64_t)r->conf->cache.ttl_s * 1000u;
        sl_l1_put(cache.l1, (sl_l1_key){r->key.hi, r->key.lo}, reply->str, reply->len, 0, ttl_ms);
        serve(r, reply->str, reply->len, "l2");
    } else {
        sl_metric_add(SL_M_CACHE_LOOKUPS, 1, (const char *const[]){"miss"});
        sl_pipeline_resume(r);
    }
    sl_req_release(r); /* the lookup's reference */
}

static bool cache_control_has(const sl_req *r, const char *what)
{
    return r->cache_control && strstr(r->cache_control, what);
}

static sl_step cache_request(sl_req *r)
{
    const sl_config *c = r->conf;
    if (r->llm.api == SL_API_MESSAGES || !c->cache.enabled || cache_control_has(r, "no-store")) {
        r->cache = SL_CACHE_BYPASS;
        return SL_NEXT;
    }
    if (sl_cache_key_compute(&r->llm, sl_str_c(route_scope(r)), &r->key) != SL_OK) {
        r->cache = SL_CACHE_BYPASS;
        return SL_NEXT;
    }
    r->has_key = true;
    r->cache = SL_CACHE_MISS;
    cache_state *st = sl_arena_calloc(&r->arena, sizeof(*st));
    if (!st)
        return SL_NEXT;
    st->r = r;
    st->store = true;
    r->want_assembled = r->llm.stream;
    r->stage_data[SL_SLOT_CACHE] = st;
    if (cache_control_has(r, "no-cache"))
        return SL_NEXT;
    sl_l1_entry *e = sl_l1_get(cache.l1, (sl_l1_key){r->key.hi, r->key.lo});
    if (e) {
        st->store = false;
        serve(r, sl_l1_entry_data(e), sl_l1_entry_len(e), "l1");
        sl_l1_entry_unref(e);
        return SL_DONE;
    }
    if (!cache.redis) {
        sl_metric_add(SL_M_CACHE_LOOKUPS, 1, (const char *const[]){"miss"});
        return SL_NEXT;
    }
    char key[80];
    key_text(&r->key, key);
    const char *argv[] = {"GET", key};
    size_t argl[] = {3, strlen(key)};
    sl_req_ref(r);
    st->lookup_pending = true;
    if (sl_redis_cmd(cache.redis, on_l2_reply, st, 2, argv, argl) != SL_OK) {
        st->lookup_pending = false;
        sl_req_release(r);
        sl_metric_add(SL_M_CACHE_LOOKUPS, 1, (const char *const[]){"miss"});
        return SL_NEXT; /* Redis down: a miss, no wait */
    }
    return SL_WAIT;
}

/* The stored form of the answer: the plain body, or the assembled stream. */
static bool entry_body(sl_req *r, sl_str *out)
{
    if (!r->streaming) {
        *out = sl_buf_str(&r->body_out);
        return out->len > 0;
    }
    if (!r->assembled.len)
        return false;
    *out = sl_buf_str(&r->assembled);
    return true;
}

static void cache_response(sl_req *r)
{
    cache_state *st = r->stage_data[SL_SLOT_CACHE];
    sl_str body;
    if (!st || !st->store || r->cache != SL_CACHE_MISS || r->status != 200 || r->error ||
        r->client_gone || !entry_body(r, &body))
        return;
    long ttl_s = r->ttl_override_s >= 0 ? r->ttl_override_s : r->conf->cache.ttl_s;
    if (ttl_s <= 0)
        return;
    size_t len = ENTRY_HEADER + body.len;
    char *entry = malloc(len);
    if (!entry)
        return;
    int64_t now = sl_wall_ms();
    uint32_t tokens[2] = {(uint32_t)SL_MAX(r->prompt_tokens, 0),
                          (uint32_t)SL_MAX(r->completion_tokens, 0)};
    memcpy(entry, &now, 8);
    memcpy(entry + 8, tokens, sizeof tokens);
    memcpy(entry + ENTRY_HEADER, body.p, body.len);
    sl_l1_put(cache.l1, (sl_l1_key){r->key.hi, r->key.lo}, entry, len, 0, (uint64_t)ttl_s * 1000u);
    if (cache.redis) {
        char key[80], px[32];
        key_text(&r->key, key);
        snprintf(px, sizeof px, "%ld", ttl_s * 1000);
        const char *argv[] = {"SET", key, entry, "PX", px};
        size_t argl[] = {3, strlen(key), len, 2, strlen(px)};
        sl_redis_cmd(cache.redis, NULL, NULL, 5, argv, argl); /* best effort */
    }
    free(entry);
}

const sl_stage sl_stage_cache = {
    .name = "cache",
    .on_request = cache_request,
    .on_response = cache_response,
};
