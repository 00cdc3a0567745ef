/* vindex.c — the semantic cache's index under load (issue 20): lookup time
 * p50/p99 (wall and the thread's CPU), recall@1 against an exact float32
 * scan, the served decision against the exact scan's, the memory the index
 * holds and what building it costs, at 10k and 100k entries of 1536 dims.
 *
 * Two data sets (BENCH_VINDEX_DATA="realistic random"):
 *
 * realistic — shaped like text-embedding-3 vectors of user questions, which
 *   are anisotropic (unrelated texts have cosines ~0.1-0.5, not ~0), clustered
 *   by topic, and of low intrinsic dimension (tens, not 1,536). Fixed seeds:
 *   a latent space of LATENT (48) dims whose variance decays as a power law
 *   (sd of latent dim j ~ (j + 1)^-0.5: embedding PCA spectra decay like
 *   that); TOPICS (400) topic centres in it, topic sizes Zipf(1.1) (heavy
 *   tail: the biggest topic ~1/6 of the entries, hundreds of small ones); an
 *   entry is its topic's centre plus a within-topic spread (SPREAD of the
 *   centre's scale), mapped to 1,536 dims by one fixed random linear map,
 *   plus a common mean direction (MEAN: the anisotropy) plus small isotropic
 *   noise (NOISE), unit-normalised. A new question is drawn the same way; a
 *   paraphrase is a stored entry moved to a cosine drawn uniformly in
 *   0.93-0.97 (half of the move in the latent space, half isotropic). The
 *   bench prints the set's statistics beside the table: pairwise cosines of
 *   random entries, a new question's nearest and second nearest.
 *
 * random — the stated worst case: each entry a random Gaussian mix of 64
 *   shared unit directions plus isotropic noise (0.3 of its length), so
 *   isotropic in those directions: pairwise cosines ~0, and a new question's
 *   nearest entry ~0.45 away with many others within a hair (distance
 *   concentration: no index can tell them apart without comparing nearly as
 *   many as a scan). Paraphrases at cosine ~0.95.
 *
 * Two layouts of the same entries (BENCH_VINDEX_LAYOUTS="one mixed"; the
 * random set runs "one" only: its worst case). "one":
 * every entry in one partition (one tenant, model and system prompt: the
 * worst case). "mixed": 30%, 15% and 10% of the entries in three partitions,
 * the rest log-uniform 1..1,500; queries go to a partition in proportion to
 * its size. Half of the queries are paraphrases, half new questions; recall@1
 * is over ALL of them: the index answers the entry an exact float32 scan of
 * the query's partition answers (the bench's own copy of the vectors).
 * "decision" is what a user sees: the served entry (nearest at or above the
 * default threshold 0.95, or none) equals the exact scan's.
 *
 * The index runs what the server runs (SL_VINDEX_EF, the per-size policy in
 * hnsw_shim.cpp); BENCH_VINDEX_EF="32 64" adds rows at other breadths.
 * Building: the entries are loaded and their graphs built with two threads
 * (sl_vindex_load/sl_vindex_build: the bench's only shortcut), then the last
 * TAIL entries go in as the server puts them, one at a time on one thread
 * (sl_vindex_put + sl_vindex_step): "insert µs" is that path's CPU per entry.
 * BENCH_VINDEX_SIZES="10000 100000" chooses the sizes. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/semantic.h"
#include "sluice/vindex.h"

enum { DIM = 1536, QUERIES = 1000, FEATURES = 64, TAIL = 1000 };
enum { LATENT = 48, TOPICS = 400 };
#define SPREAD    0.55f /* within-topic sd, relative to the centres' */
#define MEAN      0.70f /* the common direction's weight (the topic part has length ~1) */
#define NOISE     0.22f /* isotropic noise's length */
#define THRESHOLD 0.95f /* cache.semantic.threshold's default */

typedef enum { REALISTIC, RANDOM } data_kind;

static float *features;                  /* random: FEATURES unit directions */
static float *amap;                      /* realistic: DIM x LATENT linear map */
static float mean_dir[DIM];              /* realistic: the common direction */
static float centres[TOPICS][LATENT];    /* realistic: topic centres */
static double topic_cdf[TOPICS];         /* realistic: Zipf(1.1) topic sizes */
static float sd_of[LATENT];              /* realistic: latent spectrum */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static double uniform(void)
{
    return ((rnd() >> 11) + 0.5) / 9007199254740992.0;
}

