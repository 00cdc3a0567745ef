/* redis_cluster.c — key slots, slot maps, redirects, and the cluster runtime; see
 * redis_cluster.h. The runtime is a slot table over plain node connections
 * (each an sl_redis with its own timeouts, fail-fast and reconnects); a command
 * in cluster mode is formatted once (RESP, in its own record) so that MOVED,
 * ASK, TRYAGAIN and CLUSTERDOWN can be followed after the caller's stack is
 * gone by sending the same bytes again; hiredis then formats nothing. */
#include "sluice/redis_cluster.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sluice/log.h"

/* ---- slots: CRC16-XMODEM (poly 0x1021, init 0), as in the specification ----------- */

static uint16_t crc_table[256];
static bool crc_ready;

static void crc_init(void)
{
    for (unsigned i = 0; i < 256; i++) {
        uint16_t c = (uint16_t)(i << 8);
        for (int b = 0; b < 8; b++)
            c = (uint16_t)(c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1);
        crc_table[i] = c;
    }
    crc_ready = true;
}

uint16_t sl_cluster_crc16(const char *p, size_t len)
{
    if (!crc_ready)
        crc_init();
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++)
        crc = (uint16_t)((crc << 8) ^ crc_table[((crc >> 8) ^ (uint8_t)p[i]) & 0xFF]);
    return crc;
}

uint16_t sl_cluster_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', len - from);
        if (close && close > key + from) /* "{}" hashes the whole key */
            return sl_cluster_crc16(key + from, (size_t)(close - key) - from) & 16383;
    }
    return sl_cluster_crc16(key, len) & 16383;
}

/* ---- slot maps ------------------------------------------------------------------------ */

static void map_reset(sl_cluster_map *m)
{
    m->n = 0;
    m->covered = 0;
    memset(m->slot, SL_CLUSTER_NONE, sizeof m->slot);
}

/* The index of host:port in m, added when new; -1 when m is full or the address bad. */
static int map_node(sl_cluster_map *m, const char *host, size_t hlen, long long port)
{
    if (port <= 0 || port > 65535 || hlen >= sizeof m->node[0].host)
        return -1;
    for (size_t i = 0; i < m->n; i++) {
        if ((int)port == m->node[i].port && strlen(m->node[i].host) == hlen &&
            memcmp(m->node[i].host, host, hlen) == 0)
            return (int)i;
    }
    if (m->n == SL_CLUSTER_MAX_NODES)
        return -1;
    sl_cluster_addr *a = &m->node[m->n];
    memcpy(a->host, host, hlen);
    a->host[hlen] = '\0';
    a->port = (int)port;
    a->master = -1;
    a->online = true;
    return (int)m->n++;
}

static bool as_int(const redisReply *r, long long *out)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return true;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 18)
        return false;
    long long v = 0;
    for (size_t i = 0; i < r->len; i++) {
        if (r->str[i] < '0' || r->str[i] > '9')
            return false;
        v = v * 10 + (r->str[i] - '0');
    }
    *out = v;
    return true;
}

