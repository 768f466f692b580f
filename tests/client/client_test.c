/* The client library against fake nodes (fake_node.h): leader discovery, failover, backoff
 * and the mapping of every answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_node.h"
#include "raftkv/client.h"
#include "test.h"

#define OK_CODE RAFTKV__KV__CODE__OK

/* request_timeout_ms: short where a hung or dead node must be left, generous elsewhere so
 * a loaded machine cannot turn an answer into a timeout. */
static struct raftkv_client *client_for(const char *const *urls, size_t n, unsigned attempts,
                                        unsigned timeout_ms, unsigned request_timeout_ms)
{
    struct raftkv_client_options o;
    raftkv_client_options_defaults(&o);
    o.endpoints = urls;
    o.n_endpoints = n;
    o.attempts = attempts;
    o.timeout_ms = timeout_ms;
    o.request_timeout_ms = request_timeout_ms;
    o.retry_delay_ms = 5;
    struct raftkv_client *c = NULL;
    return raftkv_client_open(&o, &c) == RAFTKV_OK ? c : NULL;
}

TEST(follows_leader_hint_outside_the_endpoint_list)
{
    struct fake_node a = {.node_code = RAFTKV__CLIENT__CODE__NOT_LEADER};
    struct fake_node b = {.code = OK_CODE, .revision = 7};
    CHECK_EQ(fake_node_start(&a), 0);
    CHECK_EQ(fake_node_start(&b), 0);
    a.hint = b.url;
    const char *urls[] = {a.url};
    struct raftkv_client *c = client_for(urls, 1, 5, 5000, 3000);
    CHECK(c);
    struct raftkv_result res;
    /* The session's registration found the leader; the write went straight there. */
    CHECK_EQ(raftkv_put(c, "k", 1, "v", 1, &res), RAFTKV_OK);
    CHECK_EQ(res.revision, 7);
    CHECK_EQ(fake_node_registrations(&a), 1);
    CHECK_EQ(fake_node_registrations(&b), 1);
    CHECK_EQ(fake_node_requests(&a), 0);
    CHECK_EQ(fake_node_requests(&b), 1);
    CHECK_EQ(b.last_session, FAKE_SESSION_ID);
    CHECK_EQ(b.last_sequence, 1);
    CHECK_EQ(b.last_op, RAFTKV__KV__REQUEST__OP_PUT);
    /* The lead moves back to a: the next write, retried there, keeps its identity and
     * says the first write was answered. */
    nng_mtx_lock(b.mu);
    b.node_code = RAFTKV__CLIENT__CODE__NOT_LEADER;
    b.hint = a.url;
    nng_mtx_unlock(b.mu);
    nng_mtx_lock(a.mu);
    a.node_code = RAFTKV__CLIENT__CODE__OK;
    a.code = OK_CODE;
    nng_mtx_unlock(a.mu);
    CHECK_EQ(raftkv_put(c, "k", 1, "w", 1, &res), RAFTKV_OK);
    CHECK_EQ(fake_node_requests(&a), 1);
    CHECK_EQ(fake_node_requests(&b), 2);
    CHECK_EQ(a.last_session, FAKE_SESSION_ID);
    CHECK_EQ(b.last_sequence, 2);
    CHECK_EQ(a.last_sequence, 2);
    CHECK_EQ(a.last_first_incomplete, 2);
    CHECK_EQ(fake_node_registrations(&a) + fake_node_registrations(&b), 2);
    raftkv_result_free(&res);
    raftkv_client_close(c);
    fake_node_stop(&a);
    fake_node_stop(&b);
}

TEST(not_leader_without_hint_tries_another_node)
{
    struct fake_node a = {.node_code = RAFTKV__CLIENT__CODE__NOT_LEADER};
    struct fake_node b = {.code = OK_CODE};
    CHECK_EQ(fake_node_start(&a), 0);
    CHECK_EQ(fake_node_start(&b), 0);
    const char *urls[] = {a.url, b.url};
    struct raftkv_client *c = client_for(urls, 2, 5, 5000, 3000);
    CHECK(c);
    CHECK_EQ(raftkv_delete(c, "k", 1, NULL), RAFTKV_OK);
    CHECK_EQ(fake_node_requests(&b), 1);
    CHECK_EQ(b.last_op, RAFTKV__KV__REQUEST__OP_DELETE);
    raftkv_client_close(c);
    fake_node_stop(&a);
    fake_node_stop(&b);
}

