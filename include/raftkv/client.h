/*
 * raftkv client library: talks to a raftkv cluster over NNG req/rep, finds the leader by
 * following "not leader" hints, and retries with backoff within an overall timeout.
 * Usable from any C program: link with the installed libraftkv (pkg-config raftkv, or CMake's
 * find_package(raftkv) and raftkv::raftkv; README, "Installing"), or with the build's
 * raftkv_client.
 *
 * Every function returns an enum raftkv_status; RAFTKV_OK = 0.
 *
 * How an operation is tried: it goes to the node that last answered as leader; while no
 * leader is known, to whichever configured endpoint has a live connection (the client
 * dials them all, so a dead node is never waited on). A node that is not the leader names
 * the leader's address; the client goes there at once, also when that address is not
 * among the configured endpoints (but not to a hinted node whose connection is down). A
 * timeout, a connection failure, an UNAVAILABLE answer or a refusal without a usable hint
 * moves on to another live node after a backoff of retry_delay_ms, doubling up to 50 ms. Each
 * single request may take request_timeout_ms, so a dead leader is left promptly. Near the
 * deadline a backoff shrinks to half the time left. After `attempts` tries, or when
 * timeout_ms is used up, the operation ends with RAFTKV_UNAVAILABLE and the last failure
 * in result.error. Each request is ended by a timer of its own at its deadline, so an
 * operation ends within timeout_ms of its start (give or take NNG's scheduling), whatever
 * the nodes do; a reply that arrives later is dropped.
 *
 * Exactly-once writes. Writes (put, delete, cas) run in a client session (Raft
 * dissertation §6.3): the first write registers one with the cluster (an entry in its log),
 * and every write is numbered in it. A write is resent with its number whenever its answer
 * is lost: a timeout, a dropped connection, or a leader that lost its lead and answered
 * UNAVAILABLE after the entry may have reached the followers. The cluster applies a
 * numbered write at most once and answers every copy with the first answer: a cas retried
 * after it succeeded reports its success, never a mismatch with its own new value. So:
 *   - RAFTKV_OK, NOT_FOUND, CAS_MISMATCH, INVALID: the write was applied exactly once (for
 *     INVALID: refused, applied never), and the result is its answer.
 *   - RAFTKV_UNAVAILABLE: unknown. The write may have been applied once, or may be applied
 *     later (its entry may still commit); never twice.
 *   - RAFTKV_SESSION_EXPIRED: unknown, as for UNAVAILABLE. The cluster forgot the session
 *     (it keeps the 10,000 most recently used; registering more expires the idlest) while
 *     the write was being retried, so a copy of it may have been applied. When no copy can
 *     have been (the write's only attempt was answered "expired"), the library registers a
 *     new session and sends it there instead, and the caller never sees this status.
 * A session allows 256 writes in flight: further ones wait in the library. Reads (get,
 * range) are linearizable (ReadIndex) and need no session.
 *
 * One client may be used from several threads at once; requests then run concurrently.
 * Sockets (one per node addressed directly, one to all endpoints, redialing by themselves)
 * live until raftkv_client_close.
 *
 * Every key operation also exists in an asynchronous form (raftkv_put_async, ...): it
 * returns at once and reports through a callback. Any number of them may be in flight on
 * one client; each is a small state machine driven by NNG's own threads (one NNG context
 * per attempt), not a thread of its own. The synchronous calls are the same operation with
 * a wait at the end.
 */
#ifndef RAFTKV_CLIENT_H
#define RAFTKV_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkv/api.h"

enum raftkv_status {
    RAFTKV_OK = 0,
    RAFTKV_NOT_FOUND = 1,    /* get/delete of a missing key */
    RAFTKV_CAS_MISMATCH = 2, /* the result holds the current value */
    RAFTKV_INVALID = 3,      /* rejected by the cluster (e.g. key or value too large) */
    RAFTKV_UNAVAILABLE = 4,  /* no leader answered within the timeout */
    RAFTKV_EUSAGE = 5,       /* bad arguments to the library */
    RAFTKV_ENOMEM = 6,
    RAFTKV_EINTERNAL = 7,
    RAFTKV_SESSION_EXPIRED = 8, /* a write's outcome is unknown: see "Exactly-once writes" */
};

