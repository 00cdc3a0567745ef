/* test_conn.c — the connection layer's parsing core on buffers (no sockets):
 * incremental bodies stay bounded, pipelined answers keep their order, the
 * answer does not depend on how the bytes were split, headers are slices. */
#include <event2/event.h>

#include "sluice/conn.h"
#include "sluice/pipeline.h"
#include "t.h"

static sl_config *conf;
static sl_buf output;
static size_t streamed, max_cap, pieces;
static uint64_t sum;
static bool saw_last, broke_off;
static sl_conn *current;
static char seen_header[64];

static sl_config *config(void)
{
    return conf;
}

static void out(const char *p, size_t n)
{
    sl_buf_append(&output, p, n);
}

static void on_piece(sl_req *r, const char *p, size_t n, bool last, void *ud)
{
    (void)ud;
    for (size_t i = 0; i < n; i++)
        sum = sum * 31 + (unsigned char)p[i];
    streamed += n;
    pieces += n > 0;
    if (current && sl_conn_test_bufcap(current) > max_cap)
        max_cap = sl_conn_test_bufcap(current);
    if (!last)
        return;
    saw_last = true;
    broke_off = p == NULL;
    r->status = 200;
    sl_buf_printf(&r->body_out, "{\"bytes\":%zu}", streamed);
    sl_pipeline_start(r);
}

static sl_body_mode on_head(sl_req *r, bool expect_continue)
{
    (void)expect_continue;
    sl_str h = sl_conn_header(r, "X-Probe");
    if (h.p)
        snprintf(seen_header, sizeof seen_header, "%.*s", (int)h.len, h.p);
    return strcmp(r->path, "/upload") == 0 || strcmp(r->path, "/early") == 0 ? SL_BODY_STREAM
                                                                             : SL_BODY_WHOLE;
}

static int early_calls;
static bool early_broke;

/* A reader whose request is answered before its body ended. */
static void on_early(sl_req *r, const char *p, size_t n, bool last, void *ud)
{
    (void)r, (void)n, (void)ud;
    early_calls += last;
    early_broke = last && p == NULL;
}

static void on_request(sl_req *r)
{
    if (strcmp(r->path, "/upload") == 0) {
        sl_conn_body_reader(r, on_piece, NULL);
        return;
    }
    if (strcmp(r->path, "/early") == 0) { /* answers at once, e.g. a refusal */
        sl_conn_body_reader(r, on_early, NULL);
        sl_conn_body_pause(r, true); /* (a socketless connection: a flag) */
        r->status = 403;
        sl_buf_printf(&r->body_out, "{\"early\":true}");
        sl_pipeline_start(r);
        return;
    }
    if (strcmp(r->path, "/hdr") == 0) { /* an answer with every kind of head line */
        r->status = r->query ? atoi(r->query) : 200;
        r->content_type = "text/plain";
        r->cache = SL_CACHE_HIT;
        sl_req_header(r, "Age", "3");
        sl_req_header(r, "x-extra", "v");
        sl_buf_append_c(&r->body_out, "ok");
        sl_pipeline_start(r);
        return;
    }
    r->status = 200;
    sl_buf_printf(&r->body_out, "{\"path\":\"%s\",\"len\":%zu}", r->path, r->body.len);
    sl_pipeline_start(r);
}

static void setup(void)
{
    if (conf)
        return;
    static const char yaml[] = "listen: 127.0.0.1:1\nserver:\n  max_body_bytes: 1MiB\n";
    char err[256];
    struct event_base *base = event_base_new();
    conf = sl_config_load_string("t", yaml, sizeof yaml - 1, err, sizeof err);
    static const sl_conn_hooks hooks = {on_head, on_request, config};
    sl_conn_setup(base, &hooks);
    sl_buf_init(&output, 0);
}

