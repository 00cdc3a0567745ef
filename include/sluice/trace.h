/* trace.h — W3C trace context and OpenTelemetry spans, encoded as OTLP protobuf.
 *
 * Owns: the process's span queue (encoded spans waiting for the exporter,
 * bounded by tracing.max_queue_spans), its counters, and the id generator.
 * A span is built on the caller's stack (sl_span: a fixed buffer, no heap)
 * and copied into the queue by sl_span_emit once complete, so a span never
 * lives across a callback and a request never owns queue memory. The
 * exporter (trace_export.h, curl multi) takes the queue a batch at a time.
 *
 * Tracing off (no tracing.otlp_endpoint): sl_trace_on is false, r->trace is
 * NULL and every hook in the request path is one test of that pointer.
 *
 * Sampling is parent-based: a valid client traceparent's sampled flag
 * decides; without one, tracing.sample_ratio of the trace ids (the W3C
 * TraceIdRatioBased rule on the id's low 8 bytes). An unsampled request still
 * has a trace id (access log, response header, upstream traceparent with
 * flag 00) but records no span. */
#ifndef SLUICE_TRACE_H
#define SLUICE_TRACE_H

#include "sluice/buf.h"
#include "sluice/util.h"

#define SL_TRACEPARENT_LEN 55   /* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define SL_SPAN_MAX        4096 /* encoded bytes of one span; attributes past it are dropped */
#define SL_TRACESTATE_MAX  512  /* the W3C limit; a longer one is not carried */

/* One request's trace: created by the server when tracing is on (arena). */
typedef struct sl_trace {
    uint8_t trace_id[16];
    uint8_t span_id[8];   /* this request's SERVER (or INTERNAL) span */
    uint8_t parent_id[8]; /* the span it continues (client's, or the parent request's) */
    bool has_parent;
    bool sampled;           /* spans are recorded and exported */
    bool internal;          /* sluice's own request on another's behalf (INTERNAL span) */
    const char *tracestate; /* the client's, carried as received (validated), or NULL */
    char header[SL_TRACEPARENT_LEN + 1]; /* traceparent naming this request's span */
    /* what the stages note for the child spans the observer writes */
    uint64_t t_cache_start, t_cache_end; /* lookup (monotonic µs, 0: none) */
    const char *cache_layer;             /* the last layer asked: "l1" or "l2" */
    uint64_t t_wait_start, t_wait_end;   /* waited on a flight (coalescing follower) */
} sl_trace;

/* Span kinds as OTLP numbers them. */
enum { SL_SPAN_INTERNAL = 1, SL_SPAN_SERVER = 2, SL_SPAN_CLIENT = 3 };

/* A span being built (caller's stack). */
typedef struct sl_span {
    size_t len;
    uint32_t dropped; /* attributes that did not fit */
    bool active;      /* false: not sampled, every call is a no-op */
    uint8_t buf[SL_SPAN_MAX];
} sl_span;

typedef struct sl_trace_stats {
    uint64_t emitted;        /* spans queued */
    uint64_t dropped_full;   /* spans refused: the queue was at max_queue_spans */
    uint64_t dropped_failed; /* spans of batches the collector never took */
    uint64_t exported;       /* spans the collector acknowledged */
    uint64_t export_errors;  /* export calls that failed (each retried or dropped) */
    size_t queued;           /* spans waiting or in flight now */
} sl_trace_stats;

extern bool sl_trace_on; /* tracing.otlp_endpoint was set at start */
/* The trace of the request whose stage hook is running (pipeline.c sets it
 * around each hook), NULL outside one: what a Redis command issued from
 * there belongs to. */
extern const sl_trace *sl_trace_current;
extern uint64_t sl_trace_redis_slow_us; /* tracing.redis_slow_ms */

/* ---- W3C trace context ---------------------------------------------------- */

/* Strict traceparent (version 00 exactly 55 bytes; a higher version: its first
 * 55 bytes followed by nothing or '-'): lowercase hex, not all-zero ids,
 * version not ff. 0, or SL_EINVAL (the caller starts a new trace). */
int sl_traceparent_parse(const char *s, size_t n, uint8_t trace_id[16], uint8_t span_id[8],
                         uint8_t *flags);
/* "00-<trace>-<span>-<01|00>" into out (SL_TRACEPARENT_LEN + 1 bytes). */
void sl_traceparent_format(char *out, const uint8_t trace_id[16], const uint8_t span_id[8],
                           bool sampled);
/* A tracestate worth carrying: at most SL_TRACESTATE_MAX printable bytes
 * without control characters (its members are the vendors' business). */
