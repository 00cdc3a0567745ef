/* test_pipeline.c — the driver with fake stages: order, contexts, parking and
 * resuming, aborts, observers, pricing before the reverse pass, the one
 * finish, wiring (init/fini) and the magic-number check. */
#include <event2/event.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sluice/pipeline.h"
#include "t.h"

static char trace[1024];
static void note(const char *what)
{
    size_t n = strlen(trace);
    snprintf(trace + n, sizeof trace - n, "%s%s", n ? " " : "", what);
}

/* ---- a sink that records ------------------------------------------------- */

static int sunk_status;
static char sunk_body[512];
static int sink_ends;

static void rec_head(sl_sink *s, sl_req *r, int status, bool sse)
{
    SL_UNUSED(s), SL_UNUSED(r), SL_UNUSED(sse);
    sunk_status = status;
    note("head");
}
static void rec_data(sl_sink *s, sl_req *r, const char *p, size_t n)
{
    SL_UNUSED(s), SL_UNUSED(r);
    size_t used = strlen(sunk_body);
    snprintf(sunk_body + used, sizeof sunk_body - used, "%.*s", (int)n, p);
}
static void rec_end(sl_sink *s, sl_req *r)
{
    SL_UNUSED(s), SL_UNUSED(r);
    sink_ends++;
    note("end");
}
static const sl_sink_ops rec_ops = {.head = rec_head, .data = rec_data, .end = rec_end};
static sl_sink rec_sink = {.ops = &rec_ops};

/* ---- observers ------------------------------------------------------------- */

static int observed;
static void obs_one(const sl_req *r)
{
    SL_UNUSED(r);
    observed++;
    note("obs1");
}
static void obs_two(const sl_req *r)
{
    SL_UNUSED(r);
    note("obs2");
}
static const sl_observer observer_one = {"one", obs_one};
static const sl_observer observer_two = {"two", obs_two};
static const sl_observer *const observers[] = {&observer_one, &observer_two};

/* ---- fake stages ------------------------------------------------------------ */

typedef struct fake_ctx {
    uint32_t mark;
    int seen;
} fake_ctx;

static const sl_env *init_env;
static void *ctx_seen[3];
static bool ctx_was_zero[3];
static double cost_seen_back = -1;
static int status_seen_back;

/* Stage A: goes on; checks its context on the way back. */
static sl_step a_request(sl_req *r, void *ctx)
{
    SL_UNUSED(r);
    fake_ctx *c = ctx;
    ctx_seen[0] = c;
    ctx_was_zero[0] = c && c->mark == 0 && c->seen == 0;
    c->mark = 0xA;
    note("A+");
    return SL_NEXT;
}
static void a_response(sl_req *r, void *ctx)
{
    SL_UNUSED(r);
    note(ctx == ctx_seen[0] && ((fake_ctx *)ctx)->mark == 0xA ? "A-" : "A-badctx");
}

/* Stage B: no context; sees the price and the status on the way back. */
static sl_step b_request(sl_req *r, void *ctx)
{
    SL_UNUSED(r);
    ctx_seen[1] = ctx;
    note("B+");
    return SL_NEXT;
}
static void b_response(sl_req *r, void *ctx)
{
    SL_UNUSED(ctx);
    cost_seen_back = r->cost_usd;
    status_seen_back = r->status;
    note("B-");
}

/* Stage C: answers 200 with usage. */
static sl_step c_request(sl_req *r, void *ctx)
{
    fake_ctx *c = ctx;
    ctx_seen[2] = c;
    ctx_was_zero[2] = c->mark == 0;
    note("C+");
    r->status = 200;
    r->prompt_tokens = 3;
    r->completion_tokens = 2;
    sl_buf_append_c(&r->body_out, "{\"ok\":true}");
    sl_req_finish(r);
    return SL_DONE;
}
static void c_response(sl_req *r, void *ctx)
{
    SL_UNUSED(r), SL_UNUSED(ctx);
    note("C-");
}

