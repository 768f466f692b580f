#include "histogram.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

static unsigned msb(uint64_t v)
{
    return 63u - (unsigned)__builtin_clzll(v);
}

static size_t bucket_of(unsigned bits, uint64_t v)
{
    if (v < ((uint64_t)1 << bits))
        return (size_t)v;
    unsigned shift = msb(v) - bits + 1;
    return ((size_t)shift << (bits - 1)) + (size_t)(v >> shift);
}

/* The largest value that falls into bucket i. */
static uint64_t bucket_top(unsigned bits, size_t i)
{
    if (i < ((size_t)1 << bits))
        return i;
    unsigned shift = (unsigned)(i >> (bits - 1)) - 1;
    uint64_t m = i - ((size_t)shift << (bits - 1));
    return ((m + 1) << shift) - 1;
}

int hist_init(struct histogram *h, unsigned bits)
{
    if (bits < 2 || bits > 16)
        return EINVAL;
    h->bits = bits;
    h->n_buckets = bucket_of(bits, HIST_MAX_VALUE) + 1;
    h->buckets = calloc(h->n_buckets, sizeof *h->buckets);
    atomic_init(&h->count, 0);
    atomic_init(&h->sum, 0);
    atomic_init(&h->max, 0);
    return h->buckets ? 0 : ENOMEM;
}

void hist_free(struct histogram *h)
{
    free(h->buckets);
    h->buckets = NULL;
}

void hist_record(struct histogram *h, uint64_t value)
{
    if (value > HIST_MAX_VALUE)
        value = HIST_MAX_VALUE;
    atomic_fetch_add_explicit(&h->buckets[bucket_of(h->bits, value)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, value, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&h->max, memory_order_relaxed);
    while (value > m && !atomic_compare_exchange_weak_explicit(
                            &h->max, &m, value, memory_order_relaxed, memory_order_relaxed))
        ;
}

void hist_merge(struct histogram *dst, const struct histogram *src)
{
    for (size_t i = 0; i < src->n_buckets; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hist_quantile(const struct histogram *h, double q)
{
    uint64_t n = h->count;
    if (!n)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)n), seen = 0;
    rank = rank < 1 ? 1 : rank > n ? n : rank;
    for (size_t i = 0; i < h->n_buckets; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t top = bucket_top(h->bits, i);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}

uint64_t hist_count(const struct histogram *h)
{
    return h->count;
}

uint64_t hist_max(const struct histogram *h)
{
    return h->max;
}

double hist_mean(const struct histogram *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
