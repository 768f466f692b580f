/*
 * Lowe's variant of the Wing & Gong search ("Testing for linearizability", 2017), as in
 * Porcupine: operations are lifted one at a time out of a list of call and return events;
 * reaching a return whose operation is still in the list means the choices so far cannot
 * be completed, so the last one is undone and the next candidate tried. Every (set of
 * operations linearized, state) reached is remembered, so no state is explored twice.
 *
 * Operations of unknown outcome that could not be bounded (complete == UINT64_MAX) have no
 * return event and wait in a list of their own. Three rules keep them from multiplying the
 * states, none of which loses a linearization:
 *  - they are tried before the operations of known outcome, as in Lowe's single list,
 *    where the calls still pending since long come first;
 *  - one that would change nothing now is not tried: leaving it to the end is the same;
 *  - of several with the same effect, the earliest invoked goes first: it may go wherever
 *    a later one may.
 * And a state reached with a set of them linearized is not explored again when it was
 * reached before with a subset of that set: a subset only leaves more to choose from later
 * (nothing has to wait for an unknown operation).
 */
#include "register_search.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool register_step(const struct lin_op *op, uint32_t s, uint32_t *next)
{
    *next = s;
    switch (op->kind) {
    case HIST_PUT:
        *next = op->value;
        return true;
    case HIST_GET:
        if (op->outcome == HIST_UNKNOWN)
            return true;
        return s == (op->outcome == HIST_OK ? op->result : 0);
    case HIST_DELETE:
        if (op->outcome == HIST_NOTFOUND)
            return s == 0;
        *next = 0;
        return op->outcome == HIST_UNKNOWN || s != 0;
    case HIST_CAS:
        if (op->outcome == HIST_MISMATCH)
            return s == op->result && s != op->expect;
        if (s == op->expect) {
            *next = op->value;
            return true;
        }
        return op->outcome == HIST_UNKNOWN;
    }
    return false;
}

#define NO_TWIN UINT32_MAX

struct event {
    struct event *prev, *next;
    struct event *match; /* a call's return; NULL for an unknown operation */
    uint64_t time;
    uint32_t op;  /* index into sel */
    uint32_t bit; /* in the set of known operations, or of unknown ones */
    bool call, unknown;
};

/* A remembered state: the known set from its first word that is not all ones (the words
 * before it are) up to its last nonzero word, then the whole unknown set. */
struct cache_slot {
    uint64_t hash;
    uint64_t record; /* 1 + offset in the arena; 0 when free */
    uint32_t state;
};

struct search {
    const struct lin_op *ops;
    const uint32_t *sel;
    struct event head;  /* of the known operations' calls and returns, by time */
    struct event uhead; /* of the unknown operations' calls, by time */
    struct event *events;
    uint32_t *twin; /* per unknown bit: the bit of the previous one with its effect */
    uint64_t *kset, *uset;
    size_t kwords, uwords;
    size_t lo, hi; /* kset's first word not all ones; one past its last nonzero word */
    uint64_t hash; /* of kset */
    struct cache_slot *slots;
    size_t cap, used;
    uint64_t *arena;
    size_t arena_used, arena_cap;
    uint64_t max_bytes;
    struct event **stack;
    uint32_t *stack_state;
    size_t n_known;
};

/* ---- Remembered states ---- */

