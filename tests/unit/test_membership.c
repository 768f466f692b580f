/*
 * Membership changes (Raft dissertation chapter 4): configurations in the log, learners,
 * single-server changes and their safety rules, and the encoding of a configuration.
 */
#include <stdlib.h>

#include "fixture.h"

/* Node 1 leads "1 2 l3" in term 2, its no-op (index 2 after one restored entry) committed
 * with node 2. */
static struct fx *leader_with_learner(const struct fx_opts *extra)
{
    static struct fx_conf b;
    struct fx_opts o = extra ? *extra : (struct fx_opts){0};
    o.term = 1;
    o.log = (raft_term[]){1};
    o.n_log = 1;
    o.bootstrap = fx_conf(&b, "1 2 l3");
    struct fx *f = fx_new(1, &o, NULL);
    if (!f || !fx_elect(f))
        return NULL;
    fx_append_ok(f, 2, raft_last_index_of(f->r));
    fx_clear(f);
    return f;
}

/* §4.2.1: learners "receive log entries but are not considered for majorities". */
TEST(learner_receives_entries_but_is_not_counted_for_commit)
{
    struct fx *f = leader_with_learner(NULL);
    CHECK(f);
    fx_append_ok(f, 3, 2); /* its probe matched: entries stream to it now */
    raft_index index;
    CHECK_EQ(fx_propose(f, "x", &index), RAFT_OK);
    CHECK(fx_count_appends_with_entries(f, 3) > 0);
    fx_append_ok(f, 3, index);
    CHECK_EQ(raft_commit_of(f->r), index - 1);
    fx_append_ok(f, 2, index);
    CHECK_EQ(raft_commit_of(f->r), index);
    FX_CHECK_CONTRACT(f);
}

TEST(learner_never_campaigns)
{
    struct fx_conf b;
    struct fx *f = fx_new(3, &(struct fx_opts){.bootstrap = fx_conf(&b, "1 2 l3")}, NULL);
    CHECK(f);
    fx_tick(f, 10 * FX_ELECTION_MAX);
    fx_campaign(f);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    CHECK_EQ(fx_count(f, 0, RAFT_MSG_REQUEST_VOTE), 0);
    CHECK_EQ(fx_stats(f).pre_votes_started + fx_stats(f).elections_started, 0);
    FX_CHECK_CONTRACT(f);
}

/* A candidate counts the votes of its configuration's voters only. */
TEST(learner_vote_does_not_elect)
{
    struct fx_conf b;
    struct fx *f = fx_new(
        1, &(struct fx_opts){.bootstrap = fx_conf(&b, "1 2 3 l4"), .no_pre_vote = true}, NULL);
    CHECK(f);
    fx_campaign(f);
    CHECK_EQ(fx_count(f, 4, RAFT_MSG_REQUEST_VOTE), 0);
    fx_vote_resp(f, 4, raft_term_of(f->r), true, false);
    CHECK_EQ(raft_role_of(f->r), RAFT_CANDIDATE);
    fx_vote_resp(f, 2, raft_term_of(f->r), true, false);
    CHECK_EQ(raft_role_of(f->r), RAFT_LEADER);
    FX_CHECK_CONTRACT(f);
}

/* raft.h: a joining node starts with no configuration; it must not disrupt the cluster,
 * and follows whoever leads it, whom it cannot know yet. */
TEST(node_with_empty_bootstrap_never_campaigns_and_follows_a_leader_it_did_not_know)
{
    struct fx_conf b;
    struct fx *f = fx_new(4, &(struct fx_opts){.bootstrap = fx_conf(&b, "")}, NULL);
    CHECK(f);
    fx_tick(f, 10 * FX_ELECTION_MAX);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    CHECK_EQ(fx_count(f, 0, RAFT_MSG_REQUEST_VOTE), 0);
    uint8_t buf[256];
    struct raft_entry e = fx_conf_entry(2, 1, "1 2 3 l4", buf, sizeof buf);
    CHECK_EQ(fx_append_entries(f, 1, 2, 0, 0, 0, &e, 1), RAFT_OK);
    CHECK_EQ(raft_leader_of(f->r), 1);
    const struct fx_msg *ack = fx_last(f, 1, RAFT_MSG_APPEND_RESP);
    CHECK(ack && ack->m.append_resp.success && ack->m.append_resp.index == 1);
    CHECK(fx_conf_is(f, "1 2 3 l4"));
    CHECK_EQ(f->conf_index, 1);
    CHECK_EQ(f->conf_n, 4);
    fx_tick(f, 10 * FX_ELECTION_MAX); /* still a learner */
    CHECK_EQ(fx_count(f, 0, RAFT_MSG_REQUEST_VOTE), 0);
    FX_CHECK_CONTRACT(f);
}

