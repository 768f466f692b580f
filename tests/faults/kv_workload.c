/*
 * kv-workload: concurrent clients of a running cluster, recording a history for lincheck.
 *
 *     kv-workload [--endpoints A,B,C] --history FILE [--clients N] [--keys K]
 *                 [--seconds S] [--request-timeout MS] [--timeout MS] [--seed X]
 *
 * Each client is a thread with a client of its own that runs one operation at a time on a
 * few keys (put 40%, get 30%, cas 20%, delete 10%), with values unique to the run, and
 * records each with its invocation and completion times and its outcome: what the cluster
 * answered, or unknown when the library gave up (a write may then have been applied, or
 * not). When the time is up, every key is read once more with a long timeout. The history
 * (history.h) goes to FILE; lincheck FILE checks it.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_options.h"
#include "history.h"
#include "raftkv/client.h"

struct workload {
    struct raftkv_client_options opts;
    unsigned clients, keys, seconds;
    uint64_t seed;
    uint64_t end_ns;
};

struct worker {
    const struct workload *w;
    unsigned id;
    uint64_t rng;
    struct history h;
    unsigned ops;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t next_rand(struct worker *k, uint32_t bound)
{
    k->rng ^= k->rng << 13;
    k->rng ^= k->rng >> 7;
    k->rng ^= k->rng << 17;
    return (uint32_t)(k->rng % bound);
}

static struct hist_bytes bytes_of(const char *s)
{
    return (struct hist_bytes){(uint8_t *)s, strlen(s), true};
}

/* The outcome of a status the client library returned. */
static enum hist_outcome outcome_of(int status)
{
    switch (status) {
    case RAFTKV_OK:
        return HIST_OK;
    case RAFTKV_NOT_FOUND:
        return HIST_NOTFOUND;
    case RAFTKV_CAS_MISMATCH:
        return HIST_MISMATCH;
    case RAFTKV_INVALID:
    case RAFTKV_EUSAGE:
        return HIST_FAILED; /* refused before it was proposed */
    default:
        return HIST_UNKNOWN;
    }
}

/* Runs op (key, value and expect filled) and records it. */
static void run_op(struct worker *k, struct raftkv_client *c, struct hist_op *op)
{
    struct raftkv_result res;
    const char *key = (const char *)op->key.data;
    op->invoke_ns = now_ns();
    int st;
    switch (op->kind) {
    case HIST_PUT:
        st = raftkv_put(c, key, op->key.len, op->value.data, op->value.len, &res);
        break;
    case HIST_GET:
        st = raftkv_get(c, key, op->key.len, &res);
        break;
    case HIST_DELETE:
        st = raftkv_delete(c, key, op->key.len, &res);
        break;
    default:
        st = raftkv_cas(c, key, op->key.len, op->expect.present ? op->expect.data : NULL,
                        op->expect.len, op->value.data, op->value.len, &res);
        break;
    }
    op->complete_ns = now_ns();
    op->outcome = outcome_of(st);
    /* A mismatch on a missing key answers with revisions 0 and no value. */
    op->result = (struct hist_bytes){res.value, res.value_len,
                                     op->outcome == HIST_OK || res.create_revision != 0};
    if (history_add(&k->h, op) != 0)
        fprintf(stderr, "kv-workload: out of memory recording an operation\n");
    raftkv_result_free(&res);
    k->ops++;
}

static void *worker_run(void *arg)
{
    struct worker *k = arg;
    const struct workload *w = k->w;
    struct raftkv_client *c;
    if (raftkv_client_open(&w->opts, &c) != RAFTKV_OK)
        return NULL;
    char key[32], value[48], expect[48] = "";
    for (unsigned n = 1; now_ns() < w->end_ns; n++) {
        snprintf(key, sizeof key, "k%u", next_rand(k, w->keys));
        snprintf(value, sizeof value, "c%u-%u", k->id, n);
        struct hist_op op = {.client = k->id, .key = bytes_of(key), .value = bytes_of(value)};
        uint32_t dice = next_rand(k, 100);
        op.kind = dice < 40 ? HIST_PUT : dice < 70 ? HIST_GET : dice < 90 ? HIST_CAS : HIST_DELETE;
        if (op.kind == HIST_CAS) {
            /* Expect what this client last saw written, or absence. */
            op.expect = expect[0] ? bytes_of(expect) : (struct hist_bytes){0};
        }
        run_op(k, c, &op);
        if (op.kind == HIST_PUT && op.outcome == HIST_OK)
            snprintf(expect, sizeof expect, "%s", value);
        else if (op.kind == HIST_CAS && dice % 2)
            expect[0] = '\0';
    }
    raftkv_client_close(c);
    return NULL;
}

