/*
 * Internal to the client library: the client's connections and one retrying request.
 *
 * A call is a small state machine driven entirely by NNG aio callbacks (send, receive,
 * backoff sleep), so any number of calls can be in flight on one client without a thread
 * each. The synchronous API waits on a call; an asynchronous API only has to pass its own
 * completion callback.
 */
#ifndef RAFTKV_CLIENT_CALL_H
#define RAFTKV_CLIENT_CALL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "client.pb-c.h"
#include "raftkv/client.h"
#include "tls/tls.h"

struct rk_endpoint;
struct rk_write;

/* The client's session (session.c), under the client's mu. */
struct rk_session {
    uint64_t id; /* 0 while none is registered */
    uint64_t next_sequence;
    bool registering;
    struct rk_write *queue; /* writes waiting for the session or its window, oldest first */
    struct rk_write **queue_tail;
    uint64_t *in_flight; /* sequences of the session's writes sent and not answered */
    size_t n_in_flight;
    size_t cap_in_flight;
};

/*
 * Sockets: one req0 socket per endpoint used, for requests to one node (the leader, or a
 * status query), and one "any" socket dialed to every configured endpoint. NNG sends on
 * the any socket only over connections that are up, so a request whose leader is unknown
 * goes to whichever node is reachable first, never waits on a dead one, and successive
 * ones rotate over the live nodes.
 */
struct raftkv_client {
    struct raftkv_client_options opts; /* endpoints and TLS files unset: see below */
    nng_tls_config *tls;               /* every dialer's; NULL for tcp:// endpoints */
    nng_mtx *mu;                       /* guards everything below */
    struct rk_endpoint **eps; /* the configured endpoints first, then leader hints learned */
    size_t n_eps;
    size_t n_configured;
    nng_socket any;
    bool any_open;
    nng_dialer *any_dialers; /* one per configured endpoint */
    size_t leader;           /* index into eps, or RK_ANY_ENDPOINT while unknown */
    struct rk_session session;
    struct rk_call *active; /* calls started and not yet freed, for close to end them */
    nng_cv *idle;           /* signalled when the last active call is freed */
    /* Finished calls kept with their aios for the next ones: allocating an aio costs a
     * getrandom system call in NNG 1.5, twice per call without the pool. */
    struct rk_call *pool;
    size_t n_pool;
    atomic_bool closing;
};

/* As a call's target: the any socket. */
#define RK_ANY_ENDPOINT SIZE_MAX

struct rk_call;

/* Called once when the call has finished; the call is then the callee's to free, also
 * from within this callback. */
typedef void (*rk_call_done_fn)(struct rk_call *call, void *arg);

/* How a call ended. status is a raftkv_status; resp is the decoded envelope when status is
 * one a node gave (OK, INVALID, EINTERNAL); with OK, resp->fsm holds the state machine's
 * answer, which the caller decodes. */
struct rk_call_result {
    int status;
    Raftkv__Client__Response *resp; /* owned by the call; may be NULL */
    char error[256];
    /* Some attempt ended without an answer, or with UNAVAILABLE: it may have reached the
     * leader and taken effect, and a later answer may be to its copy. NOT_LEADER answers
     * do not set it: a follower acts on nothing. */
    bool answer_lost;
};

/* Takes ownership of req (a packed client.proto Request, malloc'd). With endpoint ==
 * RK_ANY_ENDPOINT the call looks for the leader and retries; otherwise it makes exactly one
 * attempt at that endpoint. done may run before this returns (a call that fails at once);
 * *out is set before that, so it dangles if done frees the call. */
int rk_call_start(struct raftkv_client *c, uint8_t *req, size_t len, size_t endpoint,
                  rk_call_done_fn done, void *arg, struct rk_call **out);
const struct rk_call_result *rk_call_result(const struct rk_call *call);
/* Attempts the call made (each may have reached a node). */
unsigned rk_call_tries(const struct rk_call *call);
/* Only once the call has finished (from its done callback or after it). */
void rk_call_free(struct rk_call *call);

/* Packs a request into the envelope every node reads (client.proto Request); *buf is
 * malloc'd. client.c. */
int rk_request_pack(const Raftkv__Client__Request *env, uint8_t **buf, size_t *len);
/* The same for a state machine request. client.c. */
int rk_fsm_request_pack(const uint8_t *fsm, size_t fsm_len, uint8_t **buf, size_t *len);

/* A condition to wait for on one thread and set from another (an NNG callback). */
struct rk_wait {
    nng_mtx *mu;
    nng_cv *cv;
    bool done;
};
int rk_wait_init(struct rk_wait *w);
void rk_wait_wake(struct rk_wait *w);
void rk_wait_until_woken(struct rk_wait *w);
void rk_wait_fini(struct rk_wait *w);

/* session.c. A write in the client's session: takes op (a packed kv.proto Request with
 * only its op set, malloc'd), numbers it in the session, registering one first if needed,
 * and runs it as a call. done runs exactly once, as a call's done does, with the result of
 * the write's last call or of the failure that ended it (then resp is NULL). */
typedef void (*rk_write_done_fn)(const struct rk_call_result *res, void *arg);
int rk_write_start(struct raftkv_client *c, uint8_t *op, size_t op_len, rk_write_done_fn done,
                   void *arg);
int rk_session_init(struct rk_session *s);
void rk_session_free(struct rk_session *s);

/* Runs a call to completion on the calling thread. *out gets the finished call. */
int rk_call_run(struct raftkv_client *c, uint8_t *req, size_t len, size_t endpoint,
                struct rk_call **out);

struct rk_endpoint {
    char *url;
    nng_socket sock;
    bool open;
    /* Pipes between ADD_PRE and REM_POST: NNG reports REM_POST exactly for pipes that saw
     * ADD_PRE, so the count is exact. Tells a leader hint to a node we cannot reach. */
    atomic_int pipes;
};

#define RK_MAX_URL_BYTES 512

/* endpoints.c. Opens e's socket and dials it, once. c->mu held. */
int rk_endpoint_open(struct raftkv_client *c, struct rk_endpoint *e);
/* Opens the any socket and dials every configured endpoint, once. c->mu held. */
int rk_any_open(struct raftkv_client *c);
/* The endpoint a pipe of the any socket leads to. c->mu held. */
size_t rk_any_endpoint_of(struct raftkv_client *c, nng_pipe p);
/* For messages: the url of a target. c->mu held. */
const char *rk_endpoint_name(struct raftkv_client *c, size_t ep);
/* Finds or appends url (RAFTKV_EUSAGE if malformed, tls+tcp:// without the client's TLS
 * or the other way round, or the list is full). c->mu held. */
int rk_endpoints_add(struct raftkv_client *c, const char *url, size_t *index);
/* Makes every call in flight end with RAFTKV_UNAVAILABLE at once (their requests are
 * cancelled, their pauses cut short) and waits until all have been freed. Calls started
 * meanwhile end at once. */
void rk_calls_end(struct raftkv_client *c);
/* Frees the pooled calls; once no call is in flight (after rk_calls_end), so that no
 * operation of ours is pending when the sockets close. */
void rk_calls_pool_free(struct raftkv_client *c);
/* Closes every socket and frees the endpoints, waiting at most RK_CLOSE_WAIT_MS for NNG
 * (see call.c); after rk_calls_pool_free. */
void rk_endpoints_close(struct raftkv_client *c);

#endif
