/*
 * Measures KV snapshots: fills a store through the fsm's apply (batches of 10000 puts per
 * synced transaction), then times snapshot production (into a null sink and into a file)
 * and restore from that file into a second data dir, and reports the data dir sizes.
 *
 *     kv_snapshot_bench [dir] [data MiB, default 256] [value bytes, default 100] [noreserve]
 *
 * Before restoring, the target map is grown for the snapshot with rk_db_reserve, as a node
 * knowing the snapshot's size can do. With noreserve it starts at the default 64 MiB, and a
 * restore that fills the map runs again from scratch after each doubling: the restore time
 * then includes those retries.
 *
 * dir (default: a new /tmp/raftkv-snapbench-XXXXXX) gets src/, dst/ and snapshot.bin; the
 * program leaves them for inspection.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kv.pb-c.h"
#include "kv/kv.h"

#define BATCH 10000

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds of this process: the machine may be shared, wall time alone misleads. */
static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

struct fill {
    struct raftkv_fsm *fsm;
    raft_index first, last;
    size_t value_bytes;
};

static int fill_fn(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct fill *f = arg;
    char key[32];
    uint8_t *value = malloc(f->value_bytes), packed[4096];
    if (!value)
        return RK_DB_ENOMEM;
    int rc = RK_DB_OK;
    for (raft_index i = f->first; !rc && i <= f->last; i++) {
        Raftkv__Kv__Put put = RAFTKV__KV__PUT__INIT;
        Raftkv__Kv__Request c = RAFTKV__KV__REQUEST__INIT;
        int klen = snprintf(key, sizeof key, "key-%012" PRIu64, i * 2654435761u % 1000000007u);
        memset(value, 'a' + (int)(i % 26), f->value_bytes);
        put.key = (ProtobufCBinaryData){(size_t)klen, (uint8_t *)key};
        put.value = (ProtobufCBinaryData){f->value_bytes, value};
        c.op_case = RAFTKV__KV__REQUEST__OP_PUT;
        c.put = &put;
        struct raft_entry e = {.term = 1, .index = i, .data = packed};
        e.len = protobuf_c_message_pack(&c.base, packed);
        struct raftkv_buf result, event;
        rc = f->fsm->ops->apply(f->fsm, &e, &result, &event);
        free(result.data);
        free(event.data);
    }
    free(value);
    return rc;
}

static int null_emit(void *arg, const void *data, size_t len)
{
    (void)data;
    *(uint64_t *)arg += len;
    return 0;
}

static int file_emit(void *arg, const void *data, size_t len)
{
    return fwrite(data, 1, len, arg) == len ? 0 : -1;
}

static int file_read(void *arg, void *buf, size_t cap, size_t *n)
{
    *n = fread(buf, 1, cap, arg);
    return ferror((FILE *)arg) ? -1 : 0;
}

struct restore {
    struct raftkv_fsm *fsm;
    raft_index index;
    FILE *in;
    double loaded_at; /* when the last run of restore_fn returned: the commit follows */
};

static int restore_fn(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct restore *r = arg;
    rewind(r->in); /* rk_db_write may run this again after growing the map */
    int rc = r->fsm->ops->restore(r->fsm, r->index, file_read, r->in);
    r->loaded_at = now();
    return rc;
}

/* As the node does: an aborted batch (the map grew) is undone before it runs again. */
static void batch_end(void *arg, bool committed)
{
    struct raftkv_fsm *fsm = arg;
    fsm->ops->batch_end(fsm, committed);
}

static int open_node(const char *path, struct rk_db **db, struct raftkv_fsm **fsm)
{
    struct rk_db_options o = {.path = path, .cluster_id = 1, .node_id = 1};
    if (rk_db_open(&o, db) || rk_kv_fsm_open(*db, NULL, fsm)) {
        fprintf(stderr, "open %s: %s\n", path, rk_db_errmsg(*db));
        return 1;
    }
    rk_db_on_end(*db, batch_end, *fsm);
    return 0;
}

