/*
 * Snapshots and log compaction with real raftd processes: a wiped follower catches up
 * through InstallSnapshot (100,000 keys, small compaction threshold), kill -9 in the middle
 * of an install (of a wiped follower and of one holding older state), restart after
 * compaction, and a data dir that stays bounded under a steady overwrite workload.
 * The nodes' KV states are compared offline, byte for byte, through the KV store's own
 * snapshot stream.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "kv/kv.h"
#include "test.h"

#define WAIT_MS 20000
#define WRITERS 64

/* Snapshot every 2,000 entries, keep 500; small chunks, one in flight, so that an install
 * of a few MB lasts long enough to be interrupted. */
static const char SMALL_SNAPSHOTS[] = "snapshot_entries = 2000\n"
                                      "snapshot_trailing_entries = 500\n"
                                      "snapshot_chunk_bytes = 16KiB\n"
                                      "snapshot_max_inflight_chunks = 1\n";

/* ---- A node's KV state, read offline from its data dir. ---- */

struct state {
    uint8_t *data;
    size_t len, cap;
    raft_index index;
};

static int state_emit(void *arg, const void *data, size_t len)
{
    struct state *st = arg;
    if (st->len + len > st->cap) {
        size_t cap = st->cap ? st->cap : 1 << 20;
        while (cap < st->len + len)
            cap *= 2;
        uint8_t *p = realloc(st->data, cap);
        if (!p)
            return -1;
        st->data = p;
        st->cap = cap;
    }
    memcpy(st->data + st->len, data, len);
    st->len += len;
    return 0;
}

/* The node must be stopped. */
static bool state_read(struct cluster *c, int id, struct state *st)
{
    memset(st, 0, sizeof *st);
    struct rk_db_options opts = {
        .path = c->nodes[id - 1].data, .cluster_id = 99, .node_id = (raft_id)id};
    struct rk_db *db;
    int rc = rk_db_open(&opts, &db);
    struct raftkv_fsm *fsm = NULL;
    struct rk_kv_limits limits;
    rk_kv_limits_defaults(&limits);
    if (rc == 0)
        rc = rk_kv_fsm_open(db, &limits, &fsm);
    if (rc == 0)
        rc = fsm->ops->snapshot(fsm, state_emit, st, &st->index);
    if (rc != 0)
        fprintf(stderr, "node %d: cannot read its state: %s\n", id,
                db ? rk_db_errmsg(db) : "out of memory");
    if (fsm)
        fsm->ops->close(fsm);
    if (db)
        rk_db_close(db);
    return rc == 0;
}

/* The stream's header (32 bytes) and CRC trailer (4) hold the applied index; the records
 * between them are the data. Two nodes stopped one after the other may differ by a new
 * leader's no-op entry, which changes the applied index only. */
#define STATE_HEADER 32
#define STATE_TRAILER 4

static bool state_records_equal(const struct state *a, const struct state *b)
{
    bool eq = a->len == b->len && a->len >= STATE_HEADER + STATE_TRAILER &&
              memcmp(a->data + STATE_HEADER, b->data + STATE_HEADER,
                     a->len - STATE_HEADER - STATE_TRAILER) == 0;
    if (!eq)
        fprintf(stderr, "states differ: index %llu (%zu bytes) vs %llu (%zu bytes)\n",
                (unsigned long long)a->index, a->len, (unsigned long long)b->index, b->len);
    return eq;
}

static bool state_equal(const struct state *a, const struct state *b)
{
    return state_records_equal(a, b) && a->index == b->index &&
           memcmp(a->data, b->data, a->len) == 0;
}

/* One record of a state's stream (kv.h: key length u32, value length u32, create and mod
 * revision u64, key, value; big-endian). */
