/*
 * raftd on a data dir that cannot lie: a data.mdb lost, cut short or damaged, and a second
 * raftd on the same dir, are refused at start with exit status 2 and a message saying so.
 */
#define _GNU_SOURCE /* memmem */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "test.h"

#define WAIT_MS 10000

/* A single node that took a write, then stopped cleanly. */
static bool node_with_data(struct cluster *c, const char *value)
{
    REQUIRE(cluster_start(c, 1));
    REQUIRE(cluster_wait_leader(c, WAIT_MS) == 1);
    REQUIRE(cluster_put_retry(c, "k", value, WAIT_MS, NULL));
    REQUIRE(cluster_stop(c, 1, SIGTERM) == 0);
    return true;
}

static void data_file(struct cluster *c, char *out, size_t len)
{
    snprintf(out, len, "%s/data.mdb", c->nodes[0].data);
}

/* Node 1's raftd must exit with status 2 within the deadline, its log holding want. */
static bool start_refused(struct cluster *c, const char *want)
{
    struct cnode *node = &c->nodes[0];
    REQUIRE(cluster_spawn(c, 1));
    int status;
    uint64_t deadline = now_ms() + WAIT_MS;
    while (waitpid(node->pid, &status, WNOHANG) != node->pid) {
        if (now_ms() > deadline) {
            fprintf(stderr, "raftd did not refuse to start\n");
            cluster_stop(c, 1, SIGKILL);
            return false;
        }
        sleep_ms(20);
    }
    node->pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 2 || !cluster_log_contains(c, 1, want))
        fprintf(stderr, "raftd ended with status %d; wanted 2 and a line with: %s\n", status, want);
    return WIFEXITED(status) && WEXITSTATUS(status) == 2 && cluster_log_contains(c, 1, want);
}

static bool scenario_empty_data_file(struct cluster *c)
{
    char path[300];
    REQUIRE(node_with_data(c, "v"));
    data_file(c, path, sizeof path);
    REQUIRE(truncate(path, 0) == 0);
    return start_refused(c, "data.mdb is empty, but raftkv-node says node 1 lived here: this "
                            "node's term, vote and log are lost");
}

static bool scenario_cut_short_data_file(struct cluster *c)
{
    char path[300];
    struct stat st;
    REQUIRE(node_with_data(c, "v"));
    data_file(c, path, sizeof path);
    REQUIRE(stat(path, &st) == 0 && truncate(path, st.st_size / 2) == 0);
    return start_refused(c, "data.mdb is cut short");
}

/* Flips a bit in every copy of text in node 1's data.mdb; returns how many. */
static int damage(struct cluster *c, const char *text)
{
    char path[300];
    data_file(c, path, sizeof path);
    FILE *f = fopen(path, "r+b");
    if (!f)
        return 0;
    static char buf[64 << 20];
    size_t n = fread(buf, 1, sizeof buf, f), len = strlen(text);
    int copies = 0;
    for (char *p = buf; (p = memmem(p, n - (size_t)(p - buf), text, len)); p += len, copies++)
        p[len / 2] ^= 0x10;
    bool ok = fseek(f, 0, SEEK_SET) == 0 && fwrite(buf, 1, n, f) == n;
    return fclose(f) == 0 && ok ? copies : 0;
}

static bool scenario_damaged_log_record(struct cluster *c)
{
    REQUIRE(node_with_data(c, "a value to damage on disk"));
    REQUIRE(damage(c, "a value to damage on disk") > 0);
    return start_refused(c, "fails its checksum: the record is damaged on disk");
}

static bool scenario_second_raftd(struct cluster *c)
{
    char out[300], got[4096] = "";
    REQUIRE(cluster_start(c, 1));
    snprintf(out, sizeof out, "%s/second.out", c->dir);
    const char *argv[] = {RAFTD_PATH, "--config", c->nodes[0].conf, NULL};
    int rc = run_capture(argv, out);
    FILE *f = fopen(out, "r");
    REQUIRE(f);
    got[fread(got, 1, sizeof got - 1, f)] = '\0';
    fclose(f);
    if (rc != 2 || !strstr(got, "is in use by another process"))
        fprintf(stderr, "the second raftd exited %d saying:\n%s\n", rc, got);
    REQUIRE(rc == 2 && strstr(got, "is in use by another process"));
    /* The first one goes on. */
    REQUIRE(cluster_put_retry(c, "k", "v", WAIT_MS, NULL));
    REQUIRE(cluster_stop(c, 1, SIGTERM) == 0);
    return true;
}

static bool with_node(bool (*fn)(struct cluster *c))
{
    return cluster_run(1, NULL, fn);
}

TEST(empty_data_file)
{
    CHECK(with_node(scenario_empty_data_file));
}

TEST(cut_short_data_file)
{
    CHECK(with_node(scenario_cut_short_data_file));
}

TEST(damaged_log_record)
{
    CHECK(with_node(scenario_damaged_log_record));
}

TEST(second_raftd)
{
    CHECK(with_node(scenario_second_raftd));
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    static const struct test_case cases[] = {TEST_REF(empty_data_file),
                                             TEST_REF(cut_short_data_file),
                                             TEST_REF(damaged_log_record), TEST_REF(second_raftd)};
    return test_run_all(cases, sizeof cases / sizeof cases[0], argc, argv);
}
