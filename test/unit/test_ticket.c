/* test_ticket.c — the SLA ticket model: good and bad tickets, RFC 3339 times,
 * the SLA states and the alert instants a store indexes. */
#include "sluice/ticket.h"
#include "t.h"

static const char YAML[] = "sla:\n"
                           "  at_risk_ratio: 0.25\n"
                           "  pause_statuses: [pending]\n"
                           "  targets:\n"
                           "    enterprise:\n"
                           "      critical: { response: 60, resolution: 240 }\n";

static sl_config *config(void)
{
    char err[256];
    sl_config *c = sl_config_load_string("t.yaml", YAML, sizeof YAML - 1, err, sizeof err);
    if (!c)
        printf("  config: %s\n", err);
    return c;
}

/* Parses json into a (which keeps it) and validates it as a ticket. */
static int parse(sl_arena *a, const char *json, sl_ticket *t, const char **why)
{
    sl_json *o;
    sl_json_error e;
    *why = "(not JSON)";
    if (sl_json_parse(a, json, strlen(json), NULL, &o, &e) != SL_OK)
        return -100;
    return sl_ticket_parse(o, t, why);
}

#define MIN_MS 60000LL

T_TEST(good_ticket_fields)
{
    sl_arena a;
    sl_arena_init(&a, NULL, 0, 0);
    sl_ticket t;
    const char *why = NULL;
    T_EQ_INT(
        parse(&a,
              "{\"id\":\"T-1\",\"subject\":\"down\",\"priority\":\"high\","
              "\"customer_tier\":\"enterprise\",\"status\":\"resolved\","
              "\"created_at\":\"1970-01-01T00:01:00Z\",\"updated_at\":\"1970-01-01T00:02:00Z\","
              "\"first_response_at\":\"1970-01-01T00:01:30.5Z\",\"resolved_at\":null,"
              "\"extra\":[1,2]}",
              &t, &why),
        SL_OK);
    T_CHECK(sl_str_eq_c(t.id, "T-1") && sl_str_eq_c(t.subject, "down"));
    T_CHECK(sl_str_eq_c(t.tier, "enterprise"));
    T_EQ_INT(t.priority, 1);
    T_EQ_INT(t.status, 2);
    T_EQ_INT(t.created_ms, MIN_MS);
    T_EQ_INT(t.updated_ms, 2 * MIN_MS);
    T_EQ_INT(t.first_response_ms, 90500);
    T_EQ_INT(t.resolved_ms, 0); /* null: absent */
    T_EQ_STR(sl_ticket_priority_name(t.priority), "high");
    sl_arena_free(&a);
}

T_TEST(subject_is_optional)
{
    sl_arena a;
    sl_arena_init(&a, NULL, 0, 0);
    sl_ticket t;
    const char *why;
    T_EQ_INT(
        parse(
            &a,
            "{\"id\":\"x\",\"priority\":\"low\",\"customer_tier\":\"s\",\"status\":\"open\","
            "\"created_at\":\"2026-01-01 00:00:00+01:00\",\"updated_at\":\"2026-01-01T00:00:00Z\"}",
            &t, &why),
        SL_OK);
    T_EQ_INT(t.subject.len, 0);
    T_EQ_INT(t.updated_ms - t.created_ms, 3600 * 1000); /* +01:00 is an hour earlier */
    sl_arena_free(&a);
}

/* Each bad ticket with the reason it must be refused for. */
#define OK_REST                                                                                    \
    "\"customer_tier\":\"s\",\"status\":\"open\",\"created_at\":\"2026-01-01T00:00:00Z\","         \
    "\"updated_at\":\"2026-01-01T00:00:00Z\""
