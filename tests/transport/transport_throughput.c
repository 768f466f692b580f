/* Measures one-way messages/s from one transport to another on loopback. Not a test: it
 * prints numbers. Usage: transport_throughput [messages] [entries per message] */
#include <stdatomic.h>

#include "peer_util.h"

static _Atomic uint64_t delivered;

static void count_and_free(void *arg, struct raft_msg *m, const char *from_address)
{
    (void)arg;
    (void)from_address;
    raft_msg_free(m);
    atomic_fetch_add_explicit(&delivered, 1, memory_order_relaxed);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;
    size_t n_entries = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
    struct test_node a, b;
    test_node_init(&a, 1);
    test_node_init(&b, 2);
    struct test_node *all[] = {&a, &b};
    struct rk_peer to_a = {1, a.url};
    struct rk_transport_options ob = {.cluster_id = TEST_CLUSTER,
                                      .self = 2,
                                      .listen_url = b.url,
                                      .n_peers = 1,
                                      .peers = &to_a,
                                      .contexts_per_peer = 64,
                                      .on_msg = count_and_free};
    if (test_node_start(&a, all, 2, 0, 64) != RAFT_OK || rk_transport_start(&ob, &b.t) != RAFT_OK)
        return 1;
    struct raft_entry *entries = calloc(n_entries ? n_entries : 1, sizeof *entries);
    for (size_t i = 0; i < n_entries; i++)
        entries[i] =
            (struct raft_entry){.term = 1, .index = i + 1, .len = 128, .data = test_bytes(i, 128)};
    struct raft_msg m = {.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 1};
    m.append.n_entries = n_entries;
    m.append.entries = entries;
    /* Warm up: wait until the connection carries messages. */
    uint64_t deadline = test_now_ms() + 10000;
    while (atomic_load(&delivered) == 0 && test_now_ms() < deadline) {
        rk_transport_send(a.t, &m);
        test_pause();
    }
    while (test_stats(a.t).sent != atomic_load(&delivered) && test_now_ms() < deadline)
        test_pause();
    uint64_t base = atomic_load(&delivered);
    uint64_t retries = 0, start = test_now_ms();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t before = test_stats(a.t).send_dropped;
        while (rk_transport_send(a.t, &m) == RAFT_OK && test_stats(a.t).send_dropped != before) {
            before++;
            retries++; /* every context busy: give NNG's threads the CPU until an ack */
            nanosleep(&(struct timespec){0, 20000}, NULL);
        }
    }
    deadline = test_now_ms() + 60000;
    while (atomic_load(&delivered) - base < n && test_now_ms() < deadline)
        test_pause();
    uint64_t ms = test_now_ms() - start;
    uint64_t got = atomic_load(&delivered) - base;
    printf("%" PRIu64 " AppendEntries x %zu entries of 128 B: %" PRIu64 " delivered in %" PRIu64
           " ms = %.0f msgs/s (%" PRIu64 " sends found all 64 contexts busy)\n",
           n, n_entries, got, ms, ms ? got * 1000.0 / (double)ms : 0.0, retries);
    rk_transport_stop(a.t);
    rk_transport_stop(b.t);
    for (size_t i = 0; i < n_entries; i++)
        free(entries[i].data);
    free(entries);
    return got == n ? 0 : 1;
}
