/* test_redis_cluster.c — Redis Cluster's pure parts: the key slot (the
 * specification's CRC16 test vector, hash tags, vectors checked against a real
 * redis-server's CLUSTER KEYSLOT), CLUSTER SHARDS / CLUSTER SLOTS replies
 * (captured from Debian's redis-server 7.0) and the redirect errors; and that
 * every key family of redis_keys.h keeps its scripts' keys in one slot while
 * cache entries spread over the masters. */
#include <hiredis/hiredis.h>
#include <stdio.h>

#include "sluice/answers.h"
#include "sluice/cache_key.h"
#include "sluice/redis_cluster.h"
#include "sluice/redis_keys.h"
#include "t.h"

static uint16_t slot_of(const char *k)
{
    return sl_cluster_slot(k, strlen(k));
}

T_TEST(crc16_spec_vector)
{
    T_EQ_INT(sl_cluster_crc16("123456789", 9), 0x31C3);
    T_EQ_INT(sl_cluster_crc16("", 0), 0);
}

T_TEST(slots_and_hash_tags)
{
    T_EQ_INT(slot_of("somekey"), 11058);
    T_EQ_INT(slot_of("foo{hash_tag}"), 2515);
    T_EQ_INT(slot_of("bar{hash_tag}"), 2515);
    T_EQ_INT(slot_of("{user1}.following"), 8106);
    T_EQ_INT(slot_of("{user1000}.following"), 3443);
    T_EQ_INT(slot_of("{user1000}.followers"), 3443);
    T_EQ_INT(slot_of("foo{}{bar}"), 8363);    /* empty tag: the whole key */
    T_EQ_INT(slot_of("foo{{bar}}zap"), 4015); /* the tag is "{bar" */
    T_EQ_INT(slot_of("{bar"), 4015);
    T_EQ_INT(slot_of("foo{bar}{zap}"), 5061); /* the first tag only: "bar" */
    T_EQ_INT(slot_of("bar"), 5061);
    T_EQ_INT(slot_of("foo{bar"), sl_cluster_crc16("foo{bar", 7) & 16383); /* unclosed */
    T_EQ_INT(slot_of(""), 0);
    T_EQ_INT(slot_of("sluice:{sla}:t:1"), 13208);
    T_EQ_INT(slot_of("sluice:{t:team-a}:rpm"), 5749);
    /* binary keys: a NUL inside is hashed like any byte */
    T_CHECK(sl_cluster_slot("a\0b", 3) != sl_cluster_slot("a", 1));
}

T_TEST(redirects)
{
    sl_redirect rd;
    T_EQ_INT(sl_cluster_parse_redirect("MOVED 3999 127.0.0.1:6381", 25, &rd), SL_REDIR_MOVED);
    T_EQ_INT(rd.slot, 3999);
    T_EQ_STR(rd.host, "127.0.0.1");
    T_EQ_INT(rd.port, 6381);
    const char *ask = "ASK 16383 10.0.0.7:7002";
    T_EQ_INT(sl_cluster_parse_redirect(ask, strlen(ask), &rd), SL_REDIR_ASK);
    T_EQ_INT(rd.slot, 16383);
    T_EQ_STR(rd.host, "10.0.0.7");
    T_EQ_INT(rd.port, 7002);
    const char *same = "MOVED 0 :7000"; /* unknown endpoint: the node that answered */
    T_EQ_INT(sl_cluster_parse_redirect(same, strlen(same), &rd), SL_REDIR_MOVED);
    T_EQ_STR(rd.host, "");
    T_EQ_INT(rd.port, 7000);
    const char *v6 = "MOVED 12 ::1:7001";
    T_EQ_INT(sl_cluster_parse_redirect(v6, strlen(v6), &rd), SL_REDIR_MOVED);
    T_EQ_STR(rd.host, "::1");
    T_EQ_INT(rd.port, 7001);
    const char *tryagain = "TRYAGAIN Multiple keys request during rehashing of slot";
    T_EQ_INT(sl_cluster_parse_redirect(tryagain, strlen(tryagain), &rd), SL_REDIR_TRYAGAIN);
    const char *down = "CLUSTERDOWN The cluster is down";
    T_EQ_INT(sl_cluster_parse_redirect(down, strlen(down), &rd), SL_REDIR_CLUSTERDOWN);
    const char *bad[] = {"MOVED 16384 a:1",
                         "MOVED x a:1",
                         "MOVED 1 a",
                         "MOVED 1 a:0",
                         "MOVED 1 a:65536",
                         "MOVED 1 a:7x",
                         "MOVED",
                         "MOVED ",
                         "ASK 1",
                         "MOVEDX 1 a:1",
                         "ERR unknown command",
                         "NOSCRIPT No matching script",
                         "MOVED 99999999999999999999 a:1",
                         ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (sl_cluster_parse_redirect(bad[i], strlen(bad[i]), &rd) != SL_REDIR_NONE) {
            printf("  not refused: %s\n", bad[i]);
            t_failed_now = 1;
        }
    }
    /* the length bounds the parse, not a NUL */
    T_EQ_INT(sl_cluster_parse_redirect("MOVED 1 a:12345", 12, &rd), SL_REDIR_MOVED);
    T_EQ_INT(rd.port, 12);
}

