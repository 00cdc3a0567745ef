/* test_sse.c — SSE parsing, split anywhere. */
#include "sluice/sse.h"
#include "t.h"

static char got[4096];

static int collect(void *ud, sl_str event, sl_str data)
{
    (void)ud;
    size_t n = strlen(got);
    snprintf(got + n, sizeof got - n, "[%.*s|%.*s]", (int)event.len, event.p, (int)data.len,
             data.p);
    return 0;
}

static const char *run(const char *in, size_t split)
{
    got[0] = '\0';
    sl_sse s;
    sl_sse_init(&s, 1024, collect, NULL);
    size_t n = strlen(in);
    if (split > n)
        split = n;
    sl_sse_feed(&s, in, split);
    sl_sse_feed(&s, in + split, n - split);
    sl_sse_free(&s);
    return got;
}

T_TEST(events_and_line_ends)
{
    const char *in = ": comment\ndata: a\n\nevent: e\ndata: b\r\ndata:c\r\n\r\nid: 3\rdata: "
                     "d\r\rdata: [DONE]\n\n";
    const char *want = "[|a][e|b\nc][|d][|[DONE]]";
    T_EQ_STR(run(in, strlen(in)), want);
    for (size_t i = 0; i <= strlen(in); i++) {
        if (strcmp(run(in, i), want) != 0)
            printf("  split at %zu: %s\n", i, got);
        T_EQ_STR(run(in, i), want);
    }
}

T_TEST(byte_at_a_time)
{
    const char *in = "data: {\"x\":1}\r\n\r\ndata: [DONE]\r\n\r\n";
    got[0] = '\0';
    sl_sse s;
    sl_sse_init(&s, 1024, collect, NULL);
    for (size_t i = 0; i < strlen(in); i++)
        sl_sse_feed(&s, in + i, 1);
    T_CHECK(sl_sse_clean_end(&s));
    sl_sse_free(&s);
    T_EQ_STR(got, "[|{\"x\":1}][|[DONE]]");
}

/* Issue 18: an event whose one data line is whole in the input is handed
 * over from the input (no copy, no buffer held by an open stream between
 * events); one that ends in a later feed is kept before the input goes. */
T_TEST(whole_events_not_copied_split_ones_kept)
{
    got[0] = '\0';
    sl_sse s;
    sl_sse_init(&s, 1024, collect, NULL);
    const char *whole = "data: {\"a\":1}\n\nevent: e\ndata: {\"b\":2}\n\n";
    T_EQ_INT(sl_sse_feed(&s, whole, strlen(whole)), 0);
    T_EQ_STR(got, "[|{\"a\":1}][e|{\"b\":2}]");
    T_EQ_INT(s.data.cap, 0);
    char input[32];
    snprintf(input, sizeof input, "data: {\"c\":3}\n");
    T_EQ_INT(sl_sse_feed(&s, input, strlen(input)), 0);
    memset(input, 'X', sizeof input); /* the caller's buffer is reused */
    T_EQ_INT(sl_sse_feed(&s, "data: more\n\n", 12), 0);
    T_EQ_STR(got, "[|{\"a\":1}][e|{\"b\":2}][|{\"c\":3}\nmore]");
    T_CHECK(sl_sse_clean_end(&s));
    sl_sse_free(&s);
}

T_TEST(oversized_event)
{
    sl_sse s;
    sl_sse_init(&s, 16, collect, NULL);
    T_EQ_INT(sl_sse_feed(&s, "data: 0123456789abcdefghijklmnop", 31), SL_ETOOBIG);
    sl_sse_free(&s);
}

T_MAIN("sse", whole_events_not_copied_split_ones_kept, events_and_line_ends, byte_at_a_time,
       oversized_event)
