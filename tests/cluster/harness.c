#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define POLL_MS 20

uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The first port of the kernel's ephemeral range. */
static int ephemeral_low(void)
{
    int low = 32768, high;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &low, &high) != 2)
            low = 32768;
        fclose(f);
    }
    return low;
}

/* Binds a free port in [10000, ephemeral_low) picked at random; returns the socket. The
 * ports stay below the ephemeral range: a listener there could find its port taken, after
 * a restart, by some connection's local end. */
static int bind_free_port(int *port)
{
    int span = ephemeral_low() - 10000;
    for (int tries = 0; span > 0 && tries < 1000; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return -1;
        *port = 10000 + (int)((unsigned)rand() % (unsigned)span);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            return fd;
        close(fd);
    }
    return -1;
}

/* Picks count distinct free ports: all are held bound at once, then released. */
static bool pick_ports(int *ports, int count)
{
    static bool seeded;
    if (!seeded)
        srand((unsigned)(now_ms() ^ ((uint64_t)getpid() << 16)));
    seeded = true;
    int fds[3 * CLUSTER_MAX_NODES];
    int opened = 0;
    while (opened < count && (fds[opened] = bind_free_port(&ports[opened])) >= 0)
        opened++;
    for (int i = 0; i < opened; i++)
        close(fds[i]);
    return opened == count;
}

int cluster_free_port(void)
{
    int port;
    if (!pick_ports(&port, 1))
        return -1;
    return port;
}

bool cluster_configure(struct cluster *c, int id, const char *extra)
{
    const struct cnode *node = &c->nodes[id - 1];
    const int *ports = c->ports;
    FILE *f = fopen(node->conf, "w");
    if (!f)
        return false;
    fprintf(f, "node_id = %llu\ncluster_id = 99\ndata_dir = %s\n", (unsigned long long)node->id,
            node->data);
    bool joins = c->founders && id > c->founders;
    int listed = c->founders && !joins ? c->founders : c->n;
    for (int i = 0; i < listed; i++)
        fprintf(f, "peer.%d = %s://127.0.0.1:%d\nclient.%d = %s\n", i + 1, c->scheme, ports[3 * i],
                i + 1, c->nodes[i].client_url);
    fprintf(f, "pub_address = %s\n%s%s\n", node->pub_url, joins ? "join = true\n" : "",
            extra ? extra : "");
    return fclose(f) == 0;
}

struct raftkv_client *cluster_client(struct cluster *c, int id, unsigned timeout_ms)
{
    return cluster_client_opts(c, id, timeout_ms, 300);
}

struct raftkv_client *cluster_client_opts(struct cluster *c, int id, unsigned timeout_ms,
                                          unsigned request_timeout_ms)
{
    struct raftkv_client_options opts;
    raftkv_client_options_defaults(&opts);
    opts.n_endpoints = id ? 1 : (size_t)c->n;
    opts.endpoints = id ? &c->endpoints[id - 1] : c->endpoints;
    opts.timeout_ms = timeout_ms;
    opts.request_timeout_ms = request_timeout_ms;
    opts.retry_delay_ms = 10;
    opts.attempts = 1000;
    opts.tls_ca_file = c->tls_ca_file;
    opts.tls_cert_file = c->tls_cert_file;
    opts.tls_key_file = c->tls_key_file;
    struct raftkv_client *client;
    return raftkv_client_open(&opts, &client) == RAFTKV_OK ? client : NULL;
}

static bool init_with(struct cluster *c, int n, const char *extra_conf);

bool cluster_init(struct cluster *c, int n, const char *extra_conf)
{
    memset(c, 0, sizeof *c);
    c->scheme = "tcp";
    return init_with(c, n, extra_conf);
}

bool cluster_init_growing(struct cluster *c, int n, int founders, const char *extra_conf)
{
    memset(c, 0, sizeof *c);
    c->scheme = "tcp";
    c->founders = founders;
    return init_with(c, n, extra_conf);
}

bool cluster_init_tls(struct cluster *c, int n, const char *ca_file, const char *cert_file,
                      const char *key_file)
{
    memset(c, 0, sizeof *c);
    c->scheme = "tls+tcp";
    c->tls_ca_file = ca_file;
    c->tls_cert_file = cert_file;
    c->tls_key_file = key_file;
    return init_with(c, n, NULL);
}

