/* server.c — libevent's evhttp in front of the pipeline.
 *
 * One callback receives every request: it checks what evhttp 2.1 does not
 * (duplicate Content-Length), builds an sl_req, looks the path up in the
 * route table, and hands the request to the pipeline (LLM routes) or to an
 * operational handler. Every answer leaves through the client sink below,
 * which also notices a client that went away (close callback) and turns it
 * into a pipeline abort. */
#include "sluice/server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "sluice/auth.h"
#include "sluice/conn.h"
#include "sluice/dialects.h"
#include "sluice/log.h"
#include "sluice/pipeline.h"
#include "sluice/sla.h"
#include "sluice/triage.h"

static struct {
    struct event_base *base;
    struct evhttp *http;
    struct evconnlistener *listener;
    struct evhttp_bound_socket *bound;
    sl_config *conf;
    bool draining;
    uint64_t started_ms;
    struct evbuffer *chunk; /* reused for every streamed chunk */
    int worker;             /* index among the workers, 0 without */
} srv;

enum { M_GET = 1, M_POST = 2 };

/* One row per route. `path` is the route's template: it is also the `route`
 * label of the metrics (a client can mint paths, not templates), and a
 * prefix row (`prefix`) serves `path` + a resource name. `auth` is what the
 * caller must present (sl_auth); on the LLM routes the pipeline's auth stage
 * checks it, on the others the server does before the handler runs. */
typedef struct route {
    const char *path;
    const char *label; /* the metric label; NULL: path */
    unsigned methods;
    bool llm;
    sl_api api;
    void (*handler)(sl_req *r);
    bool prefix;
    sl_auth_level auth;
} route;

/* The fields of the common kinds of rows (each row is braced where used). */
#define LLM(p, a)       .path = p, .methods = M_POST, .llm = true, .api = a, .auth = SL_AUTH_CLIENT
#define OPS(p, h)       .path = p, .methods = M_GET, .handler = h, .auth = SL_AUTH_OPEN
#define SVC(p, m, h, l) .path = p, .methods = m, .handler = h, .auth = l

static const route routes[] = {
    {LLM("/v1/chat/completions", SL_API_CHAT)},
    {LLM("/v1/completions", SL_API_COMPLETIONS)},
    {LLM("/v1/embeddings", SL_API_EMBEDDINGS)},
    {LLM("/v1/messages", SL_API_MESSAGES)},
    {OPS("/v1/models", sl_ops_models)},
    {OPS("/health/live", sl_ops_live)},
    {OPS("/health/ready", sl_ops_ready)},
    {OPS("/health", sl_ops_health)},
    {OPS("/metrics", sl_ops_metrics)},
    {SVC("/stats", M_GET, sl_ops_stats, SL_AUTH_ADMIN)},
    {OPS("/ui", sl_ops_ui)}, /* the page asks for the admin key; its data needs it */
    {SVC("/sla/tickets", M_POST, sl_sla_ingest, SL_AUTH_CLIENT)},
    {SVC("/sla/tickets/", M_GET, sl_sla_get, SL_AUTH_CLIENT), .prefix = true,
     .label = "/sla/tickets/{id}"},
    {SVC("/sla/dashboard", M_GET, sl_sla_dashboard, SL_AUTH_CLIENT_OR_ADMIN)},
    {SVC("/sla/alerts/dead", M_GET, sl_sla_dead, SL_AUTH_CLIENT)},
    {SVC("/triage/classify", M_POST, sl_triage_classify, SL_AUTH_CLIENT)},
    {SVC("/triage/respond", M_POST, sl_triage_respond, SL_AUTH_CLIENT)},
};

#undef LLM
#undef OPS
#undef SVC

/* ---- the client sink --------------------------------------------------- */

/* The Date header, formatted once a second: evhttp would format it for every
 * answer (evutil_date_rfc1123: ~3k instructions, 4% of a cache hit), and it
 * adds its own only when the header is missing. */
