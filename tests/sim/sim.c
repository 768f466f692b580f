/*
 * raft-sim: seeded random runs of a whole cluster under message loss, delay, reordering,
 * duplication, symmetric and one-way partitions, forced elections and crashes that lose
 * unpersisted work (at rest, between sending and persisting, after persisting, right after
 * granting a vote), with hosts that batch several steps per ready, compact their logs and
 * ship snapshots in chunks, and clients writing and reading (ReadIndex) throughout. Each
 * seed draws its own mix of these (and of the core's options). The cluster fixture checks
 * safety after every step, and check-quorum while the faults are active; this driver adds
 * liveness once the faults heal for the last part of the run: one leader, everything
 * applied, and no term rises once that leader is stable. tests/sim/mutants.sh measures
 * what it catches.
 *
 *     raft-sim --seed S [--trace]            one run; --trace prints every event
 *     raft-sim --seeds N [--start S]         N runs from seed S (default 1)
 *     options: --nodes 3|5 (default 3), --ticks T (default 2000), --jobs J (default 1)
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"

#define ELECTION_MIN 10
#define ELECTION_MAX 20
/* After the faults heal: a leader that every node follows must exist within this many
 * ticks (several randomized election rounds, with pre-vote and check-quorum interplay)... */
#define LEADER_BOUND (10 * ELECTION_MAX)
#define SETTLE (2 * ELECTION_MAX)
/* ...and once clients stop, every node must apply everything within this many ticks plus
 * time to stream the backlog. */
#define QUIESCE 100
#define MIN_HEAL (LEADER_BOUND + 100)
#define TRACE_TAIL 200

struct sim_opts {
    uint64_t start, count;
    size_t nodes;
    unsigned ticks, jobs;
    bool trace;
};

/* How hostile one run is; drawn per seed so the seeds cover calm and stormy runs alike. */
struct profile {
    unsigned net_change_permille; /* per tick */
    unsigned crash_permille;      /* per tick */
    unsigned campaign_permille;   /* per tick: a node times out early */
    unsigned client_permille;     /* per tick */
    unsigned max_downtime;
    unsigned batch_permille;
    unsigned vote_crash_permille;
    unsigned full_permille;   /* per tick: a node's storage fills up, or has room again */
    unsigned change_permille; /* per tick: a membership change or a leadership transfer */
    struct cluster_net net;
};

static uint64_t pick(uint64_t *x, const unsigned *choices, size_t n)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 31)) * 0xbf58476d1ce4e5b9ULL;
    z ^= z >> 29;
    return choices[z % n];
}

#define PICK(x, ...)                                                                               \
    pick(x, (const unsigned[]){__VA_ARGS__},                                                       \
         sizeof((const unsigned[]){__VA_ARGS__}) / sizeof(unsigned))

static void draw_profile(uint64_t seed, size_t nodes, struct cluster_opts *o, struct profile *p)
{
    uint64_t x = seed ^ 0x5851f42d4c957f2dULL;
    cluster_opts_defaults(o);
    o->n_nodes = nodes;
    o->seed = seed;
    o->election_ticks_min = ELECTION_MIN;
    o->election_ticks_max = ELECTION_MAX;
    o->heartbeat_ticks = (unsigned)PICK(&x, 2, 3);
    o->pre_vote = PICK(&x, 0, 1);
    o->check_quorum = PICK(&x, 0, 1);
    o->max_entries_per_msg = PICK(&x, 1, 2, 4, 16, 64);
    o->max_inflight_msgs = PICK(&x, 1, 4, 32);
    p->net_change_permille = (unsigned)PICK(&x, 5, 15, 40);
    p->crash_permille = (unsigned)PICK(&x, 0, 3, 10, 30);
    p->campaign_permille = (unsigned)PICK(&x, 0, 3, 15);
    p->client_permille = (unsigned)PICK(&x, 100, 300, 800);
    p->max_downtime = (unsigned)PICK(&x, 10, 40, 120);
    p->batch_permille = (unsigned)PICK(&x, 0, 300, 1000);
    p->vote_crash_permille = (unsigned)PICK(&x, 0, 0, 200);
    /* Some compact every few entries with nothing kept, so that snapshot transfers, and the
     * truncations they cut short, are common rather than rare. */
    o->snapshot_every = (unsigned)PICK(&x, 0, 0, 3, 10, 50);
    o->compact_margin = (unsigned)PICK(&x, 0, 0, 3, 30);
    o->snapshot_chunk_bytes = PICK(&x, 16, 64, 4096);
    o->max_inflight_chunks = PICK(&x, 1, 4);
    p->net.drop_permille = (unsigned)PICK(&x, 0, 20, 100, 250);
    p->net.dup_permille = (unsigned)PICK(&x, 0, 20, 100);
    p->net.delay_min = 1;
    p->net.delay_max = (unsigned)PICK(&x, 1, 2, 5, 15);
    p->net.long_delay_permille = (unsigned)PICK(&x, 0, 10, 50);
    p->net.long_delay_max = 3 * ELECTION_MAX;
    p->full_permille = (unsigned)PICK(&x, 0, 0, 5, 20);
    /* Drawn last, and zero for two seeds in five with no spare either: those seeds replay
     * the runs they gave before membership changes existed. */
    p->change_permille = (unsigned)PICK(&x, 0, 0, 5, 20, 60);
    size_t spares = (size_t)PICK(&x, 0, 1, 2, 3, 4);
    if (spares > CLUSTER_MAX_NODES - nodes)
        spares = CLUSTER_MAX_NODES - nodes;
    o->n_spares = p->change_permille ? spares : 0;
    o->n_nodes = nodes + o->n_spares;
}

