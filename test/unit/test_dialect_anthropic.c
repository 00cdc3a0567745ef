/* test_dialect_anthropic.c — src/upstream/anthropic.c on the Anthropic API reference's bodies. */
#include <curl/curl.h>

#include "sluice/upstream.h"
#include "t_dialect.h"

/* docs.anthropic.com/en/api/messages, the request example. */
static const char *const BASIC_REQ =
    "{\"model\":\"claude-sonnet-4-20250514\",\"max_tokens\":1024,\"messages\":[{\"role\":\"user\","
    "\"content\":\"Hello, world\"}]}";

/* The tool-use guide (docs.anthropic.com/en/docs/build-with-claude/tool-use): a
 * system prompt, a tool, and the conversation after the tool ran. */
static const char *const TOOL_REQ =
    "{\"model\":\"claude-opus-4-1-20250805\",\"max_tokens\":1024,\"system\":\"You are a weather "
    "assistant.\",\"tools\":[{\"name\":\"get_weather\",\"description\":\"Get the current weather "
    "in "
    "a given "
    "location\",\"input_schema\":{\"type\":\"object\",\"properties\":{\"location\":{\"type\":"
    "\"string\",\"description\":\"The city and state, e.g. San Francisco, CA\"}},\"required\":["
    "\"location\"]}}],\"tool_choice\":{\"type\":\"any\"},\"messages\":[{\"role\":\"user\","
    "\"content\":\"What is the weather like in San Francisco?\"},{\"role\":\"assistant\","
    "\"content\":[{\"type\":\"text\",\"text\":\"<thinking>I need to use get_weather, and the user "
    "wants SF, which is likely San Francisco, CA.</thinking>\"},{\"type\":\"tool_use\",\"id\":"
    "\"toolu_01A09q90qw90lq917835lq9\",\"name\":\"get_weather\",\"input\":{\"location\":\"San "
    "Francisco, CA\",\"unit\":\"celsius\"}}]},{\"role\":\"user\",\"content\":[{\"type\":\"tool_"
    "result\",\"tool_use_id\":\"toolu_01A09q90qw90lq917835lq9\",\"content\":\"15 degrees\"}]}]}";

/* The vision guide: a base64 image and a question. */
static const char *const IMAGE_REQ =
    "{\"model\":\"claude-sonnet-4-20250514\",\"max_tokens\":1024,\"messages\":[{\"role\":\"user\","
    "\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/"
    "jpeg\",\"data\":\"/9j/4AAQSkZJRg==\"}},{\"type\":\"text\",\"text\":\"Describe this image.\"}]}"
    "],\"stop_sequences\":[\"\\n\\nHuman:\"],\"temperature\":0.5,\"metadata\":{\"user_id\":"
    "\"13803d75-b4b5-4c3e-b2a2-6f21399b021b\"}}";

/* docs.anthropic.com/en/api/messages, the response example. */
static const char *const ANSWER =
    "{\"id\":\"msg_013Zva2CMHLNnXjNJJKqJ2EF\",\"type\":\"message\",\"role\":\"assistant\","
    "\"model\":\"claude-sonnet-4-20250514\",\"content\":[{\"type\":\"text\",\"text\":\"Hi! My name "
    "is Claude.\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_"
    "tokens\":2095,\"output_tokens\":503}}";

/* The tool-use guide's answer. */
static const char *const TOOL_ANSWER =
    "{\"id\":\"msg_01Aq9w938a90dw8q\",\"model\":\"claude-opus-4-1-20250805\",\"stop_reason\":"
    "\"tool_use\",\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"<thinking>I "
    "need "
    "to use get_weather, and the user wants SF, which is likely San Francisco, CA.</thinking>\"},"
    "{\"type\":\"tool_use\",\"id\":\"toolu_01A09q90qw90lq917835lq9\",\"name\":\"get_weather\","
    "\"input\":{\"location\":\"San Francisco, CA\",\"unit\":\"celsius\"}}]}";

/* The prompt-caching guide's usage of a first call (a cache write). */
static const char *const CACHE_ANSWER =
    "{\"id\":\"msg_c\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-"
    "20250514\",\"content\":[{\"type\":\"text\",\"text\":\"Pride and Prejudice\"}],\"stop_reason\":"
    "\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":21,\"cache_creation_input_"
    "tokens\":188086,\"cache_read_input_tokens\":0,\"output_tokens\":393}}";

