/* fuzz_request.c — request validation for every API, then the cache key. */
#include "sluice/cache_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int api = SL_API_CHAT; api <= SL_API_MESSAGES; api++) {
        sl_arena a;
        sl_arena_init(&a, NULL, 0, 16u << 20);
        sl_llm_req r;
        sl_http_error e;
        const sl_json_limits lim = {.max_members = 10000, .max_nodes = 1000000}; /* defaults */
        if (sl_llm_req_parse(&a, (sl_api)api, (const char *)data, size, &lim, &r, &e) == SL_OK) {
            sl_cache_key k;
            sl_cache_key_compute(&r, SL_STR("-"), &k);
        }
        sl_arena_free(&a);
    }
    return 0;
}
