/* ticket.c — the SLA ticket model: validation, RFC 3339, SLA arithmetic; see ticket.h. */
#include "sluice/ticket.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const PRIORITIES[] = {"critical", "high", "medium", "low"};
static const char *const STATUSES[] = {"open", "pending", "resolved", "closed"};
static const char *const KIND_NAMES[] = {"response", "resolution"};

/* ---- RFC 3339 ------------------------------------------------------------------ */

/* ".250" after the seconds: milliseconds (digits past the third are dropped). */
static int64_t parse_fraction(const char **pp)
{
    const char *p = *pp;
    int64_t frac = 0;
    if (*p != '.')
        return 0;
    int digits = 0;
    for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits < 3)
            frac = frac * 10 + (*p - '0');
    }
    for (; digits < 3; digits++)
        frac *= 10;
    *pp = p;
    return frac;
}

/* "Z" or "+hh:mm" / "-hh:mm", which must end the string. */
static int parse_zone(const char *p, int64_t *offset_s)
{
    *offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int h = atoi(p + 1), m = atoi(p + 4);
        if (h > 23 || m > 59)
            return SL_EINVAL;
        *offset_s = (h * 3600 + m * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return SL_EINVAL;
    }
    return *p ? SL_EINVAL : SL_OK;
}

int sl_parse_rfc3339(sl_str s, int64_t *ms)
{
    char buf[64];
    if (s.len < 20 || s.len >= sizeof buf)
        return SL_EINVAL;
    memcpy(buf, s.p, s.len);
    buf[s.len] = '\0';
    struct tm tm = {0};
    const char *p = strptime(buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        p = strptime(buf, "%Y-%m-%d %H:%M:%S", &tm);
    if (!p)
        return SL_EINVAL;
    int64_t frac = parse_fraction(&p), offset_s;
    if (parse_zone(p, &offset_s) != SL_OK)
        return SL_EINVAL;
    *ms = ((int64_t)timegm(&tm) - offset_s) * 1000 + frac;
    return SL_OK;
}

/* ---- validation ------------------------------------------------------------------ */

static int index_of(sl_str v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        if (sl_str_eq_c(v, names[i]))
            return i;
    }
    return -1;
}

static int time_field(const sl_json *o, const char *name, bool required, int64_t *ms,
                      const char **why)
{
    const sl_json *v = sl_json_get(o, name);
    *ms = 0;
    if (!v || v->type == SL_JSON_NULL) {
        if (required) {
            *why = name[0] == 'c' ? "created_at is required" : "updated_at is required";
            return SL_EINVAL;
        }
        return SL_OK;
    }
    if (v->type != SL_JSON_STRING || sl_parse_rfc3339(v->str, ms) != SL_OK) {
        *why = "times must be RFC 3339 strings";
        return SL_EINVAL;
    }
    return SL_OK;
}

static bool is_string(const sl_json *v)
{
    return v && v->type == SL_JSON_STRING;
}

/* id, priority, customer_tier, status and subject; the times are checked apart. */
static int parse_fields(const sl_json *o, sl_ticket *t, const char **why)
{
    const sl_json *id = sl_json_get(o, "id"), *pr = sl_json_get(o, "priority");
    const sl_json *tier = sl_json_get(o, "customer_tier"), *st = sl_json_get(o, "status");
    const sl_json *subj = sl_json_get(o, "subject");
    if (!is_string(id) || id->str.len == 0 || id->str.len > 256)
        return *why = "id must be a string of 1 to 256 bytes", SL_EINVAL;
    t->id = id->str;
    if (!is_string(pr) || (t->priority = index_of(pr->str, PRIORITIES, 4)) < 0)
        return *why = "priority must be critical, high, medium or low", SL_EINVAL;
    if (!is_string(tier) || tier->str.len == 0 || tier->str.len > 128)
        return *why = "customer_tier must be a non-empty string", SL_EINVAL;
    t->tier = tier->str;
    if (!is_string(st) || (t->status = index_of(st->str, STATUSES, 4)) < 0)
        return *why = "status must be open, pending, resolved or closed", SL_EINVAL;
    if (subj && subj->type != SL_JSON_STRING && subj->type != SL_JSON_NULL)
        return *why = "subject must be a string", SL_EINVAL;
    t->subject = is_string(subj) ? subj->str : SL_STR("");
    return SL_OK;
}

int sl_ticket_parse(const sl_json *o, sl_ticket *t, const char **why)
{
    memset(t, 0, sizeof(*t));
    if (!o || o->type != SL_JSON_OBJECT)
        return *why = "a ticket must be an object", SL_EINVAL;
    if (parse_fields(o, t, why) != SL_OK ||
        time_field(o, "created_at", true, &t->created_ms, why) ||
        time_field(o, "updated_at", true, &t->updated_ms, why) ||
        time_field(o, "first_response_at", false, &t->first_response_ms, why) ||
        time_field(o, "resolved_at", false, &t->resolved_ms, why))
        return SL_EINVAL;
    return SL_OK;
}

