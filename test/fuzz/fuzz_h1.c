/* fuzz_h1.c — the native upstream client (src/upstream/h1_client.c) on
 * hostile answers.
 *
 * A listening socket in this process plays the upstream: each input starts
 * one call through sl_call_start, the bytes after the two control bytes are
 * written back as the answer in pieces whose sizes come from the first byte,
 * with the event loop run between pieces, then the upstream closes. The
 * second byte picks HEAD, a small read buffer, a consumer that pauses
 * (resumed between pieces) or aborts, and a cancel at some piece. Checked:
 * no crash, no leak, no hook after on_done or cancel, and every call that was
 * not cancelled ends exactly once. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice/upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *base;
static int lfd = -1;
static char url[64];

static struct {
    sl_call *call;
    int done;
    bool cancelled;
    bool paused;
    unsigned flags;
    unsigned datas;
} t;

static void hook_check(void)
{
    if (t.done || t.cancelled) {
        fprintf(stderr, "fuzz_h1: a hook ran after the call ended\n");
        abort();
    }
}

static void on_status(void *ud, sl_call *c, int status)
{
    (void)ud;
    (void)c;
    (void)status;
    hook_check();
}

static void on_header(void *ud, sl_call *c, sl_str name, sl_str value)
{
    (void)ud;
    (void)c;
    hook_check();
    volatile char x = name.len ? name.p[name.len - 1] : 0; /* readable (ASan) */
    x = value.len ? value.p[value.len - 1] : x;
    (void)x;
}

static int on_data(void *ud, sl_call *c, const char *p, size_t n)
{
    (void)ud;
    (void)c;
    hook_check();
    volatile char x = n ? p[n - 1] : 0;
    (void)x;
    t.datas++;
    if ((t.flags & 4) && (t.datas & 1)) {
        t.paused = true;
        return SL_CALL_PAUSE;
    }
    if ((t.flags & 8) && t.datas > 3)
        return 1; /* the consumer gives up */
    return 0;
}

static void on_done(void *ud, sl_call *c, int rc, const char *detail)
{
    (void)ud;
    (void)rc;
    hook_check();
    if (c != t.call || (rc != SL_OK && !detail)) {
        fprintf(stderr, "fuzz_h1: on_done for another call, or a failure without a reason\n");
        abort();
    }
    t.done++;
}

static const sl_call_hooks hooks = {
    .on_status = on_status, .on_data = on_data, .on_done = on_done, .on_header = on_header};

static void setup(void)
{
    base = event_base_new();
    if (!base || sl_upstream_init(base, 64) != SL_OK)
        abort();
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 16) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &len) != 0)
        abort();
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/x?q=1", ntohs(a.sin_port));
}

static void spin(int n)
{
    for (int i = 0; i < n; i++) {
        if (t.paused && !t.done && !t.cancelled) {
            t.paused = false;
            sl_call_resume(t.call);
        }
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
}

/* The upstream side of the call's connection (a new one: the previous
 * input's was closed by the upstream and dropped from the pool). */
static int accept_upstream(void)
{
    for (int i = 0; i < 50; i++) {
        int s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (s >= 0)
            return s;
        spin(1);
        usleep(100);
    }
    return -1;
}

static void drain(int s)
{
    char buf[4096];
    while (recv(s, buf, sizeof buf, MSG_DONTWAIT) > 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!base)
        setup();
    if (size < 2)
        return 0;
    unsigned step = 1u + data[0] % 97u;
    memset(&t, 0, sizeof t);
    t.flags = data[1];
    data += 2;
    size -= 2;
    sl_call_opts o = {.url = url,
                      .method = (t.flags & 1) ? "HEAD" : NULL,
                      .body = "{}",
                      .body_len = 2,
                      .recv_buffer = (t.flags & 2) ? 1024 : 0};
    int err;
    t.call = sl_call_start(&o, &hooks, NULL, &err);
    if (!t.call)
        abort();
    int s = accept_upstream();
    unsigned cancel_at = (t.flags & 0x10) ? (t.flags >> 5) : ~0u;
    unsigned piece = 0;
    for (size_t at = 0; s >= 0 && at < size && !t.done && !t.cancelled; piece++) {
        size_t n = SL_MIN(step, size - at);
        spin(1);
        drain(s);
        if (send(s, data + at, n, MSG_NOSIGNAL) < 0)
            break;
        at += n;
        spin(2);
        if (piece == cancel_at && !t.done) {
            t.cancelled = true;
            sl_call_cancel(t.call);
        }
    }
    if (s >= 0)
        close(s);
    for (int i = 0; i < 200 && !t.done && !t.cancelled; i++) {
        spin(1);
        if (!t.done && i > 20)
            usleep(50);
    }
    if (!t.done && !t.cancelled) {
        fprintf(stderr, "fuzz_h1: the call never ended\n");
        abort();
    }
    if (t.done > 1) {
        fprintf(stderr, "fuzz_h1: on_done ran %d times\n", t.done);
        abort();
    }
    spin(2); /* an idle connection's EOF: dropped from the pool */
    if (sl_upstream_inflight() != 0) {
        fprintf(stderr, "fuzz_h1: a call still in flight\n");
        abort();
    }
    return 0;
}
