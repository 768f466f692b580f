/* The LMDB environment (identity, format, growth, full map) and the LMDB Raft log. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/db.h"
#include "storage/storage.h"
#include "test.h"
#include "storage/tmp_dir.h"

static struct rk_db_options options(const char *path, uint64_t cluster, raft_id node)
{
    struct rk_db_options o = {.path = path, .cluster_id = cluster, .node_id = node};
    return o;
}

static struct rk_db *open_ok(const struct rk_db_options *o)
{
    struct rk_db *db;
    int rc = rk_db_open(o, &db);
    if (rc) {
        fprintf(stderr, "rk_db_open: %s\n", rk_db_errmsg(db));
        rk_db_close(db);
        return NULL;
    }
    return db;
}

/* A scratch data dir, the environment on it and the LMDB log on that: the setup most tests
 * share. The options are cluster 1 node 1 unless a test changes f.o before opening. */
struct fixture {
    struct tmp_dir dir;
    struct rk_db_options o;
    struct rk_db *db;
    struct rk_storage *s;
};

static bool fixture_make(struct fixture *f)
{
    *f = (struct fixture){0};
    if (!tmp_dir_make(&f->dir))
        return false;
    f->o = options(f->dir.path, 1, 1);
    return true;
}

/* A data dir whose map starts at initial bytes and may grow to max (0: the defaults). */
static bool fixture_make_map(struct fixture *f, size_t initial, size_t max)
{
    if (!fixture_make(f))
        return false;
    f->o.initial_map_bytes = initial;
    f->o.max_map_bytes = max;
    return true;
}

/* Opens the environment, and the log on it unless the test opens it itself. */
static bool fixture_open_db(struct fixture *f)
{
    f->db = open_ok(&f->o);
    return f->db != NULL;
}

static bool fixture_open(struct fixture *f)
{
    return fixture_open_db(f) && rk_lmdb_storage_new(f->db, &f->s) == 0;
}

static void fixture_close(struct fixture *f)
{
    if (f->s)
        f->s->ops->close(f->s);
    rk_db_close(f->db);
    f->s = NULL;
    f->db = NULL;
}

/* As a restarted node sees its data dir. */
static bool fixture_reopen(struct fixture *f)
{
    fixture_close(f);
    return fixture_open(f);
}

static void fixture_remove(struct fixture *f)
{
    fixture_close(f);
    tmp_dir_remove(&f->dir);
}

/* A made and opened fixture, as a test's first check. */
static bool fixture_start(struct fixture *f)
{
    return fixture_make(f) && fixture_open(f);
}

/* Saves one ready (inside rk_db_write, as the host does). */
struct save {
    struct rk_storage *s;
    const struct raft_ready *rd;
};

static int save_fn(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct save *sv = arg;
    return sv->s->ops->save(sv->s, sv->rd);
}

static int save_ready(struct fixture *f, const struct raft_ready *rd)
{
    struct save sv = {f->s, rd};
    return rk_db_write(f->db, save_fn, &sv);
}

/* n entries from index first, term term, each with len bytes derived from its index. */
static struct raft_entry *make_entries(raft_index first, size_t n, raft_term term, size_t len)
{
    struct raft_entry *es = calloc(n, sizeof *es);
    for (size_t i = 0; i < n; i++) {
        es[i].index = first + i;
        es[i].term = term;
        es[i].type = (first + i) % 3 == 0 ? RAFT_ENTRY_NOOP : RAFT_ENTRY_NORMAL;
        es[i].len = es[i].type == RAFT_ENTRY_NOOP ? 0 : len;
        if (es[i].len) {
            es[i].data = malloc(len);
            memset(es[i].data, (int)(first + i), len);
        }
    }
    return es;
}

static void free_entries(struct raft_entry *es, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(es[i].data);
    free(es);
}

/* Saves a ready of n made entries from first, with the rest of the ready as given. */
static int save_entries(struct fixture *f, struct raft_ready rd, raft_index first, size_t n,
                        raft_term term, size_t len)
{
    struct raft_entry *es = make_entries(first, n, term, len);
    rd.n_entries = n;
    rd.entries = es;
    int rc = save_ready(f, &rd);
    free_entries(es, n);
    return rc;
}