bool sl_tracestate_valid(const char *s, size_t n);
/* Fills t for a request: continues traceparent (NULL or invalid: a new trace
 * sampled at ratio), a fresh span id, the response header. */
void sl_trace_begin(sl_trace *t, const char *traceparent, size_t n, double ratio);
/* A child trace context under parent's span (internal requests). */
void sl_trace_child(sl_trace *t, const sl_trace *parent);
void sl_trace_new_id(uint8_t *out, size_t n);       /* n 8 or 16: random, never all zero */
void sl_hex(char *out, const uint8_t *p, size_t n); /* 2n chars, no NUL */

/* ---- spans ------------------------------------------------------------------ */

/* Starts a span of trace t (times monotonic µs, as sl_now_us). parent NULL:
 * t's own span is the parent; span_id NULL: a fresh one. A span of an
 * unsampled trace (or with tracing off) is inactive. */
void sl_span_begin(sl_span *s, const sl_trace *t, const uint8_t *span_id, const uint8_t *parent,
                   const char *name, int kind, uint64_t start_us, uint64_t end_us);
/* A root span of its own trace (a service tick), sampled at the ratio. */
void sl_span_begin_root(sl_span *s, const char *name, uint64_t start_us, uint64_t end_us,
                        double ratio);
/* Attributes. The key is a string literal (the macros insist: "" key), so
 * its length is a constant where it is written, not a strlen per request. */
#define SL_SPAN_KEY(key) ("" key), (sizeof("" key) - 1)
#define sl_span_str(s, key, v)     sl_span_str_k((s), SL_SPAN_KEY(key), (v)) /* empty or NULL: skipped */
#define sl_span_cstr(s, key, v)    sl_span_cstr_k((s), SL_SPAN_KEY(key), (v))
#define sl_span_int(s, key, v)     sl_span_int_k((s), SL_SPAN_KEY(key), (v))
#define sl_span_double(s, key, v)  sl_span_double_k((s), SL_SPAN_KEY(key), (v))
#define sl_span_bool(s, key, v)    sl_span_bool_k((s), SL_SPAN_KEY(key), (v))
#define sl_span_strs(s, key, v, n) sl_span_strs_k((s), SL_SPAN_KEY(key), (v), (n)) /* string array */
void sl_span_str_k(sl_span *s, const char *key, size_t kl, sl_str v);
void sl_span_cstr_k(sl_span *s, const char *key, size_t kl, const char *v);
void sl_span_int_k(sl_span *s, const char *key, size_t kl, int64_t v);
void sl_span_double_k(sl_span *s, const char *key, size_t kl, double v);
void sl_span_bool_k(sl_span *s, const char *key, size_t kl, bool v);
void sl_span_strs_k(sl_span *s, const char *key, size_t kl, const sl_str *v, size_t n);
/* Appends the attributes written into attrs (a span used as a scratch
 * buffer: active set by hand, len 0): a block encoded once and reused. */
void sl_span_raw(sl_span *s, const sl_span *attrs);
/* The span's status: error with a message (NULL: unset status). */
void sl_span_error(sl_span *s, const char *message);
/* Queues the span (or counts it dropped when the queue is full). */
void sl_span_emit(sl_span *s);

/* ---- the queue (the exporter's side) ---------------------------------------- */

/* Sizes the queue and names the resource (service.name); called once at start. */
void sl_trace_init(size_t max_queue_spans, const char *service_name);
void sl_trace_fini(void);
/* Called when the queue holds a batch's worth (the exporter flushes early). */
void sl_trace_on_batch(void (*fn)(void));
#define SL_TRACE_BATCH 512
/* Moves the waiting spans into out as one ExportTraceServiceRequest
 * (protobuf) and returns how many; they count as queued until
 * sl_trace_done(n, ok). 0: nothing waits (out untouched). */
size_t sl_trace_take(sl_buf *out);
void sl_trace_done(size_t n, bool exported);
void sl_trace_export_error(void);
size_t sl_trace_pending(void); /* spans waiting (not in flight) */
sl_trace_stats sl_trace_get_stats(void);
/* The observer (pipeline.c's observers[] when tracing is on): the request's
 * SERVER span (INTERNAL for sluice's own requests) and the children the
 * stages noted on r->trace: cache lookup, coalescing wait. */
struct sl_req;
void sl_trace_request(const struct sl_req *r);

/* Unix ns of a monotonic µs time. */
uint64_t sl_trace_unix_ns(uint64_t mono_us);

#endif
