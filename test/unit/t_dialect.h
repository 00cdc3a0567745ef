/* t_dialect.h — helpers for the dialect tests: parse, translate, look into JSON.
 *
 * Bodies in these tests are the examples of the providers' API references
 * (platform.openai.com/docs/api-reference/chat, docs.anthropic.com/en/api/messages,
 * .../messages-streaming, the tool-use and prompt-caching guides), as published. */
#ifndef SLUICE_T_DIALECT_H
#define SLUICE_T_DIALECT_H

#include <stdlib.h>

#include "sluice/dialects.h"
#include "t.h"

#define OA (&sl_dialect_openai)
#define AN (&sl_dialect_anthropic)

static sl_arena TA;

/* Parses s (NULL when it is not JSON: the caller's check fails). */
static const sl_json *tj(const char *s)
{
    sl_json *v = NULL;
    sl_json_error e;
    if (!s || sl_json_parse(&TA, s, strlen(s), NULL, &v, &e) != SL_OK)
        return NULL;
    return v;
}

/* A copy of b's text that lives as long as the test arena. */
static const char *tkeep(const sl_buf *b)
{
    return b->p ? sl_arena_strndup(&TA, b->p, b->len) : "";
}

/* "a.b.0.c": members by name, array elements by index. */
static const sl_json *tget(const sl_json *v, const char *path)
{
    char key[64];
    while (v && *path) {
        size_t n = strcspn(path, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        path += n + (path[n] == '.');
        if (v->type == SL_JSON_ARRAY) {
            long i = strtol(key, NULL, 10);
            for (v = v->child; v && i > 0; i--)
                v = v->next;
        } else {
            v = sl_json_get(v, key);
        }
    }
    return v;
}

/* The string at path, or "(absent)". */
static const char *tstr(const sl_json *v, const char *path)
{
    const sl_json *x = tget(v, path);
    if (!x || x->type != SL_JSON_STRING)
        return "(absent)";
    return sl_arena_strndup(&TA, x->str.p, x->str.len);
}

/* The number at path, or -1. */
static long tnum(const sl_json *v, const char *path)
{
    const sl_json *x = tget(v, path);
    return x && x->type == SL_JSON_NUMBER ? (long)x->num : -1;
}

/* The canonical form of v (keys sorted): equal texts mean equal JSON. */
static const char *tcanon(const sl_json *v)
{
    sl_buf b;
    sl_buf_init(&b, 0);
    if (v)
        sl_json_canonical(v, &b, NULL);
    const char *s = tkeep(&b);
    sl_buf_free(&b);
    return s;
}

/* A request from one dialect into another; NULL when refused (*e says why). */
static const char *treq(const sl_dialect *from, const sl_dialect *to, const char *body,
                        sl_ir_refusal *e)
{
    sl_buf b;
    sl_buf_init(&b, 0);
    int rc = sl_dialect_request(from, to, tj(body), &TA, &b, e);
    const char *s = rc == SL_OK ? tkeep(&b) : NULL;
    sl_buf_free(&b);
    return s;
}

static const char *tanswer(const sl_dialect *from, const sl_dialect *to, const char *body)
{
    sl_buf b;
    sl_buf_init(&b, 0);
    int rc = sl_dialect_answer(from, to, tj(body), &TA, &b);
    const char *s = rc == SL_OK ? tkeep(&b) : NULL;
    sl_buf_free(&b);
    return s;
}

static const char *terror(const sl_dialect *from, const sl_dialect *to, const char *body)
{
    sl_buf b;
    sl_buf_init(&b, 0);
    sl_dialect_error(from, to, tj(body), &b);
    const char *s = tkeep(&b);
    sl_buf_free(&b);
    return s;
}

/* Feeds "event\ndata" pairs (event may be "") through a translating stream. */
static const char *tstream(sl_ir_stream *s, const char *const *events, size_t n)
{
    sl_buf b;
    sl_buf_init(&b, 0);
    for (size_t i = 0; i + 1 < n; i += 2)
        sl_ir_stream_feed(s, sl_str_c(events[i]), sl_str_c(events[i + 1]), &b);
    const char *out = tkeep(&b);
    sl_buf_free(&b);
    return out;
}

/* The data lines of SSE text, parsed, in order (at most cap); returns the count. */
static size_t tframes(const char *sse, const sl_json **out, size_t cap)
{
    size_t n = 0;
    for (const char *p = strstr(sse, "data: "); p && n < cap; p = strstr(p, "data: ")) {
        p += 6;
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *line = sl_arena_strndup(&TA, p, len);
        out[n++] = strcmp(line, "[DONE]") == 0 ? NULL : tj(line);
    }
    return n;
}

/* True when the SSE text names these events in this order. */
static bool tin_order(const char *sse, const char *const *names, size_t n)
{
    const char *at = sse;
    for (size_t i = 0; i < n; i++) {
        const char *f = strstr(at, names[i]);
        if (!f) {
            printf("  missing after the previous one: %s\n", names[i]);
            return false;
        }
        at = f + strlen(names[i]);
    }
    return true;
}

#endif
