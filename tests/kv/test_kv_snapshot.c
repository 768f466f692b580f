/* The KV store as a raftkv_fsm: snapshot format, point-in-time view under concurrent
 * writes, restore (round trip, re-run after map growth, corrupt input keeps the old state). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv.pb-c.h"
#include "storage/crc32c.h"
#include "kv/kv.h"
#include "kv_commands.h"
#include "test.h"
#include "storage/tmp_dir.h"

/* ---- a node: a db and the KV fsm in it ---- */

struct node {
    struct tmp_dir dir;
    struct rk_db *db;
    struct raftkv_fsm *fsm;
};

static bool node_open(struct node *n, size_t initial_map)
{
    struct rk_db_options o = {
        .path = n->dir.path, .cluster_id = 1, .node_id = 1, .initial_map_bytes = initial_map};
    /* Each entry's writes stored with it: these tests read what is stored. */
    struct rk_kv_limits at_once;
    rk_kv_limits_defaults(&at_once);
    at_once.persist_entries = 1;
    if (rk_db_open(&o, &n->db)) {
        fprintf(stderr, "rk_db_open: %s\n", rk_db_errmsg(n->db));
        return false;
    }
    if (rk_kv_fsm_open(n->db, &at_once, &n->fsm) != 0)
        return false;
    rk_db_on_end(n->db, fsm_batch_end_cb, n->fsm);
    return true;
}

static bool node_start(struct node *n, size_t initial_map)
{
    return tmp_dir_make(&n->dir) && node_open(n, initial_map);
}

static void node_close(struct node *n)
{
    n->fsm->ops->close(n->fsm);
    rk_db_close(n->db);
}

static void node_end(struct node *n)
{
    node_close(n);
    tmp_dir_remove(&n->dir);
}

static raft_index applied_of(struct node *n)
{
    raft_index i;
    return n->fsm->ops->applied_index(n->fsm, &i) ? UINT64_MAX : i;
}

/* ---- the workload and its model: entry i writes or deletes key i % NKEYS ---- */

#define NKEYS 700

static void key_of(raft_index i, char *key, size_t cap)
{
    snprintf(key, cap, "key-%04u", (unsigned)(i % NKEYS));
}

static bool deletes(raft_index i)
{
    return i % 7 == 0;
}

/* Values vary in length (up to 2999 bytes: a snapshot of a few hundred keys spans several
 * emit calls) and name their entry. */
#define MAX_VALUE 3000

static void value_of(raft_index i, char *value, size_t cap)
{
    int n = snprintf(value, cap, "v%llu:", (unsigned long long)i);
    size_t len = i % MAX_VALUE > (size_t)n ? i % MAX_VALUE : (size_t)n;
    memset(value + n, 'a' + (int)(i % 26), len - (size_t)n);
    value[len] = '\0';
}

static struct rk_bytes command_of(raft_index i)
{
    char key[32], value[MAX_VALUE + 1];
    key_of(i, key, sizeof key);
    value_of(i, value, sizeof value);
    return deletes(i) ? cmd_delete(key) : cmd_put(key, value);
}

struct model_key {
    bool present;
    raft_index create, mod;
};

/* The state after entries 1..upto: per key slot, present with which revisions. */
static void model_at(raft_index upto, struct model_key *m)
{
    memset(m, 0, NKEYS * sizeof *m);
    for (raft_index i = 1; i <= upto; i++) {
        struct model_key *k = &m[i % NKEYS];
        if (deletes(i)) {
            k->present = false;
        } else {
            k->create = k->present ? k->create : i;
            k->mod = i;
            k->present = true;
        }
    }
}

struct batch {
    struct raftkv_fsm *fsm;
    raft_index first, last;
};

static int apply_batch_fn(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct batch *b = arg;
    for (raft_index i = b->first; i <= b->last; i++) {
        struct rk_bytes cmd = command_of(i);
        struct raft_entry e = {.term = 1, .index = i, .len = cmd.len, .data = cmd.data};
        struct raftkv_buf result, event;
        int rc = b->fsm->ops->apply(b->fsm, &e, &result, &event);
        free(cmd.data);
        free(result.data);
        free(event.data);
        if (rc)
            return rc;
    }
    return RK_DB_OK;
}

