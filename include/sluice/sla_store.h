/* sla_store.h — where SLA tickets, alert claims and dead letters live: one
 * interface, two implementations (in process, and Redis shared by instances).
 *
 * A store keeps, per ticket, its normalised JSON, its updated_at (a ticket is
 * replaced only by a newer one) and its alert instants (sl_sla_marks), so
 * that an evaluation tick touches only the tickets whose instant has come.
 * pop_due hands those out and claims each alert in the same step: an alert
 * is handed out at most once per (ticket, kind, state), across instances and
 * restarts for the Redis store.
 *
 * Callback contract, every asynchronous operation: a call that returns SL_OK
 * runs its callback exactly once, either before it returns (memory store) or
 * later from the loop (Redis store); a call that returns an error never runs
 * it. Strings handed to a callback live only during that callback.
 *
 * Owns: sl_sla_store_mem owns its tables; sl_sla_store_redis owns only the
 * small records of its commands in flight (the sl_redis client is the
 * caller's and must outlive the store) plus an in-process copy of the dead
 * letters, read when Redis cannot be asked. */
#ifndef SLUICE_SLA_STORE_H
#define SLUICE_SLA_STORE_H

#include "sluice/ticket.h"

struct sl_redis;

typedef struct sl_sla_store sl_sla_store;

/* One alert claimed by pop_due. */
typedef struct sl_sla_due {
    int kind;             /* SL_SLA_RESPONSE | SL_SLA_RESOLUTION */
    sl_sla_state claimed; /* SL_SLA_AT_RISK or SL_SLA_BREACHED: the alert claimed */
    sl_str json;          /* the stored ticket */
} sl_sla_due;

/* rc: upsert 1 created, 2 updated, 0 skipped (not newer), < 0 failed;
 * sync SL_OK or < 0. */
typedef void (*sl_sla_rc_cb)(void *ud, int rc);
/* rc SL_OK (json is the ticket), SL_ENOTFOUND, or another error. */
typedef void (*sl_sla_json_cb)(void *ud, int rc, sl_str json);
/* rc SL_OK or an error (then n == 0). */
typedef void (*sl_sla_list_cb)(void *ud, int rc, const sl_str *items, size_t n);
typedef void (*sl_sla_due_cb)(void *ud, int rc, const sl_sla_due *items, size_t n);

typedef struct sl_sla_store_ops {
    const char *name;
    /* False while the store cannot take writes (Redis down or reconnecting). */
    bool (*ready)(const sl_sla_store *s);
    int (*upsert)(sl_sla_store *s, const sl_ticket *t, sl_str json, const sl_sla_marks *m,
                  sl_sla_rc_cb cb, void *ud);
    int (*get)(sl_sla_store *s, sl_str id, sl_sla_json_cb cb, void *ud);
    /* Up to max stored tickets, in no particular order (the dashboard's query). */
    int (*all)(sl_sla_store *s, size_t max, sl_sla_list_cb cb, void *ud);
    /* Removes the instants at or before now (at most max of each kind of
     * instant) and hands out the alerts it could claim; a claim lasts claim_ttl_s. */
    int (*pop_due)(sl_sla_store *s, int64_t now_ms, size_t max, int claim_ttl_s, sl_sla_due_cb cb,
                   void *ud);
    /* Succeeds once the writes so far are held by acks replicas (waiting up
     * to wait_ms); the memory store has none to wait for. */
    int (*sync)(sl_sla_store *s, int acks, int wait_ms, sl_sla_rc_cb cb, void *ud);
    /* Keeps the last 1000 alerts that could not be delivered (fire and forget). */
    void (*dead_push)(sl_sla_store *s, sl_str json);
    /* The last max dead letters, newest first. */
    int (*dead_list)(sl_sla_store *s, size_t max, sl_sla_list_cb cb, void *ud);
    void (*free)(sl_sla_store *s);
} sl_sla_store_ops;

/* Every implementation embeds this first. */
struct sl_sla_store {
    const sl_sla_store_ops *ops;
};

enum { SL_SLA_DEAD_MAX = 1000 };

/* In process, volatile; NULL when out of memory. */
sl_sla_store *sl_sla_store_mem_new(void);
/* On the shared Redis; every key carries the hash tag {sla}. acks > 0: every
 * ticket write answers only once acks replicas hold it (WAIT, up to wait_ms,
 * behind the write on the node that took it); sync then only checks acks. */
sl_sla_store *sl_sla_store_redis_new(struct sl_redis *redis, int acks, int wait_ms);

#endif
