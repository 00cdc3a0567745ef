/* sla_store_redis.c — the SLA store on Redis, shared by every instance; see sla_store.h.
 *
 * A ticket is one hash (normalised JSON "j" + updated_at "u") written by an
 * upsert script that also keeps two sorted sets of instants — when each open
 * SLA turns at-risk and when it breaches — so a tick touches only the tickets
 * whose instant has come (cost follows tickets due, not tickets stored). The
 * tick script pops due members and claims each alert with SET NX in the same
 * atomic step: several instances never alert twice, and a restart does not
 * repeat an alert. Dead letters go to a capped list, and to an in-process
 * copy read when Redis cannot be asked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/redis.h"
#include "sluice/redis_keys.h"
#include "sluice/sla_store.h"

/* Every SLA key shares the hash tag {sla} (redis_keys.h): the scripts that touch
 * several of them run on a Redis Cluster too, all in one slot. */
#define K_TICKET SL_RK_SLA_TICKET
#define K_RISK   SL_RK_SLA_RISK
#define K_DUE    SL_RK_SLA_DUE
#define K_IDS    SL_RK_SLA_IDS
#define K_DEAD   SL_RK_SLA_DEAD

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

static const char *const ALL_SCRIPT = "local ids = redis.call('SMEMBERS', KEYS[1])\n"
                                      "local out = {}\n"
                                      "for i, id in ipairs(ids) do\n"
                                      "  if i > tonumber(ARGV[1]) then break end\n"
                                      "  local j = redis.call('HGET', '" K_TICKET "' .. id, 'j')\n"
                                      "  if j then out[#out + 1] = j end\n"
                                      "end\n"
                                      "return out\n";

/* Pops the members whose instant has come and claims each alert exactly once. */
static const char *const TICK_SCRIPT =
    "local out = {}\n"
    "for _, z in ipairs({{KEYS[1], 'at_risk'}, {KEYS[2], 'breached'}}) do\n"
    "  local ms = redis.call('ZRANGEBYSCORE', z[1], '-inf', ARGV[1], 'LIMIT', 0, "
    "tonumber(ARGV[2]))\n"
    "  for _, m in ipairs(ms) do\n"
    "    redis.call('ZREM', z[1], m)\n"
    "    local id = string.sub(m, 3)\n"
    "    local json = redis.call('HGET', '" K_TICKET "' .. id, 'j')\n"
    "    if json and redis.call('SET', '" SL_RK_SLA_ALERT "' .. z[2] .. ':' .. m, '1', 'NX', 'EX', "
    "ARGV[3]) then\n"
    "      out[#out + 1] = string.sub(m, 1, 1)\n"
    "      out[#out + 1] = z[2]\n"
    "      out[#out + 1] = json\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

typedef struct redis_store {
    sl_sla_store base;
    sl_redis *redis;
    int acks, wait_ms;   /* every ticket write is held by acks replicas before it answers */
    sl_sla_store *local; /* the in-process copy of the dead letters */
} redis_store;

/* One command in flight: the caller's callback (one of them is set) and data.
 * It does not point at the store, which may be gone when Redis answers. */
typedef struct pending {
    sl_sla_rc_cb rc_cb;
    sl_sla_json_cb json_cb;
    sl_sla_list_cb list_cb;
    sl_sla_due_cb due_cb;
    void *ud;
    bool acked; /* a ticket write: held by the replicas before it answers */
} pending;

/* The reply is usable: answered in time, not an error, of the expected type. */
static bool reply_ok(const redisReply *rep, int status, int type)
{
    return status == SL_OK && rep && rep->type == type;
}

/* Sends a script or a command (script NULL) with a copy of p as its private data. */
static int issue(redis_store *s, const char *script, int numkeys, int argc, const char **argv,
                 const size_t *argl, sl_redis_cb on_reply, pending init)
{
    pending *p = malloc(sizeof(*p));
    if (!p)
        return SL_ENOMEM;
    *p = init;
    int acks = p->acked ? s->acks : 0;
    int rc = script ? sl_redis_eval_acked(s->redis, script, numkeys, argc, argv, argl, acks,
                                          s->wait_ms, on_reply, p)
                    : sl_redis_cmd(s->redis, on_reply, p, argc, argv, argl);
    if (rc != SL_OK)
        free(p);
    return rc;
}

static bool r_ready(const sl_sla_store *base)
{
    return sl_redis_get_state(((const redis_store *)base)->redis) == SL_REDIS_UP;
}

/* ---- upsert and get -------------------------------------------------------------- */

