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
 * the same arithmetic in one Lua script so limits hold across instances
 * (r->env->redis; NULL: embedded).
 *
 * Reads:  r->key_conf, r->llm (model, max_tokens, prompt_bytes, api); on the
 *         way back r->prompt_tokens, r->completion_tokens and r->cost_usd
 *         (priced by the pipeline before any on_response hook).
 * Writes: the x-ratelimit-* headers, Retry-After; answers 429.
 * Context: limits_ctx, the admission ticket to settle (keys with limits only). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sluice/log.h"
#include "sluice/meter.h"
#include "sluice/redis.h"
#include "sluice/redis_keys.h"
#include "sluice/stages.h"

enum { MAX_TENANTS = 1024, DEFAULT_COMPLETION_ESTIMATE = 256 };

typedef struct bucket {
    double tokens;
    uint64_t at_ms; /* last refill */
} bucket;

typedef struct tenant_state {
    char name[64];
    bucket rpm, tpm;
    int64_t spent_micro;    /* settled spend in the current period */
    int64_t reserved_micro; /* admitted, not yet settled */
    long period;            /* day or month number the spend belongs to */
    int64_t seen_micro;     /* the shared (Redis) spend last read, for /metrics */
    long seen_period;       /* the period it belongs to */
    bool seen;
} tenant_state;

static tenant_state tenants[MAX_TENANTS];
static int n_tenants;

/* One atomic step for both buckets and the budget, shared by every instance.
 * KEYS: rpm bucket, tpm bucket, spend counter. ARGV: rpm, tpm, tokens,
 * budget micro-USD (0: none), cost estimate micro-USD, spend TTL seconds.
 * Returns {allowed(1|0|-1 budget), rpm left, tpm left, wait ms, spend micro-USD}. */
static const char *const LIMIT_SCRIPT =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local function take(key, per_min, need)\n"
    "  if per_min <= 0 then return 1, -1, 0 end\n"
    "  local b = redis.call('HMGET', key, 'tokens', 'at')\n"
    "  local tokens = tonumber(b[1]) or per_min\n"
    "  local at = tonumber(b[2]) or now\n"
    "  tokens = math.min(per_min, tokens + (now - at) * per_min / 60000)\n"
    "  local want = math.min(need, per_min)\n"
    "  if tokens < want then\n"
    "    return 0, tokens, math.ceil((want - tokens) * 60000 / per_min)\n"
    "  end\n"
    "  return 1, tokens, 0\n"
    "end\n"
    "local rpm, tpm, need = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local ok1, r1, w1 = take(KEYS[1], rpm, 1)\n"
    "if ok1 == 0 then return {0, math.floor(r1), -1, w1} end\n"
    "local ok2, r2, w2 = take(KEYS[2], tpm, need)\n"
    "if ok2 == 0 then return {0, math.floor(r1), math.floor(r2), w2} end\n"
    "local budget, est = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local spent = 0\n"
    "if budget > 0 then\n"
    "  spent = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
    "  if spent >= budget or spent + est > budget then return {-1, 0, 0, 0, spent} end\n"
    "  spent = redis.call('INCRBY', KEYS[3], est)\n"
    "  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[6]))\n"
    "end\n"
    "if rpm > 0 then\n"
    "  redis.call('HSET', KEYS[1], 'tokens', r1 - 1, 'at', now)\n"
    "  redis.call('PEXPIRE', KEYS[1], 120000)\n"
    "end\n"
    "if tpm > 0 then\n"
    "  redis.call('HSET', KEYS[2], 'tokens', r2 - need, 'at', now)\n"
    "  redis.call('PEXPIRE', KEYS[2], 120000)\n"
    "end\n"
    "return {1, math.floor(r1 - 1), math.floor(r2 - need), 0, spent}\n";

/* The correction once the answer is known. A bucket or spend key that expired
 * meanwhile (a stream longer than the bucket's 120 s life) is left alone: a
 * bucket that old is full again, a spend period that ended is closed, and
 * recreating either would leave a key without a TTL. */