static int append(struct fixture *f, raft_index first, size_t n, raft_term term, size_t len)
{
    return save_entries(f, (struct raft_ready){0}, first, n, term, len);
}

static bool entry_matches(const struct raft_entry *e, raft_index index, raft_term term, size_t len)
{
    struct raft_entry *want = make_entries(index, 1, term, len);
    bool ok = e->index == want->index && e->term == want->term && e->type == want->type &&
              e->len == want->len && (e->len == 0 || memcmp(e->data, want->data, e->len) == 0);
    free_entries(want, 1);
    return ok;
}

TEST(open_creates_dir_and_reopens)
{
    struct fixture f;
    CHECK(fixture_make(&f));
    char path[128];
    snprintf(path, sizeof path, "%s/a/b", f.dir.path);
    f.o = options(path, 7, 2);
    CHECK(fixture_open_db(&f));
    fixture_close(&f);
    CHECK(fixture_open_db(&f));
    fixture_remove(&f);
}

/* A data dir that cluster 7 node 2 created and closed. */
static bool fixture_of_7_2(struct fixture *f)
{
    if (!fixture_make(f))
        return false;
    f->o = options(f->dir.path, 7, 2);
    if (!fixture_open_db(f))
        return false;
    fixture_close(f);
    return true;
}

static void check_refused(bool *test_failed_, uint64_t cluster, raft_id node, const char *msg)
{
    struct fixture f;
    CHECK(fixture_of_7_2(&f));
    struct rk_db_options o = options(f.dir.path, cluster, node);
    CHECK_EQ(rk_db_open(&o, &f.db), RK_DB_EIDENTITY);
    CHECK(strstr(rk_db_errmsg(f.db), msg));
    CHECK(strstr(rk_db_errmsg(f.db), f.dir.path));
    fixture_remove(&f);
}

TEST(refuses_other_cluster)
{
    check_refused(test_failed_, 8, 2, "belongs to cluster 7 node 2, this node is cluster 8 node 2");
}

TEST(refuses_other_node)
{
    check_refused(test_failed_, 7, 3, "belongs to cluster 7 node 2, this node is cluster 7 node 3");
}

/* Rewrites the format record with raw LMDB, as a newer build would have left it. */
static int poke_format(const char *path, uint64_t format)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t v[8];
    rk_db_encode_u64(v, format);
    MDB_val k = {6, "format"}, val = {8, v};
    int rc = mdb_env_create(&env);
    if (!rc)
        rc = mdb_env_set_maxdbs(env, 4);
    if (!rc)
        rc = mdb_env_open(env, path, 0, 0600);
    if (!rc)
        rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (!rc) {
        rc = mdb_dbi_open(txn, "meta", 0, &dbi);
        if (!rc)
            rc = mdb_put(txn, dbi, &k, &val, 0);
        rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
    }
    mdb_env_close(env);
    return rc;
}

TEST(refuses_newer_format)
{
    struct fixture f;
    CHECK(fixture_of_7_2(&f));
    CHECK_EQ(poke_format(f.dir.path, 3), 0);
    CHECK_EQ(rk_db_open(&f.o, &f.db), RK_DB_EFORMAT);
    CHECK(strstr(rk_db_errmsg(f.db), "format 3, newer than this build's 2"));
    fixture_remove(&f);
}

/* Format 1 stored log records and the hard state without checksums. */
TEST(refuses_older_format)
{
    struct fixture f;
    CHECK(fixture_of_7_2(&f));
    CHECK_EQ(poke_format(f.dir.path, 1), 0);
    CHECK_EQ(rk_db_open(&f.o, &f.db), RK_DB_EFORMAT);
    CHECK(strstr(rk_db_errmsg(f.db), "format 1, older than this build's 2"));
    fixture_remove(&f);
}

