/* responses.c — the OpenAI Responses API dialect (POST /v1/responses), and its extras.
 *
 * To an openai-kind provider that speaks it, sluice relays a Responses
 * request as it came; this file is for the others. It reads a Responses
 * request (input as a string or items, instructions, function tools,
 * function_call / function_call_output items, tool_choice, text.format,
 * max_output_tokens, temperature, top_p) into the IR and writes the IR's
 * answers back as a response object, and its streams as the documented event
 * sequence (response.created, response.in_progress, response.output_item.added,
 * response.content_part.added, response.output_text.delta, the .done events,
 * response.function_call_arguments.delta, response.completed), every event
 * with its sequence_number. What cannot be translated (built-in tools,
 * reasoning, background, include, ...) is refused naming the parameter.
 *
 * The extras (responses.h): response ids, stored records, previous_response_id
 * resolution and the replay of a stored object as events. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>

#include "sluice/dialects.h"
#include "sluice/upstream.h"
#include "sluice/responses.h"

#define is_str sl_ir_is_str
#define is_num sl_ir_is_num

static bool is_arr(const sl_json *v)
{
    return v && v->type == SL_JSON_ARRAY;
}

static bool is_set(const sl_json *v)
{
    return v && v->type != SL_JSON_NULL && v->type != SL_JSON_FALSE;
}

/* ---- path and headers ---------------------------------------------------------------- */

static const char *r_path(sl_api api)
{
    return api == SL_API_RESPONSES ? "/responses" : NULL;
}

static struct curl_slist *r_headers(struct curl_slist *h, const char *api_key)
{
    if (!api_key || !api_key[0])
        return h;
    char line[1024];
    snprintf(line, sizeof line, "Authorization: Bearer %s", api_key);
    return sl_header_list_append(h, line);
}

/* ---- request -> IR --------------------------------------------------------------------- */

/* A message item's content parts: input_text / output_text / refusal as text,
 * input_image with an image_url; anything else (files, audio) is refused. */
static int r_parts(const sl_json *c, sl_arena *a, sl_ir_msg *m, sl_ir_part ***tail,
                   sl_ir_refusal *e)
{
    if (is_str(c)) {
        m->plain = true;
        sl_ir_part *p = sl_ir_add_part(a, tail, SL_IR_TEXT);
        return p ? (p->text = c->str, SL_OK) : sl_ir_nomem(e);
    }
    for (const sl_json *x = is_arr(c) ? c->child : NULL; x; x = x->next) {
        sl_str type = sl_ir_str(sl_json_get(x, "type"));
        bool image = sl_str_eq_c(type, "input_image");
        if (!image && !sl_str_eq_c(type, "input_text") && !sl_str_eq_c(type, "output_text") &&
            !sl_str_eq_c(type, "refusal"))
            return sl_ir_refuse(e, "this content part cannot be translated for this provider",
                                "input");
        sl_ir_part *p = sl_ir_add_part(a, tail, image ? SL_IR_IMAGE : SL_IR_TEXT);
        if (!p)
            return sl_ir_nomem(e);
        const sl_json *v = sl_json_get(x, image ? "image_url" : "text");
        if (!is_str(v) && sl_str_eq_c(type, "refusal"))
            v = sl_json_get(x, "refusal");
        if (!is_str(v))
            return sl_ir_refuse(e,
                                image ? "input_image needs an image_url (file_id cannot be "
                                        "translated)"
                                      : "a text part needs text",
                                "input");
        *(image ? &p->url : &p->text) = v->str;
    }
    return SL_OK;
}

/* The turn a new part of this role goes to: the last one when it has the role
 * (and, for tool results, holds only tool results), else a new one. */
static sl_ir_msg *r_turn(sl_arena *a, sl_ir_req *ir, sl_ir_msg ***tail, sl_ir_role role,
                         bool results)
{
    sl_ir_msg *last = NULL;
    for (sl_ir_msg *m = ir->messages; m; m = m->next)
        last = m;
    bool fits = last && last->role == role;
    for (const sl_ir_part *p = fits && results ? last->parts : NULL; p; p = p->next)
        fits = fits && p->type == SL_IR_TOOL_RESULT;
    if (fits && results && !last->parts)
        fits = false;
    return fits ? last
                : sl_ir_add_msg(a, tail, role,
                                role == SL_IR_USER ? SL_STR("user") : SL_STR("assistant"));
}

static sl_ir_part *r_append(sl_arena *a, sl_ir_msg *m, sl_ir_part_type type)
{
    sl_ir_part **tail = &m->parts;
    while (*tail)
        tail = &(*tail)->next;
    return sl_ir_add_part(a, &tail, type);
}

static int r_message(const sl_json *it, sl_arena *a, sl_ir_req *ir, sl_ir_part ***sys,
                     sl_ir_msg ***tail, sl_ir_refusal *e)
{
    sl_str role = sl_ir_str(sl_json_get(it, "role"));
    const sl_json *content = sl_json_get(it, "content");
    if (sl_str_eq_c(role, "system") || sl_str_eq_c(role, "developer")) {
        sl_ir_part *p = sl_ir_add_part(a, sys, SL_IR_TEXT);
        return p ? (p->text = sl_ir_text_of(content, a), SL_OK) : sl_ir_nomem(e);
    }
    bool user = sl_str_eq_c(role, "user"), assistant = sl_str_eq_c(role, "assistant");
    if (!user && !assistant)
        return sl_ir_refuse(e, "an input message needs a role (user, assistant, system, developer)",
                            "input");
    sl_ir_msg *m = sl_ir_add_msg(a, tail, user ? SL_IR_USER : SL_IR_ASSISTANT, role);
    if (!m)
        return sl_ir_nomem(e);
    SL_UNUSED(ir);
    sl_ir_part **parts = &m->parts;
    return r_parts(content, a, m, &parts, e);
}

