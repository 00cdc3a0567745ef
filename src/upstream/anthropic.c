/* anthropic.c — the Anthropic Messages dialect.
 *
 * Reads and writes /v1/messages requests, message answers, the message
 * stream's events and error objects through the IR (dialect.h). Anthropic
 * wants user/assistant alternation, so consecutive same-role turns merge;
 * what Messages cannot say (n > 1, logprobs, penalties, JSON mode) is refused
 * with the parameter at fault. */
#include <curl/curl.h>
#include <stdio.h>
#include <strings.h>

#include "sluice/dialects.h"
#include "sluice/upstream.h"

#define is_str            sl_ir_is_str
#define is_num            sl_ir_is_num
#define ANTHROPIC_VERSION "2023-06-01"
/* The tool that carries a response_format to a model without structured
 * outputs: forced, and its input is the answer's text. */
#define FORMAT_TOOL "sluice_response_format"

/* ---- path and headers ---------------------------------------------------------------- */

static const char *a_path(sl_api api)
{
    if (api == SL_API_COUNT_TOKENS)
        return "/v1/messages/count_tokens";
    return api == SL_API_CHAT || api == SL_API_MESSAGES || api == SL_API_RESPONSES ? "/v1/messages"
                                                                                   : NULL;
}

/* The version sluice speaks unless the client's own anthropic-version is
 * already on the list (the proxy forwards the client's first). */
static struct curl_slist *a_headers(struct curl_slist *h, const char *api_key)
{
    if (api_key && api_key[0]) {
        char line[1024];
        snprintf(line, sizeof line, "x-api-key: %s", api_key);
        h = sl_header_list_append(h, line);
    }
    for (const struct curl_slist *l = h; l; l = l->next) {
        if (strncasecmp(l->data, "anthropic-version:", 18) == 0)
            return h;
    }
    return sl_header_list_append(h, "anthropic-version: " ANTHROPIC_VERSION);
}

/* ---- request -> IR --------------------------------------------------------------------- */

/* An image block's source as a URL: inline (base64) images become data URLs. */
static sl_str a_image_url(const sl_json *b, sl_arena *a)
{
    const sl_json *src = sl_json_get(b, "source");
    const sl_json *url = sl_json_get(src, "url");
    const sl_json *mt = sl_json_get(src, "media_type"), *data = sl_json_get(src, "data");
    if (is_str(url))
        return url->str;
    if (!is_str(mt) || !is_str(data))
        return SL_STR("");
    char *u = sl_arena_printf(a, "data:%.*s;base64,%.*s", (int)mt->str.len, mt->str.p,
                              (int)data->str.len, data->str.p);
    return u ? sl_str_c(u) : SL_STR("");
}

static sl_ir_part_type a_block_type(sl_str t)
{
    return sl_str_eq_c(t, "text")          ? SL_IR_TEXT
           : sl_str_eq_c(t, "image")       ? SL_IR_IMAGE
           : sl_str_eq_c(t, "tool_use")    ? SL_IR_TOOL_CALL
           : sl_str_eq_c(t, "tool_result") ? SL_IR_TOOL_RESULT
                                           : SL_IR_OTHER;
}

/* One content block as a part (a text block without text is skipped). */
static int a_block(const sl_json *b, sl_arena *a, sl_ir_part ***tail)
{
    const sl_json *type = sl_json_get(b, "type"), *text = sl_json_get(b, "text");
    if (!is_str(type))
        return SL_OK;
    sl_ir_part_type t = a_block_type(type->str);
    if (t == SL_IR_TEXT && !is_str(text))
        return SL_OK;
    sl_ir_part *p = sl_ir_add_part(a, tail, t);
    if (!p)
        return SL_ENOMEM;
    p->cache_control = sl_json_get(b, "cache_control");
    const sl_json *input = sl_json_get(b, "input");
    switch (t) {
    case SL_IR_TEXT: p->text = text->str; break;
    case SL_IR_IMAGE: p->url = a_image_url(b, a); break;
    case SL_IR_TOOL_CALL:
        p->id = sl_ir_str(sl_json_get(b, "id"));
        p->name = sl_ir_str(sl_json_get(b, "name"));
        p->args = input ? input->raw : SL_STR("");
        break;
    case SL_IR_TOOL_RESULT:
        p->id = sl_ir_str(sl_json_get(b, "tool_use_id"));
        p->text = sl_ir_text_of(sl_json_get(b, "content"), a);
        break;
    case SL_IR_OTHER: p->text = type->str; break;
    }
    return SL_OK;
}

static int a_message(const sl_json *m, sl_arena *a, sl_ir_msg ***tail, sl_ir_refusal *e)
{
    const sl_json *role = sl_json_get(m, "role"), *c = sl_json_get(m, "content");
    if (!is_str(role))
        return sl_ir_refuse(e, "every message needs a role", "messages");
    sl_ir_role r = sl_str_eq_c(role->str, "user")        ? SL_IR_USER
                   : sl_str_eq_c(role->str, "assistant") ? SL_IR_ASSISTANT
                                                         : SL_IR_ROLE_OTHER;
    sl_ir_msg *msg = sl_ir_add_msg(a, tail, r, role->str);
    if (!msg)
        return sl_ir_nomem(e);
    sl_ir_part **parts = &msg->parts;
    if (is_str(c)) {
        msg->plain = true;
        sl_ir_part *p = c->str.len ? sl_ir_add_part(a, &parts, SL_IR_TEXT) : NULL;
        if (p)
            p->text = c->str;
        return !c->str.len || p ? SL_OK : sl_ir_nomem(e);
    }
    for (const sl_json *b = c && c->type == SL_JSON_ARRAY ? c->child : NULL; b; b = b->next) {
        if (a_block(b, a, &parts))
            return sl_ir_nomem(e);
    }
    return SL_OK;
}

