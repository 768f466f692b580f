#include "driver.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_BYTES 16
/* A verification read that fails (after the library's own retries) is tried again. */
#define VERIFY_TRIES 3
#define REPORTED_VIOLATIONS 10

struct slot {
    struct driver *d;
    unsigned id;
    struct raftkv_client *client;
    uint64_t rng;
    enum op_kind kind;
    uint64_t key;
    uint64_t write;    /* put, cas: this write's id */
    uint64_t expected; /* cas: the write whose value it expects, 0 = absent */
    uint64_t start_ns;
    unsigned tries;
    bool again; /* repeat the same operation (a failed verification read) */
    char key_buf[KEY_BYTES + 1];
    char *value, *expected_value;
};

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void errors_add(struct error_log *log, const char *what, int status)
{
    char text[sizeof log->msgs[0].text];
    snprintf(text, sizeof text, "%s: %s", raftkv_status_str(status), what && *what ? what : "-");
    pthread_mutex_lock(&log->mu);
    unsigned i = 0;
    while (i < log->n && strcmp(log->msgs[i].text, text) != 0)
        i++;
    if (i == log->n && log->n < DRIVER_MAX_MESSAGES)
        memcpy(log->msgs[log->n++].text, text, sizeof text);
    if (i < log->n)
        log->msgs[i].count++;
    else
        log->others++;
    pthread_mutex_unlock(&log->mu);
}

static enum op_kind pick_kind(struct driver *d, uint64_t *rng)
{
    unsigned r = (unsigned)(rng_next(rng) % d->mix_total);
    for (int k = 0; k < N_KINDS; k++) {
        if (r < d->o->mix[k])
            return (enum op_kind)k;
        r -= d->o->mix[k];
    }
    return OP_PUT;
}

static void set_key(struct slot *s, uint64_t key)
{
    s->key = key;
    snprintf(s->key_buf, sizeof s->key_buf, "k%015" PRIu64, key % UINT64_C(1000000000000000));
}

/* Prepares a write of a fresh value to s->key. */
static void set_write(struct slot *s)
{
    s->write = ledger_next_write(&s->d->ledger);
    ledger_value(s->write, s->value, s->d->o->value_size);
}

/* Chooses the slot's next operation; false when its phase is over. */
static bool slot_next(struct slot *s)
{
    struct driver *d = s->d;
    if (atomic_load(&d->stop))
        return false;
    s->tries = 0;
    switch (d->phase) {
    case PHASE_PREFILL: {
        uint64_t k = atomic_fetch_add(&d->next, 1);
        if (k >= d->o->keys)
            return false;
        s->kind = OP_PUT;
        set_key(s, k);
        set_write(s);
        return true;
    }
    case PHASE_RUN:
        if (d->o->ops ? atomic_fetch_add(&d->next, 1) >= d->o->ops : now_ns() >= d->end_ns)
            return false;
        s->kind = pick_kind(d, &s->rng);
        set_key(s, keyspace_draw(&d->keyspace, &s->rng));
        if (s->kind != OP_GET)
            set_write(s);
        if (s->kind == OP_CAS) {
            s->expected = ledger_last(&d->ledger, s->key);
            if (s->expected)
                ledger_value(s->expected, s->expected_value, d->o->value_size);
        }
        return true;
    case PHASE_VERIFY:
        for (;;) {
            uint64_t k = atomic_fetch_add(&d->next, 1);
            if (k >= d->o->keys)
                return false;
            if (ledger_touched(&d->ledger, k)) {
                s->kind = OP_GET;
                set_key(s, k);
                return true;
            }
        }
    }
    return false;
}

static void on_complete(int status, const struct raftkv_result *res, void *arg);

static int slot_send(struct slot *s)
{
    size_t vlen = s->d->o->value_size;
    s->start_ns = now_ns();
    switch (s->kind) {
    case OP_PUT:
        return raftkv_put_async(s->client, s->key_buf, KEY_BYTES, s->value, vlen, on_complete, s);
    case OP_GET:
        return raftkv_get_async(s->client, s->key_buf, KEY_BYTES, on_complete, s);
    case OP_CAS:
        return raftkv_cas_async(s->client, s->key_buf, KEY_BYTES,
                                s->expected ? s->expected_value : NULL, s->expected ? vlen : 0,
                                s->value, vlen, on_complete, s);
    default:
        return RAFTKV_EINTERNAL;
    }
}

