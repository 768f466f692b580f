#include "lincheck.h"
#include "register_search.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_STEPS 100000000u
#define DEFAULT_MAX_BYTES (1u << 30)
/* Minimizing takes up to this many times the steps that found the violation, plus the
 * minimum, and at most this many times a key's search budget, before it settles for what
 * it has: a smaller witness is a convenience, the verdict is already known. */
#define MINIMIZE_STEPS_PER_FOUND 100
#define MINIMIZE_MIN_STEPS 20000000u
#define MINIMIZE_BUDGETS 10

/* One key's sub-history: ops[i] is h->ops[src[i]]. */
struct key_history {
    struct lin_op *ops;
    const size_t *src;
    size_t n;
    uint32_t n_values; /* value ids are 0 .. n_values - 1 */
};

static int bytes_cmp(const struct hist_bytes *a, const struct hist_bytes *b)
{
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return a->len ? memcmp(a->data, b->data, a->len) : 0;
}

/* A value slot of an operation, waiting for its number. */
struct value_ref {
    const struct hist_bytes *bytes;
    uint32_t *id;
};

static int value_ref_cmp(const void *a, const void *b)
{
    return bytes_cmp(((const struct value_ref *)a)->bytes, ((const struct value_ref *)b)->bytes);
}

static void add_ref(struct value_ref *refs, size_t *n, const struct hist_bytes *b, uint32_t *id)
{
    *id = 0;
    if (b->present)
        refs[(*n)++] = (struct value_ref){b, id};
}

/*
 * Values that no operation ever looks at (reads, expects in a cas, is shown by a mismatch)
 * cannot be told apart by any operation, so they all become one value, UNOBSERVED: a state
 * the search remembers once instead of once per value. Only the presence of such a value
 * matters (to a delete).
 */
#define UNOBSERVED 1

static int merge_unobserved_values(struct key_history *k, uint32_t n_distinct)
{
    uint32_t *renumber = calloc(n_distinct, sizeof *renumber);
    if (!renumber)
        return -1;
    for (size_t i = 0; i < k->n; i++) {
        const struct lin_op *op = &k->ops[i];
        renumber[op->result] = 1;
        if (op->kind == HIST_CAS)
            renumber[op->expect] = 1;
    }
    k->n_values = UNOBSERVED + 1;
    for (uint32_t v = 1; v < n_distinct; v++)
        renumber[v] = renumber[v] ? k->n_values++ : UNOBSERVED;
    renumber[0] = 0;
    for (size_t i = 0; i < k->n; i++) {
        struct lin_op *op = &k->ops[i];
        op->value = renumber[op->value];
        op->expect = renumber[op->expect];
        op->result = renumber[op->result];
    }
    free(renumber);
    return 0;
}

/* Numbers the values so that the search compares and remembers states as integers. */
static int key_history_init(struct key_history *k, const struct history *h, const size_t *src,
                            size_t n)
{
    *k = (struct key_history){.src = src, .n = n};
    k->ops = calloc(n ? n : 1, sizeof *k->ops);
    struct value_ref *refs = malloc((3 * n + 1) * sizeof *refs);
    if (!k->ops || !refs) {
        free(k->ops);
        free(refs);
        return -1;
    }
    size_t n_refs = 0;
    for (size_t i = 0; i < n; i++) {
        const struct hist_op *op = &h->ops[src[i]];
        struct lin_op *l = &k->ops[i];
        *l = (struct lin_op){.kind = op->kind, .outcome = op->outcome, .invoke = op->invoke_ns};
        l->complete = op->outcome == HIST_UNKNOWN ? UINT64_MAX : op->complete_ns;
        if (op->kind == HIST_PUT || op->kind == HIST_CAS)
            add_ref(refs, &n_refs, &op->value, &l->value);
        if (op->kind == HIST_CAS)
            add_ref(refs, &n_refs, &op->expect, &l->expect);
        if ((op->kind == HIST_GET && op->outcome == HIST_OK) || op->outcome == HIST_MISMATCH)
            add_ref(refs, &n_refs, &op->result, &l->result);
    }
    qsort(refs, n_refs, sizeof *refs, value_ref_cmp);
    uint32_t n_distinct = 1;
    for (size_t i = 0; i < n_refs; i++) {
        if (i > 0 && value_ref_cmp(&refs[i - 1], &refs[i]) != 0)
            n_distinct++;
        *refs[i].id = n_distinct;
    }
    free(refs);
    if (merge_unobserved_values(k, n_distinct + 1) == 0)
        return 0;
    free(k->ops);
    return -1;
}

/* What the operations of a selection observe: seen[v] for each value id (0: no key). */
struct observed {
    uint8_t *seen;
    bool delete_ok;
};

