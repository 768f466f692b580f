/* raft-kv: the command-line client. See usage() for the interface and exit codes. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_options.h"
#include "cli/version.h"
#include "json/json_bytes.h"
#include "raftkv/client.h"

#define PROG "raft-kv"

#define EXIT_MISS 1        /* key not found, CAS mismatch */
#define EXIT_UNAVAILABLE 3 /* no answer within the timeout */
#define EXIT_INTERNAL 4    /* out of memory, a node reported an internal error */
/* A bad command line, or a request the cluster rejects as invalid. */
#define EXIT_USAGE RK_CLI_EXIT_USAGE

/* What health reads through the leader: an ordinary key, found or not. */
#define HEALTH_KEY "raftkv-health"

static void usage(FILE *f)
{
    fprintf(
        f, "usage: raft-kv [options] COMMAND [ARGS]\n"
           "\n"
           "commands:\n"
           "  put KEY VALUE             set KEY to VALUE ('-': the bytes read from stdin)\n"
           "  put --value-file PATH KEY set KEY to the bytes of the file PATH\n"
           "  get KEY                   print the value of KEY\n"
           "  list [--prefix P | --from K [--to E]] [--limit N]\n"
           "                            print the keys starting with P, or from K (inclusive)\n"
           "                            to E (exclusive), in byte order, with their values;\n"
           "                            at most N of them (default: all)\n"
           "  delete KEY                remove KEY\n"
           "  cas KEY EXPECTED NEW      set KEY to NEW if its value is EXPECTED\n"
           "  cas --absent KEY NEW      set KEY to NEW only if KEY does not exist\n"
           "                            (cas's NEW may be '-' or --value-file PATH, as put's)\n"
           "  status [--cluster]        show every endpoint's view of the cluster; --cluster:\n"
           "                            of every member the leader names instead\n"
           "  health                    check that a quorum of the endpoints answers and a\n"
           "                            leader serves a linearizable read (a get of the key\n"
           "                            " HEALTH_KEY ", found or not); prints how many nodes\n"
           "                            answered and which leads\n"
           "  member list               list the members as the leader knows them\n"
           "  member add-learner ID PEER_ADDR CLIENT_ADDR\n"
           "                            add member ID as a learner (it receives the log but\n"
           "                            does not vote), with its Raft and client addresses\n"
           "  member promote ID         make learner ID a voter (refused while it lags)\n"
           "  member remove ID          remove member ID\n"
           "  move-leader [ID]          hand the lead to voter ID (default: the voter with\n"
           "                            the most of the log); waits until it leads\n"
           "\n"
           "options (anywhere before a '--'; after it every word is an argument, so a value\n"
           "may start with '-': raft-kv put -- k -1):\n"
           "  --endpoints A,B,C         client addresses of the nodes; default: the\n"
           "                            RAFTKV_ENDPOINTS environment variable, else\n"
           "                            " RK_CLI_DEFAULT_ENDPOINTS "\n"
           "  --timeout MS              overall deadline per operation (default 5000)\n"
           "  --request-timeout MS      deadline of one request to one node (default 1000)\n"
           "  --attempts N              tries before giving up (default 100)\n"
           "  --retry-delay MS          first backoff, doubled per retry up to 50 ms (default 20)\n"
           "  --tls-ca FILE             the cluster's CA (PEM), for tls+tcp:// endpoints: every\n"
           "                            node's certificate must come from it; default: the\n"
           "                            RAFTKV_TLS_CA environment variable\n"
           "  --tls-cert FILE           this client's certificate, for nodes that require one\n"
           "                            (RAFTKV_TLS_CERT)\n"
           "  --tls-key FILE            its private key, unencrypted (RAFTKV_TLS_KEY)\n"
           "  --json                    print one JSON object on stdout (see below)\n"
           "  --help, --version\n"
           "\n"
           "A value read from stdin or a file is taken byte for byte, up to 1GiB (the most a\n"
           "node accepts); a value of '-' itself is given with --value-file.\n"
           "\n"
           "output: get prints the value followed by a newline; put, delete and a successful\n"
           "cas print OK; a failed cas prints the current value (if the key exists) like get.\n"
           "list prints a line per key: the key, a tab, the value. It reads 1000 keys a\n"
           "request, each a linearizable read of its own, following until N keys or the\n"
           "end; nothing found is no error.\n"
           "status prints a table, one row per endpoint; unreachable ones say so. health\n"
           "prints one line: \"healthy: 3 of 3 nodes answered, leader 2 (term 4)\", or\n"
           "\"unhealthy: 1 of 3 nodes answered, no quorum\" (or why no leader served).\n"
           "The member commands and move-leader print the membership as a table: id, role,\n"
           "addresses, match index, how many entries behind the leader, healthy (answered\n"
           "the leader within an election timeout), then who leads and whether the\n"
           "membership is committed or a change is pending. A member change is answered once\n"
           "committed. When one ends unavailable its outcome is unknown (it may have been\n"
           "made, e.g. before a lost answer): member list tells.\n"
           "When a command finds the cluster unavailable, raft-kv then asks every endpoint\n"
           "for its status (at most --request-timeout more) and says how many answered.\n"
           "\n"
           "--json: {\"result\": \"ok\" | \"not_found\" | \"cas_mismatch\" | \"invalid\" |\n"
           "\"unavailable\" | \"session_expired\" | \"internal\", ...}. get adds key, value,\n"
           "create_revision, mod_revision; writes add revision; cas_mismatch adds exists and\n"
           "(if it exists) the current value with its revisions; list adds kvs: [{key,\n"
           "value, create_revision, mod_revision}], more (keys remain after the last one)\n"
           "and revision (the store's applied index its first read saw); failures add error, and\n"
           "\"unavailable\" adds what the endpoints said next: answered, configured (how\n"
           "many endpoints were given), quorum (a majority of them), leader (0: none named)\n"
           "and term (the highest any node answered with). status adds nodes: [{endpoint,\n"
           "reachable, id, role, term, leader, commit, applied, last_index, counters}]:\n"
           "counters are what the node counted since it started (its Raft core's dropped\n"
           "messages, elections, rejections and snapshots; its peer transport's messages\n"
           "sent, dropped, received, malformed). health adds healthy (true or false),\n"
           "answered, configured, quorum, leader, term, nodes (as status) and, when\n"
           "unhealthy, reason (\"no quorum\" or \"no leader served a read\") and, for the\n"
           "latter, error. member and move-leader add leader, term, configuration_index,\n"
           "committed, last_index and members: [{id, role, peer_address, client_address,\n"
           "match_index, behind, healthy}].\n"
           "Keys and values are JSON strings when they are valid UTF-8; otherwise they are\n"
           "base64 (RFC 4648) and a field \"key_encoding\" / \"value_encoding\": \"base64\"\n"
           "says so. Usage errors are reported on stderr only, also with --json.\n"
           "\n"
           "exit status: 0 success (health: healthy); 1 key not found or cas mismatch;\n"
           "2 usage error or a request the cluster rejects as invalid; 3 cluster unavailable\n"
           "within the timeout, or a write's session expired while it was retried (status:\n"
           "no endpoint answered; health: unhealthy): a write's outcome is then unknown,\n"
           "but it is never applied twice; a member change's or move-leader's too; 4\n"
           "internal error.\n");
}

