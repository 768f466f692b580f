/* Authenticated peers and clients: TLS clusters of real raftd processes, with a CA, node and
 * client certificates, and a second ("rogue") CA with its own, all made by openssl here. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "test.h"

/* ctest reports this exit status as SKIPPED (SKIP_RETURN_CODE). */
#define EXIT_SKIP 77

/* Each certificate is valid for 127.0.0.1, signed by the CA named before it. */
static const char CERTS_SCRIPT[] =
    "set -e; cd \"$1\"\n"
    "ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \\\n"
    "  -days 2 -subj \"/CN=$1\" -keyout $1.key -out $1.crt; }\n"
    "cert() { openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \\\n"
    "  -subj \"/CN=$2\" -keyout $2.key -out $2.csr\n"
    "  printf 'subjectAltName=IP:127.0.0.1\\n' > $2.ext\n"
    "  openssl x509 -req -in $2.csr -CA $1.crt -CAkey $1.key -CAcreateserial -days 2 \\\n"
    "  -extfile $2.ext -out $2.crt; }\n"
    "ca ca; ca rogueca\n"
    "for n in node1 node2 node3 client; do cert ca $n; done\n"
    "for n in rogue3 rogueclient; do cert rogueca $n; done\n";

static char certs[64];

static const char *cert_path(const char *name, const char *ext)
{
    static char paths[16][128];
    static int next;
    char *p = paths[next++ % 16];
    snprintf(p, sizeof paths[0], "%s/%s.%s", certs, name, ext);
    return p;
}

static bool make_certs(void)
{
    strcpy(certs, "/tmp/raftkv-certs-XXXXXX");
    REQUIRE(mkdtemp(certs));
    char log[128];
    snprintf(log, sizeof log, "%s/openssl.log", certs);
    const char *argv[] = {"sh", "-c", CERTS_SCRIPT, "sh", certs, NULL};
    REQUIRE(run_capture(argv, log) == 0);
    return true;
}

/* Gives node id the certificate `name` from the CA `ca`. */
static bool node_tls(struct cluster *c, int id, const char *name, const char *ca)
{
    char extra[512];
    snprintf(extra, sizeof extra, "tls_cert_file = %s\ntls_key_file = %s\ntls_ca_file = %s\n",
             cert_path(name, "crt"), cert_path(name, "key"), cert_path(ca, "crt"));
    return cluster_configure(c, id, extra);
}

static bool good_cluster(struct cluster *c)
{
    REQUIRE(cluster_init_tls(c, 3, cert_path("ca", "crt"), cert_path("client", "crt"),
                             cert_path("client", "key")));
    for (int i = 1; i <= 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "node%d", i);
        REQUIRE(node_tls(c, i, name, "ca"));
    }
    return true;
}

/* A client of the whole cluster with these files (cert NULL: none). */
static struct raftkv_client *client_with(struct cluster *c, const char *ca, const char *cert)
{
    struct raftkv_client_options o;
    raftkv_client_options_defaults(&o);
    o.n_endpoints = (size_t)c->n;
    o.endpoints = c->endpoints;
    o.timeout_ms = 1500;
    o.request_timeout_ms = 300;
    o.tls_ca_file = cert_path(ca, "crt");
    o.tls_cert_file = cert ? cert_path(cert, "crt") : NULL;
    o.tls_key_file = cert ? cert_path(cert, "key") : NULL;
    struct raftkv_client *client = NULL;
    return raftkv_client_open(&o, &client) == RAFTKV_OK ? client : NULL;
}

static bool put_fails(struct raftkv_client *client, const char *key)
{
    struct raftkv_result res = {0};
    int rc = raftkv_put(client, key, strlen(key), "v", 1, &res);
    raftkv_result_free(&res);
    if (rc == RAFTKV_OK)
        fprintf(stderr, "put %s was accepted\n", key);
    return rc != RAFTKV_OK;
}