/* Applies entries first..last in batches of 100 entries, one rk_db_write each. */
static int apply_range(struct node *n, raft_index first, raft_index last)
{
    for (raft_index i = first; i <= last; i += 100) {
        struct batch b = {n->fsm, i, i + 99 < last ? i + 99 : last};
        int rc = rk_db_write(n->db, apply_batch_fn, &b);
        if (rc)
            return rc;
    }
    return RK_DB_OK;
}

/* ---- snapshots in memory: struct membuf (kv_commands.h) ---- */

static int failing_read(void *arg, void *buf, size_t cap, size_t *n)
{
    (void)arg, (void)buf, (void)cap, (void)n;
    return 5;
}

static int snapshot_to(struct node *n, struct membuf *m, raft_index *index)
{
    *m = (struct membuf){0};
    return n->fsm->ops->snapshot(n->fsm, membuf_emit, m, index);
}

struct restore {
    struct raftkv_fsm *fsm;
    raft_index index;
    struct membuf *src;
    raftkv_snapshot_read_fn read;
    int calls;
};

static int restore_fn(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct restore *r = arg;
    r->src->pos = 0; /* rk_db_write may run this again after growing the map */
    r->calls++;
    return r->fsm->ops->restore(r->fsm, r->index, r->read ? r->read : membuf_read, r->src);
}

static int restore_into(struct node *n, raft_index index, struct membuf *m, int *calls)
{
    struct restore r = {n->fsm, index, m, NULL, 0};
    int rc = rk_db_write(n->db, restore_fn, &r);
    if (calls)
        *calls = r.calls;
    return rc;
}

static bool membuf_eq(const struct membuf *a, const struct membuf *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/* ---- an independent reading of the documented format ---- */

static uint64_t be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* Checks m is a well-formed version 1 snapshot of exactly the model at index. */
static bool snapshot_matches_model(const struct membuf *m, raft_index index)
{
    struct model_key model[NKEYS];
    model_at(index, model);
    const uint8_t *p = m->data;
    if (m->len < 36 || memcmp(p, "raftkvKV", 8) != 0 || be(p + 8, 4) != 1 || be(p + 12, 4) != 0 ||
        be(p + 16, 8) != index)
        return false;
    if (be(m->data + m->len - 4, 4) != rk_crc32c(0, m->data, m->len - 4))
        return false;
    uint64_t count = be(p + 24, 8), present = 0;
    for (int k = 0; k < NKEYS; k++)
        present += model[k].present;
    if (count != present)
        return false;
    const uint8_t *end = m->data + m->len - 4;
    p += 32;
    char prev[32] = "", key[32], value[MAX_VALUE + 1];
    for (uint64_t r = 0; r < count; r++) {
        if (end - p < 24)
            return false;
        size_t klen = be(p, 4), vlen = be(p + 4, 4);
        uint64_t create = be(p + 8, 8), mod = be(p + 16, 8);
        p += 24;
        if (klen >= sizeof key || (size_t)(end - p) < klen + vlen)
            return false;
        memcpy(key, p, klen);
        key[klen] = '\0';
        unsigned slot;
        if (sscanf(key, "key-%4u", &slot) != 1 || slot >= NKEYS || strcmp(key, prev) <= 0)
            return false;
        strcpy(prev, key);
        struct model_key *mk = &model[slot];
        value_of(mk->mod, value, sizeof value);
        if (!mk->present || mk->create != create || mk->mod != mod || vlen != strlen(value) ||
            memcmp(p + klen, value, vlen) != 0)
            return false;
        p += klen + vlen;
    }
    return p == end;
}

/* ---- tests ---- */

TEST(crc32c_known_answer)
{
    CHECK_EQ(rk_crc32c(0, "123456789", 9), 0xe3069283u);
    CHECK_EQ(rk_crc32c(0, "", 0), 0);
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 31 + 7);
    uint32_t whole = rk_crc32c(0, buf, sizeof buf);
    for (size_t cut = 0; cut <= sizeof buf; cut += 37)
        CHECK_EQ(rk_crc32c(rk_crc32c(0, buf, cut), buf + cut, sizeof buf - cut), whole);
}

