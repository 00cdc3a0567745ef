/* mock.c — sluice-mock: an OpenAI- and Anthropic-compatible stand-in provider.
 *
 * Deterministic answers derived from the request, real usage counts, SSE with
 * configurable chunks and delays, and failure injection, all on one libevent
 * loop (the same stack as sluice, so it is never a benchmark's bottleneck).
 * Control: POST /_mock/config, POST /_mock/reset, GET /_mock/stats,
 * GET /_mock/last (the last LLM request: path, headers, body). */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct knobs {
    int status, delay_ms, stream_chunks, chunk_delay_ms, fail_next, drop_after_chunks;
    int chunk_pad; /* bytes of "x_pad" in every streamed OpenAI chunk (big streams) */
    char retry_after[64];
    char *body;
    cJSON *headers; /* extra response headers of LLM answers: {"Name": "value"} */
} knobs;

static struct {
    struct event_base *base;
    knobs k;
    long requests, inflight, disconnects;
    long by_chat, by_completions, by_embeddings, by_messages, by_models;
    char *last; /* JSON of the last LLM request */
} m;

static void reset_knobs(void)
{
    free(m.k.body);
    cJSON_Delete(m.k.headers);
    memset(&m.k, 0, sizeof m.k);
    m.k.stream_chunks = 5;
}

typedef enum { API_CHAT, API_COMPLETIONS, API_EMBEDDINGS, API_MESSAGES } api;

typedef struct job {
    struct evhttp_request *req;
    api kind;
    bool stream, include_usage, gone;
    int status;
    char *model, *reply, *id;
    long prompt_tokens;
    long max_tokens;
    char **words;
    int n_words, sent_chunks, chunks;
    struct event *timer;
    struct event *watch; /* notices a client that hangs up while we delay */
    bool streaming;
    cJSON *input; /* embeddings */
} job;

static unsigned long long fnv(const char *s, size_t n)
{
    unsigned long long h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void job_free(job *j)
{
    if (j->timer)
        event_free(j->timer);
    if (j->watch)
        event_free(j->watch);
    for (int i = 0; i < j->n_words; i++)
        free(j->words[i]);
    free(j->words);
    free(j->model);
    free(j->reply);
    free(j->id);
    cJSON_Delete(j->input);
    free(j);
}

static void on_close(struct evhttp_connection *c, void *arg)
{
    (void)c;
    job *j = arg;
    if (!j->gone)
        m.disconnects++;
    j->gone = true;
}

static void finish(job *j);

/* evhttp does not read while a request is answered: peek at the socket to see
 * a client that left during a delay or a stream. */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    job *j = arg;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
        return;
    if (!j->gone)
        m.disconnects++;
    j->gone = true;
    if (j->timer)
        evtimer_del(j->timer);
    struct evhttp_connection *conn = evhttp_request_get_connection(j->req);
    if (conn)
        evhttp_connection_set_closecb(conn, NULL, NULL);
    if (j->streaming)
        evhttp_send_reply_end(j->req);
    else
        evhttp_send_reply(j->req, 500, NULL, NULL);
    finish(j);
}

static void finish(job *j)
{
    struct evhttp_connection *c = evhttp_request_get_connection(j->req);
    if (c)
        evhttp_connection_set_closecb(c, NULL, NULL);
    m.inflight--;
    job_free(j);
}

static void send_json(struct evhttp_request *req, int status, const char *body)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, strlen(body));
    evhttp_send_reply(req, status, NULL, b);
    evbuffer_free(b);
}

static void split_words(job *j)
{
    char *copy = strdup(j->reply);
    int cap = 16;
    j->words = malloc(sizeof(char *) * (size_t)cap);
    for (char *save = NULL, *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (j->n_words == cap)
            j->words = realloc(j->words, sizeof(char *) * (size_t)(cap *= 2));
        j->words[j->n_words++] = strdup(w);
    }
    free(copy);
}

