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

#include "sluice/conn.h"
#include "sluice/log.h"
#include "sluice/pipeline.h"
#include "sluice/sla.h"
#include "sluice/triage.h"

static struct {
    struct event_base *base;
    sl_config *conf;
    bool draining;
    uint64_t started_ms;
    int worker; /* index among the workers, 0 without */
} srv;

enum { M_GET = 1, M_POST = 2 };

typedef struct route {
    const char *path;
    unsigned methods;
    bool llm;
    sl_api api;
    void (*handler)(sl_req *r);
    bool prefix;  /* path is a prefix: the rest names a resource */
    bool service; /* a service route: keys apply as on the LLM routes */
} route;

static const route routes[] = {
    {"/v1/chat/completions", M_POST, true, SL_API_CHAT, NULL, false, false},
    {"/v1/completions", M_POST, true, SL_API_COMPLETIONS, NULL, false, false},
    {"/v1/embeddings", M_POST, true, SL_API_EMBEDDINGS, NULL, false, false},
    {"/v1/messages", M_POST, true, SL_API_MESSAGES, NULL, false, false},
    {"/v1/models", M_GET, false, 0, sl_ops_models, false, false},
    {"/health/live", M_GET, false, 0, sl_ops_live, false, false},
    {"/health/ready", M_GET, false, 0, sl_ops_ready, false, false},
    {"/health", M_GET, false, 0, sl_ops_health, false, false},
    {"/metrics", M_GET, false, 0, sl_ops_metrics, false, false},
    {"/stats", M_GET, false, 0, sl_ops_stats, false, false},
    {"/ui", M_GET, false, 0, sl_ops_ui, false, false},
    {"/sla/tickets", M_POST, false, 0, sl_sla_ingest, false, true},
    {"/sla/tickets/", M_GET, false, 0, sl_sla_get, true, true},
    {"/sla/dashboard", M_GET, false, 0, sl_sla_dashboard, false, true},
    {"/sla/alerts/dead", M_GET, false, 0, sl_sla_dead, false, true},
    {"/triage/classify", M_POST, false, 0, sl_triage_classify, false, true},
    {"/triage/respond", M_POST, false, 0, sl_triage_respond, false, true},
};

/* ---- request intake ----------------------------------------------------- */

static void answer_error(sl_req *r, int status, const char *code, const char *msg);

static const route *find_route(const char *path, bool *path_known)
{
    *path_known = false;
    for (size_t i = 0; i < SL_ARRAY_LEN(routes); i++) {
        const route *rt = &routes[i];
        size_t n = strlen(rt->path);
        if (rt->prefix ? strncmp(rt->path, path, n) == 0 && path[n] : strcmp(rt->path, path) == 0) {
            *path_known = true;
            return rt;
        }
    }
    return NULL;
}

static void answer_error(sl_req *r, int status, const char *code, const char *msg)
{
    sl_req_error(r, status, "invalid_request_error", code, NULL, msg);
    sl_pipeline_start(r); /* not an LLM request: completes at once, with a log line */
}

/* Service routes take the same keys as the LLM routes (the pipeline's auth
 * stage does it for those); the tenant is recorded for the log. */
static bool service_auth(sl_req *r)
{
    if (r->conf->n_keys == 0)
        return true;
    const sl_key_conf *k = r->auth_key ? sl_config_key(r->conf, sl_str_c(r->auth_key)) : NULL;
    if (k) {
        r->tenant = k->tenant;
        return true;
    }
    if (r->auth_key && r->conf->admin.key && strcmp(r->path, "/sla/dashboard") == 0 &&
        sl_str_eq_c(sl_str_c(r->auth_key), r->conf->admin.key)) {
        r->tenant = "admin"; /* the operators' page reads the SLA dashboard too */
        return true;
    }
    sl_req_error(r, 401, "invalid_request_error", "invalid_api_key", NULL,
                 r->auth_key ? "Incorrect API key provided." : "You didn't provide an API key.");
    sl_pipeline_start(r);
    return false;
}

/* conn.c: a request's head is in. A client that waits for 100 Continue
 * learns about a bad key before it uploads the body. */
static sl_body_mode on_head(sl_req *r, bool expect_continue)
{
    if (!expect_continue || r->conf->n_keys == 0)
        return SL_BODY_WHOLE;
    bool known;
    const route *rt = find_route(r->path, &known);
    if (!rt || !(rt->llm || rt->service))
        return SL_BODY_WHOLE;
    if (r->auth_key && sl_config_key(r->conf, sl_str_c(r->auth_key)))
        return SL_BODY_WHOLE;
    if (r->auth_key && r->conf->admin.key && strcmp(r->path, "/sla/dashboard") == 0 &&
        sl_str_eq_c(sl_str_c(r->auth_key), r->conf->admin.key))
        return SL_BODY_WHOLE;
    sl_req_error(r, 401, "invalid_request_error", "invalid_api_key", NULL,
                 r->auth_key ? "Incorrect API key provided." : "You didn't provide an API key.");
    return SL_BODY_REFUSE;
}

/* conn.c: the request is complete (head and body): route it. */
static void on_request(sl_req *r)
{
    bool known;
    const route *rt = find_route(r->path, &known);
    if (!rt) {
        answer_error(
            r, 404, "unknown_url",
            sl_arena_printf(&r->arena, "Unknown request URL: %s %.200s", r->method, r->path));
        return;
    }
    unsigned m = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0 ? M_GET
                 : strcmp(r->method, "POST") == 0                                ? M_POST
                                                                                 : 0;
    if (!(rt->methods & m)) {
        sl_req_header(r, "Allow", rt->methods & M_POST ? "POST" : "GET");
        answer_error(
            r, 405, "method_not_allowed",
            sl_arena_printf(&r->arena, "Method %s is not allowed on %s", r->method, r->path));
        return;
    }
    if (rt->llm) {
        r->is_llm = true;
        r->llm.api = rt->api;
        r->cache = SL_CACHE_BYPASS;
        sl_pipeline_start(r);
        return;
    }
    if (rt->service && !service_auth(r))
        return;
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
    if (strcmp(conf->listen, srv.conf->listen) != 0)
        sl_warn("reload: listen changed from %s to %s; a restart applies it", srv.conf->listen,
                conf->listen);
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
