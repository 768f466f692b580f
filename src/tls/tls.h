/*
 * TLS for raftkv's NNG sockets (tls+tcp:// addresses): one way to build an nng_tls_config
 * from PEM files, shared by the node's sockets, the client library and the tools, and the
 * endpoints' failed handshakes as NNG 1.5.2 counts them.
 */
#ifndef RAFTKV_TLS_H
#define RAFTKV_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

struct rk_tls_files {
    const char *ca_file;   /* the CA whose certificates are trusted; required */
    const char *cert_file; /* our certificate; NULL for a client that presents none */
    const char *key_file;  /* its private key (unencrypted); set together with cert_file */
    /* Dialers only: the name the server's certificate must carry. NULL: any certificate
     * from the CA is accepted, whatever its name. */
    const char *server_name;
};

/* A config for dialers (NNG_TLS_MODE_CLIENT) or listeners (NNG_TLS_MODE_SERVER) that
 * verifies the other end against ca_file as auth says. Returns 0, or an NNG error with a
 * message naming the file at fault in err. */
int rk_tls_config_new(const struct rk_tls_files *files, nng_tls_mode mode, nng_tls_auth_mode auth,
                      nng_tls_config **out, char *err, size_t err_len);

/* Whether url uses NNG's TLS transport. */
bool rk_tls_url(const char *url);

/* Creates (does not start) a dialer or listener on url. A tls+tcp:// url needs cfg, and a
 * plain one must have none: NNG_EINVAL otherwise, so that no socket silently talks in
 * the clear or with NNG's default TLS settings. */
int rk_tls_dialer_create(nng_dialer *d, nng_socket s, const char *url, nng_tls_config *cfg);
int rk_tls_listener_create(nng_listener *l, nng_socket s, const char *url, nng_tls_config *cfg);

/*
 * Failed TLS handshakes on an endpoint, from a snapshot of NNG's statistics
 * (nng_stats_get). NNG 1.5.2 counts them as the endpoint's "auth" errors: on a listener, a
 * peer whose certificate did not verify, that sent none when one is required, or that does
 * not speak TLS at all; on a dialer, a server whose certificate did not verify or that
 * refused ours. It does not say who failed: a listener's remote address is lost with the
 * connection. 0 when the endpoint is not in the snapshot.
 */
uint64_t rk_tls_listener_refusals(nng_stat *all, nng_listener l);
uint64_t rk_tls_dialer_failures(nng_stat *all, nng_dialer d);

/* Whether a count of refusals that went from before to after reached its 1st, 2nd, 4th,
 * 8th...: when to log refusals nobody can be named for, so that a flood of them does not
 * flood the log as well. */
bool rk_tls_refusals_loggable(uint64_t before, uint64_t after);

#endif
