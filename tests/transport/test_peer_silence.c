/*
 * A peer whose packets vanish: the sender notices that nothing is acknowledged and redials,
 * so that traffic flows again soon after the network heals.
 *
 * The black hole is an in-process TCP proxy (no root, no namespaces): while it is on, the
 * proxy stops reading and forwarding, without closing anything, so the sender sees neither
 * an RST nor a FIN. A connection that lived through the black hole stays dead for good,
 * which stands in for TCP's retransmission backoff (seconds after a real partition heals)
 * and for NNG 1.5.2's dialer that sometimes never reconnects; only a fresh connection,
 * made after the heal, gets through.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#include "../test.h"
#include "peer_util.h"

#define DEADLINE_MS 15000
#define SILENT_PEER_MS 300 /* the default election_timeout_max_ms */
#define BLACKOUT_MS 2000
#define SEND_EVERY_MS 20 /* as a leader's heartbeats */
#define HEALED_TERM 1000000
#define MAX_PAIRS 256

/* One proxied connection: down is the dialer's side, up the target's. */
struct proxy_pair {
    int down, up;
    bool dead; /* swallowed by the black hole: never read nor written again */
};

struct proxy {
    int listen_fd, port, target_port;
    atomic_bool blackhole, stopping;
    atomic_int overflowed;
    atomic_uint rounds; /* of the proxy's loop, each starting with a look at blackhole */
    pthread_t thread;
    size_t n_pairs; /* the proxy thread's own, as are the pairs */
    struct proxy_pair pairs[MAX_PAIRS];
};

static int tcp_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static bool write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

static void pair_close(struct proxy_pair *p)
{
    close(p->down);
    close(p->up);
    p->down = p->up = -1;
    p->dead = true;
}

/* Forwards what is readable on from; false once either side is gone. */
static bool forward(int from, int to)
{
    char buf[65536];
    ssize_t n = read(from, buf, sizeof buf);
    return n > 0 && write_all(to, buf, (size_t)n);
}

static void proxy_accept(struct proxy *p)
{
    int down = accept(p->listen_fd, NULL, NULL);
    if (down < 0)
        return;
    int up = tcp_connect(p->target_port);
    if (up < 0 || p->n_pairs == MAX_PAIRS) {
        atomic_store(&p->overflowed, up >= 0);
        close(down);
        if (up >= 0)
            close(up);
        return;
    }
    p->pairs[p->n_pairs++] = (struct proxy_pair){down, up, atomic_load(&p->blackhole)};
}

static void *proxy_run(void *arg)
{
    struct proxy *p = arg;
    struct pollfd fds[1 + 2 * MAX_PAIRS];
    size_t owner[1 + 2 * MAX_PAIRS];
    while (!atomic_load(&p->stopping)) {
        bool blackhole = atomic_load(&p->blackhole);
        atomic_fetch_add(&p->rounds, 1);
        size_t n = 0;
        fds[n++] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
        for (size_t i = 0; i < p->n_pairs; i++) {
            struct proxy_pair *pp = &p->pairs[i];
            pp->dead = pp->dead || blackhole;
            if (pp->dead)
                continue;
            owner[n] = i;
            fds[n++] = (struct pollfd){.fd = pp->down, .events = POLLIN};
            owner[n] = i;
            fds[n++] = (struct pollfd){.fd = pp->up, .events = POLLIN};
        }
        if (poll(fds, n, 10) <= 0)
            continue;
        if (fds[0].revents)
            proxy_accept(p);
        for (size_t k = 1; k < n; k++) {
            struct proxy_pair *pp = &p->pairs[owner[k]];
            if (!fds[k].revents || pp->dead || atomic_load(&p->blackhole))
                continue;
            bool from_down = fds[k].fd == pp->down;
            if (!forward(fds[k].fd, from_down ? pp->up : pp->down))
                pair_close(pp);
        }
    }
    return NULL;
}

static bool proxy_start(struct proxy *p, int target_port)
{
    memset(p, 0, sizeof *p);
    p->target_port = target_port;
    p->listen_fd = tcp_listen(&p->port);
    if (p->listen_fd < 0)
        return false;
    if (pthread_create(&p->thread, NULL, proxy_run, p) != 0) {
        close(p->listen_fd);
        return false;
    }
    return true;
}

