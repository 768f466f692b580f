/* Client request server and change-stream publisher over loopback TCP. */
#include <pthread.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>

#include "../test.h"
#include "msg_util.h"
#include "transport/transport.h"

#define DEADLINE_MS 15000
#define N_CLIENTS 8
#define N_REQUESTS 50

/* The node's side: on_request only queues, as a real node's event loop would require. */
struct pending {
    struct rk_client_call *call;
    size_t len;
    uint8_t req[64];
};

struct server_side {
    pthread_mutex_t mu;
    size_t n;
    struct pending q[N_CLIENTS * 2];
    bool overflow;
};

static void queue_request(void *arg, struct rk_client_call *call, const uint8_t *req, size_t len)
{
    struct server_side *s = arg;
    pthread_mutex_lock(&s->mu);
    if (s->n == N_CLIENTS * 2 || len > sizeof s->q[0].req) {
        s->overflow = true;
    } else {
        s->q[s->n].call = call;
        s->q[s->n].len = len;
        memcpy(s->q[s->n].req, req, len);
        s->n++;
    }
    pthread_mutex_unlock(&s->mu);
}

struct client {
    const char *url;
    int id;
    int failures;
};

static void *client_run(void *arg)
{
    struct client *c = arg;
    nng_socket s;
    if (nng_req0_open(&s) != 0) {
        c->failures = N_REQUESTS;
        return NULL;
    }
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, DEADLINE_MS);
    if (nng_dial(s, c->url, NULL, 0) != 0)
        c->failures = N_REQUESTS;
    for (int j = 0; j < N_REQUESTS && c->failures == 0; j++) {
        char req[32], want[40];
        snprintf(req, sizeof req, "c%d-%d", c->id, j);
        snprintf(want, sizeof want, "re:%s", req);
        char *reply = NULL;
        size_t len = 0;
        if (nng_send(s, req, strlen(req), 0) != 0 ||
            nng_recv(s, &reply, &len, NNG_FLAG_ALLOC) != 0 || len != strlen(want) ||
            memcmp(reply, want, len) != 0)
            c->failures++;
        if (reply)
            nng_free(reply, len);
    }
    nng_close(s);
    return NULL;
}

/* Takes every queued request once at least `min` are queued (or the deadline passed). */
static size_t take_pending(struct server_side *s, struct pending *out, size_t min)
{
    uint64_t deadline = test_now_ms() + DEADLINE_MS;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        size_t n = s->n;
        if (n >= min || (n > 0 && test_now_ms() > deadline)) {
            memcpy(out, s->q, n * sizeof *out);
            s->n = 0;
        }
        pthread_mutex_unlock(&s->mu);
        if (n >= min || (n > 0 && test_now_ms() > deadline))
            return n;
        if (test_now_ms() > deadline + DEADLINE_MS)
            return 0;
        test_pause();
    }
}

TEST(client_requests_are_served_concurrently)
{
    static struct server_side side = {.mu = PTHREAD_MUTEX_INITIALIZER};
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", test_free_port());
    struct rk_client_server_options o = {
        .listen_url = url, .contexts = 16, .on_request = queue_request, .arg = &side};
    struct rk_client_server *srv;
    CHECK_EQ(rk_client_server_start(&o, &srv), RAFT_OK);
    pthread_t threads[N_CLIENTS];
    struct client clients[N_CLIENTS];
    for (int i = 0; i < N_CLIENTS; i++) {
        clients[i] = (struct client){url, i, 0};
        pthread_create(&threads[i], NULL, client_run, &clients[i]);
    }
    /* Every client's first request is outstanding at once before any is answered. */
    size_t first_batch = 0, answered = 0;
    struct pending batch[N_CLIENTS * 2];
    for (size_t min = N_CLIENTS; answered < N_CLIENTS * N_REQUESTS; min = 1) {
        size_t n = take_pending(&side, batch, min);
        if (n == 0)
            break;
        if (first_batch == 0)
            first_batch = n;
        for (size_t i = n; i-- > 0;) { /* answer out of arrival order */
            uint8_t resp[80] = "re:";
            memcpy(resp + 3, batch[i].req, batch[i].len);
            rk_client_server_reply(srv, batch[i].call, resp, batch[i].len + 3);
        }
        answered += n;
    }
    int failures = 0;
    for (int i = 0; i < N_CLIENTS; i++) {
        pthread_join(threads[i], NULL);
        failures += clients[i].failures;
    }
    rk_client_server_stop(srv);
    CHECK_EQ(first_batch, N_CLIENTS);
    CHECK_EQ(answered, N_CLIENTS * N_REQUESTS);
    CHECK_EQ(failures, 0);
    CHECK(!side.overflow);
}

TEST(client_server_start_fails_cleanly_on_busy_address)
{
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", test_free_port());
    struct rk_client_server_options o = {.listen_url = url, .on_request = queue_request};
    struct rk_client_server *a, *b;
    CHECK_EQ(rk_client_server_start(&o, &a), RAFT_OK);
    CHECK(rk_client_server_start(&o, &b) != RAFT_OK);
    CHECK(b == NULL);
    struct rk_publisher *p;
    CHECK(rk_publisher_start(url, NULL, &p) != RAFT_OK);
    CHECK(p == NULL);
    rk_client_server_stop(a);
}

static void reply_at_once(void *arg, struct rk_client_call *call, const uint8_t *req, size_t len)
{
    struct rk_client_server **srv = arg; /* set before any client connects */
    rk_client_server_reply(*srv, call, req, len);
}

