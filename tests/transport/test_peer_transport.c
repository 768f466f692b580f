/* Peer transport over loopback TCP: delivery, redial, and what it drops. */
#include <errno.h>
#include <stdatomic.h>
#include <sys/time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "../test.h"
#include "peer_util.h"
#include "transport/codec.h"

#define DEADLINE_MS 15000

/* Probes are RequestVotes with term 0; test_make_msg never makes one. */
static bool is_probe(const struct raft_msg *m)
{
    return m->type == RAFT_MSG_REQUEST_VOTE && m->term == 0;
}

/* Sends probes from a to b until b has received one more: the link is up. */
static bool wait_link(struct test_node *a, struct test_node *b)
{
    struct raft_msg probe = {.type = RAFT_MSG_REQUEST_VOTE, .from = a->id, .to = b->id};
    size_t start = test_node_count(b);
    uint64_t deadline = test_now_ms() + DEADLINE_MS;
    while (test_now_ms() < deadline) {
        if (rk_transport_send(a->t, &probe) != RAFT_OK)
            return false;
        for (uint64_t until = test_now_ms() + 100; test_now_ms() < until;) {
            if (test_node_count(b) > start)
                return true;
            test_pause();
        }
    }
    return false;
}

static bool wait_count(struct test_node *n, size_t want)
{
    uint64_t deadline = test_now_ms() + DEADLINE_MS;
    while (test_node_count(n) < want && test_now_ms() < deadline)
        test_pause();
    return test_node_count(n) >= want;
}

static bool wait_stat(struct rk_transport *t, size_t offset, uint64_t want)
{
    uint64_t deadline = test_now_ms() + DEADLINE_MS;
    for (;;) {
        struct rk_transport_stats s = test_stats(t);
        uint64_t v;
        memcpy(&v, (const char *)&s + offset, sizeof v);
        if (v >= want)
            return true;
        if (test_now_ms() > deadline)
            return false;
        test_pause();
    }
}

#define WAIT_STAT(t, field, want) wait_stat(t, offsetof(struct rk_transport_stats, field), want)

/* Checks that n holds, besides probes, exactly one intact copy of messages 0..count-1 from
 * every sender in from[]. */
static bool verify_received(struct test_node *n, const raft_id *from, size_t n_from, uint64_t count)
{
    bool ok = true;
    uint8_t *seen = calloc(n_from * count, 1);
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; i < n->n_msgs && ok; i++) {
        const struct raft_msg *m = &n->msgs[i];
        if (is_probe(m))
            continue;
        size_t k = 0;
        while (k < n_from && from[k] != m->from)
            k++;
        uint64_t seq = m->term - 1;
        ok = k < n_from && seq < count && !seen[k * count + seq];
        if (ok) {
            seen[k * count + seq] = 1;
            struct raft_msg want;
            test_make_msg(seq, m->from, n->id, 200, &want);
            ok = test_msg_equal(&want, m);
            raft_msg_free(&want);
        }
        if (!ok)
            fprintf(stderr,
                    "bad message %zu at node %" PRIu64 ": from %" PRIu64 " term %" PRIu64 "\n", i,
                    n->id, m->from, m->term);
    }
    pthread_mutex_unlock(&n->mu);
    for (size_t i = 0; i < n_from * count && ok; i++)
        ok = seen[i];
    free(seen);
    return ok;
}

