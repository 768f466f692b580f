/*
 * HTTP for people and monitors (http_address): GET /health, /status and /metrics. NNG's
 * threads only queue a request; the loop answers it from the state it owns. /status and
 * /metrics are written from the same NodeStatus message a client's status request gets
 * (client.proto), walked through its protobuf-c descriptor, so a counter added there shows
 * up here with its proto name and nothing to keep in step.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "log/log.h"
#include "node/gateway.h"
#include "node/node_internal.h"
#include "transport/http_server.h"

/* A node that saw a leader but lags this many entries behind the commit index is still
 * catching up: it would answer reads late. */
#define HEALTH_MAX_LAG 1000

/* Upper bounds of the batch write histogram's buckets, in microseconds. */
static const uint64_t write_bounds_us[WRITE_BUCKETS] = {
    250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000};

enum route { ROUTE_HEALTH, ROUTE_STATUS, ROUTE_METRICS };

static const char *const routes[] = {
    [ROUTE_HEALTH] = "/health", [ROUTE_STATUS] = "/status", [ROUTE_METRICS] = "/metrics"};
#define N_ROUTES (sizeof routes / sizeof routes[0])

/* A growing text; on allocation failure it stays short and says so (oom). */
struct text {
    char *s;
    size_t len, cap;
    bool oom;
};

static void text_add(struct text *t, const char *fmt, ...)
{
    for (int pass = 0; pass < 2 && !t->oom; pass++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? t->cap : 1024) + (size_t)n + 1;
        char *s = realloc(t->s, cap * 2);
        if (!s) {
            t->oom = true;
            return;
        }
        t->s = s;
        t->cap = cap * 2;
    }
}

static void reply(struct rk_http_request *req, uint16_t status, const char *type, struct text *t)
{
    if (t->oom) {
        static const char oom[] = "{\"error\":\"out of memory\"}\n";
        rk_http_reply(req, 500, "application/json", oom, sizeof oom - 1);
    } else {
        rk_http_reply(req, status, type, t->s, t->len);
    }
    free(t->s);
}

/* NNG threads: queue the request for the loop, or hand it to the gateway; an unknown path
 * is answered here. */
static void on_request(void *arg, struct rk_http_request *req, const struct rk_http_in *in)
{
    struct rk_node *n = arg;
    if (n->gateway && rk_gateway_owns(in->path)) {
        rk_gateway_serve(n->gateway, req, in);
        return;
    }
    size_t route = 0;
    while (route < N_ROUTES && strcmp(in->path, routes[route]) != 0)
        route++;
    if (route < N_ROUTES && strcmp(in->method, "GET") != 0 && strcmp(in->method, "HEAD") != 0) {
        static const char body[] = "{\"error\":\"method not allowed: GET only\"}\n";
        rk_http_reply(req, 405, "application/json", body, sizeof body - 1);
        return;
    }
    if (route == N_ROUTES) {
        static const char body[] =
            "{\"error\":\"not found\",\"paths\":[\"/health\",\"/status\",\"/metrics\"]}\n";
        rk_http_reply(req, 404, "application/json", body, sizeof body - 1);
        return;
    }
    struct event *ev = calloc(1, sizeof *ev);
    if (!ev) {
        static const char body[] = "{\"error\":\"out of memory\"}\n";
        rk_http_reply(req, 503, "application/json", body, sizeof body - 1);
        return;
    }
    ev->type = EV_HTTP_REQUEST;
    ev->http = req;
    ev->route = (unsigned)route;
    rk_queue_push(&n->queue, &ev->item);
}

int http__start(struct rk_node *n)
{
    const char *url = n->cfg->http_address;
    if (!url)
        return RK_NODE_OK;
    /* A body is a gateway's PUT: one value. Without the gateway a small one is read and
     * ignored, so that a PUT there is told 404 like any unknown path. */
    size_t max_body = n->gateway ? n->max_request_bytes : 4096;
    int rv = rk_http_server_start(url, max_body, on_request, n, &n->http);
    if (rv != 0) {
        rk_error("cannot serve HTTP on %s: %s", url, nng_strerror(rv));
        return RK_NODE_ETRANSPORT;
    }
    return RK_NODE_OK;
}

void http__reply_unavailable(struct event *ev, const char *why)
{
    struct text t = {0};
    text_add(&t, "{\"error\":\"%s\"}\n", why);
    reply(ev->http, 503, "application/json", &t);
}

void http__count_write(struct rk_node *n, uint64_t us)
{
    size_t b = 0;
    while (b < WRITE_BUCKETS && us > write_bounds_us[b])
        b++;
    n->write_hist[b]++;
    n->write_us_total += us;
}

/* ---- /health ---- */

/* Why the node should not get traffic now, or NULL. */
static const char *unhealthy(const struct rk_node *n)
{
    if (n->held || n->refusing_full)
        return "storage full";
    if (!n->view.leader)
        return "no leader";
    if (n->view.commit > n->view.applied + HEALTH_MAX_LAG)
        return "catching up";
    return NULL;
}

