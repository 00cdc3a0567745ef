/* h1_client.c — sluice's own HTTP/1.1 client for plain-http upstreams
 * (upstream_transport.h; the contract is upstream.h's, as curl_loop.c keeps it).
 *
 * A call, its connection and the pool:
 *
 *   sl_call_start ─► idle connection of the pool? ─yes─► request written at once
 *        │                                               (sendmsg: head + borrowed body)
 *        └─no─► CONNECTING (non-blocking connect, EV_WRITE) ─► ACTIVE ─► request out
 *   ACTIVE: EV_READ ─► read buffer ─► http_parser (HTTP_RESPONSE) ─► on_header*,
 *           on_status, on_data* (SL_CALL_PAUSE: parser paused, the slice kept,
 *           no reading until sl_call_resume) ─► message complete ─► connection
 *           back to the pool (IDLE) when keep-alive and nothing is left over,
 *           else closed ─► on_done
 *   IDLE:   EV_READ watched: any byte, EOF or error closes it (never handed out
 *           dead); idle longer than IDLE_MS closed by the sweep timer.
 *
 * A reused connection that fails before any byte of the answer (EOF, reset,
 * EPIPE) is retried once on a fresh connection, unless part of a streamed
 * upload was already taken from on_read. Buffers: the request head is built
 * in the call's own buffer (kept for a retry), the body is borrowed; the read
 * buffer is sized to need (recv_buffer or 16 KiB, grown only while a head is
 * incomplete, up to HEAD_CAP). Calls and connections are pooled with their
 * buffers and events: a steady state allocates nothing. Hooks never run
 * inside sl_call_start; a cancel from inside a hook is deferred to the loop. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <http_parser.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "sluice/head.h"
#include "sluice/upstream_transport.h"

enum {
    MAX_POOLS = 64,
    MAX_IDLE_PER_POOL = 256,
    IDLE_MS = 60 * 1000,      /* an idle connection older than this is closed */
    SWEEP_MS = 1000,          /* how often the idle sweep looks */
    HEAD_CAP = 64 * 1024,     /* answer head bytes (1xx heads included) */
    RBUF_DEFAULT = 16 * 1024, /* read buffer when the call names none */
    RBUF_MIN = 1024,
    UPLOAD_PIECE = 16 * 1024, /* one on_read piece, chunk framing included */
    CHUNK_HEAD = 10,          /* room for "%zx\r\n" in front of a piece */
    MAX_FREE_CALLS = 1024,
    MAX_FREE_CONNS = 1024,
    WBUF_KEEP = 4096, /* a pooled call keeps head buffers up to this */
};

typedef enum { K_CONNECTING, K_ACTIVE, K_IDLE } conn_state;

typedef struct h1_conn {
    struct event ev; /* the socket's one event, re-assigned when interest changes */
    int fd;
    short watching; /* EV_READ / EV_WRITE now in ev (0: not added) */
    conn_state state;
    sl_h1_pool *pool;
    sl_h1_call *call;            /* the call on it (NULL when idle) */
    struct h1_conn *prev, *next; /* the pool's idle list (next: free list too) */
    uint64_t idle_since;         /* ms */
    unsigned served;             /* answers completed on it: a reused one may be stale */
} h1_conn;

struct sl_h1_pool {
    char host[64]; /* the literal as written (an IPv6 one without brackets) */
    unsigned port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char hosthdr[96]; /* "Host: ...\r\n" */
    size_t hosthdr_len;
    h1_conn *idle, *idle_tail; /* most recently used first */
    int n_idle;
};

struct sl_h1_call {
    sl_transport transport; /* SL_TRANSPORT_H1: first, read by call.c */
    const sl_call_hooks *hooks;
    void *ud;
    sl_h1_pool *pool;
    h1_conn *conn;
    struct event timer; /* the nearest deadline */
    struct event later; /* work deferred to the loop: a failure, a cancel, a resume */
    http_parser hp;
    struct sl_h1_call *next; /* free list / live list */
    struct sl_h1_call *prev;
    /* the request */
    char *wbuf; /* the head (kept until the answer starts: a retry sends it again) */
    size_t wcap, wlen;
    size_t woff;      /* bytes of head + body written */
    const char *body; /* borrowed */
    size_t body_len;
    struct curl_slist *headers; /* owned */
    char *ubuf;                 /* a streamed upload's piece, framed */
    size_t uoff, ulen;
    int64_t upload_left; /* a known length's bytes not yet taken; -1: chunked */
    uint64_t up_taken;   /* bytes taken from on_read (then no retry) */
    /* the answer */
    char *rbuf;
    size_t rcap, rlen, rpos;   /* rpos: the next byte for the parser */
    size_t rwant;              /* the call's read buffer size */
    size_t pend_off, pend_len; /* a body slice on_data has not taken yet */
    size_t field_off, field_len, value_off, value_len;
    uint64_t plain_left; /* a plain head's body bytes still to come */
    int status;
    uint64_t dl_connect, dl_phase, dl_total, timer_at; /* deadlines, ms (0: none) */
    int connect_ms, first_byte_ms, idle_ms;
    int deferred_rc;
    const char *deferred_detail;
    bool upload, upload_done, chunked, sent;
    bool head_req, got_byte, got_head, in_value, pending, msg_done, keep_alive;
    bool plain;      /* the head was plain (head.h): no http_parser for this answer */
    bool plain_ka;   /* and says the connection stays open */
    bool parser_fed; /* http_parser has seen bytes of this answer: it reads it all */
    bool paused, send_paused, cancelled, finished, retried, counted, in_start;
    char retry_after[64];
    char content_type[96];
    char errbuf[160];
};

static struct {
    struct event_base *base;
    struct event sweep;
    bool sweep_on;
    bool ready;
    sl_h1_pool *pools[MAX_POOLS];
    int n_pools;
    int n_idle; /* over all pools */
    sl_h1_call *free_calls;
    int n_free_calls;
    h1_conn *free_conns;
    int n_free_conns;
    sl_h1_call *live; /* every call started and not yet freed */
    size_t inflight;
    uint64_t calls_total;
    uint64_t connects_total;
    int in_hooks; /* >0 while a hook may be on the stack: cancel defers */
} h1;

