/* passthrough.c — stage: every other /v1/... route, relayed (see passthrough.h).
 *
 *   client body ─► conn reader ─► sl_passthrough_body ─► upload buffer ─► read hook ─► curl
 *                  (paused above SL_PASS_HIGH, resumed below SL_PASS_LOW as curl drains it)
 *   client ◄─ sink ◄─ hook_data (small: body_out; else chunk by chunk, paused
 *                                while the sink is congested) ◄─ curl ◄─ provider
 *
 * The upload buffer is one block of the request's arena, compacted as it is
 * read; it holds what the connection handed over after its last pause, at
 * most SL_PASS_HIGH plus one read buffer. Nothing is retried: the body has
 * gone upstream once. A provider that cannot be reached is a 502 (504 on a
 * timeout) in OpenAI's shape; an answer that breaks off after its head ends
 * without its last chunk (r->truncated), so the client sees it broke. */
#include "sluice/passthrough.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "sluice/dialects.h"
#include "sluice/json.h"
#include "sluice/stages.h"
#include "sluice/trace.h"
#include "sluice/upstream.h"

enum { UP_CAP = 128 * 1024, SL_PASS_LOW = 16 * 1024 };

struct sl_pass {
    sl_req *r;
    void (*pause_body)(sl_req *r, bool pause);
    const sl_pass_head *head;
    char *ub; /* upload buffer: [uoff, uoff + ulen) waits for curl */
    size_t ucap, uoff, ulen;
    bool body_done;   /* the last piece arrived */
    bool body_broken; /* ... and it said the body broke off */
    bool body_paused; /* the connection is not read */
    bool body_ref;    /* the reference held until the last piece */
    sl_call *call;
    bool streaming;   /* the answer goes chunk by chunk (head sent) */
    int64_t resp_len; /* the provider's Content-Length, -1 none */
    sl_buf hlines;    /* the provider's header lines as they came */
    sl_str connection;
};

/* ---- which provider, which headers ---------------------------------------- */

int sl_passthrough_provider(const sl_config *c)
{
    for (size_t i = 0; i < c->n_providers; i++) {
        if (c->providers[i].kind == SL_PROVIDER_OPENAI && c->providers[i].passthrough)
            return (int)i;
    }
    return -1;
}

/* Whether name is one of the comma-separated tokens of list. */
static bool in_list(sl_str name, sl_str list)
{
    size_t i = 0;
    while (i < list.len) {
        while (i < list.len && (list.p[i] == ',' || list.p[i] == ' ' || list.p[i] == '\t'))
            i++;
        size_t s = i;
        while (i < list.len && list.p[i] != ',' && list.p[i] != ' ' && list.p[i] != '\t')
            i++;
        if (i > s && i - s == name.len && strncasecmp(list.p + s, name.p, name.len) == 0)
            return true;
    }
    return false;
}

bool sl_passthrough_relayable(sl_str name, sl_str connection)
{
    static const char *const drop[] = {
        /* hop-by-hop (RFC 9110 7.6.1, and the old ones proxies still send) */
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
        "te", "trailer", "trailers", "transfer-encoding", "upgrade",
        /* what sluice writes itself */
        "content-length", "content-type", "date", "x-request-id"};
    for (size_t i = 0; i < SL_ARRAY_LEN(drop); i++) {
        if (name.len == strlen(drop[i]) && strncasecmp(name.p, drop[i], name.len) == 0)
            return false;
    }
    if (name.len >= 9 && strncasecmp(name.p, "x-sluice-", 9) == 0)
        return false;
    return !in_list(name, connection);
}

/* ---- the client's body ------------------------------------------------------- */

static void drop_body_ref(sl_pass *st)
{
    if (!st->body_ref)
        return;
    st->body_ref = false;
    sl_req_release(st->r);
}

/* Room for n more bytes: compact first, grow (a new arena block) only when one
 * delivery was larger than the buffer has left. */
static bool up_room(sl_pass *st, size_t n)
{
    if (st->uoff + st->ulen + n <= st->ucap)
        return true;
    if (st->ulen + n <= st->ucap) {
        memmove(st->ub, st->ub + st->uoff, st->ulen);
        st->uoff = 0;
        return true;
    }
    size_t cap = SL_MAX(st->ucap ? st->ucap * 2 : (size_t)UP_CAP, st->ulen + n);
    char *nb = sl_arena_alloc(&st->r->arena, cap);
    if (!nb)
        return false;
    if (st->ulen)
        memcpy(nb, st->ub + st->uoff, st->ulen);
    st->ub = nb;
    st->ucap = cap;
    st->uoff = 0;
    return true;
}

