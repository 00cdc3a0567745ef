/* fuzz_translate.c — every translator on arbitrary JSON, and streams of events. */
#include "sluice/translate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_arena a;
    sl_arena_init(&a, NULL, 0, 16u << 20);
    sl_json *v = NULL;
    sl_json_error e;
    sl_buf out;
    sl_buf_init(&out, 0);
    if (sl_json_parse(&a, (const char *)data, size, NULL, &v, &e) == SL_OK) {
        sl_tr_error te;
        sl_tr_chat_to_messages_req(v, &out, &te);
        sl_tr_messages_to_chat_req(v, &out, &te);
        sl_tr_messages_to_chat_resp(v, &out);
        sl_tr_chat_to_messages_resp(v, &out);
        sl_tr_error_to_openai(v, &out);
        sl_tr_error_to_anthropic(v, &out);
    }
    /* The same bytes as a stream of newline-separated events, both ways. */
    for (int dir = SL_TR_A2O; dir <= SL_TR_O2A; dir++) {
        sl_tr_stream s;
        sl_tr_stream_init(&s, (sl_tr_dir)dir, true);
        const char *p = (const char *)data, *end = p + size;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            sl_tr_stream_event(&s, SL_STR("message_start"), (sl_str){p, n}, &out);
            p += n + 1;
        }
    }
    sl_buf_free(&out);
    sl_arena_free(&a);
    return 0;
}
