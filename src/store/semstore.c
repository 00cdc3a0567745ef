/* semstore.c — the semantic cache's entries, in process and shared through
 * Redis; see semstore.h.
 *
 * Records live in a fixed array of max_entries slots (the slot number is the
 * vector's label in the index), chained into a hash by exact key and a
 * doubly-linked LRU. The sync timer drives one chain of Redis commands at a
 * time (rebuild, then stream reads and the MGETs they need), so a slow
 * Redis never stacks them up. */
#include "sluice/semstore.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

#include "sluice/log.h"
#include "sluice/redis.h"
#include "sluice/vindex.h"

#define NONE   UINT32_MAX
#define STREAM "sluice:semantic:stream"

/* BATCH: entries learned per loop turn (an insert costs ~1-4 ms at 100k
 * entries: the loop is never held for long); READ: stream entries per read. */
enum { SYNC_MS = 200, SWEEP_TICKS = 50, BATCH = 32, READ = 512, STEP = 8 };

typedef struct slot {
    sl_cache_key key, part;
    int64_t expires_ms;
    char *text;
    size_t text_len;
    char id[SL_SEM_MAX_ID + 1];
    uint32_t prev, next; /* LRU (next: free list while unused) */
    uint32_t hnext;      /* hash chain */
    bool used;
} slot;

struct sl_semstore {
    struct event_base *base;
    sl_redis *redis;
    size_t cap, count;
    slot *slots;
    uint32_t *buckets;
    size_t mask;
    uint32_t lru_head, lru_tail, free_head;
    sl_vindex *ix; /* made with the first vector: its dimension is the index's */
    struct event *timer;
    unsigned ticks;
    bool busy, rebuilt;
    char last_id[48];      /* the stream position read up to */
    sl_cache_key *pending; /* keys to fetch, oldest last */
    size_t n_pending;
    uint64_t learned;
    float vec[SL_SEM_MAX_DIM]; /* decode scratch */
};

static void on_tick(evutil_socket_t fd, short what, void *arg);

sl_semstore *sl_semstore_new(struct event_base *base, sl_redis *redis, size_t max_entries)
{
    sl_semstore *s = calloc(1, sizeof(*s));
    size_t nb = 16;
    while (nb < max_entries * 2)
        nb <<= 1;
    if (!s || !max_entries || max_entries >= NONE)
        goto fail;
    s->slots = calloc(max_entries, sizeof(slot));
    s->buckets = malloc(nb * sizeof(uint32_t));
    s->pending = malloc(max_entries * sizeof(sl_cache_key));
    if (!s->slots || !s->buckets || !s->pending)
        goto fail;
    memset(s->buckets, 0xff, nb * sizeof(uint32_t));
    s->mask = nb - 1;
    s->base = base, s->redis = redis, s->cap = max_entries;
    s->lru_head = s->lru_tail = NONE;
    for (size_t i = 0; i < max_entries; i++)
        s->slots[i].next = i + 1 < max_entries ? (uint32_t)i + 1 : NONE;
    s->free_head = 0;
    snprintf(s->last_id, sizeof s->last_id, "0-0");
    if (base) {
        s->timer = event_new(base, -1, EV_PERSIST, on_tick, s);
        struct timeval every = {0, SYNC_MS * 1000};
        if (!s->timer || event_add(s->timer, &every) != 0)
            goto fail;
    }
    return s;
fail:
    sl_semstore_free(s);
    return NULL;
}

void sl_semstore_free(sl_semstore *s)
{
    if (!s)
        return;
    if (s->timer)
        event_free(s->timer);
    for (size_t i = 0; s->slots && i < s->cap; i++)
        free(s->slots[i].text);
    sl_vindex_free(s->ix);
    free(s->slots);
    free(s->buckets);
    free(s->pending);
    free(s);
}

/* ---- records: hash, LRU ------------------------------------------------------ */

static uint32_t *bucket_of(sl_semstore *s, const sl_cache_key *k)
{
    return &s->buckets[(k->lo ^ (k->hi >> 7)) & s->mask];
}

