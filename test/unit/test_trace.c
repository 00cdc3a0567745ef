/* test_trace.c — W3C traceparent parsing, sampling, the span encoder and queue. */
#include "sluice/trace.h"
#include "t.h"

static const char *const ok_tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

static int parse(const char *s)
{
    uint8_t t[16], p[8], f;
    return sl_traceparent_parse(s, strlen(s), t, p, &f);
}

T_TEST(traceparent_strict)
{
    uint8_t t[16], p[8], f = 0;
    T_EQ_INT(sl_traceparent_parse(ok_tp, strlen(ok_tp), t, p, &f), SL_OK);
    T_EQ_INT(t[0], 0x4b);
    T_EQ_INT(t[15], 0x36);
    T_EQ_INT(p[7], 0xb7);
    T_EQ_INT(f, 1);
    const char *bad[] = {
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  /* uppercase */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  /* zero span id */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version ff */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* 00 is exactly 55 */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", /* no dash after */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", /* dash misplaced */
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",
        "",
        "00",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        if (parse(bad[i]) == SL_OK)
            printf("  accepted: %s\n", bad[i]);
        T_CHECK(parse(bad[i]) != SL_OK);
    }
    T_EQ_INT(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more"), SL_OK);
    T_EQ_INT(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), SL_OK);
    T_CHECK(sl_traceparent_parse(NULL, 0, t, p, &f) != SL_OK);
}

T_TEST(format_round_trip)
{
    uint8_t t[16], p[8], t2[16], p2[8], f;
    sl_trace_new_id(t, 16);
    sl_trace_new_id(p, 8);
    char out[SL_TRACEPARENT_LEN + 1];
    sl_traceparent_format(out, t, p, false);
    T_EQ_INT(strlen(out), SL_TRACEPARENT_LEN);
    T_EQ_INT(sl_traceparent_parse(out, strlen(out), t2, p2, &f), SL_OK);
    T_CHECK(memcmp(t, t2, 16) == 0 && memcmp(p, p2, 8) == 0 && f == 0);
}

/* sl_hex's word-at-a-time digits against snprintf's, every byte value in
 * every position of a word, and the odd tails. */
T_TEST(hex_is_lowercase_two_digits_a_byte)
{
    uint8_t in[23];
    char got[47], want[47];
    for (int v = 0; v < 256; v++) {
        for (size_t n = 0; n <= sizeof in; n++) {
            for (size_t i = 0; i < sizeof in; i++)
                in[i] = (uint8_t)(v + 37 * i);
            sl_hex(got, in, n);
            for (size_t i = 0; i < n; i++)
                snprintf(want + 2 * i, 3, "%02x", in[i]);
            T_CHECK(memcmp(got, want, 2 * n) == 0);
        }
    }
}

T_TEST(begin_continues_or_starts)
{
    sl_trace tr;
    sl_trace_begin(&tr, ok_tp, strlen(ok_tp), 0.0);
    T_CHECK(tr.has_parent && tr.sampled); /* parent-based: the client's flag wins */
    T_EQ_INT(tr.trace_id[0], 0x4b);
    T_EQ_INT(tr.parent_id[0], 0x00);
    T_CHECK(strncmp(tr.header, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36) == 0);
    T_CHECK(strncmp(tr.header + 36, "00f067aa0ba902b7", 16) != 0); /* our own span */
    const char *padded = "  00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ";
    sl_trace_begin(&tr, padded, strlen(padded), 1.0);
    T_CHECK(tr.has_parent && !tr.sampled);
    sl_trace_begin(&tr, "junk", 4, 1.0);
    T_CHECK(!tr.has_parent && tr.sampled);
    sl_trace_begin(&tr, NULL, 0, 0.0);
    T_CHECK(!tr.has_parent && !tr.sampled);
    int sampled = 0;
    for (int i = 0; i < 2000; i++) {
        sl_trace_begin(&tr, NULL, 0, 0.25);
        sampled += tr.sampled;
    }
    T_CHECK(sampled > 350 && sampled < 650);
    sl_trace child;
    sl_trace_child(&child, &tr);
    T_CHECK(child.internal && child.has_parent && memcmp(child.parent_id, tr.span_id, 8) == 0);
    T_CHECK(sl_tracestate_valid("a=1,b=2", 7) && !sl_tracestate_valid("a=\n", 3));
    T_CHECK(!sl_tracestate_valid("", 0));
}

