/* config.h — the configuration: YAML file -> one immutable sl_config.
 *
 * Owns: every string and array hanging off an sl_config (one allocation tree,
 * freed by sl_config_free). A loaded config never changes; SIGHUP builds a new
 * one and swaps it in. Requests pin the config they started with through the
 * reference count, so a reload never pulls memory from under a request. */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include "sluice/util.h"

typedef enum { SL_PROVIDER_OPENAI = 0, SL_PROVIDER_ANTHROPIC = 1 } sl_provider_kind;
/* What an openai-kind provider speaks for POST /v1/responses: the Responses API
 * itself (relayed as it is), or only chat completions (sluice translates). */
typedef enum { SL_PROVIDER_API_RESPONSES = 0, SL_PROVIDER_API_CHAT = 1 } sl_provider_api;
typedef enum { SL_BUDGET_TOTAL = 0, SL_BUDGET_MONTHLY, SL_BUDGET_DAILY } sl_budget_period;

typedef struct sl_provider_conf {
    char *name;
    sl_provider_kind kind;
    sl_provider_api api; /* openai kind: responses (default) | chat */
    char *base_url;      /* without trailing slash */
    char *api_key;       /* may be NULL or empty */
    char **models;       /* exact names, "*" or globs ("claude-*") */
    size_t n_models;
    int breaker_failures;   /* -1: use breaker.failures */
    int breaker_cooldown_s; /* -1: use breaker.cooldown_s */
    bool passthrough;       /* other /v1/... routes may go here (default: the first openai-kind) */
    bool passthrough_set;   /* the file said so (else the default applies) */
} sl_provider_conf;

typedef struct sl_key_conf {
    char *key;
    char *tenant;
    long rpm;          /* 0: unlimited */
    long tpm;          /* 0: unlimited */
    double budget_usd; /* 0: no budget */
    sl_budget_period budget_period;
    bool semantic_set; /* keys[].semantic given: it overrides cache.semantic.enabled */
    bool semantic;
} sl_key_conf;

typedef struct sl_price_conf {
    char *model;
    double input;          /* USD per 1M prompt tokens */
    double output;         /* USD per 1M completion tokens */
    double cached_input;   /* USD per 1M prompt tokens read from a cache; <0: same as input */
    double cache_write;    /* ... written to a 5-minute cache; <0: 1.25x input */
    double cache_write_1h; /* ... written to a 1-hour cache; <0: 2x input */
} sl_price_conf;

typedef struct sl_sla_target {
    char *tier;
    char *priority;   /* critical | high | medium | low */
    int response_min; /* 0: no target */
    int resolution_min;
} sl_sla_target;

