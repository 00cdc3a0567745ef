/* fuzz_sse.c — the SSE parser, fed in splits chosen by the input itself, into
 * the assembler of the API the input's size picks (chat, legacy completions,
 * Anthropic messages), whose result is replayed. */
#include "sluice/completion.h"
#include "sluice/sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_event(void *ud, sl_str event, sl_str d)
{
    (void)event;
    sl_asm_chunk(ud, d.p, d.len);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_asm a;
    static const sl_api apis[] = {SL_API_CHAT, SL_API_COMPLETIONS, SL_API_MESSAGES};
    sl_api api = apis[size % 3];
    sl_asm_init_for(&a, api, 1 << 20);
    sl_sse s;
    sl_sse_init(&s, 1 << 16, on_event, &a);
    size_t step = size ? (size_t)data[0] % 17 + 1 : 1;
    for (size_t off = 0; off < size; off += step)
        sl_sse_feed(&s, (const char *)data + off, SL_MIN(step, size - off));
    sl_sse_free(&s);
    sl_buf out;
    sl_buf_init(&out, 0);
    if (sl_asm_result(&a, &out) == SL_OK) {
        sl_buf sse;
        sl_buf_init(&sse, 0);
        sl_replay_sse_for(api, out.p, out.len, true, 4, &sse);
        sl_buf_free(&sse);
    }
    sl_buf_free(&out);
    sl_asm_free(&a);
    return 0;
}
