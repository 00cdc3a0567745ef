/* l1.h — the in-process cache store: bounded bytes, LRU, per-entry TTL.
 *
 * Owns: its entries. Keys are 128-bit hashes (already uniform), so the table
 * indexes by their low bits. A lookup allocates nothing and returns a
 * reference-counted entry: a reader streaming a cached answer keeps its bytes
 * alive even if the entry is evicted meanwhile. */
#ifndef SLUICE_L1_H
#define SLUICE_L1_H

#include "sluice/util.h"

typedef struct sl_l1 sl_l1;
typedef struct sl_l1_entry sl_l1_entry;
typedef struct sl_l1_key {
    uint64_t hi, lo;
} sl_l1_key;

typedef struct sl_l1_stats {
    size_t entries, bytes, max_bytes;
    uint64_t hits, misses, evictions, expired;
    size_t aliases;      /* exact-bytes aliases held */
    uint64_t alias_hits; /* alias lookups that found a live entry */
} sl_l1_stats;

sl_l1 *sl_l1_new(size_t max_bytes);
void sl_l1_free(sl_l1 *c);
/* Stores a copy of val; replaces an existing entry. SL_ETOOBIG when the entry
 * is over an eighth of the budget. */
int sl_l1_put(sl_l1 *c, sl_l1_key k, const void *val, size_t len, uint32_t flags, uint64_t ttl_ms);
/* A referenced entry, or NULL when absent or expired. */
sl_l1_entry *sl_l1_get(sl_l1 *c, sl_l1_key k);
void sl_l1_del(sl_l1 *c, sl_l1_key k);
/* SIGHUP: a new byte bound; a smaller one evicts least recently used entries
 * until the cache fits (readers keep their referenced entries alive). */
void sl_l1_set_max_bytes(sl_l1 *c, size_t max_bytes);
void sl_l1_entry_unref(sl_l1_entry *e);
const char *sl_l1_entry_data(const sl_l1_entry *e);
size_t sl_l1_entry_len(const sl_l1_entry *e);
uint32_t sl_l1_entry_flags(const sl_l1_entry *e);
void sl_l1_get_stats(const sl_l1 *c, sl_l1_stats *out);
/* A second index: an alias key names an entry and carries a few bytes of the
 * caller's (the cache uses the hash of a request's exact bytes, with what it
 * derived from them). An alias lives exactly as long as its entry's place in
 * the table: replaced, deleted, evicted or expired together. Its bytes count
 * in the budget; an entry keeps at most SL_L1_MAX_ALIASES (the oldest goes).
 * alias_put: SL_ENOTFOUND when the entry is absent or expired. */
#define SL_L1_MAX_ALIASES 8
int sl_l1_alias_put(sl_l1 *c, sl_l1_key entry, sl_l1_key alias, const void *meta, size_t len);
/* The alias's meta bytes (valid until the next change to the cache) and the
 * key of its entry; NULL when absent or the entry expired. Not a hit and no
 * LRU touch: the caller's sl_l1_get of the entry is. */
const void *sl_l1_alias_get(sl_l1 *c, sl_l1_key alias, size_t *len, sl_l1_key *entry);
/* Tests inject a clock (NULL restores the monotonic one). */
void sl_l1_set_clock(uint64_t (*now_ms)(void));

#endif
