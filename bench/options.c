#include "options.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_options.h"
#include "cli/version.h"
#include "ledger.h"

const char *const op_kind_names[N_KINDS] = {"put", "get", "cas"};
const char *const leader_fault_names[N_FAULTS] = {"kill", "term", "move"};
const char *const leader_fault_labels[N_FAULTS] = {"kill -9 leader", "SIGTERM leader",
                                                   "move leader"};

#ifndef BENCH_CLUSTER_SH
#define BENCH_CLUSTER_SH "deploy/cluster.sh"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: raft-bench (--spawn N | --endpoints A,B,C) [options]\n"
            "\n"
            "Closed-loop load on a raftkv cluster through the C client library: each of\n"
            "--clients keeps exactly one request in flight, issuing the next when the last\n"
            "completes.\n"
            "\n"
            "cluster:\n"
            "  --endpoints A,B,C      client addresses of a running cluster\n"
            "  --spawn N              start a local N-node cluster in a temporary directory with\n"
            "                         deploy/cluster.sh, stop and delete it after the run\n"
            "  --keep                 with --spawn: keep the directory (nodes are stopped)\n"
            "  --cluster-script PATH  cluster.sh to use (default: " BENCH_CLUSTER_SH ")\n"
            "  --raftd PATH           raftd binary for --spawn (default: the one built with\n"
            "                         raft-bench, else cluster.sh's choice)\n"
            "  --tls                  with --spawn: a TLS cluster (cluster.sh -t), used with\n"
            "                         its client certificate\n"
            "  --tls-ca FILE, --tls-cert FILE, --tls-key FILE  with --endpoints: the\n"
            "                         cluster's CA, the client's certificate and key (default:\n"
            "                         RAFTKV_TLS_CA, RAFTKV_TLS_CERT, RAFTKV_TLS_KEY)\n"
            "load:\n"
            "  --clients N            requests in flight (default 16)\n"
            "  --conns N              client library instances (each its own sockets) the\n"
            "                         clients are spread over (default min(clients, 16))\n"
            "  --duration SECONDS     run length (default 10; a number, or with s/ms/m)\n"
            "  --ops N                total operations instead of a duration\n"
            "  --value-size BYTES     value size of puts and cas (default 100, at least 16:\n"
            "                         a value starts with its write's id, in hex)\n"
            "  --keys N               key space (default 100000): keys k000000000000000...\n"
            "  --zipf S               Zipf-distributed keys with exponent S > 0 (default:\n"
            "                         uniform); key 0 is the most popular\n"
            "  --mix put=P,get=G,cas=C  weights of the operations (default put=100); a cas\n"
            "                         expects the key's last value this run acknowledged\n"
            "                         (absent if none), so concurrent writers make it miss\n"
            "  --consistency linearizable  the only read level today: every get is\n"
            "                         linearizable (ReadIndex at the leader, no log write)\n"
            "  --prefill              put every key once before the measured run\n"
            "  --workers N            issue requests from N worker threads instead of from the\n"
            "                         completion callback (default 0: from the callback)\n"
            "  --timeout MS           client deadline per operation (default 5000)\n"
            "  --request-timeout MS   client deadline per request to one node (default 1000)\n"
            "  --seed N               random seed (default 1)\n"
            "faults and checks:\n"
            "  --kill-leader-at S     with --spawn: a fault of the leader S seconds into the\n"
            "                         run (--leader-fault); reports the unavailability window\n"
            "                         and verifies (--verify)\n"
            "  --leader-fault kill|term|move  what happens at --kill-leader-at (default kill):\n"
            "                         kill = kill -9 of the leader's process, term = SIGTERM\n"
            "                         (raftd hands the lead over before it exits), move =\n"
            "                         move-leader to the voter with the most of the log\n"
            "  --verify               after the run read back every key written and check that\n"
            "                         every acknowledged write survived\n"
            "output:\n"
            "  --json                 one JSON object on stdout instead of the table\n"
            "  --plot FILE.svg|.png   throughput and p99 over time (gnuplot; figures in FILE.dat)\n"
            "  --help, --version\n"
            "\n"
            "Latencies are of successful operations; a get of a missing key and a cas mismatch\n"
            "are successes. A progress line is shown when stderr is a terminal.\n"
            "exit status: 0 done; 1 verification found a lost or unexpected value, or could\n"
            "not check every key; 2 usage error; 3 the cluster could not be started or reached.\n");
}

#define PROG "raft-bench"

