/* The client library's asynchronous API against fake nodes (tests/client/fake_node.h):
 * many operations in flight, exactly one callback each, results passed through, chaining
 * from the callback, and close ending what is still in flight. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "fake_node.h"
#include "raftkv/client.h"
#include "test.h"

#define OPS 200
#define WAIT_MS 20000

struct tally {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned done;
    unsigned calls[OPS]; /* callbacks per operation */
    int status[OPS];
    uint64_t revision[OPS];
    char value[OPS][16];
    /* chaining */
    struct raftkv_client *client;
    unsigned chain_left;
};

struct op_ref {
    struct tally *t;
    unsigned i;
};

static void tally_init(struct tally *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
}

static void tally_destroy(struct tally *t)
{
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
}

static void on_done(int status, const struct raftkv_result *res, void *arg)
{
    struct op_ref *r = arg;
    struct tally *t = r->t;
    pthread_mutex_lock(&t->mu);
    t->calls[r->i]++;
    t->status[r->i] = status;
    t->revision[r->i] = res->revision;
    if (res->value_len < sizeof t->value[0])
        memcpy(t->value[r->i], res->value ? (const char *)res->value : "", res->value_len);
    t->done++;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* Waits until n callbacks came, at most WAIT_MS. */
static bool tally_wait(struct tally *t, unsigned n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&t->mu);
    int rv = 0;
    while (t->done < n && rv == 0)
        rv = pthread_cond_timedwait(&t->cv, &t->mu, &ts);
    bool ok = t->done >= n;
    pthread_mutex_unlock(&t->mu);
    return ok;
}

static struct raftkv_client *client_for(const char *url, unsigned timeout_ms)
{
    struct raftkv_client_options o;
    raftkv_client_options_defaults(&o);
    o.endpoints = &url;
    o.n_endpoints = 1;
    o.timeout_ms = timeout_ms;
    o.request_timeout_ms = timeout_ms;
    struct raftkv_client *c = NULL;
    return raftkv_client_open(&o, &c) == RAFTKV_OK ? c : NULL;
}

TEST(many_in_flight_each_completes_once)
{
    struct fake_node n = {.code = RAFTKV__KV__CODE__OK, .revision = 9};
    CHECK_EQ(fake_node_start(&n), 0);
    struct raftkv_client *c = client_for(n.url, 10000);
    CHECK(c);
    static struct tally t;
    static struct op_ref refs[OPS];
    tally_init(&t);
    for (unsigned i = 0; i < OPS; i++) {
        refs[i] = (struct op_ref){&t, i};
        CHECK_EQ(raftkv_put_async(c, "k", 1, "v", 1, on_done, &refs[i]), RAFTKV_OK);
    }
    CHECK(tally_wait(&t, OPS));
    for (unsigned i = 0; i < OPS; i++) {
        CHECK_EQ(t.calls[i], 1);
        CHECK_EQ(t.status[i], RAFTKV_OK);
        CHECK_EQ(t.revision[i], 9);
    }
    CHECK_EQ(fake_node_requests(&n), OPS);
    CHECK_EQ(n.last_op, RAFTKV__KV__REQUEST__OP_PUT);
    raftkv_client_close(c);
    /* No callback ran twice, also not during close. */
    for (unsigned i = 0; i < OPS; i++)
        CHECK_EQ(t.calls[i], 1);
    tally_destroy(&t);
    fake_node_stop(&n);
}

TEST(results_reach_the_callback)
{
    struct fake_node n = {.code = RAFTKV__KV__CODE__OK, .value = "hello", .value_len = 5};
    CHECK_EQ(fake_node_start(&n), 0);
    struct raftkv_client *c = client_for(n.url, 10000);
    CHECK(c);
    static struct tally t;
    struct op_ref refs[4];
    tally_init(&t);
    for (unsigned i = 0; i < 4; i++)
        refs[i] = (struct op_ref){&t, i};
    CHECK_EQ(raftkv_get_async(c, "k", 1, on_done, &refs[0]), RAFTKV_OK);
    CHECK(tally_wait(&t, 1));
    CHECK_EQ(t.status[0], RAFTKV_OK);
    CHECK(strcmp(t.value[0], "hello") == 0);
    CHECK_EQ(n.last_op, RAFTKV__KV__REQUEST__OP_GET);

    n.code = RAFTKV__KV__CODE__CAS_MISMATCH;
    n.value = "now";
    n.value_len = 3;
    CHECK_EQ(raftkv_cas_async(c, "k", 1, "old", 3, "new", 3, on_done, &refs[1]), RAFTKV_OK);
    CHECK(tally_wait(&t, 2));
    CHECK_EQ(t.status[1], RAFTKV_CAS_MISMATCH);
    CHECK(strcmp(t.value[1], "now") == 0);
    CHECK(!n.last_expect_absent);
    CHECK(strcmp(n.last_expected, "old") == 0);

    n.code = RAFTKV__KV__CODE__NOT_FOUND;
    n.value = NULL;
    n.value_len = 0;
    CHECK_EQ(raftkv_delete_async(c, "k", 1, on_done, &refs[2]), RAFTKV_OK);
    CHECK(tally_wait(&t, 3));
    CHECK_EQ(t.status[2], RAFTKV_NOT_FOUND);
    CHECK_EQ(n.last_op, RAFTKV__KV__REQUEST__OP_DELETE);

    n.code = RAFTKV__KV__CODE__OK;
    CHECK_EQ(raftkv_cas_async(c, "k", 1, NULL, 0, "new", 3, on_done, &refs[3]), RAFTKV_OK);
    CHECK(tally_wait(&t, 4));
    CHECK_EQ(t.status[3], RAFTKV_OK);
    CHECK(n.last_expect_absent);
    raftkv_client_close(c);
    tally_destroy(&t);
    fake_node_stop(&n);
}