/* docs.anthropic.com/en/docs/build-with-claude/streaming, "Basic streaming request". */
static const char *const STREAM[] = {
    "message_start",
    "{\"type\": \"message_start\", \"message\": {\"id\": "
    "\"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\", "
    "\"type\": \"message\", \"role\": \"assistant\", \"content\": [], \"model\": "
    "\"claude-opus-4-1-20250805\", \"stop_reason\": null, \"stop_sequence\": null, \"usage\": "
    "{\"input_tokens\": 25, \"output_tokens\": 1}}}",
    "content_block_start",
    "{\"type\": \"content_block_start\", \"index\": 0, \"content_block\": {\"type\": \"text\", "
    "\"text\": \"\"}}",
    "ping",
    "{\"type\": \"ping\"}",
    "content_block_delta",
    "{\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", "
    "\"text\": \"Hello\"}}",
    "content_block_delta",
    "{\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", "
    "\"text\": \"!\"}}",
    "content_block_stop",
    "{\"type\": \"content_block_stop\", \"index\": 0}",
    "message_delta",
    "{\"type\": \"message_delta\", \"delta\": {\"stop_reason\": \"end_turn\", "
    "\"stop_sequence\":null}, "
    "\"usage\": {\"output_tokens\": 15}}",
    "message_stop",
    "{\"type\": \"message_stop\"}",
};

/* The same page, "Streaming request with tool use" (shortened: one text delta). */
static const char *const TOOL_STREAM[] = {
    "message_start",
    "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":"
    "\"message\",\"role\":\"assistant\",\"model\":\"claude-opus-4-1-20250805\",\"stop_sequence\":"
    "null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2},\"content\":[],\"stop_reason\":null}"
    "}",
    "content_block_start",
    "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":"
    "\"\"}}",
    "content_block_delta",
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
    "\"Okay, let's check the weather for San Francisco, CA:\"}}",
    "content_block_stop",
    "{\"type\":\"content_block_stop\",\"index\":0}",
    "content_block_start",
    "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":"
    "\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}",
    "content_block_delta",
    "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"\"}}",
    "content_block_delta",
    "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"{\\\"location\\\":\"}}",
    "content_block_delta",
    "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\" \\\"San Francisco, CA\\\"}\"}}",
    "content_block_stop",
    "{\"type\":\"content_block_stop\",\"index\":1}",
    "message_delta",
    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},"
    "\"usage\":{\"output_tokens\":89}}",
    "message_stop",
    "{\"type\":\"message_stop\"}",
};

/* The errors page (docs.anthropic.com/en/api/errors), as a body and mid-stream. */
static const char *const ERROR_BODY =
    "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"The requested "
    "resource could not be found.\"},\"request_id\":\"req_011CSHoEeqs5C35K2UUqR7Fy\"}";
static const char *const ERROR_STREAM[] = {
    "message_start",
    "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\"}}",
    "error",
    "{\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": "
    "\"Overloaded\"}}",
};

T_TEST(parse_reference_requests)
{
    sl_ir_req ir;
    sl_ir_refusal e = {0};
    T_EQ_INT(AN->parse_request(tj(TOOL_REQ), &TA, &ir, &e), SL_OK);
    T_CHECK(ir.system && sl_str_eq_c(ir.system->text, "You are a weather assistant."));
    T_EQ_INT(ir.tool_choice, SL_IR_CHOICE_ANY);
    T_CHECK(ir.tools && sl_str_eq_c(ir.tools->name, "get_weather") && ir.tools->parameters);
    const sl_ir_msg *m = ir.messages;
    T_CHECK(m && m->role == SL_IR_USER && m->next && m->next->role == SL_IR_ASSISTANT);
    const sl_ir_part *call = m->next->parts->next;
    T_CHECK(call && call->type == SL_IR_TOOL_CALL);
    T_CHECK(sl_str_eq_c(call->args, "{\"location\":\"San Francisco, CA\",\"unit\":\"celsius\"}"));
    const sl_ir_part *result = m->next->next->parts;
    T_CHECK(result->type == SL_IR_TOOL_RESULT && sl_str_eq_c(result->text, "15 degrees"));
    T_CHECK(sl_str_eq_c(result->id, "toolu_01A09q90qw90lq917835lq9"));

    T_EQ_INT(AN->parse_request(tj(IMAGE_REQ), &TA, &ir, &e), SL_OK);
    T_CHECK(sl_str_eq_c(ir.messages->parts->url, "data:image/jpeg;base64,/9j/4AAQSkZJRg=="));
    T_CHECK(ir.n_stop == 1 && sl_str_eq_c(ir.stop[0], "\n\nHuman:"));
    T_CHECK(sl_str_eq_c(ir.user, "13803d75-b4b5-4c3e-b2a2-6f21399b021b"));
}

