/*
 * A small HTTP/1.1 server on NNG's own (supplemental/http): requests of any method for any
 * path, with their body (Content-Length only, at most max_body bytes: NNG answers 400 to a
 * larger one, and this server 411 to a chunked one), are handed to on_request, on an NNG
 * thread, with a handle the owner answers later, from any thread, with rk_http_reply.
 * Stopping answers what is still unanswered with 503 and refuses what comes meanwhile, so
 * NNG never waits on an answer that will not come.
 */
#ifndef RAFTKV_TRANSPORT_HTTP_SERVER_H
#define RAFTKV_TRANSPORT_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct rk_http_server;
struct rk_http_request; /* one request awaiting its answer */

/* A request as received, valid only during on_request: nothing is percent-decoded. */
struct rk_http_in {
    const char *method;
    const char *path;  /* without the query */
    const char *query; /* after the '?' and before any '#'; "" when none */
    const uint8_t *body;
    size_t body_len;
};

typedef void (*rk_http_on_request)(void *arg, struct rk_http_request *req,
                                   const struct rk_http_in *in);

/* url: http://host:port. Returns 0 or an NNG error code. */
int rk_http_server_start(const char *url, size_t max_body, rk_http_on_request on_request, void *arg,
                         struct rk_http_server **out);
/* Answers req (once) with status and body (copied); req is gone afterwards. */
void rk_http_reply(struct rk_http_request *req, uint16_t status, const char *content_type,
                   const void *body, size_t len);
/* Refuses new requests (503) and waits until every on_request call has returned: whatever
 * on_request uses may then go, once the answers it still owes have come (rk_http_reply works
 * until stop). NULL: nothing. */
void rk_http_server_quiesce(struct rk_http_server *s);
/* Quiesces s, answers what is still unanswered (503), stops and frees it. NULL: nothing. */
void rk_http_server_stop(struct rk_http_server *s);

#endif
