/* json.c — strict arena JSON parser and canonical writer; see json.h. */
#include "sluice/json.h"

#include <stdlib.h>
#include <sys/random.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

/* Objects up to this many members check duplicates by a scan; larger ones
 * through a hash set (a scan per member made 100k keys cost 39 s). */
enum { KEYSET_FROM = 16 };

typedef struct parser {
    const char *p, *end, *start;
    sl_arena *a;
    int depth, max_depth;
    size_t nodes, max_nodes, max_members;
    sl_json_error *err;
} parser;

static int fail_limit(parser *ps, const char *reason, sl_json_limit limit)
{
    if (ps->err) {
        ps->err->offset = (size_t)(ps->p - ps->start);
        ps->err->reason = reason;
        ps->err->limit = limit;
    }
    return SL_EINVAL;
}

static int fail(parser *ps, const char *reason)
{
    return fail_limit(ps, reason, SL_JSON_LIMIT_NONE);
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned min;
    if ((c & 0xE0) == 0xC0) {
        n = 2, min = 0x80, c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, min = 0x800, c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, min = 0x10000, c &= 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - s) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    return n;
}

bool sl_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        size_t k = utf8_seq(p, end);
        if (!k)
            return false;
        p += k;
    }
    return true;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the escapes of a string body [s, e) into the arena. */
static int decode_escapes(parser *ps, const char *s, const char *e, sl_str *out)
{
    char *o = sl_arena_alloc(ps->a, (size_t)(e - s) + 1);
    if (!o)
        return fail(ps, "out of memory");
    size_t n = 0;
    while (s < e) {
        if (*s != '\\') {
            o[n++] = *s++;
            continue;
        }
        s++;
        char c = *s++;
        switch (c) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        default: { /* 'u': validated by scan_string */
            unsigned cp, lo;
            hex4(s, &cp);
            s += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                hex4(s + 2, &lo);
                s += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            n += put_utf8(o + n, cp);
        }
        }
    }
    o[n] = '\0';
    *out = (sl_str){o, n};
    return SL_OK;
}

/* Scans a string starting after its opening quote; fills v->str (and raw). */
/* 1 for a byte that is plain inside a string: ASCII, not a control byte, '"'
 * or '\\'. */
static const unsigned char plain_byte[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 10 */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 70 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 80 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 90 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* a0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* b0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* c0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* d0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* e0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* f0 */
};

/* Bytes from p that are plain ASCII inside a string (no '"', '\\', control
 * byte or UTF-8 lead), eight at a time: most of a request body is text. The
 * word that holds the first other byte says where it is: the lowest flag of
 * each of the tests below is exact (a borrow only flags bytes above a true
 * one), so the lowest flag of all of them is the byte, found without a
 * loop over the word's tail: most strings of a body are short keys. */
static const char *skip_plain(const char *p, const char *end)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (end - p >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        uint64_t q = v ^ (ones * '"'), bs = v ^ (ones * '\\');
        uint64_t flags = (((v - ones * 0x20) | (q - ones) | (bs - ones)) & ~v & highs) | (v & highs);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (flags)
            return p + (__builtin_ctzll(flags) >> 3);
#else
        if (flags)
            break;
#endif
        p += 8;
    }
    while (p < end && plain_byte[(unsigned char)*p])
        p++; /* the last bytes, short of a word */
    return p;
}

