/* completion.c — SSE chunks <-> complete objects; see completion.h. */
#include "sluice/completion.h"

#include <stdio.h>
#include <stdlib.h>

#include "sluice/arena.h"
#include "sluice/message_sse.h"

void sl_asm_init(sl_asm *a, bool text_completion, size_t max_bytes)
{
    memset(a, 0, sizeof(*a));
    a->text_completion = text_completion;
    a->max_bytes = max_bytes ? max_bytes : (32u << 20);
}

static void copy_str(char *dst, size_t cap, const sl_json *v)
{
    if (dst[0] || !v || v->type != SL_JSON_STRING)
        return;
    size_t n = SL_MIN(v->str.len, cap - 1);
    memcpy(dst, v->str.p, n);
    dst[n] = '\0';
}

static void append(sl_asm *a, sl_buf *b, const sl_json *v)
{
    if (!v || v->type != SL_JSON_STRING)
        return;
    a->bytes += v->str.len;
    if (a->bytes > a->max_bytes || sl_buf_append(b, v->str.p, v->str.len) != SL_OK)
        a->failed = true;
}

static void take_tool_calls(sl_asm *a, sl_asm_choice *c, const sl_json *calls)
{
    for (const sl_json *t = calls->child; t; t = t->next) {
        const sl_json *idx = sl_json_get(t, "index");
        int i = idx && idx->type == SL_JSON_NUMBER ? (int)sl_json_int(idx, 0, 1 << 20, -1) : 0;
        if (i < 0 || i >= SL_ASM_MAX_TOOLS) {
            a->failed = true;
            return;
        }
        if (i >= c->n_tools)
            c->n_tools = i + 1;
        sl_asm_tool *tool = &c->tools[i];
        append(a, &tool->id, sl_json_get(t, "id"));
        const sl_json *fn = sl_json_get(t, "function");
        if (fn) {
            append(a, &tool->name, sl_json_get(fn, "name"));
            append(a, &tool->args, sl_json_get(fn, "arguments"));
        }
    }
}

static void take_choice(sl_asm *a, const sl_json *ch)
{
    const sl_json *idx = sl_json_get(ch, "index");
    int i = idx && idx->type == SL_JSON_NUMBER ? (int)sl_json_int(idx, 0, 1 << 20, -1) : 0;
    if (i < 0 || i >= SL_ASM_MAX_CHOICES) {
        a->failed = true;
        return;
    }
    sl_asm_choice *c = &a->choices[i];
    c->used = true;
    if (a->text_completion) {
        append(a, &c->content, sl_json_get(ch, "text"));
    } else {
        const sl_json *d = sl_json_get(ch, "delta");
        if (d && d->type == SL_JSON_OBJECT) {
            append(a, &c->content, sl_json_get(d, "content"));
            append(a, &c->refusal, sl_json_get(d, "refusal"));
            const sl_json *calls = sl_json_get(d, "tool_calls");
            if (calls && calls->type == SL_JSON_ARRAY)
                take_tool_calls(a, c, calls);
        }
    }
    copy_str(c->finish_reason, sizeof c->finish_reason, sl_json_get(ch, "finish_reason"));
}

static long num_or(const sl_json *obj, const char *key, long dflt)
{
    const sl_json *v = sl_json_get(obj, key);
    return (long)sl_json_int(v, -1e15, 1e15, dflt);
}

void sl_asm_init_for(sl_asm *a, sl_api api, size_t max_bytes)
{
    sl_asm_init(a, api == SL_API_COMPLETIONS, max_bytes);
    if (api != SL_API_MESSAGES)
        return;
    a->msg = sl_msg_asm_new(a->max_bytes);
    a->failed = !a->msg;
}

