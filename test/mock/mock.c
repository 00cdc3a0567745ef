/* mock.c — sluice-mock: an OpenAI- and Anthropic-compatible stand-in provider.
 *
 * Deterministic answers derived from the request, real usage counts, SSE with
 * configurable chunks and delays, and failure injection, all on one libevent
 * loop (the same stack as sluice, so it is never a benchmark's bottleneck).
 * Control: POST /_mock/config, POST /_mock/reset, GET /_mock/stats,
 * GET /_mock/last (the last LLM request: path, headers, body; also DELETE
 * /v1/responses/{id}, which answers deleted: true),
 * POST /v1/traces (an OTLP sink: drops the spans, answers 200),
 * GET /_mock/traceparents (the W3C trace context of the last 256 LLM requests:
 * [{"traceparent","tracestate","request_id"}], null where absent; reset clears it).
 *
 * Routes beyond chat / completions / embeddings / messages / models (the block
 * "Responses API, tool calls, ..." near the end):
 *   POST /v1/responses             plain and stream: true (the documented event
 *                                  sequence, each event with sequence_number);
 *                                  previous_response_id accepted and echoed
 *   POST /v1/messages/count_tokens {"input_tokens"}: what /v1/messages reports
 *   GET  /v1/models                Anthropic's shape when anthropic-version is sent
 *   POST /v1/audio/transcriptions, /v1/audio/translations (multipart): text
 *                                  from the uploaded file's size
 *   POST /v1/files (multipart), /v1/moderations (MOCK_FLAG flags an input),
 *   POST /v1/audio/speech          binary bytes, 256 + 32 per input character
 * Tool calls (chat, messages, responses): when tools are given, the last turn
 * is not a tool result, and tool_choice forces one or the last text says
 * MOCK_TOOL (MOCK_TOOL:name picks it); arguments fill the schema's properties.
 * Knobs beside the original ones: cached_tokens, cache_write_tokens,
 * cache_write_1h_tokens, reasoning_tokens (usage fields), no_responses (404 on
 * /v1/responses, like vLLM), sse_body (a stream's whole answer as raw SSE
 * bytes; `body` is the same for plain answers). Anthropic blocks with cache_control are written
 * to the prompt cache the first time and read on a repeat. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
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
    int echo_key;  /* 1 (true): a 401 quoting the credential received; 2 ("stream"): a
                      stream whose first event is an error quoting it */
    int chunk_pad; /* bytes of "x_pad" in every streamed OpenAI chunk (big streams) */
    char retry_after[64];
    char *body;
    cJSON *headers; /* extra response headers of LLM answers: {"Name": "value"} */
} knobs;

static struct {
    struct event_base *base;
    knobs k;
    long requests, inflight, disconnects;
    long connections;  /* accepted since start or the last reset: keep-alive reuse is visible */
    long otlp_exports; /* POST /v1/traces taken (bench) */
    long by_chat, by_completions, by_embeddings, by_messages, by_models;
    char *last;    /* JSON of the last LLM request */
    cJSON *traces; /* the trace context each LLM request carried, oldest first */
} m;

/* Knobs and counters of the later routes (Responses, count_tokens, uploads,
 * prompt-cache usage): kept apart from `knobs` so each part reads alone. */
static struct {
    int cached_tokens, cache_write_tokens, cache_write_1h_tokens, reasoning_tokens;
    bool no_responses; /* act as a provider without /v1/responses (vLLM, Ollama) */
    char *sse_body;    /* a stream's whole answer, as raw SSE bytes (thinking blocks, ...) */
    long by_responses, by_count_tokens, by_uploads, by_other;
    unsigned long long seen[64]; /* prompts seen with cache_control: a read, not a write */
    int n_seen;
} mx;

static void reset_x(void);

static void reset_knobs(void)
{
    reset_x();
    free(m.k.body);
    cJSON_Delete(m.k.headers);
    memset(&m.k, 0, sizeof m.k);
    m.k.stream_chunks = 5;
}

typedef enum { API_CHAT, API_COMPLETIONS, API_EMBEDDINGS, API_MESSAGES, API_RESPONSES } api;

typedef struct job {
    struct evhttp_request *req;
    api kind;
    bool stream, include_usage, gone;
    bool logprobs; /* chat: the request asked for logprobs */
    int status;
    char *model, *reply, *id;
    char *credential; /* the Authorization (or x-api-key) header received */
    long prompt_tokens;
    long max_tokens;
    char **words;
    int n_words, sent_chunks, chunks;
    struct event *timer;
    struct event *watch; /* notices a client that hangs up while we delay */
    bool streaming;
    cJSON *input; /* embeddings */
    /* Responses API, tool calls, prompt-cache usage */
    cJSON *tool; /* the tool call the answer makes: {"name", "arguments" (a JSON string)} */
    char *prev_id;
    long cached, cache_write, cache_write_1h, reasoning;
    int seq;
} job;

static bool x_plain(job *j);
static void tool_plain_fix(job *j, cJSON *o);
static bool x_stream_start(job *j);
static bool x_stream_piece(job *j, const char *text);
static bool x_stream_end(job *j);
static void x_usage_openai(job *j, cJSON *u);
static void x_usage_anthropic(job *j, cJSON *u);
static size_t x_input_text(cJSON *root, api kind, char *last, size_t lastcap);
static void x_parse(job *j, cJSON *root, const char *last, unsigned long long h);
static bool x_route(struct evhttp_request *req, const char *path, bool post);
static void x_config(cJSON *o);

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
    free(j->credential);
    cJSON_Delete(j->input);
    cJSON_Delete(j->tool);
    free(j->prev_id);
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

/* Sends o as a JSON answer and frees it. */
static void send_cjson(struct evhttp_request *req, int status, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    send_json(req, status, s ? s : "{}");
    free(s);
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

/* Chat answers carry what OpenAI's do beyond the text, the same in both
 * forms, so that a test can compare a cached replay with a direct answer. */
static void add_chat_extras(job *j, cJSON *o)
{
    if (j->kind != API_CHAT)
        return;
    cJSON_AddStringToObject(o, "system_fingerprint", "fp_mock");
    cJSON_AddStringToObject(o, "service_tier", "default");
}

static void add_usage(job *j, cJSON *o, long completion)
{
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)j->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)completion);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(j->prompt_tokens + completion));
    x_usage_openai(j, u); /* tool, cache and reasoning knobs */
    if (j->kind != API_CHAT)
        return;
    if (!cJSON_GetObjectItem(u, "prompt_tokens_details")) {
        cJSON *pd = cJSON_AddObjectToObject(u, "prompt_tokens_details");
        cJSON_AddNumberToObject(pd, "cached_tokens", 0);
        cJSON_AddNumberToObject(pd, "audio_tokens", 0);
    }
    if (!cJSON_GetObjectItem(u, "completion_tokens_details"))
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "completion_tokens_details"),
                                "reasoning_tokens", 0);
}

/* choice.logprobs for words [from, to): one token per word, or null. */
static void add_logprobs(job *j, cJSON *ch, int from, int to)
{
    if (!j->logprobs || from >= to) {
        cJSON_AddNullToObject(ch, "logprobs");
        return;
    }
    cJSON *lp = cJSON_AddObjectToObject(ch, "logprobs");
    cJSON *content = cJSON_AddArrayToObject(lp, "content");
    for (int i = from; i < to; i++) {
        char tok[512];
        snprintf(tok, sizeof tok, "%s%s", i > 0 ? " " : "", j->words[i]);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "token", tok);
        cJSON_AddNumberToObject(e, "logprob", -0.125 * (i % 8));
        cJSON *bytes = cJSON_AddArrayToObject(e, "bytes");
        for (const char *c = tok; *c; c++)
            cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)*c));
        cJSON_AddArrayToObject(e, "top_logprobs");
        cJSON_AddItemToArray(content, e);
    }
    cJSON_AddNullToObject(lp, "refusal");
}

/* ---- embeddings ---------------------------------------------------------------- */

/* A word's place and weight in a mock embedding. Question words and
 * articles are dropped and a plural "s" (or a possessive) is cut, so
 * "What's the capital of France?" and "what is france's capital" embed the
 * same; negations and numbers weigh little, as they do in real embedding
 * models (which is why sluice's semantic guard exists: tests rely on a
 * negated or re-numbered question landing above the threshold). */
enum { EMBED_DIMS = 256 };

