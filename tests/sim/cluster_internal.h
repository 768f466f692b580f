/*
 * What the parts of the simulated cluster share; scenario code uses cluster.h only.
 *
 *   cluster.c     the driver: life cycle, randomness, time, the controls and queries
 *   network.c     messages in flight: delays, loss, duplication, reordering, partitions
 *   host.c        one simulated node: the host loop of raft.h, storage, crash and restart,
 *                 applying, snapshots of its state machine
 *   invariants.c  the safety properties and the host contract, checked as the run goes
 *   trace.c       the event trace: the ring of last events and how an event is printed
 *
 * A message goes host (send) -> network (delay, fault) -> host (receive); every step the
 * host takes is shown to the checks, and every check and step lands in the trace.
 */
#ifndef RAFTKV_SIM_CLUSTER_INTERNAL_H
#define RAFTKV_SIM_CLUSTER_INTERNAL_H

#include <stdlib.h>

#include "cluster.h"

/* ---- memory: a simulation cannot sensibly go on without it ---- */

static inline _Noreturn void oom(void)
{
    fprintf(stderr, "cluster: out of memory\n");
    abort();
}

static inline void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom();
    return q;
}

/* Grows *buf so that it holds at least need elements of size sz. */
static inline void grow(void **buf, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    *buf = xrealloc(*buf, n * sz);
    *cap = n;
}

/* ---- cluster.c ---- */

static inline bool roll_permille(struct cluster *c, unsigned permille)
{
    return permille > 0 && cluster_rand_below(c, 1000) < permille;
}

static inline bool node_valid(const struct cluster *c, raft_id id)
{
    return id >= 1 && id <= c->opts.n_nodes;
}

/* The number of a command proposed through cluster_propose_cmd; false for other entries. */
bool cluster_cmd_of(const struct raft_entry *e, uint64_t *cmd);

/* ---- hashes of entries and of the applied sequence ---- */

static inline uint64_t fnv_mix(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static inline uint64_t entry_hash(const struct raft_entry *e)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    uint8_t type = (uint8_t)e->type;
    h = fnv_mix(h, &type, 1);
    return fnv_mix(h, e->data, e->len);
}

static inline uint64_t chain_step(uint64_t chain, uint64_t hash)
{
    return fnv_mix(chain ^ 0x9e3779b97f4a7c15ULL, &hash, sizeof hash);
}

/* ---- the host's mirror of its durable log ---- */

static inline raft_index stored_last(const struct cluster_node *n)
{
    return n->log_base + n->log_n;
}

static inline const struct cluster_logent *stored_at(const struct cluster_node *n, raft_index index)
{
    return index > n->log_base && index <= stored_last(n) ? &n->log[index - n->log_base - 1] : NULL;
}

static inline raft_term stored_term_at(const struct cluster_node *n, raft_index index)
{
    const struct cluster_logent *e = stored_at(n, index);
    return e ? e->term : index == n->log_base ? n->base_term : 0;
}

/* ---- trace.c ---- */

/* Stamps ev with the time, keeps it in the ring and prints it if the trace is on. */
void trace_push(struct cluster *c, struct cluster_event *ev);
void trace_event(struct cluster *c, raft_id node, enum cluster_event_kind kind, uint64_t a,
                 uint64_t b, uint64_t cc, uint64_t d, uint64_t e);
/* A message event, shown at the sender for EV_SEND and at the recipient otherwise. */
void trace_msg(struct cluster *c, enum cluster_event_kind kind, const struct raft_msg *m,
               uint64_t a, uint64_t b);
void trace_note(struct cluster *c, raft_id node, const char *what, uint64_t a, uint64_t b);

/* Why a message never arrived (EV_DROP's a). */
enum trace_drop_reason { DROP_RANDOM, DROP_PARTITION, DROP_NODE_DOWN, DROP_DISCARDED };

/* ---- network.c ---- */