static http_parser_settings settings;

static void on_conn_event(evutil_socket_t fd, short what, void *arg);
static bool pump_write(sl_h1_call *c);
static bool start_connect(sl_h1_call *c);
static void fail_later(sl_h1_call *c, int rc, const char *detail);

/* Errors that are this process's or this host's, not the provider's. */
static bool local_errno(int e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM || e == EADDRNOTAVAIL;
}

/* ---- connections and the pool ------------------------------------------ */

static void set_interest(h1_conn *k, short what)
{
    if (k->watching == what)
        return;
    if (k->watching)
        event_del(&k->ev);
    k->watching = what;
    if (!what)
        return;
    event_assign(&k->ev, h1.base, k->fd, (short)(what | EV_PERSIST), on_conn_event, k);
    event_add(&k->ev, NULL);
}

static void idle_unlink(h1_conn *k)
{
    sl_h1_pool *p = k->pool;
    if (k->prev)
        k->prev->next = k->next;
    else
        p->idle = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        p->idle_tail = k->prev;
    k->prev = k->next = NULL;
    p->n_idle--;
    h1.n_idle--;
}

static void conn_close(h1_conn *k)
{
    if (k->state == K_IDLE)
        idle_unlink(k);
    if (k->watching)
        event_del(&k->ev);
    k->watching = 0;
    close(k->fd);
    k->fd = -1;
    k->call = NULL;
    if (h1.n_free_conns >= MAX_FREE_CONNS) {
        free(k);
        return;
    }
    k->next = h1.free_conns;
    h1.free_conns = k;
    h1.n_free_conns++;
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    SL_UNUSED(arg);
    uint64_t now = sl_coarse_ms();
    for (int i = 0; i < h1.n_pools; i++) {
        sl_h1_pool *p = h1.pools[i];
        while (p->idle_tail && now - p->idle_tail->idle_since >= IDLE_MS)
            conn_close(p->idle_tail);
    }
    if (!h1.n_idle) {
        h1.sweep_on = false;
        return;
    }
    struct timeval tv = {SWEEP_MS / 1000, 0};
    event_add(&h1.sweep, &tv);
}

/* A connection whose answer was read to its end: back to its pool, or closed. */
static void conn_release(h1_conn *k, bool reusable)
{
    sl_h1_pool *p = k->pool;
    k->call = NULL;
    if (!reusable || p->n_idle >= MAX_IDLE_PER_POOL) {
        conn_close(k);
        return;
    }
    k->served++;
    k->state = K_IDLE;
    k->idle_since = sl_coarse_ms();
    k->prev = NULL;
    k->next = p->idle;
    if (p->idle)
        p->idle->prev = k;
    else
        p->idle_tail = k;
    p->idle = k;
    p->n_idle++;
    h1.n_idle++;
    set_interest(k, EV_READ); /* an EOF or a stray byte while idle closes it */
    if (!h1.sweep_on) {
        struct timeval tv = {SWEEP_MS / 1000, 0};
        event_add(&h1.sweep, &tv);
        h1.sweep_on = true;
    }
}

static h1_conn *idle_take(sl_h1_pool *p)
{
    h1_conn *k = p->idle;
    if (!k)
        return NULL;
    idle_unlink(k);
    k->state = K_ACTIVE;
    return k;
}

static h1_conn *conn_new(int fd, sl_h1_pool *p)
{
    h1_conn *k = h1.free_conns;
    if (k) {
        h1.free_conns = k->next;
        h1.n_free_conns--;
        memset(k, 0, sizeof *k);
    } else if (!(k = calloc(1, sizeof *k))) {
        return NULL;
    }
    k->fd = fd;
    k->pool = p;
    return k;
}

/* ---- timers --------------------------------------------------------------- */

/* The timer fires at the nearest deadline or earlier (deadlines only move
 * later between arming, e.g. the idle one at each body piece: the timer then
 * finds it not due and re-arms, instead of an evtimer_add per piece). */
static void rearm(sl_h1_call *c)
{
    uint64_t next = 0;
    uint64_t d[3] = {c->dl_connect, c->dl_phase, c->dl_total};
    for (int i = 0; i < 3; i++) {
        if (d[i] && (!next || d[i] < next))
            next = d[i];
    }
    if (!next || (c->timer_at && c->timer_at <= next))
        return;
    uint64_t now = sl_coarse_ms();
    uint64_t ms = next > now ? next - now : 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(&c->timer, &tv);
    c->timer_at = next;
}

static void set_phase(sl_h1_call *c, int ms)
{
    c->dl_phase = ms > 0 ? sl_coarse_ms() + (uint64_t)ms : 0;
    rearm(c);
}

/* ---- the end of a call ------------------------------------------------------ */

static void call_put(sl_h1_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        h1.live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    sl_header_list_free(c->headers);
    c->headers = NULL;
    if (c->rcap > RBUF_DEFAULT) {
        free(c->rbuf);
        c->rbuf = NULL;
        c->rcap = 0;
    }
    if (c->wcap > WBUF_KEEP) {
        free(c->wbuf);
        c->wbuf = NULL;
        c->wcap = 0;
    }
    if (h1.n_free_calls >= MAX_FREE_CALLS) {
        free(c->rbuf);
        free(c->wbuf);
        free(c->ubuf);
        free(c);
        return;
    }
    c->next = h1.free_calls;
    h1.free_calls = c;
    h1.n_free_calls++;
}

/* Stops the call's timers, closes a connection not read to a clean end and
 * leaves the in-flight count: what both ends of a call (finish, destroy) do. */
static void detach(sl_h1_call *c)
{
    evtimer_del(&c->timer);
    event_del(&c->later);
    if (c->conn)
        conn_close(c->conn);
    c->conn = NULL;
    if (c->counted) {
        c->counted = false;
        h1.inflight--;
    }
}