static void embed_word(char *w, size_t n, float *v)
{
    static const char *const stop[] = {"what", "whats",  "is",   "are", "the", "a",    "an", "of",
                                       "s",    "please", "tell", "me",  "do",  "does", "in", "to"};
    static const char *const light[] = {"not",  "no",     "never",  "without", "dont",
                                        "isnt", "doesnt", "cannot", "cant"};
    w[n] = '\0';
    for (size_t i = 0; i < sizeof stop / sizeof *stop; i++) {
        if (strcmp(w, stop[i]) == 0)
            return;
    }
    float weight = isdigit((unsigned char)w[0]) ? 0.15f : 1.0f;
    for (size_t i = 0; i < sizeof light / sizeof *light; i++)
        weight = strcmp(w, light[i]) == 0 ? 0.15f : weight;
    if (n > 3 && w[n - 1] == 's' && weight == 1.0f)
        w[--n] = '\0';
    unsigned long long h = fnv(w, n);
    v[h % EMBED_DIMS] += (h >> 32) & 1 ? weight : -weight;
}

/* A hashed bag of words, normalised: deterministic, paraphrases close. */
static void embed_item(cJSON *item, cJSON *out)
{
    float v[EMBED_DIMS] = {0};
    char *txt = cJSON_IsString(item) ? strdup(item->valuestring) : cJSON_PrintUnformatted(item);
    char word[64];
    size_t n = 0;
    for (const char *p = txt ? txt : "";; p++) {
        if (isalnum((unsigned char)*p)) {
            if (n < sizeof word - 1)
                word[n++] = (char)tolower((unsigned char)*p);
        } else if (*p != '\'') {
            if (n)
                embed_word(word, n, v);
            n = 0;
        }
        if (!*p)
            break;
    }
    free(txt);
    double norm = 0;
    for (int d = 0; d < EMBED_DIMS; d++)
        norm += (double)v[d] * v[d];
    if (norm == 0)
        v[0] = 1, norm = 1;
    for (int d = 0; d < EMBED_DIMS; d++)
        cJSON_AddItemToArray(out, cJSON_CreateNumber(v[d] / sqrt(norm)));
}

/* ---- plain answers ------------------------------------------------------------ */

static void answer_plain(job *j)
{
    if (x_plain(j))
        return;
    cJSON *o = cJSON_CreateObject();
    long ct = j->n_words;
    if (j->kind == API_EMBEDDINGS) {
        cJSON_AddStringToObject(o, "object", "list");
        cJSON *data = cJSON_AddArrayToObject(o, "data");
        int n = cJSON_IsArray(j->input) ? cJSON_GetArraySize(j->input) : 1;
        for (int i = 0; i < n; i++) {
            cJSON *item = cJSON_IsArray(j->input) ? cJSON_GetArrayItem(j->input, i) : j->input;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "object", "embedding");
            cJSON_AddNumberToObject(e, "index", i);
            embed_item(item, cJSON_AddArrayToObject(e, "embedding"));
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
        x_usage_anthropic(j, u);
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
        add_logprobs(j, ch, 0, j->n_words);
        cJSON_AddStringToObject(ch, "finish_reason", finish_reason(j));
        cJSON_AddItemToArray(choices, ch);
        add_usage(j, o, ct);
        add_chat_extras(j, o);
    }
    if (j->tool && j->kind != API_RESPONSES)
        tool_plain_fix(j, o);
    send_cjson(j->req, 200, o);
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
    add_chat_extras(j, o);
    return o;
}

/* One chunk: text holds words [from, to) (for their logprobs). */
static void openai_piece(job *j, const char *text, const char *finish, bool role, int from, int to)
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
    add_logprobs(j, ch, from, to);
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
        x_usage_anthropic(j, u);
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
        x_usage_anthropic(j, u);
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
    if (x_stream_end(j)) {
        /* the Responses API's closing events */
    } else if (j->kind == API_MESSAGES) {
        anthropic_event(j, "content_block_stop", NULL, 3);
        anthropic_event(j, "message_delta", NULL, 4);
        anthropic_event(j, "message_stop", NULL, 5);
    } else {
        openai_piece(j, j->kind == API_CHAT ? NULL : "", finish_reason(j), false, 0, 0);
        if (j->include_usage) {
            cJSON *o = chunk_base(j);
            cJSON_AddArrayToObject(o, "choices");
            add_usage(j, o, j->n_words);
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
    if (from > j->n_words)
        from = j->n_words;
    char *text = words_between(j, from, to);
    if (x_stream_piece(j, text))
        ; /* a Responses API delta */
    else if (j->kind == API_MESSAGES)
        anthropic_event(j, "content_block_delta", text, 2);
    else
        openai_piece(j, text, NULL, false, from, to);
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
    if (x_stream_start(j)) {
        if (j->tool) { /* a tool call is sent whole: created, the call, completed */
            stream_end(j);
            return;
        }
    } else if (j->kind == API_MESSAGES) {
        anthropic_event(j, "message_start", NULL, 0);
        anthropic_event(j, "content_block_start", NULL, 1);
        anthropic_event(j, "ping", NULL, 6);
    } else {
        openai_piece(j, j->kind == API_CHAT ? "" : "", NULL, j->kind == API_CHAT, 0, 0);
    }
    schedule(j, m.k.chunk_delay_ms);
}

/* What a careless provider does: its error message quotes the key it got. */
static cJSON *echo_error(job *j)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "Incorrect API key provided: %s", j->credential ? j->credential : "");
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", "invalid_request_error");
    cJSON_AddNullToObject(e, "param");
    cJSON_AddStringToObject(e, "code", "invalid_api_key");
    return o;
}

