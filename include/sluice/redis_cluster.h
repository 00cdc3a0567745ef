/* redis_cluster.h — Redis Cluster behind an sl_redis (store-internal; users see redis.h).
 *
 * Owns: the pure parts, which need no network (tested and fuzzed alone):
 *   - the key slot: CRC16-XMODEM of the key, or of its hash tag {...}, mod 16384,
 *     as the Redis Cluster specification defines it;
 *   - CLUSTER SHARDS and CLUSTER SLOTS replies read into a slot map;
 *   - MOVED / ASK / TRYAGAIN / CLUSTERDOWN error replies;
 * and the runtime an sl_redis made by sl_redis_new_cluster delegates to: one
 * plain sl_redis per master (plus one READONLY sl_redis per replica with
 * read_from_replicas), the slot table, redirects followed, the map refreshed on
 * a schedule and after connection errors. redis.c calls sl_cluster_* only for
 * an sl_redis whose cluster field is set. */
#ifndef SLUICE_REDIS_CLUSTER_H
#define SLUICE_REDIS_CLUSTER_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

#include "sluice/buf.h"
#include "sluice/redis.h"

#define SL_CLUSTER_SLOTS     16384
#define SL_CLUSTER_MAX_NODES 64
#define SL_CLUSTER_NONE      0xFF /* a slot no node serves */

/* The slot of a key: the part between the first '{' and the next '}' when it
 * is not empty, else the whole key. */
uint16_t sl_cluster_slot(const char *key, size_t len);
uint16_t sl_cluster_crc16(const char *p, size_t len);

typedef struct sl_cluster_addr {
    char host[128];
    int port;
    int master;  /* -1: a master; else the index of the master it replicates */
    bool online; /* CLUSTER SHARDS health "online" or "loading", not "fail" */
} sl_cluster_addr;

typedef struct sl_cluster_map {
    size_t n;
    sl_cluster_addr node[SL_CLUSTER_MAX_NODES];
    uint8_t slot[SL_CLUSTER_SLOTS]; /* index into node, or SL_CLUSTER_NONE */
    size_t covered;                 /* slots with a master */
} sl_cluster_map;

/* Read a reply into m (which they reset). asked_host stands in for an empty or
 * "?" endpoint (the node that answered). SL_OK, or SL_EINVAL when the reply is
 * not of that shape (m then holds what was read before the fault). */
int sl_cluster_parse_shards(const redisReply *rep, const char *asked_host, sl_cluster_map *m);
int sl_cluster_parse_slots(const redisReply *rep, const char *asked_host, sl_cluster_map *m);

typedef enum {
    SL_REDIR_NONE = 0,
    SL_REDIR_MOVED,
    SL_REDIR_ASK,
    SL_REDIR_TRYAGAIN,
    SL_REDIR_CLUSTERDOWN
} sl_redirect_kind;

typedef struct sl_redirect {
    sl_redirect_kind kind;
    int slot;       /* MOVED/ASK */
    char host[128]; /* MOVED/ASK; "" when the reply left it out (the same host) */
    int port;
} sl_redirect;

/* Classifies an error reply's text; a malformed MOVED/ASK is SL_REDIR_NONE. */
sl_redirect_kind sl_cluster_parse_redirect(const char *err, size_t len, sl_redirect *out);

/* ---- the runtime (called by redis.c) ------------------------------------------------ */

typedef struct sl_cluster sl_cluster;

sl_cluster *sl_cluster_new(struct event_base *base, char *const *seeds, size_t n,
                           const char *password, int timeout_ms, bool read_from_replicas);
void sl_cluster_free(sl_cluster *c);
/* Same contract as sl_redis_cmd (redis.h); key NULL: routed by argv (see redis.h). */
int sl_cluster_cmd(sl_cluster *c, const char *key, size_t keylen, int flags, int timeout_ms,
                   sl_redis_cb cb, void *ud, int argc, const char **argv, const size_t *argvlen);
/* A write acknowledged by replicas (redis.c, sl_redis_eval_acked): the runtime
 * sends it with sl_acked_on_write as its callback and, behind it on the same
 * node connection, the WAIT of sl_acked_send_wait, again after each redirect. */
typedef struct sl_acked sl_acked;
void sl_acked_on_write(void *ud, const redisReply *reply, int status);
void sl_acked_send_wait(sl_acked *a, sl_redis *to);
int sl_cluster_cmd_acked(sl_cluster *c, sl_acked *a, int timeout_ms, int argc, const char **argv,
                         const size_t *argvlen);
sl_redis_state sl_cluster_state(const sl_cluster *c);
const char *sl_cluster_describe(const sl_cluster *c);
void sl_cluster_get_stats(const sl_cluster *c, sl_redis_cluster_stats *out);
void sl_cluster_nodes_json(const sl_cluster *c, sl_buf *b);

/* redis.c: a node connection for the cluster (db 0); readonly sends READONLY
 * after every connect; on_up runs (from the loop) each time it connects. */
sl_redis *sl_redis_new_node(struct event_base *base, const char *host, int port,
                            const char *password, int timeout_ms, bool readonly,
                            void (*on_up)(void *arg), void *arg);

/* redis.c: queues a command already in RESP form (the runtime formats each
 * command once, and sends the same bytes again after a redirect). */
int sl_redis_node_send(sl_redis *r, int timeout_ms, sl_redis_cb cb, void *ud, const char *resp,
                       size_t resp_len);

#endif
