/* test_l1.c — bytes bound, LRU order, TTL, references. */
#include "sluice/l1.h"
#include "t.h"

static uint64_t fake_now = 1000;
static uint64_t now(void)
{
    return fake_now;
}

static sl_l1_key K(uint64_t i)
{
    return (sl_l1_key){i * 7919, i};
}

T_TEST(put_get_replace)
{
    sl_l1 *c = sl_l1_new(1 << 20);
    T_EQ_INT(sl_l1_put(c, K(1), "abc", 3, 0, 1000), 0);
    sl_l1_entry *e = sl_l1_get(c, K(1));
    T_CHECK(e && sl_l1_entry_len(e) == 3 && memcmp(sl_l1_entry_data(e), "abc", 3) == 0);
    sl_l1_entry_unref(e);
    sl_l1_put(c, K(1), "zz", 2, 0, 1000);
    e = sl_l1_get(c, K(1));
    T_CHECK(e && sl_l1_entry_len(e) == 2);
    sl_l1_entry_unref(e);
    T_CHECK(sl_l1_get(c, K(2)) == NULL);
    sl_l1_free(c);
}

T_TEST(evicts_least_recently_used_by_bytes)
{
    sl_l1 *c = sl_l1_new(64 * 1024);
    char val[1000];
    memset(val, 'x', sizeof val);
    for (uint64_t i = 0; i < 80; i++)
        sl_l1_put(c, K(i), val, sizeof val, 0, 100000);
    sl_l1_stats st;
    sl_l1_get_stats(c, &st);
    T_CHECK(st.bytes <= 64 * 1024);
    T_CHECK(st.evictions > 0);
    T_CHECK(sl_l1_get(c, K(0)) == NULL); /* oldest went first */
    sl_l1_entry *e = sl_l1_get(c, K(79));
    T_CHECK(e != NULL);
    sl_l1_entry_unref(e);
    T_EQ_INT(sl_l1_put(c, K(99), val, 0, 0, 1), 0);
    char big[20000] = {0};
    T_EQ_INT(sl_l1_put(c, K(100), big, sizeof big, 0, 1000), SL_ETOOBIG);
    sl_l1_free(c);
}

T_TEST(ttl_and_references)
{
    sl_l1_set_clock(now);
    sl_l1 *c = sl_l1_new(1 << 20);
    sl_l1_put(c, K(5), "v", 1, 0, 50);
    sl_l1_entry *held = sl_l1_get(c, K(5));
    fake_now += 51;
    T_CHECK(sl_l1_get(c, K(5)) == NULL);               /* expired */
    T_CHECK(held && sl_l1_entry_data(held)[0] == 'v'); /* still readable by its holder */
    sl_l1_entry_unref(held);
    sl_l1_free(c);
    sl_l1_set_clock(NULL);
}

T_MAIN("l1", put_get_replace, evicts_least_recently_used_by_bytes, ttl_and_references)