/* messages -> IR -> messages: the same request (a bare string becomes a text block). */
T_TEST(request_round_trip)
{
    sl_ir_refusal e = {0};
    T_EQ_STR(treq(AN, AN, BASIC_REQ, &e),
             "{\"model\":\"claude-sonnet-4-20250514\",\"max_tokens\":1024,\"messages\":[{\"role\":"
             "\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hello, world\"}]}]}");
    T_EQ_STR(tcanon(tj(treq(AN, AN, IMAGE_REQ, &e))), tcanon(tj(IMAGE_REQ)));
    const sl_json *out = tj(treq(AN, AN, TOOL_REQ, &e)), *in = tj(TOOL_REQ);
    static const char *const same[] = {"system",     "tools",      "tool_choice",
                                       "messages.1", "messages.2", "max_tokens"};
    for (size_t i = 0; i < SL_ARRAY_LEN(same); i++)
        T_EQ_STR(tcanon(tget(out, same[i])), tcanon(tget(in, same[i])));
}

/* messages -> chat -> messages: what both can say survives. */
T_TEST(round_trip_through_openai)
{
    sl_ir_refusal e = {0};
    const char *chat = treq(AN, OA, TOOL_REQ, &e);
    const sl_json *c = tj(chat);
    T_EQ_STR(tstr(c, "messages.0.role"), "system");
    T_EQ_STR(tstr(c, "messages.2.tool_calls.0.function.arguments"),
             "{\"location\":\"San Francisco, CA\",\"unit\":\"celsius\"}");
    T_EQ_STR(tstr(c, "messages.3.role"), "tool");
    T_EQ_STR(tstr(c, "tool_choice"), "required");
    const sl_json *back = tj(treq(OA, AN, chat, &e)), *in = tj(TOOL_REQ);
    static const char *const same[] = {"system",     "tools",      "tool_choice",
                                       "messages.1", "messages.2", "max_tokens"};
    for (size_t i = 0; i < SL_ARRAY_LEN(same); i++)
        T_EQ_STR(tcanon(tget(back, same[i])), tcanon(tget(in, same[i])));
    back = tj(treq(OA, AN, treq(AN, OA, IMAGE_REQ, &e), &e));
    T_EQ_STR(tcanon(tget(back, "messages")), tcanon(tget(tj(IMAGE_REQ), "messages")));
    T_EQ_STR(tcanon(tget(back, "stop_sequences")), tcanon(tget(tj(IMAGE_REQ), "stop_sequences")));
    T_EQ_STR(tcanon(tget(back, "metadata")), tcanon(tget(tj(IMAGE_REQ), "metadata")));
}

T_TEST(answers)
{
    T_EQ_STR(tcanon(tj(tanswer(AN, AN, ANSWER))), tcanon(tj(ANSWER)));
    const sl_json *c = tj(tanswer(AN, OA, ANSWER));
    T_EQ_STR(tstr(c, "object"), "chat.completion");
    T_EQ_STR(tstr(c, "choices.0.message.content"), "Hi! My name is Claude.");
    T_EQ_STR(tstr(c, "choices.0.finish_reason"), "stop");
    T_EQ_INT(tnum(c, "usage.total_tokens"), 2598);
    c = tj(tanswer(AN, OA, TOOL_ANSWER));
    T_EQ_STR(tstr(c, "choices.0.finish_reason"), "tool_calls");
    T_EQ_STR(tstr(c, "choices.0.message.tool_calls.0.function.arguments"),
             "{\"location\":\"San Francisco, CA\",\"unit\":\"celsius\"}");
    /* ... and back: the same content blocks. */
    const sl_json *back = tj(tanswer(OA, AN, tanswer(AN, OA, TOOL_ANSWER)));
    T_EQ_STR(tcanon(tget(back, "content")), tcanon(tget(tj(TOOL_ANSWER), "content")));
    T_EQ_STR(tstr(back, "stop_reason"), "tool_use");
}

