/* test_dialect_responses.c — the Responses API dialect and its extras, on the
 * request, answer and event bodies of OpenAI's and Anthropic's API references. */
#include "sluice/dialects.h"
#include "sluice/responses.h"
#include "t.h"

static sl_arena A;
static sl_buf out;

static void setup(void)
{
    static char first[1 << 16];
    static bool done;
    if (!done)
        sl_arena_init(&A, first, sizeof first, 64u << 20), sl_buf_init(&out, 0), done = true;
}

static const sl_json *J(const char *s)
{
    setup();
    sl_json *v = NULL;
    sl_json_error e;
    return sl_json_parse(&A, s, strlen(s), NULL, &v, &e) == SL_OK ? v : NULL;
}

static const sl_json *at(const sl_json *v, const char *path)
{
    char key[64];
    while (v && *path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        if (v->type == SL_JSON_ARRAY) {
            long i = strtol(key, NULL, 10);
            v = v->child;
            while (v && i-- > 0)
                v = v->next;
        } else {
            v = sl_json_get(v, key);
        }
        path += n + (path[n] == '.');
    }
    return v;
}

static const char *S(const sl_json *v, const char *path)
{
    const sl_json *x = at(v, path);
    return x && x->type == SL_JSON_STRING ? sl_arena_strndup(&A, x->str.p, x->str.len) : NULL;
}

static long N(const sl_json *v, const char *path)
{
    const sl_json *x = at(v, path);
    return x && x->type == SL_JSON_NUMBER ? (long)x->num : -1;
}

#define RS (&sl_dialect_responses)
#define OA (&sl_dialect_openai)
#define AN (&sl_dialect_anthropic)

static const sl_json *translate(const sl_dialect *to, const char *in, sl_ir_refusal *e)
{
    setup();
    sl_buf_reset(&out);
    if (sl_dialect_request(RS, to, J(in), &A, &out, e) != SL_OK)
        return NULL;
    return J(sl_arena_strndup(&A, out.p, out.len));
}

/* The API reference's first example: a string input with instructions. */
T_TEST(string_input_to_chat)
{
    sl_ir_refusal e = {0};
    sl_buf_reset(&out);
    int rc = sl_dialect_request(RS, OA,
                                J("{\"model\":\"gpt-4.1\",\"instructions\":\"You are a helpful "
                                  "assistant.\",\"input\":\"Tell me a three sentence bedtime "
                                  "story about a unicorn.\"}"),
                                &A, &out, &e);
    T_EQ_INT(rc, SL_OK);
    T_EQ_STR(out.p, "{\"model\":\"gpt-4.1\",\"messages\":[{\"role\":\"system\",\"content\":\"You "
                    "are a helpful assistant.\"},{\"role\":\"user\",\"content\":\"Tell me a three "
                    "sentence bedtime story about a unicorn.\"}]}");
}

/* The function-calling guide's second turn: the call and its output as items. */
static const char *TOOL_TURN =
    "{\"model\":\"gpt-4.1\",\"max_output_tokens\":100,\"temperature\":0.2,\"input\":["
    "{\"role\":\"user\",\"content\":\"What's the weather like in Paris today?\"},"
    "{\"type\":\"function_call\",\"id\":\"fc_12345xyz\",\"call_id\":\"call_12345xyz\","
    "\"name\":\"get_weather\",\"arguments\":\"{\\\"location\\\":\\\"Paris, France\\\"}\"},"
    "{\"type\":\"function_call_output\",\"call_id\":\"call_12345xyz\",\"output\":\"{\\\""
    "temperature\\\": 15}\"}],"
    "\"tools\":[{\"type\":\"function\",\"name\":\"get_weather\",\"description\":\"Get current "
    "temperature for a given location.\",\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"location\":{\"type\":\"string\"}},\"required\":[\"location\"],\"additionalProperties\":"
    "false},\"strict\":true}],\"tool_choice\":{\"type\":\"function\",\"name\":\"get_weather\"}}";

