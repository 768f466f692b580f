/* A data dir that cannot lie: one process at a time, the node marker, a data.mdb lost or
 * cut short, log records and the hard state damaged on disk, a full disk. */
#define _GNU_SOURCE /* RTLD_NEXT, memmem */
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "storage/db.h"
#include "storage/storage.h"
#include "storage/tmp_dir.h"
#include "test.h"

/* ---- a full disk for this process's writes (LMDB's included): off, writes that fail with
 * ENOSPC, or writes cut short (which LMDB reports as EIO) with nothing left free ---- */

enum disk { DISK_OK, DISK_ENOSPC, DISK_SHORT };
static enum disk disk;

/* Exported, whatever the build's default visibility: they replace libc's for liblmdb. */
#define EXPORT __attribute__((visibility("default")))
EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off);
EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off);

EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    ssize_t (*real)(int, const void *, size_t, off_t) =
        (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    if (disk == DISK_ENOSPC) {
        errno = ENOSPC;
        return -1;
    }
    return real(fd, buf, disk == DISK_SHORT && n > 1 ? n / 2 : n, off);
}

EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    ssize_t (*real)(int, const struct iovec *, int, off_t) =
        (ssize_t(*)(int, const struct iovec *, int, off_t))dlsym(RTLD_NEXT, "pwritev");
    if (disk == DISK_ENOSPC) {
        errno = ENOSPC;
        return -1;
    }
    struct iovec half = {iov[0].iov_base, iov[0].iov_len / 2};
    return disk == DISK_SHORT ? real(fd, &half, 1, off) : real(fd, iov, n, off);
}

/* db.c asks how much room is left when a write fails with EIO. */
int statvfs(const char *restrict path, struct statvfs *restrict st)
{
    int (*real)(const char *restrict, struct statvfs *restrict) =
        (int (*)(const char *restrict, struct statvfs *restrict))dlsym(RTLD_NEXT, "statvfs");
    int rc = real(path, st);
    if (rc == 0 && disk == DISK_SHORT)
        st->f_bavail = st->f_bfree = 0;
    return rc;
}

/* ---- a node's data dir: cluster 7, node 2 unless a test says otherwise ---- */

static struct tmp_dir dir;

static int open_as(raft_id node, struct rk_db **db)
{
    struct rk_db_options o = {.path = dir.path, .cluster_id = 7, .node_id = node};
    return rk_db_open(&o, db);
}

static bool open_ok(struct rk_db **db)
{
    int rc = open_as(2, db);
    if (rc)
        fprintf(stderr, "rk_db_open: %s\n", rk_db_errmsg(*db));
    return rc == 0;
}

static void path_of(const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", dir.path, name);
}

static int save_fn(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct rk_storage *s = ((void **)arg)[0];
    return s->ops->save(s, ((void **)arg)[1]);
}

static int save(struct rk_db *db, struct rk_storage *s, const struct raft_ready *rd)
{
    void *arg[2] = {s, (void *)rd};
    return rk_db_write(db, save_fn, arg);
}

/* Entry i holds "entry-<i>;" over and over: each can be found in data.mdb. */
static int append(struct rk_db *db, struct rk_storage *s, raft_index first, size_t n)
{
    struct raft_entry es[16];
    char data[16][120];
    for (size_t i = 0; i < n; i++) {
        for (size_t at = 0; at < sizeof data[i]; at += 11)
            snprintf(data[i] + at, sizeof data[i] - at, "entry-%04u;", (unsigned)(first + i));
        es[i] = (struct raft_entry){
            .index = first + i, .term = 1, .data = (uint8_t *)data[i], .len = 110};
    }
    struct raft_ready rd = {.n_entries = n, .entries = es};
    return save(db, s, &rd);
}

/* A hard state whose term can be found in data.mdb: its bytes spell QRSTUVWX. */
#define TERM 0x5152535455565758ULL

/* A data dir that node 2 left after saving its term and vote and entries 1 to 16 * batches. */
static bool make_node_dir(size_t batches)
{
    struct rk_db *db;
    struct rk_storage *s = NULL;
    struct raft_ready rd = {.hard_state_changed = true, .term = TERM, .vote = 2};
    bool ok = tmp_dir_make(&dir) && open_ok(&db) && rk_lmdb_storage_new(db, &s) == 0 &&
              save(db, s, &rd) == 0;
    for (size_t i = 0; ok && i < batches; i++)
        ok = append(db, s, 1 + 16 * i, 16) == 0;
    if (s)
        s->ops->close(s);
    rk_db_close(db);
    return ok;
}

/* Opens the dir as node 2 and loads the log; returns the load's result. */
static int reopen_and_load(struct rk_db **db)
{
    struct rk_storage *s;
    struct raft_restore r;
    int rc = open_as(2, db);
    if (!rc)
        rc = rk_lmdb_storage_new(*db, &s);
    if (rc)
        return rc;
    rc = s->ops->load(s, &r);
    if (!rc)
        rk_storage_restore_free(&r);
    s->ops->close(s);
    return rc;
}

