/* test_json.c — the strict parser and the canonical form. */
#include "sluice/json.h"
#include "t.h"

static sl_arena A;

static int parse(const char *s, sl_json **out)
{
    sl_json_error e;
    return sl_json_parse(&A, s, strlen(s), NULL, out, &e);
}

T_TEST(parses_values)
{
    sl_json *v;
    T_EQ_INT(parse(" {\"a\":[1,2.5,-3e2],\"b\":\"x\\ny\",\"c\":true,\"d\":null} ", &v), 0);
    T_EQ_INT(v->type, SL_JSON_OBJECT);
    T_EQ_INT(v->n, 4);
    const sl_json *a = sl_json_get(v, "a");
    T_EQ_INT(a->n, 3);
    T_CHECK(a->child->next->num == 2.5);
    T_CHECK(sl_str_eq_c(a->child->next->next->raw, "-3e2"));
    T_CHECK(sl_str_eq_c(sl_json_get(v, "b")->str, "x\ny"));
    T_EQ_INT(sl_json_get(v, "c")->type, SL_JSON_TRUE);
    T_CHECK(sl_json_get(v, "zz") == NULL);
}

T_TEST(refuses_bad_input)
{
    static const char *const bad[] = {
        "",
        "{",
        "{\"a\":1,}",
        "[1,]",
        "01",
        "1.",
        "+1",
        "NaN",
        "{\"a\":1} x",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\xc0\xaf\"",
        "\"\xed\xa0\x80\"",
        "\"\xf8\x88\x80\x80\x80\"",
        "\"a\x01\"",
        "{\"a\":1,\"a\":2}",
        "\"\\x\"",
        "tru",
        "{1:2}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_json *v;
        if (parse(bad[i], &v) == 0)
            printf("  accepted: %s\n", bad[i]);
        T_CHECK(parse(bad[i], &v) != 0);
    }
}

T_TEST(unicode_escapes)
{
    sl_json *v;
    T_EQ_INT(parse("\"\\u00e9\\ud83d\\ude00\\u0000z\"", &v), 0);
    T_EQ_INT(v->str.len, 2 + 4 + 1 + 1);
    T_CHECK(memcmp(v->str.p, "\xc3\xa9\xf0\x9f\x98\x80\0z", 8) == 0);
}

T_TEST(depth_bound)
{
    char deep[300];
    memset(deep, '[', 200);
    deep[200] = '\0';
    sl_json *v;
    T_CHECK(parse(deep, &v) != 0);
    sl_json_limits lim = {.max_depth = 3};
    sl_json_error e;
    T_CHECK(sl_json_parse(&A, "[[[[1]]]]", 9, &lim, &v, &e) != 0);
    T_EQ_INT(sl_json_parse(&A, "[[[1]]]", 7, &lim, &v, &e), 0);
}

static bool skip_b(sl_str k)
{
    return sl_str_eq_c(k, "b");
}

T_TEST(canonical_form)
{
    sl_json *x, *y;
    T_EQ_INT(parse("{\"b\":1, \"a\" : {\"z\":[1, 2], \"y\":\"\\u0041\"}}", &x), 0);
    T_EQ_INT(parse("{\"a\":{\"y\":\"A\",\"z\":[1,2]},\"b\":1}", &y), 0);
    sl_buf b1, b2;
    sl_buf_init(&b1, 0);
    sl_buf_init(&b2, 0);
    sl_json_canonical(x, &b1, NULL);
    sl_json_canonical(y, &b2, NULL);
    T_EQ_STR(b1.p, "{\"a\":{\"y\":\"A\",\"z\":[1,2]},\"b\":1}");
    T_EQ_STR(b1.p, b2.p);
    sl_buf_reset(&b1);
    sl_json_canonical(x, &b1, skip_b);
    T_EQ_STR(b1.p, "{\"a\":{\"y\":\"A\",\"z\":[1,2]}}");
    sl_buf_free(&b1);
    sl_buf_free(&b2);
    sl_arena_free(&A);
}

/* {"k0":0,"k1":1,...} with n members; dup >= 0 repeats member dup's name last. */
static char *many_keys(size_t n, long dup, size_t *len)
{
    sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_append_c(&b, "{");
    for (size_t i = 0; i < n; i++)
        sl_buf_printf(&b, "%s\"k%zu\":%zu", i ? "," : "", i, i);
    if (dup >= 0)
        sl_buf_printf(&b, ",\"k%ld\":0", dup);
    sl_buf_append_c(&b, "}");
    *len = b.len;
    return b.p;
}

/* Issue 17 item 1: a duplicate check that scanned every earlier member made
 * 100k keys cost 39 s (quadratic). 200k keys must parse in well under a
 * second even under the sanitizers. */
T_TEST(many_keys_linear)
{
    size_t len;
    char *s = many_keys(200000, -1, &len);
    sl_json *v;
    sl_json_error e;
    uint64_t t0 = sl_now_us();
    T_EQ_INT(sl_json_parse(&A, s, len, NULL, &v, &e), 0);
    uint64_t us = sl_now_us() - t0;
    T_EQ_INT(v->n, 200000);
    printf("  200k keys parsed in %llu us\n", (unsigned long long)us);
    T_CHECK(us < 1500000);
    free(s);
    sl_arena_free(&A);
}