TEST(log_round_trip_with_truncation_and_hard_state)
{
    struct fixture f;
    CHECK(fixture_start(&f));

    struct raft_restore r;
    CHECK_EQ(f.s->ops->load(f.s, &r), 0);
    CHECK_EQ(r.n_entries, 0);
    CHECK_EQ(r.term, 0);

    struct raft_ready rd = {.hard_state_changed = true, .term = 1, .vote = 3};
    CHECK_EQ(save_entries(&f, rd, 1, 5, 1, 10), 0);
    /* Conflicting suffix from a new leader: replace 3.. with two entries of term 2; the hard
     * state is not marked changed, so the stored one must stay. */
    rd = (struct raft_ready){.term = 9, .vote = 9, .truncate_from = 3};
    CHECK_EQ(save_entries(&f, rd, 3, 2, 2, 20), 0);

    CHECK(fixture_reopen(&f));
    CHECK_EQ(f.s->ops->load(f.s, &r), 0);
    CHECK_EQ(r.term, 1);
    CHECK_EQ(r.vote, 3);
    CHECK_EQ(r.snapshot_index, 0);
    CHECK_EQ(r.n_entries, 4);
    CHECK(entry_matches(&r.entries[0], 1, 1, 10));
    CHECK(entry_matches(&r.entries[1], 2, 1, 10));
    CHECK(entry_matches(&r.entries[2], 3, 2, 20));
    CHECK(entry_matches(&r.entries[3], 4, 2, 20));
    rk_storage_restore_free(&r);

    /* Truncating everything leaves an empty log that accepts index 1 again. */
    rd = (struct raft_ready){.hard_state_changed = true, .term = 5, .truncate_from = 1};
    CHECK_EQ(save_ready(&f, &rd), 0);
    CHECK_EQ(f.s->ops->load(f.s, &r), 0);
    CHECK_EQ(r.n_entries, 0);
    CHECK_EQ(r.term, 5);
    CHECK_EQ(r.vote, 0);
    CHECK_EQ(append(&f, 1, 1, 5, 3), 0);
    fixture_remove(&f);
}

TEST(save_refuses_gap_and_overlap_and_changes_nothing)
{
    struct fixture f;
    CHECK(fixture_start(&f));
    CHECK_EQ(append(&f, 1, 3, 1, 8), 0);
    CHECK_EQ(append(&f, 5, 1, 1, 8), RK_DB_ECORRUPT); /* gap */
    CHECK(strstr(rk_db_errmsg(f.db), "entry 5 after entry 3"));
    CHECK_EQ(append(&f, 3, 1, 1, 8), RK_DB_ECORRUPT); /* overlap without truncation */
    /* A failed batch is atomic: the hard state saved with it is gone too. */
    struct raft_ready rd = {.hard_state_changed = true, .term = 2};
    CHECK_EQ(save_entries(&f, rd, 9, 1, 2, 8), RK_DB_ECORRUPT);
    struct raft_restore r;
    CHECK_EQ(f.s->ops->load(f.s, &r), 0);
    CHECK_EQ(r.n_entries, 3);
    CHECK_EQ(r.term, 0);
    rk_storage_restore_free(&r);
    /* save outside a write transaction is refused, not crashed on */
    rd = (struct raft_ready){.hard_state_changed = true, .term = 4};
    CHECK_EQ(f.s->ops->save(f.s, &rd), RK_DB_EIO);
    fixture_remove(&f);
}

/* A configuration of two voters and a learner, for the snapshots of these tests. */
static struct raft_member conf_members[] = {
    {1, RAFT_VOTER, "tcp://127.0.0.1:7001", "tcp://127.0.0.1:7101"},
    {2, RAFT_VOTER, "tcp://127.0.0.1:7002", ""},
    {4, RAFT_LEARNER, "tcp://127.0.0.1:7004", "tcp://127.0.0.1:7104"},
};
static const struct raft_configuration test_conf = {3, conf_members};

