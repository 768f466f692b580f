/* The KV store's write-behind overlay, through the state-machine API as the node drives it:
 * applied writes are served before they are stored, stored together every half to whole
 * persist_entries entries, past persist_bytes, or on persist, undone with an aborted batch,
 * re-applied alike after a crash, and discarded by a restore. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.pb-c.h"
#include "kv/kv_private.h"
#include "kv_commands.h"
#include "storage/tmp_dir.h"
#include "test.h"

#define PERSIST 100

struct store {
    struct tmp_dir dir;
    struct rk_db *db;
    struct raftkv_fsm *fsm;
};

static bool store_open_limits(struct store *s, uint64_t persist, size_t persist_bytes)
{
    struct rk_db_options o = {.path = s->dir.path, .cluster_id = 1, .node_id = 1};
    struct rk_kv_limits limits;
    rk_kv_limits_defaults(&limits);
    limits.persist_entries = persist;
    limits.persist_bytes = persist_bytes;
    if (rk_db_open(&o, &s->db)) {
        fprintf(stderr, "rk_db_open: %s\n", rk_db_errmsg(s->db));
        return false;
    }
    if (rk_kv_fsm_open(s->db, &limits, &s->fsm) != 0)
        return false;
    rk_db_on_end(s->db, fsm_batch_end_cb, s->fsm);
    return true;
}

static bool store_open_persist(struct store *s, uint64_t persist)
{
    return store_open_limits(s, persist, 0);
}

static bool store_open(struct store *s)
{
    return store_open_persist(s, PERSIST);
}

static bool store_start(struct store *s)
{
    return tmp_dir_make(&s->dir) && store_open(s);
}

/* Without persisting first: as a crash leaves the store. */
static void store_close(struct store *s)
{
    s->fsm->ops->close(s->fsm);
    rk_db_close(s->db);
}

static void store_end(struct store *s)
{
    store_close(s);
    tmp_dir_remove(&s->dir);
}

static raft_index stored_applied(struct store *s)
{
    raft_index i;
    return s->fsm->ops->applied_index(s->fsm, &i) ? UINT64_MAX : i;
}

/* A batch: entries first..last (entry i runs cmds[i - first]), then, when asked, a persist
 * and a failure that aborts the transaction. Collects the answers' revisions. */
struct batch {
    struct raftkv_fsm *fsm;
    raft_index first;
    struct rk_bytes *cmds;
    size_t n;
    bool persist;
    bool fail;
    uint64_t revisions[16];
    int codes[16];
};

static int batch_fn(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct batch *b = arg;
    for (size_t i = 0; i < b->n; i++) {
        struct raft_entry e = {.term = 1,
                               .index = b->first + i,
                               .type = RAFT_ENTRY_NORMAL,
                               .len = b->cmds[i].len,
                               .data = b->cmds[i].data};
        struct raftkv_buf result = {0}, event = {0};
        int rc = b->fsm->ops->apply(b->fsm, &e, &result, &event);
        if (rc)
            return rc;
        Raftkv__Kv__Response *r = raftkv__kv__response__unpack(NULL, result.len, result.data);
        b->revisions[i] = r ? r->mod_revision : UINT64_MAX;
        b->codes[i] = r ? (int)r->code : -1;
        if (r)
            raftkv__kv__response__free_unpacked(r, NULL);
        free(result.data);
        free(event.data);
    }
    int rc = b->persist ? b->fsm->ops->persist(b->fsm) : 0;
    return rc ? rc : b->fail ? RK_DB_EIO : 0;
}

static int run_batch(struct store *s, struct batch *b)
{
    b->fsm = s->fsm;
    return rk_db_write(s->db, batch_fn, b);
}

/* Applies one command (consumed) at index in its own batch. */
static int apply1(struct store *s, raft_index index, struct rk_bytes cmd)
{
    struct batch b = {.first = index, .cmds = &cmd, .n = 1};
    int rc = run_batch(s, &b);
    free(cmd.data);
    return rc;
}

