/* util.c — clocks, sizes, randomness, redaction: the few helpers everyone needs. */
#include "sluice/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static int64_t read_us(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t sl_loop_work;

uint64_t sl_now_us(void)
{
    return (uint64_t)read_us(CLOCK_MONOTONIC);
}

uint64_t sl_now_ms(void)
{
    return sl_now_us() / 1000u;
}

int64_t sl_wall_ms(void)
{
    return read_us(CLOCK_REALTIME) / 1000;
}

uint64_t sl_coarse_ms(void)
{
    return (uint64_t)read_us(CLOCK_MONOTONIC_COARSE) / 1000u;
}

int64_t sl_wall_coarse_ms(void)
{
    return read_us(CLOCK_REALTIME_COARSE) / 1000;
}

int64_t sl_wall_ms_at(uint64_t mono_us)
{
    static uint64_t synced_us; /* when the offset was read (monotonic) */
    static int64_t offset_us;  /* wall - monotonic */
    if (!synced_us || mono_us >= synced_us + 1000000u) {
        int64_t wall_us = read_us(CLOCK_REALTIME);
        synced_us = sl_now_us();
        offset_us = wall_us - (int64_t)synced_us;
    }
    return ((int64_t)mono_us + offset_us) / 1000;
}

/* The date and time part changes once a second: it is formatted then, and
 * every call in between only writes the milliseconds (the access log stamps
 * every line). */
size_t sl_rfc3339_ms(int64_t wall_ms, char *out)
{
    static int64_t cached_s = -1;
    static char cached[64]; /* "YYYY-MM-DDTHH:MM:SS." */
    int64_t secs = wall_ms / 1000, ms = wall_ms % 1000;
    if (wall_ms < 0)
        secs = ms = 0;
    if (secs > 253402300799) /* keep four-digit years: 9999-12-31T23:59:59 */
        secs = 253402300799;
    if (secs != cached_s) {
        time_t t = (time_t)secs;
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_s = secs;
    }
    size_t n = strlen(cached);
    memcpy(out, cached, n);
    out[n++] = (char)('0' + ms / 100);
    out[n++] = (char)('0' + ms / 10 % 10);
    out[n++] = (char)('0' + ms % 10);
    out[n++] = 'Z';
    out[n] = '\0';
    return n;
}

size_t sl_fmt_i64(int64_t v, char *out)
{
    /* two digits per division, written backwards from the number's end, which
     * is known first (no scratch copy: the access log formats a dozen a line) */
    static const char pairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233"
        "34353637383940414243444546474849505152535455565758596061626364656667"
        "6869707172737475767778798081828384858687888990919293949596979899";
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    size_t len = v < 0;
    out[0] = '-'; /* (a digit overwrites it when v >= 0) */
    for (uint64_t t = u; t >= 10; t /= 10)
        len++;
    len++;
    char *p = out + len;
    *p = '\0';
    while (u >= 100) {
        unsigned d = (unsigned)(u % 100) * 2;
        u /= 100;
        *--p = pairs[d + 1];
        *--p = pairs[d];
    }
    if (u >= 10) {
        *--p = pairs[u * 2 + 1];
        *--p = pairs[u * 2];
    } else {
        *--p = (char)('0' + u);
    }
    return len;
}

bool sl_str_ieq_c(sl_str a, const char *b)
{
    size_t n = strlen(b);
    if (n != a.len)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (tolower((unsigned char)a.p[i]) != tolower((unsigned char)b[i]))
            return false;
    }
    return true;
}

int sl_parse_size(const char *s, size_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return SL_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return SL_EINVAL;
    while (*end == ' ')
        end++;
    unsigned long long mul = 1;
    static const struct {
        const char *suffix;
        unsigned long long mul;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1000},
        {"kb", 1000},
        {"kib", 1ull << 10},
        {"m", 1000000},
        {"mb", 1000000},
        {"mib", 1ull << 20},
        {"g", 1000000000},
        {"gb", 1000000000},
        {"gib", 1ull << 30},
    };
    bool found = false;
    for (size_t i = 0; i < SL_ARRAY_LEN(units); i++) {
        if (strcasecmp(end, units[i].suffix) == 0) {
            mul = units[i].mul;
            found = true;
            break;
        }
    }
    if (!found || (v && mul > UINT64_MAX / v))
        return SL_EINVAL;
    *out = (size_t)(v * mul);
    return SL_OK;
}