struct record {
    const uint8_t *key, *value;
    uint32_t klen, vlen;
    uint64_t create, mod;
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool record_next(const struct state *st, size_t *off, struct record *r)
{
    size_t end = st->len - STATE_TRAILER;
    if (*off + 24 > end)
        return false;
    const uint8_t *p = st->data + *off;
    r->klen = be32(p);
    r->vlen = be32(p + 4);
    r->create = rk_db_decode_u64(p + 8);
    r->mod = rk_db_decode_u64(p + 16);
    if (*off + 24 + r->klen + r->vlen > end)
        return false;
    r->key = p + 24;
    r->value = r->key + r->klen;
    *off += 24 + (size_t)r->klen + r->vlen;
    return true;
}

static int key_cmp(const struct record *a, const struct record *b)
{
    int c = memcmp(a->key, b->key, a->klen < b->klen ? a->klen : b->klen);
    return c ? c : (a->klen > b->klen) - (a->klen < b->klen);
}

/* A node killed in the middle of an install keeps its old state -- but Raft lets it apply
 * committed entries from its log first (e.g. an AppendEntries that waited in the network
 * while it was down). What it must never hold is any part of the snapshot: so `after` is
 * `before` plus only what entries up to after's own applied index wrote. Every record of
 * `before` is still there, unchanged or changed after before's index, and nothing was
 * written after after's index (the snapshot being installed is of a later index). */
static bool state_continues(const struct state *before, const struct state *after)
{
    if (after->index == before->index)
        return state_equal(before, after);
    if (after->index < before->index || before->len < STATE_HEADER + STATE_TRAILER ||
        after->len < STATE_HEADER + STATE_TRAILER)
        return false;
    size_t ob = STATE_HEADER, oa = STATE_HEADER;
    struct record b, a;
    bool hb = record_next(before, &ob, &b);
    while (record_next(after, &oa, &a)) {
        int cmp = hb ? key_cmp(&b, &a) : 1;
        bool ok = a.mod <= after->index && cmp >= 0;
        if (ok && cmp == 0)
            ok = a.mod > before->index ||
                 (a.vlen == b.vlen && a.mod == b.mod && memcmp(a.value, b.value, a.vlen) == 0);
        else if (ok)
            ok = a.create > before->index; /* a key created since */
        if (!ok) {
            fprintf(stderr, "state at %llu does not continue the one at %llu\n",
                    (unsigned long long)after->index, (unsigned long long)before->index);
            return false;
        }
        if (cmp == 0)
            hb = record_next(before, &ob, &b);
    }
    return !hb;
}

/* ---- Files. ---- */

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Bytes of the files in a node's data dir (LMDB files and snapshots). */
static uint64_t data_dir_bytes(struct cluster *c, int id)
{
    char path[512];
    const char *dir = c->nodes[id - 1].data;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    uint64_t sum = file_size(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    sum += file_size(path);
    snprintf(path, sizeof path, "%s/snapshots", dir);
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char file[1024];
        snprintf(file, sizeof file, "%s/%s", path, de->d_name);
        if (de->d_name[0] != '.')
            sum += file_size(file);
    }
    if (d)
        closedir(d);
    return sum;
}

static void incoming_path(struct cluster *c, int id, char *out, size_t len)
{
    snprintf(out, len, "%s/snapshots/incoming.tmp", c->nodes[id - 1].data);
}

/* Starts node id, which needs a snapshot, and kill -9s it once part of the snapshot is
 * on its disk but before it was installed. */
static bool kill_during_install(struct cluster *c, int id)
{
    char path[512];
    incoming_path(c, id, path, sizeof path);
    REQUIRE(cluster_spawn(c, id));
    uint64_t deadline = now_ms() + WAIT_MS;
    while (file_size(path) == 0 && now_ms() < deadline)
        sleep_ms(1);
    uint64_t got = file_size(path);
    REQUIRE(cluster_stop(c, id, SIGKILL) == -1);
    fprintf(stderr, "  node %d killed with %llu snapshot bytes received\n", id,
            (unsigned long long)got);
    REQUIRE(got > 0);
    REQUIRE(!cluster_log_contains(c, id, "installed the snapshot"));
    return true;
}

/* Waits until every running node has applied the same index, at least min. */
static bool wait_converged(struct cluster *c, uint64_t min)
{
    uint64_t deadline = now_ms() + WAIT_MS;
    while (now_ms() < deadline) {
        uint64_t first = 0;
        bool same = true;
        for (int i = 1; i <= c->n && same; i++) {
            struct raftkv_node_status st;
            if (!c->nodes[i - 1].pid)
                continue;
            same = cluster_status(c, i, &st) && st.applied_index >= min &&
                   (first == 0 || st.applied_index == first);
            first = st.applied_index;
        }
        if (same)
            return true;
        sleep_ms(20);
    }
    fprintf(stderr, "nodes did not converge on one applied index >= %llu\n",
            (unsigned long long)min);
    return false;
}

static int other_follower(uint64_t leader, int not_this)
{
    for (int i = 1; i <= 3; i++)
        if (i != (int)leader && i != not_this)
            return i;
    return 0;
}

static bool check_sample(struct cluster *c, const char *prefix, int n_keys, int round)
{
    char key[64], value[64];
    for (int i = 0; i < n_keys; i += n_keys / 50) {
        snprintf(key, sizeof key, "%s%d", prefix, i);
        cluster_value(i, round, value, sizeof value);
        REQUIRE(cluster_get_is(c->client, key, value));
    }
    return true;
}

#define N_KEYS 100000
#define N_MORE 10000

/* The opening of the install scenarios: n_keys written and on every node, the leader's log
 * compacted, and then a follower killed and its data dir wiped (down when this returns). */
static bool compact_and_wipe_a_follower(struct cluster *c, int n_keys, uint64_t *leader, int *wiped,
                                        uint64_t *rev)
{
    REQUIRE(cluster_start_all(c));
    REQUIRE(cluster_wait_leader(c, WAIT_MS));
    uint64_t start = now_ms();
    REQUIRE(cluster_write_keys(c, "key-", n_keys, 0, 1, WRITERS, rev));
    fprintf(stderr, "  %d keys written in %llu ms (last revision %llu)\n", n_keys,
            (unsigned long long)(now_ms() - start), (unsigned long long)*rev);
    REQUIRE(wait_converged(c, *rev));
    *leader = cluster_wait_leader(c, WAIT_MS);
    REQUIRE(*leader && cluster_log_contains(c, (int)*leader, "log compacted up to index"));
    *wiped = other_follower(*leader, 0);
    REQUIRE(cluster_stop(c, *wiped, SIGKILL) == -1);
    REQUIRE(cluster_wipe(c, *wiped));
    return true;
}

static bool scenario_install(struct cluster *c)
{
    uint64_t leader, rev;
    int wiped;
    REQUIRE(compact_and_wipe_a_follower(c, N_KEYS, &leader, &wiped, &rev));
    /* The wiped follower is killed in the middle of its install, then restarted. */
    REQUIRE(kill_during_install(c, wiped));
    REQUIRE(cluster_start(c, wiped));
    REQUIRE(cluster_wait_applied(c, wiped, rev, WAIT_MS));
    REQUIRE(cluster_log_contains(c, wiped, "installed the snapshot"));

    /* A follower with older state: the others go on and compact past it; it is killed in
     * the middle of its install, which must leave its old state exactly. */
    int behind = other_follower(leader, wiped);
    REQUIRE(cluster_stop(c, behind, SIGTERM) == 0);
    struct state before, after;
    REQUIRE(state_read(c, behind, &before));
    REQUIRE(cluster_write_keys(c, "more-", N_MORE, 0, 1, WRITERS, &rev));
    REQUIRE(kill_during_install(c, behind));
    bool same = state_read(c, behind, &after) && state_continues(&before, &after);
    free(before.data);
    free(after.data);
    REQUIRE(same);
    REQUIRE(cluster_start(c, behind));
    REQUIRE(cluster_wait_applied(c, behind, rev, WAIT_MS));
    REQUIRE(cluster_log_contains(c, behind, "installed the snapshot"));

    /* The wiped node serves: without the third node, every commit needs it. */
    REQUIRE(cluster_stop(c, behind, SIGKILL) == -1);
    REQUIRE(cluster_put_retry(c, "after-install", "x", WAIT_MS, &rev));
    REQUIRE(check_sample(c, "key-", N_KEYS, 0));
    REQUIRE(cluster_start(c, behind));

    /* Every node holds the same state, byte for byte. */
    REQUIRE(wait_converged(c, rev));
    struct state st[3];
    for (int i = 1; i <= 3; i++)
        REQUIRE(cluster_stop(c, i, SIGTERM) == 0);
    bool equal = true;
    for (int i = 0; i < 3; i++)
        equal = state_read(c, i + 1, &st[i]) && equal;
    equal = equal && state_records_equal(&st[0], &st[1]) && state_records_equal(&st[0], &st[2]);
    for (int i = 0; i < 3; i++)
        free(st[i].data);
    REQUIRE(equal);

    /* Restart after compaction: term, vote, log and state come back. */
    REQUIRE(cluster_start_all(c));
    REQUIRE(cluster_wait_leader(c, WAIT_MS));
    REQUIRE(check_sample(c, "key-", N_KEYS, 0));
    REQUIRE(check_sample(c, "more-", N_MORE, 0));
    REQUIRE(cluster_put_retry(c, "after-restart", "y", WAIT_MS, &rev));
    REQUIRE(wait_converged(c, rev));
    return true;
}

/* Overwrites: 1,000 keys, 200 rounds. */
#define OW_KEYS 1000
#define OW_ROUNDS 200
/* The bound asserted on every node's data dir (LMDB files and snapshots), with the default
 * snapshot settings: a node holds at most snapshot_entries + snapshot_trailing_entries
 * (15,000, plus what is in flight) log entries of ~100 bytes with LMDB's pages (~2 MB),
 * 1,000 keys (~0.1 MB), one or two snapshot files (60 KB each), and the pages freed while
 * a snapshot's read is open: under 6 MiB (measured: 1.6 MiB). Without compaction the log
 * holds all 200,000 entries: 16.4 MiB measured by cluster_snapshot_bench. */
#define DATA_DIR_BOUND (6u << 20)
#define GROWTH_SLACK (1u << 20)

static bool scenario_overwrite(struct cluster *c)
{
    REQUIRE(cluster_start_all(c));
    REQUIRE(cluster_wait_leader(c, WAIT_MS));
    uint64_t rev, half[3];
    uint64_t start = now_ms();
    REQUIRE(cluster_write_keys(c, "ow-", OW_KEYS, 0, OW_ROUNDS / 2, WRITERS, &rev));
    REQUIRE(wait_converged(c, rev));
    for (int i = 0; i < 3; i++)
        half[i] = data_dir_bytes(c, i + 1);
    REQUIRE(cluster_write_keys(c, "ow-", OW_KEYS, OW_ROUNDS / 2, OW_ROUNDS, WRITERS, &rev));
    REQUIRE(wait_converged(c, rev));
    fprintf(stderr, "  %d puts in %llu ms\n", OW_KEYS * OW_ROUNDS,
            (unsigned long long)(now_ms() - start));
    for (int i = 0; i < 3; i++) {
        uint64_t end = data_dir_bytes(c, i + 1);
        fprintf(stderr, "  node %d data dir: %.1f MiB after 100 rounds, %.1f MiB after 200\n",
                i + 1, (double)half[i] / (1 << 20), (double)end / (1 << 20));
        REQUIRE(end < DATA_DIR_BOUND);
        /* Free pages are reused: the second half of the workload does not grow it. */
        REQUIRE(end <= half[i] + GROWTH_SLACK);
        REQUIRE(cluster_log_contains(c, i + 1, "log compacted up to index"));
    }
    REQUIRE(check_sample(c, "ow-", OW_KEYS, OW_ROUNDS - 1));
    return true;
}

/* The path of node id's latest snapshot file (the only <index>.snap), or false. */
static bool latest_snapshot_path(struct cluster *c, int id, char *out, size_t len)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/snapshots", c->nodes[id - 1].data);
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".snap") && !found) {
            snprintf(out, len, "%s/%s", dir, e->d_name);
            found = true;
        }
    if (d)
        closedir(d);
    return found;
}