TEST(installed_snapshot_replaces_the_log)
{
    struct fixture f;
    CHECK(fixture_start(&f));
    CHECK_EQ(append(&f, 1, 5, 1, 8), 0);
    struct raft_ready rd = {.install_snapshot = true,
                            .snapshot = {.index = 20, .term = 3, .size = 777},
                            .snapshot_conf = &test_conf};
    CHECK_EQ(save_entries(&f, rd, 21, 2, 3, 8), 0);
    CHECK_EQ(append(&f, 24, 1, 3, 8), RK_DB_ECORRUPT); /* continues at 23, not 24 */
    struct raft_restore r;
    CHECK_EQ(f.s->ops->load(f.s, &r), 0);
    CHECK_EQ(r.snapshot_index, 20);
    CHECK_EQ(r.snapshot_term, 3);
    CHECK_EQ(r.snapshot.index, 20);
    CHECK_EQ(r.snapshot.term, 3);
    CHECK_EQ(r.snapshot.size, 777);
    CHECK_EQ(r.n_entries, 2);
    CHECK(entry_matches(&r.entries[0], 21, 3, 8));
    CHECK(entry_matches(&r.entries[1], 22, 3, 8));
    CHECK(raft_configuration_equal(&r.snapshot_conf, &test_conf));
    rk_storage_restore_free(&r);
    fixture_remove(&f);
}

static int delete_index_2(MDB_txn *txn, void *arg)
{
    uint8_t key[8];
    rk_db_encode_u64(key, 2);
    MDB_val k = {8, key};
    return mdb_del(txn, *(MDB_dbi *)arg, &k, NULL) ? RK_DB_EIO : RK_DB_OK;
}

TEST(load_detects_gap)
{
    struct fixture f;
    CHECK(fixture_start(&f));
    CHECK_EQ(append(&f, 1, 4, 1, 8), 0);
    MDB_dbi log;
    CHECK_EQ(rk_db_dbi(f.db, "log", &log), 0);
    CHECK_EQ(rk_db_write(f.db, delete_index_2, &log), 0);
    struct raft_restore r;
    CHECK_EQ(f.s->ops->load(f.s, &r), RK_DB_ECORRUPT);
    CHECK(strstr(rk_db_errmsg(f.db), "gap"));
    CHECK_EQ(r.n_entries, 0);
    CHECK(r.entries == NULL);
    fixture_remove(&f);
}

TEST(map_grows_and_reopen_keeps_grown_size)
{
    struct fixture f;
    CHECK(fixture_make_map(&f, 64 << 10, 64 << 20));
    CHECK(fixture_open_db(&f));
    struct rk_db_stats st;
    rk_db_stats(f.db, &st);
    CHECK_EQ(st.map_bytes, 64 << 10);
    CHECK_EQ(rk_lmdb_storage_new(f.db, &f.s), 0);
    /* ~1.3 MiB of entries (a third are empty no-ops) in batches of 50: from 64 KiB the map
     * must double at least 5 times. */
    for (raft_index i = 1; i <= 2000; i += 50)
        CHECK_EQ(append(&f, i, 50, 1, 1000), 0);
    rk_db_stats(f.db, &st);
    CHECK(st.map_grows >= 5);
    CHECK_EQ(st.map_bytes, (size_t)(64 << 10) << st.map_grows);
    CHECK(st.used_bytes > (1 << 20));
    CHECK(st.used_bytes <= st.map_bytes);
    size_t grown = st.map_bytes;
    fixture_close(&f);

    CHECK(fixture_open_db(&f));
    rk_db_stats(f.db, &st);
    CHECK_EQ(st.map_bytes, grown);
    CHECK_EQ(st.map_grows, 0);
    CHECK_EQ(rk_lmdb_storage_new(f.db, &f.s), 0);
    struct raft_restore r;
    CHECK_EQ(f.s->ops->load(f.s, &r), 0);
    CHECK_EQ(r.n_entries, 2000);
    for (size_t i = 0; i < r.n_entries; i++)
        CHECK(entry_matches(&r.entries[i], i + 1, 1, 1000));
    rk_storage_restore_free(&r);
    fixture_remove(&f);
}