static void on_upsert(void *ud, const redisReply *rep, int status)
{
    pending *p = ud;
    int rc = SL_EIO;
    if (reply_ok(rep, status, REDIS_REPLY_INTEGER))
        rc = rep->integer == 1 ? 1 : rep->integer == 2 ? 2 : 0;
    p->rc_cb(p->ud, rc);
    free(p);
}

static size_t ticket_key(char *key, size_t cap, sl_str id)
{
    size_t kl = strlen(K_TICKET), n = SL_MIN(id.len, cap - kl);
    memcpy(key, K_TICKET, kl);
    memcpy(key + kl, id.p, n);
    return kl + n;
}

static int r_upsert(sl_sla_store *base, const sl_ticket *t, sl_str json, const sl_sla_marks *m,
                    sl_sla_rc_cb cb, void *ud)
{
    char key[300], upd[32], v[4][32];
    size_t kl = ticket_key(key, sizeof key, t->id);
    snprintf(upd, sizeof upd, "%lld", (long long)t->updated_ms);
    for (int k = 0; k < 2; k++) {
        snprintf(v[2 * k], 32, "%lld", (long long)m->risk_ms[k]);
        snprintf(v[2 * k + 1], 32, "%lld", (long long)m->due_ms[k]);
    }
    /* argv form: ids and fields travel binary-safe, never in a format string */
    const char *argv[] = {key, K_RISK, K_DUE, K_IDS, json.p, upd, t->id.p, v[0], v[1], v[2], v[3]};
    size_t argl[] = {kl,           strlen(K_RISK), strlen(K_DUE), strlen(K_IDS),
                     json.len,     strlen(upd),    t->id.len,     strlen(v[0]),
                     strlen(v[1]), strlen(v[2]),   strlen(v[3])};
    /* WAIT right behind the script, on the node that executes it: during a
     * reshard (ASK) that is not the slot's owner in the map */
    return issue((redis_store *)base, UPSERT_SCRIPT, 4, 11, argv, argl, on_upsert,
                 (pending){.rc_cb = cb, .ud = ud, .acked = true});
}

static void on_get(void *ud, const redisReply *rep, int status)
{
    pending *p = ud;
    if (status != SL_OK || !rep)
        p->json_cb(p->ud, SL_EIO, (sl_str){"", 0});
    else if (rep->type != REDIS_REPLY_STRING)
        p->json_cb(p->ud, SL_ENOTFOUND, (sl_str){"", 0});
    else
        p->json_cb(p->ud, SL_OK, (sl_str){rep->str, rep->len});
    free(p);
}

static int r_get(sl_sla_store *base, sl_str id, sl_sla_json_cb cb, void *ud)
{
    char key[1100];
    size_t kl = ticket_key(key, sizeof key, id);
    const char *argv[] = {"HGET", key, "j"};
    size_t argl[] = {4, kl, 1};
    return issue((redis_store *)base, NULL, 0, 3, argv, argl, on_get,
                 (pending){.json_cb = cb, .ud = ud});
}

/* ---- lists: all tickets, dead letters --------------------------------------------- */

/* Hands the string elements of an array reply to p's list callback. */
static void on_list(void *ud, const redisReply *rep, int status)
{
    pending *p = ud;
    sl_str *items = NULL;
    size_t n = 0;
    int rc = SL_EIO;
    if (reply_ok(rep, status, REDIS_REPLY_ARRAY)) {
        items = malloc((rep->elements + 1) * sizeof(*items));
        rc = items ? SL_OK : SL_ENOMEM;
        for (size_t i = 0; items && i < rep->elements; i++) {
            if (rep->element[i]->type == REDIS_REPLY_STRING)
                items[n++] = (sl_str){rep->element[i]->str, rep->element[i]->len};
        }
    }
    p->list_cb(p->ud, rc, items, n);
    free(items);
    free(p);
}

static int r_all(sl_sla_store *base, size_t max, sl_sla_list_cb cb, void *ud)
{
    char lim[32];
    snprintf(lim, sizeof lim, "%zu", max);
    const char *argv[] = {K_IDS, lim};
    return issue((redis_store *)base, ALL_SCRIPT, 1, 2, argv, NULL, on_list,
                 (pending){.list_cb = cb, .ud = ud});
}

