/*
 * The linearizability checker against a brute-force one on many random small histories,
 * on named histories from the literature and from issue 11, and the history format.
 */
#include "lincheck.h"
#include "test.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- Brute force: every subset of the unknown operations, in every order that respects
 * real time, against a map of registers. Shares nothing with the checker but the format. */

#define BRUTE_MAX_OPS 12
#define BRUTE_MAX_KEYS 4

struct brute {
    const struct history *h;
    size_t ops[BRUTE_MAX_OPS]; /* the operations taking effect */
    size_t n;
    size_t key_of[BRUTE_MAX_OPS];
    const struct hist_bytes *cells[BRUTE_MAX_KEYS]; /* NULL: no key */
    bool placed[BRUTE_MAX_OPS];
};

static bool cell_is(const struct hist_bytes *cell, const struct hist_bytes *b)
{
    return cell ? hist_bytes_equal(cell, b) : !b->present;
}

static bool brute_apply(const struct hist_op *op, const struct hist_bytes **cell)
{
    const struct hist_bytes *cur = *cell;
    switch (op->kind) {
    case HIST_PUT:
        *cell = &op->value;
        return true;
    case HIST_GET:
        if (op->outcome == HIST_OK)
            return cur && hist_bytes_equal(cur, &op->result);
        return op->outcome != HIST_NOTFOUND || !cur;
    case HIST_DELETE:
        if (op->outcome == HIST_NOTFOUND)
            return !cur;
        if (op->outcome == HIST_OK && !cur)
            return false;
        *cell = NULL;
        return true;
    case HIST_CAS:
        if (op->outcome == HIST_MISMATCH)
            return cell_is(cur, &op->result) && !cell_is(cur, &op->expect);
        if (cell_is(cur, &op->expect)) {
            *cell = &op->value;
            return true;
        }
        return op->outcome == HIST_UNKNOWN;
    }
    return false;
}

/* a must come before b in any linearization. */
static bool precedes(const struct hist_op *a, const struct hist_op *b)
{
    return a->outcome != HIST_UNKNOWN && a->complete_ns < b->invoke_ns;
}

static bool brute_order(struct brute *b, size_t depth)
{
    if (depth == b->n)
        return true;
    for (size_t i = 0; i < b->n; i++) {
        if (b->placed[i])
            continue;
        const struct hist_op *op = &b->h->ops[b->ops[i]];
        bool ready = true;
        for (size_t j = 0; j < b->n && ready; j++)
            ready = b->placed[j] || j == i || !precedes(&b->h->ops[b->ops[j]], op);
        const struct hist_bytes *saved = b->cells[b->key_of[i]];
        if (!ready || !brute_apply(op, &b->cells[b->key_of[i]])) {
            b->cells[b->key_of[i]] = saved;
            continue;
        }
        b->placed[i] = true;
        bool found = brute_order(b, depth + 1);
        b->placed[i] = false;
        b->cells[b->key_of[i]] = saved;
        if (found)
            return true;
    }
    return false;
}

/* The operations of h listed in sub (all of h when sub is NULL). */
static bool brute_linearizable(const struct history *h, const size_t *sub, size_t n_sub)
{
    size_t all[BRUTE_MAX_OPS], unknown[BRUTE_MAX_OPS], n = 0, n_unknown = 0;
    const struct hist_bytes *keys[BRUTE_MAX_KEYS];
    size_t n_keys = 0;
    struct brute b = {.h = h};
    for (size_t s = 0; s < (sub ? n_sub : h->n); s++) {
        size_t i = sub ? sub[s] : s;
        if (h->ops[i].outcome == HIST_FAILED)
            continue;
        if (h->ops[i].outcome == HIST_UNKNOWN)
            unknown[n_unknown++] = i;
        else
            all[n++] = i;
    }
    for (uint32_t mask = 0; mask < (1u << n_unknown); mask++) {
        b.n = 0;
        for (size_t j = 0; j < n; j++)
            b.ops[b.n++] = all[j];
        for (size_t j = 0; j < n_unknown; j++)
            if (mask & (1u << j))
                b.ops[b.n++] = unknown[j];
        n_keys = 0;
        for (size_t j = 0; j < b.n; j++) {
            const struct hist_bytes *key = &h->ops[b.ops[j]].key;
            size_t k = 0;
            while (k < n_keys && !hist_bytes_equal(keys[k], key))
                k++;
            if (k == n_keys)
                keys[n_keys++] = key;
            b.key_of[j] = k;
        }
        memset(b.cells, 0, sizeof b.cells);
        if (brute_order(&b, 0))
            return true;
    }
    return false;
}

