/* Codec: every message type survives a round trip; bad input is rejected, never crashes. */
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "msg_util.h"
#include "raft.pb-c.h"
#include "transport/codec.h"

#define CLUSTER 0xC1C1u

static int round_trip(uint64_t seq, size_t n_entries_max)
{
    struct raft_msg in, out;
    test_make_msg(seq, 1, 2, n_entries_max, &in);
    uint8_t *buf;
    size_t len;
    int rc = rk_codec_encode(&in, CLUSTER, NULL, &buf, &len);
    if (rc == RK_CODEC_OK) {
        rc = rk_codec_decode(buf, len, CLUSTER, &out, NULL);
        if (rc == RK_CODEC_OK) {
            rc = test_msg_equal(&in, &out) ? 0 : -1;
            raft_msg_free(&out);
        }
        free(buf);
    }
    raft_msg_free(&in);
    return rc;
}

TEST(every_message_type_round_trips)
{
    for (uint64_t seq = 0; seq < 700; seq++)
        CHECK_EQ(round_trip(seq, 64), 0);
}

/* The sender's address travels with the message; an overlong one is malformed. */
TEST(sender_address_round_trips_and_an_overlong_one_is_refused)
{
    struct raft_msg in = {.type = RAFT_MSG_TIMEOUT_NOW, .from = 1, .to = 2, .term = 3}, out;
    uint8_t *buf;
    size_t len;
    char from[RAFT_MAX_ADDRESS + 1];
    CHECK_EQ(rk_codec_encode(&in, CLUSTER, "tcp://10.0.0.1:7001", &buf, &len), RK_CODEC_OK);
    CHECK_EQ(rk_codec_decode(buf, len, CLUSTER, &out, from), RK_CODEC_OK);
    CHECK(strcmp(from, "tcp://10.0.0.1:7001") == 0);
    raft_msg_free(&out);
    free(buf);
    CHECK_EQ(rk_codec_encode(&in, CLUSTER, NULL, &buf, &len), RK_CODEC_OK);
    CHECK_EQ(rk_codec_decode(buf, len, CLUSTER, &out, from), RK_CODEC_OK);
    CHECK(strcmp(from, "") == 0);
    raft_msg_free(&out);
    free(buf);
    char overlong[RAFT_MAX_ADDRESS + 2];
    memset(overlong, 'a', sizeof overlong - 1);
    overlong[sizeof overlong - 1] = '\0';
    CHECK_EQ(rk_codec_encode(&in, CLUSTER, overlong, &buf, &len), RK_CODEC_OK);
    CHECK_EQ(rk_codec_decode(buf, len, CLUSTER, &out, from), RK_CODEC_EMALFORMED);
    free(buf);
}

TEST(append_with_many_entries_round_trips)
{
    /* seq 1997 is an AppendEntries; 1997 % 5001 = 1997 entries. */
    CHECK_EQ(1997 % TEST_MSG_TYPES, RAFT_MSG_APPEND);
    CHECK_EQ(round_trip(1997, 5000), 0);
}

TEST(empty_append_and_snapshot_round_trip)
{
    struct raft_msg in = {.type = RAFT_MSG_APPEND, .from = 3, .to = 4, .term = 9};
    struct raft_msg snap = {.type = RAFT_MSG_INSTALL_SNAPSHOT, .from = 3, .to = 4};
    const struct raft_msg *cases[] = {&in, &snap};
    for (size_t i = 0; i < 2; i++) {
        uint8_t *buf;
        size_t len;
        struct raft_msg out;
        CHECK_EQ(rk_codec_encode(cases[i], CLUSTER, NULL, &buf, &len), RK_CODEC_OK);
        CHECK_EQ(rk_codec_decode(buf, len, CLUSTER, &out, NULL), RK_CODEC_OK);
        free(buf);
        bool same = test_msg_equal(cases[i], &out);
        raft_msg_free(&out);
        CHECK(same);
    }
}

static bool encode_decode_equal(const struct raft_msg *in)
{
    uint8_t *buf;
    size_t len;
    struct raft_msg out;
    if (rk_codec_encode(in, CLUSTER, NULL, &buf, &len) != RK_CODEC_OK)
        return false;
    int rc = rk_codec_decode(buf, len, CLUSTER, &out, NULL);
    free(buf);
    if (rc != RK_CODEC_OK)
        return false;
    bool same = test_msg_equal(in, &out);
    raft_msg_free(&out);
    return same;
}

