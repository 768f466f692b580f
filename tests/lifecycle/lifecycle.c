/* The lifecycle state machine (lifecycle.h documents its behaviour and snapshot). */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The state named by the len bytes at name, or -1. */
static int parse_state(const uint8_t *name, size_t len)
{
    for (size_t i = 0; i < N_STATES; i++)
        if (len == strlen(NAMES[i]) && memcmp(name, NAMES[i], len) == 0)
            return (int)i;
    return -1;
}

/* *out = the formatted text (without its NUL). */
static int text(struct raftkv_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int text(struct raftkv_buf *out, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    *out = (struct raftkv_buf){malloc(len ? len : 1), len};
    if (!out->data)
        return LIFECYCLE_ENOMEM;
    memcpy(out->data, buf, len);
    return LIFECYCLE_OK;
}

/* Explains an unknown name (quoted, cut at 32 bytes, unprintable bytes as '?') into why. */
static void unknown_name(const uint8_t *name, size_t len, char *why, size_t why_len)
{
    char shown[33];
    size_t n = len > 32 ? 32 : len;
    for (size_t i = 0; i < n; i++)
        shown[i] = isprint(name[i]) ? (char)name[i] : '?';
    shown[n] = '\0';
    snprintf(why, why_len, "unknown state \"%s%s\": expected init, running or stopped", shown,
             len > 32 ? "..." : "");
}

/* Unknown names are refused; whether a transition is legal is decided at apply. */
static int lc_prepare(struct raftkv_fsm *fsm, const uint8_t *request, size_t len,
                      struct raftkv_prepared *out)
{
    (void)fsm;
    memset(out, 0, sizeof *out);
    out->kind = RAFTKV_PREPARE_PROPOSE;
    if (parse_state(request, len) < 0) {
        out->kind = RAFTKV_PREPARE_REFUSE;
        unknown_name(request, len, out->why, sizeof out->why);
    }
    return LIFECYCLE_OK;
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
    int rc = text(result, "OK %s %llu", NAMES[s], (unsigned long long)index);
    if (!rc && (rc = text(event, "%s %llu", NAMES[s], (unsigned long long)index)) != 0) {
        free(result->data);
        *result = (struct raftkv_buf){NULL, 0};
    }
    return rc;
}

/* Runs one normal entry (lc->mu held). */
static int apply_command(struct lifecycle *lc, const struct raft_entry *e,
                         struct raftkv_buf *result, struct raftkv_buf *event)
{
    char why[160];
    int target = parse_state(e->data, e->len);
    if (target < 0)
        unknown_name(e->data, e->len, why, sizeof why);
    else if (transition(lc, (enum lifecycle_state)target, why, sizeof why))
        return answer_ok(lc->state, e->index, result, event);
    return text(result, "INVALID %s: %s", NAMES[lc->state], why);
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
    .prepare = lc_prepare,
    .apply = lc_apply,
    .applied_index = lc_applied_index,
    .snapshot = lc_snapshot,
    .restore = lc_restore,
    .strerror = lc_strerror,
    .close = lc_close,
    .event_topic = "lifecycle/",
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
