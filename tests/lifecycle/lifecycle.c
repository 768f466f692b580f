/* The lifecycle state machine (lifecycle.h documents its behaviour and snapshot). */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.pb-c.h"
#include "lifecycle.h"

#define SNAPSHOT_BYTES 13

static const uint8_t MAGIC[4] = {'L', 'C', 'Y', '1'};
static const char *const NAMES[] = {"init", "running", "stopped"};
#define N_STATES (sizeof NAMES / sizeof NAMES[0])

struct lifecycle {
    struct raftkv_fsm base;
    pthread_mutex_t mu; /* guards state and applied against snapshot's thread */
    enum lifecycle_state state;
    raft_index applied;
};

const char *lifecycle_state_name(enum lifecycle_state s)
{
    return (size_t)s < N_STATES ? NAMES[s] : "unknown";
}

/* The one state each state may go to. */
static enum lifecycle_state next_of(enum lifecycle_state s)
{
    return (enum lifecycle_state)((s + 1) % N_STATES);
}

/* The state named by bytes, or -1. */
static int parse_state(ProtobufCBinaryData name)
{
    for (size_t i = 0; i < N_STATES; i++)
        if (name.len == strlen(NAMES[i]) && memcmp(name.data, NAMES[i], name.len) == 0)
            return (int)i;
    return -1;
}

static int pack(const ProtobufCMessage *m, struct raftkv_buf *out)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    *out = (struct raftkv_buf){NULL, 0};
    if (n == 0)
        return LIFECYCLE_OK;
    if (!(out->data = malloc(n)))
        return LIFECYCLE_ENOMEM;
    out->len = protobuf_c_message_pack(m, out->data);
    return LIFECYCLE_OK;
}

static ProtobufCBinaryData name_bytes(enum lifecycle_state s)
{
    return (ProtobufCBinaryData){strlen(NAMES[s]), (uint8_t *)NAMES[s]};
}

/* An INVALID answer: why, and the state the machine is in. */
static int reject(enum lifecycle_state current, const char *why, struct raftkv_buf *result)
{
    Raftkv__Kv__ClientResponse resp = RAFTKV__KV__CLIENT_RESPONSE__INIT;
    resp.code = RAFTKV__KV__CODE__INVALID;
    resp.error = (char *)why;
    resp.value = name_bytes(current);
    return pack(&resp.base, result);
}

/* Explains an unknown name (quoted, cut at 32 bytes) into why. */
static void unknown_name(ProtobufCBinaryData name, char *why, size_t len)
{
    int shown = name.len > 32 ? 32 : (int)name.len;
    snprintf(why, len, "unknown state \"%.*s%s\": expected init, running or stopped", shown,
             (const char *)name.data, name.len > 32 ? "..." : "");
}

static const char ONLY_CUSTOM[] =
    "the lifecycle machine takes only custom operations naming a state (init, running, stopped)";

static int lc_validate(struct raftkv_fsm *fsm, const uint8_t *request, size_t len,
                       struct raftkv_buf *result)
{
    struct lifecycle *lc = (struct lifecycle *)fsm;
    *result = (struct raftkv_buf){NULL, 0};
    Raftkv__Kv__ClientRequest *r = raftkv__kv__client_request__unpack(NULL, len, request);
    char why[160];
    snprintf(why, sizeof why, "%s", ONLY_CUSTOM);
    bool ok = r && r->op_case == RAFTKV__KV__CLIENT_REQUEST__OP_STATUS;
    if (r && r->op_case == RAFTKV__KV__CLIENT_REQUEST__OP_CUSTOM) {
        ok = parse_state(r->custom) >= 0;
        if (!ok)
            unknown_name(r->custom, why, sizeof why);
    }
    if (r)
        raftkv__kv__client_request__free_unpacked(r, NULL);
    if (ok)
        return LIFECYCLE_OK;
    pthread_mutex_lock(&lc->mu);
    enum lifecycle_state current = lc->state;
    pthread_mutex_unlock(&lc->mu);
    return reject(current, why, result) ? LIFECYCLE_ENOMEM : LIFECYCLE_EINVALID;
}

/* Moves to target if that is legal (lc->mu held); fills why otherwise. */
static bool transition(struct lifecycle *lc, enum lifecycle_state target, char *why, size_t len)
{
    if (target == next_of(lc->state)) {
        lc->state = target;
        return true;
    }
    snprintf(why, len, "cannot go from %s to %s: %s may only go to %s", NAMES[lc->state],
             NAMES[target], NAMES[lc->state], NAMES[next_of(lc->state)]);
    return false;
}

static int answer_ok(enum lifecycle_state s, raft_index index, struct raftkv_buf *result,
                     struct raftkv_buf *event)
{
    Raftkv__Kv__ClientResponse resp = RAFTKV__KV__CLIENT_RESPONSE__INIT;
    Raftkv__Kv__ChangeEvent change = RAFTKV__KV__CHANGE_EVENT__INIT;
    resp.value = name_bytes(s);
    resp.revision = index;
    change.kind = RAFTKV__KV__CHANGE_EVENT__KIND__PUT;
    change.key = (ProtobufCBinaryData){5, (uint8_t *)"state"};
    change.value = name_bytes(s);
    change.revision = index;
    int rc = pack(&resp.base, result);
    if (!rc)
        rc = pack(&change.base, event);
    if (rc) {
        free(result->data);
        *result = (struct raftkv_buf){NULL, 0};
    }
    return rc;
}

