/* passthrough.h — every other /v1/... route, relayed to one provider
 * (src/stages/passthrough.c).
 *
 * A request on a path sluice does not serve itself (moderations, images,
 * audio, files, batches, vector stores, future routes) goes to the first
 * openai-kind provider with `passthrough: true`, with the client's method,
 * query, content type and body, and the provider's own key instead of the
 * client's; its status, headers (hop-by-hop ones removed, see
 * sl_passthrough_relayable) and body come back. Both bodies stream within
 * bounded memory: the upload goes from the connection's incremental reader
 * through a buffer of at most ~128 KiB (the connection stops reading above
 * SL_PASS_HIGH) into curl's read callback; the answer goes chunk by chunk to
 * the sink, which pauses the upstream while the client is slow. Small JSON
 * answers (<= SL_PASS_SMALL) are buffered, metered from their `usage` and
 * carry x-sluice-cost-usd. Never cached, never retried (the body is gone once
 * sent).
 *
 * The pipeline runs auth and limits for it and prices it (rpm counts, access log,
 * metrics under the route label "/v1/{passthrough}"); the stage
 * sl_stage_passthrough (stages.h) makes the call.
 *
 * Owns: the sl_pass of each pass-through request (in its arena), its call. */
#ifndef SLUICE_PASSTHROUGH_H
#define SLUICE_PASSTHROUGH_H

#include "sluice/req.h"

typedef struct sl_pass sl_pass;

enum {
    SL_PASS_HIGH = 64 * 1024,  /* buffered upload above which the client is not read */
    SL_PASS_SMALL = 64 * 1024, /* answers up to this are buffered (and metered when JSON) */
    SL_PASS_MAX_FORWARD = 8,   /* request headers forwarded (content type, accept, ...) */
};

/* What the server took from the client's head before the body streamed (its
 * header slices do not outlive that). */
typedef struct sl_pass_head {
    const char *lines[SL_PASS_MAX_FORWARD]; /* "Name: value" to forward (arena) */
    int n_lines;
    bool has_body;
    int64_t body_len; /* -1: unknown (chunked) */
} sl_pass_head;

/* The provider pass-through goes to: the first one with passthrough on, -1 none. */
int sl_passthrough_provider(const sl_config *c);

/* Makes r a pass-through request (r->pass): call before the pipeline starts,
 * then hand sl_passthrough_body to the connection's body reader. pause is the
 * connection's sl_conn_body_pause. Holds a reference on r until the body's
 * last piece. */
int sl_passthrough_begin(sl_req *r, const sl_pass_head *h, void (*pause)(sl_req *r, bool pause));
/* The body reader (conn.h's sl_body_fn). */
void sl_passthrough_body(sl_req *r, const char *p, size_t n, bool last, void *ud);

/* Whether a header of the provider's answer goes to the client: false for
 * hop-by-hop headers (RFC 9110 7.6.1, and those a Connection header names,
 * in `connection`), those sluice writes itself, and x-sluice-*. */
bool sl_passthrough_relayable(sl_str name, sl_str connection);

#endif
