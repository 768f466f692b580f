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
    /* The envelope codes of the next answers, first first, before node_code's turn again
     * (registrations excepted): a script of, say, UNAVAILABLE then INVALID. */
    Raftkv__Client__Code next_codes[4];
    unsigned n_next_codes;
    /* The membership a member request (list, change, move-leader) is answered with, when
     * its code is OK or INVALID; NULL: none. */
    const Raftkv__Client__MemberList *members;
    /* A range is answered from these keys (in byte order; each key's value is the key
     * itself, its revisions 1 and 2), at most range_page of them (0: 1000) an answer, and
     * revision range_revision. */
    const char *const *keys;
    size_t n_keys, range_page;
    uint64_t range_revision;
    /* What arrived, under mu. */
    nng_mtx *mu;
    unsigned requests;
    unsigned registrations;
    uint64_t last_session, last_sequence, last_first_incomplete;
    Raftkv__Kv__Request__OpCase last_op; /* 0 for a status request */
    bool last_was_status;
    Raftkv__Client__Request__BodyCase last_body;
    Raftkv__Client__MemberChangeRequest__Kind last_change_kind;
    uint64_t last_member_id; /* of a member change or move-leader */
    char last_peer_address[64], last_client_address[64];
    bool last_expect_absent;
    char last_expected[64];
    char last_range_key[64], last_range_end[64]; /* the last range's, as text */
    uint64_t last_range_limit;
    bool last_range_after; /* the key ended in a 0 byte (cut from last_range_key) */
    unsigned ranges;       /* range requests */
    uint8_t *last_value;   /* a put's value or a cas's new value, with last_value_len */
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

/* A membership for members: leader 1 of term 5; voter 1 (tcp://127.0.0.1:7001 and :7101,
 * match 20, healthy) and learner 4 (:7004 and :7104, match 12, not healthy); configuration
 * at index 18, committed; the leader's last index 20. */
const Raftkv__Client__MemberList *fake_member_list(void);

#define FAKE_SESSION_ID 4242
/* An address nobody listens on: a port the kernel just handed out and that was closed. */
void fake_dead_url(char *buf, size_t size);

#endif