struct cli;

#define MAX_COMMAND_OPTIONS 4

/* The global options (global_options) come before the command word, and may also follow
 * it as they always could; a command's own options follow it. */
struct command {
    const char *name;
    int n_args;
    struct option options[MAX_COMMAND_OPTIONS]; /* its own, after the command word */
    int (*run)(const struct cli *cli, struct raftkv_client *c);
    /* With n_args -1: checks the number and form of the arguments (before any request). */
    int (*check)(struct cli *cli);
};

struct cli {
    struct raftkv_client_options opts;
    const char *endpoints; /* --endpoints; NULL: RAFTKV_ENDPOINTS or the default */
    struct rk_cli_endpoints eps;
    struct rk_cli_tls tls;
    bool json;
    bool absent;
    bool cluster;           /* status --cluster */
    const char *value_file; /* --value-file */
    const struct command *cmd;
    char **args;
    int n_args;
    const void *value; /* put's VALUE, cas's NEW: an argument, or value_buf */
    size_t value_len;
    char *value_buf;                   /* read from stdin or value_file */
    const struct member_op *member_op; /* raft-kv member OP */
    uint64_t id;                       /* the member and move-leader commands' ID; 0: none */
    const char *prefix, *from, *to;    /* list's bounds */
    uint64_t limit;                    /* list --limit; 0: all */
};

/* ---- JSON output ---- */

static void put_stdout(void *arg, const void *data, size_t len)
{
    (void)arg;
    fwrite(data, 1, len, stdout);
}

/* Prints ,"name":"..." and, for bytes that are not UTF-8, in base64 with
 * ,"name_encoding":"base64" (json/json_bytes.h). */
static void json_bytes_field(const char *name, const void *data, size_t len)
{
    static const struct rk_json_out out = {put_stdout, NULL};
    putchar(',');
    rk_json_bytes_field(&out, name, data, len);
}

static const char *json_result_name(int status)
{
    switch (status) {
    case RAFTKV_OK:
        return "ok";
    case RAFTKV_NOT_FOUND:
        return "not_found";
    case RAFTKV_CAS_MISMATCH:
        return "cas_mismatch";
    case RAFTKV_INVALID:
    case RAFTKV_EUSAGE:
        return "invalid";
    case RAFTKV_UNAVAILABLE:
        return "unavailable";
    case RAFTKV_SESSION_EXPIRED:
        return "session_expired";
    default:
        return "internal";
    }
}

static int exit_code(int status)
{
    switch (status) {
    case RAFTKV_OK:
        return 0;
    case RAFTKV_NOT_FOUND:
    case RAFTKV_CAS_MISMATCH:
        return EXIT_MISS;
    case RAFTKV_INVALID:
    case RAFTKV_EUSAGE:
        return EXIT_USAGE;
    case RAFTKV_UNAVAILABLE:
    case RAFTKV_SESSION_EXPIRED:
        return EXIT_UNAVAILABLE;
    default:
        return EXIT_INTERNAL;
    }
}

/* ---- what the nodes say ---- */

/* One endpoint's answer to a status request. */
struct node_answer {
    int rv;
    struct raftkv_node_status s;
};

struct poll_one {
    struct raftkv_client *c;
    size_t endpoint;
    struct node_answer *answer;
};

static void *poll_one(void *arg)
{
    struct poll_one *p = arg;
    p->answer->rv = raftkv_status(p->c, p->endpoint, &p->answer->s);
    return NULL;
}

/* Asks every endpoint for its status at once, so that the nodes that do not answer cost
 * min(--request-timeout, --timeout) in all, not each. Returns how many answered. */
static size_t poll_nodes(const struct cli *cli, struct raftkv_client *c, struct node_answer *a)
{
    size_t n = cli->opts.n_endpoints, answered = 0;
    struct poll_one *polls = calloc(n, sizeof *polls);
    pthread_t *threads = calloc(n, sizeof *threads);
    bool *started = calloc(n, sizeof *started);
    for (size_t i = 0; i < n; i++) {
        struct poll_one one = {c, i, &a[i]};
        if (polls && threads && started) {
            polls[i] = one;
            started[i] = pthread_create(&threads[i], NULL, poll_one, &polls[i]) == 0;
        }
        if (!started || !started[i])
            poll_one(&one); /* no thread to spare: one after the other */
    }
    for (size_t i = 0; i < n; i++) {
        if (started && started[i])
            pthread_join(threads[i], NULL);
        answered += a[i].rv == RAFTKV_OK;
    }
    free(started);
    free(threads);
    free(polls);
    return answered;
}

/* The cluster as the answers show it. */
struct cluster_view {
    size_t configured, answered, quorum; /* quorum: a majority of the endpoints given */
    uint64_t term;                       /* the highest term any node answered with */
    uint64_t leader;                     /* named at that term; 0: none */
};

static struct cluster_view cluster_view(const struct cli *cli, const struct node_answer *a)
{
    struct cluster_view v = {.configured = cli->opts.n_endpoints};
    v.quorum = v.configured / 2 + 1;
    for (size_t i = 0; i < v.configured; i++) {
        if (a[i].rv != RAFTKV_OK)
            continue;
        v.answered++;
        if (a[i].s.term > v.term)
            v.term = a[i].s.term, v.leader = 0;
        /* Raft allows one leader per term: whoever names it at the highest term is right. */
        if (a[i].s.term == v.term && a[i].s.leader_id)
            v.leader = a[i].s.leader_id;
    }
    return v;
}

