/* vindex.h — nearest neighbours among unit vectors, by cosine similarity,
 * within one partition.
 *
 * A C face on Debian's hnswlib (header-only C++; src/store/hnsw_shim.cpp is
 * the only C++ in sluice). A search only ever asks one partition (the
 * semantic cache's tenant + model + context hash), so each partition is its
 * own index: up to SL_VINDEX_GRAPH_AT vectors it is scanned exactly; past
 * that it gets its own hnswlib graph (over int8 copies of its vectors), and
 * the graph's best answers are re-ranked exactly. Nothing of another
 * partition is ever looked at. Vectors are kept as float16 (the exact scan
 * and re-ranking use them; the rounding moves a cosine by ~1e-5).
 *
 * Owns: every vector, and the graphs. Slots are the caller's names for
 * entries (0 .. capacity-1): putting into a used slot replaces it (in its
 * new partition); deleting frees it. A partition that shrinks below half of
 * SL_VINDEX_GRAPH_AT drops its graph. Never throws: every C++ exception
 * becomes an error code. Not thread-safe (one loop). */
#ifndef SLUICE_VINDEX_H
#define SLUICE_VINDEX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Partitions up to this size are scanned exactly (~0.2 ms at 1,536 dims,
 * bench/vindex.c); a bigger one gets a graph, filled a few vectors per put
 * while its not-yet-added members are scanned beside it. */
#define SL_VINDEX_GRAPH_AT 2048
/* The search breadth the semantic store runs (semstore.c) and bench/vindex.c
 * measures. */
#define SL_VINDEX_EF 48

typedef struct sl_vindex sl_vindex;

/* dim > 0, capacity > 0 slots; ef: a graph's search breadth (>= 8; its best
 * min(ef, 64) answers are re-ranked). NULL: out of memory. */
sl_vindex *sl_vindex_new(size_t dim, size_t capacity, size_t ef);
void sl_vindex_free(sl_vindex *ix);
void sl_vindex_set_ef(sl_vindex *ix, size_t ef); /* the search breadth from now on (>= 8) */
size_t sl_vindex_dim(const sl_vindex *ix);
size_t sl_vindex_ef(const sl_vindex *ix);
size_t sl_vindex_count(const sl_vindex *ix);  /* live vectors */
size_t sl_vindex_memory(const sl_vindex *ix); /* bytes held, approximately */
size_t sl_vindex_graphs(const sl_vindex *ix); /* partitions big enough to have a graph */
/* Moves up to n not-yet-added members into their partition's graph (a put
 * moves two; a timer calls this for the rest); returns how many are left. */
size_t sl_vindex_step(sl_vindex *ix, size_t n);
/* v: dim floats, normalised by the caller. 0, or -1 (bad slot, out of memory). */
int sl_vindex_put(sl_vindex *ix, uint32_t slot, uint64_t partition, const float *v);
void sl_vindex_del(sl_vindex *ix, uint32_t slot);
/* Bulk loading (bench/vindex.c): put without moving anything into a graph,
 * then sl_vindex_build moves every backlog in with `threads` threads (0 or
 * -1 on out of memory). The server never calls these: its loop puts one
 * entry at a time and steps the backlog (sl_vindex_put, sl_vindex_step). */
int sl_vindex_load(sl_vindex *ix, uint32_t slot, uint64_t partition, const float *v);
int sl_vindex_build(sl_vindex *ix, unsigned threads);
/* The graph's kernels, for tests: the int8 dot product of n (a multiple of
 * 32) values in -127..127, and the cosine of two float vectors as the graph
 * sees it (each quantised to int8 with its own scale). */
int32_t sl_vindex_dot_i8(const int8_t *a, const int8_t *b, size_t n);
float sl_vindex_cosine_i8(const float *a, const float *b, size_t dim);
/* The most similar vector of partition to q: 1 with *slot and *similarity
 * (cosine, for unit vectors), 0 when the partition is empty, -1 on error. */
int sl_vindex_nearest(const sl_vindex *ix, uint64_t partition, const float *q, uint32_t *slot,
                      float *similarity);
/* The same by an exact scan of the partition's (float16) vectors. */
int sl_vindex_nearest_exact(const sl_vindex *ix, uint64_t partition, const float *q, uint32_t *slot,
                            float *similarity);

#ifdef __cplusplus
}
#endif

#endif
