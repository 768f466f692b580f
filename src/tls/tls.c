#include "tls/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Far above any certificate chain; bounds what a wrong path (a log, a disk image) costs. */
#define MAX_PEM_BYTES (1u << 20)

/* Reads a whole PEM file as a string; NULL with errno set on failure. */
static char *read_pem(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = malloc(MAX_PEM_BYTES + 1);
    size_t len = buf ? fread(buf, 1, MAX_PEM_BYTES + 1, f) : 0;
    int failed = !buf ? ENOMEM : ferror(f) ? EIO : len > MAX_PEM_BYTES ? EFBIG : 0;
    fclose(f);
    if (failed) {
        free(buf);
        errno = failed;
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* Reads path and checks that it holds a PEM block whose type ends with `kind`, so that a
 * swapped or wrong file is named before NNG's less specific error. */
static char *load_pem(const char *what, const char *path, const char *kind, char *err,
                      size_t err_len)
{
    char *pem = read_pem(path);
    if (!pem) {
        snprintf(err, err_len, "%s %s: cannot read: %s", what, path, strerror(errno));
        return NULL;
    }
    char marker[64];
    snprintf(marker, sizeof marker, "%s-----", kind);
    if (!strstr(pem, "-----BEGIN ") || !strstr(pem, marker)) {
        snprintf(err, err_len, "%s %s: no PEM %s in it", what, path, kind);
        free(pem);
        return NULL;
    }
    return pem;
}

static int config_ca(nng_tls_config *cfg, const char *path, char *err, size_t err_len)
{
    char *pem = load_pem("CA file", path, "CERTIFICATE", err, err_len);
    if (!pem)
        return NNG_EINVAL;
    int rv = nng_tls_config_ca_chain(cfg, pem, NULL);
    free(pem);
    if (rv != 0)
        snprintf(err, err_len, "CA file %s: not a valid certificate: %s", path, nng_strerror(rv));
    return rv;
}

static int config_own(nng_tls_config *cfg, const struct rk_tls_files *f, char *err, size_t err_len)
{
    char *cert = load_pem("certificate file", f->cert_file, "CERTIFICATE", err, err_len);
    char *key = cert ? load_pem("key file", f->key_file, "PRIVATE KEY", err, err_len) : NULL;
    int rv = cert && key ? nng_tls_config_own_cert(cfg, cert, key, NULL) : NNG_EINVAL;
    if (cert && key && rv != 0)
        snprintf(err, err_len, "certificate file %s with key file %s: not a valid pair: %s",
                 f->cert_file, f->key_file, nng_strerror(rv));
    free(cert);
    free(key);
    return rv;
}

int rk_tls_config_new(const struct rk_tls_files *files, nng_tls_mode mode, nng_tls_auth_mode auth,
                      nng_tls_config **out, char *err, size_t err_len)
{
    *out = NULL;
    if (err_len > 0)
        err[0] = '\0';
    if (!files->ca_file || !files->cert_file != !files->key_file) {
        snprintf(err, err_len, "TLS needs a CA file, and a certificate file with its key file");
        return NNG_EINVAL;
    }
    nng_tls_config *cfg;
    int rv = nng_tls_config_alloc(&cfg, mode);
    if (rv != 0) {
        snprintf(err, err_len, "cannot set up TLS: %s", nng_strerror(rv));
        return rv;
    }
    rv = config_ca(cfg, files->ca_file, err, err_len);
    if (rv == 0 && files->cert_file)
        rv = config_own(cfg, files, err, err_len);
    if (rv == 0)
        rv = nng_tls_config_auth_mode(cfg, auth);
    if (rv == 0 && files->server_name)
        rv = nng_tls_config_server_name(cfg, files->server_name);
    if (rv != 0) {
        if (!err[0])
            snprintf(err, err_len, "cannot set up TLS: %s", nng_strerror(rv));
        nng_tls_config_free(cfg);
        return rv;
    }
    *out = cfg;
    return 0;
}

bool rk_tls_url(const char *url)
{
    return strncmp(url, "tls+", 4) == 0;
}

int rk_tls_dialer_create(nng_dialer *d, nng_socket s, const char *url, nng_tls_config *cfg)
{
    if (rk_tls_url(url) != (cfg != NULL))
        return NNG_EINVAL;
    int rv = nng_dialer_create(d, s, url);
    if (rv == 0 && cfg && (rv = nng_dialer_set_ptr(*d, NNG_OPT_TLS_CONFIG, cfg)) != 0)
        nng_dialer_close(*d);
    return rv;
}

int rk_tls_listener_create(nng_listener *l, nng_socket s, const char *url, nng_tls_config *cfg)
{
    if (rk_tls_url(url) != (cfg != NULL))
        return NNG_EINVAL;
    int rv = nng_listener_create(l, s, url);
    if (rv == 0 && cfg && (rv = nng_listener_set_ptr(*l, NNG_OPT_TLS_CONFIG, cfg)) != 0)
        nng_listener_close(*l);
    return rv;
}

/* The "auth" counter of the endpoint of this kind ("listener", "dialer") and id. Found by
 * its "id" counter: NNG 1.5.2's nng_stat_find_listener returns another listener's. */
static uint64_t auth_errors(nng_stat *all, const char *kind, int id)
{
    for (nng_stat *s = nng_stat_child(all); s; s = nng_stat_next(s)) {
        nng_stat *sid = strcmp(nng_stat_name(s), kind) == 0 ? nng_stat_find(s, "id") : NULL;
        if (sid && nng_stat_value(sid) == (uint64_t)id) {
            nng_stat *auth = nng_stat_find(s, "auth");
            return auth ? nng_stat_value(auth) : 0;
        }
    }
    return 0;
}

uint64_t rk_tls_listener_refusals(nng_stat *all, nng_listener l)
{
    return auth_errors(all, "listener", nng_listener_id(l));
}

uint64_t rk_tls_dialer_failures(nng_stat *all, nng_dialer d)
{
    return auth_errors(all, "dialer", nng_dialer_id(d));
}

bool rk_tls_refusals_loggable(uint64_t before, uint64_t after)
{
    for (uint64_t p = 1; p != 0 && p <= after; p <<= 1)
        if (p > before)
            return true;
    return false;
}