/* §4.1: a follower whose configuration is older than the leader's must still follow it. */
TEST(follower_accepts_appends_from_a_leader_not_in_its_configuration)
{
    struct fx *f = fx_new(2, NULL, NULL);
    CHECK(f);
    CHECK_EQ(fx_append(f, 5, 2, 0, 0, 0, (raft_term[]){2}, 1), RAFT_OK);
    CHECK_EQ(raft_leader_of(f->r), 5);
    CHECK_EQ(raft_last_index_of(f->r), 1);
    const struct fx_msg *ack = fx_last(f, 5, RAFT_MSG_APPEND_RESP);
    CHECK(ack && ack->m.append_resp.success);
    FX_CHECK_CONTRACT(f);
}

/* §4.1: "a server always uses the latest configuration in its log, regardless of whether
 * the entry is committed". */
TEST(node_uses_an_uncommitted_configuration_at_once)
{
    struct fx *f = fx_new(2, NULL, NULL);
    CHECK(f);
    uint8_t buf[256];
    struct raft_entry e = fx_conf_entry(2, 1, "1 2 3 l4", buf, sizeof buf);
    CHECK_EQ(fx_append_entries(f, 1, 2, 0, 0, 0, &e, 1), RAFT_OK);
    CHECK_EQ(raft_commit_of(f->r), 0);
    raft_index index;
    raft_configuration_of(f->r, &index);
    CHECK_EQ(index, 1);
    CHECK(fx_conf_is(f, "1 2 3 l4"));

    /* The leader too: it replicates to a learner from the moment it appends it. */
    struct fx *l = fx_leader_of_three();
    CHECK(l);
    struct raft_member m = {.id = 4, .peer_address = "p4", .client_address = "c4"};
    CHECK_EQ(raft_add_learner(l->r, &m, &index, NULL), RAFT_OK);
    fx_drain(l);
    CHECK(fx_conf_is(l, "1 2 3 l4"));
    CHECK(fx_count(l, 4, RAFT_MSG_APPEND) > 0);
    CHECK_EQ(fx_stats(l).configuration_changes, 1);
    FX_CHECK_CONTRACT(f);
    FX_CHECK_CONTRACT(l);
}

/* §4.1: "a log entry for a configuration change may be removed (if leadership changes);
 * in this case, a server must be prepared to fall back to the previous configuration". */
TEST(truncated_configuration_entry_rolls_back_to_the_previous_one)
{
    struct fx *f = fx_new(2, NULL, NULL);
    CHECK(f);
    uint8_t buf[256];
    struct raft_entry e = fx_conf_entry(2, 1, "1 2 3 l4", buf, sizeof buf);
    CHECK_EQ(fx_append_entries(f, 1, 2, 0, 0, 0, &e, 1), RAFT_OK);
    CHECK(fx_conf_is(f, "1 2 3 l4"));
    unsigned reports = f->conf_reports;
    CHECK_EQ(fx_append(f, 3, 3, 0, 0, 0, (raft_term[]){3}, 1), RAFT_OK);
    CHECK(fx_conf_is(f, "1 2 3"));
    CHECK_EQ(f->conf_reports, reports + 1);
    CHECK_EQ(f->conf_index, 0);
    /* Another configuration at the same index is a change too. */
    struct raft_entry other = fx_conf_entry(4, 1, "1 2 3 l5", buf, sizeof buf);
    CHECK_EQ(fx_append_entries(f, 1, 4, 0, 0, 0, &other, 1), RAFT_OK);
    CHECK(fx_conf_is(f, "1 2 3 l5"));
    CHECK_EQ(f->conf_reports, reports + 2);
    CHECK_EQ(f->conf_index, 1);
    FX_CHECK_CONTRACT(f);
}

