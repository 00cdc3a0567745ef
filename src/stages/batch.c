/* batch.c — stage: concurrent embeddings share one upstream call.
 *
 * /v1/embeddings requests for the same provider, model, tenant scope and
 * parameters (every member but `input`: dimensions, encoding_format, ...)
 * that arrive within embeddings.batch.window_ms join one *batch*: its inputs
 * go upstream as one input array of at most embeddings.batch.max_inputs. When
 * the answer comes back each member gets its own vectors, in its own order,
 * and its own usage: its share of the batch's prompt tokens by its inputs'
 * token estimates (largest remainders, so the shares sum exactly to the
 * batch's usage), which is what it is priced at. `x-sluice-batch: N` says how
 * many requests shared the call.
 *
 * With the cache on, every input's vector is also kept on its own (in the
 * L1, keyed by the group and the input's bytes): a request whose inputs are
 * partly known sends only the new ones and its answer is reassembled in its
 * order, by index, never by position in the batch; all known: answered at
 * once as a hit. A batch whose call fails (a 4xx for one bad input, a 5xx, no
 * answer) or whose answer does not match its inputs sends every member on
 * its own, through the proxy with its retries and fallbacks.
 *
 * Reads:  r->llm (root, model, api, stream), r->tenant, r->provider_idx,
 *         r->cache_control, r->env->l1, conf (embeddings.batch, cache).
 * Writes: a member's answer (status, body_out, prompt_tokens, provider,
 *         x-sluice-batch, x-sluice-provider), r->cache (hit when all inputs were known).
 * Context: batch_ctx, the member's inputs and the batch it waits in. */
#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "sluice/json.h"
#include "sluice/l1.h"
#include "sluice/metrics.h"
#include "sluice/stages.h"
#include "sluice/trace.h"
#include "sluice/upstream.h"

typedef struct batch batch;

typedef struct batch_ctx {
    sl_req *r;
    batch *b;     /* the batch it waits in, or NULL */
    size_t n;     /* inputs */
    sl_str *in;   /* each input's JSON bytes */
    sl_str *vec;  /* each input's vector (JSON), once known */
    long *cached; /* tokens of a vector that came from the cache, else -1 */
    size_t first; /* its first input's index in the batch */
    size_t n_new; /* inputs it sent in the batch */
    bool gone;    /* its client left while it waited */
    struct batch_ctx *next;
} batch_ctx;

struct batch {
    sl_cache_key group;
    batch *next_open;
    batch_ctx *members;
    size_t n_members, n_inputs;
    sl_buf body;         /* the upstream body being built */
    sl_buf answer;       /* what came back */
    struct event *timer; /* the window */
    sl_call *call;
    sl_req *first; /* whose configuration and provider the call uses */
};

static batch *open_batches;

/* ---- inputs, groups, the per-input cache ------------------------------------ */

static bool is_token_array(const sl_json *v)
{
    return v->type == SL_JSON_ARRAY && (!v->child || v->child->type == SL_JSON_NUMBER);
}

/* The request's inputs: a string, a token array, or an array of either. */
static bool take_inputs(sl_req *r, batch_ctx *ctx)
{
    const sl_json *in = sl_json_get(r->llm.root, "input");
    if (!in)
        return false;
    bool many = in->type == SL_JSON_ARRAY && !is_token_array(in);
    ctx->n = many ? in->n : 1;
    if (!ctx->n)
        return false;
    ctx->in = sl_arena_calloc(&r->arena, ctx->n * sizeof(sl_str));
    ctx->vec = sl_arena_calloc(&r->arena, ctx->n * sizeof(sl_str));
    ctx->cached = sl_arena_calloc(&r->arena, ctx->n * sizeof(long));
    if (!ctx->in || !ctx->vec || !ctx->cached)
        return false;
    const sl_json *v = many ? in->child : in;
    for (size_t i = 0; i < ctx->n && v; i++, v = many ? v->next : NULL) {
        if (v->type != SL_JSON_STRING && !is_token_array(v))
            return false;
        ctx->in[i] = v->raw;
        ctx->cached[i] = -1;
    }
    return true;
}

