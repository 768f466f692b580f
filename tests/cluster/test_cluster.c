/*
 * raftd clusters of real processes on 127.0.0.1: election, replication, crashes (kill -9),
 * recovery from disk, a wiped node, a single node, config errors and the change stream.
 * Run one scenario by giving (part of) its name as the argument.
 */
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "client.pb-c.h"
#include "kv.pb-c.h"
#include "node/snapshot_files.h"
#include "raft.pb-c.h"
#include "storage/crc32c.h"
#include "storage/db.h"
#include "transport/codec.h"
#include "test.h"

#define WAIT_MS 10000

/* ---- Change stream subscribers. ---- */

struct sub {
    nng_socket sock;
};

static bool sub_open(struct sub *s, const char *url)
{
    REQUIRE(nng_sub0_open(&s->sock) == 0);
    REQUIRE(nng_socket_set(s->sock, NNG_OPT_SUB_SUBSCRIBE, "kv/", 3) == 0);
    REQUIRE(nng_socket_set_ms(s->sock, NNG_OPT_RECVTIMEO, 50) == 0);
    /* Non-blocking: the node may not listen yet; the dialer retries by itself. */
    REQUIRE(nng_dial(s->sock, url, NULL, NNG_FLAG_NONBLOCK) == 0);
    return true;
}

/* The next change within timeout_ms, or NULL. */
static Raftkv__Kv__ChangeEvent *sub_next(struct sub *s, unsigned timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;
    do {
        char *buf;
        size_t len;
        if (nng_recv(s->sock, &buf, &len, NNG_FLAG_ALLOC) != 0)
            continue;
        Raftkv__Kv__ChangeEvent *ev = NULL;
        if (len >= 3 && memcmp(buf, "kv/", 3) == 0)
            ev = raftkv__kv__change_event__unpack(NULL, len - 3, (uint8_t *)buf + 3);
        nng_free(buf, len);
        if (ev)
            return ev;
        fprintf(stderr, "undecodable change event (%zu bytes)\n", len);
        return NULL;
    } while (now_ms() < deadline);
    return NULL;
}

static bool change_is(const Raftkv__Kv__ChangeEvent *ev, const char *key, const char *value)
{
    return ev && ev->key.len == strlen(key) && memcmp(ev->key.data, key, ev->key.len) == 0 &&
           ev->value.len == strlen(value) && memcmp(ev->value.data, value, ev->value.len) == 0;
}

/* Puts sync keys until every subscriber has seen one, then drains them: from here on each
 * subscriber sees every change. Returns the revision of the last sync put. */
static bool subs_sync(struct cluster *c, struct sub *subs, int n, uint64_t *last_rev)
{
    bool seen[CLUSTER_MAX_NODES] = {0};
    int n_seen = 0;
    uint64_t deadline = now_ms() + WAIT_MS;
    while (n_seen < n) {
        REQUIRE(now_ms() < deadline);
        REQUIRE(cluster_put_retry(c, "sync", "x", WAIT_MS, last_rev));
        for (int i = 0; i < n; i++) {
            Raftkv__Kv__ChangeEvent *ev;
            while ((ev = sub_next(&subs[i], 100))) {
                if (!seen[i] && ev->revision == *last_rev) {
                    seen[i] = true;
                    n_seen++;
                }
                raftkv__kv__change_event__free_unpacked(ev, NULL);
                if (seen[i])
                    break;
            }
        }
    }
    return true;
}

static void subs_close(struct sub *subs, int n)
{
    for (int i = 0; i < n; i++)
        nng_close(subs[i].sock);
}

/* ---- Scenarios: each returns false at the first failed requirement. ---- */

static bool put_ok(struct raftkv_client *client, const char *key, const char *value,
                   uint64_t *revision)
{
    struct raftkv_result res;
    memset(&res, 0, sizeof res);
    int rc = raftkv_put(client, key, strlen(key), value, strlen(value), &res);
    if (rc != RAFTKV_OK)
        fprintf(stderr, "put %s: status %d (%s)\n", key, rc, res.error);
    if (revision)
        *revision = res.revision;
    raftkv_result_free(&res);
    return rc == RAFTKV_OK;
}

static bool scenario_replicate(struct cluster *c)
{
    struct sub subs[3];
    for (int i = 0; i < 3; i++)
        REQUIRE(sub_open(&subs[i], c->nodes[i].pub_url));
    REQUIRE(cluster_start_all(c));
    REQUIRE(cluster_wait_leader(c, WAIT_MS));
    uint64_t sync_rev;
    bool ok = subs_sync(c, subs, 3, &sync_rev);
    char key[3][16], value[3][16];
    uint64_t rev[3];
    /* A put through each endpoint, then a get of every key through each endpoint. */
    for (int i = 0; ok && i < 3; i++) {
        snprintf(key[i], sizeof key[i], "key-%d", i + 1);
        snprintf(value[i], sizeof value[i], "value-%d", i + 1);
        struct raftkv_client *one = cluster_client(c, i + 1, WAIT_MS);
        ok = one && put_ok(one, key[i], value[i], &rev[i]);
        for (int j = 0; ok && j < 3; j++)
            ok = j > i || cluster_get_is(one, key[j], value[j]);
        if (one)
            raftkv_client_close(one);
    }
    /* Every node applied every put, in order, with its value: each publishes what it
     * applies. */
    for (int i = 0; ok && i < 3; i++) {
        for (int j = 0; ok && j < 3; j++) {
            Raftkv__Kv__ChangeEvent *ev = sub_next(&subs[i], WAIT_MS);
            ok = change_is(ev, key[j], value[j]) && ev->revision == rev[j];
            if (!ok)
                fprintf(stderr, "node %d: change %d is not %s=%s at %llu\n", i + 1, j, key[j],
                        value[j], (unsigned long long)rev[j]);
            if (ev)
                raftkv__kv__change_event__free_unpacked(ev, NULL);
        }
    }
    subs_close(subs, 3);
    /* Every node reports what it counted: it exchanged messages with its peers, none
     * malformed, and the leader won an election it started. */
    uint64_t leader = cluster_wait_leader(c, WAIT_MS);
    for (int i = 1; ok && i <= 3; i++) {
        struct raftkv_node_status st;
        ok = cluster_status(c, i, &st) && st.counters.peer_msgs_sent > 0 &&
             st.counters.peer_msgs_received > 0 && st.counters.peer_msgs_malformed == 0 &&
             st.counters.msgs_dropped_malformed == 0 &&
             ((uint64_t)i != leader || st.counters.elections_started > 0);
        if (!ok)
            fprintf(stderr, "node %d: counters missing from its status\n", i);
    }
    return ok;
}

