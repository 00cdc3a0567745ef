/* vindex.c — the semantic cache's index under load (issue 20): lookup time
 * p50/p99, recall@1 against an exact scan, and the memory the index holds,
 * at 10k and 100k entries of 1536 dimensions.
 *
 * Two layouts of the same entries. "one partition": every entry in one
 * partition (one tenant, one model, one system prompt: the worst case for a
 * search). "mixed": like real use, a few big partitions (30%, 15% and 10%
 * of the entries) and many small ones (log-uniform sizes from 1 to 1,500);
 * queries go to a partition in proportion to its size. Recall@1 is over
 * ALL queries: the index answers the same entry as an exact float32 scan of
 * the query's partition (the bench's own copy of the vectors, not the
 * index's float16 ones).
 *
 * The vectors are shaped like text embeddings, not uniform noise: those
 * have a low intrinsic dimension (tens) spread over their 1,536
 * coordinates. Each entry is a random mix of 64 shared unit directions plus
 * a little noise of its own (~0.3 of its length). Half of the queries are
 * paraphrases of stored entries (cosine ~0.95 to their entry), half new
 * questions drawn the same way as the entries (their nearest entry is
 * ~0.45 away and many others nearly as close: the hard case for recall).
 * BENCH_VINDEX_ISOTROPIC=1 makes the entries 1,000 topics plus isotropic
 * noise instead. One thread, in sluice. BENCH_VINDEX_SIZES="10000 100000"
 * chooses the sizes, BENCH_VINDEX_EF the search breadths. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/semantic.h"
#include "sluice/vindex.h"

enum { DIM = 1536, TOPICS = 1000, QUERIES = 1000, FEATURES = 64 };

static float *features; /* FEATURES unit directions shared by every entry */
static bool isotropic;

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float gauss(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    double u = ((rng >> 11) + 0.5) / 9007199254740992.0;
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    double v = ((rng >> 11) + 0.5) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

/* out = unit(base * a + noise * b) */
static void mix(float *out, const float *base, float a, float b)
{
    for (int i = 0; i < DIM; i++)
        out[i] = (base ? base[i] * a : 0) + gauss() * b / sqrtf(DIM);
    sl_sem_normalise(out, DIM);
}

/* out = unit(base + a spread of the shared features * b + own noise * c) */
static void entry_like(float *out, const float *base, float b, float c)
{
    if (isotropic) {
        mix(out, base, 1.0f, b == 1.0f ? 0.9f : 0.3f);
        return;
    }
    float g[FEATURES];
    for (int j = 0; j < FEATURES; j++)
        g[j] = gauss() * b / sqrtf(FEATURES);
    for (int i = 0; i < DIM; i++) {
        float v = (base ? base[i] : 0) + gauss() * c / sqrtf(DIM);
        for (int j = 0; j < FEATURES; j++)
            v += g[j] * features[j * DIM + i];
        out[i] = v;
    }
    sl_sem_normalise(out, DIM);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static double cpu_us(void) /* this thread's CPU time: what a lookup costs, whatever else runs */
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static size_t efs[8] = {48}, n_efs = 1; /* 48: what the semantic store uses (semstore.c) */

static uint64_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

/* A layout: partition p holds entries [start[p], start[p + 1]). */
typedef struct layout {
    const char *name;
    size_t n_parts, *start;
} layout;

static void one_partition(layout *l, size_t n)
{
    l->name = "one partition";
    l->n_parts = 1;
    l->start = malloc(2 * sizeof(size_t));
    l->start[0] = 0, l->start[1] = n;
}

/* 30%, 15%, 10% of the entries, then log-uniform sizes 1..1500 */
static void mixed(layout *l, size_t n)
{
    l->name = "mixed";
    l->start = malloc((n + 2) * sizeof(size_t));
    size_t at = 0, p = 0;
    static const double big[] = {0.30, 0.15, 0.10};
    for (; p < 3; p++)
        l->start[p] = at, at += (size_t)(big[p] * (double)n);
    while (at < n) {
        size_t sz = (size_t)exp((double)(rnd() >> 11) / 9007199254740992.0 * log(1500.0)) + 1;
        l->start[p++] = at;
        at += sz < n - at ? sz : n - at;
    }
    l->start[p] = n;
    l->n_parts = p;
}

static size_t part_of(const layout *l, size_t i) /* the partition entry i is in */
{
    size_t lo = 0, hi = l->n_parts;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        *(l->start[mid] <= i ? &lo : &hi) = mid;
    }
    return lo;
}

static size_t exact(const layout *l, size_t p, const float *v, const float *q, float *sim)
{
    size_t best = l->start[p];
    float top = -2;
    for (size_t i = l->start[p]; i < l->start[p + 1]; i++) {
        float d = 0;
        for (int k = 0; k < DIM; k++)
            d += v[i * DIM + k] * q[k];
        if (d > top)
            top = d, best = i;
    }
    *sim = top;
    return best;
}

static void measure(sl_vindex *ix, const layout *l, const float *v, size_t n, double build_s,
                    const float *topics);

static void run(size_t n, float *topics, bool one)
{
    float *v = malloc(n * DIM * sizeof(float));
    uint32_t *order = malloc(n * sizeof(uint32_t));
    sl_vindex *ix = sl_vindex_new(DIM, n, efs[0]);
    layout l;
    if (!v || !order || !ix) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    (one ? one_partition : mixed)(&l, n);
    for (size_t i = 0; i < n; i++) {
        entry_like(&v[i * DIM], isotropic ? &topics[(i % TOPICS) * DIM] : NULL, 1.0f, 0.3f);
        order[i] = (uint32_t)i;
    }
    for (size_t i = n - 1; i > 0; i--) { /* entries arrive in any order across partitions */
        size_t j = rnd() % (i + 1);
        uint32_t t = order[i];
        order[i] = order[j], order[j] = t;
    }
    double t0 = now_us();
    for (size_t i = 0; i < n; i++) {
        size_t e = order[i];
        sl_vindex_put(ix, (uint32_t)e, part_of(&l, e) + 1, &v[e * DIM]);
    }
    while (sl_vindex_step(ix, 64)) /* what the store's timer does within seconds */
        ;
    double build_s = (now_us() - t0) / 1e6;
    for (size_t e = 0; e < n_efs; e++) {
        sl_vindex_set_ef(ix, efs[e]);
        measure(ix, &l, v, n, build_s, topics);
    }
    sl_vindex_free(ix);
    free(l.start);
    free(order);
    free(v);
}

static void measure(sl_vindex *ix, const layout *l, const float *v, size_t n, double build_s,
                    const float *topics)
{
    static float q[DIM];
    static double took[QUERIES], cpu[QUERIES];
    int agree = 0, para_hits = 0, close = 0, close_agree = 0;
    double para_sim = 0, new_sim = 0;
    for (int k = 0; k < QUERIES; k++) {
        size_t at = rnd() % n; /* a partition in proportion to its size */
        size_t p = part_of(l, at);
        if (k % 2)
            entry_like(q, &v[at * DIM], 0.3f, 0.1f); /* a paraphrase of entry `at` */
        else
            entry_like(q, isotropic ? &topics[(at % TOPICS) * DIM] : NULL, 1.0f, 0.3f); /* new */
        uint32_t got;
        float sg, sw;
        double a = now_us(), c = cpu_us();
        int found = sl_vindex_nearest(ix, p + 1, q, &got, &sg);
        took[k] = now_us() - a;
        cpu[k] = cpu_us() - c;
        size_t want = exact(l, p, v, q, &sw);
        agree += found == 1 && got == want;
        close += sw >= 0.9f; /* a nearest that could be served */
        close_agree += sw >= 0.9f && found == 1 && got == want;
        *(k % 2 ? &para_sim : &new_sim) += sw;
        para_hits += k % 2 && found == 1 && got == at;
    }
    qsort(took, QUERIES, sizeof(double), cmp_double);
    qsort(cpu, QUERIES, sizeof(double), cmp_double);
    fprintf(stderr, "  (n=%zu %s: mean nearest similarity: paraphrases %.3f, new questions %.3f)\n",
            n, l->name, para_sim / (QUERIES / 2), new_sim / (QUERIES / 2));
    printf("| %zu | %s (%zu, %zu graphs) | %zu | %.0f | %.0f | %.0f | %.0f | %.3f | %.3f | %.3f | "
           "%.1f | %.1f |\n",
           n, l->name, l->n_parts, sl_vindex_graphs(ix), sl_vindex_ef(ix), took[QUERIES / 2],
           took[QUERIES * 99 / 100], cpu[QUERIES / 2], cpu[QUERIES * 99 / 100],
           (double)agree / QUERIES, close ? (double)close_agree / close : 1.0,
           (double)para_hits / (QUERIES / 2),
           (double)sl_vindex_memory(ix) / (1 << 20) * (100000.0 / (double)n), build_s);
    fflush(stdout);
}

/* The exact scan of a small partition: what SL_VINDEX_GRAPH_AT trades against a graph. */
static void scan_cost(void)
{
    enum { MAXN = 4096 };
    float *v = malloc((size_t)MAXN * DIM * sizeof(float)), sim;
    sl_vindex *ix = sl_vindex_new(DIM, MAXN, 64);
    static float q[DIM];
    if (!v || !ix)
        exit(1);
    printf("exact scan of one partition (float16), CPU µs per lookup:\n\n| entries | p50 | p99 |\n"
           "|---:|---:|---:|\n");
    for (size_t sz = 256, done = 0; sz <= MAXN; sz *= 2) {
        for (; done < sz; done++) {
            entry_like(&v[done * DIM], NULL, 1.0f, 0.3f);
            sl_vindex_put(ix, (uint32_t)done, 1, &v[done * DIM]);
        }
        static double cpu[200];
        for (int k = 0; k < 200; k++) {
            uint32_t got;
            entry_like(q, NULL, 1.0f, 0.3f);
            double c = cpu_us();
            sl_vindex_nearest_exact(ix, 1, q, &got, &sim);
            cpu[k] = cpu_us() - c;
        }
        qsort(cpu, 200, sizeof(double), cmp_double);
        printf("| %zu | %.0f | %.0f |\n", sz, cpu[100], cpu[198]);
    }
    printf("\n");
    sl_vindex_free(ix);
    free(v);
}

int main(void)
{
    float *topics = malloc((size_t)TOPICS * DIM * sizeof(float));
    if (!topics)
        return 1;
    features = malloc((size_t)FEATURES * DIM * sizeof(float));
    if (!features)
        return 1;
    isotropic = getenv("BENCH_VINDEX_ISOTROPIC") && getenv("BENCH_VINDEX_ISOTROPIC")[0] == '1';
    for (int t = 0; t < TOPICS; t++)
        mix(&topics[t * DIM], NULL, 0, 1);
    for (int j = 0; j < FEATURES; j++)
        mix(&features[j * DIM], NULL, 0, 1);
    const char *efl = getenv("BENCH_VINDEX_EF"); /* search breadths to measure, "32 64" */
    if (!efl)
        efl = "32 48 64";
    n_efs = 0;
    for (char *end; n_efs < 8; efl = end) {
        size_t e = strtoull(efl, &end, 10);
        if (end == efl)
            break;
        efs[n_efs++] = e;
    }
    if (!n_efs)
        efs[n_efs++] = 64;
    const char *sizes = getenv("BENCH_VINDEX_SIZES");
    if (!sizes)
        sizes = "10000 100000";
    const char *lay = getenv("BENCH_VINDEX_LAYOUTS"); /* "one mixed" */
    if (!lay)
        lay = "one mixed";
    scan_cost();
    printf("semantic index: a partition of more than %d entries gets its own hnswlib graph "
           "(int8, re-ranked in float16); smaller ones are scanned exactly. %d dims, %d "
           "queries%s\n\n",
           SL_VINDEX_GRAPH_AT, DIM, QUERIES, isotropic ? ", isotropic entries" : "");
    printf("| entries | layout (partitions) | ef | lookup p50 µs | lookup p99 µs | CPU p50 µs | "
           "CPU p99 µs | recall@1 (all) | recall@1, nearest >= 0.9 | paraphrase found | MiB per "
           "100k | build s |\n"
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const char *p = sizes; *p;) {
        char *end;
        size_t n = strtoull(p, &end, 10);
        if (end == p)
            break;
        if (strstr(lay, "one"))
            run(n, topics, true);
        if (strstr(lay, "mixed"))
            run(n, topics, false);
        p = end;
    }
    free(topics);
    free(features);
    return 0;
}
