/* sla_alert.c — the SLA evaluation tick and webhook delivery; see sla_alert.h.
 *
 * A tick asks the store for the alerts whose instant has come (the store
 * claims each once), recomputes the SLA at that moment and raises the alert
 * only if the state it was claimed for still holds. An alert is one
 * Slack-compatible JSON POST through curl multi; a failure retries after
 * retry.base_ms << attempt, and after retry.max retries the alert goes to
 * the store's dead-letter list. */
#include "sluice/sla_alert.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

#include "sluice/log.h"
#include "sluice/metrics.h"
#include "sluice/trace.h"
#include "sluice/upstream.h"

enum { TICK_LIMIT = 1000, ALERT_TTL_S = 30 * 86400 };

static struct {
    struct event_base *base;
    sl_sla_store *store;
    sl_config *conf;
    struct event *tick;
    uint64_t delivered, dead_total;
    sl_trace tick_trace; /* tracing on: the evaluation tick's own trace (a root span) */
    uint64_t tick_start;
} al;

/* ---- delivery ---------------------------------------------------------------------- */

typedef struct delivery {
    char *body;
    size_t len;
    int attempt;
    struct event *retry;
} delivery;

static void deliver(delivery *d);

static void delivery_free(delivery *d)
{
    if (d->retry)
        event_free(d->retry);
    free(d->body);
    free(d);
}

static void count_delivery(const char *result)
{
    sl_metric_add(SL_M_SLA_DELIVERIES, 1, &result);
}

static void dead_letter(delivery *d)
{
    al.dead_total++;
    count_delivery("dead_lettered");
    sl_warn("sla: webhook gave up after %d attempts; alert moved to the dead-letter list",
            d->attempt);
    al.store->ops->dead_push(al.store, (sl_str){d->body, d->len});
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    deliver(arg);
}

static int hook_data(void *ud, sl_call *c, const char *p, size_t n)
{
    SL_UNUSED(ud), SL_UNUSED(c), SL_UNUSED(p), SL_UNUSED(n);
    return 0;
}

static void hook_done(void *ud, sl_call *c, int rc, const char *detail)
{
    SL_UNUSED(detail);
    delivery *d = ud;
    int status = rc == SL_OK ? sl_call_status(c) : 0;
    if (status >= 200 && status < 300) {
        al.delivered++;
        count_delivery("delivered");
        delivery_free(d);
        return;
    }
    if (!al.conf || d->attempt > al.conf->sla.retry_max) {
        if (al.conf)
            dead_letter(d);
        delivery_free(d);
        return;
    }
    count_delivery("retried");
    long ms = (long)al.conf->sla.retry_base_ms << SL_MIN(d->attempt - 1, 16);
    if (!d->retry)
        d->retry = evtimer_new(al.base, on_retry, d);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(d->retry, &tv);
}

static const sl_call_hooks webhook_hooks = {.on_data = hook_data, .on_done = hook_done};

static void deliver(delivery *d)
{
    d->attempt++;
    struct curl_slist *h = sl_header_list_append(NULL, "Content-Type: application/json");
    h = sl_header_list_append(h, "Expect:");
    sl_call_opts o = {
        .url = al.conf->sla.webhook,
        .headers = h,
        .body = d->body,
        .body_len = d->len,
        .connect_ms = 2000,
        .first_byte_ms = 10000,
        .total_ms = 15000,
    };
    int err;
    if (!sl_call_start(&o, &webhook_hooks, d, &err))
        hook_done(d, NULL, SL_EIO, "could not start");
}

/* The Slack-compatible message for one alert. */
static void alert_json(const sl_ticket *t, int kind, sl_sla_view v, sl_buf *b)
{
    char text[512];
    const char *prio = sl_ticket_priority_name(t->priority), *sla = sl_sla_kind_name(kind);
    snprintf(text, sizeof text, "SLA %s: ticket %.*s (%.*s, %s) %s — %.0f min left",
             sl_sla_state_name(v.state), (int)SL_MIN(t->id.len, 100), t->id.p,
             (int)SL_MIN(t->tier.len, 60), t->tier.p, prio, sla, v.remaining_s / 60.0);
    sl_buf_append_c(b, "{\"text\":");
    sl_buf_json_cstr(b, text);
    sl_buf_append_c(b, ",\"ticket_id\":");
    sl_buf_json_str(b, t->id.p, t->id.len);
    sl_buf_append_c(b, ",\"customer_tier\":");
    sl_buf_json_str(b, t->tier.p, t->tier.len);
    sl_buf_printf(b, ",\"priority\":\"%s\",\"sla\":\"%s\",\"state\":\"%s\",\"remaining_s\":%.0f}",
                  prio, sla, sl_sla_state_name(v.state), v.remaining_s);
}

