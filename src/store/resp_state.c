/* resp_state.c — stored responses, in Redis or in process; see resp_state.h. */
#include "sluice/resp_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "sluice/redis.h"

enum { BUCKETS = 4096 };
#define MEM_MAX_BYTES ((size_t)256 << 20)

typedef struct rec {
    struct rec *hnext;         /* bucket chain */
    struct rec *older, *newer; /* insertion order, for the byte bound */
    uint64_t hash;
    int64_t expires_ms;
    size_t key_len, len;
    char data[]; /* the key, then the record */
} rec;

static struct {
    sl_redis *redis;
    rec *buckets[BUCKETS];
    rec *oldest, *newest;
    size_t bytes;
} st;

void sl_resp_state_setup(sl_redis *redis)
{
    st.redis = redis;
}

/* "sluice:resp:<n>:<tenant>:<id>": the length keeps tenants apart whatever they hold. */
static size_t make_key(char *out, size_t cap, const char *tenant, sl_str id)
{
    int n = snprintf(out, cap, "sluice:resp:%zu:%s:%.*s", strlen(tenant), tenant,
                     (int)SL_MIN(id.len, 256), id.p);
    return n < 0 ? 0 : SL_MIN((size_t)n, cap - 1);
}

/* ---- in process ------------------------------------------------------------------- */

static rec **slot_of(const char *key, size_t len, uint64_t *hash)
{
    *hash = XXH3_64bits(key, len);
    rec **pp = &st.buckets[*hash % BUCKETS];
    while (*pp &&
           !((*pp)->hash == *hash && (*pp)->key_len == len && memcmp((*pp)->data, key, len) == 0))
        pp = &(*pp)->hnext;
    return pp;
}

static void mem_unlink(rec **pp)
{
    rec *r = *pp;
    *pp = r->hnext;
    if (r->older)
        r->older->newer = r->newer;
    else
        st.oldest = r->newer;
    if (r->newer)
        r->newer->older = r->older;
    else
        st.newest = r->older;
    st.bytes -= r->key_len + r->len;
    free(r);
}

static void mem_del(const char *key, size_t len, bool *found)
{
    uint64_t h;
    rec **pp = slot_of(key, len, &h);
    *found = *pp != NULL;
    if (*pp)
        mem_unlink(pp);
}

static void mem_trim(void)
{
    while (st.oldest && (st.bytes > MEM_MAX_BYTES || st.oldest->expires_ms <= sl_wall_ms())) {
        uint64_t h;
        rec **pp = slot_of(st.oldest->data, st.oldest->key_len, &h);
        if (!*pp)
            break; /* cannot happen: every record is in its bucket */
        mem_unlink(pp);
    }
}

static void mem_put(const char *key, size_t klen, sl_str data, long ttl_s)
{
    bool found;
    mem_del(key, klen, &found);
    rec *r = malloc(sizeof(*r) + klen + data.len);
    if (!r)
        return;
    uint64_t h;
    rec **pp = slot_of(key, klen, &h);
    *r = (rec){.hash = h,
               .key_len = klen,
               .len = data.len,
               .expires_ms = sl_wall_ms() + (int64_t)ttl_s * 1000};
    memcpy(r->data, key, klen);
    memcpy(r->data + klen, data.p, data.len);
    *pp = r;
    r->older = st.newest;
    if (st.newest)
        st.newest->newer = r;
    else
        st.oldest = r;
    st.newest = r;
    st.bytes += klen + data.len;
    mem_trim();
}

static const rec *mem_get(const char *key, size_t len)
{
    uint64_t h;
    rec **pp = slot_of(key, len, &h);
    if (*pp && (*pp)->expires_ms <= sl_wall_ms()) {
        mem_unlink(pp);
        return NULL;
    }
    return *pp;
}

static void mem_answer(const char *key, size_t len, sl_resp_state_cb cb, void *ud)
{
    const rec *r = mem_get(key, len);
    if (r)
        cb(ud, SL_OK, r->data + r->key_len, r->len);
    else
        cb(ud, SL_ENOTFOUND, NULL, 0);
}