static int a_system(const sl_json *sys, sl_arena *a, sl_ir_req *ir)
{
    sl_ir_part **tail = &ir->system;
    if (is_str(sys)) {
        sl_ir_part *p = sl_ir_add_part(a, &tail, SL_IR_TEXT);
        return p ? (p->text = sys->str, SL_OK) : SL_ENOMEM;
    }
    for (const sl_json *b = sys && sys->type == SL_JSON_ARRAY ? sys->child : NULL; b; b = b->next) {
        const sl_json *t = sl_json_get(b, "text");
        if (!is_str(t))
            continue;
        sl_ir_part *p = sl_ir_add_part(a, &tail, SL_IR_TEXT);
        if (!p)
            return SL_ENOMEM;
        p->text = t->str;
        p->cache_control = sl_json_get(b, "cache_control");
    }
    return SL_OK;
}

static int a_tools(const sl_json *tools, sl_arena *a, sl_ir_req *ir)
{
    sl_ir_tool **tail = &ir->tools;
    for (const sl_json *t = tools && tools->type == SL_JSON_ARRAY ? tools->child : NULL; t;
         t = t->next) {
        sl_ir_tool *tool = sl_arena_calloc(a, sizeof(*tool));
        if (!tool)
            return SL_ENOMEM;
        *tail = tool, tail = &tool->next;
        /* client tools (no type, or "custom"); server tools (web_search_..., bash_...)
         * keep their type: another dialect refuses them */
        sl_str type = sl_ir_str(sl_json_get(t, "type"));
        tool->function = !type.p || sl_str_eq_c(type, "custom");
        tool->type = tool->function ? SL_STR("function") : type;
        tool->name = sl_ir_str(sl_json_get(t, "name"));
        tool->description = sl_ir_str(sl_json_get(t, "description"));
        tool->parameters = sl_json_get(t, "input_schema");
        tool->cache_control = sl_json_get(t, "cache_control");
    }
    return SL_OK;
}

static void a_tool_choice(const sl_json *tc, sl_ir_req *ir)
{
    sl_str t = sl_ir_str(sl_json_get(tc, "type"));
    ir->tool_choice = sl_str_eq_c(t, "auto")   ? SL_IR_CHOICE_AUTO
                      : sl_str_eq_c(t, "any")  ? SL_IR_CHOICE_ANY
                      : sl_str_eq_c(t, "none") ? SL_IR_CHOICE_NONE
                      : sl_str_eq_c(t, "tool") ? SL_IR_CHOICE_TOOL
                                               : SL_IR_CHOICE_UNSET;
    ir->tool_choice_name = sl_ir_str(sl_json_get(tc, "name"));
    const sl_json *one = sl_json_get(tc, "disable_parallel_tool_use");
    ir->one_tool_call = one && one->type == SL_JSON_TRUE;
}

/* Messages parameters the IR cannot carry: another dialect refuses them,
 * naming them, rather than answer without them. */
static void a_unmapped(const sl_json *msg, sl_ir_req *ir)
{
    static const char *const never[] = {"top_k", "mcp_servers", "container", "context_management"};
    for (size_t i = 0; i < SL_ARRAY_LEN(never) && !ir->unmapped; i++) {
        const sl_json *v = sl_json_get(msg, never[i]);
        if (v && v->type != SL_JSON_NULL)
            ir->unmapped = never[i];
    }
    const sl_json *th = sl_json_get(msg, "thinking");
    if (!ir->unmapped && th && !sl_str_eq_c(sl_ir_str(sl_json_get(th, "type")), "disabled") &&
        th->type != SL_JSON_NULL)
        ir->unmapped = "thinking";
}

static void a_params(const sl_json *msg, sl_ir_req *ir)
{
    ir->max_tokens = sl_ir_num_of(msg, "max_tokens");
    ir->temperature = sl_ir_num_of(msg, "temperature");
    ir->top_p = sl_ir_num_of(msg, "top_p");
    const sl_json *st = sl_json_get(msg, "stream");
    ir->stream = st && st->type == SL_JSON_TRUE;
    a_tool_choice(sl_json_get(msg, "tool_choice"), ir);
    a_unmapped(msg, ir);
    const sl_json *fmt = sl_json_get(sl_json_get(msg, "output_config"), "format");
    if (!fmt)
        fmt = sl_json_get(msg, "output_format"); /* the beta's name */
    if (sl_str_eq_c(sl_ir_str(sl_json_get(fmt, "type")), "json_schema")) {
        ir->format.type = SL_IR_FORMAT_JSON_SCHEMA;
        ir->format.schema = sl_json_get(fmt, "schema");
        ir->format.strict = true; /* constrained decoding */
    } else if (fmt) {
        ir->unmapped = "output_config"; /* a format the IR cannot carry */
    }
    ir->user = sl_ir_str(sl_json_get(sl_json_get(msg, "metadata"), "user_id"));
}

static int a_parse_request(const sl_json *msg, sl_arena *a, sl_ir_req *ir, sl_ir_refusal *e)
{
    memset(ir, 0, sizeof(*ir));
    const sl_json *model = sl_json_get(msg, "model"), *msgs = sl_json_get(msg, "messages");
    if (!is_str(model) || !msgs || msgs->type != SL_JSON_ARRAY)
        return sl_ir_refuse(e, "model and messages are required", "messages");
    ir->model = model->str;
    a_params(msg, ir);
    if (a_system(sl_json_get(msg, "system"), a, ir) || a_tools(sl_json_get(msg, "tools"), a, ir) ||
        sl_ir_take_stops(sl_json_get(msg, "stop_sequences"), a, ir))
        return sl_ir_nomem(e);
    sl_ir_msg **tail = &ir->messages;
    for (const sl_json *m = msgs->child; m; m = m->next) {
        int rc = a_message(m, a, &tail, e);
        if (rc)
            return rc;
    }
    return SL_OK;
}

