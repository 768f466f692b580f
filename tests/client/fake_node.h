/*
 * A fake raftkv node for client tests: a raw NNG rep0 socket on 127.0.0.1 (port chosen by
 * the kernel) and a thread answering every request with the canned response configured
 * in it. It records what it received so tests can check what the client sent.
 *
 * A node answering OK registers every session asked for as FAKE_SESSION_ID (counted in
 * registrations, not in requests), whatever the canned KV answer: tests of the client's
 * retries see only the writes.
 */
#ifndef RAFTKV_TEST_FAKE_NODE_H
#define RAFTKV_TEST_FAKE_NODE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "client.pb-c.h"
#include "kv.pb-c.h"

struct fake_node {
    char url[64]; /* set before start to listen there (a node coming back), else chosen */
    /* The canned answer; set before clients talk to the node (or under mu). */
    bool silent;                    /* receive, never answer: a hung node */
    unsigned ignore_next;           /* leave this many of the next requests unanswered */
    unsigned delay_ms_max;          /* answer after a random pause of up to this */
    Raftkv__Client__Code node_code; /* the envelope's: NOT_LEADER, UNAVAILABLE, ... */
    Raftkv__Kv__Code code;          /* the KV store's answer, with node_code OK */
    const char *value;              /* with value_len */
    size_t value_len;
    const char *error;
    const char *hint; /* NOT_LEADER: the leader's address, NULL for none */
    uint64_t create_revision, mod_revision, revision;
    bool answer_status; /* answer a status request with a NodeStatus of id status_id */
    uint64_t status_id;
    const char *status_role; /* NULL: "leader", naming itself as leader */
    uint64_t status_leader;  /* with status_role: the leader it names (0: none) */
    uint64_t status_term;    /* 0: 4 */
    /* What arrived, under mu. */
    nng_mtx *mu;
    unsigned requests;
    unsigned registrations;
    uint64_t last_session, last_sequence, last_first_incomplete;
    Raftkv__Kv__Request__OpCase last_op; /* 0 for a status request */
    bool last_was_status;
    bool last_expect_absent;
    char last_expected[64];
    uint8_t *last_value; /* a put's value or a cas's new value, with last_value_len */
    size_t last_value_len;
    nng_socket sock;
    nng_thread *thread;
    atomic_bool stopping;
};

/* Starts listening and answering; returns 0 or an NNG error. */
int fake_node_start(struct fake_node *n);
void fake_node_stop(struct fake_node *n);
unsigned fake_node_requests(struct fake_node *n);
unsigned fake_node_registrations(struct fake_node *n);

#define FAKE_SESSION_ID 4242
/* An address nobody listens on: a port the kernel just handed out and that was closed. */
void fake_dead_url(char *buf, size_t size);

#endif
