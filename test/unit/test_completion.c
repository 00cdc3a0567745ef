/* test_completion.c — a stream assembled into an object, and an object replayed as a stream. */
#include "sluice/completion.h"
#include "sluice/sse.h"
#include "t.h"

static const char *chunks[] = {
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":"
    "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}",
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":"
    "[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}",
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":"
    "[{\"index\":0,\"delta\":{\"content\":\"lo \\u00e9\"},\"finish_reason\":null}]}",
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":"
    "[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
    "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":"
    "[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}",
};

static sl_buf replay_text;
static int replay_done;

static int on_event(void *ud, sl_str ev, sl_str data)
{
    (void)ud;
    (void)ev;
    if (sl_str_eq_c(data, "[DONE]")) {
        replay_done++;
        return 0;
    }
    const char *c = strstr(data.p, "\"content\":\"");
    if (c && c < data.p + data.len) {
        c += 11;
        const char *e = strchr(c, '"');
        sl_buf_append(&replay_text, c, (size_t)(e - c));
    }
    return 0;
}

T_TEST(assemble_then_replay)
{
    sl_asm a;
    sl_asm_init(&a, false, 0);
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++)
        sl_asm_chunk(&a, chunks[i], strlen(chunks[i]));
    sl_buf out;
    sl_buf_init(&out, 0);
    T_EQ_INT(sl_asm_result(&a, &out), 0);
    T_CHECK(strstr(out.p, "\"content\":\"Hello \xc3\xa9\"") != NULL);
    T_CHECK(strstr(out.p, "\"finish_reason\":\"stop\"") != NULL);
    T_CHECK(strstr(out.p, "\"completion_tokens\":2") != NULL);
    T_CHECK(strstr(out.p, "\"object\":\"chat.completion\"") != NULL);
    sl_asm_free(&a);

    sl_buf sse;
    sl_buf_init(&sse, 0);
    T_EQ_INT(sl_replay_sse(out.p, out.len, true, 3, &sse), 0);
    T_CHECK(strstr(sse.p, "\"role\":\"assistant\"") != NULL);
    T_CHECK(strstr(sse.p, "\"choices\":[],\"usage\"") != NULL);
    sl_sse p;
    sl_buf_init(&replay_text, 0);
    sl_sse_init(&p, 0, on_event, NULL);
    sl_sse_feed(&p, sse.p, sse.len);
    sl_sse_free(&p);
    T_EQ_INT(replay_done, 1);
    T_EQ_STR(replay_text.p, "Hello \xc3\xa9");
    sl_buf_free(&replay_text);
    sl_buf_free(&sse);
    sl_buf_free(&out);
}

T_TEST(error_chunk_refuses_assembly)
{
    sl_asm a;
    sl_asm_init(&a, false, 0);
    sl_asm_chunk(&a, chunks[1], strlen(chunks[1]));
    sl_asm_chunk(&a, "{\"error\":{\"message\":\"x\"}}", 25);
    sl_buf out;
    sl_buf_init(&out, 0);
    T_CHECK(sl_asm_result(&a, &out) != 0);
    sl_asm_free(&a);
    sl_buf_free(&out);
}

/* The canonical form of a JSON text (keys sorted), for comparing objects. */
static char *canon(const char *json, size_t len)
{
    sl_arena a;
    sl_arena_init(&a, NULL, 0, 0);
    sl_json *v;
    sl_json_error e;
    sl_buf b;
    sl_buf_init(&b, 0);
    if (sl_json_parse(&a, json, len, NULL, &v, &e) == SL_OK)
        sl_json_canonical(v, &b, NULL);
    else
        sl_buf_printf(&b, "(bad JSON: %s at %zu: %.*s)", e.reason, e.offset, (int)len, json);
    sl_arena_free(&a);
    return b.p;
}

static int feed(void *ud, sl_str ev, sl_str data)
{
    (void)ev;
    if (!sl_str_eq_c(data, "[DONE]"))
        sl_asm_chunk(ud, data.p, data.len);
    return 0;
}