TEST(snapshot_restore_round_trip)
{
    struct node a, b;
    CHECK(node_start(&a, 0));
    CHECK_EQ(apply_range(&a, 1, 3000), 0);
    struct membuf snap;
    raft_index index;
    CHECK_EQ(snapshot_to(&a, &snap, &index), 0);
    CHECK_EQ(index, 3000);
    CHECK(snapshot_matches_model(&snap, 3000));

    /* a small map: the restore fills it, and rk_db_write runs it again after growing */
    CHECK(node_start(&b, 64 << 10));
    int calls;
    CHECK_EQ(restore_into(&b, index, &snap, &calls), 0);
    CHECK(calls > 1);
    CHECK_EQ(applied_of(&b), 3000);
    struct membuf again;
    CHECK_EQ(snapshot_to(&b, &again, &index), 0);
    CHECK_EQ(index, 3000);
    CHECK(membuf_eq(&snap, &again));
    free(again.data);

    /* durable, and it goes on applying where the snapshot ended */
    node_close(&b);
    CHECK(node_open(&b, 0));
    CHECK_EQ(applied_of(&b), 3000);
    CHECK_EQ(apply_range(&b, 3001, 3500), 0);
    CHECK_EQ(apply_range(&a, 3001, 3500), 0);
    struct membuf sa, sb;
    CHECK_EQ(snapshot_to(&a, &sa, &index), 0);
    CHECK_EQ(snapshot_to(&b, &sb, &index), 0);
    CHECK(membuf_eq(&sa, &sb));
    CHECK(snapshot_matches_model(&sb, 3500));
    free(sa.data);
    free(sb.data);
    free(snap.data);
    node_end(&a);
    node_end(&b);
}

TEST(empty_snapshot_empties_the_target)
{
    struct node a, b;
    CHECK(node_start(&a, 0));
    struct membuf snap;
    raft_index index = 99;
    CHECK_EQ(snapshot_to(&a, &snap, &index), 0);
    CHECK_EQ(index, 0);
    CHECK_EQ(snap.len, 36);
    CHECK(node_start(&b, 0));
    CHECK_EQ(apply_range(&b, 1, 50), 0);
    CHECK_EQ(restore_into(&b, 0, &snap, NULL), 0);
    CHECK_EQ(applied_of(&b), 0);
    struct membuf again;
    CHECK_EQ(snapshot_to(&b, &again, &index), 0);
    CHECK(membuf_eq(&snap, &again));
    free(again.data);
    free(snap.data);
    node_end(&a);
    node_end(&b);
}

/* A snapshot whose emit holds it open until the writer says so. */
struct held_snapshot {
    struct raftkv_fsm *fsm;
    struct membuf out;
    raft_index index;
    int rc;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, release, timed_out;
};

static int held_emit(void *arg, const void *data, size_t len)
{
    struct held_snapshot *h = arg;
    pthread_mutex_lock(&h->mu);
    if (!h->started) {
        h->started = true;
        pthread_cond_broadcast(&h->cv);
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 20;
        while (!h->release && !h->timed_out)
            h->timed_out = pthread_cond_timedwait(&h->cv, &h->mu, &deadline) != 0;
    }
    pthread_mutex_unlock(&h->mu);
    return membuf_emit(&h->out, data, len);
}

static void *held_snapshot_run(void *arg)
{
    struct held_snapshot *h = arg;
    h->rc = h->fsm->ops->snapshot(h->fsm, held_emit, h, &h->index);
    return NULL;
}

