/* head.c — the fast parser of a plain request or answer head (see head.h).
 *
 * http_parser walks a head byte by byte through a state machine (about 30
 * instructions a byte, measured: 4k of an 18k-instruction cache hit); a plain
 * head needs one table lookup a byte. The shape taken is deliberately narrow:
 * whatever is outside it goes to http_parser, which stays the authority on
 * every refusal. */
#include "sluice/head.h"

#include <http_parser.h>
#include <limits.h>
#include <string.h>

enum { TOK = 1, VAL = 2, URL = 4 };

/* TOK: a header name byte (alphanumerics, '-', '_': a subset of RFC 9110's
 * tchar); VAL: a value byte (printable ASCII, space, HTAB: a subset of what
 * http_parser takes); URL: a target byte (printable ASCII but '#', which
 * starts a fragment: a subset of http_parser's normal_url_char). */
static unsigned char cls[256];

static void init_classes(void)
{
    for (int ch = 0x21; ch < 0x7f; ch++)
        cls[ch] = VAL | (ch != '#' ? URL : 0);
    for (int ch = '0'; ch <= '9'; ch++)
        cls[ch] |= TOK;
    for (int ch = 'a'; ch <= 'z'; ch++)
        cls[ch] |= TOK, cls[ch - 'a' + 'A'] |= TOK;
    cls['-'] |= TOK;
    cls['_'] |= TOK;
    cls[' '] = cls['\t'] = VAL;
}

/* s[0..n) equals the lower-case literal lit, ignoring ASCII case (names are
 * tokens: |0x20 only folds letters, and leaves '-' as it is). */
static bool name_is(const char *s, size_t n, const char *lit, size_t ln)
{
    if (n != ln)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((s[i] | 0x20) != lit[i])
            return false;
    return true;
}
#define NAME_IS(s, n, lit) name_is((s), (n), lit, sizeof(lit) - 1)

/* The method before the first space; -1 when not one of the common ones. */
static int method_of(const char *p, size_t n)
{
    switch (n) {
    case 3: return memcmp(p, "GET", 3) == 0 ? HTTP_GET : memcmp(p, "PUT", 3) == 0 ? HTTP_PUT : -1;
    case 4:
        return memcmp(p, "POST", 4) == 0 ? HTTP_POST : memcmp(p, "HEAD", 4) == 0 ? HTTP_HEAD : -1;
    case 5: return memcmp(p, "PATCH", 5) == 0 ? HTTP_PATCH : -1;
    case 6: return memcmp(p, "DELETE", 6) == 0 ? HTTP_DELETE : -1;
    case 7: return memcmp(p, "OPTIONS", 7) == 0 ? HTTP_OPTIONS : -1;
    default: return -1;
    }
}

/* "METHOD SP /target SP HTTP/1.x CRLF"; the offset after it, or 0. */
static size_t request_line(const char *p, size_t n, sl_head *h)
{
    const char *sp = memchr(p, ' ', n < 8 ? n : 8);
    if (!sp)
        return 0;
    int m = method_of(p, (size_t)(sp - p));
    size_t i = (size_t)(sp - p) + 1;
    if (m < 0 || i >= n || p[i] != '/')
        return 0;
    h->method = (unsigned)m;
    h->url_o = (uint32_t)i;
    while (cls[(unsigned char)p[i]] & URL)
        i++;
    h->url_l = (uint32_t)(i - h->url_o);
    if (n - i < 11 || memcmp(p + i, " HTTP/1.", 8) != 0 || (p[i + 8] != '0' && p[i + 8] != '1') ||
        p[i + 9] != '\r' || p[i + 10] != '\n')
        return 0;
    h->http_minor = (unsigned)(p[i + 8] - '0');
    return i + 11;
}

/* "HTTP/1.x SP 3DIGIT SP reason CRLF" for a final answer (2xx to 5xx; 1xx are
 * interim, http_parser's), the reason of value bytes; the offset after it, or 0. */
