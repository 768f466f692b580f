/*
 * The KV state machine on LMDB. The "kv" database maps the raw key bytes to a record:
 * create revision and mod revision (big-endian uint64, the raft indexes that created and
 * last modified the key) followed by the value bytes. Applied writes go to the overlay
 * (overlay.h) first and are stored every persist_entries entries or fewer (see
 * persist_after), together with the applied
 * index they reach (a meta record) in one transaction: the stored state is always the
 * state at its applied index, and the raft log holds the entries after it.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv.pb-c.h"
#include "kv/kv_private.h"
#include "kv/session.h"
#include "log/log.h"

#define RECORD_HEADER RK_KV_RECORD_HEADER

static const char APPLIED[] = RK_KV_APPLIED;
static const struct raftkv_fsm_ops fsm_ops;

/* One entry being applied: what it answers and what it changed. */
struct apply {
    struct rk_kv *kv;
    MDB_txn *txn;
    raft_index index;
    Raftkv__Kv__Response resp;
    Raftkv__Kv__ChangeEvent change;
    bool changed;
    char why[160];
};

void rk_bytes_free(struct rk_bytes *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

void rk_kv_limits_defaults(struct rk_kv_limits *l)
{
    l->max_key_bytes = RK_KV_DEFAULT_MAX_KEY_BYTES;
    l->max_value_bytes = RK_KV_DEFAULT_MAX_VALUE_BYTES;
    l->persist_entries = RK_KV_DEFAULT_PERSIST_ENTRIES;
    l->persist_bytes = RK_KV_DEFAULT_PERSIST_BYTES;
    l->max_sessions = RK_KV_DEFAULT_MAX_SESSIONS;
}

/* Entries until the next store: between half and all of persist_entries, drawn at random.
 * Every node applies the same entries; stores at the same index would stall all of them at
 * once, and the leader could not commit with a follower that is not storing. */
static uint64_t persist_after(struct rk_kv *kv)
{
    uint64_t p = kv->limits.persist_entries;
    kv->rng ^= kv->rng << 13;
    kv->rng ^= kv->rng >> 7;
    kv->rng ^= kv->rng << 17;
    return p - kv->rng % (p / 2 + 1);
}

/* Before the store changes inside a batch: what an abort restores. */
static void batch_begin(struct rk_kv *kv)
{
    if (!kv->ov.in_batch)
        kv->batch_stored = kv->stored_applied;
    rk_overlay_begin(&kv->ov, kv->applied);
}

void rk_kv_batch_end(struct rk_kv *kv, bool committed)
{
    if (!committed && kv->ov.in_batch)
        kv->stored_applied = kv->batch_stored;
    rk_overlay_end(&kv->ov, committed, &kv->applied);
}

int rk_kv_open(struct rk_db *db, const struct rk_kv_limits *limits, struct rk_kv **out)
{
    struct rk_kv *kv = calloc(1, sizeof *kv);
    *out = NULL;
    if (!kv)
        return rk_db_fail(db, RK_DB_ENOMEM, "out of memory");
    kv->base.ops = &fsm_ops;
    kv->db = db;
    if (limits)
        kv->limits = *limits;
    else
        rk_kv_limits_defaults(&kv->limits);
    /* Longer keys cannot be stored at all: LMDB's key size is fixed when it is built. */
    size_t lmdb_max = (size_t)mdb_env_get_maxkeysize(rk_db_env(db));
    if (kv->limits.max_key_bytes > lmdb_max) {
        rk_warn("max_key_bytes = %zu is over LMDB's key limit: keys are limited to %zu bytes",
                kv->limits.max_key_bytes, lmdb_max);
        kv->limits.max_key_bytes = lmdb_max;
    }
    if (kv->limits.persist_entries == 0)
        kv->limits.persist_entries = RK_KV_DEFAULT_PERSIST_ENTRIES;
    if (kv->limits.persist_bytes == 0)
        kv->limits.persist_bytes = RK_KV_DEFAULT_PERSIST_BYTES;
    if (kv->limits.max_sessions == 0)
        kv->limits.max_sessions = RK_KV_DEFAULT_MAX_SESSIONS;
    kv->rng = ((uint64_t)time(NULL) << 20) ^ (uint64_t)(uintptr_t)kv ^ 1;
    kv->persist_after = persist_after(kv);
    int rc = rk_db_dbi(db, "kv", &kv->data);
    if (!rc)
        rc = rk_kv_applied_index(kv, &kv->applied);
    kv->stored_applied = kv->applied;
    if (rc) {
        free(kv);
        return rc;
    }
    *out = kv;
    return RK_DB_OK;
}

void rk_kv_close(struct rk_kv *kv)
{
    if (!kv)
        return;
    rk_overlay_free(&kv->ov);
    free(kv);
}

int rk_kv_applied_index(struct rk_kv *kv, raft_index *out)
{
    /* Inside a batch its own transaction is the only one this thread may use. */
    MDB_txn *txn = rk_db_current_txn(kv->db);
    uint64_t applied = 0;
    if (txn) {
        int rc = rk_db_meta_get(kv->db, txn, APPLIED, &applied, 1, NULL);
        *out = applied;
        return rc;
    }
    int rc = rk_db_read_begin(kv->db, &txn);
    if (rc)
        return rc;
    rc = rk_db_meta_get(kv->db, txn, APPLIED, &applied, 1, NULL);
    rk_db_read_end(kv->db, txn);
    *out = applied;
    return rc;
}

static int pack(const ProtobufCMessage *m, struct rk_bytes *out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    out->data = NULL;
    out->len = 0;
    if (n == 0)
        return RK_DB_OK;
    out->data = malloc(n);
    if (!out->data)
        return RK_DB_ENOMEM;
    out->len = protobuf_c_message_pack(m, out->data);
    return RK_DB_OK;
}

/* The key, and the value a write would store, of a put/get/delete/cas. */
static bool op_fields(const Raftkv__Kv__Request *r, ProtobufCBinaryData *key,
                      ProtobufCBinaryData *value)
{
    *value = (ProtobufCBinaryData){0, NULL};
    switch (r->op_case) {
    case RAFTKV__KV__REQUEST__OP_PUT:
        *key = r->put->key;
        *value = r->put->value;
        return true;
    case RAFTKV__KV__REQUEST__OP_GET:
        *key = r->get->key;
        return true;
    case RAFTKV__KV__REQUEST__OP_DELETE:
        *key = r->delete_->key;
        return true;
    case RAFTKV__KV__REQUEST__OP_CAS:
        *key = r->cas->key;
        *value = r->cas->new_value;
        /* expected is held to the value limit too: a longer one could never match */
        if (r->cas->expected.len > value->len)
            *value = r->cas->expected;
        return true;
    default:
        return false;
    }
}

/* Fills why and returns false when the op's key or value breaks a limit. */
static bool check_sizes(ProtobufCBinaryData key, ProtobufCBinaryData value, size_t max_key,
                        size_t max_value, const char *limit_names, char *why, size_t why_len)
{
    if (key.len == 0)
        snprintf(why, why_len, "empty key");
    else if (key.data[0] == RK_KV_RESERVED_KEY_BYTE)
        snprintf(why, why_len, "keys starting with byte 0x00 are reserved for the store");
    else if (key.len > max_key)
        snprintf(why, why_len, "key is %zu bytes, over the %zu-byte key limit (%s)", key.len,
                 max_key, limit_names);
    else if (value.len > max_value)
        snprintf(why, why_len, "value is %zu bytes, over the %zu-byte value limit (%s)", value.len,
                 max_value, limit_names);
    else
        return true;
    return false;
}

/* A range's first key goes to LMDB, which takes no key over its limit; its end is only
 * compared, and its limit capped. */
static enum raftkv_prepare_kind range_check(struct rk_kv *kv, const Raftkv__Kv__Range *range,
                                            char *why, size_t why_len)
{
    if (range->key.len <= kv->limits.max_key_bytes)
        return RAFTKV_PREPARE_READ;
    snprintf(why, why_len, "range key is %zu bytes, over the %zu-byte key limit (max_key_bytes)",
             range->key.len, kv->limits.max_key_bytes);
    return RAFTKV_PREPARE_REFUSE;
}

int rk_kv_prepare(struct rk_kv *kv, const uint8_t *req, size_t len, struct raftkv_prepared *out)
{
    memset(out, 0, sizeof *out);
    Raftkv__Kv__Request *r = raftkv__kv__request__unpack(NULL, len, req);
    ProtobufCBinaryData key, value;
    out->kind = RAFTKV_PREPARE_REFUSE;
    if (!r)
        snprintf(out->why, sizeof out->why, "malformed request: not a kv.proto Request");
    else if (r->op_case == RAFTKV__KV__REQUEST__OP_REGISTER_SESSION)
        out->kind = RAFTKV_PREPARE_PROPOSE;
    else if (r->op_case == RAFTKV__KV__REQUEST__OP_RANGE)
        out->kind = range_check(kv, r->range, out->why, sizeof out->why);
    else if (!op_fields(r, &key, &value))
        snprintf(out->why, sizeof out->why, "request has no operation");
    else if (check_sizes(key, value, kv->limits.max_key_bytes, kv->limits.max_value_bytes,
                         "max_key_bytes / max_value_bytes", out->why, sizeof out->why))
        out->kind = r->op_case == RAFTKV__KV__REQUEST__OP_GET ? RAFTKV_PREPARE_READ
                                                              : RAFTKV_PREPARE_PROPOSE;
    /* A write is proposed as the request's own bytes; a read keeps what was parsed. */
    if (out->kind == RAFTKV_PREPARE_READ)
        out->read = r;
    else if (r)
        raftkv__kv__request__free_unpacked(r, NULL);
    return RK_DB_OK;
}

int rk_kv_record_get(struct rk_kv *kv, MDB_txn *txn, const void *key, size_t key_len,
                     struct rk_kv_record *r)
{
    MDB_val k = {key_len, (void *)key}, v;
    memset(r, 0, sizeof *r);
    const struct rk_overlay_rec *o = rk_overlay_get(&kv->ov, key, key_len);
    if (o) {
        r->found = !o->deleted;
        r->create = o->create;
        r->mod = o->mod;
        r->value = (ProtobufCBinaryData){o->value_len, o->value};
        return RK_DB_OK;
    }
    int rc = mdb_get(txn, kv->data, &k, &v);
    if (rc == MDB_NOTFOUND)
        return RK_DB_OK;
    if (rc != MDB_SUCCESS)
        return rk_db_check(kv->db, rc, "read key");
    if (v.mv_size < RECORD_HEADER)
        return rk_db_fail(kv->db, RK_DB_ECORRUPT, "malformed kv record (%zu bytes)", v.mv_size);
    const uint8_t *p = v.mv_data;
    r->found = true;
    r->create = rk_db_decode_u64(p);
    r->mod = rk_db_decode_u64(p + 8);
    r->value = (ProtobufCBinaryData){v.mv_size - RECORD_HEADER, (uint8_t *)p + RECORD_HEADER};
    return RK_DB_OK;
}

static int record_get(struct apply *a, ProtobufCBinaryData key, struct rk_kv_record *r)
{
    return rk_kv_record_get(a->kv, a->txn, key.data, key.len, r);
}

static void answer_found(struct apply *a, const struct rk_kv_record *r)
{
    a->resp.value = r->value;
    a->resp.create_revision = r->create;
    a->resp.mod_revision = r->mod;
}

static void record_change(struct apply *a, Raftkv__Kv__ChangeEvent__Kind kind,
                          ProtobufCBinaryData key, ProtobufCBinaryData value)
{
    a->resp.revision = a->index;
    a->change.kind = kind;
    a->change.key = key;
    a->change.value = value;
    a->change.revision = a->index;
    a->changed = true;
}

int rk_kv_record_set(struct rk_kv *kv, raft_index index, const void *key, size_t key_len,
                     bool deleted, uint64_t create, const void *value, size_t value_len)
{
    if (rk_overlay_set(&kv->ov, key, key_len, deleted, create, index, value, value_len) != 0)
        return rk_db_fail(kv->db, RK_DB_ENOMEM, "out of memory applying index %" PRIu64, index);
    return RK_DB_OK;
}

static int overlay_set(struct apply *a, ProtobufCBinaryData key, bool deleted, uint64_t create,
                       ProtobufCBinaryData value)
{
    return rk_kv_record_set(a->kv, a->index, key.data, key.len, deleted, create, value.data,
                            value.len);
}

/* Stores value under key; r is what the key held before. */
static int write_value(struct apply *a, ProtobufCBinaryData key, ProtobufCBinaryData value,
                       const struct rk_kv_record *r)
{
    uint64_t create = r->found ? r->create : a->index;
    int rc = overlay_set(a, key, false, create, value);
    if (rc)
        return rc;
    a->resp.create_revision = create;
    a->resp.mod_revision = a->index;
    record_change(a, RAFTKV__KV__CHANGE_EVENT__KIND__PUT, key, value);
    return RK_DB_OK;
}

static int op_delete(struct apply *a, ProtobufCBinaryData key, const struct rk_kv_record *r)
{
    if (!r->found) {
        a->resp.code = RAFTKV__KV__CODE__NOT_FOUND;
        return RK_DB_OK;
    }
    int rc = overlay_set(a, key, true, 0, (ProtobufCBinaryData){0, NULL});
    if (rc)
        return rc;
    record_change(a, RAFTKV__KV__CHANGE_EVENT__KIND__DELETE, key, (ProtobufCBinaryData){0, 0});
    return RK_DB_OK;
}

/* A mismatch answers with the current value and revisions; a missing key answers with
 * revisions 0, which tells it apart from a key holding an empty value. */
static int op_cas(struct apply *a, const Raftkv__Kv__CompareAndSwap *cas,
                  const struct rk_kv_record *r)
{
    bool match = cas->expect_absent
                     ? !r->found
                     : r->found && r->value.len == cas->expected.len &&
                           (r->value.len == 0 ||
                            memcmp(r->value.data, cas->expected.data, r->value.len) == 0);
    if (match)
        return write_value(a, cas->key, cas->new_value, r);
    a->resp.code = RAFTKV__KV__CODE__CAS_MISMATCH;
    answer_found(a, r);
    return RK_DB_OK;
}

static int run_command(struct apply *a, const Raftkv__Kv__Request *c)
{
    ProtobufCBinaryData key, value;
    struct rk_kv_record r;
    if (!op_fields(c, &key, &value)) {
        snprintf(a->why, sizeof a->why, "%s",
                 c->op_case == RAFTKV__KV__REQUEST__OP_RANGE ? "a range is a read, never an entry"
                                                             : "request has no operation");
        return RK_DB_OK;
    }
    /* Only limits every node shares: the configured ones were checked at proposal, and a
     * node configured differently must still apply exactly what the others do. */
    size_t lmdb_max = (size_t)mdb_env_get_maxkeysize(rk_db_env(a->kv->db));
    if (!check_sizes(key, value, lmdb_max, SIZE_MAX, "LMDB key size", a->why, sizeof a->why))
        return RK_DB_OK;
    int rc = record_get(a, key, &r);
    if (rc)
        return rc;
    switch (c->op_case) {
    case RAFTKV__KV__REQUEST__OP_PUT:
        return write_value(a, key, value, &r);
    case RAFTKV__KV__REQUEST__OP_GET:
        if (r.found)
            answer_found(a, &r);
        else
            a->resp.code = RAFTKV__KV__CODE__NOT_FOUND;
        return RK_DB_OK;
    case RAFTKV__KV__REQUEST__OP_DELETE:
        return op_delete(a, key, &r);
    default:
        return op_cas(a, c->cas, &r);
    }
}

/* Runs an entry's request, in its session when it has one: a copy of a write the session
 * already applied gets the first answer, packed as it was, and changes nothing. *remember:
 * the answer is to be kept for the session. */
static int run_request(struct apply *a, const Raftkv__Kv__Request *c, struct rk_bytes *cached,
                       bool *remember)
{
    struct rk_kv_session_check check = {.run = true};
    int rc = RK_DB_OK;
    *remember = false;
    if (c->op_case == RAFTKV__KV__REQUEST__OP_REGISTER_SESSION) /* revision: the session */
        return rk_kv_session_register(a->kv, a->txn, a->index, c->register_session,
                                      &a->resp.revision);
    if (c->session)
        rc = rk_kv_session_check(a->kv, a->txn, c, &check);
    *remember = c->session && check.run;
    if (rc || check.run)
        return rc ? rc : run_command(a, c);
    *cached = check.cached;
    a->resp.code = check.code;
    if (!cached->data)
        snprintf(a->why, sizeof a->why, "%s", check.why);
    return RK_DB_OK;
}

/* Runs the request and packs the answers. Packing happens before any further write, as
 * the response may point into the map. */
static int apply_command(struct apply *a, const struct raft_entry *e, struct rk_bytes *response,
                         struct rk_bytes *change)
{
    Raftkv__Kv__Request *c = raftkv__kv__request__unpack(NULL, e->len, e->data);
    struct rk_bytes cached = {NULL, 0};
    bool remember = false;
    int rc = RK_DB_OK;
    if (c)
        rc = run_request(a, c, &cached, &remember);
    else
        snprintf(a->why, sizeof a->why, "malformed entry: not a kv.proto Request");
    if (a->why[0] && a->resp.code == RAFTKV__KV__CODE__OK)
        a->resp.code = RAFTKV__KV__CODE__INVALID;
    if (a->why[0])
        a->resp.error = a->why;
    if (cached.data) {
        *response = cached;
    } else {
        if (!rc)
            rc = pack(&a->resp.base, response);
        if (!rc && a->changed)
            rc = pack(&a->change.base, change);
        if (!rc && remember)
            rc = rk_kv_session_remember(a->kv, a->txn, a->index, c, response);
    }
    if (c)
        raftkv__kv__request__free_unpacked(c, NULL);
    return rc;
}

static int persist_record(void *arg, const struct rk_overlay_rec *o)
{
    struct apply *a = arg;
    MDB_val k = {o->key_len, o->key};
    if (o->deleted) {
        int rc = mdb_del(a->txn, a->kv->data, &k, NULL);
        return rc == MDB_NOTFOUND ? RK_DB_OK : rk_db_check(a->kv->db, rc, "delete key");
    }
    MDB_val v = {RECORD_HEADER + o->value_len, NULL};
    int rc = mdb_put(a->txn, a->kv->data, &k, &v, MDB_RESERVE);
    if (rc != MDB_SUCCESS)
        return rk_db_check(a->kv->db, rc, "write key");
    uint8_t *p = v.mv_data;
    rk_db_encode_u64(p, o->create);
    rk_db_encode_u64(p + 8, o->mod);
    if (o->value_len)
        memcpy(p + RECORD_HEADER, o->value, o->value_len);
    return RK_DB_OK;
}

int rk_kv_persist(struct rk_kv *kv, MDB_txn *txn)
{
    struct apply a = {.kv = kv, .txn = txn};
    if (kv->stored_applied == kv->applied)
        return RK_DB_OK;
    batch_begin(kv);
    /* In key order: neighbouring keys share their pages. */
    int rc = rk_overlay_each(&kv->ov, persist_record, &a);
    if (!rc)
        rc = rk_db_meta_put(kv->db, txn, APPLIED, &kv->applied, 1);
    if (!rc && rk_overlay_clear(&kv->ov) != 0)
        rc = rk_db_fail(kv->db, RK_DB_ENOMEM, "out of memory persisting the KV store");
    if (!rc) {
        kv->stored_applied = kv->applied;
        kv->persist_after = persist_after(kv);
    }
    return rc;
}

int rk_kv_apply(struct rk_kv *kv, MDB_txn *txn, const struct raft_entry *e,
                struct rk_bytes *response, struct rk_bytes *change)
{
    *response = (struct rk_bytes){NULL, 0};
    *change = (struct rk_bytes){NULL, 0};
    if (e->index <= kv->applied)
        return RK_DB_OK;
    batch_begin(kv);
    struct apply a = {
        .kv = kv,
        .txn = txn,
        .index = e->index,
        .resp = RAFTKV__KV__RESPONSE__INIT,
        .change = RAFTKV__KV__CHANGE_EVENT__INIT,
    };
    int rc = RK_DB_OK;
    if (e->type == RAFT_ENTRY_NORMAL)
        rc = apply_command(&a, e, response, change);
    if (!rc)
        kv->applied = e->index;
    if (!rc && (kv->applied - kv->stored_applied >= kv->persist_after ||
                kv->ov.bytes >= kv->limits.persist_bytes))
        rc = rk_kv_persist(kv, txn);
    if (rc) {
        rk_bytes_free(response);
        rk_bytes_free(change);
    }
    return rc;
}

/* The fsm path (kv.h): thin adapters over the functions above and kv_snapshot.c. */

static struct raftkv_buf to_buf(struct rk_bytes b)
{
    return (struct raftkv_buf){b.data, b.len};
}

static int fsm_prepare(struct raftkv_fsm *fsm, const uint8_t *request, size_t len,
                       struct raftkv_prepared *out)
{
    return rk_kv_prepare((struct rk_kv *)fsm, request, len, out);
}

static const char *fsm_request_name(struct raftkv_fsm *fsm, const uint8_t *request, size_t len)
{
    (void)fsm;
    return rk_kv_request_name(request, len);
}

static int fsm_apply(struct raftkv_fsm *fsm, const struct raft_entry *entry,
                     struct raftkv_buf *result, struct raftkv_buf *event)
{
    struct rk_kv *kv = (struct rk_kv *)fsm;
    MDB_txn *txn = rk_db_current_txn(kv->db);
    struct rk_bytes r = {NULL, 0}, c = {NULL, 0};
    int rc = txn ? rk_kv_apply(kv, txn, entry, &r, &c)
                 : rk_db_fail(kv->db, RK_DB_EIO, "kv apply outside rk_db_write");
    *result = to_buf(r);
    *event = to_buf(c);
    return rc;
}

/* A get answered as its apply would answer it; packed before the value's pages go away. */
static int query_get(struct rk_kv *kv, MDB_txn *txn, const Raftkv__Kv__Get *get,
                     struct rk_bytes *packed)
{
    struct apply a = {.kv = kv, .txn = txn, .resp = RAFTKV__KV__RESPONSE__INIT};
    struct rk_kv_record r;
    int rc = record_get(&a, get->key, &r);
    if (rc == RK_DB_OK && r.found)
        answer_found(&a, &r);
    else if (rc == RK_DB_OK)
        a.resp.code = RAFTKV__KV__CODE__NOT_FOUND;
    return rc == RK_DB_OK ? pack(&a.resp.base, packed) : rc;
}

/* A read (a get or a range) served from one read transaction. */
static int fsm_query(struct raftkv_fsm *fsm, void *read, struct raftkv_buf *result)
{
    struct rk_kv *kv = (struct rk_kv *)fsm;
    const Raftkv__Kv__Request *req = read;
    struct rk_bytes packed = {NULL, 0};
    MDB_txn *txn;
    int rc = rk_db_read_begin(kv->db, &txn);
    if (rc == RK_DB_OK) {
        rc = req->op_case == RAFTKV__KV__REQUEST__OP_RANGE
                 ? rk_kv_range(kv, txn, req->range, &packed)
                 : query_get(kv, txn, req->get, &packed);
        rk_db_read_end(kv->db, txn);
    }
    *result = to_buf(packed);
    return rc;
}

static void fsm_read_free(struct raftkv_fsm *fsm, void *read)
{
    (void)fsm;
    raftkv__kv__request__free_unpacked(read, NULL);
}

static int fsm_persist(struct raftkv_fsm *fsm)
{
    struct rk_kv *kv = (struct rk_kv *)fsm;
    MDB_txn *txn = rk_db_current_txn(kv->db);
    return txn ? rk_kv_persist(kv, txn)
               : rk_db_fail(kv->db, RK_DB_EIO, "kv persist outside rk_db_write");
}

static int fsm_applied_index(struct raftkv_fsm *fsm, raft_index *index)
{
    return rk_kv_applied_index((struct rk_kv *)fsm, index);
}

static int fsm_snapshot(struct raftkv_fsm *fsm, raftkv_snapshot_emit_fn emit, void *arg,
                        raft_index *index)
{
    return rk_kv_snapshot((struct rk_kv *)fsm, emit, arg, index);
}

static int fsm_restore(struct raftkv_fsm *fsm, raft_index index, raftkv_snapshot_read_fn read,
                       void *arg)
{
    struct rk_kv *kv = (struct rk_kv *)fsm;
    MDB_txn *txn = rk_db_current_txn(kv->db);
    if (!txn)
        return rk_db_fail(kv->db, RK_DB_EIO, "kv restore outside rk_db_write");
    batch_begin(kv);
    int rc = rk_kv_restore(kv, txn, index, read, arg);
    if (!rc && rk_overlay_clear(&kv->ov) != 0)
        rc = rk_db_fail(kv->db, RK_DB_ENOMEM, "out of memory restoring the KV store");
    if (!rc)
        kv->applied = kv->stored_applied = index;
    return rc;
}

static const char *fsm_strerror(struct raftkv_fsm *fsm, int err)
{
    (void)fsm;
    switch (err) {
    case RK_KV_ESNAPSHOT:
        return "the snapshot is malformed, truncated or fails its checksum";
    case RK_KV_ECALLBACK:
        return "the snapshot's emit or read function failed";
    default:
        return rk_db_strerror(err);
    }
}

static void fsm_batch_end(struct raftkv_fsm *fsm, bool committed)
{
    rk_kv_batch_end((struct rk_kv *)fsm, committed);
}

static void fsm_close(struct raftkv_fsm *fsm)
{
    rk_kv_close((struct rk_kv *)fsm);
}

static const struct raftkv_fsm_ops fsm_ops = {
    .prepare = fsm_prepare,
    .query = fsm_query,
    .read_free = fsm_read_free,
    .apply = fsm_apply,
    .persist = fsm_persist,
    .applied_index = fsm_applied_index,
    .snapshot = fsm_snapshot,
    .restore = fsm_restore,
    .batch_end = fsm_batch_end,
    .request_name = fsm_request_name,
    .strerror = fsm_strerror,
    .close = fsm_close,
    .event_topic = "kv/",
};

int rk_kv_fsm_open(struct rk_db *db, const struct rk_kv_limits *limits, struct raftkv_fsm **out)
{
    struct rk_kv *kv;
    int rc = rk_kv_open(db, limits, &kv);
    *out = rc ? NULL : &kv->base;
    return rc;
}