static raft_id random_node(struct cluster *c)
{
    return 1 + cluster_rand_below(c, (uint32_t)c->opts.n_nodes);
}

static void change_network(struct cluster *c)
{
    size_t n = c->opts.n_nodes;
    raft_id side[CLUSTER_MAX_NODES];
    size_t k = 0;
    raft_id leader = cluster_leader(c);
    cluster_heal(c);
    switch (cluster_rand_below(c, 6)) {
    case 0: /* all links up */
        return;
    case 1: /* a random split */
        for (raft_id id = 1; id <= n; id++)
            if (cluster_rand_below(c, 2))
                side[k++] = id;
        break;
    case 2: /* the leader alone */
        side[k++] = leader ? leader : random_node(c);
        break;
    case 3: /* the leader and one follower in a minority */
        side[k++] = leader ? leader : random_node(c);
        side[k++] = random_node(c);
        break;
    case 4: /* some links fail in one direction only */
        for (unsigned i = 0, links = 1 + cluster_rand_below(c, (uint32_t)n); i < links; i++)
            cluster_block(c, random_node(c), random_node(c));
        return;
    default: /* any one node alone */
        side[k++] = random_node(c);
        break;
    }
    cluster_partition(c, side, k);
}

static void crash_someone(struct cluster *c)
{
    raft_id leader = cluster_leader(c);
    raft_id id = leader && cluster_rand_below(c, 5) < 2 ? leader : random_node(c);
    if (!cluster_is_up(c, id))
        return;
    switch (cluster_rand_below(c, 3)) {
    case 0:
        cluster_crash(c, id);
        break;
    case 1:
        cluster_crash_at(c, id, CRASH_BEFORE_PERSIST);
        break;
    default:
        cluster_crash_at(c, id, CRASH_AFTER_PERSIST);
        break;
    }
}

/* A random member of conf with this role, or 0 if it has none. */
static raft_id random_member(struct cluster *c, const struct raft_configuration *conf,
                             enum raft_member_role role)
{
    raft_id found[RAFT_MAX_MEMBERS];
    size_t k = 0;
    for (size_t i = 0; i < conf->n; i++)
        if (conf->members[i].role == role)
            found[k++] = conf->members[i].id;
    return k ? found[cluster_rand_below(c, (uint32_t)k)] : 0;
}

/* A spare no leader ever agreed to add: ids are never reused, so a removed node (whose
 * state a replacement would have to start without) never comes back. */
static raft_id fresh_spare(struct cluster *c)
{
    for (raft_id id = 1; id <= c->opts.n_nodes; id++)
        if (c->nodes[id].joins && !c->nodes[id].added)
            return id;
    return 0;
}

/* Asks the leader (one time in ten any node, which must refuse unless it leads) for a
 * change or a transfer. Three times in four the target is one the request fits, as an
 * operator would pick it (any voter or learner may be removed, the leader included);
 * otherwise any slot, or a member to add again, so that every refusal comes up. */
