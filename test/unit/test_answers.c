/* test_answers.c — the stored-answer blob (answers.c) and event ids (recording.c). */
#include "sluice/answers.h"
#include "sluice/recording.h"
#include "t.h"

T_TEST(blob_round_trip)
{
    sl_answer a = {.fp = {1, 0xfedcba9876543210ull},
                   .tenant = SL_STR("team-a"),
                   .status = 200,
                   .sse = true,
                   .n_events = 2,
                   .content_type = SL_STR(""),
                   .body = SL_STR("data: {\"a\":1}\n\ndata: [DONE]\n\n")};
    sl_buf b;
    sl_buf_init(&b, 0);
    T_EQ_INT(sl_answer_encode(&a, &b), 0);
    sl_answer d;
    T_EQ_INT(sl_answer_decode(b.p, b.len, &d), 0);
    T_CHECK(d.fp.hi == 1 && d.fp.lo == 0xfedcba9876543210ull);
    T_CHECK(sl_str_eq_c(d.tenant, "team-a") && d.status == 200 && d.sse && d.n_events == 2);
    T_CHECK(d.body.len == a.body.len && memcmp(d.body.p, a.body.p, a.body.len) == 0);
    /* every cut of it is refused, never read past its end */
    for (size_t n = 0; n < b.len - a.body.len; n++)
        T_CHECK(sl_answer_decode(b.p, n, &d) != 0);
    T_CHECK(sl_answer_decode("SLA1\nxyz", 8, &d) != 0);
    sl_buf_free(&b);
}

T_TEST(event_ids)
{
    char rid[64];
    size_t n = 0;
    T_CHECK(sl_rec_parse_id("abc-12", rid, &n) && strcmp(rid, "abc") == 0 && n == 12);
    T_CHECK(sl_rec_parse_id("a-b-c-0", rid, &n) && strcmp(rid, "a-b-c") == 0 && n == 0);
    T_CHECK(!sl_rec_parse_id("abc", rid, &n));
    T_CHECK(!sl_rec_parse_id("abc-", rid, &n));
    T_CHECK(!sl_rec_parse_id("-5", rid, &n));
    T_CHECK(!sl_rec_parse_id("abc-5x", rid, &n));
    T_CHECK(!sl_rec_parse_id("abc--5", rid, &n) || strcmp(rid, "abc-") == 0);
    T_CHECK(!sl_rec_parse_id(NULL, rid, &n));
    char longid[100];
    memset(longid, 'a', 80);
    strcpy(longid + 80, "-1");
    T_CHECK(!sl_rec_parse_id(longid, rid, &n));
}

T_TEST(keys_apart)
{
    sl_cache_key a, b, c;
    sl_answers_key("i", "t1", "k", &a);
    sl_answers_key("i", "t2", "k", &b);
    sl_answers_key("s", "t1", "k", &c);
    T_CHECK(a.lo != b.lo && a.lo != c.lo);
    char rk[96];
    sl_answers_redis_key("i", &a, "lock", rk);
    T_CHECK(strncmp(rk, "sluice:{i:", 10) == 0 && strstr(rk, "}:lock"));
}

T_MAIN("answers", blob_round_trip, event_ids, keys_apart)
