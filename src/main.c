/* main.c — sluice: arguments, startup banner, signals, the loop, shutdown.
 *
 *   sluice -c FILE       run with FILE (default conf/sluice.yaml)
 *   sluice -t -c FILE    check FILE and exit: 0, or 1 with FILE:LINE: key: reason
 *
 * SIGTERM/SIGINT drain (a second one stops at once); SIGHUP reloads. */
#include <event2/event.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sluice/config.h"
#include "sluice/l1.h"
#include "sluice/log.h"
#include "sluice/metrics.h"
#include "sluice/pipeline.h"
#include "sluice/redis.h"
#include "sluice/resp_state.h"
#include "sluice/semstore.h"
#include "sluice/stages.h"
#include "sluice/stats.h"
#include "sluice/server.h"
#include "sluice/sla.h"
#include "sluice/trace_export.h"
#include "sluice/triage.h"
#include "sluice/upstream.h"

static struct {
    struct event_base *base;
    sl_config *boot; /* the configuration the process started with */
    sl_l1 *l1;
    sl_redis *redis;
    sl_semstore *semantic; /* the semantic cache's index, when the start config enables it */
    const char *conf_path;
    struct event *drain_timer; /* checks whether in-flight work is done */
    struct event *trim_timer;  /* gives memory back after a burst */
    uint64_t trimmed_at;       /* sl_req_served() at the last trim */
    uint64_t drain_deadline_ms;
    uint64_t cut_grace_ms;      /* after the cut: requests parked in a stage may still end */
    uint64_t flush_deadline_ms; /* the last spans' export may take this long (0: not started) */
    bool cut_done;
    int signals_seen;
} app;

static void usage(FILE *out)
{
    fprintf(out, "usage: sluice [-c FILE] [-t] [-v]\n"
                 "  -c FILE  configuration (default conf/sluice.yaml)\n"
                 "  -t       check the configuration and exit\n"
                 "  -v       print the version and exit\n");
}

static void banner(const sl_config *c)
{
    char shown[512];
    fprintf(stderr, "sluice %s listening on http://%s (pid %d)\n", SLUICE_VERSION, c->listen,
            (int)getpid());
    if (c->redis.n_sentinels)
        fprintf(stderr, "  state store: redis master \"%s\" via %zu sentinels\n",
                c->redis.master_name, c->redis.n_sentinels);
    else if (c->redis.n_cluster)
        fprintf(stderr, "  state store: redis cluster via %zu seed nodes%s\n", c->redis.n_cluster,
                c->redis.read_from_replicas ? " (cache lookups read replicas)" : "");
    else
        fprintf(stderr, "  state store: %s\n",
                c->redis.url ? sl_redact_url(c->redis.url, shown, sizeof shown)
                             : "embedded (in-process, volatile: lost on restart)");
    for (size_t i = 0; i < c->n_providers; i++) {
        const sl_provider_conf *p = &c->providers[i];
        fprintf(stderr, "  provider %s (%s) %s models:", p->name,
                p->kind == SL_PROVIDER_ANTHROPIC ? "anthropic" : "openai",
                sl_redact_url(p->base_url, shown, sizeof shown));
        for (size_t m = 0; m < p->n_models; m++)
            fprintf(stderr, " %s", p->models[m]);
        fputc('\n', stderr);
    }
    if (c->n_providers == 0)
        fprintf(stderr, "  no providers configured: LLM routes answer 404\n");
    fprintf(stderr, "  access log: %s\n", c->log.access ? c->log.access : "off");
    if (c->server.busy_poll_us)
        fprintf(stderr, "  busy polling: %d us after socket work (spends the core it runs on)\n",
                c->server.busy_poll_us);
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    SL_UNUSED(arg);
    uint64_t now = sl_now_ms();
    if (sl_req_live() && now >= app.drain_deadline_ms && !app.cut_done) {
        /* Nothing may vanish: each request still running is ended as a
         * failure would end it (shutting_down error, or an SSE error event),
         * with its log line, metrics and settlement. */
        size_t live = sl_req_live();
        size_t cut = sl_pipeline_cut_all();
        sl_warn("drain deadline reached with %zu requests in flight: %zu LLM requests cut", live,
                cut);
        app.cut_done = true;
        app.cut_grace_ms = now + 1000;
    }
    if (sl_req_live() == 0 || (app.cut_done && now >= app.cut_grace_ms)) {
        if (!app.flush_deadline_ms)
            app.flush_deadline_ms = now + (uint64_t)sl_server_config()->tracing.timeout_ms;
        if (now < app.flush_deadline_ms && sl_trace_export_flushing()) {
            struct timeval tv = {0, 20000}; /* the spans of the last requests go out first */
            evtimer_add(app.drain_timer, &tv);
            return;
        }
        if (sl_req_live())
            sl_warn("stopping with %zu requests in flight", sl_req_live());
        /* The last answers may still sit in socket buffers being written:
         * give the loop a moment to flush them before it stops. */
        struct timeval linger = {0, 250000};
        event_base_loopexit(app.base, &linger);
        return;
    }
    struct timeval tv = {0, 20000};
    evtimer_add(app.drain_timer, &tv);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    SL_UNUSED(what);
    SL_UNUSED(arg);
    if (++app.signals_seen > 1) {
        sl_warn("second signal: stopping now");
        event_base_loopbreak(app.base);
        return;
    }
    const sl_config *c = sl_server_config();
    sl_info("signal %d: draining (up to %d s, %zu in flight)", (int)sig, c->shutdown.drain_s,
            sl_req_live());
    sl_server_begin_drain();
    app.drain_deadline_ms = sl_now_ms() + (uint64_t)c->shutdown.drain_s * 1000u;
    app.drain_timer = evtimer_new(app.base, on_drain_tick, NULL);
    on_drain_tick(-1, 0, NULL);
}