/* Frees the call without hooks; an unfinished answer's connection is closed. */
static void destroy(sl_h1_call *c)
{
    detach(c);
    call_put(c);
}

/* on_done exactly once (unless cancelled), from the loop; the connection, if
 * still attached, was not read to a clean end: closed. */
static void finish(sl_h1_call *c, int rc, const char *detail)
{
    if (c->finished)
        return;
    if (c->in_start) { /* never on_done inside sl_call_start */
        fail_later(c, rc, detail);
        return;
    }
    c->finished = true;
    detach(c);
    if (!c->cancelled)
        c->hooks->on_done(c->ud, (sl_call *)(void *)c, rc, detail);
    call_put(c);
}

/* A failure found where on_done must not run (inside sl_call_start or a
 * hook): reported from the loop. */
static void fail_later(sl_h1_call *c, int rc, const char *detail)
{
    if (c->deferred_rc)
        return;
    c->deferred_rc = rc;
    c->deferred_detail = detail;
    event_active(&c->later, 0, 0);
}

static void fail_errno(sl_h1_call *c, const char *what, int e)
{
    snprintf(c->errbuf, sizeof c->errbuf, "%s: %s", what, strerror(e));
    finish(c, local_errno(e) ? SL_ENOMEM : SL_EIO, c->errbuf);
}

static void on_call_timer(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    sl_h1_call *c = arg;
    c->timer_at = 0;
    if (c->cancelled)
        return;
    uint64_t now = sl_coarse_ms();
    if (c->dl_connect && now >= c->dl_connect)
        finish(c, SL_ETIMEDOUT, "upstream connect timeout");
    else if (c->dl_phase && now >= c->dl_phase)
        finish(c, SL_ETIMEDOUT,
               c->got_head ? "upstream stream idle timeout" : "upstream first-byte timeout");
    else if (c->dl_total && now >= c->dl_total)
        finish(c, SL_ETIMEDOUT, "upstream total timeout");
    else
        rearm(c);
}

/* ---- the answer: http_parser callbacks -------------------------------------- */

static void keep_value(char *dst, size_t cap, sl_str v)
{
    size_t n = SL_MIN(v.len, cap - 1);
    memcpy(dst, v.p, n);
    dst[n] = '\0';
}

/* One header of a final answer: captured, relayed. -1: cancelled from the hook. */
static int relay_header(sl_h1_call *c, sl_str name, sl_str value)
{
    if (name.len == 11 && strncasecmp(name.p, "retry-after", 11) == 0)
        keep_value(c->retry_after, sizeof c->retry_after, value);
    else if (name.len == 12 && strncasecmp(name.p, "content-type", 12) == 0)
        keep_value(c->content_type, sizeof c->content_type, value);
    if (!c->hooks->on_header)
        return 0;
    h1.in_hooks++;
    c->hooks->on_header(c->ud, (sl_call *)(void *)c, name, value);
    h1.in_hooks--;
    return c->cancelled ? -1 : 0;
}

/* One header line from http_parser, complete: trimmed, then relayed. */
static int emit_header(sl_h1_call *c)
{
    c->in_value = false;
    sl_str name = {c->rbuf + c->field_off, c->field_len};
    const char *v = c->rbuf + c->value_off, *end = v + c->value_len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    c->field_len = 0;
    if (c->hp.status_code < 200 || !name.len)
        return 0;
    return relay_header(c, name, (sl_str){v, (size_t)(end - v)});
}

/* The final head is in: the status goes to the hooks. -1: cancelled. */
static int head_done(sl_h1_call *c, int status)
{
    c->status = status;
    c->got_head = true;
    set_phase(c, c->idle_ms);
    if (c->hooks->on_status) {
        h1.in_hooks++;
        c->hooks->on_status(c->ud, (sl_call *)(void *)c, c->status);
        h1.in_hooks--;
        if (c->cancelled)
            return -1;
    }
    return 0;
}

/* Header callbacks after the final head are a chunked body's trailers: not
 * relayed (their bytes may already have moved in the read buffer). */
static int on_header_field(http_parser *hp, const char *at, size_t n)
{
    sl_h1_call *c = hp->data;
    if (c->got_head)
        return 0;
    if (c->in_value && emit_header(c) != 0)
        return -1;
    if (!c->field_len)
        c->field_off = (size_t)(at - c->rbuf);
    c->field_len += n;
    return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t n)
{
    sl_h1_call *c = hp->data;
    if (c->got_head)
        return 0;
    if (!c->in_value) {
        c->in_value = true;
        c->value_off = (size_t)(at - c->rbuf);
        c->value_len = 0;
    }
    c->value_len += n;
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    sl_h1_call *c = hp->data;
    if (c->in_value && emit_header(c) != 0)
        return -1;
    if (hp->status_code < 200)
        return 0; /* 1xx: no body; the final answer follows */
    if (head_done(c, hp->status_code) != 0)
        return -1;
    return c->head_req ? 1 : 0; /* 1: HEAD, no body whatever the head says */
}

/* A slice of the body (http_parser has decoded any chunking). SL_CALL_PAUSE
 * keeps it (the parser counts it as read: it is offered again on resume). */
static int deliver(sl_h1_call *c, const char *at, size_t n)
{
    h1.in_hooks++;
    int rc = c->hooks->on_data(c->ud, (sl_call *)(void *)c, at, n);
    h1.in_hooks--;
    if (c->cancelled)
        return -1;
    if (rc == SL_CALL_PAUSE) {
        c->pending = true;
        c->pend_off = (size_t)(at - c->rbuf);
        c->pend_len = n;
        c->paused = true;
        c->dl_phase = 0; /* a slow reader's time is not the provider's silence */
        return SL_CALL_PAUSE;
    }
    if (rc != 0) {
        snprintf(c->errbuf, sizeof c->errbuf, "the consumer stopped the answer");
        return -1;
    }
    if (c->idle_ms)
        c->dl_phase = sl_coarse_ms() + (uint64_t)c->idle_ms;
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t n)
{
    sl_h1_call *c = hp->data;
    int rc = deliver(c, at, n);
    if (rc == SL_CALL_PAUSE) {
        http_parser_pause(hp, 1);
        return 0;
    }
    return rc;
}