static const char *http_date(void)
{
    static char text[40];
    static int64_t at_s = -1;
    int64_t now_s = sl_wall_ms() / 1000;
    if (now_s != at_s) {
        time_t t = (time_t)now_s;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        at_s = now_s;
    }
    return text;
}

static void add_common_headers(sl_req *r, struct evkeyvalq *out, bool sse)
{
    evhttp_add_header(out, "Date", http_date());
    if (sse) {
        evhttp_add_header(out, "Content-Type", "text/event-stream");
        evhttp_add_header(out, "Cache-Control", "no-cache");
    } else {
        evhttp_add_header(out, "Content-Type",
                          r->content_type ? r->content_type : "application/json");
    }
    evhttp_add_header(out, "x-request-id", r->id);
    const char *cache = NULL;
    switch (r->cache) {
    case SL_CACHE_HIT: cache = "hit"; break;
    case SL_CACHE_MISS: cache = "miss"; break;
    case SL_CACHE_COALESCED: cache = "coalesced"; break;
    case SL_CACHE_BYPASS: cache = "bypass"; break;
    case SL_CACHE_SEMANTIC: cache = "semantic"; break;
    default: break;
    }
    if (cache)
        evhttp_add_header(out, "x-sluice-cache", cache);
    for (int i = 0; i < r->n_headers; i++)
        evhttp_add_header(out, r->headers[i].name, r->headers[i].value);
}

static void stop_watch(sl_req *r)
{
    if (r->client_watch)
        event_free(r->client_watch);
    r->client_watch = NULL;
}

static void http_head(sl_sink *s, sl_req *r, int status, bool sse)
{
    SL_UNUSED(s);
    struct evhttp_request *req = r->owner;
    if (r->detached)
        return;
    add_common_headers(r, evhttp_request_get_output_headers(req), sse);
    if (sse)
        evhttp_send_reply_start(req, status, NULL);
}

static void http_data(sl_sink *s, sl_req *r, const char *p, size_t n)
{
    SL_UNUSED(s);
    struct evhttp_request *req = r->owner;
    if (r->detached)
        return;
    if (r->streaming) {
        evbuffer_add(srv.chunk, p, n);
        evhttp_send_reply_chunk(req, srv.chunk);
        evbuffer_drain(srv.chunk, evbuffer_get_length(srv.chunk));
    } else {
        evbuffer_add(evhttp_request_get_output_buffer(req), p, n);
    }
}

/* A detached request (its client left) is freed only with the sl_req: the
 * request body, which r->llm points into, lives in its input buffer. */
static void release_detached(sl_req *r)
{
    stop_watch(r);
    if (r->owner)
        evhttp_request_free(r->owner);
    r->owner = NULL;
}

static void http_end(sl_sink *s, sl_req *r)
{
    SL_UNUSED(s);
    struct evhttp_request *req = r->owner;
    stop_watch(r);
    if (!req)
        return;
    if (r->detached) {
        r->on_release = release_detached;
        return;
    }
    r->owner = NULL;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (r->streaming)
        evhttp_send_reply_end(req);
    else
        evhttp_send_reply(req, r->status, NULL, NULL);
    sl_conn_request_end(evcon);
}

static const sl_sink_ops http_ops = {.head = http_head, .data = http_data, .end = http_end};
static sl_sink http_sink = {.ops = &http_ops};

/* conn.c: the client hung up while r was being answered. */
static void on_client_gone(sl_req *r)
{
    if (r->completed)
        return;
    r->detached = true; /* evhttp took the request off the connection */
    stop_watch(r);
    sl_pipeline_abort(r);
}

/* evhttp 2.1 does not read from a connection while its request is being
 * answered, so a client that hangs up while we wait for the provider goes
 * unnoticed. We watch the socket ourselves: end of file (or an error) means
 * the client left; bytes mean a pipelined request, which we leave to evhttp. */
static void on_client_readable(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(what);
    sl_req *r = arg;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
        return; /* one-shot: pipelined data stops the watch */
    stop_watch(r);
    if (!r->completed)
        sl_pipeline_abort(r);
}

