/* test_semantic.c — the semantic cache's guard, question, partition key,
 * vector entries, and the index behind vindex.h. */
#include <math.h>

#include "sluice/semantic.h"
#include "sluice/vindex.h"
#include "t.h"

static sl_arena A;

static const char *guard(const char *a, const char *b)
{
    return sl_sem_guard(sl_str_c(a), sl_str_c(b), NULL, 0);
}

T_TEST(guard_passes_paraphrases)
{
    T_CHECK(!guard("What's the capital of France?", "what is france's capital"));
    T_CHECK(!guard("How do I reset my password?", "how can i reset my password"));
    T_CHECK(!guard("Explain the \"retry\" setting", "what does the \"Retry\" setting do?"));
    T_CHECK(!guard("Is 3.5 bigger than 2?", "is 2 smaller than 3.5"));
    T_CHECK(!guard("What does AWS stand for?", "AWS stands for what?"));
}

T_TEST(guard_refuses_negations)
{
    T_EQ_STR(guard("What is the capital of France?", "What is not the capital of France?"),
             "negation");
    T_EQ_STR(guard("Should I use tabs?", "Shouldn't I use tabs?"), "negation");
    T_EQ_STR(guard("Do cats like water", "do cats never like water"), "negation");
    /* the same negation on both sides is no difference */
    T_CHECK(!guard("Why is it not working?", "why isnt it working"));
    /* a configured list replaces the built-in one */
    char *words[] = {"nicht"};
    T_EQ_STR(sl_sem_guard(SL_STR("Ist das gut"), SL_STR("Ist das nicht gut"), words, 1),
             "negation");
    T_CHECK(!sl_sem_guard(SL_STR("is it good"), SL_STR("is it not good"), words, 1));
}

T_TEST(guard_refuses_numbers)
{
    T_EQ_STR(guard("How many moons did Jupiter have in 2020?",
                   "How many moons did Jupiter have in 2021?"),
             "number");
    T_EQ_STR(guard("convert 1,000 dollars to euros", "convert 1,500 dollars to euros"), "number");
    T_EQ_STR(guard("give me three ideas", "give me five ideas"), "number");
    T_EQ_STR(guard("top 10 films", "top films"), "number");
}

T_TEST(guard_refuses_quoted_and_capitalised_terms)
{
    T_EQ_STR(guard("What does \"idle_ms\" do?", "What does \"total_ms\" do?"), "quoted term");
    T_EQ_STR(guard("what does \xe2\x80\x9c"
                   "foo\xe2\x80\x9d mean",
                   "what does bar mean"),
             "quoted term");
    T_EQ_STR(guard("What is the population of Paris?", "What is the population of Rome?"),
             "capitalised term");
    T_EQ_STR(guard("How do I deploy on GCP", "how do i deploy on AWS"), "capitalised term");
    /* a sentence's first word may be capitalised without being a name */
    T_CHECK(!guard("Tell me the time in Paris", "the time in paris, please"));
}

static sl_llm_req parse(const char *body)
{
    sl_llm_req r;
    sl_http_error e = {0};
    T_EQ_INT(sl_llm_req_parse(&A, SL_API_CHAT, body, strlen(body), NULL, &r, &e), 0);
    return r;
}

static sl_cache_key part(const char *body, const char *scope)
{
    sl_llm_req r = parse(body);
    sl_str q;
    int turn;
    sl_cache_key k = {0, 0};
    T_EQ_INT(sl_sem_question(&A, &r, &q, &turn), SL_OK);
    T_EQ_INT(sl_sem_partition(&r, sl_str_c(scope), SL_STR("emb"), turn, &k), SL_OK);
    return k;
}

static bool same(sl_cache_key a, sl_cache_key b)
{
    return a.hi == b.hi && a.lo == b.lo;
}