static int on_message_complete(http_parser *hp)
{
    sl_h1_call *c = hp->data;
    if (hp->status_code < 200)
        return 0; /* an interim answer */
    c->msg_done = true;
    c->keep_alive = http_should_keep_alive(hp);
    http_parser_pause(hp, 1); /* anything behind it is not ours */
    return 0;
}

/* ---- the answer: reading ------------------------------------------------- */

/* The answer came to its end: the connection goes back to the pool when
 * nothing else is on it, then on_done. */
static void complete(sl_h1_call *c)
{
    h1_conn *k = c->conn;
    c->conn = NULL;
    bool clean = c->keep_alive && c->sent && c->rpos == c->rlen && !c->cancelled;
    if (clean)
        conn_release(k, true);
    else
        conn_close(k);
    finish(c, SL_OK, NULL);
}

enum { PLAIN_FIELDS = 32 };

/* The answer's whole head in the first bytes, and plain (head.h: a final
 * status, token names, printable values, one Content-Length, no
 * Transfer-Encoding or Upgrade): read without http_parser — its headers
 * relayed as the callbacks would relay them, its body counted off its
 * Content-Length. Saves http_parser's byte-by-byte walk of the head (~2.5k
 * instructions a call). 1: taken; 0: http_parser reads this answer, from its
 * first byte (not plain, a 204 / 304 or a HEAD's, or the head not whole yet);
 * -1: cancelled from a hook. */
static int take_plain_head(sl_h1_call *c)
{
    const char *p = c->rbuf + c->rpos;
    const char *blank = c->head_req ? NULL : memmem(p, c->rlen - c->rpos, "\r\n\r\n", 4);
    sl_head h;
    sl_head_field f[PLAIN_FIELDS];
    size_t n = blank ? (size_t)(blank - p) + 4 : 0;
    if (!blank || !sl_head_parse_answer(p, n, &h, f, PLAIN_FIELDS) ||
        h.content_length == ULLONG_MAX || h.status == 204 || h.status == 304)
        return 0;
    c->plain = true;
    c->plain_left = h.content_length;
    c->plain_ka = h.http_minor == 1 ? !h.conn_close : h.conn_keep_alive;
    c->rpos += n;
    for (unsigned i = 0; i < h.n_fields; i++) {
        sl_str name = {p + f[i].no, f[i].nl}, value = {p + f[i].vo, f[i].vl};
        if (relay_header(c, name, value) != 0)
            return -1;
    }
    return head_done(c, (int)h.status) != 0 ? -1 : 1;
}

/* A plain head's body: on_data gets what arrived, up to its Content-Length.
 * false: the call ended (or was cancelled). */
static bool take_plain_body(sl_h1_call *c)
{
    while (c->plain_left && c->rpos < c->rlen && !c->paused) {
        size_t n = (size_t)SL_MIN((uint64_t)(c->rlen - c->rpos), c->plain_left);
        const char *at = c->rbuf + c->rpos;
        c->rpos += n; /* counted as read when paused too: offered again on resume */
        c->plain_left -= n;
        int rc = deliver(c, at, n);
        if (c->cancelled)
            return false;
        if (rc == SL_CALL_PAUSE)
            return true;
        if (rc != 0) {
            finish(c, SL_EIO, c->errbuf);
            return false;
        }
    }
    if (c->plain_left || c->paused)
        return true;
    c->msg_done = true;
    c->keep_alive = c->plain_ka;
    complete(c);
    return false;
}

/* Feeds the buffered bytes to the parser. false: the call ended (or was
 * cancelled from a hook: the loop frees it). */
static bool parse_buffered(sl_h1_call *c)
{
    if (!c->plain && !c->parser_fed && c->rpos < c->rlen) {
        int taken = take_plain_head(c);
        if (taken < 0)
            return false;
        c->parser_fed = taken == 0;
    }
    if (c->plain)
        return take_plain_body(c);
    while (c->rpos < c->rlen && !c->paused && !c->msg_done) {
        size_t n = http_parser_execute(&c->hp, &settings, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rpos += n;
        if (c->cancelled)
            return false;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->hp);
        if (e == HPE_PAUSED && (c->paused || c->msg_done))
            break;
        if (e != HPE_OK) {
            if (e != HPE_CB_body)
                snprintf(c->errbuf, sizeof c->errbuf, "upstream answer malformed: %s",
                         http_errno_description(e));
            finish(c, SL_EIO, c->errbuf);
            return false;
        }
        if (c->hp.upgrade) {
            finish(c, SL_EIO, "upstream switched protocols");
            return false;
        }
    }
    if (c->msg_done) {
        complete(c);
        return false;
    }
    if (!c->got_head && c->rlen >= HEAD_CAP) {
        finish(c, SL_EIO, "upstream answer head too large");
        return false;
    }
    return true;
}

/* Room to read into: parsed bytes dropped from the front (never while the
 * head is incomplete or a paused slice waits), grown only for a head. */
static bool make_room(sl_h1_call *c)
{
    if (c->got_head && !c->pending && c->rpos == c->rlen) {
        c->rpos = c->rlen = 0;
    } else if (c->got_head && !c->pending && c->rpos > 0 && c->rlen == c->rcap) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    if (c->rlen < c->rcap)
        return true;
    size_t cap = c->rcap * 2;
    char *nb = realloc(c->rbuf, cap);
    if (!nb)
        return false;
    c->rbuf = nb;
    c->rcap = cap;
    return true;
}

/* A fresh connection for a request a stale pooled one failed: nothing of the
 * answer arrived, nothing irreversible was taken. */
static bool can_retry(const sl_h1_call *c, const h1_conn *k)
{
    return k->served > 0 && !c->retried && !c->got_byte && c->up_taken == 0;
}