/* ---- Random histories ---- */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static unsigned rng_below(uint64_t *s, unsigned n)
{
    return (unsigned)(rng_next(s) % n);
}

static struct hist_bytes text(const char *s)
{
    return (struct hist_bytes){(uint8_t *)s, s ? strlen(s) : 0, s != NULL};
}

static const char *const values[] = {NULL, "", "a", "b"}; /* NULL: no key */
static const char *const unique_values[] = {"v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"};

/*
 * A real sequential execution against a map: operation i takes effect at 100 + 10 i, within
 * a random interval around that point. Values are few, or (as in a real workload) unique
 * to each write. A tenth fail without effect; a fifth end unknown,
 * half of those having taken effect. Always linearizable.
 */
static void gen_history(uint64_t *rng, struct history *h, unsigned unknown_tenths)
{
    const char *keys[] = {"x", "y"};
    const char *state[2] = {NULL, NULL};
    unsigned n_keys = 1 + rng_below(rng, 2), n_clients = 2 + rng_below(rng, 3);
    unsigned n = 1 + rng_below(rng, 8);
    bool unique = rng_below(rng, 2);
    *h = (struct history){0};
    for (unsigned i = 0; i < n; i++) {
        unsigned k = rng_below(rng, n_keys), fate = rng_below(rng, 10);
        uint64_t at = 100 + 10 * i;
        struct hist_op op = {.client = rng_below(rng, n_clients), .key = text(keys[k])};
        op.invoke_ns = at - rng_below(rng, 30);
        op.complete_ns = at + rng_below(rng, 30);
        op.kind = (enum hist_kind)rng_below(rng, 4);
        const char *v = unique ? unique_values[i] : values[1 + rng_below(rng, 3)];
        const char *other =
            unique ? unique_values[rng_below(rng, i + 1)] : values[rng_below(rng, 4)];
        const char *expect = rng_below(rng, 2) ? state[k] : rng_below(rng, 4) ? other : NULL;
        bool unknown = fate >= 1 && fate <= unknown_tenths;
        bool applies = fate > unknown_tenths || (unknown && rng_below(rng, 2));
        const char *cur = state[k];
        switch (op.kind) {
        case HIST_PUT:
            op.value = text(v);
            op.outcome = HIST_OK;
            state[k] = applies ? v : cur;
            break;
        case HIST_GET:
            op.outcome = cur ? HIST_OK : HIST_NOTFOUND;
            op.result = text(cur);
            break;
        case HIST_DELETE:
            op.outcome = cur ? HIST_OK : HIST_NOTFOUND;
            state[k] = applies ? NULL : cur;
            break;
        case HIST_CAS:
            op.expect = text(expect);
            op.value = text(v);
            bool match = cur == expect || (cur && expect && !strcmp(cur, expect));
            op.outcome = match ? HIST_OK : HIST_MISMATCH;
            op.result = text(match ? NULL : cur);
            state[k] = applies && match ? v : cur;
            break;
        }
        if (fate == 0)
            op.outcome = HIST_FAILED;
        else if (unknown)
            op.outcome = HIST_UNKNOWN;
        if (op.outcome != HIST_OK && op.outcome != HIST_MISMATCH)
            op.result = text(NULL);
        if (history_add(h, &op) < 0)
            abort();
    }
}