static int r_call(const sl_json *it, sl_arena *a, sl_ir_req *ir, sl_ir_msg ***tail, bool output,
                  sl_ir_refusal *e)
{
    const sl_json *call_id = sl_json_get(it, "call_id");
    if (!is_str(call_id))
        return sl_ir_refuse(e, "function_call and function_call_output items need a call_id",
                            "input");
    sl_ir_msg *m = r_turn(a, ir, tail, output ? SL_IR_USER : SL_IR_ASSISTANT, output);
    sl_ir_part *p = m ? r_append(a, m, output ? SL_IR_TOOL_RESULT : SL_IR_TOOL_CALL) : NULL;
    if (!p)
        return sl_ir_nomem(e);
    p->id = call_id->str;
    if (output) {
        p->text = sl_ir_text_of(sl_json_get(it, "output"), a);
        return SL_OK;
    }
    const sl_json *name = sl_json_get(it, "name");
    if (!is_str(name))
        return sl_ir_refuse(e, "a function_call item needs a name", "input");
    p->name = name->str;
    p->args = sl_ir_str(sl_json_get(it, "arguments"));
    if (!p->args.p)
        p->args = SL_STR("");
    return SL_OK;
}

static int r_item(const sl_json *it, sl_arena *a, sl_ir_req *ir, sl_ir_part ***sys,
                  sl_ir_msg ***tail, sl_ir_refusal *e)
{
    sl_str type = sl_ir_str(sl_json_get(it, "type"));
    if (!type.p || sl_str_eq_c(type, "message"))
        return r_message(it, a, ir, sys, tail, e);
    if (sl_str_eq_c(type, "function_call") || sl_str_eq_c(type, "function_call_output"))
        return r_call(it, a, ir, tail, sl_str_eq_c(type, "function_call_output"), e);
    if (sl_str_eq_c(type, "reasoning"))
        return SL_OK; /* a native provider's opaque reasoning state: no other provider reads it */
    return sl_ir_refuse(e, "this input item type cannot be translated for this provider", "input");
}

static int r_input(const sl_json *in, sl_arena *a, sl_ir_req *ir, sl_ir_part ***sys,
                   sl_ir_refusal *e)
{
    sl_ir_msg **tail = &ir->messages;
    if (is_str(in)) {
        sl_ir_msg *m = sl_ir_add_msg(a, &tail, SL_IR_USER, SL_STR("user"));
        sl_ir_part **parts = m ? &m->parts : NULL;
        sl_ir_part *p = m ? sl_ir_add_part(a, &parts, SL_IR_TEXT) : NULL;
        if (!p)
            return sl_ir_nomem(e);
        m->plain = true;
        p->text = in->str;
        return SL_OK;
    }
    for (const sl_json *it = is_arr(in) ? in->child : NULL; it; it = it->next) {
        int rc = r_item(it, a, ir, sys, &tail, e);
        if (rc)
            return rc;
        while (*tail)
            tail = &(*tail)->next; /* r_turn may have appended */
    }
    return SL_OK;
}

/* Function tools are flat in this API: {"type":"function","name",...}. */
static int r_tools(const sl_json *tools, sl_arena *a, sl_ir_req *ir, sl_ir_refusal *e)
{
    sl_ir_tool **tail = &ir->tools;
    for (const sl_json *t = is_arr(tools) ? tools->child : NULL; t; t = t->next) {
        if (!sl_str_eq_c(sl_ir_str(sl_json_get(t, "type")), "function"))
            return sl_ir_refuse(e,
                                "built-in tools cannot be translated for this provider; only "
                                "function tools",
                                "tools");
        sl_ir_tool *tool = sl_arena_calloc(a, sizeof(*tool));
        if (!tool)
            return sl_ir_nomem(e);
        *tail = tool, tail = &tool->next;
        tool->function = true;
        tool->type = SL_STR("function");
        if (sl_ir_take_function(t, tool, e))
            return SL_EINVAL;
    }
    return SL_OK;
}

static int r_tool_choice(const sl_json *tc, sl_ir_req *ir, sl_ir_refusal *e)
{
    if (sl_ir_take_choice_word(tc, ir))
        return SL_OK;
    const sl_json *name = sl_json_get(tc, "name");
    if (!sl_str_eq_c(sl_ir_str(sl_json_get(tc, "type")), "function") || !is_str(name))
        return sl_ir_refuse(e, "tool_choice can only name a function tool here", "tool_choice");
    ir->tool_choice = SL_IR_CHOICE_TOOL;
    ir->tool_choice_name = name->str;
    return SL_OK;
}

/* text.format: {"type":"json_schema","name","schema","strict"} (flat), json_object, text. */
static int r_format(const sl_json *text, sl_ir_format *f, sl_ir_refusal *e)
{
    const sl_json *fmt = sl_json_get(text, "format");
    if (is_set(sl_json_get(text, "verbosity")))
        return sl_ir_refuse(e, "text.verbosity cannot be translated for this provider",
                            "text.verbosity");
    if (!fmt || fmt->type == SL_JSON_NULL)
        return SL_OK;
    sl_str t = sl_ir_str(sl_json_get(fmt, "type"));
    f->type = sl_str_eq_c(t, "text")          ? SL_IR_FORMAT_TEXT
              : sl_str_eq_c(t, "json_object") ? SL_IR_FORMAT_JSON_OBJECT
              : sl_str_eq_c(t, "json_schema") ? SL_IR_FORMAT_JSON_SCHEMA
                                              : SL_IR_FORMAT_OTHER;
    if (f->type == SL_IR_FORMAT_OTHER)
        return sl_ir_refuse(e, "this text.format cannot be translated", "text.format");
    f->name = sl_ir_str(sl_json_get(fmt, "name"));
    f->schema = sl_json_get(fmt, "schema");
    const sl_json *strict = sl_json_get(fmt, "strict");
    f->strict = strict && strict->type == SL_JSON_TRUE;
    return SL_OK;
}

