/*
 * Range reads (kv.proto, Range): the keys of [key, range_end) as a get sees each of them.
 * The overlay holds the latest applied writes and deletes that LMDB does not have yet, so
 * the scan merges the overlay's records in the range with an LMDB cursor's, in LMDB's key
 * order; where both hold a key, the overlay's record (a value or a delete) is the one.
 */
#include <stdlib.h>
#include <string.h>

#include "kv.pb-c.h"
#include "kv/kv_private.h"
#include "kv/session.h"

/* The smallest key a client may use: the keys below it (from "") are the store's own. */
static const uint8_t FIRST_CLIENT_KEY[] = {RK_KV_RESERVED_KEY_BYTE + 1};

/* One key of the range, as rk_kv_record_get would answer it. */
struct range_rec {
    ProtobufCBinaryData key, value; /* into the map or the overlay */
    uint64_t create, mod;
};

struct scan {
    struct rk_kv *kv;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val end;  /* mv_size 0: no upper bound */
    MDB_val k, v; /* the cursor's record, when db_more */
    bool db_more;
    const struct rk_overlay_rec **ov; /* the overlay's records in the range, in key order */
    size_t n_ov, cap_ov, at_ov;
};

static int key_cmp(const struct scan *s, const void *a, size_t a_len, const MDB_val *b)
{
    MDB_val x = {a_len, (void *)a};
    return mdb_cmp(s->txn, s->kv->data, &x, b);
}

static int cursor_move(struct scan *s, MDB_cursor_op op)
{
    int rc = mdb_cursor_get(s->cur, &s->k, &s->v, op);
    s->db_more = rc == MDB_SUCCESS &&
                 (s->end.mv_size == 0 || mdb_cmp(s->txn, s->kv->data, &s->k, &s->end) < 0);
    return rc == MDB_SUCCESS || rc == MDB_NOTFOUND ? RK_DB_OK
                                                   : rk_db_check(s->kv->db, rc, "read range");
}

static int collect(void *arg, const struct rk_overlay_rec *r)
{
    struct scan *s = arg;
    if (s->n_ov == s->cap_ov) {
        size_t cap = s->cap_ov ? 2 * s->cap_ov : 64;
        const struct rk_overlay_rec **p = realloc(s->ov, cap * sizeof *p);
        if (!p)
            return RK_DB_ENOMEM;
        s->ov = p;
        s->cap_ov = cap;
    }
    s->ov[s->n_ov++] = r;
    return RK_DB_OK;
}

static int scan_open(struct scan *s, const ProtobufCBinaryData *start)
{
    int rc = rk_overlay_range(&s->kv->ov, start->data, start->len, s->end.mv_data, s->end.mv_size,
                              collect, s);
    if (rc)
        return rk_db_fail(s->kv->db, rc, "out of memory reading a range");
    rc = mdb_cursor_open(s->txn, s->kv->data, &s->cur);
    if (rc)
        return rk_db_check(s->kv->db, rc, "open a cursor");
    s->k = (MDB_val){start->len, start->data};
    return cursor_move(s, MDB_SET_RANGE);
}

static void scan_close(struct scan *s)
{
    if (s->cur)
        mdb_cursor_close(s->cur);
    free(s->ov);
}

static int db_record(struct scan *s, struct range_rec *r)
{
    if (s->v.mv_size < RK_KV_RECORD_HEADER)
        return rk_db_fail(s->kv->db, RK_DB_ECORRUPT, "malformed kv record (%zu bytes)",
                          s->v.mv_size);
    const uint8_t *p = s->v.mv_data;
    *r = (struct range_rec){
        .key = {s->k.mv_size, s->k.mv_data},
        .value = {s->v.mv_size - RK_KV_RECORD_HEADER, (uint8_t *)p + RK_KV_RECORD_HEADER},
        .create = rk_db_decode_u64(p),
        .mod = rk_db_decode_u64(p + 8),
    };
    return cursor_move(s, MDB_NEXT);
}

/* The next key of the range that exists; *found false at its end. A read transaction's
 * pages stay put, so r stays valid as the cursor moves on. */