/* Runs one normal entry (lc->mu held). */
static int apply_command(struct lifecycle *lc, const struct raft_entry *e,
                         struct raftkv_buf *result, struct raftkv_buf *event)
{
    Raftkv__Kv__Command *c = raftkv__kv__command__unpack(NULL, e->len, e->data);
    char why[160];
    snprintf(why, sizeof why, "%s", c ? ONLY_CUSTOM : "malformed command: not a kv.proto Command");
    int target = -1;
    if (c && c->op_case == RAFTKV__KV__COMMAND__OP_CUSTOM) {
        target = parse_state(c->custom);
        if (target < 0)
            unknown_name(c->custom, why, sizeof why);
    }
    if (c)
        raftkv__kv__command__free_unpacked(c, NULL);
    if (target >= 0 && transition(lc, (enum lifecycle_state)target, why, sizeof why))
        return answer_ok(lc->state, e->index, result, event);
    return reject(lc->state, why, result);
}

static int lc_apply(struct raftkv_fsm *fsm, const struct raft_entry *entry,
                    struct raftkv_buf *result, struct raftkv_buf *event)
{
    struct lifecycle *lc = (struct lifecycle *)fsm;
    *result = *event = (struct raftkv_buf){NULL, 0};
    pthread_mutex_lock(&lc->mu);
    int rc = LIFECYCLE_OK;
    if (entry->index > lc->applied) {
        /* decided before anything changes, so a failure leaves the machine as it was */
        enum lifecycle_state before = lc->state;
        if (entry->type == RAFT_ENTRY_NORMAL)
            rc = apply_command(lc, entry, result, event);
        if (rc)
            lc->state = before;
        else
            lc->applied = entry->index;
    }
    pthread_mutex_unlock(&lc->mu);
    return rc;
}

static int lc_applied_index(struct raftkv_fsm *fsm, raft_index *index)
{
    struct lifecycle *lc = (struct lifecycle *)fsm;
    pthread_mutex_lock(&lc->mu);
    *index = lc->applied;
    pthread_mutex_unlock(&lc->mu);
    return LIFECYCLE_OK;
}

static int lc_snapshot(struct raftkv_fsm *fsm, raftkv_snapshot_emit_fn emit, void *arg,
                       raft_index *index)
{
    struct lifecycle *lc = (struct lifecycle *)fsm;
    uint8_t buf[SNAPSHOT_BYTES];
    memcpy(buf, MAGIC, sizeof MAGIC);
    pthread_mutex_lock(&lc->mu);
    buf[4] = (uint8_t)lc->state;
    *index = lc->applied;
    pthread_mutex_unlock(&lc->mu);
    for (int i = 0; i < 8; i++)
        buf[5 + i] = (uint8_t)(*index >> (56 - 8 * i));
    return emit(arg, buf, sizeof buf) ? LIFECYCLE_ECALLBACK : LIFECYCLE_OK;
}

/* Reads the whole stream into buf (one byte more than a snapshot, to notice a longer one). */
static int read_all(raftkv_snapshot_read_fn read, void *arg, uint8_t *buf, size_t cap, size_t *len)
{
    *len = 0;
    for (size_t n = 1; n && *len < cap; *len += n) {
        n = 0;
        if (read(arg, buf + *len, cap - *len, &n) || n > cap - *len)
            return LIFECYCLE_ECALLBACK;
    }
    return LIFECYCLE_OK;
}

static int lc_restore(struct raftkv_fsm *fsm, raft_index index, raftkv_snapshot_read_fn read,
                      void *arg)
{
    struct lifecycle *lc = (struct lifecycle *)fsm;
    uint8_t buf[SNAPSHOT_BYTES + 1];
    size_t len;
    int rc = read_all(read, arg, buf, sizeof buf, &len);
    if (rc)
        return rc;
    raft_index stored = 0;
    for (int i = 0; i < 8 && len == SNAPSHOT_BYTES; i++)
        stored = stored << 8 | buf[5 + i];
    if (len != SNAPSHOT_BYTES || memcmp(buf, MAGIC, sizeof MAGIC) != 0 || buf[4] >= N_STATES ||
        stored != index)
        return LIFECYCLE_ESNAPSHOT;
    pthread_mutex_lock(&lc->mu);
    lc->state = (enum lifecycle_state)buf[4];
    lc->applied = index;
    pthread_mutex_unlock(&lc->mu);
    return LIFECYCLE_OK;
}

static const char *lc_strerror(struct raftkv_fsm *fsm, int err)
{
    (void)fsm;
    switch (err) {
    case LIFECYCLE_OK:
        return "ok";
    case LIFECYCLE_EINVALID:
        return "the request is invalid";
    case LIFECYCLE_ENOMEM:
        return "out of memory";
    case LIFECYCLE_ESNAPSHOT:
        return "not a lifecycle snapshot of that index";
    case LIFECYCLE_ECALLBACK:
        return "the snapshot's emit or read function failed";
    default:
        return "unknown error";
    }
}

static void lc_close(struct raftkv_fsm *fsm)
{
    struct lifecycle *lc = (struct lifecycle *)fsm;
    pthread_mutex_destroy(&lc->mu);
    free(lc);
}

static const struct raftkv_fsm_ops lifecycle_ops = {
    .validate = lc_validate,
    .apply = lc_apply,
    .applied_index = lc_applied_index,
    .snapshot = lc_snapshot,
    .restore = lc_restore,
    .strerror = lc_strerror,
    .close = lc_close,
};

int lifecycle_fsm_new(struct raftkv_fsm **out)
{
    struct lifecycle *lc = calloc(1, sizeof *lc);
    *out = NULL;
    if (!lc)
        return LIFECYCLE_ENOMEM;
    if (pthread_mutex_init(&lc->mu, NULL) != 0) {
        free(lc);
        return LIFECYCLE_ENOMEM;
    }
    lc->base.ops = &lifecycle_ops;
    *out = &lc->base;
    return LIFECYCLE_OK;
}
