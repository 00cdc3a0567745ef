/* curl_loop.c — libcurl multi on the libevent loop: the https / proxy / host-name
 * transport behind upstream.h (call.c splits; see upstream_transport.h).
 *
 * The classic socket-action pattern: curl tells us which sockets to watch
 * (socket_cb) and when to wake it (timer_cb); we tell curl what happened
 * (curl_multi_socket_action) and then collect finished transfers
 * (check_done). Our own per-call timer enforces first-byte and stream-idle
 * timeouts, which CURLOPT_TIMEOUT_MS cannot express for streams.
 *
 * Per-transfer cost (PITFALLS: 86k -> 65k instructions): pooled easy handles
 * keep the options that never vary (set once, no curl_easy_reset); URLs
 * given as base + path are parsed once into a CURLU kept for the process;
 * fixed header lists are built once per (owner, key) and kept, and the one
 * varying line (the request id) is a node inside the call chained in front;
 * proxy lookup is off unless a proxy variable is set; socket contexts and
 * their events are reused from a free list. */
#include "sluice/upstream.h"
#include "sluice/upstream_transport.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "sluice/curl_api.h"
#include "sluice/log.h"

struct sl_call {
    sl_transport transport; /* SL_TRANSPORT_CURL: first, read by call.c */
    CURL *easy;
    const sl_call_hooks *hooks;
    void *ud;
    struct event *timer;        /* first-byte, then idle */
    struct event *reap;         /* deferred cleanup after cancel */
    struct curl_slist *headers; /* owned (NULL when the fixed list is borrowed) */
    struct curl_slist id_node;  /* the varying header line, in front of the fixed list */
    char id_line[128];
    struct curl_slist trace_nodes[2]; /* traceparent, tracestate (borrowed lines) */
    int first_byte_ms;
    int idle_ms;
    int status;
    int sock_errno; /* why our open_socket failed: sluice's own shortage, not the provider */
    bool got_head;
    bool paused;      /* on_data asked to wait: curl holds the bytes */
    bool send_paused; /* on_read had nothing yet: the upload waits */
    bool custom;      /* method or upload options beyond the plain call: reset on release */
    bool in_multi;
    bool cancelled;
    bool finished; /* on_done delivered (or about to be) */
    char retry_after[64];
    char content_type[96];
    char errbuf[CURL_ERROR_SIZE];
};

static struct {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    CURL *pool[64];
    int n_pool;
    size_t inflight;
    int in_curl; /* >0 while curl is on the stack: cancel must defer */
    uint64_t calls_total;
    bool no_proxy; /* no proxy variable in the environment: CURLOPT_PROXY "" */
    bool global;   /* curl_global_init ran (sl_upstream_need_curl) */
} up;

typedef struct sock_ctx {
    struct event *ev; /* allocated once, re-assigned for each socket */
    short kind;       /* what ev waits for now */
    struct sock_ctx *next_free;
} sock_ctx;

enum { MAX_FREE_SOCKS = 1024, MAX_INTERNED = 64 };

static struct {
    sock_ctx *free_socks;
    int n_free_socks;
    struct {
        char *url; /* base + path */
        CURLU *u;
    } urls[MAX_INTERNED];
    int n_urls;
    struct {
        const void *owner;
        char *key;
        struct curl_slist *list;
    } header_sets[MAX_INTERNED];
    int n_header_sets;
} reuse;

static void check_done(void);

/* ---- curl -> libevent ------------------------------------------------- */

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(arg);
    sl_loop_worked();
    int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    up.in_curl++;
    sl_curl.multi_socket_action(up.multi, fd, flags, &running);
    up.in_curl--;
    check_done();
}

static void on_multi_timer(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    SL_UNUSED(arg);
    int running;
    up.in_curl++;
    sl_curl.multi_socket_action(up.multi, CURL_SOCKET_TIMEOUT, 0, &running);
    up.in_curl--;
    check_done();
}