static bool parse_mix(const char *s, unsigned mix[N_KINDS])
{
    char buf[128];
    if (!s || strlen(s) >= sizeof buf)
        return false;
    snprintf(buf, sizeof buf, "%s", s);
    memset(mix, 0, N_KINDS * sizeof mix[0]);
    unsigned total = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq)
            return false;
        *eq = '\0';
        int kind = -1;
        for (int k = 0; k < N_KINDS; k++)
            kind = strcmp(t, op_kind_names[k]) == 0 ? k : kind;
        if (kind < 0 || !rk_cli_parse_uint(eq + 1, 0, 1000000, &mix[kind]))
            return false;
        total += mix[kind];
    }
    return total > 0;
}

static void defaults(struct bench_options *o)
{
    memset(o, 0, sizeof *o);
    o->clients = 16;
    o->duration_s = 10;
    o->value_size = 100;
    o->keys = 100000;
    o->mix[OP_PUT] = 100;
    o->fault_at_s = -1;
    o->fault = N_FAULTS; /* not given: check() makes it kill, if there is a fault */
    o->timeout_ms = 5000;
    o->request_timeout_ms = 1000;
    o->seed = 1;
    o->script = BENCH_CLUSTER_SH;
#ifdef BENCH_RAFTD
    o->raftd = BENCH_RAFTD;
#endif
}

enum option_id {
    OPT_ENDPOINTS = RK_CLI_LONG_ONLY,
    OPT_SPAWN,
    OPT_KEEP,
    OPT_CLUSTER_SCRIPT,
    OPT_RAFTD,
    OPT_CLIENTS,
    OPT_CONNS,
    OPT_DURATION,
    OPT_OPS,
    OPT_VALUE_SIZE,
    OPT_KEYS,
    OPT_ZIPF,
    OPT_MIX,
    OPT_CONSISTENCY,
    OPT_PREFILL,
    OPT_WORKERS,
    OPT_TIMEOUT,
    OPT_REQUEST_TIMEOUT,
    OPT_SEED,
    OPT_KILL_LEADER_AT,
    OPT_LEADER_FAULT,
    OPT_VERIFY,
    OPT_JSON,
    OPT_PLOT,
    OPT_HELP,
    OPT_VERSION,
    OPT_TLS,
    OPT_TLS_CA,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
};

static const struct option long_options[] = {
    {"endpoints", required_argument, NULL, OPT_ENDPOINTS},
    {"spawn", required_argument, NULL, OPT_SPAWN},
    {"keep", no_argument, NULL, OPT_KEEP},
    {"cluster-script", required_argument, NULL, OPT_CLUSTER_SCRIPT},
    {"raftd", required_argument, NULL, OPT_RAFTD},
    {"clients", required_argument, NULL, OPT_CLIENTS},
    {"conns", required_argument, NULL, OPT_CONNS},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"ops", required_argument, NULL, OPT_OPS},
    {"value-size", required_argument, NULL, OPT_VALUE_SIZE},
    {"keys", required_argument, NULL, OPT_KEYS},
    {"zipf", required_argument, NULL, OPT_ZIPF},
    {"mix", required_argument, NULL, OPT_MIX},
    {"consistency", required_argument, NULL, OPT_CONSISTENCY},
    {"prefill", no_argument, NULL, OPT_PREFILL},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
    {"seed", required_argument, NULL, OPT_SEED},
    {"kill-leader-at", required_argument, NULL, OPT_KILL_LEADER_AT},
    {"leader-fault", required_argument, NULL, OPT_LEADER_FAULT},
    {"verify", no_argument, NULL, OPT_VERIFY},
    {"json", no_argument, NULL, OPT_JSON},
    {"plot", required_argument, NULL, OPT_PLOT},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {"tls", no_argument, NULL, OPT_TLS},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {NULL, 0, NULL, 0},
};

