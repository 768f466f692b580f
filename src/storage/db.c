/* The node's LMDB environment: opening the data dir (data_dir.c checks it), identity
 * stamping, group-commit writes and map growth. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "storage/data_dir.h"
#include "storage/db.h"

/* On-disk layout version; bump when it changes incompatibly. 2: log records and the hard
 * state carry a CRC-32C. */
#define DB_FORMAT 2
#define DB_MAX_DBS 16
#define DEFAULT_INITIAL_MAP ((size_t)64 << 20)
/* LMDB reports a write that a full disk cut short as EIO: with less than this left free on
 * the filesystem, an EIO is taken for a full disk. */
#define DISK_NEARLY_FULL_BYTES ((uint64_t)1 << 20)

struct rk_db {
    MDB_env *env;
    MDB_dbi meta;
    char *path;
    int lock_fd;
    enum rk_db_dir_state state;
    size_t max_map;
    MDB_txn *txn; /* the rk_db_write in progress */
    void (*on_end)(void *arg, bool committed);
    void *on_end_arg;
    /* Held shared by every transaction and exclusively while the map is resized: LMDB
     * remaps the file then, which would pull memory from under an open transaction. */
    pthread_rwlock_t remap;
    bool remap_ready;
    uint64_t commits;
    uint64_t grows;
    uint64_t last_commit_ns;
    char err[1024];
};

int rk_db_fail(struct rk_db *db, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(db->err, sizeof db->err, fmt, ap);
    va_end(ap);
    return code;
}

static bool disk_nearly_full(const char *path)
{
    struct statvfs st;
    return statvfs(path, &st) == 0 && (uint64_t)st.f_bavail * st.f_frsize < DISK_NEARLY_FULL_BYTES;
}

/* err: an errno value or an LMDB code. */
static int fail_io(struct rk_db *db, int err, const char *what)
{
    if (err == ENOSPC || err == EDQUOT || (err == EIO && disk_nearly_full(db->path)))
        return rk_db_fail(db, RK_DB_EIO, "%s in %s: disk full (%s)", what, db->path,
                          mdb_strerror(err));
    return rk_db_fail(db, RK_DB_EIO, "%s in %s: %s", what, db->path, mdb_strerror(err));
}

int rk_db_check(struct rk_db *db, int mdb_rc, const char *what)
{
    switch (mdb_rc) {
    case MDB_SUCCESS:
        return RK_DB_OK;
    case MDB_MAP_FULL:
        return rk_db_fail(db, RK_DB_EFULL, "%s: the map is full", what);
    case ENOMEM:
        return rk_db_fail(db, RK_DB_ENOMEM, "%s: out of memory", what);
    default:
        return fail_io(db, mdb_rc, what);
    }
}

const char *rk_db_errmsg(const struct rk_db *db)
{
    return db ? db->err : "out of memory";
}

const char *rk_db_strerror(int err)
{
    switch (err) {
    case RK_DB_OK:
        return "ok";
    case RK_DB_EIO:
        return "storage I/O error";
    case RK_DB_EFULL:
        return "storage full";
    case RK_DB_EIDENTITY:
        return "data dir belongs to another cluster or node";
    case RK_DB_EFORMAT:
        return "data dir written by a newer on-disk format";
    case RK_DB_ENOMEM:
        return "out of memory";
    case RK_DB_ECORRUPT:
        return "stored data is inconsistent or lost";
    case RK_DB_ELOCKED:
        return "data dir in use by another process";
    default:
        return "unknown error";
    }
}

MDB_env *rk_db_env(struct rk_db *db)
{
    return db->env;
}

size_t rk_db_max_key_bytes(void)
{
    MDB_env *env;
    if (mdb_env_create(&env) != MDB_SUCCESS)
        return 0;
    size_t max = (size_t)mdb_env_get_maxkeysize(env);
    mdb_env_close(env);
    return max;
}

MDB_txn *rk_db_current_txn(struct rk_db *db)
{
    return db->txn;
}

static size_t page_round_up(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) / page * page;
}

/* mkdir -p: the data dir and any missing parent. */
static int make_dirs(struct rk_db *db, const char *path)
{
    char *p = strdup(path);
    if (!p)
        return rk_db_fail(db, RK_DB_ENOMEM, "out of memory");
    int rc = RK_DB_OK;
    for (char *s = p + 1;; s++) {
        bool end = *s == '\0';
        if (*s != '/' && !end)
            continue;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            rc = rk_db_fail(db, RK_DB_EIO, "cannot create data dir %s: %s", p, strerror(errno));
            break;
        }
        if (end)
            break;
        *s = '/';
    }
    free(p);
    return rc;
}

