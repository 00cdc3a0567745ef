/* auth.h — sl_auth: the one place a presented credential is checked.
 *
 * Owns nothing. Every key comparison of sluice (client keys on the LLM
 * routes, the services, the admin guard of /stats and the SLA dashboard)
 * goes through here, in constant time: the time taken does not tell how much
 * of a guess was right, nor which configured key it came close to. An empty
 * credential never matches anything. */
#ifndef SLUICE_AUTH_H
#define SLUICE_AUTH_H

#include "sluice/req.h"

/* What a route asks of its caller; the route table names one per route. */
typedef enum {
    SL_AUTH_OPEN = 0,        /* anyone (health, metrics, the page itself) */
    SL_AUTH_CLIENT,          /* a client key, when `keys` are configured */
    SL_AUTH_CLIENT_OR_ADMIN, /* a client key or the admin key (the SLA dashboard) */
    SL_AUTH_ADMIN,           /* the admin key, when `keys` or `admin.key` are set */
} sl_auth_level;

/* Constant-time equality of a presented secret with the expected one (the
 * time depends only on the presented length). Empty or NULL never matches. */
bool sl_auth_equal(sl_str presented, const char *expected);
/* The configured client key presented is, or NULL; every key is compared. */
const sl_key_conf *sl_auth_client_key(const sl_config *c, sl_str presented);
/* Checks r->auth_key for level. On success sets r->tenant (and r->key_conf
 * for a client key) and returns true; else records a 401 on r (OpenAI error
 * `invalid_api_key` or `invalid_admin_key`) and returns false: the caller
 * answers it. */
bool sl_auth_check(sl_req *r, sl_auth_level level);

#endif
