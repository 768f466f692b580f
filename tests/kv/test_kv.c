/* The KV state machine: command semantics, revisions, atomic applied index, validation. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kv.pb-c.h"
#include "kv/kv_private.h"
#include "kv/session.h"
#include "kv_commands.h"
#include "test.h"
#include "storage/tmp_dir.h"

struct fixture {
    struct tmp_dir dir;
    struct rk_db *db;
    struct rk_kv *kv;
};

/* Without limits: the defaults, except that each entry's writes are stored with it (these
 * tests check what is stored; test_kv_overlay.c checks the overlay in between). */
static bool fixture_open(struct fixture *f, const struct rk_kv_limits *limits)
{
    struct rk_db_options o = {.path = f->dir.path, .cluster_id = 1, .node_id = 1};
    struct rk_kv_limits at_once;
    rk_kv_limits_defaults(&at_once);
    at_once.persist_entries = 1;
    if (rk_db_open(&o, &f->db)) {
        fprintf(stderr, "rk_db_open: %s\n", rk_db_errmsg(f->db));
        return false;
    }
    if (rk_kv_open(f->db, limits ? limits : &at_once, &f->kv) != 0)
        return false;
    rk_db_on_end(f->db, kv_batch_end_cb, f->kv);
    return true;
}

static bool fixture_start(struct fixture *f, const struct rk_kv_limits *limits)
{
    return tmp_dir_make(&f->dir) && fixture_open(f, limits);
}

static void fixture_close(struct fixture *f)
{
    rk_kv_close(f->kv);
    rk_db_close(f->db);
}

static void fixture_end(struct fixture *f)
{
    fixture_close(f);
    tmp_dir_remove(&f->dir);
}

struct applied {
    int rc;
    Raftkv__Kv__Response *resp;      /* NULL when the response was empty */
    Raftkv__Kv__ChangeEvent *change; /* NULL when nothing changed */
};

static void applied_free(struct applied *a)
{
    if (a->resp)
        raftkv__kv__response__free_unpacked(a->resp, NULL);
    if (a->change)
        raftkv__kv__change_event__free_unpacked(a->change, NULL);
}

struct apply_arg {
    struct rk_kv *kv;
    const struct raft_entry *e;
    struct rk_bytes response, change;
    bool then_fail; /* make the write fn fail after applying */
};

static int apply_fn(MDB_txn *txn, void *arg)
{
    struct apply_arg *a = arg;
    /* a retry after the map grew starts from scratch */
    rk_bytes_free(&a->response);
    rk_bytes_free(&a->change);
    int rc = rk_kv_apply(a->kv, txn, a->e, &a->response, &a->change);
    return rc ? rc : a->then_fail ? RK_DB_EIO : RK_DB_OK;
}

static struct applied apply_entry(struct fixture *f, const struct raft_entry *e, bool then_fail)
{
    struct apply_arg a = {.kv = f->kv, .e = e, .then_fail = then_fail};
    struct applied out = {0};
    out.rc = rk_db_write(f->db, apply_fn, &a);
    if (a.response.len)
        out.resp = raftkv__kv__response__unpack(NULL, a.response.len, a.response.data);
    if (a.change.len)
        out.change = raftkv__kv__change_event__unpack(NULL, a.change.len, a.change.data);
    rk_bytes_free(&a.response);
    rk_bytes_free(&a.change);
    return out;
}

/* Applies a normal entry holding cmd (consumed) at index. */
static struct applied apply_cmd(struct fixture *f, raft_index index, struct rk_bytes cmd)
{
    struct raft_entry e = {
        .term = 1, .index = index, .type = RAFT_ENTRY_NORMAL, .len = cmd.len, .data = cmd.data};
    struct applied out = apply_entry(f, &e, false);
    free(cmd.data);
    return out;
}

static raft_index applied_index(struct fixture *f)
{
    raft_index i = 0;
    return rk_kv_applied_index(f->kv, &i) ? UINT64_MAX : i;
}

TEST(put_get_revisions)
{
    struct fixture f;
    CHECK(fixture_start(&f, NULL));
    struct applied a = apply_cmd(&f, 1, cmd_put("k", "v1"));
    CHECK_EQ(a.rc, 0);
    CHECK(a.resp && a.change);
    CHECK_EQ(a.resp->code, RAFTKV__KV__CODE__OK);
    CHECK_EQ(a.resp->revision, 1);
    CHECK_EQ(a.resp->create_revision, 1);
    CHECK_EQ(a.resp->mod_revision, 1);
    CHECK_EQ(a.change->kind, RAFTKV__KV__CHANGE_EVENT__KIND__PUT);
    CHECK(bytes_eq(a.change->key, "k") && bytes_eq(a.change->value, "v1"));
    CHECK_EQ(a.change->revision, 1);
    applied_free(&a);

    a = apply_cmd(&f, 2, cmd_put("k", "v2"));
    CHECK(a.resp);
    CHECK_EQ(a.resp->create_revision, 1);
    CHECK_EQ(a.resp->mod_revision, 2);
    applied_free(&a);

    a = apply_cmd(&f, 3, cmd_get("k"));
    CHECK(a.resp && !a.change);
    CHECK_EQ(a.resp->code, RAFTKV__KV__CODE__OK);
    CHECK(bytes_eq(a.resp->value, "v2"));
    CHECK_EQ(a.resp->create_revision, 1);
    CHECK_EQ(a.resp->mod_revision, 2);
    applied_free(&a);

    a = apply_cmd(&f, 4, cmd_get("missing"));
    CHECK(a.resp && !a.change);
    CHECK_EQ(a.resp->code, RAFTKV__KV__CODE__NOT_FOUND);
    applied_free(&a);

    /* an empty value is a value */
    a = apply_cmd(&f, 5, cmd_put("e", ""));
    applied_free(&a);
    a = apply_cmd(&f, 6, cmd_get("e"));
    CHECK(a.resp);
    CHECK_EQ(a.resp->code, RAFTKV__KV__CODE__OK);
    CHECK_EQ(a.resp->value.len, 0);
    CHECK_EQ(a.resp->create_revision, 5);
    applied_free(&a);
    CHECK_EQ(applied_index(&f), 6);
    fixture_end(&f);
}

