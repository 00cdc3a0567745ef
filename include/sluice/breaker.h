/* breaker.h — one circuit breaker per provider name.
 *
 * Owns: the breaker table (in-process, keyed by provider name, so state
 * survives a config reload). closed -> open after `failures` consecutive
 * failures; open -> half-open after `cooldown_s`; half-open admits exactly one
 * probe at a time; its success closes, its failure re-opens. */
#ifndef SLUICE_BREAKER_H
#define SLUICE_BREAKER_H

#include "sluice/util.h"

typedef enum { SL_BREAKER_CLOSED = 0, SL_BREAKER_OPEN, SL_BREAKER_HALF_OPEN } sl_breaker_state;

typedef struct sl_breaker_ticket {
    int slot;   /* breaker index */
    bool probe; /* this call is the half-open probe */
} sl_breaker_ticket;

/* May a call go to `provider` now? On true, fills *t (pass it back to report or
 * release). On false, *wait_ms is the remaining cool-down. */
bool sl_breaker_admit(const char *provider, int cooldown_s, sl_breaker_ticket *t,
                      uint64_t *wait_ms);
void sl_breaker_report(const sl_breaker_ticket *t, bool ok, int failures, int cooldown_s);
/* The call ended without a verdict (client left): frees a probe slot. */
void sl_breaker_release(const sl_breaker_ticket *t);
sl_breaker_state sl_breaker_state_of(const char *provider);
const char *sl_breaker_state_name(sl_breaker_state s);
/* Consecutive failures and times opened, for /health and metrics. */
void sl_breaker_stats(const char *provider, int *failures, uint64_t *opened);

#endif
