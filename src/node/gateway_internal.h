/*
 * Internal to the HTTP gateway (gateway.c): what it does with a request before any client
 * call, and the JSON of its answers, apart from the network and the cluster, so that
 * tests/fuzz/fuzz_gateway.c runs the server's own code on hostile input.
 */
#ifndef RAFTKV_NODE_GATEWAY_INTERNAL_H
#define RAFTKV_NODE_GATEWAY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/text.h"
#include "raftkv/client.h"
#include "transport/http_server.h"

enum gateway_op { GATEWAY_GET, GATEWAY_PUT, GATEWAY_DELETE, GATEWAY_LIST };

/* A request parsed for its client call. The bytes point into the parser's room, but value,
 * which is the request's body (valid while the rk_http_in is). */
struct gateway_request {
    enum gateway_op op;
    bool raw; /* GET: the bare value */
    /* GET, PUT, DELETE: the key, percent-decoded, never empty */
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value; /* PUT: at most max_value_bytes */
    size_t value_len;
    /* LIST: the keys with prefix ("" when none: every key) from start (which begins with
     * prefix; prefix when none) before end (the prefix's end, client.h's
     * raftkv_prefix_end; end_len 0: no end), at most limit (0: the store's default; never
     * over RAFTKV_RANGE_MAX_KEYS) */
    const uint8_t *prefix, *start, *end;
    size_t prefix_len, start_len, end_len;
    bool has_start;
    size_t limit;
};

/* A request refused before any call: an HTTP status, a code ("INVALID", ...) and why it
 * is refused, static texts. A 404 is a path that names no resource. */
struct gateway_refusal {
    uint16_t status;
    const char *code, *why;
};

/* The bytes gateway__parse needs as room for in's decoded key, query and prefix end. */
size_t gateway__room(const struct rk_http_in *in);
/* Parses in (a path rk_gateway_owns) into *r, its bytes in room (gateway__room(in) bytes);
 * false when it is refused, as *no says. */
bool gateway__parse(const struct rk_http_in *in, size_t max_value_bytes, uint8_t *room,
                    struct gateway_request *r, struct gateway_refusal *no);

/* A listing's answer to b: {"revision":R,"kvs":[...],"more":bool[,"next":K]} (README, "HTTP
 * gateway"); b->oom set when it could not all be written. */
void gateway__json_list(struct text *b, const struct raftkv_range_result *res);

#endif