/* Every node sends count messages to every other, interleaved; all must arrive intact. */
static bool exchange(struct test_node **nodes, size_t n, uint64_t count)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            if (i != j && !wait_link(nodes[i], nodes[j]))
                return false;
        }
    }
    size_t base[8];
    for (size_t i = 0; i < n; i++)
        base[i] = test_node_count(nodes[i]);
    uint64_t deadline = test_now_ms() + DEADLINE_MS;
    for (uint64_t seq = 0; seq < count; seq++) {
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < n; j++) {
                if (i == j)
                    continue;
                struct raft_msg m;
                test_make_msg(seq, nodes[i]->id, nodes[j]->id, 200, &m);
                bool sent = test_send(nodes[i]->t, &m, deadline);
                raft_msg_free(&m);
                if (!sent)
                    return false;
            }
        }
    }
    for (size_t j = 0; j < n; j++) {
        raft_id from[8];
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (i != j)
                from[k++] = nodes[i]->id;
        }
        if (!wait_count(nodes[j], base[j] + k * count) ||
            !verify_received(nodes[j], from, k, count))
            return false;
    }
    return true;
}

TEST(two_transports_exchange_every_message_type)
{
    struct test_node a, b;
    struct test_node *all[] = {&a, &b};
    test_nodes_init(all, 2);
    CHECK_EQ(test_nodes_start(all, 2, 0, 0), RAFT_OK);
    bool ok = exchange(all, 2, 3000);
    struct rk_transport_stats sa = test_stats(a.t), sb = test_stats(b.t);
    test_nodes_stop(all, 2);
    CHECK(ok);
    CHECK_EQ(sb.received, sa.sent);
    CHECK_EQ(sa.recv_malformed + sa.recv_unknown_peer, 0);
    CHECK_EQ(sb.recv_malformed + sb.recv_unknown_peer, 0);
}

TEST(three_transports_exchange_all_pairs)
{
    struct test_node a, b, c;
    struct test_node *all[] = {&a, &b, &c};
    test_nodes_init(all, 3);
    /* Few contexts, so that sending often finds them all busy and retries. */
    CHECK_EQ(test_nodes_start(all, 3, 0, 4), RAFT_OK);
    bool ok = exchange(all, 3, 1000);
    test_nodes_stop(all, 3);
    CHECK(ok);
}

TEST(restarted_peer_is_redialed)
{
    struct test_node a, b;
    struct test_node *all[] = {&a, &b};
    test_nodes_init(all, 2);
    CHECK_EQ(test_nodes_start(all, 2, 0, 0), RAFT_OK);
    CHECK(wait_link(&a, &b));
    for (int round = 0; round < 3; round++) {
        test_node_stop(&b);
        /* Messages to the dead peer are dropped or time out; sending never blocks. */
        struct raft_msg m;
        test_make_msg(1, a.id, b.id, 0, &m);
        for (int i = 0; i < 200; i++)
            CHECK_EQ(rk_transport_send(a.t, &m), RAFT_OK);
        CHECK_EQ(test_node_start(&b, all, 2, 0, 0), RAFT_OK);
        CHECK(wait_link(&a, &b));
        CHECK(wait_link(&b, &a));
    }
    test_nodes_stop(all, 2);
}

/* The address a sender takes messages at comes with each of its messages, so that a node
 * that does not know it (one joining a cluster) can answer. */
