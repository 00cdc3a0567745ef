/* test_sla_store.c — the SLA store interface: the same cases against the
 * memory store and the Redis store. The Redis store runs against a real
 * redis-server this test starts on a free loopback port (and kills at exit);
 * without redis-server on PATH the Redis cases FAIL, they never skip. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sluice/redis.h"
#include "sluice/sla_store.h"
#include "t.h"

/* ---- the loop and a real redis-server --------------------------------------------- */

static struct {
    struct event_base *base;
    pid_t pid;
    int port;
    sl_redis *redis;
    const char *broken; /* why Redis could not be had; NULL while fine */
} env;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the loop until *flag is set or 5 s have passed. */
static bool drive(const bool *flag)
{
    int64_t end = mono_ms() + 5000;
    while (!*flag && mono_ms() < end)
        event_base_loop(env.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(*flag ? 0 : 1000);
    return *flag;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void stop_all(void)
{
    if (env.redis)
        sl_redis_free(env.redis);
    if (env.pid > 0) {
        kill(env.pid, SIGKILL);
        waitpid(env.pid, NULL, 0);
    }
    if (env.base)
        event_base_free(env.base);
    memset(&env, 0, sizeof env);
}

static pid_t spawn_redis(int port)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout))
            _exit(126);
        execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", (char *)NULL);
        _exit(127); /* not on PATH */
    }
    return pid;
}

/* Starts redis-server and connects; sets env.broken with the reason when it cannot. */
static void start_redis(void)
{
    env.port = free_port();
    env.pid = env.port > 0 ? spawn_redis(env.port) : -1;
    int64_t end = mono_ms() + 5000;
    int status;
    while (env.pid > 0 && !port_open(env.port) && mono_ms() < end) {
        if (waitpid(env.pid, &status, WNOHANG) == env.pid) {
            env.pid = 0;
            env.broken = WIFEXITED(status) && WEXITSTATUS(status) == 127
                             ? "redis-server is not on PATH (apt-get install redis-server): "
                               "the Redis store cannot be tested"
                             : "redis-server exited at start";
            return;
        }
        usleep(10000);
    }
    if (env.pid <= 0 || !port_open(env.port)) {
        env.broken = "redis-server did not start listening within 5 s";
        return;
    }
    env.redis = sl_redis_new(env.base, "127.0.0.1", env.port, NULL, 0, 2000);
    int64_t up_by = mono_ms() + 5000;
    while (sl_redis_get_state(env.redis) != SL_REDIS_UP && mono_ms() < up_by)
        event_base_loop(env.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
    if (sl_redis_get_state(env.redis) != SL_REDIS_UP)
        env.broken = "could not connect to the redis-server this test started";
}

static void setup(void)
{
    if (env.base)
        return;
    env.base = event_base_new();
    atexit(stop_all);
    start_redis();
}

static void on_flushed(void *ud, const redisReply *rep, int status)
{
    SL_UNUSED(rep), SL_UNUSED(status);
    *(bool *)ud = true;
}

/* A Redis store on an empty database, or NULL (and a FAIL line) without Redis. */
static sl_sla_store *redis_store(void)
{
    setup();
    if (env.broken) {
        printf("  %s\n", env.broken);
        return NULL;
    }
    bool done = false;
    const char *argv[] = {"FLUSHALL"};
    if (sl_redis_cmd(env.redis, on_flushed, &done, 1, argv, NULL) != SL_OK || !drive(&done)) {
        printf("  FLUSHALL did not answer\n");
        return NULL;
    }
    return sl_sla_store_redis_new(env.redis, 0, 0);
}

static sl_sla_store *mem_store(void)
{
    setup();
    return sl_sla_store_mem_new();
}

/* ---- results of the asynchronous calls ------------------------------------------------ */

typedef struct result {
    bool done;
    int rc;
    char json[2048];
    size_t n;
    char items[8][512];
    sl_sla_due due[8];
} result;

static void on_rc(void *ud, int rc)
{
    result *r = ud;
    r->rc = rc;
    r->done = true;
}

static void on_json(void *ud, int rc, sl_str json)
{
    result *r = ud;
    r->rc = rc;
    snprintf(r->json, sizeof r->json, "%.*s", (int)json.len, json.p);
    r->done = true;
}

static void on_list(void *ud, int rc, const sl_str *items, size_t n)
{
    result *r = ud;
    r->rc = rc;
    r->n = n;
    for (size_t i = 0; i < n && i < 8; i++)
        snprintf(r->items[i], sizeof r->items[i], "%.*s", (int)items[i].len, items[i].p);
    r->done = true;
}

static void on_due(void *ud, int rc, const sl_sla_due *items, size_t n)
{
    result *r = ud;
    r->rc = rc;
    r->n = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        r->due[i] = items[i];
        snprintf(r->items[i], sizeof r->items[i], "%.*s", (int)items[i].json.len, items[i].json.p);
        r->due[i].json = (sl_str){r->items[i], items[i].json.len};
    }
    r->done = true;
}

