/* openai.c — the OpenAI Chat Completions dialect (also /completions, /embeddings).
 *
 * Reads and writes chat.completion requests, answers, chunks and error
 * objects through the IR (dialect.h). sluice's own wire format is this one:
 * the client's bytes go to an openai provider untouched, and this file only
 * translates when the other side speaks another dialect. */
#include <curl/curl.h>
#include <stdio.h>

#include "sluice/dialects.h"
#include "sluice/upstream.h"

#define is_str sl_ir_is_str
#define is_num sl_ir_is_num

/* ---- path and headers ---------------------------------------------------------------- */

static const char *o_path(sl_api api)
{
    switch (api) {
    case SL_API_COMPLETIONS: return "/completions";
    case SL_API_EMBEDDINGS: return "/embeddings";
    case SL_API_CHAT:
    case SL_API_MESSAGES:
    case SL_API_RESPONSES: return "/chat/completions"; /* translated */
    case SL_API_COUNT_TOKENS: return NULL;             /* sluice estimates (proxy.c) */
    }
    return "/chat/completions";
}

static struct curl_slist *o_headers(struct curl_slist *h, const char *api_key)
{
    if (!api_key || !api_key[0])
        return h;
    char line[1024];
    snprintf(line, sizeof line, "Authorization: Bearer %s", api_key);
    return sl_header_list_append(h, line);
}

/* ---- request -> IR --------------------------------------------------------------------- */

static int o_image(const sl_json *part, sl_ir_part *p, sl_ir_refusal *e)
{
    const sl_json *iu = sl_json_get(part, "image_url");
    const sl_json *url = iu ? (is_str(iu) ? iu : sl_json_get(iu, "url")) : NULL;
    if (!is_str(url))
        return sl_ir_refuse(e, "image_url needs a url", "messages");
    p->url = url->str;
    return SL_OK;
}

/* Content (a string, null or an array of parts) as parts at *tail. */
static int o_content(const sl_json *c, sl_arena *a, sl_ir_msg *m, sl_ir_part ***tail,
                     sl_ir_refusal *e)
{
    if (is_str(c)) {
        m->plain = true;
        sl_ir_part *p = c->str.len ? sl_ir_add_part(a, tail, SL_IR_TEXT) : NULL;
        if (p)
            p->text = c->str;
        return !c->str.len || p ? SL_OK : sl_ir_nomem(e);
    }
    for (const sl_json *x = c && c->type == SL_JSON_ARRAY ? c->child : NULL; x; x = x->next) {
        sl_str type = sl_ir_str(sl_json_get(x, "type"));
        bool text = sl_str_eq_c(type, "text"), image = sl_str_eq_c(type, "image_url");
        sl_ir_part *p = sl_ir_add_part(a, tail,
                                       text    ? SL_IR_TEXT
                                       : image ? SL_IR_IMAGE
                                               : SL_IR_OTHER);
        if (!p)
            return sl_ir_nomem(e);
        p->cache_control = sl_json_get(x, "cache_control"); /* clients that target Claude */
        if (text) {
            const sl_json *t = sl_json_get(x, "text");
            if (!is_str(t))
                return sl_ir_refuse(e, "a text part needs text", "messages");
            p->text = t->str;
        } else if (image && o_image(x, p, e)) {
            return SL_EINVAL;
        } else if (!image) {
            p->text = type;
        }
    }
    return SL_OK;
}

static int o_tool_calls(const sl_json *calls, sl_arena *a, sl_ir_part ***tail, sl_ir_refusal *e)
{
    for (const sl_json *t = calls && calls->type == SL_JSON_ARRAY ? calls->child : NULL; t;
         t = t->next) {
        const sl_json *fn = sl_json_get(t, "function");
        const sl_json *id = sl_json_get(t, "id"), *name = sl_json_get(fn, "name");
        if (!is_str(id) || !is_str(name))
            return sl_ir_refuse(e, "tool_calls need an id and a function name", "messages");
        sl_ir_part *p = sl_ir_add_part(a, tail, SL_IR_TOOL_CALL);
        if (!p)
            return sl_ir_nomem(e);
        p->id = id->str;
        p->name = name->str;
        p->args = sl_ir_str(sl_json_get(fn, "arguments"));
    }
    return SL_OK;
}

