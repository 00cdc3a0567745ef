/* sla.h — SLA tracking of support tickets, as route handlers.
 *
 * Owns: the SLA store in use (sla_store.h: Redis when configured, else in
 * process) and the configuration the handlers read; starts and stops the
 * evaluation and alert delivery (sla_alert.h). The ticket model and the SLA
 * arithmetic are ticket.h's. Routes: POST /sla/tickets, GET /sla/tickets/{id},
 * GET /sla/dashboard, GET /sla/alerts/dead. */
#ifndef SLUICE_SLA_H
#define SLUICE_SLA_H

#include "sluice/req.h"
#include "sluice/ticket.h"

struct event_base;
struct sl_redis;

/* redis NULL: the in-process store. */
int sl_sla_start(struct event_base *base, struct sl_redis *redis, const sl_config *c);
void sl_sla_reload(const sl_config *c);
void sl_sla_stop(void);

void sl_sla_ingest(sl_req *r);
void sl_sla_get(sl_req *r);
void sl_sla_dashboard(sl_req *r);
void sl_sla_dead(sl_req *r);

#endif
