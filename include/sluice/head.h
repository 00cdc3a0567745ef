/* head.h — the fast parser of a plain HTTP/1.1 request head.
 *
 * Owns nothing: it reads a complete head (request line, header lines, the
 * blank line) that conn.c's scan already checked line by line (CRLF endings,
 * no NUL, no obs-fold, no space before a colon), and gives offsets into it.
 *
 * It takes only the shape every SDK and load tool sends: a known method, an
 * origin-form target, HTTP/1.0 or 1.1, token header names, printable values,
 * one plain Content-Length, Connection: close or keep-alive. Anything else
 * (Transfer-Encoding, Upgrade, an unusual byte anywhere, ...) returns false and
 * the connection layer hands the head to http_parser as before, so every
 * refusal and every edge keeps http_parser's answer. Where it accepts, it
 * agrees with http_parser field for field (test_head checks that on a corpus). */
#ifndef SLUICE_HEAD_H
#define SLUICE_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl_head_field {
    uint32_t no, nl, vo, vl; /* name and value (whitespace around it trimmed): offsets, lengths */
} sl_head_field;

typedef struct sl_head {
    unsigned method; /* enum http_method */
    unsigned http_minor;
    uint32_t url_o, url_l;
    uint64_t content_length; /* ULLONG_MAX: no Content-Length header */
    bool conn_close, conn_keep_alive;
    unsigned n_fields;
} sl_head;

/* p[0..n) is the whole head, ending with the blank line. Fills h and up to
 * max fields; false when the head is not in the plain shape (or has more than
 * max fields): parse it the general way. */
bool sl_head_parse(const char *p, size_t n, sl_head *h, sl_head_field *fields, unsigned max);

#endif
