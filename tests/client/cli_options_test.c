/* What raft-kv and raft-bench parse alike (src/cli): numbers, durations, endpoint lists. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_options.h"
#include "test.h"

TEST(integers_are_decimal_within_their_bounds)
{
    uint64_t v = 7;
    CHECK(rk_cli_parse_u64("18446744073709551615", 0, UINT64_MAX, &v));
    CHECK(v == UINT64_MAX);
    CHECK(!rk_cli_parse_u64("18446744073709551616", 0, UINT64_MAX, &v));
    CHECK(!rk_cli_parse_u64("-1", 0, UINT64_MAX, &v));
    CHECK(!rk_cli_parse_u64("0", 1, 10, &v));
    CHECK(!rk_cli_parse_u64("11", 1, 10, &v));
    CHECK(!rk_cli_parse_u64("5ms", 1, 10, &v));
    CHECK(!rk_cli_parse_u64("", 1, 10, &v));
    CHECK(!rk_cli_parse_u64(NULL, 1, 10, &v));
    CHECK(v == UINT64_MAX);
    unsigned u = 0;
    CHECK(rk_cli_parse_uint("10", 1, 10, &u));
    CHECK_EQ(u, 10);
    CHECK(!rk_cli_parse_uint("4294967296", 0, 0xffffffffu, &u));
}

TEST(durations_are_seconds_with_an_optional_unit)
{
    static const struct {
        const char *text;
        double seconds;
    } good[] = {{"10", 10}, {"2.5s", 2.5}, {"500ms", 0.5}, {"1m", 60}, {"0", 0}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        double s = -1;
        CHECK(rk_cli_parse_seconds(good[i].text, &s));
        CHECK(s == good[i].seconds);
    }
    static const char *const bad[] = {"", "-1", "ms", "5h", "1e999", "nan", "2 s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double s = -1;
        CHECK(!rk_cli_parse_seconds(bad[i], &s));
        CHECK(s == -1);
    }
    CHECK(!rk_cli_parse_seconds(NULL, &(double){0}));
}

TEST(endpoints_are_split_at_commas)
{
    struct rk_cli_endpoints e;
    CHECK_EQ(rk_cli_endpoints_split(&e, "tcp://a:1,,tcp://b:2,"), 0);
    CHECK_EQ(e.n, 2);
    CHECK(!strcmp(e.urls[0], "tcp://a:1") && !strcmp(e.urls[1], "tcp://b:2"));
    rk_cli_endpoints_free(&e);
    CHECK_EQ(rk_cli_endpoints_split(&e, ",,"), EINVAL);
    rk_cli_endpoints_free(&e);
}

TEST(without_a_list_the_environment_then_the_default_names_the_endpoints)
{
    struct rk_cli_endpoints e;
    CHECK_EQ(setenv("RAFTKV_ENDPOINTS", "tcp://env:1,tcp://env:2", 1), 0);
    CHECK_EQ(rk_cli_endpoints_split(&e, NULL), 0);
    CHECK_EQ(e.n, 2);
    CHECK(!strcmp(e.urls[1], "tcp://env:2"));
    rk_cli_endpoints_free(&e);
    CHECK_EQ(setenv("RAFTKV_ENDPOINTS", "", 1), 0);
    CHECK_EQ(rk_cli_endpoints_split(&e, NULL), 0);
    CHECK_EQ(e.n, 1);
    CHECK(!strcmp(e.urls[0], RK_CLI_DEFAULT_ENDPOINTS));
    rk_cli_endpoints_free(&e);
    CHECK_EQ(unsetenv("RAFTKV_ENDPOINTS"), 0);
    CHECK_EQ(rk_cli_endpoints_split(&e, NULL), 0);
    CHECK(!strcmp(e.urls[0], RK_CLI_DEFAULT_ENDPOINTS));
    rk_cli_endpoints_free(&e);
}

TEST_MAIN(TEST_REF(integers_are_decimal_within_their_bounds),
          TEST_REF(durations_are_seconds_with_an_optional_unit),
          TEST_REF(endpoints_are_split_at_commas),
          TEST_REF(without_a_list_the_environment_then_the_default_names_the_endpoints))
