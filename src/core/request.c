/* request.c — what a valid LLM request looks like, field by field. */
#include "sluice/request.h"

#include <math.h>
#include <stdio.h>

enum { MAX_STOP = 4, MAX_N = 128 };

static int bad(sl_arena *a, sl_http_error *e, const char *code, const char *param, const char *fmt,
               const char *what)
{
    e->status = 400;
    e->type = "invalid_request_error";
    e->code = code;
    e->param = param;
    e->message = sl_arena_printf(a, fmt, param ? param : "", what ? what : "");
    if (!e->message)
        e->message = "invalid request";
    return SL_EINVAL;
}

#define WRONG_TYPE(what)                                                                           \
    bad(a, e, "invalid_type", name, "Invalid type for '%s': expected %s.", what)
#define BAD_VALUE(what) bad(a, e, "invalid_value", name, "Invalid value for '%s': %s.", what)

static bool is_int(const sl_json *v)
{
    if (v->type != SL_JSON_NUMBER)
        return false;
    for (size_t i = 0; i < v->raw.len; i++) {
        char c = v->raw.p[i];
        if (c == '.' || c == 'e' || c == 'E')
            return false;
    }
    return true;
}

/* Optional scalar checks; name is the parameter. */
static int check_number(sl_arena *a, sl_http_error *e, const sl_json *root, const char *name,
                        double lo, double hi)
{
    const sl_json *v = sl_json_get(root, name);
    if (!v || v->type == SL_JSON_NULL)
        return SL_OK;
    if (v->type != SL_JSON_NUMBER)
        return WRONG_TYPE("a number");
    if (!(v->num >= lo && v->num <= hi))
        return BAD_VALUE("out of range");
    return SL_OK;
}

static int check_int(sl_arena *a, sl_http_error *e, const sl_json *root, const char *name,
                     double lo, double hi, long *out)
{
    const sl_json *v = sl_json_get(root, name);
    if (!v || v->type == SL_JSON_NULL)
        return SL_OK;
    if (!is_int(v))
        return WRONG_TYPE("an integer");
    if (!(v->num >= lo && v->num <= hi))
        return BAD_VALUE("out of range");
    if (out)
        *out = (long)sl_json_int(v, lo, hi, 0);
    return SL_OK;
}

static int check_type(sl_arena *a, sl_http_error *e, const sl_json *root, const char *name,
                      sl_json_type t, const char *what)
{
    const sl_json *v = sl_json_get(root, name);
    if (!v || v->type == SL_JSON_NULL)
        return SL_OK;
    bool ok =
        t == SL_JSON_TRUE ? (v->type == SL_JSON_TRUE || v->type == SL_JSON_FALSE) : v->type == t;
    return ok ? SL_OK : WRONG_TYPE(what);
}

static int check_stop(sl_arena *a, sl_http_error *e, const sl_json *root)
{
    const char *name = "stop";
    const sl_json *v = sl_json_get(root, name);
    if (!v || v->type == SL_JSON_NULL || v->type == SL_JSON_STRING)
        return SL_OK;
    if (v->type != SL_JSON_ARRAY)
        return WRONG_TYPE("a string or an array of strings");
    if (v->n > MAX_STOP)
        return BAD_VALUE("at most 4 stop sequences");
    for (const sl_json *s = v->child; s; s = s->next) {
        if (s->type != SL_JSON_STRING)
            return WRONG_TYPE("a string or an array of strings");
    }
    return SL_OK;
}

/* Text bytes of a content value (string or array of parts). */
static size_t content_bytes(const sl_json *c)
{
    if (c->type == SL_JSON_STRING)
        return c->str.len;
    size_t n = 0;
    for (const sl_json *part = c->type == SL_JSON_ARRAY ? c->child : NULL; part;
         part = part->next) {
        const sl_json *t = sl_json_get(part, "text");
        if (t && t->type == SL_JSON_STRING)
            n += t->str.len;
        else if (part->type == SL_JSON_STRING)
            n += part->str.len;
    }
    return n;
}