/* System text: one part, or one per text part when a part carries a
 * cache_control (the prompt cache's breakpoints sit between them). */
static int o_system(const sl_json *content, sl_arena *a, sl_ir_part ***sys, sl_ir_refusal *e)
{
    bool marked = false;
    for (const sl_json *x = content && content->type == SL_JSON_ARRAY ? content->child : NULL; x;
         x = x->next)
        marked |= sl_json_get(x, "cache_control") != NULL;
    if (!marked) {
        sl_ir_part *p = sl_ir_add_part(a, sys, SL_IR_TEXT);
        return p ? (p->text = sl_ir_text_of(content, a), SL_OK) : sl_ir_nomem(e);
    }
    for (const sl_json *x = content->child; x; x = x->next) {
        const sl_json *t = sl_json_get(x, "text");
        if (!is_str(t))
            continue;
        sl_ir_part *p = sl_ir_add_part(a, sys, SL_IR_TEXT);
        if (!p)
            return sl_ir_nomem(e);
        p->text = t->str;
        p->cache_control = sl_json_get(x, "cache_control");
    }
    return SL_OK;
}

/* One message: system text, a tool result (a user turn in the IR), or a turn. */
static int o_message(const sl_json *m, sl_arena *a, sl_ir_part ***sys, sl_ir_msg ***tail,
                     sl_ir_refusal *e)
{
    const sl_json *role = sl_json_get(m, "role"), *content = sl_json_get(m, "content");
    if (!is_str(role))
        return sl_ir_refuse(e, "every message needs a role", "messages");
    sl_str r = role->str;
    if (sl_str_eq_c(r, "system") || sl_str_eq_c(r, "developer"))
        return o_system(content, a, sys, e);
    bool tool = sl_str_eq_c(r, "tool"), assistant = sl_str_eq_c(r, "assistant");
    sl_ir_role ir_role = tool || sl_str_eq_c(r, "user") ? SL_IR_USER
                         : assistant                    ? SL_IR_ASSISTANT
                                                        : SL_IR_ROLE_OTHER;
    sl_ir_msg *msg = sl_ir_add_msg(a, tail, ir_role, tool ? SL_STR("user") : r);
    if (!msg)
        return sl_ir_nomem(e);
    sl_ir_part **parts = &msg->parts;
    if (tool) {
        const sl_json *id = sl_json_get(m, "tool_call_id");
        if (!is_str(id))
            return sl_ir_refuse(e, "tool messages need a tool_call_id", "messages");
        sl_ir_part *p = sl_ir_add_part(a, &parts, SL_IR_TOOL_RESULT);
        return p ? (p->id = id->str, p->text = sl_ir_text_of(content, a), SL_OK) : sl_ir_nomem(e);
    }
    int rc = o_content(content, a, msg, &parts, e);
    if (rc == SL_OK && assistant)
        rc = o_tool_calls(sl_json_get(m, "tool_calls"), a, &parts, e);
    return rc;
}

static int o_tools(const sl_json *tools, sl_arena *a, sl_ir_req *ir, sl_ir_refusal *e)
{
    sl_ir_tool **tail = &ir->tools;
    for (const sl_json *t = tools && tools->type == SL_JSON_ARRAY ? tools->child : NULL; t;
         t = t->next) {
        sl_ir_tool *tool = sl_arena_calloc(a, sizeof(*tool));
        if (!tool)
            return sl_ir_nomem(e);
        *tail = tool, tail = &tool->next;
        const sl_json *fn = sl_json_get(t, "function");
        tool->type = sl_ir_str(sl_json_get(t, "type"));
        tool->function = sl_str_eq_c(tool->type, "function") && fn;
        tool->cache_control = sl_json_get(t, "cache_control");
        if (tool->function && sl_ir_take_function(fn, tool, e))
            return SL_EINVAL;
    }
    return SL_OK;
}

