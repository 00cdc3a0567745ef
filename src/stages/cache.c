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
 * x-sluice-cache-ttl sets this entry's TTL (whole seconds, at most
 * cache.max_ttl_s; anything else is a 400). Keys are scoped by tenant unless
 * cache.shared, and by end user too under cache.scope: user. Sampled answers
 * (temperature absent or above 0) are cached unless cache.sampled is false.
 * The stored form of an answer is in cache_entry.h. Stores: r->env->l1 and
 * r->env->redis (NULL: L1 only).
 *
 * Reads:  r->llm, r->tenant, r->end_user, r->cache_control, r->cache_ttl,
 *         r->ttl_override_s; on the way back r->status, r->error, r->body_out
 *         or r->assembled, the tokens.
 * Writes: r->key, r->has_key, r->cache, r->cache_detail, r->want_assembled;
 *         on a hit the answer (body_out or an SSE replay), the tokens, Age;
 *         a 400 for a bad x-sluice-cache-ttl.
 * Context: cache_state (an L2 lookup out, whether to store on the way back).
 *
 * The fast path: a request whose exact bytes (with its API and scope) were
 * seen before is answered from L1 without parsing its JSON or building its
 * canonical key. When the full path hits or stores an L1 entry, it adds an
 * alias to it: XXH3-128 of (key version, API, scope, raw body) -> the entry's
 * key plus what the parse derived from those bytes (model, stream flags, the
 * limits' estimates, whether it is sampled). The parse stage, after auth,
 * asks sl_cache_fast(); the limits, meter, route and log stages then run as
 * always. An alias dies with its entry, so a miss there (or any
 * Cache-Control or x-sluice-cache-ttl header) takes the full path. */
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

#include "sluice/l1.h"
#include "sluice/cache_entry.h"
#include "sluice/completion.h"
#include "sluice/log.h"
#include "sluice/metrics.h"
#include "sluice/redis.h"
#include "sluice/responses.h"
#include "sluice/stages.h"
#include "sluice/trace.h"

enum { REPLAY_PIECES = 8 };

static bool serve(sl_req *r, const sl_cache_entry *e, const char *layer);

/* sluice_cache_lookups_total{result}: the stage's three results, each
 * series kept (LOOKUP_*: an index into both tables) */
enum { LOOKUP_HIT_L1, LOOKUP_HIT_L2, LOOKUP_MISS };

static void count_lookup(int result)
{
    static const char *const names[] = {"hit_l1", "hit_l2", "miss"};
    static sl_metric_ref series[SL_ARRAY_LEN(names)];
    sl_metric_add_ref(&series[result], SL_M_CACHE_LOOKUPS, 1, &names[result]);
}

typedef struct cache_state { /* the stage's context */
    sl_req *r;
    bool lookup_pending; /* an L2 GET is out: its callback owns a reference */
    bool store;          /* store the answer on the way back */
} cache_state;

/* Tenant (or "-" when shared), and under cache.scope: user the end user:
 * x-sluice-user when sent, else the body's `user`. Anthropic's clients: also
 * the API version and betas they asked for, which change answers. */
static int key_scope(sl_req *r, sl_str *out)
{
    const char *base = r->conf->cache.shared ? "-" : r->tenant;
    if (r->anthropic_version || r->anthropic_beta) {
        const char *b = sl_arena_printf(&r->arena, "%s|%s|%s", base,
                                        r->anthropic_version ? r->anthropic_version : "",
                                        r->anthropic_beta ? r->anthropic_beta : "");
        base = b ? b : base;
    }
    return sl_cache_scope_user(&r->arena, base, sl_req_cache_user(r), out);
}

/* cache.sampled: false keeps only answers to temperature 0. Absent means the
 * provider's default (1), so sampled. Embeddings are never sampled. */
static bool sampled(const sl_req *r)
{
    if (r->llm.api == SL_API_EMBEDDINGS)
        return false;
    const sl_json *t = sl_json_get(r->llm.root, "temperature");
    return !(t && t->type == SL_JSON_NUMBER && t->num == 0);
}

/* x-sluice-cache-ttl: whole seconds (blanks around allowed), clamped to max
 * (a huge value overflowed the milliseconds it becomes). */
static int parse_ttl(const char *s, long max, long *out)
{
    while (*s == ' ' || *s == '\t')
        s++;
    long v = 0;
    size_t digits = 0;
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        if (v <= max) /* max is at most ten years of seconds: no overflow */
            v = v * 10 + (*s - '0');
    }
    while (*s == ' ' || *s == '\t')
        s++;
    if (!digits || *s)
        return SL_EINVAL;
    *out = v > max ? max : v;
    return SL_OK;
}

