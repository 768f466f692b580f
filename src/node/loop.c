/*
 * The event loop: the one thread that owns the core, the data dir and the state machine.
 * NNG threads only queue events (peer messages, client requests) and the snapshot
 * producer queues its end; the loop drains the whole queue, ticks the core, and runs the
 * ready pipeline (ready.c), so everything that arrived during one fsync is written by the
 * next: group commit.
 */
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "node/node_internal.h"
#include "transport/transport.h"

/* Room kept free in the map: writes are refused beyond max_db_bytes minus this, so the
 * node can still persist heartbeats' terms, votes and the entries already in flight. */
#define FULL_HEADROOM_MIN (8u << 20)

/* A loop that fell this many ticks behind (e.g. a slow fsync) resynchronizes its clock
 * instead of firing them all at once. */
#define MAX_TICK_CATCHUP 10

void loop__on_peer_msg(void *arg, struct raft_msg *msg, const char *from_address)
{
    struct rk_node *n = arg;
    size_t len = strlen(from_address) + 1;
    struct event *ev = malloc(sizeof *ev + len);
    if (!ev) {
        raft_msg_free(msg);
        return; /* Raft tolerates a lost message. */
    }
    ev->type = EV_PEER_MSG;
    ev->msg = *msg;
    ev->len = len;
    memcpy(ev->data, from_address, len);
    rk_queue_push(&n->queue, &ev->item);
}

static void step_peer_msg(struct rk_node *n, struct raft_msg *msg, const char *from_address)
{
    members__heard_from(n, msg->from, from_address);
    /* While a ready is held the core may not be called: the message is lost, which Raft
     * tolerates. */
    if (!n->held) {
        int rc = raft_step(n->raft, msg);
        /* A term out of range, or a message that contradicts committed history, is forged
         * or a peer's bug, not a network accident: say so with the sender, at the first
         * and then every 2^k-th. */
        bool bad = rc == RAFT_ERANGE || rc == RAFT_ECONFLICT;
        n->bad_msgs += bad;
        if (bad && (n->bad_msgs & (n->bad_msgs - 1)) == 0)
            rk_warn("dropped %s from %llu in term %llu: %s%s (own term %llu; %llu such "
                    "messages so far)",
                    raft_msg_type_name(msg->type), (unsigned long long)msg->from,
                    (unsigned long long)msg->term,
                    rc == RAFT_ERANGE ? "the term is out of range" : raft_strerror(rc),
                    rc == RAFT_ECONFLICT ? ": forged, or a bug in that node" : "",
                    (unsigned long long)n->view.term, (unsigned long long)n->bad_msgs);
        else if (!bad && rc != RAFT_OK)
            rk_debug("dropped %s from %llu: %s", raft_msg_type_name(msg->type),
                     (unsigned long long)msg->from, raft_strerror(rc));
    }
    raft_msg_free(msg);
}

static void handle_event(struct rk_node *n, struct event *ev)
{
    switch (ev->type) {
    case EV_CLIENT_REQUEST:
        clients__handle(n, ev);
        break;
    case EV_SNAPSHOT_DONE:
        snapshots__finish(n);
        break;
    case EV_PEER_MSG:
        step_peer_msg(n, &ev->msg, (const char *)ev->data);
        break;
    case EV_HTTP_REQUEST:
        http__handle(n, ev);
        break;
    }
    free(ev);
}

static void tick_due(struct rk_node *n, struct timespec *next_tick)
{
    struct timespec now = node__now();
    for (int i = 0; node__reached(&now, next_tick); i++) {
        if (i == MAX_TICK_CATCHUP) {
            *next_tick = now;
            node__add_ms(next_tick, RK_TICK_MS);
            break;
        }
        if (!n->held)
            raft_tick(n->raft);
        node__add_ms(next_tick, RK_TICK_MS);
    }
}

void loop__answer_queued(struct rk_node *n, const char *why)
{
    struct timespec now = node__now();
    struct rk_queue_item *it = rk_queue_take_all(&n->queue, &now);
    while (it) {
        struct event *ev = (struct event *)it;
        it = it->next;
        if (ev->type == EV_PEER_MSG)
            raft_msg_free(&ev->msg);
        else if (ev->type == EV_CLIENT_REQUEST && why)
            clients__reply_unavailable(n, ev->call, why);
        else if (ev->type == EV_HTTP_REQUEST && why)
            http__reply_unavailable(ev, why);
        free(ev);
    }
}

/* A node whose storage is nearly full refuses writes, and should not lead: a leader that
 * cannot append would stall every write, so it steps down, and campaigns only when no
 * node with room did (raft_set_electable). */
static void storage_check(struct rk_node *n)
{
    struct rk_db_stats st;
    rk_db_stats(n->db, &st);
    uint64_t max = n->cfg->max_db_bytes;
    uint64_t headroom = max / 20 > FULL_HEADROOM_MIN ? max / 20 : FULL_HEADROOM_MIN;
    bool full = st.used_bytes + headroom >= max;
    if (full != n->refusing_full)
        full ? rk_error("storage nearly full (%zu of %llu bytes used): refusing writes and "
                        "leaving the lead to nodes with room; raise max_db_bytes and restart",
                        st.used_bytes, (unsigned long long)max)
             : rk_info("storage has room again: accepting writes");
    n->refusing_full = full;
    /* The only voter has nobody to leave the lead to. */
    if (!n->held)
        raft_set_electable(n->raft, !full || members__alone(n));
}

/* Handles everything queued, waiting for the first event until deadline. */
static void drain(struct rk_node *n, const struct timespec *deadline)
{
    struct rk_queue_item *it = rk_queue_take_all(&n->queue, deadline);
    while (it) {
        struct rk_queue_item *next = it->next;
        handle_event(n, (struct event *)it);
        it = next;
    }
}

void loop__turn(struct rk_node *n, bool wait)
{
    static const struct timespec no_wait = {0, 0};
    drain(n, wait ? &n->next_tick : &no_wait);
    tick_due(n, &n->next_tick);
    storage_check(n);
    tls__poll(n);
    ready__process(n);
    members__transfer_check(n);
    snapshots__maybe_start(n);
}

int rk_node_run(struct rk_node *n)
{
    rk_info("running: client %s, peer %s%s%s", n->cfg->listen_client, n->cfg->listen_peer,
            n->cfg->listen_pub ? ", pub " : "", n->cfg->listen_pub ? n->cfg->listen_pub : "");
    while (!atomic_load(&n->stop) && !n->fatal)
        loop__turn(n, true);
    members__hand_off(n);
    if (n->moving)
        clients__reply_unavailable(n, n->moving, "node shutting down");
    n->moving = NULL;
    clients__fail_waiting(n, "node shutting down", true);
    loop__answer_queued(n, "node shutting down");
    /* Spares the next start re-applying the entries (a crash would leave them in the log). */
    if (!n->fatal && !n->held)
        ready__persist_fsm(n);
    rk_info("stopping");
    return n->fatal;
}

void rk_node_request_stop(struct rk_node *n)
{
    atomic_store(&n->stop, true);
}
