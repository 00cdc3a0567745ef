/* fuzz_ticket.c — the SLA ticket parser (single ticket or batch), then the SLA
 * computation of every ticket it accepts, at a time the input also picks. */
#include <string.h>

#include "sluice/json.h"
#include "sluice/ticket.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char YAML[] = "sla:\n"
                           "  at_risk_ratio: 0.15\n"
                           "  targets:\n"
                           "    enterprise:\n"
                           "      critical: { response: 15, resolution: 240 }\n"
                           "      low: { response: 480, resolution: 2880 }\n"
                           "    standard:\n"
                           "      high: { response: 240, resolution: 1440 }\n";

static sl_config *config(void)
{
    static sl_config *c;
    char err[256];
    if (!c)
        c = sl_config_load_string("fuzz.yaml", YAML, sizeof YAML - 1, err, sizeof err);
    return c;
}

static void check(const sl_config *c, const sl_json *o, int64_t now)
{
    sl_ticket t;
    const char *why;
    if (sl_ticket_parse(o, &t, &why) != SL_OK)
        return;
    for (int kind = 0; kind < 2; kind++)
        (void)sl_sla_state_name(sl_sla_compute(c, &t, kind, now).state);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t now = 0;
    if (size >= sizeof now) { /* the first 8 bytes are the clock */
        memcpy(&now, data, sizeof now);
        data += sizeof now;
        size -= sizeof now;
    }
    sl_arena a;
    sl_arena_init(&a, NULL, 0, 16u << 20);
    sl_json *root;
    sl_json_error e;
    sl_json_limits lim = {.max_depth = 32, .max_nodes = 100000};
    if (sl_json_parse(&a, (const char *)data, size, &lim, &root, &e) == SL_OK) {
        const sl_config *c = config();
        if (root->type == SL_JSON_ARRAY) {
            for (const sl_json *o = root->child; o; o = o->next)
                check(c, o, now);
        } else {
            check(c, root, now);
        }
    }
    sl_arena_free(&a);
    return 0;
}
