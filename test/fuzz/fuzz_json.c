/* fuzz_json.c — the JSON parser and canonical writer on arbitrary bytes. */
#include "sluice/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_arena a;
    sl_arena_init(&a, NULL, 0, 16u << 20);
    sl_json *v = NULL;
    sl_json_error e;
    if (sl_json_parse(&a, (const char *)data, size, NULL, &v, &e) == SL_OK) {
        sl_buf b;
        sl_buf_init(&b, 0);
        sl_json_canonical(v, &b, NULL);
        sl_buf_free(&b);
    }
    sl_arena_free(&a);
    return 0;
}
