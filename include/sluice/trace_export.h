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
/* At a clean stop, once no request is in flight: sends what is queued now
 * (one export at a time, as always). True while something is still to send
 * or an export is out — the caller keeps the loop running until false, or
 * until its own deadline (main: tracing.timeout_ms past the drain). */
bool sl_trace_export_flushing(void);
/* Stops the timer and cancels an export in flight (at exit). */
void sl_trace_export_shutdown(void);

#endif
