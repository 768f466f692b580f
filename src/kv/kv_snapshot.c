/*
 * KV snapshots: the whole "kv" database as of one LMDB read transaction, streamed in the
 * format kv.h documents, and loaded back inside a write transaction. Records are copied
 * from the map to emit with one buffer of staging; a restore appends them in key order
 * (MDB_APPEND: no tree search, packed pages), which also rejects unsorted or repeated keys.
 *
 * snapshot runs on a background thread, so it reports errors by code only: rk_db_fail
 * writes the db's one message buffer, which belongs to the writer thread.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "storage/crc32c.h"
#include "kv/kv_private.h"

#define HEADER_BYTES 32
#define RECORD_PREFIX 24
#define IO_BYTES ((size_t)256 << 10)
/* restore grows its value buffer by at most this beyond the bytes that arrived, so a
 * corrupt length cannot make it allocate more than the stream holds */
#define VALUE_STEP ((size_t)1 << 20)

static const uint8_t MAGIC[8] = {'r', 'a', 'f', 't', 'k', 'v', 'K', 'V'};

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

struct writer {
    raftkv_snapshot_emit_fn emit;
    void *arg;
    uint32_t crc; /* of every byte written so far */
    size_t used;
    uint8_t *buf;
};

static int flush(struct writer *w)
{
    int rc = w->used && w->emit(w->arg, w->buf, w->used) ? RK_KV_ECALLBACK : RK_DB_OK;
    w->used = 0;
    return rc;
}

/* Bytes too big for the buffer go to emit directly (large values, straight from the map). */
static int write_bytes(struct writer *w, const void *p, size_t n)
{
    w->crc = rk_crc32c(w->crc, p, n);
    if (n > IO_BYTES - w->used) {
        int rc = flush(w);
        if (rc || n >= IO_BYTES)
            return rc ? rc : w->emit(w->arg, p, n) ? RK_KV_ECALLBACK : RK_DB_OK;
    }
    memcpy(w->buf + w->used, p, n);
    w->used += n;
    return RK_DB_OK;
}

static int write_record(struct writer *w, const MDB_val *k, const MDB_val *v)
{
    if (v->mv_size < RK_KV_RECORD_HEADER || v->mv_size - RK_KV_RECORD_HEADER > UINT32_MAX)
        return RK_DB_ECORRUPT;
    uint8_t pre[RECORD_PREFIX];
    put_u32(pre, (uint32_t)k->mv_size);
    put_u32(pre + 4, (uint32_t)(v->mv_size - RK_KV_RECORD_HEADER));
    memcpy(pre + 8, v->mv_data, RK_KV_RECORD_HEADER); /* the revisions, stored big-endian */
    int rc = write_bytes(w, pre, sizeof pre);
    if (!rc)
        rc = write_bytes(w, k->mv_data, k->mv_size);
    if (!rc)
        rc = write_bytes(w, (const uint8_t *)v->mv_data + RK_KV_RECORD_HEADER,
                         v->mv_size - RK_KV_RECORD_HEADER);
    return rc;
}

static int write_records(struct rk_kv *kv, MDB_txn *txn, struct writer *w, uint64_t count)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, kv->data, &cur) != MDB_SUCCESS)
        return RK_DB_EIO;
    MDB_val k, v;
    uint64_t n = 0;
    int rc = RK_DB_OK, mrc;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), n++)
        if ((rc = write_record(w, &k, &v)) != RK_DB_OK)
            break;
    mdb_cursor_close(cur);
    if (!rc && mrc != MDB_NOTFOUND)
        rc = RK_DB_EIO;
    return rc || n == count ? rc : RK_DB_ECORRUPT;
}

static int write_snapshot(struct rk_kv *kv, MDB_txn *txn, struct writer *w, raft_index *index)
{
    uint64_t applied;
    MDB_stat st;
    int rc = rk_db_meta_get(kv->db, txn, RK_KV_APPLIED, &applied, 1, NULL);
    if (rc)
        return rc;
    if (mdb_stat(txn, kv->data, &st) != MDB_SUCCESS)
        return RK_DB_EIO;
    *index = applied;
    uint8_t h[HEADER_BYTES];
    memcpy(h, MAGIC, sizeof MAGIC);
    put_u32(h + 8, RK_KV_SNAPSHOT_VERSION);
    put_u32(h + 12, 0);
    rk_db_encode_u64(h + 16, applied);
    rk_db_encode_u64(h + 24, st.ms_entries);
    rc = write_bytes(w, h, sizeof h);
    if (!rc)
        rc = write_records(kv, txn, w, st.ms_entries);
    uint8_t trailer[4];
    put_u32(trailer, w->crc);
    if (!rc)
        rc = write_bytes(w, trailer, sizeof trailer);
    return rc ? rc : flush(w);
}

