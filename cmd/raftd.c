/* raftd: one member of a raftkv cluster, with the key-value store as its state machine. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/version.h"
#include "raftd_kv.h"

/* Whether rk_daemon_main would answer --version: it reads the words in order, a --config
 * FILE (once) included, and stops at the first --help, --version or word it refuses. raftd
 * answers --version itself, with the git revision it was built from. */
static bool asks_version(int argc, char **argv)
{
    bool config = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0)
            return true;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc && !config)
            i++, config = true;
        else if (strncmp(argv[i], "--config=", 9) == 0 && !config)
            config = true;
        else
            return false;
    }
    return false;
}

int main(int argc, char **argv)
{
    if (asks_version(argc, argv)) {
        printf("raftd %s\n", rk_version());
        return 0;
    }
    return rk_daemon_main(argc, argv, "raftd", &raftd_kv);
}
