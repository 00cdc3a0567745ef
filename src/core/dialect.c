/* dialect.c — translation through the IR, stream bookkeeping, helpers; see dialect.h. */
#include "sluice/dialect.h"

#include <stdio.h>

/* ---- translation drivers -------------------------------------------------------------- */

int sl_dialect_request(const sl_dialect *from, const sl_dialect *to, const sl_json *body,
                       sl_arena *a, sl_buf *out, sl_ir_refusal *e)
{
    sl_ir_req ir;
    int rc = from->parse_request(body, a, &ir, e);
    return rc ? rc : to->emit_request(&ir, out, e);
}

int sl_dialect_answer(const sl_dialect *from, const sl_dialect *to, const sl_json *body,
                      sl_arena *a, sl_buf *out)
{
    return sl_dialect_answer_echo(from, to, body, a, NULL, out);
}

int sl_dialect_answer_echo(const sl_dialect *from, const sl_dialect *to, const sl_json *body,
                           sl_arena *a, const sl_ir_echo *echo, sl_buf *out)
{
    sl_ir_answer ir;
    int rc = from->parse_answer(body, a, &ir);
    ir.echo = echo;
    if (rc == SL_OK)
        to->emit_answer(&ir, out);
    return rc;
}

void sl_dialect_error(const sl_dialect *from, const sl_dialect *to, const sl_json *body,
                      sl_buf *out)
{
    sl_ir_error e;
    from->parse_error(body, &e);
    to->emit_error(&e, out);
}

long sl_dialect_prompt_tokens(const sl_dialect *d, const sl_ir_usage *u)
{
    if (d->prompt_counts_cache)
        return u->input;
    long n = u->input - u->cache_read - u->cache_write;
    return n < 0 ? 0 : n;
}

/* ---- streams ------------------------------------------------------------------------ */

void sl_ir_stream_init(sl_ir_stream *s, const sl_dialect *from, const sl_dialect *to,
                       bool include_usage)
{
    memset(s, 0, sizeof(*s));
    s->from = from;
    s->to = to;
    s->include_usage = include_usage;
    s->finish = SL_IR_FINISH_STOP;
    s->out.tool_index = -1;
}

void sl_ir_stream_free(sl_ir_stream *s)
{
    if (s->to && s->to->stream_free && s->out_state)
        s->to->stream_free(s);
    s->out_state = NULL;
}

static void copy_to(char *dst, size_t cap, sl_str v)
{
    if (v.p)
        snprintf(dst, cap, "%.*s", (int)SL_MIN(v.len, cap - 1), v.p);
}

static void take_usage(sl_ir_usage *u, const sl_ir_usage *in, unsigned have)
{
    if (have & SL_USAGE_INPUT) {
        u->input = in->input;
        u->cache_read = in->cache_read;
        u->cache_write = in->cache_write;
        u->cache_write_1h = in->cache_write_1h;
    }
    if (have & SL_USAGE_OUTPUT) {
        u->output = in->output;
        u->reasoning = in->reasoning;
    }
}

void sl_ir_stream_put(sl_ir_stream *s, const sl_ir_event *ev)
{
    if (s->finished)
        return; /* nothing follows the terminal event */
    switch (ev->type) {
    case SL_IR_EV_START:
        copy_to(s->id, sizeof s->id, ev->id);
        copy_to(s->model, sizeof s->model, ev->model);
        take_usage(&s->usage, &ev->usage, ev->have);
        break;
    case SL_IR_EV_USAGE: take_usage(&s->usage, &ev->usage, ev->have); break;
    case SL_IR_EV_FINISH: s->finish = ev->finish; break;
    default: break;
    }
    s->to->emit_event(s, ev);
    if (ev->type == SL_IR_EV_END)
        s->finished = true;
    if (ev->type == SL_IR_EV_ERROR)
        s->failed = true;
}

void sl_ir_stream_feed(sl_ir_stream *s, sl_str event, sl_str data, sl_buf *out)
{
    sl_ir_scratch sc;
    const sl_json *d = sl_ir_scratch_parse(&sc, data, 4u << 20);
    if (d && d->type != SL_JSON_OBJECT)
        d = NULL;
    s->sink = out;
    s->from->parse_event(s, event, data, d);
    s->sink = NULL;
    sl_ir_scratch_free(&sc);
}

/* ---- helpers ------------------------------------------------------------------------ */

const sl_json *sl_ir_scratch_parse(sl_ir_scratch *s, sl_str data, size_t max)
{
    sl_arena_init(&s->a, s->first, sizeof s->first, max);
    sl_json *root = NULL;
    sl_json_error err;
    return sl_json_parse(&s->a, data.p, data.len, NULL, &root, &err) == SL_OK ? root : NULL;
}

