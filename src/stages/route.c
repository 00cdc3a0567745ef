/* route.c — stage: picks the first provider whose `models` serve the request's model.
 *
 * Reads:  r->llm.model, conf->providers.
 * Writes: r->provider_idx (where the proxy starts looking); answers 404. No context. */
#include "sluice/stages.h"

static sl_step route_request(sl_req *r, void *ctx)
{
    SL_UNUSED(ctx);
    int idx = sl_config_provider_for(r->conf, r->llm.model, 0);
    if (idx < 0) {
        const char *msg =
            sl_arena_printf(&r->arena, "The model `%.*s` does not exist or no provider serves it",
                            (int)SL_MIN(r->llm.model.len, 200), r->llm.model.p);
        sl_req_error(r, 404, "invalid_request_error", "model_not_found", "model", msg);
        return sl_stage_answer(r);
    }
    r->provider_idx = idx;
    return SL_NEXT;
}

const sl_stage sl_stage_route = {
    .name = "route",
    .on_request = route_request,
};