TEST(unknown_sender_is_delivered_with_its_address_and_wrong_recipient_dropped)
{
    struct test_node a, b, stranger, misaddressed;
    test_node_init(&a, 1);
    test_node_init(&b, 2);
    test_node_init(&stranger, 9);
    test_node_init(&misaddressed, 1);
    struct test_node *ab[] = {&a, &b};
    CHECK_EQ(test_node_start(&b, ab, 2, 0, 0), RAFT_OK); /* knows only a */
    struct test_node *sb[] = {&stranger, &b};
    CHECK_EQ(test_node_start(&stranger, sb, 2, 0, 0), RAFT_OK);
    /* Believes id 5 lives at b's address. */
    struct test_node five;
    test_node_init(&five, 5);
    strcpy(five.url, b.url);
    struct test_node *mf[] = {&misaddressed, &five};
    CHECK_EQ(test_node_start(&misaddressed, mf, 2, 0, 0), RAFT_OK);

    /* A leader b does not know yet (a node joining a running cluster knows no one). */
    CHECK(wait_link(&stranger, &b));
    uint64_t deadline = test_now_ms() + DEADLINE_MS;
    struct raft_msg to_five = {.type = RAFT_MSG_APPEND, .from = 1, .to = 5, .term = 3};
    while (test_stats(b.t).recv_unknown_peer < 1 && test_now_ms() < deadline) {
        rk_transport_send(misaddressed.t, &to_five);
        for (uint64_t until = test_now_ms() + 50; test_now_ms() < until;)
            test_pause();
    }
    struct rk_transport_stats s = test_stats(b.t);
    /* By peer, the stranger counts with the others: ids named by senders outside the
     * address book (forged ones, maybe) must not take the table's entries. */
    struct rk_peer_msg_stats by_peer[RAFT_MAX_MEMBERS + 1];
    size_t n_peers = rk_transport_peer_msg_stats(b.t, by_peer, RAFT_MAX_MEMBERS + 1);
    uint64_t from_others = 0;
    bool stranger_has_entry = false;
    for (size_t i = 0; i < n_peers; i++) {
        stranger_has_entry |= by_peer[i].peer == 9;
        if (by_peer[i].peer == 0)
            for (size_t k = 0; k < RAFT_MSG_TYPE_COUNT; k++)
                from_others += by_peer[i].received[k];
    }
    pthread_mutex_lock(&b.mu);
    bool all_from_stranger = b.n_msgs > 0;
    for (size_t i = 0; i < b.n_msgs; i++)
        all_from_stranger &= b.msgs[i].from == 9 && b.msgs[i].to == 2;
    bool address_given = strcmp(b.last_from, stranger.url) == 0;
    pthread_mutex_unlock(&b.mu);
    test_node_stop(&stranger);
    test_node_stop(&misaddressed);
    test_node_stop(&b);
    CHECK(s.recv_unknown_peer >= 1);
    CHECK(s.received >= 1);
    CHECK(all_from_stranger);
    CHECK(address_given);
    CHECK(!stranger_has_entry);
    CHECK(from_others >= 1);
}

/* Sends raw bytes to url as a peer would and waits for the acknowledgement. */
static bool send_raw(const char *url, const void *buf, size_t len)
{
    nng_socket s;
    if (nng_req0_open(&s) != 0)
        return false;
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, DEADLINE_MS);
    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, DEADLINE_MS);
    bool ok = nng_dial(s, url, NULL, 0) == 0 && nng_send(s, (void *)buf, len, 0) == 0;
    char *reply = NULL;
    size_t reply_len = 0;
    ok = ok && nng_recv(s, &reply, &reply_len, NNG_FLAG_ALLOC) == 0 && reply_len == 0;
    if (reply)
        nng_free(reply, reply_len);
    nng_close(s);
    return ok;
}

TEST(malformed_and_foreign_envelopes_are_counted_and_acked)
{
    struct test_node a, b;
    struct test_node *all[] = {&a, &b};
    test_nodes_init(all, 2);
    CHECK_EQ(test_nodes_start(all, 2, 0, 0), RAFT_OK);
    const char garbage[] = "\xff\xff\xff\xff not an envelope";
    CHECK(send_raw(b.url, garbage, sizeof garbage));
    CHECK(send_raw(b.url, "", 0));
    struct raft_msg m = {.type = RAFT_MSG_APPEND_RESP, .from = 1, .to = 2, .term = 4};
    uint8_t *buf;
    size_t len;
    CHECK_EQ(rk_codec_encode(&m, TEST_CLUSTER + 1, NULL, &buf, &len), RK_CODEC_OK);
    bool foreign_acked = send_raw(b.url, buf, len);
    free(buf);
    CHECK(foreign_acked);
    CHECK_EQ(test_stats(b.t).recv_malformed, 3);
    CHECK_EQ(test_node_count(&b), 0);
    CHECK(wait_link(&a, &b)); /* b still serves its real peers */
    test_nodes_stop(all, 2);
}