/* ---- IR -> request ----------------------------------------------------------------------- */

static int a_check(const sl_ir_req *ir, sl_ir_refusal *e)
{
    if (ir->n.set && ir->n.v != 1)
        return sl_ir_refuse(e, "n > 1 is not supported by anthropic providers", "n");
    if (ir->unmapped)
        return sl_ir_refuse(e, "this parameter is not supported by anthropic providers",
                            ir->unmapped);
    if (ir->presence_penalty.set && ir->presence_penalty.v != 0)
        return sl_ir_refuse(e, "penalties are not supported by anthropic providers",
                            "presence_penalty");
    if (ir->frequency_penalty.set && ir->frequency_penalty.v != 0)
        return sl_ir_refuse(e, "penalties are not supported by anthropic providers",
                            "frequency_penalty");
    bool schema = ir->format.type == SL_IR_FORMAT_JSON_SCHEMA && ir->format.schema &&
                  ir->format.schema->type == SL_JSON_OBJECT;
    if (ir->format.type != SL_IR_FORMAT_UNSET && ir->format.type != SL_IR_FORMAT_TEXT &&
        ir->format.type != SL_IR_FORMAT_JSON_OBJECT && !schema)
        return sl_ir_refuse(e,
                            "anthropic providers take response_format json_object, or "
                            "json_schema with a schema object",
                            "response_format");
    for (const sl_ir_tool *t = ir->tools; t; t = t->next) {
        if (!t->function)
            return sl_ir_refuse(e, "only function tools can go to an anthropic provider", "tools");
    }
    return SL_OK;
}

/* Turns are written as they come; a turn of the same role as the open one
 * joins it (Anthropic wants user/assistant alternation). */
typedef struct conv {
    sl_buf *o;
    sl_ir_role role; /* of the open message */
    bool open, first_block;
    int n;
} conv;

static void open_role(conv *cv, sl_ir_role role)
{
    if (cv->open && cv->role == role)
        return;
    if (cv->open)
        sl_buf_append_c(cv->o, "]}");
    sl_buf_printf(cv->o, "%s{\"role\":\"%s\",\"content\":[", cv->n++ ? "," : "",
                  role == SL_IR_ASSISTANT ? "assistant" : "user");
    cv->role = role;
    cv->open = true;
    cv->first_block = true;
}