static int o_tool_choice(const sl_json *tc, sl_ir_req *ir, sl_ir_refusal *e)
{
    if (sl_ir_take_choice_word(tc, ir))
        return SL_OK;
    const sl_json *name = sl_json_get(sl_json_get(tc, "function"), "name");
    if (!is_str(name))
        return sl_ir_refuse(e, "tool_choice must name a function", "tool_choice");
    ir->tool_choice = SL_IR_CHOICE_TOOL;
    ir->tool_choice_name = name->str;
    return SL_OK;
}

static void o_format(const sl_json *rf, sl_ir_format *f)
{
    const sl_json *type = sl_json_get(rf, "type");
    if (!type)
        return;
    sl_str t = sl_ir_str(type);
    const sl_json *js = sl_json_get(rf, "json_schema");
    f->type = sl_str_eq_c(t, "text")          ? SL_IR_FORMAT_TEXT
              : sl_str_eq_c(t, "json_object") ? SL_IR_FORMAT_JSON_OBJECT
              : sl_str_eq_c(t, "json_schema") ? SL_IR_FORMAT_JSON_SCHEMA
                                              : SL_IR_FORMAT_OTHER;
    f->name = sl_ir_str(sl_json_get(js, "name"));
    f->schema = sl_json_get(js, "schema");
    const sl_json *strict = sl_json_get(js, "strict");
    f->strict = strict && strict->type == SL_JSON_TRUE;
}

/* Sampling, limits and the parameters the IR cannot carry. */
static void o_params(const sl_json *chat, sl_ir_req *ir)
{
    ir->max_tokens = sl_ir_num_of(chat, "max_completion_tokens");
    if (!ir->max_tokens.set)
        ir->max_tokens = sl_ir_num_of(chat, "max_tokens");
    ir->temperature = sl_ir_num_of(chat, "temperature");
    ir->top_p = sl_ir_num_of(chat, "top_p");
    ir->n = sl_ir_num_of(chat, "n");
    ir->presence_penalty = sl_ir_num_of(chat, "presence_penalty");
    ir->frequency_penalty = sl_ir_num_of(chat, "frequency_penalty");
    const sl_json *st = sl_json_get(chat, "stream");
    ir->stream = st && st->type == SL_JSON_TRUE;
    ir->user = sl_ir_str(sl_json_get(chat, "user"));
    o_format(sl_json_get(chat, "response_format"), &ir->format);
    const sl_json *ptc = sl_json_get(chat, "parallel_tool_calls");
    ir->one_tool_call = ptc && ptc->type == SL_JSON_FALSE;
    static const char *const never[] = {"logprobs", "top_logprobs", "logit_bias",
                                        "audio",    "modalities",   "prediction"};
    for (size_t i = 0; i < SL_ARRAY_LEN(never) && !ir->unmapped; i++) {
        const sl_json *v = sl_json_get(chat, never[i]);
        if (v && v->type != SL_JSON_NULL && v->type != SL_JSON_FALSE)
            ir->unmapped = never[i];
    }
}

static int o_parse_request(const sl_json *chat, sl_arena *a, sl_ir_req *ir, sl_ir_refusal *e)
{
    memset(ir, 0, sizeof(*ir));
    const sl_json *model = sl_json_get(chat, "model"), *msgs = sl_json_get(chat, "messages");
    if (!is_str(model) || !msgs || msgs->type != SL_JSON_ARRAY)
        return sl_ir_refuse(e, "model and messages are required", "messages");
    ir->model = model->str;
    o_params(chat, ir);
    if (sl_ir_take_stops(sl_json_get(chat, "stop"), a, ir))
        return sl_ir_nomem(e);
    sl_ir_part **sys = &ir->system;
    sl_ir_msg **tail = &ir->messages;
    for (const sl_json *m = msgs->child; m; m = m->next) {
        int rc = o_message(m, a, &sys, &tail, e);
        if (rc)
            return rc;
    }
    int rc = o_tools(sl_json_get(chat, "tools"), a, ir, e);
    return rc ? rc : o_tool_choice(sl_json_get(chat, "tool_choice"), ir, e);
}

/* ---- IR -> request ----------------------------------------------------------------------- */

