/* test_dialect_anthropic_fidelity.c — chat <-> messages without loss (issue 16,
 * section 4): tool_choice, structured outputs, stop sequences, images,
 * cache_control and streamed usage, one test per mapping, on the bodies of
 * OpenAI's chat reference and structured-outputs guide and of Anthropic's
 * messages reference, streaming, tool-use, vision and prompt-caching guides. */
#include <curl/curl.h>

#include "t_dialect.h"

static const char *WEATHER_TOOL =
    "{\"type\":\"function\",\"function\":{\"name\":\"get_current_weather\",\"description\":"
    "\"Get the current weather in a given location\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"location\":{\"type\":\"string\",\"description\":\"The city and state, "
    "e.g. San Francisco, CA\"},\"unit\":{\"type\":\"string\",\"enum\":[\"celsius\","
    "\"fahrenheit\"]}},\"required\":[\"location\"]}}}";

static const char *chat_with_choice(const char *choice)
{
    return sl_arena_printf(&TA,
                           "{\"model\":\"claude-sonnet-4-5\",\"messages\":[{\"role\":\"user\","
                           "\"content\":\"What's the weather like in Boston today?\"}],"
                           "\"tools\":[%s],\"tool_choice\":%s}",
                           WEATHER_TOOL, choice);
}

