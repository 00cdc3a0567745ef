/* message_sse.h — an Anthropic message, two wire forms: its event stream <->
 * the complete message object.
 *
 * The assembler watches a /v1/messages stream pass by and builds the message
 * the same call would have answered plainly: what the cache stores and what
 * a plain follower of a streamed flight gets. The replayer does the reverse
 * for a stored message (message_start, content_block_start / _delta / _stop
 * per block, message_delta, message_stop). Both keep what a client must get
 * back exactly: thinking text and its signature, redacted_thinking data,
 * tool input, every member sluice does not know (copied as its source bytes).
 * A stream the assembler cannot represent (a delta type it does not know,
 * citations) fails it: such answers are not stored.
 *
 * Owns: the assembler (heap; freed by sl_msg_asm_free). */
#ifndef SLUICE_MESSAGE_SSE_H
#define SLUICE_MESSAGE_SSE_H

#include "sluice/buf.h"

typedef struct sl_msg_asm sl_msg_asm;

/* NULL when out of memory. max_bytes bounds the assembled content. */
sl_msg_asm *sl_msg_asm_new(size_t max_bytes);
/* Feeds one SSE data payload (one event object). */
void sl_msg_asm_event(sl_msg_asm *m, const char *data, size_t len);
/* Writes the complete message. SL_EINVAL when the stream could not be assembled. */
int sl_msg_asm_result(const sl_msg_asm *m, sl_buf *out);
void sl_msg_asm_free(sl_msg_asm *m);

/* Replays a complete message (json) as its event stream into out; text and
 * thinking are split into about `pieces` deltas. */
int sl_msg_replay_sse(const char *json, size_t len, int pieces, sl_buf *out);

#endif