TEST(delete_semantics)
{
    struct fixture f;
    CHECK(fixture_start(&f, NULL));
    struct applied a = apply_cmd(&f, 1, cmd_delete("k"));
    CHECK(a.resp && !a.change);
    CHECK_EQ(a.resp->code, RAFTKV__KV__CODE__NOT_FOUND);
    applied_free(&a);
    a = apply_cmd(&f, 2, cmd_put("k", "v"));
    applied_free(&a);
    a = apply_cmd(&f, 3, cmd_delete("k"));
    CHECK(a.resp && a.change);
    CHECK_EQ(a.resp->code, RAFTKV__KV__CODE__OK);
    CHECK_EQ(a.resp->revision, 3);
    CHECK_EQ(a.change->kind, RAFTKV__KV__CHANGE_EVENT__KIND__DELETE);
    CHECK(bytes_eq(a.change->key, "k"));
    CHECK_EQ(a.change->revision, 3);
    applied_free(&a);
    a = apply_cmd(&f, 4, cmd_get("k"));
    CHECK(a.resp);
    CHECK_EQ(a.resp->code, RAFTKV__KV__CODE__NOT_FOUND);
    applied_free(&a);
    /* recreated: a new create revision */
    a = apply_cmd(&f, 5, cmd_put("k", "w"));
    CHECK(a.resp);
    CHECK_EQ(a.resp->create_revision, 5);
    applied_free(&a);
    fixture_end(&f);
}

TEST(cas_semantics)
{
    struct fixture f;
    CHECK(fixture_start(&f, NULL));
    /* expected value on a missing key: mismatch, revisions 0 say "absent" */
    struct applied a = apply_cmd(&f, 1, cmd_cas("k", "x", "y"));
    CHECK(a.resp && !a.change);
    CHECK_EQ(a.resp->code, RAFTKV__KV__CODE__CAS_MISMATCH);
    CHECK_EQ(a.resp->create_revision, 0);
    applied_free(&a);
    /* expect_absent on a missing key creates it */
    a = apply_cmd(&f, 2, cmd_cas("k", NULL, "v1"));
    CHECK(a.resp && a.change);
    CHECK_EQ(a.resp->code, RAFTKV__KV__CODE__OK);
    CHECK_EQ(a.resp->revision, 2);
    CHECK_EQ(a.resp->create_revision, 2);
    CHECK(bytes_eq(a.change->value, "v1"));
    applied_free(&a);
    /* expect_absent on a present key: mismatch with the current value */
    a = apply_cmd(&f, 3, cmd_cas("k", NULL, "v2"));
    CHECK(a.resp && !a.change);
    CHECK_EQ(a.resp->code, RAFTKV__KV__CODE__CAS_MISMATCH);
    CHECK(bytes_eq(a.resp->value, "v1"));
    CHECK_EQ(a.resp->mod_revision, 2);
    applied_free(&a);
    /* wrong expected value (a prefix of the real one must not match) */
    a = apply_cmd(&f, 4, cmd_cas("k", "v", "v2"));
    CHECK(a.resp && !a.change);
    CHECK_EQ(a.resp->code, RAFTKV__KV__CODE__CAS_MISMATCH);
    CHECK(bytes_eq(a.resp->value, "v1"));
    applied_free(&a);
    /* right expected value swaps, keeping the create revision */
    a = apply_cmd(&f, 5, cmd_cas("k", "v1", "v2"));
    CHECK(a.resp && a.change);
    CHECK_EQ(a.resp->code, RAFTKV__KV__CODE__OK);
    CHECK_EQ(a.resp->revision, 5);
    CHECK_EQ(a.resp->create_revision, 2);
    CHECK_EQ(a.resp->mod_revision, 5);
    CHECK_EQ(a.change->kind, RAFTKV__KV__CHANGE_EVENT__KIND__PUT);
    applied_free(&a);
    a = apply_cmd(&f, 6, cmd_get("k"));
    CHECK(a.resp);
    CHECK(bytes_eq(a.resp->value, "v2"));
    applied_free(&a);
    fixture_end(&f);
}

TEST(malformed_and_noop_entries_advance_applied_index)
{
    struct fixture f;
    CHECK(fixture_start(&f, NULL));
    uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    struct rk_bytes b = {malloc(sizeof junk), sizeof junk};
    memcpy(b.data, junk, sizeof junk);
    struct applied a = apply_cmd(&f, 1, b);
    CHECK_EQ(a.rc, 0);
    CHECK(a.resp && !a.change);
    CHECK_EQ(a.resp->code, RAFTKV__KV__CODE__INVALID);
    CHECK(strstr(a.resp->error, "malformed"));
    applied_free(&a);
    CHECK_EQ(applied_index(&f), 1);

    a = apply_cmd(&f, 2, cmd_put("", "v"));
    CHECK(a.resp && !a.change);
    CHECK_EQ(a.resp->code, RAFTKV__KV__CODE__INVALID);
    CHECK(strstr(a.resp->error, "empty key"));
    applied_free(&a);

    /* a key longer than LMDB can store is answered, the same on every node */
    char key[600];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    a = apply_cmd(&f, 3, cmd_put(key, "v"));
    CHECK(a.resp && !a.change);
    CHECK_EQ(a.resp->code, RAFTKV__KV__CODE__INVALID);
    CHECK(strstr(a.resp->error, "key limit"));
    applied_free(&a);

    struct raft_entry noop = {.term = 2, .index = 4, .type = RAFT_ENTRY_NOOP};
    a = apply_entry(&f, &noop, false);
    CHECK_EQ(a.rc, 0);
    CHECK(!a.resp && !a.change);
    CHECK_EQ(applied_index(&f), 4);
    fixture_end(&f);
}

