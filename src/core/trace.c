/* trace.c — W3C trace context, OTLP protobuf span encoding and the span queue.
 *
 * The protobuf is written by hand (the wire format is five rules: varint,
 * fixed64, length-delimited, tag = field << 3 | type, fields in any order):
 * a span is a handful of fixed fields and a list of KeyValue attributes,
 * each small enough that its length is known before it is written, so one
 * pass into a stack buffer encodes it. Field numbers are those of
 * opentelemetry/proto/trace/v1/trace.proto and common/v1/common.proto. */
#include "sluice/trace.h"

#include "sluice/metrics.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

bool sl_trace_on;
const sl_trace *sl_trace_current;
uint64_t sl_trace_redis_slow_us = 20000;

/* ---- ids ------------------------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t next_rand(void)
{
    if (!rng_state) {
        sl_random_bytes(&rng_state, sizeof rng_state);
        rng_state |= 1;
    }
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i])
            return false;
    }
    return true;
}

/* Ids are 8 or 16 bytes: whole random words, and a word of zeros (never
 * seen in practice: splitmix64 maps exactly one state to 0) drawn again, so
 * that no id is all zero. */
void sl_trace_new_id(uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v;
        do
            v = next_rand();
        while (!v);
        memcpy(out + i, &v, SL_MIN(8, n - i));
    }
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* 4 bytes to 8 lowercase hex digits in a register: each byte spread to a
 * 16-bit lane, its nibbles swapped into print order, then '0' added to every
 * nibble and 39 more ('a' - '0' - 10) to those above 9. */
static void hex4(char *out, const uint8_t *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    uint64_t x = w;
    x = (x | x << 16) & 0x0000FFFF0000FFFFull;
    x = (x | x << 8) & 0x00FF00FF00FF00FFull;
    x = (x >> 4 & 0x000F000F000F000Full) | (x & 0x000F000F000F000Full) << 8;
    uint64_t above9 = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
    x += 0x3030303030303030ull + above9 * 39;
    memcpy(out, &x, 8);
}
#endif

void sl_hex(char *out, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 4 <= n; i += 4)
        hex4(out + 2 * i, p + i);
#endif
    for (; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
}

/* ---- W3C trace context ------------------------------------------------------------ */

static int lhex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* uppercase is invalid in traceparent */
}

static bool unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = lhex(s[2 * i]), lo = lhex(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

int sl_traceparent_parse(const char *s, size_t n, uint8_t trace_id[16], uint8_t span_id[8],
                         uint8_t *flags)
{
    uint8_t version;
    if (!s || n < SL_TRACEPARENT_LEN || !unhex(s, &version, 1) || version == 0xff)
        return SL_EINVAL;
    if (version == 0 && n != SL_TRACEPARENT_LEN)
        return SL_EINVAL;
    if (n > SL_TRACEPARENT_LEN && s[SL_TRACEPARENT_LEN] != '-')
        return SL_EINVAL; /* a future version may add fields, after a dash */
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return SL_EINVAL;
    uint8_t t[16], p[8], f;
    if (!unhex(s + 3, t, 16) || !unhex(s + 36, p, 8) || !unhex(s + 53, &f, 1))
        return SL_EINVAL;
    if (all_zero(t, 16) || all_zero(p, 8))
        return SL_EINVAL;
    memcpy(trace_id, t, 16);
    memcpy(span_id, p, 8);
    *flags = f;
    return SL_OK;
}

void sl_traceparent_format(char *out, const uint8_t trace_id[16], const uint8_t span_id[8],
                           bool sampled)
{
    memcpy(out, "00-", 3);
    sl_hex(out + 3, trace_id, 16);
    out[35] = '-';
    sl_hex(out + 36, span_id, 8);
    memcpy(out + 52, sampled ? "-01" : "-00", 3);
    out[SL_TRACEPARENT_LEN] = '\0';
}

bool sl_tracestate_valid(const char *s, size_t n)
{
    if (!s || n == 0 || n > SL_TRACESTATE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e)
            return false;
    }
    return true;
}