static void o_put_tool_call(sl_buf *o, const sl_ir_part *p, bool first)
{
    sl_buf_append_c(o, first ? "{\"id\":" : ",{\"id\":");
    sl_ir_put_str(o, p->id, "\"\"");
    sl_buf_append_c(o, ",\"type\":\"function\",\"function\":{\"name\":");
    sl_ir_put_str(o, p->name, "\"\"");
    sl_buf_append_c(o, ",\"arguments\":");
    sl_buf_json_str(o, p->args.len ? p->args.p : "{}", p->args.len ? p->args.len : 2);
    sl_buf_append_c(o, "}}");
}

/* The parts' tool calls as `,"tool_calls":[...]`, when there are any. */
static void o_put_tool_calls(sl_buf *o, const sl_ir_part *parts)
{
    bool first = true;
    for (const sl_ir_part *p = parts; p; p = p->next) {
        if (p->type != SL_IR_TOOL_CALL)
            continue;
        sl_buf_append_c(o, first ? ",\"tool_calls\":[" : "");
        o_put_tool_call(o, p, first);
        first = false;
    }
    if (!first)
        sl_buf_append_c(o, "]");
}

/* Text and image parts as a content value: a string when the source sent one. */
static void o_put_content(sl_buf *o, const sl_ir_msg *m, size_t n_content)
{
    if (!n_content) {
        sl_buf_append_c(o, "null");
        return;
    }
    if (m->plain && n_content == 1 && m->parts->type == SL_IR_TEXT) {
        sl_buf_json_str(o, m->parts->text.p, m->parts->text.len);
        return;
    }
    sl_buf_append_c(o, "[");
    bool first = true;
    for (const sl_ir_part *p = m->parts; p; p = p->next) {
        if (p->type != SL_IR_TEXT && p->type != SL_IR_IMAGE)
            continue;
        sl_buf_append_c(o, first ? "" : ",");
        sl_buf_append_c(o, p->type == SL_IR_TEXT
                               ? "{\"type\":\"text\",\"text\":"
                               : "{\"type\":\"image_url\",\"image_url\":{\"url\":");
        sl_ir_put_str(o, p->type == SL_IR_TEXT ? p->text : p->url, "\"\"");
        sl_buf_append_c(o, p->type == SL_IR_TEXT ? "}" : "}}");
        first = false;
    }
    sl_buf_append_c(o, "]");
}

/* One IR turn: its tool results first (they answer the previous assistant
 * turn), each a `tool` message, then the turn itself if anything is left. */
static void o_put_message(sl_buf *o, const sl_ir_msg *m, bool *first)
{
    size_t n_content = 0, n_calls = 0;
    for (const sl_ir_part *p = m->parts; p; p = p->next) {
        n_content += p->type == SL_IR_TEXT || p->type == SL_IR_IMAGE;
        n_calls += p->type == SL_IR_TOOL_CALL;
        if (p->type != SL_IR_TOOL_RESULT)
            continue;
        sl_buf_append_c(o, *first ? "{\"role\":\"tool\",\"tool_call_id\":"
                                  : ",{\"role\":\"tool\",\"tool_call_id\":");
        sl_ir_put_str(o, p->id, "\"\"");
        sl_buf_append_c(o, ",\"content\":");
        sl_ir_put_str(o, p->text, "\"\"");
        sl_buf_append_c(o, "}");
        *first = false;
    }
    if (!n_content && !n_calls)
        return;
    sl_buf_append_c(o, *first ? "{\"role\":" : ",{\"role\":");
    sl_ir_put_str(o, m->role_name, "\"user\"");
    sl_buf_append_c(o, ",\"content\":");
    o_put_content(o, m, n_content);
    o_put_tool_calls(o, m->parts);
    sl_buf_append_c(o, "}");
    *first = false;
}

static void o_put_messages(sl_buf *o, const sl_ir_req *ir)
{
    sl_buf_append_c(o, ",\"messages\":[");
    bool first = true;
    if (ir->system) {
        sl_buf_append_c(o, "{\"role\":\"system\",\"content\":");
        sl_ir_put_joined(o, ir->system, "");
        sl_buf_append_c(o, "}");
        first = false;
    }
    for (const sl_ir_msg *m = ir->messages; m; m = m->next)
        o_put_message(o, m, &first);
    sl_buf_append_c(o, "]");
}