/* Hints that cannot help are not followed: every try goes back to a node that answers.
 * (Reads and writes share the retries; a read here, as a write would first retry the
 * registration of its session.) */
TEST(useless_hints_are_ignored)
{
    char dead[64];
    fake_dead_url(dead, sizeof dead);
    const char *hints[] = {NULL, "not an address", dead};
    for (size_t i = 0; i < 3; i++) {
        struct fake_node a = {.node_code = RAFTKV__CLIENT__CODE__NOT_LEADER, .hint = hints[i]};
        CHECK_EQ(fake_node_start(&a), 0);
        const char *urls[] = {a.url};
        struct raftkv_client *c = client_for(urls, 1, 4, 30000, 300);
        CHECK(c);
        struct raftkv_result res;
        CHECK_EQ(raftkv_get(c, "k", 1, &res), RAFTKV_UNAVAILABLE);
        CHECK(strstr(res.error, "not the leader"));
        /* The dead leader costs one try; once its connection is known down, no more. */
        CHECK_EQ(fake_node_requests(&a), hints[i] == dead ? 3 : 4);
        raftkv_client_close(c);
        fake_node_stop(&a);
    }
}

TEST(fails_over_from_a_dead_endpoint)
{
    char dead[64];
    fake_dead_url(dead, sizeof dead);
    struct fake_node b = {.code = OK_CODE, .value = "v1", .value_len = 2, .mod_revision = 3};
    CHECK_EQ(fake_node_start(&b), 0);
    const char *urls[] = {dead, b.url};
    struct raftkv_client *c = client_for(urls, 2, 10, 10000, 300);
    CHECK(c);
    struct raftkv_result res;
    CHECK_EQ(raftkv_get(c, "k", 1, &res), RAFTKV_OK);
    CHECK_EQ(res.value_len, 2);
    CHECK(memcmp(res.value, "v1", 2) == 0);
    CHECK_EQ(res.mod_revision, 3);
    raftkv_result_free(&res);
    raftkv_client_close(c);
    fake_node_stop(&b);
}

TEST(fails_over_from_a_hung_leader)
{
    struct fake_node a = {.code = OK_CODE};
    struct fake_node b = {.node_code = RAFTKV__CLIENT__CODE__NOT_LEADER};
    CHECK_EQ(fake_node_start(&a), 0);
    CHECK_EQ(fake_node_start(&b), 0);
    b.hint = a.url;
    const char *urls[] = {a.url, b.url};
    struct raftkv_client *c = client_for(urls, 2, 10, 10000, 300);
    CHECK(c);
    CHECK_EQ(raftkv_put(c, "k", 1, "v", 1, NULL), RAFTKV_OK); /* a is now the known leader */
    unsigned before = fake_node_requests(&a);
    /* The leader hangs and b takes over; set between requests, so the nodes see it. */
    a.silent = true;
    b.node_code = RAFTKV__CLIENT__CODE__OK;
    CHECK_EQ(raftkv_put(c, "k", 1, "v", 1, NULL), RAFTKV_OK);
    CHECK(fake_node_requests(&a) > before); /* the known leader was tried first */
    raftkv_client_close(c);
    fake_node_stop(&a);
    fake_node_stop(&b);
}

TEST(fails_over_from_a_dead_leader)
{
    struct fake_node a = {.code = OK_CODE};
    struct fake_node b = {.node_code = RAFTKV__CLIENT__CODE__NOT_LEADER};
    CHECK_EQ(fake_node_start(&a), 0);
    CHECK_EQ(fake_node_start(&b), 0);
    b.hint = a.url;
    const char *urls[] = {a.url, b.url};
    struct raftkv_client *c = client_for(urls, 2, 10, 10000, 300);
    CHECK(c);
    CHECK_EQ(raftkv_put(c, "k", 1, "v", 1, NULL), RAFTKV_OK); /* a is now the known leader */
    fake_node_stop(&a);
    b.hint = NULL;
    b.node_code = RAFTKV__CLIENT__CODE__OK;
    CHECK_EQ(raftkv_put(c, "k", 1, "v", 1, NULL), RAFTKV_OK);
    raftkv_client_close(c);
    fake_node_stop(&b);
}

