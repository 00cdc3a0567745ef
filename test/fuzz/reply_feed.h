/* reply_feed.h — the fuzz targets' Redis socket: bytes fed to a hiredis reader
 * with sluice's bounded reply objects (as every connection of sluice reads),
 * in splits the input picks (its first byte), each reply read handed to use. */
#ifndef SLUICE_FUZZ_REPLY_FEED_H
#define SLUICE_FUZZ_REPLY_FEED_H

#include <hiredis/hiredis.h>

#include "sluice/redis_reply.h"
#include "sluice/util.h"

static void sl_fuzz_feed_replies(const uint8_t *data, size_t size,
                                 void (*use)(const redisReply *rep))
{
    redisReader *rd = redisReaderCreateWithFunctions(&sl_redis_bounded_replies);
    if (!rd)
        return;
    size_t step = size ? (size_t)data[0] % 13 + 1 : 1;
    for (size_t off = 0; off < size; off += step) {
        if (redisReaderFeed(rd, (const char *)data + off, SL_MIN(step, size - off)) != REDIS_OK)
            break;
        void *rep = NULL;
        while (redisReaderGetReply(rd, &rep) == REDIS_OK && rep) {
            use(rep);
            freeReplyObject(rep);
            rep = NULL;
        }
        if (rd->err)
            break;
    }
    redisReaderFree(rd);
}

#endif
