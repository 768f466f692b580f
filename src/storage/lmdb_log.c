/*
 * Raft stable storage in LMDB. The log lives in the "log" database keyed by the big-endian
 * entry index, so keys sort in log order and appends can use MDB_APPEND (no tree search,
 * packed pages). A value is a fixed 13-byte header, term (big-endian uint64), type (one
 * byte) and a CRC-32C (big-endian uint32) of the index, term, type and data, followed by the
 * entry's data: no decoding library, no allocation on the write path (MDB_RESERVE), and the
 * index is not stored twice. Term/vote (with a CRC-32C of its own), the log's starting point
 * and the latest snapshot's meta are meta records. LMDB keeps no checksums of its pages: these
 * make a record damaged on disk stop the node at load instead of being believed.
 *
 * Compaction deletes entries from the front of the tree. LMDB puts their pages on its free
 * list and reuses them once no reader still sees them, so a log that is appended to and
 * compacted keeps a bounded file (tests/storage checks it); the file itself never shrinks.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "storage/crc32c.h"
#include "storage/db.h"
#include "storage/storage.h"

#define ENTRY_HEADER 13
#define ENTRY_CRC 9 /* offset of the CRC in the header */

static const char HARD_STATE[] = "hard_state"; /* term, vote, CRC-32C of both */
/* The log's starting point: entries up to its index were compacted away. The record
 * name predates snapshots' meta, hence "snapshot". */
static const char SNAPSHOT[] = "snapshot";           /* index, term */
static const char SNAPSHOT_META[] = "snapshot_meta"; /* index, term, size */
/* The configuration at the snapshot's index (raft_configuration_encode), then a CRC-32C
 * (big-endian uint32) of it; absent in data dirs from before membership changes. */
static const char SNAPSHOT_CONF[] = "snapshot_conf";

struct lmdb_storage {
    struct rk_storage base;
    struct rk_db *db;
    MDB_dbi log;
};

/* The index of the last stored entry, or of the snapshot when the log is empty. */
static int last_index(struct lmdb_storage *ls, MDB_cursor *cur, raft_index *out)
{
    MDB_val k, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == MDB_SUCCESS) {
        *out = rk_db_decode_u64(k.mv_data);
        return RK_DB_OK;
    }
    if (rc != MDB_NOTFOUND)
        return rk_db_check(ls->db, rc, "read last log entry");
    uint64_t snap[2];
    rc = rk_db_meta_get(ls->db, mdb_cursor_txn(cur), SNAPSHOT, snap, 2, NULL);
    *out = snap[0];
    return rc;
}

/* Deletes the entries with index >= from, from the end back. */
static int truncate_log(struct lmdb_storage *ls, MDB_cursor *cur, raft_index from)
{
    MDB_val k, v;
    int rc;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_LAST)) == MDB_SUCCESS &&
           rk_db_decode_u64(k.mv_data) >= from) {
        rc = mdb_cursor_del(cur, 0);
        if (rc != MDB_SUCCESS)
            break;
    }
    return rc == MDB_NOTFOUND || rc == MDB_SUCCESS ? RK_DB_OK
                                                   : rk_db_check(ls->db, rc, "truncate log");
}

/* Covers the key too: a record that lands under another index fails it. */
static uint32_t entry_crc(const uint8_t *key, const uint8_t *header, const void *data, size_t len)
{
    uint32_t crc = rk_crc32c(0, key, 8);
    crc = rk_crc32c(crc, header, ENTRY_CRC);
    return rk_crc32c(crc, data, len);
}