T_TEST(partition_is_everything_but_the_last_user_turn)
{
    const char *base = "{\"model\":\"m\",\"temperature\":0,\"messages\":[{\"role\":\"system\","
                       "\"content\":\"S\"},{\"role\":\"user\",\"content\":\"one\"}]}";
    sl_cache_key k = part(base, "t1");
    /* another question, key order, stream and user: the same partition */
    T_CHECK(same(k, part("{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},{\"content\":"
                         "\"two\",\"role\":\"user\"}],\"temperature\":0,\"model\":\"m\","
                         "\"stream\":true,\"user\":\"u\"}",
                         "t1")));
    /* tenant, model, system prompt, parameters, earlier turns: another */
    T_CHECK(!same(k, part(base, "t2")));
    T_CHECK(!same(k, part("{\"model\":\"m2\",\"temperature\":0,\"messages\":[{\"role\":"
                          "\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"one\"}]}",
                          "t1")));
    T_CHECK(!same(k, part("{\"model\":\"m\",\"temperature\":0,\"messages\":[{\"role\":"
                          "\"system\",\"content\":\"T\"},{\"role\":\"user\",\"content\":\"one\"}]}",
                          "t1")));
    T_CHECK(!same(k, part("{\"model\":\"m\",\"temperature\":1,\"messages\":[{\"role\":"
                          "\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"one\"}]}",
                          "t1")));
    T_CHECK(!same(k, part("{\"model\":\"m\",\"temperature\":0,\"messages\":[{\"role\":\"system\","
                          "\"content\":\"S\"},{\"role\":\"user\",\"content\":\"hi\"},{\"role\":"
                          "\"assistant\",\"content\":\"yo\"},{\"role\":\"user\",\"content\":"
                          "\"one\"}]}",
                          "t1")));
    /* a scope cannot spell another: lengths are part of the hash */
    T_CHECK(!same(part(base, "a|b"), part(base, "a")));
    sl_arena_free(&A);
}

T_TEST(question_and_eligibility)
{
    sl_str q;
    int turn;
    sl_llm_req r =
        parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
              "{\"role\":\"assistant\",\"content\":\"b\"},{\"role\":\"user\",\"content\":"
              "[{\"type\":\"text\",\"text\":\"c\"},{\"type\":\"text\",\"text\":\"d\"}]}]}");
    T_EQ_INT(sl_sem_question(&A, &r, &q, &turn), SL_OK);
    T_EQ_INT(turn, 2);
    T_CHECK(sl_str_eq_c(q, "c\nd"));
    static const char *const refused[] = {
        "{\"model\":\"m\",\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":"
        "\"tool\",\"tool_call_id\":\"x\",\"content\":\"42\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
        "\"image_url\":{\"url\":\"u\"}}]}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"}]}",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(refused); i++) {
        r = parse(refused[i]);
        T_EQ_INT(sl_sem_question(&A, &r, &q, &turn), SL_EINVAL);
    }
    sl_arena_free(&A);
}

T_TEST(vector_entry_round_trip_and_refusals)
{
    float v[4] = {3, 0, 4, 0}, out[SL_SEM_MAX_DIM];
    sl_sem_entry e = {.key = {1, 2},
                      .partition = {3, 4},
                      .stored_at_ms = 5,
                      .expires_at_ms = 6,
                      .text = SL_STR("question"),
                      .request_id = SL_STR("req-1"),
                      .dim = 4,
                      .vec = v};
    char buf[256];
    size_t n = sl_sem_entry_size(&e);
    sl_sem_entry_encode(&e, buf);
    sl_sem_entry d;
    T_EQ_INT(sl_sem_entry_decode(buf, n, &d, out), SL_OK);
    T_CHECK(d.key.hi == 1 && d.key.lo == 2 && d.partition.hi == 3 && d.partition.lo == 4);
    T_CHECK(d.expires_at_ms == 6 && sl_str_eq_c(d.text, "question") &&
            sl_str_eq_c(d.request_id, "req-1") && d.dim == 4);
    T_CHECK(fabsf(out[0] - 0.6f) < 1e-6 && fabsf(out[2] - 0.8f) < 1e-6);
    T_EQ_INT(sl_sem_entry_decode(buf, n - 1, &d, out), SL_EINVAL);
    buf[0] = 'X';
    T_EQ_INT(sl_sem_entry_decode(buf, n, &d, out), SL_EINVAL);
    float zero[4] = {0};
    e.vec = zero;
    sl_sem_entry_encode(&e, buf);
    T_EQ_INT(sl_sem_entry_decode(buf, n, &d, out), SL_EINVAL);
}

