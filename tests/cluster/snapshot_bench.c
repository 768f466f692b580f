/*
 * Figures for snapshots in a local 3-node cluster of real raftd processes (not a test):
 *   1. snapshot production throughput for MIB MiB of KV data (the leader's log line),
 *   2. a wiped follower catching up from that snapshot: wall time from its restart to
 *      applying the last entry, and its install throughput (its log line),
 *   3. the data dirs under an overwrite workload (1,000 keys, 200 rounds), with the default
 *      compaction settings and with compaction effectively off.
 * Usage: cluster_snapshot_bench [MiB]   (default 256)
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

#define WAIT_MS 600000
#define VALUE_BYTES (64 << 10)

static void print_log_lines(struct cluster *c, int id, const char *text)
{
    FILE *f = fopen(c->nodes[id - 1].log, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, text);
        if (p)
            printf("  node %d: %s", id, p);
    }
    if (f)
        fclose(f);
}

static uint64_t data_dir_bytes(struct cluster *c, int id)
{
    char path[512], file[1024];
    struct stat st;
    uint64_t sum = 0;
    const char *names[] = {"data.mdb", "lock.mdb"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", c->nodes[id - 1].data, names[i]);
        sum += stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
    }
    snprintf(path, sizeof path, "%s/snapshots", c->nodes[id - 1].data);
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        snprintf(file, sizeof file, "%s/%s", path, de->d_name);
        if (de->d_name[0] != '.' && stat(file, &st) == 0)
            sum += (uint64_t)st.st_size;
    }
    if (d)
        closedir(d);
    return sum;
}

static bool put_values(struct cluster *c, int count, uint64_t *rev)
{
    static char value[VALUE_BYTES];
    memset(value, 'v', sizeof value);
    char key[32];
    for (int i = 0; i < count; i++) {
        snprintf(key, sizeof key, "big-%06d", i);
        snprintf(value, 32, "%08d", i);
        struct raftkv_result res;
        memset(&res, 0, sizeof res);
        int rc = raftkv_put(c->client, key, strlen(key), value, sizeof value, &res);
        *rev = res.revision;
        raftkv_result_free(&res);
        REQUIRE(rc == RAFTKV_OK);
    }
    return true;
}

static bool bench_snapshot(int mib)
{
    int puts = (int)(((uint64_t)mib << 20) / VALUE_BYTES);
    /* One snapshot, taken once every value is in: at entry puts + 3 (a no-op, the values,
     * then small puts). */
    char conf[256];
    snprintf(conf, sizeof conf,
             "snapshot_entries = %d\nsnapshot_trailing_entries = 0\nsnapshot_bytes = 64GiB\n"
             "max_db_bytes = 64GiB\n",
             puts + 3);
    struct cluster c;
    bool ok = cluster_init(&c, 3, conf) && cluster_start_all(&c);
    uint64_t leader = ok ? cluster_wait_leader(&c, 10000) : 0;
    uint64_t rev = 0, start = now_ms();
    ok = leader && put_values(&c, puts, &rev);
    printf("loaded %d MiB (%d values of 64 KiB) in %llu ms\n", mib, puts,
           (unsigned long long)(now_ms() - start));
    for (int i = 1; ok && i <= 3; i++)
        ok = cluster_wait_applied(&c, i, rev, WAIT_MS);
    for (int i = 1; ok && i <= 3; i++)
        printf("  node %d data dir before the snapshot: %.1f MiB\n", i,
               (double)data_dir_bytes(&c, i) / (1 << 20));
    for (int i = 0; ok && i < 3; i++)
        ok = cluster_put_retry(&c, "trigger", "x", 10000, &rev);
    for (int i = 1; ok && i <= 3; i++)
        ok = cluster_wait_applied(&c, i, rev, WAIT_MS);
    uint64_t deadline = now_ms() + WAIT_MS;
    while (ok && !cluster_log_contains(&c, (int)leader, "log compacted up to") &&
           now_ms() < deadline)
        sleep_ms(100);
    ok = ok && cluster_log_contains(&c, (int)leader, "log compacted up to");
    if (ok) {
        printf("snapshot production (leader):\n");
        print_log_lines(&c, (int)leader, "snapshot at index");
        for (int i = 1; i <= 3; i++)
            printf("  node %d data dir after compaction: %.1f MiB\n", i,
                   (double)data_dir_bytes(&c, i) / (1 << 20));
    }
    int wiped = leader == 1 ? 2 : 1;
    ok = ok && cluster_stop(&c, wiped, SIGKILL) == -1 && cluster_wipe(&c, wiped);
    start = now_ms();
    ok = ok && cluster_start(&c, wiped) && cluster_wait_applied(&c, wiped, rev, WAIT_MS);
    if (ok) {
        printf("wiped follower %d caught up in %llu ms (restart to last entry applied)\n", wiped,
               (unsigned long long)(now_ms() - start));
        print_log_lines(&c, wiped, "installed the snapshot");
    }
    cluster_destroy(&c, !ok);
    return ok;
}

static bool bench_overwrite(const char *what, const char *conf)
{
    struct cluster c;
    uint64_t rev;
    bool ok = cluster_init(&c, 3, conf) && cluster_start_all(&c) &&
              cluster_wait_leader(&c, 10000) &&
              cluster_write_keys(&c, "ow-", 1000, 0, 200, 64, &rev);
    for (int i = 1; ok && i <= 3; i++)
        ok = cluster_wait_applied(&c, i, rev, WAIT_MS);
    if (ok)
        printf("overwrite 1,000 keys x 200 rounds, %s: data dirs %.1f / %.1f / %.1f MiB\n", what,
               (double)data_dir_bytes(&c, 1) / (1 << 20), (double)data_dir_bytes(&c, 2) / (1 << 20),
               (double)data_dir_bytes(&c, 3) / (1 << 20));
    cluster_destroy(&c, !ok);
    return ok;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    int mib = argc > 1 ? atoi(argv[1]) : 256;
    bool ok = mib > 0 && bench_snapshot(mib);
    ok = ok && bench_overwrite("default compaction", NULL);
    ok = ok &&
         bench_overwrite("no compaction", "snapshot_entries = 100000000\nsnapshot_bytes = 64GiB\n");
    return ok ? 0 : 1;
}
