/* json.h — a strict JSON parser that allocates only from an arena.
 *
 * Why not cJSON: every value keeps its exact source bytes (`raw`), so numbers
 * are compared and hashed by their text (no 2^53 collisions) and sub-objects
 * can be copied verbatim; invalid UTF-8, lone surrogates, duplicate keys,
 * trailing garbage and excessive depth are refused; nothing is malloc'ed.
 * Strings without escapes point into the source (zero copy). Parsing is
 * linear in the input: the duplicate-key check of an object beyond a few
 * members goes through a hash set (seeded per process, in the arena), so a
 * body of a million distinct keys costs what its bytes cost.
 *
 * Owns nothing: the tree lives in the caller's arena, and `raw`/`str` may
 * point into the source buffer, which must outlive the tree. */
#ifndef SLUICE_JSON_H
#define SLUICE_JSON_H

#include "sluice/arena.h"
#include "sluice/buf.h"

typedef enum {
    SL_JSON_NULL,
    SL_JSON_FALSE,
    SL_JSON_TRUE,
    SL_JSON_NUMBER,
    SL_JSON_STRING,
    SL_JSON_ARRAY,
    SL_JSON_OBJECT,
} sl_json_type;

typedef struct sl_json sl_json;
struct sl_json {
    sl_json_type type;
    sl_str key;     /* decoded member name when the parent is an object */
    sl_str raw;     /* exact source bytes of the value (strings with quotes) */
    sl_str str;     /* decoded string (length-delimited: may hold NUL) */
    double num;     /* numbers */
    sl_json *child; /* first element or member */
    sl_json *next;  /* next sibling */
    size_t n;       /* number of elements or members */
};

/* Which bound a refused input went over (the caller may name it). */
typedef enum {
    SL_JSON_LIMIT_NONE = 0, /* a syntax error, or out of memory */
    SL_JSON_LIMIT_DEPTH,
    SL_JSON_LIMIT_MEMBERS, /* sl_json_limits.max_members */
    SL_JSON_LIMIT_VALUES,  /* sl_json_limits.max_nodes */
} sl_json_limit;

typedef struct sl_json_error {
    size_t offset;
    const char *reason; /* static string */
    sl_json_limit limit;
} sl_json_error;

typedef struct sl_json_limits {
    int max_depth;      /* default 64 */
    size_t max_nodes;   /* values in the whole document (members count); 0: unbounded */
    size_t max_members; /* members of any one object; 0: unbounded */
} sl_json_limits;

int sl_json_parse(sl_arena *a, const char *p, size_t n, const sl_json_limits *lim, sl_json **out,
                  sl_json_error *err);
/* Member by name; NULL when absent or obj is not an object. */
const sl_json *sl_json_get_n(const sl_json *obj, const char *key, size_t n);
/* Inline so that a literal key's length is the compiler's (a request asks
 * for some thirty members). */
static inline const sl_json *sl_json_get(const sl_json *obj, const char *key)
{
    return sl_json_get_n(obj, key, strlen(key));
}
/* Appends the canonical form of v: members sorted by key, no whitespace,
 * strings re-escaped deterministically, numbers as their source text.
 * skip_top, when set, drops top-level members it returns true for. */
int sl_json_canonical(const sl_json *v, sl_buf *b, bool (*skip_top)(sl_str key));
/* v as an integer when it is a number within [lo, hi] (a fraction is cut),
 * else dflt. Numbers come from clients and providers: casting a double out of
 * an integer's range is undefined behaviour (found by fuzz_sse). */
long long sl_json_int(const sl_json *v, double lo, double hi, long long dflt);
/* True when s is valid UTF-8 (no surrogates, no overlongs). */
bool sl_utf8_valid(const char *s, size_t n);

#endif