static void change_membership(struct cluster *c)
{
    raft_id leader = cluster_leader(c);
    raft_id at = leader && cluster_rand_below(c, 10) ? leader : random_node(c);
    enum cluster_change op = (enum cluster_change)cluster_rand_below(c, CHANGE_KINDS);
    raft_id id = random_node(c);
    const struct raft_configuration *conf =
        cluster_is_up(c, at) ? raft_configuration_of(c->nodes[at].r, NULL) : NULL;
    bool apt = conf && cluster_rand_below(c, 4);
    switch (op) {
    case CHANGE_ADD:
        id = apt && fresh_spare(c) ? fresh_spare(c) : conf ? random_member(c, conf, RAFT_VOTER) : 0;
        break;
    case CHANGE_PROMOTE:
        if (apt)
            id = random_member(c, conf, RAFT_LEARNER);
        break;
    case CHANGE_REMOVE:
        if (apt)
            id = random_member(c, conf, cluster_rand_below(c, 2) ? RAFT_VOTER : RAFT_LEARNER);
        break;
    default:
        if (apt)
            id = cluster_rand_below(c, 3) ? random_member(c, conf, RAFT_VOTER) : 0;
        break;
    }
    /* Without pre-vote and check-quorum a node being removed disrupts the cluster, and is
     * stopped once the faults heal (retire_disruptive). A leader removing itself may be the
     * only node its removal can complete through: stopping it would leave no way out. */
    bool unprotected = !c->opts.pre_vote && !c->opts.check_quorum;
    if (op == CHANGE_REMOVE && id == at && unprotected)
        return;
    if (id || op == CHANGE_TRANSFER)
        cluster_change(c, at, op, id);
}

static bool roll(struct cluster *c, unsigned permille)
{
    return permille && cluster_rand_below(c, 1000) < permille;
}

/* restart_at of a node stopped for good. */
#define RETIRED UINT64_MAX

static void inject_faults(struct cluster *c, const struct profile *p, uint64_t *restart_at)
{
    if (roll(c, p->change_permille))
        change_membership(c);
    if (roll(c, p->net_change_permille))
        change_network(c);
    if (roll(c, p->crash_permille))
        crash_someone(c);
    if (roll(c, p->campaign_permille))
        cluster_campaign(c, random_node(c));
    if (roll(c, p->full_permille)) {
        raft_id id = cluster_rand_below(c, 2) ? cluster_leader(c) : random_node(c);
        if (id)
            cluster_set_electable(c, id, c->nodes[id].unelectable);
    }
    for (raft_id id = 1; id <= c->opts.n_nodes; id++) {
        if (cluster_is_up(c, id)) {
            restart_at[id] = 0;
        } else if (restart_at[id] == RETIRED) {
            continue;
        } else if (!restart_at[id]) {
            restart_at[id] = c->now + 1 + cluster_rand_below(c, p->max_downtime);
        } else if (c->now >= restart_at[id]) {
            cluster_restart(c, id);
            restart_at[id] = 0;
        }
    }
}

static void heal_everything(struct cluster *c, const uint64_t *restart_at)
{
    cluster_heal(c);
    c->net = (struct cluster_net){.delay_min = 1, .delay_max = 2};
    c->vote_crash_permille = 0;
    for (raft_id id = 1; id <= c->opts.n_nodes; id++) {
        c->nodes[id].crash_at = CRASH_NONE;
        cluster_set_electable(c, id, true);
        if (!cluster_is_up(c, id) && restart_at[id] != RETIRED)
            cluster_restart(c, id);
    }
    cluster_note(c, "faults healed", 0, 0);
}

/* A node being removed, or removed by a change it never learned committed, may still
 * campaign (it never received its removal, or did but not its commit: raft_remove).
 * Pre-vote (its log is behind: it loses) or check-quorum's lease (members ignore it) keeps
 * it from disrupting the cluster; with neither it would raise everyone's term forever (Raft
 * dissertation §4.2.3), so such a run stops it for good once the faults heal, as an operator
 * would. */
