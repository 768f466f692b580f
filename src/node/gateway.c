/* The HTTP gateway (gateway.h): routes, JSON, and the client calls behind them; its parser and
 * its listings' JSON are gateway_internal.h's, for tests/fuzz/fuzz_gateway.c. */
#include "node/gateway.h"
#include "node/gateway_internal.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "json/json_bytes.h"
#include "node/text.h"
#include "raftkv/client.h"

#define JSON "application/json"

struct rk_gateway {
    struct raftkv_client *client;
    size_t max_value_bytes;
    nng_mtx *mu;  /* held while a call starts, so that close never races one */
    bool closing; /* under mu */
};

/* ---- answers, in a growing text (text.h) ---- */

/* "name":"text" or "name":"<base64>","name_encoding":"base64" (json/json_bytes.h) */
static void json_field(struct text *b, const char *name, const void *s, size_t len)
{
    rk_json_bytes_field(&(struct rk_json_out){text_put, b}, name, s, len);
}

static void reply(struct rk_http_request *req, uint16_t status, const char *type, struct text *b)
{
    if (b->oom) {
        static const char oom[] = "{\"error\":\"out of memory\",\"code\":\"ENOMEM\"}\n";
        rk_http_reply(req, 503, JSON, oom, sizeof oom - 1);
    } else {
        rk_http_reply(req, status, type, b->s, b->len);
    }
    free(b->s);
}

/* An error of the gateway's own (a bad request): {"error":why,"code":code}. */
static void reply_error(struct rk_http_request *req, uint16_t status, const char *code,
                        const char *why)
{
    struct text b = {0};
    text_add(&b, "{\"error\":");
    rk_json_string(&(struct rk_json_out){text_put, &b}, why, strlen(why));
    text_add(&b, ",\"code\":\"%s\"}\n", code);
    reply(req, status, JSON, &b);
}

static const char routes_json[] =
    "\"routes\":[\"GET /v1/kv/KEY\",\"PUT /v1/kv/KEY\",\"DELETE /v1/kv/KEY\","
    "\"GET /v1/kv?prefix=P&limit=N&start=K\"]";

static void reply_not_found(struct rk_http_request *req)
{
    static const char body[] = "{\"error\":\"no such resource\",\"code\":\"NOT_FOUND\",%s}\n";
    char text[sizeof body + sizeof routes_json];
    int n = snprintf(text, sizeof text, body, routes_json);
    rk_http_reply(req, 404, JSON, text, (size_t)n);
}

/* A client status as HTTP: its status code and code name. */
static uint16_t http_status(int status, const char **code)
{
    switch (status) {
    case RAFTKV_OK:
        *code = "OK";
        return 200;
    case RAFTKV_NOT_FOUND:
        *code = "NOT_FOUND";
        return 404;
    case RAFTKV_INVALID:
        *code = "INVALID";
        return 400;
    case RAFTKV_EUSAGE:
        *code = "EUSAGE";
        return 400;
    case RAFTKV_UNAVAILABLE:
        *code = "UNAVAILABLE";
        return 503;
    case RAFTKV_SESSION_EXPIRED:
        *code = "SESSION_EXPIRED";
        return 503;
    case RAFTKV_ENOMEM:
        *code = "ENOMEM";
        return 503;
    default:
        *code = "EINTERNAL";
        return 500;
    }
}

/* A failed call: the library's status, and its reason. A write that may have been applied
 * says so (client.h, "Exactly-once writes"). */
static void reply_status(struct rk_http_request *req, int status, const char *error, bool write)
{
    const char *code;
    uint16_t http = http_status(status, &code);
    bool unknown = write && (status == RAFTKV_UNAVAILABLE || status == RAFTKV_SESSION_EXPIRED);
    char why[512];
    snprintf(why, sizeof why, "%s%s%s%s", raftkv_status_str(status), error && *error ? ": " : "",
             error ? error : "",
             unknown ? " (the write's outcome is unknown: it may have been applied once, or "
                       "may still be, never twice)"
                     : "");
    reply_error(req, http, code, why);
}

/* ---- requests ---- */

