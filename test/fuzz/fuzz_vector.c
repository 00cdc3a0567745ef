/* fuzz_vector.c — the semantic cache's vector entries, read from Redis
 * (untrusted: any instance, or anyone with access to Redis, wrote them). */
#include <stdlib.h>

#include "sluice/semantic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static float vec[SL_SEM_MAX_DIM];
    sl_sem_entry e;
    if (sl_sem_entry_decode((const char *)data, size, &e, vec) != SL_OK)
        return 0;
    /* what the store does with a decoded entry: re-encode it, and guard its text */
    size_t n = sl_sem_entry_size(&e);
    char *out = malloc(n);
    if (out) {
        sl_sem_entry_encode(&e, out);
        sl_sem_entry back;
        if (sl_sem_entry_decode(out, n, &back, vec) != SL_OK)
            abort();
        free(out);
    }
    sl_sem_guard(e.text, e.request_id, NULL, 0);
    return 0;
}