/* Speaks NNG's TCP framing as a req0 peer and announces a message of claimed_len bytes,
 * sending up to `body` bytes of it. Returns whether the receiver closed the connection. (A
 * raw socket rather than a second transport: NNG 1.5.2 sometimes leaks a message whose
 * connection the receiver resets mid-write, which would fail the sanitizer build.) */
static bool send_oversized(const char *url, uint64_t claimed_len, size_t body)
{
    int port = 0;
    sscanf(url, "tcp://127.0.0.1:%d", &port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {DEADLINE_MS / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const uint8_t hello[8] = {0, 'S', 'P', 0, 0, 0x30 /* req0 */, 0, 0};
    uint8_t peer_hello[8], header[8];
    for (int i = 0; i < 8; i++)
        header[i] = (uint8_t)(claimed_len >> (56 - 8 * i));
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
              send(fd, hello, sizeof hello, MSG_NOSIGNAL) == sizeof hello &&
              recv(fd, peer_hello, sizeof peer_hello, MSG_WAITALL) == sizeof peer_hello &&
              send(fd, header, sizeof header, MSG_NOSIGNAL) == sizeof header;
    uint8_t *junk = calloc(1, body + 4);
    junk[0] = 0x80; /* a well-formed request id: only the size is wrong */
    junk[3] = 1;
    if (ok && body > 0)
        (void)send(fd, junk, body, MSG_NOSIGNAL); /* may fail once the receiver hangs up */
    free(junk);
    uint8_t buf[256];
    ssize_t n = 1;
    while (ok && n > 0)
        n = recv(fd, buf, sizeof buf, 0);
    /* 0 is an orderly close, ECONNRESET an abortive one; a timeout means it never closed. */
    bool closed = ok && (n == 0 || errno == ECONNRESET);
    close(fd);
    return closed;
}

TEST(oversized_message_is_dropped_and_receiver_keeps_serving)
{
    struct test_node a, b;
    struct test_node *all[] = {&a, &b};
    test_nodes_init(all, 2);
    CHECK_EQ(test_node_start(&a, all, 2, 0, 0), RAFT_OK);
    CHECK_EQ(test_node_start(&b, all, 2, 64 << 10, 0), RAFT_OK); /* 64 KiB limit */
    CHECK(wait_link(&a, &b));
    CHECK(send_oversized(b.url, (1 << 20) + 4, 1 << 20));
    CHECK(send_oversized(b.url, UINT64_MAX, 0)); /* must not try to allocate it */
    CHECK(wait_link(&a, &b));                    /* b still serves its real peer */
    bool any_other = false;
    pthread_mutex_lock(&b.mu);
    for (size_t i = 0; i < b.n_msgs; i++)
        any_other |= !is_probe(&b.msgs[i]);
    pthread_mutex_unlock(&b.mu);
    test_nodes_stop(all, 2);
    CHECK(!any_other);
}

TEST(sender_refuses_message_over_its_own_limit)
{
    struct test_node a, b;
    struct test_node *all[] = {&a, &b};
    test_nodes_init(all, 2);
    CHECK_EQ(test_node_start(&a, all, 2, 4096, 0), RAFT_OK);
    struct raft_entry big = {.term = 1, .index = 1, .len = 8192};
    big.data = calloc(1, big.len);
    struct raft_msg m = {.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 1};
    m.append.n_entries = 1;
    m.append.entries = &big;
    int rc = rk_transport_send(a.t, &m);
    free(big.data);
    struct raft_msg unknown = {.type = RAFT_MSG_APPEND, .from = 1, .to = 42};
    int rc_unknown = rk_transport_send(a.t, &unknown);
    struct rk_transport_stats s = test_stats(a.t);
    test_node_stop(&a);
    CHECK_EQ(rc, RAFT_ETOOBIG);
    CHECK_EQ(rc_unknown, RAFT_EINVAL);
    CHECK_EQ(s.send_dropped, 1);
    CHECK_EQ(s.sent, 0);
}

TEST(send_to_dead_peer_never_blocks_and_frees_contexts)
{
    struct test_node a, dead;
    struct test_node *all[] = {&a, &dead}; /* nothing ever listens at dead's address */
    test_nodes_init(all, 2);
    CHECK_EQ(test_node_start(&a, all, 2, 0, 8), RAFT_OK);
    struct raft_msg m = {.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 1};
    for (int i = 0; i < 100; i++)
        CHECK_EQ(rk_transport_send(a.t, &m), RAFT_OK);
    CHECK(test_stats(a.t).send_dropped >= 92);
    /* The 8 waiting contexts give up after their timeout and take new messages. */
    bool freed = WAIT_STAT(a.t, send_dropped, 100);
    CHECK_EQ(rk_transport_send(a.t, &m), RAFT_OK);
    uint64_t dropped = test_stats(a.t).send_dropped;
    test_node_stop(&a);
    CHECK(freed);
    CHECK_EQ(dropped, 100); /* the last send found a free context */
}

/* The peers of n: nodes[] but n itself. */
static size_t peers_of(struct test_node *n, struct test_node **nodes, size_t n_nodes,
                       struct rk_peer *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n_nodes; i++) {
        if (nodes[i] != n)
            out[k++] = (struct rk_peer){nodes[i]->id, nodes[i]->url};
    }
    return k;
}

TEST(set_peers_adds_removes_and_moves_peers)
{
    struct test_node a, b, c, d;
    struct test_node *abc[] = {&a, &b, &c};
    test_nodes_init(abc, 3);
    test_node_init(&d, 4);
    CHECK_EQ(test_nodes_start(abc, 3, 0, 0), RAFT_OK);
    CHECK_EQ(test_node_start(&d, NULL, 0, 0, 0), RAFT_OK); /* joins knowing no one */
    CHECK(exchange(abc, 3, 50));

    struct rk_peer peers[4];
    struct test_node *abcd[] = {&a, &b, &c, &d};
    CHECK_EQ(rk_transport_set_peers(a.t, peers, peers_of(&a, abcd, 4, peers)), RAFT_OK);
    CHECK(wait_link(&a, &d));

    struct test_node *abd[] = {&a, &b, &d};
    CHECK_EQ(rk_transport_set_peers(a.t, peers, peers_of(&a, abd, 3, peers)), RAFT_OK);
    struct raft_msg to_c = {.type = RAFT_MSG_APPEND, .from = 1, .to = 3, .term = 1};
    CHECK_EQ(rk_transport_send(a.t, &to_c), RAFT_EINVAL);
    CHECK(wait_link(&a, &b));

    /* b restarts at another address: a must dial the new one. */
    test_node_stop(&b);
    snprintf(b.url, sizeof b.url, "tcp://127.0.0.1:%d", test_free_port());
    CHECK_EQ(test_node_start(&b, abd, 3, 0, 0), RAFT_OK);
    CHECK_EQ(rk_transport_set_peers(a.t, peers, peers_of(&a, abd, 3, peers)), RAFT_OK);
    CHECK(wait_link(&a, &b));
    CHECK(wait_link(&a, &d));
    struct rk_transport_stats sa = test_stats(a.t);
    test_nodes_stop(abcd, 4);
    CHECK_EQ(sa.recv_malformed + sa.recv_unknown_peer, 0);
}

/* A bare rep0 socket standing in for a peer, to watch the connections made to it. Like a
 * transport, it acknowledges every message at once (its own thread). */
struct fake_peer {
    raft_id id;
    char url[64];
    nng_socket sock;
    pthread_t thread;
    _Atomic bool stop;
    _Atomic int pipes_added, pipes_removed, received;
};

static void fake_pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    struct fake_peer *f = arg;
    (void)p;
    atomic_fetch_add(ev == NNG_PIPE_EV_ADD_POST ? &f->pipes_added : &f->pipes_removed, 1);
}

