/* metrics.c — the series store and the Prometheus text exposition.
 *
 * With workers, every worker publishes a snapshot of its series once a second
 * into its slot of a shared mapping made before the fork; a scrape answered by
 * any worker merges its own live series with the others' snapshots, so
 * /metrics reports the process group (the others' part at most a second old).
 * Counters and histograms add up; gauges add up too (in flight, connections,
 * cache bytes), except states that every worker reports of the same thing
 * (breaker state, Redis up), which take the highest. */
#include "sluice/metrics.h"

#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <xxhash.h>

#include "sluice/access.h"
#include "sluice/req.h"

typedef struct family {
    const char *name, *type, *help, *labels;
    int n_labels;
    bool split;
    const char *names[8]; /* label names, pointing into `labels` */
    size_t name_lens[8];
} family;

static family families[] = {
#define SL_METRIC_ROW(id, name, type, help, labels) {name, type, help, labels, 0, false, {0}, {0}},
    SL_METRICS(SL_METRIC_ROW)
#undef SL_METRIC_ROW
};

/* Histogram buckets in seconds: 1 ms .. 120 s. */
static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                0.5,   1,      2.5,   5,    10,    30,   60,  120};
enum { N_BOUNDS = (int)SL_ARRAY_LEN(bounds), N_BUCKETS = 1024 };

typedef struct series {
    struct series *next;     /* hash chain */
    struct series *fam_next; /* all series of one family, for rendering */
    sl_metric m;
    uint64_t hash;
    size_t labels_len;
    double value;   /* counter/gauge value, histogram sum */
    uint64_t count; /* histogram */
    bool retired;   /* sl_metric_retire: not shown until set again */
    uint64_t buckets[N_BOUNDS];
    char labels[]; /* rendered `a="x",b="y"` */
} series;

typedef struct registry {
    series *table[N_BUCKETS];
    series *by_family[SL_M__COUNT];
    size_t n_family[SL_M__COUNT];
    size_t cap;                    /* series per family; 0: SL_METRICS_MAX_SERIES */
    uint64_t dropped[SL_M__COUNT]; /* series refused at the cap */
} registry;

static registry live;
static sl_metrics_refresh_fn refreshers[8];
static int n_refreshers;

enum { MAX_LABELS = 8, KEY_MAX = 4096 };

/* Splits a family's label spec ("a,b,c") once, on first use. */
static void split_labels(family *f)
{
    const char *spec = f->labels;
    while (*spec && f->n_labels < MAX_LABELS) {
        size_t len = strcspn(spec, ",");
        f->names[f->n_labels] = spec;
        f->name_lens[f->n_labels++] = len;
        spec += len + (spec[len] == ',');
    }
    f->split = true;
}

/* A bounded writer for series keys: no allocation, no per-piece calls into
 * sl_buf (this runs several times per request). */
typedef struct key_writer {
    char *p;
    size_t len;
    bool full;
} key_writer;

