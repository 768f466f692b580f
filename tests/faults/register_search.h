/*
 * The search for a linearization of one key's history against a register (lincheck.h says
 * what is searched; this is how). Values are numbered: 0 is "no key".
 */
#ifndef RAFTKV_TESTS_FAULTS_REGISTER_SEARCH_H
#define RAFTKV_TESTS_FAULTS_REGISTER_SEARCH_H

#include "history.h"
#include "lincheck.h"

struct lin_op {
    enum hist_kind kind;
    enum hist_outcome outcome;
    uint32_t value, expect, result;
    uint64_t invoke;
    /* UINT64_MAX: may take effect at any time after invoke, or never (an unknown outcome
     * the caller could not bound); it must then be legal in every state. */
    uint64_t complete;
};

/* Whether op may take effect in state s, and the state after it. */
bool register_step(const struct lin_op *op, uint32_t s, uint32_t *next);

/* Searches ops[sel[0..m)] for a legal order that respects real time, within max_steps
 * (added to *steps) and max_bytes of remembered states. */
enum lincheck_verdict register_search(const struct lin_op *ops, const uint32_t *sel, size_t m,
                                      uint64_t max_steps, uint64_t max_bytes, uint64_t *steps);

#endif