static void *fake_answer(void *arg)
{
    struct fake_peer *f = arg;
    while (!atomic_load(&f->stop)) {
        nng_msg *m;
        if (nng_recvmsg(f->sock, &m, 0) != 0)
            continue;
        atomic_fetch_add(&f->received, 1);
        nng_msg_clear(m);
        if (nng_sendmsg(f->sock, m, 0) != 0)
            nng_msg_free(m);
    }
    return NULL;
}

static bool fake_start(struct fake_peer *f, raft_id id)
{
    memset(f, 0, sizeof *f);
    f->id = id;
    snprintf(f->url, sizeof f->url, "tcp://127.0.0.1:%d", test_free_port());
    return nng_rep0_open(&f->sock) == 0 &&
           nng_pipe_notify(f->sock, NNG_PIPE_EV_ADD_POST, fake_pipe_event, f) == 0 &&
           nng_pipe_notify(f->sock, NNG_PIPE_EV_REM_POST, fake_pipe_event, f) == 0 &&
           nng_socket_set_ms(f->sock, NNG_OPT_RECVTIMEO, 100) == 0 &&
           nng_listen(f->sock, f->url, NULL, 0) == 0 &&
           pthread_create(&f->thread, NULL, fake_answer, f) == 0;
}

static void fake_stop(struct fake_peer *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    nng_close(f->sock);
}

