/*
 * lincheck HISTORY_FILE: checks a recorded client history (tests/faults/history.h) for
 * linearizability. Exit status 0: linearizable; 1: not, with a smallest failing part of it
 * printed; 2: the search ran out of budget, or bad usage or input.
 */
#include "lincheck.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: lincheck [--max-steps N] [--no-minimize] HISTORY_FILE\n"
                    "exit status: 0 linearizable, 1 not linearizable, 2 budget exhausted or "
                    "bad usage\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct lincheck_options o = {0};
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (!strcmp(argv[i], "--max-steps") && i + 1 < argc) {
            o.max_steps = strtoull(argv[++i], &end, 10);
            if (*end || !o.max_steps)
                return usage();
        } else if (!strcmp(argv[i], "--no-minimize")) {
            o.no_minimize = true;
        } else if (argv[i][0] == '-' || path) {
            return usage();
        } else {
            path = argv[i];
        }
    }
    if (!path)
        return usage();
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return 2;
    }
    struct history h;
    char err[512];
    int rc = history_load(f, &h, err, sizeof err);
    fclose(f);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", path, err);
        return 2;
    }
    struct lincheck_result res;
    enum lincheck_verdict v = lincheck_history(&h, &o, &res);
    lincheck_result_print(stdout, &h, &res);
    printf("%" PRIu64 " search steps\n", res.steps);
    lincheck_result_free(&res);
    history_free(&h);
    return (int)v;
}
