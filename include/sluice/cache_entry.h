/* cache_entry.h — the bytes a cached answer is stored as, in L1 and in Redis.
 *
 * Layout: stored-at (int64, wall ms), prompt and completion tokens (uint32
 * each), then the JSON answer as the upstream sent it (or as the proxy
 * assembled it from a stream). The usage rides in the header so a hit needs no
 * JSON parse. Redis is shared with other instances and anyone with its
 * password, so what comes back from it is checked before it is served. */
#ifndef SLUICE_CACHE_ENTRY_H
#define SLUICE_CACHE_ENTRY_H

#include "sluice/util.h"

#define SL_CACHE_ENTRY_HEADER 16

typedef struct sl_cache_entry {
    int64_t stored_at_ms;
    uint32_t prompt_tokens, completion_tokens;
    sl_str json;
} sl_cache_entry;

/* Bytes of the stored form of an answer of json_len bytes. */
static inline size_t sl_cache_entry_size(size_t json_len)
{
    return SL_CACHE_ENTRY_HEADER + json_len;
}
/* Writes the stored form of e into out (sl_cache_entry_size(e->json.len) bytes). */
void sl_cache_entry_encode(const sl_cache_entry *e, char *out);
/* Reads a stored entry; SL_EINVAL when p cannot be one (too short, a time
 * before 1970, a body that is not a JSON object). e->json points into p. */
int sl_cache_entry_decode(const char *p, size_t len, sl_cache_entry *e);

#endif