static void serve_health(struct rk_node *n, struct rk_http_request *req)
{
    const char *why = unhealthy(n);
    struct text t = {0};
    text_add(&t,
             "{\"healthy\":%s,\"id\":%" PRIu64 ",\"role\":\"%s\",\"term\":%" PRIu64
             ",\"leader\":%" PRIu64 ",\"commit\":%" PRIu64 ",\"applied\":%" PRIu64,
             why ? "false" : "true", n->cfg->node_id, raft_role_name(n->view.role), n->view.term,
             n->view.leader, n->view.commit, n->view.applied);
    if (why)
        text_add(&t, ",\"reason\":\"%s\"", why);
    text_add(&t, "}\n");
    reply(req, why ? 503 : 200, "application/json", &t);
}

/* ---- /status: NodeStatus as JSON ---- */

static bool is_number(const ProtobufCFieldDescriptor *f)
{
    return f->type == PROTOBUF_C_TYPE_UINT64 || f->type == PROTOBUF_C_TYPE_UINT32;
}

static uint64_t number_at(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *p = (const char *)m + f->offset;
    if (f->type == PROTOBUF_C_TYPE_UINT32)
        return *(const uint32_t *)(const void *)p;
    return *(const uint64_t *)(const void *)p;
}

static const void *pointer_at(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    return *(const void *const *)(const void *)((const char *)m + f->offset);
}

/* Numbers, strings (role names: nothing to escape) and messages are all NodeStatus has. */
static void json_message(struct text *t, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    text_add(t, "{");
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *sep = i ? "," : "";
        if (is_number(f)) {
            text_add(t, "%s\"%s\":%" PRIu64, sep, f->name, number_at(m, f));
        } else if (f->type == PROTOBUF_C_TYPE_STRING) {
            const char *s = pointer_at(m, f);
            text_add(t, "%s\"%s\":\"%s\"", sep, f->name, s ? s : "");
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE && pointer_at(m, f)) {
            text_add(t, "%s\"%s\":", sep, f->name);
            json_message(t, pointer_at(m, f));
        }
    }
    text_add(t, "}");
}

static void serve_status(struct rk_node *n, struct rk_http_request *req)
{
    struct node_status s;
    clients__status(n, &s);
    struct text t = {0};
    json_message(&t, &s.st.base);
    text_add(&t, "\n");
    reply(req, 200, "application/json", &t);
}

/* ---- /metrics: Prometheus text format 0.0.4 ---- */

static void metric(struct text *t, const char *name, const char *type, const char *help,
                   uint64_t value)
{
    text_add(t, "# HELP raftkv_%s %s\n# TYPE raftkv_%s %s\nraftkv_%s %" PRIu64 "\n", name, help,
             name, type, name, value);
}

/* The numbers of NodeStatus: its own are gauges (raftkv_term), those of its parts are
 * counters named after the part (raftkv_raft_elections_started_total). */
static void metrics_of(struct text *t, const ProtobufCMessage *m, const char *part)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char name[128];
        if (is_number(f) && !part) {
            metric(t, f->name, "gauge", "as in raft-kv status", number_at(m, f));
        } else if (is_number(f)) {
            snprintf(name, sizeof name, "%s_%s_total", part, f->name);
            metric(t, name, "counter", "counted since the node started", number_at(m, f));
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE && pointer_at(m, f) && !part) {
            metrics_of(t, pointer_at(m, f), f->name);
        }
    }
}

static void metrics_write_histogram(struct text *t, const struct rk_node *n)
{
    static const char name[] = "raftkv_batch_write_seconds";
    text_add(t,
             "# HELP %s One synced LMDB transaction of a ready: persist, apply, fsync.\n"
             "# TYPE %s histogram\n",
             name, name);
    uint64_t count = 0;
    for (size_t b = 0; b <= WRITE_BUCKETS; b++) {
        count += n->write_hist[b];
        if (b < WRITE_BUCKETS)
            text_add(t, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
                     (double)write_bounds_us[b] / 1e6, count);
        else
            text_add(t, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, count);
    }
    text_add(t, "%s_sum %.6f\n%s_count %" PRIu64 "\n", name, (double)n->write_us_total / 1e6, name,
             count);
}

static void serve_metrics(struct rk_node *n, struct rk_http_request *req)
{
    struct node_status s;
    clients__status(n, &s);
    struct text t = {0};
    metrics_of(&t, &s.st.base, NULL);
    text_add(&t,
             "# HELP raftkv_role The node's Raft role, as a label.\n# TYPE raftkv_role gauge\n"
             "raftkv_role{role=\"%s\"} 1\n",
             raft_role_name(n->view.role));
    metric(&t, "healthy", "gauge", "1 when /health answers 200", unhealthy(n) == NULL);
    struct rk_db_stats db;
    rk_db_stats(n->db, &db);
    metric(&t, "db_map_bytes", "gauge", "the LMDB map's current size", db.map_bytes);
    metric(&t, "db_used_bytes", "gauge", "bytes of the map in use", db.used_bytes);
    metric(&t, "db_max_bytes", "gauge", "max_db_bytes", n->cfg->max_db_bytes);
    metric(&t, "db_commits_total", "counter", "LMDB write transactions committed", db.commits);
    metrics_write_histogram(&t, n);
    reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", &t);
}

void http__handle(struct rk_node *n, struct event *ev)
{
    switch ((enum route)ev->route) {
    case ROUTE_HEALTH:
        serve_health(n, ev->http);
        break;
    case ROUTE_STATUS:
        serve_status(n, ev->http);
        break;
    case ROUTE_METRICS:
        serve_metrics(n, ev->http);
        break;
    }
}
