/* test_message_sse.c — Anthropic message streams <-> message objects, with the
 * stream of Anthropic's extended-thinking guide (a thinking block that opens
 * without its signature, then a text block) and of its tool-use guide. */
#include "sluice/completion.h"
#include "sluice/message_sse.h"
#include "sluice/sse.h"
#include "t.h"

static const char *const THINKING_STREAM[] = {
    "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_01Think\",\"type\":\"message\","
    "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,"
    "\"stop_sequence\":null,\"usage\":{\"input_tokens\":42,\"cache_creation_input_tokens\":0,"
    "\"cache_read_input_tokens\":0,\"output_tokens\":1}}}",
    "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\","
    "\"thinking\":\"\"}}",
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
    "\"thinking\":\"Let me solve this step by step:\\n\\n1. First break down 27 * 453\"}}",
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
    "\"thinking\":\"\\n2. 453 = 400 + 50 + 3 \\u00e9\"}}",
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\","
    "\"signature\":\"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds+/=\"}}",
    "{\"type\":\"content_block_stop\",\"index\":0}",
    "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"redacted_"
    "thinking\","
    "\"data\":\"EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP\"}}",
    "{\"type\":\"content_block_stop\",\"index\":1}",
    "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}",
    "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"27 * 453 = 12,231\"}}",
    "{\"type\":\"content_block_stop\",\"index\":2}",
    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},"
    "\"usage\":{\"output_tokens\":120}}",
    "{\"type\":\"message_stop\"}",
};

static const char *const THINKING_MESSAGE =
    "{\"id\":\"msg_01Think\",\"type\":\"message\",\"role\":\"assistant\",\"content\":["
    "{\"type\":\"thinking\",\"thinking\":\"Let me solve this step by step:\\n\\n1. First break "
    "down 27 * 453\\n2. 453 = 400 + 50 + 3 \xc3\xa9\","
    "\"signature\":\"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds+/=\"},"
    "{\"type\":\"redacted_thinking\","
    "\"data\":\"EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP\"},"
    "{\"type\":\"text\",\"text\":\"27 * 453 = 12,231\"}],"
    "\"model\":\"claude-sonnet-4-5\",\"stop_reason\":\"end_turn\",\"stop_sequence\":null,"
    "\"usage\":{\"input_tokens\":42,\"cache_creation_input_tokens\":0,"
    "\"cache_read_input_tokens\":0,\"output_tokens\":120}}";

static void assemble(sl_buf *out, const char *const *events, size_t n)
{
    sl_asm a;
    sl_asm_init_for(&a, SL_API_MESSAGES, 1 << 20);
    for (size_t i = 0; i < n; i++)
        sl_asm_chunk(&a, events[i], strlen(events[i]));
    T_EQ_INT(sl_asm_result(&a, out), SL_OK);
    sl_asm_free(&a);
}

T_TEST(thinking_stream_assembles_byte_exact)
{
    sl_buf out;
    sl_buf_init(&out, 0);
    assemble(&out, THINKING_STREAM, SL_ARRAY_LEN(THINKING_STREAM));
    T_EQ_STR(out.p, THINKING_MESSAGE);
    sl_buf_free(&out);
}

/* Replayed events, fed back through the SSE parser into an assembler. */
static int collect(void *ud, sl_str event, sl_str data)
{
    SL_UNUSED(event);
    sl_asm_chunk(ud, data.p, data.len);
    return 0;
}

T_TEST(replay_then_assemble_round_trips)
{
    sl_buf sse, back;
    sl_buf_init(&sse, 0);
    sl_buf_init(&back, 0);
    T_EQ_INT(sl_replay_sse_for(SL_API_MESSAGES, THINKING_MESSAGE, strlen(THINKING_MESSAGE), false,
                               4, &sse),
             SL_OK);
    T_CHECK(strstr(sse.p, "event: message_start\n") == sse.p);
    T_CHECK(strstr(sse.p, "\"type\":\"signature_delta\"") != NULL);
    T_CHECK(strstr(sse.p, "\"content_block\":{\"type\":\"redacted_thinking\",\"data\":") != NULL);
    T_CHECK(strstr(sse.p, "\"output_tokens\":0") != NULL); /* message_start's count */
    sl_asm a;
    sl_asm_init_for(&a, SL_API_MESSAGES, 1 << 20);
    sl_sse p;
    sl_sse_init(&p, 1 << 20, collect, &a);
    sl_sse_feed(&p, sse.p, sse.len);
    sl_sse_free(&p);
    T_EQ_INT(sl_asm_result(&a, &back), SL_OK);
    T_EQ_STR(back.p, THINKING_MESSAGE);
    sl_asm_free(&a);
    sl_buf_free(&sse);
    sl_buf_free(&back);
}

T_TEST(tool_use_stream)
{
    static const char *const ev[] = {
        "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_T\",\"type\":\"message\",\"role\":"
        "\"assistant\",\"content\":[],\"model\":\"claude-3-5-haiku\",\"stop_reason\":null,"
        "\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2}}}",
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\","
        "\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
        "\"partial_json\":\"{\\\"location\\\": \\\"San Fra\"}}",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
        "\"partial_json\":\"ncisco, CA\\\"}\"}}",
        "{\"type\":\"content_block_stop\",\"index\":0}",
        "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":"
        "null},\"usage\":{\"output_tokens\":89}}",
        "{\"type\":\"message_stop\"}",
    };
    sl_buf out;
    sl_buf_init(&out, 0);
    assemble(&out, ev, SL_ARRAY_LEN(ev));
    T_EQ_STR(out.p,
             "{\"id\":\"msg_T\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":"
             "\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\","
             "\"input\":{\"location\": \"San Francisco, CA\"}}],\"model\":\"claude-3-5-haiku\","
             "\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,"
             "\"output_tokens\":89}}");
    sl_buf_free(&out);
}

T_TEST(unrepresentable_streams_fail)
{
    static const char *const cut[] = {THINKING_STREAM[0], THINKING_STREAM[1]}; /* no stop */
    sl_asm a;
    sl_buf out;
    sl_buf_init(&out, 0);
    sl_asm_init_for(&a, SL_API_MESSAGES, 1 << 20);
    for (size_t i = 0; i < SL_ARRAY_LEN(cut); i++)
        sl_asm_chunk(&a, cut[i], strlen(cut[i]));
    T_EQ_INT(sl_asm_result(&a, &out), SL_EINVAL);
    sl_asm_free(&a);
    static const char *const cites[] = {
        THINKING_STREAM[0],
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
        "\"text\":\"\"}}",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"citations_delta\","
        "\"citation\":{\"type\":\"char_location\"}}}",
        THINKING_STREAM[11], THINKING_STREAM[12]};
    sl_asm_init_for(&a, SL_API_MESSAGES, 1 << 20);
    for (size_t i = 0; i < SL_ARRAY_LEN(cites); i++)
        sl_asm_chunk(&a, cites[i], strlen(cites[i]));
    T_EQ_INT(sl_asm_result(&a, &out), SL_EINVAL);
    T_EQ_INT(out.len, 0);
    sl_asm_free(&a);
    sl_buf_free(&out);
}

T_MAIN("message_sse", thinking_stream_assembles_byte_exact, replay_then_assemble_round_trips,
       tool_use_stream, unrepresentable_streams_fail)