T_TEST(duplicates_found_in_large_objects)
{
    static const long dups[] = {0, 15, 16, 17, 999, 4999};
    for (size_t i = 0; i < SL_ARRAY_LEN(dups); i++) {
        size_t len;
        char *s = many_keys(5000, dups[i], &len);
        sl_json *v;
        sl_json_error e;
        T_CHECK(sl_json_parse(&A, s, len, NULL, &v, &e) != 0);
        T_EQ_STR(e.reason, "duplicate key");
        T_EQ_INT(e.limit, SL_JSON_LIMIT_NONE);
        free(s);
        sl_arena_free(&A);
    }
    /* every size around the switch to the hash set, no false positives */
    for (size_t n = 1; n < 70; n++) {
        size_t len;
        char *s = many_keys(n, -1, &len);
        sl_json *v;
        T_EQ_INT(parse(s, &v), 0);
        T_EQ_INT(v->n, n);
        free(s);
    }
    sl_arena_free(&A);
}

T_TEST(member_and_value_bounds)
{
    size_t len;
    char *s = many_keys(100, -1, &len);
    sl_json *v;
    sl_json_error e;
    sl_json_limits lim = {.max_members = 100};
    T_EQ_INT(sl_json_parse(&A, s, len, &lim, &v, &e), 0);
    lim.max_members = 99;
    T_CHECK(sl_json_parse(&A, s, len, &lim, &v, &e) != 0);
    T_EQ_INT(e.limit, SL_JSON_LIMIT_MEMBERS);
    lim = (sl_json_limits){.max_nodes = 101}; /* the object and its 100 members */
    T_EQ_INT(sl_json_parse(&A, s, len, &lim, &v, &e), 0);
    lim.max_nodes = 100;
    T_CHECK(sl_json_parse(&A, s, len, &lim, &v, &e) != 0);
    T_EQ_INT(e.limit, SL_JSON_LIMIT_VALUES);
    T_CHECK(sl_json_parse(&A, "[[[[1]]]]", 9, &(sl_json_limits){.max_depth = 2}, &v, &e) != 0);
    T_EQ_INT(e.limit, SL_JSON_LIMIT_DEPTH);
    free(s);
    sl_arena_free(&A);
}

/* The eight-at-a-time scan inside strings stops at every byte that matters,
 * wherever it falls in a word: a quote ends the string, an escape is
 * decoded, a control byte or bad UTF-8 is refused, good UTF-8 passes. */
T_TEST(strings_checked_at_every_offset)
{
    static const struct {
        const char *piece;
        bool ok;
        const char *decoded;
    } cases[] = {
        {"\\n", true, "\n"},    {"\\\"", true, "\""},
        {"\x01", false, NULL},  {"\xc3\xa9", true, "\xc3\xa9"},
        {"\xc3", false, NULL},  {"\xff", false, NULL},
        {"\x7f", true, "\x7f"},
    };
    for (size_t len = 0; len < 20; len++) {
        for (size_t at = 0; at <= len; at++) {
            for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
                char text[64], want[64];
                size_t t = 0, w = 0;
                text[t++] = '"';
                for (size_t i = 0; i < len; i++) {
                    if (i == at) {
                        size_t pl = strlen(cases[k].piece);
                        memcpy(text + t, cases[k].piece, pl);
                        t += pl;
                        if (cases[k].decoded) {
                            memcpy(want + w, cases[k].decoded, strlen(cases[k].decoded));
                            w += strlen(cases[k].decoded);
                        }
                    }
                    text[t++] = 'a';
                    want[w++] = 'a';
                }
                if (at == len) { /* the piece last */
                    size_t pl = strlen(cases[k].piece);
                    memcpy(text + t, cases[k].piece, pl);
                    t += pl;
                    if (cases[k].decoded) {
                        memcpy(want + w, cases[k].decoded, strlen(cases[k].decoded));
                        w += strlen(cases[k].decoded);
                    }
                }
                text[t++] = '"';
                text[t] = '\0';
                want[w] = '\0';
                sl_json *v = NULL;
                int rc = parse(text, &v);
                T_CHECK((rc == 0) == cases[k].ok);
                if (rc == 0 && cases[k].ok)
                    T_CHECK(v->type == SL_JSON_STRING && v->str.len == w &&
                            memcmp(v->str.p, want, w) == 0);
            }
        }
    }
}

/* Integers take a short path past strtod: the same double for every one. */
T_TEST(integers_parse_as_strtod_would)
{
    const char *nums[] = {"0",
                          "-0",
                          "7",
                          "-7",
                          "42",
                          "999999999999999",
                          "1000000000000000",
                          "9007199254740993",
                          "-123456789012345",
                          "12345678901234567890",
                          "1.5",
                          "2e3",
                          "0.1"};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        sl_json *v = NULL;
        T_EQ_INT(parse(nums[i], &v), 0);
        double want = strtod(nums[i], NULL);
        T_CHECK(v && v->type == SL_JSON_NUMBER && memcmp(&v->num, &want, sizeof want) == 0);
    }
    sl_json *v = NULL;
    T_CHECK(parse("01", &v) != 0);
    T_CHECK(parse("-", &v) != 0);
}

T_MAIN("json", parses_values, refuses_bad_input, unicode_escapes, depth_bound, canonical_form,
       many_keys_linear, duplicates_found_in_large_objects, member_and_value_bounds,
       strings_checked_at_every_offset, integers_parse_as_strtod_would)
