/* conn.c — sluice's own HTTP/1.1 connection layer (see conn.h).
 *
 * One connection, one read buffer, four states:
 *
 *   accept ─► HEAD ──head in──► BODY ──message complete──► ACTIVE ──answer end──┐
 *              ▲  (scan, then http_parser      (http_parser        (the request │
 *              │   over the whole head)         frames the body)    runs)       │
 *              └───────────── keep-alive, next pipelined head ◄─────────────────┘
 *   any refusal, Connection: close, drain ─► LINGER (shut down our side, read
 *   and drop until the client closes or 1 s) ─► freed
 *
 * The read buffer holds the current request from its first byte: the head is
 * scanned line by line as it arrives (NUL, bare CR, bare LF, obs-fold, space
 * before a colon, sizes) and parsed in one http_parser call once complete, so
 * every header is one contiguous slice. The body follows the head in the same
 * buffer; a chunked body is decoded in place (data only ever moves towards
 * the front). While a request runs nothing before its body's end moves: bytes
 * a client pipelines are appended behind it, and the buffer never grows under
 * a running request (it watches for the client's close instead when full).
 * Deadlines: one timer per connection, armed per phase. */
#include "sluice/conn.h"

#include "sluice/trace.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <http_parser.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "sluice/dialects.h"
#include "sluice/head.h"
#include "sluice/log.h"
#include "sluice/pipeline.h"

enum {
    MAX_URI_BYTES = 8192,
    REQLINE_MAX = MAX_URI_BYTES + 64, /* method, spaces and version around the URI */
    MAX_HEADER_COUNT = 100,
    HDR_INLINE = 24, /* header slots in the connection (an SDK sends ~17); more: a heap array */
    LINGER_MS = 1000,
    ACCEPT_PAUSE_MS = 100,
    RBUF_FIRST = 16 * 1024,
    RBUF_FIT = 256,          /* a first read is kept in a buffer of its size, rounded up to this */
    CHUNK_SLACK = 64 * 1024, /* framing bytes a chunked body may add */
    OUT_HIGH = 256 * 1024,   /* pending output above which pipelined heads and a stream wait */
    OUT_LOW = 64 * 1024,     /* ... and below which a waiting stream goes on */
    WBUF_KEEP = 64 * 1024,   /* a drained output buffer larger than this is freed */
    STREAM_KEEP = 64 * 1024, /* read buffer of an incrementally read body */
};

typedef enum { C_HEAD, C_BODY, C_ACTIVE, C_LINGER, C_CLOSED } c_state;

typedef sl_head_field hslice; /* name and value: offsets into rbuf and lengths */

/* Headers the layer or sluice reads, found while parsing (index into hdr, -1 none). */
enum {
    H_TE,
    H_CE,
    H_EXPECT,
    H_AUTH,
    H_API_KEY,
    H_REQID,
    H_CACHE_CONTROL,
    H_TTL,
    H_USER,
    H_AN_VERSION, /* anthropic-version and anthropic-beta: forwarded to anthropic providers */
    H_AN_BETA,
    H_IDEM,       /* Idempotency-Key */
    H_LAST_EVENT, /* Last-Event-ID */
    H_CACHE_OPT,
    H_TRACEPARENT, /* W3C trace context (trace.h), read only when tracing is on */
    H_TRACESTATE,
    H_NFACTS
};

struct sl_conn {
    int fd;
    c_state state;
    bool test, closed_only, broken, in_process, close_after, served_any, kick, dispatched;
    bool keep_alive, head_only, http10, resp_sse, resp_chunked, too_big, headers_done, msg_done;
    bool body_paused; /* a streamed body's reader is full: the socket is not read */
    struct event rev, wev, timer;
    uint64_t deadline; /* monotonic ms of the phase's deadline, 0: none (see arm) */
    uint64_t timer_at; /* ... and when the pending timer fires, 0: not pending */
    bool wev_added;
    sl_conn_out_fn out;
    sl_conn *prev, *next;

    char *rbuf; /* the current request from its first byte, then what follows */
    size_t rcap, rlen;
    size_t rpos;   /* first byte of the current request */
    size_t line;   /* head scan: start of the line not yet complete */
    size_t parsed; /* next byte for http_parser */
    bool have_reqline;
    unsigned hcount;
    size_t hbytes;

    http_parser hp;  /* (a head the fast parser took: only its fields, filled in by hand) */
    bool fast;       /* ... and the body is framed here, by its Content-Length */
    bool head_ready; /* head: parsed already, by head_at_once */
    sl_head head;
    uint64_t body_left;
    uint32_t url_o, url_l;
    bool have_url;
    hslice *hdr; /* hdr_inline, or MAX_HEADER_COUNT slots on the heap for a larger head */
    hslice hdr_inline[HDR_INLINE];
    unsigned n_hdr, hdr_cap;
    int fact[H_NFACTS];
    int cur_fact; /* the fact the header being parsed names */
    int content_lengths, hosts, authorizations, transfer_encodings, traceparents;

    size_t body_start, body_len;
    sl_body_fn body_fn;
    void *body_ud;

    sl_req *req;  /* the request being read or answered */
    sl_req *lent; /* answered, but still referenced when its answer ended (see settle) */
    int resp_status;
    sl_str plain; /* a plain answer's body, zero-copy when it is r->body_out */
    sl_buf pbuf;  /* ... else collected here */
    sl_buf wbuf;  /* output the socket did not take yet */
    size_t wpos;
};

static struct {
    struct event_base *base;
    sl_conn_hooks hooks;
    struct evconnlistener *listener;
    struct event *resume_accept_ev;
    sl_conn *all;
    size_t open;
    bool draining;
    sl_buf head; /* response heads are built here, then written at once */
} conns;

static http_parser_settings settings;

static void process(sl_conn *c);
static void start_linger(sl_conn *c);
static void refuse(sl_conn *c, sl_req *r, int status, const char *code, const char *msg);
static void on_read(evutil_socket_t fd, short what, void *arg);
static void settle(sl_conn *c);

/* ---- small helpers ------------------------------------------------------ */

static const sl_config *conf_now(void)
{
    return conns.hooks.config();
}

static void set_timer(sl_conn *c, uint64_t at, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(&c->timer, &tv);
    c->timer_at = at;
}

/* Deadlines are lazy: the one pending timer fires no later than the deadline,
 * and moving the deadline later — what every request on a kept-alive
 * connection does, phase after phase — costs no event_add (libevent's heap
 * work was ~650 instructions a request); a timer that fires before the
 * deadline re-arms itself for what is left. */
static void arm(sl_conn *c, int ms)
{
    uint64_t at = sl_coarse_ms() + (uint64_t)ms; /* phases last seconds: a tick is nothing */
    c->deadline = at;
    if (!c->timer_at || c->timer_at > at)
        set_timer(c, at, (uint64_t)ms);
}

static void disarm(sl_conn *c)
{
    c->deadline = 0; /* a pending timer finds no deadline and goes */
}

/* p[0..n) equals the lower-case literal lit, ASCII case folded (as
 * strncasecmp in the C locale; inline: it runs for every header name). */
static bool ieq(const char *p, size_t n, const char *lit)
{
    if (strlen(lit) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i] >= 'A' && p[i] <= 'Z' ? (char)(p[i] + 32) : p[i];
        if (ch != lit[i])
            return false;
    }
    return true;
}

static sl_str slice(const sl_conn *c, uint32_t off, uint32_t len)
{
    return (sl_str){c->rbuf + off, len};
}

static sl_str fact(const sl_conn *c, int f)
{
    int i = c->fact[f];
    return i < 0 ? SL_STR_NULL : slice(c, c->hdr[i].vo, c->hdr[i].vl);
}

/* A header's value as an arena string, or NULL when absent. */
static const char *fact_dup(const sl_conn *c, sl_req *r, int f)
{
    sl_str v = fact(c, f);
    return v.p ? sl_arena_strndup(&r->arena, v.p, v.len) : NULL;
}

/* ---- lifetime ----------------------------------------------------------- */

