/* cache_entry.c — encoding and checking of stored answers (see cache_entry.h). */
#include <string.h>

#include "sluice/cache_entry.h"

enum { MARK_AT = SL_CACHE_ENTRY_HEADER_V1, COUNTS_AT = MARK_AT + 4, N_COUNTS = 5 };

void sl_cache_entry_encode(const sl_cache_entry *e, char *out)
{
    uint32_t counts[N_COUNTS] = {e->cached_tokens, e->cache_write_tokens, e->cache_write_1h_tokens,
                                 e->reasoning_tokens, e->prompt_has_cache ? 1u : 0u};
    memcpy(out, &e->stored_at_ms, 8);
    memcpy(out + 8, &e->prompt_tokens, 4);
    memcpy(out + 12, &e->completion_tokens, 4);
    memcpy(out + MARK_AT, SL_CACHE_ENTRY_MARK, 4);
    memcpy(out + COUNTS_AT, counts, sizeof counts);
    memcpy(out + SL_CACHE_ENTRY_HEADER, e->json.p, e->json.len);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The header's size: version 2 when it carries the mark (a version 1 entry
 * has its JSON's '{' there), else version 1, whose cache counts are zero. */
static size_t read_header(const char *p, size_t len, sl_cache_entry *e)
{
    memcpy(&e->stored_at_ms, p, 8);
    memcpy(&e->prompt_tokens, p + 8, 4);
    memcpy(&e->completion_tokens, p + 12, 4);
    uint32_t counts[N_COUNTS] = {0};
    size_t header = SL_CACHE_ENTRY_HEADER_V1;
    if (len >= SL_CACHE_ENTRY_HEADER + 2 && memcmp(p + MARK_AT, SL_CACHE_ENTRY_MARK, 4) == 0) {
        memcpy(counts, p + COUNTS_AT, sizeof counts);
        header = SL_CACHE_ENTRY_HEADER;
    }
    e->cached_tokens = counts[0];
    e->cache_write_tokens = counts[1];
    e->cache_write_1h_tokens = counts[2];
    e->reasoning_tokens = counts[3];
    e->prompt_has_cache = counts[4] & 1u;
    return header;
}

/* Cheap shape check only: a full parse would cost every hit what the cache
 * saves. A body that passes and is still broken fails in the stream replay,
 * which parses, and in the client's parser; it never crashes us. */
int sl_cache_entry_decode(const char *p, size_t len, sl_cache_entry *e)
{
    if (len < SL_CACHE_ENTRY_HEADER_V1 + 2)
        return SL_EINVAL;
    size_t header = read_header(p, len, e);
    const char *j = p + header, *end = p + len;
    while (end > j && is_space(end[-1]))
        end--;
    if (e->stored_at_ms < 0 || end - j < 2 || j[0] != '{' || end[-1] != '}')
        return SL_EINVAL;
    e->json = (sl_str){j, len - header};
    return SL_OK;
}
