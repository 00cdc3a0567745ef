/* trace_export.c — the OTLP/HTTP exporter of the span queue; see trace_export.h.
 *
 * One batch at a time: the flush timer (or a full batch) takes the queue's
 * spans as one protobuf body, posts it, and on failure keeps that body for
 * the retries (backoff 250 ms, 500 ms, 1 s), then drops it, counted. */
#include "sluice/trace_export.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

#include "sluice/log.h"
#include "sluice/trace.h"
#include "sluice/upstream.h"

enum { MAX_RETRIES = 3, BACKOFF_MS = 250 };

static struct {
    struct event_base *base;
    struct event *timer;
    char *url;
    char **headers; /* "Name: value" lines, in the config's order */
    size_t n_headers;
    int flush_ms, timeout_ms;
    sl_buf body; /* the batch in flight (kept for its retries) */
    size_t n_spans;
    int attempt;
    sl_call *call;
    bool running;
} ex;

static void arm(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(ex.timer, &tv);
}

static void post(void);

static int next_flush_ms(void)
{
    return sl_trace_pending() >= SL_TRACE_BATCH ? 0 : ex.flush_ms;
}

static void on_done(void *ud, sl_call *c, int rc, const char *detail)
{
    SL_UNUSED(ud);
    int status = rc == SL_OK ? sl_call_status(c) : 0;
    ex.call = NULL;
    if (status >= 200 && status < 300) {
        sl_trace_done(ex.n_spans, true);
        ex.n_spans = 0;
        arm(next_flush_ms()); /* a batch's worth that queued meanwhile goes at once */
        return;
    }
    sl_trace_export_error();
    if (ex.attempt < MAX_RETRIES) {
        arm(BACKOFF_MS << ex.attempt++);
        return;
    }
    sl_log("warn", "tracing: %zu spans dropped: the collector %s", ex.n_spans,
           status   ? "refused them"
           : detail ? detail
                    : "did not answer");
    sl_trace_done(ex.n_spans, false);
    ex.n_spans = 0;
    arm(next_flush_ms());
}

static int on_data(void *ud, sl_call *c, const char *p, size_t n)
{
    SL_UNUSED(ud), SL_UNUSED(c), SL_UNUSED(p), SL_UNUSED(n);
    return 0; /* the ExportTraceServiceResponse: a partial success is still a success */
}

static const sl_call_hooks hooks = {.on_data = on_data, .on_done = on_done};

static struct curl_slist *header_list(void)
{
    struct curl_slist *h = sl_header_list_append(NULL, "Content-Type: application/x-protobuf");
    h = h ? sl_header_list_append(h, "Expect:") : NULL;
    for (size_t i = 0; h && i < ex.n_headers; i++) {
        struct curl_slist *t = sl_header_list_append(h, ex.headers[i]);
        if (!t)
            sl_header_list_free(h);
        h = t;
    }
    return h;
}

/* Sends the batch in ex.body (the first attempt or a retry). */
static void post(void)
{
    struct curl_slist *h = header_list();
    sl_call_opts o = {
        .url = ex.url,
        .headers = h,
        .body = ex.body.p,
        .body_len = ex.body.len,
        .connect_ms = ex.timeout_ms,
        .first_byte_ms = ex.timeout_ms,
        .total_ms = ex.timeout_ms,
    };
    int err;
    ex.call = h ? sl_call_start(&o, &hooks, NULL, &err) : NULL;
    if (!ex.call) { /* no slot or no memory now: the same batch later */
        sl_trace_export_error();
        arm(ex.flush_ms);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd), SL_UNUSED(what), SL_UNUSED(arg);
    if (ex.call)
        return;
    if (!ex.n_spans) {
        ex.attempt = 0;
        ex.n_spans = sl_trace_take(&ex.body);
        if (!ex.n_spans) {
            arm(ex.flush_ms);
            return;
        }
    }
    post();
}

/* A batch's worth waits: flush now unless an export is out. */
static void on_batch(void)
{
    if (!ex.call && !ex.n_spans)
        event_active(ex.timer, EV_TIMEOUT, 0);
}

int sl_trace_export_init(struct event_base *base, const sl_config *c)
{
    const char *ep = c->tracing.otlp_endpoint;
    if (!ep || !ep[0] || ex.running)
        return SL_OK;
    size_t el = strlen(ep);
    while (el && ep[el - 1] == '/')
        el--;
    ex.url = malloc(el + sizeof "/v1/traces");
    ex.headers = calloc(c->tracing.n_headers + 1, sizeof(char *));
    ex.timer = evtimer_new(base, on_timer, NULL);
    if (!ex.url || !ex.headers || !ex.timer) {
        sl_trace_export_shutdown();
        return SL_ENOMEM;
    }
    memcpy(ex.url, ep, el);
    memcpy(ex.url + el, "/v1/traces", sizeof "/v1/traces");
    for (size_t i = 0; i < c->tracing.n_headers; i++) {
        const char *n = c->tracing.header_names[i], *v = c->tracing.header_values[i];
        size_t len = strlen(n) + strlen(v) + 3;
        if (!(ex.headers[i] = malloc(len))) {
            sl_trace_export_shutdown();
            return SL_ENOMEM;
        }
        snprintf(ex.headers[i], len, "%s: %s", n, v);
        ex.n_headers++;
    }
    ex.base = base;
    ex.flush_ms = c->tracing.flush_ms;
    ex.timeout_ms = c->tracing.timeout_ms;
    sl_buf_init(&ex.body, 0);
    sl_trace_init(c->tracing.max_queue_spans, c->tracing.service_name);
    sl_trace_on_batch(on_batch);
    sl_trace_redis_slow_us = (uint64_t)c->tracing.redis_slow_ms * 1000u;
    sl_trace_on = true;
    ex.running = true;
    arm(ex.flush_ms);
    return SL_OK;
}

bool sl_trace_export_flushing(void)
{
    if (!ex.running)
        return false;
    if (ex.call)
        return true; /* its on_done arms the next batch at once when spans wait */
    if (!ex.n_spans && !sl_trace_pending())
        return false;
    if (!ex.n_spans || ex.attempt == 0) /* not waiting out a retry's backoff */
        event_active(ex.timer, EV_TIMEOUT, 0);
    return true;
}

void sl_trace_export_shutdown(void)
{
    if (ex.call)
        sl_call_cancel(ex.call);
    ex.call = NULL;
    if (ex.timer)
        event_free(ex.timer);
    for (size_t i = 0; i < ex.n_headers; i++)
        free(ex.headers[i]);
    free(ex.headers);
    free(ex.url);
    sl_buf_free(&ex.body);
    sl_trace_fini();
    sl_trace_on = false;
    memset(&ex, 0, sizeof ex);
}
