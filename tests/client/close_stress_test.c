/* The client's lifecycle under stress: request timeouts of 1-5 ms that race the answers,
 * clients closed while asynchronous operations are in flight, nodes that stop and come back
 * while operations run. Meant for the sanitizer builds as much as the optimised one: a
 * use after free or a data race shows there, a hang is caught by the watchdog below.
 *
 *     close_stress_test [seconds]     (default 15; the loop stops after this budget) */
#define _GNU_SOURCE /* environ */
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fake_node.h"
#include "raftkv/client.h"
#include "test.h"

/* Generous: raftkv_client_close promises to return far sooner, also under a sanitizer on a
 * loaded machine. Only a hang trips it. */
#define WATCHDOG_MS 60000
#define N_NODES 3
#define MAX_OPS 64

static unsigned budget_s = 15;
static atomic_uint_fast64_t watch_deadline; /* 0 while nothing is watched */
static const char *_Atomic watch_what;

static void watchdog_run(void *arg)
{
    (void)arg;
    for (;;) {
        nng_msleep(50);
        uint64_t d = atomic_load(&watch_deadline);
        if (d && nng_clock() > d) {
            fprintf(stderr, "close_stress: %s has not returned after %d ms\n",
                    atomic_load(&watch_what), WATCHDOG_MS);
            abort();
        }
    }
}

static void watch(const char *what)
{
    atomic_store(&watch_what, what);
    atomic_store(&watch_deadline, what ? nng_clock() + WATCHDOG_MS : 0);
}

/* What the callbacks of one client saw. */
struct tally {
    atomic_uint done;
    atomic_uint bad; /* a status no operation of this test can end with */
};

static void on_done(int status, const struct raftkv_result *res, void *arg)
{
    struct tally *t = arg;
    (void)res;
    bool known = status == RAFTKV_OK || status == RAFTKV_UNAVAILABLE ||
                 status == RAFTKV_NOT_FOUND || status == RAFTKV_CAS_MISMATCH;
    atomic_fetch_add(&t->bad, !known);
    atomic_fetch_add(&t->done, 1);
}

static int op_start(struct raftkv_client *c, unsigned kind, struct tally *t)
{
    switch (kind % 4) {
    case 0:
        return raftkv_put_async(c, "k", 1, "v", 1, on_done, t);
    case 1:
        return raftkv_get_async(c, "k", 1, on_done, t);
    case 2:
        return raftkv_cas_async(c, "k", 1, "v", 1, "w", 1, on_done, t);
    default:
        return raftkv_delete_async(c, "k", 1, on_done, t);
    }
}

/* The cluster: a leader, a follower that names it, and a slow leader, each a process of
 * its own (this program with --node) that comes and goes by SIGKILL, as a crashing node
 * does. Out of process, so that the nodes' sockets never close in this one: only the
 * clients' do, and NNG's close is what is on trial. */
struct cluster {
    pid_t pid[N_NODES]; /* 0 while down */
    char url[N_NODES][64];
    const char *urls[N_NODES];
};

static int node_serve(int i, const char *url, const char *leader_url)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* no node outlives a test that died */
    struct fake_node n = {0};
    snprintf(n.url, sizeof n.url, "%s", url);
    n.node_code = i == 1 ? RAFTKV__CLIENT__CODE__NOT_LEADER : RAFTKV__CLIENT__CODE__OK;
    n.hint = i == 1 ? leader_url : NULL;
    n.delay_ms_max = i == 2 ? 4 : 0;
    /* The port may still be held by the connections of the node before: it stays down. */
    if (fake_node_start(&n))
        return 1;
    for (;;)
        nng_msleep(1000);
}

static void node_start(struct cluster *cl, int i)
{
    char index[8];
    snprintf(index, sizeof index, "%d", i);
    char *argv[] = {"close_stress_test", "--node", index, cl->url[i], cl->url[0], NULL};
    if (posix_spawn(&cl->pid[i], "/proc/self/exe", NULL, NULL, argv, environ))
        cl->pid[i] = 0;
}

static void node_stop(struct cluster *cl, int i)
{
    kill(cl->pid[i], SIGKILL);
    waitpid(cl->pid[i], NULL, 0);
    cl->pid[i] = 0;
}

static void node_toggle(struct cluster *cl)
{
    int i = (int)(nng_random() % N_NODES);
    if (cl->pid[i])
        node_stop(cl, i);
    else
        node_start(cl, i);
}

static struct raftkv_client *client_open(struct cluster *cl, unsigned request_timeout_ms)
{
    struct raftkv_client_options o;
    raftkv_client_options_defaults(&o);
    o.endpoints = cl->urls;
    o.n_endpoints = N_NODES;
    o.request_timeout_ms = request_timeout_ms;
    o.timeout_ms = 10 + nng_random() % 100;
    o.retry_delay_ms = 1;
    struct raftkv_client *c = NULL;
    return raftkv_client_open(&o, &c) == RAFTKV_OK ? c : NULL;
}

TEST(close_while_operations_race_their_timeouts)
{
    struct cluster cl;
    memset(&cl, 0, sizeof cl);
    for (int i = 0; i < N_NODES; i++) {
        fake_dead_url(cl.url[i], sizeof cl.url[i]);
        cl.urls[i] = cl.url[i];
    }
    for (int i = 0; i < N_NODES; i++)
        node_start(&cl, i);
    nng_time end = nng_clock() + (nng_time)budget_s * 1000;
    unsigned rounds = 0, ops = 0;
    while (nng_clock() < end) {
        rounds++;
        struct raftkv_client *c = client_open(&cl, 1 + nng_random() % 5);
        CHECK(c);
        /* As raft-kv does: one operation, then close at once. */
        struct raftkv_result res;
        int st = raftkv_cas(c, "k", 1, "v", 1, "w", 1, &res);
        raftkv_result_free(&res);
        CHECK(st == RAFTKV_OK || st == RAFTKV_UNAVAILABLE);
        struct tally t = {0};
        unsigned n = nng_random() % MAX_OPS, started = 0;
        for (unsigned i = 0; i < n; i++)
            started += op_start(c, nng_random(), &t) == RAFTKV_OK;
        /* Now and then a node dies or comes back while those run. */
        if (rounds % 4 == 0)
            node_toggle(&cl);
        nng_msleep(nng_random() % 6);
        watch("raftkv_client_close");
        raftkv_client_close(c);
        watch(NULL);
        /* Every callback has run once by the time close returns. */
        CHECK_EQ(atomic_load(&t.done), started);
        CHECK_EQ(atomic_load(&t.bad), 0);
        ops += started + 1;
    }
    for (int i = 0; i < N_NODES; i++) {
        if (cl.pid[i])
            node_stop(&cl, i);
    }
    printf("%u clients, %u operations\n", rounds, ops);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--node") == 0)
        return node_serve(atoi(argv[2]), argv[3], argv[4]);
    if (argc > 1)
        budget_s = (unsigned)atoi(argv[1]);
    nng_thread *dog;
    if (nng_thread_create(&dog, watchdog_run, NULL))
        return 1;
    static const struct test_case cases[] = {TEST_REF(close_while_operations_race_their_timeouts)};
    /* The watchdog never returns; the process exit ends it. */
    return test_run_all(cases, 1, 1, argv);
}