/* Provider, tenant scope and every member but `input`, as sent. */
static void group_of(const sl_req *r, sl_cache_key *out)
{
    XXH3_state_t st;
    XXH3_128bits_reset(&st);
    const char *scope = r->conf->cache.shared ? "-" : r->tenant;
    XXH3_128bits_update(&st, scope, strlen(scope) + 1);
    XXH3_128bits_update(&st, &r->provider_idx, sizeof r->provider_idx);
    for (const sl_json *m = r->llm.root->child; m; m = m->next) {
        if (sl_str_eq_c(m->key, "input"))
            continue;
        XXH3_128bits_update(&st, m->key.p, m->key.len);
        XXH3_128bits_update(&st, ":", 1);
        XXH3_128bits_update(&st, m->raw.p, m->raw.len);
        XXH3_128bits_update(&st, ",", 1);
    }
    XXH128_hash_t h = XXH3_128bits_digest(&st);
    *out = (sl_cache_key){h.high64, h.low64};
}

static sl_l1_key input_key(const sl_cache_key *group, sl_str input)
{
    XXH3_state_t st;
    XXH3_128bits_reset(&st);
    XXH3_128bits_update(&st, "emb1", 4);
    XXH3_128bits_update(&st, group, sizeof(*group));
    XXH3_128bits_update(&st, input.p, input.len);
    XXH128_hash_t h = XXH3_128bits_digest(&st);
    return (sl_l1_key){h.high64, h.low64};
}

static bool per_input_cache(const sl_req *r)
{
    return r->conf->cache.enabled && r->conf->cache.ttl_s > 0 && r->env->l1 &&
           !(r->cache_control && strstr(r->cache_control, "no-store"));
}

static long estimate(sl_str input)
{
    return (long)(input.len / 4) + 1;
}

/* Fills the vectors the cache knows ("TOKENS\nVECTOR"); returns how many are missing. */
static size_t lookup_inputs(sl_req *r, batch_ctx *ctx, const sl_cache_key *group)
{
    size_t missing = 0;
    bool fresh_only = r->cache_control && strstr(r->cache_control, "no-cache");
    for (size_t i = 0; i < ctx->n; i++) {
        sl_l1_entry *e = per_input_cache(r) && !fresh_only
                             ? sl_l1_get(r->env->l1, input_key(group, ctx->in[i]))
                             : NULL;
        const char *p = e ? sl_l1_entry_data(e) : NULL;
        const char *nl = p ? memchr(p, '\n', sl_l1_entry_len(e)) : NULL;
        if (nl) {
            size_t vl = sl_l1_entry_len(e) - (size_t)(nl + 1 - p);
            char *copy = sl_arena_strndup(&r->arena, nl + 1, vl);
            ctx->vec[i] = (sl_str){copy, copy ? vl : 0};
            ctx->cached[i] = strtol(p, NULL, 10);
        }
        if (e)
            sl_l1_entry_unref(e);
        missing += !ctx->vec[i].len;
        if (!ctx->vec[i].len)
            ctx->cached[i] = -1;
    }
    return missing;
}

/* ---- answers ------------------------------------------------------------------ */

/* The member's own answer: its vectors in its order, its usage. */
static void write_answer(sl_req *r, batch_ctx *ctx, sl_str model, long tokens)
{
    sl_buf *b = &r->body_out;
    sl_buf_reset(b);
    sl_buf_append_c(b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < ctx->n; i++) {
        sl_buf_printf(b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "",
                      i);
        sl_buf_append_str(b, ctx->vec[i]);
        sl_buf_append_c(b, "}");
    }
    sl_buf_append_c(b, "],\"model\":");
    sl_buf_append_str(b, model);
    sl_buf_printf(b, ",\"usage\":{\"prompt_tokens\":%ld,\"total_tokens\":%ld}}", tokens, tokens);
    r->status = 200;
    r->prompt_tokens = tokens;
    r->completion_tokens = 0;
}

static sl_step answer_from_cache(sl_req *r, batch_ctx *ctx)
{
    long tokens = 0;
    for (size_t i = 0; i < ctx->n; i++)
        tokens += ctx->cached[i];
    sl_buf m;
    sl_buf_init(&m, 0);
    sl_buf_json_str(&m, r->llm.model.p, r->llm.model.len);
    write_answer(r, ctx, sl_buf_str(&m), tokens);
    sl_buf_free(&m);
    r->cache = SL_CACHE_HIT;
    r->cache_detail = "l1";
    return sl_stage_answer(r);
}

