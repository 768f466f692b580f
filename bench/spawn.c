#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Runs cluster.sh -d DIR [-n N] CMD with stdout and stderr to out_path (appended); returns
 * its exit status, or -1. */
static int run_script(struct spawned *s, const char *cmd, const char *out_path)
{
    char n[16];
    snprintf(n, sizeof n, "%d", s->nodes);
    const char *argv[] = {"bash", s->script, "-d", s->dir, "-n", n, cmd, NULL, NULL};
    if (s->tls) {
        argv[6] = "-t";
        argv[7] = cmd;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out_path, O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rv = posix_spawnp(&pid, "bash", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rv) {
        fprintf(stderr, "raft-bench: cannot run bash: %s\n", strerror(rv));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void print_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        fprintf(stderr, "  %s", line);
    if (f)
        fclose(f);
}

/* Reads the one line cluster.sh endpoints printed. */
static int read_endpoints(struct spawned *s, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    bool ok = fgets(s->endpoints, sizeof s->endpoints, f) != NULL;
    fclose(f);
    s->endpoints[strcspn(s->endpoints, "\n")] = '\0';
    return ok && s->endpoints[0] ? 0 : -1;
}

int spawn_start(struct spawned *s, const char *script, const char *raftd, int nodes, bool tls)
{
    memset(s, 0, sizeof *s);
    s->script = script;
    s->raftd = raftd;
    s->nodes = nodes;
    s->tls = tls;
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/raft-bench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->dir)) {
        fprintf(stderr, "raft-bench: mkdtemp %s: %s\n", s->dir, strerror(errno));
        return -1;
    }
    if (raftd)
        setenv("RAFTD", raftd, 1);
    /* The cluster lives in DIR/cluster (cluster.sh creates it); our own files beside it. */
    char log[PATH_MAX + 32], eps[PATH_MAX + 32];
    snprintf(log, sizeof log, "%s/cluster.sh.log", s->dir);
    snprintf(eps, sizeof eps, "%s/endpoints", s->dir);
    size_t len = strlen(s->dir);
    snprintf(s->dir + len, sizeof s->dir - len, "/cluster");
    snprintf(s->tls_ca, sizeof s->tls_ca, "%s/tls/ca.crt", s->dir);
    snprintf(s->tls_cert, sizeof s->tls_cert, "%s/tls/client.crt", s->dir);
    snprintf(s->tls_key, sizeof s->tls_key, "%s/tls/client.key", s->dir);
    if (run_script(s, "start", log) != 0 || run_script(s, "endpoints", eps) != 0 ||
        read_endpoints(s, eps) != 0) {
        fprintf(stderr, "raft-bench: starting the cluster with %s failed:\n", script);
        print_file(log);
        spawn_destroy(s, true);
        return -1;
    }
    return 0;
}

int spawn_signal(struct spawned *s, uint64_t id, int sig, pid_t *pid)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/node%llu/pid", s->dir, (unsigned long long)id);
    FILE *f = fopen(path, "r");
    long p = 0;
    if (!f || fscanf(f, "%ld", &p) != 1 || p <= 1) {
        if (f)
            fclose(f);
        fprintf(stderr, "raft-bench: no pid for node %llu in %s\n", (unsigned long long)id, path);
        return -1;
    }
    fclose(f);
    *pid = (pid_t)p;
    if (kill(*pid, sig) != 0) {
        fprintf(stderr, "raft-bench: kill -%d %ld: %s\n", sig, p, strerror(errno));
        return -1;
    }
    return 0;
}

/* The directory holding the cluster directory. */
static void parent_dir(const struct spawned *s, char *out, size_t size)
{
    snprintf(out, size, "%s", s->dir);
    char *slash = strrchr(out, '/');
    if (slash && strcmp(slash, "/cluster") == 0)
        *slash = '\0';
}

void spawn_destroy(struct spawned *s, bool keep)
{
    char top[PATH_MAX], log[PATH_MAX + 32];
    parent_dir(s, top, sizeof top);
    snprintf(log, sizeof log, "%s/cluster.sh.log", top);
    if (keep) {
        run_script(s, "stop", log);
        fprintf(stderr, "raft-bench: cluster stopped, kept in %s\n", s->dir);
        return;
    }
    run_script(s, "destroy", log);
    unlink(log);
    char eps[PATH_MAX + 32];
    snprintf(eps, sizeof eps, "%s/endpoints", top);
    unlink(eps);
    rmdir(top);
}
