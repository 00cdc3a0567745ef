/* sla.c — the SLA route handlers and the service's lifecycle; see sla.h.
 *
 * The handlers validate (ticket.h), talk to one sl_sla_store whichever
 * implementation it is (sla_store.h), and render the answers. Store
 * callbacks may run before the store call returns (memory) or later (Redis):
 * every handler holds a reference on the request across the call, so both
 * look the same from here. */
#include "sluice/sla.h"

#include <stdio.h>
#include <stdlib.h>

#include "sluice/pipeline.h"
#include "sluice/sla_alert.h"
#include "sluice/sla_store.h"

enum { DASH_LIST_MAX = 100, DASH_SCAN_MAX = 50000, DEAD_LIST_MAX = 100 };

static struct {
    sl_sla_store *store;
    sl_config *conf;
} sla;

static void answer(sl_req *r, int status)
{
    r->status = status;
    sl_req_finish(r);
}

/* 503: the store refused the call (sent false) or did not answer it. */
static void store_error(sl_req *r, bool sent)
{
    sl_req_error(r, 503, "api_error", "store_unavailable", NULL,
                 sent ? "the ticket store did not answer" : "the ticket store is unavailable");
    answer(r, 503);
}

/* ---- ingestion ----------------------------------------------------------------------- */

typedef struct ingest {
    sl_req *r;
    int pending;
    int created, updated, skipped, failed;
    bool store_failed;
    bool waited; /* the replicas confirmed the writes (or there is nothing to wait for) */
    sl_buf errors;
} ingest;

/* Replicas that must hold a write before it is acknowledged. */
static int replica_acks(const sl_config *c)
{
    if (c->redis.min_replica_acks >= 0)
        return c->redis.min_replica_acks;
    return c->redis.n_sentinels || c->redis.n_cluster ? 1 : 0;
}

/* How long a ticket write waits for them. */
static int replica_wait_ms(const sl_config *c)
{
    return SL_MAX(c->redis.timeout_ms, 100);
}

static void ingest_finish(ingest *in);

static void on_synced(void *ud, int rc)
{
    ingest *in = ud;
    if (rc != SL_OK)
        in->store_failed = true; /* a failover now could lose it: do not acknowledge */
    in->waited = true;
    ingest_finish(in);
}

/* True when the answer waits for the replicas (on_synced finishes then). */
static bool wait_for_replicas(ingest *in)
{
    int need = replica_acks(sla.conf);
    if (need <= 0 || in->store_failed || in->waited || !(in->created || in->updated))
        return false;
    int wait_ms = replica_wait_ms(sla.conf);
    in->waited = true;
    if (sla.store->ops->sync(sla.store, need, wait_ms, on_synced, in) == SL_OK)
        return true;
    in->store_failed = true;
    return false;
}

static void ingest_finish(ingest *in)
{
    if (wait_for_replicas(in))
        return;
    sl_req *r = in->r;
    if (in->store_failed) {
        sl_req_header(r, "Retry-After", "1");
        sl_req_error(r, 503, "api_error", "store_unavailable", NULL,
                     "the ticket store did not confirm the write; nothing was acknowledged, retry "
                     "the batch");
    } else {
        sl_buf_printf(
            &r->body_out,
            "{\"created\":%d,\"updated\":%d,\"skipped\":%d,\"failed\":%d,\"errors\":[%s]}",
            in->created, in->updated, in->skipped, in->failed, in->errors.p ? in->errors.p : "");
        r->status = 200;
    }
    sl_buf_free(&in->errors);
    sl_req_finish(r);
    sl_req_release(r);
}

static void on_upsert(void *ud, int rc)
{
    ingest *in = ud;
    if (rc < 0)
        in->store_failed = true;
    else if (rc == 1)
        in->created++;
    else if (rc == 2)
        in->updated++;
    else
        in->skipped++;
    if (--in->pending == 0)
        ingest_finish(in);
}

static void add_error(ingest *in, const sl_json *o, const char *why)
{
    const sl_json *id = sl_json_get(o, "id");
    sl_buf_append_c(&in->errors, in->errors.len ? ",{\"id\":" : "{\"id\":");
    if (id && id->type == SL_JSON_STRING)
        sl_buf_append_str(&in->errors, id->raw);
    else
        sl_buf_append_c(&in->errors, "null");
    sl_buf_append_c(&in->errors, ",\"error\":");
    sl_buf_json_cstr(&in->errors, why);
    sl_buf_append_c(&in->errors, "}");
    in->failed++;
}