static const char *const SETTLE_SCRIPT =
    "if tonumber(ARGV[1]) ~= 0 and redis.call('EXISTS', KEYS[1]) == 1 then\n"
    "  redis.call('HINCRBYFLOAT', KEYS[1], 'tokens', ARGV[1])\n"
    "end\n"
    "if tonumber(ARGV[2]) ~= 0 and redis.call('EXISTS', KEYS[2]) == 1 then\n"
    "  redis.call('INCRBY', KEYS[2], ARGV[2])\n"
    "end\n"
    "return 1\n";

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
        sl_req_header(r, "x-ratelimit-reset-requests",
                      sl_arena_printf(&r->arena, "%ldms", rpm_wait));
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
    sl_req_error(r, 429, code[0] == 'b' ? "insufficient_quota" : "rate_limit_error", code, NULL,
                 msg);
    return sl_stage_answer(r);
}

static long estimate_tokens(const sl_req *r)
{
    if (r->pass)
        return 0; /* a pass-through counts as a request; tokens only if its answer says */
    long completion = r->llm.max_tokens > 0 ? r->llm.max_tokens : DEFAULT_COMPLETION_ESTIMATE;
    if (r->llm.api == SL_API_EMBEDDINGS || r->llm.api == SL_API_COUNT_TOKENS) /* no completion */
        completion = 0;
    return (long)(r->llm.prompt_bytes / 4) + 1 + completion;
}

typedef struct limits_ticket {
    sl_req *r;
    tenant_state *t;    /* in-process mode */
    tenant_state *seen; /* shared mode: where the spend Redis reports is kept */
    bool admitted;      /* taken from the buckets: settle on the way back */
    bool shared;        /* admitted by Redis: settle there */
    long tokens_estimate;
    int64_t cost_estimate_micro;
    char keys[3][160]; /* Redis keys: rpm, tpm, spend */
} limits_ticket;

static bool limited(const sl_key_conf *k)
{
    return k && (k->rpm > 0 || k->tpm > 0 || k->budget_usd > 0);
}

static int64_t estimate_cost_micro(const sl_req *r, long est)
{
    long completion = r->llm.max_tokens > 0 ? r->llm.max_tokens : DEFAULT_COMPLETION_ESTIMATE;
    bool priced;
    double usd = sl_meter_cost(r->conf, r->llm.model, est - completion, completion, &priced);
    return (int64_t)llround(usd * 1e6);
}

/* In-process admission: the embedded mode, and the fallback when Redis is away. */
static sl_step local_admit(sl_req *r, limits_ticket *tk)
{
    const sl_key_conf *k = r->key_conf;
    tenant_state *t = tenant_of(k->tenant);
    if (!t)
        return SL_NEXT;
    uint64_t now = sl_now_ms();
    long est = tk->tokens_estimate;
    if (k->rpm > 0 && refill(&t->rpm, k->rpm, now) < 1.0) {
        long w = wait_ms(&t->rpm, k->rpm, 1.0);
        set_headers(r, k, t, w, 0);
        return refuse(r, w, "rate_limit_exceeded",
                      sl_arena_printf(&r->arena,
                                      "Rate limit reached for %s: %ld requests per minute.",
                                      k->tenant, k->rpm));
    }
    if (k->tpm > 0 && refill(&t->tpm, k->tpm, now) < (double)SL_MIN(est, k->tpm)) {
        long w = wait_ms(&t->tpm, k->tpm, (double)SL_MIN(est, k->tpm));
        set_headers(r, k, t, 0, w);
        return refuse(r, w, "rate_limit_exceeded",
                      sl_arena_printf(&r->arena,
                                      "Rate limit reached for %s: %ld tokens per minute.",
                                      k->tenant, k->tpm));
    }
    if (k->budget_usd > 0) {
        long period = period_now(k->budget_period);
        if (period != t->period) {
            t->period = period;
            t->spent_micro = 0;
        }
        int64_t budget = (int64_t)llround(k->budget_usd * 1e6);
        if (t->spent_micro >= budget ||
            t->spent_micro + t->reserved_micro + tk->cost_estimate_micro > budget)
            return refuse(r, 3600 * 1000, "budget_exceeded",
                          sl_arena_printf(&r->arena, "Budget of $%.2f for %s is used up.",
                                          k->budget_usd, k->tenant));
        t->reserved_micro += tk->cost_estimate_micro;
    }
    if (k->rpm > 0)
        t->rpm.tokens -= 1.0;
    if (k->tpm > 0)
        t->tpm.tokens -= (double)est;
    set_headers(r, k, t, 0, 0);
    tk->t = t;
    tk->admitted = true;
    return SL_NEXT;
}