void sl_resp_state_shutdown(void)
{
    while (st.oldest) {
        uint64_t h;
        rec **pp = slot_of(st.oldest->data, st.oldest->key_len, &h);
        if (!*pp)
            break;
        mem_unlink(pp);
    }
}

/* ---- Redis ----------------------------------------------------------------------- */

typedef struct pending {
    sl_resp_state_cb cb;
    void *ud;
    bool del, put;
    size_t key_len;
    char key[];
} pending;

static void on_reply(void *ud, const redisReply *reply, int status)
{
    pending *p = ud;
    bool found_here = false;
    if (p->put) {
        bool ok = status == SL_OK && reply && reply->type != REDIS_REPLY_ERROR;
        if (p->cb)
            p->cb(p->ud, ok ? SL_OK : SL_EIO, NULL, 0);
    } else if (p->del) {
        mem_del(p->key, p->key_len, &found_here);
        bool there =
            status == SL_OK && reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
        p->cb(p->ud, there || found_here ? SL_OK : SL_ENOTFOUND, NULL, 0);
    } else if (status == SL_OK && reply && reply->type == REDIS_REPLY_STRING) {
        p->cb(p->ud, SL_OK, reply->str, reply->len);
    } else if (mem_get(p->key, p->key_len) || (status == SL_OK && reply)) {
        mem_answer(p->key, p->key_len, p->cb, p->ud); /* written here while Redis was away */
    } else {
        p->cb(p->ud, SL_EIO, NULL, 0);
    }
    free(p);
}

static bool ask_redis(const char *cmd, const char *key, size_t klen, sl_resp_state_cb cb, void *ud)
{
    if (!st.redis)
        return false;
    pending *p = malloc(sizeof(*p) + klen);
    if (!p)
        return false;
    *p = (pending){.cb = cb, .ud = ud, .del = cmd[0] == 'D', .key_len = klen};
    memcpy(p->key, key, klen);
    const char *argv[] = {cmd, key};
    size_t argl[] = {strlen(cmd), klen};
    if (sl_redis_cmd(st.redis, on_reply, p, 2, argv, argl) == SL_OK)
        return true;
    free(p);
    return false;
}

bool sl_resp_state_put(const char *tenant, sl_str id, sl_str data, long ttl_s, sl_resp_state_cb cb,
                       void *ud)
{
    char key[400], px[32];
    size_t klen = make_key(key, sizeof key, tenant, id);
    snprintf(px, sizeof px, "%ld", ttl_s * 1000);
    const char *argv[] = {"SET", key, data.p, "PX", px};
    size_t argl[] = {3, klen, data.len, 2, strlen(px)};
    pending *p = st.redis ? malloc(sizeof(*p)) : NULL;
    if (p) {
        *p = (pending){.cb = cb, .ud = ud, .put = true};
        if (sl_redis_cmd(st.redis, on_reply, p, 5, argv, argl) == SL_OK)
            return true;
        free(p);
    }
    mem_put(key, klen, data, ttl_s); /* no Redis, or it cannot take commands now */
    return false;
}

void sl_resp_state_get(const char *tenant, sl_str id, sl_resp_state_cb cb, void *ud)
{
    char key[400];
    size_t klen = make_key(key, sizeof key, tenant, id);
    if (!ask_redis("GET", key, klen, cb, ud))
        mem_answer(key, klen, cb, ud);
}

void sl_resp_state_del(const char *tenant, sl_str id, sl_resp_state_cb cb, void *ud)
{
    char key[400];
    size_t klen = make_key(key, sizeof key, tenant, id);
    if (ask_redis("DEL", key, klen, cb, ud))
        return;
    bool found;
    mem_del(key, klen, &found);
    cb(ud, found ? SL_OK : SL_ENOTFOUND, NULL, 0);
}