static void respond_echo(job *j)
{
    cJSON *o = echo_error(j);
    if (m.k.echo_key == 2 && j->stream) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(j->req);
        evhttp_add_header(h, "Content-Type", "text/event-stream");
        evhttp_send_reply_start(j->req, 200, "OK");
        send_event(j, j->kind == API_MESSAGES ? "error" : NULL, o);
        evhttp_send_reply_end(j->req);
    } else {
        send_cjson(j->req, 401, o);
    }
    finish(j);
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
    if (m.k.echo_key) {
        respond_echo(j);
        return;
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
    if (j->stream && mx.sse_body) {
        evhttp_add_header(evhttp_request_get_output_headers(j->req), "Content-Type",
                          "text/event-stream");
        struct evbuffer *b = evbuffer_new();
        evbuffer_add(b, mx.sse_body, strlen(mx.sse_body));
        evhttp_send_reply(j->req, 200, NULL, b);
        evbuffer_free(b);
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
            cJSON *ty = cJSON_GetObjectItem(p, "type");
            if (cJSON_IsString(ty) && strcmp(ty->valuestring, "tool_result") == 0) {
                /* Anthropic: the model reads a tool_result's content (a string or
                 * text blocks) and input_tokens counts it, as the last turn */
                n += text_of(cJSON_GetObjectItem(p, "content"), last, lastcap);
            } else if (cJSON_IsString(t)) {
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

static void record_trace(struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    if (!m.traces)
        m.traces = cJSON_CreateArray();
    if (cJSON_GetArraySize(m.traces) >= 256)
        cJSON_DeleteItemFromArray(m.traces, 0);
    cJSON *o = cJSON_CreateObject();
    const char *names[] = {"traceparent", "tracestate", "x-request-id"};
    const char *keys[] = {"traceparent", "tracestate", "request_id"};
    for (int i = 0; i < 3; i++) {
        const char *v = evhttp_find_header(in, names[i]);
        if (v)
            cJSON_AddStringToObject(o, keys[i], v);
        else
            cJSON_AddNullToObject(o, keys[i]);
    }
    cJSON_AddItemToArray(m.traces, o);
}

static void record_last(struct evhttp_request *req, const char *path, const char *body, size_t len)
{
    record_trace(req);
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
    const char *cred = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!cred)
        cred = evhttp_find_header(evhttp_request_get_input_headers(req), "x-api-key");
    j->credential = cred ? strdup(cred) : NULL;
    cJSON *st = cJSON_GetObjectItem(root, "stream");
    j->stream = cJSON_IsTrue(st);
    cJSON *so = cJSON_GetObjectItem(root, "stream_options");
    j->include_usage = cJSON_IsTrue(cJSON_GetObjectItem(so, "include_usage"));
    j->logprobs = kind == API_CHAT && cJSON_IsTrue(cJSON_GetObjectItem(root, "logprobs"));
    cJSON *mt = cJSON_GetObjectItem(root, "max_tokens");
    if (!mt)
        mt = cJSON_GetObjectItem(root, "max_completion_tokens");
    if (!mt)
        mt = cJSON_GetObjectItem(root, "max_output_tokens"); /* Responses API */
    j->max_tokens = cJSON_IsNumber(mt) ? (long)mt->valuedouble : 0;
    char last[8192] = "";
    size_t bytes = 0;
    if (kind == API_RESPONSES) {
        bytes = x_input_text(root, kind, last, sizeof last);
    } else if (kind == API_CHAT || kind == API_MESSAGES) {
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
    x_parse(j, root, last, h);
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

/* ==== Responses API, tool calls, prompt-cache usage, Anthropic extras, uploads ====
 * Everything below is reached through the x_* hooks above, so the original
 * chat / completions / embeddings / messages answers stay byte for byte what
 * they were unless a request asks for something new (tools, cache_control, a
 * cache knob). */

static void reset_x(void)
{
    free(mx.sse_body);
    memset(&mx, 0, sizeof mx);
}

static void x_config(cJSON *o)
{
    struct {
        const char *name;
        int *field;
    } ints[] = {
        {"cached_tokens", &mx.cached_tokens},
        {"cache_write_tokens", &mx.cache_write_tokens},
        {"cache_write_1h_tokens", &mx.cache_write_1h_tokens},
        {"reasoning_tokens", &mx.reasoning_tokens},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        cJSON *v = cJSON_GetObjectItem(o, ints[i].name);
        if (cJSON_IsNumber(v))
            *ints[i].field = v->valueint;
    }
    cJSON *sb = cJSON_GetObjectItem(o, "sse_body");
    if (cJSON_IsString(sb) || cJSON_IsNull(sb)) {
        free(mx.sse_body);
        mx.sse_body = cJSON_IsString(sb) && sb->valuestring[0] ? strdup(sb->valuestring) : NULL;
    }
    cJSON *nr = cJSON_GetObjectItem(o, "no_responses");
    if (cJSON_IsBool(nr) || cJSON_IsNumber(nr))
        mx.no_responses = cJSON_IsTrue(nr) || (cJSON_IsNumber(nr) && nr->valueint != 0);
}

/* ---- request side ---- */

/* Responses input: a string, or items (messages with string or part content,
 * function_call_output items); `instructions` counts like a system prompt. */
static size_t x_input_text(cJSON *root, api kind, char *last, size_t lastcap)
{
    (void)kind;
    size_t bytes = 0;
    cJSON *in = cJSON_GetObjectItem(root, "input");
    if (cJSON_IsString(in)) {
        bytes = text_of(in, last, lastcap);
    } else {
        cJSON *it;
        cJSON_ArrayForEach(it, in)
        {
            cJSON *out = cJSON_GetObjectItem(it, "output");
            if (cJSON_IsString(out))
                bytes += text_of(out, last, lastcap);
            else
                bytes += text_of(cJSON_GetObjectItem(it, "content"), last, lastcap);
        }
    }
    char ignore[8];
    cJSON *ins = cJSON_GetObjectItem(root, "instructions");
    return bytes + (ins ? text_of(ins, ignore, sizeof ignore) : 0);
}

/* Bytes of the text blocks that carry cache_control (-1: no cache_control at all). */
static long cache_marked(const cJSON *c, bool *ttl_1h)
{
    long bytes = -1;
    for (const cJSON *e = c ? c->child : NULL; e; e = e->next) {
        long sub = -1;
        const cJSON *cc = cJSON_GetObjectItem(e, "cache_control");
        if (cJSON_IsObject(e) && cJSON_IsObject(cc)) {
            const cJSON *ttl = cJSON_GetObjectItem(cc, "ttl");
            const cJSON *text = cJSON_GetObjectItem(e, "text");
            if (cJSON_IsString(ttl) && strcmp(ttl->valuestring, "1h") == 0)
                *ttl_1h = true;
            sub = cJSON_IsString(text) ? (long)strlen(text->valuestring) : 0;
        } else if (cJSON_IsObject(e) || cJSON_IsArray(e)) {
            sub = cache_marked(e, ttl_1h);
        }
        if (sub >= 0)
            bytes = (bytes < 0 ? 0 : bytes) + sub;
    }
    return bytes;
}

/* Knobs set the cache counts outright (beside input_tokens). Without them an
 * Anthropic request whose blocks carry cache_control writes those blocks'
 * tokens the first time (5m or 1h) and reads them on a repeat; input_tokens
 * then counts only the rest, as Anthropic's does. */
static void x_cache(job *j, cJSON *root, unsigned long long h)
{
    j->cached = mx.cached_tokens;
    j->cache_write = mx.cache_write_tokens;
    j->cache_write_1h = mx.cache_write_1h_tokens;
    j->reasoning = mx.reasoning_tokens;
    bool ttl_1h = false;
    long marked = j->kind == API_MESSAGES ? cache_marked(root, &ttl_1h) : -1;
    if (j->cached || j->cache_write || j->cache_write_1h || marked < 0)
        return;
    long p = (marked + 3) / 4;
    if (p >= j->prompt_tokens)
        p = j->prompt_tokens - 1;
    if (p < 1)
        p = 1;
    j->prompt_tokens = j->prompt_tokens - p > 1 ? j->prompt_tokens - p : 1;
    for (int i = 0; i < mx.n_seen && i < 64; i++) {
        if (mx.seen[i] == h) {
            j->cached = p;
            return;
        }
    }
    mx.seen[mx.n_seen++ % 64] = h;
    *(ttl_1h ? &j->cache_write_1h : &j->cache_write) = p;
}

static bool last_is_tool_result(cJSON *root, api kind)
{
    cJSON *list = cJSON_GetObjectItem(root, kind == API_RESPONSES ? "input" : "messages");
    int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 0;
    cJSON *lastm = n ? cJSON_GetArrayItem(list, n - 1) : NULL;
    if (!lastm)
        return false;
    if (kind == API_RESPONSES) {
        cJSON *t = cJSON_GetObjectItem(lastm, "type");
        return cJSON_IsString(t) && strcmp(t->valuestring, "function_call_output") == 0;
    }
    cJSON *role = cJSON_GetObjectItem(lastm, "role");
    if (kind == API_CHAT)
        return cJSON_IsString(role) && strcmp(role->valuestring, "tool") == 0;
    cJSON *blk;
    cJSON_ArrayForEach(blk, cJSON_GetObjectItem(lastm, "content"))
    {
        cJSON *t = cJSON_GetObjectItem(blk, "type");
        if (cJSON_IsString(t) && strcmp(t->valuestring, "tool_result") == 0)
            return true;
    }
    return false;
}

/* The name a tool_choice forces, "" for "call any", NULL for none forced;
 * *off when it says "none". */
static const char *forced_tool(cJSON *tc, bool *off)
{
    *off = false;
    if (cJSON_IsString(tc)) {
        *off = strcmp(tc->valuestring, "none") == 0;
        return strcmp(tc->valuestring, "required") == 0 ? "" : NULL;
    }
    cJSON *t = cJSON_GetObjectItem(tc, "type");
    if (!cJSON_IsString(t))
        return NULL;
    *off = strcmp(t->valuestring, "none") == 0;
    if (strcmp(t->valuestring, "any") == 0)
        return "";
    cJSON *name = cJSON_GetObjectItem(tc, "name");
    if (!name)
        name = cJSON_GetObjectItem(cJSON_GetObjectItem(tc, "function"), "name");
    return cJSON_IsString(name) ? name->valuestring : NULL;
}

static cJSON *tool_args(const cJSON *schema)
{
    cJSON *a = cJSON_CreateObject();
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(schema, "properties"))
    {
        const cJSON *en = cJSON_GetObjectItem(p, "enum");
        const cJSON *ty = cJSON_GetObjectItem(p, "type");
        const char *t = cJSON_IsString(ty) ? ty->valuestring : "";
        if (cJSON_IsArray(en) && cJSON_GetArraySize(en) > 0)
            cJSON_AddItemToObject(a, p->string, cJSON_Duplicate(cJSON_GetArrayItem(en, 0), 1));
        else if (strcmp(t, "string") == 0)
            cJSON_AddStringToObject(a, p->string, "mock");
        else if (strcmp(t, "integer") == 0 || strcmp(t, "number") == 0)
            cJSON_AddNumberToObject(a, p->string, 1);
        else if (strcmp(t, "boolean") == 0)
            cJSON_AddTrueToObject(a, p->string);
        else if (strcmp(t, "array") == 0)
            cJSON_AddArrayToObject(a, p->string);
        else if (strcmp(t, "object") == 0)
            cJSON_AddObjectToObject(a, p->string);
        else
            cJSON_AddNullToObject(a, p->string);
    }
    return a;
}

/* A tool call is made when tools are given, the last turn is not a tool's
 * result, and either tool_choice forces one or the last text says MOCK_TOOL
 * (MOCK_TOOL:name picks the tool). Arguments fill the schema's properties. */
static cJSON *pick_tool(cJSON *root, api kind, const char *last)
{
    cJSON *tools = cJSON_GetObjectItem(root, "tools");
    if (!cJSON_IsArray(tools) || cJSON_GetArraySize(tools) == 0 || last_is_tool_result(root, kind))
        return NULL;
    bool off;
    const char *want = forced_tool(cJSON_GetObjectItem(root, "tool_choice"), &off);
    const char *mark = strstr(last, "MOCK_TOOL");
    if (off || (!want && !mark))
        return NULL;
    char named[128] = "";
    if (!want && mark[9] == ':')
        sscanf(mark + 10, "%127[A-Za-z0-9_.-]", named);
    if (!want)
        want = named;
    cJSON *t, *pick = NULL;
    cJSON_ArrayForEach(t, tools)
    {
        cJSON *fn = kind == API_CHAT ? cJSON_GetObjectItem(t, "function") : t;
        cJSON *name = cJSON_GetObjectItem(fn, "name");
        if (cJSON_IsString(name) && (!pick || strcmp(name->valuestring, want) == 0) &&
            !(pick && want[0] == '\0'))
            pick = fn;
    }
    cJSON *name = cJSON_GetObjectItem(pick, "name");
    if (!cJSON_IsString(name))
        return NULL;
    cJSON *schema = cJSON_GetObjectItem(pick, kind == API_MESSAGES ? "input_schema" : "parameters");
    cJSON *args = tool_args(schema);
    char *s = cJSON_PrintUnformatted(args);
    cJSON_Delete(args);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name->valuestring);
    cJSON_AddStringToObject(o, "arguments", s);
    free(s);
    return o;
}

static void x_parse(job *j, cJSON *root, const char *last, unsigned long long h)
{
    x_cache(j, root, h);
    j->tool = pick_tool(root, j->kind, last);
    if (j->kind != API_RESPONSES)
        return;
    cJSON *prev = cJSON_GetObjectItem(root, "previous_response_id");
    if (cJSON_IsString(prev)) {
        j->prev_id = strdup(prev->valuestring);
        h ^= fnv(prev->valuestring, strlen(prev->valuestring)) * 7;
    }
    char id[64];
    snprintf(id, sizeof id, "resp_mock_%012llx", h & 0xffffffffffffull);
    free(j->id);
    j->id = strdup(id);
}

/* ---- usage ---- */

static void add_to(cJSON *u, const char *key, long n)
{
    cJSON *v = cJSON_GetObjectItem(u, key);
    if (cJSON_IsNumber(v))
        cJSON_SetNumberValue(v, v->valuedouble + (double)n);
}

static long tool_tokens(job *j)
{
    const char *a = cJSON_GetObjectItem(j->tool, "arguments")->valuestring;
    return (long)(strlen(a) + 3) / 4 + 1;
}

static long out_tokens(job *j)
{
    return j->tool ? tool_tokens(j) : j->n_words;
}

/* OpenAI counts cached tokens inside prompt_tokens and reasoning tokens
 * inside completion_tokens: the knobs add both on top of the text's counts. */
static void x_usage_openai(job *j, cJSON *u)
{
    if (j->tool) {
        add_to(u, "completion_tokens", tool_tokens(j) - j->n_words);
        add_to(u, "total_tokens", tool_tokens(j) - j->n_words);
    }
    if (j->cached > 0) {
        add_to(u, "prompt_tokens", j->cached);
        add_to(u, "total_tokens", j->cached);
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "prompt_tokens_details"),
                                "cached_tokens", (double)j->cached);
    }
    if (j->reasoning > 0) {
        add_to(u, "completion_tokens", j->reasoning);
        add_to(u, "total_tokens", j->reasoning);
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "completion_tokens_details"),
                                "reasoning_tokens", (double)j->reasoning);
    }
}