/* The members that change what the model does and no other dialect can say. */
static const char *r_unmapped(const sl_json *req)
{
    static const char *const never[] = {"background",   "prompt",         "conversation",
                                        "top_logprobs", "max_tool_calls", "context_management"};
    for (size_t i = 0; i < SL_ARRAY_LEN(never); i++) {
        if (is_set(sl_json_get(req, never[i])))
            return never[i];
    }
    const sl_json *inc = sl_json_get(req, "include"), *rs = sl_json_get(req, "reasoning");
    if (is_arr(inc) && inc->n)
        return "include";
    if (is_set(sl_json_get(rs, "effort")) || is_set(sl_json_get(rs, "summary")))
        return "reasoning";
    const sl_json *ptc = sl_json_get(req, "parallel_tool_calls");
    if (ptc && ptc->type == SL_JSON_FALSE)
        return "parallel_tool_calls";
    sl_str tr = sl_ir_str(sl_json_get(req, "truncation"));
    if (tr.p && !sl_str_eq_c(tr, "disabled"))
        return "truncation";
    return NULL;
}

static int r_parse_request(const sl_json *req, sl_arena *a, sl_ir_req *ir, sl_ir_refusal *e)
{
    memset(ir, 0, sizeof(*ir));
    const sl_json *model = sl_json_get(req, "model"), *in = sl_json_get(req, "input");
    if (!is_str(model) || !(is_str(in) || is_arr(in)))
        return sl_ir_refuse(e, "model and input are required", "input");
    ir->model = model->str;
    ir->unmapped = r_unmapped(req);
    if (ir->unmapped) /* refused here: every target would refuse it */
        return sl_ir_refuse(e, "this parameter cannot be translated for this provider",
                            ir->unmapped);
    ir->max_tokens = sl_ir_num_of(req, "max_output_tokens");
    ir->temperature = sl_ir_num_of(req, "temperature");
    ir->top_p = sl_ir_num_of(req, "top_p");
    const sl_json *st = sl_json_get(req, "stream");
    ir->stream = st && st->type == SL_JSON_TRUE;
    ir->user = sl_ir_str(sl_json_get(req, "user"));
    if (!ir->user.p)
        ir->user = sl_ir_str(sl_json_get(req, "safety_identifier"));
    sl_ir_part **sys = &ir->system;
    const sl_json *ins = sl_json_get(req, "instructions");
    if (is_str(ins) && ins->str.len) {
        sl_ir_part *p = sl_ir_add_part(a, &sys, SL_IR_TEXT);
        if (!p)
            return sl_ir_nomem(e);
        p->text = ins->str;
    }
    int rc = r_input(in, a, ir, &sys, e);
    rc = rc ? rc : r_tools(sl_json_get(req, "tools"), a, ir, e);
    rc = rc ? rc : r_tool_choice(sl_json_get(req, "tool_choice"), ir, e);
    return rc ? rc : r_format(sl_json_get(req, "text"), &ir->format, e);
}

/* ---- IR -> request ----------------------------------------------------------------------- */

static void r_put_msg_in(sl_buf *o, const sl_ir_msg *m, bool *first)
{
    bool assistant = m->role == SL_IR_ASSISTANT;
    size_t n_text = 0;
    for (const sl_ir_part *p = m->parts; p; p = p->next)
        n_text += p->type == SL_IR_TEXT || p->type == SL_IR_IMAGE;
    if (n_text) {
        sl_buf_append_c(o, *first ? "{\"type\":\"message\",\"role\":"
                                  : ",{\"type\":\"message\",\"role\":");
        sl_buf_append_c(o, assistant ? "\"assistant\",\"content\":[" : "\"user\",\"content\":[");
        bool f = true;
        for (const sl_ir_part *p = m->parts; p; p = p->next) {
            if (p->type != SL_IR_TEXT && p->type != SL_IR_IMAGE)
                continue;
            sl_buf_append_c(o, f ? "" : ",");
            sl_buf_append_c(o, p->type == SL_IR_IMAGE ? "{\"type\":\"input_image\",\"image_url\":"
                               : assistant            ? "{\"type\":\"output_text\",\"text\":"
                                                      : "{\"type\":\"input_text\",\"text\":");
            sl_ir_put_str(o, p->type == SL_IR_IMAGE ? p->url : p->text, "\"\"");
            sl_buf_append_c(o, "}");
            f = false;
        }
        sl_buf_append_c(o, "]}");
        *first = false;
    }
    for (const sl_ir_part *p = m->parts; p; p = p->next) {
        if (p->type != SL_IR_TOOL_CALL && p->type != SL_IR_TOOL_RESULT)
            continue;
        bool call = p->type == SL_IR_TOOL_CALL;
        sl_buf_append_c(o, *first ? "{\"type\":" : ",{\"type\":");
        sl_buf_append_c(o, call ? "\"function_call\",\"call_id\":"
                                : "\"function_call_output\","
                                  "\"call_id\":");
        sl_ir_put_str(o, p->id, "\"\"");
        if (call) {
            sl_buf_append_c(o, ",\"name\":");
            sl_ir_put_str(o, p->name, "\"\"");
            sl_buf_append_c(o, ",\"arguments\":");
            sl_ir_put_str(o, p->args.len ? p->args : SL_STR("{}"), "\"{}\"");
        } else {
            sl_buf_append_c(o, ",\"output\":");
            sl_ir_put_str(o, p->text, "\"\"");
        }
        sl_buf_append_c(o, "}");
        *first = false;
    }
}

