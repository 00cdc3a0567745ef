/* resp_routes.c — reading and deleting stored responses; see resp_routes.h. */
#include "sluice/resp_routes.h"

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "sluice/dialects.h"
#include "sluice/pipeline.h"
#include "sluice/resp_state.h"
#include "sluice/responses.h"
#include "sluice/upstream.h"

#define PREFIX "/v1/responses/"

typedef enum { GET_ONE, GET_INPUT, DELETE_ONE } op;

static void not_found(sl_req *r, sl_str id)
{
    sl_req_error(r, 404, "invalid_request_error", "response_not_found", "response_id",
                 sl_arena_printf(&r->arena, "No response found with id '%.*s'.",
                                 (int)SL_MIN(id.len, 200), id.p));
    sl_req_finish(r);
}

/* The value of query parameter name ("" when absent), into out. */
static void query_param(const char *q, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *p = q; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t n = strcspn(p + nl + 1, "&");
            n = SL_MIN(n, cap - 1);
            memcpy(out, p + nl + 1, n);
            out[n] = '\0';
            return;
        }
    }
}

static void answer_input(sl_req *r, const sl_json *rec)
{
    char order[8], limit[16];
    query_param(r->query, "order", order, sizeof order);
    query_param(r->query, "limit", limit, sizeof limit);
    long n = limit[0] ? strtol(limit, NULL, 10) : 20;
    sl_responses_input_list(&r->body_out, rec, strcmp(order, "asc") == 0,
                            n < 1     ? 1
                            : n > 100 ? 100
                                      : n);
}

static void on_record(void *ud, int status, const char *data, size_t len)
{
    sl_req *r = ud;
    op what = strstr(r->path + strlen(PREFIX), "/input_items") ? GET_INPUT : GET_ONE;
    sl_str id = sl_str_c(r->path + strlen(PREFIX));
    id.len = strcspn(id.p, "/");
    char *copy = status == SL_OK ? sl_arena_strndup(&r->arena, data, len) : NULL;
    sl_json *rec = NULL;
    sl_json_error err;
    if (status == SL_EIO) {
        sl_req_error(r, 503, "api_error", "state_unavailable", NULL,
                     "the response store cannot be reached; retry the request");
        sl_req_finish(r);
    } else if (!copy || sl_json_parse(&r->arena, copy, len, NULL, &rec, &err) != SL_OK ||
               !sl_json_get(rec, "response")) {
        not_found(r, id);
    } else {
        r->status = 200;
        if (what == GET_INPUT)
            answer_input(r, rec);
        else
            sl_buf_append_str(&r->body_out, sl_json_get(rec, "response")->raw);
        sl_req_finish(r);
    }
    sl_req_release(r);
}

static void on_deleted(void *ud, int status, const char *data, size_t len)
{
    SL_UNUSED(data);
    SL_UNUSED(len);
    sl_req *r = ud;
    sl_str id = sl_str_c(r->path + strlen(PREFIX));
    if (status != SL_OK) {
        not_found(r, id);
    } else {
        r->status = 200;
        sl_buf_append_c(&r->body_out, "{\"id\":");
        sl_buf_json_str(&r->body_out, id.p, id.len);
        sl_buf_append_c(&r->body_out, ",\"object\":\"response\",\"deleted\":true}");
        sl_req_finish(r);
    }
    sl_req_release(r);
}

/* ---- DELETE: the native provider's copy goes too --------------------------- *
 * A response a native provider made (openai kind, `api: responses`) is kept
 * by that provider as well as by sluice: DELETE asks it first, at
 * {base_url}/responses/{id} with its own key, and removes sluice's record
 * when it answered 2xx or 404 (it had none: store: false there). Any other
 * answer, or none, is a 502 and nothing is deleted, so a retry can finish. */

typedef struct del_call {
    sl_req *r;
    int status;
} del_call;

/* The native provider the record names, or NULL (translated, or gone from the config). */
static const sl_provider_conf *native_maker(const sl_req *r, const sl_json *rec)
{
    const sl_json *name = sl_json_get(rec, "provider");
    for (size_t i = 0; name && name->type == SL_JSON_STRING && i < r->conf->n_providers; i++) {
        const sl_provider_conf *p = &r->conf->providers[i];
        if (sl_str_eq_c(name->str, p->name) &&
            sl_dialect_for(p, SL_API_RESPONSES) == &sl_dialect_responses)
            return p;
    }
    return NULL;
}