static bool scenario_failover(struct cluster *c)
{
    REQUIRE(cluster_start_all(c));
    uint64_t leader = cluster_wait_leader(c, WAIT_MS);
    REQUIRE(leader);
    char key[32];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "before-%d", i);
        REQUIRE(put_ok(c->client, key, key, NULL));
    }
    REQUIRE(cluster_stop(c, (int)leader, SIGKILL) == -1);
    uint64_t rev;
    REQUIRE(cluster_put_retry(c, "after", "failover", WAIT_MS, &rev));
    uint64_t new_leader = cluster_wait_leader(c, WAIT_MS);
    REQUIRE(new_leader && new_leader != leader);
    REQUIRE(cluster_get_is(c->client, "before-19", "before-19"));
    /* The old leader comes back as a follower and catches up. */
    REQUIRE(cluster_start(c, (int)leader));
    REQUIRE(cluster_wait_applied(c, (int)leader, rev, WAIT_MS));
    REQUIRE(put_ok(c->client, "later", "x", &rev));
    for (int i = 1; i <= 3; i++)
        REQUIRE(cluster_wait_applied(c, i, rev, WAIT_MS));
    return true;
}

#define WRITERS 4
#define MAX_PUTS 100000

struct writer {
    struct cluster *c;
    int id;
    unsigned timeout_ms; /* per put; 0: 2 s */
    atomic_bool *stop;
    atomic_int acked; /* puts 0 .. acked-1 were acknowledged */
    pthread_t thread;
};

static void writer_kv(int w, int i, char *key, char *value, size_t len)
{
    snprintf(key, len, "w%d-%d", w, i);
    snprintf(value, len, "value-%d-%d-%x", w, i, (unsigned)(i * 2654435761u));
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct raftkv_client *client = cluster_client(w->c, 0, w->timeout_ms ? w->timeout_ms : 2000);
    char key[64], value[64];
    for (int i = 0; client && i < MAX_PUTS && !atomic_load(w->stop); i++) {
        writer_kv(w->id, i, key, value, sizeof key);
        if (!put_ok(client, key, value, NULL))
            break;
        atomic_store(&w->acked, i + 1);
    }
    if (client)
        raftkv_client_close(client);
    return NULL;
}

static int total_acked(struct writer *w)
{
    int sum = 0;
    for (int i = 0; i < WRITERS; i++)
        sum += atomic_load(&w[i].acked);
    return sum;
}

static bool scenario_crash_all(struct cluster *c)
{
    REQUIRE(cluster_start_all(c));
    REQUIRE(cluster_wait_leader(c, WAIT_MS));
    atomic_bool stop = false;
    struct writer w[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (struct writer){.c = c, .id = i, .stop = &stop};
        atomic_init(&w[i].acked, 0);
        REQUIRE(pthread_create(&w[i].thread, NULL, writer_main, &w[i]) == 0);
    }
    uint64_t deadline = now_ms() + 15000;
    while (total_acked(w) < 400 && now_ms() < deadline)
        sleep_ms(5);
    int at_kill = total_acked(w);
    /* Every node dies at once, with puts in flight. */
    for (int i = 0; i < c->n; i++)
        kill(c->nodes[i].pid, SIGKILL);
    for (int i = 1; i <= c->n; i++)
        cluster_stop(c, i, SIGKILL);
    atomic_store(&stop, true);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(w[i].thread, NULL);
    fprintf(stderr, "  %d puts acknowledged when the nodes were killed, %d in total\n", at_kill,
            total_acked(w));
    REQUIRE(at_kill >= 400);
    REQUIRE(cluster_start_all(c));
    REQUIRE(cluster_wait_leader(c, WAIT_MS));
    char key[64], value[64];
    for (int t = 0; t < WRITERS; t++) {
        for (int i = 0; i < atomic_load(&w[t].acked); i++) {
            writer_kv(t, i, key, value, sizeof key);
            REQUIRE(cluster_get_is(c->client, key, value));
        }
    }
    return true;
}

static bool scenario_wiped_node(struct cluster *c)
{
    REQUIRE(cluster_start_all(c));
    uint64_t leader = cluster_wait_leader(c, WAIT_MS);
    REQUIRE(leader);
    int follower = leader == 1 ? 2 : 1;
    char key[32];
    uint64_t rev = 0;
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "k%d", i);
        REQUIRE(put_ok(c->client, key, key, &rev));
    }
    REQUIRE(cluster_wait_applied(c, follower, rev, WAIT_MS));
    REQUIRE(cluster_stop(c, follower, SIGKILL) == -1);
    REQUIRE(cluster_wipe(c, follower));
    REQUIRE(cluster_start(c, follower));
    struct raftkv_node_status st;
    REQUIRE(cluster_status(c, follower, &st));
    REQUIRE(cluster_wait_applied(c, follower, rev, WAIT_MS));
    REQUIRE(put_ok(c->client, "after-wipe", "y", &rev));
    REQUIRE(cluster_wait_applied(c, follower, rev, WAIT_MS));
    return true;
}

