/* test_metrics_cache.c — the per-tuple series cache of sl_metrics_request
 * counts exactly what resolving every series per request counted: with more
 * label tuples than cache slots (slots replaced over and over), every series
 * still ends with the right totals. */
#include <stdio.h>

#include "sluice/metrics.h"
#include "sluice/req.h"
#include "t.h"

static void one(sl_config *c, const char *tenant, int status)
{
    sl_req *r = sl_req_new(NULL, c);
    r->is_llm = true;
    r->status = status;
    r->tenant = tenant;
    r->cache = SL_CACHE_MISS;
    r->provider = "p";
    r->path = "/v1/chat/completions";
    r->route = "/v1/chat/completions";
    r->llm.model = SL_STR("m");
    r->prompt_tokens = 3;
    r->completion_tokens = 5;
    r->cost_usd = 0.25;
    r->t_upstream_start = r->t_start + 10;
    r->t_first_byte = r->t_start + 20;
    r->t_upstream_end = r->t_start + 30;
    r->t_end = r->t_start + 1500;
    sl_metrics_request(r);
    sl_req_release(r);
}

static bool has_line(const char *text, const char *line)
{
    const char *p = strstr(text, line);
    return p && (p == text || p[-1] == '\n') && p[strlen(line)] == '\n';
}

T_TEST(many_tuples_count_exactly)
{
    char err[256];
    sl_config *c = sl_config_load_string("t.yaml", "", 0, err, sizeof err);
    T_CHECK(c != NULL);
    static char tenants[700][16];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 700; i++) {
            snprintf(tenants[i], sizeof tenants[i], "t%d", i);
            one(c, tenants[i], i % 7 || !i ? 200 : 502); /* the first answer makes m served */
        }
    }
    sl_buf b;
    sl_buf_init(&b, 0);
    sl_metrics_render(&b);
    const int probe[] = {0, 1, 255, 256, 511, 699};
    for (size_t k = 0; k < sizeof probe / sizeof probe[0]; k++) {
        int i = probe[k];
        char want[256];
        snprintf(
            want, sizeof want,
            "sluice_requests_total{route=\"/v1/chat/completions\",status=\"%d\",tenant=\"t%d\","
            "model=\"m\",provider=\"p\",cache=\"miss\"} 3",
            i % 7 || !i ? 200 : 502, i);
        T_CHECK(has_line(b.p, want));
        snprintf(want, sizeof want,
                 "sluice_tokens_total{tenant=\"t%d\",model=\"m\",direction=\"output\"} 15", i);
        T_CHECK(has_line(b.p, want));
        snprintf(want, sizeof want, "sluice_cost_usd_total{tenant=\"t%d\",model=\"m\"} 0.75", i);
        T_CHECK(has_line(b.p, want));
    }
    T_CHECK(has_line(b.p, "sluice_upstream_duration_seconds_count{provider=\"p\"} 2100"));
    T_CHECK(has_line(b.p, "sluice_request_duration_seconds_count{route=\"/v1/chat/completions\"} "
                          "2100"));
    sl_buf_free(&b);
    sl_metrics_free();
    sl_config_unref(c);
}

/* A tuple whose series was refused at its family's cap still counts a drop
 * on every request, as resolving it each time did. */
T_TEST(capped_series_count_every_drop)
{
    char err[256];
    sl_config *c = sl_config_load_string("t.yaml", "", 0, err, sizeof err);
    static char tenants[SL_METRICS_MAX_SERIES + 50][16];
    for (int i = 0; i < SL_METRICS_MAX_SERIES + 50; i++) {
        snprintf(tenants[i], sizeof tenants[i], "t%d", i);
        one(c, tenants[i], 200);
    }
    for (int k = 0; k < 3; k++)
        one(c, tenants[SL_METRICS_MAX_SERIES + 49], 200); /* a refused tuple, cached */
    sl_buf b;
    sl_buf_init(&b, 0);
    sl_metrics_render(&b);
    T_CHECK(
        has_line(b.p, "sluice_metric_series_dropped_total{family=\"sluice_requests_total\"} 53"));
    sl_buf_free(&b);
    sl_metrics_free();
    sl_config_unref(c);
}

/* A kept series counts into the very line sl_metric_add does, and a freed
 * registry makes the ref resolve again (ASan: no use of the freed series). */
T_TEST(a_kept_series_counts_with_the_looked_up_one)
{
    static sl_metric_ref ref;
    const char *const hit[] = {"hit_l1"};
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 3; i++)
            sl_metric_add_ref(&ref, SL_M_CACHE_LOOKUPS, 1, hit);
        sl_metric_add(SL_M_CACHE_LOOKUPS, 1, hit);
        sl_buf b;
        sl_buf_init(&b, 0);
        sl_metrics_render(&b);
        T_CHECK(has_line(b.p, "sluice_cache_lookups_total{result=\"hit_l1\"} 4"));
        sl_buf_free(&b);
        sl_metrics_free(); /* the second round starts on a new registry */
    }
}

T_MAIN("metrics_cache", many_tuples_count_exactly, capped_series_count_every_drop,
       a_kept_series_counts_with_the_looked_up_one)