/* Bits flip in the leader's snapshot file on its disk. A follower that needs a snapshot
 * must not get those bytes: the leader checks the file before sending, deletes it, takes a
 * new one and sends that. */
static bool scenario_damaged_file(struct cluster *c)
{
    uint64_t leader, rev;
    int wiped;
    REQUIRE(compact_and_wipe_a_follower(c, 10000, &leader, &wiped, &rev));
    char path[600];
    REQUIRE(latest_snapshot_path(c, (int)leader, path, sizeof path));
    FILE *f = fopen(path, "r+b");
    REQUIRE(f);
    REQUIRE(fseek(f, 100, SEEK_SET) == 0);
    int byte = fgetc(f);
    REQUIRE(byte != EOF && fseek(f, 100, SEEK_SET) == 0 && fputc(byte ^ 0x5a, f) != EOF);
    REQUIRE(fclose(f) == 0);
    REQUIRE(cluster_start(c, wiped));
    REQUIRE(cluster_wait_applied(c, wiped, rev, WAIT_MS));
    struct raftkv_node_status st;
    REQUIRE(cluster_status(c, (int)leader, &st));
    fprintf(stderr, "  leader found %llu damaged file(s); the follower refused %llu snapshot(s)\n",
            (unsigned long long)st.counters.snapshots_damaged,
            (unsigned long long)st.counters.snapshots_refused);
    REQUIRE(st.counters.snapshots_damaged >= 1);
    REQUIRE(cluster_log_contains(c, wiped, "installed the snapshot"));
    return check_sample(c, "key-", 10000, 0);
}

static bool with_cluster(const char *conf, bool (*fn)(struct cluster *c))
{
    return cluster_run(3, conf, fn);
}

TEST(install_after_wipe_and_crash)
{
    CHECK(with_cluster(SMALL_SNAPSHOTS, scenario_install));
}

TEST(damaged_file_is_taken_anew)
{
    CHECK(with_cluster(SMALL_SNAPSHOTS, scenario_damaged_file));
}

TEST(overwrite_bounded_data_dir)
{
    CHECK(with_cluster(NULL, scenario_overwrite));
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    static const struct test_case cases[] = {TEST_REF(install_after_wipe_and_crash),
                                             TEST_REF(damaged_file_is_taken_anew),
                                             TEST_REF(overwrite_bounded_data_dir)};
    return test_run_all(cases, sizeof cases / sizeof cases[0], argc, argv);
}