static void watch_client(sl_req *r, struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0)
        return;
    r->client_watch = event_new(srv.base, fd, EV_READ, on_client_readable, r);
    if (r->client_watch)
        event_add(r->client_watch, NULL);
}

/* ---- request intake ----------------------------------------------------- */

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    }
    return "OTHER";
}

/* x-request-id is echoed in a header: accept only a safe, bounded token. */
static bool valid_request_id(const char *v)
{
    size_t n = 0;
    for (; v[n]; n++) {
        unsigned char c = (unsigned char)v[n];
        if (n >= 63 || c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
            return false;
    }
    return n > 0;
}

enum { MAX_URI_BYTES = 8192, MAX_HEADER_COUNT = 100 };

static void answer_error(sl_req *r, int status, const char *code, const char *msg);

static bool has_control_byte(const char *v)
{
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return true;
    }
    return false;
}

/* What one pass over the request headers learns (the first of duplicates,
 * as evhttp_find_header would answer). */
typedef struct head_facts {
    int count, content_lengths;
    size_t bytes;
    bool control_byte;
    const char *request_id, *authorization, *api_key, *cache_control, *cache_ttl, *user, *cache_opt;
} head_facts;

static void keep_first(const char **slot, const char *v)
{
    if (!*slot)
        *slot = v;
}

static void scan_headers(struct evkeyvalq *in, head_facts *f)
{
    memset(f, 0, sizeof(*f));
    for (struct evkeyval *h = in->tqh_first; h; h = h->next.tqe_next) {
        size_t kl = strlen(h->key);
        f->count++;
        f->bytes += kl + strlen(h->value) + 4; /* "K: V\r\n" */
        f->control_byte = f->control_byte || has_control_byte(h->value);
        switch (kl) { /* the length picks the one name worth comparing */
        case 9:
            if (strcasecmp(h->key, "x-api-key") == 0)
                keep_first(&f->api_key, h->value);
            break;
        case 12:
            if (strcasecmp(h->key, "x-request-id") == 0)
                keep_first(&f->request_id, h->value);
            break;
        case 13:
            if (strcasecmp(h->key, "Authorization") == 0)
                keep_first(&f->authorization, h->value);
            else if (strcasecmp(h->key, "Cache-Control") == 0)
                keep_first(&f->cache_control, h->value);
            else if (strcasecmp(h->key, "x-sluice-user") == 0)
                keep_first(&f->user, h->value);
            break;
        case 14:
            f->content_lengths += strcasecmp(h->key, "Content-Length") == 0;
            if (strcasecmp(h->key, "x-sluice-cache") == 0)
                keep_first(&f->cache_opt, h->value);
            break;
        case 18:
            if (strcasecmp(h->key, "x-sluice-cache-ttl") == 0)
                keep_first(&f->cache_ttl, h->value);
            break;
        default: break;
        }
    }
}

/* What evhttp 2.1 lets through, or refuses with a generic status: it takes
 * the first of two Content-Length headers, keeps control bytes inside a
 * value, and has one size limit for the request line and headers together.
 * It is given room beyond ours (apply_limits) so that these answers are
 * precise. Returns false when it answered. */
static bool framing_ok(sl_req *r, struct evhttp_request *req, const head_facts *f)
{
    if (strlen(evhttp_request_get_uri(req)) > MAX_URI_BYTES) {
        answer_error(r, 414, "uri_too_long", "The request URI is longer than 8 KiB.");
        return false;
    }
    if (f->count > MAX_HEADER_COUNT || f->bytes > r->conf->server.max_header_bytes) {
        answer_error(r, 431, "headers_too_large",
                     sl_arena_printf(&r->arena,
                                     "Request headers are too large (%d headers, %zu bytes; "
                                     "limits %d and %zu).",
                                     f->count, f->bytes, MAX_HEADER_COUNT,
                                     r->conf->server.max_header_bytes));
        return false;
    }
    if (f->content_lengths > 1) {
        answer_error(r, 400, "invalid_header", "conflicting Content-Length headers");
        return false;
    }
    if (f->control_byte) {
        answer_error(r, 400, "invalid_header", "A header value holds a control character.");
        return false;
    }
    return true;
}