/* The options that shape the load. arg is NULL when the value is missing. */
static int apply_load_option(struct bench_options *o, int id, const char *arg)
{
    bool ok = true;
    const char *why = NULL;
    switch (id) {
    case OPT_CLIENTS:
        ok = rk_cli_parse_uint(arg, 1, 100000, &o->clients);
        why = "--clients needs a number from 1 to 100000";
        break;
    case OPT_CONNS:
        ok = rk_cli_parse_uint(arg, 1, 1024, &o->conns);
        why = "--conns needs a number from 1 to 1024";
        break;
    case OPT_DURATION:
        ok = rk_cli_parse_seconds(arg, &o->duration_s) && o->duration_s > 0 &&
             o->duration_s <= 86400;
        why = "--duration needs a positive number of seconds (at most a day)";
        break;
    case OPT_OPS:
        ok = rk_cli_parse_u64(arg, 1, UINT64_MAX / 2, &o->ops);
        why = "--ops needs a positive number";
        break;
    case OPT_VALUE_SIZE:
        ok = rk_cli_parse_uint(arg, LEDGER_ID_BYTES, 64u << 20, &o->value_size);
        why = "--value-size needs a size from 16 bytes to 64 MiB";
        break;
    case OPT_KEYS:
        ok = rk_cli_parse_u64(arg, 1, (uint64_t)1 << 40, &o->keys);
        why = "--keys needs a positive number";
        break;
    case OPT_ZIPF:
        ok = rk_cli_parse_double(arg, &o->zipf) && o->zipf > 0 && o->zipf <= 100;
        why = "--zipf needs an exponent > 0";
        break;
    case OPT_MIX:
        ok = parse_mix(arg, o->mix);
        why = "--mix needs put=P,get=G,cas=C with integer weights, not all 0";
        break;
    case OPT_CONSISTENCY:
        ok = arg && !strcmp(arg, "linearizable");
        why = "--consistency: only 'linearizable' exists: every read is a ReadIndex read at "
              "the leader (no serializable or lease reads yet)";
        break;
    case OPT_WORKERS:
        ok = rk_cli_parse_uint(arg, 0, 256, &o->workers);
        why = "--workers needs a number from 0 to 256";
        break;
    case OPT_TIMEOUT:
        ok = rk_cli_parse_uint(arg, 1, 3600000, &o->timeout_ms);
        why = "--timeout needs milliseconds";
        break;
    case OPT_REQUEST_TIMEOUT:
        ok = rk_cli_parse_uint(arg, 1, 3600000, &o->request_timeout_ms);
        why = "--request-timeout needs milliseconds";
        break;
    case OPT_SEED:
        ok = rk_cli_parse_u64(arg, 0, UINT64_MAX, &o->seed);
        why = "--seed needs a number";
        break;
    }
    return ok ? 0 : rk_cli_usage_error(PROG, "%s", why);
}

/* The options of the cluster, the checks and the output; the others shape the load. */
static int apply_option(struct bench_options *o, int id, const char *arg)
{
    switch (id) {
    case 'h':
    case OPT_HELP:
        usage(stdout);
        return 1;
    case OPT_VERSION:
        printf("raft-bench %s\n", rk_version());
        return 1;
    case OPT_ENDPOINTS:
        o->endpoints = arg && *arg ? arg : NULL;
        return 0;
    case OPT_SPAWN:
        if (!rk_cli_parse_uint(arg, 1, 9, (unsigned *)&o->spawn))
            return rk_cli_usage_error(PROG, "--spawn needs a node count from 1 to 9");
        return 0;
    case OPT_KEEP:
        o->keep = true;
        return 0;
    case OPT_CLUSTER_SCRIPT:
        o->script = arg && *arg ? arg : NULL;
        return o->script ? 0 : rk_cli_usage_error(PROG, "--cluster-script needs a path");
    case OPT_RAFTD:
        o->raftd = arg && *arg ? arg : NULL;
        return o->raftd ? 0 : rk_cli_usage_error(PROG, "--raftd needs a path");
    case OPT_PREFILL:
        o->prefill = true;
        return 0;
    case OPT_TLS:
        o->tls = true;
        return 0;
    case OPT_TLS_CA:
    case OPT_TLS_CERT:
    case OPT_TLS_KEY:
        if (!arg || !*arg)
            return rk_cli_usage_error(PROG, "--tls-ca, --tls-cert and --tls-key need a file");
        *(id == OPT_TLS_CA     ? &o->files.ca
          : id == OPT_TLS_CERT ? &o->files.cert
                               : &o->files.key) = arg;
        return 0;
    case OPT_KILL_LEADER_AT:
        if (!rk_cli_parse_seconds(arg, &o->fault_at_s))
            return rk_cli_usage_error(PROG, "--kill-leader-at needs seconds into the run");
        return 0;
    case OPT_LEADER_FAULT:
        for (o->fault = 0; o->fault < N_FAULTS; o->fault++) {
            if (arg && !strcmp(arg, leader_fault_names[o->fault]))
                return 0;
        }
        return rk_cli_usage_error(PROG, "--leader-fault needs kill, term or move");
    case OPT_VERIFY:
        o->verify = true;
        return 0;
    case OPT_JSON:
        o->json = true;
        return 0;
    case OPT_PLOT:
        if (!arg || !*arg || strpbrk(arg, "'\"\n\\"))
            return rk_cli_usage_error(PROG,
                                      "--plot needs a file name (without quotes or backslashes)");
        o->plot = arg;
        return 0;
    }
    return apply_load_option(o, id, arg);
}

