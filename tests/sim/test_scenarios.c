/*
 * Named, deterministic cluster scenarios. Each drives the fixture into one situation Raft
 * must survive and asserts the outcome; the fixture checks every safety property on the
 * way (a violation fails the test through cluster.failed).
 */
#include <stdlib.h>

#include "cluster.h"
#include "test.h"

#define MAX_CMDS 400

static struct cluster *make_cluster(size_t nodes, bool check_quorum, uint64_t seed)
{
    struct cluster_opts o;
    cluster_opts_defaults(&o);
    o.n_nodes = nodes;
    o.seed = seed;
    o.check_quorum = check_quorum;
    struct cluster *c = NULL;
    if (cluster_new(&o, &c) != RAFT_OK)
        return NULL;
    if (getenv("SIM_TRACE"))
        c->trace = stderr;
    return c;
}

static void report(const struct cluster *c)
{
    if (c->failed) {
        fprintf(stderr, "violation: %s\n", c->violation);
        cluster_dump_trace(c, stderr, 60);
    }
}

static bool has_leader(const struct cluster *c)
{
    return cluster_leader(c) != 0;
}

static bool settled(const struct cluster *c)
{
    raft_id l = cluster_stable_leader(c);
    if (!l || !cluster_converged(c))
        return false;
    const struct raft *r = c->nodes[l].r;
    return raft_commit_of(r) == raft_last_index_of(r) && c->nodes[l].applied == raft_commit_of(r);
}

/* Ticks until some node other than the excluded one leads in a term above min_term. */
static raft_id await_other_leader(struct cluster *c, raft_id excluded, raft_term min_term)
{
    for (int i = 0; i < 1000; i++) {
        for (raft_id id = 1; id <= c->opts.n_nodes; id++) {
            const struct raft *r = c->nodes[id].r;
            if (id != excluded && r && raft_role_of(r) == RAFT_LEADER && raft_term_of(r) > min_term)
                return id;
        }
        cluster_tick(c);
    }
    return 0;
}

/* Proposes n commands at the leader and delivers until they are replicated. */
static bool propose_n(struct cluster *c, raft_id leader, size_t n, uint64_t *cmds)
{
    for (size_t i = 0; i < n; i++)
        if (cluster_propose_cmd(c, leader, &cmds[i]) != RAFT_OK)
            return false;
    cluster_deliver_all(c);
    return true;
}

/* Logs of all live nodes hold the same terms at every index up to upto. */
static bool logs_agree(const struct cluster *c, raft_index upto)
{
    for (raft_id id = 2; id <= c->opts.n_nodes; id++)
        for (raft_index i = 1; i <= upto; i++)
            if (cluster_stored_term(c, id, i) != cluster_stored_term(c, 1, i))
                return false;
    return true;
}

TEST(reordering_loss_and_duplication_still_commit)
{
    struct cluster *c = make_cluster(5, true, 11);
    CHECK(c);
    c->net = (struct cluster_net){.drop_permille = 200,
                                  .dup_permille = 150,
                                  .delay_min = 1,
                                  .delay_max = 8,
                                  .long_delay_permille = 30,
                                  .long_delay_max = 40};
    size_t accepted = 0, applied_under_faults = 0;
    uint64_t cmds[MAX_CMDS];
    for (int round = 0; round < 3000 && accepted < 150; round++) {
        raft_id l = cluster_leader(c);
        if (l && cluster_propose_cmd(c, l, &cmds[accepted]) == RAFT_OK)
            accepted++;
        cluster_ticks(c, 2);
    }
    for (size_t i = 0; i < accepted; i++)
        applied_under_faults += cluster_cmd_applied(c, cmds[i]);
    /* The faults really happened... */
    CHECK(c->stats_dropped > 100);
    CHECK(c->stats_duplicated > 100);
    CHECK(c->stats_reordered > 100);
    /* ...and the cluster still made progress through them. */
    CHECK_EQ(accepted, 150);
    CHECK(applied_under_faults >= 100);
    c->net = (struct cluster_net){.delay_min = 1, .delay_max = 1};
    CHECK(cluster_run_until(c, settled, 2000));
    report(c);
    CHECK(!c->failed);
    CHECK(c->n_committed >= applied_under_faults);
    CHECK(logs_agree(c, c->n_committed));
    cluster_free(c);
}

