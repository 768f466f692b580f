/*
 * systemd's readiness protocol (src/node/sd_notify.h): raftd, started with NOTIFY_SOCKET
 * naming a datagram socket this test binds (as systemd does for Type=notify), says READY=1
 * once its ports listen, and STOPPING=1 on SIGTERM before it exits; it says nothing when it
 * cannot start. Both kinds of address systemd uses: a path, and an abstract name ("@...").
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "node/sd_notify.h"
#include "test.h"

#define WAIT_MS 30000

/* A datagram socket at name (a path, or "@abstract"), as systemd binds for a service. */
static int bind_notify_socket(const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    memcpy(sa.sun_path, name, len);
    socklen_t sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sa_len) != 0) {
        fprintf(stderr, "bind %s: %s\n", name, strerror(errno));
        close(fd);
        fd = -1;
    }
    return fd;
}

/* The next datagram within timeout_ms, into buf; false if none came. */
static bool receive(int fd, char *buf, size_t cap, unsigned timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, (int)timeout_ms) != 1)
        return false;
    ssize_t n = recv(fd, buf, cap - 1, 0);
    if (n < 0)
        return false;
    buf[n] = '\0';
    return true;
}

/* Whether a TCP connection to 127.0.0.1:port is accepted at once (no retry). */
static bool port_listens(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Starts node 1 with NOTIFY_SOCKET=name (only raftd's environment gets it). */
static bool spawn_notified(struct cluster *c, const char *name)
{
    REQUIRE(setenv("NOTIFY_SOCKET", name, 1) == 0);
    bool ok = cluster_spawn(c, 1);
    unsetenv("NOTIFY_SOCKET");
    return ok;
}

static bool ready_then_stopping(struct cluster *c, const char *name)
{
    int fd = bind_notify_socket(name);
    REQUIRE(fd >= 0);
    bool ok = spawn_notified(c, name);
    char msg[256] = "";
    ok = ok && receive(fd, msg, sizeof msg, WAIT_MS);
    if (ok && strcmp(msg, "READY=1") != 0) {
        fprintf(stderr, "first message \"%s\", want READY=1\n", msg);
        ok = false;
    }
    /* Ready means listening: its peer and client ports take a connection at the first try. */
    ok = ok && port_listens(c->ports[0]) && port_listens(c->ports[1]);
    struct raftkv_node_status st;
    for (uint64_t deadline = now_ms() + WAIT_MS; ok && !cluster_status(c, 1, &st);) {
        if (now_ms() > deadline) {
            fprintf(stderr, "ready, but no status answer within %d ms\n", WAIT_MS);
            ok = false;
        }
        sleep_ms(50);
    }
    /* Nothing more until it is told to stop; then STOPPING=1, sent before it exits. */
    if (ok && receive(fd, msg, sizeof msg, 0)) {
        fprintf(stderr, "unexpected message while serving: \"%s\"\n", msg);
        ok = false;
    }
    ok = ok && cluster_stop(c, 1, SIGTERM) == 0;
    ok = ok && receive(fd, msg, sizeof msg, 0);
    if (ok && strcmp(msg, "STOPPING=1") != 0) {
        fprintf(stderr, "message after SIGTERM \"%s\", want STOPPING=1\n", msg);
        ok = false;
    }
    if (ok && receive(fd, msg, sizeof msg, 0)) {
        fprintf(stderr, "unexpected message after STOPPING=1: \"%s\"\n", msg);
        ok = false;
    }
    close(fd);
    return ok;
}

static bool scenario_path(struct cluster *c)
{
    char name[128];
    snprintf(name, sizeof name, "%s/notify.sock", c->dir);
    return ready_then_stopping(c, name);
}

static bool scenario_abstract(struct cluster *c)
{
    char name[128];
    snprintf(name, sizeof name, "@raftkv-test-notify-%d", (int)getpid());
    return ready_then_stopping(c, name);
}

/* A node that cannot listen exits with a failure and never says READY=1. */
static bool scenario_not_ready(struct cluster *c)
{
    char name[128];
    snprintf(name, sizeof name, "%s/notify.sock", c->dir);
    int fd = bind_notify_socket(name);
    REQUIRE(fd >= 0);
    /* Its client port taken by someone else. */
    int taken = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->ports[1])};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    bool ok = taken >= 0 && setsockopt(taken, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
              bind(taken, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(taken, 1) == 0;
    if (!ok)
        fprintf(stderr, "cannot take port %d: %s\n", c->ports[1], strerror(errno));
    ok = ok && spawn_notified(c, name);
    int status = 0;
    pid_t pid = ok ? c->nodes[0].pid : 0;
    for (uint64_t deadline = now_ms() + WAIT_MS; ok;) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            c->nodes[0].pid = 0;
            break;
        }
        if (now_ms() > deadline) {
            fprintf(stderr, "raftd did not exit though its client port is taken\n");
            ok = false;
        }
        sleep_ms(50);
    }
    if (ok && (!WIFEXITED(status) || WEXITSTATUS(status) == 0 ||
               !cluster_log_contains(c, 1, "cannot listen for clients"))) {
        fprintf(stderr, "raftd exited with status %d, want a failure to listen\n", status);
        ok = false;
    }
    char msg[256];
    if (ok && receive(fd, msg, sizeof msg, 0)) {
        fprintf(stderr, "a node that could not start said \"%s\"\n", msg);
        ok = false;
    }
    if (taken >= 0)
        close(taken);
    close(fd);
    return ok;
}

