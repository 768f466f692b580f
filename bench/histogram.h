/*
 * A log-linear latency histogram in the manner of HdrHistogram: values below 2^bits are
 * counted exactly; above, every power of two is split into 2^(bits-1) equal buckets, so a
 * percentile is off by less than 2^-(bits-1) of its value, whatever the spread. Recording is
 * one relaxed atomic increment (many NNG threads record at once); nothing is sorted.
 */
#ifndef RAFTKV_BENCH_HISTOGRAM_H
#define RAFTKV_BENCH_HISTOGRAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Values are clamped to this (in µs: 71 minutes). */
#define HIST_MAX_VALUE ((uint64_t)UINT32_MAX)

struct histogram {
    unsigned bits;
    size_t n_buckets;
    _Atomic uint64_t *buckets;
    _Atomic uint64_t count;
    _Atomic uint64_t sum;
    _Atomic uint64_t max;
};

/* bits: 2..16; 8 gives < 0.8 % error. Returns 0 or ENOMEM. */
int hist_init(struct histogram *h, unsigned bits);
void hist_free(struct histogram *h);
void hist_record(struct histogram *h, uint64_t value);
/* Adds src's counts to dst (same bits; neither recorded into meanwhile). */
void hist_merge(struct histogram *dst, const struct histogram *src);
/* The value at quantile q (0..1): the upper end of the bucket holding it, never more than
 * the largest value recorded; 0 when empty. */
uint64_t hist_quantile(const struct histogram *h, double q);
uint64_t hist_count(const struct histogram *h);
uint64_t hist_max(const struct histogram *h);
double hist_mean(const struct histogram *h);

#endif
