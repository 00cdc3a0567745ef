/* redis.c — hiredis async with timeouts, reconnects and fail-fast; see redis.h. */
#include "sluice/redis.h"

#include "sluice/trace.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>

#include "sluice/log.h"
#include "sluice/redis_cluster.h"
#include "sluice/redis_reply.h"

enum {
    HUNG_AFTER_TIMEOUTS = 3,
    BACKOFF_MIN_MS = 100,
    BACKOFF_MAX_MS = 5000,
    CONNECT_TIMEOUT_MS = 1000
};

struct sl_redis {
    struct event_base *base;
    redisAsyncContext *ctx;
    sl_redis_state state;
    char host[256];
    int port, db, timeout_ms;
    char *password;
    char desc[300];
    struct event *reconnect; /* backoff timer; also the connect timeout */
    int backoff_ms;
    int consecutive_timeouts;
    uint64_t timeouts, reconnects;
    int pending; /* hiredis callbacks outstanding */
    bool freeing;
    /* Sentinel mode: the master's address is asked, never configured */
    char **sentinels; /* "host:port" */
    size_t n_sentinels;
    char *master_name;
    size_t next_sentinel;          /* the one asked next */
    redisAsyncContext *ask_ctx;    /* SENTINEL get-master-addr-by-name in flight */
    redisAsyncContext *sub_ctx[8]; /* PSUBSCRIBE * on each sentinel */
    uint64_t paused_until_ms;      /* a failover is under way: write nowhere until it ends */
    struct event *kick;            /* deferred drop after a READONLY reply */
    uint64_t failovers;
    /* Cluster: the wrapper delegates everything to the runtime; a node connection
     * of it may send READONLY and tells the runtime when it is up. */
    sl_cluster *cluster;
    bool readonly;
    void (*on_up)(void *arg);
    void *up_arg;
};

typedef struct pending_cmd {
    sl_redis *r;
    sl_redis_cb cb;
    void *ud;
    struct event *timer;
    bool answered;     /* the user callback ran */
    bool hiredis_done; /* hiredis will not call us again */
    bool fail_now;     /* deferred SL_EIO */
    bool traced;       /* issued for a sampled request (trace.h): a slow one gets a span */
    char op[24];       /* ... its command name */
    uint64_t t_start;
    sl_trace trace; /* ... the request's ids (the request may be gone at the reply) */
} pending_cmd;

static void connect_now(sl_redis *r);

const char *sl_redis_state_name(sl_redis_state s)
{
    return s == SL_REDIS_UP ? "up" : s == SL_REDIS_CONNECTING ? "connecting" : "down";
}

static void set_state(sl_redis *r, sl_redis_state s, const char *why)
{
    if (r->state == s)
        return;
    r->state = s;
    if (s != SL_REDIS_CONNECTING) /* one line per real transition */
        sl_log(s == SL_REDIS_UP ? "info" : "warn", "redis %s: %s%s%s", r->desc,
               sl_redis_state_name(s), why ? ": " : "", why ? why : "");
}

static void schedule_reconnect(sl_redis *r)
{
    if (r->freeing)
        return;
    int jitter = r->backoff_ms / 4 ? (int)(rand() % (r->backoff_ms / 4)) : 0;
    int ms = r->backoff_ms + jitter;
    r->backoff_ms = SL_MIN(r->backoff_ms * 2, BACKOFF_MAX_MS);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(r->reconnect, &tv);
}

static void maybe_free_cmd(pending_cmd *pc)
{
    if (pc->answered && pc->hiredis_done) {
        event_free(pc->timer);
        free(pc);
    }
}

/* Tracing: the command of a traced request took over tracing.redis_slow_ms
 * (or timed out): a CLIENT span under the request's. Never a key or value. */
static void note_trace(pending_cmd *pc, const char *error)
{
    uint64_t now = sl_now_us();
    if (!pc->traced || (!error && now - pc->t_start < sl_trace_redis_slow_us))
        return;
    char name[40];
    snprintf(name, sizeof name, "redis %s", pc->op);
    sl_span sp;
    sl_span_begin(&sp, &pc->trace, NULL, pc->trace.span_id, name, SL_SPAN_CLIENT, pc->t_start, now);
    sl_span_cstr(&sp, "db.system.name", "redis");
    sl_span_cstr(&sp, "db.operation.name", pc->op);
    sl_span_cstr(&sp, "server.address", pc->r->host);
    sl_span_int(&sp, "server.port", pc->r->port);
    if (error) {
        sl_span_cstr(&sp, "error.type", error);
        sl_span_error(&sp, error);
    }
    sl_span_emit(&sp);
    pc->traced = false;
}