/* cluster_init with c's scheme and TLS files set. */
static bool init_with(struct cluster *c, int n, const char *extra_conf)
{
    c->daemon = RAFTD_PATH;
    c->n = n;
    strcpy(c->dir, "/tmp/raftkv-cluster-XXXXXX");
    int *ports = c->ports;
    REQUIRE(n >= 1 && n <= CLUSTER_MAX_NODES);
    REQUIRE(mkdtemp(c->dir));
    REQUIRE(pick_ports(ports, 3 * n));
    for (int i = 0; i < n; i++) {
        struct cnode *node = &c->nodes[i];
        node->id = (uint64_t)i + 1;
        snprintf(node->conf, sizeof node->conf, "%s/node%d.conf", c->dir, i + 1);
        snprintf(node->data, sizeof node->data, "%s/data%d", c->dir, i + 1);
        snprintf(node->log, sizeof node->log, "%s/node%d.log", c->dir, i + 1);
        snprintf(node->client_url, sizeof node->client_url, "%s://127.0.0.1:%d", c->scheme,
                 ports[3 * i + 1]);
        snprintf(node->pub_url, sizeof node->pub_url, "%s://127.0.0.1:%d", c->scheme,
                 ports[3 * i + 2]);
        c->endpoints[i] = node->client_url;
    }
    for (int i = 0; i < n; i++)
        REQUIRE(cluster_configure(c, i + 1, extra_conf));
    c->client = cluster_client(c, 0, 5000);
    REQUIRE(c->client);
    return true;
}

static void print_log_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char lines[20][512];
    int n = 0;
    while (fgets(lines[n % 20], sizeof lines[0], f))
        n++;
    fclose(f);
    fprintf(stderr, "---- %s (last lines)\n", path);
    for (int i = n > 20 ? n - 20 : 0; i < n; i++)
        fputs(lines[i % 20], stderr);
}

void cluster_destroy(struct cluster *c, bool keep)
{
    for (int i = 0; i < c->n; i++)
        if (c->nodes[i].pid)
            cluster_stop(c, i + 1, SIGKILL);
    if (c->client)
        raftkv_client_close(c->client);
    c->client = NULL;
    if (keep) {
        for (int i = 0; i < c->n; i++)
            print_log_tail(c->nodes[i].log);
        fprintf(stderr, "cluster kept in %s\n", c->dir);
        return;
    }
    const char *argv[] = {"rm", "-rf", c->dir, NULL};
    run_capture(argv, "/dev/null");
}

static pid_t spawn(const char *const *argv, const char *out_path, bool append)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int fd = open(out_path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    execv(argv[0], (char *const *)argv);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
}

int run_capture(const char *const *argv, const char *out_path)
{
    pid_t pid = spawn(argv, out_path, false);
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int cluster_http_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 10};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int cluster_curl(const char *const *args, const char *body_path, const char *out_path)
{
    const char *argv[40] = {"curl", "-s",      "--max-time", "30",
                            "-o",   body_path, "-w",         "%{http_code}"};
    size_t n = 8;
    while (*args && n < sizeof argv / sizeof argv[0] - 1)
        argv[n++] = *args++;
    argv[n] = NULL;
    if (run_capture(argv, out_path) != 0)
        return -1;
    char code[16] = "";
    FILE *f = fopen(out_path, "r");
    size_t got = f ? fread(code, 1, sizeof code - 1, f) : 0;
    code[got] = '\0';
    if (f)
        fclose(f);
    return atoi(code) > 0 ? atoi(code) : -1;
}

bool cluster_spawn(struct cluster *c, int id)
{
    struct cnode *node = &c->nodes[id - 1];
    REQUIRE(node->pid == 0);
    const char *argv[] = {c->daemon, "--config", node->conf, NULL};
    node->pid = spawn(argv, node->log, true);
    REQUIRE(node->pid > 0);
    return true;
}