static void retire_disruptive(struct cluster *c, const struct cluster_opts *o, uint64_t *restart_at)
{
    if (o->pre_vote || o->check_quorum)
        return;
    for (raft_id id = 1; id <= c->opts.n_nodes; id++) {
        const struct raft *r = c->nodes[id].r;
        bool removed = !raft_configuration_find(&c->committed_conf, id) ||
                       (r && !raft_configuration_find(raft_configuration_of(r, NULL), id));
        if (r && cluster_may_campaign(r, id) && removed) {
            cluster_crash(c, id);
            restart_at[id] = RETIRED;
            cluster_note(c, "retired (removed, may still campaign)", id, 0);
        }
    }
}

/* A client writes (three times in four) or reads through ReadIndex. */
static void client_request(struct cluster *c)
{
    raft_id to = cluster_leader(c);
    /* Some requests go to arbitrary nodes, which must refuse them unless they lead. */
    if (!to || cluster_rand_below(c, 10) == 0)
        to = random_node(c);
    if (cluster_rand_below(c, 4))
        cluster_propose_cmd(c, to, NULL);
    else
        cluster_read(c, to, NULL);
}

static bool settled(const struct cluster *c, raft_id stable, uint64_t first_read)
{
    struct raft *r = c->nodes[stable].r;
    for (uint64_t ctx = first_read; ctx < c->n_reads; ctx++)
        if (!c->reads[ctx].index)
            return false;
    return cluster_stable_leader(c) == stable && raft_commit_of(r) == raft_last_index_of(r) &&
           cluster_converged(c);
}

/* A stable leader whose configuration is committed: a change still pending could yet move
 * the lead (a leader removing itself hands it over once the change commits). */
static raft_id stable_committed_leader(const struct cluster *c)
{
    raft_id l = cluster_stable_leader(c);
    raft_index at = 0;
    if (l)
        raft_configuration_of(c->nodes[l].r, &at);
    return l && at <= raft_commit_of(c->nodes[l].r) ? l : 0;
}

/* How far the members have stored and applied, together: it grows while any of them
 * catches up (a restarted leader commits nothing until a majority holds its log). */
static uint64_t members_progress(const struct cluster *c)
{
    uint64_t sum = 0;
    for (raft_id id = 1; id <= c->opts.n_nodes; id++)
        if (cluster_is_member(c, id))
            sum += c->nodes[id].applied + cluster_stored_last(c, id);
    return sum;
}

/* Once a leader is stable on the healed network nobody campaigns again: every node stays
 * in its term, whichever way its election timer or vote handling fails. */
static void check_terms_settled(struct cluster *c, raft_id stable, raft_term stable_term)
{
    for (raft_id id = 1; id <= c->opts.n_nodes && !c->failed; id++)
        if (cluster_is_member(c, id) && raft_term_of(c->nodes[id].r) != stable_term)
            cluster_fail(c, id,
                         "Liveness: n%" PRIu64 " is in term %" PRIu64 " after n%" PRIu64
                         " led term %" PRIu64 " on the healed network",
                         id, raft_term_of(c->nodes[id].r), stable, stable_term);
}

/* After the heal and the clients stop: within a bound that allows the slowest profile
 * (one entry per message, one message in flight, so one entry per round trip of at most
 * 4 ticks) to stream the backlog, everything proposed to the stable leader is applied on
 * every member of its (final, committed) configuration, voter or learner, and the leader
 * never changed. Removed nodes and spares never added owe nothing. */
