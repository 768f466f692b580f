/*
 * Throughput and latency over time, for --plot: per time bucket (100 ms, or 1 s in long
 * runs) the successful and failed operations and a coarse latency histogram (3 % error),
 * allocated when the bucket is first used. Then drawn by gnuplot.
 */
#ifndef RAFTKV_BENCH_TIMELINE_H
#define RAFTKV_BENCH_TIMELINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "histogram.h"

struct timeline_bucket {
    _Atomic uint64_t errors;
    struct histogram latency_us; /* successful operations */
};

struct timeline {
    uint64_t start_ns, width_ns;
    size_t n_buckets;
    _Atomic(struct timeline_bucket *) *buckets;
    _Atomic uint64_t dropped; /* past the last bucket, or no memory */
};

/* Buckets of width_ms covering max_seconds from start_ns. Returns 0 or ENOMEM. */
int timeline_init(struct timeline *t, uint64_t start_ns, unsigned width_ms, unsigned max_seconds);
void timeline_free(struct timeline *t);
void timeline_record(struct timeline *t, uint64_t now_ns, uint64_t latency_us, bool ok);

/* Whether gnuplot can be run (looked up in PATH). */
bool timeline_gnuplot_found(void);
/* Writes the figures to PATH.dat and draws PATH (.svg or .png) with gnuplot: ops/s and p99
 * latency per bucket; fault_s >= 0 marks a fault of the leader, labelled fault_label. Returns 0
 * or -1 (said why). */
int timeline_plot(const struct timeline *t, const char *path, const char *title, double end_s,
                  double fault_s, const char *fault_label);

#endif
