/* sink.c — the internal sink: collects a whole answer for a callback. */
#include "sluice/sink.h"

#include "sluice/req.h"

static void internal_head(sl_sink *s, sl_req *r, int status, bool sse)
{
    SL_UNUSED(r);
    sl_internal_sink *is = (sl_internal_sink *)s;
    is->status = status;
    is->sse = sse;
}

static void internal_data(sl_sink *s, sl_req *r, const char *p, size_t n)
{
    SL_UNUSED(r);
    sl_internal_sink *is = (sl_internal_sink *)s;
    sl_buf_append(&is->body, p, n); /* a failure is sticky: internal_end checks it */
}

static void internal_end(sl_sink *s, sl_req *r)
{
    sl_internal_sink *is = (sl_internal_sink *)s;
    if (is->body.err)
        is->status = 502; /* over the bound or out of memory: the answer is unusable */
    is->done(is->ud, r, is->status, sl_buf_str(&is->body));
}

static const sl_sink_ops internal_ops = {
    .head = internal_head,
    .data = internal_data,
    .end = internal_end,
};

void sl_internal_sink_init(sl_internal_sink *s, size_t max_bytes, sl_internal_done done, void *ud)
{
    s->base.ops = &internal_ops;
    sl_buf_init(&s->body, max_bytes);
    s->status = 0;
    s->sse = false;
    s->done = done;
    s->ud = ud;
}

void sl_internal_sink_free(sl_internal_sink *s)
{
    sl_buf_free(&s->body);
}
