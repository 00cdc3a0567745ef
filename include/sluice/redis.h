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
 * re-established with backoff; while down, nothing is sent and nothing spins.
 *
 * Routing (Redis Cluster, sl_redis_new_cluster): every command goes to the
 * master of its key's slot. sl_redis_cmd and sl_redis_cmd_timeout route by
 * argv[1] (the key of every single-key command, and of MGET/DEL over one
 * hash-tag family); sl_redis_eval by the script's first key. A command whose
 * key is not argv[1] (WAIT, XREAD ...) or that may read a replica names its
 * key with sl_redis_cmd_at. Multi-key commands and scripts keep their keys in
 * one slot by design (families and tags: redis_keys.h). MOVED, ASK, TRYAGAIN and
 * CLUSTERDOWN are followed inside the client, within the command's timeout;
 * the callback sees only the final reply. On one Redis, routing is a no-op. */
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
/* Redis Cluster: seeds "host:port"; the slot map is read from them
 * (CLUSTER SHARDS, else CLUSTER SLOTS) and refreshed on a schedule and after
 * connection errors. read_from_replicas: commands sent with
 * SL_REDIS_REPLICA_OK may go to a replica of their slot (READONLY). */
sl_redis *sl_redis_new_cluster(struct event_base *base, char *const *seeds, size_t n,
                               const char *password, int timeout_ms, bool read_from_replicas);
void sl_redis_free(sl_redis *r);
int sl_redis_cmd(sl_redis *r, sl_redis_cb cb, void *ud, int argc, const char **argv,
                 const size_t *argvlen);
/* The same with its own timeout (for commands that wait on purpose, like WAIT). */
int sl_redis_cmd_timeout(sl_redis *r, int timeout_ms, sl_redis_cb cb, void *ud, int argc,
                         const char **argv, const size_t *argvlen);
/* The same routed by key (NULL: as sl_redis_cmd); timeout_ms 0: redis.timeout_ms.
 * flags: SL_REDIS_REPLICA_OK for reads where staleness is harmless (L2 cache
 * lookups), never for locks, limits or tickets. */
enum { SL_REDIS_REPLICA_OK = 1 };
int sl_redis_cmd_at(sl_redis *r, const char *key, size_t keylen, int flags, int timeout_ms,
                    sl_redis_cb cb, void *ud, int argc, const char **argv, const size_t *argvlen);
/* EVALSHA of a script registered once, falling back to EVAL on NOSCRIPT.
 * script: a text that lives, unchanged, as long as the process (a static
 * string): its SHA1 is computed once and kept by the text's address. */
int sl_redis_eval(sl_redis *r, const char *script, int numkeys, int argc, const char **argv,
                  const size_t *argvlen, sl_redis_cb cb, void *ud);
/* The same for a write that must be held by acks replicas before it counts
 * (SLA tickets): WAIT acks wait_ms is pipelined behind the script on the
 * connection that executes it (on a cluster: the node that took the write,
 * after any ASK or MOVED). cb gets the script's reply (a scalar) once WAIT
 * reports acks replicas, else a NULL reply and SL_EIO; an error reply at once.
 * acks <= 0: as sl_redis_eval. */
int sl_redis_eval_acked(sl_redis *r, const char *script, int numkeys, int argc, const char **argv,
                        const size_t *argvlen, int acks, int wait_ms, sl_redis_cb cb, void *ud);
sl_redis_state sl_redis_get_state(const sl_redis *r);
const char *sl_redis_state_name(sl_redis_state s);
const char *sl_redis_describe(const sl_redis *r); /* "host:port/db", never the password */
uint64_t sl_redis_timeouts(const sl_redis *r);
uint64_t sl_redis_reconnects(const sl_redis *r);
uint64_t sl_redis_failovers(const sl_redis *r);

/* What /health, /metrics and the dashboard say about a cluster. */
typedef struct sl_redis_cluster_stats {
    size_t masters, masters_up, replicas, nodes;
    size_t slots_covered;
    uint64_t moved, ask, tryagain, clusterdown; /* redirects followed, by kind */
    uint64_t refreshes;                         /* slot maps read */
    uint64_t failovers;                         /* replicas seen promoted */
    uint64_t timeouts, reconnects;              /* summed over the node connections */
} sl_redis_cluster_stats;
/* false (out untouched) when r is not on a cluster. */
bool sl_redis_cluster_stats_get(const sl_redis *r, sl_redis_cluster_stats *out);
/* The nodes as a JSON array: [{"address","role","state","slots"}]; "[]" off a cluster. */
struct sl_buf;
void sl_redis_cluster_nodes_json(const sl_redis *r, struct sl_buf *b);

#endif
