/* conn.h — sluice's own HTTP/1.1 connection layer (server/conn.c).
 *
 * Accepts on the listener it is given, reads each connection into one read
 * buffer, parses with http_parser (the request line and headers stay slices
 * of that buffer), keeps connections alive, answers pipelined requests in
 * order, and writes answers with one writev from the head and body buffers.
 * It is the HTTP client sink: chunked answers for HTTP/1.1 streams,
 * close-delimited ones for HTTP/1.0, no body ever for HEAD; over 256 KiB of
 * output waiting it reports itself congested (sink.h), which pauses the
 * upstream until the client drained it.
 *
 * What it refuses itself, each with an OpenAI-shaped JSON error and an
 * access-log line: 400 (malformed request line or chunk size, NUL / bare CR /
 * bare LF / obs-fold / whitespace before a colon in a head, CL+TE, differing
 * Content-Lengths, missing or doubled Host on HTTP/1.1, a version other than
 * 1.0 and 1.1, two Authorization or Transfer-Encoding headers), 408 (a head misses
 * server.header_timeout_s, a body server.body_timeout_s), 413 (a body over
 * server.max_body_bytes, decided from Content-Length before it is read), 414,
 * 415 (Content-Encoding on a request body), 431, 501 (Transfer-Encoding other
 * than chunked), 503 over server.max_connections. Accept errors (EMFILE...)
 * pause the listener for 100 ms. A client that goes away (read of 0, error,
 * EPOLLRDHUP) while its request is being answered turns into
 * sl_pipeline_abort at once, also with pipelined requests behind it.
 *
 * Owns: every connection, its read buffer and its pending output. A request
 * (sl_req) points into its connection's read buffer (r->body); when the
 * connection closes while the request lives on (an aborted call still
 * running), the buffer passes to the request and is freed with it. */
#ifndef SLUICE_CONN_H
#define SLUICE_CONN_H

#include "sluice/req.h"

struct event_base;
struct evconnlistener;

/* How a request's body is read, decided by the server when the head is in. */
typedef enum {
    SL_BODY_WHOLE,  /* read it whole (bounded), then on_request with r->body */
    SL_BODY_STREAM, /* on_request at once; the handler reads it with sl_conn_body_reader */
    SL_BODY_REFUSE, /* the hook recorded an error on r (sl_req_error): answer it, close */
} sl_body_mode;

typedef struct sl_conn_hooks {
    /* The head passed the layer's checks. expect_continue: the client waits
     * for 100 Continue before it sends the body (refuse here to spare it the
     * upload, e.g. a bad key). */
    sl_body_mode (*on_head)(sl_req *r, bool expect_continue);
    /* Run the request; its answer goes to r->sink (the connection). */
    void (*on_request)(sl_req *r);
    sl_config *(*config)(void); /* the configuration in force for new requests */
} sl_conn_hooks;

int sl_conn_setup(struct event_base *base, const sl_conn_hooks *hooks);
/* Accept on l (its callbacks are set here; NULL once drain freed it). */
void sl_conn_listen(struct evconnlistener *l);
/* Drain: stop accepting, close idle connections; answers on the others carry
 * Connection: close and no new request is read on them. */
void sl_conn_drain(void);
size_t sl_conn_open_count(void);
/* Closes every connection and frees the module. */
void sl_conn_shutdown(void);

/* A request header of r (the first of its name), valid until r's answer ends
 * or its body streaming starts; SL_STR_NULL when absent or detached. */
sl_str sl_conn_header(const sl_req *r, const char *name);

/* Incremental bodies (SL_BODY_STREAM): fn gets each piece of the decoded body
 * as it arrives (valid during the call only), then once with last = true; p is
 * NULL with last when the body broke off (client gone, deadline, bad framing):
 * the handler still completes r. The connection keeps at most one read buffer
 * of it (64 KiB beyond the head). */
typedef void (*sl_body_fn)(sl_req *r, const char *p, size_t n, bool last, void *ud);
void sl_conn_body_reader(sl_req *r, sl_body_fn fn, void *ud);
/* The reader cannot take more now (pause) or can again: while paused the
 * socket is not read (the client's TCP window closes, only its close is
 * watched) and no body deadline runs. An answer that ends before the body
 * did calls fn once more with p NULL and last. Between pieces the deadline is
 * server.body_timeout_s. */
void sl_conn_body_pause(sl_req *r, bool pause);

/* Tests and fuzzing: a connection without a socket. Output goes to out(). */
typedef struct sl_conn sl_conn;
typedef void (*sl_conn_out_fn)(const char *p, size_t n);
sl_conn *sl_conn_test_new(sl_conn_out_fn out);
/* Feeds bytes as if read; false once the connection closed. */
bool sl_conn_test_feed(sl_conn *c, const char *p, size_t n);
/* The client hangs up (frees c). */
void sl_conn_test_eof(sl_conn *c);
size_t sl_conn_test_bufcap(const sl_conn *c);

#endif
