/* cache.h — the response-cache stage's setup (src/stages/cache.c).
 *
 * The stage borrows the process's L1 store and Redis client; main owns them. */
#ifndef SLUICE_CACHE_H
#define SLUICE_CACHE_H

#include "sluice/l1.h"
#include "sluice/redis.h"

/* redis may be NULL (embedded mode). */
void sl_cache_setup(sl_l1 *l1, sl_redis *redis);

#endif