void sl_passthrough_body(sl_req *r, const char *p, size_t n, bool last, void *ud)
{
    sl_pass *st = ud;
    SL_UNUSED(r);
    if (!p && last) {
        st->body_broken = true;
    } else if (n && !st->body_broken) {
        if (!up_room(st, n)) {
            st->body_broken = true; /* out of memory: the upload cannot go on */
        } else {
            memcpy(st->ub + st->uoff + st->ulen, p, n);
            st->ulen += n;
        }
    }
    if (last)
        st->body_done = true;
    if (!st->body_done && st->ulen >= SL_PASS_HIGH && !st->body_paused) {
        st->body_paused = true;
        st->pause_body(st->r, true);
    }
    if (st->call)
        sl_call_resume_upload(st->call); /* curl may be waiting for exactly this */
    if (last)
        drop_body_ref(st); /* last: r may be gone after it */
}

/* curl asks for the next piece of the upload. */
static int hook_read(void *ud, sl_call *c, char *p, size_t cap, size_t *n)
{
    SL_UNUSED(c);
    sl_pass *st = ud;
    *n = 0;
    if (st->body_broken)
        return 1; /* abort: the provider must not take a partial body for a whole one */
    if (!st->ulen)
        return st->body_done ? 0 : SL_CALL_PAUSE;
    size_t k = SL_MIN(cap, st->ulen);
    memcpy(p, st->ub + st->uoff, k);
    st->uoff += k;
    st->ulen -= k;
    if (!st->ulen)
        st->uoff = 0;
    *n = k;
    if (st->body_paused && st->ulen <= SL_PASS_LOW) {
        st->body_paused = false;
        st->pause_body(st->r, false);
    }
    return 0;
}

int sl_passthrough_begin(sl_req *r, const sl_pass_head *h, void (*pause)(sl_req *r, bool pause))
{
    sl_pass *st = sl_arena_calloc(&r->arena, sizeof(*st));
    sl_pass_head *copy = sl_arena_alloc(&r->arena, sizeof(*copy));
    if (!st || !copy)
        return SL_ENOMEM;
    *copy = *h;
    st->r = r;
    st->head = copy;
    st->pause_body = pause;
    st->resp_len = -1;
    st->body_ref = true;
    sl_req_ref(r);
    r->pass = st;
    return SL_OK;
}

/* ---- the provider's answer ------------------------------------------------------ */

static void hook_header(void *ud, sl_call *c, sl_str name, sl_str value)
{
    SL_UNUSED(c);
    sl_pass *st = ud;
    if (name.len == 14 && strncasecmp(name.p, "content-length", 14) == 0) {
        char *end;
        char num[24];
        snprintf(num, sizeof num, "%.*s", (int)SL_MIN(value.len, 20), value.p);
        long long v = strtoll(num, &end, 10);
        st->resp_len = end != num && *end == '\0' && v >= 0 ? v : -1;
    }
    sl_buf_append_str(&st->hlines, name);
    sl_buf_append(&st->hlines, ": ", 2);
    sl_buf_append_str(&st->hlines, value);
    sl_buf_append(&st->hlines, "\r\n", 2);
}

/* The lines of hlines the client gets, copied into r's arena as its head_lines. */
static void relay_headers(sl_pass *st)
{
    sl_req *r = st->r;
    sl_str all = sl_buf_str(&st->hlines), conn = SL_STR_NULL;
    for (int pass = 0; pass < 2; pass++) { /* first the Connection header, then the rest */
        char *out = pass ? sl_arena_alloc(&r->arena, all.len + 1) : NULL;
        size_t used = 0;
        for (size_t i = 0; i < all.len;) {
            const char *ls = all.p + i, *eol = memchr(ls, '\n', all.len - i);
            size_t len = eol ? (size_t)(eol - ls) + 1 : all.len - i;
            const char *colon = memchr(ls, ':', len);
            sl_str name = {ls, colon ? (size_t)(colon - ls) : 0};
            i += len;
            if (!pass && name.len == 10 && strncasecmp(name.p, "connection", 10) == 0)
                conn = (sl_str){colon + 2, len - name.len - 4};
            else if (pass && out && name.len && sl_passthrough_relayable(name, conn))
                memcpy(out + used, ls, len), used += len;
        }
        if (pass && out)
            r->head_lines = (sl_str){out, used};
    }
}

