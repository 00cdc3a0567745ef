/* server.h — inbound HTTP: the listener, the route table, the client sink,
 * drain and reload.
 *
 * Owns: the listener (handed to the connection layer, conn.h), the current configuration
 * (swapped atomically on reload; requests pin the one they started with), the
 * draining flag. Routes are one table in server.c. */
#ifndef SLUICE_SERVER_H
#define SLUICE_SERVER_H

#include "sluice/req.h"

struct event_base;

int sl_server_start(struct event_base *base, sl_config *conf);
/* Installs a new configuration for new requests (the old one lives on in the
 * requests that pinned it). Listen address changes need a restart. */
void sl_server_swap_config(sl_config *conf);
sl_config *sl_server_config(void);
/* Stops accepting and turns readiness false. */
void sl_server_begin_drain(void);
bool sl_server_draining(void);
void sl_server_stop(void);
uint64_t sl_server_started_ms(void);
/* Which worker this process is (0 without workers), shown on /health. */
void sl_server_set_worker(int index);
int sl_server_worker(void);

/* Operational route handlers (ops.c): fill r (status, body_out) and complete it. */
void sl_ops_live(sl_req *r);
void sl_ops_ready(sl_req *r);
void sl_ops_health(sl_req *r);
void sl_ops_models(sl_req *r);
void sl_ops_metrics(sl_req *r);
/* The gauges read from the configuration (breakers, budgets, models, start
 * time): main registers it with sl_metrics_on_scrape. */
void sl_ops_metrics_refresh(void);
void sl_ops_stats(sl_req *r); /* GET /stats: the dashboard's JSON */
void sl_ops_ui(sl_req *r);    /* GET /ui: the dashboard page (ui.c) */
/* Keys changed by reloads that wait for a restart: /health's "restart_pending". */
void sl_ops_set_restart_pending(const char *const *keys, size_t n);
extern const char sl_ui_page[];
/* The stores' part of /health and /metrics (stores.c). */
void sl_ops_health_stores(sl_buf *b);
void sl_ops_metrics_stores(void);

#endif
