/*
 * history-synth: writes a synthetic history (history.h) of concurrent clients against an
 * ideal, linearizable store, to measure and smoke-test lincheck on histories the size a
 * fault run produces.
 *
 *   history-synth [--clients N] [--ops N] [--keys N] [--unknown PERCENT] [--stale N]
 *                 [--seed N] > history
 *
 * Each client runs --ops operations one after another: put of a unique value, get, delete,
 * or cas from the value it last wrote to the key. Each takes effect at a random point within
 * its interval. An unknown one (--unknown percent of them) is given up on after 2 ms and
 * takes effect, or not, at any time within 5 ms of its invocation. --stale N then makes N
 * random reads return an older value of their key, which is no longer linearizable as long
 * as a write was acknowledged in between.
 */
#include "history.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct synth_op {
    struct hist_op op;
    uint64_t at; /* when it takes effect; UINT64_MAX: never */
    unsigned key;
    char value[32];
    char expect[32];
    bool expect_absent;
};

struct options {
    unsigned clients, ops, keys, unknown_pct, stale;
    uint64_t seed;
};

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return rng_next(s) % n;
}

static int by_effect(const void *a, const void *b)
{
    const struct synth_op *x = *(const struct synth_op *const *)a;
    const struct synth_op *y = *(const struct synth_op *const *)b;
    return (x->at > y->at) - (x->at < y->at);
}

static struct hist_bytes text(const char *s)
{
    return (struct hist_bytes){(uint8_t *)s, strlen(s), true};
}

/* Times and calls of every client's operations; results come when they take effect. */
static void plan(const struct options *o, uint64_t *rng, struct synth_op *ops)
{
    char(*last_written)[32] = calloc((size_t)o->clients * o->keys, 32);
    for (unsigned c = 0; c < o->clients; c++) {
        uint64_t t = rng_below(rng, 100000);
        for (unsigned i = 0; i < o->ops; i++) {
            struct synth_op *s = &ops[(size_t)c * o->ops + i];
            s->key = (unsigned)rng_below(rng, o->keys);
            s->op.client = c;
            s->op.kind = (enum hist_kind)rng_below(rng, 4);
            s->op.invoke_ns = t + rng_below(rng, 100000);
            snprintf(s->value, sizeof s->value, "c%u.%u", c, i);
            char *mine = last_written[(size_t)c * o->keys + s->key];
            s->expect_absent = !mine[0];
            memcpy(s->expect, mine, sizeof s->expect);
            if (s->op.kind == HIST_PUT || s->op.kind == HIST_CAS)
                memcpy(mine, s->value, sizeof s->value);
            if (rng_below(rng, 100) < o->unknown_pct) {
                s->op.outcome = HIST_UNKNOWN;
                s->op.complete_ns = s->op.invoke_ns + 2000000;
                bool applies = rng_below(rng, 2);
                s->at = applies ? s->op.invoke_ns + rng_below(rng, 5000000) : UINT64_MAX;
            } else {
                s->at = s->op.invoke_ns + 1 + rng_below(rng, 1000000);
                s->op.complete_ns = s->at + rng_below(rng, 1000000);
            }
            t = s->op.complete_ns;
        }
    }
    free(last_written);
}