static size_t status_line(const char *p, size_t n, sl_head *h)
{
    if (n < 15 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ' ||
        p[9] < '2' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
        p[12] != ' ')
        return 0;
    h->http_minor = (unsigned)(p[7] - '0');
    h->status = (unsigned)((p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0'));
    size_t i = 13;
    while (cls[(unsigned char)p[i]] & VAL)
        i++;
    return p[i] == '\r' && p[i + 1] == '\n' ? i + 2 : 0;
}

/* What the layer must know from a header's value; false for a header only
 * http_parser may interpret (framing, upgrades) or a value outside the shape. */
static bool meaning(sl_head *h, const char *name, size_t nl, const char *v, size_t vl, size_t raw)
{
    switch (nl) {
    case 7: return !NAME_IS(name, nl, "upgrade");
    case 10:
        if (!NAME_IS(name, nl, "connection"))
            return true;
        if (NAME_IS(v, vl, "close"))
            h->conn_close = true;
        else if (NAME_IS(v, vl, "keep-alive"))
            h->conn_keep_alive = true;
        else
            return false; /* a list, "upgrade", ...: http_parser reads those */
        return true;
    case 14:
        if (!NAME_IS(name, nl, "content-length"))
            return true;
        if (h->content_length != ULLONG_MAX || vl > 15 || vl != raw)
            return false; /* a second one is http_parser's (and head_ok's) to refuse; so is
                             whitespace after the digits (a tab there: its 400) */
        uint64_t cl = 0;
        for (size_t i = 0; i < vl; i++) {
            if (v[i] < '0' || v[i] > '9')
                return false;
            cl = cl * 10 + (uint64_t)(v[i] - '0');
        }
        h->content_length = cl;
        return true;
    case 16: return !NAME_IS(name, nl, "proxy-connection");
    case 17: return !NAME_IS(name, nl, "transfer-encoding");
    default: return true;
    }
}

/* "Name: value CRLF" at p[i]; the offset after it, or 0. */
static size_t field(const char *p, size_t i, sl_head *h, sl_head_field *f)
{
    size_t no = i;
    while (cls[(unsigned char)p[i]] & TOK)
        i++;
    if (i == no || p[i] != ':')
        return 0;
    f->no = (uint32_t)no;
    f->nl = (uint32_t)(i - no);
    i++;
    while (p[i] == ' ' || p[i] == '\t')
        i++;
    size_t vo = i;
    while (cls[(unsigned char)p[i]] & VAL)
        i++;
    if (p[i] != '\r' || p[i + 1] != '\n')
        return 0;
    size_t ve = i;
    while (ve > vo && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
        ve--;
    if (ve == vo)
        return 0; /* an empty value: http_parser's */
    f->vo = (uint32_t)vo;
    f->vl = (uint32_t)(ve - vo);
    if (!meaning(h, p + no, f->nl, p + vo, f->vl, i - vo))
        return 0;
    return i + 2;
}

static bool parse_head(const char *p, size_t n, sl_head *h, sl_head_field *fields, unsigned max,
                       size_t (*first_line)(const char *, size_t, sl_head *))
{
    if (!cls['a'])
        init_classes();
    /* The head ends with CRLF CRLF, and CR is in no class: every scan below
     * stops at a CR by n - 2 at the latest, so none needs a bound of its own. */
    if (n < 4 || n > UINT32_MAX || memcmp(p + n - 4, "\r\n\r\n", 4) != 0)
        return false;
    memset(h, 0, sizeof *h);
    h->content_length = ULLONG_MAX;
    size_t i = first_line(p, n, h);
    if (!i)
        return false;
    while (p[i] != '\r') {
        if (h->n_fields >= max)
            return false;
        if (!(i = field(p, i, h, &fields[h->n_fields])))
            return false;
        h->n_fields++;
    }
    return i + 2 == n; /* the blank line ends it, exactly at n */
}

bool sl_head_parse(const char *p, size_t n, sl_head *h, sl_head_field *fields, unsigned max)
{
    return parse_head(p, n, h, fields, max, request_line);
}

bool sl_head_parse_answer(const char *p, size_t n, sl_head *h, sl_head_field *fields, unsigned max)
{
    return parse_head(p, n, h, fields, max, status_line);
}