static int a_put_image(sl_buf *o, sl_str u, sl_ir_refusal *e)
{
    if (!(u.len > 5 && memcmp(u.p, "data:", 5) == 0)) {
        sl_buf_append_c(o, "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":");
        sl_buf_json_str(o, u.p, u.len);
        sl_buf_append_c(o, "}}");
        return SL_OK;
    }
    const char *semi = memchr(u.p, ';', u.len), *comma = memchr(u.p, ',', u.len);
    if (!semi || !comma || comma < semi)
        return sl_ir_refuse(e, "image data URLs must be base64", "messages");
    sl_buf_append_c(o, "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":");
    sl_buf_json_str(o, u.p + 5, (size_t)(semi - u.p - 5));
    sl_buf_append_c(o, ",\"data\":");
    sl_buf_json_str(o, comma + 1, (size_t)(u.p + u.len - comma - 1));
    sl_buf_append_c(o, "}}");
    return SL_OK;
}

/* A tool call: its arguments must be a JSON object (written canonically). */
static int a_put_tool_use(sl_buf *o, const sl_ir_part *p, sl_ir_refusal *e)
{
    sl_arena a;
    sl_arena_init(&a, NULL, 0, 1 << 20);
    sl_json *input = NULL;
    sl_json_error je;
    int rc = p->args.len ? sl_json_parse(&a, p->args.p, p->args.len, NULL, &input, &je) : SL_OK;
    if (rc || (input && input->type != SL_JSON_OBJECT)) {
        sl_arena_free(&a);
        return sl_ir_refuse(e, "tool call arguments must be a JSON object", "messages");
    }
    sl_buf_append_c(o, "{\"type\":\"tool_use\",\"id\":");
    sl_ir_put_str(o, p->id, "\"\"");
    sl_buf_append_c(o, ",\"name\":");
    sl_ir_put_str(o, p->name, "\"\"");
    sl_buf_append_c(o, ",\"input\":");
    if (input)
        sl_json_canonical(input, o, NULL);
    else
        sl_buf_append_c(o, "{}");
    sl_buf_append_c(o, "}");
    sl_arena_free(&a);
    return SL_OK;
}

static int a_put_part(sl_buf *o, const sl_ir_part *p, sl_ir_refusal *e)
{
    switch (p->type) {
    case SL_IR_TEXT:
        sl_buf_append_c(o, "{\"type\":\"text\",\"text\":");
        sl_ir_put_str(o, p->text, "\"\"");
        sl_buf_append_c(o, "}");
        return SL_OK;
    case SL_IR_IMAGE: return a_put_image(o, p->url, e);
    case SL_IR_TOOL_CALL: return a_put_tool_use(o, p, e);
    case SL_IR_TOOL_RESULT:
        sl_buf_append_c(o, "{\"type\":\"tool_result\",\"tool_use_id\":");
        sl_ir_put_str(o, p->id, "\"\"");
        sl_buf_append_c(o, ",\"content\":");
        sl_ir_put_str(o, p->text, "\"\"");
        sl_buf_append_c(o, "}");
        return SL_OK;
    case SL_IR_OTHER: break;
    }
    return sl_ir_refuse(e, "only text and image_url content parts can go to an anthropic provider",
                        "messages");
}

/* A block just written gets its cache_control (the client's, verbatim). */
static void a_put_cache_control(sl_buf *o, const sl_json *cc)
{
    if (!cc || !o->len || o->p[o->len - 1] != '}')
        return;
    o->len--;
    sl_buf_append_c(o, ",\"cache_control\":");
    sl_buf_append_str(o, cc->raw);
    sl_buf_append_c(o, "}");
}

static int a_put_messages(sl_buf *o, const sl_ir_req *ir, sl_ir_refusal *e)
{
    conv cv = {.o = o};
    sl_buf_append_c(o, ",\"messages\":[");
    for (const sl_ir_msg *m = ir->messages; m; m = m->next) {
        if (m->role == SL_IR_ROLE_OTHER)
            return sl_ir_refuse(e, "this message role cannot go to an anthropic provider",
                                "messages");
        open_role(&cv, m->role);
        for (const sl_ir_part *p = m->parts; p; p = p->next) {
            sl_buf_append_c(o, cv.first_block ? "" : ",");
            if (a_put_part(o, p, e))
                return SL_EINVAL;
            a_put_cache_control(o, p->cache_control);
            cv.first_block = false;
        }
    }
    sl_buf_append_c(o, cv.open ? "]}]" : "]");
    return SL_OK;
}

/* Structured outputs (output_config.format): Claude Opus 4.5 and later,
 * Sonnet 4.5 and later, Haiku 4.5 and later ("claude-<family>-<major>-<minor>",
 * a date after the major is no minor). */
static bool a_native_format(sl_str model)
{
    if (model.len < 8 || memcmp(model.p, "claude-", 7) != 0)
        return false;
    const char *p = model.p + 7, *end = model.p + model.len;
    while (p < end && *p >= 'a' && *p <= 'z')
        p++;
    if (p >= end || *p != '-')
        return false;
    int major = 0, minor = 0, digits = 0;
    for (p++; p < end && *p >= '0' && *p <= '9'; p++)
        major = major * 10 + (*p - '0');
    if (p < end && *p == '-') {
        for (p++; p < end && *p >= '0' && *p <= '9' && digits < 3; p++, digits++)
            minor = minor * 10 + (*p - '0');
        if (digits > 2)
            minor = 0; /* claude-sonnet-4-20250514 */
    }
    return major > 4 || (major == 4 && minor >= 5);
}

/* response_format json_schema without native structured outputs, and JSON
 * mode (any object): a tool whose input is the answer, forced unless the
 * client's own tools may run. */
static bool a_format_tool(const sl_ir_req *ir)
{
    return ir->format.type == SL_IR_FORMAT_JSON_OBJECT ||
           (ir->format.type == SL_IR_FORMAT_JSON_SCHEMA && !a_native_format(ir->model));
}

static void a_put_format_tool(sl_buf *o, const sl_ir_req *ir, bool first)
{
    sl_buf d;
    sl_buf_init(&d, 0);
    sl_buf_append_c(&d, "Give the answer as this tool's input: JSON that matches its schema");
    if (ir->format.name.len) {
        sl_buf_append_c(&d, " (");
        sl_buf_append_str(&d, ir->format.name);
        sl_buf_append_c(&d, ")");
    }
    sl_buf_append_c(&d, ".");
    sl_buf_append_c(o, first ? "{" : ",{");
    sl_buf_append_c(o, "\"name\":\"" FORMAT_TOOL "\",\"description\":");
    sl_buf_json_str(o, d.p, d.len);
    sl_buf_append_c(o, ",\"input_schema\":");
    if (ir->format.schema)
        sl_buf_append_str(o, ir->format.schema->raw);
    else /* JSON mode: any object */
        sl_buf_append_c(o, "{\"type\":\"object\"}");
    sl_buf_append_c(o, "}");
    sl_buf_free(&d);
}

/* tool_choice: the client's, or what the response_format's tool needs; with
 * disable_parallel_tool_use when the client wants one call at most. */
static void a_put_choice(sl_buf *o, const sl_ir_req *ir, bool format)
{
    sl_ir_choice c = ir->tool_choice;
    sl_str name = ir->tool_choice_name;
    if (format && (!ir->tools || c == SL_IR_CHOICE_NONE))
        c = SL_IR_CHOICE_TOOL, name = SL_STR(FORMAT_TOOL);
    else if (format && (c == SL_IR_CHOICE_UNSET || c == SL_IR_CHOICE_AUTO))
        c = SL_IR_CHOICE_ANY; /* one of its tools, or the answer */
    if (c == SL_IR_CHOICE_UNSET && ir->one_tool_call && ir->tools)
        c = SL_IR_CHOICE_AUTO;
    if (c == SL_IR_CHOICE_UNSET)
        return;
    static const char *const names[] = {[SL_IR_CHOICE_AUTO] = "auto",
                                        [SL_IR_CHOICE_ANY] = "any",
                                        [SL_IR_CHOICE_NONE] = "none",
                                        [SL_IR_CHOICE_TOOL] = "tool"};
    sl_buf_printf(o, ",\"tool_choice\":{\"type\":\"%s\"", names[c]);
    if (c == SL_IR_CHOICE_TOOL) {
        sl_buf_append_c(o, ",\"name\":");
        sl_ir_put_str(o, name, "\"\"");
    }
    if (ir->one_tool_call && c != SL_IR_CHOICE_NONE)
        sl_buf_append_c(o, ",\"disable_parallel_tool_use\":true");
    sl_buf_append_c(o, "}");
}

static void a_put_tools(sl_buf *o, const sl_ir_req *ir)
{
    bool format = a_format_tool(ir);
    if (ir->tools || format) {
        sl_buf_append_c(o, ",\"tools\":[");
        if (format)
            a_put_format_tool(o, ir, true);
        for (const sl_ir_tool *t = ir->tools; t; t = t->next) {
            sl_buf_append_c(o, t == ir->tools && !format ? "{\"name\":" : ",{\"name\":");
            sl_ir_put_str(o, t->name, "\"\"");
            if (t->description.p) {
                sl_buf_append_c(o, ",\"description\":");
                sl_ir_put_str(o, t->description, "\"\"");
            }
            sl_buf_append_c(o, ",\"input_schema\":");
            if (t->parameters && t->parameters->type == SL_JSON_OBJECT)
                sl_buf_append_str(o, t->parameters->raw);
            else
                sl_buf_append_c(o, "{\"type\":\"object\",\"properties\":{}}");
            sl_buf_append_c(o, "}");
            a_put_cache_control(o, t->cache_control);
        }
        sl_buf_append_c(o, "]");
    }
    a_put_choice(o, ir, format);
}

static void a_put_params(sl_buf *o, const sl_ir_req *ir)
{
    if (ir->temperature.set) /* Anthropic's range is 0..1, OpenAI's 0..2 */
        sl_buf_printf(o, ",\"temperature\":%g", ir->temperature.v > 1 ? 1.0 : ir->temperature.v);
    sl_ir_put_num(o, "top_p", &ir->top_p);
    sl_ir_put_stops(o, "stop_sequences", ir);
    if (ir->stream)
        sl_buf_append_c(o, ",\"stream\":true");
    if (ir->user.p) {
        sl_buf_append_c(o, ",\"metadata\":{\"user_id\":");
        sl_ir_put_str(o, ir->user, "\"\"");
        sl_buf_append_c(o, "}");
    }
}

/* The system prompt: one string, or text blocks when one carries a cache_control. */
static void a_put_system(sl_buf *o, const sl_ir_part *sys)
{
    bool marked = false;
    for (const sl_ir_part *p = sys; p; p = p->next)
        marked |= p->cache_control != NULL;
    sl_buf_append_c(o, ",\"system\":");
    if (!marked) {
        sl_ir_put_joined(o, sys, "\n\n");
        return;
    }
    sl_buf_append_c(o, "[");
    for (const sl_ir_part *p = sys; p; p = p->next) {
        sl_buf_append_c(o, p == sys ? "{\"type\":\"text\",\"text\":"
                                    : ",{\"type\":\"text\",\"text\":");
        sl_ir_put_str(o, p->text, "\"\"");
        sl_buf_append_c(o, "}");
        a_put_cache_control(o, p->cache_control);
    }
    sl_buf_append_c(o, "]");
}

static int a_emit_request(const sl_ir_req *ir, sl_buf *o, sl_ir_refusal *e)
{
    if (a_check(ir, e))
        return SL_EINVAL;
    sl_buf_append_c(o, "{\"model\":");
    sl_ir_put_str(o, ir->model, "\"\"");
    if (ir->max_tokens.set)
        sl_ir_put_num(o, "max_tokens", &ir->max_tokens);
    else /* required by Anthropic */
        sl_buf_printf(o, ",\"max_tokens\":%d", SL_DIALECT_DEFAULT_MAX_TOKENS);
    if (a_put_messages(o, ir, e))
        return SL_EINVAL;
    bool system = false;
    for (const sl_ir_part *p = ir->system; p; p = p->next)
        system |= p->text.len > 0;
    if (system)
        a_put_system(o, ir->system);
    a_put_tools(o, ir);
    a_put_params(o, ir);
    if (ir->format.type == SL_IR_FORMAT_JSON_SCHEMA && !a_format_tool(ir)) {
        sl_buf_append_c(o, ",\"output_config\":{\"format\":{\"type\":\"json_schema\",\"schema\":");
        sl_buf_append_str(o, ir->format.schema->raw);
        sl_buf_append_c(o, "}}");
    }
    sl_buf_append_c(o, "}");
    return SL_OK;
}

/* ---- answers ---------------------------------------------------------------------------- */

static const sl_ir_finish_name a_finishes[] = {
    {"end_turn", SL_IR_FINISH_STOP},       {"max_tokens", SL_IR_FINISH_LENGTH},
    {"tool_use", SL_IR_FINISH_TOOL_CALLS}, {"stop_sequence", SL_IR_FINISH_STOP_SEQUENCE},
    {"refusal", SL_IR_FINISH_REFUSAL},
};
#define a_finish_in(s)  sl_ir_finish_in(a_finishes, SL_ARRAY_LEN(a_finishes), s)
#define a_finish_out(f) sl_ir_finish_out(a_finishes, SL_ARRAY_LEN(a_finishes), f)

/* Anthropic's input_tokens excludes the cache's tokens: the IR counts them in.
 * cache_creation_input_tokens counts both TTLs; cache_creation tells them apart. */
static void a_usage_of(const sl_json *us, sl_ir_usage *u)
{
    u->cache_read = sl_ir_count(us, "cache_read_input_tokens");
    u->cache_write = sl_ir_count(us, "cache_creation_input_tokens");
    u->cache_write_1h = sl_ir_count(sl_json_get(us, "cache_creation"), "ephemeral_1h_input_tokens");
    if (u->cache_write_1h > u->cache_write)
        u->cache_write_1h = u->cache_write;
    u->input = sl_ir_count(us, "input_tokens") + u->cache_read + u->cache_write;
}

/* A usage object that says something about the prompt: a translated
 * message_start carries input_tokens 0 before the provider counted. */
static bool a_has_input(const sl_json *us)
{
    return is_num(sl_json_get(us, "input_tokens")) &&
           (sl_ir_count(us, "input_tokens") > 0 || sl_ir_count(us, "cache_read_input_tokens") > 0 ||
            sl_ir_count(us, "cache_creation_input_tokens") > 0);
}

static unsigned a_usage(const sl_json *root, sl_ir_usage *u)
{
    const sl_json *us = sl_json_get(root, "usage");
    if (!us || us->type != SL_JSON_OBJECT)
        return 0;
    unsigned have = 0;
    if (is_num(sl_json_get(us, "input_tokens")))
        a_usage_of(us, u), have |= SL_USAGE_INPUT;
    if (is_num(sl_json_get(us, "output_tokens")))
        u->output = sl_ir_count(us, "output_tokens"), have |= SL_USAGE_OUTPUT;
    return have;
}

static int a_parse_answer(const sl_json *msg, sl_arena *a, sl_ir_answer *ir)
{
    memset(ir, 0, sizeof(*ir));
    ir->id = sl_ir_str(sl_json_get(msg, "id"));
    ir->model = sl_ir_str(sl_json_get(msg, "model"));
    ir->finish = a_finish_in(sl_ir_str(sl_json_get(msg, "stop_reason")));
    ir->stop_sequence = sl_ir_str(sl_json_get(msg, "stop_sequence"));
    const sl_json *content = sl_json_get(msg, "content");
    sl_ir_part **tail = &ir->parts;
    bool format = false, calls = false;
    for (const sl_json *b = content && content->type == SL_JSON_ARRAY ? content->child : NULL; b;
         b = b->next) {
        sl_str t = sl_ir_str(sl_json_get(b, "type"));
        if (!sl_str_eq_c(t, "text") && !sl_str_eq_c(t, "tool_use"))
            continue; /* thinking blocks have no chat.completion form yet */
        sl_ir_part *added = NULL, **at = tail;
        if (a_block(b, a, &tail))
            return SL_ENOMEM;
        added = *at;
        if (added && added->type == SL_IR_TOOL_CALL && sl_str_eq_c(added->name, FORMAT_TOOL)) {
            added->type = SL_IR_TEXT; /* the response_format's answer, as text */
            added->text = added->args;
            format = true;
        } else if (added && added->type == SL_IR_TOOL_CALL) {
            calls = true;
        }
    }
    if (format && !calls && ir->finish == SL_IR_FINISH_TOOL_CALLS)
        ir->finish = SL_IR_FINISH_STOP;
    const sl_json *us = sl_json_get(msg, "usage");
    a_usage_of(us, &ir->usage);
    ir->usage.output = sl_ir_count(us, "output_tokens");
    return SL_OK;
}

static void a_put_answer_usage(sl_buf *o, const sl_ir_usage *u)
{
    long uncached = sl_dialect_prompt_tokens(&sl_dialect_anthropic, u);
    sl_buf_printf(o, ",\"usage\":{\"input_tokens\":%ld,\"output_tokens\":%ld", uncached, u->output);
    if (u->cache_write)
        sl_buf_printf(o, ",\"cache_creation_input_tokens\":%ld", u->cache_write);
    if (u->cache_read)
        sl_buf_printf(o, ",\"cache_read_input_tokens\":%ld", u->cache_read);
    sl_buf_append_c(o, "}}");
}

static void a_emit_answer(const sl_ir_answer *ir, sl_buf *o)
{
    sl_buf_append_c(o, "{\"id\":");
    sl_ir_put_str(o, ir->id, "\"msg\"");
    sl_buf_append_c(o, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    sl_ir_put_str(o, ir->model, "\"\"");
    sl_buf_append_c(o, ",\"content\":[");
    bool first = true;
    for (const sl_ir_part *p = ir->parts; p; p = p->next) {
        if (p->type == SL_IR_TEXT && p->text.len) {
            sl_buf_append_c(o, first ? "{\"type\":\"text\",\"text\":"
                                     : ",{\"type\":\"text\",\"text\":");
            sl_ir_put_str(o, p->text, "\"\"");
            sl_buf_append_c(o, "}");
        } else if (p->type == SL_IR_TOOL_CALL) {
            sl_buf_append_c(o, first ? "{\"type\":\"tool_use\",\"id\":"
                                     : ",{\"type\":\"tool_use\",\"id\":");
            sl_ir_put_str(o, p->id, "\"\"");
            sl_buf_append_c(o, ",\"name\":");
            sl_ir_put_str(o, p->name, "\"\"");
            bool obj = p->args.len && p->args.p[0] == '{';
            sl_buf_append_c(o, ",\"input\":");
            sl_buf_append(o, obj ? p->args.p : "{}", obj ? p->args.len : 2);
            sl_buf_append_c(o, "}");
        } else {
            continue;
        }
        first = false;
    }
    sl_buf_printf(o, "],\"stop_reason\":\"%s\",\"stop_sequence\":", a_finish_out(ir->finish));
    sl_ir_put_str(o, ir->stop_sequence, "null");
    a_put_answer_usage(o, &ir->usage);
}

/* ---- errors -------------------------------------------------------------------------------- */

static void a_parse_error(const sl_json *body, sl_ir_error *e)
{
    const sl_json *err = sl_json_get(body, "error");
    const sl_json *msg = sl_json_get(err, "message"), *type = sl_json_get(err, "type");
    *e = (sl_ir_error){
        .type = is_str(type) ? type->str : SL_STR("api_error"),
        .message = is_str(msg) ? msg->str : SL_STR("provider error"),
    };
}

/* Anthropic's error type for sluice's own errors and translated ones: by the
 * status when it is known (OpenAI says invalid_request_error for a 401),
 * else the type when it is one of Anthropic's, else by OpenAI's type. */
static const char *a_error_type(const sl_ir_error *e)
{
    switch (e->status) {
    case 0: break;
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 503:
    case 529: return "overloaded_error";
    default: return e->status >= 500 ? "api_error" : "invalid_request_error";
    }
    static const char *const native[] = {
        "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
        "rate_limit_error",      "overloaded_error",     "api_error"};
    for (size_t i = 0; i < SL_ARRAY_LEN(native); i++) {
        if (sl_str_eq_c(e->type, native[i]))
            return native[i];
    }
    if (sl_str_eq_c(e->type, "insufficient_quota") || sl_str_eq_c(e->code, "rate_limit_exceeded"))
        return "rate_limit_error";
    if (sl_str_eq_c(e->code, "invalid_api_key"))
        return "authentication_error";
    if (sl_str_eq_c(e->code, "model_not_found"))
        return "not_found_error";
    return "api_error";
}

static void a_emit_error(const sl_ir_error *e, sl_buf *o)
{
    sl_buf_printf(o, "{\"type\":\"error\",\"error\":{\"type\":\"%s\"", a_error_type(e));
    sl_buf_append_c(o, ",\"message\":");
    sl_ir_put_str(o, e->message, "\"error\"");
    sl_buf_append_c(o, "}}");
}

static void a_emit_error_event(const sl_ir_error *e, sl_buf *o)
{
    sl_buf_append_c(o, "event: error\ndata: ");
    a_emit_error(e, o);
    sl_buf_append_c(o, "\n\n");
}

/* ---- streams -------------------------------------------------------------------------------- */

/* Usage sits in message_start (input) and message_delta (output). */
static unsigned a_watch(sl_str event, sl_str data, sl_ir_usage *u, unsigned *have)
{
    unsigned f = SL_WATCH_CHUNK | (sl_str_eq_c(event, "message_stop") ? SL_WATCH_END : 0);
    if (!memmem(data.p, data.len, "\"usage\"", 7))
        return f;
    sl_ir_scratch sc;
    const sl_json *root = sl_ir_scratch_parse(&sc, data, 1 << 20);
    if (root) {
        const sl_json *m = sl_json_get(root, "message");
        const sl_json *us = sl_json_get(m ? m : root, "usage");
        const sl_json *out = sl_json_get(us, "output_tokens");
        if (a_has_input(us)) /* message_start, and the final message_delta of today's API */
            a_usage_of(us, u), *have |= SL_USAGE_INPUT;
        if (is_num(out) && !m)
            u->output = sl_ir_count(us, "output_tokens"), *have |= SL_USAGE_OUTPUT;
    }
    sl_ir_scratch_free(&sc);
    return f;
}

static void a_parse_start(sl_ir_stream *s, const sl_json *d)
{
    const sl_json *m = sl_json_get(d, "message");
    sl_ir_event ev = {.type = SL_IR_EV_START,
                      .id = sl_ir_str(sl_json_get(m, "id")),
                      .model = sl_ir_str(sl_json_get(m, "model")),
                      .have = SL_USAGE_INPUT};
    a_usage_of(sl_json_get(m, "usage"), &ev.usage);
    sl_ir_stream_put(s, &ev);
}

static void a_parse_delta(sl_ir_stream *s, const sl_json *d)
{
    const sl_json *dd = sl_json_get(d, "delta");
    const sl_json *text = sl_json_get(dd, "text"), *pj = sl_json_get(dd, "partial_json");
    if (is_str(text) || (is_str(pj) && s->in.format)) /* the response_format tool: text */
        sl_ir_stream_put(
            s, &(sl_ir_event){.type = SL_IR_EV_TEXT, .text = is_str(text) ? text->str : pj->str});
    else if (is_str(pj))
        sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_TOOL_ARGS, .text = pj->str});
}

static void a_parse_message_delta(sl_ir_stream *s, const sl_json *d)
{
    const sl_json *sr = sl_json_get(sl_json_get(d, "delta"), "stop_reason");
    sl_ir_finish f = is_str(sr) ? a_finish_in(sr->str) : SL_IR_FINISH_STOP;
    if (f == SL_IR_FINISH_TOOL_CALLS && s->in.format_seen && !s->in.tools)
        f = SL_IR_FINISH_STOP; /* it answered the response_format */
    if (is_str(sr))
        sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_FINISH, .finish = f});
    const sl_json *us = sl_json_get(d, "usage");
    if (!us)
        return;
    sl_ir_event ev = {.type = SL_IR_EV_USAGE, .have = SL_USAGE_OUTPUT};
    if (a_has_input(us)) /* the final counts: they win over message_start's */
        a_usage_of(us, &ev.usage), ev.have |= SL_USAGE_INPUT;
    ev.usage.output = sl_ir_count(us, "output_tokens");
    sl_ir_stream_put(s, &ev);
}

