#include "lincheck.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_STEPS 100000000u
#define DEFAULT_MAX_BYTES (1u << 30)
/* Minimizing may take this many times a key's search budget before it settles for what it
 * has: a smaller witness is a convenience, the verdict is already known. */
#define MINIMIZE_BUDGETS 10

/* An operation of one key's sub-history, with its values numbered: 0 is "no key". */
struct lin_op {
    enum hist_kind kind;
    enum hist_outcome outcome;
    uint32_t value, expect, result;
    uint64_t invoke;
    uint64_t complete; /* UINT64_MAX when the outcome is unknown */
};

/* One key's sub-history: ops[i] is h->ops[src[i]]. */
struct key_history {
    struct lin_op *ops;
    const size_t *src;
    size_t n;
    uint32_t n_values; /* value ids are 0 .. n_values - 1 */
};

/*
 * The model: a register. Returns whether op may take effect in state s, and the state after
 * it. An unknown write is legal in every state, which is what lets it go last.
 */
static bool model_step(const struct lin_op *op, uint32_t s, uint32_t *next)
{
    *next = s;
    switch (op->kind) {
    case HIST_PUT:
        *next = op->value;
        return true;
    case HIST_GET:
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
    k->n_values = 1;
    for (size_t i = 0; i < n_refs; i++) {
        if (i > 0 && value_ref_cmp(&refs[i - 1], &refs[i]) != 0)
            k->n_values++;
        *refs[i].id = k->n_values;
    }
    k->n_values++;
    free(refs);
    return 0;
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

/* ---- The search ---- */

struct event {
    struct event *prev, *next, *match;
    uint64_t time;
    uint32_t op;
    bool call;
};

static int event_cmp(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    /* Calls first: operations that touch at one instant are concurrent. */
    if (x->call != y->call)
        return x->call ? -1 : 1;
    return x->op < y->op ? -1 : x->op > y->op;
}

/* Takes op's call and return out of the list; event_unlift puts them back (in LIFO order). */
static void event_lift(struct event *call)
{
    call->prev->next = call->next;
    if (call->next)
        call->next->prev = call->prev;
    struct event *ret = call->match;
    ret->prev->next = ret->next;
    if (ret->next)
        ret->next->prev = ret->prev;
}

static void event_unlift(struct event *call)
{
    struct event *ret = call->match;
    ret->prev->next = ret;
    if (ret->next)
        ret->next->prev = ret;
    call->prev->next = call;
    if (call->next)
        call->next->prev = call;
}

/* The (linearized set, state) pairs already reached: an open-addressing table of slots that
 * point into an arena of bitsets. */
struct cache_slot {
    uint64_t hash;
    uint32_t state;
    uint32_t set; /* 1 + index of the set in the arena, 0 when free */
};

struct cache {
    struct cache_slot *slots;
    size_t cap, used;
    uint64_t *sets;
    size_t words, sets_cap; /* words per set, sets the arena has room for */
    uint64_t max_bytes;
};

static uint64_t cache_bytes(const struct cache *c)
{
    return c->cap * sizeof *c->slots + c->sets_cap * c->words * sizeof *c->sets;
}

static int cache_grow(struct cache *c)
{
    size_t cap = c->cap * 2;
    struct cache_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->slots[i].set)
            continue;
        size_t j = c->slots[i].hash & (cap - 1);
        while (slots[j].set)
            j = (j + 1) & (cap - 1);
        slots[j] = c->slots[i];
    }
    free(c->slots);
    c->slots = slots;
    c->cap = cap;
    return 0;
}

/* 1 when (set, state) is new and now remembered, 0 when seen before, -1 when the budget or
 * memory is exhausted. */