T_TEST(function_call_items_to_messages)
{
    sl_ir_refusal e = {0};
    const sl_json *m = translate(AN, TOOL_TURN, &e);
    T_CHECK(m != NULL);
    T_EQ_INT(N(m, "max_tokens"), 100);
    T_EQ_STR(S(m, "messages.0.role"), "user");
    T_EQ_STR(S(m, "messages.1.role"), "assistant");
    T_EQ_STR(S(m, "messages.1.content.0.type"), "tool_use");
    T_EQ_STR(S(m, "messages.1.content.0.id"), "call_12345xyz");
    T_EQ_STR(S(m, "messages.1.content.0.input.location"), "Paris, France");
    T_EQ_STR(S(m, "messages.2.content.0.type"), "tool_result");
    T_EQ_STR(S(m, "messages.2.content.0.tool_use_id"), "call_12345xyz");
    T_EQ_STR(S(m, "tools.0.name"), "get_weather");
    T_EQ_STR(S(m, "tool_choice.type"), "tool");
    T_EQ_STR(S(m, "tool_choice.name"), "get_weather");
}

T_TEST(function_call_items_to_chat)
{
    sl_ir_refusal e = {0};
    const sl_json *c = translate(OA, TOOL_TURN, &e);
    T_CHECK(c != NULL);
    T_EQ_STR(S(c, "messages.1.role"), "assistant");
    T_EQ_STR(S(c, "messages.1.tool_calls.0.id"), "call_12345xyz");
    T_EQ_STR(S(c, "messages.1.tool_calls.0.function.name"), "get_weather");
    T_EQ_STR(S(c, "messages.2.role"), "tool");
    T_EQ_STR(S(c, "messages.2.tool_call_id"), "call_12345xyz");
    T_EQ_STR(S(c, "messages.2.content"), "{\"temperature\": 15}");
    T_EQ_STR(S(c, "tools.0.function.name"), "get_weather");
    T_EQ_STR(S(c, "tool_choice.function.name"), "get_weather");
    T_EQ_INT(N(c, "max_tokens"), 100);
}

/* The images guide's input_image part, and tool_choice both ways. */
T_TEST(images_and_tool_choice)
{
    sl_ir_refusal e = {0};
    const char *img =
        "{\"model\":\"gpt-4.1-mini\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":"
        "\"input_text\",\"text\":\"what's in this image?\"},{\"type\":\"input_image\","
        "\"image_url\":\"data:image/jpeg;base64,QUJD\"}]}],\"tool_choice\":\"required\","
        "\"tools\":[{\"type\":\"function\",\"name\":\"f\"}]}";
    const sl_json *m = translate(AN, img, &e);
    T_CHECK(m != NULL);
    T_EQ_STR(S(m, "messages.0.content.0.text"), "what's in this image?");
    T_EQ_STR(S(m, "messages.0.content.1.type"), "image");
    T_EQ_STR(S(m, "messages.0.content.1.source.media_type"), "image/jpeg");
    T_EQ_STR(S(m, "messages.0.content.1.source.data"), "QUJD");
    T_EQ_STR(S(m, "tool_choice.type"), "any");
    const sl_json *c = translate(OA, img, &e);
    T_EQ_STR(S(c, "messages.0.content.1.image_url.url"), "data:image/jpeg;base64,QUJD");
    T_EQ_STR(S(c, "tool_choice"), "required");
    c = translate(OA, "{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":\"none\"}", &e);
    T_EQ_STR(S(c, "tool_choice"), "none");
    /* and a chat request written as a Responses one (IR -> Responses) */
    sl_buf_reset(&out);
    T_EQ_INT(sl_dialect_request(OA, RS,
                                J("{\"model\":\"m\",\"messages\":[{\"role\":\"system\","
                                  "\"content\":\"S\"},{\"role\":\"user\",\"content\":\"hi\"}],"
                                  "\"max_tokens\":9,\"tool_choice\":{\"type\":\"function\","
                                  "\"function\":{\"name\":\"f\"}}}"),
                                &A, &out, &e),
             SL_OK);
    const sl_json *r = J(sl_arena_strndup(&A, out.p, out.len));
    T_EQ_STR(S(r, "instructions"), "S");
    T_EQ_STR(S(r, "input.0.content.0.type"), "input_text");
    T_EQ_INT(N(r, "max_output_tokens"), 9);
    T_EQ_STR(S(r, "tool_choice.name"), "f");
    T_EQ_INT(sl_dialect_request(OA, RS, J("{\"model\":\"m\",\"messages\":[],\"stop\":\"X\"}"), &A,
                                &out, &e),
             SL_EINVAL);
    T_EQ_STR(e.param, "stop");
}

