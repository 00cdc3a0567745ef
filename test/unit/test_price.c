/* test_price.c — the cost of published example usages, to the cent (and
 * below): each provider's usage object read by its dialect, then priced.
 *
 * Prices (USD per 1M tokens) as published by the providers:
 *   gpt-4o      input 2.50, cached_input 1.25, output 10.00
 *   o3-mini     input 1.10, cached_input 0.55, output 4.40
 *   claude-sonnet-4-5  input 3.00, cache write 5m 3.75, 1h 6.00, cache read 0.30, output 15.00
 * Usages: OpenAI's prompt-caching guide (prompt 2006, of which cached 1920),
 * OpenAI's reasoning guide (completion 1186, of which reasoning 1024),
 * Anthropic's prompt-caching guide (a 188086-token book written to the cache,
 * then read from it, input_tokens 21, output 393). */
#include <math.h>

#include "sluice/dialects.h"
#include "sluice/price.h"
#include "t.h"

static sl_arena A;

static const sl_json *J(const char *s)
{
    static bool ready;
    if (!ready)
        sl_arena_init(&A, NULL, 0, 0), ready = true;
    sl_json *v = NULL;
    sl_json_error e;
    sl_json_parse(&A, s, strlen(s), NULL, &v, &e);
    return v;
}

/* An answer's usage as the proxy meters it (the provider's convention). */
static sl_usage usage_of(const sl_dialect *d, const char *answer)
{
    sl_ir_usage u = {0};
    d->usage(J(answer), &u);
    return (sl_usage){
        .prompt = sl_dialect_prompt_tokens(d, &u),
        .completion = u.output,
        .cached = u.cache_read,
        .cache_write = u.cache_write,
        .cache_write_1h = u.cache_write_1h,
        .reasoning = u.reasoning,
        .prompt_has_cache = d->prompt_counts_cache,
    };
}

#define NEAR(a, b)  T_CHECK(fabs((a) - (b)) < 1e-9)
#define CENTS(a, c) T_EQ_INT(llround((a)*100), (c))

static const sl_price_conf GPT4O = {"gpt-4o", 2.50, 10.00, 1.25, -1, -1};
static const sl_price_conf O3MINI = {"o3-mini", 1.10, 4.40, 0.55, -1, -1};
static const sl_price_conf SONNET = {"claude-sonnet-4-5", 3.00, 15.00, 0.30, 3.75, 6.00};

T_TEST(openai_cached_tokens_at_cached_input)
{
    sl_usage u =
        usage_of(&sl_dialect_openai,
                 "{\"usage\":{\"prompt_tokens\":2006,\"completion_tokens\":300,"
                 "\"total_tokens\":2306,\"prompt_tokens_details\":{\"cached_tokens\":1920},"
                 "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}");
    T_EQ_INT(u.prompt, 2006);
    T_EQ_INT(u.cached, 1920);
    T_EQ_INT(sl_usage_uncached(&u), 86);
    /* 86 x 2.50 + 1920 x 1.25 + 300 x 10.00 = 5615 micro-dollars */
    NEAR(sl_price_cost(&GPT4O, &u), 0.005615);
    /* the same at 1000x the traffic: $5.615 -> 562 cents */
    u.prompt *= 1000, u.cached *= 1000, u.completion *= 1000;
    CENTS(sl_price_cost(&GPT4O, &u), 562);
}

T_TEST(openai_reasoning_priced_once)
{
    sl_usage u = usage_of(&sl_dialect_openai,
                          "{\"usage\":{\"prompt_tokens\":75,\"completion_tokens\":1186,"
                          "\"total_tokens\":1261,\"prompt_tokens_details\":{\"cached_tokens\":0},"
                          "\"completion_tokens_details\":{\"reasoning_tokens\":1024}}}");
    T_EQ_INT(u.completion, 1186);
    T_EQ_INT(u.reasoning, 1024);
    /* reasoning is inside completion: 75 x 1.10 + 1186 x 4.40 */
    NEAR(sl_price_cost(&O3MINI, &u), 0.0053009);
}

