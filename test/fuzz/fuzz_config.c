/* fuzz_config.c — the YAML configuration loader on arbitrary bytes. */
#include "sluice/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    sl_config *c = sl_config_load_string("fuzz.yaml", (const char *)data, size, err, sizeof err);
    if (c)
        sl_config_unref(c);
    return 0;
}
