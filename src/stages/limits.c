/* limits.c — stage: rpm / tpm token buckets and USD budgets per key.
 *
 * Admission takes one request from the rpm bucket and an *estimate* of the
 * tokens (prompt bytes / 4 + max_tokens) from the tpm bucket; on the way back
 * the estimate is corrected with the real usage. Budgets work the same way in
 * micro-dollars: admission reserves the estimated cost, settlement replaces
 * it with the real one, so concurrent requests cannot overshoot by more than
 * what is in flight. Over a limit: 429 with Retry-After and OpenAI's
 * x-ratelimit-* headers.
 *
 * State is per tenant, in process (one table); the Redis-backed variant keeps
 * the same arithmetic in one Lua script so limits hold across instances. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sluice/stages.h"

enum { MAX_TENANTS = 1024, DEFAULT_COMPLETION_ESTIMATE = 256 };

typedef struct bucket {
    double tokens;
    uint64_t at_ms;  /* last refill */
} bucket;

typedef struct tenant_state {
    char name[64];
    bucket rpm, tpm;
    int64_t spent_micro;    /* settled spend in the current period */
    int64_t reserved_micro; /* admitted, not yet settled */
    long period;            /* day or month number the spend belongs to */
} tenant_state;

typedef struct limits_ticket {
    tenant_state *t;
    long tokens_estimate;
    int64_t cost_estimate_micro;
} limits_ticket;

static tenant_state tenants[MAX_TENANTS];
static int n_tenants;

static tenant_state *tenant_of(const char *name)
{
    for (int i = 0; i < n_tenants; i++) {
        if (strcmp(tenants[i].name, name) == 0)
            return &tenants[i];
    }
    if (n_tenants == MAX_TENANTS)
        return NULL;
    tenant_state *t = &tenants[n_tenants++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rpm.tokens = t->tpm.tokens = -1; /* full on first use */
    return t;
}

/* Refills b for a limit of `per_min` and returns the tokens now available. */
static double refill(bucket *b, long per_min, uint64_t now)
{
    if (b->tokens < 0) {
        b->tokens = (double)per_min;
        b->at_ms = now;
    }
    double rate = (double)per_min / 60000.0;
    b->tokens = fmin((double)per_min, b->tokens + (double)(now - b->at_ms) * rate);
    b->at_ms = now;
    return b->tokens;
}

/* Milliseconds until `need` tokens are there. */
static long wait_ms(const bucket *b, long per_min, double need)
{
    double missing = need - b->tokens;
    return missing <= 0 ? 0 : (long)ceil(missing * 60000.0 / (double)per_min);
}

static long period_now(sl_budget_period p)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    if (p == SL_BUDGET_DAILY)
        return (long)(now / 86400);
    if (p == SL_BUDGET_MONTHLY)
        return (long)(tm.tm_year * 12 + tm.tm_mon);
    return 0;
}

static void set_headers(sl_req *r, const sl_key_conf *k, const tenant_state *t, long rpm_wait,
                        long tpm_wait)
{
    if (k->rpm > 0) {
        sl_req_header(r, "x-ratelimit-limit-requests", sl_arena_printf(&r->arena, "%ld", k->rpm));
        sl_req_header(r, "x-ratelimit-remaining-requests",
                      sl_arena_printf(&r->arena, "%ld", (long)fmax(0, floor(t->rpm.tokens))));
        sl_req_header(r, "x-ratelimit-reset-requests", sl_arena_printf(&r->arena, "%ldms", rpm_wait));
    }
    if (k->tpm > 0) {
        sl_req_header(r, "x-ratelimit-limit-tokens", sl_arena_printf(&r->arena, "%ld", k->tpm));
        sl_req_header(r, "x-ratelimit-remaining-tokens",
                      sl_arena_printf(&r->arena, "%ld", (long)fmax(0, floor(t->tpm.tokens))));
        sl_req_header(r, "x-ratelimit-reset-tokens", sl_arena_printf(&r->arena, "%ldms", tpm_wait));
    }
}

static sl_step refuse(sl_req *r, long retry_ms, const char *code, const char *msg)
{
    sl_req_header(r, "Retry-After", sl_arena_printf(&r->arena, "%ld", (retry_ms + 999) / 1000));
    sl_req_error(r, 429, code[0] == 'b' ? "insufficient_quota" : "rate_limit_error", code, NULL, msg);
    return sl_stage_answer(r);
}