TEST(applied_index_is_atomic_with_effects)
{
    struct fixture f;
    CHECK(fixture_start(&f, NULL));
    struct applied a = apply_cmd(&f, 1, cmd_put("k", "v1"));
    applied_free(&a);

    /* the batch fails after the apply: neither the effect nor the index may remain */
    struct rk_bytes cmd = cmd_put("k", "v2");
    struct raft_entry e = {.term = 1, .index = 2, .len = cmd.len, .data = cmd.data};
    a = apply_entry(&f, &e, true);
    CHECK_EQ(a.rc, RK_DB_EIO);
    applied_free(&a);
    CHECK_EQ(applied_index(&f), 1);

    /* reopen: the same applied index and data */
    fixture_close(&f);
    CHECK(fixture_open(&f, NULL));
    CHECK_EQ(applied_index(&f), 1);
    /* an entry at or below the applied index is never applied twice */
    e.index = 1;
    a = apply_entry(&f, &e, false);
    CHECK_EQ(a.rc, 0);
    CHECK(!a.resp && !a.change);
    free(cmd.data);
    a = apply_cmd(&f, 2, cmd_get("k"));
    CHECK(a.resp);
    CHECK(bytes_eq(a.resp->value, "v1"));
    CHECK_EQ(a.resp->mod_revision, 1);
    applied_free(&a);
    CHECK_EQ(applied_index(&f), 2);
    fixture_end(&f);
}

/* The map fills while storing: rk_db_write aborts, grows it and applies the entry again,
 * with the overlay's changes of the aborted try undone (persist_entries 64: each 64th
 * entry stores the 64 before it). */
TEST(applies_across_map_growth)
{
    for (uint64_t persist = 1; persist <= 64; persist += 63) {
        struct fixture f;
        CHECK(tmp_dir_make(&f.dir));
        struct rk_db_options o = {.path = f.dir.path,
                                  .cluster_id = 1,
                                  .node_id = 1,
                                  .initial_map_bytes = 64 << 10,
                                  .max_map_bytes = 16 << 20};
        struct rk_kv_limits limits;
        rk_kv_limits_defaults(&limits);
        limits.persist_entries = persist;
        CHECK_EQ(rk_db_open(&o, &f.db), 0);
        CHECK_EQ(rk_kv_open(f.db, &limits, &f.kv), 0);
        rk_db_on_end(f.db, kv_batch_end_cb, f.kv);
        char key[32], value[2048];
        memset(value, 'v', sizeof value - 1);
        value[sizeof value - 1] = '\0';
        for (raft_index i = 1; i <= 500; i++) {
            snprintf(key, sizeof key, "key-%05" PRIu64, i % 400);
            struct applied a = apply_cmd(&f, i, cmd_put(key, value));
            CHECK_EQ(a.rc, 0);
            CHECK(a.resp);
            CHECK_EQ(a.resp->revision, i);
            CHECK_EQ(a.resp->create_revision, i > 400 ? i - 400 : i);
            CHECK(a.change);
            applied_free(&a);
        }
        struct rk_db_stats st;
        rk_db_stats(f.db, &st);
        CHECK(st.map_grows > 0);
        CHECK(persist == 1 ? applied_index(&f) == 500 : applied_index(&f) > 500 - persist);
        /* Reopened, the store holds what was stored, and applies the rest again alike. */
        fixture_close(&f);
        CHECK(fixture_open(&f, &limits));
        for (raft_index i = applied_index(&f) + 1; i <= 500; i++) {
            snprintf(key, sizeof key, "key-%05" PRIu64, i % 400);
            struct applied a = apply_cmd(&f, i, cmd_put(key, value));
            CHECK_EQ(a.resp->create_revision, i > 400 ? i - 400 : i);
            applied_free(&a);
        }
        struct applied a = apply_cmd(&f, 501, cmd_get("key-00007"));
        CHECK(a.resp);
        CHECK(bytes_eq(a.resp->value, value));
        CHECK_EQ(a.resp->create_revision, 7);
        CHECK_EQ(a.resp->mod_revision, 407);
        applied_free(&a);
        fixture_end(&f);
    }
}

static struct rk_bytes request(int op_case, ProtobufCBinaryData key, ProtobufCBinaryData value)
{
    Raftkv__Kv__Put put = RAFTKV__KV__PUT__INIT;
    Raftkv__Kv__Get get = RAFTKV__KV__GET__INIT;
    Raftkv__Kv__CompareAndSwap cas = RAFTKV__KV__COMPARE_AND_SWAP__INIT;
    Raftkv__Kv__Request r = RAFTKV__KV__REQUEST__INIT;
    r.op_case = op_case;
    if (op_case == RAFTKV__KV__REQUEST__OP_PUT) {
        put.key = key;
        put.value = value;
        r.put = &put;
    } else if (op_case == RAFTKV__KV__REQUEST__OP_CAS) {
        cas.key = key;
        cas.expected = value;
        cas.new_value = B("x");
        r.cas = &cas;
    } else if (op_case == RAFTKV__KV__REQUEST__OP_GET) {
        get.key = key;
        r.get = &get;
    }
    return pack_request(&r.base);
}