/* TraceIdRatioBased: the id's last 8 bytes, big-endian, under ratio * 2^64. */
static bool ratio_admits(const uint8_t trace_id[16], double ratio)
{
    if (ratio >= 1.0)
        return true;
    if (ratio <= 0.0)
        return false;
    uint64_t v = 0;
    for (int i = 8; i < 16; i++)
        v = v << 8 | trace_id[i];
    return (double)(v >> 11) < ratio * (double)(1ull << 53);
}

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t'))
        (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

void sl_trace_begin(sl_trace *t, const char *traceparent, size_t n, double ratio)
{
    memset(t, 0, sizeof *t);
    uint8_t flags = 0;
    if (traceparent)
        trim(&traceparent, &n);
    if (traceparent &&
        sl_traceparent_parse(traceparent, n, t->trace_id, t->parent_id, &flags) == 0) {
        t->has_parent = true;
        t->sampled = flags & 1;
    } else {
        sl_trace_new_id(t->trace_id, 16);
        t->sampled = ratio_admits(t->trace_id, ratio);
    }
    sl_trace_new_id(t->span_id, 8);
    sl_traceparent_format(t->header, t->trace_id, t->span_id, t->sampled);
}

void sl_trace_child(sl_trace *t, const sl_trace *parent)
{
    memset(t, 0, sizeof *t);
    memcpy(t->trace_id, parent->trace_id, 16);
    memcpy(t->parent_id, parent->span_id, 8);
    t->has_parent = true;
    t->sampled = parent->sampled;
    t->internal = true;
    t->tracestate = parent->tracestate;
    sl_trace_new_id(t->span_id, 8);
    sl_traceparent_format(t->header, t->trace_id, t->span_id, t->sampled);
}

/* ---- protobuf ------------------------------------------------------------------- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2 };

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80)
        v >>= 7, n++;
    return n;
}

static bool room(sl_span *s, size_t n)
{
    return s->len + n <= sizeof s->buf;
}

/* The writers keep the length in a local while they store bytes: a byte
 * store may alias s->len as far as the compiler knows, so writing through
 * s->buf[s->len++] reloaded and stored the length once per byte. */
static void put_byte(sl_span *s, uint8_t b)
{
    s->buf[s->len++] = b;
}

static void put_varint(sl_span *s, uint64_t v)
{
    uint8_t *b = s->buf;
    size_t n = s->len;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    s->len = n;
}

/* Keys, ids and most values are 4-32 bytes: two overlapping fixed-size
 * copies (inlined moves) instead of a byte loop or a call to memcpy. */
static inline void copy_small(uint8_t *d, const uint8_t *q, size_t n)
{
    if (n >= 16 && n <= 32) {
        memcpy(d, q, 16);
        memcpy(d + n - 16, q + n - 16, 16);
    } else if (n >= 8 && n < 16) {
        memcpy(d, q, 8);
        memcpy(d + n - 8, q + n - 8, 8);
    } else if (n >= 4 && n < 8) {
        memcpy(d, q, 4);
        memcpy(d + n - 4, q + n - 4, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++)
            d[i] = q[i];
    } else {
        memcpy(d, q, n);
    }
}

static inline void put_bytes(sl_span *s, const void *p, size_t n)
{
    copy_small(s->buf + s->len, p, n);
    s->len += n;
}

/* The writers at a pointer: each returns the byte after what it wrote. */
static inline uint8_t *varint_at(uint8_t *d, uint64_t v)
{
    while (v >= 0x80) {
        *d++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *d++ = (uint8_t)v;
    return d;
}

static inline uint8_t *fixed64_at(uint8_t *d, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(d, &v, 8);
#else
    for (int i = 0; i < 8; i++) /* little-endian, whatever the host */
        d[i] = (uint8_t)(v >> (8 * i));
#endif
    return d + 8;
}

static inline uint8_t *lenfield_at(uint8_t *d, unsigned field, const void *p, size_t n)
{
    *d++ = (uint8_t)(field << 3 | WT_LEN); /* fields below 16: a one-byte tag */
    d = varint_at(d, n);
    copy_small(d, p, n);
    return d + n;
}

static void put_fixed64(sl_span *s, uint64_t v)
{
    fixed64_at(s->buf + s->len, v);
    s->len += 8;
}

static void put_tag(sl_span *s, unsigned field, unsigned wt)
{
    put_varint(s, (uint64_t)field << 3 | wt);
}

/* field, length, bytes; the caller checked the room */
static void put_lenfield(sl_span *s, unsigned field, const void *p, size_t n)
{
    put_tag(s, field, WT_LEN);
    put_varint(s, n);
    put_bytes(s, p, n);
}

static size_t lenfield_size(size_t n)
{
    return 1 + varint_len(n) + n;
}

/* ---- spans ------------------------------------------------------------------------ */

static struct {
    uint64_t offset_ns; /* unix ns - monotonic ns, taken at init */
    sl_buf pending;     /* ScopeSpans.spans fields, ready to send */
    size_t n_pending, n_inflight, max;
    sl_buf resource; /* ResourceSpans.resource + the ScopeSpans.scope, encoded once */
    sl_buf scope;
    void (*on_batch)(void);
    sl_trace_stats st;
} q;

uint64_t sl_trace_unix_ns(uint64_t mono_us)
{
    return mono_us * 1000u + q.offset_ns;
}

void sl_span_begin(sl_span *s, const sl_trace *t, const uint8_t *span_id, const uint8_t *parent,
                   const char *name, int kind, uint64_t start_us, uint64_t end_us)
{
    s->len = 0;
    s->dropped = 0;
    s->active = sl_trace_on && t && t->sampled && q.max;
    if (!s->active)
        return;
    uint8_t fresh[8];
    if (!span_id) {
        sl_trace_new_id(fresh, 8);
        span_id = fresh;
    }
    if (!parent && (t->has_parent || span_id != t->span_id))
        parent = span_id == t->span_id ? t->parent_id : t->span_id;
    size_t nl = SL_MIN(strlen(name), 256);
    put_lenfield(s, 1, t->trace_id, 16);
    put_lenfield(s, 2, span_id, 8);
    if (t->tracestate)
        put_lenfield(s, 3, t->tracestate, strlen(t->tracestate)); /* <= 512 */
    if (parent)
        put_lenfield(s, 4, parent, 8);
    put_lenfield(s, 5, name, nl);
    put_tag(s, 6, WT_VARINT);
    put_varint(s, (uint64_t)kind);
    if (end_us < start_us)
        end_us = start_us;
    put_tag(s, 7, WT_I64);
    put_fixed64(s, sl_trace_unix_ns(start_us));
    put_tag(s, 8, WT_I64);
    put_fixed64(s, sl_trace_unix_ns(end_us));
}

void sl_span_begin_root(sl_span *s, const char *name, uint64_t start_us, uint64_t end_us,
                        double ratio)
{
    sl_trace t;
    sl_trace_begin(&t, NULL, 0, ratio);
    sl_span_begin(s, &t, t.span_id, NULL, name, SL_SPAN_INTERNAL, start_us, end_us);
}

/* Span.attributes (9) = KeyValue { key = 1; value = 2 (AnyValue, `vlen` bytes) }.
 * Writes the heads in one pass through a pointer (no per-byte length
 * reloads, no call per field) and returns where the AnyValue's vlen bytes
 * go, already counted in s->len; NULL when the span is inactive or the
 * attribute does not fit (counted dropped). The caller writes exactly vlen
 * bytes there. */
static uint8_t *attr_head(sl_span *s, const char *key, size_t kl, size_t vlen)
{
    if (!s->active)
        return NULL;
    size_t kv = lenfield_size(kl) + lenfield_size(vlen);
    if (!room(s, lenfield_size(kv))) {
        s->dropped++;
        return NULL;
    }
    uint8_t *d = s->buf + s->len;
    *d++ = 9 << 3 | WT_LEN;
    d = varint_at(d, kv);
    d = lenfield_at(d, 1, key, kl);
    *d++ = 2 << 3 | WT_LEN;
    d = varint_at(d, vlen);
    s->len = (size_t)(d - s->buf) + vlen;
    return d;
}

void sl_span_str_k(sl_span *s, const char *key, size_t kl, sl_str v)
{
    if (!v.p || !v.len)
        return;
    v.len = SL_MIN(v.len, 2048); /* a captured message is cut, not dropped */
    uint8_t *d = attr_head(s, key, kl, lenfield_size(v.len));
    if (d)
        lenfield_at(d, 1, v.p, v.len); /* AnyValue.string_value */
}

void sl_span_cstr_k(sl_span *s, const char *key, size_t kl, const char *v)
{
    if (s->active && v)
        sl_span_str_k(s, key, kl, sl_str_c(v));
}

void sl_span_int_k(sl_span *s, const char *key, size_t kl, int64_t v)
{
    uint8_t *d = attr_head(s, key, kl, 1 + varint_len((uint64_t)v));
    if (d) {
        *d++ = 3 << 3 | WT_VARINT; /* AnyValue.int_value */
        varint_at(d, (uint64_t)v);
    }
}

void sl_span_double_k(sl_span *s, const char *key, size_t kl, double v)
{
    uint8_t *d = attr_head(s, key, kl, 9);
    if (d) {
        uint64_t bits;
        memcpy(&bits, &v, 8);
        *d++ = 4 << 3 | WT_I64; /* AnyValue.double_value */
        fixed64_at(d, bits);
    }
}

void sl_span_bool_k(sl_span *s, const char *key, size_t kl, bool v)
{
    uint8_t *d = attr_head(s, key, kl, 2);
    if (d) {
        d[0] = 2 << 3 | WT_VARINT; /* AnyValue.bool_value */
        d[1] = v ? 1 : 0;
    }
}

void sl_span_strs_k(sl_span *s, const char *key, size_t kl, const sl_str *v, size_t n)
{
    size_t arr = 0;
    for (size_t i = 0; i < n; i++)
        arr += lenfield_size(lenfield_size(SL_MIN(v[i].len, 256)));
    uint8_t *d = n ? attr_head(s, key, kl, lenfield_size(arr)) : NULL;
    if (!d)
        return;
    *d++ = 5 << 3 | WT_LEN; /* AnyValue.array_value = ArrayValue { values = 1 } */
    d = varint_at(d, arr);
    for (size_t i = 0; i < n; i++) {
        size_t l = SL_MIN(v[i].len, 256);
        *d++ = 1 << 3 | WT_LEN; /* ArrayValue.values: AnyValue { string_value = 1 } */
        d = varint_at(d, lenfield_size(l));
        d = lenfield_at(d, 1, v[i].p, l);
    }
}

void sl_span_raw(sl_span *s, const sl_span *attrs)
{
    if (!s->active || !room(s, attrs->len))
        return;
    put_bytes(s, attrs->buf, attrs->len);
}

void sl_span_error(sl_span *s, const char *message)
{
    if (!s->active)
        return;
    size_t ml = message ? SL_MIN(strlen(message), 256) : 0;
    size_t body = (ml ? lenfield_size(ml) : 0) + 2;
    if (!room(s, lenfield_size(body)))
        return;
    put_tag(s, 15, WT_LEN); /* Span.status = Status { message = 2; code = 3 } */
    put_varint(s, body);
    if (ml)
        put_lenfield(s, 2, message, ml);
    put_tag(s, 3, WT_VARINT);
    put_byte(s, 2); /* STATUS_CODE_ERROR */
}

static void drop_full(void)
{
    static const char *const reason[] = {"queue_full"};
    q.st.dropped_full++;
    sl_metric_add(SL_M_TRACE_DROPPED, 1, reason);
}

void sl_span_emit(sl_span *s)
{
    if (!s->active)
        return;
    s->active = false;
    if (s->dropped && room(s, 6)) {
        put_tag(s, 10, WT_VARINT); /* dropped_attributes_count */
        put_varint(s, s->dropped);
    }
    if (q.n_pending + q.n_inflight >= q.max) {
        drop_full();
        return;
    }
    uint8_t head[12];
    size_t hl = 0;
    head[hl++] = 2 << 3 | WT_LEN; /* ScopeSpans.spans */
    for (uint64_t v = s->len;; v >>= 7) {
        head[hl++] = (uint8_t)(v < 0x80 ? v : (v | 0x80));
        if (v < 0x80)
            break;
    }
    size_t before = q.pending.len;
    sl_buf_append(&q.pending, (const char *)head, hl);
    sl_buf_append(&q.pending, (const char *)s->buf, s->len);
    if (q.pending.err) { /* out of memory: what is queued stays, this span goes */
        sl_buf_truncate(&q.pending, before);
        drop_full();
        return;
    }
    q.n_pending++;
    q.st.emitted++;
    if (q.n_pending == SL_TRACE_BATCH && q.on_batch)
        q.on_batch();
}

/* ---- the queue -------------------------------------------------------------------- */

static void buf_lenfield(sl_buf *b, unsigned field, const void *p, size_t n)
{
    sl_span tmp; /* small pieces: encode through a span buffer */
    tmp.len = 0;
    put_lenfield(&tmp, field, p, SL_MIN(n, sizeof tmp.buf - 16));
    sl_buf_append(b, (const char *)tmp.buf, tmp.len);
}

/* Resource { attributes = 1 }, with service.name and what sluice is. */
static void encode_resource(const char *service_name)
{
    sl_span kv = {.active = true};
    sl_span_cstr(&kv, "service.name", service_name);
    sl_span_cstr(&kv, "telemetry.sdk.name", "sluice");
    sl_span_cstr(&kv, "telemetry.sdk.language", "c");
    /* the attributes were written as Span field 9; in Resource they are field 1 */
    for (size_t i = 0; i < kv.len;) {
        kv.buf[i] = 1 << 3 | WT_LEN;
        uint64_t l = 0;
        size_t j = i + 1;
        for (int sh = 0;; sh += 7) {
            l |= (uint64_t)(kv.buf[j] & 0x7f) << sh;
            if (!(kv.buf[j++] & 0x80))
                break;
        }
        i = j + l;
    }
    buf_lenfield(&q.resource, 1, kv.buf, kv.len); /* ResourceSpans.resource */
    sl_span sc = {.active = true};
    put_lenfield(&sc, 1, "sluice", 6);         /* InstrumentationScope { name = 1 } */
    buf_lenfield(&q.scope, 1, sc.buf, sc.len); /* ScopeSpans.scope */
}

void sl_trace_init(size_t max_queue_spans, const char *service_name)
{
    sl_trace_fini();
    struct timespec mono, wall;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    clock_gettime(CLOCK_REALTIME, &wall);
    uint64_t m = (uint64_t)mono.tv_sec * 1000000000u + (uint64_t)mono.tv_nsec;
    uint64_t w = (uint64_t)wall.tv_sec * 1000000000u + (uint64_t)wall.tv_nsec;
    q.offset_ns = w - m / 1000u * 1000u;
    q.max = max_queue_spans;
    sl_buf_init(&q.pending, 0);
    sl_buf_init(&q.resource, 0);
    sl_buf_init(&q.scope, 0);
    encode_resource(service_name && service_name[0] ? service_name : "sluice");
}

void sl_trace_fini(void)
{
    sl_buf_free(&q.pending);
    sl_buf_free(&q.resource);
    sl_buf_free(&q.scope);
    q.n_pending = q.n_inflight = q.max = 0;
}

void sl_trace_on_batch(void (*fn)(void))
{
    q.on_batch = fn;
}

static void append_varint(sl_buf *b, uint64_t v)
{
    char t[10];
    size_t n = 0;
    while (v >= 0x80) {
        t[n++] = (char)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (char)v;
    sl_buf_append(b, t, n);
}

size_t sl_trace_take(sl_buf *out)
{
    if (!q.n_pending)
        return 0;
    size_t ss = q.scope.len + q.pending.len;              /* ScopeSpans */
    size_t rs = q.resource.len + 1 + varint_len(ss) + ss; /* ResourceSpans */
    sl_buf_reset(out);
    sl_buf_append(out, "\x0a", 1); /* ExportTraceServiceRequest.resource_spans */
    append_varint(out, rs);
    sl_buf_append(out, q.resource.p, q.resource.len);
    sl_buf_append(out, "\x12", 1); /* ResourceSpans.scope_spans */
    append_varint(out, ss);
    sl_buf_append(out, q.scope.p, q.scope.len);
    sl_buf_append(out, q.pending.p, q.pending.len);
    if (out->err) {
        sl_buf_reset(out);
        return 0; /* out of memory: try again at the next flush */
    }
    size_t n = q.n_pending;
    q.n_inflight += n;
    q.n_pending = 0;
    sl_buf_reset(&q.pending);
    sl_metric_set(SL_M_TRACE_QUEUE, (double)q.n_inflight, NULL);
    return n;
}

void sl_trace_done(size_t n, bool exported)
{
    static const char *const reason[] = {"export_failed"};
    n = SL_MIN(n, q.n_inflight);
    q.n_inflight -= n;
    if (exported)
        q.st.exported += n;
    else
        q.st.dropped_failed += n;
    if (exported)
        sl_metric_add(SL_M_TRACE_EXPORTED, (double)n, NULL);
    else
        sl_metric_add(SL_M_TRACE_DROPPED, (double)n, reason);
    sl_metric_set(SL_M_TRACE_QUEUE, (double)(q.n_pending + q.n_inflight), NULL);
}

size_t sl_trace_pending(void)
{
    return q.n_pending;
}

void sl_trace_export_error(void)
{
    q.st.export_errors++;
    sl_metric_add(SL_M_TRACE_EXPORT_FAILURES, 1, NULL);
}

sl_trace_stats sl_trace_get_stats(void)
{
    sl_trace_stats s = q.st;
    s.queued = q.n_pending + q.n_inflight;
    return s;
}
