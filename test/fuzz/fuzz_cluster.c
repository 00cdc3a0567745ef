/* fuzz_cluster.c — what sluice does with a Redis Cluster's answers: CLUSTER
 * SHARDS and CLUSTER SLOTS replies read into a slot map, and error replies
 * (MOVED / ASK / TRYAGAIN / CLUSTERDOWN) classified, as hiredis reads them off
 * the socket with sluice's bounded reply objects (fed in splits the input
 * picks). The raw bytes also go through the slot function, as a key would. */
#include <hiredis/hiredis.h>
#include <stdlib.h>

#include "sluice/redis_cluster.h"

#include "reply_feed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sl_cluster_map map;

static void use_reply(const redisReply *rep)
{
    if (sl_cluster_parse_shards(rep, "127.0.0.1", &map) == SL_OK) {
        for (int s = 0; s < SL_CLUSTER_SLOTS; s++) /* every owner is a node read */
            if (map.slot[s] != SL_CLUSTER_NONE && map.slot[s] >= map.n)
                abort();
    }
    if (sl_cluster_parse_slots(rep, "127.0.0.1", &map) == SL_OK) {
        for (size_t i = 0; i < map.n; i++)
            if (map.node[i].master >= (int)map.n || map.node[i].port <= 0)
                abort();
    }
    if (rep->type == REDIS_REPLY_ERROR || rep->type == REDIS_REPLY_STRING) {
        sl_redirect rd;
        sl_redirect_kind k = sl_cluster_parse_redirect(rep->str, rep->len, &rd);
        if ((k == SL_REDIR_MOVED || k == SL_REDIR_ASK) &&
            (rd.slot < 0 || rd.slot >= SL_CLUSTER_SLOTS || rd.port <= 0 || rd.port > 65535))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sl_cluster_slot((const char *)data, size) >= SL_CLUSTER_SLOTS)
        abort();
    sl_fuzz_feed_replies(data, size, use_reply);
    return 0;
}
