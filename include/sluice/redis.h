/* redis.h — the one Redis client every stage shares (hiredis async on the loop).
 *
 * Owns: the hiredis context, reconnect timer, and a small record per command
 * in flight. hiredis 0.14 has no timeouts: every command gets our own timer
 * (redis.timeout_ms). Contract of sl_redis_cmd:
 *   - returns SL_OK: the callback runs exactly once, later (never inside
 *     sl_redis_cmd), with the reply or with a NULL reply and SL_ETIMEDOUT /
 *     SL_EIO; a late reply after a timeout is swallowed;
 *   - cb may be NULL (fire and forget);
 *   - returns SL_EAGAIN: Redis is down (or reconnecting): the callback never
 *     runs; the caller takes its degraded path at once, without waiting.
 * After repeated timeouts (a hung Redis) the connection is dropped and
 * re-established with backoff; while down, nothing is sent and nothing spins. */
#ifndef SLUICE_REDIS_H
#define SLUICE_REDIS_H

#include <hiredis/hiredis.h>

#include "sluice/util.h"

struct event_base;

typedef struct sl_redis sl_redis;
typedef void (*sl_redis_cb)(void *ud, const redisReply *reply, int status);
typedef enum { SL_REDIS_DOWN = 0, SL_REDIS_CONNECTING, SL_REDIS_UP } sl_redis_state;

sl_redis *sl_redis_new(struct event_base *base, const char *host, int port, const char *password,
                       int db, int timeout_ms);
/* Sentinel mode: the master is asked of the sentinels (round robin) before every
 * connect; +switch-master, a READONLY reply or a lost connection re-discovers it. */
sl_redis *sl_redis_new_sentinel(struct event_base *base, char *const *sentinels, size_t n,
                                const char *master_name, const char *password, int db,
                                int timeout_ms);
void sl_redis_free(sl_redis *r);
int sl_redis_cmd(sl_redis *r, sl_redis_cb cb, void *ud, int argc, const char **argv,
                 const size_t *argvlen);
/* The same with its own timeout (for commands that wait on purpose, like WAIT). */
int sl_redis_cmd_timeout(sl_redis *r, int timeout_ms, sl_redis_cb cb, void *ud, int argc,
                         const char **argv, const size_t *argvlen);
/* EVALSHA of a script registered once, falling back to EVAL on NOSCRIPT. */
int sl_redis_eval(sl_redis *r, const char *script, int numkeys, int argc, const char **argv,
                  const size_t *argvlen, sl_redis_cb cb, void *ud);
sl_redis_state sl_redis_get_state(const sl_redis *r);
const char *sl_redis_state_name(sl_redis_state s);
const char *sl_redis_describe(const sl_redis *r); /* "host:port/db", never the password */
uint64_t sl_redis_timeouts(const sl_redis *r);
uint64_t sl_redis_reconnects(const sl_redis *r);
uint64_t sl_redis_failovers(const sl_redis *r);

#endif