static int cache_add(struct cache *c, const uint64_t *set, uint64_t set_hash, uint32_t state)
{
    uint64_t hash = set_hash ^ (state * 0x9e3779b97f4a7c15ull);
    size_t j = hash & (c->cap - 1);
    for (; c->slots[j].set; j = (j + 1) & (c->cap - 1)) {
        const struct cache_slot *s = &c->slots[j];
        if (s->hash == hash && s->state == state &&
            !memcmp(&c->sets[(s->set - 1) * c->words], set, c->words * sizeof *set))
            return 0;
    }
    if (c->used == c->sets_cap) {
        size_t cap = c->sets_cap * 2;
        if (cap > UINT32_MAX - 1 ||
            (cap - c->sets_cap) * c->words * 8 + cache_bytes(c) > c->max_bytes)
            return -1;
        uint64_t *sets = realloc(c->sets, cap * c->words * sizeof *sets);
        if (!sets)
            return -1;
        c->sets = sets;
        c->sets_cap = cap;
    }
    memcpy(&c->sets[c->used * c->words], set, c->words * sizeof *set);
    c->slots[j] = (struct cache_slot){hash, state, (uint32_t)++c->used};
    if (c->used * 2 > c->cap && (cache_bytes(c) * 2 > c->max_bytes || cache_grow(c) < 0))
        return -1;
    return 1;
}

