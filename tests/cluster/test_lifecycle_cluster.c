/*
 * The state-machine API in a real cluster: lifecycled (raftd's node with the lifecycle
 * machine of tests/lifecycle) takes transitions in its own protocol inside the node's
 * envelope, answers refused ones INVALID with the reason and the current state, refuses KV
 * operations, publishes its own events, and takes snapshots, compacts, installs a snapshot
 * on a wiped follower and restarts from them.
 */
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "client.pb-c.h"
#include "test.h"

#define WAIT_MS 10000

/* Snapshot every 4 entries, keep 1: every few transitions compact the log. */
static const char SNAPSHOT_OFTEN[] = "snapshot_entries = 4\nsnapshot_trailing_entries = 1\n";

/* One request to one node; the answer, or NULL if none came. */
static Raftkv__Client__Response *request_once(const char *url, const uint8_t *req, size_t len)
{
    nng_socket s;
    if (nng_req0_open(&s) != 0)
        return NULL;
    Raftkv__Client__Response *resp = NULL;
    char *buf = NULL;
    size_t got = 0;
    if (nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 2000) == 0 && nng_dial(s, url, NULL, 0) == 0 &&
        nng_send(s, (void *)req, len, 0) == 0 && nng_recv(s, &buf, &got, NNG_FLAG_ALLOC) == 0)
        resp = raftkv__client__response__unpack(NULL, got, (uint8_t *)buf);
    if (buf)
        nng_free(buf, got);
    nng_close(s);
    return resp;
}

/* Asks the leader for state `name`; retries while no leader answers. The answer as text:
 * the machine's own ("OK <state> <index>", "INVALID <state>: <why>"), or "REFUSED: <why>"
 * when the node refused it before proposing. False if no leader answered. */
static bool transition(struct cluster *c, const char *name, char *answer, size_t cap)
{
    Raftkv__Client__Request req = RAFTKV__CLIENT__REQUEST__INIT;
    req.body_case = RAFTKV__CLIENT__REQUEST__BODY_FSM;
    req.fsm = (ProtobufCBinaryData){strlen(name), (uint8_t *)name};
    uint8_t buf[128];
    size_t len = raftkv__client__request__pack(&req, buf);
    uint64_t deadline = now_ms() + WAIT_MS;
    while (now_ms() < deadline) {
        uint64_t leader = cluster_wait_leader(c, WAIT_MS);
        Raftkv__Client__Response *resp =
            leader ? request_once(c->nodes[leader - 1].client_url, buf, len) : NULL;
        bool done = resp && resp->code != RAFTKV__CLIENT__CODE__NOT_LEADER &&
                    resp->code != RAFTKV__CLIENT__CODE__UNAVAILABLE;
        if (done && resp->code == RAFTKV__CLIENT__CODE__OK)
            snprintf(answer, cap, "%.*s", (int)resp->fsm.len, (const char *)resp->fsm.data);
        else if (done)
            snprintf(answer, cap, "REFUSED: %s", resp->error);
        if (resp)
            raftkv__client__response__free_unpacked(resp, NULL);
        if (done)
            return true;
        sleep_ms(20);
    }
    return false;
}

/* Asks for name and checks that the answer starts with want. *index gets the index of an
 * accepted one. */
static bool expect(struct cluster *c, const char *name, const char *want, uint64_t *index)
{
    char answer[256] = "no answer";
    bool ok =
        transition(c, name, answer, sizeof answer) && strncmp(answer, want, strlen(want)) == 0;
    if (!ok)
        fprintf(stderr, "%s: got \"%s\"; want \"%s...\"\n", name, answer, want);
    unsigned long long at = 0;
    if (ok && index && sscanf(answer, "OK %*s %llu", &at) == 1)
        *index = at;
    return ok;
}

static const char *const CYCLE[] = {"init", "running", "stopped"};

/* Goes around the cycle `steps` times from state at, each step accepted. */
static bool cycle(struct cluster *c, int *at, int steps, uint64_t *index)
{
    for (int i = 0; i < steps; i++) {
        *at = (*at + 1) % 3;
        char want[32];
        snprintf(want, sizeof want, "OK %s ", CYCLE[*at]);
        REQUIRE(expect(c, CYCLE[*at], want, index));
    }
    return true;
}

/* The next event on sub within its receive timeout ("lifecycle/<state> <index>"), as
 * (state, revision). */
static bool next_event(nng_socket sub, char *state, size_t len, uint64_t *revision)
{
    char *buf;
    size_t got;
    if (nng_recv(sub, &buf, &got, NNG_FLAG_ALLOC) != 0)
        return false;
    char text[64], name[16];
    snprintf(text, sizeof text, "%.*s", (int)got, buf);
    nng_free(buf, got);
    unsigned long long rev;
    bool ok = sscanf(text, "lifecycle/%15s %llu", name, &rev) == 2 && strlen(name) < len;
    if (ok) {
        snprintf(state, len, "%s", name);
        *revision = rev;
    }
    return ok;
}