static bool get_fails(struct raftkv_client *client, const char *key)
{
    struct raftkv_result res = {0};
    int rc = raftkv_get(client, key, strlen(key), &res);
    raftkv_result_free(&res);
    return rc != RAFTKV_OK && rc != RAFTKV_NOT_FOUND;
}

static bool absent(struct raftkv_client *client, const char *key)
{
    struct raftkv_result res = {0};
    int rc = raftkv_get(client, key, strlen(key), &res);
    raftkv_result_free(&res);
    if (rc != RAFTKV_NOT_FOUND)
        fprintf(stderr, "get %s: status %d, want not found\n", key, rc);
    return rc == RAFTKV_NOT_FOUND;
}

/* Runs raft-kv with the cluster's endpoints and the given words; returns its status. */
static int raft_kv(struct cluster *c, const char *const *words, const char *out)
{
    char endpoints[512] = "";
    for (int i = 0; i < c->n; i++)
        snprintf(endpoints + strlen(endpoints), sizeof endpoints - strlen(endpoints), "%s%s",
                 i ? "," : "", c->endpoints[i]);
    const char *argv[16] = {RAFT_KV_PATH, "--endpoints", endpoints, "--timeout", "2000"};
    int n = 5;
    while (*words && n < 15)
        argv[n++] = *words++;
    argv[n] = NULL;
    return run_capture(argv, out);
}

static int log_count(struct cluster *c, int id, const char *text)
{
    FILE *f = fopen(c->nodes[id - 1].log, "r");
    char line[1024];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, text) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* The leader nodes 1 and 2 agree on, 0 if they do not within timeout_ms. */
static uint64_t leader_of_two(struct cluster *c, unsigned timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;
    do {
        struct raftkv_node_status a, b;
        if (cluster_status(c, 1, &a) && cluster_status(c, 2, &b) && a.leader_id &&
            a.leader_id == b.leader_id)
            return a.leader_id;
        sleep_ms(20);
    } while (now_ms() < deadline);
    return 0;
}

/* Waits until a counter of node id, picked by get, is above 0. */
static bool counted(struct cluster *c, int id, uint64_t (*get)(const struct raftkv_node_counters *))
{
    uint64_t deadline = now_ms() + 10000;
    do {
        struct raftkv_node_status st;
        if (cluster_status(c, id, &st) && get(&st.counters) > 0)
            return true;
        sleep_ms(50);
    } while (now_ms() < deadline);
    fprintf(stderr, "node %d counted no refusal\n", id);
    return false;
}

static uint64_t peer_refused(const struct raftkv_node_counters *k)
{
    return k->peer_tls_refused;
}

static uint64_t peer_dials_failed(const struct raftkv_node_counters *k)
{
    return k->peer_tls_dials_failed;
}

static uint64_t client_refused(const struct raftkv_node_counters *k)
{
    return k->client_tls_refused;
}

static bool scenario_serves(struct cluster *c)
{
    REQUIRE(cluster_start_all(c));
    REQUIRE(cluster_wait_leader(c, 10000));
    REQUIRE(cluster_put_retry(c, "lib", "from-the-library", 10000, NULL));
    REQUIRE(cluster_get_is(c->client, "lib", "from-the-library"));
    char out[128];
    snprintf(out, sizeof out, "%s/raft-kv.out", c->dir);
    const char *tls[] = {"--tls-ca",   cert_path("ca", "crt"),
                         "--tls-cert", cert_path("client", "crt"),
                         "--tls-key",  cert_path("client", "key")};
    const char *put[] = {tls[0], tls[1], tls[2], tls[3], tls[4], tls[5], "put", "cli", "v1", NULL};
    REQUIRE(raft_kv(c, put, out) == 0);
    const char *get[] = {tls[0], tls[1], tls[2], tls[3], tls[4], tls[5], "get", "lib", NULL};
    REQUIRE(raft_kv(c, get, out) == 0);
    REQUIRE(cluster_file_contains(out, "from-the-library"));
    REQUIRE(cluster_get_is(c->client, "cli", "v1"));
    return true;
}

