/* price.c — usage x price, by the kind of each token; see price.h. */
#include "sluice/price.h"

double sl_price_cached_input(const sl_price_conf *p)
{
    return p->cached_input >= 0 ? p->cached_input : p->input;
}

double sl_price_cache_write(const sl_price_conf *p)
{
    return p->cache_write >= 0 ? p->cache_write : p->input * 1.25;
}

double sl_price_cache_write_1h(const sl_price_conf *p)
{
    return p->cache_write_1h >= 0 ? p->cache_write_1h : p->input * 2.0;
}

static long nonneg(long v)
{
    return v > 0 ? v : 0;
}

long sl_usage_uncached(const sl_usage *u)
{
    if (!u->prompt_has_cache)
        return nonneg(u->prompt);
    return nonneg(u->prompt - nonneg(u->cached) - nonneg(u->cache_write));
}

double sl_price_cost(const sl_price_conf *p, const sl_usage *u)
{
    long write = nonneg(u->cache_write), write_1h = nonneg(u->cache_write_1h);
    if (write_1h > write)
        write_1h = write;
    double usd = (double)sl_usage_uncached(u) * p->input +
                 (double)nonneg(u->cached) * sl_price_cached_input(p) +
                 (double)(write - write_1h) * sl_price_cache_write(p) +
                 (double)write_1h * sl_price_cache_write_1h(p) +
                 (double)nonneg(u->completion) * p->output;
    return usd / 1e6;
}