/* The call returned SL_OK and its callback ran within 5 s. */
#define CALL(res, expr) (memset(&(res), 0, sizeof(res)), (expr) == SL_OK && drive(&(res).done))

static const sl_sla_marks NO_MARKS = {{0, 0}, {0, 0}};

static int upsert(sl_sla_store *s, const char *id, int64_t updated, const char *json,
                  const sl_sla_marks *m)
{
    sl_ticket t = {.id = {id, strlen(id)}, .updated_ms = updated};
    result r;
    if (!CALL(r, s->ops->upsert(s, &t, (sl_str){json, strlen(json)}, m, on_rc, &r)))
        return -100;
    return r.rc;
}

static int get(sl_sla_store *s, const char *id, result *r)
{
    if (!CALL(*r, s->ops->get(s, (sl_str){id, strlen(id)}, on_json, r)))
        return -100;
    return r->rc;
}

/* ---- the cases, each run against both stores ------------------------------------------ */

static void upsert_then_get(sl_sla_store *s)
{
    result r;
    T_CHECK(s->ops->ready(s));
    T_EQ_INT(upsert(s, "t-1", 1000, "{\"id\":\"t-1\",\"v\":1}", &NO_MARKS), 1);
    T_EQ_INT(get(s, "t-1", &r), SL_OK);
    T_EQ_STR(r.json, "{\"id\":\"t-1\",\"v\":1}");
    T_EQ_INT(get(s, "t-2", &r), SL_ENOTFOUND);
    T_EQ_INT(get(s, "t-", &r), SL_ENOTFOUND); /* a prefix is not the id */
}

static void only_newer_replaces(sl_sla_store *s)
{
    result r;
    T_EQ_INT(upsert(s, "t-1", 2000, "{\"v\":1}", &NO_MARKS), 1);
    T_EQ_INT(upsert(s, "t-1", 2000, "{\"v\":2}", &NO_MARKS), 0); /* same updated_at */
    T_EQ_INT(upsert(s, "t-1", 1000, "{\"v\":3}", &NO_MARKS), 0); /* older */
    T_EQ_INT(get(s, "t-1", &r), SL_OK);
    T_EQ_STR(r.json, "{\"v\":1}");
    T_EQ_INT(upsert(s, "t-1", 3000, "{\"v\":4}", &NO_MARKS), 2);
    T_EQ_INT(get(s, "t-1", &r), SL_OK);
    T_EQ_STR(r.json, "{\"v\":4}");
}

static void all_lists_tickets_up_to_max(sl_sla_store *s)
{
    result r;
    T_EQ_INT(upsert(s, "a", 1, "{\"a\":1}", &NO_MARKS), 1);
    T_EQ_INT(upsert(s, "b", 1, "{\"b\":1}", &NO_MARKS), 1);
    T_EQ_INT(upsert(s, "c", 1, "{\"c\":1}", &NO_MARKS), 1);
    T_CHECK(CALL(r, s->ops->all(s, 50000, on_list, &r)));
    T_EQ_INT(r.rc, SL_OK);
    T_EQ_INT(r.n, 3);
    int seen = 0;
    for (size_t i = 0; i < r.n; i++)
        seen |= strcmp(r.items[i], "{\"a\":1}") == 0   ? 1
                : strcmp(r.items[i], "{\"b\":1}") == 0 ? 2
                : strcmp(r.items[i], "{\"c\":1}") == 0 ? 4
                                                       : 8;
    T_EQ_INT(seen, 7);
    T_CHECK(CALL(r, s->ops->all(s, 2, on_list, &r)));
    T_EQ_INT(r.n, 2);
}