/* Rewrites one operation's outcome, value or times at random; the history may stay
 * linearizable or not. Values stay those of ops' own strings or of the static table. */
static void corrupt(uint64_t *rng, struct history *h)
{
    struct hist_op *op = &h->ops[rng_below(rng, (unsigned)h->n)];
    struct hist_bytes v = text(values[rng_below(rng, 4)]);
    switch (rng_below(rng, 4)) {
    case 0: /* times */
        op->invoke_ns = 100 + rng_below(rng, 80);
        op->complete_ns = op->invoke_ns + rng_below(rng, 30);
        return;
    case 1: /* outcome */
        op->outcome = (enum hist_outcome)rng_below(rng, 5);
        if (op->outcome == HIST_NOTFOUND && op->kind != HIST_GET && op->kind != HIST_DELETE)
            op->outcome = HIST_OK;
        if (op->outcome == HIST_MISMATCH && op->kind != HIST_CAS)
            op->outcome = HIST_FAILED;
        break;
    case 2: /* the value written */
        if ((op->kind == HIST_PUT || op->kind == HIST_CAS) && v.present) {
            free(op->value.data);
            op->value.data = (uint8_t *)strdup((const char *)v.data);
            op->value.len = v.len;
            return;
        }
        break;
    default:
        break;
    }
    free(op->result.data);
    op->result = (struct hist_bytes){0};
    bool wants_result =
        (op->kind == HIST_GET && op->outcome == HIST_OK) || op->outcome == HIST_MISMATCH;
    if (wants_result && (v.present || op->outcome == HIST_MISMATCH)) {
        op->result = v;
        op->result.data = v.present ? (uint8_t *)strdup((const char *)v.data) : NULL;
    } else if (wants_result) {
        op->outcome = HIST_NOTFOUND;
    }
}

static enum lincheck_verdict check(const struct history *h, struct lincheck_result *res)
{
    struct lincheck_options o = {0};
    return lincheck_history(h, &o, res);
}

#define RANDOM_HISTORIES 10000

TEST(random_executions_are_linearizable_to_both_checkers)
{
    uint64_t rng = 0x5eed0001;
    for (int i = 0; i < RANDOM_HISTORIES; i++) {
        struct history h;
        gen_history(&rng, &h, 2);
        struct lincheck_result res;
        enum lincheck_verdict v = check(&h, &res);
        bool brute = brute_linearizable(&h, NULL, 0);
        if (v != LINCHECK_OK || !brute)
            lincheck_result_print(stderr, &h, &res);
        lincheck_result_free(&res);
        history_free(&h);
        CHECK(brute);
        CHECK_EQ(v, LINCHECK_OK);
    }
}

/* A violation's witness is part of the history, of one key, and is not linearizable. */
static bool witness_holds(const struct history *h, const struct lincheck_result *res)
{
    if (res->n_witness == 0)
        return false;
    for (size_t j = 0; j < res->n_witness; j++)
        if (res->witness[j] >= h->n ||
            !hist_bytes_equal(&h->ops[res->witness[j]].key, &h->ops[res->key_op].key))
            return false;
    return !brute_linearizable(h, res->witness, res->n_witness);
}