int main(int argc, char **argv)
{
    char dir[256] = "/tmp/raftkv-snapbench-XXXXXX", src[300], dst[300], snap[300], path[320];
    if (argc > 1)
        snprintf(dir, sizeof dir, "%s", argv[1]);
    else if (!mkdtemp(dir))
        return 1;
    size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 256;
    size_t value_bytes = argc > 3 ? strtoul(argv[3], NULL, 10) : 100;
    bool reserve = !(argc > 4 && strcmp(argv[4], "noreserve") == 0);
    if (value_bytes == 0 || value_bytes > 2048)
        return fprintf(stderr, "value bytes: 1..2048\n"), 1;
    snprintf(src, sizeof src, "%s/src", dir);
    snprintf(dst, sizeof dst, "%s/dst", dir);
    snprintf(snap, sizeof snap, "%s/snapshot.bin", dir);
    /* a snapshot record is 24 bytes of lengths and revisions, a 16-byte key and the value */
    raft_index keys = (raft_index)(mib << 20) / (24 + 16 + value_bytes);

    struct rk_db *db, *db2;
    struct raftkv_fsm *fsm, *fsm2;
    if (open_node(src, &db, &fsm))
        return 1;
    double t0 = now();
    for (raft_index i = 1; i <= keys; i += BATCH) {
        struct fill f = {fsm, i, i + BATCH - 1 < keys ? i + BATCH - 1 : keys, value_bytes};
        if (rk_db_write(db, fill_fn, &f))
            return fprintf(stderr, "fill: %s\n", rk_db_errmsg(db)), 1;
    }
    double fill_s = now() - t0;
    snprintf(path, sizeof path, "%s/data.mdb", src);
    printf("filled %" PRIu64 " keys of %zu-byte values in %.1f s (%.0f puts/s); src data.mdb "
           "%.1f MiB\n",
           keys, value_bytes, fill_s, (double)keys / fill_s, (double)file_size(path) / 1048576);

    uint64_t bytes = 0;
    raft_index index;
    t0 = now();
    double c0 = cpu();
    int rc = fsm->ops->snapshot(fsm, null_emit, &bytes, &index);
    double null_s = now() - t0, null_cpu = cpu() - c0;
    if (rc)
        return fprintf(stderr, "snapshot: %s\n", fsm->ops->strerror(fsm, rc)), 1;
    printf("snapshot to a null sink: %.1f MiB at index %" PRIu64 " in %.2f s = %.0f MB/s "
           "(cpu %.2f s)\n",
           (double)bytes / 1048576, index, null_s, (double)bytes / 1e6 / null_s, null_cpu);

    FILE *out = fopen(snap, "wb");
    if (!out)
        return 1;
    t0 = now();
    c0 = cpu();
    rc = fsm->ops->snapshot(fsm, file_emit, out, &index);
    rc = rc ? rc : fflush(out) || fsync(fileno(out));
    double file_s = now() - t0, file_cpu = cpu() - c0;
    fclose(out);
    if (rc)
        return fprintf(stderr, "snapshot to file failed\n"), 1;
    printf("snapshot to a file (fsynced): %.2f s = %.0f MB/s (cpu %.2f s)\n", file_s,
           (double)bytes / 1e6 / file_s, file_cpu);

    if (open_node(dst, &db2, &fsm2))
        return 1;
    /* room for the records as LMDB packs them: 5% (100-byte values) to 32% (1000-byte) over
     * the stream, page fill depending on the value size */
    if (reserve && rk_db_reserve(db2, bytes + bytes / 2))
        return fprintf(stderr, "reserve: %s\n", rk_db_errmsg(db2)), 1;
    struct restore r = {fsm2, index, fopen(snap, "rb"), 0};
    if (!r.in)
        return 1;
    t0 = now();
    c0 = cpu();
    rc = rk_db_write(db2, restore_fn, &r);
    double restore_s = now() - t0, commit_s = now() - r.loaded_at, restore_cpu = cpu() - c0;
    fclose(r.in);
    if (rc)
        return fprintf(stderr, "restore: %s\n", rk_db_errmsg(db2)), 1;
    struct rk_db_stats st;
    rk_db_stats(db2, &st);
    snprintf(path, sizeof path, "%s/data.mdb", dst);
    printf("restore from the file (one synced txn, %" PRIu64 " map grows): %.2f s = %.0f MB/s "
           "(of which the commit and fsync: %.2f s; cpu %.2f s); dst data.mdb %.1f MiB\n",
           st.map_grows, restore_s, (double)bytes / 1e6 / restore_s, commit_s, restore_cpu,
           (double)file_size(path) / 1048576);
    fsm->ops->close(fsm);
    fsm2->ops->close(fsm2);
    rk_db_close(db);
    rk_db_close(db2);
    printf("files left in %s\n", dir);
    return 0;
}
