#include "cli_options.h"
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"

const char *const op_kind_names[N_KINDS] = {"put", "get", "cas"};

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
            "  --kill-leader-at S     with --spawn: kill -9 the leader S seconds into the run;\n"
            "                         reports the unavailability window and verifies (--verify)\n"
            "  --verify               after the run read back every key written and check that\n"
            "                         every acknowledged write survived\n"
            "output:\n"
            "  --json                 one JSON object on stdout instead of the table\n"
            "  --plot FILE.svg|.png   throughput and p99 over time (gnuplot; figures in FILE.dat)\n"
            "  --help\n"
            "\n"
            "Latencies are of successful operations; a get of a missing key and a cas mismatch\n"
            "are successes. A progress line is shown when stderr is a terminal.\n"
            "exit status: 0 done; 1 verification found a lost or unexpected value, or could\n"
            "not check every key; 2 usage error; 3 the cluster could not be started or reached.\n");
}

static int usage_error(const char *fmt, const char *what)
{
    fprintf(stderr, "raft-bench: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\nTry 'raft-bench --help'.\n");
    return 2;
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || s[0] == '-')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
    uint64_t v;
    if (!parse_u64(s, min, max, &v))
        return false;
    *out = (unsigned)v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    if (!s || !*s)
        return false;
    double v = strtod(s, &end);
    if (*end || errno || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* "10", "2.5s", "500ms", "1m" -> seconds. */
static bool parse_seconds(const char *s, double *out)
{
    char num[64];
    double scale = 1.0;
    size_t n = s ? strlen(s) : 0;
    if (!n || n >= sizeof num)
        return false;
    memcpy(num, s, n + 1);
    if (n > 2 && !strcmp(num + n - 2, "ms")) {
        scale = 1e-3;
        num[n - 2] = '\0';
    } else if (num[n - 1] == 's' || num[n - 1] == 'm') {
        scale = num[n - 1] == 'm' ? 60.0 : 1.0;
        num[n - 1] = '\0';
    }
    double v;
    if (!parse_double(num, &v) || v < 0)
        return false;
    *out = v * scale;
    return true;
}

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
        if (kind < 0 || !parse_uint(eq + 1, 0, 1000000, &mix[kind]))
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
    o->kill_at_s = -1;
    o->timeout_ms = 5000;
    o->request_timeout_ms = 1000;
    o->seed = 1;
    o->script = BENCH_CLUSTER_SH;
#ifdef BENCH_RAFTD
    o->raftd = BENCH_RAFTD;
#endif
}

