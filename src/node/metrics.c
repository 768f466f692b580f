/*
 * /metrics: Prometheus text format 0.0.4. NodeStatus's numbers come through its protobuf-c
 * descriptor (a counter added to client.proto shows up here with nothing to keep in step);
 * the rest is the node's own (metrics.h), the transport's per-peer counters and, on the
 * leader, each member's replication.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "node/node_internal.h"
#include "transport/transport.h"

/* Bucket bounds: durations from 100 us to 10 s, sizes in powers of two. */
static const double bounds[][METRICS_BUCKETS] = {
    [METRICS_SECONDS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                         0.25, 0.5, 1, 2.5, 5, 10},
    [METRICS_COUNT] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768},
};

_Static_assert(RAFTKV__CLIENT__CODE__INTERNAL + 1 == METRICS_CODES, "a Code without a name");
static const char *const code_names[METRICS_CODES] = {
    [RAFTKV__CLIENT__CODE__OK] = "ok",
    [RAFTKV__CLIENT__CODE__NOT_LEADER] = "not_leader",
    [RAFTKV__CLIENT__CODE__INVALID] = "invalid",
    [RAFTKV__CLIENT__CODE__UNAVAILABLE] = "unavailable",
    [RAFTKV__CLIENT__CODE__INTERNAL] = "internal",
};

static const char *const outcome_names[PROPOSAL_OUTCOMES] = {
    [PROPOSAL_COMMITTED] = "committed",
    [PROPOSAL_ABANDONED] = "abandoned",
    [PROPOSAL_NOT_LEADER] = "not_leader",
    [PROPOSAL_TOO_BIG] = "too_big",
    [PROPOSAL_BUSY] = "busy",
    [PROPOSAL_FAILED] = "failed",
};

static const char *const msg_type_names[RAFT_MSG_TYPE_COUNT] = {
    [RAFT_MSG_REQUEST_VOTE] = "request_vote",
    [RAFT_MSG_REQUEST_VOTE_RESP] = "request_vote_response",
    [RAFT_MSG_APPEND] = "append_entries",
    [RAFT_MSG_APPEND_RESP] = "append_entries_response",
    [RAFT_MSG_INSTALL_SNAPSHOT] = "install_snapshot",
    [RAFT_MSG_INSTALL_SNAPSHOT_RESP] = "install_snapshot_response",
    [RAFT_MSG_TIMEOUT_NOW] = "timeout_now",
};

void metrics__init(struct metrics *m)
{
    memset(m, 0, sizeof *m);
    m->ops[0] = "unknown";
    m->ops[1] = "other";
    m->n_ops = 2;
}

void metrics__observe(struct metrics_hist *h, enum metrics_unit unit, double value)
{
    size_t b = 0;
    while (b < METRICS_BUCKETS && value > bounds[unit][b])
        b++;
    h->bucket[b]++;
    h->sum += value;
}

unsigned metrics__op(struct metrics *m, const char *name)
{
    if (!name)
        return 0;
    for (unsigned i = 0; i < m->n_ops; i++)
        if (strcmp(m->ops[i], name) == 0)
            return i;
    if (m->n_ops == METRICS_MAX_OPS)
        return 1;
    m->ops[m->n_ops] = name;
    return m->n_ops++;
}

void metrics__client_reply(struct rk_node *n, struct rk_client_call *call,
                           Raftkv__Client__Code code)
{
    struct metrics *m = &n->metrics;
    unsigned op = rk_client_call_tag(call);
    if (op >= m->n_ops)
        op = 0;
    m->requests[op][(unsigned)code < METRICS_CODES ? code : RAFTKV__CLIENT__CODE__INTERNAL]++;
    struct timespec now = node__now(), at = rk_client_call_arrival(call);
    double s = (double)(now.tv_sec - at.tv_sec) + (double)(now.tv_nsec - at.tv_nsec) / 1e9;
    metrics__observe(&m->latency[op], METRICS_SECONDS, s > 0 ? s : 0);
}

