/* resp_routes.c — reading and deleting stored responses; see resp_routes.h. */
#include "sluice/resp_routes.h"

#include <stdlib.h>
#include <string.h>

#include "sluice/pipeline.h"
#include "sluice/resp_state.h"
#include "sluice/responses.h"

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
    if (del)
        sl_resp_state_del(tenant, id, on_deleted, r);
    else
        sl_resp_state_get(tenant, id, on_record, r);
}
