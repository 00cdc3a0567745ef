/* meter.c — what the answer cost, in USD, from the provider's usage; see meter.h.
 *
 * Runs once the answer is complete, after the proxy (or the cache, or a
 * flight) recorded the usage. An answer served from the cache or by
 * coalescing cost nothing: its would-be price is recorded as saved. A model
 * without a price costs 0 and is logged once. Plain answers carry the cost in
 * `x-sluice-cost-usd`; streams report it in the access log. */
#include "sluice/price.h"
#include "sluice/meter.h"

#include <math.h>
#include <stdio.h>

#include "sluice/log.h"
#include "sluice/metrics.h"

/* Logs each unpriced model once (a small fixed table: a bound, not a leak). */
static void warn_unpriced(sl_str model)
{
    static char seen[32][64];
    static int n_seen;
    for (int i = 0; i < n_seen; i++) {
        if (sl_str_eq_c(model, seen[i]))
            return;
    }
    if (n_seen < 32)
        snprintf(seen[n_seen++], sizeof seen[0], "%.*s", (int)SL_MIN(model.len, 63), model.p);
    sl_warn("no price for model %.*s: metered at $0", (int)SL_MIN(model.len, 200), model.p);
}

double sl_meter_cost(const sl_config *c, sl_str model, long prompt, long completion, bool *priced)
{
    const sl_price_conf *p = sl_config_price(c, model);
    *priced = p != NULL;
    if (!p)
        return 0.0;
    return ((double)prompt * p->input + (double)completion * p->output) / 1e6;
}

/* The same cost in pico-dollars: tokens times the price in micro-dollars per
 * 1M tokens, exact in integers. False when it does not fit in 63 bits
 * (over 9 million dollars for one answer). */
static bool cost_pusd(const sl_price_conf *p, long prompt, long completion, int64_t *out)
{
    *out = 0;
    if (!p)
        return true;
    int64_t in = (int64_t)llround(p->input * 1e6), outp = (int64_t)llround(p->output * 1e6);
    int64_t a, b;
    return !__builtin_mul_overflow((int64_t)prompt, in, &a) &&
           !__builtin_mul_overflow((int64_t)completion, outp, &b) &&
           !__builtin_add_overflow(a, b, out);
}

void sl_meter_price(sl_req *r)
{
    if (!r->is_llm || (r->status != 200 && r->status != 499))
        return;
    const sl_price_conf *price = sl_config_price(r->conf, r->llm.model);
    bool priced = price != NULL;
    int64_t pusd;
    r->money_inexact = !cost_pusd(price, r->prompt_tokens, r->completion_tokens, &pusd);
    double cost =
        r->money_inexact
            ? sl_meter_cost(r->conf, r->llm.model, r->prompt_tokens, r->completion_tokens, &priced)
            : (double)pusd / 1e12; /* the double agrees with what is printed */
    if (price && (r->cached_tokens || r->cache_write_tokens)) { /* each kind at its price */
        sl_usage u = {.prompt = r->prompt_tokens,
                      .completion = r->completion_tokens,
                      .cached = r->cached_tokens,
                      .cache_write = r->cache_write_tokens,
                      .cache_write_1h = r->cache_write_1h_tokens,
                      .reasoning = r->reasoning_tokens,
                      .prompt_has_cache = r->prompt_has_cache};
        cost = sl_price_cost(price, &u);
        r->money_inexact = cost * 1e12 >= 9e18;
        pusd = r->money_inexact ? 0 : (int64_t)llround(cost * 1e12);
    }
    if (!priced && (r->prompt_tokens || r->completion_tokens)) {
        warn_unpriced(r->llm.model);
        char model[128];
        const char *labels[] = {sl_metrics_model_label(r, model, sizeof model)};
        sl_metric_add(SL_M_UNPRICED, 1, labels);
    }
    bool saved =
        r->cache == SL_CACHE_HIT || r->cache == SL_CACHE_COALESCED || r->cache == SL_CACHE_SEMANTIC;
    /* the semantic level's embedding counts against the money saved (a miss
     * that embedded saved a negative amount) */
    r->saved_usd = (saved ? cost : 0.0) - r->cache_overhead_usd;
    r->cost_usd = saved ? 0.0 : cost;
    r->saved_pusd = (saved ? pusd : 0) - r->cache_overhead_pusd;
    r->cost_pusd = saved ? 0 : pusd;
    if (r->head_sent)
        return;
    const char *hdr = "0.00000000";
    if (r->cost_usd != 0 && r->money_inexact)
        hdr = sl_arena_printf(&r->arena, "%.8f", r->cost_usd);
    else if (r->cost_usd != 0) {
        char num[32];
        size_t n = sl_fmt_pusd_fixed8(r->cost_pusd, num);
        hdr = sl_arena_strndup(&r->arena, num, n);
    }
    sl_req_header(r, "x-sluice-cost-usd", hdr);
}