/* Sends probes from node 1's t to f until f has received one more message. */
static bool fake_wait_probe(struct rk_transport *t, struct fake_peer *f)
{
    struct raft_msg probe = {.type = RAFT_MSG_REQUEST_VOTE, .from = 1, .to = f->id};
    int before = atomic_load(&f->received);
    uint64_t deadline = test_now_ms() + DEADLINE_MS;
    while (atomic_load(&f->received) == before && test_now_ms() < deadline) {
        if (rk_transport_send(t, &probe) != RAFT_OK)
            return false;
        for (uint64_t until = test_now_ms() + 100;
             test_now_ms() < until && atomic_load(&f->received) == before;)
            test_pause();
    }
    return atomic_load(&f->received) > before;
}

/* A peer set change dials the new addresses and keeps the links that did not change. The
 * sockets it retires go to the closer, but the test does not wait for their close: NNG
 * 1.5.2's nng_close of a req socket can hang (nanomsg/nng#648, #1543), which only holds up
 * the closer thread. It did, one run in 5 to 40 on a loaded machine, while these fake peers
 * left requests unanswered, as no transport does; answering them all, 0 runs in 40. */
TEST(set_peers_moves_changed_peers_and_keeps_unchanged_ones)
{
    struct fake_peer f2, f3, f2_moved;
    CHECK(fake_start(&f2, 2) && fake_start(&f3, 3) && fake_start(&f2_moved, 2));
    struct test_node a;
    test_node_init(&a, 1);
    CHECK_EQ(test_node_start(&a, NULL, 0, 0, 0), RAFT_OK);
    struct rk_peer first[] = {{2, f2.url}, {3, f3.url}};
    CHECK_EQ(rk_transport_set_peers(a.t, first, 2), RAFT_OK);
    CHECK(fake_wait_probe(a.t, &f2));
    CHECK(fake_wait_probe(a.t, &f3));

    struct rk_peer without_3[] = {{1, a.url} /* self: skipped */, {2, f2.url}};
    CHECK_EQ(rk_transport_set_peers(a.t, without_3, 2), RAFT_OK);
    CHECK(fake_wait_probe(a.t, &f2));
    CHECK_EQ(atomic_load(&f2.pipes_added), 1);
    CHECK_EQ(atomic_load(&f2.pipes_removed), 0);

    struct rk_peer moved[] = {{2, f2_moved.url}};
    CHECK_EQ(rk_transport_set_peers(a.t, moved, 1), RAFT_OK);
    CHECK(fake_wait_probe(a.t, &f2_moved));
    uint64_t redials = test_stats(a.t).redials;
    test_node_stop(&a);
    fake_stop(&f2);
    fake_stop(&f3);
    fake_stop(&f2_moved);
    CHECK_EQ(redials, 0);
    CHECK_EQ(atomic_load(&f3.pipes_added), 1);
}

