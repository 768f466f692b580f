/*
 * A recorded client history of the key-value store: one operation per line, as a workload
 * driver appends them and a human reads them.
 *
 *     # comments and blank lines are ignored
 *     CLIENT INVOKE_NS COMPLETE_NS OP KEY [ARGS] OUTCOME [RESULT]
 *
 *     1 1000 2000 put "k" "v1" ok
 *     2 1500 2600 get "k" ok "v1"
 *     2 2700 2800 get "k" notfound
 *     3 3000 4000 cas "k" "v1" "v2" ok
 *     3 4100 4900 cas "k" - "v3" mismatch "v2"
 *     1 5000 9000 delete "k" ok
 *     1 9100 9500 put "k" "v4" unknown
 *     1 9600 9700 put "k" "v5" failed
 *
 * CLIENT is a number; the times are monotonic nanoseconds. OP is put KEY VALUE, get KEY,
 * delete KEY or cas KEY EXPECTED NEW, where EXPECTED is "-" for "only if the key does not
 * exist". OUTCOME mirrors the client's status: ok (get: RESULT is the value read), notfound
 * (get and delete), mismatch (cas: RESULT is the current value, "-" when the key does not
 * exist), failed (definitely not applied, e.g. INVALID) or unknown (timed out or
 * unavailable: it may have taken effect at any point after INVOKE_NS, or never; its
 * COMPLETE_NS, when the client gave up, is kept for the reader only). Keys and values are
 * double-quoted, with \\, \" and \xHH escapes for bytes outside printable ASCII.
 */
#ifndef RAFTKV_TESTS_FAULTS_HISTORY_H
#define RAFTKV_TESTS_FAULTS_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum hist_kind { HIST_PUT, HIST_GET, HIST_DELETE, HIST_CAS };

enum hist_outcome { HIST_OK, HIST_NOTFOUND, HIST_MISMATCH, HIST_FAILED, HIST_UNKNOWN };

/* A key or value; present is false for "-" (no key). */
struct hist_bytes {
    uint8_t *data;
    size_t len;
    bool present;
};

struct hist_op {
    uint64_t client;
    uint64_t invoke_ns;
    uint64_t complete_ns;
    enum hist_kind kind;
    enum hist_outcome outcome;
    struct hist_bytes key;
    struct hist_bytes value;  /* put: the value written; cas: the new value */
    struct hist_bytes expect; /* cas: the expected value, absent for "only if no key" */
    struct hist_bytes result; /* get ok: the value read; cas mismatch: the current value */
    unsigned line;            /* where it was read from; 0 when built in memory */
};

struct history {
    struct hist_op *ops;
    size_t n;
    size_t cap;
};

/* Reads a whole history. On a malformed line fails with -1 and a message naming the line in
 * err; h is then empty. */
int history_load(FILE *f, struct history *h, char *err, size_t err_len);
/* Appends a copy of op (its bytes are copied). -1 when out of memory. */
int history_add(struct history *h, const struct hist_op *op);
void history_free(struct history *h);

/* Writes op as one line of the format above; -1 on a write error. */
int history_write_op(FILE *f, const struct hist_op *op);
/* Writes "OP KEY [ARGS] OUTCOME [RESULT]" without times, client or newline. */
void history_print_call(FILE *f, const struct hist_op *op);
/* Writes a key or value as the format quotes it, or "-". */
void history_print_bytes(FILE *f, const struct hist_bytes *b);

bool hist_bytes_equal(const struct hist_bytes *a, const struct hist_bytes *b);

#endif
