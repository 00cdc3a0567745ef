/* proxy.c — stage: the upstream call, with fallback, retries and breakers.
 *
 * An attempt goes to the next provider (in config order, wrapping) that
 * serves the model and whose breaker admits it. A retriable failure before
 * anything reached the client — connect error, first-byte timeout, 408, 429,
 * 5xx — moves on to the next provider after a jittered exponential backoff
 * (a provider's Retry-After wins when it fits in the time budget), up to
 * retries.max extra attempts. Once a stream's head went out, nothing is retried.
 *
 * Plain answers are collected (bounded), checked to be a JSON object and
 * metered from `usage`. Streams are forwarded chunk by chunk; an SSE parser
 * watches them pass for `usage` and `[DONE]`, so a stream that stops early
 * ends with an error event instead of looking complete. The client's original
 * bytes go upstream untouched.
 *
 * The Responses API adds conversation state: a previous_response_id is looked
 * up (resp_state.h) before the first attempt, and each attempt sends the
 * bytes as they came to the provider that made the previous response, or the
 * conversation as items to any other; the final object of every answer is
 * recorded, and the answer's end waits until the record is stored.
 *
 * Reads:  r->llm, r->body, r->provider_idx, r->want_assembled, r->id.
 * Writes: r->provider_idx, r->provider, r->tried, r->retries,
 *         r->upstream_path, r->t_upstream_start/t_first_byte/t_upstream_end,
 *         r->prompt_tokens, r->completion_tokens, r->usage_estimated,
 *         r->assembled, the answer (status, body_out or the stream),
 *         x-sluice-provider, Retry-After.
 * Context: proxy_state, the attempts (call, breaker ticket, retry timer, stream state). */
#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sluice/breaker.h"
#include "sluice/completion.h"
#include "sluice/dialects.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/resp_state.h"
#include "sluice/responses.h"
#include "sluice/sse.h"
#include "sluice/stages.h"
#include "sluice/trace.h"
#include "sluice/upstream.h"

typedef struct proxy_state { /* the stage's context */
    sl_req *r;
    sl_call *call;
    sl_breaker_ticket ticket;
    int cur;       /* provider index of the attempt in flight */
    int next_from; /* where the search for the next provider starts */
    int attempts;
    struct event *backoff; /* pending retry */
    sl_sse sse;
    bool sse_on;
    bool stream_mode; /* 200 + text/event-stream: forwarding chunks */
    bool done_seen;   /* the upstream sent [DONE] */
    bool asm_on;
    bool usage_seen;      /* the provider reported usage */
    long chunks;          /* content chunks: about one token each, for estimates */
    sl_str body;          /* what goes upstream: the client's bytes, or with usage asked */
    sl_str wire;          /* this attempt's body (translated when dialects differ) */
    const sl_dialect *up; /* the provider's dialect (this attempt's) */
    const sl_dialect *client;
    bool translate; /* up != client: bodies and events are translated */
    sl_ir_stream tr;
    sl_ir_usage usage; /* a native stream's usage so far */
    sl_asm *assembler; /* when the cache wants the stream as one object (heap, 13 KiB) */
    /* the Responses API */
    bool responses;          /* the client speaks it */
    int history_rc;          /* previous_response_id looked up: SL_OK, SL_ENOTFOUND, SL_EIO */
    const sl_json *history;  /* ... its conversation items, when found */
    sl_str prev_provider;    /* ... and the provider that made it */
    const sl_json *resolved; /* the request with the history in its input (translations) */
    sl_ir_echo echo;         /* the id a translated answer gets, and the request it echoes */
    char resp_id[96];
    bool state_saved;
    bool state_pending; /* the record's SET is out: the answer's end waits for it */
    bool done_deferred; /* ... and the call finished meanwhile: its completion waits too */
    sl_buf held;        /* the frames held back meanwhile (a stream's last events) */

    /* tracing on: the span of the attempt (arena), else NULL */
    struct attempt_trace *tr_at;
} proxy_state;

/* What the span of the attempt in flight (or the last one) records. */
typedef struct attempt_trace {
    uint8_t span_id[8];
    uint64_t t_start, t_end;
    char traceparent[14 + SL_TRACEPARENT_LEN]; /* "traceparent: ..." sent upstream */
    const char *tracestate;                    /* "tracestate: ..." or NULL */
    const char *breaker;                       /* the breaker's state when admitted */
    int status, rc;
    const char *detail;
    bool pending; /* ended: emitted once its cost is known (proxy_response) */
    sl_str resp_id, resp_model;
    sl_str finish[4];
    size_t n_finish;
    const sl_json *answer; /* a plain answer's parse (capture_content) */
} attempt_trace;

static void attempt(proxy_state *st);
static void answer(proxy_state *st);

/* ---- the attempt's span (tracing on) ---------------------------------------- */

static const char *operation_name(sl_api api)
{
    switch (api) {
    case SL_API_EMBEDDINGS: return "embeddings";
    case SL_API_COMPLETIONS: return "text_completion";
    default: return "chat";
    }
}

/* A fresh span id for the attempt, and the traceparent naming it upstream. */
static void attempt_trace_start(proxy_state *st, const sl_provider_conf *p)
{
    sl_req *r = st->r;
    attempt_trace *a = st->tr_at;
    if (!a && !(a = st->tr_at = sl_arena_calloc(&r->arena, sizeof *a)))
        return;
    *a = (attempt_trace){.t_start = sl_now_us()};
    sl_trace_new_id(a->span_id, 8);
    memcpy(a->traceparent, "traceparent: ", 13);
    sl_traceparent_format(a->traceparent + 13, r->trace->trace_id, a->span_id, r->trace->sampled);
    if (r->trace->tracestate)
        a->tracestate = sl_arena_printf(&r->arena, "tracestate: %s", r->trace->tracestate);
    a->breaker = sl_breaker_state_name(sl_breaker_state_of(p->name));
}

/* The value after `"key":"` in an event's JSON text (a stream's id, model
 * and finish reason: a look at the bytes, not a parse per chunk). */
static sl_str json_text_after(sl_str data, const char *key)
{
    const char *k = memmem(data.p, data.len, key, strlen(key));
    if (!k)
        return SL_STR_NULL;
    const char *v = k + strlen(key), *end = data.p + data.len;
    const char *q = memchr(v, '"', (size_t)(end - v));
    return q && q - v <= 128 ? (sl_str){v, (size_t)(q - v)} : SL_STR_NULL;
}