RAFTKV_API const char *raftkv_status_str(int status);

/* A field left 0 takes its default. */
struct raftkv_client_options {
    size_t n_endpoints;
    const char *const *endpoints; /* client addresses, e.g. tcp://127.0.0.1:7101; copied;
                                   * malformed or duplicate ones make open fail (EUSAGE) */
    unsigned attempts;            /* tries before giving up; default 100 */
    unsigned retry_delay_ms;      /* first backoff delay, doubled per try up to 50 ms; default 20 */
    unsigned timeout_ms;          /* overall deadline per operation; default 5000 */
    unsigned request_timeout_ms;  /* one request to one node; default 1000 */
    /* TLS, for a cluster whose addresses are tls+tcp:// (raftd's tls_* keys). Set
     * tls_ca_file for tls+tcp:// endpoints, leave it NULL for tcp:// ones: open fails with
     * RAFTKV_EUSAGE on an endpoint of the other kind, or on a file that cannot be read or
     * is not PEM. Leader hints of the other kind are ignored. */
    const char *tls_ca_file;     /* the cluster's CA: every node's certificate must come from it */
    const char *tls_cert_file;   /* this client's certificate, for nodes whose tls_client_auth
                                  * requires one; NULL: none is presented */
    const char *tls_key_file;    /* its private key (PEM, unencrypted); with tls_cert_file */
    const char *tls_server_name; /* the name each node's certificate must carry; NULL: any
                                  * certificate from the CA is accepted */
};

RAFTKV_API void raftkv_client_options_defaults(struct raftkv_client_options *opts);

/* Filled by every key operation (res may be NULL to ignore it). It is overwritten, not
 * freed: call raftkv_result_free before reusing one. Responses are at most 65 MiB. */
struct raftkv_result {
    uint8_t *value; /* get: the value; CAS mismatch: the current value (malloc'd; NULL when
                     * empty: a key's create_revision is 0 when it does not exist) */
    size_t value_len;
    uint64_t create_revision;
    uint64_t mod_revision;
    uint64_t revision; /* writes: the raft index at which it applied */
    char error[256];   /* a human-readable reason when not OK: the node's text for
                        * INVALID, the last failure for UNAVAILABLE */
};

RAFTKV_API void raftkv_result_free(struct raftkv_result *res);

/* What a node counted since it started: its Raft core's drops and events, and its peer
 * transport's messages. */
struct raftkv_node_counters {
    uint64_t msgs_dropped_unknown_peer; /* from or to a node not in the configuration */
    uint64_t msgs_dropped_stale_term;
    uint64_t msgs_dropped_malformed;
    uint64_t elections_started;
    uint64_t pre_votes_started;
    uint64_t leader_stepped_down_no_quorum;
    uint64_t append_rejections;
    uint64_t snapshots_sent;
    uint64_t snapshots_installed;
    uint64_t snapshots_refused; /* received ones damaged or malformed: also in _installed */
    uint64_t snapshots_damaged; /* own files found damaged before sending, taken anew */
    uint64_t peer_msgs_sent;
    uint64_t peer_msgs_send_dropped; /* no free context, peer down, or over the size limit */
    uint64_t peer_msgs_received;
    uint64_t peer_msgs_malformed; /* undecodable, wrong version or wrong cluster */
    uint64_t peer_msgs_unknown_peer;
    uint64_t peer_msgs_oversized;
    uint64_t peer_redials; /* links to a peer that acknowledged nothing, dialed afresh */
    /* How the client and peer ports kept one connection from taking them (README,
     * "Bounded servers"):
     * connections refused over the limit, closed for taking no reply, closed when idle,
     * and requests dropped because their connection had too much unanswered. */
    uint64_t conns_refused;
    uint64_t conns_closed_slow;
    uint64_t conns_closed_idle;
    uint64_t requests_over_limit;
    /* TLS handshakes that failed, as NNG counts them. It names nobody for the handshakes a
     * node refused, and counts a failure of ours and of the other end's alike on a dial. */
    uint64_t peer_tls_refused;      /* on the peer port: no certificate from the CA, or no TLS */
    uint64_t peer_tls_dials_failed; /* dials to a peer: its certificate not from the CA, or
                                     * ours refused */
    uint64_t client_tls_refused;    /* on the client and pub ports */
    /* Membership (see "Membership" below): changes this node proposed as leader, and the
     * leadership transfers it started and abandoned (no new leader within an election
     * timeout). */
    uint64_t configuration_changes;
    uint64_t transfers_started;
    uint64_t transfers_abandoned;
};

