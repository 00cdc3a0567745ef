/* test_sink.c — the internal sink collects an answer for a callback; breakers. */
#include "sluice/breaker.h"
#include "sluice/sink.h"
#include "t.h"

static int got_status;
static char got_body[256];

static void done(void *ud, struct sl_req *r, int status, sl_str body)
{
    (void)r;
    *(int *)ud += 1;
    got_status = status;
    snprintf(got_body, sizeof got_body, "%.*s", (int)body.len, body.p);
}

T_TEST(internal_sink_collects)
{
    int calls = 0;
    sl_internal_sink s;
    sl_internal_sink_init(&s, 1024, done, &calls);
    s.base.ops->head(&s.base, NULL, 200, false);
    s.base.ops->data(&s.base, NULL, "{\"a\":", 5);
    s.base.ops->data(&s.base, NULL, "1}", 2);
    s.base.ops->end(&s.base, NULL);
    T_EQ_INT(calls, 1);
    T_EQ_INT(got_status, 200);
    T_EQ_STR(got_body, "{\"a\":1}");
    sl_internal_sink_free(&s);
}

T_TEST(internal_sink_bound)
{
    int calls = 0;
    sl_internal_sink s;
    sl_internal_sink_init(&s, 4, done, &calls);
    s.base.ops->head(&s.base, NULL, 200, false);
    s.base.ops->data(&s.base, NULL, "0123456789", 10);
    s.base.ops->end(&s.base, NULL);
    T_EQ_INT(got_status, 502); /* over the bound: unusable, never truncated silently */
    sl_internal_sink_free(&s);
}

T_TEST(breaker_cycle)
{
    sl_breaker_ticket t;
    uint64_t wait = 0;
    for (int i = 0; i < 3; i++) {
        T_CHECK(sl_breaker_admit("p", 0, &t, &wait));
        sl_breaker_report(&t, false, 3, 0);
    }
    T_EQ_INT(sl_breaker_state_of("p"), SL_BREAKER_HALF_OPEN); /* cooldown 0: half-open at once */
    T_CHECK(sl_breaker_admit("p", 0, &t, &wait));
    T_CHECK(t.probe);
    sl_breaker_ticket t2;
    T_CHECK(!sl_breaker_admit("p", 0, &t2, &wait)); /* one probe at a time */
    sl_breaker_report(&t, true, 3, 0);
    T_EQ_INT(sl_breaker_state_of("p"), SL_BREAKER_CLOSED);
    T_CHECK(sl_breaker_admit("p", 0, &t2, &wait));
}

T_MAIN("sink", internal_sink_collects, internal_sink_bound, breaker_cycle)
