/* cache_key.c — canonical request hashing; see cache_key.h. */
#include "sluice/cache_key.h"

#include <stdio.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "sluice/redis_keys.h"

static bool excluded(sl_str key)
{
    return sl_str_eq_c(key, "stream") || sl_str_eq_c(key, "stream_options") ||
           sl_str_eq_c(key, "user");
}

int sl_cache_key_compute(const sl_llm_req *r, sl_str scope, sl_cache_key *out)
{
    /* One scratch buffer reused by every request of the process: no
     * allocation once it has grown to the working size. */
    static sl_buf canon;
    sl_buf_reset(&canon);
    char prefix[64] = SL_CACHE_KEY_VERSION "|"; /* "v2|<api>|", without printf */
    size_t n = sizeof SL_CACHE_KEY_VERSION;
    n += sl_fmt_i64((int64_t)r->api, prefix + n);
    prefix[n++] = '|';
    if (sl_buf_append(&canon, prefix, n) || sl_buf_append_str(&canon, scope) ||
        sl_buf_append(&canon, "|", 1) || sl_json_canonical(r->root, &canon, excluded))
        return SL_ENOMEM;
    XXH128_hash_t h = XXH3_128bits(canon.p, canon.len);
    out->hi = h.high64;
    out->lo = h.low64;
    return SL_OK;
}

int sl_cache_scope_user(sl_arena *a, const char *base, sl_str user, sl_str *out)
{
    if (!user.len) {
        *out = sl_str_c(base);
        return SL_OK;
    }
    char head[32];
    int h = snprintf(head, sizeof head, "|u%zu:", user.len);
    size_t bl = strlen(base), n = bl + (size_t)h + user.len;
    char *s = sl_arena_alloc(a, n);
    if (!s)
        return SL_ENOMEM;
    memcpy(s, base, bl);
    memcpy(s + bl, head, (size_t)h);
    memcpy(s + bl + (size_t)h, user.p, user.len);
    *out = (sl_str){s, n};
    return SL_OK;
}

void sl_cache_key_hex(const sl_cache_key *k, char out[33])
{
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)k->hi, (unsigned long long)k->lo);
}

void sl_cache_key_redis(const sl_cache_key *k, const char *what, char out[80])
{
    char hex[33];
    sl_cache_key_hex(k, hex);
    snprintf(out, 80, SL_RK_CACHE, hex, what);
}