/* Cache tokens: counted into the IR's input, out of Anthropic's input_tokens. */
T_TEST(usage_and_cache)
{
    sl_ir_usage u = {0};
    T_EQ_INT(AN->usage(tj(CACHE_ANSWER), &u), SL_USAGE_INPUT | SL_USAGE_OUTPUT);
    T_EQ_INT(u.input, 21 + 188086);
    T_EQ_INT(u.cache_write, 188086);
    T_EQ_INT(sl_dialect_prompt_tokens(AN, &u), 21);
    const sl_json *c = tj(tanswer(AN, OA, CACHE_ANSWER));
    T_EQ_INT(tnum(c, "usage.prompt_tokens"), 188107);
    const sl_json *a = tj(tanswer(AN, AN, CACHE_ANSWER));
    T_EQ_INT(tnum(a, "usage.input_tokens"), 21);
    T_EQ_INT(tnum(a, "usage.cache_creation_input_tokens"), 188086);
    T_EQ_INT(tnum(a, "usage.output_tokens"), 393);
}

T_TEST(stream_to_openai)
{
    sl_ir_stream s;
    sl_ir_stream_init(&s, AN, OA, true);
    const sl_json *f[16];
    size_t n = tframes(tstream(&s, STREAM, SL_ARRAY_LEN(STREAM)), f, 16);
    T_EQ_INT(n, 6); /* role, "Hello", "!", finish, usage, [DONE] */
    T_EQ_STR(tstr(f[0], "id"), "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY");
    T_EQ_STR(tstr(f[0], "choices.0.delta.role"), "assistant");
    T_EQ_STR(tstr(f[1], "choices.0.delta.content"), "Hello");
    T_EQ_STR(tstr(f[2], "choices.0.delta.content"), "!");
    T_EQ_STR(tstr(f[3], "choices.0.finish_reason"), "stop");
    T_EQ_INT(tnum(f[4], "usage.prompt_tokens"), 25);
    T_EQ_INT(tnum(f[4], "usage.completion_tokens"), 15);
    T_CHECK(f[5] == NULL && s.finished);

    sl_ir_stream_init(&s, AN, OA, false);
    n = tframes(tstream(&s, TOOL_STREAM, SL_ARRAY_LEN(TOOL_STREAM)), f, 16);
    T_EQ_INT(n, 8); /* role, text, tool start, three argument pieces, finish, [DONE] */
    T_EQ_STR(tstr(f[2], "choices.0.delta.tool_calls.0.id"), "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    T_EQ_STR(tstr(f[2], "choices.0.delta.tool_calls.0.function.name"), "get_weather");
    T_EQ_INT(tnum(f[4], "choices.0.delta.tool_calls.0.index"), 0);
    T_EQ_STR(tstr(f[4], "choices.0.delta.tool_calls.0.function.arguments"), "{\"location\":");
    T_EQ_STR(tstr(f[6], "choices.0.finish_reason"), "tool_calls");
    T_EQ_INT(s.usage.output, 89);
}

T_TEST(stream_round_trip)
{
    sl_ir_stream s;
    sl_ir_stream_init(&s, AN, AN, false);
    const char *sse = tstream(&s, TOOL_STREAM, SL_ARRAY_LEN(TOOL_STREAM));
    const char *order[] = {"event: message_start",
                           "\"input_tokens\":472",
                           "\"type\":\"text\"",
                           "Okay, let's check",
                           "event: content_block_stop",
                           "\"type\":\"tool_use\"",
                           "\"partial_json\":\"{\\\"location\\\":\"",
                           "\"stop_reason\":\"tool_use\"",
                           "\"output_tokens\":89",
                           "event: message_stop"};
    T_CHECK(tin_order(sse, order, SL_ARRAY_LEN(order)));
}

T_TEST(stream_errors)
{
    sl_ir_stream s;
    sl_ir_stream_init(&s, AN, OA, true);
    const sl_json *f[4];
    size_t n = tframes(tstream(&s, ERROR_STREAM, SL_ARRAY_LEN(ERROR_STREAM)), f, 4);
    T_EQ_INT(n, 2);
    T_EQ_STR(tstr(f[1], "error.type"), "overloaded_error");
    T_EQ_STR(tstr(f[1], "error.message"), "Overloaded");
    T_CHECK(s.failed && !s.finished);
}

T_TEST(watch_native_stream)
{
    sl_ir_usage u = {0};
    unsigned have = 0;
    T_EQ_INT(AN->watch_event(SL_STR("message_start"), sl_str_c(STREAM[1]), &u, &have),
             SL_WATCH_CHUNK);
    T_EQ_INT(have, SL_USAGE_INPUT);
    T_EQ_INT(u.input, 25);
    T_EQ_INT(AN->watch_event(SL_STR("message_delta"), sl_str_c(STREAM[13]), &u, &have),
             SL_WATCH_CHUNK);
    T_EQ_INT(u.output, 15);
    T_EQ_INT(u.input, 25);
    T_EQ_INT(AN->watch_event(SL_STR("message_stop"), sl_str_c(STREAM[15]), &u, &have),
             SL_WATCH_CHUNK | SL_WATCH_END);
}

T_TEST(errors)
{
    const sl_json *o = tj(terror(AN, OA, ERROR_BODY));
    T_EQ_STR(tstr(o, "error.type"), "not_found_error");
    T_EQ_STR(tstr(o, "error.message"), "The requested resource could not be found.");
    T_CHECK(tget(o, "error.param") && tget(o, "error.param")->type == SL_JSON_NULL);
    const sl_json *a = tj(terror(AN, AN, ERROR_BODY));
    T_EQ_STR(tcanon(tget(a, "error")), tcanon(tget(tj(ERROR_BODY), "error")));
    T_EQ_STR(tstr(a, "type"), "error");
}

/* What Messages cannot say is refused, naming the parameter. */
T_TEST(refusals)
{
    static const struct {
        const char *body, *param;
    } cases[] = {
        {"{\"model\":\"c\",\"messages\":[{\"role\":\"function\",\"content\":\"x\"}]}", "messages"},
        {"{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_"
         "audio\",\"input_audio\":{\"data\":\"x\",\"format\":\"wav\"}}]}]}",
         "messages"},
        {"{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
         "\"image_url\":{\"url\":\"data:image/png,raw\"}}]}]}",
         "messages"},
        {"{\"model\":\"c\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"t\","
         "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"[1]\"}}]}]}",
         "messages"},
        {"{\"model\":\"c\",\"frequency_penalty\":0.5,\"messages\":[]}", "frequency_penalty"},
        {"{\"model\":\"c\",\"top_logprobs\":2,\"messages\":[]}", "top_logprobs"},
        {"{\"model\":\"c\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{"
         "\"name\":\"x\"}},\"messages\":[]}", /* no schema: nothing to hold the answer to */
         "response_format"},
        {"{\"model\":\"c\",\"tool_choice\":{\"type\":\"function\"},\"messages\":[]}",
         "tool_choice"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        sl_ir_refusal e = {0};
        T_CHECK(treq(OA, AN, cases[i].body, &e) == NULL);
        T_EQ_STR(e.param, cases[i].param);
    }
}

T_TEST(paths_and_headers)
{
    T_EQ_STR(AN->path(SL_API_CHAT), "/v1/messages");
    T_EQ_STR(AN->path(SL_API_MESSAGES), "/v1/messages");
    T_CHECK(AN->path(SL_API_EMBEDDINGS) == NULL && AN->path(SL_API_COMPLETIONS) == NULL);
    struct curl_slist *h = AN->headers(NULL, "sk-ant");
    T_CHECK(h && strcmp(h->data, "x-api-key: sk-ant") == 0);
    T_CHECK(h && h->next && strcmp(h->next->data, "anthropic-version: 2023-06-01") == 0);
    sl_header_list_free(h);
    T_CHECK(sl_dialect_of_kind(SL_PROVIDER_ANTHROPIC) == AN);
    T_CHECK(sl_dialect_of_api(SL_API_MESSAGES) == AN);
    sl_arena_free(&TA);
}

T_MAIN("dialect_anthropic", parse_reference_requests, request_round_trip, round_trip_through_openai,
       answers, usage_and_cache, stream_to_openai, stream_round_trip, stream_errors,
       watch_native_stream, errors, refusals, paths_and_headers)