static char *words_between(job *j, int from, int to)
{
    size_t len = 1;
    for (int i = from; i < to; i++)
        len += strlen(j->words[i]) + 1;
    char *s = calloc(1, len);
    for (int i = from; i < to; i++) {
        if (i > 0)
            strcat(s, " ");
        strcat(s, j->words[i]);
    }
    return s;
}

static const char *finish_reason(job *j)
{
    return j->max_tokens > 0 && j->n_words >= j->max_tokens ? "length" : "stop";
}

/* ---- plain answers ------------------------------------------------------------ */

static void answer_plain(job *j)
{
    cJSON *o = cJSON_CreateObject();
    long ct = j->n_words;
    if (j->kind == API_EMBEDDINGS) {
        cJSON_AddStringToObject(o, "object", "list");
        cJSON *data = cJSON_AddArrayToObject(o, "data");
        int n = cJSON_IsArray(j->input) ? cJSON_GetArraySize(j->input) : 1;
        for (int i = 0; i < n; i++) {
            cJSON *item = cJSON_IsArray(j->input) ? cJSON_GetArrayItem(j->input, i) : j->input;
            char *txt = cJSON_PrintUnformatted(item);
            unsigned long long h = fnv(txt, strlen(txt));
            free(txt);
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "object", "embedding");
            cJSON_AddNumberToObject(e, "index", i);
            cJSON *vec = cJSON_AddArrayToObject(e, "embedding");
            for (int d = 0; d < 8; d++)
                cJSON_AddItemToArray(
                    vec, cJSON_CreateNumber((double)((h >> (d * 8)) & 0xff) / 255.0 - 0.5));
            cJSON_AddItemToArray(data, e);
        }
        cJSON_AddStringToObject(o, "model", j->model);
        cJSON *u = cJSON_AddObjectToObject(o, "usage");
        cJSON_AddNumberToObject(u, "prompt_tokens", (double)j->prompt_tokens);
        cJSON_AddNumberToObject(u, "total_tokens", (double)j->prompt_tokens);
    } else if (j->kind == API_MESSAGES) {
        cJSON_AddStringToObject(o, "id", j->id);
        cJSON_AddStringToObject(o, "type", "message");
        cJSON_AddStringToObject(o, "role", "assistant");
        cJSON_AddStringToObject(o, "model", j->model);
        cJSON *content = cJSON_AddArrayToObject(o, "content");
        cJSON *blk = cJSON_CreateObject();
        cJSON_AddStringToObject(blk, "type", "text");
        cJSON_AddStringToObject(blk, "text", j->reply);
        cJSON_AddItemToArray(content, blk);
        cJSON_AddStringToObject(o, "stop_reason",
                                strcmp(finish_reason(j), "length") ? "end_turn" : "max_tokens");
        cJSON_AddNullToObject(o, "stop_sequence");
        cJSON *u = cJSON_AddObjectToObject(o, "usage");
        cJSON_AddNumberToObject(u, "input_tokens", (double)j->prompt_tokens);
        cJSON_AddNumberToObject(u, "output_tokens", (double)ct);
    } else {
        bool chat = j->kind == API_CHAT;
        cJSON_AddStringToObject(o, "id", j->id);
        cJSON_AddStringToObject(o, "object", chat ? "chat.completion" : "text_completion");
        cJSON_AddNumberToObject(o, "created", 1700000000);
        cJSON_AddStringToObject(o, "model", j->model);
        cJSON *choices = cJSON_AddArrayToObject(o, "choices");
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", 0);
        if (chat) {
            cJSON *msg = cJSON_AddObjectToObject(ch, "message");
            cJSON_AddStringToObject(msg, "role", "assistant");
            cJSON_AddStringToObject(msg, "content", j->reply);
        } else {
            cJSON_AddStringToObject(ch, "text", j->reply);
        }
        cJSON_AddNullToObject(ch, "logprobs");
        cJSON_AddStringToObject(ch, "finish_reason", finish_reason(j));
        cJSON_AddItemToArray(choices, ch);
        cJSON *u = cJSON_AddObjectToObject(o, "usage");
        cJSON_AddNumberToObject(u, "prompt_tokens", (double)j->prompt_tokens);
        cJSON_AddNumberToObject(u, "completion_tokens", (double)ct);
        cJSON_AddNumberToObject(u, "total_tokens", (double)(j->prompt_tokens + ct));
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    send_json(j->req, 200, s);
    free(s);
    finish(j);
}

