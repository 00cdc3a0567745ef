/* log.c — stderr error log and the buffered, never-blocking access log. */
#include "sluice/log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    ACCESS_HIGH_WATER = 64 * 1024, /* flush now past this */
    ACCESS_MAX_BUFFERED = 8 << 20, /* drop lines past this (reader stalled) */
    ACCESS_CACHE_CHUNK = 8 << 20,  /* a file log keeps about two of these in the page cache */
};

static struct {
    int fd; /* -1: off */
    bool own_fd;
    sl_buf buf;
    size_t line_start;      /* offset of the line being written */
    struct event *flush_ev; /* once per loop iteration */
    bool flush_pending;
    uint64_t dropped;
    /* A regular file's offsets: bytes written, and how far writeback was asked for. */
    bool regular;
    uint64_t written, synced;
} acc = {.fd = -1};

/* The secrets of the running configuration (copies): no log line shows one. */
static struct {
    char **v;
    size_t n;
} secrets;

void sl_log_set_secrets(char *const *v, size_t n)
{
    for (size_t i = 0; i < secrets.n; i++)
        free(secrets.v[i]);
    free(secrets.v);
    secrets.v = n ? calloc(n, sizeof(char *)) : NULL;
    secrets.n = 0;
    for (size_t i = 0; secrets.v && i < n; i++) {
        if ((secrets.v[secrets.n] = strdup(v[i])))
            secrets.n++;
    }
}

void sl_log(const char *level, const char *fmt, ...)
{
    char ts[32];
    sl_rfc3339_ms(sl_wall_ms(), ts);
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (secrets.n)
        sl_scrub(line, strlen(line), secrets.v, secrets.n);
    fprintf(stderr, "%s [%s] sluice[%d]: %s\n", ts, level, (int)getpid(), line);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    SL_UNUSED(arg);
    acc.flush_pending = false;
    sl_access_flush();
}

/* The descriptor for target (-1 for "off"); *own when we opened a file. */
static int open_target(const char *target, bool *own)
{
    *own = false;
    if (!target || strcmp(target, "off") == 0)
        return -1;
    if (strcmp(target, "stdout") == 0)
        return STDOUT_FILENO;
    if (strcmp(target, "stderr") == 0)
        return STDERR_FILENO;
    int fd = open(target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd >= 0)
        *own = true;
    return fd;
}

static void use_fd(struct event_base *base, int fd, bool own)
{
    acc.fd = fd;
    acc.own_fd = own;
    /* A pipe or terminal must never block the loop: buffer instead. */
    if (fd >= 0 && !own) {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
            fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
    struct stat st;
    acc.regular = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    acc.written = acc.synced = acc.regular ? (uint64_t)st.st_size : 0;
    if (base && !acc.flush_ev)
        acc.flush_ev = event_new(base, -1, 0, flush_cb, NULL);
}

/* A file log would otherwise fill the page cache with lines nobody rereads
 * (a GB every few minutes under load), evicting what the machine caches for
 * others, and every new page is a fresh allocation — on a guest that reports
 * free pages to its host, a host fault each (measured: a 17 KiB write 7 us on
 * recycled pages, 60-80 us on fresh ones). So every chunk written is handed
 * to writeback at once (asynchronous) and the chunk before it, clean by then,
 * is dropped: the log reuses the same few MiB of pages. Neither call waits
 * for the disk. */
static void bound_page_cache(void)
{
    if (!acc.regular || acc.written - acc.synced < ACCESS_CACHE_CHUNK)
        return;
    (void)sync_file_range(acc.fd, (off_t)acc.synced, (off_t)(acc.written - acc.synced),
                          SYNC_FILE_RANGE_WRITE);
    /* what was handed to writeback before, and two chunks further back:
     * pages still being written last time were skipped (the drop never
     * waits), and go now */
    uint64_t back = 3 * ACCESS_CACHE_CHUNK, from = acc.synced > back ? acc.synced - back : 0;
    if (acc.synced > from)
        (void)posix_fadvise(acc.fd, (off_t)from, (off_t)(acc.synced - from), POSIX_FADV_DONTNEED);
    acc.synced = acc.written;
}

int sl_access_open(struct event_base *base, const char *target)
{
    sl_access_close();
    bool own;
    int fd = open_target(target, &own);
    if (fd < 0 && target && strcmp(target, "off") != 0) {
        sl_err("access log %s: %s", target, strerror(errno));
        return SL_EIO;
    }
    sl_buf_init(&acc.buf, 0);
    use_fd(base, fd, own);
    return SL_OK;
}

int sl_access_reopen(struct event_base *base, const char *target)
{
    bool own;
    int fd = open_target(target, &own);
    if (fd < 0 && target && strcmp(target, "off") != 0) {
        sl_err("access log %s: %s; keeping the current one", target, strerror(errno));
        return SL_EIO;
    }
    if (acc.fd >= 0)
        sl_access_flush(); /* what the old target takes; a stalled pipe's rest goes to the new */
    if (acc.fd >= 0 && acc.own_fd)
        close(acc.fd);
    if (fd < 0)
        sl_buf_reset(&acc.buf); /* the log is off now */
    use_fd(base, fd, own);
    return SL_OK;
}

sl_buf *sl_access_begin(void)
{
    if (acc.fd < 0)
        return NULL;
    acc.line_start = acc.buf.len;
    return &acc.buf;
}

void sl_access_commit(void)
{
    sl_buf_append(&acc.buf, "\n", 1);
    if (acc.buf.err || acc.buf.len > ACCESS_MAX_BUFFERED) {
        /* out of memory mid-line, or the reader is stuck: drop the line, count */
        sl_buf_truncate(&acc.buf, acc.line_start);
        acc.dropped++;
        return;
    }
    if (acc.buf.len >= ACCESS_HIGH_WATER || !acc.flush_ev) {
        sl_access_flush();
    } else if (!acc.flush_pending) {
        acc.flush_pending = true;
        event_active(acc.flush_ev, 0, 0);
    }
}

void sl_access_flush(void)
{
    size_t off = 0;
    while (off < acc.buf.len) {
        ssize_t n = write(acc.fd, acc.buf.p + off, acc.buf.len - off);
        if (n > 0) {
            off += (size_t)n;
            acc.written += (uint64_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            break; /* EAGAIN or error: keep the rest for the next flush */
        }
    }
    sl_buf_consume(&acc.buf, off);
    bound_page_cache();
}

void sl_access_close(void)
{
    if (acc.fd >= 0) {
        sl_access_flush();
        if (acc.own_fd)
            close(acc.fd);
    }
    if (acc.flush_ev)
        event_free(acc.flush_ev);
    sl_buf_free(&acc.buf);
    acc.fd = -1;
    acc.own_fd = false;
    acc.flush_ev = NULL;
    acc.flush_pending = false;
}

uint64_t sl_access_dropped(void)
{
    return acc.dropped;
}
