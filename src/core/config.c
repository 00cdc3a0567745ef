/* config.c — YAML (libyaml) into an immutable sl_config; see config.h.
 *
 * Every key is declared once, in the tables below: {name, type, offset,
 * bounds}. Defaults are set in one function. Errors say FILE:LINE: key: reason.
 * All memory of a config comes from one arena, freed at the last unref. */
#include "sluice/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <yaml.h>

#include "sluice/arena.h"

typedef struct holder {
    sl_config c;
    sl_arena arena;
} holder;

typedef struct loader {
    holder *h;
    yaml_document_t doc;
    const char *file;
    char *err;
    size_t errlen;
    bool failed;
} loader;

typedef enum { F_STR, F_INT, F_BOOL, F_DOUBLE, F_SIZE, F_STRLIST, F_SPECIAL } ftype;

/* What a SIGHUP does with a key (the last column of every table): LIVE keys
 * apply to new requests (a few need an action: see main.c's reload), RESTART
 * keys are read once at start (a change is logged and shown on /health as
 * pending), EACH marks a section whose own rows say. */
typedef enum { LIVE = 0, RESTART, EACH } reload_kind;

typedef struct field {
    const char *name;
    ftype type;
    size_t off; /* offset in sl_config (or the row's struct); for a RESTART
                   F_SPECIAL row, the char * it fills (compared on reload) */
    double min, max;
    int (*special)(loader *L, yaml_node_t *n, const char *path);
    reload_kind reload;
} field;

static int errf(loader *L, yaml_node_t *n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int errf(loader *L, yaml_node_t *n, const char *path, const char *fmt, ...)
{
    if (L->failed)
        return SL_EINVAL;
    L->failed = true;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(L->err, L->errlen, "%s:%zu: %s: %s", L->file, n ? n->start_mark.line + 1 : 1,
             path && path[0] ? path : "(root)", msg);
    return SL_EINVAL;
}

static char *adup(loader *L, const char *s, size_t n)
{
    return sl_arena_strndup(&L->h->arena, s, n);
}

/* ${NAME} and ${NAME:-default} from the environment. */
static int expand_env(loader *L, yaml_node_t *n, const char *path, const char *in, char **out)
{
    size_t cap = strlen(in) + 1;
    char *buf = NULL;
    size_t len = 0;
    const char *p = in;
    while (*p) {
        const char *start = strstr(p, "${");
        size_t lit = start ? (size_t)(start - p) : strlen(p);
        const char *val = "";
        size_t vlen = 0;
        char name[256];
        if (start) {
            const char *close = strchr(start, '}');
            if (!close) {
                free(buf);
                return errf(L, n, path, "unterminated ${ in value");
            }
            size_t nl = (size_t)(close - start - 2);
            if (nl == 0 || nl >= sizeof name) {
                free(buf);
                return errf(L, n, path, "bad ${NAME} reference");
            }
            memcpy(name, start + 2, nl);
            name[nl] = '\0';
            char *dflt = strstr(name, ":-");
            if (dflt)
                *dflt = '\0';
            const char *env = getenv(name);
            if (env && (*env || !dflt)) {
                val = env;
            } else if (dflt) {
                val = dflt + 2;
            } else {
                free(buf);
                return errf(L, n, path, "environment variable %s is not set", name);
            }
            vlen = strlen(val);
        }
        char *nb = realloc(buf, len + lit + vlen + cap);
        if (!nb) {
            free(buf);
            return errf(L, n, path, "out of memory");
        }
        buf = nb;
        memcpy(buf + len, p, lit);
        len += lit;
        memcpy(buf + len, val, vlen);
        len += vlen;
        if (!start)
            break;
        p = strchr(start, '}') + 1;
    }
    *out = adup(L, buf ? buf : "", len);
    free(buf);
    return SL_OK;
}

static int scalar(loader *L, yaml_node_t *n, const char *path, char **out)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return errf(L, n, path, "expected a value, not a %s",
                    n && n->type == YAML_MAPPING_NODE ? "mapping" : "list");
    return expand_env(L, n, path, (const char *)n->data.scalar.value, out);
}

static int as_int(loader *L, yaml_node_t *n, const char *path, double min, double max, long *out)
{
    char *s, *end;
    if (scalar(L, n, path, &s))
        return SL_EINVAL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno)
        return errf(L, n, path, "expected an integer, got \"%s\"", s);
    if (v < min || v > max)
        return errf(L, n, path, "%ld is out of range (%.0f..%.0f)", v, min, max);
    *out = v;
    return SL_OK;
}

static int as_double(loader *L, yaml_node_t *n, const char *path, double min, double max,
                     double *out)
{
    char *s, *end;
    if (scalar(L, n, path, &s))
        return SL_EINVAL;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v))
        return errf(L, n, path, "expected a number, got \"%s\"", s);
    if (v < min || v > max)
        return errf(L, n, path, "%g is out of range (%g..%g)", v, min, max);
    *out = v;
    return SL_OK;
}

static int as_bool(loader *L, yaml_node_t *n, const char *path, bool *out)
{
    char *s;
    if (scalar(L, n, path, &s))
        return SL_EINVAL;
    if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "on") == 0)
        *out = true;
    else if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0 || strcmp(s, "off") == 0)
        *out = false;
    else
        return errf(L, n, path, "expected true or false, got \"%s\"", s);
    return SL_OK;
}

static int as_strlist(loader *L, yaml_node_t *n, const char *path, char ***out, size_t *count)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return errf(L, n, path, "expected a list");
    size_t k = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    char **v = sl_arena_calloc(&L->h->arena, (k + 1) * sizeof(char *));
    for (size_t i = 0; i < k; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        if (scalar(L, yaml_document_get_node(&L->doc, n->data.sequence.items.start[i]), p, &v[i]))
            return SL_EINVAL;
    }
    *out = v;
    *count = k;
    return SL_OK;
}

static int set_field(loader *L, const field *f, void *base, yaml_node_t *n, const char *path)
{
    char *p = (char *)base + f->off;
    long iv;
    switch (f->type) {
    case F_STR: return scalar(L, n, path, (char **)p);
    case F_INT:
        if (as_int(L, n, path, f->min, f->max, &iv))
            return SL_EINVAL;
        *(int *)p = (int)iv;
        return SL_OK;
    case F_BOOL: return as_bool(L, n, path, (bool *)p);
    case F_DOUBLE: return as_double(L, n, path, f->min, f->max, (double *)p);
    case F_SIZE: {
        char *s;
        if (scalar(L, n, path, &s))
            return SL_EINVAL;
        if (sl_parse_size(s, (size_t *)p))
            return errf(L, n, path, "expected a size such as 64MiB, got \"%s\"", s);
        return SL_OK;
    }
    case F_STRLIST: return as_strlist(L, n, path, (char ***)p, (size_t *)(p + sizeof(char **)));
    case F_SPECIAL: return f->special(L, n, path);
    }
    return SL_OK;
}