static void note_finish(attempt_trace *a, sl_arena *ar, sl_str f)
{
    if (!f.p || !f.len || a->n_finish >= SL_ARRAY_LEN(a->finish))
        return;
    for (size_t i = 0; i < a->n_finish; i++) {
        if (sl_str_eq(a->finish[i], f))
            return;
    }
    char *c = sl_arena_strndup(ar, f.p, f.len);
    if (c)
        a->finish[a->n_finish++] = (sl_str){c, f.len};
}

static void note_stream_event(proxy_state *st, sl_str data)
{
    attempt_trace *a = st->tr_at;
    sl_arena *ar = &st->r->arena;
    if (!a->resp_id.len) {
        sl_str id = json_text_after(data, "\"id\":\""), m = json_text_after(data, "\"model\":\"");
        char *ic = id.len ? sl_arena_strndup(ar, id.p, id.len) : NULL;
        char *mc = m.len ? sl_arena_strndup(ar, m.p, m.len) : NULL;
        a->resp_id = ic ? (sl_str){ic, id.len} : SL_STR_NULL;
        a->resp_model = mc ? (sl_str){mc, m.len} : SL_STR_NULL;
    }
    note_finish(a, ar, json_text_after(data, "\"finish_reason\":\""));
    note_finish(a, ar, json_text_after(data, "\"stop_reason\":\""));
}

/* A plain answer's id, model and finish reasons (OpenAI, Anthropic, Responses). */
static void note_plain_answer(proxy_state *st, const sl_json *root)
{
    attempt_trace *a = st->tr_at;
    a->answer = root;
    a->resp_id = sl_ir_str(sl_json_get(root, "id"));
    a->resp_model = sl_ir_str(sl_json_get(root, "model"));
    const sl_json *ch = sl_json_get(root, "choices");
    for (const sl_json *c = ch && ch->type == SL_JSON_ARRAY ? ch->child : NULL; c; c = c->next)
        note_finish(a, &st->r->arena, sl_ir_str(sl_json_get(c, "finish_reason")));
    note_finish(a, &st->r->arena, sl_ir_str(sl_json_get(root, "stop_reason")));
    if (!a->n_finish)
        note_finish(a, &st->r->arena, sl_ir_str(sl_json_get(root, "status")));
}

/* The prompt and the answer, only with tracing.capture_content. */
static void span_content(sl_span *sp, const proxy_state *st)
{
    const sl_req *r = st->r;
    const sl_json *root = r->llm.root;
    const sl_json *in = root ? sl_json_get(root, "messages") : NULL;
    if (!in && root)
        in = sl_json_get(root, "input"); /* Responses, embeddings */
    if (!in && root)
        in = sl_json_get(root, "prompt");
    if (in)
        sl_span_str(sp, "gen_ai.input.messages", in->raw);
    const sl_json *ans = st->tr_at->answer;
    const sl_json *out = ans ? sl_json_get(ans, "choices") : NULL;
    if (!out && ans)
        out = sl_json_get(ans, "content");
    if (!out && ans)
        out = sl_json_get(ans, "output");
    if (out)
        sl_span_str(sp, "gen_ai.output.messages", out->raw);
}

/* Writes the attempt's CLIENT span: GenAI semantic conventions plus sluice's
 * retry number, provider, breaker state, cost and cache outcome. */
static void attempt_span(proxy_state *st, bool final)
{
    sl_req *r = st->r;
    attempt_trace *a = st->tr_at;
    a->pending = false;
    const char *op = operation_name(r->llm.api);
    char name[160];
    snprintf(name, sizeof name, "%s %.*s", op, (int)SL_MIN(r->llm.model.len, 120), r->llm.model.p);
    sl_span sp;
    sl_span_begin(&sp, r->trace, a->span_id, NULL, name, SL_SPAN_CLIENT, a->t_start, a->t_end);
    sl_span_cstr(&sp, "gen_ai.operation.name", op);
    sl_span_cstr(&sp, "gen_ai.provider.name", st->up ? st->up->name : NULL);
    sl_span_str(&sp, "gen_ai.request.model", r->llm.model);
    sl_span_str(&sp, "gen_ai.response.model", a->resp_model);
    sl_span_str(&sp, "gen_ai.response.id", a->resp_id);
    sl_span_strs(&sp, "gen_ai.response.finish_reasons", a->finish, a->n_finish);
    if (final && (r->prompt_tokens || r->completion_tokens)) {
        sl_span_int(&sp, "gen_ai.usage.input_tokens", r->prompt_tokens);
        sl_span_int(&sp, "gen_ai.usage.output_tokens", r->completion_tokens);
    }
    sl_span_cstr(&sp, "sluice.provider", r->conf->providers[st->cur].name);
    sl_span_int(&sp, "sluice.retry", st->attempts - 1);
    sl_span_cstr(&sp, "sluice.breaker.state", a->breaker);
    sl_span_double(&sp, "sluice.cost_usd", final ? r->cost_usd : 0.0);
    sl_span_cstr(&sp, "sluice.cache", r->cache == SL_CACHE_BYPASS ? "bypass" : "miss");
    sl_span_cstr(&sp, "url.full", r->conf->providers[st->cur].base_url); /* no key: headers */
    if (a->status)
        sl_span_int(&sp, "http.response.status_code", a->status);
    if (r->conf->tracing.capture_content)
        span_content(&sp, st);
    if (a->rc != SL_OK || a->status >= 400 || !a->status) {
        sl_span_cstr(&sp, "error.type",
                     a->status >= 400        ? sl_arena_printf(&r->arena, "%d", a->status)
                     : a->rc == SL_ETIMEDOUT ? "timeout"
                                             : "connection_error");
        sl_span_error(&sp, a->detail);
    }
    sl_span_emit(&sp);
}

/* The attempt ended: a retried one is written now, the last one once the
 * answer is priced (proxy_response). */
static void attempt_trace_end(proxy_state *st, int status, int rc, const char *detail)
{
    attempt_trace *a = st->tr_at;
    if (!a || !a->t_start || a->t_end)
        return;
    a->t_end = sl_now_us();
    a->status = status;
    a->rc = rc;
    a->detail = detail;
    a->pending = true;
}

/* ---- the Responses API's state ---------------------------------------------- */