/* A fixed random number per operation, so that a set's hash is the XOR of its members'. */
static uint64_t zobrist(uint64_t i)
{
    uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Everything one search allocates. */
struct search {
    struct event head;
    struct event *events;
    uint64_t *set;
    struct cache cache;
    struct event **stack_event;
    uint32_t *stack_state;
};

static void search_free(struct search *s)
{
    free(s->events);
    free(s->set);
    free(s->cache.slots);
    free(s->cache.sets);
    free(s->stack_event);
    free(s->stack_state);
}

static int search_init(struct search *s, const struct key_history *k, const uint32_t *sel, size_t m,
                       uint64_t max_bytes)
{
    *s = (struct search){0};
    struct cache *c = &s->cache;
    c->words = (m + 63) / 64 ? (m + 63) / 64 : 1;
    c->cap = 1024;
    c->sets_cap = 512;
    c->max_bytes = max_bytes;
    s->events = malloc(2 * m * sizeof *s->events + 1);
    s->set = calloc(c->words, sizeof *s->set);
    c->slots = calloc(c->cap, sizeof *c->slots);
    c->sets = malloc(c->sets_cap * c->words * sizeof *c->sets);
    s->stack_event = malloc((m + 1) * sizeof *s->stack_event);
    s->stack_state = malloc((m + 1) * sizeof *s->stack_state);
    if (!s->events || !s->set || !c->slots || !c->sets || !s->stack_event || !s->stack_state)
        return -1;
    for (uint32_t i = 0; i < m; i++) {
        const struct lin_op *op = &k->ops[sel[i]];
        s->events[2 * i] = (struct event){.time = op->invoke, .op = i, .call = true};
        s->events[2 * i + 1] = (struct event){.time = op->complete, .op = i};
    }
    qsort(s->events, 2 * m, sizeof *s->events, event_cmp);
    struct event **call_of = s->stack_event; /* free until the search starts */
    struct event *prev = &s->head;
    for (size_t i = 0; i < 2 * m; i++) {
        struct event *e = &s->events[i];
        if (e->call)
            call_of[e->op] = e;
        else
            call_of[e->op]->match = e;
        e->prev = prev;
        prev->next = e;
        prev = e;
    }
    prev->next = NULL;
    return 0;
}

static enum lincheck_verdict search_run(struct search *s, const struct key_history *k,
                                        const uint32_t *sel, size_t m, uint64_t max_steps,
                                        uint64_t *steps)
{
    size_t known_left = 0, depth = 0;
    for (size_t i = 0; i < m; i++)
        known_left += k->ops[sel[i]].complete != UINT64_MAX;
    uint32_t state = 0;
    uint64_t set_hash = 0;
    struct event *e = s->head.next;
    while (known_left > 0) {
        if (++*steps > max_steps)
            return LINCHECK_UNKNOWN;
        if (!e->call) {
            /* An operation completed before any legal order could place it: undo the last
             * choice and try the next one. */
            if (depth == 0)
                return LINCHECK_VIOLATION;
            struct event *call = s->stack_event[--depth];
            state = s->stack_state[depth];
            s->set[call->op / 64] &= ~(1ull << (call->op % 64));
            set_hash ^= zobrist(call->op);
            known_left += k->ops[sel[call->op]].complete != UINT64_MAX;
            event_unlift(call);
            e = call->next;
            continue;
        }
        const struct lin_op *op = &k->ops[sel[e->op]];
        uint32_t next;
        if (model_step(op, state, &next)) {
            s->set[e->op / 64] |= 1ull << (e->op % 64);
            int added = cache_add(&s->cache, s->set, set_hash ^ zobrist(e->op), next);
            if (added < 0)
                return LINCHECK_UNKNOWN;
            if (added) {
                s->stack_event[depth] = e;
                s->stack_state[depth++] = state;
                state = next;
                set_hash ^= zobrist(e->op);
                known_left -= op->complete != UINT64_MAX;
                event_lift(e);
                e = s->head.next;
                continue;
            }
            s->set[e->op / 64] &= ~(1ull << (e->op % 64));
        }
        e = e->next;
    }
    return LINCHECK_OK;
}

static enum lincheck_verdict search(const struct key_history *k, const uint32_t *sel, size_t m,
                                    const struct lincheck_options *o, uint64_t *steps)
{
    struct search s;
    enum lincheck_verdict v = LINCHECK_UNKNOWN;
    if (search_init(&s, k, sel, m, o->max_bytes) == 0)
        v = search_run(&s, k, sel, m, o->max_steps, steps);
    search_free(&s);
    return v;
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

static struct lincheck_options options_or_defaults(const struct lincheck_options *o)
{
    struct lincheck_options d = o ? *o : (struct lincheck_options){0};
    if (!d.max_steps)
        d.max_steps = DEFAULT_MAX_STEPS;
    if (!d.max_bytes)
        d.max_bytes = DEFAULT_MAX_BYTES;
    return d;
}

/* Greedily drops chunks of droppable operations, halving the chunk size, for as long as
 * what is left is still not linearizable (in the manner of delta debugging). */
static size_t minimize(const struct key_history *k, uint32_t *sel, size_t m, uint8_t *seen,
                       const struct lincheck_options *o, uint64_t *steps)
{
    uint32_t *trial = malloc((m + 1) * sizeof *trial);
    if (!trial)
        return m;
    uint64_t limit = *steps + MINIMIZE_BUDGETS * o->max_steps;
    struct observed obs = {.seen = seen};
    for (size_t chunk = m > 1 ? m / 2 : 1; chunk > 0 && *steps < limit;) {
        bool changed = false;
        for (size_t start = 0; start < m && *steps < limit;) {
            observe(k, sel, m, &obs);
            size_t n_trial = 0;
            for (size_t j = 0; j < m; j++)
                if (j < start || j >= start + chunk || !droppable(&k->ops[sel[j]], &obs))
                    trial[n_trial++] = sel[j];
            if (n_trial < m && search(k, trial, n_trial, o, steps) == LINCHECK_VIOLATION) {
                memcpy(sel, trial, n_trial * sizeof *sel);
                m = n_trial;
                changed = true;
            } else {
                start += chunk;
            }
        }
        if (!changed)
            chunk /= 2;
    }
    free(trial);
    return m;
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
        v = search(&k, sel, m, o, steps);
        if (v == LINCHECK_VIOLATION && res) {
            if (minimizing)
                m = minimize(&k, sel, m, seen, o, steps);
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

enum lincheck_verdict lincheck_key(const struct history *h, const size_t *ops, size_t n,
                                   const struct lincheck_options *o, uint64_t *steps)
{
    struct lincheck_options d = options_or_defaults(o);
    uint64_t local = 0;
    return check_key(h, ops, n, &d, false, steps ? steps : &local, NULL);
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