/* Stage BIG: writes an answer larger than its bound, ignoring what the appends say. */
static sl_step big_request(sl_req *r, void *ctx)
{
    SL_UNUSED(ctx);
    note("BIG+");
    r->body_out.max = 8;
    sl_buf_append_c(&r->body_out, "{\"choices\":");
    sl_buf_append_c(&r->body_out, "[]}"); /* would fit, must not land after the hole */
    r->status = 200;
    sl_req_finish(r);
    return SL_DONE;
}
static const sl_stage stage_big = {.name = "big", .on_request = big_request};

static int inits, finis;
static int a_init(const sl_env *env)
{
    init_env = env;
    inits++;
    note("initA");
    return SL_OK;
}
static void a_fini(void)
{
    finis++;
    note("finiA");
}
static int b_init(const sl_env *env)
{
    SL_UNUSED(env);
    note("initB");
    return SL_OK;
}
static void b_fini(void)
{
    note("finiB");
}
static int failing_init(const sl_env *env)
{
    SL_UNUSED(env);
    note("initX");
    return SL_EINVAL;
}

static const sl_stage stage_a = {.name = "a",
                                 .ctx_size = sizeof(fake_ctx),
                                 .init = a_init,
                                 .fini = a_fini,
                                 .on_request = a_request,
                                 .on_response = a_response};
static const sl_stage stage_b = {.name = "b",
                                 .init = b_init,
                                 .fini = b_fini,
                                 .on_request = b_request,
                                 .on_response = b_response};
static const sl_stage stage_c = {
    .name = "c", .ctx_size = sizeof(fake_ctx), .on_request = c_request, .on_response = c_response};

/* Stage P: parks; resumes itself from the loop when asked, else waits for an abort. */
static bool p_resume_self;
static void *p_ctx_abort;
static void *p_ctx;
static sl_step p_request(sl_req *r, void *ctx)
{
    p_ctx = ctx;
    note("P+");
    if (p_resume_self)
        sl_pipeline_resume(r);
    return SL_WAIT;
}
static void p_abort(sl_req *r, void *ctx)
{
    p_ctx_abort = ctx;
    note("P!");
    sl_req_client_closed(r);
    sl_req_finish(r);
}
static const sl_stage stage_p = {
    .name = "p", .ctx_size = 16, .on_request = p_request, .on_abort = p_abort};
static const sl_stage stage_q = {.name = "q", .ctx_size = 16, .on_request = p_request};

/* ---- helpers -------------------------------------------------------------- */

static struct event_base *base;
static sl_config *conf;
static const sl_env env = {0}; /* embedded: no stores at all */

static void reset(void)
{
    trace[0] = sunk_body[0] = '\0';
    sunk_status = sink_ends = observed = 0;
    memset(ctx_seen, 0, sizeof ctx_seen);
    memset(ctx_was_zero, 0, sizeof ctx_was_zero);
    cost_seen_back = -1;
    status_seen_back = 0;
    p_resume_self = false;
    p_ctx = p_ctx_abort = NULL;
}

static void wire(const sl_stage *const *stages, size_t n)
{
    if (!base)
        base = event_base_new();
    if (!conf) {
        static const char yaml[] = "prices:\n  m1: { input: 1000000, output: 2000000 }\n";
        char err[256];
        conf = sl_config_load_string("t.yaml", yaml, strlen(yaml), err, sizeof err);
    }
    T_EQ_INT(sl_pipeline_init_with(&env, stages, n, observers, SL_ARRAY_LEN(observers)), SL_OK);
    reset();
}

/* A new LLM request with an extra reference, so the test may look at it after it finished. */
static sl_req *new_llm(void)
{
    sl_req *r = sl_req_new(base, conf);
    r->sink = &rec_sink;
    r->is_llm = true;
    r->llm.api = SL_API_CHAT;
    r->llm.model = SL_STR("m1");
    sl_req_ref(r);
    return r;
}

/* ---- tests ---------------------------------------------------------------- */