int rk_db_meta_get(struct rk_db *db, MDB_txn *txn, const char *name, uint64_t *vals, size_t n,
                   bool *found)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    memset(vals, 0, n * sizeof *vals);
    if (found)
        *found = false;
    int rc = mdb_get(txn, db->meta, &k, &v);
    if (rc == MDB_NOTFOUND)
        return RK_DB_OK;
    if (rc != MDB_SUCCESS)
        return rk_db_check(db, rc, name);
    if (v.mv_size != n * 8)
        return rk_db_fail(db, RK_DB_ECORRUPT, "meta record %s in %s is %zu bytes, expected %zu",
                          name, db->path, v.mv_size, n * 8);
    for (size_t i = 0; i < n; i++)
        vals[i] = rk_db_decode_u64((const uint8_t *)v.mv_data + 8 * i);
    if (found)
        *found = true;
    return RK_DB_OK;
}

int rk_db_meta_put(struct rk_db *db, MDB_txn *txn, const char *name, const uint64_t *vals, size_t n)
{
    MDB_val k = {strlen(name), (void *)name}, v = {n * 8, NULL};
    int rc = mdb_put(txn, db->meta, &k, &v, MDB_RESERVE);
    if (rc != MDB_SUCCESS)
        return rk_db_check(db, rc, name);
    for (size_t i = 0; i < n; i++)
        rk_db_encode_u64((uint8_t *)v.mv_data + 8 * i, vals[i]);
    return RK_DB_OK;
}

int rk_db_meta_get_bytes(struct rk_db *db, MDB_txn *txn, const char *name, uint8_t **buf,
                         size_t *len)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    *buf = NULL;
    *len = 0;
    int rc = mdb_get(txn, db->meta, &k, &v);
    if (rc == MDB_NOTFOUND)
        return RK_DB_OK;
    if (rc != MDB_SUCCESS)
        return rk_db_check(db, rc, name);
    if (v.mv_size && !(*buf = malloc(v.mv_size)))
        return rk_db_fail(db, RK_DB_ENOMEM, "out of memory reading %s", name);
    if (v.mv_size)
        memcpy(*buf, v.mv_data, v.mv_size);
    *len = v.mv_size;
    return RK_DB_OK;
}

int rk_db_meta_put_bytes(struct rk_db *db, MDB_txn *txn, const char *name, const uint8_t *buf,
                         size_t len)
{
    MDB_val k = {strlen(name), (void *)name}, v = {len, (void *)buf};
    int rc = mdb_put(txn, db->meta, &k, &v, 0);
    return rc == MDB_SUCCESS ? RK_DB_OK : rk_db_check(db, rc, name);
}

struct identity {
    struct rk_db *db;
    const struct rk_db_options *opts;
};

/* Stamps a fresh data dir with the format and identity, or checks an existing one. */
static int check_identity(MDB_txn *txn, void *arg)
{
    struct rk_db *db = ((struct identity *)arg)->db;
    const struct rk_db_options *opts = ((struct identity *)arg)->opts;
    int rc = rk_db_check(db, mdb_dbi_open(txn, "meta", MDB_CREATE, &db->meta), "open meta");
    uint64_t format, id[2];
    bool found;
    if (!rc)
        rc = rk_db_meta_get(db, txn, "format", &format, 1, &found);
    if (!rc && !found) {
        format = DB_FORMAT;
        id[0] = opts->cluster_id;
        id[1] = opts->node_id;
        rc = rk_db_meta_put(db, txn, "format", &format, 1);
        return rc ? rc : rk_db_meta_put(db, txn, "identity", id, 2);
    }
    if (!rc && format > DB_FORMAT)
        return rk_db_fail(db, RK_DB_EFORMAT,
                          "data dir %s has on-disk format %" PRIu64
                          ", newer than this build's %d: upgrade raftkv",
                          db->path, format, DB_FORMAT);
    if (!rc && format < DB_FORMAT)
        return rk_db_fail(db, RK_DB_EFORMAT,
                          "data dir %s has on-disk format %" PRIu64
                          ", older than this build's %d (log records without checksums), which "
                          "this build does not read: run the raftkv that wrote it, or delete the "
                          "dir and add the node back as a new member",
                          db->path, format, DB_FORMAT);
    if (!rc)
        rc = rk_db_meta_get(db, txn, "identity", id, 2, &found);
    if (!rc && !found)
        return rk_db_fail(db, RK_DB_ECORRUPT, "data dir %s has a format but no identity", db->path);
    if (!rc && (id[0] != opts->cluster_id || id[1] != opts->node_id))
        return rk_db_fail(db, RK_DB_EIDENTITY,
                          "data dir %s belongs to cluster %" PRIu64 " node %" PRIu64
                          ", this node is cluster %" PRIu64 " node %" PRIu64,
                          db->path, id[0], id[1], opts->cluster_id, (uint64_t)opts->node_id);
    return rc;
}