static int check(struct bench_options *o)
{
    if (!o->spawn == !o->endpoints)
        return rk_cli_usage_error(PROG, "give exactly one of --spawn N and --endpoints");
    if (o->ops)
        o->duration_s = 0;
    if (o->fault != N_FAULTS && o->fault_at_s < 0)
        return rk_cli_usage_error(PROG, "--leader-fault needs --kill-leader-at (when)");
    if (o->fault_at_s >= 0) {
        if (!o->spawn)
            return rk_cli_usage_error(
                PROG, "--kill-leader-at needs --spawn (it signals a node it started)");
        if (o->ops)
            return rk_cli_usage_error(PROG, "--kill-leader-at needs --duration, not --ops");
        if (o->fault_at_s >= o->duration_s)
            return rk_cli_usage_error(PROG, "--kill-leader-at must fall within --duration");
        o->verify = true;
    }
    o->fault = o->fault == N_FAULTS ? FAULT_KILL : o->fault;
    if (o->keep && !o->spawn)
        return rk_cli_usage_error(PROG, "--keep goes with --spawn");
    if (o->tls && !o->spawn)
        return rk_cli_usage_error(PROG, "--tls goes with --spawn (with --endpoints: --tls-ca)");
    if (o->spawn && (o->files.ca || o->files.cert || o->files.key))
        return rk_cli_usage_error(PROG, "--tls-ca, --tls-cert and --tls-key go with "
                                        "--endpoints (with --spawn: --tls)");
    if (o->plot) {
        const char *ext = strrchr(o->plot, '.');
        if (!ext || (strcmp(ext, ".svg") && strcmp(ext, ".png")))
            return rk_cli_usage_error(PROG, "--plot needs a file name ending in .svg or .png");
    }
    if (!o->conns)
        o->conns = o->clients < 16 ? o->clients : 16;
    if (o->conns > o->clients)
        return rk_cli_usage_error(PROG, "--conns cannot exceed --clients");
    return 0;
}

int options_parse(struct bench_options *o, int argc, char **argv)
{
    defaults(o);
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        /* A missing value (':') is told by the option's own check of its value. */
        int rv = c == '?'   ? rk_cli_option_refused(PROG, argv, long_options)
                 : c == ':' ? apply_option(o, optopt, NULL)
                            : apply_option(o, c, optarg);
        if (rv)
            return rv;
    }
    if (optind < argc)
        return rk_cli_usage_error(PROG, "unexpected argument '%s'", argv[optind]);
    return check(o);
}

void options_mix(const struct bench_options *o, char *out, size_t size)
{
    snprintf(out, size, "put=%u,get=%u,cas=%u", o->mix[OP_PUT], o->mix[OP_GET], o->mix[OP_CAS]);
}

/* Appends a space and the formatted text, if it fits. */
__attribute__((format(printf, 3, 4))) static void append(char *out, size_t size, const char *fmt,
                                                         ...)
{
    size_t n = strlen(out);
    if (n + 1 >= size)
        return;
    out[n++] = ' ';
    out[n] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + n, size - n, fmt, ap);
    va_end(ap);
}

void options_command(const struct bench_options *o, const char *prog, char *out, size_t size)
{
    char mix[96];
    options_mix(o, mix, sizeof mix);
    snprintf(out, size, "%s", prog);
    if (o->spawn)
        append(out, size, "--spawn %d%s", o->spawn, o->tls ? " --tls" : "");
    else
        append(out, size, "--endpoints %s", o->endpoints);
    if (!o->spawn && o->files.ca)
        append(out, size, "--tls-ca %s", o->files.ca);
    if (!o->spawn && o->files.cert)
        append(out, size, "--tls-cert %s --tls-key %s", o->files.cert, o->files.key);
    append(out, size, "--clients %u --conns %u", o->clients, o->conns);
    if (o->ops)
        append(out, size, "--ops %llu", (unsigned long long)o->ops);
    else
        append(out, size, "--duration %g", o->duration_s);
    append(out, size, "--value-size %u --keys %llu", o->value_size, (unsigned long long)o->keys);
    if (o->zipf > 0)
        append(out, size, "--zipf %g", o->zipf);
    append(out, size, "--mix %s", mix);
    if (o->prefill)
        append(out, size, "--prefill");
    if (o->workers)
        append(out, size, "--workers %u", o->workers);
    append(out, size, "--timeout %u --request-timeout %u --seed %llu", o->timeout_ms,
           o->request_timeout_ms, (unsigned long long)o->seed);
    if (o->fault_at_s >= 0)
        append(out, size, "--kill-leader-at %g --leader-fault %s", o->fault_at_s,
               leader_fault_names[o->fault]);
    else if (o->verify)
        append(out, size, "--verify");
    if (o->plot)
        append(out, size, "--plot %s", o->plot);
    if (o->json)
        append(out, size, "--json");
}