/* Asks every endpoint and describes the answers: cluster_view. */
static int look_at_cluster(const struct cli *cli, struct raftkv_client *c,
                           struct node_answer **answers, struct cluster_view *v)
{
    free(*answers);
    *answers = calloc(cli->opts.n_endpoints, sizeof **answers);
    if (!*answers)
        return EXIT_INTERNAL;
    poll_nodes(cli, c, *answers);
    *v = cluster_view(cli, *answers);
    return 0;
}

/* "1 of 3 nodes answered, no quorum", "3 of 3 nodes answered, leader 2 (term 4)". */
static void describe_view(FILE *f, const struct cluster_view *v)
{
    fprintf(f, "%zu of %zu node%s answered", v->answered, v->configured,
            v->configured == 1 ? "" : "s");
    if (v->answered < v->quorum)
        fprintf(f, ", no quorum");
    else if (v->leader)
        fprintf(f, ", leader %" PRIu64 " (term %" PRIu64 ")", v->leader, v->term);
    else
        fprintf(f, ", none names a leader");
}

static void json_view(const struct cluster_view *v)
{
    printf(",\"answered\":%zu,\"configured\":%zu,\"quorum\":%zu,\"leader\":%" PRIu64
           ",\"term\":%" PRIu64,
           v->answered, v->configured, v->quorum, v->leader, v->term);
}

/* ,"counters":{...}: what the node counted since it started. */
static void json_counters(const struct raftkv_node_counters *k)
{
    const struct {
        const char *name;
        uint64_t value;
    } fields[] = {
        {"msgs_dropped_unknown_peer", k->msgs_dropped_unknown_peer},
        {"msgs_dropped_stale_term", k->msgs_dropped_stale_term},
        {"msgs_dropped_malformed", k->msgs_dropped_malformed},
        {"elections_started", k->elections_started},
        {"pre_votes_started", k->pre_votes_started},
        {"leader_stepped_down_no_quorum", k->leader_stepped_down_no_quorum},
        {"append_rejections", k->append_rejections},
        {"snapshots_sent", k->snapshots_sent},
        {"snapshots_installed", k->snapshots_installed},
        {"snapshots_refused", k->snapshots_refused},
        {"snapshots_damaged", k->snapshots_damaged},

        {"peer_msgs_sent", k->peer_msgs_sent},
        {"peer_msgs_send_dropped", k->peer_msgs_send_dropped},
        {"peer_msgs_received", k->peer_msgs_received},
        {"peer_msgs_malformed", k->peer_msgs_malformed},
        {"peer_msgs_unknown_peer", k->peer_msgs_unknown_peer},
        {"peer_msgs_oversized", k->peer_msgs_oversized},
        {"peer_redials", k->peer_redials},
        {"conns_refused", k->conns_refused},
        {"conns_closed_slow", k->conns_closed_slow},
        {"conns_closed_idle", k->conns_closed_idle},
        {"requests_over_limit", k->requests_over_limit},
        {"peer_tls_refused", k->peer_tls_refused},
        {"peer_tls_dials_failed", k->peer_tls_dials_failed},
        {"client_tls_refused", k->client_tls_refused},
        {"configuration_changes", k->configuration_changes},
        {"transfers_started", k->transfers_started},
        {"transfers_abandoned", k->transfers_abandoned},

    };
    printf(",\"counters\":{");
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        printf("%s\"%s\":%" PRIu64, i ? "," : "", fields[i].name, fields[i].value);
    printf("}");
}

/* [...]: each endpoint's answer, as status --json shows it. */
static void json_nodes(const struct cli *cli, const struct node_answer *a)
{
    printf("[");
    for (size_t i = 0; i < cli->opts.n_endpoints; i++) {
        const struct raftkv_node_status *s = &a[i].s;
        printf("%s{\"reachable\":%s", i ? "," : "", a[i].rv == RAFTKV_OK ? "true" : "false");
        json_bytes_field("endpoint", cli->eps.urls[i], strlen(cli->eps.urls[i]));
        if (a[i].rv == RAFTKV_OK) {
            json_bytes_field("role", s->role, strlen(s->role));
            printf(",\"id\":%" PRIu64 ",\"term\":%" PRIu64 ",\"leader\":%" PRIu64
                   ",\"commit\":%" PRIu64 ",\"applied\":%" PRIu64 ",\"last_index\":%" PRIu64,
                   s->id, s->term, s->leader_id, s->commit_index, s->applied_index,
                   s->last_log_index);
            json_counters(&s->counters);
        }
        printf("}");
    }
    printf("]");
}

/* ---- commands ---- */

static void print_value(const struct raftkv_result *res)
{
    fwrite(res->value ? (const void *)res->value : "", 1, res->value_len, stdout);
    putchar('\n');
}

/* view: for an unavailable cluster, what its nodes said afterwards; else NULL. */
static void report_json(const struct cli *cli, int status, const struct raftkv_result *res,
                        const struct cluster_view *view)
{
    const char *key = cli->args[0];
    printf("{\"result\":\"%s\"", json_result_name(status));
    json_bytes_field("key", key, strlen(key));
    bool is_get = !strcmp(cli->cmd->name, "get");
    if (status == RAFTKV_CAS_MISMATCH)
        printf(",\"exists\":%s", res->create_revision ? "true" : "false");
    if ((status == RAFTKV_OK && is_get) ||
        (status == RAFTKV_CAS_MISMATCH && res->create_revision)) {
        json_bytes_field("value", res->value, res->value_len);
        printf(",\"create_revision\":%" PRIu64 ",\"mod_revision\":%" PRIu64, res->create_revision,
               res->mod_revision);
    }
    if (status == RAFTKV_OK && !is_get)
        printf(",\"revision\":%" PRIu64, res->revision);
    if (status != RAFTKV_OK && status != RAFTKV_NOT_FOUND && status != RAFTKV_CAS_MISMATCH)
        json_bytes_field("error", res->error, strlen(res->error));
    if (view)
        json_view(view);
    printf("}\n");
}

static void print_failure(int status, const char *error)
{
    fprintf(stderr, "raft-kv: %s%s%s\n", raftkv_status_str(status), error[0] ? ": " : "", error);
}

/* For an unavailable cluster: what its nodes said afterwards. */
static void print_view_after(const struct cluster_view *view)
{
    fprintf(stderr, "raft-kv: asked afterwards: ");
    describe_view(stderr, view);
    fprintf(stderr, "\n");
}

/* A command's failure, with what the nodes said afterwards when view is not NULL. */
static void report_failure(const struct cli *cli, int status, const char *error,
                           const struct cluster_view *view)
{
    if (cli->json) {
        printf("{\"result\":\"%s\"", json_result_name(status));
        json_bytes_field("error", error, strlen(error));
        if (view)
            json_view(view);
        printf("}\n");
        return;
    }
    print_failure(status, error);
    if (view)
        print_view_after(view);
}