/* ---- the batch's call ---------------------------------------------------------- */

static void free_batch(batch *b)
{
    if (b->timer)
        event_free(b->timer);
    sl_buf_free(&b->body);
    sl_buf_free(&b->answer);
    free(b);
}

static void close_open(batch *b)
{
    for (batch **pp = &open_batches; *pp; pp = &(*pp)->next_open) {
        if (*pp == b) {
            *pp = b->next_open;
            return;
        }
    }
}

/* The batch did not work out: every member goes upstream on its own. */
static void each_alone(batch *b)
{
    while (b->members) {
        batch_ctx *m = b->members;
        b->members = m->next;
        m->b = NULL;
        if (!m->gone)
            sl_pipeline_resume(m->r); /* the proxy, with the member's own body */
        sl_req_release(m->r);
    }
    free_batch(b);
}

/* Shares of total by weights w[0..n) that sum exactly to total (largest remainders). */
static void split_tokens(long total, const long *w, long *share, size_t n)
{
    long sum = 0, given = 0;
    for (size_t i = 0; i < n; i++)
        sum += w[i];
    double *rem = calloc(n ? n : 1, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        double exact = sum ? (double)total * (double)w[i] / (double)sum : 0;
        share[i] = (long)exact;
        if (rem)
            rem[i] = exact - (double)share[i];
        given += share[i];
    }
    for (long left = total - given; left > 0 && n; left--) {
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            best = rem && rem[i] > rem[best] ? i : best;
        share[best]++;
        if (rem)
            rem[best] = -1;
    }
    free(rem);
}

/* Keeps one input's vector for later requests: "TOKENS\nVECTOR". */
static void keep_vector(sl_req *r, const sl_cache_key *group, sl_str input, sl_str vec, long tok)
{
    char head[24];
    int hl = snprintf(head, sizeof head, "%ld\n", tok);
    size_t len = (size_t)hl + vec.len;
    char *v = malloc(len);
    if (!v)
        return;
    memcpy(v, head, (size_t)hl);
    memcpy(v + hl, vec.p, vec.len);
    sl_l1_put(r->env->l1, input_key(group, input), v, len, 0,
              (uint64_t)r->conf->cache.ttl_s * 1000u);
    free(v);
}

/* One member's part of the batch's answer: vecs and shares are the batch's, by index. */
static void serve_member(batch *b, batch_ctx *m, sl_str *vecs, const long *shares, sl_str model)
{
    sl_req *r = m->r;
    long billed = 0, usage = 0;
    size_t k = m->first;
    bool keep = per_input_cache(r);
    for (size_t i = 0; i < m->n; i++) {
        if (m->cached[i] >= 0) {
            usage += m->cached[i];
            continue;
        }
        char *copy = sl_arena_strndup(&r->arena, vecs[k].p, vecs[k].len);
        m->vec[i] = (sl_str){copy ? copy : "null", copy ? vecs[k].len : 4};
        billed += shares[k];
        if (keep)
            keep_vector(r, &b->group, m->in[i], vecs[k], shares[k]);
        k++;
    }
    write_answer(r, m, model, usage + billed);
    r->prompt_tokens = billed; /* what this call cost it; known inputs cost nothing */
    r->provider = b->first->conf->providers[b->first->provider_idx].name;
    sl_req_header(r, "x-sluice-provider", r->provider);
    sl_req_header(r, "x-sluice-batch", sl_arena_printf(&r->arena, "%zu", b->n_members));
    sl_req_finish(r);
}

/* Reads the answer's vectors by index; false when it does not match the inputs. */
static bool read_vectors(batch *b, const sl_json *root, sl_str *vecs, long *total)
{
    const sl_json *data = sl_json_get(root, "data");
    const sl_json *u = sl_json_get(sl_json_get(root, "usage"), "prompt_tokens");
    if (!data || data->type != SL_JSON_ARRAY || data->n != b->n_inputs)
        return false;
    *total = u && u->type == SL_JSON_NUMBER ? (long)sl_json_int(u, 0, 1e12, 0) : 0;
    for (const sl_json *e = data->child; e; e = e->next) {
        const sl_json *ix = sl_json_get(e, "index"), *v = sl_json_get(e, "embedding");
        long long i = ix && ix->type == SL_JSON_NUMBER ? sl_json_int(ix, 0, 1e9, -1) : -1;
        if (!v || i < 0 || (size_t)i >= b->n_inputs || vecs[i].p)
            return false;
        vecs[i] = v->raw;
    }
    return true;
}

