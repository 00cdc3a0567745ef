/* sla.h — SLA tracking of support tickets, as route handlers.
 *
 * Owns: the ticket store (Redis when configured, else in process), the
 * evaluation timer, alert de-duplication, webhook deliveries in flight and
 * the dead-letter list. Routes: POST /sla/tickets, GET /sla/tickets/{id},
 * GET /sla/dashboard, GET /sla/alerts/dead. */
#ifndef SLUICE_SLA_H
#define SLUICE_SLA_H

#include "sluice/req.h"

struct event_base;
struct sl_redis;

typedef enum {
    SL_SLA_NO_TARGET = 0,
    SL_SLA_ON_TRACK,
    SL_SLA_AT_RISK,
    SL_SLA_BREACHED,
    SL_SLA_MET
} sl_sla_state;

typedef struct sl_ticket {
    sl_str id, subject, tier;
    int priority; /* 0 critical .. 3 low */
    int status;   /* 0 open, 1 pending, 2 resolved, 3 closed */
    int64_t created_ms, updated_ms, first_response_ms, resolved_ms; /* 0: absent */
} sl_ticket;

typedef struct sl_sla_view {
    sl_sla_state state;
    int64_t due_ms;
    double remaining_s, remaining_ratio;
} sl_sla_view;

/* RFC 3339 ("2026-11-24T03:33:22.5+01:00") to epoch ms; SL_EINVAL when malformed. */
int sl_parse_rfc3339(sl_str s, int64_t *ms);
/* Validates one ticket object; on error returns SL_EINVAL with a static reason. */
int sl_ticket_parse(const sl_json *o, sl_ticket *t, const char **why);
/* The response (kind 0) or resolution (kind 1) SLA of t at time now. */
sl_sla_view sl_sla_compute(const sl_config *c, const sl_ticket *t, int kind, int64_t now_ms);
const char *sl_sla_state_name(sl_sla_state s);

int sl_sla_start(struct event_base *base, struct sl_redis *redis, const sl_config *c);
void sl_sla_reload(const sl_config *c);
void sl_sla_stop(void);

void sl_sla_ingest(sl_req *r);
void sl_sla_get(sl_req *r);
void sl_sla_dashboard(sl_req *r);
void sl_sla_dead(sl_req *r);

#endif
