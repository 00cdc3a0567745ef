/* anthropic.c — the Anthropic Messages dialect.
 *
 * Reads and writes /v1/messages requests, message answers, the message
 * stream's events and error objects through the IR (dialect.h). Anthropic
 * wants user/assistant alternation, so consecutive same-role turns merge;
 * what Messages cannot say (n > 1, logprobs, penalties, JSON mode) is refused
 * with the parameter at fault. */
#include <curl/curl.h>
#include <stdio.h>

#include "sluice/dialects.h"

#define is_str            sl_ir_is_str
#define is_num            sl_ir_is_num
#define ANTHROPIC_VERSION "2023-06-01"

/* ---- path and headers ---------------------------------------------------------------- */

static const char *a_path(sl_api api)
{
    return api == SL_API_CHAT || api == SL_API_MESSAGES || api == SL_API_RESPONSES ? "/v1/messages"
                                                                                   : NULL;
}

static struct curl_slist *a_headers(struct curl_slist *h, const char *api_key)
{
    if (api_key && api_key[0]) {
        char line[1024];
        snprintf(line, sizeof line, "x-api-key: %s", api_key);
        h = curl_slist_append(h, line);
    }
    return curl_slist_append(h, "anthropic-version: " ANTHROPIC_VERSION);
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
        tool->function = true; /* client tools; server tools pass as functions, as before */
        tool->type = SL_STR("function");
        tool->name = sl_ir_str(sl_json_get(t, "name"));
        tool->description = sl_ir_str(sl_json_get(t, "description"));
        tool->parameters = sl_json_get(t, "input_schema");
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
}

static void a_params(const sl_json *msg, sl_ir_req *ir)
{
    ir->max_tokens = sl_ir_num_of(msg, "max_tokens");
    ir->temperature = sl_ir_num_of(msg, "temperature");
    ir->top_p = sl_ir_num_of(msg, "top_p");
    const sl_json *st = sl_json_get(msg, "stream");
    ir->stream = st && st->type == SL_JSON_TRUE;
    a_tool_choice(sl_json_get(msg, "tool_choice"), ir);
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
    if (ir->format.type != SL_IR_FORMAT_UNSET && ir->format.type != SL_IR_FORMAT_TEXT)
        return sl_ir_refuse(e, "response_format is not supported by anthropic providers",
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
            cv.first_block = false;
        }
    }
    sl_buf_append_c(o, cv.open ? "]}]" : "]");
    return SL_OK;
}

static void a_put_tools(sl_buf *o, const sl_ir_req *ir)
{
    if (ir->tools) {
        sl_buf_append_c(o, ",\"tools\":[");
        for (const sl_ir_tool *t = ir->tools; t; t = t->next) {
            sl_buf_append_c(o, t == ir->tools ? "{\"name\":" : ",{\"name\":");
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
        }
        sl_buf_append_c(o, "]");
    }
    static const char *const names[] = {
        [SL_IR_CHOICE_AUTO] = "auto", [SL_IR_CHOICE_ANY] = "any", [SL_IR_CHOICE_NONE] = "none"};
    if (ir->tool_choice == SL_IR_CHOICE_TOOL) {
        sl_buf_append_c(o, ",\"tool_choice\":{\"type\":\"tool\",\"name\":");
        sl_ir_put_str(o, ir->tool_choice_name, "\"\"");
        sl_buf_append_c(o, "}");
    } else if (ir->tool_choice != SL_IR_CHOICE_UNSET) {
        sl_buf_printf(o, ",\"tool_choice\":{\"type\":\"%s\"}", names[ir->tool_choice]);
    }
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
    if (system) {
        sl_buf_append_c(o, ",\"system\":");
        sl_ir_put_joined(o, ir->system, "\n\n");
    }
    a_put_tools(o, ir);
    a_put_params(o, ir);
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

/* Anthropic's input_tokens excludes the cache's tokens: the IR counts them in. */
static void a_usage_of(const sl_json *us, sl_ir_usage *u)
{
    u->cache_read = sl_ir_count(us, "cache_read_input_tokens");
    u->cache_write = sl_ir_count(us, "cache_creation_input_tokens");
    u->input = sl_ir_count(us, "input_tokens") + u->cache_read + u->cache_write;
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
    for (const sl_json *b = content && content->type == SL_JSON_ARRAY ? content->child : NULL; b;
         b = b->next) {
        sl_str t = sl_ir_str(sl_json_get(b, "type"));
        if (!sl_str_eq_c(t, "text") && !sl_str_eq_c(t, "tool_use"))
            continue; /* thinking blocks have no chat.completion form yet */
        if (a_block(b, a, &tail))
            return SL_ENOMEM;
    }
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

static void a_emit_error(const sl_ir_error *e, sl_buf *o)
{
    sl_buf_append_c(o, "{\"type\":\"error\",\"error\":{\"type\":");
    sl_ir_put_str(o, e->type, "\"api_error\"");
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
    char first[4096];
    sl_arena scratch;
    sl_arena_init(&scratch, first, sizeof first, 1 << 20);
    sl_json *root = NULL;
    sl_json_error err;
    if (sl_json_parse(&scratch, data.p, data.len, NULL, &root, &err) == SL_OK) {
        const sl_json *m = sl_json_get(root, "message");
        const sl_json *us = sl_json_get(m ? m : root, "usage");
        const sl_json *in = sl_json_get(us, "input_tokens"),
                      *out = sl_json_get(us, "output_tokens");
        if (is_num(in) && in->num > 0)
            a_usage_of(us, u), *have |= SL_USAGE_INPUT;
        if (is_num(out) && !m)
            u->output = sl_ir_count(us, "output_tokens"), *have |= SL_USAGE_OUTPUT;
    }
    sl_arena_free(&scratch);
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
    if (is_str(text))
        sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_TEXT, .text = text->str});
    else if (is_str(pj))
        sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_TOOL_ARGS, .text = pj->str});
}

static void a_parse_message_delta(sl_ir_stream *s, const sl_json *d)
{
    const sl_json *sr = sl_json_get(sl_json_get(d, "delta"), "stop_reason");
    if (is_str(sr))
        sl_ir_stream_put(s,
                         &(sl_ir_event){.type = SL_IR_EV_FINISH, .finish = a_finish_in(sr->str)});
    const sl_json *us = sl_json_get(d, "usage");
    if (us)
        sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_USAGE,
                                           .usage.output = sl_ir_count(us, "output_tokens"),
                                           .have = SL_USAGE_OUTPUT});
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
        if (sl_str_eq_c(sl_ir_str(sl_json_get(b, "type")), "tool_use"))
            sl_ir_stream_put(s, &(sl_ir_event){.type = SL_IR_EV_TOOL_START,
                                               .id = sl_ir_str(sl_json_get(b, "id")),
                                               .name = sl_ir_str(sl_json_get(b, "name"))});
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
                  sl_dialect_prompt_tokens(&sl_dialect_anthropic, &s->usage));
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

static void a_finish(sl_ir_stream *s)
{
    a_start(s);
    a_close_text(s);
    char j[256];
    snprintf(j, sizeof j,
             "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":null}"
             ",\"usage\":{\"output_tokens\":%ld}}",
             a_finish_out(s->finish), s->usage.output);
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
};
