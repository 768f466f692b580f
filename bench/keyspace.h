/*
 * Which key an operation addresses: uniform over the key space, or Zipf-distributed (key 0
 * the most popular) by rejection-inversion sampling (Hörmann and Derflinger, "Rejection-
 * inversion to generate variates from monotone discrete distributions", 1996): O(1) memory
 * and time per draw for any key space.
 */
#ifndef RAFTKV_BENCH_KEYSPACE_H
#define RAFTKV_BENCH_KEYSPACE_H

#include <stdint.h>

/* splitmix64: one per closed-loop client, so no draw is shared between threads. */
uint64_t rng_next(uint64_t *state);
/* Uniform in [0, 1). */
double rng_unit(uint64_t *state);

struct keyspace {
    uint64_t n;
    double s; /* Zipf exponent; 0 = uniform */
    double h_x1, h_n, s_limit;
};

/* s == 0 means uniform; otherwise s > 0. */
void keyspace_init(struct keyspace *k, uint64_t n, double s);
uint64_t keyspace_draw(const struct keyspace *k, uint64_t *rng);

#endif