static bool scenario_single(struct cluster *c)
{
    REQUIRE(cluster_start(c, 1));
    REQUIRE(cluster_wait_leader(c, WAIT_MS) == 1);
    REQUIRE(put_ok(c->client, "solo", "one", NULL));
    REQUIRE(cluster_get_is(c->client, "solo", "one"));
    /* SIGTERM is a clean stop; the data is there after a restart. */
    REQUIRE(cluster_stop(c, 1, SIGTERM) == 0);
    REQUIRE(cluster_start(c, 1));
    REQUIRE(cluster_wait_leader(c, WAIT_MS) == 1);
    REQUIRE(cluster_get_is(c->client, "solo", "one"));
    REQUIRE(cluster_stop(c, 1, SIGTERM) == 0);
    return true;
}

/* Near max_db_bytes the leader refuses writes with "storage full" and keeps serving
 * status; raftd keeps running. */
static bool scenario_storage_full(struct cluster *c)
{
    REQUIRE(cluster_start(c, 1));
    REQUIRE(cluster_wait_leader(c, WAIT_MS) == 1);
    struct raftkv_client *client = cluster_client(c, 1, 2000);
    REQUIRE(client);
    static uint8_t value[256 << 10];
    memset(value, 'x', sizeof value);
    int rc = RAFTKV_OK, puts = 0;
    struct raftkv_result res;
    memset(&res, 0, sizeof res);
    for (; rc == RAFTKV_OK && puts < 200; puts++) {
        raftkv_result_free(&res);
        memset(&res, 0, sizeof res);
        rc = raftkv_put(client, "big", 3, value, sizeof value, &res);
    }
    fprintf(stderr, "  put %d: status %d: %s\n", puts, rc, res.error);
    raftkv_result_free(&res);
    raftkv_client_close(client);
    /* Which failure the client saw last depends on timing; the node says why it refused. */
    REQUIRE(rc == RAFTKV_UNAVAILABLE && puts > 1);
    REQUIRE(cluster_log_contains(c, 1, "storage nearly full"));
    struct raftkv_node_status st;
    REQUIRE(cluster_status(c, 1, &st) && strcmp(st.role, "leader") == 0);
    REQUIRE(cluster_stop(c, 1, SIGTERM) == 0);
    return true;
}

/* A follower whose map fills holds its batch and drops out; the others go on. Given room
 * (a larger max_db_bytes) and a restart, it catches up. */
static bool scenario_follower_full(struct cluster *c)
{
    REQUIRE(cluster_configure(c, 3, "max_db_bytes = 12MiB"));
    REQUIRE(cluster_start_all(c));
    uint64_t leader = cluster_wait_leader(c, WAIT_MS);
    for (int i = 0; leader == 3 && i < 5; i++) {
        REQUIRE(cluster_stop(c, 3, SIGTERM) == 0);
        leader = cluster_wait_leader(c, WAIT_MS);
        REQUIRE(cluster_start(c, 3));
    }
    REQUIRE(leader && leader != 3);
    static uint8_t value[256 << 10];
    memset(value, 'x', sizeof value);
    uint64_t rev = 0;
    for (int i = 0; i < 80; i++) {
        struct raftkv_result res;
        memset(&res, 0, sizeof res);
        int rc = raftkv_put(c->client, "big", 3, value, sizeof value, &res);
        rev = res.revision;
        raftkv_result_free(&res);
        REQUIRE(rc == RAFTKV_OK);
    }
    REQUIRE(cluster_log_contains(c, 3, "cannot persist a batch (storage full)"));
    struct raftkv_node_status st;
    REQUIRE(cluster_status(c, 3, &st) && st.applied_index < rev);
    REQUIRE(cluster_stop(c, 3, SIGTERM) == 0);
    REQUIRE(cluster_configure(c, 3, "max_db_bytes = 1GiB"));
    REQUIRE(cluster_start(c, 3));
    REQUIRE(cluster_wait_applied(c, 3, rev, WAIT_MS));
    return true;
}

/* A leader whose map fills refuses writes and leaves the lead to a node with room (Raft
 * itself would let it lead on, stalling every write); writes go on there. */
static bool scenario_leader_full(struct cluster *c)
{
    REQUIRE(cluster_configure(c, 1, "max_db_bytes = 12MiB"));
    REQUIRE(cluster_start_all(c));
    uint64_t leader = cluster_wait_leader(c, WAIT_MS);
    for (int i = 0; leader && leader != 1 && i < 20; i++) {
        REQUIRE(cluster_stop(c, (int)leader, SIGTERM) == 0);
        uint64_t stopped = leader;
        leader = cluster_wait_leader(c, WAIT_MS);
        REQUIRE(cluster_start(c, (int)stopped));
    }
    REQUIRE(leader == 1);
    static uint8_t value[256 << 10];
    memset(value, 'x', sizeof value);
    for (int i = 0; i < 80; i++) {
        struct raftkv_result res;
        memset(&res, 0, sizeof res);
        int rc = raftkv_put(c->client, "big", 3, value, sizeof value, &res);
        if (rc != RAFTKV_OK)
            fprintf(stderr, "  put %d: status %d: %s\n", i, rc, res.error);
        raftkv_result_free(&res);
        REQUIRE(rc == RAFTKV_OK);
    }
    REQUIRE(cluster_log_contains(c, 1, "storage nearly full"));
    leader = cluster_wait_leader(c, WAIT_MS);
    REQUIRE(leader && leader != 1);
    return true;
}

/* Sends env to node `to`'s peer port, as a peer on the same network could, and waits for
 * the transport's acknowledgement. */
static bool send_forged(struct cluster *c, int to, Raftkv__Raft__Envelope *env)
{
    env->version = RK_WIRE_VERSION;
    env->cluster_id = 99;
    env->to = (uint64_t)to;
    size_t len = raftkv__raft__envelope__get_packed_size(env);
    uint8_t *buf = malloc(len);
    REQUIRE(buf);
    raftkv__raft__envelope__pack(env, buf);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", c->ports[3 * (to - 1)]);
    nng_socket s;
    char *ack = NULL;
    size_t ack_len = 0;
    bool ok = nng_req0_open(&s) == 0;
    ok = ok && nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, WAIT_MS) == 0 &&
         nng_dial(s, url, NULL, 0) == 0 && nng_send(s, buf, len, 0) == 0 &&
         nng_recv(s, &ack, &ack_len, NNG_FLAG_ALLOC) == 0;
    if (ack)
        nng_free(ack, ack_len);
    nng_close(s);
    free(buf);
    return ok;
}