/* Walks protobuf fields of p[0..n): false on a malformed one; counts field f. */
static bool walk(const uint8_t *p, size_t n, unsigned f, int *count)
{
    size_t i = 0;
    while (i < n) {
        uint64_t tag = 0;
        for (int sh = 0; i < n; sh += 7) {
            tag |= (uint64_t)(p[i] & 0x7f) << sh;
            if (!(p[i++] & 0x80))
                break;
        }
        if ((tag >> 3) == f)
            (*count)++;
        switch (tag & 7) {
        case 0:
            while (i < n && (p[i++] & 0x80)) {
            }
            break;
        case 1: i += 8; break;
        case 2: {
            uint64_t l = 0;
            for (int sh = 0; i < n; sh += 7) {
                l |= (uint64_t)(p[i] & 0x7f) << sh;
                if (!(p[i++] & 0x80))
                    break;
            }
            i += l;
            break;
        }
        case 5: i += 4; break;
        default: return false;
        }
    }
    return i == n;
}

static uint64_t varint_at(const uint8_t *p, size_t *i)
{
    uint64_t v = 0;
    for (int sh = 0; sh < 64; sh += 7) {
        v |= (uint64_t)(p[*i] & 0x7f) << sh;
        if (!(p[(*i)++] & 0x80))
            break;
    }
    return v;
}

/* The one attribute a span holds after its head (at `at`): KeyValue { key,
 * AnyValue { string_value | int_value } }, each length as its bytes say. */
static bool one_attr(const sl_span *s, size_t at, const char *key, const char *str, int64_t num)
{
    size_t i = at;
    if (s->buf[i++] != (9 << 3 | 2))
        return false;
    size_t kv_end = (size_t)varint_at(s->buf, &i);
    kv_end += i;
    size_t kl = (s->buf[i++] == (1 << 3 | 2)) ? (size_t)varint_at(s->buf, &i) : (size_t)-1;
    if (kl != strlen(key) || memcmp(s->buf + i, key, kl) != 0)
        return false;
    i += kl;
    if (s->buf[i++] != (2 << 3 | 2))
        return false;
    size_t av_end = (size_t)varint_at(s->buf, &i);
    av_end += i;
    if (str) {
        size_t vl = (s->buf[i++] == (1 << 3 | 2)) ? (size_t)varint_at(s->buf, &i) : (size_t)-1;
        if (vl != strlen(str) || memcmp(s->buf + i, str, vl) != 0)
            return false;
        i += vl;
    } else if (s->buf[i++] != (3 << 3 | 0) || (int64_t)varint_at(s->buf, &i) != num) {
        return false;
    }
    return i == av_end && i == kv_end && i == s->len;
}

/* Attributes whose lengths cross the one-byte varint (127/128) read back
 * whole: every length as its bytes say. */