/* The record is stored (or Redis failed to say so): what was held goes out. */
static void on_state_stored(void *ud, int status, const char *rec, size_t len)
{
    SL_UNUSED(rec);
    SL_UNUSED(len);
    proxy_state *st = ud;
    sl_req *r = st->r;
    if (status != SL_OK)
        sl_warn("request %s: the response's state was not confirmed stored", r->id);
    st->state_pending = false;
    if (st->held.len && !r->completed)
        sl_pipeline_stream_data(r, st->held.p, st->held.len);
    sl_buf_free(&st->held);
    if (st->done_deferred) {
        st->done_deferred = false;
        answer(st);
    }
    sl_req_release(r); /* the SET's */
}

/* A response is final: its record goes to the state store before the client
 * sees the end of it (the end waits for the SET's answer), and a streamed one
 * becomes what the cache stores. */
static void response_final(proxy_state *st, const sl_json *resp)
{
    sl_req *r = st->r;
    if (!resp || resp->type != SL_JSON_OBJECT)
        return;
    if (r->want_assembled && r->llm.stream) {
        sl_buf_reset(&r->assembled);
        sl_buf_append_str(&r->assembled, resp->raw);
    }
    sl_str id = sl_ir_str(sl_json_get(resp, "id"));
    if (r->llm.no_store || st->state_saved || !id.len)
        return;
    sl_buf rec;
    sl_buf_init(&rec, 0);
    if (sl_responses_record(&rec, r->provider, r->llm.root, resp, st->history) == SL_OK &&
        sl_resp_state_put(r->tenant ? r->tenant : "default", id, sl_buf_str(&rec),
                          r->conf->responses.store_ttl_s, on_state_stored, st)) {
        st->state_pending = true;
        sl_req_ref(r); /* the SET's callback holds the request */
    }
    sl_buf_free(&rec);
    st->state_saved = true;
}

/* Sends frames now, or holds them while the state's SET is out. */
static void send_or_hold(proxy_state *st, const char *p, size_t n)
{
    if (st->state_pending)
        sl_buf_append(&st->held, p, n);
    else
        sl_pipeline_stream_data(st->r, p, n);
}

static void response_final_text(proxy_state *st, sl_str json)
{
    sl_json *root = NULL;
    sl_json_error err;
    if (json.len && sl_json_parse(&st->r->arena, json.p, json.len, NULL, &root, &err) == SL_OK)
        response_final(st, root);
}

/* The previous response's record: its conversation and provider. */
static void on_history(void *ud, int status, const char *rec, size_t len)
{
    proxy_state *st = ud;
    sl_req *r = st->r;
    st->history_rc = status;
    char *copy = status == SL_OK ? sl_arena_strndup(&r->arena, rec, len) : NULL;
    sl_json *root = NULL;
    sl_json_error err;
    if (copy && sl_json_parse(&r->arena, copy, len, NULL, &root, &err) == SL_OK) {
        st->history = sl_json_get(root, "conversation");
        st->prev_provider = sl_ir_str(sl_json_get(root, "provider"));
    } else if (status == SL_OK) {
        st->history_rc = SL_EIO;
    }
    attempt(st);
}

/* The request with previous_response_id resolved into its input, parsed. */
static const sl_json *resolved_request(proxy_state *st)
{
    sl_req *r = st->r;
    if (st->resolved)
        return st->resolved;
    sl_buf b;
    sl_buf_init(&b, 0);
    sl_responses_resolve(&b, r->llm.root, st->history);
    char *copy = sl_arena_strndup(&r->arena, b.p ? b.p : "", b.len);
    sl_json *root = NULL;
    sl_json_error err;
    if (copy && sl_json_parse(&r->arena, copy, b.len, NULL, &root, &err) == SL_OK)
        st->resolved = root;
    sl_buf_free(&b);
    return st->resolved;
}

/* Which request this attempt sends, when the client continues a conversation:
 * a provider that made the previous response gets the bytes as they came (it
 * holds the state); any other gets the conversation from sluice's store.
 * Returns NULL with the error recorded when the conversation is not known. */
static const sl_json *responses_source(proxy_state *st, const sl_provider_conf *p, bool *resolved)
{
    sl_req *r = st->r;
    *resolved = false;
    if (!r->llm.previous_response_id.len)
        return r->llm.root;
    bool same = st->history_rc != SL_OK || sl_str_eq_c(st->prev_provider, p->name);
    if (!st->translate && same)
        return r->llm.root;
    if (st->history_rc == SL_EIO) {
        sl_req_error(r, 503, "api_error", "state_unavailable", "previous_response_id",
                     "the conversation state store cannot be reached; retry the request");
        return NULL;
    }
    if (st->history_rc != SL_OK) {
        sl_req_error(r, 400, "invalid_request_error", "previous_response_not_found",
                     "previous_response_id",
                     sl_arena_printf(&r->arena, "Previous response with id '%.*s' not found.",
                                     (int)SL_MIN(r->llm.previous_response_id.len, 200),
                                     r->llm.previous_response_id.p));
        return NULL;
    }
    *resolved = true;
    const sl_json *root = resolved_request(st);
    if (!root)
        sl_req_error(r, 500, "api_error", "out_of_memory", NULL, "out of memory");
    return root;
}

/* Meters what a usage reader found, in the provider's own convention (the
 * price of each kind of token is the meter's business). */
static void take_usage(sl_req *r, const sl_dialect *d, const sl_ir_usage *u, unsigned have)
{
    if (have & SL_USAGE_INPUT) {
        r->prompt_tokens = sl_dialect_prompt_tokens(d, u);
        r->cached_tokens = u->cache_read;
        r->cache_write_tokens = u->cache_write;
        r->cache_write_1h_tokens = u->cache_write_1h;
        r->prompt_has_cache = d->prompt_counts_cache;
    }
    if (have & SL_USAGE_OUTPUT) {
        r->completion_tokens = u->output;
        r->reasoning_tokens = u->reasoning;
    }
}

/* ---- stream watching ------------------------------------------------------ */

/* Writes one event to the client, framed as SSE; an event that could not be
 * framed (out of memory) is not sent cut short: the stream fails instead. */
