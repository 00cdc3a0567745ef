/* semantic.c — stage: answers a paraphrase from the cache, never the opposite answer.
 *
 * After an exact-cache miss, the last user turn is embedded with
 * cache.semantic.embedding_model through the pipeline itself (an internal
 * request PARENT-emb under the client's key: cached exactly, coalesced,
 * breaker-protected, metered and logged like any other; its cost is this
 * request's cache_overhead_usd, counted against the money saved). The
 * nearest stored question of the same partition (semantic.h: tenant, model,
 * everything but the last turn) above cache.semantic.threshold is a
 * candidate; the lexical guard may still refuse it (a negation, a number, a
 * quoted or capitalised term in only one of the two). An accepted candidate's
 * exact entry (L1, else Redis) is served like an exact hit, with
 * x-sluice-cache: semantic and x-sluice-similarity. Anything else — no
 * candidate, refused, the entry gone, the embedding late (timeout_ms) or
 * failed — is a miss and the request goes on; on the way back a fresh
 * answer the exact cache stores is indexed too (store/semstore.c), with the
 * same TTL. Off unless cache.semantic.enabled (or keys[].semantic), and per
 * request with `x-sluice-cache: semantic-off`. Store: r->env->semantic.
 *
 * Reads:  r->llm, r->tenant, r->key_conf, r->end_user, r->cache, r->has_key,
 *         r->key, r->cache_control, r->cache_opt, r->ttl_override_s; on the
 *         way back r->status, r->error, r->body_out / r->assembled.
 * Writes: on a hit r->cache (semantic), r->similarity, r->served_from, the
 *         answer (through sl_cache_serve_entry); always r->cache_overhead_usd.
 * Context: sem_state (the embedding call, its deadline, the question's
 *         partition and vector, the candidate being fetched). */
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>

#include "sluice/l1.h"
#include "sluice/metrics.h"
#include "sluice/redis.h"
#include "sluice/semstore.h"
#include "sluice/stages.h"

typedef struct sem_state {
    sl_req *r;
    sl_internal_sink sink;
    bool embedding;     /* the internal request is out: it holds a reference on r */
    struct event timer; /* the embedding's deadline */
    bool timer_on;
    bool resolved; /* r went on (or was answered): later callbacks only clean up */
    bool fetching; /* a Redis GET of the candidate's entry is out (holds a reference) */
    bool store;    /* index the answer on the way back */
    bool starting; /* inside on_request: an answer that comes at once (an exact
                      hit on the embedding) goes on without a resume */
    sl_str question;
    int turn;
    sl_cache_key partition;
    float *vec;
    uint32_t dim;
    sl_cache_key cand;
    float sim;
    const char *cand_id;
} sem_state;

static void count(const char *result)
{
    sl_metric_add(SL_M_CACHE_LOOKUPS, 1, (const char *const[]){result});
}

bool sl_semantic_wanted(const sl_config *c)
{
    for (size_t i = 0; i < c->n_keys; i++) {
        if (c->keys[i].semantic_set && c->keys[i].semantic)
            return true;
    }
    return c->cache.semantic.enabled;
}

static bool enabled_for(const sl_req *r)
{
    const sl_key_conf *k = r->key_conf;
    bool on = k && k->semantic_set ? k->semantic : r->conf->cache.semantic.enabled;
    return on && r->env->semantic && !(r->cache_opt && strcasestr(r->cache_opt, "semantic-off"));
}

/* The exact key's scope (cache.c): the tenant, "-" when shared, and the end
 * user under cache.scope: user. */
static int scope_of(sl_req *r, sl_str *out)
{
    const char *base = r->conf->cache.shared ? "-" : r->tenant;
    return sl_cache_scope_user(&r->arena, base, sl_req_cache_user(r), out);
}

/* r goes on to the next stage (a miss, or no semantic answer possible). */
static void go_on(sem_state *st)
{
    st->resolved = true;
    if (st->timer_on)
        evtimer_del(&st->timer);
    st->timer_on = false;
    if (!st->starting)
        sl_pipeline_resume(st->r);
}

