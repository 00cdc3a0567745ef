/* proxy.c — stage: the upstream call to the routed provider.
 *
 * Plain answers are collected (bounded by server.max_response_bytes), checked
 * to be JSON, metered from their `usage`, then written in one piece. Streams
 * are forwarded chunk by chunk as they arrive; an SSE parser watches them in
 * passing for `usage` and for the final [DONE], so a stream that stops early
 * is ended with an error event instead of looking complete. The client's
 * original bytes go upstream untouched. */
#include <curl/curl.h>

#include "sluice/json.h"
#include "sluice/sse.h"
#include "sluice/stages.h"
#include "sluice/upstream.h"

typedef struct proxy_state {
    sl_req *r;
    sl_call *call;
    sl_sse sse;
    bool sse_on;
    bool stream_mode;  /* 200 + text/event-stream: forwarding chunks */
    bool done_seen;    /* the upstream sent [DONE] */
} proxy_state;

static const char *upstream_path(sl_api api)
{
    switch (api) {
    case SL_API_CHAT: return "/chat/completions";
    case SL_API_COMPLETIONS: return "/completions";
    case SL_API_EMBEDDINGS: return "/embeddings";
    case SL_API_MESSAGES: return "/messages";
    }
    return "/chat/completions";
}

/* Reads usage.{prompt,completion}_tokens (or Anthropic's input/output_tokens). */
static void take_usage(sl_req *r, const sl_json *root)
{
    const sl_json *u = sl_json_get(root, "usage");
    if (!u || u->type != SL_JSON_OBJECT)
        return;
    static const char *const in_names[] = {"prompt_tokens", "input_tokens"};
    static const char *const out_names[] = {"completion_tokens", "output_tokens"};
    for (size_t i = 0; i < 2; i++) {
        const sl_json *p = sl_json_get(u, in_names[i]);
        const sl_json *c = sl_json_get(u, out_names[i]);
        if (p && p->type == SL_JSON_NUMBER)
            r->prompt_tokens = (long)p->num;
        if (c && c->type == SL_JSON_NUMBER)
            r->completion_tokens = (long)c->num;
    }
}

static int on_sse_event(void *ud, sl_str event, sl_str data)
{
    SL_UNUSED(event);
    proxy_state *st = ud;
    if (data.len == 6 && memcmp(data.p, "[DONE]", 6) == 0) {
        st->done_seen = true;
        return 0;
    }
    /* Only chunks that carry usage are worth a parse. */
    if (!memmem(data.p, data.len, "\"usage\"", 7))
        return 0;
    sl_arena scratch;
    char first[4096];
    sl_arena_init(&scratch, first, sizeof first, 1 << 20);
    sl_json *root = NULL;
    sl_json_error err;
    if (sl_json_parse(&scratch, data.p, data.len, NULL, &root, &err) == SL_OK)
        take_usage(st->r, root);
    sl_arena_free(&scratch);
    return 0;
}

static void hook_status(void *ud, sl_call *c, int status)
{
    proxy_state *st = ud;
    sl_req *r = st->r;
    r->t_first_byte = sl_now_us();
    const char *ct = sl_call_content_type(c);
    if (status == 200 && ct && strncmp(ct, "text/event-stream", 17) == 0) {
        st->stream_mode = true;
        sl_sse_init(&st->sse, r->conf->server.max_response_bytes, on_sse_event, st);
        st->sse_on = true;
        sl_pipeline_stream_head(r, 200);
    }
}

static int hook_data(void *ud, sl_call *c, const char *p, size_t n)
{
    SL_UNUSED(c);
    proxy_state *st = ud;
    sl_req *r = st->r;
    if (st->stream_mode) {
        if (sl_sse_feed(&st->sse, p, n) == SL_ETOOBIG)
            return 1;
        sl_pipeline_stream_data(r, p, n);
        return 0;
    }
    return sl_buf_append(&r->body_out, p, n) == SL_OK ? 0 : 1;
}

/* A complete plain answer: pass it on if it is JSON, else 502. */
static void finish_plain(sl_req *r, int status)
{
    sl_json *root = NULL;
    sl_json_error jerr;
    bool is_json = sl_json_parse(&r->arena, r->body_out.p, r->body_out.len, NULL, &root, &jerr) == SL_OK &&
                   root->type == SL_JSON_OBJECT;
    if (status == 200) {
        if (!is_json) {
            sl_req_error(r, 502, "api_error", "bad_upstream_response", NULL,
                         "the provider returned a response that is not a JSON object");
            return;
        }
        take_usage(r, root);
        r->status = 200;
        return;
    }
    /* Upstream error: keep an OpenAI-shaped body as it is, wrap anything else. */
    const sl_json *e = is_json ? sl_json_get(root, "error") : NULL;
    if (e && e->type == SL_JSON_OBJECT) {
        r->status = status;
        r->error = "upstream error";
        return;
    }
    const char *msg = sl_arena_printf(&r->arena, "the provider answered HTTP %d", status);
    const char *type = status == 429 ? "rate_limit_error" : status >= 500 ? "api_error" : "invalid_request_error";
    sl_req_error(r, status, type, "upstream_error", NULL, msg);
}

