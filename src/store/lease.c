/* lease.c — cross-instance locks held as leases on Redis; see lease.h. */
#include "sluice/lease.h"

#include <event2/event.h>
#include <stdio.h>

#include "sluice/redis.h"

static const char *const UNLOCK_SCRIPT =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
static const char *const RENEW_SCRIPT =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
    "end return 0";

int sl_lease_ms(const sl_config *c)
{
    return c->coalesce.lease_ms >= 100 ? c->coalesce.lease_ms : 2000;
}

static void on_renew(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    sl_lease *l = arg;
    if (!l->redis)
        return;
    char px[16];
    snprintf(px, sizeof px, "%d", l->ms);
    const char *argv[] = {l->key, l->token, px};
    sl_redis_eval(l->redis, RENEW_SCRIPT, 1, 3, argv, NULL, NULL, NULL);
}

void sl_lease_hold(sl_lease *l, struct event_base *base, sl_redis *redis, const char *key,
                   const char *token, int ms)
{
    l->redis = redis;
    l->key = key;
    l->token = token;
    l->ms = ms;
    if (!l->renew_ev)
        l->renew_ev = event_new(base, -1, EV_PERSIST, on_renew, l);
    int every = ms / 3;
    struct timeval tv = {every / 1000, (every % 1000) * 1000};
    if (l->renew_ev)
        event_add(l->renew_ev, &tv);
}

void sl_lease_release(sl_lease *l)
{
    if (l->redis) {
        const char *argv[] = {l->key, l->token};
        sl_redis_eval(l->redis, UNLOCK_SCRIPT, 1, 2, argv, NULL, NULL, NULL);
        l->redis = NULL;
    }
    sl_lease_stop(l);
}

void sl_lease_stop(sl_lease *l)
{
    if (l->renew_ev)
        event_free(l->renew_ev);
    l->renew_ev = NULL;
}