/* Decodes %XX escapes (and '+' as a space when plus_is_space: a query's form encoding) of
 * s[0, len) into out (room for len bytes); false on a malformed escape. */
static bool percent_decode(const char *s, size_t len, bool plus_is_space, uint8_t *out,
                           size_t *out_len)
{
    static const char hex[] = "0123456789abcdef0123456789ABCDEF";
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+' && plus_is_space) {
            out[n++] = ' ';
        } else if (s[i] != '%') {
            out[n++] = (uint8_t)s[i];
        } else {
            const char *hi = i + 2 < len && s[i + 1] ? strchr(hex, s[i + 1]) : NULL;
            const char *lo = hi && s[i + 2] ? strchr(hex, s[i + 2]) : NULL;
            if (!lo)
                return false;
            out[n++] = (uint8_t)(((hi - hex) & 15) << 4 | ((lo - hex) & 15));
            i += 2;
        }
    }
    *out_len = n;
    return true;
}

/* The parameters of a query, decoded. Each may be given once. */
struct params {
    bool raw;
    bool has_prefix, has_start, has_limit;
    uint8_t *prefix, *start; /* point into the buffer the parser fills */
    size_t prefix_len, start_len;
    size_t limit;
};

/* A limit over the store's cap is the cap (client.h), so that the request says what is read. */
static bool parse_limit(const uint8_t *s, size_t len, size_t *out)
{
    if (len == 0 || len > 9)
        return false; /* up to 999,999,999: no overflow */
    size_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v < RAFTKV_RANGE_MAX_KEYS ? v : RAFTKV_RANGE_MAX_KEYS;
    return true;
}

/* One name=value of a query into p. Returns NULL or what is wrong with it. */
static const char *parse_param(struct params *p, uint8_t *name, size_t name_len, uint8_t *value,
                               size_t value_len, bool has_value)
{
    bool *seen = NULL;
    if (name_len == 3 && !memcmp(name, "raw", 3))
        seen = &p->raw;
    else if (name_len == 6 && !memcmp(name, "prefix", 6))
        seen = &p->has_prefix;
    else if (name_len == 5 && !memcmp(name, "start", 5))
        seen = &p->has_start;
    else if (name_len == 5 && !memcmp(name, "limit", 5))
        seen = &p->has_limit;
    else
        return "unknown query parameter";
    if (*seen)
        return "a query parameter given twice";
    *seen = true;
    if (seen == &p->raw)
        return !has_value || (value_len == 4 && !memcmp(value, "true", 4))
                   ? NULL
                   : "raw takes no value (or true)";
    if (seen == &p->has_limit)
        return parse_limit(value, value_len, &p->limit) ? NULL : "limit: expected a whole number";
    if (seen == &p->has_prefix) {
        p->prefix = value;
        p->prefix_len = value_len;
    } else {
        p->start = value;
        p->start_len = value_len;
    }
    return NULL;
}

/* Parses query into p, decoding into out (room for strlen(query) bytes). Returns NULL or
 * what is wrong with it. */
static const char *parse_query(const char *query, uint8_t *out, struct params *p)
{
    memset(p, 0, sizeof *p);
    size_t used = 0;
    for (const char *s = query; *s;) {
        size_t len = strcspn(s, "&");
        size_t name_end = strcspn(s, "=&");
        bool has_value = name_end < len;
        uint8_t *name = out + used, *value;
        size_t name_len, value_len = 0;
        if (!percent_decode(s, name_end, true, name, &name_len))
            return "a malformed %-escape in the query";
        value = name + name_len;
        if (has_value &&
            !percent_decode(s + name_end + 1, len - name_end - 1, true, value, &value_len))
            return "a malformed %-escape in the query";
        used += name_len + value_len;
        if (name_len) {
            const char *why = parse_param(p, name, name_len, value, value_len, has_value);
            if (why)
                return why;
        }
        s += len + (s[len] == '&');
    }
    return NULL;
}

/* ---- /v1/kv/KEY and /v1/kv, parsed ---- */

static const struct gateway_refusal accepted = {0};

