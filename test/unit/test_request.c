/* test_request.c — request validation and cache keys. */
#include "sluice/cache_key.h"
#include "t.h"

static sl_arena A;

static int check(sl_api api, const char *body, const char **param)
{
    sl_llm_req r;
    sl_http_error e = {0};
    int rc = sl_llm_req_parse(&A, api, body, strlen(body), NULL, &r, &e);
    *param = e.param;
    return rc ? e.status : 0;
}

T_TEST(valid_requests)
{
    const char *p;
    T_EQ_INT(check(SL_API_CHAT,
                   "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &p),
             0);
    T_EQ_INT(check(SL_API_CHAT,
                   "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_"
                   "calls\":[]}],\"stream\":true}",
                   &p),
             0);
    T_EQ_INT(check(SL_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}", &p), 0);
    T_EQ_INT(check(SL_API_EMBEDDINGS, "{\"model\":\"m\",\"input\":\"x\"}", &p), 0);
    T_EQ_INT(check(SL_API_MESSAGES,
                   "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
                   "\"x\"}]}",
                   &p),
             0);
}

T_TEST(invalid_requests_name_their_param)
{
    static const struct {
        const char *body, *param;
    } cases[] = {
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model"},
        {"{\"model\":\"\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model"},
        {"{\"model\":\"m\"}", "messages"},
        {"{\"model\":\"m\",\"messages\":{}}", "messages"},
        {"{\"model\":\"m\",\"messages\":[]}", "messages"},
        {"{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", "messages[0].role"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}",
         "messages[0].content"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":"
         "\"yes\"}",
         "stream"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":"
         "\"10\"}",
         "max_tokens"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":1000}", "n"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":9}",
         "temperature"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[1]}",
         "stop"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = NULL;
        T_EQ_INT(check(SL_API_CHAT, cases[i].body, &p), 400);
        T_EQ_STR(p, cases[i].param);
    }
    const char *p;
    T_EQ_INT(check(SL_API_CHAT, "[1]", &p), 400);
    T_EQ_INT(check(SL_API_CHAT,
                   "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]} x", &p),
             400);
}

static sl_cache_key key_of(const char *body, const char *scope)
{
    sl_llm_req r;
    sl_http_error e;
    sl_cache_key k = {0, 0};
    if (sl_llm_req_parse(&A, SL_API_CHAT, body, strlen(body), NULL, &r, &e) == 0)
        sl_cache_key_compute(&r, sl_str_c(scope), &k);
    return k;
}

static bool same(sl_cache_key a, sl_cache_key b)
{
    return a.hi == b.hi && a.lo == b.lo;
}

T_TEST(cache_key_invariance_and_sensitivity)
{
    const char *base = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                       "\"temperature\":0.5}";
    sl_cache_key k = key_of(base, "-");
    T_CHECK(
        same(k, key_of(" { \"temperature\" : 0.5, "
                       "\"messages\":[{\"content\":\"x\",\"role\":\"user\"}], \"model\":\"m\" } ",
                       "-")));
    T_CHECK(same(
        k,
        key_of(
            "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":"
            "0.5,\"stream\":true,\"user\":\"u\",\"stream_options\":{\"include_usage\":true}}",
            "-")));
    T_CHECK(!same(k, key_of(base, "tenant-b")));
    static const char *const changed[] = {
        "{\"model\":\"m2\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":0."
        "5}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"y\"}],\"temperature\":0."
        "5}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":0."
        "6}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":0.5,"
        "\"max_tokens\":5}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":0.5,"
        "\"seed\":1}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":0.5,"
        "\"tools\":[]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":0.5,"
        "\"stop\":\"s\"}",
    };
    for (size_t i = 0; i < sizeof changed / sizeof changed[0]; i++)
        T_CHECK(!same(k, key_of(changed[i], "-")));
    T_CHECK(!same(key_of("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                         "\"seed\":9007199254740993}",
                         "-"),
                  key_of("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                         "\"seed\":9007199254740992}",
                         "-")));
    sl_arena_free(&A);
}

/* Issue 17 item 1: the JSON bounds answer 400 naming the configuration key. */
T_TEST(json_bounds_name_their_key)
{
    const char *body = "{\"model\":\"m\",\"metadata\":{\"a\":1,\"b\":2,\"c\":3},"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    sl_llm_req r;
    sl_http_error e = {0};
    sl_json_limits lim = {.max_members = 3, .max_nodes = 100};
    T_EQ_INT(sl_llm_req_parse(&A, SL_API_CHAT, body, strlen(body), &lim, &r, &e), 0);
    lim.max_members = 2;
    T_CHECK(sl_llm_req_parse(&A, SL_API_CHAT, body, strlen(body), &lim, &r, &e) != 0);
    T_EQ_INT(e.status, 400);
    T_EQ_STR(e.code, "too_many_json_members");
    T_CHECK(strstr(e.message, "server.max_json_members") != NULL);
    lim = (sl_json_limits){.max_members = 100, .max_nodes = 5};
    T_CHECK(sl_llm_req_parse(&A, SL_API_CHAT, body, strlen(body), &lim, &r, &e) != 0);
    T_EQ_STR(e.code, "too_many_json_values");
    T_CHECK(strstr(e.message, "server.max_json_values") != NULL);
    sl_arena_free(&A);
}

T_TEST(responses_requests)
{
    const char *p;
    sl_llm_req r;
    sl_http_error e = {0};
    const char *ok = "{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":\"hello\"},"
                     "{\"type\":\"function_call_output\",\"call_id\":\"c\",\"output\":\"ok\"}],"
                     "\"instructions\":\"be\",\"max_output_tokens\":7,\"store\":false,"
                     "\"previous_response_id\":\"resp_1\"}";
    T_EQ_INT(sl_llm_req_parse(&A, SL_API_RESPONSES, ok, strlen(ok), NULL, &r, &e), SL_OK);
    T_EQ_INT(r.prompt_bytes, 5 + 2 + 2);
    T_EQ_INT(r.max_tokens, 7);
    T_CHECK(r.no_store && sl_str_eq_c(r.previous_response_id, "resp_1"));
    T_EQ_INT(check(SL_API_RESPONSES, "{\"model\":\"m\",\"input\":\"x\",\"stream\":true}", &p), 0);
    T_EQ_INT(check(SL_API_RESPONSES, "{\"model\":\"m\"}", &p), 400);
    T_EQ_STR(p, "input");
    T_EQ_INT(check(SL_API_RESPONSES, "{\"model\":\"m\",\"input\":[1]}", &p), 400);
    T_EQ_STR(p, "input");
    T_EQ_INT(check(SL_API_RESPONSES, "{\"model\":\"m\",\"input\":\"x\",\"store\":1}", &p), 400);
    T_EQ_STR(p, "store");
    T_EQ_INT(
        check(SL_API_RESPONSES, "{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":0}", &p),
        400);
    T_EQ_STR(p, "max_output_tokens");
    T_EQ_INT(check(SL_API_RESPONSES,
                   "{\"model\":\"m\",\"input\":\"x\",\"previous_response_id\":\"\"}", &p),
             400);
    T_EQ_STR(p, "previous_response_id");
}

T_MAIN("request", valid_requests, responses_requests, invalid_requests_name_their_param,
       cache_key_invariance_and_sensitivity, json_bounds_name_their_key)
