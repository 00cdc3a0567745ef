/* test_access.c — the access log's line, byte for byte (after "ts"), for a
 * cache hit, a request with every optional field and strings to escape, and
 * one with inexact money; and every line of a batch reaches the file at a
 * flush, in order; and a file log does not keep what it wrote in the page
 * cache. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sluice/access.h"
#include "sluice/log.h"
#include "sluice/trace.h"
#include "t.h"

static sl_config *conf;
static char path[64];

static void setup(void)
{
    if (conf)
        return;
    static const char yaml[] = "listen: 127.0.0.1:1\n";
    char err[256];
    conf = sl_config_load_string("t", yaml, sizeof yaml - 1, err, sizeof err);
    snprintf(path, sizeof path, "/tmp/sluice-test-access-%d.log", (int)getpid());
}

/* The file's text after logging n lines through log_one(i), then a flush. */
static char *logged(int n, void (*log_one)(int))
{
    setup();
    unlink(path);
    sl_access_open(NULL, path);
    for (int i = 0; i < n; i++)
        log_one(i);
    sl_access_flush();
    sl_access_close();
    static char text[1 << 20];
    int fd = open(path, O_RDONLY);
    ssize_t got = fd >= 0 ? read(fd, text, sizeof text - 1) : -1;
    if (fd >= 0)
        close(fd);
    text[got > 0 ? got : 0] = '\0';
    unlink(path);
    return text;
}

static sl_req *base_req(void)
{
    sl_req *r = sl_req_new(NULL, conf);
    memcpy(r->id, "0123456789abcdef0123456789abcdef", 33);
    r->method = "POST";
    r->path = "/v1/chat/completions";
    r->status = 200;
    r->is_llm = true;
    r->tenant = "default";
    r->llm.model = SL_STR("gpt-4o-mini");
    r->t_start = 1000;
    r->t_end = 1027;
    return r;
}

static void hit(int i)
{
    (void)i;
    sl_req *r = base_req();
    r->cache = SL_CACHE_HIT;
    r->cache_detail = "l1";
    r->prompt_tokens = 7;
    r->completion_tokens = 9;
    r->saved_pusd = 6450000;
    r->bytes_out = 498;
    sl_access_log_req(r);
    sl_req_release(r);
}

static void full(int i)
{
    (void)i;
    sl_req *r = base_req();
    static sl_trace tr;
    for (int k = 0; k < 16; k++)
        tr.trace_id[k] = (uint8_t)(k * 17);
    r->trace = &tr;
    r->method = "GET";
    r->path = "/v1/\"odd\"\\path\n\x01";
    r->status = 502;
    r->tenant = "team-\xc3\xa9";
    r->llm.model = SL_STR("m\"x");
    r->provider = "openai";
    r->cache = SL_CACHE_SEMANTIC;
    r->llm.stream = true;
    r->t_upstream_start = 1003;
    r->t_first_byte = 1500;
    r->t_upstream_end = 123456789;
    r->t_end = 123456999;
    r->prompt_tokens = 123456;
    r->completion_tokens = -1;
    r->cached_tokens = 100;
    r->cache_write_tokens = 5;
    r->reasoning_tokens = 77;
    r->usage_estimated = true;
    r->cost_pusd = 1234567890123;
    r->saved_pusd = 15;
    r->retries = 2;
    snprintf(r->tried, sizeof r->tried, "a,b");
    r->led_by = "leader-1";
    r->similarity = 0.93749;
    r->served_from = "req-9";
    r->bytes_out = 1ull << 40;
    r->error = "upstream \"timeout\"\t";
    sl_access_log_req(r);
    sl_req_release(r);
}

static void inexact(int i)
{
    (void)i;
    sl_req *r = base_req();
    r->is_llm = false; /* tenant: null */
    r->llm.model = SL_STR_NULL;
    r->money_inexact = true;
    r->cost_usd = 12345678.5;
    r->saved_usd = 1e-7;
    r->t_start = 0; /* latency: 0 */
    sl_access_log_req(r);
    sl_req_release(r);
}

/* The line without its "ts" field (the wall clock). */
static const char *after_ts(const char *line)
{
    const char *p = strstr(line, "\",\"request_id\"");
    return p ? p + 2 : "";
}

