/*
 * The node's own counters and histograms for /metrics, beyond NodeStatus's numbers: client
 * requests by operation and result with their latency, proposals by outcome, leader
 * changes, batch sizes and durations. All of it belongs to the event loop, and all of it is
 * bounded: operations are named by a fixed table that ends in "other".
 */
#ifndef RAFTKV_NODE_METRICS_H
#define RAFTKV_NODE_METRICS_H

#include <stdint.h>

#define METRICS_BUCKETS 16
#define METRICS_MAX_OPS 32
#define METRICS_CODES 5 /* client.proto's Code values */

/* A Prometheus histogram: counts per bucket (the last above every bound) and their sum. */
struct metrics_hist {
    uint64_t bucket[METRICS_BUCKETS + 1];
    double sum;
};

/* What a histogram's bounds measure. */
enum metrics_unit { METRICS_SECONDS, METRICS_COUNT };

enum proposal_outcome {
    PROPOSAL_COMMITTED,  /* its entry committed: the client got the state machine's answer */
    PROPOSAL_ABANDONED,  /* answered UNAVAILABLE before its entry was known to commit:
                            leadership lost, storage full, the node stopping */
    PROPOSAL_NOT_LEADER, /* refused at once: the node does not lead */
    PROPOSAL_TOO_BIG,    /* refused at once: over the core's entry limit */
    PROPOSAL_BUSY,       /* refused at once: a leadership transfer is under way */
    PROPOSAL_FAILED,     /* refused at once: anything else (out of memory) */
    PROPOSAL_OUTCOMES
};

struct metrics {
    const char *ops[METRICS_MAX_OPS]; /* ops[0] "unknown", ops[1] "other"; not owned */
    unsigned n_ops;
    uint64_t requests[METRICS_MAX_OPS][METRICS_CODES];
    struct metrics_hist latency[METRICS_MAX_OPS];
    uint64_t proposals[PROPOSAL_OUTCOMES];
    uint64_t leader_changes;
    struct metrics_hist batch_write, db_commit, batch_entries, batch_msgs;
    struct metrics_hist snapshot_take;    /* streaming the state machine into its file */
    struct metrics_hist snapshot_install; /* from its first chunk to its install */
};

void metrics__init(struct metrics *m);
void metrics__observe(struct metrics_hist *h, enum metrics_unit unit, double value);
/* The tag (rk_client_call_set_tag) of operation name: 0 for NULL, 1 once the table is full.
 * name must outlive the node. */
unsigned metrics__op(struct metrics *m, const char *name);

#endif