/* Anthropic's input_tokens exclude the cache: the cache counts stand beside it. */
static void x_usage_anthropic(job *j, cJSON *u)
{
    if (!(j->cached || j->cache_write || j->cache_write_1h))
        return;
    cJSON_AddNumberToObject(u, "cache_creation_input_tokens",
                            (double)(j->cache_write + j->cache_write_1h));
    cJSON_AddNumberToObject(u, "cache_read_input_tokens", (double)j->cached);
    cJSON *cc = cJSON_AddObjectToObject(u, "cache_creation");
    cJSON_AddNumberToObject(cc, "ephemeral_5m_input_tokens", (double)j->cache_write);
    cJSON_AddNumberToObject(cc, "ephemeral_1h_input_tokens", (double)j->cache_write_1h);
}

static cJSON *responses_usage(job *j)
{
    cJSON *u = cJSON_CreateObject();
    long in = j->prompt_tokens + j->cached, out = out_tokens(j) + j->reasoning;
    cJSON_AddNumberToObject(u, "input_tokens", (double)in);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "input_tokens_details"), "cached_tokens",
                            (double)j->cached);
    cJSON_AddNumberToObject(u, "output_tokens", (double)out);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "output_tokens_details"), "reasoning_tokens",
                            (double)j->reasoning);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(in + out));
    return u;
}

/* ---- answers with a tool call (chat and messages) ---- */

static void tool_id(job *j, const char *prefix, char *out, size_t cap)
{
    const char *dash = strrchr(j->id, '-'), *us = strrchr(j->id, '_');
    const char *tail = dash && (!us || dash > us) ? dash + 1 : us ? us + 1 : j->id;
    snprintf(out, cap, "%s%s", prefix, tail);
}

static cJSON *chat_tool_calls(job *j, bool delta, bool with_args)
{
    char id[80];
    tool_id(j, "call_mock_", id, sizeof id);
    cJSON *calls = cJSON_CreateArray();
    cJSON *c = cJSON_CreateObject();
    if (delta)
        cJSON_AddNumberToObject(c, "index", 0);
    cJSON *fn;
    if (!delta || !with_args) {
        cJSON_AddStringToObject(c, "id", id);
        cJSON_AddStringToObject(c, "type", "function");
    }
    fn = cJSON_AddObjectToObject(c, "function");
    if (!delta || !with_args)
        cJSON_AddStringToObject(fn, "name", cJSON_GetObjectItem(j->tool, "name")->valuestring);
    cJSON_AddStringToObject(
        fn, "arguments", with_args ? cJSON_GetObjectItem(j->tool, "arguments")->valuestring : "");
    cJSON_AddItemToArray(calls, c);
    return calls;
}

static cJSON *anthropic_tool_block(job *j, bool with_input)
{
    char id[80];
    tool_id(j, "toolu_mock_", id, sizeof id);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "tool_use");
    cJSON_AddStringToObject(b, "id", id);
    cJSON_AddStringToObject(b, "name", cJSON_GetObjectItem(j->tool, "name")->valuestring);
    cJSON *in = with_input ? cJSON_Parse(cJSON_GetObjectItem(j->tool, "arguments")->valuestring)
                           : cJSON_CreateObject();
    cJSON_AddItemToObject(b, "input", in);
    return b;
}

/* Rewrites a plain chat / messages answer into the tool call. */
static void tool_plain_fix(job *j, cJSON *o)
{
    if (j->kind == API_MESSAGES) {
        cJSON *content = cJSON_CreateArray();
        cJSON_AddItemToArray(content, anthropic_tool_block(j, true));
        cJSON_ReplaceItemInObject(o, "content", content);
        cJSON_ReplaceItemInObject(o, "stop_reason", cJSON_CreateString("tool_use"));
        cJSON *u = cJSON_GetObjectItem(o, "usage");
        cJSON_ReplaceItemInObject(u, "output_tokens", cJSON_CreateNumber((double)tool_tokens(j)));
        return;
    }
    cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    cJSON *msg = cJSON_GetObjectItem(ch, "message");
    cJSON_ReplaceItemInObject(msg, "content", cJSON_CreateNull());
    cJSON_AddItemToObject(msg, "tool_calls", chat_tool_calls(j, false, true));
    cJSON_ReplaceItemInObject(ch, "finish_reason", cJSON_CreateString("tool_calls"));
}

static void chat_tool_delta(job *j, bool first)
{
    cJSON *o = chunk_base(j);
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON *d = cJSON_AddObjectToObject(ch, "delta");
    if (first) {
        cJSON_AddStringToObject(d, "role", "assistant");
        cJSON_AddNullToObject(d, "content");
    }
    cJSON_AddItemToObject(d, "tool_calls", chat_tool_calls(j, true, !first));
    cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddNullToObject(ch, "finish_reason");
    send_event(j, NULL, o);
}