static void conn_free(sl_conn *c)
{
    settle(c);
    if (!c->test) {
        event_del(&c->rev);
        event_del(&c->wev);
        close(c->fd);
    }
    event_del(&c->timer); /* (for real: c goes) */
    if (c->prev)
        c->prev->next = c->next;
    else
        conns.all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->rbuf);
    if (c->hdr != c->hdr_inline)
        free(c->hdr);
    sl_buf_free(&c->wbuf);
    sl_buf_free(&c->pbuf);
    conns.open--;
    free(c);
}

static void hand_buffer_to(sl_conn *c, sl_req *r);

/* A request answered while someone else still held it (the proxy drops its
 * reference right after the answer) may still read r->body in our buffer.
 * Before the buffer is touched again: if it is still held, it takes the
 * buffer with it; usually it is not, and the buffer stays ours. */
static void settle(sl_conn *c)
{
    sl_req *r = c->lent;
    if (!r)
        return;
    c->lent = NULL;
    if (r->refs > 1)
        hand_buffer_to(c, r);
    else
        r->owner = NULL;
    sl_req_release(r);
}

static void release_buffer(sl_req *r)
{
    free(r->owner);
    r->owner = NULL;
}

/* r lives on without its connection (an aborted call still running, or a
 * reference held past the answer): its body stays readable, so the read
 * buffer goes with it. Bytes pipelined behind it are copied out first. */
static void hand_buffer_to(sl_conn *c, sl_req *r)
{
    char *keep = NULL;
    size_t rest = c->rlen > c->parsed ? c->rlen - c->parsed : 0;
    if (rest && c->state != C_LINGER) {
        keep = malloc(rest > RBUF_FIRST ? rest : RBUF_FIRST);
        if (keep)
            memcpy(keep, c->rbuf + c->parsed, rest);
    }
    r->owner = c->rbuf;
    r->on_release = release_buffer;
    r->detached = true;
    c->rbuf = keep;
    c->rcap = keep ? (rest > RBUF_FIRST ? rest : RBUF_FIRST) : 0;
    c->rlen = keep ? rest : 0;
    c->rpos = c->line = c->parsed = c->body_start = 0;
}

/* The client went away. A request being answered is aborted (its upstream
 * call cancelled); one whose body was still arriving never started. */
static void gone(sl_conn *c)
{
    sl_req *r = c->req;
    c->req = NULL;
    bool started = r && (c->state == C_ACTIVE || c->dispatched);
    sl_body_fn broke = c->state == C_BODY ? c->body_fn : NULL;
    void *ud = c->body_ud;
    if (r && started)
        hand_buffer_to(c, r);
    conn_free(c);
    if (r && started) {
        sl_pipeline_abort(r);
        if (broke)
            broke(r, NULL, 0, true, ud); /* the body broke off */
    } else if (r) {
        sl_req_release(r);
    }
}

static void on_broken(sl_conn *c)
{
    c->broken = true;
    if (!c->test)
        event_active(&c->rev, EV_READ, 1); /* closed from the loop, not inside a sink call */
}

/* ---- output ------------------------------------------------------------- */

static void wbuf_drained(sl_conn *c)
{
    if (c->wbuf.cap > WBUF_KEEP)
        sl_buf_free(&c->wbuf);
    else
        sl_buf_reset(&c->wbuf);
    c->wpos = 0;
}

/* Output waits: the client must take some of it within idle_timeout_s (a
 * reader that stopped would otherwise hold its request, and a paused upstream
 * call, forever). Re-armed on every write that makes progress. */
static void write_deadline(sl_conn *c)
{
    if (c->state == C_ACTIVE || c->state == C_HEAD)
        arm(c, conf_now()->server.idle_timeout_s * 1000);
}

static void send_iov(sl_conn *c, struct iovec *iov, int n)
{
    if (c->broken || c->state == C_CLOSED)
        return;
    if (c->test) {
        for (int i = 0; i < n; i++)
            if (c->out && iov[i].iov_len)
                c->out(iov[i].iov_base, iov[i].iov_len);
        return;
    }
    size_t done = 0;
    if (c->wbuf.len == c->wpos) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            on_broken(c);
            return;
        }
        done = w > 0 ? (size_t)w : 0;
    }
    for (int i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        if (done >= len) {
            done -= len;
            continue;
        }
        if (sl_buf_append(&c->wbuf, (char *)iov[i].iov_base + done, len - done) != SL_OK) {
            on_broken(c);
            return;
        }
        done = 0;
    }
    if (c->wbuf.len > c->wpos && !c->wev_added) {
        event_add(&c->wev, NULL);
        c->wev_added = true;
        write_deadline(c);
    }
}

static void drained(sl_req *r)
{
    void (*fn)(sl_req *) = r->on_drained;
    r->on_drained = NULL;
    fn(r);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(what);
    sl_conn *c = arg;
    sl_loop_worked();
    ssize_t w = send(fd, c->wbuf.p + c->wpos, c->wbuf.len - c->wpos, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR)
            gone(c);
        return;
    }
    c->wpos += (size_t)w;
    sl_req *r = c->req;
    if (c->wpos < c->wbuf.len) {
        if (w > 0)
            write_deadline(c);
        if (r && r->on_drained && c->wbuf.len - c->wpos <= OUT_LOW)
            drained(r);
        return;
    }
    wbuf_drained(c);
    event_del(&c->wev);
    c->wev_added = false;
    if (c->state == C_ACTIVE && c->req) {
        disarm(c); /* the request runs: no deadline while it does */
    } else if (c->state == C_HEAD) {
        const sl_config *conf = conf_now(); /* back to the keep-alive deadline */
        arm(c, (conf->server.idle_timeout_s + conf->server.header_timeout_s) * 1000);
    }
    if (c->close_after && !c->req)
        start_linger(c);
    else if (c->state == C_HEAD && c->rpos < c->rlen)
        process(c);
    else if (r && r->on_drained)
        drained(r); /* last: the producer may write (and even end) from in there */
}

/* ---- answers: the HTTP client sink -------------------------------------- */

/* The Date header, formatted once a second. */
static const char *http_date(void)
{
    static char text[40];
    static int64_t at_s = -1;
    int64_t now_s = sl_wall_coarse_ms() / 1000;
    if (now_s != at_s) {
        time_t t = (time_t)now_s;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        at_s = now_s;
    }
    return text;
}

static const char *status_line(int status)
{
    switch (status) {
    case 100: return "HTTP/1.1 100 Continue\r\n";
    case 200: return "HTTP/1.1 200 OK\r\n";
    case 201: return "HTTP/1.1 201 Created\r\n";
    case 202: return "HTTP/1.1 202 Accepted\r\n";
    case 204: return "HTTP/1.1 204 No Content\r\n";
    case 400: return "HTTP/1.1 400 Bad Request\r\n";
    case 401: return "HTTP/1.1 401 Unauthorized\r\n";
    case 402: return "HTTP/1.1 402 Payment Required\r\n";
    case 403: return "HTTP/1.1 403 Forbidden\r\n";
    case 404: return "HTTP/1.1 404 Not Found\r\n";
    case 405: return "HTTP/1.1 405 Method Not Allowed\r\n";
    case 408: return "HTTP/1.1 408 Request Timeout\r\n";
    case 409: return "HTTP/1.1 409 Conflict\r\n";
    case 413: return "HTTP/1.1 413 Payload Too Large\r\n";
    case 414: return "HTTP/1.1 414 URI Too Long\r\n";
    case 415: return "HTTP/1.1 415 Unsupported Media Type\r\n";
    case 422: return "HTTP/1.1 422 Unprocessable Entity\r\n";
    case 429: return "HTTP/1.1 429 Too Many Requests\r\n";
    case 431: return "HTTP/1.1 431 Request Header Fields Too Large\r\n";
    case 499: return "HTTP/1.1 499 Client Closed Request\r\n";
    case 500: return "HTTP/1.1 500 Internal Server Error\r\n";
    case 501: return "HTTP/1.1 501 Not Implemented\r\n";
    case 502: return "HTTP/1.1 502 Bad Gateway\r\n";
    case 503: return "HTTP/1.1 503 Service Unavailable\r\n";
    case 504: return "HTTP/1.1 504 Gateway Timeout\r\n";
    default: return NULL;
    }
}

