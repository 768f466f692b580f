/*
 * HTTP for people and monitors (http_address): /health follows the cluster's state,
 * /status carries what raft-kv status shows, and /metrics is Prometheus text that a strict
 * parser of the exposition format (below) accepts.
 */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "test.h"

#define WAIT_MS 20000
#define MAX_BODY (256 << 10)

static int http_ports[CLUSTER_MAX_NODES];

/* One GET with Connection: close; fills body, returns the status code or -1. */
static int http_get(int port, const char *path, char *body, size_t cap)
{
    int fd = cluster_http_connect(port);
    if (fd < 0)
        return -1;
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    static char resp[MAX_BODY + 4096];
    size_t got = 0;
    ssize_t r = write(fd, req, (size_t)n) == n ? 1 : -1;
    while (r > 0 && got < sizeof resp - 1 && (r = read(fd, resp + got, sizeof resp - 1 - got)) > 0)
        got += (size_t)r;
    close(fd);
    resp[got] = '\0';
    int status;
    const char *start = strstr(resp, "\r\n\r\n");
    if (sscanf(resp, "HTTP/1.1 %d", &status) != 1 || !start)
        return -1;
    snprintf(body, cap, "%s", start + 4);
    return status;
}

/* Polls node id's path until it answers want. */
static bool http_wait(int id, const char *path, int want, char *body, size_t cap)
{
    uint64_t deadline = now_ms() + WAIT_MS;
    int got = -1;
    while ((got = http_get(http_ports[id - 1], path, body, cap)) != want && now_ms() < deadline)
        sleep_ms(50);
    if (got != want)
        fprintf(stderr, "node %d %s: %d (want %d): %s\n", id, path, got, want, body);
    return got == want;
}

/* ---- the Prometheus text exposition format, version 0.0.4, strictly ---- */

struct family {
    char name[128];
    char type[16];
};

struct exposition {
    struct family fam[256];
    size_t n;
    /* The running histogram series (its family and labels but le), its last bucket and its
     * +Inf one. */
    char hist_series[512];
    double hist_last, hist_count;
};

