/* Client sessions of the KV store (session.h): registration, expiry, and the answers kept
 * per session. */
#include "kv/session.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_KEY_BYTES 10
#define META_VALUE_BYTES 16
#define NONCE_KEY_BYTES 10
#define ANSWER_KEY_BYTES 18

/* A reserved key: its tag, then a u64. */
static void tagged_key(uint8_t k[10], char tag, uint64_t id)
{
    k[0] = RK_KV_RESERVED_KEY_BYTE;
    k[1] = (uint8_t)tag;
    rk_db_encode_u64(k + 2, id);
}

static void meta_key(uint8_t k[META_KEY_BYTES], uint64_t session)
{
    tagged_key(k, 's', session);
}

static void answer_key(uint8_t k[ANSWER_KEY_BYTES], uint64_t session, uint64_t sequence)
{
    tagged_key(k, 'a', session);
    rk_db_encode_u64(k + 10, sequence);
}

/* What a session's record holds. */
struct meta {
    uint64_t floor; /* the lowest sequence whose answer is kept */
    uint64_t nonce; /* of the registration that opened it */
};

static int meta_decode(struct rk_kv *kv, const uint8_t *v, size_t len, struct meta *m)
{
    if (len != META_VALUE_BYTES)
        return rk_db_fail(kv->db, RK_DB_ECORRUPT, "malformed session record (%zu bytes)", len);
    m->floor = rk_db_decode_u64(v);
    m->nonce = rk_db_decode_u64(v + 8);
    return RK_DB_OK;
}

static int meta_get(struct rk_kv *kv, MDB_txn *txn, uint64_t session, struct rk_kv_record *r,
                    struct meta *m)
{
    uint8_t k[META_KEY_BYTES];
    meta_key(k, session);
    int rc = rk_kv_record_get(kv, txn, k, sizeof k, r);
    if (rc || !r->found)
        return rc;
    return meta_decode(kv, r->value.data, r->value.len, m);
}

static int meta_set(struct rk_kv *kv, raft_index index, uint64_t session, const struct meta *m)
{
    uint8_t k[META_KEY_BYTES], v[META_VALUE_BYTES];
    meta_key(k, session);
    rk_db_encode_u64(v, m->floor);
    rk_db_encode_u64(v + 8, m->nonce);
    return rk_kv_record_set(kv, index, k, sizeof k, false, session, v, sizeof v);
}

static bool has_prefix(const MDB_val *k, const uint8_t *prefix, size_t len)
{
    return k->mv_size >= len && memcmp(k->mv_data, prefix, len) == 0;
}

/* Calls fn on every stored record whose key starts with prefix, until fn fails. Only for
 * a store whose overlay is empty: it reads LMDB alone. */
static int each_stored(struct rk_kv *kv, MDB_txn *txn, const uint8_t *prefix, size_t len,
                       int (*fn)(void *arg, const MDB_val *k, const MDB_val *v), void *arg)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, kv->data, &cur);
    if (rc != MDB_SUCCESS)
        return rk_db_check(kv->db, rc, "open a cursor");
    MDB_val k = {len, (void *)prefix}, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (mrc == MDB_SUCCESS && has_prefix(&k, prefix, len) && !(rc = fn(arg, &k, &v)))
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    mdb_cursor_close(cur);
    if (!rc && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        rc = rk_db_check(kv->db, mrc, "scan sessions");
    return rc;
}

struct census {
    struct rk_kv *kv;
    uint64_t count;
    uint64_t idle_session; /* the least recently active one */
    uint64_t idle_since;
    struct meta idle_meta;
};

