/*
 * raft-bench: drives a raftkv cluster through the C client library's asynchronous API
 * and reports throughput and latency (see options.c for the interface).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_options.h"
#include "driver.h"
#include "options.h"
#include "report.h"
#include "spawn.h"
#include "timeline.h"

#define EXIT_VERIFY 1
#define EXIT_CLUSTER 3
#define READY_TIMEOUT_MS 30000
#define LEADER_SEARCH_MS 5000
/* A transfer takes up to two election timeouts (raftd's bound, 600 ms with the default
 * 150-300 ms); a request timed out before its answer would be retried as a second transfer. */
#define MOVE_REQUEST_TIMEOUT_MS 3000
#define MOVE_TIMEOUT_MS 10000
#define WARMUP_KEY "raft-bench-warmup"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct bench {
    struct bench_options o;
    struct spawned cluster;
    bool spawned;
    struct rk_cli_endpoints eps;
    struct raftkv_client_options tls; /* only its tls_* fields */
    struct raftkv_client **conns;
    struct raftkv_client *admin; /* status queries, warm-up */
    struct raftkv_client *mover; /* --leader-fault move: its own timeouts, its own thread */
    pthread_t move_thread;
    bool moving; /* move_thread runs or awaits its join */
    struct driver d;
    struct timeline timeline;
    struct run_summary sum;
    bool tty;
    bool fault_pending;
    uint64_t next_progress_ns;
};

static struct raftkv_client *client_open(struct bench *b, unsigned timeout_ms,
                                         unsigned request_timeout_ms)
{
    struct raftkv_client_options co;
    raftkv_client_options_defaults(&co);
    co.endpoints = b->eps.urls;
    co.n_endpoints = b->eps.n;
    co.timeout_ms = timeout_ms;
    co.request_timeout_ms = request_timeout_ms;
    co.tls_ca_file = b->tls.tls_ca_file;
    co.tls_cert_file = b->tls.tls_cert_file;
    co.tls_key_file = b->tls.tls_key_file;
    struct raftkv_client *c = NULL;
    int rv = raftkv_client_open(&co, &c);
    if (rv)
        fprintf(stderr, "raft-bench: client: %s\n", raftkv_status_str(rv));
    return rv ? NULL : c;
}

/* Waits until the cluster acknowledges a write, then connects every client instance and
 * has each find the leader, so the measured run starts warm. */
static int connect_all(struct bench *b)
{
    b->admin = client_open(b, READY_TIMEOUT_MS, 500);
    b->conns = calloc(b->o.conns, sizeof *b->conns);
    bool moves = b->o.fault_at_s >= 0 && b->o.fault == FAULT_MOVE;
    if (moves)
        b->mover = client_open(b, MOVE_TIMEOUT_MS, MOVE_REQUEST_TIMEOUT_MS);
    if (!b->admin || !b->conns || (moves && !b->mover))
        return -1;
    struct raftkv_result res;
    int rv = raftkv_put(b->admin, WARMUP_KEY, strlen(WARMUP_KEY), "x", 1, &res);
    raftkv_result_free(&res);
    if (rv != RAFTKV_OK) {
        fprintf(stderr, "raft-bench: the cluster did not accept a write within %d s: %s (%s)\n",
                READY_TIMEOUT_MS / 1000, raftkv_status_str(rv), res.error);
        return -1;
    }
    for (unsigned i = 0; i < b->o.conns; i++) {
        b->conns[i] = client_open(b, b->o.timeout_ms, b->o.request_timeout_ms);
        if (!b->conns[i])
            return -1;
        rv = raftkv_get(b->conns[i], WARMUP_KEY, strlen(WARMUP_KEY), &res);
        raftkv_result_free(&res);
        if (rv != RAFTKV_OK) {
            fprintf(stderr, "raft-bench: warm-up read failed: %s (%s)\n", raftkv_status_str(rv),
                    res.error);
            return -1;
        }
    }
    return 0;
}

