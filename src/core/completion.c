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

/* ---- merged values ---------------------------------------------------------
 * One answer arrives in pieces: text to join (content, refusal, audio
 * transcript), arrays to join (logprobs.content, annotations), fields repeated
 * on every chunk (system_fingerprint, service_tier) and fields sent once
 * (usage and its details). A merged value keeps all of it, for any member,
 * known or not. In a joining context (delta, logprobs) strings and arrays
 * are appended; elsewhere the last value wins. null never erases a value. */
typedef enum { JM_NULL = 0, JM_STR, JM_ARR, JM_OBJ, JM_RAW } jm_kind;

struct sl_jm {
    sl_buf key; /* member name, decoded */
    jm_kind kind;
    sl_buf val;          /* STR: decoded text; ARR: raw elements joined by ','; RAW: source bytes */
    sl_jm *child, *next; /* OBJ: members in arrival order */
};

static void jm_free(sl_jm *n)
{
    while (n) {
        sl_jm *next = n->next;
        jm_free(n->child);
        sl_buf_free(&n->key);
        sl_buf_free(&n->val);
        free(n);
        n = next;
    }
}

static sl_jm *jm_new(sl_asm *a, sl_str key)
{
    sl_jm *n = ++a->nodes <= SL_ASM_MAX_NODES ? calloc(1, sizeof(*n)) : NULL;
    if (n && sl_buf_append(&n->key, key.p, key.len) == SL_OK)
        return n;
    free(n);
    a->failed = true;
    return NULL;
}

/* The member named key of obj, appended (as null) when new. */
static sl_jm *jm_member(sl_asm *a, sl_jm *obj, sl_str key)
{
    sl_jm **tail = &obj->child;
    for (sl_jm *m = obj->child; m; m = m->next) {
        if (sl_str_eq(sl_buf_str(&m->key), key))
            return m;
        tail = &m->next;
    }
    return *tail = jm_new(a, key);
}

static const sl_jm *jm_get(const sl_jm *obj, const char *key)
{
    for (const sl_jm *m = obj ? obj->child : NULL; m; m = m->next) {
        if (sl_str_eq_c(sl_buf_str(&m->key), key))
            return m;
    }
    return NULL;
}

static void jm_become(sl_jm *n, jm_kind kind)
{
    jm_free(n->child);
    n->child = NULL;
    sl_buf_reset(&n->val);
    n->kind = kind;
}

static void jm_add(sl_asm *a, sl_jm *n, const char *p, size_t len)
{
    a->bytes += len;
    if (a->bytes > a->max_bytes || sl_buf_append(&n->val, p, len) != SL_OK)
        a->failed = true;
}

/* Names that repeat rather than continue inside a joining context. */
static bool jm_repeats(const sl_jm *n)
{
    sl_str k = sl_buf_str(&n->key);
    return sl_str_eq_c(k, "role") || sl_str_eq_c(k, "id") || sl_str_eq_c(k, "type");
}

static void jm_merge(sl_asm *a, sl_jm *n, const sl_json *v, bool join)
{
    if (!n || a->failed)
        return;
    switch (v->type) {
    case SL_JSON_NULL: return;
    case SL_JSON_STRING:
        if (!(join && n->kind == JM_STR && !jm_repeats(n)))
            jm_become(n, JM_STR);
        jm_add(a, n, v->str.p, v->str.len);
        return;
    case SL_JSON_ARRAY:
        if (!(join && n->kind == JM_ARR))
            jm_become(n, JM_ARR);
        for (const sl_json *e = v->child; e; e = e->next) {
            if (n->val.len)
                jm_add(a, n, ",", 1);
            jm_add(a, n, e->raw.p, e->raw.len);
        }
        return;
    case SL_JSON_OBJECT:
        if (n->kind != JM_OBJ)
            jm_become(n, JM_OBJ);
        for (const sl_json *m = v->child; m; m = m->next)
            jm_merge(a, jm_member(a, n, m->key), m, join);
        return;
    default:
        jm_become(n, JM_RAW);
        jm_add(a, n, v->raw.p, v->raw.len);
        return;
    }
}