/* Walks a mapping, dispatching each key to its row in fields. */
/* YAML leaves duplicate keys to the application; a second `sla:` silently
 * overriding (or, worse, adding to) the first is a trap, so it is an error. */
static bool seen_before(loader *L, yaml_node_t *map, yaml_node_pair_t *upto, const char *key)
{
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < upto; pr++) {
        yaml_node_t *k = yaml_document_get_node(&L->doc, pr->key);
        if (k && k->type == YAML_SCALAR_NODE &&
            strcmp((const char *)k->data.scalar.value, key) == 0)
            return true;
    }
    return false;
}

static int walk_map(loader *L, yaml_node_t *n, const char *path, const field *fields, size_t nf,
                    void *base)
{
    if (n->type != YAML_MAPPING_NODE) {
        if (n->type == YAML_SCALAR_NODE && n->data.scalar.length == 0)
            return SL_OK; /* an empty section */
        return errf(L, n, path, "expected a mapping");
    }
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(&L->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(&L->doc, pr->value);
        if (k->type != YAML_SCALAR_NODE)
            return errf(L, k, path, "keys must be plain names");
        const char *key = (const char *)k->data.scalar.value;
        char sub[256];
        snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", key);
        if (seen_before(L, n, pr, key))
            return errf(L, k, sub, "duplicate key");
        const field *f = NULL;
        for (size_t i = 0; i < nf; i++) {
            if (strcmp(fields[i].name, key) == 0)
                f = &fields[i];
        }
        if (!f)
            return errf(L, k, sub, "unknown key");
        if (set_field(L, f, base, v, sub))
            return SL_EINVAL;
    }
    return SL_OK;
}

#define OFF(member) offsetof(sl_config, member)
#define NF(t)       (sizeof(t) / sizeof((t)[0]))

/* ---- special keys --------------------------------------------------------- */

static int parse_hostport(loader *L, yaml_node_t *n, const char *path, const char *s, char **host,
                          int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return errf(L, n, path, "expected host:port, got \"%s\"", s);
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535 || colon[1] == '\0')
        return errf(L, n, path, "port must be 0..65535 in \"%s\"", s);
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']')
        h++, hl -= 2;
    *host = adup(L, h, hl);
    *port = (int)p;
    return SL_OK;
}

static int sp_listen(loader *L, yaml_node_t *n, const char *path)
{
    sl_config *c = &L->h->c;
    if (scalar(L, n, path, &c->listen))
        return SL_EINVAL;
    return parse_hostport(L, n, path, c->listen, &c->listen_host, &c->listen_port);
}

static int sp_redis_url(loader *L, yaml_node_t *n, const char *path)
{
    sl_config *c = &L->h->c;
    char *url;
    if (scalar(L, n, path, &url))
        return SL_EINVAL;
    if (!url[0])
        return SL_OK; /* empty: embedded */
    if (strncmp(url, "redis://", 8) != 0)
        return errf(L, n, path, "expected redis://[:password@]host[:port][/db]");
    c->redis.url = url;
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        c->redis.password = adup(L, pw, (size_t)(at - pw));
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    char *hp = adup(L, p, slash ? (size_t)(slash - p) : strlen(p));
    if (strchr(hp, ':')) {
        if (parse_hostport(L, n, path, hp, &c->redis.host, &c->redis.port))
            return SL_EINVAL;
    } else {
        c->redis.host = hp;
        c->redis.port = 6379;
    }
    if (!c->redis.host[0])
        return errf(L, n, path, "missing host");
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 15)
            return errf(L, n, path, "database must be 0..15");
        c->redis.db = (int)db;
    }
    return SL_OK;
}

static const field provider_fields[] = {
    {"name", F_STR, offsetof(sl_provider_conf, name), 0, 0, NULL, LIVE},
    {"kind", F_STR, 0, 0, 0, NULL, LIVE}, /* handled by hand */
    {"api", F_STR, 0, 0, 0, NULL, LIVE},  /* handled by hand */
    {"base_url", F_STR, offsetof(sl_provider_conf, base_url), 0, 0, NULL, LIVE},
    {"api_key", F_STR, offsetof(sl_provider_conf, api_key), 0, 0, NULL, LIVE},
    {"models", F_STRLIST, offsetof(sl_provider_conf, models), 0, 0, NULL, LIVE},
    {"breaker", F_STR, 0, 0, 0, NULL, LIVE}, /* handled by hand */
    {"passthrough", F_BOOL, offsetof(sl_provider_conf, passthrough), 0, 0, NULL, LIVE},
};

static const field breaker_fields[] = {
    {"failures", F_INT, offsetof(sl_provider_conf, breaker_failures), 1, 1e6, NULL, LIVE},
    {"cooldown_s", F_INT, offsetof(sl_provider_conf, breaker_cooldown_s), 0, 86400, NULL, LIVE},
};

/* kind: openai | anthropic; api: responses | chat (keys the table cannot parse). */
static int provider_enum(loader *L, yaml_node_t *v, const char *sub, const char *key,
                         sl_provider_conf *p)
{
    char *word;
    if (scalar(L, v, sub, &word))
        return SL_EINVAL;
    bool kind = strcmp(key, "kind") == 0;
    if (kind && strcmp(word, "openai") == 0)
        p->kind = SL_PROVIDER_OPENAI;
    else if (kind && strcmp(word, "anthropic") == 0)
        p->kind = SL_PROVIDER_ANTHROPIC;
    else if (kind)
        return errf(L, v, sub, "unknown kind \"%s\" (openai | anthropic)", word);
    else if (strcmp(word, "responses") == 0)
        p->api = SL_PROVIDER_API_RESPONSES;
    else if (strcmp(word, "chat") == 0)
        p->api = SL_PROVIDER_API_CHAT;
    else
        return errf(L, v, sub, "unknown api \"%s\" (responses | chat)", word);
    return SL_OK;
}

/* One key of a provider's mapping. */
static int provider_key(loader *L, yaml_node_t *k, yaml_node_t *v, const char *sub, const char *key,
                        sl_provider_conf *p)
{
    if (strcmp(key, "kind") == 0 || strcmp(key, "api") == 0)
        return provider_enum(L, v, sub, key, p);
    if (strcmp(key, "breaker") == 0)
        return walk_map(L, v, sub, breaker_fields, NF(breaker_fields), p) ? SL_EINVAL : SL_OK;
    const field *f = NULL;
    for (size_t i = 0; i < NF(provider_fields); i++) {
        if (strcmp(provider_fields[i].name, key) == 0)
            f = &provider_fields[i];
    }
    if (!f)
        return errf(L, k, sub, "unknown key");
    if (set_field(L, f, p, v, sub))
        return SL_EINVAL;
    p->passthrough_set |= f->off == offsetof(sl_provider_conf, passthrough);
    return SL_OK;
}