/* A socket context from the free list (its event allocated once, assigned
 * per socket), or a new one. */
static sock_ctx *sock_get(void)
{
    sock_ctx *ctx = reuse.free_socks;
    if (ctx) {
        reuse.free_socks = ctx->next_free;
        reuse.n_free_socks--;
        return ctx;
    }
    if (!(ctx = calloc(1, sizeof(*ctx))))
        return NULL;
    if (!(ctx->ev = event_new(up.base, -1, 0, on_socket_event, NULL))) {
        free(ctx);
        return NULL;
    }
    return ctx;
}

static void sock_put(sock_ctx *ctx)
{
    event_del(ctx->ev);
    ctx->kind = 0;
    if (reuse.n_free_socks >= MAX_FREE_SOCKS) {
        event_free(ctx->ev);
        free(ctx);
        return;
    }
    ctx->next_free = reuse.free_socks;
    reuse.free_socks = ctx;
    reuse.n_free_socks++;
}

static int socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
    SL_UNUSED(e);
    SL_UNUSED(userp);
    sock_ctx *ctx = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (ctx) {
            sl_curl.multi_assign(up.multi, s, NULL);
            sock_put(ctx);
        }
        return 0;
    }
    short kind =
        EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (!ctx) {
        if (!(ctx = sock_get()))
            return -1;
        sl_curl.multi_assign(up.multi, s, ctx);
    } else if (ctx->kind == kind) {
        return 0; /* already waiting for exactly that */
    } else {
        event_del(ctx->ev);
    }
    event_assign(ctx->ev, up.base, s, kind, on_socket_event, NULL);
    ctx->kind = kind;
    event_add(ctx->ev, NULL);
    return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    SL_UNUSED(m);
    SL_UNUSED(userp);
    if (timeout_ms < 0) {
        evtimer_del(up.timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(up.timer, &tv);
    return 0;
}

/* ---- per-call plumbing ------------------------------------------------- */

static void arm_timer(sl_call *c, int ms)
{
    if (ms <= 0) {
        evtimer_del(c->timer);
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

/* Undoes what a pass-through call set beyond the common options. */
static void reset_custom(CURL *e)
{
    sl_curl.easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
    sl_curl.easy_setopt(e, CURLOPT_NOBODY, 0L);
    sl_curl.easy_setopt(e, CURLOPT_READFUNCTION, NULL);
    sl_curl.easy_setopt(e, CURLOPT_READDATA, NULL);
    sl_curl.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
    sl_curl.easy_setopt(e, CURLOPT_HTTPGET, 1L);
}

static void release_easy(CURL *e, bool custom)
{
    if (custom)
        reset_custom(e);
    if (up.n_pool < (int)SL_ARRAY_LEN(up.pool)) {
        sl_curl.easy_setopt(e, CURLOPT_PRIVATE, NULL);
        sl_curl.easy_setopt(e, CURLOPT_ERRORBUFFER, NULL); /* the call's buffer goes with it */
        up.pool[up.n_pool++] = e;
    } else {
        sl_curl.easy_cleanup(e);
    }
}

static void destroy(sl_call *c)
{
    if (c->in_multi) {
        sl_curl.multi_remove_handle(up.multi, c->easy); /* closes an unfinished connection */
        c->in_multi = false;
        up.inflight--;
    }
    if (c->paused || c->send_paused) /* curl may still hold bytes for it: not for the next call */
        sl_curl.easy_cleanup(c->easy);
    else
        release_easy(c->easy, c->custom);
    sl_header_list_free(c->headers);
    event_free(c->timer);
    event_free(c->reap);
    free(c);
}

static void finish(sl_call *c, int rc, const char *detail)
{
    if (c->finished)
        return;
    c->finished = true;
    evtimer_del(c->timer);
    if (c->in_multi) {
        sl_curl.multi_remove_handle(up.multi, c->easy);
        c->in_multi = false;
        up.inflight--;
    }
    if (!c->cancelled)
        c->hooks->on_done(c->ud, c, rc, detail);
    destroy(c);
}

static void on_call_timer(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    sl_call *c = arg;
    finish(c, SL_ETIMEDOUT,
           c->got_head ? "upstream stream idle timeout" : "upstream first-byte timeout");
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    sl_call *c = arg;
    if (!c->finished) {
        c->finished = true;
        destroy(c);
    }
}

/* Hands one "Name: value" line to on_header, both trimmed. */
static void relay_header(sl_call *c, const char *p, size_t len)
{
    const char *colon = memchr(p, ':', len);
    if (!colon || colon == p)
        return;
    const char *v = colon + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    c->hooks->on_header(c->ud, c, (sl_str){p, (size_t)(colon - p)}, (sl_str){v, (size_t)(end - v)});
}

static size_t header_cb(char *p, size_t size, size_t n, void *ud)
{
    sl_call *c = ud;
    size_t len = size * n;
    if (c->cancelled)
        return 0;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        const char *sp = memchr(p, ' ', len);
        c->status = sp ? atoi(sp + 1) : 0;
        c->retry_after[0] = c->content_type[0] = '\0';
        if (!c->got_head && c->idle_ms)
            arm_timer(c, c->idle_ms); /* the first byte arrived */
        else if (!c->got_head)
            evtimer_del(c->timer);
        return len;
    }
    if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
        if (c->status >= 200 && !c->got_head) {
            c->got_head = true;
            if (c->hooks->on_status)
                c->hooks->on_status(c->ud, c, c->status);
        }
        return len;
    }
    if (c->hooks->on_header && c->status >= 200)
        relay_header(c, p, len);
    static const struct {
        const char *name;
        size_t off;
        size_t cap;
    } keep[] = {
        {"retry-after:", offsetof(sl_call, retry_after), sizeof(((sl_call *)0)->retry_after)},
        {"content-type:", offsetof(sl_call, content_type), sizeof(((sl_call *)0)->content_type)},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(keep); i++) {
        size_t nl = strlen(keep[i].name);
        if (len > nl && strncasecmp(p, keep[i].name, nl) == 0) {
            const char *v = p + nl, *end = p + len;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
                end--;
            size_t vl = SL_MIN((size_t)(end - v), keep[i].cap - 1);
            char *dst = (char *)c + keep[i].off;
            memcpy(dst, v, vl);
            dst[vl] = '\0';
        }
    }
    return len;
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
    sl_call *c = ud;
    size_t len = size * n;
    if (c->cancelled || c->finished)
        return 0;
    if (c->idle_ms)
        arm_timer(c, c->idle_ms);
    int rc = c->hooks->on_data(c->ud, c, p, len);
    if (rc == SL_CALL_PAUSE) { /* a slow reader: the upstream waits, unbilled time is not idle */
        c->paused = true;
        evtimer_del(c->timer);
        return CURL_WRITEFUNC_PAUSE;
    }
    if (rc != 0)
        return 0; /* abort: curl ends the transfer with a write error */
    return len;
}

/* A streamed upload: the body as the consumer has it. Time spent waiting for
 * it is not the provider's silence: the timer stops while paused and each
 * piece sent restarts the first-byte wait. */
static size_t read_cb(char *p, size_t size, size_t n, void *ud)
{
    sl_call *c = ud;
    if (c->cancelled || c->finished)
        return CURL_READFUNC_ABORT;
    size_t got = 0;
    int rc = c->hooks->on_read(c->ud, c, p, size * n, &got);
    if (rc == SL_CALL_PAUSE) {
        c->send_paused = true;
        evtimer_del(c->timer);
        return CURL_READFUNC_PAUSE;
    }
    if (rc != 0)
        return CURL_READFUNC_ABORT;
    if (!c->got_head)
        arm_timer(c, c->first_byte_ms);
    return got;
}

/* curl's socket, opened here so that a failure's errno is ours to read
 * (curl reports it only as "could not connect"). */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    SL_UNUSED(purpose);
    sl_call *c = ud;
    curl_socket_t s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (s == CURL_SOCKET_BAD)
        c->sock_errno = errno;
    return s;
}