static redisReply *read_reply(const char *resp, size_t len)
{
    redisReader *rd = redisReaderCreate();
    void *rep = NULL;
    redisReaderFeed(rd, resp, len);
    if (redisReaderGetReply(rd, &rep) != REDIS_OK)
        rep = NULL;
    redisReaderFree(rd);
    return rep;
}

static const char SHARDS[] =
    "*3\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:5460\r\n$5\r\nnodes\r\n*2\r\n*14\r\n"
    "$2\r\nid\r\n$40\r\ndd2335f92d9155f0b54ef1d0d02934eced284524\r\n$4\r\nport\r\n"
    ":17001\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n"
    "$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:4943\r\n$6\r\n"
    "health\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$"
    "40\r\n22b0247068d77a56912a597069290a187e64d8ee\r\n"
    "$4\r\nport\r\n:17006\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n"
    "$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n"
    ":4943\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n*2\r\n:5461\r\n"
    ":10922\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$"
    "40\r\nbb637285e085ced49f1524467b4b560752f46792\r\n"
    "$4\r\nport\r\n:17002\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n"
    "$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
    ":6549\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$"
    "40\r\ne2bec6b2235ee479081e157783780b6b36a10186\r\n"
    "$4\r\nport\r\n:17004\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n"
    "$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n"
    ":6549\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n*2\r\n:10923\r\n"
    ":16383\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$"
    "40\r\na4ca43e8cf9e2c5f0e6322f9c6936b3905066a0c\r\n"
    "$4\r\nport\r\n:17003\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n"
    "$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
    ":4941\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$"
    "40\r\n54e54b8d0ffa71c3e99b91e5b5f7a937fa2d4435\r\n"
    "$4\r\nport\r\n:17005\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n"
    "$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n"
    ":4941\r\n$6\r\nhealth\r\n$6\r\nonline\r\n";

static const char SLOTS[] =
    "*3\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:17001\r\n$"
    "40\r\ndd2335f92d9155f0b54ef1d0d02934eced284524\r\n"
    "*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:17006\r\n$40\r\n22b0247068d77a56912a597069290a187e64d8ee\r\n"
    "*0\r\n*4\r\n:5461\r\n:10922\r\n*4\r\n$9\r\n127.0.0.1\r\n:17002\r\n$40\r\n"
    "bb637285e085ced49f1524467b4b560752f46792\r\n*0\r\n*4\r\n$9\r\n127.0.0.1\r\n"
    ":17004\r\n$40\r\ne2bec6b2235ee479081e157783780b6b36a10186\r\n*0\r\n*4\r\n"
    ":10923\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:17003\r\n$"
    "40\r\na4ca43e8cf9e2c5f0e6322f9c6936b3905066a0c\r\n"
    "*0\r\n*4\r\n$9\r\n127.0.0.1\r\n:17005\r\n$40\r\n54e54b8d0ffa71c3e99b91e5b5f7a937fa2d4435\r\n"
    "*0\r\n";

/* Both replies describe the same 3 masters x 1 replica cluster. */
static void check_three(const sl_cluster_map *m)
{
    T_EQ_INT(m->covered, 16384);
    T_EQ_INT(m->n, 6);
    int a = m->slot[0], b = m->slot[5461], c = m->slot[16383];
    T_EQ_INT(m->node[a].port, 17001);
    T_EQ_INT(m->node[b].port, 17002);
    T_EQ_INT(m->node[c].port, 17003);
    T_EQ_INT(m->slot[5460], a);
    T_EQ_INT(m->slot[10922], b);
    T_EQ_INT(m->slot[10923], c);
    T_EQ_STR(m->node[a].host, "127.0.0.1");
    T_EQ_INT(m->node[a].master, -1);
    size_t replicas = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (m->node[i].master >= 0) {
            replicas++;
            T_EQ_INT(m->node[m->node[i].master].master, -1);
        }
    }
    T_EQ_INT(replicas, 3);
}

