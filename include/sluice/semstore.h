/* semstore.h — the semantic cache's entries: an ANN index in process, kept
 * in step with Redis.
 *
 * Owns: the vector index (vindex.h), one record per entry (its exact key,
 * partition, question text, request id, expiry) in an LRU bounded by
 * cache.semantic.max_entries, and its sync timer. An entry only points at
 * the exact cache entry that holds the answer; it expires with it.
 *
 * With Redis (optional, borrowed; must outlive the store's commands: free
 * the store after the client): a put also writes the vector entry beside
 * the exact entry (`sluice:{c:HEX}:sv1`, binary, same TTL) and appends its
 * key to the stream `sluice:semantic:stream` (MAXLEN ~ max_entries). Every
 * 200 ms the store reads the stream from where it left off (XREAD on the
 * loop, never blocking) and learns the other instances' entries; at start
 * (and until Redis first answers) it rebuilds its index from the stream's
 * newest entries. Redis down: the store works in process alone. */
#ifndef SLUICE_SEMSTORE_H
#define SLUICE_SEMSTORE_H

#include "sluice/semantic.h"

struct event_base;
struct sl_redis;

typedef struct sl_semstore sl_semstore;

sl_semstore *sl_semstore_new(struct event_base *base, struct sl_redis *redis, size_t max_entries);
void sl_semstore_free(sl_semstore *s);

/* Adds (or replaces) an entry; with Redis, shares it. ttl_ms > 0. */
int sl_semstore_put(sl_semstore *s, const sl_sem_entry *e, uint64_t ttl_ms);

typedef struct sl_sem_hit {
    sl_cache_key key; /* the exact entry */
    float similarity;
    sl_str text;       /* the stored question (valid until the store changes) */
    sl_str request_id; /* ... and whose answer it is */
} sl_sem_hit;

/* The nearest live entry of the partition to q (dim floats, unit length):
 * true with *hit; false when there is none (or q's dimension is not the
 * index's). */
bool sl_semstore_nearest(sl_semstore *s, const sl_cache_key *partition, const float *q,
                         uint32_t dim, sl_sem_hit *hit);
/* The entry of exact key k answered a request: most recently used now. */
void sl_semstore_touch(sl_semstore *s, const sl_cache_key *k);
/* Drops the entry of exact key k (its answer is gone). */
void sl_semstore_forget(sl_semstore *s, const sl_cache_key *k);

typedef struct sl_semstore_stats {
    size_t entries, max_entries, memory_bytes;
    uint64_t learned; /* entries taken from Redis (stream and rebuild) */
    bool rebuilt;     /* the start-up rebuild from Redis is done */
} sl_semstore_stats;
void sl_semstore_get_stats(const sl_semstore *s, sl_semstore_stats *out);

#endif
