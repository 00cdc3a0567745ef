/* stats.c — fixed-size rings of recent traffic for the dashboard; see stats.h. */
#include "sluice/stats.h"

#include <stdio.h>
#include <stdlib.h>

#include "sluice/access.h"
#include "sluice/req.h"

enum { BUCKET_S = 10, N_BUCKETS = 90, N_LAT = 1024, N_ERR = 20, N_ROWS = 64, N_OUTCOMES = 100 };

typedef struct bucket {
    int64_t start_s;
    uint32_t requests, hits, misses, coalesced, errors;
    double cost, saved;
} bucket;

typedef struct row {
    char name[64];
    uint64_t requests;
    double cost, saved;
} row;

typedef struct err_entry {
    int64_t ts_ms;
    int status;
    char route[64], reason[120], request_id[64];
} err_entry;

typedef struct provider_outcomes {
    char name[64];
    uint8_t failed[N_OUTCOMES];
    int next, count;
} provider_outcomes;

static struct {
    bucket buckets[N_BUCKETS];
    float latency_ms[N_LAT], ttfb_ms[N_LAT];
    int lat_next, lat_count, ttfb_next, ttfb_count;
    err_entry errors[N_ERR];
    int err_next, err_count;
    row tenants[N_ROWS], models[N_ROWS];
    provider_outcomes providers[16];
    uint64_t requests, errors_total, hits, coalesced;
    double cost, saved;
} st;

static bucket *current_bucket(int64_t now_s)
{
    int64_t start = now_s - now_s % BUCKET_S;
    bucket *b = &st.buckets[(start / BUCKET_S) % N_BUCKETS];
    if (b->start_s != start)
        *b = (bucket){.start_s = start};
    return b;
}

static row *row_of(row *rows, const char *name)
{
    for (int i = 0; i < N_ROWS; i++) {
        if (!rows[i].name[0]) {
            snprintf(rows[i].name, sizeof rows[i].name, "%s", name);
            return &rows[i];
        }
        if (strcmp(rows[i].name, name) == 0)
            return &rows[i];
    }
    return NULL; /* table full: the rest is in /metrics */
}

static void push_latency(float *ring, int *next, int *count, double ms)
{
    ring[*next] = (float)ms;
    *next = (*next + 1) % N_LAT;
    if (*count < N_LAT)
        (*count)++;
}

static void note_provider(const char *name, bool failed)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(st.providers); i++) {
        provider_outcomes *p = &st.providers[i];
        if (!p->name[0])
            snprintf(p->name, sizeof p->name, "%s", name);
        if (strcmp(p->name, name) != 0)
            continue;
        p->failed[p->next] = failed;
        p->next = (p->next + 1) % N_OUTCOMES;
        if (p->count < N_OUTCOMES)
            p->count++;
        return;
    }
}

