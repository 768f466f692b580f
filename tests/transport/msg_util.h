/* Helpers shared by the transport tests: deterministic messages, deep comparison, ports,
 * deadlines. */
#ifndef RAFTKV_TEST_MSG_UTIL_H
#define RAFTKV_TEST_MSG_UTIL_H

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "raftkv/raft.h"

static inline uint8_t *test_bytes(uint64_t seed, size_t len)
{
    if (len == 0)
        return NULL;
    uint8_t *p = malloc(len);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
    return p;
}

#define TEST_MSG_TYPES (RAFT_MSG_TIMEOUT_NOW + 1)

static inline char *test_string(const char *fmt, uint64_t n)
{
    char buf[64];
    snprintf(buf, sizeof buf, fmt, n);
    return strdup(buf);
}

/* n members, voters and learners, some of whose addresses are unknown (""). */
static inline void test_make_conf(uint64_t seed, size_t n, struct raft_configuration *conf)
{
    conf->n = n;
    conf->members = n ? calloc(n, sizeof *conf->members) : NULL;
    for (size_t i = 0; i < n; i++) {
        struct raft_member *m = &conf->members[i];
        m->id = seed * 100 + i + 1;
        m->role = (seed + i) % 3 == 0 ? RAFT_LEARNER : RAFT_VOTER;
        m->peer_address = test_string("tcp://10.0.0.%" PRIu64 ":7001", i);
        m->client_address = test_string((seed + i) % 4 ? "tcp://10.0.1.%" PRIu64 ":7002" : "", i);
    }
}

/* A message determined by seq: the type cycles through all of them, AppendEntries carries
 * up to n_entries_max entries of varying sizes. Free with raft_msg_free. */
static inline void test_make_msg(uint64_t seq, raft_id from, raft_id to, size_t n_entries_max,
                                 struct raft_msg *m)
{
    memset(m, 0, sizeof *m);
    m->type = (enum raft_msg_type)(seq % TEST_MSG_TYPES);
    m->from = from;
    m->to = to;
    m->term = seq + 1;
    switch (m->type) {
    case RAFT_MSG_REQUEST_VOTE:
        m->request_vote = (struct raft_request_vote){seq * 3, seq * 5, seq % 4 == 0, seq % 3 == 0};
        break;
    case RAFT_MSG_REQUEST_VOTE_RESP:
        m->request_vote_resp = (struct raft_request_vote_resp){seq % 3 == 0, seq % 5 == 0};
        break;
    case RAFT_MSG_APPEND: {
        struct raft_append *a = &m->append;
        a->prev_index = seq * 11;
        a->prev_term = seq;
        a->commit = seq * 7;
        a->context = seq * 19;
        a->n_entries = n_entries_max ? seq % (n_entries_max + 1) : 0;
        a->entries = a->n_entries ? calloc(a->n_entries, sizeof *a->entries) : NULL;
        for (size_t i = 0; i < a->n_entries; i++) {
            struct raft_entry *e = &a->entries[i];
            e->term = seq;
            e->index = a->prev_index + i + 1;
            e->type = (enum raft_entry_type)((seq + i) % 3);
            e->len = (seq + i) % 300;
            e->data = test_bytes(seq + i, e->len);
        }
        break;
    }
    case RAFT_MSG_APPEND_RESP:
        m->append_resp = (struct raft_append_resp){.success = seq % 2 == 0,
                                                   .index = seq * 13,
                                                   .conflict_term = seq / 2,
                                                   .conflict_index = seq * 17,
                                                   .last_index = UINT64_MAX - seq,
                                                   .context = seq * 3};
        break;
    case RAFT_MSG_INSTALL_SNAPSHOT: {
        struct raft_install_snapshot *s = &m->install_snapshot;
        s->last_index = seq * 19;
        s->last_term = seq;
        test_make_conf(seq, seq % 6, &s->conf);
        s->offset = seq << 20;
        s->len = (seq * 37) % 5000;
        s->data = test_bytes(seq, s->len);
        s->done = seq % 2 == 1;
        break;
    }
    case RAFT_MSG_INSTALL_SNAPSHOT_RESP:
        m->install_snapshot_resp =
            (struct raft_install_snapshot_resp){seq * 23, seq << 10, seq % 2 == 0, seq % 3 == 0};
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        break;
    }
}

static inline bool test_bytes_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static inline bool test_entries_equal(const struct raft_append *a, const struct raft_append *b)
{
    if (a->prev_index != b->prev_index || a->prev_term != b->prev_term || a->commit != b->commit ||
        a->context != b->context || a->n_entries != b->n_entries)
        return false;
    for (size_t i = 0; i < a->n_entries; i++) {
        const struct raft_entry *x = &a->entries[i], *y = &b->entries[i];
        if (x->term != y->term || x->index != y->index || x->type != y->type ||
            !test_bytes_equal(x->data, x->len, y->data, y->len))
            return false;
    }
    return true;
}

static inline bool test_msg_equal(const struct raft_msg *a, const struct raft_msg *b)
{
    if (a->type != b->type || a->from != b->from || a->to != b->to || a->term != b->term)
        return false;
    switch (a->type) {
    case RAFT_MSG_REQUEST_VOTE:
        return a->request_vote.last_log_index == b->request_vote.last_log_index &&
               a->request_vote.last_log_term == b->request_vote.last_log_term &&
               a->request_vote.pre_vote == b->request_vote.pre_vote &&
               a->request_vote.transfer == b->request_vote.transfer;
    case RAFT_MSG_REQUEST_VOTE_RESP:
        return a->request_vote_resp.granted == b->request_vote_resp.granted &&
               a->request_vote_resp.pre_vote == b->request_vote_resp.pre_vote;
    case RAFT_MSG_APPEND:
        return test_entries_equal(&a->append, &b->append);
    case RAFT_MSG_APPEND_RESP:
        return a->append_resp.success == b->append_resp.success &&
               a->append_resp.index == b->append_resp.index &&
               a->append_resp.conflict_term == b->append_resp.conflict_term &&
               a->append_resp.conflict_index == b->append_resp.conflict_index &&
               a->append_resp.last_index == b->append_resp.last_index &&
               a->append_resp.context == b->append_resp.context;
    case RAFT_MSG_INSTALL_SNAPSHOT: {
        const struct raft_install_snapshot *x = &a->install_snapshot, *y = &b->install_snapshot;
        return x->last_index == y->last_index && x->last_term == y->last_term &&
               x->offset == y->offset && x->done == y->done &&
               raft_configuration_equal(&x->conf, &y->conf) &&
               test_bytes_equal(x->data, x->len, y->data, y->len);
    }
    case RAFT_MSG_INSTALL_SNAPSHOT_RESP:
        return a->install_snapshot_resp.last_index == b->install_snapshot_resp.last_index &&
               a->install_snapshot_resp.offset == b->install_snapshot_resp.offset &&
               a->install_snapshot_resp.done == b->install_snapshot_resp.done &&
               a->install_snapshot_resp.rejected == b->install_snapshot_resp.rejected;
    case RAFT_MSG_TIMEOUT_NOW:
        return true;
    }
    return false;
}

static inline uint64_t test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Yields briefly while polling a condition; never a substitute for waiting on it. */
static inline void test_pause(void)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

/* A TCP port on 127.0.0.1 that was free a moment ago. */
static inline int test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

#endif