static void o_put_tools(sl_buf *o, const sl_ir_req *ir)
{
    if (!ir->tools)
        return;
    sl_buf_append_c(o, ",\"tools\":[");
    for (const sl_ir_tool *t = ir->tools; t; t = t->next) {
        sl_buf_append_c(o, t == ir->tools ? "{" : ",{");
        sl_buf_append_c(o, "\"type\":\"function\",\"function\":{");
        sl_ir_put_function(o, t);
        sl_buf_append_c(o, "}}");
    }
    sl_buf_append_c(o, "]");
}

static void o_put_choice(sl_buf *o, const sl_ir_req *ir)
{
    if (ir->tool_choice == SL_IR_CHOICE_UNSET)
        return;
    if (ir->tool_choice != SL_IR_CHOICE_TOOL) {
        sl_buf_printf(o, ",\"tool_choice\":\"%s\"", sl_ir_choice_word(ir->tool_choice));
        return;
    }
    sl_buf_append_c(o, ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":");
    sl_ir_put_str(o, ir->tool_choice_name, "\"\"");
    sl_buf_append_c(o, "}}");
}

static void o_put_format(sl_buf *o, const sl_ir_format *f)
{
    static const char *const names[] = {[SL_IR_FORMAT_TEXT] = "text",
                                        [SL_IR_FORMAT_JSON_OBJECT] = "json_object",
                                        [SL_IR_FORMAT_JSON_SCHEMA] = "json_schema"};
    if (f->type == SL_IR_FORMAT_UNSET || f->type == SL_IR_FORMAT_OTHER)
        return;
    sl_buf_printf(o, ",\"response_format\":{\"type\":\"%s\"", names[f->type]);
    if (f->type == SL_IR_FORMAT_JSON_SCHEMA) {
        sl_buf_append_c(o, ",\"json_schema\":{\"name\":");
        sl_ir_put_str(o, f->name, "\"response\"");
        if (f->schema) {
            sl_buf_append_c(o, ",\"schema\":");
            sl_buf_append_str(o, f->schema->raw);
        }
        sl_buf_append_c(o, f->strict ? ",\"strict\":true}" : "}");
    }
    sl_buf_append_c(o, "}");
}

/* Members only an OpenAI source sets (n, penalties, format), and the end user. */
static void o_put_extras(sl_buf *o, const sl_ir_req *ir)
{
    o_put_choice(o, ir);
    if (ir->one_tool_call && ir->tools)
        sl_buf_append_c(o, ",\"parallel_tool_calls\":false");
    sl_ir_put_num(o, "n", &ir->n);
    sl_ir_put_num(o, "presence_penalty", &ir->presence_penalty);
    sl_ir_put_num(o, "frequency_penalty", &ir->frequency_penalty);
    o_put_format(o, &ir->format);
    if (ir->user.p) {
        sl_buf_append_c(o, ",\"user\":");
        sl_ir_put_str(o, ir->user, "\"\"");
    }
}

static int o_emit_request(const sl_ir_req *ir, sl_buf *o, sl_ir_refusal *e)
{
    if (ir->unmapped)
        return sl_ir_refuse(e, "this parameter cannot be translated", ir->unmapped);
    for (const sl_ir_tool *t = ir->tools; t; t = t->next) {
        if (!t->function) /* a provider's own tool (Anthropic's web_search, bash, ...) */
            return sl_ir_refuse(e, "only function tools can go to an openai provider", "tools");
    }
    sl_buf_append_c(o, "{\"model\":");
    sl_ir_put_str(o, ir->model, "\"\"");
    o_put_messages(o, ir);
    sl_ir_put_num(o, "max_tokens", &ir->max_tokens);
    sl_ir_put_num(o, "temperature", &ir->temperature);
    sl_ir_put_num(o, "top_p", &ir->top_p);
    if (ir->stream)
        sl_buf_append_c(o, ",\"stream\":true");
    sl_ir_put_stops(o, "stop", ir);
    o_put_tools(o, ir);
    o_put_extras(o, ir);
    if (ir->stream) /* sluice meters streams from the provider's usage chunk */
        sl_buf_append_c(o, ",\"stream_options\":{\"include_usage\":true}");
    sl_buf_append_c(o, "}");
    return SL_OK;
}

/* ---- answers ---------------------------------------------------------------------------- */

