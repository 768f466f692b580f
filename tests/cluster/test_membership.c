/*
 * Membership changes with real raftd processes, under client load (Raft dissertation
 * chapter 4): grow 3 -> 5 and shrink back, replace a node killed and wiped by a new one,
 * remove the leader, and a rolling restart in which SIGTERM hands the lead over. After
 * each, every write the cluster acknowledged is there, and no client operation failed.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "test.h"

#define WAIT_MS 30000

/* Snapshots every few hundred entries: a node that joins gets the data as a snapshot, which
 * carries the membership, and its restart finds the membership in it. */
static const char SMALL_SNAPSHOTS[] = "snapshot_entries = 200\n"
                                      "snapshot_trailing_entries = 20\n";

/* ---- A client load that runs while the membership changes. ---- */

#define LOAD_MAX_KEYS 200000

struct load {
    struct cluster *c;
    pthread_t thread;
    atomic_bool stop;
    atomic_int acked; /* keys load<i> for i < acked were acknowledged */
    atomic_int failed;
    char error[512];
};

static void load_key(int i, char *key, size_t len)
{
    snprintf(key, len, "load%d", i);
}

/* One writer, each put of a new key: the keys it got an answer for must all be found. A
 * generous timeout: a client operation may wait out an election, never fail. */
static void *load_main(void *arg)
{
    struct load *l = arg;
    struct raftkv_client *client = cluster_client_opts(l->c, 0, 20000, 1000);
    if (!client) {
        snprintf(l->error, sizeof l->error, "cannot open a client");
        atomic_fetch_add(&l->failed, 1);
        return NULL;
    }
    char key[32];
    for (int i = 0; i < LOAD_MAX_KEYS && !atomic_load(&l->stop); i++) {
        load_key(i, key, sizeof key);
        struct raftkv_result res;
        memset(&res, 0, sizeof res);
        int rc = raftkv_put(client, key, strlen(key), key, strlen(key), &res);
        if (rc == RAFTKV_OK) {
            atomic_store(&l->acked, i + 1);
        } else {
            snprintf(l->error, sizeof l->error, "put %s: status %d (%s)", key, rc, res.error);
            atomic_fetch_add(&l->failed, 1);
        }
        raftkv_result_free(&res);
        if (rc != RAFTKV_OK)
            break;
    }
    raftkv_client_close(client);
    return NULL;
}

static bool load_start(struct load *l, struct cluster *c)
{
    memset(l, 0, sizeof *l);
    l->c = c;
    atomic_init(&l->stop, false);
    atomic_init(&l->acked, 0);
    atomic_init(&l->failed, 0);
    REQUIRE(pthread_create(&l->thread, NULL, load_main, l) == 0);
    return true;
}

/* Waits until the load has written at least n more keys: it makes progress now. */
static bool load_advances(struct load *l, int n)
{
    int from = atomic_load(&l->acked);
    uint64_t deadline = now_ms() + WAIT_MS;
    while (atomic_load(&l->acked) < from + n && !atomic_load(&l->failed) && now_ms() < deadline)
        sleep_ms(10);
    if (atomic_load(&l->acked) < from + n)
        fprintf(stderr, "the load wrote %d keys of %d: %s\n", atomic_load(&l->acked) - from, n,
                l->error);
    return atomic_load(&l->acked) >= from + n;
}

/* Stops the load; no operation may have failed, and every acknowledged key is there. */
static bool load_finish(struct load *l, struct raftkv_client *reader)
{
    atomic_store(&l->stop, true);
    pthread_join(l->thread, NULL);
    if (atomic_load(&l->failed)) {
        fprintf(stderr, "a client operation failed: %s\n", l->error);
        return false;
    }
    char key[32];
    int acked = atomic_load(&l->acked);
    for (int i = 0; i < acked; i++) {
        load_key(i, key, sizeof key);
        REQUIRE(cluster_get_is(reader, key, key));
    }
    fprintf(stderr, "  %d acknowledged writes, all present, none failed\n", acked);
    return true;
}

/* ---- Membership through the client library. ---- */

/* The client for member calls, with a request timeout above the election timeout: a change
 * or a transfer may wait for one (client.h). Set by each scenario. */