static const char *cache_word(sl_cache_outcome o)
{
    switch (o) {
    case SL_CACHE_HIT: return "hit";
    case SL_CACHE_MISS: return "miss";
    case SL_CACHE_COALESCED: return "coalesced";
    case SL_CACHE_BYPASS: return "bypass";
    case SL_CACHE_SEMANTIC: return "semantic";
    default: return NULL;
    }
}

enum { FRAME_LENGTH, FRAME_CHUNKED, FRAME_EOF };

/* "name: value\r\n" at o; the end. */
static char *hline(char *o, const char *name, size_t nl, const char *value, size_t vl)
{
    memcpy(o, name, nl);
    o += nl;
    *o++ = ':';
    *o++ = ' ';
    memcpy(o, value, vl);
    o += vl;
    *o++ = '\r';
    *o++ = '\n';
    return o;
}
#define HLINE_LIT(o, name, value) hline((o), name, sizeof(name) - 1, value, sizeof(value) - 1)
#define LIT(o, lit)               (memcpy((o), lit, sizeof(lit) - 1), (o) += sizeof(lit) - 1)

enum { HEAD_FIXED_MAX = 512 }; /* status line, Date, the literal lines, numbers: with room */

/* The status line; a code without a reason phrase of its own gets "Status". */
static char *put_status(char *o, int status)
{
    const char *sl = status_line(status);
    if (sl) {
        size_t n = strlen(sl);
        memcpy(o, sl, n);
        return o + n;
    }
    LIT(o, "HTTP/1.1 ");
    o += sl_fmt_i64(status > 0 ? status : 500, o);
    LIT(o, " Status\r\n");
    return o;
}

/* The lines sluice adds for r: type, ids, cache outcome, the request's own. */
static char *put_sluice_lines(char *o, sl_conn *c, sl_req *r, size_t id_len, const size_t *hl)
{
    if (c->resp_sse && !r->content_type) {
        o = HLINE_LIT(o, "Content-Type", "text/event-stream");
        o = HLINE_LIT(o, "Cache-Control", "no-cache");
    } else if (!r->content_type) {
        o = HLINE_LIT(o, "Content-Type", "application/json");
    } else {
        o = hline(o, "Content-Type", 12, r->content_type, hl[0]);
    }
    o = hline(o, "x-request-id", 12, r->id, id_len);
    if (r->trace)
        o = hline(o, "traceparent", 11, r->trace->header, SL_TRACEPARENT_LEN);
    if (r->dialect == &sl_dialect_anthropic) /* what Anthropic's clients read */
        o = hline(o, "request-id", 10, r->id, id_len);
    const char *cw = cache_word(r->cache);
    if (cw)
        o = hline(o, "x-sluice-cache", 14, cw, strlen(cw));
    for (int i = 0; i < r->n_headers; i++)
        o = hline(o, r->headers[i].name, hl[1 + 2 * i], r->headers[i].value, hl[2 + 2 * i]);
    if (r->head_lines.len) {
        memcpy(o, r->head_lines.p, r->head_lines.len);
        o += r->head_lines.len;
    }
    return o;
}

/* Builds the answer's head into conns.head: its largest size is known first
 * (fixed lines, and the lengths of the variable ones), so it is reserved once
 * and written through a cursor. */
static void build_head(sl_conn *c, sl_req *r, int framing, size_t body_len)
{
    sl_buf *b = &conns.head;
    sl_buf_reset(b);
    size_t hl[1 + 2 * SL_REQ_MAX_HEADERS], id_len = strlen(r->id);
    hl[0] = r->content_type ? strlen(r->content_type) : 0;
    size_t need = HEAD_FIXED_MAX + hl[0] + 2 * id_len + r->head_lines.len;
    for (int i = 0; i < r->n_headers; i++) {
        hl[1 + 2 * i] = strlen(r->headers[i].name);
        hl[2 + 2 * i] = strlen(r->headers[i].value);
        need += hl[1 + 2 * i] + hl[2 + 2 * i] + 4;
    }
    if (sl_buf_reserve(b, need) != SL_OK) {
        on_broken(c); /* out of memory: nothing more goes out, the connection closes */
        return;
    }
    char *o = put_status(b->p, c->resp_status);
    o = hline(o, "Date", 4, http_date(), 29);
    o = put_sluice_lines(o, c, r, id_len, hl);
    if (framing == FRAME_LENGTH) {
        LIT(o, "Content-Length: ");
        o += sl_fmt_i64((int64_t)body_len, o);
        LIT(o, "\r\n");
    } else if (framing == FRAME_CHUNKED) {
        LIT(o, "Transfer-Encoding: chunked\r\n");
    }
    /* (C_BODY: answered before the body ended; the connection closes after it) */
    if (c->close_after || conns.draining || !c->keep_alive || framing == FRAME_EOF ||
        c->state == C_BODY) {
        c->close_after = true;
        LIT(o, "Connection: close\r\n");
    } else if (c->http10) {
        LIT(o, "Connection: keep-alive\r\n");
    }
    LIT(o, "\r\n");
    b->len = (size_t)(o - b->p);
    b->p[b->len] = '\0';
}

static sl_conn *attached(sl_req *r)
{
    return r->detached ? NULL : r->owner;
}

static void http_head(sl_sink *s, sl_req *r, int status, bool sse)
{
    SL_UNUSED(s);
    sl_conn *c = attached(r);
    if (!c)
        return;
    c->resp_status = status;
    c->resp_sse = sse;
    c->plain = SL_STR_NULL;
    if (!sse)
        return; /* a plain answer's head is written with its body, at the end */
    c->resp_chunked = !c->http10 && !c->head_only;
    build_head(c, r, c->head_only ? FRAME_LENGTH : c->resp_chunked ? FRAME_CHUNKED : FRAME_EOF, 0);
    struct iovec iov = {conns.head.p, conns.head.len};
    send_iov(c, &iov, 1);
}

static void http_data(sl_sink *s, sl_req *r, const char *p, size_t n)
{
    SL_UNUSED(s);
    sl_conn *c = attached(r);
    if (!c || !n)
        return;
    if (!c->resp_sse) {
        if (!c->plain.p && !c->pbuf.len && p == r->body_out.p) {
            c->plain = (sl_str){p, n}; /* lives until r is released, after end */
            return;
        }
        if (c->plain.p) {
            sl_buf_append(&c->pbuf, c->plain.p, c->plain.len);
            c->plain = SL_STR_NULL;
        }
        sl_buf_append(&c->pbuf, p, n);
        return;
    }
    if (c->head_only)
        return;
    if (!c->resp_chunked) {
        struct iovec iov = {(void *)p, n};
        send_iov(c, &iov, 1);
        return;
    }
    char size[24];
    size_t sn = sl_fmt_hex(n, size);
    size[sn++] = '\r';
    size[sn++] = '\n';
    struct iovec iov[3] = {{size, sn}, {(void *)p, n}, {"\r\n", 2}};
    send_iov(c, iov, 3);
}

static void answer_done(sl_conn *c);

static void http_end(sl_sink *s, sl_req *r)
{
    SL_UNUSED(s);
    sl_conn *c = attached(r);
    if (!c || c->req != r)
        return;
    if (c->state == C_BODY && c->body_fn) { /* answered before its body ended: it never will */
        sl_body_fn fn = c->body_fn;
        c->body_fn = NULL;
        fn(r, NULL, 0, true, c->body_ud);
    }
    if (!c->resp_sse) {
        sl_str body = c->plain.p ? c->plain : sl_buf_str(&c->pbuf);
        build_head(c, r, FRAME_LENGTH, body.len);
        struct iovec iov[2] = {{conns.head.p, conns.head.len}, {(void *)body.p, body.len}};
        send_iov(c, iov, c->head_only || !body.len ? 1 : 2);
        c->plain = SL_STR_NULL;
        if (c->pbuf.cap > WBUF_KEEP)
            sl_buf_free(&c->pbuf);
        else
            sl_buf_reset(&c->pbuf);
    } else if (r->truncated) {
        c->close_after = true; /* no last chunk: the client sees the body broke off */
    } else if (c->resp_chunked) {
        struct iovec iov = {"0\r\n\r\n", 5};
        send_iov(c, &iov, 1);
    }
    c->req = NULL;
    /* The pipeline drops its reference right after this call; any other
     * holder may still read r->body, which lives in our buffer. */
    if (r->refs > 1) {
        sl_req_ref(r);
        r->detached = true; /* the sink is done with it */
        c->lent = r;
    } else {
        r->owner = NULL;
    }
    answer_done(c);
}

