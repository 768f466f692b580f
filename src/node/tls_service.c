/* The node's TLS: configs built once from its files, shared by its sockets, and the failed
 * handshakes NNG counted on them (what NNG 1.5.2 lets us see: src/tls/tls.h). */
#include <inttypes.h>

#include "log/log.h"
#include "node/node_internal.h"
#include "tls/tls.h"
#include "transport/transport.h"

#define POLL_MS 1000

static nng_tls_auth_mode client_auth_mode(enum rk_tls_client_auth auth)
{
    switch (auth) {
    case RK_TLS_CLIENT_AUTH_OPTIONAL:
        return NNG_TLS_AUTH_MODE_OPTIONAL;
    case RK_TLS_CLIENT_AUTH_NONE:
        return NNG_TLS_AUTH_MODE_NONE;
    default:
        return NNG_TLS_AUTH_MODE_REQUIRED;
    }
}

static int config_new(struct rk_node *n, nng_tls_mode mode, nng_tls_auth_mode auth,
                      nng_tls_config **out)
{
    const struct rk_config *cfg = n->cfg;
    /* Peers are authenticated by their CA alone: any certificate it issued is a member's,
     * so no name is checked. */
    struct rk_tls_files files = {
        .ca_file = cfg->tls_ca_file,
        .cert_file = cfg->tls_cert_file,
        .key_file = cfg->tls_key_file,
    };
    char err[512];
    if (rk_tls_config_new(&files, mode, auth, out, err, sizeof err) != 0) {
        rk_error("TLS (tls_cert_file, tls_key_file, tls_ca_file): %s", err);
        return RK_NODE_ECONFIG;
    }
    return RK_NODE_OK;
}

int tls__start(struct rk_node *n)
{
    if (!n->cfg->tls_ca_file)
        return RK_NODE_OK;
    int rc = config_new(n, NNG_TLS_MODE_SERVER, NNG_TLS_AUTH_MODE_REQUIRED, &n->tls_peer_listen);
    if (rc == RK_NODE_OK)
        rc = config_new(n, NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &n->tls_peer_dial);
    if (rc == RK_NODE_OK)
        rc = config_new(n, NNG_TLS_MODE_SERVER, client_auth_mode(n->cfg->tls_client_auth),
                        &n->tls_clients);
    n->tls_poll_at = node__now();
    node__add_ms(&n->tls_poll_at, POLL_MS);
    return rc;
}

void tls__poll(struct rk_node *n)
{
    struct timespec now = node__now();
    nng_stat *all;
    if (!n->tls_peer_listen || !node__reached(&now, &n->tls_poll_at) || nng_stats_get(&all) != 0)
        return;
    n->tls_poll_at = now;
    node__add_ms(&n->tls_poll_at, POLL_MS);
    rk_transport_tls_poll(n->transport, all);
    uint64_t total = rk_client_server_tls_refusals(n->clients, all) +
                     (n->pub ? rk_publisher_tls_refusals(n->pub, all) : 0);
    nng_stats_free(all);
    uint64_t before = n->client_tls_refused;
    n->client_tls_refused = total;
    if (total > before && rk_tls_refusals_loggable(before, total))
        rk_warn("%" PRIu64 " TLS handshake(s) refused on the client and pub ports so far: a "
                "client without a certificate from the CA, or not speaking TLS (NNG does not "
                "say from where)",
                total);
}

void tls__free(struct rk_node *n)
{
    nng_tls_config *configs[] = {n->tls_peer_listen, n->tls_peer_dial, n->tls_clients};
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
        if (configs[i])
            nng_tls_config_free(configs[i]);
}