/* A provider read whole: name and base_url required, models "*" by default. */
static int provider_check(loader *L, yaml_node_t *n, const char *path, sl_provider_conf *p)
{
    if (!p->name || !p->name[0])
        return errf(L, n, path, "a provider needs a name");
    if (!p->base_url || !p->base_url[0])
        return errf(L, n, path, "provider %s needs a base_url", p->name);
    if (strncmp(p->base_url, "http://", 7) != 0 && strncmp(p->base_url, "https://", 8) != 0)
        return errf(L, n, path, "base_url must start with http:// or https://");
    size_t bl = strlen(p->base_url);
    while (bl > 0 && p->base_url[bl - 1] == '/')
        p->base_url[--bl] = '\0';
    if (!p->models) {
        p->models = sl_arena_calloc(&L->h->arena, 2 * sizeof(char *));
        p->models[0] = adup(L, "*", 1);
        p->n_models = 1;
    }
    if (p->n_models == 0)
        return errf(L, n, path, "provider %s serves no models", p->name);
    return SL_OK;
}

static int one_provider(loader *L, yaml_node_t *n, const char *path, sl_provider_conf *p)
{
    p->breaker_failures = p->breaker_cooldown_s = -1;
    p->kind = SL_PROVIDER_OPENAI;
    if (n->type != YAML_MAPPING_NODE)
        return errf(L, n, path, "expected a mapping");
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(&L->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(&L->doc, pr->value);
        const char *key = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "?";
        char sub[256];
        snprintf(sub, sizeof sub, "%s.%s", path, key);
        if (provider_key(L, k, v, sub, key, p))
            return SL_EINVAL;
    }
    return provider_check(L, n, path, p);
}

static size_t seq_len(yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static int sp_providers(loader *L, yaml_node_t *n, const char *path)
{
    sl_config *c = &L->h->c;
    if (n->type != YAML_SEQUENCE_NODE)
        return errf(L, n, path, "expected a list of providers");
    c->n_providers = seq_len(n);
    c->providers = sl_arena_calloc(&L->h->arena, (c->n_providers + 1) * sizeof(sl_provider_conf));
    for (size_t i = 0; i < c->n_providers; i++) {
        char sub[64];
        snprintf(sub, sizeof sub, "providers[%zu]", i);
        yaml_node_t *item = yaml_document_get_node(&L->doc, n->data.sequence.items.start[i]);
        if (one_provider(L, item, sub, &c->providers[i]))
            return SL_EINVAL;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->providers[j].name, c->providers[i].name) == 0)
                return errf(L, item, sub, "duplicate provider name \"%s\"", c->providers[i].name);
        }
    }
    /* passthrough defaults to true for the first openai-kind provider only */
    bool first = true;
    for (size_t i = 0; i < c->n_providers; i++) {
        sl_provider_conf *p = &c->providers[i];
        if (p->kind != SL_PROVIDER_OPENAI)
            continue;
        if (!p->passthrough_set)
            p->passthrough = first;
        first = false;
    }
    return SL_OK;
}

static const field key_fields[] = {
    {"key", F_STR, offsetof(sl_key_conf, key), 0, 0, NULL, LIVE},
    {"tenant", F_STR, offsetof(sl_key_conf, tenant), 0, 0, NULL, LIVE},
    {"rpm", F_INT, 0, 0, 0, NULL, LIVE}, /* longs: by hand */
    {"tpm", F_INT, 0, 0, 0, NULL, LIVE},
    {"budget_usd", F_DOUBLE, offsetof(sl_key_conf, budget_usd), 0, 1e12, NULL, LIVE},
    {"budget_period", F_STR, 0, 0, 0, NULL, LIVE},
    {"semantic", F_BOOL, offsetof(sl_key_conf, semantic), 0, 0, NULL, LIVE},
};

static int one_key(loader *L, yaml_node_t *n, const char *path, sl_key_conf *k)
{
    if (n->type != YAML_MAPPING_NODE)
        return errf(L, n, path, "expected a mapping");
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(&L->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(&L->doc, pr->value);
        const char *key = kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : "?";
        char sub[256];
        snprintf(sub, sizeof sub, "%s.%s", path, key);
        long lv;
        if (strcmp(key, "rpm") == 0 || strcmp(key, "tpm") == 0) {
            if (as_int(L, v, sub, 0, 1e12, &lv))
                return SL_EINVAL;
            *(key[0] == 'r' ? &k->rpm : &k->tpm) = lv;
        } else if (strcmp(key, "budget_period") == 0) {
            char *s;
            if (scalar(L, v, sub, &s))
                return SL_EINVAL;
            if (strcmp(s, "total") == 0)
                k->budget_period = SL_BUDGET_TOTAL;
            else if (strcmp(s, "monthly") == 0)
                k->budget_period = SL_BUDGET_MONTHLY;
            else if (strcmp(s, "daily") == 0)
                k->budget_period = SL_BUDGET_DAILY;
            else
                return errf(L, v, sub, "expected total, monthly or daily");
        } else {
            const field *f = NULL;
            for (size_t i = 0; i < NF(key_fields); i++) {
                if (strcmp(key_fields[i].name, key) == 0)
                    f = &key_fields[i];
            }
            if (!f)
                return errf(L, kn, sub, "unknown key");
            if (set_field(L, f, k, v, sub))
                return SL_EINVAL;
            k->semantic_set |= f->off == offsetof(sl_key_conf, semantic) && f->type == F_BOOL;
        }
    }
    if (!k->key || !k->key[0])
        return errf(L, n, path, "a key entry needs `key`");
    if (!k->tenant || !k->tenant[0])
        return errf(L, n, path, "a key entry needs `tenant`");
    return SL_OK;
}

static int sp_keys(loader *L, yaml_node_t *n, const char *path)
{
    sl_config *c = &L->h->c;
    if (n->type == YAML_SCALAR_NODE && n->data.scalar.length == 0)
        return SL_OK;
    if (n->type != YAML_SEQUENCE_NODE)
        return errf(L, n, path, "expected a list of keys");
    c->n_keys = seq_len(n);
    c->keys = sl_arena_calloc(&L->h->arena, (c->n_keys + 1) * sizeof(sl_key_conf));
    for (size_t i = 0; i < c->n_keys; i++) {
        char sub[64];
        snprintf(sub, sizeof sub, "keys[%zu]", i);
        yaml_node_t *item = yaml_document_get_node(&L->doc, n->data.sequence.items.start[i]);
        if (one_key(L, item, sub, &c->keys[i]))
            return SL_EINVAL;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->keys[j].key, c->keys[i].key) == 0)
                return errf(L, item, sub, "duplicate key");
        }
    }
    return SL_OK;
}