/* Node 3's certificate is from the rogue CA: it never joins, and is refused and counted. */
static bool scenario_rogue_node(struct cluster *c)
{
    REQUIRE(node_tls(c, 3, "rogue3", "rogueca"));
    REQUIRE(cluster_start(c, 1) && cluster_start(c, 2) && cluster_spawn(c, 3));
    uint64_t leader = leader_of_two(c, 10000);
    REQUIRE(leader == 1 || leader == 2);
    REQUIRE(cluster_put_retry(c, "k", "v", 10000, NULL));
    /* Long enough for many redials of node 3 and by node 3. */
    uint64_t until = now_ms() + 4000;
    while (now_ms() < until) {
        for (int id = 1; id <= 2; id++) {
            struct raftkv_node_status st;
            if (cluster_status(c, id, &st))
                REQUIRE(st.leader_id != 3);
        }
        sleep_ms(100);
    }
    REQUIRE(leader_of_two(c, 5000) != 0);
    REQUIRE(counted(c, 1, peer_refused) && counted(c, 1, peer_dials_failed));
    REQUIRE(counted(c, 2, peer_refused) && counted(c, 2, peer_dials_failed));
    /* Node 3 answers no client with a certificate from the cluster's CA; it is up, and
     * through its own CA it says it never led. */
    REQUIRE(c->nodes[2].pid);
    struct raftkv_client *rogue = client_with(c, "rogueca", "rogueclient");
    REQUIRE(rogue);
    struct raftkv_node_status st;
    bool answered = raftkv_status(rogue, 2, &st) == RAFTKV_OK;
    raftkv_client_close(rogue);
    REQUIRE(answered && strcmp(st.role, "leader") != 0 && st.leader_id == 0);
    for (int id = 1; id <= 2; id++)
        REQUIRE(log_count(c, id, "TLS handshake with peer 3 at") == 1);
    REQUIRE(log_count(c, 3, "TLS handshake with peer 1 at") == 1);
    return true;
}

/* Without a certificate, or with one from the rogue CA, a client neither writes nor reads;
 * nor does a client that does not speak TLS. */
static bool scenario_clients_refused(struct cluster *c)
{
    REQUIRE(cluster_start_all(c));
    REQUIRE(cluster_wait_leader(c, 10000));
    REQUIRE(cluster_put_retry(c, "there", "v", 10000, NULL));
    struct raftkv_client *none = client_with(c, "ca", NULL);
    struct raftkv_client *rogue = client_with(c, "ca", "rogueclient");
    REQUIRE(none && rogue);
    bool refused = put_fails(none, "by-none") && get_fails(none, "there") &&
                   put_fails(rogue, "by-rogue") && get_fails(rogue, "there");
    raftkv_client_close(none);
    raftkv_client_close(rogue);
    REQUIRE(refused);
    struct raftkv_client_options o;
    raftkv_client_options_defaults(&o);
    const char *plain_urls[CLUSTER_MAX_NODES];
    char plain[CLUSTER_MAX_NODES][64];
    for (int i = 0; i < c->n; i++) {
        snprintf(plain[i], sizeof plain[i], "tcp://%s", strstr(c->endpoints[i], "://") + 3);
        plain_urls[i] = plain[i];
    }
    o.n_endpoints = (size_t)c->n;
    o.endpoints = plain_urls;
    o.timeout_ms = 1500;
    o.request_timeout_ms = 300;
    struct raftkv_client *clear = NULL;
    REQUIRE(raftkv_client_open(&o, &clear) == RAFTKV_OK);
    refused = put_fails(clear, "by-plain") && get_fails(clear, "there");
    raftkv_client_close(clear);
    REQUIRE(refused);
    char out[128];
    snprintf(out, sizeof out, "%s/raft-kv.out", c->dir);
    const char *put[] = {"--tls-ca", cert_path("ca", "crt"), "put", "by-cli", "v", NULL};
    REQUIRE(raft_kv(c, put, out) == 3);
    REQUIRE(absent(c->client, "by-none") && absent(c->client, "by-rogue") &&
            absent(c->client, "by-plain") && absent(c->client, "by-cli"));
    REQUIRE(counted(c, 1, client_refused));
    return true;
}