static struct gateway_refusal invalid(const char *why)
{
    return (struct gateway_refusal){400, "INVALID", why};
}

static bool method_is(const struct rk_http_in *in, const char *m)
{
    return strcmp(in->method, m) == 0;
}

/* Decodes the key and the query of a key's request into r, in room; NULL or what is wrong. */
static const char *parse_key_request(struct gateway_request *r, const char *key,
                                     const struct rk_http_in *in, uint8_t *room)
{
    struct params p;
    const char *why;
    size_t key_len;
    if (!percent_decode(key, strlen(key), false, room, &key_len))
        return "a malformed %-escape in the key";
    if (key_len == 0)
        return "an empty key";
    r->key = room;
    r->key_len = key_len;
    if ((why = parse_query(in->query, room + key_len, &p)) != NULL)
        return why;
    if (p.has_prefix || p.has_start || p.has_limit)
        return "prefix, start and limit are for GET /v1/kv";
    if (p.raw && r->op != GATEWAY_GET)
        return "raw is for GET";
    r->raw = p.raw;
    return NULL;
}

static struct gateway_refusal parse_key(const struct rk_http_in *in, const char *key,
                                        size_t max_value_bytes, uint8_t *room,
                                        struct gateway_request *r)
{
    if (method_is(in, "GET") || method_is(in, "HEAD"))
        r->op = GATEWAY_GET;
    else if (method_is(in, "PUT"))
        r->op = GATEWAY_PUT;
    else if (method_is(in, "DELETE"))
        r->op = GATEWAY_DELETE;
    else
        return (struct gateway_refusal){405, "METHOD_NOT_ALLOWED",
                                        "method not allowed here: GET, PUT, DELETE"};
    if (r->op == GATEWAY_PUT && in->body_len > max_value_bytes)
        return (struct gateway_refusal){413, "INVALID", "the value is larger than max_value_bytes"};
    const char *why = parse_key_request(r, key, in, room);
    if (why)
        return invalid(why);
    if (r->op == GATEWAY_PUT) {
        r->value = in->body;
        r->value_len = in->body_len;
    }
    return accepted;
}

/* Decodes the query of a listing into r, in room: the range of the keys with the prefix,
 * from start; NULL or what is wrong. */
static const char *parse_list_request(struct gateway_request *r, const struct rk_http_in *in,
                                      uint8_t *room)
{
    struct params p;
    const char *why = parse_query(in->query, room, &p);
    if (why)
        return why;
    if (p.raw)
        return "raw is for GET /v1/kv/KEY";
    /* Without a prefix p.prefix is NULL, which memcmp must not be given even for 0 bytes. */
    if (p.has_start && p.prefix_len &&
        (p.start_len < p.prefix_len || memcmp(p.start, p.prefix, p.prefix_len)))
        return "start must begin with prefix";
    /* The end goes after the decoded query, which is at most as long as the query. */
    uint8_t *end = room + strlen(in->query);
    r->op = GATEWAY_LIST;
    r->prefix = p.prefix;
    r->prefix_len = p.prefix_len;
    r->has_start = p.has_start;
    r->start = p.has_start ? p.start : p.prefix;
    r->start_len = p.has_start ? p.start_len : p.prefix_len;
    r->end = end;
    r->end_len = raftkv_prefix_end(p.prefix, p.prefix_len, end);
    r->limit = p.limit;
    return NULL;
}

static struct gateway_refusal parse_list(const struct rk_http_in *in, uint8_t *room,
                                         struct gateway_request *r)
{
    if (!method_is(in, "GET") && !method_is(in, "HEAD"))
        return (struct gateway_refusal){405, "METHOD_NOT_ALLOWED", "method not allowed here: GET"};
    const char *why = parse_list_request(r, in, room);
    return why ? invalid(why) : accepted;
}

static const struct gateway_refusal not_found = {404, "NOT_FOUND", "no such resource"};

/* ---- the resources under /v1/ ---- */

struct resource {
    const char *name;
    /* rest: the path after /v1/<name>, "" or starting with '/' */
    struct gateway_refusal (*parse)(const struct rk_http_in *in, const char *rest,
                                    size_t max_value_bytes, uint8_t *room,
                                    struct gateway_request *r);
};