struct raftkv_node_status {
    uint64_t id;
    char role[16];
    uint64_t term;
    uint64_t leader_id;
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t last_log_index;
    struct raftkv_node_counters counters;
};

struct raftkv_client;

/* Fails with RAFTKV_EUSAGE on no endpoints, or a malformed or duplicate one. Connects
 * lazily: no node needs to be up yet. */
RAFTKV_API int raftkv_client_open(const struct raftkv_client_options *opts,
                                  struct raftkv_client **out);
/* Ends every operation still in flight with RAFTKV_UNAVAILABLE ("client closed") at once,
 * requests on the wire and pauses between retries alike, waits until all of them have
 * returned from their callbacks, then closes the connections. Bounded: once the callbacks
 * have returned, close takes at most about 2 s. Up to 1 s of that waits for the answers
 * still owed to requests that timed out or were cancelled (normally a few ms; 250 ms
 * without any answer ends the wait), because NNG 1.5.2 can hang for good when a message
 * arrives on a connection it is closing. The other 1 s bounds NNG's own close, which
 * 1.5.2 sometimes never finishes (nanomsg/nng#1543, #1813): the connections are then
 * left to close in the background, with a line on stderr. Nothing of the client is used
 * after close returns. Must not be called from an async callback, nor together with new
 * operations. */
RAFTKV_API void raftkv_client_close(struct raftkv_client *c);

/* Keys must not be empty (RAFTKV_EUSAGE); the cluster refuses keys whose first byte is
 * 0x00, which it keeps for its own records (RAFTKV_INVALID). Writes report their revision
 * in res.
 * get/delete of a missing key return RAFTKV_NOT_FOUND. */
RAFTKV_API int raftkv_put(struct raftkv_client *c, const void *key, size_t key_len,
                          const void *value, size_t value_len, struct raftkv_result *res);
RAFTKV_API int raftkv_get(struct raftkv_client *c, const void *key, size_t key_len,
                          struct raftkv_result *res);
RAFTKV_API int raftkv_delete(struct raftkv_client *c, const void *key, size_t key_len,
                             struct raftkv_result *res);
/* Sets key to new_value if it currently equals expected; expected == NULL means "only if
 * the key does not exist". */
RAFTKV_API int raftkv_cas(struct raftkv_client *c, const void *key, size_t key_len,
                          const void *expected, size_t expected_len, const void *new_value,
                          size_t new_len, struct raftkv_result *res);

/*
 * Range reads: the keys in [key, range_end), in key order (bytes compared as unsigned),
 * linearizable (ReadIndex) like get. An empty range_end means no upper bound; an empty key,
 * from the first key; a range_end at or before key, no keys. Keys starting with 0x00 (the
 * cluster's own records) are never listed. At most limit keys are answered (0, or more
 * than RAFTKV_RANGE_MAX_KEYS: that many), and fewer when they would pass 4 MiB (but always
 * one, when one matches). With more set, the next page starts just after the last key:
 * that key followed by a 0 byte.
 */
#define RAFTKV_RANGE_MAX_KEYS 1000

struct raftkv_kv {
    uint8_t *key; /* never empty */
    size_t key_len;
    uint8_t *value; /* NULL when value_len == 0 */
    size_t value_len;
    uint64_t create_revision, mod_revision;
};

