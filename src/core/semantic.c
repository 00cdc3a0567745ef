/* semantic.c — question, partition, lexical guard and vector entries of the
 * semantic cache; see semantic.h. */
#include "sluice/semantic.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

/* ---- which request, which question ----------------------------------------- */

static bool is_tool_role(const sl_json *turn)
{
    const sl_json *role = sl_json_get(turn, "role"), *type = sl_json_get(turn, "type");
    return (role && role->type == SL_JSON_STRING &&
            (sl_str_eq_c(role->str, "tool") || sl_str_eq_c(role->str, "function"))) ||
           (type && type->type == SL_JSON_STRING && !sl_str_eq_c(type->str, "message"));
}

/* A content part that is not text (an image, a tool result, a document). */
static bool has_other_parts(const sl_json *content)
{
    for (const sl_json *p = content->child; p; p = p->next) {
        const sl_json *type = sl_json_get(p, "type");
        if (!type || type->type != SL_JSON_STRING ||
            !(sl_str_eq_c(type->str, "text") || sl_str_eq_c(type->str, "input_text")))
            return true;
    }
    return false;
}

static int content_text(sl_arena *a, const sl_json *content, sl_str *out)
{
    if (content && content->type == SL_JSON_STRING) {
        *out = content->str;
        return SL_OK;
    }
    if (!content || content->type != SL_JSON_ARRAY || !content->n || has_other_parts(content))
        return SL_EINVAL;
    size_t total = 0;
    for (const sl_json *p = content->child; p; p = p->next) {
        const sl_json *t = sl_json_get(p, "text");
        if (!t || t->type != SL_JSON_STRING)
            return SL_EINVAL;
        total += t->str.len + 1;
    }
    if (total > SL_SEM_MAX_TEXT + 1)
        return SL_EINVAL;
    char *s = sl_arena_alloc(a, total), *w = s;
    if (!s)
        return SL_ENOMEM;
    for (const sl_json *p = content->child; p; p = p->next) {
        const sl_json *t = sl_json_get(p, "text");
        if (w != s)
            *w++ = '\n';
        memcpy(w, t->str.p, t->str.len);
        w += t->str.len;
    }
    *out = (sl_str){s, (size_t)(w - s)};
    return SL_OK;
}

static const sl_json *turns_of(const sl_llm_req *r)
{
    const sl_json *m = sl_json_get(r->root, "messages");
    return m ? m : sl_json_get(r->root, "input");
}

int sl_sem_question(sl_arena *a, const sl_llm_req *r, sl_str *text, int *turn)
{
    const sl_json *n = sl_json_get(r->root, "n"), *turns = turns_of(r);
    if ((n && sl_json_int(n, 0, 1e9, 2) != 1) || !turns)
        return SL_EINVAL;
    if (turns->type == SL_JSON_STRING) { /* responses: `input` as one string */
        *turn = -1;
        *text = turns->str;
        return text->len && text->len <= SL_SEM_MAX_TEXT ? SL_OK : SL_EINVAL;
    }
    if (turns->type != SL_JSON_ARRAY)
        return SL_EINVAL;
    int i = 0, last = -1;
    const sl_json *user = NULL;
    for (const sl_json *t = turns->child; t; t = t->next, i++) {
        if (is_tool_role(t))
            return SL_EINVAL;
        const sl_json *role = sl_json_get(t, "role");
        if (role && role->type == SL_JSON_STRING && sl_str_eq_c(role->str, "user"))
            user = t, last = i;
        const sl_json *content = sl_json_get(t, "content");
        if (content && content->type == SL_JSON_ARRAY && has_other_parts(content))
            return SL_EINVAL; /* tool results or images in any turn */
    }
    if (!user || content_text(a, sl_json_get(user, "content"), text) != SL_OK)
        return SL_EINVAL;
    *turn = last;
    return text->len && text->len <= SL_SEM_MAX_TEXT ? SL_OK : SL_EINVAL;
}

static bool skip_partition_top(sl_str key)
{
    return sl_str_eq_c(key, "stream") || sl_str_eq_c(key, "stream_options") ||
           sl_str_eq_c(key, "user") || sl_str_eq_c(key, "messages") || sl_str_eq_c(key, "input");
}