TEST(stale_leader_steps_down_and_loses_uncommitted_entries)
{
    /* Without check-quorum, so that the cut-off leader keeps believing it leads. */
    struct cluster *c = make_cluster(5, false, 12);
    CHECK(c);
    cluster_campaign(c, 1);
    cluster_deliver_all(c);
    CHECK_EQ(cluster_leader(c), 1);
    uint64_t committed[5], stale[3], fresh[4];
    CHECK(propose_n(c, 1, 5, committed));
    for (int i = 0; i < 5; i++)
        CHECK(cluster_cmd_applied(c, committed[i]));
    raft_term old_term = raft_term_of(c->nodes[1].r);
    raft_id cut[] = {1};
    cluster_partition(c, cut, 1);
    CHECK(propose_n(c, 1, 3, stale));
    raft_index stale_first = c->proposals[stale[0]].index;
    raft_index stale_last = c->proposals[stale[2]].index;
    raft_id l = await_other_leader(c, 1, old_term);
    CHECK(l);
    raft_term new_term = raft_term_of(c->nodes[l].r);
    CHECK(new_term > old_term);
    /* Two leaders at once, in different terms: the old one does not know yet. */
    CHECK_EQ(raft_role_of(c->nodes[1].r), RAFT_LEADER);
    CHECK(propose_n(c, l, 4, fresh));
    for (int i = 0; i < 4; i++)
        CHECK(cluster_cmd_applied(c, fresh[i]));
    cluster_heal(c);
    CHECK(cluster_run_until(c, settled, 500));
    report(c);
    CHECK(!c->failed);
    CHECK_EQ(raft_role_of(c->nodes[1].r), RAFT_FOLLOWER);
    CHECK(raft_term_of(c->nodes[1].r) >= new_term);
    for (int i = 0; i < 3; i++)
        CHECK(!cluster_cmd_applied(c, stale[i]));
    /* The old leader's own storage no longer holds its term-old_term suffix. */
    for (raft_index i = stale_first; i <= stale_last; i++)
        CHECK(cluster_stored_term(c, 1, i) > old_term);
    CHECK(c->stats_truncations >= 1);
    CHECK(logs_agree(c, c->n_committed));
    cluster_free(c);
}

TEST(conflicting_suffixes_are_truncated_by_the_new_leader)
{
    struct cluster *c = make_cluster(5, false, 13);
    CHECK(c);
    cluster_campaign(c, 1);
    cluster_deliver_all(c);
    CHECK_EQ(cluster_leader(c), 1);
    uint64_t base[3], minority[6], majority[2];
    CHECK(propose_n(c, 1, 3, base));
    raft_term t1 = raft_term_of(c->nodes[1].r);
    raft_id side[] = {1, 2};
    cluster_partition(c, side, 2);
    /* Nodes 1 and 2 grow a suffix that can never commit. */
    CHECK(propose_n(c, 1, 6, minority));
    raft_index first = c->proposals[minority[0]].index, last = c->proposals[minority[5]].index;
    for (raft_index i = first; i <= last; i++) {
        CHECK_EQ(cluster_stored_term(c, 1, i), t1);
        CHECK_EQ(cluster_stored_term(c, 2, i), t1);
    }
    raft_id l = await_other_leader(c, 1, t1);
    CHECK(l >= 3);
    CHECK(propose_n(c, l, 2, majority));
    uint64_t truncations_before = c->stats_truncations;
    cluster_heal(c);
    CHECK(cluster_run_until(c, settled, 500));
    report(c);
    CHECK(!c->failed);
    /* Both minority nodes threw their suffix away and hold the new leader's entries. */
    CHECK(c->stats_truncations >= truncations_before + 2);
    for (int i = 0; i < 6; i++)
        CHECK(!cluster_cmd_applied(c, minority[i]));
    for (int i = 0; i < 2; i++)
        CHECK(cluster_cmd_applied(c, majority[i]));
    for (raft_index i = first; i <= cluster_stored_last(c, l); i++)
        CHECK(cluster_stored_term(c, 1, i) > t1 && cluster_stored_term(c, 2, i) > t1);
    CHECK_EQ(cluster_stored_last(c, 1), cluster_stored_last(c, l));
    CHECK(logs_agree(c, cluster_stored_last(c, l)));
    cluster_free(c);
}