/* §4.1 + raft-dev 2015: one change at a time, each committed before the next. */
TEST(second_change_while_one_is_uncommitted_is_refused)
{
    struct fx *f = fx_leader_of_three();
    CHECK(f);
    struct raft_member m4 = {.id = 4}, m5 = {.id = 5};
    raft_index index;
    CHECK_EQ(raft_add_learner(f->r, &m4, &index, NULL), RAFT_OK);
    fx_drain(f);
    CHECK_EQ(raft_add_learner(f->r, &m5, NULL, NULL), RAFT_EBUSY);
    CHECK_EQ(raft_remove(f->r, 3, NULL, NULL), RAFT_EBUSY);
    fx_append_ok(f, 2, index);
    CHECK_EQ(raft_commit_of(f->r), index);
    CHECK_EQ(raft_add_learner(f->r, &m5, NULL, NULL), RAFT_OK);
    fx_drain(f);
    CHECK(fx_conf_is(f, "1 2 3 l4 l5"));
    FX_CHECK_CONTRACT(f);
}

/* Diego Ongaro, raft-dev 2015: "a leader may not append a new configuration entry until it
 * has committed an entry from its current term". */
TEST(change_before_the_leader_committed_an_entry_of_its_term_is_refused)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.term = 1}, NULL);
    CHECK(f);
    CHECK(fx_elect(f));
    struct raft_member m4 = {.id = 4};
    CHECK_EQ(raft_add_learner(f->r, &m4, NULL, NULL), RAFT_EBUSY);
    fx_ack_all(f);
    CHECK_EQ(raft_add_learner(f->r, &m4, NULL, NULL), RAFT_OK);
    FX_CHECK_CONTRACT(f);
}

/* §4.2.1: a voter far behind would hold commits back while it catches up. */
TEST(promote_is_refused_while_the_learner_lags_and_accepted_once_caught_up)
{
    struct fx *f = leader_with_learner(&(struct fx_opts){.promote_max_lag = 2});
    CHECK(f);
    raft_index last = 0;
    for (int i = 0; i < 4; i++)
        CHECK_EQ(fx_propose(f, "x", &last), RAFT_OK);
    fx_append_ok(f, 2, last);
    fx_append_ok(f, 3, last - 3);
    CHECK_EQ(raft_promote(f->r, 3, NULL, NULL), RAFT_EBEHIND);
    fx_append_ok(f, 3, last - 2);
    raft_index index;
    CHECK_EQ(raft_promote(f->r, 3, &index, NULL), RAFT_OK);
    fx_drain(f);
    CHECK(fx_conf_is(f, "1 2 3"));
    /* A voter from the moment it is appended: a majority of three is two. */
    fx_append_ok(f, 3, index);
    CHECK_EQ(raft_commit_of(f->r), index);
    FX_CHECK_CONTRACT(f);
}

TEST(changes_are_refused_with_the_documented_errors)
{
    struct fx *follower = fx_new(2, NULL, NULL);
    CHECK(follower);
    struct raft_member m = {.id = 4};
    CHECK_EQ(raft_add_learner(follower->r, &m, NULL, NULL), RAFT_ENOTLEADER);
    CHECK_EQ(raft_promote(follower->r, 3, NULL, NULL), RAFT_ENOTLEADER);
    CHECK_EQ(raft_remove(follower->r, 3, NULL, NULL), RAFT_ENOTLEADER);
    struct raft_member_progress pr;
    CHECK_EQ(raft_member_progress_of(follower->r, 3, &pr), RAFT_ENOTLEADER);

    struct fx *f = leader_with_learner(NULL);
    CHECK(f);
    struct raft_member existing = {.id = 2}, zero = {.id = 0};
    char long_address[RAFT_MAX_ADDRESS + 2];
    memset(long_address, 'a', sizeof long_address - 1);
    long_address[sizeof long_address - 1] = '\0';
    struct raft_member too_long = {.id = 9, .peer_address = long_address};
    CHECK_EQ(raft_add_learner(f->r, &existing, NULL, NULL), RAFT_EEXIST);
    CHECK_EQ(raft_add_learner(f->r, &zero, NULL, NULL), RAFT_EINVAL);
    CHECK_EQ(raft_add_learner(f->r, &too_long, NULL, NULL), RAFT_EINVAL);
    CHECK_EQ(raft_promote(f->r, 2, NULL, NULL), RAFT_EEXIST);
    CHECK_EQ(raft_promote(f->r, 9, NULL, NULL), RAFT_ENOTFOUND);
    CHECK_EQ(raft_remove(f->r, 9, NULL, NULL), RAFT_ENOTFOUND);
    CHECK_EQ(raft_member_progress_of(f->r, 9, &pr), RAFT_ENOTFOUND);
    CHECK_EQ(fx_stats(f).configuration_changes, 0);
    CHECK_EQ(raft_last_index_of(f->r), 2);
    FX_CHECK_CONTRACT(f);
}