static struct raftkv_client *admin;

static bool admin_open(struct cluster *c)
{
    admin = cluster_client_opts(c, 0, WAIT_MS, 2000);
    return admin != NULL;
}

/* Runs a scenario with admin open. */
#define WITH_ADMIN(name)                                                                           \
    static bool name##_admin(struct cluster *c)                                                    \
    {                                                                                              \
        if (!admin_open(c))                                                                        \
            return false;                                                                          \
        bool ok = name(c);                                                                         \
        raftkv_client_close(admin);                                                                \
        return ok;                                                                                 \
    }

static int member_count(const struct raftkv_members *m, const char *role)
{
    int n = 0;
    for (size_t i = 0; i < m->n; i++)
        n += strcmp(m->members[i].role, role) == 0;
    return n;
}

static const struct raftkv_member *member_find(const struct raftkv_members *m, uint64_t id)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->members[i].id == id)
            return &m->members[i];
    return NULL;
}

/* Waits until the committed membership has this many voters and learners, all healthy. */
static bool members_are(int voters, int learners)
{
    uint64_t deadline = now_ms() + WAIT_MS;
    struct raftkv_members m;
    for (;;) {
        memset(&m, 0, sizeof m);
        bool ok = raftkv_member_list(admin, &m) == RAFTKV_OK && m.committed &&
                  member_count(&m, "voter") == voters && member_count(&m, "learner") == learners;
        for (size_t i = 0; ok && i < m.n; i++)
            ok = m.members[i].healthy;
        raftkv_members_free(&m);
        if (ok)
            return true;
        if (now_ms() > deadline) {
            fprintf(stderr, "the membership did not become %d voters and %d learners\n", voters,
                    learners);
            return false;
        }
        sleep_ms(50);
    }
}

/* Node id (configured to join) starts and is added as a learner, then promoted once it has
 * caught up: a promotion refused because it lags is retried. */
static bool grow(struct cluster *c, int id)
{
    const struct cnode *node = &c->nodes[id - 1];
    char peer[64];
    snprintf(peer, sizeof peer, "%s://127.0.0.1:%d", c->scheme, c->ports[3 * (id - 1)]);
    REQUIRE(cluster_spawn(c, id));
    struct raftkv_members m;
    memset(&m, 0, sizeof m);
    int rc = raftkv_member_add_learner(admin, (uint64_t)id, peer, node->client_url, &m);
    if (rc != RAFTKV_OK)
        fprintf(stderr, "add-learner %d: status %d (%s)\n", id, rc, m.error);
    REQUIRE(rc == RAFTKV_OK && member_find(&m, (uint64_t)id));
    REQUIRE(strcmp(member_find(&m, (uint64_t)id)->role, "learner") == 0);
    raftkv_members_free(&m);
    /* The learner says so itself, once the configuration reached it (status, /status). */
    uint64_t deadline = now_ms() + WAIT_MS;
    struct raftkv_node_status st = {0};
    while (!(cluster_status(c, id, &st) && strcmp(st.role, "learner") == 0)) {
        REQUIRE(now_ms() < deadline);
        sleep_ms(50);
    }
    deadline = now_ms() + WAIT_MS;
    do {
        memset(&m, 0, sizeof m);
        rc = raftkv_member_promote(admin, (uint64_t)id, &m);
        if (rc != RAFTKV_OK)
            fprintf(stderr, "  promote %d: status %d (%s)\n", id, rc, m.error);
        raftkv_members_free(&m);
        if (rc != RAFTKV_OK)
            sleep_ms(100);
    } while (rc != RAFTKV_OK && now_ms() < deadline);
    REQUIRE(rc == RAFTKV_OK);
    return true;
}

static bool remove_member(int id)
{
    struct raftkv_members m;
    memset(&m, 0, sizeof m);
    int rc = raftkv_member_remove(admin, (uint64_t)id, &m);
    if (rc != RAFTKV_OK)
        fprintf(stderr, "remove %d: status %d (%s)\n", id, rc, m.error);
    bool gone = rc == RAFTKV_OK && !member_find(&m, (uint64_t)id);
    raftkv_members_free(&m);
    return gone;
}