/* A slow reader: more than OUT_HIGH waits for the socket. */
static bool http_congested(sl_sink *s, sl_req *r)
{
    SL_UNUSED(s);
    sl_conn *c = attached(r);
    return c && c->wbuf.len - c->wpos > OUT_HIGH;
}

static const sl_sink_ops http_ops = {
    .head = http_head, .data = http_data, .end = http_end, .congested = http_congested};
static sl_sink http_sink = {.ops = &http_ops};

static void kick(sl_conn *c)
{
    if (c->in_process)
        return; /* the loop in process() goes on with the next head */
    if (c->test)
        c->kick = true;
    else
        event_active(&c->rev, EV_TIMEOUT, 1);
}

static void reset_request(sl_conn *c)
{
    c->have_reqline = c->dispatched = c->too_big = c->headers_done = c->msg_done = false;
    c->have_url = c->resp_sse = c->resp_chunked = c->head_only = false;
    c->hcount = 0;
    c->hbytes = 0;
    c->n_hdr = 0;
    if (c->hdr != c->hdr_inline) { /* a large head's slots go back: an open stream holds its conn */
        free(c->hdr);
        c->hdr = c->hdr_inline;
        c->hdr_cap = HDR_INLINE;
    }
    c->body_fn = NULL;
    c->body_len = 0;
    c->body_paused = false;
}

/* The answer has been handed to the socket: next request, or close. */
static void answer_done(sl_conn *c)
{
    c->served_any = true;
    bool mid_body = c->state == C_BODY; /* a streamed body the handler did not wait for */
    if (c->closed_only && !c->test) {
        event_del(&c->rev);
        event_assign(&c->rev, conns.base, c->fd, EV_READ | EV_PERSIST, on_read, c);
        event_add(&c->rev, NULL);
        c->closed_only = false;
    }
    if (c->close_after || conns.draining || !c->keep_alive || mid_body) {
        c->close_after = true;
        if (c->wbuf.len == c->wpos)
            start_linger(c);
        else
            c->state = C_ACTIVE; /* on_write lingers once the answer left */
        return;
    }
    c->state = C_HEAD;
    c->rpos = c->line = c->parsed;
    reset_request(c);
    const sl_config *conf = conf_now();
    arm(c, (conf->server.idle_timeout_s + conf->server.header_timeout_s) * 1000);
    if (c->rpos < c->rlen)
        kick(c);
    else
        c->rpos = c->rlen = c->line = c->parsed = 0;
}

/* ---- closing ------------------------------------------------------------ */

/* Our side is done: shut it down and read until the client closes (so that a
 * client still sending reads our answer instead of a reset), at most 1 s. */
static void start_linger(sl_conn *c)
{
    c->state = C_LINGER;
    c->rlen = c->rpos = c->line = c->parsed = 0;
    if (c->test) {
        c->state = C_CLOSED;
        return;
    }
    shutdown(c->fd, SHUT_WR);
    arm(c, LINGER_MS);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd), SL_UNUSED(what);
    sl_conn *c = arg;
    c->timer_at = 0;
    if (!c->deadline)
        return; /* disarmed since */
    uint64_t now = sl_coarse_ms();
    if (now < c->deadline) { /* the deadline moved later since this was set */
        set_timer(c, c->deadline, c->deadline - now);
        return;
    }
    c->deadline = 0;
    switch (c->state) {
    case C_HEAD:
        if (c->wbuf.len > c->wpos) {
            conn_free(c); /* the client stopped reading its answer */
        } else if (!c->served_any || c->rlen > c->rpos) {
            refuse(c, NULL, 408, "request_timeout", "The request did not arrive in time.");
        } else {
            conn_free(c); /* an idle keep-alive connection */
        }
        break;
    case C_BODY:
        if (c->dispatched)
            gone(c);
        else
            refuse(c, c->req, 408, "request_timeout", "The request body did not arrive in time.");
        break;
    case C_LINGER: conn_free(c); break;
    case C_ACTIVE:
        if (c->wbuf.len > c->wpos)
            gone(c); /* it stopped reading: as good as gone (its upstream is cancelled) */
        break;
    default: break;
    }
}

/* ---- refusals ----------------------------------------------------------- */

static sl_req *new_req(sl_conn *c)
{
    sl_req *r = sl_req_new(conns.base, conns.hooks.config());
    if (!r)
        return NULL;
    r->sink = &http_sink;
    r->owner = c;
    r->method = "-";
    r->path = "-";
    c->req = r;
    return r;
}

/* Answers a refusal (every one is logged and counted: it runs through the
 * pipeline's completion) and closes the connection after it. */
static void refuse(sl_conn *c, sl_req *r, int status, const char *code, const char *msg)
{
    if (c->dispatched) { /* a streamed body broke off: its handler answers, then we close */
        c->close_after = true;
        sl_body_fn broke = c->state == C_BODY ? c->body_fn : NULL;
        c->state = C_ACTIVE;
        disarm(c);
        if (broke)
            broke(c->req, NULL, 0, true, c->body_ud);
        return;
    }
    if (!r) {
        r = new_req(c);
        if (!r) {
            start_linger(c);
            return;
        }
        sl_req_make_id(r->id);
    }
    c->close_after = true;
    c->state = C_ACTIVE;
    disarm(c);
    sl_req_error(r, status, "invalid_request_error", code, NULL, msg);
    sl_req_finish(r);
}

/* ---- the head: scanning as it arrives ----------------------------------- */

/* obs-fold (a line that starts with whitespace), no colon, an empty name, or
 * whitespace before the colon (`Content-Length : 5`, which a proxy in front
 * may read differently: smuggling). */
static bool header_line_ok(const char *ls, size_t len)
{
    const char *colon = memchr(ls, ':', len);
    return *ls != ' ' && *ls != '\t' && colon && colon != ls && colon[-1] != ' ' &&
           colon[-1] != '\t';
}

/* Looks at the lines of the head that arrived since the last call. Returns
 * 1 when the blank line that ends it is in (c->line is then its end), 0 for
 * more, -1 after a refusal. Leading empty lines are skipped (RFC 9112 2.2). */
static int scan_head(sl_conn *c)
{
    const size_t max_hdr = conf_now()->server.max_header_bytes;
    while (c->line < c->rlen) {
        const char *ls = c->rbuf + c->line;
        size_t avail = c->rlen - c->line;
        const char *nl = memchr(ls, '\n', avail);
        size_t seg = nl ? (size_t)(nl - ls) : avail;
        const char *cr = seg ? memchr(ls, '\r', seg) : NULL;
        if ((seg && memchr(ls, '\0', seg)) || (cr && cr != ls + seg - 1) || (nl && !cr))
            goto bad_bytes;
        if (!nl) {
            if (!c->have_reqline && seg > REQLINE_MAX)
                goto uri_too_long;
            if (c->have_reqline && c->hbytes + seg > max_hdr)
                goto too_large;
            return 0;
        }
        size_t len = seg - 1;
        c->line += seg + 1;
        if (len == 0) {
            if (c->have_reqline)
                return 1;
            c->rpos = c->line; /* an empty line before the request line */
            continue;
        }
        if (!c->have_reqline) {
            if (len > REQLINE_MAX)
                goto uri_too_long;
            c->have_reqline = true;
            continue;
        }
        if (!header_line_ok(ls, len)) {
            refuse(c, NULL, 400, "invalid_header",
                   "A header line is malformed (folded, no name, or whitespace before the "
                   "colon).");
            return -1;
        }
        c->hbytes += len + 2;
        if (++c->hcount > MAX_HEADER_COUNT || c->hbytes > max_hdr)
            goto too_large;
    }
    return 0;
bad_bytes:
    refuse(c, NULL, 400, "invalid_header",
           "A request line or header holds NUL, a bare CR or a bare LF.");
    return -1;
uri_too_long:
    refuse(c, NULL, 414, "uri_too_long", "The request URI is longer than 8 KiB.");
    return -1;
too_large:
    refuse(c, NULL, 431, "headers_too_large",
           "Request headers are too large (limits: 100 headers, server.max_header_bytes).");
    return -1;
}