static size_t map_bytes(struct rk_db *db)
{
    MDB_envinfo info;
    mdb_env_info(db->env, &info);
    return info.me_mapsize;
}

static int set_map_bytes(struct rk_db *db, size_t bytes)
{
    pthread_rwlock_wrlock(&db->remap);
    int rc = mdb_env_set_mapsize(db->env, bytes);
    pthread_rwlock_unlock(&db->remap);
    return rk_db_check(db, rc, "resize map");
}

/* A fresh env gets the initial size before open. An existing one is opened without a size,
 * so LMDB adopts the size stored in the file (the one it last grew to), then raised to the
 * initial size if that is larger. */
static int open_env(struct rk_db *db, bool fresh, size_t initial)
{
    int rc = mdb_env_create(&db->env);
    if (rc != MDB_SUCCESS) {
        db->env = NULL;
        return rk_db_check(db, rc, "create env");
    }
    rc = mdb_env_set_maxdbs(db->env, DB_MAX_DBS);
    if (rc == MDB_SUCCESS && fresh)
        rc = mdb_env_set_mapsize(db->env, initial);
    if (rc == MDB_SUCCESS)
        rc = mdb_env_open(db->env, db->path, 0, 0600);
    if (rc == MDB_INVALID)
        return data_dir__refuse_lost(db, db->path,
                                     "is not an LMDB file (its meta pages are damaged)");
    if (rc != MDB_SUCCESS)
        return rk_db_check(db, rc, "open env");
    rc = fresh ? RK_DB_OK : data_dir__check_size(db, db->path);
    if (!rc && map_bytes(db) < initial)
        rc = set_map_bytes(db, initial);
    return rc;
}

/* Lock, marker and data file first: LMDB must not see a data dir it would misread. */
static int open_dir(struct rk_db *db, const struct rk_db_options *opts, size_t initial)
{
    struct data_dir_marker m;
    int rc = make_dirs(db, db->path);
    if (!rc)
        rc = data_dir__lock(db, db->path, &db->lock_fd);
    if (!rc)
        rc = data_dir__read_marker(db, db->path, &m);
    if (!rc)
        rc = data_dir__check_marker(db, db->path, &m, opts);
    if (!rc)
        rc = data_dir__check_data_file(db, db->path, &m, &db->state);
    if (!rc)
        rc = open_env(db, db->state == RK_DB_DIR_NEW, initial);
    struct identity id = {db, opts};
    if (!rc)
        rc = rk_db_write(db, check_identity, &id);
    if (!rc && !m.found)
        rc = data_dir__mark(db, db->path, opts);
    return rc;
}

int rk_db_open(const struct rk_db_options *opts, struct rk_db **out)
{
    struct rk_db *db = calloc(1, sizeof *db);
    *out = db;
    if (!db)
        return RK_DB_ENOMEM;
    db->lock_fd = -1;
    db->path = strdup(opts->path ? opts->path : "");
    if (!db->path || pthread_rwlock_init(&db->remap, NULL) != 0)
        return rk_db_fail(db, RK_DB_ENOMEM, "out of memory");
    db->remap_ready = true;
    size_t initial = opts->initial_map_bytes ? opts->initial_map_bytes : DEFAULT_INITIAL_MAP;
    size_t max = opts->max_map_bytes ? opts->max_map_bytes : RK_DB_DEFAULT_MAX_MAP_BYTES;
    initial = page_round_up(initial < max ? initial : max);
    db->max_map = page_round_up(max);
    if (!db->path[0])
        return rk_db_fail(db, RK_DB_EIO, "no data dir given");
    return open_dir(db, opts, initial);
}

enum rk_db_dir_state rk_db_dir_state(const struct rk_db *db)
{
    return db->state;
}