/* A stored object replayed as SSE, and that stream assembled again. */
static void replay_and_assemble(const char *json, bool text, sl_buf *sse, sl_buf *out)
{
    T_EQ_INT(sl_replay_sse(json, strlen(json), true, 3, sse), 0);
    sl_asm a;
    sl_asm_init(&a, text, 0);
    sl_sse p;
    sl_sse_init(&p, 0, feed, &a);
    sl_sse_feed(&p, sse->p, sse->len);
    sl_sse_free(&p);
    T_EQ_INT(sl_asm_result(&a, out), 0);
    sl_asm_free(&a);
}

/* Issue 17 item 9: every field of every choice survives both forms. */
static const char *full_answer =
    "{\"id\":\"c9\",\"object\":\"chat.completion\",\"created\":9,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi "
    "there\",\"refusal\":null,\"annotations\":[{\"type\":\"url_citation\",\"url_citation\":"
    "{\"url\":\"https://x\",\"start_index\":0,\"end_index\":2}}],\"audio\":{\"id\":\"au_1\","
    "\"data\":\"QUJD\",\"transcript\":\"Hi there\",\"expires_at\":99}},\"logprobs\":{"
    "\"content\":[{\"token\":\"Hi\",\"logprob\":-0.5,\"bytes\":[72,105],\"top_logprobs\":[]},"
    "{\"token\":\" there\",\"logprob\":-0.25,\"bytes\":null,\"top_logprobs\":[]}],"
    "\"refusal\":null},\"finish_reason\":\"stop\",\"content_filter_results\":{\"hate\":"
    "{\"filtered\":false}}},"
    "{\"index\":1,\"message\":{\"role\":\"assistant\",\"content\":null,\"refusal\":\"I "
    "can't\",\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{"
    "\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]},\"logprobs\":null,"
    "\"finish_reason\":\"tool_calls\"}],"
    "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5,"
    "\"prompt_tokens_details\":{\"cached_tokens\":1,\"audio_tokens\":0},"
    "\"completion_tokens_details\":{\"reasoning_tokens\":0}},"
    "\"system_fingerprint\":\"fp_1\",\"service_tier\":\"default\"}";

T_TEST(replay_keeps_every_field)
{
    sl_buf sse, out;
    sl_buf_init(&sse, 0);
    sl_buf_init(&out, 0);
    replay_and_assemble(full_answer, false, &sse, &out);
    T_CHECK(strstr(sse.p, "\"system_fingerprint\":\"fp_1\",\"service_tier\":\"default\"") != NULL);
    char *want = canon(full_answer, strlen(full_answer)), *got = canon(out.p, out.len);
    T_EQ_STR(got, want);
    free(want);
    free(got);
    sl_buf_free(&sse);
    sl_buf_free(&out);
}