static void check_final(struct cluster *c, raft_id stable, uint64_t first_cmd, uint64_t first_read)
{
    raft_index lowest = raft_last_index_of(c->nodes[stable].r);
    for (raft_id id = 1; id <= c->opts.n_nodes; id++)
        if (cluster_is_member(c, id) && c->nodes[id].applied < lowest)
            lowest = c->nodes[id].applied;
    uint64_t bound = QUIESCE + 5 * (raft_last_index_of(c->nodes[stable].r) - lowest);
    for (uint64_t t = 0; t < bound && !settled(c, stable, first_read) && !c->failed; t++)
        cluster_tick(c);
    if (c->failed)
        return;
    raft_id now_stable = cluster_stable_leader(c);
    if (now_stable != stable) {
        cluster_fail(c, 0,
                     "Liveness: leadership moved from n%" PRIu64 " to n%" PRIu64
                     " on a healed network",
                     stable, now_stable);
        return;
    }
    struct raft *r = c->nodes[stable].r;
    if (raft_commit_of(r) != raft_last_index_of(r)) {
        cluster_fail(c, stable,
                     "Liveness: leader n%" PRIu64 " commit %" PRIu64 " short of its last %" PRIu64
                     " after %" PRIu64 " quiet ticks",
                     stable, raft_commit_of(r), raft_last_index_of(r), bound);
        return;
    }
    for (uint64_t ctx = first_read; ctx < c->n_reads; ctx++)
        if (!c->reads[ctx].index) {
            cluster_fail(c, 0, "Liveness: read %" PRIu64 " asked after the heal never confirmed",
                         ctx);
            return;
        }
    for (uint64_t cmd = first_cmd; cmd < c->n_proposals; cmd++)
        if (!cluster_cmd_applied(c, cmd)) {
            cluster_fail(c, 0,
                         "Liveness: command %" PRIu64 " accepted after the heal was never applied",
                         cmd);
            return;
        }
    for (raft_id id = 1; id <= c->opts.n_nodes; id++)
        if (cluster_is_member(c, id) && c->nodes[id].applied != c->n_committed) {
            cluster_fail(c, id,
                         "Liveness: n%" PRIu64 " applied %" PRIu64 " of %zu committed entries "
                         "after %" PRIu64 " quiet ticks",
                         id, c->nodes[id].applied, c->n_committed, bound);
            return;
        }
}

/* A core that never returns would stall the whole run without a word: after WATCHDOG_SECS
 * on one seed, report it with its trace and stop. */
#define WATCHDOG_SECS 20
static struct cluster *watched;
static uint64_t watched_seed;

static void on_alarm(int sig)
{
    (void)sig;
    /* Not async-signal-safe, but the process is stuck inside the core, not in stdio, and
     * is about to exit: the report is worth the risk. */
    printf("seed %" PRIu64 " HUNG: no progress for %d s at tick %" PRIu64 "\n", watched_seed,
           WATCHDOG_SECS, watched->now);
    cluster_dump_trace(watched, stdout, TRACE_TAIL);
    fflush(stdout);
    _exit(3);
}

static void watch(struct cluster *c, uint64_t seed)
{
    watched = c;
    watched_seed = seed;
    if (c)
        signal(SIGALRM, on_alarm);
    alarm(c ? WATCHDOG_SECS : 0);
}

struct run_result {
    bool failed;
    uint64_t committed, elections;
    /* Membership changes and transfers: accepted, refused, configurations committed. */
    uint64_t accepted, refused, confs;
};