T_TEST(line_byte_for_byte)
{
    char *text = logged(1, hit);
    T_CHECK(strncmp(text, "{\"ts\":\"", 7) == 0 && text[30] == 'Z' && text[31] == '"');
    T_EQ_STR(
        after_ts(text),
        "\"request_id\":\"0123456789abcdef0123456789abcdef\",\"method\":\"POST\",\"path\":\"/v1/"
        "chat/completions\",\"status\":200,\"tenant\":\"default\",\"model\":\"gpt-4o-mini\","
        "\"provider\":null,\"cache\":\"hit\",\"cache_layer\":\"l1\",\"stream\":false,"
        "\"latency_ms\":0.027,\"upstream_ms\":0.000,\"ttfb_ms\":0.000,\"prompt_tokens\":7,"
        "\"completion_tokens\":9,\"cached_tokens\":0,\"cache_write_tokens\":0,"
        "\"reasoning_tokens\":0,\"usage_estimated\":false,\"cost_usd\":0,\"saved_usd\":6.45e-06,"
        "\"retries\":0,\"providers_tried\":null,\"led_by\":null,\"similarity\":null,"
        "\"served_from\":null,\"bytes_out\":498,\"error\":null}\n");
    text = logged(1, full);
    T_EQ_STR(
        after_ts(text),
        "\"request_id\":\"0123456789abcdef0123456789abcdef\",\"trace_id\":"
        "\"00112233445566778899aabbccddeeff\",\"method\":\"GET\",\"path\":\"/v1/\\\"odd\\\"\\\\"
        "path\\n\\u0001\",\"status\":502,\"tenant\":\"team-\xc3\xa9\",\"model\":\"m\\\"x\","
        "\"provider\":\"openai\",\"cache\":\"semantic\",\"cache_layer\":null,\"stream\":true,"
        "\"latency_ms\":123455.999,\"upstream_ms\":123455.786,\"ttfb_ms\":0.497,"
        "\"prompt_tokens\":123456,\"completion_tokens\":-1,\"cached_tokens\":100,"
        "\"cache_write_tokens\":5,\"reasoning_tokens\":77,\"usage_estimated\":true,"
        "\"cost_usd\":1.234567890123,\"saved_usd\":1.5e-11,\"retries\":2,\"providers_tried\":"
        "\"a,b\",\"led_by\":\"leader-1\",\"similarity\":0.937,\"served_from\":\"req-9\","
        "\"bytes_out\":1099511627776,\"error\":\"upstream \\\"timeout\\\"\\t\"}\n");
    text = logged(1, inexact);
    T_EQ_STR(
        after_ts(text),
        "\"request_id\":\"0123456789abcdef0123456789abcdef\",\"method\":\"POST\",\"path\":\"/v1/"
        "chat/completions\",\"status\":200,\"tenant\":null,\"model\":null,\"provider\":null,"
        "\"cache\":null,\"cache_layer\":null,\"stream\":false,\"latency_ms\":0.000,"
        "\"upstream_ms\":0.000,\"ttfb_ms\":0.000,\"prompt_tokens\":0,\"completion_tokens\":0,"
        "\"cached_tokens\":0,\"cache_write_tokens\":0,\"reasoning_tokens\":0,"
        "\"usage_estimated\":false,\"cost_usd\":12345678.5,\"saved_usd\":1e-07,"
        "\"retries\":0,\"providers_tried\":null,\"led_by\":null,\"similarity\":null,"
        "\"served_from\":null,\"bytes_out\":0,\"error\":null}\n");
}

/* Lines are batched in memory (one write per loop turn): a flush writes
 * every one of them, whole and in order. */
T_TEST(batched_lines_all_reach_the_file)
{
    enum { N = 1000 };
    char *text = logged(N, hit);
    int lines = 0;
    for (char *p = text; (p = strchr(p, '\n')); p++)
        lines++;
    T_EQ_INT(lines, N);
    T_EQ_INT(strlen(text) % N, 0); /* every line the same length: none cut */
}

/* Pages of path in the page cache (mincore over a mapping of the file). */
static size_t cached_bytes(void)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0)
        return 0;
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    long page = sysconf(_SC_PAGESIZE);
    size_t pages = ((size_t)st.st_size + (size_t)page - 1) / (size_t)page, in = 0;
    unsigned char *vec = malloc(pages);
    if (m != MAP_FAILED && vec && mincore(m, (size_t)st.st_size, vec) == 0)
        for (size_t i = 0; i < pages; i++)
            in += vec[i] & 1;
    free(vec);
    if (m != MAP_FAILED)
        munmap(m, (size_t)st.st_size);
    return in * (size_t)page;
}

/* 96 MiB of lines: every one reaches the file, and the file keeps at most
 * a few chunks of them cached (without the bound: all 96 MiB). The pauses
 * give writeback time to finish, as the seconds between chunks do in use. */
T_TEST(a_file_log_keeps_its_page_cache_bounded)
{
    enum { LINE = 511, TOTAL = 96 << 20 };
    setup();
    unlink(path);
    sl_access_open(NULL, path);
    char line[LINE];
    memset(line, 'x', sizeof line);
    size_t n = 0;
    for (size_t done = 0; done < TOTAL; done += LINE + 1, n++) {
        sl_buf *b = sl_access_begin();
        sl_buf_append(b, line, sizeof line);
        sl_access_commit();
        if (done % (4 << 20) < LINE + 1)
            nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
    }
    sl_access_close();
    struct stat st;
    T_CHECK(stat(path, &st) == 0 && (size_t)st.st_size == n * (LINE + 1));
    size_t cached = cached_bytes();
    printf("NOTE test_access: %zu MiB written, %zu MiB of it cached\n", (size_t)st.st_size >> 20,
           cached >> 20);
    T_CHECK(cached <= 40 << 20);
    unlink(path);
}

T_MAIN("test_access", line_byte_for_byte, batched_lines_all_reach_the_file,
       a_file_log_keeps_its_page_cache_bounded)