static void proxy_stop(struct proxy *p)
{
    atomic_store(&p->stopping, true);
    pthread_join(p->thread, NULL);
    for (size_t i = 0; i < p->n_pairs; i++) {
        if (p->pairs[i].down >= 0)
            pair_close(&p->pairs[i]);
    }
    close(p->listen_fd);
}

/* Returns once the proxy thread has seen the change: no byte is forwarded after a
 * black hole set here. */
static void proxy_set_blackhole(struct proxy *p, bool on)
{
    atomic_store(&p->blackhole, on);
    unsigned start = atomic_load(&p->rounds);
    while (atomic_load(&p->rounds) < start + 2)
        test_pause();
}

/* Starts n's transport with one peer, reached at url. */
static int start_node(struct test_node *n, raft_id peer, const char *url)
{
    struct rk_peer list[] = {{peer, url}};
    struct rk_transport_options o = {
        .cluster_id = TEST_CLUSTER,
        .self = n->id,
        .listen_url = n->url,
        .n_peers = 1,
        .peers = list,
        .silent_peer_ms = SILENT_PEER_MS,
        .on_msg = test_sink,
        .arg = n,
    };
    return rk_transport_start(&o, &n->t);
}

static bool received_term(struct test_node *n, raft_term at_least)
{
    bool found = false;
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; i < n->n_msgs && !found; i++)
        found = n->msgs[i].term >= at_least;
    pthread_mutex_unlock(&n->mu);
    return found;
}

/* Sends a heartbeat-like message of the given term from a to b every SEND_EVERY_MS, each
 * with the next term, until b has one of term at least first_term or deadline passes. */
static bool send_until_received(struct test_node *a, struct test_node *b, raft_term first_term,
                                uint64_t deadline)
{
    struct raft_msg m = {.type = RAFT_MSG_APPEND, .from = a->id, .to = b->id, .term = first_term};
    while (test_now_ms() < deadline) {
        if (rk_transport_send(a->t, &m) != RAFT_OK)
            return false;
        m.term++;
        for (uint64_t until = test_now_ms() + SEND_EVERY_MS; test_now_ms() < until;) {
            if (received_term(b, first_term))
                return true;
            test_pause();
        }
    }
    return received_term(b, first_term);
}

TEST(silent_peer_is_redialed_once_the_network_heals)
{
    struct test_node a, b;
    test_node_init(&a, 1);
    test_node_init(&b, 2);
    int b_port = atoi(strrchr(b.url, ':') + 1);
    struct proxy p;
    CHECK(proxy_start(&p, b_port));
    char via_proxy[64];
    snprintf(via_proxy, sizeof via_proxy, "tcp://127.0.0.1:%d", p.port);
    CHECK_EQ(start_node(&b, a.id, a.url), RAFT_OK);
    CHECK_EQ(start_node(&a, b.id, via_proxy), RAFT_OK);
    bool linked = send_until_received(&a, &b, 1, test_now_ms() + DEADLINE_MS);

    proxy_set_blackhole(&p, true);
    uint64_t redials_before = test_stats(a.t).redials;
    /* The sender keeps sending as a leader would; nothing gets through. */
    bool leaked = send_until_received(&a, &b, HEALED_TERM / 2, test_now_ms() + BLACKOUT_MS);
    proxy_set_blackhole(&p, false);
    uint64_t healed_at = test_now_ms();
    bool recovered = send_until_received(&a, &b, HEALED_TERM, healed_at + DEADLINE_MS);
    uint64_t recovery_ms = test_now_ms() - healed_at;
    uint64_t redials = test_stats(a.t).redials - redials_before;
    printf("first message delivered %" PRIu64 " ms after the heal (%" PRIu64
           " redials, silent_peer_ms %d)\n",
           recovery_ms, redials, SILENT_PEER_MS);

    test_node_stop(&a);
    test_node_stop(&b);
    proxy_stop(&p);
    CHECK(linked);
    CHECK(!leaked);
    CHECK(recovered);
    CHECK(redials > 0);
    CHECK_EQ(atomic_load(&p.overflowed), 0);
}

TEST_MAIN(TEST_REF(silent_peer_is_redialed_once_the_network_heals))