static void trace_cmd(pending_cmd *pc, const char *op, size_t n)
{
    const sl_trace *t = sl_trace_current;
    if (!t || !t->sampled)
        return;
    pc->traced = true;
    pc->t_start = sl_now_us();
    pc->trace = *t;
    pc->trace.tracestate = NULL; /* arena memory of a request that may be gone */
    n = SL_MIN(n, sizeof pc->op - 1);
    for (size_t i = 0; i < n; i++)
        pc->op[i] = (char)((op[i] >= 'a' && op[i] <= 'z') ? op[i] - 32 : op[i]);
}

/* The command's name for its span: argv[0], or the first bulk string of a
 * command already in RESP form ("*N\r\n$L\r\nNAME\r\n…", as the cluster sends). */
static void trace_named(pending_cmd *pc, int argc, const char **argv, const size_t *argvlen,
                        const char *resp, size_t resp_len)
{
    if (argc > 0) {
        trace_cmd(pc, argv[0], argvlen ? argvlen[0] : strlen(argv[0]));
        return;
    }
    if (!resp)
        return;
    const char *end = resp + resp_len, *d = memchr(resp, '$', resp_len);
    if (!d)
        return;
    size_t n = 0;
    const char *q = d + 1;
    while (q < end && *q >= '0' && *q <= '9' && n < 64)
        n = n * 10 + (size_t)(*q++ - '0');
    if (end - q >= 2 && q[0] == '\r' && q[1] == '\n' && (size_t)(end - q - 2) >= n)
        trace_cmd(pc, q + 2, n);
}

static void on_reply(redisAsyncContext *c, void *reply, void *priv)
{
    SL_UNUSED(c);
    pending_cmd *pc = priv;
    sl_redis *r = pc->r;
    r->pending--;
    pc->hiredis_done = true;
    const redisReply *rep = reply;
    if (r->master_name && rep && rep->type == REDIS_REPLY_ERROR &&
        strncmp(rep->str, "READONLY", 8) == 0)
        event_active(r->kick, 0,
                     0); /* a demoted master: find the new one (not on hiredis' stack) */
    if (!pc->answered) {
        pc->answered = true;
        evtimer_del(pc->timer);
        if (pc->traced)
            note_trace(pc, reply ? NULL : "connection_error");
        if (reply)
            r->consecutive_timeouts = 0;
        if (pc->cb)
            pc->cb(pc->ud, reply, reply ? SL_OK : SL_EIO);
    }
    maybe_free_cmd(pc);
}

static void drop_connection(sl_redis *r, const char *why)
{
    redisAsyncContext *c = r->ctx;
    if (!c)
        return;
    r->ctx = NULL;
    set_state(r, SL_REDIS_DOWN, why);
    c->onDisconnect = NULL; /* we handle the aftermath here */
    redisAsyncFree(c);      /* every pending callback gets a NULL reply */
    schedule_reconnect(r);
}

static void on_cmd_timer(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    pending_cmd *pc = arg;
    sl_redis *r = pc->r;
    if (pc->answered)
        return;
    pc->answered = true;
    if (pc->fail_now) {
        if (pc->cb)
            pc->cb(pc->ud, NULL, SL_EIO);
        maybe_free_cmd(pc);
        return;
    }
    r->timeouts++;
    if (pc->traced)
        note_trace(pc, "timeout");
    if (pc->cb)
        pc->cb(pc->ud, NULL, SL_ETIMEDOUT);
    bool hung = ++r->consecutive_timeouts >= HUNG_AFTER_TIMEOUTS;
    maybe_free_cmd(pc); /* frees only if hiredis is done with it too */
    if (hung)
        drop_connection(r, "not answering (timeouts)");
}

static int command(sl_redis *r, int timeout_ms, sl_redis_cb cb, void *ud, int argc,
                   const char **argv, const size_t *argvlen);

int sl_redis_cmd(sl_redis *r, sl_redis_cb cb, void *ud, int argc, const char **argv,
                 const size_t *argvlen)
{
    return command(r, r ? r->timeout_ms : 0, cb, ud, argc, argv, argvlen);
}

int sl_redis_cmd_at(sl_redis *r, const char *key, size_t keylen, int flags, int timeout_ms,
                    sl_redis_cb cb, void *ud, int argc, const char **argv, const size_t *argvlen)
{
    if (r && timeout_ms <= 0)
        timeout_ms = r->timeout_ms;
    if (r && r->cluster)
        return sl_cluster_cmd(r->cluster, key, keylen, flags, timeout_ms, cb, ud, argc, argv,
                              argvlen);
    return command(r, timeout_ms, cb, ud, argc, argv, argvlen);
}

int sl_redis_cmd_timeout(sl_redis *r, int timeout_ms, sl_redis_cb cb, void *ud, int argc,
                         const char **argv, const size_t *argvlen)
{
    return command(r, timeout_ms, cb, ud, argc, argv, argvlen);
}

static int enqueue(sl_redis *r, int timeout_ms, sl_redis_cb cb, void *ud, int argc,
                   const char **argv, const size_t *argvlen, const char *resp, size_t resp_len);

