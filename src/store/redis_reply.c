/* redis_reply.c — redisReply objects built like hiredis builds them, with a
 * bound on arrays (see redis_reply.h). */
#include "sluice/redis_reply.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

/* A new reply, linked into its parent array when it has one. */
static redisReply *new_reply(const redisReadTask *task, int type)
{
    redisReply *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->type = type;
    if (task->parent) {
        redisReply *parent = task->parent->obj;
        if (parent->type != REDIS_REPLY_ARRAY || task->idx < 0 ||
            (size_t)task->idx >= parent->elements) {
            free(r);
            return NULL;
        }
        parent->element[task->idx] = r;
    }
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    char *buf = malloc(len + 1);
    if (!buf)
        return NULL;
    redisReply *r = new_reply(task, task->type);
    if (!r) {
        free(buf);
        return NULL;
    }
    memcpy(buf, str, len);
    buf[len] = '\0';
    r->str = buf;
    r->len = len;
    return r;
}

static void *create_array(const redisReadTask *task, int elements)
{
    if (elements > SL_REDIS_MAX_ELEMENTS)
        return NULL; /* the reader reports an error; the connection is dropped */
    redisReply **table = NULL;
    if (elements > 0 && !(table = calloc((size_t)elements, sizeof(*table))))
        return NULL;
    redisReply *r = new_reply(task, REDIS_REPLY_ARRAY);
    if (!r) {
        free(table);
        return NULL;
    }
    r->element = table;
    r->elements = elements > 0 ? (size_t)elements : 0;
    return r;
}

static void *create_integer(const redisReadTask *task, long long value)
{
    redisReply *r = new_reply(task, REDIS_REPLY_INTEGER);
    if (r)
        r->integer = value;
    return r;
}

static void *create_nil(const redisReadTask *task)
{
    return new_reply(task, REDIS_REPLY_NIL);
}

redisReplyObjectFunctions sl_redis_bounded_replies = {
    create_string, create_array, create_integer, create_nil, freeReplyObject,
};
