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
    sl_buf_printf(b, "\"inflight\":%zu,\"upstream_inflight\":%zu,", sl_req_live() - 1,
                  sl_upstream_inflight());
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

void sl_ops_metrics(sl_req *r)
{
    sl_metric_set(SL_M_INFLIGHT, (double)(sl_req_live() - 1), NULL);
    sl_metric_set(SL_M_CONNECTIONS, (double)sl_conn_open_count(), NULL);
    sl_metric_set(SL_M_UPSTREAM_INFLIGHT, (double)sl_upstream_inflight(), NULL);
    sl_metric_set(SL_M_ACCESS_DROPPED, (double)sl_access_dropped(), NULL);
    sl_ops_metrics_stores();
    for (size_t i = 0; i < r->conf->n_providers; i++) {
        const char *name = r->conf->providers[i].name;
        sl_metric_set(SL_M_BREAKER, (double)sl_breaker_state_of(name), &name);
    }
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
 * Explicit model names are listed as they are; a provider serving "*" is
 * asked for its own list, all of them at once. */

typedef struct models_fetch {
    sl_req *r;
    int pending;
    sl_buf items; /* comma-joined model objects */
    struct fetch_one {
        struct models_fetch *all;
        const sl_provider_conf *p;
        sl_buf body;
    } one[];
} models_fetch;

static void add_model(sl_buf *items, sl_str id, const char *owner)
{
    if (items->len)
        sl_buf_append_c(items, ",");
    sl_buf_append_c(items, "{\"id\":");
    sl_buf_json_str(items, id.p, id.len);
    sl_buf_append_c(items, ",\"object\":\"model\",\"created\":0,\"owned_by\":");
    sl_buf_json_cstr(items, owner);
    sl_buf_append_c(items, "}");
}

static void models_finish(models_fetch *f)
{
    sl_req *r = f->r;
    sl_buf_printf(&r->body_out, "{\"object\":\"list\",\"data\":[%s]}",
                  f->items.p ? f->items.p : "");
    r->status = 200;
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
    models_fetch *f = one->all;
    sl_json *root = NULL;
    sl_json_error err;
    if (rc == SL_OK && sl_call_status(c) == 200 &&
        sl_json_parse(&f->r->arena, one->body.p, one->body.len, NULL, &root, &err) == SL_OK) {
        const sl_json *data = sl_json_get(root, "data");
        for (const sl_json *m = data && data->type == SL_JSON_ARRAY ? data->child : NULL; m;
             m = m->next) {
            const sl_json *id = sl_json_get(m, "id");
            if (id && id->type == SL_JSON_STRING)
                add_model(&f->items, id->str, one->p->name);
        }
    }
    sl_buf_free(&one->body);
    if (--f->pending == 0)
        models_finish(f);
}

static const sl_call_hooks fetch_hooks = {.on_data = fetch_data, .on_done = fetch_done};

static bool serves_all(const sl_provider_conf *p)
{
    for (size_t m = 0; m < p->n_models; m++) {
        if (strchr(p->models[m], '*'))
            return true;
    }
    return false;
}

static void start_fetch(struct fetch_one *one, sl_req *r)
{
    const sl_provider_conf *p = one->p;
    struct curl_slist *h = sl_dialect_of_kind(p->kind)->headers(NULL, p->api_key);
    sl_call_opts o = {
        .url = sl_arena_printf(&r->arena, "%s/models", p->base_url),
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
        answer_json(r, 500,
                    "{\"error\":{\"message\":\"out of "
                    "memory\",\"type\":\"api_error\",\"param\":null,\"code\":null}}");
        return;
    }
    f->r = r;
    sl_req_ref(r);
    f->pending = 1; /* held while starting, so an early finish cannot free f */
    for (size_t i = 0; i < c->n_providers; i++) {
        const sl_provider_conf *p = &c->providers[i];
        if (serves_all(p)) {
            f->one[i] = (struct fetch_one){.all = f, .p = p};
            sl_buf_init(&f->one[i].body, 4 << 20);
            f->pending++;
            start_fetch(&f->one[i], r);
            continue;
        }
        for (size_t m = 0; m < p->n_models; m++)
            add_model(&f->items, sl_str_c(p->models[m]), p->name);
    }
    if (--f->pending == 0)
        models_finish(f);
}
