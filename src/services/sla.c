/* sla.c — SLA tracking: ingestion, state, dashboard, alerts; see sla.h.
 *
 * Two stores behind the same handlers. With Redis, a ticket is one hash
 * (normalised JSON + updated_at) written by an upsert script that also keeps
 * two sorted sets of instants — when each open SLA turns at-risk and when it
 * breaches — so an evaluation tick only touches tickets whose instant has come
 * (cost follows tickets due, not tickets stored). The tick script pops due
 * members and claims each alert with SET NX in the same atomic step: several
 * instances never alert twice, and a restart does not repeat an alert.
 * Without Redis the same logic runs over an in-process table (volatile).
 * Webhook deliveries go through curl multi with exponential backoff; after
 * the last retry an alert lands in the dead-letter list. */
#include "sluice/sla.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/pipeline.h"
#include "sluice/redis.h"
#include "sluice/upstream.h"

/* Every SLA key shares the hash tag {sla}: the scripts that touch several of
 * them would run on a Redis Cluster too (all in one slot). */
#define K_TICKET "sluice:{sla}:t:"
#define K_RISK   "sluice:{sla}:risk"
#define K_DUE    "sluice:{sla}:due"
#define K_IDS    "sluice:{sla}:ids"
#define K_DEAD   "sluice:{sla}:dead"

enum { DEAD_MAX = 1000, DASH_LIST_MAX = 100, TICK_LIMIT = 1000, ALERT_TTL_S = 30 * 86400 };
static const char *const PRIORITIES[] = {"critical", "high", "medium", "low"};
static const char *const STATUSES[] = {"open", "pending", "resolved", "closed"};
static const char *const KIND_NAMES[] = {"response", "resolution"};

/* ---- time and parsing ------------------------------------------------------ */

int sl_parse_rfc3339(sl_str s, int64_t *ms)
{
    char buf[64];
    if (s.len < 20 || s.len >= sizeof buf)
        return SL_EINVAL;
    memcpy(buf, s.p, s.len);
    buf[s.len] = '\0';
    struct tm tm = {0};
    char *p = strptime(buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        p = strptime(buf, "%Y-%m-%d %H:%M:%S", &tm);
    if (!p)
        return SL_EINVAL;
    int64_t frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits < 3)
                frac = frac * 10 + (*p - '0');
        }
        for (; digits < 3; digits++)
            frac *= 10;
    }
    int64_t offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int h = atoi(p + 1), m = atoi(p + 4);
        if (h > 23 || m > 59)
            return SL_EINVAL;
        offset_s = (h * 3600 + m * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return SL_EINVAL;
    }
    if (*p)
        return SL_EINVAL;
    *ms = ((int64_t)timegm(&tm) - offset_s) * 1000 + frac;
    return SL_OK;
}

static int index_of(sl_str v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        if (sl_str_eq_c(v, names[i]))
            return i;
    }
    return -1;
}

static int time_field(const sl_json *o, const char *name, bool required, int64_t *ms,
                      const char **why)
{
    const sl_json *v = sl_json_get(o, name);
    *ms = 0;
    if (!v || v->type == SL_JSON_NULL) {
        if (required) {
            *why = name[0] == 'c' ? "created_at is required" : "updated_at is required";
            return SL_EINVAL;
        }
        return SL_OK;
    }
    if (v->type != SL_JSON_STRING || sl_parse_rfc3339(v->str, ms) != SL_OK) {
        *why = "times must be RFC 3339 strings";
        return SL_EINVAL;
    }
    return SL_OK;
}

int sl_ticket_parse(const sl_json *o, sl_ticket *t, const char **why)
{
    memset(t, 0, sizeof(*t));
    if (!o || o->type != SL_JSON_OBJECT)
        return *why = "a ticket must be an object", SL_EINVAL;
    const sl_json *id = sl_json_get(o, "id"), *pr = sl_json_get(o, "priority");
    const sl_json *tier = sl_json_get(o, "customer_tier"), *st = sl_json_get(o, "status");
    const sl_json *subj = sl_json_get(o, "subject");
    if (!id || id->type != SL_JSON_STRING || id->str.len == 0 || id->str.len > 256)
        return *why = "id must be a string of 1 to 256 bytes", SL_EINVAL;
    t->id = id->str;
    if (!pr || pr->type != SL_JSON_STRING || (t->priority = index_of(pr->str, PRIORITIES, 4)) < 0)
        return *why = "priority must be critical, high, medium or low", SL_EINVAL;
    if (!tier || tier->type != SL_JSON_STRING || tier->str.len == 0 || tier->str.len > 128)
        return *why = "customer_tier must be a non-empty string", SL_EINVAL;
    t->tier = tier->str;
    if (!st || st->type != SL_JSON_STRING || (t->status = index_of(st->str, STATUSES, 4)) < 0)
        return *why = "status must be open, pending, resolved or closed", SL_EINVAL;
    if (subj && subj->type != SL_JSON_STRING && subj->type != SL_JSON_NULL)
        return *why = "subject must be a string", SL_EINVAL;
    t->subject = subj && subj->type == SL_JSON_STRING ? subj->str : SL_STR("");
    if (time_field(o, "created_at", true, &t->created_ms, why) ||
        time_field(o, "updated_at", true, &t->updated_ms, why) ||
        time_field(o, "first_response_at", false, &t->first_response_ms, why) ||
        time_field(o, "resolved_at", false, &t->resolved_ms, why))
        return SL_EINVAL;
    return SL_OK;
}