static void encode_u32(uint8_t *out, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

static uint32_t decode_u32(const uint8_t *in)
{
    return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

static int append_entry(struct lmdb_storage *ls, MDB_cursor *cur, const struct raft_entry *e)
{
    uint8_t key[8];
    rk_db_encode_u64(key, e->index);
    MDB_val k = {sizeof key, key}, v = {ENTRY_HEADER + e->len, NULL};
    int rc = mdb_cursor_put(cur, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc != MDB_SUCCESS)
        return rk_db_check(ls->db, rc, "append log entry");
    uint8_t *p = v.mv_data;
    rk_db_encode_u64(p, e->term);
    p[8] = (uint8_t)e->type;
    if (e->len)
        memcpy(p + ENTRY_HEADER, e->data, e->len);
    encode_u32(p + ENTRY_CRC, entry_crc(key, p, e->data, e->len));
    return RK_DB_OK;
}

static int put_snapshot_conf(struct lmdb_storage *ls, MDB_txn *txn,
                             const struct raft_configuration *conf)
{
    uint8_t *buf;
    size_t len;
    if (raft_configuration_encode(conf, &buf, &len) != RAFT_OK)
        return rk_db_fail(ls->db, RK_DB_ENOMEM, "out of memory encoding a configuration");
    uint8_t *grown = realloc(buf, len + 4);
    int rc = grown ? RK_DB_OK : rk_db_fail(ls->db, RK_DB_ENOMEM, "out of memory");
    if (grown) {
        encode_u32(grown + len, rk_crc32c(0, grown, len));
        rc = rk_db_meta_put_bytes(ls->db, txn, SNAPSHOT_CONF, grown, len + 4);
        buf = grown;
    }
    free(buf);
    return rc;
}

static int load_snapshot_conf(struct lmdb_storage *ls, MDB_txn *txn, struct raft_configuration *out)
{
    uint8_t *buf;
    size_t len;
    int rc = rk_db_meta_get_bytes(ls->db, txn, SNAPSHOT_CONF, &buf, &len);
    if (rc || !buf)
        return rc;
    if (len < 4 || decode_u32(buf + len - 4) != rk_crc32c(0, buf, len - 4) ||
        raft_configuration_decode(buf, len - 4, out) != RAFT_OK)
        rc = rk_db_fail(ls->db, RK_DB_ECORRUPT,
                        "the snapshot's configuration fails its checksum or does not decode: "
                        "the record is damaged on disk");
    free(buf);
    return rc;
}

/* conf: the configuration at m's index. */
static int put_snapshot_meta(struct lmdb_storage *ls, MDB_txn *txn,
                             const struct raft_snapshot_meta *m,
                             const struct raft_configuration *conf)
{
    uint64_t vals[3] = {m->index, m->term, m->size};
    int rc = rk_db_meta_put(ls->db, txn, SNAPSHOT_META, vals, 3);
    return rc ? rc : put_snapshot_conf(ls, txn, conf);
}

/* An installed snapshot replaces the whole log: it becomes the log's starting point. */
static int install_snapshot(struct lmdb_storage *ls, MDB_txn *txn, const struct raft_ready *rd)
{
    int rc = rk_db_check(ls->db, mdb_drop(txn, ls->log, 0), "clear log for snapshot");
    uint64_t snap[2] = {rd->snapshot.index, rd->snapshot.term};
    if (!rc)
        rc = rk_db_meta_put(ls->db, txn, SNAPSHOT, snap, 2);
    return rc ? rc : put_snapshot_meta(ls, txn, &rd->snapshot, rd->snapshot_conf);
}

static int save_log(struct lmdb_storage *ls, MDB_cursor *cur, const struct raft_ready *rd)
{
    int rc = rd->truncate_from ? truncate_log(ls, cur, rd->truncate_from) : RK_DB_OK;
    raft_index last = 0;
    if (!rc && rd->n_entries)
        rc = last_index(ls, cur, &last);
    for (size_t i = 0; !rc && i < rd->n_entries; i++) {
        const struct raft_entry *e = &rd->entries[i];
        /* A gap or overlap would silently corrupt the log: the core must never ask. */
        if (e->index != last + 1)
            return rk_db_fail(ls->db, RK_DB_ECORRUPT,
                              "refusing to store log entry %" PRIu64 " after entry %" PRIu64,
                              e->index, last);
        rc = append_entry(ls, cur, e);
        last = e->index;
    }
    return rc;
}

static uint64_t hard_state_crc(uint64_t term, uint64_t vote)
{
    uint8_t b[16];
    rk_db_encode_u64(b, term);
    rk_db_encode_u64(b + 8, vote);
    return rk_crc32c(0, b, sizeof b);
}

static int lmdb_save(struct rk_storage *s, const struct raft_ready *rd)
{
    struct lmdb_storage *ls = (struct lmdb_storage *)s;
    MDB_txn *txn = rk_db_current_txn(ls->db);
    if (!txn)
        return rk_db_fail(ls->db, RK_DB_EIO, "log save outside rk_db_write");
    int rc = RK_DB_OK;
    if (rd->hard_state_changed) {
        uint64_t hs[3] = {rd->term, rd->vote, hard_state_crc(rd->term, rd->vote)};
        rc = rk_db_meta_put(ls->db, txn, HARD_STATE, hs, 3);
    }
    if (!rc && rd->install_snapshot)
        rc = install_snapshot(ls, txn, rd);
    if (rc || (!rd->truncate_from && !rd->n_entries))
        return rc;
    MDB_cursor *cur;
    rc = rk_db_check(ls->db, mdb_cursor_open(txn, ls->log, &cur), "open log cursor");
    if (rc)
        return rc;
    rc = save_log(ls, cur, rd);
    mdb_cursor_close(cur);
    return rc;
}

/* Deletes the entries up to compact_to from the front, checking the last one deleted has
 * compact_term: a mismatch means the caller's view of the log is not what is stored. */
static int delete_prefix(struct lmdb_storage *ls, MDB_cursor *cur, raft_index compact_to,
                         raft_term compact_term)
{
    MDB_val k, v;
    int rc;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == MDB_SUCCESS &&
           rk_db_decode_u64(k.mv_data) <= compact_to) {
        if (rk_db_decode_u64(k.mv_data) == compact_to &&
            (v.mv_size < ENTRY_HEADER || rk_db_decode_u64(v.mv_data) != compact_term))
            return rk_db_fail(ls->db, RK_DB_ECORRUPT,
                              "refusing to compact to entry %" PRIu64 " of term %" PRIu64
                              ": the stored entry has another term",
                              compact_to, compact_term);
        if ((rc = mdb_cursor_del(cur, 0)) != MDB_SUCCESS)
            break;
    }
    return rc == MDB_NOTFOUND || rc == MDB_SUCCESS ? RK_DB_OK
                                                   : rk_db_check(ls->db, rc, "compact log");
}

/* A compaction older than what is stored (e.g. a local snapshot that finished after a newer
 * one was installed) moves nothing back: the log start and the snapshot meta only advance. */
static int lmdb_compact(struct rk_storage *s, const struct raft_snapshot_meta *meta,
                        const struct raft_configuration *conf, raft_index compact_to,
                        raft_term compact_term)
{
    struct lmdb_storage *ls = (struct lmdb_storage *)s;
    MDB_txn *txn = rk_db_current_txn(ls->db);
    if (!txn)
        return rk_db_fail(ls->db, RK_DB_EIO, "log compact outside rk_db_write");
    if (compact_to > meta->index)
        return rk_db_fail(ls->db, RK_DB_ECORRUPT,
                          "refusing to compact to %" PRIu64 ", past the snapshot at %" PRIu64,
                          compact_to, meta->index);
    uint64_t start[2], stored[3];
    int rc = rk_db_meta_get(ls->db, txn, SNAPSHOT, start, 2, NULL);
    if (!rc)
        rc = rk_db_meta_get(ls->db, txn, SNAPSHOT_META, stored, 3, NULL);
    if (!rc && meta->index > stored[0])
        rc = put_snapshot_meta(ls, txn, meta, conf);
    if (rc || compact_to <= start[0])
        return rc;
    MDB_cursor *cur;
    rc = rk_db_check(ls->db, mdb_cursor_open(txn, ls->log, &cur), "open log cursor");
    if (rc)
        return rc;
    rc = delete_prefix(ls, cur, compact_to, compact_term);
    mdb_cursor_close(cur);
    start[0] = compact_to;
    start[1] = compact_term;
    return rc ? rc : rk_db_meta_put(ls->db, txn, SNAPSHOT, start, 2);
}

/* Decodes one stored entry into e (copying its data), checking it follows prev. */
static int load_entry(struct lmdb_storage *ls, const MDB_val *k, const MDB_val *v, raft_index prev,
                      struct raft_entry *e)
{
    if (k->mv_size != 8 || v->mv_size < ENTRY_HEADER)
        return rk_db_fail(ls->db, RK_DB_ECORRUPT, "malformed log record after index %" PRIu64,
                          prev);
    const uint8_t *p = v->mv_data;
    e->index = rk_db_decode_u64(k->mv_data);
    e->term = rk_db_decode_u64(p);
    e->type = (enum raft_entry_type)p[8];
    e->len = v->mv_size - ENTRY_HEADER;
    if (decode_u32(p + ENTRY_CRC) != entry_crc(k->mv_data, p, p + ENTRY_HEADER, e->len))
        return rk_db_fail(ls->db, RK_DB_ECORRUPT,
                          "log entry %" PRIu64 " fails its checksum: the record is damaged on disk",
                          e->index);
    if (e->index != prev + 1)
        return rk_db_fail(ls->db, RK_DB_ECORRUPT,
                          "the stored log has a gap: entry %" PRIu64 " follows %" PRIu64, e->index,
                          prev);
    if (p[8] > RAFT_ENTRY_CONFIG)
        return rk_db_fail(ls->db, RK_DB_ECORRUPT, "log entry %" PRIu64 " has unknown type %u",
                          e->index, p[8]);
    if (e->len && !(e->data = malloc(e->len)))
        return rk_db_fail(ls->db, RK_DB_ENOMEM, "out of memory loading the log");
    if (e->len)
        memcpy(e->data, p + ENTRY_HEADER, e->len);
    return RK_DB_OK;
}

/* Loads the entries after the snapshot; ones it covers but not yet deleted are skipped. */
static int load_log(struct lmdb_storage *ls, MDB_txn *txn, struct raft_restore *out)
{
    MDB_stat st;
    MDB_cursor *cur;
    int rc = rk_db_check(ls->db, mdb_stat(txn, ls->log, &st), "stat log");
    if (rc || st.ms_entries == 0)
        return rc;
    struct raft_entry *entries = calloc(st.ms_entries, sizeof *entries);
    if (!entries)
        return rk_db_fail(ls->db, RK_DB_ENOMEM, "out of memory loading the log");
    out->entries = entries;
    rc = rk_db_check(ls->db, mdb_cursor_open(txn, ls->log, &cur), "open log cursor");
    if (rc)
        return rc;
    uint8_t key[8];
    rk_db_encode_u64(key, out->snapshot_index + 1);
    MDB_val k = {sizeof key, key}, v;
    raft_index prev = out->snapshot_index;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; mrc == MDB_SUCCESS && out->n_entries < st.ms_entries;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        rc = load_entry(ls, &k, &v, prev, &entries[out->n_entries]);
        if (rc)
            break;
        prev = entries[out->n_entries++].index;
    }
    mdb_cursor_close(cur);
    if (!rc && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        rc = rk_db_check(ls->db, mrc, "read log");
    return rc;
}

static int lmdb_load(struct rk_storage *s, struct raft_restore *out)
{
    struct lmdb_storage *ls = (struct lmdb_storage *)s;
    memset(out, 0, sizeof *out);
    MDB_txn *txn;
    int rc = rk_db_read_begin(ls->db, &txn);
    if (rc)
        return rc;
    uint64_t hs[3] = {0}, snap[2] = {0}, meta[3] = {0};
    bool found;
    rc = rk_db_meta_get(ls->db, txn, HARD_STATE, hs, 3, &found);
    if (!rc && found && hs[2] != hard_state_crc(hs[0], hs[1]))
        rc = rk_db_fail(ls->db, RK_DB_ECORRUPT,
                        "the hard state (term, vote) fails its checksum: the record is damaged "
                        "on disk");
    if (!rc)
        rc = rk_db_meta_get(ls->db, txn, SNAPSHOT, snap, 2, NULL);
    if (!rc)
        rc = rk_db_meta_get(ls->db, txn, SNAPSHOT_META, meta, 3, NULL);
    out->term = hs[0];
    out->vote = hs[1];
    out->snapshot_index = snap[0];
    out->snapshot_term = snap[1];
    out->snapshot = (struct raft_snapshot_meta){meta[0], meta[1], meta[2]};
    /* Compacted entries live only in a snapshot: without one they are lost. */
    if (!rc && meta[0] < snap[0])
        rc = rk_db_fail(ls->db, RK_DB_ECORRUPT,
                        "the log starts after entry %" PRIu64
                        " but the latest snapshot is at %" PRIu64,
                        snap[0], meta[0]);
    if (!rc)
        rc = load_snapshot_conf(ls, txn, &out->snapshot_conf);
    if (!rc)
        rc = load_log(ls, txn, out);
    rk_db_read_end(ls->db, txn);
    if (rc)
        rk_storage_restore_free(out);
    return rc;
}

static void lmdb_close(struct rk_storage *s)
{
    free(s);
}

static const struct rk_storage_ops lmdb_ops = {
    .load = lmdb_load,
    .save = lmdb_save,
    .compact = lmdb_compact,
    .close = lmdb_close,
};

int rk_lmdb_storage_new(struct rk_db *db, struct rk_storage **out)
{
    struct lmdb_storage *ls = calloc(1, sizeof *ls);
    *out = NULL;
    if (!ls)
        return rk_db_fail(db, RK_DB_ENOMEM, "out of memory");
    ls->base.ops = &lmdb_ops;
    ls->db = db;
    int rc = rk_db_dbi(db, "log", &ls->log);
    if (rc) {
        free(ls);
        return rc;
    }
    *out = &ls->base;
    return RK_DB_OK;
}