/* Puts a message on the wire: it may be lost, delayed or duplicated. */
void net_send(struct cluster *c, const struct raft_msg *m);
/* Delivers every message due by upto, in order of arrival time; returns how many. */
size_t net_deliver_due(struct cluster *c, uint64_t upto);

/* ---- host.c ---- */

/* Starts a node from its storage and its latest snapshot. */
int host_start(struct cluster *c, struct cluster_node *n);
void host_crash(struct cluster *c, struct cluster_node *n, enum cluster_crash_point at);
/* Runs the host loop of raft.h until the core has no more work. */
void host_drain(struct cluster *c, struct cluster_node *n);
/* Steps a delivered message into the node; its ready may wait for the tick's others. */
void host_receive(struct cluster *c, struct cluster_node *n, const struct raft_msg *m);
/* Drains the nodes whose ready waited for the tick's other deliveries. */
void host_drain_batched(struct cluster *c);

/* ---- invariants.c ---- */

int check_init(struct cluster *c);
void check_free(struct cluster *c);
/* What a node sends: an acknowledgement only of durable state, and a vote (or pre-vote)
 * only for a log at least as up to date as its own. */
void check_ack_durable(struct cluster *c, const struct cluster_node *n, const struct raft_msg *m);
/* A vote request as n receives it, before its core steps it. */
void check_vote_asked(struct cluster_node *n, const struct raft_msg *m);
/* Election Safety and Leader Completeness, when n becomes leader of term. */
void check_new_leader(struct cluster *c, const struct cluster_node *n, raft_term term);
/* Records the term in which the leader n first counts indexes committed (Leader
 * Completeness constrains only leaders of later terms), and checks that they are durable on
 * a majority of the voters of its latest configuration. */
void check_leader_commit(struct cluster *c, const struct cluster_node *n, raft_term term);
/* Only a voter of its own latest configuration campaigns, or leads (called as n becomes
 * pre-candidate, candidate or leader). */
void check_campaigner(struct cluster *c, const struct cluster_node *n);
/* A leader's configuration: one uncommitted change at most, and a leader removed by a
 * committed configuration no longer leads. After every step of a leader. */
void check_leader_configuration(struct cluster *c, struct cluster_node *n);
/* Check-quorum (Raft dissertation §6.2): a leader that can reach no majority (partitioned
 * away, or its peers down) steps down within a bound of election timeouts, counted from
 * when the last message that could still reach it is delivered. Once per tick. */
void check_isolated_leaders(struct cluster *c);
/* Leader Append-Only: the log of a leader, now last long, never shrinks... */
void check_leader_log(struct cluster *c, const struct cluster_node *n, raft_index last);
/* ...nor is truncated by a ready. */
void check_leader_truncation(struct cluster *c, const struct cluster_node *n,
                             const struct raft_ready *rd);
/* The hard state of a ready against the one stored. */
void check_hard_state(struct cluster *c, const struct cluster_node *n, const struct raft_ready *rd);
/* An entry being persisted after one of term prev_term; Log Matching. */
void check_persisted_entry(struct cluster *c, const struct cluster_node *n,
                           const struct raft_entry *e, raft_term prev_term, uint64_t hash);
/* An entry being applied: in order, durable, and State Machine Safety. False: out of order,
 * the node must not apply it. */
bool check_apply(struct cluster *c, const struct cluster_node *n, const struct raft_entry *e,
                 uint64_t hash);
/* The read states of a ready: linearizable, and answered only by the node asked. */
void check_reads(struct cluster *c, const struct cluster_node *n, const struct raft_ready *rd);
/* Storage gives back exactly what was saved. */
void check_restore(struct cluster *c, const struct cluster_node *n, const struct raft_restore *rs);
/* A snapshot restored as n's state machine: its bytes hold (index, term, chain) as its meta
 * says, and that state was applied. False: the bytes disagree with the meta. */
bool check_snapshot_state(struct cluster *c, const struct cluster_node *n, raft_index index,
                          raft_term term, uint64_t chain);

#endif