static bool is_str(const redisReply *r, const char *s)
{
    size_t n = strlen(s);
    return (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->len == n &&
           memcmp(r->str, s, n) == 0;
}

/* Assigns [from, to] to node idx. */
static int map_range(sl_cluster_map *m, long long from, long long to, int idx)
{
    if (from < 0 || to >= SL_CLUSTER_SLOTS || from > to)
        return SL_EINVAL;
    for (long long s = from; s <= to; s++) {
        if (m->slot[s] == SL_CLUSTER_NONE)
            m->covered++;
        m->slot[s] = (uint8_t)idx;
    }
    return SL_OK;
}

/* One node of a CLUSTER SHARDS shard: a flat key/value array. */
typedef struct shard_node {
    const char *host;
    size_t hlen;
    long long port;
    bool master, online;
} shard_node;

static bool read_shard_node(const redisReply *n, const char *asked, shard_node *out)
{
    if (n->type != REDIS_REPLY_ARRAY || n->elements % 2)
        return false;
    const redisReply *ip = NULL, *ep = NULL;
    *out = (shard_node){.online = true};
    for (size_t i = 0; i + 1 < n->elements; i += 2) {
        const redisReply *k = n->element[i], *v = n->element[i + 1];
        if (is_str(k, "port") && !as_int(v, &out->port))
            return false;
        else if (is_str(k, "ip") && v->type == REDIS_REPLY_STRING)
            ip = v;
        else if (is_str(k, "endpoint") && v->type == REDIS_REPLY_STRING)
            ep = v;
        else if (is_str(k, "role"))
            out->master = is_str(v, "master");
        else if (is_str(k, "health")) /* "loading": a replica not yet written to (offset 0) */
            out->online = is_str(v, "online") || is_str(v, "loading");
    }
    const redisReply *h = ep && ep->len && !is_str(ep, "?") ? ep : ip;
    if (h && h->len && !is_str(h, "?")) {
        out->host = h->str;
        out->hlen = h->len;
    } else {
        out->host = asked;
        out->hlen = strlen(asked);
    }
    return true;
}

/* Adds a shard's nodes; the master's index, or -1 (none, or none online). */
static int read_shard_nodes(const redisReply *nodes, const char *asked, sl_cluster_map *m)
{
    int master = -1, first = (int)m->n;
    for (size_t i = 0; i < nodes->elements; i++) {
        shard_node sn;
        if (!read_shard_node(nodes->element[i], asked, &sn))
            return -2;
        int idx = map_node(m, sn.host, sn.hlen, sn.port);
        if (idx < 0)
            continue;
        m->node[idx].online = sn.online;
        m->node[idx].master = sn.master ? -1 : -3; /* replicas are linked below */
        if (sn.master && (master < 0 || (sn.online && !m->node[master].online)))
            master = idx;
    }
    for (int i = first; i < (int)m->n; i++) {
        if (m->node[i].master == -3)
            m->node[i].master = master;
    }
    return master;
}

int sl_cluster_parse_shards(const redisReply *rep, const char *asked_host, sl_cluster_map *m)
{
    map_reset(m);
    if (!rep || rep->type != REDIS_REPLY_ARRAY)
        return SL_EINVAL;
    for (size_t s = 0; s < rep->elements; s++) {
        const redisReply *sh = rep->element[s], *slots = NULL, *nodes = NULL;
        if (sh->type != REDIS_REPLY_ARRAY || sh->elements % 2)
            return SL_EINVAL;
        for (size_t i = 0; i + 1 < sh->elements; i += 2) {
            if (is_str(sh->element[i], "slots"))
                slots = sh->element[i + 1];
            else if (is_str(sh->element[i], "nodes"))
                nodes = sh->element[i + 1];
        }
        if (!slots || !nodes || slots->type != REDIS_REPLY_ARRAY || slots->elements % 2 ||
            nodes->type != REDIS_REPLY_ARRAY)
            return SL_EINVAL;
        int master = read_shard_nodes(nodes, asked_host, m);
        if (master == -2)
            return SL_EINVAL;
        for (size_t i = 0; master >= 0 && i + 1 < slots->elements; i += 2) {
            long long from, to;
            if (!as_int(slots->element[i], &from) || !as_int(slots->element[i + 1], &to) ||
                map_range(m, from, to, master) != SL_OK)
                return SL_EINVAL;
        }
    }
    return SL_OK;
}

/* [host, port, id, ...] of CLUSTER SLOTS. */
static int slots_node(const redisReply *n, const char *asked, sl_cluster_map *m)
{
    long long port;
    if (n->type != REDIS_REPLY_ARRAY || n->elements < 2 ||
        n->element[0]->type != REDIS_REPLY_STRING || !as_int(n->element[1], &port))
        return -2;
    const redisReply *h = n->element[0];
    bool known = h->len && !is_str(h, "?");
    return map_node(m, known ? h->str : asked, known ? h->len : strlen(asked), port);
}

int sl_cluster_parse_slots(const redisReply *rep, const char *asked_host, sl_cluster_map *m)
{
    map_reset(m);
    if (!rep || rep->type != REDIS_REPLY_ARRAY)
        return SL_EINVAL;
    for (size_t s = 0; s < rep->elements; s++) {
        const redisReply *e = rep->element[s];
        long long from, to;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || !as_int(e->element[0], &from) ||
            !as_int(e->element[1], &to))
            return SL_EINVAL;
        int master = slots_node(e->element[2], asked_host, m);
        if (master == -2)
            return SL_EINVAL;
        for (size_t i = 3; i < e->elements; i++) {
            int rep_idx = slots_node(e->element[i], asked_host, m);
            if (rep_idx == -2)
                return SL_EINVAL;
            if (rep_idx >= 0 && rep_idx != master)
                m->node[rep_idx].master = master;
        }
        if (master >= 0 && map_range(m, from, to, master) != SL_OK)
            return SL_EINVAL;
    }
    return SL_OK;
}

/* ---- redirects ------------------------------------------------------------------------ */

static bool starts(const char *s, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len >= n && memcmp(s, word, n) == 0 && (len == n || s[n] == ' ');
}