/* ---- streams --------------------------------------------------------------------- */

static void send_event(job *j, const char *event, cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    struct evbuffer *b = evbuffer_new();
    if (event)
        evbuffer_add_printf(b, "event: %s\n", event);
    evbuffer_add_printf(b, "data: %s\n\n", s ? s : "[DONE]");
    evhttp_send_reply_chunk(j->req, b);
    evbuffer_free(b);
    free(s);
    cJSON_Delete(o);
}

static cJSON *chunk_base(job *j)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object",
                            j->kind == API_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(o, "created", 1700000000);
    cJSON_AddStringToObject(o, "model", j->model);
    return o;
}

static void openai_piece(job *j, const char *text, const char *finish, bool role)
{
    cJSON *o = chunk_base(j);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", 0);
    if (j->kind == API_CHAT) {
        cJSON *d = cJSON_AddObjectToObject(ch, "delta");
        if (role)
            cJSON_AddStringToObject(d, "role", "assistant");
        if (text)
            cJSON_AddStringToObject(d, "content", text);
    } else {
        cJSON_AddStringToObject(ch, "text", text ? text : "");
    }
    cJSON_AddNullToObject(ch, "logprobs");
    if (finish)
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(choices, ch);
    if (m.k.chunk_pad > 0) {
        char *pad = malloc((size_t)m.k.chunk_pad + 1);
        memset(pad, 'p', (size_t)m.k.chunk_pad);
        pad[m.k.chunk_pad] = '\0';
        cJSON_AddStringToObject(o, "x_pad", pad);
        free(pad);
    }
    send_event(j, NULL, o);
}

static void anthropic_event(job *j, const char *type, const char *text, int phase)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    if (phase == 0) { /* message_start */
        cJSON *msg = cJSON_AddObjectToObject(o, "message");
        cJSON_AddStringToObject(msg, "id", j->id);
        cJSON_AddStringToObject(msg, "type", "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON_AddStringToObject(msg, "model", j->model);
        cJSON_AddArrayToObject(msg, "content");
        cJSON_AddNullToObject(msg, "stop_reason");
        cJSON *u = cJSON_AddObjectToObject(msg, "usage");
        cJSON_AddNumberToObject(u, "input_tokens", (double)j->prompt_tokens);
        cJSON_AddNumberToObject(u, "output_tokens", 1);
    } else if (phase == 1) { /* content_block_start */
        cJSON_AddNumberToObject(o, "index", 0);
        cJSON *b = cJSON_AddObjectToObject(o, "content_block");
        cJSON_AddStringToObject(b, "type", "text");
        cJSON_AddStringToObject(b, "text", "");
    } else if (phase == 2) { /* delta */
        cJSON_AddNumberToObject(o, "index", 0);
        cJSON *d = cJSON_AddObjectToObject(o, "delta");
        cJSON_AddStringToObject(d, "type", "text_delta");
        cJSON_AddStringToObject(d, "text", text);
    } else if (phase == 3) { /* content_block_stop */
        cJSON_AddNumberToObject(o, "index", 0);
    } else if (phase == 4) { /* message_delta */
        cJSON *d = cJSON_AddObjectToObject(o, "delta");
        cJSON_AddStringToObject(d, "stop_reason",
                                strcmp(finish_reason(j), "length") ? "end_turn" : "max_tokens");
        cJSON_AddNullToObject(d, "stop_sequence");
        cJSON *u = cJSON_AddObjectToObject(o, "usage");
        cJSON_AddNumberToObject(u, "output_tokens", j->n_words);
    }
    send_event(j, type, o);
}

static void stream_step(evutil_socket_t fd, short what, void *arg);

static void schedule(job *j, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (!j->timer)
        j->timer = evtimer_new(m.base, stream_step, j);
    evtimer_add(j->timer, &tv);
}

