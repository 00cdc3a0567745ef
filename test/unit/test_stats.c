/* test_stats.c — the dashboard's rings stay bounded and render valid JSON. */
#include "sluice/json.h"
#include "sluice/req.h"
#include "sluice/stats.h"
#include "t.h"

static sl_config *conf(void)
{
    char err[256];
    return sl_config_load_string("t.yaml", "", 0, err, sizeof err);
}

static void one(sl_config *c, int status, const char *tenant, sl_cache_outcome cache, double cost)
{
    sl_req *r = sl_req_new(NULL, c);
    r->is_llm = true;
    r->status = status;
    r->tenant = tenant;
    r->cache = cache;
    r->cost_usd = cost;
    r->path = "/v1/chat/completions";
    r->llm.model = SL_STR("gpt-4o-mini");
    r->t_end = r->t_start + 1500;
    if (status >= 400)
        r->error = "boom";
    sl_stats_request(r);
    sl_req_release(r);
}

T_TEST(bounded_and_valid)
{
    sl_config *c = conf();
    for (int i = 0; i < 5000; i++)
        one(c, i % 10 ? 200 : 502, i % 2 ? "a" : "b", i % 3 ? SL_CACHE_HIT : SL_CACHE_MISS, 0.001);
    sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_append_c(&b, "{");
    sl_stats_render(&b);
    sl_buf_append_c(&b, "}");
    sl_arena a;
    sl_arena_init(&a, NULL, 0, 0);
    sl_json *root = NULL;
    sl_json_error e;
    T_EQ_INT(sl_json_parse(&a, b.p, b.len, NULL, &root, &e), 0);
    if (root) {
        T_EQ_INT(sl_json_get(root, "series")->n, 90);
        T_EQ_INT(sl_json_get(root, "errors")->n, 20); /* the last 20 only */
        T_EQ_INT(sl_json_get(root, "tenants")->n, 2);
        const sl_json *lat = sl_json_get(root, "latency");
        T_CHECK(sl_json_get(lat, "p50_ms")->num > 1.4 && sl_json_get(lat, "p50_ms")->num < 1.6);
        const sl_json *tot = sl_json_get(root, "totals");
        T_CHECK(sl_json_get(tot, "requests")->num >= 5000);
    }
    sl_arena_free(&a);
    sl_buf_free(&b);
    sl_config_unref(c);
    sl_req_pool_drain();
}

T_MAIN("stats", bounded_and_valid)