TEST(member_progress_reports_what_the_leader_knows)
{
    struct fx *f = leader_with_learner(NULL);
    CHECK(f);
    struct raft_member_progress pr;
    CHECK_EQ(raft_member_progress_of(f->r, 1, &pr), RAFT_OK);
    CHECK_EQ(pr.match, 2);
    CHECK_EQ(raft_member_progress_of(f->r, 2, &pr), RAFT_OK);
    CHECK_EQ(pr.match, 2);
    CHECK_EQ(raft_member_progress_of(f->r, 3, &pr), RAFT_OK);
    CHECK_EQ(pr.match, 0);
    CHECK(!pr.snapshot);
    FX_CHECK_CONTRACT(f);
}

/* Without a voter no majority exists, and nothing would ever commit again. */
TEST(removing_the_last_voter_is_refused)
{
    struct fx_conf b;
    struct fx *f = fx_new(
        1, &(struct fx_opts){.term = 1, .n_voters = 2, .bootstrap = fx_conf(&b, "1 l2")}, NULL);
    CHECK(f);
    fx_campaign(f);
    CHECK_EQ(raft_role_of(f->r), RAFT_LEADER);
    fx_tick(f, 1); /* its single vote committed the no-op once durable */
    CHECK_EQ(raft_commit_of(f->r), 1);
    CHECK_EQ(raft_remove(f->r, 1, NULL, NULL), RAFT_EINVAL);
    CHECK_EQ(raft_remove(f->r, 2, NULL, NULL), RAFT_OK);
    fx_drain(f);
    CHECK(fx_conf_is(f, "1"));
    FX_CHECK_CONTRACT(f);
}

/* §4.2.2: the leader "manages a cluster that does not include itself"; it "does not count
 * itself in majorities" and "steps down once the Cnew entry is committed". §3.10: it hands
 * over to an up-to-date voter so the cluster does not wait an election timeout. */
TEST(leader_removing_itself_does_not_count_itself_and_steps_down_when_the_change_commits)
{
    struct fx *f = fx_leader_of_three();
    CHECK(f);
    raft_index index;
    CHECK_EQ(raft_remove(f->r, 1, &index, NULL), RAFT_OK);
    fx_drain(f);
    CHECK(fx_conf_is(f, "2 3"));
    CHECK_EQ(raft_role_of(f->r), RAFT_LEADER);
    fx_append_ok(f, 2, index);
    CHECK_EQ(raft_commit_of(f->r), index - 1); /* 2 alone of {2, 3} is no majority */
    CHECK_EQ(raft_role_of(f->r), RAFT_LEADER);
    CHECK_EQ(fx_count(f, 0, RAFT_MSG_TIMEOUT_NOW), 0);
    fx_append_ok(f, 3, index);
    CHECK_EQ(raft_commit_of(f->r), index);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    CHECK_EQ(raft_leader_of(f->r), 0);
    CHECK_EQ(fx_count(f, 2, RAFT_MSG_TIMEOUT_NOW), 1);
    CHECK_EQ(fx_count(f, 3, RAFT_MSG_TIMEOUT_NOW), 0);
    fx_clear(f);
    fx_tick(f, 10 * FX_ELECTION_MAX);
    CHECK_EQ(fx_count(f, 0, RAFT_MSG_REQUEST_VOTE), 0);
    FX_CHECK_CONTRACT(f);
}