static bool metric_name_ok(const char *s, size_t len)
{
    if (!len || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return false;
    return true;
}

/* A histogram's samples are its name with _bucket, _sum or _count. */
static bool names_family(const struct family *f, const char *sample, size_t len)
{
    static const char *const parts[] = {"", "_bucket", "_sum", "_count"};
    size_t fl = strlen(f->name);
    size_t n_parts = strcmp(f->type, "histogram") ? 1 : sizeof parts / sizeof parts[0];
    for (size_t i = 0; i < n_parts; i++)
        if (len == fl + strlen(parts[i]) && !memcmp(sample, f->name, fl) &&
            !memcmp(sample + fl, parts[i], strlen(parts[i])))
            return true;
    return false;
}

static const struct family *family_of(const struct exposition *e, const char *sample, size_t len)
{
    for (size_t i = 0; i < e->n; i++)
        if (names_family(&e->fam[i], sample, len))
            return &e->fam[i];
    return NULL;
}

/* "# HELP name text" or "# TYPE name type": each family once, TYPE before its samples. */
static bool parse_comment(struct exposition *e, const char *line)
{
    char kind[8], name[128], rest[16];
    if (sscanf(line, "# %7s %127s %15[^\n]", kind, name, rest) != 3 ||
        !metric_name_ok(name, strlen(name)))
        return false;
    if (!strcmp(kind, "HELP"))
        return true;
    static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
    bool known = false;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        known |= !strcmp(rest, types[i]);
    if (strcmp(kind, "TYPE") || !known || e->n == sizeof e->fam / sizeof e->fam[0])
        return false;
    for (size_t i = 0; i < e->n; i++)
        if (!strcmp(e->fam[i].name, name))
            return false; /* declared twice */
    if (!strcmp(rest, "counter") && (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total")))
        return false;
    struct family *f = &e->fam[e->n++];
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(f->type, sizeof f->type, "%s", rest);
    e->hist_series[0] = '\0';
    return true;
}

/* A label value up to its closing quote, with only \\, \" and \n escaped; NULL if bad. */
static const char *label_value_end(const char *v)
{
    for (; *v && *v != '"'; v++)
        if (*v == '\\' && !strchr("\\\"n", *++v))
            return NULL;
    return *v == '"' ? v : NULL;
}

/* name{label="value",...} number: its family declared, counters and buckets sane, each
 * histogram series' buckets cumulative and its _count its +Inf bucket. */
static bool parse_sample(struct exposition *e, const char *line, double *value)
{
    size_t len = strcspn(line, "{ ");
    const struct family *f = family_of(e, line, len);
    if (!metric_name_ok(line, len) || !f)
        return false;
    const char *p = line + len;
    double le = NAN;
    char series[512];
    int sl = snprintf(series, sizeof series, "%s", f->name);
    if (*p == '{') {
        p++;
        while (*p != '}') {
            size_t ln = strcspn(p, "=");
            if (!metric_name_ok(p, ln) || p[ln] != '=' || p[ln + 1] != '"')
                return false;
            const char *v = p + ln + 2, *end = label_value_end(v);
            if (!end)
                return false;
            if (ln == 2 && !memcmp(p, "le", 2))
                le = !strncmp(v, "+Inf", 4) ? INFINITY : strtod(v, NULL);
            else if (sl > 0 && (size_t)sl < sizeof series)
                sl += snprintf(series + sl, sizeof series - (size_t)sl, ",%.*s", (int)(end - p + 1),
                               p);
            p = end + 1;
            if (*p == ',')
                p++;
            else if (*p != '}')
                return false;
        }
        p++;
    }
    char *end;
    if (*p++ != ' ')
        return false;
    *value = strtod(p, &end);
    if (end == p || (*end && *end != '\n' && *end != ' ') || isnan(*value))
        return false;
    if (!strcmp(f->type, "counter") && *value < 0)
        return false;
    bool hist = !strcmp(f->type, "histogram");
    if (hist && !isnan(le)) {
        if (strcmp(series, e->hist_series)) {
            snprintf(e->hist_series, sizeof e->hist_series, "%s", series);
            e->hist_last = 0;
            e->hist_count = NAN;
        }
        if (*value < e->hist_last)
            return false; /* buckets are cumulative */
        e->hist_last = *value;
        if (isinf(le))
            e->hist_count = *value;
    }
    if (hist && strstr(line, "_count") == line + strlen(f->name) &&
        (strcmp(series, e->hist_series) || *value != e->hist_count))
        return false;
    return true;
}

/* Parses the whole text; *value_of gets the sample named want (if any). */
static bool exposition_ok(const char *text, const char *want, double *value_of)
{
    static struct exposition e;
    memset(&e, 0, sizeof e);
    size_t samples = 0;
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        if (!nl) {
            fprintf(stderr, "metrics: the last line has no newline\n");
            return false;
        }
        char buf[512];
        snprintf(buf, sizeof buf, "%.*s", (int)(nl - line), line);
        double v = NAN;
        bool ok = buf[0] == '#' ? parse_comment(&e, buf) : parse_sample(&e, buf, &v);
        if (!ok) {
            fprintf(stderr, "metrics: bad line: %s\n", buf);
            return false;
        }
        if (buf[0] != '#') {
            samples++;
            size_t wl = strlen(want);
            if (!strncmp(buf, want, wl) && buf[wl] == ' ')
                *value_of = v;
        }
        line = nl + 1;
    }
    return samples > 0;
}

/* The sum of the samples whose line starts with prefix (a name and some of its labels). */
static double sum_of(const char *text, const char *prefix)
{
    double sum = 0;
    size_t pl = strlen(prefix);
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line += !!line)
        if (!strncmp(line, prefix, pl))
            sum += strtod(strchr(line + pl, ' '), NULL);
    return sum;
}

/* ---- scenarios ---- */

static bool configure_http(struct cluster *c)
{
    for (int i = 1; i <= c->n; i++) {
        char extra[160];
        http_ports[i - 1] = cluster_free_port();
        REQUIRE(http_ports[i - 1] > 0);
        /* Snapshots early, for snapshots_counted. */
        snprintf(extra, sizeof extra,
                 "http_address = http://127.0.0.1:%d\nsnapshot_entries = 10\n"
                 "snapshot_trailing_entries = 5\n",
                 http_ports[i - 1]);
        REQUIRE(cluster_configure(c, i, extra));
    }
    return true;
}

/* The leader's /status lists the members raftkv_member_list (raft-kv member list) gives,
 * with their addresses, and carries the snapshot and storage figures and the version. */
static bool status_members(struct cluster *c, int leader)
{
    struct raftkv_client *client = cluster_client(c, 0, WAIT_MS);
    REQUIRE(client);
    struct raftkv_members list = {0};
    int rc = raftkv_member_list(client, &list);
    raftkv_client_close(client);
    REQUIRE(rc == RAFTKV_OK && list.n == (size_t)c->n);
    static char body[MAX_BODY];
    REQUIRE(http_wait(leader, "/status", 200, body, sizeof body));
    const char *at = strstr(body, "\"members\":[");
    for (size_t i = 0; at && i < list.n; i++) {
        char want[768];
        const struct raftkv_member *m = &list.members[i];
        snprintf(want, sizeof want,
                 "{\"id\":%" PRIu64 ",\"role\":\"%s\",\"peer_address\":\"%s\","
                 "\"client_address\":\"%s\",\"match_index\":",
                 m->id, m->role, m->peer_address, m->client_address);
        at = strstr(at, want); /* in order: both are sorted by id */
        if (!at)
            fprintf(stderr, "/status lacks %s: %s\n", want, body);
    }
    raftkv_members_free(&list);
    REQUIRE(at);
    REQUIRE(strstr(body, "\"healthy\":true"));
    REQUIRE(strstr(body, "\"snapshot\":{\"index\":") &&
            strstr(body, "\"storage\":{\"map_bytes\":"));
    REQUIRE(strstr(body, "\"version\":\""));
    return true;
}

/* Every put the client library saw succeed was answered OK by some node, and each node's
 * latency histogram of an operation counts exactly the replies counted by result. */
static bool requests_counted(struct cluster *c)
{
    enum { PUTS = 20 };
    for (int i = 0; i < PUTS; i++) {
        char key[32];
        snprintf(key, sizeof key, "counted-%d", i);
        REQUIRE(cluster_put_retry(c, key, "v", WAIT_MS, NULL));
    }
    static char body[MAX_BODY];
    double put_ok = 0;
    for (int i = 1; i <= c->n; i++) {
        double count = -1;
        REQUIRE(http_wait(i, "/metrics", 200, body, sizeof body));
        REQUIRE(exposition_ok(body, "raftkv_client_request_duration_seconds_count{op=\"put\"}",
                              &count) ||
                count == -1);
        double results = sum_of(body, "raftkv_client_requests_total{op=\"put\",");
        REQUIRE(count == (results ? results : -1));
        put_ok += sum_of(body, "raftkv_client_requests_total{op=\"put\",result=\"ok\"}");
        /* The status requests of the harness, named by their field in client.proto. */
        REQUIRE(sum_of(body, "raftkv_client_requests_total{op=\"status\",") > 0 || i != 1);
    }
    REQUIRE(put_ok >= PUTS);
    return true;
}

/* With snapshot_entries = 10, every node has taken a snapshot after the puts, and counted
 * it once in each of its figures. */
static bool snapshots_counted(struct cluster *c)
{
    static char body[MAX_BODY];
    for (int i = 1; i <= c->n; i++) {
        double taken = 0, timed = -1, bytes = 0, index = 0;
        for (uint64_t deadline = now_ms() + WAIT_MS; taken < 1 && now_ms() < deadline;) {
            REQUIRE(http_wait(i, "/metrics", 200, body, sizeof body));
            REQUIRE(exposition_ok(body, "raftkv_snapshots_taken_total", &taken));
        }
        REQUIRE(taken >= 1);
        REQUIRE(exposition_ok(body, "raftkv_snapshot_take_seconds_count", &timed) &&
                timed == taken);
        REQUIRE(exposition_ok(body, "raftkv_snapshot_taken_bytes_total", &bytes) && bytes > 0);
        REQUIRE(exposition_ok(body, "raftkv_snapshot_index", &index) && index >= 1);
    }
    return true;
}

/* The leader has sent appends to each follower, which received them, and knows how far
 * each one's log reaches. */
static bool messages_counted(struct cluster *c)
{
    static char body[MAX_BODY];
    uint64_t leader = cluster_wait_leader(c, WAIT_MS);
    REQUIRE(leader);
    for (int i = 1; i <= c->n; i++) {
        if ((uint64_t)i == leader)
            continue;
        char name[160];
        double sent = 0, received = 0, match = 0;
        snprintf(name, sizeof name,
                 "raftkv_peer_messages_sent_total{peer=\"%d\",type=\"append_entries\"}", i);
        for (uint64_t deadline = now_ms() + WAIT_MS; sent < 1 && now_ms() < deadline;) {
            REQUIRE(http_wait((int)leader, "/metrics", 200, body, sizeof body));
            REQUIRE(exposition_ok(body, name, &sent));
        }
        REQUIRE(sent >= 1);
        snprintf(name, sizeof name,
                 "raftkv_peer_messages_received_total{peer=\"%d\",type=\"append_entries\"}",
                 (int)leader);
        for (uint64_t deadline = now_ms() + WAIT_MS; received < 1 && now_ms() < deadline;) {
            REQUIRE(http_wait(i, "/metrics", 200, body, sizeof body));
            REQUIRE(exposition_ok(body, name, &received));
        }
        REQUIRE(received >= 1);
        /* The leader's own appends reach the follower: its match index moves past 0. */
        snprintf(name, sizeof name, "raftkv_peer_match_index{peer=\"%d\"}", i);
        for (uint64_t deadline = now_ms() + WAIT_MS; match < 1 && now_ms() < deadline;) {
            REQUIRE(http_wait((int)leader, "/metrics", 200, body, sizeof body));
            REQUIRE(exposition_ok(body, name, &match));
        }
        REQUIRE(match >= 1);
    }
    return true;
}

static bool scenario_serves(struct cluster *c)
{
    /* The parser refuses what a scraper would. */
    double v;
    REQUIRE(exposition_ok("# TYPE a_total counter\na_total 1\n", "a_total", &v) && v == 1);
    REQUIRE(!exposition_ok("a_total 1\n", "", &v));                /* no TYPE */
    REQUIRE(!exposition_ok("# TYPE a counter\na 1\n", "", &v));    /* no _total */
    REQUIRE(!exposition_ok("# TYPE a gauge\na{x=1} 1\n", "", &v)); /* bad label */
    REQUIRE(!exposition_ok("# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                           "h_bucket{le=\"+Inf\"} 1\n",
                           "", &v)); /* not cumulative */
    REQUIRE(exposition_ok("# TYPE h histogram\nh_bucket{op=\"a\",le=\"+Inf\"} 2\n"
                          "h_count{op=\"a\"} 2\nh_bucket{op=\"b\",le=\"+Inf\"} 1\n"
                          "h_count{op=\"b\"} 1\n",
                          "h_count{op=\"b\"}", &v) &&
            v == 1); /* one family, two series */
    REQUIRE(!exposition_ok("# TYPE h histogram\nh_bucket{op=\"a\",le=\"+Inf\"} 2\n"
                           "h_count{op=\"b\"} 2\n",
                           "", &v)); /* a count without its buckets */
    REQUIRE(!exposition_ok("# TYPE g gauge\ng{x=\"a\\q\"} 1\n", "", &v)); /* bad escape */
    REQUIRE(configure_http(c));
    REQUIRE(cluster_start_all(c));
    uint64_t leader = cluster_wait_leader(c, WAIT_MS), rev = 0;
    REQUIRE(leader);
    REQUIRE(cluster_put_retry(c, "k", "v", WAIT_MS, &rev));
    static char body[MAX_BODY];
    for (int i = 1; i <= c->n; i++) {
        REQUIRE(http_wait(i, "/health", 200, body, sizeof body));
        REQUIRE(strstr(body, "\"healthy\":true"));
    }
    REQUIRE(http_wait((int)leader, "/status", 200, body, sizeof body));
    REQUIRE(strstr(body, "\"role\":\"leader\"") && strstr(body, "\"elections_started\":"));
    REQUIRE(status_members(c, (int)leader));
    /* A follower learns the commit index with the leader's next message. */
    for (int i = 1; i <= c->n; i++) {
        double commit = -1;
        for (uint64_t deadline = now_ms() + WAIT_MS; commit < (double)rev && now_ms() < deadline;) {
            REQUIRE(http_wait(i, "/metrics", 200, body, sizeof body));
            REQUIRE(exposition_ok(body, "raftkv_commit_index", &commit));
        }
        REQUIRE(commit >= (double)rev);
        REQUIRE(strstr(body, "raftkv_batch_write_seconds_count"));
    }
    fprintf(stderr, "  /metrics: %zu bytes\n", strlen(body));
    /* Every family the README names. */
    static const char *const families[] = {"raftkv_client_requests_total counter",
                                           "raftkv_client_request_duration_seconds histogram",
                                           "raftkv_proposals_total counter",
                                           "raftkv_leader_changes_total counter",
                                           "raftkv_batch_write_seconds histogram",
                                           "raftkv_db_commit_seconds histogram",
                                           "raftkv_batch_entries histogram",
                                           "raftkv_batch_messages histogram",
                                           "raftkv_peer_messages_sent_total counter",
                                           "raftkv_peer_messages_received_total counter",
                                           "raftkv_peer_messages_dropped_total counter",
                                           "raftkv_peer_match_index gauge",
                                           "raftkv_peer_lag_entries gauge",
                                           "raftkv_snapshot_index gauge",
                                           "raftkv_snapshot_bytes gauge",
                                           "raftkv_snapshots_taken_total counter",
                                           "raftkv_snapshot_taken_bytes_total counter",
                                           "raftkv_snapshot_sent_bytes_total counter",
                                           "raftkv_snapshot_installed_bytes_total counter",
                                           "raftkv_snapshot_take_seconds histogram",
                                           "raftkv_snapshot_install_seconds histogram",
                                           "raftkv_db_map_bytes gauge",
                                           "raftkv_db_used_bytes gauge",
                                           "raftkv_role gauge",
                                           "raftkv_healthy gauge"};
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        char line[128];
        snprintf(line, sizeof line, "# TYPE %s\n", families[i]);
        if (!strstr(body, line))
            fprintf(stderr, "no %s", line);
        REQUIRE(strstr(body, line));
    }
    REQUIRE(requests_counted(c));
    REQUIRE(messages_counted(c));
    REQUIRE(snapshots_counted(c));
    REQUIRE(http_get(http_ports[0], "/nothing-here", body, sizeof body) == 404);
    /* Without a quorum the survivor is unhealthy, and says why. */
    int survivor = leader == 1 ? 2 : 1;
    for (int i = 1; i <= c->n; i++)
        if (i != survivor)
            REQUIRE(cluster_stop(c, i, SIGTERM) == 0);
    REQUIRE(http_wait(survivor, "/health", 503, body, sizeof body));
    REQUIRE(strstr(body, "\"reason\":\"no leader\""));
    return true;
}

static bool scenario_bad_address(struct cluster *c)
{
    REQUIRE(cluster_configure(c, 1, "http_address = tcp://127.0.0.1:1\n"));
    const char *argv[] = {RAFTD_PATH, "--config", c->nodes[0].conf, NULL};
    char out[256];
    snprintf(out, sizeof out, "%s/bad-http.out", c->dir);
    REQUIRE(run_capture(argv, out) == 2);
    REQUIRE(cluster_file_contains(out, "http_address: expected an address such as http://"));
    return true;
}

TEST(health_status_and_metrics)
{
    CHECK(
        cluster_run(3, "snapshot_entries = 10\nsnapshot_trailing_entries = 5\n", scenario_serves));
}

TEST(bad_http_address_exits_2)
{
    CHECK(cluster_run(1, NULL, scenario_bad_address));
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    static const struct test_case cases[] = {TEST_REF(health_status_and_metrics),
                                             TEST_REF(bad_http_address_exits_2)};
    return test_run_all(cases, sizeof cases / sizeof cases[0], argc, argv);
}
