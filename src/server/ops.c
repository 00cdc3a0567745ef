/* ops.c — operational routes: health, readiness, detail, and the model list. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sluice/breaker.h"
#include "sluice/conn.h"
#include "sluice/dialects.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/metrics.h"
#include "sluice/stages.h"
#include "sluice/stats.h"
#include "sluice/pipeline.h"
#include "sluice/server.h"
#include "sluice/upstream.h"

static void answer_json(sl_req *r, int status, const char *body)
{
    r->status = status;
    sl_buf_append_c(&r->body_out, body);
    sl_req_finish(r);
}

void sl_ops_live(sl_req *r)
{
    answer_json(r, 200, "{\"status\":\"live\"}");
}

void sl_ops_ready(sl_req *r)
{
    if (sl_server_draining())
        answer_json(r, 503, "{\"status\":\"draining\"}");
    else
        answer_json(r, 200, "{\"status\":\"ready\"}");
}

/* Keys a reload changed that only a restart applies (main.c sets them). */
static struct {
    char keys[32][64];
    size_t n;
} pending;

void sl_ops_set_restart_pending(const char *const *keys, size_t n)
{
    pending.n = 0;
    for (size_t i = 0; i < n && pending.n < SL_ARRAY_LEN(pending.keys); i++)
        snprintf(pending.keys[pending.n++], sizeof pending.keys[0], "%s", keys[i]);
}

static void health_pending(sl_buf *b)
{
    sl_buf_append_c(b, ",\"restart_pending\":[");
    for (size_t i = 0; i < pending.n; i++) {
        if (i)
            sl_buf_append_c(b, ",");
        sl_buf_json_cstr(b, pending.keys[i]);
    }
    sl_buf_append_c(b, "]");
}

void sl_ops_health(sl_req *r)
{
    const sl_config *c = r->conf;
    sl_buf *b = &r->body_out;
    sl_buf_printf(b, "{\"status\":\"%s\",\"version\":\"%s\",\"pid\":%d,\"uptime_s\":%llu,",
                  sl_server_draining() ? "draining" : "ok", SLUICE_VERSION, (int)getpid(),
                  (unsigned long long)((sl_now_ms() - sl_server_started_ms()) / 1000));
    sl_buf_printf(b, "\"worker\":%d,", sl_server_worker());
    sl_buf_printf(b, "\"inflight\":%zu,\"upstream_inflight\":%zu,\"upstream_ready\":%s,",
                  sl_req_live() - 1, sl_upstream_inflight(),
                  sl_upstream_ready() ? "true" : "false");
    sl_buf_append_c(b, "\"state_store\":");
    sl_buf_json_cstr(b, c->redis.host || c->redis.n_sentinels || c->redis.n_cluster ? "redis"
                                                                                    : "embedded");
    sl_ops_health_stores(b);
    health_pending(b);
    sl_buf_append_c(b, ",\"providers\":[");
    for (size_t i = 0; i < c->n_providers; i++) {
        const sl_provider_conf *p = &c->providers[i];
        sl_buf_append_c(b, i ? ",{\"name\":" : "{\"name\":");
        sl_buf_json_cstr(b, p->name);
        sl_buf_printf(b, ",\"kind\":\"%s\",\"base_url\":", sl_dialect_of_kind(p->kind)->name);
        char shown[512];
        sl_buf_json_cstr(b, sl_redact_url(p->base_url, shown, sizeof shown));
        int failures;
        uint64_t opened;
        sl_breaker_stats(p->name, &failures, &opened);
        sl_buf_printf(b, ",\"breaker\":\"%s\",\"consecutive_failures\":%d,\"times_opened\":%llu",
                      sl_breaker_state_name(sl_breaker_state_of(p->name)), failures,
                      (unsigned long long)opened);
        sl_buf_append_c(b, ",\"models\":[");
        for (size_t m = 0; m < p->n_models; m++) {
            if (m)
                sl_buf_append_c(b, ",");
            sl_buf_json_cstr(b, p->models[m]);
        }
        sl_buf_append_c(b, "]}");
    }
    sl_buf_append_c(b, "]}");
    r->status = 200;
    sl_req_finish(r);
}

