/* buf.c — growable bounded byte buffer and JSON writing helpers; see buf.h. */
#include "sluice/buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void sl_buf_init(sl_buf *b, size_t max)
{
    b->p = NULL;
    b->len = b->cap = 0;
    b->max = max;
    b->err = 0;
}

/* Records the first failure; every append after it fails with the same code. */
static int fail(sl_buf *b, int rc)
{
    if (!b->err)
        b->err = rc;
    return b->err;
}

int sl_buf_reserve(sl_buf *b, size_t extra)
{
    if (b->err)
        return b->err;
    if (extra > SIZE_MAX - b->len - 1)
        return fail(b, SL_ETOOBIG);
    size_t need = b->len + extra;
    if (b->max && need > b->max)
        return fail(b, SL_ETOOBIG);
    if (need + 1 <= b->cap)
        return SL_OK;
    size_t cap = b->cap ? b->cap : 32; /* small first: an open stream holds dozens of buffers */
    while (cap < need + 1)
        cap *= 2;
    if (b->max && cap > b->max + 1)
        cap = b->max + 1;
    char *p = realloc(b->p, cap);
    if (!p)
        return fail(b, SL_ENOMEM);
    b->p = p;
    b->cap = cap;
    return SL_OK;
}

int sl_buf_append_slow(sl_buf *b, const void *p, size_t n)
{
    int rc = sl_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0'; /* always terminated, for convenience of C callers */
    return SL_OK;
}

int sl_buf_append_c(sl_buf *b, const char *s)
{
    return sl_buf_append(b, s, strlen(s));
}
int sl_buf_append_str(sl_buf *b, sl_str s)
{
    return sl_buf_append(b, s.p, s.len);
}

int sl_buf_append_i64(sl_buf *b, int64_t v)
{
    char tmp[24];
    return sl_buf_append(b, tmp, sl_fmt_i64(v, tmp));
}

size_t sl_fmt_ms(uint64_t us, char out[32])
{
    size_t n = sl_fmt_i64((int64_t)(us / 1000), out);
    unsigned frac = (unsigned)(us % 1000);
    out[n++] = '.';
    out[n++] = (char)('0' + frac / 100);
    out[n++] = (char)('0' + frac / 10 % 10);
    out[n++] = (char)('0' + frac % 10);
    return n;
}

int sl_buf_append_ms(sl_buf *b, uint64_t us)
{
    char tmp[32];
    return sl_buf_append(b, tmp, sl_fmt_ms(us, tmp));
}

int sl_buf_printf(sl_buf *b, const char *fmt, ...)
{
    /* Format straight into the spare room; only when it does not fit, grow
     * and format again (the common case formats once). */
    if (b->err)
        return b->err;
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        return fail(b, SL_EINVAL);
    if ((size_t)n < room) {
        b->len += (size_t)n;
        return SL_OK;
    }
    int rc = sl_buf_reserve(b, (size_t)n);
    if (rc) {
        if (b->p)
            b->p[b->len] = '\0'; /* undo the partial write's terminator position */
        return rc;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return SL_OK;
}

/* Bytes before the first one JSON must escape (control, '"', '\\'), eight
 * at a time: the access log writes a dozen short strings per request. */
static size_t plain_prefix(const char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        uint64_t q = v ^ (ones * '"'), bs = v ^ (ones * '\\');
        uint64_t hit = ((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((bs - ones) & ~bs);
        if (hit & highs)
            break;
    }
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\')
            break;
        i++;
    }
    return i;
}

/* The escape sequence of one byte JSON must escape, into esc; its length. */
static size_t escape(unsigned char c, char esc[6])
{
    static const char hex[] = "0123456789abcdef";
    esc[0] = '\\';
    switch (c) {
    case '"': esc[1] = '"'; return 2;
    case '\\': esc[1] = '\\'; return 2;
    case '\n': esc[1] = 'n'; return 2;
    case '\r': esc[1] = 'r'; return 2;
    case '\t': esc[1] = 't'; return 2;
    default:
        memcpy(esc + 1, "u00", 3);
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 15];
        return 6;
    }
}

int sl_buf_json_str(sl_buf *b, const char *s, size_t n)
{
    int rc = SL_OK;
    bool room = !b->err && b->cap > b->len && n + 2 < b->cap - b->len; /* the usual case: no call */
    if (!room && (rc = sl_buf_reserve(b, n + 2)))
        return rc;
    size_t plain = plain_prefix(s, n);
    if (plain == n) { /* the usual case: nothing to escape, room reserved */
        b->p[b->len] = '"';
        memcpy(b->p + b->len + 1, s, n);
        b->len += n + 1;
        return sl_buf_append(b, "\"", 1);
    }
    b->p[b->len++] = '"';
    size_t run = 0; /* bytes copied verbatim in one go */
    for (size_t i = plain; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if ((rc = sl_buf_append(b, s + run, i - run)))
            return rc;
        run = i + 1;
        char esc[6];
        if ((rc = sl_buf_append(b, esc, escape(c, esc))))
            return rc;
    }
    if ((rc = sl_buf_append(b, s + run, n - run)))
        return rc;
    return sl_buf_append(b, "\"", 1);
}