static void shared_headers(sl_req *r, const sl_key_conf *k, long rpm_left, long tpm_left, long wait)
{
    if (k->rpm > 0) {
        sl_req_header(r, "x-ratelimit-limit-requests", sl_arena_printf(&r->arena, "%ld", k->rpm));
        sl_req_header(r, "x-ratelimit-remaining-requests",
                      sl_arena_printf(&r->arena, "%ld", SL_MAX(rpm_left, 0)));
        sl_req_header(r, "x-ratelimit-reset-requests", sl_arena_printf(&r->arena, "%ldms", wait));
    }
    if (k->tpm > 0) {
        sl_req_header(r, "x-ratelimit-limit-tokens", sl_arena_printf(&r->arena, "%ld", k->tpm));
        sl_req_header(r, "x-ratelimit-remaining-tokens",
                      sl_arena_printf(&r->arena, "%ld", SL_MAX(tpm_left, 0)));
        sl_req_header(r, "x-ratelimit-reset-tokens", sl_arena_printf(&r->arena, "%ldms", wait));
    }
}

static long reply_int(const redisReply *rep, size_t i)
{
    return i < rep->elements && rep->element[i]->type == REDIS_REPLY_INTEGER
               ? (long)rep->element[i]->integer
               : 0;
}

/* What Redis says the tenant spent this period (reservations included):
 * what sluice_budget_spent_usd reports in shared mode. */
static void note_shared_spend(limits_ticket *tk, long micro)
{
    tenant_state *t = tenant_of(tk->r->key_conf->tenant);
    if (!t)
        return;
    t->seen_micro = micro;
    t->seen_period = period_now(tk->r->key_conf->budget_period);
    t->seen = true;
    tk->seen = t;
}

static void on_limit_reply(void *ud, const redisReply *rep, int status)
{
    limits_ticket *tk = ud;
    sl_req *r = tk->r;
    const sl_key_conf *k = r->key_conf;
    sl_step step;
    if (r->client_gone) {
        step = SL_NEXT; /* the pipeline answers 499 */
    } else if (status != SL_OK || !rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 4) {
        static uint64_t last_log;
        if (sl_now_ms() - last_log > 10000) {
            last_log = sl_now_ms();
            sl_warn("limits: Redis unavailable, using in-process buckets");
        }
        step = local_admit(r, tk);
    } else {
        long allowed = reply_int(rep, 0), wait = reply_int(rep, 3);
        if (k->budget_usd > 0)
            note_shared_spend(tk, reply_int(rep, 4));
        shared_headers(r, k, reply_int(rep, 1), reply_int(rep, 2), wait);
        if (allowed == 1) {
            tk->shared = true;
            tk->admitted = true;
            step = SL_NEXT;
        } else if (allowed == -1) {
            step = refuse(r, 3600 * 1000, "budget_exceeded",
                          sl_arena_printf(&r->arena, "Budget of $%.2f for %s is used up.",
                                          k->budget_usd, k->tenant));
        } else {
            step = refuse(r, wait, "rate_limit_exceeded",
                          sl_arena_printf(&r->arena, "Rate limit reached for %s.", k->tenant));
        }
    }
    if (step == SL_NEXT)
        sl_pipeline_resume(r);
    sl_req_release(r); /* the script's reference */
}