static int command(sl_redis *r, int timeout_ms, sl_redis_cb cb, void *ud, int argc,
                   const char **argv, const size_t *argvlen)
{
    if (r && r->cluster)
        return sl_cluster_cmd(r->cluster, NULL, 0, 0, timeout_ms, cb, ud, argc, argv, argvlen);
    return enqueue(r, timeout_ms, cb, ud, argc, argv, argvlen, NULL, 0);
}

int sl_redis_node_send(sl_redis *r, int timeout_ms, sl_redis_cb cb, void *ud, const char *resp,
                       size_t resp_len)
{
    return enqueue(r, timeout_ms, cb, ud, 0, NULL, NULL, resp, resp_len);
}

/* Queues a command on r's connection: argv, or bytes already in RESP form. */
static int enqueue(sl_redis *r, int timeout_ms, sl_redis_cb cb, void *ud, int argc,
                   const char **argv, const size_t *argvlen, const char *resp, size_t resp_len)
{
    if (!r || r->state != SL_REDIS_UP || !r->ctx)
        return SL_EAGAIN;
    pending_cmd *pc = calloc(1, sizeof(*pc));
    if (!pc)
        return SL_ENOMEM;
    pc->r = r;
    pc->cb = cb;
    pc->ud = ud;
    pc->timer = evtimer_new(r->base, on_cmd_timer, pc);
    if (!pc->timer) {
        free(pc);
        return SL_ENOMEM;
    }
    if (sl_trace_current)
        trace_named(pc, argc, argv, argvlen, resp, resp_len);
    int sent = resp ? redisAsyncFormattedCommand(r->ctx, on_reply, pc, resp, resp_len)
                    : redisAsyncCommandArgv(r->ctx, on_reply, pc, argc, argv, argvlen);
    if (sent != REDIS_OK) {
        /* The callback will never run: answer SL_EIO from the loop instead. */
        pc->hiredis_done = true;
        pc->fail_now = true;
        event_active(pc->timer, 0, 0);
        return SL_OK;
    }
    r->pending++;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(pc->timer, &tv);
    return SL_OK;
}

/* ---- connection lifecycle ---------------------------------------------------- */

static void ignore_reply(redisAsyncContext *c, void *reply, void *priv)
{
    SL_UNUSED(c);
    SL_UNUSED(reply);
    SL_UNUSED(priv);
}

static void on_connect(const redisAsyncContext *c, int status)
{
    sl_redis *r = c->data;
    evtimer_del(r->reconnect); /* the connect timeout */
    if (status != REDIS_OK) {
        r->ctx = NULL; /* hiredis frees the context after this callback */
        set_state(r, SL_REDIS_DOWN, c->errstr[0] ? c->errstr : "connect failed");
        schedule_reconnect(r);
        return;
    }
    r->backoff_ms = BACKOFF_MIN_MS;
    r->consecutive_timeouts = 0;
    redisAsyncContext *ac = (redisAsyncContext *)c;
    if (r->password) {
        const char *argv[] = {"AUTH", r->password};
        redisAsyncCommandArgv(ac, ignore_reply, NULL, 2, argv, NULL);
    }
    if (r->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->db);
        const char *argv[] = {"SELECT", db};
        redisAsyncCommandArgv(ac, ignore_reply, NULL, 2, argv, NULL);
    }
    if (r->readonly) { /* a replica serves reads only on a READONLY connection */
        const char *argv[] = {"READONLY"};
        redisAsyncCommandArgv(ac, ignore_reply, NULL, 1, argv, NULL);
    }
    set_state(r, SL_REDIS_UP, NULL);
    if (r->on_up)
        r->on_up(r->up_arg);
}

static void on_disconnect(const redisAsyncContext *c, int status)
{
    SL_UNUSED(status);
    sl_redis *r = c->data;
    if (r->ctx != c)
        return;
    r->ctx = NULL; /* freed by hiredis after this callback */
    set_state(r, SL_REDIS_DOWN, c->errstr[0] ? c->errstr : "connection lost");
    schedule_reconnect(r);
}

static void on_reconnect_timer(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    sl_redis *r = arg;
    if (r->state == SL_REDIS_CONNECTING && r->ctx) {
        drop_connection(r, "connect timeout"); /* a black-holed address */
        return;
    }
    if (r->ask_ctx) { /* a sentinel that does not answer: try the next */
        redisAsyncContext *c = r->ask_ctx;
        r->ask_ctx = NULL;
        c->onDisconnect = NULL;
        redisAsyncFree(c);
        r->next_sentinel++;
    }
    r->reconnects++;
    connect_now(r);
}

static void discover(sl_redis *r);