/* ---- reload ---------------------------------------------------------------- */

typedef struct pending_keys {
    const char *keys[32];
    char names[32][64];
    size_t n;
} pending_keys;

static void note_restart_key(void *ud, const char *key, bool restart)
{
    pending_keys *p = ud;
    if (!restart || p->n == SL_ARRAY_LEN(p->keys))
        return;
    sl_warn("%s changed: takes effect on restart", key);
    snprintf(p->names[p->n], sizeof p->names[0], "%s", key);
    p->keys[p->n] = p->names[p->n];
    p->n++;
}

/* The keys read once at start that the file now sets otherwise than at
 * start: logged, and listed on /health until a restart. */
static void report_restart_keys(const sl_config *c)
{
    pending_keys p = {.n = 0};
    sl_config_each_key(note_restart_key, app.boot, c, &p);
    sl_ops_set_restart_pending(p.keys, p.n);
}

/* The live keys that need more than the new config pointer: the access log
 * (reopened on every reload, which also serves log rotation), the bound on
 * upstream calls, and the L1 budget (a smaller one evicts). */
static void apply_live_keys(const sl_config *old, const sl_config *c)
{
    sl_access_reopen(app.base, c->log.access);
    if (c->server.max_inflight != old->server.max_inflight)
        sl_upstream_set_max_inflight(c->server.max_inflight);
    if (app.l1 && c->cache.l1_max_bytes != old->cache.l1_max_bytes)
        sl_l1_set_max_bytes(app.l1, c->cache.l1_max_bytes);
}

/* libcurl loaded now when the configuration names a URL that only curl
 * serves (https, a host name, a proxy in the environment): at start or
 * reload, not on the loop at the first call; an http-only configuration
 * never maps it (upstream.h). */
static int prepare_upstreams(const sl_config *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->n_providers; i++)
        if (sl_upstream_prepare(c->providers[i].base_url, err, errlen) != SL_OK)
            return SL_EIO;
    if (sl_upstream_prepare(c->sla.webhook, err, errlen) != SL_OK)
        return SL_EIO;
    return sl_upstream_prepare(c->tracing.otlp_endpoint, err, errlen);
}

static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
    SL_UNUSED(sig);
    SL_UNUSED(what);
    SL_UNUSED(arg);
    char err[1024];
    sl_config *c = sl_config_load(app.conf_path, err, sizeof err);
    if (!c) {
        sl_err("reload refused, keeping the running configuration: %s", err);
        return;
    }
    if (prepare_upstreams(c, err, sizeof err) != SL_OK) {
        sl_err("reload refused, keeping the running configuration: %s", err);
        sl_config_unref(c);
        return;
    }
    sl_log_set_secrets(c->secrets, c->n_secrets);
    apply_live_keys(sl_server_config(), c);
    report_restart_keys(c);
    sl_server_swap_config(c);
    sl_sla_reload(c);
    sl_triage_setup(c);
    sl_config_unref(c);
    sl_info("reloaded %s", app.conf_path);
}

static int check_only(const char *path)
{
    char err[1024];
    sl_config *c = sl_config_load(path, err, sizeof err);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (prepare_upstreams(c, err, sizeof err) != SL_OK) {
        fprintf(stderr, "%s: %s\n", path, err);
        sl_config_unref(c);
        return 1;
    }
    fprintf(stderr, "%s: configuration ok (%zu providers)\n", path, c->n_providers);
    sl_config_unref(c);
    return 0;
}

/* After a burst (2,000 streams, a storm) glibc keeps the freed heap: RSS
 * stays at the peak. Every 10 s, when nothing is in flight and requests were
 * served since the last time, give what is free at the top of the heap back
 * to the system. Idle only: malloc_trim walks the heap. */
