/* answers.c — stored answers of idempotent requests and resumable streams
 * (answers.h): a blob codec, an in-process bounded store with TTLs, Redis. */
#include "sluice/answers.h"

#include <stdio.h>
#include <stdlib.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "sluice/redis.h"

struct sl_answers {
    sl_l1 *l1; /* bounded LRU with per-entry TTLs: exactly what is needed here */
};

#define BLOB_MAGIC "SLA1\n"

sl_answers *sl_answers_new(size_t max_bytes)
{
    sl_answers *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->l1 = sl_l1_new(max_bytes);
    if (!s->l1) {
        free(s);
        return NULL;
    }
    return s;
}

void sl_answers_free(sl_answers *s)
{
    if (!s)
        return;
    sl_l1_free(s->l1);
    free(s);
}

/* Header lines: fingerprint, tenant, status, sse, events, content type; then the body. */
int sl_answer_encode(const sl_answer *a, sl_buf *out)
{
    sl_buf_append_c(out, BLOB_MAGIC);
    sl_buf_printf(out, "%016llx%016llx\n", (unsigned long long)a->fp.hi,
                  (unsigned long long)a->fp.lo);
    sl_buf_append_str(out, a->tenant);
    sl_buf_printf(out, "\n%d\n%d\n%zu\n", a->status, a->sse ? 1 : 0, a->n_events);
    sl_buf_append_str(out, a->content_type);
    sl_buf_append_c(out, "\n");
    sl_buf_append_str(out, a->body);
    return out->err;
}

/* The next header line of [*p, end) (without its \n), or false. */
static bool next_line(const char **p, const char *end, sl_str *line)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    if (!nl)
        return false;
    *line = (sl_str){*p, (size_t)(nl - *p)};
    *p = nl + 1;
    return true;
}

static bool parse_u64(sl_str s, int base, unsigned long long *v)
{
    char tmp[40];
    if (!s.len || s.len >= sizeof tmp)
        return false;
    memcpy(tmp, s.p, s.len);
    tmp[s.len] = '\0';
    char *e;
    *v = strtoull(tmp, &e, base);
    return *e == '\0';
}

int sl_answer_decode(const char *blob, size_t len, sl_answer *out)
{
    size_t ml = sizeof(BLOB_MAGIC) - 1;
    if (len < ml || memcmp(blob, BLOB_MAGIC, ml) != 0)
        return SL_EINVAL;
    const char *p = blob + ml, *end = blob + len;
    sl_str fp, st, sse, n, ct;
    unsigned long long hi, lo, status, events, is_sse;
    if (!next_line(&p, end, &fp) || fp.len != 32 || !next_line(&p, end, &out->tenant) ||
        !next_line(&p, end, &st) || !next_line(&p, end, &sse) || !next_line(&p, end, &n) ||
        !next_line(&p, end, &ct))
        return SL_EINVAL;
    if (!parse_u64((sl_str){fp.p, 16}, 16, &hi) || !parse_u64((sl_str){fp.p + 16, 16}, 16, &lo) ||
        !parse_u64(st, 10, &status) || status > 999 || !parse_u64(sse, 10, &is_sse) ||
        !parse_u64(n, 10, &events))
        return SL_EINVAL;
    out->fp = (sl_cache_key){hi, lo};
    out->status = (int)status;
    out->sse = is_sse != 0;
    out->n_events = (size_t)events;
    out->content_type = ct;
    out->body = (sl_str){p, (size_t)(end - p)};
    return SL_OK;
}

void sl_answers_keep(sl_answers *s, const sl_cache_key *key, const char *blob, size_t len,
                     uint64_t ttl_ms)
{
    if (s && ttl_ms)
        sl_l1_put(s->l1, (sl_l1_key){key->hi, key->lo}, blob, len, 0, ttl_ms);
}

void sl_answers_put(sl_answers *s, sl_redis *redis, const sl_cache_key *key, const char *redis_key,
                    const char *blob, size_t len, uint64_t ttl_ms)
{
    if (!ttl_ms)
        return;
    sl_answers_keep(s, key, blob, len, ttl_ms);
    if (!redis)
        return;
    char px[24];
    snprintf(px, sizeof px, "%llu", (unsigned long long)ttl_ms);
    const char *argv[] = {"SET", redis_key, blob, "PX", px};
    size_t argl[] = {3, strlen(redis_key), len, 2, strlen(px)};
    sl_redis_cmd(redis, NULL, NULL, 5, argv, argl); /* best effort, ordered before what follows */
}

sl_l1_entry *sl_answers_get(sl_answers *s, const sl_cache_key *key)
{
    return s ? sl_l1_get(s->l1, (sl_l1_key){key->hi, key->lo}) : NULL;
}

void sl_answers_key(const char *ns, const char *tenant, const char *name, sl_cache_key *out)
{
    XXH3_state_t st;
    XXH3_128bits_reset(&st);
    XXH3_128bits_update(&st, ns, strlen(ns) + 1);
    XXH3_128bits_update(&st, tenant, strlen(tenant) + 1); /* the NULs keep the parts apart */
    XXH3_128bits_update(&st, name, strlen(name));
    XXH128_hash_t h = XXH3_128bits_digest(&st);
    out->hi = h.high64;
    out->lo = h.low64;
}

void sl_answers_redis_key(const char *ns, const sl_cache_key *k, const char *what, char out[96])
{
    snprintf(out, 96, "sluice:{%s:%016llx%016llx}:%s", ns, (unsigned long long)k->hi,
             (unsigned long long)k->lo, what);
}