static void stream_failed(sl_req *r, int rc, const char *detail)
{
    const char *msg = sl_arena_printf(&r->arena, "the upstream stream ended early: %s",
                                      detail ? detail : "connection closed");
    sl_req_error(r, rc == SL_ETIMEDOUT ? 504 : 502, "api_error",
                 rc == SL_ETIMEDOUT ? "upstream_timeout" : "upstream_stream_error", NULL, msg);
}

static void hook_done(void *ud, sl_call *c, int rc, const char *detail)
{
    proxy_state *st = ud;
    sl_req *r = st->r;
    st->call = NULL;
    r->t_upstream_end = sl_now_us();
    if (st->stream_mode) {
        if (rc == SL_OK && !st->done_seen)
            rc = SL_EIO, detail = "no [DONE] before the connection closed";
        if (rc != SL_OK)
            stream_failed(r, rc, detail);
    } else if (rc == SL_OK) {
        finish_plain(r, sl_call_status(c));
    } else if (rc == SL_ETIMEDOUT) {
        sl_req_error(r, 504, "api_error", "upstream_timeout", NULL,
                     detail ? detail : "the provider did not answer in time");
    } else {
        const char *msg = sl_arena_printf(&r->arena, "the provider could not be reached: %s",
                                          detail ? detail : "error");
        sl_req_error(r, rc == SL_ETOOBIG ? 502 : 502, "api_error", "upstream_unavailable", NULL, msg);
    }
    sl_pipeline_complete(r);
    sl_req_release(r); /* the call's reference */
}

static const sl_call_hooks proxy_hooks = {
    .on_status = hook_status,
    .on_data = hook_data,
    .on_done = hook_done,
};

static struct curl_slist *build_headers(sl_req *r, const sl_provider_conf *p)
{
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip on big bodies */
    if (p->api_key && p->api_key[0]) {
        char line[1024];
        if (p->kind == SL_PROVIDER_ANTHROPIC)
            snprintf(line, sizeof line, "x-api-key: %s", p->api_key);
        else
            snprintf(line, sizeof line, "Authorization: Bearer %s", p->api_key);
        h = curl_slist_append(h, line);
    }
    if (p->kind == SL_PROVIDER_ANTHROPIC)
        h = curl_slist_append(h, "anthropic-version: 2023-06-01");
    char idline[96];
    snprintf(idline, sizeof idline, "X-Request-Id: %s", r->id);
    return curl_slist_append(h, idline);
}

static sl_step proxy_request(sl_req *r)
{
    const sl_provider_conf *p = &r->conf->providers[r->provider_idx];
    proxy_state *st = sl_arena_calloc(&r->arena, sizeof(*st));
    if (!st) {
        sl_req_error(r, 500, "api_error", "out_of_memory", NULL, "out of memory");
        return sl_stage_answer(r);
    }
    st->r = r;
    r->stage_data[SL_SLOT_PROXY] = st;
    r->provider = p->name;
    r->upstream_path = upstream_path(r->llm.api);
    snprintf(r->tried, sizeof r->tried, "%s", p->name);
    sl_req_header(r, "x-sluice-provider", p->name);
    const sl_config *cf = r->conf;
    sl_call_opts o = {
        .url = sl_arena_printf(&r->arena, "%s%s", p->base_url, r->upstream_path),
        .headers = build_headers(r, p),
        .body = r->body.p,
        .body_len = r->body.len,
        .connect_ms = cf->timeouts.connect_ms,
        .first_byte_ms = cf->timeouts.first_byte_ms,
        .idle_ms = r->llm.stream ? cf->timeouts.idle_ms : 0,
        .total_ms = r->llm.stream ? 0 : cf->timeouts.total_ms,
    };
    int err;
    r->t_upstream_start = sl_now_us();
    sl_req_ref(r); /* held by the call until on_done or abort */
    st->call = sl_call_start(&o, &proxy_hooks, st, &err);
    if (!st->call) {
        sl_req_release(r);
        if (err == SL_EAGAIN) {
            sl_req_header(r, "Retry-After", "1");
            sl_req_error(r, 503, "api_error", "overloaded", NULL, "too many upstream calls in flight");
        } else {
            sl_req_error(r, 500, "api_error", "internal_error", NULL, "could not start the upstream call");
        }
        return sl_stage_answer(r);
    }
    return SL_DONE;
}

static void proxy_response(sl_req *r)
{
    proxy_state *st = r->stage_data[SL_SLOT_PROXY];
    if (!st)
        return;
    if (st->sse_on)
        sl_sse_free(&st->sse);
    st->sse_on = false;
}

static void proxy_abort(sl_req *r)
{
    proxy_state *st = r->stage_data[SL_SLOT_PROXY];
    if (!st || !st->call)
        return;
    sl_call_cancel(st->call); /* closes the upstream connection: the provider stops */
    st->call = NULL;
    r->t_upstream_end = sl_now_us();
    r->status = 499;
    r->error = "client closed";
    sl_buf_reset(&r->body_out);
    sl_pipeline_complete(r);
    sl_req_release(r); /* the call's reference */
}

const sl_stage sl_stage_proxy = {
    .name = "proxy",
    .on_request = proxy_request,
    .on_response = proxy_response,
    .on_abort = proxy_abort,
};