static void read_request_headers(sl_req *r, const head_facts *f)
{
    if (f->request_id && valid_request_id(f->request_id))
        snprintf(r->id, sizeof r->id, "%s", f->request_id);
    else
        sl_req_make_id(r->id);
    const char *auth = f->authorization;
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0)
        r->auth_key = sl_arena_strndup(&r->arena, auth + 7, strlen(auth + 7));
    else if ((auth = f->api_key))
        r->auth_key = sl_arena_strndup(&r->arena, auth, strlen(auth));
    if (f->cache_control)
        r->cache_control = sl_arena_strndup(&r->arena, f->cache_control, strlen(f->cache_control));
    if (f->cache_ttl) /* checked by the cache stage (400 when not a number) */
        r->cache_ttl = sl_arena_strndup(&r->arena, f->cache_ttl, strlen(f->cache_ttl));
    if (f->user)
        r->end_user = sl_arena_strndup(&r->arena, f->user, strlen(f->user));
    if (f->cache_opt)
        r->cache_opt = sl_arena_strndup(&r->arena, f->cache_opt, strlen(f->cache_opt));
}

static void split_uri(sl_req *r, const char *uri)
{
    const char *q = strchr(uri, '?');
    size_t plen = q ? (size_t)(q - uri) : strlen(uri);
    r->path = sl_arena_strndup(&r->arena, uri, plen);
    r->query = q ? sl_arena_strndup(&r->arena, q + 1, strlen(q + 1)) : NULL;
}

static const route *find_route(const char *path)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(routes); i++) {
        const route *rt = &routes[i];
        size_t n = strlen(rt->path);
        if (rt->prefix ? strncmp(rt->path, path, n) == 0 && path[n] : strcmp(rt->path, path) == 0)
            return rt;
    }
    return NULL;
}

static void answer_error(sl_req *r, int status, const char *code, const char *msg)
{
    sl_req_error(r, status, "invalid_request_error", code, NULL, msg);
    sl_req_finish(r); /* not an LLM request: no stages, one log line */
}

static void on_request(struct evhttp_request *req, void *arg)
{
    SL_UNUSED(arg);
    sl_req *r = sl_req_new(srv.base, srv.conf);
    if (!r) {
        evhttp_send_error(req, 503, "out of memory");
        return;
    }
    r->owner = req;
    r->sink = &http_sink;
    r->method = method_name(evhttp_request_get_command(req));
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    head_facts facts;
    scan_headers(in, &facts);
    read_request_headers(r, &facts);
    split_uri(r, evhttp_request_get_uri(req));
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    sl_conn_request_begin(evcon, r);

    if (!framing_ok(r, req, &facts))
        return;
    const route *rt = find_route(r->path);
    if (!rt) { /* its metrics label stays "unmatched": paths are the client's */
        answer_error(
            r, 404, "unknown_url",
            sl_arena_printf(&r->arena, "Unknown request URL: %s %.200s", r->method, r->path));
        return;
    }
    r->route = rt->label ? rt->label : rt->path;
    unsigned m = strcmp(r->method, "GET") == 0    ? M_GET
                 : strcmp(r->method, "POST") == 0 ? M_POST
                                                  : 0;
    if (!(rt->methods & m)) {
        sl_req_header(r, "Allow", rt->methods & M_POST ? "POST" : "GET");
        answer_error(
            r, 405, "method_not_allowed",
            sl_arena_printf(&r->arena, "Method %s is not allowed on %s", r->method, r->path));
        return;
    }
    if (rt->llm) {
        struct evbuffer *body = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(body);
        r->body.p = len ? (const char *)evbuffer_pullup(body, -1) : "";
        r->body.len = len;
        r->is_llm = true;
        r->llm.api = rt->api;
        r->dialect = sl_dialect_of_api(rt->api);
        r->cache = SL_CACHE_BYPASS;
        /* Watch for a hang-up only if the request parks (a cache hit never does). */
        sl_req_ref(r);
        sl_pipeline_start(r);
        if (!r->completed)
            watch_client(r, evcon);
        sl_req_release(r);
        return;
    }
    if (!sl_auth_check(r, rt->auth)) {
        sl_req_finish(r); /* answers the 401 at once, with a log line */
        return;
    }
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(body);
    r->body.p = len ? (const char *)evbuffer_pullup(body, -1) : "";
    r->body.len = len;
    rt->handler(r);
}

