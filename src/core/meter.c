/* meter.c — what the answer cost, in USD, from the provider's usage; see meter.h.
 *
 * Runs once the answer is complete, after the proxy (or the cache, or a
 * flight) recorded the usage. An answer served from the cache or by
 * coalescing cost nothing: its would-be price is recorded as saved. A model
 * without a price costs 0 and is logged once. Plain answers carry the cost in
 * `x-sluice-cost-usd`; streams report it in the access log. */
#include "sluice/meter.h"

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

void sl_meter_price(sl_req *r)
{
    if (!r->is_llm || (r->status != 200 && r->status != 499))
        return;
    bool priced;
    double cost =
        sl_meter_cost(r->conf, r->llm.model, r->prompt_tokens, r->completion_tokens, &priced);
    if (!priced && (r->prompt_tokens || r->completion_tokens)) {
        warn_unpriced(r->llm.model);
        char model[128];
        const char *labels[] = {sl_metrics_model_label(r, model, sizeof model)};
        sl_metric_add(SL_M_UNPRICED, 1, labels);
    }
    if (r->cache == SL_CACHE_HIT || r->cache == SL_CACHE_COALESCED ||
        r->cache == SL_CACHE_SEMANTIC) {
        r->saved_usd = cost - r->cache_overhead_usd;
        r->cost_usd = 0.0;
    } else {
        r->saved_usd = -r->cache_overhead_usd; /* a semantic miss: the embedding was spent */
        r->cost_usd = cost;
    }
    if (!r->head_sent)
        sl_req_header(r, "x-sluice-cost-usd",
                      r->cost_usd == 0 ? "0.00000000"
                                       : sl_arena_printf(&r->arena, "%.8f", r->cost_usd));
}
