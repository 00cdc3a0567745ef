/* auth.c — sl_auth: constant-time credential checks; see auth.h. */
#include "sluice/auth.h"

bool sl_auth_equal(sl_str presented, const char *expected)
{
    if (!presented.len || !expected || !expected[0])
        return false;
    size_t el = strlen(expected);
    unsigned diff = (unsigned)(el ^ presented.len);
    for (size_t i = 0; i < presented.len; i++)
        diff |= (unsigned char)presented.p[i] ^ (unsigned char)expected[i < el ? i : 0];
    return diff == 0;
}

const sl_key_conf *sl_auth_client_key(const sl_config *c, sl_str presented)
{
    const sl_key_conf *found = NULL;
    for (size_t i = 0; i < c->n_keys; i++) { /* no early exit */
        if (sl_auth_equal(presented, c->keys[i].key) && !found)
            found = &c->keys[i];
    }
    return found;
}

static bool refuse(sl_req *r, const char *code, const char *msg)
{
    sl_req_error(r, 401, "invalid_request_error", code, NULL, msg);
    return false;
}

static bool check_admin(sl_req *r, sl_str key, bool client_ok)
{
    const sl_config *c = r->conf;
    if (client_ok) {
        const sl_key_conf *k = sl_auth_client_key(c, key);
        if (k) {
            r->tenant = k->tenant;
            r->key_conf = k;
            return true;
        }
    }
    if (sl_auth_equal(key, c->admin.key)) {
        r->tenant = "admin";
        return true;
    }
    if (client_ok)
        return refuse(r, "invalid_api_key",
                      key.len ? "Incorrect API key provided." : "You didn't provide an API key.");
    return refuse(r, "invalid_admin_key",
                  c->admin.key ? "this page needs the admin key (admin.key)"
                               : "set admin.key to open the dashboard when keys are configured");
}

bool sl_auth_check(sl_req *r, sl_auth_level level)
{
    const sl_config *c = r->conf;
    sl_str key = sl_str_c(r->auth_key);
    switch (level) {
    case SL_AUTH_OPEN: return true;
    case SL_AUTH_CLIENT: {
        if (c->n_keys == 0)
            return true;
        const sl_key_conf *k = sl_auth_client_key(c, key);
        if (!k)
            return refuse(r, "invalid_api_key",
                          key.len ? "Incorrect API key provided."
                                  : "You didn't provide an API key. Send it as "
                                    "`Authorization: Bearer KEY`.");
        r->tenant = k->tenant;
        r->key_conf = k;
        return true;
    }
    case SL_AUTH_CLIENT_OR_ADMIN: return c->n_keys == 0 || check_admin(r, key, true);
    case SL_AUTH_ADMIN: return (c->n_keys == 0 && !c->admin.key) || check_admin(r, key, false);
    }
    return false;
}
