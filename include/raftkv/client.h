/*
 * raftkv client library: talks to a raftkv cluster over NNG req/rep, finds the leader by
 * following "not leader" hints, and retries with backoff within an overall timeout.
 * Usable from any C program; link with raftkv_client.
 *
 * Every function returns an enum raftkv_status; RAFTKV_OK = 0.
 */
#ifndef RAFTKV_CLIENT_H
#define RAFTKV_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum raftkv_status {
    RAFTKV_OK = 0,
    RAFTKV_NOT_FOUND = 1,    /* get/delete of a missing key */
    RAFTKV_CAS_MISMATCH = 2, /* the result holds the current value */
    RAFTKV_INVALID = 3,      /* rejected by the cluster (e.g. key or value too large) */
    RAFTKV_UNAVAILABLE = 4,  /* no leader answered within the timeout */
    RAFTKV_EUSAGE = 5,       /* bad arguments to the library */
    RAFTKV_ENOMEM = 6,
    RAFTKV_EINTERNAL = 7,
};

const char *raftkv_status_str(int status);

struct raftkv_client_options {
    size_t n_endpoints;
    const char *const *endpoints; /* client addresses, e.g. tcp://127.0.0.1:7101 */
    unsigned attempts;            /* tries before giving up; default 20 */
    unsigned retry_delay_ms;      /* first backoff delay, doubled per try up to 1 s; default 20 */
    unsigned timeout_ms;          /* overall deadline per operation; default 5000 */
    unsigned request_timeout_ms;  /* one request to one node; default 1000 */
};

void raftkv_client_options_defaults(struct raftkv_client_options *opts);

struct raftkv_result {
    uint8_t *value; /* get: the value; CAS mismatch: the current value (malloc'd) */
    size_t value_len;
    uint64_t create_revision;
    uint64_t mod_revision;
    uint64_t revision; /* writes: the raft index at which it applied */
    char error[256];   /* a human-readable reason when not OK */
};

void raftkv_result_free(struct raftkv_result *res);

struct raftkv_node_status {
    uint64_t id;
    char role[16];
    uint64_t term;
    uint64_t leader_id;
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t last_log_index;
};

struct raftkv_client;

int raftkv_client_open(const struct raftkv_client_options *opts, struct raftkv_client **out);
void raftkv_client_close(struct raftkv_client *c);

int raftkv_put(struct raftkv_client *c, const void *key, size_t key_len, const void *value,
               size_t value_len, struct raftkv_result *res);
int raftkv_get(struct raftkv_client *c, const void *key, size_t key_len,
               struct raftkv_result *res);
int raftkv_delete(struct raftkv_client *c, const void *key, size_t key_len,
                  struct raftkv_result *res);
/* Sets key to new_value if it currently equals expected; expected == NULL means "only if
 * the key does not exist". */
int raftkv_cas(struct raftkv_client *c, const void *key, size_t key_len, const void *expected,
               size_t expected_len, const void *new_value, size_t new_len,
               struct raftkv_result *res);
/* Asks one endpoint (by its position in the options) for its status, without retries. */
int raftkv_status(struct raftkv_client *c, size_t endpoint, struct raftkv_node_status *out);

#endif