static float gauss(void)
{
    double u = uniform(), v = uniform();
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

static float dot(const float *a, const float *b)
{
    float s = 0;
    for (int i = 0; i < DIM; i++)
        s += a[i] * b[i];
    return s;
}

static void unit_gauss(float *out) /* a random unit vector, isotropic */
{
    for (int i = 0; i < DIM; i++)
        out[i] = gauss();
    sl_sem_normalise(out, DIM);
}

static void setup(void)
{
    features = malloc((size_t)FEATURES * DIM * sizeof(float));
    amap = malloc((size_t)DIM * LATENT * sizeof(float));
    if (!features || !amap)
        exit(1);
    for (int j = 0; j < FEATURES; j++)
        unit_gauss(&features[j * DIM]);
    for (size_t i = 0; i < (size_t)DIM * LATENT; i++)
        amap[i] = gauss() / sqrtf(DIM);
    unit_gauss(mean_dir);
    double norm = 0, total = 0;
    for (int j = 0; j < LATENT; j++)
        sd_of[j] = powf((float)(j + 1), -0.25f), norm += sd_of[j] * sd_of[j];
    for (int j = 0; j < LATENT; j++) /* the latent part has length ~1 */
        sd_of[j] /= (float)sqrt(norm);
    for (int t = 0; t < TOPICS; t++) {
        for (int j = 0; j < LATENT; j++)
            centres[t][j] = gauss() * sd_of[j];
        total += pow(t + 1, -1.1);
        topic_cdf[t] = total;
    }
    for (int t = 0; t < TOPICS; t++)
        topic_cdf[t] /= total;
}

/* out = unit(A z / |A z| + MEAN * mean_dir + NOISE * isotropic) */
static void from_latent(float *out, const float *z)
{
    float x[DIM];
    for (int i = 0; i < DIM; i++) {
        float v = 0;
        for (int j = 0; j < LATENT; j++)
            v += amap[i * LATENT + j] * z[j];
        x[i] = v;
    }
    sl_sem_normalise(x, DIM);
    for (int i = 0; i < DIM; i++)
        out[i] = x[i] + MEAN * mean_dir[i] + NOISE * gauss() / sqrtf(DIM);
    sl_sem_normalise(out, DIM);
}

static void realistic_entry(float *out)
{
    double u = uniform();
    int t = 0;
    while (t < TOPICS - 1 && topic_cdf[t] < u)
        t++;
    float z[LATENT];
    for (int j = 0; j < LATENT; j++)
        z[j] = centres[t][j] + SPREAD * gauss() * sd_of[j];
    from_latent(out, z);
}

static void random_entry(float *out, const float *base, float b, float c)
{
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

static void new_entry(data_kind k, float *out)
{
    if (k == REALISTIC)
        realistic_entry(out);
    else
        random_entry(out, NULL, 1.0f, 0.3f);
}

/* A paraphrase of e: realistic, at a cosine uniform in 0.93-0.97 (the move
 * half along the latent map, half isotropic, orthogonal to e). */
static void paraphrase(data_kind k, const float *e, float *out)
{
    if (k == RANDOM) {
        random_entry(out, e, 0.3f, 0.1f);
        return;
    }
    float z[LATENT], d[DIM], n[DIM];
    for (int j = 0; j < LATENT; j++)
        z[j] = gauss() * sd_of[j];
    for (int i = 0; i < DIM; i++) {
        float v = 0;
        for (int j = 0; j < LATENT; j++)
            v += amap[i * LATENT + j] * z[j];
        d[i] = v;
    }
    sl_sem_normalise(d, DIM);
    unit_gauss(n);
    for (int i = 0; i < DIM; i++)
        d[i] = d[i] + n[i];
    float along = dot(d, e);
    for (int i = 0; i < DIM; i++)
        d[i] -= along * e[i];
    sl_sem_normalise(d, DIM);
    double c = 0.93 + 0.04 * uniform(), eta = sqrt(1 / (c * c) - 1);
    for (int i = 0; i < DIM; i++)
        out[i] = e[i] + (float)eta * d[i];
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

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static size_t efs[8], n_efs; /* extra breadths; 0: the store's own */

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
        size_t sz = (size_t)exp(uniform() * log(1500.0)) + 1;
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

/* The queries of one row, and the exact scan's answers for them. */
typedef struct queries {
    float *q;          /* QUERIES x DIM */
    size_t part[QUERIES], of[QUERIES]; /* partition; the entry a paraphrase is of */
    size_t want[QUERIES];
    float top[QUERIES], second[QUERIES];
} queries;

/* Exact float32 top-2 of up to 32 queries of one partition at a time (each
 * stored vector read once per 32 queries; summation reassociated so it vectorises:
 * still float32 products, the order of additions aside). */
__attribute__((optimize("O3", "associative-math", "no-signed-zeros", "no-trapping-math")))
static void exact8(const float *v, size_t from, size_t to, queries *qs, const int *k, int nk)
{
    for (size_t i = from; i < to; i++) {
        const float *x = &v[i * DIM];
        for (int j = 0; j < nk; j++) {
            const float *q = &qs->q[(size_t)k[j] * DIM];
            float d = 0;
            for (int c = 0; c < DIM; c++)
                d += x[c] * q[c];
            int w = k[j];
            if (d > qs->top[w])
                qs->second[w] = qs->top[w], qs->top[w] = d, qs->want[w] = i;
            else if (d > qs->second[w])
                qs->second[w] = d;
        }
    }
}

static int cmp_by_part(const void *a, const void *b, void *arg)
{
    const queries *qs = arg;
    size_t x = qs->part[*(const int *)a], y = qs->part[*(const int *)b];
    return (x > y) - (x < y);
}

static void exact_all(const layout *l, const float *v, queries *qs)
{
    static int order[QUERIES];
    for (int k = 0; k < QUERIES; k++)
        order[k] = k, qs->top[k] = qs->second[k] = -2;
    qsort_r(order, QUERIES, sizeof(int), cmp_by_part, qs);
    for (int k = 0; k < QUERIES;) {
        int nk = 1;
        size_t p = qs->part[order[k]];
        while (nk < 32 && k + nk < QUERIES && qs->part[order[k + nk]] == p)
            nk++;
        exact8(v, l->start[p], l->start[p + 1], qs, &order[k], nk);
        k += nk;
    }
}

static void make_queries(data_kind kind, const layout *l, const float *v, size_t n, queries *qs)
{
    for (int k = 0; k < QUERIES; k++) {
        size_t at = rnd() % n; /* a partition in proportion to its size */
        qs->part[k] = part_of(l, at);
        qs->of[k] = k % 2 ? at : (size_t)-1;
        if (k % 2)
            paraphrase(kind, &v[at * DIM], &qs->q[(size_t)k * DIM]);
        else
            new_entry(kind, &qs->q[(size_t)k * DIM]);
    }
    exact_all(l, v, qs);
}

static const char *kind_name(data_kind k)
{
    return k == REALISTIC ? "realistic" : "random";
}

static void pcts(const char *what, float *x, size_t n)
{
    qsort(x, n, sizeof(float), cmp_float);
    fprintf(stderr, "    %-46s p5 %.3f  p50 %.3f  p95 %.3f  (min %.3f, max %.3f)\n", what,
            x[n * 5 / 100], x[n / 2], x[n * 95 / 100], x[0], x[n - 1]);
}

/* What the data set looks like: compare with what is known of real
 * embeddings (README-style numbers in bench/results.md). */
static void stats(data_kind kind, const layout *l, const float *v, size_t n, const queries *qs)
{
    enum { PAIRS = 4000 };
    static float c[PAIRS], a[QUERIES / 2], b[QUERIES / 2], g[QUERIES / 2], pc[QUERIES / 2];
    for (int i = 0; i < PAIRS; i++) {
        size_t x = rnd() % n, y = rnd() % n;
        c[i] = dot(&v[x * DIM], &v[(y == x ? (y + 1) % n : y) * DIM]);
    }
    size_t nn = 0, np = 0, served = 0;
    for (int k = 0; k < QUERIES; k++) {
        if (k % 2)
            pc[np++] = dot(&qs->q[(size_t)k * DIM], &v[qs->of[k] * DIM]);
        else
            a[nn] = qs->top[k], b[nn] = qs->second[k], g[nn] = qs->top[k] - qs->second[k],
            served += qs->top[k] >= THRESHOLD, nn++;
    }
    fprintf(stderr, "  data %s, %zu entries, %s (%zu partitions):\n", kind_name(kind), n, l->name,
            l->n_parts);
    pcts("cosine of two random entries", c, PAIRS);
    int mid = 0;
    for (int i = 0; i < PAIRS; i++)
        mid += c[i] >= 0.1f && c[i] <= 0.5f;
    fprintf(stderr, "    pairs with a cosine in 0.1-0.5: %.2f\n", (double)mid / PAIRS);
    pcts("paraphrase: cosine to its entry", pc, np);
    pcts("new question: nearest entry in its partition", a, nn);
    pcts("new question: second nearest", b, nn);
    pcts("new question: nearest - second", g, nn);
    fprintf(stderr, "    new questions whose nearest is >= %.2f: %zu of %zu\n", THRESHOLD, served,
            nn);
}

typedef struct build_cost {
    double seconds, insert_cpu_us;
} build_cost;

static void measure(sl_vindex *ix, data_kind kind, const layout *l, size_t n, const queries *qs,
                    build_cost bc);

/* Loads n entries (entries arrive in any order across partitions), the
 * graphs built with two threads, then the last TAIL one at a time. */
static build_cost build(sl_vindex *ix, const layout *l, const float *v, size_t n)
{
    uint32_t *order = malloc(n * sizeof(uint32_t));
    if (!order)
        exit(1);
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = rnd() % (i + 1);
        uint32_t t = order[i];
        order[i] = order[j], order[j] = t;
    }
    size_t tail = n > 4 * TAIL ? TAIL : 0;
    double t0 = now_us();
    for (size_t i = 0; i < n - tail; i++)
        sl_vindex_load(ix, order[i], part_of(l, order[i]) + 1, &v[(size_t)order[i] * DIM]);
    if (sl_vindex_build(ix, 2) != 0)
        exit(1);
    double c0 = cpu_us();
    for (size_t i = n - tail; i < n; i++) {
        size_t e = order[i];
        sl_vindex_put(ix, (uint32_t)e, part_of(l, e) + 1, &v[e * DIM]);
    }
    while (sl_vindex_step(ix, 64)) /* what the store's timer does within seconds */
        ;
    build_cost bc = {(now_us() - t0) / 1e6, tail ? (cpu_us() - c0) / (double)tail : 0};
    free(order);
    return bc;
}

/* What a search that compares everything costs: the exact float16 scan of
 * the whole partition (the floor for recall on data where a graph cannot
 * tell the nearest from the rest). */
static void floor_cost(sl_vindex *ix, const queries *qs, size_t n)
{
    enum { K = 40 };
    static double cpu[K];
    for (int k = 0; k < K; k++) {
        uint32_t got;
        float sim;
        double c = cpu_us();
        sl_vindex_nearest_exact(ix, 1, &qs->q[(size_t)k * DIM], &got, &sim);
        cpu[k] = cpu_us() - c;
    }
    qsort(cpu, K, sizeof(double), cmp_double);
    fprintf(stderr, "  exact float16 scan of the %zu-entry partition: CPU p50 %.0f µs, max %.0f µs\n",
            n, cpu[K / 2], cpu[K - 1]);
}

static void run(size_t n, data_kind kind, bool one)
{
    float *v = malloc(n * DIM * sizeof(float));
    queries *qs = malloc(sizeof *qs);
    sl_vindex *ix = sl_vindex_new(DIM, n, SL_VINDEX_EF);
    layout l;
    if (!v || !qs || !ix || !(qs->q = malloc((size_t)QUERIES * DIM * sizeof(float)))) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    (one ? one_partition : mixed)(&l, n);
    for (size_t i = 0; i < n; i++)
        new_entry(kind, &v[i * DIM]);
    build_cost bc = build(ix, &l, v, n);
    double t0 = now_us();
    make_queries(kind, &l, v, n, qs);
    fprintf(stderr, "  (queries and their exact answers: %.1f s)\n", (now_us() - t0) / 1e6);
    stats(kind, &l, v, n, qs);
    measure(ix, kind, &l, n, qs, bc);
    for (size_t e = 0; e < n_efs; e++) {
        sl_vindex_set_ef(ix, efs[e]);
        measure(ix, kind, &l, n, qs, bc);
    }
    if (one && n >= 50000)
        floor_cost(ix, qs, n);
    sl_vindex_free(ix);
    free(l.start);
    free(qs->q);
    free(qs);
    free(v);
}

/* Every row starts from caches that hold none of the index (as after the
 * exact scans, or after another row's walks of the same queries): a server
 * does other work between lookups. */
static void thrash_caches(void)
{
    enum { BYTES = 64 << 20 };
    static unsigned char *junk;
    if (!junk && !(junk = malloc(BYTES)))
        exit(1);
    for (size_t i = 0; i < BYTES; i += 64)
        junk[i] = (unsigned char)(junk[i] + 1);
}

static void measure(sl_vindex *ix, data_kind kind, const layout *l, size_t n, const queries *qs,
                    build_cost bc)
{
    static double took[QUERIES], cpu[QUERIES];
    thrash_caches();
    int agree = 0, decided = 0, para_hits = 0;
    for (int k = 0; k < QUERIES; k++) {
        uint32_t got = 0;
        float sg = -2;
        const float *q = &qs->q[(size_t)k * DIM];
        double a = now_us(), c = cpu_us();
        int found = sl_vindex_nearest(ix, qs->part[k] + 1, q, &got, &sg);
        cpu[k] = cpu_us() - c;
        took[k] = now_us() - a;
        size_t want = qs->want[k];
        agree += found == 1 && got == want;
        size_t served = found == 1 && sg >= THRESHOLD ? got : (size_t)-1;
        decided += served == (qs->top[k] >= THRESHOLD ? want : (size_t)-1);
        para_hits += k % 2 && found == 1 && got == qs->of[k];
    }
    qsort(took, QUERIES, sizeof(double), cmp_double);
    qsort(cpu, QUERIES, sizeof(double), cmp_double);
    printf("| %zu | %s | %s (%zu, %zu graphs) | %zu | %.0f | %.0f | %.0f | %.0f | %.3f | %.3f | "
           "%.3f | %.1f | %.1f | %.0f |\n",
           n, kind_name(kind), l->name, l->n_parts, sl_vindex_graphs(ix), sl_vindex_ef(ix),
           took[QUERIES / 2], took[QUERIES * 99 / 100], cpu[QUERIES / 2],
           cpu[QUERIES * 99 / 100], (double)agree / QUERIES, (double)decided / QUERIES,
           (double)para_hits / (QUERIES / 2),
           (double)sl_vindex_memory(ix) / (1 << 20) * (100000.0 / (double)n), bc.seconds,
           bc.insert_cpu_us);
    fflush(stdout);
}

/* The exact scan of a small partition: what SL_VINDEX_GRAPH_AT trades against
 * a graph, and (at 100k) the floor of a search that must compare everything. */
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
            random_entry(&v[done * DIM], NULL, 1.0f, 0.3f);
            sl_vindex_put(ix, (uint32_t)done, 1, &v[done * DIM]);
        }
        static double cpu[200];
        for (int k = 0; k < 200; k++) {
            uint32_t got;
            random_entry(q, NULL, 1.0f, 0.3f);
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
    setup();
    const char *efl = getenv("BENCH_VINDEX_EF"); /* extra search breadths, "32 64" */
    for (char *end; efl && n_efs < 8; efl = end) {
        size_t e = strtoull(efl, &end, 10);
        if (end == efl)
            break;
        efs[n_efs++] = e;
    }
    const char *sizes = getenv("BENCH_VINDEX_SIZES");
    if (!sizes)
        sizes = "10000 100000";
    const char *lay = getenv("BENCH_VINDEX_LAYOUTS"); /* "one mixed" */
    if (!lay)
        lay = "one mixed";
    const char *data = getenv("BENCH_VINDEX_DATA"); /* "realistic random" */
    if (!data)
        data = "realistic random";
    if (!getenv("BENCH_VINDEX_NO_SCAN"))
        scan_cost();
    printf("semantic index: a partition of more than %d entries gets its own hnswlib graph "
           "(int8, re-ranked in float16); smaller ones are scanned exactly. %d dims, %d "
           "queries; decision: served entry (>= %.2f) as the exact scan's\n\n",
           SL_VINDEX_GRAPH_AT, DIM, QUERIES, THRESHOLD);
    printf("| entries | data | layout (partitions) | ef | lookup p50 µs | lookup p99 µs | CPU p50 "
           "µs | CPU p99 µs | recall@1 (all) | decision | paraphrase found | MiB per 100k | "
           "build s | insert CPU µs |\n"
           "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const char *p = sizes; *p;) {
        char *end;
        size_t n = strtoull(p, &end, 10);
        if (end == p)
            break;
        for (int k = REALISTIC; k <= RANDOM; k++) {
            if (!strstr(data, kind_name((data_kind)k)))
                continue;
            if (strstr(lay, "one"))
                run(n, (data_kind)k, true);
            if (strstr(lay, "mixed") && k == REALISTIC)
                run(n, (data_kind)k, false);
        }
        p = end;
    }
    free(features);
    free(amap);
    return 0;
}