/* After the faults: every key read once more, patiently, as client 0. */
static void final_reads(const struct workload *w, struct worker *k)
{
    struct raftkv_client_options o = w->opts;
    o.timeout_ms = 30000;
    struct raftkv_client *c;
    if (raftkv_client_open(&o, &c) != RAFTKV_OK)
        return;
    char key[32];
    for (unsigned i = 0; i < w->keys; i++) {
        snprintf(key, sizeof key, "k%u", i);
        struct hist_op op = {.client = 0, .kind = HIST_GET, .key = bytes_of(key)};
        run_op(k, c, &op);
    }
    raftkv_client_close(c);
}

static int parse_args(int argc, char **argv, struct workload *w, const char **history,
                      struct rk_cli_endpoints *eps)
{
    static const struct option longopts[] = {{"endpoints", required_argument, NULL, 'e'},
                                             {"history", required_argument, NULL, 'H'},
                                             {"clients", required_argument, NULL, 'c'},
                                             {"keys", required_argument, NULL, 'k'},
                                             {"seconds", required_argument, NULL, 's'},
                                             {"request-timeout", required_argument, NULL, 'r'},
                                             {"timeout", required_argument, NULL, 't'},
                                             {"seed", required_argument, NULL, 'x'},
                                             {NULL, 0, NULL, 0}};
    raftkv_client_options_defaults(&w->opts);
    *w = (struct workload){w->opts, 4, 3, 10, 1, 0};
    const char *endpoints = NULL;
    bool ok = true;
    int c;
    while (ok && (c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'e':
            endpoints = optarg;
            break;
        case 'H':
            *history = optarg;
            break;
        case 'c':
            ok = rk_cli_parse_uint(optarg, 1, 64, &w->clients);
            break;
        case 'k':
            ok = rk_cli_parse_uint(optarg, 1, 1000000, &w->keys);
            break;
        case 's':
            ok = rk_cli_parse_uint(optarg, 1, 86400, &w->seconds);
            break;
        case 'r':
            ok = rk_cli_parse_uint(optarg, 1, 86400000, &w->opts.request_timeout_ms);
            break;
        case 't':
            ok = rk_cli_parse_uint(optarg, 1, 86400000, &w->opts.timeout_ms);
            break;
        case 'x':
            ok = rk_cli_parse_u64(optarg, 0, UINT64_MAX, &w->seed);
            break;
        default:
            ok = false;
        }
    }
    if (!ok || optind != argc || !*history || rk_cli_endpoints_split(eps, endpoints) != 0)
        return -1;
    w->opts.n_endpoints = eps->n;
    w->opts.endpoints = eps->urls;
    return 0;
}

int main(int argc, char **argv)
{
    struct workload w;
    const char *path = NULL;
    struct rk_cli_endpoints eps = {0};
    if (parse_args(argc, argv, &w, &path, &eps) != 0) {
        fprintf(stderr, "usage: kv-workload [--endpoints A,B,C] --history FILE [--clients N] "
                        "[--keys K] [--seconds S] [--request-timeout MS] [--timeout MS] "
                        "[--seed X]\n");
        return 2;
    }
    w.end_ns = now_ns() + (uint64_t)w.seconds * 1000000000u;
    struct worker k[65] = {{0}};
    pthread_t t[64];
    for (unsigned i = 0; i <= w.clients; i++)
        k[i] = (struct worker){.w = &w, .id = i, .rng = w.seed * 0x9E3779B97F4A7C15ULL + i + 1};
    for (unsigned i = 1; i <= w.clients; i++)
        pthread_create(&t[i - 1], NULL, worker_run, &k[i]);
    for (unsigned i = 1; i <= w.clients; i++)
        pthread_join(t[i - 1], NULL);
    final_reads(&w, &k[0]);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    unsigned ops = 0, unknown = 0;
    for (unsigned i = 0; i <= w.clients; i++) {
        for (size_t j = 0; j < k[i].h.n; j++) {
            history_write_op(f, &k[i].h.ops[j]);
            unknown += k[i].h.ops[j].outcome == HIST_UNKNOWN;
        }
        ops += k[i].ops;
        history_free(&k[i].h);
    }
    fclose(f);
    rk_cli_endpoints_free(&eps);
    printf("kv-workload: %u operations (%u of unknown outcome) by %u clients\n", ops, unknown,
           w.clients);
    return 0;
}
