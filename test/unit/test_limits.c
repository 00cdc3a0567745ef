/* test_limits.c — the limits stage in embedded mode (an sl_env without Redis),
 * driven through the real auth, parse and limits stages into a fake upstream,
 * each answer collected by an internal sink. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

#include "sluice/stages.h"
#include "t.h"

static struct event_base *base;
static sl_config *conf;
static long usage_prompt, usage_completion; /* what the fake upstream reports */

/* The provider stand-in: answers 200 with the usage the test chose. */
static sl_step upstream_request(sl_req *r, void *ctx)
{
    SL_UNUSED(ctx);
    r->status = 200;
    r->prompt_tokens = usage_prompt;
    r->completion_tokens = usage_completion;
    sl_buf_append_c(&r->body_out, "{\"object\":\"chat.completion\"}");
    return sl_stage_answer(r);
}
static const sl_stage fake_upstream = {.name = "upstream", .on_request = upstream_request};

typedef struct answer {
    int status;
    char body[512];
    char retry_after[16];
    char remaining_requests[16];
} answer;

static void on_done(void *ud, sl_req *r, int status, sl_str body)
{
    answer *a = ud;
    a->status = status;
    snprintf(a->body, sizeof a->body, "%.*s", (int)body.len, body.p);
    const char *ra = sl_req_header_get(r, "Retry-After");
    const char *rem = sl_req_header_get(r, "x-ratelimit-remaining-requests");
    snprintf(a->retry_after, sizeof a->retry_after, "%s", ra ? ra : "");
    snprintf(a->remaining_requests, sizeof a->remaining_requests, "%s", rem ? rem : "");
}

static void setup(void)
{
    if (base)
        return;
    static const char yaml[] = "keys:\n"
                               "  - { key: sk-rpm, tenant: t-rpm, rpm: 2 }\n"
                               "  - { key: sk-tpm, tenant: t-tpm, tpm: 100 }\n"
                               "  - { key: sk-budget, tenant: t-budget, budget_usd: 0.00005 }\n"
                               "prices:\n"
                               "  m1: { input: 1, output: 1 }\n";
    char err[256];
    conf = sl_config_load_string("t.yaml", yaml, strlen(yaml), err, sizeof err);
    if (!conf)
        printf("  %s\n", err);
    base = event_base_new();
    const sl_env env = {.base = base, .l1 = NULL, .redis = NULL}; /* embedded */
    const sl_stage *const stages[] = {&sl_stage_auth, &sl_stage_parse, &sl_stage_limits,
                                      &fake_upstream};
    static const sl_observer *const no_observers[1];
    sl_pipeline_init_with(&env, stages, SL_ARRAY_LEN(stages), no_observers, 0);
}

/* Sends one chat request with key and max_tokens through the pipeline. */
static answer call(const char *key, int max_tokens)
{
    answer a = {0};
    sl_internal_sink sink;
    sl_internal_sink_init(&sink, 1 << 20, on_done, &a);
    sl_req *r = sl_req_new(base, conf);
    char body[160];
    int n = snprintf(body, sizeof body,
                     "{\"model\":\"m1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                     "\"max_tokens\":%d}",
                     max_tokens);
    r->body = (sl_str){sl_arena_strndup(&r->arena, body, (size_t)n), (size_t)n};
    r->auth_key = key;
    r->is_llm = true;
    r->llm.api = SL_API_CHAT;
    r->sink = &sink.base;
    sl_pipeline_start(r); /* embedded: nothing parks, the answer is there now */
    sl_internal_sink_free(&sink);
    return a;
}

T_TEST(rpm_refuses_the_request_over_the_limit_with_429_and_retry_after)
{
    setup();
    usage_prompt = usage_completion = 1;
    T_EQ_INT(call("sk-rpm", 1).status, 200);
    answer second = call("sk-rpm", 1);
    T_EQ_INT(second.status, 200);
    T_EQ_STR(second.remaining_requests, "0");
    answer third = call("sk-rpm", 1);
    T_EQ_INT(third.status, 429);
    T_CHECK(strstr(third.body, "\"code\":\"rate_limit_exceeded\"") != NULL);
    T_CHECK(atoi(third.retry_after) >= 1);
}

T_TEST(tpm_settles_the_estimate_with_the_real_usage)
{
    setup();
    /* Each request is admitted on an estimate of 51 tokens (1 for the prompt,
     * 50 for max_tokens) but uses 2: only settlement lets the second and third
     * fit in a bucket of 100. */
    usage_prompt = usage_completion = 1;
    for (int i = 0; i < 3; i++)
        T_EQ_INT(call("sk-tpm", 50).status, 200);
    T_EQ_INT(call("sk-tpm", 97).status, 429); /* 98 more do not fit in the 94 left */
}

T_TEST(the_budget_settles_with_the_cost_the_pipeline_priced)
{
    setup();
    /* The estimate is 2 micro-dollars; the answer uses 50 tokens at $1 per
     * million: the whole $0.00005 budget, which only the priced cost shows. */
    usage_prompt = usage_completion = 25;
    T_EQ_INT(call("sk-budget", 1).status, 200);
    answer over = call("sk-budget", 1);
    T_EQ_INT(over.status, 429);
    T_CHECK(strstr(over.body, "\"code\":\"budget_exceeded\"") != NULL);
    T_CHECK(strstr(over.body, "insufficient_quota") != NULL);
}

T_TEST(keys_are_checked_before_limits)
{
    setup();
    answer a = call("sk-nobody", 1);
    T_EQ_INT(a.status, 401);
    T_CHECK(strstr(a.body, "invalid_api_key") != NULL);
}

T_TEST(zz_cleanup)
{
    sl_pipeline_fini();
    sl_config_unref(conf);
    event_base_free(base);
    sl_req_pool_drain();
}

T_MAIN("limits", rpm_refuses_the_request_over_the_limit_with_429_and_retry_after,
       tpm_settles_the_estimate_with_the_real_usage,
       the_budget_settles_with_the_cost_the_pipeline_priced, keys_are_checked_before_limits,
       zz_cleanup)