static void anthropic_tool_start(job *j)
{
    anthropic_event(j, "message_start", NULL, 0);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "content_block_start");
    cJSON_AddNumberToObject(o, "index", 0);
    cJSON_AddItemToObject(o, "content_block", anthropic_tool_block(j, false));
    send_event(j, "content_block_start", o);
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "content_block_delta");
    cJSON_AddNumberToObject(o, "index", 0);
    cJSON *d = cJSON_AddObjectToObject(o, "delta");
    cJSON_AddStringToObject(d, "type", "input_json_delta");
    cJSON_AddStringToObject(d, "partial_json",
                            cJSON_GetObjectItem(j->tool, "arguments")->valuestring);
    send_event(j, "content_block_delta", o);
}

static void anthropic_tool_end(job *j)
{
    anthropic_event(j, "content_block_stop", NULL, 3);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "message_delta");
    cJSON *d = cJSON_AddObjectToObject(o, "delta");
    cJSON_AddStringToObject(d, "stop_reason", "tool_use");
    cJSON_AddNullToObject(d, "stop_sequence");
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "output_tokens", (double)tool_tokens(j));
    x_usage_anthropic(j, u);
    send_event(j, "message_delta", o);
    anthropic_event(j, "message_stop", NULL, 5);
}

static void chat_tool_end(job *j)
{
    openai_piece(j, NULL, "tool_calls", false, 0, 0);
    if (j->include_usage) {
        cJSON *o = chunk_base(j);
        cJSON_AddArrayToObject(o, "choices");
        add_usage(j, o, j->n_words);
        send_event(j, NULL, o);
    }
    send_event(j, NULL, NULL);
}

/* ---- the Responses API ---- */

static void item_id(job *j, const char *prefix, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", prefix, j->id + strlen("resp_mock_"));
}

static bool incomplete(job *j)
{
    return !j->tool && strcmp(finish_reason(j), "length") == 0;
}

static cJSON *output_item(job *j, bool done)
{
    char id[80];
    cJSON *it = cJSON_CreateObject();
    if (j->tool) {
        item_id(j, "fc_mock_", id, sizeof id);
        char call[80];
        tool_id(j, "call_mock_", call, sizeof call);
        cJSON_AddStringToObject(it, "type", "function_call");
        cJSON_AddStringToObject(it, "id", id);
        cJSON_AddStringToObject(it, "call_id", call);
        cJSON_AddStringToObject(it, "name", cJSON_GetObjectItem(j->tool, "name")->valuestring);
        cJSON_AddStringToObject(it, "arguments",
                                done ? cJSON_GetObjectItem(j->tool, "arguments")->valuestring : "");
        cJSON_AddStringToObject(it, "status", done ? "completed" : "in_progress");
        return it;
    }
    item_id(j, "msg_mock_", id, sizeof id);
    cJSON_AddStringToObject(it, "id", id);
    cJSON_AddStringToObject(it, "type", "message");
    cJSON_AddStringToObject(it, "status",
                            !done           ? "in_progress"
                            : incomplete(j) ? "incomplete"
                                            : "completed");
    cJSON_AddStringToObject(it, "role", "assistant");
    cJSON *content = cJSON_AddArrayToObject(it, "content");
    if (done) {
        cJSON *part = cJSON_CreateObject();
        cJSON_AddStringToObject(part, "type", "output_text");
        cJSON_AddStringToObject(part, "text", j->reply);
        cJSON_AddArrayToObject(part, "annotations");
        cJSON_AddArrayToObject(part, "logprobs");
        cJSON_AddItemToArray(content, part);
    }
    return it;
}

/* The response object; `final` adds the output and usage. */
static cJSON *response_object(job *j, bool final)
{
    cJSON *o = cJSON_CreateObject();
    const char *status = !final ? "in_progress" : incomplete(j) ? "incomplete" : "completed";
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", "response");
    cJSON_AddNumberToObject(o, "created_at", 1700000000);
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddFalseToObject(o, "background");
    cJSON_AddNullToObject(o, "error");
    if (final && incomplete(j))
        cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "incomplete_details"), "reason",
                                "max_output_tokens");
    else
        cJSON_AddNullToObject(o, "incomplete_details");
    cJSON_AddNullToObject(o, "instructions");
    if (j->max_tokens > 0)
        cJSON_AddNumberToObject(o, "max_output_tokens", (double)j->max_tokens);
    else
        cJSON_AddNullToObject(o, "max_output_tokens");
    cJSON_AddStringToObject(o, "model", j->model);
    cJSON *out = cJSON_AddArrayToObject(o, "output");
    if (final)
        cJSON_AddItemToArray(out, output_item(j, true));
    cJSON_AddTrueToObject(o, "parallel_tool_calls");
    if (j->prev_id)
        cJSON_AddStringToObject(o, "previous_response_id", j->prev_id);
    else
        cJSON_AddNullToObject(o, "previous_response_id");
    cJSON *rs = cJSON_AddObjectToObject(o, "reasoning");
    cJSON_AddNullToObject(rs, "effort");
    cJSON_AddNullToObject(rs, "summary");
    cJSON_AddTrueToObject(o, "store");
    cJSON_AddNumberToObject(o, "temperature", 1);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(cJSON_AddObjectToObject(o, "text"), "format"),
                            "type", "text");
    cJSON_AddStringToObject(o, "tool_choice", "auto");
    cJSON_AddArrayToObject(o, "tools");
    cJSON_AddNumberToObject(o, "top_p", 1);
    cJSON_AddStringToObject(o, "truncation", "disabled");
    if (final)
        cJSON_AddItemToObject(o, "usage", responses_usage(j));
    else
        cJSON_AddNullToObject(o, "usage");
    cJSON_AddNullToObject(o, "user");
    cJSON_AddObjectToObject(o, "metadata");
    return o;
}

static cJSON *r_ev(const char *type)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

static void r_send(job *j, cJSON *o)
{
    cJSON_AddNumberToObject(o, "sequence_number", j->seq++);
    char type[64];
    snprintf(type, sizeof type, "%s", cJSON_GetObjectItem(o, "type")->valuestring);
    send_event(j, type, o);
}

static cJSON *r_item_ev(job *j, const char *type, bool content)
{
    char id[80];
    item_id(j, j->tool ? "fc_mock_" : "msg_mock_", id, sizeof id);
    cJSON *o = r_ev(type);
    cJSON_AddStringToObject(o, "item_id", id);
    cJSON_AddNumberToObject(o, "output_index", 0);
    if (content)
        cJSON_AddNumberToObject(o, "content_index", 0);
    return o;
}

static cJSON *text_part(const char *text)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "output_text");
    cJSON_AddStringToObject(p, "text", text);
    cJSON_AddArrayToObject(p, "annotations");
    return p;
}

static void r_response_ev(job *j, const char *type, bool final)
{
    cJSON *o = r_ev(type);
    cJSON_AddItemToObject(o, "response", response_object(j, final));
    r_send(j, o);
}

static void r_item_added_or_done(job *j, bool done)
{
    cJSON *o = r_ev(done ? "response.output_item.done" : "response.output_item.added");
    cJSON_AddNumberToObject(o, "output_index", 0);
    cJSON_AddItemToObject(o, "item", output_item(j, done));
    r_send(j, o);
}

static void r_function_call(job *j)
{
    const char *args = cJSON_GetObjectItem(j->tool, "arguments")->valuestring;
    cJSON *o = r_item_ev(j, "response.function_call_arguments.delta", false);
    cJSON_AddStringToObject(o, "delta", args);
    r_send(j, o);
    o = r_item_ev(j, "response.function_call_arguments.done", false);
    cJSON_AddStringToObject(o, "name", cJSON_GetObjectItem(j->tool, "name")->valuestring);
    cJSON_AddStringToObject(o, "arguments", args);
    r_send(j, o);
    r_item_added_or_done(j, true);
}

/* ---- hooks called by the original code ---- */

static bool x_plain(job *j)
{
    if (j->kind == API_RESPONSES) {
        cJSON *o = response_object(j, true);
        send_cjson(j->req, 200, o);
        finish(j);
        return true;
    }
    return false; /* chat and messages: answer_plain builds it, tool_plain_fix rewrites it */
}

