/* req.c — request objects: pool, references, headers, error answers. */
#include "sluice/req.h"

#include "sluice/trace.h"

#include "sluice/dialect.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

/* Pooled requests keep their struct and their first arena block. */
typedef struct sl_req_slot {
    sl_req req;
    char arena_first[SL_REQ_ARENA_INLINE];
} sl_req_slot;

static sl_req *pool_head;
static size_t pool_len;
static size_t live;

static uint64_t created;

uint64_t sl_req_served(void)
{
    return created;
}

size_t sl_req_live(void)
{
    return live;
}
enum { SL_REQ_POOL_MAX = 1024 };

sl_req *sl_req_new(struct event_base *base, sl_config *conf)
{
    sl_req_slot *slot;
    if (pool_head) {
        slot = (sl_req_slot *)pool_head;
        pool_head = pool_head->pool_next;
        pool_len--;
    } else {
        slot = malloc(sizeof(*slot));
        if (!slot)
            return NULL;
    }
    sl_req *r = &slot->req;
    memset(r, 0, sizeof(*r));
    r->magic = SL_REQ_MAGIC;
    live++;
    created++;
    r->refs = 1;
    r->base = base;
    r->conf = sl_config_ref(conf);
    sl_arena_init(&r->arena, slot->arena_first, sizeof(slot->arena_first), 0);
    sl_buf_init(&r->body_out, conf->server.max_response_bytes);
    r->ttl_override_s = -1;
    r->provider_idx = -1;
    r->llm.max_tokens = -1;
    r->tenant = "default";
    r->t_start = sl_now_us();
    return r;
}

sl_req *sl_req_new_internal(sl_req *parent, const char *path, sl_api api, sl_str body,
                            const char *suffix, sl_sink *sink)
{
    sl_req *child = sl_req_new(parent->base, parent->conf);
    if (!child)
        return NULL;
    snprintf(child->id, sizeof child->id, "%.50s-%.8s", parent->id, suffix);
    child->method = "POST";
    child->path = path;
    child->route = path;
    child->auth_key = parent->auth_key ? sl_arena_strndup(&child->arena, parent->auth_key,
                                                          strlen(parent->auth_key))
                                       : NULL;
    char *copy = sl_arena_strndup(&child->arena, body.p, body.len);
    child->body = (sl_str){copy ? copy : "", copy ? body.len : 0};
    child->is_llm = true;
    child->llm.api = api;
    child->cache = SL_CACHE_BYPASS;
    child->sink = sink;
    if (parent->trace && (child->trace = sl_arena_alloc(&child->arena, sizeof *child->trace)))
        sl_trace_child(child->trace, parent->trace); /* an INTERNAL span under the parent's */
    return child;
}

void sl_req_ref(sl_req *r)
{
    r->refs++;
}

void sl_req_release(sl_req *r)
{
    if (r->magic != SL_REQ_MAGIC) {
        fprintf(stderr, "sl_req_release: bad magic %08x\n", r->magic);
        abort();
    }
    if (--r->refs > 0)
        return;
    if (r->on_release)
        r->on_release(r);
    if (r->resume_ev)
        event_free(r->resume_ev);
    sl_buf_free(&r->body_out);
    sl_buf_free(&r->assembled);
    sl_arena_free(&r->arena);
    sl_config_unref(r->conf);
    r->magic = 0;
    live--;
    sl_req_slot *slot = (sl_req_slot *)r;
    if (pool_len < SL_REQ_POOL_MAX) {
        r->pool_next = pool_head;
        pool_head = r;
        pool_len++;
    } else {
        free(slot);
    }
}

void sl_req_pool_drain(void)
{
    while (pool_head) {
        sl_req *next = pool_head->pool_next;
        free(pool_head);
        pool_head = next;
    }
    pool_len = 0;
}