/* ---- gauges read from the configuration and its state, at scrape time ---- */

static const char *const PERIOD_NAMES[] = {"total", "monthly", "daily"}; /* sl_budget_period */

static void metrics_budgets(const sl_config *c)
{
    for (size_t i = 0; i < c->n_keys; i++) {
        const sl_key_conf *k = &c->keys[i];
        if (k->budget_usd <= 0 || !k->tenant)
            continue;
        const char *labels[] = {k->tenant, PERIOD_NAMES[k->budget_period]};
        sl_metric_set(SL_M_BUDGET, k->budget_usd, labels);
        sl_metric_set(SL_M_BUDGET_SPENT, sl_limits_spent_usd(k->tenant, k->budget_period), labels);
    }
}

/* One model: how many providers serve it and how many of those are open. */
static void metrics_model(const sl_config *c, const char *model)
{
    double serving = 0, open = 0;
    sl_str m = {model, strlen(model)};
    for (size_t i = 0; i < c->n_providers; i++) {
        const sl_provider_conf *p = &c->providers[i];
        for (size_t k = 0; k < p->n_models; k++) {
            if (sl_model_match(p->models[k], m)) {
                serving++;
                open += sl_breaker_state_of(p->name) != SL_BREAKER_CLOSED;
                break;
            }
        }
    }
    sl_metric_set(SL_M_MODEL_PROVIDERS, serving, &model);
    sl_metric_set(SL_M_MODEL_PROVIDERS_OPEN, open, &model);
}

static bool listed(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0)
            return true;
    }
    return false;
}

/* The models the configuration names (exact names only: the label set is the
 * configuration's, never a client's), each once. */
static void metrics_models(const sl_config *c)
{
    enum { MAX_MODELS = SL_METRICS_MAX_MODELS };
    const char *names[MAX_MODELS];
    size_t n = 0;
    for (size_t i = 0; i < c->n_providers; i++) {
        for (size_t k = 0; k < c->providers[i].n_models && n < MAX_MODELS; k++) {
            const char *m = c->providers[i].models[k];
            if (!strchr(m, '*') && !listed(names, n, m))
                names[n++] = m;
        }
    }
    for (size_t i = 0; i < c->n_prices && n < MAX_MODELS; i++) {
        const char *m = c->prices[i].model;
        if (!strchr(m, '*') && !listed(names, n, m))
            names[n++] = m;
    }
    if (c->triage.model && n < MAX_MODELS && !listed(names, n, c->triage.model))
        names[n++] = c->triage.model;
    for (size_t i = 0; i < n; i++)
        metrics_model(c, names[i]);
}

/* The cache's outcomes at 0 from the first scrape on, so that a first hit is
 * an increase Prometheus sees and the dashboards show 0, not "no data". */
static void zero_cache_series(const sl_config *c)
{
    static const char *const exact[] = {"hit_l1", "hit_l2", "miss"};
    static const char *const semantic[] = {"hit_semantic", "semantic_miss", "semantic_refused",
                                           "semantic_skipped"};
    static const char *const saved[] = {"hit", "semantic", "coalesced"};
    for (size_t i = 0; i < SL_ARRAY_LEN(exact); i++)
        sl_metric_add(SL_M_CACHE_LOOKUPS, 0, &exact[i]);
    for (size_t i = 0; sl_semantic_wanted(c) && i < SL_ARRAY_LEN(semantic); i++)
        sl_metric_add(SL_M_CACHE_LOOKUPS, 0, &semantic[i]);
    for (size_t i = 0; i < SL_ARRAY_LEN(saved); i++)
        sl_metric_add(SL_M_CACHE_SAVED, 0, &saved[i]);
}

