/* dialect.h — one internal representation (IR) of LLM calls, and the shape of a dialect.
 *
 * A dialect is one provider wire format (OpenAI chat completions, Anthropic
 * messages, later the OpenAI Responses API). Each exports one `const
 * sl_dialect` (src/upstream/<name>.c) that reads its format into the IR and
 * writes the IR in its format: requests, complete answers, error bodies and
 * stream events. Translating between any two formats goes through the IR, so
 * N formats need N translators, not N².
 *
 * The IR is a view: strings are decoded slices pointing into the parsed JSON
 * (or into the arena given to the parser), nodes come from that arena, and
 * JSON Schema objects stay `const sl_json *` (copied verbatim). A parser takes
 * everything its format says that the IR can carry; an emitter refuses, with
 * a reason and the parameter at fault, what its format cannot say. Nothing is
 * dropped silently, except what the first design already dropped (listed at
 * each field as "not yet emitted by").
 *
 * This header and src/core/dialect.c (the translation drivers, the stream
 * state machine's bookkeeping and the helpers dialects share) are core: they
 * need only json/buf/arena, and core code (req.c: the client's error shape)
 * calls a dialect through a pointer without reaching up into upstream/.
 *
 * Owns: nothing; a sl_ir_stream owns only its small fixed fields. */
#ifndef SLUICE_DIALECT_H
#define SLUICE_DIALECT_H

#include "sluice/json.h"
#include "sluice/request.h"

struct curl_slist;

/* ---- requests ---------------------------------------------------------------------- */

typedef enum {
    SL_IR_TEXT,        /* text */
    SL_IR_IMAGE,       /* url: http(s), or a data: URL for an inline image */
    SL_IR_TOOL_CALL,   /* id, name, args: the model asked for a function call */
    SL_IR_TOOL_RESULT, /* id (the call answered), text */
    SL_IR_OTHER,       /* a part the IR cannot carry; text names its type */
} sl_ir_part_type;

typedef struct sl_ir_part sl_ir_part;
struct sl_ir_part {
    sl_ir_part_type type;
    sl_str text;
    sl_str url;
    sl_str id, name;
    sl_str args;                  /* JSON text of the arguments object ("" when none) */
    const sl_json *cache_control; /* Anthropic's prompt-cache marker, copied verbatim */
    sl_ir_part *next;
};

typedef enum { SL_IR_USER, SL_IR_ASSISTANT, SL_IR_ROLE_OTHER } sl_ir_role;

typedef struct sl_ir_msg sl_ir_msg;
struct sl_ir_msg {
    sl_ir_role role;
    sl_str role_name; /* as the client spelled it */
    bool plain;       /* the content was one bare string: a format may write it back as one */
    sl_ir_part *parts;
    sl_ir_msg *next;
};

typedef struct sl_ir_tool sl_ir_tool;
struct sl_ir_tool {
    bool function; /* a function tool; else `type` names a provider's own kind */
    sl_str type, name, description;
    const sl_json *parameters;    /* JSON Schema object, or NULL */
    const sl_json *cache_control; /* Anthropic's prompt-cache marker on a tool, or NULL */
    sl_ir_tool *next;
};

typedef enum {
    SL_IR_CHOICE_UNSET,
    SL_IR_CHOICE_AUTO,
    SL_IR_CHOICE_ANY, /* OpenAI "required", Anthropic "any" */
    SL_IR_CHOICE_NONE,
    SL_IR_CHOICE_TOOL, /* name */
} sl_ir_choice;

typedef enum {
    SL_IR_FORMAT_UNSET,
    SL_IR_FORMAT_TEXT,
    SL_IR_FORMAT_JSON_OBJECT,
    SL_IR_FORMAT_JSON_SCHEMA, /* name, schema, strict */
    SL_IR_FORMAT_OTHER,
} sl_ir_format_type;

typedef struct sl_ir_format {
    sl_ir_format_type type;
    sl_str name;
    const sl_json *schema;
    bool strict;
} sl_ir_format;

/* A number as sent: its value and its source text (written back verbatim). */
typedef struct sl_ir_num {
    bool set;
    double v;
    sl_str raw;
} sl_ir_num;

/* What a dialect that requires max_tokens asks for when the client set none. */
#define SL_DIALECT_DEFAULT_MAX_TOKENS 4096

