/* test_util.c — the arena, hand-rolled number and time formatting, cache entries. */
#include <time.h>

#include "sluice/arena.h"
#include "sluice/buf.h"
#include "sluice/cache_entry.h"
#include "t.h"

/* Chunk size lines (the server's answers and the upstream client's uploads). */
T_TEST(hex_without_printf)
{
    const unsigned long long cases[] = {
        0, 1, 9, 10, 15, 16, 255, 4096, 16384, 0xdeadbeefULL, 18446744073709551615ULL};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char want[32], out[32];
        snprintf(want, sizeof want, "%llx", cases[i]);
        T_EQ_INT(sl_fmt_hex(cases[i], out), strlen(want));
        T_EQ_STR(out, want);
    }
}

/* A cut never splits a UTF-8 sequence, and always advances. */
T_TEST(utf8_prefix_ends_on_a_character_boundary)
{
    const char *s = "a\xc3\xa9\xe2\x82\xac!"; /* a, é (2 bytes), € (3 bytes), ! */
    size_t len = strlen(s);
    T_EQ_INT(sl_utf8_prefix(s, len, 1), 1);
    T_EQ_INT(sl_utf8_prefix(s, len, 2), 1); /* inside é: back to its start */
    T_EQ_INT(sl_utf8_prefix(s, len, 3), 3);
    T_EQ_INT(sl_utf8_prefix(s, len, 5), 3); /* inside €: back to its start */
    T_EQ_INT(sl_utf8_prefix(s, len, 6), 6);
    T_EQ_INT(sl_utf8_prefix(s, len, 100), len);
    T_EQ_INT(sl_utf8_prefix(s + 1, len - 1, 1), len - 1); /* no boundary inside: all of it */
}

T_TEST(arena_big_allocation_keeps_the_current_block)
{
    char first[1024];
    sl_arena a;
    sl_arena_init(&a, first, sizeof first, 0);
    char *small = sl_arena_alloc(&a, 100);
    T_CHECK(small >= first && small < first + sizeof first);
    char *big = sl_arena_alloc(&a, 64 * 1024); /* its own block */
    T_CHECK(big && (big < first || big >= first + sizeof first));
    memset(big, 1, 64 * 1024);
    char *next = sl_arena_alloc(&a, 100); /* still from the inline block */
    T_CHECK(next >= first && next < first + sizeof first);
    T_EQ_INT(a.total, 100 + 64 * 1024 + 100);
    sl_arena_free(&a);
}

/* Issue 18: heap blocks grow 4, 8, 16 KiB, so a request just past its inline
 * block holds 4 KiB more, not 16; a reset starts over from 4 KiB. */
T_TEST(arena_blocks_grow_from_4k)
{
    char first[2560];
    sl_arena a;
    sl_arena_init(&a, first, sizeof first, 0);
    for (int round = 0; round < 2; round++) { /* a reset starts over from 4 KiB */
        const size_t want[] = {4096, 4096 + 8192, 4096 + 8192 + 16384, 4096 + 8192 + 16384 + 16384};
        size_t seen = 0, held = 0;
        while (seen < SL_ARRAY_LEN(want)) {
            T_CHECK(sl_arena_alloc(&a, 100) != NULL);
            if (sl_arena_heap_bytes(&a) != held) {
                held = sl_arena_heap_bytes(&a);
                T_EQ_INT(held, want[seen]);
                seen++;
            }
        }
        sl_arena_reset(&a);
        T_EQ_INT(sl_arena_heap_bytes(&a), 0);
    }
    sl_arena_free(&a);
}

T_TEST(arena_limit)
{
    sl_arena a;
    sl_arena_init(&a, NULL, 0, 1000);
    T_CHECK(sl_arena_alloc(&a, 600) != NULL);
    T_CHECK(sl_arena_alloc(&a, 600) == NULL);
    T_CHECK(sl_arena_alloc(&a, 400) != NULL);
    sl_arena_free(&a);
}

