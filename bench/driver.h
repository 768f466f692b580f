/*
 * The closed loop: --clients slots, each with exactly one asynchronous request in flight
 * on one of the client instances; the completion callback accounts for the answer and
 * issues the slot's next request (or hands the slot to a worker thread, --workers).
 *
 * A run has phases: prefill (put every key once), run (the measured mix), verify (read
 * back every key written). Each ends when every slot has stopped.
 */
#ifndef RAFTKV_BENCH_DRIVER_H
#define RAFTKV_BENCH_DRIVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "histogram.h"
#include "keyspace.h"
#include "ledger.h"
#include "options.h"
#include "raftkv/client.h"
#include "timeline.h"

enum phase { PHASE_PREFILL, PHASE_RUN, PHASE_VERIFY };

struct kind_stats {
    struct histogram latency_us; /* successful operations */
    _Atomic uint64_t errors, not_found, mismatch;
};

#define DRIVER_MAX_MESSAGES 8

/* Distinct error messages and how often each came. */
struct error_log {
    pthread_mutex_t mu;
    struct {
        char text[200];
        uint64_t count;
    } msgs[DRIVER_MAX_MESSAGES];
    unsigned n;
    uint64_t others;
};

struct slot;

/* A stretch without a successful operation, between two successes (or to the run's end). */
struct gap {
    uint64_t from_ns, to_ns;
};

/* How long after a fault of the leader a gap may begin and still be put down to it: raftd
 * bounds a hand-off (move-leader, SIGTERM) by two election timeouts, 600 ms with the default
 * 150-300 ms, and a kill's gap begins before the kill. Later gaps are the cluster's own stalls
 * (storage batches, a busy machine), which a graceful fault would otherwise be blamed for. */
#define DRIVER_FAULT_WINDOW_NS 600000000u

struct driver {
    const struct bench_options *o;
    struct raftkv_client **conns;
    struct keyspace keyspace;
    struct ledger ledger;
    struct timeline *timeline; /* NULL unless plotting */
    struct slot *slots;
    unsigned mix_total;
    bool mix_writes; /* the mix has puts or cas */

    enum phase phase;      /* changed only while no slot runs */
    _Atomic uint64_t next; /* prefill, verify: next key; run with --ops: ops issued */
    uint64_t start_ns, end_ns;
    atomic_bool stop; /* end the phase early (SIGINT) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned active; /* slots still running in this phase */
    uint64_t phase_end_ns;

    struct kind_stats stats[N_KINDS];
    _Atomic uint64_t prefill_errors;
    _Atomic uint64_t verdicts[LEDGER_UNEXPECTED + 1];
    _Atomic uint64_t unverified;
    struct error_log errors;

    /* Availability around a fault of the leader (--leader-fault): successful writes (or,
     * without writes in the mix, any successful operation). fault_ns stays 0 without one. */
    _Atomic uint64_t fault_ns, last_ok_ns, first_ok_after_fault_ns;
    pthread_mutex_t gap_mu;
    /* The largest gaps: ending after the fault and begun within DRIVER_FAULT_WINDOW_NS of it
     * (the fault's), ending after it at any time, and ending before it (the run's own, to
     * compare with). */
    struct gap gap_near, gap_after, gap_before;

    /* --workers: slots whose request completed, waiting to issue the next. */
    struct slot **queue;
    unsigned q_head, q_len;
    pthread_cond_t q_cv;
    bool q_quit;
    pthread_t *workers;
};

uint64_t now_ns(void);

/* Returns 0, or an errno (said why). */
int driver_init(struct driver *d, const struct bench_options *o, struct raftkv_client **conns);
void driver_free(struct driver *d);
/* Runs one phase; every ~100 ms (and when it ends) tick runs on the calling thread. */
void driver_run(struct driver *d, enum phase phase, void (*tick)(struct driver *, void *),
                void *arg);
/* The fault of the leader happened now (for the gap report). */
void driver_mark_fault(struct driver *d, uint64_t at_ns);
/* Counts over all kinds in the run phase. */
uint64_t driver_ops(const struct driver *d);
uint64_t driver_errors(const struct driver *d);

#endif
