/* responses_items.c — Responses API ids, stored records, previous_response_id
 * resolution and the replay of a stored response as events; see responses.h. */
#include <stdio.h>

#include "sluice/responses.h"

static bool is_arr(const sl_json *v)
{
    return v && v->type == SL_JSON_ARRAY;
}

void sl_responses_make_id(char *out, size_t cap, const char *provider)
{
    unsigned char rnd[16];
    sl_random_bytes(rnd, sizeof rnd);
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    n += (size_t)snprintf(out, cap, "resp_");
    for (size_t i = 0; i < sizeof rnd && n + 2 < cap; i++) {
        out[n++] = hex[rnd[i] >> 4];
        out[n++] = hex[rnd[i] & 15];
    }
    if (n + 1 < cap)
        out[n++] = '_';
    for (size_t i = 0; provider && provider[i] && i < 32 && n + 1 < cap; i++) {
        char c = provider[i];
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
        out[n++] = keep ? c : '-';
    }
    out[n < cap ? n : cap - 1] = '\0';
}

/* ---- items ------------------------------------------------------------------------- */

/* One input item as stored: a string input becomes a user message item; an
 * item is copied as it came, with an id in front when with_id and it has none. */
static void put_item(sl_buf *o, const sl_json *it, bool with_id, int index, sl_str rid)
{
    if (!with_id || sl_json_get(it, "id")) {
        sl_buf_append_str(o, it->raw);
        return;
    }
    sl_buf_append_c(o, "{\"id\":\"");
    sl_str tail = rid.len > 5 ? (sl_str){rid.p + 5, rid.len - 5} : rid;
    sl_buf_append_c(o, "in_");
    sl_buf_append(o, tail.p, SL_MIN(tail.len, 100));
    sl_buf_printf(o, "_%d\"", index);
    if (!sl_json_get(it, "type") && sl_json_get(it, "role"))
        sl_buf_append_c(o, ",\"type\":\"message\"");
    for (const sl_json *m = it->child; m; m = m->next) {
        sl_buf_append_c(o, ",");
        sl_buf_json_str(o, m->key.p, m->key.len);
        sl_buf_append_c(o, ":");
        sl_buf_append_str(o, m->raw);
    }
    sl_buf_append_c(o, "}");
}

/* The input's items, comma-separated (a leading comma when *first is false). */
static void put_input(sl_buf *o, const sl_json *in, bool with_id, sl_str rid, bool *first)
{
    if (in && in->type == SL_JSON_STRING) {
        sl_buf_append_c(o, *first ? "" : ",");
        if (with_id) {
            sl_buf_append_c(o, "{\"id\":\"in_");
            sl_buf_append(o, rid.p + SL_MIN(rid.len, 5), rid.len - SL_MIN(rid.len, 5));
            sl_buf_append_c(o, "_0\",");
        } else {
            sl_buf_append_c(o, "{");
        }
        sl_buf_append_c(o, "\"type\":\"message\",\"role\":\"user\",\"content\":[{\"type\":"
                           "\"input_text\",\"text\":");
        sl_buf_append_str(o, in->raw);
        sl_buf_append_c(o, "}]}");
        *first = false;
        return;
    }
    int i = 0;
    for (const sl_json *it = is_arr(in) ? in->child : NULL; it; it = it->next, i++) {
        if (it->type != SL_JSON_OBJECT)
            continue;
        sl_buf_append_c(o, *first ? "" : ",");
        put_item(o, it, with_id, i, rid);
        *first = false;
    }
}

static void put_items(sl_buf *o, const sl_json *arr, bool *first)
{
    for (const sl_json *it = is_arr(arr) ? arr->child : NULL; it; it = it->next) {
        sl_buf_append_c(o, *first ? "" : ",");
        sl_buf_append_str(o, it->raw);
        *first = false;
    }
}

int sl_responses_record(sl_buf *out, const char *provider, const sl_json *request,
                        const sl_json *response, const sl_json *history)
{
    if (!response || response->type != SL_JSON_OBJECT)
        return SL_EINVAL;
    sl_str rid = sl_ir_str(sl_json_get(response, "id"));
    const sl_json *in = sl_json_get(request, "input");
    sl_buf_append_c(out, "{\"provider\":");
    sl_buf_json_cstr(out, provider ? provider : "");
    sl_buf_append_c(out, ",\"response\":");
    sl_buf_append_str(out, response->raw);
    sl_buf_append_c(out, ",\"input\":[");
    bool first = true;
    put_input(out, in, true, rid, &first);
    sl_buf_append_c(out, "],\"conversation\":[");
    first = true;
    put_items(out, history, &first);
    put_input(out, in, false, rid, &first);
    put_items(out, sl_json_get(response, "output"), &first);
    return sl_buf_append_c(out, "]}");
}