/* The value of key as a get served by query; NULL when absent (*mod, *create set when
 * found; create may be NULL). */
static char *query_get2(struct store *s, const char *key, uint64_t *mod, uint64_t *create)
{
    Raftkv__Kv__Get get = RAFTKV__KV__GET__INIT;
    Raftkv__Kv__Request req = RAFTKV__KV__REQUEST__INIT;
    get.key = B(key);
    req.op_case = RAFTKV__KV__REQUEST__OP_GET;
    req.get = &get;
    struct raftkv_buf result = {0};
    int rc = s->fsm->ops->query(s->fsm, &req, &result);
    if (rc)
        return NULL;
    Raftkv__Kv__Response *r = raftkv__kv__response__unpack(NULL, result.len, result.data);
    free(result.data);
    char *value = NULL;
    if (r && r->code == RAFTKV__KV__CODE__OK) {
        value = strndup((const char *)r->value.data, r->value.len);
        *mod = r->mod_revision;
        if (create)
            *create = r->create_revision;
    }
    if (r)
        raftkv__kv__response__free_unpacked(r, NULL);
    return value;
}

static char *query_get(struct store *s, const char *key, uint64_t *mod)
{
    return query_get2(s, key, mod, NULL);
}

static bool holds(struct store *s, const char *key, const char *value, uint64_t mod)
{
    uint64_t m = 0;
    char *v = query_get(s, key, &m);
    bool ok = value ? v && strcmp(v, value) == 0 && m == mod : v == NULL;
    if (!ok)
        fprintf(stderr, "%s: expected %s@%" PRIu64 ", got %s@%" PRIu64 "\n", key,
                value ? value : "(absent)", mod, v ? v : "(absent)", m);
    free(v);
    return ok;
}

static int persist_fn(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct raftkv_fsm *fsm = arg;
    return fsm->ops->persist(fsm);
}

TEST(writes_are_served_before_they_are_stored)
{
    struct store s;
    CHECK(store_start(&s));
    CHECK_EQ(apply1(&s, 1, cmd_put("a", "1")), 0);
    CHECK_EQ(apply1(&s, 2, cmd_put("b", "2")), 0);
    CHECK_EQ(rk_db_write(s.db, persist_fn, s.fsm), 0);
    CHECK_EQ(stored_applied(&s), 2);
    CHECK_EQ(apply1(&s, 3, cmd_put("a", "3")), 0);
    CHECK_EQ(apply1(&s, 4, cmd_delete("b")), 0);
    CHECK_EQ(apply1(&s, 5, cmd_cas("a", "3", "5")), 0);
    CHECK_EQ(apply1(&s, 6, cmd_put("c", "6")), 0);
    /* Nothing of 3..6 is stored yet, and every read sees all of it. */
    CHECK_EQ(stored_applied(&s), 2);
    CHECK(holds(&s, "a", "5", 5));
    CHECK(holds(&s, "b", NULL, 0));
    CHECK(holds(&s, "c", "6", 6));
    /* Applies read the overlay too: a cas against the stored value misses. */
    struct rk_bytes cas = cmd_cas("a", "1", "x");
    struct batch b = {.first = 7, .cmds = &cas, .n = 1};
    CHECK_EQ(run_batch(&s, &b), 0);
    CHECK_EQ(b.codes[0], RAFTKV__KV__CODE__CAS_MISMATCH);
    free(cas.data);
    /* Stored, the same state survives a reopen. */
    CHECK_EQ(rk_db_write(s.db, persist_fn, s.fsm), 0);
    CHECK_EQ(stored_applied(&s), 7);
    store_close(&s);
    CHECK(store_open(&s));
    CHECK(holds(&s, "a", "5", 5));
    CHECK(holds(&s, "b", NULL, 0));
    CHECK(holds(&s, "c", "6", 6));
    store_end(&s);
}