/* A closed loop: every callback starts the next operation on the same client. */
static void on_chain(int status, const struct raftkv_result *res, void *arg)
{
    struct tally *t = arg;
    (void)res;
    pthread_mutex_lock(&t->mu);
    t->status[0] = status == RAFTKV_OK ? t->status[0] : status;
    bool more = --t->chain_left > 0;
    t->done++;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (more && raftkv_put_async(t->client, "k", 1, "v", 1, on_chain, t) != RAFTKV_OK) {
        pthread_mutex_lock(&t->mu);
        t->status[0] = RAFTKV_EINTERNAL;
        t->done = OPS; /* wake the waiter: the chain broke */
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
    }
}

TEST(callback_issues_the_next_operation)
{
    struct fake_node n = {.code = RAFTKV__KV__CODE__OK};
    CHECK_EQ(fake_node_start(&n), 0);
    static struct tally t;
    tally_init(&t);
    t.client = client_for(n.url, 10000);
    CHECK(t.client);
    t.chain_left = 50;
    CHECK_EQ(raftkv_put_async(t.client, "k", 1, "v", 1, on_chain, &t), RAFTKV_OK);
    CHECK(tally_wait(&t, 50));
    CHECK_EQ(t.status[0], RAFTKV_OK);
    CHECK_EQ(t.done, 50);
    CHECK_EQ(fake_node_requests(&n), 50);
    raftkv_client_close(t.client);
    tally_destroy(&t);
    fake_node_stop(&n);
}

/* A node that takes requests and never answers: a listening rep0 socket nobody reads. */
static int hung_node_start(nng_socket *sock, char *url, size_t size)
{
    nng_listener l;
    int port, rv = nng_rep0_open(sock);
    if (rv)
        return rv;
    if ((rv = nng_listen(*sock, "tcp://127.0.0.1:0", &l, 0)) ||
        (rv = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port))) {
        nng_close(*sock);
        return rv;
    }
    snprintf(url, size, "tcp://127.0.0.1:%d", port);
    return 0;
}

/* Close must not wait out the timeouts (a minute here): it ends every operation at once,
 * each with one callback, before it returns. */
TEST(close_ends_operations_in_flight)
{
    nng_socket hung;
    char url[64];
    CHECK_EQ(hung_node_start(&hung, url, sizeof url), 0);
    struct raftkv_client *c = client_for(url, 60000);
    CHECK(c);
    static struct tally t;
    static struct op_ref refs[20];
    tally_init(&t);
    for (unsigned i = 0; i < 20; i++) {
        refs[i] = (struct op_ref){&t, i};
        CHECK_EQ(raftkv_put_async(c, "k", 1, "v", 1, on_done, &refs[i]), RAFTKV_OK);
    }
    raftkv_client_close(c);
    CHECK_EQ(t.done, 20);
    for (unsigned i = 0; i < 20; i++) {
        CHECK_EQ(t.calls[i], 1);
        CHECK_EQ(t.status[i], RAFTKV_UNAVAILABLE);
    }
    tally_destroy(&t);
    nng_close(hung);
}

static void never_called(int status, const struct raftkv_result *res, void *arg)
{
    (void)status;
    (void)res;
    *(bool *)arg = true;
}

TEST(bad_arguments_are_refused_without_a_callback)
{
    char dead[64];
    fake_dead_url(dead, sizeof dead);
    struct raftkv_client *c = client_for(dead, 1000);
    CHECK(c);
    bool called = false;
    CHECK_EQ(raftkv_put_async(c, "", 0, "v", 1, never_called, &called), RAFTKV_EUSAGE);
    CHECK_EQ(raftkv_put_async(c, "k", 1, NULL, 3, never_called, &called), RAFTKV_EUSAGE);
    CHECK_EQ(raftkv_put_async(c, "k", 1, "v", 1, NULL, &called), RAFTKV_EUSAGE);
    CHECK_EQ(raftkv_get_async(NULL, "k", 1, never_called, &called), RAFTKV_EUSAGE);
    CHECK_EQ(raftkv_delete_async(c, NULL, 1, never_called, &called), RAFTKV_EUSAGE);
    CHECK_EQ(raftkv_cas_async(c, "k", 1, NULL, 2, "v", 1, never_called, &called), RAFTKV_EUSAGE);
    raftkv_client_close(c);
    CHECK(!called);
}

TEST_MAIN(TEST_REF(many_in_flight_each_completes_once), TEST_REF(results_reach_the_callback),
          TEST_REF(callback_issues_the_next_operation), TEST_REF(close_ends_operations_in_flight),
          TEST_REF(bad_arguments_are_refused_without_a_callback))
