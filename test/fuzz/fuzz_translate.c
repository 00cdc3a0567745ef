/* fuzz_translate.c — every dialect's readers and writers on arbitrary JSON, both
 * directions through the IR, and streams of events both ways. */
#include "sluice/dialects.h"
#include "sluice/responses.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const sl_dialect *const dialects[] = {&sl_dialect_openai, &sl_dialect_anthropic,
                                             &sl_dialect_responses};

static void one_pair(const sl_dialect *from, const sl_dialect *to, const sl_json *v, sl_buf *out)
{
    sl_arena a;
    sl_arena_init(&a, NULL, 0, 16u << 20);
    sl_ir_refusal e;
    sl_dialect_request(from, to, v, &a, out, &e);
    sl_dialect_answer(from, to, v, &a, out);
    sl_dialect_error(from, to, v, out);
    sl_ir_echo echo = {.id = SL_STR("resp_f"), .request = v};
    sl_dialect_answer_echo(from, to, v, &a, &echo, out);
    sl_ir_usage u = {0};
    from->usage(v, &u);
    sl_arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_arena a;
    sl_arena_init(&a, NULL, 0, 16u << 20);
    sl_json *v = NULL;
    sl_json_error e;
    sl_buf out;
    sl_buf_init(&out, 0);
    bool json = sl_json_parse(&a, (const char *)data, size, NULL, &v, &e) == SL_OK;
    for (size_t i = 0; i < SL_ARRAY_LEN(dialects); i++) {
        for (size_t j = 0; j < SL_ARRAY_LEN(dialects); j++) {
            if (json)
                one_pair(dialects[i], dialects[j], v, &out);
            if (i == j)
                continue;
            /* The same bytes as a stream of newline-separated events. */
            sl_ir_stream s;
            sl_ir_stream_init(&s, dialects[i], dialects[j], true);
            const char *p = (const char *)data, *end = p + size;
            while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
                sl_ir_usage u = {0};
                unsigned have = 0;
                dialects[i]->watch_event(SL_STR("message_stop"), (sl_str){p, n}, &u, &have);
                sl_ir_stream_feed(&s, SL_STR("message_start"), (sl_str){p, n}, &out);
                p += n + 1;
            }
            sl_ir_stream_free(&s);
            sl_buf_reset(&out);
        }
    }
    sl_responses_replay((const char *)data, size, &out); /* a cache entry's object */
    if (json) {
        sl_buf_reset(&out);
        sl_responses_record(&out, "p", v, sl_json_get(v, "response"), sl_json_get(v, "input"));
        sl_responses_resolve(&out, v, sl_json_get(v, "input"));
        sl_responses_input_list(&out, v, false, 5);
        sl_responses_terminal(SL_STR("response.completed"), (sl_str){(const char *)data, size}, &a);
    }
    sl_buf_free(&out);
    sl_arena_free(&a);
    return 0;
}