bool cluster_start(struct cluster *c, int id)
{
    struct cnode *node = &c->nodes[id - 1];
    REQUIRE(cluster_spawn(c, id));
    /* Up when it answers a status request, or failed if it exited first. */
    uint64_t deadline = now_ms() + 10000;
    struct raftkv_node_status st;
    while (!cluster_status(c, id, &st)) {
        int status;
        if (waitpid(node->pid, &status, WNOHANG) == node->pid) {
            node->pid = 0;
            fprintf(stderr, "node %d exited during start (status %d)\n", id, status);
            return false;
        }
        REQUIRE(now_ms() < deadline);
        sleep_ms(POLL_MS);
    }
    return true;
}

bool cluster_start_all(struct cluster *c)
{
    for (int i = 0; i < c->n; i++)
        REQUIRE(cluster_start(c, i + 1));
    return true;
}

int cluster_stop(struct cluster *c, int id, int sig)
{
    struct cnode *node = &c->nodes[id - 1];
    if (!node->pid)
        return -1;
    kill(node->pid, sig);
    int status;
    pid_t rc;
    while ((rc = waitpid(node->pid, &status, 0)) < 0 && errno == EINTR)
        ;
    node->pid = 0;
    return rc > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool cluster_wipe(struct cluster *c, int id)
{
    REQUIRE(c->nodes[id - 1].pid == 0);
    const char *argv[] = {"rm", "-rf", c->nodes[id - 1].data, NULL};
    return run_capture(argv, "/dev/null") == 0;
}

bool cluster_status(struct cluster *c, int id, struct raftkv_node_status *st)
{
    return raftkv_status(c->client, (size_t)id - 1, st) == RAFTKV_OK;
}

uint64_t cluster_wait_leader(struct cluster *c, unsigned timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;
    do {
        uint64_t leader = 0;
        bool agreed = true;
        for (int i = 0; i < c->n && agreed; i++) {
            struct raftkv_node_status st;
            if (!c->nodes[i].pid)
                continue;
            agreed = cluster_status(c, i + 1, &st) && st.leader_id != 0 &&
                     (leader == 0 || leader == st.leader_id);
            leader = st.leader_id;
        }
        if (agreed && leader && c->nodes[leader - 1].pid)
            return leader;
        sleep_ms(POLL_MS);
    } while (now_ms() < deadline);
    return 0;
}

bool cluster_wait_applied(struct cluster *c, int id, uint64_t index, unsigned timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;
    do {
        struct raftkv_node_status st;
        if (cluster_status(c, id, &st) && st.applied_index >= index)
            return true;
        sleep_ms(POLL_MS);
    } while (now_ms() < deadline);
    fprintf(stderr, "node %d did not apply index %llu within %u ms\n", id,
            (unsigned long long)index, timeout_ms);
    return false;
}

bool cluster_put_retry(struct cluster *c, const char *key, const char *value, unsigned timeout_ms,
                       uint64_t *revision)
{
    uint64_t deadline = now_ms() + timeout_ms;
    do {
        struct raftkv_result res;
        memset(&res, 0, sizeof res);
        int rc = raftkv_put(c->client, key, strlen(key), value, strlen(value), &res);
        if (rc == RAFTKV_OK && revision)
            *revision = res.revision;
        raftkv_result_free(&res);
        if (rc == RAFTKV_OK)
            return true;
        sleep_ms(POLL_MS);
    } while (now_ms() < deadline);
    return false;
}

bool cluster_file_contains(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, text) != NULL;
    if (f)
        fclose(f);
    return found;
}

bool cluster_log_contains(struct cluster *c, int id, const char *text)
{
    return cluster_file_contains(c->nodes[id - 1].log, text);
}

bool cluster_logs_clean(struct cluster *c)
{
    static const char *const reports[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                          "runtime error:"};
    for (int i = 1; i <= c->n; i++) {
        for (size_t r = 0; r < sizeof reports / sizeof reports[0]; r++) {
            if (cluster_log_contains(c, i, reports[r])) {
                fprintf(stderr, "node %d's log has a sanitizer report (%s)\n", i, reports[r]);
                return false;
            }
        }
    }
    return true;
}

