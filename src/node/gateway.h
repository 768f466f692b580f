/*
 * The HTTP gateway (http_gateway): JSON routes under /v1/ for users who would rather speak
 * HTTP than the client protocol. It is a client of the cluster, as etcd's grpc-gateway is of
 * etcd's gRPC server: one raftkv client (include/raftkv/client.h) on the cluster's client
 * addresses, so a follower forwards (the library follows the leader), writes run in the
 * library's exactly-once session, and every status is the client protocol's. The event loop
 * is not involved: NNG's HTTP threads start asynchronous calls, whose callbacks answer.
 *
 *   GET    /v1/kv/KEY[?raw]   the key: JSON, or with raw the bare value
 *   PUT    /v1/kv/KEY         sets it to the request body
 *   DELETE /v1/kv/KEY
 *   GET    /v1/kv?prefix=P&limit=N&start=K   the keys that start with P, in pages
 *
 * KEY is the percent-decoded rest of the path (it may hold '/'). README, "HTTP gateway",
 * gives the answers and their statuses.
 */
#ifndef RAFTKV_NODE_GATEWAY_H
#define RAFTKV_NODE_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>

#include "transport/http_server.h"

struct rk_gateway;

struct rk_gateway_options {
    size_t n_endpoints;
    const char *const *endpoints; /* the cluster's client addresses, this node's first */
    /* For tls+tcp:// endpoints: the node's own files, its certificate serving as the
     * client's. NULL for tcp:// ones. */
    const char *tls_ca_file, *tls_cert_file, *tls_key_file;
    size_t max_value_bytes; /* a larger PUT body is answered 413 */
};

/* Returns 0, or a raftkv_status (RAFTKV_EUSAGE: bad endpoints or TLS files). */
int rk_gateway_open(const struct rk_gateway_options *opts, struct rk_gateway **out);
/* Whether path is the gateway's (/v1 and below). */
bool rk_gateway_owns(const char *path);
/* Answers a request for one of the gateway's paths, now or from a callback. Any thread. */
void rk_gateway_serve(struct rk_gateway *g, struct rk_http_request *req,
                      const struct rk_http_in *in);
/* Answers what is in flight (503) and refuses what comes meanwhile; then frees g. Call
 * while the HTTP server still runs: the answers go through it. */
void rk_gateway_close(struct rk_gateway *g);

#endif