static void a_parse_event(sl_ir_stream *s, sl_str event, sl_str data, const sl_json *d)
{
    SL_UNUSED(data);
    if (!d)
        return;
    const sl_json *type = sl_json_get(d, "type");
    sl_str t = is_str(type) ? type->str : event;
    if (sl_str_eq_c(t, "message_start")) {
        a_parse_start(s, d);
    } else if (sl_str_eq_c(t, "content_block_start")) {
        const sl_json *b = sl_json_get(d, "content_block");
        bool tool = sl_str_eq_c(sl_ir_str(sl_json_get(b, "type")), "tool_use");
        sl_str name = sl_ir_str(sl_json_get(b, "name"));
        s->in.format = tool && sl_str_eq_c(name, FORMAT_TOOL);
        s->in.format_seen |= s->in.format;
        s->in.tools |= tool && !s->in.format;
        if (tool && !s->in.format)
            sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_TOOL_START,
                                               .id = sl_ir_str(sl_json_get(b, "id")),
                                               .name = name});
    } else if (sl_str_eq_c(t, "content_block_delta")) {
        a_parse_delta(s, d);
    } else if (sl_str_eq_c(t, "message_delta")) {
        a_parse_message_delta(s, d);
    } else if (sl_str_eq_c(t, "message_stop")) {
        sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_END});
    } else if (sl_str_eq_c(t, "error")) {
        sl_ir_event ev = {.type = SL_IR_EV_ERROR};
        a_parse_error(d, &ev.error);
        sl_ir_stream_put(s, &ev);
    }
}