/* Errors that are this process's or this host's, not the provider's. */
static bool local_errno(long e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM || e == EADDRNOTAVAIL;
}

/* A failed transfer that says nothing about the provider: sluice ran out of
 * descriptors, memory or local ports. Fills errbuf with why. */
static bool local_failure(sl_call *c, CURLcode res)
{
    long os_errno = 0;
    if (!c->sock_errno && (res == CURLE_COULDNT_CONNECT || res == CURLE_FAILED_INIT))
        sl_curl.easy_getinfo(c->easy, CURLINFO_OS_ERRNO, &os_errno);
    long e = c->sock_errno ? c->sock_errno : os_errno;
    if (local_errno(e)) {
        snprintf(c->errbuf, sizeof c->errbuf, "no local socket for the upstream call: %s",
                 strerror((int)e));
        return true;
    }
    if (res == CURLE_OUT_OF_MEMORY) {
        snprintf(c->errbuf, sizeof c->errbuf, "out of memory for the upstream call");
        return true;
    }
    return false;
}

static void check_done(void)
{
    CURLMsg *msg;
    int left;
    while ((msg = sl_curl.multi_info_read(up.multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        /* Copy before removal: msg is invalid afterwards. */
        CURL *e = msg->easy_handle;
        CURLcode res = msg->data.result;
        sl_call *c = NULL;
        sl_curl.easy_getinfo(e, CURLINFO_PRIVATE, (char **)&c);
        if (!c)
            continue;
        if (c->cancelled) {
            finish(c, SL_EIO, "cancelled");
            continue;
        }
        if (res == CURLE_OK) {
            if (!c->got_head) { /* e.g. a body-less answer: still report the status */
                long code = 0;
                sl_curl.easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
                c->status = (int)code;
                c->got_head = true;
                if (c->hooks->on_status)
                    c->hooks->on_status(c->ud, c, c->status);
            }
            finish(c, SL_OK, NULL);
        } else if (res == CURLE_OPERATION_TIMEDOUT) {
            finish(c, SL_ETIMEDOUT,
                   c->got_head ? "upstream total timeout" : "upstream connect timeout");
        } else if (local_failure(c, res)) {
            finish(c, SL_ENOMEM, c->errbuf);
        } else {
            finish(c, SL_EIO, c->errbuf[0] ? c->errbuf : sl_curl.easy_strerror(res));
        }
    }
}

/* ---- public ------------------------------------------------------------ */

/* libcurl, made ready on the first call that needs it (issue 18, PSS idle):
 * loading it maps its dependency tree (curl_api.h), and curl_global_init
 * initialises OpenSSL whatever flags it is given (libcurl 7.57+), which
 * touches ~2 MiB more: an idle instance, or one whose upstreams the native
 * client serves, pays neither. The load itself is usually done already, at
 * start or reload (sl_upstream_prepare), so that it does not block the loop.
 * Single-threaded (each worker is a process), so no lock. */
int sl_upstream_need_curl(void)
{
    if (up.multi)
        return SL_OK;
    if (!up.base)
        return SL_EINVAL; /* sl_upstream_init has not run */
    char why[256];
    if (sl_curl_load(why, sizeof why) != SL_OK) {
        static bool said; /* once: every such call fails the same way */
        if (!said)
            sl_err("upstream: %s (https, host names and proxies need libcurl)", why);
        said = true;
        return SL_EIO;
    }
    if (!up.global && sl_curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return SL_EIO;
    up.global = true;
    up.multi = sl_curl.multi_init();
    if (!up.multi)
        return SL_ENOMEM;
    sl_curl.multi_setopt(up.multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    sl_curl.multi_setopt(up.multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    sl_curl.multi_setopt(up.multi, CURLMOPT_MAXCONNECTS, 1024L);
    return SL_OK;
}

bool sl_upstream_ready(void)
{
    return up.multi != NULL;
}

int sl_curl_init(struct event_base *base)
{
    up.base = base;
    up.timer = evtimer_new(base, on_multi_timer, NULL);
    if (!up.timer)
        return SL_ENOMEM;
    up.no_proxy = !sl_upstream_proxy_in_env(); /* set: curl keeps honouring it */
    return SL_OK;
}

void sl_curl_shutdown(void)
{
    if (up.multi) {
        for (int i = 0; i < up.n_pool; i++)
            sl_curl.easy_cleanup(up.pool[i]);
        up.n_pool = 0;
        sl_curl.multi_cleanup(up.multi);
        up.multi = NULL;
    }
    while (reuse.free_socks) {
        sock_ctx *next = reuse.free_socks->next_free;
        event_free(reuse.free_socks->ev);
        free(reuse.free_socks);
        reuse.free_socks = next;
    }
    for (int i = 0; i < reuse.n_urls; i++) {
        free(reuse.urls[i].url);
        sl_curl.url_cleanup(reuse.urls[i].u);
    }
    for (int i = 0; i < reuse.n_header_sets; i++) {
        free(reuse.header_sets[i].key);
        sl_header_list_free(reuse.header_sets[i].list);
    }
    memset(&reuse, 0, sizeof reuse);
    if (up.timer)
        event_free(up.timer);
    up.timer = NULL;
    if (up.global)
        sl_curl.global_cleanup();
    up.global = false;
}

/* The options no call changes: set once, when the handle is made. */
static CURL *new_easy(void)
{
    CURL *e = sl_curl.easy_init();
    if (!e)
        return NULL;
    sl_curl.easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    sl_curl.easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    sl_curl.easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    sl_curl.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    sl_curl.easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    sl_curl.easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    sl_curl.easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    sl_curl.easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    sl_curl.easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL); /* pass bodies through as sent */
    if (up.no_proxy) { /* no environment lookups per transfer (proxy, then no_proxy) */
        sl_curl.easy_setopt(e, CURLOPT_PROXY, "");
        sl_curl.easy_setopt(e, CURLOPT_NOPROXY, "");
    }
    return e;
}

static CURL *take_easy(void)
{
    return up.n_pool > 0 ? up.pool[--up.n_pool] : new_easy();
}

/* The parsed URL for base + path, made once (NULL: too many, or it does not
 * parse: the caller sets the string instead). */
static CURLU *interned_url(const char *base, const char *path)
{
    size_t bl = strlen(base), pl = strlen(path);
    for (int i = 0; i < reuse.n_urls; i++) {
        const char *u = reuse.urls[i].url;
        /* strncmp/strcmp stop at the shorter string: memcmp read past a
         * shorter interned URL (an /embeddings URL asked for a chat path) */
        if (strncmp(u, base, bl) == 0 && strcmp(u + bl, path) == 0)
            return reuse.urls[i].u;
    }
    if (reuse.n_urls >= MAX_INTERNED)
        return NULL;
    char *url = malloc(bl + pl + 1);
    CURLU *u = url ? sl_curl.url() : NULL;
    if (u) {
        memcpy(url, base, bl);
        memcpy(url + bl, path, pl + 1);
    }
    if (!u || sl_curl.url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        sl_curl.url_cleanup(u);
        free(url);
        return NULL;
    }
    reuse.urls[reuse.n_urls].url = url;
    reuse.urls[reuse.n_urls++].u = u;
    return u;
}

const struct curl_slist *sl_upstream_headers(const void *owner, const char *key,
                                             struct curl_slist *(*build)(const void *owner,
                                                                         const char *key))
{
    for (int i = 0; i < reuse.n_header_sets; i++) {
        if (reuse.header_sets[i].owner == owner && strcmp(reuse.header_sets[i].key, key) == 0)
            return reuse.header_sets[i].list;
    }
    if (reuse.n_header_sets >= MAX_INTERNED)
        return NULL;
    char *k = strdup(key);
    struct curl_slist *list = k ? build(owner, key) : NULL;
    if (!list) {
        free(k);
        return NULL;
    }
    reuse.header_sets[reuse.n_header_sets].owner = owner;
    reuse.header_sets[reuse.n_header_sets].key = k;
    reuse.header_sets[reuse.n_header_sets++].list = list;
    return list;
}

/* This call's header list: the owned one, or the borrowed fixed list, with
 * the varying line chained in front. */
static void call_headers(sl_call *c, const sl_call_opts *o, struct curl_slist **out)
{
    *out = o->fixed_headers ? (struct curl_slist *)o->fixed_headers : c->headers;
    if (o->extra_header) {
        size_t n = SL_MIN(strlen(o->extra_header), sizeof c->id_line - 1);
        memcpy(c->id_line, o->extra_header, n);
        c->id_line[n] = '\0';
        c->id_node = (struct curl_slist){c->id_line, *out};
        *out = &c->id_node;
    }
    const char *trace[2] = {o->traceparent, o->tracestate};
    for (int i = 0; i < 2; i++) {
        if (trace[i]) {
            c->trace_nodes[i] = (struct curl_slist){(char *)trace[i], *out};
            *out = &c->trace_nodes[i];
        }
    }
}

/* A body read piece by piece through on_read, sent as a POST (any other
 * method is named by CUSTOMREQUEST): with its length, else chunked. */
static void setup_upload(CURL *e, sl_call *c, const sl_call_opts *o)
{
    c->custom = true;
    sl_curl.easy_setopt(e, CURLOPT_POST, 1L);
    sl_curl.easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
    sl_curl.easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
    sl_curl.easy_setopt(e, CURLOPT_READDATA, c);
    sl_curl.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->upload_len);
}

/* What varies per call; every option set here is set on every call, so
 * nothing of a previous call on the pooled handle survives. */
static int setup_easy(CURL *e, sl_call *c, const sl_call_opts *o)
{
    CURLU *u = o->url_path ? interned_url(o->url, o->url_path) : NULL;
    sl_curl.easy_setopt(e, CURLOPT_CURLU, u);
    if (!u && o->url_path) {
        char *url = malloc(strlen(o->url) + strlen(o->url_path) + 1);
        if (!url)
            return SL_ENOMEM;
        strcpy(url, o->url);
        strcat(url, o->url_path);
        sl_curl.easy_setopt(e, CURLOPT_URL, url); /* curl copies it */
        free(url);
    } else if (!u) {
        sl_curl.easy_setopt(e, CURLOPT_URL, o->url);
    }
    struct curl_slist *headers;
    call_headers(c, o, &headers);
    sl_curl.easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    sl_curl.easy_setopt(e, CURLOPT_PRIVATE, c);
    sl_curl.easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    sl_curl.easy_setopt(e, CURLOPT_HEADERDATA, c);
    sl_curl.easy_setopt(e, CURLOPT_WRITEDATA, c);
    sl_curl.easy_setopt(e, CURLOPT_OPENSOCKETDATA, c);
    /* the receive buffer is allocated per transfer, freed when it ends */
    sl_curl.easy_setopt(e, CURLOPT_BUFFERSIZE, o->recv_buffer > 0 ? (long)o->recv_buffer : 16384L);
    sl_curl.easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_ms > 0 ? (long)o->connect_ms : 0L);
    sl_curl.easy_setopt(e, CURLOPT_TIMEOUT_MS, o->total_ms > 0 ? (long)o->total_ms : 0L);
    if (o->upload) {
        setup_upload(e, c, o);
    } else if (o->body) {
        sl_curl.easy_setopt(e, CURLOPT_POST, 1L);
        sl_curl.easy_setopt(e, CURLOPT_POSTFIELDS, o->body);
        sl_curl.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
    } else {
        /* POSTFIELDS makes the method POST, so it is undone first */
        sl_curl.easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
        sl_curl.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
        sl_curl.easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    bool head = o->method && strcmp(o->method, "HEAD") == 0;
    bool custom =
        !head && o->method && strcmp(o->method, "POST") != 0 && strcmp(o->method, "GET") != 0;
    sl_curl.easy_setopt(e, CURLOPT_CUSTOMREQUEST, custom ? o->method : NULL);
    if (head) { /* NOBODY and the read hook are a pass-through's: reset on release */
        c->custom = true;
        sl_curl.easy_setopt(e, CURLOPT_NOBODY, 1L);
    }
    return SL_OK;
}

sl_call *sl_curl_start(const sl_call_opts *o, const sl_call_hooks *h, void *ud, int *err)
{
    *err = SL_OK;
    int ready = sl_upstream_need_curl();
    if (ready != SL_OK) {
        sl_header_list_free(o->headers);
        *err = ready == SL_EIO ? SL_EIO : SL_ENOMEM;
        return NULL;
    }
    sl_call *c = calloc(1, sizeof(*c));
    CURL *e = c ? take_easy() : NULL;
    if (!e) {
        sl_header_list_free(o->headers);
        free(c);
        *err = SL_ENOMEM;
        return NULL;
    }
    c->transport = SL_TRANSPORT_CURL;
    c->easy = e;
    c->headers = o->headers;
    c->hooks = h;
    c->ud = ud;
    c->first_byte_ms = o->first_byte_ms;
    c->idle_ms = o->idle_ms;
    c->timer = evtimer_new(up.base, on_call_timer, c);
    c->reap = event_new(up.base, -1, 0, on_reap, c);
    if (!c->timer || !c->reap || setup_easy(e, c, o) != SL_OK ||
        sl_curl.multi_add_handle(up.multi, e) != CURLM_OK) {
        c->finished = true;
        destroy(c);
        *err = SL_ENOMEM;
        return NULL;
    }
    c->in_multi = true;
    up.inflight++;
    up.calls_total++;
    arm_timer(c, c->first_byte_ms);
    return c;
}

/* curl's pause state is one mask for both directions: keep the other one. */
static void set_pause(sl_call *c)
{
    int mask = (c->paused ? CURLPAUSE_RECV : 0) | (c->send_paused ? CURLPAUSE_SEND : 0);
    up.in_curl++; /* the held bytes may be written (and a cancel asked) from in here */
    sl_curl.easy_pause(c->easy, mask);
    up.in_curl--;
}

void sl_curl_resume(sl_call *c)
{
    if (!c->paused || c->cancelled || c->finished)
        return;
    c->paused = false;
    if (c->idle_ms)
        arm_timer(c, c->idle_ms);
    set_pause(c);
}

void sl_curl_resume_upload(sl_call *c)
{
    if (!c->send_paused || c->cancelled || c->finished)
        return;
    c->send_paused = false;
    if (!c->paused)
        arm_timer(c, c->got_head ? c->idle_ms : c->first_byte_ms);
    set_pause(c);
}

void sl_curl_cancel(sl_call *c)
{
    if (!c || c->cancelled)
        return;
    c->cancelled = true;
    if (c->finished)
        return;
    if (up.in_curl) {
        event_active(c->reap, 0, 0); /* never remove a handle on curl's stack */
        return;
    }
    c->finished = true;
    destroy(c);
}

int sl_curl_status(const sl_call *c)
{
    return c->status;
}
const char *sl_curl_retry_after(const sl_call *c)
{
    return c->retry_after[0] ? c->retry_after : NULL;
}
const char *sl_curl_content_type(const sl_call *c)
{
    return c->content_type[0] ? c->content_type : NULL;
}
size_t sl_curl_inflight(void)
{
    return up.inflight;
}
uint64_t sl_curl_calls_total(void)
{
    return up.calls_total;
}