/* Every try after a backoff must time out as a timeout, not end early or oddly. */
TEST(hung_node_times_out_on_every_try)
{
    struct fake_node a = {.silent = true};
    CHECK_EQ(fake_node_start(&a), 0);
    const char *urls[] = {a.url};
    struct raftkv_client *c = client_for(urls, 1, 3, 30000, 100);
    CHECK(c);
    struct raftkv_result res;
    CHECK_EQ(raftkv_put(c, "k", 1, "v", 1, &res), RAFTKV_UNAVAILABLE);
    CHECK(strstr(res.error, "3 attempts") && strstr(res.error, "Timed out"));
    CHECK(fake_node_requests(&a) <= 3);
    raftkv_client_close(c);
    fake_node_stop(&a);
}

TEST(gives_up_after_the_attempts)
{
    struct fake_node a = {.node_code = RAFTKV__CLIENT__CODE__UNAVAILABLE, .error = "no leader"};
    CHECK_EQ(fake_node_start(&a), 0);
    const char *urls[] = {a.url};
    struct raftkv_client *c = client_for(urls, 1, 3, 30000, 3000);
    CHECK(c);
    struct raftkv_result res;
    CHECK_EQ(raftkv_get(c, "k", 1, &res), RAFTKV_UNAVAILABLE);
    CHECK_EQ(fake_node_requests(&a), 3);
    CHECK(strstr(res.error, "3 attempts") && strstr(res.error, "no leader"));
    /* A write fails the same way, registering its session. */
    CHECK_EQ(raftkv_put(c, "k", 1, "v", 1, &res), RAFTKV_UNAVAILABLE);
    CHECK_EQ(fake_node_registrations(&a), 3);
    CHECK(strstr(res.error, "registering a session") && strstr(res.error, "3 attempts"));
    raftkv_client_close(c);
    fake_node_stop(&a);
}

TEST(backoff_gives_up_within_the_overall_timeout)
{
    struct fake_node a = {.node_code = RAFTKV__CLIENT__CODE__UNAVAILABLE};
    CHECK_EQ(fake_node_start(&a), 0);
    const char *urls[] = {a.url};
    struct raftkv_client_options o;
    raftkv_client_options_defaults(&o);
    o.endpoints = urls;
    o.n_endpoints = 1;
    o.attempts = 1000;
    o.retry_delay_ms = 50;
    o.timeout_ms = 1000;
    struct raftkv_client *c = NULL;
    CHECK_EQ(raftkv_client_open(&o, &c), RAFTKV_OK);
    /* Sleeps of 50, 100, 200, 400 ms, then halves of what is left down to 50 ms: about 8
     * tries of the 1000 allowed; without backoff there would be hundreds. */
    CHECK_EQ(raftkv_get(c, "k", 1, NULL), RAFTKV_UNAVAILABLE);
    unsigned tries = fake_node_requests(&a);
    CHECK(tries >= 2);
    CHECK(tries < 30);
    raftkv_client_close(c);
    fake_node_stop(&a);
}

TEST(cas_mismatch_returns_the_current_value)
{
    struct fake_node a = {.code = RAFTKV__KV__CODE__CAS_MISMATCH,
                          .value = "current",
                          .value_len = 7,
                          .create_revision = 2,
                          .mod_revision = 5};
    CHECK_EQ(fake_node_start(&a), 0);
    const char *urls[] = {a.url};
    struct raftkv_client *c = client_for(urls, 1, 5, 5000, 3000);
    CHECK(c);
    struct raftkv_result res;
    CHECK_EQ(raftkv_cas(c, "k", 1, "old", 3, "new", 3, &res), RAFTKV_CAS_MISMATCH);
    CHECK_EQ(res.value_len, 7);
    CHECK(memcmp(res.value, "current", 7) == 0);
    CHECK_EQ(res.create_revision, 2);
    CHECK_EQ(res.mod_revision, 5);
    CHECK(!a.last_expect_absent);
    CHECK(strcmp(a.last_expected, "old") == 0);
    raftkv_result_free(&res);
    /* NULL expected asks for "only if absent". */
    CHECK_EQ(raftkv_cas(c, "k", 1, NULL, 0, "new", 3, &res), RAFTKV_CAS_MISMATCH);
    CHECK(a.last_expect_absent);
    raftkv_result_free(&res);
    raftkv_client_close(c);
    fake_node_stop(&a);
}