/* rk_kv_prepare's verdict (a raftkv_prepare_kind); a refusal must name why. A proposal is
 * of the request's own bytes; a read is freed here. */
static int prepare(struct rk_kv *kv, struct rk_bytes req, const char *why)
{
    struct raftkv_prepared p;
    int rc = rk_kv_prepare(kv, req.data, req.len, &p);
    free(req.data);
    if (rc)
        return -1;
    if (p.kind == RAFTKV_PREPARE_REFUSE && (!why || !strstr(p.why, why)))
        return -2;
    if (p.kind == RAFTKV_PREPARE_PROPOSE && p.entry.len)
        return -3;
    if (p.kind == RAFTKV_PREPARE_READ)
        raftkv__kv__request__free_unpacked(p.read, NULL);
    return (int)p.kind;
}

TEST(prepare_limits)
{
    struct fixture f;
    struct rk_kv_limits lim = {.max_key_bytes = 16, .max_value_bytes = 32};
    CHECK(fixture_start(&f, &lim));
    const int PUT = RAFTKV__KV__REQUEST__OP_PUT, CAS = RAFTKV__KV__REQUEST__OP_CAS;
    const int PROPOSE = RAFTKV_PREPARE_PROPOSE, REFUSE = RAFTKV_PREPARE_REFUSE;
    char big[64];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ProtobufCBinaryData k16 = {16, (uint8_t *)big}, k17 = {17, (uint8_t *)big};
    ProtobufCBinaryData v32 = {32, (uint8_t *)big}, v33 = {33, (uint8_t *)big};
    CHECK_EQ(prepare(f.kv, request(PUT, k16, v32), NULL), PROPOSE);
    CHECK_EQ(prepare(f.kv, request(PUT, B(""), v32), "empty key"), REFUSE);
    CHECK_EQ(prepare(f.kv, request(PUT, k17, v32), "17 bytes, over the 16-byte key limit"), REFUSE);
    CHECK_EQ(prepare(f.kv, request(PUT, k16, v33), "max_value_bytes"), REFUSE);
    CHECK_EQ(prepare(f.kv, request(CAS, k16, v33), "33 bytes, over the 32-byte value"), REFUSE);
    CHECK_EQ(prepare(f.kv, request(RAFTKV__KV__REQUEST__OP_GET, k16, B("")), NULL),
             RAFTKV_PREPARE_READ);
    CHECK_EQ(prepare(f.kv, request(RAFTKV__KV__REQUEST__OP_GET, k17, B("")), "key limit"), REFUSE);
    CHECK_EQ(prepare(f.kv, request(0, B(""), B("")), "no operation"), REFUSE);
    uint8_t junk[] = {0x52, 0xff, 0xff};
    struct rk_bytes j = {malloc(sizeof junk), sizeof junk};
    memcpy(j.data, junk, sizeof junk);
    CHECK_EQ(prepare(f.kv, j, "malformed"), REFUSE);
    fixture_end(&f);

    /* a configured key limit above what LMDB can store is capped to it */
    lim.max_key_bytes = 100000;
    CHECK(fixture_start(&f, &lim));
    char key[600];
    memset(key, 'k', sizeof key);
    ProtobufCBinaryData k600 = {sizeof key, (uint8_t *)key};
    CHECK_EQ(prepare(f.kv, request(PUT, k600, B("v")), "key limit"), REFUSE);
    fixture_end(&f);
}

/* Client sessions (session.h; Raft dissertation §6.3). */

static uint64_t register_at(struct fixture *f, raft_index index)
{
    struct applied a = apply_cmd(f, index, cmd_register());
    uint64_t id =
        a.rc == 0 && a.resp && a.resp->code == RAFTKV__KV__CODE__OK ? a.resp->revision : 0;
    applied_free(&a);
    return id;
}

/* The code of applying cmd at index; *revision gets the answer's revision. */
static int apply_code(struct fixture *f, raft_index index, struct rk_bytes cmd, uint64_t *revision)
{
    struct applied a = apply_cmd(f, index, cmd);
    int code = a.rc ? -1 : a.resp ? (int)a.resp->code : -2;
    if (revision)
        *revision = a.resp ? a.resp->revision : 0;
    applied_free(&a);
    return code;
}

static bool value_is(struct fixture *f, raft_index index, const char *key, const char *value)
{
    struct applied a = apply_cmd(f, index, cmd_get(key));
    bool ok =
        a.resp && (value ? a.resp->code == RAFTKV__KV__CODE__OK && bytes_eq(a.resp->value, value)
                         : a.resp->code == RAFTKV__KV__CODE__NOT_FOUND);
    applied_free(&a);
    return ok;
}

