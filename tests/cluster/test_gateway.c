/*
 * The HTTP gateway (http_gateway): /v1/kv through every node of a cluster with curl, a real
 * HTTP client (install-deps.sh --tests installs it), the same data as the client library sees, the
 * client protocol's errors as HTTP statuses, and hostile requests that leave the node serving.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "test.h"

#define WAIT_MS 20000
#define MAX_VALUE 1024 /* max_value_bytes of the nodes */

static int http_ports[CLUSTER_MAX_NODES];
static const char *dir; /* the cluster's, for curl's files */

/* ---- curl ---- */

/* curl with args on node id's HTTP port at path; the body goes to body (NUL-terminated;
 * *len its length when len is given). Returns the status, or -1. */
static int curl_at(int id, const char *path, char *body, size_t cap, size_t *len,
                   const char *const *args)
{
    char url[4096], out[128], body_path[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", http_ports[id - 1], path);
    snprintf(out, sizeof out, "%s/curl.out", dir);
    snprintf(body_path, sizeof body_path, "%s/curl.body", dir);
    const char *argv[16];
    size_t n = 0;
    while (args && *args && n < 14)
        argv[n++] = *args++;
    argv[n++] = url;
    argv[n] = NULL;
    unlink(body_path);
    int status = cluster_curl(argv, body_path, out);
    FILE *f = fopen(body_path, "r");
    size_t got = f ? fread(body, 1, cap - 1, f) : 0;
    body[got] = '\0';
    if (f)
        fclose(f);
    if (len)
        *len = got;
    return status;
}

static int http(int id, const char *method, const char *path, char *body, size_t cap)
{
    const char *args[] = {"-X", method, NULL};
    return curl_at(id, path, body, cap, NULL, args);
}

/* A PUT of the len bytes at value. */
static int http_put(int id, const char *path, const void *value, size_t len, char *body, size_t cap)
{
    char file[128], data[140];
    snprintf(file, sizeof file, "%s/value", dir);
    snprintf(data, sizeof data, "@%s", file);
    FILE *f = fopen(file, "w");
    if (!f || fwrite(value, 1, len, f) != len || fclose(f) != 0)
        return -1;
    const char *args[] = {"-X", "PUT", "--data-binary", data, NULL};
    return curl_at(id, path, body, cap, NULL, args);
}

/* Polls until the request answers want (a follower may not know the leader yet). */
static bool http_wait(int id, const char *method, const char *path, int want, char *body,
                      size_t cap)
{
    int got = -1;
    for (uint64_t deadline = now_ms() + WAIT_MS; now_ms() < deadline; sleep_ms(100))
        if ((got = http(id, method, path, body, cap)) == want)
            return true;
    fprintf(stderr, "node %d %s %s: %d (want %d): %s\n", id, method, path, got, want, body);
    return false;
}

/* ---- raw requests, for what curl would not send ---- */

/* Sends req as it is to node id; returns the answer's status, 0 if the node closed the
 * connection without one, -1 if it could not be reached. */
static int raw_request(int id, const void *req, size_t len)
{
    int fd = cluster_http_connect(http_ports[id - 1]);
    if (fd < 0)
        return -1;
    /* The node may answer and close before it has read everything: that is fine. Our end
     * of the stream ends, so that a node waiting for more sees that nothing comes. */
    ssize_t w = send(fd, req, len, MSG_NOSIGNAL);
    (void)w;
    shutdown(fd, SHUT_WR);
    char resp[256] = "";
    ssize_t r = read(fd, resp, sizeof resp - 1);
    close(fd);
    int status = 0;
    if (r > 0) {
        resp[r] = '\0';
        sscanf(resp, "HTTP/1.%*d %d", &status);
    }
    return status;
}

/* ---- scenarios ---- */

static bool configure(struct cluster *c, bool gateway)
{
    dir = c->dir;
    for (int i = 1; i <= c->n; i++) {
        char extra[256];
        http_ports[i - 1] = cluster_free_port();
        REQUIRE(http_ports[i - 1] > 0);
        snprintf(extra, sizeof extra,
                 "http_address = http://127.0.0.1:%d\nhttp_gateway = %s\nmax_value_bytes = %d\n",
                 http_ports[i - 1], gateway ? "true" : "false", MAX_VALUE);
        REQUIRE(cluster_configure(c, i, extra));
    }
    return true;
}

static bool start(struct cluster *c, bool gateway)
{
    REQUIRE(configure(c, gateway));
    REQUIRE(cluster_start_all(c));
    REQUIRE(cluster_wait_leader(c, WAIT_MS));
    return true;
}

static bool lib_get_is(struct cluster *c, const void *key, size_t key_len, const void *value,
                       size_t len)
{
    struct raftkv_result res = {0};
    int rc = raftkv_get(c->client, key, key_len, &res);
    bool ok = rc == RAFTKV_OK && res.value_len == len && !memcmp(res.value, value, len);
    if (!ok)
        fprintf(stderr, "get through the library: %s, %zu bytes\n", raftkv_status_str(rc),
                res.value_len);
    raftkv_result_free(&res);
    return ok;
}

static char body[1 << 20];

/* Written through one node, read through every node and the library, and the other way. */
static bool scenario_every_node(struct cluster *c)
{
    REQUIRE(start(c, true));
    for (int i = 1; i <= c->n; i++) {
        char path[64], value[32], want[128];
        snprintf(path, sizeof path, "/v1/kv/node%d", i);
        snprintf(value, sizeof value, "written through %d", i);
        /* A follower forwards: through the library's leader-following client. */
        int st = -1;
        for (uint64_t deadline = now_ms() + WAIT_MS; st != 200 && now_ms() < deadline;)
            st = http_put(i, path, value, strlen(value), body, sizeof body);
        REQUIRE(st == 200);
        REQUIRE(strstr(body, "{\"revision\":") == body);
        for (int j = 1; j <= c->n; j++) {
            REQUIRE(http_wait(j, "GET", path, 200, body, sizeof body));
            snprintf(want, sizeof want,
                     "{\"key\":\"node%d\",\"value\":\"%s\",\"create_revision\":", i, value);
            REQUIRE(strstr(body, want) == body);
        }
        char key[16];
        snprintf(key, sizeof key, "node%d", i);
        REQUIRE(lib_get_is(c, key, strlen(key), value, strlen(value)));
    }
    uint64_t rev;
    REQUIRE(cluster_put_retry(c, "from-library", "hello", WAIT_MS, &rev));
    for (int j = 1; j <= c->n; j++) {
        REQUIRE(http_wait(j, "GET", "/v1/kv/from-library?raw", 200, body, sizeof body));
        REQUIRE(strcmp(body, "hello") == 0);
    }
    /* Deleted through a follower, gone for everyone. */
    REQUIRE(http_wait(2, "DELETE", "/v1/kv/node1", 200, body, sizeof body));
    REQUIRE(strstr(body, "{\"revision\":") == body);
    REQUIRE(http(3, "DELETE", "/v1/kv/node1", body, sizeof body) == 404);
    REQUIRE(strstr(body, "\"code\":\"NOT_FOUND\""));
    REQUIRE(http(1, "GET", "/v1/kv/node1", body, sizeof body) == 404);
    struct raftkv_result res = {0};
    REQUIRE(raftkv_get(c->client, "node1", 5, &res) == RAFTKV_NOT_FOUND);
    raftkv_result_free(&res);
    return true;
}

/* Keys are the percent-decoded path; values are bytes, in JSON as text or base64. */
static bool scenario_bytes(struct cluster *c)
{
    REQUIRE(start(c, true));
    REQUIRE(http_put(2, "/v1/kv/dir/a%20b%25c%2Fd+e", "v", 1, body, sizeof body) == 200);
    REQUIRE(lib_get_is(c, "dir/a b%c/d+e", 13, "v", 1));
    REQUIRE(http(1, "GET", "/v1/kv/dir%2Fa%20b%25c/d%2be", body, sizeof body) == 200);
    REQUIRE(strstr(body, "{\"key\":\"dir/a b%c/d+e\",\"value\":\"v\","));

    static const char text[] = "q\"b\\s\nn\tt\x01 \xc3\xa9";
    REQUIRE(http_put(1, "/v1/kv/text", text, sizeof text - 1, body, sizeof body) == 200);
    REQUIRE(http(3, "GET", "/v1/kv/text", body, sizeof body) == 200);
    REQUIRE(strstr(body, "\"value\":\"q\\\"b\\\\s\\nn\\tt\\u0001 \xc3\xa9\""));

    static const uint8_t bin[] = {0xff, 0x00, 0x01, '"', 0xc3}; /* not UTF-8 */
    REQUIRE(http_put(3, "/v1/kv/%FF%FE", bin, sizeof bin, body, sizeof body) == 200);
    REQUIRE(lib_get_is(c, "\xff\xfe", 2, bin, sizeof bin));
    REQUIRE(http(1, "GET", "/v1/kv/%ff%fe", body, sizeof body) == 200);
    REQUIRE(strstr(body, "{\"key\":\"//4=\",\"key_encoding\":\"base64\",\"value\":\"/wABIsM=\","
                         "\"value_encoding\":\"base64\","));
    size_t len = 0;
    const char *get[] = {"-X", "GET", NULL};
    REQUIRE(curl_at(2, "/v1/kv/%FF%FE?raw", body, sizeof body, &len, get) == 200);
    REQUIRE(len == sizeof bin && !memcmp(body, bin, len));
    /* An empty value is a value. */
    REQUIRE(http_put(1, "/v1/kv/empty", "", 0, body, sizeof body) == 200);
    REQUIRE(http(2, "GET", "/v1/kv/empty", body, sizeof body) == 200);
    REQUIRE(strstr(body, "\"value\":\"\","));
    return true;
}

/* The client protocol's errors and the gateway's own, as statuses; the node keeps serving. */
static bool scenario_errors(struct cluster *c)
{
    REQUIRE(start(c, true));
    static const struct {
        const char *method, *path;
        int status;
    } cases[] = {
        {"GET", "/v1/kv/missing", 404},
        {"GET", "/v1/kv/", 400},
        {"GET", "/v1/kv/a%zz", 400},
        {"GET", "/v1/kv/a%4", 400},
        {"GET", "/v1/kv/a?nothing=1", 400},
        {"GET", "/v1/kv/a?raw&raw", 400},
        {"GET", "/v1/kv/a?raw=%", 400},
        {"DELETE", "/v1/kv/a?raw", 400},
        {"GET", "/v1/kv/%00a", 400}, /* the cluster keeps these keys: INVALID */
        {"POST", "/v1/kv/a", 405},
        {"PATCH", "/v1/kv/a", 405},
        {"PUT", "/v1/kv", 405},
        {"POST", "/health", 405},
        {"DELETE", "/metrics", 405},
        {"GET", "/v1/nothing", 404},
        {"GET", "/v1/kvx/a", 404},
        {"GET", "/v1", 404},
        {"GET", "/v2/kv/a", 404},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = http(1, cases[i].method, cases[i].path, body, sizeof body);
        if (st != cases[i].status)
            fprintf(stderr, "%s %s: %d (want %d): %s\n", cases[i].method, cases[i].path, st,
                    cases[i].status, body);
        REQUIRE(st == cases[i].status);
        REQUIRE(strstr(body, "\"error\":"));
    }
    REQUIRE(http(1, "GET", "/v1/nothing", body, sizeof body) == 404);
    REQUIRE(strstr(body, "\"routes\":[\"GET /v1/kv/KEY\""));
    /* Over max_value_bytes: 413; over what the node reads at all: refused by NNG. */
    static char big[64 << 10];
    memset(big, 'x', sizeof big);
    REQUIRE(http_put(1, "/v1/kv/big", big, MAX_VALUE + 1, body, sizeof body) == 413);
    REQUIRE(http_put(1, "/v1/kv/big", big, sizeof big, body, sizeof body) == 400);
    REQUIRE(http_put(1, "/v1/kv/big", big, MAX_VALUE, body, sizeof body) == 200);
    const char *chunked[] = {"-X", "PUT", "-H", "Transfer-Encoding: chunked", "--data-binary",
                             "x",  NULL};
    REQUIRE(curl_at(1, "/v1/kv/chunked", body, sizeof body, NULL, chunked) == 411);
    REQUIRE(http(1, "GET", "/v1/kv/chunked", body, sizeof body) == 404);

    /* Hostile requests: answered or dropped, never a crash. */
    static char huge[200 << 10];
    int n = snprintf(huge, sizeof huge, "GET /v1/kv/");
    memset(huge + n, 'a', sizeof huge - (size_t)n - 64);
    snprintf(huge + sizeof huge - 64, 64, " HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(raw_request(1, huge, strlen(huge)) != 200);
#define BYTES(s)                                                                                   \
    {                                                                                              \
        s, sizeof s - 1                                                                            \
    }
    static const struct {
        const char *s;
        size_t len;
    } hostile[] = {
        BYTES("G@RB\x01GE /v1/kv/a HTTP/1.1\r\nHost: x\r\n\r\n"),
        BYTES("GET /v1/kv/%%%%%%%% HTTP/1.1\r\nHost: x\r\n\r\n"),
        BYTES("GET /v1/kv?limit=99999999999999999999999&prefix=%G0 HTTP/1.1\r\nHost: x\r\n\r\n"),
        BYTES("PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
        BYTES("PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"),
        BYTES("PUT /v1/kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort"),
        BYTES("GET /v1/kv/a?raw HTTP/1.1\r\n\r\n"),
        BYTES("\r\n\r\n\r\n"),
        BYTES("GET\r\n\r\n"),
        BYTES("GET /v1/kv/\xff\xfe\x00x HTTP/1.1\r\nHost: x\r\n\r\n"),
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++)
        REQUIRE(raw_request(1, hostile[i].s, hostile[i].len) != 200);
    REQUIRE(http_wait(1, "GET", "/health", 200, body, sizeof body));
    REQUIRE(http_put(1, "/v1/kv/after", "ok", 2, body, sizeof body) == 200);
    REQUIRE(lib_get_is(c, "after", 5, "ok", 2));
    return true;
}

/* Without a quorum a write cannot be acknowledged: 503 within the client's timeout, with
 * its outcome unknown, and a read 503 too. */
static bool scenario_no_quorum(struct cluster *c)
{
    REQUIRE(start(c, true));
    REQUIRE(http_wait(1, "PUT", "/v1/kv/before", 200, body, sizeof body));
    REQUIRE(cluster_stop(c, 2, SIGKILL) == -1 && cluster_stop(c, 3, SIGKILL) == -1);
    REQUIRE(http_put(1, "/v1/kv/during", "x", 1, body, sizeof body) == 503);
    REQUIRE(strstr(body, "\"code\":\"UNAVAILABLE\"") ||
            strstr(body, "\"code\":\"SESSION_EXPIRED\""));
    REQUIRE(strstr(body, "outcome is unknown"));
    REQUIRE(http(1, "GET", "/v1/kv/before", body, sizeof body) == 503);
    REQUIRE(!strstr(body, "outcome is unknown"));
    /* Back to a quorum: it serves again. */
    REQUIRE(cluster_start(c, 2));
    REQUIRE(http_wait(1, "GET", "/v1/kv/before", 200, body, sizeof body));
    return true;
}

/* A node stopped while a write waits for a quorum that will not come, and while requests
 * keep arriving: the gateway's call ends (503, or no answer if the request came too late to
 * be taken), and the node stops cleanly (cluster_finish checks its log for sanitizer
 * reports). */
static bool scenario_stop_in_flight(struct cluster *c)
{
    REQUIRE(start(c, true));
    REQUIRE(http_wait(1, "PUT", "/v1/kv/before", 200, body, sizeof body));
    REQUIRE(cluster_stop(c, 2, SIGKILL) == -1 && cluster_stop(c, 3, SIGKILL) == -1);
    pid_t writer = fork();
    REQUIRE(writer >= 0);
    if (writer == 0) {
        int st = http_put(1, "/v1/kv/during", "x", 1, body, sizeof body);
        _exit(st == 503 ? 0 : st == -1 ? 1 : 2);
    }
    pid_t reader = fork(); /* until the node is gone */
    REQUIRE(reader >= 0);
    if (reader == 0) {
        static const char get[] = "GET /v1/kv/before HTTP/1.1\r\nHost: x\r\n\r\n";
        while (raw_request(1, get, sizeof get - 1) >= 0)
            ;
        _exit(0);
    }
    sleep_ms(500); /* most likely in flight by now; either way the node must stop well */
    REQUIRE(cluster_stop(c, 1, SIGTERM) == 0);
    int status;
    REQUIRE(waitpid(reader, &status, 0) == reader);
    REQUIRE(waitpid(writer, &status, 0) == writer && WIFEXITED(status));
    fprintf(stderr, "  the write in flight: %s\n",
            WEXITSTATUS(status) == 0 ? "503" : "no answer (too late)");
    REQUIRE(WEXITSTATUS(status) < 2);
    return true;
}

/* ---- listing ---- */

/* The JSON string at s (after its opening quote) into out, \uXXXX of bytes as the byte;
 * returns its length, *end its closing quote. */
static size_t json_unquote(const char *s, uint8_t *out, const char **end)
{
    size_t n = 0;
    for (; *s && *s != '"'; s++) {
        if (*s != '\\') {
            out[n++] = (uint8_t)*s;
            continue;
        }
        s++;
        if (*s == 'u') {
            unsigned v = 0;
            sscanf(s + 1, "%4x", &v);
            out[n++] = (uint8_t)v;
            s += 4;
        } else {
            out[n++] = (uint8_t)(*s == 'n' ? '\n' : *s == 't' ? '\t' : *s);
        }
    }
    *end = s;
    return n;
}

static size_t base64_decode(const char *s, uint8_t *out)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (; *s && *s != '"' && *s != '='; s++) {
        acc = acc << 6 | (uint32_t)(strchr(digits, *s) - digits);
        if ((bits += 6) >= 8)
            out[n++] = (uint8_t)(acc >> (bits -= 8));
    }
    return n;
}

/* The bytes of field name in the JSON at s, after from (base64 when name_encoding follows
 * it); NULL if none. */
static const char *json_field(const char *from, const char *name, uint8_t *out, size_t *len)
{
    char text[32], b64[40];
    snprintf(text, sizeof text, "\"%s\":\"", name);
    snprintf(b64, sizeof b64, ",\"%s_encoding\":\"base64\"", name);
    const char *t = strstr(from, text), *end;
    if (!t)
        return NULL;
    t += strlen(text);
    *len = json_unquote(t, out, &end);
    if (*end && !strncmp(end + 1, b64, strlen(b64)))
        *len = base64_decode(t, out);
    return t;
}

/* Pages of limit keys through node id, each from the last one's next: every key with the
 * prefix once, in order. */
static bool list_pages(int id, const char *prefix, int limit, int want_keys)
{
    uint8_t start[600];
    size_t start_len = 0;
    uint8_t last[600];
    size_t last_len = 0;
    int keys = 0, pages = 0;
    for (bool more = true; more; pages++) {
        char path[4096];
        int n = snprintf(path, sizeof path, "/v1/kv?prefix=%s&limit=%d", prefix, limit);
        if (start_len)
            n += snprintf(path + n, sizeof path - (size_t)n, "&start=");
        for (size_t i = 0; i < start_len; i++)
            n += snprintf(path + n, sizeof path - (size_t)n, "%%%02X", start[i]);
        REQUIRE(http_wait(id, "GET", path, 200, body, sizeof body));
        REQUIRE(strstr(body, "{\"revision\":") == body);
        more = strstr(body, "\"more\":true") != NULL;
        REQUIRE(more || strstr(body, "\"more\":false"));
        int in_page = 0;
        uint8_t key[600];
        size_t len;
        for (const char *at = body; (at = json_field(at, "key", key, &len)); in_page++) {
            REQUIRE(len >= strlen(prefix) && !memcmp(key, prefix, strlen(prefix)));
            size_t m = len < last_len ? len : last_len;
            int cmp = memcmp(last, key, m);
            REQUIRE(keys == 0 || cmp < 0 || (cmp == 0 && last_len < len)); /* in order, once */
            memcpy(last, key, len);
            last_len = len;
            keys++;
        }
        REQUIRE(in_page <= limit && (in_page > 0 || !more));
        REQUIRE(!more == !json_field(body, "next", start, &start_len));
    }
    if (keys != want_keys)
        fprintf(stderr, "%d keys in %d pages, want %d\n", keys, pages, want_keys);
    return keys == want_keys;
}

static bool scenario_list(struct cluster *c)
{
    REQUIRE(start(c, true));
    char path[64];
    for (int i = 0; i < 25; i++) {
        snprintf(path, sizeof path, "/v1/kv/list/%02d", i);
        REQUIRE(http_put(1 + i % 3, path, "v", 1, body, sizeof body) == 200);
    }
    /* Around the prefix, and a key that is not UTF-8 (its next is given in base64). */
    static const char *const others[] = {"/v1/kv/list", "/v1/kv/lisu", "/v1/kv/lis", "/v1/kv/list0",
                                         "/v1/kv/list/%FF"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        REQUIRE(http_put(1, others[i], "o", 1, body, sizeof body) == 200);
    for (int limit = 1; limit <= 30; limit += 4)
        REQUIRE(list_pages(1 + limit % 3, "list/", limit, 26));
    REQUIRE(list_pages(2, "", 1000, 30));
    REQUIRE(list_pages(3, "lis", 7, 30));
    /* A page that ends at list/\xff: its next (list/\xff\0) is in base64; percent-encoded,
     * its bytes are the next page's start. */
    REQUIRE(http(2, "GET", "/v1/kv?prefix=lis&limit=28", body, sizeof body) == 200);
    REQUIRE(strstr(body, "\"more\":true,\"next\":\"bGlzdC//AA==\",\"next_encoding\":\"base64\"}"));
    REQUIRE(http(3, "GET", "/v1/kv?prefix=lis&limit=1&start=list/%FF%00", body, sizeof body) ==
            200);
    REQUIRE(strstr(body, "\"kvs\":[{\"key\":\"list0\","));
    /* A start without a prefix lists from it (tests/fuzz/fuzz_gateway found that the
     * sanitizer build stopped on it); a limit over the store's cap is the cap. */
    REQUIRE(http(3, "GET", "/v1/kv?start=list/%FF%00&limit=1", body, sizeof body) == 200);
    REQUIRE(strstr(body, "\"kvs\":[{\"key\":\"list0\","));
    REQUIRE(http(3, "GET", "/v1/kv?limit=999999999", body, sizeof body) == 200);
    REQUIRE(strstr(body, "\"more\":false}"));
    REQUIRE(list_pages(1, "nothing", 5, 0));
    /* A key written through the library is listed through HTTP. */
    uint64_t rev;
    REQUIRE(cluster_put_retry(c, "list/25", "lib", WAIT_MS, &rev));
    REQUIRE(list_pages(2, "list/", 10, 27));
    REQUIRE(http(1, "GET", "/v1/kv?prefix=list/&limit=2", body, sizeof body) == 200);
    REQUIRE(strstr(body, "\"next\":\"list/01\\u0000\""));
    static const char *const bad[] = {
        "/v1/kv?limit=abc",        "/v1/kv?limit=-1", "/v1/kv?limit=", "/v1/kv?limit=99999999999",
        "/v1/kv?prefix=a&start=b", "/v1/kv?prefix=%", "/v1/kv?raw",    "/v1/kv?prefix=a&prefix=b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        REQUIRE(http(1, "GET", bad[i], body, sizeof body) == 400);
    REQUIRE(http(1, "DELETE", "/v1/kv?prefix=list/", body, sizeof body) == 405);
    REQUIRE(list_pages(2, "list/", 10, 27));
    return true;
}

/* http_gateway off: /v1/ is an unknown path, and nothing is written. */
static bool scenario_off(struct cluster *c)
{
    REQUIRE(start(c, false));
    REQUIRE(http_put(1, "/v1/kv/a", "x", 1, body, sizeof body) == 404);
    REQUIRE(http(1, "GET", "/v1/kv/a", body, sizeof body) == 404);
    REQUIRE(http(1, "DELETE", "/v1/kv/a", body, sizeof body) == 404);
    struct raftkv_result res = {0};
    REQUIRE(raftkv_get(c->client, "a", 1, &res) == RAFTKV_NOT_FOUND);
    raftkv_result_free(&res);
    REQUIRE(http_wait(1, "GET", "/health", 200, body, sizeof body));
    return true;
}

#define GATEWAY_TEST(name, n, fn)                                                                  \
    TEST(name)                                                                                     \
    {                                                                                              \
        CHECK(cluster_run(n, NULL, fn));                                                           \
    }

GATEWAY_TEST(every_node_reads_and_writes, 3, scenario_every_node)
GATEWAY_TEST(keys_and_values_are_bytes, 3, scenario_bytes)
GATEWAY_TEST(errors_and_hostile_requests, 1, scenario_errors)
GATEWAY_TEST(prefix_listing_in_pages, 3, scenario_list)
GATEWAY_TEST(no_quorum_answers_503, 3, scenario_no_quorum)
GATEWAY_TEST(off_serves_no_data, 1, scenario_off)
GATEWAY_TEST(stop_answers_calls_in_flight, 3, scenario_stop_in_flight)

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    static const struct test_case cases[] = {
        TEST_REF(every_node_reads_and_writes), TEST_REF(keys_and_values_are_bytes),
        TEST_REF(errors_and_hostile_requests), TEST_REF(prefix_listing_in_pages),
        TEST_REF(no_quorum_answers_503),       TEST_REF(stop_answers_calls_in_flight),
        TEST_REF(off_serves_no_data)};
    return test_run_all(cases, sizeof cases / sizeof cases[0], argc, argv);
}