static const field price_fields[] = {
    {"input", F_DOUBLE, offsetof(sl_price_conf, input), 0, 1e9, NULL, LIVE},
    {"output", F_DOUBLE, offsetof(sl_price_conf, output), 0, 1e9, NULL, LIVE},
    {"cached_input", F_DOUBLE, offsetof(sl_price_conf, cached_input), 0, 1e9, NULL, LIVE},
    {"cache_write", F_DOUBLE, offsetof(sl_price_conf, cache_write), 0, 1e9, NULL, LIVE},
    {"cache_write_1h", F_DOUBLE, offsetof(sl_price_conf, cache_write_1h), 0, 1e9, NULL, LIVE},
};

static size_t map_len(yaml_node_t *n)
{
    return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
}

static int sp_prices(loader *L, yaml_node_t *n, const char *path)
{
    sl_config *c = &L->h->c;
    if (n->type != YAML_MAPPING_NODE)
        return errf(L, n, path, "expected a mapping of model: {input, output}");
    c->n_prices = map_len(n);
    c->prices = sl_arena_calloc(&L->h->arena, (c->n_prices + 1) * sizeof(sl_price_conf));
    size_t i = 0;
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
         pr++, i++) {
        yaml_node_t *k = yaml_document_get_node(&L->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(&L->doc, pr->value);
        char sub[256];
        snprintf(sub, sizeof sub, "prices.%s",
                 k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "?");
        if (scalar(L, k, path, &c->prices[i].model))
            return SL_EINVAL;
        c->prices[i].cached_input = -1; /* absent: the defaults of price.h */
        c->prices[i].cache_write = -1;
        c->prices[i].cache_write_1h = -1;
        if (walk_map(L, v, sub, price_fields, NF(price_fields), &c->prices[i]))
            return SL_EINVAL;
    }
    return SL_OK;
}

static bool valid_priority(const char *p)
{
    return !strcmp(p, "critical") || !strcmp(p, "high") || !strcmp(p, "medium") ||
           !strcmp(p, "low");
}

static const field target_fields[] = {
    {"response", F_INT, offsetof(sl_sla_target, response_min), 0, 1e7, NULL, LIVE},
    {"resolution", F_INT, offsetof(sl_sla_target, resolution_min), 0, 1e7, NULL, LIVE},
};

static int sp_targets(loader *L, yaml_node_t *n, const char *path)
{
    sl_config *c = &L->h->c;
    if (n->type != YAML_MAPPING_NODE)
        return errf(L, n, path, "expected tier: {priority: {response, resolution}}");
    size_t total = 0;
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *v = yaml_document_get_node(&L->doc, pr->value);
        if (v->type != YAML_MAPPING_NODE)
            return errf(L, v, path, "expected priority: {response, resolution}");
        total += map_len(v);
    }
    c->sla.targets = sl_arena_calloc(&L->h->arena, (total + 1) * sizeof(sl_sla_target));
    c->sla.n_targets = 0;
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *tier = yaml_document_get_node(&L->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(&L->doc, pr->value);
        for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top;
             q++) {
            yaml_node_t *pk = yaml_document_get_node(&L->doc, q->key);
            yaml_node_t *pv = yaml_document_get_node(&L->doc, q->value);
            sl_sla_target *t = &c->sla.targets[c->sla.n_targets++];
            char sub[256];
            snprintf(sub, sizeof sub, "%s.%s.%s", path, (const char *)tier->data.scalar.value,
                     pk->type == YAML_SCALAR_NODE ? (const char *)pk->data.scalar.value : "?");
            if (scalar(L, tier, path, &t->tier) || scalar(L, pk, sub, &t->priority))
                return SL_EINVAL;
            if (!valid_priority(t->priority))
                return errf(L, pk, sub, "unknown priority (critical | high | medium | low)");
            if (walk_map(L, pv, sub, target_fields, NF(target_fields), t))
                return SL_EINVAL;
        }
    }
    return SL_OK;
}

static const field sla_retry_fields[] = {
    {"max", F_INT, OFF(sla.retry_max), 0, 100, NULL, LIVE},
    {"base_ms", F_INT, OFF(sla.retry_base_ms), 1, 3600000, NULL, LIVE},
};

static int sp_sla_retry(loader *L, yaml_node_t *n, const char *path)
{
    return walk_map(L, n, path, sla_retry_fields, NF(sla_retry_fields), &L->h->c);
}

/* ---- the tables ---------------------------------------------------------------- */

#define SECTION(name, rows)                                                                        \
    static int sp_##name(loader *L, yaml_node_t *n, const char *path)                              \
    {                                                                                              \
        return walk_map(L, n, path, rows, NF(rows), &L->h->c);                                     \
    }

static const field redis_fields[] = {
    {"url", F_SPECIAL, OFF(redis.url), 0, 0, sp_redis_url, RESTART},
    {"timeout_ms", F_INT, OFF(redis.timeout_ms), 1, 60000, NULL, RESTART},
    {"sentinels", F_STRLIST, OFF(redis.sentinels), 0, 0, NULL, RESTART},
    {"master_name", F_STR, OFF(redis.master_name), 0, 0, NULL, RESTART},
    {"min_replica_acks", F_INT, OFF(redis.min_replica_acks), 0, 16, NULL, RESTART},
    {"password", F_STR, OFF(redis.password), 0, 0, NULL, RESTART},
    {"db", F_INT, OFF(redis.db), 0, 15, NULL, RESTART},
    {"cluster", F_STRLIST, OFF(redis.cluster), 0, 0, NULL, RESTART},
    {"read_from_replicas", F_BOOL, OFF(redis.read_from_replicas), 0, 0, NULL, RESTART},
};
static const field log_fields[] = {{"access", F_STR, OFF(log.access), 0, 0, NULL, LIVE}};
/* cache.scope: tenant (default) | user (the end user joins the cache key). */
static int sp_cache_scope(loader *L, yaml_node_t *n, const char *path)
{
    char *s;
    if (scalar(L, n, path, &s))
        return SL_EINVAL;
    if (strcmp(s, "tenant") != 0 && strcmp(s, "user") != 0)
        return errf(L, n, path, "expected tenant or user, got \"%s\"", s);
    L->h->c.cache.scope_user = s[0] == 'u';
    return SL_OK;
}

static const field semantic_fields[] = {
    {"enabled", F_BOOL, OFF(cache.semantic.enabled), 0, 0, NULL, LIVE},
    {"threshold", F_DOUBLE, OFF(cache.semantic.threshold), 0.5, 1, NULL, LIVE},
    {"embedding_model", F_STR, OFF(cache.semantic.embedding_model), 0, 0, NULL, LIVE},
    {"max_entries", F_INT, OFF(cache.semantic.max_entries), 1, 10000000, NULL, RESTART},
    {"timeout_ms", F_INT, OFF(cache.semantic.timeout_ms), 1, 60000, NULL, LIVE},
    {"negations", F_STRLIST, OFF(cache.semantic.negations), 0, 0, NULL, LIVE},
};