/* Merges the members of v that skip does not name into *slot (made on demand). */
static void jm_merge_members(sl_asm *a, sl_jm **slot, const sl_json *v, bool join,
                             bool (*skip)(sl_str key))
{
    for (const sl_json *m = v->child; m && !a->failed; m = m->next) {
        if (skip(m->key))
            continue;
        if (!*slot && !(*slot = jm_new(a, SL_STR(""))))
            return;
        (*slot)->kind = JM_OBJ;
        jm_merge(a, jm_member(a, *slot, m->key), m, join);
    }
}

static void jm_write(sl_buf *o, const sl_jm *n);

/* ,"key":value for each member of obj that skip does not name. */
static void jm_write_members(sl_buf *o, const sl_jm *obj, bool (*skip)(sl_str key))
{
    for (const sl_jm *m = obj ? obj->child : NULL; m; m = m->next) {
        if (skip && skip(sl_buf_str(&m->key)))
            continue;
        sl_buf_append_c(o, ",");
        sl_buf_json_str(o, m->key.p ? m->key.p : "", m->key.len);
        sl_buf_append_c(o, ":");
        jm_write(o, m);
    }
}

static void jm_write(sl_buf *o, const sl_jm *n)
{
    switch (n->kind) {
    case JM_NULL: sl_buf_append_c(o, "null"); return;
    case JM_STR: sl_buf_json_str(o, n->val.p ? n->val.p : "", n->val.len); return;
    case JM_ARR:
        sl_buf_append_c(o, "[");
        sl_buf_append_str(o, sl_buf_str(&n->val));
        sl_buf_append_c(o, "]");
        return;
    case JM_OBJ: {
        size_t at = o->len;
        jm_write_members(o, n, NULL);
        if (o->len > at)
            o->p[at] = '{'; /* the first member's comma */
        else
            sl_buf_append_c(o, "{");
        sl_buf_append_c(o, "}");
        return;
    }
    case JM_RAW: sl_buf_append_str(o, sl_buf_str(&n->val)); return;
    }
}