/* Node 3 speaks plain tcp:// to TLS nodes: it never joins, and its attempts are counted. */
static bool scenario_plain_peer(struct cluster *c)
{
    FILE *f = fopen(c->nodes[2].conf, "w");
    REQUIRE(f);
    fprintf(f, "node_id = 3\ncluster_id = 99\ndata_dir = %s\nclient.3 = tcp://127.0.0.1:%d\n",
            c->nodes[2].data, c->ports[7]);
    for (int i = 0; i < 3; i++)
        fprintf(f, "peer.%d = tcp://127.0.0.1:%d\n", i + 1, c->ports[3 * i]);
    REQUIRE(fclose(f) == 0);
    REQUIRE(cluster_start(c, 1) && cluster_start(c, 2) && cluster_spawn(c, 3));
    REQUIRE(leader_of_two(c, 10000));
    REQUIRE(cluster_put_retry(c, "k", "v", 10000, NULL));
    REQUIRE(counted(c, 1, peer_refused) && counted(c, 2, peer_refused));
    sleep_ms(2000);
    uint64_t leader = leader_of_two(c, 5000);
    REQUIRE(leader == 1 || leader == 2);
    REQUIRE(c->nodes[2].pid);
    return true;
}

/* A bad TLS configuration stops raftd at start with status 2, naming the key or file. */
static bool scenario_bad_tls_config(struct cluster *c)
{
    char out[128];
    snprintf(out, sizeof out, "%s/raftd.out", c->dir);
    const char *argv[] = {RAFTD_PATH, "--config", c->nodes[0].conf, NULL};
    char extra[512];
    snprintf(extra, sizeof extra,
             "tls_cert_file = %s/missing.crt\ntls_key_file = %s\n"
             "tls_ca_file = %s\n",
             certs, cert_path("node1", "key"), cert_path("ca", "crt"));
    REQUIRE(cluster_configure(c, 1, extra));
    REQUIRE(run_capture(argv, out) == 2);
    REQUIRE(cluster_file_contains(out, "missing.crt: cannot read"));
    snprintf(extra, sizeof extra, "tls_cert_file = %s\ntls_key_file = %s\ntls_ca_file = %s\n",
             cert_path("node1", "crt"), cert_path("node1", "key"), cert_path("node1", "key"));
    REQUIRE(cluster_configure(c, 1, extra));
    REQUIRE(run_capture(argv, out) == 2);
    REQUIRE(cluster_file_contains(out, "node1.key: no PEM CERTIFICATE"));
    snprintf(extra, sizeof extra, "tls_cert_file = %s\n", cert_path("node1", "crt"));
    REQUIRE(cluster_configure(c, 1, extra));
    REQUIRE(run_capture(argv, out) == 2);
    REQUIRE(cluster_file_contains(out, "must be set together"));
    REQUIRE(cluster_configure(c, 1, NULL)); /* tls+tcp:// addresses without the files */
    REQUIRE(run_capture(argv, out) == 2);
    REQUIRE(cluster_file_contains(out, "needs tls_cert_file"));
    return true;
}

/* The HTTP gateway's client dials the TLS client port with the node's own files: with
 * tls_client_auth = optional it serves, through any node; with required raftd refuses it at
 * start, as the plain HTTP port would bypass the client certificates. */