/* A store every PERSIST entries at most, and half as many at least (drawn at random, so
 * that the nodes of a cluster store at different times). */
TEST(writes_are_stored_every_half_to_whole_persist_entries)
{
    struct store s;
    CHECK(store_start(&s));
    char key[16], value[16];
    raft_index last = 0;
    unsigned stores = 0;
    for (raft_index i = 1; i <= 10 * PERSIST; i++) {
        snprintf(key, sizeof key, "k%03" PRIu64, i % 50);
        snprintf(value, sizeof value, "v%" PRIu64, i);
        CHECK_EQ(apply1(&s, i, cmd_put(key, value)), 0);
        raft_index stored = stored_applied(&s);
        if (stored != last) {
            CHECK_EQ(stored, i);
            CHECK(i - last >= PERSIST / 2 && i - last <= PERSIST);
            last = stored;
            stores++;
        }
        CHECK(i - last < PERSIST);
    }
    CHECK(stores >= 10);
    store_end(&s);
}

TEST(large_values_are_stored_once_the_overlay_holds_persist_bytes)
{
    struct store s;
    CHECK(tmp_dir_make(&s.dir) && store_open_limits(&s, PERSIST, 10000));
    char value[3000];
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    /* Three values fit under 10,000 bytes, the fourth does not: stored with it. */
    for (raft_index i = 1; i <= 3; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", (int)i);
        CHECK_EQ(apply1(&s, i, cmd_put(key, value)), 0);
        CHECK_EQ(stored_applied(&s), 0);
    }
    CHECK_EQ(apply1(&s, 4, cmd_put("k4", value)), 0);
    CHECK_EQ(stored_applied(&s), 4);
    /* Overwriting one key does not add up. */
    for (raft_index i = 5; i <= 20; i++)
        CHECK_EQ(apply1(&s, i, cmd_put("k1", value)), 0);
    CHECK_EQ(stored_applied(&s), 4);
    store_end(&s);
}

TEST(an_aborted_batch_leaves_no_trace)
{
    struct store s;
    CHECK(store_start(&s));
    CHECK_EQ(apply1(&s, 1, cmd_put("a", "1")), 0);
    CHECK_EQ(apply1(&s, 2, cmd_put("b", "2")), 0);
    /* Overwrites, a delete, a new key and a persist, then the transaction aborts. */
    struct rk_bytes cmds[4] = {cmd_put("a", "3"), cmd_delete("b"), cmd_put("c", "5"),
                               cmd_put("a", "6")};
    struct batch bad = {.first = 3, .cmds = cmds, .n = 4, .persist = true, .fail = true};
    CHECK_EQ(run_batch(&s, &bad), RK_DB_EIO);
    CHECK_EQ(stored_applied(&s), 0);
    CHECK(holds(&s, "a", "1", 1));
    CHECK(holds(&s, "b", "2", 2));
    CHECK(holds(&s, "c", NULL, 0));
    /* The same entries again: applied once more, to the same answers. */
    struct batch good = {.first = 3, .cmds = cmds, .n = 4};
    CHECK_EQ(run_batch(&s, &good), 0);
    for (size_t i = 0; i < 4; i++) {
        CHECK_EQ(good.codes[i], bad.codes[i]);
        CHECK_EQ(good.revisions[i], bad.revisions[i]);
        free(cmds[i].data);
    }
    CHECK(holds(&s, "a", "6", 6));
    CHECK(holds(&s, "b", NULL, 0));
    CHECK(holds(&s, "c", "5", 5));
    store_end(&s);
}