T_TEST(cluster_shards_reply)
{
    redisReply *rep = read_reply(SHARDS, sizeof SHARDS - 1);
    T_CHECK(rep);
    sl_cluster_map *m = malloc(sizeof(*m));
    T_EQ_INT(sl_cluster_parse_shards(rep, "127.0.0.1", m), SL_OK);
    check_three(m);
    for (size_t i = 0; i < m->n; i++)
        T_CHECK(m->node[i].online);
    T_EQ_INT(sl_cluster_parse_slots(rep, "127.0.0.1", m), SL_EINVAL); /* not that shape */
    freeReplyObject(rep);
    free(m);
}

T_TEST(cluster_slots_reply)
{
    redisReply *rep = read_reply(SLOTS, sizeof SLOTS - 1);
    T_CHECK(rep);
    sl_cluster_map *m = malloc(sizeof(*m));
    T_EQ_INT(sl_cluster_parse_slots(rep, "127.0.0.1", m), SL_OK);
    check_three(m);
    T_EQ_INT(sl_cluster_parse_shards(rep, "127.0.0.1", m), SL_EINVAL);
    freeReplyObject(rep);
    free(m);
}

/* A shard whose master failed (still the owner until a replica is promoted),
 * a failed master left without slots, replicas listed before their master,
 * and "?" / "" endpoints (the ip, else the node asked). */
static const char SHARDS_ODD[] =
    "*3\r\n*4\r\n$5\r\nslots\r\n*4\r\n:0\r\n:99\r\n:200\r\n:299\r\n$5\r\nnodes\r\n*2\r\n*14\r\n$"
    "2\r\nid\r\n$4\r\nxxxx\r\n$4\r\nport\r\n:7004\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$"
    "8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\nreplication-"
    "offset\r\n:1\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$4\r\nxxxx\r\n$"
    "4\r\nport\r\n:7001\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n$"
    "4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:1\r\n$6\r\nhealth\r\n$"
    "6\r\nfailed\r\n*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*1\r\n*14\r\n$2\r\nid\r\n$"
    "4\r\nxxxx\r\n$4\r\nport\r\n:7009\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$"
    "9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:1\r\n$"
    "6\r\nhealth\r\n$6\r\nfailed\r\n*4\r\n$5\r\nslots\r\n*2\r\n:100\r\n:199\r\n$5\r\nnodes\r\n*"
    "2\r\n*14\r\n$2\r\nid\r\n$4\r\nxxxx\r\n$4\r\nport\r\n:7002\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$"
    "8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:1\r\n$"
    "6\r\nhealth\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$4\r\nxxxx\r\n$4\r\nport\r\n:7003\r\n$"
    "2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$0\r\n\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$"
    "18\r\nreplication-offset\r\n:1\r\n$6\r\nhealth\r\n$7\r\nloading\r\n";

T_TEST(cluster_replies_odd_shapes)
{
    sl_cluster_map *m = malloc(sizeof(*m));
    redisReply *odd = read_reply(SHARDS_ODD, sizeof SHARDS_ODD - 1);
    T_EQ_INT(sl_cluster_parse_shards(odd, "10.9.9.9", m), SL_OK);
    freeReplyObject(odd);
    T_EQ_INT(m->covered, 300);
    T_EQ_INT(m->node[m->slot[0]].port, 7001);
    T_CHECK(!m->node[m->slot[0]].online);
    T_EQ_INT(m->slot[250], m->slot[0]);
    T_EQ_INT(m->slot[300], SL_CLUSTER_NONE);
    T_EQ_INT(m->node[m->slot[150]].port, 7002);
    T_EQ_STR(m->node[m->slot[150]].host, "127.0.0.1");
    T_EQ_INT(m->n, 5);
    for (size_t i = 0; i < m->n; i++) {
        if (m->node[i].port == 7004)
            T_EQ_INT(m->node[m->node[i].master].port, 7001);
        if (m->node[i].port == 7003) {
            T_EQ_INT(m->node[m->node[i].master].port, 7002);
            T_CHECK(m->node[i].online);             /* "loading": readable, just empty */
            T_EQ_STR(m->node[i].host, "127.0.0.1"); /* endpoint "": the ip */
        }
        if (m->node[i].port == 7009)
            T_EQ_INT(m->node[i].master, -1);
    }
    /* an empty endpoint stands for the node asked; a range past 16383 is refused */
    const char ok[] = "*1\r\n*3\r\n:0\r\n:99\r\n*2\r\n$0\r\n\r\n:7000\r\n";
    redisReply *rep = read_reply(ok, sizeof ok - 1);
    T_EQ_INT(sl_cluster_parse_slots(rep, "10.1.1.1", m), SL_OK);
    T_EQ_INT(m->covered, 100);
    T_EQ_STR(m->node[m->slot[0]].host, "10.1.1.1");
    T_EQ_INT(m->slot[100], SL_CLUSTER_NONE);
    freeReplyObject(rep);
    const char *bad[] = {"*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\na\r\n:7000\r\n",
                         "*1\r\n*3\r\n:9\r\n:3\r\n*2\r\n$1\r\na\r\n:7000\r\n",
                         "*1\r\n*3\r\n:0\r\n:3\r\n*1\r\n$1\r\na\r\n",
                         "+OK\r\n",
                         "*1\r\n:5\r\n",
                         "-ERR unknown subcommand 'SHARDS'\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rep = read_reply(bad[i], strlen(bad[i]));
        T_EQ_INT(sl_cluster_parse_slots(rep, "h", m), SL_EINVAL);
        T_EQ_INT(sl_cluster_parse_shards(rep, "h", m), SL_EINVAL);
        freeReplyObject(rep);
    }
    T_EQ_INT(sl_cluster_parse_shards(NULL, "h", m), SL_EINVAL);
    free(m);
}