TEST(corrupted_histories_get_the_brute_force_verdict)
{
    uint64_t rng = 0x5eed0002;
    int violations = 0;
    for (int i = 0; i < RANDOM_HISTORIES; i++) {
        struct history h;
        gen_history(&rng, &h, 2);
        for (unsigned c = 1 + rng_below(&rng, 2); c > 0; c--)
            corrupt(&rng, &h);
        struct lincheck_result res;
        enum lincheck_verdict v = check(&h, &res);
        bool brute = brute_linearizable(&h, NULL, 0);
        bool agree = v == (brute ? LINCHECK_OK : LINCHECK_VIOLATION);
        bool witnessed = brute || witness_holds(&h, &res);
        if (!agree || !witnessed) {
            fprintf(stderr, "history %d, brute force says %s:\n", i, brute ? "ok" : "violation");
            for (size_t j = 0; j < h.n; j++)
                history_write_op(stderr, &h.ops[j]);
            lincheck_result_print(stderr, &h, &res);
        }
        violations += !brute;
        lincheck_result_free(&res);
        history_free(&h);
        CHECK(agree);
        CHECK(witnessed);
    }
    /* Both verdicts must be well represented for the comparison to mean something. */
    CHECK(violations > RANDOM_HISTORIES / 10);
    CHECK(violations < RANDOM_HISTORIES * 9 / 10);
}

/* The search's rules for unknown operations, where they abound. */
TEST(histories_mostly_of_unknown_outcome_get_the_brute_force_verdict)
{
    uint64_t rng = 0x5eed0004;
    int violations = 0;
    for (int i = 0; i < RANDOM_HISTORIES; i++) {
        struct history h;
        gen_history(&rng, &h, 6);
        if (rng_below(&rng, 2))
            corrupt(&rng, &h);
        struct lincheck_result res;
        enum lincheck_verdict v = check(&h, &res);
        bool brute = brute_linearizable(&h, NULL, 0);
        if (v != (brute ? LINCHECK_OK : LINCHECK_VIOLATION)) {
            for (size_t j = 0; j < h.n; j++)
                history_write_op(stderr, &h.ops[j]);
            lincheck_result_print(stderr, &h, &res);
        }
        violations += !brute;
        lincheck_result_free(&res);
        history_free(&h);
        CHECK_EQ(v, brute ? LINCHECK_OK : LINCHECK_VIOLATION);
    }
    CHECK(violations > RANDOM_HISTORIES / 50);
}

/* What the minimizer and the checker's pruning rest on: dropping a droppable operation from
 * a linearizable key history leaves it linearizable. */
TEST(dropping_a_droppable_operation_keeps_a_history_linearizable)
{
    uint64_t rng = 0x5eed0003;
    int dropped = 0;
    for (int i = 0; i < RANDOM_HISTORIES; i++) {
        struct history h;
        gen_history(&rng, &h, 2);
        if (rng_below(&rng, 2))
            corrupt(&rng, &h);
        size_t ops[BRUTE_MAX_OPS], n = 0;
        for (size_t j = 0; j < h.n; j++)
            if (hist_bytes_equal(&h.ops[j].key, &h.ops[0].key))
                ops[n++] = j;
        bool before = brute_linearizable(&h, ops, n);
        for (size_t j = 0; before && j < n; j++) {
            if (!lincheck_droppable(&h, ops, n, j))
                continue;
            size_t rest[BRUTE_MAX_OPS], m = 0;
            for (size_t x = 0; x < n; x++)
                if (x != j)
                    rest[m++] = ops[x];
            dropped++;
            if (!brute_linearizable(&h, rest, m)) {
                for (size_t x = 0; x < n; x++)
                    history_write_op(stderr, &h.ops[ops[x]]);
                fprintf(stderr, "dropping op %zu made it not linearizable\n", j);
                history_free(&h);
                CHECK(false);
            }
        }
        history_free(&h);
    }
    CHECK(dropped > RANDOM_HISTORIES);
}

/* ---- Named histories, in the file format ---- */