static void gap_widen(struct gap *g, uint64_t from, uint64_t to)
{
    if (to - from > g->to_ns - g->from_ns)
        *g = (struct gap){from, to};
}

/* Successes of the run phase, for the gaps around a fault of the leader. */
static void note_success(struct driver *d, uint64_t t)
{
    uint64_t last = atomic_load(&d->last_ok_ns);
    while (t > last && !atomic_compare_exchange_weak(&d->last_ok_ns, &last, t))
        ;
    uint64_t fault = atomic_load(&d->fault_ns);
    uint64_t first = atomic_load(&d->first_ok_after_fault_ns);
    while (fault && t > fault && (!first || t < first) &&
           !atomic_compare_exchange_weak(&d->first_ok_after_fault_ns, &first, t))
        ;
    /* Completions reach us slightly out of order; a later one then sees no gap. The first
     * success of the run has no gap before it: the run's start is not an outage. */
    if (d->o->fault_at_s < 0 || !last || t <= last)
        return;
    pthread_mutex_lock(&d->gap_mu);
    if (!fault || t <= fault) {
        gap_widen(&d->gap_before, last, t);
    } else {
        gap_widen(&d->gap_after, last, t);
        if (last < fault + DRIVER_FAULT_WINDOW_NS)
            gap_widen(&d->gap_near, last, t);
    }
    pthread_mutex_unlock(&d->gap_mu);
}

static void account_write(struct driver *d, struct slot *s, int status,
                          const struct raftkv_result *res)
{
    if (status == RAFTKV_OK) {
        ledger_acked(&d->ledger, s->key, s->write, res->revision);
        return;
    }
    /* Only a request that reached the cluster and got no clear answer may have applied:
     * INVALID and CAS_MISMATCH are refusals, and an operation that failed to start (res
     * NULL) was never sent. */
    if (res && (status == RAFTKV_UNAVAILABLE || status == RAFTKV_EINTERNAL) &&
        ledger_unknown(&d->ledger, s->key, s->write))
        errors_add(&d->errors, "out of memory tracking an unknown write", RAFTKV_ENOMEM);
}

static void account_run(struct driver *d, struct slot *s, int status,
                        const struct raftkv_result *res, uint64_t now)
{
    struct kind_stats *st = &d->stats[s->kind];
    bool ok = status == RAFTKV_OK || (s->kind == OP_GET && status == RAFTKV_NOT_FOUND) ||
              (s->kind == OP_CAS && status == RAFTKV_CAS_MISMATCH);
    uint64_t lat_us = (now - s->start_ns) / 1000u;
    if (ok) {
        hist_record(&st->latency_us, lat_us);
        if (status == RAFTKV_NOT_FOUND)
            atomic_fetch_add_explicit(&st->not_found, 1, memory_order_relaxed);
        if (status == RAFTKV_CAS_MISMATCH)
            atomic_fetch_add_explicit(&st->mismatch, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&st->errors, 1, memory_order_relaxed);
        errors_add(&d->errors, res ? res->error : "not started", status);
    }
    if (d->timeline)
        timeline_record(d->timeline, now, lat_us, ok);
    if (s->kind != OP_GET)
        account_write(d, s, status, res);
    if (status == RAFTKV_OK && (s->kind != OP_GET || !d->mix_writes))
        note_success(d, now);
}

static void report_violation(struct driver *d, struct slot *s, enum ledger_verdict v,
                             const struct raftkv_result *res, uint64_t n)
{
    if (n > REPORTED_VIOLATIONS)
        return;
    const struct ledger_key *k = &d->ledger.keys[s->key];
    fprintf(stderr,
            "raft-bench: %s: key %s: last acknowledged write %016" PRIx64 " at revision %" PRIu64
            "; read %.16s at revision %" PRIu64 "%s\n",
            v == LEDGER_LOST ? "LOST" : "UNEXPECTED", s->key_buf, k->write, k->rev,
            res->value_len >= LEDGER_ID_BYTES ? (const char *)res->value : "(no value)",
            res->mod_revision, n == REPORTED_VIOLATIONS ? " (further ones not shown)" : "");
}