TEST(full_at_max_refuses_writes_and_keeps_reads)
{
    struct fixture f;
    CHECK(fixture_make_map(&f, 64 << 10, 256 << 10));
    CHECK(fixture_open(&f));
    raft_index next = 1;
    int rc;
    while ((rc = append(&f, next, 10, 1, 1000)) == 0 && next < 10000)
        next += 10;
    CHECK_EQ(rc, RK_DB_EFULL);
    CHECK(strstr(rk_db_errmsg(f.db), "max_map_bytes"));
    struct rk_db_stats st;
    rk_db_stats(f.db, &st);
    CHECK_EQ(st.map_bytes, 256 << 10);
    CHECK_EQ(st.map_grows, 2);
    CHECK_EQ(append(&f, next, 1, 1, 1000), RK_DB_EFULL);

    struct raft_restore r;
    CHECK_EQ(f.s->ops->load(f.s, &r), 0);
    CHECK_EQ(r.n_entries, next - 1);
    CHECK(r.n_entries > 0);
    CHECK(entry_matches(&r.entries[r.n_entries - 1], next - 1, 1, 1000));
    rk_storage_restore_free(&r);

    /* A full data dir still opens, and a larger maximum lets it grow again. */
    f.o.max_map_bytes = 1 << 20;
    CHECK(fixture_reopen(&f));
    CHECK_EQ(append(&f, next, 10, 1, 1000), 0);
    fixture_remove(&f);
}

struct compact {
    struct rk_storage *s;
    struct raft_snapshot_meta meta;
    raft_index to;
    raft_term term;
};

static int compact_fn(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct compact *c = arg;
    return c->s->ops->compact(c->s, &c->meta, &test_conf, c->to, c->term);
}

static int compact(struct fixture *f, raft_index snap_index, raft_term snap_term, uint64_t size,
                   raft_index to, raft_term term)
{
    struct compact c = {f->s, {snap_index, snap_term, size}, to, term};
    return rk_db_write(f->db, compact_fn, &c);
}

/* load reports the log start, the snapshot meta and the entries after the start. */
static bool loads(struct rk_storage *s, raft_index start, raft_term start_term,
                  raft_index snap_index, raft_term snap_term, uint64_t size, raft_index last)
{
    struct raft_restore r;
    if (s->ops->load(s, &r) != 0)
        return false;
    bool ok = r.snapshot_index == start && r.snapshot_term == start_term &&
              r.snapshot.index == snap_index && r.snapshot.term == snap_term &&
              r.snapshot.size == size && r.n_entries == last - start &&
              (snap_index ? raft_configuration_equal(&r.snapshot_conf, &test_conf)
                          : r.snapshot_conf.n == 0);
    for (size_t i = 0; ok && i < r.n_entries; i++)
        ok = entry_matches(&r.entries[i], start + 1 + i, start + 1 + i <= 50 ? 1 : 2, 16);
    if (!ok)
        fprintf(stderr,
                "loaded start %" PRIu64 "/%" PRIu64 " snapshot %" PRIu64 "/%" PRIu64 "/%" PRIu64
                ", %zu entries\n",
                r.snapshot_index, r.snapshot_term, r.snapshot.index, r.snapshot.term,
                r.snapshot.size, r.n_entries);
    rk_storage_restore_free(&r);
    return ok;
}