static int sp_cache_semantic(loader *L, yaml_node_t *n, const char *path)
{
    return walk_map(L, n, path, semantic_fields, NF(semantic_fields), &L->h->c);
}

static const field cache_fields[] = {
    {"enabled", F_BOOL, OFF(cache.enabled), 0, 0, NULL, LIVE},
    {"ttl_s", F_INT, OFF(cache.ttl_s), 0, 365 * 86400, NULL, LIVE},
    {"max_ttl_s", F_INT, OFF(cache.max_ttl_s), 1, 10 * 365 * 86400, NULL, LIVE},
    {"l1_max_bytes", F_SIZE, OFF(cache.l1_max_bytes), 0, 0, NULL, LIVE},
    {"shared", F_BOOL, OFF(cache.shared), 0, 0, NULL, LIVE},
    {"sampled", F_BOOL, OFF(cache.sampled), 0, 0, NULL, LIVE},
    {"scope", F_SPECIAL, 0, 0, 0, sp_cache_scope, LIVE},
    {"semantic", F_SPECIAL, 0, 0, 0, sp_cache_semantic, EACH},
};
static const field coalesce_fields[] = {
    {"enabled", F_BOOL, OFF(coalesce.enabled), 0, 0, NULL, LIVE},
    {"max_waiters", F_SIZE, OFF(coalesce.max_waiters), 0, 0, NULL, LIVE},
    {"max_replay_bytes", F_SIZE, OFF(coalesce.max_replay_bytes), 0, 0, NULL, LIVE},
    {"lease_ms", F_INT, OFF(coalesce.lease_ms), 100, 600000, NULL, LIVE},
    /* before the lease: a lock lifetime never renewed; an alias now, 0 the default */
    {"lock_ttl_ms", F_INT, OFF(coalesce.lease_ms), 0, 600000, NULL, LIVE},
};
static const field responses_fields[] = {
    {"store_ttl_s", F_INT, OFF(responses.store_ttl_s), 1, 315360000, NULL, LIVE}, /* <= 10 y */
};
static const field idempotency_fields[] = {
    {"ttl_s", F_INT, OFF(idempotency.ttl_s), 1, 365 * 86400, NULL, LIVE},
};
static const field streams_fields[] = {
    {"resume_s", F_INT, OFF(streams.resume_s), 0, 86400, NULL, LIVE},
    {"max_resumable_bytes", F_SIZE, OFF(streams.max_resumable_bytes), 0, 0, NULL, LIVE},
};
static const field embeddings_batch_fields[] = {
    {"window_ms", F_INT, OFF(embeddings.batch_window_ms), 0, 1000, NULL, LIVE},
    {"max_inputs", F_SIZE, OFF(embeddings.batch_max_inputs), 0, 0, NULL, LIVE},
};

static int sp_embeddings_batch(loader *L, yaml_node_t *n, const char *path)
{
    return walk_map(L, n, path, embeddings_batch_fields, NF(embeddings_batch_fields), &L->h->c);
}

static const field embeddings_fields[] = {
    {"batch", F_SPECIAL, 0, 0, 0, sp_embeddings_batch, EACH},
};
static const field shutdown_fields[] = {
    {"drain_s", F_INT, OFF(shutdown.drain_s), 0, 3600, NULL, LIVE}};
static const field retries_fields[] = {
    {"max", F_INT, OFF(retries.max), 0, 10, NULL, LIVE},
    {"base_ms", F_INT, OFF(retries.base_ms), 0, 60000, NULL, LIVE},
};
static const field timeouts_fields[] = {
    {"connect_ms", F_INT, OFF(timeouts.connect_ms), 1, 600000, NULL, LIVE},
    {"first_byte_ms", F_INT, OFF(timeouts.first_byte_ms), 1, 3600000, NULL, LIVE},
    {"total_ms", F_INT, OFF(timeouts.total_ms), 1, 86400000, NULL, LIVE},
    {"idle_ms", F_INT, OFF(timeouts.idle_ms), 1, 3600000, NULL, LIVE},
};
static const field breaker_root_fields[] = {
    {"failures", F_INT, OFF(breaker.failures), 1, 1000000, NULL, LIVE},
    {"cooldown_s", F_INT, OFF(breaker.cooldown_s), 0, 86400, NULL, LIVE},
};
static const field server_fields[] = {
    {"max_body_bytes", F_SIZE, OFF(server.max_body_bytes), 0, 0, NULL, LIVE},
    {"max_header_bytes", F_SIZE, OFF(server.max_header_bytes), 0, 0, NULL, LIVE},
    {"header_timeout_s", F_INT, OFF(server.header_timeout_s), 1, 3600, NULL, LIVE},
    {"body_timeout_s", F_INT, OFF(server.body_timeout_s), 1, 86400, NULL, LIVE},
    {"idle_timeout_s", F_INT, OFF(server.idle_timeout_s), 1, 86400, NULL, LIVE},
    {"max_connections", F_INT, OFF(server.max_connections), 1, 1000000, NULL, LIVE},
    {"max_inflight", F_INT, OFF(server.max_inflight), 1, 1000000, NULL, LIVE},
    {"max_response_bytes", F_SIZE, OFF(server.max_response_bytes), 0, 0, NULL, LIVE},
    {"max_json_members", F_INT, OFF(server.max_json_members), 1, 1e8, NULL, LIVE},
    {"max_json_values", F_INT, OFF(server.max_json_values), 1, 1e9, NULL, LIVE},
    {"busy_poll_us", F_INT, OFF(server.busy_poll_us), 0, 1000000, NULL, LIVE},
};
static const field sla_fields[] = {
    {"evaluate_every_s", F_INT, OFF(sla.evaluate_every_s), 1, 86400, NULL, LIVE},
    {"at_risk_ratio", F_DOUBLE, OFF(sla.at_risk_ratio), 0, 1, NULL, LIVE},
    {"webhook", F_STR, OFF(sla.webhook), 0, 0, NULL, LIVE},
    {"retry", F_SPECIAL, 0, 0, 0, sp_sla_retry, EACH},
    {"targets", F_SPECIAL, 0, 0, 0, sp_targets, LIVE},
    {"pause_statuses", F_STRLIST, OFF(sla.pause_statuses), 0, 0, NULL, LIVE},
    {"max_batch", F_SIZE, OFF(sla.max_batch), 0, 0, NULL, LIVE},
};
static const field triage_fields[] = {
    {"model", F_STR, OFF(triage.model), 0, 0, NULL, LIVE},
    {"products", F_STRLIST, OFF(triage.products), 0, 0, NULL, LIVE},
    {"kb", F_STR, OFF(triage.kb), 0, 0, NULL, LIVE},
    {"top_k", F_INT, OFF(triage.top_k), 1, 100, NULL, LIVE},
    {"max_content_bytes", F_SIZE, OFF(triage.max_content_bytes), 0, 0, NULL, LIVE},
};
/* An empty admin key (what `${ADMIN_KEY:-}` gives when the variable is unset)
 * must not open the dashboard: it is refused here, as a short one is. */