/* Returns true to repeat the same operation. */
static bool account_verify(struct driver *d, struct slot *s, int status,
                           const struct raftkv_result *res)
{
    if (status != RAFTKV_OK && status != RAFTKV_NOT_FOUND) {
        if (res && ++s->tries < VERIFY_TRIES)
            return true;
        atomic_fetch_add(&d->unverified, 1);
        errors_add(&d->errors, res ? res->error : "not started", status);
        return false;
    }
    enum ledger_verdict v = ledger_judge(&d->ledger, s->key, status == RAFTKV_OK, res->value,
                                         res->value_len, res->mod_revision);
    uint64_t n = atomic_fetch_add(&d->verdicts[v], 1) + 1;
    if (v == LEDGER_LOST || v == LEDGER_UNEXPECTED)
        report_violation(d, s, v, res, n);
    return false;
}

/* Accounts for a finished operation; returns true to repeat it. */
static bool slot_account(struct slot *s, int status, const struct raftkv_result *res)
{
    struct driver *d = s->d;
    uint64_t now = now_ns();
    switch (d->phase) {
    case PHASE_PREFILL:
        if (status != RAFTKV_OK) {
            atomic_fetch_add(&d->prefill_errors, 1);
            errors_add(&d->errors, res ? res->error : "not started", status);
        }
        account_write(d, s, status, res);
        return false;
    case PHASE_RUN:
        account_run(d, s, status, res, now);
        return false;
    case PHASE_VERIFY:
        return account_verify(d, s, status, res);
    }
    return false;
}

