/* util.h — the smallest shared vocabulary: slices, error codes, clocks.
 *
 * Owns nothing. Every other module may include it; it includes only libc. */
#ifndef SLUICE_UTIL_H
#define SLUICE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SLUICE_VERSION "0.1.0"

/* A borrowed byte slice; never owns its memory, never NUL-terminated by contract. */
typedef struct sl_str {
    const char *p;
    size_t len;
} sl_str;

#define SL_STR(lit) ((sl_str){(lit), sizeof(lit) - 1})
#define SL_STR_NULL ((sl_str){NULL, 0})

static inline sl_str sl_str_c(const char *s)
{
    return (sl_str){s, s ? strlen(s) : 0};
}
static inline bool sl_str_eq(sl_str a, sl_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}
static inline bool sl_str_eq_c(sl_str a, const char *b)
{
    return sl_str_eq(a, sl_str_c(b));
}

/* Internal functions return 0 or one of these (negative). */
enum {
    SL_OK = 0,
    SL_ENOMEM = -1,
    SL_EINVAL = -2,
    SL_ETOOBIG = -3,
    SL_EIO = -4,
    SL_ETIMEDOUT = -5,
    SL_ENOTFOUND = -6,
    SL_EAGAIN = -7,
};

#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SL_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b)    ((a) > (b) ? (a) : (b))
#define SL_UNUSED(x)    ((void)(x))

/* Monotonic clock in microseconds / milliseconds (for timeouts, TTLs, latencies). */
uint64_t sl_now_us(void);
uint64_t sl_now_ms(void);
/* Wall clock in milliseconds since the epoch (for logs and SLA times). */
int64_t sl_wall_ms(void);
/* The two clocks to a scheduler tick (1-4 ms late), for what is counted in
 * seconds: connection deadlines, cache expiry and age, the Date header,
 * per-second buckets. A precise read costs ~30 ns here, a coarse one ~6: a
 * cache hit read the clocks ten times. Compare a coarse reading only with
 * another coarse one. */
uint64_t sl_coarse_ms(void);
int64_t sl_wall_coarse_ms(void);
/* Wall-clock milliseconds at a monotonic instant taken with sl_now_us()
 * (a request's end, for its log line): the clocks' offset is read again once
 * a second, so a stamp costs no read of its own. */
int64_t sl_wall_ms_at(uint64_t mono_us);
/* Socket work done by the event loop: bumped by the callbacks that move a
 * request's bytes (client connections, upstream connections), read by the
 * busy-polling loop in main.c to know the loop is not idle. A plain counter:
 * one thread per process. */
extern uint64_t sl_loop_work;
static inline void sl_loop_worked(void)
{
    sl_loop_work++;
}
/* Writes an RFC 3339 UTC timestamp with milliseconds ("2026-11-24T03:33:22.123Z"),
 * NUL-terminated, into out (at least 25 bytes). Returns its length. */
size_t sl_rfc3339_ms(int64_t wall_ms, char *out);
/* Decimal text of v into out (at least 21 bytes); returns its length. No
 * printf: this runs several times per request. */
size_t sl_fmt_i64(int64_t v, char *out);
/* v in lower-case hexadecimal into out (at least 17 bytes), NUL-terminated;
 * returns the length (a chunk size line, HTTP/1.1 chunked framing). */
size_t sl_fmt_hex(uint64_t v, char *out);

/* Case-insensitive ASCII comparison of a slice with a C string. */
bool sl_str_ieq_c(sl_str a, const char *b);
/* Length of a prefix of s[0..len) no longer than want that ends on a UTF-8
 * character boundary (len when want >= len; len when no boundary is found,
 * so that a caller cutting text into pieces always advances). */
size_t sl_utf8_prefix(const char *s, size_t len, size_t want);

/* Parses a size such as "64MiB", "512k", "1048576" into bytes. 0 or SL_EINVAL. */
int sl_parse_size(const char *s, size_t *out);

/* Fills out with n random bytes (getrandom, falling back to /dev/urandom). */
void sl_random_bytes(void *out, size_t n);

/* A URL fit to show (banner, /health, logs): the password of its userinfo
 * becomes *** ("redis://:***@host", "http://user:***@host"; a userinfo
 * without a colon, a bare token, becomes "***"). Writes at most cap bytes
 * including the NUL into out (truncated, never with the password) and
 * returns out. NULL shows as "". */
const char *sl_redact_url(const char *url, char *out, size_t cap);
/* The password part of url's userinfo as a slice into url (empty: none). */
sl_str sl_url_password(const char *url);

/* Secrets shorter than this are not scrubbed: replacing "x" everywhere would
 * mangle every answer, and a key that short guards nothing. */
#define SL_SECRET_MIN_LEN 8
/* Replaces every occurrence of each secret (exact bytes) in p[0..len) with
 * "***", in place (secrets are longer than their replacement). Returns the
 * new length; after a replacement p[new length] is NUL (inside the old bytes),
 * so a C string or an sl_buf stays terminated. */
size_t sl_scrub(char *p, size_t len, char *const *secrets, size_t n_secrets);
/* True when any secret occurs in p[0..len). */
bool sl_has_secret(const char *p, size_t len, char *const *secrets, size_t n_secrets);

#endif
