/* sla_alert.h — SLA evaluation and alert delivery.
 *
 * Owns: the evaluation timer (every sla.evaluate_every_s it pops the due
 * alerts of the SLA store and raises those whose state still holds), the
 * webhook deliveries in flight (curl multi, exponential backoff, then the
 * store's dead-letter list), and the delivered / dead-lettered counters.
 * The store is the caller's and must outlive sl_sla_alert_stop. */
#ifndef SLUICE_SLA_ALERT_H
#define SLUICE_SLA_ALERT_H

#include "sluice/sla_store.h"

struct event_base;

int sl_sla_alert_start(struct event_base *base, sl_sla_store *store, const sl_config *c);
void sl_sla_alert_reload(const sl_config *c);
void sl_sla_alert_stop(void);
/* Alerts that went to the dead-letter list since start. */
uint64_t sl_sla_alert_dead_total(void);

#endif