TEST(not_found_and_invalid_are_answers_not_retried)
{
    struct fake_node a = {.code = RAFTKV__KV__CODE__NOT_FOUND};
    struct fake_node b = {.node_code = RAFTKV__CLIENT__CODE__INVALID,
                          .error = "key over 4096 bytes"};
    CHECK_EQ(fake_node_start(&a), 0);
    CHECK_EQ(fake_node_start(&b), 0);
    const char *ua[] = {a.url}, *ub[] = {b.url};
    struct raftkv_client *ca = client_for(ua, 1, 5, 5000, 3000),
                         *cb = client_for(ub, 1, 5, 5000, 3000);
    CHECK(ca && cb);
    struct raftkv_result res;
    CHECK_EQ(raftkv_get(ca, "k", 1, &res), RAFTKV_NOT_FOUND);
    CHECK_EQ(res.value_len, 0);
    CHECK_EQ(raftkv_get(cb, "k", 1, &res), RAFTKV_INVALID);
    CHECK(strcmp(res.error, "key over 4096 bytes") == 0);
    CHECK_EQ(fake_node_requests(&a), 1);
    CHECK_EQ(fake_node_requests(&b), 1);
    raftkv_client_close(ca);
    raftkv_client_close(cb);
    fake_node_stop(&a);
    fake_node_stop(&b);
}

/* An expired session is replaced once when the write's only copy was refused; a write
 * that may have been applied (a second try) ends SESSION_EXPIRED: its outcome is unknown. */
TEST(expired_session_is_replaced_only_when_nothing_was_applied)
{
    struct fake_node a = {.code = RAFTKV__KV__CODE__SESSION_EXPIRED};
    CHECK_EQ(fake_node_start(&a), 0);
    const char *urls[] = {a.url};
    struct raftkv_client *c = client_for(urls, 1, 5, 30000, 300);
    CHECK(c);
    struct raftkv_result res;
    CHECK_EQ(raftkv_put(c, "k", 1, "v", 1, &res), RAFTKV_SESSION_EXPIRED);
    CHECK_EQ(fake_node_registrations(&a), 2);
    CHECK_EQ(fake_node_requests(&a), 2);
    CHECK_EQ(a.last_sequence, 1); /* the first write of the new session */
    /* Answered "expired" only after a try that timed out: not resent. */
    nng_mtx_lock(a.mu);
    a.ignore_next = 1;
    nng_mtx_unlock(a.mu);
    CHECK_EQ(raftkv_put(c, "k", 1, "v", 1, &res), RAFTKV_SESSION_EXPIRED);
    CHECK_EQ(fake_node_registrations(&a), 3);
    CHECK_EQ(fake_node_requests(&a), 4);
    raftkv_client_close(c);
    fake_node_stop(&a);
}

TEST(status_asks_one_endpoint_once)
{
    char dead[64];
    fake_dead_url(dead, sizeof dead);
    struct fake_node a = {.code = OK_CODE, .answer_status = true, .status_id = 3};
    CHECK_EQ(fake_node_start(&a), 0);
    const char *urls[] = {a.url, dead};
    struct raftkv_client *c = client_for(urls, 2, 5, 5000, 1000);
    CHECK(c);
    struct raftkv_node_status s;
    CHECK_EQ(raftkv_status(c, 0, &s), RAFTKV_OK);
    CHECK_EQ(s.id, 3);
    CHECK(strcmp(s.role, "leader") == 0);
    CHECK_EQ(s.term, 4);
    CHECK_EQ(s.commit_index, 10);
    CHECK_EQ(s.applied_index, 9);
    CHECK_EQ(s.last_log_index, 11);
    CHECK(a.last_was_status);
    CHECK_EQ(raftkv_status(c, 1, &s), RAFTKV_UNAVAILABLE);
    CHECK_EQ(raftkv_status(c, 2, &s), RAFTKV_EUSAGE);
    CHECK_EQ(fake_node_requests(&a), 1);
    raftkv_client_close(c);
    fake_node_stop(&a);
}