void sl_asm_chunk(sl_asm *a, const char *data, size_t len)
{
    if (a->failed)
        return;
    if (a->msg) {
        sl_msg_asm_event(a->msg, data, len);
        return;
    }
    char first[8192];
    sl_arena scratch;
    sl_arena_init(&scratch, first, sizeof first, 4u << 20);
    sl_json *root = NULL;
    sl_json_error err;
    if (sl_json_parse(&scratch, data, len, NULL, &root, &err) != SL_OK ||
        root->type != SL_JSON_OBJECT || sl_json_get(root, "error")) {
        a->failed = true;
        goto out;
    }
    copy_str(a->id, sizeof a->id, sl_json_get(root, "id"));
    copy_str(a->model, sizeof a->model, sl_json_get(root, "model"));
    copy_str(a->fingerprint, sizeof a->fingerprint, sl_json_get(root, "system_fingerprint"));
    if (!a->created)
        a->created = num_or(root, "created", 0);
    const sl_json *choices = sl_json_get(root, "choices");
    for (const sl_json *ch = choices && choices->type == SL_JSON_ARRAY ? choices->child : NULL; ch;
         ch = ch->next)
        take_choice(a, ch);
    const sl_json *u = sl_json_get(root, "usage");
    if (u && u->type == SL_JSON_OBJECT) {
        a->have_usage = true;
        a->prompt_tokens = num_or(u, "prompt_tokens", 0);
        a->completion_tokens = num_or(u, "completion_tokens", 0);
        a->total_tokens = num_or(u, "total_tokens", a->prompt_tokens + a->completion_tokens);
    }
out:
    sl_arena_free(&scratch);
}

static void put_key_str(sl_buf *o, const char *key, const sl_buf *v)
{
    sl_buf_printf(o, "\"%s\":", key);
    sl_buf_json_str(o, v->p ? v->p : "", v->len);
}

static void put_message(sl_buf *o, const sl_asm_choice *c)
{
    sl_buf_append_c(o, "\"message\":{\"role\":\"assistant\",\"content\":");
    if (c->content.len || !c->n_tools)
        sl_buf_json_str(o, c->content.p ? c->content.p : "", c->content.len);
    else
        sl_buf_append_c(o, "null");
    if (c->refusal.len) {
        sl_buf_append_c(o, ",");
        put_key_str(o, "refusal", &c->refusal);
    }
    if (c->n_tools) {
        sl_buf_append_c(o, ",\"tool_calls\":[");
        for (int t = 0; t < c->n_tools; t++) {
            sl_buf_append_c(o, t ? ",{" : "{");
            put_key_str(o, "id", &c->tools[t].id);
            sl_buf_append_c(o, ",\"type\":\"function\",\"function\":{");
            put_key_str(o, "name", &c->tools[t].name);
            sl_buf_append_c(o, ",");
            put_key_str(o, "arguments", &c->tools[t].args);
            sl_buf_append_c(o, "}}");
        }
        sl_buf_append_c(o, "]");
    }
    sl_buf_append_c(o, "}");
}

int sl_asm_result(const sl_asm *a, sl_buf *o)
{
    if (a->failed)
        return SL_EINVAL;
    if (a->msg)
        return sl_msg_asm_result(a->msg, o);
    sl_buf_append_c(o, "{\"id\":");
    sl_buf_json_cstr(o, a->id);
    sl_buf_printf(o, ",\"object\":\"%s\",\"created\":%lld,\"model\":",
                  a->text_completion ? "text_completion" : "chat.completion", a->created);
    sl_buf_json_cstr(o, a->model);
    sl_buf_append_c(o, ",\"choices\":[");
    bool first = true;
    for (int i = 0; i < SL_ASM_MAX_CHOICES; i++) {
        const sl_asm_choice *c = &a->choices[i];
        if (!c->used)
            continue;
        sl_buf_printf(o, "%s{\"index\":%d,", first ? "" : ",", i);
        first = false;
        if (a->text_completion)
            put_key_str(o, "text", &c->content);
        else
            put_message(o, c);
        sl_buf_append_c(o, ",\"logprobs\":null,\"finish_reason\":");
        sl_buf_json_cstr(o, c->finish_reason[0] ? c->finish_reason : NULL);
        sl_buf_append_c(o, "}");
    }
    sl_buf_append_c(o, "]");
    if (a->have_usage)
        sl_buf_printf(
            o, ",\"usage\":{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,\"total_tokens\":%ld}",
            a->prompt_tokens, a->completion_tokens, a->total_tokens);
    if (a->fingerprint[0]) {
        sl_buf_append_c(o, ",\"system_fingerprint\":");
        sl_buf_json_cstr(o, a->fingerprint);
    }
    return sl_buf_append_c(o, "}");
}