/* Each input's token estimate, in batch order. */
static void batch_weights(batch *b, long *w)
{
    for (batch_ctx *m = b->members; m; m = m->next) {
        size_t k = m->first;
        for (size_t i = 0; i < m->n; i++) {
            if (m->cached[i] < 0)
                w[k++] = estimate(m->in[i]);
        }
    }
}

static bool distribute(batch *b)
{
    char first[4096];
    sl_arena scratch;
    sl_arena_init(&scratch, first, sizeof first, 0);
    sl_json *root = NULL;
    sl_json_error err;
    size_t n = b->n_inputs;
    sl_str *vecs = calloc(n, sizeof(*vecs));
    long *w = calloc(n, sizeof(long)), *shares = calloc(n, sizeof(long)), total = 0;
    bool ok = vecs && w && shares &&
              sl_json_parse(&scratch, b->answer.p, b->answer.len, NULL, &root, &err) == SL_OK &&
              read_vectors(b, root, vecs, &total);
    if (ok) {
        const sl_json *model = sl_json_get(root, "model");
        sl_str mraw = model ? model->raw : SL_STR("null");
        batch_weights(b, w);
        split_tokens(total, w, shares, n);
        while (b->members) {
            batch_ctx *m = b->members;
            b->members = m->next;
            m->b = NULL;
            if (!m->gone)
                serve_member(b, m, vecs, shares, mraw);
            sl_req_release(m->r);
        }
    }
    free(vecs);
    free(w);
    free(shares);
    sl_arena_free(&scratch);
    return ok;
}

static int on_data(void *ud, sl_call *c, const char *p, size_t n)
{
    SL_UNUSED(c);
    batch *b = ud;
    return sl_buf_append(&b->answer, p, n) == SL_OK ? 0 : 1;
}

static void on_done(void *ud, sl_call *c, int rc, const char *detail)
{
    SL_UNUSED(detail);
    batch *b = ud;
    b->call = NULL;
    int status = rc == SL_OK ? sl_call_status(c) : 0;
    if (status == 200 && distribute(b)) {
        free_batch(b);
        return;
    }
    each_alone(b); /* one bad input must not fail the others */
}

static const sl_call_hooks batch_hooks = {.on_data = on_data, .on_done = on_done};

static struct curl_slist *batch_headers(const sl_req *r, const sl_provider_conf *p)
{
    struct curl_slist *h = sl_header_list_append(NULL, "Content-Type: application/json");
    h = sl_header_list_append(h, "Expect:");
    char line[1024];
    if (p->api_key && p->api_key[0]) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", p->api_key);
        h = sl_header_list_append(h, line);
    }
    snprintf(line, sizeof line, "X-Request-Id: %s", r->id);
    return sl_header_list_append(h, line);
}

static void flush(batch *b)
{
    close_open(b);
    if (b->timer)
        evtimer_del(b->timer);
    sl_buf_append_c(&b->body, "]}");
    sl_req *r = b->first;
    const sl_config *cf = r->conf;
    const sl_provider_conf *p = &cf->providers[r->provider_idx];
    sl_call_opts o = {
        .url = sl_arena_printf(&r->arena, "%s/embeddings", p->base_url),
        .headers = batch_headers(r, p),
        .body = b->body.p,
        .body_len = b->body.len,
        .connect_ms = cf->timeouts.connect_ms,
        .first_byte_ms = cf->timeouts.first_byte_ms,
        .total_ms = cf->timeouts.total_ms,
    };
    if (r->trace) /* the batch's call continues its first member's span */
        o.traceparent = sl_arena_printf(&r->arena, "traceparent: %s", r->trace->header);
    sl_metric_add(SL_M_EMBED_BATCHES, 1, NULL);
    sl_metric_add(SL_M_EMBED_BATCH_INPUTS, (double)b->n_inputs, NULL);
    int err;
    b->call = b->body.err ? NULL : sl_call_start(&o, &batch_hooks, b, &err);
    if (!b->call) {
        if (b->body.err)
            sl_header_list_free(o.headers);
        each_alone(b);
    }
}

