/* upstream.h — HTTP calls to providers on the event loop: sluice's own HTTP/1.1
 * client for plain-http upstreams, libcurl multi for https and proxies
 * (the split: src/upstream/call.c, upstream_transport.h).
 *
 * Owns: every sl_call until it is finished or cancelled, and below it each
 * transport's own (the native client's connection pools; curl's multi
 * handle, socket events and easy handles). Knows nothing of requests or
 * providers: the proxy stage adapts.
 *
 * Callback rules: on_status and on_data run inside the transport — they must
 * not start or cancel calls synchronously (sl_call_cancel is safe: it defers).
 * on_done runs from the loop, exactly once per call that was not cancelled;
 * after sl_call_cancel() returns no hook of that call runs again. */
#ifndef SLUICE_UPSTREAM_H
#define SLUICE_UPSTREAM_H

#include "sluice/util.h"

struct event_base;
struct curl_slist;

typedef struct sl_call sl_call;

typedef struct sl_call_hooks {
    /* the response head is complete: status and the headers below are known (optional) */
    void (*on_status)(void *ud, sl_call *c, int status);
    /* a piece of the body; return 0 to go on, SL_CALL_PAUSE to be offered the
     * same bytes again after sl_call_resume() (the consumer is full: the
     * transfer pauses, no idle timeout runs), anything else aborts it */
    int (*on_data)(void *ud, sl_call *c, const char *p, size_t n);
    /* finished: rc 0 (complete), SL_ETIMEDOUT, SL_EIO (connect or transfer error),
     * SL_ETOOBIG, SL_ENOMEM (sluice's own shortage: no descriptor, memory or
     * local port; says nothing about the provider); detail says why (static
     * string or the curl error text) */
    void (*on_done)(void *ud, sl_call *c, int rc, const char *detail);
    /* optional: each header line of the final answer (status >= 200), before
     * on_status; name and value trimmed, valid during the call only */
    void (*on_header)(void *ud, sl_call *c, sl_str name, sl_str value);
    /* a streamed upload (opts.upload): copy up to cap bytes of the body to p
     * and set *n (0: the body is complete); return 0, SL_CALL_PAUSE when
     * nothing is there yet (the upload pauses, no timeout runs, until
     * sl_call_resume_upload()), anything else aborts the transfer */
    int (*on_read)(void *ud, sl_call *c, char *p, size_t cap, size_t *n);
} sl_call_hooks;

typedef struct sl_call_opts {
    const char *url;            /* the whole URL, or its base when url_path is set */
    const char *url_path;       /* url + url_path, parsed once and kept (a provider's routes) */
    const char *method;         /* NULL: POST when body, else GET; HEAD asks for no body */
    struct curl_slist *headers; /* owned by the call from sl_call_start on */
    /* A header list that does not vary from call to call (from
     * sl_upstream_headers: borrowed, kept by upstream), used instead of
     * `headers` (leave that NULL); extra_header is one line that does vary
     * (copied, at most 127 bytes), sent in front of either. */
    const struct curl_slist *fixed_headers;
    const char *extra_header;
    /* "traceparent: ..." and "tracestate: ..." lines (NULL: none), borrowed
     * like body: the trace context the provider continues (trace.h) */
    const char *traceparent;
    const char *tracestate;
    const char *body; /* borrowed until on_done / cancel */
    size_t body_len;
    int connect_ms;
    int first_byte_ms;  /* 0: none */
    int idle_ms;        /* longest silence once bytes flow; 0: none */
    int total_ms;       /* whole transfer; 0: none (streams) */
    int recv_buffer;    /* curl's receive buffer (CURLOPT_BUFFERSIZE); 0: curl's 16 KiB */
    bool upload;        /* the body comes from hooks->on_read (body/body_len unused) */
    int64_t upload_len; /* ... its length, -1: unknown (sent chunked) */
} sl_call_opts;

int sl_upstream_init(struct event_base *base, int max_inflight);
void sl_upstream_shutdown(void);
/* libcurl made ready (loaded, curl_global_init, the multi handle): on the
 * first call that needs it, not at init (loading it maps ~5.5 MiB of
 * libraries, its init ~2 MiB of OpenSSL pages, that an instance whose
 * upstreams the native client serves never uses: curl_api.h).
 * sl_call_start calls it; SL_OK when ready, SL_EIO when libcurl cannot be
 * loaded (why in the log). */
int sl_upstream_need_curl(void);
/* Whether it ran (/health's upstream_ready). */
bool sl_upstream_ready(void);
/* Whether a call to url goes to libcurl (https, a host name, user info, a
 * proxy in the environment) rather than the native client. */
bool sl_upstream_url_needs_curl(const char *url);
/* Loads libcurl now (start, reload, `sluice -t`) when url (NULL: none)
 * needs it, so that a first https call does not wait on the loop for the
 * load. SL_OK (also when nothing needs it), else SL_EIO with why in err. */
int sl_upstream_prepare(const char *url, char *err, size_t errlen);
/* SIGHUP: the new bound applies to calls started from now on (the ones in
 * flight over it finish). */
void sl_upstream_set_max_inflight(int max_inflight);

/* Starts a call. NULL when out of memory (SL_ENOMEM in *err) or over the
 * in-flight bound (SL_EAGAIN in *err). */
sl_call *sl_call_start(const sl_call_opts *o, const sl_call_hooks *h, void *ud, int *err);
void sl_call_cancel(sl_call *c);
/* The header list `build` makes for (owner, key), built on first use and kept
 * until sl_upstream_shutdown (a provider's auth and content type: a reload
 * that changes a key gets a list of its own). NULL when the table is full
 * or build failed: the caller sends owned headers instead. */
/* Header lists are curl's `struct curl_slist` (what CURLOPT_HTTPHEADER
 * reads, and what the native client walks), allocated by sluice so that a
 * list is built without libcurl loaded. Same contract as
 * curl_slist_append: the list with line (copied) at its end, or NULL when
 * out of memory (list is left as it was: the caller still frees it). */
struct curl_slist *sl_header_list_append(struct curl_slist *list, const char *line);
void sl_header_list_free(struct curl_slist *list);
const struct curl_slist *sl_upstream_headers(const void *owner, const char *key,
                                             struct curl_slist *(*build)(const void *owner,
                                                                         const char *key));
#define SL_CALL_PAUSE 2
/* Resumes a call paused by on_data (from the loop, not from a curl callback). */
void sl_call_resume(sl_call *c);
/* Resumes an upload paused by on_read (not from a curl callback). */
void sl_call_resume_upload(sl_call *c);

int sl_call_status(const sl_call *c);
const char *sl_call_retry_after(const sl_call *c); /* header value or NULL */
const char *sl_call_content_type(const sl_call *c);
size_t sl_upstream_inflight(void);
uint64_t sl_upstream_calls_total(void);

#endif
