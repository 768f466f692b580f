/* raft-kv: the command-line client. See usage() for the interface and exit codes. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_options.h"
#include "raftkv/client.h"

#define EXIT_MISS 1        /* key not found, CAS mismatch */
#define EXIT_USAGE 2       /* bad command line, or a request the cluster rejects as invalid */
#define EXIT_UNAVAILABLE 3 /* no answer within the timeout */
#define EXIT_INTERNAL 4    /* out of memory, a node reported an internal error */

#define DEFAULT_ENDPOINTS "tcp://127.0.0.1:7101"

static void usage(FILE *f)
{
    fprintf(
        f, "usage: raft-kv [options] COMMAND [ARGS]\n"
           "\n"
           "commands:\n"
           "  put KEY VALUE             set KEY to VALUE\n"
           "  get KEY                   print the value of KEY\n"
           "  delete KEY                remove KEY\n"
           "  cas KEY EXPECTED NEW      set KEY to NEW if its value is EXPECTED\n"
           "  cas --absent KEY NEW      set KEY to NEW only if KEY does not exist\n"
           "  status                    show every endpoint's view of the cluster\n"
           "\n"
           "options (anywhere before a '--'; after it every word is an argument, so a value\n"
           "may start with '-': raft-kv put -- k -1):\n"
           "  --endpoints A,B,C         client addresses of the nodes; default: the\n"
           "                            RAFTKV_ENDPOINTS environment variable, else\n"
           "                            " DEFAULT_ENDPOINTS "\n"
           "  --timeout MS              overall deadline per operation (default 5000)\n"
           "  --request-timeout MS      deadline of one request to one node (default 1000)\n"
           "  --attempts N              tries before giving up (default 100)\n"
           "  --retry-delay MS          first backoff, doubled per retry up to 50 ms (default 20)\n"
           "  --json                    print one JSON object on stdout (see below)\n"
           "  --help, --version\n"
           "\n"
           "output: get prints the value followed by a newline; put, delete and a successful\n"
           "cas print OK; a failed cas prints the current value (if the key exists) like get.\n"
           "status prints a table, one row per endpoint; unreachable ones say so.\n"
           "\n"
           "--json: {\"result\": \"ok\" | \"not_found\" | \"cas_mismatch\" | \"invalid\" |\n"
           "\"unavailable\" | \"internal\", ...}. get adds key, value, create_revision,\n"
           "mod_revision; writes add revision; cas_mismatch adds exists and (if it exists)\n"
           "the current value with its revisions; failures add error; status adds nodes: [{\n"
           "endpoint, reachable, id, role, term, leader, commit, applied, last_index}].\n"
           "Keys and values are JSON strings when they are valid UTF-8; otherwise they are\n"
           "base64 (RFC 4648) and a field \"key_encoding\" / \"value_encoding\": \"base64\"\n"
           "says so. Usage errors are reported on stderr only, also with --json.\n"
           "\n"
           "exit status: 0 success; 1 key not found or cas mismatch; 2 usage error or a\n"
           "request the cluster rejects as invalid; 3 cluster unavailable within the timeout\n"
           "(status: no endpoint answered); 4 internal error.\n");
}

struct cli {
    struct raftkv_client_options opts;
    char *endpoints; /* the comma-separated list, split in place */
    const char **urls;
    bool json;
    bool absent;
    const char *cmd;
    const char *args[3];
    int n_args;
};

static int usage_error(const char *fmt, const char *what)
{
    fprintf(stderr, "raft-kv: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\nTry 'raft-kv --help'.\n");
    return EXIT_USAGE;
}

static int parse_ms(const char *name, const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = s ? strtoul(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v == 0 || v > 86400000UL || s[0] == '-')
        return usage_error("%s needs a positive number", name);
    *out = (unsigned)v;
    return 0;
}

static int parse_option(struct cli *cli, int argc, char **argv, int *i)
{
    const char *v;
    const char *a = argv[*i];
    if (!strcmp(a, "--json"))
        cli->json = true;
    else if (!strcmp(a, "--absent"))
        cli->absent = true;
    else if (rk_cli_option(argc, argv, i, "--endpoints", &v)) {
        if (!v || !*v)
            return usage_error("%s needs a list of addresses", a);
        free(cli->endpoints);
        cli->endpoints = strdup(v);
    } else if (rk_cli_option(argc, argv, i, "--timeout", &v))
        return parse_ms("--timeout", v, &cli->opts.timeout_ms);
    else if (rk_cli_option(argc, argv, i, "--request-timeout", &v))
        return parse_ms("--request-timeout", v, &cli->opts.request_timeout_ms);
    else if (rk_cli_option(argc, argv, i, "--attempts", &v))
        return parse_ms("--attempts", v, &cli->opts.attempts);
    else if (rk_cli_option(argc, argv, i, "--retry-delay", &v))
        return parse_ms("--retry-delay", v, &cli->opts.retry_delay_ms);
    else
        return usage_error("unknown option %s", a);
    return 0;
}