TEST(bad_arguments_are_usage_errors)
{
    struct raftkv_client_options o;
    raftkv_client_options_defaults(&o);
    struct raftkv_client *c = NULL;
    CHECK_EQ(raftkv_client_open(&o, &c), RAFTKV_EUSAGE);
    const char *dup[] = {"tcp://127.0.0.1:1", "tcp://127.0.0.1:1"};
    o.endpoints = dup;
    o.n_endpoints = 2;
    CHECK_EQ(raftkv_client_open(&o, &c), RAFTKV_EUSAGE);
    const char *bad[] = {"127.0.0.1:1"};
    o.endpoints = bad;
    o.n_endpoints = 1;
    CHECK_EQ(raftkv_client_open(&o, &c), RAFTKV_EUSAGE);
    o.endpoints = dup;
    CHECK_EQ(raftkv_client_open(&o, &c), RAFTKV_OK);
    struct raftkv_result res;
    CHECK_EQ(raftkv_get(c, "", 0, &res), RAFTKV_EUSAGE);
    CHECK_EQ(raftkv_put(c, "k", 1, NULL, 3, &res), RAFTKV_EUSAGE);
    raftkv_client_close(c);
}

struct worker {
    struct raftkv_client *c;
    int failures;
};

static void worker_run(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 50; i++)
        w->failures += raftkv_put(w->c, "k", 1, "v", 1, NULL) != RAFTKV_OK;
}

