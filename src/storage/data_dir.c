/* The data dir around the LMDB files (see rk_db_open): the process lock, the node marker,
 * and the checks that a marked dir still holds its data.mdb whole. */
#define _DEFAULT_SOURCE /* flock */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/data_dir.h"

static void dir_file(const char *dir, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", dir, name);
}

/* One process per data dir: LMDB lets several open one, and two nodes with one id would
 * vote twice in a term. flock, unlike fcntl's locks, also keeps a second open in this
 * process out. The lock lasts until rk_db_close, or the process's end. */
int data_dir__lock(struct rk_db *db, const char *dir, int *fd)
{
    char path[PATH_MAX];
    dir_file(dir, RK_DB_LOCK_FILE, path, sizeof path);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0)
        return rk_db_fail(db, RK_DB_EIO, "cannot open %s: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
        return RK_DB_OK;
    if (errno != EWOULDBLOCK)
        return rk_db_fail(db, RK_DB_EIO, "cannot lock %s: %s", path, strerror(errno));
    return rk_db_fail(db, RK_DB_ELOCKED,
                      "data dir %s is in use by another process (it holds %s): is a node with "
                      "this data_dir running already?",
                      dir, path);
}

int data_dir__read_marker(struct rk_db *db, const char *dir, struct data_dir_marker *m)
{
    char path[PATH_MAX];
    dir_file(dir, RK_DB_MARKER_FILE, path, sizeof path);
    *m = (struct data_dir_marker){0};
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT
                   ? RK_DB_OK
                   : rk_db_fail(db, RK_DB_EIO, "cannot read %s: %s", path, strerror(errno));
    int n = fscanf(f, "raftkv-node 1 cluster_id %" SCNu64 " node_id %" SCNu64, &m->cluster_id,
                   &m->node_id);
    fclose(f);
    if (n != 2)
        return rk_db_fail(db, RK_DB_ECORRUPT,
                          "%s is not a raftkv node marker: restore it from a backup of the data "
                          "dir",
                          path);
    m->found = true;
    return RK_DB_OK;
}

int data_dir__check_marker(struct rk_db *db, const char *dir, const struct data_dir_marker *m,
                           const struct rk_db_options *opts)
{
    if (!m->found || (m->cluster_id == opts->cluster_id && m->node_id == opts->node_id))
        return RK_DB_OK;
    return rk_db_fail(db, RK_DB_EIDENTITY,
                      "data dir %s belongs to cluster %" PRIu64 " node %" PRIu64
                      ", this node is cluster %" PRIu64 " node %" PRIu64 " (%s says so)",
                      dir, m->cluster_id, m->node_id, opts->cluster_id, (uint64_t)opts->node_id,
                      RK_DB_MARKER_FILE);
}

/* A node that comes back without its term, vote and log may vote twice in a term or forget
 * entries it acknowledged: Raft's safety rests on stable storage keeping them. */
int data_dir__refuse_lost(struct rk_db *db, const char *dir, const char *problem)
{
    return rk_db_fail(db, RK_DB_ECORRUPT,
                      "%s/data.mdb %s: this node's term, vote and log are lost. Restore the data "
                      "dir from a backup; or delete it and add the node back as a new member "
                      "through a membership change (a voter that comes back empty without one "
                      "can break Raft's safety)",
                      dir, problem);
}

/* A data.mdb shorter than its meta pages say (cut short by a copy, a restore or a disk that
 * lost writes) would be read past its end, which is a SIGBUS in the middle of a read. LMDB
 * reads only the meta pages at open, with pread; nothing else is touched until a transaction
 * reads the tree. */
int data_dir__check_size(struct rk_db *db, const char *dir)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_filehandle_t fd;
    struct stat fst;
    MDB_env *env = rk_db_env(db);
    mdb_env_info(env, &info);
    mdb_env_stat(env, &st);
    if (mdb_env_get_fd(env, &fd) != MDB_SUCCESS || fstat(fd, &fst) != 0)
        return rk_db_fail(db, RK_DB_EIO, "cannot stat %s/data.mdb: %s", dir, strerror(errno));
    uint64_t need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    if ((uint64_t)fst.st_size >= need)
        return RK_DB_OK;
    char problem[160];
    snprintf(problem, sizeof problem,
             "is cut short: %lld bytes, but its last page ends at byte %" PRIu64,
             (long long)fst.st_size, need);
    return data_dir__refuse_lost(db, dir, problem);
}

/* A marked dir must still hold the data.mdb that was there when it was marked. */
int data_dir__check_data_file(struct rk_db *db, const char *dir, const struct data_dir_marker *m,
                              enum rk_db_dir_state *state)
{
    char path[PATH_MAX];
    dir_file(dir, "data.mdb", path, sizeof path);
    struct stat st;
    bool missing = stat(path, &st) != 0;
    if (missing && errno != ENOENT)
        return rk_db_fail(db, RK_DB_EIO, "cannot stat %s: %s", path, strerror(errno));
    bool fresh = missing || st.st_size == 0;
    if (!m->found) {
        *state = fresh ? RK_DB_DIR_NEW : RK_DB_DIR_UNMARKED;
        return RK_DB_OK;
    }
    *state = RK_DB_DIR_MARKED;
    if (!fresh)
        return RK_DB_OK;
    char problem[160];
    snprintf(problem, sizeof problem, "is %s, but %s says node %" PRIu64 " lived here",
             missing ? "missing" : "empty", RK_DB_MARKER_FILE, m->node_id);
    return data_dir__refuse_lost(db, dir, problem);
}

static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    errno = err;
    return rc;
}

/* Written whole under a temporary name, then renamed: a crash leaves no marker or the whole
 * one. The marker comes after the identity is committed to LMDB, so a dir with a marker
 * always had a data.mdb worth keeping. */
int data_dir__mark(struct rk_db *db, const char *dir, const struct rk_db_options *opts)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8], text[128];
    dir_file(dir, RK_DB_MARKER_FILE, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int len =
        snprintf(text, sizeof text, "raftkv-node 1\ncluster_id %" PRIu64 "\nnode_id %" PRIu64 "\n",
                 opts->cluster_id, (uint64_t)opts->node_id);
    errno = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && write(fd, text, (size_t)len) == len && fsync(fd) == 0;
    int err = errno ? errno : ENOSPC; /* a short write without an error: the disk filled */
    if (fd >= 0)
        close(fd);
    if (ok && rename(tmp, path) != 0)
        ok = false, err = errno;
    if (ok && sync_dir(dir) != 0)
        ok = false, err = errno;
    if (ok)
        return RK_DB_OK;
    unlink(tmp);
    return rk_db_check(db, err, "write the node marker");
}