/* "SLOT HOST:PORT" after MOVED / ASK. */
static bool parse_target(const char *p, size_t len, sl_redirect *out)
{
    size_t i = 0;
    long slot = 0;
    while (i < len && p[i] >= '0' && p[i] <= '9' && slot < SL_CLUSTER_SLOTS)
        slot = slot * 10 + (p[i++] - '0');
    if (i == 0 || i >= len || p[i] != ' ' || slot >= SL_CLUSTER_SLOTS)
        return false;
    const char *addr = p + i + 1, *end = p + len, *colon = NULL;
    for (const char *q = addr; q < end; q++) {
        if (*q == ':')
            colon = q;
    }
    if (!colon || (size_t)(colon - addr) >= sizeof out->host)
        return false;
    long port = 0;
    for (const char *q = colon + 1; q < end; q++) {
        if (*q < '0' || *q > '9' || port > 65535)
            return false;
        port = port * 10 + (*q - '0');
    }
    if (port <= 0 || port > 65535)
        return false;
    memcpy(out->host, addr, (size_t)(colon - addr));
    out->host[colon - addr] = '\0';
    out->slot = (int)slot;
    out->port = (int)port;
    return true;
}

sl_redirect_kind sl_cluster_parse_redirect(const char *err, size_t len, sl_redirect *out)
{
    memset(out, 0, sizeof(*out));
    if (!err)
        return SL_REDIR_NONE;
    if (starts(err, len, "MOVED") || starts(err, len, "ASK")) {
        bool moved = err[0] == 'M';
        size_t skip = moved ? 6 : 4;
        if (len <= skip || !parse_target(err + skip, len - skip, out))
            return out->kind = SL_REDIR_NONE;
        return out->kind = moved ? SL_REDIR_MOVED : SL_REDIR_ASK;
    }
    if (starts(err, len, "TRYAGAIN"))
        return out->kind = SL_REDIR_TRYAGAIN;
    if (starts(err, len, "CLUSTERDOWN"))
        return out->kind = SL_REDIR_CLUSTERDOWN;
    return SL_REDIR_NONE;
}

/* ---- the runtime ---------------------------------------------------------------------- */

enum {
    MAX_REDIRECTS = 8,    /* a command moved more often answers its last error */
    REFRESH_GAP_MS = 100, /* at most this often after errors */
    REFRESH_HEALTHY_MS = 5000,
    REFRESH_DEGRADED_MS = 300, /* a master down or slots uncovered: look again soon */
    RETRY_MIN_MS = 5,
    RETRY_MAX_MS = 100
};

typedef struct node {
    char host[128];
    int port;
    sl_redis *rw; /* commands; made when the node is first a master or a target */
    sl_redis *ro; /* READONLY reads (read_from_replicas), made for replicas */
    int master;   /* -1: a master (or unknown); else the node it replicates */
    size_t slots; /* slots it serves as master */
    bool online;
} node;

typedef struct ccmd ccmd;

struct sl_cluster {
    struct event_base *base;
    char *password;
    int timeout_ms;
    bool read_replicas, freeing;
    node nodes[SL_CLUSTER_MAX_NODES];
    size_t n_nodes, n_seeds; /* the seeds are the first nodes */
    uint8_t slot[SL_CLUSTER_SLOTS];
    size_t covered, map_covered, map_masters; /* now; as last logged */
    bool have_map, use_slots;                 /* use_slots: the server has no CLUSTER SHARDS */
    bool refreshing, again, soon;
    uint64_t last_refresh_ms, last_warn_ms;
    size_t ask_next; /* the node asked for the next map */
    struct event *refresh;
    ccmd *live; /* commands waiting on a retry timer or a node */
    unsigned rr;
    uint64_t moved, ask, tryagain, clusterdown, refreshes, failovers;
    char desc[256];
};

struct ccmd {
    sl_cluster *c;
    ccmd *prev, *next;
    sl_redis_cb cb;
    void *ud;
    struct event *retry; /* made on the first backoff */
    uint64_t deadline_ms;
    int slot, tries, ask_node, sent_node, backoff_ms;
    bool replica_ok;
    sl_acked *acked; /* a write acknowledged by replicas: WAIT goes behind it */
    size_t len;      /* the command in RESP form, after the record */
    char resp[];
};

static void want_refresh(sl_cluster *c);

static int find_node(const sl_cluster *c, const char *host, int port)
{
    for (size_t i = 0; i < c->n_nodes; i++) {
        if (c->nodes[i].port == port && strcmp(c->nodes[i].host, host) == 0)
            return (int)i;
    }
    return -1;
}