/* The node that says it leads, in the highest term; 0 if none within the deadline. */
static uint64_t find_leader(struct bench *b)
{
    uint64_t deadline = now_ns() + (uint64_t)LEADER_SEARCH_MS * 1000000u;
    while (now_ns() < deadline && !interrupted) {
        uint64_t leader = 0, term = 0;
        for (size_t i = 0; i < b->eps.n; i++) {
            struct raftkv_node_status st;
            if (raftkv_status(b->admin, i, &st) == RAFTKV_OK && !strcmp(st.role, "leader") &&
                st.term >= term) {
                leader = st.id;
                term = st.term;
            }
        }
        if (leader)
            return leader;
        nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL);
    }
    return 0;
}

/* The move-leader call blocks until the new leader answers: off the tick's thread, so that
 * the progress line and the end of the run keep their time. */
static void *move_leader_thread(void *arg)
{
    struct bench *b = arg;
    struct raftkv_members m = {0};
    uint64_t t0 = now_ns();
    b->sum.move_status = raftkv_move_leader(b->mover, 0, &m);
    b->sum.move_ms = (double)(now_ns() - t0) / 1e6;
    b->sum.move_leader = m.leader_id;
    snprintf(b->sum.move_error, sizeof b->sum.move_error, "%s", m.error);
    raftkv_members_free(&m);
    return NULL;
}

/* Deals the fault to the leader without waiting for its outcome. Returns 0 or -1. */
static int fault_start(struct bench *b, uint64_t leader)
{
    pid_t pid;
    switch (b->o.fault) {
    case FAULT_MOVE:
        b->moving = pthread_create(&b->move_thread, NULL, move_leader_thread, b) == 0;
        return b->moving ? 0 : -1;
    case FAULT_TERM:
        return spawn_signal(&b->cluster, leader, SIGTERM, &pid);
    default:
        return spawn_signal(&b->cluster, leader, SIGKILL, &pid);
    }
}

static void fault_leader(struct bench *b, struct driver *d)
{
    b->fault_pending = false;
    uint64_t leader = find_leader(b);
    if (!leader) {
        fprintf(stderr, "raft-bench: no leader found for --leader-fault %s\n",
                leader_fault_names[b->o.fault]);
        return;
    }
    uint64_t t = now_ns();
    driver_mark_fault(d, t);
    if (fault_start(b, leader) != 0) {
        atomic_store(&d->fault_ns, 0);
        return;
    }
    b->sum.faulted = true;
    b->sum.fault = b->o.fault;
    b->sum.fault_node = leader;
    b->sum.fault_s = (double)(t - d->start_ns) / 1e9;
}

static void move_join(struct bench *b)
{
    if (b->moving)
        pthread_join(b->move_thread, NULL);
    b->moving = false;
}

static const char *phase_name(enum phase p)
{
    return p == PHASE_PREFILL ? "prefill" : p == PHASE_RUN ? "run" : "verify";
}

static void progress(struct driver *d, uint64_t now, bool last)
{
    double secs = (double)(now - d->start_ns) / 1e9;
    uint64_t n = d->phase == PHASE_RUN ? driver_ops(d) : atomic_load(&d->next);
    if (d->phase != PHASE_RUN && n > d->o->keys)
        n = d->o->keys;
    fprintf(stderr, "\r\033[K[%s %5.1f s] ", phase_name(d->phase), secs);
    if (d->phase == PHASE_RUN)
        fprintf(stderr, "%" PRIu64 " ops, %.0f ops/s, %" PRIu64 " errors", n,
                secs > 0 ? (double)n / secs : 0.0, driver_errors(d));
    else
        fprintf(stderr, "%" PRIu64 " of %" PRIu64 " keys", n, d->o->keys);
    if (last)
        fprintf(stderr, "\r\033[K");
    fflush(stderr);
}