/* A leader that removed itself and lost the lead before any voter got the entry holds the
 * change alone, and the voters left cannot win without it (their logs are behind, and the
 * configuration they use still counts it): it campaigns, without its own vote, to finish
 * what it began. */
TEST(leader_that_removed_itself_and_lost_the_lead_campaigns_to_finish_the_removal)
{
    struct fx *f = fx_leader_of_three();
    CHECK(f);
    raft_index index;
    CHECK_EQ(raft_remove(f->r, 1, &index, NULL), RAFT_OK);
    fx_drain(f);
    /* Nobody answers for an election timeout: check-quorum ends the lead. */
    for (unsigned t = 0; t < 2 * FX_ELECTION_MAX && raft_role_of(f->r) == RAFT_LEADER; t++)
        fx_tick(f, 1);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    CHECK_EQ(raft_commit_of(f->r), index - 1);
    fx_clear(f);
    fx_tick(f, 2 * FX_ELECTION_MAX);
    CHECK(raft_role_of(f->r) == RAFT_PRE_CANDIDATE || raft_role_of(f->r) == RAFT_CANDIDATE);
    /* It asks the voters of its latest configuration, and only them. */
    CHECK(fx_count(f, 2, RAFT_MSG_REQUEST_VOTE) > 0);
    CHECK(fx_count(f, 3, RAFT_MSG_REQUEST_VOTE) > 0);
    for (int round = 0; round < 2 && raft_role_of(f->r) != RAFT_LEADER; round++) {
        bool pre = raft_role_of(f->r) == RAFT_PRE_CANDIDATE;
        raft_term asked = pre ? raft_term_of(f->r) + 1 : raft_term_of(f->r);
        fx_vote_resp(f, 2, asked, true, pre);
        /* One vote of two voters: its own does not count. */
        CHECK(raft_role_of(f->r) != RAFT_LEADER);
        fx_vote_resp(f, 3, asked, true, pre);
    }
    CHECK_EQ(raft_role_of(f->r), RAFT_LEADER);
    CHECK(fx_conf_is(f, "2 3"));
    /* Once the removal commits it steps down for good. */
    raft_index last = raft_last_index_of(f->r);
    fx_append_ok(f, 2, last);
    fx_append_ok(f, 3, last);
    CHECK_EQ(raft_commit_of(f->r), last);
    CHECK_EQ(raft_role_of(f->r), RAFT_FOLLOWER);
    fx_clear(f);
    fx_tick(f, 10 * FX_ELECTION_MAX);
    CHECK_EQ(fx_count(f, 0, RAFT_MSG_REQUEST_VOTE), 0);
    FX_CHECK_CONTRACT(f);
}

/* A removed member gets nothing more, and what it says no longer counts. */
TEST(removed_member_is_no_longer_replicated_to_and_its_answers_are_dropped)
{
    struct fx *f = fx_leader_of_three();
    CHECK(f);
    raft_index index;
    CHECK_EQ(raft_remove(f->r, 3, &index, NULL), RAFT_OK);
    fx_drain(f);
    fx_tick(f, 2 * FX_HEARTBEAT);
    CHECK_EQ(fx_count(f, 3, RAFT_MSG_APPEND), 0);
    CHECK(fx_count(f, 2, RAFT_MSG_APPEND) > 0);
    uint64_t dropped = fx_stats(f).msgs_dropped_unknown_peer;
    CHECK_EQ(fx_append_ok(f, 3, index), RAFT_EINVAL);
    CHECK_EQ(fx_stats(f).msgs_dropped_unknown_peer, dropped + 1);
    CHECK_EQ(raft_commit_of(f->r), index - 1);
    fx_append_ok(f, 2, index);
    CHECK_EQ(raft_commit_of(f->r), index);
    FX_CHECK_CONTRACT(f);
}

/* Every node would act on a configuration entry at once: one that does not decode is
 * malformed input, not a configuration. */
