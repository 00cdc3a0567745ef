/* stages.h — every pipeline stage, one per file in src/stages/. */
#ifndef SLUICE_STAGES_H
#define SLUICE_STAGES_H

#include "sluice/pipeline.h"

extern const sl_stage sl_stage_auth;     /* key -> tenant (401) */
extern const sl_stage sl_stage_parse;    /* body -> validated sl_llm_req (400/413) */
extern const sl_stage sl_stage_limits;   /* rpm, tpm, budget (429) */
extern const sl_stage sl_stage_meter;    /* usage x price -> cost (on the way back) */
extern const sl_stage sl_stage_route;    /* model -> provider (404 model_not_found) */
extern const sl_stage sl_stage_cache;    /* L1 + L2 lookup; store on the way back */
extern const sl_stage sl_stage_coalesce; /* identical requests in flight share one call */
extern const sl_stage sl_stage_proxy;    /* the upstream call, plain or streamed */
/* other /v1/... routes relayed as they are (passthrough.h); before route: the
 * stages after it never see a pass-through request */
extern const sl_stage sl_stage_passthrough;

struct sl_redis;
/* Shares rate limits and budgets through Redis (NULL: in-process only). */
void sl_limits_setup(struct sl_redis *redis);

void sl_coalesce_setup(struct sl_redis *redis);
/* Answers r from a stored cache entry (cache.c; used by cross-instance
 * coalescing); false, with nothing sent, when the bytes are not an entry. */
bool sl_cache_serve_entry(sl_req *r, const char *entry, size_t len, const char *layer);

/* Cost in USD of the given usage at the configured price (meter.c). */
double sl_meter_cost(const sl_config *c, sl_str model, long prompt, long completion, bool *priced);

uint64_t sl_coalesce_count(void); /* followers served by a flight */
size_t sl_coalesce_flights(void); /* flights in the air now */

/* Private per-request slots of the stages (r->stage_data[...]). */
enum { SL_SLOT_PROXY = 0, SL_SLOT_CACHE, SL_SLOT_COALESCE, SL_SLOT_LIMITS, SL_SLOT_AUTH };

/* For stages that answer: complete the request and report SL_DONE. */
static inline sl_step sl_stage_answer(sl_req *r)
{
    sl_pipeline_complete(r);
    return SL_DONE;
}

#endif