static bool x_stream_start(job *j)
{
    if (j->kind == API_RESPONSES) {
        r_response_ev(j, "response.created", false);
        r_response_ev(j, "response.in_progress", false);
        r_item_added_or_done(j, false);
        if (j->tool) {
            r_function_call(j);
            return true;
        }
        cJSON *o = r_item_ev(j, "response.content_part.added", true);
        cJSON_AddItemToObject(o, "part", text_part(""));
        r_send(j, o);
        return true;
    }
    if (!j->tool)
        return false;
    if (j->kind == API_MESSAGES) {
        anthropic_tool_start(j);
    } else {
        chat_tool_delta(j, true);
        chat_tool_delta(j, false);
    }
    return true;
}

static bool x_stream_piece(job *j, const char *text)
{
    if (j->kind != API_RESPONSES)
        return false;
    cJSON *o = r_item_ev(j, "response.output_text.delta", true);
    cJSON_AddStringToObject(o, "delta", text);
    cJSON_AddArrayToObject(o, "logprobs");
    r_send(j, o);
    return true;
}

static bool x_stream_end(job *j)
{
    if (j->kind == API_RESPONSES) {
        if (!j->tool) {
            cJSON *o = r_item_ev(j, "response.output_text.done", true);
            cJSON_AddStringToObject(o, "text", j->reply);
            cJSON_AddArrayToObject(o, "logprobs");
            r_send(j, o);
            o = r_item_ev(j, "response.content_part.done", true);
            cJSON_AddItemToObject(o, "part", text_part(j->reply));
            r_send(j, o);
            r_item_added_or_done(j, true);
        }
        r_response_ev(j, incomplete(j) ? "response.incomplete" : "response.completed", true);
        return true;
    }
    if (!j->tool)
        return false;
    if (j->kind == API_MESSAGES)
        anthropic_tool_end(j);
    else
        chat_tool_end(j);
    return true;
}

/* ---- routes beside the LLM ones ---- */

static void send_anthropic_error(struct evhttp_request *req, int status, const char *type,
                                 const char *msg)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"%s\"}}", type, msg);
    send_json(req, status, body);
}

static void send_openai_error(struct evhttp_request *req, int status, const char *param,
                              const char *msg)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\",\"param\":\"%s\","
             "\"code\":null}}",
             msg, param);
    send_json(req, status, body);
}

/* The status knob (and fail_next) apply to these routes as to the LLM ones. */
static bool refused(struct evhttp_request *req, bool anthropic)
{
    int st = m.k.fail_next > 0 ? 500 : m.k.status && m.k.status != 200 ? m.k.status : 0;
    if (!st)
        return false;
    if (m.k.fail_next > 0)
        m.k.fail_next--;
    if (anthropic) {
        send_anthropic_error(req, st, st == 401 ? "authentication_error" : "api_error",
                             "mock error");
    } else {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"error\":{\"message\":\"mock error\",\"type\":\"server_error\",\"param\":null,"
                 "\"code\":\"mock_%d\"}}",
                 st);
        send_json(req, st, body);
    }
    return true;
}

/* Records the request for /_mock/last with bytes a JSON string cannot hold
 * (an upload's binary) shown as '.'; returns the raw body. */
static const char *take_body(struct evhttp_request *req, const char *path, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    *len = evbuffer_get_length(in);
    const char *body = *len ? (const char *)evbuffer_pullup(in, -1) : "";
    char *shown = malloc(*len + 1);
    for (size_t i = 0; i < *len; i++) {
        unsigned char c = (unsigned char)body[i];
        shown[i] = (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\r' || c == '\t' ? (char)c : '.';
    }
    record_last(req, path, shown, *len);
    free(shown);
    m.requests++;
    return body;
}

static bool anthropic_headers(struct evhttp_request *req)
{
    return evhttp_find_header(evhttp_request_get_input_headers(req), "anthropic-version") != NULL;
}

static void anthropic_models(struct evhttp_request *req)
{
    m.by_models++;
    send_json(req, 200,
              "{\"data\":["
              "{\"type\":\"model\",\"id\":\"claude-3-5-haiku\",\"display_name\":\"Claude 3.5 "
              "Haiku\",\"created_at\":\"2024-10-22T00:00:00Z\"},"
              "{\"type\":\"model\",\"id\":\"claude-sonnet-4-5\",\"display_name\":\"Claude Sonnet "
              "4.5\",\"created_at\":\"2025-09-29T00:00:00Z\"}],"
              "\"has_more\":false,\"first_id\":\"claude-3-5-haiku\",\"last_id\":\"claude-sonnet-"
              "4-5\"}");
}

/* The same count the mock's /v1/messages reports as usage.input_tokens. */
static void count_tokens(struct evhttp_request *req, const char *path)
{
    mx.by_count_tokens++;
    size_t len;
    const char *body = take_body(req, path, &len);
    if (refused(req, true))
        return;
    cJSON *root = cJSON_ParseWithLength(body, len);
    cJSON *model = cJSON_GetObjectItem(root, "model");
    cJSON *msgs = cJSON_GetObjectItem(root, "messages");
    if (!cJSON_IsString(model) || !cJSON_IsArray(msgs)) {
        send_anthropic_error(req, 400, "invalid_request_error",
                             cJSON_IsString(model) ? "messages: Field required"
                                                   : "model: Field required");
        cJSON_Delete(root);
        return;
    }
    char last[8192], ignore[8];
    size_t bytes = 0;
    cJSON *msg;
    cJSON_ArrayForEach(msg, msgs) bytes +=
        text_of(cJSON_GetObjectItem(msg, "content"), last, sizeof last);
    cJSON *sys = cJSON_GetObjectItem(root, "system");
    bytes += sys ? text_of(sys, ignore, sizeof ignore) : 0;
    long n = (long)((bytes + 3) / 4);
    char out[64];
    snprintf(out, sizeof out, "{\"input_tokens\":%ld}", n < 1 ? 1 : n);
    send_json(req, 200, out);
    cJSON_Delete(root);
}

/* ---- multipart/form-data ---- */

typedef struct part {
    char name[64], filename[256];
    const char *data;
    size_t len;
} part;

static bool disposition_value(const char *head, size_t n, const char *key, char *out, size_t cap)
{
    const char *p = head;
    size_t klen = strlen(key);
    while ((p = memmem(p, n - (size_t)(p - head), key, klen)) != NULL) {
        if (p == head || p[-1] == ' ' || p[-1] == ';') {
            const char *v = p + klen, *e = memchr(v, '"', n - (size_t)(v - head));
            if (!e)
                return false;
            snprintf(out, cap, "%.*s", (int)(e - v), v);
            return true;
        }
        p += klen;
    }
    return false;
}

/* Splits a multipart body into its parts; -1 when the request is not one. */
static int multipart(struct evhttp_request *req, const char *body, size_t len, part *parts, int max)
{
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    const char *b = ct ? strstr(ct, "boundary=") : NULL;
    if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0 || !b)
        return -1;
    char delim[256];
    b += 9;
    size_t blen = strcspn(*b == '"' ? b + 1 : b, "\";");
    snprintf(delim, sizeof delim, "--%.*s", (int)blen, *b == '"' ? b + 1 : b);
    size_t dlen = strlen(delim);
    int n = 0;
    const char *end = body + len, *p = memmem(body, len, delim, dlen);
    while (p && n < max) {
        p += dlen;
        if (end - p < 2 || (p[0] == '-' && p[1] == '-'))
            break;
        const char *head = p + 2, *hend = memmem(head, (size_t)(end - head), "\r\n\r\n", 4);
        if (!hend)
            break;
        const char *data = hend + 4, *next = memmem(data, (size_t)(end - data), delim, dlen);
        if (!next)
            break;
        part *pt = &parts[n++];
        memset(pt, 0, sizeof *pt);
        disposition_value(head, (size_t)(hend - head), "name=\"", pt->name, sizeof pt->name);
        disposition_value(head, (size_t)(hend - head), "filename=\"", pt->filename,
                          sizeof pt->filename);
        pt->data = data;
        pt->len = (size_t)(next - data) >= 2 ? (size_t)(next - data) - 2 : 0; /* CRLF */
        p = next;
    }
    return n;
}

static const part *find_part(const part *parts, int n, const char *name)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(parts[i].name, name) == 0)
            return &parts[i];
    }
    return NULL;
}

static void field(const part *parts, int n, const char *name, char *out, size_t cap)
{
    const part *p = find_part(parts, n, name);
    snprintf(out, cap, "%.*s", p ? (int)p->len : 0, p ? p->data : "");
}

/* POST /v1/audio/transcriptions and /translations: the text says how many
 * bytes the uploaded file had, so a test sees the upload arrived whole. */