static void unit(float *v, size_t dim, unsigned seed)
{
    for (size_t i = 0; i < dim; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
    T_EQ_INT(sl_sem_normalise(v, (uint32_t)dim), SL_OK);
}

T_TEST(index_partitions_replace_delete_and_grow)
{
    enum { DIM = 32, N = 2000 };
    sl_vindex *ix = sl_vindex_new(DIM, N, 64);
    T_CHECK(ix != NULL);
    static float v[N][DIM];
    for (unsigned i = 0; i < N; i++) {
        unit(v[i], DIM, i + 1);
        T_EQ_INT(sl_vindex_put(ix, i, i % 2 ? 7 : 9, v[i]), 0); /* grows past 256 */
    }
    T_EQ_INT(sl_vindex_count(ix), N);
    uint32_t slot;
    float sim;
    T_EQ_INT(sl_vindex_nearest(ix, 7, v[11], &slot, &sim), 1);
    T_EQ_INT(slot, 11);
    T_CHECK(sim > 0.999f);
    /* the nearest of partition 9 is never a vector of partition 7 */
    T_EQ_INT(sl_vindex_nearest(ix, 9, v[11], &slot, &sim), 1);
    T_CHECK(slot % 2 == 0 && sim < 0.999f);
    T_EQ_INT(sl_vindex_nearest(ix, 5, v[11], &slot, &sim), 0);
    sl_vindex_del(ix, 11);
    T_EQ_INT(sl_vindex_nearest(ix, 7, v[11], &slot, &sim), 1);
    T_CHECK(slot != 11);
    T_EQ_INT(sl_vindex_put(ix, 11, 5, v[11]), 0); /* the slot again, another partition */
    T_EQ_INT(sl_vindex_nearest(ix, 5, v[11], &slot, &sim), 1);
    T_EQ_INT(slot, 11);
    T_EQ_INT(sl_vindex_put(ix, N, 5, v[0]), -1);
    T_CHECK(sl_vindex_memory(ix) > (size_t)N * DIM * 2); /* float16 vectors */
    T_EQ_INT(sl_vindex_graphs(ix), 0);                   /* two partitions of 1,000: scanned */
    sl_vindex_free(ix);
}

/* A partition past SL_VINDEX_GRAPH_AT gets a graph, filled while its backlog
 * is scanned beside it; every stored vector is still its own nearest, deleted
 * ones never answer, and the graph goes when the partition shrinks. */
T_TEST(index_big_partition_gets_a_graph_and_drops_it)
{
    enum { DIM = 32, N = SL_VINDEX_GRAPH_AT + 1000 };
    sl_vindex *ix = sl_vindex_new(DIM, N + 10, 64);
    static float v[N][DIM];
    for (unsigned i = 0; i < N; i++) {
        unit(v[i], DIM, i * 7 + 3);
        T_EQ_INT(sl_vindex_put(ix, i, 1, v[i]), 0);
    }
    T_EQ_INT(sl_vindex_graphs(ix), 1);
    uint32_t slot, want;
    float sim, wsim;
    int agree = 0;
    for (unsigned i = 0; i < N; i += 37) {
        T_EQ_INT(sl_vindex_nearest(ix, 1, v[i], &slot, &sim), 1);
        agree += slot == i && sim > 0.999f;
    }
    T_CHECK(agree >= (N / 37) * 95 / 100);
    T_CHECK(sl_vindex_step(ix, 10) > 0); /* the backlog: still scanned beside the graph */
    T_EQ_INT(sl_vindex_step(ix, N), 0);
    for (unsigned i = 0, agree2 = 0; i < N; i += 37) {
        T_EQ_INT(sl_vindex_nearest(ix, 1, v[i], &slot, &sim), 1);
        agree2 += slot == i;
        if (i + 37 >= N)
            T_CHECK(agree2 >= (N / 37) * 95 / 100);
    }
    for (unsigned i = 0; i < N; i += 2) /* deleted labels are reused by the next puts */
        sl_vindex_del(ix, i);
    for (unsigned i = 0; i < N; i += 4)
        T_EQ_INT(sl_vindex_put(ix, i, 1, v[i]), 0);
    T_EQ_INT(sl_vindex_nearest(ix, 1, v[2], &slot, &sim), 1);
    T_CHECK(slot % 4 != 2); /* never a deleted vector */
    T_EQ_INT(sl_vindex_nearest_exact(ix, 1, v[2], &want, &wsim), 1);
    T_CHECK(sim <= wsim + 1e-6f);
    for (unsigned i = 0; i < N; i++) /* down to 300: scanned again */
        if (i >= 400)
            sl_vindex_del(ix, i);
    T_EQ_INT(sl_vindex_graphs(ix), 0);
    T_EQ_INT(sl_vindex_nearest(ix, 1, v[4], &slot, &sim), 1);
    T_EQ_INT(slot, 4);
    T_EQ_INT(sl_vindex_nearest(ix, 1, v[6], &slot, &sim), 1);
    T_CHECK(slot != 6);
    sl_vindex_free(ix);
}

/* The graph's int8 kernel (AVX-512 VNNI, AVX2 or plain, whichever this
 * machine built) against a scalar reference: exact, at every length the
 * index uses (multiples of 32, with and without a half-width tail), and at
 * the extremes (-127 * -127 in every lane: no saturation). */
T_TEST(index_int8_dot_matches_a_scalar_reference)
{
    static const size_t lens[] = {32, 64, 96, 1536, 1568};
    static int8_t a[1568], b[1568];
    unsigned seed = 7;
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
        size_t n = lens[l];
        for (int round = 0; round < 3; round++) {
            long long want = 0;
            for (size_t i = 0; i < n; i++) {
                seed = seed * 1103515245u + 12345u;
                a[i] = (int8_t)((int)((seed >> 8) % 255) - 127);
                seed = seed * 1103515245u + 12345u;
                b[i] = (int8_t)((int)((seed >> 8) % 255) - 127);
                if (round == 1)
                    a[i] = -127, b[i] = (int8_t)(i % 2 ? 127 : -127);
                if (round == 2)
                    a[i] = b[i] = -127;
                want += (long long)a[i] * b[i];
            }
            T_EQ_INT(sl_vindex_dot_i8(a, b, n), want);
        }
    }
}