/* Filled by raftkv_range (out is required): overwritten, not freed; call
 * raftkv_range_result_free before reusing one. */
struct raftkv_range_result {
    struct raftkv_kv *kvs; /* count of them (one allocation, with their bytes); NULL when 0 */
    size_t count;
    bool more;         /* keys remain in the range after the last one */
    uint64_t revision; /* the store's applied index the read saw: the changes after the read
                        * start at revision + 1 */
    char error[256];   /* a human-readable reason when not OK, as raftkv_result's */
};

/* key and range_end may be NULL when their length is 0 (RAFTKV_EUSAGE otherwise). A key
 * longer than the cluster's max_key_bytes is refused (RAFTKV_INVALID); range_end may be
 * of any length. */
RAFTKV_API int raftkv_range(struct raftkv_client *c, const void *key, size_t key_len,
                            const void *range_end, size_t range_end_len, size_t limit,
                            struct raftkv_range_result *out);
RAFTKV_API void raftkv_range_result_free(struct raftkv_range_result *r);

/* The end of the range of keys that start with prefix (etcd's prefix end): prefix with its
 * last byte below 0xff incremented and what follows dropped. Writes it to end (room for
 * prefix_len bytes) and returns its length; 0 means no upper bound (an empty or all-0xff
 * prefix). */
RAFTKV_API size_t raftkv_prefix_end(const void *prefix, size_t prefix_len, uint8_t *end);

/* Asks one endpoint (by its position in the options) for its status: one request, no
 * retries, at most min(request_timeout_ms, timeout_ms). RAFTKV_UNAVAILABLE if it did not
 * answer. */
RAFTKV_API int raftkv_status(struct raftkv_client *c, size_t endpoint,
                             struct raftkv_node_status *out);

/*
 * Membership (Raft dissertation chapter 4). A cluster's members are voters, which elect the
 * leader and count towards every quorum, and learners, which receive the log but never
 * vote. It changes one server at a time: a new server joins as a learner, is promoted to
 * voter once it has caught up, and any member can be removed. These calls are answered by
 * the leader (followers' NOT_LEADER answers are followed as for keys), each with the
 * membership as the leader knows it then.
 *
 * Retries. A member change is answered once it is committed; move-leader once the target
 * leads. Their requests are retried as any request is (a timeout, a dropped connection, an
 * UNAVAILABLE answer: no leader, another change not yet committed, a transfer under way or
 * abandoned), but unlike writes they carry no session: a change whose answer was lost may
 * have taken effect, and its copy is then refused (a member that exists, a member that is
 * gone). So:
 *   - RAFTKV_OK: done, and out holds the membership after it.
 *   - RAFTKV_INVALID: refused (the node's reason in out->error: the id exists, no such
 *     member, a learner too far behind to be promoted, the last voter, a bad address), and
 *     no earlier attempt of this call can have taken effect.
 *   - RAFTKV_UNAVAILABLE: unknown. The change may have been made, or may still be (its
 *     entry may commit). Also when a retry was refused after an earlier attempt's answer
 *     was lost (out->error says so and gives the node's reason). raftkv_member_list tells.
 * Give request_timeout_ms more than the cluster's election timeout for move-leader: a
 * transfer takes up to that long, and a timed-out one is retried (a second transfer).
 */
#define RAFTKV_MAX_ADDRESS 255 /* bytes of a member's address, at most (as the cluster's) */

struct raftkv_member {
    uint64_t id;
    char role[16]; /* "voter" or "learner" */
    char peer_address[RAFTKV_MAX_ADDRESS + 1];
    char client_address[RAFTKV_MAX_ADDRESS + 1];
    uint64_t match_index; /* the last index the leader knows the member holds */
    bool healthy;         /* it answered the leader within the last election timeout */
};

/* Filled by every membership call (out may be NULL to ignore it). It is overwritten, not
 * freed: call raftkv_members_free before reusing one. */
