/* fuzz_traceparent.c — the W3C traceparent / tracestate readers (hostile client
 * headers): whatever parses must format back to the same ids, and a request's
 * trace context plus a span carrying the bytes stays within its bounds. */
#include <assert.h>

#include "sluice/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    uint8_t t[16], p[8], f, t2[16], p2[8], f2;
    if (sl_traceparent_parse(s, size, t, p, &f) == SL_OK) {
        char out[SL_TRACEPARENT_LEN + 1];
        sl_traceparent_format(out, t, p, f & 1);
        assert(sl_traceparent_parse(out, SL_TRACEPARENT_LEN, t2, p2, &f2) == SL_OK);
        assert(memcmp(t, t2, 16) == 0 && memcmp(p, p2, 8) == 0 && (f2 & 1) == (f & 1));
    }
    (void)sl_tracestate_valid(s, size);
    static bool ready;
    if (!ready) {
        sl_trace_init(4, "fuzz");
        ready = true;
    }
    sl_trace_on = true;
    sl_trace tr;
    sl_trace_begin(&tr, s, size, 1.0);
    assert(strlen(tr.header) == SL_TRACEPARENT_LEN);
    sl_span sp;
    sl_span_begin(&sp, &tr, NULL, NULL, "fuzz", SL_SPAN_INTERNAL, 1, 2);
    sl_span_str(&sp, "input", ((sl_str){s, size}));
    sl_str parts[3] = {{s, size / 2}, {s, size}, {s + size / 2, size - size / 2}};
    sl_span_strs(&sp, "parts", parts, 3);
    assert(sp.len <= SL_SPAN_MAX);
    sl_span_emit(&sp);
    sl_buf out;
    sl_buf_init(&out, 0);
    size_t n = sl_trace_take(&out);
    sl_trace_done(n, true);
    sl_buf_free(&out);
    return 0;
}
