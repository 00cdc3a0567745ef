/* conn.c — every client connection, from accept to close (see conn.h).
 *
 * How we see connections evhttp keeps to itself: evhttp asks us (bevcb) for
 * the bufferevent of each accepted socket. We create it, hold a reference and
 * queue it; later in the same loop iteration, before the socket can be read,
 * we adopt it: by then evhttp has wired the bufferevent to its connection
 * (its callback argument), so we can set the connection's close callback, a
 * deadline timer and an output-buffer callback. The reference protects us if
 * evhttp freed the connection meanwhile (it only does when out of memory): a
 * freed bufferevent has its callbacks cleared, and we skip it. */
#include "sluice/conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "sluice/log.h"
#include "sluice/pipeline.h"
#include "sluice/server.h"

enum {
    LINGER_MS = 1000,      /* after our own refusal, how long we read and drop */
    ACCEPT_PAUSE_MS = 100, /* after EMFILE and friends */
    DRAIN_MAX = 64 * 1024, /* bytes read and dropped before a refusal is sent */
};

typedef struct sl_conn {
    struct evhttp_connection *evcon;
    struct bufferevent *bev;
    evutil_socket_t fd;
    sl_req *active;           /* the request being answered, if any */
    struct event *deadline;   /* a whole request must arrive before it fires */
    struct event *linger;     /* after our refusal: read and drop until EOF */
    sl_internal_sink refusal; /* our own answer (503, 408, 400), sent raw */
    bool refusing;
    /* the request head being read (see scan_head) */
    bool in_body, pending_cr;
    unsigned head_lines;
    size_t line_len;
} sl_conn;

static struct {
    struct event_base *base;
    struct evhttp *http;
    struct evconnlistener *listener;
    struct event *adopt_ev, *resume_accept_ev;
    struct bufferevent **fresh; /* created for evhttp, not adopted yet */
    size_t n_fresh, cap_fresh;
    sl_conn **by_fd;
    size_t by_fd_len;
    size_t open;
    sl_conn_gone_fn gone;
} conns;

/* ---- logging refusals -------------------------------------------------- */

static void log_only_end(sl_sink *s, sl_req *r)
{
    SL_UNUSED(s);
    SL_UNUSED(r);
}
static void log_only_head(sl_sink *s, sl_req *r, int status, bool sse)
{
    SL_UNUSED(s), SL_UNUSED(r), SL_UNUSED(status), SL_UNUSED(sse);
}
static void log_only_data(sl_sink *s, sl_req *r, const char *p, size_t n)
{
    SL_UNUSED(s), SL_UNUSED(r), SL_UNUSED(p), SL_UNUSED(n);
}
static const sl_sink_ops log_only_ops = {log_only_head, log_only_data, log_only_end};
static sl_sink log_only_sink = {.ops = &log_only_ops};

/* Runs a refusal through the pipeline's completion, so that it gets its
 * access-log line and metrics like any answer; the sink decides where the
 * bytes go. */
static void complete_refusal(sl_sink *sink, int status, const char *code, const char *msg)
{
    sl_req *r = sl_req_new(conns.base, sl_server_config());
    if (!r)
        return;
    sl_req_make_id(r->id);
    r->method = "-";
    r->path = "-";
    r->sink = sink;
    sl_req_error(r, status, "invalid_request_error", code, NULL, msg);
    sl_req_finish(r);
}

/* ---- closing ------------------------------------------------------------ */

static void on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);

static void conn_free(sl_conn *c)
{
    if (c->fd >= 0 && (size_t)c->fd < conns.by_fd_len && conns.by_fd[c->fd] == c)
        conns.by_fd[c->fd] = NULL;
    if (c->deadline)
        event_free(c->deadline);
    if (c->linger)
        event_free(c->linger);
    sl_internal_sink_free(&c->refusal);
    conns.open--;
    free(c);
}

/* evhttp closes the connection (any reason): the request on it, if any, has
 * lost its client. */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
    SL_UNUSED(evcon);
    sl_conn *c = arg;
    sl_req *r = c->active;
    c->active = NULL;
    evhttp_connection_set_closecb(c->evcon, NULL, NULL);
    evbuffer_remove_cb(bufferevent_get_output(c->bev), on_output, c);
    evbuffer_remove_cb(bufferevent_get_input(c->bev), on_input, c);
    conn_free(c);
    if (r)
        conns.gone(r);
}

static void close_now(sl_conn *c)
{
    evhttp_connection_free(c->evcon); /* calls on_close */
}

static void on_linger_read(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(what);
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        ;
    if (n == 0 || (errno != EAGAIN && errno != EINTR))
        close_now(arg);
}

static const char *reason(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    default: return "Service Unavailable";
    }
}

/* The answer of our own refusal: written straight to the socket (evhttp is
 * not reading this connection any more), then a lingering close, so that a
 * client whose request bytes are still arriving reads our answer instead of
 * a reset. */