/* Validates and stores every ticket of the batch; in->pending counts the writes. */
static void ingest_all(ingest *in, const sl_json *list)
{
    sl_buf json;
    sl_buf_init(&json, 0);
    for (const sl_json *o = list->child; o; o = o->next) {
        sl_ticket t;
        const char *why;
        if (sl_ticket_parse(o, &t, &why) != SL_OK) {
            add_error(in, o, why);
            continue;
        }
        sl_buf_reset(&json);
        sl_ticket_json(o, &json);
        sl_sla_marks m = sl_sla_marks_of(sla.conf, &t);
        in->pending++;
        if (sla.store->ops->upsert(sla.store, &t, sl_buf_str(&json), &m, on_upsert, in) != SL_OK) {
            in->pending--;
            in->store_failed = true;
        }
    }
    sl_buf_free(&json);
}

/* The batch, or NULL after answering 400 / 413. */
static const sl_json *batch_of(sl_req *r)
{
    sl_json *root = NULL;
    sl_json_error e;
    const sl_json *list = NULL;
    if (sl_json_parse(&r->arena, r->body.p, r->body.len, NULL, &root, &e) != SL_OK ||
        !(list = sl_json_get(root, "tickets")) || list->type != SL_JSON_ARRAY) {
        sl_req_error(r, 400, "invalid_request_error", "invalid_json", "tickets",
                     "the body must be {\"tickets\": [...]} in valid JSON");
        answer(r, 400);
        return NULL;
    }
    if (list->n > r->conf->sla.max_batch) {
        sl_req_error(
            r, 413, "invalid_request_error", "batch_too_large", "tickets",
            sl_arena_printf(&r->arena, "at most %zu tickets per request", r->conf->sla.max_batch));
        answer(r, 413);
        return NULL;
    }
    return list;
}

void sl_sla_ingest(sl_req *r)
{
    const sl_json *list = batch_of(r);
    if (!list)
        return;
    if (!sla.store->ops->ready(sla.store)) {
        ingest in = {.r = r, .store_failed = true};
        sl_req_ref(r);
        ingest_finish(&in);
        return;
    }
    ingest *in = sl_arena_calloc(&r->arena, sizeof(*in));
    in->r = r;
    sl_buf_init(&in->errors, 0);
    sl_req_ref(r);
    in->pending = 1; /* held while the batch is being sent */
    ingest_all(in, list);
    if (--in->pending == 0)
        ingest_finish(in);
}

/* ---- one ticket ---------------------------------------------------------------------- */

static size_t url_decode(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 1 < cap; s++) {
        if (*s == '%' && s[1] && s[2]) {
            char hex[3] = {s[1], s[2], 0};
            out[n++] = (char)strtol(hex, NULL, 16);
            s += 2;
        } else {
            out[n++] = *s == '+' ? ' ' : *s;
        }
    }
    out[n] = '\0';
    return n;
}

static void view_json(sl_buf *b, const char *name, sl_sla_view v)
{
    char due[32];
    sl_buf_printf(b, ",\"%s\":{\"due_at\":", name);
    if (v.state == SL_SLA_NO_TARGET) {
        sl_buf_append_c(b, "null,\"remaining_s\":null,\"remaining_ratio\":null");
    } else {
        sl_rfc3339_ms(v.due_ms, due);
        sl_buf_printf(b, "\"%s\",\"remaining_s\":%.0f,\"remaining_ratio\":%.4f", due, v.remaining_s,
                      v.remaining_ratio);
    }
    sl_buf_printf(b, ",\"state\":\"%s\"}", sl_sla_state_name(v.state));
}

/* The stored ticket JSON with its two SLA objects appended. */
static void answer_ticket(sl_req *r, sl_str json)
{
    sl_ticket t;
    if (!sl_ticket_load(&r->arena, json.p, json.len, &t)) {
        sl_req_error(r, 500, "api_error", "corrupt_ticket", NULL,
                     "the stored ticket cannot be read");
        answer(r, 500);
        return;
    }
    int64_t now = sl_wall_ms();
    sl_buf *b = &r->body_out;
    sl_buf_append(b, json.p, json.len - 1); /* without the closing brace */
    view_json(b, "response", sl_sla_compute(r->conf, &t, SL_SLA_RESPONSE, now));
    view_json(b, "resolution", sl_sla_compute(r->conf, &t, SL_SLA_RESOLUTION, now));
    sl_buf_append_c(b, "}");
    answer(r, 200);
}