/* Transitions until sub (which joins some time after its dial) has seen one; from then on
 * it sees every change node applies. */
static bool sub_sync(struct cluster *c, nng_socket sub, int *at, uint64_t *index)
{
    char state[16];
    uint64_t rev = 0;
    for (int tries = 0; tries < 50; tries++) {
        REQUIRE(cycle(c, at, 1, index));
        while (next_event(sub, state, sizeof state, &rev))
            if (rev == *index)
                return true;
    }
    return false;
}

static bool scenario_lifecycle(struct cluster *c)
{
    REQUIRE(cluster_start_all(c));
    REQUIRE(cluster_wait_leader(c, WAIT_MS));
    uint64_t index = 0;
    int at = 0;
    /* Refusals carry the reason and the current state. */
    REQUIRE(expect(c, "stopped", "INVALID init: cannot go from init to stopped", NULL));
    REQUIRE(expect(c, "bogus", "REFUSED: unknown state", NULL));
    REQUIRE(cycle(c, &at, 1, &index));
    REQUIRE(expect(c, "init", "INVALID running: cannot go from running to init", NULL));
    /* The KV operations are not this machine's. */
    struct raftkv_result res;
    memset(&res, 0, sizeof res);
    int rc = raftkv_put(c->client, "k", 1, "v", 1, &res);
    bool refused = rc == RAFTKV_INVALID && strstr(res.error, "unknown state");
    if (!refused)
        fprintf(stderr, "put: status %d (%s)\n", rc, res.error);
    raftkv_result_free(&res);
    REQUIRE(refused);

    /* Enough transitions for several snapshots and compactions. */
    REQUIRE(cycle(c, &at, 20, &index));
    uint64_t leader = cluster_wait_leader(c, WAIT_MS);
    REQUIRE(leader && cluster_log_contains(c, (int)leader, "log compacted up to index"));

    /* A wiped follower gets the machine's snapshot, then applies like the others. */
    int wiped = leader == 1 ? 2 : 1;
    REQUIRE(cluster_stop(c, wiped, SIGKILL) == -1);
    REQUIRE(cluster_wipe(c, wiped));
    REQUIRE(cluster_start(c, wiped));
    REQUIRE(cluster_wait_applied(c, wiped, index, WAIT_MS));
    REQUIRE(cluster_log_contains(c, wiped, "installed the snapshot"));
    nng_socket sub;
    REQUIRE(nng_sub0_open(&sub) == 0);
    bool ok = nng_socket_set(sub, NNG_OPT_SUB_SUBSCRIBE, "lifecycle/", 10) == 0 &&
              nng_socket_set_ms(sub, NNG_OPT_RECVTIMEO, 200) == 0 &&
              nng_dial(sub, c->nodes[wiped - 1].pub_url, NULL, 0) == 0 &&
              sub_sync(c, sub, &at, &index) &&
              nng_socket_set_ms(sub, NNG_OPT_RECVTIMEO, WAIT_MS) == 0;
    /* A transition is published only by a node whose state allowed it: the wiped node's
     * state, from the snapshot, is the leader's. */
    for (int i = 0; ok && i < 3; i++) {
        char state[16];
        uint64_t rev;
        ok = cycle(c, &at, 1, &index) && next_event(sub, state, sizeof state, &rev) &&
             strcmp(state, CYCLE[at]) == 0 && rev == index;
        if (!ok)
            fprintf(stderr, "node %d did not publish %s at %llu\n", wiped, CYCLE[at],
                    (unsigned long long)index);
    }
    nng_close(sub);
    REQUIRE(ok);

    /* Every node restarts from its snapshot and the log after it. */
    for (int i = 1; i <= 3; i++)
        REQUIRE(cluster_stop(c, i, SIGKILL) == -1);
    REQUIRE(cluster_start_all(c));
    const char *current = CYCLE[at], *wrong = CYCLE[(at + 2) % 3];
    char want[96];
    snprintf(want, sizeof want, "INVALID %s: cannot go from %s to %s", current, current, wrong);
    REQUIRE(expect(c, wrong, want, NULL));
    REQUIRE(cycle(c, &at, 3, &index));
    return true;
}

TEST(lifecycle_machine_in_cluster)
{
    struct cluster c;
    bool ok = cluster_init(&c, 3, SNAPSHOT_OFTEN);
    c.daemon = LIFECYCLED_PATH;
    ok = ok && scenario_lifecycle(&c);
    CHECK(cluster_finish(&c, ok));
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    static const struct test_case cases[] = {TEST_REF(lifecycle_machine_in_cluster)};
    return test_run_all(cases, sizeof cases / sizeof cases[0], argc, argv);
}