static uint64_t zobrist(uint64_t i)
{
    uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t cache_bytes(const struct search *s)
{
    return s->cap * sizeof *s->slots + s->arena_cap * sizeof *s->arena;
}

static int cache_grow(struct search *s)
{
    size_t cap = s->cap * 2;
    if (cache_bytes(s) + s->cap * sizeof *s->slots > s->max_bytes)
        return -1;
    struct cache_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->slots[i].record)
            continue;
        size_t j = s->slots[i].hash & (cap - 1);
        while (slots[j].record)
            j = (j + 1) & (cap - 1);
        slots[j] = s->slots[i];
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

enum record_match { RECORD_OTHER, RECORD_SUBSET, RECORD_SUPERSET };

/* How a record compares with the current sets: another known set; or the same one, with a
 * subset (or equal) unknown set, or a strict superset. */
static enum record_match record_match(const struct search *s, const uint64_t *rec)
{
    size_t n = s->hi - s->lo;
    if (rec[0] != ((uint64_t)s->lo << 32 | n) || memcmp(rec + 1, s->kset + s->lo, n * 8))
        return RECORD_OTHER;
    bool subset = true, superset = true;
    for (size_t w = 0; w < s->uwords; w++) {
        subset = subset && !(rec[1 + n + w] & ~s->uset[w]);
        superset = superset && !(s->uset[w] & ~rec[1 + n + w]);
    }
    return subset ? RECORD_SUBSET : superset ? RECORD_SUPERSET : RECORD_OTHER;
}

/* 1 when the current sets and state are new, and now remembered; 0 when they were reached
 * before (with a subset of the unknown set); -1 when out of budget. A record they subsume
 * is replaced, so that the records of one known set stay few. */
static int cache_visit(struct search *s, uint32_t state)
{
    uint64_t hash = s->hash ^ (state * 0x9e3779b97f4a7c15ull);
    size_t j = hash & (s->cap - 1), replace = SIZE_MAX;
    for (; s->slots[j].record; j = (j + 1) & (s->cap - 1)) {
        const struct cache_slot *slot = &s->slots[j];
        if (slot->hash != hash || slot->state != state)
            continue;
        enum record_match m = record_match(s, &s->arena[slot->record - 1]);
        if (m == RECORD_SUBSET)
            return 0;
        if (m == RECORD_SUPERSET && replace == SIZE_MAX)
            replace = j;
    }
    size_t n = s->hi - s->lo, len = 1 + n + s->uwords;
    if (s->arena_used + len > s->arena_cap) {
        size_t cap = 2 * s->arena_cap + len;
        if (cache_bytes(s) + (cap - s->arena_cap) * sizeof *s->arena > s->max_bytes)
            return -1;
        uint64_t *arena = realloc(s->arena, cap * sizeof *arena);
        if (!arena)
            return -1;
        s->arena = arena;
        s->arena_cap = cap;
    }
    uint64_t *rec = &s->arena[s->arena_used];
    rec[0] = (uint64_t)s->lo << 32 | n;
    memcpy(rec + 1, s->kset + s->lo, n * 8);
    memcpy(rec + 1 + n, s->uset, s->uwords * 8);
    s->slots[replace != SIZE_MAX ? replace : j] =
        (struct cache_slot){hash, s->arena_used + 1, state};
    s->arena_used += len;
    if (replace == SIZE_MAX && ++s->used * 2 > s->cap && cache_grow(s) < 0)
        return -1;
    return 1;
}

/* ---- The sets ---- */

static void mark(struct search *s, const struct event *e)
{
    if (e->unknown) {
        s->uset[e->bit / 64] |= 1ull << (e->bit % 64);
        return;
    }
    size_t w = e->bit / 64;
    s->kset[w] |= 1ull << (e->bit % 64);
    s->hash ^= zobrist(e->bit);
    while (s->lo < s->kwords && s->kset[s->lo] == UINT64_MAX)
        s->lo++;
    if (w + 1 > s->hi)
        s->hi = w + 1;
}

static void unmark(struct search *s, const struct event *e)
{
    if (e->unknown) {
        s->uset[e->bit / 64] &= ~(1ull << (e->bit % 64));
        return;
    }
    size_t w = e->bit / 64;
    s->kset[w] &= ~(1ull << (e->bit % 64));
    s->hash ^= zobrist(e->bit);
    if (w < s->lo)
        s->lo = w;
    while (s->hi > s->lo && !s->kset[s->hi - 1])
        s->hi--;
}

/* ---- The event lists ---- */

static void unlink_event(struct event *e)
{
    e->prev->next = e->next;
    if (e->next)
        e->next->prev = e->prev;
}

static void relink_event(struct event *e)
{
    e->prev->next = e;
    if (e->next)
        e->next->prev = e;
}

/* Takes an operation out of its list; restore puts it back (in LIFO order). */
static void lift(struct event *call)
{
    unlink_event(call);
    if (call->match)
        unlink_event(call->match);
}

static void restore(struct event *call)
{
    if (call->match)
        relink_event(call->match);
    relink_event(call);
}

/* The candidate after e (the head or a call). The unknown calls invoked before the first
 * return come first, then the known calls before it; then that return, which means none. */
static struct event *next_candidate(const struct search *s, const struct event *e)
{
    const struct event *wall = s->head.next;
    while (wall->call)
        wall = wall->next;
    if (e == &s->head || e->unknown) {
        struct event *u = e == &s->head ? s->uhead.next : e->next;
        if (u && u->time <= wall->time)
            return u;
        e = &s->head;
    }
    return e->next;
}

static bool may_go_now(const struct search *s, const struct event *e, uint32_t state, uint32_t next)
{
    if (!e->unknown)
        return true;
    uint32_t twin = s->twin[e->bit];
    return next != state && (twin == NO_TWIN || s->uset[twin / 64] >> (twin % 64) & 1);
}

/* ---- Setting up ---- */

static int event_cmp(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    /* Calls first: operations that touch at one instant are concurrent. */
    if (x->call != y->call)
        return x->call ? -1 : 1;
    return (x->op > y->op) - (x->op < y->op);
}

static const struct search *twin_search; /* qsort has no context argument in C11 */

static int by_effect_then_bit(const void *a, const void *b)
{
    const struct event *ex = *(struct event *const *)a, *ey = *(struct event *const *)b;
    const struct lin_op *x = &twin_search->ops[twin_search->sel[ex->op]];
    const struct lin_op *y = &twin_search->ops[twin_search->sel[ey->op]];
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->value != y->value)
        return x->value < y->value ? -1 : 1;
    if (x->expect != y->expect)
        return x->expect < y->expect ? -1 : 1;
    return (ex->bit > ey->bit) - (ex->bit < ey->bit);
}