T_TEST(stream_assembly_keeps_every_field)
{
    /* as OpenAI streams it: usage null on every chunk, logprobs per piece,
     * audio and refusal in deltas, obfuscation padding (dropped) */
    static const char *const stream[] = {
        "{\"id\":\"c9\",\"object\":\"chat.completion.chunk\",\"created\":9,\"model\":\"m\","
        "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_1\",\"usage\":null,"
        "\"obfuscation\":\"xyz\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
        "\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,"
        "\"finish_reason\":null}]}",
        "{\"id\":\"c9\",\"object\":\"chat.completion.chunk\",\"created\":9,\"model\":\"m\","
        "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_1\",\"usage\":null,"
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\",\"audio\":{\"id\":\"au_1\","
        "\"transcript\":\"Hi\"}},\"logprobs\":{\"content\":[{\"token\":\"Hi\",\"logprob\":-0.5,"
        "\"bytes\":[72,105],\"top_logprobs\":[]}],\"refusal\":null},\"finish_reason\":null}]}",
        "{\"id\":\"c9\",\"object\":\"chat.completion.chunk\",\"created\":9,\"model\":\"m\","
        "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_1\",\"usage\":null,"
        "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there\",\"audio\":{\"id\":"
        "\"au_1\",\"transcript\":\" there\",\"expires_at\":99}},\"logprobs\":{\"content\":[{"
        "\"token\":\" there\",\"logprob\":-0.25,\"bytes\":null,\"top_logprobs\":[]}],"
        "\"refusal\":null},\"finish_reason\":null}]}",
        "{\"id\":\"c9\",\"object\":\"chat.completion.chunk\",\"created\":9,\"model\":\"m\","
        "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_1\",\"usage\":null,"
        "\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}",
        "{\"id\":\"c9\",\"object\":\"chat.completion.chunk\",\"created\":9,\"model\":\"m\","
        "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_1\",\"choices\":[],"
        "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5,"
        "\"prompt_tokens_details\":{\"cached_tokens\":1}}}",
    };
    static const char *want_json =
        "{\"id\":\"c9\",\"object\":\"chat.completion\",\"created\":9,\"model\":\"m\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi "
        "there\",\"refusal\":null,\"audio\":{\"id\":\"au_1\",\"transcript\":\"Hi there\","
        "\"expires_at\":99}},\"logprobs\":{\"content\":[{\"token\":\"Hi\",\"logprob\":-0.5,"
        "\"bytes\":[72,105],\"top_logprobs\":[]},{\"token\":\" there\",\"logprob\":-0.25,"
        "\"bytes\":null,\"top_logprobs\":[]}],\"refusal\":null},\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5,"
        "\"prompt_tokens_details\":{\"cached_tokens\":1}},\"service_tier\":\"default\","
        "\"system_fingerprint\":\"fp_1\"}";
    sl_asm a;
    sl_asm_init(&a, false, 0);
    for (size_t i = 0; i < SL_ARRAY_LEN(stream); i++)
        sl_asm_chunk(&a, stream[i], strlen(stream[i]));
    sl_buf out;
    sl_buf_init(&out, 0);
    T_EQ_INT(sl_asm_result(&a, &out), 0);
    sl_asm_free(&a);
    char *want = canon(want_json, strlen(want_json)), *got = canon(out.p, out.len);
    T_EQ_STR(got, want);
    free(want);
    free(got);
    sl_buf_free(&out);
}

T_TEST(legacy_completion_logprobs_round_trip)
{
    static const char *json =
        "{\"id\":\"t1\",\"object\":\"text_completion\",\"created\":1,\"model\":\"m\","
        "\"choices\":[{\"index\":0,\"text\":\"a b\",\"logprobs\":{\"tokens\":[\"a\",\" b\"],"
        "\"token_logprobs\":[-1,-2],\"top_logprobs\":null,\"text_offset\":[0,1]},"
        "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,"
        "\"total_tokens\":3}}";
    sl_buf sse, out;
    sl_buf_init(&sse, 0);
    sl_buf_init(&out, 0);
    replay_and_assemble(json, true, &sse, &out);
    char *want = canon(json, strlen(json)), *got = canon(out.p, out.len);
    T_EQ_STR(got, want);
    free(want);
    free(got);
    sl_buf_free(&sse);
    sl_buf_free(&out);
}

/* Issue 18: every open stream with the cache on carries an assembler, so it
 * starts small; choices and tool calls get their room when they appear. */
T_TEST(assembler_is_small_until_used)
{
    T_CHECK(sizeof(sl_asm) <= 1024);
    sl_asm a;
    sl_asm_init(&a, false, 0);
    const char *c1 =
        "{\"id\":\"x\",\"model\":\"m\",\"created\":1,\"choices\":[{\"index\":2,\"delta\":"
        "{\"tool_calls\":[{\"index\":1,\"id\":\"t\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}";
    sl_asm_chunk(&a, c1, strlen(c1));
    T_CHECK(a.choices[0] == NULL && a.choices[2] != NULL && a.choices[2]->tools != NULL);
    sl_buf out;
    sl_buf_init(&out, 0);
    T_EQ_INT(sl_asm_result(&a, &out), 0);
    T_CHECK(strstr(out.p, "\"index\":2") && strstr(out.p, "\"name\":\"f\""));
    sl_buf_free(&out);
    sl_asm_free(&a);
}

T_MAIN("completion", assemble_then_replay, error_chunk_refuses_assembly, replay_keeps_every_field,
       stream_assembly_keeps_every_field, legacy_completion_logprobs_round_trip,
       assembler_is_small_until_used)