TEST(set_peers_refuses_bad_sets_and_keeps_the_old_one)
{
    struct test_node a, b;
    struct test_node *all[] = {&a, &b};
    test_nodes_init(all, 2);
    CHECK_EQ(test_nodes_start(all, 2, 0, 0), RAFT_OK);
    struct rk_peer zero[] = {{0, b.url}};
    struct rk_peer twice[] = {{2, b.url}, {2, a.url}};
    struct rk_peer no_url[] = {{2, NULL}};
    struct rk_peer empty_url[] = {{2, ""}};
    struct rk_peer bad_scheme[] = {{2, b.url}, {3, "nonsense://"}};
    struct rk_peer many[RAFT_MAX_MEMBERS + 1];
    for (size_t i = 0; i < RAFT_MAX_MEMBERS + 1; i++)
        many[i] = (struct rk_peer){i + 2, b.url};
    CHECK_EQ(rk_transport_set_peers(a.t, zero, 1), RAFT_EINVAL);
    CHECK_EQ(rk_transport_set_peers(a.t, twice, 2), RAFT_EINVAL);
    CHECK_EQ(rk_transport_set_peers(a.t, no_url, 1), RAFT_EINVAL);
    CHECK_EQ(rk_transport_set_peers(a.t, empty_url, 1), RAFT_EINVAL);
    CHECK_EQ(rk_transport_set_peers(a.t, many, RAFT_MAX_MEMBERS + 1), RAFT_EINVAL);
    CHECK(rk_transport_set_peers(a.t, bad_scheme, 2) != RAFT_OK);
    struct raft_msg to_3 = {.type = RAFT_MSG_APPEND, .from = 1, .to = 3, .term = 1};
    CHECK_EQ(rk_transport_send(a.t, &to_3), RAFT_EINVAL);
    CHECK(wait_link(&a, &b));
    test_nodes_stop(all, 2);
}

TEST(start_fails_cleanly_on_busy_address)
{
    struct test_node a, b;
    struct test_node *all[] = {&a, &b};
    test_nodes_init(all, 2);
    CHECK_EQ(test_node_start(&a, all, 2, 0, 0), RAFT_OK);
    strcpy(b.url, a.url);
    CHECK(test_node_start(&b, all, 2, 0, 0) != RAFT_OK);
    CHECK(b.t == NULL);
    strcpy(b.url, "nonsense://");
    CHECK(test_node_start(&b, all, 2, 0, 0) != RAFT_OK);
    test_node_stop(&a);
}

TEST_MAIN(TEST_REF(two_transports_exchange_every_message_type),
          TEST_REF(three_transports_exchange_all_pairs), TEST_REF(restarted_peer_is_redialed),
          TEST_REF(unknown_sender_is_delivered_with_its_address_and_wrong_recipient_dropped),
          TEST_REF(malformed_and_foreign_envelopes_are_counted_and_acked),
          TEST_REF(oversized_message_is_dropped_and_receiver_keeps_serving),
          TEST_REF(sender_refuses_message_over_its_own_limit),
          TEST_REF(send_to_dead_peer_never_blocks_and_frees_contexts),
          TEST_REF(set_peers_adds_removes_and_moves_peers),
          TEST_REF(set_peers_moves_changed_peers_and_keeps_unchanged_ones),
          TEST_REF(set_peers_refuses_bad_sets_and_keeps_the_old_one),
          TEST_REF(start_fails_cleanly_on_busy_address))