/* One seeded run. On failure prints the seed, the violation and the trace tail when loud. */
static struct run_result run_seed(uint64_t seed, const struct sim_opts *so, bool loud)
{
    struct cluster_opts o;
    struct profile p;
    draw_profile(seed, so->nodes, &o, &p);
    struct cluster *c;
    if (cluster_new(&o, &c) != RAFT_OK) {
        fprintf(stderr, "seed %" PRIu64 ": cannot create cluster\n", seed);
        return (struct run_result){.failed = true};
    }
    if (so->trace) {
        c->trace = stdout;
        printf(
            "seed %" PRIu64 ": nodes=%zu ticks=%u heartbeat=%u pre_vote=%d check_quorum=%d "
            "entries/msg=%zu inflight=%zu | drop=%u dup=%u delay<=%u long=%u crash=%u "
            "net=%u campaign=%u client=%u downtime<=%u batch=%u vote_crash=%u full=%u | snapshot "
            "every %u, "
            "margin %u, chunk %zu, chunks in flight %zu\n",
            seed, o.n_nodes, so->ticks, o.heartbeat_ticks, o.pre_vote, o.check_quorum,
            o.max_entries_per_msg, o.max_inflight_msgs, p.net.drop_permille, p.net.dup_permille,
            p.net.delay_max, p.net.long_delay_permille, p.crash_permille, p.net_change_permille,
            p.campaign_permille, p.client_permille, p.max_downtime, p.batch_permille,
            p.vote_crash_permille, p.full_permille, o.snapshot_every, o.compact_margin,
            o.snapshot_chunk_bytes, o.max_inflight_chunks);
    }
    c->net = p.net;
    c->batch_permille = p.batch_permille;
    c->vote_crash_permille = p.vote_crash_permille;
    watch(c, seed);
    unsigned heal_ticks = so->ticks / 4 > MIN_HEAL ? so->ticks / 4 : MIN_HEAL;
    uint64_t heal_at = so->ticks - heal_ticks;
    uint64_t restart_at[CLUSTER_MAX_NODES + 1] = {0};
    raft_id stable = 0, candidate = 0;
    raft_term stable_term = 0;
    uint64_t first_cmd_after_stable = 0, first_read_after_stable = 0, since = 0;
    uint64_t deadline = heal_at + LEADER_BOUND;
    uint64_t progress_seen = 0;
    for (uint64_t t = 0; (t < so->ticks || !stable) && !c->failed; t++) {
        if (t < heal_at)
            inject_faults(c, &p, restart_at);
        else if (t == heal_at)
            heal_everything(c, restart_at);
        else
            retire_disruptive(c, &o, restart_at);
        if (t < so->ticks && roll(c, p.client_permille))
            client_request(c);
        cluster_tick(c);
        if (t >= heal_at && !stable) {
            raft_id s = stable_committed_leader(c);
            if (s != candidate)
                since = t;
            candidate = s;
            /* A leader isolated until the heal may still step down (check-quorum), so
             * leadership counts as settled once it has held for a while, and once what
             * was sent before the heal has arrived (a retired node's last campaign). */
            if (candidate && t - since >= SETTLE &&
                t >= heal_at + p.net.delay_max + p.net.long_delay_max) {
                stable = candidate;
                stable_term = raft_term_of(c->nodes[stable].r);
                first_cmd_after_stable = c->n_proposals;
                first_read_after_stable = c->n_reads;
            }
            /* A leader all members follow may wait for its configuration to commit while a
             * voter promoted far behind (raft_config.promote_max_lag) catches up: that
             * wait lasts as long as members make progress. */
            uint64_t progress = members_progress(c);
            if (cluster_stable_leader(c) && progress > progress_seen)
                deadline = t + LEADER_BOUND;
            progress_seen = progress;
            if (!stable && t >= deadline)
                cluster_fail(c, 0,
                             "Liveness: no leader followed by all, its configuration committed, "
                             "within %d ticks of the heal or of the last commit",
                             LEADER_BOUND);
        }
    }
    if (!c->failed)
        check_final(c, stable, first_cmd_after_stable, first_read_after_stable);
    if (!c->failed)
        check_terms_settled(c, stable, stable_term);
    struct run_result res = {c->failed, c->n_committed,          c->stats_elections_won, 0,
                             0,         c->stats_confs_committed};
    for (int op = 0; op < CHANGE_KINDS; op++) {
        res.accepted += c->stats_changes_accepted[op];
        res.refused += c->stats_changes_refused[op];
    }
    if (c->failed && (loud || so->trace)) {
        printf("seed %" PRIu64 " FAILED at tick %" PRIu64 ": %s\n", seed, c->now, c->violation);
        cluster_dump_state(c, stdout);
        if (!so->trace) {
            printf("last %d events (replay: raft-sim --seed %" PRIu64 " --nodes %zu --ticks %u "
                   "--trace):\n",
                   TRACE_TAIL, seed, so->nodes, so->ticks);
            cluster_dump_trace(c, stdout, TRACE_TAIL);
        }
    } else if (c->failed) {
        printf("seed %" PRIu64 " FAILED at tick %" PRIu64 ": %s\n", seed, c->now, c->violation);
    } else if (so->count == 1) {
        printf("seed %" PRIu64 " ok: %zu entries committed, %" PRIu64 " elections won, %" PRIu64
               " snapshots taken, %" PRIu64 " installed; changes accepted/refused:",
               seed, c->n_committed, c->stats_elections_won, c->stats_snapshots_taken,
               c->stats_snapshots_installed);
        for (int op = 0; op < CHANGE_KINDS; op++)
            printf(" %s %" PRIu64 "/%" PRIu64, cluster_change_name((enum cluster_change)op),
                   c->stats_changes_accepted[op], c->stats_changes_refused[op]);
        printf(", %" PRIu64 " configurations committed\n", c->stats_confs_committed);
    }
    fflush(stdout);
    watch(NULL, 0);
    cluster_free(c);
    return res;
}

struct totals {
    uint64_t runs, failed, first_failed, committed, elections, accepted, refused, confs;
};

static void add_result(struct totals *t, const struct run_result *r)
{
    t->committed += r->committed;
    t->elections += r->elections;
    t->accepted += r->accepted;
    t->refused += r->refused;
    t->confs += r->confs;
}