static bool known_role(sl_str r)
{
    static const char *const roles[] = {"system", "user",     "assistant",
                                        "tool",   "function", "developer"};
    for (size_t i = 0; i < SL_ARRAY_LEN(roles); i++) {
        if (sl_str_eq_c(r, roles[i]))
            return true;
    }
    return false;
}

static int check_messages(sl_arena *a, sl_http_error *e, const sl_json *root, bool anthropic,
                          sl_llm_req *out)
{
    const char *name = "messages";
    const sl_json *msgs = sl_json_get(root, name);
    if (!msgs)
        return bad(a, e, "missing_field", name, "Missing required parameter: '%s'.%s", NULL);
    if (msgs->type != SL_JSON_ARRAY)
        return WRONG_TYPE("an array");
    if (msgs->n == 0)
        return BAD_VALUE("empty array; expected at least one message");
    size_t i = 0;
    /* The parameter's name ("messages[3].role") is only spelled out for an error. */
#define AT(suffix) (name = sl_arena_printf(a, "messages[%zu]" suffix, i))
    for (const sl_json *m = msgs->child; m; m = m->next, i++) {
        if (m->type != SL_JSON_OBJECT)
            return AT(""), WRONG_TYPE("an object");
        const sl_json *role = sl_json_get(m, "role");
        if (!role)
            return AT(".role"),
                   bad(a, e, "missing_field", name, "Missing required parameter: '%s'.%s", NULL);
        if (role->type != SL_JSON_STRING)
            return AT(".role"), WRONG_TYPE("a string");
        if (!anthropic ? !known_role(role->str)
                       : !(sl_str_eq_c(role->str, "user") || sl_str_eq_c(role->str, "assistant")))
            return AT(".role"), BAD_VALUE("unknown role");
        const sl_json *content = sl_json_get(m, "content");
        bool tools = sl_json_get(m, "tool_calls") || sl_json_get(m, "function_call");
        if (!content) {
            if (tools)
                continue;
            return AT(".content"),
                   bad(a, e, "missing_field", name, "Missing required parameter: '%s'.%s", NULL);
        }
        if (content->type == SL_JSON_NULL && tools)
            continue;
        if (content->type != SL_JSON_STRING && content->type != SL_JSON_ARRAY)
            return AT(".content"), WRONG_TYPE("a string or an array of content parts");
        out->prompt_bytes += content_bytes(content);
    }
#undef AT
    return SL_OK;
}

static int check_prompt(sl_arena *a, sl_http_error *e, const sl_json *root, const char *name,
                        sl_llm_req *out)
{
    const sl_json *v = sl_json_get(root, name);
    if (!v)
        return bad(a, e, "missing_field", name, "Missing required parameter: '%s'.%s", NULL);
    if (v->type == SL_JSON_STRING) {
        out->prompt_bytes = v->str.len;
        return SL_OK;
    }
    if (v->type != SL_JSON_ARRAY)
        return WRONG_TYPE("a string or an array");
    if (v->n == 0)
        return BAD_VALUE("empty array");
    for (const sl_json *x = v->child; x; x = x->next) {
        if (x->type == SL_JSON_STRING)
            out->prompt_bytes += x->str.len;
        else if (x->type == SL_JSON_NUMBER || x->type == SL_JSON_ARRAY)
            out->prompt_bytes += x->type == SL_JSON_ARRAY ? x->n * 4 : 4;
        else
            return WRONG_TYPE("strings or token arrays");
    }
    return SL_OK;
}

/* Text bytes of a Responses `input`: a string, or items (messages with string
 * or part content, function_call_output items with their output). */