static enum lincheck_verdict check_text(const char *text_history, size_t *witness_len)
{
    FILE *f = fmemopen((void *)text_history, strlen(text_history), "r");
    struct history h;
    char err[256];
    if (!f || history_load(f, &h, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", f ? err : "fmemopen failed");
        if (f)
            fclose(f);
        return (enum lincheck_verdict) - 1;
    }
    fclose(f);
    struct lincheck_result res;
    enum lincheck_verdict v = check(&h, &res);
    bool witness_ok = v != LINCHECK_VIOLATION || witness_holds(&h, &res);
    lincheck_result_print(stderr, &h, &res);
    if (witness_len)
        *witness_len = res.n_witness;
    lincheck_result_free(&res);
    history_free(&h);
    return witness_ok ? v : (enum lincheck_verdict) - 1;
}

TEST(stale_read_after_a_completed_write)
{
    CHECK_EQ(check_text("1 0 10 put \"k\" \"A\" ok\n"
                        "1 20 30 put \"k\" \"B\" ok\n"
                        "2 40 50 get \"k\" ok \"A\"\n",
                        NULL),
             LINCHECK_VIOLATION);
    /* The same read, overlapping the second write: it may come first. */
    CHECK_EQ(check_text("1 0 10 put \"k\" \"A\" ok\n"
                        "1 20 30 put \"k\" \"B\" ok\n"
                        "2 25 50 get \"k\" ok \"A\"\n",
                        NULL),
             LINCHECK_OK);
}

TEST(lost_update)
{
    /* Both cas acknowledged one after the other; a later read shows the second lost. */
    CHECK_EQ(check_text("1 0 5 put \"k\" \"0\" ok\n"
                        "1 10 20 cas \"k\" \"0\" \"1\" ok\n"
                        "2 30 40 cas \"k\" \"1\" \"2\" ok\n"
                        "3 50 60 get \"k\" ok \"1\"\n",
                        NULL),
             LINCHECK_VIOLATION);
}

TEST(cas_that_succeeds_twice)
{
    size_t witness = 0;
    CHECK_EQ(check_text("1 0 5 put \"k\" \"0\" ok\n"
                        "1 10 20 cas \"k\" \"0\" \"1\" ok\n"
                        "2 10 20 cas \"k\" \"0\" \"2\" ok\n"
                        "3 30 40 get \"k\" ok \"2\"\n",
                        &witness),
             LINCHECK_VIOLATION);
    /* The read is not needed to show it. */
    CHECK_EQ(witness, 3);
    /* With a concurrent write of "0" again, both may succeed. */
    CHECK_EQ(check_text("1 0 5 put \"k\" \"0\" ok\n"
                        "1 10 20 cas \"k\" \"0\" \"1\" ok\n"
                        "2 10 20 cas \"k\" \"0\" \"2\" ok\n"
                        "4 8 22 put \"k\" \"0\" ok\n"
                        "3 30 40 get \"k\" ok \"2\"\n",
                        NULL),
             LINCHECK_OK);
}

/* Issue 11: a put the library retried after "leadership changed" is applied twice, the
 * second time after a later acknowledged put of B. A read between the two applications
 * shows it: put A must take effect before the first read and after put B. */
TEST(write_applied_twice)
{
    size_t witness = 0;
    CHECK_EQ(check_text("1 0 100 put \"k\" \"A\" ok\n"
                        "3 10 15 get \"k\" ok \"A\"\n"
                        "2 20 30 put \"k\" \"B\" ok\n"
                        "3 32 35 get \"k\" ok \"B\"\n"
                        "3 60 70 get \"k\" ok \"A\"\n",
                        &witness),
             LINCHECK_VIOLATION);
    /* The read of B is not needed: the late read of A alone contradicts put B. */
    CHECK_EQ(witness, 4);
    /* Without the early read, one application late in put A's interval explains it. */
    CHECK_EQ(check_text("1 0 100 put \"k\" \"A\" ok\n"
                        "2 20 30 put \"k\" \"B\" ok\n"
                        "3 32 35 get \"k\" ok \"B\"\n"
                        "3 60 70 get \"k\" ok \"A\"\n",
                        NULL),
             LINCHECK_OK);
}

/* Issue 11: a retried cas reported as a mismatch whose current value is the one it was
 * writing itself: its first attempt applied, the retry compared against its own result. */
TEST(cas_mismatch_showing_its_own_value)
{
    CHECK_EQ(check_text("1 0 10 put \"k\" \"A\" ok\n"
                        "2 20 40 cas \"k\" \"A\" \"B\" mismatch \"B\"\n",
                        NULL),
             LINCHECK_VIOLATION);
    /* A mismatch naming the expected value itself is never possible. */
    CHECK_EQ(check_text("2 20 40 cas \"k\" - \"B\" mismatch -\n", NULL), LINCHECK_VIOLATION);
}

TEST(unknown_write_that_must_have_taken_effect)
{
    const char *base = "1 0 10 put \"k\" \"A\" ok\n"
                       "1 20 25 put \"k\" \"B\" %s\n"
                       "2 30 40 get \"k\" ok \"A\"\n"
                       "2 50 60 get \"k\" ok \"B\"\n";
    char buf[256];
    /* It took effect after its client gave up (at 25), between the two reads. */
    snprintf(buf, sizeof buf, base, "unknown");
    CHECK_EQ(check_text(buf, NULL), LINCHECK_OK);
    snprintf(buf, sizeof buf, base, "failed");
    CHECK_EQ(check_text(buf, NULL), LINCHECK_VIOLATION);
    /* Acknowledged at 25, it cannot take effect after the read of A at 30-40. */
    snprintf(buf, sizeof buf, base, "ok");
    CHECK_EQ(check_text(buf, NULL), LINCHECK_VIOLATION);
}

TEST(unknown_write_that_never_took_effect)
{
    CHECK_EQ(check_text("1 0 10 put \"k\" \"A\" ok\n"
                        "1 20 25 delete \"k\" unknown\n"
                        "2 30 40 get \"k\" ok \"A\"\n"
                        "2 50 60 cas \"k\" \"A\" \"C\" ok\n",
                        NULL),
             LINCHECK_OK);
}

/* A precedes B only when A completed strictly before B was invoked. */
TEST(operations_that_touch_are_concurrent)
{
    CHECK_EQ(check_text("1 0 10 put \"k\" \"A\" ok\n"
                        "2 10 20 get \"k\" notfound\n",
                        NULL),
             LINCHECK_OK);
    CHECK_EQ(check_text("1 0 10 put \"k\" \"A\" ok\n"
                        "2 11 20 get \"k\" notfound\n",
                        NULL),
             LINCHECK_VIOLATION);
    /* Also for an operation of unknown outcome, invoked as the read completes. */
    CHECK_EQ(check_text("1 0 5 put \"k\" \"A\" ok\n"
                        "1 10 12 delete \"k\" unknown\n"
                        "2 6 10 get \"k\" notfound\n",
                        NULL),
             LINCHECK_OK);
    CHECK_EQ(check_text("1 0 5 put \"k\" \"A\" ok\n"
                        "1 11 12 delete \"k\" unknown\n"
                        "2 6 10 get \"k\" notfound\n",
                        NULL),
             LINCHECK_VIOLATION);
}

TEST(keys_are_checked_apart)
{
    /* Each key alone is fine; a violation on one key is reported with that key. */
    CHECK_EQ(check_text("1 0 10 put \"x\" \"A\" ok\n"
                        "2 0 10 put \"y\" \"A\" ok\n"
                        "1 20 30 get \"y\" ok \"A\"\n"
                        "2 20 30 get \"x\" ok \"A\"\n",
                        NULL),
             LINCHECK_OK);
    size_t witness = 0;
    CHECK_EQ(check_text("1 0 10 put \"x\" \"A\" ok\n"
                        "2 0 10 put \"y\" \"A\" ok\n"
                        "1 20 30 get \"y\" notfound\n"
                        "2 20 30 get \"x\" ok \"A\"\n",
                        &witness),
             LINCHECK_VIOLATION);
    CHECK_EQ(witness, 2);
}

/* Many concurrent writes and a read no order explains: a tiny budget cannot finish. */
TEST(an_exhausted_budget_is_unknown_not_a_verdict)
{
    struct history h = {0};
    for (unsigned i = 0; i < 6; i++) {
        char v[8];
        snprintf(v, sizeof v, "%u", i);
        struct hist_op op = {.client = i,
                             .invoke_ns = 0,
                             .complete_ns = 100,
                             .kind = HIST_PUT,
                             .outcome = HIST_OK,
                             .key = text("k"),
                             .value = text(v)};
        CHECK(history_add(&h, &op) == 0);
        op = (struct hist_op){.client = i,
                              .invoke_ns = 0,
                              .complete_ns = 100,
                              .kind = HIST_GET,
                              .outcome = HIST_OK,
                              .key = text("k"),
                              .result = text(v)};
        CHECK(history_add(&h, &op) == 0);
    }
    struct hist_op never = {.client = 99,
                            .invoke_ns = 0,
                            .complete_ns = 100,
                            .kind = HIST_GET,
                            .outcome = HIST_OK,
                            .key = text("k"),
                            .result = text("none")};
    CHECK(history_add(&h, &never) == 0);
    struct lincheck_options o = {.max_steps = 100};
    struct lincheck_result res;
    enum lincheck_verdict small = lincheck_history(&h, &o, &res);
    lincheck_result_free(&res);
    enum lincheck_verdict full = check(&h, &res);
    CHECK_EQ(res.n_witness, 1);
    lincheck_result_free(&res);
    history_free(&h);
    CHECK_EQ(small, LINCHECK_UNKNOWN);
    CHECK_EQ(full, LINCHECK_VIOLATION);
}

/* ---- The format ---- */

TEST(history_lines_round_trip)
{
    uint8_t binary[] = {0, '"', '\\', 0xff, 'z'};
    struct hist_op ops[] = {
        {.client = 7,
         .invoke_ns = 1,
         .complete_ns = 2,
         .kind = HIST_PUT,
         .outcome = HIST_OK,
         .key = {binary, sizeof binary, true},
         .value = text("")},
        {.client = 8,
         .invoke_ns = 3,
         .complete_ns = 1,
         .kind = HIST_CAS,
         .outcome = HIST_UNKNOWN,
         .key = text("k"),
         .expect = text(NULL),
         .value = text("v")},
        {.client = 9,
         .invoke_ns = 4,
         .complete_ns = 5,
         .kind = HIST_CAS,
         .outcome = HIST_MISMATCH,
         .key = text("k"),
         .expect = text("a"),
         .value = text("b"),
         .result = text(NULL)},
        {.client = 9,
         .invoke_ns = 6,
         .complete_ns = 7,
         .kind = HIST_GET,
         .outcome = HIST_OK,
         .key = text("k"),
         .result = {binary, sizeof binary, true}},
        {.client = 1,
         .invoke_ns = 8,
         .complete_ns = 9,
         .kind = HIST_DELETE,
         .outcome = HIST_NOTFOUND,
         .key = text("k")},
    };
    size_t n = sizeof ops / sizeof ops[0];
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL);
    fputs("# a comment\n\n", f);
    for (size_t i = 0; i < n; i++)
        CHECK(history_write_op(f, &ops[i]) == 0);
    fclose(f);
    f = fmemopen(buf, len, "r");
    struct history h;
    char err[256];
    int rc = history_load(f, &h, err, sizeof err);
    fclose(f);
    free(buf);
    CHECK(rc == 0);
    CHECK_EQ(h.n, n);
    bool same = true;
    for (size_t i = 0; i < n; i++) {
        const struct hist_op *a = &ops[i], *b = &h.ops[i];
        same = same && a->client == b->client && a->invoke_ns == b->invoke_ns &&
               a->complete_ns == b->complete_ns && a->kind == b->kind && a->outcome == b->outcome &&
               hist_bytes_equal(&a->key, &b->key) && hist_bytes_equal(&a->value, &b->value) &&
               hist_bytes_equal(&a->expect, &b->expect) &&
               hist_bytes_equal(&a->result, &b->result) && b->line == i + 3;
    }
    history_free(&h);
    CHECK(same);
}

