/* translate.h — OpenAI Chat Completions <-> Anthropic Messages, both ways.
 *
 * Pure functions over parsed JSON (json.h) writing into an sl_buf: requests,
 * complete answers, and streams event by event (a small state machine per
 * stream). Anything that cannot be expressed in the other dialect is refused
 * with a reason and the parameter at fault, never dropped silently.
 *
 * Owns: nothing but the stream state's small fixed fields. */
#ifndef SLUICE_TRANSLATE_H
#define SLUICE_TRANSLATE_H

#include "sluice/json.h"

#define SL_TR_DEFAULT_MAX_TOKENS 4096

typedef struct sl_tr_error {
    const char *message; /* static */
    const char *param;   /* static, or NULL */
} sl_tr_error;

/* Requests. */
int sl_tr_chat_to_messages_req(const sl_json *chat, sl_buf *out, sl_tr_error *e);
int sl_tr_messages_to_chat_req(const sl_json *msg, sl_buf *out, sl_tr_error *e);
/* Complete answers. */
int sl_tr_messages_to_chat_resp(const sl_json *msg, sl_buf *out);
int sl_tr_chat_to_messages_resp(const sl_json *chat, sl_buf *out);
/* Error bodies, each into the other's shape. */
void sl_tr_error_to_openai(const sl_json *anthropic_err, sl_buf *out);
void sl_tr_error_to_anthropic(const sl_json *openai_err, sl_buf *out);

typedef enum { SL_TR_A2O, SL_TR_O2A } sl_tr_dir;

typedef struct sl_tr_stream {
    sl_tr_dir dir;
    bool include_usage; /* A2O: emit the usage chunk */
    bool started;       /* O2A: message_start sent */
    bool text_open;     /* O2A: a text block is open */
    int block;          /* O2A: index of the next content block */
    int tool_index;     /* A2O: OpenAI index of the current tool call */
    bool failed;
    bool finished; /* the terminal event went out */
    char id[96];
    char model[96];
    char finish[32];
    long input_tokens, output_tokens;
} sl_tr_stream;

void sl_tr_stream_init(sl_tr_stream *s, sl_tr_dir dir, bool include_usage);
/* One upstream event in, zero or more client frames (complete SSE events) out. */
void sl_tr_stream_event(sl_tr_stream *s, sl_str event, sl_str data, sl_buf *out);

#endif