static void on_trim_tick(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd), SL_UNUSED(what), SL_UNUSED(arg);
    uint64_t served = sl_req_served();
    if (sl_req_live() == 0 && served != app.trimmed_at) {
        malloc_trim(0);
        app.trimmed_at = served;
    }
}

/* epoll with a changelist: the connection layer adds and removes a
 * connection's write event and re-arms its timer around requests; without the
 * changelist each event change is an epoll_ctl call, with it the changes of
 * one loop iteration are folded into at most one.
 * (Its one caveat, dup()ed descriptors sharing a file, does not arise here.) */
static struct event_base *new_base(void)
{
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return event_base_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *b = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return b ? b : event_base_new();
}

/* The process's stores (main owns them), handed to the pipeline as one environment. */
static int wire_stores(const sl_config *c)
{
    app.l1 = sl_l1_new(c->cache.l1_max_bytes);
    if (c->redis.n_sentinels)
        app.redis = sl_redis_new_sentinel(app.base, c->redis.sentinels, c->redis.n_sentinels,
                                          c->redis.master_name, c->redis.password, c->redis.db,
                                          c->redis.timeout_ms);
    else if (c->redis.n_cluster)
        app.redis =
            sl_redis_new_cluster(app.base, c->redis.cluster, c->redis.n_cluster, c->redis.password,
                                 c->redis.timeout_ms, c->redis.read_from_replicas);
    else if (c->redis.host)
        app.redis = sl_redis_new(app.base, c->redis.host, c->redis.port, c->redis.password,
                                 c->redis.db, c->redis.timeout_ms);
    sl_resp_state_setup(app.redis); /* the Responses API's conversation state */
    if (sl_semantic_wanted(c))
        app.semantic = sl_semstore_new(app.base, app.redis, (size_t)c->cache.semantic.max_entries);
    sl_env env = {.base = app.base, .l1 = app.l1, .redis = app.redis, .semantic = app.semantic};
    return sl_pipeline_init(&env);
}

/* A clean stop (nothing in flight): everything is freed, for leak checkers. */
static void free_all(void)
{
    sl_server_stop();
    sl_pipeline_fini();
    sl_sla_stop();
    sl_triage_stop();
    sl_redis_free(app.redis);
    sl_semstore_free(app.semantic); /* after Redis: its pending callbacks use it */
    sl_resp_state_shutdown();
    sl_l1_free(app.l1);
    sl_trace_export_shutdown(); /* cancels its call: before the multi handle goes */
    sl_upstream_shutdown();
    sl_access_close();
    sl_req_pool_drain();
    event_base_free(app.base);
}

/* The event loop. With server.busy_poll_us at 0 (the default) it is libevent's
 * own: epoll_wait sleeps until a socket or timer is ready. Otherwise, for
 * that long after the last socket work, the loop polls with a zero timeout
 * instead of sleeping, as HAProxy's busy-polling does: on a VM whose idle
 * vCPU halts, waking it costs ~30 us a hop (docs/ARCHITECTURE.md), more than
 * a request's own work. It spends the core it runs on, so it is for a
 * gateway with a core of its own; an idle gateway still sleeps. Read live:
 * a SIGHUP can turn it on or off. */
static void run_loop(struct event_base *base)
{
    uint64_t seen = sl_loop_work, last_work_us = 0;
    for (;;) {
        int window = sl_server_config()->server.busy_poll_us;
        uint64_t now = window ? sl_now_us() : 0;
        bool spin = window && now - last_work_us < (uint64_t)window;
        if (event_base_loop(base, spin ? EVLOOP_ONCE | EVLOOP_NONBLOCK : EVLOOP_ONCE) != 0 ||
            event_base_got_exit(base) || event_base_got_break(base))
            return;
        if (sl_loop_work != seen) {
            seen = sl_loop_work;
            last_work_us = window ? now : 0;
        }
    }
}

