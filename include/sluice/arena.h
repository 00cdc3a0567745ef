/* arena.h — per-request bump allocator.
 *
 * Owns: the blocks it allocates. Everything allocated from an arena lives until
 * sl_arena_reset() or sl_arena_free(); there is no per-object free. The first
 * block may be caller-provided (e.g. inline in a pooled request) so a request
 * whose needs fit in it allocates nothing from the heap. */
#ifndef SLUICE_ARENA_H
#define SLUICE_ARENA_H

#include "sluice/util.h"

typedef struct sl_arena_block sl_arena_block;

typedef struct sl_arena {
    char *cur;              /* next free byte in the current block */
    char *end;              /* end of the current block */
    sl_arena_block *blocks; /* heap blocks, newest first (freed on reset) */
    char *first;            /* caller-provided first block, or NULL */
    size_t first_len;
    size_t total; /* bytes handed out since the last reset */
    size_t next;  /* the size of the next heap block (0: the first, 4 KiB; doubling to 16 KiB) */
    size_t limit; /* 0: unbounded; else allocations beyond it fail */
} sl_arena;

void sl_arena_init(sl_arena *a, void *first, size_t first_len, size_t limit);
/* Returns 16-byte aligned memory, or NULL when the limit is reached or malloc fails. */
void *sl_arena_alloc(sl_arena *a, size_t n);
void *sl_arena_calloc(sl_arena *a, size_t n);
/* Copies n bytes and appends a NUL. */
char *sl_arena_strndup(sl_arena *a, const char *s, size_t n);
char *sl_arena_printf(sl_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees heap blocks and rewinds to the first block; the arena stays usable. */
void sl_arena_reset(sl_arena *a);
/* Bytes of heap blocks the arena holds now (the caller's first block not counted). */
size_t sl_arena_heap_bytes(const sl_arena *a);
void sl_arena_free(sl_arena *a);

#endif