static uint32_t find(sl_semstore *s, const sl_cache_key *k)
{
    for (uint32_t i = *bucket_of(s, k); i != NONE; i = s->slots[i].hnext) {
        if (s->slots[i].key.hi == k->hi && s->slots[i].key.lo == k->lo)
            return i;
    }
    return NONE;
}

static void lru_unlink(sl_semstore *s, uint32_t i)
{
    slot *e = &s->slots[i];
    if (e->prev != NONE)
        s->slots[e->prev].next = e->next;
    else
        s->lru_head = e->next;
    if (e->next != NONE)
        s->slots[e->next].prev = e->prev;
    else
        s->lru_tail = e->prev;
}

static void lru_push(sl_semstore *s, uint32_t i)
{
    slot *e = &s->slots[i];
    e->prev = NONE;
    e->next = s->lru_head;
    if (s->lru_head != NONE)
        s->slots[s->lru_head].prev = i;
    s->lru_head = i;
    if (s->lru_tail == NONE)
        s->lru_tail = i;
}

static void remove_slot(sl_semstore *s, uint32_t i)
{
    slot *e = &s->slots[i];
    for (uint32_t *p = bucket_of(s, &e->key); *p != NONE; p = &s->slots[*p].hnext) {
        if (*p == i) {
            *p = e->hnext;
            break;
        }
    }
    lru_unlink(s, i);
    sl_vindex_del(s->ix, i);
    free(e->text);
    e->text = NULL;
    e->used = false;
    e->next = s->free_head;
    s->free_head = i;
    s->count--;
}

static uint64_t part64(const sl_cache_key *p)
{
    return p->hi ^ (p->lo * 0x9e3779b97f4a7c15ull);
}

/* Takes a slot: a free one, else the least recently used entry's. */
static uint32_t take_slot(sl_semstore *s)
{
    if (s->free_head == NONE)
        remove_slot(s, s->lru_tail);
    uint32_t i = s->free_head;
    s->free_head = s->slots[i].next;
    return i;
}

static int add_local(sl_semstore *s, const sl_sem_entry *e)
{
    if (!s->ix && !(s->ix = sl_vindex_new(e->dim, s->cap, SL_VINDEX_EF)))
        return SL_ENOMEM;
    if (sl_vindex_dim(s->ix) != e->dim)
        return SL_EINVAL; /* another embedding model's size: not comparable */
    uint32_t old = find(s, &e->key);
    if (old != NONE)
        remove_slot(s, old);
    char *text = malloc(e->text.len + 1);
    if (!text)
        return SL_ENOMEM;
    uint32_t i = take_slot(s);
    slot *d = &s->slots[i];
    if (sl_vindex_put(s->ix, i, part64(&e->partition), e->vec) != 0) {
        free(text);
        d->next = s->free_head;
        s->free_head = i;
        return SL_ENOMEM;
    }
    memcpy(text, e->text.p, e->text.len);
    text[e->text.len] = '\0';
    *d = (slot){.key = e->key,
                .part = e->partition,
                .expires_ms = e->expires_at_ms,
                .text = text,
                .text_len = e->text.len,
                .used = true};
    snprintf(d->id, sizeof d->id, "%.*s", (int)SL_MIN(e->request_id.len, (size_t)SL_SEM_MAX_ID),
             e->request_id.p);
    uint32_t *b = bucket_of(s, &e->key);
    d->hnext = *b;
    *b = i;
    lru_push(s, i);
    s->count++;
    return SL_OK;
}

bool sl_semstore_nearest(sl_semstore *s, const sl_cache_key *partition, const float *q,
                         uint32_t dim, sl_sem_hit *hit)
{
    uint32_t i;
    float sim;
    if (!s->ix || sl_vindex_dim(s->ix) != dim ||
        sl_vindex_nearest(s->ix, part64(partition), q, &i, &sim) != 1 || !s->slots[i].used)
        return false;
    slot *e = &s->slots[i];
    if (e->part.hi != partition->hi || e->part.lo != partition->lo)
        return false; /* two partitions sharing 64 bits: never another's answer */
    if (e->expires_ms <= sl_wall_ms()) {
        remove_slot(s, i);
        return false;
    }
    *hit = (sl_sem_hit){e->key, sim, {e->text, e->text_len}, sl_str_c(e->id)};
    return true;
}