static void connect_now(sl_redis *r)
{
    if (r->master_name && !r->ask_ctx) {
        discover(r); /* ask where the master is, then connect there */
        return;
    }
    redisAsyncContext *c = redisAsyncConnect(r->host, r->port);
    if (!c || c->err) {
        set_state(r, SL_REDIS_DOWN, c ? c->errstr : "out of memory");
        if (c)
            redisAsyncFree(c);
        schedule_reconnect(r);
        return;
    }
    c->data = r;
    sl_redis_reader_bound(c->c.reader);
    redisLibeventAttach(c, r->base);
    redisAsyncSetConnectCallback(c, on_connect);
    redisAsyncSetDisconnectCallback(c, on_disconnect);
    r->ctx = c;
    set_state(r, SL_REDIS_CONNECTING, NULL);
    struct timeval tv = {CONNECT_TIMEOUT_MS / 1000, (CONNECT_TIMEOUT_MS % 1000) * 1000};
    evtimer_add(r->reconnect, &tv);
}

/* ---- Sentinel: discovery and failover ------------------------------------------ */

static void connect_master(sl_redis *r);

static redisAsyncContext *sentinel_ctx(sl_redis *r, size_t i)
{
    char host[256];
    snprintf(host, sizeof host, "%s", r->sentinels[i % r->n_sentinels]);
    char *colon = strrchr(host, ':');
    if (!colon)
        return NULL;
    *colon = '\0';
    redisAsyncContext *c = redisAsyncConnect(host, atoi(colon + 1));
    if (!c || c->err) {
        if (c)
            redisAsyncFree(c);
        return NULL;
    }
    sl_redis_reader_bound(c->c.reader);
    c->data = r;
    redisLibeventAttach(c, r->base);
    return c;
}

static void on_ask_gone(const redisAsyncContext *c, int status)
{
    SL_UNUSED(status);
    sl_redis *r = c->data;
    if (r->ask_ctx == c)
        r->ask_ctx = NULL;
}

static void forget_sub(sl_redis *r, const redisAsyncContext *c)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(r->sub_ctx); i++) {
        if (r->sub_ctx[i] == c)
            r->sub_ctx[i] = NULL;
    }
}

static void on_sub_gone(const redisAsyncContext *c, int status)
{
    SL_UNUSED(status);
    forget_sub(c->data, c); /* freed by hiredis; the next discovery subscribes again */
}

static void on_sub_connect(const redisAsyncContext *c, int status)
{
    if (status != REDIS_OK)
        forget_sub(c->data, c);
}

/* Does this sentinel event concern our master? Payloads look like
 * "master NAME ip port", "slave ip:port ip port @ NAME ip port", "NAME old.. new..". */
static bool about_master(const sl_redis *r, const char *msg)
{
    char pat[300];
    size_t nl = strlen(r->master_name);
    snprintf(pat, sizeof pat, "@ %s ", r->master_name);
    return strstr(msg, pat) ||
           (strncmp(msg, "master ", 7) == 0 && strncmp(msg + 7, r->master_name, nl) == 0 &&
            msg[7 + nl] == ' ') ||
           (strncmp(msg, r->master_name, nl) == 0 && msg[nl] == ' ');
}

/* Failover events: as soon as one starts, stop writing to the old master (a
 * write acknowledged there now could be lost); when the new master is named,
 * go to it. Acting on the start closes the window in which the old master
 * still accepts writes that its soon-reconfigured replicas would drop. */
static void on_sentinel_event(redisAsyncContext *c, void *reply, void *priv)
{
    SL_UNUSED(priv);
    sl_redis *r = c->data;
    const redisReply *rep = reply;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 4 ||
        rep->element[2]->type != REDIS_REPLY_STRING ||
        rep->element[3]->type != REDIS_REPLY_STRING || !about_master(r, rep->element[3]->str))
        return;
    const char *ev = rep->element[2]->str;
    if (strcmp(ev, "+switch-master") == 0) {
        r->failovers++;
        r->paused_until_ms = 0;
        event_active(r->kick, 0, 0);
    } else if (strcmp(ev, "+try-failover") == 0 || strcmp(ev, "+selected-slave") == 0 ||
               strcmp(ev, "+promoted-slave") == 0 ||
               strcmp(ev, "+failover-state-reconf-slaves") == 0) {
        if (!r->paused_until_ms)
            r->paused_until_ms = sl_now_ms() + 15000; /* bounded: failover-timeout scale */
        event_active(r->kick, 0, 0);
    }
}

static void subscribe_events(sl_redis *r)
{
    for (size_t i = 0; i < r->n_sentinels && i < SL_ARRAY_LEN(r->sub_ctx); i++) {
        if (r->sub_ctx[i])
            continue;
        redisAsyncContext *c = sentinel_ctx(r, i);
        if (!c)
            continue;
        redisAsyncSetConnectCallback(c, on_sub_connect);
        redisAsyncSetDisconnectCallback(c, on_sub_gone);
        const char *argv[] = {"PSUBSCRIBE", "*"};
        redisAsyncCommandArgv(c, on_sentinel_event, NULL, 2, argv, NULL);
        r->sub_ctx[i] = c;
    }
}