TEST(malformed_configuration_entries_and_snapshot_configurations_are_dropped)
{
    struct fx *f = fx_new(2, NULL, NULL);
    CHECK(f);
    uint8_t garbage[] = {1, 2, 0xff};
    struct raft_entry e = {
        .term = 2, .index = 1, .type = RAFT_ENTRY_CONFIG, .len = sizeof garbage, .data = garbage};
    CHECK_EQ(fx_append_entries(f, 1, 2, 0, 0, 0, &e, 1), RAFT_EINVAL);
    CHECK_EQ(fx_stats(f).msgs_dropped_malformed, 1);
    CHECK_EQ(raft_last_index_of(f->r), 0);
    CHECK_EQ(raft_term_of(f->r), 0);

    struct fx_conf b;
    const struct raft_configuration *twice = fx_conf(&b, "1 2 2");
    uint8_t byte = 7;
    struct raft_msg m = fx_msg_to(f, RAFT_MSG_INSTALL_SNAPSHOT, 1, 2);
    m.install_snapshot = (struct raft_install_snapshot){
        .last_index = 5, .last_term = 2, .conf = *twice, .len = 1, .data = &byte, .done = true};
    CHECK_EQ(fx_step(f, &m), RAFT_EINVAL);
    CHECK_EQ(fx_stats(f).msgs_dropped_malformed, 2);
    CHECK_EQ(fx_stats(f).snapshots_installed, 0);
    CHECK(fx_conf_is(f, "1 2 3"));
    FX_CHECK_CONTRACT(f);
}

/* Raft §7 and §4: a snapshot replaces the log, configuration entries included, so it
 * carries the configuration at its index. */
TEST(installed_snapshot_carries_its_configuration)
{
    struct fx *f = fx_new(2, NULL, NULL);
    CHECK(f);
    struct fx_conf b;
    uint8_t byte = 7;
    struct raft_msg m = fx_msg_to(f, RAFT_MSG_INSTALL_SNAPSHOT, 1, 2);
    m.install_snapshot = (struct raft_install_snapshot){.last_index = 5,
                                                        .last_term = 2,
                                                        .conf = *fx_conf(&b, "1 2 3 l4"),
                                                        .len = 1,
                                                        .data = &byte,
                                                        .done = true};
    CHECK_EQ(fx_step(f, &m), RAFT_OK);
    CHECK_EQ(fx_stats(f).snapshots_installed, 1);
    CHECK_EQ(f->installed_conf_n, 4);
    CHECK(fx_conf_is(f, "1 2 3 l4"));
    raft_index index;
    raft_configuration_of(f->r, &index);
    CHECK_EQ(index, 5);
    CHECK(raft_configuration_at(f->r, 5) != NULL);
    CHECK(raft_configuration_at(f->r, 4) == NULL);
    FX_CHECK_CONTRACT(f);
}

TEST(leader_sends_the_configuration_at_the_snapshot_index_with_the_snapshot)
{
    struct fx *f = fx_leader_of_three(); /* no-op at 1, committed */
    CHECK(f);
    struct raft_member m4 = {.id = 4};
    raft_index index;
    CHECK_EQ(raft_add_learner(f->r, &m4, &index, NULL), RAFT_OK);
    fx_drain(f);
    fx_append_ok(f, 2, index);
    CHECK_EQ(raft_commit_of(f->r), 2);
    CHECK_EQ(raft_compact(f->r, &(struct raft_snapshot_meta){2, 2, 100}, 2), RAFT_OK);
    CHECK(raft_configuration_at(f->r, 1) == NULL);
    CHECK_EQ(raft_configuration_at(f->r, 2)->n, 4);
    /* A later change is not part of that snapshot. */
    CHECK_EQ(raft_remove(f->r, 4, &index, NULL), RAFT_OK);
    fx_drain(f);
    fx_clear(f);
    CHECK_EQ(fx_append_reject(f, 3, 1, 0, 1, 0), RAFT_OK);
    const struct fx_msg *s = fx_last(f, 3, RAFT_MSG_INSTALL_SNAPSHOT);
    CHECK(s);
    CHECK_EQ(s->m.install_snapshot.last_index, 2);
    CHECK_EQ(s->m.install_snapshot.conf.n, 4);
    CHECK_EQ(s->m.install_snapshot.conf.members[3].id, 4);
    CHECK_EQ(s->m.install_snapshot.conf.members[3].role, RAFT_LEARNER);
    FX_CHECK_CONTRACT(f);
}