static void put(key_writer *w, const char *s, size_t n)
{
    if (w->len + n > KEY_MAX) {
        w->full = true;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

/* Label values are mostly plain: copy runs, escape only \\, " and newline. */
static void put_escaped(key_writer *w, const char *v)
{
    for (; v && *v; v++) {
        size_t run = strcspn(v, "\\\"\n");
        put(w, v, run);
        v += run;
        if (!*v)
            return;
        put(w, *v == '\n' ? "\\n" : *v == '"' ? "\\\"" : "\\\\", 2);
    }
}

/* Renders `a="x",b="y"` for m into out (KEY_MAX bytes); false when too long. */
static bool render_labels(char *out, size_t *len, sl_metric m, const char *const *values)
{
    family *f = &families[m];
    if (!f->split)
        split_labels(f);
    key_writer w = {out, 0, false};
    for (int i = 0; i < f->n_labels; i++) {
        if (i)
            put(&w, ",", 1);
        put(&w, f->names[i], f->name_lens[i]);
        put(&w, "=\"", 2);
        put_escaped(&w, values ? values[i] : "");
        put(&w, "\"", 1);
    }
    *len = w.len;
    return !w.full;
}

static series *find_or_add(registry *g, sl_metric m, const char *lab, size_t len)
{
    uint64_t h = XXH3_64bits_withSeed(lab, len, (uint64_t)m);
    series *s;
    for (s = g->table[h % N_BUCKETS]; s; s = s->next) {
        if (s->hash == h && s->m == m && s->labels_len == len && memcmp(s->labels, lab, len) == 0)
            break;
    }
    if (s)
        return s;
    if (g->n_family[m] >= (g->cap ? g->cap : SL_METRICS_MAX_SERIES)) {
        g->dropped[m]++; /* a label value too many: counted, never grown */
        return NULL;
    }
    if ((s = calloc(1, sizeof(*s) + len + 1))) {
        s->m = m;
        s->hash = h;
        s->labels_len = len;
        memcpy(s->labels, lab, len);
        s->next = g->table[h % N_BUCKETS];
        g->table[h % N_BUCKETS] = s;
        s->fam_next = g->by_family[m];
        g->by_family[m] = s;
        g->n_family[m]++;
    }
    return s;
}

static series *get_series(sl_metric m, const char *const *values)
{
    char key[KEY_MAX];
    size_t len;
    return render_labels(key, &len, m, values) ? find_or_add(&live, m, key, len) : NULL;
}

void sl_metric_add(sl_metric m, double v, const char *const *labels)
{
    series *s = get_series(m, labels);
    if (s)
        s->value += v;
}

/* Bumped when the registry is freed: a kept series pointer of an older one
 * is resolved again (series are otherwise never freed). */
static unsigned generation = 1;

void sl_metric_add_ref(sl_metric_ref *ref, sl_metric m, double v, const char *const *labels)
{
    if (!ref->series || ref->generation != generation) {
        ref->series = get_series(m, labels); /* NULL at the cap: tried again next time */
        ref->generation = generation;
    }
    if (ref->series)
        ((series *)ref->series)->value += v;
}

void sl_metric_set(sl_metric m, double v, const char *const *labels)
{
    series *s = get_series(m, labels);
    if (s) {
        s->value = v;
        s->retired = false;
    }
}

/* Hidden, not freed: a series is never freed while the process runs (the
 * request path keeps pointers to its series), and the family's cap bounds
 * what a retired one costs. */
void sl_metric_retire(sl_metric m)
{
    for (series *s = live.by_family[m]; s; s = s->fam_next)
        s->retired = true;
}

static void observe(series *s, double seconds);

void sl_metric_observe(sl_metric m, double seconds, const char *const *labels)
{
    observe(get_series(m, labels), seconds);
}

static double secs(uint64_t from_us, uint64_t to_us)
{
    return (from_us && to_us >= from_us) ? (double)(to_us - from_us) / 1e6 : -1;
}

/* ---- the series of a finished request, resolved once per label tuple ----
 *
 * A request touches up to eight series whose labels all come from one tuple
 * (route, status, tenant, model, provider, cache). Rendering and hashing each
 * series key per request cost more than the counting, so the tuple is hashed
 * once and mapped (direct-mapped, a collision replaces) to the series it
 * resolved to. Series live until sl_metrics_free, which empties this too. */
enum { TUPLE_SLOTS = 256, TUPLE_MAX = 1024 };
enum {
    RS_REQUESTS,
    RS_DURATION,
    RS_UPSTREAM,
    RS_TTFB,
    RS_TOK_IN,
    RS_TOK_OUT,
    RS_COST,
    RS_SAVED,
    RS_SAVED_CACHE,
    RS__COUNT
};

typedef struct tuple_slot {
    uint64_t hash;
    size_t len;
    char *tuple; /* the label values, NUL-separated (heap) */
    series *s[RS__COUNT];
    bool resolved[RS__COUNT]; /* NULL after resolving: refused (cap) or unrenderable */
    bool capped[RS__COUNT];   /* refused at its family's cap: each use counts a drop */
} tuple_slot;

static tuple_slot tuples[TUPLE_SLOTS];

static void tuples_free(void)
{
    for (int i = 0; i < TUPLE_SLOTS; i++)
        free(tuples[i].tuple);
    memset(tuples, 0, sizeof tuples);
}

/* The slot for the tuple of values v[0..5]; NULL when the tuple is too long to
 * cache (the caller then resolves each series the slow way). */
static tuple_slot *tuple_of(const char *const v[6])
{
    char buf[TUPLE_MAX];
    size_t len = 0;
    for (int i = 0; i < 6; i++) {
        size_t n = strlen(v[i]);
        if (len + n + 1 > sizeof buf)
            return NULL;
        memcpy(buf + len, v[i], n);
        buf[len + n] = '\0';
        len += n + 1;
    }
    uint64_t h = XXH3_64bits(buf, len);
    tuple_slot *t = &tuples[h % TUPLE_SLOTS];
    if (t->tuple && t->hash == h && t->len == len && memcmp(t->tuple, buf, len) == 0)
        return t;
    char *copy = malloc(len);
    if (!copy)
        return NULL;
    free(t->tuple);
    memset(t, 0, sizeof(*t));
    memcpy(copy, buf, len);
    t->tuple = copy;
    t->hash = h;
    t->len = len;
    return t;
}

/* Series `which` of metric m with these labels, through the tuple's slot. */
static series *resolve(tuple_slot *t, int which, sl_metric m, const char *const *labels)
{
    if (!t)
        return get_series(m, labels);
    if (!t->resolved[which]) {
        uint64_t dropped = live.dropped[m];
        t->s[which] = get_series(m, labels);
        t->resolved[which] = true;
        t->capped[which] = live.dropped[m] > dropped;
    } else if (t->capped[which]) {
        live.dropped[m]++; /* as resolving it again would have counted */
    }
    return t->s[which];
}

static void add_to(series *s, double v)
{
    if (s)
        s->value += v;
}

static void observe(series *s, double seconds)
{
    if (!s)
        return;
    s->value += seconds;
    s->count++;
    for (int i = 0; i < N_BOUNDS; i++) {
        if (seconds <= bounds[i])
            s->buckets[i]++;
    }
}

static void llm_series(const sl_req *r, tuple_slot *t, const char *tenant, const char *model,
                       const char *provider, const char *cache)
{
    double d;
    if ((d = secs(r->t_upstream_start, r->t_upstream_end)) >= 0)
        observe(resolve(t, RS_UPSTREAM, SL_M_UPSTREAM_SECONDS, &provider), d);
    if ((d = secs(r->t_upstream_start, r->t_first_byte)) >= 0)
        observe(resolve(t, RS_TTFB, SL_M_TTFB_SECONDS, &provider), d);
    const char *in_labels[] = {tenant, model, "input"};
    const char *out_labels[] = {tenant, model, "output"};
    const char *tm[] = {tenant, model};
    if (r->prompt_tokens)
        add_to(resolve(t, RS_TOK_IN, SL_M_TOKENS, in_labels), (double)r->prompt_tokens);
    if (r->completion_tokens)
        add_to(resolve(t, RS_TOK_OUT, SL_M_TOKENS, out_labels), (double)r->completion_tokens);
    /* the kinds priced apart: parts of input (OpenAI) or beside it (Anthropic),
     * and reasoning, a part of output (rarer series: looked up, not cached) */
    const struct {
        const char *direction;
        long n;
    } kinds[] = {{"cached_input", r->cached_tokens},
                 {"cache_write", r->cache_write_tokens},
                 {"reasoning", r->reasoning_tokens}};
    for (size_t i = 0; i < SL_ARRAY_LEN(kinds); i++) {
        const char *labels[] = {tenant, model, kinds[i].direction};
        if (kinds[i].n > 0)
            sl_metric_add(SL_M_TOKENS, (double)kinds[i].n, labels);
    }
    if (r->cost_usd > 0)
        add_to(resolve(t, RS_COST, SL_M_COST, tm), r->cost_usd);
    if (r->saved_usd > 0) {
        add_to(resolve(t, RS_SAVED, SL_M_SAVED, tm), r->saved_usd);
        add_to(resolve(t, RS_SAVED_CACHE, SL_M_CACHE_SAVED, &cache), r->saved_usd);
    }
}

/* ---- the model label ------------------------------------------------------ *
 * A client names any model it likes; only names the configuration knows, or
 * that a provider answered for, become label values. Served names are kept
 * in a small table; a full table gives its least recently seen slot to a new
 * name once that one has been idle for MODEL_IDLE_MS. */

enum { MODEL_NAME_MAX = 128, MODEL_IDLE_MS = 3600 * 1000 };

static struct {
    uint64_t hash[SL_METRICS_MAX_MODELS];
    uint64_t seen_ms[SL_METRICS_MAX_MODELS];
    char name[SL_METRICS_MAX_MODELS][MODEL_NAME_MAX];
    size_t n;
} served;

static int served_find(uint64_t h, const char *name)
{
    for (size_t i = 0; i < served.n; i++) {
        if (served.hash[i] == h && strcmp(served.name[i], name) == 0)
            return (int)i;
    }
    return -1;
}

static bool served_add(uint64_t h, const char *name)
{
    size_t at = served.n;
    uint64_t now = sl_now_ms();
    if (at == SL_METRICS_MAX_MODELS) {
        at = 0;
        for (size_t i = 1; i < served.n; i++) {
            if (served.seen_ms[i] < served.seen_ms[at])
                at = i;
        }
        if (now - served.seen_ms[at] < MODEL_IDLE_MS)
            return false;
    } else {
        served.n++;
    }
    served.hash[at] = h;
    served.seen_ms[at] = now;
    snprintf(served.name[at], MODEL_NAME_MAX, "%s", name);
    return true;
}

static bool configured_model(const sl_config *c, sl_str m)
{
    for (size_t i = 0; i < c->n_prices; i++) {
        if (sl_str_eq_c(m, c->prices[i].model))
            return true;
    }
    for (size_t i = 0; i < c->n_providers; i++) {
        const sl_provider_conf *p = &c->providers[i];
        for (size_t k = 0; k < p->n_models; k++) {
            if (!strchr(p->models[k], '*') && sl_str_eq_c(m, p->models[k]))
                return true;
        }
    }
    return c->triage.model && sl_str_eq_c(m, c->triage.model);
}

const char *sl_metrics_model_label(const sl_req *r, char *out, size_t cap)
{
    size_t n = r->llm.model.p ? SL_MIN(r->llm.model.len, SL_MIN(cap, MODEL_NAME_MAX) - 1) : 0;
    memcpy(out, r->llm.model.p ? r->llm.model.p : "", n);
    out[n] = '\0';
    if (!n)
        return out;
    uint64_t h = XXH3_64bits(out, n);
    int i = served_find(h, out);
    if (i >= 0) {
        served.seen_ms[i] = sl_now_ms();
        return out;
    }
    if (configured_model(r->conf, (sl_str){out, n}))
        return out;
    bool answered = r->provider && r->status >= 200 && r->status < 300;
    if (answered && served_add(h, out))
        return out;
    snprintf(out, cap, "other");
    return out;
}

void sl_metrics_request(const sl_req *r)
{
    char status[24], model[MODEL_NAME_MAX];
    sl_fmt_i64(r->status, status);
    sl_metrics_model_label(r, model, sizeof model);
    const char *cache = sl_cache_outcome_name(r->cache);
    const char *tenant = r->is_llm ? r->tenant : "";
    const char *provider = r->provider ? r->provider : "";
    const char *route = r->route ? r->route : "unmatched"; /* never the client's path */
    const char *req_labels[] = {route, status, tenant, model, provider, cache ? cache : ""};
    tuple_slot *t = tuple_of(req_labels);
    add_to(resolve(t, RS_REQUESTS, SL_M_REQUESTS, req_labels), 1);
    double d = secs(r->t_start, r->t_end);
    if (d >= 0)
        observe(resolve(t, RS_DURATION, SL_M_REQUEST_SECONDS, &route), d);
    if (!r->is_llm)
        return;
    llm_series(r, t, tenant, model, provider, req_labels[5]);
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

/* Every append is checked: a buffer at its bound (or out of memory) makes
 * the whole rendering fail, never a truncated exposition. */
static int render_value(sl_buf *out, double v)
{
    if (isnan(v) || isinf(v))
        return sl_buf_append_c(out, isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf"));
    return sl_buf_printf(out, "%.17g", v);
}

static int render_histogram(sl_buf *out, const family *f, const series *s)
{
    const char *sep = s->labels[0] ? "," : "";
    int rc = 0;
    for (int i = 0; i < N_BOUNDS && !rc; i++)
        rc = sl_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", f->name, s->labels, sep,
                           bounds[i], (unsigned long long)s->buckets[i]);
    rc = rc ? rc
            : sl_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels, sep,
                            (unsigned long long)s->count);
    rc = rc ? rc : sl_buf_printf(out, "%s_sum{%s} ", f->name, s->labels);
    rc = rc ? rc : render_value(out, s->value);
    return rc ? rc
              : sl_buf_printf(out, "\n%s_count{%s} %llu\n", f->name, s->labels,
                              (unsigned long long)s->count);
}

static int render_series(sl_buf *out, const family *f, const series *s)
{
    if (strcmp(f->type, "histogram") == 0)
        return render_histogram(out, f, s);
    int rc = s->labels[0] ? sl_buf_printf(out, "%s{%s} ", f->name, s->labels)
                          : sl_buf_printf(out, "%s ", f->name);
    rc = rc ? rc : render_value(out, s->value);
    return rc ? rc : sl_buf_append(out, "\n", 1);
}

static bool shown(const series *s)
{
    while (s && s->retired)
        s = s->fam_next;
    return s != NULL;
}

static int render_registry(const registry *g, sl_buf *out)
{
    int rc = 0;
    for (int m = 0; m < SL_M__COUNT && !rc; m++) {
        const family *f = &families[m];
        if (!shown(g->by_family[m]) && f->labels[0])
            continue; /* a labelled family with no series (yet, or now) */
        rc = sl_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
        if (!rc && !g->by_family[m])
            rc = sl_buf_printf(out, "%s 0\n", f->name);
        for (const series *s = g->by_family[m]; s && !rc; s = s->fam_next)
            rc = s->retired ? 0 : render_series(out, f, s);
    }
    return rc;
}

/* The drop counters are series of their own (one per family at most), set
 * before each scrape and publish so that workers add theirs up. */
static void sync_dropped(void)
{
    for (int m = 0; m < SL_M__COUNT; m++) {
        if (live.dropped[m]) {
            const char *name = families[m].name;
            sl_metric_set(SL_M_SERIES_DROPPED, (double)live.dropped[m], &name);
        }
    }
}

static void registry_free(registry *g)
{
    for (int i = 0; i < N_BUCKETS; i++) {
        series *s = g->table[i];
        while (s) {
            series *next = s->next;
            free(s);
            s = next;
        }
    }
    memset(g, 0, sizeof(*g));
}

void sl_metrics_free(void)
{
    tuples_free(); /* it points into the live registry */
    registry_free(&live);
    generation++; /* and so may an sl_metric_ref */
}

/* ---- the process group ---------------------------------------------------- */

enum { SLOT_BYTES = 4u << 20, PUBLISH_MS = 1000, MAX_WORKERS = 64 };

typedef struct slot {
    uint64_t seq; /* odd while its worker writes */
    uint64_t len;
    char data[SLOT_BYTES - 16];
} slot;

static struct {
    slot *slots;        /* shared, one per worker */
    uint64_t *restarts; /* shared: written by the supervisor */
    int n, self;
    struct event *timer;
} group = {.self = -1};

/* Gauges every worker reports of one shared thing: the highest wins, not a
 * sum (one cluster, one shared budget counter or the worker nearest its
 * limit, the worker seeing the most breakers open, the latest start, the
 * supervisor's one restart count). */
static bool is_state_gauge(sl_metric m)
{
    static const sl_metric states[] = {SL_M_BREAKER,
                                       SL_M_REDIS_UP,
                                       SL_M_REDIS_CONFIGURED,
                                       SL_M_REDIS_CLUSTER_MASTERS,
                                       SL_M_REDIS_CLUSTER_SLOTS,
                                       SL_M_BUDGET,
                                       SL_M_BUDGET_SPENT,
                                       SL_M_MODEL_PROVIDERS,
                                       SL_M_MODEL_PROVIDERS_OPEN,
                                       SL_M_START_TIME,
                                       SL_M_WORKER_RESTARTS};
    for (size_t i = 0; i < SL_ARRAY_LEN(states); i++) {
        if (states[i] == m)
            return true;
    }
    return false;
}

static void combine(series *into, sl_metric m, double value, uint64_t count,
                    const uint64_t *buckets)
{
    if (is_state_gauge(m)) {
        into->value = SL_MAX(into->value, value);
        return;
    }
    into->value += value;
    into->count += count;
    for (int i = 0; buckets && i < N_BOUNDS; i++)
        into->buckets[i] += buckets[i];
}

/* A series on the wire: metric (u16), label bytes (u16), labels, value,
 * count, buckets (histograms only). */
static size_t encode_series(const series *s, char *p, size_t room)
{
    bool histo = strcmp(families[s->m].type, "histogram") == 0;
    uint16_t m = (uint16_t)s->m, ll = (uint16_t)strlen(s->labels);
    size_t need = 4 + ll + 8 + (histo ? 8 + sizeof s->buckets : 0);
    if (need > room)
        return 0;
    memcpy(p, &m, 2);
    memcpy(p + 2, &ll, 2);
    memcpy(p + 4, s->labels, ll);
    memcpy(p + 4 + ll, &s->value, 8);
    if (histo) {
        memcpy(p + 12 + ll, &s->count, 8);
        memcpy(p + 20 + ll, s->buckets, sizeof s->buckets);
    }
    return need;
}

static void publish(void)
{
    slot *me = &group.slots[group.self];
    __atomic_add_fetch(&me->seq, 1, __ATOMIC_ACQ_REL);
    size_t at = 0;
    for (int m = 0; m < SL_M__COUNT; m++) {
        for (const series *s = live.by_family[m]; s; s = s->fam_next) {
            if (s->retired)
                continue;
            size_t n = encode_series(s, me->data + at, sizeof me->data - at);
            at += n; /* a series that does not fit is left out: 4 MiB is ~20k series */
        }
    }
    me->len = at;
    __atomic_add_fetch(&me->seq, 1, __ATOMIC_ACQ_REL);
}

static void sync_restarts(void)
{
    if (group.restarts)
        sl_metric_set(SL_M_WORKER_RESTARTS,
                      (double)__atomic_load_n(group.restarts, __ATOMIC_RELAXED), NULL);
}

void sl_metrics_note_restart(void)
{
    if (group.restarts)
        __atomic_add_fetch(group.restarts, 1, __ATOMIC_RELAXED);
}

static void on_publish(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd), SL_UNUSED(what), SL_UNUSED(arg);
    for (int i = 0; i < n_refreshers; i++)
        refreshers[i]();
    sync_dropped();
    sync_restarts();
    publish();
}

/* Copies a consistent snapshot of slot i into a fresh buffer (NULL when the
 * worker never published or kept writing through three tries). */
static char *read_slot(int i, size_t *len)
{
    slot *sl = &group.slots[i];
    for (int tries = 0; tries < 3; tries++) {
        uint64_t a = __atomic_load_n(&sl->seq, __ATOMIC_ACQUIRE);
        if (a == 0 || (a & 1))
            continue;
        size_t n = SL_MIN(__atomic_load_n(&sl->len, __ATOMIC_RELAXED), sizeof sl->data);
        char *copy = malloc(n ? n : 1);
        if (!copy)
            return NULL;
        memcpy(copy, sl->data, n);
        if (__atomic_load_n(&sl->seq, __ATOMIC_ACQUIRE) == a) {
            *len = n;
            return copy;
        }
        free(copy);
    }
    return NULL;
}

static void merge_snapshot(registry *g, const char *p, size_t len)
{
    size_t at = 0;
    while (at + 12 <= len) {
        uint16_t m, ll;
        memcpy(&m, p + at, 2);
        memcpy(&ll, p + at + 2, 2);
        if (m >= SL_M__COUNT)
            return;
        bool histo = strcmp(families[m].type, "histogram") == 0;
        size_t need = 4 + (size_t)ll + 8 + (histo ? 8 + sizeof(uint64_t) * N_BOUNDS : 0);
        if (at + need > len)
            return;
        double value;
        uint64_t count = 0, buckets[N_BOUNDS] = {0};
        memcpy(&value, p + at + 4 + ll, 8);
        if (histo) {
            memcpy(&count, p + at + 12 + ll, 8);
            memcpy(buckets, p + at + 20 + ll, sizeof buckets);
        }
        series *s = find_or_add(g, (sl_metric)m, p + at + 4, ll);
        if (s)
            combine(s, (sl_metric)m, value, count, histo ? buckets : NULL);
        at += need;
    }
}

static int render_group(sl_buf *out)
{
    registry *g = calloc(1, sizeof(*g));
    if (!g)
        return SL_ENOMEM;
    g->cap = (size_t)SL_METRICS_MAX_SERIES * (size_t)group.n; /* the union of the workers' */
    for (int m = 0; m < SL_M__COUNT; m++) {
        for (const series *s = live.by_family[m]; s; s = s->fam_next) {
            series *t = find_or_add(g, s->m, s->labels, strlen(s->labels));
            if (t)
                combine(t, s->m, s->value, s->count, s->buckets);
        }
    }
    for (int i = 0; i < group.n; i++) {
        size_t len;
        char *snap = i == group.self ? NULL : read_slot(i, &len);
        if (snap)
            merge_snapshot(g, snap, len);
        free(snap);
    }
    int rc = render_registry(g, out);
    registry_free(g);
    free(g);
    return rc;
}

int sl_metrics_render(sl_buf *out)
{
    for (int i = 0; i < n_refreshers; i++)
        refreshers[i]();
    sync_dropped();
    sync_restarts();
    int rc = group.slots && group.self >= 0 ? render_group(out) : render_registry(&live, out);
    if (rc)
        sl_buf_reset(out);
    return rc;
}

int sl_metrics_share(int workers)
{
    if (workers < 2 || workers > MAX_WORKERS)
        return SL_EINVAL;
    /* the slots, then one page whose first word counts restarts */
    size_t bytes = (size_t)workers * sizeof(slot);
    void *p = mmap(NULL, bytes + 4096, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return SL_ENOMEM;
    group.slots = p;
    group.restarts = (uint64_t *)((char *)p + bytes);
    group.n = workers;
    return SL_OK;
}

void sl_metrics_worker(struct event_base *base, int index)
{
    if (!group.slots || index < 0 || index >= group.n)
        return;
    group.self = index;
    slot *me = &group.slots[index];
    __atomic_store_n(&me->seq, 0, __ATOMIC_RELEASE); /* a restarted worker starts afresh */
    group.timer = event_new(base, -1, EV_PERSIST, on_publish, NULL);
    struct timeval tv = {PUBLISH_MS / 1000, (PUBLISH_MS % 1000) * 1000};
    if (group.timer)
        event_add(group.timer, &tv);
}

void sl_metrics_worker_stop(void)
{
    if (group.timer)
        event_free(group.timer);
    group.timer = NULL;
}