/* One hand-made AppendEntriesResponse of term from node `from`. */
static bool send_forged_term(struct cluster *c, int from, int to, uint64_t term)
{
    Raftkv__Raft__AppendEntriesResponse r = RAFTKV__RAFT__APPEND_ENTRIES_RESPONSE__INIT;
    r.term = term;
    r.success = true;
    r.index = 1;
    Raftkv__Raft__Envelope env = RAFTKV__RAFT__ENVELOPE__INIT;
    env.from = (uint64_t)from;
    env.msg_case = RAFTKV__RAFT__ENVELOPE__MSG_APPEND_ENTRIES_RESPONSE;
    env.append_entries_response = &r;
    return send_forged(c, to, &env);
}

/* Sends follower a whole snapshot in one InstallSnapshot from the leader's id and term:
 * junk, with the node's trailer (node/snapshot_files.h) that matches it when sealed. */
static bool send_junk_snapshot(struct cluster *c, uint64_t leader, int follower, bool sealed)
{
    struct raftkv_node_status st;
    REQUIRE(cluster_status(c, (int)leader, &st));
    static uint8_t junk[4096 + RK_SNAP_TRAILER_BYTES];
    size_t len = 4096;
    for (size_t i = 0; i < len; i++)
        junk[i] = (uint8_t)(i * 2654435761u >> 24);
    if (sealed) {
        uint32_t crc = rk_crc32c(0, junk, len);
        memcpy(junk + len, "RKSC", 4);
        for (int i = 0; i < 4; i++)
            junk[len + 4 + i] = (uint8_t)(crc >> (24 - 8 * i));
        rk_db_encode_u64(junk + len + 8, len);
        len += RK_SNAP_TRAILER_BYTES;
    }
    Raftkv__Raft__InstallSnapshot is = RAFTKV__RAFT__INSTALL_SNAPSHOT__INIT;
    is.term = st.term;
    is.last_included_index = st.commit_index + 1000;
    is.last_included_term = st.term;
    is.data = (ProtobufCBinaryData){len, junk};
    is.done = true;
    Raftkv__Raft__Envelope env = RAFTKV__RAFT__ENVELOPE__INIT;
    env.from = leader;
    env.msg_case = RAFTKV__RAFT__ENVELOPE__MSG_INSTALL_SNAPSHOT;
    env.install_snapshot = &is;
    return send_forged(c, follower, &env);
}

/* A forged snapshot (junk from the leader's id, in its term) used to make the follower exit,
 * and exit again at every restart. Now it is refused, said and counted, and the follower
 * stays in the cluster: junk caught by the node's trailer, and junk with a matching trailer
 * caught by the state machine. */
static bool scenario_forged_snapshot(struct cluster *c)
{
    REQUIRE(cluster_start_all(c));
    uint64_t leader = cluster_wait_leader(c, WAIT_MS);
    REQUIRE(leader);
    uint64_t rev = 0;
    REQUIRE(put_ok(c->client, "before", "1", &rev));
    int follower = leader == 1 ? 2 : 1;
    REQUIRE(cluster_wait_applied(c, follower, rev, WAIT_MS));
    struct raftkv_node_status st = {0};
    for (uint64_t sent = 1; sent <= 2; sent++) {
        REQUIRE(send_junk_snapshot(c, leader, follower, sent == 2));
        uint64_t deadline = now_ms() + WAIT_MS;
        while (!(cluster_status(c, follower, &st) && st.counters.snapshots_refused >= sent) &&
               now_ms() < deadline)
            sleep_ms(20);
        REQUIRE(st.counters.snapshots_refused == sent);
    }
    REQUIRE(cluster_log_contains(c, follower, "do not match its trailer"));
    REQUIRE(cluster_log_contains(c, follower, "malformed"));
    /* It still follows: it applies what comes next, and has what it had. */
    REQUIRE(put_ok(c->client, "after", "2", &rev));
    REQUIRE(cluster_wait_applied(c, follower, rev, WAIT_MS));
    REQUIRE(cluster_get_is(c->client, "before", "1"));
    REQUIRE(c->nodes[follower - 1].pid && kill(c->nodes[follower - 1].pid, 0) == 0);
    return true;
}

/* One packet with the largest term used to raise every node's term for good, wrap it at
 * the next election and leave the cluster without a leader across restarts. It is now
 * dropped, said in the log, and the cluster goes on as it was. */
static bool scenario_forged_term(struct cluster *c)
{
    REQUIRE(cluster_start_all(c));
    REQUIRE(cluster_wait_leader(c, WAIT_MS));
    REQUIRE(put_ok(c->client, "before", "1", NULL));
    for (int i = 1; i <= 3; i++)
        REQUIRE(send_forged_term(c, i % 3 + 1, i, UINT64_MAX));
    uint64_t deadline = now_ms() + WAIT_MS;
    for (int i = 1; i <= 3; i++) {
        while (!cluster_log_contains(c, i, "is out of range") && now_ms() < deadline)
            sleep_ms(20);
        REQUIRE(cluster_log_contains(c, i, "is out of range"));
    }
    REQUIRE(put_ok(c->client, "after", "2", NULL));
    for (int i = 1; i <= 3; i++) {
        struct raftkv_node_status st;
        REQUIRE(cluster_status(c, i, &st) && st.term < 1000);
        REQUIRE(st.counters.msgs_dropped_malformed > 0);
    }
    /* Elections still work: the leader goes, another takes over. */
    uint64_t leader = cluster_wait_leader(c, WAIT_MS);
    REQUIRE(cluster_stop(c, (int)leader, SIGKILL) == -1);
    REQUIRE(put_ok(c->client, "elected", "3", NULL));
    return true;
}

/* Runs raftd on a config with text; checks the exit status and that its output holds
 * want (with "%s" standing for the config's path). */
