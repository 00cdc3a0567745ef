/* trace_req.c — the tracing observer: a finished request's own spans.
 *
 * Runs once per request after its sink ended (pipeline.c adds it to
 * observers[] only when tracing is on). Writes the SERVER span with the
 * HTTP semantic conventions, and the children the stages timed on r->trace:
 * the cache lookup (hit or miss, layer) and the coalescing wait (led by which
 * request). The upstream attempts' spans come from the proxy stage, which
 * knows each attempt. Never a key, never a body. */
#include <stdio.h>
#include <string.h>

#include "sluice/req.h"
#include "sluice/trace.h"

static bool t_internal(const sl_req *r)
{
    return r->trace->internal;
}

static const char *cache_word(sl_cache_outcome c)
{
    switch (c) {
    case SL_CACHE_HIT: return "hit";
    case SL_CACHE_MISS: return "miss";
    case SL_CACHE_COALESCED: return "coalesced";
    case SL_CACHE_BYPASS: return "bypass";
    case SL_CACHE_SEMANTIC: return "semantic";
    default: return NULL;
    }
}

static void cache_span(const sl_req *r, const sl_trace *t)
{
    sl_span sp;
    sl_span_begin(&sp, t, NULL, NULL, "cache lookup", SL_SPAN_INTERNAL, t->t_cache_start,
                  t->t_cache_end ? t->t_cache_end : t->t_cache_start);
    bool hit = r->cache == SL_CACHE_HIT || r->cache == SL_CACHE_SEMANTIC;
    sl_span_cstr(&sp, "sluice.cache.result", hit ? "hit" : "miss");
    sl_span_cstr(&sp, "sluice.cache.layer",
                 hit && r->cache_detail ? r->cache_detail : t->cache_layer);
    if (r->cache == SL_CACHE_SEMANTIC)
        sl_span_double(&sp, "sluice.cache.similarity", r->similarity);
    sl_span_emit(&sp);
}

static void wait_span(const sl_req *r, const sl_trace *t)
{
    sl_span sp;
    sl_span_begin(&sp, t, NULL, NULL, "coalesce wait", SL_SPAN_INTERNAL, t->t_wait_start,
                  t->t_wait_end ? t->t_wait_end : r->t_end);
    sl_span_cstr(&sp, "sluice.coalesce.led_by", r->led_by);
    sl_span_emit(&sp);
}

static void server_attrs(sl_span *sp, const sl_req *r)
{
    sl_span_cstr(sp, "http.request.method", r->method);
    sl_span_cstr(sp, "url.path", r->path);
    sl_span_cstr(sp, "http.route", r->route);
    sl_span_int(sp, "http.response.status_code", r->status);
    /* the same for every request of the process (listen is read at start) */
    static sl_span fixed;
    if (!fixed.active) {
        fixed.active = true;
        sl_span_cstr(&fixed, "server.address", r->conf->listen_host);
        sl_span_int(&fixed, "server.port", r->conf->listen_port);
        sl_span_cstr(&fixed, "url.scheme", "http");
    }
    sl_span_raw(sp, &fixed);
    sl_span_cstr(sp, "sluice.request_id", r->id);
    sl_span_cstr(sp, "sluice.tenant", r->tenant);
    if (r->llm.model.len)
        sl_span_str(sp, "gen_ai.request.model", r->llm.model);
    sl_span_cstr(sp, "sluice.cache", cache_word(r->cache));
    sl_span_cstr(sp, "sluice.provider", r->provider);
    if (r->provider || r->cost_usd > 0)
        sl_span_double(sp, "sluice.cost_usd", r->cost_usd);
    if (r->retries)
        sl_span_int(sp, "sluice.retries", r->retries);
    if (r->is_llm && (r->prompt_tokens || r->completion_tokens)) {
        sl_span_int(sp, "gen_ai.usage.input_tokens", r->prompt_tokens);
        sl_span_int(sp, "gen_ai.usage.output_tokens", r->completion_tokens);
    }
}

/* "{method} {route}" (HTTP semantic conventions), "sluice {route}" for an
 * internal request; written by hand (once per request: no printf). */
static void span_name(const sl_req *r, char *out, size_t cap)
{
    const char *a = t_internal(r) ? "sluice" : r->method ? r->method : "HTTP";
    const char *b = r->route ? r->route : t_internal(r) ? "internal" : NULL;
    size_t al = SL_MIN(strlen(a), cap - 1), n = al;
    memcpy(out, a, al);
    if (b && n + 1 < cap) {
        out[n++] = ' ';
        size_t bl = SL_MIN(strlen(b), cap - 1 - n);
        memcpy(out + n, b, bl);
        n += bl;
    }
    out[n] = '\0';
}

void sl_trace_request(const sl_req *r)
{
    const sl_trace *t = r->trace;
    if (!t || !t->sampled)
        return;
    if (t->t_cache_start)
        cache_span(r, t);
    if (t->t_wait_start && r->led_by)
        wait_span(r, t);
    char name[160];
    span_name(r, name, sizeof name);
    sl_span sp;
    sl_span_begin(&sp, t, t->span_id, NULL, name, t->internal ? SL_SPAN_INTERNAL : SL_SPAN_SERVER,
                  r->t_start, r->t_end ? r->t_end : sl_now_us());
    server_attrs(&sp, r);
    if (r->status >= 500 || r->status == 499) {
        char code[16];
        snprintf(code, sizeof code, "%d", r->status);
        sl_span_cstr(&sp, "error.type", code);
        sl_span_error(&sp, r->error);
    }
    sl_span_emit(&sp);
}
