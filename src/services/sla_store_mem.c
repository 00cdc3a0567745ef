/* sla_store_mem.c — the in-process SLA store (embedded mode); see sla_store.h.
 *
 * A hash table of tickets keyed by XXH3 of the id, each record holding the
 * ticket's JSON and id, its updated_at and its alert instants; a second table
 * of claimed alerts; a ring of the last dead letters. Every callback runs
 * before the call returns. Volatile: a restart forgets all of it. */
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "sluice/sla_store.h"

enum { BUCKETS = 65536 };
enum { Z_RISK = 0, Z_DUE = 1 }; /* the two kinds of instant, as the Redis sorted sets */

typedef struct mem_ticket {
    struct mem_ticket *next;
    uint64_t hash;
    int64_t updated_ms;
    int64_t at[2][2]; /* [Z_RISK|Z_DUE][kind]: the instant */
    bool armed[2][2]; /* the instant is still waiting to be popped */
    size_t len, id_len;
    char data[]; /* the JSON, then the id */
} mem_ticket;

typedef struct claim {
    struct claim *next;
    uint64_t hash;
} claim;

typedef struct mem_store {
    sl_sla_store base;
    mem_ticket **tickets;
    claim **claims;
    char *dead[SL_SLA_DEAD_MAX]; /* ring */
    size_t dead_head, dead_count;
} mem_store;

static mem_ticket *find(mem_store *s, sl_str id, uint64_t h)
{
    for (mem_ticket *m = s->tickets[h % BUCKETS]; m; m = m->next) {
        if (m->hash == h && m->id_len == id.len && memcmp(m->data + m->len, id.p, id.len) == 0)
            return m;
    }
    return NULL;
}

static mem_ticket *record_new(const sl_ticket *t, sl_str json, const sl_sla_marks *mk, uint64_t h)
{
    mem_ticket *m = malloc(sizeof(*m) + json.len + t->id.len);
    if (!m)
        return NULL;
    m->hash = h;
    m->updated_ms = t->updated_ms;
    m->len = json.len;
    m->id_len = t->id.len;
    memcpy(m->data, json.p, json.len);
    memcpy(m->data + json.len, t->id.p, t->id.len);
    for (int k = 0; k < 2; k++) {
        m->at[Z_RISK][k] = mk->risk_ms[k];
        m->at[Z_DUE][k] = mk->due_ms[k];
        m->armed[Z_RISK][k] = m->armed[Z_DUE][k] = mk->due_ms[k] > 0;
    }
    return m;
}

static int upsert_now(mem_store *s, const sl_ticket *t, sl_str json, const sl_sla_marks *mk)
{
    uint64_t h = XXH3_64bits(t->id.p, t->id.len);
    mem_ticket *old = find(s, t->id, h);
    if (old && old->updated_ms >= t->updated_ms)
        return 0;
    mem_ticket *m = record_new(t, json, mk, h);
    if (!m)
        return SL_ENOMEM;
    mem_ticket **pp = &s->tickets[h % BUCKETS];
    if (old) {
        while (*pp != old)
            pp = &(*pp)->next;
        *pp = old->next;
        free(old);
    }
    m->next = s->tickets[h % BUCKETS];
    s->tickets[h % BUCKETS] = m;
    return old ? 2 : 1;
}

static int mem_upsert(sl_sla_store *base, const sl_ticket *t, sl_str json, const sl_sla_marks *mk,
                      sl_sla_rc_cb cb, void *ud)
{
    cb(ud, upsert_now((mem_store *)base, t, json, mk));
    return SL_OK;
}

static int mem_get(sl_sla_store *base, sl_str id, sl_sla_json_cb cb, void *ud)
{
    mem_ticket *m = find((mem_store *)base, id, XXH3_64bits(id.p, id.len));
    if (m)
        cb(ud, SL_OK, (sl_str){m->data, m->len});
    else
        cb(ud, SL_ENOTFOUND, (sl_str){"", 0});
    return SL_OK;
}

/* A growable array of slices or due alerts, freed after the callback. */
typedef struct list {
    void *items;
    size_t n, cap, size;
} list;

static int list_push(list *l, const void *item)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        void *p = realloc(l->items, cap * l->size);
        if (!p)
            return SL_ENOMEM;
        l->items = p;
        l->cap = cap;
    }
    memcpy((char *)l->items + l->n * l->size, item, l->size);
    l->n++;
    return SL_OK;
}

static int mem_all(sl_sla_store *base, size_t max, sl_sla_list_cb cb, void *ud)
{
    mem_store *s = (mem_store *)base;
    list l = {.size = sizeof(sl_str)};
    for (size_t b = 0; b < BUCKETS; b++) {
        for (mem_ticket *m = s->tickets[b]; m && l.n < max; m = m->next) {
            sl_str j = {m->data, m->len};
            if (list_push(&l, &j) != SL_OK) {
                free(l.items);
                return SL_ENOMEM;
            }
        }
    }
    cb(ud, SL_OK, l.items, l.n);
    free(l.items);
    return SL_OK;
}