static const sl_ir_finish_name o_finishes[] = {
    {"stop", SL_IR_FINISH_STOP},
    {"length", SL_IR_FINISH_LENGTH},
    {"tool_calls", SL_IR_FINISH_TOOL_CALLS},
    {"function_call", SL_IR_FINISH_TOOL_CALLS}, /* the legacy name */
    {"content_filter", SL_IR_FINISH_CONTENT_FILTER},
};
#define o_finish_in(s)  sl_ir_finish_in(o_finishes, SL_ARRAY_LEN(o_finishes), s)
#define o_finish_out(f) sl_ir_finish_out(o_finishes, SL_ARRAY_LEN(o_finishes), f)

/* usage.{prompt,completion}_tokens; input/output_tokens too, which some
 * OpenAI-compatible servers send (the later name wins, as it always did). */
static unsigned o_usage(const sl_json *root, sl_ir_usage *u)
{
    const sl_json *us = sl_json_get(root, "usage");
    if (!us || us->type != SL_JSON_OBJECT)
        return 0;
    unsigned have = sl_ir_take_counts(us, "prompt_tokens", "completion_tokens", u);
    have |= sl_ir_take_counts(us, "input_tokens", "output_tokens", u);
    u->cache_read = sl_ir_count(sl_json_get(us, "prompt_tokens_details"), "cached_tokens");
    u->reasoning = sl_ir_count(sl_json_get(us, "completion_tokens_details"), "reasoning_tokens");
    return have;
}

static int o_parse_answer(const sl_json *chat, sl_arena *a, sl_ir_answer *ir)
{
    memset(ir, 0, sizeof(*ir));
    ir->id = sl_ir_str(sl_json_get(chat, "id"));
    ir->model = sl_ir_str(sl_json_get(chat, "model"));
    const sl_json *choices = sl_json_get(chat, "choices");
    const sl_json *ch = choices && choices->type == SL_JSON_ARRAY ? choices->child : NULL;
    const sl_json *msg = sl_json_get(ch, "message"), *content = sl_json_get(msg, "content");
    ir->finish = o_finish_in(sl_ir_str(sl_json_get(ch, "finish_reason")));
    sl_ir_part **tail = &ir->parts;
    if (is_str(content) && content->str.len) {
        sl_ir_part *p = sl_ir_add_part(a, &tail, SL_IR_TEXT);
        if (!p)
            return SL_ENOMEM;
        p->text = content->str;
    }
    const sl_json *calls = sl_json_get(msg, "tool_calls");
    for (const sl_json *t = calls && calls->type == SL_JSON_ARRAY ? calls->child : NULL; t;
         t = t->next) {
        const sl_json *fn = sl_json_get(t, "function");
        sl_ir_part *p = sl_ir_add_part(a, &tail, SL_IR_TOOL_CALL);
        if (!p)
            return SL_ENOMEM;
        p->id = sl_ir_str(sl_json_get(t, "id"));
        p->name = sl_ir_str(sl_json_get(fn, "name"));
        p->args = sl_ir_str(sl_json_get(fn, "arguments"));
    }
    ir->usage = (sl_ir_usage){0};
    o_usage(chat, &ir->usage);
    return SL_OK;
}

/* `,"usage":{...}`: prompt_tokens counts the cache's tokens, as OpenAI's do;
 * the details say how many were read from it and how many were reasoning. */
static void o_put_usage(sl_buf *o, const sl_ir_usage *u)
{
    sl_buf_printf(
        o,
        ",\"usage\":{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,\"total_tokens\":%ld,"
        "\"prompt_tokens_details\":{\"cached_tokens\":%ld},"
        "\"completion_tokens_details\":{\"reasoning_tokens\":%ld}}",
        u->input, u->output, u->input + u->output, u->cache_read, u->reasoning);
}

/* The answer's text parts as one content string (null when only tools answer). */
static void o_put_answer_content(sl_buf *o, const sl_ir_answer *ir, bool *calls)
{
    sl_buf text;
    sl_buf_init(&text, 0);
    for (const sl_ir_part *p = ir->parts; p; p = p->next) {
        if (p->type == SL_IR_TEXT)
            sl_buf_append_str(&text, p->text);
        *calls |= p->type == SL_IR_TOOL_CALL;
    }
    if (text.len || !*calls)
        sl_buf_json_str(o, text.p ? text.p : "", text.len);
    else
        sl_buf_append_c(o, "null");
    sl_buf_free(&text);
}

