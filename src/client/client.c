/* The public synchronous API: builds requests, runs them as calls (call.h), and turns the
 * answers into raftkv_result. */
#include "raftkv/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/call.h"

const char *raftkv_status_str(int status)
{
    switch (status) {
    case RAFTKV_OK:
        return "ok";
    case RAFTKV_NOT_FOUND:
        return "not found";
    case RAFTKV_CAS_MISMATCH:
        return "compare-and-swap mismatch";
    case RAFTKV_INVALID:
        return "invalid request";
    case RAFTKV_UNAVAILABLE:
        return "cluster unavailable";
    case RAFTKV_EUSAGE:
        return "invalid argument";
    case RAFTKV_ENOMEM:
        return "out of memory";
    case RAFTKV_EINTERNAL:
        return "internal error";
    default:
        return "unknown status";
    }
}

void raftkv_client_options_defaults(struct raftkv_client_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->attempts = 20;
    opts->retry_delay_ms = 20;
    opts->timeout_ms = 5000;
    opts->request_timeout_ms = 1000;
}

static void options_fill_defaults(struct raftkv_client_options *o)
{
    struct raftkv_client_options d;
    raftkv_client_options_defaults(&d);
    o->attempts = o->attempts ? o->attempts : d.attempts;
    o->retry_delay_ms = o->retry_delay_ms ? o->retry_delay_ms : d.retry_delay_ms;
    o->timeout_ms = o->timeout_ms ? o->timeout_ms : d.timeout_ms;
    o->request_timeout_ms = o->request_timeout_ms ? o->request_timeout_ms : d.request_timeout_ms;
}

int raftkv_client_open(const struct raftkv_client_options *opts, struct raftkv_client **out)
{
    if (!opts || !out || !opts->n_endpoints || !opts->endpoints)
        return RAFTKV_EUSAGE;
    struct raftkv_client *c = calloc(1, sizeof *c);
    if (!c)
        return RAFTKV_ENOMEM;
    c->opts = *opts;
    c->opts.endpoints = NULL; /* the caller's strings are copied into eps */
    options_fill_defaults(&c->opts);
    c->leader = RK_ANY_ENDPOINT;
    c->client_id = ((uint64_t)nng_random() << 32) | nng_random();
    c->client_id += c->client_id == 0; /* 0 reads as "no client" on the wire */
    int rv = nng_mtx_alloc(&c->mu) ? RAFTKV_ENOMEM : RAFTKV_OK;
    for (size_t i = 0; rv == RAFTKV_OK && i < opts->n_endpoints; i++) {
        size_t index;
        rv = rk_endpoints_add(c, opts->endpoints[i], &index);
        if (rv == RAFTKV_OK && index != i)
            rv = RAFTKV_EUSAGE; /* a duplicate would make endpoint positions ambiguous */
    }
    if (rv != RAFTKV_OK) {
        raftkv_client_close(c);
        return rv;
    }
    c->n_configured = opts->n_endpoints;
    *out = c;
    return RAFTKV_OK;
}

void raftkv_client_close(struct raftkv_client *c)
{
    if (!c)
        return;
    rk_endpoints_close(c);
    if (c->mu)
        nng_mtx_free(c->mu);
    free(c);
}

void raftkv_result_free(struct raftkv_result *res)
{
    if (!res)
        return;
    free(res->value);
    res->value = NULL;
    res->value_len = 0;
}

/* Stamps the request with this client's identity and the next sequence number (retries of
 * one operation keep theirs, so a node can recognise a duplicate), packs it and runs it. */
static int client_call(struct raftkv_client *c, Raftkv__Kv__ClientRequest *req, size_t endpoint,
                       struct rk_call **out)
{
    *out = NULL;
    nng_mtx_lock(c->mu);
    req->sequence = ++c->sequence;
    nng_mtx_unlock(c->mu);
    req->client_id = c->client_id;
    size_t len = raftkv__kv__client_request__get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return RAFTKV_ENOMEM;
    raftkv__kv__client_request__pack(req, buf);
    return rk_call_run(c, buf, len, endpoint, out);
}

static int result_fill(const struct rk_call_result *r, struct raftkv_result *res)
{
    snprintf(res->error, sizeof res->error, "%s", r->error);
    const Raftkv__Kv__ClientResponse *resp = r->resp;
    if (!resp)
        return r->status;
    res->create_revision = resp->create_revision;
    res->mod_revision = resp->mod_revision;
    res->revision = resp->revision;
    if (resp->value.len) {
        res->value = malloc(resp->value.len);
        if (!res->value)
            return RAFTKV_ENOMEM;
        memcpy(res->value, resp->value.data, resp->value.len);
        res->value_len = resp->value.len;
    }
    return r->status;
}

static int client_kv_op(struct raftkv_client *c, Raftkv__Kv__ClientRequest *req,
                        struct raftkv_result *res)
{
    struct raftkv_result discard = {0};
    if (!res)
        res = &discard;
    struct rk_call *call;
    int rv = client_call(c, req, RK_ANY_ENDPOINT, &call);
    if (rv == RAFTKV_OK)
        rv = result_fill(rk_call_result(call), res);
    rk_call_free(call);
    if (res == &discard)
        raftkv_result_free(res);
    return rv;
}