static void report_plain(const struct cli *cli, int status, const struct raftkv_result *res,
                         const struct cluster_view *view)
{
    if (status == RAFTKV_OK) {
        if (!strcmp(cli->cmd->name, "get"))
            print_value(res);
        else
            printf("OK\n");
    } else if (status == RAFTKV_NOT_FOUND) {
        fprintf(stderr, "raft-kv: key not found\n");
    } else if (status == RAFTKV_CAS_MISMATCH) {
        fprintf(stderr, "raft-kv: compare-and-swap mismatch: %s\n",
                res->create_revision ? "the current value differs" : "the key does not exist");
        if (res->create_revision)
            print_value(res);
    } else {
        print_failure(status, res->error);
    }
    if (view)
        print_view_after(view);
}

static int run_key_command(const struct cli *cli, struct raftkv_client *c)
{
    struct raftkv_result res;
    const char *k = cli->args[0];
    size_t kl = strlen(k);
    int status;
    if (!strcmp(cli->cmd->name, "put")) {
        status = raftkv_put(c, k, kl, cli->value, cli->value_len, &res);
    } else if (!strcmp(cli->cmd->name, "get")) {
        status = raftkv_get(c, k, kl, &res);
    } else if (!strcmp(cli->cmd->name, "delete")) {
        status = raftkv_delete(c, k, kl, &res);
    } else {
        const char *expected = cli->absent ? NULL : cli->args[1];
        status = raftkv_cas(c, k, kl, expected, expected ? strlen(expected) : 0, cli->value,
                            cli->value_len, &res);
    }
    /* Whether the nodes answer at all, and agree on a leader, tells a cluster down from one
     * without a quorum or a leader; the library knows only its last failure. */
    struct node_answer *answers = NULL;
    struct cluster_view view;
    bool viewed = status == RAFTKV_UNAVAILABLE && look_at_cluster(cli, c, &answers, &view) == 0;
    if (cli->json)
        report_json(cli, status, &res, viewed ? &view : NULL);
    else
        report_plain(cli, status, &res, viewed ? &view : NULL);
    free(answers);
    raftkv_result_free(&res);
    return exit_code(status);
}

static int open_client(struct cli *cli, struct raftkv_client **c);
static int run_status(const struct cli *cli, struct raftkv_client *c);

/* status --cluster: every member the leader names, at its client address, rather than the
 * endpoints given (a node added since they were written shows too). */
static int run_status_of_members(const struct cli *cli, struct raftkv_client *c)
{
    struct raftkv_members m = {0};
    int st = raftkv_member_list(c, &m);
    size_t len = 1;
    for (size_t i = 0; st == RAFTKV_OK && i < m.n; i++)
        len += strlen(m.members[i].client_address) + 1;
    char *list = st == RAFTKV_OK ? calloc(1, len) : NULL;
    for (size_t i = 0; list && i < m.n; i++)
        if (m.members[i].client_address[0])
            strcat(strcat(list, list[0] ? "," : ""), m.members[i].client_address);
    if (st != RAFTKV_OK || !list) {
        print_failure(st ? st : RAFTKV_EINTERNAL, st ? m.error : "out of memory");
        raftkv_members_free(&m);
        return st ? exit_code(st) : EXIT_INTERNAL;
    }
    raftkv_members_free(&m);
    struct cli members = *cli;
    members.cluster = false;
    members.endpoints = list;
    members.eps = (struct rk_cli_endpoints){0};
    struct raftkv_client *mc = NULL;
    int rv = open_client(&members, &mc);
    if (!rv)
        rv = run_status(&members, mc);
    raftkv_client_close(mc);
    rk_cli_endpoints_free(&members.eps);
    free(list);
    return rv;
}

static int run_status(const struct cli *cli, struct raftkv_client *c)
{
    if (cli->cluster)
        return run_status_of_members(cli, c);
    size_t n = cli->opts.n_endpoints, width = strlen("ENDPOINT");
    struct node_answer *a = NULL;
    struct cluster_view v;
    if (look_at_cluster(cli, c, &a, &v))
        return EXIT_INTERNAL;
    if (cli->json) {
        printf("{\"nodes\":");
        json_nodes(cli, a);
        printf(",\"result\":\"%s\"}\n", v.answered ? "ok" : "unavailable");
        free(a);
        return v.answered ? 0 : EXIT_UNAVAILABLE;
    }
    for (size_t i = 0; i < n; i++)
        width = strlen(cli->eps.urls[i]) > width ? strlen(cli->eps.urls[i]) : width;
    printf("%-*s %6s %-10s %8s %6s %10s %10s %10s\n", (int)width, "ENDPOINT", "ID", "ROLE", "TERM",
           "LEADER", "COMMIT", "APPLIED", "LAST");
    for (size_t i = 0; i < n; i++) {
        const struct raftkv_node_status *s = &a[i].s;
        if (a[i].rv == RAFTKV_OK)
            printf("%-*s %6" PRIu64 " %-10s %8" PRIu64 " %6" PRIu64 " %10" PRIu64 " %10" PRIu64
                   " %10" PRIu64 "\n",
                   (int)width, cli->eps.urls[i], s->id, s->role, s->term, s->leader_id,
                   s->commit_index, s->applied_index, s->last_log_index);
        else
            printf("%-*s %6s %s\n", (int)width, cli->eps.urls[i], "-",
                   a[i].rv == RAFTKV_UNAVAILABLE ? "unreachable" : raftkv_status_str(a[i].rv));
    }
    free(a);
    return v.answered ? 0 : EXIT_UNAVAILABLE;
}

/* Healthy: a quorum of the endpoints answers, and a leader serves a linearizable read (a
 * ReadIndex round: the leader confirms with a quorum that it still leads). */