static void on_master_addr(redisAsyncContext *c, void *reply, void *priv)
{
    SL_UNUSED(priv);
    sl_redis *r = c->data;
    const redisReply *rep = reply;
    size_t asked = r->next_sentinel;
    r->next_sentinel++;
    redisAsyncDisconnect(c); /* allowed here: it closes once this callback returns */
    if (r->ask_ctx == c)
        r->ask_ctx = NULL;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[1]->type != REDIS_REPLY_STRING) {
        if (r->next_sentinel % r->n_sentinels == 0) {
            set_state(r, SL_REDIS_DOWN, "no sentinel knows the master");
            schedule_reconnect(r); /* all asked: back off, then ask again */
        } else {
            event_active(r->kick, 0, 0); /* ask the next one now */
        }
        return;
    }
    snprintf(r->host, sizeof r->host, "%s", rep->element[0]->str);
    r->port = atoi(rep->element[1]->str);
    snprintf(r->desc, sizeof r->desc, "%s:%d/%d (master %s)", r->host, r->port, r->db,
             r->master_name);
    r->next_sentinel = asked; /* keep asking the one that answers */
    subscribe_events(r);
    connect_master(r);
}

/* Asks one sentinel (round robin) for the master's address. */
static void discover(sl_redis *r)
{
    if (r->paused_until_ms && sl_now_ms() < r->paused_until_ms) {
        set_state(r, SL_REDIS_DOWN, "failover under way");
        schedule_reconnect(r); /* ask again later, or when +switch-master arrives */
        return;
    }
    r->paused_until_ms = 0;
    redisAsyncContext *c = sentinel_ctx(r, r->next_sentinel);
    if (!c) {
        r->next_sentinel++;
        set_state(r, SL_REDIS_DOWN, "cannot reach a sentinel");
        schedule_reconnect(r);
        return;
    }
    redisAsyncSetDisconnectCallback(c, on_ask_gone);
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", r->master_name};
    redisAsyncCommandArgv(c, on_master_addr, NULL, 3, argv, NULL);
    r->ask_ctx = c;
    set_state(r, SL_REDIS_CONNECTING, NULL);
    struct timeval tv = {CONNECT_TIMEOUT_MS / 1000, (CONNECT_TIMEOUT_MS % 1000) * 1000};
    evtimer_add(r->reconnect, &tv);
}

static void connect_master(sl_redis *r)
{
    char *name = r->master_name;
    r->master_name = NULL; /* connect_now: straight to the address */
    connect_now(r);
    r->master_name = name;
}

/* Failover seen (message, READONLY) or a sentinel to try next: from the loop. */
static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    sl_redis *r = arg;
    if (r->ctx) {
        drop_connection(r, r->paused_until_ms
                               ? "failover under way: writes paused"
                               : "failover: asking the sentinels for the new master");
        return; /* drop_connection schedules the reconnect, which discovers */
    }
    if (!r->ask_ctx)
        discover(r);
}

sl_redis *sl_redis_new_sentinel(struct event_base *base, char *const *sentinels, size_t n,
                                const char *master_name, const char *password, int db,
                                int timeout_ms)
{
    sl_redis *r = calloc(1, sizeof(*r));
    if (!r || !n)
        return r;
    r->base = base;
    r->db = db;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 50;
    r->password = password ? strdup(password) : NULL;
    r->backoff_ms = BACKOFF_MIN_MS;
    r->sentinels = calloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        r->sentinels[i] = strdup(sentinels[i]);
    r->n_sentinels = n;
    r->master_name = strdup(master_name);
    snprintf(r->desc, sizeof r->desc, "sentinel master %s (not found yet)", master_name);
    r->reconnect = evtimer_new(base, on_reconnect_timer, r);
    r->kick = event_new(base, -1, 0, on_kick, r);
    r->state = SL_REDIS_DOWN;
    connect_now(r);
    return r;
}

uint64_t sl_redis_failovers(const sl_redis *r)
{
    if (r && r->cluster) {
        sl_redis_cluster_stats st;
        sl_cluster_get_stats(r->cluster, &st);
        return st.failovers;
    }
    return r ? r->failovers : 0;
}

sl_redis *sl_redis_new(struct event_base *base, const char *host, int port, const char *password,
                       int db, int timeout_ms)
{
    sl_redis *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->base = base;
    snprintf(r->host, sizeof r->host, "%s", host ? host : "127.0.0.1");
    r->port = port ? port : 6379;
    r->db = db;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 50;
    r->password = password ? strdup(password) : NULL;
    r->backoff_ms = BACKOFF_MIN_MS;
    snprintf(r->desc, sizeof r->desc, "%s:%d/%d", r->host, r->port, r->db);
    r->reconnect = evtimer_new(base, on_reconnect_timer, r);
    r->state = SL_REDIS_DOWN;
    connect_now(r);
    return r;
}

