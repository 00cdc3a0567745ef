/* redis_keys.h — every Redis key family sluice writes, declared once.
 *
 * Owns no state: names only. Each family carries a hash tag ({...}) so that
 * every multi-key command and Lua script touching it stays in one Redis
 * Cluster slot (a script's keys in two slots fail with CROSSSLOT); keys that
 * should spread over the masters (cache entries) get a tag per entry.
 * test_redis_cluster checks each family's slots; docs/DEPLOY.md lists them.
 * A new family: add it here, with its tag, and to that test. */
#ifndef SLUICE_REDIS_KEYS_H
#define SLUICE_REDIS_KEYS_H

/* limits.c: one tag per tenant (LIMIT_SCRIPT and SETTLE_SCRIPT touch all three) */
#define SL_RK_TENANT_RPM   "sluice:{t:%s}:rpm"
#define SL_RK_TENANT_TPM   "sluice:{t:%s}:tpm"
#define SL_RK_TENANT_SPEND "sluice:{t:%s}:spend:%d:%ld" /* period kind, period number */

/* sla_store_redis.c: one tag for the service (the upsert and tick scripts
 * touch a ticket, the id set and both sorted sets; alerts are claimed there too) */
#define SL_RK_SLA_TICKET "sluice:{sla}:t:" /* + ticket id */
#define SL_RK_SLA_RISK   "sluice:{sla}:risk"
#define SL_RK_SLA_DUE    "sluice:{sla}:due"
#define SL_RK_SLA_IDS    "sluice:{sla}:ids"
#define SL_RK_SLA_DEAD   "sluice:{sla}:dead"
#define SL_RK_SLA_ALERT  "sluice:{sla}:alert:" /* + state ':' + kind '|' + id */

/* cache_key.c: one tag per request hash, so entries spread over every master
 * while an entry, its coalescing lock and the lock poll (MGET) share a slot */
#define SL_RK_CACHE "sluice:{c:%s}:%s" /* hex hash, what: SL_CACHE_KEY_VERSION or "lock" */

/* answers.c (sl_answers_redis_key): "sluice:{NS:HASH}:what", one tag per answer
 * (idempotency's claim script takes the answer "v" and its "lock");
 * resp_state.c's "sluice:resp:..." keys are only ever used one at a time. */

#endif