static void r_dead_push(sl_sla_store *base, sl_str json)
{
    redis_store *s = (redis_store *)base;
    char last[16];
    snprintf(last, sizeof last, "%d", SL_SLA_DEAD_MAX - 1);
    const char *lp[] = {"LPUSH", K_DEAD, json.p};
    size_t ll[] = {5, strlen(K_DEAD), json.len};
    sl_redis_cmd(s->redis, NULL, NULL, 3, lp, ll);
    const char *lt[] = {"LTRIM", K_DEAD, "0", last};
    sl_redis_cmd(s->redis, NULL, NULL, 4, lt, NULL);
    s->local->ops->dead_push(s->local, json);
}

static int r_dead_list(sl_sla_store *base, size_t max, sl_sla_list_cb cb, void *ud)
{
    redis_store *s = (redis_store *)base;
    char last[32];
    snprintf(last, sizeof last, "%zu", max ? max - 1 : 0);
    const char *argv[] = {"LRANGE", K_DEAD, "0", last};
    if (issue(s, NULL, 0, 4, argv, NULL, on_list, (pending){.list_cb = cb, .ud = ud}) == SL_OK)
        return SL_OK;
    return s->local->ops->dead_list(s->local, max, cb, ud); /* Redis cannot be asked */
}

/* ---- due alerts ---------------------------------------------------------------------- */

/* One (kind, claimed state, json) triple of the tick script; false when malformed. */
static bool due_of(redisReply *const *e, sl_sla_due *d)
{
    if (e[0]->type != REDIS_REPLY_STRING || e[1]->type != REDIS_REPLY_STRING ||
        e[2]->type != REDIS_REPLY_STRING)
        return false;
    d->kind = e[0]->str[0] == 'r' ? SL_SLA_RESPONSE : SL_SLA_RESOLUTION;
    d->claimed = strcmp(e[1]->str, "at_risk") == 0 ? SL_SLA_AT_RISK : SL_SLA_BREACHED;
    d->json = (sl_str){e[2]->str, e[2]->len};
    return true;
}

static void on_due(void *ud, const redisReply *rep, int status)
{
    pending *p = ud;
    sl_sla_due *items = NULL;
    size_t n = 0;
    int rc = SL_EIO;
    if (reply_ok(rep, status, REDIS_REPLY_ARRAY)) {
        items = malloc((rep->elements / 3 + 1) * sizeof(*items));
        rc = items ? SL_OK : SL_ENOMEM;
        for (size_t i = 0; items && i + 2 < rep->elements; i += 3)
            n += due_of(rep->element + i, &items[n]);
    }
    p->due_cb(p->ud, rc, items, n);
    free(items);
    free(p);
}

static int r_pop_due(sl_sla_store *base, int64_t now, size_t max, int claim_ttl_s, sl_sla_due_cb cb,
                     void *ud)
{
    char n[32], lim[32], ttl[16];
    snprintf(n, sizeof n, "%lld", (long long)now);
    snprintf(lim, sizeof lim, "%zu", max);
    snprintf(ttl, sizeof ttl, "%d", claim_ttl_s);
    const char *argv[] = {K_RISK, K_DUE, n, lim, ttl};
    return issue((redis_store *)base, TICK_SCRIPT, 2, 5, argv, NULL, on_due,
                 (pending){.due_cb = cb, .ud = ud});
}

/* ---- replication and lifecycle --------------------------------------------------------- */

/* The upserts waited for their replicas one by one (r_upsert): the writes that
 * answered are held by s->acks replicas; more cannot be promised. */
static int r_sync(sl_sla_store *base, int acks, int wait_ms, sl_sla_rc_cb cb, void *ud)
{
    SL_UNUSED(wait_ms);
    cb(ud, acks <= ((redis_store *)base)->acks ? SL_OK : SL_EIO);
    return SL_OK;
}

static void r_free(sl_sla_store *base)
{
    redis_store *s = (redis_store *)base;
    if (!s)
        return;
    if (s->local)
        s->local->ops->free(s->local);
    free(s);
}

static const sl_sla_store_ops redis_ops = {
    .name = "redis",
    .ready = r_ready,
    .upsert = r_upsert,
    .get = r_get,
    .all = r_all,
    .pop_due = r_pop_due,
    .sync = r_sync,
    .dead_push = r_dead_push,
    .dead_list = r_dead_list,
    .free = r_free,
};

sl_sla_store *sl_sla_store_redis_new(sl_redis *redis, int acks, int wait_ms)
{
    redis_store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->base.ops = &redis_ops;
    s->redis = redis;
    s->acks = acks;
    s->wait_ms = wait_ms;
    s->local = sl_sla_store_mem_new();
    if (!s->local) {
        free(s);
        return NULL;
    }
    return &s->base;
}