/* ---- lifecycle ----------------------------------------------------------- */

static struct evconnlistener *make_listener(const sl_config *c)
{
    struct evutil_addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", c->listen_port);
    int rc = evutil_getaddrinfo(c->listen_host, port, &hints, &ai);
    if (rc != 0 || !ai) {
        sl_err("listen %s: %s", c->listen, evutil_gai_strerror(rc));
        return NULL;
    }
    unsigned flags =
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT;
    struct evconnlistener *l = evconnlistener_new_bind(srv.base, NULL, NULL, flags, 1024,
                                                       ai->ai_addr, (int)ai->ai_addrlen);
    if (!l) {
        sl_err("listen %s: %s", c->listen, strerror(errno));
    } else {
        /* Accepted sockets inherit it: SSE chunks leave at once instead of
         * waiting for Nagle and the peer's delayed ACK (~40 ms). */
        int one = 1;
        setsockopt(evconnlistener_get_fd(l), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    evutil_freeaddrinfo(ai);
    return l;
}

static void apply_limits(const sl_config *c)
{
    evhttp_set_max_body_size(srv.http, (ev_ssize_t)c->server.max_body_bytes);
    /* framing_ok() applies the real limits with precise statuses (414, 431) */
    evhttp_set_max_headers_size(srv.http,
                                (ev_ssize_t)(c->server.max_header_bytes + 2 * MAX_URI_BYTES));
    evhttp_set_timeout(srv.http, c->server.idle_timeout_s);
}

int sl_server_start(struct event_base *base, sl_config *conf)
{
    srv.base = base;
    srv.conf = sl_config_ref(conf);
    srv.started_ms = sl_now_ms();
    srv.http = evhttp_new(base);
    srv.chunk = evbuffer_new();
    if (!srv.http || !srv.chunk)
        return SL_ENOMEM;
    evhttp_set_allowed_methods(srv.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                             EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                             EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(srv.http, "application/json");
    evhttp_set_gencb(srv.http, on_request, NULL);
    apply_limits(conf);
    if (sl_conn_setup(base, srv.http, on_client_gone) != SL_OK)
        return SL_ENOMEM;
    srv.listener = make_listener(conf);
    if (!srv.listener)
        return SL_EIO;
    srv.bound = evhttp_bind_listener(srv.http, srv.listener);
    sl_conn_set_listener(srv.bound ? srv.listener : NULL);
    return srv.bound ? SL_OK : SL_EIO;
}

void sl_server_swap_config(sl_config *conf)
{
    sl_config *old = srv.conf;
    srv.conf = sl_config_ref(conf);
    apply_limits(conf);
    sl_config_unref(old);
}

sl_config *sl_server_config(void)
{
    return srv.conf;
}
bool sl_server_draining(void)
{
    return srv.draining;
}
uint64_t sl_server_started_ms(void)
{
    return srv.started_ms;
}

void sl_server_begin_drain(void)
{
    if (srv.draining)
        return;
    srv.draining = true;
    if (srv.bound) {
        sl_conn_set_listener(NULL);
        evhttp_del_accept_socket(srv.http, srv.bound); /* frees the listener too */
        srv.bound = NULL;
        srv.listener = NULL;
    }
}

void sl_server_stop(void)
{
    if (srv.http)
        evhttp_free(srv.http); /* closes every connection */
    sl_conn_shutdown();
    if (srv.chunk)
        evbuffer_free(srv.chunk);
    srv.http = NULL;
    srv.chunk = NULL;
    if (srv.conf)
        sl_config_unref(srv.conf);
    srv.conf = NULL;
}

void sl_server_set_worker(int index)
{
    srv.worker = index;
}
int sl_server_worker(void)
{
    return srv.worker;
}
