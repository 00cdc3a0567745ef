/* auth.c — stage: the client's key becomes a tenant.
 *
 * With `keys` configured, `Authorization: Bearer KEY` or `x-api-key: KEY` must
 * name one of them (compared in constant time); otherwise 401
 * invalid_api_key, which the SDKs raise as AuthenticationError. Without keys
 * sluice is open and every request belongs to tenant "default".
 *
 * Reads:  r->auth_key, conf->keys.
 * Writes: r->tenant, r->key_conf; answers 401. No context. */
#include "sluice/stages.h"

static sl_step auth_request(sl_req *r, void *ctx)
{
    SL_UNUSED(ctx);
    const sl_config *c = r->conf;
    if (c->n_keys == 0) {
        r->tenant = "default";
        return SL_NEXT;
    }
    const sl_key_conf *k = r->auth_key ? sl_config_key(c, sl_str_c(r->auth_key)) : NULL;
    if (!k) {
        sl_req_error(
            r, 401, "invalid_request_error", "invalid_api_key", NULL,
            r->auth_key ? "Incorrect API key provided."
                        : "You didn't provide an API key. Send it as `Authorization: Bearer KEY`.");
        return sl_stage_answer(r);
    }
    r->tenant = k->tenant;
    r->key_conf = k;
    return SL_NEXT;
}

const sl_stage sl_stage_auth = {
    .name = "auth",
    .on_request = auth_request,
};
