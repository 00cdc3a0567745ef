/* ticket.h — the SLA ticket model: parsing and validating a ticket, RFC 3339
 * times, and the SLA arithmetic (due times, remaining share, state).
 *
 * Owns nothing long-lived: every function is pure over its arguments (the
 * configuration supplies the targets, the at-risk ratio and the statuses that
 * pause the clock). A parsed sl_ticket points into the JSON it came from. */
#ifndef SLUICE_TICKET_H
#define SLUICE_TICKET_H

#include "sluice/buf.h"
#include "sluice/config.h"
#include "sluice/json.h"

typedef enum {
    SL_SLA_NO_TARGET = 0,
    SL_SLA_ON_TRACK,
    SL_SLA_AT_RISK,
    SL_SLA_BREACHED,
    SL_SLA_MET
} sl_sla_state;

enum { SL_SLA_RESPONSE = 0, SL_SLA_RESOLUTION = 1 }; /* the two SLA kinds of a ticket */

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

/* When each open SLA of a ticket turns at-risk and breaches (indexed by kind);
 * due_ms[k] == 0: that SLA cannot alert (no target, done, or paused). */
typedef struct sl_sla_marks {
    int64_t risk_ms[2], due_ms[2];
} sl_sla_marks;

/* RFC 3339 ("2026-11-24T03:33:22.5+01:00") to epoch ms; SL_EINVAL when malformed. */
int sl_parse_rfc3339(sl_str s, int64_t *ms);
/* Validates one ticket object; on error returns SL_EINVAL with a static reason. */
int sl_ticket_parse(const sl_json *o, sl_ticket *t, const char **why);
/* Parses stored ticket JSON into a (t points into json, which must outlive it). */
bool sl_ticket_load(sl_arena *a, const char *json, size_t len, sl_ticket *t);
/* The normalised stored form of a valid ticket object: only the known fields,
 * their values byte-exact, appended to b. */
void sl_ticket_json(const sl_json *o, sl_buf *b);

/* The response (kind 0) or resolution (kind 1) SLA of t at time now. */
sl_sla_view sl_sla_compute(const sl_config *c, const sl_ticket *t, int kind, int64_t now_ms);
/* The alert instants of t under c (what a store indexes to find due alerts). */
sl_sla_marks sl_sla_marks_of(const sl_config *c, const sl_ticket *t);
/* At risk or breached: the two states that raise an alert. */
bool sl_sla_alertable(sl_sla_state s);

const char *sl_sla_state_name(sl_sla_state s);
const char *sl_sla_kind_name(int kind);        /* "response" | "resolution" */
const char *sl_ticket_priority_name(int prio); /* "critical" .. "low" */

#endif