static void observe(const struct key_history *k, const uint32_t *sel, size_t m,
                    struct observed *obs)
{
    memset(obs->seen, 0, k->n_values);
    obs->delete_ok = false;
    for (size_t j = 0; j < m; j++) {
        const struct lin_op *op = &k->ops[sel[j]];
        if (op->outcome == HIST_FAILED)
            continue;
        if (op->kind == HIST_GET && op->outcome == HIST_OK)
            obs->seen[op->result] = 1;
        else if (op->outcome == HIST_NOTFOUND)
            obs->seen[0] = 1;
        else if (op->kind == HIST_DELETE && op->outcome == HIST_OK)
            obs->delete_ok = true;
        if (op->kind == HIST_CAS)
            obs->seen[op->expect] = 1;
        if (op->outcome == HIST_MISMATCH)
            obs->seen[op->result] = 1;
    }
}

/* See lincheck_droppable in lincheck.h for why this is sound. */
static bool droppable(const struct lin_op *op, const struct observed *obs)
{
    if (op->outcome == HIST_FAILED || op->outcome == HIST_NOTFOUND ||
        op->outcome == HIST_MISMATCH || op->kind == HIST_GET)
        return true;
    if (op->kind == HIST_DELETE)
        return !obs->seen[0];
    return !obs->seen[op->value] && !obs->delete_ok;
}

/* ---- Per key ---- */

/* Leaves out what cannot matter to the verdict: failed operations, reads of unknown outcome,
 * and unknown writes nothing observes (each such drop may make another write unobserved). */
static size_t select_relevant(const struct key_history *k, uint32_t *sel, uint8_t *seen)
{
    size_t m = 0;
    for (size_t i = 0; i < k->n; i++) {
        const struct lin_op *op = &k->ops[i];
        if (op->outcome == HIST_FAILED || (op->outcome == HIST_UNKNOWN && op->kind == HIST_GET))
            continue;
        sel[m++] = (uint32_t)i;
    }
    struct observed obs = {.seen = seen};
    for (bool dropped = true; dropped;) {
        dropped = false;
        observe(k, sel, m, &obs);
        size_t kept = 0;
        for (size_t j = 0; j < m; j++) {
            const struct lin_op *op = &k->ops[sel[j]];
            if (op->outcome == HIST_UNKNOWN && droppable(op, &obs))
                dropped = true;
            else
                sel[kept++] = sel[j];
        }
        m = kept;
    }
    return m;
}

/*
 * An unknown write of a value nothing else writes, which an operation of known outcome found
 * in place (read it, expected it in a successful cas, or was shown it by a mismatch), took
 * effect before that operation completed: it gets that completion time and is then searched
 * like an operation of known outcome. Left pending to the end, each such write would double
 * the states the search remembers from its invocation on.
 */
static int bound_unknown_writes(struct key_history *k, const uint32_t *sel, size_t m)
{
    uint32_t *writers = calloc(k->n_values, sizeof *writers);
    uint64_t *needed_by = malloc(k->n_values * sizeof *needed_by);
    if (!writers || !needed_by) {
        free(writers);
        free(needed_by);
        return -1;
    }
    for (uint32_t v = 0; v < k->n_values; v++)
        needed_by[v] = UINT64_MAX;
    for (size_t j = 0; j < m; j++) {
        const struct lin_op *op = &k->ops[sel[j]];
        uint32_t found = 0;
        if (op->kind == HIST_PUT || (op->kind == HIST_CAS && op->outcome != HIST_MISMATCH))
            writers[op->value]++;
        if ((op->kind == HIST_GET && op->outcome == HIST_OK) || op->outcome == HIST_MISMATCH)
            found = op->result;
        else if (op->kind == HIST_CAS && op->outcome == HIST_OK)
            found = op->expect;
        if (found && op->complete < needed_by[found])
            needed_by[found] = op->complete;
    }
    for (size_t j = 0; j < m; j++) {
        struct lin_op *op = &k->ops[sel[j]];
        if (op->outcome != HIST_UNKNOWN || op->kind == HIST_DELETE || writers[op->value] != 1 ||
            needed_by[op->value] == UINT64_MAX)
            continue;
        /* Found before it was invoked: a point interval, and the search reports why. */
        op->complete = needed_by[op->value] > op->invoke ? needed_by[op->value] : op->invoke;
    }
    free(writers);
    free(needed_by);
    return 0;
}

/* Searches the operations sel[0..m) of k on their own: unknown writes are bounded by what
 * these operations found, not by any left out. */
static enum lincheck_verdict check_selection(struct key_history *k, const uint32_t *sel, size_t m,
                                             const struct lincheck_options *o, uint64_t *steps)
{
    for (size_t j = 0; j < m; j++)
        if (k->ops[sel[j]].outcome == HIST_UNKNOWN)
            k->ops[sel[j]].complete = UINT64_MAX;
    if (bound_unknown_writes(k, sel, m) < 0)
        return LINCHECK_UNKNOWN;
    return register_search(k->ops, sel, m, o->max_steps, o->max_bytes, steps);
}