static void stream_end(job *j)
{
    if (j->kind == API_MESSAGES) {
        anthropic_event(j, "content_block_stop", NULL, 3);
        anthropic_event(j, "message_delta", NULL, 4);
        anthropic_event(j, "message_stop", NULL, 5);
    } else {
        openai_piece(j, j->kind == API_CHAT ? NULL : "", finish_reason(j), false);
        if (j->include_usage) {
            cJSON *o = chunk_base(j);
            cJSON_AddArrayToObject(o, "choices");
            cJSON *u = cJSON_AddObjectToObject(o, "usage");
            cJSON_AddNumberToObject(u, "prompt_tokens", (double)j->prompt_tokens);
            cJSON_AddNumberToObject(u, "completion_tokens", j->n_words);
            cJSON_AddNumberToObject(u, "total_tokens", (double)(j->prompt_tokens + j->n_words));
            send_event(j, NULL, o);
        }
        send_event(j, NULL, NULL);
    }
    evhttp_send_reply_end(j->req);
    finish(j);
}

static void stream_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    job *j = arg;
    if (j->gone) {
        evhttp_send_reply_end(j->req); /* frees the detached request */
        finish(j);
        return;
    }
    if (j->sent_chunks >= j->chunks) {
        stream_end(j);
        return;
    }
    if (m.k.drop_after_chunks > 0 && j->sent_chunks >= m.k.drop_after_chunks) {
        struct evhttp_connection *c = evhttp_request_get_connection(j->req);
        evhttp_connection_set_closecb(c, NULL, NULL);
        evhttp_connection_free(c); /* abrupt close, no terminating chunk */
        m.inflight--;
        job_free(j);
        return;
    }
    int per = (j->n_words + j->chunks - 1) / (j->chunks ? j->chunks : 1);
    int from = j->sent_chunks * per, to = from + per;
    if (to > j->n_words)
        to = j->n_words;
    char *text = words_between(j, from < j->n_words ? from : j->n_words, to);
    if (j->kind == API_MESSAGES)
        anthropic_event(j, "content_block_delta", text, 2);
    else
        openai_piece(j, text, NULL, false);
    free(text);
    j->sent_chunks++;
    schedule(j, m.k.chunk_delay_ms);
}

static void start_stream(job *j)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(j->req);
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_send_reply_start(j->req, 200, "OK");
    j->streaming = true;
    j->chunks = m.k.stream_chunks > 0 ? m.k.stream_chunks : 1;
    if (j->kind == API_MESSAGES) {
        anthropic_event(j, "message_start", NULL, 0);
        anthropic_event(j, "content_block_start", NULL, 1);
        anthropic_event(j, "ping", NULL, 6);
    } else {
        openai_piece(j, j->kind == API_CHAT ? "" : "", NULL, j->kind == API_CHAT);
    }
    schedule(j, m.k.chunk_delay_ms);
}

static void respond(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    job *j = arg;
    if (j->gone) {
        evhttp_send_reply(j->req, 500, NULL, NULL); /* frees the detached request */
        finish(j);
        return;
    }
    const cJSON *h;
    cJSON_ArrayForEach(h, m.k.headers)
    {
        if (cJSON_IsString(h))
            evhttp_add_header(evhttp_request_get_output_headers(j->req), h->string, h->valuestring);
    }
    if (j->status != 200) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"error\":{\"message\":\"mock "
                 "error\",\"type\":\"server_error\",\"param\":null,\"code\":\"mock_%d\"}}",
                 j->status);
        if ((j->status == 429 || j->status == 503) && m.k.retry_after[0])
            evhttp_add_header(evhttp_request_get_output_headers(j->req), "Retry-After",
                              m.k.retry_after);
        send_json(j->req, j->status, body);
        finish(j);
        return;
    }
    if (m.k.body) {
        send_json(j->req, 200, m.k.body);
        finish(j);
        return;
    }
    if (j->stream && j->kind != API_EMBEDDINGS) {
        if (j->timer) {
            event_free(j->timer);
            j->timer = NULL;
        }
        start_stream(j);
    } else {
        answer_plain(j);
    }
}