static void pop_due_claims_each_alert_once(sl_sla_store *s)
{
    result r;
    int64_t now = 1000000;
    sl_sla_marks risky = {{now - 10, 0}, {now + 60000, 0}}; /* response at risk, not breached */
    sl_sla_marks late = {{0, now - 100}, {0, now - 1}};     /* resolution at risk and breached */
    T_EQ_INT(upsert(s, "risky", 1, "{\"id\":\"risky\"}", &risky), 1);
    T_EQ_INT(upsert(s, "late", 1, "{\"id\":\"late\"}", &late), 1);
    T_EQ_INT(upsert(s, "quiet", 1, "{\"id\":\"quiet\"}", &NO_MARKS), 1);
    T_CHECK(CALL(r, s->ops->pop_due(s, now, 1000, 60, on_due, &r)));
    T_EQ_INT(r.rc, SL_OK);
    T_EQ_INT(r.n, 3);
    int seen = 0;
    for (size_t i = 0; i < r.n && i < 8; i++) {
        const sl_sla_due *d = &r.due[i];
        if (strcmp(r.items[i], "{\"id\":\"risky\"}") == 0 && d->kind == SL_SLA_RESPONSE &&
            d->claimed == SL_SLA_AT_RISK)
            seen |= 1;
        else if (strcmp(r.items[i], "{\"id\":\"late\"}") == 0 && d->kind == SL_SLA_RESOLUTION)
            seen |= d->claimed == SL_SLA_AT_RISK ? 2 : d->claimed == SL_SLA_BREACHED ? 4 : 8;
        else
            seen |= 16;
    }
    T_EQ_INT(seen, 7);
    T_CHECK(CALL(r, s->ops->pop_due(s, now, 1000, 60, on_due, &r)));
    T_EQ_INT(r.n, 0); /* popped: gone */
    /* a newer version re-arms its instants, but each alert was claimed already */
    T_EQ_INT(upsert(s, "late", 2, "{\"id\":\"late\",\"v\":2}", &late), 2);
    T_CHECK(CALL(r, s->ops->pop_due(s, now, 1000, 60, on_due, &r)));
    T_EQ_INT(r.n, 0);
    /* the breach of risky comes later */
    T_CHECK(CALL(r, s->ops->pop_due(s, now + 60000, 1000, 60, on_due, &r)));
    T_EQ_INT(r.n, 1);
    T_CHECK(r.n == 1 && r.due[0].claimed == SL_SLA_BREACHED && r.due[0].kind == SL_SLA_RESPONSE);
}

static void upsert_replaces_instants(sl_sla_store *s)
{
    result r;
    int64_t now = 5000000;
    sl_sla_marks late = {{now - 100, 0}, {now - 1, 0}};
    T_EQ_INT(upsert(s, "fixed", 1, "{\"v\":1}", &late), 1);
    T_EQ_INT(upsert(s, "fixed", 2, "{\"v\":2}", &NO_MARKS), 2); /* answered in time */
    T_CHECK(CALL(r, s->ops->pop_due(s, now, 1000, 60, on_due, &r)));
    T_EQ_INT(r.rc, SL_OK);
    T_EQ_INT(r.n, 0);
}

