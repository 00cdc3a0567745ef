/* upstream_transport.h — the two transports behind upstream.h (src/upstream/ only).
 *
 * src/upstream/call.c owns the split: sl_call_start hands a plain-http URL
 * whose host is an IP literal to the native HTTP/1.1 client (h1_client.c)
 * when no proxy variable is set in the environment, and everything else
 * (https, host names, proxies) to libcurl multi (curl_loop.c). Both return
 * an sl_call whose first member is its sl_transport tag: the dispatcher reads
 * the tag, never anything else. Each transport counts its own calls in
 * flight; the bound applies to their sum. */
#ifndef SLUICE_UPSTREAM_TRANSPORT_H
#define SLUICE_UPSTREAM_TRANSPORT_H

#include "sluice/upstream.h"

typedef enum { SL_TRANSPORT_CURL = 1, SL_TRANSPORT_H1 = 2 } sl_transport;

/* A proxy variable (http_proxy, https_proxy, all_proxy, either case) is set:
 * curl honours it, so curl takes every call (call.c). */
bool sl_upstream_proxy_in_env(void);

/* libcurl multi (curl_loop.c) */
int sl_curl_init(struct event_base *base);
void sl_curl_shutdown(void);
sl_call *sl_curl_start(const sl_call_opts *o, const sl_call_hooks *h, void *ud, int *err);
void sl_curl_cancel(sl_call *c);
void sl_curl_resume(sl_call *c);
void sl_curl_resume_upload(sl_call *c);
int sl_curl_status(const sl_call *c);
const char *sl_curl_retry_after(const sl_call *c);
const char *sl_curl_content_type(const sl_call *c);
size_t sl_curl_inflight(void);
uint64_t sl_curl_calls_total(void);

/* The native HTTP/1.1 client (h1_client.c). Owns a connection pool per
 * (host, port), the connections, and every h1 call until on_done or cancel. */
typedef struct sl_h1_pool sl_h1_pool;
typedef struct sl_h1_call sl_h1_call;
int sl_h1_init(struct event_base *base);
void sl_h1_shutdown(void);
/* The pool for o's URL when the native client takes it (http://, an IP
 * literal host, no user info, a path without spaces or control bytes),
 * else NULL: curl's. */
sl_h1_pool *sl_h1_route(const sl_call_opts *o);
/* The same judgement on a URL alone (no pool made): configuration checks. */
bool sl_h1_takes_url(const char *url);
sl_h1_call *sl_h1_start(sl_h1_pool *p, const sl_call_opts *o, const sl_call_hooks *h, void *ud,
                        int *err);
void sl_h1_cancel(sl_h1_call *c);
void sl_h1_resume(sl_h1_call *c);
void sl_h1_resume_upload(sl_h1_call *c);
int sl_h1_status(const sl_h1_call *c);
const char *sl_h1_retry_after(const sl_h1_call *c);
const char *sl_h1_content_type(const sl_h1_call *c);
size_t sl_h1_inflight(void);
uint64_t sl_h1_calls_total(void);
/* Connections the native client opened since start (tests, /metrics). */
uint64_t sl_h1_connects_total(void);

#endif