/* ... and the cosine the graph sees (both sides quantised with their own
 * scale) stays within 0.01 of the float one, also for a dimension that is
 * not a multiple of 32 (padded). */
T_TEST(index_int8_cosine_close_to_float)
{
    enum { DIM = 1536 };
    static float x[DIM], y[DIM];
    static const size_t dims[] = {1536, 1000, 32};
    for (size_t d = 0; d < 3; d++) {
        for (unsigned k = 0; k < 20; k++) {
            unit(x, dims[d], k * 2 + 1);
            unit(y, dims[d], k * 2 + 2);
            for (size_t i = 0; i < dims[d] && k % 2; i++) /* a near neighbour too */
                y[i] = x[i] + y[i] * 0.2f;
            if (k % 2)
                sl_sem_normalise(y, (uint32_t)dims[d]);
            double want = 0;
            for (size_t i = 0; i < dims[d]; i++)
                want += (double)x[i] * y[i];
            T_CHECK(fabs(sl_vindex_cosine_i8(x, y, dims[d]) - want) < 0.01);
        }
    }
}

/* Bulk loading (what bench/vindex.c does): nothing is graphed until
 * sl_vindex_build, which graphs every backlog with two threads; the result
 * answers like one built a put at a time, and puts keep working after. */
T_TEST(index_bulk_load_and_threaded_build)
{
    enum { DIM = 32, N = SL_VINDEX_GRAPH_AT + 1500 };
    sl_vindex *ix = sl_vindex_new(DIM, N + 10, 64);
    static float v[N][DIM];
    for (unsigned i = 0; i < N; i++) {
        unit(v[i], DIM, i * 11 + 5);
        T_EQ_INT(sl_vindex_load(ix, i, 3, v[i]), 0);
    }
    T_EQ_INT(sl_vindex_graphs(ix), 1);
    T_EQ_INT(sl_vindex_step(ix, 0), N); /* all of it waiting, scanned meanwhile */
    T_EQ_INT(sl_vindex_build(ix, 2), 0);
    T_EQ_INT(sl_vindex_step(ix, 0), 0);
    uint32_t slot;
    float sim;
    int agree = 0, asked = 0;
    for (unsigned i = 0; i < N; i += 13, asked++) {
        T_EQ_INT(sl_vindex_nearest(ix, 3, v[i], &slot, &sim), 1);
        agree += slot == i && sim > 0.999f;
    }
    T_CHECK(agree >= asked * 95 / 100);
    sl_vindex_del(ix, 5); /* a free label: the next build reuses it, one thread */
    T_EQ_INT(sl_vindex_load(ix, N, 3, v[5]), 0);
    T_EQ_INT(sl_vindex_put(ix, N + 1, 3, v[7]), 0);
    T_EQ_INT(sl_vindex_build(ix, 2), 0);
    T_EQ_INT(sl_vindex_step(ix, 0), 0);
    T_EQ_INT(sl_vindex_nearest(ix, 3, v[5], &slot, &sim), 1);
    T_EQ_INT(slot, N);
    sl_vindex_free(ix);
}

T_MAIN("semantic", index_int8_dot_matches_a_scalar_reference, index_int8_cosine_close_to_float,
       index_bulk_load_and_threaded_build, index_big_partition_gets_a_graph_and_drops_it,
       guard_passes_paraphrases, guard_refuses_negations, guard_refuses_numbers,
       guard_refuses_quoted_and_capitalised_terms, partition_is_everything_but_the_last_user_turn,
       question_and_eligibility, vector_entry_round_trip_and_refusals,
       index_partitions_replace_delete_and_grow)
