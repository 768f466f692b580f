/*
 * Command-line parsing shared by raftkv's programs (raft-kv, raft-bench), which read their
 * options with getopt_long: usage errors, the options getopt_long refuses, numbers and
 * durations, and the list of endpoints.
 */
#ifndef RAFTKV_CLI_OPTIONS_H
#define RAFTKV_CLI_OPTIONS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftkv/client.h"

/* Exit status of a bad command line, in every program. */
#define RK_CLI_EXIT_USAGE 2

/* A long option's value (struct option.val) is at least this, a short option's is its
 * letter, so that the option getopt_long refused can be named. */
#define RK_CLI_LONG_ONLY 256

/* The nodes' client addresses when neither --endpoints nor RAFTKV_ENDPOINTS gives them. */
#define RK_CLI_DEFAULT_ENDPOINTS "tcp://127.0.0.1:7101"

/* Prints "PROG: MESSAGE" and "Try 'PROG --help'." on stderr; returns RK_CLI_EXIT_USAGE. */
int rk_cli_usage_error(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Says why getopt_long returned '?' (with opterr = 0): an unknown option, or a value given
 * to an option that takes none. Returns RK_CLI_EXIT_USAGE. */
int rk_cli_option_refused(const char *prog, char *const *argv, const struct option *longopts);

/* A decimal integer from min to max, without a sign; false for anything else, NULL too. */
bool rk_cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
bool rk_cli_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);
/* A finite number. */
bool rk_cli_parse_double(const char *s, double *out);
/* A duration in seconds, not negative: "10", "2.5s", "500ms", "1m". */
bool rk_cli_parse_seconds(const char *s, double *out);

/* The nodes' client addresses, from a comma-separated list. */
struct rk_cli_endpoints {
    char *list; /* a copy of the list, split in place */
    const char **urls;
    size_t n;
};

/* Splits list, or when it is NULL the RAFTKV_ENDPOINTS environment variable, else
 * RK_CLI_DEFAULT_ENDPOINTS. Returns 0, EINVAL if it names no address, ENOMEM. */
int rk_cli_endpoints_split(struct rk_cli_endpoints *e, const char *list);
void rk_cli_endpoints_free(struct rk_cli_endpoints *e);
/* Whether url has the form of a node's address, as endpoints and raftd's peer.<id> and
 * client.<id> take it: tcp://HOST:PORT or tls+tcp://HOST:PORT (NNG's tcp4, tcp6 and their
 * tls+ forms too). *tls: it is a tls+ one. */
bool rk_cli_address_valid(const char *url, bool *tls);
/* Checks every endpoint before a client opens with them, so that a mistake is named rather
 * than found as an unreachable cluster at the end of the timeout: its form
 * (rk_cli_address_valid), TLS or not as tls says (whether a CA is given), and no endpoint twice.
 * Returns 0, or RK_CLI_EXIT_USAGE after saying which endpoint is at fault and why. */
int rk_cli_endpoints_check(const char *prog, const struct rk_cli_endpoints *e, bool tls);

/* TLS files for the client library: --tls-ca, --tls-cert and --tls-key, else the
 * environment variables RAFTKV_TLS_CA, RAFTKV_TLS_CERT and RAFTKV_TLS_KEY. */
struct rk_cli_tls {
    const char *ca;
    const char *cert;
    const char *key;
};

/* Fills what the options left unset from the environment, checks the files with the loader
 * the library uses, and sets them in opts. Returns 0, or RK_CLI_EXIT_USAGE after saying
 * which file is at fault. */
int rk_cli_tls_apply(const char *prog, struct rk_cli_tls *tls, struct raftkv_client_options *opts);

#endif