TEST(notify_unset_sends_nothing)
{
    unsetenv("NOTIFY_SOCKET");
    CHECK_EQ(rk_sd_notify("READY=1"), RK_SD_NOTIFY_OK);
    CHECK(setenv("NOTIFY_SOCKET", "", 1) == 0);
    CHECK_EQ(rk_sd_notify("READY=1"), RK_SD_NOTIFY_OK);
    unsetenv("NOTIFY_SOCKET");
}

TEST(notify_bad_addresses_refused)
{
    char long_name[200];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[0] = '/';
    long_name[sizeof long_name - 1] = '\0';
    const char *bad[] = {"relative/notify.sock", "@", long_name};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(setenv("NOTIFY_SOCKET", bad[i], 1) == 0);
        CHECK_EQ(rk_sd_notify("READY=1"), RK_SD_NOTIFY_EADDRESS);
    }
    /* A well-formed name nobody listens at. */
    CHECK(setenv("NOTIFY_SOCKET", "/nonexistent-dir/notify.sock", 1) == 0);
    CHECK_EQ(rk_sd_notify("READY=1"), RK_SD_NOTIFY_ESEND);
    unsetenv("NOTIFY_SOCKET");
}

TEST(notify_sends_one_datagram)
{
    char name[64];
    snprintf(name, sizeof name, "@raftkv-test-notify-unit-%d", (int)getpid());
    int fd = bind_notify_socket(name);
    CHECK(fd >= 0);
    CHECK(setenv("NOTIFY_SOCKET", name, 1) == 0);
    int rc = rk_sd_notify("STATUS=x\nREADY=1");
    unsetenv("NOTIFY_SOCKET");
    char msg[64] = "";
    bool got = receive(fd, msg, sizeof msg, 0);
    close(fd);
    CHECK_EQ(rc, RK_SD_NOTIFY_OK);
    CHECK(got && strcmp(msg, "STATUS=x\nREADY=1") == 0);
}

TEST(raftd_notifies_path_socket)
{
    CHECK(cluster_run(1, NULL, scenario_path));
}

TEST(raftd_notifies_abstract_socket)
{
    CHECK(cluster_run(1, NULL, scenario_abstract));
}

TEST(raftd_that_cannot_listen_is_never_ready)
{
    CHECK(cluster_run(1, NULL, scenario_not_ready));
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    static const struct test_case cases[] = {TEST_REF(notify_unset_sends_nothing),
                                             TEST_REF(notify_bad_addresses_refused),
                                             TEST_REF(notify_sends_one_datagram),
                                             TEST_REF(raftd_notifies_path_socket),
                                             TEST_REF(raftd_notifies_abstract_socket),
                                             TEST_REF(raftd_that_cannot_listen_is_never_ready)};
    return test_run_all(cases, sizeof cases / sizeof cases[0], argc, argv);
}
