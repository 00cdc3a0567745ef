/* stats.h — the short in-process history behind the dashboard (/stats, /ui).
 *
 * Owns: fixed-size rings only — 90 ten-second buckets (15 minutes of traffic),
 * the last 1024 latencies, the last 20 errors, and small per-tenant and
 * per-model tables — so it never grows with time or traffic. */
#ifndef SLUICE_STATS_H
#define SLUICE_STATS_H

#include "sluice/buf.h"

struct sl_req;

/* Moves the history into shared memory; call before forking workers so the
 * whole process group writes (and /stats reads) one history. */
int sl_stats_share(void);
void sl_stats_request(const struct sl_req *r);
/* Appends the JSON members (without braces) of the history: series,
 * latency, tenants, models, errors, totals. */
void sl_stats_render(sl_buf *b);
/* Recent error rate of a provider (0..1 over its last 100 answers). */
double sl_stats_provider_error_rate(const char *provider);

#endif