TEST(session_write_committed_twice_is_applied_once)
{
    struct fixture f;
    CHECK(fixture_start(&f, NULL));
    uint64_t s = register_at(&f, 1), rev;
    CHECK_EQ(s, 1);
    CHECK_EQ(apply_code(&f, 2, in_session(cmd_put("k", "v1"), s, 1, 1), &rev), 0);
    CHECK_EQ(rev, 2);
    CHECK_EQ(apply_code(&f, 3, cmd_put("k", "v2"), NULL), 0);
    /* The leader answered "retry" and the copy was committed too: the first answer, no
     * change, and the later put stays. */
    struct applied a = apply_cmd(&f, 4, in_session(cmd_put("k", "v1"), s, 1, 1));
    CHECK(a.rc == 0 && a.resp && !a.change);
    CHECK_EQ(a.resp->code, RAFTKV__KV__CODE__OK);
    CHECK_EQ(a.resp->revision, 2);
    applied_free(&a);
    CHECK(value_is(&f, 5, "k", "v2"));
    /* Without a session, a copy is applied again. */
    CHECK_EQ(apply_code(&f, 6, cmd_put("k", "v1"), &rev), 0);
    CHECK_EQ(rev, 6);
    fixture_end(&f);
}

TEST(session_retried_cas_returns_its_original_success)
{
    struct fixture f;
    CHECK(fixture_start(&f, NULL));
    uint64_t s = register_at(&f, 1), rev;
    CHECK_EQ(apply_code(&f, 2, in_session(cmd_cas("k", NULL, "A"), s, 1, 1), &rev), 0);
    CHECK_EQ(apply_code(&f, 3, in_session(cmd_cas("k", "A", "B"), s, 2, 1), &rev), 0);
    CHECK_EQ(rev, 3);
    /* today's bug: the copy would answer "mismatch, the value is B" */
    CHECK_EQ(apply_code(&f, 4, in_session(cmd_cas("k", "A", "B"), s, 2, 2), &rev), 0);
    CHECK_EQ(rev, 3);
    CHECK(value_is(&f, 5, "k", "B"));
    fixture_end(&f);
}

TEST(session_unknown_is_expired_and_never_applied)
{
    struct fixture f;
    CHECK(fixture_start(&f, NULL));
    CHECK_EQ(apply_code(&f, 1, in_session(cmd_put("k", "v"), 77, 1, 1), NULL),
             RAFTKV__KV__CODE__SESSION_EXPIRED);
    CHECK(value_is(&f, 2, "k", NULL));
    fixture_end(&f);
}

TEST(session_keeps_answers_until_acknowledged_within_its_window)
{
    struct fixture f;
    CHECK(fixture_start(&f, NULL));
    uint64_t s = register_at(&f, 1), rev;
    raft_index i = 2;
    for (uint64_t seq = 1; seq <= 3; seq++)
        CHECK_EQ(apply_code(&f, i++, in_session(cmd_put("k", "v"), s, seq, 1), NULL), 0);
    /* write 4 says 1 and 2 were answered: their answers go, 3's stays */
    CHECK_EQ(apply_code(&f, i++, in_session(cmd_put("k", "w"), s, 4, 3), NULL), 0);
    CHECK_EQ(apply_code(&f, i++, in_session(cmd_put("k", "v"), s, 1, 1), NULL),
             RAFTKV__KV__CODE__INVALID);
    CHECK_EQ(apply_code(&f, i++, in_session(cmd_put("k", "v"), s, 3, 3), &rev), 0);
    CHECK_EQ(rev, 4);
    CHECK(value_is(&f, i++, "k", "w"));
    /* at most RK_KV_SESSION_WINDOW writes past the first unanswered one */
    CHECK_EQ(
        apply_code(&f, i++, in_session(cmd_put("k", "x"), s, 3 + RK_KV_SESSION_WINDOW, 3), NULL),
        RAFTKV__KV__CODE__INVALID);
    CHECK_EQ(apply_code(&f, i++, in_session(cmd_put("k", "x"), s, 5, 6), NULL),
             RAFTKV__KV__CODE__INVALID);
    CHECK(value_is(&f, i++, "k", "w"));
    fixture_end(&f);
}

TEST(session_least_recently_active_expires_first)
{
    struct fixture f;
    struct rk_kv_limits lim;
    rk_kv_limits_defaults(&lim);
    lim.persist_entries = 1000; /* registration stores the overlay itself */
    lim.max_sessions = 3;
    CHECK(fixture_start(&f, &lim));
    uint64_t s1 = register_at(&f, 1), s2 = register_at(&f, 2), s3 = register_at(&f, 3);
    CHECK(s1 && s2 && s3);
    CHECK_EQ(apply_code(&f, 4, in_session(cmd_put("a", "1"), s1, 1, 1), NULL), 0);
    CHECK_EQ(apply_code(&f, 5, in_session(cmd_put("b", "1"), s2, 1, 1), NULL), 0);
    CHECK_EQ(apply_code(&f, 6, in_session(cmd_put("a", "2"), s1, 2, 2), NULL), 0);
    /* s3 was idle since its registration */
    uint64_t s4 = register_at(&f, 7);
    CHECK_EQ(s4, 7);
    CHECK_EQ(apply_code(&f, 8, in_session(cmd_put("c", "1"), s3, 1, 1), NULL),
             RAFTKV__KV__CODE__SESSION_EXPIRED);
    CHECK_EQ(apply_code(&f, 9, in_session(cmd_put("b", "2"), s2, 2, 2), NULL), 0);
    CHECK_EQ(apply_code(&f, 10, in_session(cmd_put("a", "3"), s1, 3, 3), NULL), 0);
    /* now s4 is the idlest; its registration, then s2's answers, go */
    CHECK(register_at(&f, 11) == 11);
    CHECK_EQ(apply_code(&f, 12, in_session(cmd_put("d", "1"), s4, 1, 1), NULL),
             RAFTKV__KV__CODE__SESSION_EXPIRED);
    CHECK(register_at(&f, 13) == 13);
    CHECK_EQ(apply_code(&f, 14, in_session(cmd_put("b", "2"), s2, 2, 2), NULL),
             RAFTKV__KV__CODE__SESSION_EXPIRED);
    CHECK_EQ(apply_code(&f, 15, in_session(cmd_put("a", "3"), s1, 3, 3), NULL), 0);
    CHECK(value_is(&f, 16, "c", NULL));
    fixture_end(&f);
}

