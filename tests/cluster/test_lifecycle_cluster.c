/*
 * The state-machine API in a real cluster: lifecycled (raftd's node with the lifecycle
 * machine of tests/lifecycle) takes ClientRequest.custom transitions, answers refused ones
 * INVALID with the reason and the current state, refuses KV operations, and takes
 * snapshots, compacts, installs a snapshot on a wiped follower and restarts from them.
 */
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kv.pb-c.h"
#include "test.h"

#define WAIT_MS 10000

/* Snapshot every 4 entries, keep 1: every few transitions compact the log. */
static const char SNAPSHOT_OFTEN[] = "snapshot_entries = 4\nsnapshot_trailing_entries = 1\n";

/* One request to one node; the answer, or NULL if none came. */
static Raftkv__Kv__ClientResponse *request_once(const char *url, const uint8_t *req, size_t len)
{
    nng_socket s;
    if (nng_req0_open(&s) != 0)
        return NULL;
    Raftkv__Kv__ClientResponse *resp = NULL;
    char *buf = NULL;
    size_t got = 0;
    if (nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 2000) == 0 && nng_dial(s, url, NULL, 0) == 0 &&
        nng_send(s, (void *)req, len, 0) == 0 && nng_recv(s, &buf, &got, NNG_FLAG_ALLOC) == 0)
        resp = raftkv__kv__client_response__unpack(NULL, got, (uint8_t *)buf);
    if (buf)
        nng_free(buf, got);
    nng_close(s);
    return resp;
}

/* Asks the leader for state `name`; retries while no leader answers. */
static Raftkv__Kv__ClientResponse *transition(struct cluster *c, const char *name)
{
    Raftkv__Kv__ClientRequest req = RAFTKV__KV__CLIENT_REQUEST__INIT;
    req.op_case = RAFTKV__KV__CLIENT_REQUEST__OP_CUSTOM;
    req.custom = (ProtobufCBinaryData){strlen(name), (uint8_t *)name};
    uint8_t buf[128];
    size_t len = raftkv__kv__client_request__pack(&req, buf);
    uint64_t deadline = now_ms() + WAIT_MS;
    while (now_ms() < deadline) {
        uint64_t leader = cluster_wait_leader(c, WAIT_MS);
        Raftkv__Kv__ClientResponse *resp =
            leader ? request_once(c->nodes[leader - 1].client_url, buf, len) : NULL;
        if (resp && resp->code != RAFTKV__KV__CODE__NOT_LEADER &&
            resp->code != RAFTKV__KV__CODE__UNAVAILABLE)
            return resp;
        if (resp)
            raftkv__kv__client_response__free_unpacked(resp, NULL);
        sleep_ms(20);
    }
    return NULL;
}

static bool bytes_are(ProtobufCBinaryData b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.data, s, b.len) == 0;
}

/* Asks for name and checks the answer: code, value (the new or current state) and, for
 * a refusal, part of the reason. *index gets the revision of an accepted one. */
static bool expect(struct cluster *c, const char *name, Raftkv__Kv__Code code, const char *value,
                   const char *reason, uint64_t *index)
{
    Raftkv__Kv__ClientResponse *resp = transition(c, name);
    bool ok = resp && resp->code == code && bytes_are(resp->value, value) &&
              (!reason || (resp->error && strstr(resp->error, reason)));
    if (!ok)
        fprintf(stderr, "%s: got code %d value \"%.*s\" error \"%s\"; want %d \"%s\" (%s)\n", name,
                resp ? (int)resp->code : -1, resp ? (int)resp->value.len : 0,
                resp ? (const char *)resp->value.data : "", resp ? resp->error : "no answer",
                (int)code, value, reason ? reason : "");
    if (ok && index)
        *index = resp->revision;
    if (resp)
        raftkv__kv__client_response__free_unpacked(resp, NULL);
    return ok;
}

static const char *const CYCLE[] = {"init", "running", "stopped"};

/* Goes around the cycle `steps` times from state at, each step accepted. */
static bool cycle(struct cluster *c, int *at, int steps, uint64_t *index)
{
    for (int i = 0; i < steps; i++) {
        *at = (*at + 1) % 3;
        REQUIRE(expect(c, CYCLE[*at], RAFTKV__KV__CODE__OK, CYCLE[*at], NULL, index));
    }
    return true;
}

/* The next change event on sub within its receive timeout, as (state, revision). */
static bool next_event(nng_socket sub, char *state, size_t len, uint64_t *revision)
{
    char *buf;
    size_t got;
    if (nng_recv(sub, &buf, &got, NNG_FLAG_ALLOC) != 0)
        return false;
    Raftkv__Kv__ChangeEvent *ev =
        got > 3 ? raftkv__kv__change_event__unpack(NULL, got - 3, (uint8_t *)buf + 3) : NULL;
    nng_free(buf, got);
    bool ok = ev && bytes_are(ev->key, "state") && ev->value.len < len;
    if (ok) {
        memcpy(state, ev->value.data, ev->value.len);
        state[ev->value.len] = '\0';
        *revision = ev->revision;
    }
    if (ev)
        raftkv__kv__change_event__free_unpacked(ev, NULL);
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
    REQUIRE(expect(c, "stopped", RAFTKV__KV__CODE__INVALID, "init",
                   "cannot go from init to stopped", NULL));
    REQUIRE(expect(c, "bogus", RAFTKV__KV__CODE__INVALID, "init", "unknown state", NULL));
    REQUIRE(cycle(c, &at, 1, &index));
    REQUIRE(expect(c, "init", RAFTKV__KV__CODE__INVALID, "running",
                   "cannot go from running to init", NULL));
    /* The KV operations are not this machine's. */
    struct raftkv_result res;
    memset(&res, 0, sizeof res);
    int rc = raftkv_put(c->client, "k", 1, "v", 1, &res);
    bool refused = rc == RAFTKV_INVALID && strstr(res.error, "only custom operations");
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
    bool ok = nng_socket_set(sub, NNG_OPT_SUB_SUBSCRIBE, "kv/", 3) == 0 &&
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
    char reason[64];
    snprintf(reason, sizeof reason, "cannot go from %s to %s", current, wrong);
    REQUIRE(expect(c, wrong, RAFTKV__KV__CODE__INVALID, current, reason, NULL));
    REQUIRE(cycle(c, &at, 3, &index));
    return true;
}

TEST(lifecycle_machine_in_cluster)
{
    struct cluster c;
    bool ok = cluster_init(&c, 3, SNAPSHOT_OFTEN);
    c.daemon = LIFECYCLED_PATH;
    ok = ok && scenario_lifecycle(&c);
    for (int i = 1; i <= c.n; i++)
        if (c.nodes[i - 1].pid)
            cluster_stop(&c, i, SIGTERM);
    ok = cluster_logs_clean(&c) && ok;
    cluster_destroy(&c, !ok);
    CHECK(ok);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    static const struct test_case cases[] = {TEST_REF(lifecycle_machine_in_cluster)};
    return test_run_all(cases, sizeof cases / sizeof cases[0], argc, argv);
}
