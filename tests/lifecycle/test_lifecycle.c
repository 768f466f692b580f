/* The lifecycle machine: legal and illegal transitions, reasons, prepare, snapshots. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle.h"
#include "test.h"

/* What apply gave, as NUL-terminated text (empty when nothing). */
struct answer {
    int rc;
    char result[256];
    char event[64];
};

static void text_of(struct raftkv_buf b, char *out, size_t cap)
{
    snprintf(out, cap, "%.*s", (int)b.len, b.data ? (const char *)b.data : "");
    free(b.data);
}

static struct answer apply_entry(struct raftkv_fsm *fsm, const struct raft_entry *e)
{
    struct raftkv_buf result, event;
    struct answer a = {.rc = fsm->ops->apply(fsm, e, &result, &event)};
    text_of(result, a.result, sizeof a.result);
    text_of(event, a.event, sizeof a.event);
    return a;
}

/* Applies an entry asking for target at index. */
static struct answer ask(struct raftkv_fsm *fsm, raft_index index, const char *target)
{
    struct raft_entry e = {
        .term = 1, .index = index, .len = strlen(target), .data = (uint8_t *)target};
    return apply_entry(fsm, &e);
}

static raft_index applied_of(struct raftkv_fsm *fsm)
{
    raft_index i;
    return fsm->ops->applied_index(fsm, &i) ? UINT64_MAX : i;
}

/* Asks for target at index and checks a legal transition's answer and event. */
static bool moves(struct raftkv_fsm *fsm, raft_index index, const char *target)
{
    struct answer a = ask(fsm, index, target);
    char want_result[64], want_event[64];
    snprintf(want_result, sizeof want_result, "OK %s %llu", target, (unsigned long long)index);
    snprintf(want_event, sizeof want_event, "%s %llu", target, (unsigned long long)index);
    return a.rc == 0 && strcmp(a.result, want_result) == 0 && strcmp(a.event, want_event) == 0 &&
           applied_of(fsm) == index;
}

/* Asks for target at index and checks the rejection: reason, current state, no event. */
static bool refused(struct raftkv_fsm *fsm, raft_index index, const char *target,
                    const char *current, const char *reason)
{
    struct answer a = ask(fsm, index, target);
    char want[256];
    snprintf(want, sizeof want, "INVALID %s: %s", current, reason);
    bool ok = a.rc == 0 && strcmp(a.result, want) == 0 && !a.event[0] && applied_of(fsm) == index;
    if (!ok)
        fprintf(stderr, "got \"%s\"\n", a.result);
    return ok;
}

TEST(legal_cycle)
{
    struct raftkv_fsm *fsm;
    CHECK_EQ(lifecycle_fsm_new(&fsm), 0);
    CHECK_EQ(applied_of(fsm), 0);
    CHECK(moves(fsm, 1, "running"));
    CHECK(moves(fsm, 2, "stopped"));
    CHECK(moves(fsm, 3, "init"));
    CHECK(moves(fsm, 4, "running"));
    fsm->ops->close(fsm);
}

TEST(illegal_transitions_are_refused_with_state_and_reason)
{
    struct raftkv_fsm *fsm;
    CHECK_EQ(lifecycle_fsm_new(&fsm), 0);
    CHECK(refused(fsm, 1, "stopped", "init",
                  "cannot go from init to stopped: init may only go to running"));
    CHECK(refused(fsm, 2, "init", "init",
                  "cannot go from init to init: init may only go to running"));
    CHECK(moves(fsm, 3, "running"));
    CHECK(refused(fsm, 4, "init", "running",
                  "cannot go from running to init: running may only go to stopped"));
    CHECK(refused(fsm, 5, "running", "running",
                  "cannot go from running to running: running may only go to stopped"));
    CHECK(moves(fsm, 6, "stopped"));
    CHECK(refused(fsm, 7, "running", "stopped",
                  "cannot go from stopped to running: stopped may only go to init"));
    CHECK(refused(fsm, 8, "paused", "stopped",
                  "unknown state \"paused\": expected init, running or stopped"));
    CHECK(refused(fsm, 9, "Running", "stopped",
                  "unknown state \"Running\": expected init, running or stopped"));
    CHECK(moves(fsm, 10, "init"));
    fsm->ops->close(fsm);
}