static bool ttl_header_ok(sl_req *r)
{
    if (!r->cache_ttl)
        return true;
    long max = r->conf->cache.max_ttl_s;
    if (parse_ttl(r->cache_ttl, max, &r->ttl_override_s) == SL_OK)
        return true;
    sl_req_error(r, 400, "invalid_request_error", "invalid_header", "x-sluice-cache-ttl",
                 sl_arena_printf(&r->arena,
                                 "Invalid value for header 'x-sluice-cache-ttl': expected a whole "
                                 "number of seconds (0 to %ld).",
                                 max));
    return false;
}

/* ---- the exact-bytes fast path ------------------------------------------ */

/* What the parse derived from the bytes, as an alias carries it. */
typedef struct fast_meta {
    int64_t max_tokens;
    uint64_t prompt_bytes;
    uint8_t stream, include_usage, sampled;
    uint16_t model_len;
} fast_meta;
enum { FAST_META_MAX = 256 };

/* Only requests whose answer depends on nothing but their bytes, API and
 * scope: a header that changes the cache's behaviour takes the full path. */
static bool fast_eligible(const sl_req *r)
{
    return r->env->l1 && r->conf->cache.enabled && r->llm.api != SL_API_COUNT_TOKENS &&
           !r->cache_control && !r->cache_ttl && !r->anthropic_version &&
           !r->anthropic_beta; /* they join the scope (key_scope) */
}

static void raw_key(sl_req *r)
{
    /* what else decides the parse and the key: the scope's parts that are
     * not in the body (tenant or shared; under cache.scope: user the
     * x-sluice-user header, the body's user being in the bytes) and the JSON
     * bounds the parse enforces (a reload may tighten them) */
    char scope[512 + 2 * sizeof(int)];
    const char *base = r->conf->cache.shared ? "-" : r->tenant;
    const char *user = r->conf->cache.scope_user && r->end_user ? r->end_user : "";
    size_t bl = SL_MIN(strlen(base), 255), ul = SL_MIN(strlen(user), 255);
    memcpy(scope, base, bl);
    scope[bl] = r->conf->cache.scope_user ? 'u' : '\0';
    memcpy(scope + bl + 1, user, ul);
    size_t sl = bl + 1 + ul;
    memcpy(scope + sl, &r->conf->server.max_json_members, sizeof(int));
    memcpy(scope + sl + sizeof(int), &r->conf->server.max_json_values, sizeof(int));
    uint64_t seed = XXH3_64bits_withSeed(scope, sl + 2 * sizeof(int),
                                         ((uint64_t)r->llm.api << 8) | SL_CACHE_KEY_VERSION[1]);
    XXH128_hash_t h = XXH3_128bits_withSeed(r->body.p, r->body.len, seed);
    r->raw_key = (sl_cache_key){h.high64, h.low64};
    r->has_raw_key = true;
}

bool sl_cache_fast(sl_req *r)
{
    if (!fast_eligible(r))
        return false;
    raw_key(r);
    size_t len;
    sl_l1_key k;
    const char *p =
        sl_l1_alias_get(r->env->l1, (sl_l1_key){r->raw_key.hi, r->raw_key.lo}, &len, &k);
    fast_meta m;
    if (!p || len < sizeof m)
        return false;
    memcpy(&m, p, sizeof m);
    if (m.sampled && !r->conf->cache.sampled)
        return false; /* reloaded to cache.sampled: false: the full path bypasses */
    char *model = len == sizeof m + m.model_len
                      ? sl_arena_strndup(&r->arena, p + sizeof m, m.model_len)
                      : NULL;
    if (!model)
        return false;
    r->llm.model = (sl_str){model, m.model_len};
    r->llm.stream = m.stream;
    r->llm.include_usage = m.include_usage;
    r->llm.max_tokens = (long)m.max_tokens;
    r->llm.prompt_bytes = (size_t)m.prompt_bytes;
    r->llm.root = NULL;
    r->key = (sl_cache_key){k.hi, k.lo};
    r->has_key = true;
    r->fast_path = true;
    return true;
}