T_TEST(numbers_without_printf)
{
    char out[24];
    const long long cases[] = {0,
                               7,
                               -7,
                               10,
                               99,
                               -99,
                               100,
                               101,
                               1000,
                               123456789,
                               -9223372036854775807LL - 1,
                               9223372036854775807LL};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char want[32];
        snprintf(want, sizeof want, "%lld", cases[i]);
        T_EQ_INT(sl_fmt_i64(cases[i], out), strlen(want));
        T_EQ_STR(out, want);
    }
    sl_buf b;
    sl_buf_init(&b, 0);
    const unsigned long long us[] = {0, 1, 999, 1000, 1234567, 60000001};
    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++) {
        char want[32];
        snprintf(want, sizeof want, "%.3f", (double)us[i] / 1000.0);
        sl_buf_reset(&b);
        sl_buf_append_ms(&b, us[i]);
        T_EQ_STR(b.p, want);
    }
    sl_buf_free(&b);
}

/* Money is printed from integer pico-dollars as sl_buf_json_num prints the
 * same amount as a double (the access log's form) and as "%.8f" (the
 * x-sluice-cost-usd header's), with no printf on the request path. */
T_TEST(money_without_printf)
{
    const long long pusd[] = {0,
                              1,
                              15,
                              1500000,
                              4500000,
                              13500000,
                              100000000,
                              123456789,
                              1000000000000LL,
                              12500000000000LL,
                              99999999999LL,
                              5000,
                              4999,
                              -1500000,
                              9223372036854775807LL};
    sl_buf got, want;
    sl_buf_init(&got, 0);
    sl_buf_init(&want, 0);
    for (size_t i = 0; i < sizeof pusd / sizeof pusd[0]; i++) {
        sl_buf_reset(&got);
        sl_buf_reset(&want);
        sl_buf_json_pusd(&got, pusd[i]);
        sl_buf_json_num(&want, (double)pusd[i] / 1e12);
        if (pusd[i] < 1000000000000000LL) /* beyond 15 digits a double is not exact */
            T_EQ_STR(got.p, want.p);
        char fixed[32], ref[40];
        sl_fmt_pusd_fixed8(pusd[i], fixed);
        snprintf(ref, sizeof ref, "%.8f", (double)pusd[i] / 1e12);
        if (pusd[i] % 10000 != 5000 && pusd[i] < 1000000000000000LL) /* ties: half up here */
            T_EQ_STR(fixed, ref);
    }
    sl_buf_reset(&got);
    sl_buf_json_pusd(&got, 9223372036854775807LL);
    T_EQ_STR(got.p, "9223372.036854775807");
    char fixed[32];
    sl_fmt_pusd_fixed8(5000, fixed);
    T_EQ_STR(fixed, "0.00000001");
    sl_buf_free(&got);
    sl_buf_free(&want);
}

/* The word-at-a-time scan for bytes to escape finds every one, wherever it
 * falls in a word, and leaves high bytes (UTF-8) alone. */
T_TEST(json_strings_escape_at_every_offset)
{
    const char specials[] = {'"', '\\', '\n', '\x01', '\x1f', ' ', '\x7f', (char)0xc3, (char)0x80};
    sl_buf b;
    sl_buf_init(&b, 0);
    for (size_t len = 0; len < 24; len++) {
        for (size_t at = 0; at < len; at++) {
            for (size_t k = 0; k < sizeof specials; k++) {
                char in[24], want[200];
                memset(in, 'a', len);
                in[at] = specials[k];
                size_t w = 0;
                want[w++] = '"';
                for (size_t i = 0; i < len; i++) {
                    unsigned char c = (unsigned char)in[i];
                    if (c == '"' || c == '\\') {
                        want[w++] = '\\';
                        want[w++] = (char)c;
                    } else if (c == '\n') {
                        want[w++] = '\\';
                        want[w++] = 'n';
                    } else if (c < 0x20) {
                        w += (size_t)snprintf(want + w, 8, "\\u%04x", c);
                    } else {
                        want[w++] = (char)c;
                    }
                }
                want[w++] = '"';
                want[w] = '\0';
                sl_buf_reset(&b);
                sl_buf_json_str(&b, in, len);
                T_EQ_STR(b.p, want);
            }
        }
    }
    sl_buf_free(&b);
}