static size_t input_bytes(const sl_json *in)
{
    if (in->type == SL_JSON_STRING)
        return in->str.len;
    size_t n = 0;
    for (const sl_json *it = in->child; it; it = it->next) {
        const sl_json *c = sl_json_get(it, "content"), *o = sl_json_get(it, "output");
        if (c && (c->type == SL_JSON_STRING || c->type == SL_JSON_ARRAY))
            n += content_bytes(c);
        if (o && o->type == SL_JSON_STRING)
            n += o->str.len;
        const sl_json *args = sl_json_get(it, "arguments");
        if (args && args->type == SL_JSON_STRING)
            n += args->str.len;
    }
    return n;
}

static int check_responses(sl_arena *a, sl_http_error *e, const sl_json *root, sl_llm_req *out)
{
    int rc = check_int(a, e, root, "max_output_tokens", 1, 1e9, &out->max_tokens);
    rc = rc ? rc : check_type(a, e, root, "instructions", SL_JSON_STRING, "a string");
    rc = rc ? rc : check_type(a, e, root, "previous_response_id", SL_JSON_STRING, "a string");
    rc = rc ? rc : check_type(a, e, root, "store", SL_JSON_TRUE, "a boolean");
    rc = rc ? rc : check_type(a, e, root, "metadata", SL_JSON_OBJECT, "an object");
    rc = rc ? rc : check_type(a, e, root, "text", SL_JSON_OBJECT, "an object");
    if (rc)
        return rc;
    const char *name = "input";
    const sl_json *in = sl_json_get(root, name);
    if (!in)
        return bad(a, e, "missing_field", name, "Missing required parameter: '%s'.%s", NULL);
    if (in->type != SL_JSON_STRING && in->type != SL_JSON_ARRAY)
        return WRONG_TYPE("a string or an array of input items");
    for (const sl_json *it = in->type == SL_JSON_ARRAY ? in->child : NULL; it; it = it->next) {
        if (it->type != SL_JSON_OBJECT)
            return WRONG_TYPE("a string or an array of input items");
    }
    out->prompt_bytes = input_bytes(in);
    const sl_json *ins = sl_json_get(root, "instructions");
    if (ins && ins->type == SL_JSON_STRING)
        out->prompt_bytes += ins->str.len;
    const sl_json *prev = sl_json_get(root, "previous_response_id");
    if (prev && prev->type == SL_JSON_STRING) {
        name = "previous_response_id";
        if (prev->str.len == 0 || prev->str.len > 200)
            return BAD_VALUE("an id of 1 to 200 characters");
        out->previous_response_id = prev->str;
    }
    const sl_json *store = sl_json_get(root, "store");
    out->no_store = store && store->type == SL_JSON_FALSE;
    return SL_OK;
}

static int check_common(sl_arena *a, sl_http_error *e, const sl_json *root, sl_llm_req *out)
{
    int rc = check_type(a, e, root, "stream", SL_JSON_TRUE, "a boolean");
    rc = rc ? rc : check_number(a, e, root, "temperature", 0, 2);
    rc = rc ? rc : check_number(a, e, root, "top_p", 0, 1);
    rc = rc ? rc : check_int(a, e, root, "max_tokens", 1, 1e9, &out->max_tokens);
    rc = rc ? rc : check_int(a, e, root, "max_completion_tokens", 1, 1e9, &out->max_tokens);
    rc = rc ? rc : check_int(a, e, root, "n", 1, MAX_N, NULL);
    rc = rc ? rc : check_int(a, e, root, "seed", -1e300, 1e300, NULL);
    rc = rc ? rc : check_number(a, e, root, "presence_penalty", -2, 2);
    rc = rc ? rc : check_number(a, e, root, "frequency_penalty", -2, 2);
    rc = rc ? rc : check_type(a, e, root, "logit_bias", SL_JSON_OBJECT, "an object");
    rc = rc ? rc : check_type(a, e, root, "tools", SL_JSON_ARRAY, "an array");
    rc = rc ? rc : check_type(a, e, root, "response_format", SL_JSON_OBJECT, "an object");
    rc = rc ? rc : check_type(a, e, root, "user", SL_JSON_STRING, "a string");
    rc = rc ? rc : check_type(a, e, root, "stream_options", SL_JSON_OBJECT, "an object");
    rc = rc ? rc : check_stop(a, e, root);
    if (rc)
        return rc;
    const sl_json *so = sl_json_get(root, "stream_options");
    const sl_json *iu = so ? sl_json_get(so, "include_usage") : NULL;
    if (iu && iu->type != SL_JSON_TRUE && iu->type != SL_JSON_FALSE && iu->type != SL_JSON_NULL) {
        const char *name = "stream_options.include_usage";
        return WRONG_TYPE("a boolean");
    }
    const sl_json *st = sl_json_get(root, "stream");
    out->stream = st && st->type == SL_JSON_TRUE;
    out->include_usage = iu && iu->type == SL_JSON_TRUE;
    return SL_OK;
}

