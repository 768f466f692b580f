/* The raftd configuration parser: defaults, every value type, and its error messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/config.h"
#include "raftd_kv.h"
#include "test.h"

static char conf_dir[64];
static char conf_path[80];

/* Writes len bytes of text to node.conf in a fresh temporary directory. */
static bool write_conf(const char *text, size_t len)
{
    strcpy(conf_dir, "/tmp/raftkv-test-XXXXXX");
    if (!mkdtemp(conf_dir))
        return false;
    snprintf(conf_path, sizeof conf_path, "%s/node.conf", conf_dir);
    FILE *f = fopen(conf_path, "w");
    if (!f)
        return false;
    bool ok = fwrite(text, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* Loads len bytes of text; returns the loader's result and leaves its message in err. */
static int load_bytes(const char *text, size_t len, struct rk_config *cfg, char *err,
                      size_t err_len)
{
    err[0] = '\0';
    if (!write_conf(text, len))
        return -100;
    int rc = rk_config_load(conf_path, raftd_kv.config_defaults, cfg, err, err_len);
    unlink(conf_path);
    rmdir(conf_dir);
    return rc;
}

static int load(const char *text, struct rk_config *cfg, char *err, size_t err_len)
{
    return load_bytes(text, strlen(text), cfg, err, err_len);
}

/* True when loading len bytes of text fails with exactly "<path>:<suffix>". */
static bool bytes_fail_with(const char *text, size_t len, const char *suffix)
{
    struct rk_config cfg;
    char err[512], want[600];
    if (load_bytes(text, len, &cfg, err, sizeof err) == 0) {
        rk_config_free(&cfg);
        fprintf(stderr, "  loaded, expected error: %s\n", suffix);
        return false;
    }
    snprintf(want, sizeof want, "%s%s", conf_path, suffix);
    if (strcmp(err, want) != 0) {
        fprintf(stderr, "  got:  %s\n  want: %s\n", err, want);
        return false;
    }
    return true;
}

static bool fails_with(const char *text, const char *suffix)
{
    return bytes_fail_with(text, strlen(text), suffix);
}

#define BASE                                                                                       \
    "node_id = 2\n"                                                                                \
    "cluster_id = 77\n"                                                                            \
    "data_dir = /tmp/x\n"                                                                          \
    "peer.1 = tcp://127.0.0.1:7001\n"                                                              \
    "peer.2 = tcp://127.0.0.1:7002\n"                                                              \
    "client.2 = tcp://127.0.0.1:7102\n"

TEST(minimal_config_gets_defaults)
{
    struct rk_config cfg;
    char err[512];
    CHECK_EQ(load(BASE, &cfg, err, sizeof err), 0);
    CHECK_EQ(cfg.node_id, 2);
    CHECK_EQ(cfg.cluster_id, 77);
    CHECK(strcmp(cfg.data_dir, "/tmp/x") == 0);
    CHECK_EQ(cfg.n_members, 2);
    CHECK_EQ(cfg.members[0].id, 1);
    CHECK(cfg.members[0].client_url == NULL);
    CHECK(strcmp(cfg.listen_peer, "tcp://127.0.0.1:7002") == 0);
    CHECK(strcmp(cfg.listen_client, "tcp://127.0.0.1:7102") == 0);
    CHECK(cfg.listen_pub == NULL && cfg.pub_address == NULL);
    /* The default of each setting is checked against the README and node.conf.example by
     * test_config_docs.c, so that its value is written in no third place. */
    rk_config_free(&cfg);
}

TEST(every_key_parses)
{
    struct rk_config cfg;
    char err[512];
    int rc = load("# a comment line\n"
                  "  \n" BASE "client.1 = tcp://127.0.0.1:7101   # trailing comment\n"
                  "cluster_id = 0xff01\n"
                  "listen_peer = tcp://0.0.0.0:7002\n"
                  "listen_client=tcp://0.0.0.0:7102\n"
                  "pub_address = tcp://127.0.0.1:7202\n"
                  "election_timeout_min_ms = 500ms\n"
                  "election_timeout_max_ms = 1000\n"
                  "heartbeat_interval_ms = 95\n"
                  "max_append_entries = 128\n"
                  "max_append_bytes = 64KiB\n"
                  "max_inflight = 4\n"
                  "max_key_bytes = 200\n"
                  "max_value_bytes = 2 MiB\n"
                  "max_db_bytes = 1G\n"
                  "log_level = debug\n",
                  &cfg, err, sizeof err);
    /* cluster_id appears twice on purpose: a duplicate must be refused. */
    CHECK(rc != 0);
    CHECK(strstr(err, "cluster_id: duplicate key (first set on line 4)") != NULL);

    rc = load(BASE "client.1 = tcp://127.0.0.1:7101   # trailing comment\n"
                   "listen_peer = tcp://0.0.0.0:7002\n"
                   "listen_client=tcp://0.0.0.0:7102\n"
                   "pub_address = tcp://127.0.0.1:7202\n"
                   "election_timeout_min_ms = 500ms\n"
                   "election_timeout_max_ms = 1000\n"
                   "heartbeat_interval_ms = 95\n"
                   "max_append_entries = 128\n"
                   "max_append_bytes = 64KiB\n"
                   "max_inflight = 4\n"
                   "max_key_bytes = 200\n"
                   "max_value_bytes = 2 MiB\n"
                   "max_db_bytes = 1G\n"
                   "log_level = debug\n"
                   "log_format = json\n",
              &cfg, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "  %s\n", err);
    CHECK_EQ(rc, 0);
    CHECK(strcmp(cfg.members[0].client_url, "tcp://127.0.0.1:7101") == 0);
    CHECK(strcmp(cfg.listen_peer, "tcp://0.0.0.0:7002") == 0);
    CHECK(strcmp(cfg.listen_client, "tcp://0.0.0.0:7102") == 0);
    CHECK(strcmp(cfg.listen_pub, "tcp://127.0.0.1:7202") == 0);
    CHECK_EQ(cfg.election_timeout_min_ms, 500);
    CHECK_EQ(rk_config_ticks(cfg.heartbeat_interval_ms), 10);
    CHECK_EQ(cfg.max_append_entries, 128);
    CHECK_EQ(cfg.max_append_bytes, 64 << 10);
    CHECK_EQ(cfg.max_inflight, 4);
    CHECK_EQ(cfg.max_key_bytes, 200);
    CHECK_EQ(cfg.max_value_bytes, 2 << 20);
    CHECK_EQ(cfg.max_db_bytes, 1ULL << 30);
    CHECK_EQ(cfg.log_level, RK_LOG_DEBUG);
    CHECK_EQ(cfg.log_format, RK_LOG_JSON);
    rk_config_free(&cfg);
}

TEST(hex_cluster_id)
{
    struct rk_config cfg;
    char err[512];
    CHECK_EQ(load("cluster_id = 0xff01\nnode_id = 1\ndata_dir = d\npeer.1 = tcp://a:1\n"
                  "client.1 = tcp://a:2\n",
                  &cfg, err, sizeof err),
             0);
    CHECK_EQ(cfg.cluster_id, 0xff01);
    rk_config_free(&cfg);
}

TEST(bad_number_names_file_line_and_key)
{
    CHECK(fails_with(BASE "\nelection_timeout_min_ms = abc\n",
                     ":8: election_timeout_min_ms: expected a number of milliseconds, got "
                     "\"abc\""));
    CHECK(fails_with(BASE "max_inflight = -1\n",
                     ":7: max_inflight: expected a positive integer, got \"-1\""));
    CHECK(fails_with(BASE "max_append_entries = 0\n",
                     ":7: max_append_entries: expected a positive integer, got \"0\""));
    CHECK(fails_with(BASE "max_db_bytes = 99999999999999999999\n",
                     ":7: max_db_bytes: expected a size in bytes (e.g. 4096, 64KiB, 1MiB, "
                     "8GiB), got \"99999999999999999999\""));
    CHECK(fails_with(BASE "max_value_bytes = 1TB\n",
                     ":7: max_value_bytes: expected a size in bytes (e.g. 4096, 64KiB, 1MiB, "
                     "8GiB), got \"1TB\""));
    CHECK(fails_with(BASE "log_level = verbose\n",
                     ":7: log_level: expected one of error, warn, info, debug, got \"verbose\""));
    CHECK(fails_with(BASE "log_format = yaml\n",
                     ":7: log_format: expected one of text, logfmt, json, got \"yaml\""));
    CHECK(fails_with(BASE "pub_address = 127.0.0.1:9\n",
                     ":7: pub_address: expected an address such as tcp://127.0.0.1:7001, got "
                     "\"127.0.0.1:9\""));
}

TEST(unknown_and_duplicate_keys)
{
    CHECK(fails_with(BASE "electon_timeout_min_ms = 100\n",
                     ":7: electon_timeout_min_ms: unknown key"));
    CHECK(fails_with(BASE "peer.1 = tcp://127.0.0.1:9\n",
                     ":7: peer.1: duplicate key (first set on line 4)"));
    CHECK(fails_with(BASE "peer.x = tcp://127.0.0.1:9\n",
                     ":7: peer.x: the part after the dot must be a node id (a positive "
                     "integer)"));
    CHECK(fails_with(BASE "just words\n", ":7: expected `key = value`, got \"just words\""));
    CHECK(fails_with(BASE "data_dir =\n", ":7: data_dir: missing value after '='"));
}

TEST(missing_keys_and_membership)
{
    CHECK(fails_with("node_id = 1\ndata_dir = d\npeer.1 = tcp://a:1\n",
                     ": cluster_id: required key missing"));
    CHECK(fails_with("node_id = 3\ncluster_id = 1\ndata_dir = d\npeer.1 = tcp://a:1\n",
                     ":1: node_id: no peer.3 line: the members (peer.<id> lines) must include "
                     "this node"));
    CHECK(fails_with("node_id = 1\ncluster_id = 1\ndata_dir = d\npeer.1 = tcp://a:1\n",
                     ": listen_client: required: set client.1 (this node's client address) or "
                     "listen_client"));
    CHECK(fails_with(BASE "client.9 = tcp://a:9\n",
                     ":7: client.9: no peer.9: every member needs its peer.<id> line"));
}

TEST(timing_must_be_consistent)
{
    CHECK(fails_with(BASE "election_timeout_min_ms = 300\n",
                     ":7: election_timeout_min_ms: must be less than election_timeout_max_ms "
                     "(300) by at least the 10 ms tick"));
    CHECK(fails_with(BASE "heartbeat_interval_ms = 150\n",
                     ":7: heartbeat_interval_ms: must be less than election_timeout_min_ms "
                     "(150)"));
}

TEST(snapshot_keys)
{
    struct rk_config cfg;
    char err[512];
    int rc = load(BASE "snapshot_entries = 100\nsnapshot_bytes = 1MiB\n"
                       "snapshot_trailing_entries = 0\nsnapshot_chunk_bytes = 16KiB\n"
                       "snapshot_max_inflight_chunks = 1\n",
                  &cfg, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "  %s\n", err);
    CHECK_EQ(rc, 0);
    CHECK_EQ(cfg.snapshot_entries, 100);
    CHECK_EQ(cfg.snapshot_bytes, 1 << 20);
    CHECK_EQ(cfg.snapshot_trailing_entries, 0);
    CHECK_EQ(cfg.snapshot_chunk_bytes, 16 << 10);
    CHECK_EQ(cfg.snapshot_max_inflight_chunks, 1);
    if (rc == 0)
        rk_config_free(&cfg);
    CHECK(fails_with(BASE "snapshot_entries = 100\nsnapshot_trailing_entries = 101\n",
                     ":8: snapshot_trailing_entries: must not be more than snapshot_entries "
                     "(100)"));
    CHECK(fails_with(BASE "snapshot_trailing_entries = -1\n",
                     ":7: snapshot_trailing_entries: expected a whole number (0 or more), got "
                     "\"-1\""));
    CHECK(fails_with(BASE "snapshot_chunk_bytes = 65MiB\n",
                     ":7: snapshot_chunk_bytes: must be at most 64MiB"));
    CHECK(fails_with(BASE "snapshot_max_inflight_chunks = 0\n",
                     ":7: snapshot_max_inflight_chunks: expected a positive integer, got \"0\""));
}

TEST(missing_file)
{
    struct rk_config cfg;
    char err[512];
    CHECK(rk_config_load("/nonexistent/node.conf", NULL, &cfg, err, sizeof err) != 0);
    CHECK(strcmp(err, "/nonexistent/node.conf: cannot open: No such file or directory") == 0);
}

/* Read for ever (/dev/zero) or waited on for ever (a FIFO without a writer) before. */
TEST(only_a_regular_file_of_a_configuration_size_is_read)
{
    struct rk_config cfg;
    char err[512], fifo[128], big[128];
    CHECK(rk_config_load("/dev/zero", NULL, &cfg, err, sizeof err) != 0);
    CHECK(strcmp(err, "/dev/zero: not a regular file") == 0);
    strcpy(conf_dir, "/tmp/raftkv-test-XXXXXX");
    CHECK(mkdtemp(conf_dir));
    snprintf(fifo, sizeof fifo, "%s/fifo.conf", conf_dir);
    CHECK_EQ(mkfifo(fifo, 0600), 0);
    int rc = rk_config_load(fifo, NULL, &cfg, err, sizeof err);
    unlink(fifo);
    CHECK(rc != 0);
    CHECK(strstr(err, ": not a regular file"));
    snprintf(big, sizeof big, "%s/big.conf", conf_dir);
    FILE *f = fopen(big, "w");
    CHECK(f);
    for (int i = 0; i < (1 << 20) / 8; i++)
        fputs("# .....\n", f); /* 8 bytes */
    fputs("#\n", f);
    fclose(f);
    rc = rk_config_load(big, NULL, &cfg, err, sizeof err);
    unlink(big);
    rmdir(conf_dir);
    CHECK(rc != 0);
    CHECK(strstr(err, "big.conf: 1048578 bytes, more than a configuration's limit of 1MiB"));
}

TEST(a_nul_byte_is_refused_naming_its_line)
{
    static const char text[] = BASE "max_inflight = 4\0 = 5\n";
    CHECK(bytes_fail_with(text, sizeof text - 1,
                          ":7: a NUL byte in the line: this is not a text file"));
}

TEST(two_members_at_one_address_are_refused_naming_both)
{
    CHECK(fails_with(BASE "peer.3 = tcp://127.0.0.1:7001\n",
                     ":7: peer.3: the same address as peer.1 (line 4): tcp://127.0.0.1:7001"));
    CHECK(fails_with(BASE "client.1 = tcp://127.0.0.1:7102\n",
                     ":7: client.1: the same address as client.2 (line 6): "
                     "tcp://127.0.0.1:7102"));
    CHECK(fails_with(BASE "client.1 = tcp://127.0.0.1:7002\n",
                     ":7: client.1: the same address as peer.2 (line 5): tcp://127.0.0.1:7002"));
}

/* 100GiB was accepted, and raftd then failed with "cannot set up peer sockets: Invalid
 * argument" (NNG's limit) instead. */
TEST(sizes_beyond_what_nng_and_lmdb_carry_are_refused)
{
    CHECK(fails_with(BASE "max_value_bytes = 100GiB\n",
                     ":7: max_value_bytes: must be at most 1GiB: a cas carries two values in "
                     "one message and one log record, and NNG and LMDB carry at most 4GiB - 1 "
                     "bytes in one"));
    CHECK(fails_with(BASE "max_append_bytes = 2GiB\n",
                     ":7: max_append_bytes: must be at most 1GiB: an AppendEntries carries this "
                     "and one more entry in one message, and NNG carries at most 4GiB - 1 bytes "
                     "in one"));
    CHECK(fails_with(BASE "max_key_bytes = 512\n",
                     ":7: max_key_bytes: must be at most 511: LMDB's key limit"));
    struct rk_config cfg;
    char err[512];
    CHECK_EQ(load(BASE "max_value_bytes = 1GiB\nmax_append_bytes = 1GiB\nmax_key_bytes = 511\n",
                  &cfg, err, sizeof err),
             0);
    rk_config_free(&cfg);
}

#define TLS_BASE                                                                                   \
    "node_id = 1\n"                                                                                \
    "cluster_id = 1\n"                                                                             \
    "data_dir = /tmp/x\n"                                                                          \
    "peer.1 = tls+tcp://127.0.0.1:7001\n"                                                          \
    "client.1 = tls+tcp://127.0.0.1:7101\n"                                                        \
    "tls_cert_file = n.pem\n"                                                                      \
    "tls_key_file = n.key\n"                                                                       \
    "tls_ca_file = ca.pem\n"                                                                       \
    "http_address = http://127.0.0.1:7301\n"

/* The gateway's plain HTTP port must not be a way around the client port's certificates. */
TEST(http_gateway_needs_http_address_and_no_required_client_certificate)
{
    CHECK(fails_with(BASE "http_gateway = true\n", ":7: http_gateway: needs http_address"));
    CHECK(fails_with(TLS_BASE "http_gateway = true\n",
                     ":10: http_gateway: plain HTTP would bypass tls_client_auth = required: set "
                     "tls_client_auth to optional or none, or leave http_gateway off"));
    struct rk_config cfg;
    char err[512];
    CHECK_EQ(
        load(TLS_BASE "http_gateway = true\ntls_client_auth = optional\n", &cfg, err, sizeof err),
        0);
    CHECK(cfg.http_gateway);
    rk_config_free(&cfg);
    CHECK_EQ(load(TLS_BASE, &cfg, err, sizeof err), 0);
    CHECK(!cfg.http_gateway);
    rk_config_free(&cfg);
}

TEST_MAIN(TEST_REF(minimal_config_gets_defaults), TEST_REF(every_key_parses),
          TEST_REF(hex_cluster_id), TEST_REF(bad_number_names_file_line_and_key),
          TEST_REF(unknown_and_duplicate_keys), TEST_REF(missing_keys_and_membership),
          TEST_REF(timing_must_be_consistent), TEST_REF(snapshot_keys), TEST_REF(missing_file),
          TEST_REF(only_a_regular_file_of_a_configuration_size_is_read),
          TEST_REF(a_nul_byte_is_refused_naming_its_line),
          TEST_REF(two_members_at_one_address_are_refused_naming_both),
          TEST_REF(sizes_beyond_what_nng_and_lmdb_carry_are_refused),
          TEST_REF(http_gateway_needs_http_address_and_no_required_client_certificate))
