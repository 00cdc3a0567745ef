/* message_sse.c — Anthropic message streams <-> message objects; see message_sse.h. */
#include "sluice/message_sse.h"

#include <stdio.h>
#include <stdlib.h>

#include "sluice/arena.h"
#include "sluice/dialect.h"
#include "sluice/json.h"

enum { MAX_BLOCKS = 128 };

typedef struct block {
    bool used;
    sl_buf start; /* the content_block of content_block_start, as its source bytes */
    sl_buf acc;   /* text, thinking or partial_json, decoded and concatenated */
    sl_buf sig;   /* signature_delta */
    bool has_acc, has_sig;
} block;

struct sl_msg_asm {
    bool failed, started, stopped;
    size_t bytes, max_bytes;
    sl_buf start; /* message_start's message object, source bytes */
    sl_buf delta; /* message_delta's data, source bytes (the last one) */
    int n_blocks;
    block blocks[MAX_BLOCKS];
};

sl_msg_asm *sl_msg_asm_new(size_t max_bytes)
{
    sl_msg_asm *m = calloc(1, sizeof(*m));
    if (m)
        m->max_bytes = max_bytes ? max_bytes : (32u << 20);
    return m;
}

void sl_msg_asm_free(sl_msg_asm *m)
{
    if (!m)
        return;
    sl_buf_free(&m->start);
    sl_buf_free(&m->delta);
    for (int i = 0; i < m->n_blocks; i++) {
        sl_buf_free(&m->blocks[i].start);
        sl_buf_free(&m->blocks[i].acc);
        sl_buf_free(&m->blocks[i].sig);
    }
    free(m);
}

static void keep(sl_msg_asm *m, sl_buf *b, sl_str s)
{
    m->bytes += s.len;
    if (m->bytes > m->max_bytes || sl_buf_append(b, s.p ? s.p : "", s.len) != SL_OK)
        m->failed = true;
}

static block *block_at(sl_msg_asm *m, const sl_json *ev, bool opening)
{
    const sl_json *idx = sl_json_get(ev, "index");
    long i =
        idx && idx->type == SL_JSON_NUMBER ? (long)sl_json_int(idx, 0, MAX_BLOCKS - 1, -1) : -1;
    if (i < 0 || (opening ? i != m->n_blocks : i >= m->n_blocks)) {
        m->failed = true; /* blocks open in order, once */
        return NULL;
    }
    if (opening)
        m->n_blocks++;
    return &m->blocks[i];
}

static bool is_str(const sl_json *v)
{
    return v && v->type == SL_JSON_STRING;
}

static void take_delta(sl_msg_asm *m, const sl_json *ev)
{
    block *b = block_at(m, ev, false);
    const sl_json *d = sl_json_get(ev, "delta");
    const sl_json *t = sl_json_get(d, "type");
    if (!b || !is_str(t))
        return (void)(m->failed = true);
    static const char *const acc[][2] = {{"text_delta", "text"},
                                         {"thinking_delta", "thinking"},
                                         {"input_json_delta", "partial_json"}};
    for (size_t i = 0; i < SL_ARRAY_LEN(acc); i++) {
        const sl_json *v = sl_json_get(d, acc[i][1]);
        if (sl_str_eq_c(t->str, acc[i][0]) && is_str(v)) {
            keep(m, &b->acc, v->str);
            b->has_acc = true;
            return;
        }
    }
    const sl_json *sig = sl_json_get(d, "signature");
    if (sl_str_eq_c(t->str, "signature_delta") && is_str(sig)) {
        keep(m, &b->sig, sig->str);
        b->has_sig = true;
        return;
    }
    m->failed = true; /* citations_delta and the unknown: not representable here */
}

static void take_event(sl_msg_asm *m, const sl_json *ev)
{
    sl_str t = is_str(sl_json_get(ev, "type")) ? sl_json_get(ev, "type")->str : SL_STR("");
    if (sl_str_eq_c(t, "message_start")) {
        const sl_json *msg = sl_json_get(ev, "message");
        if (m->started || !msg || msg->type != SL_JSON_OBJECT)
            return (void)(m->failed = true);
        m->started = true;
        keep(m, &m->start, msg->raw);
    } else if (sl_str_eq_c(t, "content_block_start")) {
        const sl_json *cb = sl_json_get(ev, "content_block");
        block *b = block_at(m, ev, true);
        if (!b || !cb || cb->type != SL_JSON_OBJECT)
            return (void)(m->failed = true);
        b->used = true;
        keep(m, &b->start, cb->raw);
    } else if (sl_str_eq_c(t, "content_block_delta")) {
        take_delta(m, ev);
    } else if (sl_str_eq_c(t, "message_delta")) {
        sl_buf_reset(&m->delta);
        keep(m, &m->delta, ev->raw);
    } else if (sl_str_eq_c(t, "message_stop")) {
        m->stopped = true;
    } else if (sl_str_eq_c(t, "error")) {
        m->failed = true;
    } /* ping, content_block_stop and future events carry nothing to keep */
}