static int forward_event(sl_req *r, sl_str event, sl_str data)
{
    static sl_buf frame; /* reused: no allocation per chunk once warm */
    sl_buf_reset(&frame);
    if (event.len) {
        sl_buf_append_c(&frame, "event: ");
        sl_buf_append_str(&frame, event);
        sl_buf_append_c(&frame, "\n");
    }
    sl_buf_append_c(&frame, "data: ");
    sl_buf_append_str(&frame, data);
    sl_buf_append_c(&frame, "\n\n");
    if (frame.err)
        return frame.err;
    sl_pipeline_stream_data(r, frame.p, frame.len);
    return 0;
}

/* A stream whose dialect differs from the client's: translated event by event. */
static int on_translated_event(proxy_state *st, sl_str event, sl_str data)
{
    sl_req *r = st->r;
    static sl_buf frames;
    sl_buf_reset(&frames);
    st->chunks++;
    sl_ir_stream_feed(&st->tr, event, data, &frames);
    if (st->tr.usage.input || st->tr.usage.output) {
        take_usage(r, st->up, &st->tr.usage, SL_USAGE_INPUT | SL_USAGE_OUTPUT);
        st->usage_seen = true;
    }
    if (st->tr.finished)
        st->done_seen = true;
    if (st->tr.finished && st->responses) /* stored before the client sees the end */
        response_final_text(st, sl_responses_stream_final(&st->tr));
    if (frames.len)
        send_or_hold(st, frames.p, frames.len);
    return 0;
}

/* A native Responses stream's final event (response.completed / .incomplete),
 * parsed once for its usage, the state store and the cache; false for others. */
static bool on_responses_final(proxy_state *st, sl_str event, sl_str data)
{
    sl_req *r = st->r;
    const sl_json *resp = sl_responses_terminal(event, data, &r->arena);
    if (!resp)
        return false;
    sl_ir_usage u = {0};
    take_usage(r, st->up, &u, st->up->usage(resp, &u));
    st->usage_seen = st->usage_seen || r->prompt_tokens || r->completion_tokens;
    st->done_seen = true;
    response_final(st, resp); /* before the client sees the end */
    if (!st->state_pending) {
        forward_event(r, event, data);
        return true;
    }
    sl_buf_append_c(&st->held, "event: ");
    sl_buf_append_str(&st->held, event.len ? event : SL_STR("response.completed"));
    sl_buf_append_c(&st->held, "\ndata: ");
    sl_buf_append_str(&st->held, data);
    sl_buf_append_c(&st->held, "\n\n");
    return true;
}

/* One event: translated, or relayed as it came and watched for usage and its end. */
static int dispatch_event(proxy_state *st, sl_str event, sl_str data)
{
    sl_req *r = st->r;
    if (st->translate)
        return on_translated_event(st, event, data);
    if (st->responses && on_responses_final(st, event, data))
        return 0;
    unsigned have = 0;
    unsigned f = st->up->watch_event(event, data, &st->usage, &have);
    if (f & SL_WATCH_END)
        st->done_seen = true;
    if (st->asm_on && !sl_str_eq_c(data, "[DONE]")) /* message_stop ends a message: kept */
        sl_asm_chunk(st->assembler, data.p, data.len);
    if (f & SL_WATCH_CHUNK)
        st->chunks++;
    take_usage(r, st->up, &st->usage, have);
    if (r->prompt_tokens || r->completion_tokens)
        st->usage_seen = true;
    if ((f & SL_WATCH_USAGE_ONLY) && !r->llm.include_usage)
        return 0; /* we asked for it for metering; the client did not */
    return forward_event(r, event, data);
}

/* ---- secrets in provider answers --------------------------------------------- *
 * A provider may quote the credential it was sent (a 401 whose message echoes
 * the key). Every configured secret (config.h: sl_config.secrets) is replaced
 * by *** in what came back before the client, a translation or the log sees
 * it. Only errors are scanned: a non-2xx plain body, and inside a stream the
 * events that carry an error (an `error` event, or data that opens with
 * {"error"), which a prefix test finds without reading the chunk. Content
 * chunks and 200 answers are the model's text: scanning each chunk would cost
 * a search per secret per chunk on the hottest path, for a provider that
 * would have to put its key in generated text. */

static bool is_error_event(sl_str event, sl_str data)
{
    if (sl_str_eq_c(event, "error"))
        return true;
    size_t i = 0;
    while (i < data.len && (data.p[i] == ' ' || data.p[i] == '\t'))
        i++;
    return data.len - i >= 8 && memcmp(data.p + i, "{\"error\"", 8) == 0;
}

static void scrub_body(sl_req *r)
{
    const sl_config *c = r->conf;
    if (c->n_secrets && r->body_out.len)
        r->body_out.len = sl_scrub(r->body_out.p, r->body_out.len, c->secrets, c->n_secrets);
}

static int on_sse_event(void *ud, sl_str event, sl_str data)
{
    proxy_state *st = ud;
    const sl_config *c = st->r->conf;
    if (st->tr_at)
        note_stream_event(st, data);
    if (!c->n_secrets || !is_error_event(event, data) ||
        !sl_has_secret(data.p, data.len, c->secrets, c->n_secrets))
        return dispatch_event(st, event, data);
    char *copy = malloc(data.len + 1);
    if (!copy)
        return 1; /* abort the transfer rather than pass the secret on */
    memcpy(copy, data.p, data.len);
    copy[data.len] = '\0';
    size_t n = sl_scrub(copy, data.len, c->secrets, c->n_secrets);
    int rc = dispatch_event(st, event, (sl_str){copy, n});
    free(copy);
    return rc;
}

/* For a stream, ask the provider for usage even when the client did not, so
 * streams are metered exactly: the request is re-written with
 * stream_options.include_usage = true (the only change), members copied as
 * their original bytes. */
static sl_str body_with_usage(sl_req *r)
{
    if (!r->llm.stream || r->llm.include_usage || r->llm.api == SL_API_EMBEDDINGS ||
        r->llm.api == SL_API_MESSAGES || r->llm.api == SL_API_RESPONSES ||
        r->llm.api == SL_API_COUNT_TOKENS || !r->llm.root)
        return r->body;
    sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_append_c(&b, "{");
    for (const sl_json *m = r->llm.root->child; m; m = m->next) {
        if (sl_str_eq_c(m->key, "stream_options"))
            continue;
        sl_buf_json_str(&b, m->key.p, m->key.len);
        sl_buf_append_c(&b, ":");
        sl_buf_append_str(&b, m->raw);
        sl_buf_append_c(&b, ",");
    }
    sl_buf_append_c(&b, "\"stream_options\":{\"include_usage\":true}}");
    char *copy = b.err ? NULL : sl_arena_strndup(&r->arena, b.p, b.len);
    sl_str out = copy ? (sl_str){copy, b.len} : r->body; /* unwritten: the client's bytes */
    sl_buf_free(&b);
    return out;
}