static uint32_t zero_random(void *arg, uint32_t bound)
{
    (void)arg;
    (void)bound;
    return 0;
}

/* raft.h: the host keeps the configuration with its snapshot and the log's configuration
 * entries after it are in effect again after a restart. */
TEST(restart_restores_the_snapshot_configuration_and_later_entries)
{
    struct fx_conf boot, snap;
    struct raft_config cfg;
    raft_config_defaults(&cfg);
    cfg.id = 1;
    cfg.random = zero_random;
    cfg.bootstrap = *fx_conf(&boot, "1 2 3");
    uint8_t buf[256];
    struct raft_entry entries[] = {{.term = 2, .index = 6},
                                   fx_conf_entry(2, 7, "1 2 3 4 l5", buf, sizeof buf)};
    struct raft_restore rs = {.term = 2,
                              .snapshot_index = 5,
                              .snapshot_term = 2,
                              .snapshot = {5, 2, 10},
                              .snapshot_conf = *fx_conf(&snap, "1 2 3 4"),
                              .applied = 5,
                              .n_entries = 2,
                              .entries = entries};
    struct raft *r;
    CHECK_EQ(raft_new(&cfg, &rs, &r), RAFT_OK);
    raft_index index;
    const struct raft_configuration *c = raft_configuration_of(r, &index);
    bool ok = index == 7 && c->n == 5 && raft_configuration_at(r, 6)->n == 4 &&
              raft_configuration_at(r, 5)->n == 4 && !raft_configuration_at(r, 8);
    raft_free(r);
    CHECK(ok);
    /* A configuration entry that does not decode is not one Raft wrote. */
    uint8_t bad = 9;
    entries[1] = (struct raft_entry){
        .term = 2, .index = 7, .type = RAFT_ENTRY_CONFIG, .len = 1, .data = &bad};
    CHECK_EQ(raft_new(&cfg, &rs, &r), RAFT_ECORRUPT);
}

static bool confs_equal(const struct raft_configuration *a, const struct raft_configuration *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (a->members[i].id != b->members[i].id || a->members[i].role != b->members[i].role ||
            strcmp(a->members[i].peer_address, b->members[i].peer_address) ||
            strcmp(a->members[i].client_address, b->members[i].client_address))
            return false;
    return true;
}

static int decode_bytes(const uint8_t *buf, size_t len)
{
    struct raft_configuration c;
    int rv = raft_configuration_decode(buf, len, &c);
    if (rv == RAFT_OK)
        raft_configuration_free(&c);
    return rv;
}

/* The bytes come from the network: every prefix, and anything after a whole encoding, is
 * refused without reading out of bounds (ASan watches). */
