/* The lifecycle machine: legal and illegal transitions, reasons, validate, snapshots. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kv.pb-c.h"
#include "lifecycle.h"
#include "test.h"

struct answer {
    int rc;
    Raftkv__Kv__ClientResponse *resp;
    Raftkv__Kv__ChangeEvent *event;
};

static void answer_free(struct answer *a)
{
    if (a->resp)
        raftkv__kv__client_response__free_unpacked(a->resp, NULL);
    if (a->event)
        raftkv__kv__change_event__free_unpacked(a->event, NULL);
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len ? *len : 1);
    protobuf_c_message_pack(m, b);
    return b;
}

static struct answer apply_entry(struct raftkv_fsm *fsm, const struct raft_entry *e)
{
    struct raftkv_buf result, event;
    struct answer a = {fsm->ops->apply(fsm, e, &result, &event), NULL, NULL};
    if (result.len)
        a.resp = raftkv__kv__client_response__unpack(NULL, result.len, result.data);
    if (event.len)
        a.event = raftkv__kv__change_event__unpack(NULL, event.len, event.data);
    free(result.data);
    free(event.data);
    return a;
}

/* Applies Command.custom = target at index. */
static struct answer ask(struct raftkv_fsm *fsm, raft_index index, const char *target)
{
    Raftkv__Kv__Command c = RAFTKV__KV__COMMAND__INIT;
    c.op_case = RAFTKV__KV__COMMAND__OP_CUSTOM;
    c.custom = (ProtobufCBinaryData){strlen(target), (uint8_t *)target};
    struct raft_entry e = {.term = 1, .index = index};
    e.data = pack(&c.base, &e.len);
    struct answer a = apply_entry(fsm, &e);
    free(e.data);
    return a;
}

static bool bytes_are(ProtobufCBinaryData b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.data, s, b.len) == 0;
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
    bool ok = a.rc == 0 && a.resp && a.resp->code == RAFTKV__KV__CODE__OK &&
              bytes_are(a.resp->value, target) && a.resp->revision == index && a.event &&
              bytes_are(a.event->key, "state") && bytes_are(a.event->value, target) &&
              a.event->revision == index && applied_of(fsm) == index;
    answer_free(&a);
    return ok;
}

/* Asks for target at index and checks the rejection: reason, current state, no event. */
static bool refused(struct raftkv_fsm *fsm, raft_index index, const char *target,
                    const char *current, const char *reason)
{
    struct answer a = ask(fsm, index, target);
    bool ok = a.rc == 0 && a.resp && a.resp->code == RAFTKV__KV__CODE__INVALID &&
              strcmp(a.resp->error, reason) == 0 && bytes_are(a.resp->value, current) && !a.event &&
              applied_of(fsm) == index;
    if (!ok && a.resp)
        fprintf(stderr, "got code %d error \"%s\"\n", a.resp->code, a.resp->error);
    answer_free(&a);
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
    /* a KV op: refused, state unchanged */
    Raftkv__Kv__Put put = RAFTKV__KV__PUT__INIT;
    Raftkv__Kv__Command c = RAFTKV__KV__COMMAND__INIT;
    c.op_case = RAFTKV__KV__COMMAND__OP_PUT;
    c.put = &put;
    struct raft_entry e = {.term = 1, .index = 1};
    e.data = pack(&c.base, &e.len);
    struct answer a = apply_entry(fsm, &e);
    free(e.data);
    CHECK(a.resp && a.resp->code == RAFTKV__KV__CODE__INVALID);
    CHECK(strstr(a.resp->error, "only custom operations"));
    CHECK(bytes_are(a.resp->value, "init"));
    answer_free(&a);
    /* malformed bytes */
    uint8_t junk[] = {0xff, 0xff, 0xff};
    e = (struct raft_entry){.term = 1, .index = 2, .len = sizeof junk, .data = junk};
    a = apply_entry(fsm, &e);
    CHECK(a.resp && a.resp->code == RAFTKV__KV__CODE__INVALID);
    CHECK(strstr(a.resp->error, "malformed"));
    answer_free(&a);
    /* no-op and config entries move only the applied index */
    e = (struct raft_entry){.term = 2, .index = 3, .type = RAFT_ENTRY_NOOP};
    a = apply_entry(fsm, &e);
    CHECK(a.rc == 0 && !a.resp && !a.event);
    CHECK_EQ(applied_of(fsm), 3);
    /* an entry at or below the applied index is ignored */
    a = ask(fsm, 3, "running");
    CHECK(a.rc == 0 && !a.resp && !a.event);
    CHECK(moves(fsm, 4, "running"));
    fsm->ops->close(fsm);
}

