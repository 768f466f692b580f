/*
 * A linearizability checker for key-value histories (history.h).
 *
 * The store is a map of independent registers, so a history is linearizable if and only if
 * each key's sub-history is (P-compositionality, Herlihy & Wing §3.3; Horn & Kroening
 * 2015): each key is checked on its own against a register holding a value or nothing,
 * with put, get, delete and cas. Revisions are not modelled.
 *
 * Each key is searched with the algorithm of Wing & Gong as improved by Lowe (the one
 * Porcupine and Knossos use): a depth-first search for a legal order of the operations that
 * respects real time, over a list of call and return events, remembering every (set of
 * operations linearized, register state) already reached so that no state is explored
 * twice (register_search.c). Operation A precedes B in real time when A completed strictly
 * before B was invoked. A failed operation and a read whose outcome is unknown are left out.
 * A write whose outcome is unknown completes at +infinity and need not take effect at all
 * (it may be linearized after everything else, where nothing can observe it), so the search
 * ends once every operation with a known outcome is linearized.
 *
 * Before searching, without changing the verdict: values nothing observes become one value;
 * an unknown write nothing observes is left out; and an unknown write of a value no other
 * operation writes, which an operation of known outcome found in place, must have taken
 * effect before that operation completed, and gets that completion time.
 *
 * The search is bounded: each key gets at most max_steps steps and max_bytes of memory for
 * its remembered states, after which the verdict is LINCHECK_UNKNOWN rather than a hang.
 */
#ifndef RAFTKV_TESTS_FAULTS_LINCHECK_H
#define RAFTKV_TESTS_FAULTS_LINCHECK_H

#include "history.h"

enum lincheck_verdict { LINCHECK_OK = 0, LINCHECK_VIOLATION = 1, LINCHECK_UNKNOWN = 2 };

struct lincheck_options {
    uint64_t max_steps; /* per key (minimizing a violation takes more); 0 = 100 million */
    uint64_t max_bytes; /* per key; 0 = 1 GiB */
    bool no_minimize;   /* report all of a violating key's operations that matter */
};

/* What lincheck_history found. For a violation: the key (an index of one of its ops) and
 * a smallest non-linearizable part of its sub-history found (indices into the history, in
 * the history's order). For LINCHECK_UNKNOWN: the key that exhausted its budget. */
struct lincheck_result {
    enum lincheck_verdict verdict;
    size_t key_op;
    size_t key_ops;  /* operations of that key */
    size_t *witness; /* malloc'd */
    size_t n_witness;
    size_t keys;    /* keys checked */
    uint64_t steps; /* search steps over all keys, minimizing included */
};

enum lincheck_verdict lincheck_history(const struct history *h, const struct lincheck_options *o,
                                       struct lincheck_result *res);
void lincheck_result_free(struct lincheck_result *res);
/* Prints the verdict; for a violation, the witness with times in milliseconds after the
 * history's first invocation. */
void lincheck_result_print(FILE *f, const struct history *h, const struct lincheck_result *res);

/*
 * Whether ops[i] may be dropped from the key's sub-history ops[0..n) such that, if the
 * sub-history was linearizable, it still is: then a sub-history that is not linearizable
 * shows that the whole one is not. True for an operation that changes nothing (a read, a
 * cas mismatch, a delete of nothing), and for a write whose effect nothing observes: no
 * read, cas or mismatch names the value it writes (for a delete: expects no key) and, for
 * a put or cas, no delete reports having removed a key. (In a linearization, only writes
 * and unknown cas that change nothing can follow such a write before the next overwrite;
 * the latter can move to the end.) For a write of unknown outcome the converse also holds,
 * so the checker drops those before searching.
 */
bool lincheck_droppable(const struct history *h, const size_t *ops, size_t n, size_t i);

#endif