/* Checks the arguments every key operation shares and clears the result. */
static bool args_ok(struct raftkv_client *c, const void *key, size_t key_len,
                    struct raftkv_result *res)
{
    if (res)
        memset(res, 0, sizeof *res);
    if (!c || !key || !key_len) {
        if (res)
            snprintf(res->error, sizeof res->error, "the key must not be empty");
        return false;
    }
    return true;
}

static ProtobufCBinaryData bytes(const void *p, size_t len)
{
    return (ProtobufCBinaryData){.len = len, .data = (uint8_t *)p};
}

int raftkv_put(struct raftkv_client *c, const void *key, size_t key_len, const void *value,
               size_t value_len, struct raftkv_result *res)
{
    if (!args_ok(c, key, key_len, res) || (!value && value_len))
        return RAFTKV_EUSAGE;
    Raftkv__Kv__Put put = RAFTKV__KV__PUT__INIT;
    put.key = bytes(key, key_len);
    put.value = bytes(value, value_len);
    Raftkv__Kv__ClientRequest req = RAFTKV__KV__CLIENT_REQUEST__INIT;
    req.op_case = RAFTKV__KV__CLIENT_REQUEST__OP_PUT;
    req.put = &put;
    return client_kv_op(c, &req, res);
}

int raftkv_get(struct raftkv_client *c, const void *key, size_t key_len, struct raftkv_result *res)
{
    if (!args_ok(c, key, key_len, res))
        return RAFTKV_EUSAGE;
    Raftkv__Kv__Get get = RAFTKV__KV__GET__INIT;
    get.key = bytes(key, key_len);
    Raftkv__Kv__ClientRequest req = RAFTKV__KV__CLIENT_REQUEST__INIT;
    req.op_case = RAFTKV__KV__CLIENT_REQUEST__OP_GET;
    req.get = &get;
    return client_kv_op(c, &req, res);
}

int raftkv_delete(struct raftkv_client *c, const void *key, size_t key_len,
                  struct raftkv_result *res)
{
    if (!args_ok(c, key, key_len, res))
        return RAFTKV_EUSAGE;
    Raftkv__Kv__Delete del = RAFTKV__KV__DELETE__INIT;
    del.key = bytes(key, key_len);
    Raftkv__Kv__ClientRequest req = RAFTKV__KV__CLIENT_REQUEST__INIT;
    req.op_case = RAFTKV__KV__CLIENT_REQUEST__OP_DELETE;
    req.delete_ = &del;
    return client_kv_op(c, &req, res);
}

int raftkv_cas(struct raftkv_client *c, const void *key, size_t key_len, const void *expected,
               size_t expected_len, const void *new_value, size_t new_len,
               struct raftkv_result *res)
{
    if (!args_ok(c, key, key_len, res) || (!new_value && new_len) || (!expected && expected_len))
        return RAFTKV_EUSAGE;
    Raftkv__Kv__CompareAndSwap cas = RAFTKV__KV__COMPARE_AND_SWAP__INIT;
    cas.key = bytes(key, key_len);
    cas.expect_absent = expected == NULL;
    cas.expected = bytes(expected, expected_len);
    cas.new_value = bytes(new_value, new_len);
    Raftkv__Kv__ClientRequest req = RAFTKV__KV__CLIENT_REQUEST__INIT;
    req.op_case = RAFTKV__KV__CLIENT_REQUEST__OP_CAS;
    req.cas = &cas;
    return client_kv_op(c, &req, res);
}

int raftkv_status(struct raftkv_client *c, size_t endpoint, struct raftkv_node_status *out)
{
    if (!c || !out || endpoint >= c->n_configured)
        return RAFTKV_EUSAGE;
    memset(out, 0, sizeof *out);
    Raftkv__Kv__StatusRequest st = RAFTKV__KV__STATUS_REQUEST__INIT;
    Raftkv__Kv__ClientRequest req = RAFTKV__KV__CLIENT_REQUEST__INIT;
    req.op_case = RAFTKV__KV__CLIENT_REQUEST__OP_STATUS;
    req.status = &st;
    struct rk_call *call;
    int rv = client_call(c, &req, endpoint, &call);
    if (rv == RAFTKV_OK) {
        const struct rk_call_result *r = rk_call_result(call);
        const Raftkv__Kv__NodeStatus *s = r->resp ? r->resp->status : NULL;
        rv = r->status;
        if (rv == RAFTKV_OK && !s)
            rv = RAFTKV_EINTERNAL;
        if (rv == RAFTKV_OK) {
            out->id = s->id;
            snprintf(out->role, sizeof out->role, "%s", s->role ? s->role : "");
            out->term = s->term;
            out->leader_id = s->leader_id;
            out->commit_index = s->commit_index;
            out->applied_index = s->applied_index;
            out->last_log_index = s->last_log_index;
        }
    }
    rk_call_free(call);
    return rv;
}
