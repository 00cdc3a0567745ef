/* curl_api.h — libcurl, loaded at run time (src/upstream/ only).
 *
 * sluice does not link libcurl: loading it maps libcurl's whole dependency
 * tree (OpenSSL, GnuTLS, Kerberos, LDAP, ssh2, ...), ~5.5 MiB of PSS that an
 * instance whose upstreams the native HTTP/1.1 client serves never uses
 * (issue 18, PSS idle). The library is dlopen()ed the first time something
 * needs it — at start or reload when the configuration names an https URL,
 * a host name or the environment a proxy (call.c, sl_upstream_prepare), else
 * on the first call that goes to curl — and then stays for the process.
 *
 * Owns: the dlopen handle and the table of the libcurl functions sluice
 * calls. Callers use `sl_curl.easy_setopt(...)` and friends once
 * sl_curl_load() returned SL_OK; before that the table is all NULL.
 * Header lists are sluice's own allocation of curl's `struct curl_slist`
 * (upstream.h, sl_header_list_append), so a list is built without libcurl. */
#ifndef SLUICE_CURL_API_H
#define SLUICE_CURL_API_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct sl_curl_api {
    CURLcode (*global_init)(long flags);
    void (*global_cleanup)(void);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_setopt)(CURLM *m, CURLMoption option, ...);
    CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t s, int ev_bitmask,
                                     int *running_handles);
    CURLMsg *(*multi_info_read)(CURLM *m, int *msgs_in_queue);
    CURLMcode (*multi_add_handle)(CURLM *m, CURL *e);
    CURLMcode (*multi_remove_handle)(CURLM *m, CURL *e);
    CURLMcode (*multi_assign)(CURLM *m, curl_socket_t s, void *sockp);
    CURLMcode (*multi_cleanup)(CURLM *m);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *e, CURLoption option, ...);
    CURLcode (*easy_getinfo)(CURL *e, CURLINFO info, ...);
    void (*easy_cleanup)(CURL *e);
    CURLcode (*easy_pause)(CURL *e, int bitmask);
    const char *(*easy_strerror)(CURLcode code);
    CURLU *(*url)(void);
    CURLUcode (*url_set)(CURLU *u, CURLUPart what, const char *part, unsigned int flags);
    void (*url_cleanup)(CURLU *u);
} sl_curl_api;

extern sl_curl_api sl_curl;

/* The soname sluice loads (Debian's libcurl4); SLUICE_LIBCURL in the
 * environment names another file (a test that wants the load to fail). */
#define SL_LIBCURL_SONAME "libcurl.so.4"

/* dlopen + dlsym of every function above; idempotent. SL_OK, or SL_EIO with
 * why in err (the library missing, a symbol missing). Blocking (it maps
 * files): at start, at reload, or once on the loop for a late first need. */
int sl_curl_load(char *err, size_t errlen);
bool sl_curl_loaded(void);

#endif
