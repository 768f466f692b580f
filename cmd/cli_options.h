/* Command-line parsing shared by raftkv's programs (raft-kv, raft-bench). */
#ifndef RAFTKV_CLI_OPTIONS_H
#define RAFTKV_CLI_OPTIONS_H

#include <stdbool.h>

/* Matches argv[*i] as "--name VALUE" (consuming the next word) or "--name=VALUE";
 * *value is NULL when the value is missing. */
bool rk_cli_option(int argc, char **argv, int *i, const char *name, const char **value);

#endif