T_TEST(tool_choice_four_ways)
{
    static const struct {
        const char *openai, *anthropic;
    } cases[] = {
        {"\"auto\"", "{\"type\":\"auto\"}"},
        {"\"required\"", "{\"type\":\"any\"}"},
        {"\"none\"", "{\"type\":\"none\"}"},
        {"{\"type\":\"function\",\"function\":{\"name\":\"get_current_weather\"}}",
         "{\"name\":\"get_current_weather\",\"type\":\"tool\"}"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        sl_ir_refusal e = {0};
        const sl_json *m = tj(treq(OA, AN, chat_with_choice(cases[i].openai), &e));
        T_EQ_STR(tcanon(tget(m, "tool_choice")), cases[i].anthropic);
        T_EQ_STR(tstr(m, "tools.0.name"), "get_current_weather");
        /* and back: Anthropic's names become OpenAI's */
        const sl_json *c = tj(treq(AN, OA, tcanon(m), &e));
        const sl_json *tc = tget(c, "tool_choice");
        T_EQ_STR(tcanon(tc), i == 3 ? tcanon(tj(cases[i].openai)) : cases[i].openai);
    }
}

/* OpenAI's structured-outputs guide: the math tutor's schema. */
static const char *MATH_SCHEMA =
    "{\"type\":\"object\",\"properties\":{\"steps\":{\"type\":\"array\",\"items\":{\"type\":"
    "\"object\",\"properties\":{\"explanation\":{\"type\":\"string\"},\"output\":{\"type\":"
    "\"string\"}},\"required\":[\"explanation\",\"output\"],\"additionalProperties\":false}},"
    "\"final_answer\":{\"type\":\"string\"}},\"required\":[\"steps\",\"final_answer\"],"
    "\"additionalProperties\":false}";

static const char *math_request(const char *model)
{
    return sl_arena_printf(
        &TA,
        "{\"model\":\"%s\",\"messages\":[{\"role\":\"system\",\"content\":\"You are a helpful "
        "math tutor. Guide the user through the solution step by step.\"},{\"role\":\"user\","
        "\"content\":\"how can I solve 8x + 7 = -23\"}],\"response_format\":{\"type\":"
        "\"json_schema\",\"json_schema\":{\"name\":\"math_response\",\"strict\":true,\"schema\":%s}"
        "}}",
        model, MATH_SCHEMA);
}

T_TEST(json_schema_native_structured_outputs)
{
    sl_ir_refusal e = {0};
    const sl_json *m = tj(treq(OA, AN, math_request("claude-sonnet-4-5"), &e));
    T_CHECK(m != NULL);
    T_EQ_STR(tstr(m, "output_config.format.type"), "json_schema");
    T_EQ_STR(tcanon(tget(m, "output_config.format.schema")), tcanon(tj(MATH_SCHEMA)));
    T_CHECK(tget(m, "tools") == NULL && tget(m, "tool_choice") == NULL);
    m = tj(treq(OA, AN, math_request("claude-opus-4-6"), &e));
    T_EQ_STR(tstr(m, "output_config.format.type"), "json_schema");
    /* an Anthropic client's output_config reaches an OpenAI provider as response_format */
    const sl_json *c =
        tj(treq(AN, OA,
                sl_arena_printf(&TA,
                                "{\"model\":\"gpt-4o\",\"max_tokens\":1024,"
                                "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                                "\"output_config\":{\"format\":{\"type\":"
                                "\"json_schema\",\"schema\":%s}}}",
                                MATH_SCHEMA),
                &e));
    T_EQ_STR(tstr(c, "response_format.type"), "json_schema");
    T_EQ_STR(tcanon(tget(c, "response_format.json_schema.schema")), tcanon(tj(MATH_SCHEMA)));
    T_CHECK(tget(c, "response_format.json_schema.strict")->type == SL_JSON_TRUE);
}

T_TEST(json_schema_forced_tool_where_unsupported)
{
    sl_ir_refusal e = {0};
    const char *models[] = {"claude-3-5-haiku-20241022", "claude-sonnet-4-20250514",
                            "claude-3-7-sonnet-latest"};
    for (size_t i = 0; i < SL_ARRAY_LEN(models); i++) {
        const sl_json *m = tj(treq(OA, AN, math_request(models[i]), &e));
        T_CHECK(tget(m, "output_config") == NULL);
        T_EQ_STR(tstr(m, "tools.0.name"), "sluice_response_format");
        T_EQ_STR(tcanon(tget(m, "tools.0.input_schema")), tcanon(tj(MATH_SCHEMA)));
        T_EQ_STR(tcanon(tget(m, "tool_choice")),
                 "{\"name\":\"sluice_response_format\",\"type\":\"tool\"}");
    }
    /* the answer: the tool's input is the message's content, a plain stop */
    const sl_json *c = tj(tanswer(
        AN, OA,
        "{\"id\":\"msg_01F\",\"type\":\"message\",\"role\":\"assistant\",\"model\":"
        "\"claude-3-5-haiku-20241022\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_01\","
        "\"name\":\"sluice_response_format\",\"input\":{\"steps\":[{\"explanation\":\"Subtract 7\","
        "\"output\":\"8x = -30\"}],\"final_answer\":\"x = -3.75\"}}],\"stop_reason\":\"tool_use\","
        "\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":91}}"));
    T_EQ_STR(tstr(c, "choices.0.finish_reason"), "stop");
    T_CHECK(tget(c, "choices.0.message.tool_calls") == NULL);
    const sl_json *content = tj(tstr(c, "choices.0.message.content"));
    T_EQ_STR(tstr(content, "final_answer"), "x = -3.75");
    /* streamed: the tool's partial JSON arrives as content deltas */
    static const char *const ev[] = {
        "message_start",
        "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_01F\",\"type\":\"message\",\"role\":"
        "\"assistant\",\"content\":[],\"model\":\"claude-3-5-haiku\",\"stop_reason\":null,"
        "\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":1}}}",
        "content_block_start",
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\","
        "\"id\":\"toolu_01\",\"name\":\"sluice_response_format\",\"input\":{}}}",
        "content_block_delta",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
        "\"partial_json\":\"{\\\"final_answer\\\": \"}}",
        "content_block_delta",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
        "\"partial_json\":\"\\\"x = -3.75\\\"}\"}}",
        "content_block_stop",
        "{\"type\":\"content_block_stop\",\"index\":0}",
        "message_delta",
        "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":"
        "null},\"usage\":{\"output_tokens\":12}}",
        "message_stop",
        "{\"type\":\"message_stop\"}",
    };
    sl_ir_stream s;
    sl_ir_stream_init(&s, AN, OA, true);
    const char *sse = tstream(&s, ev, SL_ARRAY_LEN(ev));
    const sl_json *f[16];
    size_t n = tframes(sse, f, 16);
    sl_buf text;
    sl_buf_init(&text, 0);
    const char *finish = NULL;
    for (size_t i = 0; i < n; i++) {
        const sl_json *d = tget(f[i], "choices.0.delta.content");
        if (d && d->type == SL_JSON_STRING)
            sl_buf_append_str(&text, d->str);
        T_CHECK(tget(f[i], "choices.0.delta.tool_calls") == NULL);
        if (tget(f[i], "choices.0.finish_reason") &&
            tget(f[i], "choices.0.finish_reason")->type == SL_JSON_STRING)
            finish = tstr(f[i], "choices.0.finish_reason");
    }
    T_EQ_STR(text.p, "{\"final_answer\": \"x = -3.75\"}");
    T_EQ_STR(finish, "stop");
    sl_buf_free(&text);
}