TEST(malformed_lines_are_rejected_with_their_number)
{
    const char *bad[] = {
        "1 10 5 put \"k\" \"v\" ok\n",      /* completes before its invocation */
        "1 1 2 get \"k\" mismatch \"v\"\n", /* no mismatch for a get */
        "1 1 2 put \"k\" \"v ok\n",         /* unterminated */
        "1 1 2 put \"k\" \"v\" ok extra\n", /* trailing text */
        "1 1 2 cas \"k\" \"a\" ok\n",       /* a value missing */
        "1 1 2 put - \"v\" ok\n",           /* no key */
        "x 1 2 get \"k\" notfound\n",       /* client */
        "1 1 2 get \"k\" ok \"\\q\"\n",     /* escape */
        "1 1 2 frob \"k\" ok\n",            /* operation */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text_history[128];
        snprintf(text_history, sizeof text_history, "1 0 1 get \"k\" notfound\n%s", bad[i]);
        FILE *f = fmemopen(text_history, strlen(text_history), "r");
        struct history h;
        char err[256] = "";
        int rc = history_load(f, &h, err, sizeof err);
        fclose(f);
        if (rc == 0)
            fprintf(stderr, "accepted: %s", bad[i]);
        CHECK(rc == -1);
        CHECK(!strncmp(err, "line 2: ", 8));
        CHECK_EQ(h.n, 0);
    }
}