TEST(session_registration_copies_open_one_session)
{
    struct fixture f;
    struct rk_kv_limits lim;
    rk_kv_limits_defaults(&lim);
    lim.persist_entries = 1;
    lim.max_sessions = 2;
    CHECK(fixture_start(&f, &lim));
    uint64_t id;
    CHECK_EQ(apply_code(&f, 1, cmd_register_nonce(5), &id), 0);
    CHECK_EQ(id, 1);
    CHECK_EQ(apply_code(&f, 2, cmd_register_nonce(5), &id), 0);
    CHECK_EQ(id, 1);
    CHECK_EQ(apply_code(&f, 3, cmd_register_nonce(6), &id), 0);
    CHECK_EQ(id, 3);
    /* a third session expires session 1, and its nonce with it */
    CHECK_EQ(apply_code(&f, 4, cmd_register_nonce(7), &id), 0);
    CHECK_EQ(id, 4);
    CHECK_EQ(apply_code(&f, 5, cmd_register_nonce(5), &id), 0);
    CHECK_EQ(id, 5);
    CHECK_EQ(apply_code(&f, 6, in_session(cmd_put("k", "v"), 1, 1, 1), NULL),
             RAFTKV__KV__CODE__SESSION_EXPIRED);
    CHECK_EQ(apply_code(&f, 7, in_session(cmd_put("k", "v"), 5, 1, 1), NULL), 0);
    fixture_end(&f);
}

TEST(session_state_survives_restart_and_aborted_batches)
{
    struct fixture f;
    CHECK(fixture_start(&f, NULL));
    uint64_t s = register_at(&f, 1), rev;
    /* an aborted batch takes its answer with it: the write runs when it comes again */
    struct rk_bytes cmd = in_session(cmd_cas("k", NULL, "A"), s, 1, 1);
    struct raft_entry e = {
        .term = 1, .index = 2, .type = RAFT_ENTRY_NORMAL, .len = cmd.len, .data = cmd.data};
    struct applied a = apply_entry(&f, &e, true);
    CHECK(a.rc != 0);
    applied_free(&a);
    free(cmd.data);
    CHECK_EQ(apply_code(&f, 2, in_session(cmd_cas("k", NULL, "A"), s, 1, 1), &rev), 0);
    CHECK_EQ(rev, 2);
    fixture_close(&f);
    CHECK(fixture_open(&f, NULL));
    CHECK_EQ(apply_code(&f, 3, in_session(cmd_cas("k", NULL, "A"), s, 1, 1), &rev), 0);
    CHECK_EQ(rev, 2);
    fixture_end(&f);
}

TEST(reserved_keys_are_refused)
{
    struct fixture f;
    CHECK(fixture_start(&f, NULL));
    ProtobufCBinaryData reserved = {3, (uint8_t *)"\0sx"};
    CHECK_EQ(prepare(f.kv, request(RAFTKV__KV__REQUEST__OP_PUT, reserved, B("v")), "reserved"),
             RAFTKV_PREPARE_REFUSE);
    CHECK_EQ(prepare(f.kv, request(RAFTKV__KV__REQUEST__OP_GET, reserved, B("")), "reserved"),
             RAFTKV_PREPARE_REFUSE);
    CHECK_EQ(prepare(f.kv, cmd_register(), NULL), RAFTKV_PREPARE_PROPOSE);
    /* an entry that got into the log anyway is a no-op on every node */
    CHECK_EQ(apply_code(&f, 1, request(RAFTKV__KV__REQUEST__OP_PUT, reserved, B("v")), NULL),
             RAFTKV__KV__CODE__INVALID);
    fixture_end(&f);
}

/* Range reads (kv.proto Range), served as the node serves them: prepare, then query. */

static bool text_is(const char *got, const char *want)
{
    if (strcmp(got, want) == 0)
        return true;
    fprintf(stderr, "got  \"%s\"\nwant \"%s\"\n", got, want);
    return false;
}

static Raftkv__Kv__Response *range_read(struct fixture *f, ProtobufCBinaryData key,
                                        ProtobufCBinaryData end, uint64_t limit)
{
    return fsm_read(&f->kv->base, cmd_range(key, end, limit));
}

static const char *range_of(struct fixture *f, ProtobufCBinaryData key, ProtobufCBinaryData end,
                            uint64_t limit)
{
    static char buf[1024];
    return range_text(range_read(f, key, end, limit), buf, sizeof buf);
}