void sl_msg_asm_event(sl_msg_asm *m, const char *data, size_t len)
{
    if (!m || m->failed)
        return;
    sl_ir_scratch sc;
    const sl_json *ev = sl_ir_scratch_parse(&sc, (sl_str){data, len}, 4u << 20);
    if (!ev || ev->type != SL_JSON_OBJECT)
        m->failed = true;
    else
        take_event(m, ev);
    sl_ir_scratch_free(&sc);
}

/* ---- the complete message --------------------------------------------------- */

static sl_json *parse_in(sl_arena *a, const sl_buf *b)
{
    sl_json *v = NULL;
    sl_json_error err;
    if (!b->len || sl_json_parse(a, b->p, b->len, NULL, &v, &err) != SL_OK ||
        v->type != SL_JSON_OBJECT)
        return NULL;
    return v;
}

static void put_member(sl_buf *o, bool *first, sl_str key, sl_str raw)
{
    sl_buf_append_c(o, *first ? "" : ",");
    sl_buf_json_str(o, key.p, key.len);
    sl_buf_append_c(o, ":");
    sl_buf_append_str(o, raw);
    *first = false;
}

/* One block: its start object with the streamed fields in place. */
static int put_block(sl_arena *a, sl_buf *o, const block *b)
{
    const sl_json *start = parse_in(a, &b->start);
    if (!start)
        return SL_EINVAL;
    sl_str type = is_str(sl_json_get(start, "type")) ? sl_json_get(start, "type")->str : SL_STR("");
    const char *acc_key = sl_str_eq_c(type, "text")       ? "text"
                          : sl_str_eq_c(type, "thinking") ? "thinking"
                                                          : "input";
    if (sl_str_eq_c(SL_STR("input"), acc_key) && b->has_acc) { /* the JSON must be whole */
        sl_json *input = NULL;
        sl_json_error err;
        if (sl_json_parse(a, b->acc.p, b->acc.len, NULL, &input, &err) != SL_OK)
            return SL_EINVAL;
    }
    sl_buf_append_c(o, "{");
    bool first = true;
    for (const sl_json *f = start->child; f; f = f->next) {
        sl_buf v = {0};
        if (b->has_acc && sl_str_eq_c(f->key, acc_key)) {
            if (acc_key[0] == 'i')
                put_member(o, &first, f->key, sl_buf_str(&b->acc));
            else
                sl_buf_json_str(&v, b->acc.p ? b->acc.p : "", b->acc.len),
                    put_member(o, &first, f->key, sl_buf_str(&v));
        } else if (b->has_sig && sl_str_eq_c(f->key, "signature")) {
            sl_buf_json_str(&v, b->sig.p ? b->sig.p : "", b->sig.len);
            put_member(o, &first, f->key, sl_buf_str(&v));
        } else {
            put_member(o, &first, f->key, f->raw);
        }
        sl_buf_free(&v);
    }
    /* streamed members the opening form did not name (a thinking block opens
     * without its signature) */
    if (b->has_acc && !sl_json_get(start, acc_key) && acc_key[0] != 'i') {
        sl_buf_printf(o, "%s\"%s\":", first ? "" : ",", acc_key);
        sl_buf_json_str(o, b->acc.p ? b->acc.p : "", b->acc.len);
        first = false;
    }
    if (b->has_sig && !sl_json_get(start, "signature")) {
        sl_buf_append_c(o, first ? "\"signature\":" : ",\"signature\":");
        sl_buf_json_str(o, b->sig.p ? b->sig.p : "", b->sig.len);
    }
    sl_buf_append_c(o, "}");
    return SL_OK;
}

/* message_start's usage, each count the final message_delta also gives replaced. */
static void put_usage(sl_buf *o, const sl_json *start_usage, const sl_json *delta_usage)
{
    sl_buf_append_c(o, "{");
    bool first = true;
    for (const sl_json *f = start_usage ? start_usage->child : NULL; f; f = f->next) {
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)SL_MIN(f->key.len, 63), f->key.p);
        const sl_json *later = sl_json_get(delta_usage, key);
        put_member(o, &first, f->key, later && later->type != SL_JSON_NULL ? later->raw : f->raw);
    }
    for (const sl_json *f = delta_usage ? delta_usage->child : NULL; f; f = f->next) {
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)SL_MIN(f->key.len, 63), f->key.p);
        if (!sl_json_get(start_usage, key))
            put_member(o, &first, f->key, f->raw);
    }
    sl_buf_append_c(o, "}");
}