static bool raftd_fails(const char *dir, const char *text, int status, const char *want)
{
    char conf[128], out[128], expected[512], got[2048] = "";
    snprintf(conf, sizeof conf, "%s/bad.conf", dir);
    snprintf(out, sizeof out, "%s/bad.out", dir);
    FILE *f = fopen(conf, "w");
    REQUIRE(f && fputs(text, f) >= 0 && fclose(f) == 0);
    const char *argv[] = {RAFTD_PATH, "--config", conf, NULL};
    int rc = run_capture(argv, out);
    f = fopen(out, "r");
    REQUIRE(f);
    size_t n = fread(got, 1, sizeof got - 1, f);
    got[n] = '\0';
    fclose(f);
    snprintf(expected, sizeof expected, want, conf);
    if (rc != status || !strstr(got, expected))
        fprintf(stderr, "raftd exited %d (want %d) saying:\n%s\nwanted: %s\n", rc, status, got,
                expected);
    return rc == status && strstr(got, expected);
}

static bool scenario_bad_config(struct cluster *c)
{
    const char *base = "node_id = 1\ncluster_id = 5\n";
    char text[512];
    snprintf(text, sizeof text, "%selection_timeout_min_ms = abc\n", base);
    REQUIRE(raftd_fails(c->dir, text, 2,
                        "%s:3: election_timeout_min_ms: expected a number of milliseconds, got "
                        "\"abc\""));
    snprintf(text, sizeof text, "%snode_id = 2\n", base);
    REQUIRE(raftd_fails(c->dir, text, 2, "%s:3: node_id: duplicate key (first set on line 1)"));
    snprintf(text, sizeof text, "%sbogus = 1\n", base);
    REQUIRE(raftd_fails(c->dir, text, 2, "%s:3: bogus: unknown key"));
    REQUIRE(raftd_fails(c->dir, base, 2, "%s: data_dir: required key missing"));
    const char *argv[] = {RAFTD_PATH, "--config", "/nonexistent/raftd.conf", NULL};
    char out[128];
    snprintf(out, sizeof out, "%s/missing.out", c->dir);
    REQUIRE(run_capture(argv, out) == 2);
    /* A data dir stamped by another cluster is refused at start (status 2, as bad data). */
    REQUIRE(cluster_start(c, 1));
    REQUIRE(cluster_stop(c, 1, SIGTERM) == 0);
    snprintf(text, sizeof text,
             "node_id = 1\ncluster_id = 12345\ndata_dir = %s\npeer.1 = tcp://127.0.0.1:1\n"
             "client.1 = tcp://127.0.0.1:2\n",
             c->nodes[0].data);
    REQUIRE(raftd_fails(c->dir, text, 2, "cannot open data dir"));
    return true;
}

static bool scenario_change_stream(struct cluster *c)
{
    struct sub subs[3];
    for (int i = 0; i < 3; i++)
        REQUIRE(sub_open(&subs[i], c->nodes[i].pub_url));
    REQUIRE(cluster_start_all(c));
    REQUIRE(cluster_wait_leader(c, WAIT_MS));
    uint64_t sync_rev;
    bool ok = subs_sync(c, subs, 3, &sync_rev);
    enum { N = 100 };
    uint64_t rev[N];
    char key[32], value[32];
    for (int i = 0; ok && i < N; i++) {
        snprintf(key, sizeof key, "s%d", i % 10); /* keys are overwritten: 10 keys */
        snprintf(value, sizeof value, "v%d", i);
        ok = put_ok(c->client, key, value, &rev[i]);
    }
    for (int s = 0; ok && s < 3; s++) {
        for (int i = 0; ok && i < N; i++) {
            Raftkv__Kv__ChangeEvent *ev = sub_next(&subs[s], WAIT_MS);
            snprintf(key, sizeof key, "s%d", i % 10);
            snprintf(value, sizeof value, "v%d", i);
            ok = change_is(ev, key, value) && ev->revision == rev[i] &&
                 ev->kind == RAFTKV__KV__CHANGE_EVENT__KIND__PUT;
            if (!ok)
                fprintf(stderr, "node %d: change %d: want %s=%s at %llu, got %s\n", s + 1, i, key,
                        value, (unsigned long long)rev[i], ev ? "another" : "none");
            if (ev)
                raftkv__kv__change_event__free_unpacked(ev, NULL);
        }
    }
    /* A delete is published too, and nothing is published twice. */
    struct raftkv_result res;
    memset(&res, 0, sizeof res);
    ok = ok && raftkv_delete(c->client, "s0", 2, &res) == RAFTKV_OK;
    raftkv_result_free(&res);
    for (int s = 0; ok && s < 3; s++) {
        Raftkv__Kv__ChangeEvent *ev = sub_next(&subs[s], WAIT_MS);
        ok = ev && ev->kind == RAFTKV__KV__CHANGE_EVENT__KIND__DELETE && ev->revision > rev[N - 1];
        if (ev)
            raftkv__kv__change_event__free_unpacked(ev, NULL);
        ev = sub_next(&subs[s], 300);
        ok = ok && ev == NULL;
        if (ev)
            raftkv__kv__change_event__free_unpacked(ev, NULL);
    }
    subs_close(subs, 3);
    return ok;
}

/* ---- Exactly-once writes (issue 11). ---- */

/* The median time of a few puts, in ms (at least 1). */
static unsigned put_latency_ms(struct cluster *c)
{
    unsigned ms[9];
    for (int i = 0; i < 9; i++) {
        uint64_t t = now_ms();
        if (raftkv_put(c->client, "probe", 5, "x", 1, NULL) != RAFTKV_OK)
            return 0;
        ms[i] = (unsigned)(now_ms() - t);
    }
    for (int i = 1; i < 9; i++) /* insertion sort */
        for (int j = i; j > 0 && ms[j - 1] > ms[j]; j--) {
            unsigned t = ms[j];
            ms[j] = ms[j - 1];
            ms[j - 1] = t;
        }
    return ms[4] ? ms[4] : 1;
}