/* validate's verdict on a ClientRequest; a rejection must name why and the current state. */
static int validate(struct raftkv_fsm *fsm, int op_case, const char *custom, const char *why,
                    const char *current)
{
    Raftkv__Kv__ClientRequest r = RAFTKV__KV__CLIENT_REQUEST__INIT;
    Raftkv__Kv__StatusRequest status = RAFTKV__KV__STATUS_REQUEST__INIT;
    Raftkv__Kv__Get get = RAFTKV__KV__GET__INIT;
    r.op_case = op_case;
    if (op_case == RAFTKV__KV__CLIENT_REQUEST__OP_CUSTOM)
        r.custom = (ProtobufCBinaryData){strlen(custom), (uint8_t *)custom};
    else if (op_case == RAFTKV__KV__CLIENT_REQUEST__OP_STATUS)
        r.status = &status;
    else
        r.get = &get;
    size_t len;
    uint8_t *req = pack(&r.base, &len);
    struct raftkv_buf result;
    int rc = fsm->ops->validate(fsm, req, len, &result);
    free(req);
    if (rc == LIFECYCLE_EINVALID) {
        Raftkv__Kv__ClientResponse *resp =
            raftkv__kv__client_response__unpack(NULL, result.len, result.data);
        if (!resp || resp->code != RAFTKV__KV__CODE__INVALID || !strstr(resp->error, why) ||
            !bytes_are(resp->value, current))
            rc = -1;
        if (resp)
            raftkv__kv__client_response__free_unpacked(resp, NULL);
    } else if (result.len) {
        rc = -2;
    }
    free(result.data);
    return rc;
}

TEST(validate_rejects_unknown_names_only)
{
    struct raftkv_fsm *fsm;
    CHECK_EQ(lifecycle_fsm_new(&fsm), 0);
    const int CUSTOM = RAFTKV__KV__CLIENT_REQUEST__OP_CUSTOM;
    CHECK_EQ(validate(fsm, CUSTOM, "running", NULL, NULL), 0);
    /* legal or not is decided at apply, against the state then */
    CHECK_EQ(validate(fsm, CUSTOM, "stopped", NULL, NULL), 0);
    CHECK_EQ(validate(fsm, CUSTOM, "halt", "unknown state \"halt\"", "init"), LIFECYCLE_EINVALID);
    CHECK_EQ(validate(fsm, CUSTOM, "", "unknown state", "init"), LIFECYCLE_EINVALID);
    CHECK(moves(fsm, 1, "running"));
    char long_name[100];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    CHECK_EQ(validate(fsm, CUSTOM, long_name, "xxx...\"", "running"), LIFECYCLE_EINVALID);
    CHECK_EQ(validate(fsm, RAFTKV__KV__CLIENT_REQUEST__OP_STATUS, NULL, NULL, NULL), 0);
    CHECK_EQ(validate(fsm, RAFTKV__KV__CLIENT_REQUEST__OP_GET, NULL, "only custom", "running"),
             LIFECYCLE_EINVALID);
    struct raftkv_buf result;
    uint8_t junk[] = {0x7a, 0xff};
    CHECK_EQ(fsm->ops->validate(fsm, junk, sizeof junk, &result), LIFECYCLE_EINVALID);
    free(result.data);
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
          TEST_REF(other_entries), TEST_REF(validate_rejects_unknown_names_only),
          TEST_REF(snapshot_restore_round_trip_and_bad_streams),
          TEST_REF(snapshot_from_another_thread_is_consistent))
