/*
 * What the benchmark wrote, to check after a run that every acknowledged write survived.
 *
 * Every write (put, cas) gets a unique id, carried in the first 16 bytes of its value (hex),
 * so a value read back names the write that produced it. Per key the ledger keeps the
 * acknowledged write with the highest revision (the raft index it applied at: revisions
 * order all writes of the cluster). A write that failed or timed out is "unknown": it may
 * or may not have been applied, so the key may end with either value.
 *
 * A key read back at the end is judged against that:
 *   - intact: it holds the last acknowledged write, at that write's revision;
 *   - unknown applied: it holds an unknown write to this key, at a higher revision (the
 *     failed write did land, after the last acknowledged one);
 *   - lost: an acknowledged write is missing (key absent, lower revision, other value at
 *     that revision);
 *   - unexpected: any other value (not a write to this key we made, or an older
 *     acknowledged write at a higher revision: a duplicate applied twice).
 */
#ifndef RAFTKV_BENCH_LEDGER_H
#define RAFTKV_BENCH_LEDGER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LEDGER_ID_BYTES 16
#define LEDGER_STRIPES 1024

struct ledger_key {
    uint64_t rev;   /* highest acknowledged revision; 0 = none */
    uint64_t write; /* the write acknowledged at rev */
    uint32_t unknown;
};

struct ledger_unknown {
    uint64_t key, write;
};

struct ledger {
    uint64_t n_keys;
    struct ledger_key *keys;
    pthread_mutex_t stripes[LEDGER_STRIPES];
    _Atomic uint64_t next_write;
    pthread_mutex_t unknown_mu;
    struct ledger_unknown *unknown; /* sorted by key once the writes are over */
    size_t n_unknown, cap_unknown;
};

enum ledger_verdict {
    LEDGER_INTACT,
    LEDGER_UNKNOWN_APPLIED,
    LEDGER_ABSENT, /* never acknowledged, no unknown write visible: fine */
    LEDGER_LOST,
    LEDGER_UNEXPECTED,
};

int ledger_init(struct ledger *l, uint64_t n_keys);
void ledger_free(struct ledger *l);
/* A fresh write id (never 0). */
uint64_t ledger_next_write(struct ledger *l);
/* Fills value (size >= LEDGER_ID_BYTES) with the write's id and filler. */
void ledger_value(uint64_t write, char *value, size_t size);
/* The write whose value key last acknowledged (0 if none): what a cas expects. */
uint64_t ledger_last(struct ledger *l, uint64_t key);
void ledger_acked(struct ledger *l, uint64_t key, uint64_t write, uint64_t rev);
/* Returns 0 or ENOMEM. */
int ledger_unknown(struct ledger *l, uint64_t key, uint64_t write);
/* Call once every write has ended, before ledger_judge. */
void ledger_seal(struct ledger *l);
/* Whether key was written at all (acknowledged or unknown). */
bool ledger_touched(const struct ledger *l, uint64_t key);
/* found: the read returned a value (else NOT_FOUND). */
enum ledger_verdict ledger_judge(const struct ledger *l, uint64_t key, bool found,
                                 const uint8_t *value, size_t len, uint64_t mod_rev);

#endif