TEST(node_offline_while_entries_commit_catches_up_on_rejoin)
{
    struct cluster *c = make_cluster(3, true, 14);
    CHECK(c);
    CHECK(cluster_run_until(c, has_leader, 200));
    raft_id l = cluster_leader(c);
    raft_id away = l == 3 ? 2 : 3;
    uint64_t cmds[MAX_CMDS];
    CHECK(propose_n(c, l, 5, cmds));
    raft_index away_last = cluster_stored_last(c, away);
    cluster_crash(c, away);
    size_t n = 0;
    while (n < 300) {
        CHECK_EQ(cluster_leader(c), l);
        CHECK_EQ(cluster_propose_cmd(c, l, &cmds[n]), RAFT_OK);
        n++;
        cluster_ticks(c, 1);
    }
    CHECK(cluster_run_until(c, cluster_converged, 200));
    for (size_t i = 0; i < n; i++)
        CHECK(cluster_cmd_applied(c, cmds[i]));
    CHECK_EQ(cluster_stored_last(c, away), away_last);
    cluster_ticks(c, 50); /* a delayed rejoin */
    CHECK_EQ(cluster_restart(c, away), RAFT_OK);
    CHECK(cluster_run_until(c, settled, 1000));
    report(c);
    CHECK(!c->failed);
    /* It replayed what it missed: same log, same applied sequence, same state. */
    CHECK_EQ(cluster_stored_last(c, away), cluster_stored_last(c, l));
    CHECK(logs_agree(c, cluster_stored_last(c, l)));
    CHECK_EQ(c->nodes[away].applied, c->nodes[l].applied);
    CHECK_EQ(c->nodes[away].sm_hash, c->nodes[l].sm_hash);
    CHECK(c->nodes[away].applied >= away_last + 300);
    cluster_free(c);
}

TEST(leader_crash_before_persisting_its_own_entry_commits_through_followers)
{
    struct cluster *c = make_cluster(3, true, 15);
    CHECK(c);
    cluster_campaign(c, 1);
    cluster_deliver_all(c);
    CHECK_EQ(cluster_leader(c), 1);
    uint64_t warm[2], cmd;
    CHECK(propose_n(c, 1, 2, warm));
    raft_index stored = cluster_stored_last(c, 1);
    /* The leader sends its AppendEntries, then dies before its own write. */
    cluster_crash_at(c, 1, CRASH_BEFORE_PERSIST);
    CHECK_EQ(cluster_propose_cmd(c, 1, &cmd), RAFT_OK);
    CHECK(!cluster_is_up(c, 1));
    CHECK_EQ(cluster_stored_last(c, 1), stored);
    cluster_deliver_all(c);
    /* Both followers hold it: a majority, so the next leader must carry it. */
    raft_index at = c->proposals[cmd].index;
    CHECK_EQ(cluster_stored_term(c, 2, at), c->proposals[cmd].term);
    CHECK_EQ(cluster_stored_term(c, 3, at), c->proposals[cmd].term);
    CHECK(await_other_leader(c, 1, c->proposals[cmd].term));
    CHECK_EQ(cluster_restart(c, 1), RAFT_OK);
    CHECK(cluster_run_until(c, settled, 1000));
    report(c);
    CHECK(!c->failed);
    CHECK(cluster_cmd_applied(c, cmd));
    CHECK_EQ(c->nodes[1].applied, c->n_committed);
    CHECK(logs_agree(c, c->n_committed));
    cluster_free(c);
}

static bool has_stable_leader(const struct cluster *c)
{
    return cluster_stable_leader(c) != 0;
}

