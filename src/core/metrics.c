/* metrics.c — the series store and the Prometheus text exposition. */
#include "sluice/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sluice/access.h"
#include "sluice/req.h"

typedef struct family {
    const char *name, *type, *help, *labels;
    int n_labels;
} family;

static family families[] = {
#define SL_METRIC_ROW(id, name, type, help, labels) {name, type, help, labels, 0},
    SL_METRICS(SL_METRIC_ROW)
#undef SL_METRIC_ROW
};

/* Histogram buckets in seconds: 1 ms .. 120 s. */
static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                0.5,   1,      2.5,   5,    10,    30,   60,  120};
enum { N_BOUNDS = (int)SL_ARRAY_LEN(bounds), N_BUCKETS = 1024, MAX_SERIES = 20000 };

typedef struct series {
    struct series *next;     /* hash chain */
    struct series *fam_next; /* all series of one family, for rendering */
    sl_metric m;
    uint64_t hash;
    double value;   /* counter/gauge value, histogram sum */
    uint64_t count; /* histogram */
    uint64_t buckets[N_BOUNDS];
    char labels[]; /* rendered `a="x",b="y"` */
} series;

static series *table[N_BUCKETS];
static series *by_family[SL_M__COUNT];
static size_t n_series;
static sl_metrics_refresh_fn refreshers[8];
static int n_refreshers;

static int count_labels(const char *spec)
{
    if (!spec[0])
        return 0;
    int n = 1;
    for (const char *p = spec; *p; p++)
        n += *p == ',';
    return n;
}

static void escape_into(sl_buf *b, const char *v)
{
    for (; v && *v; v++) {
        if (*v == '\\' || *v == '"')
            sl_buf_append(b, "\\", 1);
        if (*v == '\n') {
            sl_buf_append(b, "\\n", 2);
            continue;
        }
        sl_buf_append(b, v, 1);
    }
}

/* Renders the label set of m with values into b. */
static void render_labels(sl_buf *b, sl_metric m, const char *const *values)
{
    family *f = &families[m];
    if (!f->n_labels)
        f->n_labels = count_labels(f->labels);
    const char *spec = f->labels;
    for (int i = 0; i < f->n_labels; i++) {
        const char *comma = strchr(spec, ',');
        size_t len = comma ? (size_t)(comma - spec) : strlen(spec);
        if (i)
            sl_buf_append(b, ",", 1);
        sl_buf_append(b, spec, len);
        sl_buf_append(b, "=\"", 2);
        escape_into(b, values ? values[i] : "");
        sl_buf_append(b, "\"", 1);
        spec = comma ? comma + 1 : spec + len;
    }
}

