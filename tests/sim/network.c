/* The simulated network: each message gets a delay, may be lost or duplicated, arrives in
 * order of its arrival time (so that messages overtake each other), and never crosses a
 * blocked link. Every fault is drawn from the cluster's one PRNG. */
#include <inttypes.h>
#include <string.h>

#include "cluster_internal.h"

/* More in flight than any sane exchange produces: a core amplifying traffic. */
#define STORM_MSGS 200000

static void enqueue(struct cluster *c, const struct raft_msg *m, uint64_t at, bool duplicate)
{
    if (c->n_pending >= STORM_MSGS) {
        cluster_fail(c, m->from,
                     "message storm: %d messages in flight (last: %s from n%" PRIu64 " to n%" PRIu64
                     ")",
                     STORM_MSGS, raft_msg_type_name(m->type), m->from, m->to);
        return;
    }
    grow((void **)&c->pending, &c->cap_pending, c->n_pending + 1, sizeof *c->pending);
    struct cluster_pending *p = &c->pending[c->n_pending];
    if (raft_msg_copy(&p->m, m) != RAFT_OK)
        oom();
    p->at = at;
    p->seq = c->next_seq++;
    c->n_pending++;
    trace_msg(c, EV_SEND, m, at, duplicate);
}

static uint64_t pick_delay(struct cluster *c)
{
    const struct cluster_net *n = &c->net;
    uint64_t d = n->delay_min;
    if (n->delay_max > n->delay_min)
        d += cluster_rand_below(c, n->delay_max - n->delay_min + 1);
    if (roll_permille(c, n->long_delay_permille))
        d += cluster_rand_below(c, n->long_delay_max + 1);
    return d ? d : 1;
}

void net_send(struct cluster *c, const struct raft_msg *m)
{
    if (roll_permille(c, c->net.drop_permille)) {
        trace_msg(c, EV_DROP, m, DROP_RANDOM, 0);
        c->stats_dropped++;
        return;
    }
    enqueue(c, m, c->now + pick_delay(c), false);
    if (roll_permille(c, c->net.dup_permille)) {
        enqueue(c, m, c->now + pick_delay(c), true);
        c->stats_duplicated++;
    }
}

/* ---- delivery ---- */

static int pending_cmp(const void *a, const void *b)
{
    const struct cluster_pending *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void deliver_one(struct cluster *c, const struct raft_msg *m, uint64_t seq)
{
    if (!node_valid(c, m->to) || !node_valid(c, m->from) || c->blocked[m->from][m->to]) {
        trace_msg(c, EV_DROP, m, DROP_PARTITION, 0);
        c->stats_dropped++;
        return;
    }
    struct cluster_node *n = &c->nodes[m->to];
    if (!n->r) {
        trace_msg(c, EV_DROP, m, DROP_NODE_DOWN, 0);
        c->stats_dropped++;
        return;
    }
    trace_msg(c, EV_DELIVER, m, 0, 0);
    c->stats_delivered++;
    if (seq < c->last_seq[m->from][m->to])
        c->stats_reordered++;
    else
        c->last_seq[m->from][m->to] = seq;
    host_receive(c, n, m);
}

size_t net_deliver_due(struct cluster *c, uint64_t upto)
{
    size_t n_due = 0, kept = 0;
    for (size_t i = 0; i < c->n_pending; i++) {
        if (c->pending[i].at <= upto) {
            grow((void **)&c->due, &c->cap_due, n_due + 1, sizeof *c->due);
            c->due[n_due++] = c->pending[i];
        } else {
            c->pending[kept++] = c->pending[i];
        }
    }
    c->n_pending = kept;
    if (n_due > 1)
        qsort(c->due, n_due, sizeof *c->due, pending_cmp);
    for (size_t i = 0; i < n_due; i++) {
        deliver_one(c, &c->due[i].m, c->due[i].seq);
        raft_msg_free(&c->due[i].m);
    }
    host_drain_batched(c);
    return n_due;
}

size_t cluster_deliver_all(struct cluster *c)
{
    size_t total = 0;
    /* Delivery without ticks cannot loop forever (only ticks start new exchanges), but a
     * faulty core could ping-pong; the bound keeps a test from hanging on it. */
    for (int round = 0; round < 10000 && c->n_pending; round++)
        total += net_deliver_due(c, UINT64_MAX);
    return total;
}

void cluster_drop_all(struct cluster *c)
{
    for (size_t i = 0; i < c->n_pending; i++) {
        trace_msg(c, EV_DROP, &c->pending[i].m, DROP_DISCARDED, 0);
        raft_msg_free(&c->pending[i].m);
    }
    c->n_pending = 0;
}

/* ---- partitions ---- */

static void net_event(struct cluster *c)
{
    uint64_t mask = 0;
    for (size_t f = 1; f <= c->opts.n_nodes; f++)
        for (size_t t = 1; t <= c->opts.n_nodes; t++)
            if (c->blocked[f][t])
                mask |= 1ULL << ((f - 1) * CLUSTER_MAX_NODES + (t - 1));
    trace_event(c, 0, EV_NET, mask, 0, 0, 0, 0);
}

void cluster_partition(struct cluster *c, const raft_id *side, size_t n)
{
    bool in[CLUSTER_MAX_NODES + 1] = {false};
    for (size_t i = 0; i < n; i++)
        if (node_valid(c, side[i]))
            in[side[i]] = true;
    for (size_t f = 1; f <= c->opts.n_nodes; f++)
        for (size_t t = 1; t <= c->opts.n_nodes; t++)
            if (in[f] != in[t])
                c->blocked[f][t] = true;
    net_event(c);
}

void cluster_block(struct cluster *c, raft_id from, raft_id to)
{
    if (node_valid(c, from) && node_valid(c, to))
        c->blocked[from][to] = true;
    net_event(c);
}

void cluster_heal(struct cluster *c)
{
    memset(c->blocked, 0, sizeof c->blocked);
    net_event(c);
}
