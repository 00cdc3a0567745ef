/* cache_key.h — the 128-bit identity of an LLM request, for cache and coalescing.
 *
 * XXH3-128 over: a format version, the scope (tenant, or "-" when shared),
 * the API, and the canonical request (keys sorted, no whitespace, numbers by
 * their source text) minus `stream`, `stream_options` and `user`, so that a
 * streamed and a plain twin share one entry. */
#ifndef SLUICE_CACHE_KEY_H
#define SLUICE_CACHE_KEY_H

#include "sluice/request.h"

/* bump when the key, or the entry format incompatibly, changes */
#define SL_CACHE_KEY_VERSION "v2"

typedef struct sl_cache_key {
    uint64_t hi, lo;
} sl_cache_key;

int sl_cache_key_compute(const sl_llm_req *r, sl_str scope, sl_cache_key *out);
/* The scope of an end user's entries under cache.scope: user: base (the
 * tenant, or "-") and the user, length-prefixed so that no user name can
 * spell another scope. An empty user keeps base. From the arena. */
int sl_cache_scope_user(sl_arena *a, const char *base, sl_str user, sl_str *out);
void sl_cache_key_hex(const sl_cache_key *k, char out[33]);
/* Redis key names; both share the hash tag {c:HEX} so scripts touching both
 * would run on a Redis Cluster too. `what` is "v1" (the entry) or "lock". */
void sl_cache_key_redis(const sl_cache_key *k, const char *what, char out[80]);

#endif