static void link_list(struct event *head, struct event *e, size_t n)
{
    struct event *prev = head;
    for (size_t i = 0; i < n; i++) {
        e[i].prev = prev;
        prev->next = &e[i];
        prev = &e[i];
    }
    prev->next = NULL;
}

/* Sorts the known events (n_known at the front of s->events) and the unknown calls (after
 * them), numbers the bits in order of invocation, and finds each unknown call's twin. */
static void search_link(struct search *s, size_t n_known, size_t n_unknown, struct event **tmp)
{
    struct event *known = s->events, *unknown = s->events + n_known;
    qsort(known, n_known, sizeof *known, event_cmp);
    qsort(unknown, n_unknown, sizeof *unknown, event_cmp);
    uint32_t bit = 0;
    for (size_t i = 0; i < n_known; i++) {
        if (known[i].call) {
            known[i].bit = bit++;
            tmp[known[i].op] = &known[i];
        } else {
            tmp[known[i].op]->match = &known[i];
        }
    }
    link_list(&s->head, known, n_known);
    link_list(&s->uhead, unknown, n_unknown);
    for (size_t i = 0; i < n_unknown; i++) {
        unknown[i].bit = (uint32_t)i;
        tmp[i] = &unknown[i];
    }
    twin_search = s;
    qsort(tmp, n_unknown, sizeof *tmp, by_effect_then_bit);
    for (size_t i = 0; i < n_unknown; i++) {
        const struct lin_op *x = &s->ops[s->sel[tmp[i]->op]];
        const struct lin_op *y = i ? &s->ops[s->sel[tmp[i - 1]->op]] : NULL;
        bool twins = y && x->kind == y->kind && x->value == y->value && x->expect == y->expect;
        s->twin[tmp[i]->bit] = twins ? tmp[i - 1]->bit : NO_TWIN;
    }
}

