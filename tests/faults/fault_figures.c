/*
 * fault-figures: the figures of one fault run, from its history and its heal times.
 *
 *     fault-figures --now                 print CLOCK_MONOTONIC in ns (kv-workload's clock)
 *     fault-figures HISTORY [HEALS]       print the figures as key=value pairs on one line
 *
 * HEALS holds one "heal NS" line per healed fault (other lines are ignored), NS taken with
 * --now. The figures:
 *   ops, ok, failed, unknown   operations by outcome; ok is any answer of the cluster
 *                              (ok, notfound, mismatch)
 *   lost                       acknowledged writes the final reads show were lost (below)
 *   stale                      reads of a value overwritten before they began (below)
 *   unread                     keys whose final read got no answer
 *   heals, unserved            heals, and heals after which no write succeeded at all
 *   heal_ms                    the longest time from a heal to the next successful write
 *   gap_ms                     the longest time between two successful writes
 * The final reads are client 0's gets (kv-workload reads every key once more after its
 * clients stop). Values are unique, so a value read names the write that wrote it. An
 * acknowledged write (put, cas or delete answered ok) is counted lost when the final read of
 * its key shows the effect of a write that completed, acknowledged, before it was invoked:
 * the value of such a put or cas, or "not found" when every delete was acknowledged
 * before it. A value no operation wrote loses every acknowledged write of its key. This
 * cannot blame a write overwritten by one of unknown outcome, and looks at the final state
 * only; lincheck judges the whole history.
 * A read (a get, a cas's expected value or a mismatch's current value) is stale when the
 * value it saw had been seen (read, or acknowledged as written) before an acknowledged
 * write of the key began, and that write completed before the read began: the mark of a
 * write applied twice (issue 11) or of a stale read. So is a read of a value that no put
 * or cas of ok or unknown outcome wrote (a cas answered "mismatch" with its own new value).
 * The first one found goes to stderr, in a few lines a reader can follow, where lincheck's
 * witness may hold thousands.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "history.h"

#define NEVER UINT64_MAX

struct figures {
    size_t ok, failed, unknown, lost, stale, unread, heals, unserved;
    uint64_t heal_ns, gap_ns;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool is_write(const struct hist_op *op)
{
    return op->kind != HIST_GET;
}

static bool acknowledged_write(const struct hist_op *op)
{
    return is_write(op) && op->outcome == HIST_OK;
}

static bool same_key(const struct hist_op *a, const struct hist_op *b)
{
    return hist_bytes_equal(&a->key, &b->key);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* When the state the final read r saw was last written: the completion of the write that
 * wrote it, NEVER when that write's outcome is unknown (it may take effect at any time), 0
 * when no write did (nothing acknowledged may precede it). */
static uint64_t state_written_at(const struct history *h, const struct hist_op *r)
{
    uint64_t at = 0;
    for (size_t i = 0; i < h->n; i++) {
        const struct hist_op *w = &h->ops[i];
        if (!is_write(w) || !same_key(w, r) || w->outcome == HIST_FAILED)
            continue;
        bool wrote_it = r->outcome == HIST_OK
                            ? w->kind != HIST_DELETE && w->outcome != HIST_MISMATCH &&
                                  hist_bytes_equal(&w->value, &r->result)
                            : w->kind == HIST_DELETE && w->outcome != HIST_NOTFOUND;
        if (!wrote_it)
            continue;
        if (w->outcome == HIST_UNKNOWN)
            return NEVER;
        if (r->outcome == HIST_OK)
            return w->complete_ns; /* values are unique */
        at = at > w->complete_ns ? at : w->complete_ns;
    }
    /* A value nobody wrote: the state predates every write. */
    return at;
}

static void count_lost(const struct history *h, struct figures *f)
{
    for (size_t i = 0; i < h->n; i++) {
        const struct hist_op *r = &h->ops[i];
        if (r->client != 0 || r->kind != HIST_GET)
            continue;
        if (r->outcome == HIST_UNKNOWN) {
            f->unread++;
            continue;
        }
        uint64_t at = state_written_at(h, r);
        for (size_t j = 0; at != NEVER && j < h->n; j++) {
            const struct hist_op *w = &h->ops[j];
            f->lost += acknowledged_write(w) && same_key(w, r) && w->invoke_ns > at;
        }
    }
}

/* A value seen (by a read) or written (by an acknowledged put or cas), when, and by whom. */
struct sighting {
    const struct hist_bytes *value;
    uint64_t at; /* completion */
    size_t op;
    bool read;
};

static int bytes_cmp(const struct hist_bytes *a, const struct hist_bytes *b)
{
    if (a->present != b->present)
        return (int)a->present - (int)b->present;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->data, b->data, n) : 0;
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int by_value_then_time(const void *a, const void *b)
{
    const struct sighting *x = a, *y = b;
    int c = bytes_cmp(x->value, y->value);
    return c ? c : cmp_u64(&x->at, &y->at);
}

/* qsort's comparators take no argument: the history whose operations they order. */
static const struct history *sorting;

