/* l1.c — chained hash table + intrusive LRU list, and a second table of
 * aliases (each owned by one entry); see l1.h. */
#include "sluice/l1.h"

#include <stdlib.h>

typedef struct alias alias;

struct sl_l1_entry {
    sl_l1_key key;
    sl_l1_entry *hnext;       /* hash chain */
    sl_l1_entry *prev, *next; /* LRU list: head is most recent */
    uint64_t expires_ms;
    uint32_t flags;
    int refs; /* the table holds one while linked */
    bool linked;
    int n_aliases;
    alias *aliases;     /* newest first; freed with the entry's table link */
    size_t alias_bytes; /* their share of st.bytes */
    size_t len;
    char data[];
};

struct alias {
    sl_l1_key key;
    alias *hnext;       /* alias hash chain */
    alias *enext;       /* next alias of the same entry */
    sl_l1_entry *entry; /* its owner */
    size_t len;
    char meta[];
};

struct sl_l1 {
    sl_l1_entry **buckets;
    alias **abuckets; /* same size and indexing as buckets */
    size_t mask;
    sl_l1_entry *head, *tail;
    sl_l1_stats st;
};

enum { ENTRY_OVERHEAD = sizeof(sl_l1_entry) + 16, ALIAS_OVERHEAD = sizeof(alias) + 16 };

static uint64_t (*clock_ms)(void) = sl_coarse_ms; /* TTLs are seconds */

void sl_l1_set_clock(uint64_t (*now_ms)(void))
{
    clock_ms = now_ms ? now_ms : sl_coarse_ms;
}

sl_l1 *sl_l1_new(size_t max_bytes)
{
    sl_l1 *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    size_t n = 1024;
    while (n < max_bytes / 2048 && n < (1u << 22))
        n *= 2;
    c->buckets = calloc(n, sizeof(*c->buckets));
    c->abuckets = calloc(n, sizeof(*c->abuckets));
    if (!c->buckets || !c->abuckets) {
        free(c->buckets);
        free(c->abuckets);
        free(c);
        return NULL;
    }
    c->mask = n - 1;
    c->st.max_bytes = max_bytes;
    return c;
}

static size_t cost(const sl_l1_entry *e)
{
    return e->len + ENTRY_OVERHEAD + e->alias_bytes;
}

