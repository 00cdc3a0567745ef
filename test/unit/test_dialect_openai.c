/* test_dialect_openai.c — src/upstream/openai.c on the OpenAI API reference's bodies. */
#include <curl/curl.h>

#include "sluice/upstream.h"
#include "t_dialect.h"

/* platform.openai.com/docs/api-reference/chat/create, example "Default". */
static const char *const DEFAULT_REQ =
    "{\"model\":\"gpt-4.1\",\"messages\":[{\"role\":\"developer\",\"content\":\"You are a helpful "
    "assistant.\"},{\"role\":\"user\",\"content\":\"Hello!\"}]}";

/* The same page, example "Image input". */
static const char *const IMAGE_REQ =
    "{\"model\":\"gpt-4.1\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
    "\"text\":\"What's in this image?\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
    "\"https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/"
    "Gfp-wisconsin-madison-the-nature-boardwalk.jpg/"
    "2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg\"}}]}],\"max_tokens\":300}";

/* The same page, example "Functions". */
static const char *const FUNCTIONS_REQ =
    "{\"model\":\"gpt-4.1\",\"messages\":[{\"role\":\"user\",\"content\":\"What is the weather "
    "like "
    "in Boston today?\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_current_"
    "weather\",\"description\":\"Get the current weather in a given location\",\"parameters\":{"
    "\"type\":\"object\",\"properties\":{\"location\":{\"type\":\"string\",\"description\":\"The "
    "city and state, e.g. San Francisco, CA\"},\"unit\":{\"type\":\"string\",\"enum\":[\"celsius\","
    "\"fahrenheit\"]}},\"required\":[\"location\"]}}}],\"tool_choice\":\"auto\"}";

/* Its answer. */
static const char *const FUNCTIONS_ANSWER =
    "{\"id\":\"chatcmpl-abc123\",\"object\":\"chat.completion\",\"created\":1699896916,\"model\":"
    "\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
    "null,"
    "\"tool_calls\":[{\"id\":\"call_abc123\",\"type\":\"function\",\"function\":{\"name\":\"get_"
    "current_weather\",\"arguments\":\"{\\n\\\"location\\\": \\\"Boston, MA\\\"\\n}\"}}]},"
    "\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":82,"
    "\"completion_tokens\":17,\"total_tokens\":99,\"completion_tokens_details\":{\"reasoning_"
    "tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}";

/* The chat completion object (api-reference/chat/object). */
static const char *const CHAT_ANSWER =
    "{\"id\":\"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG\",\"object\":\"chat.completion\",\"created\":"
    "1741570283,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
    "\"assistant\",\"content\":\"The image shows a wooden boardwalk path running through a lush "
    "green field or meadow.\",\"refusal\":null,\"annotations\":[]},\"logprobs\":null,\"finish_"
    "reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1117,\"completion_tokens\":46,\"total_"
    "tokens\":1163,\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},"
    "\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_"
    "prediction_tokens\":0,\"rejected_prediction_tokens\":0}},\"service_tier\":\"default\","
    "\"system_fingerprint\":\"fp_fc9f1d7035\"}";

/* The prompt-caching guide's usage (platform.openai.com/docs/guides/prompt-caching). */
static const char *const CACHED_USAGE =
    "{\"usage\":{\"prompt_tokens\":2006,\"completion_tokens\":300,\"total_tokens\":2306,"
    "\"prompt_tokens_details\":{\"cached_tokens\":1920},\"completion_tokens_details\":{"
    "\"reasoning_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}";

/* The chat completion chunk object (api-reference/chat/streaming), and the usage
 * chunk stream_options.include_usage adds. */
static const char *const STREAM[] = {
    "",
    "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
    "\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]"
    "}",
    "",
    "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
    "\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}]}",
    "",
    "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
    "\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,"
    "\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}",
    "",
    "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
    "\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":"
    "12,\"total_tokens\":21}}",
    "",
    "[DONE]",
};

/* A function call streamed (the function-calling guide's streaming section). */
static const char *const TOOL_STREAM[] = {
    "",
    "{\"id\":\"chatcmpl-t\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4.1\",\"choices\":"
    "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,"
    "\"id\":\"call_DdmO9pD3xa9XTPNJ32zg2hcA\",\"type\":\"function\",\"function\":{\"name\":\"get_"
    "weather\",\"arguments\":\"\"}}],\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}]}",
    "",
    "{\"id\":\"chatcmpl-t\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4.1\",\"choices\":"
    "[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"\"}}]"
    "}"
    ",\"logprobs\":null,\"finish_reason\":null}]}",
    "",
    "{\"id\":\"chatcmpl-t\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4.1\",\"choices\":"
    "[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
    "\"location\\\""
    ":\\\"Paris, France\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}]}",
    "",
    "{\"id\":\"chatcmpl-t\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4.1\",\"choices\":"
    "[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}]}",
    "",
    "[DONE]",
};

