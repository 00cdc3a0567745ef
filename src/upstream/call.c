/* call.c — upstream.h's calls, split between the two transports.
 *
 * Plain-http upstreams at an IP literal go to sluice's own HTTP/1.1 client
 * (h1_client.c: ~4x fewer instructions per call than libcurl, and the
 * request leaves from inside sl_call_start when a pooled connection is
 * there); https, host names (curl resolves asynchronously) and any proxy
 * configured in the environment stay with libcurl multi (curl_loop.c). The
 * in-flight bound and the counters cover both. See upstream_transport.h. */
#include "sluice/upstream.h"

#include <stdio.h>
#include <stdlib.h>

#include "sluice/curl_api.h"
#include "sluice/upstream_transport.h"

static struct {
    size_t max_inflight;
    bool proxy_env; /* a proxy variable is set: curl honours it, so curl takes every call */
} disp;

static sl_transport tag(const sl_call *c)
{
    return *(const sl_transport *)(const void *)c;
}

bool sl_upstream_proxy_in_env(void)
{
    static const char *const vars[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                       "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
    for (size_t i = 0; i < SL_ARRAY_LEN(vars); i++) {
        const char *v = getenv(vars[i]);
        if (v && v[0])
            return true;
    }
    return false;
}

bool sl_upstream_url_needs_curl(const char *url)
{
    return url && (sl_upstream_proxy_in_env() || !sl_h1_takes_url(url));
}

int sl_upstream_prepare(const char *url, char *err, size_t errlen)
{
    if (!sl_upstream_url_needs_curl(url))
        return SL_OK;
    char why[256];
    if (sl_curl_load(why, sizeof why) == SL_OK)
        return SL_OK;
    snprintf(err, errlen, "%s needs libcurl (Debian: libcurl4), which did not load: %s", url, why);
    return SL_EIO;
}

void sl_upstream_set_max_inflight(int max_inflight)
{
    disp.max_inflight = max_inflight > 0 ? (size_t)max_inflight : 4096;
}

int sl_upstream_init(struct event_base *base, int max_inflight)
{
    sl_upstream_set_max_inflight(max_inflight);
    disp.proxy_env = sl_upstream_proxy_in_env();
    int rc = sl_curl_init(base);
    return rc != SL_OK ? rc : sl_h1_init(base);
}

void sl_upstream_shutdown(void)
{
    sl_h1_shutdown();
    sl_curl_shutdown();
}

sl_call *sl_call_start(const sl_call_opts *o, const sl_call_hooks *h, void *ud, int *err)
{
    *err = SL_OK;
    if (sl_upstream_inflight() >= disp.max_inflight) {
        sl_header_list_free(o->headers);
        *err = SL_EAGAIN;
        return NULL;
    }
    sl_h1_pool *p = disp.proxy_env ? NULL : sl_h1_route(o);
    if (p)
        return (sl_call *)(void *)sl_h1_start(p, o, h, ud, err);
    return sl_curl_start(o, h, ud, err);
}

void sl_call_cancel(sl_call *c)
{
    if (!c)
        return;
    if (tag(c) == SL_TRANSPORT_H1)
        sl_h1_cancel((sl_h1_call *)(void *)c);
    else
        sl_curl_cancel(c);
}

void sl_call_resume(sl_call *c)
{
    if (tag(c) == SL_TRANSPORT_H1)
        sl_h1_resume((sl_h1_call *)(void *)c);
    else
        sl_curl_resume(c);
}

void sl_call_resume_upload(sl_call *c)
{
    if (tag(c) == SL_TRANSPORT_H1)
        sl_h1_resume_upload((sl_h1_call *)(void *)c);
    else
        sl_curl_resume_upload(c);
}

int sl_call_status(const sl_call *c)
{
    return tag(c) == SL_TRANSPORT_H1 ? sl_h1_status((const sl_h1_call *)(const void *)c)
                                     : sl_curl_status(c);
}

const char *sl_call_retry_after(const sl_call *c)
{
    return tag(c) == SL_TRANSPORT_H1 ? sl_h1_retry_after((const sl_h1_call *)(const void *)c)
                                     : sl_curl_retry_after(c);
}

const char *sl_call_content_type(const sl_call *c)
{
    return tag(c) == SL_TRANSPORT_H1 ? sl_h1_content_type((const sl_h1_call *)(const void *)c)
                                     : sl_curl_content_type(c);
}

size_t sl_upstream_inflight(void)
{
    return sl_curl_inflight() + sl_h1_inflight();
}

uint64_t sl_upstream_calls_total(void)
{
    return sl_curl_calls_total() + sl_h1_calls_total();
}
