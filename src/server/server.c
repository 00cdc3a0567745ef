/* server.c — the route table in front of the pipeline.
 *
 * The connection layer (conn.c) reads and checks each request and builds its
 * sl_req; here the path is looked up in the route table and the request goes
 * to the pipeline (LLM routes) or to an operational handler. Every answer
 * leaves through the connection's sink; a client that goes away is an abort
 * (conn.c). Also: the listener, the configuration in force, drain. */
#include "sluice/server.h"

#include <errno.h>
#include <event2/event.h>
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
#include "sluice/passthrough.h"
#include "sluice/pipeline.h"
#include "sluice/resp_routes.h"
#include "sluice/sla.h"
#include "sluice/stages.h"
#include "sluice/triage.h"

static struct {
    struct event_base *base;
    sl_config *conf;
    bool draining;
    uint64_t started_ms;
    int worker; /* index among the workers, 0 without */
} srv;

enum { M_GET = 1, M_POST = 2, M_DELETE = 4, M_ANY = 0xff };

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
    bool passthrough; /* relayed to a provider as it is (passthrough.h), any method */
} route;

/* The fields of the common kinds of rows (each row is braced where used). */
#define LLM(p, a)       .path = p, .methods = M_POST, .llm = true, .api = a, .auth = SL_AUTH_CLIENT
#define OPS(p, h)       .path = p, .methods = M_GET, .handler = h, .auth = SL_AUTH_OPEN
#define SVC(p, m, h, l) .path = p, .methods = m, .handler = h, .auth = l
#define PASS(p)                                                                                    \
    .path = p, .label = "/v1/{passthrough}", .methods = M_ANY, .auth = SL_AUTH_CLIENT,             \
    .passthrough = true

static const route routes[] = {
    {LLM("/v1/chat/completions", SL_API_CHAT)},
    {LLM("/v1/completions", SL_API_COMPLETIONS)},
    {LLM("/v1/embeddings", SL_API_EMBEDDINGS)},
    {LLM("/v1/messages", SL_API_MESSAGES)},
    {LLM("/v1/responses", SL_API_RESPONSES)},
    {PASS("/v1/responses/input_tokens")}, /* not a response id: the provider counts */
    {SVC("/v1/responses/", M_GET | M_DELETE, sl_responses_route, SL_AUTH_CLIENT), .prefix = true,
     .label = "/v1/responses/{id}"},
    {OPS("/v1/models", sl_ops_models)},
    {SVC("/v1/streams/", M_GET, sl_stream_resume_route, SL_AUTH_CLIENT), .prefix = true,
     .label = "/v1/streams/{request_id}"},
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
    /* last: every /v1/... path no row above serves */
    {PASS("/v1/"), .prefix = true},
};

#undef LLM
#undef OPS
#undef SVC
#undef PASS

/* ---- request intake ----------------------------------------------------- */

static void answer_error(sl_req *r, int status, const char *code, const char *msg);

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

static void unknown_url(sl_req *r)
{
    sl_req_error(r, 404, "invalid_request_error", "unknown_url", NULL,
                 sl_arena_printf(&r->arena, "Unknown request URL: %s %.200s", r->method, r->path));
}

/* conn.c: a request's head is in. A client that waits for 100 Continue
 * learns about a bad key before it uploads the body. A pass-through body is
 * read as it comes (any size: the provider has its own limits). */
static sl_body_mode on_head(sl_req *r, bool expect_continue)
{
    const route *rt = find_route(r->path);
    if (rt && rt->passthrough && sl_passthrough_provider(sl_server_config()) < 0) {
        unknown_url(r); /* no provider takes it: as if the row were not there */
        return SL_BODY_REFUSE;
    }
    if (expect_continue && rt && !sl_auth_check(r, rt->auth))
        return SL_BODY_REFUSE; /* sl_auth_check recorded the 401 */
    return rt && rt->passthrough ? SL_BODY_STREAM : SL_BODY_WHOLE;
}