/* Each connection sends its first request the moment it is up, then another. */
static int connect_and_ask_twice(const char *url)
{
    nng_socket s;
    if (nng_req0_open(&s) != 0)
        return 2;
    int failures = 0;
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, DEADLINE_MS);
    if (nng_dial(s, url, NULL, 0) != 0)
        failures = 2;
    for (int j = 0; j < 2 && failures == 0; j++) {
        char *reply = NULL;
        size_t len = 0;
        if (nng_send(s, "ping", 4, 0) != 0 || nng_recv(s, &reply, &len, NNG_FLAG_ALLOC) != 0)
            failures++;
        if (reply)
            nng_free(reply, len);
    }
    nng_close(s);
    return failures;
}

/* NNG starts receiving on a connection before it reports ADD_POST: a request that arrives
 * first must be counted like any other, or its answer would leave the connection's count
 * of unanswered requests wrapped around, and every later request on it refused. */
TEST(a_request_on_a_brand_new_connection_is_counted)
{
    static struct rk_client_server *srv;
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", test_free_port());
    struct rk_client_server_options o = {
        .listen_url = url, .contexts = 16, .on_request = reply_at_once, .arg = &srv};
    CHECK_EQ(rk_client_server_start(&o, &srv), RAFT_OK);
    int failures = 0;
    for (int i = 0; i < 300; i++)
        failures += connect_and_ask_twice(url);
    struct rk_server_stats st = {0};
    rk_client_server_stats(srv, &st);
    rk_client_server_stop(srv);
    CHECK_EQ(failures, 0);
    CHECK_EQ(st.requests_over_limit, 0);
}

#define N_EVENTS 1000

struct subscriber {
    nng_socket sock;
    pthread_mutex_t mu;
    int n_kv, n_leader, errors, next;
    bool done;
};

static void *subscriber_run(void *arg)
{
    struct subscriber *s = arg;
    for (;;) {
        char *buf = NULL;
        size_t len = 0;
        if (nng_recv(s->sock, &buf, &len, NNG_FLAG_ALLOC) != 0)
            return NULL; /* closed, or nothing for too long */
        pthread_mutex_lock(&s->mu);
        if (len >= 3 && memcmp(buf, "kv/", 3) == 0) {
            char want[32];
            int wl = snprintf(want, sizeof want, "kv/event-%d", s->next);
            if ((size_t)wl != len || memcmp(buf, want, len) != 0)
                s->errors++;
            s->next++;
            s->n_kv++;
        } else if (len >= 7 && memcmp(buf, RK_TOPIC_LEADER, 7) == 0) {
            s->n_leader++;
            s->done |= len == 10 && memcmp(buf, "leader/end", 10) == 0;
        } else {
            s->errors++; /* a topic it did not subscribe to */
        }
        pthread_mutex_unlock(&s->mu);
        nng_free(buf, len);
    }
}

static int sub_get(struct subscriber *s, const int *field)
{
    pthread_mutex_lock(&s->mu);
    int v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static bool sub_done(struct subscriber *s)
{
    pthread_mutex_lock(&s->mu);
    bool done = s->done;
    pthread_mutex_unlock(&s->mu);
    return done;
}

TEST(subscriber_gets_each_published_event_once_in_order)
{
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", test_free_port());
    struct rk_publisher *p;
    CHECK_EQ(rk_publisher_start(url, NULL, &p), RAFT_OK);
    static struct subscriber sub = {.mu = PTHREAD_MUTEX_INITIALIZER};
    CHECK_EQ(nng_sub0_open(&sub.sock), 0);
    CHECK_EQ(nng_socket_set_int(sub.sock, NNG_OPT_RECVBUF, 8192), 0);
    CHECK_EQ(nng_socket_set_ms(sub.sock, NNG_OPT_RECVTIMEO, DEADLINE_MS), 0);
    CHECK_EQ(nng_socket_set(sub.sock, NNG_OPT_SUB_SUBSCRIBE, "kv/", 3), 0);
    CHECK_EQ(nng_socket_set(sub.sock, NNG_OPT_SUB_SUBSCRIBE, RK_TOPIC_LEADER, 7), 0);
    CHECK_EQ(nng_dial(sub.sock, url, NULL, 0), 0);
    pthread_t th;
    pthread_create(&th, NULL, subscriber_run, &sub);
    /* A subscriber only hears what is published after it connected: announce until heard. */
    uint64_t deadline = test_now_ms() + DEADLINE_MS;
    while (sub_get(&sub, &sub.n_leader) == 0 && test_now_ms() < deadline) {
        rk_publisher_send(p, RK_TOPIC_LEADER, (const uint8_t *)"hello", 5);
        for (uint64_t until = test_now_ms() + 20; test_now_ms() < until;)
            test_pause();
    }
    for (int i = 0; i < N_EVENTS; i++) {
        char payload[32];
        int len = snprintf(payload, sizeof payload, "event-%d", i);
        rk_publisher_send(p, "kv/", (const uint8_t *)payload, (size_t)len);
        if (i % 100 == 0)
            rk_publisher_send(p, "other/", (const uint8_t *)"x", 1);
    }
    rk_publisher_send(p, RK_TOPIC_LEADER, (const uint8_t *)"end", 3);
    while (!sub_done(&sub) && test_now_ms() < deadline + DEADLINE_MS)
        test_pause();
    nng_close(sub.sock);
    pthread_join(th, NULL);
    rk_publisher_stop(p);
    CHECK(sub.done);
    CHECK_EQ(sub.n_kv, N_EVENTS);
    CHECK_EQ(sub.errors, 0);
}

TEST_MAIN(TEST_REF(client_requests_are_served_concurrently),
          TEST_REF(client_server_start_fails_cleanly_on_busy_address),
          TEST_REF(a_request_on_a_brand_new_connection_is_counted),
          TEST_REF(subscriber_gets_each_published_event_once_in_order))