typedef struct sl_ir_req {
    sl_str model;
    sl_ir_part *system; /* TEXT parts, in order */
    sl_ir_msg *messages;
    sl_ir_tool *tools;
    sl_ir_choice tool_choice;
    sl_str tool_choice_name;
    bool one_tool_call; /* OpenAI parallel_tool_calls: false, Anthropic disable_parallel_tool_use */
    sl_ir_num max_tokens, temperature, top_p;
    sl_ir_num n, presence_penalty, frequency_penalty; /* OpenAI only */
    sl_str *stop;                                     /* stop sequences (arena) */
    size_t n_stop;
    bool stream;
    sl_ir_format format;
    sl_str user; /* end-user id: OpenAI `user`, Anthropic `metadata.user_id` */
    /* The first parameter the source format set that the IR cannot carry
     * (logprobs, audio, ...): every other dialect refuses it. */
    const char *unmapped;
} sl_ir_req;

typedef struct sl_ir_refusal {
    const char *message; /* static */
    const char *param;   /* static, or NULL */
} sl_ir_refusal;

/* ---- answers ------------------------------------------------------------------------ */

typedef enum {
    SL_IR_FINISH_STOP,
    SL_IR_FINISH_LENGTH,
    SL_IR_FINISH_TOOL_CALLS,
    SL_IR_FINISH_STOP_SEQUENCE,
    SL_IR_FINISH_CONTENT_FILTER,
    SL_IR_FINISH_REFUSAL,
} sl_ir_finish;

/* A dialect's names for finish reasons: the first row naming a reason is the
 * one written; unknown names read as SL_IR_FINISH_STOP, unlisted reasons write
 * as the table's first row. */
typedef struct sl_ir_finish_name {
    const char *name;
    sl_ir_finish finish;
} sl_ir_finish_name;

/* Token counts in OpenAI's convention: `input` counts every prompt token,
 * cached or not; cache_read / cache_write are the parts of it read from and
 * written to a prompt cache; reasoning is the part of `output` spent thinking. */
typedef struct sl_ir_usage {
    long input, output, cache_read, cache_write, reasoning;
    long cache_write_1h; /* the part of cache_write kept for an hour (Anthropic's 1h TTL) */
} sl_ir_usage;

/* Which counts a usage reader found. */
enum { SL_USAGE_INPUT = 1, SL_USAGE_OUTPUT = 2 };

/* What a format whose answers echo their request (the Responses API's
 * response object) needs beside the answer: the id sluice gives it and the
 * client's request. Set by the caller; NULL for the other formats. */
typedef struct sl_ir_echo {
    sl_str id;
    const sl_json *request;
} sl_ir_echo;

typedef struct sl_ir_answer {
    const sl_ir_echo *echo; /* or NULL */
    sl_str id, model;
    sl_ir_part *parts; /* TEXT and TOOL_CALL, in order */
    sl_ir_finish finish;
    sl_str stop_sequence; /* the one that matched (not yet emitted) */
    sl_ir_usage usage;
} sl_ir_answer;

typedef struct sl_ir_error {
    sl_str type, message, param, code; /* param/code: {NULL,0} writes null */
    int status; /* the HTTP status it answers with, 0 unknown: picks Anthropic's type */
} sl_ir_error;

/* ---- streams ------------------------------------------------------------------------ */

typedef enum {
    SL_IR_EV_START,      /* id, model; usage (input) when known */
    SL_IR_EV_TEXT,       /* text */
    SL_IR_EV_TOOL_START, /* id, name: a tool call opens */
    SL_IR_EV_TOOL_ARGS,  /* text: a piece of the open call's arguments */
    SL_IR_EV_FINISH,     /* finish */
    SL_IR_EV_USAGE,      /* usage, the counts named by `have` */
    SL_IR_EV_END,        /* the stream is complete */
    SL_IR_EV_ERROR,      /* error */
} sl_ir_event_type;

typedef struct sl_ir_event {
    sl_ir_event_type type;
    sl_str id, model, name, text;
    sl_ir_finish finish;
    sl_ir_usage usage;
    unsigned have; /* SL_USAGE_* */
    sl_ir_error error;
} sl_ir_event;

typedef struct sl_dialect sl_dialect;

/* One translated stream. The driver keeps what every emitter needs (id,
 * model, finish, usage); `in` is the parser's state, `out` the emitter's. */