int rk_kv_snapshot(struct rk_kv *kv, raftkv_snapshot_emit_fn emit, void *arg, raft_index *index)
{
    *index = 0;
    struct writer w = {emit, arg, 0, 0, malloc(IO_BYTES)};
    if (!w.buf)
        return RK_DB_ENOMEM;
    MDB_txn *txn;
    int rc = rk_db_read_begin(kv->db, &txn);
    if (!rc) {
        rc = write_snapshot(kv, txn, &w, index);
        rk_db_read_end(kv->db, txn);
    }
    free(w.buf);
    return rc;
}

struct reader {
    struct rk_db *db;
    raftkv_snapshot_read_fn read;
    void *arg;
    uint32_t crc; /* of every byte consumed so far */
    uint8_t *buf; /* read ahead: [pos, len) not consumed yet */
    size_t pos, len;
    uint8_t *key;
    uint8_t *rec; /* the record being loaded: revisions, then the value */
    size_t rec_cap;
};

static int pull(struct reader *r, uint8_t *dst, size_t cap, size_t *n)
{
    *n = 0;
    if (r->read(r->arg, dst, cap, n) == 0 && *n <= cap)
        return RK_DB_OK;
    *n = 0;
    return rk_db_fail(r->db, RK_KV_ECALLBACK, "restoring a snapshot: its read function failed");
}

/* Exactly n bytes into dst; the stream ending first means it was truncated. */
static int read_exact(struct reader *r, uint8_t *dst, size_t n)
{
    uint8_t *start = dst;
    size_t want = n;
    while (n) {
        size_t got = 0;
        int rc = RK_DB_OK;
        if (r->pos < r->len) {
            got = n < r->len - r->pos ? n : r->len - r->pos;
            memcpy(dst, r->buf + r->pos, got);
            r->pos += got;
        } else if (n >= IO_BYTES) {
            rc = pull(r, dst, n, &got); /* large: skip the staging copy */
        } else {
            r->pos = 0;
            rc = pull(r, r->buf, IO_BYTES, &r->len);
            if (!rc && r->len)
                continue;
        }
        if (rc)
            return rc;
        if (!got)
            return rk_db_fail(r->db, RK_KV_ESNAPSHOT, "restoring a snapshot: it is truncated");
        dst += got;
        n -= got;
    }
    r->crc = rk_crc32c(r->crc, start, want);
    return RK_DB_OK;
}

/* n value bytes into rec after the revisions, growing rec only as the bytes arrive. */
static int read_value(struct reader *r, size_t n)
{
    for (size_t done = 0;;) {
        size_t step = n - done < VALUE_STEP ? n - done : VALUE_STEP;
        size_t need = RK_KV_RECORD_HEADER + done + step;
        if (need > r->rec_cap) {
            size_t cap = need > 2 * r->rec_cap ? need : 2 * r->rec_cap;
            uint8_t *rec = realloc(r->rec, cap);
            if (!rec)
                return rk_db_fail(r->db, RK_DB_ENOMEM, "out of memory restoring a snapshot");
            r->rec = rec;
            r->rec_cap = cap;
        }
        int rc = read_exact(r, r->rec + RK_KV_RECORD_HEADER + done, step);
        done += step;
        if (rc || done == n)
            return rc;
    }
}

static int load_header(struct reader *r, raft_index index, uint64_t *count)
{
    uint8_t h[HEADER_BYTES];
    int rc = read_exact(r, h, sizeof h);
    if (rc)
        return rc;
    if (memcmp(h, MAGIC, sizeof MAGIC) != 0)
        return rk_db_fail(r->db, RK_KV_ESNAPSHOT, "restoring a snapshot: not a KV snapshot");
    if (get_u32(h + 8) != RK_KV_SNAPSHOT_VERSION || get_u32(h + 12) != 0)
        return rk_db_fail(r->db, RK_KV_ESNAPSHOT,
                          "restoring a snapshot: format version %" PRIu32 " flags %" PRIu32
                          ", this build reads version %d without flags",
                          get_u32(h + 8), get_u32(h + 12), RK_KV_SNAPSHOT_VERSION);
    if (rk_db_decode_u64(h + 16) != index)
        return rk_db_fail(r->db, RK_KV_ESNAPSHOT,
                          "restoring a snapshot: it holds index %" PRIu64 ", expected %" PRIu64,
                          rk_db_decode_u64(h + 16), index);
    *count = rk_db_decode_u64(h + 24);
    return RK_DB_OK;
}

