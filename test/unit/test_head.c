/* test_head.c — the fast head parser (core/head.c) against http_parser.
 *
 * Wherever sl_head_parse accepts a head, http_parser must accept it too and
 * read the same method, version, target, header slices, Content-Length and
 * Connection flags; the heads real clients send must be taken by the fast
 * path (or it would save nothing). The corpus: such heads, and every one of
 * them with each byte replaced by one of a set of awkward bytes, deleted, or
 * doubled, kept when it still passes the connection layer's line scan (which
 * runs before either parser). */
#include <http_parser.h>
#include <limits.h>

#include "sluice/head.h"
#include "t.h"

enum { MAXF = 64 };

typedef struct ref {
    const char *base;
    uint32_t url_o, url_l;
    sl_head_field f[MAXF];
    unsigned n;
    bool done, overflow;
} ref;

static int r_url(http_parser *p, const char *at, size_t n)
{
    ref *r = p->data;
    r->url_o = (uint32_t)(at - r->base);
    r->url_l = (uint32_t)n;
    return 0;
}

static int r_field(http_parser *p, const char *at, size_t n)
{
    ref *r = p->data;
    if (r->n >= MAXF) {
        r->overflow = true;
        return 1;
    }
    sl_head_field *f = &r->f[r->n++];
    f->no = (uint32_t)(at - r->base);
    f->nl = (uint32_t)n;
    f->vo = f->no + f->nl;
    f->vl = 0;
    return 0;
}

static int r_value(http_parser *p, const char *at, size_t n)
{
    ref *r = p->data;
    while (n && (at[n - 1] == ' ' || at[n - 1] == '\t'))
        n--; /* as conn.c's on_header_value */
    r->f[r->n - 1].vo = (uint32_t)(at - r->base);
    r->f[r->n - 1].vl = (uint32_t)n;
    return 0;
}

static int r_done(http_parser *p)
{
    ((ref *)p->data)->done = true;
    http_parser_pause(p, 1);
    return 0;
}

/* What conn.c's scan_head guarantees before any parser runs. */
static bool scan_ok(const char *p, size_t n)
{
    if (n < 4 || memcmp(p + n - 4, "\r\n\r\n", 4) != 0)
        return false;
    size_t ls = 0;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\0' || (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n')) ||
            (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')))
            return false;
        if (p[i] != '\n')
            continue;
        size_t len = i - 1 - ls;
        if (len == 0)
            return i + 1 == n && !first; /* the blank line ends the head, exactly here */
        if (!first) {
            const char *colon = memchr(p + ls, ':', len);
            if (p[ls] == ' ' || p[ls] == '\t' || !colon || colon == p + ls || colon[-1] == ' ' ||
                colon[-1] == '\t')
                return false;
        }
        first = false;
        ls = i + 1;
    }
    return false;
}

static long accepted, compared;

/* What both kinds of head must read alike: version, fields, framing flags. */
static bool same_head(const http_parser *hp, const ref *r, const sl_head *h, const sl_head_field *f)
{
    bool same = r->done && HTTP_PARSER_ERRNO(hp) == HPE_PAUSED && !r->overflow &&
                hp->http_major == 1 && hp->http_minor == h->http_minor && r->n == h->n_fields &&
                hp->content_length == h->content_length &&
                !(hp->flags & (F_CHUNKED | F_UPGRADE | F_CONNECTION_UPGRADE)) && !hp->upgrade &&
                !!(hp->flags & F_CONNECTION_CLOSE) == h->conn_close &&
                !!(hp->flags & F_CONNECTION_KEEP_ALIVE) == h->conn_keep_alive &&
                !!(hp->flags & F_CONTENTLENGTH) == (h->content_length != ULLONG_MAX);
    for (unsigned i = 0; same && i < h->n_fields; i++)
        same = memcmp(&r->f[i], &f[i], sizeof f[i]) == 0;
    return same;
}