static void not_found(sl_req *r)
{
    sl_req_error(r, 404, "invalid_request_error", "ticket_not_found", "id",
                 "no ticket with this id");
    answer(r, 404);
}

static void on_got(void *ud, int rc, sl_str json)
{
    sl_req *r = ud;
    if (rc == SL_OK)
        answer_ticket(r, json);
    else if (rc == SL_ENOTFOUND)
        not_found(r);
    else
        store_error(r, true);
    sl_req_release(r);
}

void sl_sla_get(sl_req *r)
{
    char id[1024];
    size_t n = url_decode(r->path + strlen("/sla/tickets/"), id, sizeof id);
    if (!n) {
        not_found(r);
        return;
    }
    sl_req_ref(r);
    if (sla.store->ops->get(sla.store, (sl_str){id, n}, on_got, r) != SL_OK) {
        sl_req_release(r);
        store_error(r, false);
    }
}

/* ---- dashboard -------------------------------------------------------------------- */

typedef struct dash_item {
    sl_str json;
    int kind;
    sl_sla_view v;
} dash_item;

typedef struct dash_list {
    dash_item *items;
    size_t n, cap;
} dash_list;

typedef struct dash {
    sl_req *r;
    char tier[256], priority[32];
    size_t total;
    size_t by_state[5];
    dash_list risk, breach;
} dash;

static void query_param(const char *q, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *p = q; p && *p;) {
        const char *amp = strchr(p, '&');
        if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
            char raw[512];
            size_t len = amp ? (size_t)(amp - p - nl - 1) : strlen(p + nl + 1);
            snprintf(raw, sizeof raw, "%.*s", (int)SL_MIN(len, sizeof raw - 1), p + nl + 1);
            url_decode(raw, out, cap);
            return;
        }
        p = amp ? amp + 1 : NULL;
    }
}

static int worst_rank(sl_sla_state s)
{
    static const int rank[] = {0, 2, 3, 4, 1}; /* no_target, on_track, at_risk, breached, met */
    return rank[s];
}

/* Appends to a list that grows in the request's arena. */
static void dash_push(sl_arena *a, dash_list *l, dash_item it)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        dash_item *p = sl_arena_alloc(a, cap * sizeof(dash_item));
        if (!p)
            return;
        if (l->n)
            memcpy(p, l->items, l->n * sizeof(dash_item));
        l->items = p;
        l->cap = cap;
    }
    l->items[l->n++] = it;
}

/* Counts one stored ticket (json lives in the request's arena) if it passes the filters. */
static void dash_add(dash *d, sl_str json, int64_t now)
{
    sl_ticket t;
    if (!sl_ticket_load(&d->r->arena, json.p, json.len, &t))
        return;
    if ((d->tier[0] && !sl_str_eq_c(t.tier, d->tier)) ||
        (d->priority[0] && strcmp(sl_ticket_priority_name(t.priority), d->priority)))
        return;
    d->total++;
    sl_sla_state worst = SL_SLA_NO_TARGET;
    for (int kind = 0; kind < 2; kind++) {
        sl_sla_view v = sl_sla_compute(d->r->conf, &t, kind, now);
        if (worst_rank(v.state) > worst_rank(worst))
            worst = v.state;
        if (sl_sla_alertable(v.state))
            dash_push(&d->r->arena, v.state == SL_SLA_AT_RISK ? &d->risk : &d->breach,
                      (dash_item){json, kind, v});
    }
    d->by_state[worst]++;
}

static int by_due(const void *a, const void *b)
{
    int64_t x = ((const dash_item *)a)->v.due_ms, y = ((const dash_item *)b)->v.due_ms;
    return (x > y) - (x < y);
}