enum { ADMIN_KEY_MIN = 8 };

static int sp_admin_key(loader *L, yaml_node_t *n, const char *path)
{
    char *k;
    if (scalar(L, n, path, &k))
        return SL_EINVAL;
    if (strlen(k) < ADMIN_KEY_MIN)
        return errf(L, n, path, "%s (at least %d characters)",
                    k[0] ? "too short" : "empty: set a key or leave admin out", ADMIN_KEY_MIN);
    L->h->c.admin.key = k;
    return SL_OK;
}

static const field admin_fields[] = {{"key", F_SPECIAL, OFF(admin.key), 0, 0, sp_admin_key, LIVE}};

/* tracing.headers: a map of header name -> value, sent with every export
 * (a collector's auth). Names are HTTP tokens; values one line. */
static int sp_tracing_headers(loader *L, yaml_node_t *n, const char *path)
{
    if (n->type != YAML_MAPPING_NODE)
        return errf(L, n, path, "expected a mapping of header name: value");
    size_t k = map_len(n);
    sl_config *c = &L->h->c;
    c->tracing.header_names = sl_arena_calloc(&L->h->arena, (k + 1) * sizeof(char *));
    c->tracing.header_values = sl_arena_calloc(&L->h->arena, (k + 1) * sizeof(char *));
    if (!c->tracing.header_names || !c->tracing.header_values)
        return errf(L, n, path, "out of memory");
    c->tracing.n_headers = 0;
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(&L->doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(&L->doc, pr->value);
        char *name, *value;
        if (scalar(L, kn, path, &name) || scalar(L, vn, path, &value))
            return SL_EINVAL;
        if (!name[0] || strcspn(name, "()<>@,;:\\\"/[]?={} \t\r\n") != strlen(name))
            return errf(L, kn, path, "\"%s\" is not a header name", name);
        if (strpbrk(value, "\r\n"))
            return errf(L, vn, path, "the value of %s has a line break", name);
        c->tracing.header_names[c->tracing.n_headers] = name;
        c->tracing.header_values[c->tracing.n_headers++] = value;
    }
    return SL_OK;
}

static const field tracing_fields[] = {
    {"otlp_endpoint", F_STR, OFF(tracing.otlp_endpoint), 0, 0, NULL, RESTART},
    {"sample_ratio", F_DOUBLE, OFF(tracing.sample_ratio), 0, 1, NULL, LIVE},
    {"headers", F_SPECIAL, 0, 0, 0, sp_tracing_headers, RESTART},
    {"service_name", F_STR, OFF(tracing.service_name), 0, 0, NULL, RESTART},
    {"max_queue_spans", F_SIZE, OFF(tracing.max_queue_spans), 0, 0, NULL, RESTART},
    {"capture_content", F_BOOL, OFF(tracing.capture_content), 0, 0, NULL, LIVE},
    {"redis_slow_ms", F_INT, OFF(tracing.redis_slow_ms), 0, 60000, NULL, RESTART},
    {"flush_ms", F_INT, OFF(tracing.flush_ms), 10, 60000, NULL, RESTART},
    {"timeout_ms", F_INT, OFF(tracing.timeout_ms), 10, 60000, NULL, RESTART},
};

SECTION(redis, redis_fields)
SECTION(log, log_fields)
SECTION(cache, cache_fields)
SECTION(coalesce, coalesce_fields)
SECTION(idempotency, idempotency_fields)
SECTION(streams, streams_fields)
SECTION(embeddings, embeddings_fields)
SECTION(shutdown, shutdown_fields)

SECTION(responses, responses_fields)
SECTION(retries, retries_fields)
SECTION(timeouts, timeouts_fields)
SECTION(breaker, breaker_root_fields)
SECTION(server, server_fields)
SECTION(sla, sla_fields)
SECTION(triage, triage_fields)
SECTION(admin, admin_fields)
SECTION(tracing, tracing_fields)

static const field root_fields[] = {
    {"listen", F_SPECIAL, OFF(listen), 0, 0, sp_listen, RESTART},
    {"workers", F_INT, OFF(workers), 1, 256, NULL, RESTART},
    {"redis", F_SPECIAL, 0, 0, 0, sp_redis, EACH},
    {"log", F_SPECIAL, 0, 0, 0, sp_log, EACH},
    {"providers", F_SPECIAL, 0, 0, 0, sp_providers, LIVE},
    {"cache", F_SPECIAL, 0, 0, 0, sp_cache, EACH},
    {"coalesce", F_SPECIAL, 0, 0, 0, sp_coalesce, EACH},
    {"idempotency", F_SPECIAL, 0, 0, 0, sp_idempotency, EACH},
    {"streams", F_SPECIAL, 0, 0, 0, sp_streams, EACH},
    {"embeddings", F_SPECIAL, 0, 0, 0, sp_embeddings, EACH},
    {"keys", F_SPECIAL, 0, 0, 0, sp_keys, LIVE},
    {"prices", F_SPECIAL, 0, 0, 0, sp_prices, LIVE},
    {"shutdown", F_SPECIAL, 0, 0, 0, sp_shutdown, EACH},
    {"responses", F_SPECIAL, 0, 0, 0, sp_responses, EACH},
    {"retries", F_SPECIAL, 0, 0, 0, sp_retries, EACH},
    {"timeouts", F_SPECIAL, 0, 0, 0, sp_timeouts, EACH},
    {"breaker", F_SPECIAL, 0, 0, 0, sp_breaker, EACH},
    {"server", F_SPECIAL, 0, 0, 0, sp_server, EACH},
    {"sla", F_SPECIAL, 0, 0, 0, sp_sla, EACH},
    {"triage", F_SPECIAL, 0, 0, 0, sp_triage, EACH},
    {"admin", F_SPECIAL, 0, 0, 0, sp_admin, EACH},
    {"tracing", F_SPECIAL, 0, 0, 0, sp_tracing, EACH},
};

/* ---- reload: which keys changed, and how they apply ------------------------ */

/* Every table whose rows sit in sl_config itself, with the dotted prefix of
 * its keys. (providers, keys and prices are lists: they apply whole, live.) */
