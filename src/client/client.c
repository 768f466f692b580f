/* The public API: builds requests, runs them as calls (call.h), and turns the answers into
 * raftkv_result; synchronously (waiting for the call) or asynchronously (a callback). */
#include "raftkv/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/call.h"
#include "kv.pb-c.h"

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
    case RAFTKV_SESSION_EXPIRED:
        return "session expired: the write may or may not have been applied";
    default:
        return "unknown status";
    }
}

void raftkv_client_options_defaults(struct raftkv_client_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->attempts = 100;
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

/* One config for every socket of the client: nodes must present a certificate from the CA. */
static int tls_open(struct raftkv_client *c, const struct raftkv_client_options *opts)
{
    if (!opts->tls_ca_file)
        return opts->tls_cert_file || opts->tls_key_file ? RAFTKV_EUSAGE : RAFTKV_OK;
    struct rk_tls_files files = {
        .ca_file = opts->tls_ca_file,
        .cert_file = opts->tls_cert_file,
        .key_file = opts->tls_key_file,
        .server_name = opts->tls_server_name,
    };
    char err[512];
    int rv = rk_tls_config_new(&files, NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &c->tls,
                               err, sizeof err);
    return rv == 0 ? RAFTKV_OK : rv == NNG_ENOMEM ? RAFTKV_ENOMEM : RAFTKV_EUSAGE;
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
    /* Nor are the TLS files kept: only the config built from them. */
    c->opts.tls_ca_file = c->opts.tls_cert_file = c->opts.tls_key_file = NULL;
    c->opts.tls_server_name = NULL;
    options_fill_defaults(&c->opts);
    c->leader = RK_ANY_ENDPOINT;
    atomic_init(&c->closing, false);
    if (rk_session_init(&c->session) != RAFTKV_OK || nng_mtx_alloc(&c->mu) ||
        nng_cv_alloc(&c->idle, c->mu)) {
        if (c->mu)
            nng_mtx_free(c->mu);
        rk_session_free(&c->session);
        free(c);
        return RAFTKV_ENOMEM;
    }
    int rv = tls_open(c, opts);
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
    rk_calls_end(c);
    rk_session_free(&c->session);
    rk_calls_pool_free(c);
    rk_endpoints_close(c);
    if (c->tls)
        nng_tls_config_free(c->tls);
    nng_cv_free(c->idle);
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

int rk_request_pack(const Raftkv__Client__Request *env, uint8_t **buf, size_t *len)
{
    *len = raftkv__client__request__get_packed_size(env);
    *buf = malloc(*len ? *len : 1);
    if (!*buf)
        return RAFTKV_ENOMEM;
    raftkv__client__request__pack(env, *buf);
    return RAFTKV_OK;
}

int rk_fsm_request_pack(const uint8_t *fsm, size_t fsm_len, uint8_t **buf, size_t *len)
{
    Raftkv__Client__Request env = RAFTKV__CLIENT__REQUEST__INIT;
    env.body_case = RAFTKV__CLIENT__REQUEST__BODY_FSM;
    env.fsm = (ProtobufCBinaryData){fsm_len, (uint8_t *)fsm};
    return rk_request_pack(&env, buf, len);
}

/* The packed KV request (malloc'd). */
static int kv_pack(const Raftkv__Kv__Request *req, uint8_t **kv, size_t *len)
{
    *len = raftkv__kv__request__get_packed_size(req);
    *kv = malloc(*len ? *len : 1);
    if (!*kv)
        return RAFTKV_ENOMEM;
    raftkv__kv__request__pack(req, *kv);
    return RAFTKV_OK;
}

/* A read, packed for the state machine inside the envelope. */
static int read_pack(const Raftkv__Kv__Request *req, uint8_t **buf, size_t *len)
{
    uint8_t *kv;
    size_t kv_len;
    int rv = kv_pack(req, &kv, &kv_len);
    if (rv == RAFTKV_OK)
        rv = rk_fsm_request_pack(kv, kv_len, buf, len);
    free(kv);
    return rv;
}

static bool is_write(const Raftkv__Kv__Request *req)
{
    return req->op_case != RAFTKV__KV__REQUEST__OP_GET &&
           req->op_case != RAFTKV__KV__REQUEST__OP_RANGE;
}

static int kv_status(Raftkv__Kv__Code code)
{
    switch (code) {
    case RAFTKV__KV__CODE__OK:
        return RAFTKV_OK;
    case RAFTKV__KV__CODE__NOT_FOUND:
        return RAFTKV_NOT_FOUND;
    case RAFTKV__KV__CODE__CAS_MISMATCH:
        return RAFTKV_CAS_MISMATCH;
    case RAFTKV__KV__CODE__INVALID:
        return RAFTKV_INVALID;
    case RAFTKV__KV__CODE__SESSION_EXPIRED:
        return RAFTKV_SESSION_EXPIRED;
    default: /* a code newer than us */
        return RAFTKV_EINTERNAL;
    }
}

/* A finished call's status: the node's failure, or the KV store's answer, decoded into
 * *answer (the caller frees it). error (256 bytes) gets the reason. */
static int answer_unpack(const struct rk_call_result *r, char *error, Raftkv__Kv__Response **answer)
{
    *answer = NULL;
    snprintf(error, 256, "%s", r->error);
    if (r->status != RAFTKV_OK)
        return r->status;
    const ProtobufCBinaryData *fsm = &r->resp->fsm;
    Raftkv__Kv__Response *a = raftkv__kv__response__unpack(NULL, fsm->len, fsm->data);
    if (!a) {
        snprintf(error, 256, "malformed answer: not a kv.proto Response");
        return RAFTKV_EINTERNAL;
    }
    snprintf(error, 256, "%s", a->error ? a->error : "");
    *answer = a;
    return kv_status(a->code);
}

/* Fills res from a finished call (answer_unpack; res->value points into *answer). */
static int result_view(const struct rk_call_result *r, struct raftkv_result *res,
                       Raftkv__Kv__Response **answer)
{
    memset(res, 0, sizeof *res);
    int status = answer_unpack(r, res->error, answer);
    const Raftkv__Kv__Response *a = *answer;
    if (!a)
        return status;
    res->create_revision = a->create_revision;
    res->mod_revision = a->mod_revision;
    res->revision = a->revision;
    if (a->value.len) {
        res->value = a->value.data;
        res->value_len = a->value.len;
    }
    return status;
}

/* The keys of a range's answer, copied into one allocation: kvs, then their bytes. */
static int range_copy(const Raftkv__Kv__Response *a, struct raftkv_range_result *out)
{
    size_t size = a->n_kvs * sizeof *out->kvs;
    for (size_t i = 0; i < a->n_kvs; i++)
        size += a->kvs[i]->key.len + a->kvs[i]->value.len;
    if (!a->n_kvs)
        return RAFTKV_OK;
    out->kvs = malloc(size);
    if (!out->kvs)
        return RAFTKV_ENOMEM;
    uint8_t *bytes = (uint8_t *)(out->kvs + a->n_kvs);
    for (size_t i = 0; i < a->n_kvs; i++) {
        const Raftkv__Kv__KeyValue *kv = a->kvs[i];
        struct raftkv_kv *e = &out->kvs[i];
        *e = (struct raftkv_kv){bytes,         kv->key.len,         NULL,
                                kv->value.len, kv->create_revision, kv->mod_revision};
        memcpy(bytes, kv->key.data, kv->key.len);
        bytes += kv->key.len;
        if (kv->value.len) /* an empty value stays NULL */
            e->value = memcpy(bytes, kv->value.data, kv->value.len);
        bytes += kv->value.len;
    }
    out->count = a->n_kvs;
    return RAFTKV_OK;
}

/* Fills out from a finished range call; out->kvs is the caller's to free. */
static int range_fill(const struct rk_call_result *r, struct raftkv_range_result *out)
{
    Raftkv__Kv__Response *a;
    memset(out, 0, sizeof *out);
    int status = answer_unpack(r, out->error, &a);
    if (status == RAFTKV_OK) {
        out->more = a->more;
        out->revision = a->revision;
        status = range_copy(a, out);
    }
    if (a)
        raftkv__kv__response__free_unpacked(a, NULL);
    return status;
}

/* Like result_view, with a value of the caller's own. */
static int result_fill(const struct rk_call_result *r, struct raftkv_result *res)
{
    Raftkv__Kv__Response *answer;
    int status = result_view(r, res, &answer);
    if (res->value) {
        uint8_t *v = malloc(res->value_len);
        if (v)
            memcpy(v, res->value, res->value_len);
        else
            status = RAFTKV_ENOMEM;
        res->value = v;
        res->value_len = v ? res->value_len : 0;
    }
    if (answer)
        raftkv__kv__response__free_unpacked(answer, NULL);
    return status;
}

struct write_wait {
    struct rk_wait wait;
    struct raftkv_result *res;
    int status;
};

static void write_waited(const struct rk_call_result *r, void *arg)
{
    struct write_wait *w = arg;
    w->status = result_fill(r, w->res);
    rk_wait_wake(&w->wait);
}

/* A write, run in the client's session, waited for. */
static int client_write(struct raftkv_client *c, const Raftkv__Kv__Request *req,
                        struct raftkv_result *res)
{
    struct write_wait w = {.res = res};
    uint8_t *kv;
    size_t len;
    int rv = rk_wait_init(&w.wait);
    if (rv != RAFTKV_OK)
        return rv;
    rv = kv_pack(req, &kv, &len);
    if (rv == RAFTKV_OK)
        rv = rk_write_start(c, kv, len, write_waited, &w);
    if (rv == RAFTKV_OK) {
        rk_wait_until_woken(&w.wait);
        rv = w.status;
    }
    rk_wait_fini(&w.wait);
    return rv;
}

/* A read (get, range), run to its end: *call is the caller's to free (NULL on failure). */
static int read_run(struct raftkv_client *c, const Raftkv__Kv__Request *req, struct rk_call **call)
{
    uint8_t *buf;
    size_t len;
    *call = NULL;
    int rv = read_pack(req, &buf, &len);
    return rv == RAFTKV_OK ? rk_call_run(c, buf, len, RK_ANY_ENDPOINT, call) : rv;
}

static int client_kv_op(struct raftkv_client *c, Raftkv__Kv__Request *req,
                        struct raftkv_result *res)
{
    struct raftkv_result discard = {0};
    if (!res)
        res = &discard;
    int rv;
    if (is_write(req)) {
        rv = client_write(c, req, res);
    } else {
        struct rk_call *call;
        rv = read_run(c, req, &call);
        if (rv == RAFTKV_OK)
            rv = result_fill(rk_call_result(call), res);
        rk_call_free(call);
    }
    if (res == &discard)
        raftkv_result_free(res);
    return rv;
}

/* An asynchronous operation's callback, and how it gets the call's result: a key
 * operation's (kv_answer) or a range's (range_answer). */
struct async_op {
    void (*answer)(const struct rk_call_result *r, const struct async_op *op);
    union {
        raftkv_callback kv;
        raftkv_range_callback range;
    } cb;
    void *arg;
};

static void kv_answer(const struct rk_call_result *r, const struct async_op *op)
{
    struct raftkv_result res;
    Raftkv__Kv__Response *answer;
    int status = result_view(r, &res, &answer);
    op->cb.kv(status, &res, op->arg);
    if (answer)
        raftkv__kv__response__free_unpacked(answer, NULL);
}

static void range_answer(const struct rk_call_result *r, const struct async_op *op)
{
    struct raftkv_range_result res;
    int status = range_fill(r, &res);
    op->cb.range(status, &res, op->arg);
    raftkv_range_result_free(&res);
}

static void async_answer(const struct rk_call_result *r, void *arg)
{
    struct async_op op = *(struct async_op *)arg;
    free(arg);
    op.answer(r, &op);
}

static void async_done(struct rk_call *call, void *arg)
{
    async_answer(rk_call_result(call), arg);
    rk_call_free(call);
}

static int client_op_async(struct raftkv_client *c, Raftkv__Kv__Request *req, struct async_op how)
{
    struct async_op *op = malloc(sizeof *op);
    uint8_t *buf;
    size_t len;
    if (!op)
        return RAFTKV_ENOMEM;
    *op = how;
    int rv;
    if (is_write(req)) {
        rv = kv_pack(req, &buf, &len);
        if (rv == RAFTKV_OK)
            rv = rk_write_start(c, buf, len, async_answer, op);
    } else {
        struct rk_call *call;
        rv = read_pack(req, &buf, &len);
        if (rv == RAFTKV_OK)
            rv = rk_call_start(c, buf, len, RK_ANY_ENDPOINT, async_done, op, &call);
    }
    if (rv != RAFTKV_OK)
        free(op);
    return rv;
}

static int client_kv_op_async(struct raftkv_client *c, Raftkv__Kv__Request *req, raftkv_callback cb,
                              void *arg)
{
    return client_op_async(c, req, (struct async_op){kv_answer, {.kv = cb}, arg});
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

/* A key operation's request, built once for the sync and the async call. */
struct kv_request {
    Raftkv__Kv__Request req;
    union {
        Raftkv__Kv__Put put;
        Raftkv__Kv__Get get;
        Raftkv__Kv__Range range;
        Raftkv__Kv__Delete del;
        Raftkv__Kv__CompareAndSwap cas;
    } op;
};

static bool request_put(struct kv_request *r, const void *key, size_t key_len, const void *value,
                        size_t value_len)
{
    if (!value && value_len)
        return false;
    r->req = (Raftkv__Kv__Request)RAFTKV__KV__REQUEST__INIT;
    r->op.put = (Raftkv__Kv__Put)RAFTKV__KV__PUT__INIT;
    r->op.put.key = bytes(key, key_len);
    r->op.put.value = bytes(value, value_len);
    r->req.op_case = RAFTKV__KV__REQUEST__OP_PUT;
    r->req.put = &r->op.put;
    return true;
}

static void request_get(struct kv_request *r, const void *key, size_t key_len)
{
    r->req = (Raftkv__Kv__Request)RAFTKV__KV__REQUEST__INIT;
    r->op.get = (Raftkv__Kv__Get)RAFTKV__KV__GET__INIT;
    r->op.get.key = bytes(key, key_len);
    r->req.op_case = RAFTKV__KV__REQUEST__OP_GET;
    r->req.get = &r->op.get;
}

static void request_delete(struct kv_request *r, const void *key, size_t key_len)
{
    r->req = (Raftkv__Kv__Request)RAFTKV__KV__REQUEST__INIT;
    r->op.del = (Raftkv__Kv__Delete)RAFTKV__KV__DELETE__INIT;
    r->op.del.key = bytes(key, key_len);
    r->req.op_case = RAFTKV__KV__REQUEST__OP_DELETE;
    r->req.delete_ = &r->op.del;
}

static bool request_cas(struct kv_request *r, const void *key, size_t key_len, const void *expected,
                        size_t expected_len, const void *new_value, size_t new_len)
{
    if ((!new_value && new_len) || (!expected && expected_len))
        return false;
    r->req = (Raftkv__Kv__Request)RAFTKV__KV__REQUEST__INIT;
    r->op.cas = (Raftkv__Kv__CompareAndSwap)RAFTKV__KV__COMPARE_AND_SWAP__INIT;
    r->op.cas.key = bytes(key, key_len);
    r->op.cas.expect_absent = expected == NULL;
    r->op.cas.expected = bytes(expected, expected_len);
    r->op.cas.new_value = bytes(new_value, new_len);
    r->req.op_case = RAFTKV__KV__REQUEST__OP_CAS;
    r->req.cas = &r->op.cas;
    return true;
}

/* NULL stands for no bytes only. */
static bool request_range(struct kv_request *r, const void *key, size_t key_len,
                          const void *range_end, size_t range_end_len, size_t limit)
{
    if ((!key && key_len) || (!range_end && range_end_len))
        return false;
    r->req = (Raftkv__Kv__Request)RAFTKV__KV__REQUEST__INIT;
    r->op.range = (Raftkv__Kv__Range)RAFTKV__KV__RANGE__INIT;
    r->op.range.key = bytes(key, key_len);
    r->op.range.range_end = bytes(range_end, range_end_len);
    r->op.range.limit = limit;
    r->req.op_case = RAFTKV__KV__REQUEST__OP_RANGE;
    r->req.range = &r->op.range;
    return true;
}

int raftkv_put(struct raftkv_client *c, const void *key, size_t key_len, const void *value,
               size_t value_len, struct raftkv_result *res)
{
    struct kv_request r;
    if (!args_ok(c, key, key_len, res) || !request_put(&r, key, key_len, value, value_len))
        return RAFTKV_EUSAGE;
    return client_kv_op(c, &r.req, res);
}

int raftkv_get(struct raftkv_client *c, const void *key, size_t key_len, struct raftkv_result *res)
{
    struct kv_request r;
    if (!args_ok(c, key, key_len, res))
        return RAFTKV_EUSAGE;
    request_get(&r, key, key_len);
    return client_kv_op(c, &r.req, res);
}

int raftkv_delete(struct raftkv_client *c, const void *key, size_t key_len,
                  struct raftkv_result *res)
{
    struct kv_request r;
    if (!args_ok(c, key, key_len, res))
        return RAFTKV_EUSAGE;
    request_delete(&r, key, key_len);
    return client_kv_op(c, &r.req, res);
}

int raftkv_cas(struct raftkv_client *c, const void *key, size_t key_len, const void *expected,
               size_t expected_len, const void *new_value, size_t new_len,
               struct raftkv_result *res)
{
    struct kv_request r;
    if (!args_ok(c, key, key_len, res) ||
        !request_cas(&r, key, key_len, expected, expected_len, new_value, new_len))
        return RAFTKV_EUSAGE;
    return client_kv_op(c, &r.req, res);
}

int raftkv_put_async(struct raftkv_client *c, const void *key, size_t key_len, const void *value,
                     size_t value_len, raftkv_callback cb, void *arg)
{
    struct kv_request r;
    if (!cb || !args_ok(c, key, key_len, NULL) || !request_put(&r, key, key_len, value, value_len))
        return RAFTKV_EUSAGE;
    return client_kv_op_async(c, &r.req, cb, arg);
}

int raftkv_get_async(struct raftkv_client *c, const void *key, size_t key_len, raftkv_callback cb,
                     void *arg)
{
    struct kv_request r;
    if (!cb || !args_ok(c, key, key_len, NULL))
        return RAFTKV_EUSAGE;
    request_get(&r, key, key_len);
    return client_kv_op_async(c, &r.req, cb, arg);
}

int raftkv_delete_async(struct raftkv_client *c, const void *key, size_t key_len,
                        raftkv_callback cb, void *arg)
{
    struct kv_request r;
    if (!cb || !args_ok(c, key, key_len, NULL))
        return RAFTKV_EUSAGE;
    request_delete(&r, key, key_len);
    return client_kv_op_async(c, &r.req, cb, arg);
}

int raftkv_cas_async(struct raftkv_client *c, const void *key, size_t key_len, const void *expected,
                     size_t expected_len, const void *new_value, size_t new_len, raftkv_callback cb,
                     void *arg)
{
    struct kv_request r;
    if (!cb || !args_ok(c, key, key_len, NULL) ||
        !request_cas(&r, key, key_len, expected, expected_len, new_value, new_len))
        return RAFTKV_EUSAGE;
    return client_kv_op_async(c, &r.req, cb, arg);
}

int raftkv_range(struct raftkv_client *c, const void *key, size_t key_len, const void *range_end,
                 size_t range_end_len, size_t limit, struct raftkv_range_result *out)
{
    struct kv_request r;
    if (out)
        memset(out, 0, sizeof *out);
    if (!c || !out || !request_range(&r, key, key_len, range_end, range_end_len, limit))
        return RAFTKV_EUSAGE;
    struct rk_call *call;
    int rv = read_run(c, &r.req, &call);
    if (rv == RAFTKV_OK)
        rv = range_fill(rk_call_result(call), out);
    rk_call_free(call);
    return rv;
}

int raftkv_range_async(struct raftkv_client *c, const void *key, size_t key_len,
                       const void *range_end, size_t range_end_len, size_t limit,
                       raftkv_range_callback cb, void *arg)
{
    struct kv_request r;
    if (!c || !cb || !request_range(&r, key, key_len, range_end, range_end_len, limit))
        return RAFTKV_EUSAGE;
    return client_op_async(c, &r.req, (struct async_op){range_answer, {.range = cb}, arg});
}

void raftkv_range_result_free(struct raftkv_range_result *r)
{
    if (!r)
        return;
    free(r->kvs);
    r->kvs = NULL;
    r->count = 0;
}

size_t raftkv_prefix_end(const void *prefix, size_t prefix_len, uint8_t *end)
{
    const uint8_t *p = prefix;
    size_t n = prefix_len;
    while (n > 0 && p[n - 1] == 0xff)
        n--;
    if (n == 0)
        return 0;
    memcpy(end, p, n - 1);
    end[n - 1] = (uint8_t)(p[n - 1] + 1);
    return n;
}

static void counters_fill(const Raftkv__Client__NodeStatus *s, struct raftkv_node_counters *out)
{
    const Raftkv__Client__RaftStats *r = s->raft;
    const Raftkv__Client__TransportStats *t = s->transport;
    if (r)
        *out = (struct raftkv_node_counters){
            .msgs_dropped_unknown_peer = r->msgs_dropped_unknown_peer,
            .msgs_dropped_stale_term = r->msgs_dropped_stale_term,
            .msgs_dropped_malformed = r->msgs_dropped_malformed,
            .elections_started = r->elections_started,
            .pre_votes_started = r->pre_votes_started,
            .leader_stepped_down_no_quorum = r->leader_stepped_down_no_quorum,
            .append_rejections = r->append_rejections,
            .snapshots_sent = r->snapshots_sent,
            .snapshots_installed = r->snapshots_installed,
            .snapshots_refused = r->snapshots_refused,
            .snapshots_damaged = r->snapshots_damaged,
            .configuration_changes = r->configuration_changes,
            .transfers_started = r->transfers_started,
            .transfers_abandoned = r->transfers_abandoned,
        };
    if (t) {
        out->peer_msgs_sent = t->sent;
        out->peer_msgs_send_dropped = t->send_dropped;
        out->peer_msgs_received = t->received;
        out->peer_msgs_malformed = t->recv_malformed;
        out->peer_msgs_unknown_peer = t->recv_unknown_peer;
        out->peer_msgs_oversized = t->recv_oversized;
        out->peer_redials = t->redials;
        out->peer_tls_refused = t->tls_refused;
        out->peer_tls_dials_failed = t->tls_dials_failed;
        out->client_tls_refused = t->client_tls_refused;
    }
    const Raftkv__Client__ServerStats *v = s->servers;
    if (v) {
        out->conns_refused = v->conns_refused;
        out->conns_closed_slow = v->conns_closed_slow;
        out->conns_closed_idle = v->conns_closed_idle;
        out->requests_over_limit = v->requests_over_limit;
    }
}

int raftkv_status(struct raftkv_client *c, size_t endpoint, struct raftkv_node_status *out)
{
    if (!c || !out || endpoint >= c->n_configured)
        return RAFTKV_EUSAGE;
    memset(out, 0, sizeof *out);
    Raftkv__Client__StatusRequest st = RAFTKV__CLIENT__STATUS_REQUEST__INIT;
    Raftkv__Client__Request req = RAFTKV__CLIENT__REQUEST__INIT;
    req.body_case = RAFTKV__CLIENT__REQUEST__BODY_STATUS;
    req.status = &st;
    uint8_t *buf;
    size_t len;
    struct rk_call *call = NULL;
    int rv = rk_request_pack(&req, &buf, &len);
    if (rv == RAFTKV_OK)
        rv = rk_call_run(c, buf, len, endpoint, &call);
    if (rv == RAFTKV_OK) {
        const struct rk_call_result *r = rk_call_result(call);
        const Raftkv__Client__NodeStatus *s = r->resp ? r->resp->status : NULL;
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
            counters_fill(s, &out->counters);
        }
    }
    rk_call_free(call);
    return rv;
}