static bool scenario_gateway(struct cluster *c)
{
    int ports[3];
    for (int i = 1; i <= 3; i++) {
        char extra[1024], name[16];
        snprintf(name, sizeof name, "node%d", i);
        ports[i - 1] = cluster_free_port();
        REQUIRE(ports[i - 1] > 0);
        snprintf(extra, sizeof extra,
                 "tls_cert_file = %s\ntls_key_file = %s\ntls_ca_file = %s\n"
                 "http_address = http://127.0.0.1:%d\nhttp_gateway = true\n",
                 cert_path(name, "crt"), cert_path(name, "key"), cert_path("ca", "crt"),
                 ports[i - 1]);
        REQUIRE(cluster_configure(c, i, extra));
        if (i == 1) {
            char out[128];
            snprintf(out, sizeof out, "%s/raftd.out", c->dir);
            const char *argv[] = {RAFTD_PATH, "--config", c->nodes[0].conf, NULL};
            REQUIRE(run_capture(argv, out) == 2);
            REQUIRE(cluster_file_contains(out, "plain HTTP would bypass tls_client_auth"));
        }
        strcat(extra, "tls_client_auth = optional\n");
        REQUIRE(cluster_configure(c, i, extra));
    }
    REQUIRE(cluster_start_all(c));
    REQUIRE(cluster_wait_leader(c, 20000));
    char body[128], out[128], url[64];
    snprintf(body, sizeof body, "%s/body", c->dir);
    snprintf(out, sizeof out, "%s/curl.out", c->dir);
    for (int i = 1; i <= 3; i++) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/kv/gw%d", ports[i - 1], i);
        const char *put[] = {"-X", "PUT", "--data-binary", "through", url, NULL};
        int st = -1;
        for (uint64_t deadline = now_ms() + 20000; st != 200 && now_ms() < deadline;)
            st = cluster_curl(put, body, out);
        REQUIRE(st == 200);
        char key[8];
        snprintf(key, sizeof key, "gw%d", i);
        REQUIRE(cluster_get_is(c->client, key, "through"));
    }
    return true;
}

static bool with_tls_cluster(bool (*fn)(struct cluster *c))
{
    struct cluster c;
    if (!good_cluster(&c)) {
        cluster_destroy(&c, true);
        return false;
    }
    bool ok = fn(&c);
    return cluster_finish(&c, ok);
}

TEST(tls_cluster_serves)
{
    CHECK(with_tls_cluster(scenario_serves));
}

TEST(tls_rogue_node_cannot_join)
{
    CHECK(with_tls_cluster(scenario_rogue_node));
}

TEST(tls_clients_without_a_good_certificate_refused)
{
    CHECK(with_tls_cluster(scenario_clients_refused));
}

TEST(tls_plain_peer_cannot_join)
{
    CHECK(with_tls_cluster(scenario_plain_peer));
}

TEST(tls_bad_config_exits_2)
{
    CHECK(with_tls_cluster(scenario_bad_tls_config));
}

TEST(tls_gateway_serves_with_client_auth_optional)
{
    if (system("curl --version >/dev/null 2>&1") != 0) {
        printf("no curl: skipped\n");
        return;
    }
    CHECK(with_tls_cluster(scenario_gateway));
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (system("openssl version >/dev/null 2>&1") != 0) {
        printf("SKIPPED: openssl not found: the TLS tests make their certificates with it\n");
        return EXIT_SKIP;
    }
    if (!make_certs()) {
        fprintf(stderr, "cannot make the test certificates (log in %s)\n", certs);
        return 1;
    }
    static const struct test_case cases[] = {
        TEST_REF(tls_cluster_serves),
        TEST_REF(tls_rogue_node_cannot_join),
        TEST_REF(tls_clients_without_a_good_certificate_refused),
        TEST_REF(tls_plain_peer_cannot_join),
        TEST_REF(tls_bad_config_exits_2),
        TEST_REF(tls_gateway_serves_with_client_auth_optional)};
    int rc = test_run_all(cases, sizeof cases / sizeof cases[0], argc, argv);
    const char *rm[] = {"rm", "-rf", certs, NULL};
    run_capture(rm, "/dev/null");
    return rc;
}
