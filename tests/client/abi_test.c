/*
 * The ABI of libraftkv.so.0 (client.h, "ABI"): the layouts of the structs programs allocate
 * and the signatures of the functions, as SOVERSION 0 froze them, copied here by hand.
 * client.h must keep them: a struct that changes (but for raftkv_node_status growing at its
 * end) or a function whose signature changes fails this test. Such a change needs a new
 * SOVERSION, and this file then the frozen copies of the new one.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_node.h"
#include "raftkv/client.h"
#include "test.h"

/* ---- SOVERSION 0, as of 0.1.0: do not edit (a change here is a new SOVERSION) ---- */

struct v0_raftkv_client_options {
    size_t n_endpoints;
    const char *const *endpoints;
    unsigned attempts;
    unsigned retry_delay_ms;
    unsigned timeout_ms;
    unsigned request_timeout_ms;
    const char *tls_ca_file;
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *tls_server_name;
};

struct v0_raftkv_result {
    uint8_t *value;
    size_t value_len;
    uint64_t create_revision;
    uint64_t mod_revision;
    uint64_t revision;
    char error[256];
};

struct v0_raftkv_node_counters {
    uint64_t msgs_dropped_unknown_peer, msgs_dropped_stale_term, msgs_dropped_malformed,
        elections_started, pre_votes_started, leader_stepped_down_no_quorum, append_rejections,
        snapshots_sent, snapshots_installed, snapshots_refused, snapshots_damaged, peer_msgs_sent,
        peer_msgs_send_dropped, peer_msgs_received, peer_msgs_malformed, peer_msgs_unknown_peer,
        peer_msgs_oversized, peer_redials, conns_refused, conns_closed_slow, conns_closed_idle,
        requests_over_limit, peer_tls_refused, peer_tls_dials_failed, client_tls_refused,
        configuration_changes, transfers_started, transfers_abandoned;
};

struct v0_raftkv_node_status {
    uint64_t id;
    char role[16];
    uint64_t term;
    uint64_t leader_id;
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t last_log_index;
    struct v0_raftkv_node_counters counters;
};

struct v0_raftkv_member {
    uint64_t id;
    char role[16];
    char peer_address[255 + 1];
    char client_address[255 + 1];
    uint64_t match_index;
    bool healthy;
};

struct v0_raftkv_members {
    uint64_t leader_id;
    uint64_t term;
    size_t n;
    struct raftkv_member *members;
    uint64_t configuration_index;
    bool committed;
    uint64_t last_log_index;
    char error[256];
};

struct v0_raftkv_kv {
    uint8_t *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
    uint64_t create_revision, mod_revision;
};

struct v0_raftkv_range_result {
    struct raftkv_kv *kvs;
    size_t count;
    bool more;
    uint64_t revision;
    char error[256];
};

/* ---- the checks ---- */