static bool start_founders(struct cluster *c)
{
    for (int id = 1; id <= c->founders; id++)
        REQUIRE(cluster_start(c, id));
    REQUIRE(cluster_wait_leader(c, WAIT_MS));
    return true;
}

/* ---- Scenarios. ---- */

/* 3 -> 5 while a client writes, then 5 -> 3 by removing nodes 1 and 2 (the leader among
 * them, or not): the cluster serves throughout. */
static bool grow_and_shrink(struct cluster *c)
{
    REQUIRE(start_founders(c));
    struct load l;
    REQUIRE(load_start(&l, c));
    REQUIRE(load_advances(&l, 100));
    REQUIRE(grow(c, 4));
    REQUIRE(load_advances(&l, 100));
    REQUIRE(grow(c, 5));
    REQUIRE(members_are(5, 0));
    REQUIRE(load_advances(&l, 100));
    REQUIRE(remove_member(1));
    REQUIRE(load_advances(&l, 100));
    REQUIRE(remove_member(2));
    REQUIRE(members_are(3, 0));
    REQUIRE(load_advances(&l, 100));
    REQUIRE(load_finish(&l, c->client));
    /* The removed nodes can go: the three left hold a quorum of their own. */
    cluster_stop(c, 1, SIGTERM);
    cluster_stop(c, 2, SIGTERM);
    REQUIRE(cluster_put_retry(c, "after-shrink", "v", WAIT_MS, NULL));
    REQUIRE(cluster_get_is(c->client, "after-shrink", "v"));
    return true;
}

/* A node is lost for good (kill -9, data gone): it is removed, a new node with a new id
 * takes its place, and the cluster then survives the loss of another of the old ones. */
static bool replace_a_dead_node(struct cluster *c)
{
    REQUIRE(start_founders(c));
    struct load l;
    REQUIRE(load_start(&l, c));
    REQUIRE(load_advances(&l, 200));
    uint64_t leader = cluster_wait_leader(c, WAIT_MS);
    int dead = leader == 3 ? 2 : 3;
    cluster_stop(c, dead, SIGKILL);
    REQUIRE(cluster_wipe(c, dead));
    REQUIRE(load_advances(&l, 100));
    REQUIRE(remove_member(dead));
    REQUIRE(grow(c, 4));
    REQUIRE(members_are(3, 0));
    REQUIRE(load_advances(&l, 300));
    /* Restarted, the new node knows the membership from its snapshot and log. */
    REQUIRE(cluster_stop(c, 4, SIGTERM) == 0);
    REQUIRE(cluster_start(c, 4));
    REQUIRE(members_are(3, 0));
    REQUIRE(cluster_log_contains(c, 4, "installed the snapshot at index"));
    REQUIRE(load_advances(&l, 100));
    /* The new node counts towards the quorum: lose another old one (not the leader, so
     * that no write waits out an election) and writes go on. */
    leader = cluster_wait_leader(c, WAIT_MS);
    int other = 0;
    for (int id = 1; id <= 3 && !other; id++)
        if (id != dead && (uint64_t)id != leader)
            other = id;
    cluster_stop(c, other, SIGKILL);
    REQUIRE(load_advances(&l, 100));
    REQUIRE(load_finish(&l, c->client));
    return true;
}

/* The leader removes itself: it hands the lead over once the change commits, and, left
 * running, never disrupts the cluster it is no longer part of (pre-vote, leader lease). */
static bool remove_the_leader(struct cluster *c)
{
    REQUIRE(cluster_start_all(c));
    uint64_t leader = cluster_wait_leader(c, WAIT_MS);
    REQUIRE(leader);
    struct load l;
    REQUIRE(load_start(&l, c));
    REQUIRE(load_advances(&l, 100));
    REQUIRE(remove_member((int)leader));
    REQUIRE(members_are(2, 0));
    REQUIRE(load_advances(&l, 200));
    struct raftkv_members m;
    memset(&m, 0, sizeof m);
    REQUIRE(raftkv_member_list(admin, &m) == RAFTKV_OK);
    uint64_t term = m.term;
    REQUIRE(m.leader_id != leader);
    raftkv_members_free(&m);
    /* Many election timeouts for the removed node to try to come back. */
    REQUIRE(load_advances(&l, 500));
    memset(&m, 0, sizeof m);
    REQUIRE(raftkv_member_list(admin, &m) == RAFTKV_OK);
    if (m.term != term)
        fprintf(stderr, "the term moved from %llu to %llu after the removal\n",
                (unsigned long long)term, (unsigned long long)m.term);
    REQUIRE(m.term == term);
    raftkv_members_free(&m);
    REQUIRE(load_finish(&l, c->client));
    return true;
}