T_TEST(timestamps_match_gmtime)
{
    const long long ms[] = {0,
                            999,
                            1700000000123LL,
                            1700000000999LL,
                            1700000001000LL,
                            1795000000000LL,
                            -5,
                            253402300799999LL + 5000};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        long long m = ms[i] < 0 ? 0 : ms[i] > 253402300799999LL ? 253402300799999LL : ms[i];
        time_t s = (time_t)(m / 1000);
        struct tm tm;
        gmtime_r(&s, &tm);
        char want[40], got[40];
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(m % 1000));
        T_EQ_INT(sl_rfc3339_ms(ms[i], got), strlen(want));
        T_EQ_STR(got, want);
    }
}

T_TEST(cache_entries_round_trip_and_refuse_foreign_bytes)
{
    const char json[] = "{\"id\":\"x\"}\n";
    sl_cache_entry e = {.stored_at_ms = 1700000000000LL,
                        .prompt_tokens = 3,
                        .completion_tokens = 4,
                        .json = {json, sizeof json - 1}},
                   d;
    char buf[64];
    sl_cache_entry_encode(&e, buf);
    size_t n = sl_cache_entry_size(e.json.len);
    T_EQ_INT(sl_cache_entry_decode(buf, n, &d), SL_OK);
    T_EQ_INT(d.stored_at_ms, e.stored_at_ms);
    T_EQ_INT(d.prompt_tokens, 3);
    T_EQ_INT(d.completion_tokens, 4);
    T_EQ_INT(d.json.len, e.json.len);
    T_CHECK(memcmp(d.json.p, json, e.json.len) == 0);
    T_CHECK(sl_cache_entry_decode(buf, 17, &d) != SL_OK);    /* too short */
    T_CHECK(sl_cache_entry_decode("hello", 5, &d) != SL_OK); /* not an entry */
    memcpy(buf + 16, "<html>oops</html>", 17);               /* not JSON */
    T_CHECK(sl_cache_entry_decode(buf, 33, &d) != SL_OK);
    int64_t neg = -1;
    sl_cache_entry_encode(&e, buf);
    memcpy(buf, &neg, 8); /* a time before 1970 */
    T_CHECK(sl_cache_entry_decode(buf, n, &d) != SL_OK);
}

/* A hit prices what it saved as the call was priced: the entry keeps the
 * prompt-cache counts; an entry written before them (version 1) still reads. */
T_TEST(cache_entries_keep_cache_counts_and_read_version_1)
{
    const char json[] = "{\"id\":\"y\"}";
    sl_cache_entry e = {.stored_at_ms = 1700000000000LL,
                        .prompt_tokens = 1200,
                        .completion_tokens = 40,
                        .json = {json, sizeof json - 1},
                        .cached_tokens = 1000,
                        .cache_write_tokens = 6000,
                        .cache_write_1h_tokens = 4000,
                        .reasoning_tokens = 7,
                        .prompt_has_cache = true},
                   d;
    char buf[96];
    sl_cache_entry_encode(&e, buf);
    T_EQ_INT(sl_cache_entry_decode(buf, sl_cache_entry_size(e.json.len), &d), SL_OK);
    T_EQ_INT(d.prompt_tokens, 1200);
    T_EQ_INT(d.cached_tokens, 1000);
    T_EQ_INT(d.cache_write_tokens, 6000);
    T_EQ_INT(d.cache_write_1h_tokens, 4000);
    T_EQ_INT(d.reasoning_tokens, 7);
    T_CHECK(d.prompt_has_cache);
    T_EQ_INT(d.json.len, e.json.len);
    T_CHECK(d.json.p && d.json.p[0] == '{');
    /* version 1: stored-at, prompt, completion, then the JSON */
    char v1[64];
    int64_t at = 1700000000001LL;
    uint32_t p = 9, c = 3;
    memcpy(v1, &at, 8), memcpy(v1 + 8, &p, 4), memcpy(v1 + 12, &c, 4);
    memcpy(v1 + 16, json, sizeof json - 1);
    T_EQ_INT(sl_cache_entry_decode(v1, 16 + sizeof json - 1, &d), SL_OK);
    T_EQ_INT(d.stored_at_ms, at);
    T_EQ_INT(d.prompt_tokens, 9);
    T_EQ_INT(d.completion_tokens, 3);
    T_EQ_INT(d.cached_tokens, 0);
    T_EQ_INT(d.cache_write_tokens, 0);
    T_CHECK(!d.prompt_has_cache);
    T_EQ_INT(d.json.len, sizeof json - 1);
    T_CHECK(memcmp(d.json.p, json, d.json.len) == 0);
}