/* Returns false on a disagreement (printed). */
static bool agree(const char *p, size_t n)
{
    sl_head h;
    sl_head_field f[MAXF];
    if (!scan_ok(p, n) || !sl_head_parse(p, n, &h, f, MAXF))
        return true;
    accepted++;
    static http_parser_settings s = {.on_url = r_url,
                                     .on_header_field = r_field,
                                     .on_header_value = r_value,
                                     .on_headers_complete = r_done};
    http_parser hp;
    ref r = {.base = p};
    http_parser_init(&hp, HTTP_REQUEST);
    hp.data = &r;
    http_parser_execute(&hp, &s, p, n);
    bool same = same_head(&hp, &r, &h, f) && hp.method == h.method && r.url_o == h.url_o &&
                r.url_l == h.url_l;
    if (!same)
        printf("  disagreement (http_parser: %s) on: %.*s\n",
               http_errno_name(HTTP_PARSER_ERRNO(&hp)), (int)n, p);
    compared++;
    return same;
}

static const char *heads[] = {
    "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: "
    "application/json\r\nContent-Length: 89\r\n\r\n",
    "POST /v1/chat/completions HTTP/1.1\r\nhost: localhost:4000\r\naccept-encoding: gzip, "
    "deflate\r\nconnection: keep-alive\r\naccept: application/json\r\ncontent-type: "
    "application/json\r\nuser-agent: OpenAI/Python 1.51.0\r\nx-stainless-lang: "
    "python\r\nx-stainless-package-version: 1.51.0\r\nx-stainless-os: Linux\r\nx-stainless-arch: "
    "x64\r\nx-stainless-runtime: CPython\r\nx-stainless-runtime-version: "
    "3.11.2\r\nauthorization: Bearer sk-test-123\r\nx-stainless-async: "
    "false\r\nx-stainless-retry-count: 0\r\nx-stainless-read-timeout: 600\r\ncontent-length: "
    "120\r\n\r\n",
    "GET /v1/models?limit=10&after=x%20y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "HEAD /health HTTP/1.1\r\nHost: x\r\nX-Probe:   padded \t \r\n\r\n",
    "POST /v1/messages HTTP/1.0\r\nConnection: Keep-Alive\r\nx-api-key: k\r\nanthropic-version: "
    "2023-06-01\r\nContent-Length: 007\r\n\r\n",
    "DELETE /v1/files/f-1 HTTP/1.1\r\nHost: x\r\nIdempotency-Key: abc_DEF-1\r\n\r\n",
    "OPTIONS /v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    "PATCH /a/b/c;p=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    "PUT /x?a=1?b=2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
};

/* The heads clients send go the fast way (the last two: http_parser's). */
T_TEST(client_heads_take_the_fast_path)
{
    for (size_t i = 0; i < sizeof heads / sizeof *heads; i++) {
        sl_head h;
        sl_head_field f[MAXF];
        bool fast = sl_head_parse(heads[i], strlen(heads[i]), &h, f, MAXF);
        T_CHECK(fast == (i < 7));
        T_CHECK(agree(heads[i], strlen(heads[i])));
    }
    sl_head h;
    sl_head_field f[4];
    T_CHECK(sl_head_parse(heads[2], strlen(heads[2]), &h, f, 4));
    T_CHECK(h.conn_close && !h.conn_keep_alive && h.content_length == ULLONG_MAX);
    T_CHECK(h.method == HTTP_GET && h.http_minor == 1 &&
            h.url_l == strlen("/v1/models?limit=10&after=x%20y"));
    T_CHECK(!sl_head_parse(heads[1], strlen(heads[1]), &h, f, 4)); /* more fields than slots */
}

static const char awkward[] = " \t:#?/\x7f\x80\xff\x01\x1f"
                              "Aa09-_.\"(,@\\{%+=;HTP12\r\n";

/* Each byte of each head replaced, deleted or doubled: never a disagreement. */
T_TEST(fast_path_agrees_with_http_parser_on_mutations)
{
    accepted = compared = 0;
    static char m[2048];
    long bad = 0;
    for (size_t h = 0; h < sizeof heads / sizeof *heads; h++) {
        const char *p = heads[h];
        size_t n = strlen(p);
        for (size_t i = 0; i < n && bad < 5; i++) {
            for (size_t k = 0; k < sizeof awkward - 1; k++) { /* replaced */
                memcpy(m, p, n);
                m[i] = awkward[k];
                bad += !agree(m, n);
            }
            memcpy(m, p, i); /* deleted */
            memcpy(m + i, p + i + 1, n - i - 1);
            bad += !agree(m, n - 1);
            memcpy(m, p, i + 1); /* doubled */
            memcpy(m + i + 1, p + i, n - i);
            bad += !agree(m, n + 1);
        }
    }
    T_EQ_INT(bad, 0);
    T_CHECK(compared > 5000); /* most mutations stay in the fast path's shape */
    printf("NOTE test_head: %ld mutated heads taken by the fast path, all as http_parser reads "
           "them\n",
           accepted);
}