static int census_add(void *arg, const MDB_val *k, const MDB_val *v)
{
    struct census *c = arg;
    const uint8_t *rec = v->mv_data;
    if (k->mv_size != META_KEY_BYTES || v->mv_size < RK_KV_RECORD_HEADER)
        return rk_db_fail(c->kv->db, RK_DB_ECORRUPT, "malformed session key or record");
    uint64_t mod = rk_db_decode_u64(rec + 8);
    if (c->count++ == 0 || mod < c->idle_since) {
        c->idle_since = mod;
        c->idle_session = rk_db_decode_u64((const uint8_t *)k->mv_data + 2);
        return meta_decode(c->kv, rec + RK_KV_RECORD_HEADER, v->mv_size - RK_KV_RECORD_HEADER,
                           &c->idle_meta);
    }
    return RK_DB_OK;
}

struct eviction {
    struct rk_kv *kv;
    raft_index index;
};

static int evict_record(void *arg, const MDB_val *k, const MDB_val *v)
{
    (void)v;
    struct eviction *e = arg;
    return rk_kv_record_set(e->kv, e->index, k->mv_data, k->mv_size, true, 0, NULL, 0);
}

/* Removes the session, its nonce and every answer it keeps. */
static int session_expire(struct rk_kv *kv, MDB_txn *txn, raft_index index, uint64_t session,
                          const struct meta *m)
{
    uint8_t k[10];
    struct eviction e = {kv, index};
    meta_key(k, session);
    int rc = rk_kv_record_set(kv, index, k, sizeof k, true, 0, NULL, 0);
    tagged_key(k, 'n', m->nonce);
    if (!rc && m->nonce)
        rc = rk_kv_record_set(kv, index, k, sizeof k, true, 0, NULL, 0);
    tagged_key(k, 'a', session); /* every answer key of the session starts so */
    return rc ? rc : each_stored(kv, txn, k, sizeof k, evict_record, &e);
}

/* The session a registration with nonce opened, if it is still open; else 0. */
static int nonce_session(struct rk_kv *kv, MDB_txn *txn, uint64_t nonce, uint64_t *session)
{
    uint8_t k[NONCE_KEY_BYTES];
    struct rk_kv_record r;
    *session = 0;
    tagged_key(k, 'n', nonce);
    int rc = nonce ? rk_kv_record_get(kv, txn, k, sizeof k, &r) : RK_DB_OK;
    if (rc || !nonce || !r.found)
        return rc;
    if (r.value.len != 8)
        return rk_db_fail(kv->db, RK_DB_ECORRUPT, "malformed nonce record");
    *session = rk_db_decode_u64(r.value.data);
    return RK_DB_OK;
}

int rk_kv_session_register(struct rk_kv *kv, MDB_txn *txn, raft_index index,
                           const Raftkv__Kv__RegisterSession *reg, uint64_t *session)
{
    int rc = nonce_session(kv, txn, reg->nonce, session);
    if (rc || *session)
        return rc;
    /* Registrations are rare (one per client): storing the overlay first lets one scan of
     * LMDB count the sessions and find the idlest. */
    rc = rk_kv_persist(kv, txn);
    struct census c = {.kv = kv};
    const uint8_t prefix[2] = {RK_KV_RESERVED_KEY_BYTE, 's'};
    if (!rc)
        rc = each_stored(kv, txn, prefix, sizeof prefix, census_add, &c);
    if (!rc && c.count >= kv->limits.max_sessions)
        rc = session_expire(kv, txn, index, c.idle_session, &c.idle_meta);
    struct meta m = {.floor = 1, .nonce = reg->nonce};
    uint8_t k[NONCE_KEY_BYTES], v[8];
    tagged_key(k, 'n', reg->nonce);
    rk_db_encode_u64(v, index);
    if (!rc && reg->nonce)
        rc = rk_kv_record_set(kv, index, k, sizeof k, false, index, v, sizeof v);
    *session = index;
    return rc ? rc : meta_set(kv, index, index, &m);
}