static void dash_list_json(sl_buf *b, const char *name, dash_list *l)
{
    if (l->n)
        qsort(l->items, l->n, sizeof(*l->items), by_due);
    sl_buf_printf(b, ",\"%s\":[", name);
    for (size_t i = 0; i < SL_MIN(l->n, (size_t)DASH_LIST_MAX); i++) {
        const dash_item *it = &l->items[i];
        sl_buf_append_c(b, i ? "," : "");
        sl_buf_append(b, it->json.p, it->json.len - 1);
        char due[32];
        sl_rfc3339_ms(it->v.due_ms, due);
        sl_buf_printf(b, ",\"sla\":\"%s\",\"due_at\":\"%s\",\"remaining_s\":%.0f,\"state\":\"%s\"}",
                      sl_sla_kind_name(it->kind), due, it->v.remaining_s,
                      sl_sla_state_name(it->v.state));
    }
    sl_buf_append_c(b, "]");
}

static void dash_answer(dash *d)
{
    sl_buf *b = &d->r->body_out;
    sl_buf_printf(b, "{\"total\":%zu,\"by_state\":{", d->total);
    for (int s = 0; s < 5; s++)
        sl_buf_printf(b, "%s\"%s\":%zu", s ? "," : "", sl_sla_state_name((sl_sla_state)s),
                      d->by_state[s]);
    sl_buf_append_c(b, "}");
    dash_list_json(b, "at_risk", &d->risk);
    dash_list_json(b, "breached", &d->breach);
    sl_buf_append_c(b, "}");
    answer(d->r, 200);
}

static void on_all(void *ud, int rc, const sl_str *items, size_t n)
{
    dash *d = ud;
    sl_req *r = d->r;
    if (rc != SL_OK) {
        store_error(r, true);
    } else {
        int64_t now = sl_wall_ms();
        for (size_t i = 0; i < n; i++) { /* copied: the items die with this callback */
            char *copy = sl_arena_strndup(&r->arena, items[i].p, items[i].len);
            if (copy)
                dash_add(d, (sl_str){copy, items[i].len}, now);
        }
        dash_answer(d);
    }
    sl_req_release(r);
}

void sl_sla_dashboard(sl_req *r)
{
    dash *d = sl_arena_calloc(&r->arena, sizeof(*d));
    d->r = r;
    query_param(r->query, "customer_tier", d->tier, sizeof d->tier);
    query_param(r->query, "priority", d->priority, sizeof d->priority);
    sl_req_ref(r);
    if (sla.store->ops->all(sla.store, DASH_SCAN_MAX, on_all, d) != SL_OK) {
        sl_req_release(r);
        store_error(r, false);
    }
}

/* ---- dead letters ------------------------------------------------------------------- */

static void dead_answer(sl_req *r, const sl_str *items, size_t n)
{
    sl_buf *b = &r->body_out;
    sl_buf_append_c(b, "{\"dead\":[");
    for (size_t i = 0; i < n; i++) {
        sl_buf_append_c(b, i ? "," : "");
        sl_buf_append(b, items[i].p, items[i].len);
    }
    sl_buf_printf(b, "],\"total\":%llu}", (unsigned long long)sl_sla_alert_dead_total());
    answer(r, 200);
}

static void on_dead(void *ud, int rc, const sl_str *items, size_t n)
{
    SL_UNUSED(rc); /* a store that did not answer shows an empty list */
    dead_answer(ud, items, n);
    sl_req_release(ud);
}

void sl_sla_dead(sl_req *r)
{
    sl_req_ref(r);
    if (sla.store->ops->dead_list(sla.store, DEAD_LIST_MAX, on_dead, r) != SL_OK) {
        sl_req_release(r);
        dead_answer(r, NULL, 0);
    }
}

/* ---- lifecycle ------------------------------------------------------------------------ */

int sl_sla_start(struct event_base *base, struct sl_redis *redis, const sl_config *c)
{
    sla.store = redis ? sl_sla_store_redis_new(redis, replica_acks(c), replica_wait_ms(c))
                      : sl_sla_store_mem_new();
    if (!sla.store)
        return SL_ENOMEM;
    sla.conf = sl_config_ref((sl_config *)c);
    return sl_sla_alert_start(base, sla.store, c);
}

void sl_sla_reload(const sl_config *c)
{
    sl_config *old = sla.conf;
    sla.conf = sl_config_ref((sl_config *)c);
    sl_config_unref(old);
    sl_sla_alert_reload(c);
}

void sl_sla_stop(void)
{
    sl_sla_alert_stop();
    if (sla.store)
        sla.store->ops->free(sla.store);
    if (sla.conf)
        sl_config_unref(sla.conf);
    memset(&sla, 0, sizeof sla);
}