TEST(configuration_encoding_round_trips_and_rejects_truncated_or_garbage_bytes)
{
    struct fx_conf b;
    const struct raft_configuration *conf = fx_conf(&b, "1 l2 18446744073709551615");
    uint8_t *buf;
    size_t len;
    CHECK_EQ(raft_configuration_encode(conf, &buf, &len), RAFT_OK);
    struct raft_configuration back;
    CHECK_EQ(raft_configuration_decode(buf, len, &back), RAFT_OK);
    bool equal = confs_equal(conf, &back);
    raft_configuration_free(&back);
    int truncated_ok = 0;
    for (size_t n = 0; n < len; n++) {
        uint8_t *prefix = malloc(n ? n : 1);
        memcpy(prefix, buf, n);
        truncated_ok += decode_bytes(prefix, n) == RAFT_OK;
        free(prefix);
    }
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    int trailing = decode_bytes(longer, len + 1);
    longer[0] = 2; /* an unknown version */
    int version = decode_bytes(longer, len);
    free(longer);
    buf[2 + 8] = 7; /* the first member's role */
    int role = decode_bytes(buf, len);
    free(buf);
    CHECK(equal);
    CHECK_EQ(truncated_ok, 0);
    CHECK_EQ(trailing, RAFT_EINVAL);
    CHECK_EQ(version, RAFT_EINVAL);
    CHECK_EQ(role, RAFT_EINVAL);

    uint8_t empty[] = {1, 0};
    CHECK_EQ(decode_bytes(empty, sizeof empty), RAFT_OK);
    uint8_t too_many[] = {1, RAFT_MAX_MEMBERS + 1};
    CHECK_EQ(decode_bytes(too_many, sizeof too_many), RAFT_EINVAL);
    /* Two members with id 1; then one with id 0; then an address with a NUL inside. */
    uint8_t dup[] = {1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK_EQ(decode_bytes(dup, sizeof dup), RAFT_EINVAL);
    uint8_t zero_id[] = {1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK_EQ(decode_bytes(zero_id, sizeof zero_id), RAFT_EINVAL);
    uint8_t nul[] = {1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 'a', 0, 0};
    CHECK_EQ(decode_bytes(nul, sizeof nul), RAFT_EINVAL);
    uint8_t fine[] = {1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 'a', 'b', 0};
    CHECK_EQ(decode_bytes(fine, sizeof fine), RAFT_OK);
    CHECK_EQ(decode_bytes(NULL, 0), RAFT_EINVAL);
}

TEST(configuration_validity_follows_raft_h)
{
    struct fx_conf b;
    CHECK(raft_configuration_is_valid(fx_conf(&b, "")));
    CHECK(raft_configuration_is_valid(fx_conf(&b, "1 l2")));
    CHECK(!raft_configuration_is_valid(fx_conf(&b, "1 1")));
    CHECK(!raft_configuration_is_valid(fx_conf(&b, "0")));
    fx_conf(&b, "1");
    b.members[0].peer_address = NULL;
    CHECK(!raft_configuration_is_valid(&b.conf));
    b.members[0].peer_address = "";
    b.members[0].role = 5;
    CHECK(!raft_configuration_is_valid(&b.conf));
    CHECK(strcmp(raft_member_role_name(RAFT_LEARNER), "learner") == 0);
    CHECK(strcmp(raft_msg_type_name(RAFT_MSG_TIMEOUT_NOW), "TimeoutNow") == 0);
    CHECK(strcmp(raft_strerror(RAFT_EBEHIND), "unknown error") != 0);
}

TEST_MAIN(
    TEST_REF(learner_receives_entries_but_is_not_counted_for_commit),
    TEST_REF(learner_never_campaigns), TEST_REF(learner_vote_does_not_elect),
    TEST_REF(node_with_empty_bootstrap_never_campaigns_and_follows_a_leader_it_did_not_know),
    TEST_REF(follower_accepts_appends_from_a_leader_not_in_its_configuration),
    TEST_REF(node_uses_an_uncommitted_configuration_at_once),
    TEST_REF(truncated_configuration_entry_rolls_back_to_the_previous_one),
    TEST_REF(second_change_while_one_is_uncommitted_is_refused),
    TEST_REF(change_before_the_leader_committed_an_entry_of_its_term_is_refused),
    TEST_REF(promote_is_refused_while_the_learner_lags_and_accepted_once_caught_up),
    TEST_REF(changes_are_refused_with_the_documented_errors),
    TEST_REF(member_progress_reports_what_the_leader_knows),
    TEST_REF(removing_the_last_voter_is_refused),
    TEST_REF(leader_removing_itself_does_not_count_itself_and_steps_down_when_the_change_commits),
    TEST_REF(leader_that_removed_itself_and_lost_the_lead_campaigns_to_finish_the_removal),
    TEST_REF(removed_member_is_no_longer_replicated_to_and_its_answers_are_dropped),
    TEST_REF(malformed_configuration_entries_and_snapshot_configurations_are_dropped),
    TEST_REF(installed_snapshot_carries_its_configuration),
    TEST_REF(leader_sends_the_configuration_at_the_snapshot_index_with_the_snapshot),
    TEST_REF(restart_restores_the_snapshot_configuration_and_later_entries),
    TEST_REF(configuration_encoding_round_trips_and_rejects_truncated_or_garbage_bytes),
    TEST_REF(configuration_validity_follows_raft_h))