static void r_put_tools_out(sl_buf *o, const sl_ir_req *ir)
{
    if (ir->tools) {
        sl_buf_append_c(o, ",\"tools\":[");
        for (const sl_ir_tool *t = ir->tools; t; t = t->next) {
            sl_buf_append_c(o, t == ir->tools ? "{\"type\":\"function\","
                                              : ",{\"type\":\"function\",");
            sl_ir_put_function(o, t);
            sl_buf_append_c(o, "}");
        }
        sl_buf_append_c(o, "]");
    }
    if (ir->tool_choice == SL_IR_CHOICE_TOOL) {
        sl_buf_append_c(o, ",\"tool_choice\":{\"type\":\"function\",\"name\":");
        sl_ir_put_str(o, ir->tool_choice_name, "\"\"");
        sl_buf_append_c(o, "}");
    } else if (ir->tool_choice != SL_IR_CHOICE_UNSET) {
        sl_buf_printf(o, ",\"tool_choice\":\"%s\"", sl_ir_choice_word(ir->tool_choice));
    }
}

static void r_put_format_out(sl_buf *o, const sl_ir_format *f)
{
    if (f->type == SL_IR_FORMAT_JSON_OBJECT)
        sl_buf_append_c(o, ",\"text\":{\"format\":{\"type\":\"json_object\"}}");
    if (f->type != SL_IR_FORMAT_JSON_SCHEMA)
        return;
    sl_buf_append_c(o, ",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":");
    sl_ir_put_str(o, f->name, "\"response\"");
    if (f->schema) {
        sl_buf_append_c(o, ",\"schema\":");
        sl_buf_append_str(o, f->schema->raw);
    }
    sl_buf_append_c(o, f->strict ? ",\"strict\":true}}" : "}}");
}

static int r_emit_request(const sl_ir_req *ir, sl_buf *o, sl_ir_refusal *e)
{
    if (ir->unmapped)
        return sl_ir_refuse(e, "this parameter cannot be translated", ir->unmapped);
    if (ir->n.set && ir->n.v != 1)
        return sl_ir_refuse(e, "the Responses API has no n", "n");
    if (ir->n_stop)
        return sl_ir_refuse(e, "the Responses API has no stop sequences", "stop");
    if (ir->presence_penalty.set || ir->frequency_penalty.set)
        return sl_ir_refuse(e, "the Responses API has no penalties",
                            ir->presence_penalty.set ? "presence_penalty" : "frequency_penalty");
    sl_buf_append_c(o, "{\"model\":");
    sl_ir_put_str(o, ir->model, "\"\"");
    if (ir->system) {
        sl_buf_append_c(o, ",\"instructions\":");
        sl_ir_put_joined(o, ir->system, "\n\n");
    }
    sl_buf_append_c(o, ",\"input\":[");
    bool first = true;
    for (const sl_ir_msg *m = ir->messages; m; m = m->next)
        r_put_msg_in(o, m, &first);
    sl_buf_append_c(o, "]");
    if (ir->max_tokens.set)
        sl_ir_put_num(o, "max_output_tokens", &ir->max_tokens);
    if (ir->temperature.set)
        sl_ir_put_num(o, "temperature", &ir->temperature);
    if (ir->top_p.set)
        sl_ir_put_num(o, "top_p", &ir->top_p);
    if (ir->stream)
        sl_buf_append_c(o, ",\"stream\":true");
    r_put_tools_out(o, ir);
    r_put_format_out(o, &ir->format);
    if (ir->user.p) {
        sl_buf_append_c(o, ",\"user\":");
        sl_ir_put_str(o, ir->user, "\"\"");
    }
    sl_buf_append_c(o, ",\"store\":false}"); /* sluice keeps the state of translated calls */
    return SL_OK;
}

/* ---- answers ---------------------------------------------------------------------------- */

static unsigned r_usage_of(const sl_json *us, sl_ir_usage *u)
{
    if (!us || us->type != SL_JSON_OBJECT)
        return 0;
    unsigned have = sl_ir_take_counts(us, "input_tokens", "output_tokens", u);
    u->cache_read = sl_ir_count(sl_json_get(us, "input_tokens_details"), "cached_tokens");
    u->reasoning = sl_ir_count(sl_json_get(us, "output_tokens_details"), "reasoning_tokens");
    return have;
}

static unsigned r_usage(const sl_json *resp, sl_ir_usage *u)
{
    return r_usage_of(sl_json_get(resp, "usage"), u);
}

static int r_parse_answer(const sl_json *resp, sl_arena *a, sl_ir_answer *ir)
{
    memset(ir, 0, sizeof(*ir));
    ir->id = sl_ir_str(sl_json_get(resp, "id"));
    ir->model = sl_ir_str(sl_json_get(resp, "model"));
    const sl_json *out = sl_json_get(resp, "output");
    sl_ir_part **tail = &ir->parts;
    bool calls = false;
    for (const sl_json *it = is_arr(out) ? out->child : NULL; it; it = it->next) {
        sl_str type = sl_ir_str(sl_json_get(it, "type"));
        if (sl_str_eq_c(type, "function_call")) {
            sl_ir_part *p = sl_ir_add_part(a, &tail, SL_IR_TOOL_CALL);
            if (!p)
                return SL_ENOMEM;
            p->id = sl_ir_str(sl_json_get(it, "call_id"));
            p->name = sl_ir_str(sl_json_get(it, "name"));
            p->args = sl_ir_str(sl_json_get(it, "arguments"));
            calls = true;
            continue;
        }
        const sl_json *content = sl_json_get(it, "content");
        for (const sl_json *c = sl_str_eq_c(type, "message") && is_arr(content) ? content->child
                                                                                : NULL;
             c; c = c->next) {
            const sl_json *t = sl_json_get(c, "text");
            sl_ir_part *p = is_str(t) ? sl_ir_add_part(a, &tail, SL_IR_TEXT) : NULL;
            if (p)
                p->text = t->str;
        }
    }
    const sl_json *why = sl_json_get(sl_json_get(resp, "incomplete_details"), "reason");
    ir->finish = calls                                              ? SL_IR_FINISH_TOOL_CALLS
                 : sl_str_eq_c(sl_ir_str(why), "max_output_tokens") ? SL_IR_FINISH_LENGTH
                 : sl_str_eq_c(sl_ir_str(why), "content_filter")    ? SL_IR_FINISH_CONTENT_FILTER
                                                                    : SL_IR_FINISH_STOP;
    r_usage(resp, &ir->usage);
    return SL_OK;
}

/* Item ids follow from the response id, so a stream and its replay agree. */
static void r_item_id(sl_buf *o, const char *prefix, sl_str resp_id, int index)
{
    sl_str tail = resp_id;
    if (tail.len > 5 && memcmp(tail.p, "resp_", 5) == 0)
        tail.p += 5, tail.len -= 5;
    sl_buf_append_c(o, "\"");
    sl_buf_append_c(o, prefix);
    sl_buf_append(o, tail.p, SL_MIN(tail.len, 100));
    sl_buf_printf(o, "_%d\"", index);
}

static void r_put_msg_item(sl_buf *o, sl_str rid, int index, const char *status, sl_str text,
                           bool with_part)
{
    sl_buf_append_c(o, "{\"id\":");
    r_item_id(o, "msg_", rid, index);
    sl_buf_printf(o, ",\"type\":\"message\",\"status\":\"%s\",\"role\":\"assistant\",\"content\":[",
                  status);
    if (with_part) {
        sl_buf_append_c(o,
                        "{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":");
        sl_buf_json_str(o, text.p ? text.p : "", text.len);
        sl_buf_append_c(o, "}");
    }
    sl_buf_append_c(o, "]}");
}

static void r_put_call_item(sl_buf *o, sl_str rid, int index, const char *status, sl_str call_id,
                            sl_str name, sl_str args)
{
    sl_buf_append_c(o, "{\"id\":");
    r_item_id(o, "fc_", rid, index);
    sl_buf_printf(o, ",\"type\":\"function_call\",\"status\":\"%s\",\"arguments\":", status);
    sl_buf_json_str(o, args.p ? args.p : "", args.len);
    sl_buf_append_c(o, ",\"call_id\":");
    sl_ir_put_str(o, call_id, "\"\"");
    sl_buf_append_c(o, ",\"name\":");
    sl_ir_put_str(o, name, "\"\"");
    sl_buf_append_c(o, "}");
}

static void r_put_usage(sl_buf *o, const sl_ir_usage *u)
{
    sl_buf_printf(
        o,
        ",\"usage\":{\"input_tokens\":%ld,\"input_tokens_details\":{\"cached_tokens\":%ld}"
        ",\"output_tokens\":%ld,\"output_tokens_details\":{\"reasoning_tokens\":%ld},"
        "\"total_tokens\":%ld}",
        u->input, u->cache_read, u->output, u->reasoning, u->input + u->output);
}

/* `,"key":` and the request's value, or dflt (raw JSON). */
static void r_echo(sl_buf *o, const sl_ir_echo *echo, const char *key, const char *dflt)
{
    const sl_json *v = echo && echo->request ? sl_json_get(echo->request, key) : NULL;
    sl_buf_printf(o, ",\"%s\":", key);
    if (v)
        sl_buf_append_str(o, v->raw);
    else
        sl_buf_append_c(o, dflt);
}

/* The response object around `output` (raw JSON array); usage NULL: null. */
static void r_put_response(sl_buf *o, const sl_ir_echo *echo, sl_str id, sl_str model,
                           sl_ir_finish finish, bool final, sl_str output, const sl_ir_usage *u)
{
    bool incomplete = final && finish == SL_IR_FINISH_LENGTH;
    sl_buf_append_c(o, "{\"id\":");
    sl_ir_put_str(o, echo && echo->id.p ? echo->id : id, "\"resp\"");
    sl_buf_printf(o, ",\"object\":\"response\",\"created_at\":%lld,\"status\":\"%s\"",
                  (long long)(sl_wall_ms() / 1000),
                  !final       ? "in_progress"
                  : incomplete ? "incomplete"
                               : "completed");
    sl_buf_append_c(o, ",\"background\":false,\"error\":null,\"incomplete_details\":");
    sl_buf_append_c(o, incomplete ? "{\"reason\":\"max_output_tokens\"}" : "null");
    r_echo(o, echo, "instructions", "null");
    r_echo(o, echo, "max_output_tokens", "null");
    sl_buf_append_c(o, ",\"model\":");
    const sl_json *rm = echo && echo->request ? sl_json_get(echo->request, "model") : NULL;
    sl_ir_put_str(o, model.len ? model : sl_ir_str(rm), "\"\"");
    sl_buf_append_c(o, ",\"output\":");
    sl_buf_append_str(o, output.len ? output : SL_STR("[]"));
    sl_buf_append_c(o, ",\"parallel_tool_calls\":true");
    r_echo(o, echo, "previous_response_id", "null");
    sl_buf_append_c(o, ",\"reasoning\":{\"effort\":null,\"summary\":null}");
    r_echo(o, echo, "store", "true");
    r_echo(o, echo, "temperature", "1");
    r_echo(o, echo, "text", "{\"format\":{\"type\":\"text\"}}");
    r_echo(o, echo, "tool_choice", "\"auto\"");
    r_echo(o, echo, "tools", "[]");
    r_echo(o, echo, "top_p", "1");
    sl_buf_append_c(o, ",\"truncation\":\"disabled\"");
    if (u)
        r_put_usage(o, u);
    else
        sl_buf_append_c(o, ",\"usage\":null");
    r_echo(o, echo, "user", "null");
    r_echo(o, echo, "metadata", "{}");
    sl_buf_append_c(o, "}");
}

static void r_emit_answer(const sl_ir_answer *ir, sl_buf *o)
{
    sl_str rid = ir->echo && ir->echo->id.p ? ir->echo->id : ir->id;
    sl_buf out, text;
    sl_buf_init(&out, 0);
    sl_buf_init(&text, 0);
    int index = 0;
    bool any_text = false;
    for (const sl_ir_part *p = ir->parts; p; p = p->next) {
        if (p->type == SL_IR_TEXT)
            sl_buf_append_str(&text, p->text), any_text = true;
    }
    sl_buf_append_c(&out, "[");
    if (any_text || !ir->parts) {
        const char *status = ir->finish == SL_IR_FINISH_LENGTH ? "incomplete" : "completed";
        r_put_msg_item(&out, rid, index++, status, sl_buf_str(&text), true);
    }
    for (const sl_ir_part *p = ir->parts; p; p = p->next) {
        if (p->type != SL_IR_TOOL_CALL)
            continue;
        sl_buf_append_c(&out, index ? "," : "");
        r_put_call_item(&out, rid, index++, "completed", p->id, p->name,
                        p->args.len ? p->args : SL_STR("{}"));
    }
    sl_buf_append_c(&out, "]");
    r_put_response(o, ir->echo, rid, ir->model, ir->finish, true, sl_buf_str(&out), &ir->usage);
    sl_buf_free(&out);
    sl_buf_free(&text);
}

/* ---- errors -------------------------------------------------------------------------------- */

static void r_parse_error(const sl_json *body, sl_ir_error *e)
{
    const sl_json *err = sl_json_get(body, "error");
    if (!err || err->type != SL_JSON_OBJECT)
        err = sl_json_get(body, "response") ? sl_json_get(sl_json_get(body, "response"), "error")
                                            : body; /* stream events carry it flat */
    const sl_json *msg = sl_json_get(err, "message"), *type = sl_json_get(err, "type");
    *e = (sl_ir_error){
        .type = is_str(type) && !sl_str_eq_c(type->str, "error") ? type->str : SL_STR("api_error"),
        .message = is_str(msg) ? msg->str : SL_STR("provider error"),
        .param = sl_ir_str(sl_json_get(err, "param")),
        .code = sl_ir_str(sl_json_get(err, "code")),
    };
}

/* The `error` event of a stream: {"type":"error","code","message","param"}. */
static void r_error_event_seq(const sl_ir_error *e, sl_buf *o, long seq)
{
    sl_buf_append_c(o, "event: error\ndata: {\"type\":\"error\",\"code\":");
    sl_ir_put_str(o, e->code.p ? e->code : e->type, "\"api_error\"");
    sl_buf_append_c(o, ",\"message\":");
    sl_ir_put_str(o, e->message, "\"error\"");
    sl_buf_append_c(o, ",\"param\":");
    sl_ir_put_str(o, e->param, "null");
    sl_buf_printf(o, ",\"sequence_number\":%ld}\n\n", seq);
}

static void r_error_event(const sl_ir_error *e, sl_buf *o)
{
    r_error_event_seq(e, o, 0);
}

/* ---- streams: watching a native one ----------------------------------------------------- */

static bool r_terminal_type(sl_str t)
{
    return sl_str_eq_c(t, "response.completed") || sl_str_eq_c(t, "response.incomplete") ||
           sl_str_eq_c(t, "response.failed");
}

/* The event's type: its `event:` line, else the data's "type" (looked up cheaply). */
static sl_str r_event_type(sl_str event, sl_str data)
{
    if (event.len)
        return event;
    const char *k = memmem(data.p, data.len, "\"type\":\"", 8);
    if (!k)
        return SL_STR_NULL;
    const char *v = k + 8, *end = memchr(v, '"', data.len - (size_t)(v - data.p));
    return end ? (sl_str){v, (size_t)(end - v)} : SL_STR_NULL;
}

static unsigned r_watch(sl_str event, sl_str data, sl_ir_usage *u, unsigned *have)
{
    sl_str t = r_event_type(event, data);
    if (sl_str_eq_c(t, "response.output_text.delta") ||
        sl_str_eq_c(t, "response.function_call_arguments.delta"))
        return SL_WATCH_CHUNK;
    if (sl_str_eq_c(t, "error"))
        return SL_WATCH_END;
    if (!r_terminal_type(t))
        return 0;
    sl_ir_scratch sc;
    const sl_json *root = sl_ir_scratch_parse(&sc, data, 4u << 20);
    if (root)
        *have |= r_usage(sl_json_get(root, "response"), u);
    sl_ir_scratch_free(&sc);
    return SL_WATCH_END;
}

const sl_json *sl_responses_terminal(sl_str event, sl_str data, sl_arena *a)
{
    sl_str t = r_event_type(event, data);
    if (!sl_str_eq_c(t, "response.completed") && !sl_str_eq_c(t, "response.incomplete"))
        return NULL;
    sl_json *root = NULL;
    sl_json_error err;
    if (sl_json_parse(a, data.p, data.len, NULL, &root, &err) != SL_OK)
        return NULL;
    const sl_json *resp = sl_json_get(root, "response");
    return resp && resp->type == SL_JSON_OBJECT ? resp : NULL;
}

/* ---- streams: reading one into the IR -------------------------------------------------- */

static void r_parse_event(sl_ir_stream *s, sl_str event, sl_str data, const sl_json *d)
{
    if (!d)
        return;
    sl_str t = sl_ir_str(sl_json_get(d, "type"));
    if (!t.p)
        t = event;
    const sl_json *resp = sl_json_get(d, "response"), *item = sl_json_get(d, "item");
    SL_UNUSED(data);
    if (sl_str_eq_c(t, "response.created")) {
        sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_START,
                                           .id = sl_ir_str(sl_json_get(resp, "id")),
                                           .model = sl_ir_str(sl_json_get(resp, "model"))});
    } else if (sl_str_eq_c(t, "response.output_text.delta")) {
        sl_ir_stream_put(
            s, &(sl_ir_event){.type = SL_IR_EV_TEXT, .text = sl_ir_str(sl_json_get(d, "delta"))});
    } else if (sl_str_eq_c(t, "response.output_item.added") &&
               sl_str_eq_c(sl_ir_str(sl_json_get(item, "type")), "function_call")) {
        sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_TOOL_START,
                                           .id = sl_ir_str(sl_json_get(item, "call_id")),
                                           .name = sl_ir_str(sl_json_get(item, "name"))});
    } else if (sl_str_eq_c(t, "response.function_call_arguments.delta")) {
        sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_TOOL_ARGS,
                                           .text = sl_ir_str(sl_json_get(d, "delta"))});
    } else if (sl_str_eq_c(t, "response.completed") || sl_str_eq_c(t, "response.incomplete")) {
        sl_ir_answer ans;
        char first[2048];
        sl_arena a;
        sl_arena_init(&a, first, sizeof first, 1u << 20);
        r_parse_answer(resp, &a, &ans);
        sl_ir_event u = {.type = SL_IR_EV_USAGE, .usage = ans.usage};
        u.have = r_usage(resp, &u.usage);
        sl_ir_stream_put(s, &u);
        sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_FINISH, .finish = ans.finish});
        sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_END});
        sl_arena_free(&a);
    } else if (sl_str_eq_c(t, "error") || sl_str_eq_c(t, "response.failed")) {
        sl_ir_event ev = {.type = SL_IR_EV_ERROR};
        r_parse_error(d, &ev.error);
        sl_ir_stream_put(s, &ev);
    }
}