static struct gateway_refusal parse_kv(const struct rk_http_in *in, const char *rest,
                                       size_t max_value_bytes, uint8_t *room,
                                       struct gateway_request *r)
{
    if (rest[0] == '/')
        return parse_key(in, rest + 1, max_value_bytes, room, r);
    if (rest[0] == '\0')
        return parse_list(in, room, r);
    return not_found;
}

static const struct resource resources[] = {
    {"kv", parse_kv},
};

/* A key's request needs the key and the query decoded, a listing the query and its
 * prefix's end: neither is longer than encoded. */
size_t gateway__room(const struct rk_http_in *in)
{
    return strlen(in->path) + 2 * strlen(in->query) + 1;
}

bool gateway__parse(const struct rk_http_in *in, size_t max_value_bytes, uint8_t *room,
                    struct gateway_request *r, struct gateway_refusal *no)
{
    const char *name = in->path + (in->path[3] ? 4 : 3);
    size_t len = strcspn(name, "/");
    *r = (struct gateway_request){0};
    *no = not_found;
    for (size_t i = 0; i < sizeof resources / sizeof resources[0]; i++)
        if (strlen(resources[i].name) == len && !memcmp(resources[i].name, name, len))
            *no = resources[i].parse(in, name + len, max_value_bytes, room, r);
    return no->status == 0;
}

/* ---- calls, and their answers ---- */

/* {"key":..,"value":..,"create_revision":N,"mod_revision":N} */
static void json_kv(struct text *b, const uint8_t *key, size_t key_len, const uint8_t *value,
                    size_t value_len, uint64_t create_revision, uint64_t mod_revision)
{
    text_add(b, "{");
    json_field(b, "key", key, key_len);
    text_add(b, ",");
    json_field(b, "value", value, value_len);
    text_add(b, ",\"create_revision\":%" PRIu64 ",\"mod_revision\":%" PRIu64 "}", create_revision,
             mod_revision);
}

/* next, when more, is the least key after the last one (it with a 0 byte added), where the
 * next page starts. */
void gateway__json_list(struct text *b, const struct raftkv_range_result *res)
{
    text_add(b, "{\"revision\":%" PRIu64 ",\"kvs\":[", res->revision);
    for (size_t i = 0; i < res->count; i++) {
        const struct raftkv_kv *kv = &res->kvs[i];
        text_add(b, "%s", i ? "," : "");
        json_kv(b, kv->key, kv->key_len, kv->value, kv->value_len, kv->create_revision,
                kv->mod_revision);
    }
    text_add(b, "%s", res->more ? "],\"more\":true" : "],\"more\":false");
    const struct raftkv_kv *last = res->count ? &res->kvs[res->count - 1] : NULL;
    uint8_t *next = res->more && last ? malloc(last->key_len + 1) : NULL;
    if (next) {
        memcpy(next, last->key, last->key_len);
        next[last->key_len] = 0;
        text_add(b, ",");
        json_field(b, "next", next, last->key_len + 1);
        free(next);
    } else if (res->more && last) {
        b->oom = true;
    }
    text_add(b, "}\n");
}

/* A call in flight: the request it answers, parsed, with its bytes. */
struct call {
    struct rk_http_request *req;
    struct gateway_request r;
    uint8_t room[];
};

static void on_key_done(int status, const struct raftkv_result *res, void *arg)
{
    struct call *c = arg;
    struct text b = {0};
    if (status != RAFTKV_OK) {
        reply_status(c->req, status, res ? res->error : NULL, c->r.op != GATEWAY_GET);
    } else if (c->r.op == GATEWAY_GET && c->r.raw) {
        rk_http_reply(c->req, 200, "application/octet-stream", res->value, res->value_len);
    } else if (c->r.op == GATEWAY_GET) {
        json_kv(&b, c->r.key, c->r.key_len, res->value, res->value_len, res->create_revision,
                res->mod_revision);
        text_add(&b, "\n");
        reply(c->req, 200, JSON, &b);
    } else {
        text_add(&b, "{\"revision\":%" PRIu64 "}\n", res->revision);
        reply(c->req, 200, JSON, &b);
    }
    free(c);
}