static int put_message(sl_arena *a, const sl_msg_asm *m, sl_buf *o)
{
    const sl_json *msg = parse_in(a, &m->start), *ev = parse_in(a, &m->delta);
    const sl_json *delta = sl_json_get(ev, "delta");
    if (!msg || !ev)
        return SL_EINVAL;
    sl_buf_append_c(o, "{");
    bool first = true;
    for (const sl_json *f = msg->child; f; f = f->next) {
        if (sl_str_eq_c(f->key, "content")) {
            sl_buf_append_c(o, first ? "\"content\":[" : ",\"content\":[");
            first = false;
            for (int i = 0; i < m->n_blocks; i++) {
                sl_buf_append_c(o, i ? "," : "");
                if (put_block(a, o, &m->blocks[i]) != SL_OK)
                    return SL_EINVAL;
            }
            sl_buf_append_c(o, "]");
        } else if (sl_str_eq_c(f->key, "usage")) {
            sl_buf_append_c(o, first ? "\"usage\":" : ",\"usage\":");
            first = false;
            put_usage(o, f, sl_json_get(ev, "usage"));
        } else {
            const sl_json *later =
                sl_str_eq_c(f->key, "stop_reason")     ? sl_json_get(delta, "stop_reason")
                : sl_str_eq_c(f->key, "stop_sequence") ? sl_json_get(delta, "stop_sequence")
                                                       : NULL;
            put_member(o, &first, f->key, later ? later->raw : f->raw);
        }
    }
    const sl_json *du = sl_json_get(ev, "usage");
    if (!sl_json_get(msg, "usage") && du)
        put_member(o, &first, SL_STR("usage"), du->raw);
    sl_buf_append_c(o, "}");
    return SL_OK;
}

int sl_msg_asm_result(const sl_msg_asm *m, sl_buf *out)
{
    if (!m || m->failed || !m->started || !m->stopped || !m->delta.len)
        return SL_EINVAL;
    sl_arena a;
    sl_arena_init(&a, NULL, 0, 64u << 20);
    size_t before = out->len;
    int rc = put_message(&a, m, out);
    if (rc != SL_OK)
        out->len = before;
    sl_arena_free(&a);
    return rc;
}

/* ---- replay ----------------------------------------------------------------- */

static void event(sl_buf *o, const char *name, const sl_buf *data)
{
    sl_buf_printf(o, "event: %s\ndata: ", name);
    sl_buf_append_str(o, sl_buf_str(data));
    sl_buf_append_c(o, "\n\n");
}