sl_redis *sl_redis_new_node(struct event_base *base, const char *host, int port,
                            const char *password, int timeout_ms, bool readonly,
                            void (*on_up)(void *arg), void *arg)
{
    sl_redis *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->base = base;
    snprintf(r->host, sizeof r->host, "%s", host);
    r->port = port;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 50;
    r->password = password ? strdup(password) : NULL;
    r->backoff_ms = BACKOFF_MIN_MS;
    r->readonly = readonly;
    r->on_up = on_up;
    r->up_arg = arg;
    snprintf(r->desc, sizeof r->desc, "%s:%d%s", r->host, r->port, readonly ? " (readonly)" : "");
    r->reconnect = evtimer_new(base, on_reconnect_timer, r);
    r->state = SL_REDIS_DOWN;
    connect_now(r);
    return r;
}

sl_redis *sl_redis_new_cluster(struct event_base *base, char *const *seeds, size_t n,
                               const char *password, int timeout_ms, bool read_from_replicas)
{
    sl_redis *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->base = base;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 50;
    r->cluster = sl_cluster_new(base, seeds, n, password, r->timeout_ms, read_from_replicas);
    if (!r->cluster) {
        free(r);
        return NULL;
    }
    return r;
}

bool sl_redis_cluster_stats_get(const sl_redis *r, sl_redis_cluster_stats *out)
{
    if (!r || !r->cluster)
        return false;
    sl_cluster_get_stats(r->cluster, out);
    return true;
}

void sl_redis_cluster_nodes_json(const sl_redis *r, sl_buf *b)
{
    if (r && r->cluster)
        sl_cluster_nodes_json(r->cluster, b);
    else
        sl_buf_append_c(b, "[]");
}

void sl_redis_free(sl_redis *r)
{
    if (!r)
        return;
    if (r->cluster) {
        sl_cluster_free(r->cluster);
        free(r);
        return;
    }
    r->freeing = true;
    if (r->ctx) {
        redisAsyncContext *c = r->ctx;
        r->ctx = NULL;
        c->onDisconnect = NULL;
        redisAsyncFree(c);
    }
    if (r->ask_ctx) {
        r->ask_ctx->onDisconnect = NULL;
        redisAsyncFree(r->ask_ctx);
    }
    for (size_t i = 0; i < SL_ARRAY_LEN(r->sub_ctx); i++) {
        if (r->sub_ctx[i]) {
            r->sub_ctx[i]->onDisconnect = NULL;
            redisAsyncFree(r->sub_ctx[i]);
        }
    }
    for (size_t i = 0; i < r->n_sentinels; i++)
        free(r->sentinels[i]);
    free(r->sentinels);
    free(r->master_name);
    if (r->kick)
        event_free(r->kick);
    if (r->reconnect)
        event_free(r->reconnect);
    free(r->password);
    free(r);
}

sl_redis_state sl_redis_get_state(const sl_redis *r)
{
    if (r && r->cluster)
        return sl_cluster_state(r->cluster);
    return r ? r->state : SL_REDIS_DOWN;
}
const char *sl_redis_describe(const sl_redis *r)
{
    if (r && r->cluster)
        return sl_cluster_describe(r->cluster);
    return r ? r->desc : "embedded";
}
uint64_t sl_redis_timeouts(const sl_redis *r)
{
    if (r && r->cluster) {
        sl_redis_cluster_stats st;
        sl_cluster_get_stats(r->cluster, &st);
        return st.timeouts;
    }
    return r ? r->timeouts : 0;
}
uint64_t sl_redis_reconnects(const sl_redis *r)
{
    if (r && r->cluster) {
        sl_redis_cluster_stats st;
        sl_cluster_get_stats(r->cluster, &st);
        return st.reconnects;
    }
    return r ? r->reconnects : 0;
}

/* ---- writes acknowledged by replicas: the write, then WAIT on its connection ------ */

/* WAIT counts the replicas that hold the writes of the connection it is sent
 * on, so it goes right behind the write, on the connection that took it (on a
 * cluster: the node that executed it, after any ASK or MOVED). A redirected
 * write is sent again with a WAIT of its own; the WAITs of earlier sends are
 * answered and ignored (each names its send). */
struct sl_acked {
    sl_redis_cb cb;
    void *ud;
    int acks, wait_ms;
    int refs;  /* the write + each WAIT outstanding */
    int sends; /* the WAIT that counts is the one of the last send */
    bool wrote, waited, held, done;
    redisReply stash; /* the write's reply (a scalar), kept until the WAIT answers */
};

typedef struct acked_wait {
    sl_acked *a;
    int send;
} acked_wait;