/* ---- SLA state ---------------------------------------------------------------- */

const char *sl_sla_state_name(sl_sla_state s)
{
    static const char *const n[] = {"no_target", "on_track", "at_risk", "breached", "met"};
    return n[s];
}

static int target_minutes(const sl_config *c, const sl_ticket *t, int kind)
{
    for (size_t i = 0; i < c->sla.n_targets; i++) {
        const sl_sla_target *g = &c->sla.targets[i];
        if (sl_str_eq_c(t->tier, g->tier) && strcmp(g->priority, PRIORITIES[t->priority]) == 0)
            return kind == 0 ? g->response_min : g->resolution_min;
    }
    return 0;
}

static bool paused(const sl_config *c, const sl_ticket *t)
{
    for (size_t i = 0; i < c->sla.n_pause_statuses; i++) {
        if (strcmp(c->sla.pause_statuses[i], STATUSES[t->status]) == 0)
            return true;
    }
    return false;
}

sl_sla_view sl_sla_compute(const sl_config *c, const sl_ticket *t, int kind, int64_t now)
{
    sl_sla_view v = {SL_SLA_NO_TARGET, 0, 0, 0};
    int minutes = target_minutes(c, t, kind);
    if (minutes <= 0)
        return v;
    int64_t target_ms = (int64_t)minutes * 60000;
    v.due_ms = t->created_ms + target_ms;
    int64_t done = kind == 0 ? t->first_response_ms : t->resolved_ms;
    if (!done && kind == 1 && t->status >= 2)
        done = t->updated_ms; /* resolved or closed without resolved_at */
    if (paused(c, t) && !done)
        now = t->updated_ms; /* the clock stopped when it was paused */
    int64_t at = done ? done : now;
    v.remaining_s = (double)(v.due_ms - at) / 1000.0;
    v.remaining_ratio = (double)(v.due_ms - at) / (double)target_ms;
    if (done)
        v.state = done <= v.due_ms ? SL_SLA_MET : SL_SLA_BREACHED;
    else if (at >= v.due_ms)
        v.state = SL_SLA_BREACHED;
    else if (v.remaining_ratio <= c->sla.at_risk_ratio)
        v.state = SL_SLA_AT_RISK;
    else
        v.state = SL_SLA_ON_TRACK;
    return v;
}