/* The prompt's tokens when no provider counted them: about four bytes a
 * token (messages, system, tools), as the limits stage estimates. */
static long prompt_estimate(sl_req *r)
{
    const sl_json *root = r->llm.root, *tools = sl_json_get(root, "tools");
    size_t bytes = r->llm.prompt_bytes + sl_ir_text_of(sl_json_get(root, "system"), &r->arena).len +
                   (tools ? tools->raw.len : 0);
    return (long)(bytes / 4) + 1;
}

/* ---- call hooks ----------------------------------------------------------- */

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
        if (st->translate) {
            sl_ir_stream_free(&st->tr);
            sl_ir_stream_init(&st->tr, st->up, st->client, r->llm.include_usage);
            st->tr.echo = &st->echo;
            st->tr.input_estimate = prompt_estimate(r); /* until the provider counts */
        }
        if (r->want_assembled && !st->translate && !st->responses) {
            st->assembler = malloc(sizeof(*st->assembler));
            if (st->assembler) {
                sl_asm_init_for(st->assembler, r->llm.api, r->conf->server.max_response_bytes);
                st->asm_on = true;
            }
        }
        if (!st->responses)                 /* Responses: the final object is the assembled form */
            r->want_assembled = st->asm_on; /* what coalesced plain followers can count on */
        sl_req_header(r, "x-sluice-provider", r->provider);
        sl_pipeline_stream_head(r, 200);
    }
}

/* The client drained what a slow read let pile up: the stream goes on. */
static void on_client_drained(sl_req *r)
{
    proxy_state *st = sl_pipeline_ctx(r, &sl_stage_proxy);
    if (st && st->call)
        sl_call_resume(st->call);
}

static int hook_data(void *ud, sl_call *c, const char *p, size_t n)
{
    SL_UNUSED(c);
    proxy_state *st = ud;
    sl_req *r = st->r;
    if (st->stream_mode) {
        const sl_sink_ops *ops = r->sink->ops;
        if (ops->congested && ops->congested(r->sink, r)) { /* backpressure to the provider */
            r->on_drained = on_client_drained;
            return SL_CALL_PAUSE;
        }
        return sl_sse_feed(&st->sse, p, n) != 0 ? 1 : 0; /* events go out one by one */
    }
    return sl_buf_append(&r->body_out, p, n) == SL_OK ? 0 : 1;
}

static bool retriable_status(int s)
{
    return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

/* Rewrites body_out from the provider's dialect into the client's; an
 * error keeps its status, which picks the client's error type. */
static void translate_answer(proxy_state *st, const sl_dialect *from, const sl_json *root,
                             int status)
{
    sl_req *r = st->r;
    sl_buf out;
    sl_buf_init(&out, 0);
    int rc = SL_OK;
    if (status == 200) {
        rc = sl_dialect_answer_echo(from, st->client, root, &r->arena,
                                    st->responses ? &st->echo : NULL, &out);
    } else {
        sl_ir_error e;
        from->parse_error(root, &e);
        e.status = status;
        st->client->emit_error(&e, &out);
    }
    if (rc != SL_OK) { /* out of memory: never a truncated 200 */
        sl_buf_free(&out);
        sl_req_error(r, 500, "api_error", "out_of_memory", NULL, "out of memory");
        return;
    }
    sl_buf_reset(&r->body_out);
    sl_buf_append(&r->body_out, out.p, out.len);
    sl_buf_free(&out);
}

/* A complete plain answer: pass it on if it is JSON, else 502. */
static void finish_plain(proxy_state *st, int status)
{
    sl_req *r = st->r;
    if (status != 200)
        scrub_body(r); /* before the parse: a translation sees no secret either */
    sl_json *root = NULL;
    sl_json_error jerr;
    bool is_json =
        sl_json_parse(&r->arena, r->body_out.p, r->body_out.len, NULL, &root, &jerr) == SL_OK &&
        root->type == SL_JSON_OBJECT;
    if (status == 200) {
        if (!is_json) {
            sl_req_error(r, 502, "api_error", "bad_upstream_response", NULL,
                         "the provider returned a response that is not a JSON object");
            return;
        }
        sl_ir_usage u = {0};
        take_usage(r, st->up, &u, st->up->usage(root, &u));
        if (st->tr_at)
            note_plain_answer(st, root);
        r->status = 200;
        r->error = NULL;
        if (st->translate)
            translate_answer(st, st->up, root, 200);
        if (st->responses && st->translate)
            response_final_text(st, sl_buf_str(&r->body_out));
        else if (st->responses)
            response_final(st, root); /* the provider's object, parsed once */
        return;
    }
    /* Upstream error: keep an error object as it is, scrubbed above (translated
     * when the dialects differ, or when an anthropic client got another shape
     * than Anthropic's from a provider in front of it), wrap anything else. */
    const sl_json *e = is_json ? sl_json_get(root, "error") : NULL;
    if (e && e->type == SL_JSON_OBJECT) {
        r->status = status;
        r->error = sl_arena_printf(&r->arena, "provider answered %d", status);
        bool foreign = st->client == &sl_dialect_anthropic &&
                       !sl_str_eq_c(sl_ir_str(sl_json_get(root, "type")), "error");
        if (st->translate || foreign) /* OpenAI's error object is the common one */
            translate_answer(st, st->translate ? st->up : &sl_dialect_openai, root, status);
        return;
    }
    const char *msg = sl_arena_printf(&r->arena, "the provider answered HTTP %d", status);
    const char *type = status == 429   ? "rate_limit_error"
                       : status >= 500 ? "api_error"
                                       : "invalid_request_error";
    sl_req_error(r, status, type, "upstream_error", NULL, msg);
}

static void stream_failed(proxy_state *st, int rc, const char *detail)
{
    sl_req *r = st->r;
    const char *msg = sl_arena_printf(&r->arena, "the upstream stream ended early: %s",
                                      detail ? detail : "connection closed");
    const char *code = rc == SL_ETIMEDOUT ? "upstream_timeout" : "upstream_stream_error";
    sl_req_error(r, rc == SL_ETIMEDOUT ? 504 : 502, "api_error", code, NULL, msg);
    if (!st->translate || st->tr.finished || st->tr.failed || !r->head_sent)
        return;
    /* a translated stream's own emitter writes it: its numbering (Responses) goes on */
    sl_ir_event ev = {
        .type = SL_IR_EV_ERROR,
        .error = {SL_STR("api_error"), sl_str_c(r->error), SL_STR_NULL, sl_str_c(code)}};
    sl_buf_reset(&r->body_out);
    st->tr.sink = &r->body_out;
    st->tr.to->emit_event(&st->tr, &ev);
    st->tr.sink = NULL;
}

/* Seconds or an HTTP date; -1 when absent or unreadable. */
static long retry_after_ms(const char *v)
{
    if (!v)
        return -1;
    char *end;
    long s = strtol(v, &end, 10);
    if (end != v && *end == '\0')
        return s < 0 ? -1 : s * 1000;
    struct tm tm = {0};
    if (!strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm))
        return -1;
    long d = (long)(timegm(&tm) - time(NULL));
    return d < 0 ? 0 : d * 1000;
}