static void transcription(struct evhttp_request *req, const char *path)
{
    mx.by_uploads++;
    size_t len;
    const char *body = take_body(req, path, &len);
    if (refused(req, false))
        return;
    part parts[16];
    int n = multipart(req, body, len, parts, 16);
    const part *file = n > 0 ? find_part(parts, n, "file") : NULL;
    char model[128], fmt[32];
    field(parts, n > 0 ? n : 0, "model", model, sizeof model);
    field(parts, n > 0 ? n : 0, "response_format", fmt, sizeof fmt);
    if (!file || !model[0]) {
        send_openai_error(req, 400, file ? "model" : "file",
                          n < 0 ? "expected multipart/form-data"
                                : "a file and a model are required");
        return;
    }
    char text[256];
    snprintf(text, sizeof text, "mock transcription of %zu bytes", file->len);
    if (strcmp(fmt, "text") == 0) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "%s\n", text);
        evhttp_send_reply(req, 200, NULL, b);
        evbuffer_free(b);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    if (strcmp(fmt, "verbose_json") == 0) {
        cJSON_AddStringToObject(o, "task",
                                strstr(path, "translations") ? "translate" : "transcribe");
        cJSON_AddStringToObject(o, "language", "english");
        cJSON_AddNumberToObject(o, "duration", (double)file->len / 32000.0);
    }
    cJSON_AddStringToObject(o, "text", text);
    send_cjson(req, 200, o);
}

static void files_create(struct evhttp_request *req, const char *path)
{
    mx.by_uploads++;
    size_t len;
    const char *body = take_body(req, path, &len);
    if (refused(req, false))
        return;
    part parts[16];
    int n = multipart(req, body, len, parts, 16);
    const part *file = n > 0 ? find_part(parts, n, "file") : NULL;
    char purpose[64];
    field(parts, n > 0 ? n : 0, "purpose", purpose, sizeof purpose);
    if (!file || !purpose[0]) {
        send_openai_error(req, 400, file ? "purpose" : "file",
                          n < 0 ? "expected multipart/form-data"
                                : "a file and a purpose are required");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    char id[64];
    snprintf(id, sizeof id, "file-mock%012llx", fnv(file->data, file->len) & 0xffffffffffffull);
    cJSON_AddStringToObject(o, "object", "file");
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "purpose", purpose);
    cJSON_AddStringToObject(o, "filename", file->filename);
    cJSON_AddNumberToObject(o, "bytes", (double)file->len);
    cJSON_AddNumberToObject(o, "created_at", 1700000000);
    cJSON_AddNullToObject(o, "expires_at");
    cJSON_AddStringToObject(o, "status", "processed");
    cJSON_AddNullToObject(o, "status_details");
    send_cjson(req, 200, o);
}

static cJSON *moderation_result(const char *text)
{
    static const char *cats[] = {"harassment",
                                 "harassment/threatening",
                                 "hate",
                                 "hate/threatening",
                                 "illicit",
                                 "illicit/violent",
                                 "self-harm",
                                 "self-harm/intent",
                                 "self-harm/instructions",
                                 "sexual",
                                 "sexual/minors",
                                 "violence",
                                 "violence/graphic"};
    bool flagged = strstr(text, "MOCK_FLAG") != NULL; /* tests flag an input on purpose */
    cJSON *r = cJSON_CreateObject();
    cJSON_AddBoolToObject(r, "flagged", flagged);
    cJSON *c = cJSON_AddObjectToObject(r, "categories");
    cJSON *sc = cJSON_AddObjectToObject(r, "category_scores");
    for (size_t i = 0; i < sizeof cats / sizeof cats[0]; i++) {
        cJSON_AddBoolToObject(c, cats[i], flagged && i == 11);
        cJSON_AddNumberToObject(sc, cats[i], flagged && i == 11 ? 0.99 : 0.0001);
    }
    return r;
}

static void moderations(struct evhttp_request *req, const char *path)
{
    mx.by_other++;
    size_t len;
    const char *body = take_body(req, path, &len);
    if (refused(req, false))
        return;
    cJSON *root = cJSON_ParseWithLength(body, len);
    cJSON *in = cJSON_GetObjectItem(root, "input"), *model = cJSON_GetObjectItem(root, "model");
    if (!in) {
        send_openai_error(req, 400, "input", "input is required");
        cJSON_Delete(root);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    char id[64];
    char *txt = cJSON_PrintUnformatted(in);
    snprintf(id, sizeof id, "modr-mock-%012llx", fnv(txt, strlen(txt)) & 0xffffffffffffull);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "model",
                            cJSON_IsString(model) ? model->valuestring : "omni-moderation-latest");
    cJSON *results = cJSON_AddArrayToObject(o, "results");
    if (cJSON_IsString(in)) {
        cJSON_AddItemToArray(results, moderation_result(in->valuestring));
    } else {
        cJSON *it;
        cJSON_ArrayForEach(it, in)
        {
            cJSON *t = cJSON_IsString(it) ? it : cJSON_GetObjectItem(it, "text");
            cJSON_AddItemToArray(results,
                                 moderation_result(cJSON_IsString(t) ? t->valuestring : ""));
        }
    }
    free(txt);
    send_cjson(req, 200, o);
    cJSON_Delete(root);
}

/* POST /v1/audio/speech: binary bytes (every byte value occurs), as many as
 * 256 + 32 per input character, the media type of response_format. */
static void speech(struct evhttp_request *req, const char *path)
{
    mx.by_other++;
    size_t len;
    const char *body = take_body(req, path, &len);
    if (refused(req, false))
        return;
    cJSON *root = cJSON_ParseWithLength(body, len);
    cJSON *in = cJSON_GetObjectItem(root, "input"),
          *fmt = cJSON_GetObjectItem(root, "response_format");
    if (!cJSON_IsString(in)) {
        send_openai_error(req, 400, "input", "input is required");
        cJSON_Delete(root);
        return;
    }
    const char *f = cJSON_IsString(fmt) ? fmt->valuestring : "mp3";
    static const char *types[][2] = {{"mp3", "audio/mpeg"}, {"opus", "audio/opus"},
                                     {"aac", "audio/aac"},  {"flac", "audio/flac"},
                                     {"wav", "audio/wav"},  {"pcm", "audio/pcm"}};
    const char *type = "audio/mpeg";
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(f, types[i][0]) == 0)
            type = types[i][1];
    }
    size_t n = 256 + 32 * strlen(in->valuestring);
    if (n > (1 << 20))
        n = 1 << 20;
    unsigned char *a = malloc(n);
    unsigned long long h = fnv(in->valuestring, strlen(in->valuestring));
    for (size_t i = 0; i < n; i++)
        a[i] = (unsigned char)(i < 256 ? i : (h = h * 6364136223846793005ull + 1) >> 56);
    memcpy(a, "ID3", 3);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, a, n);
    evhttp_send_reply(req, 200, NULL, b);
    evbuffer_free(b);
    free(a);
    cJSON_Delete(root);
}

/* DELETE /v1/responses/{id}: the provider's copy of a stored response
 * (recorded for /_mock/last; the `status` knob fails it). */
static void responses_delete(struct evhttp_request *req, const char *path)
{
    record_last(req, path, "", 0);
    if (m.k.status && m.k.status != 200) {
        char body[160];
        snprintf(body, sizeof body,
                 "{\"error\":{\"message\":\"mock status %d\",\"type\":\"api_error\","
                 "\"param\":null,\"code\":null}}",
                 m.k.status);
        send_json(req, m.k.status, body);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", path + 14);
    cJSON_AddStringToObject(o, "object", "response");
    cJSON_AddBoolToObject(o, "deleted", 1);
    send_cjson(req, 200, o);
}

static bool x_route(struct evhttp_request *req, const char *path, bool post)
{
    if (post && strcmp(path, "/v1/responses") == 0) {
        mx.by_responses++;
        if (mx.no_responses) /* what vLLM and most OpenAI-compatible servers answer */
            send_json(req, 404, "{\"detail\":\"Not Found\"}");
        else
            handle_llm(req, API_RESPONSES, path);
    } else if (evhttp_request_get_command(req) == EVHTTP_REQ_DELETE &&
               strncmp(path, "/v1/responses/", 14) == 0) {
        responses_delete(req, path);
    } else if (post && strcmp(path, "/v1/messages/count_tokens") == 0) {
        count_tokens(req, path);
    } else if (!post && strcmp(path, "/v1/models") == 0 && anthropic_headers(req)) {
        anthropic_models(req);
    } else if (post && (strcmp(path, "/v1/audio/transcriptions") == 0 ||
                        strcmp(path, "/v1/audio/translations") == 0)) {
        transcription(req, path);
    } else if (post && strcmp(path, "/v1/files") == 0) {
        files_create(req, path);
    } else if (post && strcmp(path, "/v1/moderations") == 0) {
        moderations(req, path);
    } else if (post && strcmp(path, "/v1/audio/speech") == 0) {
        speech(req, path);
    } else {
        return false;
    }
    return true;
}

/* ==== end of the Responses / tools / cache / uploads block ==== */

/* ==== pass-through probes (sluice's other /v1/... routes) ====
 *   ANY /v1/pt/echo[?status=N]  what arrived: method, path, query, headers,
 *                               body length and CRC-32 (the body itself
 *                               when short); answers with hop-by-hop headers
 *                               and a nominated one, which sluice must drop
 *   GET /v1/pt/bytes?n=N        N binary bytes (application/octet-stream)
 *   POST /v1/pt/usage           a small JSON answer with model and usage */

static const char *pt_method(struct evhttp_request *req)
{
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "OTHER";
    }
}