/* Normalised stored form: only the known fields, their values byte-exact. */
static void ticket_json(const sl_json *o, sl_buf *b)
{
    static const char *const fields[] = {
        "id",         "subject",    "priority",          "customer_tier", "status",
        "created_at", "updated_at", "first_response_at", "resolved_at"};
    sl_buf_append_c(b, "{");
    bool first = true;
    for (size_t i = 0; i < SL_ARRAY_LEN(fields); i++) {
        const sl_json *v = sl_json_get(o, fields[i]);
        if (!v)
            continue;
        sl_buf_printf(b, "%s\"%s\":", first ? "" : ",", fields[i]);
        sl_buf_append_str(b, v->raw);
        first = false;
    }
    sl_buf_append_c(b, "}");
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
static void ticket_with_views(const sl_config *c, sl_str stored, const sl_ticket *t, sl_buf *b)
{
    int64_t now = sl_wall_ms();
    sl_buf_append(b, stored.p, stored.len - 1); /* without the closing brace */
    view_json(b, "response", sl_sla_compute(c, t, 0, now));
    view_json(b, "resolution", sl_sla_compute(c, t, 1, now));
    sl_buf_append_c(b, "}");
}

/* Reads a stored ticket back (the JSON lives in a; t points into it). */
static bool load_ticket(sl_arena *a, const char *json, size_t len, sl_ticket *t)
{
    sl_json *o;
    sl_json_error e;
    const char *why;
    return sl_json_parse(a, json, len, NULL, &o, &e) == SL_OK &&
           sl_ticket_parse(o, t, &why) == SL_OK;
}

/* ---- the service's state -------------------------------------------------------------- */

typedef struct mem_ticket {
    struct mem_ticket *next;
    uint64_t hash;
    int64_t updated_ms;
    size_t len;
    char json[];
} mem_ticket;

typedef struct dedupe {
    struct dedupe *next;
    uint64_t hash;
} dedupe;

enum { MEM_BUCKETS = 65536 };

static struct {
    struct event_base *base;
    sl_redis *redis;
    sl_config *conf;
    struct event *tick;
    mem_ticket **mem; /* embedded store */
    size_t mem_count;
    dedupe **sent;        /* embedded alert de-duplication */
    char *dead[DEAD_MAX]; /* embedded dead letters (ring) */
    size_t dead_head, dead_count;
    uint64_t delivered, dead_total;
} sla;

static mem_ticket *mem_find(sl_str id, uint64_t h)
{
    for (mem_ticket *m = sla.mem[h % MEM_BUCKETS]; m; m = m->next) {
        if (m->hash == h) {
            sl_arena a;
            char first[2048];
            sl_arena_init(&a, first, sizeof first, 0);
            sl_json *o;
            sl_json_error e;
            bool same = sl_json_parse(&a, m->json, m->len, NULL, &o, &e) == SL_OK &&
                        sl_str_eq(sl_json_get(o, "id")->str, id);
            sl_arena_free(&a);
            if (same)
                return m;
        }
    }
    return NULL;
}

/* 1 created, 2 updated, 0 skipped (not newer). */
static int mem_upsert(const sl_ticket *t, sl_str json)
{
    uint64_t h = XXH3_64bits(t->id.p, t->id.len);
    mem_ticket *old = mem_find(t->id, h);
    if (old && old->updated_ms >= t->updated_ms)
        return 0;
    mem_ticket *m = malloc(sizeof(*m) + json.len);
    if (!m)
        return -1;
    m->hash = h;
    m->updated_ms = t->updated_ms;
    m->len = json.len;
    memcpy(m->json, json.p, json.len);
    mem_ticket **pp = &sla.mem[h % MEM_BUCKETS];
    if (old) {
        while (*pp != old)
            pp = &(*pp)->next;
        *pp = old->next;
        free(old);
    } else {
        sla.mem_count++;
    }
    m->next = sla.mem[h % MEM_BUCKETS];
    sla.mem[h % MEM_BUCKETS] = m;
    return old ? 2 : 1;
}

static bool claim_alert_mem(sl_str id, int kind, sl_sla_state st)
{
    uint64_t h = XXH3_64bits_withSeed(id.p, id.len, (uint64_t)(kind * 8 + (int)st));
    for (dedupe *d = sla.sent[h % MEM_BUCKETS]; d; d = d->next) {
        if (d->hash == h)
            return false;
    }
    dedupe *d = malloc(sizeof(*d));
    if (!d)
        return false;
    d->hash = h;
    d->next = sla.sent[h % MEM_BUCKETS];
    sla.sent[h % MEM_BUCKETS] = d;
    return true;
}

static void add_dead_mem(const char *json, size_t len)
{
    size_t slot = (sla.dead_head + sla.dead_count) % DEAD_MAX;
    if (sla.dead_count == DEAD_MAX) {
        free(sla.dead[sla.dead_head]);
        sla.dead_head = (sla.dead_head + 1) % DEAD_MAX;
        slot = (sla.dead_head + sla.dead_count - 1) % DEAD_MAX;
    } else {
        sla.dead_count++;
    }
    sla.dead[slot] = strndup(json, len);
}

/* ---- alerts and their delivery ----------------------------------------------------------- */

typedef struct delivery {
    char *body;
    size_t len;
    int attempt;
    struct event *retry;
} delivery;

static void deliver(delivery *d);

static void dead_letter(delivery *d)
{
    sla.dead_total++;
    sl_warn("sla: webhook gave up after %d attempts; alert moved to the dead-letter list",
            d->attempt);
    if (sla.redis) {
        const char *lp[] = {"LPUSH", K_DEAD, d->body};
        size_t ll[] = {5, strlen(K_DEAD), d->len};
        sl_redis_cmd(sla.redis, NULL, NULL, 3, lp, ll);
        const char *lt[] = {"LTRIM", K_DEAD, "0", "999"};
        sl_redis_cmd(sla.redis, NULL, NULL, 4, lt, NULL);
    }
    add_dead_mem(d->body, d->len); /* also kept in process for /sla/alerts/dead */
}

static void delivery_free(delivery *d)
{
    if (d->retry)
        event_free(d->retry);
    free(d->body);
    free(d);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    deliver(arg);
}

static int hook_data(void *ud, sl_call *c, const char *p, size_t n)
{
    SL_UNUSED(ud);
    SL_UNUSED(c);
    SL_UNUSED(p);
    SL_UNUSED(n);
    return 0;
}

static void hook_done(void *ud, sl_call *c, int rc, const char *detail)
{
    SL_UNUSED(detail);
    delivery *d = ud;
    int status = rc == SL_OK ? sl_call_status(c) : 0;
    if (status >= 200 && status < 300) {
        sla.delivered++;
        delivery_free(d);
        return;
    }
    if (d->attempt > sla.conf->sla.retry_max) {
        dead_letter(d);
        delivery_free(d);
        return;
    }
    long ms = (long)sla.conf->sla.retry_base_ms << SL_MIN(d->attempt - 1, 16);
    if (!d->retry)
        d->retry = evtimer_new(sla.base, on_retry, d);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(d->retry, &tv);
}

static const sl_call_hooks webhook_hooks = {.on_data = hook_data, .on_done = hook_done};

static void deliver(delivery *d)
{
    d->attempt++;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    sl_call_opts o = {
        .url = sla.conf->sla.webhook,
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

/* Builds the Slack-compatible message for one alert and sends it. */
static void raise_alert(const sl_ticket *t, int kind, sl_sla_view v)
{
    if (!sla.conf->sla.webhook || !sla.conf->sla.webhook[0])
        return;
    sl_buf b;
    sl_buf_init(&b, 0);
    char text[512];
    snprintf(text, sizeof text, "SLA %s: ticket %.*s (%.*s, %s) %s — %.0f min left",
             sl_sla_state_name(v.state), (int)SL_MIN(t->id.len, 100), t->id.p,
             (int)SL_MIN(t->tier.len, 60), t->tier.p, PRIORITIES[t->priority], KIND_NAMES[kind],
             v.remaining_s / 60.0);
    sl_buf_append_c(&b, "{\"text\":");
    sl_buf_json_cstr(&b, text);
    sl_buf_append_c(&b, ",\"ticket_id\":");
    sl_buf_json_str(&b, t->id.p, t->id.len);
    sl_buf_append_c(&b, ",\"customer_tier\":");
    sl_buf_json_str(&b, t->tier.p, t->tier.len);
    sl_buf_printf(&b, ",\"priority\":\"%s\",\"sla\":\"%s\",\"state\":\"%s\",\"remaining_s\":%.0f}",
                  PRIORITIES[t->priority], KIND_NAMES[kind], sl_sla_state_name(v.state),
                  v.remaining_s);
    delivery *d = calloc(1, sizeof(*d));
    if (!d) {
        sl_buf_free(&b);
        return;
    }
    d->body = b.p;
    d->len = b.len;
    deliver(d);
}

static bool alertable(sl_sla_state s)
{
    return s == SL_SLA_AT_RISK || s == SL_SLA_BREACHED;
}

/* ---- evaluation ------------------------------------------------------------------------ */

static void evaluate_mem(int64_t now)
{
    for (size_t b = 0; b < MEM_BUCKETS; b++) {
        for (mem_ticket *m = sla.mem[b]; m; m = m->next) {
            sl_arena a;
            char first[4096];
            sl_arena_init(&a, first, sizeof first, 0);
            sl_ticket t;
            if (load_ticket(&a, m->json, m->len, &t)) {
                for (int kind = 0; kind < 2; kind++) {
                    sl_sla_view v = sl_sla_compute(sla.conf, &t, kind, now);
                    if (alertable(v.state) && claim_alert_mem(t.id, kind, v.state))
                        raise_alert(&t, kind, v);
                }
            }
            sl_arena_free(&a);
        }
    }
}

/* Pops the members whose instant has come and claims each alert exactly once. */
static const char *const TICK_SCRIPT =
    "local out = {}\n"
    "for _, z in ipairs({{KEYS[1], 'at_risk'}, {KEYS[2], 'breached'}}) do\n"
    "  local ms = redis.call('ZRANGEBYSCORE', z[1], '-inf', ARGV[1], 'LIMIT', 0, "
    "tonumber(ARGV[2]))\n"
    "  for _, m in ipairs(ms) do\n"
    "    redis.call('ZREM', z[1], m)\n"
    "    local id = string.sub(m, 3)\n"
    "    local json = redis.call('HGET', 'sluice:{sla}:t:' .. id, 'j')\n"
    "    if json and redis.call('SET', 'sluice:{sla}:alert:' .. z[2] .. ':' .. m, '1', 'NX', 'EX', "
    "ARGV[3]) then\n"
    "      out[#out + 1] = string.sub(m, 1, 1)\n"
    "      out[#out + 1] = z[2]\n"
    "      out[#out + 1] = json\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

static void on_tick_reply(void *ud, const redisReply *rep, int status)
{
    SL_UNUSED(ud);
    if (status != SL_OK || !rep || rep->type != REDIS_REPLY_ARRAY)
        return;
    int64_t now = sl_wall_ms();
    for (size_t i = 0; i + 2 < rep->elements; i += 3) {
        const redisReply *k = rep->element[i], *claimed = rep->element[i + 1],
                         *j = rep->element[i + 2];
        if (k->type != REDIS_REPLY_STRING || j->type != REDIS_REPLY_STRING ||
            claimed->type != REDIS_REPLY_STRING)
            continue;
        int kind = k->str[0] == 'r' ? 0 : 1;
        sl_arena a;
        char first[4096];
        sl_arena_init(&a, first, sizeof first, 0);
        sl_ticket t;
        if (load_ticket(&a, j->str, j->len, &t)) {
            sl_sla_view v = sl_sla_compute(sla.conf, &t, kind, now);
            /* Only the state this claim was for: an at-risk instant that comes
             * after the breach itself stays silent (the breach alert covers it). */
            if (alertable(v.state) &&
                strncmp(claimed->str, sl_sla_state_name(v.state), claimed->len) == 0)
                raise_alert(&t, kind, v);
        }
        sl_arena_free(&a);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    SL_UNUSED(arg);
    int64_t now = sl_wall_ms();
    if (sla.redis) {
        char n[32], lim[16], ttl[16];
        snprintf(n, sizeof n, "%lld", (long long)now);
        snprintf(lim, sizeof lim, "%d", TICK_LIMIT);
        snprintf(ttl, sizeof ttl, "%d", ALERT_TTL_S);
        const char *argv[] = {K_RISK, K_DUE, n, lim, ttl};
        sl_redis_eval(sla.redis, TICK_SCRIPT, 2, 5, argv, NULL, on_tick_reply, NULL);
    } else {
        evaluate_mem(now);
    }
    struct timeval tv = {sla.conf->sla.evaluate_every_s, 0};
    evtimer_add(sla.tick, &tv);
}

/* ---- ingestion ----------------------------------------------------------------------------- */

static const char *const UPSERT_SCRIPT =
    "local cur = redis.call('HGET', KEYS[1], 'u')\n"
    "if cur and tonumber(cur) >= tonumber(ARGV[2]) then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'j', ARGV[1], 'u', ARGV[2])\n"
    "redis.call('SADD', KEYS[4], ARGV[3])\n"
    "for i, kind in ipairs({'r', 's'}) do\n"
    "  local m = kind .. '|' .. ARGV[3]\n"
    "  redis.call('ZREM', KEYS[2], m)\n"
    "  redis.call('ZREM', KEYS[3], m)\n"
    "  local risk, due = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])\n"
    "  if due > 0 then\n"
    "    redis.call('ZADD', KEYS[3], due, m)\n"
    "    redis.call('ZADD', KEYS[2], risk, m)\n"
    "  end\n"
    "end\n"
    "if cur then return 2 end\n"
    "return 1\n";

typedef struct ingest {
    sl_req *r;
    int pending;
    int created, updated, skipped, failed;
    bool store_failed;
    bool waited; /* WAIT for replica acks was done (or is not needed) */
    sl_buf errors;
} ingest;

static void answer(sl_req *r, int status)
{
    r->status = status;
    sl_req_finish(r);
}

/* Replicas that must hold a write before it is acknowledged. */
static int replica_acks(const sl_config *c)
{
    if (c->redis.min_replica_acks >= 0)
        return c->redis.min_replica_acks;
    return c->redis.n_sentinels ? 1 : 0;
}

static void ingest_finish(ingest *in);

static void on_wait(void *ud, const redisReply *rep, int status)
{
    ingest *in = ud;
    int need = replica_acks(sla.conf);
    if (status != SL_OK || !rep || rep->type != REDIS_REPLY_INTEGER || rep->integer < need)
        in->store_failed = true; /* a failover now could lose it: do not acknowledge */
    in->waited = true;
    ingest_finish(in);
}

static void ingest_finish(ingest *in)
{
    sl_req *r = in->r;
    int need = replica_acks(sla.conf);
    if (sla.redis && need > 0 && !in->store_failed && !in->waited && (in->created || in->updated)) {
        char n[16], ms[16];
        int wait_ms = SL_MAX(sla.conf->redis.timeout_ms, 100);
        snprintf(n, sizeof n, "%d", need);
        snprintf(ms, sizeof ms, "%d", wait_ms);
        const char *argv[] = {"WAIT", n, ms};
        in->waited = true;
        if (sl_redis_cmd_timeout(sla.redis, 2 * wait_ms, on_wait, in, 3, argv, NULL) == SL_OK)
            return; /* answered when the replicas confirm */
        in->store_failed = true;
    }
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

static void on_upsert(void *ud, const redisReply *rep, int status)
{
    ingest *in = ud;
    if (status != SL_OK || !rep || rep->type != REDIS_REPLY_INTEGER)
        in->store_failed = true;
    else if (rep->integer == 1)
        in->created++;
    else if (rep->integer == 2)
        in->updated++;
    else
        in->skipped++;
    if (--in->pending == 0)
        ingest_finish(in);
}

/* When the open SLA of kind turns at-risk and breaches; 0 when it cannot alert. */
static void instants(const sl_ticket *t, int kind, int64_t *risk, int64_t *due)
{
    *risk = *due = 0;
    int minutes = target_minutes(sla.conf, t, kind);
    int64_t done = kind == 0 ? t->first_response_ms : t->resolved_ms;
    if (minutes <= 0 || done || (kind == 1 && t->status >= 2) || paused(sla.conf, t))
        return;
    int64_t target = (int64_t)minutes * 60000;
    *due = t->created_ms + target;
    *risk = *due - (int64_t)llround(sla.conf->sla.at_risk_ratio * (double)target);
}

static int store_redis(ingest *in, const sl_ticket *t, sl_str json)
{
    char key[300], upd[32], v[4][32];
    snprintf(key, sizeof key, K_TICKET "%.*s", (int)t->id.len, t->id.p);
    snprintf(upd, sizeof upd, "%lld", (long long)t->updated_ms);
    int64_t rr, rd, sr, sd;
    instants(t, 0, &rr, &rd);
    instants(t, 1, &sr, &sd);
    snprintf(v[0], 32, "%lld", (long long)rr);
    snprintf(v[1], 32, "%lld", (long long)rd);
    snprintf(v[2], 32, "%lld", (long long)sr);
    snprintf(v[3], 32, "%lld", (long long)sd);
    /* argv form: ids and fields travel binary-safe, never in a format string */
    const char *argv[] = {key, K_RISK, K_DUE, K_IDS, json.p, upd, t->id.p, v[0], v[1], v[2], v[3]};
    size_t argl[] = {strlen(K_TICKET) + t->id.len,
                     strlen(K_RISK),
                     strlen(K_DUE),
                     strlen(K_IDS),
                     json.len,
                     strlen(upd),
                     t->id.len,
                     strlen(v[0]),
                     strlen(v[1]),
                     strlen(v[2]),
                     strlen(v[3])};
    return sl_redis_eval(sla.redis, UPSERT_SCRIPT, 4, 11, argv, argl, on_upsert, in);
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

void sl_sla_ingest(sl_req *r)
{
    sl_json *root = NULL;
    sl_json_error e;
    const sl_json *list = NULL;
    if (sl_json_parse(&r->arena, r->body.p, r->body.len, NULL, &root, &e) != SL_OK ||
        !(list = sl_json_get(root, "tickets")) || list->type != SL_JSON_ARRAY) {
        sl_req_error(r, 400, "invalid_request_error", "invalid_json", "tickets",
                     "the body must be {\"tickets\": [...]} in valid JSON");
        answer(r, 400);
        return;
    }
    if (list->n > r->conf->sla.max_batch) {
        sl_req_error(
            r, 413, "invalid_request_error", "batch_too_large", "tickets",
            sl_arena_printf(&r->arena, "at most %zu tickets per request", r->conf->sla.max_batch));
        answer(r, 413);
        return;
    }
    if (sla.redis && sl_redis_get_state(sla.redis) != SL_REDIS_UP) {
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
        ticket_json(o, &json);
        if (!sla.redis) {
            int rc = mem_upsert(&t, sl_buf_str(&json));
            rc == 1   ? in->created++
            : rc == 2 ? in->updated++
            : rc == 0 ? in->skipped++
                      : (in->store_failed = true);
            continue;
        }
        in->pending++;
        if (store_redis(in, &t, sl_buf_str(&json)) != SL_OK) {
            in->pending--;
            in->store_failed = true;
        }
    }
    sl_buf_free(&json);
    if (--in->pending == 0)
        ingest_finish(in);
}

/* ---- reads --------------------------------------------------------------------------------- */

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

static void answer_ticket(sl_req *r, const char *json, size_t len)
{
    sl_ticket t;
    if (!load_ticket(&r->arena, json, len, &t)) {
        sl_req_error(r, 500, "api_error", "corrupt_ticket", NULL,
                     "the stored ticket cannot be read");
        answer(r, 500);
        return;
    }
    ticket_with_views(r->conf, (sl_str){json, len}, &t, &r->body_out);
    answer(r, 200);
}

static void not_found(sl_req *r)
{
    sl_req_error(r, 404, "invalid_request_error", "ticket_not_found", "id",
                 "no ticket with this id");
    answer(r, 404);
}

static void on_get_reply(void *ud, const redisReply *rep, int status)
{
    sl_req *r = ud;
    if (status != SL_OK || !rep) {
        sl_req_error(r, 503, "api_error", "store_unavailable", NULL,
                     "the ticket store did not answer");
        answer(r, 503);
    } else if (rep->type != REDIS_REPLY_STRING) {
        not_found(r);
    } else {
        answer_ticket(r, rep->str, rep->len);
    }
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
    if (!sla.redis) {
        mem_ticket *m = mem_find((sl_str){id, n}, XXH3_64bits(id, n));
        if (!m)
            not_found(r);
        else
            answer_ticket(r, m->json, m->len);
        return;
    }
    char key[1100];
    int kl = snprintf(key, sizeof key, K_TICKET);
    memcpy(key + kl, id, n);
    const char *argv[] = {"HGET", key, "j"};
    size_t argl[] = {4, (size_t)kl + n, 1};
    sl_req_ref(r);
    if (sl_redis_cmd(sla.redis, on_get_reply, r, 3, argv, argl) != SL_OK) {
        sl_req_release(r);
        sl_req_error(r, 503, "api_error", "store_unavailable", NULL,
                     "the ticket store is unavailable");
        answer(r, 503);
    }
}

/* ---- dashboard ---------------------------------------------------------------------------- */

typedef struct dash_item {
    sl_str json;
    int kind;
    sl_sla_view v;
} dash_item;

typedef struct dash {
    sl_req *r;
    char tier[256], priority[32];
    size_t total;
    size_t by_state[5];
    dash_item *risk, *breach;
    size_t n_risk, n_breach, cap;
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

static void dash_add(dash *d, const char *json, size_t len, int64_t now)
{
    sl_ticket t;
    if (!load_ticket(&d->r->arena, json, len, &t))
        return;
    if ((d->tier[0] && !sl_str_eq_c(t.tier, d->tier)) ||
        (d->priority[0] && strcmp(PRIORITIES[t.priority], d->priority)))
        return;
    d->total++;
    sl_sla_state worst = SL_SLA_NO_TARGET;
    for (int kind = 0; kind < 2; kind++) {
        sl_sla_view v = sl_sla_compute(d->r->conf, &t, kind, now);
        if (worst_rank(v.state) > worst_rank(worst))
            worst = v.state;
        if (!alertable(v.state))
            continue;
        bool at_risk = v.state == SL_SLA_AT_RISK;
        if (d->n_risk + d->n_breach >= d->cap) {
            d->cap = d->cap ? d->cap * 2 : 64;
            dash_item *nr = sl_arena_alloc(&d->r->arena, d->cap * sizeof(dash_item));
            dash_item *nb = sl_arena_alloc(&d->r->arena, d->cap * sizeof(dash_item));
            if (!nr || !nb)
                return;
            if (d->n_risk)
                memcpy(nr, d->risk, d->n_risk * sizeof(dash_item));
            if (d->n_breach)
                memcpy(nb, d->breach, d->n_breach * sizeof(dash_item));
            d->risk = nr;
            d->breach = nb;
        }
        dash_item it = {{json, len}, kind, v};
        if (at_risk)
            d->risk[d->n_risk++] = it;
        else
            d->breach[d->n_breach++] = it;
    }
    d->by_state[worst]++;
}

static int by_due(const void *a, const void *b)
{
    int64_t x = ((const dash_item *)a)->v.due_ms, y = ((const dash_item *)b)->v.due_ms;
    return (x > y) - (x < y);
}

static void dash_list(sl_buf *b, const char *name, dash_item *items, size_t n)
{
    if (n)
        qsort(items, n, sizeof(*items), by_due);
    sl_buf_printf(b, ",\"%s\":[", name);
    for (size_t i = 0; i < SL_MIN(n, (size_t)DASH_LIST_MAX); i++) {
        sl_buf_append_c(b, i ? "," : "");
        sl_buf_append(b, items[i].json.p, items[i].json.len - 1);
        char due[32];
        sl_rfc3339_ms(items[i].v.due_ms, due);
        sl_buf_printf(b, ",\"sla\":\"%s\",\"due_at\":\"%s\",\"remaining_s\":%.0f,\"state\":\"%s\"}",
                      KIND_NAMES[items[i].kind], due, items[i].v.remaining_s,
                      sl_sla_state_name(items[i].v.state));
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
    dash_list(b, "at_risk", d->risk, d->n_risk);
    dash_list(b, "breached", d->breach, d->n_breach);
    sl_buf_append_c(b, "}");
    answer(d->r, 200);
}

static const char *const ALL_SCRIPT =
    "local ids = redis.call('SMEMBERS', KEYS[1])\n"
    "local out = {}\n"
    "for i, id in ipairs(ids) do\n"
    "  if i > tonumber(ARGV[1]) then break end\n"
    "  local j = redis.call('HGET', 'sluice:{sla}:t:' .. id, 'j')\n"
    "  if j then out[#out + 1] = j end\n"
    "end\n"
    "return out\n";

static void on_all_reply(void *ud, const redisReply *rep, int status)
{
    dash *d = ud;
    sl_req *r = d->r;
    if (status != SL_OK || !rep || rep->type != REDIS_REPLY_ARRAY) {
        sl_req_error(r, 503, "api_error", "store_unavailable", NULL,
                     "the ticket store did not answer");
        answer(r, 503);
    } else {
        int64_t now = sl_wall_ms();
        for (size_t i = 0; i < rep->elements; i++) {
            const redisReply *j = rep->element[i];
            if (j->type == REDIS_REPLY_STRING) { /* copied: the reply dies with this callback */
                char *copy = sl_arena_strndup(&r->arena, j->str, j->len);
                if (copy)
                    dash_add(d, copy, j->len, now);
            }
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
    if (!sla.redis) {
        int64_t now = sl_wall_ms();
        for (size_t b = 0; b < MEM_BUCKETS; b++) {
            for (mem_ticket *m = sla.mem[b]; m; m = m->next)
                dash_add(d, m->json, m->len, now);
        }
        dash_answer(d);
        return;
    }
    const char *argv[] = {K_IDS, "50000"};
    sl_req_ref(r);
    if (sl_redis_eval(sla.redis, ALL_SCRIPT, 1, 2, argv, NULL, on_all_reply, d) != SL_OK) {
        sl_req_release(r);
        sl_req_error(r, 503, "api_error", "store_unavailable", NULL,
                     "the ticket store is unavailable");
        answer(r, 503);
    }
}

static void on_dead_reply(void *ud, const redisReply *rep, int status)
{
    sl_req *r = ud;
    sl_buf *b = &r->body_out;
    sl_buf_append_c(b, "{\"dead\":[");
    if (status == SL_OK && rep && rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < rep->elements; i++) {
            sl_buf_append_c(b, i ? "," : "");
            sl_buf_append(b, rep->element[i]->str, rep->element[i]->len);
        }
    }
    sl_buf_printf(b, "],\"total\":%llu}", (unsigned long long)sla.dead_total);
    answer(r, 200);
    sl_req_release(r);
}

void sl_sla_dead(sl_req *r)
{
    if (sla.redis) {
        const char *argv[] = {"LRANGE", K_DEAD, "0", "99"};
        sl_req_ref(r);
        if (sl_redis_cmd(sla.redis, on_dead_reply, r, 4, argv, NULL) == SL_OK)
            return;
        sl_req_release(r);
    }
    sl_buf *b = &r->body_out;
    sl_buf_append_c(b, "{\"dead\":[");
    for (size_t i = 0; i < sla.dead_count; i++) {
        sl_buf_append_c(b, i ? "," : "");
        sl_buf_append_c(b, sla.dead[(sla.dead_head + sla.dead_count - 1 - i) % DEAD_MAX]);
    }
    sl_buf_printf(b, "],\"total\":%llu}", (unsigned long long)sla.dead_total);
    answer(r, 200);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

int sl_sla_start(struct event_base *base, sl_redis *redis, const sl_config *c)
{
    sla.base = base;
    sla.redis = redis;
    sla.conf = sl_config_ref((sl_config *)c);
    sla.mem = calloc(MEM_BUCKETS, sizeof(*sla.mem));
    sla.sent = calloc(MEM_BUCKETS, sizeof(*sla.sent));
    sla.tick = evtimer_new(base, on_tick, NULL);
    if (!sla.mem || !sla.sent || !sla.tick)
        return SL_ENOMEM;
    struct timeval tv = {c->sla.evaluate_every_s, 0};
    evtimer_add(sla.tick, &tv);
    return SL_OK;
}

void sl_sla_reload(const sl_config *c)
{
    sl_config *old = sla.conf;
    sla.conf = sl_config_ref((sl_config *)c);
    sl_config_unref(old);
}

void sl_sla_stop(void)
{
    if (sla.tick)
        event_free(sla.tick);
    for (size_t b = 0; sla.mem && b < MEM_BUCKETS; b++) {
        for (mem_ticket *m = sla.mem[b]; m;) {
            mem_ticket *n = m->next;
            free(m);
            m = n;
        }
        for (dedupe *d = sla.sent[b]; d;) {
            dedupe *n = d->next;
            free(d);
            d = n;
        }
    }
    free(sla.mem);
    free(sla.sent);
    for (size_t i = 0; i < sla.dead_count; i++)
        free(sla.dead[(sla.dead_head + i) % DEAD_MAX]);
    if (sla.conf)
        sl_config_unref(sla.conf);
    memset(&sla, 0, sizeof sla);
}
