/* req.h — one client request as it travels the pipeline.
 *
 * Owns: its arena (every per-request allocation), its pinned config reference,
 * the response header list and the buffered response body. Stages share state
 * only through the fields below; a stage never reaches into another stage's
 * private data.
 *
 * Lifetime: created by the server (or a service, for internal calls), freed by
 * sl_req_release() when the last reference is dropped. Async callbacks that may
 * outlive the client (curl, hiredis, timers) hold a reference. Requests are
 * pooled: the struct and its first arena block are reused, not freed. */
#ifndef SLUICE_REQ_H
#define SLUICE_REQ_H

#include "sluice/arena.h"
#include "sluice/buf.h"
#include "sluice/cache_key.h"
#include "sluice/config.h"
#include "sluice/request.h"
#include "sluice/sink.h"

struct event_base;
struct event;
struct sl_env;
struct sl_dialect;

#define SL_REQ_MAGIC       0x534c5251u /* "SLRQ" */
#define SL_REQ_MAX_HEADERS 24
#define SL_REQ_MAX_STAGES  12
/* The inline first arena block: what a stream needs (2.3 KiB measured for a
 * short chat stream; a plain pass-through needs ~4 KiB and takes a 4 KiB heap
 * block more, arena.c), held for as long as the stream is open. */
#define SL_REQ_ARENA_INLINE 2560

typedef enum {
    SL_CACHE_NONE = 0, /* not an LLM route, or the cache stage never ran */
    SL_CACHE_MISS,
    SL_CACHE_HIT,
    SL_CACHE_COALESCED,
    SL_CACHE_BYPASS,
    SL_CACHE_SEMANTIC, /* answered with a paraphrase's entry (stages/semantic.c) */
} sl_cache_outcome;

typedef struct sl_header {
    const char *name;
    const char *value;
} sl_header;

typedef struct sl_req sl_req;

struct sl_req {
    uint32_t magic;
    int refs;
    sl_arena arena;
    sl_config *conf; /* pinned for the request's life */
    struct event_base *base;
    sl_req *pool_next; /* free-list link while pooled */

    /* identity and input */
    char id[64];                   /* x-request-id: the client's, else generated */
    const char *method;            /* "GET", "POST", ... (static strings) */
    const char *path;              /* path without query (arena) */
    const char *query;             /* query string or NULL (arena) */
    const char *route;             /* the matched route's template (static), NULL: none */
    const char *auth_key;          /* the client's API key, never logged (arena) */
    const char *cache_control;     /* the client's Cache-Control header, or NULL */
    const char *cache_ttl;         /* x-sluice-cache-ttl as sent, or NULL (the cache checks it) */
    long ttl_override_s;           /* ... as seconds (clamped to cache.max_ttl_s), -1 absent */
    const char *end_user;          /* x-sluice-user, or NULL (cache.scope: user) */
    const char *idem_key;          /* Idempotency-Key as sent, or NULL (idempotency.c checks it) */
    const char *last_event_id;     /* Last-Event-ID as sent, or NULL (resume.c resumes from it) */
    const char *anthropic_version; /* the client's anthropic-version / anthropic-beta, */
    const char *anthropic_beta;    /* forwarded to anthropic providers (arena), or NULL */
    const char *cache_opt;         /* x-sluice-cache as sent ("semantic-off"), or NULL */
    struct sl_trace *trace;        /* tracing on: the request's trace context (arena), else NULL */
    sl_str body;                   /* the client's bytes, as received */
    bool is_llm;                   /* an LLM route: the pipeline runs */
    sl_llm_req llm;                /* parsed view (valid once the parse stage ran) */
    const char *tenant;            /* "default" in open mode */
    const sl_key_conf *key_conf;   /* the matched key (limits, budget), or NULL */

    /* the client's wire format */
    const struct sl_dialect *dialect; /* its error shape; NULL: OpenAI's */

    /* routing and upstream */
    int provider_idx;          /* index into conf->providers, -1 none */
    const char *provider;      /* name of the provider that answered */
    const char *upstream_path; /* e.g. "/chat/completions" */
    int retries;
    char tried[128]; /* providers tried, comma-separated */

    /* cache */
    sl_cache_key key;
    bool has_key;
    sl_cache_key raw_key; /* hash of the exact request (bytes, API, scope): L1's fast path */
    bool has_raw_key;
    bool fast_path; /* llm came from an L1 alias: the body was not parsed (llm.root NULL) */
    sl_cache_outcome cache;
    const char *cache_detail; /* "l1", "l2" or NULL */
    const char *led_by;       /* coalesced: request id of the leader */
    const char *served_from;  /* semantic: id of the request whose answer was served */
    double similarity;        /* semantic: the served entry's cosine similarity (0: none) */
    bool want_assembled;      /* the cache wants a streamed answer as one object */
    sl_buf assembled;         /* ... which the proxy builds here on a clean end */

