/*
 * Real-process raftkv clusters for tests and measurements: raftd processes on 127.0.0.1
 * with ports picked by binding port 0, configs and data in a fresh temporary directory.
 * Every wait is a poll with a deadline.
 */
#ifndef RAFTKV_TEST_HARNESS_H
#define RAFTKV_TEST_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "raftkv/client.h"

#define CLUSTER_MAX_NODES 5

/* Like CHECK, for helpers that return bool: prints where and returns false. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: requirement failed: %s\n", __FILE__, __LINE__, #cond);         \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

struct cnode {
    uint64_t id;
    pid_t pid; /* 0 when not running */
    char conf[256];
    char data[256];
    char log[256];
    char client_url[64];
    char pub_url[64];
};

struct cluster {
    const char *daemon; /* the node program: RAFTD_PATH unless changed after cluster_init */
    char dir[64];
    int n;
    struct cnode nodes[CLUSTER_MAX_NODES]; /* nodes[i].id == i + 1 */
    int ports[3 * CLUSTER_MAX_NODES];      /* peer, client, pub of each node */
    const char *endpoints[CLUSTER_MAX_NODES];
    struct raftkv_client *client; /* all endpoints */
    const char *scheme;           /* of every address: "tcp", or "tls+tcp" (cluster_init_tls) */
    /* 0: all n nodes found the cluster. Otherwise nodes 1..founders do, and the others are
     * configured to join it (join = true) once added as members (cluster_init_growing). */
    int founders;
    /* The TLS files of every client the harness opens (NULL: plain). */
    const char *tls_ca_file, *tls_cert_file, *tls_key_file;
};

/* Writes configs for n nodes (extra_conf, if not NULL, is appended to each) and opens a
 * client on every endpoint. Starts nothing. */
bool cluster_init(struct cluster *c, int n, const char *extra_conf);
/* The same for a cluster founded by nodes 1..founders, which nodes founders+1..n can join:
 * their configs say join = true and name every node. */
bool cluster_init_growing(struct cluster *c, int n, int founders, const char *extra_conf);
/* The same with tls+tcp:// addresses, and clients that use these files (not copied). The
 * configs get no TLS keys: give each node its own with cluster_configure. */
bool cluster_init_tls(struct cluster *c, int n, const char *ca_file, const char *cert_file,
                      const char *key_file);
/* Kills what runs, closes the client; deletes the directory unless keep (then prints it,
 * with the tail of each node's log). */
void cluster_destroy(struct cluster *c, bool keep);
/* The end of a test on c that went ok or not: stops the running nodes with SIGTERM, checks
 * their logs hold no sanitizer report, and destroys c, keeping it on failure. Returns
 * whether all went well. */
bool cluster_finish(struct cluster *c, bool ok);
/* A whole test: a cluster of n nodes (cluster_init), fn run on it and timed, then
 * cluster_finish. */
bool cluster_run(int n, const char *extra_conf, bool (*fn)(struct cluster *c));
/* The same on cluster_init_growing(n, founders): fn starts the nodes it wants. */
bool cluster_run_growing(int n, int founders, const char *extra_conf,
                         bool (*fn)(struct cluster *c));

/* Starts raftd for node id and waits until it answers a status request. */
/* Rewrites node id's config with extra (may be NULL) appended; takes effect at its next
 * start. */
bool cluster_configure(struct cluster *c, int id, const char *extra_conf);
bool cluster_start(struct cluster *c, int id);
/* Starts raftd for node id without waiting. */
bool cluster_spawn(struct cluster *c, int id);
bool cluster_start_all(struct cluster *c);
/* Sends sig and reaps the process; returns its exit status (-1 if killed by a signal). */
int cluster_stop(struct cluster *c, int id, int sig);
/* Deletes the node's data dir (the node must be stopped). */
bool cluster_wipe(struct cluster *c, int id);

/* Status of one node (false if it did not answer). */
bool cluster_status(struct cluster *c, int id, struct raftkv_node_status *st);
/* Waits until the running nodes agree on one leader; returns its id, 0 on timeout. */
uint64_t cluster_wait_leader(struct cluster *c, unsigned timeout_ms);
/* Waits until node id has applied at least index. */
bool cluster_wait_applied(struct cluster *c, int id, uint64_t index, unsigned timeout_ms);
/* Retries a put until it succeeds or timeout_ms passes. */
bool cluster_put_retry(struct cluster *c, const char *key, const char *value, unsigned timeout_ms,
                       uint64_t *revision);

/* Whether the file at path has a line containing text (false if it cannot be read). */
bool cluster_file_contains(const char *path, const char *text);
/* Whether node id's log has a line containing text. */
bool cluster_log_contains(struct cluster *c, int id, const char *text);
/* No node's log holds a sanitizer report (ASan, LSan, UBSan); prints the first found. */
bool cluster_logs_clean(struct cluster *c);
/* A get through client that must return value (prints what it got otherwise). */
bool cluster_get_is(struct raftkv_client *client, const char *key, const char *value);

/* Writes keys "<prefix><i>" for i in [0, n_keys), once per round r in [first_round,
 * end_round) (round r writes cluster_value(i, r)), from `threads` concurrent clients.
 * *max_rev gets the highest revision acknowledged. Fails at the first put not
 * acknowledged within the timeout. */
bool cluster_write_keys(struct cluster *c, const char *prefix, int n_keys, int first_round,
                        int end_round, int threads, uint64_t *max_rev);
void cluster_value(int key, int round, char *out, size_t len);

/* A client on one endpoint, or on all when id == 0. */
struct raftkv_client *cluster_client(struct cluster *c, int id, unsigned timeout_ms);
struct raftkv_client *cluster_client_opts(struct cluster *c, int id, unsigned timeout_ms,
                                          unsigned request_timeout_ms);

/* Runs path with args (NULL-terminated, argv[0] included), stderr and stdout to out_path;
 * returns the exit status or -1. */
int run_capture(const char *const *argv, const char *out_path);

/* curl, silent, for at most 30 s, with args (NULL-terminated, the URL among them): the
 * answer's body goes to body_path, curl's output to out_path. Returns the HTTP status, or -1
 * when there is none (curl failed or is missing). */
int cluster_curl(const char *const *args, const char *body_path, const char *out_path);
/* A TCP connection to 127.0.0.1:port whose reads give up after 10 s, for HTTP requests
 * written by hand (what curl would not send); -1 if it cannot be made. */
int cluster_http_connect(int port);

uint64_t now_ms(void);
void sleep_ms(unsigned ms);
/* A port on 127.0.0.1 free right now, picked as the cluster's own are; -1 if none. */
int cluster_free_port(void);

#endif
