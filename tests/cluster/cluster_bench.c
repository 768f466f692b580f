/*
 * Figures for a local 3-node cluster on 127.0.0.1 (real raftd processes, default timing):
 *   - start of 3 nodes -> first acknowledged put (median of runs)
 *   - kill -9 of the leader -> first acknowledged put after it (median of 10)
 *   - puts/s of one client writing in a loop (sequential), and of 16 concurrent writers
 * Usage: cluster_bench [runs]   (default 10)
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define REQUEST_TIMEOUT_MS 100

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *ms, int n)
{
    qsort(ms, (size_t)n, sizeof ms[0], cmp_u64);
    printf("%-44s median %4llu ms  min %4llu  max %4llu  (%d runs)\n", what,
           (unsigned long long)ms[n / 2], (unsigned long long)ms[0], (unsigned long long)ms[n - 1],
           n);
}

/* Puts until one is acknowledged; returns the ms it took, or UINT64_MAX. */
static uint64_t time_first_put(struct raftkv_client *client)
{
    uint64_t start = now_ms();
    while (now_ms() - start < 20000) {
        struct raftkv_result res;
        memset(&res, 0, sizeof res);
        int rc = raftkv_put(client, "bench", 5, "x", 1, &res);
        raftkv_result_free(&res);
        if (rc == RAFTKV_OK)
            return now_ms() - start;
    }
    return UINT64_MAX;
}

static bool bench_startup(int runs)
{
    uint64_t ms[64];
    for (int r = 0; r < runs; r++) {
        struct cluster c;
        REQUIRE(cluster_init(&c, 3, NULL));
        struct raftkv_client *client = cluster_client_opts(&c, 0, 20000, REQUEST_TIMEOUT_MS);
        uint64_t start = now_ms();
        bool ok = client && cluster_spawn(&c, 1) && cluster_spawn(&c, 2) && cluster_spawn(&c, 3);
        uint64_t t = ok ? time_first_put(client) : UINT64_MAX;
        ms[r] = t == UINT64_MAX ? t : now_ms() - start;
        if (client)
            raftkv_client_close(client);
        cluster_destroy(&c, t == UINT64_MAX);
        REQUIRE(t != UINT64_MAX);
    }
    report("start of 3 nodes -> first put", ms, runs);
    return true;
}

static bool bench_failover(int runs)
{
    struct cluster c;
    REQUIRE(cluster_init(&c, 3, NULL));
    struct raftkv_client *client = cluster_client_opts(&c, 0, 20000, REQUEST_TIMEOUT_MS);
    bool ok = client && cluster_start_all(&c);
    uint64_t ms[64];
    for (int r = 0; ok && r < runs; r++) {
        uint64_t leader = cluster_wait_leader(&c, 10000), rev;
        ok = leader && cluster_put_retry(&c, "warm", "x", 10000, &rev);
        for (int i = 1; ok && i <= 3; i++)
            ok = cluster_wait_applied(&c, i, rev, 10000);
        if (!ok)
            break;
        uint64_t start = now_ms();
        cluster_stop(&c, (int)leader, SIGKILL);
        uint64_t t = time_first_put(client);
        ms[r] = t == UINT64_MAX ? t : now_ms() - start;
        ok = t != UINT64_MAX && cluster_start(&c, (int)leader);
    }
    if (ok)
        report("kill -9 leader -> first put after it", ms, runs);
    if (client)
        raftkv_client_close(client);
    cluster_destroy(&c, !ok);
    return ok;
}

struct writer {
    struct cluster *c;
    int id;
    uint64_t until;
    long puts;
    pthread_t thread;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct raftkv_client *client = cluster_client_opts(w->c, 0, 5000, 1000);
    char key[32], value[100];
    memset(value, 'v', sizeof value);
    for (long i = 0; client && now_ms() < w->until; i++) {
        snprintf(key, sizeof key, "t%d-%ld", w->id, i % 1000);
        struct raftkv_result res;
        memset(&res, 0, sizeof res);
        int rc = raftkv_put(client, key, strlen(key), value, sizeof value, &res);
        raftkv_result_free(&res);
        if (rc != RAFTKV_OK)
            break;
        w->puts++;
    }
    if (client)
        raftkv_client_close(client);
    return NULL;
}

static bool bench_throughput(int threads, unsigned seconds)
{
    struct cluster c;
    REQUIRE(cluster_init(&c, 3, NULL));
    bool ok = cluster_start_all(&c) && cluster_wait_leader(&c, 10000) &&
              cluster_put_retry(&c, "warm", "x", 10000, NULL);
    struct writer w[64];
    uint64_t start = now_ms();
    for (int i = 0; ok && i < threads; i++) {
        w[i] = (struct writer){.c = &c, .id = i, .until = start + seconds * 1000};
        ok = pthread_create(&w[i].thread, NULL, writer_main, &w[i]) == 0;
    }
    long total = 0;
    for (int i = 0; ok && i < threads; i++) {
        pthread_join(w[i].thread, NULL);
        total += w[i].puts;
    }
    double secs = (double)(now_ms() - start) / 1000.0;
    if (ok)
        printf("puts/s, %2d concurrent writer%s (100-byte values): %8.0f  (%ld puts in %.1f s)\n",
               threads, threads == 1 ? " " : "s", (double)total / secs, total, secs);
    cluster_destroy(&c, !ok);
    return ok;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    int runs = argc > 1 ? atoi(argv[1]) : 10;
    if (runs < 1 || runs > 64)
        runs = 10;
    bool ok = bench_startup(runs) && bench_failover(runs) && bench_throughput(1, 5) &&
              bench_throughput(16, 5);
    return ok ? 0 : 1;
}