static int run_health(const struct cli *cli, struct raftkv_client *c)
{
    struct node_answer *a = NULL;
    struct cluster_view v;
    if (look_at_cluster(cli, c, &a, &v))
        return EXIT_INTERNAL;
    int read = RAFTKV_UNAVAILABLE;
    struct raftkv_result res = {0};
    if (v.answered >= v.quorum) {
        read = raftkv_get(c, HEALTH_KEY, strlen(HEALTH_KEY), &res);
        /* The read waited through an election the answers did not show: ask who won. */
        if ((read == RAFTKV_OK || read == RAFTKV_NOT_FOUND) && !v.leader &&
            look_at_cluster(cli, c, &a, &v)) {
            raftkv_result_free(&res);
            return EXIT_INTERNAL;
        }
    }
    bool healthy = v.answered >= v.quorum && (read == RAFTKV_OK || read == RAFTKV_NOT_FOUND);
    const char *reason = healthy                 ? NULL
                         : v.answered < v.quorum ? "no quorum"
                                                 : "no leader served a read";
    if (cli->json) {
        printf("{\"result\":\"%s\",\"healthy\":%s", healthy ? "ok" : "unavailable",
               healthy ? "true" : "false");
        json_view(&v);
        if (reason)
            printf(",\"reason\":\"%s\"", reason);
        if (!healthy && v.answered >= v.quorum)
            json_bytes_field("error", res.error, strlen(res.error));
        printf(",\"nodes\":");
        json_nodes(cli, a);
        printf("}\n");
    } else if (healthy) {
        printf("healthy: ");
        describe_view(stdout, &v);
        printf("\n");
    } else {
        printf("unhealthy: ");
        describe_view(stdout, &v);
        if (v.answered >= v.quorum)
            printf("; no leader served a read: %s%s%s", raftkv_status_str(read),
                   res.error[0] ? ": " : "", res.error);
        printf("\n");
    }
    raftkv_result_free(&res);
    free(a);
    if (read == RAFTKV_ENOMEM)
        return EXIT_INTERNAL;
    return healthy ? 0 : EXIT_UNAVAILABLE;
}

/* ---- list ---- */

static int check_list(struct cli *cli)
{
    if (cli->n_args)
        return rk_cli_usage_error(PROG, "list takes no arguments, only options");
    if (cli->prefix && (cli->from || cli->to))
        return rk_cli_usage_error(PROG, "--prefix goes without --from and --to");
    if (cli->from && cli->to && strcmp(cli->from, cli->to) >= 0)
        return rk_cli_usage_error(PROG, "--to must come after --from");
    return 0;
}

/* The pages of one list, read one after the other. */
struct list_pages {
    struct raftkv_range_result *pages;
    size_t n, keys;
    bool more; /* keys remain after the last one printed */
};

static void list_pages_free(struct list_pages *l)
{
    for (size_t i = 0; i < l->n; i++)
        raftkv_range_result_free(&l->pages[i]);
    free(l->pages);
}

/* The next page starts just after the last key: that key and a 0 byte, in from (malloc'd,
 * grown as needed). */
static int list_next_from(const struct raftkv_range_result *r, uint8_t **from, size_t *from_len)
{
    const struct raftkv_kv *last = &r->kvs[r->count - 1];
    uint8_t *p = realloc(*from, last->key_len + 1);
    if (!p)
        return RAFTKV_ENOMEM;
    memcpy(p, last->key, last->key_len);
    p[last->key_len] = 0;
    *from = p;
    *from_len = last->key_len + 1;
    return RAFTKV_OK;
}

/* Reads pages until limit keys (0: all) or the end; on failure, *failed gets the page that
 * failed (its error). */
static int list_read(const struct cli *cli, struct raftkv_client *c, struct list_pages *l,
                     struct raftkv_range_result *failed)
{
    const char *key = cli->prefix ? cli->prefix : cli->from ? cli->from : "";
    size_t from_len = strlen(key), end_len = cli->to ? strlen(cli->to) : 0;
    uint8_t *from = malloc(from_len + 1), *end = malloc(from_len + end_len + 1);
    int st = from && end ? RAFTKV_OK : RAFTKV_ENOMEM;
    if (st == RAFTKV_OK) {
        memcpy(from, key, from_len);
        end_len = cli->prefix ? raftkv_prefix_end(from, from_len, end) : end_len;
        if (cli->to)
            memcpy(end, cli->to, end_len);
    }
    for (bool next = true; st == RAFTKV_OK && next;) {
        struct raftkv_range_result *p = realloc(l->pages, (l->n + 1) * sizeof *p);
        if (!p) {
            st = RAFTKV_ENOMEM;
            break;
        }
        l->pages = p;
        uint64_t left = cli->limit ? cli->limit - l->keys : 0;
        size_t page = left > RAFTKV_RANGE_MAX_KEYS ? 0 : (size_t)left;
        st = raftkv_range(c, from, from_len, end, end_len, page, &l->pages[l->n]);
        if (st != RAFTKV_OK) {
            *failed = l->pages[l->n];
            break;
        }
        const struct raftkv_range_result *r = &l->pages[l->n++];
        l->keys += r->count;
        l->more = r->more;
        next = r->more && r->count && (!cli->limit || l->keys < cli->limit);
        if (next)
            st = list_next_from(r, &from, &from_len);
    }
    free(from);
    free(end);
    return st;
}

static void list_print(const struct cli *cli, const struct list_pages *l)
{
    if (cli->json)
        printf("{\"result\":\"ok\",\"kvs\":[");
    for (size_t i = 0, n = 0; i < l->n; i++) {
        for (size_t k = 0; k < l->pages[i].count; k++, n++) {
            const struct raftkv_kv *e = &l->pages[i].kvs[k];
            if (!cli->json) {
                fwrite(e->key, 1, e->key_len, stdout);
                putchar('\t');
                fwrite(e->value ? (const void *)e->value : "", 1, e->value_len, stdout);
                putchar('\n');
                continue;
            }
            printf("%s{\"create_revision\":%" PRIu64 ",\"mod_revision\":%" PRIu64, n ? "," : "",
                   e->create_revision, e->mod_revision);
            json_bytes_field("key", e->key, e->key_len);
            json_bytes_field("value", e->value, e->value_len);
            printf("}");
        }
    }
    if (cli->json)
        printf("],\"more\":%s,\"revision\":%" PRIu64 "}\n", l->more ? "true" : "false",
               l->n ? l->pages[0].revision : 0);
}

static int run_list(const struct cli *cli, struct raftkv_client *c)
{
    struct list_pages l = {0};
    struct raftkv_range_result failed = {0};
    int status = list_read(cli, c, &l, &failed);
    struct node_answer *answers = NULL;
    struct cluster_view view;
    bool viewed = status == RAFTKV_UNAVAILABLE && look_at_cluster(cli, c, &answers, &view) == 0;
    if (status == RAFTKV_OK)
        list_print(cli, &l);
    else
        report_failure(cli, status, failed.error, viewed ? &view : NULL);
    free(answers);
    list_pages_free(&l);
    return exit_code(status);
}