static void on_node_up(void *arg)
{
    want_refresh(arg); /* a seed came up (first map), or a node came back */
}

static int add_node(sl_cluster *c, const char *host, int port)
{
    int i = find_node(c, host, port);
    if (i >= 0 || c->n_nodes == SL_CLUSTER_MAX_NODES)
        return i;
    node *n = &c->nodes[c->n_nodes];
    memset(n, 0, sizeof(*n));
    snprintf(n->host, sizeof n->host, "%s", host);
    n->port = port;
    n->master = -1;
    n->online = true;
    return (int)c->n_nodes++;
}

static sl_redis *rw_of(sl_cluster *c, int i)
{
    node *n = &c->nodes[i];
    if (!n->rw)
        n->rw = sl_redis_new_node(c->base, n->host, n->port, c->password, c->timeout_ms, false,
                                  on_node_up, c);
    return n->rw;
}

static bool up(const sl_redis *r)
{
    return r && sl_redis_get_state(r) == SL_REDIS_UP;
}

/* The connection a command goes to: the ASK target, a replica for a read that
 * may be stale, else the slot's master. NULL: nobody serves it now. */
static sl_redis *target(sl_cluster *c, ccmd *cc)
{
    if (cc->ask_node >= 0) {
        cc->sent_node = cc->ask_node;
        return rw_of(c, cc->ask_node);
    }
    int m = c->slot[cc->slot];
    if (m == SL_CLUSTER_NONE)
        return NULL;
    if (cc->replica_ok && c->read_replicas) {
        unsigned start = c->rr++;
        for (size_t k = 0; k < c->n_nodes; k++) {
            size_t i = (start + k) % c->n_nodes;
            if (c->nodes[i].master == m && c->nodes[i].online && up(c->nodes[i].ro)) {
                cc->sent_node = (int)i;
                return c->nodes[i].ro;
            }
        }
    }
    cc->sent_node = m;
    return rw_of(c, m);
}

static void live_unlink(ccmd *cc)
{
    if (cc->prev)
        cc->prev->next = cc->next;
    else if (cc->c->live == cc)
        cc->c->live = cc->next;
    if (cc->next)
        cc->next->prev = cc->prev;
    cc->prev = cc->next = NULL;
}

static void finish(ccmd *cc, const redisReply *reply, int status)
{
    live_unlink(cc);
    if (cc->retry)
        event_free(cc->retry);
    sl_redis_cb cb = cc->cb;
    void *ud = cc->ud;
    free(cc);
    if (cb)
        cb(ud, reply, status);
}

static void on_reply(void *ud, const redisReply *reply, int status);

/* Sends cc where its slot lives now: SL_OK (on_reply follows), SL_EAGAIN
 * (nobody up to take it), or another error. */
static int send_cmd(ccmd *cc)
{
    sl_cluster *c = cc->c;
    sl_redis *to = target(c, cc);
    if (!up(to))
        return SL_EAGAIN;
    uint64_t now = sl_now_ms();
    if (now >= cc->deadline_ms)
        return SL_ETIMEDOUT;
    if (cc->ask_node >= 0) { /* ASKING holds for the next command on this connection */
        static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
        sl_redis_node_send(to, c->timeout_ms, NULL, NULL, asking, sizeof asking - 1);
    }
    int rc = sl_redis_node_send(to, (int)(cc->deadline_ms - now), on_reply, cc, cc->resp, cc->len);
    if (rc == SL_OK && cc->acked) /* on the node that takes the write, right behind it */
        sl_acked_send_wait(cc->acked, to);
    return rc;
}

static void on_retry(evutil_socket_t fd, short what, void *arg);

/* Waits a little (TRYAGAIN, CLUSTERDOWN, a node still connecting), within the deadline. */
static void backoff(ccmd *cc)
{
    uint64_t now = sl_now_ms();
    if (cc->c->freeing || now >= cc->deadline_ms ||
        (!cc->retry && !(cc->retry = evtimer_new(cc->c->base, on_retry, cc)))) {
        finish(cc, NULL, SL_ETIMEDOUT);
        return;
    }
    cc->backoff_ms = SL_MIN(cc->backoff_ms ? cc->backoff_ms * 2 : RETRY_MIN_MS, RETRY_MAX_MS);
    int ms = (int)SL_MIN((uint64_t)cc->backoff_ms, cc->deadline_ms - now);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(cc->retry, &tv);
    if (!cc->prev && cc->c->live != cc) { /* on the live list while it waits */
        cc->next = cc->c->live;
        if (cc->next)
            cc->next->prev = cc;
        cc->c->live = cc;
    }
}