static long pt_query_long(struct evhttp_request *req, const char *name, long dflt)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq kv;
    long v = dflt;
    if (q && evhttp_parse_query_str(q, &kv) == 0) {
        const char *s = evhttp_find_header(&kv, name);
        if (s)
            v = atol(s);
        evhttp_clear_headers(&kv);
    }
    return v;
}

/* CRC-32 (zlib's), so a test checks 25 MB with zlib.crc32 instead of a loop. */
static unsigned long pt_crc32(unsigned long crc, const unsigned char *p, size_t n)
{
    static unsigned long table[256];
    if (!table[1]) {
        for (unsigned long i = 0; i < 256; i++) {
            unsigned long c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xedb88320ul ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    }
    crc ^= 0xfffffffful;
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return crc ^ 0xfffffffful;
}

static void pt_echo(struct evhttp_request *req, const char *path)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    unsigned long h = 0;
    struct evbuffer_ptr pos;
    struct evbuffer_iovec v[16];
    evbuffer_ptr_set(in, &pos, 0, EVBUFFER_PTR_SET);
    size_t seen = 0;
    while (seen < len) { /* no pullup: a 25 MB upload is hashed where it lies */
        int n = evbuffer_peek(in, -1, &pos, v, 16);
        for (int i = 0; i < n && i < 16; i++) {
            h = pt_crc32(h, v[i].iov_base, v[i].iov_len);
            seen += v[i].iov_len;
        }
        if (n <= 0 || evbuffer_ptr_set(in, &pos, seen, EVBUFFER_PTR_SET) < 0)
            break;
    }
    size_t shown = len < 2048 ? len : 0;
    const char *body = shown ? (const char *)evbuffer_pullup(in, (ev_ssize_t)shown) : "";
    record_last(req, path, body, shown);
    m.requests++;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", pt_method(req));
    cJSON_AddStringToObject(o, "path", path);
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    cJSON_AddStringToObject(o, "query", q ? q : "");
    cJSON_AddNumberToObject(o, "bytes", (double)len);
    char hex[24];
    snprintf(hex, sizeof hex, "%08lx", h);
    cJSON_AddStringToObject(o, "crc32", hex);
    char *b = malloc(shown + 1);
    memcpy(b, body, shown);
    b[shown] = '\0';
    cJSON_AddStringToObject(o, "body", b);
    free(b);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "X-Mock-Echo", "yes");
    evhttp_add_header(out, "Keep-Alive", "timeout=5");
    evhttp_add_header(out, "Proxy-Authenticate", "Basic realm=mock");
    evhttp_add_header(out, "Upgrade", "h2c");
    evhttp_add_header(out, "X-Mock-Hop", "nominated");
    evhttp_add_header(out, "Connection", "X-Mock-Hop");
    evhttp_add_header(out, "X-Sluice-Cache", "hit");
    send_cjson(req, (int)pt_query_long(req, "status", 200), o);
}

static void pt_bytes(struct evhttp_request *req)
{
    m.requests++;
    long n = pt_query_long(req, "n", 1024);
    if (n < 0 || n > (256L << 20))
        n = 1024;
    struct evbuffer *b = evbuffer_new();
    char chunk[65536];
    for (long at = 0; at < n;) {
        long k = n - at < (long)sizeof chunk ? n - at : (long)sizeof chunk;
        for (long i = 0; i < k; i++)
            chunk[i] = (char)(((at + i) * 31 + 7) & 0xff);
        evbuffer_add(b, chunk, (size_t)k);
        at += k;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/octet-stream");
    evhttp_send_reply(req, 200, NULL, b);
    evbuffer_free(b);
}

static bool pt_route(struct evhttp_request *req, const char *path)
{
    if (strcmp(path, "/v1/pt/echo") == 0) {
        pt_echo(req, path);
    } else if (strcmp(path, "/v1/pt/bytes") == 0) {
        pt_bytes(req);
    } else if (strcmp(path, "/v1/pt/usage") == 0) {
        size_t len;
        take_body(req, path, &len);
        send_json(req, 200,
                  "{\"object\":\"probe\",\"model\":\"gpt-4o-mini\",\"usage\":{\"prompt_tokens\":"
                  "1000,\"completion_tokens\":2000,\"total_tokens\":3000}}");
    } else {
        return false;
    }
    return true;
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
    cJSON *ek = cJSON_GetObjectItem(o, "echo_key");
    if (ek)
        m.k.echo_key = cJSON_IsTrue(ek)                                           ? 1
                       : cJSON_IsString(ek) && !strcmp(ek->valuestring, "stream") ? 2
                       : cJSON_IsNumber(ek)                                       ? ek->valueint
                                                                                  : 0;
    cJSON *ra = cJSON_GetObjectItem(o, "retry_after");
    if (cJSON_IsString(ra))
        snprintf(m.k.retry_after, sizeof m.k.retry_after, "%s", ra->valuestring);
    cJSON *hd = cJSON_GetObjectItem(o, "headers");
    if (cJSON_IsObject(hd)) {
        cJSON_Delete(m.k.headers);
        m.k.headers = cJSON_Duplicate(hd, 1);
    }
    x_config(o);
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
        "{\"requests\":%ld,\"inflight\":%ld,\"disconnects\":%ld,\"connections\":%ld,"
        "\"by_path\":{\"/v1/chat/"
        "completions\":%ld,"
        "\"/v1/completions\":%ld,\"/v1/embeddings\":%ld,\"/v1/messages\":%ld,\"/v1/models\":%ld,"
        "\"/v1/responses\":%ld,\"/v1/messages/count_tokens\":%ld,\"uploads\":%ld,\"other\":%ld}}",
        m.requests, m.inflight, m.disconnects, m.connections, m.by_chat, m.by_completions,
        m.by_embeddings, m.by_messages, m.by_models, mx.by_responses, mx.by_count_tokens,
        mx.by_uploads, mx.by_other);
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
    if (pt_route(req, path)) {
        /* a pass-through probe (above) */
    } else if (x_route(req, path, post)) {
        /* a route of the Responses / count_tokens / uploads block below */
    } else if (post && strcmp(path, "/v1/chat/completions") == 0) {
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
        m.requests = m.disconnects = m.connections = 0;
        cJSON_Delete(m.traces);
        m.traces = NULL;
        m.by_chat = m.by_completions = m.by_embeddings = m.by_messages = m.by_models = 0;
        send_json(req, 200, "{\"ok\":true}");
    } else if (strcmp(path, "/_mock/stats") == 0) {
        handle_stats(req);
    } else if (strcmp(path, "/_mock/last") == 0) {
        send_json(req, 200, m.last ? m.last : "{}");
    } else if (post && strcmp(path, "/v1/traces") == 0) {
        /* an OTLP/HTTP sink for bench/run.py's tracing-on row: takes and drops
         * the spans, answers an empty ExportTraceServiceResponse */
        m.otlp_exports++;
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/x-protobuf");
        evhttp_send_reply(req, 200, "OK", NULL);
    } else if (strcmp(path, "/_mock/traceparents") == 0) {
        char *t = m.traces ? cJSON_PrintUnformatted(m.traces) : NULL;
        send_json(req, 200, t ? t : "[]");
        free(t);
    } else {
        send_json(req, 404,
                  "{\"error\":{\"message\":\"not "
                  "found\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}");
    }
}

/* Every accepted connection gets its bufferevent here: the count is how
 * tests see keep-alive reuse (or its absence) on sluice's upstream side. */
static struct bufferevent *count_connection(struct event_base *base, void *arg)
{
    (void)arg;
    m.connections++;
    return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
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
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                         EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                         EVHTTP_REQ_PATCH);
    evhttp_set_gencb(http, on_request, NULL);
    evhttp_set_bevcb(http, count_connection, NULL);
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