TEST(one_client_serves_several_threads)
{
    struct fake_node a = {.code = OK_CODE};
    CHECK_EQ(fake_node_start(&a), 0);
    const char *urls[] = {a.url};
    struct raftkv_client *c = client_for(urls, 1, 5, 10000, 3000);
    CHECK(c);
    struct worker w[4];
    nng_thread *t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.c = c};
        CHECK_EQ(nng_thread_create(&t[i], worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        nng_thread_destroy(t[i]);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(w[i].failures, 0);
    CHECK_EQ(fake_node_requests(&a), 200);
    raftkv_client_close(c);
    fake_node_stop(&a);
}

/* ---- membership ---- */

TEST(member_list_follows_the_leader_hint_and_decodes_every_member)
{
    struct fake_node a = {.node_code = RAFTKV__CLIENT__CODE__NOT_LEADER};
    struct fake_node b = {.members = fake_member_list()};
    CHECK_EQ(fake_node_start(&a), 0);
    CHECK_EQ(fake_node_start(&b), 0);
    a.hint = b.url;
    const char *urls[] = {a.url};
    struct raftkv_client *c = client_for(urls, 1, 5, 5000, 3000);
    CHECK(c);
    struct raftkv_members m;
    CHECK_EQ(raftkv_member_list(c, &m), RAFTKV_OK);
    CHECK_EQ(fake_node_requests(&a), 1);
    CHECK_EQ(fake_node_requests(&b), 1);
    CHECK_EQ(b.last_body, RAFTKV__CLIENT__REQUEST__BODY_MEMBER_LIST);
    CHECK_EQ(m.leader_id, 1);
    CHECK_EQ(m.term, 5);
    CHECK_EQ(m.configuration_index, 18);
    CHECK(m.committed);
    CHECK_EQ(m.last_log_index, 20);
    CHECK_EQ(m.n, 2);
    CHECK_EQ(m.members[0].id, 1);
    CHECK(strcmp(m.members[0].role, "voter") == 0);
    CHECK(strcmp(m.members[0].peer_address, "tcp://127.0.0.1:7001") == 0);
    CHECK(strcmp(m.members[0].client_address, "tcp://127.0.0.1:7101") == 0);
    CHECK_EQ(m.members[0].match_index, 20);
    CHECK(m.members[0].healthy);
    CHECK_EQ(m.members[1].id, 4);
    CHECK(strcmp(m.members[1].role, "learner") == 0);
    CHECK(!m.members[1].healthy);
    raftkv_members_free(&m);
    CHECK(!m.members && m.n == 0);
    raftkv_client_close(c);
    fake_node_stop(&a);
    fake_node_stop(&b);
}

TEST(member_changes_and_move_leader_send_their_arguments)
{
    struct fake_node a = {.members = fake_member_list()};
    CHECK_EQ(fake_node_start(&a), 0);
    const char *urls[] = {a.url};
    struct raftkv_client *c = client_for(urls, 1, 5, 5000, 3000);
    CHECK(c);
    struct raftkv_members m;
    CHECK_EQ(raftkv_member_add_learner(c, 4, "tcp://h:7004", "tcp://h:7104", &m), RAFTKV_OK);
    CHECK_EQ(a.last_body, RAFTKV__CLIENT__REQUEST__BODY_MEMBER_CHANGE);
    CHECK_EQ(a.last_change_kind, RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__ADD_LEARNER);
    CHECK_EQ(a.last_member_id, 4);
    CHECK(strcmp(a.last_peer_address, "tcp://h:7004") == 0);
    CHECK(strcmp(a.last_client_address, "tcp://h:7104") == 0);
    CHECK_EQ(m.n, 2);
    raftkv_members_free(&m);
    CHECK_EQ(raftkv_member_promote(c, 4, NULL), RAFTKV_OK);
    CHECK_EQ(a.last_change_kind, RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__PROMOTE);
    CHECK_EQ(raftkv_member_remove(c, 3, NULL), RAFTKV_OK);
    CHECK_EQ(a.last_change_kind, RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__REMOVE);
    CHECK_EQ(a.last_member_id, 3);
    CHECK_EQ(raftkv_move_leader(c, 0, &m), RAFTKV_OK);
    CHECK_EQ(a.last_body, RAFTKV__CLIENT__REQUEST__BODY_MOVE_LEADER);
    CHECK_EQ(a.last_member_id, 0);
    CHECK_EQ(m.leader_id, 1);
    raftkv_members_free(&m);
    CHECK_EQ(fake_node_requests(&a), 4);
    raftkv_client_close(c);
    fake_node_stop(&a);
}

/* A refusal is INVALID with the node's reason, after a redirect too (a follower acts on
 * nothing); after an attempt that may have made the change, the outcome is unknown. */
TEST(a_refused_change_is_invalid_unless_an_earlier_attempt_may_have_made_it)
{
    struct fake_node a = {.node_code = RAFTKV__CLIENT__CODE__NOT_LEADER};
    struct fake_node b = {.node_code = RAFTKV__CLIENT__CODE__INVALID,
                          .error = "member 4 exists",
                          .members = fake_member_list()};
    CHECK_EQ(fake_node_start(&a), 0);
    CHECK_EQ(fake_node_start(&b), 0);
    a.hint = b.url;
    const char *urls[] = {a.url};
    struct raftkv_client *c = client_for(urls, 1, 5, 5000, 3000);
    CHECK(c);
    struct raftkv_members m;
    CHECK_EQ(raftkv_member_add_learner(c, 4, "tcp://h:1", "tcp://h:2", &m), RAFTKV_INVALID);
    CHECK(strcmp(m.error, "member 4 exists") == 0);
    CHECK_EQ(m.n, 2); /* what the leader sent with its refusal */
    raftkv_members_free(&m);
    nng_mtx_lock(b.mu);
    b.next_codes[0] = RAFTKV__CLIENT__CODE__UNAVAILABLE;
    b.n_next_codes = 1;
    nng_mtx_unlock(b.mu);
    CHECK_EQ(raftkv_member_add_learner(c, 4, "tcp://h:1", "tcp://h:2", &m), RAFTKV_UNAVAILABLE);
    CHECK(strstr(m.error, "outcome unknown"));
    CHECK(strstr(m.error, "member 4 exists"));
    raftkv_members_free(&m);
    CHECK_EQ(fake_node_requests(&b), 3);
    raftkv_client_close(c);
    fake_node_stop(&a);
    fake_node_stop(&b);
}

TEST(an_ok_answer_without_a_member_list_is_internal)
{
    struct fake_node a = {0};
    CHECK_EQ(fake_node_start(&a), 0);
    const char *urls[] = {a.url};
    struct raftkv_client *c = client_for(urls, 1, 5, 5000, 3000);
    CHECK(c);
    struct raftkv_members m;
    CHECK_EQ(raftkv_member_list(c, &m), RAFTKV_EINTERNAL);
    CHECK(strstr(m.error, "no member list"));
    CHECK_EQ(m.n, 0);
    raftkv_client_close(c);
    fake_node_stop(&a);
}

TEST(bad_member_arguments_are_usage_errors)
{
    const char *urls[] = {"tcp://127.0.0.1:1"};
    struct raftkv_client *c = client_for(urls, 1, 5, 5000, 3000);
    CHECK(c);
    char long_address[300];
    memset(long_address, 'a', sizeof long_address - 1);
    long_address[sizeof long_address - 1] = '\0';
    struct raftkv_members m;
    CHECK_EQ(raftkv_member_add_learner(c, 0, "tcp://h:1", "tcp://h:2", &m), RAFTKV_EUSAGE);
    CHECK(strstr(m.error, "id"));
    CHECK_EQ(raftkv_member_add_learner(c, 4, "", "tcp://h:2", &m), RAFTKV_EUSAGE);
    CHECK_EQ(raftkv_member_add_learner(c, 4, "tcp://h:1", NULL, NULL), RAFTKV_EUSAGE);
    CHECK_EQ(raftkv_member_add_learner(c, 4, long_address, "tcp://h:2", &m), RAFTKV_EUSAGE);
    CHECK_EQ(raftkv_member_promote(c, 0, NULL), RAFTKV_EUSAGE);
    CHECK_EQ(raftkv_member_remove(c, 0, &m), RAFTKV_EUSAGE);
    CHECK_EQ(raftkv_member_list(NULL, &m), RAFTKV_EUSAGE);
    CHECK_EQ(raftkv_move_leader(NULL, 2, NULL), RAFTKV_EUSAGE);
    raftkv_members_free(&m);
    raftkv_client_close(c);
}

struct range_wait {
    nng_mtx *mu;
    nng_cv *cv;
    bool done;
    int status;
    char keys[256]; /* the keys answered, space-separated */
    bool more;
};

static void range_waited(int status, const struct raftkv_range_result *res, void *arg)
{
    struct range_wait *w = arg;
    nng_mtx_lock(w->mu);
    w->status = status;
    for (size_t i = 0; i < res->count; i++)
        snprintf(w->keys + strlen(w->keys), sizeof w->keys - strlen(w->keys), "%s%.*s",
                 i ? " " : "", (int)res->kvs[i].key_len, (const char *)res->kvs[i].key);
    w->more = res->more;
    w->done = true;
    nng_cv_wake(w->cv);
    nng_mtx_unlock(w->mu);
}

TEST(range_sends_its_bounds_and_decodes_every_key_sync_and_async)
{
    const char *keys[] = {"a", "p/1", "p/2", "p/3", "q"};
    struct fake_node a = {.code = OK_CODE, .keys = keys, .n_keys = 5, .range_revision = 77};
    CHECK_EQ(fake_node_start(&a), 0);
    const char *urls[] = {a.url};
    struct raftkv_client *c = client_for(urls, 1, 3, 5000, 2000);
    CHECK(c);
    uint8_t end[8];
    size_t end_len = raftkv_prefix_end("p/", 2, end);
    CHECK_EQ(end_len, 2);
    CHECK(memcmp(end, "p0", 2) == 0);
    struct raftkv_range_result r;
    CHECK_EQ(raftkv_range(c, "p/", 2, end, end_len, 2, &r), RAFTKV_OK);
    CHECK(strcmp(a.last_range_key, "p/") == 0 && strcmp(a.last_range_end, "p0") == 0);
    CHECK_EQ(a.last_range_limit, 2);
    CHECK_EQ(r.count, 2);
    CHECK(r.more);
    CHECK_EQ(r.revision, 77);
    CHECK(r.kvs[1].key_len == 3 && memcmp(r.kvs[1].key, "p/2", 3) == 0);
    CHECK(r.kvs[1].value_len == 3 && memcmp(r.kvs[1].value, "p/2", 3) == 0);
    CHECK(r.kvs[1].create_revision == 1 && r.kvs[1].mod_revision == 2);
    raftkv_range_result_free(&r);
    CHECK(!r.kvs && !r.count);
    CHECK_EQ(raftkv_range(c, NULL, 0, NULL, 0, 0, &r), RAFTKV_OK);
    CHECK_EQ(r.count, 5);
    CHECK(!r.more);
    raftkv_range_result_free(&r);

    struct range_wait w = {0};
    CHECK_EQ(nng_mtx_alloc(&w.mu), 0);
    CHECK_EQ(nng_cv_alloc(&w.cv, w.mu), 0);
    CHECK_EQ(raftkv_range_async(c, "p/2\0", 4, end, end_len, 0, range_waited, &w), RAFTKV_OK);
    nng_mtx_lock(w.mu);
    while (!w.done)
        nng_cv_wait(w.cv);
    nng_mtx_unlock(w.mu);
    CHECK_EQ(w.status, RAFTKV_OK);
    CHECK(strcmp(w.keys, "p/3") == 0 && !w.more);
    nng_cv_free(w.cv);
    nng_mtx_free(w.mu);

    /* a refusal is an answer, with the node's reason */
    a.code = RAFTKV__KV__CODE__INVALID;
    a.error = "range key is too long";
    CHECK_EQ(raftkv_range(c, "p", 1, NULL, 0, 0, &r), RAFTKV_INVALID);
    CHECK(strcmp(r.error, "range key is too long") == 0 && !r.kvs);
    CHECK_EQ(raftkv_range(c, NULL, 1, NULL, 0, 0, &r), RAFTKV_EUSAGE);
    CHECK_EQ(raftkv_range(c, "a", 1, NULL, 2, 0, &r), RAFTKV_EUSAGE);
    CHECK_EQ(raftkv_range(c, "a", 1, NULL, 0, 0, NULL), RAFTKV_EUSAGE);
    CHECK_EQ(raftkv_range_async(c, "a", 1, NULL, 0, 0, NULL, NULL), RAFTKV_EUSAGE);
    raftkv_client_close(c);
    fake_node_stop(&a);
    /* prefixes without an end: empty, or only 0xff bytes; 0xff bytes at the end are dropped */
    CHECK_EQ(raftkv_prefix_end("", 0, end), 0);
    CHECK_EQ(raftkv_prefix_end("\xff\xff", 2, end), 0);
    CHECK_EQ(raftkv_prefix_end("a\x7f\xff", 3, end), 2);
    CHECK(memcmp(end, "a\x80", 2) == 0);
}

TEST_MAIN(TEST_REF(follows_leader_hint_outside_the_endpoint_list),
          TEST_REF(not_leader_without_hint_tries_another_node), TEST_REF(useless_hints_are_ignored),
          TEST_REF(fails_over_from_a_dead_endpoint), TEST_REF(fails_over_from_a_hung_leader),
          TEST_REF(fails_over_from_a_dead_leader), TEST_REF(hung_node_times_out_on_every_try),
          TEST_REF(gives_up_after_the_attempts),
          TEST_REF(backoff_gives_up_within_the_overall_timeout),
          TEST_REF(cas_mismatch_returns_the_current_value),
          TEST_REF(not_found_and_invalid_are_answers_not_retried),
          TEST_REF(expired_session_is_replaced_only_when_nothing_was_applied),
          TEST_REF(status_asks_one_endpoint_once), TEST_REF(bad_arguments_are_usage_errors),
          TEST_REF(one_client_serves_several_threads),
          TEST_REF(member_list_follows_the_leader_hint_and_decodes_every_member),
          TEST_REF(member_changes_and_move_leader_send_their_arguments),
          TEST_REF(a_refused_change_is_invalid_unless_an_earlier_attempt_may_have_made_it),
          TEST_REF(an_ok_answer_without_a_member_list_is_internal),
          TEST_REF(bad_member_arguments_are_usage_errors),
          TEST_REF(range_sends_its_bounds_and_decodes_every_key_sync_and_async))