/* Every script and multi-key command keeps its keys in one slot. */
T_TEST(script_keys_share_a_slot)
{
    const char *tenants[] = {"team-a", "team-b", "we{ir}d", "}x{", "a}b", ""};
    for (size_t i = 0; i < sizeof tenants / sizeof tenants[0]; i++) {
        char rpm[160], tpm[160], spend[160];
        snprintf(rpm, sizeof rpm, SL_RK_TENANT_RPM, tenants[i]);
        snprintf(tpm, sizeof tpm, SL_RK_TENANT_TPM, tenants[i]);
        snprintf(spend, sizeof spend, SL_RK_TENANT_SPEND, tenants[i], 1, 20423L);
        T_EQ_INT(slot_of(rpm), slot_of(tpm)); /* LIMIT_SCRIPT: all three; SETTLE: tpm + spend */
        T_EQ_INT(slot_of(rpm), slot_of(spend));
    }
    char a[160], b[160];
    snprintf(a, sizeof a, SL_RK_TENANT_RPM, "team-a");
    snprintf(b, sizeof b, SL_RK_TENANT_RPM, "team-b");
    T_CHECK(slot_of(a) != slot_of(b)); /* tenants spread */
    /* SLA: UPSERT (ticket, risk, due, ids), ALL and TICK (ticket and alert keys
     * built inside the scripts), WAIT routed by the ids key */
    uint16_t sla = slot_of(SL_RK_SLA_IDS);
    const char *fixed[] = {SL_RK_SLA_RISK,
                           SL_RK_SLA_DUE,
                           SL_RK_SLA_DEAD,
                           SL_RK_SLA_TICKET "T-1",
                           SL_RK_SLA_TICKET "we}i{rd",
                           SL_RK_SLA_ALERT "at_risk:r|T-1",
                           SL_RK_SLA_ALERT "breached:s|{x}"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        T_EQ_INT(slot_of(fixed[i]), sla);
    /* coalescing: the lock, its value (MGET) and the renew/unlock scripts */
    for (uint64_t i = 0; i < 200; i++) {
        sl_cache_key k = {.hi = i * 0x9E3779B97F4A7C15ull, .lo = ~i};
        char v[80], lock[80];
        sl_cache_key_redis(&k, SL_CACHE_KEY_VERSION, v);
        sl_cache_key_redis(&k, "lock", lock);
        T_EQ_INT(slot_of(v), slot_of(lock));
    }
    /* idempotency (answers.c): CLAIM_SCRIPT takes the answer and its lock */
    const char *idems[] = {"req-1", "a}b{c", ""};
    for (size_t i = 0; i < sizeof idems / sizeof idems[0]; i++) {
        sl_cache_key k;
        char v[96], lock[96];
        sl_answers_key("i", "team-a", idems[i], &k);
        sl_answers_redis_key("i", &k, "v", v);
        sl_answers_redis_key("i", &k, "lock", lock);
        T_EQ_INT(slot_of(v), slot_of(lock));
    }
}

/* Cache entries spread evenly over the masters of a 3-way split. */
T_TEST(cache_entries_spread)
{
    size_t per[3] = {0};
    for (uint64_t i = 0; i < 3000; i++) {
        sl_cache_key k = {.hi = i * 0x9E3779B97F4A7C15ull ^ 0x1234, .lo = i * 31 + 7};
        char v[80];
        sl_cache_key_redis(&k, SL_CACHE_KEY_VERSION, v);
        uint16_t s = slot_of(v);
        per[s <= 5460 ? 0 : s <= 10922 ? 1 : 2]++;
    }
    for (int i = 0; i < 3; i++)
        T_CHECK(per[i] > 800 && per[i] < 1200);
}

T_MAIN("redis_cluster", crc16_spec_vector, slots_and_hash_tags, redirects, cluster_shards_reply,
       cluster_slots_reply, cluster_replies_odd_shapes, script_keys_share_a_slot,
       cache_entries_spread)