static void run_range(uint64_t start, uint64_t stride, const struct sim_opts *so, struct totals *t)
{
    for (uint64_t s = start; s < so->start + so->count; s += stride) {
        struct run_result r = run_seed(s, so, t->failed == 0);
        t->runs++;
        add_result(t, &r);
        if (r.failed && !t->failed++)
            t->first_failed = s;
    }
}

/* Splits the seeds over forked workers, which report their totals through a pipe. */
static void run_parallel(const struct sim_opts *so, struct totals *t)
{
    int fds[2];
    if (so->jobs <= 1 || pipe(fds) != 0) {
        run_range(so->start, 1, so, t);
        return;
    }
    for (unsigned j = 0; j < so->jobs; j++) {
        fflush(stdout);
        if (fork() == 0) {
            struct totals mine = {0};
            close(fds[0]);
            run_range(so->start + j, so->jobs, so, &mine);
            ssize_t w = write(fds[1], &mine, sizeof mine);
            _exit(w == (ssize_t)sizeof mine ? 0 : 1);
        }
    }
    close(fds[1]);
    struct totals part;
    while (read(fds[0], &part, sizeof part) == (ssize_t)sizeof part) {
        t->runs += part.runs;
        t->committed += part.committed;
        t->elections += part.elections;
        t->accepted += part.accepted;
        t->refused += part.refused;
        t->confs += part.confs;
        if (part.failed && (!t->failed || part.first_failed < t->first_failed))
            t->first_failed = part.first_failed;
        t->failed += part.failed;
    }
    close(fds[0]);
    int status;
    while (wait(&status) > 0)
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            printf("raft-sim: a worker stopped early (hung or crashed; see its report above): "
                   "its seeds are not counted\n");
}

static int usage(void)
{
    fprintf(stderr, "usage: raft-sim (--seed S [--trace] | --seeds N [--start S] [--jobs J])\n"
                    "                [--nodes 3|5] [--ticks T]\n");
    return 2;
}

static bool parse_args(int argc, char **argv, struct sim_opts *so)
{
    bool single = false, many = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--trace")) {
            so->trace = true;
            continue;
        }
        if (!v)
            return false;
        unsigned long long n = strtoull(v, NULL, 10);
        i++;
        if (!strcmp(a, "--seed")) {
            so->start = n;
            so->count = 1;
            single = true;
        } else if (!strcmp(a, "--seeds")) {
            so->count = n;
            many = true;
        } else if (!strcmp(a, "--start")) {
            so->start = n;
        } else if (!strcmp(a, "--nodes")) {
            so->nodes = (size_t)n;
        } else if (!strcmp(a, "--ticks")) {
            so->ticks = (unsigned)n;
        } else if (!strcmp(a, "--jobs")) {
            so->jobs = (unsigned)n;
        } else {
            return false;
        }
    }
    return single != many && (so->nodes == 3 || so->nodes == 5) && so->ticks >= MIN_HEAL + 100 &&
           !(so->trace && many) && so->jobs >= 1;
}

int main(int argc, char **argv)
{
    struct sim_opts so = {.start = 1, .nodes = 3, .ticks = 2000, .jobs = 1};
    if (!parse_args(argc, argv, &so))
        return usage();
    if (so.count == 1)
        return run_seed(so.start, &so, true).failed ? 1 : 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct totals t = {0};
    run_parallel(&so, &t);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("raft-sim: %" PRIu64 " seeds from %" PRIu64 " (nodes=%zu ticks=%u jobs=%u): %" PRIu64
           " passed, %" PRIu64 " failed",
           t.runs, so.start, so.nodes, so.ticks, so.jobs, t.runs - t.failed, t.failed);
    if (t.failed)
        printf(", first failing seed %" PRIu64, t.first_failed);
    printf("; %.1f s, %.0f seeds/s; %.0f entries committed and %.1f elections per run; "
           "membership changes and transfers: %" PRIu64 " accepted, %" PRIu64 " refused, %" PRIu64
           " configurations committed\n",
           secs, secs > 0 ? (double)t.runs / secs : 0.0,
           t.runs ? (double)t.committed / t.runs : 0.0, t.runs ? (double)t.elections / t.runs : 0.0,
           t.accepted, t.refused, t.confs);
    return t.failed || t.runs != so.count ? 1 : 0;
}