static bool held_start(struct held_snapshot *h, pthread_t *t, struct raftkv_fsm *fsm)
{
    *h = (struct held_snapshot){.fsm = fsm};
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (pthread_create(t, NULL, held_snapshot_run, h) != 0)
        return false;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 20;
    pthread_mutex_lock(&h->mu);
    int rc = 0;
    while (!h->started && rc == 0)
        rc = pthread_cond_timedwait(&h->cv, &h->mu, &deadline);
    pthread_mutex_unlock(&h->mu);
    return h->started;
}

static void held_finish(struct held_snapshot *h, pthread_t t)
{
    pthread_mutex_lock(&h->mu);
    h->release = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(t, NULL);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
}

TEST(snapshot_is_point_in_time_while_writes_go_on)
{
    struct node a;
    CHECK(node_start(&a, 0));
    CHECK_EQ(apply_range(&a, 1, 2000), 0);
    struct held_snapshot h;
    pthread_t t;
    CHECK(held_start(&h, &t, a.fsm));
    /* the snapshot's read transaction is open: writers must not wait for it */
    int wrc = apply_range(&a, 2001, 4000);
    held_finish(&h, t);
    CHECK_EQ(wrc, 0);
    CHECK(!h.timed_out);
    CHECK(h.out.len > 2 * (256 << 10)); /* writes happened between emits, not after them */
    CHECK_EQ(h.rc, 0);
    CHECK_EQ(h.index, 2000);
    CHECK(snapshot_matches_model(&h.out, 2000));
    CHECK_EQ(applied_of(&a), 4000);
    free(h.out.data);
    node_end(&a);
}

/* A writer that must grow the map while a snapshot reads waits for the snapshot, not forever. */
struct writer_arg {
    struct node *n;
    struct held_snapshot *h;
    int rc;
};

static void *writer_run(void *arg)
{
    struct writer_arg *w = arg;
    w->rc = apply_range(w->n, 501, 3000);
    return NULL;
}

TEST(map_growth_waits_for_a_snapshot_then_proceeds)
{
    struct node a;
    CHECK(node_start(&a, 128 << 10));
    CHECK_EQ(apply_range(&a, 1, 500), 0);
    struct rk_db_stats before, after;
    rk_db_stats(a.db, &before);
    struct held_snapshot h;
    pthread_t t, wt;
    CHECK(held_start(&h, &t, a.fsm));
    struct writer_arg w = {&a, &h, -1};
    CHECK(pthread_create(&wt, NULL, writer_run, &w) == 0);
    held_finish(&h, t);
    pthread_join(wt, NULL);
    CHECK_EQ(w.rc, 0);
    CHECK_EQ(h.rc, 0);
    CHECK_EQ(h.index, 500);
    CHECK(snapshot_matches_model(&h.out, 500));
    rk_db_stats(a.db, &after);
    CHECK(after.map_grows > before.map_grows);
    CHECK_EQ(applied_of(&a), 3000);
    free(h.out.data);
    node_end(&a);
}

/* Restores a damaged copy of good into b; it must fail with want and leave b as it was. */
static bool damaged_restore_fails(struct node *b, const struct membuf *good, size_t len,
                                  size_t flip_at, raft_index index, int want, const char *msg,
                                  const struct membuf *before)
{
    struct membuf bad = {malloc(len + 1), len, len + 1, 0};
    memcpy(bad.data, good->data, len < good->len ? len : good->len);
    if (len > good->len)
        bad.data[good->len] = 0;
    if (flip_at < len)
        bad.data[flip_at] ^= 0x10;
    int rc = restore_into(b, index, &bad, NULL);
    free(bad.data);
    bool ok = rc == want && (!msg || strstr(rk_db_errmsg(b->db), msg));
    if (!ok)
        fprintf(stderr, "len %zu flip %zu: rc %d, %s\n", len, flip_at, rc, rk_db_errmsg(b->db));
    struct membuf now;
    raft_index i;
    ok = ok && snapshot_to(b, &now, &i) == 0 && membuf_eq(&now, before);
    free(now.data);
    return ok;
}