TEST(a_crash_before_storing_reapplies_the_same_entries_alike)
{
    struct store s;
    CHECK(store_start(&s));
    struct rk_bytes cmds[4] = {cmd_put("a", "1"), cmd_put("a", "2"), cmd_delete("a"),
                               cmd_cas("a", NULL, "4")};
    struct batch first = {.first = 1, .cmds = cmds, .n = 4};
    CHECK_EQ(run_batch(&s, &first), 0);
    CHECK(holds(&s, "a", "4", 4));
    store_close(&s); /* no persist: the entries are only in the raft log */
    CHECK(store_open(&s));
    CHECK_EQ(stored_applied(&s), 0);
    CHECK(holds(&s, "a", NULL, 0));
    struct batch again = {.first = 1, .cmds = cmds, .n = 4};
    CHECK_EQ(run_batch(&s, &again), 0);
    for (size_t i = 0; i < 4; i++) {
        CHECK_EQ(again.codes[i], first.codes[i]);
        CHECK_EQ(again.revisions[i], first.revisions[i]);
        free(cmds[i].data);
    }
    CHECK(holds(&s, "a", "4", 4));
    store_end(&s);
}

struct restore {
    struct raftkv_fsm *fsm;
    raft_index index;
    struct membuf *m;
};

static int restore_fn(MDB_txn *txn, void *arg)
{
    (void)txn;
    struct restore *r = arg;
    r->m->pos = 0;
    return r->fsm->ops->restore(r->fsm, r->index, membuf_read, r->m);
}

TEST(a_snapshot_covers_what_is_stored_and_a_restore_discards_the_overlay)
{
    struct store src, dst;
    CHECK(store_start(&src));
    CHECK(store_start(&dst));
    CHECK_EQ(apply1(&src, 1, cmd_put("s", "1")), 0);
    CHECK_EQ(apply1(&src, 2, cmd_put("t", "2")), 0);
    struct membuf m = {0};
    raft_index index = 0;
    CHECK_EQ(src.fsm->ops->snapshot(src.fsm, membuf_emit, &m, &index), 0);
    CHECK_EQ(index, 0); /* the overlay is not in it */
    CHECK_EQ(rk_db_write(src.db, persist_fn, src.fsm), 0);
    free(m.data);
    m = (struct membuf){0};
    CHECK_EQ(src.fsm->ops->snapshot(src.fsm, membuf_emit, &m, &index), 0);
    CHECK_EQ(index, 2);
    /* dst holds its own unstored writes; the restore replaces them all. */
    CHECK_EQ(apply1(&dst, 1, cmd_put("s", "other")), 0);
    CHECK_EQ(apply1(&dst, 2, cmd_put("u", "other")), 0);
    struct restore r = {dst.fsm, index, &m};
    CHECK_EQ(rk_db_write(dst.db, restore_fn, &r), 0);
    CHECK(holds(&dst, "s", "1", 1));
    CHECK(holds(&dst, "t", "2", 2));
    CHECK(holds(&dst, "u", NULL, 0));
    CHECK_EQ(apply1(&dst, 3, cmd_put("u", "3")), 0);
    CHECK(holds(&dst, "u", "3", 3));
    CHECK_EQ(stored_applied(&dst), 2);
    free(m.data);
    store_end(&src);
    store_end(&dst);
}

/* ---- a random workload, with crashes and aborted batches, against a reference ---- */

#define NKEYS 32

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The command of entry i: puts, deletes, and compare-and-swaps that match now and then.
 * Values come from a small set, as flags and counters do: a re-applied cas may then meet
 * a value that a later write stored. */
static struct rk_bytes workload_cmd(uint64_t seed, raft_index i)
{
    uint64_t r = mix(seed ^ mix(i));
    char key[16], value[24], expected[24];
    snprintf(key, sizeof key, "k%d", (int)(r % NKEYS));
    snprintf(value, sizeof value, "v%d", (int)((r >> 24) % 3));
    snprintf(expected, sizeof expected, "v%d", (int)((r >> 32) % 3));
    switch ((r >> 16) % 10) {
    case 0:
        return cmd_delete(key);
    case 1:
        return cmd_cas(key, NULL, value);
    case 2:
    case 3:
    case 4:
        return cmd_put(key, value);
    default:
        return cmd_cas(key, expected, value);
    }
}