/* Issue 17 item 6: a URL is shown without the password of its userinfo. */
T_TEST(urls_shown_without_passwords)
{
    char out[128];
    T_EQ_STR(sl_redact_url("redis://:PASSWORD@host:6379/0", out, sizeof out),
             "redis://:***@host:6379/0");
    T_EQ_STR(sl_redact_url("http://user:PASS@host/v1", out, sizeof out), "http://user:***@host/v1");
    T_EQ_STR(sl_redact_url("https://TOKEN@host/v1", out, sizeof out), "https://***@host/v1");
    T_EQ_STR(sl_redact_url("https://api.openai.com/v1?x=a@b", out, sizeof out),
             "https://api.openai.com/v1?x=a@b");
    T_EQ_STR(sl_redact_url("http://u:p@ss@host", out, sizeof out), "http://u:***@host");
    T_EQ_STR(sl_redact_url(NULL, out, sizeof out), "");
    char small[12];
    T_EQ_STR(sl_redact_url("http://u:SECRET@host", small, sizeof small), "http://u:**");
    sl_str pw = sl_url_password("redis://:PASSWORD@host");
    T_CHECK(pw.len == 8 && memcmp(pw.p, "PASSWORD", 8) == 0);
    T_EQ_INT(sl_url_password("http://host/v1").len, 0);
}

/* Issue 17 item 12: secrets replaced by exact match, in place. */
T_TEST(secrets_scrubbed_in_place)
{
    char *secrets[] = {"sk-upstream-secret", "short", "redis-pass-1"};
    char text[] = "key sk-upstream-secret and sk-upstream-secret, redis-pass-1; short stays";
    size_t n = sl_scrub(text, strlen(text), secrets, 3);
    T_EQ_STR(text, "key *** and ***, ***; short stays");
    T_EQ_INT(n, strlen(text));
    T_CHECK(!sl_has_secret(text, n, secrets, 3));
    char clean[] = "nothing here";
    T_EQ_INT(sl_scrub(clean, strlen(clean), secrets, 3), strlen("nothing here"));
    T_EQ_STR(clean, "nothing here");
    char edge[] = "sk-upstream-secretsk-upstream-secret";
    T_EQ_STR((sl_scrub(edge, strlen(edge), secrets, 1), edge), "******");
}

/* The cheap clocks agree with the precise ones to a tick (4 ms at HZ=250,
 * allow 20), and a wall stamp taken from a monotonic instant is the wall
 * clock of that instant, also for an instant a while back. */
T_TEST(cheap_clocks_agree_with_the_precise_ones)
{
    uint64_t mono = sl_now_ms(), coarse = sl_coarse_ms();
    T_CHECK(coarse <= mono + 1 && mono - coarse <= 20);
    int64_t wall = sl_wall_ms(), wall_coarse = sl_wall_coarse_ms();
    T_CHECK(wall_coarse <= wall + 1 && wall - wall_coarse <= 20);
    uint64_t at = sl_now_us();
    int64_t w = sl_wall_ms(), stamp = sl_wall_ms_at(at);
    T_CHECK(stamp <= w + 1 && w - stamp <= 2);
    int64_t back = sl_wall_ms_at(at - 1500000) - stamp;
    T_CHECK(back >= -1501 && back <= -1499);
    struct timespec pause = {0, 30 * 1000 * 1000};
    nanosleep(&pause, NULL);
    uint64_t later = sl_now_us();
    int64_t w2 = sl_wall_ms(), stamp2 = sl_wall_ms_at(later);
    T_CHECK(stamp2 <= w2 + 1 && w2 - stamp2 <= 2);
    T_CHECK(stamp2 - stamp >= 29);
}

T_MAIN("util", arena_big_allocation_keeps_the_current_block, arena_blocks_grow_from_4k, arena_limit,
       numbers_without_printf, money_without_printf, json_strings_escape_at_every_offset,
       timestamps_match_gmtime, cache_entries_round_trip_and_refuse_foreign_bytes,
       cache_entries_keep_cache_counts_and_read_version_1, urls_shown_without_passwords,
       secrets_scrubbed_in_place, utf8_prefix_ends_on_a_character_boundary, hex_without_printf,
       cheap_clocks_agree_with_the_precise_ones)
