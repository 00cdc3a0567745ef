/* test_passthrough.c — which of a provider's answer headers a pass-through
 * relays (sl_passthrough_relayable), and which provider it goes to. */
#include "sluice/passthrough.h"
#include "t.h"

static bool relayable(const char *name, const char *connection)
{
    return sl_passthrough_relayable(sl_str_c(name), sl_str_c(connection ? connection : ""));
}

T_TEST(hop_by_hop_headers_stay)
{
    static const char *const hop[] = {"Connection",
                                      "keep-alive",
                                      "Proxy-Connection",
                                      "Proxy-Authenticate",
                                      "Proxy-Authorization",
                                      "TE",
                                      "Trailer",
                                      "Transfer-Encoding",
                                      "Upgrade"};
    for (size_t i = 0; i < SL_ARRAY_LEN(hop); i++)
        T_CHECK(!relayable(hop[i], NULL));
    /* the ones sluice writes itself, and its own namespace */
    T_CHECK(!relayable("Content-Length", NULL) && !relayable("content-type", NULL));
    T_CHECK(!relayable("Date", NULL) && !relayable("X-Request-Id", NULL));
    T_CHECK(!relayable("x-sluice-cache", NULL) && !relayable("X-Sluice-Cost-Usd", NULL));
}

T_TEST(end_to_end_headers_pass)
{
    T_CHECK(relayable("openai-processing-ms", NULL));
    T_CHECK(relayable("x-ratelimit-remaining-requests", NULL));
    T_CHECK(relayable("Content-Disposition", NULL) && relayable("Set-Cookie", NULL));
    T_CHECK(relayable("TEX", NULL) && relayable("x-sluice", NULL)); /* prefixes are not names */
}

T_TEST(connection_nominates_more)
{
    T_CHECK(!relayable("X-Hop", "X-Hop"));
    T_CHECK(!relayable("x-hop", "close, X-Hop ,other"));
    T_CHECK(!relayable("other", "close, X-Hop ,other"));
    T_CHECK(relayable("X-Ho", "X-Hop") && relayable("X-Hopper", "X-Hop"));
    T_CHECK(relayable("X-Kept", "close"));
}

T_TEST(first_openai_provider_with_passthrough)
{
    static char err[256];
    static const char yaml[] =
        "providers:\n"
        "  - { name: c, kind: anthropic, base_url: http://a, passthrough: true }\n"
        "  - { name: o1, kind: openai, base_url: http://b/v1, passthrough: false }\n"
        "  - { name: o2, kind: openai, base_url: http://c/v1, passthrough: true }\n";
    sl_config *c = sl_config_load_string("t", yaml, sizeof yaml - 1, err, sizeof err);
    T_CHECK(c != NULL);
    if (!c)
        return;
    T_EQ_INT(sl_passthrough_provider(c), 2); /* an anthropic-kind one never takes them */
    c->providers[2].passthrough = false;
    T_EQ_INT(sl_passthrough_provider(c), -1);
    sl_config_unref(c);
}

T_MAIN("passthrough", hop_by_hop_headers_stay, end_to_end_headers_pass, connection_nominates_more,
       first_openai_provider_with_passthrough)
