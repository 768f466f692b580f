/* What raftkv's programs (raftd, raft-kv, raft-bench) print for --version. */
#ifndef RAFTKV_CLI_VERSION_H
#define RAFTKV_CLI_VERSION_H

/* The project's version and the git revision the program was built from, e.g.
 * "0.1.0 (git 5dedfc5)", "0.1.0 (git 5dedfc5, modified)" when tracked files differed from
 * that revision, or "0.1.0 (git unknown)" when built outside a git checkout. */
const char *rk_version(void);

#endif