static void on_refusal_done(void *ud, sl_req *r, int status, sl_str body)
{
    sl_conn *c = ud;
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "x-request-id: %s\r\nConnection: close\r\n\r\n",
                     status, reason(status), body.len, r->id);
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)body.p, body.len}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
    (void)sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL); /* best effort: we close anyway */
    shutdown(c->fd, SHUT_WR);
    c->linger = event_new(conns.base, c->fd, EV_READ | EV_PERSIST, on_linger_read, c);
    if (c->linger)
        event_add(c->linger, NULL);
    struct timeval tv = {LINGER_MS / 1000, (LINGER_MS % 1000) * 1000};
    event_add(c->deadline, &tv); /* on_deadline sees `refusing` and closes */
}

static void refuse(sl_conn *c, int status, const char *code, const char *msg)
{
    c->refusing = true;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    char buf[4096];
    size_t dropped = 0;
    ssize_t n;
    while (dropped < DRAIN_MAX && (n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        dropped += (size_t)n;
    sl_internal_sink_init(&c->refusal, 4096, on_refusal_done, c);
    complete_refusal(&c->refusal.base, status, code, msg);
}

/* ---- deadlines ---------------------------------------------------------- */

static void arm(sl_conn *c, int seconds)
{
    struct timeval tv = {seconds, 0};
    event_add(c->deadline, &tv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    sl_conn *c = arg;
    if (c->refusing)
        close_now(c); /* the linger is over */
    else if (!c->active)
        refuse(c, 408, "request_timeout", "The request did not arrive in time.");
    /* else: a request is being answered; its end re-arms the deadline */
}

/* ---- evhttp's own refusals ---------------------------------------------- */

/* Bytes evhttp adds to the output while no request of ours is on the
 * connection are its own answer to a request it refused: log it. */
static void on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    sl_conn *c = arg;
    if (c->active || c->refusing || info->n_added == 0)
        return;
    char line[13] = {0};
    struct evbuffer_ptr at;
    if (evbuffer_ptr_set(buf, &at, info->orig_size, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(buf, &at, line, 12) != 12 || memcmp(line, "HTTP/1.", 7) != 0)
        return;
    int status = atoi(line + 9);
    if (status >= 400)
        complete_refusal(&log_only_sink, status, "invalid_request",
                         "Refused by the HTTP parser (framing, size or syntax).");
}

/* ---- request heads evhttp accepts and we do not ---------------------------- */

/* evhttp takes a bare LF as a line end and a NUL as the end of a value, and
 * hides both from us; a proxy in front of sluice may read such a head
 * differently (request smuggling). So we look at the bytes of each request
 * head as they arrive (up to its blank line; bodies are not scanned, nor a
 * pipelined head that arrived in one read with the request before it): every
 * line must end in CRLF, with no CR or NUL inside. memchr keeps it to a few
 * vector scans per line. Returns false at the first bad byte. */
static bool scan_head(sl_conn *c, const char *p, size_t n)
{
    while (n && !c->in_body) {
        const char *nl = memchr(p, '\n', n);
        size_t seg = nl ? (size_t)(nl - p) : n; /* bytes before the LF */
        if (seg && memchr(p, '\0', seg))
            return false;
        const char *cr = seg ? memchr(p, '\r', seg) : NULL;
        if ((cr && cr != p + seg - 1) || (c->pending_cr && seg > 0))
            return false; /* a CR not followed by LF */
        if (!nl) {        /* the line goes on in the next read */
            c->line_len += seg - (cr ? 1 : 0);
            c->pending_cr = cr != NULL;
            return true;
        }
        if (!(cr || (seg == 0 && c->pending_cr)))
            return false; /* a bare LF */
        size_t content = c->line_len + seg - (cr ? 1 : 0);
        if (content == 0 && c->head_lines > 0)
            c->in_body = true; /* the blank line that ends the head */
        else if (content > 0)
            c->head_lines++;
        c->line_len = 0;
        c->pending_cr = false;
        p = nl + 1;
        n -= seg + 1;
    }
    return true;
}

static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    sl_conn *c = arg;
    if (info->n_added == 0 || c->refusing || c->in_body)
        return;
    struct evbuffer_ptr at;
    struct evbuffer_iovec v[16];
    if (evbuffer_ptr_set(buf, &at, info->orig_size, EVBUFFER_PTR_SET) != 0)
        return;
    int n = evbuffer_peek(buf, (ev_ssize_t)info->n_added, &at, v, 16);
    for (int i = 0; i < n && i < 16; i++) {
        if (scan_head(c, v[i].iov_base, v[i].iov_len))
            continue;
        evbuffer_drain(buf, evbuffer_get_length(buf)); /* evhttp must not parse it */
        refuse(c, 400, "invalid_header",
               "A request line or header holds NUL, a bare CR or a bare LF.");
        return;
    }
}

static void head_reset(sl_conn *c)
{
    c->in_body = c->pending_cr = false;
    c->head_lines = 0;
    c->line_len = 0;
}

/* ---- adoption ----------------------------------------------------------- */

static int ensure_slot(evutil_socket_t fd)
{
    if ((size_t)fd < conns.by_fd_len)
        return SL_OK;
    size_t n = conns.by_fd_len ? conns.by_fd_len : 1024;
    while (n <= (size_t)fd)
        n *= 2;
    sl_conn **p = realloc(conns.by_fd, n * sizeof(*p));
    if (!p)
        return SL_ENOMEM;
    memset(p + conns.by_fd_len, 0, (n - conns.by_fd_len) * sizeof(*p));
    conns.by_fd = p;
    conns.by_fd_len = n;
    return SL_OK;
}

static void adopt(struct bufferevent *bev, struct evhttp_connection *evcon, evutil_socket_t fd)
{
    sl_conn *c = calloc(1, sizeof(*c));
    if (!c || ensure_slot(fd) != SL_OK ||
        !(c->deadline = evtimer_new(conns.base, on_deadline, c))) {
        free(c);
        return; /* out of memory: served, but neither bounded nor timed */
    }
    c->evcon = evcon;
    c->bev = bev;
    c->fd = fd;
    sl_buf_init(&c->refusal.body, 0);
    conns.by_fd[fd] = c;
    conns.open++;
    evhttp_connection_set_closecb(evcon, on_close, c);
    evbuffer_add_cb(bufferevent_get_output(bev), on_output, c);
    evbuffer_add_cb(bufferevent_get_input(bev), on_input, c);
    const sl_config *conf = sl_server_config();
    if (conns.open > (size_t)conf->server.max_connections)
        refuse(c, 503, "too_many_connections", "The gateway is at its connection limit.");
    else
        arm(c, conf->server.header_timeout_s);
}

static void on_adopt(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd), SL_UNUSED(what), SL_UNUSED(arg);
    for (size_t i = 0; i < conns.n_fresh; i++) {
        struct bufferevent *bev = conns.fresh[i];
        void *evcon = NULL;
        bufferevent_getcb(bev, NULL, NULL, NULL, &evcon);
        evutil_socket_t s = bufferevent_getfd(bev);
        if (evcon && s >= 0)
            adopt(bev, evcon, s);
        bufferevent_decref(bev);
    }
    conns.n_fresh = 0;
}

static struct bufferevent *on_new_bufferevent(struct event_base *base, void *arg)
{
    SL_UNUSED(arg);
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return NULL;
    if (conns.n_fresh == conns.cap_fresh) {
        size_t n = conns.cap_fresh ? conns.cap_fresh * 2 : 64;
        struct bufferevent **p = realloc(conns.fresh, n * sizeof(*p));
        if (!p)
            return bev; /* untracked */
        conns.fresh = p;
        conns.cap_fresh = n;
    }
    bufferevent_incref(bev);
    conns.fresh[conns.n_fresh++] = bev;
    event_active(conns.adopt_ev, EV_TIMEOUT, 1);
    return bev;
}

/* ---- accept errors ------------------------------------------------------ */

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

int sl_conn_setup(struct event_base *base, struct evhttp *http, sl_conn_gone_fn gone)
{
    conns.base = base;
    conns.http = http;
    conns.gone = gone;
    conns.adopt_ev = event_new(base, -1, 0, on_adopt, NULL);
    conns.resume_accept_ev = evtimer_new(base, on_resume_accept, NULL);
    if (!conns.adopt_ev || !conns.resume_accept_ev)
        return SL_ENOMEM;
    evhttp_set_bevcb(http, on_new_bufferevent, NULL);
    return SL_OK;
}

void sl_conn_set_listener(struct evconnlistener *l)
{
    conns.listener = l;
    if (l)
        evconnlistener_set_error_cb(l, on_accept_error);
    else if (conns.resume_accept_ev)
        event_del(conns.resume_accept_ev);
}

static sl_conn *conn_of(struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    sl_conn *c = fd >= 0 && (size_t)fd < conns.by_fd_len ? conns.by_fd[fd] : NULL;
    return c && c->evcon == evcon ? c : NULL;
}

void sl_conn_request_begin(struct evhttp_connection *evcon, sl_req *r)
{
    sl_conn *c = conn_of(evcon);
    if (c)
        c->active = r;
}

void sl_conn_request_end(struct evhttp_connection *evcon)
{
    sl_conn *c = conn_of(evcon);
    if (!c)
        return;
    c->active = NULL;
    head_reset(c);
    const sl_config *conf = sl_server_config();
    arm(c, conf->server.idle_timeout_s + conf->server.header_timeout_s);
}

size_t sl_conn_open_count(void)
{
    return conns.open;
}

void sl_conn_shutdown(void)
{
    on_adopt(-1, 0, NULL); /* drop the references still queued */
    free(conns.fresh);
    free(conns.by_fd);
    if (conns.adopt_ev)
        event_free(conns.adopt_ev);
    if (conns.resume_accept_ev)
        event_free(conns.resume_accept_ev);
    memset(&conns, 0, sizeof conns);
}