/* The error object (api-reference, "Error codes": a bad key). */
static const char *const ERROR_BODY =
    "{\"error\":{\"message\":\"Incorrect API key provided: sk-abc. You can find your API key at "
    "https://platform.openai.com/account/api-keys.\",\"type\":\"invalid_request_error\",\"param\":"
    "null,\"code\":\"invalid_api_key\"}}";

T_TEST(parse_reference_requests)
{
    sl_ir_req ir;
    sl_ir_refusal e = {0};
    T_EQ_INT(OA->parse_request(tj(DEFAULT_REQ), &TA, &ir, &e), SL_OK);
    T_CHECK(ir.system && sl_str_eq_c(ir.system->text, "You are a helpful assistant."));
    T_CHECK(ir.messages && ir.messages->role == SL_IR_USER && ir.messages->plain);
    T_CHECK(ir.messages && sl_str_eq_c(ir.messages->parts->text, "Hello!"));
    T_CHECK(!ir.messages->next && !ir.max_tokens.set && !ir.stream);

    T_EQ_INT(OA->parse_request(tj(IMAGE_REQ), &TA, &ir, &e), SL_OK);
    const sl_ir_part *p = ir.messages->parts;
    T_CHECK(p->type == SL_IR_TEXT && p->next && p->next->type == SL_IR_IMAGE);
    T_CHECK(sl_str_eq_c(p->next->url, "https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/"
                                      "Gfp-wisconsin-madison-the-nature-boardwalk.jpg/"
                                      "2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg"));
    T_CHECK(ir.max_tokens.set && ir.max_tokens.v == 300 && !ir.messages->plain);

    T_EQ_INT(OA->parse_request(tj(FUNCTIONS_REQ), &TA, &ir, &e), SL_OK);
    T_CHECK(ir.tools && ir.tools->function && sl_str_eq_c(ir.tools->name, "get_current_weather"));
    T_CHECK(ir.tools->parameters && ir.tools->parameters->type == SL_JSON_OBJECT);
    T_EQ_INT(ir.tool_choice, SL_IR_CHOICE_AUTO);
}

/* chat -> IR -> chat keeps what the client said (developer becomes system). */
T_TEST(request_round_trip)
{
    sl_ir_refusal e = {0};
    const sl_json *out = tj(treq(OA, OA, FUNCTIONS_REQ, &e)), *in = tj(FUNCTIONS_REQ);
    T_EQ_STR(tcanon(out), tcanon(in));
    out = tj(treq(OA, OA, IMAGE_REQ, &e));
    T_EQ_STR(tcanon(out), tcanon(tj(IMAGE_REQ)));
    out = tj(treq(OA, OA, DEFAULT_REQ, &e));
    T_EQ_STR(tstr(out, "messages.0.role"), "system");
    T_EQ_STR(tstr(out, "messages.0.content"), "You are a helpful assistant.");
    T_EQ_STR(tstr(out, "messages.1.content"), "Hello!");
    /* Sampling, stops, penalties, JSON schema, the end user: all carried. */
    const char *full =
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_"
        "tokens\":"
        "50,\"temperature\":0.2,\"top_p\":0.9,\"stream\":true,\"stop\":[\"\\n\\n\",\"END\"],\"tool_"
        "choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}},\"n\":2,\"presence_"
        "penalty\":"
        "0.5,\"frequency_penalty\":0.1,\"response_format\":{\"type\":\"json_schema\",\"json_"
        "schema\":"
        "{\"name\":\"math_response\",\"schema\":{\"type\":\"object\"},\"strict\":true}},\"user\":"
        "\"user-1234\",\"stream_options\":{\"include_usage\":true}}";
    T_EQ_STR(tcanon(tj(treq(OA, OA, full, &e))), tcanon(tj(full)));
}