static void hook_status(void *ud, sl_call *c, int status)
{
    sl_pass *st = ud;
    sl_req *r = st->r;
    r->t_first_byte = sl_now_us();
    r->status = status;
    const char *ct = sl_call_content_type(c);
    if (ct)
        r->content_type = sl_arena_strndup(&r->arena, ct, strlen(ct));
    relay_headers(st);
    sl_buf_free(&st->hlines);
    bool sse = ct && strncmp(ct, "text/event-stream", 17) == 0;
    if (sse || st->resp_len > SL_PASS_SMALL) {
        st->streaming = true;
        if (!r->content_type) /* (the sink would call a stream without one SSE) */
            r->content_type = "application/octet-stream";
        sl_pipeline_stream_head(r, status);
    }
}

/* The client drained what a slow read let pile up: the answer goes on. */
static void on_client_drained(sl_req *r)
{
    sl_pass *st = r->pass;
    if (st && st->call)
        sl_call_resume(st->call);
}

static int hook_data(void *ud, sl_call *c, const char *p, size_t n)
{
    SL_UNUSED(c);
    sl_pass *st = ud;
    sl_req *r = st->r;
    if (!st->streaming && r->body_out.len + n <= SL_PASS_SMALL)
        return sl_buf_append(&r->body_out, p, n) == SL_OK ? 0 : 1;
    if (!st->streaming) { /* larger than it looked: stream from here */
        st->streaming = true;
        if (!r->content_type)
            r->content_type = "application/octet-stream";
        sl_pipeline_stream_head(r, r->status);
        sl_pipeline_stream_data(r, r->body_out.p, r->body_out.len);
        sl_buf_reset(&r->body_out);
    }
    const sl_sink_ops *ops = r->sink->ops;
    if (ops->congested && ops->congested(r->sink, r)) { /* backpressure to the provider */
        r->on_drained = on_client_drained;
        return SL_CALL_PAUSE;
    }
    sl_pipeline_stream_data(r, p, n);
    return 0;
}

/* A small answer: secrets scrubbed from errors; a JSON answer with `usage` is metered. */
static void finish_small(sl_pass *st)
{
    sl_req *r = st->r;
    const sl_config *cf = r->conf;
    if (r->status >= 300 && cf->n_secrets && r->body_out.len)
        r->body_out.len = sl_scrub(r->body_out.p, r->body_out.len, cf->secrets, cf->n_secrets);
    if (r->status < 200 || r->status >= 300 || !r->body_out.len || !r->content_type ||
        !strstr(r->content_type, "json"))
        return;
    sl_json *root = NULL;
    sl_json_error jerr;
    if (sl_json_parse(&r->arena, r->body_out.p, r->body_out.len, NULL, &root, &jerr) != SL_OK ||
        root->type != SL_JSON_OBJECT)
        return;
    const sl_json *model = sl_json_get(root, "model");
    if (model && model->type == SL_JSON_STRING)
        r->llm.model = model->str;
    const sl_dialect *d = &sl_dialect_openai;
    sl_ir_usage u = {0};
    unsigned have = d->usage(root, &u);
    if (have & SL_USAGE_INPUT)
        r->prompt_tokens = sl_dialect_prompt_tokens(d, &u);
    if (have & SL_USAGE_OUTPUT)
        r->completion_tokens = u.output;
}

static void hook_done(void *ud, sl_call *c, int rc, const char *detail)
{
    SL_UNUSED(c);
    sl_pass *st = ud;
    sl_req *r = st->r;
    st->call = NULL;
    r->t_upstream_end = sl_now_us();
    if (rc == SL_OK) {
        if (!st->streaming)
            finish_small(st);
        if (r->status >= 400)
            r->error = sl_arena_printf(&r->arena, "provider answered %d", r->status);
    } else if (st->streaming) {
        r->truncated = true;
        r->error = detail ? detail : "the upstream answer broke off";
    } else if (st->body_broken) {
        sl_req_error(r, 400, "invalid_request_error", "incomplete_body", NULL,
                     "the request body broke off before it was complete");
    } else if (rc == SL_ETIMEDOUT) {
        sl_req_error(r, 504, "api_error", "upstream_timeout", NULL,
                     detail ? detail : "the provider did not answer in time");
    } else {
        sl_req_error(r, 502, "api_error", "upstream_unavailable", NULL,
                     sl_arena_printf(&r->arena, "the provider could not be reached: %s",
                                     detail ? detail : "error"));
    }
    sl_req_finish(r);
    sl_req_release(r); /* the call's reference */
}

static const sl_call_hooks pass_hooks = {
    .on_status = hook_status,
    .on_data = hook_data,
    .on_done = hook_done,
    .on_header = hook_header,
    .on_read = hook_read,
};