/* Elections and pre-votes started so far, over all nodes. */
static uint64_t campaigns(const struct cluster *c)
{
    uint64_t n = 0;
    for (raft_id id = 1; id <= c->opts.n_nodes; id++) {
        struct raft_stats st;
        raft_stats_of(c->nodes[id].r, &st);
        n += st.elections_started + st.pre_votes_started;
    }
    return n;
}

/* Five nodes started together over the default network (one fixed delay, no faults), run
 * until they have a stable leader; NULL if they find none within 20 election timeouts. */
static struct cluster *five_with_a_leader(bool pre_vote, uint64_t seed)
{
    struct cluster_opts o;
    cluster_opts_defaults(&o);
    o.n_nodes = 5;
    o.seed = seed;
    o.pre_vote = pre_vote;
    struct cluster *c = NULL;
    if (cluster_new(&o, &c) != RAFT_OK)
        return NULL;
    if (!cluster_run_until(c, has_stable_leader, 20 * o.election_ticks_max)) {
        report(c);
        cluster_free(c);
        return NULL;
    }
    return c;
}

/* Raft §5.2: randomized election timeouts break the symmetry of nodes that start together
 * over a network with one fixed delay; with equal timeouts every round splits the vote. */
TEST(nodes_started_together_elect_a_leader)
{
    for (int pre_vote = 0; pre_vote <= 1; pre_vote++) {
        struct cluster *c = five_with_a_leader(pre_vote, 21);
        CHECK(c);
        report(c);
        CHECK(!c->failed);
        cluster_free(c);
    }
}

/* Heartbeats reset every follower's election timer: a cluster whose leader is healthy
 * holds no election and no pre-vote, however long it runs. */
TEST(a_healthy_cluster_holds_no_elections)
{
    for (int pre_vote = 0; pre_vote <= 1; pre_vote++) {
        struct cluster *c = five_with_a_leader(pre_vote, 22);
        CHECK(c);
        raft_id leader = cluster_stable_leader(c);
        raft_term term = raft_term_of(c->nodes[leader].r);
        uint64_t before = campaigns(c);
        for (unsigned t = 0; t < 100 * c->opts.election_ticks_max; t++) {
            if (t % 7 == 0)
                cluster_propose_cmd(c, leader, NULL);
            cluster_tick(c);
        }
        report(c);
        CHECK(!c->failed);
        CHECK_EQ(cluster_stable_leader(c), leader);
        CHECK_EQ(raft_term_of(c->nodes[leader].r), term);
        CHECK_EQ(campaigns(c), before);
        cluster_free(c);
    }
}

/* ---- membership (Raft dissertation chapter 4) ---- */

/* A cluster of voters voters and spares spares (empty bootstrap), with a leader (node 1). */
static struct cluster *with_spares(size_t voters, size_t spares, uint64_t seed)
{
    struct cluster_opts o;
    cluster_opts_defaults(&o);
    o.n_nodes = voters + spares;
    o.n_spares = spares;
    o.seed = seed;
    struct cluster *c = NULL;
    if (cluster_new(&o, &c) != RAFT_OK)
        return NULL;
    if (getenv("SIM_TRACE"))
        c->trace = stderr;
    cluster_campaign(c, 1);
    cluster_deliver_all(c);
    return c;
}

/* The voters of n's latest configuration, as a bit set of ids. */
static unsigned voters_of(const struct cluster *c, raft_id id)
{
    const struct raft_configuration *conf = raft_configuration_of(c->nodes[id].r, NULL);
    unsigned set = 0;
    for (size_t i = 0; i < conf->n; i++)
        if (conf->members[i].role == RAFT_VOTER)
            set |= 1u << conf->members[i].id;
    return set;
}

static bool leader_configuration_committed(const struct cluster *c)
{
    raft_id l = cluster_stable_leader(c);
    raft_index at;
    if (!l)
        return false;
    raft_configuration_of(c->nodes[l].r, &at);
    return at <= raft_commit_of(c->nodes[l].r) && cluster_converged(c);
}

/* Asks the leader for a change and waits until it is committed and applied everywhere. */
static bool change_and_commit(struct cluster *c, enum cluster_change op, raft_id id)
{
    if (cluster_change(c, cluster_leader(c), op, id) != RAFT_OK)
        return false;
    return cluster_run_until(c, leader_configuration_committed, 1000);
}