/* chat -> messages -> chat: what both can say survives. */
T_TEST(round_trip_through_anthropic)
{
    sl_ir_refusal e = {0};
    const char *a = treq(OA, AN, FUNCTIONS_REQ, &e);
    T_CHECK(a != NULL);
    const sl_json *back = tj(treq(AN, OA, a, &e));
    T_EQ_STR(tstr(back, "messages.0.content.0.text"), "What is the weather like in Boston today?");
    T_EQ_STR(tcanon(tget(back, "tools")), tcanon(tget(tj(FUNCTIONS_REQ), "tools")));
    T_EQ_STR(tstr(back, "tool_choice"), "auto");
    T_EQ_INT(tnum(back, "max_tokens"), SL_DIALECT_DEFAULT_MAX_TOKENS);
    /* Every stop sequence goes (none is dropped for want of room). */
    const char *stops = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                        "\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\"]}";
    T_EQ_STR(tcanon(tget(tj(treq(OA, AN, stops, &e)), "stop_sequences")),
             tcanon(tget(tj(stops), "stop")));
    back = tj(treq(AN, OA, treq(OA, AN, IMAGE_REQ, &e), &e));
    T_EQ_STR(tcanon(tget(back, "messages")), tcanon(tget(tj(IMAGE_REQ), "messages")));
    T_EQ_INT(tnum(back, "max_tokens"), 300);
}

T_TEST(answers)
{
    sl_ir_answer ir;
    T_EQ_INT(OA->parse_answer(tj(FUNCTIONS_ANSWER), &TA, &ir), SL_OK);
    T_CHECK(ir.parts && ir.parts->type == SL_IR_TOOL_CALL && !ir.parts->next);
    T_CHECK(sl_str_eq_c(ir.parts->args, "{\n\"location\": \"Boston, MA\"\n}"));
    T_EQ_INT(ir.finish, SL_IR_FINISH_TOOL_CALLS);
    T_EQ_INT(ir.usage.input, 82);
    T_EQ_INT(ir.usage.output, 17);
    /* Round trip: the same answer (created is sluice's clock). */
    const sl_json *out = tj(tanswer(OA, OA, FUNCTIONS_ANSWER)), *in = tj(FUNCTIONS_ANSWER);
    T_EQ_STR(tcanon(tget(out, "choices.0.message")), tcanon(tget(in, "choices.0.message")));
    T_EQ_STR(tstr(out, "choices.0.finish_reason"), "tool_calls");
    T_EQ_STR(tstr(out, "id"), "chatcmpl-abc123");
    T_EQ_INT(tnum(out, "usage.total_tokens"), 99);
    out = tj(tanswer(OA, OA, CHAT_ANSWER));
    T_EQ_STR(tstr(out, "choices.0.message.content"),
             tstr(tj(CHAT_ANSWER), "choices.0.message.content"));
    T_EQ_INT(tnum(out, "usage.prompt_tokens"), 1117);
}

T_TEST(usage_and_cache)
{
    sl_ir_usage u = {0};
    T_EQ_INT(OA->usage(tj(CACHED_USAGE), &u), SL_USAGE_INPUT | SL_USAGE_OUTPUT);
    T_EQ_INT(u.input, 2006);
    T_EQ_INT(u.cache_read, 1920);
    T_EQ_INT(u.output, 300);
    T_EQ_INT(sl_dialect_prompt_tokens(OA, &u), 2006); /* OpenAI counts cached tokens in */
    T_EQ_INT(OA->usage(tj("{\"id\":\"x\"}"), &u), 0);
}

T_TEST(stream_to_anthropic)
{
    sl_ir_stream s;
    sl_ir_stream_init(&s, OA, AN, false);
    const char *sse = tstream(&s, STREAM, SL_ARRAY_LEN(STREAM));
    const char *order[] = {"event: message_start",       "\"id\":\"chatcmpl-123\"",
                           "event: content_block_start", "\"text\":\"Hello\"",
                           "event: content_block_stop",  "\"stop_reason\":\"end_turn\"",
                           "\"output_tokens\":12",       "event: message_stop"};
    T_CHECK(tin_order(sse, order, SL_ARRAY_LEN(order)));
    T_CHECK(s.finished && !s.failed);
    T_EQ_INT(s.usage.input, 9);
    T_EQ_INT(s.usage.output, 12);

    sl_ir_stream_init(&s, OA, AN, false);
    sse = tstream(&s, TOOL_STREAM, SL_ARRAY_LEN(TOOL_STREAM));
    const sl_json *f[16];
    size_t n = tframes(sse, f, 16);
    T_EQ_INT(n, 7); /* start, block start, two deltas, block stop, message delta, stop */
    T_EQ_STR(tstr(f[1], "content_block.type"), "tool_use");
    T_EQ_STR(tstr(f[1], "content_block.id"), "call_DdmO9pD3xa9XTPNJ32zg2hcA");
    T_EQ_STR(tstr(f[2], "delta.partial_json"), "{\"");
    T_EQ_STR(tstr(f[3], "delta.partial_json"), "location\":\"Paris, France\"}");
    T_EQ_STR(tstr(f[4], "type"), "content_block_stop");
    T_EQ_STR(tstr(f[5], "delta.stop_reason"), "tool_use");
}