/* ---- the call ------------------------------------------------------------------ */

static struct curl_slist *build_headers(sl_pass *st, const sl_provider_conf *p)
{
    sl_req *r = st->r;
    struct curl_slist *h = sl_dialect_openai.headers(NULL, p->api_key);
    h = sl_header_list_append(h, "Expect:"); /* no 100-continue round trip on big bodies */
    bool has_ct = false;
    for (int i = 0; i < st->head->n_lines; i++) {
        h = sl_header_list_append(h, st->head->lines[i]);
        has_ct |= strncasecmp(st->head->lines[i], "content-type:", 13) == 0;
    }
    if (!has_ct) /* no made-up form type on a POST */
        h = sl_header_list_append(h, "Content-Type:");
    char idline[96];
    snprintf(idline, sizeof idline, "X-Request-Id: %s", r->id);
    return sl_header_list_append(h, idline);
}

/* base_url (which ends in /v1 for OpenAI) + the client's path after /v1 + its query. */
static const char *upstream_url(sl_req *r, const sl_provider_conf *p)
{
    const char *rest = strncmp(r->path, "/v1/", 4) == 0 ? r->path + 3 : r->path;
    return sl_arena_printf(&r->arena, "%s%s%s%s", p->base_url, rest, r->query ? "?" : "",
                           r->query ? r->query : "");
}

static sl_step refuse_no_provider(sl_req *r)
{
    sl_req_error(r, 404, "invalid_request_error", "unknown_url", NULL,
                 sl_arena_printf(&r->arena, "Unknown request URL: %s %.200s", r->method, r->path));
    return sl_stage_answer(r);
}

static sl_step pass_request(sl_req *r, void *ctx)
{
    SL_UNUSED(ctx);
    sl_pass *st = r->pass;
    if (!st)
        return SL_NEXT; /* an LLM route: the stages after this one serve it */
    const sl_config *cf = r->conf;
    int idx = sl_passthrough_provider(cf);
    if (idx < 0)
        return refuse_no_provider(r); /* a reload took it away meanwhile */
    const sl_provider_conf *p = &cf->providers[idx];
    /* a body, or a method that has one even when empty (POST .../cancel) */
    bool upload =
        st->head->has_body || (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0);
    r->provider_idx = idx;
    r->provider = p->name;
    r->cache = SL_CACHE_BYPASS;
    sl_req_header(r, "x-sluice-provider", p->name);
    sl_call_opts o = {
        .url = upstream_url(r, p),
        .method = r->method,
        .headers = build_headers(st, p),
        .connect_ms = cf->timeouts.connect_ms,
        .first_byte_ms = cf->timeouts.first_byte_ms,
        .idle_ms = cf->timeouts.idle_ms,
        .upload = upload,
        .upload_len = st->head->has_body ? st->head->body_len : 0,
    };
    if (r->trace) { /* the provider continues this request's span */
        o.traceparent = sl_arena_printf(&r->arena, "traceparent: %s", r->trace->header);
        if (r->trace->tracestate)
            o.tracestate = sl_arena_printf(&r->arena, "tracestate: %s", r->trace->tracestate);
    }
    r->t_upstream_start = sl_now_us();
    int err;
    sl_req_ref(r); /* held by the call */
    st->call = sl_call_start(&o, &pass_hooks, st, &err);
    if (st->call)
        return SL_DONE;
    sl_req_release(r);
    sl_req_header(r, "Retry-After", "1");
    sl_req_error(r, 503, "api_error", err == SL_EAGAIN ? "overloaded" : "server_overloaded", NULL,
                 err == SL_EAGAIN ? "too many upstream calls in flight"
                                  : "the gateway is overloaded: could not start the upstream call");
    return sl_stage_answer(r);
}

static void pass_response(sl_req *r, void *ctx)
{
    SL_UNUSED(ctx);
    sl_pass *st = r->pass;
    if (st)
        sl_buf_free(&st->hlines);
}

static void pass_abort(sl_req *r, void *ctx)
{
    SL_UNUSED(ctx);
    sl_pass *st = r->pass;
    if (!st || !st->call)
        return;
    sl_call_cancel(st->call); /* closes the upstream connection */
    st->call = NULL;
    r->t_upstream_end = sl_now_us();
    r->status = 499;
    r->error = "client closed";
    sl_buf_reset(&r->body_out);
    sl_req_finish(r);
    sl_req_release(r); /* the call's reference */
}

const sl_stage sl_stage_passthrough = {
    .name = "passthrough",
    .on_request = pass_request,
    .on_response = pass_response,
    .on_abort = pass_abort,
};