typedef struct sl_config {
    char *path; /* the file it came from */
    int refs;   /* see sl_config_ref / sl_config_unref */

    char *listen; /* "host:port" as written */
    char *listen_host;
    int listen_port;
    int workers;

    struct {
        char *url; /* NULL: embedded in-process state */
        char *host;
        int port;
        int db;
        char *password;   /* NULL: no AUTH */
        int timeout_ms;   /* per command; default 50 */
        char **sentinels; /* "host:port" */
        size_t n_sentinels;
        char *master_name;
        int min_replica_acks; /* -1: default (1 with sentinels or a cluster, 0 without) */
        char **cluster;       /* Redis Cluster seed nodes "host:port" */
        size_t n_cluster;
        bool read_from_replicas; /* cluster: L2 cache lookups may go to replicas */
    } redis;

    struct {
        char *access; /* "stdout", "stderr", "off" or a file path */
    } log;

    sl_provider_conf *providers;
    size_t n_providers;

    struct {
        bool enabled;
        int ttl_s;
        int max_ttl_s; /* bound on x-sluice-cache-ttl (and ttl_s); default 30 days */
        size_t l1_max_bytes;
        bool shared;     /* tenants share entries */
        bool sampled;    /* cache sampled answers too (default); false: temperature 0 only */
        bool scope_user; /* cache.scope: user — the end user joins the key */
        struct {
            bool enabled;          /* default false; keys[].semantic overrides per tenant */
            double threshold;      /* cosine similarity a candidate needs (0.95) */
            char *embedding_model; /* text-embedding-3-small */
            int max_entries;       /* in-process index bound, LRU (restart) */
            int timeout_ms;        /* wait for the embedding at most this long, then skip */
            char **negations;      /* the guard's negation words (empty: built-in list) */
            size_t n_negations;
        } semantic;
    } cache;

    struct {
        bool enabled;
        size_t max_waiters;      /* per flight */
        size_t max_replay_bytes; /* per flight */
        int lease_ms;            /* cross-instance lock lease, renewed every lease/3 */
    } coalesce;

    struct {
        int store_ttl_s; /* how long a stored response (conversation state) lives */
    } responses;

    struct {
        int ttl_s; /* an Idempotency-Key's answer is kept this long; default 86400 */
    } idempotency;

    struct {
        int resume_s;               /* a finished stream stays resumable; 0: off (default 300) */
        size_t max_resumable_bytes; /* per stream; beyond it a dropped stream is cancelled */
    } streams;

    struct {
        int batch_window_ms;     /* embeddings.batch.window_ms; 0: no batching (default 2) */
        size_t batch_max_inputs; /* embeddings.batch.max_inputs (default 256) */
    } embeddings;

    sl_key_conf *keys;
    size_t n_keys;

    sl_price_conf *prices;
    size_t n_prices;

    struct {
        int drain_s;
    } shutdown;

    struct {
        int max;
        int base_ms;
    } retries;

    struct {
        int connect_ms;
        int first_byte_ms;
        int total_ms;
        int idle_ms;
    } timeouts;

    struct {
        int failures;
        int cooldown_s;
    } breaker;

    struct {                       /* inbound HTTP bounds (not in CONTRACT; ours) */
        size_t max_body_bytes;     /* default 8 MiB */
        size_t max_header_bytes;   /* default 16 KiB */
        int header_timeout_s;      /* default 10 */
        int body_timeout_s;        /* a request body must arrive within; default 60 */
        int idle_timeout_s;        /* keep-alive idle; default 60 */
        int max_connections;       /* default 10000 */
        int max_inflight;          /* upstream calls at once; default 4096 */
        size_t max_response_bytes; /* upstream answer bound; default 32 MiB */
        int max_json_members;      /* members of one object in a request body; default 10000 */
        int max_json_values;       /* values in one request body; default 1000000 */
        int busy_poll_us;          /* spin this long after socket work before sleeping; 0 */
    } server;

    struct {
        int evaluate_every_s;
        double at_risk_ratio;
        char *webhook; /* NULL: no alerts delivered */
        int retry_max;
        int retry_base_ms;
        sl_sla_target *targets;
        size_t n_targets;
        char **pause_statuses;
        size_t n_pause_statuses;
        size_t max_batch; /* tickets per POST; default 1000 */
    } sla;

    struct {
        char *model;
        char **products;
        size_t n_products;
        char *kb; /* folder of markdown documents */
        int top_k;
        size_t max_content_bytes; /* default 32 KiB */
    } triage;

    struct {
        char *key; /* guards /stats and /ui when keys are set */
    } admin;

    struct {
        char *otlp_endpoint; /* OTLP/HTTP base URL (POST {it}/v1/traces); NULL: off */
        double sample_ratio; /* share of new traces recorded; default 1.0 */
        char **header_names; /* tracing.headers: sent with every export (auth) */
        char **header_values;
        size_t n_headers;
        char *service_name;     /* resource service.name; default "sluice" */
        size_t max_queue_spans; /* spans queued or in flight; more are dropped (counted) */
        bool capture_content;   /* prompt and answer text on upstream spans; default false */
        int redis_slow_ms;      /* a Redis command slower than this gets a span */
        int flush_ms;           /* batch interval */
        int timeout_ms;         /* one export call's bound */
    } tracing;

    /* Every credential sluice holds for others (providers' api keys, the
     * passwords in their base_url and in Redis' URL), SL_SECRET_MIN_LEN or
     * longer: scrubbed from provider answers, errors and logs. */
    char **secrets;
    size_t n_secrets;
} sl_config;

/* Loads and validates path. On error returns NULL and writes
 * "FILE:LINE: key: reason" into err. Environment ${NAME} are substituted;
 * a missing variable is an error naming it. */
sl_config *sl_config_load(const char *path, char *err, size_t errlen);
/* Same, from memory (name is used in messages). */
sl_config *sl_config_load_string(const char *name, const char *yaml, size_t len, char *err,
                                 size_t errlen);

sl_config *sl_config_ref(sl_config *c);
void sl_config_unref(sl_config *c); /* frees at zero */

/* The first provider (in order) at or after index `from` whose models match model;
 * returns its index or -1. */
int sl_config_provider_for(const sl_config *c, sl_str model, size_t from);
/* Glob match for model patterns: '*' matches any run, everything else literal. */
bool sl_model_match(const char *pattern, sl_str model);
/* Calls fn for every key of the configuration table (dotted: "redis.url")
 * with whether a change needs a restart; with a and b, only for the keys
 * whose value differs between them (lists such as providers count as
 * unchanged: they apply live, whole). */
typedef void (*sl_config_key_fn)(void *ud, const char *key, bool restart);
void sl_config_each_key(sl_config_key_fn fn, const sl_config *a, const sl_config *b, void *ud);
const sl_price_conf *sl_config_price(const sl_config *c, sl_str model);

#endif