int sl_responses_resolve(sl_buf *out, const sl_json *request, const sl_json *history)
{
    if (!request || request->type != SL_JSON_OBJECT)
        return SL_EINVAL;
    sl_buf_append_c(out, "{\"input\":[");
    bool first = true;
    put_items(out, history, &first);
    put_input(out, sl_json_get(request, "input"), false, SL_STR(""), &first);
    sl_buf_append_c(out, "]");
    for (const sl_json *m = request->child; m; m = m->next) {
        if (sl_str_eq_c(m->key, "input") || sl_str_eq_c(m->key, "previous_response_id"))
            continue;
        sl_buf_append_c(out, ",");
        sl_buf_json_str(out, m->key.p, m->key.len);
        sl_buf_append_c(out, ":");
        sl_buf_append_str(out, m->raw);
    }
    return sl_buf_append_c(out, "}");
}

void sl_responses_input_list(sl_buf *out, const sl_json *record, bool asc, long limit)
{
    const sl_json *in = sl_json_get(record, "input");
    size_t n = is_arr(in) ? in->n : 0, shown = 0;
    sl_buf_append_c(out, "{\"object\":\"list\",\"data\":[");
    sl_str first_id = SL_STR_NULL, last_id = SL_STR_NULL;
    for (size_t k = 0; k < n && (long)shown < limit; k++) {
        /* newest first unless asc: walk the array from its end */
        size_t want = asc ? k : n - 1 - k, i = 0;
        const sl_json *it = in->child;
        while (it && i < want)
            it = it->next, i++;
        if (!it)
            break;
        sl_buf_append_c(out, shown ? "," : "");
        sl_buf_append_str(out, it->raw);
        sl_str id = sl_ir_str(sl_json_get(it, "id"));
        if (!shown)
            first_id = id;
        last_id = id;
        shown++;
    }
    sl_buf_append_c(out, "],\"first_id\":");
    sl_ir_put_str(out, first_id, "null");
    sl_buf_append_c(out, ",\"last_id\":");
    sl_ir_put_str(out, last_id, "null");
    sl_buf_printf(out, ",\"has_more\":%s}", shown < n ? "true" : "false");
}

/* ---- replay ------------------------------------------------------------------------- */

typedef struct replay {
    sl_buf *o;
    long seq;
} replay;

static void ev_open(replay *rp, const char *type)
{
    sl_buf_printf(rp->o, "event: %s\ndata: {\"type\":\"%s\"", type, type);
}

static void ev_close(replay *rp)
{
    sl_buf_printf(rp->o, ",\"sequence_number\":%ld}\n\n", rp->seq++);
}

/* The object with some members replaced: `with` holds (key, raw JSON) pairs. */
static void put_with(sl_buf *o, const sl_json *obj, const char *const *with, size_t n_with)
{
    sl_buf_append_c(o, "{");
    bool first = true;
    for (const sl_json *m = obj->child; m; m = m->next) {
        const char *raw = NULL;
        for (size_t i = 0; i + 1 < n_with; i += 2) {
            if (sl_str_eq_c(m->key, with[i]))
                raw = with[i + 1];
        }
        sl_buf_append_c(o, first ? "" : ",");
        sl_buf_json_str(o, m->key.p, m->key.len);
        sl_buf_append_c(o, ":");
        if (raw)
            sl_buf_append_c(o, raw);
        else
            sl_buf_append_str(o, m->raw);
        first = false;
    }
    sl_buf_append_c(o, "}");
}

static void ev_at(replay *rp, const sl_json *item, int index, int part)
{
    sl_buf_append_c(rp->o, ",\"item_id\":");
    sl_ir_put_str(rp->o, sl_ir_str(sl_json_get(item, "id")), "\"\"");
    sl_buf_printf(rp->o, ",\"output_index\":%d", index);
    if (part >= 0)
        sl_buf_printf(rp->o, ",\"content_index\":%d", part);
}

/* One event of a content part whose payload is one member, raw JSON. */
static void ev_member(replay *rp, const char *type, const sl_json *item, int index, int part,
                      const char *key, sl_str raw, bool logprobs)
{
    ev_open(rp, type);
    ev_at(rp, item, index, part);
    sl_buf_printf(rp->o, ",\"%s\":", key);
    sl_buf_append_str(rp->o, raw);
    if (logprobs)
        sl_buf_append_c(rp->o, ",\"logprobs\":[]");
    ev_close(rp);
}

