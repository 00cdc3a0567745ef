/* test_dialect.c — translation through the IR: the first translator's recorded pairs. */
#include "sluice/dialects.h"
#include "t.h"

static sl_arena A;
static sl_buf out;

static const sl_json *J(const char *s)
{
    sl_json *v = NULL;
    sl_json_error e;
    sl_json_parse(&A, s, strlen(s), NULL, &v, &e);
    return v;
}

#define OA (&sl_dialect_openai)
#define AN (&sl_dialect_anthropic)

static const char *go(const sl_dialect *from, const sl_dialect *to, const char *in,
                      sl_ir_refusal *e)
{
    sl_buf_reset(&out);
    return sl_dialect_request(from, to, J(in), &A, &out, e) == SL_OK ? out.p : NULL;
}

T_TEST(chat_request_to_messages)
{
    sl_ir_refusal e = {0};
    const char *r =
        go(OA, AN,
           "{\"model\":\"claude\",\"temperature\":1.5,\"stop\":\"X\",\"messages\":["
           "{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"a\"},"
           "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"b\"},"
           "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,QUJD\"}}]},"
           "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"t1\",\"type\":"
           "\"function\","
           "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"}}]},"
           "{\"role\":\"tool\",\"tool_call_id\":\"t1\",\"content\":\"42\"}],"
           "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{"
           "\"type\":\"object\"}}}],"
           "\"tool_choice\":\"required\"}",
           &e);
    T_CHECK(r != NULL);
    if (!r)
        return;
    T_EQ_STR(r,
             "{\"model\":\"claude\",\"max_tokens\":4096,\"messages\":["
             "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":"
             "\"text\",\"text\":\"b\"},"
             "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/"
             "png\",\"data\":\"QUJD\"}}]},"
             "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":"
             "\"f\",\"input\":{\"x\":1}}]},"
             "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\","
             "\"content\":\"42\"}]}],"
             "\"system\":\"S\",\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\"}}],"
             "\"tool_choice\":{\"type\":\"any\"},\"temperature\":1,\"stop_sequences\":[\"X\"]}");
}

T_TEST(unsupported_features_refused)
{
    static const struct {
        const char *body, *param;
    } cases[] = {
        {"{\"model\":\"c\",\"n\":2,\"messages\":[]}", "n"},
        {"{\"model\":\"c\",\"logprobs\":true,\"messages\":[]}", "logprobs"},
        {"{\"model\":\"c\",\"presence_penalty\":1,\"messages\":[]}", "presence_penalty"},
        {"{\"model\":\"c\",\"response_format\":{\"type\":\"json_object\"},\"messages\":[]}",
         "response_format"},
        {"{\"model\":\"c\",\"messages\":[],\"tools\":[{\"type\":\"code_interpreter\"}]}", "tools"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_ir_refusal e = {0};
        T_CHECK(go(OA, AN, cases[i].body, &e) == NULL);
        T_EQ_STR(e.param, cases[i].param);
    }
}

T_TEST(answers_both_ways)
{
    sl_buf_reset(&out);
    sl_dialect_answer(
        AN, OA,
        J("{\"id\":\"msg_1\",\"type\":\"message\",\"model\":\"c\",\"content\":["
          "{\"type\":\"text\",\"text\":\"hi\"},{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\","
          "\"input\":{\"a\":1}}],"
          "\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":5,\"output_tokens\":2}}"),
        &A, &out);
    T_CHECK(strstr(out.p, "\"finish_reason\":\"tool_calls\"") != NULL);
    T_CHECK(strstr(out.p, "\"arguments\":\"{\\\"a\\\":1}\"") != NULL);
    T_CHECK(strstr(out.p, "\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7") !=
            NULL);
    sl_buf_reset(&out);
    sl_dialect_answer(OA, AN,
                      J("{\"id\":\"c1\",\"model\":\"g\",\"choices\":[{\"index\":0,"
                        "\"message\":{\"role\":\"assistant\","
                        "\"content\":\"yo\"},\"finish_reason\":\"length\"}],\"usage\":{"
                        "\"prompt_tokens\":3,\"completion_tokens\":1}}"),
                      &A, &out);
    T_EQ_STR(
        out.p,
        "{\"id\":\"c1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"g\",\"content\":["
        "{\"type\":\"text\",\"text\":\"yo\"}],\"stop_reason\":\"max_tokens\",\"stop_sequence\":"
        "null,"
        "\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}");
}

static void feed(sl_ir_stream *s, const char *ev, const char *data)
{
    sl_ir_stream_feed(s, sl_str_c(ev), sl_str_c(data), &out);
}

T_TEST(streams_both_ways)
{
    sl_ir_stream s;
    sl_buf_reset(&out);
    sl_ir_stream_init(&s, AN, OA, true);
    feed(&s, "message_start",
         "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_"
         "tokens\":4}}}");
    feed(&s, "content_block_start",
         "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
         "\"text\":\"\"}}");
    feed(&s, "content_block_delta",
         "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
         "\"text\":\"Hi\"}}");
    feed(&s, "message_delta",
         "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_"
         "tokens\":1}}");
    feed(&s, "message_stop", "{\"type\":\"message_stop\"}");
    T_CHECK(strstr(out.p, "\"delta\":{\"content\":\"Hi\"}") != NULL);
    T_CHECK(strstr(out.p, "\"finish_reason\":\"stop\"") != NULL);
    T_CHECK(strstr(out.p, "\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1") != NULL);
    T_CHECK(s.finished && strstr(out.p, "data: [DONE]") != NULL);

    sl_buf_reset(&out);
    sl_ir_stream_init(&s, OA, AN, false);
    feed(&s, "",
         "{\"id\":\"c\",\"model\":\"g\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
         "\"assistant\",\"content\":\"\"}}]}");
    feed(&s, "",
         "{\"id\":\"c\",\"model\":\"g\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Yo\"}}]"
         "}");
    feed(&s, "",
         "{\"id\":\"c\",\"model\":\"g\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"
         "\"stop\"}]}");
    feed(&s, "",
         "{\"id\":\"c\",\"model\":\"g\",\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_"
         "tokens\":1}}");
    feed(&s, "", "[DONE]");
    const char *order[] = {"event: message_start", "event: content_block_start",
                           "\"text\":\"Yo\"",      "event: content_block_stop",
                           "\"output_tokens\":1",  "event: message_stop"};
    const char *at = out.p;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *f = strstr(at, order[i]);
        if (!f)
            printf("  missing after previous: %s\n", order[i]);
        T_CHECK(f != NULL);
        if (f)
            at = f;
    }
    sl_buf_free(&out);
    sl_arena_free(&A);
}

T_MAIN("dialect", chat_request_to_messages, unsupported_features_refused, answers_both_ways,
       streams_both_ways)