static void a_event(sl_buf *o, const char *name, const char *json)
{
    sl_buf_printf(o, "event: %s\ndata: %s\n\n", name, json);
}

static void a_block_stop(sl_ir_stream *s)
{
    char j[96];
    snprintf(j, sizeof j, "{\"type\":\"content_block_stop\",\"index\":%d}", s->out.block++);
    a_event(s->sink, "content_block_stop", j);
}

/* message_start's input_tokens: the provider's count when its first event
 * carried one (an Anthropic provider, or an OpenAI-compatible one that sends
 * usage in every chunk), else sluice's estimate: an OpenAI provider counts in
 * its last chunk, after message_start must go out. The final message_delta
 * carries the real counts, which the Anthropic SDKs take over message_start's. */
static long a_start_input(const sl_ir_stream *s)
{
    const sl_ir_usage *u = &s->usage;
    if (u->input || u->cache_read || u->cache_write)
        return sl_dialect_prompt_tokens(&sl_dialect_anthropic, u);
    return s->input_estimate;
}

static void a_start(sl_ir_stream *s)
{
    if (s->out.started)
        return;
    s->out.started = true;
    sl_buf m;
    sl_buf_init(&m, 0);
    sl_buf_append_c(&m, "{\"type\":\"message_start\",\"message\":{\"id\":");
    sl_buf_json_cstr(&m, s->id);
    sl_buf_append_c(&m, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    sl_buf_json_cstr(&m, s->model);
    sl_buf_printf(&m,
                  ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{"
                  "\"input_tokens\":%ld,\"output_tokens\":0}}}",
                  a_start_input(s));
    a_event(s->sink, "message_start", m.p);
    sl_buf_free(&m);
}

static void a_close_text(sl_ir_stream *s)
{
    if (!s->out.text_open)
        return;
    s->out.text_open = false;
    a_block_stop(s);
}

/* The final message_delta carries the real counts, the prompt's included
 * (message_start may have gone out with an estimate: a_start_input). */
static void a_finish(sl_ir_stream *s)
{
    a_start(s);
    a_close_text(s);
    const sl_ir_usage *u = &s->usage;
    char j[512];
    snprintf(j, sizeof j,
             "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":null}"
             ",\"usage\":{\"input_tokens\":%ld,\"cache_creation_input_tokens\":%ld,"
             "\"cache_read_input_tokens\":%ld,\"output_tokens\":%ld}}",
             a_finish_out(s->finish), sl_dialect_prompt_tokens(&sl_dialect_anthropic, u),
             u->cache_write, u->cache_read, u->output);
    a_event(s->sink, "message_delta", j);
    a_event(s->sink, "message_stop", "{\"type\":\"message_stop\"}");
}

/* A content_block_delta of the open block; kind: the delta's type and field. */
static void a_delta(sl_ir_stream *s, const char *kind, sl_str text)
{
    sl_buf j;
    sl_buf_init(&j, 0);
    sl_buf_printf(&j, "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":{%s", s->out.block,
                  kind);
    sl_ir_put_str(&j, text, "\"\"");
    sl_buf_append_c(&j, "}}");
    a_event(s->sink, "content_block_delta", j.p);
    sl_buf_free(&j);
}

static void a_emit_text(sl_ir_stream *s, sl_str text)
{
    if (!s->out.text_open) {
        char j[128];
        snprintf(j, sizeof j,
                 "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":{"
                 "\"type\":\"text\",\"text\":\"\"}}",
                 s->out.block);
        a_event(s->sink, "content_block_start", j);
        s->out.text_open = true;
    }
    a_delta(s, "\"type\":\"text_delta\",\"text\":", text);
}

/* A new tool call closes the open block (text or the previous call). */
static void a_emit_tool_start(sl_ir_stream *s, const sl_ir_event *ev)
{
    a_close_text(s);
    if (s->out.tool_index >= 0)
        a_block_stop(s);
    s->out.tool_index++;
    sl_buf j;
    sl_buf_init(&j, 0);
    sl_buf_printf(&j,
                  "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":{"
                  "\"type\":\"tool_use\",\"id\":",
                  s->out.block);
    sl_ir_put_str(&j, ev->id, "\"\"");
    sl_buf_append_c(&j, ",\"name\":");
    sl_ir_put_str(&j, ev->name, "\"\"");
    sl_buf_append_c(&j, ",\"input\":{}}}");
    a_event(s->sink, "content_block_start", j.p);
    sl_buf_free(&j);
}

static void a_emit_event(sl_ir_stream *s, const sl_ir_event *ev)
{
    if (ev->type == SL_IR_EV_ERROR) {
        a_emit_error_event(&ev->error, s->sink);
        return;
    }
    if (ev->type != SL_IR_EV_END)
        a_start(s);
    switch (ev->type) {
    case SL_IR_EV_TEXT: a_emit_text(s, ev->text); break;
    case SL_IR_EV_TOOL_START: a_emit_tool_start(s, ev); break;
    case SL_IR_EV_TOOL_ARGS:
        a_delta(s, "\"type\":\"input_json_delta\",\"partial_json\":", ev->text);
        break;
    case SL_IR_EV_FINISH:
        if (s->out.tool_index >= 0 && !s->out.text_open) {
            a_block_stop(s);
            s->out.tool_index = -1;
        }
        break;
    case SL_IR_EV_END: a_finish(s); break;
    default: break;
    }
}

const sl_dialect sl_dialect_anthropic = {
    .name = "anthropic",
    .path = a_path,
    .headers = a_headers,
    .prompt_counts_cache = false,
    .parse_request = a_parse_request,
    .emit_request = a_emit_request,
    .parse_answer = a_parse_answer,
    .emit_answer = a_emit_answer,
    .usage = a_usage,
    .parse_error = a_parse_error,
    .emit_error = a_emit_error,
    .emit_error_event = a_emit_error_event,
    .watch_event = a_watch,
    .parse_event = a_parse_event,
    .emit_event = a_emit_event,
    .models_path = "/v1/models?limit=1000",
};