static void resend(ccmd *cc)
{
    int rc = send_cmd(cc);
    if (rc == SL_EAGAIN) {
        want_refresh(cc->c);
        backoff(cc);
    } else if (rc != SL_OK) {
        finish(cc, NULL, rc == SL_ETIMEDOUT ? SL_ETIMEDOUT : SL_EIO);
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    ccmd *cc = arg;
    live_unlink(cc);
    resend(cc);
}

/* A redirect's node, added when new ("" host: the node that sent it). */
static int redirect_node(sl_cluster *c, const ccmd *cc, const sl_redirect *rd)
{
    const char *host = rd->host[0] || cc->sent_node < 0 ? rd->host : c->nodes[cc->sent_node].host;
    return add_node(c, host, rd->port);
}

/* Follows a cluster error reply; false when it is not one (the caller answers). */
static bool follow(ccmd *cc, const redisReply *reply)
{
    sl_cluster *c = cc->c;
    sl_redirect rd;
    sl_redirect_kind k = sl_cluster_parse_redirect(reply->str, reply->len, &rd);
    if (k == SL_REDIR_NONE ||
        ((k == SL_REDIR_MOVED || k == SL_REDIR_ASK) && ++cc->tries > MAX_REDIRECTS))
        return false; /* TRYAGAIN and CLUSTERDOWN: bounded by the deadline alone */
    if (k == SL_REDIR_MOVED || k == SL_REDIR_ASK) {
        int i = redirect_node(c, cc, &rd);
        if (i < 0)
            return false;
        if (k == SL_REDIR_MOVED) {
            c->moved++;
            if (c->slot[rd.slot] == SL_CLUSTER_NONE)
                c->covered++;
            c->slot[rd.slot] = (uint8_t)i; /* the slot lives there now */
            cc->slot = rd.slot;
            cc->ask_node = -1;
            want_refresh(c); /* a reshard moves many slots: learn them all */
        } else {
            c->ask++;
            cc->ask_node = i; /* this command only; the map stays */
        }
        resend(cc);
        return true;
    }
    if (k == SL_REDIR_TRYAGAIN)
        c->tryagain++;
    else {
        c->clusterdown++;
        want_refresh(c);
    }
    cc->ask_node = -1;
    backoff(cc);
    return true;
}

static void on_reply(void *ud, const redisReply *reply, int status)
{
    ccmd *cc = ud;
    if (cc->c->freeing) {
        finish(cc, NULL, SL_EIO);
        return;
    }
    if (status == SL_OK && reply && reply->type == REDIS_REPLY_ERROR && follow(cc, reply))
        return;
    if (status == SL_EIO)
        want_refresh(cc->c); /* the node went away: where do its slots live now? */
    finish(cc, reply, status);
}

/* The key a command is routed by: EVAL/EVALSHA's first key, else argv[1]. */
static void route_key(int argc, const char **argv, const size_t *argvlen, const char **key,
                      size_t *len)
{
    int at = argc > 1 ? 1 : -1;
    if (argc > 3 && (strcasecmp(argv[0], "EVALSHA") == 0 || strcasecmp(argv[0], "EVAL") == 0))
        at = argv[2][0] != '0' ? 3 : -1;
    *key = at >= 0 ? argv[at] : "";
    *len = at >= 0 ? (argvlen ? argvlen[at] : strlen(argv[at])) : 0;
}

static size_t digits(size_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* Writes "<c><v>\r\n" at p; returns the end. */
static char *resp_head(char *p, char c, size_t v)
{
    size_t n = digits(v);
    *p++ = c;
    for (size_t i = n; i-- > 0; v /= 10)
        p[i] = (char)('0' + v % 10);
    p += n;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* One allocation: the record and the command in RESP form (as hiredis would
 * format it), ready to be sent as often as redirects need. */
static ccmd *ccmd_new(sl_cluster *c, int argc, const char **argv, const size_t *argvlen)
{
    size_t len = 1 + digits((size_t)argc) + 2;
    for (int i = 0; i < argc; i++) {
        size_t n = argvlen ? argvlen[i] : strlen(argv[i]);
        len += 1 + digits(n) + 2 + n + 2;
    }
    ccmd *cc = malloc(sizeof(*cc) + len);
    if (!cc)
        return NULL;
    memset(cc, 0, sizeof(*cc));
    cc->c = c;
    cc->len = len;
    char *p = resp_head(cc->resp, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        size_t n = argvlen ? argvlen[i] : strlen(argv[i]);
        p = resp_head(p, '$', n);
        memcpy(p, argv[i], n);
        p += n;
        *p++ = '\r';
        *p++ = '\n';
    }
    cc->ask_node = cc->sent_node = -1;
    return cc;
}

static int submit(sl_cluster *c, const char *key, size_t keylen, int flags, int timeout_ms,
                  sl_redis_cb cb, void *ud, sl_acked *acked, int argc, const char **argv,
                  const size_t *argvlen)
{
    if (!c || c->freeing || argc < 1)
        return SL_EAGAIN;
    if (!key)
        route_key(argc, argv, argvlen, &key, &keylen);
    int slot = sl_cluster_slot(key, keylen);
    if (c->slot[slot] == SL_CLUSTER_NONE) {
        want_refresh(c);
        return SL_EAGAIN; /* fail fast, as with one Redis down */
    }
    ccmd *cc = ccmd_new(c, argc, argv, argvlen);
    if (!cc)
        return SL_ENOMEM;
    cc->cb = cb;
    cc->ud = ud;
    cc->slot = slot;
    cc->replica_ok = flags & SL_REDIS_REPLICA_OK;
    cc->acked = acked;
    cc->deadline_ms = sl_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : c->timeout_ms);
    int rc = send_cmd(cc);
    if (rc != SL_OK) {
        free(cc);
        want_refresh(c);
        return rc == SL_ENOMEM ? rc : SL_EAGAIN;
    }
    return SL_OK;
}

int sl_cluster_cmd(sl_cluster *c, const char *key, size_t keylen, int flags, int timeout_ms,
                   sl_redis_cb cb, void *ud, int argc, const char **argv, const size_t *argvlen)
{
    return submit(c, key, keylen, flags, timeout_ms, cb, ud, NULL, argc, argv, argvlen);
}

int sl_cluster_cmd_acked(sl_cluster *c, sl_acked *a, int timeout_ms, int argc, const char **argv,
                         const size_t *argvlen)
{
    return submit(c, NULL, 0, 0, timeout_ms, sl_acked_on_write, a, a, argc, argv, argvlen);
}

/* ---- the map: read, applied, refreshed ------------------------------------------------ */

static bool degraded(const sl_cluster *c)
{
    if (!c->have_map || c->covered < SL_CLUSTER_SLOTS)
        return true;
    for (size_t i = 0; i < c->n_nodes; i++) {
        if (c->nodes[i].slots && !up(c->nodes[i].rw))
            return true;
    }
    return false;
}

static void describe(sl_cluster *c)
{
    size_t masters = 0;
    for (size_t i = 0; i < c->n_nodes; i++)
        masters += c->nodes[i].slots > 0;
    snprintf(c->desc, sizeof c->desc, "cluster: %zu masters, %zu/%d slots (seed %s:%d)", masters,
             c->covered, SL_CLUSTER_SLOTS, c->nodes[0].host, c->nodes[0].port);
}

/* Takes a freshly read map: node records, the slot table, connections. */
static void apply(sl_cluster *c, const sl_cluster_map *m)
{
    int rt[SL_CLUSTER_MAX_NODES];
    for (size_t i = 0; i < m->n; i++)
        rt[i] = add_node(c, m->node[i].host, m->node[i].port);
    size_t was_slots[SL_CLUSTER_MAX_NODES];
    int was_master[SL_CLUSTER_MAX_NODES];
    for (size_t i = 0; i < c->n_nodes; i++) {
        was_slots[i] = c->nodes[i].slots;
        was_master[i] = c->nodes[i].master;
        c->nodes[i].slots = 0;
        c->nodes[i].master = -1;
    }
    c->covered = 0;
    for (int s = 0; s < SL_CLUSTER_SLOTS; s++) {
        int owner = m->slot[s] == SL_CLUSTER_NONE ? -1 : rt[m->slot[s]];
        c->slot[s] = owner < 0 ? SL_CLUSTER_NONE : (uint8_t)owner;
        if (owner >= 0) {
            c->nodes[owner].slots++;
            c->covered++;
        }
    }
    for (size_t i = 0; i < m->n; i++) {
        if (rt[i] < 0)
            continue;
        node *n = &c->nodes[rt[i]];
        n->online = m->node[i].online;
        n->master = m->node[i].master >= 0 ? rt[m->node[i].master] : -1;
        if (n->slots)
            rw_of(c, rt[i]);
        else if (n->master >= 0 && c->read_replicas && !n->ro)
            n->ro = sl_redis_new_node(c->base, n->host, n->port, c->password, c->timeout_ms, true,
                                      on_node_up, c);
    }
    for (size_t i = 0; i < c->n_nodes; i++) {
        if (c->have_map && c->nodes[i].slots && !was_slots[i] && was_master[i] >= 0) {
            c->failovers++;
            sl_log("info", "redis cluster: %s:%d promoted (serves %zu slots)", c->nodes[i].host,
                   c->nodes[i].port, c->nodes[i].slots);
        }
    }
    size_t masters = 0;
    for (size_t i = 0; i < c->n_nodes; i++)
        masters += c->nodes[i].slots > 0;
    if (!c->have_map || masters != c->map_masters || c->covered != c->map_covered)
        sl_log(c->covered == SL_CLUSTER_SLOTS ? "info" : "warn",
               "redis cluster: %zu masters serve %zu of %d slots", masters, c->covered,
               SL_CLUSTER_SLOTS);
    c->map_masters = masters;
    c->map_covered = c->covered;
    c->have_map = true;
    c->refreshes++;
    describe(c);
}

static void schedule(sl_cluster *c, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->refresh, &tv);
}

static void on_map(void *ud, const redisReply *reply, int status)
{
    sl_cluster *c = ud;
    c->refreshing = false;
    if (c->freeing)
        return;
    node *asked = &c->nodes[c->ask_next % c->n_nodes];
    int rc = SL_EIO;
    if (status == SL_OK && reply && reply->type == REDIS_REPLY_ERROR) {
        if (!c->use_slots && strcasestr(reply->str, "unknown subcommand")) {
            c->use_slots = true; /* before Redis 7: CLUSTER SLOTS */
            rc = SL_EAGAIN;
        } else if (sl_now_ms() - c->last_warn_ms > 10000) { /* not a cluster node, or broken */
            c->last_warn_ms = sl_now_ms();
            sl_warn("redis cluster: %s:%d cannot give the slot map: %s", asked->host, asked->port,
                    reply->str);
        }
    } else if (status == SL_OK && reply) {
        sl_cluster_map *m = malloc(sizeof(*m));
        rc = !m             ? SL_ENOMEM
             : c->use_slots ? sl_cluster_parse_slots(reply, asked->host, m)
                            : sl_cluster_parse_shards(reply, asked->host, m);
        if (rc == SL_OK && m->covered)
            apply(c, m);
        else if (rc == SL_OK)
            rc = SL_EINVAL; /* a node not yet in a cluster: ask another */
        free(m);
    }
    if (rc != SL_OK)
        c->ask_next++;
    bool soon = rc != SL_OK || c->again;
    c->again = false;
    c->soon = soon;
    schedule(c, soon ? REFRESH_GAP_MS : degraded(c) ? REFRESH_DEGRADED_MS : REFRESH_HEALTHY_MS);
}

/* Asks the next node that is up (masters first) for the map. */
static void refresh_now(sl_cluster *c)
{
    if (c->refreshing || c->freeing)
        return;
    c->last_refresh_ms = sl_now_ms();
    for (size_t k = 0; k < c->n_nodes; k++) {
        size_t i = (c->ask_next + k) % c->n_nodes;
        sl_redis *r = up(c->nodes[i].rw) ? c->nodes[i].rw : c->nodes[i].ro;
        if (!up(r))
            continue;
        c->ask_next = i;
        const char *shards[] = {"CLUSTER", "SHARDS"}, *slots[] = {"CLUSTER", "SLOTS"};
        if (sl_redis_cmd_timeout(r, SL_MAX(c->timeout_ms, 500), on_map, c, 2,
                                 c->use_slots ? slots : shards, NULL) == SL_OK) {
            c->refreshing = true;
            return;
        }
    }
    for (size_t i = 0; i < c->n_seeds; i++)
        rw_of(c, (int)i); /* nobody up: the seeds reconnect on their own backoff */
    c->soon = false;
    schedule(c, c->have_map ? REFRESH_DEGRADED_MS : REFRESH_GAP_MS);
}

static void on_refresh_timer(evutil_socket_t fd, short what, void *arg)
{
    SL_UNUSED(fd);
    SL_UNUSED(what);
    sl_cluster *c = arg;
    c->soon = false;
    refresh_now(c);
}

/* A refresh soon (at most one per REFRESH_GAP_MS): after errors and redirects. */
static void want_refresh(sl_cluster *c)
{
    if (c->freeing)
        return;
    if (c->refreshing) {
        c->again = true;
        return;
    }
    if (c->soon)
        return;
    uint64_t now = sl_now_ms(), next = c->last_refresh_ms + REFRESH_GAP_MS;
    c->soon = true;
    schedule(c, next > now ? (int)(next - now) : 0);
}

static int split_hostport(const char *s, char *host, size_t cap)
{
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= cap)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    int port = atoi(colon + 1);
    return port > 0 && port < 65536 ? port : -1;
}