static uint64_t fnv1a(const char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static series *get_series(sl_metric m, const char *const *values)
{
    static sl_buf key; /* reused: no allocation per observation once warm */
    key.max = 4096;
    sl_buf_reset(&key);
    render_labels(&key, m, values);
    const char *lab = key.p ? key.p : "";
    uint64_t h = fnv1a(lab, key.len, 1469598103934665603ull ^ (uint64_t)m);
    series *s;
    for (s = table[h % N_BUCKETS]; s; s = s->next) {
        if (s->hash == h && s->m == m && strcmp(s->labels, lab) == 0)
            break;
    }
    if (!s && n_series < MAX_SERIES && (s = calloc(1, sizeof(*s) + key.len + 1))) {
        s->m = m;
        s->hash = h;
        memcpy(s->labels, lab, key.len + 1);
        s->next = table[h % N_BUCKETS];
        table[h % N_BUCKETS] = s;
        s->fam_next = by_family[m];
        by_family[m] = s;
        n_series++;
    }
    return s;
}

void sl_metric_add(sl_metric m, double v, const char *const *labels)
{
    series *s = get_series(m, labels);
    if (s)
        s->value += v;
}

void sl_metric_set(sl_metric m, double v, const char *const *labels)
{
    series *s = get_series(m, labels);
    if (s)
        s->value = v;
}

void sl_metric_observe(sl_metric m, double seconds, const char *const *labels)
{
    series *s = get_series(m, labels);
    if (!s)
        return;
    s->value += seconds;
    s->count++;
    for (int i = 0; i < N_BOUNDS; i++) {
        if (seconds <= bounds[i])
            s->buckets[i]++;
    }
}

static double secs(uint64_t from_us, uint64_t to_us)
{
    return (from_us && to_us >= from_us) ? (double)(to_us - from_us) / 1e6 : -1;
}

void sl_metrics_request(const sl_req *r)
{
    char status[8], model[128];
    snprintf(status, sizeof status, "%d", r->status);
    snprintf(model, sizeof model, "%.*s", (int)SL_MIN(r->llm.model.len, 127),
             r->llm.model.p ? r->llm.model.p : "");
    const char *cache = sl_cache_outcome_name(r->cache);
    const char *tenant = r->is_llm ? r->tenant : "";
    const char *provider = r->provider ? r->provider : "";
    const char *route = r->path ? r->path : "";
    const char *req_labels[] = {route, status, tenant, model, provider, cache ? cache : ""};
    sl_metric_add(SL_M_REQUESTS, 1, req_labels);
    double d = secs(r->t_start, r->t_end);
    if (d >= 0)
        sl_metric_observe(SL_M_REQUEST_SECONDS, d, &route);
    if (!r->is_llm)
        return;
    if ((d = secs(r->t_upstream_start, r->t_upstream_end)) >= 0)
        sl_metric_observe(SL_M_UPSTREAM_SECONDS, d, &provider);
    if ((d = secs(r->t_upstream_start, r->t_first_byte)) >= 0)
        sl_metric_observe(SL_M_TTFB_SECONDS, d, &provider);
    const char *in_labels[] = {tenant, model, "input"};
    const char *out_labels[] = {tenant, model, "output"};
    const char *tm[] = {tenant, model};
    if (r->prompt_tokens)
        sl_metric_add(SL_M_TOKENS, (double)r->prompt_tokens, in_labels);
    if (r->completion_tokens)
        sl_metric_add(SL_M_TOKENS, (double)r->completion_tokens, out_labels);
    if (r->cost_usd > 0)
        sl_metric_add(SL_M_COST, r->cost_usd, tm);
    if (r->saved_usd > 0)
        sl_metric_add(SL_M_SAVED, r->saved_usd, tm);
    if (r->retries)
        sl_metric_add(SL_M_RETRIES, r->retries, NULL);
    if (r->retries && strchr(r->tried, ',') && r->status == 200)
        sl_metric_add(SL_M_FALLBACKS, 1, NULL);
    if (r->cache == SL_CACHE_COALESCED)
        sl_metric_add(SL_M_COALESCED, 1, NULL);
}

void sl_metrics_on_scrape(sl_metrics_refresh_fn fn)
{
    if (n_refreshers < (int)SL_ARRAY_LEN(refreshers))
        refreshers[n_refreshers++] = fn;
}

static void render_value(sl_buf *out, double v)
{
    if (isnan(v) || isinf(v))
        sl_buf_append_c(out, isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf"));
    else
        sl_buf_printf(out, "%.17g", v);
}

static void render_histogram(sl_buf *out, const family *f, const series *s)
{
    const char *sep = s->labels[0] ? "," : "";
    for (int i = 0; i < N_BOUNDS; i++)
        sl_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", f->name, s->labels, sep, bounds[i],
                      (unsigned long long)s->buckets[i]);
    sl_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels, sep,
                  (unsigned long long)s->count);
    sl_buf_printf(out, "%s_sum{%s} ", f->name, s->labels);
    render_value(out, s->value);
    sl_buf_printf(out, "\n%s_count{%s} %llu\n", f->name, s->labels, (unsigned long long)s->count);
}

void sl_metrics_render(sl_buf *out)
{
    for (int i = 0; i < n_refreshers; i++)
        refreshers[i]();
    for (int m = 0; m < SL_M__COUNT; m++) {
        const family *f = &families[m];
        bool histo = strcmp(f->type, "histogram") == 0;
        if (!by_family[m] && f->labels[0])
            continue; /* a labelled family with no series yet */
        sl_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
        if (!by_family[m]) {
            sl_buf_printf(out, "%s 0\n", f->name);
            continue;
        }
        for (const series *s = by_family[m]; s; s = s->fam_next) {
            if (histo) {
                render_histogram(out, f, s);
                continue;
            }
            if (s->labels[0])
                sl_buf_printf(out, "%s{%s} ", f->name, s->labels);
            else
                sl_buf_printf(out, "%s ", f->name);
            render_value(out, s->value);
            sl_buf_append_c(out, "\n");
        }
    }
}

void sl_metrics_free(void)
{
    for (int i = 0; i < N_BUCKETS; i++) {
        series *s = table[i];
        while (s) {
            series *next = s->next;
            free(s);
            s = next;
        }
        table[i] = NULL;
    }
    memset(by_family, 0, sizeof by_family);
    n_series = 0;
}