/* ---- answer heads (h1_client.c): compared unscanned, as they come off the socket ---- */

static long answers_accepted;

static bool agree_answer(const char *p, size_t n)
{
    sl_head h;
    sl_head_field f[MAXF];
    if (!sl_head_parse_answer(p, n, &h, f, MAXF))
        return true;
    answers_accepted++;
    static http_parser_settings s = {
        .on_header_field = r_field, .on_header_value = r_value, .on_headers_complete = r_done};
    http_parser hp;
    ref r = {.base = p};
    http_parser_init(&hp, HTTP_RESPONSE);
    hp.data = &r;
    http_parser_execute(&hp, &s, p, n);
    bool same = same_head(&hp, &r, &h, f) && hp.status_code == h.status;
    if (!same)
        printf("  answer disagreement (http_parser: %s) on: %.*s\n",
               http_errno_name(HTTP_PARSER_ERRNO(&hp)), (int)n, p);
    return same;
}

static const char *answers[] = {
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 478\r\n\r\n",
    "HTTP/1.1 200 OK\r\ndate: Tue, 01 Dec 2026 10:00:00 GMT\r\ncontent-type: "
    "application/json\r\ncontent-length: 1024\r\nconnection: keep-alive\r\nopenai-organization: "
    "org-x\r\nopenai-processing-ms: 412\r\nx-request-id: req_abc123\r\nx-ratelimit-remaining-"
    "requests: 9999\r\nretry-after: 1\r\n\r\n",
    "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 20\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.0 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
    "HTTP/1.1 200 \r\nContent-Length: 5\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    "HTTP/1.1 100 Continue\r\n\r\n",
    "HTTP/1.1 200\r\nContent-Length: 5\r\n\r\n",
};

/* The answers providers send go the fast way (the last three: http_parser's);
 * each byte of each replaced, deleted or doubled: never a disagreement. */
T_TEST(answer_heads_agree_with_http_parser)
{
    for (size_t i = 0; i < sizeof answers / sizeof *answers; i++) {
        sl_head h;
        sl_head_field f[MAXF];
        T_CHECK(sl_head_parse_answer(answers[i], strlen(answers[i]), &h, f, MAXF) == (i < 5));
    }
    sl_head h;
    sl_head_field f[MAXF];
    T_CHECK(sl_head_parse_answer(answers[2], strlen(answers[2]), &h, f, MAXF));
    T_CHECK(h.status == 429 && h.content_length == 0 && h.n_fields == 2 && h.http_minor == 1);
    answers_accepted = 0;
    static char m[2048];
    long bad = 0;
    for (size_t a = 0; a < sizeof answers / sizeof *answers; a++) {
        const char *p = answers[a];
        size_t n = strlen(p);
        bad += !agree_answer(p, n);
        for (size_t i = 0; i < n && bad < 5; i++) {
            for (size_t k = 0; k < sizeof awkward - 1; k++) {
                memcpy(m, p, n);
                m[i] = awkward[k];
                bad += !agree_answer(m, n);
            }
            memcpy(m, p, i);
            memcpy(m + i, p + i + 1, n - i - 1);
            bad += !agree_answer(m, n - 1);
            memcpy(m, p, i + 1);
            memcpy(m + i + 1, p + i, n - i);
            bad += !agree_answer(m, n + 1);
        }
    }
    T_EQ_INT(bad, 0);
    T_CHECK(answers_accepted > 2000);
    printf("NOTE test_head: %ld mutated answer heads taken by the fast path, all as http_parser "
           "reads them\n",
           answers_accepted);
}

T_MAIN("test_head", client_heads_take_the_fast_path, fast_path_agrees_with_http_parser_on_mutations,
       answer_heads_agree_with_http_parser)