static void tick(struct driver *d, void *arg)
{
    struct bench *b = arg;
    uint64_t now = now_ns();
    if (interrupted)
        atomic_store(&d->stop, true);
    if (d->phase == PHASE_RUN && b->fault_pending &&
        now >= d->start_ns + (uint64_t)(b->o.fault_at_s * 1e9))
        fault_leader(b, d);
    bool over = d->active == 0;
    if (b->tty && (over || now >= b->next_progress_ns)) {
        progress(d, now, over);
        b->next_progress_ns = now + 1000000000u;
    }
}

/* Busy and total CPU ticks of the machine, from /proc/stat (busy: all but idle, iowait). */
static void machine_ticks(uint64_t *busy, uint64_t *total)
{
    *busy = *total = 0;
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    if (f && fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                    &v[4], &v[5], &v[6], &v[7]) == 8) {
        for (int i = 0; i < 8; i++)
            *total += v[i];
        *busy = *total - v[3] - v[4];
    }
    if (f)
        fclose(f);
}

static double process_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static struct gap_s gap_seconds(const struct driver *d, struct gap g)
{
    return (struct gap_s){(double)(g.to_ns - g.from_ns) / 1e6,
                          ((double)g.from_ns - (double)d->start_ns) / 1e9,
                          ((double)g.to_ns - (double)d->start_ns) / 1e9};
}

/* The gap still open at the end of the run counts too (no success after it), if it began
 * before until_ns. Says whether it did. */
static bool gap_close(const struct driver *d, struct gap *g, uint64_t until_ns)
{
    uint64_t last = atomic_load(&d->last_ok_ns), end = d->end_ns;
    bool open = last < until_ns && last < end && end - last > g->to_ns - g->from_ns;
    if (open)
        *g = (struct gap){last, end};
    return open;
}

static void summarise_fault(struct bench *b, struct driver *d)
{
    struct run_summary *r = &b->sum;
    uint64_t fault = atomic_load(&d->fault_ns), first = atomic_load(&d->first_ok_after_fault_ns);
    struct gap near = d->gap_near, after = d->gap_after;
    bool open = gap_close(d, &near, fault + DRIVER_FAULT_WINDOW_NS);
    gap_close(d, &after, UINT64_MAX);
    r->recovered = first != 0 && !open;
    r->gap = gap_seconds(d, near);
    r->after = gap_seconds(d, after);
    r->before = gap_seconds(d, d->gap_before);
    r->recovery_ms = r->recovered ? ((double)near.to_ns - (double)fault) / 1e6 : -1;
}

static int run_phases(struct bench *b)
{
    struct driver *d = &b->d;
    b->sum.prefill_s = -1;
    if (b->o.prefill) {
        driver_run(d, PHASE_PREFILL, tick, b);
        b->sum.prefill_s = (double)(d->phase_end_ns - d->start_ns) / 1e9;
    }
    if (b->o.plot) {
        unsigned width_ms = b->o.duration_s > 0 && b->o.duration_s <= 120 ? 100 : 1000;
        if (timeline_init(&b->timeline, now_ns(), width_ms, 3600 * 4))
            return -1;
        d->timeline = &b->timeline;
    }
    b->fault_pending = b->o.fault_at_s >= 0;
    uint64_t busy0, total0, busy1, total1;
    machine_ticks(&busy0, &total0);
    double cpu0 = process_cpu_s();
    if (d->timeline)
        d->timeline->start_ns = now_ns();
    driver_run(d, PHASE_RUN, tick, b);
    move_join(b);
    machine_ticks(&busy1, &total1);
    b->sum.elapsed_s = (double)(d->phase_end_ns - d->start_ns) / 1e9;
    b->sum.client_cores = (process_cpu_s() - cpu0) / b->sum.elapsed_s;
    b->sum.machine_cpus = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    b->sum.machine_cores = total1 > total0 ? (double)b->sum.machine_cpus * (double)(busy1 - busy0) /
                                                 (double)(total1 - total0)
                                           : -1;
    if (b->sum.faulted)
        summarise_fault(b, d);
    if (b->o.verify && !interrupted) {
        b->sum.unknown_writes = d->ledger.n_unknown;
        driver_run(d, PHASE_VERIFY, tick, b);
        b->sum.verified = true;
        b->sum.verify_ok = !d->verdicts[LEDGER_LOST] && !d->verdicts[LEDGER_UNEXPECTED] &&
                           !d->unverified && !d->stop;
    }
    return 0;
}

