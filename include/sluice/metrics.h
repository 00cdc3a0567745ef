/* metrics.h — Prometheus metrics, declared once in a table.
 *
 * Owns: every series (in-process). Families are declared once in metrics.c's
 * X-macro table: the enum, the names, the help text and the exposition all
 * come from it. Labelled series live in a hash table keyed by the label
 * values; tenants appear as a `tenant` label (never a key).
 *
 * Nothing a client sends may mint label values: `route` is the matched
 * route's template ("unmatched" for every unknown path), `model` a model the
 * configuration names or a provider recently served (else "other"), and each
 * family holds at most SL_METRICS_MAX_SERIES series; a series over it is
 * dropped and counted in sluice_metric_series_dropped_total{family}. */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include "sluice/buf.h"

struct sl_req;

/* name, type, help, label names (comma-separated, "" for none) */
#define SL_METRICS(X)                                                                              \
    X(REQUESTS, "sluice_requests_total", "counter",                                                \
      "Requests answered, by route, status, tenant, model, provider and cache outcome.",           \
      "route,status,tenant,model,provider,cache")                                                  \
    X(REQUEST_SECONDS, "sluice_request_duration_seconds", "histogram",                             \
      "Time from request to the end of the answer.", "route")                                      \
    X(UPSTREAM_SECONDS, "sluice_upstream_duration_seconds", "histogram",                           \
      "Time spent in upstream calls.", "provider")                                                 \
    X(TTFB_SECONDS, "sluice_upstream_ttfb_seconds", "histogram",                                   \
      "Time to the first byte of the upstream answer.", "provider")                                \
    X(TOKENS, "sluice_tokens_total", "counter",                                                    \
      "Tokens metered, by direction: input, output, and the kinds priced apart "                   \
      "(cached_input, cache_write, reasoning).",                                                   \
      "tenant,model,direction")                                                                    \
    X(COST, "sluice_cost_usd_total", "counter", "Money spent on providers, in USD.",               \
      "tenant,model")                                                                              \
    X(SAVED, "sluice_saved_usd_total", "counter",                                                  \
      "Money saved by the cache and coalescing, in USD.", "tenant,model")                          \
    X(RETRIES, "sluice_upstream_retries_total", "counter", "Extra upstream attempts.", "")         \
    X(FALLBACKS, "sluice_upstream_fallbacks_total", "counter",                                     \
      "Answers that came from another provider than the first one tried.", "")                     \
    X(UNPRICED, "sluice_unpriced_requests_total", "counter",                                       \
      "Answers metered at 0 because their model has no price.", "model")                           \
    X(COALESCED, "sluice_coalesced_requests_total", "counter",                                     \
      "Requests answered by joining an identical call in flight.", "")                             \
    X(EMBED_BATCHES, "sluice_embedding_batches_total", "counter",                                  \
      "Upstream embeddings calls that carried a batch of requests.", "")                           \
    X(EMBED_BATCH_INPUTS, "sluice_embedding_batch_inputs_total", "counter",                        \
      "Inputs sent in embedding batches (divided by the batches: inputs per batch).", "")          \
    X(INFLIGHT, "sluice_inflight_requests", "gauge", "Requests being handled now.", "")            \
    X(CONNECTIONS, "sluice_client_connections", "gauge", "Client connections open now.", "")       \
    X(UPSTREAM_INFLIGHT, "sluice_upstream_inflight_calls", "gauge", "Upstream calls in flight.",   \
      "")                                                                                          \
    X(CACHE_ENTRIES, "sluice_cache_entries", "gauge", "Entries in the in-process cache.", "")      \
    X(CACHE_BYTES, "sluice_cache_bytes", "gauge", "Bytes held by the in-process cache.", "")       \
    X(CACHE_LOOKUPS, "sluice_cache_lookups_total", "counter", "Cache lookups, by result.",         \
      "result")                                                                                    \
    X(BREAKER, "sluice_breaker_state", "gauge",                                                    \
      "Circuit breaker state per provider: 0 closed, 1 open, 2 half-open.", "provider")            \
    X(REDIS_UP, "sluice_redis_up", "gauge", "1 when the Redis state store is connected.", "")      \
    X(REDIS_FAILOVERS, "sluice_redis_failovers_total", "counter",                                  \
      "Sentinel failovers followed to a new master.", "")                                          \
    X(REDIS_CLUSTER_MASTERS, "sluice_redis_cluster_masters", "gauge",                              \
      "Masters in the Redis Cluster slot map, by state (up or down).", "state")                    \
    X(REDIS_CLUSTER_SLOTS, "sluice_redis_cluster_slots_covered", "gauge",                          \
      "Redis Cluster slots (of 16384) with a known master.", "")                                   \
    X(REDIS_CLUSTER_REDIRECTS, "sluice_redis_cluster_redirects_total", "counter",                  \
      "Redis Cluster redirects followed, by kind (moved, ask, tryagain, clusterdown).", "kind")    \
    X(REDIS_CLUSTER_REFRESHES, "sluice_redis_cluster_map_refreshes_total", "counter",              \
      "Redis Cluster slot maps read (on a schedule and after errors).", "")                        \
    X(REDIS_CONFIGURED, "sluice_redis_configured", "gauge",                                        \
      "1 when a Redis state store is configured (0: embedded state).", "")                         \
    X(CACHE_SAVED, "sluice_cache_saved_usd_total", "counter",                                      \
      "Money saved, in USD, by how the answer was served (hit, semantic, coalesced).", "cache")    \
    X(BUDGET, "sluice_budget_usd", "gauge",                                                        \
      "Configured spend budget per tenant, in USD, by period (total, monthly, daily).",            \
      "tenant,period")                                                                             \
    X(BUDGET_SPENT, "sluice_budget_spent_usd", "gauge",                                            \
      "Spend counted against the tenant's budget in the current period, in USD.", "tenant,period") \
    X(MODEL_PROVIDERS, "sluice_model_providers", "gauge",                                          \
      "Providers configured to serve a model the configuration names.", "model")                   \
    X(MODEL_PROVIDERS_OPEN, "sluice_model_providers_open", "gauge",                                \
      "Of those, providers whose breaker is not closed (open or half-open).", "model")             \
    X(SLA_ALERTS, "sluice_sla_alerts_total", "counter",                                            \
      "SLA alerts raised (each ticket once per state), by SLA (response, resolution) and state "   \
      "(at_risk, breached).",                                                                      \
      "sla,state")                                                                                 \
    X(SLA_DELIVERIES, "sluice_sla_alert_deliveries_total", "counter",                              \
      "SLA webhook delivery outcomes: delivered, retried, dead_lettered.", "result")               \
    X(START_TIME, "sluice_start_time_seconds", "gauge",                                            \
      "Unix time this process started (with workers: the latest-started worker).", "")             \
    X(WORKER_RESTARTS, "sluice_worker_restarts_total", "counter",                                  \
      "Workers the supervisor restarted after they died.", "")                                     \
    X(ACCESS_DROPPED, "sluice_access_log_dropped_total", "counter",                                \
      "Access-log lines dropped because the log reader stalled.", "")                              \
    X(SERIES_DROPPED, "sluice_metric_series_dropped_total", "counter",                             \
      "Series not recorded because their family was at its series cap.", "family")                 \
    X(TRACE_EXPORTED, "sluice_trace_spans_exported_total", "counter",                              \
      "Spans the OTLP collector accepted.", "")                                                    \
    X(TRACE_DROPPED, "sluice_trace_spans_dropped_total", "counter",                                \
      "Spans not exported, by reason: queue_full (tracing.max_queue_spans) or export_failed.",     \
      "reason")                                                                                    \
    X(TRACE_EXPORT_FAILURES, "sluice_trace_export_failures_total", "counter",                      \
      "OTLP export calls that failed (connect error, timeout, non-2xx); each is retried.", "")     \
    X(TRACE_QUEUE, "sluice_trace_queue_spans", "gauge",                                            \
      "Spans waiting for export or in flight to the collector.", "")