void rk_db_close(struct rk_db *db)
{
    if (!db)
        return;
    if (db->env)
        mdb_env_close(db->env);
    if (db->lock_fd >= 0)
        close(db->lock_fd);
    if (db->remap_ready)
        pthread_rwlock_destroy(&db->remap);
    free(db->path);
    free(db);
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int commit(struct rk_db *db, MDB_txn *txn)
{
    uint64_t start = monotonic_ns();
    int rc = rk_db_check(db, mdb_txn_commit(txn), "commit");
    if (rc == RK_DB_OK)
        db->last_commit_ns = monotonic_ns() - start;
    return rc;
}

/* One attempt: begin, fn, before_sync (once per rk_db_write_staged), commit. RK_DB_EFULL
 * means the map filled. */
static int write_once(struct rk_db *db, rk_db_write_fn fn, rk_db_stage_fn before_sync, void *arg,
                      bool *staged)
{
    MDB_txn *txn;
    pthread_rwlock_rdlock(&db->remap);
    int rc = rk_db_check(db, mdb_txn_begin(db->env, NULL, 0, &txn), "begin write");
    if (!rc) {
        db->txn = txn;
        rc = fn(txn, arg);
        db->txn = NULL;
        if (!rc && before_sync && !*staged) {
            before_sync(arg);
            *staged = true;
        }
        if (rc)
            mdb_txn_abort(txn);
        else
            rc = commit(db, txn);
        if (db->on_end)
            db->on_end(db->on_end_arg, rc == RK_DB_OK);
    }
    pthread_rwlock_unlock(&db->remap);
    return rc;
}

void rk_db_on_end(struct rk_db *db, void (*fn)(void *arg, bool committed), void *arg)
{
    db->on_end = fn;
    db->on_end_arg = arg;
}

static int grow_map(struct rk_db *db)
{
    size_t cur = map_bytes(db);
    if (cur >= db->max_map)
        return rk_db_fail(db, RK_DB_EFULL,
                          "data dir %s is full: the map reached max_map_bytes (%zu bytes); "
                          "writes are refused, reads still work",
                          db->path, db->max_map);
    size_t next = cur > db->max_map / 2 ? db->max_map : cur * 2;
    int rc = set_map_bytes(db, next);
    if (!rc)
        db->grows++;
    return rc;
}

int rk_db_write(struct rk_db *db, rk_db_write_fn fn, void *arg)
{
    return rk_db_write_staged(db, fn, NULL, arg);
}

int rk_db_write_staged(struct rk_db *db, rk_db_write_fn fn, rk_db_stage_fn before_sync, void *arg)
{
    bool staged = false;
    for (;;) {
        int rc = write_once(db, fn, before_sync, arg, &staged);
        if (rc == RK_DB_OK)
            db->commits++;
        if (rc != RK_DB_EFULL)
            return rc;
        rc = grow_map(db);
        if (rc)
            return rc;
    }
}

int rk_db_reserve(struct rk_db *db, size_t bytes)
{
    struct rk_db_stats st;
    rk_db_stats(db, &st);
    size_t need = st.used_bytes + bytes < st.used_bytes ? SIZE_MAX : st.used_bytes + bytes;
    int rc = RK_DB_OK;
    while (!rc && map_bytes(db) < need)
        rc = grow_map(db);
    return rc;
}

struct dbi_open {
    struct rk_db *db;
    const char *name;
    MDB_dbi dbi;
};

static int dbi_open_in(MDB_txn *txn, void *arg)
{
    struct dbi_open *o = arg;
    return rk_db_check(o->db, mdb_dbi_open(txn, o->name, MDB_CREATE, &o->dbi), o->name);
}

int rk_db_dbi(struct rk_db *db, const char *name, MDB_dbi *out)
{
    struct dbi_open o = {db, name, 0};
    int rc = rk_db_write(db, dbi_open_in, &o);
    *out = o.dbi;
    return rc;
}

int rk_db_read_begin(struct rk_db *db, MDB_txn **txn)
{
    pthread_rwlock_rdlock(&db->remap);
    int rc = rk_db_check(db, mdb_txn_begin(db->env, NULL, MDB_RDONLY, txn), "begin read");
    if (rc)
        pthread_rwlock_unlock(&db->remap);
    return rc;
}

void rk_db_read_end(struct rk_db *db, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&db->remap);
}

void rk_db_stats(struct rk_db *db, struct rk_db_stats *out)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(db->env, &info);
    mdb_env_stat(db->env, &st);
    out->map_bytes = info.me_mapsize;
    out->used_bytes = (info.me_last_pgno + 1) * (size_t)st.ms_psize;
    out->commits = db->commits;
    out->map_grows = db->grows;
}

uint64_t rk_db_last_commit_ns(struct rk_db *db)
{
    return db->last_commit_ns;
}