/* §4.2.1: a new server joins as a learner, catches up without counting, and votes only
 * once it is close; meanwhile a voter is down and the cluster still commits. */
TEST(learner_catches_up_and_is_promoted_while_a_voter_is_down)
{
    struct cluster *c = with_spares(3, 1, 31);
    CHECK(c);
    CHECK_EQ(cluster_leader(c), 1);
    uint64_t cmds[40];
    CHECK(propose_n(c, 1, 40, cmds));
    cluster_crash(c, 3);
    CHECK(change_and_commit(c, CHANGE_ADD, 4));
    CHECK_EQ(voters_of(c, 1), 0xeu); /* 1, 2, 3: the learner does not vote */
    CHECK_EQ(c->nodes[4].applied, c->nodes[1].applied);
    CHECK(change_and_commit(c, CHANGE_PROMOTE, 4));
    CHECK_EQ(voters_of(c, 4), 0x1eu);
    /* 3 of the 4 voters are up: still a majority. */
    uint64_t more[5];
    CHECK(propose_n(c, 1, 5, more));
    cluster_ticks(c, 10);
    for (int i = 0; i < 5; i++)
        CHECK(cluster_cmd_applied(c, more[i]));
    CHECK_EQ(cluster_restart(c, 3), RAFT_OK);
    CHECK(cluster_run_until(c, settled, 1000));
    report(c);
    CHECK(!c->failed);
    CHECK_EQ(voters_of(c, 3), 0x1eu);
    cluster_free(c);
}

/* §4.1: one server at a time, each change committed before the next. */
TEST(grow_three_to_five_one_server_at_a_time)
{
    struct cluster *c = with_spares(3, 2, 32);
    CHECK(c);
    for (raft_id id = 4; id <= 5; id++) {
        CHECK(change_and_commit(c, CHANGE_ADD, id));
        /* The next change waits for this one. */
        CHECK_EQ(cluster_change(c, 1, CHANGE_PROMOTE, id), RAFT_OK);
        CHECK_EQ(cluster_change(c, 1, CHANGE_PROMOTE, id), RAFT_EBUSY);
        CHECK(cluster_run_until(c, leader_configuration_committed, 1000));
    }
    for (raft_id id = 1; id <= 5; id++)
        CHECK_EQ(voters_of(c, id), 0x3eu);
    CHECK_EQ(cluster_leader(c), 1);
    report(c);
    CHECK(!c->failed);
    cluster_free(c);
}

/* §4.2: a crashed voter is replaced: a new server joins and is promoted, then the dead one
 * is removed; a majority of the new configuration goes on without it. */
TEST(crashed_voter_is_replaced)
{
    struct cluster *c = with_spares(3, 1, 33);
    CHECK(c);
    cluster_crash(c, 2);
    CHECK(change_and_commit(c, CHANGE_ADD, 4));
    CHECK(change_and_commit(c, CHANGE_PROMOTE, 4));
    CHECK(change_and_commit(c, CHANGE_REMOVE, 2));
    CHECK_EQ(voters_of(c, 1), 0x1au); /* 1, 3, 4 */
    /* With 2 still counted, losing 3 too would have stopped every commit. */
    cluster_crash(c, 3);
    uint64_t cmd;
    CHECK_EQ(cluster_propose_cmd(c, 1, &cmd), RAFT_OK);
    cluster_ticks(c, 5);
    CHECK(cluster_cmd_applied(c, cmd));
    report(c);
    CHECK(!c->failed);
    cluster_free(c);
}

/* §4.2.2 and §3.10: a leader that removes itself leads until the change commits, without
 * counting itself, then hands over with TimeoutNow: the next leader is elected well within
 * one election timeout. */
