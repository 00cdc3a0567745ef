/* meter.h — what an answer cost, in USD, from the provider's usage (meter.c).
 *
 * Not a stage: the pipeline prices every LLM answer in sl_req_finish, before
 * the reverse pass, so every on_response hook (limits settling a budget, the
 * observers) finds r->cost_usd already set, whatever the stage order. */
#ifndef SLUICE_METER_H
#define SLUICE_METER_H

#include "sluice/req.h"

/* Cost in USD of the given usage at the configured price; *priced false when
 * the model has no price (cost 0). */
double sl_meter_cost(const sl_config *c, sl_str model, long prompt, long completion, bool *priced);

/* Sets r->cost_usd (or r->saved_usd for an answer from the cache or a flight)
 * from r's usage, and the x-sluice-cost-usd header while the head is unsent.
 * Only answers that used (or would have used) a provider are priced: 200 and 499. */
void sl_meter_price(sl_req *r);

#endif