static void on_backoff(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    attempt(arg);
}

/* Schedules the next attempt, or returns false when the failure must stand. */
static bool schedule_retry(proxy_state *st, const char *retry_after)
{
    sl_req *r = st->r;
    const sl_config *cf = r->conf;
    if (r->retries >= cf->retries.max)
        return false;
    long delay = retry_after_ms(retry_after);
    long budget = cf->timeouts.total_ms - (long)((sl_now_us() - r->t_start) / 1000);
    if (delay > budget)
        return false; /* the client gets the 429 and its Retry-After */
    if (delay < 0) {
        uint64_t cap = (uint64_t)cf->retries.base_ms << SL_MIN(r->retries, 16);
        uint64_t rnd;
        sl_random_bytes(&rnd, sizeof rnd);
        delay = cap ? (long)(rnd % (cap + 1)) : 0; /* full jitter */
    }
    r->retries++;
    if (!st->backoff)
        st->backoff = evtimer_new(r->base, on_backoff, st);
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(st->backoff, &tv);
    return true;
}

/* A stream cut short (by the provider, the client or the drain deadline), or
 * from a provider that sends no usage: meter what passed. */
static void meter_unreported(proxy_state *st)
{
    sl_req *r = st->r;
    if (!st->stream_mode || st->usage_seen)
        return;
    r->prompt_tokens = (long)(r->llm.prompt_bytes / 4) + 1;
    r->completion_tokens = st->chunks;
    r->usage_estimated = true;
}

/* sluice itself is short of descriptors or memory: 503, and no verdict on
 * the provider (no breaker count, no fallback, no provider error rate). */
static void answer_overloaded(sl_req *r, const char *detail)
{
    sl_req_header(r, "Retry-After", "1");
    sl_req_error(r, 503, "api_error", "server_overloaded", NULL,
                 sl_arena_printf(&r->arena, "the gateway is overloaded: %s",
                                 detail ? detail : "out of resources"));
    r->provider = NULL; /* never reached it */
}

/* The breaker's verdict on the attempt; none when sluice itself ran short (local). */
static void report_breaker(proxy_state *st, bool ok, bool local)
{
    if (local) {
        sl_breaker_release(&st->ticket);
        return;
    }
    const sl_config *cf = st->r->conf;
    const sl_provider_conf *p = &cf->providers[st->cur];
    int failures = p->breaker_failures >= 0 ? p->breaker_failures : cf->breaker.failures;
    int cooldown = p->breaker_cooldown_s >= 0 ? p->breaker_cooldown_s : cf->breaker.cooldown_s;
    sl_breaker_report(&st->ticket, ok, failures, cooldown);
}

/* Records what the attempt produced on r: usage, the answer or the error. */
static void take_outcome(proxy_state *st, int status, int rc, const char *detail, bool local)
{
    sl_req *r = st->r;
    meter_unreported(st);
    if (st->stream_mode) {
        if (rc != SL_OK)
            stream_failed(st, rc, detail);
        else if (st->asm_on && sl_asm_result(st->assembler, &r->assembled) != SL_OK)
            sl_buf_reset(&r->assembled);
    } else if (rc == SL_OK) {
        finish_plain(st, status);
    } else if (local) {
        answer_overloaded(r, detail);
    } else if (rc == SL_ETIMEDOUT) {
        sl_req_error(r, 504, "api_error", "upstream_timeout", NULL,
                     detail ? detail : "the provider did not answer in time");
    } else {
        const char *msg = sl_arena_printf(&r->arena, "the provider could not be reached: %s",
                                          detail ? detail : "error");
        sl_req_error(r, 502, "api_error", "upstream_unavailable", NULL, msg);
    }
}

static void hook_done(void *ud, sl_call *c, int rc, const char *detail)
{
    proxy_state *st = ud;
    sl_req *r = st->r;
    st->call = NULL;
    r->t_upstream_end = sl_now_us();
    int status = rc == SL_OK ? sl_call_status(c) : 0;
    bool local = rc == SL_ENOMEM;
    bool failed = !local && (rc != SL_OK || retriable_status(status));
    if (st->stream_mode && rc == SL_OK && !st->done_seen)
        rc = SL_EIO, detail = "no [DONE] before the connection closed", failed = true;
    report_breaker(st, !failed, local);
    if (st->tr_at)
        attempt_trace_end(st, rc == SL_OK ? sl_call_status(c) : 0, rc, detail);
    take_outcome(st, status, rc, detail, local);
    const char *ra = status == 429 || status == 503 ? sl_call_retry_after(c) : NULL;
    if (failed && !r->head_sent && !r->client_gone && schedule_retry(st, ra)) {
        st->next_from = st->cur + 1;
        if (st->tr_at && st->tr_at->pending) /* a retried attempt: no usage of its own */
            attempt_span(st, false);
        return; /* the reference stays with the pending retry */
    }
    if (ra)
        sl_req_header(r, "Retry-After", sl_arena_strndup(&r->arena, ra, strlen(ra)));
    if (st->state_pending) { /* the answer's end goes out once its state is stored */
        st->done_deferred = true;
        return;
    }
    answer(st);
}

static const sl_call_hooks proxy_hooks = {
    .on_status = hook_status,
    .on_data = hook_data,
    .on_done = hook_done,
};

/* ---- attempts --------------------------------------------------------------- */