T_TEST(one_tool_call_at_a_time)
{
    sl_ir_refusal e = {0};
    const char *body = sl_arena_printf(&TA,
                                       "{\"model\":\"claude-3-5-haiku\",\"messages\":[{\"role\":"
                                       "\"user\",\"content\":\"x\"}],\"tools\":[%s],"
                                       "\"parallel_tool_calls\":false}",
                                       WEATHER_TOOL);
    const sl_json *m = tj(treq(OA, AN, body, &e));
    T_EQ_STR(tcanon(tget(m, "tool_choice")),
             "{\"disable_parallel_tool_use\":true,\"type\":\"auto\"}");
    const sl_json *c = tj(treq(AN, OA, tcanon(m), &e));
    T_CHECK(tget(c, "parallel_tool_calls") &&
            tget(c, "parallel_tool_calls")->type == SL_JSON_FALSE);
    T_EQ_STR(tstr(c, "tool_choice"), "auto");
}

T_TEST(what_messages_says_and_chat_cannot)
{
    static const struct {
        const char *body, *param;
    } cases[] = {
        {"{\"model\":\"gpt-4o\",\"max_tokens\":16000,\"thinking\":{\"type\":\"enabled\","
         "\"budget_tokens\":10000},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "thinking"},
        {"{\"model\":\"gpt-4o\",\"max_tokens\":10,\"top_k\":5,\"messages\":[]}", "top_k"},
        {"{\"model\":\"gpt-4o\",\"max_tokens\":1024,\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}],\"tools\":[{\"type\":\"web_search_20250305\",\"name\":"
         "\"web_search\",\"max_uses\":5}]}",
         "tools"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        sl_ir_refusal e = {0};
        T_CHECK(treq(AN, OA, cases[i].body, &e) == NULL);
        T_EQ_STR(e.param, cases[i].param);
    }
    sl_ir_refusal e = {0};
    T_CHECK(treq(AN, OA,
                 "{\"model\":\"gpt-4o\",\"max_tokens\":10,\"thinking\":{\"type\":"
                 "\"disabled\"},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                 &e) != NULL);
}

T_TEST(json_schema_with_the_clients_tools)
{
    sl_ir_refusal e = {0};
    const char *body = sl_arena_printf(
        &TA,
        "{\"model\":\"claude-3-5-haiku\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
        "\"tools\":[%s],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
        "\"r\",\"schema\":{\"type\":\"object\"}}}}",
        WEATHER_TOOL);
    const sl_json *m = tj(treq(OA, AN, body, &e));
    T_EQ_STR(tstr(m, "tools.0.name"), "sluice_response_format");
    T_EQ_STR(tstr(m, "tools.1.name"), "get_current_weather");
    T_EQ_STR(tstr(m, "tool_choice.type"), "any"); /* its tool, or the answer */
    /* JSON mode: the same tool, any object (structured outputs need a schema) */
    m = tj(treq(OA, AN,
                "{\"model\":\"claude-sonnet-4-5\",\"messages\":[{\"role\":\"user\",\"content\":"
                "\"x\"}],\"response_format\":{\"type\":\"json_object\"}}",
                &e));
    T_EQ_STR(tcanon(tget(m, "tools.0.input_schema")), "{\"type\":\"object\"}");
    T_EQ_STR(tstr(m, "tool_choice.name"), "sluice_response_format");
    T_CHECK(tget(m, "output_config") == NULL);
    /* a json_schema without a schema cannot be held to anything */
    T_CHECK(treq(OA, AN,
                 "{\"model\":\"claude-3-5-haiku\",\"messages\":[],\"response_format\":{\"type\":"
                 "\"json_schema\",\"json_schema\":{\"name\":\"x\"}}}",
                 &e) == NULL);
    T_EQ_STR(e.param, "response_format");
}

T_TEST(stop_sequences)
{
    sl_ir_refusal e = {0};
    const sl_json *m = tj(treq(OA, AN,
                               "{\"model\":\"claude-3-5-haiku\",\"messages\":[{\"role\":\"user\","
                               "\"content\":\"Count\"}],\"stop\":[\"\\n\\nHuman:\",\"5\"]}",
                               &e));
    T_EQ_STR(tcanon(tget(m, "stop_sequences")), "[\"\\n\\nHuman:\",\"5\"]");
    const sl_json *c = tj(treq(AN, OA,
                               "{\"model\":\"gpt-4o\",\"max_tokens\":10,\"messages\":[{\"role\":"
                               "\"user\",\"content\":\"Count\"}],\"stop_sequences\":[\"5\"]}",
                               &e));
    T_EQ_STR(tcanon(tget(c, "stop")), "[\"5\"]");
    /* Anthropic's answer stopped by one: OpenAI says stop */
    c = tj(
        tanswer(AN, OA,
                "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":"
                "\"claude-3-5-haiku\",\"content\":[{\"type\":\"text\",\"text\":\"1, 2, 3, 4, \"}],"
                "\"stop_reason\":\"stop_sequence\",\"stop_sequence\":\"5\",\"usage\":{"
                "\"input_tokens\":10,\"output_tokens\":12}}"));
    T_EQ_STR(tstr(c, "choices.0.finish_reason"), "stop");
    T_EQ_STR(tstr(c, "choices.0.message.content"), "1, 2, 3, 4, ");
}

T_TEST(images_as_content_parts)
{
    sl_ir_refusal e = {0};
    const sl_json *m = tj(treq(
        OA, AN,
        "{\"model\":\"claude-sonnet-4-5\",\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"What's in this image?\"},{\"type\":\"image_url\","
        "\"image_url\":{\"url\":\"https://upload.wikimedia.org/wikipedia/commons/a/a7/"
        "Camponotus_flavomarginatus_ant.jpg\"}},{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"data:image/jpeg;base64,/9j/4AAQSkZJRg==\",\"detail\":\"low\"}}]}]}",
        &e));
    T_EQ_STR(tcanon(tget(m, "messages.0.content.1")),
             "{\"source\":{\"type\":\"url\",\"url\":\"https://upload.wikimedia.org/wikipedia/"
             "commons/a/a7/Camponotus_flavomarginatus_ant.jpg\"},\"type\":\"image\"}");
    T_EQ_STR(tcanon(tget(m, "messages.0.content.2")),
             "{\"source\":{\"data\":\"/9j/4AAQSkZJRg==\",\"media_type\":\"image/jpeg\",\"type\":"
             "\"base64\"},\"type\":\"image\"}");
    const sl_json *c = tj(treq(
        AN, OA,
        "{\"model\":\"gpt-4o\",\"max_tokens\":1024,\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\","
        "\"data\":\"iVBORw0KGgo=\"}},{\"type\":\"text\",\"text\":\"Describe this image.\"}]}]}",
        &e));
    T_EQ_STR(tstr(c, "messages.0.content.0.image_url.url"), "data:image/png;base64,iVBORw0KGgo=");
    T_EQ_STR(tstr(c, "messages.0.content.1.text"), "Describe this image.");
}

T_TEST(cache_control_passed_through)
{
    sl_ir_refusal e = {0};
    const sl_json *m = tj(treq(
        OA, AN,
        sl_arena_printf(
            &TA,
            "{\"model\":\"claude-sonnet-4-5\",\"messages\":[{\"role\":\"system\",\"content\":["
            "{\"type\":\"text\",\"text\":\"You are an AI assistant tasked with analyzing literary "
            "works.\"},{\"type\":\"text\",\"text\":\"<the entire contents of Pride and "
            "Prejudice>\",\"cache_control\":{\"type\":\"ephemeral\"}}]},{\"role\":\"user\","
            "\"content\":[{\"type\":\"text\",\"text\":\"Analyze the major themes.\","
            "\"cache_control\":{\"type\":\"ephemeral\",\"ttl\":\"1h\"}}]}],\"tools\":[{\"type\":"
            "\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\"}},"
            "\"cache_control\":{\"type\":\"ephemeral\"}}]}"),
        &e));
    T_EQ_STR(tstr(m, "system.0.text"),
             "You are an AI assistant tasked with analyzing literary works.");
    T_CHECK(tget(m, "system.0.cache_control") == NULL);
    T_EQ_STR(tcanon(tget(m, "system.1.cache_control")), "{\"type\":\"ephemeral\"}");
    T_EQ_STR(tcanon(tget(m, "messages.0.content.0.cache_control")),
             "{\"ttl\":\"1h\",\"type\":\"ephemeral\"}");
    T_EQ_STR(tcanon(tget(m, "tools.0.cache_control")), "{\"type\":\"ephemeral\"}");
    /* Messages -> Messages through the IR keeps every marker (a fallback's
     * second hop) */
    const char *native =
        "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,\"system\":[{\"type\":\"text\","
        "\"text\":\"long prefix\",\"cache_control\":{\"type\":\"ephemeral\"}}],\"messages\":[{"
        "\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"q\",\"cache_control\":{"
        "\"type\":\"ephemeral\"}}]}]}";
    m = tj(treq(AN, AN, native, &e));
    T_EQ_STR(tcanon(tget(m, "system.0.cache_control")), "{\"type\":\"ephemeral\"}");
    T_EQ_STR(tcanon(tget(m, "messages.0.content.0.cache_control")), "{\"type\":\"ephemeral\"}");
}

T_TEST(streamed_usage_both_ways)
{
    /* Anthropic's stream (message_start counts the prompt, cache included) ->
     * OpenAI's usage chunk with the real prompt_tokens */
    static const char *const an[] = {
        "message_start",
        "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":"
        "\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,"
        "\"stop_sequence\":null,\"usage\":{\"input_tokens\":21,\"cache_creation_input_tokens\":0,"
        "\"cache_read_input_tokens\":188086,\"output_tokens\":1}}}",
        "content_block_start",
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
        "\"text\":\"\"}}",
        "content_block_delta",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
        "\"text\":\"Hello\"}}",
        "content_block_stop",
        "{\"type\":\"content_block_stop\",\"index\":0}",
        "message_delta",
        "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":"
        "null},\"usage\":{\"output_tokens\":393}}",
        "message_stop",
        "{\"type\":\"message_stop\"}",
    };
    sl_ir_stream s;
    sl_ir_stream_init(&s, AN, OA, true);
    const char *sse = tstream(&s, an, SL_ARRAY_LEN(an));
    const sl_json *f[16];
    size_t n = tframes(sse, f, 16);
    T_CHECK(n >= 2 && f[n - 1] == NULL); /* [DONE] */
    const sl_json *u = n >= 2 ? tget(f[n - 2], "usage") : NULL;
    T_EQ_INT(tnum(u, "prompt_tokens"), 21 + 188086);
    T_EQ_INT(tnum(u, "prompt_tokens_details.cached_tokens"), 188086);
    T_EQ_INT(tnum(u, "completion_tokens"), 393);
    /* OpenAI's stream (usage in the last chunk) -> Anthropic's final
     * message_delta with the real input_tokens */
    static const char *const oa[] = {
        "",
        "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
        "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
        "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}",
        "",
        "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
        "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},"
        "\"logprobs\":null,\"finish_reason\":null}]}",
        "",
        "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
        "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
        "\"finish_reason\":\"stop\"}]}",
        "",
        "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
        "\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":2006,"
        "\"completion_tokens\":300,\"total_tokens\":2306,\"prompt_tokens_details\":{"
        "\"cached_tokens\":1920}}}",
        "",
        "[DONE]",
    };
    sl_ir_stream_init(&s, OA, AN, false);
    sse = tstream(&s, oa, SL_ARRAY_LEN(oa));
    n = tframes(sse, f, 16);
    const sl_json *delta = NULL;
    for (size_t i = 0; i < n; i++) {
        if (f[i] && strcmp(tstr(f[i], "type"), "message_delta") == 0)
            delta = f[i];
    }
    T_CHECK(delta != NULL);
    T_EQ_INT(tnum(delta, "usage.input_tokens"), 2006 - 1920); /* Anthropic's: beside the cache */
    T_EQ_INT(tnum(delta, "usage.cache_read_input_tokens"), 1920);
    T_EQ_INT(tnum(delta, "usage.output_tokens"), 300);
    T_EQ_STR(tstr(delta, "delta.stop_reason"), "end_turn");
    static const char *const order[] = {"message_start", "text_delta", "message_delta",
                                        "message_stop"};
    T_CHECK(tin_order(sse, order, SL_ARRAY_LEN(order)));
    /* errors keep their meaning: OpenAI's 429 body as Anthropic's */
    T_CHECK(strstr(terror(OA, AN,
                          "{\"error\":{\"message\":\"Rate limit reached\",\"type\":"
                          "\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}"),
                   "\"type\":\"rate_limit_error\"") != NULL);
    sl_arena_free(&TA);
}

/* message_start must state the prompt before an OpenAI provider counts it (in
 * its last chunk): sluice's estimate then, the provider's count when its first
 * chunk carries usage (vLLM's continuous usage stats); the final message_delta
 * always the real count. */
T_TEST(message_start_input_tokens)
{
    static const char *const late[] = {
        "",
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\","
        "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},"
        "\"finish_reason\":null}],\"usage\":null}",
        "",
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\","
        "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}",
        "",
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\","
        "\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":2,"
        "\"total_tokens\":42,\"prompt_tokens_details\":{\"cached_tokens\":8}}}",
        "",
        "[DONE]",
    };
    sl_ir_stream s;
    sl_ir_stream_init(&s, OA, AN, false);
    s.input_estimate = 37;
    const char *sse = tstream(&s, late, SL_ARRAY_LEN(late));
    const sl_json *f[16];
    size_t n = tframes(sse, f, 16);
    T_CHECK(n >= 1 && f[0] && strcmp(tstr(f[0], "type"), "message_start") == 0);
    T_EQ_INT(n ? tnum(f[0], "message.usage.input_tokens") : -1, 37);
    const sl_json *delta = NULL;
    for (size_t i = 0; i < n; i++) {
        if (f[i] && strcmp(tstr(f[i], "type"), "message_delta") == 0)
            delta = f[i];
    }
    T_EQ_INT(tnum(delta, "usage.input_tokens"), 40 - 8);
    T_EQ_INT(tnum(delta, "usage.cache_read_input_tokens"), 8);
    /* a first chunk that counts: message_start says the provider's number */
    static const char *const early[] = {
        "",
        "{\"id\":\"cmpl-2\",\"object\":\"chat.completion.chunk\",\"model\":\"qwen\","
        "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
        "\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":0,"
        "\"total_tokens\":12}}",
        "",
        "{\"id\":\"cmpl-2\",\"object\":\"chat.completion.chunk\",\"model\":\"qwen\","
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hey\"},\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":1,\"total_tokens\":13}}",
        "",
        "[DONE]",
    };
    sl_ir_stream_init(&s, OA, AN, false);
    s.input_estimate = 99;
    sse = tstream(&s, early, SL_ARRAY_LEN(early));
    n = tframes(sse, f, 16);
    T_EQ_INT(n && f[0] ? tnum(f[0], "message.usage.input_tokens") : -1, 12);
    T_EQ_STR(n && f[0] ? tstr(f[0], "message.id") : NULL, "cmpl-2");
    sl_arena_free(&TA);
}

T_MAIN("dialect_anthropic_fidelity", tool_choice_four_ways, json_schema_native_structured_outputs,
       json_schema_forced_tool_where_unsupported, one_tool_call_at_a_time,
       what_messages_says_and_chat_cannot, json_schema_with_the_clients_tools, stop_sequences,
       images_as_content_parts, cache_control_passed_through, streamed_usage_both_ways,
       message_start_input_tokens)