static void reset(void)
{
    setup();
    sl_buf_reset(&output);
    streamed = max_cap = pieces = 0;
    sum = 0;
    saw_last = broke_off = false;
    seen_header[0] = '\0';
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* A 25 MiB upload reaches a streaming handler piece by piece: never whole. */
static void upload(bool chunked)
{
    reset();
    enum { TOTAL = 25 << 20, PIECE = 60000 };
    current = sl_conn_test_new(out);
    char head[256];
    int hn = chunked ? snprintf(head, sizeof head,
                                "POST /upload HTTP/1.1\r\nHost: x\r\nX-Probe: yes\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n")
                     : snprintf(head, sizeof head,
                                "POST /upload HTTP/1.1\r\nHost: x\r\nX-Probe: yes\r\n"
                                "Content-Length: %d\r\n\r\n",
                                TOTAL);
    T_CHECK(sl_conn_test_feed(current, head, (size_t)hn));
    static char piece[PIECE + 32];
    uint64_t want = 0;
    for (size_t sent = 0; sent < TOTAL;) {
        size_t n = TOTAL - sent < PIECE ? TOTAL - sent : PIECE;
        size_t at = 0;
        if (chunked)
            at = (size_t)snprintf(piece, 32, "%zx\r\n", n);
        for (size_t i = 0; i < n; i++) {
            piece[at + i] = (char)('a' + (sent + i) % 26);
            want = want * 31 + (unsigned char)piece[at + i];
        }
        at += n;
        if (chunked) {
            memcpy(piece + at, "\r\n", 2);
            at += 2;
        }
        T_CHECK(sl_conn_test_feed(current, piece, at));
        sent += n;
    }
    if (chunked)
        T_CHECK(sl_conn_test_feed(current, "0\r\n\r\n", 5));
    T_CHECK(saw_last && !broke_off);
    T_EQ_INT(streamed, TOTAL);
    T_CHECK(sum == want);
    T_CHECK(max_cap <= 256 * 1024); /* the buffer, not the body */
    T_CHECK(pieces > 100);
    T_EQ_STR(seen_header, "yes");
    T_CHECK(strstr(output.p, "HTTP/1.1 200 OK\r\n") == output.p);
    T_CHECK(strstr(output.p, "{\"bytes\":26214400}") != NULL);
    sl_conn_test_eof(current);
    current = NULL;
    T_EQ_INT(sl_req_live(), 0);
}

T_TEST(upload_25mib_streamed_not_held)
{
    upload(false);
}

T_TEST(chunked_upload_25mib_streamed_not_held)
{
    upload(true);
}

T_TEST(upload_broken_off_is_told_to_the_handler)
{
    reset();
    sl_conn *c = sl_conn_test_new(out);
    const char *h = "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc";
    T_CHECK(sl_conn_test_feed(c, h, strlen(h)));
    sl_conn_test_eof(c);
    T_CHECK(saw_last && broke_off);
    T_EQ_INT(streamed, 3);
    T_EQ_INT(sl_req_live(), 0);
}

/* The reader of a body the answer did not wait for hears that it ended. */
T_TEST(answer_before_the_body_tells_the_reader)
{
    reset();
    early_calls = 0;
    early_broke = false;
    sl_conn *c = sl_conn_test_new(out);
    const char *h = "POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc";
    sl_conn_test_feed(c, h, strlen(h));
    T_EQ_INT(early_calls, 1);
    T_CHECK(early_broke);
    T_CHECK(strstr(output.p, "HTTP/1.1 403") == output.p);
    T_CHECK(strstr(output.p, "Connection: close") != NULL); /* the body was not read */
    sl_conn_test_feed(c, "more", 4);
    T_EQ_INT(early_calls, 1);
    sl_conn_test_eof(c);
    T_EQ_INT(sl_req_live(), 0);
}

T_TEST(pipelined_answers_in_order)
{
    reset();
    sl_conn *c = sl_conn_test_new(out);
    char all[4096];
    size_t n = 0;
    for (int i = 0; i < 10; i++)
        n += (size_t)snprintf(all + n, sizeof all - n,
                              i % 2 ? "POST /p%d HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
                                    : "GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n",
                              i);
    T_CHECK(sl_conn_test_feed(c, all, n));
    T_EQ_INT(count(output.p, "HTTP/1.1 200 OK"), 10);
    const char *at = output.p;
    for (int i = 0; i < 10; i++) {
        char want[64];
        snprintf(want, sizeof want, "{\"path\":\"/p%d\",\"len\":%d}", i, i % 2 ? 2 : 0);
        const char *got = strstr(at, want);
        T_CHECK(got != NULL);
        if (got)
            at = got;
    }
    sl_conn_test_eof(c);
    T_EQ_INT(sl_req_live(), 0);
}

/* The same bytes split at every offset give the same answer. */
static void split_everywhere(const char *raw)
{
    size_t n = strlen(raw);
    char whole[1024];
    reset();
    sl_conn *c = sl_conn_test_new(out);
    sl_conn_test_feed(c, raw, n);
    sl_conn_test_eof(c);
    T_CHECK(strstr(output.p, "{\"path\":\"/s\",\"len\":7}") != NULL);
    T_CHECK(strstr(output.p, "{\"path\":\"/t\",\"len\":0}") != NULL);
    /* Date and x-request-id vary: compare the answers without their heads */
    snprintf(whole, sizeof whole, "%s", output.p);
    size_t want_answers = count(whole, "HTTP/1.1 200 OK");
    T_EQ_INT(want_answers, 2);
    for (size_t cut = 1; cut < n; cut++) {
        reset();
        c = sl_conn_test_new(out);
        sl_conn_test_feed(c, raw, cut);
        sl_conn_test_feed(c, raw + cut, n - cut);
        sl_conn_test_eof(c);
        if (count(output.p, "HTTP/1.1 200 OK") != 2 ||
            !strstr(output.p, "{\"path\":\"/s\",\"len\":7}")) {
            printf("  split at %zu: %s\n", cut, output.p);
            T_CHECK(0);
            break;
        }
    }
    T_EQ_INT(sl_req_live(), 0);
}

/* (a chunked body: http_parser frames it) */
T_TEST(answer_independent_of_the_split)
{
    split_everywhere("POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\nT: 1\r\n\r\n"
                     "GET /t HTTP/1.1\r\nHost: x\r\n\r\n");
}

/* (plain heads: the fast parser reads them, conn.c frames the body) */
T_TEST(fast_head_answer_independent_of_the_split)
{
    split_everywhere("POST /s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 7\r\n\r\nabcdefg"
                     "GET /t HTTP/1.1\r\nHost: x\r\n\r\n");
}

/* A whole plain head in one piece skips the line scan (head_at_once): its
 * limits still hold exactly where the scan puts them — header bytes up to
 * server.max_header_bytes (16 KiB here) pass, one more is 431; a request
 * line of 8 KiB + 64 passes the 414 check, one more byte is 414. */
static int status_for(const char *head_fmt, size_t pad)
{
    static char big[40000], fill[20000];
    memset(fill, 'a', pad);
    fill[pad] = '\0';
    int n = snprintf(big, sizeof big, head_fmt, fill);
    reset();
    sl_conn *c = sl_conn_test_new(out);
    sl_conn_test_feed(c, big, (size_t)n);
    sl_conn_test_eof(c);
    int status = 0;
    sscanf(output.p ? output.p : "", "HTTP/1.1 %d", &status);
    return status;
}

T_TEST(whole_head_limits_as_the_scan_puts_them)
{
    /* header bytes: "Host: x\r\n" (9) + "X-Big: " (7) + pad + CRLF (2) */
    const char *hdr = "GET /p HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n";
    T_EQ_INT(status_for(hdr, 16384 - 18), 200);
    T_EQ_INT(status_for(hdr, 16384 - 17), 431);
    /* request line: "GET /" (5) + pad + " HTTP/1.1" (9) */
    const char *line = "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n";
    T_CHECK(status_for(line, 8192 + 64 - 14) != 414);
    T_EQ_INT(status_for(line, 8192 + 64 - 13), 414);
    T_EQ_INT(sl_req_live(), 0);
}

/* The answer's head, byte for byte (the Date line's value aside). */
static const char *answer_to(const char *request)
{
    reset();
    sl_conn *c = sl_conn_test_new(out);
    sl_conn_test_feed(c, request, strlen(request));
    sl_conn_test_eof(c);
    static char got[1024];
    const char *date = strstr(output.p, "Date: "), *eol = date ? strstr(date, "\r\n") : NULL;
    if (!eol || eol - date != 35)
        return "(no Date line of 29 bytes)";
    snprintf(got, sizeof got, "%.*sDate: -%s", (int)(date - output.p), output.p, eol);
    return got;
}

T_TEST(answer_head_byte_for_byte)
{
    T_EQ_STR(answer_to("GET /hdr HTTP/1.1\r\nHost: x\r\nx-request-id: rid-1\r\n\r\n"),
             "HTTP/1.1 200 OK\r\nDate: -\r\nContent-Type: text/plain\r\nx-request-id: rid-1\r\n"
             "x-sluice-cache: hit\r\nAge: 3\r\nx-extra: v\r\nContent-Length: 2\r\n\r\nok");
    T_EQ_STR(
        answer_to("GET /hdr?299 HTTP/1.0\r\nConnection: keep-alive\r\nx-request-id: r2\r\n\r\n"),
        "HTTP/1.1 299 Status\r\nDate: -\r\nContent-Type: text/plain\r\nx-request-id: r2\r\n"
        "x-sluice-cache: hit\r\nAge: 3\r\nx-extra: v\r\nContent-Length: 2\r\n"
        "Connection: keep-alive\r\n\r\nok");
    T_EQ_STR(answer_to("GET /hdr?404 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       "x-request-id: r3\r\n\r\n"),
             "HTTP/1.1 404 Not Found\r\nDate: -\r\nContent-Type: text/plain\r\nx-request-id: r3\r\n"
             "x-sluice-cache: hit\r\nAge: 3\r\nx-extra: v\r\nContent-Length: 2\r\n"
             "Connection: close\r\n\r\nok");
    T_EQ_INT(sl_req_live(), 0);
}

/* An open request holds a read buffer about its size, not 16 KiB; a buffer
 * grown for a big body is given back at the next small request. */
T_TEST(read_buffer_sized_to_the_request)
{
    reset();
    sl_conn *c = sl_conn_test_new(out);
    const char small[] = "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    T_CHECK(sl_conn_test_feed(c, small, sizeof small - 1));
    T_CHECK(count(output.p, "HTTP/1.1 200 OK") == 1);
    T_CHECK(sl_conn_test_bufcap(c) <= 1024);
    static char big[200 * 1024];
    int hn = snprintf(big, sizeof big, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
                      (int)(sizeof big - 100));
    memset(big + hn, 'a', sizeof big - 100);
    T_CHECK(sl_conn_test_feed(c, big, (size_t)hn + sizeof big - 100));
    T_CHECK(count(output.p, "HTTP/1.1 200 OK") == 2);
    T_CHECK(strstr(output.p, "\"len\":204700") != NULL);
    T_CHECK(sl_conn_test_bufcap(c) >= 200 * 1024 - 100);
    T_CHECK(sl_conn_test_feed(c, small, sizeof small - 1));
    T_CHECK(count(output.p, "HTTP/1.1 200 OK") == 3);
    T_CHECK(sl_conn_test_bufcap(c) <= 1024);
    sl_conn_test_eof(c);
}

T_MAIN("test_conn", read_buffer_sized_to_the_request, upload_25mib_streamed_not_held,
       chunked_upload_25mib_streamed_not_held, upload_broken_off_is_told_to_the_handler,
       answer_before_the_body_tells_the_reader, pipelined_answers_in_order,
       answer_independent_of_the_split, fast_head_answer_independent_of_the_split,
       whole_head_limits_as_the_scan_puts_them, answer_head_byte_for_byte)