/* ---- streams: writing the IR as Responses events --------------------------------------- */

typedef struct r_out {
    long seq;
    int index;   /* output index of the open item, or of the next one */
    int open;    /* 0 none, 1 a message, 2 a function call */
    sl_buf text; /* the open message's text, or the open call's arguments */
    sl_buf call_id, name;
    sl_buf items; /* the finished output items, comma-separated */
    sl_buf final; /* the final response object, once the stream ended */
} r_out;

static r_out *r_state(sl_ir_stream *s)
{
    if (!s->out_state) {
        r_out *st = calloc(1, sizeof(*st));
        if (!st)
            return NULL;
        sl_buf_init(&st->text, 0);
        sl_buf_init(&st->call_id, 0);
        sl_buf_init(&st->name, 0);
        sl_buf_init(&st->items, 0);
        sl_buf_init(&st->final, 0);
        s->out_state = st;
    }
    return s->out_state;
}

static void r_stream_free(sl_ir_stream *s)
{
    r_out *st = s->out_state;
    sl_buf_free(&st->text);
    sl_buf_free(&st->call_id);
    sl_buf_free(&st->name);
    sl_buf_free(&st->items);
    sl_buf_free(&st->final);
    free(st);
    s->out_state = NULL;
}

static sl_str r_sid(const sl_ir_stream *s)
{
    return s->echo && s->echo->id.p ? s->echo->id : sl_str_c(s->id);
}