void sl_semstore_touch(sl_semstore *s, const sl_cache_key *k)
{
    uint32_t i = find(s, k);
    if (i != NONE) {
        lru_unlink(s, i);
        lru_push(s, i);
    }
}

void sl_semstore_forget(sl_semstore *s, const sl_cache_key *k)
{
    uint32_t i = find(s, k);
    if (i != NONE)
        remove_slot(s, i);
}

static void sweep(sl_semstore *s)
{
    int64_t now = sl_wall_ms();
    for (size_t i = 0; i < s->cap; i++) {
        if (s->slots[i].used && s->slots[i].expires_ms <= now)
            remove_slot(s, (uint32_t)i);
    }
}

void sl_semstore_get_stats(const sl_semstore *s, sl_semstore_stats *out)
{
    size_t text = 0;
    for (uint32_t i = s->lru_head; i != NONE; i = s->slots[i].next)
        text += s->slots[i].text_len + 1;
    *out = (sl_semstore_stats){
        .entries = s->count,
        .max_entries = s->cap,
        .memory_bytes = (s->ix ? sl_vindex_memory(s->ix) : 0) + s->cap * sizeof(slot) +
                        (s->mask + 1) * sizeof(uint32_t) + text,
        .learned = s->learned,
        .rebuilt = s->rebuilt,
    };
}

/* ---- Redis ------------------------------------------------------------------------ */

static void key_hex(const sl_cache_key *k, char out[33])
{
    sl_cache_key_hex(k, out);
}

static bool parse_hex(const char *p, size_t n, sl_cache_key *out)
{
    if (n != 32)
        return false;
    uint64_t v[2] = {0, 0};
    for (size_t i = 0; i < 32; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v[i / 16] = v[i / 16] << 4 | (uint64_t)d;
    }
    *out = (sl_cache_key){v[0], v[1]};
    return true;
}

int sl_semstore_put(sl_semstore *s, const sl_sem_entry *e, uint64_t ttl_ms)
{
    int rc = add_local(s, e);
    if (rc != SL_OK || !s->redis)
        return rc;
    size_t len = sl_sem_entry_size(e);
    char *blob = malloc(len), key[80], hex[33], px[24], maxlen[24];
    if (!blob)
        return SL_ENOMEM;
    sl_sem_entry_encode(e, blob);
    sl_cache_key_redis(&e->key, "sv1", key);
    key_hex(&e->key, hex);
    snprintf(px, sizeof px, "%llu", (unsigned long long)ttl_ms);
    snprintf(maxlen, sizeof maxlen, "%zu", SL_MAX(s->cap, (size_t)1000));
    const char *set[] = {"SET", key, blob, "PX", px};
    size_t setl[] = {3, strlen(key), len, 2, strlen(px)};
    const char *add[] = {"XADD", STREAM, "MAXLEN", "~", maxlen, "*", "k", hex};
    size_t addl[] = {4, strlen(STREAM), 6, 1, strlen(maxlen), 1, 1, 32};
    /* best effort, in this order on one connection: a reader of the stream finds the vector */
    sl_redis_cmd(s->redis, NULL, NULL, 5, set, setl);
    sl_redis_cmd(s->redis, NULL, NULL, 8, add, addl);
    free(blob);
    return SL_OK;
}

static void fetch_next(sl_semstore *s);

static void on_mget(void *ud, const redisReply *reply, int status)
{
    sl_semstore *s = ud;
    size_t n = SL_MIN(s->n_pending, (size_t)BATCH);
    if (status != SL_OK || !reply || reply->type != REDIS_REPLY_ARRAY) {
        s->n_pending = 0; /* the next stream read goes on from where it got */
        s->rebuilt = true;
        s->busy = false;
        return;
    }
    int64_t now = sl_wall_ms();
    for (size_t i = 0; i < reply->elements && i < n; i++) {
        const redisReply *v = reply->element[i];
        sl_sem_entry e;
        if (v->type == REDIS_REPLY_STRING &&
            sl_sem_entry_decode(v->str, v->len, &e, s->vec) == SL_OK && e.expires_at_ms > now &&
            add_local(s, &e) == SL_OK)
            s->learned++;
    }
    s->n_pending -= n;
    fetch_next(s);
}