static void o_emit_answer(const sl_ir_answer *ir, sl_buf *o)
{
    sl_buf_append_c(o, "{\"id\":");
    sl_ir_put_str(o, ir->id, "\"msg\"");
    sl_buf_printf(o, ",\"object\":\"chat.completion\",\"created\":%lld,\"model\":",
                  (long long)(sl_wall_ms() / 1000));
    sl_ir_put_str(o, ir->model, "\"\"");
    sl_buf_append_c(o,
                    ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    bool calls = false;
    o_put_answer_content(o, ir, &calls);
    o_put_tool_calls(o, ir->parts);
    sl_buf_printf(o, "},\"logprobs\":null,\"finish_reason\":\"%s\"}]", o_finish_out(ir->finish));
    o_put_usage(o, &ir->usage);
    sl_buf_append_c(o, "}");
}

/* ---- errors -------------------------------------------------------------------------------- */

static void o_parse_error(const sl_json *body, sl_ir_error *e)
{
    const sl_json *err = sl_json_get(body, "error");
    const sl_json *msg = sl_json_get(err, "message");
    *e = (sl_ir_error){
        .type = sl_ir_is_str(sl_json_get(err, "type")) ? sl_json_get(err, "type")->str
                                                       : SL_STR("api_error"),
        .message = is_str(msg) ? msg->str : SL_STR("provider error"),
        .param = sl_ir_str(sl_json_get(err, "param")),
        .code = sl_ir_str(sl_json_get(err, "code")),
    };
}

/* ---- streams -------------------------------------------------------------------------------- */

/* Only chunks that mention usage are worth a parse. */
static unsigned o_watch(sl_str event, sl_str data, sl_ir_usage *u, unsigned *have)
{
    SL_UNUSED(event);
    if (sl_str_eq_c(data, "[DONE]"))
        return SL_WATCH_END;
    unsigned f = SL_WATCH_CHUNK;
    if (!memmem(data.p, data.len, "\"usage\"", 7))
        return f;
    sl_ir_scratch sc;
    const sl_json *root = sl_ir_scratch_parse(&sc, data, 1 << 20);
    if (root) {
        *have |= o_usage(root, u);
        const sl_json *ch = sl_json_get(root, "choices");
        if (ch && ch->type == SL_JSON_ARRAY && ch->n == 0)
            f |= SL_WATCH_USAGE_ONLY;
    }
    sl_ir_scratch_free(&sc);
    return f;
}

static void o_parse_delta(sl_ir_stream *s, const sl_json *ch)
{
    const sl_json *delta = sl_json_get(ch, "delta"), *text = sl_json_get(delta, "content");
    if (is_str(text) && text->str.len)
        sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_TEXT, .text = text->str});
    const sl_json *calls = sl_json_get(delta, "tool_calls");
    for (const sl_json *t = calls && calls->type == SL_JSON_ARRAY ? calls->child : NULL; t;
         t = t->next) {
        const sl_json *fn = sl_json_get(t, "function"), *id = sl_json_get(t, "id");
        const sl_json *args = sl_json_get(fn, "arguments");
        if (is_str(id)) /* a new tool call */
            sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_TOOL_START,
                                               .id = id->str,
                                               .name = sl_ir_str(sl_json_get(fn, "name"))});
        if (is_str(args) && args->str.len)
            sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_TOOL_ARGS, .text = args->str});
    }
    const sl_json *fr = sl_json_get(ch, "finish_reason");
    if (is_str(fr))
        sl_ir_stream_put(s,
                         &(sl_ir_event){.type = SL_IR_EV_FINISH, .finish = o_finish_in(fr->str)});
}