/* ---- assembly ---------------------------------------------------------------- */

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
        if (!c->tools && !(c->tools = calloc(SL_ASM_MAX_TOOLS, sizeof(*c->tools)))) {
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

static bool skip_tool_calls(sl_str k)
{
    return sl_str_eq_c(k, "tool_calls");
}

/* Choice members with a place of their own. */
static bool choice_own(sl_str k)
{
    return sl_str_eq_c(k, "index") || sl_str_eq_c(k, "delta") || sl_str_eq_c(k, "message") ||
           sl_str_eq_c(k, "text") || sl_str_eq_c(k, "logprobs") || sl_str_eq_c(k, "finish_reason");
}

static void take_choice(sl_asm *a, const sl_json *ch)
{
    const sl_json *idx = sl_json_get(ch, "index");
    int i = idx && idx->type == SL_JSON_NUMBER ? (int)sl_json_int(idx, 0, 1 << 20, -1) : 0;
    if (i < 0 || i >= SL_ASM_MAX_CHOICES || ch->type != SL_JSON_OBJECT) {
        a->failed = true;
        return;
    }
    if (!a->choices[i] && !(a->choices[i] = calloc(1, sizeof(sl_asm_choice)))) {
        a->failed = true;
        return;
    }
    sl_asm_choice *c = a->choices[i];
    c->used = true;
    if (a->text_completion) {
        append(a, &c->text, sl_json_get(ch, "text"));
    } else {
        const sl_json *d = sl_json_get(ch, "delta");
        if (d && d->type == SL_JSON_OBJECT) {
            jm_merge_members(a, &c->message, d, true, skip_tool_calls);
            const sl_json *calls = sl_json_get(d, "tool_calls");
            if (calls && calls->type == SL_JSON_ARRAY)
                take_tool_calls(a, c, calls);
        }
    }
    const sl_json *lp = sl_json_get(ch, "logprobs");
    if (lp && lp->type == SL_JSON_OBJECT) {
        if (!c->logprobs && !(c->logprobs = jm_new(a, SL_STR("logprobs"))))
            return;
        jm_merge(a, c->logprobs, lp, true);
    }
    jm_merge_members(a, &c->extra, ch, false, choice_own);
    copy_str(c->finish_reason, sizeof c->finish_reason, sl_json_get(ch, "finish_reason"));
}

/* Top-level members not merged: choices have their own place; `object`
 * changes between the forms; `obfuscation` is stream padding. */
static bool top_skip(sl_str k)
{
    return sl_str_eq_c(k, "choices") || sl_str_eq_c(k, "object") || sl_str_eq_c(k, "obfuscation");
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
    jm_merge_members(a, &a->top, root, false, top_skip);
    const sl_json *choices = sl_json_get(root, "choices");
    for (const sl_json *ch = choices && choices->type == SL_JSON_ARRAY ? choices->child : NULL; ch;
         ch = ch->next)
        take_choice(a, ch);
out:
    sl_arena_free(&scratch);
}

static void put_key_str(sl_buf *o, const char *key, const sl_buf *v)
{
    sl_buf_printf(o, "\"%s\":", key);
    sl_buf_json_str(o, v->p ? v->p : "", v->len);
}

static bool message_own(sl_str k)
{
    return sl_str_eq_c(k, "role") || sl_str_eq_c(k, "content");
}

static void put_message(sl_buf *o, const sl_asm_choice *c)
{
    const sl_jm *role = jm_get(c->message, "role"), *content = jm_get(c->message, "content");
    sl_buf_append_c(o, "\"message\":{\"role\":");
    if (role && role->kind == JM_STR)
        jm_write(o, role);
    else
        sl_buf_append_c(o, "\"assistant\"");
    sl_buf_append_c(o, ",\"content\":");
    bool text =
        content ? content->kind == JM_STR && (content->val.len || !c->n_tools) : !c->n_tools;
    if (text && content)
        jm_write(o, content);
    else
        sl_buf_append_c(o, text ? "\"\"" : "null");
    jm_write_members(o, c->message, message_own); /* refusal, annotations, audio, ... */
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

static void put_top(sl_buf *o, const sl_asm *a, const char *key, const char *dflt)
{
    const sl_jm *v = jm_get(a->top, key);
    sl_buf_printf(o, "\"%s\":", key);
    if (v && v->kind != JM_NULL)
        jm_write(o, v);
    else
        sl_buf_append_c(o, dflt);
}

/* Written in their fixed places (id, created, model), or dropped when no
 * chunk had them (a usage that stayed null). */
static bool top_placed(sl_str k)
{
    return sl_str_eq_c(k, "id") || sl_str_eq_c(k, "created") || sl_str_eq_c(k, "model");
}

int sl_asm_result(const sl_asm *a, sl_buf *o)
{
    if (a->failed)
        return SL_EINVAL;
    if (a->msg)
        return sl_msg_asm_result(a->msg, o);
    sl_buf_append_c(o, "{");
    put_top(o, a, "id", "\"\"");
    sl_buf_printf(o, ",\"object\":\"%s\",",
                  a->text_completion ? "text_completion" : "chat.completion");
    put_top(o, a, "created", "0");
    sl_buf_append_c(o, ",");
    put_top(o, a, "model", "\"\"");
    sl_buf_append_c(o, ",\"choices\":[");
    bool first = true;
    for (int i = 0; i < SL_ASM_MAX_CHOICES; i++) {
        const sl_asm_choice *c = a->choices[i];
        if (!c || !c->used)
            continue;
        sl_buf_printf(o, "%s{\"index\":%d,", first ? "" : ",", i);
        first = false;
        if (a->text_completion)
            put_key_str(o, "text", &c->text);
        else
            put_message(o, c);
        sl_buf_append_c(o, ",\"logprobs\":");
        if (c->logprobs)
            jm_write(o, c->logprobs);
        else
            sl_buf_append_c(o, "null");
        sl_buf_append_c(o, ",\"finish_reason\":");
        sl_buf_json_cstr(o, c->finish_reason[0] ? c->finish_reason : NULL);
        jm_write_members(o, c->extra, NULL);
        sl_buf_append_c(o, "}");
    }
    sl_buf_append_c(o, "]");
    for (const sl_jm *m = a->top ? a->top->child : NULL; m; m = m->next) {
        if (top_placed(sl_buf_str(&m->key)) || m->kind == JM_NULL)
            continue;
        sl_buf_append_c(o, ",");
        sl_buf_json_str(o, m->key.p, m->key.len);
        sl_buf_append_c(o, ":");
        jm_write(o, m);
    }
    return sl_buf_append_c(o, "}");
}

void sl_asm_free(sl_asm *a)
{
    sl_msg_asm_free(a->msg);
    a->msg = NULL;
    jm_free(a->top);
    a->top = NULL;
    for (int i = 0; i < SL_ASM_MAX_CHOICES; i++) {
        sl_asm_choice *c = a->choices[i];
        if (!c)
            continue;
        sl_buf_free(&c->text);
        jm_free(c->message);
        jm_free(c->logprobs);
        jm_free(c->extra);
        c->message = c->logprobs = c->extra = NULL;
        for (int t = 0; c->tools && t < SL_ASM_MAX_TOOLS; t++) {
            sl_buf_free(&c->tools[t].id);
            sl_buf_free(&c->tools[t].name);
            sl_buf_free(&c->tools[t].args);
        }
        free(c->tools);
        free(c);
        a->choices[i] = NULL;
    }
}

/* ---- replay -------------------------------------------------------------- */

typedef struct replay_ctx {
    sl_buf *out;
    const sl_json *root, *id, *model;
    long long created;
    bool text;
} replay_ctx;

/* Top-level members every chunk carries as they are (system_fingerprint,
 * service_tier, ...): all but those a chunk spells its own way. */
static bool chunk_own(sl_str k)
{
    return sl_str_eq_c(k, "id") || sl_str_eq_c(k, "object") || sl_str_eq_c(k, "created") ||
           sl_str_eq_c(k, "model") || sl_str_eq_c(k, "choices") || sl_str_eq_c(k, "usage");
}

/* ,"key":raw for each member of obj that skip does not name. */
static void raw_members(sl_buf *o, const sl_json *obj, bool (*skip)(sl_str))
{
    for (const sl_json *m = obj && obj->type == SL_JSON_OBJECT ? obj->child : NULL; m;
         m = m->next) {
        if (skip(m->key))
            continue;
        sl_buf_append_c(o, ",");
        sl_buf_json_str(o, m->key.p, m->key.len);
        sl_buf_append_c(o, ":");
        sl_buf_append_str(o, m->raw);
    }
}

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
    raw_members(o, x->root, chunk_own);
    sl_buf_append_c(o, ",\"choices\":[");
}

static void chunk_close(replay_ctx *x)
{
    sl_buf_append_c(x->out, "]}\n\n");
}

/* What one choice's chunks carry besides its text. */
typedef struct replay_choice_ctx {
    int index;
    const sl_json *choice;
    const sl_json *logprobs; /* not yet sent, or NULL */
} replay_choice_ctx;

static void put_logprobs(replay_ctx *x, replay_choice_ctx *c)
{
    sl_buf_append_c(x->out, ",\"logprobs\":");
    if (c->logprobs) {
        sl_buf_append_str(x->out, c->logprobs->raw);
        c->logprobs = NULL; /* once, with the first piece */
    } else {
        sl_buf_append_c(x->out, "null");
    }
}

/* A content piece, or with finish set the finish chunk, which also carries
 * the choice's other members. */
static void replay_piece(replay_ctx *x, replay_choice_ctx *c, const char *p, size_t n,
                         const char *finish)
{
    chunk_open(x);
    sl_buf *o = x->out;
    sl_buf_printf(o, "{\"index\":%d,", c->index);
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
    put_logprobs(x, c);
    sl_buf_append_c(o, ",\"finish_reason\":");
    sl_buf_append_c(o, finish ? finish : "null");
    if (finish)
        raw_members(o, c->choice, choice_own);
    sl_buf_append_c(o, "}");
    chunk_close(x);
}

static bool delta_placed(sl_str k)
{
    return sl_str_eq_c(k, "role") || sl_str_eq_c(k, "content") || sl_str_eq_c(k, "tool_calls");
}

/* The role chunk, which also carries the message's other fields whole
 * (refusal, annotations, audio, ...). */
static void replay_role(replay_ctx *x, const sl_json *msg, const sl_json *content, int index)
{
    const sl_json *role = msg ? sl_json_get(msg, "role") : NULL;
    chunk_open(x);
    sl_buf_printf(x->out, "{\"index\":%d,\"delta\":{\"role\":", index);
    sl_buf_append_str(x->out,
                      role && role->type == SL_JSON_STRING ? role->raw : SL_STR("\"assistant\""));
    sl_buf_append_c(x->out, content && content->type == SL_JSON_NULL ? ",\"content\":null"
                                                                     : ",\"content\":\"\"");
    raw_members(x->out, msg, delta_placed);
    sl_buf_append_c(x->out, "},\"logprobs\":null,\"finish_reason\":null}");
    chunk_close(x);
}

static void replay_tool_calls(replay_ctx *x, const sl_json *calls, int index)
{
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

static void replay_choice(replay_ctx *x, const sl_json *ch, int pieces)
{
    const sl_json *idx = sl_json_get(ch, "index");
    const sl_json *lp = sl_json_get(ch, "logprobs");
    replay_choice_ctx c = {
        .index = (int)sl_json_int(idx, 0, 1 << 20, 0),
        .choice = ch,
        .logprobs = lp && lp->type != SL_JSON_NULL ? lp : NULL,
    };
    const sl_json *msg = x->text ? ch : sl_json_get(ch, "message");
    const sl_json *content = msg ? sl_json_get(msg, x->text ? "text" : "content") : NULL;
    sl_str text = content && content->type == SL_JSON_STRING ? content->str : SL_STR("");
    if (!x->text)
        replay_role(x, msg, content, c.index);
    size_t step = text.len / (size_t)(pieces > 0 ? pieces : 1) + 1;
    for (size_t off = 0; off < text.len;) {
        size_t n = sl_utf8_prefix(text.p + off, text.len - off, step);
        replay_piece(x, &c, text.p + off, n, NULL);
        off += n;
    }
    const sl_json *calls = msg && !x->text ? sl_json_get(msg, "tool_calls") : NULL;
    if (calls && calls->type == SL_JSON_ARRAY)
        replay_tool_calls(x, calls, c.index);
    const sl_json *fr = sl_json_get(ch, "finish_reason");
    char finish[64] = "\"stop\"";
    if (fr && fr->raw.len < sizeof finish && fr->type == SL_JSON_STRING)
        snprintf(finish, sizeof finish, "%.*s", (int)fr->raw.len, fr->raw.p);
    replay_piece(x, &c, "", 0, finish);
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
        .root = root,
        .id = sl_json_get(root, "id"),
        .model = sl_json_get(root, "model"),
        .text = obj && obj->type == SL_JSON_STRING && sl_str_eq_c(obj->str, "text_completion"),
    };
    const sl_json *created = sl_json_get(root, "created");
    x.created = sl_json_int(created, -1e15, 1e15, 0);
    const sl_json *choices = sl_json_get(root, "choices");
    if (!choices || choices->type != SL_JSON_ARRAY)
        goto out;
    for (const sl_json *ch = choices->child; ch; ch = ch->next) {
        if (ch->type == SL_JSON_OBJECT)
            replay_choice(&x, ch, pieces);
    }
    const sl_json *usage = sl_json_get(root, "usage");
    if (include_usage && usage && usage->type == SL_JSON_OBJECT) {
        chunk_open(&x);
        if (!out->err) /* a failed buffer may not hold what chunk_open wrote */
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