void sl_stats_request(const sl_req *r)
{
    if (!r->is_llm && r->status < 400)
        return; /* health checks and scrapes are not traffic */
    bucket *b = current_bucket(sl_wall_ms() / 1000);
    bool error = r->status >= 400 || r->error;
    b->requests++;
    st.requests++;
    b->hits += r->cache == SL_CACHE_HIT;
    b->misses += r->cache == SL_CACHE_MISS;
    b->coalesced += r->cache == SL_CACHE_COALESCED;
    b->errors += error;
    b->cost += r->cost_usd;
    b->saved += r->saved_usd;
    st.hits += r->cache == SL_CACHE_HIT;
    st.coalesced += r->cache == SL_CACHE_COALESCED;
    st.cost += r->cost_usd;
    st.saved += r->saved_usd;
    if (r->t_end > r->t_start)
        push_latency(st.latency_ms, &st.lat_next, &st.lat_count,
                     (double)(r->t_end - r->t_start) / 1000.0);
    if (r->t_first_byte > r->t_upstream_start && r->t_upstream_start)
        push_latency(st.ttfb_ms, &st.ttfb_next, &st.ttfb_count,
                     (double)(r->t_first_byte - r->t_upstream_start) / 1000.0);
    if (r->provider && r->is_llm && r->cache != SL_CACHE_HIT && r->cache != SL_CACHE_COALESCED)
        note_provider(r->provider, r->status >= 500 || r->status == 429);
    if (r->is_llm) {
        char model[64];
        snprintf(model, sizeof model, "%.*s", (int)SL_MIN(r->llm.model.len, 63),
                 r->llm.model.p ? r->llm.model.p : "");
        row *t = row_of(st.tenants, r->tenant ? r->tenant : "default");
        row *m = model[0] ? row_of(st.models, model) : NULL;
        for (row *x = t; x; x = x == t ? m : NULL) {
            x->requests++;
            x->cost += r->cost_usd;
            x->saved += r->saved_usd;
        }
    }
    if (error && r->status != 499) {
        err_entry *e = &st.errors[st.err_next];
        st.err_next = (st.err_next + 1) % N_ERR;
        if (st.err_count < N_ERR)
            st.err_count++;
        st.errors_total++;
        e->ts_ms = sl_wall_ms();
        e->status = r->status;
        snprintf(e->route, sizeof e->route, "%s", r->path ? r->path : "");
        snprintf(e->reason, sizeof e->reason, "%s", r->error ? r->error : "error");
        snprintf(e->request_id, sizeof e->request_id, "%s", r->id);
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void percentiles(sl_buf *b, const char *name, const float *ring, int count)
{
    float sorted[N_LAT];
    memcpy(sorted, ring, (size_t)count * sizeof(float));
    if (count)
        qsort(sorted, (size_t)count, sizeof(float), cmp_float);
    sl_buf_printf(b, "\"%s\":{", name);
    static const struct {
        const char *name;
        double q;
    } qs[] = {{"p50", 0.50}, {"p95", 0.95}, {"p99", 0.99}};
    for (size_t i = 0; i < SL_ARRAY_LEN(qs); i++) {
        sl_buf_printf(b, "%s\"%s_ms\":", i ? "," : "", qs[i].name);
        if (count)
            sl_buf_printf(b, "%.3f", sorted[(int)((count - 1) * qs[i].q)]);
        else
            sl_buf_append_c(b, "null");
    }
    sl_buf_append_c(b, "}");
}

static void rows(sl_buf *b, const char *name, const row *r)
{
    sl_buf_printf(b, ",\"%s\":[", name);
    for (int i = 0; i < N_ROWS && r[i].name[0]; i++) {
        sl_buf_append_c(b, i ? ",{\"name\":" : "{\"name\":");
        sl_buf_json_cstr(b, r[i].name);
        sl_buf_printf(b, ",\"requests\":%llu,\"cost_usd\":", (unsigned long long)r[i].requests);
        sl_buf_json_num(b, r[i].cost);
        sl_buf_append_c(b, ",\"saved_usd\":");
        sl_buf_json_num(b, r[i].saved);
        sl_buf_append_c(b, "}");
    }
    sl_buf_append_c(b, "]");
}

void sl_stats_render(sl_buf *b)
{
    int64_t now_s = sl_wall_ms() / 1000, newest = now_s - now_s % BUCKET_S;
    sl_buf_printf(b, "\"interval_s\":%d,\"series\":[", BUCKET_S);
    for (int i = N_BUCKETS - 1; i >= 0; i--) { /* oldest first, missing buckets as zeros */
        int64_t start = newest - (int64_t)i * BUCKET_S;
        const bucket *k = &st.buckets[(start / BUCKET_S) % N_BUCKETS];
        bool live = k->start_s == start;
        sl_buf_printf(b,
                      "%s{\"t\":%lld,\"requests\":%u,\"hits\":%u,\"misses\":%u,\"coalesced\":%u,"
                      "\"errors\":%u}",
                      i == N_BUCKETS - 1 ? "" : ",", (long long)start, live ? k->requests : 0,
                      live ? k->hits : 0, live ? k->misses : 0, live ? k->coalesced : 0,
                      live ? k->errors : 0);
    }
    sl_buf_printf(
        b,
        "],\"totals\":{\"requests\":%llu,\"errors\":%llu,\"cache_hits\":%llu,\"coalesced\":%llu,"
        "\"cost_usd\":",
        (unsigned long long)st.requests, (unsigned long long)st.errors_total,
        (unsigned long long)st.hits, (unsigned long long)st.coalesced);
    sl_buf_json_num(b, st.cost);
    sl_buf_append_c(b, ",\"saved_usd\":");
    sl_buf_json_num(b, st.saved);
    sl_buf_append_c(b, "},");
    percentiles(b, "latency", st.latency_ms, st.lat_count);
    sl_buf_append_c(b, ",");
    percentiles(b, "ttfb", st.ttfb_ms, st.ttfb_count);
    rows(b, "tenants", st.tenants);
    rows(b, "models", st.models);
    sl_buf_append_c(b, ",\"errors\":[");
    for (int i = 0; i < st.err_count; i++) { /* newest first */
        const err_entry *e = &st.errors[(st.err_next - 1 - i + N_ERR) % N_ERR];
        char ts[32];
        sl_rfc3339_ms(e->ts_ms, ts);
        sl_buf_printf(b, "%s{\"ts\":\"%s\",\"status\":%d,\"route\":", i ? "," : "", ts, e->status);
        sl_buf_json_cstr(b, e->route);
        sl_buf_append_c(b, ",\"reason\":");
        sl_buf_json_cstr(b, e->reason);
        sl_buf_append_c(b, ",\"request_id\":");
        sl_buf_json_cstr(b, e->request_id);
        sl_buf_append_c(b, "}");
    }
    sl_buf_append_c(b, "]");
}

double sl_stats_provider_error_rate(const char *provider)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(st.providers); i++) {
        const provider_outcomes *p = &st.providers[i];
        if (p->count && strcmp(p->name, provider) == 0) {
            int failed = 0;
            for (int k = 0; k < p->count; k++)
                failed += p->failed[k];
            return (double)failed / p->count;
        }
    }
    return 0;
}