    /* response */
    sl_sink *sink;  /* where the answer goes */
    int status;     /* final status (499: client closed) */
    bool streaming; /* the answer is SSE */
    bool head_sent; /* the sink got its head: no retry, no new status */
    bool client_gone;
    bool truncated; /* a streamed body broke off: it ends without its last chunk, closed */
    bool completed; /* sl_req_complete ran */
    sl_header headers[SL_REQ_MAX_HEADERS]; /* extra response headers */
    int n_headers;
    sl_buf body_out;          /* buffered plain answer (or error body) */
    const char *content_type; /* NULL: application/json (plain), text/event-stream (streams) */
    sl_str head_lines;        /* more header lines, "Name: value\r\n" each (a pass-through's) */
    struct sl_pass *pass;     /* a pass-through request's state (passthrough.h), else NULL */
    const char *error;        /* short reason for the log, or NULL */
    struct sl_rec *rec;       /* the recording of this answer (recording.h), or NULL */

    /* metering: counts as the provider reports them */
    long prompt_tokens;
    long completion_tokens;
    long cached_tokens;         /* prompt tokens read from the provider's prompt cache */
    long cache_write_tokens;    /* prompt tokens written to it (5-minute and 1-hour) */
    long cache_write_1h_tokens; /* ... of which written for an hour */
    long reasoning_tokens;      /* the part of completion_tokens spent thinking */
    bool prompt_has_cache;      /* prompt_tokens includes the cache's (OpenAI); else beside it */
    bool usage_estimated;
    double cost_usd;
    double saved_usd;
    int64_t cost_pusd;           /* the same two amounts in pico-dollars, exact: what the */
    int64_t saved_pusd;          /* log and x-sluice-cost-usd print (no float formatting) */
    bool money_inexact;          /* the pico amounts overflowed: print the doubles */
    double cache_overhead_usd;   /* the semantic level's embedding cost, counted against saved */
    int64_t cache_overhead_pusd; /* ... in pico-dollars */
    size_t bytes_out;

    /* timings (monotonic µs; 0 = not reached) */
    uint64_t t_start;
    uint64_t t_upstream_start;
    uint64_t t_first_byte; /* first byte from upstream */
    uint64_t t_upstream_end;
    uint64_t t_end;

    /* pipeline position */
    const struct sl_env *env;           /* the stores the stages use (pipeline.h) */
    int stage;                          /* next stage to run */
    int reached;                        /* stages [0, reached) ran their on_request */
    struct event *resume_ev;            /* fires the driver from the loop */
    sl_req *run_prev, *run_next;        /* the pipeline's list of LLM requests in flight */
    bool tracked;                       /* on that list */
    bool cut;                           /* ended by the drain deadline: answered shutting_down */
    void *stage_ctx[SL_REQ_MAX_STAGES]; /* each stage's context (pipeline.c), by position */
    /* Set by a stage that carries work for others (a coalescing leader): when
     * it returns true, a client abort only detaches this client. */
    bool (*abort_guard)(sl_req *r);
    void (*on_release)(sl_req *r); /* owner's cleanup hook (server/service) */
    void (*on_drained)(sl_req *r); /* a producer waits for a congested sink (sink.h) */
    void *owner;   /* the owner's object (its connection, a service call; once detached, the
                      connection's read buffer, which r->body points into) */
    bool detached; /* server: the connection is gone; the sink writes nothing */
};

/* Takes a request from the pool (or allocates one); refs = 1, conf pinned. */
sl_req *sl_req_new(struct event_base *base, sl_config *conf);
/* A request sluice itself makes on parent's behalf (triage's calls, the
 * semantic cache's embeddings): id PARENT-suffix, the parent's key (so its
 * tenant, limits and budget), path and API, a copy of body, answered into
 * sink. The caller starts it with sl_pipeline_start; NULL: out of memory. */
sl_req *sl_req_new_internal(sl_req *parent, const char *path, sl_api api, sl_str body,
                            const char *suffix, sl_sink *sink);
void sl_req_ref(sl_req *r);
/* Drops a reference; at zero the owner's hook runs and the request returns to the pool. */
void sl_req_release(sl_req *r);
/* Requests alive now (created and not yet released): what a drain waits for. */
size_t sl_req_live(void);
uint64_t sl_req_served(void); /* requests created since start */
/* Frees the pool (at exit, for leak checkers). */
void sl_req_pool_drain(void);

/* Adds a response header; name and value must outlive the request (static or arena). */
void sl_req_header(sl_req *r, const char *name, const char *value);
const char *sl_req_header_get(const sl_req *r, const char *name);

/* Renders the OpenAI error object into out. */
int sl_error_json(sl_buf *out, const char *message, const char *type, const char *param,
                  const char *code);
/* Records an error answer on r (status, an error body in the client's dialect —
 * OpenAI's shape unless r->dialect says otherwise — in body_out, r->error).
 * When the head was already sent (a stream in progress), it becomes an SSE error
 * event instead and the stream ends without [DONE]; a pass-through's streamed
 * body (r->pass) is not SSE: it ends without its last chunk (r->truncated). */
void sl_req_error(sl_req *r, int status, const char *type, const char *code, const char *param,
                  const char *message);
/* Records that the client left: status 499, no body (the log says why). */
void sl_req_client_closed(sl_req *r);
/* Shorthand for sl_http_error values from the parser. */
void sl_req_error_from(sl_req *r, const sl_http_error *e);

/* Generates a request id into out (at least 33 bytes). */
void sl_req_make_id(char *out);

/* The end user an answer is cached for under cache.scope: user: the
 * x-sluice-user header, else the body's "user"; "" when not scoped by user. */
sl_str sl_req_cache_user(const sl_req *r);

#endif
