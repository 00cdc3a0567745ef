/* test_config.c — defaults, the example file, errors with file:line: key. */
#include <stdlib.h>

#include "sluice/auth.h"
#include "sluice/config.h"
#include "t.h"

static char err[1024];

static sl_config *load(const char *yaml)
{
    return sl_config_load_string("t.yaml", yaml, strlen(yaml), err, sizeof err);
}

T_TEST(defaults)
{
    sl_config *c = load("");
    T_CHECK(c != NULL);
    T_EQ_STR(c->listen, "127.0.0.1:8080");
    T_EQ_INT(c->listen_port, 8080);
    T_EQ_INT(c->timeouts.first_byte_ms, 60000);
    T_EQ_INT(c->cache.l1_max_bytes, 64 << 20);
    T_EQ_INT(c->redis.timeout_ms, 50);
    T_CHECK(c->redis.url == NULL);
    T_EQ_INT(c->cache.max_ttl_s, 2592000);
    T_CHECK(c->cache.sampled && !c->cache.scope_user);
    T_EQ_INT(c->server.max_json_members, 10000);
    T_EQ_INT(c->server.max_json_values, 1000000);
    sl_config_unref(c);
    c = load("cache: { sampled: false, scope: user, max_ttl_s: 7200, ttl_s: 7200 }\n"
             "server: { max_json_members: 5, max_json_values: 50 }\n");
    T_CHECK(c != NULL);
    T_CHECK(c && !c->cache.sampled && c->cache.scope_user && c->cache.max_ttl_s == 7200);
    T_CHECK(c && c->server.max_json_members == 5 && c->server.max_json_values == 50);
    if (c)
        sl_config_unref(c);
}

/* providers[].api and responses.store_ttl_s (issue 16). */
T_TEST(responses_keys)
{
    sl_config *c = load("providers:\n"
                        "  - {name: a, kind: openai, base_url: http://x}\n"
                        "  - {name: b, kind: openai, api: chat, base_url: http://y}\n");
    T_CHECK(c != NULL);
    if (!c)
        return;
    T_EQ_INT(c->providers[0].api, SL_PROVIDER_API_RESPONSES);
    T_EQ_INT(c->providers[1].api, SL_PROVIDER_API_CHAT);
    T_EQ_INT(c->responses.store_ttl_s, 30 * 86400);
    sl_config_unref(c);
    c = load("responses: {store_ttl_s: 60}\n");
    T_CHECK(c && c->responses.store_ttl_s == 60);
    if (c)
        sl_config_unref(c);
    T_CHECK(load("providers:\n  - {name: a, api: soap, base_url: http://x}\n") == NULL);
    T_CHECK(strstr(err, "api") && strstr(err, "responses | chat"));
    T_CHECK(load("responses: {store_ttl_s: 0}\n") == NULL);
    T_CHECK(load("responses: {keep: 1}\n") == NULL);
}

T_TEST(example_file_loads)
{
    unsetenv("OPENAI_API_KEY");
    sl_config *c = sl_config_load("conf/sluice.yaml", err, sizeof err);
    if (!c)
        printf("  %s\n", err);
    T_CHECK(c != NULL);
    if (c) {
        T_CHECK(c->n_providers >= 1);
        T_CHECK(sl_config_price(c, SL_STR("gpt-4o-mini")) != NULL);
        sl_config_unref(c);
    }
}