void sl_req_header(sl_req *r, const char *name, const char *value)
{
    for (int i = 0; i < r->n_headers; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0) {
            r->headers[i].value = value;
            return;
        }
    }
    if (r->n_headers < SL_REQ_MAX_HEADERS)
        r->headers[r->n_headers++] = (sl_header){name, value};
}

const char *sl_req_header_get(const sl_req *r, const char *name)
{
    for (int i = 0; i < r->n_headers; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    }
    return NULL;
}

int sl_error_json(sl_buf *out, const char *message, const char *type, const char *param,
                  const char *code)
{
    sl_ir_error e = {sl_str_c(type), sl_str_c(message), sl_str_c(param), sl_str_c(code), 0};
    size_t before = out->len;
    sl_ir_openai_error(&e, out);
    return out->len > before ? SL_OK : SL_ENOMEM;
}

/* An error message may quote what a provider or a library said (curl's
 * error text, a provider's message): no configured secret leaves in it. Only
 * a message that holds one is copied. */
static const char *scrubbed(sl_req *r, const char *message)
{
    const sl_config *c = r->conf;
    if (!message || !c->n_secrets ||
        !sl_has_secret(message, strlen(message), c->secrets, c->n_secrets))
        return message;
    char *copy = sl_arena_strndup(&r->arena, message, strlen(message));
    if (!copy)
        return "error (details withheld)";
    sl_scrub(copy, strlen(copy), c->secrets, c->n_secrets);
    return copy;
}

void sl_req_error(sl_req *r, int status, const char *type, const char *code, const char *param,
                  const char *message)
{
    message = scrubbed(r, message);
    const sl_dialect *d = r->dialect; /* set for every answer on an Anthropic path */
    sl_ir_error e = {sl_str_c(type), sl_str_c(message), sl_str_c(param), sl_str_c(code), status};
    r->error = message;
    sl_buf_reset(&r->body_out);
    r->body_out.max = 0;           /* an error body is small and must always fit */
    if (r->head_sent && r->pass) { /* a pass-through's body is the provider's bytes, not SSE */
        r->truncated = true;       /* the client sees it broke off instead */
        return;
    }
    if (r->head_sent) {
        /* Mid-stream: an SSE error event; the stream ends without [DONE]. */
        if (d)
            d->emit_error_event(&e, &r->body_out);
        else
            sl_ir_openai_error_event(&e, &r->body_out);
        return;
    }
    r->status = status;
    r->streaming = false;
    if (d)
        d->emit_error(&e, &r->body_out);
    else
        sl_ir_openai_error(&e, &r->body_out);
}

void sl_req_client_closed(sl_req *r)
{
    r->status = 499;
    r->error = "client closed";
    sl_buf_reset(&r->body_out);
}

void sl_req_error_from(sl_req *r, const sl_http_error *e)
{
    sl_req_error(r, e->status ? e->status : 400, e->type ? e->type : "invalid_request_error",
                 e->code, e->param, e->message);
}

void sl_req_make_id(char *out)
{
    /* A random per-process prefix and a counter: unique, cheap, no syscall per request. */
    static char prefix[17];
    static uint64_t counter;
    if (!prefix[0]) {
        uint8_t raw[8];
        sl_random_bytes(raw, sizeof raw);
        for (int i = 0; i < 8; i++)
            snprintf(prefix + 2 * i, 3, "%02x", raw[i]);
    }
    static const char hex[] = "0123456789abcdef";
    memcpy(out, prefix, 16);
    uint64_t n = ++counter;
    for (int i = 31; i >= 16; i--, n >>= 4)
        out[i] = hex[n & 15];
    out[32] = '\0';
}

sl_str sl_req_cache_user(const sl_req *r)
{
    if (!r->conf->cache.scope_user)
        return SL_STR("");
    if (r->end_user && r->end_user[0])
        return sl_str_c(r->end_user);
    const sl_json *u = sl_json_get(r->llm.root, "user");
    return u && u->type == SL_JSON_STRING ? u->str : SL_STR("");
}