/* The headers every call to a provider of this dialect with this key sends
 * (built once, kept by upstream); then the request id, per call. */
static struct curl_slist *build_fixed(const void *owner, const char *api_key)
{
    const sl_dialect *up = owner;
    struct curl_slist *h = sl_header_list_append(NULL, "Content-Type: application/json");
    struct curl_slist *t = h ? sl_header_list_append(h, "Expect:") : NULL; /* no 100-continue */
    if (!t) {
        sl_header_list_free(h);
        return NULL;
    }
    return up->headers(t, api_key[0] ? api_key : NULL);
}

static void note_tried(sl_req *r, const char *name)
{
    size_t used = strlen(r->tried), nl = strlen(name);
    if (used + nl + 2 >= sizeof r->tried)
        return;
    if (used)
        r->tried[used++] = ',';
    memcpy(r->tried + used, name, nl + 1);
}

static bool serves(const sl_provider_conf *p, sl_str model)
{
    for (size_t m = 0; m < p->n_models; m++) {
        if (sl_model_match(p->models[m], model))
            return true;
    }
    return false;
}

/* The next provider serving the model that its breaker admits, or -1 with the
 * shortest remaining cool-down in *wait_ms. */
static int pick_provider(proxy_state *st, uint64_t *wait_ms)
{
    sl_req *r = st->r;
    const sl_config *cf = r->conf;
    size_t n = cf->n_providers;
    *wait_ms = UINT64_MAX;
    for (size_t k = 0; k < n; k++) {
        size_t i = ((size_t)st->next_from + k) % n;
        const sl_provider_conf *p = &cf->providers[i];
        if (!serves(p, r->llm.model))
            continue;
        int cooldown = p->breaker_cooldown_s >= 0 ? p->breaker_cooldown_s : cf->breaker.cooldown_s;
        uint64_t wait = 0;
        if (sl_breaker_admit(p->name, cooldown, &st->ticket, &wait))
            return (int)i;
        *wait_ms = SL_MIN(*wait_ms, wait);
    }
    return -1;
}

/* Every provider's breaker is open: 503 unless an earlier attempt's answer stands. */
static void fail_all_open(proxy_state *st, uint64_t wait_ms)
{
    sl_req *r = st->r;
    if (st->attempts == 0 || !r->status) {
        long secs = wait_ms == UINT64_MAX ? 1 : (long)((wait_ms + 999) / 1000);
        sl_req_header(r, "Retry-After", sl_arena_printf(&r->arena, "%ld", secs ? secs : 1));
        const char *msg =
            sl_arena_printf(&r->arena, "every provider for `%.*s` is unavailable (circuit open)",
                            (int)SL_MIN(r->llm.model.len, 200), r->llm.model.p);
        sl_req_error(r, 503, "api_error", "providers_unavailable", NULL, msg);
        r->error = "circuit open";
    }
}

/* count_tokens for a model whose provider cannot count: the estimate, marked as one. */
static void answer_token_estimate(sl_req *r)
{
    r->status = 200;
    r->error = NULL;
    sl_buf_printf(&r->body_out, "{\"input_tokens\":%ld}", prompt_estimate(r));
    sl_req_header(r, "x-sluice-estimated", "true");
}

/* Chooses this attempt's path and body for the provider's dialect: the
 * client's bytes when both speak the same one, a translation otherwise.
 * Not SL_OK: r is answered (a refusal, or count_tokens' estimate), no call. */
static int prepare_dialect(proxy_state *st, const sl_provider_conf *p)
{
    sl_req *r = st->r;
    st->up = sl_dialect_for(p, r->llm.api);
    st->client = sl_dialect_of_api(r->llm.api);
    st->translate = st->up != st->client;
    st->usage = (sl_ir_usage){0};
    st->wire = st->body;
    r->upstream_path = st->up->path(r->llm.api);
    if (!r->upstream_path && r->llm.api == SL_API_COUNT_TOKENS) {
        answer_token_estimate(r); /* answered here: no call */
        return SL_EINVAL;
    }
    if (!r->upstream_path) {
        sl_req_error(r, 400, "invalid_request_error", "unsupported_by_provider", "model",
                     sl_arena_printf(&r->arena,
                                     "this endpoint is not available for models served by an "
                                     "%s provider",
                                     st->up->name));
        return SL_EINVAL;
    }
    const sl_json *source = r->llm.root;
    bool resolved = false;
    if (st->responses && !(source = responses_source(st, p, &resolved)))
        return SL_EINVAL;
    if (st->translate) {
        sl_responses_make_id(st->resp_id, sizeof st->resp_id, p->name);
        st->echo = (sl_ir_echo){.id = sl_str_c(st->resp_id), .request = r->llm.root};
    } else if (resolved) {
        st->wire = source->raw; /* another native provider: the conversation as items */
    }
    if (!st->translate)
        return SL_OK;
    sl_buf b;
    sl_buf_init(&b, 0);
    sl_ir_refusal e = {0};
    int rc = sl_dialect_request(st->client, st->up, source, &r->arena, &b, &e);
    if (rc == SL_OK) {
        char *copy = sl_arena_strndup(&r->arena, b.p, b.len);
        st->wire = (sl_str){copy ? copy : "", copy ? b.len : 0};
    } else {
        sl_req_error(r, 400, "invalid_request_error", "unsupported_parameter", e.param, e.message);
    }
    sl_buf_free(&b);
    return rc;
}

/* Makes provider idx the one this attempt goes to. */
static const sl_provider_conf *begin_attempt(proxy_state *st, int idx)
{
    sl_req *r = st->r;
    const sl_config *cf = r->conf;
    const sl_provider_conf *p = &cf->providers[idx];
    st->cur = idx;
    st->attempts++;
    r->provider_idx = idx;
    r->provider = p->name;
    note_tried(r, p->name);
    sl_buf_reset(&r->body_out);
    r->body_out.max = cf->server.max_response_bytes;
    sl_req_header(r, "x-sluice-provider", p->name);
    return p;
}

/* The client's anthropic-version and betas first (a_headers then adds no
 * version of its own), then the provider's fixed headers. */