struct raftkv_members {
    uint64_t leader_id;
    uint64_t term;
    size_t n;
    struct raftkv_member *members; /* sorted by id (malloc'd) */
    uint64_t configuration_index;  /* the log entry of this membership (0: the bootstrap one) */
    bool committed;                /* false while a change is on its way */
    uint64_t last_log_index;       /* the leader's: match_index tells how far behind a member is */
    char error[256];               /* a human-readable reason when not OK, as raftkv_result's */
};

RAFTKV_API void raftkv_members_free(struct raftkv_members *m);

/* The membership as the leader knows it: read-only, retried freely. */
RAFTKV_API int raftkv_member_list(struct raftkv_client *c, struct raftkv_members *out);
/* Adds member id (not 0) as a learner, with its Raft address (peer_address, as in raftd's
 * peer.<id>) and client address (client.<id>); both non-empty, at most RAFTKV_MAX_ADDRESS
 * bytes (RAFTKV_EUSAGE otherwise; the form is the cluster's to check: RAFTKV_INVALID). */
RAFTKV_API int raftkv_member_add_learner(struct raftkv_client *c, uint64_t id,
                                         const char *peer_address, const char *client_address,
                                         struct raftkv_members *out);
/* Makes learner id a voter; refused while it is too far behind the leader's log. */
RAFTKV_API int raftkv_member_promote(struct raftkv_client *c, uint64_t id,
                                     struct raftkv_members *out);
/* Removes member id; a leader that removes itself hands the lead to another voter. */
RAFTKV_API int raftkv_member_remove(struct raftkv_client *c, uint64_t id,
                                    struct raftkv_members *out);
/* Moves the lead to voter id (0: the voter with the most of the log); answered once it
 * leads (out->leader_id), or UNAVAILABLE if the transfer was abandoned. */
RAFTKV_API int raftkv_move_leader(struct raftkv_client *c, uint64_t id, struct raftkv_members *out);

/*
 * Asynchronous operations. Each takes the arguments of its synchronous twin and, instead
 * of a result, a callback with its argument. The key and values are copied before the
 * function returns.
 *
 * Returns RAFTKV_OK when the operation started: cb then runs exactly once, with the status
 * the synchronous call would have returned and the result it would have filled. Any other
 * return (RAFTKV_EUSAGE for bad arguments, RAFTKV_ENOMEM): cb never runs.
 *
 * cb runs on an NNG thread, or on the calling thread before the function returns when the
 * operation fails at once (e.g. the client is closing). It may start new operations, also
 * on the same client, but must not block for long: it holds up other completions. res and
 * everything it points to (the value) belong to the library and are valid only during the
 * call: copy what you keep; do not call raftkv_result_free on it.
 */
typedef void (*raftkv_callback)(int status, const struct raftkv_result *res, void *arg);

RAFTKV_API int raftkv_put_async(struct raftkv_client *c, const void *key, size_t key_len,
                                const void *value, size_t value_len, raftkv_callback cb, void *arg);
RAFTKV_API int raftkv_get_async(struct raftkv_client *c, const void *key, size_t key_len,
                                raftkv_callback cb, void *arg);
RAFTKV_API int raftkv_delete_async(struct raftkv_client *c, const void *key, size_t key_len,
                                   raftkv_callback cb, void *arg);
RAFTKV_API int raftkv_cas_async(struct raftkv_client *c, const void *key, size_t key_len,
                                const void *expected, size_t expected_len, const void *new_value,
                                size_t new_len, raftkv_callback cb, void *arg);

/* A range's callback: res (its kvs and their bytes) is valid only during the call; do not
 * call raftkv_range_result_free on it. */
typedef void (*raftkv_range_callback)(int status, const struct raftkv_range_result *res, void *arg);
RAFTKV_API int raftkv_range_async(struct raftkv_client *c, const void *key, size_t key_len,
                                  const void *range_end, size_t range_end_len, size_t limit,
                                  raftkv_range_callback cb, void *arg);

#endif