/* ---- request parsing ------------------------------------------------------------------ */

static size_t text_of(cJSON *c, char *last, size_t lastcap)
{
    size_t n = 0;
    if (cJSON_IsString(c)) {
        n = strlen(c->valuestring);
        snprintf(last, lastcap, "%s", c->valuestring);
    } else if (cJSON_IsArray(c)) {
        cJSON *p;
        cJSON_ArrayForEach(p, c)
        {
            cJSON *t = cJSON_GetObjectItem(p, "text");
            if (cJSON_IsString(t)) {
                n += strlen(t->valuestring);
                snprintf(last, lastcap, "%s", t->valuestring);
            } else if (cJSON_IsString(p)) {
                n += strlen(p->valuestring);
                snprintf(last, lastcap, "%s", p->valuestring);
            }
        }
    }
    return n;
}

static void record_last(struct evhttp_request *req, const char *path, const char *body, size_t len)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", path);
    cJSON *h = cJSON_AddObjectToObject(o, "headers");
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    for (struct evkeyval *kv = in->tqh_first; kv; kv = kv->next.tqe_next) {
        char name[128];
        size_t i = 0;
        for (; kv->key[i] && i < sizeof name - 1; i++)
            name[i] = (char)tolower((unsigned char)kv->key[i]);
        name[i] = '\0';
        cJSON_AddStringToObject(h, name, kv->value);
    }
    char *b = malloc(len + 1);
    memcpy(b, body, len);
    b[len] = '\0';
    cJSON_AddStringToObject(o, "body", b);
    free(b);
    free(m.last);
    m.last = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
}

static void handle_llm(struct evhttp_request *req, api kind, const char *path)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    m.requests++;
    record_last(req, path, body, len);
    cJSON *root = cJSON_ParseWithLength(body, len);
    cJSON *model = cJSON_GetObjectItem(root, "model");
    if (!cJSON_IsString(model)) {
        send_json(
            req, 400,
            "{\"error\":{\"message\":\"model is "
            "required\",\"type\":\"invalid_request_error\",\"param\":\"model\",\"code\":null}}");
        cJSON_Delete(root);
        return;
    }
    job *j = calloc(1, sizeof(*j));
    j->req = req;
    j->kind = kind;
    j->status = 200;
    j->model = strdup(model->valuestring);
    cJSON *st = cJSON_GetObjectItem(root, "stream");
    j->stream = cJSON_IsTrue(st);
    cJSON *so = cJSON_GetObjectItem(root, "stream_options");
    j->include_usage = cJSON_IsTrue(cJSON_GetObjectItem(so, "include_usage"));
    cJSON *mt = cJSON_GetObjectItem(root, "max_tokens");
    if (!mt)
        mt = cJSON_GetObjectItem(root, "max_completion_tokens");
    j->max_tokens = cJSON_IsNumber(mt) ? (long)mt->valuedouble : 0;
    char last[8192] = "";
    size_t bytes = 0;
    if (kind == API_CHAT || kind == API_MESSAGES) {
        cJSON *msg;
        cJSON_ArrayForEach(msg, cJSON_GetObjectItem(root, "messages")) bytes +=
            text_of(cJSON_GetObjectItem(msg, "content"), last, sizeof last);
        cJSON *sys = cJSON_GetObjectItem(root, "system");
        char ignore[8];
        bytes += sys ? text_of(sys, ignore, sizeof ignore) : 0;
    } else {
        cJSON *p = cJSON_GetObjectItem(root, kind == API_EMBEDDINGS ? "input" : "prompt");
        bytes = text_of(p, last, sizeof last);
        if (kind == API_EMBEDDINGS)
            j->input = cJSON_Duplicate(p, 1);
    }
    j->prompt_tokens = (long)((bytes + 3) / 4);
    if (j->prompt_tokens < 1)
        j->prompt_tokens = 1;
    /* Derived from what the model is asked, not from transport options such as
     * `stream`, so a streamed and a plain twin get the same answer. */
    unsigned long long h = fnv(last, strlen(last)) ^ (fnv(j->model, strlen(j->model)) * 31) ^
                           (unsigned long long)bytes;
    char idbuf[64];
    snprintf(idbuf, sizeof idbuf, "%s-mock-%012llx", kind == API_MESSAGES ? "msg" : "chatcmpl",
             h & 0xffffffffffffull);
    j->id = strdup(idbuf);
    char reply[4096];
    const char *scripted = strstr(last, "MOCK_REPLY:"); /* tests script the model's answer */
    if (scripted)
        snprintf(reply, sizeof reply, "%s", scripted + 11);
    else
        snprintf(reply, sizeof reply, "mock reply to: %.40s [%06llx]", last, h & 0xffffff);
    j->reply = strdup(reply);
    split_words(j);
    if (j->max_tokens > 0 && j->n_words > j->max_tokens) {
        for (int i = (int)j->max_tokens; i < j->n_words; i++)
            free(j->words[i]);
        j->n_words = (int)j->max_tokens;
        free(j->reply);
        j->reply = words_between(j, 0, j->n_words);
    }
    cJSON_Delete(root);
    if (m.k.fail_next > 0) {
        m.k.fail_next--;
        j->status = 500;
    } else if (m.k.status && m.k.status != 200) {
        j->status = m.k.status;
    }
    m.inflight++;
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    evhttp_connection_set_closecb(conn, on_close, j);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
    if (bev && bufferevent_getfd(bev) >= 0) {
        j->watch = event_new(m.base, bufferevent_getfd(bev), EV_READ, on_readable, j);
        event_add(j->watch, NULL);
    }
    if (m.k.delay_ms > 0) {
        j->timer = evtimer_new(m.base, respond, j);
        struct timeval tv = {m.k.delay_ms / 1000, (m.k.delay_ms % 1000) * 1000};
        evtimer_add(j->timer, &tv);
    } else {
        respond(-1, 0, j);
    }
}