/* The request headers a pass-through forwards (the client's key never). */
static const char *const forwarded[] = {"Content-Type",    "Accept",      "Content-Encoding",
                                        "Accept-Encoding", "OpenAI-Beta", "Idempotency-Key",
                                        "User-Agent"};
_Static_assert(SL_ARRAY_LEN(forwarded) <= SL_PASS_MAX_FORWARD, "sl_pass_head.lines");

/* Takes what the pass-through needs from the head (whose slices do not
 * outlive the body's streaming), then reads the body as it comes. */
static void start_passthrough(sl_req *r)
{
    sl_pass_head h = {.body_len = -1};
    for (size_t i = 0; i < SL_ARRAY_LEN(forwarded); i++) {
        sl_str v = sl_conn_header(r, forwarded[i]);
        if (v.p)
            h.lines[h.n_lines++] =
                sl_arena_printf(&r->arena, "%s: %.*s", forwarded[i], (int)v.len, v.p);
    }
    sl_str cl = sl_conn_header(r, "Content-Length"), te = sl_conn_header(r, "Transfer-Encoding");
    if (cl.p) {
        char num[24];
        snprintf(num, sizeof num, "%.*s", (int)SL_MIN(cl.len, 20), cl.p);
        h.body_len = strtoll(num, NULL, 10);
    }
    h.has_body = te.p || h.body_len > 0;
    if (sl_passthrough_begin(r, &h, sl_conn_body_pause) != SL_OK) {
        sl_req_error(r, 500, "api_error", "out_of_memory", NULL, "out of memory");
        sl_req_finish(r);
        return;
    }
    sl_conn_body_reader(r, sl_passthrough_body, r->pass);
    r->is_llm = true; /* auth and limits run for it, and it is priced */
    r->cache = SL_CACHE_BYPASS;
    sl_pipeline_start(r);
}

/* conn.c: the request is complete (head and body): route it. */
static void on_request(sl_req *r)
{
    const route *rt = find_route(r->path);
    if (!rt) { /* its metrics label stays "unmatched": paths are the client's */
        unknown_url(r);
        sl_req_finish(r);
        return;
    }
    r->route = rt->label ? rt->label : rt->path;
    if (rt->passthrough) {
        start_passthrough(r);
        return;
    }
    unsigned m = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0 ? M_GET
                 : strcmp(r->method, "POST") == 0                                ? M_POST
                 : strcmp(r->method, "DELETE") == 0                              ? M_DELETE
                                                                                 : 0;
    if (!(rt->methods & m)) {
        sl_req_header(r, "Allow",
                      rt->methods & M_POST     ? "POST"
                      : rt->methods & M_DELETE ? "GET, DELETE"
                                               : "GET");
        answer_error(
            r, 405, "method_not_allowed",
            sl_arena_printf(&r->arena, "Method %s is not allowed on %s", r->method, r->path));
        return;
    }
    if (rt->llm) {
        r->is_llm = true;
        r->llm.api = rt->api;
        r->dialect = sl_dialect_of_api(rt->api);
        r->cache = SL_CACHE_BYPASS;
        sl_pipeline_start(r);
        return;
    }
    if (!sl_auth_check(r, rt->auth)) {
        sl_req_finish(r); /* answers the 401 at once, with a log line */
        return;
    }
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

static const sl_conn_hooks conn_hooks = {
    .on_head = on_head,
    .on_request = on_request,
    .config = sl_server_config,
};

int sl_server_start(struct event_base *base, sl_config *conf)
{
    srv.base = base;
    srv.conf = sl_config_ref(conf);
    srv.started_ms = sl_now_ms();
    if (sl_conn_setup(base, &conn_hooks) != SL_OK)
        return SL_ENOMEM;
    struct evconnlistener *l = make_listener(conf);
    if (!l)
        return SL_EIO;
    sl_conn_listen(l);
    return SL_OK;
}

void sl_server_swap_config(sl_config *conf)
{
    sl_config *old = srv.conf;
    srv.conf = sl_config_ref(conf);
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
    sl_conn_drain(); /* stops accepting, frees the listener, closes idle connections */
}

void sl_server_stop(void)
{
    sl_conn_shutdown(); /* closes every connection */
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
