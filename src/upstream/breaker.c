/* breaker.c — per-provider circuit breakers; see breaker.h. */
#include "sluice/breaker.h"

#include <stdio.h>

#include "sluice/log.h"

enum { MAX_BREAKERS = 64 };

typedef struct breaker {
    char name[64];
    sl_breaker_state state;
    int failures;           /* consecutive */
    uint64_t open_until_ms; /* monotonic */
    bool probe_out;         /* half-open: the probe is in flight */
    uint64_t opened;        /* times opened */
} breaker;

static breaker table[MAX_BREAKERS];
static int n_table;

static breaker *find(const char *name, bool create)
{
    for (int i = 0; i < n_table; i++) {
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    }
    if (!create || n_table == MAX_BREAKERS)
        return NULL;
    breaker *b = &table[n_table++];
    snprintf(b->name, sizeof b->name, "%s", name);
    return b;
}

bool sl_breaker_admit(const char *provider, int cooldown_s, sl_breaker_ticket *t, uint64_t *wait_ms)
{
    SL_UNUSED(cooldown_s);
    breaker *b = find(provider, true);
    t->slot = b ? (int)(b - table) : -1;
    t->probe = false;
    if (!b)
        return true; /* table full: no breaking rather than no traffic */
    uint64_t now = sl_now_ms();
    if (b->state == SL_BREAKER_OPEN && now >= b->open_until_ms)
        b->state = SL_BREAKER_HALF_OPEN;
    switch (b->state) {
    case SL_BREAKER_CLOSED: return true;
    case SL_BREAKER_OPEN: *wait_ms = b->open_until_ms - now; return false;
    case SL_BREAKER_HALF_OPEN:
        if (b->probe_out) {
            *wait_ms = 1000;
            return false;
        }
        b->probe_out = true;
        t->probe = true;
        return true;
    }
    return true;
}

void sl_breaker_report(const sl_breaker_ticket *t, bool ok, int failures, int cooldown_s)
{
    if (t->slot < 0)
        return;
    breaker *b = &table[t->slot];
    if (t->probe)
        b->probe_out = false;
    if (ok) {
        if (b->state != SL_BREAKER_CLOSED)
            sl_info("breaker %s: closed", b->name);
        b->state = SL_BREAKER_CLOSED;
        b->failures = 0;
        return;
    }
    b->failures++;
    bool reopen = b->state == SL_BREAKER_HALF_OPEN && t->probe;
    if (reopen || (b->state == SL_BREAKER_CLOSED && b->failures >= failures)) {
        b->state = SL_BREAKER_OPEN;
        b->open_until_ms = sl_now_ms() + (uint64_t)cooldown_s * 1000u;
        b->opened++;
        sl_warn("breaker %s: open for %d s after %d consecutive failures", b->name, cooldown_s,
                b->failures);
    }
}

void sl_breaker_release(const sl_breaker_ticket *t)
{
    if (t->slot >= 0 && t->probe)
        table[t->slot].probe_out = false;
}

sl_breaker_state sl_breaker_state_of(const char *provider)
{
    breaker *b = find(provider, false);
    if (!b)
        return SL_BREAKER_CLOSED;
    if (b->state == SL_BREAKER_OPEN && sl_now_ms() >= b->open_until_ms)
        return SL_BREAKER_HALF_OPEN;
    return b->state;
}

const char *sl_breaker_state_name(sl_breaker_state s)
{
    switch (s) {
    case SL_BREAKER_CLOSED: return "closed";
    case SL_BREAKER_OPEN: return "open";
    case SL_BREAKER_HALF_OPEN: return "half_open";
    }
    return "closed";
}

void sl_breaker_stats(const char *provider, int *failures, uint64_t *opened)
{
    breaker *b = find(provider, false);
    *failures = b ? b->failures : 0;
    *opened = b ? b->opened : 0;
}