static uint64_t leader_last_index(struct cluster *c)
{
    struct raftkv_node_status st;
    uint64_t leader = cluster_wait_leader(c, WAIT_MS);
    return leader && cluster_status(c, (int)leader, &st) ? st.last_log_index : 0;
}

/* A counter advanced by cas from a client whose requests time out about half the time, so
 * that it resends writes whose first copy was committed: every cas applies once and
 * reports its own outcome. A cas of unknown outcome is settled by a read. Without
 * sessions, a copy applied twice shows as a mismatch, often holding the cas's own value. */
static bool scenario_retried_writes(struct cluster *c)
{
    REQUIRE(cluster_start_all(c));
    REQUIRE(cluster_wait_leader(c, WAIT_MS));
    unsigned latency = put_latency_ms(c);
    REQUIRE(latency > 0);
    struct raftkv_client *hasty = cluster_client_opts(c, 0, 60000, latency);
    REQUIRE(hasty);
    uint64_t first_index = leader_last_index(c);
    int counter = 0, ok = 0, unknown = 0, mismatches = 0;
    REQUIRE(raftkv_put(c->client, "counter", 7, "0", 1, NULL) == RAFTKV_OK);
    for (int i = 0; i < 60; i++) {
        char expected[16], next[16];
        snprintf(expected, sizeof expected, "%d", counter);
        snprintf(next, sizeof next, "%d", counter + 1);
        struct raftkv_result res;
        int st =
            raftkv_cas(hasty, "counter", 7, expected, strlen(expected), next, strlen(next), &res);
        if (st == RAFTKV_CAS_MISMATCH) {
            fprintf(stderr, "cas %s -> %s: mismatch, current value %.*s\n", expected, next,
                    (int)res.value_len, res.value ? (const char *)res.value : "");
            mismatches++;
        }
        raftkv_result_free(&res);
        REQUIRE(st == RAFTKV_OK || st == RAFTKV_UNAVAILABLE || st == RAFTKV_CAS_MISMATCH);
        ok += st == RAFTKV_OK;
        if (st == RAFTKV_OK)
            counter++;
        else if (st == RAFTKV_UNAVAILABLE) {
            unknown++;
            REQUIRE(raftkv_get(c->client, "counter", 7, &res) == RAFTKV_OK);
            char now[16];
            snprintf(now, sizeof now, "%.*s", (int)res.value_len, (const char *)res.value);
            raftkv_result_free(&res);
            REQUIRE(strcmp(now, expected) == 0 || strcmp(now, next) == 0);
            counter = atoi(now);
        }
    }
    raftkv_client_close(hasty);
    uint64_t entries = leader_last_index(c) - first_index;
    fprintf(stderr, "  request timeout %u ms: %d cas ok, %d unknown, %d mismatches; %llu entries\n",
            latency, ok, unknown, mismatches, (unsigned long long)entries);
    REQUIRE(mismatches == 0);
    /* The test must have made the library resend committed writes: more entries than
     * operations (and one registration, plus its own copies). */
    REQUIRE(ok > 0);
    REQUIRE(entries > 60 + 2);
    char want[16];
    snprintf(want, sizeof want, "%d", counter);
    return cluster_get_is(c->client, "counter", want);
}

/* ---- A disk that fails a synced write. ---- */

/* Makes the nodes started from now on load tests/cluster/fail_sync.c, armed by trigger. */
static void fail_sync_preload(const char *trigger, char *saved_asan, size_t len)
{
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(saved_asan, len, "%s", asan ? asan : "");
    char opts[512];
    /* The preloaded library comes before the sanitizer runtime of an instrumented raftd. */
    snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0", saved_asan,
             saved_asan[0] ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    setenv("LD_PRELOAD", FAIL_SYNC_PATH, 1);
    setenv("RAFTKV_TEST_FAIL_SYNC_FILE", trigger, 1);
}

static void fail_sync_preload_end(const char *saved_asan)
{
    unsetenv("LD_PRELOAD");
    unsetenv("RAFTKV_TEST_FAIL_SYNC_FILE");
    if (saved_asan[0])
        setenv("ASAN_OPTIONS", saved_asan, 1);
    else
        unsetenv("ASAN_OPTIONS");
}

/* Waits for node id's process to exit on its own; returns its wait status, or -1. */
static int wait_exit(struct cluster *c, int id, unsigned timeout_ms)
{
    struct cnode *node = &c->nodes[id - 1];
    uint64_t deadline = now_ms() + timeout_ms;
    int status;
    while (waitpid(node->pid, &status, WNOHANG) != node->pid) {
        if (now_ms() >= deadline)
            return -1;
        sleep_ms(20);
    }
    node->pid = 0;
    return status;
}

/* Under load, the leader's disk fails a write (fsync returns EIO). The leader must stop at
 * once (fail-stop: anything acknowledged after a lost write could be lost with it), the
 * others go on with a new leader, and the node restarted on a good disk catches up; no
 * acknowledged write is lost. */
