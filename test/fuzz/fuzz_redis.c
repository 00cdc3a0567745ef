/* fuzz_redis.c — what sluice does with bytes from Redis: replies as hiredis
 * reads them off the socket (fed in splits the input picks), stored cache
 * entries and stored answers checked and, when they pass, replayed as a stream. The reader uses
 * sluice's bounded reply objects, as every connection of sluice does. */
#include <hiredis/hiredis.h>

#include "sluice/answers.h"
#include "sluice/cache_entry.h"
#include "sluice/completion.h"

#include "reply_feed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A stored answer of an idempotency key or a stream (answers.h). */
static void use_answer(const redisReply *rep)
{
    sl_answer a;
    if (rep->type != REDIS_REPLY_STRING || sl_answer_decode(rep->str, rep->len, &a) != SL_OK)
        return;
    size_t frames = 0;
    for (const char *p = a.body.p, *end = p + a.body.len;
         (p = memmem(p, (size_t)(end - p), "\n\n", 2)); p += 2)
        frames++;
    (void)frames;
}

static void use_entry(const redisReply *rep)
{
    use_answer(rep);
    sl_cache_entry e;
    if (rep->type != REDIS_REPLY_STRING || sl_cache_entry_decode(rep->str, rep->len, &e) != SL_OK)
        return;
    sl_buf sse;
    sl_buf_init(&sse, 0);
    sl_replay_sse(e.json.p, e.json.len, e.prompt_tokens & 1, 4, &sse);
    sl_buf_free(&sse);
}

static void use_reply(const redisReply *rep)
{
    use_entry(rep);
    if (rep->type == REDIS_REPLY_ARRAY) /* MGET of the coalescing poll */
        for (size_t i = 0; i < rep->elements; i++)
            use_entry(rep->element[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_fuzz_feed_replies(data, size, use_reply);
    return 0;
}