/* An id that can stand in a URL path as it is (the providers' ids do). */
static bool path_safe(sl_str id)
{
    for (size_t i = 0; i < id.len; i++) {
        char c = id.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return id.len > 0;
}

static void del_status(void *ud, sl_call *c, int status)
{
    SL_UNUSED(c);
    ((del_call *)ud)->status = status;
}

static int del_data(void *ud, sl_call *c, const char *p, size_t n)
{
    SL_UNUSED(ud), SL_UNUSED(c), SL_UNUSED(p), SL_UNUSED(n);
    return 0; /* the provider's confirmation: its status says it all */
}

static void del_done(void *ud, sl_call *c, int rc, const char *detail)
{
    SL_UNUSED(c), SL_UNUSED(detail);
    del_call *d = ud;
    sl_req *r = d->r;
    if (rc == SL_OK && ((d->status >= 200 && d->status < 300) || d->status == 404)) {
        sl_resp_state_del(r->tenant ? r->tenant : "default", sl_str_c(r->path + strlen(PREFIX)),
                          on_deleted, r);
        return; /* on_deleted answers and releases */
    }
    sl_req_error(r, 502, "api_error", "upstream_unavailable", NULL,
                 "the provider that made this response did not delete it; nothing was "
                 "deleted, retry the request");
    sl_req_finish(r);
    sl_req_release(r);
}

static const sl_call_hooks del_hooks = {
    .on_status = del_status, .on_data = del_data, .on_done = del_done};

/* Starts the provider's DELETE; false when it could not start (r answered). */
static bool delete_upstream(sl_req *r, const sl_provider_conf *p, sl_str id)
{
    del_call *d = sl_arena_calloc(&r->arena, sizeof(*d));
    const char *path = sl_arena_printf(&r->arena, "/responses/%.*s", (int)id.len, id.p);
    const sl_config *cf = r->conf;
    sl_call_opts o = {
        .url = p->base_url,
        .url_path = path,
        .method = "DELETE",
        .headers = sl_dialect_responses.headers(NULL, p->api_key),
        .connect_ms = cf->timeouts.connect_ms,
        .first_byte_ms = cf->timeouts.first_byte_ms,
        .total_ms = cf->timeouts.total_ms,
    };
    int err = SL_ENOMEM;
    if (d && path) {
        d->r = r;
        if (sl_call_start(&o, &del_hooks, d, &err))
            return true;
    } else {
        sl_header_list_free(o.headers);
    }
    sl_req_error(r, 503, "api_error", err == SL_EAGAIN ? "overloaded" : "out_of_memory", NULL,
                 "the provider's copy cannot be deleted now; nothing was deleted, retry");
    sl_req_finish(r);
    return false;
}

static void on_del_record(void *ud, int status, const char *data, size_t len)
{
    sl_req *r = ud;
    sl_str id = sl_str_c(r->path + strlen(PREFIX));
    char *copy = status == SL_OK ? sl_arena_strndup(&r->arena, data, len) : NULL;
    sl_json *rec = NULL;
    sl_json_error err;
    const sl_provider_conf *p = NULL;
    if (copy && sl_json_parse(&r->arena, copy, len, NULL, &rec, &err) == SL_OK)
        p = native_maker(r, rec);
    if (status == SL_EIO) {
        sl_req_error(r, 503, "api_error", "state_unavailable", NULL,
                     "the response store cannot be reached; retry the request");
        sl_req_finish(r);
    } else if (!rec) {
        not_found(r, id);
    } else if (!p || !path_safe(id)) {
        sl_resp_state_del(r->tenant ? r->tenant : "default", id, on_deleted, r);
        return; /* on_deleted answers and releases */
    } else if (delete_upstream(r, p, id)) {
        return; /* del_done answers and releases */
    }
    sl_req_release(r);
}

void sl_responses_route(sl_req *r)
{
    const char *rest = r->path + strlen(PREFIX);
    size_t id_len = strcspn(rest, "/");
    const char *after = rest + id_len;
    bool input = strcmp(after, "/input_items") == 0, del = strcmp(r->method, "DELETE") == 0;
    sl_str id = {rest, id_len};
    if (!id_len || (*after && !input) || (input && del)) {
        sl_req_error(
            r, 404, "invalid_request_error", "unknown_url", NULL,
            sl_arena_printf(&r->arena, "Unknown request URL: %s %.200s", r->method, r->path));
        sl_req_finish(r);
        return;
    }
    const char *tenant = r->tenant ? r->tenant : "default";
    sl_req_ref(r); /* the store's callback releases it */
    if (del)       /* the record first: it says which provider made the response */
        sl_resp_state_get(tenant, id, on_del_record, r);
    else
        sl_resp_state_get(tenant, id, on_record, r);
}