typedef struct sl_ir_stream {
    const sl_dialect *from, *to;
    bool include_usage; /* the client asked for usage in the stream */
    bool failed;        /* an error event went out */
    bool finished;      /* the terminal event went out */
    char id[96];
    char model[96];
    sl_ir_finish finish;
    sl_ir_usage usage;
    /* The prompt's tokens as sluice estimates them (count_tokens' estimate),
     * for a target that must state them before the provider counted (an
     * Anthropic message_start translated from an OpenAI stream, whose usage
     * comes in its last chunk); 0: none. The final counts replace it. */
    long input_estimate;
    struct {
        bool started;
        bool format;      /* the open block is the tool that carries a response_format */
        bool format_seen; /* ... one was answered: its tool_use is a stop */
        bool tools;       /* a real tool call was seen */
    } in;
    struct {
        bool started, text_open;
        int block;      /* index of the next content block */
        int tool_index; /* index of the current tool call, -1 none */
    } out;
    sl_buf *sink;           /* during a feed: where the emitter writes */
    const sl_ir_echo *echo; /* set after init by a caller whose target echoes (Responses) */
    void *out_state;        /* an emitter's own state (heap), freed by sl_ir_stream_free */
} sl_ir_stream;

/* ---- a dialect ------------------------------------------------------------------- */

/* What a native event (relayed as it came) told sluice. */
enum {
    SL_WATCH_CHUNK = 1,      /* counts as a content chunk (usage estimates) */
    SL_WATCH_END = 2,        /* the stream's terminal event */
    SL_WATCH_USAGE_ONLY = 4, /* a usage-only chunk: sluice asks for one; the client sees
                                it only if it asked too */
};

struct sl_dialect {
    const char *name; /* "openai", "anthropic": the providers' `kind` */
    /* Upstream path for a client's API; NULL when this dialect has none for it. */
    const char *(*path)(sl_api api);
    /* Appends the provider's auth and version headers. */
    struct curl_slist *(*headers)(struct curl_slist *h, const char *api_key);
    bool prompt_counts_cache; /* its prompt count includes cached tokens (metering) */

    int (*parse_request)(const sl_json *body, sl_arena *a, sl_ir_req *ir, sl_ir_refusal *e);
    int (*emit_request)(const sl_ir_req *ir, sl_buf *out, sl_ir_refusal *e);
    int (*parse_answer)(const sl_json *body, sl_arena *a, sl_ir_answer *ir);
    void (*emit_answer)(const sl_ir_answer *ir, sl_buf *out);
    /* Usage of an answer in this format; returns SL_USAGE_* for what was there. */
    unsigned (*usage)(const sl_json *answer, sl_ir_usage *u);
    void (*parse_error)(const sl_json *body, sl_ir_error *e);
    void (*emit_error)(const sl_ir_error *e, sl_buf *out);
    void (*emit_error_event)(const sl_ir_error *e, sl_buf *out); /* one SSE frame */

    /* A native event passing through: updates *u and *have, returns SL_WATCH_*.
     * Parses only events that can carry usage. */
    unsigned (*watch_event)(sl_str event, sl_str data, sl_ir_usage *u, unsigned *have);
    /* One upstream event into IR events, each handed to sl_ir_stream_put();
     * d is data parsed as a JSON object, or NULL. */
    void (*parse_event)(sl_ir_stream *s, sl_str event, sl_str data, const sl_json *d);
    /* One IR event as zero or more complete SSE frames into s->sink. */
    void (*emit_event)(sl_ir_stream *s, const sl_ir_event *ev);
    /* Where a provider lists its models, below its base_url; NULL: it cannot. */
    const char *models_path;
    /* Optional: frees s->out_state. */
    void (*stream_free)(sl_ir_stream *s);
};

/* ---- translation (src/core/dialect.c) ------------------------------------------- */

/* Requests: a refusal (SL_EINVAL) fills *e; SL_ENOMEM when a is exhausted. */
int sl_dialect_request(const sl_dialect *from, const sl_dialect *to, const sl_json *body,
                       sl_arena *a, sl_buf *out, sl_ir_refusal *e);
int sl_dialect_answer(const sl_dialect *from, const sl_dialect *to, const sl_json *body,
                      sl_arena *a, sl_buf *out);
/* The same, for targets that echo the request (echo may be NULL). */
int sl_dialect_answer_echo(const sl_dialect *from, const sl_dialect *to, const sl_json *body,
                           sl_arena *a, const sl_ir_echo *echo, sl_buf *out);
void sl_dialect_error(const sl_dialect *from, const sl_dialect *to, const sl_json *body,
                      sl_buf *out);
/* The prompt tokens to meter, in the provider's own convention. */
long sl_dialect_prompt_tokens(const sl_dialect *d, const sl_ir_usage *u);

void sl_ir_stream_init(sl_ir_stream *s, const sl_dialect *from, const sl_dialect *to,
                       bool include_usage);