/* Every node restarted in turn with SIGTERM while a client writes: the leader hands off
 * before it stops, and no client operation fails. */
static bool rolling_restart(struct cluster *c)
{
    REQUIRE(cluster_start_all(c));
    REQUIRE(cluster_wait_leader(c, WAIT_MS));
    struct load l;
    REQUIRE(load_start(&l, c));
    REQUIRE(load_advances(&l, 100));
    for (int round = 0; round < 2; round++) {
        for (int id = 1; id <= c->n; id++) {
            REQUIRE(cluster_stop(c, id, SIGTERM) == 0);
            REQUIRE(load_advances(&l, 50));
            REQUIRE(cluster_start(c, id));
            REQUIRE(members_are(c->n, 0));
            REQUIRE(load_advances(&l, 50));
        }
    }
    REQUIRE(load_finish(&l, c->client));
    return true;
}

/* move-leader to each node in turn, under load. */
static bool move_leader_around(struct cluster *c)
{
    REQUIRE(cluster_start_all(c));
    REQUIRE(cluster_wait_leader(c, WAIT_MS));
    struct load l;
    REQUIRE(load_start(&l, c));
    REQUIRE(load_advances(&l, 100));
    for (int id = 1; id <= c->n; id++) {
        struct raftkv_members m;
        memset(&m, 0, sizeof m);
        int rc = raftkv_move_leader(admin, (uint64_t)id, &m);
        if (rc != RAFTKV_OK)
            fprintf(stderr, "move-leader %d: status %d (%s)\n", id, rc, m.error);
        /* Moving the lead to the leader itself is refused as invalid. */
        REQUIRE(rc == RAFTKV_OK || rc == RAFTKV_INVALID);
        REQUIRE(rc != RAFTKV_OK || m.leader_id == (uint64_t)id);
        raftkv_members_free(&m);
        REQUIRE(cluster_wait_leader(c, WAIT_MS) == (uint64_t)id);
        REQUIRE(load_advances(&l, 50));
    }
    REQUIRE(load_finish(&l, c->client));
    return true;
}

WITH_ADMIN(grow_and_shrink)
WITH_ADMIN(replace_a_dead_node)
WITH_ADMIN(remove_the_leader)
WITH_ADMIN(rolling_restart)
WITH_ADMIN(move_leader_around)

TEST(grow_from_three_to_five_and_back_under_load)
{
    CHECK(cluster_run_growing(5, 3, NULL, grow_and_shrink_admin));
}

TEST(replace_a_node_killed_and_wiped)
{
    CHECK(cluster_run_growing(4, 3, SMALL_SNAPSHOTS, replace_a_dead_node_admin));
}

TEST(remove_the_leader_without_disruption)
{
    CHECK(cluster_run(3, NULL, remove_the_leader_admin));
}

TEST(rolling_restart_fails_no_client_operation)
{
    CHECK(cluster_run(3, NULL, rolling_restart_admin));
}

TEST(move_leader_to_each_node_under_load)
{
    CHECK(cluster_run(3, NULL, move_leader_around_admin));
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    static const struct test_case cases[] = {TEST_REF(grow_from_three_to_five_and_back_under_load),
                                             TEST_REF(replace_a_node_killed_and_wiped),
                                             TEST_REF(remove_the_leader_without_disruption),
                                             TEST_REF(rolling_restart_fails_no_client_operation),
                                             TEST_REF(move_leader_to_each_node_under_load)};
    return test_run_all(cases, sizeof cases / sizeof cases[0], argc, argv);
}