/* Flips one bit of every copy of text in data.mdb, at offset at from its start (LMDB
 * writes a changed page anew, so older copies may remain in free pages). */
static int damage(const char *text, size_t len, size_t at)
{
    char path[128];
    path_of("data.mdb", path, sizeof path);
    FILE *f = fopen(path, "r+b");
    if (!f)
        return 0;
    static char buf[8 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    int copies = 0;
    for (char *p = buf; (p = memmem(p, n - (size_t)(p - buf), text, len)); p += len) {
        p[at] ^= 0x10;
        copies++;
    }
    bool ok = fseek(f, 0, SEEK_SET) == 0 && fwrite(buf, 1, n, f) == n;
    return fclose(f) == 0 && ok ? copies : 0;
}

/* "<dir>/<name><rest>", for the messages that name a file of the data dir. */
static bool errmsg_is(struct rk_db *db, const char *name, const char *rest)
{
    char want[1024];
    snprintf(want, sizeof want, "%s/%s%s", dir.path, name, rest);
    if (strcmp(rk_db_errmsg(db), want) == 0)
        return true;
    fprintf(stderr, "  got:  %s\n  want: %s\n", rk_db_errmsg(db), want);
    return false;
}

#define LOST                                                                                       \
    ": this node's term, vote and log are lost. Restore the data dir from a backup; or delete "    \
    "it and add the node back as a new member through a membership change (a voter that comes "    \
    "back empty without one can break Raft's safety)"

TEST(a_new_dir_is_marked_and_a_marked_one_reopens)
{
    struct rk_db *db;
    CHECK(tmp_dir_make(&dir));
    CHECK(open_ok(&db));
    CHECK_EQ(rk_db_dir_state(db), RK_DB_DIR_NEW);
    rk_db_close(db);
    char path[128], text[128] = {0};
    path_of(RK_DB_MARKER_FILE, path, sizeof path);
    FILE *f = fopen(path, "r");
    CHECK(f);
    CHECK(fread(text, 1, sizeof text - 1, f) > 0);
    fclose(f);
    CHECK(strcmp(text, "raftkv-node 1\ncluster_id 7\nnode_id 2\n") == 0);
    CHECK(open_ok(&db));
    CHECK_EQ(rk_db_dir_state(db), RK_DB_DIR_MARKED);
    rk_db_close(db);
    tmp_dir_remove(&dir);
}

TEST(a_missing_data_file_is_refused_not_started_afresh)
{
    struct rk_db *db;
    char path[128];
    CHECK(make_node_dir(1));
    path_of("data.mdb", path, sizeof path);
    CHECK_EQ(unlink(path), 0);
    CHECK_EQ(open_as(2, &db), RK_DB_ECORRUPT);
    CHECK(errmsg_is(db, "data.mdb", " is missing, but raftkv-node says node 2 lived here" LOST));
    rk_db_close(db);
    tmp_dir_remove(&dir);
}

TEST(an_empty_data_file_is_refused_not_started_afresh)
{
    struct rk_db *db;
    char path[128];
    CHECK(make_node_dir(1));
    path_of("data.mdb", path, sizeof path);
    CHECK_EQ(truncate(path, 0), 0);
    CHECK_EQ(open_as(2, &db), RK_DB_ECORRUPT);
    CHECK(errmsg_is(db, "data.mdb", " is empty, but raftkv-node says node 2 lived here" LOST));
    rk_db_close(db);
    tmp_dir_remove(&dir);
}

/* Reading a page past the end of the file would be a SIGBUS. */
TEST(a_data_file_cut_short_is_refused_before_it_is_read)
{
    struct rk_db *db;
    char path[128], want[128];
    struct stat st;
    CHECK(make_node_dir(100));
    path_of("data.mdb", path, sizeof path);
    CHECK_EQ(stat(path, &st), 0);
    CHECK(st.st_size >= 16 * 4096);
    off_t half = st.st_size / 2;
    CHECK_EQ(truncate(path, half), 0);
    CHECK_EQ(reopen_and_load(&db), RK_DB_ECORRUPT);
    snprintf(want, sizeof want,
             "/data.mdb is cut short: %lld bytes, but its last page ends at byte ",
             (long long)half);
    CHECK(strstr(rk_db_errmsg(db), want));
    CHECK(strstr(rk_db_errmsg(db), LOST));
    rk_db_close(db);
    tmp_dir_remove(&dir);
}

/* A dir of a build before markers, or one that crashed between creating data.mdb and
 * marking the dir. */
TEST(data_without_a_marker_is_accepted_and_marked)
{
    struct rk_db *db;
    char path[128];
    CHECK(make_node_dir(1));
    path_of(RK_DB_MARKER_FILE, path, sizeof path);
    CHECK_EQ(unlink(path), 0);
    CHECK_EQ(reopen_and_load(&db), 0);
    CHECK_EQ(rk_db_dir_state(db), RK_DB_DIR_UNMARKED);
    rk_db_close(db);
    CHECK_EQ(access(path, F_OK), 0);
    CHECK(open_ok(&db));
    CHECK_EQ(rk_db_dir_state(db), RK_DB_DIR_MARKED);
    rk_db_close(db);
    tmp_dir_remove(&dir);
}

TEST(a_marker_of_another_node_or_a_damaged_one_is_refused)
{
    struct rk_db *db;
    char path[128], want[512];
    CHECK(make_node_dir(1));
    CHECK_EQ(open_as(3, &db), RK_DB_EIDENTITY);
    snprintf(want, sizeof want,
             "data dir %s belongs to cluster 7 node 2, this node is cluster 7 node 3 (raftkv-node "
             "says so)",
             dir.path);
    CHECK(strcmp(rk_db_errmsg(db), want) == 0);
    rk_db_close(db);
    path_of(RK_DB_MARKER_FILE, path, sizeof path);
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs("hello\n", f);
    fclose(f);
    CHECK_EQ(open_as(2, &db), RK_DB_ECORRUPT);
    CHECK(errmsg_is(db, RK_DB_MARKER_FILE,
                    " is not a raftkv node marker: restore it from a backup of the data dir"));
    rk_db_close(db);
    tmp_dir_remove(&dir);
}

TEST(a_second_open_of_the_dir_is_refused_while_the_first_holds_it)
{
    struct rk_db *first, *second;
    char want[512];
    CHECK(tmp_dir_make(&dir));
    CHECK(open_ok(&first));
    CHECK_EQ(open_as(2, &second), RK_DB_ELOCKED);
    snprintf(want, sizeof want,
             "data dir %s is in use by another process (it holds %s/raftkv.lock): is a node with "
             "this data_dir running already?",
             dir.path, dir.path);
    CHECK(strcmp(rk_db_errmsg(second), want) == 0);
    rk_db_close(second);
    rk_db_close(first);
    CHECK(open_ok(&second));
    rk_db_close(second);
    tmp_dir_remove(&dir);
}

TEST(a_damaged_log_record_stops_the_load_naming_its_index)
{
    struct rk_db *db;
    CHECK(make_node_dir(1));
    CHECK(damage("entry-0003;", 11, 5) > 0);
    CHECK_EQ(reopen_and_load(&db), RK_DB_ECORRUPT);
    CHECK(strcmp(rk_db_errmsg(db),
                 "log entry 3 fails its checksum: the record is damaged on disk") == 0);
    rk_db_close(db);
    tmp_dir_remove(&dir);
}

TEST(a_damaged_hard_state_stops_the_load)
{
    struct rk_db *db;
    CHECK(make_node_dir(1));
    CHECK(damage("QRSTUVWX", 8, 7) > 0);
    CHECK_EQ(reopen_and_load(&db), RK_DB_ECORRUPT);
    CHECK(strcmp(rk_db_errmsg(db), "the hard state (term, vote) fails its checksum: the record "
                                   "is damaged on disk") == 0);
    rk_db_close(db);
    tmp_dir_remove(&dir);
}

/* A write that finds the disk full, refused outright or cut short. */
static void check_disk_full(bool *test_failed_, enum disk how)
{
    struct rk_db *db;
    struct rk_storage *s;
    char want[256];
    CHECK(tmp_dir_make(&dir));
    CHECK(open_ok(&db));
    CHECK_EQ(rk_lmdb_storage_new(db, &s), 0);
    disk = how;
    int rc = append(db, s, 1, 16);
    disk = DISK_OK;
    CHECK_EQ(rc, RK_DB_EIO);
    snprintf(want, sizeof want, "commit in %s: disk full (%s)", dir.path,
             strerror(how == DISK_ENOSPC ? ENOSPC : EIO));
    if (strcmp(rk_db_errmsg(db), want) != 0)
        fprintf(stderr, "  got:  %s\n  want: %s\n", rk_db_errmsg(db), want);
    CHECK(strcmp(rk_db_errmsg(db), want) == 0);
    s->ops->close(s);
    rk_db_close(db);
    tmp_dir_remove(&dir);
}

TEST(a_full_disk_is_reported_as_one)
{
    check_disk_full(test_failed_, DISK_ENOSPC);
}

TEST(a_write_cut_short_by_a_full_disk_is_reported_as_one)
{
    check_disk_full(test_failed_, DISK_SHORT);
}

TEST_MAIN(TEST_REF(a_new_dir_is_marked_and_a_marked_one_reopens),
          TEST_REF(a_missing_data_file_is_refused_not_started_afresh),
          TEST_REF(an_empty_data_file_is_refused_not_started_afresh),
          TEST_REF(a_data_file_cut_short_is_refused_before_it_is_read),
          TEST_REF(data_without_a_marker_is_accepted_and_marked),
          TEST_REF(a_marker_of_another_node_or_a_damaged_one_is_refused),
          TEST_REF(a_second_open_of_the_dir_is_refused_while_the_first_holds_it),
          TEST_REF(a_damaged_log_record_stops_the_load_naming_its_index),
          TEST_REF(a_damaged_hard_state_stops_the_load), TEST_REF(a_full_disk_is_reported_as_one),
          TEST_REF(a_write_cut_short_by_a_full_disk_is_reported_as_one))
