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
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "history.h"

#define NEVER UINT64_MAX

struct figures {
    size_t ok, failed, unknown, lost, unread, heals, unserved;
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
    rc = count_heals(&h, heals, &f);
    if (heals)
        fclose(heals);
    if (rc == 0)
        printf("ops=%zu ok=%zu failed=%zu unknown=%zu lost=%zu unread=%zu heals=%zu "
               "unserved=%zu heal_ms=%" PRIu64 " gap_ms=%" PRIu64 "\n",
               h.n, f.ok, f.failed, f.unknown, f.lost, f.unread, f.heals, f.unserved,
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
