/* test_buf.c — sl_buf: bounds, and the sticky error that makes unchecked appends safe. */
#include "sluice/buf.h"
#include "t.h"

T_TEST(an_append_over_the_bound_fails_and_stays_failed)
{
    sl_buf b;
    sl_buf_init(&b, 8);
    T_EQ_INT(sl_buf_append_c(&b, "abcd"), SL_OK);
    T_EQ_INT(sl_buf_append_c(&b, "efghij"), SL_ETOOBIG);
    T_EQ_INT(b.err, SL_ETOOBIG);
    /* a smaller piece would fit, but the buffer must not get a hole in the middle */
    T_EQ_INT(sl_buf_append_c(&b, "e"), SL_ETOOBIG);
    T_EQ_INT(sl_buf_printf(&b, "%d", 1), SL_ETOOBIG);
    T_EQ_INT(sl_buf_json_cstr(&b, "x"), SL_ETOOBIG);
    T_EQ_INT(sl_buf_append_i64(&b, 7), SL_ETOOBIG);
    T_EQ_STR(b.p, "abcd");
    T_EQ_INT(b.len, 4);
    sl_buf_free(&b);
}

T_TEST(the_fast_path_honours_the_error)
{
    sl_buf b;
    sl_buf_init(&b, 300);
    sl_buf_append_c(&b, "x"); /* grows to 256: room for the fast path */
    T_CHECK(b.cap > 8);
    char big[400];
    memset(big, 'y', sizeof big);
    T_EQ_INT(sl_buf_append(&b, big, sizeof big), SL_ETOOBIG);
    T_EQ_INT(sl_buf_append(&b, "z", 1), SL_ETOOBIG); /* there is room, still refused */
    T_EQ_STR(b.p, "x");
    sl_buf_free(&b);
}

T_TEST(reset_and_truncate_clear_the_error)
{
    sl_buf b;
    sl_buf_init(&b, 6);
    sl_buf_append_c(&b, "line1\n");
    size_t mark = b.len;
    sl_buf_append_c(&b, "line2 too long");
    T_CHECK(b.err != 0);
    sl_buf_truncate(&b, mark); /* roll back the unfinished piece */
    T_EQ_INT(b.err, 0);
    T_EQ_STR(b.p, "line1\n");
    sl_buf_reset(&b);
    T_EQ_INT(b.err, 0);
    T_EQ_INT(sl_buf_append_c(&b, "ok"), SL_OK);
    T_EQ_STR(b.p, "ok");
    sl_buf_free(&b);
    T_EQ_INT(b.err, 0);
    T_EQ_INT(b.max, 6); /* free keeps the bound for reuse */
}

T_MAIN("buf", an_append_over_the_bound_fails_and_stays_failed, the_fast_path_honours_the_error,
       reset_and_truncate_clear_the_error)