static int load_record(struct reader *r, MDB_cursor *cur, raft_index index, size_t max_key)
{
    uint8_t pre[RECORD_PREFIX];
    int rc = read_exact(r, pre, sizeof pre);
    if (rc)
        return rc;
    uint32_t klen = get_u32(pre), vlen = get_u32(pre + 4);
    uint64_t create = rk_db_decode_u64(pre + 8), mod = rk_db_decode_u64(pre + 16);
    if (klen == 0 || klen > max_key)
        return rk_db_fail(r->db, RK_KV_ESNAPSHOT,
                          "restoring a snapshot: a key of %" PRIu32 " bytes", klen);
    if (create == 0 || create > mod || mod > index)
        return rk_db_fail(r->db, RK_KV_ESNAPSHOT,
                          "restoring a snapshot: revisions %" PRIu64 "/%" PRIu64
                          " outside 1..%" PRIu64,
                          create, mod, index);
    rc = read_exact(r, r->key, klen);
    if (!rc)
        rc = read_value(r, vlen);
    if (rc)
        return rc;
    memcpy(r->rec, pre + 8, RK_KV_RECORD_HEADER);
    MDB_val k = {klen, r->key}, v = {RK_KV_RECORD_HEADER + (size_t)vlen, r->rec};
    int mrc = mdb_cursor_put(cur, &k, &v, MDB_APPEND);
    if (mrc == MDB_KEYEXIST)
        return rk_db_fail(r->db, RK_KV_ESNAPSHOT,
                          "restoring a snapshot: its keys are out of order or repeated");
    return rk_db_check(r->db, mrc, "restore a key");
}

static int load_records(struct rk_kv *kv, MDB_txn *txn, struct reader *r, raft_index index,
                        uint64_t count)
{
    MDB_cursor *cur = NULL;
    int rc = rk_db_check(kv->db, mdb_cursor_open(txn, kv->data, &cur), "open kv cursor");
    size_t max_key = (size_t)mdb_env_get_maxkeysize(rk_db_env(kv->db));
    for (uint64_t i = 0; !rc && i < count; i++)
        rc = load_record(r, cur, index, max_key);
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

/* The checksum, then nothing more. */
static int load_trailer(struct reader *r)
{
    uint32_t want = r->crc;
    uint8_t t[4];
    int rc = read_exact(r, t, sizeof t);
    if (rc)
        return rc;
    if (get_u32(t) != want)
        return rk_db_fail(r->db, RK_KV_ESNAPSHOT,
                          "restoring a snapshot: checksum mismatch (stored %08" PRIx32
                          ", computed %08" PRIx32 ")",
                          get_u32(t), want);
    if (r->pos == r->len) {
        r->pos = 0;
        rc = pull(r, r->buf, IO_BYTES, &r->len);
    }
    if (!rc && r->pos < r->len)
        return rk_db_fail(r->db, RK_KV_ESNAPSHOT,
                          "restoring a snapshot: bytes follow its checksum");
    return rc;
}

int rk_kv_restore(struct rk_kv *kv, MDB_txn *txn, raft_index index, raftkv_snapshot_read_fn read,
                  void *arg)
{
    struct reader r = {.db = kv->db, .read = read, .arg = arg};
    r.buf = malloc(IO_BYTES);
    r.key = malloc((size_t)mdb_env_get_maxkeysize(rk_db_env(kv->db)));
    uint64_t count = 0;
    int rc = r.buf && r.key
                 ? RK_DB_OK
                 : rk_db_fail(kv->db, RK_DB_ENOMEM, "out of memory restoring a snapshot");
    if (!rc)
        rc = rk_db_check(kv->db, mdb_drop(txn, kv->data, 0), "empty the kv store");
    if (!rc)
        rc = load_header(&r, index, &count);
    if (!rc)
        rc = load_records(kv, txn, &r, index, count);
    if (!rc)
        rc = load_trailer(&r);
    if (!rc)
        rc = rk_db_meta_put(kv->db, txn, RK_KV_APPLIED, &index, 1);
    free(r.buf);
    free(r.key);
    free(r.rec);
    return rc;
}