static int by_key(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = bytes_cmp(&sorting->ops[i].key, &sorting->ops[j].key);
    return c ? c : (i > j) - (i < j);
}

static int by_invoke(const void *a, const void *b)
{
    return cmp_u64(&sorting->ops[*(const size_t *)a].invoke_ns,
                   &sorting->ops[*(const size_t *)b].invoke_ns);
}

/* The value op saw in place, if it saw one. */
static const struct hist_bytes *seen_value(const struct hist_op *op)
{
    if (op->kind == HIST_GET && op->outcome == HIST_OK)
        return &op->result;
    if (op->kind == HIST_CAS && op->outcome == HIST_MISMATCH && op->result.present)
        return &op->result;
    if (op->kind == HIST_CAS && op->outcome == HIST_OK && op->expect.present)
        return &op->expect;
    return NULL;
}

static void print_op(const struct history *h, size_t i, uint64_t origin)
{
    const struct hist_op *op = &h->ops[i];
    fprintf(stderr, "  line %u client %" PRIu64 ", %.3f-%.3f ms: ", op->line, op->client,
            (double)(op->invoke_ns - origin) / 1e6, (double)(op->complete_ns - origin) / 1e6);
    history_print_call(stderr, op);
    fputc('\n', stderr);
}

/* One key's operations (ops[0..n), indices): its sightings sorted by value and time, the
 * puts and cas that may have written a value (ok or unknown: may[0..n_may), sorted by
 * value), and its acknowledged writes by invocation with, for each, the one that completed
 * first from there on (first_done). */
struct key_scan {
    const size_t *ops;
    size_t n, n_seen, n_may, n_acked;
    struct sighting *seen, *may;
    size_t *acked, *first_done;
    uint64_t origin;
};

static void scan_key(const struct history *h, struct key_scan *k)
{
    k->n_seen = k->n_may = k->n_acked = 0;
    k->origin = UINT64_MAX;
    for (size_t i = 0; i < k->n; i++) {
        size_t o = k->ops[i];
        const struct hist_op *op = &h->ops[o];
        const struct hist_bytes *v = seen_value(op);
        bool writes_value = op->kind == HIST_PUT || op->kind == HIST_CAS;
        k->origin = op->invoke_ns < k->origin ? op->invoke_ns : k->origin;
        if (v)
            k->seen[k->n_seen++] = (struct sighting){v, op->complete_ns, o, true};
        if (acknowledged_write(op) && writes_value)
            k->seen[k->n_seen++] = (struct sighting){&op->value, op->complete_ns, o, false};
        if (writes_value && (op->outcome == HIST_OK || op->outcome == HIST_UNKNOWN))
            k->may[k->n_may++] = (struct sighting){&op->value, 0, o, false};
        if (acknowledged_write(op))
            k->acked[k->n_acked++] = o;
    }
    qsort(k->seen, k->n_seen, sizeof *k->seen, by_value_then_time);
    qsort(k->may, k->n_may, sizeof *k->may, by_value_then_time);
    qsort(k->acked, k->n_acked, sizeof *k->acked, by_invoke);
    for (size_t p = k->n_acked; p-- > 0;) {
        size_t next = p + 1 < k->n_acked ? k->first_done[p + 1] : k->acked[p];
        bool sooner = h->ops[k->acked[p]].complete_ns <= h->ops[next].complete_ns;
        k->first_done[p] = sooner ? k->acked[p] : next;
    }
}

/* The acknowledged write that completed first of those invoked after t, if any. */
static bool overwritten_after(const struct history *h, const struct key_scan *k, uint64_t t,
                              size_t *w)
{
    size_t lo = 0, hi = k->n_acked;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (h->ops[k->acked[mid]].invoke_ns <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < k->n_acked)
        *w = k->first_done[lo];
    return lo < k->n_acked;
}

static bool may_be_written(const struct key_scan *k, const struct hist_bytes *v)
{
    struct sighting probe = {v, 0, 0, false};
    return bsearch(&probe, k->may, k->n_may, sizeof probe, by_value_then_time) != NULL;
}

static void report_stale(const struct history *h, const struct key_scan *k, size_t first, size_t w,
                         size_t read, struct figures *f)
{
    if (f->stale++)
        return;
    fprintf(stderr, "stale read: a value seen again after a later write completed (a write "
                    "applied twice, or a stale read; ms after the key's first operation):\n");
    print_op(h, first, k->origin);
    print_op(h, w, k->origin);
    print_op(h, read, k->origin);
}

static void report_phantom(const struct history *h, const struct key_scan *k, size_t read,
                           struct figures *f)
{
    if (f->stale++)
        return;
    fprintf(stderr, "stale read: a value no put or cas of ok or unknown outcome wrote (a cas "
                    "answered mismatch with its own new value is a retried cas applied "
                    "twice; ms after the key's first operation):\n");
    print_op(h, read, k->origin);
}

