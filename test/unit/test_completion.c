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

T_MAIN("completion", assemble_then_replay, error_chunk_refuses_assembly,
       assembler_is_small_until_used)
