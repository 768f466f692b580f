/* The change stream: a pub0 socket; each message is a topic prefix followed by a payload. */
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>

#include "log/log.h"
#include "transport/nng_opts.h"
#include "transport/transport.h"

#define SEND_BUFFER_MSGS 8192 /* NNG's maximum */

struct rk_publisher {
    nng_socket sock;
    nng_listener listener;
};

int rk_publisher_start(const char *listen_url, nng_tls_config *tls, struct rk_publisher **out)
{
    *out = NULL;
    struct rk_publisher *p = calloc(1, sizeof *p);
    if (!p)
        return RAFT_ENOMEM;
    int rv = nng_pub0_open(&p->sock);
    if (rv == 0) {
        /* Room per subscriber for the burst one large apply batch publishes. */
        rv = nng_socket_set_int(p->sock, NNG_OPT_SENDBUF, SEND_BUFFER_MSGS);
        if (rv == 0)
            rv = rk_tls_listener_create(&p->listener, p->sock, listen_url, tls);
        if (rv == 0)
            rv = nng_listener_start(p->listener, 0);
        if (rv != 0)
            nng_close(p->sock);
    }
    if (rv != 0) {
        rk_error("publisher: cannot listen on %s: %s", listen_url, nng_strerror(rv));
        free(p);
        return rk_nng_err(rv);
    }
    *out = p;
    return RAFT_OK;
}

void rk_publisher_send(struct rk_publisher *p, const char *topic, const uint8_t *payload,
                       size_t len)
{
    size_t topic_len = strlen(topic);
    nng_msg *msg;
    int rv = nng_msg_alloc(&msg, topic_len + len);
    if (rv == 0) {
        memcpy(nng_msg_body(msg), topic, topic_len);
        if (len > 0)
            memcpy((uint8_t *)nng_msg_body(msg) + topic_len, payload, len);
        /* pub0 never blocks: a subscriber that cannot keep up loses messages instead. */
        rv = nng_sendmsg(p->sock, msg, NNG_FLAG_NONBLOCK);
        if (rv != 0)
            nng_msg_free(msg);
    }
    if (rv != 0)
        rk_warn("publisher: %s event not published: %s", topic, nng_strerror(rv));
}

uint64_t rk_publisher_tls_refusals(struct rk_publisher *p, nng_stat *all)
{
    return rk_tls_listener_refusals(all, p->listener);
}

void rk_publisher_stop(struct rk_publisher *p)
{
    if (!p)
        return;
    nng_close(p->sock);
    free(p);
}
