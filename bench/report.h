/* The figures of a run: a table for people, or one JSON object (--json). */
#ifndef RAFTKV_BENCH_REPORT_H
#define RAFTKV_BENCH_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "driver.h"

struct run_summary {
    const char *command; /* reproduces the run */
    const char *endpoints;
    int nodes; /* 0 if unknown (--endpoints) */
    double elapsed_s;
    double client_cores;  /* CPU this process used during the run, in cores */
    double machine_cores; /* busy CPU of the whole machine, in cores; < 0 if unknown */
    unsigned machine_cpus;
    double prefill_s; /* < 0 without prefill */
    /* --kill-leader-at */
    bool killed;
    uint64_t killed_node;
    double kill_s;     /* into the run */
    bool recovered;    /* a success came after the kill */
    double gap_ms;     /* largest gap between successes ending after the kill */
    double gap_from_s; /* into the run */
    double gap_to_s;
    double recovery_ms; /* kill -> the end of that gap: successes resumed */
    bool verified;      /* verification ran */
    bool verify_ok;     /* every acknowledged write survived, every key checked */
    uint64_t unknown_writes;
};

void report_text(FILE *f, const struct driver *d, const struct run_summary *r);
void report_json(FILE *f, const struct driver *d, const struct run_summary *r);

#endif
