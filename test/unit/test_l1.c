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

/* The alias index: an alias names an entry and lives exactly as long as the
 * entry's place in the table (replaced, deleted, evicted, expired). */
T_TEST(aliases_live_and_die_with_their_entry)
{
    sl_l1_set_clock(now);
    fake_now = 1000;
    sl_l1 *c = sl_l1_new(1 << 20);
    sl_l1_key got;
    size_t len;
    T_EQ_INT(sl_l1_alias_put(c, K(1), K(501), "m", 1), SL_ENOTFOUND); /* no entry yet */
    sl_l1_put(c, K(1), "abc", 3, 0, 1000);
    sl_l1_stats st0;
    sl_l1_get_stats(c, &st0);
    T_EQ_INT(sl_l1_alias_put(c, K(1), K(501), "meta", 4), 0);
    const char *m = sl_l1_alias_get(c, K(501), &len, &got);
    T_CHECK(m && len == 4 && memcmp(m, "meta", 4) == 0 && got.lo == 1 && got.hi == K(1).hi);
    sl_l1_stats st;
    sl_l1_get_stats(c, &st);
    T_CHECK(st.bytes > st0.bytes && st.hits == st0.hits); /* counted bytes, not a hit */
    sl_l1_put(c, K(1), "new", 3, 0, 1000); /* replaced: the alias went with the old one */
    T_CHECK(sl_l1_alias_get(c, K(501), &len, &got) == NULL);
    sl_l1_get_stats(c, &st);
    T_EQ_INT(st.bytes, st0.bytes);
    T_EQ_INT(sl_l1_alias_put(c, K(1), K(501), "m", 1), 0);
    sl_l1_del(c, K(1));
    T_CHECK(sl_l1_alias_get(c, K(501), &len, &got) == NULL);
    sl_l1_get_stats(c, &st);
    T_EQ_INT(st.bytes, 0);
    sl_l1_put(c, K(2), "abc", 3, 0, 10);
    T_EQ_INT(sl_l1_alias_put(c, K(2), K(502), "m", 1), 0);
    fake_now += 10; /* expired */
    T_CHECK(sl_l1_alias_get(c, K(502), &len, &got) == NULL);
    T_CHECK(sl_l1_get(c, K(2)) == NULL);
    sl_l1_put(c, K(3), "abc", 3, 0, 1000);
    for (uint64_t i = 0; i < SL_L1_MAX_ALIASES + 2; i++)
        T_EQ_INT(sl_l1_alias_put(c, K(3), K(600 + i), "m", 1), 0);
    T_CHECK(sl_l1_alias_get(c, K(600), &len, &got) == NULL); /* the oldest made room */
    T_CHECK(sl_l1_alias_get(c, K(601), &len, &got) == NULL);
    T_CHECK(sl_l1_alias_get(c, K(602), &len, &got) != NULL);
    T_CHECK(sl_l1_alias_get(c, K(609), &len, &got) != NULL);
    sl_l1_free(c); /* leak checkers: aliases freed with their entries */
    sl_l1_set_clock(NULL);
}

T_TEST(aliases_evicted_with_their_entry)
{
    sl_l1 *c = sl_l1_new(64 * 1024);
    char val[1000];
    memset(val, 'x', sizeof val);
    sl_l1_put(c, K(0), val, sizeof val, 0, 100000);
    sl_l1_alias_put(c, K(0), K(700), "m", 1);
    for (uint64_t i = 1; i < 80; i++)
        sl_l1_put(c, K(i), val, sizeof val, 0, 100000);
    sl_l1_key got;
    size_t len;
    T_CHECK(sl_l1_get(c, K(0)) == NULL);
    T_CHECK(sl_l1_alias_get(c, K(700), &len, &got) == NULL);
    sl_l1_stats st;
    sl_l1_get_stats(c, &st);
    T_CHECK(st.bytes <= 64 * 1024);
    sl_l1_free(c);
}

T_MAIN("l1", aliases_live_and_die_with_their_entry, aliases_evicted_with_their_entry,
       put_get_replace, evicts_least_recently_used_by_bytes, ttl_and_references)
