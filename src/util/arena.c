/* arena.c — bump allocation in chained blocks; see arena.h. */
#include "sluice/arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

struct sl_arena_block {
    sl_arena_block *next;
    size_t len;
    char data[];
};

/* Heap blocks grow 4, 8, 16, 16... KiB: a request that just overflows its
 * inline first block takes 4 KiB more, not 16 (an open stream holds its
 * arena for the stream's life); a large one still takes few blocks. */
enum { SL_ARENA_ALIGN = 16, SL_ARENA_FIRST = 4096, SL_ARENA_BLOCK = 16384 };

void sl_arena_init(sl_arena *a, void *first, size_t first_len, size_t limit)
{
    a->blocks = NULL;
    a->first = first;
    a->first_len = first ? first_len : 0;
    a->cur = first;
    a->end = first ? (char *)first + first_len : NULL;
    a->total = 0;
    a->next = 0;
    a->limit = limit;
}

static char *align_up(char *p)
{
    uintptr_t v = (uintptr_t)p;
    return (char *)((v + SL_ARENA_ALIGN - 1) & ~(uintptr_t)(SL_ARENA_ALIGN - 1));
}

void *sl_arena_alloc(sl_arena *a, size_t n)
{
    if (n == 0)
        n = 1;
    if (a->limit && (n > a->limit || a->total > a->limit - n))
        return NULL;
    char *p = a->cur ? align_up(a->cur) : NULL;
    if (!p || p > a->end || (size_t)(a->end - p) < n) {
        size_t next = a->next ? a->next : SL_ARENA_FIRST;
        bool big = n > next / 2;
        size_t len = big ? n + SL_ARENA_ALIGN : next;
        sl_arena_block *b = malloc(sizeof(*b) + len);
        if (!b)
            return NULL;
        b->next = a->blocks;
        b->len = len;
        a->blocks = b;
        if (big) { /* a block of its own: keep bumping in the current one */
            a->total += n;
            return align_up(b->data);
        }
        p = align_up(b->data);
        a->end = b->data + len;
        a->next = next < SL_ARENA_BLOCK ? 2 * next : SL_ARENA_BLOCK;
    }
    a->cur = p + n;
    a->total += n;
    return p;
}

void *sl_arena_calloc(sl_arena *a, size_t n)
{
    void *p = sl_arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *sl_arena_strndup(sl_arena *a, const char *s, size_t n)
{
    char *p = sl_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *sl_arena_printf(sl_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = sl_arena_alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void sl_arena_reset(sl_arena *a)
{
    sl_arena_block *b = a->blocks;
    while (b) {
        sl_arena_block *next = b->next;
        free(b);
        b = next;
    }
    sl_arena_init(a, a->first, a->first_len, a->limit);
}

size_t sl_arena_heap_bytes(const sl_arena *a)
{
    size_t n = 0;
    for (const sl_arena_block *b = a->blocks; b; b = b->next)
        n += b->len;
    return n;
}

void sl_arena_free(sl_arena *a)
{
    sl_arena_reset(a);
}
