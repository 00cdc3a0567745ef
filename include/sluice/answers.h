/* answers.h — stored answers: what an Idempotency-Key or a resumable stream
 * leaves behind once its request has finished.
 *
 * An answer is one blob: the request's fingerprint, the tenant it belongs to,
 * status, whether it is an SSE stream (then how many events), content type
 * and the body bytes as the client got them (SSE: the raw event frames,
 * without their id: lines, which the sender numbers). The store keeps blobs
 * in process (its own bounded LRU with per-entry TTLs, the L1's machinery) and,
 * when Redis is configured, in Redis too (SET ... PX) so another instance can
 * answer from them.
 *
 * Owns: its in-process entries. Redis is borrowed (the pipeline's env). */
#ifndef SLUICE_ANSWERS_H
#define SLUICE_ANSWERS_H

#include "sluice/buf.h"
#include "sluice/cache_key.h"
#include "sluice/l1.h"

struct sl_redis;

typedef struct sl_answer {
    sl_cache_key fp; /* what the request was (idempotency: same key, other body -> 422) */
    sl_str tenant;
    int status;
    bool sse;
    size_t n_events; /* SSE: event frames in body */
    sl_str content_type;
    sl_str body;
} sl_answer;

typedef struct sl_answers sl_answers;

sl_answers *sl_answers_new(size_t max_bytes);
void sl_answers_free(sl_answers *s);

/* The blob form. Decoded slices point into the blob. */
int sl_answer_encode(const sl_answer *a, sl_buf *out);
int sl_answer_decode(const char *blob, size_t len, sl_answer *out);

/* Keeps blob under key for ttl_ms, in process and (redis non-NULL) in Redis
 * under redis_key. Best effort: a blob too big for the in-process bound is
 * kept in Redis only. */
void sl_answers_put(sl_answers *s, struct sl_redis *redis, const sl_cache_key *key,
                    const char *redis_key, const char *blob, size_t len, uint64_t ttl_ms);
/* The in-process copy (a reference: sl_l1_entry_unref), or NULL. */
sl_l1_entry *sl_answers_get(sl_answers *s, const sl_cache_key *key);
/* Copies a blob that came from Redis into the in-process store. */
void sl_answers_keep(sl_answers *s, const sl_cache_key *key, const char *blob, size_t len,
                     uint64_t ttl_ms);

/* The 128-bit identity of a name in a namespace ("i": idempotency keys, with
 * the tenant; "s": streams, by request id). */
void sl_answers_key(const char *ns, const char *tenant, const char *name, sl_cache_key *out);
/* Redis key names sluice:{ns:HEX}:what, sharing one hash tag per name. */
void sl_answers_redis_key(const char *ns, const sl_cache_key *k, const char *what, char out[96]);

#endif