TEST(snapshot_with_largest_configuration_round_trips)
{
    struct raft_msg m = {.type = RAFT_MSG_INSTALL_SNAPSHOT, .from = 1, .to = 2, .term = 5};
    test_make_conf(7, RAFT_MAX_MEMBERS, &m.install_snapshot.conf);
    struct raft_member *last = &m.install_snapshot.conf.members[RAFT_MAX_MEMBERS - 1];
    free(last->peer_address);
    last->peer_address = malloc(RAFT_MAX_ADDRESS + 1);
    memset(last->peer_address, 'a', RAFT_MAX_ADDRESS);
    last->peer_address[RAFT_MAX_ADDRESS] = '\0';
    bool same = encode_decode_equal(&m);
    size_t learners = 0;
    for (size_t i = 0; i < m.install_snapshot.conf.n; i++)
        learners += m.install_snapshot.conf.members[i].role == RAFT_LEARNER;
    raft_msg_free(&m);
    CHECK(same);
    CHECK(learners > 0 && learners < RAFT_MAX_MEMBERS);
}

TEST(timeout_now_and_transfer_vote_round_trip)
{
    struct raft_msg tn = {.type = RAFT_MSG_TIMEOUT_NOW, .from = 1, .to = 3, .term = 12};
    struct raft_msg rv = {.type = RAFT_MSG_REQUEST_VOTE, .from = 3, .to = 2, .term = 13};
    rv.request_vote = (struct raft_request_vote){.last_log_index = 40, .transfer = true};
    CHECK(encode_decode_equal(&tn));
    CHECK(encode_decode_equal(&rv));
}

/* Packs a hand-made Envelope, for inputs the encoder would never produce. */
static int decode_envelope(Raftkv__Raft__Envelope *env, uint64_t cluster)
{
    size_t len = raftkv__raft__envelope__get_packed_size(env);
    uint8_t *buf = malloc(len + 1);
    raftkv__raft__envelope__pack(env, buf);
    struct raft_msg out;
    int rc = rk_codec_decode(buf, len, cluster, &out, NULL);
    if (rc == RK_CODEC_OK)
        raft_msg_free(&out);
    free(buf);
    return rc;
}

TEST(rejects_wrong_version_cluster_and_empty_oneof)
{
    Raftkv__Raft__RequestVote rv = RAFTKV__RAFT__REQUEST_VOTE__INIT;
    Raftkv__Raft__Envelope env = RAFTKV__RAFT__ENVELOPE__INIT;
    env.version = RK_WIRE_VERSION;
    env.cluster_id = CLUSTER;
    env.from = 1;
    env.to = 2;
    env.msg_case = RAFTKV__RAFT__ENVELOPE__MSG_REQUEST_VOTE;
    env.request_vote = &rv;
    CHECK_EQ(decode_envelope(&env, CLUSTER), RK_CODEC_OK);
    CHECK_EQ(decode_envelope(&env, CLUSTER + 1), RK_CODEC_ECLUSTER);
    env.version = RK_WIRE_VERSION + 1;
    CHECK_EQ(decode_envelope(&env, CLUSTER), RK_CODEC_EVERSION);
    env.version = 0;
    CHECK_EQ(decode_envelope(&env, CLUSTER), RK_CODEC_EVERSION);
    env.version = RK_WIRE_VERSION;
    env.msg_case = RAFTKV__RAFT__ENVELOPE__MSG__NOT_SET;
    CHECK_EQ(decode_envelope(&env, CLUSTER), RK_CODEC_EMALFORMED);
    struct raft_msg out;
    CHECK_EQ(rk_codec_decode(NULL, 0, CLUSTER, &out, NULL), RK_CODEC_EVERSION);
}

