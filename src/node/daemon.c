#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"
#include "node/config.h"
#include "node/daemon.h"
#include "node/sd_notify.h"

/* Exit statuses: 0 clean stop, 1 runtime failure, 2 usage or configuration error, or a data
 * dir refused (RK_NODE_EDATADIR). */
enum { EXIT_RUNTIME = 1, EXIT_CONFIG = 2 };

static struct rk_node *volatile running_node;
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
    struct rk_node *n = running_node;
    if (n)
        rk_node_request_stop(n);
}

static void usage(FILE *out, const char *name)
{
    fprintf(out,
            "usage: %s --config FILE\n"
            "       %s --version | --help\n"
            "\n"
            "Runs one node of a raftkv cluster as described by FILE (see\n"
            "deploy/node.conf.example for every key). Stops cleanly on SIGTERM or SIGINT.\n"
            "Environment: RAFT_LOG=error|warn|info|debug raises the configured log_level;\n"
            "RAFT_LOG_FORMAT=text|logfmt|json replaces the configured log_format;\n"
            "NOTIFY_SOCKET (set by systemd for Type=notify) is told READY=1 once the node\n"
            "serves and STOPPING=1 when it stops.\n"
            "Exit status: 0 stopped, 1 runtime failure, 2 bad usage or configuration, or\n"
            "a data dir refused (in use by another process; data lost, damaged or of\n"
            "another on-disk format).\n",
            name, name);
}

/* Returns the config path, or NULL after printing what to do (status in *exit_code). */
static const char *parse_args(int argc, char **argv, const char *name, int *exit_code)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout, name);
            *exit_code = 0;
            return NULL;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("%s %s\n", name, RAFTKV_VERSION);
            *exit_code = 0;
            return NULL;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc && !path) {
            path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0 && !path) {
            path = argv[i] + 9;
        } else {
            fprintf(stderr, "%s: unexpected argument \"%s\"\n", name, argv[i]);
            usage(stderr, name);
            *exit_code = EXIT_CONFIG;
            return NULL;
        }
    }
    if (!path) {
        fprintf(stderr, "%s: --config FILE is required\n", name);
        usage(stderr, name);
        *exit_code = EXIT_CONFIG;
    }
    return path;
}

static void set_log_level(const struct rk_config *cfg, const char *name)
{
    enum rk_log_level level = cfg->log_level, env;
    const char *s = getenv("RAFT_LOG");
    if (s && rk_log_level_parse(s, &env) == 0 && env > level)
        level = env;
    else if (s && *s && rk_log_level_parse(s, &env) != 0)
        fprintf(stderr, "%s: ignoring RAFT_LOG=\"%s\" (not error, warn, info or debug)\n", name, s);
    rk_log_set_level(level);
}

/* Unlike the level, the format has no order: the environment's, when set, wins. */
static void set_log_format(const struct rk_config *cfg, const char *name)
{
    enum rk_log_format format = cfg->log_format;
    const char *s = getenv("RAFT_LOG_FORMAT");
    if (s && *s && rk_log_format_parse(s, &format) != 0)
        fprintf(stderr, "%s: ignoring RAFT_LOG_FORMAT=\"%s\" (not text, logfmt or json)\n", name,
                s);
    rk_log_set_format(format);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/* Tells systemd (Type=notify) state; a failure is logged, never fatal: the node serves
 * whether or not its supervisor hears it. */
static void notify_supervisor(const char *state)
{
    int rc = rk_sd_notify(state), err = errno;
    if (rc == RK_SD_NOTIFY_EADDRESS)
        rk_warn("NOTIFY_SOCKET=\"%s\" is not an absolute path or an abstract name (@name) "
                "that fits a socket address: cannot tell systemd %s",
                getenv("NOTIFY_SOCKET"), state);
    else if (rc != RK_SD_NOTIFY_OK)
        rk_warn("cannot tell systemd %s through NOTIFY_SOCKET=%s: %s", state,
                getenv("NOTIFY_SOCKET"), strerror(err));
}

/* How long closing the sockets may take once the node has stopped. */
#define CLOSE_BOUND_S 5

static int close_exit_code;

/* NNG 1.5.2's nng_close sometimes never returns (nanomsg/nng#1543, #1813; more likely when
 * a peer redials a node that is closing). Everything the node acknowledged is synced by
 * now, and its state machine persisted: exiting without the rest of the clean-up loses
 * nothing, and a SIGTERM'd node always ends. */
static void *close_watch_run(void *arg)
{
    (void)arg;
    sleep(CLOSE_BOUND_S);
    rk_error("sockets did not close within %d s (NNG 1.5.2's close hang); exiting without "
             "the rest of the clean-up, nothing acknowledged is lost",
             CLOSE_BOUND_S);
    _exit(close_exit_code);
}

/* Frees the node, or exits with exit_code if that hangs. */
static void free_bounded(struct rk_node *node, int exit_code)
{
    close_exit_code = exit_code;
    pthread_t t;
    if (pthread_create(&t, NULL, close_watch_run, NULL) == 0)
        pthread_detach(t);
    rk_node_free(node);
}

int rk_daemon_main(int argc, char **argv, const char *name, const struct rk_daemon_fsm *fsm)
{
    int exit_code = 0;
    const char *path = parse_args(argc, argv, name, &exit_code);
    if (!path)
        return exit_code;
    struct rk_config cfg;
    char err[1024];
    if (rk_config_load(path, fsm->config_defaults, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", name, err);
        return EXIT_CONFIG;
    }
    set_log_level(&cfg, name);
    set_log_format(&cfg, name);
    /* Signals first: a SIGTERM during start must still stop the node once it runs. */
    install_signals();
    struct rk_node *node;
    int rc = rk_node_start(&cfg, fsm->open, fsm->arg, &node);
    if (rc == 0) {
        running_node = node;
        if (stop_requested)
            rk_node_request_stop(node);
        /* Its sockets listen and the loop starts now: clients can be served. */
        notify_supervisor("READY=1");
        rc = rk_node_run(node);
        running_node = NULL;
        notify_supervisor("STOPPING=1");
        free_bounded(node, rc == 0 ? 0 : EXIT_RUNTIME);
    }
    rk_config_free(&cfg);
    return rc == 0                                           ? 0
           : rc == RK_NODE_EDATADIR || rc == RK_NODE_ECONFIG ? EXIT_CONFIG
                                                             : EXIT_RUNTIME;
}
