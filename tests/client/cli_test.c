/* The raft-kv binary against fake nodes: exit codes, plain and --json output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fake_node.h"
#include "test.h"

/* Runs raft-kv with the given arguments (shell words), captures stdout; returns the exit
 * status, or -1 if it did not exit normally. */
static int run(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#include <stdarg.h>

static int run(char *out, size_t size, const char *fmt, ...)
{
    char cmd[1024];
    int n = snprintf(cmd, sizeof cmd, "'%s' ", RAFT_KV_BIN);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t len = fread(out, 1, size - 1, p);
    out[len] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(put_get_delete_plain_and_json)
{
    struct fake_node a = {.code = RAFTKV__KV__CODE__OK,
                          .value = "hello",
                          .value_len = 5,
                          .create_revision = 2,
                          .mod_revision = 6,
                          .revision = 6};
    CHECK_EQ(fake_node_start(&a), 0);
    char out[4096];
    CHECK_EQ(run(out, sizeof out, "--endpoints %s put k v", a.url), 0);
    CHECK(strcmp(out, "OK\n") == 0);
    CHECK_EQ(a.last_op, RAFTKV__KV__REQUEST__OP_PUT);
    CHECK_EQ(run(out, sizeof out, "get k --endpoints=%s", a.url), 0);
    CHECK(strcmp(out, "hello\n") == 0);
    CHECK_EQ(run(out, sizeof out, "--json --endpoints %s get k", a.url), 0);
    CHECK(strcmp(out, "{\"result\":\"ok\",\"key\":\"k\",\"value\":\"hello\","
                      "\"create_revision\":2,\"mod_revision\":6}\n") == 0);
    CHECK_EQ(run(out, sizeof out, "--json --endpoints %s delete k", a.url), 0);
    CHECK(strcmp(out, "{\"result\":\"ok\",\"key\":\"k\",\"revision\":6}\n") == 0);
    CHECK_EQ(a.last_op, RAFTKV__KV__REQUEST__OP_DELETE);
    fake_node_stop(&a);
}

TEST(json_escapes_text_and_base64s_binary)
{
    struct fake_node a = {.code = RAFTKV__KV__CODE__OK, .value = "a\"b\\c\nd\x01", .value_len = 8};
    CHECK_EQ(fake_node_start(&a), 0);
    char out[4096];
    CHECK_EQ(run(out, sizeof out, "--json --endpoints %s get 'k\xc3\xa9'", a.url), 0);
    CHECK(strstr(out, "\"key\":\"k\xc3\xa9\""));
    CHECK(strstr(out, "\"value\":\"a\\\"b\\\\c\\nd\\u0001\""));
    fake_node_stop(&a);
    struct fake_node b = {.code = RAFTKV__KV__CODE__OK, .value = "\xff\0ab", .value_len = 4};
    CHECK_EQ(fake_node_start(&b), 0);
    CHECK_EQ(run(out, sizeof out, "--json --endpoints %s get k", b.url), 0);
    CHECK(strstr(out, "\"value\":\"/wBhYg==\",\"value_encoding\":\"base64\""));
    fake_node_stop(&b);
}

TEST(missing_key_and_cas_mismatch_exit_1)
{
    struct fake_node a = {.code = RAFTKV__KV__CODE__NOT_FOUND};
    struct fake_node b = {.code = RAFTKV__KV__CODE__CAS_MISMATCH,
                          .value = "cur",
                          .value_len = 3,
                          .create_revision = 1,
                          .mod_revision = 4};
    CHECK_EQ(fake_node_start(&a), 0);
    CHECK_EQ(fake_node_start(&b), 0);
    char out[4096];
    CHECK_EQ(run(out, sizeof out, "--endpoints %s get k", a.url), 1);
    CHECK(out[0] == '\0');
    CHECK_EQ(run(out, sizeof out, "--json --endpoints %s get k", a.url), 1);
    CHECK(strcmp(out, "{\"result\":\"not_found\",\"key\":\"k\"}\n") == 0);
    CHECK_EQ(run(out, sizeof out, "--json --endpoints %s cas k old new", b.url), 1);
    CHECK(strcmp(out, "{\"result\":\"cas_mismatch\",\"key\":\"k\",\"exists\":true,"
                      "\"value\":\"cur\",\"create_revision\":1,\"mod_revision\":4}\n") == 0);
    CHECK(!b.last_expect_absent);
    CHECK(strcmp(b.last_expected, "old") == 0);
    CHECK_EQ(run(out, sizeof out, "--endpoints %s cas --absent k new", b.url), 1);
    CHECK(b.last_expect_absent);
    CHECK(strcmp(out, "cur\n") == 0);
    fake_node_stop(&a);
    fake_node_stop(&b);
}

TEST(usage_errors_exit_2)
{
    char out[8192];
    CHECK_EQ(run(out, sizeof out, "2>/dev/null"), 2);
    CHECK_EQ(run(out, sizeof out, "frobnicate k 2>/dev/null"), 2);
    CHECK_EQ(run(out, sizeof out, "get a b 2>/dev/null"), 2);
    CHECK_EQ(run(out, sizeof out, "put k 2>/dev/null"), 2);
    CHECK_EQ(run(out, sizeof out, "--timeout abc get k 2>/dev/null"), 2);
    CHECK_EQ(run(out, sizeof out, "--timeout 0 get k 2>/dev/null"), 2);
    CHECK_EQ(run(out, sizeof out, "--absent put k v 2>/dev/null"), 2);
    CHECK_EQ(run(out, sizeof out, "--endpoints nonsense get k 2>/dev/null"), 2);
    CHECK_EQ(run(out, sizeof out, "--bogus get k 2>/dev/null"), 2);
    CHECK_EQ(run(out, sizeof out, "--help"), 0);
    CHECK(strstr(out, "cas --absent KEY NEW"));
    CHECK_EQ(run(out, sizeof out, "--version"), 0);
    CHECK(strstr(out, RAFTKV_VERSION));
}

TEST(rejected_request_exits_2_with_the_reason)
{
    struct fake_node a = {.code = RAFTKV__KV__CODE__INVALID, .error = "value too large"};
    CHECK_EQ(fake_node_start(&a), 0);
    char out[4096];
    CHECK_EQ(run(out, sizeof out, "--json --endpoints %s put k v", a.url), 2);
    CHECK(strcmp(out, "{\"result\":\"invalid\",\"key\":\"k\",\"error\":\"value too large\"}\n") ==
          0);
    fake_node_stop(&a);
}

TEST(unavailable_cluster_exits_3)
{
    char dead[64], out[4096];
    fake_dead_url(dead, sizeof dead);
    CHECK_EQ(run(out, sizeof out, "--timeout 300 --endpoints %s put k v 2>/dev/null", dead), 3);
    CHECK_EQ(run(out, sizeof out, "--json --timeout 300 --endpoints %s get k", dead), 3);
    const char *want = "{\"result\":\"unavailable\",\"key\":\"k\",\"error\":\"gave up after ";
    CHECK(strncmp(out, want, strlen(want)) == 0);
    CHECK_EQ(run(out, sizeof out, "--timeout 300 --endpoints %s status", dead), 3);
    CHECK(strstr(out, "unreachable"));
}

TEST(status_lists_every_endpoint)
{
    char dead[64], out[4096];
    fake_dead_url(dead, sizeof dead);
    struct fake_node a = {.code = RAFTKV__KV__CODE__OK, .answer_status = true, .status_id = 2};
    CHECK_EQ(fake_node_start(&a), 0);
    CHECK_EQ(run(out, sizeof out, "--timeout 1000 --endpoints %s,%s status", a.url, dead), 0);
    CHECK(strstr(out, "ENDPOINT") && strstr(out, "leader") && strstr(out, "unreachable"));
    CHECK_EQ(run(out, sizeof out, "--json --timeout 1000 --endpoints %s,%s status", a.url, dead),
             0);
    char want[1024];
    snprintf(want, sizeof want,
             "{\"nodes\":[{\"reachable\":true,\"endpoint\":\"%s\",\"role\":\"leader\",\"id\":2,"
             "\"term\":4,\"leader\":2,\"commit\":10,\"applied\":9,\"last_index\":11,"
             "\"counters\":{\"msgs_dropped_unknown_peer\":0,\"msgs_dropped_stale_term\":0,"
             "\"msgs_dropped_malformed\":0,\"elections_started\":3,\"pre_votes_started\":0,"
             "\"leader_stepped_down_no_quorum\":0,\"append_rejections\":0,\"snapshots_sent\":0,"
             "\"snapshots_installed\":0,\"snapshots_refused\":0,\"snapshots_damaged\":0,"
             "\"peer_msgs_sent\":7,\"peer_msgs_send_dropped\":0,"
             "\"peer_msgs_received\":0,\"peer_msgs_malformed\":0,\"peer_msgs_unknown_peer\":0,"
             "\"peer_msgs_oversized\":0,\"peer_redials\":0,\"conns_refused\":0,"
             "\"conns_closed_slow\":0,\"conns_closed_idle\":0,\"requests_over_limit\":0,"
             "\"peer_tls_refused\":0,\"peer_tls_dials_failed\":0,\"client_tls_refused\":0,"
             "\"configuration_changes\":0,\"transfers_started\":2,\"transfers_abandoned\":0}},"
             "{\"reachable\":false,\"endpoint\":\"%s\"}],\"result\":\"ok\"}\n",
             a.url, dead);
    CHECK(strcmp(out, want) == 0);
    fake_node_stop(&a);
}

/* Nodes 1 and 3 follow node 2, which leads and answers reads with `code`. */
struct fake_trio {
    struct fake_node follower1, leader, follower3;
};

static int trio_start(struct fake_trio *t, Raftkv__Kv__Code code)
{
    *t = (struct fake_trio){
        .leader = {.code = code, .answer_status = true, .status_id = 2},
    };
    int rv = fake_node_start(&t->leader);
    struct fake_node *followers[] = {&t->follower1, &t->follower3};
    for (int i = 0; i < 2 && !rv; i++) {
        *followers[i] = (struct fake_node){.node_code = RAFTKV__CLIENT__CODE__NOT_LEADER,
                                           .hint = t->leader.url,
                                           .answer_status = true,
                                           .status_id = i ? 3 : 1,
                                           .status_role = "follower",
                                           .status_leader = 2};
        rv = fake_node_start(followers[i]);
    }
    return rv;
}

static void trio_stop(struct fake_trio *t)
{
    fake_node_stop(&t->follower1);
    fake_node_stop(&t->leader);
    fake_node_stop(&t->follower3);
}

TEST(health_is_a_quorum_answering_and_a_leader_serving_a_read)
{
    struct fake_trio t;
    CHECK_EQ(trio_start(&t, RAFTKV__KV__CODE__NOT_FOUND), 0);
    char dead[64], out[8192];
    fake_dead_url(dead, sizeof dead);
    CHECK_EQ(run(out, sizeof out, "--endpoints %s,%s,%s health", t.follower1.url, t.leader.url,
                 t.follower3.url),
             0);
    CHECK(strcmp(out, "healthy: 3 of 3 nodes answered, leader 2 (term 4)\n") == 0);
    /* The leader served a read of an ordinary key (not one of the store's own, 0x00...). */
    CHECK_EQ(t.leader.last_op, RAFTKV__KV__REQUEST__OP_GET);
    CHECK_EQ(run(out, sizeof out, "--json --endpoints %s,%s,%s health", t.follower1.url,
                 t.leader.url, dead),
             0);
    const char *want = "{\"result\":\"ok\",\"healthy\":true,\"answered\":2,\"configured\":3,"
                       "\"quorum\":2,\"leader\":2,\"term\":4,\"nodes\":[{\"reachable\":true,";
    CHECK(strncmp(out, want, strlen(want)) == 0);
    CHECK(strstr(out, "\"role\":\"follower\",\"id\":1,") && strstr(out, "\"role\":\"leader\""));
    CHECK(strstr(out, "{\"reachable\":false,") && !strstr(out, "reason"));
    trio_stop(&t);
    /* A key that exists serves as well. */
    CHECK_EQ(trio_start(&t, RAFTKV__KV__CODE__OK), 0);
    CHECK_EQ(
        run(out, sizeof out, "--endpoints %s,%s,%s health", t.follower1.url, dead, t.leader.url),
        0);
    CHECK(strcmp(out, "healthy: 2 of 3 nodes answered, leader 2 (term 4)\n") == 0);
    trio_stop(&t);
}

TEST(health_without_a_quorum_answering_exits_3)
{
    struct fake_node a = {
        .answer_status = true, .status_id = 1, .status_role = "follower", .status_leader = 2};
    CHECK_EQ(fake_node_start(&a), 0);
    char dead2[64], dead3[64], out[8192];
    fake_dead_url(dead2, sizeof dead2);
    fake_dead_url(dead3, sizeof dead3);
    CHECK_EQ(run(out, sizeof out, "--timeout 500 --endpoints %s,%s,%s health", a.url, dead2, dead3),
             3);
    CHECK(strcmp(out, "unhealthy: 1 of 3 nodes answered, no quorum\n") == 0);
    CHECK_EQ(run(out, sizeof out, "--json --timeout 500 --endpoints %s,%s,%s health", dead2, a.url,
                 dead3),
             3);
    const char *want = "{\"result\":\"unavailable\",\"healthy\":false,\"answered\":1,"
                       "\"configured\":3,\"quorum\":2,\"leader\":2,\"term\":4,"
                       "\"reason\":\"no quorum\",\"nodes\":[{\"reachable\":false,";
    CHECK(strncmp(out, want, strlen(want)) == 0);
    /* Status requests only: without a quorum no read is tried. */
    CHECK_EQ(fake_node_requests(&a), 2);
    CHECK(a.last_was_status);
    fake_node_stop(&a);
}

TEST(health_needs_a_read_served_not_only_a_leader_named)
{
    /* Every node names node 2 as leader, but no read gets an answer. */
    struct fake_trio t;
    CHECK_EQ(trio_start(&t, RAFTKV__KV__CODE__OK), 0);
    t.leader.node_code = RAFTKV__CLIENT__CODE__UNAVAILABLE;
    char out[8192];
    CHECK_EQ(run(out, sizeof out, "--timeout 300 --endpoints %s,%s,%s health", t.follower1.url,
                 t.leader.url, t.follower3.url),
             3);
    const char *want = "unhealthy: 3 of 3 nodes answered, leader 2 (term 4); no leader served a "
                       "read: ";
    CHECK(strncmp(out, want, strlen(want)) == 0);
    CHECK_EQ(t.leader.last_op, RAFTKV__KV__REQUEST__OP_GET);
    CHECK_EQ(run(out, sizeof out, "--json --timeout 300 --endpoints %s,%s,%s health",
                 t.follower1.url, t.leader.url, t.follower3.url),
             3);
    want = "{\"result\":\"unavailable\",\"healthy\":false,\"answered\":3,\"configured\":3,"
           "\"quorum\":2,\"leader\":2,\"term\":4,\"reason\":\"no leader served a read\","
           "\"error\":\"";
    CHECK(strncmp(out, want, strlen(want)) == 0);
    trio_stop(&t);
    /* Nodes that answer but name no leader. */
    struct fake_node f = {.node_code = RAFTKV__CLIENT__CODE__UNAVAILABLE,
                          .answer_status = true,
                          .status_id = 1,
                          .status_role = "candidate"};
    CHECK_EQ(fake_node_start(&f), 0);
    CHECK_EQ(run(out, sizeof out, "--timeout 300 --endpoints %s health", f.url), 3);
    want = "unhealthy: 1 of 1 node answered, none names a leader; no leader served a read: ";
    CHECK(strncmp(out, want, strlen(want)) == 0);
    fake_node_stop(&f);
}

TEST(a_bad_endpoint_is_named_with_the_form_expected)
{
    struct fake_node a = {.code = RAFTKV__KV__CODE__OK};
    CHECK_EQ(fake_node_start(&a), 0);
    static const char *const bad[] = {
        "127.0.0.1:7101",    "tcp://127.0.0.1",       "http://127.0.0.1:7101", "tcp://:7101",
        "tcp://127.0.0.1:0", "tcp://127.0.0.1:65536", "tcp://127.0.0.1:x",     "tcp://::1:7101",
        "tcp://[]:7101",     "tcp://a b:7101",
    };
    char out[4096], want[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(run(out, sizeof out, "--endpoints '%s,%s' get k 2>&1", a.url, bad[i]), 2);
        snprintf(want, sizeof want, "bad endpoint \"%s\": expected tcp://host:port", bad[i]);
        if (!strstr(out, want))
            fprintf(stderr, "for %s: %s", bad[i], out);
        CHECK(strstr(out, want) && strstr(out, "tls+tcp://host:port"));
    }
    CHECK_EQ(run(out, sizeof out, "--endpoints %s,%s get k 2>&1", a.url, a.url), 2);
    snprintf(want, sizeof want, "endpoint \"%s\" is given twice", a.url);
    CHECK(strstr(out, want));
    CHECK_EQ(run(out, sizeof out, "--endpoints %s,tls+tcp://127.0.0.1:7101 get k 2>&1", a.url), 2);
    CHECK(strstr(out, "\"tls+tcp://127.0.0.1:7101\"") && strstr(out, "--tls-ca"));
    /* Nothing went out. */
    CHECK_EQ(fake_node_requests(&a), 0);
    /* The forms that are good: IPv6 in brackets, names. */
    CHECK_EQ(
        run(out, sizeof out, "--endpoints %s,tcp://[::1]:7101,tcp://localhost:7102 get k", a.url),
        0);
    fake_node_stop(&a);
}

TEST(an_unavailable_cluster_is_told_with_how_many_nodes_answered)
{
    /* A follower that knows no leader, and a node that is down. */
    struct fake_node f = {.node_code = RAFTKV__CLIENT__CODE__UNAVAILABLE,
                          .answer_status = true,
                          .status_id = 1,
                          .status_role = "follower"};
    CHECK_EQ(fake_node_start(&f), 0);
    char dead[64], out[4096];
    fake_dead_url(dead, sizeof dead);
    CHECK_EQ(run(out, sizeof out, "--timeout 300 --endpoints %s,%s get k 2>&1", f.url, dead), 3);
    CHECK(strstr(out, "raft-kv: cluster unavailable: "));
    CHECK(strstr(out, "1 of 2 nodes answered, no quorum\n"));
    CHECK_EQ(run(out, sizeof out, "--json --timeout 300 --endpoints %s,%s put k v", f.url, dead),
             3);
    CHECK(strstr(out, ",\"answered\":1,\"configured\":2,\"quorum\":2,\"leader\":0,\"term\":4}\n"));
    fake_node_stop(&f);
}

TEST(endpoints_come_from_the_environment)
{
    struct fake_node a = {.code = RAFTKV__KV__CODE__OK};
    CHECK_EQ(fake_node_start(&a), 0);
    char out[4096];
    CHECK_EQ(setenv("RAFTKV_ENDPOINTS", a.url, 1), 0);
    CHECK_EQ(run(out, sizeof out, "put k v"), 0);
    CHECK_EQ(fake_node_requests(&a), 1);
    unsetenv("RAFTKV_ENDPOINTS");
    fake_node_stop(&a);
}

TEST(options_take_their_value_joined_or_separate)
{
    struct fake_node a = {.code = RAFTKV__KV__CODE__OK};
    CHECK_EQ(fake_node_start(&a), 0);
    char dead[64], out[4096];
    fake_dead_url(dead, sizeof dead);
    CHECK_EQ(run(out, sizeof out, "--timeout=5000 --endpoints=%s put k v", a.url), 0);
    CHECK_EQ(run(out, sizeof out, "--timeout 5000 --endpoints %s put k v", a.url), 0);
    CHECK_EQ(run(out, sizeof out, "put k v --timeout=5000 --endpoints %s", a.url), 0);
    CHECK_EQ(fake_node_requests(&a), 3);
    /* The values count: the client gives up after exactly that many attempts. */
    CHECK_EQ(run(out, sizeof out,
                 "--json --attempts=2 --request-timeout=100 --timeout=60000 --endpoints=%s get k",
                 dead),
             3);
    CHECK(strstr(out, "gave up after 2 attempts"));
    CHECK_EQ(run(out, sizeof out,
                 "--json --attempts 3 --request-timeout 100 --timeout 60000 --endpoints %s get k",
                 dead),
             3);
    CHECK(strstr(out, "gave up after 3 attempts"));
    fake_node_stop(&a);
}

TEST(words_after_a_double_dash_are_arguments)
{
    struct fake_node a = {.code = RAFTKV__KV__CODE__OK};
    CHECK_EQ(fake_node_start(&a), 0);
    char out[4096];
    CHECK_EQ(run(out, sizeof out, "--endpoints %s cas -- k -1 new", a.url), 0);
    CHECK(strcmp(a.last_expected, "-1") == 0);
    CHECK_EQ(run(out, sizeof out, "--endpoints %s -- cas k -2 new", a.url), 0);
    CHECK(strcmp(a.last_expected, "-2") == 0);
    CHECK_EQ(run(out, sizeof out, "--endpoints %s cas k -3 new 2>/dev/null", a.url), 2);
    CHECK_EQ(fake_node_requests(&a), 2);
    fake_node_stop(&a);
}

TEST(a_bad_option_is_a_usage_error_that_names_it)
{
    char out[4096];
    CHECK_EQ(run(out, sizeof out, "--bogus get k 2>&1"), 2);
    CHECK(strstr(out, "unknown option '--bogus'") && strstr(out, "raft-kv --help"));
    CHECK_EQ(run(out, sizeof out, "get k --bogus=1 2>&1"), 2);
    CHECK(strstr(out, "'--bogus=1'"));
    CHECK_EQ(run(out, sizeof out, "-x get k 2>&1"), 2);
    CHECK(strstr(out, "'-x'"));
    CHECK_EQ(run(out, sizeof out, "--json=yes get k 2>&1"), 2);
    CHECK(strstr(out, "--json"));
    CHECK_EQ(run(out, sizeof out, "get k --timeout 2>&1"), 2);
    CHECK(strstr(out, "--timeout"));
    /* A command's own option goes after the command word. */
    CHECK_EQ(run(out, sizeof out, "--absent cas k v 2>&1"), 2);
    CHECK(strstr(out, "--absent") && strstr(out, "cas"));
    CHECK_EQ(run(out, sizeof out, "put --absent k v 2>&1"), 2);
    CHECK(strstr(out, "--absent") && strstr(out, "cas"));
}

TEST(help_lists_every_option)
{
    static const char *const options[] = {
        "--endpoints", "--timeout",  "--request-timeout", "--attempts", "--retry-delay",
        "--json",      "--help",     "--version",         "--absent",   "--value-file",
        "--tls-ca",    "--tls-cert", "--tls-key",         "health",
    };
    char out[8192];
    CHECK_EQ(run(out, sizeof out, "--help"), 0);
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        if (!strstr(out, options[i]))
            fprintf(stderr, "--help does not mention %s\n", options[i]);
        CHECK(strstr(out, options[i]));
    }
    /* Anywhere before a "--", in either form. */
    static const char *const elsewhere[] = {"-h", "get --help", "--timeout 5 put k -h"};
    for (size_t i = 0; i < sizeof elsewhere / sizeof elsewhere[0]; i++) {
        CHECK_EQ(run(out, sizeof out, "%s", elsewhere[i]), 0);
        CHECK(strncmp(out, "usage: raft-kv", 14) == 0);
    }
}

/* A value of every byte, NULs included, over the 128 KiB an argument may hold. */
static bool write_value_file(const char *path, uint8_t *value, size_t len)
{
    for (size_t i = 0; i < len; i++)
        value[i] = (uint8_t)(i * 7 + i / 256);
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(value, 1, len, f) == len;
    return f && fclose(f) == 0 && ok;
}

static bool node_got(struct fake_node *n, const void *value, size_t len)
{
    nng_mtx_lock(n->mu);
    bool same = n->last_value_len == len && memcmp(n->last_value, value, len) == 0;
    nng_mtx_unlock(n->mu);
    return same;
}

TEST(a_value_comes_from_stdin_or_a_file_byte_for_byte)
{
    struct fake_node a = {.code = RAFTKV__KV__CODE__OK};
    CHECK_EQ(fake_node_start(&a), 0);
    static uint8_t value[300 << 10];
    char path[] = "/tmp/raftkv-cli-value-XXXXXX", out[4096];
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK(write_value_file(path, value, sizeof value));
    CHECK_EQ(run(out, sizeof out, "--endpoints %s put k - < %s", a.url, path), 0);
    CHECK(strcmp(out, "OK\n") == 0);
    CHECK(node_got(&a, value, sizeof value));
    CHECK_EQ(run(out, sizeof out, "--endpoints %s put k - < /dev/null", a.url), 0);
    CHECK(node_got(&a, "", 0));
    CHECK_EQ(run(out, sizeof out, "--endpoints %s put --value-file %s k", a.url, path), 0);
    CHECK(node_got(&a, value, sizeof value));
    CHECK_EQ(run(out, sizeof out, "--endpoints %s cas --value-file=%s k old", a.url, path), 0);
    CHECK(node_got(&a, value, sizeof value));
    CHECK(strcmp(a.last_expected, "old") == 0);
    CHECK_EQ(run(out, sizeof out, "--endpoints %s cas --absent k - < /dev/null", a.url), 0);
    CHECK(node_got(&a, "", 0));
    CHECK_EQ(fake_node_requests(&a), 5);
    /* No request goes out for a file that cannot be read or a word too many. */
    CHECK_EQ(run(out, sizeof out, "--endpoints %s put --value-file %s.none k 2>&1", a.url, path),
             2);
    CHECK(strstr(out, "cannot open") && strstr(out, ".none"));
    CHECK_EQ(
        run(out, sizeof out, "--endpoints %s put --value-file %s k v 2>/dev/null", a.url, path), 2);
    CHECK_EQ(fake_node_requests(&a), 5);
    unlink(path);
    fake_node_stop(&a);
}

/* ---- membership ---- */

TEST(member_list_prints_a_table_or_json)
{
    struct fake_node a = {.members = fake_member_list()};
    CHECK_EQ(fake_node_start(&a), 0);
    char out[4096];
    CHECK_EQ(run(out, sizeof out, "--endpoints %s member list", a.url), 0);
    CHECK_EQ(a.last_body, RAFTKV__CLIENT__REQUEST__BODY_MEMBER_LIST);
    CHECK(strcmp(out, "    ID ROLE     PEER ADDRESS         CLIENT ADDRESS            MATCH   "
                      "BEHIND HEALTHY\n"
                      "     1 voter    tcp://127.0.0.1:7001 tcp://127.0.0.1:7101         20   "
                      "     0 yes\n"
                      "     4 learner  tcp://127.0.0.1:7004 tcp://127.0.0.1:7104         12   "
                      "     8 no\n"
                      "leader 1 (term 5); membership committed (entry 18)\n") == 0);
    CHECK_EQ(run(out, sizeof out, "--json --endpoints %s member list", a.url), 0);
    CHECK(strcmp(out, "{\"result\":\"ok\",\"leader\":1,\"term\":5,\"configuration_index\":18,"
                      "\"committed\":true,\"last_index\":20,\"members\":["
                      "{\"id\":1,\"role\":\"voter\",\"peer_address\":\"tcp://127.0.0.1:7001\","
                      "\"client_address\":\"tcp://127.0.0.1:7101\",\"match_index\":20,"
                      "\"behind\":0,\"healthy\":true},"
                      "{\"id\":4,\"role\":\"learner\",\"peer_address\":\"tcp://127.0.0.1:7004\","
                      "\"client_address\":\"tcp://127.0.0.1:7104\",\"match_index\":12,"
                      "\"behind\":8,\"healthy\":false}]}\n") == 0);
    fake_node_stop(&a);
}

/* status --cluster asks the members the leader names, not the endpoints given. */
TEST(status_of_the_cluster_asks_every_member_the_leader_names)
{
    char dead[64], out[4096];
    fake_dead_url(dead, sizeof dead);
    Raftkv__Client__MemberList list = *fake_member_list();
    Raftkv__Client__Member self = *list.members[0], gone = *list.members[1];
    Raftkv__Client__Member *members[] = {&self, &gone};
    list.members = members;
    struct fake_node a = {.members = &list, .answer_status = true, .status_id = 1};
    CHECK_EQ(fake_node_start(&a), 0);
    self.client_address = a.url;
    gone.client_address = dead;
    CHECK_EQ(run(out, sizeof out, "--timeout 1000 --endpoints %s status --cluster", a.url), 0);
    CHECK(strstr(out, a.url) && strstr(out, "leader") && strstr(out, dead) &&
          strstr(out, "unreachable"));
    /* Without an answer to the member list there is no one to ask. */
    CHECK_EQ(run(out, sizeof out, "--timeout 300 --endpoints %s status --cluster 2>&1", dead), 3);
    fake_node_stop(&a);
}

TEST(member_changes_and_move_leader_send_their_arguments)
{
    Raftkv__Client__MemberList pending = *fake_member_list();
    pending.committed = false;
    struct fake_node a = {.members = &pending};
    CHECK_EQ(fake_node_start(&a), 0);
    char out[4096];
    CHECK_EQ(run(out, sizeof out, "--endpoints %s member add-learner 4 tcp://h:7004 tcp://h:7104",
                 a.url),
             0);
    CHECK_EQ(a.last_change_kind, RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__ADD_LEARNER);
    CHECK_EQ(a.last_member_id, 4);
    CHECK(strcmp(a.last_peer_address, "tcp://h:7004") == 0);
    CHECK(strcmp(a.last_client_address, "tcp://h:7104") == 0);
    CHECK(strstr(out, "\nleader 1 (term 5); a change is pending (entry 18, not yet committed)\n"));
    CHECK_EQ(run(out, sizeof out, "--endpoints %s member promote 4", a.url), 0);
    CHECK_EQ(a.last_change_kind, RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__PROMOTE);
    CHECK_EQ(run(out, sizeof out, "--json --endpoints %s member remove 3", a.url), 0);
    CHECK_EQ(a.last_change_kind, RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__REMOVE);
    CHECK_EQ(a.last_member_id, 3);
    CHECK(strncmp(out, "{\"result\":\"ok\",\"leader\":1,", 26) == 0);
    CHECK_EQ(run(out, sizeof out, "--endpoints %s move-leader 2", a.url), 0);
    CHECK_EQ(a.last_body, RAFTKV__CLIENT__REQUEST__BODY_MOVE_LEADER);
    CHECK_EQ(a.last_member_id, 2);
    CHECK_EQ(run(out, sizeof out, "--endpoints %s move-leader", a.url), 0);
    CHECK_EQ(a.last_member_id, 0);
    fake_node_stop(&a);
}

TEST(a_refused_change_exits_2_and_an_unavailable_one_3)
{
    struct fake_node a = {.node_code = RAFTKV__CLIENT__CODE__INVALID, .error = "member 4 exists"};
    struct fake_node b = {.node_code = RAFTKV__CLIENT__CODE__UNAVAILABLE,
                          .error = "a membership change is in progress"};
    CHECK_EQ(fake_node_start(&a), 0);
    CHECK_EQ(fake_node_start(&b), 0);
    char out[4096];
    CHECK_EQ(run(out, sizeof out, "--json --endpoints %s member add-learner 4 tcp://h:1 tcp://h:2",
                 a.url),
             2);
    CHECK(strcmp(out, "{\"result\":\"invalid\",\"error\":\"member 4 exists\"}\n") == 0);
    CHECK_EQ(run(out, sizeof out, "--endpoints %s member remove 4 2>&1", a.url), 2);
    CHECK(strcmp(out, "raft-kv: invalid request: member 4 exists\n") == 0);
    CHECK_EQ(run(out, sizeof out, "--json --attempts 2 --endpoints %s member promote 4", b.url), 3);
    CHECK(strstr(out, "{\"result\":\"unavailable\",\"error\":\"gave up after 2 attempts"));
    CHECK(strstr(out, "a membership change is in progress"));
    CHECK(strstr(out, "\"answered\":0,\"configured\":1"));
    fake_node_stop(&a);
    fake_node_stop(&b);
}

TEST(bad_member_arguments_are_named)
{
    char out[4096];
    CHECK_EQ(run(out, sizeof out, "member 2>&1"), 2);
    CHECK(strstr(out, "member needs list, add-learner, promote or remove"));
    CHECK_EQ(run(out, sizeof out, "member join 4 2>&1"), 2);
    CHECK(strstr(out, "unknown member command 'join'"));
    CHECK_EQ(run(out, sizeof out, "member promote 2>&1"), 2);
    CHECK(strstr(out, "wrong number of arguments for member promote"));
    CHECK_EQ(run(out, sizeof out, "member remove 0 2>&1"), 2);
    CHECK(strstr(out, "ID must be a positive integer, got \"0\""));
    CHECK_EQ(run(out, sizeof out, "move-leader x 2>&1"), 2);
    CHECK(strstr(out, "ID must be a positive integer, got \"x\""));
    CHECK_EQ(run(out, sizeof out, "move-leader 1 2 2>&1"), 2);
    CHECK_EQ(run(out, sizeof out, "member add-learner 4 h:1 tcp://h:2 2>&1"), 2);
    CHECK(strstr(out, "bad PEER_ADDR \"h:1\""));
    CHECK_EQ(run(out, sizeof out, "member add-learner 4 tcp://h:1 tcp://h 2>&1"), 2);
    CHECK(strstr(out, "bad CLIENT_ADDR \"tcp://h\""));
    CHECK_EQ(run(out, sizeof out, "--json member list extra 2>/dev/null"), 2);
    CHECK(out[0] == '\0');
}

TEST(list_follows_the_pages_until_the_limit_or_the_end)
{
    const char *keys[] = {"a", "p/1", "p/2", "p/3", "p/4", "p/5", "q"};
    /* two keys an answer: raft-kv must follow more */
    struct fake_node a = {.code = RAFTKV__KV__CODE__OK,
                          .keys = keys,
                          .n_keys = 7,
                          .range_page = 2,
                          .range_revision = 9};
    CHECK_EQ(fake_node_start(&a), 0);
    char out[4096];
    CHECK_EQ(run(out, sizeof out, "--endpoints %s list --prefix p/", a.url), 0);
    CHECK(strcmp(out, "p/1\tp/1\np/2\tp/2\np/3\tp/3\np/4\tp/4\np/5\tp/5\n") == 0);
    CHECK_EQ(a.ranges, 3);
    CHECK(strcmp(a.last_range_key, "p/4") == 0 && a.last_range_after);
    CHECK(strcmp(a.last_range_end, "p0") == 0);
    CHECK_EQ(run(out, sizeof out, "--endpoints %s list --limit 3", a.url), 0);
    CHECK(strcmp(out, "a\ta\np/1\tp/1\np/2\tp/2\n") == 0);
    CHECK_EQ(a.last_range_limit, 1); /* the page asks for what is left */
    CHECK_EQ(run(out, sizeof out, "--json --endpoints %s list --from p/4 --to q", a.url), 0);
    CHECK(strcmp(out, "{\"result\":\"ok\",\"kvs\":[{\"create_revision\":1,\"mod_revision\":2,"
                      "\"key\":\"p/4\",\"value\":\"p/4\"},{\"create_revision\":1,"
                      "\"mod_revision\":2,\"key\":\"p/5\",\"value\":\"p/5\"}],\"more\":false,"
                      "\"revision\":9}\n") == 0);
    CHECK_EQ(run(out, sizeof out, "--json --endpoints %s list --from p/2 --limit 2", a.url), 0);
    CHECK(strstr(out, "\"more\":true"));
    CHECK_EQ(run(out, sizeof out, "--endpoints %s list --prefix x", a.url), 0);
    CHECK(strcmp(out, "") == 0);
    /* usage errors, before anything is sent */
    unsigned before = a.ranges;
    CHECK_EQ(run(out, sizeof out, "--endpoints %s list --prefix p --from a 2>/dev/null", a.url), 2);
    CHECK_EQ(run(out, sizeof out, "--endpoints %s list --from b --to a 2>/dev/null", a.url), 2);
    CHECK_EQ(run(out, sizeof out, "--endpoints %s list --limit 0 2>/dev/null", a.url), 2);
    CHECK_EQ(run(out, sizeof out, "--endpoints %s list p 2>/dev/null", a.url), 2);
    CHECK_EQ(a.ranges, before);
    a.code = RAFTKV__KV__CODE__INVALID;
    a.error = "range key is too long";
    CHECK_EQ(run(out, sizeof out, "--json --endpoints %s list --from b", a.url), 2);
    CHECK(strcmp(out, "{\"result\":\"invalid\",\"error\":\"range key is too long\"}\n") == 0);
    fake_node_stop(&a);
}

TEST_MAIN(TEST_REF(put_get_delete_plain_and_json), TEST_REF(json_escapes_text_and_base64s_binary),
          TEST_REF(missing_key_and_cas_mismatch_exit_1), TEST_REF(usage_errors_exit_2),
          TEST_REF(rejected_request_exits_2_with_the_reason), TEST_REF(unavailable_cluster_exits_3),
          TEST_REF(status_lists_every_endpoint),
          TEST_REF(health_is_a_quorum_answering_and_a_leader_serving_a_read),
          TEST_REF(health_without_a_quorum_answering_exits_3),
          TEST_REF(health_needs_a_read_served_not_only_a_leader_named),
          TEST_REF(a_bad_endpoint_is_named_with_the_form_expected),
          TEST_REF(an_unavailable_cluster_is_told_with_how_many_nodes_answered),
          TEST_REF(endpoints_come_from_the_environment),
          TEST_REF(options_take_their_value_joined_or_separate),
          TEST_REF(words_after_a_double_dash_are_arguments),
          TEST_REF(a_bad_option_is_a_usage_error_that_names_it), TEST_REF(help_lists_every_option),
          TEST_REF(a_value_comes_from_stdin_or_a_file_byte_for_byte),
          TEST_REF(member_list_prints_a_table_or_json),
          TEST_REF(status_of_the_cluster_asks_every_member_the_leader_names),
          TEST_REF(member_changes_and_move_leader_send_their_arguments),
          TEST_REF(a_refused_change_exits_2_and_an_unavailable_one_3),
          TEST_REF(bad_member_arguments_are_named),
          TEST_REF(list_follows_the_pages_until_the_limit_or_the_end))
