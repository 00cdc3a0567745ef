/* sink.h — where a response goes.
 *
 * A sink receives one response: head (status, and whether the body is an SSE
 * stream), data chunks, end. Implementations: the HTTP client sink (server.c),
 * the internal sink below (services that call an LLM and want the answer in a
 * callback), and later the flight fan-out of coalescing. Producers (upstream,
 * cache replay, errors) only ever talk to a sink, so every source of answers
 * reaches every kind of consumer the same way.
 *
 * Ownership: a sink is owned by whoever created it; it must stay valid until
 * its end() has been called. */
#ifndef SLUICE_SINK_H
#define SLUICE_SINK_H

#include "sluice/buf.h"

typedef struct sl_sink sl_sink;
struct sl_req;

typedef struct sl_sink_ops {
    /* status and headers (from the request's response header list) */
    void (*head)(sl_sink *s, struct sl_req *r, int status, bool sse);
    void (*data)(sl_sink *s, struct sl_req *r, const char *p, size_t n);
    void (*end)(sl_sink *s, struct sl_req *r);
    /* optional: the consumer is not keeping up (a slow client: its output
     * waits above a high-water mark). A producer that can wait sets
     * r->on_drained and stops; the sink calls it once the output drained. */
    bool (*congested)(sl_sink *s, struct sl_req *r);
} sl_sink_ops;

struct sl_sink {
    const sl_sink_ops *ops;
};

/* The internal sink: collects the whole answer, then calls done(ud, status, body).
 * The body slice is valid only during the callback. */
typedef void (*sl_internal_done)(void *ud, struct sl_req *r, int status, sl_str body);
typedef struct sl_internal_sink {
    sl_sink base;
    sl_buf body;
    int status;
    bool sse;
    sl_internal_done done;
    void *ud;
} sl_internal_sink;

void sl_internal_sink_init(sl_internal_sink *s, size_t max_bytes, sl_internal_done done, void *ud);
void sl_internal_sink_free(sl_internal_sink *s);

#endif