/* The field where v0 has it, as large. */
#define SAME_FIELD(type, field)                                                                    \
    (offsetof(struct type, field) == offsetof(struct v0_##type, field) &&                          \
     sizeof(((struct type *)0)->field) == sizeof(((struct v0_##type *)0)->field))

static bool same_field(bool same, const char *type, const char *field)
{
    if (!same)
        fprintf(stderr, "struct %s: field %s moved or changed size since SOVERSION 0\n", type,
                field);
    return same;
}

#define CHECK_FIELD(type, field) CHECK(same_field(SAME_FIELD(type, field), #type, #field))
#define CHECK_SIZE(type)                                                                           \
    CHECK(same_field(sizeof(struct type) == sizeof(struct v0_##type), #type, "(its size)"))

TEST(frozen_structs_keep_their_layout)
{
    CHECK_FIELD(raftkv_client_options, n_endpoints);
    CHECK_FIELD(raftkv_client_options, endpoints);
    CHECK_FIELD(raftkv_client_options, attempts);
    CHECK_FIELD(raftkv_client_options, retry_delay_ms);
    CHECK_FIELD(raftkv_client_options, timeout_ms);
    CHECK_FIELD(raftkv_client_options, request_timeout_ms);
    CHECK_FIELD(raftkv_client_options, tls_ca_file);
    CHECK_FIELD(raftkv_client_options, tls_cert_file);
    CHECK_FIELD(raftkv_client_options, tls_key_file);
    CHECK_FIELD(raftkv_client_options, tls_server_name);
    CHECK_SIZE(raftkv_client_options);

    CHECK_FIELD(raftkv_result, value);
    CHECK_FIELD(raftkv_result, value_len);
    CHECK_FIELD(raftkv_result, create_revision);
    CHECK_FIELD(raftkv_result, mod_revision);
    CHECK_FIELD(raftkv_result, revision);
    CHECK_FIELD(raftkv_result, error);
    CHECK_SIZE(raftkv_result);

    CHECK_FIELD(raftkv_member, id);
    CHECK_FIELD(raftkv_member, role);
    CHECK_FIELD(raftkv_member, peer_address);
    CHECK_FIELD(raftkv_member, client_address);
    CHECK_FIELD(raftkv_member, match_index);
    CHECK_FIELD(raftkv_member, healthy);
    CHECK_SIZE(raftkv_member);

    CHECK_FIELD(raftkv_members, leader_id);
    CHECK_FIELD(raftkv_members, term);
    CHECK_FIELD(raftkv_members, n);
    CHECK_FIELD(raftkv_members, members);
    CHECK_FIELD(raftkv_members, configuration_index);
    CHECK_FIELD(raftkv_members, committed);
    CHECK_FIELD(raftkv_members, last_log_index);
    CHECK_FIELD(raftkv_members, error);
    CHECK_SIZE(raftkv_members);

    CHECK_FIELD(raftkv_kv, key);
    CHECK_FIELD(raftkv_kv, key_len);
    CHECK_FIELD(raftkv_kv, value);
    CHECK_FIELD(raftkv_kv, value_len);
    CHECK_FIELD(raftkv_kv, create_revision);
    CHECK_FIELD(raftkv_kv, mod_revision);
    CHECK_SIZE(raftkv_kv);

    CHECK_FIELD(raftkv_range_result, kvs);
    CHECK_FIELD(raftkv_range_result, count);
    CHECK_FIELD(raftkv_range_result, more);
    CHECK_FIELD(raftkv_range_result, revision);
    CHECK_FIELD(raftkv_range_result, error);
    CHECK_SIZE(raftkv_range_result);
}

/* The size-versioned struct: SOVERSION 0's fields stay where they were; it may grow. */
TEST(the_node_status_only_grows_at_its_end)
{
    CHECK_FIELD(raftkv_node_status, id);
    CHECK_FIELD(raftkv_node_status, role);
    CHECK_FIELD(raftkv_node_status, term);
    CHECK_FIELD(raftkv_node_status, leader_id);
    CHECK_FIELD(raftkv_node_status, commit_index);
    CHECK_FIELD(raftkv_node_status, applied_index);
    CHECK_FIELD(raftkv_node_status, last_log_index);
    CHECK(offsetof(struct raftkv_node_status, counters) ==
          offsetof(struct v0_raftkv_node_status, counters));
#define CHECK_COUNTER(name)                                                                        \
    CHECK(same_field(offsetof(struct raftkv_node_counters, name) ==                                \
                         offsetof(struct v0_raftkv_node_counters, name),                           \
                     "raftkv_node_counters", #name))
    CHECK_COUNTER(msgs_dropped_unknown_peer);
    CHECK_COUNTER(msgs_dropped_stale_term);
    CHECK_COUNTER(msgs_dropped_malformed);
    CHECK_COUNTER(elections_started);
    CHECK_COUNTER(pre_votes_started);
    CHECK_COUNTER(leader_stepped_down_no_quorum);
    CHECK_COUNTER(append_rejections);
    CHECK_COUNTER(snapshots_sent);
    CHECK_COUNTER(snapshots_installed);
    CHECK_COUNTER(snapshots_refused);
    CHECK_COUNTER(snapshots_damaged);
    CHECK_COUNTER(peer_msgs_sent);
    CHECK_COUNTER(peer_msgs_send_dropped);
    CHECK_COUNTER(peer_msgs_received);
    CHECK_COUNTER(peer_msgs_malformed);
    CHECK_COUNTER(peer_msgs_unknown_peer);
    CHECK_COUNTER(peer_msgs_oversized);
    CHECK_COUNTER(peer_redials);
    CHECK_COUNTER(conns_refused);
    CHECK_COUNTER(conns_closed_slow);
    CHECK_COUNTER(conns_closed_idle);
    CHECK_COUNTER(requests_over_limit);
    CHECK_COUNTER(peer_tls_refused);
    CHECK_COUNTER(peer_tls_dials_failed);
    CHECK_COUNTER(client_tls_refused);
    CHECK_COUNTER(configuration_changes);
    CHECK_COUNTER(transfers_started);
    CHECK_COUNTER(transfers_abandoned);
    CHECK_EQ(RAFTKV_NODE_STATUS_V0_SIZE, sizeof(struct v0_raftkv_node_status));
    CHECK(sizeof(struct raftkv_node_status) >= RAFTKV_NODE_STATUS_V0_SIZE);
}

TEST(status_codes_and_constants_keep_their_values)
{
    CHECK_EQ(RAFTKV_OK, 0);
    CHECK_EQ(RAFTKV_NOT_FOUND, 1);
    CHECK_EQ(RAFTKV_CAS_MISMATCH, 2);
    CHECK_EQ(RAFTKV_INVALID, 3);
    CHECK_EQ(RAFTKV_UNAVAILABLE, 4);
    CHECK_EQ(RAFTKV_EUSAGE, 5);
    CHECK_EQ(RAFTKV_ENOMEM, 6);
    CHECK_EQ(RAFTKV_EINTERNAL, 7);
    CHECK_EQ(RAFTKV_SESSION_EXPIRED, 8);
    CHECK_EQ(RAFTKV_MAX_ADDRESS, 255);
    CHECK_EQ(RAFTKV_RANGE_MAX_KEYS, 1000);
}

/* f has the type T (a pointer to a function of that prototype). */
#define SAME_SIGNATURE(f, T) __builtin_types_compatible_p(__typeof__(&f), T)
#define CHECK_SIGNATURE(f, T) CHECK(same_field(SAME_SIGNATURE(f, T), "(function)", #f))

struct raftkv_client;

TEST(functions_keep_their_signatures)
{
    typedef struct raftkv_client C;
    CHECK_SIGNATURE(raftkv_status_str, const char *(*)(int));
    CHECK_SIGNATURE(raftkv_client_options_defaults, void (*)(struct raftkv_client_options *));
    CHECK_SIGNATURE(raftkv_result_free, void (*)(struct raftkv_result *));
    CHECK_SIGNATURE(raftkv_client_open,
                    int (*)(const struct raftkv_client_options *, struct raftkv_client **));
    CHECK_SIGNATURE(raftkv_client_close, void (*)(C *));
    CHECK_SIGNATURE(raftkv_put, int (*)(C *, const void *, size_t, const void *, size_t,
                                        struct raftkv_result *));
    CHECK_SIGNATURE(raftkv_get, int (*)(C *, const void *, size_t, struct raftkv_result *));
    CHECK_SIGNATURE(raftkv_delete, int (*)(C *, const void *, size_t, struct raftkv_result *));
    CHECK_SIGNATURE(raftkv_cas, int (*)(C *, const void *, size_t, const void *, size_t,
                                        const void *, size_t, struct raftkv_result *));
    CHECK_SIGNATURE(raftkv_range, int (*)(C *, const void *, size_t, const void *, size_t, size_t,
                                          struct raftkv_range_result *));
    CHECK_SIGNATURE(raftkv_range_result_free, void (*)(struct raftkv_range_result *));
    CHECK_SIGNATURE(raftkv_prefix_end, size_t(*)(const void *, size_t, uint8_t *));
    CHECK_SIGNATURE(raftkv_status_sized, int (*)(C *, size_t, struct raftkv_node_status *, size_t));
    CHECK_SIGNATURE(raftkv_members_free, void (*)(struct raftkv_members *));
    CHECK_SIGNATURE(raftkv_member_list, int (*)(C *, struct raftkv_members *));
    CHECK_SIGNATURE(raftkv_member_add_learner,
                    int (*)(C *, uint64_t, const char *, const char *, struct raftkv_members *));
    CHECK_SIGNATURE(raftkv_member_promote, int (*)(C *, uint64_t, struct raftkv_members *));
    CHECK_SIGNATURE(raftkv_member_remove, int (*)(C *, uint64_t, struct raftkv_members *));
    CHECK_SIGNATURE(raftkv_move_leader, int (*)(C *, uint64_t, struct raftkv_members *));
    CHECK_SIGNATURE(raftkv_put_async, int (*)(C *, const void *, size_t, const void *, size_t,
                                              raftkv_callback, void *));
    CHECK_SIGNATURE(raftkv_get_async, int (*)(C *, const void *, size_t, raftkv_callback, void *));
    CHECK_SIGNATURE(raftkv_delete_async,
                    int (*)(C *, const void *, size_t, raftkv_callback, void *));
    CHECK_SIGNATURE(raftkv_cas_async, int (*)(C *, const void *, size_t, const void *, size_t,
                                              const void *, size_t, raftkv_callback, void *));
    CHECK_SIGNATURE(raftkv_range_async, int (*)(C *, const void *, size_t, const void *, size_t,
                                                size_t, raftkv_range_callback, void *));
    CHECK(__builtin_types_compatible_p(raftkv_callback,
                                       void (*)(int, const struct raftkv_result *, void *)));
    CHECK(__builtin_types_compatible_p(raftkv_range_callback,
                                       void (*)(int, const struct raftkv_range_result *, void *)));
}

/* What the library writes for a caller built against another header: that many bytes. */
TEST(the_status_fills_exactly_the_size_the_caller_has)
{
    struct fake_node a = {.answer_status = true, .status_id = 3};
    CHECK_EQ(fake_node_start(&a), 0);
    struct raftkv_client_options o;
    raftkv_client_options_defaults(&o);
    const char *urls[] = {a.url};
    o.endpoints = urls;
    o.n_endpoints = 1;
    o.request_timeout_ms = 5000;
    struct raftkv_client *c = NULL;
    CHECK_EQ(raftkv_client_open(&o, &c), RAFTKV_OK);
    size_t bigger = sizeof(struct raftkv_node_status) + 64;
    uint8_t *buf = malloc(bigger + 64);
    CHECK(buf);
    /* an older program's struct: the library writes nothing past it */
    memset(buf, 0xAA, bigger + 64);
    CHECK_EQ(raftkv_status_sized(c, 0, (void *)buf, RAFTKV_NODE_STATUS_V0_SIZE), RAFTKV_OK);
    struct v0_raftkv_node_status v0;
    memcpy(&v0, buf, sizeof v0);
    CHECK_EQ(v0.id, 3);
    CHECK_EQ(v0.counters.transfers_started, 2);
    for (size_t i = RAFTKV_NODE_STATUS_V0_SIZE; i < bigger + 64; i++)
        CHECK_EQ(buf[i], 0xAA);
    /* a newer program's: what this library does not know is 0 */
    memset(buf, 0xAA, bigger + 64);
    CHECK_EQ(raftkv_status_sized(c, 0, (void *)buf, bigger), RAFTKV_OK);
    for (size_t i = sizeof(struct raftkv_node_status); i < bigger; i++)
        CHECK_EQ(buf[i], 0);
    CHECK_EQ(buf[bigger], 0xAA);
    CHECK_EQ(raftkv_status_sized(c, 0, (void *)buf, RAFTKV_NODE_STATUS_V0_SIZE - 1), RAFTKV_EUSAGE);
    free(buf);
    raftkv_client_close(c);
    fake_node_stop(&a);
}

TEST(this_file_froze_the_library_s_soversion)
{
    /* A new SOVERSION: copy its structs and signatures above, as of its first release. */
    CHECK_EQ(RAFTKV_SOVERSION, 0);
}

TEST_MAIN(TEST_REF(frozen_structs_keep_their_layout),
          TEST_REF(the_node_status_only_grows_at_its_end),
          TEST_REF(status_codes_and_constants_keep_their_values),
          TEST_REF(functions_keep_their_signatures),
          TEST_REF(the_status_fills_exactly_the_size_the_caller_has),
          TEST_REF(this_file_froze_the_library_s_soversion))