TEST(other_entries)
{
    struct raftkv_fsm *fsm;
    CHECK_EQ(lifecycle_fsm_new(&fsm), 0);
    /* malformed bytes: refused, state unchanged */
    uint8_t junk[] = {0xff, 0xff, 0xff};
    struct raft_entry e = {.term = 1, .index = 1, .len = sizeof junk, .data = junk};
    struct answer a = apply_entry(fsm, &e);
    CHECK(a.rc == 0 && strncmp(a.result, "INVALID init: unknown state", 27) == 0);
    CHECK(!a.event[0]);
    /* no-op and config entries move only the applied index */
    e = (struct raft_entry){.term = 2, .index = 2, .type = RAFT_ENTRY_NOOP};
    a = apply_entry(fsm, &e);
    CHECK(a.rc == 0 && !a.result[0] && !a.event[0]);
    CHECK_EQ(applied_of(fsm), 2);
    /* an entry at or below the applied index is ignored */
    a = ask(fsm, 2, "running");
    CHECK(a.rc == 0 && !a.result[0] && !a.event[0]);
    CHECK(moves(fsm, 3, "running"));
    fsm->ops->close(fsm);
}

/* prepare's verdict on a request: PROPOSE (of the request itself), or REFUSE naming why. */
static int prepare(struct raftkv_fsm *fsm, const char *request, size_t len, const char *why)
{
    struct raftkv_prepared p;
    int rc = fsm->ops->prepare(fsm, (const uint8_t *)request, len, &p);
    if (rc == 0 && p.kind == RAFTKV_PREPARE_REFUSE && why && !strstr(p.why, why))
        rc = -1;
    if (rc == 0 && p.kind == RAFTKV_PREPARE_PROPOSE && p.entry.len)
        rc = -2;
    return rc ? rc : (int)p.kind;
}

TEST(prepare_refuses_unknown_names_only)
{
    struct raftkv_fsm *fsm;
    CHECK_EQ(lifecycle_fsm_new(&fsm), 0);
    CHECK_EQ(prepare(fsm, "running", 7, NULL), RAFTKV_PREPARE_PROPOSE);
    /* legal or not is decided at apply, against the state then */
    CHECK_EQ(prepare(fsm, "stopped", 7, NULL), RAFTKV_PREPARE_PROPOSE);
    CHECK_EQ(prepare(fsm, "halt", 4, "unknown state \"halt\""), RAFTKV_PREPARE_REFUSE);
    CHECK_EQ(prepare(fsm, "", 0, "unknown state"), RAFTKV_PREPARE_REFUSE);
    char long_name[100];
    memset(long_name, 'x', sizeof long_name);
    CHECK_EQ(prepare(fsm, long_name, sizeof long_name, "xxx...\""), RAFTKV_PREPARE_REFUSE);
    CHECK_EQ(prepare(fsm, "\x7a\xff", 2, "unknown state"), RAFTKV_PREPARE_REFUSE);
    fsm->ops->close(fsm);
}

struct stream {
    uint8_t data[64];
    size_t len, pos;
};

static int stream_emit(void *arg, const void *data, size_t len)
{
    struct stream *s = arg;
    if (len > sizeof s->data - s->len)
        return -1;
    memcpy(s->data + s->len, data, len);
    s->len += len;
    return 0;
}

/* Two bytes a call: restore must gather the stream. */
static int stream_read(void *arg, void *buf, size_t cap, size_t *n)
{
    struct stream *s = arg;
    *n = s->len - s->pos < 2 ? s->len - s->pos : 2;
    *n = *n < cap ? *n : cap;
    memcpy(buf, s->data + s->pos, *n);
    s->pos += *n;
    return 0;
}

static int restore(struct raftkv_fsm *fsm, raft_index index, struct stream s)
{
    s.pos = 0;
    return fsm->ops->restore(fsm, index, stream_read, &s);
}