/* The structured-outputs guide: text.format with a flat json_schema. */
T_TEST(text_format_json_schema_to_chat)
{
    sl_ir_refusal e = {0};
    const sl_json *c = translate(
        OA,
        "{\"model\":\"gpt-4o-2024-08-06\",\"input\":[{\"role\":\"system\",\"content\":\"Extract "
        "the event information.\"},{\"role\":\"user\",\"content\":\"Alice and Bob are going to a "
        "science fair on Friday.\"}],\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":"
        "\"calendar_event\",\"schema\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":"
        "\"string\"}},\"required\":[\"name\"],\"additionalProperties\":false},\"strict\":true}}}",
        &e);
    T_CHECK(c != NULL);
    T_EQ_STR(S(c, "messages.0.role"), "system");
    T_EQ_STR(S(c, "response_format.type"), "json_schema");
    T_EQ_STR(S(c, "response_format.json_schema.name"), "calendar_event");
    T_EQ_STR(S(c, "response_format.json_schema.schema.properties.name.type"), "string");
    T_CHECK(at(c, "response_format.json_schema.strict")->type == SL_JSON_TRUE);
}

T_TEST(untranslatable_parameters_refused)
{
    static const struct {
        const char *extra, *param;
    } cases[] = {
        {"\"reasoning\":{\"effort\":\"high\"}", "reasoning"},
        {"\"tools\":[{\"type\":\"web_search_preview\"}]", "tools"},
        {"\"background\":true", "background"},
        {"\"include\":[\"reasoning.encrypted_content\"]", "include"},
        {"\"truncation\":\"auto\"", "truncation"},
        {"\"parallel_tool_calls\":false", "parallel_tool_calls"},
        {"\"tool_choice\":{\"type\":\"file_search\"}", "tool_choice"},
        {"\"text\":{\"verbosity\":\"low\"}", "text.verbosity"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        char body[512];
        snprintf(body, sizeof body, "{\"model\":\"m\",\"input\":\"hi\",%s}", cases[i].extra);
        sl_ir_refusal e = {0};
        T_CHECK(translate(AN, body, &e) == NULL);
        T_EQ_STR(e.param, cases[i].param);
    }
    sl_ir_refusal e = {0};
    T_CHECK(translate(OA,
                      "{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":"
                      "\"input_file\",\"file_id\":\"file-6F2ksmvXxt4VdoqmHRw6kL\"}]}]}",
                      &e) == NULL);
    T_EQ_STR(e.param, "input");
    /* what means nothing for the model passes: defaults, reasoning effort null, store */
    T_CHECK(translate(AN,
                      "{\"model\":\"m\",\"input\":\"hi\",\"store\":true,\"truncation\":"
                      "\"disabled\",\"reasoning\":{\"effort\":null},\"include\":[],"
                      "\"parallel_tool_calls\":true}",
                      &e) != NULL);
}

/* The chat API reference's answer, with cached and reasoning tokens. */
T_TEST(chat_answer_to_response_object)
{
    const char *chat =
        "{\"id\":\"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG\",\"object\":\"chat.completion\","
        "\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"The image shows a wooden "
        "boardwalk.\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":1117,\"completion_tokens\":46,\"total_tokens\":1163,"
        "\"prompt_tokens_details\":{\"cached_tokens\":1024,\"audio_tokens\":0},"
        "\"completion_tokens_details\":{\"reasoning_tokens\":12,\"audio_tokens\":0}}}";
    sl_ir_echo echo = {.id = SL_STR("resp_abc_p"),
                       .request = J("{\"model\":\"gpt-4o\",\"input\":\"x\",\"metadata\":{"
                                    "\"k\":\"v\"},\"instructions\":\"be brief\"}")};
    sl_buf_reset(&out);
    T_EQ_INT(sl_dialect_answer_echo(OA, RS, J(chat), &A, &echo, &out), SL_OK);
    const sl_json *r = J(sl_arena_strndup(&A, out.p, out.len));
    T_CHECK(r != NULL);
    T_EQ_STR(S(r, "id"), "resp_abc_p");
    T_EQ_STR(S(r, "object"), "response");
    T_EQ_STR(S(r, "status"), "completed");
    T_EQ_STR(S(r, "model"), "gpt-4o-2024-08-06");
    T_EQ_STR(S(r, "output.0.type"), "message");
    T_EQ_STR(S(r, "output.0.id"), "msg_abc_p_0");
    T_EQ_STR(S(r, "output.0.content.0.type"), "output_text");
    T_EQ_STR(S(r, "output.0.content.0.text"), "The image shows a wooden boardwalk.");
    T_EQ_INT(N(r, "usage.input_tokens"), 1117);
    T_EQ_INT(N(r, "usage.input_tokens_details.cached_tokens"), 1024);
    T_EQ_INT(N(r, "usage.output_tokens"), 46);
    T_EQ_INT(N(r, "usage.output_tokens_details.reasoning_tokens"), 12);
    T_EQ_INT(N(r, "usage.total_tokens"), 1163);
    T_EQ_STR(S(r, "metadata.k"), "v");
    T_EQ_STR(S(r, "instructions"), "be brief");
}

/* Anthropic's tool-use answer, stopped for max_tokens once. */
T_TEST(messages_answer_with_tool_use)
{
    const char *msg =
        "{\"id\":\"msg_01Aq9w938a90dw8q\",\"type\":\"message\",\"role\":\"assistant\",\"model\":"
        "\"claude-sonnet-4-5\",\"content\":[{\"type\":\"text\",\"text\":\"I'll check.\"},{"
        "\"type\":\"tool_use\",\"id\":\"toolu_01A09q90qw90lq917835lq9\",\"name\":\"get_weather\","
        "\"input\":{\"location\":\"San Francisco, CA\"}}],\"stop_reason\":\"tool_use\","
        "\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":89,"
        "\"cache_read_input_tokens\":100}}";
    sl_buf_reset(&out);
    T_EQ_INT(sl_dialect_answer(AN, RS, J(msg), &A, &out), SL_OK);
    const sl_json *r = J(sl_arena_strndup(&A, out.p, out.len));
    T_EQ_STR(S(r, "output.0.content.0.text"), "I'll check.");
    T_EQ_STR(S(r, "output.1.type"), "function_call");
    T_EQ_STR(S(r, "output.1.call_id"), "toolu_01A09q90qw90lq917835lq9");
    T_EQ_STR(S(r, "output.1.name"), "get_weather");
    T_EQ_STR(S(r, "output.1.arguments"), "{\"location\":\"San Francisco, CA\"}");
    T_EQ_INT(N(r, "usage.input_tokens"), 572); /* OpenAI's convention: cache reads included */
    T_EQ_INT(N(r, "usage.input_tokens_details.cached_tokens"), 100);
}

/* The Responses API reference's response object, read back (for chat clients and replay). */
static const char *RESP =
    "{\"id\":\"resp_67ccd2bed1ec8190b14f964abc054267\",\"object\":\"response\",\"created_at\":"
    "1741476542,\"status\":\"completed\",\"error\":null,\"incomplete_details\":null,"
    "\"instructions\":null,\"max_output_tokens\":null,\"model\":\"gpt-4.1-2025-04-14\","
    "\"output\":[{\"type\":\"message\",\"id\":\"msg_67ccd2bf17f0819081ff3bb2cf6508e6\","
    "\"status\":\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\","
    "\"text\":\"In a peaceful grove beneath a silver moon...\",\"annotations\":[]}]},"
    "{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_1\",\"name\":\"f\","
    "\"arguments\":\"{}\",\"status\":\"completed\"}],"
    "\"parallel_tool_calls\":true,\"previous_response_id\":null,\"store\":true,"
    "\"temperature\":1.0,\"tool_choice\":\"auto\",\"tools\":[],\"top_p\":1.0,\"truncation\":"
    "\"disabled\",\"usage\":{\"input_tokens\":36,\"input_tokens_details\":{\"cached_tokens\":0},"
    "\"output_tokens\":87,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":"
    "123},\"user\":null,\"metadata\":{}}";

T_TEST(response_object_to_chat)
{
    sl_buf_reset(&out);
    T_EQ_INT(sl_dialect_answer(RS, OA, J(RESP), &A, &out), SL_OK);
    const sl_json *c = J(sl_arena_strndup(&A, out.p, out.len));
    T_EQ_STR(S(c, "choices.0.message.content"), "In a peaceful grove beneath a silver moon...");
    T_EQ_STR(S(c, "choices.0.finish_reason"), "tool_calls");
    T_EQ_STR(S(c, "choices.0.message.tool_calls.0.id"), "call_1");
    T_EQ_INT(N(c, "usage.prompt_tokens"), 36);
    T_EQ_INT(N(c, "usage.completion_tokens"), 87);
}

/* The event types of an SSE body, space-separated, and whether numbers run 0, 1, 2... */
static const char *types_of(const char *sse, bool *numbered)
{
    static char types[4096];
    types[0] = '\0';
    *numbered = true;
    long want = 0;
    for (const char *p = strstr(sse, "data: "); p; p = strstr(p + 1, "data: ")) {
        const char *end = strstr(p, "\n\n");
        const sl_json *d = end ? J(sl_arena_strndup(&A, p + 6, (size_t)(end - p - 6))) : NULL;
        const char *t = S(d, "type");
        if (strlen(types) + (t ? strlen(t) : 1) + 2 < sizeof types)
            strcat(strcat(types, types[0] ? " " : ""), t ? t : "?");
        *numbered = *numbered && N(d, "sequence_number") == want++;
    }
    return types;
}

/* Anthropic's streaming reference, translated event by event. */
T_TEST(messages_stream_to_events)
{
    static const char *const ev[][2] = {
        {"message_start",
         "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"
         "\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-opus-4-"
         "6\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,"
         "\"output_tokens\":1}}}"},
        {"content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
                                "{\"type\":\"text\",\"text\":\"\"}}"},
        {"ping", "{\"type\":\"ping\"}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                                "\"text_delta\",\"text\":\"Hello\"}}"},
        {"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                                "\"text_delta\",\"text\":\"!\"}}"},
        {"content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}"},
        {"message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
                          "\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}"},
        {"message_stop", "{\"type\":\"message_stop\"}"},
    };
    sl_ir_stream s;
    sl_ir_stream_init(&s, AN, RS, false);
    sl_ir_echo echo = {.id = SL_STR("resp_x_p"), .request = NULL};
    s.echo = &echo;
    sl_buf_reset(&out);
    for (size_t i = 0; i < SL_ARRAY_LEN(ev); i++)
        sl_ir_stream_feed(&s, sl_str_c(ev[i][0]), sl_str_c(ev[i][1]), &out);
    sl_buf_append(&out, "", 1);
    bool numbered;
    T_EQ_STR(types_of(out.p, &numbered),
             "response.created response.in_progress response.output_item.added "
             "response.content_part.added response.output_text.delta response.output_text.delta "
             "response.output_text.done response.content_part.done response.output_item.done "
             "response.completed");
    T_CHECK(numbered);
    T_CHECK(strstr(out.p, "event: response.completed\ndata: ") != NULL);
    sl_str fin = sl_responses_stream_final(&s);
    const sl_json *r = J(sl_arena_strndup(&A, fin.p, fin.len));
    T_EQ_STR(S(r, "id"), "resp_x_p");
    T_EQ_STR(S(r, "output.0.content.0.text"), "Hello!");
    T_EQ_STR(S(r, "output.0.id"), "msg_x_p_0");
    T_EQ_INT(N(r, "usage.input_tokens"), 25);
    T_EQ_INT(N(r, "usage.output_tokens"), 15);
    sl_ir_stream_free(&s);
}

/* A chat stream with a tool call, the chat reference's chunks. */
T_TEST(chat_tool_stream_to_events)
{
    static const char *const ch[] = {
        "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{"
        "\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{"
        "\"index\":0,\"id\":\"call_DdmO9pD3xa9XTPNJ32zg2hcA\",\"type\":\"function\",\"function\":"
        "{\"name\":\"get_current_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}",
        "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{"
        "\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\""
        "location\\\":\"}}]},\"finish_reason\":null}]}",
        "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{"
        "\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\""
        "Boston\\\"}\"}}]},\"finish_reason\":null}]}",
        "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{"
        "\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}",
        "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[],"
        "\"usage\":{\"prompt_tokens\":82,\"completion_tokens\":17,\"total_tokens\":99}}",
        "[DONE]",
    };
    sl_ir_stream s;
    sl_ir_stream_init(&s, OA, RS, false);
    sl_buf_reset(&out);
    for (size_t i = 0; i < SL_ARRAY_LEN(ch); i++)
        sl_ir_stream_feed(&s, SL_STR(""), sl_str_c(ch[i]), &out);
    sl_buf_append(&out, "", 1);
    bool numbered;
    T_EQ_STR(types_of(out.p, &numbered),
             "response.created response.in_progress response.output_item.added "
             "response.function_call_arguments.delta response.function_call_arguments.delta "
             "response.function_call_arguments.done response.output_item.done "
             "response.completed");
    T_CHECK(numbered);
    sl_str fin = sl_responses_stream_final(&s);
    const sl_json *r = J(sl_arena_strndup(&A, fin.p, fin.len));
    T_EQ_STR(S(r, "output.0.type"), "function_call");
    T_EQ_STR(S(r, "output.0.call_id"), "call_DdmO9pD3xa9XTPNJ32zg2hcA");
    T_EQ_STR(S(r, "output.0.arguments"), "{\"location\":\"Boston\"}");
    T_EQ_INT(N(r, "usage.input_tokens"), 82);
    sl_ir_stream_free(&s);
}

T_TEST(native_events_watched_for_usage_and_end)
{
    sl_ir_usage u = {0};
    unsigned have = 0;
    T_EQ_INT(RS->watch_event(SL_STR("response.output_text.delta"),
                             SL_STR("{\"type\":\"response.output_text.delta\",\"delta\":\"x\"}"),
                             &u, &have),
             SL_WATCH_CHUNK);
    char ev[2048];
    snprintf(ev, sizeof ev,
             "{\"type\":\"response.completed\",\"response\":%s,"
             "\"sequence_number\":9}",
             RESP);
    T_EQ_INT(RS->watch_event(SL_STR(""), sl_str_c(ev), &u, &have), SL_WATCH_END);
    T_EQ_INT(have, SL_USAGE_INPUT | SL_USAGE_OUTPUT);
    T_EQ_INT(u.input, 36);
    T_EQ_INT(u.output, 87);
    const sl_json *r = sl_responses_terminal(SL_STR("response.completed"), sl_str_c(ev), &A);
    T_EQ_STR(S(r, "id"), "resp_67ccd2bed1ec8190b14f964abc054267");
    T_CHECK(sl_responses_terminal(SL_STR("response.created"), sl_str_c(ev), &A) == NULL);
}

T_TEST(stored_response_replays_as_events)
{
    sl_buf_reset(&out);
    T_EQ_INT(sl_responses_replay(RESP, strlen(RESP), &out), SL_OK);
    sl_buf_append(&out, "", 1);
    bool numbered;
    T_EQ_STR(types_of(out.p, &numbered),
             "response.created response.in_progress response.output_item.added "
             "response.content_part.added response.output_text.delta response.output_text.done "
             "response.content_part.done response.output_item.done response.output_item.added "
             "response.function_call_arguments.delta response.function_call_arguments.done "
             "response.output_item.done response.completed");
    T_CHECK(numbered);
    const char *last = strstr(out.p, "event: response.completed\ndata: ");
    T_CHECK(last && strstr(last, RESP)); /* the final event carries the stored object verbatim */
    T_CHECK(strstr(out.p, "\"status\":\"in_progress\",") != NULL);
    sl_buf_reset(&out);
    T_EQ_INT(sl_responses_replay("{\"object\":\"chat.completion\"}", 28, &out), SL_EINVAL);
}

T_TEST(records_and_resolution)
{
    const sl_json *req = J("{\"model\":\"m\",\"input\":\"my name is Ada\",\"store\":true}");
    const sl_json *resp = J(RESP);
    sl_buf_reset(&out);
    T_EQ_INT(sl_responses_record(&out, "claude", req, resp, NULL), SL_OK);
    const sl_json *rec = J(sl_arena_strndup(&A, out.p, out.len));
    T_EQ_STR(S(rec, "provider"), "claude");
    T_EQ_STR(S(rec, "response.id"), "resp_67ccd2bed1ec8190b14f964abc054267");
    T_EQ_STR(S(rec, "input.0.content.0.text"), "my name is Ada");
    T_CHECK(S(rec, "input.0.id") != NULL);
    T_CHECK(at(rec, "conversation.0.id") == NULL); /* items sent on carry no made-up ids */
    T_EQ_STR(S(rec, "conversation.1.type"), "message");
    T_EQ_STR(S(rec, "conversation.2.type"), "function_call");
    T_EQ_INT(at(rec, "conversation")->n, 3);
    const sl_json *next = J("{\"model\":\"m\",\"previous_response_id\":\"resp_1\",\"input\":["
                            "{\"type\":\"function_call_output\",\"call_id\":\"call_1\","
                            "\"output\":\"ok\"}],\"temperature\":0.5}");
    sl_buf_reset(&out);
    T_EQ_INT(sl_responses_resolve(&out, next, at(rec, "conversation")), SL_OK);
    const sl_json *r = J(sl_arena_strndup(&A, out.p, out.len));
    T_CHECK(sl_json_get(r, "previous_response_id") == NULL);
    T_EQ_INT(at(r, "input")->n, 4);
    T_EQ_STR(S(r, "input.3.type"), "function_call_output");
    T_EQ_INT(N(r, "temperature"), 0); /* 0.5 as written */
    T_CHECK(at(r, "temperature")->num == 0.5);
    sl_buf_reset(&out);
    sl_responses_input_list(&out, rec, false, 20);
    const sl_json *l = J(sl_arena_strndup(&A, out.p, out.len));
    T_EQ_STR(S(l, "object"), "list");
    T_EQ_INT(at(l, "data")->n, 1);
    T_CHECK(at(l, "has_more")->type == SL_JSON_FALSE);
    char id[96];
    sl_responses_make_id(id, sizeof id, "my provider");
    T_CHECK(strncmp(id, "resp_", 5) == 0 && strlen(id) == 5 + 32 + 1 + 11);
    T_EQ_STR(id + 38, "my-provider");
}

/* Last: what the tests allocated goes back (the leak checker watches). */
T_TEST(teardown)
{
    sl_buf_free(&out);
    sl_arena_free(&A);
}

T_MAIN("dialect_responses", string_input_to_chat, function_call_items_to_messages,
       function_call_items_to_chat, images_and_tool_choice, text_format_json_schema_to_chat,
       untranslatable_parameters_refused, chat_answer_to_response_object,
       messages_answer_with_tool_use, response_object_to_chat, messages_stream_to_events,
       chat_tool_stream_to_events, native_events_watched_for_usage_and_end,
       stored_response_replays_as_events, records_and_resolution, teardown)