TEST(leader_removes_itself_and_the_cluster_elects_another_without_waiting)
{
    struct cluster *c = with_spares(3, 0, 34);
    CHECK(c);
    uint64_t cmds[5];
    CHECK(propose_n(c, 1, 5, cmds));
    raft_term term = raft_term_of(c->nodes[1].r);
    CHECK_EQ(cluster_change(c, 1, CHANGE_REMOVE, 1), RAFT_OK);
    CHECK_EQ(raft_role_of(c->nodes[1].r), RAFT_LEADER);
    uint64_t asked = c->now;
    raft_id l = await_other_leader(c, 1, term);
    CHECK(l == 2 || l == 3);
    CHECK(c->now - asked < c->opts.election_ticks_min);
    CHECK_EQ(raft_role_of(c->nodes[1].r), RAFT_FOLLOWER);
    CHECK_EQ(voters_of(c, l), 0xcu);
    CHECK(cluster_run_until(c, settled, 500));
    report(c);
    CHECK(!c->failed);
    cluster_free(c);
}

/* §4.2.3: a removed server that never learns of its removal times out and campaigns; with
 * pre-vote (its log lacks the removal) and check-quorum's lease it never disrupts the
 * cluster: no member adopts its term, the leader stays. */
TEST(removed_node_left_running_does_not_disrupt_the_cluster)
{
    struct cluster *c = with_spares(3, 0, 35);
    CHECK(c);
    raft_id away[] = {3};
    cluster_partition(c, away, 1);
    CHECK(change_and_commit(c, CHANGE_REMOVE, 3));
    raft_term term = raft_term_of(c->nodes[1].r);
    CHECK_EQ(voters_of(c, 3), 0xeu); /* it still counts itself a voter */
    cluster_heal(c);
    uint64_t cmd;
    for (unsigned t = 0; t < 50 * c->opts.election_ticks_max; t++) {
        if (t % 11 == 0)
            CHECK_EQ(cluster_propose_cmd(c, 1, &cmd), RAFT_OK);
        cluster_tick(c);
    }
    struct raft_stats st;
    raft_stats_of(c->nodes[3].r, &st);
    CHECK(st.pre_votes_started > 10);
    CHECK_EQ(cluster_stable_leader(c), 1);
    CHECK_EQ(raft_term_of(c->nodes[1].r), term);
    CHECK_EQ(raft_term_of(c->nodes[2].r), term);
    CHECK(cluster_run_until(c, settled, 500));
    CHECK(c->nodes[3].applied < c->nodes[1].applied);
    report(c);
    CHECK(!c->failed);
    cluster_free(c);
}

/* §4.1: a configuration entry that a new leader truncates away rolls its holders back to
 * the configuration before it. */
TEST(truncated_configuration_entry_rolls_back_the_configuration)
{
    struct cluster *c = with_spares(5, 0, 36);
    CHECK(c);
    uint64_t base[2];
    CHECK(propose_n(c, 1, 2, base));
    raft_term t1 = raft_term_of(c->nodes[1].r);
    raft_id side[] = {1, 2};
    cluster_partition(c, side, 2);
    CHECK_EQ(cluster_change(c, 1, CHANGE_REMOVE, 5), RAFT_OK);
    cluster_deliver_all(c);
    CHECK_EQ(voters_of(c, 2), 0x1eu); /* 1..4: uses it uncommitted */
    CHECK(await_other_leader(c, 1, t1) >= 3);
    cluster_heal(c);
    CHECK(cluster_run_until(c, settled, 1000));
    report(c);
    CHECK(!c->failed);
    for (raft_id id = 1; id <= 5; id++)
        CHECK_EQ(voters_of(c, id), 0x3eu);
    cluster_free(c);
}

/* §3.10: the leader brings a lagging target up to date before TimeoutNow. */
TEST(transfer_to_a_lagging_voter_completes_once_it_catches_up)
{
    struct cluster *c = with_spares(3, 0, 37);
    CHECK(c);
    raft_id away[] = {3};
    cluster_partition(c, away, 1);
    uint64_t cmds[30];
    CHECK(propose_n(c, 1, 30, cmds));
    CHECK(cluster_stored_last(c, 3) < cluster_stored_last(c, 1));
    cluster_heal(c);
    CHECK_EQ(cluster_change(c, 1, CHANGE_TRANSFER, 3), RAFT_OK);
    CHECK_EQ(cluster_propose_cmd(c, 1, NULL), RAFT_EBUSY);
    CHECK_EQ(await_other_leader(c, 1, raft_term_of(c->nodes[1].r)), 3);
    CHECK(cluster_run_until(c, settled, 500));
    report(c);
    CHECK(!c->failed);
    cluster_free(c);
}

