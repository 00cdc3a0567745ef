/* completion.h — one answer, two wire forms: SSE chunks <-> a complete object.
 *
 * The assembler watches a streamed chat.completion.chunk (or text_completion)
 * answer pass by and builds the equivalent complete object: what the cache
 * stores, so a streamed answer later serves a plain request. The replayer does
 * the reverse: a stored complete object becomes a real SSE stream (role chunk,
 * content chunks, finish chunk, usage chunk when asked, [DONE]).
 *
 * Neither form may lose a field (issue 17 item 9: logprobs and usage details
 * were dropped): the assembler merges every member it sees, known or not —
 * text deltas and arrays (logprobs.content, annotations) are joined, other
 * values keep the last one sent (system_fingerprint, service_tier, usage with
 * its details) — and the replayer sends every member of the stored object:
 * top-level ones on every chunk, message fields in the role chunk, logprobs
 * with the first piece, other choice fields with the finish chunk.
 *
 * Owns: the assembler's buffers and merged values (freed by sl_asm_free). */
#ifndef SLUICE_COMPLETION_H
#define SLUICE_COMPLETION_H

#include "sluice/buf.h"
#include "sluice/json.h"

#define SL_ASM_MAX_CHOICES 8
#define SL_ASM_MAX_TOOLS   16
#define SL_ASM_MAX_NODES   1024 /* merged members per answer (array elements are not members) */

typedef struct sl_jm sl_jm; /* a JSON value merged across chunks (completion.c) */

typedef struct sl_asm_tool {
    sl_buf id, name, args;
} sl_asm_tool;

typedef struct sl_asm_choice {
    bool used;
    sl_buf text;     /* legacy completions: text */
    sl_jm *message;  /* chat: the deltas merged (content, refusal, audio, annotations, ...) */
    sl_jm *logprobs; /* choice.logprobs merged (content/refusal arrays joined), or NULL */
    sl_jm *extra;    /* other choice members (content_filter_results, ...), or NULL */
    char finish_reason[32];
    int n_tools;
    sl_asm_tool *tools; /* SL_ASM_MAX_TOOLS of them, allocated at the first tool call */
} sl_asm_choice;

typedef struct sl_asm {
    bool text_completion; /* legacy completions */
    bool failed;          /* something we cannot represent: do not store */
    sl_jm *top;           /* top-level members but choices: id, model, usage, ... */
    size_t max_bytes;     /* bound on the assembled content */
    size_t bytes;
    size_t nodes; /* merged members, bounded by SL_ASM_MAX_NODES */
    /* allocated when a choice first appears: an open stream carries one
     * small struct, not room for every choice and tool it might have */
    sl_asm_choice *choices[SL_ASM_MAX_CHOICES];
} sl_asm;

void sl_asm_init(sl_asm *a, bool text_completion, size_t max_bytes);
/* Feeds one SSE data payload (one chunk object; "[DONE]" is the caller's business). */
void sl_asm_chunk(sl_asm *a, const char *data, size_t len);
/* Writes the complete object. SL_EINVAL when the stream could not be assembled. */
int sl_asm_result(const sl_asm *a, sl_buf *out);
void sl_asm_free(sl_asm *a);

/* Replays a complete chat.completion / text_completion (json) as SSE into out.
 * include_usage adds the usage chunk. content is split into about `pieces` chunks. */
int sl_replay_sse(const char *json, size_t len, bool include_usage, int pieces, sl_buf *out);

#endif