/* After a full-path hit or store: the next request with these exact bytes
 * takes the fast path. */
static void add_alias(const sl_req *r)
{
    if (!r->has_raw_key || r->fast_path || r->llm.model.len > FAST_META_MAX)
        return;
    char buf[sizeof(fast_meta) + FAST_META_MAX];
    fast_meta m = {
        .max_tokens = r->llm.max_tokens,
        .prompt_bytes = r->llm.prompt_bytes,
        .stream = r->llm.stream,
        .include_usage = r->llm.include_usage,
        .sampled = sampled(r),
        .model_len = (uint16_t)r->llm.model.len,
    };
    memcpy(buf, &m, sizeof m);
    memcpy(buf + sizeof m, r->llm.model.p, m.model_len);
    sl_l1_alias_put(r->env->l1, (sl_l1_key){r->key.hi, r->key.lo},
                    (sl_l1_key){r->raw_key.hi, r->raw_key.lo}, buf, sizeof m + m.model_len);
}

/* A fast-path request that missed L1 after all (the entry went while limits
 * waited): it is parsed now, for the upstream call, as the full path does. */
static bool parse_late(sl_req *r)
{
    if (!r->fast_path)
        return true;
    r->fast_path = false;
    sl_http_error e = {0};
    const sl_json_limits lim = {
        .max_members = (size_t)r->conf->server.max_json_members,
        .max_nodes = (size_t)r->conf->server.max_json_values,
    };
    if (sl_llm_req_parse(&r->arena, r->llm.api, r->body.p, r->body.len, &lim, &r->llm, &e) == SL_OK)
        return true;
    sl_req_error_from(r, &e);
    return false;
}

static void key_text(const sl_cache_key *k, char out[80])
{
    sl_cache_key_redis(k, SL_CACHE_KEY_VERSION, out);
}

/* Serves a stored entry (header + JSON) to the client; false, with nothing
 * sent, when the entry is not one (the caller treats it as a miss). */
bool sl_cache_serve_entry(sl_req *r, const char *entry, size_t len, const char *layer)
{
    sl_cache_entry e;
    return sl_cache_entry_decode(entry, len, &e) == SL_OK && serve(r, &e, layer);
}

static bool serve(sl_req *r, const sl_cache_entry *entry, const char *layer)
{
    const sl_cache_entry e = *entry;
    sl_buf sse = {0};
    if (r->llm.stream) {
        sl_buf_init(&sse, 0);
        int rc = r->llm.api == SL_API_RESPONSES
                     ? sl_responses_replay(e.json.p, e.json.len, &sse)
                     : sl_replay_sse_for(r->llm.api, e.json.p, e.json.len, r->llm.include_usage,
                                         REPLAY_PIECES, &sse);
        if (rc != SL_OK) {
            sl_buf_free(&sse);
            return false;
        }
    }
    /* coalescing across instances and the semantic level serve through here too */
    if (r->cache != SL_CACHE_COALESCED && r->cache != SL_CACHE_SEMANTIC)
        r->cache = SL_CACHE_HIT;
    r->cache_detail = layer;
    if (r->trace)
        r->trace->t_cache_end = sl_now_us();
    int64_t age = (sl_wall_coarse_ms() - e.stored_at_ms) / 1000; /* whole seconds */
    char num[24];
    size_t n = sl_fmt_i64(age > 0 ? age : 0, num);
    sl_req_header(r, "Age", sl_arena_strndup(&r->arena, num, n));
    r->prompt_tokens = e.prompt_tokens;
    r->completion_tokens = e.completion_tokens;
    /* the saving is what the call cost: its cache reads and writes at their prices */
    r->cached_tokens = e.cached_tokens;
    r->cache_write_tokens = e.cache_write_tokens;
    r->cache_write_1h_tokens = e.cache_write_1h_tokens;
    r->reasoning_tokens = e.reasoning_tokens;
    r->prompt_has_cache = e.prompt_has_cache;
    if (r->llm.stream) {
        sl_pipeline_stream_head(r, 200);
        sl_pipeline_stream_data(r, sse.p, sse.len);
        sl_buf_free(&sse);
    } else {
        r->status = 200;
        sl_buf_append(&r->body_out, e.json.p, e.json.len);
    }
    if (r->cache != SL_CACHE_SEMANTIC) /* counted by the semantic stage */
        count_lookup(layer[1] == '1' ? LOOKUP_HIT_L1 : LOOKUP_HIT_L2);
    sl_req_finish(r);
    return true;
}