static int run(sl_config *c)
{
    app.base = new_base();
    app.boot = c;
    char err[1024];
    if (prepare_upstreams(c, err, sizeof err) != SL_OK) {
        sl_err("%s", err);
        return 1;
    }
    if (!app.base || sl_upstream_init(app.base, c->server.max_inflight) != SL_OK ||
        sl_access_open(app.base, c->log.access) != SL_OK || sl_server_start(app.base, c) != SL_OK)
        return 1;
    if (sl_trace_export_init(app.base, c) != SL_OK) /* before the pipeline: its observer */
        return 1;
    if (wire_stores(c) != SL_OK)
        return 1;
    if (sl_sla_start(app.base, app.redis, c) != SL_OK)
        return 1;
    sl_triage_setup(c);
    struct event *sig[] = {
        evsignal_new(app.base, SIGTERM, on_stop_signal, NULL),
        evsignal_new(app.base, SIGINT, on_stop_signal, NULL),
        evsignal_new(app.base, SIGHUP, on_reload_signal, NULL),
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(sig); i++)
        evsignal_add(sig[i], NULL);
    sl_metrics_on_scrape(sl_ops_metrics_refresh);
    sl_metrics_worker(app.base, sl_server_worker()); /* a no-op without workers */
    app.trim_timer = event_new(app.base, -1, EV_PERSIST, on_trim_tick, NULL);
    struct timeval trim_every = {10, 0};
    if (app.trim_timer)
        event_add(app.trim_timer, &trim_every);
    banner(c);
    run_loop(app.base);
    sl_metrics_worker_stop();

    bool clean = sl_req_live() == 0;
    for (size_t i = 0; i < SL_ARRAY_LEN(sig); i++)
        event_free(sig[i]);
    if (app.drain_timer)
        event_free(app.drain_timer);
    if (app.trim_timer)
        event_free(app.trim_timer);
    if (clean) /* with requests still in flight, the OS reclaims the rest */
        free_all();
    else
        sl_access_flush();
    sl_info("stopped");
    return 0;
}

/* ---- workers: N processes sharing the port (SO_REUSEPORT) ---------------- */

static volatile sig_atomic_t sup_signal;

static void on_supervisor_signal(int sig)
{
    sup_signal = sig;
}

static pid_t start_worker(sl_config *c, int index)
{
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        sl_server_set_worker(index);
        _exit(run(c));
    }
    return pid;
}

static void forward(pid_t *pids, int n, int sig)
{
    for (int i = 0; i < n; i++) {
        if (pids[i] > 0)
            kill(pids[i], sig);
    }
}

/* The supervisor: starts the workers, restarts one that dies, passes SIGTERM
 * (drain all), SIGINT and SIGHUP (reload all) on, and exits when all are gone
 * after a stop. Each worker binds the port itself; the kernel spreads the
 * connections. State shared between workers goes through Redis. */
static int supervise(sl_config *c)
{
    int n = c->workers;
    pid_t pids[256] = {0};
    struct sigaction sa = {0};
    sa.sa_handler = on_supervisor_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    for (int i = 0; i < n; i++)
        pids[i] = start_worker(c, i);
    fprintf(stderr, "sluice supervisor (pid %d): %d workers on %s\n", (int)getpid(), n, c->listen);
    bool stopping = false;
    int alive = n;
    while (alive > 0) {
        int st;
        pid_t dead = waitpid(-1, &st, 0);
        if (dead < 0 && errno == EINTR) {
            int sig = sup_signal;
            sup_signal = 0;
            if (sig == SIGTERM || sig == SIGINT)
                stopping = true;
            if (sig)
                forward(pids, n, sig);
            continue;
        }
        if (dead < 0)
            break;
        for (int i = 0; i < n; i++) {
            if (pids[i] != dead)
                continue;
            pids[i] = 0;
            if (stopping) {
                alive--;
            } else {
                sl_warn("worker %d (pid %d) died (status %d); restarting", i, (int)dead, st);
                usleep(100000); /* a crash loop must not spin */
                pids[i] = start_worker(c, i);
                sl_metrics_note_restart();
            }
        }
    }
    sl_info("supervisor: all workers stopped");
    return 0;
}

/* Each client connection may hold an upstream socket too: ask for twice
 * max_connections descriptors plus some for Redis, logs and the listener. A
 * shortfall is survivable (accept pauses on EMFILE) but deserves a warning. */
static void raise_fd_limit(const sl_config *c)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)c->server.max_connections * 2 + 256;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < want)
        sl_warn("file descriptor limit %llu is below the %llu that max_connections %d may need",
                (unsigned long long)rl.rlim_cur, (unsigned long long)want,
                c->server.max_connections);
}

int main(int argc, char **argv)
{
    bool test_only = false;
    app.conf_path = "conf/sluice.yaml";
    int opt;
    while ((opt = getopt(argc, argv, "c:tvh")) != -1) {
        switch (opt) {
        case 'c': app.conf_path = optarg; break;
        case 't': test_only = true; break;
        case 'v': printf("sluice %s\n", SLUICE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    if (test_only)
        return check_only(app.conf_path);
    char err[1024];
    sl_config *c = sl_config_load(app.conf_path, err, sizeof err);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    sl_log_set_secrets(c->secrets, c->n_secrets);
    raise_fd_limit(c);
    if (c->workers > 1 && sl_stats_share() != SL_OK)
        sl_warn("dashboard history is per worker (no shared memory)");
    if (c->workers > 1 && sl_metrics_share(c->workers) != SL_OK)
        sl_warn("/metrics is per worker (no shared memory)");
    int rc = c->workers > 1 ? supervise(c) : run(c);
    sl_config_unref(c);
    sl_log_set_secrets(NULL, 0);
    return rc;
}