static bool scenario_failed_sync_body(struct cluster *c, const char *trigger)
{
    REQUIRE(cluster_start_all(c));
    uint64_t leader = cluster_wait_leader(c, WAIT_MS);
    REQUIRE(leader);
    atomic_bool stop = false;
    struct writer w[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (struct writer){.c = c, .id = i, .stop = &stop, .timeout_ms = 30000};
        atomic_init(&w[i].acked, 0);
        REQUIRE(pthread_create(&w[i].thread, NULL, writer_main, &w[i]) == 0);
    }
    uint64_t deadline = now_ms() + 30000;
    while (total_acked(w) < 200 && now_ms() < deadline)
        sleep_ms(5);
    FILE *f = fopen(trigger, "w");
    bool armed = f && fprintf(f, "%d\n", (int)c->nodes[leader - 1].pid) > 0;
    if (f)
        armed = fclose(f) == 0 && armed;
    int status = armed ? wait_exit(c, (int)leader, 30000) : -1;
    int at_failure = total_acked(w);
    /* The others keep taking writes under a new leader. */
    deadline = now_ms() + 30000;
    while (total_acked(w) < at_failure + 200 && now_ms() < deadline)
        sleep_ms(5);
    int after = total_acked(w);
    bool restarted = status != -1 && cluster_start(c, (int)leader);
    atomic_store(&stop, true);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(w[i].thread, NULL);
    fprintf(stderr,
            "  node %llu stopped with status %d after its fsync failed; %d puts "
            "acknowledged then, %d later\n",
            (unsigned long long)leader, status, at_failure, after - at_failure);
    REQUIRE(armed);
    REQUIRE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) != 0);
    REQUIRE(after >= at_failure + 200);
    REQUIRE(restarted);
    uint64_t new_leader = cluster_wait_leader(c, WAIT_MS);
    REQUIRE(new_leader);
    struct raftkv_node_status st;
    REQUIRE(cluster_status(c, (int)new_leader, &st));
    REQUIRE(cluster_wait_applied(c, (int)leader, st.commit_index, WAIT_MS));
    char key[64], value[64];
    for (int t = 0; t < WRITERS; t++)
        for (int i = 0; i < atomic_load(&w[t].acked); i++) {
            writer_kv(t, i, key, value, sizeof key);
            REQUIRE(cluster_get_is(c->client, key, value));
        }
    return true;
}

static bool scenario_failed_sync(struct cluster *c)
{
    char trigger[128], saved_asan[256];
    snprintf(trigger, sizeof trigger, "%s/fail-sync", c->dir);
    fail_sync_preload(trigger, saved_asan, sizeof saved_asan);
    bool ok = scenario_failed_sync_body(c, trigger);
    fail_sync_preload_end(saved_asan);
    return ok;
}

/* ---- A client that sends and never reads. ---- */

/* A packed client envelope asking for key (a get). */
static size_t get_request(const char *key, uint8_t *buf, size_t cap)
{
    Raftkv__Kv__Get get = RAFTKV__KV__GET__INIT;
    Raftkv__Kv__Request kv = RAFTKV__KV__REQUEST__INIT;
    get.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    kv.op_case = RAFTKV__KV__REQUEST__OP_GET;
    kv.get = &get;
    uint8_t inner[256];
    size_t n = raftkv__kv__request__pack(&kv, inner);
    Raftkv__Client__Request env = RAFTKV__CLIENT__REQUEST__INIT;
    env.body_case = RAFTKV__CLIENT__REQUEST__BODY_FSM;
    env.fsm = (ProtobufCBinaryData){n, inner};
    return raftkv__client__request__get_packed_size(&env) <= cap
               ? raftkv__client__request__pack(&env, buf)
               : 0;
}

/* A raw req socket that takes in one reply and then reads no more: its connection stops
 * taking bytes, as a client that never reads. It asks for a large value many times. */
static bool flood_without_reading(struct cluster *c, int id, int requests, nng_socket *s)
{
    uint8_t req[512];
    size_t len = get_request("big", req, sizeof req);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", c->ports[3 * (id - 1) + 1]);
    REQUIRE(len && nng_req0_open_raw(s) == 0);
    REQUIRE(nng_socket_set_int(*s, NNG_OPT_RECVBUF, 1) == 0);
    REQUIRE(nng_dial(*s, url, NULL, 0) == 0);
    for (int i = 0; i < requests; i++) {
        nng_msg *m;
        REQUIRE(nng_msg_alloc(&m, 0) == 0);
        REQUIRE(nng_msg_header_append_u32(m, 0x80000000u | (uint32_t)i) == 0);
        REQUIRE(nng_msg_append(m, req, len) == 0);
        if (nng_sendmsg(*s, m, 0) != 0) {
            nng_msg_free(m);
            break; /* the node closed the connection already */
        }
    }
    return true;
}

/* A client that sends hundreds of requests for a 256 KiB value and never reads the replies
 * used to hold the node's server contexts (and the replies' memory) for good; the node's
 * client port stopped answering. Now the node drops what is over the connection's share,
 * closes the connection once a reply waits too long, and serves everyone else meanwhile. */
static bool scenario_slow_reader(struct cluster *c)
{
    REQUIRE(cluster_start_all(c));
    uint64_t leader = cluster_wait_leader(c, WAIT_MS);
    REQUIRE(leader);
    static char big[256 << 10];
    memset(big, 'b', sizeof big - 1);
    REQUIRE(raftkv_put(c->client, "big", 3, big, sizeof big - 1, NULL) == RAFTKV_OK);
    nng_socket flood;
    REQUIRE(flood_without_reading(c, (int)leader, 1200, &flood));
    /* Everyone else is served all along, until the node gave up on the flooder. */
    struct raftkv_node_status st = {0};
    uint64_t deadline = now_ms() + 60000;
    int puts = 0;
    do {
        char key[32];
        snprintf(key, sizeof key, "meanwhile%d", puts++);
        REQUIRE(put_ok(c->client, key, "x", NULL));
        REQUIRE(cluster_get_is(c->client, key, "x"));
    } while (!(cluster_status(c, (int)leader, &st) && st.counters.conns_closed_slow > 0) &&
             now_ms() < deadline);
    nng_close(flood);
    fprintf(stderr,
            "  %d puts and gets served meanwhile; the node dropped %llu requests over "
            "the connection's share and closed %llu slow connection(s)\n",
            puts, (unsigned long long)st.counters.requests_over_limit,
            (unsigned long long)st.counters.conns_closed_slow);
    REQUIRE(st.counters.conns_closed_slow >= 1);
    REQUIRE(st.counters.requests_over_limit >= 1);
    return cluster_log_contains(c, (int)leader, "it took no reply");
}

/* Lists the keys of [r/, r0) through client, limit keys a page, following more; checks them
 * against the acknowledged ones (present[i]: key r/%04d holds its value). */
