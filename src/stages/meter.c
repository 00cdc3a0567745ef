/* meter.c — stage: what the answer cost, in USD, from the provider's usage.
 *
 * Runs on the way back (on_response), after the proxy recorded the usage.
 * An answer served from the cache or by coalescing cost nothing: its would-be
 * price is recorded as saved. A model without a price costs 0 and is logged
 * once. Plain answers carry the cost in `x-sluice-cost-usd`; streams report
 * it in the access log. */
#include <stdio.h>

#include "sluice/log.h"
#include "sluice/metrics.h"
#include "sluice/price.h"
#include "sluice/stages.h"

static sl_step meter_request(sl_req *r)
{
    SL_UNUSED(r);
    return SL_NEXT;
}

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
    return sl_price_cost(p, &(sl_usage){.prompt = prompt, .completion = completion});
}

/* Every kind of token the provider reported, each at its own price. */
static double request_cost(const sl_req *r, bool *priced)
{
    const sl_price_conf *p = sl_config_price(r->conf, r->llm.model);
    *priced = p != NULL;
    if (!p)
        return 0.0;
    sl_usage u = {
        .prompt = r->prompt_tokens,
        .completion = r->completion_tokens,
        .cached = r->cached_tokens,
        .cache_write = r->cache_write_tokens,
        .cache_write_1h = r->cache_write_1h_tokens,
        .reasoning = r->reasoning_tokens,
        .prompt_has_cache = r->prompt_has_cache,
    };
    return sl_price_cost(p, &u);
}

static void meter_response(sl_req *r)
{
    if (r->status != 200 && r->status != 499)
        return;
    bool priced;
    double cost = request_cost(r, &priced);
    if (!priced && (r->prompt_tokens || r->completion_tokens)) {
        warn_unpriced(r->llm.model);
        char model[128];
        const char *labels[] = {sl_metrics_model_label(r, model, sizeof model)};
        sl_metric_add(SL_M_UNPRICED, 1, labels);
    }
    if (r->cache == SL_CACHE_HIT || r->cache == SL_CACHE_COALESCED) {
        r->saved_usd = cost;
        r->cost_usd = 0.0;
    } else {
        r->cost_usd = cost;
    }
    if (!r->head_sent)
        sl_req_header(r, "x-sluice-cost-usd",
                      r->cost_usd == 0 ? "0.00000000"
                                       : sl_arena_printf(&r->arena, "%.8f", r->cost_usd));
}

const sl_stage sl_stage_meter = {
    .name = "meter",
    .on_request = meter_request,
    .on_response = meter_response,
};