static const struct {
    const char *json, *why;
} BAD[] = {
    {"[1]", "a ticket must be an object"},
    {"{\"priority\":\"low\"," OK_REST "}", "id must be a string of 1 to 256 bytes"},
    {"{\"id\":\"\",\"priority\":\"low\"," OK_REST "}", "id must be a string of 1 to 256 bytes"},
    {"{\"id\":7,\"priority\":\"low\"," OK_REST "}", "id must be a string of 1 to 256 bytes"},
    {"{\"id\":\"x\",\"priority\":\"urgent\"," OK_REST "}",
     "priority must be critical, high, medium or low"},
    {"{\"id\":\"x\",\"priority\":\"low\",\"customer_tier\":\"\",\"status\":\"open\"}",
     "customer_tier must be a non-empty string"},
    {"{\"id\":\"x\",\"priority\":\"low\",\"customer_tier\":\"s\",\"status\":\"done\"}",
     "status must be open, pending, resolved or closed"},
    {"{\"id\":\"x\",\"priority\":\"low\",\"subject\":3," OK_REST "}", "subject must be a string"},
    {"{\"id\":\"x\",\"priority\":\"low\",\"customer_tier\":\"s\",\"status\":\"open\"}",
     "created_at is required"},
    {"{\"id\":\"x\",\"priority\":\"low\",\"customer_tier\":\"s\",\"status\":\"open\","
     "\"created_at\":\"2026-01-01T00:00:00Z\"}",
     "updated_at is required"},
    {"{\"id\":\"x\",\"priority\":\"low\",\"customer_tier\":\"s\",\"status\":\"open\","
     "\"created_at\":\"yesterday\",\"updated_at\":\"2026-01-01T00:00:00Z\"}",
     "times must be RFC 3339 strings"},
    {"{\"id\":\"x\",\"priority\":\"low\",\"first_response_at\":1700000000," OK_REST "}",
     "times must be RFC 3339 strings"},
};

T_TEST(bad_tickets_and_their_reasons)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(BAD); i++) {
        sl_arena a;
        sl_arena_init(&a, NULL, 0, 0);
        sl_ticket t;
        const char *why = NULL;
        T_EQ_INT(parse(&a, BAD[i].json, &t, &why), SL_EINVAL);
        T_EQ_STR(why, BAD[i].why);
        sl_arena_free(&a);
    }
    char id[512];
    snprintf(id, sizeof id, "{\"id\":\"%0257d\",\"priority\":\"low\"," OK_REST "}", 0);
    sl_arena a;
    sl_arena_init(&a, NULL, 0, 0);
    sl_ticket t;
    const char *why;
    T_EQ_INT(parse(&a, id, &t, &why), SL_EINVAL); /* 257 bytes: one too many */
    T_EQ_STR(why, "id must be a string of 1 to 256 bytes");
    sl_arena_free(&a);
#undef OK_REST
}

T_TEST(rfc3339_forms)
{
    int64_t ms = -1;
    T_EQ_INT(sl_parse_rfc3339(SL_STR("1970-01-01T00:00:01.123456Z"), &ms), SL_OK);
    T_EQ_INT(ms, 1123); /* past milliseconds: dropped */
    T_EQ_INT(sl_parse_rfc3339(SL_STR("1970-01-01T00:00:01.5z"), &ms), SL_OK);
    T_EQ_INT(ms, 1500);
    T_EQ_INT(sl_parse_rfc3339(SL_STR("1970-01-01T01:00:00-01:30"), &ms), SL_OK);
    T_EQ_INT(ms, (3600 + 5400) * 1000LL);
    T_CHECK(sl_parse_rfc3339(SL_STR("1970-01-01T00:00:00+24:00"), &ms) != SL_OK);
    T_CHECK(sl_parse_rfc3339(SL_STR("1970-01-01T00:00:00+01:60"), &ms) != SL_OK);
    T_CHECK(sl_parse_rfc3339(SL_STR("1970-01-01T00:00:00Zjunk"), &ms) != SL_OK);
    T_CHECK(sl_parse_rfc3339(SL_STR("1970-01-01T00:00Z"), &ms) != SL_OK); /* no seconds */
    T_CHECK(sl_parse_rfc3339(SL_STR("1970-01-01T00:00:00+0100"), &ms) != SL_OK);
}

static sl_ticket open_ticket(void)
{
    sl_ticket t = {.id = SL_STR("t"), .tier = SL_STR("enterprise"), .priority = 0, .status = 0};
    t.created_ms = t.updated_ms = 1000 * MIN_MS;
    return t;
}