static struct lincheck_options options_or_defaults(const struct lincheck_options *o)
{
    struct lincheck_options d = o ? *o : (struct lincheck_options){0};
    if (!d.max_steps)
        d.max_steps = DEFAULT_MAX_STEPS;
    if (!d.max_bytes)
        d.max_bytes = DEFAULT_MAX_BYTES;
    return d;
}

/* One round of delta debugging: drops chunks of droppable operations (and with weaken,
 * turns the deletes that cannot be dropped into deletes of unknown outcome), halving the
 * chunk size, for as long as what is left is still not linearizable. */
static size_t minimize_round(struct key_history *k, uint32_t *sel, size_t m, bool weaken,
                             struct observed *obs, const struct lincheck_options *o, uint64_t limit,
                             uint64_t *steps)
{
    uint32_t *trial = malloc((m + 1) * sizeof *trial);
    uint32_t *weakened = malloc((m + 1) * sizeof *weakened);
    uint64_t *completed = malloc((m + 1) * sizeof *completed);
    for (size_t chunk = m > 1 ? m / 2 : 1; trial && weakened && completed && chunk > 0;) {
        bool changed = false;
        for (size_t start = 0; start < m && *steps < limit;) {
            observe(k, sel, m, obs);
            size_t n_trial = 0, n_weak = 0;
            for (size_t j = 0; j < m; j++) {
                struct lin_op *op = &k->ops[sel[j]];
                bool in_chunk = j >= start && j < start + chunk;
                if (in_chunk && droppable(op, obs))
                    continue;
                trial[n_trial++] = sel[j];
                if (weaken && in_chunk && op->kind == HIST_DELETE && op->outcome == HIST_OK) {
                    weakened[n_weak] = sel[j];
                    completed[n_weak++] = op->complete;
                    op->outcome = HIST_UNKNOWN;
                }
            }
            if ((n_trial < m || n_weak > 0) &&
                check_selection(k, trial, n_trial, o, steps) == LINCHECK_VIOLATION) {
                memcpy(sel, trial, n_trial * sizeof *sel);
                m = n_trial;
                changed = true;
                continue;
            }
            for (size_t w = 0; w < n_weak; w++) {
                k->ops[weakened[w]].outcome = HIST_OK;
                k->ops[weakened[w]].complete = completed[w];
            }
            start += chunk;
        }
        if (*steps >= limit)
            break;
        if (!changed)
            chunk /= 2;
    }
    free(completed);
    free(weakened);
    free(trial);
    return m;
}

/*
 * Finds a small part of a key's sub-history that is still not linearizable: drops what can
 * be dropped (lincheck_droppable), then also weakens deletes to an unknown outcome, which
 * is sound too (the same linearization serves) and lets go of the writes that only a
 * delete observed: what is left is then not linearizable with the deletes' outcomes as
 * reported either. Each search may take a few times the steps that found the violation.
 * On a history of thousands of operations this may stop short of a small part.
 */
static size_t minimize(struct key_history *k, uint32_t *sel, size_t m, uint8_t *seen,
                       const struct lincheck_options *o, uint64_t found_in, uint64_t *steps)
{
    struct lincheck_options trial = *o;
    trial.max_steps = 4 * found_in + 100000;
    if (trial.max_steps > o->max_steps)
        trial.max_steps = o->max_steps;
    uint64_t budget = MINIMIZE_STEPS_PER_FOUND * found_in + MINIMIZE_MIN_STEPS;
    if (budget > MINIMIZE_BUDGETS * o->max_steps)
        budget = MINIMIZE_BUDGETS * o->max_steps;
    uint64_t limit = *steps + budget;
    struct observed obs = {.seen = seen};
    m = minimize_round(k, sel, m, false, &obs, &trial, limit, steps);
    return minimize_round(k, sel, m, true, &obs, &trial, limit, steps);
}

static enum lincheck_verdict check_key(const struct history *h, const size_t *src, size_t n,
                                       const struct lincheck_options *o, bool minimizing,
                                       uint64_t *steps, struct lincheck_result *res)
{
    struct key_history k;
    uint32_t *sel = malloc((n + 1) * sizeof *sel);
    if (!sel || key_history_init(&k, h, src, n) < 0) {
        free(sel);
        return LINCHECK_UNKNOWN;
    }
    enum lincheck_verdict v = LINCHECK_UNKNOWN;
    uint8_t *seen = malloc(k.n_values);
    if (seen) {
        size_t m = select_relevant(&k, sel, seen);
        uint64_t before = *steps;
        v = check_selection(&k, sel, m, o, steps);
        if (v == LINCHECK_VIOLATION && res) {
            if (minimizing)
                m = minimize(&k, sel, m, seen, o, *steps - before, steps);
            res->witness = malloc((m + 1) * sizeof *res->witness);
            for (size_t j = 0; res->witness && j < m; j++)
                res->witness[j] = src[sel[j]];
            res->n_witness = res->witness ? m : 0;
        }
    }
    free(seen);
    free(sel);
    free(k.ops);
    return v;
}