/* ---- the head: http_parser callbacks ------------------------------------ */

static int on_url(http_parser *p, const char *at, size_t n)
{
    sl_conn *c = p->data;
    c->url_o = (uint32_t)(at - c->rbuf);
    c->url_l = (uint32_t)n;
    c->have_url = true;
    return 0;
}

static int classify(const char *k, size_t n)
{
    switch (n) { /* the length picks the one name worth comparing */
    case 4: return ieq(k, n, "host") ? -2 : -1;
    case 6: return ieq(k, n, "expect") ? H_EXPECT : -1;
    case 9: return ieq(k, n, "x-api-key") ? H_API_KEY : -1;
    case 10: return ieq(k, n, "tracestate") ? H_TRACESTATE : -1;
    case 11: return ieq(k, n, "traceparent") ? H_TRACEPARENT : -1;
    case 12: return ieq(k, n, "x-request-id") ? H_REQID : -1;
    case 13:
        return ieq(k, n, "authorization")   ? H_AUTH
               : ieq(k, n, "cache-control") ? H_CACHE_CONTROL
               : ieq(k, n, "x-sluice-user") ? H_USER
               : ieq(k, n, "last-event-id") ? H_LAST_EVENT
                                            : -1;
    case 14:
        return ieq(k, n, "content-length")   ? -3
               : ieq(k, n, "anthropic-beta") ? H_AN_BETA
               : ieq(k, n, "x-sluice-cache") ? H_CACHE_OPT
                                             : -1;
    case 15: return ieq(k, n, "idempotency-key") ? H_IDEM : -1;
    case 16: return ieq(k, n, "content-encoding") ? H_CE : -1;
    case 17:
        return ieq(k, n, "transfer-encoding")   ? H_TE
               : ieq(k, n, "anthropic-version") ? H_AN_VERSION
                                                : -1;
    case 18: return ieq(k, n, "x-sluice-cache-ttl") ? H_TTL : -1;
    default: return -1;
    }
}

/* A head with more headers than the inline slots: MAX_HEADER_COUNT on the heap. */
static bool grow_hdr(sl_conn *c)
{
    hslice *h = malloc(MAX_HEADER_COUNT * sizeof(*h));
    if (!h)
        return false;
    memcpy(h, c->hdr, c->n_hdr * sizeof(*h));
    c->hdr = h;
    c->hdr_cap = MAX_HEADER_COUNT;
    return true;
}