/* What is left of an entry's life when it comes back from Redis: L1 must not
 * keep it longer than the shared copy lives. */
static uint64_t remaining_ttl_ms(const sl_req *r, const sl_cache_entry *e)
{
    int64_t ttl = (int64_t)r->conf->cache.ttl_s * 1000, age = sl_wall_ms() - e->stored_at_ms;
    return age < 0 ? (uint64_t)ttl : age >= ttl ? 0 : (uint64_t)(ttl - age);
}

/* Tracing: the lookup ended in a miss at layer (the cache lookup span). */
static void note_miss(sl_req *r, const char *layer)
{
    if (r->trace) {
        r->trace->t_cache_end = sl_now_us();
        r->trace->cache_layer = layer;
    }
}

static void on_l2_reply(void *ud, const redisReply *reply, int status)
{
    cache_state *st = ud;
    sl_req *r = st->r;
    st->lookup_pending = false;
    sl_cache_entry e;
    if (r->client_gone) {
        sl_pipeline_resume(r); /* the pipeline notices and answers 499 */
    } else if (status == SL_OK && reply && reply->type == REDIS_REPLY_STRING &&
               sl_cache_entry_decode(reply->str, reply->len, &e) == SL_OK && serve(r, &e, "l2")) {
        uint64_t ttl_ms = remaining_ttl_ms(r, &e);
        if (ttl_ms > 0 && sl_l1_put(r->env->l1, (sl_l1_key){r->key.hi, r->key.lo}, reply->str,
                                    reply->len, 0, ttl_ms) == SL_OK)
            add_alias(r);
    } else {
        count_lookup(LOOKUP_MISS);
        note_miss(r, "l2");
        sl_pipeline_resume(r);
    }
    sl_req_release(r); /* the lookup's reference */
}

static bool cache_control_has(const sl_req *r, const char *what)
{
    return r->cache_control && strstr(r->cache_control, what);
}

/* Asks Redis for the entry (bounded by its command timeout): SL_WAIT while the
 * GET is out, SL_NEXT (a miss) in embedded mode or when Redis is away. */
static sl_step lookup_l2(sl_req *r, cache_state *st)
{
    sl_redis *redis = r->env->redis;
    if (!redis) {
        count_lookup(LOOKUP_MISS);
        note_miss(r, "l1");
        return SL_NEXT;
    }
    char key[80];
    key_text(&r->key, key);
    const char *argv[] = {"GET", key};
    size_t argl[] = {3, strlen(key)};
    sl_req_ref(r);
    st->lookup_pending = true;
    /* a lookup may read a replica (redis.read_from_replicas): a stale miss is harmless */
    if (sl_redis_cmd_at(redis, key, argl[1], SL_REDIS_REPLICA_OK, 0, on_l2_reply, st, 2, argv,
                        argl) != SL_OK) {
        st->lookup_pending = false;
        sl_req_release(r);
        count_lookup(LOOKUP_MISS);
        note_miss(r, "l2");
        return SL_NEXT; /* Redis down: a miss, no wait */
    }
    return SL_WAIT;
}

