/* dialects.c — which dialect a provider kind and a client API speak; see dialects.h. */
#include "sluice/dialects.h"

const sl_dialect *sl_dialect_of_kind(sl_provider_kind kind)
{
    return kind == SL_PROVIDER_ANTHROPIC ? &sl_dialect_anthropic : &sl_dialect_openai;
}

const sl_dialect *sl_dialect_of_api(sl_api api)
{
    return api == SL_API_MESSAGES || api == SL_API_COUNT_TOKENS ? &sl_dialect_anthropic
           : api == SL_API_RESPONSES                            ? &sl_dialect_responses
                                                                : &sl_dialect_openai;
}

const sl_dialect *sl_dialect_for(const sl_provider_conf *p, sl_api api)
{
    if (api == SL_API_RESPONSES && p->kind == SL_PROVIDER_OPENAI &&
        p->api == SL_PROVIDER_API_RESPONSES)
        return &sl_dialect_responses;
    return sl_dialect_of_kind(p->kind);
}