/* Header i's name is known: count the ones the rules limit, note the facts. */
static void note_field(sl_conn *c, unsigned i)
{
    int f = classify(c->rbuf + c->hdr[i].no, c->hdr[i].nl);
    c->hosts += f == -2;
    c->content_lengths += f == -3;
    c->authorizations += f == H_AUTH;
    c->transfer_encodings += f == H_TE;
    c->traceparents += f == H_TRACEPARENT;
    c->cur_fact = f;
    if (f >= 0 && c->fact[f] < 0)
        c->fact[f] = (int)i;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    sl_conn *c = p->data;
    if (c->n_hdr >= MAX_HEADER_COUNT)
        return 1; /* the scan refused such a head already */
    if (c->n_hdr >= c->hdr_cap && !grow_hdr(c))
        return 1;
    hslice *h = &c->hdr[c->n_hdr];
    h->no = (uint32_t)(at - c->rbuf);
    h->nl = (uint32_t)n;
    h->vo = h->no + h->nl;
    h->vl = 0;
    note_field(c, c->n_hdr);
    c->n_hdr++;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    sl_conn *c = p->data;
    if (!c->n_hdr)
        return 1;
    while (n && (at[n - 1] == ' ' || at[n - 1] == '\t'))
        n--; /* (Debian's build is strict: a control byte in a value is HPE_INVALID_HEADER_TOKEN) */
    hslice *h = &c->hdr[c->n_hdr - 1];
    h->vo = (uint32_t)(at - c->rbuf);
    h->vl = (uint32_t)n;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    sl_conn *c = p->data;
    c->headers_done = true;
    http_parser_pause(p, 1); /* decide before any body byte is taken */
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    sl_conn *c = p->data;
    if (c->body_fn) {
        c->body_fn(c->req, at, n, false, c->body_ud);
        return 0;
    }
    if (c->body_len + n > conf_now()->server.max_body_bytes) {
        c->too_big = true;
        return 1;
    }
    char *to = c->rbuf + c->body_start + c->body_len;
    if (to != at)
        memmove(to, at, n); /* chunked: decoded in place, towards the front */
    c->body_len += n;
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    sl_conn *c = p->data;
    if (!c->body_fn && c->body_len + p->content_length > conf_now()->server.max_body_bytes) {
        c->too_big = true;
        return 1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    sl_conn *c = p->data;
    c->msg_done = true;
    http_parser_pause(p, 1); /* a pipelined request behind it waits its turn */
    return 0;
}

/* ---- the head: what sluice takes from it -------------------------------- */

/* x-request-id is echoed in a header: accept only a safe, bounded token. */
static bool valid_request_id(sl_str v)
{
    if (!v.len || v.len >= 63)
        return false;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char ch = (unsigned char)v.p[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
            return false;
    }
    return true;
}

/* The path of the request target; the absolute form (a proxy's) is accepted. */
static sl_str target_path(sl_str url)
{
    if (url.len && url.p[0] == '/')
        return url; /* the origin form: what every client sends */
    if (url.len > 7 && (strncasecmp(url.p, "http://", 7) == 0 ||
                        (url.len > 8 && strncasecmp(url.p, "https://", 8) == 0))) {
        size_t skip = url.p[4] == ':' ? 7 : 8;
        const char *slash = memchr(url.p + skip, '/', url.len - skip);
        const char *q = memchr(url.p + skip, '?', url.len - skip);
        if (!slash || (q && q < slash))
            return SL_STR("/");
        return (sl_str){slash, url.len - (size_t)(slash - url.p)};
    }
    return url;
}

/* The request's trace: the client's traceparent continued (two of them, or
 * a malformed one: a new trace, never an error), its tracestate carried. */
static void read_trace(sl_conn *c, sl_req *r)
{
    if (!(r->trace = sl_arena_alloc(&r->arena, sizeof *r->trace)))
        return;
    sl_str tp = c->traceparents == 1 ? fact(c, H_TRACEPARENT) : SL_STR_NULL;
    sl_trace_begin(r->trace, tp.p, tp.len, r->conf->tracing.sample_ratio);
    sl_str ts = fact(c, H_TRACESTATE);
    if (r->trace->has_parent && sl_tracestate_valid(ts.p, ts.len))
        r->trace->tracestate = sl_arena_strndup(&r->arena, ts.p, ts.len);
}

static void read_request(sl_conn *c, sl_req *r)
{
    if (sl_trace_on)
        read_trace(c, r);
    r->method = http_method_str((enum http_method)c->hp.method);
    sl_str url = target_path(slice(c, c->url_o, c->url_l));
    const char *q = memchr(url.p, '?', url.len);
    size_t plen = q ? (size_t)(q - url.p) : url.len;
    r->path = sl_arena_strndup(&r->arena, url.p, plen);
    r->query = q ? sl_arena_strndup(&r->arena, q + 1, url.len - plen - 1) : NULL;
    /* Every answer on an Anthropic path, refusals included, speaks Anthropic. */
    if (r->path && strncmp(r->path, "/v1/messages", 12) == 0 &&
        (r->path[12] == '\0' || r->path[12] == '/'))
        r->dialect = &sl_dialect_anthropic;
    sl_str id = fact(c, H_REQID);
    if (valid_request_id(id)) {
        memcpy(r->id, id.p, id.len);
        r->id[id.len] = '\0';
    } else {
        sl_req_make_id(r->id);
    }
    sl_str auth = fact(c, H_AUTH);
    if (auth.len >= 7 && strncasecmp(auth.p, "Bearer ", 7) == 0)
        r->auth_key = sl_arena_strndup(&r->arena, auth.p + 7, auth.len - 7);
    else if ((auth = fact(c, H_API_KEY)).p)
        r->auth_key = sl_arena_strndup(&r->arena, auth.p, auth.len);
    sl_str cc = fact(c, H_CACHE_CONTROL);
    if (cc.p)
        r->cache_control = sl_arena_strndup(&r->arena, cc.p, cc.len);
    sl_str ttl = fact(c, H_TTL);
    if (ttl.p) /* checked by the cache stage (400 when not whole seconds) */
        r->cache_ttl = sl_arena_strndup(&r->arena, ttl.p, ttl.len);
    sl_str user = fact(c, H_USER);
    if (user.p)
        r->end_user = sl_arena_strndup(&r->arena, user.p, user.len);
    sl_str av = fact(c, H_AN_VERSION), ab = fact(c, H_AN_BETA);
    if (av.p)
        r->anthropic_version = sl_arena_strndup(&r->arena, av.p, av.len);
    if (ab.p)
        r->anthropic_beta = sl_arena_strndup(&r->arena, ab.p, ab.len);
    r->idem_key = fact_dup(c, r, H_IDEM); /* checked by the idempotency stage */
    r->last_event_id = fact_dup(c, r, H_LAST_EVENT);
    r->cache_opt = fact_dup(c, r, H_CACHE_OPT); /* semantic-off skips the semantic level */
}

/* Framing and header rules http_parser leaves to us, or answers generically.
 * Returns false after a refusal. */
static bool head_ok(sl_conn *c, sl_req *r, enum http_errno e)
{
    sl_str te = fact(c, H_TE);
    if (c->transfer_encodings > 1) { /* which one frames the body is anybody's guess */
        refuse(c, r, 400, "invalid_header", "Two Transfer-Encoding headers.");
        return false;
    }
    if (te.p && !ieq(te.p, te.len, "chunked")) {
        if (c->content_lengths)
            refuse(c, r, 400, "invalid_header", "Content-Length with Transfer-Encoding.");
        else
            refuse(c, r, 501, "unsupported_transfer_encoding",
                   "Only the chunked Transfer-Encoding is supported.");
        return false;
    }
    if (te.p && c->content_lengths) {
        refuse(c, r, 400, "invalid_header", "Content-Length with Transfer-Encoding.");
        return false;
    }
    if (c->content_lengths > 1) {
        refuse(c, r, 400, "invalid_header", "conflicting Content-Length headers");
        return false;
    }
    if (e == HPE_INVALID_HEADER_TOKEN) {
        refuse(c, r, 400, "invalid_header",
               "A header name or value holds a control character or a separator.");
        return false;
    }
    if (e != HPE_PAUSED || !c->headers_done) {
        refuse(c, r, 400, "invalid_request",
               sl_arena_printf(&r->arena, "Malformed request (%s).", http_errno_description(e)));
        return false;
    }
    if (c->hp.http_major != 1 || c->hp.http_minor > 1) {
        refuse(c, r, 400, "unsupported_http_version", "Only HTTP/1.0 and HTTP/1.1 are served.");
        return false;
    }
    if (c->hosts > 1 || (c->hp.http_minor == 1 && c->hosts == 0)) {
        refuse(c, r, 400, "invalid_header", "An HTTP/1.1 request carries exactly one Host header.");
        return false;
    }
    if (c->authorizations > 1) {
        refuse(c, r, 400, "invalid_header", "Two Authorization headers.");
        return false;
    }
    return true;
}

/* The body is known from its head: refuse what cannot be taken. */
static bool body_ok(sl_conn *c, sl_req *r, bool has_body)
{
    sl_str ce = fact(c, H_CE);
    if (has_body && ce.p && !ieq(ce.p, ce.len, "identity")) {
        refuse(c, r, 415, "unsupported_content_encoding",
               "Request bodies with a Content-Encoding are not accepted.");
        return false;
    }
    uint64_t cl = c->hp.content_length;
    if (!(c->hp.flags & F_CHUNKED) && cl != ULLONG_MAX && cl > conf_now()->server.max_body_bytes) {
        refuse(c, r, 413, "request_too_large",
               sl_arena_printf(&r->arena, "The request body is larger than %zu bytes.",
                               conf_now()->server.max_body_bytes));
        return false;
    }
    return true;
}

static void continue_100(sl_conn *c)
{
    struct iovec iov = {"HTTP/1.1 100 Continue\r\n\r\n", 25};
    send_iov(c, &iov, 1);
}

/* The head was accepted: read the body (the parser goes on where it paused).
 * A streaming handler gets the request now, the body as it comes. */
static void start_body(sl_conn *c, sl_req *r, bool stream, bool has_body, bool wait_100)
{
    if (wait_100 && c->rlen == c->line)
        continue_100(c);
    c->body_start = c->line;
    c->body_len = 0;
    c->state = C_BODY;
    if (has_body)
        arm(c, conf_now()->server.body_timeout_s * 1000);
    if (!c->fast)
        http_parser_pause(&c->hp, 0);
    if (stream) {
        c->dispatched = true;
        r->body = SL_STR("");
        disarm(c);
        conns.hooks.on_request(r);
    }
}

/* A plain head (head.h) without http_parser: what its callbacks would have
 * recorded, and the parser's fields the rules below read. False: not plain. */
static bool parse_fast(sl_conn *c)
{
    sl_head h = c->head;
    bool ready = c->head_ready;
    c->head_ready = false;
    if (!ready && !sl_head_parse(c->rbuf + c->rpos, c->line - c->rpos, &h, c->hdr, c->hdr_cap))
        return false;
    uint32_t base = (uint32_t)c->rpos;
    for (unsigned i = 0; i < h.n_fields; i++) {
        c->hdr[i].no += base;
        c->hdr[i].vo += base;
        note_field(c, i);
    }
    c->n_hdr = h.n_fields;
    c->url_o = base + h.url_o;
    c->url_l = h.url_l;
    c->have_url = c->headers_done = true;
    c->hp.method = h.method & 0xff;
    c->hp.http_major = 1;
    c->hp.http_minor = (unsigned short)h.http_minor;
    c->hp.content_length = h.content_length;
    c->hp.flags = (h.conn_close ? F_CONNECTION_CLOSE : 0) |
                  (h.conn_keep_alive ? F_CONNECTION_KEEP_ALIVE : 0) |
                  (h.content_length != ULLONG_MAX ? F_CONTENTLENGTH : 0);
    c->body_left = h.content_length == ULLONG_MAX ? 0 : h.content_length;
    c->parsed = c->line;
    return true;
}

/* The whole head is in [rpos, line): parse it, check it, ask the server how
 * to take the body. */
static void parse_head(sl_conn *c)
{
    http_parser_init(&c->hp, HTTP_REQUEST);
    c->hp.data = c;
    c->content_lengths = c->hosts = c->authorizations = c->transfer_encodings = 0;
    c->traceparents = 0;
    for (int i = 0; i < H_NFACTS; i++)
        c->fact[i] = -1;
    enum http_errno e = HPE_PAUSED;
    c->fast = parse_fast(c);
    if (!c->fast) {
        size_t n = http_parser_execute(&c->hp, &settings, c->rbuf + c->rpos, c->line - c->rpos);
        c->parsed = c->rpos + n;
        e = HTTP_PARSER_ERRNO(&c->hp);
    }
    sl_req *r = new_req(c);
    if (!r) {
        start_linger(c);
        return;
    }
    if (e == HPE_PAUSED && c->have_url)
        read_request(c, r);
    else
        sl_req_make_id(r->id);
    if (!head_ok(c, r, e))
        return;
    c->keep_alive = http_should_keep_alive(&c->hp);
    c->http10 = c->hp.http_minor == 0;
    c->head_only = c->hp.method == HTTP_HEAD;
    bool has_body = (c->hp.flags & F_CHUNKED) ||
                    (c->hp.content_length > 0 && c->hp.content_length != ULLONG_MAX);
    sl_str expect = fact(c, H_EXPECT);
    bool wait_100 = has_body && !c->http10 && expect.p && ieq(expect.p, expect.len, "100-continue");
    sl_body_mode mode = conns.hooks.on_head(r, wait_100);
    if (mode == SL_BODY_REFUSE) {
        c->close_after = has_body; /* the body was not read: the connection cannot go on */
        c->state = C_ACTIVE;
        disarm(c);
        sl_req_finish(r); /* the refusal the hook recorded (401) */
        return;
    }
    if (mode == SL_BODY_WHOLE && !body_ok(c, r, has_body))
        return; /* (a streaming handler takes any size and encoding) */
    start_body(c, r, mode == SL_BODY_STREAM && has_body, has_body, wait_100);
}

/* ---- the body ----------------------------------------------------------- */

static void dispatch(sl_conn *c)
{
    sl_req *r = c->req;
    c->state = C_ACTIVE;
    disarm(c);
    r->body = c->body_len ? (sl_str){c->rbuf + c->body_start, c->body_len} : SL_STR("");
    c->dispatched = true;
    conns.hooks.on_request(r);
}

/* A fast head's body: Content-Length bytes (or none), handed over as
 * http_parser's on_body and on_message_complete would. */
static void frame_fast(sl_conn *c)
{
    size_t avail = c->rlen - c->parsed;
    size_t take = avail < c->body_left ? avail : (size_t)c->body_left;
    const char *at = c->rbuf + c->parsed;
    c->parsed += take;
    c->body_left -= take;
    if (take)
        on_body(&c->hp, at, take);
    if (!c->body_left)
        c->msg_done = true;
}

/* Feeds what arrived of the body to the parser; true when the request went on. */
static bool feed_body(sl_conn *c)
{
    enum http_errno e = HPE_OK;
    if (c->fast) {
        if (c->parsed >= c->rlen && c->body_left)
            return false;
        frame_fast(c);
    } else {
        if (c->parsed >= c->rlen)
            return false; /* (no bytes: http_parser would take it for the end of input) */
        size_t n = http_parser_execute(&c->hp, &settings, c->rbuf + c->parsed, c->rlen - c->parsed);
        c->parsed += n;
        e = HTTP_PARSER_ERRNO(&c->hp);
    }
    if (c->state != C_BODY)
        return false; /* a streaming handler answered and closed meanwhile */
    bool raw_big =
        !c->body_fn && c->parsed - c->body_start > conf_now()->server.max_body_bytes + CHUNK_SLACK;
    if (c->too_big || raw_big) {
        refuse(c, c->req, 413, "request_too_large", "The request body is too large.");
        return false;
    }
    if (e != HPE_OK && e != HPE_PAUSED) {
        refuse(c, c->req, 400, "invalid_request",
               sl_arena_printf(&c->req->arena, "Malformed request body (%s).",
                               http_errno_description(e)));
        return false;
    }
    if (c->body_fn && c->parsed > c->rpos) { /* streamed: what was handed over can go */
        if (!c->body_paused)                 /* the client sends: its deadline starts again */
            arm(c, conf_now()->server.body_timeout_s * 1000);
        memmove(c->rbuf, c->rbuf + c->parsed, c->rlen - c->parsed);
        c->rlen -= c->parsed;
        c->rpos = c->line = c->parsed = c->body_start = 0;
    }
    if (!c->msg_done)
        return false;
    if (!c->dispatched) {
        dispatch(c);
        return true;
    }
    c->state = C_ACTIVE; /* a streamed body is complete; the answer may still come */
    if (c->body_fn)
        c->body_fn(c->req, "", 0, true, c->body_ud);
    return c->state != C_ACTIVE;
}

/* ---- reading ------------------------------------------------------------ */

/* The whole head arrived at once and is plain (head.h): the fast parser's
 * byte classes take in every check the line scan makes (no NUL, a CR only
 * before an LF, no fold, nothing between a name and its colon), so the scan
 * is skipped and only its limits are checked here. A head in pieces, one
 * past a limit, or one not plain: false, and the scan goes as before. */
static bool head_at_once(sl_conn *c)
{
    const char *p = c->rbuf + c->rpos, *end = c->rbuf + c->rlen;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl || (size_t)(nl - p) > REQLINE_MAX + 1)
        return false;
    const char *fields = nl + 1;
    while (!(end - nl > 2 && nl[1] == '\r' && nl[2] == '\n')) { /* the blank line */
        if (end - nl <= 2 || !(nl = memchr(nl + 1, '\n', (size_t)(end - nl - 1))))
            return false;
    }
    size_t n = (size_t)(nl + 3 - p), hbytes = (size_t)(nl + 1 - fields);
    if (hbytes > conf_now()->server.max_header_bytes ||
        !sl_head_parse(p, n, &c->head, c->hdr, c->hdr_cap))
        return false;
    c->line = c->rpos + n;
    c->have_reqline = c->head_ready = true;
    c->hcount = c->head.n_fields;
    c->hbytes = hbytes;
    return true;
}