/* Registered by main with sl_metrics_on_scrape: runs before every scrape and,
 * with workers, before every snapshot a worker publishes. */
void sl_ops_metrics_refresh(void)
{
    static double start_s; /* once per process: a stable value, so changes() counts starts */
    if (!start_s)
        start_s =
            (double)(sl_wall_ms() / 1000) - (double)((sl_now_ms() - sl_server_started_ms()) / 1000);
    sl_metric_set(SL_M_START_TIME, start_s, NULL);
    const sl_config *c = sl_server_config();
    if (!c)
        return;
    sl_metric_set(SL_M_REDIS_CONFIGURED,
                  c->redis.host || c->redis.n_sentinels || c->redis.n_cluster ? 1 : 0, NULL);
    for (size_t i = 0; i < c->n_providers; i++) {
        const char *name = c->providers[i].name;
        sl_metric_set(SL_M_BREAKER, (double)sl_breaker_state_of(name), &name);
    }
    /* the configuration's series only: a key or model a reload removed goes */
    sl_metric_retire(SL_M_BUDGET);
    sl_metric_retire(SL_M_BUDGET_SPENT);
    sl_metric_retire(SL_M_MODEL_PROVIDERS);
    sl_metric_retire(SL_M_MODEL_PROVIDERS_OPEN);
    metrics_budgets(c);
    metrics_models(c);
    zero_cache_series(c);
}

void sl_ops_metrics(sl_req *r)
{
    sl_metric_set(SL_M_INFLIGHT, (double)(sl_req_live() - 1), NULL);
    sl_metric_set(SL_M_CONNECTIONS, (double)sl_conn_open_count(), NULL);
    sl_metric_set(SL_M_UPSTREAM_INFLIGHT, (double)sl_upstream_inflight(), NULL);
    sl_metric_set(SL_M_ACCESS_DROPPED, (double)sl_access_dropped(), NULL);
    sl_ops_metrics_stores();
    if (sl_metrics_render(&r->body_out) != SL_OK) {
        /* over server.max_response_bytes or out of memory: no partial text */
        sl_req_error(r, 500, "api_error", "metrics_unavailable", NULL,
                     "the metrics exposition could not be rendered (too large or out of memory)");
        sl_req_finish(r);
        return;
    }
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    r->status = 200;
    sl_req_finish(r);
}

/* /stats: the route table asks for the admin key (sl_auth) before this runs. */
void sl_ops_stats(sl_req *r)
{
    const sl_config *c = r->conf;
    sl_buf *b = &r->body_out;
    sl_buf_printf(b, "{\"version\":\"%s\",\"uptime_s\":%llu,\"worker\":%d,\"inflight\":%zu,",
                  SLUICE_VERSION,
                  (unsigned long long)((sl_now_ms() - sl_server_started_ms()) / 1000),
                  sl_server_worker(), sl_req_live() - 1);
    sl_stats_render(b);
    sl_buf_append_c(b, ",\"providers\":[");
    for (size_t i = 0; i < c->n_providers; i++) {
        const char *name = c->providers[i].name;
        sl_buf_append_c(b, i ? ",{\"name\":" : "{\"name\":");
        sl_buf_json_cstr(b, name);
        sl_buf_printf(b, ",\"breaker\":\"%s\",\"error_rate\":%.3f}",
                      sl_breaker_state_name(sl_breaker_state_of(name)),
                      sl_stats_provider_error_rate(name));
    }
    sl_buf_append_c(b, "]");
    sl_ops_health_stores(b);
    sl_buf_append_c(b, "}");
    r->status = 200;
    sl_req_finish(r);
}

void sl_ops_ui(sl_req *r)
{
    r->content_type = "text/html; charset=utf-8";
    sl_buf_append_c(&r->body_out, sl_ui_page);
    r->status = 200;
    sl_req_finish(r);
}