static void ev_begin(sl_buf *o, const char *type)
{
    sl_buf_printf(o, "event: %s\ndata: {\"type\":\"%s\"", type, type);
}

static void ev_end(sl_buf *o, r_out *st)
{
    sl_buf_printf(o, ",\"sequence_number\":%ld}\n\n", st->seq++);
}

/* `,"item_id":…,"output_index":N` (and content_index 0 for text events). */
static void ev_at(sl_buf *o, const sl_ir_stream *s, const r_out *st, bool content)
{
    sl_buf_append_c(o, ",\"item_id\":");
    r_item_id(o, st->open == 2 ? "fc_" : "msg_", r_sid(s), st->index);
    sl_buf_printf(o, ",\"output_index\":%d", st->index);
    if (content)
        sl_buf_append_c(o, ",\"content_index\":0");
}

static void ev_item(sl_buf *o, const sl_ir_stream *s, r_out *st, const char *type, bool done)
{
    ev_begin(o, type);
    sl_buf_printf(o, ",\"output_index\":%d,\"item\":", st->index);
    sl_buf *item = done ? &st->items : o;
    size_t at = item->len;
    if (done && st->items.len)
        sl_buf_append_c(item, ","), at++;
    const char *status = done ? "completed" : "in_progress";
    if (st->open == 1)
        r_put_msg_item(item, r_sid(s), st->index, status, sl_buf_str(&st->text), done);
    else
        r_put_call_item(item, r_sid(s), st->index, status, sl_buf_str(&st->call_id),
                        sl_buf_str(&st->name), done ? sl_buf_str(&st->text) : SL_STR(""));
    if (done)
        sl_buf_append(o, item->p + at, item->len - at);
    ev_end(o, st);
}