sl_cluster *sl_cluster_new(struct event_base *base, char *const *seeds, size_t n,
                           const char *password, int timeout_ms, bool read_from_replicas)
{
    sl_cluster *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->base = base;
    c->password = password ? strdup(password) : NULL;
    c->timeout_ms = timeout_ms;
    c->read_replicas = read_from_replicas;
    memset(c->slot, SL_CLUSTER_NONE, sizeof c->slot);
    c->refresh = evtimer_new(base, on_refresh_timer, c);
    for (size_t i = 0; i < n; i++) {
        char host[128];
        int port = split_hostport(seeds[i], host, sizeof host);
        if (port > 0 && add_node(c, host, port) >= 0)
            rw_of(c, (int)c->n_nodes - 1);
    }
    c->n_seeds = c->n_nodes;
    if (!c->refresh || !c->n_nodes) {
        sl_cluster_free(c);
        return NULL;
    }
    snprintf(c->desc, sizeof c->desc, "cluster: no slot map yet (seed %s:%d)", c->nodes[0].host,
             c->nodes[0].port);
    return c; /* the first seed up asks for the map (on_node_up) */
}

void sl_cluster_free(sl_cluster *c)
{
    if (!c)
        return;
    c->freeing = true; /* the callbacks the frees below run answer SL_EIO, nothing more */
    for (size_t i = 0; i < c->n_nodes; i++) {
        sl_redis_free(c->nodes[i].rw);
        sl_redis_free(c->nodes[i].ro);
    }
    while (c->live)
        finish(c->live, NULL, SL_EIO);
    if (c->refresh)
        event_free(c->refresh);
    free(c->password);
    free(c);
}