static const struct section {
    const char *prefix;
    const field *rows;
    size_t n;
} sections[] = {
    {"", root_fields, NF(root_fields)},
    {"redis.", redis_fields, NF(redis_fields)},
    {"log.", log_fields, NF(log_fields)},
    {"cache.", cache_fields, NF(cache_fields)},
    {"cache.semantic.", semantic_fields, NF(semantic_fields)},
    {"coalesce.", coalesce_fields, NF(coalesce_fields)},
    {"responses.", responses_fields, NF(responses_fields)},
    {"idempotency.", idempotency_fields, NF(idempotency_fields)},
    {"streams.", streams_fields, NF(streams_fields)},
    {"embeddings.", embeddings_fields, NF(embeddings_fields)},
    {"embeddings.batch.", embeddings_batch_fields, NF(embeddings_batch_fields)},
    {"shutdown.", shutdown_fields, NF(shutdown_fields)},
    {"retries.", retries_fields, NF(retries_fields)},
    {"timeouts.", timeouts_fields, NF(timeouts_fields)},
    {"breaker.", breaker_root_fields, NF(breaker_root_fields)},
    {"server.", server_fields, NF(server_fields)},
    {"sla.", sla_fields, NF(sla_fields)},
    {"sla.retry.", sla_retry_fields, NF(sla_retry_fields)},
    {"triage.", triage_fields, NF(triage_fields)},
    {"admin.", admin_fields, NF(admin_fields)},
    {"tracing.", tracing_fields, NF(tracing_fields)},
};

static bool str_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool list_same(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        if (!str_same(a[i], b[i]))
            return false;
    }
    return true;
}

/* Whether row f holds the same value in a and b; rows whose value is a whole
 * structure (F_SPECIAL without an offset) count as the same. */
static bool same_value(const field *f, const sl_config *a, const sl_config *b)
{
    const char *pa = (const char *)a + f->off, *pb = (const char *)b + f->off;
    switch (f->type) {
    case F_STR: return str_same(*(char *const *)pa, *(char *const *)pb);
    case F_INT: return *(const int *)pa == *(const int *)pb;
    case F_BOOL: return *(const bool *)pa == *(const bool *)pb;
    case F_DOUBLE: return *(const double *)pa == *(const double *)pb;
    case F_SIZE: return *(const size_t *)pa == *(const size_t *)pb;
    case F_STRLIST:
        return list_same(*(char **const *)pa, *(const size_t *)(pa + sizeof(char **)),
                         *(char **const *)pb, *(const size_t *)(pb + sizeof(char **)));
    case F_SPECIAL: return !f->off || str_same(*(char *const *)pa, *(char *const *)pb);
    }
    return true;
}

void sl_config_each_key(sl_config_key_fn fn, const sl_config *a, const sl_config *b, void *ud)
{
    char key[128];
    for (size_t s = 0; s < NF(sections); s++) {
        for (size_t i = 0; i < sections[s].n; i++) {
            const field *f = &sections[s].rows[i];
            if (f->reload == EACH)
                continue; /* its own rows follow */
            if (a && b && same_value(f, a, b))
                continue;
            snprintf(key, sizeof key, "%s%s", sections[s].prefix, f->name);
            fn(ud, key, f->reload == RESTART);
        }
    }
}

/* Defaults of the listener, the HTTP server, upstream calls and shutdown. */
static void defaults_server(loader *L, sl_config *c)
{
    c->listen = adup(L, "127.0.0.1:8080", 14);
    c->listen_host = adup(L, "127.0.0.1", 9);
    c->listen_port = 8080;
    c->workers = 1;
    c->log.access = adup(L, "stdout", 6);
    c->shutdown.drain_s = 30;
    c->retries.max = 2;
    c->retries.base_ms = 100;
    c->timeouts.connect_ms = 2000;
    c->timeouts.first_byte_ms = 60000;
    c->timeouts.total_ms = 300000;
    c->timeouts.idle_ms = 30000;
    c->breaker.failures = 5;
    c->breaker.cooldown_s = 30;
    c->server.max_body_bytes = 8u << 20;
    c->server.max_header_bytes = 16u << 10;
    c->server.header_timeout_s = 10;
    c->server.body_timeout_s = 60;
    c->server.idle_timeout_s = 60;
    c->server.max_connections = 10000;
    c->server.max_inflight = 4096;
    c->server.max_response_bytes = 32u << 20;
    c->server.max_json_members = 10000;
    c->server.max_json_values = 1000000;
    c->server.busy_poll_us = 0; /* sleep in epoll_wait as soon as there is nothing to do */
}

/* Defaults of what keeps answers: Redis, the caches, coalescing, idempotency,
 * resumable streams, embedding batches and stored responses. */
static void defaults_answers(loader *L, sl_config *c)
{
    c->redis.timeout_ms = 50;
    c->redis.min_replica_acks = -1;
    c->cache.enabled = true;
    c->cache.ttl_s = 3600;
    c->responses.store_ttl_s = 30 * 86400;
    c->cache.max_ttl_s = 30 * 86400;
    c->cache.sampled = true;
    c->cache.l1_max_bytes = 64u << 20;
    c->cache.semantic.threshold = 0.95;
    c->cache.semantic.embedding_model = adup(L, "text-embedding-3-small", 22);
    c->cache.semantic.max_entries = 10000;
    c->cache.semantic.timeout_ms = 1000;
    c->coalesce.enabled = true;
    c->coalesce.max_waiters = 1000;
    c->coalesce.max_replay_bytes = 8u << 20;
    c->coalesce.lease_ms = 2000;
    c->idempotency.ttl_s = 86400;
    c->streams.resume_s = 300;
    c->streams.max_resumable_bytes = 4u << 20;
    c->embeddings.batch_window_ms = 2;
    c->embeddings.batch_max_inputs = 256;
}

/* Defaults of the services: SLA tracking and triage. */
static void defaults_services(loader *L, sl_config *c)
{
    c->sla.evaluate_every_s = 60;
    c->sla.at_risk_ratio = 0.15;
    c->sla.retry_max = 5;
    c->sla.retry_base_ms = 500;
    c->sla.max_batch = 1000;
    c->triage.model = adup(L, "gpt-4o-mini", 11);
    static const char *const products[] = {"billing", "technical", "account", "general"};
    c->triage.products = sl_arena_calloc(&L->h->arena, 5 * sizeof(char *));
    for (int i = 0; i < 4; i++)
        c->triage.products[i] = adup(L, products[i], strlen(products[i]));
    c->triage.n_products = 4;
    c->triage.kb = adup(L, "conf/kb", 7);
    c->triage.top_k = 3;
    c->triage.max_content_bytes = 32u << 10;
    c->tracing.sample_ratio = 1.0;
    c->tracing.service_name = adup(L, "sluice", 6);
    c->tracing.max_queue_spans = 8192;
    c->tracing.redis_slow_ms = 20;
    c->tracing.flush_ms = 1000;
    c->tracing.timeout_ms = 5000;
}