/* §3.10: a transfer that does not complete within an election timeout is abandoned and
 * the leader takes proposals again. */
TEST(abandoned_transfer_resumes_proposals)
{
    struct cluster *c = with_spares(3, 0, 38);
    CHECK(c);
    cluster_crash(c, 3);
    CHECK_EQ(cluster_change(c, 1, CHANGE_TRANSFER, 3), RAFT_OK);
    CHECK_EQ(cluster_propose_cmd(c, 1, NULL), RAFT_EBUSY);
    CHECK_EQ(cluster_change(c, 1, CHANGE_TRANSFER, 2), RAFT_EBUSY);
    cluster_ticks(c, c->opts.election_ticks_min);
    CHECK_EQ(cluster_leader(c), 1);
    uint64_t cmd;
    CHECK_EQ(cluster_propose_cmd(c, 1, &cmd), RAFT_OK);
    cluster_ticks(c, 5);
    CHECK(cluster_cmd_applied(c, cmd));
    report(c);
    CHECK(!c->failed);
    cluster_free(c);
}

/* A learner added after the log was compacted gets a snapshot, and with it the
 * configuration at its index, which it keeps across a restart. */
TEST(snapshot_carries_the_configuration_to_a_learner_that_joins_after_compaction)
{
    struct cluster_opts o;
    cluster_opts_defaults(&o);
    o.n_nodes = 4;
    o.n_spares = 1;
    o.seed = 39;
    o.snapshot_every = 5;
    struct cluster *c = NULL;
    CHECK_EQ(cluster_new(&o, &c), RAFT_OK);
    cluster_campaign(c, 1);
    cluster_deliver_all(c);
    uint64_t cmds[30];
    CHECK(propose_n(c, 1, 30, cmds));
    CHECK(raft_first_index_of(c->nodes[1].r) > 1);
    CHECK(change_and_commit(c, CHANGE_ADD, 4));
    CHECK(c->stats_snapshots_installed >= 1);
    CHECK(c->nodes[4].snap.meta.index > 0);
    CHECK_EQ(c->nodes[4].snap_conf.n, 3); /* taken before it joined: 1, 2, 3 */
    cluster_crash(c, 4);
    CHECK_EQ(cluster_restart(c, 4), RAFT_OK);
    CHECK_EQ(raft_configuration_of(c->nodes[4].r, NULL)->n, 4);
    CHECK(change_and_commit(c, CHANGE_PROMOTE, 4));
    CHECK_EQ(voters_of(c, 4), 0x1eu);
    report(c);
    CHECK(!c->failed);
    cluster_free(c);
}

TEST_MAIN(TEST_REF(reordering_loss_and_duplication_still_commit),
          TEST_REF(nodes_started_together_elect_a_leader),
          TEST_REF(a_healthy_cluster_holds_no_elections),
          TEST_REF(stale_leader_steps_down_and_loses_uncommitted_entries),
          TEST_REF(conflicting_suffixes_are_truncated_by_the_new_leader),
          TEST_REF(node_offline_while_entries_commit_catches_up_on_rejoin),
          TEST_REF(leader_crash_before_persisting_its_own_entry_commits_through_followers),
          TEST_REF(learner_catches_up_and_is_promoted_while_a_voter_is_down),
          TEST_REF(grow_three_to_five_one_server_at_a_time), TEST_REF(crashed_voter_is_replaced),
          TEST_REF(leader_removes_itself_and_the_cluster_elects_another_without_waiting),
          TEST_REF(removed_node_left_running_does_not_disrupt_the_cluster),
          TEST_REF(truncated_configuration_entry_rolls_back_the_configuration),
          TEST_REF(transfer_to_a_lagging_voter_completes_once_it_catches_up),
          TEST_REF(abandoned_transfer_resumes_proposals),
          TEST_REF(snapshot_carries_the_configuration_to_a_learner_that_joins_after_compaction))