static void handle_config(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    cJSON *o =
        cJSON_ParseWithLength(len ? (const char *)evbuffer_pullup(in, -1) : "{}", len ? len : 2);
    struct {
        const char *name;
        int *field;
    } ints[] = {
        {"status", &m.k.status},
        {"delay_ms", &m.k.delay_ms},
        {"stream_chunks", &m.k.stream_chunks},
        {"chunk_delay_ms", &m.k.chunk_delay_ms},
        {"fail_next", &m.k.fail_next},
        {"drop_after_chunks", &m.k.drop_after_chunks},
        {"chunk_pad", &m.k.chunk_pad},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        cJSON *v = cJSON_GetObjectItem(o, ints[i].name);
        if (cJSON_IsNumber(v))
            *ints[i].field = v->valueint;
    }
    cJSON *ra = cJSON_GetObjectItem(o, "retry_after");
    if (cJSON_IsString(ra))
        snprintf(m.k.retry_after, sizeof m.k.retry_after, "%s", ra->valuestring);
    cJSON *hd = cJSON_GetObjectItem(o, "headers");
    if (cJSON_IsObject(hd)) {
        cJSON_Delete(m.k.headers);
        m.k.headers = cJSON_Duplicate(hd, 1);
    }
    cJSON *b = cJSON_GetObjectItem(o, "body");
    if (cJSON_IsString(b)) {
        free(m.k.body);
        m.k.body = b->valuestring[0] ? strdup(b->valuestring) : NULL;
    } else if (cJSON_IsNull(b)) {
        free(m.k.body);
        m.k.body = NULL;
    }
    cJSON_Delete(o);
    send_json(req, 200, "{\"ok\":true}");
}

static void handle_stats(struct evhttp_request *req)
{
    char body[512];
    snprintf(
        body, sizeof body,
        "{\"requests\":%ld,\"inflight\":%ld,\"disconnects\":%ld,\"by_path\":{\"/v1/chat/"
        "completions\":%ld,"
        "\"/v1/completions\":%ld,\"/v1/embeddings\":%ld,\"/v1/messages\":%ld,\"/v1/models\":%ld}}",
        m.requests, m.inflight, m.disconnects, m.by_chat, m.by_completions, m.by_embeddings,
        m.by_messages, m.by_models);
    send_json(req, 200, body);
}

