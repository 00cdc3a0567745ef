/* fuzz_conn.c — the connection layer (server/conn.c) on arbitrary byte streams.
 *
 * No sockets: a test connection is fed the input in pieces whose sizes come
 * from the input's first bytes, then the client hangs up. Requests are
 * answered by a tiny route table: /async answers on the next piece (an answer
 * that ends outside the parser, with pipelined bytes waiting), /stream reads
 * its body incrementally, everything else answers at once. Checked: no crash,
 * no leak, every request the layer handed over was answered, and no request
 * outlives the connection. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/conn.h"
#include "sluice/pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *base;
static sl_config *conf;
static sl_req *held; /* an /async request waiting for its answer */
static sl_req *kept; /* a /keep request answered, still referenced (reads its body later) */
static size_t handed, answered_sync, streamed, answers_out;

static sl_config *config(void)
{
    return conf;
}

/* Every answer's head leaves as one piece that starts with the status line. */
static void out(const char *p, size_t n)
{
    if (n >= 12 && memcmp(p, "HTTP/1.1 ", 9) == 0 && memcmp(p + 9, "100", 3) != 0)
        answers_out++;
}

static void on_body_piece(sl_req *r, const char *p, size_t n, bool last, void *ud)
{
    SL_UNUSED(ud);
    streamed += n;
    if (p && n && (p[0] == '\0' && p[n - 1] == '\0'))
        streamed++; /* the bytes are readable */
    if (!last)
        sl_conn_body_pause(r, n & 1); /* a reader that fills and drains */
    if (last) {
        sl_buf_append_c(&r->body_out, "{\"streamed\":true}");
        r->status = 200;
        sl_pipeline_start(r);
    }
}

static sl_body_mode on_head(sl_req *r, bool expect_continue)
{
    if (expect_continue && strcmp(r->path, "/deny") == 0) {
        sl_req_error(r, 401, "invalid_request_error", "invalid_api_key", NULL, "no");
        return SL_BODY_REFUSE;
    }
    return strcmp(r->path, "/stream") == 0 ? SL_BODY_STREAM : SL_BODY_WHOLE;
}

static void on_request(sl_req *r)
{
    handed++;
    if (strcmp(r->path, "/stream") == 0) {
        sl_conn_body_reader(r, on_body_piece, NULL);
        return;
    }
    if (strcmp(r->path, "/keep") == 0 && !kept) {
        sl_req_ref(r); /* like the proxy's reference, dropped after the answer */
        kept = r;
    }
    if (strcmp(r->path, "/async") == 0 && !held) {
        held = r;
        return;
    }
    r->status = 200;
    sl_buf_append(&r->body_out, r->body.p, r->body.len > 64 ? 64 : r->body.len);
    answered_sync++;
    sl_pipeline_start(r);
}

static void drop_kept(void)
{
    sl_req *r = kept;
    kept = NULL;
    if (!r)
        return;
    size_t x = 0;
    for (size_t i = 0; i < r->body.len; i++) /* the body must still be readable (ASan) */
        x += (unsigned char)r->body.p[i];
    streamed += x & 1;
    sl_req_release(r);
}

static void answer_held(void)
{
    if (handed & 1)
        drop_kept(); /* sometimes before the next piece, sometimes after */
    sl_req *r = held;
    held = NULL;
    if (!r)
        return;
    r->status = 204;
    sl_pipeline_start(r);
}

static void setup(void)
{
    static const char yaml[] = "listen: 127.0.0.1:1\n"
                               "server:\n"
                               "  max_body_bytes: 4KiB\n"
                               "  max_header_bytes: 2KiB\n";
    char err[256];
    base = event_base_new();
    conf = sl_config_load_string("fuzz", yaml, sizeof yaml - 1, err, sizeof err);
    if (!base || !conf) {
        fprintf(stderr, "fuzz_conn setup: %s\n", err);
        abort();
    }
    static const sl_conn_hooks hooks = {on_head, on_request, config};
    sl_conn_setup(base, &hooks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!base)
        setup();
    if (size < 2)
        return 0;
    size_t live0 = sl_req_live();
    handed = answered_sync = answers_out = 0;
    unsigned step = 1u + data[0] % 64u; /* piece sizes: step, then by the second byte */
    unsigned vary = data[1];
    data += 2;
    size -= 2;
    sl_conn *c = sl_conn_test_new(out);
    bool open = c != NULL;
    for (size_t at = 0; open && at < size;) {
        size_t n = step + (vary & 7u) * (at & 3u);
        if (n > size - at)
            n = size - at;
        open = sl_conn_test_feed(c, (const char *)data + at, n);
        at += n;
        drop_kept();
        answer_held();
        if (open)
            open = sl_conn_test_feed(c, "", 0); /* pipelined bytes behind the answer */
    }
    answer_held();
    if (c)
        sl_conn_test_eof(c);
    answer_held(); /* aborted while held: it completes, nobody reads it */
    drop_kept();
    if (sl_req_live() != live0) {
        fprintf(stderr, "fuzz_conn: %zu requests outlived their connection\n",
                sl_req_live() - live0);
        abort();
    }
    if (answered_sync > handed || answers_out < answered_sync) {
        fprintf(stderr, "fuzz_conn: %zu requests answered at once, %zu answers written\n",
                answered_sync, answers_out);
        abort();
    }
    return 0;
}