static void process(sl_conn *c)
{
    c->in_process = true;
    for (;;) {
        if (c->state == C_HEAD) {
            settle(c); /* before the next request takes the buffer: one lent at most */
            if (c->wbuf.len - c->wpos > OUT_HIGH)
                break; /* a client that pipelines without reading waits */
            if (c->rpos == c->rlen) {
                c->rpos = c->rlen = c->line = c->parsed = 0;
                break;
            }
            if (conns.draining && c->served_any) {
                start_linger(c);
                break;
            }
            if (!(c->line == c->rpos && head_at_once(c)) && scan_head(c) <= 0)
                break;
            parse_head(c);
        } else if (c->state == C_BODY) {
            if (!feed_body(c))
                break;
        } else {
            break;
        }
    }
    c->in_process = false;
}

/* Room to read into. False when the buffer may not move or grow now. */
static bool make_room(sl_conn *c)
{
    if (c->rlen < c->rcap)
        return true;
    if (c->state == C_HEAD && c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->line -= c->rpos;
        c->rpos = c->parsed = 0;
        if (c->rlen < c->rcap)
            return true;
    }
    if (c->state != C_HEAD && c->state != C_BODY && c->state != C_LINGER)
        return false;
    const sl_config *conf = conf_now();
    size_t limit = REQLINE_MAX + conf->server.max_header_bytes + 4096;
    if (c->state == C_BODY)
        limit += c->body_fn ? STREAM_KEEP : conf->server.max_body_bytes + CHUNK_SLACK;
    if (c->state == C_LINGER)
        limit = RBUF_FIRST;
    size_t want = c->rcap ? c->rcap * 2 : RBUF_FIRST;
    if (want > limit)
        want = limit;
    if (want <= c->rcap)
        return false;
    char *p = realloc(c->rbuf, want);
    if (!p)
        return false;
    c->rbuf = p;
    c->rcap = want;
    return true;
}

/* The first bytes of a request on a connection with nothing buffered: kept
 * in a read buffer sized to them (rounded up, grown by make_room if more
 * comes) instead of a RBUF_FIRST one, so an open stream or an idle
 * keep-alive connection holds about its request, not 16 KiB. A buffer that
 * fits is reused; a bigger one (grown for a large body) is given back. */
static bool adopt(sl_conn *c, const char *p, size_t n)
{
    size_t want = (n + RBUF_FIT) & ~(size_t)(RBUF_FIT - 1);
    if (n >= RBUF_FIRST)
        want = n;
    if (!c->rbuf || c->rcap < want || c->rcap > 2 * want + RBUF_FIT) {
        char *b = malloc(want);
        if (!b)
            return false;
        free(c->rbuf);
        c->rbuf = b;
        c->rcap = want;
    }
    memcpy(c->rbuf, p, n);
    c->rlen = n;
    return true;
}

/* on_read with nothing buffered: recv into a scratch buffer, then adopt. */
static ssize_t recv_first(sl_conn *c)
{
    static char scratch[RBUF_FIRST];
    ssize_t n = recv(c->fd, scratch, sizeof scratch, 0);
    if (n > 0 && !adopt(c, scratch, (size_t)n)) {
        refuse(c, c->req, 503, "server_overloaded", "Out of memory.");
        return -2;
    }
    return n;
}

