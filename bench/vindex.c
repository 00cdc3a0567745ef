/* vindex.c — the semantic cache's index under load (issue 20): lookup time
 * p50/p99 and recall@1 against an exact scan, at 10k and 100k entries of
 * 1536 dimensions in one partition, and the memory the index holds.
 *
 * The vectors are shaped like text embeddings, not uniform noise: those
 * have a low intrinsic dimension (tens) spread over their 1,536
 * coordinates. Each entry is a random mix of 64 shared unit directions plus
 * a little noise of its own (~0.3 of its length). Half of the queries are
 * paraphrases of stored entries (cosine ~0.95 to their entry), half new
 * questions drawn the same way as the entries. Recall@1: the index answers
 * the same nearest entry as an exact scan. BENCH_VINDEX_ISOTROPIC=1 makes
 * the entries 1,000 topics plus isotropic noise instead (the hardest case
 * for a graph index, far from real embeddings). One thread,
 * in sluice. BENCH_VINDEX_SIZES="10000 100000" chooses the sizes. */
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

static size_t efs[8] = {32}, n_efs = 1; /* 32: what the semantic store uses (semstore.c) */

static void measure(sl_vindex *ix, const float *v, size_t n, double build_s, const float *topics);

static void run(size_t n, float *topics)
{
    float *v = malloc(n * DIM * sizeof(float));
    sl_vindex *ix = sl_vindex_new(DIM, n, efs[0]);
    if (!v || !ix) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    double t0 = now_us();
    for (size_t i = 0; i < n; i++) {
        entry_like(&v[i * DIM], isotropic ? &topics[(i % TOPICS) * DIM] : NULL, 1.0f, 0.3f);
        sl_vindex_put(ix, (uint32_t)i, 42, &v[i * DIM]);
    }
    double build_s = (now_us() - t0) / 1e6;
    for (size_t e = 0; e < n_efs; e++) {
        sl_vindex_set_ef(ix, efs[e]);
        measure(ix, v, n, build_s, topics);
    }
    sl_vindex_free(ix);
    free(v);
}

static void measure(sl_vindex *ix, const float *v, size_t n, double build_s, const float *topics)
{
    static float q[DIM];
    static double took[QUERIES], cpu[QUERIES];
    int agree = 0, para_hits = 0, close = 0, close_agree = 0;
    double para_sim = 0, new_sim = 0;
    for (int k = 0; k < QUERIES; k++) {
        size_t at = (size_t)(gauss() * 1e6) % n;
        if (k % 2)
            entry_like(q, &v[at * DIM], 0.3f, 0.1f); /* a paraphrase of entry `at` */
        else
            entry_like(q, isotropic ? &topics[(at % TOPICS) * DIM] : NULL, 1.0f, 0.3f); /* new */
        uint32_t got, want;
        float sg, sw;
        double a = now_us(), c = cpu_us();
        int found = sl_vindex_nearest(ix, 42, q, &got, &sg);
        took[k] = now_us() - a;
        cpu[k] = cpu_us() - c;
        sl_vindex_nearest_exact(ix, 42, q, &want, &sw);
        agree += found == 1 && got == want;
        close += sw >= 0.9f; /* a nearest that could be served: what recall must not lose */
        close_agree += sw >= 0.9f && found == 1 && got == want;
        *(k % 2 ? &para_sim : &new_sim) += sw;
        para_hits += k % 2 && found == 1 && got == at;
    }
    qsort(took, QUERIES, sizeof(double), cmp_double);
    qsort(cpu, QUERIES, sizeof(double), cmp_double);
    fprintf(stderr, "  (n=%zu: mean nearest similarity: paraphrases %.3f, new questions %.3f)\n", n,
            para_sim / (QUERIES / 2), new_sim / (QUERIES / 2));
    printf("| %zu | %zu | %.0f | %.0f | %.0f | %.0f | %.3f | %.3f | %.3f | %.1f | %.0f |\n", n,
           sl_vindex_ef(ix), took[QUERIES / 2], took[QUERIES * 99 / 100], cpu[QUERIES / 2], cpu[QUERIES * 99 / 100],
           (double)agree / QUERIES,
           close ? (double)close_agree / close : 1.0, (double)para_hits / (QUERIES / 2),
           (double)sl_vindex_memory(ix) / (1 << 20) * (100000.0 / (double)n), build_s);
    fflush(stdout);
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
    const char *efl = getenv("BENCH_VINDEX_EF"); /* search breadths to measure, "16 32" */
    if (!efl)
        efl = "16 24 32";
    n_efs = 0;
    for (char *end; n_efs < 8; efl = end) {
        size_t e = strtoull(efl, &end, 10);
        if (end == efl)
            break;
        efs[n_efs++] = e;
    }
    if (!n_efs)
        efs[n_efs++] = 32;
    const char *sizes = getenv("BENCH_VINDEX_SIZES");
    if (!sizes)
        sizes = "10000 100000";
    printf("semantic index (hnswlib, M=16, ef_construction=64), %d dims, one partition, %d "
           "queries%s\n\n",
           DIM, QUERIES, isotropic ? ", isotropic entries" : "");
    printf("| entries | ef | lookup p50 µs | lookup p99 µs | CPU p50 µs | CPU p99 µs | recall@1 | "
           "recall@1, nearest >= 0.9 | paraphrase found | MiB per 100k | build s |\n"
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const char *p = sizes; *p;) {
        char *end;
        size_t n = strtoull(p, &end, 10);
        if (end == p)
            break;
        run(n, topics);
        p = end;
    }
    free(topics);
    free(features);
    return 0;
}
