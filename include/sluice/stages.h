/* stages.h — every pipeline stage, one per file in src/stages/. */
#ifndef SLUICE_STAGES_H
#define SLUICE_STAGES_H

#include "sluice/pipeline.h"

extern const sl_stage sl_stage_auth;        /* key -> tenant (401) */
extern const sl_stage sl_stage_parse;       /* body -> validated sl_llm_req (400/413) */
extern const sl_stage sl_stage_resume;      /* SSE ids; Last-Event-ID resumes a stream */
extern const sl_stage sl_stage_idempotency; /* Idempotency-Key: at most one call per key */
extern const sl_stage sl_stage_limits;      /* rpm, tpm, budget (429) */
extern const sl_stage sl_stage_route;       /* model -> provider (404 model_not_found) */
extern const sl_stage sl_stage_cache;       /* L1 + L2 lookup; store on the way back */
extern const sl_stage sl_stage_semantic;    /* a paraphrase's answer, guarded (semantic.c) */
extern const sl_stage sl_stage_coalesce;    /* identical requests in flight share one call */
extern const sl_stage sl_stage_batch;       /* concurrent embeddings share one call */
extern const sl_stage sl_stage_proxy;       /* the upstream call, plain or streamed */
/* other /v1/... routes relayed as they are (passthrough.h); before route: the
 * stages after it never see a pass-through request */
extern const sl_stage sl_stage_passthrough;

/* Answers r from a stored cache entry (cache.c; used by cross-instance
 * coalescing); false, with nothing sent, when the bytes are not an entry. */
bool sl_cache_serve_entry(sl_req *r, const char *entry, size_t len, const char *layer);

/* GET /v1/streams/{request_id}: the stream's events after Last-Event-ID (resume.c). */
void sl_stream_resume_route(sl_req *r);

/* The L1 fast path (cache.c), asked by the parse stage: true when r's exact
 * bytes name a cached entry, with r->llm (no root) and r->key filled from it;
 * false (nothing changed but r->raw_key) sends r down the full path. */
bool sl_cache_fast(sl_req *r);
/* Whether c turns the semantic level on anywhere (cache.semantic.enabled or a
 * key's semantic: true): main makes its index only then. */
bool sl_semantic_wanted(const sl_config *c);

uint64_t sl_coalesce_count(void); /* followers served by a flight */
/* What the limits stage counts against tenant's budget in the current period,
 * in USD: the shared counter as Redis last reported it, or the in-process one
 * (the larger when both are current); 0 when it has seen none. */
double sl_limits_spent_usd(const char *tenant, sl_budget_period period);
size_t sl_coalesce_flights(void); /* flights in the air now */
/* Bytes the flights hold in replay copies of their own (0 while every
 * streaming leader has a recording to replay from). */
size_t sl_coalesce_replay_bytes(void);

/* For stages that answer: finish the request and report SL_DONE. */
static inline sl_step sl_stage_answer(sl_req *r)
{
    sl_req_finish(r);
    return SL_DONE;
}

#endif