void sl_asm_free(sl_asm *a)
{
    sl_msg_asm_free(a->msg);
    a->msg = NULL;
    for (int i = 0; i < SL_ASM_MAX_CHOICES; i++) {
        sl_asm_choice *c = &a->choices[i];
        sl_buf_free(&c->content);
        sl_buf_free(&c->refusal);
        for (int t = 0; t < SL_ASM_MAX_TOOLS; t++) {
            sl_buf_free(&c->tools[t].id);
            sl_buf_free(&c->tools[t].name);
            sl_buf_free(&c->tools[t].args);
        }
    }
}

/* ---- replay -------------------------------------------------------------- */

typedef struct replay_ctx {
    sl_buf *out;
    const sl_json *id, *model;
    long long created;
    bool text;
} replay_ctx;

/* Opens one chunk event up to and including `"choices":[`. */
static void chunk_open(replay_ctx *x)
{
    sl_buf *o = x->out;
    sl_buf_append_c(o, "data: {\"id\":");
    sl_buf_append_str(o, x->id && x->id->type == SL_JSON_STRING ? x->id->raw : SL_STR("\"\""));
    sl_buf_printf(o, ",\"object\":\"%s\",\"created\":%lld,\"model\":",
                  x->text ? "text_completion" : "chat.completion.chunk", x->created);
    sl_buf_append_str(o, x->model && x->model->type == SL_JSON_STRING ? x->model->raw
                                                                      : SL_STR("\"\""));
    sl_buf_append_c(o, ",\"choices\":[");
}

static void chunk_close(replay_ctx *x)
{
    sl_buf_append_c(x->out, "]}\n\n");
}

/* Length of a prefix of s no longer than want that ends on a UTF-8 boundary. */
static size_t utf8_cut(const char *s, size_t len, size_t want)
{
    if (want >= len)
        return len;
    while (want > 0 && ((unsigned char)s[want] & 0xC0) == 0x80)
        want--;
    return want ? want : len;
}

static void replay_piece(replay_ctx *x, int index, const char *p, size_t n, const char *finish)
{
    chunk_open(x);
    sl_buf *o = x->out;
    sl_buf_printf(o, "{\"index\":%d,", index);
    if (x->text) {
        sl_buf_append_c(o, "\"text\":");
        sl_buf_json_str(o, p, n);
    } else if (finish) {
        sl_buf_append_c(o, "\"delta\":{}");
    } else {
        sl_buf_append_c(o, "\"delta\":{\"content\":");
        sl_buf_json_str(o, p, n);
        sl_buf_append_c(o, "}");
    }
    sl_buf_append_c(o, ",\"logprobs\":null,\"finish_reason\":");
    if (finish)
        sl_buf_append_c(o, finish);
    else
        sl_buf_append_c(o, "null");
    sl_buf_append_c(o, "}");
    chunk_close(x);
}