/* ---- membership ---- */

enum member_kind { MEMBER_LIST, MEMBER_ADD_LEARNER, MEMBER_PROMOTE, MEMBER_REMOVE };

struct member_op {
    const char *name;
    enum member_kind kind;
    int n_args; /* after the op's name */
};

static const struct member_op member_ops[] = {
    {"list", MEMBER_LIST, 0},
    {"add-learner", MEMBER_ADD_LEARNER, 3},
    {"promote", MEMBER_PROMOTE, 1},
    {"remove", MEMBER_REMOVE, 1},
};

static int parse_member_id(struct cli *cli, const char *arg)
{
    if (!rk_cli_parse_u64(arg, 1, UINT64_MAX, &cli->id))
        return rk_cli_usage_error(PROG, "ID must be a positive integer, got \"%s\"", arg);
    return 0;
}

static int check_address(const char *name, const char *arg)
{
    bool tls;
    if (!rk_cli_address_valid(arg, &tls) || strlen(arg) > RAFTKV_MAX_ADDRESS)
        return rk_cli_usage_error(
            PROG, "bad %s \"%s\": expected tcp://host:port or tls+tcp://host:port", name, arg);
    return 0;
}

static int check_member(struct cli *cli)
{
    if (cli->n_args == 0)
        return rk_cli_usage_error(PROG, "member needs list, add-learner, promote or remove");
    for (size_t i = 0; i < sizeof member_ops / sizeof member_ops[0]; i++)
        if (!strcmp(cli->args[0], member_ops[i].name))
            cli->member_op = &member_ops[i];
    const struct member_op *op = cli->member_op;
    if (!op)
        return rk_cli_usage_error(PROG, "unknown member command '%s'", cli->args[0]);
    if (cli->n_args - 1 != op->n_args)
        return rk_cli_usage_error(PROG, "wrong number of arguments for member %s", op->name);
    int rv = op->n_args ? parse_member_id(cli, cli->args[1]) : 0;
    if (!rv && op->kind == MEMBER_ADD_LEARNER)
        rv = check_address("PEER_ADDR", cli->args[2]);
    if (!rv && op->kind == MEMBER_ADD_LEARNER)
        rv = check_address("CLIENT_ADDR", cli->args[3]);
    return rv;
}

static int check_move_leader(struct cli *cli)
{
    if (cli->n_args > 1)
        return rk_cli_usage_error(PROG, "wrong number of arguments for move-leader");
    return cli->n_args ? parse_member_id(cli, cli->args[0]) : 0;
}

static uint64_t member_behind(const struct raftkv_members *m, const struct raftkv_member *e)
{
    return m->last_log_index > e->match_index ? m->last_log_index - e->match_index : 0;
}

static void json_members(const struct raftkv_members *m)
{
    printf(",\"leader\":%" PRIu64 ",\"term\":%" PRIu64 ",\"configuration_index\":%" PRIu64
           ",\"committed\":%s,\"last_index\":%" PRIu64 ",\"members\":[",
           m->leader_id, m->term, m->configuration_index, m->committed ? "true" : "false",
           m->last_log_index);
    for (size_t i = 0; i < m->n; i++) {
        const struct raftkv_member *e = &m->members[i];
        printf("%s{\"id\":%" PRIu64, i ? "," : "", e->id);
        json_bytes_field("role", e->role, strlen(e->role));
        json_bytes_field("peer_address", e->peer_address, strlen(e->peer_address));
        json_bytes_field("client_address", e->client_address, strlen(e->client_address));
        printf(",\"match_index\":%" PRIu64 ",\"behind\":%" PRIu64 ",\"healthy\":%s}",
               e->match_index, member_behind(m, e), e->healthy ? "true" : "false");
    }
    printf("]");
}

static int address_width(const struct raftkv_members *m, bool peer, const char *title)
{
    size_t w = strlen(title);
    for (size_t i = 0; i < m->n; i++) {
        size_t len = strlen(peer ? m->members[i].peer_address : m->members[i].client_address);
        w = len > w ? len : w;
    }
    return (int)w;
}

static void json_members_answer(const struct raftkv_members *m)
{
    printf("{\"result\":\"ok\"");
    json_members(m);
    printf("}\n");
}

static void print_members(const struct raftkv_members *m)
{
    int pw = address_width(m, true, "PEER ADDRESS"), cw = address_width(m, false, "CLIENT ADDRESS");
    printf("%6s %-8s %-*s %-*s %10s %8s %s\n", "ID", "ROLE", pw, "PEER ADDRESS", cw,
           "CLIENT ADDRESS", "MATCH", "BEHIND", "HEALTHY");
    for (size_t i = 0; i < m->n; i++) {
        const struct raftkv_member *e = &m->members[i];
        printf("%6" PRIu64 " %-8s %-*s %-*s %10" PRIu64 " %8" PRIu64 " %s\n", e->id, e->role, pw,
               e->peer_address, cw, e->client_address, e->match_index, member_behind(m, e),
               e->healthy ? "yes" : "no");
    }
    printf("leader %" PRIu64 " (term %" PRIu64 "); ", m->leader_id, m->term);
    if (m->committed)
        printf("membership committed (entry %" PRIu64 ")\n", m->configuration_index);
    else
        printf("a change is pending (entry %" PRIu64 ", not yet committed)\n",
               m->configuration_index);
}

static int member_request(const struct cli *cli, struct raftkv_client *c, struct raftkv_members *m)
{
    if (!cli->member_op)
        return raftkv_move_leader(c, cli->id, m);
    switch (cli->member_op->kind) {
    case MEMBER_ADD_LEARNER:
        return raftkv_member_add_learner(c, cli->id, cli->args[2], cli->args[3], m);
    case MEMBER_PROMOTE:
        return raftkv_member_promote(c, cli->id, m);
    case MEMBER_REMOVE:
        return raftkv_member_remove(c, cli->id, m);
    default:
        return raftkv_member_list(c, m);
    }
}

/* member OP and move-leader: each prints the membership the leader answered with. */
static int run_member(const struct cli *cli, struct raftkv_client *c)
{
    struct raftkv_members m;
    int status = member_request(cli, c, &m);
    struct node_answer *answers = NULL;
    struct cluster_view view;
    bool viewed = status == RAFTKV_UNAVAILABLE && look_at_cluster(cli, c, &answers, &view) == 0;
    if (status != RAFTKV_OK)
        report_failure(cli, status, m.error, viewed ? &view : NULL);
    else if (cli->json)
        json_members_answer(&m);
    else
        print_members(&m);
    free(answers);
    raftkv_members_free(&m);
    return exit_code(status);
}