/* A body over a configured bound: the message names the key to raise. */
static int json_refused(sl_arena *a, sl_http_error *e, const sl_json_limits *lim,
                        const sl_json_error *jerr)
{
    e->status = 400;
    e->type = "invalid_request_error";
    e->param = NULL;
    if (jerr->limit == SL_JSON_LIMIT_MEMBERS) {
        e->code = "too_many_json_members";
        e->message = sl_arena_printf(a,
                                     "The JSON body of your request has an object with more than "
                                     "%zu members (server.max_json_members), at byte %zu.",
                                     lim->max_members, jerr->offset);
    } else if (jerr->limit == SL_JSON_LIMIT_VALUES) {
        e->code = "too_many_json_values";
        e->message = sl_arena_printf(a,
                                     "The JSON body of your request has more than %zu values "
                                     "(server.max_json_values), at byte %zu.",
                                     lim->max_nodes, jerr->offset);
    } else {
        e->code = "invalid_json";
        e->message =
            sl_arena_printf(a, "We could not parse the JSON body of your request: %s at byte %zu.",
                            jerr->reason ? jerr->reason : "invalid JSON", jerr->offset);
    }
    if (!e->message)
        e->message = "invalid JSON body";
    return SL_EINVAL;
}

int sl_llm_req_parse(sl_arena *a, sl_api api, const char *body, size_t len,
                     const sl_json_limits *lim, sl_llm_req *out, sl_http_error *e)
{
    memset(out, 0, sizeof(*out));
    out->api = api;
    out->max_tokens = -1;
    sl_json *root = NULL;
    sl_json_error jerr = {0};
    if (sl_json_parse(a, body, len, lim, &root, &jerr) != SL_OK)
        return json_refused(a, e, lim, &jerr);
    if (root->type != SL_JSON_OBJECT) {
        const char *name = NULL;
        return bad(a, e, "invalid_json", name, "%sThe request body must be a JSON object.%s", NULL);
    }
    out->root = root;
    const char *name = "model";
    const sl_json *model = sl_json_get(root, name);
    if (!model)
        return bad(a, e, "missing_field", name, "Missing required parameter: '%s'.%s", NULL);
    if (model->type != SL_JSON_STRING)
        return WRONG_TYPE("a string");
    if (model->str.len == 0 || model->str.len > 256 || memchr(model->str.p, 0, model->str.len))
        return BAD_VALUE("a model name of 1 to 256 characters");
    out->model = model->str;
    int rc = check_common(a, e, root, out);
    if (rc)
        return rc;
    switch (api) {
    case SL_API_CHAT: return check_messages(a, e, root, false, out);
    case SL_API_COMPLETIONS: return check_prompt(a, e, root, "prompt", out);
    case SL_API_EMBEDDINGS: return check_prompt(a, e, root, "input", out);
    case SL_API_MESSAGES:
        name = "max_tokens";
        if (!sl_json_get(root, name))
            return bad(a, e, "missing_field", name, "Missing required parameter: '%s'.%s", NULL);
        return check_messages(a, e, root, true, out);
    case SL_API_RESPONSES: return check_responses(a, e, root, out);
    }
    return SL_OK;
}