static void on_list_done(int status, const struct raftkv_range_result *res, void *arg)
{
    struct call *c = arg;
    struct text b = {0};
    if (status != RAFTKV_OK) {
        reply_status(c->req, status, res ? res->error : NULL, false);
    } else {
        gateway__json_list(&b, res);
        reply(c->req, 200, JSON, &b);
    }
    free(c);
}

static int start_key_call(struct rk_gateway *g, struct call *c)
{
    const struct gateway_request *r = &c->r;
    switch (r->op) {
    case GATEWAY_GET:
        return raftkv_get_async(g->client, r->key, r->key_len, on_key_done, c);
    case GATEWAY_PUT:
        return raftkv_put_async(g->client, r->key, r->key_len, r->value, r->value_len, on_key_done,
                                c);
    case GATEWAY_DELETE:
        return raftkv_delete_async(g->client, r->key, r->key_len, on_key_done, c);
    case GATEWAY_LIST:
        return raftkv_range_async(g->client, r->start, r->start_len, r->end, r->end_len, r->limit,
                                  on_list_done, c);
    }
    return RAFTKV_EINTERNAL;
}

/* Starts the call c unless the gateway closes; answers at once when it cannot start. */
static void start_call(struct rk_gateway *g, struct call *c)
{
    nng_mtx_lock(g->mu);
    int rc = g->closing ? -1 : start_key_call(g, c);
    nng_mtx_unlock(g->mu);
    if (rc < 0)
        reply_error(c->req, 503, "UNAVAILABLE", "the node is stopping");
    else if (rc != RAFTKV_OK)
        reply_status(c->req, rc, NULL, false);
    if (rc != RAFTKV_OK)
        free(c);
}

/* ---- the gateway ---- */

bool rk_gateway_owns(const char *path)
{
    return strncmp(path, "/v1", 3) == 0 && (path[3] == '\0' || path[3] == '/');
}

void rk_gateway_serve(struct rk_gateway *g, struct rk_http_request *req,
                      const struct rk_http_in *in)
{
    struct call *c = malloc(sizeof *c + gateway__room(in));
    struct gateway_refusal no;
    if (!c) {
        reply_error(req, 503, "ENOMEM", "out of memory");
    } else if (!gateway__parse(in, g->max_value_bytes, c->room, &c->r, &no)) {
        free(c);
        if (no.status == 404)
            reply_not_found(req);
        else
            reply_error(req, no.status, no.code, no.why);
    } else {
        c->req = req;
        start_call(g, c);
    }
}

int rk_gateway_open(const struct rk_gateway_options *opts, struct rk_gateway **out)
{
    *out = NULL;
    struct rk_gateway *g = calloc(1, sizeof *g);
    if (!g)
        return RAFTKV_ENOMEM;
    g->max_value_bytes = opts->max_value_bytes;
    struct raftkv_client_options copts;
    raftkv_client_options_defaults(&copts);
    copts.n_endpoints = opts->n_endpoints;
    copts.endpoints = opts->endpoints;
    copts.tls_ca_file = opts->tls_ca_file;
    copts.tls_cert_file = opts->tls_cert_file;
    copts.tls_key_file = opts->tls_key_file;
    int rc = nng_mtx_alloc(&g->mu) == 0 ? RAFTKV_OK : RAFTKV_ENOMEM;
    if (rc == RAFTKV_OK)
        rc = raftkv_client_open(&copts, &g->client);
    if (rc != RAFTKV_OK) {
        if (g->mu)
            nng_mtx_free(g->mu);
        free(g);
        return rc;
    }
    *out = g;
    return RAFTKV_OK;
}

void rk_gateway_close(struct rk_gateway *g)
{
    if (!g)
        return;
    nng_mtx_lock(g->mu);
    g->closing = true;
    nng_mtx_unlock(g->mu);
    /* Ends every call in flight: its callback answers it. */
    raftkv_client_close(g->client);
    nng_mtx_free(g->mu);
    free(g);
}