void sl_random_bytes(void *out, size_t n)
{
    char *p = out;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got <= 0) {
            if (got < 0 && errno == EINTR)
                continue;
            /* getrandom cannot fail on Linux >= 3.17 for small n; keep going anyway. */
            for (size_t i = 0; i < n; i++)
                p[i] = (char)rand();
            return;
        }
        p += got;
        n -= (size_t)got;
    }
}

/* The userinfo of scheme://userinfo@host/...: [*ui, *at) or false. */
static bool find_userinfo(const char *url, const char **ui, const char **at)
{
    const char *s = url ? strstr(url, "://") : NULL;
    if (!s)
        return false;
    s += 3;
    size_t auth = strcspn(s, "/?#");
    const char *last = NULL;
    for (const char *p = s; p < s + auth; p++) {
        if (*p == '@')
            last = p; /* the host follows the last '@' */
    }
    if (!last)
        return false;
    *ui = s;
    *at = last;
    return true;
}

sl_str sl_url_password(const char *url)
{
    const char *ui, *at;
    if (!find_userinfo(url, &ui, &at))
        return SL_STR_NULL;
    const char *colon = memchr(ui, ':', (size_t)(at - ui));
    if (!colon)
        return (sl_str){ui, (size_t)(at - ui)}; /* a bare token is the secret */
    return (sl_str){colon + 1, (size_t)(at - colon - 1)};
}

static void put_bounded(char *out, size_t cap, size_t *len, const char *p, size_t n)
{
    size_t room = *len + 1 < cap ? cap - 1 - *len : 0;
    n = n < room ? n : room;
    memcpy(out + *len, p, n);
    *len += n;
}

const char *sl_redact_url(const char *url, char *out, size_t cap)
{
    if (!cap)
        return out;
    size_t len = 0;
    const char *ui, *at;
    if (!url) {
        out[0] = '\0';
        return out;
    }
    if (!find_userinfo(url, &ui, &at)) {
        put_bounded(out, cap, &len, url, strlen(url));
    } else {
        const char *colon = memchr(ui, ':', (size_t)(at - ui));
        const char *keep = colon ? colon + 1 : ui; /* scheme and user name */
        put_bounded(out, cap, &len, url, (size_t)(keep - url));
        put_bounded(out, cap, &len, "***", 3);
        put_bounded(out, cap, &len, at, strlen(at));
    }
    out[len] = '\0';
    return out;
}

bool sl_has_secret(const char *p, size_t len, char *const *secrets, size_t n_secrets)
{
    for (size_t i = 0; i < n_secrets; i++) {
        size_t sl = strlen(secrets[i]);
        if (sl >= SL_SECRET_MIN_LEN && memmem(p, len, secrets[i], sl))
            return true;
    }
    return false;
}

size_t sl_scrub(char *p, size_t len, char *const *secrets, size_t n_secrets)
{
    size_t orig = len;
    for (size_t i = 0; i < n_secrets; i++) {
        size_t sl = strlen(secrets[i]);
        if (sl < SL_SECRET_MIN_LEN)
            continue;
        char *hit;
        size_t from = 0;
        while ((hit = memmem(p + from, len - from, secrets[i], sl))) {
            size_t at = (size_t)(hit - p);
            memcpy(hit, "***", 3);
            memmove(hit + 3, hit + sl, len - at - sl);
            len -= sl - 3;
            from = at + 3;
        }
    }
    if (len < orig)
        p[len] = '\0'; /* inside the old bytes: keeps a C string or an sl_buf terminated */
    return len;
}

size_t sl_fmt_hex(uint64_t v, char *out)
{
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

size_t sl_utf8_prefix(const char *s, size_t len, size_t want)
{
    if (want >= len)
        return len;
    while (want > 0 && ((unsigned char)s[want] & 0xC0) == 0x80)
        want--;
    return want ? want : len;
}