TEST(range_lists_keys_in_unsigned_byte_order_within_its_bounds)
{
    struct fixture f;
    CHECK(fixture_start(&f, NULL));
    const char *keys[] = {"b/2",
                          "\xff"
                          "z",
                          "a",
                          "b/1",
                          "c",
                          "\x80"
                          "x",
                          "b",
                          "b/3",
                          "\x7f"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        CHECK_EQ(apply_code(&f, i + 1, cmd_put(keys[i], "v"), NULL), RAFTKV__KV__CODE__OK);
    /* a session's records, under keys starting with 0x00, are never listed */
    CHECK_EQ(register_at(&f, 10), 10);
    const char *all = "a=v@3/3 b=v@7/7 b/1=v@4/4 b/2=v@1/1 b/3=v@8/8 c=v@5/5 \x7f=v@9/9 "
                      "\x80x=v@6/6 \xffz=v@2/2";
    CHECK(text_is(range_of(&f, B(""), B(""), 0), all));
    CHECK(text_is(range_of(&f, (ProtobufCBinaryData){2, (uint8_t *)"\0s"}, B(""), 0), all));
    CHECK(text_is(range_of(&f, B(""), B(""), UINT64_MAX), all));
    /* a prefix: [b/, b0) */
    CHECK(text_is(range_of(&f, B("b/"), B("b0"), 0), "b/1=v@4/4 b/2=v@1/1 b/3=v@8/8"));
    CHECK(text_is(range_of(&f, B("b/"), B("b0"), 2), "b/1=v@4/4 b/2=v@1/1 +more"));
    /* the next page starts just after the last key: "b/2" and a 0 byte */
    CHECK(
        text_is(range_of(&f, (ProtobufCBinaryData){4, (uint8_t *)"b/2"}, B("b0"), 2), "b/3=v@8/8"));
    CHECK(text_is(range_of(&f, B("b/3"), B("b0"), 1), "b/3=v@8/8"));
    CHECK(text_is(range_of(&f, B("c"), B(""), 0), "c=v@5/5 \x7f=v@9/9 \x80x=v@6/6 \xffz=v@2/2"));
    CHECK(text_is(range_of(&f, B("\x80"), B("\xff"), 0), "\x80x=v@6/6"));
    /* empty ranges: nothing there, an end at or before the key, an end among the reserved */
    CHECK(text_is(range_of(&f, B("d"), B("e"), 0), ""));
    CHECK(text_is(range_of(&f, B("b"), B("b"), 0), ""));
    CHECK(text_is(range_of(&f, B("c"), B("a"), 0), ""));
    CHECK(text_is(range_of(&f, B(""), (ProtobufCBinaryData){1, (uint8_t *)"\0"}, 0), ""));
    /* the revision is the applied index the read saw */
    Raftkv__Kv__Response *r = range_read(&f,
                                         B("\xff"
                                           "zz"),
                                         B(""), 0);
    CHECK(r);
    CHECK_EQ(r->code, RAFTKV__KV__CODE__OK);
    CHECK_EQ(r->revision, 10);
    CHECK_EQ(r->n_kvs + r->more, 0);
    raftkv__kv__response__free_unpacked(r, NULL);
    /* a range in the log (never proposed by a node) changes nothing on any node */
    CHECK_EQ(apply_code(&f, 11, cmd_range(B("a"), B(""), 0), NULL), RAFTKV__KV__CODE__INVALID);
    CHECK_EQ(applied_index(&f), 11);
    fixture_end(&f);
}

TEST(range_key_over_the_key_limit_is_refused_its_end_is_not)
{
    struct fixture f;
    struct rk_kv_limits lim = {.max_key_bytes = 16};
    CHECK(fixture_start(&f, &lim));
    char big[600];
    memset(big, 'k', sizeof big);
    ProtobufCBinaryData k16 = {16, (uint8_t *)big}, k17 = {17, (uint8_t *)big};
    ProtobufCBinaryData k600 = {sizeof big, (uint8_t *)big};
    CHECK_EQ(prepare(f.kv, cmd_range(k16, k600, 5), NULL), RAFTKV_PREPARE_READ);
    CHECK_EQ(prepare(f.kv, cmd_range(k17, B(""), 0), "range key is 17 bytes, over the 16-byte"),
             RAFTKV_PREPARE_REFUSE);
    CHECK(text_is(range_of(&f, k16, k600, 5), ""));
    fixture_end(&f);
}

struct apply_many {
    struct rk_kv *kv;
    raft_index first;
    size_t n;
};

/* Puts key%04zu = "v" at first + i, in one batch. */
static int apply_many_fn(MDB_txn *txn, void *arg)
{
    struct apply_many *m = arg;
    for (size_t i = 0; i < m->n; i++) {
        char key[32];
        snprintf(key, sizeof key, "key%04zu", i);
        struct rk_bytes cmd = cmd_put(key, "v"), resp, change;
        struct raft_entry e = {.term = 1,
                               .index = m->first + i,
                               .type = RAFT_ENTRY_NORMAL,
                               .len = cmd.len,
                               .data = cmd.data};
        int rc = rk_kv_apply(m->kv, txn, &e, &resp, &change);
        free(cmd.data);
        rk_bytes_free(&resp);
        rk_bytes_free(&change);
        if (rc)
            return rc;
    }
    return RK_DB_OK;
}

TEST(range_limit_is_capped_at_1000_keys)
{
    struct fixture f;
    CHECK(fixture_start(&f, NULL));
    struct apply_many m = {f.kv, 1, RK_KV_RANGE_MAX_KEYS + 5};
    CHECK_EQ(rk_db_write(f.db, apply_many_fn, &m), 0);
    uint64_t limits[] = {0, RK_KV_RANGE_MAX_KEYS + 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        Raftkv__Kv__Response *r = range_read(&f, B("key"), B("kez"), limits[i]);
        CHECK(r);
        CHECK_EQ(r->n_kvs, RK_KV_RANGE_MAX_KEYS);
        CHECK(r->more);
        CHECK(bytes_eq(r->kvs[RK_KV_RANGE_MAX_KEYS - 1]->key, "key0999"));
        raftkv__kv__response__free_unpacked(r, NULL);
    }
    CHECK(text_is(range_of(&f, B("key1000"), B(""), 0),
                  "key1000=v@1001/1001 key1001=v@1002/1002 key1002=v@1003/1003 "
                  "key1003=v@1004/1004 key1004=v@1005/1005"));
    fixture_end(&f);
}

/* The keys of an answer, "k1 k2 ..." (+more), and whether it packs within 4 MiB. */
static const char *big_range(struct fixture *f, const char *key, bool *fits)
{
    static char buf[256];
    Raftkv__Kv__Response *r = range_read(f, B(key), B(""), 0);
    size_t n = 0;
    buf[0] = '\0';
    *fits = r && raftkv__kv__response__get_packed_size(r) <= RK_KV_RANGE_MAX_BYTES;
    for (size_t i = 0; r && i < r->n_kvs; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%.*s", i ? " " : "",
                              (int)r->kvs[i]->key.len, (const char *)r->kvs[i]->key.data);
    if (r && r->more)
        snprintf(buf + n, sizeof buf - n, " +more");
    if (r)
        raftkv__kv__response__free_unpacked(r, NULL);
    return buf;
}

TEST(range_is_cut_before_4_mib_but_holds_one_key)
{
    struct fixture f;
    struct rk_kv_limits lim;
    rk_kv_limits_defaults(&lim);
    lim.persist_entries = 1;
    lim.max_value_bytes = 8 << 20;
    CHECK(fixture_start(&f, &lim));
    size_t mib = 1 << 20;
    char *value = malloc(5 * mib + 1);
    CHECK(value);
    memset(value, 'x', 5 * mib);
    value[mib] = '\0';
    const char *keys[] = {"k1", "k2", "k3", "k4", "k5"};
    for (size_t i = 0; i < 5; i++)
        CHECK_EQ(apply_code(&f, i + 1, cmd_put(keys[i], value), NULL), RAFTKV__KV__CODE__OK);
    bool fits;
    /* 4 values of 1 MiB and their keys pass 4 MiB: 3 of them are answered */
    CHECK(text_is(big_range(&f, "", &fits), "k1 k2 k3 +more"));
    CHECK(fits);
    CHECK(text_is(big_range(&f, "k4", &fits), "k4 k5"));
    /* a value larger than the answer's budget is answered on its own */
    value[mib] = 'x';
    value[5 * mib] = '\0';
    CHECK_EQ(apply_code(&f, 6, cmd_put("k0", value), NULL), RAFTKV__KV__CODE__OK);
    free(value);
    CHECK(text_is(big_range(&f, "", &fits), "k0 +more"));
    CHECK(text_is(big_range(&f, "k1", &fits), "k1 k2 k3 +more"));
    fixture_end(&f);
}

/* The node's metrics name each request by its operation, read from the wire. */
TEST(request_name_is_the_operation)
{
    struct {
        struct rk_bytes req;
        const char *name;
    } cases[] = {
        {cmd_put("k", "v"), "put"},
        {cmd_get("k"), "get"},
        {cmd_delete("k"), "delete"},
        {cmd_cas("k", NULL, "v"), "cas"},
        {cmd_range(B("a"), B("b"), 10), "range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *name = rk_kv_request_name(cases[i].req.data, cases[i].req.len);
        CHECK(name && !strcmp(name, cases[i].name));
        rk_bytes_free(&cases[i].req);
    }
    /* After the session's fields, as a client in a session sends it. */
    Raftkv__Kv__RegisterSession reg = RAFTKV__KV__REGISTER_SESSION__INIT;
    Raftkv__Kv__Request r = RAFTKV__KV__REQUEST__INIT;
    r.session = 7;
    r.sequence = 300;
    r.first_incomplete = 1;
    r.op_case = RAFTKV__KV__REQUEST__OP_REGISTER_SESSION;
    r.register_session = &reg;
    struct rk_bytes b = pack_request(&r.base);
    const char *name = rk_kv_request_name(b.data, b.len);
    CHECK(name && !strcmp(name, "register_session"));
    /* Cut short, none; and none in bytes that are not a request. */
    CHECK(!rk_kv_request_name(b.data, 3));
    rk_bytes_free(&b);
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f}, empty[1] = {0};
    CHECK(!rk_kv_request_name(junk, sizeof junk));
    CHECK(!rk_kv_request_name(empty, 0));
    /* The op's tag names it, whatever follows (prepare refuses a put cut short). */
    static const uint8_t cut_put[] = {0x52, 0x80, 0x80, 0x04}; /* put, 64 KiB, none given */
    name = rk_kv_request_name(cut_put, sizeof cut_put);
    CHECK(name && !strcmp(name, "put"));
}

TEST_MAIN(TEST_REF(put_get_revisions), TEST_REF(delete_semantics), TEST_REF(cas_semantics),
          TEST_REF(malformed_and_noop_entries_advance_applied_index),
          TEST_REF(applied_index_is_atomic_with_effects), TEST_REF(applies_across_map_growth),
          TEST_REF(prepare_limits), TEST_REF(session_write_committed_twice_is_applied_once),
          TEST_REF(session_retried_cas_returns_its_original_success),
          TEST_REF(session_unknown_is_expired_and_never_applied),
          TEST_REF(session_keeps_answers_until_acknowledged_within_its_window),
          TEST_REF(session_least_recently_active_expires_first),
          TEST_REF(session_registration_copies_open_one_session),
          TEST_REF(session_state_survives_restart_and_aborted_batches),
          TEST_REF(reserved_keys_are_refused),
          TEST_REF(range_lists_keys_in_unsigned_byte_order_within_its_bounds),
          TEST_REF(range_key_over_the_key_limit_is_refused_its_end_is_not),
          TEST_REF(range_limit_is_capped_at_1000_keys),
          TEST_REF(range_is_cut_before_4_mib_but_holds_one_key),
          TEST_REF(request_name_is_the_operation))