TEST(compact_then_reopen_reports_log_start_snapshot_and_entries)
{
    struct fixture f;
    CHECK(fixture_start(&f));
    CHECK_EQ(append(&f, 1, 50, 1, 16), 0);
    CHECK_EQ(append(&f, 51, 10, 2, 16), 0);
    CHECK(loads(f.s, 0, 0, 0, 0, 0, 60));
    /* snapshot at 55, keeping entries 46.. for slow followers */
    CHECK_EQ(compact(&f, 55, 2, 12345, 45, 1), 0);
    CHECK(fixture_reopen(&f));
    CHECK(loads(f.s, 45, 1, 55, 2, 12345, 60));

    /* refused, changing nothing: a wrong term for compact_to, compact_to past the snapshot */
    CHECK_EQ(compact(&f, 58, 2, 1, 50, 2), RK_DB_ECORRUPT);
    CHECK(strstr(rk_db_errmsg(f.db), "another term"));
    CHECK_EQ(compact(&f, 58, 2, 1, 59, 2), RK_DB_ECORRUPT);
    CHECK(strstr(rk_db_errmsg(f.db), "past the snapshot"));
    CHECK(loads(f.s, 45, 1, 55, 2, 12345, 60));
    /* an older snapshot moves nothing back */
    CHECK_EQ(compact(&f, 40, 1, 9, 30, 1), 0);
    CHECK(loads(f.s, 45, 1, 55, 2, 12345, 60));
    /* outside a write transaction: refused */
    struct raft_snapshot_meta meta = {58, 2, 1};
    CHECK_EQ(f.s->ops->compact(f.s, &meta, &test_conf, 50, 1), RK_DB_EIO);

    /* compacting the whole log: it goes on at the next index */
    CHECK_EQ(compact(&f, 60, 2, 777, 60, 2), 0);
    CHECK(loads(f.s, 60, 2, 60, 2, 777, 60));
    CHECK_EQ(append(&f, 62, 1, 2, 16), RK_DB_ECORRUPT);
    CHECK_EQ(append(&f, 61, 3, 2, 16), 0);
    CHECK(loads(f.s, 60, 2, 60, 2, 777, 63));
    fixture_remove(&f);
}

static int damage_snapshot_conf(MDB_txn *txn, void *arg)
{
    struct fixture *f = arg;
    uint8_t *buf;
    size_t len;
    int rc = rk_db_meta_get_bytes(f->db, txn, "snapshot_conf", &buf, &len);
    if (rc || !buf)
        return rc ? rc : RK_DB_EIO;
    buf[len / 2] ^= 0x20;
    rc = rk_db_meta_put_bytes(f->db, txn, "snapshot_conf", buf, len);
    free(buf);
    return rc;
}

TEST(load_refuses_a_damaged_snapshot_configuration)
{
    struct fixture f;
    CHECK(fixture_start(&f));
    CHECK_EQ(append(&f, 1, 50, 1, 16), 0);
    CHECK_EQ(compact(&f, 40, 1, 100, 30, 1), 0);
    CHECK_EQ(rk_db_write(f.db, damage_snapshot_conf, &f), 0);
    struct raft_restore r;
    CHECK_EQ(f.s->ops->load(f.s, &r), RK_DB_ECORRUPT);
    CHECK(strstr(rk_db_errmsg(f.db), "configuration"));
    fixture_remove(&f);
}

static int put_log_start(MDB_txn *txn, void *arg)
{
    uint64_t start[2] = {10, 1};
    return rk_db_meta_put(arg, txn, "snapshot", start, 2);
}

TEST(load_refuses_a_log_start_without_a_snapshot)
{
    struct fixture f;
    CHECK(fixture_start(&f));
    CHECK_EQ(rk_db_write(f.db, put_log_start, f.db), 0);
    struct raft_restore r;
    CHECK_EQ(f.s->ops->load(f.s, &r), RK_DB_ECORRUPT);
    CHECK(strstr(rk_db_errmsg(f.db), "latest snapshot is at 0"));
    fixture_remove(&f);
}

