/* curl_api.c — libcurl by dlopen (see curl_api.h for why).
 *
 * RTLD_LOCAL keeps libcurl's symbols (and its dependencies') out of the
 * global namespace: nothing else in the process binds to them by accident.
 * RTLD_NOW resolves everything at load, so a broken installation fails here,
 * where the error can be reported, not in the middle of a call. The handle
 * is never closed: a process loads libcurl at most once, and the global
 * state libcurl and OpenSSL set up would not survive an unload. */
#include "sluice/curl_api.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/util.h"

sl_curl_api sl_curl;

static struct {
    void *handle;
    bool loaded;
} dl;

/* Each slot of sl_curl and the symbol it takes, in one table: adding a
 * function is one line here and one member in curl_api.h. */
#define SLOT(member, symbol)                                                                       \
    {                                                                                              \
        (void **)(void *)&sl_curl.member, symbol                                                   \
    }
static const struct {
    void **slot;
    const char *symbol;
} slots[] = {
    SLOT(global_init, "curl_global_init"),
    SLOT(global_cleanup, "curl_global_cleanup"),
    SLOT(multi_init, "curl_multi_init"),
    SLOT(multi_setopt, "curl_multi_setopt"),
    SLOT(multi_socket_action, "curl_multi_socket_action"),
    SLOT(multi_info_read, "curl_multi_info_read"),
    SLOT(multi_add_handle, "curl_multi_add_handle"),
    SLOT(multi_remove_handle, "curl_multi_remove_handle"),
    SLOT(multi_assign, "curl_multi_assign"),
    SLOT(multi_cleanup, "curl_multi_cleanup"),
    SLOT(easy_init, "curl_easy_init"),
    SLOT(easy_setopt, "curl_easy_setopt"),
    SLOT(easy_getinfo, "curl_easy_getinfo"),
    SLOT(easy_cleanup, "curl_easy_cleanup"),
    SLOT(easy_pause, "curl_easy_pause"),
    SLOT(easy_strerror, "curl_easy_strerror"),
    SLOT(url, "curl_url"),
    SLOT(url_set, "curl_url_set"),
    SLOT(url_cleanup, "curl_url_cleanup"),
};
#undef SLOT

static int fail(char *err, size_t errlen, const char *what, const char *why)
{
    if (err && errlen)
        snprintf(err, errlen, "libcurl: %s: %s", what, why ? why : "unknown error");
    memset(&sl_curl, 0, sizeof sl_curl);
    return SL_EIO;
}

int sl_curl_load(char *err, size_t errlen)
{
    if (dl.loaded)
        return SL_OK;
    const char *file = getenv("SLUICE_LIBCURL");
    if (!file || !file[0])
        file = SL_LIBCURL_SONAME;
    if (!dl.handle)
        dl.handle = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!dl.handle)
        return fail(err, errlen, file, dlerror());
    for (size_t i = 0; i < SL_ARRAY_LEN(slots); i++) {
        *slots[i].slot = dlsym(dl.handle, slots[i].symbol);
        if (!*slots[i].slot)
            return fail(err, errlen, slots[i].symbol, "not in the library");
    }
    dl.loaded = true;
    return SL_OK;
}

bool sl_curl_loaded(void)
{
    return dl.loaded;
}