T_TEST(values_and_env)
{
    setenv("SL_TEST_KEY", "sk-abc", 1);
    sl_config *c =
        load("listen: 0.0.0.0:9000\n"
             "redis: { url: \"redis://:pw@10.0.0.1:6380/2\" }\n"
             "providers:\n"
             "  - name: a\n    kind: anthropic\n    base_url: http://x/v1/\n    api_key: "
             "${SL_TEST_KEY}\n    models: [\"claude-*\"]\n"
             "  - { name: b, base_url: \"http://y\", api_key: \"${NOPE:-dflt}\" }\n"
             "cache: { l1_max_bytes: 1MiB, ttl_s: 5 }\n"
             "keys:\n  - { key: k1, tenant: t1, rpm: 10, budget_usd: 2.5, budget_period: daily }\n"
             "sla:\n  targets:\n    enterprise: { critical: { response: 15, resolution: 240 } }\n");
    if (!c)
        printf("  %s\n", err);
    T_CHECK(c != NULL);
    if (!c)
        return;
    T_EQ_INT(c->listen_port, 9000);
    T_EQ_STR(c->redis.host, "10.0.0.1");
    T_EQ_INT(c->redis.port, 6380);
    T_EQ_INT(c->redis.db, 2);
    T_EQ_STR(c->redis.password, "pw");
    T_EQ_INT(c->providers[0].kind, SL_PROVIDER_ANTHROPIC);
    T_EQ_STR(c->providers[0].base_url, "http://x/v1");
    T_EQ_STR(c->providers[0].api_key, "sk-abc");
    T_EQ_STR(c->providers[1].api_key, "dflt");
    T_EQ_INT(c->cache.l1_max_bytes, 1 << 20);
    T_EQ_INT(c->keys[0].rpm, 10);
    T_EQ_INT(c->keys[0].budget_period, SL_BUDGET_DAILY);
    T_EQ_INT(c->sla.n_targets, 1);
    T_EQ_INT(c->sla.targets[0].resolution_min, 240);
    T_EQ_INT(sl_config_provider_for(c, SL_STR("claude-3-5-haiku"), 0), 0);
    T_EQ_INT(sl_config_provider_for(c, SL_STR("gpt-4o"), 0), 1);
    T_CHECK(sl_auth_client_key(c, SL_STR("k1")) == &c->keys[0]);
    T_CHECK(sl_auth_client_key(c, SL_STR("k2")) == NULL);
    T_CHECK(sl_auth_client_key(c, SL_STR("k1x")) == NULL);
    sl_config_unref(c);
}

T_TEST(errors_name_file_line_key)
{
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"listen: 1.2.3.4:99999\n", "t.yaml:1: listen:"},
        {"timeouts:\n  connect_ms: -1\n", "t.yaml:2: timeouts.connect_ms:"},
        {"bogus: 1\n", "t.yaml:1: bogus: unknown key"},
        {"cache: { enabled: maybe }\n", "t.yaml:1: cache.enabled:"},
        {"providers:\n  - { name: a, kind: llama, base_url: http://x }\n", "providers[0].kind"},
        {"providers:\n  - { name: a, base_url: http://x }\n  - { name: a, base_url: http://y }\n",
         "duplicate provider"},
        {"providers:\n  - { name: a, base_url: http://x, api_key: \"${SL_MISSING_VAR}\" }\n",
         "SL_MISSING_VAR"},
        {"listen: [1\n", "t.yaml:"},
        {"cache: { l1_max_bytes: lots }\n", "cache.l1_max_bytes"},
        {"sla: { at_risk_ratio: 2 }\n", "sla.at_risk_ratio"},
        {"redis: { url: \"http://x\" }\n", "redis.url"},
        /* found by fuzz_config: a second sla.targets overflowed the first's array */
        {"sla:\n  targets: { gold: { high: { response: 1 } } }\n"
         "sla:\n  targets: { gold: { low: { response: 2 } }, silver: { low: { response: 3 } } }\n",
         "t.yaml:3: sla: duplicate key"},
        {"cache: { enabled: true, enabled: false }\n", "cache.enabled: duplicate key"},
        {"cache: { scope: team }\n", "t.yaml:1: cache.scope: expected tenant or user"},
        {"cache: { ttl_s: 7200, max_ttl_s: 3600 }\n", "cache.ttl_s: 7200 is more than"},
        {"server: { max_json_members: 0 }\n", "server.max_json_members"},
        /* issue 17 item 7: an empty admin key opened the dashboard */
        {"admin:\n  key: \"\"\n", "t.yaml:2: admin.key: empty"},
        {"admin: { key: short }\n", "t.yaml:1: admin.key: too short"},
    };
    unsetenv("SL_MISSING_VAR");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        sl_config *c = load(cases[i].yaml);
        T_CHECK(c == NULL);
        if (c)
            sl_config_unref(c);
        if (!strstr(err, cases[i].want))
            printf("  case %zu: got \"%s\"\n", i, err);
        T_CHECK(strstr(err, cases[i].want) != NULL);
    }
}

