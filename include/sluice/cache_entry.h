/* cache_entry.h — the bytes a cached answer is stored as, in L1 and in Redis.
 *
 * Layout (version 2, what sluice writes): stored-at (int64, wall ms), prompt
 * and completion tokens (uint32 each), the 4-byte mark "\0SL2", the prompt
 * tokens read from and written to the provider's prompt cache, the part of
 * those writes kept for an hour, the reasoning tokens, flags (uint32 each;
 * bit 0: the prompt count includes the cache's tokens, OpenAI's convention),
 * then the JSON answer as the upstream sent it (or as the proxy assembled it
 * from a stream). The usage rides in the header so a hit needs no JSON parse,
 * and a hit prices the money it saved as the original call was priced.
 *
 * Version 1 (before the cache counts) had no mark: its JSON follows the
 * completion tokens directly. It is still read, its cache counts as zero; a
 * reader of version 1 sees a version 2 entry as no entry (a miss), never as a
 * wrong answer. Redis is shared with other instances and anyone with its
 * password, so what comes back from it is checked before it is served. */
#ifndef SLUICE_CACHE_ENTRY_H
#define SLUICE_CACHE_ENTRY_H

#include "sluice/util.h"

#define SL_CACHE_ENTRY_HEADER_V1 16
#define SL_CACHE_ENTRY_HEADER    40 /* version 2 */
#define SL_CACHE_ENTRY_MARK      "\0SL2"

typedef struct sl_cache_entry {
    int64_t stored_at_ms;
    uint32_t prompt_tokens, completion_tokens;
    sl_str json;
    uint32_t cached_tokens;         /* prompt tokens read from the provider's prompt cache */
    uint32_t cache_write_tokens;    /* ... written to it (both TTLs) */
    uint32_t cache_write_1h_tokens; /* ... of which for an hour */
    uint32_t reasoning_tokens;      /* the part of completion_tokens spent thinking */
    bool prompt_has_cache;          /* prompt_tokens includes the cache's (OpenAI) */
} sl_cache_entry;

/* Bytes of the stored form of an answer of json_len bytes. */
static inline size_t sl_cache_entry_size(size_t json_len)
{
    return SL_CACHE_ENTRY_HEADER + json_len;
}
/* Writes the stored form of e into out (sl_cache_entry_size(e->json.len) bytes). */
void sl_cache_entry_encode(const sl_cache_entry *e, char *out);
/* Reads a stored entry, version 2 or 1; SL_EINVAL when p cannot be one (too
 * short, a time before 1970, a body that is not a JSON object). e->json
 * points into p. */
int sl_cache_entry_decode(const char *p, size_t len, sl_cache_entry *e);

#endif
