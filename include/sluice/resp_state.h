/* resp_state.h — the Responses API's conversation state: one record per stored response.
 *
 * A record (responses.h, sl_responses_record) is kept per tenant and response
 * id for responses.store_ttl_s: in Redis when one is configured (key
 * "sluice:resp:<tenant length>:<tenant>:<id>", SET PX), in process otherwise
 * and whenever Redis cannot take a command (a bounded table, oldest dropped
 * first past 256 MiB). A lookup asks Redis, then the process's table. Another
 * tenant's id is simply not found.
 *
 * Ordering: the proxy holds the end of an answer (its body, or the final
 * event) until the put is acknowledged, so a follow-up sent the instant the
 * client has it finds the record, on this instance or any other.
 *
 * Owns: the in-process table and a small record per Redis command in flight. */
#ifndef SLUICE_RESP_STATE_H
#define SLUICE_RESP_STATE_H

#include "sluice/util.h"

struct sl_redis;

/* status: SL_OK (rec, len: the record; valid during the call only),
 * SL_ENOTFOUND, or SL_EIO (the store could not be asked). */
typedef void (*sl_resp_state_cb)(void *ud, int status, const char *rec, size_t len);

void sl_resp_state_setup(struct sl_redis *redis); /* NULL: in process only */
/* Frees the in-process table (at exit). */
void sl_resp_state_shutdown(void);

/* Stores rec. Returns true when Redis took the command: cb then runs once,
 * later, with SL_OK (stored) or SL_EIO; false when it was stored in process
 * at once (cb never runs). cb may be NULL. */
bool sl_resp_state_put(const char *tenant, sl_str id, sl_str rec, long ttl_s, sl_resp_state_cb cb,
                       void *ud);
/* cb runs exactly once: before the call returns (in process) or later (Redis). */
void sl_resp_state_get(const char *tenant, sl_str id, sl_resp_state_cb cb, void *ud);
/* Deletes the record; cb gets SL_OK (it existed) or SL_ENOTFOUND, once. */
void sl_resp_state_del(const char *tenant, sl_str id, sl_resp_state_cb cb, void *ud);

#endif