int sl_sem_partition(const sl_llm_req *r, sl_str scope, sl_str embedding_model, int turn,
                     sl_cache_key *out)
{
    static sl_buf canon; /* reused by every request: no allocation once grown */
    sl_buf_reset(&canon);
    char head[48];
    int hn = snprintf(head, sizeof head, "sem1|%d|%zu:", (int)r->api, scope.len);
    int rc = sl_buf_append(&canon, head, (size_t)hn);
    rc = rc ? rc : sl_buf_append_str(&canon, scope);
    rc = rc ? rc : sl_buf_printf(&canon, "|%zu:", embedding_model.len);
    rc = rc ? rc : sl_buf_append_str(&canon, embedding_model);
    rc = rc ? rc : sl_buf_append(&canon, "|", 1);
    rc = rc ? rc : sl_json_canonical(r->root, &canon, skip_partition_top);
    const sl_json *turns = turns_of(r);
    int i = 0;
    for (const sl_json *t = turns && turns->type == SL_JSON_ARRAY ? turns->child : NULL; t && !rc;
         t = t->next, i++) {
        rc = sl_buf_append(&canon, i == turn ? "|-" : "|", i == turn ? 2 : 1);
        if (i != turn)
            rc = rc ? rc : sl_json_canonical(t, &canon, NULL);
    }
    if (rc)
        return SL_ENOMEM;
    XXH128_hash_t h = XXH3_128bits(canon.p, canon.len);
    *out = (sl_cache_key){h.high64, h.low64};
    return SL_OK;
}

/* ---- the lexical guard ------------------------------------------------------ */

enum { MAX_TOKENS = SL_SEM_MAX_TEXT / 2 + 1 };

typedef struct token {
    uint16_t off, len;
    bool first; /* a sentence's first word */
} token;

typedef struct text {
    sl_str s;
    token tok[MAX_TOKENS];
    size_t n;
} text;

static bool word_byte(const char *p, size_t i, size_t n)
{
    unsigned char c = (unsigned char)p[i];
    if (isalnum(c) || c >= 0x80)
        return true;
    /* an apostrophe or a separator between digits stays inside the word */
    bool inner =
        i > 0 && i + 1 < n && isalnum((unsigned char)p[i - 1]) && isalnum((unsigned char)p[i + 1]);
    if (c == '\'')
        return inner;
    return (c == '.' || c == ',') && inner && isdigit((unsigned char)p[i - 1]) &&
           isdigit((unsigned char)p[i + 1]);
}

static void tokenise(text *t, sl_str s)
{
    t->s = s;
    t->n = 0;
    bool first = true;
    for (size_t i = 0; i < s.len && s.len <= SL_SEM_MAX_TEXT;) {
        if (!word_byte(s.p, i, s.len)) {
            char c = s.p[i++];
            first |= c == '.' || c == '?' || c == '!' || c == ':' || c == '\n';
            continue;
        }
        size_t j = i;
        while (j < s.len && word_byte(s.p, j, s.len))
            j++;
        if (t->n < MAX_TOKENS)
            t->tok[t->n++] = (token){(uint16_t)i, (uint16_t)(j - i), first};
        first = false;
        i = j;
    }
}

/* The word lowercased, without a possessive 's (U+2019 too), into out. */
static size_t word_key(const text *t, const token *k, char out[64])
{
    size_t n = SL_MIN((size_t)k->len, (size_t)63);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)t->s.p[k->off + i]);
    if (n > 2 && out[n - 2] == '\'' && out[n - 1] == 's')
        n -= 2;
    else if (n > 4 && memcmp(out + n - 4, "\xe2\x80\x99s", 4) == 0)
        n -= 4;
    out[n] = '\0';
    return n;
}

static bool has_word(const text *t, const char *w)
{
    char key[64];
    for (size_t i = 0; i < t->n; i++) {
        word_key(t, &t->tok[i], key);
        if (strcmp(key, w) == 0)
            return true;
    }
    return false;
}

static const char *const DEFAULT_NEGATIONS[] = {
    "not", "no",      "never",   "none",   "nobody", "nothing", "neither",
    "nor", "nowhere", "without", "cannot", "dont",   "doesnt",  "isnt",
};

static bool ends_with(const char *w, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(w + n - k, suffix, k) == 0;
}

