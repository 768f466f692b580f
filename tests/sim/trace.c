/* The event trace: every step of the run as one event, the last CLUSTER_RING kept for the
 * failure report, and all of them printed as they happen when cluster.trace is set. */
#include <inttypes.h>

#include "cluster_internal.h"

static void msg_summary(struct cluster_event *ev, const struct raft_msg *m)
{
    ev->msg.type = m->type;
    ev->msg.from = m->from;
    ev->msg.to = m->to;
    ev->msg.term = m->term;
    switch (m->type) {
    case RAFT_MSG_REQUEST_VOTE:
        ev->msg.x = m->request_vote.last_log_index;
        ev->msg.y = m->request_vote.last_log_term;
        ev->msg.flag1 = m->request_vote.pre_vote;
        ev->msg.flag2 = m->request_vote.transfer;
        break;
    case RAFT_MSG_REQUEST_VOTE_RESP:
        ev->msg.flag1 = m->request_vote_resp.granted;
        ev->msg.flag2 = m->request_vote_resp.pre_vote;
        break;
    case RAFT_MSG_APPEND:
        ev->msg.x = m->append.prev_index;
        ev->msg.y = m->append.prev_term;
        ev->msg.z = m->append.commit;
        ev->msg.w = m->append.n_entries;
        ev->msg.v = m->append.n_entries ? m->append.entries[m->append.n_entries - 1].term : 0;
        break;
    case RAFT_MSG_APPEND_RESP:
        ev->msg.flag1 = m->append_resp.success;
        ev->msg.x = m->append_resp.index;
        ev->msg.y = m->append_resp.conflict_term;
        ev->msg.z = m->append_resp.conflict_index;
        ev->msg.w = m->append_resp.last_index;
        break;
    case RAFT_MSG_INSTALL_SNAPSHOT:
        ev->msg.x = m->install_snapshot.last_index;
        ev->msg.y = m->install_snapshot.last_term;
        ev->msg.z = m->install_snapshot.offset;
        ev->msg.w = m->install_snapshot.len;
        ev->msg.flag1 = m->install_snapshot.done;
        break;
    case RAFT_MSG_INSTALL_SNAPSHOT_RESP:
        ev->msg.x = m->install_snapshot_resp.last_index;
        ev->msg.z = m->install_snapshot_resp.offset;
        ev->msg.flag1 = m->install_snapshot_resp.rejected;
        ev->msg.flag2 = m->install_snapshot_resp.done;
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        break;
    }
}

static void print_msg(FILE *out, const struct cluster_event *ev)
{
    fprintf(out, "%s %" PRIu64 "->%" PRIu64 " t=%" PRIu64, raft_msg_type_name(ev->msg.type),
            ev->msg.from, ev->msg.to, ev->msg.term);
    switch (ev->msg.type) {
    case RAFT_MSG_REQUEST_VOTE:
        fprintf(out, "%s%s last=%" PRIu64 "/t%" PRIu64, ev->msg.flag1 ? " pre" : "",
                ev->msg.flag2 ? " transfer" : "", ev->msg.x, ev->msg.y);
        break;
    case RAFT_MSG_REQUEST_VOTE_RESP:
        fprintf(out, "%s %s", ev->msg.flag2 ? " pre" : "", ev->msg.flag1 ? "granted" : "rejected");
        break;
    case RAFT_MSG_APPEND:
        fprintf(out, " prev=%" PRIu64 "/t%" PRIu64 " commit=%" PRIu64, ev->msg.x, ev->msg.y,
                ev->msg.z);
        if (ev->msg.w)
            fprintf(out, " entries=%" PRIu64 "..%" PRIu64 " (last t%" PRIu64 ")", ev->msg.x + 1,
                    ev->msg.x + ev->msg.w, ev->msg.v);
        break;
    case RAFT_MSG_APPEND_RESP:
        if (ev->msg.flag1)
            fprintf(out, " ok index=%" PRIu64, ev->msg.x);
        else
            fprintf(out, " reject prev=%" PRIu64 " conflict=t%" PRIu64 "@%" PRIu64 " last=%" PRIu64,
                    ev->msg.x, ev->msg.y, ev->msg.z, ev->msg.w);
        break;
    case RAFT_MSG_INSTALL_SNAPSHOT:
        fprintf(out, " snapshot=%" PRIu64 "/t%" PRIu64 " bytes %" PRIu64 "+%" PRIu64 "%s",
                ev->msg.x, ev->msg.y, ev->msg.z, ev->msg.w, ev->msg.flag1 ? " done" : "");
        break;
    case RAFT_MSG_INSTALL_SNAPSHOT_RESP:
        fprintf(out, " snapshot=%" PRIu64 " offset=%" PRIu64 "%s%s", ev->msg.x, ev->msg.z,
                ev->msg.flag1 ? " rejected" : "", ev->msg.flag2 ? " done" : "");
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        break;
    }
}

static void print_blocked(FILE *out, uint64_t mask)
{
    if (!mask) {
        fprintf(out, " all links up");
        return;
    }
    fprintf(out, " blocked:");
    for (int from = 1; from <= CLUSTER_MAX_NODES; from++)
        for (int to = 1; to <= CLUSTER_MAX_NODES; to++)
            if (mask >> ((from - 1) * CLUSTER_MAX_NODES + (to - 1)) & 1)
                fprintf(out, " %d>%d", from, to);
}

static const char *const DROP_REASONS[] = {
    [DROP_RANDOM] = "random",
    [DROP_PARTITION] = "partition",
    [DROP_NODE_DOWN] = "node down",
    [DROP_DISCARDED] = "discarded",
};
static const char *const CRASH_POINTS[] = {
    [CRASH_NONE] = "now",
    [CRASH_BEFORE_PERSIST] = "after sending, before persisting",
    [CRASH_AFTER_PERSIST] = "after persisting, before acking",
    [CRASH_AFTER_VOTE] = "right after granting a vote",
};