static void watch_close_only(sl_conn *c)
{
    event_del(&c->rev);
    event_assign(&c->rev, conns.base, c->fd, EV_CLOSED | EV_PERSIST, on_read, c);
    event_add(&c->rev, NULL);
    c->closed_only = true;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    sl_conn *c = arg;
    sl_loop_worked();
    if (c->broken || (what & EV_CLOSED)) {
        gone(c);
        return;
    }
    if (what == EV_TIMEOUT) { /* kick(): pipelined bytes wait in the buffer */
        process(c);
        return;
    }
    settle(c);
    if (c->state == C_LINGER)
        c->rlen = 0; /* read and drop */
    if (c->state == C_HEAD && c->rlen == 0) {
        ssize_t n = recv_first(c);
        if (n > 0)
            process(c);
        else if (n != -2 && (n == 0 || (errno != EAGAIN && errno != EINTR)))
            gone(c);
        return;
    }
    if (!make_room(c)) {
        if (c->state == C_ACTIVE)
            watch_close_only(c);
        else
            refuse(c, c->req, 413, "request_too_large", "The request is too large.");
        return;
    }
    ssize_t n = recv(fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
    if (n > 0) {
        c->rlen += (size_t)n;
        if (c->state == C_HEAD || c->state == C_BODY)
            process(c);
        return;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR))
        gone(c);
}

/* ---- accepting ---------------------------------------------------------- */

static sl_conn *conn_new(int fd)
{
    sl_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->fd = fd;
    c->hdr = c->hdr_inline;
    c->hdr_cap = HDR_INLINE;
    c->state = C_HEAD;
    c->keep_alive = true;
    c->next = conns.all;
    if (conns.all)
        conns.all->prev = c;
    conns.all = c;
    conns.open++;
    evtimer_assign(&c->timer, conns.base, on_timer, c);
    return c;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    SL_UNUSED(l), SL_UNUSED(sa), SL_UNUSED(len), SL_UNUSED(arg);
    sl_conn *c = conn_new(fd);
    if (!c) {
        close(fd);
        return;
    }
    event_assign(&c->rev, conns.base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wev, conns.base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    event_add(&c->rev, NULL);
    const sl_config *conf = conf_now();
    if (conns.open > (size_t)conf->server.max_connections)
        refuse(c, NULL, 503, "too_many_connections", "The gateway is at its connection limit.");
    else
        arm(c, conf->server.header_timeout_s * 1000);
}

static void on_resume_accept(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd), SL_UNUSED(what), SL_UNUSED(arg);
    if (conns.listener)
        evconnlistener_enable(conns.listener);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    SL_UNUSED(arg);
    int err = EVUTIL_SOCKET_ERROR();
    static uint64_t last_warn_ms;
    uint64_t now = sl_now_ms();
    if (now - last_warn_ms >= 10000) { /* once per 10 s: a flood must not flood the log */
        sl_warn("accept: %s (%zu connections open); pausing accepts for %d ms", strerror(err),
                conns.open, ACCEPT_PAUSE_MS);
        last_warn_ms = now;
    }
    evconnlistener_disable(l);
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    event_add(conns.resume_accept_ev, &tv);
}

/* ---- interface ---------------------------------------------------------- */

int sl_conn_setup(struct event_base *base, const sl_conn_hooks *hooks)
{
    conns.base = base;
    conns.hooks = *hooks;
    conns.draining = false;
    conns.resume_accept_ev = evtimer_new(base, on_resume_accept, NULL);
    if (!conns.resume_accept_ev)
        return SL_ENOMEM;
    sl_buf_init(&conns.head, 0);
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_chunk_header = on_chunk_header;
    settings.on_message_complete = on_message_complete;
    /* our own scan bounds a head precisely; the parser's bound only caps
     * what is left to it (chunk extensions) */
    http_parser_set_max_header_size(64 * 1024);
    return SL_OK;
}

void sl_conn_listen(struct evconnlistener *l)
{
    conns.listener = l;
    if (l) {
        evconnlistener_set_cb(l, on_accept, NULL);
        evconnlistener_set_error_cb(l, on_accept_error);
    } else if (conns.resume_accept_ev) {
        event_del(conns.resume_accept_ev);
    }
}

void sl_conn_drain(void)
{
    conns.draining = true;
    if (conns.listener) {
        evconnlistener_free(conns.listener);
        sl_conn_listen(NULL);
    }
    for (sl_conn *c = conns.all, *next; c; c = next) {
        next = c->next;
        bool idle = c->state == C_HEAD && c->rlen == c->rpos && c->wbuf.len == c->wpos;
        if (idle)
            conn_free(c);
    }
}

size_t sl_conn_open_count(void)
{
    return conns.open;
}

void sl_conn_shutdown(void)
{
    while (conns.all)
        gone(conns.all);
    if (conns.listener)
        evconnlistener_free(conns.listener);
    if (conns.resume_accept_ev)
        event_free(conns.resume_accept_ev);
    sl_buf_free(&conns.head);
    memset(&conns, 0, sizeof conns);
}

sl_str sl_conn_header(const sl_req *r, const char *name)
{
    const sl_conn *c = r->detached ? NULL : r->owner;
    if (!c || c->req != r || c->body_fn)
        return SL_STR_NULL;
    size_t n = strlen(name);
    for (unsigned i = 0; i < c->n_hdr; i++) {
        const hslice *h = &c->hdr[i];
        if (h->nl == n && strncasecmp(c->rbuf + h->no, name, n) == 0)
            return slice(c, h->vo, h->vl);
    }
    return SL_STR_NULL;
}

void sl_conn_body_reader(sl_req *r, sl_body_fn fn, void *ud)
{
    sl_conn *c = attached(r);
    if (!c || c->req != r)
        return;
    c->body_fn = fn;
    c->body_ud = ud;
    if (c->state == C_ACTIVE && c->msg_done)
        fn(r, "", 0, true, ud); /* nothing was left to read */
    else if (c->state == C_BODY)
        arm(c, conf_now()->server.body_timeout_s * 1000);
}

void sl_conn_body_pause(sl_req *r, bool pause)
{
    sl_conn *c = attached(r);
    if (!c || c->req != r || c->state != C_BODY || !c->body_fn || c->body_paused == pause)
        return;
    c->body_paused = pause;
    if (c->test)
        return;
    if (pause) { /* the client's bytes wait in the kernel: TCP pushes back */
        disarm(c);
        watch_close_only(c);
        return;
    }
    event_del(&c->rev);
    event_assign(&c->rev, conns.base, c->fd, EV_READ | EV_PERSIST, on_read, c);
    event_add(&c->rev, NULL);
    c->closed_only = false;
    arm(c, conf_now()->server.body_timeout_s * 1000);
}

/* ---- tests and fuzzing -------------------------------------------------- */

sl_conn *sl_conn_test_new(sl_conn_out_fn out)
{
    sl_conn *c = conn_new(-1);
    if (!c)
        return NULL;
    c->test = true;
    c->out = out;
    return c;
}

bool sl_conn_test_feed(sl_conn *c, const char *p, size_t n)
{
    do {
        if (c->state == C_CLOSED)
            break;
        size_t take = 0;
        if (n && c->state == C_HEAD && c->rlen == 0) {
            settle(c);
            take = n < RBUF_FIRST ? n : RBUF_FIRST;
            if (!adopt(c, p, take))
                break;
        } else if (n) {
            if (!make_room(c)) {
                if (c->state == C_ACTIVE)
                    return true; /* the test answers itself; the rest is dropped */
                refuse(c, c->req, 413, "request_too_large", "The request is too large.");
                break;
            }
            take = c->rcap - c->rlen < n ? c->rcap - c->rlen : n;
            memcpy(c->rbuf + c->rlen, p, take);
            c->rlen += take;
        }
        p += take;
        n -= take;
        do {
            c->kick = false;
            if (c->state == C_HEAD || c->state == C_BODY)
                process(c);
        } while (c->kick && c->state != C_CLOSED);
    } while (n);
    return c->state != C_CLOSED;
}

void sl_conn_test_eof(sl_conn *c)
{
    if (c->state == C_CLOSED || c->state == C_LINGER) {
        conn_free(c);
        return;
    }
    gone(c);
}

size_t sl_conn_test_bufcap(const sl_conn *c)
{
    return c->rcap;
}