static void r_text_part(sl_buf *o, const r_out *st, bool done)
{
    sl_buf_append_c(o, ",\"part\":{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],"
                       "\"text\":");
    sl_buf_json_str(o, done && st->text.p ? st->text.p : "", done ? st->text.len : 0);
    sl_buf_append_c(o, "}");
}

/* Closes the open item with its .done events. */
static void r_close(sl_ir_stream *s, r_out *st)
{
    sl_buf *o = s->sink;
    if (st->open == 1) {
        ev_begin(o, "response.output_text.done");
        ev_at(o, s, st, true);
        sl_buf_append_c(o, ",\"text\":");
        sl_buf_json_str(o, st->text.p ? st->text.p : "", st->text.len);
        sl_buf_append_c(o, ",\"logprobs\":[]");
        ev_end(o, st);
        ev_begin(o, "response.content_part.done");
        ev_at(o, s, st, true);
        r_text_part(o, st, true);
        ev_end(o, st);
    } else if (st->open == 2) {
        ev_begin(o, "response.function_call_arguments.done");
        ev_at(o, s, st, false);
        sl_buf_append_c(o, ",\"arguments\":");
        sl_buf_json_str(o, st->text.p ? st->text.p : "", st->text.len);
        ev_end(o, st);
    }
    if (st->open)
        ev_item(o, s, st, "response.output_item.done", true), st->index++;
    st->open = 0;
    sl_buf_reset(&st->text);
}