static void set_defaults(loader *L)
{
    sl_config *c = &L->h->c;
    defaults_server(L, c);
    defaults_answers(L, c);
    defaults_services(L, c);
}

static int check_whole(loader *L, yaml_node_t *root)
{
    sl_config *c = &L->h->c;
    const char *ep = c->tracing.otlp_endpoint;
    if (ep && ep[0] && strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)
        return errf(L, root, "tracing.otlp_endpoint",
                    "expected an http:// or https:// URL (OTLP/HTTP), got \"%s\"", ep);
    if (c->redis.url && c->redis.n_sentinels)
        return errf(L, root, "redis", "use either redis.url or redis.sentinels, not both");
    if (c->redis.n_cluster && (c->redis.url || c->redis.n_sentinels))
        return errf(L, root, "redis.cluster",
                    "use one of redis.url, redis.sentinels or redis.cluster, not several");
    if (c->redis.n_sentinels && !c->redis.master_name)
        return errf(L, root, "redis.master_name", "required with redis.sentinels");
    if (c->redis.read_from_replicas && !c->redis.n_cluster)
        return errf(L, root, "redis.read_from_replicas", "only with redis.cluster");
    if (c->redis.n_cluster && c->redis.db)
        return errf(L, root, "redis.db", "a Redis Cluster has only db 0");
    for (size_t i = 0; i < c->redis.n_sentinels; i++) {
        char *h;
        int p;
        if (parse_hostport(L, root, "redis.sentinels", c->redis.sentinels[i], &h, &p))
            return SL_EINVAL;
    }
    for (size_t i = 0; i < c->redis.n_cluster; i++) {
        char *h;
        int p;
        if (parse_hostport(L, root, "redis.cluster", c->redis.cluster[i], &h, &p))
            return SL_EINVAL;
    }
    if (c->cache.ttl_s > c->cache.max_ttl_s)
        return errf(L, root, "cache.ttl_s", "%d is more than cache.max_ttl_s (%d)", c->cache.ttl_s,
                    c->cache.max_ttl_s);
    if (c->cache.l1_max_bytes < 4096 && c->cache.enabled)
        return errf(L, root, "cache.l1_max_bytes", "must be at least 4KiB");
    if (c->server.max_body_bytes < 1024)
        return errf(L, root, "server.max_body_bytes", "must be at least 1KiB");
    return SL_OK;
}

static void add_secret(loader *L, sl_str v)
{
    sl_config *c = &L->h->c;
    if (!c->secrets || v.len < SL_SECRET_MIN_LEN)
        return;
    for (size_t i = 0; i < c->n_secrets; i++) {
        if (sl_str_eq_c(v, c->secrets[i]))
            return;
    }
    c->secrets[c->n_secrets++] = adup(L, v.p, v.len);
}

/* What sluice sends to others and must never hand back (see sl_config.secrets). */
static void collect_secrets(loader *L)
{
    sl_config *c = &L->h->c;
    c->secrets = sl_arena_calloc(&L->h->arena,
                                 (2 * c->n_providers + 2 + c->tracing.n_headers) * sizeof(char *));
    c->n_secrets = 0;
    for (size_t i = 0; i < c->n_providers; i++) {
        add_secret(L, sl_str_c(c->providers[i].api_key));
        add_secret(L, sl_url_password(c->providers[i].base_url));
    }
    add_secret(L, sl_str_c(c->redis.password));
    for (size_t i = 0; i < c->tracing.n_headers; i++) /* a collector's auth header */
        add_secret(L, sl_str_c(c->tracing.header_values[i]));
}

sl_config *sl_config_load_string(const char *name, const char *yaml, size_t len, char *err,
                                 size_t errlen)
{
    holder *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    sl_arena_init(&h->arena, NULL, 0, 0);
    h->c.refs = 1;
    loader L = {.h = h, .file = name, .err = err, .errlen = errlen};
    h->c.path = adup(&L, name, strlen(name));
    set_defaults(&L);
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    bool loaded = yaml_parser_load(&parser, &L.doc);
    if (!loaded) {
        snprintf(err, errlen, "%s:%zu: (yaml): %s", name, parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "syntax error");
        yaml_parser_delete(&parser);
        sl_config_unref(&h->c);
        return NULL;
    }
    yaml_parser_delete(&parser);
    yaml_node_t *root = yaml_document_get_root_node(&L.doc);
    int rc = SL_OK;
    if (root && !(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0))
        rc = walk_map(&L, root, "", root_fields, NF(root_fields), &h->c);
    if (!rc)
        rc = check_whole(&L, root);
    if (!rc)
        collect_secrets(&L);
    yaml_document_delete(&L.doc);
    if (rc) {
        sl_config_unref(&h->c);
        return NULL;
    }
    return &h->c;
}

sl_config *sl_config_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s:1: (file): %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                snprintf(err, errlen, "%s:1: (file): out of memory", path);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    sl_config *c = sl_config_load_string(path, buf ? buf : "", len, err, errlen);
    free(buf);
    return c;
}

sl_config *sl_config_ref(sl_config *c)
{
    c->refs++;
    return c;
}

void sl_config_unref(sl_config *c)
{
    if (!c || --c->refs > 0)
        return;
    holder *h = (holder *)c;
    sl_arena_free(&h->arena);
    free(h);
}

bool sl_model_match(const char *pat, sl_str m)
{
    /* Iterative glob: '*' matches any run; everything else is literal. */
    size_t pi = 0, mi = 0, star = (size_t)-1, mark = 0, pl = strlen(pat);
    while (mi < m.len) {
        if (pi < pl && pat[pi] == '*') {
            star = pi++;
            mark = mi;
        } else if (pi < pl && pat[pi] == m.p[mi]) {
            pi++, mi++;
        } else if (star != (size_t)-1) {
            pi = star + 1;
            mi = ++mark;
        } else {
            return false;
        }
    }
    while (pi < pl && pat[pi] == '*')
        pi++;
    return pi == pl;
}

int sl_config_provider_for(const sl_config *c, sl_str model, size_t from)
{
    for (size_t i = from; i < c->n_providers; i++) {
        for (size_t m = 0; m < c->providers[i].n_models; m++) {
            if (sl_model_match(c->providers[i].models[m], model))
                return (int)i;
        }
    }
    return -1;
}

const sl_price_conf *sl_config_price(const sl_config *c, sl_str model)
{
    const sl_price_conf *glob = NULL;
    for (size_t i = 0; i < c->n_prices; i++) {
        if (sl_str_eq_c(model, c->prices[i].model))
            return &c->prices[i];
        if (!glob && strchr(c->prices[i].model, '*') && sl_model_match(c->prices[i].model, model))
            glob = &c->prices[i];
    }
    return glob;
}