/* ---- GET /v1/models ------------------------------------------------------ *
 * Every provider's models, in provider order, each once: explicit model names
 * are listed as they are; a provider serving a pattern is asked for its own
 * list (an anthropic-kind one at {base_url}/v1/models, with its own headers),
 * all of them at once, and what it lists is kept only where its patterns
 * serve it. Each item carries OpenAI's fields and Anthropic's, so both SDKs'
 * models.list read the same answer. */

typedef struct models_fetch {
    sl_req *r;
    int pending;
    sl_buf items; /* comma-joined model objects */
    sl_str *seen; /* ids listed so far (arena) */
    size_t n_seen, cap_seen;
    sl_str first, last;
    struct fetch_one {
        struct models_fetch *all;
        const sl_provider_conf *p;
        bool fetched;
        int status;
        sl_buf body;
    } one[];
} models_fetch;

static bool already_listed(models_fetch *f, sl_str id)
{
    for (size_t i = 0; i < f->n_seen; i++) {
        if (sl_str_eq(f->seen[i], id))
            return true;
    }
    if (f->n_seen == f->cap_seen) {
        size_t cap = f->cap_seen ? f->cap_seen * 2 : 64;
        sl_str *grown = sl_arena_alloc(&f->r->arena, cap * sizeof(*grown));
        if (!grown)
            return true; /* out of memory: list no more */
        if (f->n_seen)
            memcpy(grown, f->seen, f->n_seen * sizeof(*grown));
        f->seen = grown, f->cap_seen = cap;
    }
    f->seen[f->n_seen++] = id;
    return false;
}

/* One model; m is the provider's own object (for Anthropic's display_name
 * and created_at), or NULL. */
static void add_model(models_fetch *f, sl_str id, const sl_json *m, const char *owner)
{
    if (already_listed(f, id))
        return;
    sl_buf *items = &f->items;
    if (items->len)
        sl_buf_append_c(items, ",");
    sl_buf_append_c(items, "{\"id\":");
    sl_buf_json_str(items, id.p, id.len);
    const sl_json *created = sl_json_get(m, "created");
    sl_buf_printf(
        items, ",\"object\":\"model\",\"type\":\"model\",\"created\":%ld,\"owned_by\":",
        created && created->type == SL_JSON_NUMBER ? (long)sl_json_int(created, 0, 1e12, 0) : 0L);
    sl_buf_json_cstr(items, owner);
    const sl_json *dn = sl_json_get(m, "display_name"), *at = sl_json_get(m, "created_at");
    sl_str name = dn && dn->type == SL_JSON_STRING ? dn->str : id;
    sl_buf_append_c(items, ",\"display_name\":");
    sl_buf_json_str(items, name.p, name.len);
    sl_buf_append_c(items, ",\"created_at\":");
    if (at && at->type == SL_JSON_STRING)
        sl_buf_json_str(items, at->str.p, at->str.len);
    else
        sl_buf_append_c(items, "\"1970-01-01T00:00:00Z\"");
    sl_buf_append_c(items, "}");
    if (!f->first.p)
        f->first = id;
    f->last = id;
}

static bool provider_serves(const sl_provider_conf *p, sl_str id)
{
    for (size_t m = 0; m < p->n_models; m++) {
        if (sl_model_match(p->models[m], id))
            return true;
    }
    return false;
}

static void add_fetched(models_fetch *f, struct fetch_one *one)
{
    sl_json *root = NULL;
    sl_json_error err;
    if (one->status != 200 ||
        sl_json_parse(&f->r->arena, one->body.p, one->body.len, NULL, &root, &err) != SL_OK)
        return;
    const sl_json *data = sl_json_get(root, "data");
    for (const sl_json *m = data && data->type == SL_JSON_ARRAY ? data->child : NULL; m;
         m = m->next) {
        const sl_json *id = sl_json_get(m, "id");
        if (id && id->type == SL_JSON_STRING && provider_serves(one->p, id->str))
            add_model(f, id->str, m, one->p->name);
    }
}