static bool retry(sl_h1_call *c)
{
    conn_close(c->conn);
    c->conn = NULL;
    c->retried = true;
    c->woff = 0;
    c->rlen = c->rpos = 0;
    c->sent = false;
    c->plain = c->parser_fed = false;
    http_parser_init(&c->hp, HTTP_RESPONSE);
    c->hp.data = c;
    return start_connect(c);
}

static void on_eof(sl_h1_call *c)
{
    if (can_retry(c, c->conn)) {
        retry(c);
        return;
    }
    if (!c->plain)
        http_parser_execute(&c->hp, &settings, NULL, 0); /* a close-delimited body ends here */
    if (c->cancelled)
        return;
    if (c->msg_done) {
        c->keep_alive = false;
        complete(c);
        return;
    }
    finish(c, SL_EIO,
           c->got_byte ? "upstream closed the connection before the answer was complete"
                       : "upstream closed the connection without an answer");
}

/* What the socket should be watched for now. */
static void update_interest(sl_h1_call *c)
{
    if (!c->conn || c->conn->state != K_ACTIVE)
        return;
    short what = (short)((c->paused || c->pending ? 0 : EV_READ) |
                         (!c->sent && !c->send_paused ? EV_WRITE : 0));
    set_interest(c->conn, what);
}