size_t sl_json_str_to(char *out, const char *s, size_t n)
{
    char *o = out;
    *o++ = '"';
    size_t i = 0;
    if (n >= 16) { /* long: eight bytes a test, then one copy */
        i = plain_prefix(s, n);
        memcpy(o, s, i);
        o += i;
    }
    for (; i < n; i++) { /* short (most of a log line's): byte by byte, no call */
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            *o++ = (char)c;
        else
            o += escape(c, o);
    }
    *o++ = '"';
    return (size_t)(o - out);
}

int sl_buf_json_cstr(sl_buf *b, const char *s)
{
    return s ? sl_buf_json_str(b, s, strlen(s)) : sl_buf_append(b, "null", 4);
}

int sl_buf_json_num(sl_buf *b, double v)
{
    if (!isfinite(v))
        return sl_buf_append(b, "null", 4);
    if (fabs(v) < 1e15 && v == (double)(int64_t)v)
        return sl_buf_append_i64(b, (int64_t)v);
    char tmp[32];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    return sl_buf_append_c(b, tmp);
}

/* The digits of |v| into out (no terminator); their count. */
static size_t digits_u64(uint64_t u, char out[20])
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

enum { PUSD_SCALE = 12 }; /* decimals of a pico-dollar amount */

int sl_buf_json_pusd(sl_buf *b, int64_t pusd)
{
    char out[48];
    return sl_buf_append(b, out, sl_fmt_pusd(pusd, out));
}

size_t sl_fmt_pusd(int64_t pusd, char out[48])
{
    if (pusd == 0) {
        out[0] = '0';
        return 1;
    }
    char d[20];
    size_t o = 0;
    uint64_t u = pusd < 0 ? (uint64_t)0 - (uint64_t)pusd : (uint64_t)pusd;
    if (pusd < 0)
        out[o++] = '-';
    size_t nd = digits_u64(u, d), sig = nd;
    while (sig > 1 && d[sig - 1] == '0')
        sig--;                        /* significant digits: trailing zeros are not printed */
    int x = (int)nd - 1 - PUSD_SCALE; /* decimal exponent of the leading digit */
    if (x < -4) {                     /* %g's exponent form: 1.5e-06 */
        out[o++] = d[0];
        if (sig > 1)
            out[o++] = '.';
        for (size_t i = 1; i < sig; i++)
            out[o++] = d[i];
        out[o++] = 'e';
        out[o++] = '-';
        out[o++] = (char)('0' + (-x) / 10);
        out[o++] = (char)('0' + (-x) % 10);
    } else if (x < 0) { /* 0.000123 */
        out[o++] = '0';
        out[o++] = '.';
        for (int i = -1; i > x; i--)
            out[o++] = '0';
        for (size_t i = 0; i < sig; i++)
            out[o++] = d[i];
    } else { /* 12.5, 3 */
        size_t whole = (size_t)x + 1;
        for (size_t i = 0; i < whole; i++)
            out[o++] = d[i];
        if (sig > whole)
            out[o++] = '.';
        for (size_t i = whole; i < sig; i++)
            out[o++] = d[i];
    }
    return o;
}

size_t sl_fmt_pusd_fixed8(int64_t pusd, char out[32])
{
    size_t o = 0;
    uint64_t u = pusd < 0 ? (uint64_t)0 - (uint64_t)pusd : (uint64_t)pusd;
    if (pusd < 0)
        out[o++] = '-';
    u = u / 10000 + (u % 10000 >= 5000); /* to units of 1e-8 USD, half up */
    char d[20];
    o += digits_u64(u / 100000000, out + o);
    out[o++] = '.';
    size_t nd = digits_u64(u % 100000000, d);
    for (size_t i = nd; i < 8; i++)
        out[o++] = '0';
    memcpy(out + o, d, nd);
    o += nd;
    out[o] = '\0';
    return o;
}

void sl_buf_consume(sl_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->p, b->p + n, b->len - n);
        b->len -= n;
    }
    if (b->p)
        b->p[b->len] = '\0';
}

void sl_buf_truncate(sl_buf *b, size_t n)
{
    if (n < b->len)
        b->len = n;
    if (b->p)
        b->p[b->len] = '\0';
    b->err = 0;
}

void sl_buf_reset(sl_buf *b)
{
    b->err = 0;
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

void sl_buf_free(sl_buf *b)
{
    free(b->p);
    sl_buf_init(b, b->max);
}