static size_t negations_in(const text *t, char *const *list, size_t n_list)
{
    size_t count = 0;
    char key[64];
    for (size_t i = 0; i < t->n; i++) {
        size_t n = word_key(t, &t->tok[i], key);
        bool neg = ends_with(key, n, "n't") || ends_with(key, n, "n\xe2\x80\x99t");
        for (size_t k = 0; !neg && k < (n_list ? n_list : SL_ARRAY_LEN(DEFAULT_NEGATIONS)); k++)
            neg = strcasecmp(key, n_list ? list[k] : DEFAULT_NEGATIONS[k]) == 0;
        count += neg;
    }
    return count;
}

static const char *const NUMBER_WORDS[] = {
    "zero",    "one",  "two",    "three",  "four",   "five",  "six",     "seven",    "eight",
    "nine",    "ten",  "eleven", "twelve", "twenty", "dozen", "hundred", "thousand", "million",
    "billion", "half", "first",  "second", "third",  "once",  "twice",
};

static bool is_number(const char *key)
{
    if (isdigit((unsigned char)key[0]))
        return true;
    for (size_t i = 0; i < SL_ARRAY_LEN(NUMBER_WORDS); i++) {
        if (strcmp(key, NUMBER_WORDS[i]) == 0)
            return true;
    }
    return false;
}

/* Every number a names, b names too. */
static bool numbers_within(const text *a, const text *b)
{
    char key[64];
    for (size_t i = 0; i < a->n; i++) {
        word_key(a, &a->tok[i], key);
        if (is_number(key) && !has_word(b, key))
            return false;
    }
    return true;
}

/* A proper noun or an acronym: capitalised away from a sentence's start, or
 * two capitals anywhere ("AWS"). "I" is neither. */
static bool capitalised(const text *t, const token *k)
{
    const char *w = t->s.p + k->off;
    if (!isupper((unsigned char)w[0]) || (k->len == 1 && w[0] == 'I'))
        return false;
    size_t upper = 0;
    for (size_t i = 0; i < k->len; i++)
        upper += isupper((unsigned char)w[i]) != 0;
    return !k->first || upper >= 2;
}

static bool capitals_within(const text *a, const text *b)
{
    char key[64];
    for (size_t i = 0; i < a->n; i++) {
        if (!capitalised(a, &a->tok[i]))
            continue;
        word_key(a, &a->tok[i], key);
        if (!has_word(b, key))
            return false;
    }
    return true;
}

static bool contains_ci(sl_str hay, const char *p, size_t n)
{
    for (size_t i = 0; n && i + n <= hay.len; i++) {
        if (strncasecmp(hay.p + i, p, n) == 0)
            return true;
    }
    return !n;
}

/* Where the quote opening at s[i] closes, or 0. */
static size_t quote_end(sl_str s, size_t i, size_t *open_len)
{
    static const struct {
        const char *open, *close;
    } q[] = {{"\"", "\""}, {"`", "`"}, {"\xe2\x80\x9c", "\xe2\x80\x9d"}, {"\xc2\xab", "\xc2\xbb"}};
    for (size_t k = 0; k < SL_ARRAY_LEN(q); k++) {
        size_t ol = strlen(q[k].open), cl = strlen(q[k].close);
        if (i + ol > s.len || memcmp(s.p + i, q[k].open, ol) != 0)
            continue;
        for (size_t j = i + ol; j + cl <= s.len; j++) {
            if (memcmp(s.p + j, q[k].close, cl) == 0) {
                *open_len = ol;
                return j;
            }
        }
    }
    return 0;
}

static bool quotes_within(sl_str a, sl_str b)
{
    for (size_t i = 0; i < a.len; i++) {
        size_t ol = 0, end = quote_end(a, i, &ol);
        if (!end)
            continue;
        if (!contains_ci(b, a.p + i + ol, end - i - ol))
            return false;
        i = end;
    }
    return true;
}

const char *sl_sem_guard(sl_str a, sl_str b, char *const *negations, size_t n)
{
    static text ta, tb; /* 8 KiB each: off the stack; one loop, no reentry */
    if (a.len > SL_SEM_MAX_TEXT || b.len > SL_SEM_MAX_TEXT)
        return "too long";
    tokenise(&ta, a);
    tokenise(&tb, b);
    if (negations_in(&ta, negations, n) != negations_in(&tb, negations, n))
        return "negation";
    if (!numbers_within(&ta, &tb) || !numbers_within(&tb, &ta))
        return "number";
    if (!quotes_within(a, b) || !quotes_within(b, a))
        return "quoted term";
    if (!capitals_within(&ta, &tb) || !capitals_within(&tb, &ta))
        return "capitalised term";
    return NULL;
}

