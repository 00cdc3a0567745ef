/* buf.h — growable byte buffer with an optional bound, and JSON writing helpers.
 *
 * Owns: its heap storage (p). sl_buf_reset() keeps the capacity for reuse, so a
 * long-lived buffer stops allocating once it has grown to its working size.
 *
 * Errors are sticky: the first append that fails (out of memory, over the
 * bound) records its code in `err`, and every later append fails at once with
 * it, so the buffer holds a prefix that ends exactly where writing stopped,
 * never a body with a hole in the middle. Writers may therefore ignore what
 * each append returns; whoever *uses* the buffer (sends it, stores it, parses
 * it) checks `err` once. sl_buf_reset() and sl_buf_truncate() clear it. */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <string.h>

#include "sluice/util.h"

typedef struct sl_buf {
    char *p;
    size_t len;
    size_t cap;
    size_t max; /* 0: unbounded; appends beyond it fail with SL_ETOOBIG */
    int err;    /* 0, or the code of the first append that failed (sticky) */
} sl_buf;

void sl_buf_init(sl_buf *b, size_t max);
int sl_buf_reserve(sl_buf *b, size_t extra);
int sl_buf_append_slow(sl_buf *b, const void *p, size_t n);
/* Inline when there is room (the access log and metrics append in small
 * pieces, many times per request); grows through sl_buf_append_slow. */
static inline int sl_buf_append(sl_buf *b, const void *p, size_t n)
{
    if (!b->err && b->cap > b->len && n < b->cap - b->len) { /* room for n bytes and the NUL */
        if (n)
            memcpy(b->p + b->len, p, n);
        b->len += n;
        b->p[b->len] = '\0';
        return SL_OK;
    }
    return sl_buf_append_slow(b, p, n);
}
int sl_buf_append_c(sl_buf *b, const char *s);
int sl_buf_append_str(sl_buf *b, sl_str s);
int sl_buf_printf(sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal (quotes included, control bytes escaped). */
int sl_buf_json_str(sl_buf *b, const char *s, size_t n);
int sl_buf_json_cstr(sl_buf *b, const char *s); /* NULL writes null */
/* The same literal written to out, which has room for 6 * n + 2 bytes (every
 * byte escaped); its length. For a writer that reserved a whole line at once. */
size_t sl_json_str_to(char *out, const char *s, size_t n);
int sl_buf_append_i64(sl_buf *b, int64_t v);
/* Microseconds as milliseconds with three decimals ("12.345"). */
int sl_buf_append_ms(sl_buf *b, uint64_t us);
size_t sl_fmt_ms(uint64_t us, char out[32]); /* the same into out; its length */
/* Appends a double in the shortest form that round-trips ("%.17g" trimmed). */
int sl_buf_json_num(sl_buf *b, double v);
/* Money on the request path is an integer of pico-dollars (1e-12 USD: a token
 * at a price quoted to the micro-dollar per 1M tokens is exact). These write
 * it without printf or floating point:
 * - as the JSON number sl_buf_json_num would print for the same amount
 *   ("%g" shape: 0.0001, 1.5e-06, 12.5);
 * - with exactly 8 decimals, rounded half up ("%.8f": 0.00001350). */
int sl_buf_json_pusd(sl_buf *b, int64_t pusd);
size_t sl_fmt_pusd(int64_t pusd, char out[48]); /* the same into out; its length */
size_t sl_fmt_pusd_fixed8(int64_t pusd, char out[32]);
void sl_buf_consume(sl_buf *b, size_t n); /* drop n bytes from the front */
/* Keeps the first n bytes (n <= len) and clears the error: a writer rolls back
 * a piece it could not finish (one access-log line). */
void sl_buf_truncate(sl_buf *b, size_t n);
void sl_buf_reset(sl_buf *b); /* empty, error cleared, capacity kept */
void sl_buf_free(sl_buf *b);
static inline sl_str sl_buf_str(const sl_buf *b)
{
    return (sl_str){b->p, b->len};
}

#endif