static void on_readable(sl_h1_call *c)
{
    if (!make_room(c)) {
        finish(c, SL_ENOMEM, "out of memory for the upstream answer");
        return;
    }
    ssize_t n = recv(c->conn->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
    if (n > 0) {
        c->rlen += (size_t)n;
        c->got_byte = true;
        if (parse_buffered(c))
            update_interest(c); /* paused by on_data: unwatched until resume (level-triggered:
                                   bytes left in the socket would wake the loop forever) */
        return;
    }
    if (n == 0) {
        on_eof(c);
        return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return;
    int e = errno;
    if (can_retry(c, c->conn)) {
        retry(c);
        return;
    }
    fail_errno(c, "upstream receive failure", e);
}

/* Bytes on_data declined, offered again; then the parser goes on. false:
 * the call ended, or paused again. */
static bool drain_pending(sl_h1_call *c)
{
    if (c->pending) {
        c->pending = false;
        c->paused = false;
        int rc = deliver(c, c->rbuf + c->pend_off, c->pend_len);
        if (rc == SL_CALL_PAUSE || c->cancelled)
            return false;
        if (rc != 0) {
            finish(c, SL_EIO, c->errbuf);
            return false;
        }
    }
    c->paused = false;
    http_parser_pause(&c->hp, 0);
    return parse_buffered(c);
}

/* ---- the request: writing ------------------------------------------------ */

/* The next piece of a streamed upload from on_read, framed when chunked.
 * false: the call ended or paused (send_paused). */
static bool fill_upload(sl_h1_call *c)
{
    if (!c->ubuf && !(c->ubuf = malloc(UPLOAD_PIECE))) {
        finish(c, SL_ENOMEM, "out of memory for the upload");
        return false;
    }
    size_t cap = UPLOAD_PIECE - CHUNK_HEAD - 2;
    if (c->upload_left >= 0 && (uint64_t)c->upload_left < cap)
        cap = (size_t)c->upload_left;
    size_t got = 0;
    int rc = 0;
    if (cap > 0) {
        h1.in_hooks++;
        rc = c->hooks->on_read(c->ud, (sl_call *)(void *)c, c->ubuf + CHUNK_HEAD, cap, &got);
        h1.in_hooks--;
    }
    if (c->cancelled)
        return false;
    if (rc == SL_CALL_PAUSE) {
        c->send_paused = true;
        c->dl_phase = 0; /* waiting for the client's body is not the provider's silence */
        update_interest(c);
        return false;
    }
    if (rc != 0 || got > cap) {
        finish(c, SL_EIO, "upload aborted");
        return false;
    }
    c->up_taken += got;
    if (c->upload_left > 0 && got == 0) {
        finish(c, SL_EIO, "upload shorter than its length");
        return false;
    }
    if (c->upload_left >= 0) {
        c->upload_left -= (int64_t)got;
        c->uoff = CHUNK_HEAD;
        c->ulen = CHUNK_HEAD + got;
        c->upload_done = c->upload_left == 0;
        return true;
    }
    if (got == 0) { /* the last chunk */
        memcpy(c->ubuf, "0\r\n\r\n", 5);
        c->uoff = 0;
        c->ulen = 5;
        c->upload_done = true;
        return true;
    }
    char hex[24];
    size_t hl = sl_fmt_hex(got, hex);
    c->uoff = CHUNK_HEAD - hl - 2;
    memcpy(c->ubuf + c->uoff, hex, hl);
    memcpy(c->ubuf + CHUNK_HEAD - 2, "\r\n", 2);
    memcpy(c->ubuf + CHUNK_HEAD + got, "\r\n", 2);
    c->ulen = CHUNK_HEAD + got + 2;
    return true;
}

/* One sendmsg of what is due. >0 sent, 0 would block, <0 -errno. */
static ssize_t send_due(sl_h1_call *c)
{
    struct iovec iov[2];
    int n = 0;
    size_t head_len = c->wlen;
    if (c->woff < head_len + c->body_len) {
        if (c->woff < head_len)
            iov[n++] = (struct iovec){c->wbuf + c->woff, head_len - c->woff};
        size_t b = c->woff > head_len ? c->woff - head_len : 0;
        if (c->body_len > b)
            iov[n++] = (struct iovec){(char *)c->body + b, c->body_len - b};
    } else {
        iov[n++] = (struct iovec){c->ubuf + c->uoff, c->ulen - c->uoff};
    }
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t w = sendmsg(c->conn->fd, &m, MSG_NOSIGNAL);
    if (w >= 0)
        return w;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
}

static void account_sent(sl_h1_call *c, size_t w)
{
    size_t head_body = c->wlen + c->body_len;
    if (c->woff < head_body) {
        c->woff += w;
        return;
    }
    c->uoff += w;
    if (!c->got_head) /* each piece out restarts the first-byte wait */
        set_phase(c, c->first_byte_ms);
}

/* Writes what is due until done, blocked or paused. false: the call ended. */
static bool pump_write(sl_h1_call *c)
{
    while (!c->sent) {
        bool fixed_due = c->woff < c->wlen + c->body_len;
        if (!fixed_due && c->upload && c->uoff == c->ulen) {
            if (c->upload_done) {
                c->sent = true;
                break;
            }
            if (c->send_paused)
                return true;
            if (c->in_start) { /* no hook inside sl_call_start: on_read runs from the loop */
                set_interest(c->conn, EV_READ | EV_WRITE);
                return true;
            }
            if (!fill_upload(c))
                return !c->finished && !c->cancelled;
            continue;
        }
        if (!fixed_due && !c->upload) {
            c->sent = true;
            break;
        }
        ssize_t w = send_due(c);
        if (w == 0) {
            update_interest(c);
            return true;
        }
        if (w < 0) {
            if (can_retry(c, c->conn))
                return retry(c);
            fail_errno(c, "upstream send failure", (int)-w);
            return false;
        }
        account_sent(c, (size_t)w);
    }
    if (!c->got_head)
        set_phase(c, c->first_byte_ms);
    update_interest(c);
    return true;
}

/* ---- connecting ------------------------------------------------------------ */

static void connect_failed(sl_h1_call *c, int e)
{
    sl_h1_pool *p = c->pool;
    snprintf(c->errbuf, sizeof c->errbuf, "Failed to connect to %s port %u: %s", p->host, p->port,
             strerror(e));
    fail_later(c, local_errno(e) ? SL_ENOMEM : SL_EIO, c->errbuf);
}

/* A new connection for c (non-blocking). false: failed (reported from the loop). */
static bool start_connect(sl_h1_call *c)
{
    sl_h1_pool *p = c->pool;
    int fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(c->errbuf, sizeof c->errbuf, "no local socket for the upstream call: %s",
                 strerror(errno));
        fail_later(c, local_errno(errno) ? SL_ENOMEM : SL_EIO, c->errbuf);
        return false;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    h1_conn *k = conn_new(fd, p);
    if (!k) {
        close(fd);
        fail_later(c, SL_ENOMEM, "out of memory for the upstream connection");
        return false;
    }
    k->call = c;
    c->conn = k;
    h1.connects_total++;
    k->state = K_CONNECTING;
    if (connect(fd, (struct sockaddr *)&p->addr, p->addrlen) != 0 && errno != EINPROGRESS) {
        int e = errno;
        connect_failed(c, e);
        return false;
    }
    set_interest(k, EV_WRITE); /* writable: connected, or refused (SO_ERROR) */
    c->dl_connect = c->connect_ms > 0 ? sl_coarse_ms() + (uint64_t)c->connect_ms : 0;
    rearm(c);
    return true;
}

static void on_connected(sl_h1_call *c)
{
    int e = 0;
    socklen_t len = sizeof e;
    if (getsockopt(c->conn->fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
        e = errno;
    if (e) {
        snprintf(c->errbuf, sizeof c->errbuf, "Failed to connect to %s port %u: %s", c->pool->host,
                 c->pool->port, strerror(e));
        finish(c, local_errno(e) ? SL_ENOMEM : SL_EIO, c->errbuf);
        return;
    }
    c->conn->state = K_ACTIVE;
    c->dl_connect = 0;
    pump_write(c);
}

/* ---- events ------------------------------------------------------------------ */

static void on_conn_event(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    sl_loop_worked();
    h1_conn *k = arg;
    sl_h1_call *c = k->call;
    if (k->state == K_IDLE || !c) { /* closed by the upstream, or a byte nobody asked for */
        conn_close(k);
        return;
    }
    if (c->cancelled)
        return; /* cancelled from a hook: freed from the loop */
    if (k->state == K_CONNECTING) {
        on_connected(c);
        return;
    }
    if ((what & EV_WRITE) && !c->sent) {
        if (!pump_write(c) || c->conn != k)
            return;
    }
    if ((what & EV_READ) && !c->paused && !c->pending)
        on_readable(c);
}

/* Deferred work: a failure found where on_done could not run, a cancel from
 * a hook, or a resume (the kept slice, then the parser, then the socket). */
static void on_later(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    sl_h1_call *c = arg;
    if (c->cancelled) {
        destroy(c);
        return;
    }
    if (c->deferred_rc) {
        finish(c, c->deferred_rc, c->deferred_detail);
        return;
    }
    if (c->conn && !c->paused && drain_pending(c))
        update_interest(c);
}

/* ---- routing: which URLs the native client takes ------------------------------ */

/* A path byte that may stand in a request line as it is. */
static bool path_ok(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 0x20 || ch >= 0x7f || ch == '#')
            return false;
    }
    return true;
}

static sl_h1_pool *pool_for(const char *host, size_t hl, unsigned port, bool v6)
{
    for (int i = 0; i < h1.n_pools; i++) {
        sl_h1_pool *p = h1.pools[i];
        if (p->port == port && strlen(p->host) == hl && memcmp(p->host, host, hl) == 0)
            return p;
    }
    if (h1.n_pools >= MAX_POOLS || hl >= sizeof(((sl_h1_pool *)0)->host))
        return NULL;
    sl_h1_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    memcpy(p->host, host, hl);
    p->port = port;
    int ok;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&p->addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        ok = inet_pton(AF_INET6, p->host, &a->sin6_addr);
        p->addrlen = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&p->addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        ok = inet_pton(AF_INET, p->host, &a->sin_addr);
        p->addrlen = sizeof *a;
    }
    if (ok != 1) { /* a host name: curl resolves it */
        free(p);
        return NULL;
    }
    int n = port == 80 ? snprintf(p->hosthdr, sizeof p->hosthdr,
                                  v6 ? "Host: [%s]\r\n" : "Host: %s\r\n", p->host)
                       : snprintf(p->hosthdr, sizeof p->hosthdr,
                                  v6 ? "Host: [%s]:%u\r\n" : "Host: %s:%u\r\n", p->host, port);
    p->hosthdr_len = (size_t)n;
    h1.pools[h1.n_pools++] = p;
    return p;
}

/* "http://" host [":" port] then the path: the host's span, the port, and
 * where the path starts. false: not ours. */
static bool split_url(const char *url, const char **host, size_t *hl, unsigned *port, bool *v6,
                      const char **path)
{
    if (strncasecmp(url, "http://", 7) != 0)
        return false;
    const char *h = url + 7, *e = h;
    *v6 = *h == '[';
    if (*v6) {
        const char *close = strchr(h, ']');
        if (!close)
            return false;
        *host = h + 1;
        *hl = (size_t)(close - h - 1);
        e = close + 1;
    } else {
        while (*e && *e != ':' && *e != '/' && *e != '?' && *e != '@')
            e++;
        *host = h;
        *hl = (size_t)(e - h);
    }
    *port = 80;
    if (*e == ':') {
        unsigned v = 0;
        const char *d = ++e;
        while (*e >= '0' && *e <= '9' && v <= 65535)
            v = v * 10 + (unsigned)(*e++ - '0');
        if (e == d || v == 0 || v > 65535)
            return false;
        *port = v;
    }
    if (*e && *e != '/' && *e != '?')
        return false; /* user info, or something curl should judge */
    *path = e;
    return *hl > 0;
}

static bool ip_literal(const char *host, size_t hl, bool v6)
{
    char name[INET6_ADDRSTRLEN + 1];
    unsigned char addr[sizeof(struct in6_addr)];
    if (hl >= sizeof name)
        return false;
    memcpy(name, host, hl);
    name[hl] = '\0';
    return inet_pton(v6 ? AF_INET6 : AF_INET, name, addr) == 1;
}

bool sl_h1_takes_url(const char *url)
{
    const char *host, *path;
    size_t hl;
    unsigned port;
    bool v6;
    return url && split_url(url, &host, &hl, &port, &v6, &path) && path_ok(path) &&
           ip_literal(host, hl, v6);
}

sl_h1_pool *sl_h1_route(const sl_call_opts *o)
{
    if (!h1.ready)
        return NULL;
    const char *host, *path;
    size_t hl;
    unsigned port;
    bool v6;
    if (!split_url(o->url, &host, &hl, &port, &v6, &path))
        return NULL;
    if (!path_ok(path) || (o->url_path && !path_ok(o->url_path)))
        return NULL;
    return pool_for(host, hl, port, v6);
}

/* ---- the request head ------------------------------------------------------------ */

static bool head_room(sl_h1_call *c, size_t need)
{
    if (c->wcap >= need)
        return true;
    size_t cap = need < 1024 ? 1024 : need;
    char *nb = realloc(c->wbuf, cap);
    if (!nb)
        return false;
    c->wbuf = nb;
    c->wcap = cap;
    return true;
}

static void put(sl_h1_call *c, const char *p, size_t n)
{
    memcpy(c->wbuf + c->wlen, p, n);
    c->wlen += n;
}

/* A header line as curl reads a list: "Name:" alone removes a header curl
 * would add (nothing to send here), "Name;" sends it empty. */
static void put_line(sl_h1_call *c, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
        n--;
    if (!n || line[n - 1] == ':')
        return;
    if (line[n - 1] == ';' && !memchr(line, ':', n)) {
        put(c, line, n - 1);
        put(c, ":\r\n", 3);
        return;
    }
    put(c, line, n);
    put(c, "\r\n", 2);
}

static const struct curl_slist *call_list(const sl_call_opts *o)
{
    return o->fixed_headers ? o->fixed_headers : o->headers;
}

/* The whole head in c->wbuf: request line, the caller's lines, Host, framing. */
static bool build_head(sl_h1_call *c, const sl_call_opts *o, const char *method, const char *path)
{
    const char *extra[3] = {o->traceparent, o->tracestate, o->extra_header};
    size_t need = strlen(method) + strlen(path) + (o->url_path ? strlen(o->url_path) : 0) + 16 +
                  c->pool->hosthdr_len + 64;
    for (int i = 0; i < 3; i++)
        need += extra[i] ? strlen(extra[i]) + 2 : 0;
    for (const struct curl_slist *l = call_list(o); l; l = l->next)
        need += strlen(l->data) + 3;
    if (!head_room(c, need))
        return false;
    c->wlen = 0;
    put(c, method, strlen(method));
    put(c, " ", 1);
    const char *first = *path ? path : o->url_path ? o->url_path : "";
    if (*first != '/')
        put(c, "/", 1); /* "" or "?q": the root */
    put(c, path, strlen(path));
    if (o->url_path)
        put(c, o->url_path, strlen(o->url_path));
    put(c, " HTTP/1.1\r\n", 11);
    put(c, c->pool->hosthdr, c->pool->hosthdr_len);
    for (int i = 0; i < 3; i++) {
        if (extra[i])
            put_line(c, extra[i]);
    }
    for (const struct curl_slist *l = call_list(o); l; l = l->next)
        put_line(c, l->data);
    if (c->upload && c->upload_left < 0) {
        put(c, "Transfer-Encoding: chunked\r\n", 28);
    } else if (c->upload || o->body) {
        put(c, "Content-Length: ", 16);
        c->wlen += sl_fmt_i64(c->upload ? c->upload_left : (int64_t)o->body_len, c->wbuf + c->wlen);
        put(c, "\r\n", 2);
    }
    put(c, "\r\n", 2);
    return true;
}

/* ---- public ---------------------------------------------------------------------- */

static void on_call_timer(evutil_socket_t fd, short what, void *arg);

/* A call from the free list (its buffers kept) or a new one; all else zero. */
static sl_h1_call *call_get(void)
{
    sl_h1_call *c = h1.free_calls;
    if (c) {
        h1.free_calls = c->next;
        h1.n_free_calls--;
        char *rb = c->rbuf, *wb = c->wbuf, *ub = c->ubuf;
        size_t rcap = c->rcap, wcap = c->wcap;
        memset(c, 0, offsetof(sl_h1_call, retry_after));
        c->retry_after[0] = c->content_type[0] = c->errbuf[0] = '\0';
        c->rbuf = rb;
        c->wbuf = wb;
        c->ubuf = ub;
        c->rcap = rcap;
        c->wcap = wcap;
    } else if (!(c = calloc(1, sizeof *c))) {
        return NULL;
    }
    evtimer_assign(&c->timer, h1.base, on_call_timer, c);
    event_assign(&c->later, h1.base, -1, 0, on_later, c);
    return c;
}

/* The read buffer this call wants: a stream's small one, else 16 KiB. */
static bool size_rbuf(sl_h1_call *c, int recv_buffer)
{
    size_t want = recv_buffer > 0 ? (size_t)recv_buffer : RBUF_DEFAULT;
    if (want < RBUF_MIN)
        want = RBUF_MIN;
    c->rwant = want;
    if (c->rbuf && c->rcap >= want && c->rcap <= 2 * want)
        return true;
    free(c->rbuf);
    c->rbuf = malloc(want);
    c->rcap = c->rbuf ? want : 0;
    return c->rbuf != NULL;
}

static bool setup_call(sl_h1_call *c, sl_h1_pool *p, const sl_call_opts *o)
{
    const char *host, *path;
    size_t hl;
    unsigned port;
    bool v6;
    split_url(o->url, &host, &hl, &port, &v6, &path); /* sl_h1_route took it */
    c->pool = p;
    c->body = o->upload ? NULL : o->body;
    c->body_len = c->body ? o->body_len : 0;
    c->upload = o->upload;
    c->upload_left = o->upload ? o->upload_len : 0;
    c->upload_done = o->upload && o->upload_len == 0;
    const char *method = o->method ? o->method : (o->body || o->upload) ? "POST" : "GET";
    c->head_req = strcmp(method, "HEAD") == 0;
    c->connect_ms = o->connect_ms;
    c->first_byte_ms = o->first_byte_ms;
    c->idle_ms = o->idle_ms;
    http_parser_init(&c->hp, HTTP_RESPONSE);
    c->hp.data = c;
    return size_rbuf(c, o->recv_buffer) && build_head(c, o, method, path);
}

sl_h1_call *sl_h1_start(sl_h1_pool *p, const sl_call_opts *o, const sl_call_hooks *h, void *ud,
                        int *err)
{
    *err = SL_OK;
    sl_h1_call *c = call_get();
    if (!c) {
        sl_header_list_free(o->headers);
        *err = SL_ENOMEM;
        return NULL;
    }
    c->transport = SL_TRANSPORT_H1;
    c->hooks = h;
    c->ud = ud;
    c->headers = o->headers;
    c->next = h1.live;
    if (h1.live)
        h1.live->prev = c;
    h1.live = c;
    if (!setup_call(c, p, o)) {
        call_put(c);
        *err = SL_ENOMEM;
        return NULL;
    }
    c->counted = true;
    h1.inflight++;
    h1.calls_total++;
    uint64_t now = sl_coarse_ms();
    c->dl_total = o->total_ms > 0 ? now + (uint64_t)o->total_ms : 0;
    c->dl_phase = o->first_byte_ms > 0 ? now + (uint64_t)o->first_byte_ms : 0;
    c->in_start = true;
    h1_conn *k = idle_take(p);
    if (k) { /* the request leaves now, no loop turn in between */
        k->call = c;
        c->conn = k;
        pump_write(c);
    } else {
        start_connect(c);
    }
    c->in_start = false;
    rearm(c);
    return c;
}

void sl_h1_cancel(sl_h1_call *c)
{
    if (c->cancelled)
        return;
    c->cancelled = true;
    if (c->finished)
        return;
    if (h1.in_hooks) { /* a hook of some call is on the stack: free from the loop */
        event_active(&c->later, 0, 0);
        return;
    }
    destroy(c);
}

void sl_h1_resume(sl_h1_call *c)
{
    if (!c->paused || c->cancelled || c->finished)
        return;
    c->paused = false;
    set_phase(c, c->idle_ms);
    event_active(&c->later, 0, 0); /* the kept slice is offered from the loop */
}

void sl_h1_resume_upload(sl_h1_call *c)
{
    if (!c->send_paused || c->cancelled || c->finished)
        return;
    c->send_paused = false;
    if (!c->paused)
        set_phase(c, c->got_head ? c->idle_ms : c->first_byte_ms);
    update_interest(c); /* writable: on_read is asked from the loop */
}

int sl_h1_status(const sl_h1_call *c)
{
    return c->status;
}

const char *sl_h1_retry_after(const sl_h1_call *c)
{
    return c->retry_after[0] ? c->retry_after : NULL;
}

const char *sl_h1_content_type(const sl_h1_call *c)
{
    return c->content_type[0] ? c->content_type : NULL;
}

size_t sl_h1_inflight(void)
{
    return h1.inflight;
}

uint64_t sl_h1_calls_total(void)
{
    return h1.calls_total;
}

uint64_t sl_h1_connects_total(void)
{
    return h1.connects_total;
}

int sl_h1_init(struct event_base *base)
{
    h1.base = base;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    evtimer_assign(&h1.sweep, base, on_sweep, NULL);
    h1.ready = true;
    return SL_OK;
}

void sl_h1_shutdown(void)
{
    if (!h1.ready)
        return;
    while (h1.live) { /* calls nobody cancelled: freed without hooks */
        h1.live->cancelled = true;
        destroy(h1.live);
    }
    for (int i = 0; i < h1.n_pools; i++) {
        while (h1.pools[i]->idle)
            conn_close(h1.pools[i]->idle);
        free(h1.pools[i]);
    }
    while (h1.free_conns) {
        h1_conn *k = h1.free_conns;
        h1.free_conns = k->next;
        free(k);
    }
    while (h1.free_calls) {
        sl_h1_call *c = h1.free_calls;
        h1.free_calls = c->next;
        free(c->rbuf);
        free(c->wbuf);
        free(c->ubuf);
        free(c);
    }
    if (h1.sweep_on)
        event_del(&h1.sweep);
    memset(&h1, 0, sizeof h1);
}
