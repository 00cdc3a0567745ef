/* translate.c — OpenAI Chat Completions <-> Anthropic Messages; see translate.h. */
#include "sluice/translate.h"

#include <stdio.h>
#include <stdlib.h>

static int refuse(sl_tr_error *e, const char *msg, const char *param)
{
    e->message = msg;
    e->param = param;
    return SL_EINVAL;
}

static bool is_str(const sl_json *v)
{
    return v && v->type == SL_JSON_STRING;
}
static bool is_num(const sl_json *v)
{
    return v && v->type == SL_JSON_NUMBER;
}

static void put_raw(sl_buf *o, const char *key, const sl_json *v)
{
    sl_buf_printf(o, ",\"%s\":", key);
    sl_buf_append_str(o, v->raw);
}

/* ---- OpenAI request -> Anthropic request ----------------------------------------- */

/* An image_url part as an Anthropic image block. */
static int image_block(const sl_json *part, sl_buf *o, sl_tr_error *e)
{
    const sl_json *iu = sl_json_get(part, "image_url");
    const sl_json *url = iu ? (is_str(iu) ? iu : sl_json_get(iu, "url")) : NULL;
    if (!is_str(url))
        return refuse(e, "image_url needs a url", "messages");
    sl_str u = url->str;
    if (u.len > 5 && memcmp(u.p, "data:", 5) == 0) {
        const char *semi = memchr(u.p, ';', u.len), *comma = memchr(u.p, ',', u.len);
        if (!semi || !comma || comma < semi)
            return refuse(e, "image data URLs must be base64", "messages");
        sl_buf_append_c(o, "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":");
        sl_buf_json_str(o, u.p + 5, (size_t)(semi - u.p - 5));
        sl_buf_append_c(o, ",\"data\":");
        sl_buf_json_str(o, comma + 1, (size_t)(u.p + u.len - comma - 1));
        sl_buf_append_c(o, "}}");
        return SL_OK;
    }
    sl_buf_append_c(o, "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":");
    sl_buf_json_str(o, u.p, u.len);
    sl_buf_append_c(o, "}}");
    return SL_OK;
}

/* Content (string or parts) as Anthropic content blocks, appended after sep. */
static int content_blocks(const sl_json *c, sl_buf *o, bool *first, sl_tr_error *e)
{
    if (!c || c->type == SL_JSON_NULL)
        return SL_OK;
    if (is_str(c)) {
        if (!c->str.len)
            return SL_OK;
        sl_buf_append_c(o,
                        *first ? "{\"type\":\"text\",\"text\":" : ",{\"type\":\"text\",\"text\":");
        sl_buf_json_str(o, c->str.p, c->str.len);
        sl_buf_append_c(o, "}");
        *first = false;
        return SL_OK;
    }
    for (const sl_json *p = c->type == SL_JSON_ARRAY ? c->child : NULL; p; p = p->next) {
        const sl_json *type = sl_json_get(p, "type");
        if (!*first)
            sl_buf_append_c(o, ",");
        if (is_str(type) && sl_str_eq_c(type->str, "text")) {
            const sl_json *t = sl_json_get(p, "text");
            if (!is_str(t))
                return refuse(e, "a text part needs text", "messages");
            sl_buf_append_c(o, "{\"type\":\"text\",\"text\":");
            sl_buf_json_str(o, t->str.p, t->str.len);
            sl_buf_append_c(o, "}");
        } else if (is_str(type) && sl_str_eq_c(type->str, "image_url")) {
            if (image_block(p, o, e))
                return SL_EINVAL;
        } else {
            return refuse(e,
                          "only text and image_url content parts can go to an anthropic provider",
                          "messages");
        }
        *first = false;
    }
    return SL_OK;
}

static void text_of(const sl_json *c, sl_buf *o)
{
    if (is_str(c)) {
        sl_buf_append_str(o, c->str);
        return;
    }
    for (const sl_json *p = c && c->type == SL_JSON_ARRAY ? c->child : NULL; p; p = p->next) {
        const sl_json *t = sl_json_get(p, "text");
        if (is_str(t))
            sl_buf_append_str(o, t->str);
    }
}

/* Anthropic wants user/assistant alternation: consecutive same-role messages merge. */
typedef struct conv {
    sl_buf *o;
    const char *role; /* role of the open message, or NULL */
    bool first_block;
    int n;
} conv;

static void open_role(conv *cv, const char *role)
{
    if (cv->role && strcmp(cv->role, role) == 0) {
        return;
    }
    if (cv->role)
        sl_buf_append_c(cv->o, "]}");
    sl_buf_printf(cv->o, "%s{\"role\":\"%s\",\"content\":[", cv->n++ ? "," : "", role);
    cv->role = role;
    cv->first_block = true;
}

static int tool_use_blocks(conv *cv, const sl_json *calls, sl_tr_error *e)
{
    for (const sl_json *t = calls->child; t; t = t->next) {
        const sl_json *fn = sl_json_get(t, "function");
        const sl_json *id = sl_json_get(t, "id"), *name = fn ? sl_json_get(fn, "name") : NULL;
        const sl_json *args = fn ? sl_json_get(fn, "arguments") : NULL;
        if (!is_str(id) || !is_str(name))
            return refuse(e, "tool_calls need an id and a function name", "messages");
        sl_arena a;
        sl_arena_init(&a, NULL, 0, 1 << 20);
        sl_json *input = NULL;
        sl_json_error je;
        int rc = is_str(args) && args->str.len
                     ? sl_json_parse(&a, args->str.p, args->str.len, NULL, &input, &je)
                     : SL_OK;
        if (rc || (input && input->type != SL_JSON_OBJECT)) {
            sl_arena_free(&a);
            return refuse(e, "tool call arguments must be a JSON object", "messages");
        }
        sl_buf_append_c(cv->o, cv->first_block ? "" : ",");
        sl_buf_append_c(cv->o, "{\"type\":\"tool_use\",\"id\":");
        sl_buf_append_str(cv->o, id->raw);
        sl_buf_append_c(cv->o, ",\"name\":");
        sl_buf_append_str(cv->o, name->raw);
        sl_buf_append_c(cv->o, ",\"input\":");
        if (input)
            sl_json_canonical(input, cv->o, NULL);
        else
            sl_buf_append_c(cv->o, "{}");
        sl_buf_append_c(cv->o, "}");
        cv->first_block = false;
        sl_arena_free(&a);
    }
    return SL_OK;
}

static int convert_messages(const sl_json *msgs, sl_buf *o, sl_buf *system, sl_tr_error *e)
{
    conv cv = {.o = o};
    sl_buf_append_c(o, ",\"messages\":[");
    for (const sl_json *m = msgs->child; m; m = m->next) {
        const sl_json *role = sl_json_get(m, "role"), *content = sl_json_get(m, "content");
        if (!is_str(role))
            return refuse(e, "every message needs a role", "messages");
        if (sl_str_eq_c(role->str, "system") || sl_str_eq_c(role->str, "developer")) {
            if (system->len)
                sl_buf_append_c(system, "\n\n");
            text_of(content, system);
            continue;
        }
        if (sl_str_eq_c(role->str, "tool")) {
            const sl_json *id = sl_json_get(m, "tool_call_id");
            if (!is_str(id))
                return refuse(e, "tool messages need a tool_call_id", "messages");
            open_role(&cv, "user");
            sl_buf_append_c(o, cv.first_block ? "" : ",");
            sl_buf_append_c(o, "{\"type\":\"tool_result\",\"tool_use_id\":");
            sl_buf_append_str(o, id->raw);
            sl_buf_append_c(o, ",\"content\":");
            sl_buf tmp;
            sl_buf_init(&tmp, 0);
            text_of(content, &tmp);
            sl_buf_json_str(o, tmp.p ? tmp.p : "", tmp.len);
            sl_buf_free(&tmp);
            sl_buf_append_c(o, "}");
            cv.first_block = false;
            continue;
        }
        bool assistant = sl_str_eq_c(role->str, "assistant");
        if (!assistant && !sl_str_eq_c(role->str, "user"))
            return refuse(e, "this message role cannot go to an anthropic provider", "messages");
        open_role(&cv, assistant ? "assistant" : "user");
        if (content_blocks(content, o, &cv.first_block, e))
            return SL_EINVAL;
        const sl_json *calls = sl_json_get(m, "tool_calls");
        if (assistant && calls && calls->type == SL_JSON_ARRAY && tool_use_blocks(&cv, calls, e))
            return SL_EINVAL;
    }
    if (cv.role)
        sl_buf_append_c(o, "]}");
    sl_buf_append_c(o, "]");
    return SL_OK;
}

static int convert_tools(const sl_json *chat, sl_buf *o, sl_tr_error *e)
{
    const sl_json *tools = sl_json_get(chat, "tools");
    if (tools && tools->type == SL_JSON_ARRAY && tools->n) {
        sl_buf_append_c(o, ",\"tools\":[");
        int i = 0;
        for (const sl_json *t = tools->child; t; t = t->next, i++) {
            const sl_json *type = sl_json_get(t, "type"), *fn = sl_json_get(t, "function");
            if (!is_str(type) || !sl_str_eq_c(type->str, "function") || !fn)
                return refuse(e, "only function tools can go to an anthropic provider", "tools");
            const sl_json *name = sl_json_get(fn, "name"), *desc = sl_json_get(fn, "description");
            const sl_json *params = sl_json_get(fn, "parameters");
            if (!is_str(name))
                return refuse(e, "a function tool needs a name", "tools");
            sl_buf_append_c(o, i ? ",{\"name\":" : "{\"name\":");
            sl_buf_append_str(o, name->raw);
            if (is_str(desc))
                put_raw(o, "description", desc);
            sl_buf_append_c(o, ",\"input_schema\":");
            if (params && params->type == SL_JSON_OBJECT)
                sl_buf_append_str(o, params->raw);
            else
                sl_buf_append_c(o, "{\"type\":\"object\",\"properties\":{}}");
            sl_buf_append_c(o, "}");
        }
        sl_buf_append_c(o, "]");
    }
    const sl_json *tc = sl_json_get(chat, "tool_choice");
    if (!tc || tc->type == SL_JSON_NULL)
        return SL_OK;
    if (is_str(tc)) {
        const char *t = sl_str_eq_c(tc->str, "required") ? "any"
                        : sl_str_eq_c(tc->str, "none")   ? "none"
                                                         : "auto";
        sl_buf_printf(o, ",\"tool_choice\":{\"type\":\"%s\"}", t);
        return SL_OK;
    }
    const sl_json *fn = sl_json_get(tc, "function");
    const sl_json *name = fn ? sl_json_get(fn, "name") : NULL;
    if (!is_str(name))
        return refuse(e, "tool_choice must name a function", "tool_choice");
    sl_buf_append_c(o, ",\"tool_choice\":{\"type\":\"tool\",\"name\":");
    sl_buf_append_str(o, name->raw);
    sl_buf_append_c(o, "}");
    return SL_OK;
}

static int check_unsupported(const sl_json *chat, sl_tr_error *e)
{
    const sl_json *n = sl_json_get(chat, "n");
    if (is_num(n) && n->num != 1)
        return refuse(e, "n > 1 is not supported by anthropic providers", "n");
    static const char *const never[] = {"logprobs", "top_logprobs", "logit_bias",
                                        "audio",    "modalities",   "prediction"};
    for (size_t i = 0; i < SL_ARRAY_LEN(never); i++) {
        const sl_json *v = sl_json_get(chat, never[i]);
        if (v && v->type != SL_JSON_NULL && v->type != SL_JSON_FALSE)
            return refuse(e, "this parameter is not supported by anthropic providers", never[i]);
    }
    static const char *const zero[] = {"presence_penalty", "frequency_penalty"};
    for (size_t i = 0; i < SL_ARRAY_LEN(zero); i++) {
        const sl_json *v = sl_json_get(chat, zero[i]);
        if (is_num(v) && v->num != 0)
            return refuse(e, "penalties are not supported by anthropic providers", zero[i]);
    }
    const sl_json *rf = sl_json_get(chat, "response_format");
    const sl_json *rft = rf ? sl_json_get(rf, "type") : NULL;
    if (rft && !(is_str(rft) && sl_str_eq_c(rft->str, "text")))
        return refuse(e, "response_format is not supported by anthropic providers",
                      "response_format");
    return SL_OK;
}

int sl_tr_chat_to_messages_req(const sl_json *chat, sl_buf *o, sl_tr_error *e)
{
    if (check_unsupported(chat, e))
        return SL_EINVAL;
    const sl_json *model = sl_json_get(chat, "model"), *msgs = sl_json_get(chat, "messages");
    if (!is_str(model) || !msgs || msgs->type != SL_JSON_ARRAY)
        return refuse(e, "model and messages are required", "messages");
    sl_buf_append_c(o, "{\"model\":");
    sl_buf_append_str(o, model->raw);
    const sl_json *mt = sl_json_get(chat, "max_completion_tokens");
    if (!is_num(mt))
        mt = sl_json_get(chat, "max_tokens");
    if (is_num(mt))
        put_raw(o, "max_tokens", mt);
    else
        sl_buf_printf(o, ",\"max_tokens\":%d", SL_TR_DEFAULT_MAX_TOKENS);
    sl_buf system;
    sl_buf_init(&system, 0);
    int rc = convert_messages(msgs, o, &system, e);
    if (!rc && system.len) {
        sl_buf_append_c(o, ",\"system\":");
        sl_buf_json_str(o, system.p, system.len);
    }
    sl_buf_free(&system);
    if (rc || convert_tools(chat, o, e))
        return SL_EINVAL;
    const sl_json *t = sl_json_get(chat, "temperature");
    if (is_num(t))
        sl_buf_printf(o, ",\"temperature\":%g", t->num > 1 ? 1.0 : t->num);
    const sl_json *tp = sl_json_get(chat, "top_p");
    if (is_num(tp))
        put_raw(o, "top_p", tp);
    const sl_json *stop = sl_json_get(chat, "stop");
    if (is_str(stop)) {
        sl_buf_append_c(o, ",\"stop_sequences\":[");
        sl_buf_append_str(o, stop->raw);
        sl_buf_append_c(o, "]");
    } else if (stop && stop->type == SL_JSON_ARRAY) {
        put_raw(o, "stop_sequences", stop);
    }
    const sl_json *st = sl_json_get(chat, "stream");
    if (st && st->type == SL_JSON_TRUE)
        sl_buf_append_c(o, ",\"stream\":true");
    const sl_json *user = sl_json_get(chat, "user");
    if (is_str(user)) {
        sl_buf_append_c(o, ",\"metadata\":{\"user_id\":");
        sl_buf_append_str(o, user->raw);
        sl_buf_append_c(o, "}");
    }
    sl_buf_append_c(o, "}");
    return SL_OK;
}

/* ---- Anthropic request -> OpenAI request ---------------------------------------------- */

static void a_blocks_to_parts(const sl_json *content, sl_buf *o, sl_buf *tool_calls,
                              sl_buf *tool_msgs)
{
    if (is_str(content)) {
        sl_buf_append_str(o, content->raw);
        return;
    }
    sl_buf_append_c(o, "[");
    bool first = true;
    for (const sl_json *b = content && content->type == SL_JSON_ARRAY ? content->child : NULL; b;
         b = b->next) {
        const sl_json *type = sl_json_get(b, "type");
        if (!is_str(type))
            continue;
        if (sl_str_eq_c(type->str, "text")) {
            const sl_json *t = sl_json_get(b, "text");
            if (!is_str(t))
                continue;
            sl_buf_append_c(o, first ? "{\"type\":\"text\",\"text\":"
                                     : ",{\"type\":\"text\",\"text\":");
            sl_buf_append_str(o, t->raw);
            sl_buf_append_c(o, "}");
            first = false;
        } else if (sl_str_eq_c(type->str, "image")) {
            const sl_json *src = sl_json_get(b, "source");
            const sl_json *mt = src ? sl_json_get(src, "media_type") : NULL,
                          *data = src ? sl_json_get(src, "data") : NULL;
            const sl_json *url = src ? sl_json_get(src, "url") : NULL;
            sl_buf_append_c(o, first ? "" : ",");
            sl_buf_append_c(o, "{\"type\":\"image_url\",\"image_url\":{\"url\":");
            if (is_str(url)) {
                sl_buf_append_str(o, url->raw);
            } else if (is_str(mt) && is_str(data)) {
                sl_buf u;
                sl_buf_init(&u, 0);
                sl_buf_printf(&u, "data:%.*s;base64,%.*s", (int)mt->str.len, mt->str.p,
                              (int)data->str.len, data->str.p);
                sl_buf_json_str(o, u.p, u.len);
                sl_buf_free(&u);
            } else {
                sl_buf_append_c(o, "\"\"");
            }
            sl_buf_append_c(o, "}}");
            first = false;
        } else if (sl_str_eq_c(type->str, "tool_use") && tool_calls) {
            const sl_json *id = sl_json_get(b, "id"), *name = sl_json_get(b, "name"),
                          *in = sl_json_get(b, "input");
            sl_buf_append_c(tool_calls, tool_calls->len ? ",{\"id\":" : "{\"id\":");
            sl_buf_append_str(tool_calls, is_str(id) ? id->raw : SL_STR("\"\""));
            sl_buf_append_c(tool_calls, ",\"type\":\"function\",\"function\":{\"name\":");
            sl_buf_append_str(tool_calls, is_str(name) ? name->raw : SL_STR("\"\""));
            sl_buf_append_c(tool_calls, ",\"arguments\":");
            sl_buf_json_str(tool_calls, in ? in->raw.p : "{}", in ? in->raw.len : 2);
            sl_buf_append_c(tool_calls, "}}");
        } else if (sl_str_eq_c(type->str, "tool_result") && tool_msgs) {
            const sl_json *id = sl_json_get(b, "tool_use_id"), *c = sl_json_get(b, "content");
            sl_buf txt;
            sl_buf_init(&txt, 0);
            text_of(c, &txt);
            sl_buf_append_c(tool_msgs, ",{\"role\":\"tool\",\"tool_call_id\":");
            sl_buf_append_str(tool_msgs, is_str(id) ? id->raw : SL_STR("\"\""));
            sl_buf_append_c(tool_msgs, ",\"content\":");
            sl_buf_json_str(tool_msgs, txt.p ? txt.p : "", txt.len);
            sl_buf_append_c(tool_msgs, "}");
            sl_buf_free(&txt);
        }
    }
    sl_buf_append_c(o, "]");
}

int sl_tr_messages_to_chat_req(const sl_json *msg, sl_buf *o, sl_tr_error *e)
{
    const sl_json *model = sl_json_get(msg, "model"), *msgs = sl_json_get(msg, "messages");
    if (!is_str(model) || !msgs || msgs->type != SL_JSON_ARRAY)
        return refuse(e, "model and messages are required", "messages");
    sl_buf_append_c(o, "{\"model\":");
    sl_buf_append_str(o, model->raw);
    sl_buf_append_c(o, ",\"messages\":[");
    bool first = true;
    const sl_json *sys = sl_json_get(msg, "system");
    if (sys) {
        sl_buf txt;
        sl_buf_init(&txt, 0);
        text_of(sys, &txt);
        sl_buf_append_c(o, "{\"role\":\"system\",\"content\":");
        sl_buf_json_str(o, txt.p ? txt.p : "", txt.len);
        sl_buf_append_c(o, "}");
        sl_buf_free(&txt);
        first = false;
    }
    for (const sl_json *m = msgs->child; m; m = m->next) {
        const sl_json *role = sl_json_get(m, "role");
        if (!is_str(role))
            return refuse(e, "every message needs a role", "messages");
        sl_buf calls, tools, parts;
        sl_buf_init(&calls, 0);
        sl_buf_init(&tools, 0);
        sl_buf_init(&parts, 0);
        a_blocks_to_parts(sl_json_get(m, "content"), &parts, &calls, &tools);
        if (tools.len) /* tool results first: they answer the previous assistant turn */
            sl_buf_append(o, first ? tools.p + 1 : tools.p, first ? tools.len - 1 : tools.len),
                first = false;
        bool empty_parts = parts.len == 2; /* "[]" */
        if (!empty_parts || calls.len) {
            sl_buf_append_c(o, first ? "{\"role\":" : ",{\"role\":");
            sl_buf_append_str(o, role->raw);
            sl_buf_append_c(o, ",\"content\":");
            if (empty_parts)
                sl_buf_append_c(o, "null");
            else
                sl_buf_append(o, parts.p, parts.len);
            if (calls.len)
                sl_buf_printf(o, ",\"tool_calls\":[%s]", calls.p);
            sl_buf_append_c(o, "}");
            first = false;
        }
        sl_buf_free(&calls);
        sl_buf_free(&tools);
        sl_buf_free(&parts);
    }
    sl_buf_append_c(o, "]");
    static const char *const same[] = {"max_tokens", "temperature", "top_p", "stream"};
    for (size_t i = 0; i < SL_ARRAY_LEN(same); i++) {
        const sl_json *v = sl_json_get(msg, same[i]);
        if (v)
            put_raw(o, same[i], v);
    }
    const sl_json *stop = sl_json_get(msg, "stop_sequences");
    if (stop)
        put_raw(o, "stop", stop);
    const sl_json *tools = sl_json_get(msg, "tools");
    if (tools && tools->type == SL_JSON_ARRAY && tools->n) {
        sl_buf_append_c(o, ",\"tools\":[");
        for (const sl_json *t = tools->child; t; t = t->next) {
            const sl_json *name = sl_json_get(t, "name"), *desc = sl_json_get(t, "description");
            const sl_json *schema = sl_json_get(t, "input_schema");
            sl_buf_append_c(o, t == tools->child ? "{" : ",{");
            sl_buf_append_c(o, "\"type\":\"function\",\"function\":{\"name\":");
            sl_buf_append_str(o, is_str(name) ? name->raw : SL_STR("\"\""));
            if (is_str(desc))
                put_raw(o, "description", desc);
            if (schema)
                put_raw(o, "parameters", schema);
            sl_buf_append_c(o, "}}");
        }
        sl_buf_append_c(o, "]");
    }
    const sl_json *st = sl_json_get(msg, "stream");
    if (st && st->type == SL_JSON_TRUE)
        sl_buf_append_c(o, ",\"stream_options\":{\"include_usage\":true}");
    sl_buf_append_c(o, "}");
    return SL_OK;
}

/* ---- answers ----------------------------------------------------------------------- */

static const char *finish_from_stop(sl_str s)
{
    if (sl_str_eq_c(s, "max_tokens"))
        return "length";
    if (sl_str_eq_c(s, "tool_use"))
        return "tool_calls";
    return "stop";
}

static const char *stop_from_finish(sl_str s)
{
    if (sl_str_eq_c(s, "length"))
        return "max_tokens";
    if (sl_str_eq_c(s, "tool_calls") || sl_str_eq_c(s, "function_call"))
        return "tool_use";
    return "end_turn";
}

static long num_of(const sl_json *obj, const char *key)
{
    const sl_json *v = sl_json_get(obj, key);
    return is_num(v) ? (long)sl_json_int(v, -1e15, 1e15, 0) : 0;
}

int sl_tr_messages_to_chat_resp(const sl_json *msg, sl_buf *o)
{
    const sl_json *id = sl_json_get(msg, "id"), *model = sl_json_get(msg, "model");
    const sl_json *content = sl_json_get(msg, "content"), *stop = sl_json_get(msg, "stop_reason");
    sl_buf text, calls;
    sl_buf_init(&text, 0);
    sl_buf_init(&calls, 0);
    for (const sl_json *b = content && content->type == SL_JSON_ARRAY ? content->child : NULL; b;
         b = b->next) {
        const sl_json *type = sl_json_get(b, "type");
        if (is_str(type) && sl_str_eq_c(type->str, "text")) {
            const sl_json *t = sl_json_get(b, "text");
            if (is_str(t))
                sl_buf_append_str(&text, t->str);
        } else if (is_str(type) && sl_str_eq_c(type->str, "tool_use")) {
            const sl_json *tid = sl_json_get(b, "id"), *name = sl_json_get(b, "name"),
                          *in = sl_json_get(b, "input");
            sl_buf_append_c(&calls, calls.len ? ",{\"id\":" : "{\"id\":");
            sl_buf_append_str(&calls, is_str(tid) ? tid->raw : SL_STR("\"\""));
            sl_buf_append_c(&calls, ",\"type\":\"function\",\"function\":{\"name\":");
            sl_buf_append_str(&calls, is_str(name) ? name->raw : SL_STR("\"\""));
            sl_buf_append_c(&calls, ",\"arguments\":");
            sl_buf_json_str(&calls, in ? in->raw.p : "{}", in ? in->raw.len : 2);
            sl_buf_append_c(&calls, "}}");
        }
    }
    const sl_json *u = sl_json_get(msg, "usage");
    long in = num_of(u, "input_tokens") + num_of(u, "cache_read_input_tokens") +
              num_of(u, "cache_creation_input_tokens");
    long out = num_of(u, "output_tokens");
    sl_buf_append_c(o, "{\"id\":");
    sl_buf_append_str(o, is_str(id) ? id->raw : SL_STR("\"msg\""));
    sl_buf_append_c(o, ",\"object\":\"chat.completion\",\"created\":");
    sl_buf_printf(o, "%lld,\"model\":", (long long)(sl_wall_ms() / 1000));
    sl_buf_append_str(o, is_str(model) ? model->raw : SL_STR("\"\""));
    sl_buf_append_c(o,
                    ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    if (text.len || !calls.len)
        sl_buf_json_str(o, text.p ? text.p : "", text.len);
    else
        sl_buf_append_c(o, "null");
    if (calls.len)
        sl_buf_printf(o, ",\"tool_calls\":[%s]", calls.p);
    sl_buf_printf(o, "},\"logprobs\":null,\"finish_reason\":\"%s\"}]",
                  is_str(stop) ? finish_from_stop(stop->str) : "stop");
    sl_buf_printf(
        o, ",\"usage\":{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,\"total_tokens\":%ld}}", in,
        out, in + out);
    sl_buf_free(&text);
    sl_buf_free(&calls);
    return SL_OK;
}

int sl_tr_chat_to_messages_resp(const sl_json *chat, sl_buf *o)
{
    const sl_json *id = sl_json_get(chat, "id"), *model = sl_json_get(chat, "model");
    const sl_json *choices = sl_json_get(chat, "choices");
    const sl_json *ch = choices && choices->type == SL_JSON_ARRAY ? choices->child : NULL;
    const sl_json *msg = ch ? sl_json_get(ch, "message") : NULL;
    const sl_json *content = msg ? sl_json_get(msg, "content") : NULL;
    const sl_json *calls = msg ? sl_json_get(msg, "tool_calls") : NULL;
    const sl_json *fr = ch ? sl_json_get(ch, "finish_reason") : NULL;
    sl_buf_append_c(o, "{\"id\":");
    sl_buf_append_str(o, is_str(id) ? id->raw : SL_STR("\"msg\""));
    sl_buf_append_c(o, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    sl_buf_append_str(o, is_str(model) ? model->raw : SL_STR("\"\""));
    sl_buf_append_c(o, ",\"content\":[");
    bool first = true;
    if (is_str(content) && content->str.len) {
        sl_buf_append_c(o, "{\"type\":\"text\",\"text\":");
        sl_buf_append_str(o, content->raw);
        sl_buf_append_c(o, "}");
        first = false;
    }
    for (const sl_json *t = calls && calls->type == SL_JSON_ARRAY ? calls->child : NULL; t;
         t = t->next) {
        const sl_json *fn = sl_json_get(t, "function"), *tid = sl_json_get(t, "id");
        const sl_json *name = fn ? sl_json_get(fn, "name") : NULL,
                      *args = fn ? sl_json_get(fn, "arguments") : NULL;
        sl_buf_append_c(o, first ? "{\"type\":\"tool_use\",\"id\":"
                                 : ",{\"type\":\"tool_use\",\"id\":");
        sl_buf_append_str(o, is_str(tid) ? tid->raw : SL_STR("\"\""));
        sl_buf_append_c(o, ",\"name\":");
        sl_buf_append_str(o, is_str(name) ? name->raw : SL_STR("\"\""));
        sl_buf_append_c(o, ",\"input\":");
        bool obj = is_str(args) && args->str.len && args->str.p[0] == '{';
        sl_buf_append(o, obj ? args->str.p : "{}", obj ? args->str.len : 2);
        sl_buf_append_c(o, "}");
        first = false;
    }
    const sl_json *u = sl_json_get(chat, "usage");
    sl_buf_printf(o,
                  "],\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":%ld,"
                  "\"output_tokens\":%ld}}",
                  is_str(fr) ? stop_from_finish(fr->str) : "end_turn", num_of(u, "prompt_tokens"),
                  num_of(u, "completion_tokens"));
    return SL_OK;
}

void sl_tr_error_to_openai(const sl_json *a, sl_buf *o)
{
    const sl_json *err = sl_json_get(a, "error");
    const sl_json *msg = sl_json_get(err, "message"), *type = sl_json_get(err, "type");
    sl_buf_append_c(o, "{\"error\":{\"message\":");
    sl_buf_append_str(o, is_str(msg) ? msg->raw : SL_STR("\"provider error\""));
    sl_buf_append_c(o, ",\"type\":");
    sl_buf_append_str(o, is_str(type) ? type->raw : SL_STR("\"api_error\""));
    sl_buf_append_c(o, ",\"param\":null,\"code\":null}}");
}

void sl_tr_error_to_anthropic(const sl_json *oa, sl_buf *o)
{
    const sl_json *err = sl_json_get(oa, "error");
    const sl_json *msg = sl_json_get(err, "message"), *type = sl_json_get(err, "type");
    sl_buf_append_c(o, "{\"type\":\"error\",\"error\":{\"type\":");
    sl_buf_append_str(o, is_str(type) ? type->raw : SL_STR("\"api_error\""));
    sl_buf_append_c(o, ",\"message\":");
    sl_buf_append_str(o, is_str(msg) ? msg->raw : SL_STR("\"provider error\""));
    sl_buf_append_c(o, "}}");
}

/* ---- streams ------------------------------------------------------------------------ */

void sl_tr_stream_init(sl_tr_stream *s, sl_tr_dir dir, bool include_usage)
{
    memset(s, 0, sizeof(*s));
    s->dir = dir;
    s->include_usage = include_usage;
    s->tool_index = -1;
    snprintf(s->finish, sizeof s->finish, "stop");
}

static void copy_to(char *dst, size_t cap, const sl_json *v)
{
    if (is_str(v))
        snprintf(dst, cap, "%.*s", (int)SL_MIN(v->str.len, cap - 1), v->str.p);
}

/* One chat.completion.chunk with the given delta (raw JSON) and finish. */
static void o_chunk(sl_tr_stream *s, sl_buf *o, const char *delta, const char *finish)
{
    sl_buf_append_c(o, "data: {\"id\":");
    sl_buf_json_cstr(o, s->id);
    sl_buf_printf(o, ",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":",
                  (long long)(sl_wall_ms() / 1000));
    sl_buf_json_cstr(o, s->model);
    sl_buf_printf(
        o, ",\"choices\":[{\"index\":0,\"delta\":%s,\"logprobs\":null,\"finish_reason\":", delta);
    if (finish)
        sl_buf_printf(o, "\"%s\"", finish);
    else
        sl_buf_append_c(o, "null");
    sl_buf_append_c(o, "}]}\n\n");
}

static void a2o(sl_tr_stream *s, sl_str event, const sl_json *d, sl_buf *o)
{
    const sl_json *type = sl_json_get(d, "type");
    sl_str t = is_str(type) ? type->str : event;
    sl_buf delta;
    sl_buf_init(&delta, 0);
    if (sl_str_eq_c(t, "message_start")) {
        const sl_json *m = sl_json_get(d, "message");
        copy_to(s->id, sizeof s->id, sl_json_get(m, "id"));
        copy_to(s->model, sizeof s->model, sl_json_get(m, "model"));
        s->input_tokens = num_of(sl_json_get(m, "usage"), "input_tokens");
        o_chunk(s, o, "{\"role\":\"assistant\",\"content\":\"\"}", NULL);
    } else if (sl_str_eq_c(t, "content_block_start")) {
        const sl_json *b = sl_json_get(d, "content_block");
        const sl_json *bt = sl_json_get(b, "type");
        if (is_str(bt) && sl_str_eq_c(bt->str, "tool_use")) {
            s->tool_index++;
            sl_buf_printf(&delta, "{\"tool_calls\":[{\"index\":%d,\"id\":", s->tool_index);
            const sl_json *id = sl_json_get(b, "id"), *name = sl_json_get(b, "name");
            sl_buf_append_str(&delta, is_str(id) ? id->raw : SL_STR("\"\""));
            sl_buf_append_c(&delta, ",\"type\":\"function\",\"function\":{\"name\":");
            sl_buf_append_str(&delta, is_str(name) ? name->raw : SL_STR("\"\""));
            sl_buf_append_c(&delta, ",\"arguments\":\"\"}}]}");
            o_chunk(s, o, delta.p, NULL);
        }
    } else if (sl_str_eq_c(t, "content_block_delta")) {
        const sl_json *dd = sl_json_get(d, "delta");
        const sl_json *text = sl_json_get(dd, "text"), *pj = sl_json_get(dd, "partial_json");
        if (is_str(text)) {
            sl_buf_append_c(&delta, "{\"content\":");
            sl_buf_append_str(&delta, text->raw);
            sl_buf_append_c(&delta, "}");
            o_chunk(s, o, delta.p, NULL);
        } else if (is_str(pj)) {
            sl_buf_printf(&delta, "{\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":",
                          SL_MAX(s->tool_index, 0));
            sl_buf_append_str(&delta, pj->raw);
            sl_buf_append_c(&delta, "}}]}");
            o_chunk(s, o, delta.p, NULL);
        }
    } else if (sl_str_eq_c(t, "message_delta")) {
        const sl_json *dd = sl_json_get(d, "delta");
        const sl_json *sr = sl_json_get(dd, "stop_reason");
        if (is_str(sr))
            snprintf(s->finish, sizeof s->finish, "%s", finish_from_stop(sr->str));
        const sl_json *u = sl_json_get(d, "usage");
        if (u)
            s->output_tokens = num_of(u, "output_tokens");
    } else if (sl_str_eq_c(t, "message_stop")) {
        o_chunk(s, o, "{}", s->finish);
        if (s->include_usage) {
            sl_buf_append_c(o, "data: {\"id\":");
            sl_buf_json_cstr(o, s->id);
            sl_buf_append_c(o, ",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":");
            sl_buf_json_cstr(o, s->model);
            sl_buf_printf(o,
                          ",\"choices\":[],\"usage\":{\"prompt_tokens\":%ld,\"completion_tokens\":%"
                          "ld,\"total_tokens\":%ld}}\n\n",
                          s->input_tokens, s->output_tokens, s->input_tokens + s->output_tokens);
        }
        sl_buf_append_c(o, "data: [DONE]\n\n");
        s->finished = true;
    } else if (sl_str_eq_c(t, "error")) {
        sl_buf_append_c(o, "data: ");
        sl_tr_error_to_openai(d, o);
        sl_buf_append_c(o, "\n\n");
        s->failed = true;
    }
    sl_buf_free(&delta);
}

static void a_event(sl_buf *o, const char *name, const char *json)
{
    sl_buf_printf(o, "event: %s\ndata: %s\n\n", name, json);
}

static void o2a_start(sl_tr_stream *s, sl_buf *o)
{
    if (s->started)
        return;
    s->started = true;
    sl_buf m;
    sl_buf_init(&m, 0);
    sl_buf_append_c(&m, "{\"type\":\"message_start\",\"message\":{\"id\":");
    sl_buf_json_cstr(&m, s->id);
    sl_buf_append_c(&m, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    sl_buf_json_cstr(&m, s->model);
    sl_buf_append_c(&m, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{"
                        "\"input_tokens\":0,\"output_tokens\":0}}}");
    a_event(o, "message_start", m.p);
    sl_buf_free(&m);
}

static void o2a_close_text(sl_tr_stream *s, sl_buf *o)
{
    if (!s->text_open)
        return;
    s->text_open = false;
    char j[96];
    snprintf(j, sizeof j, "{\"type\":\"content_block_stop\",\"index\":%d}", s->block++);
    a_event(o, "content_block_stop", j);
}

static void o2a_finish(sl_tr_stream *s, sl_buf *o)
{
    if (s->finished)
        return;
    o2a_start(s, o);
    o2a_close_text(s, o);
    char j[256];
    snprintf(j, sizeof j,
             "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":null}"
             ",\"usage\":{\"output_tokens\":%ld}}",
             s->finish, s->output_tokens);
    a_event(o, "message_delta", j);
    a_event(o, "message_stop", "{\"type\":\"message_stop\"}");
    s->finished = true;
}

static void o2a(sl_tr_stream *s, const sl_json *d, sl_buf *o)
{
    if (sl_json_get(d, "error")) {
        sl_buf e;
        sl_buf_init(&e, 0);
        sl_tr_error_to_anthropic(d, &e);
        a_event(o, "error", e.p);
        sl_buf_free(&e);
        s->failed = true;
        return;
    }
    if (!s->id[0])
        copy_to(s->id, sizeof s->id, sl_json_get(d, "id"));
    if (!s->model[0])
        copy_to(s->model, sizeof s->model, sl_json_get(d, "model"));
    o2a_start(s, o);
    const sl_json *u = sl_json_get(d, "usage");
    if (u && u->type == SL_JSON_OBJECT) {
        s->input_tokens = num_of(u, "prompt_tokens");
        s->output_tokens = num_of(u, "completion_tokens");
    }
    const sl_json *choices = sl_json_get(d, "choices");
    const sl_json *ch = choices && choices->type == SL_JSON_ARRAY ? choices->child : NULL;
    if (!ch)
        return;
    const sl_json *delta = sl_json_get(ch, "delta");
    const sl_json *text = sl_json_get(delta, "content");
    sl_buf j;
    sl_buf_init(&j, 0);
    if (is_str(text) && text->str.len) {
        if (!s->text_open) {
            sl_buf_printf(&j,
                          "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":{"
                          "\"type\":\"text\",\"text\":\"\"}}",
                          s->block);
            a_event(o, "content_block_start", j.p);
            sl_buf_reset(&j);
            s->text_open = true;
        }
        sl_buf_printf(&j,
                      "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":{\"type\":\"text_"
                      "delta\",\"text\":",
                      s->block);
        sl_buf_append_str(&j, text->raw);
        sl_buf_append_c(&j, "}}");
        a_event(o, "content_block_delta", j.p);
    }
    const sl_json *calls = sl_json_get(delta, "tool_calls");
    for (const sl_json *t = calls && calls->type == SL_JSON_ARRAY ? calls->child : NULL; t;
         t = t->next) {
        const sl_json *fn = sl_json_get(t, "function"), *id = sl_json_get(t, "id");
        const sl_json *name = sl_json_get(fn, "name"), *args = sl_json_get(fn, "arguments");
        sl_buf_reset(&j);
        if (is_str(id)) { /* a new tool call opens a tool_use block */
            o2a_close_text(s, o);
            if (s->tool_index >= 0) {
                sl_buf_printf(&j, "{\"type\":\"content_block_stop\",\"index\":%d}", s->block++);
                a_event(o, "content_block_stop", j.p);
                sl_buf_reset(&j);
            }
            s->tool_index++;
            sl_buf_printf(&j,
                          "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":{"
                          "\"type\":\"tool_use\",\"id\":",
                          s->block);
            sl_buf_append_str(&j, id->raw);
            sl_buf_append_c(&j, ",\"name\":");
            sl_buf_append_str(&j, is_str(name) ? name->raw : SL_STR("\"\""));
            sl_buf_append_c(&j, ",\"input\":{}}}");
            a_event(o, "content_block_start", j.p);
            sl_buf_reset(&j);
        }
        if (is_str(args) && args->str.len) {
            sl_buf_printf(&j,
                          "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":{\"type\":"
                          "\"input_json_delta\",\"partial_json\":",
                          s->block);
            sl_buf_append_str(&j, args->raw);
            sl_buf_append_c(&j, "}}");
            a_event(o, "content_block_delta", j.p);
        }
    }
    const sl_json *fr = sl_json_get(ch, "finish_reason");
    if (is_str(fr)) {
        snprintf(s->finish, sizeof s->finish, "%s", stop_from_finish(fr->str));
        if (s->tool_index >= 0 && !s->text_open) {
            sl_buf_reset(&j);
            sl_buf_printf(&j, "{\"type\":\"content_block_stop\",\"index\":%d}", s->block++);
            a_event(o, "content_block_stop", j.p);
            s->tool_index = -1;
        }
    }
    sl_buf_free(&j);
}

void sl_tr_stream_event(sl_tr_stream *s, sl_str event, sl_str data, sl_buf *o)
{
    if (s->dir == SL_TR_O2A && sl_str_eq_c(data, "[DONE]")) {
        o2a_finish(s, o);
        return;
    }
    char first[8192];
    sl_arena a;
    sl_arena_init(&a, first, sizeof first, 4u << 20);
    sl_json *d = NULL;
    sl_json_error je;
    if (sl_json_parse(&a, data.p, data.len, NULL, &d, &je) == SL_OK && d->type == SL_JSON_OBJECT) {
        if (s->dir == SL_TR_A2O)
            a2o(s, event, d, o);
        else
            o2a(s, d, o);
    }
    sl_arena_free(&a);
}