static sl_step cache_request(sl_req *r, void *ctx)
{
    const sl_config *c = r->conf;
    cache_state *st = ctx;
    st->r = r;
    if (!ttl_header_ok(r))
        return sl_stage_answer(r);
    if (r->llm.api == SL_API_COUNT_TOKENS || !c->cache.enabled ||
        cache_control_has(r, "no-store") ||
        (!c->cache.sampled && !r->fast_path && sampled(r))) { /* the fast path checked */
        r->cache = SL_CACHE_BYPASS;
        return SL_NEXT;
    }
    sl_str scope;
    if (!r->fast_path &&
        (key_scope(r, &scope) != SL_OK || sl_cache_key_compute(&r->llm, scope, &r->key) != SL_OK)) {
        r->cache = SL_CACHE_BYPASS;
        return SL_NEXT;
    }
    r->has_key = true;
    r->cache = SL_CACHE_MISS;
    st->store = true;
    r->want_assembled = r->llm.stream;
    if (cache_control_has(r, "no-cache"))
        return SL_NEXT;
    if (r->trace)
        r->trace->t_cache_start = sl_now_us();
    const sl_env *env = r->env;
    sl_l1_entry *e = sl_l1_get(env->l1, (sl_l1_key){r->key.hi, r->key.lo});
    if (e) {
        bool served = sl_cache_serve_entry(r, sl_l1_entry_data(e), sl_l1_entry_len(e), "l1");
        sl_l1_entry_unref(e);
        if (served) {
            add_alias(r);
            st->store = false;
            return SL_DONE;
        }
        /* an entry that cannot be served (a stream replay of a body copied
         * from Redis that does not parse): drop it, answer as a miss */
        sl_l1_del(env->l1, (sl_l1_key){r->key.hi, r->key.lo});
    }
    if (!parse_late(r))
        return sl_stage_answer(r);
    return lookup_l2(r, st);
}

/* The stored form of the answer: the plain body, or the assembled stream. */
static bool entry_body(sl_req *r, sl_str *out)
{
    if (!r->streaming) {
        *out = sl_buf_str(&r->body_out);
        return out->len > 0;
    }
    if (!r->assembled.len || r->assembled.err)
        return false;
    *out = sl_buf_str(&r->assembled);
    return true;
}

static void cache_response(sl_req *r, void *ctx)
{
    cache_state *st = ctx;
    sl_str body;
    if (!st->store || r->cache != SL_CACHE_MISS || r->status != 200 || r->error || r->client_gone ||
        !entry_body(r, &body))
        return;
    long ttl_s = r->ttl_override_s >= 0 ? r->ttl_override_s : r->conf->cache.ttl_s;
    if (ttl_s <= 0)
        return;
    sl_cache_entry e = {
        .stored_at_ms = sl_wall_ms(),
        .prompt_tokens = (uint32_t)SL_MAX(r->prompt_tokens, 0),
        .completion_tokens = (uint32_t)SL_MAX(r->completion_tokens, 0),
        .json = body,
        .cached_tokens = (uint32_t)SL_MAX(r->cached_tokens, 0),
        .cache_write_tokens = (uint32_t)SL_MAX(r->cache_write_tokens, 0),
        .cache_write_1h_tokens = (uint32_t)SL_MAX(r->cache_write_1h_tokens, 0),
        .reasoning_tokens = (uint32_t)SL_MAX(r->reasoning_tokens, 0),
        .prompt_has_cache = r->prompt_has_cache,
    };
    size_t len = sl_cache_entry_size(body.len);
    char *entry = malloc(len);
    if (!entry)
        return;
    sl_cache_entry_encode(&e, entry);
    if (sl_l1_put(r->env->l1, (sl_l1_key){r->key.hi, r->key.lo}, entry, len, 0,
                  (uint64_t)ttl_s * 1000u) == SL_OK)
        add_alias(r);
    if (r->env->redis) {
        char key[80], px[32];
        key_text(&r->key, key);
        snprintf(px, sizeof px, "%ld", ttl_s * 1000);
        const char *argv[] = {"SET", key, entry, "PX", px};
        size_t argl[] = {3, strlen(key), len, 2, strlen(px)};
        sl_redis_cmd(r->env->redis, NULL, NULL, 5, argv, argl); /* best effort */
    }
    free(entry);
}

const sl_stage sl_stage_cache = {
    .name = "cache",
    .ctx_size = sizeof(cache_state),
    .on_request = cache_request,
    .on_response = cache_response,
};
