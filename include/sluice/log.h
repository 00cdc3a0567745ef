/* log.h — the two logs: the operator's error log (stderr) and the access log.
 *
 * Owns: the access-log output buffer and file descriptor. Access lines are
 * appended to an in-memory buffer and flushed once per loop iteration (or when
 * the buffer passes its high-water mark), so the hot path never waits on a
 * write(2). A pipe that cannot take more keeps the bytes buffered up to a bound;
 * past it lines are dropped and counted, never blocking the loop. */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include "sluice/buf.h"

struct event_base;

void sl_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The running configuration's secrets (copied): scrubbed from every line.
 * (NULL, 0) frees them. */
void sl_log_set_secrets(char *const *v, size_t n);
#define sl_info(...) sl_log("info", __VA_ARGS__)
#define sl_warn(...) sl_log("warn", __VA_ARGS__)
#define sl_err(...)  sl_log("error", __VA_ARGS__)

/* Opens the access log target ("stdout", "stderr", "off" or a path). */
int sl_access_open(struct event_base *base, const char *target);
/* SIGHUP: opens target (again: a rotated file is reopened) and switches to it
 * after flushing what the old one takes; on failure keeps the old one. */
int sl_access_reopen(struct event_base *base, const char *target);
/* Returns the buffer to append one JSON line to (without the newline), or NULL
 * when the log is off. Call sl_access_commit() after appending. */
sl_buf *sl_access_begin(void);
void sl_access_commit(void);
void sl_access_flush(void);
void sl_access_close(void);
uint64_t sl_access_dropped(void);

#endif
