/* json_parse.c — bench: parse time of the worst 8 MiB request bodies.
 *
 * Issue 17 item 1: a duplicate-key scan per member made an object of n keys
 * cost n^2/2 comparisons (100k keys: 39 s on the loop). This times
 * sl_json_parse on 8 MiB bodies built to be as bad as possible: one object of
 * as many distinct keys as fit, the same with the default bounds (the 400
 * path), and an array of as many values as fit. Best of 5 runs each.
 * Run: make bench-json (prints one line per case). */
#include <stdio.h>
#include <stdlib.h>

#include "sluice/json.h"

enum { BODY = 8 << 20, RUNS = 5 };

/* {"model":"m","messages":[...],"metadata":{"k0000000":0,...}} up to BODY bytes. */
static size_t many_keys(char *out, size_t *keys)
{
    size_t n = (size_t)sprintf(out, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                                    "\"content\":\"hi\"}],\"metadata\":{");
    size_t k = 0;
    while (n + 32 < BODY)
        n += (size_t)sprintf(out + n, "%s\"k%07zu\":0", k ? "," : "", k), k++;
    n += (size_t)sprintf(out + n, "}}");
    *keys = k;
    return n;
}

static size_t many_values(char *out, size_t *values)
{
    size_t n = (size_t)sprintf(out, "{\"model\":\"m\",\"input\":[");
    size_t k = 0;
    while (n + 8 < BODY)
        n += (size_t)sprintf(out + n, "%s0", k ? "," : ""), k++;
    n += (size_t)sprintf(out + n, "]}");
    *values = k;
    return n;
}

static double best_ms(const char *body, size_t len, const sl_json_limits *lim, int *rc)
{
    double best = 1e18;
    for (int i = 0; i < RUNS; i++) {
        sl_arena a;
        sl_arena_init(&a, NULL, 0, 0);
        sl_json *root;
        sl_json_error e;
        uint64_t t0 = sl_now_us();
        *rc = sl_json_parse(&a, body, len, lim, &root, &e);
        double ms = (double)(sl_now_us() - t0) / 1000.0;
        best = ms < best ? ms : best;
        sl_arena_free(&a);
    }
    return best;
}

int main(void)
{
    char *body = malloc(BODY + 64);
    if (!body)
        return 1;
    const sl_json_limits dflt = {.max_members = 10000, .max_nodes = 1000000};
    size_t count, len = many_keys(body, &count);
    int rc;
    double ms = best_ms(body, len, NULL, &rc);
    printf("json parse, 8 MiB, one object of %zu distinct keys, unbounded: %.1f ms (rc %d)\n",
           count, ms, rc);
    ms = best_ms(body, len, &dflt, &rc);
    printf("json parse, same body, default bounds (refused at 10000 members): %.2f ms (rc %d)\n",
           ms, rc);
    len = many_values(body, &count);
    ms = best_ms(body, len, NULL, &rc);
    printf("json parse, 8 MiB, an array of %zu values, unbounded: %.1f ms (rc %d)\n", count, ms,
           rc);
    ms = best_ms(body, len, &dflt, &rc);
    printf("json parse, same body, default bounds (refused at 1000000 values): %.1f ms (rc %d)\n",
           ms, rc);
    free(body);
    return 0;
}