static bool raise_alert(const sl_ticket *t, int kind, sl_sla_view v)
{
    if (!al.conf->sla.webhook || !al.conf->sla.webhook[0])
        return false;
    sl_buf b;
    sl_buf_init(&b, 0);
    alert_json(t, kind, v, &b);
    delivery *d = calloc(1, sizeof(*d));
    if (!d) {
        sl_buf_free(&b);
        return false;
    }
    d->body = b.p;
    d->len = b.len;
    deliver(d);
    return true;
}

/* Tracing: the tick's span (INTERNAL, a trace of its own), from the tick to
 * the end of its evaluation; its slow Redis commands are its children. */
static void tick_span(int rc, size_t due, size_t raised)
{
    if (!al.tick_start)
        return;
    sl_span sp;
    sl_span_begin(&sp, &al.tick_trace, al.tick_trace.span_id, NULL, "sla evaluate",
                  SL_SPAN_INTERNAL, al.tick_start, sl_now_us());
    sl_span_int(&sp, "sluice.sla.due", (int64_t)due);
    sl_span_int(&sp, "sluice.sla.alerts_raised", (int64_t)raised);
    if (rc != SL_OK)
        sl_span_error(&sp, "the SLA store did not answer");
    sl_span_emit(&sp);
    al.tick_start = 0;
}

/* ---- evaluation ---------------------------------------------------------------------- */

static void on_due(void *ud, int rc, const sl_sla_due *items, size_t n)
{
    SL_UNUSED(ud);
    if (rc != SL_OK || !al.conf) {
        tick_span(rc, 0, 0);
        return;
    }
    size_t raised = 0;
    int64_t now = sl_wall_ms();
    for (size_t i = 0; i < n; i++) {
        sl_arena a;
        char first[4096];
        sl_arena_init(&a, first, sizeof first, 0);
        sl_ticket t;
        if (sl_ticket_load(&a, items[i].json.p, items[i].json.len, &t)) {
            sl_sla_view v = sl_sla_compute(al.conf, &t, items[i].kind, now);
            /* Only the state this claim was for: an at-risk instant that comes
             * after the breach itself stays silent (the breach alert covers it). */
            if (sl_sla_alertable(v.state) && v.state == items[i].claimed) {
                const char *labels[] = {sl_sla_kind_name(items[i].kind),
                                        sl_sla_state_name(v.state)};
                sl_metric_add(SL_M_SLA_ALERTS, 1, labels);
                raised += raise_alert(&t, items[i].kind, v);
            }
        }
        sl_arena_free(&a);
    }
    tick_span(SL_OK, n, raised);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd), SL_UNUSED(what), SL_UNUSED(arg);
    const sl_trace *outer = sl_trace_current;
    if (sl_trace_on && !al.tick_start) {
        sl_trace_begin(&al.tick_trace, NULL, 0, al.conf->tracing.sample_ratio);
        al.tick_start = sl_now_us();
        sl_trace_current = &al.tick_trace; /* its Redis commands */
    }
    al.store->ops->pop_due(al.store, sl_wall_ms(), TICK_LIMIT, ALERT_TTL_S, on_due, NULL);
    sl_trace_current = outer;
    struct timeval tv = {al.conf->sla.evaluate_every_s, 0};
    evtimer_add(al.tick, &tv);
}

/* ---- lifecycle ------------------------------------------------------------------------ */

/* Every series at 0 from the start: a first alert is then an increase that
 * Prometheus sees, and dashboards show 0 rather than no data. */
static void zero_series(void)
{
    static const char *const results[] = {"delivered", "retried", "dead_lettered"};
    for (size_t i = 0; i < SL_ARRAY_LEN(results); i++)
        sl_metric_add(SL_M_SLA_DELIVERIES, 0, &results[i]);
    for (int kind = 0; kind < 2; kind++) {
        for (int st = SL_SLA_AT_RISK; st <= SL_SLA_BREACHED; st++) {
            const char *labels[] = {sl_sla_kind_name(kind), sl_sla_state_name((sl_sla_state)st)};
            sl_metric_add(SL_M_SLA_ALERTS, 0, labels);
        }
    }
}

int sl_sla_alert_start(struct event_base *base, sl_sla_store *store, const sl_config *c)
{
    al.base = base;
    al.store = store;
    al.conf = sl_config_ref((sl_config *)c);
    al.tick = evtimer_new(base, on_tick, NULL);
    if (!al.tick)
        return SL_ENOMEM;
    zero_series();
    struct timeval tv = {c->sla.evaluate_every_s, 0};
    evtimer_add(al.tick, &tv);
    return SL_OK;
}

void sl_sla_alert_reload(const sl_config *c)
{
    sl_config *old = al.conf;
    al.conf = sl_config_ref((sl_config *)c);
    if (old)
        sl_config_unref(old);
}

void sl_sla_alert_stop(void)
{
    if (al.tick)
        event_free(al.tick);
    if (al.conf)
        sl_config_unref(al.conf);
    memset(&al, 0, sizeof al);
}

uint64_t sl_sla_alert_dead_total(void)
{
    return al.dead_total;
}