/* ---- the command line ---- */

enum option_id {
    OPT_ENDPOINTS = RK_CLI_LONG_ONLY,
    OPT_TIMEOUT,
    OPT_REQUEST_TIMEOUT,
    OPT_ATTEMPTS,
    OPT_RETRY_DELAY,
    OPT_JSON,
    OPT_HELP,
    OPT_VERSION,
    OPT_ABSENT,
    OPT_CLUSTER,
    OPT_VALUE_FILE,
    OPT_TLS_CA,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_PREFIX,
    OPT_FROM,
    OPT_TO,
    OPT_LIMIT,
};

static const struct option global_options[] = {
    {"endpoints", required_argument, NULL, OPT_ENDPOINTS},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
    {"attempts", required_argument, NULL, OPT_ATTEMPTS},
    {"retry-delay", required_argument, NULL, OPT_RETRY_DELAY},
    {"json", no_argument, NULL, OPT_JSON},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

#define VALUE_FILE_OPTION                                                                          \
    {                                                                                              \
        "value-file", required_argument, NULL, OPT_VALUE_FILE                                      \
    }

static const struct command commands[] = {
    {"put", 2, {VALUE_FILE_OPTION}, run_key_command, NULL},
    {"get", 1, {{0}}, run_key_command, NULL},
    {"delete", 1, {{0}}, run_key_command, NULL},
    {"cas",
     3,
     {{"absent", no_argument, NULL, OPT_ABSENT}, VALUE_FILE_OPTION},
     run_key_command,
     NULL},
    {"status", 0, {{"cluster", no_argument, NULL, OPT_CLUSTER}}, run_status, NULL},
    {"health", 0, {{0}}, run_health, NULL},
    {"list",
     -1,
     {{"prefix", required_argument, NULL, OPT_PREFIX},
      {"from", required_argument, NULL, OPT_FROM},
      {"to", required_argument, NULL, OPT_TO},
      {"limit", required_argument, NULL, OPT_LIMIT}},
     run_list,
     check_list},
    {"member", -1, {{0}}, run_member, check_member},
    {"move-leader", -1, {{0}}, run_member, check_move_leader},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* --help and --version answered: exit 0 without running a command. */
#define EXIT_ANSWERED (-1)

static int parse_ms(const char *name, const char *s, unsigned *out)
{
    if (!rk_cli_parse_uint(s, 1, 86400000, out))
        return rk_cli_usage_error(PROG, "%s needs a positive number", name);
    return 0;
}

static int apply_tls_option(struct cli *cli, int id, const char *arg)
{
    const char *name = id == OPT_TLS_CA     ? "--tls-ca"
                       : id == OPT_TLS_CERT ? "--tls-cert"
                                            : "--tls-key";
    if (!arg || !*arg)
        return rk_cli_usage_error(PROG, "%s needs a file", name);
    *(id == OPT_TLS_CA ? &cli->tls.ca : id == OPT_TLS_CERT ? &cli->tls.cert : &cli->tls.key) = arg;
    return 0;
}

static int apply_list_option(struct cli *cli, int id, const char *arg)
{
    if (id == OPT_LIMIT) {
        if (!arg || !rk_cli_parse_u64(arg, 1, UINT64_MAX, &cli->limit))
            return rk_cli_usage_error(PROG, "--limit needs a positive number");
        return 0;
    }
    const char *name = id == OPT_PREFIX ? "--prefix" : id == OPT_FROM ? "--from" : "--to";
    if (!arg || !*arg)
        return rk_cli_usage_error(PROG, "%s needs a key", name);
    *(id == OPT_PREFIX ? &cli->prefix : id == OPT_FROM ? &cli->from : &cli->to) = arg;
    return 0;
}

static int apply_option(struct cli *cli, int id, const char *arg)
{
    switch (id) {
    case 'h':
    case OPT_HELP:
        usage(stdout);
        return EXIT_ANSWERED;
    case OPT_VERSION:
        printf("raft-kv %s\n", rk_version());
        return EXIT_ANSWERED;
    case OPT_ENDPOINTS:
        if (!arg || !*arg)
            return rk_cli_usage_error(PROG, "--endpoints needs a list of addresses");
        cli->endpoints = arg;
        break;
    case OPT_TIMEOUT:
        return parse_ms("--timeout", arg, &cli->opts.timeout_ms);
    case OPT_REQUEST_TIMEOUT:
        return parse_ms("--request-timeout", arg, &cli->opts.request_timeout_ms);
    case OPT_ATTEMPTS:
        return parse_ms("--attempts", arg, &cli->opts.attempts);
    case OPT_RETRY_DELAY:
        return parse_ms("--retry-delay", arg, &cli->opts.retry_delay_ms);
    case OPT_JSON:
        cli->json = true;
        break;
    case OPT_ABSENT:
        cli->absent = true;
        break;
    case OPT_CLUSTER:
        cli->cluster = true;
        break;
    case OPT_VALUE_FILE:
        if (!arg || !*arg)
            return rk_cli_usage_error(PROG, "--value-file needs a file name");
        cli->value_file = arg;
        break;
    case OPT_TLS_CA:
    case OPT_TLS_CERT:
    case OPT_TLS_KEY:
        return apply_tls_option(cli, id, arg);
    case OPT_PREFIX:
    case OPT_FROM:
    case OPT_TO:
    case OPT_LIMIT:
        return apply_list_option(cli, id, arg);
    }
    return 0;
}

/* The command that has the option argv names ("--name" or "--name=value"), if any. */
static const struct command *command_with_option(const char *word)
{
    if (strncmp(word, "--", 2) != 0)
        return NULL;
    const char *name = word + 2;
    size_t len = strcspn(name, "=");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const struct option *o = commands[i].options;
        for (; o < commands[i].options + MAX_COMMAND_OPTIONS && o->name; o++)
            if (strlen(o->name) == len && !strncmp(o->name, name, len))
                return &commands[i];
    }
    return NULL;
}

static int option_refused(char *const *argv, const struct option *longopts)
{
    const struct command *owner = optopt == 0 ? command_with_option(argv[optind - 1]) : NULL;
    if (owner)
        return rk_cli_usage_error(PROG, "%s only goes after the command %s", argv[optind - 1],
                                  owner->name);
    return rk_cli_option_refused(PROG, argv, longopts);
}

/* Applies the options of argv. With optstring "-..." it stops at the first word that is
 * not an option and points *word to it; otherwise getopt_long moves the words that are not
 * options to the end, from optind. */
static int parse_options(struct cli *cli, int argc, char **argv, const char *optstring,
                         const struct option *longopts, const char **word)
{
    opterr = 0;
    optind = 0; /* glibc: start afresh, with this optstring's ordering */
    int c;
    while ((c = getopt_long(argc, argv, optstring, longopts, NULL)) != -1) {
        if (c == 1) {
            *word = optarg;
            return 0;
        }
        /* A missing value (':') is told by the option's own check of its value. */
        int rv = c == '?'   ? option_refused(argv, longopts)
                 : c == ':' ? apply_option(cli, optopt, NULL)
                            : apply_option(cli, c, optarg);
        if (rv)
            return rv;
    }
    return 0;
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(name, commands[i].name))
            return &commands[i];
    return NULL;
}

