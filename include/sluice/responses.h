/* responses.h — the OpenAI Responses API beyond its dialect (src/upstream/responses.c).
 *
 * The dialect itself is `sl_dialect_responses` (dialects.h). This header adds
 * what only this API has: response ids that name their provider, the stored
 * record of a response (its input and output items, for previous_response_id
 * and GET /v1/responses/{id}), a request with previous_response_id resolved
 * into items, the final object of a stream, and the replay of a stored
 * response object as the documented event stream (cache hits, coalescing).
 *
 * Owns nothing: everything is written into the caller's buffers. */
#ifndef SLUICE_RESPONSES_H
#define SLUICE_RESPONSES_H

#include "sluice/dialect.h"

/* A new response id, "resp_" + 32 hex digits + "_" + the provider's name
 * (letters, digits, '-' and '_' kept, at most 32): the id says which provider
 * made it. cap >= 80. */
void sl_responses_make_id(char *out, size_t cap, const char *provider);

/* A stored response object as its event stream (response.created ...
 * response.completed), each event with its sequence_number. SL_EINVAL when
 * json is not a response object. */
int sl_responses_replay(const char *json, size_t len, sl_buf *out);

/* A translated stream's final response object (as sent in response.completed),
 * once the stream finished; {NULL,0} before, or when it failed. */
sl_str sl_responses_stream_final(const sl_ir_stream *s);

/* One event of a native stream: when it is the terminal response.completed
 * (or response.incomplete), its response object (parsed into a). */
const sl_json *sl_responses_terminal(sl_str event, sl_str data, sl_arena *a);

/* The record sluice stores for a response:
 *   {"provider":P,"response":{...},"input":[this turn's items, with ids],
 *    "conversation":[every item so far: history, this input, this output]}
 * history: the previous record's "conversation" array, or NULL. */
int sl_responses_record(sl_buf *out, const char *provider, const sl_json *request,
                        const sl_json *response, const sl_json *history);

/* The request with previous_response_id resolved: every member as it came
 * except previous_response_id (dropped) and input (history's items, then the
 * input's, a string input becoming a user message item). */
int sl_responses_resolve(sl_buf *out, const sl_json *request, const sl_json *history);

/* The input items of a record as the input_items list object, newest first
 * unless asc, at most limit of them. */
void sl_responses_input_list(sl_buf *out, const sl_json *record, bool asc, long limit);

#endif
