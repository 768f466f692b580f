/*
 * A small HTTP/1.1 server on NNG's own (supplemental/http): GET requests for any path are
 * handed to on_request, on an NNG thread, with a handle the owner answers later, from any
 * thread, with rk_http_reply. Stopping answers what is still unanswered with 503 and
 * refuses what comes meanwhile, so NNG never waits on an answer that will not come.
 */
#ifndef RAFTKV_TRANSPORT_HTTP_SERVER_H
#define RAFTKV_TRANSPORT_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct rk_http_server;
struct rk_http_request; /* one request awaiting its answer */

/* path is the request's path without the query, valid only during the call. */
typedef void (*rk_http_on_request)(void *arg, struct rk_http_request *req, const char *path);

/* url: http://host:port. Returns 0 or an NNG error code. */
int rk_http_server_start(const char *url, rk_http_on_request on_request, void *arg,
                         struct rk_http_server **out);
/* Answers req (once) with status and body (copied); req is gone afterwards. */
void rk_http_reply(struct rk_http_request *req, uint16_t status, const char *content_type,
                   const char *body, size_t len);
void rk_http_server_stop(struct rk_http_server *s);

#endif