T_TEST(sla_states)
{
    sl_config *c = config();
    T_CHECK(c != NULL);
    if (!c)
        return;
    sl_ticket t = open_ticket();
    int64_t t0 = t.created_ms;
    sl_sla_view v = sl_sla_compute(c, &t, SL_SLA_RESPONSE, t0 + 10 * MIN_MS);
    T_EQ_INT(v.state, SL_SLA_ON_TRACK);
    T_EQ_INT(v.due_ms, t0 + 60 * MIN_MS);
    T_EQ_INT((int64_t)v.remaining_s, 50 * 60);
    T_EQ_INT(sl_sla_compute(c, &t, SL_SLA_RESPONSE, t0 + 45 * MIN_MS).state, SL_SLA_AT_RISK);
    T_EQ_INT(sl_sla_compute(c, &t, SL_SLA_RESPONSE, t0 + 60 * MIN_MS).state, SL_SLA_BREACHED);
    t.first_response_ms = t0 + 59 * MIN_MS;
    T_EQ_INT(sl_sla_compute(c, &t, SL_SLA_RESPONSE, t0 + 999 * MIN_MS).state, SL_SLA_MET);
    t.first_response_ms = t0 + 61 * MIN_MS; /* answered, but late */
    T_EQ_INT(sl_sla_compute(c, &t, SL_SLA_RESPONSE, t0 + 62 * MIN_MS).state, SL_SLA_BREACHED);
    t = open_ticket();
    t.status = 3; /* closed without resolved_at: resolved when last updated */
    t.updated_ms = t0 + 100 * MIN_MS;
    T_EQ_INT(sl_sla_compute(c, &t, SL_SLA_RESOLUTION, t0 + 999 * MIN_MS).state, SL_SLA_MET);
    t = open_ticket();
    t.status = 1; /* pending pauses the clock at updated_at */
    T_EQ_INT(sl_sla_compute(c, &t, SL_SLA_RESPONSE, t0 + 999 * MIN_MS).state, SL_SLA_ON_TRACK);
    t = open_ticket();
    t.priority = 3; /* no target for enterprise/low */
    T_EQ_INT(sl_sla_compute(c, &t, SL_SLA_RESPONSE, t0).state, SL_SLA_NO_TARGET);
    T_EQ_STR(sl_sla_state_name(SL_SLA_AT_RISK), "at_risk");
    T_CHECK(sl_sla_alertable(SL_SLA_BREACHED) && !sl_sla_alertable(SL_SLA_MET));
    sl_config_unref(c);
}

T_TEST(alert_marks)
{
    sl_config *c = config();
    T_CHECK(c != NULL);
    if (!c)
        return;
    sl_ticket t = open_ticket();
    int64_t t0 = t.created_ms;
    sl_sla_marks m = sl_sla_marks_of(c, &t);
    T_EQ_INT(m.due_ms[0], t0 + 60 * MIN_MS);
    T_EQ_INT(m.risk_ms[0], t0 + 45 * MIN_MS); /* a quarter of the target before */
    T_EQ_INT(m.due_ms[1], t0 + 240 * MIN_MS);
    T_EQ_INT(m.risk_ms[1], t0 + 180 * MIN_MS);
    t.first_response_ms = t0 + MIN_MS; /* answered: the response SLA cannot alert */
    m = sl_sla_marks_of(c, &t);
    T_CHECK(m.due_ms[0] == 0 && m.due_ms[1] != 0);
    t.status = 2; /* resolved: neither */
    m = sl_sla_marks_of(c, &t);
    T_CHECK(m.due_ms[0] == 0 && m.due_ms[1] == 0);
    t = open_ticket();
    t.status = 1; /* paused */
    m = sl_sla_marks_of(c, &t);
    T_CHECK(m.due_ms[0] == 0 && m.due_ms[1] == 0);
    sl_config_unref(c);
}

T_TEST(normalised_json_keeps_known_fields_byte_exact)
{
    sl_arena a;
    sl_arena_init(&a, NULL, 0, 0);
    sl_json *o;
    sl_json_error e;
    const char *in = "{\"zzz\":1,\"status\":\"open\",\"id\":\"a\\u0062\",\"subject\":null}";
    T_EQ_INT(sl_json_parse(&a, in, strlen(in), NULL, &o, &e), SL_OK);
    sl_buf b;
    sl_buf_init(&b, 0);
    sl_ticket_json(o, &b);
    sl_buf_append(&b, "", 1);
    T_EQ_STR(b.p, "{\"id\":\"a\\u0062\",\"subject\":null,\"status\":\"open\"}");
    sl_buf_free(&b);
    sl_arena_free(&a);
}

T_MAIN("ticket", good_ticket_fields, subject_is_optional, bad_tickets_and_their_reasons,
       rfc3339_forms, sla_states, alert_marks, normalised_json_keeps_known_fields_byte_exact)
