/* test_kb.c — BM25 retrieval over the sample knowledge base; SLA arithmetic. */
#include "sluice/sla.h"
#include "sluice/triage.h"
#include "t.h"

T_TEST(ranks_relevant_document_first)
{
    sl_kb *kb = sl_kb_load("conf/kb");
    T_EQ_INT(sl_kb_size(kb), 3);
    sl_kb_hit hits[3];
    size_t n = sl_kb_search(kb, SL_STR("I was charged twice, please refund the duplicate charge"),
                            3, hits);
    T_CHECK(n >= 1);
    if (n)
        T_EQ_STR(hits[0].title, "Refunds and billing disputes");
    T_EQ_INT(sl_kb_search(kb, SL_STR("zebra quantum"), 3, hits),
             0); /* nothing shared: nothing returned */
    n = sl_kb_search(kb, SL_STR("429 rate limit"), 1, hits);
    T_CHECK(n == 1 && strstr(hits[0].path, "api-rate-limits.md"));
    sl_kb_free(kb);
    sl_kb *none = sl_kb_load("/nonexistent/folder");
    T_EQ_INT(sl_kb_size(none), 0);
    sl_kb_free(none);
}

T_TEST(rfc3339)
{
    int64_t ms;
    T_EQ_INT(sl_parse_rfc3339(SL_STR("1970-01-01T00:00:01Z"), &ms), 0);
    T_EQ_INT(ms, 1000);
    T_EQ_INT(sl_parse_rfc3339(SL_STR("1970-01-01T01:00:00.250+01:00"), &ms), 0);
    T_EQ_INT(ms, 250);
    T_CHECK(sl_parse_rfc3339(SL_STR("yesterday"), &ms) != 0);
    T_CHECK(sl_parse_rfc3339(SL_STR("1970-01-01T00:00:01"), &ms) != 0); /* no zone */
}

T_MAIN("kb", ranks_relevant_document_first, rfc3339)