/* The embedding's first vector, normalised, into the request's arena. */
static bool read_vector(sem_state *st, sl_str body)
{
    sl_arena tmp; /* the parsed answer is large (a node per component) and short-lived */
    sl_arena_init(&tmp, NULL, 0, 0);
    sl_json *root;
    sl_json_error e;
    bool ok = false;
    if (sl_json_parse(&tmp, body.p, body.len, NULL, &root, &e) == SL_OK) {
        const sl_json *data = sl_json_get(root, "data");
        const sl_json *v = data && data->type == SL_JSON_ARRAY && data->child
                               ? sl_json_get(data->child, "embedding")
                               : NULL;
        if (v && v->type == SL_JSON_ARRAY && v->n && v->n <= SL_SEM_MAX_DIM &&
            (st->vec = sl_arena_alloc(&st->r->arena, v->n * sizeof(float)))) {
            uint32_t i = 0;
            for (const sl_json *x = v->child; x && x->type == SL_JSON_NUMBER; x = x->next)
                st->vec[i++] = (float)x->num;
            st->dim = i;
            ok = i == v->n && sl_sem_normalise(st->vec, i) == SL_OK;
        }
    }
    sl_arena_free(&tmp);
    if (!ok)
        st->vec = NULL;
    return ok;
}

/* Serves the candidate's exact entry; false (nothing sent) when it is not one. */
static bool serve_hit(sem_state *st, const char *entry, size_t len, const char *layer)
{
    sl_req *r = st->r;
    int n_headers = r->n_headers;
    char *sim = sl_arena_printf(&r->arena, "%.3f", st->sim);
    if (!sim)
        return false;
    sl_req_header(r, "x-sluice-similarity", sim);
    r->cache = SL_CACHE_SEMANTIC;
    r->similarity = st->sim;
    r->served_from = st->cand_id;
    st->resolved = true;
    st->store = false;
    if (st->timer_on)
        evtimer_del(&st->timer);
    st->timer_on = false;
    count("hit_semantic");
    if (sl_cache_serve_entry(r, entry, len, layer)) {
        sl_semstore_touch(r->env->semantic, &st->cand);
        return true;
    }
    r->n_headers = n_headers;
    r->cache = SL_CACHE_MISS;
    r->similarity = 0;
    r->served_from = NULL;
    st->resolved = false;
    return false;
}

/* The candidate's answer is gone (expired, evicted, unreadable): a miss. */
static void candidate_gone(sem_state *st)
{
    sl_semstore_forget(st->r->env->semantic, &st->cand);
    count("semantic_miss");
    go_on(st);
}

static void on_entry(void *ud, const redisReply *reply, int status)
{
    sem_state *st = ud;
    sl_req *r = st->r;
    st->fetching = false;
    if (r->client_gone)
        go_on(st); /* the pipeline notices and answers 499 */
    else if (!(status == SL_OK && reply && reply->type == REDIS_REPLY_STRING &&
               serve_hit(st, reply->str, reply->len, "l2")))
        candidate_gone(st);
    sl_req_release(r); /* the GET's reference */
}

static void fetch_candidate(sem_state *st)
{
    sl_req *r = st->r;
    const sl_env *env = r->env;
    sl_l1_entry *e = sl_l1_get(env->l1, (sl_l1_key){st->cand.hi, st->cand.lo});
    if (e) {
        bool served = serve_hit(st, sl_l1_entry_data(e), sl_l1_entry_len(e), "l1");
        sl_l1_entry_unref(e);
        if (!served)
            candidate_gone(st);
        return;
    }
    char key[80];
    sl_cache_key_redis(&st->cand, SL_CACHE_KEY_VERSION, key);
    const char *argv[] = {"GET", key};
    size_t argl[] = {3, strlen(key)};
    sl_req_ref(r);
    st->fetching = true;
    if (!env->redis || sl_redis_cmd(env->redis, on_entry, st, 2, argv, argl) != SL_OK) {
        st->fetching = false;
        sl_req_release(r);
        candidate_gone(st);
    }
}

static void lookup(sem_state *st)
{
    sl_req *r = st->r;
    const sl_config *c = r->conf;
    sl_sem_hit hit;
    if (r->cache_control && strstr(r->cache_control, "no-cache")) {
        go_on(st); /* no lookup, but the answer is indexed */
        return;
    }
    if (!sl_semstore_nearest(r->env->semantic, &st->partition, st->vec, st->dim, &hit) ||
        hit.similarity < c->cache.semantic.threshold) {
        count("semantic_miss");
        go_on(st);
        return;
    }
    if (sl_sem_guard(st->question, hit.text, c->cache.semantic.negations,
                     c->cache.semantic.n_negations)) {
        count("semantic_refused"); /* a paraphrase by the numbers, not by meaning */
        go_on(st);
        return;
    }
    st->cand = hit.key;
    st->sim = hit.similarity;
    st->cand_id = sl_arena_strndup(&r->arena, hit.request_id.p, hit.request_id.len);
    fetch_candidate(st);
}