T_TEST(stream_round_trip)
{
    sl_ir_stream s;
    sl_ir_stream_init(&s, OA, OA, true);
    const char *sse = tstream(&s, STREAM, SL_ARRAY_LEN(STREAM));
    const sl_json *f[8];
    size_t n = tframes(sse, f, 8);
    T_EQ_INT(n, 5); /* role, text, finish, usage, [DONE] */
    T_EQ_STR(tstr(f[0], "choices.0.delta.role"), "assistant");
    T_EQ_STR(tstr(f[1], "choices.0.delta.content"), "Hello");
    T_EQ_STR(tstr(f[2], "choices.0.finish_reason"), "stop");
    T_EQ_INT(tnum(f[3], "usage.total_tokens"), 21);
    T_CHECK(f[4] == NULL);
}

T_TEST(watch_native_stream)
{
    sl_ir_usage u = {0};
    unsigned have = 0;
    T_EQ_INT(OA->watch_event(SL_STR(""), sl_str_c(STREAM[3]), &u, &have), SL_WATCH_CHUNK);
    T_EQ_INT(have, 0);
    T_EQ_INT(OA->watch_event(SL_STR(""), sl_str_c(STREAM[7]), &u, &have),
             SL_WATCH_CHUNK | SL_WATCH_USAGE_ONLY);
    T_EQ_INT(have, SL_USAGE_INPUT | SL_USAGE_OUTPUT);
    T_EQ_INT(u.input, 9);
    T_EQ_INT(OA->watch_event(SL_STR(""), SL_STR("[DONE]"), &u, &have), SL_WATCH_END);
}

T_TEST(errors)
{
    const sl_json *a = tj(terror(OA, AN, ERROR_BODY));
    T_EQ_STR(tstr(a, "type"), "error");
    T_EQ_STR(tstr(a, "error.type"), "invalid_request_error");
    T_EQ_STR(tstr(a, "error.message"), tstr(tj(ERROR_BODY), "error.message"));
    T_EQ_STR(tcanon(tj(terror(OA, OA, ERROR_BODY))), tcanon(tj(ERROR_BODY)));
    sl_buf b;
    sl_buf_init(&b, 0);
    sl_ir_error e = {.message = SL_STR("boom")};
    OA->emit_error_event(&e, &b);
    T_EQ_STR(b.p, "data: {\"error\":{\"message\":\"boom\",\"type\":\"api_error\",\"param\":null,"
                  "\"code\":null}}\n\n");
    sl_buf_free(&b);
}

T_TEST(paths_and_headers)
{
    T_EQ_STR(OA->path(SL_API_CHAT), "/chat/completions");
    T_EQ_STR(OA->path(SL_API_MESSAGES), "/chat/completions");
    T_EQ_STR(OA->path(SL_API_EMBEDDINGS), "/embeddings");
    T_EQ_STR(OA->path(SL_API_COMPLETIONS), "/completions");
    struct curl_slist *h = OA->headers(NULL, "sk-test");
    T_CHECK(h != NULL);
    T_CHECK(OA->headers(NULL, "") == NULL);
    sl_header_list_free(h);
    T_CHECK(sl_dialect_of_kind(SL_PROVIDER_OPENAI) == OA && sl_dialect_of_api(SL_API_CHAT) == OA);
    sl_arena_free(&TA);
}

/* sluice allocates curl's list shape itself (libcurl is loaded at run time):
 * lines in order, each copied, one free for the whole list. */
T_TEST(header_lists_without_libcurl)
{
    char line[32] = "X-One: 1";
    struct curl_slist *h = sl_header_list_append(NULL, line);
    T_CHECK(h != NULL);
    line[0] = 'Y'; /* copied: the caller's buffer is its own */
    T_CHECK(sl_header_list_append(h, "X-Two: 2") == h);
    T_CHECK(sl_header_list_append(h, "") == h);
    T_EQ_STR(h->data, "X-One: 1");
    T_EQ_STR(h->next->data, "X-Two: 2");
    T_EQ_STR(h->next->next->data, "");
    T_CHECK(h->next->next->next == NULL);
    sl_header_list_free(h);
    sl_header_list_free(NULL);
}

T_MAIN("dialect_openai", parse_reference_requests, request_round_trip, round_trip_through_anthropic,
       answers, usage_and_cache, stream_to_anthropic, stream_round_trip, watch_native_stream,
       errors, paths_and_headers, header_lists_without_libcurl)