void sl_ir_scratch_free(sl_ir_scratch *s)
{
    sl_arena_free(&s->a);
}

bool sl_ir_is_str(const sl_json *v)
{
    return v && v->type == SL_JSON_STRING;
}

bool sl_ir_is_num(const sl_json *v)
{
    return v && v->type == SL_JSON_NUMBER;
}

sl_str sl_ir_str(const sl_json *v)
{
    return sl_ir_is_str(v) ? v->str : SL_STR_NULL;
}

long sl_ir_count(const sl_json *obj, const char *key)
{
    const sl_json *v = sl_json_get(obj, key);
    return sl_ir_is_num(v) ? (long)sl_json_int(v, -1e15, 1e15, 0) : 0;
}

sl_ir_num sl_ir_num_of(const sl_json *obj, const char *key)
{
    const sl_json *v = sl_json_get(obj, key);
    if (!sl_ir_is_num(v))
        return (sl_ir_num){0};
    return (sl_ir_num){.set = true, .v = v->num, .raw = v->raw};
}

sl_str sl_ir_text_of(const sl_json *c, sl_arena *a)
{
    if (sl_ir_is_str(c))
        return c->str;
    sl_str one = SL_STR("");
    size_t pieces = 0, len = 0;
    for (const sl_json *p = c && c->type == SL_JSON_ARRAY ? c->child : NULL; p; p = p->next) {
        const sl_json *t = sl_json_get(p, "text");
        if (sl_ir_is_str(t))
            one = t->str, len += t->str.len, pieces++;
    }
    if (pieces < 2)
        return one;
    char *buf = sl_arena_alloc(a, len + 1), *at = buf;
    if (!buf)
        return SL_STR("");
    for (const sl_json *p = c->child; p; p = p->next) {
        const sl_json *t = sl_json_get(p, "text");
        if (sl_ir_is_str(t) && t->str.len)
            memcpy(at, t->str.p, t->str.len), at += t->str.len;
    }
    *at = '\0';
    return (sl_str){buf, len};
}

sl_ir_part *sl_ir_add_part(sl_arena *a, sl_ir_part ***tail, sl_ir_part_type type)
{
    sl_ir_part *p = sl_arena_calloc(a, sizeof(*p));
    if (!p)
        return NULL;
    p->type = type;
    **tail = p;
    *tail = &p->next;
    return p;
}

sl_ir_msg *sl_ir_add_msg(sl_arena *a, sl_ir_msg ***tail, sl_ir_role role, sl_str role_name)
{
    sl_ir_msg *m = sl_arena_calloc(a, sizeof(*m));
    if (!m)
        return NULL;
    m->role = role;
    m->role_name = role_name;
    **tail = m;
    *tail = &m->next;
    return m;
}

int sl_ir_refuse(sl_ir_refusal *e, const char *message, const char *param)
{
    e->message = message;
    e->param = param;
    return SL_EINVAL;
}

int sl_ir_nomem(sl_ir_refusal *e)
{
    e->message = "the request is too large to translate";
    e->param = NULL;
    return SL_ENOMEM;
}

int sl_ir_take_function(const sl_json *fn, sl_ir_tool *tool, sl_ir_refusal *e)
{
    const sl_json *name = sl_json_get(fn, "name"), *params = sl_json_get(fn, "parameters");
    if (!sl_ir_is_str(name))
        return sl_ir_refuse(e, "a function tool needs a name", "tools");
    tool->name = name->str;
    tool->description = sl_ir_str(sl_json_get(fn, "description"));
    tool->parameters = params && params->type == SL_JSON_OBJECT ? params : NULL;
    return SL_OK;
}

bool sl_ir_take_choice_word(const sl_json *tc, sl_ir_req *ir)
{
    if (!tc || tc->type == SL_JSON_NULL)
        return true;
    if (!sl_ir_is_str(tc))
        return false;
    ir->tool_choice = sl_str_eq_c(tc->str, "required") ? SL_IR_CHOICE_ANY
                      : sl_str_eq_c(tc->str, "none")   ? SL_IR_CHOICE_NONE
                                                       : SL_IR_CHOICE_AUTO;
    return true;
}

void sl_ir_put_function(sl_buf *o, const sl_ir_tool *t)
{
    sl_buf_append_c(o, "\"name\":");
    sl_ir_put_str(o, t->name, "\"\"");
    if (t->description.p) {
        sl_buf_append_c(o, ",\"description\":");
        sl_ir_put_str(o, t->description, "\"\"");
    }
    if (t->parameters) {
        sl_buf_append_c(o, ",\"parameters\":");
        sl_buf_append_str(o, t->parameters->raw);
    }
}

