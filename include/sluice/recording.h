/* recording.h — the live recording of one request's answer, and its listeners.
 *
 * A request whose answer may be wanted again (every SSE stream: its events
 * are numbered and may be resumed; a request with an Idempotency-Key: a
 * duplicate gets the same answer) gets a recording: a sink wrapped around
 * its own that
 *   - numbers every SSE event it passes on with an `id: <request id>-<n>`
 *     line (n from 1), whatever produced it (upstream, cache replay, a flight
 *     it follows, an error event);
 *   - keeps the answer (plain body, or the event frames without their ids),
 *     bounded by server.max_response_bytes / streams.max_resumable_bytes;
 *   - feeds its listeners: duplicates of an idempotent request (they get the
 *     whole answer, then live events, through their own recording) and
 *     resumed streams (they get the events after an id, with the recording's
 *     own ids);
 *   - at the end stores the answer (answers.h) for streams.resume_s (streams)
 *     and idempotency.ttl_s (with a key), unless it is not worth keeping: an
 *     answer that failed before any byte reached the client (5xx, 429, 499).
 * The recording keeps a dropped client's call going (abort_guard) while it
 * can still be resumed or replayed; past max_resumable_bytes without a client
 * it cancels the call.
 *
 * Ownership: recording.c owns the recordings (heap), its answer store (made
 * in sl_rec_init) and the tables by request id and by idempotency key. A
 * recording lives from sl_rec_start to its sink's end; its producer's
 * r->rec points to it meanwhile. Listeners live in their request's arena and
 * hold a reference on their request. */
#ifndef SLUICE_RECORDING_H
#define SLUICE_RECORDING_H

#include "sluice/answers.h"
#include "sluice/pipeline.h"

struct sl_redis;

typedef struct sl_rec sl_rec;

int sl_rec_init(const sl_env *env);
void sl_rec_fini(void);
sl_answers *sl_rec_store(void);

/* The request's recording, made (and its sink installed) on first call.
 * NULL when out of memory. */
sl_rec *sl_rec_start(sl_req *r);
/* Makes r's recording the flight of an idempotency key (and stores its
 * answer under it): fp is what the request was. */
void sl_rec_set_idem(sl_rec *rc, const sl_cache_key *idem, const sl_cache_key *fp);
/* The flight holds the cross-instance lock lock_key with token: renewed
 * every lease/3 while it runs, released (compare-and-delete) after its answer
 * is stored. */
void sl_rec_set_lock(sl_rec *rc, struct sl_redis *redis, const char *lock_key, const char *token);
/* The answer is a stored one being replayed: do not store it again. */
void sl_rec_replayed(sl_rec *rc);
/* The live recording leading an idempotency key, or NULL. */
sl_rec *sl_rec_find_idem(const sl_cache_key *idem);
/* The live recording of a tenant's request id (streams only), or NULL. */
sl_rec *sl_rec_find_stream(const char *tenant, const char *rid);
const sl_cache_key *sl_rec_fp(const sl_rec *rc);
const char *sl_rec_tenant(const sl_rec *rc);
bool sl_rec_is_sse(const sl_rec *rc);

/* What a stream's recording passed on so far, exactly as its producer
 * wrote it: the kept event frames (without their ids), then a partial event
 * not yet complete. A coalescing flight replays these to a late joiner
 * instead of keeping a second copy. False when the recording did not keep
 * all of it (past streams.max_resumable_bytes) or is not of a stream. */
bool sl_rec_sofar(const sl_rec *rc, sl_str *frames, sl_str *partial);

/* Called instead of an answer when the recording ended with nothing worth
 * sharing (a failure before any byte reached its client): the duplicate runs
 * on its own. The listener's reference on r is dropped after it returns. */
typedef void (*sl_rec_unserved)(sl_req *r);

/* r listens to rc: a duplicate (after = 0, origin_ids false: everything, its
 * own recording numbers it) or a resumed stream (the events after `after`,
 * numbered with rc's ids). r is answered when rc ends; false when rc cannot
 * serve it (its answer was too large to keep). */
bool sl_rec_listen(sl_rec *rc, sl_req *r, size_t after, bool origin_ids, sl_rec_unserved unserved);
/* r's client left while it listened: detach it and answer it (499). False
 * when r was not listening. */
bool sl_rec_unlisten(sl_req *r);

/* Sends a stored stream's events after `after` to r, numbered `rid-n`. */
void sl_rec_send_frames(sl_req *r, sl_str frames, size_t after, const char *rid);

/* The Last-Event-ID / resume id "RID-N": RID into rid (at least 64 bytes), N. */
bool sl_rec_parse_id(const char *id, char *rid, size_t *seq);

#endif
