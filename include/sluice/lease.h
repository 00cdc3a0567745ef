/* lease.h — a cross-instance lock held as a lease on Redis (coalescing's
 * flight lock, an idempotency key's lock).
 *
 * Owns: the lease's renewal timer, and the two scripts that touch a held lock.
 * A lock is a key set to a random token with a TTL of coalesce.lease_ms by its
 * taker (SET NX PX, or a claim script); while the holder's call runs the lease
 * is renewed every lease/3 by a compare-and-renew on the token, so a live
 * holder keeps it however long its call takes and a dead one loses it within
 * a lease; the holder lets go with a compare-and-delete. Both are fire and
 * forget: a renewal lost to a slow Redis is retried at the next tick, and a
 * lock another instance took over is never touched (its token differs).
 * The key and token are the holder's (not copied): they outlive the lease. */
#ifndef SLUICE_LEASE_H
#define SLUICE_LEASE_H

#include "sluice/config.h"

struct event;
struct event_base;
struct sl_redis;

typedef struct sl_lease {
    struct sl_redis *redis; /* NULL: not held */
    const char *key, *token;
    int ms;
    struct event *renew_ev; /* every ms/3 while held */
} sl_lease;

/* coalesce.lease_ms, the lease of every cross-instance lock. */
int sl_lease_ms(const sl_config *c);
/* The lock key, set to token, is ours: renew it every ms/3 from now on. */
void sl_lease_hold(sl_lease *l, struct event_base *base, struct sl_redis *redis, const char *key,
                   const char *token, int ms);
/* Lets go of a held lock (compare-and-delete), after what it guards is
 * written on the same connection; stops renewing. A lease not held: nothing. */
void sl_lease_release(sl_lease *l);
/* Stops renewing and frees the timer, without touching the lock. */
void sl_lease_stop(sl_lease *l);

#endif
