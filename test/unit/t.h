/* t.h — the unit test harness: a dozen lines, no framework.
 *
 * A test file defines test functions with T_TEST(name) and lists them in
 * T_MAIN(...). Each test prints "PASS name" or "FAIL name: file:line: expr";
 * test/run.sh counts those lines. */
#ifndef SLUICE_T_H
#define SLUICE_T_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failed_now;

#define T_TEST(name) static void name(void)
#define T_CHECK(expr)                                                                              \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            printf("  check failed: %s:%d: %s\n", __FILE__, __LINE__, #expr);                      \
            t_failed_now = 1;                                                                      \
        }                                                                                          \
    } while (0)
#define T_EQ_INT(a, b)                                                                             \
    do {                                                                                           \
        long long t_a = (long long)(a), t_b = (long long)(b);                                      \
        if (t_a != t_b) {                                                                          \
            printf("  check failed: %s:%d: %s == %s (%lld vs %lld)\n", __FILE__, __LINE__, #a, #b, \
                   t_a, t_b);                                                                      \
            t_failed_now = 1;                                                                      \
        }                                                                                          \
    } while (0)
#define T_EQ_STR(a, b)                                                                             \
    do {                                                                                           \
        const char *t_a = (a), *t_b = (b);                                                         \
        if (!t_a || !t_b || strcmp(t_a, t_b) != 0) {                                               \
            printf("  check failed: %s:%d: %s == %s (\"%s\" vs \"%s\")\n", __FILE__, __LINE__, #a, \
                   #b, t_a ? t_a : "(null)", t_b ? t_b : "(null)");                                \
            t_failed_now = 1;                                                                      \
        }                                                                                          \
    } while (0)

typedef void (*t_fn)(void);
static int t_run(const char *file, const char *names, t_fn *fns, int n)
{
    int failed = 0;
    char buf[4096];
    setvbuf(stdout, NULL, _IOLBF, 0); /* a sanitizer exit must not eat our lines */
    snprintf(buf, sizeof buf, "%s", names);
    char *save = NULL, *tok = strtok_r(buf, ", ", &save);
    for (int i = 0; i < n; i++) {
        t_failed_now = 0;
        fns[i]();
        printf("%s %s.%s\n", t_failed_now ? "FAIL" : "PASS", file, tok ? tok : "?");
        failed += t_failed_now;
        tok = strtok_r(NULL, ", ", &save);
    }
    return failed ? 1 : 0;
}

#define T_MAIN(file, ...)                                                                          \
    int main(void)                                                                                 \
    {                                                                                              \
        t_fn fns[] = {__VA_ARGS__};                                                                \
        return t_run(file, #__VA_ARGS__, fns, (int)(sizeof fns / sizeof fns[0]));                  \
    }

#endif