TEST(snapshot_restore_round_trip_and_bad_streams)
{
    struct raftkv_fsm *a, *b;
    CHECK_EQ(lifecycle_fsm_new(&a), 0);
    CHECK_EQ(lifecycle_fsm_new(&b), 0);
    CHECK(moves(a, 1, "running"));
    CHECK(moves(a, 2, "stopped"));
    CHECK(refused(a, 3, "running", "stopped",
                  "cannot go from stopped to running: stopped may only go to init"));
    struct stream s = {0};
    raft_index index;
    CHECK_EQ(a->ops->snapshot(a, stream_emit, &s, &index), 0);
    CHECK_EQ(index, 3);
    CHECK_EQ(s.len, 13);

    /* bad streams are refused and change nothing */
    CHECK(moves(b, 1, "running"));
    struct stream bad = s;
    bad.len = 12;
    CHECK_EQ(restore(b, 3, bad), LIFECYCLE_ESNAPSHOT);
    bad = s;
    bad.data[bad.len++] = 0;
    CHECK_EQ(restore(b, 3, bad), LIFECYCLE_ESNAPSHOT);
    bad = s;
    bad.data[0] ^= 1;
    CHECK_EQ(restore(b, 3, bad), LIFECYCLE_ESNAPSHOT);
    bad = s;
    bad.data[4] = 3;
    CHECK_EQ(restore(b, 3, bad), LIFECYCLE_ESNAPSHOT);
    CHECK_EQ(restore(b, 4, s), LIFECYCLE_ESNAPSHOT);
    CHECK(strstr(b->ops->strerror(b, LIFECYCLE_ESNAPSHOT), "snapshot"));
    CHECK_EQ(applied_of(b), 1);
    CHECK(moves(b, 2, "stopped")); /* still running before this */

    /* the real one replaces the state; b then goes on from a's state */
    CHECK_EQ(restore(b, 3, s), 0);
    CHECK_EQ(applied_of(b), 3);
    CHECK(refused(b, 4, "running", "stopped",
                  "cannot go from stopped to running: stopped may only go to init"));
    CHECK(moves(b, 5, "init"));
    a->ops->close(a);
    b->ops->close(b);
}

/* Entry i asks for the state after the one entry i - 1 reached, so state = i % 3. */
struct snapper {
    struct raftkv_fsm *fsm;
    int taken, inconsistent;
    bool stop; /* set by the test thread, atomically */
};

static void *snap_loop(void *arg)
{
    struct snapper *sp = arg;
    while (!__atomic_load_n(&sp->stop, __ATOMIC_SEQ_CST)) {
        struct stream s = {0};
        raft_index index;
        if (sp->fsm->ops->snapshot(sp->fsm, stream_emit, &s, &index) != 0 || s.len != 13 ||
            s.data[4] != index % 3)
            sp->inconsistent++;
        sp->taken++;
    }
    return NULL;
}

TEST(snapshot_from_another_thread_is_consistent)
{
    struct raftkv_fsm *fsm;
    CHECK_EQ(lifecycle_fsm_new(&fsm), 0);
    struct snapper sp = {fsm, 0, 0, false};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, snap_loop, &sp) == 0);
    bool all_moved = true;
    for (raft_index i = 1; i <= 30000 && all_moved; i++)
        all_moved = moves(fsm, i, lifecycle_state_name((enum lifecycle_state)(i % 3)));
    __atomic_store_n(&sp.stop, true, __ATOMIC_SEQ_CST);
    pthread_join(t, NULL);
    CHECK(all_moved);
    CHECK(sp.taken > 0);
    CHECK_EQ(sp.inconsistent, 0);
    fsm->ops->close(fsm);
}

TEST_MAIN(TEST_REF(legal_cycle), TEST_REF(illegal_transitions_are_refused_with_state_and_reason),
          TEST_REF(other_entries), TEST_REF(prepare_refuses_unknown_names_only),
          TEST_REF(snapshot_restore_round_trip_and_bad_streams),
          TEST_REF(snapshot_from_another_thread_is_consistent))