/* Options taking a value; returns -1 when argv[*i] is none of them. */
static int parse_valued(struct bench_options *o, int argc, char **argv, int *i, bool *ops_given)
{
    const char *v, *a = argv[*i];
    uint64_t u;
#define OPT(name) rk_cli_option(argc, argv, i, name, &v)
#define BAD(what) usage_error("%s " what, a)
    if (OPT("--endpoints"))
        o->endpoints = v && *v ? v : NULL;
    else if (OPT("--spawn")) {
        if (!parse_uint(v, 1, 9, (unsigned *)&o->spawn))
            return BAD("needs a node count from 1 to 9");
    } else if (OPT("--clients")) {
        if (!parse_uint(v, 1, 100000, &o->clients))
            return BAD("needs a number from 1 to 100000");
    } else if (OPT("--conns")) {
        if (!parse_uint(v, 1, 1024, &o->conns))
            return BAD("needs a number from 1 to 1024");
    } else if (OPT("--duration")) {
        if (!parse_seconds(v, &o->duration_s) || o->duration_s <= 0 || o->duration_s > 86400)
            return BAD("needs a positive number of seconds (at most a day)");
    } else if (OPT("--ops")) {
        if (!parse_u64(v, 1, UINT64_MAX / 2, &o->ops))
            return BAD("needs a positive number");
        *ops_given = true;
    } else if (OPT("--value-size")) {
        if (!parse_uint(v, LEDGER_ID_BYTES, 64u << 20, &o->value_size))
            return BAD("needs a size from 16 bytes to 64 MiB");
    } else if (OPT("--keys")) {
        if (!parse_u64(v, 1, (uint64_t)1 << 40, &o->keys))
            return BAD("needs a positive number");
    } else if (OPT("--zipf")) {
        if (!parse_double(v, &o->zipf) || o->zipf <= 0 || o->zipf > 100)
            return BAD("needs an exponent > 0");
    } else if (OPT("--mix")) {
        if (!parse_mix(v, o->mix))
            return BAD("needs put=P,get=G,cas=C with integer weights, not all 0");
    } else if (OPT("--consistency")) {
        if (!v || strcmp(v, "linearizable") != 0)
            return usage_error("%s: only 'linearizable' exists: every read is a ReadIndex read "
                               "at the leader (no serializable or lease reads yet)",
                               a);
    } else if (OPT("--workers")) {
        if (!parse_uint(v, 0, 256, &o->workers))
            return BAD("needs a number from 0 to 256");
    } else if (OPT("--timeout")) {
        if (!parse_uint(v, 1, 3600000, &o->timeout_ms))
            return BAD("needs milliseconds");
    } else if (OPT("--request-timeout")) {
        if (!parse_uint(v, 1, 3600000, &o->request_timeout_ms))
            return BAD("needs milliseconds");
    } else if (OPT("--seed")) {
        if (!parse_u64(v, 0, UINT64_MAX, &u))
            return BAD("needs a number");
        o->seed = u;
    } else if (OPT("--kill-leader-at")) {
        if (!parse_seconds(v, &o->kill_at_s))
            return BAD("needs seconds into the run");
    } else if (OPT("--plot")) {
        if (!v || !*v || strpbrk(v, "'\"\n\\"))
            return BAD("needs a file name (without quotes or backslashes)");
        o->plot = v;
    } else if (OPT("--cluster-script")) {
        if (!v || !*v)
            return BAD("needs a path");
        o->script = v;
    } else if (OPT("--raftd")) {
        if (!v || !*v)
            return BAD("needs a path");
        o->raftd = v;
    } else
        return -1;
#undef OPT
#undef BAD
    return 0;
}

static int check(struct bench_options *o, bool ops_given)
{
    if (!o->spawn == !o->endpoints)
        return usage_error("%s", "give exactly one of --spawn N and --endpoints");
    if (ops_given)
        o->duration_s = 0;
    if (o->kill_at_s >= 0) {
        if (!o->spawn)
            return usage_error("%s", "--kill-leader-at needs --spawn (it kills a node it started)");
        if (ops_given)
            return usage_error("%s", "--kill-leader-at needs --duration, not --ops");
        if (o->kill_at_s >= o->duration_s)
            return usage_error("%s", "--kill-leader-at must fall within --duration");
        o->verify = true;
    }
    if (o->keep && !o->spawn)
        return usage_error("%s", "--keep goes with --spawn");
    if (o->plot) {
        const char *ext = strrchr(o->plot, '.');
        if (!ext || (strcmp(ext, ".svg") && strcmp(ext, ".png")))
            return usage_error("%s", "--plot needs a file name ending in .svg or .png");
    }
    if (!o->conns)
        o->conns = o->clients < 16 ? o->clients : 16;
    if (o->conns > o->clients)
        return usage_error("%s", "--conns cannot exceed --clients");
    return 0;
}

int options_parse(struct bench_options *o, int argc, char **argv)
{
    defaults(o);
    bool ops_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(a, "--prefill"))
            o->prefill = true;
        else if (!strcmp(a, "--verify"))
            o->verify = true;
        else if (!strcmp(a, "--json"))
            o->json = true;
        else if (!strcmp(a, "--keep"))
            o->keep = true;
        else {
            int rv = parse_valued(o, argc, argv, &i, &ops_given);
            if (rv < 0)
                return usage_error("unknown option '%s'", a);
            if (rv)
                return rv;
        }
    }
    return check(o, ops_given);
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
        append(out, size, "--spawn %d", o->spawn);
    else
        append(out, size, "--endpoints %s", o->endpoints);
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
    if (o->kill_at_s >= 0)
        append(out, size, "--kill-leader-at %g", o->kill_at_s);
    else if (o->verify)
        append(out, size, "--verify");
    if (o->plot)
        append(out, size, "--plot %s", o->plot);
    if (o->json)
        append(out, size, "--json");
}