static void o_parse_event(sl_ir_stream *s, sl_str event, sl_str data, const sl_json *d)
{
    SL_UNUSED(event);
    if (sl_str_eq_c(data, "[DONE]")) {
        sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_END});
        return;
    }
    if (!d)
        return;
    if (sl_json_get(d, "error")) {
        sl_ir_event ev = {.type = SL_IR_EV_ERROR};
        o_parse_error(d, &ev.error);
        sl_ir_stream_put(s, &ev);
        return;
    }
    sl_ir_event u = {.type = SL_IR_EV_USAGE};
    u.have = o_usage(d, &u.usage);
    if (!s->in.started) { /* a first chunk's usage (some servers send it in each) starts it */
        s->in.started = true;
        sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_START,
                                           .id = sl_ir_str(sl_json_get(d, "id")),
                                           .model = sl_ir_str(sl_json_get(d, "model")),
                                           .usage = u.usage,
                                           .have = u.have});
    } else if (u.have) {
        sl_ir_stream_put(s, &u);
    }
    const sl_json *choices = sl_json_get(d, "choices");
    if (choices && choices->type == SL_JSON_ARRAY && choices->child)
        o_parse_delta(s, choices->child);
}

/* One chat.completion.chunk with the given delta (raw JSON) and finish. */
static void o_chunk(sl_ir_stream *s, const char *delta, const char *finish)
{
    sl_buf *o = s->sink;
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

/* The last chunk, the usage chunk when the client asked for it, [DONE]. */
static void o_end(sl_ir_stream *s)
{
    sl_buf *o = s->sink;
    o_chunk(s, "{}", o_finish_out(s->finish));
    if (s->include_usage) {
        const sl_ir_usage *u = &s->usage;
        sl_buf_append_c(o, "data: {\"id\":");
        sl_buf_json_cstr(o, s->id);
        sl_buf_append_c(o, ",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":");
        sl_buf_json_cstr(o, s->model);
        sl_buf_append_c(o, ",\"choices\":[]");
        o_put_usage(o, u);
        sl_buf_append_c(o, "}\n\n");
    }
    sl_buf_append_c(o, "data: [DONE]\n\n");
}

static void o_emit_event(sl_ir_stream *s, const sl_ir_event *ev)
{
    sl_buf d;
    sl_buf_init(&d, 0);
    switch (ev->type) {
    case SL_IR_EV_START: o_chunk(s, "{\"role\":\"assistant\",\"content\":\"\"}", NULL); break;
    case SL_IR_EV_TOOL_START:
        sl_buf_printf(&d, "{\"tool_calls\":[{\"index\":%d,\"id\":", ++s->out.tool_index);
        sl_ir_put_str(&d, ev->id, "\"\"");
        sl_buf_append_c(&d, ",\"type\":\"function\",\"function\":{\"name\":");
        sl_ir_put_str(&d, ev->name, "\"\"");
        sl_buf_append_c(&d, ",\"arguments\":\"\"}}]}");
        o_chunk(s, d.p, NULL);
        break;
    case SL_IR_EV_TEXT:
        sl_buf_append_c(&d, "{\"content\":");
        sl_ir_put_str(&d, ev->text, "\"\"");
        sl_buf_append_c(&d, "}");
        o_chunk(s, d.p, NULL);
        break;
    case SL_IR_EV_TOOL_ARGS:
        sl_buf_printf(&d, "{\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":",
                      SL_MAX(s->out.tool_index, 0));
        sl_ir_put_str(&d, ev->text, "\"\"");
        sl_buf_append_c(&d, "}}]}");
        o_chunk(s, d.p, NULL);
        break;
    case SL_IR_EV_END: o_end(s); break;
    case SL_IR_EV_ERROR: sl_ir_openai_error_event(&ev->error, s->sink); break;
    default: break;
    }
    sl_buf_free(&d);
}

const sl_dialect sl_dialect_openai = {
    .name = "openai",
    .path = o_path,
    .headers = o_headers,
    .prompt_counts_cache = true,
    .parse_request = o_parse_request,
    .emit_request = o_emit_request,
    .parse_answer = o_parse_answer,
    .emit_answer = o_emit_answer,
    .usage = o_usage,
    .parse_error = o_parse_error,
    .emit_error = sl_ir_openai_error,
    .emit_error_event = sl_ir_openai_error_event,
    .watch_event = o_watch,
    .parse_event = o_parse_event,
    .emit_event = o_emit_event,
    .models_path = "/models",
};