static void lru_unlink(sl_l1 *c, sl_l1_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(sl_l1 *c, sl_l1_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

void sl_l1_entry_unref(sl_l1_entry *e)
{
    if (e && --e->refs == 0)
        free(e);
}

/* Unlinks a from the alias table and from its entry's list, and frees it. */
static void remove_alias(sl_l1 *c, alias *a)
{
    alias **pp = &c->abuckets[a->key.lo & c->mask];
    while (*pp && *pp != a)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = a->hnext;
    sl_l1_entry *e = a->entry;
    for (pp = &e->aliases; *pp && *pp != a;)
        pp = &(*pp)->enext;
    if (*pp)
        *pp = a->enext;
    size_t bytes = a->len + ALIAS_OVERHEAD;
    e->n_aliases--;
    e->alias_bytes -= bytes;
    c->st.aliases--;
    if (e->linked)
        c->st.bytes -= bytes;
    free(a);
}

/* Takes e out of the table and the LRU; drops the table's reference. Its
 * aliases go with it. */
static void remove_entry(sl_l1 *c, sl_l1_entry *e)
{
    while (e->aliases)
        remove_alias(c, e->aliases);
    sl_l1_entry **pp = &c->buckets[e->key.lo & c->mask];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    lru_unlink(c, e);
    e->linked = false;
    c->st.entries--;
    c->st.bytes -= cost(e);
    sl_l1_entry_unref(e);
}

static sl_l1_entry *find(sl_l1 *c, sl_l1_key k)
{
    for (sl_l1_entry *e = c->buckets[k.lo & c->mask]; e; e = e->hnext) {
        if (e->key.lo == k.lo && e->key.hi == k.hi)
            return e;
    }
    return NULL;
}

sl_l1_entry *sl_l1_get(sl_l1 *c, sl_l1_key k)
{
    sl_l1_entry *e = find(c, k);
    if (e && e->expires_ms <= clock_ms()) {
        remove_entry(c, e);
        c->st.expired++;
        e = NULL;
    }
    if (!e) {
        c->st.misses++;
        return NULL;
    }
    lru_unlink(c, e);
    lru_push_front(c, e);
    e->refs++;
    c->st.hits++;
    return e;
}

int sl_l1_put(sl_l1 *c, sl_l1_key k, const void *val, size_t len, uint32_t flags, uint64_t ttl_ms)
{
    if (len + ENTRY_OVERHEAD > c->st.max_bytes / 8)
        return SL_ETOOBIG;
    sl_l1_entry *old = find(c, k);
    if (old)
        remove_entry(c, old);
    sl_l1_entry *e = malloc(sizeof(*e) + len);
    if (!e)
        return SL_ENOMEM;
    memset(e, 0, sizeof(*e));
    e->key = k;
    e->len = len;
    e->flags = flags;
    e->expires_ms = clock_ms() + ttl_ms;
    e->refs = 1;
    e->linked = true;
    memcpy(e->data, val, len);
    while (c->tail && c->st.bytes + cost(e) > c->st.max_bytes) {
        remove_entry(c, c->tail); /* least recently used first */
        c->st.evictions++;
    }
    sl_l1_entry **b = &c->buckets[k.lo & c->mask];
    e->hnext = *b;
    *b = e;
    lru_push_front(c, e);
    c->st.entries++;
    c->st.bytes += cost(e);
    return SL_OK;
}

static alias *find_alias(sl_l1 *c, sl_l1_key k)
{
    for (alias *a = c->abuckets[k.lo & c->mask]; a; a = a->hnext) {
        if (a->key.lo == k.lo && a->key.hi == k.hi)
            return a;
    }
    return NULL;
}

int sl_l1_alias_put(sl_l1 *c, sl_l1_key entry, sl_l1_key key, const void *meta, size_t len)
{
    sl_l1_entry *e = find(c, entry);
    if (!e || e->expires_ms <= clock_ms())
        return SL_ENOTFOUND;
    alias *a = find_alias(c, key);
    if (a && a->entry == e && a->len == len && memcmp(a->meta, meta, len) == 0)
        return SL_OK;
    if (a)
        remove_alias(c, a);
    if (e->n_aliases >= SL_L1_MAX_ALIASES) { /* the oldest makes room */
        alias *last = e->aliases;
        while (last->enext)
            last = last->enext;
        remove_alias(c, last);
    }
    if (!(a = malloc(sizeof(*a) + len)))
        return SL_ENOMEM;
    a->key = key;
    a->entry = e;
    a->len = len;
    memcpy(a->meta, meta, len);
    a->hnext = c->abuckets[key.lo & c->mask];
    c->abuckets[key.lo & c->mask] = a;
    a->enext = e->aliases;
    e->aliases = a;
    e->n_aliases++;
    c->st.aliases++;
    e->alias_bytes += len + ALIAS_OVERHEAD;
    c->st.bytes += len + ALIAS_OVERHEAD;
    while (c->tail && c->tail != e && c->st.bytes > c->st.max_bytes) {
        remove_entry(c, c->tail);
        c->st.evictions++;
    }
    return SL_OK;
}

const void *sl_l1_alias_get(sl_l1 *c, sl_l1_key key, size_t *len, sl_l1_key *entry)
{
    alias *a = find_alias(c, key);
    if (!a || a->entry->expires_ms <= clock_ms())
        return NULL; /* an expired entry is reaped by the sl_l1_get that follows a miss */
    *len = a->len;
    *entry = a->entry->key;
    c->st.alias_hits++;
    return a->meta;
}

void sl_l1_set_max_bytes(sl_l1 *c, size_t max_bytes)
{
    c->st.max_bytes = max_bytes;
    while (c->tail && c->st.bytes > max_bytes) {
        remove_entry(c, c->tail); /* least recently used first, as a put would */
        c->st.evictions++;
    }
}

void sl_l1_del(sl_l1 *c, sl_l1_key k)
{
    sl_l1_entry *e = find(c, k);
    if (e)
        remove_entry(c, e);
}

const char *sl_l1_entry_data(const sl_l1_entry *e)
{
    return e->data;
}
size_t sl_l1_entry_len(const sl_l1_entry *e)
{
    return e->len;
}
uint32_t sl_l1_entry_flags(const sl_l1_entry *e)
{
    return e->flags;
}
void sl_l1_get_stats(const sl_l1 *c, sl_l1_stats *out)
{
    *out = c->st;
}

void sl_l1_free(sl_l1 *c)
{
    if (!c)
        return;
    while (c->head)
        remove_entry(c, c->head);
    free(c->buckets);
    free(c->abuckets);
    free(c);
}
