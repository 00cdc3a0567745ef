/* sse.c — the SSE line protocol (WHATWG "event stream" interpretation). */
#include "sluice/sse.h"

void sl_sse_init(sl_sse *s, size_t max, sl_sse_cb cb, void *ud)
{
    s->max = max ? max : (1u << 20);
    sl_buf_init(&s->line, s->max);
    sl_buf_init(&s->data, s->max);
    sl_buf_init(&s->event, 256);
    s->has_data = false;
    s->slice_on = false;
    s->last_cr = false;
    s->cb = cb;
    s->ud = ud;
}

/* The data line still in the input goes into the buffer: the input is
 * about to be gone (end of a feed), or a second data line follows. */
static int keep_slice(sl_sse *s)
{
    if (!s->slice_on)
        return 0;
    s->slice_on = false;
    return sl_buf_append(&s->data, s->slice.p, s->slice.len) ? SL_ETOOBIG : 0;
}

static int dispatch(sl_sse *s)
{
    int rc = 0;
    if (s->has_data)
        rc = s->cb(s->ud, sl_buf_str(&s->event), s->slice_on ? s->slice : sl_buf_str(&s->data));
    sl_buf_reset(&s->data);
    sl_buf_reset(&s->event);
    s->has_data = false;
    s->slice_on = false;
    return rc;
}

/* One line; in_input: p points into the caller's input (valid for this feed). */
static int field(sl_sse *s, const char *p, size_t n, bool in_input)
{
    if (n == 0)
        return dispatch(s);
    if (p[0] == ':')
        return 0; /* comment */
    const char *colon = memchr(p, ':', n);
    size_t name_len = colon ? (size_t)(colon - p) : n;
    const char *v = colon ? colon + 1 : p + n;
    size_t vlen = (size_t)(p + n - v);
    if (vlen && *v == ' ')
        v++, vlen--;
    if (name_len == 4 && memcmp(p, "data", 4) == 0) {
        if (!s->has_data && in_input && vlen <= s->max) {
            s->slice = (sl_str){v, vlen};
            s->slice_on = s->has_data = true;
            return 0;
        }
        if (keep_slice(s) || (s->has_data && sl_buf_append(&s->data, "\n", 1)))
            return SL_ETOOBIG;
        s->has_data = true;
        return sl_buf_append(&s->data, v, vlen) ? SL_ETOOBIG : 0;
    }
    if (name_len == 5 && memcmp(p, "event", 5) == 0) {
        sl_buf_reset(&s->event);
        return sl_buf_append(&s->event, v, vlen) ? SL_ETOOBIG : 0;
    }
    return 0; /* id, retry, unknown: ignored */
}

static int feed(sl_sse *s, const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end) {
        if (s->last_cr && *p == '\n') {
            s->last_cr = false;
            p++;
            continue;
        }
        s->last_cr = false;
        const char *nl = p;
        while (nl < end && *nl != '\n' && *nl != '\r')
            nl++;
        if (nl == end) { /* partial line: keep it */
            return sl_buf_append(&s->line, p, (size_t)(end - p)) ? SL_ETOOBIG : 0;
        }
        int rc;
        if (s->line.len) {
            if (sl_buf_append(&s->line, p, (size_t)(nl - p)))
                return SL_ETOOBIG;
            rc = field(s, s->line.p, s->line.len, false);
            sl_buf_reset(&s->line);
        } else {
            rc = field(s, p, (size_t)(nl - p), true); /* whole line in the input: no copy */
        }
        if (rc)
            return rc;
        s->last_cr = *nl == '\r';
        p = nl + 1;
    }
    return 0;
}

int sl_sse_feed(sl_sse *s, const char *p, size_t n)
{
    int rc = feed(s, p, n);
    int kept = keep_slice(s); /* an event not complete yet: its data line outlives the input */
    return rc ? rc : kept;
}

bool sl_sse_clean_end(const sl_sse *s)
{
    return s->line.len == 0 && !s->has_data;
}

void sl_sse_free(sl_sse *s)
{
    sl_buf_free(&s->line);
    sl_buf_free(&s->data);
    sl_buf_free(&s->event);
}