static bool serves_all(const sl_provider_conf *p)
{
    for (size_t m = 0; m < p->n_models; m++) {
        if (strchr(p->models[m], '*'))
            return true;
    }
    return false;
}

static void models_finish(models_fetch *f)
{
    sl_req *r = f->r;
    const sl_config *c = r->conf;
    for (size_t i = 0; i < c->n_providers; i++) {
        const sl_provider_conf *p = &c->providers[i];
        if (f->one[i].fetched) {
            add_fetched(f, &f->one[i]);
        } else {
            for (size_t m = 0; m < p->n_models; m++)
                add_model(f, sl_str_c(p->models[m]), NULL, p->name);
        }
    }
    sl_buf_printf(&r->body_out,
                  "{\"object\":\"list\",\"data\":[%s],\"has_more\":false,\"first_id\":",
                  f->items.p ? f->items.p : "");
    sl_ir_put_str(&r->body_out, f->first, "null");
    sl_buf_append_c(&r->body_out, ",\"last_id\":");
    sl_ir_put_str(&r->body_out, f->last, "null");
    sl_buf_append_c(&r->body_out, "}");
    r->status = 200;
    for (size_t i = 0; i < c->n_providers; i++) /* the ids above point into them */
        sl_buf_free(&f->one[i].body);
    sl_buf_free(&f->items);
    free(f);
    sl_req_finish(r);
    sl_req_release(r);
}

static int fetch_data(void *ud, sl_call *c, const char *p, size_t n)
{
    SL_UNUSED(c);
    struct fetch_one *one = ud;
    return sl_buf_append(&one->body, p, n) == SL_OK ? 0 : 1;
}

static void fetch_done(void *ud, sl_call *c, int rc, const char *detail)
{
    SL_UNUSED(detail);
    struct fetch_one *one = ud;
    one->status = rc == SL_OK && c ? sl_call_status(c) : 0;
    if (--one->all->pending == 0)
        models_finish(one->all);
}

static const sl_call_hooks fetch_hooks = {.on_data = fetch_data, .on_done = fetch_done};

static void start_fetch(struct fetch_one *one, sl_req *r)
{
    const sl_provider_conf *p = one->p;
    const sl_dialect *d = sl_dialect_of_kind(p->kind);
    struct curl_slist *h = d->headers(NULL, p->api_key);
    sl_call_opts o = {
        .url = sl_arena_printf(&r->arena, "%s%s", p->base_url, d->models_path),
        .headers = h,
        .connect_ms = r->conf->timeouts.connect_ms,
        .first_byte_ms = r->conf->timeouts.first_byte_ms,
        .total_ms = 10000,
    };
    int err;
    if (!sl_call_start(&o, &fetch_hooks, one, &err))
        fetch_done(one, NULL, SL_EIO, "could not start");
}

void sl_ops_models(sl_req *r)
{
    const sl_config *c = r->conf;
    models_fetch *f = calloc(1, sizeof(*f) + c->n_providers * sizeof(f->one[0]));
    if (!f) {
        sl_req_error(r, 500, "api_error", "out_of_memory", NULL, "out of memory");
        sl_req_finish(r);
        return;
    }
    f->r = r;
    sl_req_ref(r);
    f->pending = 1; /* held while starting, so an early finish cannot free f */
    for (size_t i = 0; i < c->n_providers; i++) {
        const sl_provider_conf *p = &c->providers[i];
        f->one[i] = (struct fetch_one){.all = f, .p = p};
        if (!serves_all(p) || !sl_dialect_of_kind(p->kind)->models_path)
            continue;
        f->one[i].fetched = true;
        sl_buf_init(&f->one[i].body, 4 << 20);
        f->pending++;
        start_fetch(&f->one[i], r);
    }
    if (--f->pending == 0)
        models_finish(f);
}