static void search_free(struct search *s)
{
    free(s->events);
    free(s->twin);
    free(s->kset);
    free(s->uset);
    free(s->slots);
    free(s->arena);
    free(s->stack);
    free(s->stack_state);
}

static int search_init(struct search *s, const struct lin_op *ops, const uint32_t *sel, size_t m,
                       uint64_t max_bytes)
{
    *s = (struct search){.ops = ops, .sel = sel, .max_bytes = max_bytes, .cap = 1024};
    size_t n_known = 0;
    for (size_t i = 0; i < m; i++)
        n_known += ops[sel[i]].complete != UINT64_MAX;
    s->n_known = n_known;
    s->kwords = n_known / 64 + 1;
    s->uwords = (m - n_known + 63) / 64;
    s->events = malloc((n_known + m + 1) * sizeof *s->events);
    s->twin = malloc((m - n_known + 1) * sizeof *s->twin);
    s->kset = calloc(s->kwords, 8);
    s->uset = calloc(s->uwords + 1, 8);
    s->slots = calloc(s->cap, sizeof *s->slots);
    s->stack = malloc((m + 1) * sizeof *s->stack);
    s->stack_state = malloc((m + 1) * sizeof *s->stack_state);
    if (!s->events || !s->twin || !s->kset || !s->uset || !s->slots || !s->stack || !s->stack_state)
        return -1;
    size_t k = 0, u = n_known * 2;
    for (uint32_t i = 0; i < m; i++) {
        const struct lin_op *op = &ops[sel[i]];
        if (op->complete == UINT64_MAX) {
            s->events[u++] =
                (struct event){.time = op->invoke, .op = i, .call = true, .unknown = true};
            continue;
        }
        s->events[k++] = (struct event){.time = op->invoke, .op = i, .call = true};
        s->events[k++] = (struct event){.time = op->complete, .op = i};
    }
    s->head.call = true;
    search_link(s, k, m - n_known, s->stack);
    return 0;
}

static enum lincheck_verdict search_run(struct search *s, size_t known_left, uint64_t max_steps,
                                        uint64_t *steps)
{
    size_t depth = 0;
    uint32_t state = 0;
    uint64_t limit = *steps + max_steps;
    struct event *e = next_candidate(s, &s->head);
    while (known_left > 0) {
        if (++*steps > limit)
            return LINCHECK_UNKNOWN;
        if (!e->call) {
            /* An operation completed before any order of the choices so far could place
             * it: undo the last choice and try the next candidate in its place. */
            if (depth == 0)
                return LINCHECK_VIOLATION;
            struct event *undone = s->stack[--depth];
            state = s->stack_state[depth];
            unmark(s, undone);
            restore(undone);
            known_left += !undone->unknown;
            e = next_candidate(s, undone);
            continue;
        }
        uint32_t next;
        if (register_step(&s->ops[s->sel[e->op]], state, &next) && may_go_now(s, e, state, next)) {
            mark(s, e);
            int fresh = cache_visit(s, next);
            if (fresh < 0)
                return LINCHECK_UNKNOWN;
            if (fresh) {
                s->stack[depth] = e;
                s->stack_state[depth++] = state;
                state = next;
                lift(e);
                known_left -= !e->unknown;
                if (known_left == 0)
                    break;
                e = next_candidate(s, &s->head);
                continue;
            }
            unmark(s, e);
        }
        e = next_candidate(s, e);
    }
    return LINCHECK_OK;
}

enum lincheck_verdict register_search(const struct lin_op *ops, const uint32_t *sel, size_t m,
                                      uint64_t max_steps, uint64_t max_bytes, uint64_t *steps)
{
    struct search s;
    enum lincheck_verdict v = LINCHECK_UNKNOWN;
    if (search_init(&s, ops, sel, m, max_bytes) == 0)
        v = s.n_known ? search_run(&s, s.n_known, max_steps, steps) : LINCHECK_OK;
    search_free(&s);
    return v;
}