bool sl_ticket_load(sl_arena *a, const char *json, size_t len, sl_ticket *t)
{
    sl_json *o;
    sl_json_error e;
    const char *why;
    return sl_json_parse(a, json, len, NULL, &o, &e) == SL_OK &&
           sl_ticket_parse(o, t, &why) == SL_OK;
}

void sl_ticket_json(const sl_json *o, sl_buf *b)
{
    static const char *const fields[] = {
        "id",         "subject",    "priority",          "customer_tier", "status",
        "created_at", "updated_at", "first_response_at", "resolved_at"};
    sl_buf_append_c(b, "{");
    bool first = true;
    for (size_t i = 0; i < SL_ARRAY_LEN(fields); i++) {
        const sl_json *v = sl_json_get(o, fields[i]);
        if (!v)
            continue;
        sl_buf_printf(b, "%s\"%s\":", first ? "" : ",", fields[i]);
        sl_buf_append_str(b, v->raw);
        first = false;
    }
    sl_buf_append_c(b, "}");
}

/* ---- SLA arithmetic ------------------------------------------------------------- */

const char *sl_sla_state_name(sl_sla_state s)
{
    static const char *const n[] = {"no_target", "on_track", "at_risk", "breached", "met"};
    return n[s];
}

const char *sl_sla_kind_name(int kind)
{
    return KIND_NAMES[kind];
}

const char *sl_ticket_priority_name(int prio)
{
    return PRIORITIES[prio];
}

bool sl_sla_alertable(sl_sla_state s)
{
    return s == SL_SLA_AT_RISK || s == SL_SLA_BREACHED;
}

static int target_minutes(const sl_config *c, const sl_ticket *t, int kind)
{
    for (size_t i = 0; i < c->sla.n_targets; i++) {
        const sl_sla_target *g = &c->sla.targets[i];
        if (sl_str_eq_c(t->tier, g->tier) && strcmp(g->priority, PRIORITIES[t->priority]) == 0)
            return kind == SL_SLA_RESPONSE ? g->response_min : g->resolution_min;
    }
    return 0;
}

static bool paused(const sl_config *c, const sl_ticket *t)
{
    for (size_t i = 0; i < c->sla.n_pause_statuses; i++) {
        if (strcmp(c->sla.pause_statuses[i], STATUSES[t->status]) == 0)
            return true;
    }
    return false;
}

/* When the SLA of kind was met; 0 while it is still open. */
static int64_t done_at(const sl_ticket *t, int kind)
{
    if (kind == SL_SLA_RESPONSE)
        return t->first_response_ms;
    if (!t->resolved_ms && t->status >= 2)
        return t->updated_ms; /* resolved or closed without resolved_at */
    return t->resolved_ms;
}

sl_sla_view sl_sla_compute(const sl_config *c, const sl_ticket *t, int kind, int64_t now)
{
    sl_sla_view v = {SL_SLA_NO_TARGET, 0, 0, 0};
    int minutes = target_minutes(c, t, kind);
    if (minutes <= 0)
        return v;
    /* Times are RFC 3339 instants (years 0000-9999); a clock outside that range
     * (found by fuzz_ticket: INT64_MIN) is clamped so the differences below
     * cannot overflow. */
    const int64_t max_ms = 253402300799999; /* 9999-12-31T23:59:59.999Z */
    now = now < 0 ? 0 : now > max_ms ? max_ms : now;
    int64_t target_ms = (int64_t)minutes * 60000;
    v.due_ms = t->created_ms + target_ms;
    int64_t done = done_at(t, kind);
    if (paused(c, t) && !done)
        now = t->updated_ms; /* the clock stopped when it was paused */
    int64_t at = done ? done : now;
    v.remaining_s = (double)(v.due_ms - at) / 1000.0;
    v.remaining_ratio = (double)(v.due_ms - at) / (double)target_ms;
    if (done)
        v.state = done <= v.due_ms ? SL_SLA_MET : SL_SLA_BREACHED;
    else if (at >= v.due_ms)
        v.state = SL_SLA_BREACHED;
    else if (v.remaining_ratio <= c->sla.at_risk_ratio)
        v.state = SL_SLA_AT_RISK;
    else
        v.state = SL_SLA_ON_TRACK;
    return v;
}

sl_sla_marks sl_sla_marks_of(const sl_config *c, const sl_ticket *t)
{
    sl_sla_marks m = {{0, 0}, {0, 0}};
    for (int kind = 0; kind < 2; kind++) {
        int minutes = target_minutes(c, t, kind);
        bool closed = kind == SL_SLA_RESOLUTION && t->status >= 2;
        if (minutes <= 0 || done_at(t, kind) || closed || paused(c, t))
            continue;
        int64_t target = (int64_t)minutes * 60000;
        m.due_ms[kind] = t->created_ms + target;
        m.risk_ms[kind] = m.due_ms[kind] - (int64_t)llround(c->sla.at_risk_ratio * (double)target);
    }
    return m;
}