static void slot_stopped(struct driver *d)
{
    pthread_mutex_lock(&d->mu);
    if (--d->active == 0) {
        d->phase_end_ns = now_ns();
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
}

/* Issues the slot's next operation (or the same again). */
static void slot_issue(struct slot *s)
{
    bool again = s->again;
    for (;;) {
        if (!again && !slot_next(s)) {
            slot_stopped(s->d);
            return;
        }
        int rv = slot_send(s);
        if (rv == RAFTKV_OK)
            return;
        again = slot_account(s, rv, NULL);
    }
}

static void queue_push(struct driver *d, struct slot *s)
{
    pthread_mutex_lock(&d->mu);
    d->queue[(d->q_head + d->q_len++) % d->o->clients] = s;
    pthread_cond_signal(&d->q_cv);
    pthread_mutex_unlock(&d->mu);
}

static void *worker_main(void *arg)
{
    struct driver *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->q_len && !d->q_quit)
            pthread_cond_wait(&d->q_cv, &d->mu);
        if (!d->q_len)
            break;
        struct slot *s = d->queue[d->q_head];
        d->q_head = (d->q_head + 1) % d->o->clients;
        d->q_len--;
        pthread_mutex_unlock(&d->mu);
        slot_issue(s);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void slot_continue(struct slot *s)
{
    if (s->d->o->workers)
        queue_push(s->d, s);
    else
        slot_issue(s);
}

static void on_complete(int status, const struct raftkv_result *res, void *arg)
{
    struct slot *s = arg;
    s->again = slot_account(s, status, res);
    slot_continue(s);
}

static int slots_init(struct driver *d)
{
    d->slots = calloc(d->o->clients, sizeof *d->slots);
    if (!d->slots)
        return ENOMEM;
    uint64_t seed = d->o->seed;
    for (unsigned i = 0; i < d->o->clients; i++) {
        struct slot *s = &d->slots[i];
        s->d = d;
        s->id = i;
        s->client = d->conns[i % d->o->conns];
        s->rng = seed * 1000003u + i;
        rng_next(&s->rng);
        s->value = malloc(d->o->value_size);
        s->expected_value = malloc(d->o->value_size);
        if (!s->value || !s->expected_value)
            return ENOMEM;
    }
    return 0;
}

static int workers_start(struct driver *d)
{
    d->queue = calloc(d->o->clients, sizeof *d->queue);
    d->workers = calloc(d->o->workers, sizeof *d->workers);
    if (!d->queue || !d->workers)
        return ENOMEM;
    for (unsigned i = 0; i < d->o->workers; i++) {
        int rv = pthread_create(&d->workers[i], NULL, worker_main, d);
        if (rv)
            return rv;
    }
    return 0;
}

int driver_init(struct driver *d, const struct bench_options *o, struct raftkv_client **conns)
{
    memset(d, 0, sizeof *d);
    d->o = o;
    d->conns = conns;
    for (int k = 0; k < N_KINDS; k++)
        d->mix_total += o->mix[k];
    d->mix_writes = o->mix[OP_PUT] || o->mix[OP_CAS];
    keyspace_init(&d->keyspace, o->keys, o->zipf);
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_init(&d->gap_mu, NULL);
    pthread_mutex_init(&d->errors.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&d->q_cv, NULL);
    int rv = ledger_init(&d->ledger, o->keys);
    for (int k = 0; !rv && k < N_KINDS; k++)
        rv = hist_init(&d->stats[k].latency_us, 8);
    if (!rv)
        rv = slots_init(d);
    if (!rv && o->workers)
        rv = workers_start(d);
    if (rv)
        fprintf(stderr, "raft-bench: setting up %u clients over %llu keys: %s\n", o->clients,
                (unsigned long long)o->keys, strerror(rv));
    return rv;
}

void driver_free(struct driver *d)
{
    if (d->workers) {
        pthread_mutex_lock(&d->mu);
        d->q_quit = true;
        pthread_cond_broadcast(&d->q_cv);
        pthread_mutex_unlock(&d->mu);
        for (unsigned i = 0; i < d->o->workers; i++) {
            if (d->workers[i])
                pthread_join(d->workers[i], NULL);
        }
    }
    free(d->workers);
    free(d->queue);
    for (unsigned i = 0; d->slots && i < d->o->clients; i++) {
        free(d->slots[i].value);
        free(d->slots[i].expected_value);
    }
    free(d->slots);
    for (int k = 0; k < N_KINDS; k++)
        hist_free(&d->stats[k].latency_us);
    ledger_free(&d->ledger);
    pthread_cond_destroy(&d->cv);
    pthread_cond_destroy(&d->q_cv);
    pthread_mutex_destroy(&d->mu);
    pthread_mutex_destroy(&d->gap_mu);
    pthread_mutex_destroy(&d->errors.mu);
}

void driver_run(struct driver *d, enum phase phase, void (*tick)(struct driver *, void *),
                void *arg)
{
    if (phase == PHASE_VERIFY)
        ledger_seal(&d->ledger);
    d->phase = phase;
    atomic_store(&d->next, 0);
    d->active = d->o->clients;
    d->start_ns = now_ns();
    d->end_ns = d->start_ns + (uint64_t)(d->o->duration_s * 1e9);
    for (unsigned i = 0; i < d->o->clients; i++) {
        d->slots[i].again = false;
        slot_continue(&d->slots[i]);
    }
    pthread_mutex_lock(&d->mu);
    while (d->active) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&d->cv, &d->mu, &ts);
        if (!d->active)
            break;
        pthread_mutex_unlock(&d->mu);
        tick(d, arg);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    tick(d, arg);
}

void driver_mark_fault(struct driver *d, uint64_t at_ns)
{
    pthread_mutex_lock(&d->gap_mu);
    d->gap_near = d->gap_after = (struct gap){0, 0};
    pthread_mutex_unlock(&d->gap_mu);
    atomic_store(&d->fault_ns, at_ns);
}

uint64_t driver_ops(const struct driver *d)
{
    uint64_t n = 0;
    for (int k = 0; k < N_KINDS; k++)
        n += hist_count(&d->stats[k].latency_us);
    return n;
}

uint64_t driver_errors(const struct driver *d)
{
    uint64_t n = 0;
    for (int k = 0; k < N_KINDS; k++)
        n += d->stats[k].errors;
    return n;
}
