/* head.h — the fast parser of a plain HTTP/1.1 head: a request's (for the
 * connection layer) or an answer's (for the upstream client, h1_client.c).
 *
 * Owns nothing: it reads a complete head (first line, header lines, the
 * blank line) and gives offsets into it. Every byte is in one of its
 * classes or ends the fast path (a bare CR or LF, a NUL, an obs-fold, a space
 * before a colon), so an answer's head needs no scan before it (test_head
 * compares answers unscanned); a request's head has passed conn.c's line
 * scan first, for the connection layer's own refusals.
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
    unsigned method; /* enum http_method (a request) */
    unsigned status; /* 200..599 (an answer) */
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
/* The same for an answer head: a final status (2xx-5xx), "HTTP/1.x SSS reason". */
bool sl_head_parse_answer(const char *p, size_t n, sl_head *h, sl_head_field *fields, unsigned max);

#endif