static void handle_models(struct evhttp_request *req)
{
    m.by_models++;
    send_json(req, 200,
              "{\"object\":\"list\",\"data\":["
              "{\"id\":\"mock-gpt\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":"
              "\"sluice-mock\"},"
              "{\"id\":\"gpt-4o-mini\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":"
              "\"sluice-mock\"},"
              "{\"id\":\"claude-3-5-haiku\",\"object\":\"model\",\"created\":1700000000,\"owned_"
              "by\":\"sluice-mock\"}]}");
}

static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const char *uri = evhttp_request_get_uri(req);
    char path[512];
    snprintf(path, sizeof path, "%s", uri);
    char *q = strchr(path, '?');
    if (q)
        *q = '\0';
    bool post = evhttp_request_get_command(req) == EVHTTP_REQ_POST;
    if (post && strcmp(path, "/v1/chat/completions") == 0) {
        m.by_chat++;
        handle_llm(req, API_CHAT, path);
    } else if (post && strcmp(path, "/v1/completions") == 0) {
        m.by_completions++;
        handle_llm(req, API_COMPLETIONS, path);
    } else if (post && strcmp(path, "/v1/embeddings") == 0) {
        m.by_embeddings++;
        handle_llm(req, API_EMBEDDINGS, path);
    } else if (post && strcmp(path, "/v1/messages") == 0) {
        m.by_messages++;
        handle_llm(req, API_MESSAGES, path);
    } else if (strcmp(path, "/v1/models") == 0) {
        handle_models(req);
    } else if (post && strcmp(path, "/_mock/config") == 0) {
        handle_config(req);
    } else if (post && strcmp(path, "/_mock/reset") == 0) {
        reset_knobs();
        m.requests = m.disconnects = 0;
        m.by_chat = m.by_completions = m.by_embeddings = m.by_messages = m.by_models = 0;
        send_json(req, 200, "{\"ok\":true}");
    } else if (strcmp(path, "/_mock/stats") == 0) {
        handle_stats(req);
    } else if (strcmp(path, "/_mock/last") == 0) {
        send_json(req, 200, m.last ? m.last : "{}");
    } else {
        send_json(req, 404,
                  "{\"error\":{\"message\":\"not "
                  "found\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}");
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    event_base_loopexit(m.base, NULL);
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:9090";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen = argv[++i];
    }
    char host[256];
    snprintf(host, sizeof host, "%s", listen);
    char *colon = strrchr(host, ':');
    if (!colon) {
        fprintf(stderr, "usage: sluice-mock --listen HOST:PORT\n");
        return 2;
    }
    *colon = '\0';
    int port = atoi(colon + 1);
    signal(SIGPIPE, SIG_IGN);
    reset_knobs();
    m.base = event_base_new();
    struct evhttp *http = evhttp_new(m.base);
    evhttp_set_max_body_size(http, 64 << 20);
    evhttp_set_gencb(http, on_request, NULL);
    struct evhttp_bound_socket *bound =
        evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
    if (!bound) {
        fprintf(stderr, "sluice-mock: cannot listen on %s\n", listen);
        return 1;
    }
    int one = 1; /* inherited by accepted sockets: chunks leave at once */
    setsockopt(evhttp_bound_socket_get_fd(bound), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct event *s1 = evsignal_new(m.base, SIGTERM, on_signal, NULL);
    struct event *s2 = evsignal_new(m.base, SIGINT, on_signal, NULL);
    evsignal_add(s1, NULL);
    evsignal_add(s2, NULL);
    fprintf(stderr, "sluice-mock listening on %s\n", listen);
    event_base_dispatch(m.base);
    event_free(s1);
    event_free(s2);
    evhttp_free(http);
    event_base_free(m.base);
    reset_knobs();
    free(m.last);
    return 0;
}
