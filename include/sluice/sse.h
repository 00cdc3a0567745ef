/* sse.h — incremental Server-Sent Events parser for upstream streams.
 *
 * Feed bytes split anywhere; the callback gets each complete event (name,
 * data lines joined by \n). Handles \n, \r\n and \r; ignores comments, id and
 * retry. Owns a tail buffer for a partial event, bounded by max_event_bytes. */
#ifndef SLUICE_SSE_H
#define SLUICE_SSE_H

#include "sluice/buf.h"

/* Nonzero stops parsing; sl_sse_feed returns it. */
typedef int (*sl_sse_cb)(void *ud, sl_str event, sl_str data);

typedef struct sl_sse {
    sl_buf line;  /* the line being assembled */
    sl_buf data;  /* data of the event being assembled */
    sl_str slice; /* ... or, while slice_on, its one data line, still in the input
                   * being fed (the usual case: no copy, no buffer held between events) */
    bool slice_on;
    sl_buf event; /* its event name */
    bool has_data;
    bool last_cr; /* the previous byte was \r: a following \n is not a new line */
    size_t max;
    sl_sse_cb cb;
    void *ud;
} sl_sse;

void sl_sse_init(sl_sse *s, size_t max_event_bytes, sl_sse_cb cb, void *ud);
/* 0, the callback's nonzero value, or SL_ETOOBIG when an event exceeds the bound. */
int sl_sse_feed(sl_sse *s, const char *p, size_t n);
/* End of input: true when nothing partial was pending. */
bool sl_sse_clean_end(const sl_sse *s);
void sl_sse_free(sl_sse *s);

#endif