/* MGETs the pending keys, oldest first (so the newest end most recently used). */
static void fetch_next(sl_semstore *s)
{
    if (!s->n_pending) {
        s->rebuilt = true;
        s->busy = false;
        return;
    }
    size_t n = SL_MIN(s->n_pending, (size_t)BATCH);
    const char *argv[BATCH + 1];
    size_t argl[BATCH + 1];
    char keys[BATCH][80];
    argv[0] = "MGET", argl[0] = 4;
    for (size_t i = 0; i < n; i++) {
        sl_cache_key_redis(&s->pending[s->n_pending - 1 - i], "sv1", keys[i]);
        argv[i + 1] = keys[i], argl[i + 1] = strlen(keys[i]);
    }
    if (sl_redis_cmd(s->redis, on_mget, s, (int)n + 1, argv, argl) != SL_OK) {
        s->n_pending = 0;
        s->busy = false;
    }
}

/* Stream entries [id, [k, HEX]]: keys not known here join pending (newest
 * first when newest_first), last_id moves to the newest. */
static void take_entries(sl_semstore *s, const redisReply *list, bool newest_first)
{
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *m = list->element[newest_first ? i : list->elements - 1 - i];
        if (m->type != REDIS_REPLY_ARRAY || m->elements != 2 ||
            m->element[0]->type != REDIS_REPLY_STRING)
            continue;
        if (i == 0)
            snprintf(s->last_id, sizeof s->last_id, "%.*s",
                     (int)SL_MIN(m->element[0]->len, sizeof s->last_id - 1), m->element[0]->str);
        const redisReply *f = m->element[1];
        sl_cache_key k;
        if (f->type == REDIS_REPLY_ARRAY && f->elements == 2 &&
            f->element[1]->type == REDIS_REPLY_STRING &&
            parse_hex(f->element[1]->str, f->element[1]->len, &k) && find(s, &k) == NONE &&
            s->n_pending < s->cap)
            s->pending[s->n_pending++] = k;
    }
}

static void on_rebuild(void *ud, const redisReply *reply, int status)
{
    sl_semstore *s = ud;
    if (status != SL_OK || !reply || reply->type != REDIS_REPLY_ARRAY) {
        s->busy = false; /* tried again at the next tick */
        return;
    }
    take_entries(s, reply, true);
    fetch_next(s);
    if (s->rebuilt)
        sl_info("semantic cache: index rebuilt from Redis (%zu entries)", s->count);
}

static void on_read(void *ud, const redisReply *reply, int status)
{
    sl_semstore *s = ud;
    /* XREAD: [[stream, [entries]]] or nil */
    if (status != SL_OK || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_ARRAY || reply->element[0]->elements != 2 ||
        reply->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
        s->busy = false;
        return;
    }
    take_entries(s, reply->element[0]->element[1], false);
    fetch_next(s);
}

static void sync_once(sl_semstore *s)
{
    char count[24];
    snprintf(count, sizeof count, "%zu", s->rebuilt ? (size_t)READ : s->cap);
    int rc;
    if (!s->rebuilt) {
        const char *argv[] = {"XREVRANGE", STREAM, "+", "-", "COUNT", count};
        size_t argl[] = {9, strlen(STREAM), 1, 1, 5, strlen(count)};
        rc = sl_redis_cmd(s->redis, on_rebuild, s, 6, argv, argl);
    } else {
        const char *argv[] = {"XREAD", "COUNT", count, "STREAMS", STREAM, s->last_id};
        size_t argl[] = {5, 5, strlen(count), 7, strlen(STREAM), strlen(s->last_id)};
        rc = sl_redis_cmd(s->redis, on_read, s, 6, argv, argl);
    }
    s->busy = rc == SL_OK;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd), SL_UNUSED(what);
    sl_semstore *s = arg;
    if (++s->ticks % SWEEP_TICKS == 0)
        sweep(s);
    if (s->ix) /* a new graph's backlog: ~0.5-2 ms per vector, a few per tick */
        sl_vindex_step(s->ix, STEP);
    if (s->redis && !s->busy && sl_redis_get_state(s->redis) == SL_REDIS_UP)
        sync_once(s);
}