/* Each sighting by a read against the first sighting of its value. */
static void count_stale_key(const struct history *h, struct key_scan *k, struct figures *f)
{
    scan_key(h, k);
    for (size_t i = 0, first = 0; i < k->n_seen; i++) {
        const struct sighting *s = &k->seen[i];
        if (bytes_cmp(s->value, k->seen[first].value))
            first = i;
        size_t w;
        if (!s->read)
            continue;
        if (!may_be_written(k, s->value))
            report_phantom(h, k, s->op, f);
        else if (overwritten_after(h, k, k->seen[first].at, &w) &&
                 h->ops[w].complete_ns < h->ops[s->op].invoke_ns)
            report_stale(h, k, k->seen[first].op, w, s->op, f);
    }
}

static int count_stale(const struct history *h, struct figures *f)
{
    size_t n = h->n + 1, *ops = malloc(n * sizeof *ops);
    struct key_scan k = {.seen = malloc(2 * n * sizeof *k.seen),
                         .may = malloc(n * sizeof *k.may),
                         .acked = malloc(n * sizeof *k.acked),
                         .first_done = malloc(n * sizeof *k.first_done)};
    int rc = ops && k.seen && k.may && k.acked && k.first_done ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < h->n; i++)
        ops[i] = i;
    sorting = h;
    if (rc == 0)
        qsort(ops, h->n, sizeof *ops, by_key);
    for (size_t i = 0, j; rc == 0 && i < h->n; i = j) {
        for (j = i + 1; j < h->n && !bytes_cmp(&h->ops[ops[i]].key, &h->ops[ops[j]].key);)
            j++;
        k.ops = ops + i;
        k.n = j - i;
        count_stale_key(h, &k, f);
    }
    free(ops);
    free(k.seen);
    free(k.may);
    free(k.acked);
    free(k.first_done);
    return rc;
}

/* The completion times of the acknowledged writes, sorted; *n of them. */
static uint64_t *write_times(const struct history *h, size_t *n)
{
    uint64_t *t = malloc((h->n + 1) * sizeof *t);
    if (!t)
        return NULL;
    *n = 0;
    for (size_t i = 0; i < h->n; i++)
        if (acknowledged_write(&h->ops[i]))
            t[(*n)++] = h->ops[i].complete_ns;
    qsort(t, *n, sizeof *t, cmp_u64);
    return t;
}

static void count_heal(uint64_t heal, const uint64_t *t, size_t n, struct figures *f)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t[mid] <= heal)
            lo = mid + 1;
        else
            hi = mid;
    }
    f->heals++;
    if (lo == n)
        f->unserved++;
    else if (t[lo] - heal > f->heal_ns)
        f->heal_ns = t[lo] - heal;
}

static int count_heals(const struct history *h, FILE *heals, struct figures *f)
{
    size_t n;
    uint64_t *t = write_times(h, &n);
    if (!t)
        return -1;
    for (size_t i = 1; i < n; i++)
        if (t[i] - t[i - 1] > f->gap_ns)
            f->gap_ns = t[i] - t[i - 1];
    char line[256];
    uint64_t heal;
    while (heals && fgets(line, sizeof line, heals))
        if (sscanf(line, "heal %" SCNu64, &heal) == 1)
            count_heal(heal, t, n, f);
    free(t);
    return 0;
}

static int figures_of(const char *history, const char *heals_path)
{
    FILE *fh = fopen(history, "r");
    if (!fh) {
        perror(history);
        return 2;
    }
    struct history h;
    char err[512];
    int rc = history_load(fh, &h, err, sizeof err);
    fclose(fh);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", history, err);
        return 2;
    }
    FILE *heals = heals_path ? fopen(heals_path, "r") : NULL;
    if (heals_path && !heals) {
        perror(heals_path);
        history_free(&h);
        return 2;
    }
    struct figures f = {0};
    for (size_t i = 0; i < h.n; i++) {
        enum hist_outcome o = h.ops[i].outcome;
        f.failed += o == HIST_FAILED;
        f.unknown += o == HIST_UNKNOWN;
    }
    f.ok = h.n - f.failed - f.unknown;
    count_lost(&h, &f);
    rc = count_stale(&h, &f);
    if (rc == 0)
        rc = count_heals(&h, heals, &f);
    if (heals)
        fclose(heals);
    if (rc == 0)
        printf("ops=%zu ok=%zu failed=%zu unknown=%zu lost=%zu stale=%zu unread=%zu heals=%zu "
               "unserved=%zu heal_ms=%" PRIu64 " gap_ms=%" PRIu64 "\n",
               h.n, f.ok, f.failed, f.unknown, f.lost, f.stale, f.unread, f.heals, f.unserved,
               f.heal_ns / 1000000, f.gap_ns / 1000000);
    history_free(&h);
    return rc == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--now")) {
        printf("%" PRIu64 "\n", now_ns());
        return 0;
    }
    if (argc < 2 || argc > 3 || argv[1][0] == '-') {
        fprintf(stderr, "usage: fault-figures --now | fault-figures HISTORY [HEALS]\n");
        return 2;
    }
    return figures_of(argv[1], argc == 3 ? argv[2] : NULL);
}
