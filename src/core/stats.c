/* stats.c — fixed-size rings of recent traffic for the dashboard; see stats.h.
 *
 * The whole history is one plain struct. sl_stats_share() moves it into an
 * anonymous shared mapping before the workers fork, so every worker writes
 * into the same rings and /stats covers the process group whichever worker
 * answers. Writers use atomic adds and compare-and-swap (no locks): counters
 * are exact; a ring slot written by two workers at the same instant may show
 * either entry, which a dashboard can live with. */
#include "sluice/stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "sluice/access.h"
#include "sluice/req.h"

enum {
    BUCKET_S = 10,
    N_BUCKETS = 90,
    N_LAT = 1024,
    N_ERR = 20,
    N_ROWS = 64,
    N_OUTCOMES = 100,
    N_PROV = 16
};

/* Atomic only once the rings are shared by forked workers: a lone process
 * (the default) pays no locked instruction for its ~20 adds a request.
 * Either way ADD gives the value before the add. */
static bool shared;
#define ADD(field, v)                                                                              \
    (shared ? __atomic_fetch_add(&(field), (v), __ATOMIC_RELAXED) : ((field) += (v)) - (v))
#define LOAD(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)
#define NANO(usd)   ((int64_t)((usd)*1e9)) /* money as integer nano-dollars: atomic adds */

typedef struct bucket {
    int64_t start_s;
    uint32_t requests, hits, misses, coalesced, errors, semantic;
} bucket;

typedef struct row {
    int state; /* 0 free, 1 being claimed, 2 ready */
    char name[64];
    uint64_t requests;
    int64_t cost_nano, saved_nano;
} row;

typedef struct err_entry {
    int64_t ts_ms;
    int status;
    char route[64], reason[120], request_id[64];
} err_entry;

typedef struct provider_outcomes {
    int state;
    char name[64];
    uint8_t failed[N_OUTCOMES];
    uint32_t next;
} provider_outcomes;

typedef struct history {
    bucket buckets[N_BUCKETS];
    float latency_ms[N_LAT], ttfb_ms[N_LAT];
    uint32_t lat_next, ttfb_next;
    err_entry errors[N_ERR];
    uint32_t err_next;
    row tenants[N_ROWS], models[N_ROWS];
    provider_outcomes providers[N_PROV];
    uint64_t requests, errors_total, hits, coalesced, semantic;
    int64_t cost_nano, saved_nano, semantic_saved_nano;
} history;

static history local;
static history *st = &local;