T_TEST(stages_run_in_order_and_back_in_reverse_with_their_own_context)
{
    const sl_stage *const stages[] = {&stage_a, &stage_b, &stage_c};
    wire(stages, 3);
    sl_req *r = new_llm();
    sl_pipeline_start(r);
    T_EQ_STR(trace, "A+ B+ C+ C- B- A- head end obs1 obs2");
    T_CHECK(ctx_seen[0] != NULL && ctx_seen[2] != NULL && ctx_seen[0] != ctx_seen[2]);
    T_CHECK(ctx_was_zero[0] && ctx_was_zero[2]);
    T_CHECK(ctx_seen[1] == NULL); /* ctx_size 0 */
    T_CHECK(r->stage_ctx[0] == ctx_seen[0] && r->stage_ctx[2] == ctx_seen[2]);
    T_CHECK(sl_pipeline_ctx(r, &stage_a) == ctx_seen[0]);
    T_CHECK(sl_pipeline_ctx(r, &stage_p) == NULL);
    T_EQ_INT(sunk_status, 200);
    T_EQ_STR(sunk_body, "{\"ok\":true}");
    T_EQ_INT(observed, 1);
    sl_req_release(r);
}

T_TEST(the_answer_is_priced_before_the_reverse_pass)
{
    const sl_stage *const stages[] = {&stage_a, &stage_b, &stage_c};
    wire(stages, 3);
    sl_req *r = new_llm();
    sl_pipeline_start(r);
    /* 3 prompt tokens at $1 each, 2 completion tokens at $2 each */
    T_CHECK(cost_seen_back > 6.99 && cost_seen_back < 7.01);
    T_EQ_STR(sl_req_header_get(r, "x-sluice-cost-usd"), "7.00000000");
    sl_req_release(r);
}

T_TEST(a_parked_stage_resumes_from_the_loop_never_inline)
{
    const sl_stage *const stages[] = {&stage_a, &stage_q, &stage_c};
    wire(stages, 3);
    p_resume_self = true;
    sl_req *r = new_llm();
    sl_pipeline_start(r);
    T_EQ_STR(trace, "A+ P+"); /* resume only queued an event */
    event_base_loop(base, EVLOOP_NONBLOCK);
    T_EQ_STR(trace, "A+ P+ C+ C- A- head end obs1 obs2");
    T_EQ_INT(observed, 1);
    sl_req_release(r);
}

T_TEST(an_abort_goes_to_the_parked_stage_with_its_context)
{
    const sl_stage *const stages[] = {&stage_a, &stage_p, &stage_c};
    wire(stages, 3);
    sl_req *r = new_llm();
    sl_pipeline_start(r);
    T_EQ_STR(trace, "A+ P+");
    sl_pipeline_abort(r);
    T_CHECK(p_ctx != NULL && p_ctx_abort == p_ctx);
    T_EQ_STR(trace, "A+ P+ P! A- head end obs1 obs2");
    T_EQ_INT(sunk_status, 499);
    T_EQ_STR(r->error, "client closed");
    sl_pipeline_abort(r); /* a second hang-up changes nothing */
    T_EQ_INT(observed, 1);
    sl_req_release(r);
}

T_TEST(a_stage_without_on_abort_gets_499_at_its_next_turn)
{
    const sl_stage *const stages[] = {&stage_a, &stage_q, &stage_c};
    wire(stages, 3);
    sl_req *r = new_llm();
    sl_pipeline_start(r);
    sl_pipeline_abort(r);
    T_EQ_STR(trace, "A+ P+"); /* nobody to tell yet */
    sl_pipeline_resume(r);
    event_base_loop(base, EVLOOP_NONBLOCK);
    T_EQ_STR(trace, "A+ P+ A- head end obs1 obs2"); /* C never ran */
    T_EQ_INT(sunk_status, 499);
    sl_req_release(r);
}

T_TEST(finish_is_the_one_exit_and_runs_once)
{
    const sl_stage *const stages[] = {&stage_a, &stage_b, &stage_c};
    wire(stages, 3);
    sl_req *r = sl_req_new(base, conf); /* an operational answer: no stages */
    r->sink = &rec_sink;
    sl_req_ref(r);
    r->status = 200;
    sl_buf_append_c(&r->body_out, "{\"status\":\"live\"}");
    sl_req_finish(r);
    sl_req_finish(r);
    T_EQ_STR(trace, "head end obs1 obs2");
    T_EQ_INT(sink_ends, 1);
    T_EQ_INT(observed, 1);
    T_CHECK(sl_req_header_get(r, "x-sluice-cost-usd") == NULL); /* not an LLM call: not priced */
    sl_req_release(r);
}

