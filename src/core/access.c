/* access.c — one JSON object per finished request, in the access log. */
#include "sluice/access.h"

#include "sluice/trace.h"

#include "sluice/log.h"

const char *sl_cache_outcome_name(sl_cache_outcome c)
{
    switch (c) {
    case SL_CACHE_MISS: return "miss";
    case SL_CACHE_HIT: return "hit";
    case SL_CACHE_COALESCED: return "coalesced";
    case SL_CACHE_BYPASS: return "bypass";
    case SL_CACHE_SEMANTIC: return "semantic";
    default: return NULL;
    }
}

/* Every line of the log is written here, so no printf: field names are
 * literals appended with their quotes, numbers are formatted by hand. */
#define FIELD(b, name) sl_buf_append((b), ",\"" name "\":", sizeof(name) + 3)

static void field_str(sl_buf *b, const char *name_lit, size_t name_len, const char *v)
{
    sl_buf_append(b, name_lit, name_len);
    sl_buf_json_cstr(b, v);
}
#define FIELD_STR(b, name, v) field_str((b), ",\"" name "\":", sizeof(name) + 3, (v))

static void field_ms(sl_buf *b, const char *name_lit, size_t name_len, uint64_t from_us,
                     uint64_t to_us)
{
    sl_buf_append(b, name_lit, name_len);
    sl_buf_append_ms(b, from_us && to_us >= from_us ? to_us - from_us : 0);
}
#define FIELD_MS(b, name, from, to) field_ms((b), ",\"" name "\":", sizeof(name) + 3, (from), (to))

static void field_bool(sl_buf *b, const char *name_lit, size_t name_len, bool v)
{
    sl_buf_append(b, name_lit, name_len);
    sl_buf_append(b, v ? "true" : "false", v ? 4 : 5);
}
#define FIELD_BOOL(b, name, v) field_bool((b), ",\"" name "\":", sizeof(name) + 3, (v))

/* Money from its exact integer form; the double only when that overflowed. */
static void field_money(sl_buf *b, double usd, int64_t pusd, bool inexact)
{
    if (inexact)
        sl_buf_json_num(b, usd);
    else
        sl_buf_json_pusd(b, pusd);
}

/* Who asked, for what, and who answered: the request's identity fields. */
static void fields_identity(sl_buf *b, const sl_req *r)
{
    FIELD_STR(b, "request_id", r->id);
    if (r->trace) { /* tracing on: the trace this request belongs to (trace.h) */
        char hex[32];
        sl_hex(hex, r->trace->trace_id, 16);
        sl_buf_append(b, ",\"trace_id\":\"", 13);
        sl_buf_append(b, hex, 32);
        sl_buf_append(b, "\"", 1);
    }
    FIELD_STR(b, "method", r->method);
    FIELD_STR(b, "path", r->path);
    FIELD(b, "status");
    sl_buf_append_i64(b, r->status);
    FIELD_STR(b, "tenant", r->is_llm ? r->tenant : NULL);
    FIELD(b, "model");
    if (r->llm.model.p)
        sl_buf_json_str(b, r->llm.model.p, r->llm.model.len);
    else
        sl_buf_append(b, "null", 4);
    FIELD_STR(b, "provider", r->provider);
    FIELD_STR(b, "cache", sl_cache_outcome_name(r->cache));
    FIELD_STR(b, "cache_layer", r->cache_detail);
}

/* Tokens by kind, and the money they cost or saved. */
static void fields_usage(sl_buf *b, const sl_req *r)
{
    FIELD(b, "prompt_tokens");
    sl_buf_append_i64(b, r->prompt_tokens);
    FIELD(b, "completion_tokens");
    sl_buf_append_i64(b, r->completion_tokens);
    FIELD(b, "cached_tokens");
    sl_buf_append_i64(b, r->cached_tokens);
    FIELD(b, "cache_write_tokens");
    sl_buf_append_i64(b, r->cache_write_tokens);
    FIELD(b, "reasoning_tokens");
    sl_buf_append_i64(b, r->reasoning_tokens);
    FIELD_BOOL(b, "usage_estimated", r->usage_estimated);
    FIELD(b, "cost_usd");
    field_money(b, r->cost_usd, r->cost_pusd, r->money_inexact);
    FIELD(b, "saved_usd");
    field_money(b, r->saved_usd, r->saved_pusd, r->money_inexact);
}

void sl_access_log_req(const sl_req *r)
{
    sl_buf *b = sl_access_begin();
    if (!b)
        return;
    char ts[32];
    size_t tn = sl_rfc3339_ms(sl_wall_ms(), ts);
    sl_buf_append(b, "{\"ts\":\"", 7);
    sl_buf_append(b, ts, tn);
    sl_buf_append(b, "\"", 1);
    fields_identity(b, r);
    FIELD_BOOL(b, "stream", r->streaming || r->llm.stream);
    FIELD_MS(b, "latency_ms", r->t_start, r->t_end);
    FIELD_MS(b, "upstream_ms", r->t_upstream_start, r->t_upstream_end);
    FIELD_MS(b, "ttfb_ms", r->t_upstream_start, r->t_first_byte);
    fields_usage(b, r);
    FIELD(b, "retries");
    sl_buf_append_i64(b, r->retries);
    FIELD_STR(b, "providers_tried", r->tried[0] ? r->tried : NULL);
    FIELD_STR(b, "led_by", r->led_by);
    FIELD(b, "similarity");
    if (r->similarity > 0)
        sl_buf_json_num(b, (double)(int64_t)(r->similarity * 1000 + 0.5) / 1000);
    else
        sl_buf_append(b, "null", 4);
    FIELD_STR(b, "served_from", r->served_from);
    FIELD(b, "bytes_out");
    sl_buf_append_i64(b, (int64_t)r->bytes_out);
    FIELD_STR(b, "error", r->error);
    sl_buf_append(b, "}", 1);
    sl_access_commit();
}