/* ---- The text. ---- */

static void header(struct text *t, const char *name, const char *type, const char *help)
{
    text_add(t, "# HELP raftkv_%s %s\n# TYPE raftkv_%s %s\n", name, help, name, type);
}

static void metric(struct text *t, const char *name, const char *type, const char *help,
                   uint64_t value)
{
    header(t, name, type, help);
    text_add(t, "raftkv_%s %" PRIu64 "\n", name, value);
}

/* A label value as the format wants it: backslash, double quote and newline escaped. */
static void escape(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in && o + 3 < cap; in++) {
        if (*in == '\\' || *in == '"' || *in == '\n')
            out[o++] = '\\';
        out[o++] = *in == '\n' ? 'n' : *in;
    }
    out[o] = '\0';
}

/* One histogram's series; labels is "" or a list ending in a comma (op="put",). */
static void histogram(struct text *t, const char *name, const char *labels, enum metrics_unit unit,
                      const struct metrics_hist *h)
{
    uint64_t count = 0;
    for (size_t b = 0; b <= METRICS_BUCKETS; b++) {
        count += h->bucket[b];
        if (b < METRICS_BUCKETS)
            text_add(t, "raftkv_%s_bucket{%sle=\"%g\"} %" PRIu64 "\n", name, labels,
                     bounds[unit][b], count);
        else
            text_add(t, "raftkv_%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, count);
    }
    size_t ll = strlen(labels);
    /* {op="put",} is valid too, but {} after a name alone is not what people write. */
    text_add(t, "raftkv_%s_sum%s%.*s%s %.9g\n", name, ll ? "{" : "", (int)(ll ? ll - 1 : 0), labels,
             ll ? "}" : "", h->sum);
    text_add(t, "raftkv_%s_count%s%.*s%s %" PRIu64 "\n", name, ll ? "{" : "",
             (int)(ll ? ll - 1 : 0), labels, ll ? "}" : "", count);
}

/* Whether a part of NodeStatus holds counters (client.proto: its message is named *Stats). */
static bool counts(const ProtobufCFieldDescriptor *f)
{
    const char *name = ((const ProtobufCMessageDescriptor *)f->descriptor)->name;
    size_t len = strlen(name);
    return len > 5 && strcmp(name + len - 5, "Stats") == 0;
}

/* The numbers of NodeStatus: its own are gauges (raftkv_term), those of its *Stats parts
 * counters named after the part (raftkv_raft_elections_started_total). */
static void status_numbers(struct text *t, const ProtobufCMessage *m, const char *part)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char name[128];
        if (http__is_number(f) && !part) {
            metric(t, f->name, "gauge", "as in raft-kv status", http__number_at(m, f));
        } else if (http__is_number(f)) {
            snprintf(name, sizeof name, "%s_%s_total", part, f->name);
            metric(t, name, "counter", "counted since the node started", http__number_at(m, f));
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE && f->label != PROTOBUF_C_LABEL_REPEATED &&
                   counts(f) && http__pointer_at(m, f) && !part) {
            status_numbers(t, http__pointer_at(m, f), f->name);
        }
    }
}

static void snapshots(struct text *t, const Raftkv__Client__SnapshotStatus *s,
                      const struct metrics *m)
{
    metric(t, "snapshot_index", "gauge", "The index of the node's latest snapshot (0: none).",
           s->index);
    metric(t, "snapshot_bytes", "gauge", "The size of the latest snapshot's file.", s->bytes);
    metric(t, "snapshots_taken_total", "counter", "Snapshots this node took and kept.", s->taken);
    metric(t, "snapshot_taken_bytes_total", "counter", "Bytes of the snapshots taken and kept.",
           s->taken_bytes);
    metric(t, "snapshot_sent_bytes_total", "counter",
           "Snapshot bytes read into chunks for followers, resends included.", s->sent_bytes);
    metric(t, "snapshot_installed_bytes_total", "counter",
           "Bytes of the snapshots received from a leader and installed.", s->installed_bytes);
    header(t, "snapshot_take_seconds", "histogram",
           "Taking a snapshot: streaming the state machine into its file, synced.");
    histogram(t, "snapshot_take_seconds", "", METRICS_SECONDS, &m->snapshot_take);
    header(t, "snapshot_install_seconds", "histogram",
           "A snapshot from a leader: from its first chunk to its install.");
    histogram(t, "snapshot_install_seconds", "", METRICS_SECONDS, &m->snapshot_install);
}