static void print_event(const struct cluster *c, const struct cluster_event *ev, FILE *out)
{
    fprintf(out, "[%6" PRIu64 "] n%" PRIu64 " ", ev->tick, ev->node);
    switch (ev->kind) {
    case EV_SEND:
        fprintf(out, "send    ");
        print_msg(out, ev);
        fprintf(out, " arrives@%" PRIu64 "%s", ev->a, ev->b ? " (duplicate)" : "");
        break;
    case EV_DELIVER:
        fprintf(out, "recv    ");
        print_msg(out, ev);
        break;
    case EV_DROP:
        fprintf(out, "drop    ");
        print_msg(out, ev);
        fprintf(out, " (%s)", DROP_REASONS[ev->a]);
        break;
    case EV_PERSIST:
        fprintf(out, "persist term=%" PRIu64 " vote=%" PRIu64 "%s", ev->a, ev->b,
                ev->msg.flag1 ? "" : " (unchanged)");
        if (ev->c)
            fprintf(out, " truncate>=%" PRIu64, ev->c);
        if (ev->e)
            fprintf(out, " append %" PRIu64 "..%" PRIu64, ev->d, ev->e);
        break;
    case EV_APPLY:
        fprintf(out, "apply   %" PRIu64 "..%" PRIu64 " commit=%" PRIu64, ev->a, ev->b, ev->c);
        break;
    case EV_ROLE:
        fprintf(out,
                "role    %s term=%" PRIu64 " leader=%" PRIu64 " last=%" PRIu64 " commit=%" PRIu64,
                raft_role_name((enum raft_role)ev->a), ev->b, ev->c, ev->d, ev->e);
        break;
    case EV_PROPOSE:
        if (ev->d)
            fprintf(out, "propose cmd=%" PRIu64 " refused: %s", ev->a, raft_strerror((int)ev->d));
        else
            fprintf(out, "propose cmd=%" PRIu64 " at %" PRIu64 "/t%" PRIu64, ev->a, ev->b, ev->c);
        break;
    case EV_CRASH:
        fprintf(out, "CRASH   %s", CRASH_POINTS[ev->a]);
        break;
    case EV_RESTART:
        fprintf(out, "RESTART term=%" PRIu64 " vote=%" PRIu64 " last=%" PRIu64 "%s", ev->a, ev->b,
                ev->c, ev->d ? " FAILED" : "");
        break;
    case EV_NET:
        fprintf(out, "net    ");
        print_blocked(out, ev->a);
        break;
    case EV_NOTE:
        fprintf(out, "note    %s %" PRIu64 " %" PRIu64, ev->note, ev->a, ev->b);
        break;
    case EV_VIOLATION:
        fprintf(out, "VIOLATION %s", c->violation);
        break;
    }
    fputc('\n', out);
}

void trace_push(struct cluster *c, struct cluster_event *ev)
{
    ev->tick = c->now;
    c->ring[c->n_events++ % CLUSTER_RING] = *ev;
    if (c->trace)
        print_event(c, ev, c->trace);
}

void trace_event(struct cluster *c, raft_id node, enum cluster_event_kind kind, uint64_t a,
                 uint64_t b, uint64_t cc, uint64_t d, uint64_t e)
{
    struct cluster_event ev = {.node = node, .kind = kind, .a = a, .b = b, .c = cc, .d = d, .e = e};
    trace_push(c, &ev);
}

void trace_msg(struct cluster *c, enum cluster_event_kind kind, const struct raft_msg *m,
               uint64_t a, uint64_t b)
{
    struct cluster_event ev = {
        .node = kind == EV_SEND ? m->from : m->to, .kind = kind, .a = a, .b = b};
    msg_summary(&ev, m);
    trace_push(c, &ev);
}

void trace_note(struct cluster *c, raft_id node, const char *what, uint64_t a, uint64_t b)
{
    struct cluster_event ev = {.node = node, .kind = EV_NOTE, .note = what, .a = a, .b = b};
    trace_push(c, &ev);
}

void cluster_note(struct cluster *c, const char *what, uint64_t a, uint64_t b)
{
    trace_note(c, 0, what, a, b);
}

void cluster_dump_trace(const struct cluster *c, FILE *out, size_t last)
{
    uint64_t kept = c->n_events < CLUSTER_RING ? c->n_events : CLUSTER_RING;
    if (last > kept)
        last = kept;
    for (uint64_t i = c->n_events - last; i < c->n_events; i++)
        print_event(c, &c->ring[i % CLUSTER_RING], out);
}

void cluster_dump_state(const struct cluster *c, FILE *out)
{
    for (raft_id id = 1; id <= c->opts.n_nodes; id++) {
        const struct cluster_node *n = &c->nodes[id];
        if (!n->r) {
            fprintf(out, "  n%" PRIu64 " down\n", id);
            continue;
        }
        raft_index at;
        const struct raft_configuration *conf = raft_configuration_of(n->r, &at);
        fprintf(out,
                "  n%" PRIu64 " %s term=%" PRIu64 " leader=%" PRIu64 " last=%" PRIu64
                " commit=%" PRIu64 " applied=%" PRIu64 " configuration@%" PRIu64 ":",
                id, raft_role_name(raft_role_of(n->r)), raft_term_of(n->r), raft_leader_of(n->r),
                raft_last_index_of(n->r), raft_commit_of(n->r), n->applied, at);
        for (size_t i = 0; i < conf->n; i++)
            fprintf(out, " %s%" PRIu64, conf->members[i].role == RAFT_VOTER ? "v" : "l",
                    conf->members[i].id);
        fputc('\n', out);
    }
}
