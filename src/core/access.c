/* access.c — one JSON object per finished request, in the access log. */
#include "sluice/access.h"

#include "sluice/log.h"

const char *sl_cache_outcome_name(sl_cache_outcome c)
{
    switch (c) {
    case SL_CACHE_MISS: return "miss";
    case SL_CACHE_HIT: return "hit";
    case SL_CACHE_COALESCED: return "coalesced";
    case SL_CACHE_BYPASS: return "bypass";
    default: return NULL;
    }
}

static double ms_between(uint64_t from_us, uint64_t to_us)
{
    return (from_us && to_us >= from_us) ? (double)(to_us - from_us) / 1000.0 : 0.0;
}

static void json_field_str(sl_buf *b, const char *name, const char *v)
{
    sl_buf_printf(b, ",\"%s\":", name);
    sl_buf_json_cstr(b, v);
}

static void json_field_slice(sl_buf *b, const char *name, sl_str v)
{
    sl_buf_printf(b, ",\"%s\":", name);
    if (v.p)
        sl_buf_json_str(b, v.p, v.len);
    else
        sl_buf_append_c(b, "null");
}

void sl_access_log_req(const sl_req *r)
{
    sl_buf *b = sl_access_begin();
    if (!b)
        return;
    char ts[32];
    sl_rfc3339_ms(sl_wall_ms(), ts);
    sl_buf_printf(b, "{\"ts\":\"%s\"", ts);
    json_field_str(b, "request_id", r->id);
    json_field_str(b, "method", r->method);
    json_field_str(b, "path", r->path);
    sl_buf_printf(b, ",\"status\":%d", r->status);
    json_field_str(b, "tenant", r->is_llm ? r->tenant : NULL);
    json_field_slice(b, "model", r->llm.model);
    json_field_str(b, "provider", r->provider);
    json_field_str(b, "cache", sl_cache_outcome_name(r->cache));
    json_field_str(b, "cache_layer", r->cache_detail);
    sl_buf_printf(b, ",\"stream\":%s", r->streaming || r->llm.stream ? "true" : "false");
    sl_buf_printf(b, ",\"latency_ms\":%.3f", ms_between(r->t_start, r->t_end));
    sl_buf_printf(b, ",\"upstream_ms\":%.3f", ms_between(r->t_upstream_start, r->t_upstream_end));
    sl_buf_printf(b, ",\"ttfb_ms\":%.3f", ms_between(r->t_upstream_start, r->t_first_byte));
    sl_buf_printf(b, ",\"prompt_tokens\":%ld,\"completion_tokens\":%ld", r->prompt_tokens,
                  r->completion_tokens);
    sl_buf_printf(b, ",\"usage_estimated\":%s", r->usage_estimated ? "true" : "false");
    sl_buf_append_c(b, ",\"cost_usd\":");
    sl_buf_json_num(b, r->cost_usd);
    sl_buf_append_c(b, ",\"saved_usd\":");
    sl_buf_json_num(b, r->saved_usd);
    sl_buf_printf(b, ",\"retries\":%d", r->retries);
    json_field_str(b, "providers_tried", r->tried[0] ? r->tried : NULL);
    json_field_str(b, "led_by", r->led_by);
    sl_buf_printf(b, ",\"bytes_out\":%zu", r->bytes_out);
    json_field_str(b, "error", r->error);
    sl_buf_append_c(b, "}");
    sl_access_commit();
}