static sl_acked *acked_new(int acks, int wait_ms, sl_redis_cb cb, void *ud)
{
    sl_acked *a = calloc(1, sizeof(*a));
    if (a)
        *a = (sl_acked){.cb = cb, .ud = ud, .acks = acks, .wait_ms = wait_ms, .refs = 1};
    return a;
}

static void acked_release(sl_acked *a)
{
    if (--a->refs == 0) {
        free(a->stash.str);
        free(a);
    }
}

/* Answers once: the write's reply when the replicas hold it, else NULL / SL_EIO. */
static void acked_deliver(sl_acked *a, const redisReply *reply, int status)
{
    if (a->done)
        return;
    a->done = true;
    if (a->cb)
        a->cb(a->ud, reply, status);
}

static void acked_maybe_deliver(sl_acked *a)
{
    if (a->wrote && a->waited)
        acked_deliver(a, a->held ? &a->stash : NULL, a->held ? SL_OK : SL_EIO);
}

void sl_acked_on_write(void *ud, const redisReply *reply, int status)
{
    sl_acked *a = ud;
    bool scalar = reply && reply->type != REDIS_REPLY_ARRAY && reply->type != REDIS_REPLY_ERROR;
    if (status != SL_OK || !scalar) { /* failed, refused, or nothing a WAIT could keep */
        acked_deliver(a, reply, status);
    } else {
        a->stash = (redisReply){.type = reply->type, .integer = reply->integer};
        if (reply->str && (a->stash.str = malloc(reply->len + 1))) {
            memcpy(a->stash.str, reply->str, reply->len + 1);
            a->stash.len = reply->len;
        }
        a->wrote = true;
        acked_maybe_deliver(a);
    }
    acked_release(a);
}

static void on_acked_wait(void *ud, const redisReply *reply, int status)
{
    acked_wait *w = ud;
    sl_acked *a = w->a;
    if (w->send == a->sends) {
        a->waited = true;
        a->held = status == SL_OK && reply && reply->type == REDIS_REPLY_INTEGER &&
                  reply->integer >= a->acks;
        acked_maybe_deliver(a);
    }
    free(w);
    acked_release(a);
}

void sl_acked_send_wait(sl_acked *a, sl_redis *to)
{
    a->sends++;
    a->waited = false;
    char n[16], ms[16];
    snprintf(n, sizeof n, "%d", a->acks);
    snprintf(ms, sizeof ms, "%d", a->wait_ms);
    const char *argv[] = {"WAIT", n, ms};
    acked_wait *w = malloc(sizeof(*w));
    if (w) {
        *w = (acked_wait){a, a->sends};
        a->refs++;
        if (command(to, 2 * a->wait_ms, on_acked_wait, w, 3, argv, NULL) == SL_OK)
            return;
        a->refs--;
        free(w);
    }
    a->waited = true; /* no WAIT: the write cannot be acknowledged */
    a->held = false;
}

/* The write through a (one Redis: pipelined here; a cluster: by the runtime). */
static int command_acked(sl_redis *r, sl_acked *a, int argc, const char **argv,
                         const size_t *argvlen)
{
    if (r && r->cluster)
        return sl_cluster_cmd_acked(r->cluster, a, r->timeout_ms, argc, argv, argvlen);
    int rc = command(r, r ? r->timeout_ms : 0, sl_acked_on_write, a, argc, argv, argvlen);
    if (rc == SL_OK)
        sl_acked_send_wait(a, r);
    return rc;
}

/* ---- scripts: EVALSHA, falling back to EVAL on NOSCRIPT ------------------------- */

/* One allocation: the record, the argument table and the argument bytes
 * (kept for the EVAL after a NOSCRIPT). */
typedef struct eval_call {
    sl_redis *r;
    sl_redis_cb cb;
    void *ud;
    int acks, wait_ms;  /* acks > 0: a write acknowledged by replicas */
    const char *script; /* static text: sent only after NOSCRIPT */
    int argc;
    const char **argv;
    size_t *argvlen;
} eval_call;

/* Sends ec's command, through a WAIT when it is an acknowledged write. */
static int eval_send(eval_call *ec, sl_redis_cb cb)
{
    if (ec->acks <= 0)
        return sl_redis_cmd(ec->r, cb, ec, ec->argc, ec->argv, ec->argvlen);
    sl_acked *a = acked_new(ec->acks, ec->wait_ms, cb, ec);
    if (!a)
        return SL_ENOMEM;
    int rc = command_acked(ec->r, a, ec->argc, ec->argv, ec->argvlen);
    if (rc != SL_OK)
        acked_release(a);
    return rc;
}

static void on_eval_plain(void *ud, const redisReply *reply, int status)
{
    eval_call *ec = ud;
    if (ec->cb)
        ec->cb(ec->ud, reply, status);
    free(ec);
}