static void client_requests(struct text *t, const struct metrics *m)
{
    header(t, "client_requests_total", "counter",
           "Client requests answered, by operation and result (client.proto Code).");
    for (unsigned op = 0; op < m->n_ops; op++) {
        char esc[128];
        escape(m->ops[op], esc, sizeof esc);
        for (unsigned c = 0; c < METRICS_CODES; c++)
            if (m->requests[op][c])
                text_add(t, "raftkv_client_requests_total{op=\"%s\",result=\"%s\"} %" PRIu64 "\n",
                         esc, code_names[c], m->requests[op][c]);
    }
    header(t, "client_request_duration_seconds", "histogram",
           "Client requests by operation: from arrival on the client port to the reply.");
    for (unsigned op = 0; op < m->n_ops; op++) {
        char esc[128], labels[160];
        escape(m->ops[op], esc, sizeof esc);
        snprintf(labels, sizeof labels, "op=\"%s\",", esc);
        uint64_t any = 0;
        for (size_t b = 0; b <= METRICS_BUCKETS; b++)
            any |= m->latency[op].bucket[b];
        if (any)
            histogram(t, "client_request_duration_seconds", labels, METRICS_SECONDS,
                      &m->latency[op]);
    }
}

static void node_counters(struct text *t, const struct metrics *m)
{
    header(t, "proposals_total", "counter",
           "Entries proposed for clients (writes; membership changes once awaiting commit), "
           "by outcome.");
    for (unsigned o = 0; o < PROPOSAL_OUTCOMES; o++)
        text_add(t, "raftkv_proposals_total{outcome=\"%s\"} %" PRIu64 "\n", outcome_names[o],
                 m->proposals[o]);
    metric(t, "leader_changes_total", "counter",
           "Leaders this node has seen take office (a new leader or term), the first included.",
           m->leader_changes);
    header(t, "batch_write_seconds", "histogram",
           "One ready's LMDB write transaction: persist, apply, commit with fsync.");
    histogram(t, "batch_write_seconds", "", METRICS_SECONDS, &m->batch_write);
    header(t, "db_commit_seconds", "histogram",
           "mdb_txn_commit of a ready's write: the page writes and both fsyncs (data, then "
           "meta page); LMDB does not time the fsync apart.");
    histogram(t, "db_commit_seconds", "", METRICS_SECONDS, &m->db_commit);
    header(t, "batch_entries", "histogram", "Entries each written ready saved to the log.");
    histogram(t, "batch_entries", "", METRICS_COUNT, &m->batch_entries);
    header(t, "batch_messages", "histogram",
           "Messages each written ready sent (before and after its write).");
    histogram(t, "batch_messages", "", METRICS_COUNT, &m->batch_msgs);
}

static void peer_fate(struct text *t, const char *name, const char *extra,
                      const struct rk_peer_msg_stats *p, const uint64_t *counts)
{
    for (unsigned k = 0; k < RAFT_MSG_TYPE_COUNT; k++) {
        if (p->peer)
            text_add(t, "raftkv_%s{peer=\"%" PRIu64 "\",type=\"%s\"%s} %" PRIu64 "\n", name,
                     p->peer, msg_type_names[k], extra, counts[k]);
        else
            text_add(t, "raftkv_%s{peer=\"other\",type=\"%s\"%s} %" PRIu64 "\n", name,
                     msg_type_names[k], extra, counts[k]);
    }
}

