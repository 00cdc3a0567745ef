/* conn.h — every client connection, from accept to close (server/conn.c).
 *
 * evhttp 2.1 hides its connections: nothing tells us when one opens, nothing
 * bounds how many there are, its timeout is per read (a client trickling one
 * byte a second renews it forever), its own refusals (400, 413) reach no
 * callback, and an accept() failing with EMFILE makes its listener spin. This
 * module adds what a gateway needs, through public libevent API only:
 *   - a count of open connections; over server.max_connections the newcomer
 *     is answered 503 (with a JSON error and an access-log line) and closed;
 *   - a deadline per connection: a whole request must arrive within
 *     server.header_timeout_s of accept (of the previous answer, plus
 *     server.idle_timeout_s, on a kept-alive connection), else 408 and close;
 *   - an access-log line for every refusal evhttp writes on its own;
 *   - a request head with NUL, a bare CR or a bare LF gets 400 (evhttp would
 *     take a bare LF as a line end and cut a value at NUL);
 *   - accept errors (EMFILE, ENFILE, ENOBUFS, ENOMEM) pause the listener for
 *     100 ms instead of spinning;
 *   - the close of a connection that carries a request reaches the server
 *     (the client left: abort what we were doing for it).
 *
 * Owns: one small record per open connection, indexed by socket. */
#ifndef SLUICE_CONN_H
#define SLUICE_CONN_H

#include "sluice/req.h"

struct event_base;
struct evhttp;
struct evhttp_connection;
struct evconnlistener;

/* Called when the client of r hangs up before r's answer ended. */
typedef void (*sl_conn_gone_fn)(sl_req *r);

int sl_conn_setup(struct event_base *base, struct evhttp *http, sl_conn_gone_fn gone);
/* The listener whose accept errors pause it (NULL once drain freed it). */
void sl_conn_set_listener(struct evconnlistener *l);
/* The request evhttp delivered on evcon starts being answered / has been
 * answered (call after the last byte was handed to evhttp). */
void sl_conn_request_begin(struct evhttp_connection *evcon, sl_req *r);
void sl_conn_request_end(struct evhttp_connection *evcon);
size_t sl_conn_open_count(void);
/* After evhttp_free (which closes every connection). */
void sl_conn_shutdown(void);

#endif