static void refuse(struct rk_kv_session_check *out, Raftkv__Kv__Code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void refuse(struct rk_kv_session_check *out, Raftkv__Kv__Code code, const char *fmt, ...)
{
    va_list ap;
    out->run = false;
    out->code = code;
    va_start(ap, fmt);
    vsnprintf(out->why, sizeof out->why, fmt, ap);
    va_end(ap);
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

int rk_kv_session_check(struct rk_kv *kv, MDB_txn *txn, const Raftkv__Kv__Request *req,
                        struct rk_kv_session_check *out)
{
    struct rk_kv_record r;
    struct meta m = {0};
    uint64_t seq = req->sequence;
    memset(out, 0, sizeof *out);
    int rc = meta_get(kv, txn, req->session, &r, &m);
    uint64_t floor = m.floor;
    if (rc)
        return rc;
    if (!r.found) {
        refuse(out, RAFTKV__KV__CODE__SESSION_EXPIRED, "session %" PRIu64 " is unknown or expired",
               req->session);
        return RK_DB_OK;
    }
    if (seq == 0 || req->first_incomplete > seq) {
        refuse(out, RAFTKV__KV__CODE__INVALID,
               "sequence %" PRIu64 " with first_incomplete %" PRIu64
               ": sequences start at 1 and first_incomplete is at most the sequence",
               seq, req->first_incomplete);
        return RK_DB_OK;
    }
    if (seq < floor) {
        refuse(out, RAFTKV__KV__CODE__INVALID,
               "write %" PRIu64 " of session %" PRIu64 " was answered and acknowledged", seq,
               req->session);
        return RK_DB_OK;
    }
    uint8_t k[ANSWER_KEY_BYTES];
    answer_key(k, req->session, seq);
    rc = rk_kv_record_get(kv, txn, k, sizeof k, &r);
    if (rc)
        return rc;
    if (r.found) {
        out->run = false;
        out->cached.len = r.value.len;
        out->cached.data = malloc(r.value.len ? r.value.len : 1);
        if (!out->cached.data)
            return rk_db_fail(kv->db, RK_DB_ENOMEM, "out of memory answering a copy");
        memcpy(out->cached.data, r.value.data, r.value.len);
        return RK_DB_OK;
    }
    if (seq - max_u64(floor, req->first_incomplete) >= RK_KV_SESSION_WINDOW) {
        refuse(out, RAFTKV__KV__CODE__INVALID,
               "write %" PRIu64 " is more than %" PRIu64
               " writes past the session's first unanswered one",
               seq, (uint64_t)RK_KV_SESSION_WINDOW);
        return RK_DB_OK;
    }
    out->run = true;
    return RK_DB_OK;
}

int rk_kv_session_remember(struct rk_kv *kv, MDB_txn *txn, raft_index index,
                           const Raftkv__Kv__Request *req, const struct rk_bytes *answer)
{
    struct rk_kv_record r;
    struct meta m = {0};
    int rc = meta_get(kv, txn, req->session, &r, &m);
    if (!rc && !r.found)
        rc = rk_db_fail(kv->db, RK_DB_ECORRUPT, "session %" PRIu64 " vanished", req->session);
    uint64_t floor = m.floor, first = max_u64(floor, req->first_incomplete);
    uint8_t k[ANSWER_KEY_BYTES];
    /* Every kept answer lies in [floor, floor + window): rk_kv_session_check let no write past it.
     */
    for (uint64_t s = floor; !rc && s < first && s - floor < RK_KV_SESSION_WINDOW; s++) {
        answer_key(k, req->session, s);
        rc = rk_kv_record_get(kv, txn, k, sizeof k, &r);
        if (!rc && r.found)
            rc = rk_kv_record_set(kv, index, k, sizeof k, true, 0, NULL, 0);
    }
    answer_key(k, req->session, req->sequence);
    if (!rc)
        rc = rk_kv_record_set(kv, index, k, sizeof k, false, index, answer->data, answer->len);
    m.floor = first;
    return rc ? rc : meta_set(kv, index, req->session, &m);
}