static long estimate_tokens(const sl_req *r)
{
    long completion = r->llm.max_tokens > 0 ? r->llm.max_tokens : DEFAULT_COMPLETION_ESTIMATE;
    if (r->llm.api == SL_API_EMBEDDINGS)
        completion = 0;
    return (long)(r->llm.prompt_bytes / 4) + 1 + completion;
}

static sl_step limits_request(sl_req *r)
{
    const sl_key_conf *k = r->key_conf;
    if (!k || (k->rpm <= 0 && k->tpm <= 0 && k->budget_usd <= 0))
        return SL_NEXT;
    tenant_state *t = tenant_of(k->tenant);
    if (!t)
        return SL_NEXT;
    uint64_t now = sl_now_ms();
    long est = estimate_tokens(r);
    long rpm_wait = 0, tpm_wait = 0;
    if (k->rpm > 0 && refill(&t->rpm, k->rpm, now) < 1.0) {
        rpm_wait = wait_ms(&t->rpm, k->rpm, 1.0);
        set_headers(r, k, t, rpm_wait, 0);
        return refuse(r, rpm_wait, "rate_limit_exceeded",
                      sl_arena_printf(&r->arena, "Rate limit reached for %s: %ld requests per minute.",
                                      k->tenant, k->rpm));
    }
    if (k->tpm > 0 && refill(&t->tpm, k->tpm, now) < (double)SL_MIN(est, k->tpm)) {
        tpm_wait = wait_ms(&t->tpm, k->tpm, (double)SL_MIN(est, k->tpm));
        set_headers(r, k, t, 0, tpm_wait);
        return refuse(r, tpm_wait, "rate_limit_exceeded",
                      sl_arena_printf(&r->arena, "Rate limit reached for %s: %ld tokens per minute.",
                                      k->tenant, k->tpm));
    }
    int64_t cost_est = 0;
    if (k->budget_usd > 0) {
        long period = period_now(k->budget_period);
        if (period != t->period) {
            t->period = period;
            t->spent_micro = 0;
        }
        bool priced;
        double usd = sl_meter_cost(r->conf, r->llm.model, est - (r->llm.max_tokens > 0 ? r->llm.max_tokens : DEFAULT_COMPLETION_ESTIMATE),
                                   r->llm.max_tokens > 0 ? r->llm.max_tokens : DEFAULT_COMPLETION_ESTIMATE, &priced);
        cost_est = (int64_t)llround(usd * 1e6);
        int64_t budget = (int64_t)llround(k->budget_usd * 1e6);
        if (t->spent_micro + t->reserved_micro + cost_est > budget || t->spent_micro >= budget)
            return refuse(r, 3600 * 1000, "budget_exceeded",
                          sl_arena_printf(&r->arena, "Budget of $%.2f for %s is used up.", k->budget_usd, k->tenant));
        t->reserved_micro += cost_est;
    }
    if (k->rpm > 0)
        t->rpm.tokens -= 1.0;
    if (k->tpm > 0)
        t->tpm.tokens -= (double)est;
    set_headers(r, k, t, 0, 0);
    limits_ticket *tk = sl_arena_calloc(&r->arena, sizeof(*tk));
    if (tk) {
        *tk = (limits_ticket){.t = t, .tokens_estimate = est, .cost_estimate_micro = cost_est};
        r->stage_data[SL_SLOT_LIMITS] = tk;
    }
    return SL_NEXT;
}

/* Settles the estimate with what the answer really used and cost. */
static void limits_response(sl_req *r)
{
    limits_ticket *tk = r->stage_data[SL_SLOT_LIMITS];
    if (!tk)
        return;
    const sl_key_conf *k = r->key_conf;
    tenant_state *t = tk->t;
    if (k->tpm > 0) {
        long used = r->prompt_tokens + r->completion_tokens;
        t->tpm.tokens += (double)(tk->tokens_estimate - used);
    }
    if (k->budget_usd > 0) {
        t->reserved_micro -= tk->cost_estimate_micro;
        t->spent_micro += (int64_t)llround(r->cost_usd * 1e6);
    }
    r->stage_data[SL_SLOT_LIMITS] = NULL;
}

const sl_stage sl_stage_limits = {
    .name = "limits",
    .on_request = limits_request,
    .on_response = limits_response,
};
