/* redis.c — hiredis async with timeouts, reconnects and fail-fast; see redis.h. */
#include "sluice/redis.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>

#include "sluice/log.h"

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
};

typedef struct pending_cmd {
    sl_redis *r;
    sl_redis_cb cb;
    void *ud;
    struct event *timer;
    bool answered;     /* the user callback ran */
    bool hiredis_done; /* hiredis will not call us again */
    bool fail_now;     /* deferred SL_EIO */
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

static void on_reply(redisAsyncContext *c, void *reply, void *priv)
{
    SL_UNUSED(c);
    pending_cmd *pc = priv;
    sl_redis *r = pc->r;
    r->pending--;
    pc->hiredis_done = true;
    if (!pc->answered) {
        pc->answered = true;
        evtimer_del(pc->timer);
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
    if (pc->cb)
        pc->cb(pc->ud, NULL, SL_ETIMEDOUT);
    bool hung = ++r->consecutive_timeouts >= HUNG_AFTER_TIMEOUTS;
    maybe_free_cmd(pc); /* frees only if hiredis is done with it too */
    if (hung)
        drop_connection(r, "not answering (timeouts)");
}

int sl_redis_cmd(sl_redis *r, sl_redis_cb cb, void *ud, int argc, const char **argv,
                 const size_t *argvlen)
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
    if (redisAsyncCommandArgv(r->ctx, on_reply, pc, argc, argv, argvlen) != REDIS_OK) {
        /* The callback will never run: answer SL_EIO from the loop instead. */
        pc->hiredis_done = true;
        pc->fail_now = true;
        event_active(pc->timer, 0, 0);
        return SL_OK;
    }
    r->pending++;
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
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
    set_state(r, SL_REDIS_UP, NULL);
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
    r->reconnects++;
    connect_now(r);
}

static void connect_now(sl_redis *r)
{
    redisAsyncContext *c = redisAsyncConnect(r->host, r->port);
    if (!c || c->err) {
        set_state(r, SL_REDIS_DOWN, c ? c->errstr : "out of memory");
        if (c)
            redisAsyncFree(c);
        schedule_reconnect(r);
        return;
    }
    c->data = r;
    redisLibeventAttach(c, r->base);
    redisAsyncSetConnectCallback(c, on_connect);
    redisAsyncSetDisconnectCallback(c, on_disconnect);
    r->ctx = c;
    set_state(r, SL_REDIS_CONNECTING, NULL);
    struct timeval tv = {CONNECT_TIMEOUT_MS / 1000, (CONNECT_TIMEOUT_MS % 1000) * 1000};
    evtimer_add(r->reconnect, &tv);
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

void sl_redis_free(sl_redis *r)
{
    if (!r)
        return;
    r->freeing = true;
    if (r->ctx) {
        redisAsyncContext *c = r->ctx;
        r->ctx = NULL;
        c->onDisconnect = NULL;
        redisAsyncFree(c);
    }
    event_free(r->reconnect);
    free(r->password);
    free(r);
}

sl_redis_state sl_redis_get_state(const sl_redis *r)
{
    return r ? r->state : SL_REDIS_DOWN;
}
const char *sl_redis_describe(const sl_redis *r)
{
    return r ? r->desc : "embedded";
}
uint64_t sl_redis_timeouts(const sl_redis *r)
{
    return r ? r->timeouts : 0;
}
uint64_t sl_redis_reconnects(const sl_redis *r)
{
    return r ? r->reconnects : 0;
}

/* ---- scripts: EVALSHA, falling back to EVAL on NOSCRIPT ------------------------- */

typedef struct eval_call {
    sl_redis *r;
    sl_redis_cb cb;
    void *ud;
    int argc;
    char **argv;
    size_t *argvlen;
} eval_call;

static void eval_call_free(eval_call *ec)
{
    for (int i = 0; i < ec->argc; i++)
        free(ec->argv[i]);
    free(ec->argv);
    free(ec->argvlen);
    free(ec);
}

static void on_eval_plain(void *ud, const redisReply *reply, int status)
{
    eval_call *ec = ud;
    if (ec->cb)
        ec->cb(ec->ud, reply, status);
    eval_call_free(ec);
}

static void on_evalsha(void *ud, const redisReply *reply, int status)
{
    eval_call *ec = ud;
    if (status == SL_OK && reply && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* argv[0] is "EVALSHA", argv[1] the sha: resend as EVAL with the text. */
        free(ec->argv[0]);
        ec->argv[0] = strdup("EVAL");
        ec->argvlen[0] = 4;
        char *script = ec->argv[ec->argc]; /* the text rides after the args */
        free(ec->argv[1]);
        ec->argv[1] = script;
        ec->argvlen[1] = strlen(script);
        ec->argv[ec->argc] = NULL;
        if (sl_redis_cmd(ec->r, on_eval_plain, ec, ec->argc, (const char **)ec->argv,
                         ec->argvlen) == SL_OK)
            return;
        if (ec->cb)
            ec->cb(ec->ud, NULL, SL_EIO);
        eval_call_free(ec);
        return;
    }
    free(ec->argv[ec->argc]);
    if (ec->cb)
        ec->cb(ec->ud, reply, status);
    eval_call_free(ec);
}

/* SHA1 of the script, computed once per script text (scripts are few). */
static void sha1_hex(const char *s, size_t n, char out[41]);

int sl_redis_eval(sl_redis *r, const char *script, int numkeys, int argc, const char **argv,
                  const size_t *argvlen, sl_redis_cb cb, void *ud)
{
    if (!r || r->state != SL_REDIS_UP)
        return SL_EAGAIN;
    eval_call *ec = calloc(1, sizeof(*ec));
    int total = argc + 3;
    if (!ec || !(ec->argv = calloc((size_t)total + 1, sizeof(char *))) ||
        !(ec->argvlen = calloc((size_t)total, sizeof(size_t)))) {
        if (ec)
            free(ec->argv);
        free(ec);
        return SL_ENOMEM;
    }
    char sha[41], nk[16];
    sha1_hex(script, strlen(script), sha);
    snprintf(nk, sizeof nk, "%d", numkeys);
    ec->r = r;
    ec->cb = cb;
    ec->ud = ud;
    ec->argc = total;
    const char *head[] = {"EVALSHA", sha, nk};
    for (int i = 0; i < total; i++) {
        const char *src = i < 3 ? head[i] : argv[i - 3];
        size_t len = i < 3 ? strlen(src) : (argvlen ? argvlen[i - 3] : strlen(src));
        ec->argv[i] = malloc(len + 1);
        memcpy(ec->argv[i], src, len);
        ec->argv[i][len] = '\0';
        ec->argvlen[i] = len;
    }
    ec->argv[total] = strdup(script);
    int rc = sl_redis_cmd(r, on_evalsha, ec, total, (const char **)ec->argv, ec->argvlen);
    if (rc != SL_OK) {
        free(ec->argv[total]);
        eval_call_free(ec);
    }
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