T_TEST(a_body_that_could_not_be_written_becomes_one_500)
{
    const sl_stage *const stages[] = {&stage_a, &stage_b, &stage_big};
    wire(stages, 3);
    sl_req *r = new_llm();
    sl_pipeline_start(r);
    T_EQ_INT(sunk_status, 500);
    T_EQ_INT(status_seen_back, 500); /* the hooks (a cache) never see the broken 200 */
    T_CHECK(cost_seen_back == 0);
    T_CHECK(strstr(sunk_body, "response_too_large") != NULL);
    T_CHECK(strstr(sunk_body, "choices") == NULL);
    sl_req_release(r);
}

T_TEST(no_answer_from_any_stage_is_a_500)
{
    const sl_stage *const stages[] = {&stage_a, &stage_b};
    wire(stages, 2);
    sl_req *r = new_llm();
    sl_pipeline_start(r);
    T_EQ_STR(trace, "A+ B+ B- A- head end obs1 obs2");
    T_EQ_INT(sunk_status, 500);
    T_EQ_INT(status_seen_back, 500);
    T_CHECK(strstr(sunk_body, "no_answer") != NULL);
    sl_req_release(r);
}

T_TEST(init_and_fini_wire_and_rewire_in_order)
{
    const sl_stage *const stages[] = {&stage_a, &stage_b, &stage_c};
    wire(stages, 3);
    T_CHECK(init_env == sl_pipeline_env());
    T_CHECK(sl_pipeline_env()->redis == NULL && sl_pipeline_env()->l1 == NULL);
    sl_env other = {.base = base};
    T_EQ_INT(sl_pipeline_init_with(&other, stages, 3, observers, 2), SL_OK);
    T_EQ_STR(trace, "finiB finiA initA initB");
    T_CHECK(sl_pipeline_env()->base == base);
    sl_req *r = new_llm();
    sl_pipeline_start(r);
    T_CHECK(r->env == sl_pipeline_env());
    sl_req_release(r);
    const sl_stage failing = {.name = "x", .init = failing_init, .on_request = b_request};
    const sl_stage *const bad[] = {&stage_a, &stage_b, &failing};
    trace[0] = '\0';
    T_EQ_INT(sl_pipeline_init_with(&env, bad, 3, observers, 2), SL_EINVAL);
    T_EQ_STR(trace, "finiB finiA initA initB initX finiB finiA");
    sl_pipeline_fini(); /* nothing left to undo */
    T_EQ_STR(trace, "finiB finiA initA initB initX finiB finiA");
}

T_TEST(a_released_request_stops_the_driver)
{
    const sl_stage *const stages[] = {&stage_a, &stage_b, &stage_c};
    wire(stages, 3);
    sl_req *r = sl_req_new(base, conf);
    r->sink = &rec_sink;
    sl_req_release(r); /* back in the pool, magic cleared */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(2); /* the child's complaint is expected */
        sl_req_finish(r);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    T_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

static void cleanup(void)
{
    sl_pipeline_fini();
    sl_config_unref(conf);
    event_base_free(base);
    sl_req_pool_drain();
}

T_TEST(zz_cleanup)
{
    cleanup();
}

T_MAIN("pipeline", stages_run_in_order_and_back_in_reverse_with_their_own_context,
       the_answer_is_priced_before_the_reverse_pass,
       a_parked_stage_resumes_from_the_loop_never_inline,
       an_abort_goes_to_the_parked_stage_with_its_context,
       a_stage_without_on_abort_gets_499_at_its_next_turn, finish_is_the_one_exit_and_runs_once,
       a_body_that_could_not_be_written_becomes_one_500, no_answer_from_any_stage_is_a_500,
       init_and_fini_wire_and_rewire_in_order, a_released_request_stops_the_driver, zz_cleanup)
