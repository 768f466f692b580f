/* The figures of a run: a table for people, or one JSON object (--json). */
#ifndef RAFTKV_BENCH_REPORT_H
#define RAFTKV_BENCH_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "driver.h"

/* A gap between successful writes, in seconds into the run. */
struct gap_s {
    double ms, from_s, to_s;
};

struct run_summary {
    const char *command; /* reproduces the run */
    const char *endpoints;
    int nodes; /* 0 if unknown (--endpoints) */
    double elapsed_s;
    double client_cores;  /* CPU this process used during the run, in cores */
    double machine_cores; /* busy CPU of the whole machine, in cores; < 0 if unknown */
    unsigned machine_cpus;
    double prefill_s; /* < 0 without prefill */
    /* --kill-leader-at, --leader-fault */
    bool faulted; /* the fault was dealt */
    enum leader_fault fault;
    uint64_t fault_node; /* the leader it was dealt to */
    double fault_s;      /* into the run */
    bool recovered;      /* a success came after the fault */
    struct gap_s gap;    /* the unavailability: the largest gap the fault can have caused */
    double recovery_ms;  /* fault -> the end of that gap: successes resumed */
    struct gap_s after;  /* the largest gap ending after the fault, begun at any time */
    struct gap_s before; /* the largest gap ending before it: the run's own stalls */
    /* move: how raftkv_move_leader answered (status, new leader, error), and when */
    int move_status;
    uint64_t move_leader;
    double move_ms;
    char move_error[256];
    bool verified;  /* verification ran */
    bool verify_ok; /* every acknowledged write survived, every key checked */
    uint64_t unknown_writes;
};

void report_text(FILE *f, const struct driver *d, const struct run_summary *r);
void report_json(FILE *f, const struct driver *d, const struct run_summary *r);

#endif
