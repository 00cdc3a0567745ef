/* trace_export.h — sends the span queue (trace.h) to an OTLP/HTTP collector.
 *
 * Owns: the export timer, the batch in flight (its protobuf body) and its
 * retry state. One export call at a time through curl multi (upstream.h),
 * POST {tracing.otlp_endpoint}/v1/traces, application/x-protobuf, with
 * tracing.headers; every tracing.flush_ms, or at once when SL_TRACE_BATCH
 * spans wait. A failed call (connect error, timeout after
 * tracing.timeout_ms, non-2xx) is retried with exponential backoff up to
 * 3 times, then its spans are dropped and counted; meanwhile new spans queue
 * up to tracing.max_queue_spans, over which they are dropped and counted.
 * Nothing here waits: a collector down or slow costs requests nothing. */
#ifndef SLUICE_TRACE_EXPORT_H
#define SLUICE_TRACE_EXPORT_H

#include "sluice/config.h"

struct event_base;

/* Starts tracing when c->tracing.otlp_endpoint is set (sl_trace_on); else
 * does nothing. Non-zero: out of memory. */
int sl_trace_export_init(struct event_base *base, const sl_config *c);
/* Stops the timer and cancels an export in flight (at exit). */
void sl_trace_export_shutdown(void);

#endif