TEST(corrupt_or_truncated_stream_fails_and_keeps_the_old_state)
{
    struct node a, b;
    CHECK(node_start(&a, 0));
    CHECK(node_start(&b, 0));
    CHECK_EQ(apply_range(&a, 1, 1500), 0);
    CHECK_EQ(apply_range(&b, 1, 120), 0);
    struct membuf good, before;
    raft_index index, bi;
    CHECK_EQ(snapshot_to(&a, &good, &index), 0);
    CHECK_EQ(snapshot_to(&b, &before, &bi), 0);
    const size_t n = good.len, none = SIZE_MAX;
    const int BAD = RK_KV_ESNAPSHOT;
    size_t cuts[] = {0, 10, 31, 32, 33, 60, n / 2, n - 5, n - 4, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        CHECK(damaged_restore_fails(&b, &good, cuts[i], none, index, BAD, "truncated", &before));
    CHECK(damaged_restore_fails(&b, &good, n, 0, index, BAD, "not a KV snapshot", &before));
    CHECK(damaged_restore_fails(&b, &good, n, 11, index, BAD, "version", &before));
    CHECK(damaged_restore_fails(&b, &good, n, 20, index, BAD, "holds index", &before));
    CHECK(damaged_restore_fails(&b, &good, n, n / 2, index, BAD, NULL, &before));
    CHECK(damaged_restore_fails(&b, &good, n, n - 30, index, BAD, "checksum", &before));
    CHECK(damaged_restore_fails(&b, &good, n, n - 1, index, BAD, "checksum", &before));
    CHECK(damaged_restore_fails(&b, &good, n + 1, none, index, BAD, "follow", &before));
    CHECK(damaged_restore_fails(&b, &good, n, none, index + 1, BAD, "expected", &before));
    /* a failing read function */
    struct restore r = {b.fsm, index, &good, failing_read, 0};
    CHECK_EQ(rk_db_write(b.db, restore_fn, &r), RK_KV_ECALLBACK);
    CHECK(damaged_restore_fails(&b, &good, 10, none, index, BAD, NULL, &before));
    /* the untouched stream still restores */
    CHECK_EQ(restore_into(&b, index, &good, NULL), 0);
    CHECK_EQ(applied_of(&b), 1500);
    free(good.data);
    free(before.data);
    node_end(&a);
    node_end(&b);
}

/* A stream with a valid checksum but content the format forbids. */
static struct membuf crafted(raft_index index, const char *k1, uint64_t c1, uint64_t m1,
                             const char *k2)
{
    struct membuf m = {0};
    uint8_t h[32] = {'r', 'a', 'f', 't', 'k', 'v', 'K', 'V', 0, 0, 0, 1, 0, 0, 0, 0};
    rk_db_encode_u64(h + 16, index);
    rk_db_encode_u64(h + 24, 2);
    membuf_emit(&m, h, sizeof h);
    const char *keys[2] = {k1, k2};
    for (int i = 0; i < 2; i++) {
        uint8_t pre[24] = {0};
        pre[3] = (uint8_t)strlen(keys[i]);
        pre[7] = 1;
        rk_db_encode_u64(pre + 8, i ? 1 : c1);
        rk_db_encode_u64(pre + 16, i ? 1 : m1);
        membuf_emit(&m, pre, sizeof pre);
        membuf_emit(&m, keys[i], strlen(keys[i]));
        membuf_emit(&m, "x", 1);
    }
    uint8_t crc[4];
    uint32_t c = rk_crc32c(0, m.data, m.len);
    for (int i = 0; i < 4; i++)
        crc[i] = (uint8_t)(c >> (24 - 8 * i));
    membuf_emit(&m, crc, 4);
    return m;
}

TEST(restore_checks_order_and_revisions_not_only_the_checksum)
{
    struct node b;
    CHECK(node_start(&b, 0));
    struct membuf m = crafted(5, "a", 1, 2, "b");
    CHECK_EQ(restore_into(&b, 5, &m, NULL), 0); /* the crafting is right */
    free(m.data);
    m = crafted(5, "b", 1, 2, "a");
    CHECK_EQ(restore_into(&b, 5, &m, NULL), RK_KV_ESNAPSHOT);
    CHECK(strstr(rk_db_errmsg(b.db), "out of order"));
    free(m.data);
    m = crafted(5, "a", 1, 2, "a");
    CHECK_EQ(restore_into(&b, 5, &m, NULL), RK_KV_ESNAPSHOT);
    free(m.data);
    m = crafted(5, "a", 3, 2, "b"); /* create after mod */
    CHECK_EQ(restore_into(&b, 5, &m, NULL), RK_KV_ESNAPSHOT);
    CHECK(strstr(rk_db_errmsg(b.db), "revisions"));
    free(m.data);
    m = crafted(5, "a", 1, 6, "b"); /* mod after the snapshot's index */
    CHECK_EQ(restore_into(&b, 5, &m, NULL), RK_KV_ESNAPSHOT);
    free(m.data);
    m = crafted(5, "", 1, 2, "b");
    CHECK_EQ(restore_into(&b, 5, &m, NULL), RK_KV_ESNAPSHOT);
    free(m.data);
    node_end(&b);
}

static int apply_one_fn(MDB_txn *txn, void *arg)
{
    (void)txn;
    void **p = arg;
    struct raftkv_fsm *fsm = p[0];
    return fsm->ops->apply(fsm, p[1], p[2], p[3]);
}

TEST(fsm_answers_malformed_entries_invalid_and_checks_its_context)
{
    struct node a;
    CHECK(node_start(&a, 0));
    uint8_t junk[] = {0x52, 0xff, 0xff};
    struct raft_entry e = {.term = 1, .index = 1, .len = sizeof junk, .data = junk};
    struct raftkv_buf result = {0}, event = {0};
    void *args[4] = {a.fsm, &e, &result, &event};
    CHECK_EQ(rk_db_write(a.db, apply_one_fn, args), 0);
    Raftkv__Kv__Response *resp = raftkv__kv__response__unpack(NULL, result.len, result.data);
    CHECK(resp);
    CHECK_EQ(resp->code, RAFTKV__KV__CODE__INVALID);
    CHECK(strcmp(resp->error, "malformed entry: not a kv.proto Request") == 0);
    CHECK_EQ(event.len, 0);
    raftkv__kv__response__free_unpacked(resp, NULL);
    free(result.data);
    CHECK_EQ(applied_of(&a), 1);

    /* prepare: refused before proposing */
    struct raftkv_prepared p;
    CHECK_EQ(a.fsm->ops->prepare(a.fsm, junk, sizeof junk, &p), 0);
    CHECK_EQ(p.kind, RAFTKV_PREPARE_REFUSE);
    CHECK(strstr(p.why, "malformed"));

    /* apply and restore need the batch transaction */
    struct rk_bytes cmd = cmd_put("k", "v");
    e = (struct raft_entry){.term = 1, .index = 2, .len = cmd.len, .data = cmd.data};
    CHECK_EQ(a.fsm->ops->apply(a.fsm, &e, &result, &event), RK_DB_EIO);
    CHECK(result.len == 0 && event.len == 0);
    free(cmd.data);
    struct membuf m = {0};
    CHECK_EQ(a.fsm->ops->restore(a.fsm, 0, membuf_read, &m), RK_DB_EIO);
    CHECK(strstr(a.fsm->ops->strerror(a.fsm, RK_KV_ESNAPSHOT), "checksum"));
    CHECK(strstr(a.fsm->ops->strerror(a.fsm, RK_DB_EFULL), "full"));
    node_end(&a);
}

TEST_MAIN(TEST_REF(crc32c_known_answer), TEST_REF(snapshot_restore_round_trip),
          TEST_REF(empty_snapshot_empties_the_target),
          TEST_REF(snapshot_is_point_in_time_while_writes_go_on),
          TEST_REF(map_growth_waits_for_a_snapshot_then_proceeds),
          TEST_REF(corrupt_or_truncated_stream_fails_and_keeps_the_old_state),
          TEST_REF(restore_checks_order_and_revisions_not_only_the_checksum),
          TEST_REF(fsm_answers_malformed_entries_invalid_and_checks_its_context))