/* Frees what the emitter kept (safe on a stream never fed, and twice). */
void sl_ir_stream_free(sl_ir_stream *s);
/* One upstream event in, zero or more client frames (complete SSE events) out. */
void sl_ir_stream_feed(sl_ir_stream *s, sl_str event, sl_str data, sl_buf *out);
/* For parsers: records what the event says, then has the target emit it. */
void sl_ir_stream_put(sl_ir_stream *s, const sl_ir_event *ev);

/* ---- helpers shared by the dialects ---------------------------------------------- */

/* One event's data parsed for a moment (a usage watch, a translated event):
 * the tree lives in a scratch arena whose first block is on the caller's
 * stack, so a small event costs no allocation. */
typedef struct sl_ir_scratch {
    sl_arena a;
    char first[8192];
} sl_ir_scratch;
/* data parsed into s (at most max bytes of tree); NULL when it is not JSON.
 * Always pair with sl_ir_scratch_free. */
const sl_json *sl_ir_scratch_parse(sl_ir_scratch *s, sl_str data, size_t max);
void sl_ir_scratch_free(sl_ir_scratch *s);

bool sl_ir_is_str(const sl_json *v);
bool sl_ir_is_num(const sl_json *v);
/* The decoded string v, or {NULL,0}. */
sl_str sl_ir_str(const sl_json *v);
/* A number member as a count (0 when absent or not a number). */
long sl_ir_count(const sl_json *obj, const char *key);
/* A number member as an sl_ir_num (unset when absent or not a number). */
sl_ir_num sl_ir_num_of(const sl_json *obj, const char *key);
/* The text of a string, or of the `text` members of an array of parts,
 * concatenated (in a when there is more than one piece). */
sl_str sl_ir_text_of(const sl_json *c, sl_arena *a);
/* A new zeroed part / message appended at *tail (which then points at its next). */
sl_ir_part *sl_ir_add_part(sl_arena *a, sl_ir_part ***tail, sl_ir_part_type type);
sl_ir_msg *sl_ir_add_msg(sl_arena *a, sl_ir_msg ***tail, sl_ir_role role, sl_str role_name);
int sl_ir_nomem(sl_ir_refusal *e);
int sl_ir_refuse(sl_ir_refusal *e, const char *message, const char *param);
/* A function tool's name, description and parameters from fn (OpenAI's
 * `function` member; a Responses tool is its own); refuses a nameless one. */
int sl_ir_take_function(const sl_json *fn, sl_ir_tool *tool, sl_ir_refusal *e);
/* tool_choice when it is absent, null or a word (auto / required / none):
 * sets ir and returns true; false when it is an object the caller reads. */
bool sl_ir_take_choice_word(const sl_json *tc, sl_ir_req *ir);
/* Writes a function tool's `"name":…` and, when it has them, `,"description":…`
 * and `,"parameters":…` (OpenAI's function object's members, a Responses tool's). */
void sl_ir_put_function(sl_buf *o, const sl_ir_tool *t);
/* OpenAI's word for a tool_choice that is not a named tool: auto, required, none. */
const char *sl_ir_choice_word(sl_ir_choice c);
/* The input and output counts of a usage object under these names into u;
 * returns SL_USAGE_* for those found. */
unsigned sl_ir_take_counts(const sl_json *us, const char *in, const char *out, sl_ir_usage *u);
/* Stop sequences from a string or an array of strings into ir (SL_ENOMEM). */
int sl_ir_take_stops(const sl_json *v, sl_arena *a, sl_ir_req *ir);
/* Writes `,"key":[...]` when ir has stop sequences. */
void sl_ir_put_stops(sl_buf *o, const char *key, const sl_ir_req *ir);
/* Writes `,"key":` then the number (its source text when it has one); nothing when unset. */
void sl_ir_put_num(sl_buf *o, const char *key, const sl_ir_num *n);
/* A slice as a JSON string, or `dflt` (raw JSON) when it is {NULL,0}. */
void sl_ir_put_str(sl_buf *o, sl_str s, const char *dflt);
/* The text of parts as one JSON string, sep between pieces (only once some
 * text was written: leading empty pieces add no separator). */
void sl_ir_put_joined(sl_buf *o, const sl_ir_part *parts, const char *sep);
sl_ir_finish sl_ir_finish_in(const sl_ir_finish_name *t, size_t n, sl_str name);
const char *sl_ir_finish_out(const sl_ir_finish_name *t, size_t n, sl_ir_finish f);
/* sluice's own error object, OpenAI's shape, as a body and as one SSE frame. */
void sl_ir_openai_error(const sl_ir_error *e, sl_buf *out);
void sl_ir_openai_error_event(const sl_ir_error *e, sl_buf *out);

#endif
