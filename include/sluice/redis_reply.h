/* redis_reply.h — hiredis reply objects with bounds.
 *
 * hiredis 0.14 allocates an array reply's element table as soon as it reads
 * the header: "*566666666\r\n" from a hostile or broken server costs 4.5 GB
 * before one element arrives (found by fuzz_redis). These reply functions
 * build the same redisReply objects (freeReplyObject frees them) but refuse
 * arrays over SL_REDIS_MAX_ELEMENTS: the reader then fails, and the client
 * drops the connection and reconnects. Every reader sluice creates uses them. */
#ifndef SLUICE_REDIS_REPLY_H
#define SLUICE_REDIS_REPLY_H

#include <hiredis/read.h>

/* The largest array sluice ever asks for is the SLA dashboard's ticket list. */
#define SL_REDIS_MAX_ELEMENTS (1 << 22)

extern redisReplyObjectFunctions sl_redis_bounded_replies;

/* Makes reader use the bounded reply functions. */
static inline void sl_redis_reader_bound(redisReader *reader)
{
    reader->fn = &sl_redis_bounded_replies;
}

#endif