/* SET NX of the Redis store: true the first time (ticket, kind, state) is claimed. */
static bool claim_once(mem_store *s, sl_str id, int kind, sl_sla_state st)
{
    uint64_t h = XXH3_64bits_withSeed(id.p, id.len, (uint64_t)(kind * 8 + (int)st));
    for (claim *c = s->claims[h % BUCKETS]; c; c = c->next) {
        if (c->hash == h)
            return false;
    }
    claim *c = malloc(sizeof(*c));
    if (!c)
        return false;
    c->hash = h;
    c->next = s->claims[h % BUCKETS];
    s->claims[h % BUCKETS] = c;
    return true;
}

/* Disarms the instants of kind z that have come (at most max) and claims each alert. */
static int pop_instants(mem_store *s, int z, int64_t now, size_t max, list *out)
{
    static const sl_sla_state claims[] = {SL_SLA_AT_RISK, SL_SLA_BREACHED};
    size_t popped = 0;
    for (size_t b = 0; b < BUCKETS; b++) {
        for (mem_ticket *m = s->tickets[b]; m; m = m->next) {
            for (int k = 0; k < 2 && popped < max; k++) {
                if (!m->armed[z][k] || m->at[z][k] > now)
                    continue;
                m->armed[z][k] = false;
                popped++;
                sl_sla_due d = {k, claims[z], {m->data, m->len}};
                if (claim_once(s, (sl_str){m->data + m->len, m->id_len}, k, claims[z]) &&
                    list_push(out, &d) != SL_OK)
                    return SL_ENOMEM;
            }
        }
    }
    return SL_OK;
}

static int mem_pop_due(sl_sla_store *base, int64_t now, size_t max, int claim_ttl_s,
                       sl_sla_due_cb cb, void *ud)
{
    SL_UNUSED(claim_ttl_s); /* claims last as long as the process */
    mem_store *s = (mem_store *)base;
    list l = {.size = sizeof(sl_sla_due)};
    int rc = pop_instants(s, Z_RISK, now, max, &l);
    if (rc == SL_OK)
        rc = pop_instants(s, Z_DUE, now, max, &l);
    cb(ud, rc, rc == SL_OK ? l.items : NULL, rc == SL_OK ? l.n : 0);
    free(l.items);
    return SL_OK;
}

static int mem_sync(sl_sla_store *base, int acks, int wait_ms, sl_sla_rc_cb cb, void *ud)
{
    SL_UNUSED(base), SL_UNUSED(acks), SL_UNUSED(wait_ms);
    cb(ud, SL_OK);
    return SL_OK;
}

static void mem_dead_push(sl_sla_store *base, sl_str json)
{
    mem_store *s = (mem_store *)base;
    char *copy = strndup(json.p, json.len);
    if (!copy)
        return;
    if (s->dead_count == SL_SLA_DEAD_MAX) { /* full: the oldest makes room */
        free(s->dead[s->dead_head]);
        s->dead_head = (s->dead_head + 1) % SL_SLA_DEAD_MAX;
        s->dead_count--;
    }
    s->dead[(s->dead_head + s->dead_count) % SL_SLA_DEAD_MAX] = copy;
    s->dead_count++;
}

static int mem_dead_list(sl_sla_store *base, size_t max, sl_sla_list_cb cb, void *ud)
{
    mem_store *s = (mem_store *)base;
    sl_str items[SL_SLA_DEAD_MAX];
    size_t n = SL_MIN(max, s->dead_count);
    for (size_t i = 0; i < n; i++) {
        const char *d = s->dead[(s->dead_head + s->dead_count - 1 - i) % SL_SLA_DEAD_MAX];
        items[i] = (sl_str){d, strlen(d)};
    }
    cb(ud, SL_OK, items, n);
    return SL_OK;
}

static bool mem_ready(const sl_sla_store *base)
{
    SL_UNUSED(base);
    return true;
}

static void free_chains(mem_store *s)
{
    for (size_t b = 0; b < BUCKETS; b++) {
        for (mem_ticket *m = s->tickets[b], *n; m; m = n) {
            n = m->next;
            free(m);
        }
        for (claim *c = s->claims[b], *n; c; c = n) {
            n = c->next;
            free(c);
        }
    }
}

static void mem_free(sl_sla_store *base)
{
    mem_store *s = (mem_store *)base;
    if (!s)
        return;
    if (s->tickets && s->claims)
        free_chains(s);
    free(s->tickets);
    free(s->claims);
    for (size_t i = 0; i < s->dead_count; i++)
        free(s->dead[(s->dead_head + i) % SL_SLA_DEAD_MAX]);
    free(s);
}

static const sl_sla_store_ops mem_ops = {
    .name = "memory",
    .ready = mem_ready,
    .upsert = mem_upsert,
    .get = mem_get,
    .all = mem_all,
    .pop_due = mem_pop_due,
    .sync = mem_sync,
    .dead_push = mem_dead_push,
    .dead_list = mem_dead_list,
    .free = mem_free,
};

sl_sla_store *sl_sla_store_mem_new(void)
{
    mem_store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->base.ops = &mem_ops;
    s->tickets = calloc(BUCKETS, sizeof(*s->tickets));
    s->claims = calloc(BUCKETS, sizeof(*s->claims));
    if (!s->tickets || !s->claims) {
        mem_free(&s->base);
        return NULL;
    }
    return &s->base;
}
