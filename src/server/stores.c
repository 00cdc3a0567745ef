/* stores.c — what /health and /metrics say about the L1 cache and Redis. */
#include "sluice/l1.h"
#include "sluice/metrics.h"
#include "sluice/redis.h"
#include "sluice/semstore.h"
#include "sluice/server.h"
#include "sluice/stages.h"

/* ,"cluster":{...} on a Redis Cluster: what /health and the dashboard show. */
static void health_cluster(sl_buf *b, sl_redis *redis)
{
    sl_redis_cluster_stats st;
    if (!sl_redis_cluster_stats_get(redis, &st))
        return;
    sl_buf_printf(b,
                  ",\"cluster\":{\"masters\":%zu,\"masters_up\":%zu,\"replicas\":%zu,"
                  "\"slots_covered\":%zu,\"redirects\":{\"moved\":%llu,\"ask\":%llu,"
                  "\"tryagain\":%llu,\"clusterdown\":%llu},\"map_refreshes\":%llu,\"nodes\":",
                  st.masters, st.masters_up, st.replicas, st.slots_covered,
                  (unsigned long long)st.moved, (unsigned long long)st.ask,
                  (unsigned long long)st.tryagain, (unsigned long long)st.clusterdown,
                  (unsigned long long)st.refreshes);
    sl_redis_cluster_nodes_json(redis, b);
    sl_buf_append_c(b, "}");
}

static void metrics_cluster(sl_redis *redis)
{
    sl_redis_cluster_stats st;
    if (!sl_redis_cluster_stats_get(redis, &st))
        return;
    sl_metric_set(SL_M_REDIS_CLUSTER_MASTERS, (double)st.masters_up, (const char *const[]){"up"});
    sl_metric_set(SL_M_REDIS_CLUSTER_MASTERS, (double)(st.masters - st.masters_up),
                  (const char *const[]){"down"});
    sl_metric_set(SL_M_REDIS_CLUSTER_SLOTS, (double)st.slots_covered, NULL);
    const struct {
        const char *kind;
        uint64_t n;
    } kinds[] = {{"moved", st.moved},
                 {"ask", st.ask},
                 {"tryagain", st.tryagain},
                 {"clusterdown", st.clusterdown}};
    for (size_t i = 0; i < SL_ARRAY_LEN(kinds); i++)
        sl_metric_set(SL_M_REDIS_CLUSTER_REDIRECTS, (double)kinds[i].n,
                      (const char *const[]){kinds[i].kind});
    sl_metric_set(SL_M_REDIS_CLUSTER_REFRESHES, (double)st.refreshes, NULL);
}

/* The stores are the pipeline's (main wires them through sl_pipeline_init). */
void sl_ops_health_stores(sl_buf *b)
{
    sl_l1 *l1 = sl_pipeline_env()->l1;
    sl_redis *redis = sl_pipeline_env()->redis;
    sl_l1_stats st = {0};
    if (l1)
        sl_l1_get_stats(l1, &st);
    sl_buf_printf(
        b,
        ",\"cache\":{\"entries\":%zu,\"bytes\":%zu,\"max_bytes\":%zu,\"hits\":%llu,\"misses\":%llu,"
        "\"evictions\":%llu,\"aliases\":%zu,\"exact_hits\":%llu}",
        st.entries, st.bytes, st.max_bytes, (unsigned long long)st.hits,
        (unsigned long long)st.misses, (unsigned long long)st.evictions, st.aliases,
        (unsigned long long)st.alias_hits);
    sl_buf_printf(b, ",\"coalescing\":{\"flights\":%zu,\"coalesced\":%llu,\"replay_bytes\":%zu}",
                  sl_coalesce_flights(), (unsigned long long)sl_coalesce_count(),
                  sl_coalesce_replay_bytes());
    sl_semstore *sem = sl_pipeline_env()->semantic;
    sl_semstore_stats ss = {0};
    if (sem)
        sl_semstore_get_stats(sem, &ss);
    sl_buf_printf(b,
                  ",\"semantic\":{\"enabled\":%s,\"entries\":%zu,\"max_entries\":%zu,"
                  "\"memory_bytes\":%zu,\"learned\":%llu,\"rebuilt\":%s}",
                  sem ? "true" : "false", ss.entries, ss.max_entries, ss.memory_bytes,
                  (unsigned long long)ss.learned, ss.rebuilt ? "true" : "false");
    sl_buf_append_c(b, ",\"redis\":");
    if (!redis) {
        sl_buf_append_c(b, "null");
        return;
    }
    sl_buf_printf(b, "{\"address\":");
    sl_buf_json_cstr(b, sl_redis_describe(redis));
    sl_buf_printf(b, ",\"failovers\":%llu", (unsigned long long)sl_redis_failovers(redis));
    sl_buf_printf(b, ",\"state\":\"%s\",\"timeouts\":%llu,\"reconnects\":%llu",
                  sl_redis_state_name(sl_redis_get_state(redis)),
                  (unsigned long long)sl_redis_timeouts(redis),
                  (unsigned long long)sl_redis_reconnects(redis));
    health_cluster(b, redis);
    sl_buf_append_c(b, "}");
}

void sl_ops_metrics_stores(void)
{
    sl_l1 *l1 = sl_pipeline_env()->l1;
    sl_redis *redis = sl_pipeline_env()->redis;
    sl_l1_stats st = {0};
    if (l1)
        sl_l1_get_stats(l1, &st);
    sl_metric_set(SL_M_CACHE_ENTRIES, (double)st.entries, NULL);
    sl_metric_set(SL_M_CACHE_BYTES, (double)st.bytes, NULL);
    sl_metric_set(SL_M_REDIS_UP, redis && sl_redis_get_state(redis) == SL_REDIS_UP, NULL);
    sl_metric_set(SL_M_REDIS_FAILOVERS, (double)sl_redis_failovers(redis), NULL);
    metrics_cluster(redis);
}