static off_t file_size(const char *dir)
{
    char path[128];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* LMDB reuses the pages compaction frees: a log appended to and compacted for a long time
 * stays the size of what it holds, not of what went through it (40 MiB here). */
TEST(append_and_compact_keep_the_file_bounded)
{
    struct fixture f;
    CHECK(fixture_make_map(&f, 0, 256 << 20));
    CHECK(fixture_open(&f));
    const size_t per_round = 40, entry = 4096, keep = 20;
    off_t warm = 0;
    struct rk_db_stats st;
    for (size_t round = 1; round <= 250; round++) {
        raft_index first = (round - 1) * per_round + 1, last = round * per_round;
        CHECK_EQ(append(&f, first, per_round, 1, entry), 0);
        CHECK_EQ(compact(&f, last, 1, 1, last - keep, 1), 0);
        if (round == 25)
            warm = file_size(f.dir.path);
    }
    off_t end = file_size(f.dir.path);
    rk_db_stats(f.db, &st);
    fprintf(stderr, "data.mdb: %lld bytes after 25 rounds, %lld after 250 (%zu used)\n",
            (long long)warm, (long long)end, st.used_bytes);
    CHECK(warm > 0);
    CHECK(end <= 2 * warm);
    CHECK(end < (4 << 20));
    struct raft_restore r;
    CHECK_EQ(f.s->ops->load(f.s, &r), 0);
    CHECK_EQ(r.n_entries, keep);
    CHECK_EQ(r.snapshot_index, 250 * per_round - keep);
    rk_storage_restore_free(&r);
    fixture_remove(&f);
}

TEST(reserve_grows_the_map_ahead_of_a_large_write)
{
    struct fixture f;
    CHECK(fixture_make_map(&f, 64 << 10, 8 << 20));
    CHECK(fixture_open_db(&f));
    struct rk_db_stats before, after;
    rk_db_stats(f.db, &before);
    CHECK_EQ(rk_db_reserve(f.db, 1000), 0); /* fits already */
    rk_db_stats(f.db, &after);
    CHECK_EQ(after.map_grows, 0);
    CHECK_EQ(rk_db_reserve(f.db, 3 << 20), 0);
    rk_db_stats(f.db, &after);
    CHECK(after.map_bytes >= after.used_bytes + (3 << 20));
    CHECK_EQ(after.map_bytes, (size_t)4 << 20); /* doubled from 64 KiB, no further */
    /* ~1.3 MiB of entries then need no growth */
    CHECK_EQ(rk_lmdb_storage_new(f.db, &f.s), 0);
    uint64_t grows = after.map_grows;
    CHECK_EQ(append(&f, 1, 2000, 1, 1000), 0);
    rk_db_stats(f.db, &after);
    CHECK_EQ(after.map_grows, grows);
    CHECK_EQ(rk_db_reserve(f.db, 16 << 20), RK_DB_EFULL);
    CHECK(strstr(rk_db_errmsg(f.db), "max_map_bytes"));
    rk_db_stats(f.db, &after);
    CHECK_EQ(after.map_bytes, (size_t)8 << 20);
    fixture_remove(&f);
}

static int fail_after_put(MDB_txn *txn, void *arg)
{
    (void)txn;
    uint64_t v = 42;
    int rc = rk_db_meta_put(arg, rk_db_current_txn(arg), "test", &v, 1);
    return rc ? rc : RK_DB_EIO;
}

static int put_test(MDB_txn *txn, void *arg)
{
    uint64_t v = 43;
    return rk_db_meta_put(arg, txn, "test", &v, 1);
}

TEST(write_fn_error_aborts_and_commit_is_counted)
{
    struct fixture f;
    CHECK(fixture_make(&f));
    CHECK(fixture_open_db(&f));
    struct rk_db *db = f.db;
    struct rk_db_stats before, after;
    rk_db_stats(db, &before);
    CHECK(rk_db_current_txn(db) == NULL);
    CHECK_EQ(rk_db_write(db, fail_after_put, db), RK_DB_EIO);
    MDB_txn *txn;
    uint64_t v;
    bool found;
    CHECK_EQ(rk_db_read_begin(db, &txn), 0);
    CHECK_EQ(rk_db_meta_get(db, txn, "test", &v, 1, &found), 0);
    rk_db_read_end(db, txn);
    CHECK(!found);
    CHECK_EQ(rk_db_write(db, put_test, db), 0);
    rk_db_stats(db, &after);
    CHECK_EQ(after.commits, before.commits + 1);
    CHECK_EQ(rk_db_read_begin(db, &txn), 0);
    CHECK_EQ(rk_db_meta_get(db, txn, "test", &v, 1, &found), 0);
    CHECK(found);
    CHECK_EQ(v, 43);
    /* a record of the wrong size is reported, not misread */
    uint64_t two[2];
    CHECK_EQ(rk_db_meta_get(db, txn, "test", two, 2, NULL), RK_DB_ECORRUPT);
    rk_db_read_end(db, txn);
    fixture_remove(&f);
}

/* A write that fills the map on its first runs, with a step before the sync. */
struct staged {
    struct rk_db *db;
    MDB_dbi dbi;
    int fn_runs;
    int staged_runs;
    int fn_runs_at_stage;
    uint64_t commits_at_stage;
    bool fail;
};

static int staged_fn(MDB_txn *txn, void *arg)
{
    struct staged *st = arg;
    st->fn_runs++;
    if (st->fail)
        return RK_DB_EIO;
    static char value[512 << 10];
    for (int i = 0; i < 4; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", i);
        MDB_val k = {strlen(key), key}, v = {sizeof value, value};
        int rc = rk_db_check(st->db, mdb_put(txn, st->dbi, &k, &v, 0), "put");
        if (rc)
            return rc;
    }
    return 0;
}

static void staged_step(void *arg)
{
    struct staged *st = arg;
    struct rk_db_stats stats;
    rk_db_stats(st->db, &stats);
    st->staged_runs++;
    st->fn_runs_at_stage = st->fn_runs;
    st->commits_at_stage = stats.commits;
}

/* The step runs once, after the write that will commit has run and before it commits,
 * however often a filling map makes the write run again; never after a failed write. */
TEST(staged_write_runs_its_step_once_before_the_commit)
{
    struct fixture f;
    CHECK(fixture_make_map(&f, 64 << 10, 64 << 20));
    CHECK(fixture_open_db(&f));
    struct staged st = {.db = f.db};
    CHECK_EQ(rk_db_dbi(f.db, "staged", &st.dbi), 0);
    struct rk_db_stats before, after;
    rk_db_stats(f.db, &before);
    CHECK_EQ(rk_db_write_staged(f.db, staged_fn, staged_step, &st), 0);
    rk_db_stats(f.db, &after);
    CHECK(after.map_grows > 0);
    CHECK(st.fn_runs > 1);
    CHECK_EQ(st.staged_runs, 1);
    CHECK_EQ(st.fn_runs_at_stage, st.fn_runs);
    CHECK_EQ(st.commits_at_stage, before.commits);
    CHECK_EQ(after.commits, before.commits + 1);

    struct staged failing = {.db = f.db, .dbi = st.dbi, .fail = true};
    CHECK_EQ(rk_db_write_staged(f.db, staged_fn, staged_step, &failing), RK_DB_EIO);
    CHECK_EQ(failing.staged_runs, 0);
    fixture_remove(&f);
}

TEST_MAIN(TEST_REF(open_creates_dir_and_reopens), TEST_REF(refuses_other_cluster),
          TEST_REF(refuses_other_node), TEST_REF(refuses_newer_format),
          TEST_REF(refuses_older_format), TEST_REF(log_round_trip_with_truncation_and_hard_state),
          TEST_REF(save_refuses_gap_and_overlap_and_changes_nothing), TEST_REF(load_detects_gap),
          TEST_REF(installed_snapshot_replaces_the_log),
          TEST_REF(map_grows_and_reopen_keeps_grown_size),
          TEST_REF(full_at_max_refuses_writes_and_keeps_reads),
          TEST_REF(write_fn_error_aborts_and_commit_is_counted),
          TEST_REF(compact_then_reopen_reports_log_start_snapshot_and_entries),
          TEST_REF(load_refuses_a_log_start_without_a_snapshot),
          TEST_REF(load_refuses_a_damaged_snapshot_configuration),
          TEST_REF(append_and_compact_keep_the_file_bounded),
          TEST_REF(reserve_grows_the_map_ahead_of_a_large_write),
          TEST_REF(staged_write_runs_its_step_once_before_the_commit))