static void replay_text(replay *rp, const sl_json *item, int index, int part, const sl_json *c)
{
    static const char *const empty_text[] = {"text", "\"\""};
    const sl_json *text = sl_json_get(c, "text");
    ev_open(rp, "response.content_part.added");
    ev_at(rp, item, index, part);
    sl_buf_append_c(rp->o, ",\"part\":");
    put_with(rp->o, c, empty_text, 2);
    ev_close(rp);
    if (text && text->type == SL_JSON_STRING) {
        ev_member(rp, "response.output_text.delta", item, index, part, "delta", text->raw, true);
        ev_member(rp, "response.output_text.done", item, index, part, "text", text->raw, true);
    }
    ev_member(rp, "response.content_part.done", item, index, part, "part", c->raw, false);
}

static void replay_item(replay *rp, const sl_json *item, int index)
{
    static const char *const open_msg[] = {"status", "\"in_progress\"", "content", "[]"};
    static const char *const open_call[] = {"status", "\"in_progress\"", "arguments", "\"\""};
    sl_str type = sl_ir_str(sl_json_get(item, "type"));
    bool msg = sl_str_eq_c(type, "message"), call = sl_str_eq_c(type, "function_call");
    ev_open(rp, "response.output_item.added");
    sl_buf_printf(rp->o, ",\"output_index\":%d,\"item\":", index);
    if (msg || call)
        put_with(rp->o, item, msg ? open_msg : open_call, 4);
    else
        sl_buf_append_str(rp->o, item->raw);
    ev_close(rp);
    const sl_json *content = sl_json_get(item, "content");
    int part = 0;
    for (const sl_json *c = msg && is_arr(content) ? content->child : NULL; c; c = c->next)
        replay_text(rp, item, index, part++, c);
    const sl_json *args = sl_json_get(item, "arguments");
    if (call && args && args->type == SL_JSON_STRING) {
        ev_open(rp, "response.function_call_arguments.delta");
        ev_at(rp, item, index, -1);
        sl_buf_append_c(rp->o, ",\"delta\":");
        sl_buf_append_str(rp->o, args->raw);
        ev_close(rp);
        ev_open(rp, "response.function_call_arguments.done");
        ev_at(rp, item, index, -1);
        sl_buf_append_c(rp->o, ",\"arguments\":");
        sl_buf_append_str(rp->o, args->raw);
        ev_close(rp);
    }
    ev_open(rp, "response.output_item.done");
    sl_buf_printf(rp->o, ",\"output_index\":%d,\"item\":", index);
    sl_buf_append_str(rp->o, item->raw);
    ev_close(rp);
}

int sl_responses_replay(const char *json, size_t len, sl_buf *out)
{
    static const char *const opening[] = {"status", "\"in_progress\"", "output",
                                          "[]",     "usage",           "null"};
    char first[8192];
    sl_arena a;
    sl_arena_init(&a, first, sizeof first, 64u << 20);
    sl_json *root = NULL;
    sl_json_error err;
    if (sl_json_parse(&a, json, len, NULL, &root, &err) != SL_OK || root->type != SL_JSON_OBJECT ||
        !sl_str_eq_c(sl_ir_str(sl_json_get(root, "object")), "response")) {
        sl_arena_free(&a);
        return SL_EINVAL;
    }
    replay rp = {.o = out};
    const char *opens[] = {"response.created", "response.in_progress"};
    for (size_t i = 0; i < 2; i++) {
        ev_open(&rp, opens[i]);
        sl_buf_append_c(out, ",\"response\":");
        put_with(out, root, opening, SL_ARRAY_LEN(opening));
        ev_close(&rp);
    }
    const sl_json *output = sl_json_get(root, "output");
    int index = 0;
    for (const sl_json *it = is_arr(output) ? output->child : NULL; it; it = it->next)
        replay_item(&rp, it, index++);
    bool incomplete = sl_str_eq_c(sl_ir_str(sl_json_get(root, "status")), "incomplete");
    ev_open(&rp, incomplete ? "response.incomplete" : "response.completed");
    sl_buf_append_c(out, ",\"response\":");
    sl_buf_append_str(out, root->raw);
    ev_close(&rp);
    sl_arena_free(&a);
    return SL_OK;
}