static int scan_string(parser *ps, sl_str *str)
{
    const char *s = ps->p;
    bool escaped = false;
    while (ps->p < ps->end) {
        ps->p = skip_plain(ps->p, ps->end);
        if (ps->p >= ps->end)
            break;
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(ps, "control character in string");
        if (c == '\\') {
            escaped = true;
            if (ps->end - ps->p < 2)
                return fail(ps, "unterminated string");
            char k = ps->p[1];
            if (k == 'u') {
                unsigned cp, lo;
                if (ps->end - ps->p < 6 || hex4(ps->p + 2, &cp))
                    return fail(ps, "bad \\u escape");
                ps->p += 6;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return fail(ps, "lone surrogate");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
                        hex4(ps->p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return fail(ps, "lone surrogate");
                    ps->p += 6;
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", k) || k == '\0')
                return fail(ps, "bad escape");
            ps->p += 2;
            continue;
        }
        if (c < 0x80) {
            ps->p++;
            continue;
        }
        size_t k = utf8_seq((const unsigned char *)ps->p, (const unsigned char *)ps->end);
        if (!k)
            return fail(ps, "invalid UTF-8");
        ps->p += k;
    }
    if (ps->p >= ps->end)
        return fail(ps, "unterminated string");
    const char *e = ps->p++;
    if (!escaped) {
        *str = (sl_str){s, (size_t)(e - s)};
        return SL_OK;
    }
    return decode_escapes(ps, s, e, str);
}

static int scan_number(parser *ps, sl_json *v)
{
    const char *s = ps->p;
    bool neg = ps->p < ps->end && *ps->p == '-';
    if (neg)
        ps->p++;
    if (ps->p >= ps->end)
        return fail(ps, "bad number");
    uint64_t whole = 0; /* the integer part, exact while it has at most 15 digits */
    const char *digits = ps->p;
    if (*ps->p == '0') {
        ps->p++;
    } else if (*ps->p >= '1' && *ps->p <= '9') {
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            whole = whole * 10 + (uint64_t)(*ps->p++ - '0');
    } else {
        return fail(ps, "bad number");
    }
    if (ps->p - digits <= 15 &&
        !(ps->p < ps->end && (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E'))) {
        /* an integer below 10^15: exactly the double strtod would give */
        v->num = neg ? -(double)whole : (double)whole;
        return SL_OK;
    }
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return fail(ps, "bad number");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return fail(ps, "bad number");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
    }
    char tmp[64];
    size_t n = (size_t)(ps->p - s);
    if (n < sizeof tmp) {
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        v->num = strtod(tmp, NULL);
    } else {
        char *big = sl_arena_strndup(ps->a, s, n);
        v->num = big ? strtod(big, NULL) : 0;
    }
    return SL_OK;
}

static int parse_value(parser *ps, sl_json *v);

static bool has_member(const sl_json *obj, sl_str key)
{
    for (const sl_json *m = obj->child; m; m = m->next) {
        if (sl_str_eq(m->key, key))
            return true;
    }
    return false;
}

/* The member names of one large object: open addressing over node pointers,
 * at most half full. Seeded once per process so that nobody can prepare keys
 * that collide (which would make the set a scan again). */
typedef struct keyset {
    sl_json **slot;
    size_t cap, n; /* cap: a power of two */
} keyset;

static uint64_t key_hash(sl_str k)
{
    static uint64_t seed;
    if (!seed && getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = (uint64_t)(uintptr_t)&seed ^ 0x9e3779b97f4a7c15ull;
    seed |= 1;
    return XXH3_64bits_withSeed(k.p, k.len, seed);
}

/* Inserts m; false when a member of that name is already there. */
static bool keyset_add(keyset *ks, sl_json *m)
{
    size_t mask = ks->cap - 1, i = (size_t)key_hash(m->key) & mask;
    for (; ks->slot[i]; i = (i + 1) & mask) {
        if (sl_str_eq(ks->slot[i]->key, m->key))
            return false;
    }
    ks->slot[i] = m;
    ks->n++;
    return true;
}

static int keyset_grow(parser *ps, keyset *ks, const sl_json *obj)
{
    size_t cap = ks->cap ? ks->cap * 2 : 4 * KEYSET_FROM;
    sl_json **slot = sl_arena_calloc(ps->a, cap * sizeof(*slot));
    if (!slot)
        return fail(ps, "out of memory");
    *ks = (keyset){slot, cap, 0}; /* the old table stays in the arena: at most as big again */
    for (sl_json *m = obj->child; m; m = m->next)
        keyset_add(ks, m);
    return SL_OK;
}

/* Duplicate check for the next member of obj (item, not yet linked). */
static int check_new_member(parser *ps, keyset *ks, const sl_json *obj, sl_json *item)
{
    if (ps->max_members && obj->n >= ps->max_members)
        return fail_limit(ps, "too many members in an object", SL_JSON_LIMIT_MEMBERS);
    if (obj->n < KEYSET_FROM)
        return obj->n > 0 && has_member(obj, item->key) ? fail(ps, "duplicate key") : SL_OK;
    if ((ks->n + 1) * 2 > ks->cap && keyset_grow(ps, ks, obj))
        return SL_EINVAL;
    return keyset_add(ks, item) ? SL_OK : fail(ps, "duplicate key");
}

static sl_json *new_node(parser *ps)
{
    if (ps->max_nodes && ++ps->nodes > ps->max_nodes)
        return NULL;
    return sl_arena_calloc(ps->a, sizeof(sl_json));
}

static int parse_container(parser *ps, sl_json *v, bool object)
{
    if (++ps->depth > ps->max_depth)
        return fail_limit(ps, "nesting too deep", SL_JSON_LIMIT_DEPTH);
    ps->p++;
    v->type = object ? SL_JSON_OBJECT : SL_JSON_ARRAY;
    sl_json **tail = &v->child;
    keyset ks = {0};
    char close = object ? '}' : ']';
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return SL_OK;
    }
    for (;;) {
        sl_json *item = new_node(ps);
        if (!item)
            return ps->max_nodes && ps->nodes > ps->max_nodes
                       ? fail_limit(ps, "too many values", SL_JSON_LIMIT_VALUES)
                       : fail(ps, "out of memory");
        skip_ws(ps);
        if (object) {
            if (ps->p >= ps->end || *ps->p != '"')
                return fail(ps, "expected a member name");
            ps->p++;
            if (scan_string(ps, &item->key))
                return SL_EINVAL;
            if (check_new_member(ps, &ks, v, item))
                return SL_EINVAL;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':')
                return fail(ps, "expected ':'");
            ps->p++;
        }
        if (parse_value(ps, item))
            return SL_EINVAL;
        *tail = item;
        tail = &item->next;
        v->n++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            ps->depth--;
            return SL_OK;
        }
        return fail(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int literal(parser *ps, const char *word, sl_json_type t, sl_json *v)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return fail(ps, "unexpected character");
    ps->p += n;
    v->type = t;
    return SL_OK;
}

static int parse_value(parser *ps, sl_json *v)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, "unexpected end of input");
    const char *s = ps->p;
    int rc;
    switch (*ps->p) {
    case '{': rc = parse_container(ps, v, true); break;
    case '[': rc = parse_container(ps, v, false); break;
    case '"':
        ps->p++;
        v->type = SL_JSON_STRING;
        rc = scan_string(ps, &v->str);
        break;
    case 't': rc = literal(ps, "true", SL_JSON_TRUE, v); break;
    case 'f': rc = literal(ps, "false", SL_JSON_FALSE, v); break;
    case 'n': rc = literal(ps, "null", SL_JSON_NULL, v); break;
    default:
        v->type = SL_JSON_NUMBER;
        rc = scan_number(ps, v);
        break;
    }
    v->raw = (sl_str){s, (size_t)(ps->p - s)};
    return rc;
}

int sl_json_parse(sl_arena *a, const char *p, size_t n, const sl_json_limits *lim, sl_json **out,
                  sl_json_error *err)
{
    parser ps = {
        .p = p ? p : "",
        .end = (p ? p : "") + n,
        .start = p ? p : "",
        .a = a,
        .max_depth = lim && lim->max_depth > 0 ? lim->max_depth : 64,
        .max_nodes = lim ? lim->max_nodes : 0,
        .max_members = lim ? lim->max_members : 0,
        .err = err,
    };
    *out = NULL;
    if (err)
        *err = (sl_json_error){0};
    sl_json *root = new_node(&ps);
    if (!root)
        return fail(&ps, "out of memory");
    if (parse_value(&ps, root))
        return SL_EINVAL;
    skip_ws(&ps);
    if (ps.p != ps.end)
        return fail(&ps, "trailing characters after the JSON value");
    *out = root;
    return SL_OK;
}

const sl_json *sl_json_get_n(const sl_json *obj, const char *key, size_t n)
{
    if (!obj || obj->type != SL_JSON_OBJECT)
        return NULL;
    for (const sl_json *m = obj->child; m; m = m->next) {
        if (m->key.len == n && (n == 0 || (m->key.p[0] == key[0] && memcmp(m->key.p, key, n) == 0)))
            return m;
    }
    return NULL;
}

static int cmp_members(const void *x, const void *y)
{
    const sl_json *a = *(const sl_json *const *)x, *b = *(const sl_json *const *)y;
    size_t n = SL_MIN(a->key.len, b->key.len);
    int c = n ? memcmp(a->key.p, b->key.p, n) : 0;
    return c ? c : (a->key.len > b->key.len) - (a->key.len < b->key.len);
}

static int canonical(const sl_json *v, sl_buf *b, bool (*skip)(sl_str), int depth)
{
    switch (v->type) {
    case SL_JSON_STRING: return sl_buf_json_str(b, v->str.p, v->str.len);
    case SL_JSON_ARRAY: {
        int rc = sl_buf_append(b, "[", 1);
        for (const sl_json *c = v->child; c && !rc; c = c->next) {
            if (c != v->child)
                rc = sl_buf_append(b, ",", 1);
            rc = rc ? rc : canonical(c, b, NULL, depth + 1);
        }
        return rc ? rc : sl_buf_append(b, "]", 1);
    }
    case SL_JSON_OBJECT: {
        const sl_json *small[32];
        const sl_json **m = v->n <= 32 ? small : malloc(v->n * sizeof(*m));
        if (!m)
            return SL_ENOMEM;
        size_t k = 0;
        for (const sl_json *c = v->child; c; c = c->next) {
            if (!(skip && skip(c->key)))
                m[k++] = c;
        }
        qsort(m, k, sizeof(*m), cmp_members);
        int rc = sl_buf_append(b, "{", 1);
        for (size_t i = 0; i < k && !rc; i++) {
            if (i)
                rc = sl_buf_append(b, ",", 1);
            rc = rc ? rc : sl_buf_json_str(b, m[i]->key.p, m[i]->key.len);
            rc = rc ? rc : sl_buf_append(b, ":", 1);
            rc = rc ? rc : canonical(m[i], b, NULL, depth + 1);
        }
        if (m != small)
            free(m);
        return rc ? rc : sl_buf_append(b, "}", 1);
    }
    default: return sl_buf_append_str(b, v->raw);
    }
}

int sl_json_canonical(const sl_json *v, sl_buf *b, bool (*skip_top)(sl_str key))
{
    return canonical(v, b, skip_top, 0);
}

long long sl_json_int(const sl_json *v, double lo, double hi, long long dflt)
{
    if (!v || v->type != SL_JSON_NUMBER || !(v->num >= lo && v->num <= hi)) /* NaN fails too */
        return dflt;
    return (long long)v->num;
}