bool cluster_finish(struct cluster *c, bool ok)
{
    for (int i = 1; i <= c->n; i++)
        if (c->nodes[i - 1].pid)
            cluster_stop(c, i, SIGTERM);
    ok = cluster_logs_clean(c) && ok;
    cluster_destroy(c, !ok);
    return ok;
}

/* c as cluster_init* left it (initialized says whether it went well): fn run on it. */
static bool run_on(struct cluster *c, bool initialized, bool (*fn)(struct cluster *c))
{
    if (!initialized) {
        cluster_destroy(c, true);
        return false;
    }
    uint64_t start = now_ms();
    bool ok = fn(c);
    fprintf(stderr, "  (%llu ms)\n", (unsigned long long)(now_ms() - start));
    return cluster_finish(c, ok);
}

bool cluster_run(int n, const char *extra_conf, bool (*fn)(struct cluster *c))
{
    struct cluster c;
    return run_on(&c, cluster_init(&c, n, extra_conf), fn);
}

bool cluster_run_growing(int n, int founders, const char *extra_conf, bool (*fn)(struct cluster *c))
{
    struct cluster c;
    return run_on(&c, cluster_init_growing(&c, n, founders, extra_conf), fn);
}

bool cluster_get_is(struct raftkv_client *client, const char *key, const char *value)
{
    struct raftkv_result res;
    memset(&res, 0, sizeof res);
    int rc = raftkv_get(client, key, strlen(key), &res);
    bool ok = rc == RAFTKV_OK && res.value_len == strlen(value) &&
              memcmp(res.value, value, res.value_len) == 0;
    if (!ok)
        fprintf(stderr, "get %s: status %d (%s), want \"%s\"\n", key, rc, res.error, value);
    raftkv_result_free(&res);
    return ok;
}

void cluster_value(int key, int round, char *out, size_t len)
{
    /* ~40 bytes that differ per key and round. */
    snprintf(out, len, "value-%d-%d-%08x-%08x", key, round, (unsigned)key * 2654435761u,
             (unsigned)round * 40503u);
}

struct key_writer {
    struct cluster *c;
    const char *prefix;
    int first, step, n_keys, first_round, end_round;
    atomic_bool *failed;
    uint64_t max_rev;
    pthread_t thread;
};

static void *key_writer_main(void *arg)
{
    struct key_writer *w = arg;
    struct raftkv_client *client = cluster_client_opts(w->c, 0, 20000, 1000);
    char key[64], value[64];
    for (int r = w->first_round; client && r < w->end_round; r++) {
        for (int i = w->first; i < w->n_keys && !atomic_load(w->failed); i += w->step) {
            snprintf(key, sizeof key, "%s%d", w->prefix, i);
            cluster_value(i, r, value, sizeof value);
            struct raftkv_result res;
            memset(&res, 0, sizeof res);
            int rc = raftkv_put(client, key, strlen(key), value, strlen(value), &res);
            if (rc != RAFTKV_OK) {
                fprintf(stderr, "put %s: status %d (%s)\n", key, rc, res.error);
                atomic_store(w->failed, true);
            } else if (res.revision > w->max_rev) {
                w->max_rev = res.revision;
            }
            raftkv_result_free(&res);
        }
    }
    if (!client)
        atomic_store(w->failed, true);
    else
        raftkv_client_close(client);
    return NULL;
}

bool cluster_write_keys(struct cluster *c, const char *prefix, int n_keys, int first_round,
                        int end_round, int threads, uint64_t *max_rev)
{
    struct key_writer *w = calloc((size_t)threads, sizeof *w);
    REQUIRE(w);
    atomic_bool failed = false;
    int started = 0;
    for (; started < threads; started++) {
        w[started] = (struct key_writer){.c = c,
                                         .prefix = prefix,
                                         .first = started,
                                         .step = threads,
                                         .n_keys = n_keys,
                                         .first_round = first_round,
                                         .end_round = end_round,
                                         .failed = &failed};
        if (pthread_create(&w[started].thread, NULL, key_writer_main, &w[started]) != 0)
            break;
    }
    *max_rev = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(w[i].thread, NULL);
        if (w[i].max_rev > *max_rev)
            *max_rev = w[i].max_rev;
    }
    free(w);
    REQUIRE(started == threads && !atomic_load(&failed));
    return true;
}