bool lincheck_droppable(const struct history *h, const size_t *ops, size_t n, size_t i)
{
    struct key_history k;
    if (key_history_init(&k, h, ops, n) < 0)
        return false;
    uint32_t *sel = malloc((n + 1) * sizeof *sel);
    struct observed obs = {.seen = malloc(k.n_values)};
    bool ok = false;
    if (sel && obs.seen) {
        for (size_t j = 0; j < n; j++)
            sel[j] = (uint32_t)j;
        observe(&k, sel, n, &obs);
        ok = droppable(&k.ops[i], &obs);
    }
    free(obs.seen);
    free(sel);
    free(k.ops);
    return ok;
}

/* ---- The whole history ---- */

static const struct history *sort_history; /* qsort has no context argument in C11 */

static int by_key_then_index(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = bytes_cmp(&sort_history->ops[x].key, &sort_history->ops[y].key);
    return c ? c : (x > y) - (x < y);
}

enum lincheck_verdict lincheck_history(const struct history *h, const struct lincheck_options *o,
                                       struct lincheck_result *res)
{
    struct lincheck_options d = options_or_defaults(o);
    *res = (struct lincheck_result){.verdict = LINCHECK_OK};
    size_t *order = malloc((h->n + 1) * sizeof *order);
    if (!order)
        return res->verdict = LINCHECK_UNKNOWN;
    for (size_t i = 0; i < h->n; i++)
        order[i] = i;
    sort_history = h;
    qsort(order, h->n, sizeof *order, by_key_then_index);
    for (size_t start = 0, end; start < h->n; start = end) {
        for (end = start + 1; end < h->n; end++)
            if (bytes_cmp(&h->ops[order[start]].key, &h->ops[order[end]].key))
                break;
        res->keys++;
        struct lincheck_result key_res = {0};
        enum lincheck_verdict v =
            check_key(h, &order[start], end - start, &d, !d.no_minimize, &res->steps, &key_res);
        if (v == LINCHECK_OK || (v == LINCHECK_UNKNOWN && res->verdict == LINCHECK_UNKNOWN))
            continue;
        res->verdict = v;
        res->key_op = order[start];
        res->key_ops = end - start;
        res->witness = key_res.witness;
        res->n_witness = key_res.n_witness;
        if (v == LINCHECK_VIOLATION)
            break;
    }
    free(order);
    return res->verdict;
}

void lincheck_result_free(struct lincheck_result *res)
{
    free(res->witness);
    res->witness = NULL;
    res->n_witness = 0;
}

static void print_ms(FILE *f, uint64_t t, uint64_t origin)
{
    fprintf(f, " %12.3f", (double)(t - origin) / 1e6);
}

void lincheck_result_print(FILE *f, const struct history *h, const struct lincheck_result *res)
{
    if (res->verdict == LINCHECK_OK) {
        fprintf(f, "linearizable: %zu operations on %zu keys\n", h->n, res->keys);
        return;
    }
    fputs(res->verdict == LINCHECK_UNKNOWN ? "unknown: budget exhausted on key "
                                           : "not linearizable: key ",
          f);
    history_print_bytes(f, &h->ops[res->key_op].key);
    fprintf(f, " (%zu operations)\n", res->key_ops);
    if (res->verdict == LINCHECK_UNKNOWN)
        return;
    uint64_t origin = UINT64_MAX;
    for (size_t i = 0; i < h->n; i++)
        origin = h->ops[i].invoke_ns < origin ? h->ops[i].invoke_ns : origin;
    fprintf(f,
            "%zu of them are not linearizable on their own (times in ms after the "
            "history's first invocation;\nan unknown operation may take effect at any time "
            "after its invocation, or never):\n",
            res->n_witness);
    fprintf(f, "%6s %6s %12s %12s  operation\n", "line", "client", "invoked", "completed");
    for (size_t j = 0; j < res->n_witness; j++) {
        const struct hist_op *op = &h->ops[res->witness[j]];
        fprintf(f, "%6u %6" PRIu64, op->line, op->client);
        print_ms(f, op->invoke_ns, origin);
        if (op->outcome == HIST_UNKNOWN)
            fprintf(f, " %12s", "-");
        else
            print_ms(f, op->complete_ns, origin);
        fputs("  ", f);
        history_print_call(f, op);
        fputc('\n', f);
    }
}