int sl_stats_share(void)
{
    void *p =
        mmap(NULL, sizeof(history), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return SL_ENOMEM;
    memcpy(p, st, sizeof(history));
    st = p;
    shared = true;
    return SL_OK;
}

static bucket *current_bucket(int64_t now_s)
{
    int64_t start = now_s - now_s % BUCKET_S;
    bucket *b = &st->buckets[(start / BUCKET_S) % N_BUCKETS];
    int64_t seen = LOAD(b->start_s);
    if (seen != start && __atomic_compare_exchange_n(&b->start_s, &seen, start, false,
                                                     __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        /* this writer recycled the bucket: clear its counts */
        __atomic_store_n(&b->requests, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->hits, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->misses, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->coalesced, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->errors, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->semantic, 0, __ATOMIC_RELAXED);
    }
    return b;
}

/* The row named name, claimed on first use; NULL when the table is full. */
static row *row_of(row *rows, const char *name)
{
    for (int i = 0; i < N_ROWS; i++) {
        row *r = &rows[i];
        int state = __atomic_load_n(&r->state, __ATOMIC_ACQUIRE);
        if (state == 0) {
            int expect = 0;
            if (__atomic_compare_exchange_n(&r->state, &expect, 1, false, __ATOMIC_ACQ_REL,
                                            __ATOMIC_RELAXED)) {
                snprintf(r->name, sizeof r->name, "%s", name);
                __atomic_store_n(&r->state, 2, __ATOMIC_RELEASE);
                return r;
            }
            state = __atomic_load_n(&r->state, __ATOMIC_ACQUIRE);
        }
        if (state == 2 && strcmp(r->name, name) == 0)
            return r;
    }
    return NULL; /* table full (or a racing claim): the rest is in /metrics */
}

static void push_latency(float *ring, uint32_t *next, double ms)
{
    ring[ADD(*next, 1) % N_LAT] = (float)ms;
}

static void note_provider(const char *name, bool failed)
{
    for (int i = 0; i < N_PROV; i++) {
        provider_outcomes *p = &st->providers[i];
        int state = __atomic_load_n(&p->state, __ATOMIC_ACQUIRE), expect = 0;
        if (state == 0 && __atomic_compare_exchange_n(&p->state, &expect, 1, false,
                                                      __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            snprintf(p->name, sizeof p->name, "%s", name);
            __atomic_store_n(&p->state, 2, __ATOMIC_RELEASE);
            state = 2;
        }
        if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) == 2 && strcmp(p->name, name) == 0) {
            p->failed[ADD(p->next, 1) % N_OUTCOMES] = failed;
            return;
        }
    }
}

static void note_error(const sl_req *r)
{
    err_entry *e = &st->errors[ADD(st->err_next, 1) % N_ERR];
    ADD(st->errors_total, 1);
    e->ts_ms = sl_wall_ms();
    e->status = r->status;
    snprintf(e->route, sizeof e->route, "%s", r->path ? r->path : "");
    snprintf(e->reason, sizeof e->reason, "%s", r->error ? r->error : "error");
    snprintf(e->request_id, sizeof e->request_id, "%s", r->id);
}

static void note_money(const sl_req *r)
{
    char model[64]; /* truncated to a row's name, as a NUL-terminated copy (no printf) */
    size_t mlen = r->llm.model.p ? SL_MIN(r->llm.model.len, sizeof model - 1) : 0;
    memcpy(model, r->llm.model.p ? r->llm.model.p : "", mlen);
    model[mlen] = '\0';
    row *rows[] = {row_of(st->tenants, r->tenant ? r->tenant : "default"),
                   model[0] ? row_of(st->models, model) : NULL};
    for (size_t i = 0; i < SL_ARRAY_LEN(rows); i++) {
        if (!rows[i])
            continue;
        ADD(rows[i]->requests, 1);
        ADD(rows[i]->cost_nano, NANO(r->cost_usd));
        ADD(rows[i]->saved_nano, NANO(r->saved_usd));
    }
}

void sl_stats_request(const sl_req *r)
{
    if (!r->is_llm && r->status < 400)
        return; /* health checks and scrapes are not traffic */
    bucket *b = current_bucket(sl_wall_coarse_ms() / 1000);
    bool error = r->status >= 400 || r->error;
    ADD(b->requests, 1);
    ADD(b->hits, r->cache == SL_CACHE_HIT);
    ADD(b->misses, r->cache == SL_CACHE_MISS);
    ADD(b->coalesced, r->cache == SL_CACHE_COALESCED);
    ADD(b->errors, error);
    ADD(b->semantic, r->cache == SL_CACHE_SEMANTIC);
    if (r->cache == SL_CACHE_SEMANTIC) {
        ADD(st->semantic, 1);
        ADD(st->semantic_saved_nano, NANO(r->saved_usd));
    }
    ADD(st->requests, 1);
    ADD(st->hits, r->cache == SL_CACHE_HIT);
    ADD(st->coalesced, r->cache == SL_CACHE_COALESCED);
    ADD(st->cost_nano, NANO(r->cost_usd));
    ADD(st->saved_nano, NANO(r->saved_usd));
    if (r->t_end > r->t_start)
        push_latency(st->latency_ms, &st->lat_next, (double)(r->t_end - r->t_start) / 1000.0);
    if (r->t_upstream_start && r->t_first_byte > r->t_upstream_start)
        push_latency(st->ttfb_ms, &st->ttfb_next,
                     (double)(r->t_first_byte - r->t_upstream_start) / 1000.0);
    if (r->provider && r->is_llm && r->cache != SL_CACHE_HIT && r->cache != SL_CACHE_COALESCED &&
        r->cache != SL_CACHE_SEMANTIC)
        note_provider(r->provider, r->status >= 500 || r->status == 429);
    if (r->is_llm)
        note_money(r);
    if (error && r->status != 499)
        note_error(r);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void percentiles(sl_buf *b, const char *name, const float *ring, uint32_t written)
{
    int count = (int)SL_MIN(written, (uint32_t)N_LAT);
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
    bool first = true;
    for (int i = 0; i < N_ROWS; i++) {
        if (__atomic_load_n(&r[i].state, __ATOMIC_ACQUIRE) != 2)
            continue;
        sl_buf_append_c(b, first ? "{\"name\":" : ",{\"name\":");
        first = false;
        sl_buf_json_cstr(b, r[i].name);
        sl_buf_printf(b,
                      ",\"requests\":%llu,\"cost_usd\":", (unsigned long long)LOAD(r[i].requests));
        sl_buf_json_num(b, (double)LOAD(r[i].cost_nano) / 1e9);
        sl_buf_append_c(b, ",\"saved_usd\":");
        sl_buf_json_num(b, (double)LOAD(r[i].saved_nano) / 1e9);
        sl_buf_append_c(b, "}");
    }
    sl_buf_append_c(b, "]");
}

static void render_series(sl_buf *b)
{
    int64_t now_s = sl_wall_ms() / 1000, newest = now_s - now_s % BUCKET_S;
    sl_buf_printf(b, "\"interval_s\":%d,\"series\":[", BUCKET_S);
    for (int i = N_BUCKETS - 1; i >= 0; i--) { /* oldest first, missing buckets as zeros */
        int64_t start = newest - (int64_t)i * BUCKET_S;
        const bucket *k = &st->buckets[(start / BUCKET_S) % N_BUCKETS];
        bool live = LOAD(k->start_s) == start;
        sl_buf_printf(b,
                      "%s{\"t\":%lld,\"requests\":%u,\"hits\":%u,\"misses\":%u,\"coalesced\":%u,"
                      "\"errors\":%u,\"semantic\":%u}",
                      i == N_BUCKETS - 1 ? "" : ",", (long long)start, live ? LOAD(k->requests) : 0,
                      live ? LOAD(k->hits) : 0, live ? LOAD(k->misses) : 0,
                      live ? LOAD(k->coalesced) : 0, live ? LOAD(k->errors) : 0,
                      live ? LOAD(k->semantic) : 0);
    }
    sl_buf_append_c(b, "]");
}

static void render_errors(sl_buf *b)
{
    uint32_t next = LOAD(st->err_next);
    uint32_t count = SL_MIN(next, (uint32_t)N_ERR);
    sl_buf_append_c(b, ",\"errors\":[");
    for (uint32_t i = 0; i < count; i++) { /* newest first */
        const err_entry *e = &st->errors[(next - 1 - i) % N_ERR];
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

void sl_stats_render(sl_buf *b)
{
    render_series(b);
    sl_buf_printf(b,
                  ",\"totals\":{\"requests\":%llu,\"errors\":%llu,\"cache_hits\":%llu,"
                  "\"coalesced\":%llu,\"cost_usd\":",
                  (unsigned long long)LOAD(st->requests),
                  (unsigned long long)LOAD(st->errors_total), (unsigned long long)LOAD(st->hits),
                  (unsigned long long)LOAD(st->coalesced));
    sl_buf_json_num(b, (double)LOAD(st->cost_nano) / 1e9);
    sl_buf_append_c(b, ",\"saved_usd\":");
    sl_buf_json_num(b, (double)LOAD(st->saved_nano) / 1e9);
    sl_buf_printf(b, ",\"semantic_hits\":%llu,\"semantic_saved_usd\":",
                  (unsigned long long)LOAD(st->semantic));
    sl_buf_json_num(b, (double)LOAD(st->semantic_saved_nano) / 1e9);
    sl_buf_append_c(b, "},");
    percentiles(b, "latency", st->latency_ms, LOAD(st->lat_next));
    sl_buf_append_c(b, ",");
    percentiles(b, "ttfb", st->ttfb_ms, LOAD(st->ttfb_next));
    rows(b, "tenants", st->tenants);
    rows(b, "models", st->models);
    render_errors(b);
}

double sl_stats_provider_error_rate(const char *provider)
{
    for (int i = 0; i < N_PROV; i++) {
        const provider_outcomes *p = &st->providers[i];
        if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) != 2 || strcmp(p->name, provider) != 0)
            continue;
        uint32_t n = SL_MIN(LOAD(p->next), (uint32_t)N_OUTCOMES);
        int failed = 0;
        for (uint32_t k = 0; k < n; k++)
            failed += p->failed[k];
        return n ? (double)failed / n : 0;
    }
    return 0;
}