/* Applies entries first..last of the workload in one batch. */
static int apply_range(struct store *s, uint64_t seed, raft_index first, raft_index last, bool fail)
{
    struct rk_bytes cmds[16];
    struct batch b = {.first = first, .cmds = cmds, .n = (size_t)(last - first + 1), .fail = fail};
    for (size_t k = 0; k < b.n; k++)
        cmds[k] = workload_cmd(seed, first + k);
    int rc = run_batch(s, &b);
    for (size_t k = 0; k < b.n; k++)
        free(cmds[k].data);
    return rc;
}

static bool same_state(struct store *a, struct store *b)
{
    for (int k = 0; k < NKEYS; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        uint64_t ma = 0, mb = 0, ca = 0, cb = 0;
        char *va = query_get2(a, key, &ma, &ca), *vb = query_get2(b, key, &mb, &cb);
        bool same = (!va && !vb) || (va && vb && strcmp(va, vb) == 0 && ma == mb && ca == cb);
        if (!same)
            fprintf(stderr,
                    "%s: %s@%" PRIu64 "/%" PRIu64 " vs reference %s@%" PRIu64 "/%" PRIu64 "\n", key,
                    va ? va : "(absent)", ca, ma, vb ? vb : "(absent)", cb, mb);
        free(va);
        free(vb);
        if (!same)
            return false;
    }
    return true;
}

TEST(crashes_and_aborts_anywhere_reach_the_reference_state)
{
    const uint64_t persist = 16; /* a persist every few batches */
    for (uint64_t seed = 1; seed <= 20; seed++) {
        struct store s, ref;
        CHECK(tmp_dir_make(&s.dir) && store_open_persist(&s, persist));
        CHECK(tmp_dir_make(&ref.dir) && store_open_persist(&ref, 1));
        uint64_t r = mix(seed);
        raft_index next = 1;
        unsigned crashes = 0;
        while (next <= 1500) {
            r = mix(r);
            raft_index last = next + r % 16;
            CHECK_EQ(apply_range(&ref, seed, next, last, false), 0);
            if (r >> 60 == 0) /* now and then the batch aborts first */
                CHECK_EQ(apply_range(&s, seed, next, last, true), RK_DB_EIO);
            CHECK_EQ(apply_range(&s, seed, next, last, false), 0);
            next = last + 1;
            if ((r >> 52) % 16 == 0) { /* a crash: the overlay is lost, the log is not */
                store_close(&s);
                CHECK(store_open_persist(&s, persist));
                crashes++;
                for (raft_index i = stored_applied(&s) + 1; i < next; i += 16) {
                    raft_index end = i + 15 < next - 1 ? i + 15 : next - 1;
                    CHECK_EQ(apply_range(&s, seed, i, end, false), 0);
                }
                CHECK(same_state(&s, &ref));
            }
        }
        CHECK(crashes > 0);
        CHECK(same_state(&s, &ref));
        /* Persisted, the stored state is a snapshot's, the reference's at the same index. */
        CHECK_EQ(rk_db_write(s.db, persist_fn, s.fsm), 0);
        struct membuf ms = {0}, mr = {0};
        raft_index is = 0, ir = 0;
        CHECK_EQ(s.fsm->ops->snapshot(s.fsm, membuf_emit, &ms, &is), 0);
        CHECK_EQ(ref.fsm->ops->snapshot(ref.fsm, membuf_emit, &mr, &ir), 0);
        CHECK_EQ(is, ir);
        CHECK(ms.len == mr.len && memcmp(ms.data, mr.data, ms.len) == 0);
        free(ms.data);
        free(mr.data);
        store_end(&s);
        store_end(&ref);
    }
}