static void r_open(sl_ir_stream *s, r_out *st, int kind, const sl_ir_event *ev)
{
    sl_buf *o = s->sink;
    r_close(s, st);
    st->open = kind;
    sl_buf_reset(&st->call_id);
    sl_buf_reset(&st->name);
    if (kind == 2) {
        sl_buf_append_str(&st->call_id, ev->id);
        sl_buf_append_str(&st->name, ev->name);
    }
    ev_item(o, s, st, "response.output_item.added", false);
    if (kind != 1)
        return;
    ev_begin(o, "response.content_part.added");
    ev_at(o, s, st, true);
    r_text_part(o, st, false);
    ev_end(o, st);
}

static void r_response_event(sl_ir_stream *s, r_out *st, const char *type, bool final)
{
    sl_buf *o = s->sink;
    ev_begin(o, type);
    sl_buf_append_c(o, ",\"response\":");
    size_t at = o->len;
    sl_buf items;
    sl_buf_init(&items, 0);
    sl_buf_append_c(&items, "[");
    sl_buf_append_str(&items, sl_buf_str(&st->items));
    sl_buf_append_c(&items, "]");
    r_put_response(o, s->echo, sl_str_c(s->id), sl_str_c(s->model), s->finish, final,
                   final ? sl_buf_str(&items) : SL_STR_NULL, final ? &s->usage : NULL);
    if (final) {
        sl_buf_reset(&st->final);
        sl_buf_append(&st->final, o->p + at, o->len - at);
    }
    sl_buf_free(&items);
    ev_end(o, st);
}

static void r_emit_event(sl_ir_stream *s, const sl_ir_event *ev)
{
    r_out *st = r_state(s);
    if (!st)
        return;
    sl_buf *o = s->sink;
    switch (ev->type) {
    case SL_IR_EV_START:
        r_response_event(s, st, "response.created", false);
        r_response_event(s, st, "response.in_progress", false);
        break;
    case SL_IR_EV_TEXT:
        if (st->open != 1)
            r_open(s, st, 1, ev);
        sl_buf_append_str(&st->text, ev->text);
        ev_begin(o, "response.output_text.delta");
        ev_at(o, s, st, true);
        sl_buf_append_c(o, ",\"delta\":");
        sl_ir_put_str(o, ev->text, "\"\"");
        sl_buf_append_c(o, ",\"logprobs\":[]");
        ev_end(o, st);
        break;
    case SL_IR_EV_TOOL_START: r_open(s, st, 2, ev); break;
    case SL_IR_EV_TOOL_ARGS:
        if (st->open != 2)
            break;
        sl_buf_append_str(&st->text, ev->text);
        ev_begin(o, "response.function_call_arguments.delta");
        ev_at(o, s, st, false);
        sl_buf_append_c(o, ",\"delta\":");
        sl_ir_put_str(o, ev->text, "\"\"");
        ev_end(o, st);
        break;
    case SL_IR_EV_END:
        r_close(s, st);
        r_response_event(
            s, st, s->finish == SL_IR_FINISH_LENGTH ? "response.incomplete" : "response.completed",
            true);
        break;
    case SL_IR_EV_ERROR: r_error_event_seq(&ev->error, o, st->seq++); break;
    default: break;
    }
}

sl_str sl_responses_stream_final(const sl_ir_stream *s)
{
    const r_out *st = s->out_state;
    if (!st || !s->finished || s->failed || !st->final.len)
        return SL_STR_NULL;
    return sl_buf_str(&st->final);
}

const sl_dialect sl_dialect_responses = {
    .name = "responses",
    .path = r_path,
    .headers = r_headers,
    .prompt_counts_cache = true,
    .parse_request = r_parse_request,
    .emit_request = r_emit_request,
    .parse_answer = r_parse_answer,
    .emit_answer = r_emit_answer,
    .usage = r_usage,
    .parse_error = r_parse_error,
    .emit_error = sl_ir_openai_error,
    .emit_error_event = r_error_event,
    .watch_event = r_watch,
    .parse_event = r_parse_event,
    .emit_event = r_emit_event,
    .stream_free = r_stream_free,
};
