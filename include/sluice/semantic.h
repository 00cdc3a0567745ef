/* semantic.h — the pure parts of the semantic cache: which request may use
 * it, its question and partition, the lexical guard, and the stored form of
 * a vector entry. No I/O (the index is store/semstore.c, the stage
 * stages/semantic.c).
 *
 * Owns nothing: results point into the request's tree or the caller's arena. */
#ifndef SLUICE_SEMANTIC_H
#define SLUICE_SEMANTIC_H

#include "sluice/cache_key.h"

#define SL_SEM_MAX_TEXT 4096 /* longer questions skip the semantic level */
#define SL_SEM_MAX_DIM  8192
#define SL_SEM_MAX_ID   63

/* The last user turn of a chat / messages / responses request (`messages`,
 * or `input` as a string or a list of turns), as text: a string content,
 * or text parts joined by newlines (from the arena). *turn is its index in
 * the list (-1: `input` is the string itself). SL_EINVAL when the request
 * cannot use the semantic level: no user turn, a turn with other parts
 * (images, tool results), tool results anywhere, n > 1, or a question
 * longer than SL_SEM_MAX_TEXT. */
int sl_sem_question(sl_arena *a, const sl_llm_req *r, sl_str *text, int *turn);

/* The partition a candidate must share with the question, exactly: the scope
 * (tenant, "-" when shared, plus the end user under cache.scope: user), the
 * embedding model, the API and a hash of the whole request minus the last
 * user turn (model, system prompt, earlier turns, parameters) and minus
 * stream / stream_options / user, like the exact key. */
int sl_sem_partition(const sl_llm_req *r, sl_str scope, sl_str embedding_model, int turn,
                     sl_cache_key *out);

/* The lexical guard: NULL when a and b may share an answer, else why not
 * ("negation", "number", "quoted term", "capitalised term"). Refused when
 * they differ in the count of negation words (negations: the configured
 * list, or the built-in one when n is 0; any word ending in n't counts too),
 * in the numbers they name (digits or number words), or when a quoted term
 * or a capitalised term (not a sentence's first word; acronyms anywhere)
 * of one does not appear in the other. */
const char *sl_sem_guard(sl_str a, sl_str b, char *const *negations, size_t n);

/* A vector entry: what Redis keeps beside the exact entry (binary). */
typedef struct sl_sem_entry {
    sl_cache_key key;       /* the exact entry holding the answer */
    sl_cache_key partition; /* sl_sem_partition */
    int64_t stored_at_ms, expires_at_ms;
    sl_str text;       /* the question, for the guard */
    sl_str request_id; /* the request whose answer it is */
    uint32_t dim;
    const float *vec; /* dim floats, unit length */
} sl_sem_entry;

size_t sl_sem_entry_size(const sl_sem_entry *e);
/* Writes sl_sem_entry_size(e) bytes. */
void sl_sem_entry_encode(const sl_sem_entry *e, char *out);
/* Checks and reads an entry (bytes from Redis are untrusted): exact length,
 * bounds, finite components of non-zero length; the vector is normalised
 * into vec_out (room for SL_SEM_MAX_DIM floats). text and request_id point
 * into p. */
int sl_sem_entry_decode(const char *p, size_t n, sl_sem_entry *e, float *vec_out);

/* Normalises v in place; SL_EINVAL for a zero or non-finite vector. */
int sl_sem_normalise(float *v, uint32_t dim);

#endif