static int plot(struct bench *b)
{
    char title[256];
    char mix[96];
    options_mix(&b->o, mix, sizeof mix);
    const char *fault = leader_fault_labels[b->sum.fault];
    snprintf(title, sizeof title, "raftkv %s, %u clients%s%s", mix, b->o.clients,
             b->sum.faulted ? ", " : "", b->sum.faulted ? fault : "");
    return timeline_plot(&b->timeline, b->o.plot, title, b->sum.elapsed_s,
                         b->sum.faulted ? b->sum.fault_s : -1, fault);
}

static void teardown(struct bench *b, bool keep)
{
    for (unsigned i = 0; b->conns && i < b->o.conns; i++)
        raftkv_client_close(b->conns[i]);
    free(b->conns);
    if (b->admin)
        raftkv_client_close(b->admin);
    if (b->mover)
        raftkv_client_close(b->mover);
    if (b->spawned)
        spawn_destroy(&b->cluster, keep);
    if (b->d.o)
        driver_free(&b->d);
    if (b->timeline.buckets)
        timeline_free(&b->timeline);
    rk_cli_endpoints_free(&b->eps);
}

static int bench_main(struct bench *b, const char *prog)
{
    if (b->o.plot && !timeline_gnuplot_found()) {
        fprintf(stderr, "raft-bench: --plot needs gnuplot, which is not installed: on Debian "
                        "'apt-get install gnuplot-nox', or run without --plot\n");
        return 2;
    }
    if (b->o.spawn) {
        if (spawn_start(&b->cluster, b->o.script, b->o.raftd, b->o.spawn, b->o.tls))
            return EXIT_CLUSTER;
        b->spawned = true;
        b->sum.nodes = b->o.spawn;
        if (b->o.tls)
            b->o.files =
                (struct rk_cli_tls){b->cluster.tls_ca, b->cluster.tls_cert, b->cluster.tls_key};
    }
    /* A plain spawned cluster takes no TLS files, not even from the environment. */
    if ((!b->spawned || b->o.tls) && rk_cli_tls_apply("raft-bench", &b->o.files, &b->tls))
        return EXIT_CLUSTER;
    const char *eps = b->spawned ? b->cluster.endpoints : b->o.endpoints;
    b->sum.endpoints = eps;
    int rv = rk_cli_endpoints_split(&b->eps, eps);
    if (rv == EINVAL)
        fprintf(stderr, "raft-bench: no endpoints given\n");
    if (rv)
        return EXIT_CLUSTER;
    if (rk_cli_endpoints_check("raft-bench", &b->eps, b->tls.tls_ca_file != NULL))
        return RK_CLI_EXIT_USAGE;
    if (connect_all(b))
        return EXIT_CLUSTER;
    if (driver_init(&b->d, &b->o, b->conns) || run_phases(b))
        return EXIT_CLUSTER;
    static char command[4096];
    options_command(&b->o, prog, command, sizeof command);
    b->sum.command = command;
    if (b->o.json)
        report_json(stdout, &b->d, &b->sum);
    else
        report_text(stdout, &b->d, &b->sum);
    fflush(stdout);
    if (b->o.plot && plot(b) == 0)
        fprintf(stderr, "raft-bench: plot in %s, figures in %s.dat\n", b->o.plot, b->o.plot);
    return b->sum.verified && !b->sum.verify_ok ? EXIT_VERIFY : 0;
}

int main(int argc, char **argv)
{
    static struct bench b;
    int rv = options_parse(&b.o, argc, argv);
    if (rv)
        return rv == 1 ? 0 : rv;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    b.tty = isatty(STDERR_FILENO);
    rv = bench_main(&b, argv[0]);
    teardown(&b, b.o.keep || rv == EXIT_CLUSTER);
    return rv;
}