T_TEST(anthropic_cache_write_then_read)
{
    sl_usage w = usage_of(&sl_dialect_anthropic,
                          "{\"usage\":{\"input_tokens\":21,\"cache_creation_input_tokens\":188086,"
                          "\"cache_read_input_tokens\":0,\"output_tokens\":393}}");
    T_EQ_INT(w.prompt, 21); /* input_tokens excludes the cache */
    T_EQ_INT(w.cache_write, 188086);
    /* 21 x 3 + 188086 x 3.75 + 393 x 15 = $0.7112805 */
    NEAR(sl_price_cost(&SONNET, &w), 0.7112805);
    CENTS(sl_price_cost(&SONNET, &w), 71);
    sl_usage rd = usage_of(&sl_dialect_anthropic,
                           "{\"usage\":{\"input_tokens\":21,\"cache_creation_input_tokens\":0,"
                           "\"cache_read_input_tokens\":188086,\"output_tokens\":393}}");
    T_EQ_INT(rd.cached, 188086);
    /* 21 x 3 + 188086 x 0.30 + 393 x 15 = $0.0623838 */
    NEAR(sl_price_cost(&SONNET, &rd), 0.0623838);
    CENTS(sl_price_cost(&SONNET, &rd), 6);
}

T_TEST(anthropic_one_hour_writes)
{
    sl_usage u =
        usage_of(&sl_dialect_anthropic,
                 "{\"usage\":{\"input_tokens\":50,\"cache_creation_input_tokens\":100000,"
                 "\"cache_read_input_tokens\":20000,\"cache_creation\":{"
                 "\"ephemeral_5m_input_tokens\":40000,\"ephemeral_1h_input_tokens\":60000},"
                 "\"output_tokens\":1000}}");
    T_EQ_INT(u.cache_write, 100000);
    T_EQ_INT(u.cache_write_1h, 60000);
    /* 50 x 3 + 20000 x 0.30 + 40000 x 3.75 + 60000 x 6 + 1000 x 15 = $0.53115 */
    NEAR(sl_price_cost(&SONNET, &u), 0.53115);
    CENTS(sl_price_cost(&SONNET, &u), 53);
}

T_TEST(anthropic_stream_usage)
{
    /* message_start counts the prompt, the final message_delta the output
     * (today's API repeats the prompt's counts there) */
    sl_ir_usage u = {0};
    unsigned have = 0;
    sl_dialect_anthropic.watch_event(
        SL_STR("message_start"),
        SL_STR("{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{"
               "\"input_tokens\":21,\"cache_creation_input_tokens\":188086,"
               "\"cache_read_input_tokens\":0,\"output_tokens\":1}}}"),
        &u, &have);
    sl_dialect_anthropic.watch_event(
        SL_STR("message_delta"),
        SL_STR("{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{"
               "\"output_tokens\":393}}"),
        &u, &have);
    T_EQ_INT(have, SL_USAGE_INPUT | SL_USAGE_OUTPUT);
    sl_usage s = {.prompt = sl_dialect_prompt_tokens(&sl_dialect_anthropic, &u),
                  .completion = u.output,
                  .cached = u.cache_read,
                  .cache_write = u.cache_write};
    NEAR(sl_price_cost(&SONNET, &s), 0.7112805);
}

T_TEST(defaults_when_absent)
{
    const sl_price_conf p = {"m", 2.00, 8.00, -1, -1, -1};
    T_CHECK(sl_price_cached_input(&p) == 2.00);
    T_CHECK(sl_price_cache_write(&p) == 2.50);
    T_CHECK(sl_price_cache_write_1h(&p) == 4.00);
    sl_usage u = {.prompt = 1000000, .cached = 1000000, .prompt_has_cache = true};
    NEAR(sl_price_cost(&p, &u), 2.00); /* all cached, at input */
    u = (sl_usage){.prompt = 0, .cache_write = 1000000, .cache_write_1h = 1000000};
    NEAR(sl_price_cost(&p, &u), 4.00);
    u = (sl_usage){.prompt = 0, .cache_write = 1000000};
    NEAR(sl_price_cost(&p, &u), 2.50);
}

T_TEST(teardown)
{
    sl_arena_free(&A);
}

T_MAIN("price", openai_cached_tokens_at_cached_input, openai_reasoning_priced_once,
       anthropic_cache_write_then_read, anthropic_one_hour_writes, anthropic_stream_usage,
       defaults_when_absent, teardown)
