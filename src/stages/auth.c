/* auth.c — stage: the client's key becomes a tenant.
 *
 * With `keys` configured, `Authorization: Bearer KEY` or `x-api-key: KEY` must
 * name one of them (sl_auth: constant time); otherwise 401 invalid_api_key,
 * which the SDKs raise as AuthenticationError. Without keys sluice is open and
 * every request belongs to tenant "default".
 *
 * Reads:  r->auth_key, conf->keys.
 * Writes: r->tenant, r->key_conf; answers 401. No context. */
#include "sluice/auth.h"
#include "sluice/stages.h"

static sl_step auth_request(sl_req *r, void *ctx)
{
    SL_UNUSED(ctx);
    r->tenant = "default";
    return sl_auth_check(r, SL_AUTH_CLIENT) ? SL_NEXT : sl_stage_answer(r);
}

const sl_stage sl_stage_auth = {
    .name = "auth",
    .on_request = auth_request,
};
