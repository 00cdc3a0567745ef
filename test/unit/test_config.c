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
    sl_config_unref(c);
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

T_MAIN("config", defaults, example_file_loads, values_and_env, errors_name_file_line_key,
       model_globs)