TEST(rejects_unknown_entry_type)
{
    Raftkv__Raft__Entry good = RAFTKV__RAFT__ENTRY__INIT, bad = RAFTKV__RAFT__ENTRY__INIT;
    bad.type = (Raftkv__Raft__EntryType)3;
    uint8_t data[4] = {1, 2, 3, 4};
    good.data.data = data;
    good.data.len = sizeof data;
    Raftkv__Raft__Entry *entries[] = {&good, &bad};
    Raftkv__Raft__AppendEntries ae = RAFTKV__RAFT__APPEND_ENTRIES__INIT;
    ae.n_entries = 2;
    ae.entries = entries;
    Raftkv__Raft__Envelope env = RAFTKV__RAFT__ENVELOPE__INIT;
    env.version = RK_WIRE_VERSION;
    env.cluster_id = CLUSTER;
    env.msg_case = RAFTKV__RAFT__ENVELOPE__MSG_APPEND_ENTRIES;
    env.append_entries = &ae;
    CHECK_EQ(decode_envelope(&env, CLUSTER), RK_CODEC_EMALFORMED);
    bad.type = (Raftkv__Raft__EntryType)-1;
    CHECK_EQ(decode_envelope(&env, CLUSTER), RK_CODEC_EMALFORMED);
    bad.type = RAFTKV__RAFT__ENTRY_TYPE__ENTRY_CONFIG;
    CHECK_EQ(decode_envelope(&env, CLUSTER), RK_CODEC_OK);
}

/* Decodes an InstallSnapshot whose configuration holds members[]; on success *out is the
 * decoded message (free it). */
static int decode_members(Raftkv__Raft__Member **members, size_t n, struct raft_msg *out)
{
    Raftkv__Raft__Configuration conf = RAFTKV__RAFT__CONFIGURATION__INIT;
    conf.n_members = n;
    conf.members = members;
    Raftkv__Raft__InstallSnapshot is = RAFTKV__RAFT__INSTALL_SNAPSHOT__INIT;
    is.configuration = &conf;
    Raftkv__Raft__Envelope env = RAFTKV__RAFT__ENVELOPE__INIT;
    env.version = RK_WIRE_VERSION;
    env.cluster_id = CLUSTER;
    env.msg_case = RAFTKV__RAFT__ENVELOPE__MSG_INSTALL_SNAPSHOT;
    env.install_snapshot = &is;
    size_t len = raftkv__raft__envelope__get_packed_size(&env);
    uint8_t *buf = malloc(len + 1);
    raftkv__raft__envelope__pack(&env, buf);
    int rc = rk_codec_decode(buf, len, CLUSTER, out, NULL);
    free(buf);
    return rc;
}

static int decode_members_rc(Raftkv__Raft__Member **members, size_t n)
{
    struct raft_msg out;
    int rc = decode_members(members, n, &out);
    if (rc == RK_CODEC_OK)
        raft_msg_free(&out);
    return rc;
}

TEST(absent_addresses_decode_as_empty_strings)
{
    Raftkv__Raft__Member m = RAFTKV__RAFT__MEMBER__INIT;
    m.id = 4;
    m.learner = true;
    Raftkv__Raft__Member *members[] = {&m};
    struct raft_msg out;
    CHECK_EQ(decode_members(members, 1, &out), RK_CODEC_OK);
    const struct raft_configuration *c = &out.install_snapshot.conf;
    bool as_sent = c->n == 1 && c->members[0].id == 4 && c->members[0].role == RAFT_LEARNER &&
                   c->members[0].peer_address && !c->members[0].peer_address[0] &&
                   c->members[0].client_address && !c->members[0].client_address[0];
    raft_msg_free(&out);
    CHECK(as_sent);
}

TEST(rejects_configuration_the_core_would_refuse)
{
    Raftkv__Raft__Member m[RAFT_MAX_MEMBERS + 1];
    Raftkv__Raft__Member *members[RAFT_MAX_MEMBERS + 1];
    char addr[64];
    for (size_t i = 0; i < RAFT_MAX_MEMBERS + 1; i++) {
        raftkv__raft__member__init(&m[i]);
        m[i].id = i + 1;
        m[i].peer_address = addr;
        members[i] = &m[i];
    }
    strcpy(addr, "tcp://10.0.0.1:7001");
    CHECK_EQ(decode_members_rc(members, RAFT_MAX_MEMBERS), RK_CODEC_OK);
    CHECK_EQ(decode_members_rc(members, RAFT_MAX_MEMBERS + 1), RK_CODEC_EMALFORMED);
    m[2].id = 2; /* a duplicate */
    CHECK_EQ(decode_members_rc(members, 3), RK_CODEC_EMALFORMED);
    m[2].id = 0;
    CHECK_EQ(decode_members_rc(members, 3), RK_CODEC_EMALFORMED);
    m[2].id = 3;
    CHECK_EQ(decode_members_rc(members, 3), RK_CODEC_OK);
    char *overlong = malloc(RAFT_MAX_ADDRESS + 2);
    memset(overlong, 'x', RAFT_MAX_ADDRESS + 1);
    overlong[RAFT_MAX_ADDRESS + 1] = '\0';
    m[1].client_address = overlong;
    int rc_client = decode_members_rc(members, 3);
    m[1].client_address = "";
    m[2].peer_address = overlong;
    int rc_peer = decode_members_rc(members, 3);
    free(overlong);
    CHECK_EQ(rc_client, RK_CODEC_EMALFORMED);
    CHECK_EQ(rc_peer, RK_CODEC_EMALFORMED);
}