static void pop_due_honours_max(sl_sla_store *s)
{
    result r;
    sl_sla_marks due = {{5, 0}, {10, 0}}; /* response at risk at 5 ms, breached at 10 */
    T_EQ_INT(upsert(s, "x1", 1, "{}", &due), 1);
    T_EQ_INT(upsert(s, "x2", 1, "{}", &due), 1);
    T_EQ_INT(upsert(s, "x3", 1, "{}", &due), 1);
    T_CHECK(CALL(r, s->ops->pop_due(s, 100, 2, 60, on_due, &r)));
    T_EQ_INT(r.n, 4); /* two at-risk, two breaches */
    T_CHECK(CALL(r, s->ops->pop_due(s, 100, 2, 60, on_due, &r)));
    T_EQ_INT(r.n, 2); /* the third ticket's */
}

static void dead_letters_newest_first(sl_sla_store *s)
{
    result r;
    s->ops->dead_push(s, SL_STR("{\"n\":1}"));
    s->ops->dead_push(s, SL_STR("{\"n\":2}"));
    s->ops->dead_push(s, SL_STR("{\"n\":3}"));
    T_CHECK(CALL(r, s->ops->dead_list(s, 2, on_list, &r)));
    T_EQ_INT(r.rc, SL_OK);
    T_EQ_INT(r.n, 2);
    T_EQ_STR(r.items[0], "{\"n\":3}");
    T_EQ_STR(r.items[1], "{\"n\":2}");
}

static void sync_without_replicas(sl_sla_store *s)
{
    result r;
    T_CHECK(CALL(r, s->ops->sync(s, 0, 100, on_rc, &r)));
    T_EQ_INT(r.rc, SL_OK);
}

static void run(sl_sla_store *(*make)(void), void (*test)(sl_sla_store *))
{
    sl_sla_store *s = make();
    T_CHECK(s != NULL);
    if (!s)
        return;
    test(s);
    s->ops->free(s);
}

#define BOTH(c)                                                                                    \
    T_TEST(mem_##c)                                                                                \
    {                                                                                              \
        run(mem_store, c);                                                                         \
    }                                                                                              \
    T_TEST(redis_##c)                                                                              \
    {                                                                                              \
        run(redis_store, c);                                                                       \
    }

BOTH(upsert_then_get)
BOTH(only_newer_replaces)
BOTH(all_lists_tickets_up_to_max)
BOTH(pop_due_claims_each_alert_once)
BOTH(upsert_replaces_instants)
BOTH(pop_due_honours_max)
BOTH(dead_letters_newest_first)
BOTH(sync_without_replicas)

/* Redis only: the dead letters stay readable from the in-process copy when
 * Redis is gone, and a store that is down says so before any write. */
T_TEST(redis_down_keeps_dead_letters_and_refuses_writes)
{
    sl_sla_store *s = redis_store();
    T_CHECK(s != NULL);
    if (!s)
        return;
    s->ops->dead_push(s, SL_STR("{\"n\":1}"));
    kill(env.pid, SIGKILL);
    waitpid(env.pid, NULL, 0);
    env.pid = 0;
    int64_t end = mono_ms() + 5000;
    while (s->ops->ready(s) && mono_ms() < end)
        event_base_loop(env.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
    T_CHECK(!s->ops->ready(s));
    result r;
    T_CHECK(CALL(r, s->ops->dead_list(s, 10, on_list, &r)));
    T_EQ_INT(r.n, 1);
    T_EQ_STR(r.items[0], "{\"n\":1}");
    sl_ticket t = {.id = SL_STR("t"), .updated_ms = 1};
    T_CHECK(s->ops->upsert(s, &t, SL_STR("{}"), &NO_MARKS, on_rc, &r) != SL_OK);
    s->ops->free(s);
}

T_MAIN("sla_store", mem_upsert_then_get, redis_upsert_then_get, mem_only_newer_replaces,
       redis_only_newer_replaces, mem_all_lists_tickets_up_to_max,
       redis_all_lists_tickets_up_to_max, mem_pop_due_claims_each_alert_once,
       redis_pop_due_claims_each_alert_once, mem_upsert_replaces_instants,
       redis_upsert_replaces_instants, mem_pop_due_honours_max, redis_pop_due_honours_max,
       mem_dead_letters_newest_first, redis_dead_letters_newest_first, mem_sync_without_replicas,
       redis_sync_without_replicas, redis_down_keeps_dead_letters_and_refuses_writes)
