/* parse.c — stage: the client's body becomes a validated sl_llm_req.
 * Bad input ends here with a 400 naming the parameter; nothing goes upstream.
 * Bytes the cache has answered before skip the parse (sl_cache_fast).
 *
 * Reads:  r->body, r->llm.api.
 * Writes: r->llm (the parsed view every later stage reads); answers 400. No context. */
#include "sluice/stages.h"

static sl_step parse_request(sl_req *r, void *ctx)
{
    SL_UNUSED(ctx);
    if (r->pass)
        return SL_NEXT; /* a pass-through body is the provider's to read (and streams) */
    if (sl_cache_fast(r))
        return SL_NEXT; /* bytes seen before: what the parse would say is known */
    sl_http_error e = {0};
    const sl_json_limits lim = {
        .max_members = (size_t)r->conf->server.max_json_members,
        .max_nodes = (size_t)r->conf->server.max_json_values,
    };
    if (sl_llm_req_parse(&r->arena, r->llm.api, r->body.p, r->body.len, &lim, &r->llm, &e) !=
        SL_OK) {
        sl_req_error_from(r, &e);
        return sl_stage_answer(r);
    }
    return SL_NEXT;
}

const sl_stage sl_stage_parse = {
    .name = "parse",
    .on_request = parse_request,
};
