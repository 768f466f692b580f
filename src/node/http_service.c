/*
 * HTTP for people and monitors (http_address): GET /health, /status and /metrics. NNG's
 * threads only queue a request; the loop answers it from the state it owns. /status is the
 * NodeStatus message a client's status request gets (client.proto), walked through its
 * protobuf-c descriptor, so a field added there shows up here with its proto name and
 * nothing to keep in step; /metrics is metrics.c's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "json/json_bytes.h"
#include "log/log.h"
#include "node/gateway.h"
#include "node/node_internal.h"
#include "transport/http_server.h"

/* A node that saw a leader but lags this many entries behind the commit index is still
 * catching up: it would answer reads late. */
#define HEALTH_MAX_LAG 1000

enum route { ROUTE_HEALTH, ROUTE_STATUS, ROUTE_METRICS };

static const char *const routes[] = {
    [ROUTE_HEALTH] = "/health", [ROUTE_STATUS] = "/status", [ROUTE_METRICS] = "/metrics"};
#define N_ROUTES (sizeof routes / sizeof routes[0])

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

/* ---- /health ---- */

const char *http__unhealthy(const struct rk_node *n)
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
    const char *why = http__unhealthy(n);
    struct text t = {0};
    text_add(&t,
             "{\"healthy\":%s,\"id\":%" PRIu64 ",\"role\":\"%s\",\"term\":%" PRIu64
             ",\"leader\":%" PRIu64 ",\"commit\":%" PRIu64 ",\"applied\":%" PRIu64,
             why ? "false" : "true", n->cfg->node_id, node__role_name(&n->view), n->view.term,
             n->view.leader, n->view.commit, n->view.applied);
    if (why)
        text_add(&t, ",\"reason\":\"%s\"", why);
    text_add(&t, "}\n");
    reply(req, why ? 503 : 200, "application/json", &t);
}

/* ---- /status: NodeStatus as JSON ---- */

bool http__is_number(const ProtobufCFieldDescriptor *f)
{
    return f->label != PROTOBUF_C_LABEL_REPEATED &&
           (f->type == PROTOBUF_C_TYPE_UINT64 || f->type == PROTOBUF_C_TYPE_UINT32);
}

uint64_t http__number_at(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *p = (const char *)m + f->offset;
    if (f->type == PROTOBUF_C_TYPE_UINT32)
        return *(const uint32_t *)(const void *)p;
    return *(const uint64_t *)(const void *)p;
}

const void *http__pointer_at(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    return *(const void *const *)(const void *)((const char *)m + f->offset);
}

static void json_string(struct text *t, const char *s)
{
    rk_json_string(&(struct rk_json_out){text_put, t}, s ? s : "", s ? strlen(s) : 0);
}

static void json_message(struct text *t, const ProtobufCMessage *m);

/* One value of field f at p (a field's own storage, or an element of a repeated one). */
static void json_value(struct text *t, const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_UINT64:
        text_add(t, "%" PRIu64, *(const uint64_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
        text_add(t, "%" PRIu32, *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        text_add(t, "%s", *(const protobuf_c_boolean *)p ? "true" : "false");
        break;
    case PROTOBUF_C_TYPE_STRING:
        json_string(t, *(const char *const *)p);
        break;
    case PROTOBUF_C_TYPE_MESSAGE:
        json_message(t, *(const ProtobufCMessage *const *)p);
        break;
    default: /* NodeStatus has no other kind */
        text_add(t, "null");
        break;
    }
}

/* Numbers, bools, strings, messages and repeated messages: what NodeStatus has (other
 * repeated fields are left out). */
static void json_message(struct text *t, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *sep = "";
    text_add(t, "{");
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *at = (const char *)m + f->offset;
        bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
        if ((f->type == PROTOBUF_C_TYPE_MESSAGE && !repeated && !http__pointer_at(m, f)) ||
            (repeated && f->type != PROTOBUF_C_TYPE_MESSAGE))
            continue;
        text_add(t, "%s\"%s\":", sep, f->name);
        sep = ",";
        if (!repeated) {
            json_value(t, f, at);
            continue;
        }
        /* A repeated message: an array of pointers, and its count. */
        size_t count = *(const size_t *)(const void *)((const char *)m + f->quantifier_offset);
        const void *const *items = *(const void *const *const *)(const void *)at;
        text_add(t, "[");
        for (size_t k = 0; k < count; k++) {
            text_add(t, "%s", k ? "," : "");
            json_value(t, f, &items[k]);
        }
        text_add(t, "]");
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

/* ---- /metrics (metrics.c) ---- */

static void serve_metrics(struct rk_node *n, struct rk_http_request *req)
{
    struct text t = {0};
    metrics__write(n, &t);
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
