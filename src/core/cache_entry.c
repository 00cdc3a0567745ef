/* cache_entry.c — encoding and checking of stored answers (see cache_entry.h). */
#include <string.h>

#include "sluice/cache_entry.h"

void sl_cache_entry_encode(const sl_cache_entry *e, char *out)
{
    memcpy(out, &e->stored_at_ms, 8);
    memcpy(out + 8, &e->prompt_tokens, 4);
    memcpy(out + 12, &e->completion_tokens, 4);
    memcpy(out + SL_CACHE_ENTRY_HEADER, e->json.p, e->json.len);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Cheap shape check only: a full parse would cost every hit what the cache
 * saves. A body that passes and is still broken fails in the stream replay,
 * which parses, and in the client's parser; it never crashes us. */
int sl_cache_entry_decode(const char *p, size_t len, sl_cache_entry *e)
{
    if (len < SL_CACHE_ENTRY_HEADER + 2)
        return SL_EINVAL;
    memcpy(&e->stored_at_ms, p, 8);
    memcpy(&e->prompt_tokens, p + 8, 4);
    memcpy(&e->completion_tokens, p + 12, 4);
    const char *j = p + SL_CACHE_ENTRY_HEADER, *end = p + len;
    while (end > j && is_space(end[-1]))
        end--;
    if (e->stored_at_ms < 0 || end - j < 2 || j[0] != '{' || end[-1] != '}')
        return SL_EINVAL;
    e->json = (sl_str){j, (size_t)(len - SL_CACHE_ENTRY_HEADER)};
    return SL_OK;
}