sl_redis_state sl_cluster_state(const sl_cluster *c)
{
    bool connecting = false;
    for (size_t i = 0; i < c->n_nodes; i++) {
        sl_redis_state s = sl_redis_get_state(c->nodes[i].rw);
        if (c->have_map && c->nodes[i].slots && s == SL_REDIS_UP)
            return SL_REDIS_UP;
        connecting |= s == SL_REDIS_CONNECTING || (s == SL_REDIS_UP && !c->have_map);
    }
    return connecting ? SL_REDIS_CONNECTING : SL_REDIS_DOWN;
}

const char *sl_cluster_describe(const sl_cluster *c)
{
    return c->desc;
}

void sl_cluster_get_stats(const sl_cluster *c, sl_redis_cluster_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->nodes = c->n_nodes;
    out->slots_covered = c->covered;
    for (size_t i = 0; i < c->n_nodes; i++) {
        const node *n = &c->nodes[i];
        out->masters += n->slots > 0;
        out->masters_up += n->slots > 0 && up(n->rw);
        out->replicas += n->master >= 0;
        out->timeouts += sl_redis_timeouts(n->rw) + sl_redis_timeouts(n->ro);
        out->reconnects += sl_redis_reconnects(n->rw) + sl_redis_reconnects(n->ro);
    }
    out->moved = c->moved;
    out->ask = c->ask;
    out->tryagain = c->tryagain;
    out->clusterdown = c->clusterdown;
    out->refreshes = c->refreshes;
    out->failovers = c->failovers;
}

void sl_cluster_nodes_json(const sl_cluster *c, sl_buf *b)
{
    sl_buf_append_c(b, "[");
    for (size_t i = 0; i < c->n_nodes; i++) {
        const node *n = &c->nodes[i];
        const sl_redis *r = n->rw ? n->rw : n->ro;
        const char *role = n->slots ? "master" : n->master >= 0 ? "replica" : "unknown";
        char addr[160];
        snprintf(addr, sizeof addr, "%s:%d", n->host, n->port);
        sl_buf_append_c(b, i ? ",{\"address\":" : "{\"address\":");
        sl_buf_json_cstr(b, addr);
        sl_buf_printf(b, ",\"role\":\"%s\",\"state\":\"%s\",\"slots\":%zu", role,
                      r ? sl_redis_state_name(sl_redis_get_state(r)) : "idle", n->slots);
        if (n->master >= 0) {
            snprintf(addr, sizeof addr, "%s:%d", c->nodes[n->master].host,
                     c->nodes[n->master].port);
            sl_buf_append_c(b, ",\"of\":");
            sl_buf_json_cstr(b, addr);
        }
        sl_buf_append_c(b, "}");
    }
    sl_buf_append_c(b, "]");
}