T_TEST(model_globs)
{
    T_CHECK(sl_model_match("*", SL_STR("anything")));
    T_CHECK(sl_model_match("claude-*", SL_STR("claude-3")));
    T_CHECK(!sl_model_match("claude-*", SL_STR("gpt-4")));
    T_CHECK(sl_model_match("gpt-4o", SL_STR("gpt-4o")));
    T_CHECK(!sl_model_match("gpt-4o", SL_STR("gpt-4o-mini")));
    T_CHECK(sl_model_match("*-mini", SL_STR("gpt-4o-mini")));
}

/* sl_auth: constant time, and nothing matches an empty credential. */
T_TEST(auth_equal)
{
    T_CHECK(sl_auth_equal(SL_STR("sk-admin-1"), "sk-admin-1"));
    T_CHECK(!sl_auth_equal(SL_STR("sk-admin-"), "sk-admin-1"));
    T_CHECK(!sl_auth_equal(SL_STR("sk-admin-12"), "sk-admin-1"));
    T_CHECK(!sl_auth_equal(SL_STR(""), ""));
    T_CHECK(!sl_auth_equal(SL_STR(""), "sk-admin-1"));
    T_CHECK(!sl_auth_equal(SL_STR("x"), NULL));
}

/* Issue 17 item 12: what must never come back from a provider. */
T_TEST(secrets_collected)
{
    sl_config *c =
        load("redis: { url: \"redis://:redis-pass-1@h:1/0\" }\n"
             "providers:\n"
             "  - { name: a, base_url: \"http://u:url-pass-1@x\", api_key: sk-long-key-1 }\n"
             "  - { name: b, base_url: \"http://y\", api_key: sk-long-key-1 }\n"
             "  - { name: c, base_url: \"http://z\", api_key: x }\n");
    T_CHECK(c != NULL);
    if (!c)
        return;
    T_EQ_INT(c->n_secrets, 3);
    T_EQ_STR(c->secrets[0], "sk-long-key-1");
    T_EQ_STR(c->secrets[1], "url-pass-1");
    T_EQ_STR(c->secrets[2], "redis-pass-1");
    sl_config_unref(c);
}

typedef struct seen {
    char keys[64][64];
    int restart[64];
    int n;
} seen;

static void collect(void *ud, const char *key, bool restart)
{
    seen *s = ud;
    if (s->n < 64) {
        snprintf(s->keys[s->n], sizeof s->keys[0], "%s", key);
        s->restart[s->n++] = restart;
    }
}

/* Issue 17 item 11: the table says how each key reloads; a diff names the
 * changed ones. */
T_TEST(reload_marks_and_diff)
{
    seen all = {.n = 0};
    sl_config_each_key(collect, NULL, NULL, &all);
    int restart = 0, found_l1 = 0;
    for (int i = 0; i < all.n; i++) {
        restart += all.restart[i];
        if (strcmp(all.keys[i], "cache.l1_max_bytes") == 0)
            found_l1 = !all.restart[i];
        if (strcmp(all.keys[i], "listen") == 0 || strcmp(all.keys[i], "workers") == 0 ||
            strncmp(all.keys[i], "redis.", 6) == 0)
            T_CHECK(all.restart[i]);
    }
    T_EQ_INT(restart, 12); /* listen, workers, the nine redis keys, cache.semantic.max_entries */
    T_CHECK(found_l1);
    sl_config *a = load("redis: { timeout_ms: 10 }\nlog: { access: off }\n");
    sl_config *b = load("redis: { timeout_ms: 20 }\nlog: { access: stderr }\nworkers: 1\n");
    T_CHECK(a && b);
    if (!a || !b)
        return;
    seen d = {.n = 0};
    sl_config_each_key(collect, a, b, &d);
    T_EQ_INT(d.n, 2);
    T_EQ_STR(d.keys[0], "redis.timeout_ms");
    T_CHECK(d.restart[0]);
    T_EQ_STR(d.keys[1], "log.access");
    T_CHECK(!d.restart[1]);
    sl_config_unref(a);
    sl_config_unref(b);
}