const char *sl_ir_choice_word(sl_ir_choice c)
{
    return c == SL_IR_CHOICE_ANY ? "required" : c == SL_IR_CHOICE_NONE ? "none" : "auto";
}

unsigned sl_ir_take_counts(const sl_json *us, const char *in, const char *out, sl_ir_usage *u)
{
    const sl_json *i = sl_json_get(us, in), *o = sl_json_get(us, out);
    unsigned have = 0;
    if (sl_ir_is_num(i))
        u->input = (long)sl_json_int(i, 0, 1e15, 0), have |= SL_USAGE_INPUT;
    if (sl_ir_is_num(o))
        u->output = (long)sl_json_int(o, 0, 1e15, 0), have |= SL_USAGE_OUTPUT;
    return have;
}

int sl_ir_take_stops(const sl_json *v, sl_arena *a, sl_ir_req *ir)
{
    bool one = sl_ir_is_str(v), many = v && v->type == SL_JSON_ARRAY && v->n;
    if (!one && !many)
        return SL_OK;
    ir->stop = sl_arena_alloc(a, (one ? 1 : v->n) * sizeof(sl_str));
    if (!ir->stop)
        return SL_ENOMEM;
    if (one)
        ir->stop[ir->n_stop++] = v->str;
    for (const sl_json *s = many ? v->child : NULL; s; s = s->next) {
        if (sl_ir_is_str(s))
            ir->stop[ir->n_stop++] = s->str;
    }
    return SL_OK;
}

void sl_ir_put_stops(sl_buf *o, const char *key, const sl_ir_req *ir)
{
    if (!ir->n_stop)
        return;
    sl_buf_printf(o, ",\"%s\":[", key);
    for (size_t i = 0; i < ir->n_stop; i++) {
        sl_buf_append_c(o, i ? "," : "");
        sl_buf_json_str(o, ir->stop[i].p, ir->stop[i].len);
    }
    sl_buf_append_c(o, "]");
}

void sl_ir_put_num(sl_buf *o, const char *key, const sl_ir_num *n)
{
    if (!n->set)
        return;
    sl_buf_printf(o, ",\"%s\":", key);
    if (n->raw.len)
        sl_buf_append_str(o, n->raw);
    else
        sl_buf_json_num(o, n->v);
}

void sl_ir_put_str(sl_buf *o, sl_str s, const char *dflt)
{
    if (s.p)
        sl_buf_json_str(o, s.p, s.len);
    else
        sl_buf_append_c(o, dflt);
}

sl_ir_finish sl_ir_finish_in(const sl_ir_finish_name *t, size_t n, sl_str name)
{
    for (size_t i = 0; i < n; i++) {
        if (sl_str_eq_c(name, t[i].name))
            return t[i].finish;
    }
    return SL_IR_FINISH_STOP;
}

const char *sl_ir_finish_out(const sl_ir_finish_name *t, size_t n, sl_ir_finish f)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i].finish == f)
            return t[i].name;
    }
    return t[0].name;
}

void sl_ir_put_joined(sl_buf *o, const sl_ir_part *parts, const char *sep)
{
    if (parts && !parts->next) {
        sl_buf_json_str(o, parts->text.p ? parts->text.p : "", parts->text.len);
        return;
    }
    sl_buf joined;
    sl_buf_init(&joined, 0);
    for (const sl_ir_part *p = parts; p; p = p->next) {
        if (joined.len)
            sl_buf_append_c(&joined, sep);
        sl_buf_append_str(&joined, p->text);
    }
    sl_buf_json_str(o, joined.p ? joined.p : "", joined.len);
    sl_buf_free(&joined);
}

void sl_ir_openai_error(const sl_ir_error *e, sl_buf *o)
{
    sl_buf_append_c(o, "{\"error\":{\"message\":");
    sl_ir_put_str(o, e->message, "\"error\"");
    sl_buf_append_c(o, ",\"type\":");
    sl_ir_put_str(o, e->type, "\"api_error\"");
    sl_buf_append_c(o, ",\"param\":");
    sl_ir_put_str(o, e->param, "null");
    sl_buf_append_c(o, ",\"code\":");
    sl_ir_put_str(o, e->code, "null");
    sl_buf_append_c(o, "}}");
}

void sl_ir_openai_error_event(const sl_ir_error *e, sl_buf *o)
{
    sl_buf_append_c(o, "data: ");
    sl_ir_openai_error(e, o);
    sl_buf_append_c(o, "\n\n");
}
