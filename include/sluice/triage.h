/* triage.h — ticket triage on the LLM pipeline: classification and replies
 * grounded in a knowledge base.
 *
 * Owns: the loaded knowledge base (documents and their term statistics for
 * BM25), reloaded on SIGHUP. The LLM calls go through the same pipeline as
 * every client's (cache, coalescing, breakers, fallback, metering) via an
 * internal sink, under the caller's key. */
#ifndef SLUICE_TRIAGE_H
#define SLUICE_TRIAGE_H

#include "sluice/req.h"

typedef struct sl_kb sl_kb;

/* Loads every *.md file of dir. Never fails: a missing folder is an empty KB. */
sl_kb *sl_kb_load(const char *dir);
void sl_kb_free(sl_kb *kb);
size_t sl_kb_size(const sl_kb *kb);

typedef struct sl_kb_hit {
    const char *title, *path, *body;
    double score;
} sl_kb_hit;

/* The top k documents with a positive BM25 score for query; returns how many.
 * The hits point into kb: valid only until the next reload frees it. */
size_t sl_kb_search(const sl_kb *kb, sl_str query, size_t k, sl_kb_hit *out);

void sl_triage_setup(const sl_config *c);
void sl_triage_stop(void);
void sl_triage_classify(sl_req *r);
void sl_triage_respond(sl_req *r);

#endif
