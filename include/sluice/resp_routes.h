/* resp_routes.h — GET|DELETE /v1/responses/{id} and GET /v1/responses/{id}/input_items.
 *
 * Served from sluice's state store (resp_state.h) for every response sluice
 * handled with `store` not false, native and translated alike: the record
 * names the provider that made the response (as does a translated id), and
 * sluice answers for it rather than proxying, so a response stays readable
 * while its provider is down. Scoped to the caller's tenant: another tenant's
 * id is a 404. DELETE removes sluice's record only.
 *
 * Owns nothing beyond the request it answers. */
#ifndef SLUICE_RESP_ROUTES_H
#define SLUICE_RESP_ROUTES_H

#include "sluice/req.h"

void sl_responses_route(sl_req *r);

#endif