static void on_evalsha(void *ud, const redisReply *reply, int status)
{
    eval_call *ec = ud;
    if (status == SL_OK && reply && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* argv[0] is "EVALSHA", argv[1] the sha: resend as EVAL with the text. */
        ec->argv[0] = "EVAL";
        ec->argvlen[0] = 4;
        ec->argv[1] = ec->script;
        ec->argvlen[1] = strlen(ec->script);
        if (eval_send(ec, on_eval_plain) == SL_OK)
            return;
        if (ec->cb)
            ec->cb(ec->ud, NULL, SL_EIO);
        free(ec);
        return;
    }
    if (ec->cb)
        ec->cb(ec->ud, reply, status);
    free(ec);
}

/* SHA1 of the script, computed once per script text (scripts are few). */
static void sha1_hex(const char *s, size_t n, char out[41]);

/* The SHA1 of a script, computed once per script: the scripts are static
 * texts, few, and known by their address (an unknown one past the table is
 * hashed each time, which is only slower). */
static const char *script_sha(const char *script)
{
    static struct {
        const char *script;
        char sha[41];
    } known[32];
    static char spare[41];
    for (size_t i = 0; i < SL_ARRAY_LEN(known); i++) {
        if (known[i].script == script)
            return known[i].sha;
        if (!known[i].script) {
            sha1_hex(script, strlen(script), known[i].sha);
            known[i].script = script;
            return known[i].sha;
        }
    }
    sha1_hex(script, strlen(script), spare);
    return spare;
}

int sl_redis_eval(sl_redis *r, const char *script, int numkeys, int argc, const char **argv,
                  const size_t *argvlen, sl_redis_cb cb, void *ud)
{
    return sl_redis_eval_acked(r, script, numkeys, argc, argv, argvlen, 0, 0, cb, ud);
}

static eval_call *eval_call_new(const char *sha, int numkeys, int argc, const char **argv,
                                const size_t *argvlen)
{
    char nk[16];
    snprintf(nk, sizeof nk, "%d", numkeys);
    const char *head[] = {"EVALSHA", sha, nk};
    int total = argc + 3;
    size_t bytes = 0;
    for (int i = 0; i < total; i++)
        bytes += (i < 3 ? strlen(head[i]) : argvlen ? argvlen[i - 3] : strlen(argv[i - 3])) + 1;
    size_t table = (size_t)total * (sizeof(char *) + sizeof(size_t));
    eval_call *ec = malloc(sizeof(*ec) + table + bytes);
    if (!ec)
        return NULL;
    memset(ec, 0, sizeof(*ec));
    ec->argc = total;
    ec->argvlen = (size_t *)(ec + 1);
    ec->argv = (const char **)(ec->argvlen + total);
    char *p = (char *)(ec->argv + total);
    for (int i = 0; i < total; i++) {
        const char *src = i < 3 ? head[i] : argv[i - 3];
        size_t len = i < 3 ? strlen(src) : argvlen ? argvlen[i - 3] : strlen(src);
        memcpy(p, src, len);
        p[len] = '\0';
        ec->argv[i] = p;
        ec->argvlen[i] = len;
        p += len + 1;
    }
    return ec;
}

int sl_redis_eval_acked(sl_redis *r, const char *script, int numkeys, int argc, const char **argv,
                        const size_t *argvlen, int acks, int wait_ms, sl_redis_cb cb, void *ud)
{
    if (sl_redis_get_state(r) != SL_REDIS_UP)
        return SL_EAGAIN;
    eval_call *ec = eval_call_new(script_sha(script), numkeys, argc, argv, argvlen);
    if (!ec)
        return SL_ENOMEM;
    ec->r = r;
    ec->cb = cb;
    ec->ud = ud;
    ec->acks = acks;
    ec->wait_ms = wait_ms;
    ec->script = script;
    int rc = eval_send(ec, on_evalsha);
    if (rc != SL_OK)
        free(ec);
    return rc;
}

/* A compact SHA-1 (FIPS 180-1), only for script ids. */
static uint32_t rol(uint32_t v, int n)
{
    return (v << n) | (v >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)
            f = (b & c) | (~b & d), k = 0x5A827999;
        else if (i < 40)
            f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else
            f = b ^ c ^ d, k = 0xCA62C1D6;
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1_hex(const char *s, size_t n, char out[41])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    const unsigned char *p = (const unsigned char *)s;
    size_t full = n / 64 * 64;
    for (size_t i = 0; i < full; i += 64)
        sha1_block(h, p + i);
    unsigned char tail[128] = {0};
    size_t rem = n - full;
    memcpy(tail, p + full, rem);
    tail[rem] = 0x80;
    size_t tl = rem + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++)
        tail[tl - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha1_block(h, tail);
    if (tl == 128)
        sha1_block(h, tail + 64);
    for (int i = 0; i < 5; i++)
        snprintf(out + 8 * i, 9, "%08x", h[i]);
}