T_TEST(attribute_lengths_on_both_sides_of_one_byte)
{
    sl_trace_init(4, "svc");
    sl_trace_on = true;
    sl_trace tr;
    sl_trace_begin(&tr, ok_tp, strlen(ok_tp), 1.0);
    static char big[300];
    for (size_t n = 0; n < sizeof big - 1; n++) {
        memset(big, 'v', n);
        big[n] = '\0';
        sl_span s;
        sl_span_begin(&s, &tr, tr.span_id, NULL, "x", SL_SPAN_SERVER, 10, 20);
        size_t head = s.len;
        sl_span_cstr(&s, "gen_ai.request.model", big);
        T_CHECK(n == 0 ? s.len == head : one_attr(&s, head, "gen_ai.request.model", big, 0));
    }
    static const int64_t nums[] = {0, 1, 127, 128, 16383, 16384, -1, INT64_MAX, INT64_MIN};
    for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
        sl_span s;
        sl_span_begin(&s, &tr, tr.span_id, NULL, "x", SL_SPAN_SERVER, 10, 20);
        size_t head = s.len;
        sl_span_int(&s, "n", nums[k]);
        T_CHECK(one_attr(&s, head, "n", NULL, nums[k]));
    }
    sl_trace_on = false;
    sl_trace_fini();
}

T_TEST(span_encoding_and_queue)
{
    sl_trace_init(2, "svc");
    sl_trace_on = true;
    sl_trace tr;
    sl_trace_begin(&tr, ok_tp, strlen(ok_tp), 1.0);
    sl_span s;
    sl_span_begin(&s, &tr, tr.span_id, NULL, "POST /x", SL_SPAN_SERVER, 10, 20);
    sl_span_cstr(&s, "http.route", "/x");
    sl_span_int(&s, "http.response.status_code", 200);
    sl_span_int(&s, "neg", -5);
    sl_span_double(&s, "sluice.cost_usd", 0.25);
    sl_span_bool(&s, "b", true);
    sl_str fr[] = {SL_STR("stop"), SL_STR("length")};
    sl_span_strs(&s, "gen_ai.response.finish_reasons", fr, 2);
    sl_span_error(&s, "boom");
    int attrs = 0;
    T_CHECK(walk(s.buf, s.len, 9, &attrs));
    T_EQ_INT(attrs, 6);
    int parents = 0;
    T_CHECK(walk(s.buf, s.len, 4, &parents) && parents == 1); /* the client's span */
    sl_span_emit(&s);
    /* overflowing attributes are dropped, the span stays bounded and valid */
    sl_span_begin(&s, &tr, NULL, NULL, "big", SL_SPAN_INTERNAL, 10, 20);
    char big[2048];
    memset(big, 'x', sizeof big);
    for (int i = 0; i < 5; i++)
        sl_span_str(&s, "k", ((sl_str){big, sizeof big}));
    T_CHECK(s.dropped > 0 && s.len <= SL_SPAN_MAX);
    sl_span_emit(&s);
    sl_span_begin(&s, &tr, NULL, NULL, "third", SL_SPAN_INTERNAL, 10, 20);
    sl_span_emit(&s); /* over max_queue_spans (2) */
    sl_trace_stats st = sl_trace_get_stats();
    T_EQ_INT(st.dropped_full, 1);
    T_EQ_INT(st.queued, 2);
    sl_buf out;
    sl_buf_init(&out, 0);
    T_EQ_INT(sl_trace_take(&out), 2);
    int rs = 0;
    T_CHECK(walk((const uint8_t *)out.p, out.len, 1, &rs) && rs == 1);
    T_EQ_INT(sl_trace_take(&out), 0);
    sl_trace_done(2, true);
    st = sl_trace_get_stats();
    T_EQ_INT(st.exported, 2);
    T_EQ_INT(st.queued, 0);
    /* an unsampled trace records nothing */
    sl_trace_begin(&tr, NULL, 0, 0.0);
    sl_span_begin(&s, &tr, NULL, NULL, "x", SL_SPAN_INTERNAL, 1, 2);
    T_CHECK(!s.active);
    sl_span_emit(&s);
    T_EQ_INT(sl_trace_get_stats().queued, 0);
    sl_buf_free(&out);
    sl_trace_on = false;
    sl_trace_fini();
}

T_MAIN("trace", traceparent_strict, format_round_trip, hex_is_lowercase_two_digits_a_byte,
       begin_continues_or_starts, attribute_lengths_on_both_sides_of_one_byte,
       span_encoding_and_queue)