static void replay_choice(replay_ctx *x, const sl_json *ch, int pieces)
{
    const sl_json *idx = sl_json_get(ch, "index");
    int index = (int)sl_json_int(idx, 0, 1 << 20, 0);
    const sl_json *msg = x->text ? ch : sl_json_get(ch, "message");
    const sl_json *content = msg ? sl_json_get(msg, x->text ? "text" : "content") : NULL;
    sl_str text = content && content->type == SL_JSON_STRING ? content->str : SL_STR("");
    if (!x->text) { /* the role chunk */
        chunk_open(x);
        sl_buf_printf(x->out,
                      "{\"index\":%d,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                      "\"logprobs\":null,\"finish_reason\":null}",
                      index);
        chunk_close(x);
    }
    size_t step = text.len / (size_t)(pieces > 0 ? pieces : 1) + 1;
    for (size_t off = 0; off < text.len;) {
        size_t n = utf8_cut(text.p + off, text.len - off, step);
        replay_piece(x, index, text.p + off, n, NULL);
        off += n;
    }
    const sl_json *calls = msg && !x->text ? sl_json_get(msg, "tool_calls") : NULL;
    if (calls && calls->type == SL_JSON_ARRAY) {
        chunk_open(x);
        sl_buf_printf(x->out, "{\"index\":%d,\"delta\":{\"tool_calls\":[", index);
        int k = 0;
        for (const sl_json *t = calls->child; t; t = t->next, k++) {
            /* Each stored call is re-emitted whole, with its stream index added. */
            sl_buf_printf(x->out, "%s{\"index\":%d", k ? "," : "", k);
            for (const sl_json *m = t->child; m; m = m->next) {
                sl_buf_append_c(x->out, ",");
                sl_buf_json_str(x->out, m->key.p, m->key.len);
                sl_buf_append_c(x->out, ":");
                sl_buf_append_str(x->out, m->raw);
            }
            sl_buf_append_c(x->out, "}");
        }
        sl_buf_append_c(x->out, "]},\"logprobs\":null,\"finish_reason\":null}");
        chunk_close(x);
    }
    const sl_json *fr = sl_json_get(ch, "finish_reason");
    char finish[64] = "\"stop\"";
    if (fr && fr->raw.len < sizeof finish && fr->type == SL_JSON_STRING)
        snprintf(finish, sizeof finish, "%.*s", (int)fr->raw.len, fr->raw.p);
    replay_piece(x, index, "", 0, finish);
}

int sl_replay_sse(const char *json, size_t len, bool include_usage, int pieces, sl_buf *out)
{
    sl_arena a;
    sl_arena_init(&a, NULL, 0, 0);
    sl_json *root = NULL;
    sl_json_error err;
    int rc = SL_EINVAL;
    if (sl_json_parse(&a, json, len, NULL, &root, &err) != SL_OK || root->type != SL_JSON_OBJECT)
        goto out;
    const sl_json *obj = sl_json_get(root, "object");
    replay_ctx x = {
        .out = out,
        .id = sl_json_get(root, "id"),
        .model = sl_json_get(root, "model"),
        .text = obj && obj->type == SL_JSON_STRING && sl_str_eq_c(obj->str, "text_completion"),
    };
    const sl_json *created = sl_json_get(root, "created");
    x.created = sl_json_int(created, -1e15, 1e15, 0);
    const sl_json *choices = sl_json_get(root, "choices");
    if (!choices || choices->type != SL_JSON_ARRAY)
        goto out;
    for (const sl_json *ch = choices->child; ch; ch = ch->next)
        replay_choice(&x, ch, pieces);
    const sl_json *usage = sl_json_get(root, "usage");
    if (include_usage && usage && usage->type == SL_JSON_OBJECT) {
        chunk_open(&x);
        out->len -= strlen("\"choices\":[");
        sl_buf_append_c(out, "\"choices\":[],\"usage\":");
        sl_buf_append_str(out, usage->raw);
        sl_buf_append_c(out, "}\n\n");
    }
    rc = sl_buf_append_c(out, "data: [DONE]\n\n");
out:
    sl_arena_free(&a);
    return rc;
}

int sl_replay_sse_for(sl_api api, const char *json, size_t len, bool include_usage, int pieces,
                      sl_buf *out)
{
    if (api == SL_API_MESSAGES)
        return sl_msg_replay_sse(json, len, pieces, out);
    return sl_replay_sse(json, len, include_usage, pieces, out);
}