/* ---- vector entries ---------------------------------------------------------- */

/* magic, dim, partition, key, stored at, expires at, text and id lengths */
enum { HEAD = 4 + 4 + 16 + 16 + 8 + 8 + 2 + 2 };
static const char MAGIC[4] = {'S', 'L', 'V', '1'};

static void put_u64(char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (char)(v >> (8 * i));
}

static uint64_t get_u64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)(unsigned char)p[i] << (8 * i);
    return v;
}

static uint32_t get_u32(const char *p)
{
    return (uint32_t)get_u64((const char[8]){p[0], p[1], p[2], p[3], 0, 0, 0, 0});
}

size_t sl_sem_entry_size(const sl_sem_entry *e)
{
    return HEAD + e->text.len + e->request_id.len + (size_t)e->dim * 4;
}

void sl_sem_entry_encode(const sl_sem_entry *e, char *out)
{
    memcpy(out, MAGIC, 4);
    put_u64(out + 4, e->dim); /* the next field overwrites the upper half */
    put_u64(out + 8, e->partition.hi);
    put_u64(out + 16, e->partition.lo);
    put_u64(out + 24, e->key.hi);
    put_u64(out + 32, e->key.lo);
    put_u64(out + 40, (uint64_t)e->stored_at_ms);
    put_u64(out + 48, (uint64_t)e->expires_at_ms);
    out[56] = (char)(e->text.len & 0xff), out[57] = (char)(e->text.len >> 8);
    out[58] = (char)(e->request_id.len & 0xff), out[59] = (char)(e->request_id.len >> 8);
    char *w = out + HEAD;
    memcpy(w, e->text.p, e->text.len);
    memcpy(w + e->text.len, e->request_id.p, e->request_id.len);
    w += e->text.len + e->request_id.len;
    for (uint32_t i = 0; i < e->dim; i++) {
        uint32_t bits;
        memcpy(&bits, &e->vec[i], 4);
        for (int k = 0; k < 4; k++)
            *w++ = (char)(bits >> (8 * k));
    }
}

int sl_sem_normalise(float *v, uint32_t dim)
{
    double norm = 0;
    for (uint32_t i = 0; i < dim; i++) {
        if (!isfinite(v[i]))
            return SL_EINVAL;
        norm += (double)v[i] * v[i];
    }
    if (!(norm > 0) || !isfinite(norm))
        return SL_EINVAL;
    /* divided in double: the inverse of a tiny norm does not fit a float
     * (1e-40 components made inf; found by fuzz_vector) */
    double len = sqrt(norm);
    for (uint32_t i = 0; i < dim; i++)
        v[i] = (float)(v[i] / len);
    return SL_OK;
}

int sl_sem_entry_decode(const char *p, size_t n, sl_sem_entry *e, float *vec_out)
{
    if (n < HEAD || memcmp(p, MAGIC, 4) != 0)
        return SL_EINVAL;
    uint32_t dim = get_u32(p + 4);
    size_t tl = (unsigned char)p[56] | (size_t)(unsigned char)p[57] << 8;
    size_t il = (unsigned char)p[58] | (size_t)(unsigned char)p[59] << 8;
    if (!dim || dim > SL_SEM_MAX_DIM || tl > SL_SEM_MAX_TEXT || il > SL_SEM_MAX_ID ||
        n != HEAD + tl + il + (size_t)dim * 4)
        return SL_EINVAL;
    *e = (sl_sem_entry){
        .partition = {get_u64(p + 8), get_u64(p + 16)},
        .key = {get_u64(p + 24), get_u64(p + 32)},
        .stored_at_ms = (int64_t)get_u64(p + 40),
        .expires_at_ms = (int64_t)get_u64(p + 48),
        .text = {p + HEAD, tl},
        .request_id = {p + HEAD + tl, il},
        .dim = dim,
        .vec = vec_out,
    };
    const char *v = p + HEAD + tl + il;
    for (uint32_t i = 0; i < dim; i++, v += 4) {
        uint32_t bits = get_u32(v);
        memcpy(&vec_out[i], &bits, 4);
    }
    return sl_sem_normalise(vec_out, dim);
}
