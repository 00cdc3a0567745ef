/* request.h — validation of LLM request bodies into a parsed view.
 *
 * Owns nothing: the view points into the caller's arena and body. Every
 * refusal names the offending parameter the way OpenAI does (`param`). */
#ifndef SLUICE_REQUEST_H
#define SLUICE_REQUEST_H

#include "sluice/json.h"

typedef enum {
    SL_API_CHAT = 0,
    SL_API_COMPLETIONS,
    SL_API_EMBEDDINGS,
    SL_API_MESSAGES,     /* Anthropic /v1/messages */
    SL_API_RESPONSES,    /* OpenAI /v1/responses */
    SL_API_COUNT_TOKENS, /* Anthropic /v1/messages/count_tokens */
} sl_api;

typedef struct sl_llm_req {
    sl_api api;
    const sl_json *root;
    sl_str model;
    bool stream;
    bool include_usage;  /* stream_options.include_usage */
    long max_tokens;     /* max_tokens or max_completion_tokens; -1 absent */
    size_t prompt_bytes; /* text bytes of messages / prompt / input */
    /* Responses API */
    sl_str previous_response_id; /* {NULL,0}: none */
    bool no_store;               /* "store": false: sluice keeps no state for it */
} sl_llm_req;

typedef struct sl_http_error {
    int status;
    const char *type;    /* "invalid_request_error" */
    const char *code;    /* "invalid_json", "missing_field", "invalid_type", "invalid_value" */
    const char *param;   /* "messages[2].role", or NULL */
    const char *message; /* static or arena */
} sl_http_error;

/* lim bounds the JSON (server.max_json_members / max_json_values); NULL: only
 * the parser's depth bound. Over a bound: 400 naming the configuration key. */
int sl_llm_req_parse(sl_arena *a, sl_api api, const char *body, size_t len,
                     const sl_json_limits *lim, sl_llm_req *out, sl_http_error *err);

#endif
