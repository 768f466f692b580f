#include "cli/cli_options.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls/tls.h"

int rk_cli_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry '%s --help'.\n", prog);
    va_end(ap);
    return RK_CLI_EXIT_USAGE;
}

int rk_cli_option_refused(const char *prog, char *const *argv, const struct option *longopts)
{
    /* optopt is 0 for a long option getopt_long does not know (or cannot tell from an
     * abbreviation), which it has stepped over. */
    if (optopt == 0)
        return rk_cli_usage_error(prog, "unknown option '%s'", argv[optind - 1]);
    if (optopt < RK_CLI_LONG_ONLY)
        return rk_cli_usage_error(prog, "unknown option '-%c'", optopt);
    const struct option *o = longopts;
    while (o->name && o->val != optopt)
        o++;
    return rk_cli_usage_error(prog, "--%s takes no value", o->name ? o->name : "?");
}

bool rk_cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || s[0] == '-')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool rk_cli_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
    uint64_t v;
    if (!rk_cli_parse_u64(s, min, max, &v))
        return false;
    *out = (unsigned)v;
    return true;
}

bool rk_cli_parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    if (!s || !*s)
        return false;
    double v = strtod(s, &end);
    if (*end || errno || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool rk_cli_parse_seconds(const char *s, double *out)
{
    char num[64];
    double scale = 1.0;
    size_t n = s ? strlen(s) : 0;
    if (!n || n >= sizeof num)
        return false;
    memcpy(num, s, n + 1);
    if (n > 2 && !strcmp(num + n - 2, "ms")) {
        scale = 1e-3;
        num[n - 2] = '\0';
    } else if (num[n - 1] == 's' || num[n - 1] == 'm') {
        scale = num[n - 1] == 'm' ? 60.0 : 1.0;
        num[n - 1] = '\0';
    }
    double v;
    if (!rk_cli_parse_double(num, &v) || v < 0)
        return false;
    *out = v * scale;
    return true;
}

int rk_cli_endpoints_split(struct rk_cli_endpoints *e, const char *list)
{
    memset(e, 0, sizeof *e);
    if (!list) {
        const char *env = getenv("RAFTKV_ENDPOINTS");
        list = env && *env ? env : RK_CLI_DEFAULT_ENDPOINTS;
    }
    size_t max = 1;
    for (const char *p = list; *p; p++)
        max += *p == ',';
    e->list = strdup(list);
    e->urls = calloc(max, sizeof *e->urls);
    if (!e->list || !e->urls)
        return ENOMEM;
    char *save = NULL;
    for (char *t = strtok_r(e->list, ",", &save); t; t = strtok_r(NULL, ",", &save))
        e->urls[e->n++] = t;
    return e->n ? 0 : EINVAL;
}

void rk_cli_endpoints_free(struct rk_cli_endpoints *e)
{
    free(e->urls);
    free(e->list);
    memset(e, 0, sizeof *e);
}

/* HOST:PORT after the scheme: a name or IPv4 address, or an IPv6 one in brackets; a port
 * from 1 to 65535. */
static bool host_port_valid(const char *s)
{
    const char *colon;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close == s + 1 || close[1] != ':')
            return false;
        colon = close + 1;
    } else {
        colon = strchr(s, ':');
        if (!colon || colon == s || memchr(s, '/', (size_t)(colon - s)))
            return false;
    }
    unsigned port;
    return rk_cli_parse_uint(colon + 1, 1, 65535, &port);
}

bool rk_cli_address_valid(const char *url, bool *tls)
{
    static const char *const schemes[] = {"tcp://", "tcp4://", "tcp6://"};
    *tls = strncmp(url, "tls+", 4) == 0;
    const char *rest = url + (*tls ? 4 : 0);
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ')
            return false;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (strncmp(rest, schemes[i], strlen(schemes[i])) == 0)
            return host_port_valid(rest + strlen(schemes[i]));
    return false;
}

int rk_cli_endpoints_check(const char *prog, const struct rk_cli_endpoints *e, bool tls)
{
    for (size_t i = 0; i < e->n; i++) {
        const char *url = e->urls[i];
        bool is_tls;
        if (!rk_cli_address_valid(url, &is_tls))
            return rk_cli_usage_error(
                prog, "bad endpoint \"%s\": expected tcp://host:port or tls+tcp://host:port", url);
        if (is_tls && !tls)
            return rk_cli_usage_error(prog,
                                      "endpoint \"%s\" is TLS: give the cluster's CA with "
                                      "--tls-ca (or RAFTKV_TLS_CA)",
                                      url);
        if (!is_tls && tls)
            return rk_cli_usage_error(prog,
                                      "endpoint \"%s\" is not tls+tcp://: with a CA (--tls-ca "
                                      "or RAFTKV_TLS_CA) every endpoint must be",
                                      url);
        for (size_t j = 0; j < i; j++)
            if (strcmp(e->urls[j], url) == 0)
                return rk_cli_usage_error(prog, "endpoint \"%s\" is given twice", url);
    }
    return 0;
}

static const char *env_or(const char *set, const char *name)
{
    const char *env = getenv(name);
    return set ? set : env && *env ? env : NULL;
}

int rk_cli_tls_apply(const char *prog, struct rk_cli_tls *tls, struct raftkv_client_options *opts)
{
    tls->ca = env_or(tls->ca, "RAFTKV_TLS_CA");
    tls->cert = env_or(tls->cert, "RAFTKV_TLS_CERT");
    tls->key = env_or(tls->key, "RAFTKV_TLS_KEY");
    if (!tls->cert != !tls->key)
        return rk_cli_usage_error(prog, "--tls-cert and --tls-key go together");
    if (!tls->ca && tls->cert)
        return rk_cli_usage_error(prog, "--tls-cert and --tls-key need --tls-ca");
    if (!tls->ca)
        return 0;
    /* raftkv_client_open would only say "invalid argument": name the file here. */
    struct rk_tls_files files = {.ca_file = tls->ca, .cert_file = tls->cert, .key_file = tls->key};
    nng_tls_config *cfg;
    char err[512];
    if (rk_tls_config_new(&files, NNG_TLS_MODE_CLIENT, NNG_TLS_AUTH_MODE_REQUIRED, &cfg, err,
                          sizeof err) != 0)
        return rk_cli_usage_error(prog, "%s", err);
    nng_tls_config_free(cfg);
    opts->tls_ca_file = tls->ca;
    opts->tls_cert_file = tls->cert;
    opts->tls_key_file = tls->key;
    return 0;
}