static struct curl_slist *anthropic_client_headers(proxy_state *st, const char *key)
{
    sl_req *r = st->r;
    struct curl_slist *h = sl_header_list_append(NULL, "Content-Type: application/json");
    h = h ? sl_header_list_append(h, "Expect:") : NULL;
    char line[1024];
    const char *v = r->anthropic_version, *beta = r->anthropic_beta;
    if (h && v && snprintf(line, sizeof line, "anthropic-version: %s", v) < (int)sizeof line)
        h = sl_header_list_append(h, line);
    if (h && beta && snprintf(line, sizeof line, "anthropic-beta: %s", beta) < (int)sizeof line)
        h = sl_header_list_append(h, line);
    return h ? st->up->headers(h, key[0] ? key : NULL) : NULL;
}

/* Starts the upstream call; on failure the error answer is set on r. */
static int start_call(proxy_state *st, const sl_provider_conf *p)
{
    sl_req *r = st->r;
    const sl_config *cf = r->conf;
    const char *key = p->api_key ? p->api_key : "";
    const struct curl_slist *fixed = sl_upstream_headers(st->up, key, build_fixed);
    char idline[96] = "X-Request-Id: ";
    size_t il = strlen(idline), idl = SL_MIN(strlen(r->id), sizeof idline - il - 1);
    memcpy(idline + il, r->id, idl);
    idline[il + idl] = '\0';
    /* the client's anthropic-version / anthropic-beta vary per call: an owned list */
    bool client_an = st->up == &sl_dialect_anthropic && (r->anthropic_version || r->anthropic_beta);
    if (client_an)
        fixed = NULL;
    sl_call_opts o = {
        .url = p->base_url,
        .url_path = r->upstream_path,
        .fixed_headers = fixed,
        .headers = fixed       ? NULL
                   : client_an ? anthropic_client_headers(st, key)
                               : build_fixed(st->up, key),
        .extra_header = idline,
        .body = st->wire.p,
        .body_len = st->wire.len,
        .connect_ms = cf->timeouts.connect_ms,
        .first_byte_ms = cf->timeouts.first_byte_ms,
        .idle_ms = r->llm.stream ? cf->timeouts.idle_ms : 0,
        .total_ms = r->llm.stream ? 0 : cf->timeouts.total_ms,
        /* SSE events are a few hundred bytes: a small buffer per open stream
         * (curl allocates it per transfer) instead of 16 KiB each. */
        .recv_buffer = r->llm.stream ? 1024 : 0,
    };
    if (r->trace) {
        attempt_trace_start(st, p);
        o.traceparent = st->tr_at ? st->tr_at->traceparent : NULL;
        o.tracestate = st->tr_at ? st->tr_at->tracestate : NULL;
    }
    int err;
    if (!r->t_upstream_start)
        r->t_upstream_start = sl_now_us();
    st->call = sl_call_start(&o, &proxy_hooks, st, &err);
    if (!st->call && st->tr_at)
        st->tr_at->t_start = 0; /* never sent: no span */
    if (st->call)
        return SL_OK;
    if (err == SL_EAGAIN) {
        sl_req_header(r, "Retry-After", "1");
        sl_req_header(r, "retry-after-ms", "1000");
        sl_req_error(r, 503, "api_error", "overloaded", NULL, "too many upstream calls in flight");
    } else {
        answer_overloaded(r, "could not start the upstream call");
    }
    return SL_EIO;
}

/* The one exit of the stage: the answer on r stands (an upstream answer, an
 * error, a 499); the pipeline finishes r and the attempts' reference goes. */
static void answer(proxy_state *st)
{
    sl_req *r = st->r;
    sl_req_finish(r);
    sl_req_release(r); /* the attempts' reference */
}

/* One attempt at the next provider that may take it; false when none could
 * start and the answer on r stands. */
static bool try_attempt(proxy_state *st)
{
    sl_req *r = st->r;
    if (r->client_gone) {
        sl_req_client_closed(r);
        return false;
    }
    uint64_t wait_ms;
    int idx = pick_provider(st, &wait_ms);
    if (idx < 0) {
        fail_all_open(st, wait_ms);
        return false;
    }
    const sl_provider_conf *p = begin_attempt(st, idx);
    if (prepare_dialect(st, p) != SL_OK || start_call(st, p) != SL_OK) {
        sl_breaker_release(&st->ticket);
        return false;
    }
    return true;
}

static void attempt(proxy_state *st)
{
    if (!try_attempt(st))
        answer(st);
}

static sl_step proxy_request(sl_req *r, void *ctx)
{
    proxy_state *st = ctx;
    st->r = r;
    st->body = body_with_usage(r);
    st->next_from = r->provider_idx >= 0 ? r->provider_idx : 0;
    sl_req_ref(r); /* held by the attempts until the answer is complete */
    st->responses = r->llm.api == SL_API_RESPONSES;
    if (st->responses && r->llm.previous_response_id.len) { /* attempts start once it is known */
        sl_resp_state_get(r->tenant ? r->tenant : "default", r->llm.previous_response_id,
                          on_history, st);
        return SL_DONE;
    }
    attempt(st);
    return SL_DONE;
}

static void proxy_response(sl_req *r, void *ctx)
{
    SL_UNUSED(r);
    proxy_state *st = ctx;
    if (st->tr_at && st->tr_at->pending)
        attempt_span(st, true); /* priced by now */
    if (st->sse_on)
        sl_sse_free(&st->sse);
    st->sse_on = false;
    sl_ir_stream_free(&st->tr);
    if (st->asm_on) {
        sl_asm_free(st->assembler);
        free(st->assembler);
        st->assembler = NULL;
    }
    st->asm_on = false;
    if (st->backoff)
        event_free(st->backoff);
    st->backoff = NULL;
}

static void proxy_abort(sl_req *r, void *ctx)
{
    proxy_state *st = ctx;
    bool waiting = st->call || (st->backoff && evtimer_pending(st->backoff, NULL));
    if (!waiting)
        return;
    if (st->call && st->tr_at)
        attempt_trace_end(st, 0, SL_EIO, "client closed");
    if (st->call) {
        sl_call_cancel(st->call); /* closes the upstream connection: the provider stops */
        sl_breaker_release(&st->ticket);
        st->call = NULL;
    }
    if (st->backoff)
        evtimer_del(st->backoff);
    r->t_upstream_end = sl_now_us();
    meter_unreported(st); /* the provider produced what was streamed so far */
    sl_req_client_closed(r);
    answer(st);
}

const sl_stage sl_stage_proxy = {
    .name = "proxy",
    .ctx_size = sizeof(proxy_state),
    .on_request = proxy_request,
    .on_response = proxy_response,
    .on_abort = proxy_abort,
};