/* Reads the words after the command word: its options, global options, its arguments. */
static int parse_command_words(struct cli *cli, int argc, char **argv)
{
    struct option longopts[MAX_COMMAND_OPTIONS + sizeof global_options / sizeof global_options[0]];
    size_t n = 0;
    for (; n < MAX_COMMAND_OPTIONS && cli->cmd->options[n].name; n++)
        longopts[n] = cli->cmd->options[n];
    memcpy(longopts + n, global_options, sizeof global_options);
    int rv = parse_options(cli, argc, argv, ":h", longopts, NULL);
    cli->args = argv + optind;
    cli->n_args = argc - optind;
    return rv;
}

static int parse_command_line(struct cli *cli, int argc, char **argv)
{
    const char *word = NULL;
    int rv = parse_options(cli, argc, argv, "-:h", global_options, &word);
    if (rv)
        return rv;
    /* Without a command word, options ended at a "--" or at the end. */
    int at = word ? optind - 1 : optind;
    if (at == argc)
        return rk_cli_usage_error(PROG, "no command given");
    cli->cmd = find_command(argv[at]);
    if (!cli->cmd)
        return rk_cli_usage_error(PROG, "unknown command '%s'", argv[at]);
    if (word) {
        rv = parse_command_words(cli, argc - at, argv + at);
    } else {
        cli->args = argv + at + 1;
        cli->n_args = argc - at - 1;
    }
    int want = cli->cmd->n_args - (cli->absent ? 1 : 0) - (cli->value_file ? 1 : 0);
    if (!rv && cli->cmd->n_args >= 0 && cli->n_args != want)
        rv = rk_cli_usage_error(PROG, "wrong number of arguments for %s", cli->cmd->name);
    if (!rv && cli->cmd->check)
        rv = cli->cmd->check(cli);
    return rv;
}

/* The most a node accepts as a value (raftd's largest max_value_bytes). */
#define MAX_VALUE_BYTES ((size_t)1 << 30)

/* Reads f to its end into cli->value_buf, bytes as they are. */
static int read_value_from(struct cli *cli, FILE *f, const char *name)
{
    size_t cap = 0, len = 0, got;
    do {
        if (len == cap) {
            cap = cap ? 2 * cap : 64 << 10;
            cap = cap > MAX_VALUE_BYTES + 1 ? MAX_VALUE_BYTES + 1 : cap;
            char *buf = realloc(cli->value_buf, cap);
            if (!buf)
                return EXIT_INTERNAL;
            cli->value_buf = buf;
        }
        got = fread(cli->value_buf + len, 1, cap - len, f);
        len += got;
    } while (got > 0 && len <= MAX_VALUE_BYTES);
    if (len > MAX_VALUE_BYTES) {
        fprintf(stderr, "raft-kv: %s: more than 1GiB, the most a node accepts\n", name);
        return EXIT_USAGE;
    }
    if (ferror(f)) {
        fprintf(stderr, "raft-kv: cannot read %s: %s\n", name, strerror(errno));
        return EXIT_USAGE;
    }
    cli->value = cli->value_buf;
    cli->value_len = len;
    return 0;
}

/* put's VALUE and cas's NEW, the last argument: as given, from stdin for "-", or the
 * bytes of --value-file (which takes the argument's place). */
static int read_value(struct cli *cli)
{
    bool writes = !strcmp(cli->cmd->name, "put") || !strcmp(cli->cmd->name, "cas");
    const char *arg = writes && !cli->value_file ? cli->args[cli->n_args - 1] : NULL;
    if (arg && strcmp(arg, "-") != 0) {
        cli->value = arg;
        cli->value_len = strlen(arg);
        return 0;
    }
    if (arg)
        return read_value_from(cli, stdin, "stdin");
    if (!cli->value_file)
        return 0;
    FILE *f = fopen(cli->value_file, "rb");
    if (!f) {
        fprintf(stderr, "raft-kv: cannot open %s: %s\n", cli->value_file, strerror(errno));
        return EXIT_USAGE;
    }
    int rv = read_value_from(cli, f, cli->value_file);
    fclose(f);
    return rv;
}

static int open_client(struct cli *cli, struct raftkv_client **c)
{
    int rv = rk_cli_endpoints_split(&cli->eps, cli->endpoints);
    if (rv == ENOMEM)
        return EXIT_INTERNAL;
    if (rv)
        return rk_cli_usage_error(PROG, "no endpoints given");
    cli->opts.endpoints = cli->eps.urls;
    cli->opts.n_endpoints = cli->eps.n;
    rv = rk_cli_tls_apply(PROG, &cli->tls, &cli->opts);
    if (!rv)
        rv = rk_cli_endpoints_check(PROG, &cli->eps, cli->opts.tls_ca_file != NULL);
    if (rv)
        return rv;
    int st = raftkv_client_open(&cli->opts, c);
    if (st == RAFTKV_EUSAGE) /* what the checks above let through: too many, say */
        return rk_cli_usage_error(PROG, "the client library refused the endpoints");
    return st ? exit_code(st) : 0;
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    raftkv_client_options_defaults(&cli.opts);
    struct raftkv_client *c = NULL;
    int rv = parse_command_line(&cli, argc, argv);
    if (rv == EXIT_ANSWERED)
        return 0;
    if (!rv)
        rv = read_value(&cli);
    if (!rv)
        rv = open_client(&cli, &c);
    if (!rv)
        rv = cli.cmd->run(&cli, c);
    raftkv_client_close(c);
    rk_cli_endpoints_free(&cli.eps);
    free(cli.value_buf);
    return rv;
}