static bool range_is(struct store *s, const char *key, const char *end, uint64_t limit,
                     const char *want)
{
    char buf[512];
    const char *got =
        range_text(fsm_read(s->fsm, cmd_range(B(key), B(end), limit)), buf, sizeof buf);
    if (strcmp(got, want) == 0)
        return true;
    fprintf(stderr, "range [%s, %s): got \"%s\", want \"%s\"\n", key, end, got, want);
    return false;
}

/* A range sees each key as a get does: the overlay's writes and deletes over what LMDB
 * holds, before and after they are stored, and nothing of an aborted batch. */
TEST(a_range_sees_the_overlay_as_a_get_does)
{
    struct store s;
    CHECK(store_start(&s));
    const char *puts[] = {"a", "b", "c", "d"};
    for (size_t i = 0; i < 4; i++)
        CHECK_EQ(apply1(&s, i + 1, cmd_put(puts[i], puts[i])), 0);
    CHECK_EQ(rk_db_write(s.db, persist_fn, s.fsm), 0);
    CHECK_EQ(apply1(&s, 5, cmd_delete("b")), 0);
    CHECK_EQ(apply1(&s, 6, cmd_put("c", "6")), 0);
    CHECK_EQ(apply1(&s, 7, cmd_put("bb", "7")), 0);
    CHECK_EQ(apply1(&s, 8, cmd_put("e", "8")), 0);
    CHECK_EQ(apply1(&s, 9, cmd_delete("e")), 0);
    CHECK_EQ(apply1(&s, 10, cmd_delete("d")), 0);
    CHECK_EQ(apply1(&s, 11, cmd_put("d", "11")), 0);
    CHECK_EQ(stored_applied(&s), 4);
    const char *all = "a=a@1/1 bb=7@7/7 c=6@3/6 d=11@11/11";
    CHECK(range_is(&s, "", "", 0, all));
    CHECK(range_is(&s, "", "", 2, "a=a@1/1 bb=7@7/7 +more"));
    CHECK(range_is(&s, "b", "d", 1, "bb=7@7/7 +more"));
    CHECK(range_is(&s, "c", "", 2, "c=6@3/6 d=11@11/11"));
    CHECK(range_is(&s, "d", "f", 0, "d=11@11/11"));
    CHECK(range_is(&s, "e", "", 0, ""));
    Raftkv__Kv__Response *r = fsm_read(s.fsm, cmd_range(B(""), B(""), 0));
    CHECK(r);
    CHECK_EQ(r->revision, 11);
    raftkv__kv__response__free_unpacked(r, NULL);
    struct rk_bytes cmds[3] = {cmd_put("a", "x"), cmd_delete("c"), cmd_put("z", "z")};
    struct batch bad = {.first = 12, .cmds = cmds, .n = 3, .fail = true};
    CHECK_EQ(run_batch(&s, &bad), RK_DB_EIO);
    for (size_t i = 0; i < 3; i++)
        free(cmds[i].data);
    CHECK(range_is(&s, "", "", 0, all));
    CHECK_EQ(rk_db_write(s.db, persist_fn, s.fsm), 0);
    CHECK_EQ(stored_applied(&s), 11);
    CHECK(range_is(&s, "", "", 0, all));
    store_end(&s);
}

TEST_MAIN(TEST_REF(writes_are_served_before_they_are_stored),
          TEST_REF(crashes_and_aborts_anywhere_reach_the_reference_state),
          TEST_REF(writes_are_stored_every_half_to_whole_persist_entries),
          TEST_REF(large_values_are_stored_once_the_overlay_holds_persist_bytes),
          TEST_REF(an_aborted_batch_leaves_no_trace),
          TEST_REF(a_range_sees_the_overlay_as_a_get_does),
          TEST_REF(a_crash_before_storing_reapplies_the_same_entries_alike),
          TEST_REF(a_snapshot_covers_what_is_stored_and_a_restore_discards_the_overlay))