static bool range_pages_are(struct raftkv_client *client, size_t limit, const bool *present,
                            int n_keys, uint64_t min_revision)
{
    uint8_t from[16] = "r/", end[16];
    size_t from_len = 2, end_len = raftkv_prefix_end(from, 2, end);
    int next = 0, pages = 0;
    for (bool more = true; more; pages++) {
        struct raftkv_range_result r;
        int st = raftkv_range(client, from, from_len, end, end_len, limit, &r);
        REQUIRE(st == RAFTKV_OK);
        bool ok = r.revision >= min_revision && (r.count > 0 || !r.more);
        for (size_t i = 0; ok && i < r.count; i++) {
            while (next < n_keys && !present[next])
                next++;
            char key[16], value[32];
            snprintf(key, sizeof key, "r/%04d", next);
            snprintf(value, sizeof value, "value-%d", next++);
            ok = r.kvs[i].key_len == strlen(key) && !memcmp(r.kvs[i].key, key, strlen(key)) &&
                 r.kvs[i].value_len == strlen(value) &&
                 !memcmp(r.kvs[i].value, value, strlen(value));
            if (!ok)
                fprintf(stderr, "page %d: key %zu is %.*s, expected %s\n", pages, i,
                        (int)r.kvs[i].key_len, (const char *)r.kvs[i].key, key);
        }
        more = r.more;
        if (ok && more) {
            memcpy(from, r.kvs[r.count - 1].key, r.kvs[r.count - 1].key_len);
            from[r.kvs[r.count - 1].key_len] = 0;
            from_len = r.kvs[r.count - 1].key_len + 1;
        }
        raftkv_range_result_free(&r);
        REQUIRE(ok);
    }
    while (next < n_keys && !present[next])
        next++;
    if (next != n_keys)
        fprintf(stderr, "the range ended before r/%04d\n", next);
    return next == n_keys;
}

/* Many puts (and some deletes) through the leader, then a prefix range through a follower
 * (the client follows its hint to the leader), whole and in pages of a few keys: exactly
 * the acknowledged keys, each once, in order. */
static bool scenario_range(struct cluster *c)
{
    enum { N = 300 };
    bool present[N];
    REQUIRE(cluster_start_all(c));
    uint64_t leader = cluster_wait_leader(c, WAIT_MS);
    REQUIRE(leader);
    struct raftkv_client *w = cluster_client(c, (int)leader, WAIT_MS);
    REQUIRE(w);
    uint64_t rev = 0;
    bool ok = put_ok(w, "r0", "outside", &rev) && put_ok(w, "r.", "outside", &rev);
    for (int i = 0; ok && i < N; i++) {
        char key[16], value[32];
        snprintf(key, sizeof key, "r/%04d", i);
        snprintf(value, sizeof value, "value-%d", i);
        ok = put_ok(w, key, value, &rev);
        present[i] = true;
    }
    for (int i = 0; ok && i < N; i += 7) {
        char key[16];
        snprintf(key, sizeof key, "r/%04d", i);
        struct raftkv_result res;
        ok = raftkv_delete(w, key, strlen(key), &res) == RAFTKV_OK;
        rev = res.revision;
        present[i] = false;
        raftkv_result_free(&res);
    }
    raftkv_client_close(w);
    REQUIRE(ok);
    int follower = leader == 1 ? 2 : 1;
    struct raftkv_client *r = cluster_client(c, follower, WAIT_MS);
    REQUIRE(r);
    ok = range_pages_are(r, 0, present, N, rev) && range_pages_are(r, 7, present, N, rev) &&
         range_pages_are(r, 1, present, N, rev);
    raftkv_client_close(r);
    return ok;
}

static bool with_cluster(int n, bool (*fn)(struct cluster *c))
{
    return cluster_run(n, NULL, fn);
}

TEST(range_through_a_follower)
{
    CHECK(with_cluster(3, scenario_range));
}
TEST(replicate_three_nodes)
{
    CHECK(with_cluster(3, scenario_replicate));
}

TEST(failover_kill_leader)
{
    CHECK(with_cluster(3, scenario_failover));
}

TEST(crash_all_keeps_acknowledged)
{
    CHECK(with_cluster(3, scenario_crash_all));
}

TEST(wiped_node_rejoins)
{
    CHECK(with_cluster(3, scenario_wiped_node));
}

TEST(single_node)
{
    CHECK(with_cluster(1, scenario_single));
}

TEST(bad_config)
{
    CHECK(with_cluster(1, scenario_bad_config));
}

TEST(storage_full)
{
    CHECK(cluster_run(1, "max_db_bytes = 16MiB", scenario_storage_full));
}

TEST(follower_full)
{
    CHECK(with_cluster(3, scenario_follower_full));
}

TEST(leader_full)
{
    CHECK(with_cluster(3, scenario_leader_full));
}

TEST(forged_term)
{
    CHECK(with_cluster(3, scenario_forged_term));
}

TEST(forged_snapshot)
{
    CHECK(with_cluster(3, scenario_forged_snapshot));
}

TEST(slow_reader_loses_its_own_connection)
{
    CHECK(with_cluster(3, scenario_slow_reader));
}

TEST(change_stream)
{
    CHECK(with_cluster(3, scenario_change_stream));
}

TEST(retried_writes_apply_once)
{
    CHECK(with_cluster(3, scenario_retried_writes));
}

TEST(failed_sync_stops_the_node)
{
    CHECK(with_cluster(3, scenario_failed_sync));
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    static const struct test_case cases[] = {TEST_REF(replicate_three_nodes),
                                             TEST_REF(failover_kill_leader),
                                             TEST_REF(crash_all_keeps_acknowledged),
                                             TEST_REF(wiped_node_rejoins),
                                             TEST_REF(single_node),
                                             TEST_REF(bad_config),
                                             TEST_REF(storage_full),
                                             TEST_REF(follower_full),
                                             TEST_REF(leader_full),
                                             TEST_REF(forged_term),
                                             TEST_REF(forged_snapshot),
                                             TEST_REF(slow_reader_loses_its_own_connection),
                                             TEST_REF(change_stream),
                                             TEST_REF(retried_writes_apply_once),
                                             TEST_REF(failed_sync_stops_the_node),
                                             TEST_REF(range_through_a_follower)};
    return test_run_all(cases, sizeof cases / sizeof cases[0], argc, argv);
}