static bool is_codec_err(int rc)
{
    return rc == RK_CODEC_OK || rc == RK_CODEC_EMALFORMED || rc == RK_CODEC_EVERSION ||
           rc == RK_CODEC_ECLUSTER || rc == RK_CODEC_ENOMEM;
}

TEST(truncations_never_crash_and_mostly_fail)
{
    struct raft_msg in;
    test_make_msg(58, 1, 2, 64, &in); /* an AppendEntries with 58 entries */
    uint8_t *buf;
    size_t len;
    CHECK_EQ(rk_codec_encode(&in, CLUSTER, NULL, &buf, &len), RK_CODEC_OK);
    raft_msg_free(&in);
    size_t failed = 0;
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut + 1); /* exact size so ASan sees any over-read */
        memcpy(copy, buf, cut);
        struct raft_msg out;
        int rc = rk_codec_decode(copy, cut, CLUSTER, &out, NULL);
        free(copy);
        if (!is_codec_err(rc))
            break;
        if (rc == RK_CODEC_OK)
            raft_msg_free(&out);
        else
            failed++;
    }
    free(buf);
    /* A cut on a field boundary is a valid, shorter Envelope; most cuts are not. */
    CHECK(failed > len / 2);
}

TEST(random_and_mutated_bytes_never_crash)
{
    srand(12345);
    /* An AppendEntries with 9 entries, and an InstallSnapshot with 5 members. */
    const uint64_t seqs[] = {9, 11};
    uint8_t *valids[2];
    size_t valid_lens[2];
    for (size_t i = 0; i < 2; i++) {
        struct raft_msg in;
        test_make_msg(seqs[i], 1, 2, 64, &in);
        CHECK_EQ(rk_codec_encode(&in, CLUSTER, NULL, &valids[i], &valid_lens[i]), RK_CODEC_OK);
        raft_msg_free(&in);
    }
    size_t ok = 0, bad = 0;
    for (int iter = 0; iter < 20000; iter++) {
        bool mutate = iter % 2 == 0;
        const uint8_t *valid = valids[iter % 4 / 2];
        size_t valid_len = valid_lens[iter % 4 / 2];
        size_t len = mutate ? valid_len : (size_t)(rand() % 512);
        uint8_t *buf = malloc(len + 1);
        if (mutate)
            memcpy(buf, valid, len);
        for (size_t i = 0; i < len; i++) {
            if (!mutate || rand() % 64 == 0)
                buf[i] = (uint8_t)rand();
        }
        struct raft_msg out;
        int rc = rk_codec_decode(buf, len, CLUSTER, &out, NULL);
        free(buf);
        CHECK(is_codec_err(rc));
        if (rc == RK_CODEC_OK) {
            CHECK(out.type <= RAFT_MSG_TIMEOUT_NOW);
            raft_msg_free(&out);
            ok++;
        } else {
            bad++;
        }
    }
    free(valids[0]);
    free(valids[1]);
    CHECK(bad > 0);
    printf("  random/mutated inputs: %zu decoded, %zu rejected\n", ok, bad);
}

TEST_MAIN(TEST_REF(every_message_type_round_trips),
          TEST_REF(sender_address_round_trips_and_an_overlong_one_is_refused),
          TEST_REF(append_with_many_entries_round_trips),
          TEST_REF(empty_append_and_snapshot_round_trip),
          TEST_REF(snapshot_with_largest_configuration_round_trips),
          TEST_REF(timeout_now_and_transfer_vote_round_trip),
          TEST_REF(absent_addresses_decode_as_empty_strings),
          TEST_REF(rejects_configuration_the_core_would_refuse),
          TEST_REF(rejects_wrong_version_cluster_and_empty_oneof),
          TEST_REF(rejects_unknown_entry_type), TEST_REF(truncations_never_crash_and_mostly_fail),
          TEST_REF(random_and_mutated_bytes_never_crash))
