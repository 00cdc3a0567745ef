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

/* Every line of the log is written here, so no printf. Its largest size is
 * known before a byte is written (names and numbers are bounded; a string
 * escapes to at most six bytes a byte), so the line is reserved once and
 * written through a cursor: a literal field name is a few moves, a number is
 * formatted in place. */
enum { LINE_FIXED_MAX = 2048 }; /* names (~560 bytes), numbers, ts, trace id: with room */

/* The strings of a line (NULL: null), measured once for the reservation. */
enum {
    S_ID,
    S_METHOD,
    S_PATH,
    S_TENANT,
    S_MODEL,
    S_PROVIDER,
    S_CACHE,
    S_LAYER,
    S_TRIED,
    S_LED,
    S_FROM,
    S_ERROR,
    S_N
};

#define LIT(o, lit) (memcpy((o), lit, sizeof(lit) - 1), (o) += sizeof(lit) - 1)

static char *str(char *o, sl_str s)
{
    if (!s.p) {
        memcpy(o, "null", 4);
        return o + 4;
    }
    return o + sl_json_str_to(o, s.p, s.len);
}

static char *i64(char *o, int64_t v)
{
    return o + sl_fmt_i64(v, o);
}

static char *ms(char *o, uint64_t from_us, uint64_t to_us)
{
    return o + sl_fmt_ms(from_us && to_us >= from_us ? to_us - from_us : 0, o);
}

static char *boolean(char *o, bool v)
{
    memcpy(o, v ? "true" : "false", 5);
    return o + (v ? 4 : 5);
}

/* A double (the rare shapes: money that overflowed, a similarity) through
 * the buffer's own writer; it fits in the reserved room, so p stays put. */
static char *num(sl_buf *b, char *o, double v)
{
    b->len = (size_t)(o - b->p);
    sl_buf_json_num(b, v);
    return b->p + b->len;
}

/* Money from its exact integer form; the double only when that overflowed. */
static char *money(sl_buf *b, char *o, double usd, int64_t pusd, bool inexact)
{
    return inexact ? num(b, o, usd) : o + sl_fmt_pusd(pusd, o);
}

static sl_str cstr(const char *s)
{
    return s ? (sl_str){s, strlen(s)} : SL_STR_NULL;
}

static void measure(const sl_req *r, sl_str s[S_N])
{
    s[S_ID] = cstr(r->id);
    s[S_METHOD] = cstr(r->method);
    s[S_PATH] = cstr(r->path);
    s[S_TENANT] = cstr(r->is_llm ? r->tenant : NULL);
    s[S_MODEL] = r->llm.model.p ? r->llm.model : SL_STR_NULL;
    s[S_PROVIDER] = cstr(r->provider);
    s[S_CACHE] = cstr(sl_cache_outcome_name(r->cache));
    s[S_LAYER] = cstr(r->cache_detail);
    s[S_TRIED] = cstr(r->tried[0] ? r->tried : NULL);
    s[S_LED] = cstr(r->led_by);
    s[S_FROM] = cstr(r->served_from);
    s[S_ERROR] = cstr(r->error);
}

/* Who asked, for what, and who answered: the request's identity fields. */
static char *fields_identity(char *o, const sl_req *r, const sl_str *s)
{
    LIT(o, ",\"request_id\":");
    o = str(o, s[S_ID]);
    if (r->trace) { /* tracing on: the trace this request belongs to (trace.h) */
        LIT(o, ",\"trace_id\":\"");
        sl_hex(o, r->trace->trace_id, 16);
        o += 32;
        *o++ = '"';
    }
    LIT(o, ",\"method\":");
    o = str(o, s[S_METHOD]);
    LIT(o, ",\"path\":");
    o = str(o, s[S_PATH]);
    LIT(o, ",\"status\":");
    o = i64(o, r->status);
    LIT(o, ",\"tenant\":");
    o = str(o, s[S_TENANT]);
    LIT(o, ",\"model\":");
    o = str(o, s[S_MODEL]);
    LIT(o, ",\"provider\":");
    o = str(o, s[S_PROVIDER]);
    LIT(o, ",\"cache\":");
    o = str(o, s[S_CACHE]);
    LIT(o, ",\"cache_layer\":");
    return str(o, s[S_LAYER]);
}

/* How long it took; tokens by kind, and the money they cost or saved. */
static char *fields_usage(sl_buf *b, char *o, const sl_req *r)
{
    LIT(o, ",\"stream\":");
    o = boolean(o, r->streaming || r->llm.stream);
    LIT(o, ",\"latency_ms\":");
    o = ms(o, r->t_start, r->t_end);
    LIT(o, ",\"upstream_ms\":");
    o = ms(o, r->t_upstream_start, r->t_upstream_end);
    LIT(o, ",\"ttfb_ms\":");
    o = ms(o, r->t_upstream_start, r->t_first_byte);
    LIT(o, ",\"prompt_tokens\":");
    o = i64(o, r->prompt_tokens);
    LIT(o, ",\"completion_tokens\":");
    o = i64(o, r->completion_tokens);
    LIT(o, ",\"cached_tokens\":");
    o = i64(o, r->cached_tokens);
    LIT(o, ",\"cache_write_tokens\":");
    o = i64(o, r->cache_write_tokens);
    LIT(o, ",\"reasoning_tokens\":");
    o = i64(o, r->reasoning_tokens);
    LIT(o, ",\"usage_estimated\":");
    o = boolean(o, r->usage_estimated);
    LIT(o, ",\"cost_usd\":");
    o = money(b, o, r->cost_usd, r->cost_pusd, r->money_inexact);
    LIT(o, ",\"saved_usd\":");
    return money(b, o, r->saved_usd, r->saved_pusd, r->money_inexact);
}

static char *fields_rest(sl_buf *b, char *o, const sl_req *r, const sl_str *s)
{
    LIT(o, ",\"retries\":");
    o = i64(o, r->retries);
    LIT(o, ",\"providers_tried\":");
    o = str(o, s[S_TRIED]);
    LIT(o, ",\"led_by\":");
    o = str(o, s[S_LED]);
    LIT(o, ",\"similarity\":");
    if (r->similarity > 0)
        o = num(b, o, (double)(int64_t)(r->similarity * 1000 + 0.5) / 1000);
    else
        LIT(o, "null");
    LIT(o, ",\"served_from\":");
    o = str(o, s[S_FROM]);
    LIT(o, ",\"bytes_out\":");
    o = i64(o, (int64_t)r->bytes_out);
    LIT(o, ",\"error\":");
    o = str(o, s[S_ERROR]);
    *o++ = '}';
    return o;
}

void sl_access_log_req(const sl_req *r)
{
    sl_buf *b = sl_access_begin();
    if (!b)
        return;
    sl_str s[S_N];
    measure(r, s);
    size_t need = LINE_FIXED_MAX;
    for (int i = 0; i < S_N; i++)
        need += 6 * s[i].len + 4; /* quoted and escaped, or null */
    if (sl_buf_reserve(b, need) != SL_OK) {
        sl_access_commit(); /* (it drops the line and counts it) */
        return;
    }
    char *o = b->p + b->len;
    LIT(o, "{\"ts\":\"");
    o += sl_rfc3339_ms(sl_wall_ms_at(r->t_end ? r->t_end : sl_now_us()), o); /* when it ended */
    *o++ = '"';
    o = fields_identity(o, r, s);
    o = fields_usage(b, o, r);
    o = fields_rest(b, o, r, s);
    b->len = (size_t)(o - b->p);
    b->p[b->len] = '\0';
    sl_access_commit();
}