typedef enum {
#define SL_METRIC_ENUM(id, name, type, help, labels) SL_M_##id,
    SL_METRICS(SL_METRIC_ENUM)
#undef SL_METRIC_ENUM
        SL_M__COUNT
} sl_metric;

/* Adds v to the series of metric m with the given label values (as many as the
 * family declares, in order). */
void sl_metric_add(sl_metric m, double v, const char *const *labels);
/* The same as sl_metric_add for a hot path whose label values never change
 * (string constants): the series is looked up once and kept in *ref (zero
 * it to start), not rendered and hashed per call. */
typedef struct sl_metric_ref {
    void *series;
    unsigned generation; /* the registry's, when series was resolved */
} sl_metric_ref;
void sl_metric_add_ref(sl_metric_ref *ref, sl_metric m, double v, const char *const *labels);
/* Sets a gauge. */
void sl_metric_set(sl_metric m, double v, const char *const *labels);
/* Hides every series of gauge family m until it is set again: a refresher
 * that sets the series the configuration names retires the family first, so
 * that a key or model a reload removed stops being exported. */
void sl_metric_retire(sl_metric m);
/* Records one observation in a histogram. */
void sl_metric_observe(sl_metric m, double seconds, const char *const *labels);
#define SL_METRICS_MAX_SERIES 10000 /* per family */
#define SL_METRICS_MAX_MODELS 256   /* served-model names remembered as labels */
/* Everything a finished request contributes. */
void sl_metrics_request(const struct sl_req *r);
/* The `model` label of r into out (cap >= 2): the model's name when the
 * configuration names it (prices, a provider's explicit models, the triage
 * model) or a provider served it recently (a 2xx, up to
 * SL_METRICS_MAX_MODELS names), "" without a model, else "other". */
const char *sl_metrics_model_label(const struct sl_req *r, char *out, size_t cap);
/* Renders the Prometheus text exposition. SL_OK, or an error (the buffer's
 * bound or memory) after which out holds no usable text: answer 500. */
int sl_metrics_render(sl_buf *out);
void sl_metrics_free(void);
/* Workers: before the fork, a shared slot per worker (SL_EINVAL outside 2..64
 * workers); in each worker, publish its series there once a second. A
 * restarted worker starts from zero, so group counters may step back once
 * (Prometheus reads that as a counter reset). */
struct event_base;
int sl_metrics_share(int workers);
void sl_metrics_worker(struct event_base *base, int index);
void sl_metrics_worker_stop(void);
/* The supervisor, after restarting a dead worker: counted in shared memory
 * (sluice_worker_restarts_total; no-op without sl_metrics_share). */
void sl_metrics_note_restart(void);
/* A registered provider of gauges refreshed at scrape time. */
typedef void (*sl_metrics_refresh_fn)(void);
void sl_metrics_on_scrape(sl_metrics_refresh_fn fn);

#endif