static int shared_admit(sl_req *r, limits_ticket *tk)
{
    const sl_key_conf *k = r->key_conf;
    long period = period_now(k->budget_period);
    snprintf(tk->keys[0], sizeof tk->keys[0], SL_RK_TENANT_RPM, k->tenant);
    snprintf(tk->keys[1], sizeof tk->keys[1], SL_RK_TENANT_TPM, k->tenant);
    snprintf(tk->keys[2], sizeof tk->keys[2], SL_RK_TENANT_SPEND, k->tenant, (int)k->budget_period,
             period);
    char a[6][32];
    snprintf(a[0], 32, "%ld", k->rpm);
    snprintf(a[1], 32, "%ld", k->tpm);
    snprintf(a[2], 32, "%ld", tk->tokens_estimate);
    snprintf(a[3], 32, "%lld", (long long)llround(k->budget_usd * 1e6));
    snprintf(a[4], 32, "%lld", (long long)tk->cost_estimate_micro);
    snprintf(a[5], 32, "%d", k->budget_period == SL_BUDGET_DAILY ? 2 * 86400 : 400 * 86400);
    const char *argv[] = {tk->keys[0], tk->keys[1], tk->keys[2], a[0], a[1],
                          a[2],        a[3],        a[4],        a[5]};
    sl_req_ref(r);
    int rc = sl_redis_eval(r->env->redis, LIMIT_SCRIPT, 3, 9, argv, NULL, on_limit_reply, tk);
    if (rc != SL_OK)
        sl_req_release(r);
    return rc;
}

/* The stage's context: the ticket, made only for keys that have limits. */
typedef struct limits_ctx {
    limits_ticket *tk;
} limits_ctx;

static sl_step limits_request(sl_req *r, void *ctx)
{
    if (!limited(r->key_conf))
        return SL_NEXT;
    limits_ticket *tk = sl_arena_calloc(&r->arena, sizeof(*tk));
    if (!tk)
        return SL_NEXT;
    ((limits_ctx *)ctx)->tk = tk;
    tk->r = r;
    tk->tokens_estimate = estimate_tokens(r);
    if (r->key_conf->budget_usd > 0)
        tk->cost_estimate_micro = estimate_cost_micro(r, tk->tokens_estimate);
    if (r->env->redis && shared_admit(r, tk) == SL_OK)
        return SL_WAIT;
    return local_admit(r, tk); /* embedded, or Redis down: no wait */
}

static void settle_shared(limits_ticket *tk, long tokens_delta, int64_t spend_delta)
{
    const sl_key_conf *k = tk->r->key_conf;
    if (k->tpm <= 0)
        tokens_delta = 0;
    if (k->budget_usd <= 0)
        spend_delta = 0;
    if (!tokens_delta && !spend_delta)
        return;
    if (tk->seen)
        tk->seen->seen_micro += spend_delta;
    char tv[32], sv[32];
    snprintf(tv, sizeof tv, "%ld", tokens_delta);
    snprintf(sv, sizeof sv, "%lld", (long long)spend_delta);
    const char *argv[] = {tk->keys[1], tk->keys[2], tv, sv};
    sl_redis_eval(tk->r->env->redis, SETTLE_SCRIPT, 2, 4, argv, NULL, NULL, NULL); /* best effort */
}

/* Settles the estimate with what the answer really used and cost. */
static void limits_response(sl_req *r, void *ctx)
{
    limits_ticket *tk = ((limits_ctx *)ctx)->tk;
    if (!tk || !tk->admitted)
        return;
    tk->admitted = false;
    const sl_key_conf *k = r->key_conf;
    long tokens_delta = tk->tokens_estimate - (r->prompt_tokens + r->completion_tokens);
    int64_t spend_delta = (int64_t)llround(r->cost_usd * 1e6) - tk->cost_estimate_micro;
    if (tk->shared) {
        settle_shared(tk, tokens_delta, spend_delta);
        return;
    }
    tenant_state *t = tk->t;
    if (k->tpm > 0)
        t->tpm.tokens += (double)tokens_delta;
    if (k->budget_usd > 0) {
        t->reserved_micro -= tk->cost_estimate_micro;
        t->spent_micro += (int64_t)llround(r->cost_usd * 1e6);
    }
}

const sl_stage sl_stage_limits = {
    .name = "limits",
    .ctx_size = sizeof(limits_ctx),
    .on_request = limits_request,
    .on_response = limits_response,
};

double sl_limits_spent_usd(const char *tenant, sl_budget_period period)
{
    long now = period_now(period);
    for (int i = 0; i < n_tenants; i++) {
        const tenant_state *t = &tenants[i];
        if (strcmp(t->name, tenant) != 0)
            continue;
        int64_t local = t->period == now ? t->spent_micro : 0;
        int64_t shared = t->seen && t->seen_period == now ? t->seen_micro : 0;
        return (double)SL_MAX(local, shared) / 1e6;
    }
    return 0;
}
