/* HTTP server (http_server.h): one tree handler for every method, and the requests handed
 * out and not answered yet, so that stopping can answer them. */
#include "transport/http_server.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/util/platform.h>

/* A path and query: room for the longest key LMDB takes (511 bytes), percent-encoded, twice. */
#define MAX_URI_BYTES 4096

static const char stopping_body[] = "{\"error\":\"the node is stopping\"}\n";

struct rk_http_request {
    struct rk_http_server *server;
    nng_aio *aio; /* NNG's: finished by the answer */
    struct rk_http_request *prev, *next;
};

struct rk_http_server {
    nng_http_server *http;
    rk_http_on_request on_request;
    void *arg;
    nng_mtx *mu;                     /* guards the three below */
    struct rk_http_request *pending; /* handed out, not answered */
    bool stopping;
    unsigned busy; /* on_request calls running */
    nng_cv *idle;  /* woken when busy drops to 0 while stopping */
};

/* Sends the answer (closing the connection after it when close is set) and ends NNG's
 * operation. The request is no longer pending. */
static void answer(nng_aio *aio, uint16_t status, const char *content_type, const void *body,
                   size_t len, bool close)
{
    nng_http_res *res;
    if (nng_http_res_alloc(&res) != 0) {
        nng_aio_finish(aio, NNG_ENOMEM); /* NNG closes the connection */
        return;
    }
    if (nng_http_res_set_status(res, status) != 0 ||
        nng_http_res_set_header(res, "Content-Type", content_type) != 0 ||
        (close && nng_http_res_set_header(res, "Connection", "close") != 0) ||
        nng_http_res_copy_data(res, body, len) != 0) {
        nng_http_res_free(res);
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

static void unlink_request(struct rk_http_server *s, struct rk_http_request *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        s->pending = r->next;
    if (r->next)
        r->next->prev = r->prev;
}

static void answer_error(nng_aio *aio, uint16_t status, const char *body, bool close)
{
    answer(aio, status, "application/json", body, strlen(body), close);
}

/* Splits the request's URI into in's path and query, in buf; false if it does not fit. */
static bool split_uri(const char *uri, char buf[MAX_URI_BYTES], struct rk_http_in *in)
{
    size_t n = strcspn(uri, "#");
    if (n >= MAX_URI_BYTES)
        return false;
    memcpy(buf, uri, n);
    buf[n] = '\0';
    char *q = strchr(buf, '?');
    in->path = buf;
    in->query = "";
    if (q) {
        *q = '\0';
        in->query = q + 1;
    }
    return true;
}

static void on_http(nng_aio *aio)
{
    nng_http_req *hreq = nng_aio_get_input(aio, 0);
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    struct rk_http_server *s = nng_http_handler_get_data(h);
    char uri[MAX_URI_BYTES];
    struct rk_http_in in = {.method = nng_http_req_get_method(hreq)};
    if (!split_uri(nng_http_req_get_uri(hreq), uri, &in)) {
        answer_error(aio, 414, "{\"error\":\"URI too long\"}\n", false);
        return;
    }
    /* NNG reads a body by its Content-Length only: the chunks of another would be read as
     * the next request. */
    if (nng_http_req_get_header(hreq, "Transfer-Encoding")) {
        answer_error(aio, 411, "{\"error\":\"a body needs a Content-Length\"}\n", true);
        return;
    }
    void *body;
    nng_http_req_get_data(hreq, &body, &in.body_len);
    in.body = body;
    struct rk_http_request *r = calloc(1, sizeof *r);
    nng_mtx_lock(s->mu);
    if (r && !s->stopping) {
        *r = (struct rk_http_request){.server = s, .aio = aio, .next = s->pending};
        if (s->pending)
            s->pending->prev = r;
        s->pending = r;
    }
    bool handed = r && !s->stopping;
    s->busy += handed;
    nng_mtx_unlock(s->mu);
    if (!handed) {
        answer_error(aio, 503, r ? stopping_body : "{\"error\":\"out of memory\"}\n", false);
        free(r);
        return;
    }
    s->on_request(s->arg, r, &in);
    nng_mtx_lock(s->mu);
    if (--s->busy == 0 && s->stopping)
        nng_cv_wake(s->idle);
    nng_mtx_unlock(s->mu);
}

void rk_http_reply(struct rk_http_request *req, uint16_t status, const char *content_type,
                   const void *body, size_t len)
{
    struct rk_http_server *s = req->server;
    nng_mtx_lock(s->mu);
    unlink_request(s, req);
    nng_mtx_unlock(s->mu);
    answer(req->aio, status, content_type, body, len, false);
    free(req);
}

int rk_http_server_start(const char *url, size_t max_body, rk_http_on_request on_request, void *arg,
                         struct rk_http_server **out)
{
    *out = NULL;
    struct rk_http_server *s = calloc(1, sizeof *s);
    if (!s)
        return NNG_ENOMEM;
    s->on_request = on_request;
    s->arg = arg;
    nng_url *u = NULL;
    nng_http_handler *h = NULL;
    int rv = nng_mtx_alloc(&s->mu);
    if (rv == 0)
        rv = nng_cv_alloc(&s->idle, s->mu);
    if (rv == 0)
        rv = nng_url_parse(&u, url);
    if (rv == 0)
        rv = nng_http_server_hold(&s->http, u);
    if (rv == 0)
        rv = nng_http_handler_alloc(&h, "/", on_http);
    if (rv == 0 && (rv = nng_http_handler_set_tree(h)) == 0 &&
        (rv = nng_http_handler_set_method(h, NULL)) == 0 &&
        (rv = nng_http_handler_collect_body(h, true, max_body)) == 0 &&
        (rv = nng_http_handler_set_data(h, s, NULL)) == 0)
        rv = nng_http_server_add_handler(s->http, h);
    if (rv != 0 && h)
        nng_http_handler_free(h);
    if (rv == 0)
        rv = nng_http_server_start(s->http);
    nng_url_free(u);
    if (rv != 0) {
        if (s->http)
            nng_http_server_release(s->http);
        if (s->idle)
            nng_cv_free(s->idle);
        if (s->mu)
            nng_mtx_free(s->mu);
        free(s);
        return rv;
    }
    *out = s;
    return 0;
}

void rk_http_server_quiesce(struct rk_http_server *s)
{
    if (!s)
        return;
    nng_mtx_lock(s->mu);
    s->stopping = true;
    while (s->busy)
        nng_cv_wait(s->idle);
    nng_mtx_unlock(s->mu);
}

void rk_http_server_stop(struct rk_http_server *s)
{
    if (!s)
        return;
    rk_http_server_quiesce(s);
    nng_mtx_lock(s->mu);
    struct rk_http_request *r = s->pending;
    s->pending = NULL;
    nng_mtx_unlock(s->mu);
    while (r) {
        struct rk_http_request *next = r->next;
        answer_error(r->aio, 503, stopping_body, false);
        free(r);
        r = next;
    }
    nng_http_server_stop(s->http);
    nng_http_server_release(s->http);
    nng_cv_free(s->idle);
    nng_mtx_free(s->mu);
    free(s);
}
