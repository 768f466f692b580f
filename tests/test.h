/*
 * A minimal test harness shared by every test program.
 *
 *     TEST(election_timeout_starts_pre_vote) { ... CHECK(x); CHECK_EQ(a, b); }
 *     TEST_MAIN(TEST_REF(election_timeout_starts_pre_vote), ...)
 *
 * A failed check prints file:line and ends the current test. Each program prints one
 * closing line "N passed, N failed" and exits non-zero if anything failed. A name given
 * on the command line runs only the tests whose names contain it.
 */
#ifndef RAFTKV_TEST_H
#define RAFTKV_TEST_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct test_case {
    const char *name;
    void (*fn)(bool *failed);
};

#define TEST(name) static void test_##name(bool *test_failed_)
#define TEST_REF(name)                                                                             \
    {                                                                                              \
#name, test_##name                                                                         \
    }

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            *test_failed_ = true;                                                                  \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                           \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: %s == %s failed: %" PRIu64 " != %" PRIu64 "\n", __FILE__,      \
                    __LINE__, #a, #b, a_, b_);                                                     \
            *test_failed_ = true;                                                                  \
            return;                                                                                \
        }                                                                                          \
    } while (0)

static inline int test_run_all(const struct test_case *cases, size_t n, int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (argc > 1 && !strstr(cases[i].name, argv[1]))
            continue;
        bool f = false;
        cases[i].fn(&f);
        printf("%-60s %s\n", cases[i].name, f ? "FAIL" : "ok");
        fflush(stdout);
        f ? failed++ : passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#define TEST_MAIN(...)                                                                             \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        static const struct test_case cases_[] = {__VA_ARGS__};                                    \
        return test_run_all(cases_, sizeof cases_ / sizeof cases_[0], argc, argv);                 \
    }

#endif