/* The embedding's answer (inside its sl_req_finish). */
static void on_embedding(void *ud, sl_req *child, int status, sl_str body)
{
    sem_state *st = ud;
    sl_req *r = st->r;
    st->embedding = false;
    r->cache_overhead_usd += child->cost_usd;
    r->cache_overhead_pusd += child->cost_pusd;
    if (!st->resolved) {
        if (status == 200 && read_vector(st, body)) {
            lookup(st);
        } else {
            st->store = false; /* provider down or no vector: skipped, never an error */
            count("semantic_skipped");
            go_on(st);
        }
    }
    sl_internal_sink_free(&st->sink);
    sl_req_release(r); /* the embedding's reference */
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd), SL_UNUSED(what);
    sem_state *st = arg;
    st->timer_on = false;
    if (st->resolved)
        return;
    st->store = false; /* no vector in time; the late one still fills the exact cache */
    count("semantic_skipped");
    go_on(st);
}

static bool start_embedding(sem_state *st)
{
    sl_req *r = st->r;
    sl_buf body;
    sl_buf_init(&body, 0);
    sl_buf_append_c(&body, "{\"model\":");
    sl_buf_json_cstr(&body, r->conf->cache.semantic.embedding_model);
    sl_buf_append_c(&body, ",\"input\":");
    sl_buf_json_str(&body, st->question.p, st->question.len);
    sl_buf_append_c(&body, "}");
    sl_internal_sink_init(&st->sink, 1u << 20, on_embedding, st);
    sl_req *child = body.err ? NULL
                             : sl_req_new_internal(r, "/v1/embeddings", SL_API_EMBEDDINGS,
                                                   sl_buf_str(&body), "emb", &st->sink.base);
    sl_buf_free(&body);
    if (!child) {
        sl_internal_sink_free(&st->sink);
        return false;
    }
    evtimer_assign(&st->timer, r->base, on_timeout, st);
    int ms = r->conf->cache.semantic.timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    st->timer_on = evtimer_add(&st->timer, &tv) == 0;
    st->embedding = true;
    sl_req_ref(r); /* until the embedding's answer arrives, however late */
    sl_pipeline_start(child);
    return true;
}

static bool eligible(sl_req *r, sem_state *st)
{
    sl_str scope;
    return r->cache == SL_CACHE_MISS && r->has_key && r->llm.api != SL_API_EMBEDDINGS &&
           r->llm.api != SL_API_COMPLETIONS && enabled_for(r) &&
           sl_sem_question(&r->arena, &r->llm, &st->question, &st->turn) == SL_OK &&
           scope_of(r, &scope) == SL_OK &&
           sl_sem_partition(&r->llm, scope, sl_str_c(r->conf->cache.semantic.embedding_model),
                            st->turn, &st->partition) == SL_OK;
}

static sl_step semantic_request(sl_req *r, void *ctx)
{
    sem_state *st = ctx;
    st->r = r;
    if (!eligible(r, st))
        return SL_NEXT;
    st->store = true;
    sl_req_ref(r); /* st lives in r's arena: it must outlive an answer given at once */
    st->starting = true;
    bool started = start_embedding(st);
    st->starting = false;
    sl_step step = r->completed ? SL_DONE : !started || st->resolved ? SL_NEXT : SL_WAIT;
    sl_req_release(r);
    return step;
}

static void semantic_abort(sl_req *r, void *ctx)
{
    SL_UNUSED(r);
    sem_state *st = ctx;
    if (st->resolved || st->fetching)
        return; /* the GET's callback resumes it */
    st->store = false;
    go_on(st); /* the pipeline answers 499; the embedding ends on its own */
}

/* The answer the exact cache stores (cache.c's rule) is indexed too. */
static void semantic_response(sl_req *r, void *ctx)
{
    sem_state *st = ctx;
    if (!st->store || !st->vec || r->cache != SL_CACHE_MISS || r->status != 200 || r->error ||
        r->client_gone || (r->streaming ? !r->assembled.len || r->assembled.err : !r->body_out.len))
        return;
    long ttl_s = r->ttl_override_s >= 0 ? r->ttl_override_s : r->conf->cache.ttl_s;
    if (ttl_s <= 0)
        return;
    int64_t now = sl_wall_ms();
    sl_sem_entry e = {
        .key = r->key,
        .partition = st->partition,
        .stored_at_ms = now,
        .expires_at_ms = now + ttl_s * 1000,
        .text = st->question,
        .request_id = sl_str_c(r->id),
        .dim = st->dim,
        .vec = st->vec,
    };
    if (e.request_id.len > SL_SEM_MAX_ID)
        e.request_id.len = SL_SEM_MAX_ID;
    sl_semstore_put(r->env->semantic, &e, (uint64_t)ttl_s * 1000u);
}

const sl_stage sl_stage_semantic = {
    .name = "semantic",
    .ctx_size = sizeof(sem_state),
    .on_request = semantic_request,
    .on_response = semantic_response,
    .on_abort = semantic_abort,
};