/* docs/CONFIG.md's reload table says what the config table says. */
T_TEST(reload_table_documented)
{
    FILE *f = fopen("docs/CONFIG.md", "r");
    T_CHECK(f != NULL);
    if (!f)
        return;
    static char doc[1 << 16];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    const char *sec = strstr(doc, "## What SIGHUP applies");
    T_CHECK(sec != NULL);
    if (!sec)
        return;
    seen all = {.n = 0};
    sl_config_each_key(collect, NULL, NULL, &all);
    for (int i = 0; i < all.n; i++) {
        char row[128];
        snprintf(row, sizeof row, "| `%s` | %s |", all.keys[i],
                 all.restart[i] ? "restart" : "live");
        if (all.restart[i] && !strstr(sec, row))
            printf("  docs/CONFIG.md lacks the row %s\n", row);
        T_CHECK(!all.restart[i] || strstr(sec, row));
        snprintf(row, sizeof row, "| `%s` | %s |", all.keys[i],
                 all.restart[i] ? "live" : "restart");
        T_CHECK(strstr(sec, row) == NULL); /* documented the other way round */
    }
}

/* Issue 22: redis.cluster excludes url and sentinels; read_from_replicas needs it. */
T_TEST(redis_cluster_keys)
{
    sl_config *c = load("redis: { cluster: [\"10.0.0.1:7000\", \"10.0.0.2:7000\"], "
                        "read_from_replicas: true }\n");
    T_CHECK(c && c->redis.n_cluster == 2 && c->redis.read_from_replicas);
    T_CHECK(c && strcmp(c->redis.cluster[1], "10.0.0.2:7000") == 0 && !c->redis.url);
    if (c)
        sl_config_unref(c);
    const char *bad[][2] = {
        {"redis: { url: \"redis://h:1/0\", cluster: [\"h:1\"] }\n", "redis.cluster"},
        {"redis: { sentinels: [\"h:1\"], master_name: m, cluster: [\"h:1\"] }\n", "redis.cluster"},
        {"redis: { read_from_replicas: true, url: \"redis://h:1/0\" }\n",
         "redis.read_from_replicas"},
        {"redis: { cluster: [\"nohostport\"] }\n", "redis.cluster"},
        {"redis: { cluster: [\"h:1\"], db: 2 }\n", "redis.db"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        c = load(bad[i][0]);
        T_CHECK(c == NULL);
        if (c)
            sl_config_unref(c);
        if (!strstr(err, bad[i][1])) {
            printf("  %s: error \"%s\" does not name %s\n", bad[i][0], err, bad[i][1]);
            t_failed_now = 1;
        }
    }
}

/* Issue 16 part 2: passthrough defaults to the first openai-kind provider. */
T_TEST(passthrough_default)
{
    sl_config *c = load("providers:\n"
                        "  - { name: c, kind: anthropic, base_url: http://a }\n"
                        "  - { name: o1, kind: openai, base_url: http://b/v1 }\n"
                        "  - { name: o2, kind: openai, base_url: http://c/v1 }\n");
    T_CHECK(c != NULL);
    if (!c)
        return;
    T_CHECK(!c->providers[0].passthrough && c->providers[1].passthrough);
    T_CHECK(!c->providers[2].passthrough);
    sl_config_unref(c);
    c = load("providers:\n"
             "  - { name: o1, kind: openai, base_url: http://b/v1, passthrough: false }\n"
             "  - { name: o2, kind: openai, base_url: http://c/v1, passthrough: true }\n");
    T_CHECK(c && !c->providers[0].passthrough && c->providers[1].passthrough);
    if (c)
        sl_config_unref(c);
    c = load("providers:\n  - { name: o1, base_url: http://b/v1, passthrough: maybe }\n");
    T_CHECK(c == NULL && strstr(err, "passthrough") != NULL);
}

T_MAIN("config", defaults, responses_keys, example_file_loads, values_and_env,
       errors_name_file_line_key, model_globs, auth_equal, secrets_collected, reload_marks_and_diff,
       reload_table_documented, redis_cluster_keys, passthrough_default)