static int parse_words(struct cli *cli, int argc, char **argv)
{
    bool options = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int rv = 0;
        if (options && !strcmp(a, "--"))
            options = false;
        else if (options && a[0] == '-' && a[1] != '\0')
            rv = parse_option(cli, argc, argv, &i);
        else if (!cli->cmd)
            cli->cmd = a;
        else if (cli->n_args < 3)
            cli->args[cli->n_args++] = a;
        else
            rv = usage_error("too many arguments at '%s'", a);
        if (rv)
            return rv;
    }
    return 0;
}

static int check_arity(const struct cli *cli)
{
    static const struct {
        const char *cmd;
        int n_args;
    } arity[] = {{"put", 2}, {"get", 1}, {"delete", 1}, {"cas", 3}, {"status", 0}};
    if (!cli->cmd)
        return usage_error("%s", "no command given");
    if (cli->absent && strcmp(cli->cmd, "cas") != 0)
        return usage_error("%s", "--absent only goes with cas");
    for (size_t i = 0; i < sizeof arity / sizeof arity[0]; i++) {
        if (strcmp(cli->cmd, arity[i].cmd) != 0)
            continue;
        int want = arity[i].n_args - (cli->absent ? 1 : 0);
        if (cli->n_args != want)
            return usage_error("wrong number of arguments for %s", cli->cmd);
        return 0;
    }
    return usage_error("unknown command '%s'", cli->cmd);
}

static int split_endpoints(struct cli *cli)
{
    if (!cli->endpoints) {
        const char *env = getenv("RAFTKV_ENDPOINTS");
        cli->endpoints = strdup(env && *env ? env : DEFAULT_ENDPOINTS);
    }
    if (!cli->endpoints)
        return EXIT_INTERNAL;
    size_t n = 1;
    for (const char *p = cli->endpoints; *p; p++)
        n += *p == ',';
    cli->urls = calloc(n, sizeof *cli->urls);
    if (!cli->urls)
        return EXIT_INTERNAL;
    char *save = NULL;
    for (char *t = strtok_r(cli->endpoints, ",", &save); t; t = strtok_r(NULL, ",", &save))
        cli->urls[cli->opts.n_endpoints++] = t;
    if (cli->opts.n_endpoints == 0)
        return usage_error("%s", "no endpoints given");
    cli->opts.endpoints = cli->urls;
    return 0;
}

/* ---- JSON output ---- */

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1, cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2, cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

static void json_escaped(const uint8_t *s, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c == '\r')
            fputs("\\r", stdout);
        else if (c < 0x20 || c == 0x7F)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void json_base64(const uint8_t *s, size_t len)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    putchar('"');
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < len)
            v |= s[i + 2];
        putchar(b64[(v >> 18) & 63]);
        putchar(b64[(v >> 12) & 63]);
        putchar(i + 1 < len ? b64[(v >> 6) & 63] : '=');
        putchar(i + 2 < len ? b64[v & 63] : '=');
    }
    putchar('"');
}

/* Prints ,"name":"..." and, for bytes that are not UTF-8, ,"name_encoding":"base64". */
static void json_bytes_field(const char *name, const void *data, size_t len)
{
    const uint8_t *s = data ? data : (const uint8_t *)"";
    printf(",\"%s\":", name);
    if (utf8_valid(s, len)) {
        json_escaped(s, len);
    } else {
        json_base64(s, len);
        printf(",\"%s_encoding\":\"base64\"", name);
    }
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
        return EXIT_UNAVAILABLE;
    default:
        return EXIT_INTERNAL;
    }
}

/* ---- commands ---- */

static void print_value(const struct raftkv_result *res)
{
    fwrite(res->value ? (const void *)res->value : "", 1, res->value_len, stdout);
    putchar('\n');
}

static void report_json(const struct cli *cli, int status, const struct raftkv_result *res)
{
    const char *key = cli->args[0];
    printf("{\"result\":\"%s\"", json_result_name(status));
    json_bytes_field("key", key, strlen(key));
    bool is_get = !strcmp(cli->cmd, "get");
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
    printf("}\n");
}