/* ---- The command-line tool ---- */

static int run_lincheck(const char *args, const char *contents)
{
    char path[] = "/tmp/lincheck-test-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    fputs(contents, f);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s %s %s >/dev/null 2>&1", LINCHECK_BIN, args, path);
    int status = system(cmd);
    unlink(path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(lincheck_tool_exit_status_is_its_verdict)
{
    const char *ok = "1 0 10 put \"k\" \"A\" ok\n2 20 30 get \"k\" ok \"A\"\n";
    const char *stale = "1 0 10 put \"k\" \"A\" ok\n2 20 30 get \"k\" notfound\n";
    CHECK_EQ(run_lincheck("", ok), 0);
    CHECK_EQ(run_lincheck("", stale), 1);
    CHECK_EQ(run_lincheck("--no-minimize", stale), 1);
    CHECK_EQ(run_lincheck("", "1 0 10 put\n"), 2);
    CHECK_EQ(run_lincheck("--frob", ok), 2);
}

TEST_MAIN(TEST_REF(random_executions_are_linearizable_to_both_checkers),
          TEST_REF(corrupted_histories_get_the_brute_force_verdict),
          TEST_REF(histories_mostly_of_unknown_outcome_get_the_brute_force_verdict),
          TEST_REF(dropping_a_droppable_operation_keeps_a_history_linearizable),
          TEST_REF(stale_read_after_a_completed_write), TEST_REF(lost_update),
          TEST_REF(cas_that_succeeds_twice), TEST_REF(write_applied_twice),
          TEST_REF(cas_mismatch_showing_its_own_value),
          TEST_REF(unknown_write_that_must_have_taken_effect),
          TEST_REF(unknown_write_that_never_took_effect),
          TEST_REF(operations_that_touch_are_concurrent), TEST_REF(keys_are_checked_apart),
          TEST_REF(an_exhausted_budget_is_unknown_not_a_verdict),
          TEST_REF(history_lines_round_trip),
          TEST_REF(malformed_lines_are_rejected_with_their_number),
          TEST_REF(lincheck_tool_exit_status_is_its_verdict))
