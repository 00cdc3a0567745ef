/* vindex.h — nearest neighbours among unit vectors, by cosine similarity.
 *
 * A C face on Debian's hnswlib (header-only C++; src/store/hnsw_shim.cpp is
 * the only C++ in sluice). One index holds every partition: each vector
 * carries a 64-bit partition and a search only answers from the query's
 * partition. A partition of at most SL_VINDEX_SCAN_MAX vectors is compared
 * exactly (the library's own distance function over the vectors it stores):
 * hnswlib 0.6.2 has no filtered search, and a graph walk for a small
 * partition would mostly meet other partitions' vectors. A larger one asks
 * the graph for its nearest neighbours and takes the closest in the
 * partition; one that is a small share of a much larger index may then miss
 * its nearest vector — a miss, never another partition's answer.
 *
 * Owns: the graph and a copy of every vector. Slots are the caller's names
 * for entries (0 .. capacity-1): putting into a used slot replaces it;
 * deleting marks it deleted (hnswlib reuses its place on the next put into
 * that slot). Never throws: every C++ exception becomes an error code.
 * Not thread-safe (one loop). */
#ifndef SLUICE_VINDEX_H
#define SLUICE_VINDEX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SL_VINDEX_SCAN_MAX 512 /* partitions up to this size are scanned exactly */

typedef struct sl_vindex sl_vindex;

/* dim > 0, capacity > 0 slots; ef: the search breadth and the neighbours a large partition looks at
 * (>= 8). NULL: out of memory. */
sl_vindex *sl_vindex_new(size_t dim, size_t capacity, size_t ef);
void sl_vindex_free(sl_vindex *ix);
void sl_vindex_set_ef(sl_vindex *ix, size_t ef); /* the search breadth from now on (>= 8) */
size_t sl_vindex_dim(const sl_vindex *ix);
size_t sl_vindex_ef(const sl_vindex *ix);
size_t sl_vindex_count(const sl_vindex *ix);  /* live vectors */
size_t sl_vindex_memory(const sl_vindex *ix); /* bytes held, approximately */
/* v: dim floats, normalised by the caller. 0, or -1 (bad slot, out of memory). */
int sl_vindex_put(sl_vindex *ix, uint32_t slot, uint64_t partition, const float *v);
void sl_vindex_del(sl_vindex *ix, uint32_t slot);
/* The most similar vector of partition to q: 1 with *slot and *similarity
 * (cosine, for unit vectors), 0 when the partition is empty, -1 on error. */
int sl_vindex_nearest(const sl_vindex *ix, uint64_t partition, const float *q, uint32_t *slot,
                      float *similarity);
/* The same by an exact scan of the partition (the reference for recall). */
int sl_vindex_nearest_exact(const sl_vindex *ix, uint64_t partition, const float *q, uint32_t *slot,
                            float *similarity);

#ifdef __cplusplus
}
#endif

#endif