static void report_plain(const struct cli *cli, int status, const struct raftkv_result *res)
{
    if (status == RAFTKV_OK) {
        if (!strcmp(cli->cmd, "get"))
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
        fprintf(stderr, "raft-kv: %s%s%s\n", raftkv_status_str(status), res->error[0] ? ": " : "",
                res->error);
    }
}

static int run_key_command(const struct cli *cli, struct raftkv_client *c)
{
    struct raftkv_result res;
    const char *k = cli->args[0];
    size_t kl = strlen(k);
    int status;
    if (!strcmp(cli->cmd, "put")) {
        status = raftkv_put(c, k, kl, cli->args[1], strlen(cli->args[1]), &res);
    } else if (!strcmp(cli->cmd, "get")) {
        status = raftkv_get(c, k, kl, &res);
    } else if (!strcmp(cli->cmd, "delete")) {
        status = raftkv_delete(c, k, kl, &res);
    } else {
        const char *expected = cli->absent ? NULL : cli->args[1];
        const char *nv = cli->args[cli->absent ? 1 : 2];
        status =
            raftkv_cas(c, k, kl, expected, expected ? strlen(expected) : 0, nv, strlen(nv), &res);
    }
    if (cli->json)
        report_json(cli, status, &res);
    else
        report_plain(cli, status, &res);
    raftkv_result_free(&res);
    return exit_code(status);
}

static int run_status(const struct cli *cli, struct raftkv_client *c)
{
    size_t n = cli->opts.n_endpoints, answered = 0, width = strlen("ENDPOINT");
    for (size_t i = 0; i < n; i++)
        width = strlen(cli->urls[i]) > width ? strlen(cli->urls[i]) : width;
    if (cli->json)
        printf("{\"nodes\":[");
    else
        printf("%-*s %6s %-10s %8s %6s %10s %10s %10s\n", (int)width, "ENDPOINT", "ID", "ROLE",
               "TERM", "LEADER", "COMMIT", "APPLIED", "LAST");
    for (size_t i = 0; i < n; i++) {
        struct raftkv_node_status s;
        int rv = raftkv_status(c, i, &s);
        answered += rv == RAFTKV_OK;
        if (cli->json) {
            printf("%s{\"reachable\":%s", i ? "," : "", rv == RAFTKV_OK ? "true" : "false");
            json_bytes_field("endpoint", cli->urls[i], strlen(cli->urls[i]));
            if (rv == RAFTKV_OK) {
                json_bytes_field("role", s.role, strlen(s.role));
                printf(",\"id\":%" PRIu64 ",\"term\":%" PRIu64 ",\"leader\":%" PRIu64
                       ",\"commit\":%" PRIu64 ",\"applied\":%" PRIu64 ",\"last_index\":%" PRIu64,
                       s.id, s.term, s.leader_id, s.commit_index, s.applied_index,
                       s.last_log_index);
            }
            printf("}");
        } else if (rv == RAFTKV_OK) {
            printf("%-*s %6" PRIu64 " %-10s %8" PRIu64 " %6" PRIu64 " %10" PRIu64 " %10" PRIu64
                   " %10" PRIu64 "\n",
                   (int)width, cli->urls[i], s.id, s.role, s.term, s.leader_id, s.commit_index,
                   s.applied_index, s.last_log_index);
        } else {
            printf("%-*s %6s %s\n", (int)width, cli->urls[i], "-",
                   rv == RAFTKV_UNAVAILABLE ? "unreachable" : raftkv_status_str(rv));
        }
    }
    if (cli->json)
        printf("],\"result\":\"%s\"}\n", answered ? "ok" : "unavailable");
    return answered ? 0 : EXIT_UNAVAILABLE;
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    raftkv_client_options_defaults(&cli.opts);
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("raft-kv %s\n", RAFTKV_VERSION);
            return 0;
        }
    }
    int rv = parse_words(&cli, argc, argv);
    if (!rv)
        rv = check_arity(&cli);
    if (!rv)
        rv = split_endpoints(&cli);
    struct raftkv_client *c = NULL;
    if (!rv) {
        int st = raftkv_client_open(&cli.opts, &c);
        if (st == RAFTKV_EUSAGE)
            rv = usage_error("%s", "invalid or duplicate endpoint address");
        else if (st)
            rv = exit_code(st);
    }
    if (!rv)
        rv = strcmp(cli.cmd, "status") ? run_key_command(&cli, c) : run_status(&cli, c);
    raftkv_client_close(c);
    free(cli.urls);
    free(cli.endpoints);
    return rv;
}