/* The block's opening form: everything but the streamed fields, which start empty. */
static void put_block_start(sl_buf *d, const sl_json *b, const char *acc_key, int index)
{
    sl_buf_printf(d, "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":{", index);
    bool first = true;
    for (const sl_json *f = b->child; f; f = f->next) {
        bool streamed = sl_str_eq_c(f->key, acc_key) || (acc_key[0] == 't' && acc_key[1] == 'h' &&
                                                         sl_str_eq_c(f->key, "signature"));
        sl_str empty = acc_key[0] == 'i' ? SL_STR("{}") : SL_STR("\"\"");
        put_member(d, &first, f->key, streamed ? empty : f->raw);
    }
    sl_buf_append_c(d, "}}");
}

static void put_delta(sl_buf *o, sl_buf *d, int index, const char *type, const char *key,
                      const char *p, size_t n)
{
    sl_buf_reset(d);
    sl_buf_printf(
        d,
        "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":{\"type\":\"%s\",\"%s\":", index,
        type, key);
    sl_buf_json_str(d, p, n);
    sl_buf_append_c(d, "}}");
    event(o, "content_block_delta", d);
}

static void replay_text(sl_buf *o, sl_buf *d, int index, const char *type, const char *key,
                        sl_str text, int pieces)
{
    size_t step = text.len / (size_t)(pieces > 0 ? pieces : 1) + 1;
    for (size_t at = 0; at < text.len;) {
        size_t n = sl_utf8_prefix(text.p + at, text.len - at, step);
        put_delta(o, d, index, type, key, text.p + at, n);
        at += n;
    }
}

static void replay_block(sl_buf *o, sl_buf *d, const sl_json *b, int index, int pieces)
{
    sl_str type = is_str(sl_json_get(b, "type")) ? sl_json_get(b, "type")->str : SL_STR("");
    bool text = sl_str_eq_c(type, "text") && !sl_json_get(b, "citations");
    bool thinking = sl_str_eq_c(type, "thinking");
    const sl_json *input = sl_json_get(b, "input");
    bool tool = !text && !thinking && input && input->type == SL_JSON_OBJECT;
    const char *acc_key = text ? "text" : thinking ? "thinking" : tool ? "input" : "";
    sl_buf_reset(d);
    if (acc_key[0])
        put_block_start(d, b, acc_key, index);
    else /* redacted_thinking, results of server tools, cited text: whole, at once */
        sl_buf_printf(d, "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":%.*s}",
                      index, (int)b->raw.len, b->raw.p);
    event(o, "content_block_start", d);
    const sl_json *v = sl_json_get(b, acc_key[0] ? acc_key : "-");
    if (text && is_str(v))
        replay_text(o, d, index, "text_delta", "text", v->str, pieces);
    if (thinking && is_str(v))
        replay_text(o, d, index, "thinking_delta", "thinking", v->str, pieces);
    const sl_json *sig = sl_json_get(b, "signature");
    if (thinking && is_str(sig))
        put_delta(o, d, index, "signature_delta", "signature", sig->str.p, sig->str.len);
    if (tool)
        put_delta(o, d, index, "input_json_delta", "partial_json", input->raw.p, input->raw.len);
    sl_buf_reset(d);
    sl_buf_printf(d, "{\"type\":\"content_block_stop\",\"index\":%d}", index);
    event(o, "content_block_stop", d);
}

static void replay_start(sl_buf *o, sl_buf *d, const sl_json *msg)
{
    sl_buf_reset(d);
    sl_buf_append_c(d, "{\"type\":\"message_start\",\"message\":{");
    bool first = true;
    for (const sl_json *f = msg->child; f; f = f->next) {
        if (sl_str_eq_c(f->key, "content")) {
            put_member(d, &first, f->key, SL_STR("[]"));
        } else if (sl_str_eq_c(f->key, "stop_reason") || sl_str_eq_c(f->key, "stop_sequence")) {
            put_member(d, &first, f->key, SL_STR("null"));
        } else if (sl_str_eq_c(f->key, "usage") && f->type == SL_JSON_OBJECT) {
            sl_buf_append_c(d, first ? "\"usage\":{" : ",\"usage\":{");
            bool ufirst = true;
            first = false;
            for (const sl_json *u = f->child; u; u = u->next)
                put_member(d, &ufirst, u->key,
                           sl_str_eq_c(u->key, "output_tokens") ? SL_STR("0") : u->raw);
            sl_buf_append_c(d, "}");
        } else {
            put_member(d, &first, f->key, f->raw);
        }
    }
    sl_buf_append_c(d, "}}");
    event(o, "message_start", d);
}

int sl_msg_replay_sse(const char *json, size_t len, int pieces, sl_buf *out)
{
    sl_arena a;
    sl_arena_init(&a, NULL, 0, 64u << 20);
    sl_json *msg = NULL;
    sl_json_error err;
    if (sl_json_parse(&a, json, len, NULL, &msg, &err) != SL_OK || msg->type != SL_JSON_OBJECT) {
        sl_arena_free(&a);
        return SL_EINVAL;
    }
    sl_buf d;
    sl_buf_init(&d, 0);
    replay_start(out, &d, msg);
    const sl_json *content = sl_json_get(msg, "content");
    int i = 0;
    for (const sl_json *b = content && content->type == SL_JSON_ARRAY ? content->child : NULL; b;
         b = b->next)
        replay_block(out, &d, b, i++, pieces);
    const sl_json *sr = sl_json_get(msg, "stop_reason"), *ss = sl_json_get(msg, "stop_sequence");
    const sl_json *usage = sl_json_get(msg, "usage");
    sl_buf_reset(&d);
    sl_buf_printf(
        &d, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":%.*s,\"stop_sequence\":%.*s}",
        sr ? (int)sr->raw.len : 4, sr ? sr->raw.p : "null", ss ? (int)ss->raw.len : 4,
        ss ? ss->raw.p : "null");
    if (usage && usage->type == SL_JSON_OBJECT)
        sl_buf_printf(&d, ",\"usage\":%.*s", (int)usage->raw.len, usage->raw.p);
    sl_buf_append_c(&d, "}");
    event(out, "message_delta", &d);
    sl_buf_append_c(out, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    sl_buf_free(&d);
    sl_arena_free(&a);
    return SL_OK;
}