static void peer_messages(struct text *t, struct rk_node *n)
{
    struct rk_peer_msg_stats ps[RAFT_MAX_MEMBERS + 1];
    size_t np = rk_transport_peer_msg_stats(n->transport, ps, RAFT_MAX_MEMBERS + 1);
    header(t, "peer_messages_sent_total", "counter",
           "Raft messages handed to the network, by peer and type.");
    for (size_t i = 0; i < np; i++)
        peer_fate(t, "peer_messages_sent_total", "", &ps[i], ps[i].sent);
    header(t, "peer_messages_received_total", "counter",
           "Raft messages received and passed to the node, by peer and type.");
    for (size_t i = 0; i < np; i++)
        peer_fate(t, "peer_messages_received_total", "", &ps[i], ps[i].received);
    header(t, "peer_messages_dropped_total", "counter",
           "Raft messages dropped, by peer, type and direction: send (no free context, too "
           "large, send failed) or receive (addressed to another node id).");
    for (size_t i = 0; i < np; i++) {
        peer_fate(t, "peer_messages_dropped_total", ",direction=\"send\"", &ps[i],
                  ps[i].send_dropped);
        peer_fate(t, "peer_messages_dropped_total", ",direction=\"receive\"", &ps[i],
                  ps[i].recv_dropped);
    }
}

/* On the leader: how far each member's log is known to reach. */
static void replication(struct text *t, struct rk_node *n)
{
    raft_index conf_index, last = raft_last_index_of(n->raft);
    const struct raft_configuration *conf = raft_configuration_of(n->raft, &conf_index);
    raft_id ids[RAFT_MAX_MEMBERS];
    raft_index match[RAFT_MAX_MEMBERS];
    size_t k = 0;
    for (size_t i = 0; raft_role_of(n->raft) == RAFT_LEADER && i < conf->n && k < RAFT_MAX_MEMBERS;
         i++) {
        struct raft_member_progress pr;
        if (raft_member_progress_of(n->raft, conf->members[i].id, &pr) == RAFT_OK) {
            ids[k] = conf->members[i].id;
            match[k++] = pr.match;
        }
    }
    header(t, "peer_match_index", "gauge",
           "On the leader: the last index known to be in each member's log.");
    for (size_t i = 0; i < k; i++)
        text_add(t, "raftkv_peer_match_index{peer=\"%" PRIu64 "\"} %" PRIu64 "\n", ids[i],
                 match[i]);
    header(t, "peer_lag_entries", "gauge",
           "On the leader: entries of its log each member is not known to hold.");
    for (size_t i = 0; i < k; i++)
        text_add(t, "raftkv_peer_lag_entries{peer=\"%" PRIu64 "\"} %" PRIu64 "\n", ids[i],
                 last > match[i] ? last - match[i] : 0);
}

void metrics__write(struct rk_node *n, struct text *t)
{
    struct node_status s;
    clients__status(n, &s);
    status_numbers(t, &s.st.base, NULL);
    header(t, "role", "gauge", "The node's Raft role, as a label.");
    text_add(t, "raftkv_role{role=\"%s\"} 1\n", node__role_name(&n->view));
    metric(t, "healthy", "gauge", "1 when /health answers 200", http__unhealthy(n) == NULL);
    const Raftkv__Client__StorageStatus *db = s.st.storage;
    metric(t, "db_map_bytes", "gauge", "the LMDB map's current size", db->map_bytes);
    metric(t, "db_used_bytes", "gauge", "bytes of the map in use", db->used_bytes);
    metric(t, "db_max_bytes", "gauge", "max_db_bytes", db->max_bytes);
    metric(t, "db_commits_total", "counter", "LMDB write transactions committed", db->commits);
    snapshots(t, s.st.snapshot, &n->metrics);
    node_counters(t, &n->metrics);
    client_requests(t, &n->metrics);
    peer_messages(t, n);
    replication(t, n);
}