static void on_window(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    flush(arg);
}

/* ---- the stage -------------------------------------------------------------- */

static batch *open_batch(sl_req *r, const sl_cache_key *group)
{
    batch *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->group = *group;
    b->first = r;
    sl_buf_init(&b->body, r->conf->server.max_body_bytes);
    sl_buf_init(&b->answer, r->conf->server.max_response_bytes);
    sl_buf_append_c(&b->body, "{");
    for (const sl_json *m = r->llm.root->child; m; m = m->next) {
        if (sl_str_eq_c(m->key, "input"))
            continue;
        sl_buf_json_str(&b->body, m->key.p, m->key.len);
        sl_buf_append_c(&b->body, ":");
        sl_buf_append_str(&b->body, m->raw);
        sl_buf_append_c(&b->body, ",");
    }
    sl_buf_append_c(&b->body, "\"input\":[");
    int ms = r->conf->embeddings.batch_window_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    b->timer = evtimer_new(r->base, on_window, b);
    if (!b->timer || evtimer_add(b->timer, &tv) != 0) {
        free_batch(b);
        return NULL;
    }
    b->next_open = open_batches;
    open_batches = b;
    return b;
}

static batch *find_open(const sl_cache_key *group)
{
    for (batch *b = open_batches; b; b = b->next_open) {
        if (b->group.hi == group->hi && b->group.lo == group->lo)
            return b;
    }
    return NULL;
}

static sl_step join(sl_req *r, batch_ctx *ctx, const sl_cache_key *group, size_t n_new)
{
    size_t max = r->conf->embeddings.batch_max_inputs;
    batch *b = find_open(group);
    if (b && b->n_inputs + n_new > max)
        flush(b), b = NULL;
    if (!b && !(b = open_batch(r, group)))
        return SL_NEXT;
    for (size_t i = 0, k = b->n_inputs; i < ctx->n; i++) {
        if (ctx->cached[i] >= 0)
            continue;
        if (k++)
            sl_buf_append_c(&b->body, ",");
        sl_buf_append_str(&b->body, ctx->in[i]);
    }
    ctx->r = r;
    ctx->b = b;
    ctx->first = b->n_inputs;
    ctx->n_new = n_new;
    b->n_inputs += n_new;
    ctx->next = b->members;
    b->members = ctx;
    b->n_members++;
    sl_req_ref(r); /* held by the batch */
    if (b->n_inputs >= max)
        flush(b);
    return SL_WAIT;
}

static bool batchable(const sl_req *r)
{
    const sl_config *c = r->conf;
    return r->llm.api == SL_API_EMBEDDINGS && !r->llm.stream && r->llm.root &&
           c->embeddings.batch_window_ms > 0 && c->embeddings.batch_max_inputs > 0 &&
           r->provider_idx >= 0 && c->providers[r->provider_idx].kind == SL_PROVIDER_OPENAI;
}

static sl_step batch_request(sl_req *r, void *vctx)
{
    batch_ctx *ctx = vctx;
    if (!batchable(r) || !take_inputs(r, ctx))
        return SL_NEXT;
    sl_cache_key group;
    group_of(r, &group);
    size_t missing = lookup_inputs(r, ctx, &group);
    if (!missing)
        return answer_from_cache(r, ctx);
    if (missing > r->conf->embeddings.batch_max_inputs) {
        for (size_t i = 0; i < ctx->n; i++) /* too many to batch: its own call, whole */
            ctx->cached[i] = -1;
        return SL_NEXT;
    }
    return join(r, ctx, &group, missing);
}

static void batch_abort(sl_req *r, void *vctx)
{
    batch_ctx *ctx = vctx;
    if (!ctx->b || ctx->gone)
        return;
    ctx->gone = true; /* the batch keeps its reference and skips it */
    sl_req_client_closed(r);
    sl_req_finish(r);
}

const sl_stage sl_stage_batch = {
    .name = "batch",
    .ctx_size = sizeof(batch_ctx),
    .on_request = batch_request,
    .on_abort = batch_abort,
};