static int scan_next(struct scan *s, struct range_rec *r, bool *found)
{
    for (;;) {
        const struct rk_overlay_rec *o = s->at_ov < s->n_ov ? s->ov[s->at_ov] : NULL;
        *found = o || s->db_more;
        if (!*found)
            return RK_DB_OK;
        int c = !o ? 1 : !s->db_more ? -1 : key_cmp(s, o->key, o->key_len, &s->k);
        if (c > 0)
            return db_record(s, r);
        s->at_ov++;
        int rc = c == 0 ? cursor_move(s, MDB_NEXT) : RK_DB_OK; /* the overlay's replaces it */
        if (rc || !o->deleted) {
            *r = (struct range_rec){
                {o->key_len, o->key}, {o->value_len, o->value}, o->create, o->mod};
            return rc;
        }
    }
}

static size_t varint_bytes(uint64_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        n++;
    return n;
}

/* Fills resp's kvs from the scan, within the limits; kvs has room for limit. */
static int range_fill(struct scan *s, size_t limit, Raftkv__Kv__KeyValue *kvs,
                      Raftkv__Kv__Response *resp)
{
    /* code, revision and more take at most 13 of the answer's bytes */
    size_t bytes = 16;
    struct range_rec r = {0};
    bool found;
    int rc;
    while ((rc = scan_next(s, &r, &found)) == RK_DB_OK && found) {
        Raftkv__Kv__KeyValue kv = RAFTKV__KV__KEY_VALUE__INIT;
        kv.key = r.key;
        kv.value = r.value;
        kv.create_revision = r.create;
        kv.mod_revision = r.mod;
        size_t len = raftkv__kv__key_value__get_packed_size(&kv);
        size_t field = 1 + varint_bytes(len) + len;
        resp->more = resp->n_kvs == limit || (resp->n_kvs && bytes + field > RK_KV_RANGE_MAX_BYTES);
        if (resp->more)
            break;
        kvs[resp->n_kvs] = kv;
        resp->kvs[resp->n_kvs] = &kvs[resp->n_kvs];
        resp->n_kvs++;
        bytes += field;
    }
    return rc;
}

int rk_kv_range(struct rk_kv *kv, MDB_txn *txn, const Raftkv__Kv__Range *req, struct rk_bytes *out)
{
    Raftkv__Kv__Response resp = RAFTKV__KV__RESPONSE__INIT;
    struct scan s = {.kv = kv, .txn = txn, .end = {req->range_end.len, req->range_end.data}};
    ProtobufCBinaryData start = req->key;
    size_t limit = req->limit == 0 || req->limit > RK_KV_RANGE_MAX_KEYS ? RK_KV_RANGE_MAX_KEYS
                                                                        : (size_t)req->limit;
    Raftkv__Kv__KeyValue *kvs = malloc(limit * sizeof *kvs);
    resp.kvs = malloc(limit * sizeof *resp.kvs);
    resp.revision = kv->applied;
    *out = (struct rk_bytes){NULL, 0};
    int rc = kvs && resp.kvs ? RK_DB_OK : rk_db_fail(kv->db, RK_DB_ENOMEM, "out of memory");
    if (start.len == 0 || start.data[0] == RK_KV_RESERVED_KEY_BYTE)
        start = (ProtobufCBinaryData){sizeof FIRST_CLIENT_KEY, (uint8_t *)FIRST_CLIENT_KEY};
    bool empty = s.end.mv_size && key_cmp(&s, start.data, start.len, &s.end) >= 0;
    if (!rc && !empty)
        rc = scan_open(&s, &start);
    if (!rc && !empty)
        rc = range_fill(&s, limit, kvs, &resp);
    size_t len = rc ? 0 : raftkv__kv__response__get_packed_size(&resp);
    if (len) { /* packed before the values' pages go away with the transaction */
        out->data = malloc(len);
        out->len = out->data ? raftkv__kv__response__pack(&resp, out->data) : 0;
        rc = out->data ? RK_DB_OK : rk_db_fail(kv->db, RK_DB_ENOMEM, "out of memory");
    }
    scan_close(&s);
    free(resp.kvs);
    free(kvs);
    return rc;
}