/* Runs the operations in the order they take effect against a map, filling in outcomes. */
static void execute(const struct options *o, struct synth_op **order, size_t n)
{
    const char **state = calloc(o->keys, sizeof *state); /* NULL: no key */
    for (size_t i = 0; i < n; i++) {
        struct synth_op *s = order[i];
        const char **cell = &state[s->key];
        bool unknown = s->op.outcome == HIST_UNKNOWN;
        if (s->at == UINT64_MAX)
            continue;
        switch (s->op.kind) {
        case HIST_PUT:
            *cell = s->value;
            break;
        case HIST_GET:
            s->op.outcome = unknown ? HIST_UNKNOWN : *cell ? HIST_OK : HIST_NOTFOUND;
            s->op.result = text(*cell ? *cell : "");
            s->op.result.present = *cell != NULL;
            break;
        case HIST_DELETE:
            s->op.outcome = unknown ? HIST_UNKNOWN : *cell ? HIST_OK : HIST_NOTFOUND;
            *cell = NULL;
            break;
        case HIST_CAS: {
            bool match = s->expect_absent ? !*cell : *cell && !strcmp(*cell, s->expect);
            if (!unknown && !match) {
                s->op.outcome = HIST_MISMATCH;
                s->op.result = text(*cell ? *cell : "");
                s->op.result.present = *cell != NULL;
            }
            if (match)
                *cell = s->value;
            break;
        }
        }
    }
    free(state);
}

/* A read returns the value of an earlier read of the same key, when it differs. */
static void make_stale(const struct options *o, uint64_t *rng, struct synth_op **order, size_t n)
{
    for (unsigned done = 0, tries = 0; done < o->stale && tries < 1000000; tries++) {
        size_t i = rng_below(rng, n), j = rng_below(rng, n);
        struct hist_op *late = &order[i > j ? i : j]->op, *early = &order[i > j ? j : i]->op;
        if (late->kind != HIST_GET || early->kind != HIST_GET || late->outcome != HIST_OK ||
            early->outcome != HIST_OK || order[i]->key != order[j]->key ||
            hist_bytes_equal(&late->result, &early->result))
            continue;
        late->result = early->result;
        done++;
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: history-synth [--clients N] [--ops N] [--keys N] [--unknown PERCENT] "
                    "[--stale N] [--seed N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct options o = {.clients = 8, .ops = 2000, .keys = 5, .unknown_pct = 10, .seed = 1};
    struct {
        const char *name;
        unsigned *value;
    } flags[] = {{"--clients", &o.clients},
                 {"--ops", &o.ops},
                 {"--keys", &o.keys},
                 {"--unknown", &o.unknown_pct},
                 {"--stale", &o.stale}};
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            return usage();
        size_t f = 0;
        while (f < sizeof flags / sizeof flags[0] && strcmp(argv[i], flags[f].name))
            f++;
        char *end;
        unsigned long long v = strtoull(argv[i + 1], &end, 10);
        if (*end || (f == sizeof flags / sizeof flags[0] && strcmp(argv[i], "--seed")))
            return usage();
        if (f < sizeof flags / sizeof flags[0])
            *flags[f].value = (unsigned)v;
        else
            o.seed = v;
    }
    if (!o.clients || !o.ops || !o.keys || o.unknown_pct > 100)
        return usage();
    size_t n = (size_t)o.clients * o.ops;
    struct synth_op *ops = calloc(n, sizeof *ops);
    struct synth_op **order = calloc(n, sizeof *order);
    if (!ops || !order)
        return 2;
    uint64_t rng = o.seed * 0x9e3779b97f4a7c15ull | 1;
    plan(&o, &rng, ops);
    for (size_t i = 0; i < n; i++)
        order[i] = &ops[i];
    qsort(order, n, sizeof *order, by_effect);
    execute(&o, order, n);
    make_stale(&o, &rng, order, n);
    char key[16];
    printf("# history-synth --clients %u --ops %u --keys %u --unknown %u --stale %u --seed %" PRIu64
           "\n",
           o.clients, o.ops, o.keys, o.unknown_pct, o.stale, o.seed);
    for (size_t i = 0; i < n; i++) {
        struct synth_op *s = &ops[i];
        snprintf(key, sizeof key, "k%u", s->key);
        s->op.key = text(key);
        s->op.value = text(s->value);
        s->op.expect = text(s->expect);
        s->op.expect.present = !s->expect_absent;
        history_write_op(stdout, &s->op);
    }
    free(order);
    free(ops);
    return ferror(stdout) ? 1 : 0;
}
