#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/config.h"
#include "storage/db.h"

enum value_type {
    V_ID,     /* positive integer */
    V_U64,    /* positive integer, decimal or 0x hex */
    V_STR,    /* non-empty string */
    V_URL,    /* scheme://address */
    V_MS,     /* milliseconds: unsigned */
    V_COUNT,  /* positive integer: size_t */
    V_COUNT0, /* integer, 0 included: size_t */
    V_SIZE,   /* bytes with optional KiB/MiB/GiB suffix: size_t */
    V_SIZE64,
    V_LEVEL,
    V_FORMAT,
    V_CLIENT_AUTH,
    V_BOOL, /* true or false */
};

struct key_spec {
    const char *name;
    enum value_type type;
    size_t offset;
    bool required;
};

#define KEY(name, type, required)                                                                  \
    {                                                                                              \
#name, type, offsetof(struct rk_config, name), required                                    \
    }
static const struct key_spec keys[] = {
    KEY(node_id, V_ID, true),
    KEY(cluster_id, V_U64, true),
    KEY(data_dir, V_STR, true),
    KEY(join, V_BOOL, false),
    KEY(listen_peer, V_URL, false),
    KEY(listen_client, V_URL, false),
    KEY(listen_pub, V_URL, false),
    KEY(pub_address, V_URL, false),
    KEY(http_address, V_URL, false),
    KEY(http_gateway, V_BOOL, false),
    KEY(tls_cert_file, V_STR, false),
    KEY(tls_key_file, V_STR, false),
    KEY(tls_ca_file, V_STR, false),
    KEY(tls_client_auth, V_CLIENT_AUTH, false),
    KEY(election_timeout_min_ms, V_MS, false),
    KEY(election_timeout_max_ms, V_MS, false),
    KEY(heartbeat_interval_ms, V_MS, false),
    KEY(max_append_entries, V_COUNT, false),
    KEY(max_append_bytes, V_SIZE, false),
    KEY(max_inflight, V_COUNT, false),
    KEY(max_key_bytes, V_SIZE, false),
    KEY(max_value_bytes, V_SIZE, false),
    KEY(max_db_bytes, V_SIZE64, false),
    KEY(kv_persist_entries, V_COUNT, false),
    KEY(kv_persist_bytes, V_SIZE, false),
    KEY(snapshot_entries, V_COUNT, false),
    KEY(snapshot_bytes, V_SIZE, false),
    KEY(snapshot_trailing_entries, V_COUNT0, false),
    KEY(snapshot_chunk_bytes, V_SIZE, false),
    KEY(snapshot_max_inflight_chunks, V_COUNT, false),
    KEY(promote_max_lag, V_COUNT0, false),
    KEY(log_level, V_LEVEL, false),
    KEY(log_format, V_FORMAT, false),
};
#define N_KEYS (sizeof keys / sizeof keys[0])

/* Where each member's keys were set, for duplicate and consistency messages. */
struct member_lines {
    int peer;
    int client;
};

struct parser {
    const char *path;
    int line;
    struct rk_config *cfg;
    int key_line[N_KEYS];
    struct member_lines *member_lines; /* parallel to cfg->members */
    char *err;
    size_t err_len;
};

static int fail_at(struct parser *p, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Formats "path:line: key: message" (line and key omitted when 0 / NULL). */
static int fail_at(struct parser *p, int line, const char *key, const char *fmt, ...)
{
    int n = line > 0 ? snprintf(p->err, p->err_len, "%s:%d: ", p->path, line)
                     : snprintf(p->err, p->err_len, "%s: ", p->path);
    if (key && n >= 0 && (size_t)n < p->err_len)
        n += snprintf(p->err + n, p->err_len - (size_t)n, "%s: ", key);
    if (n >= 0 && (size_t)n < p->err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->err_len - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Each default is the one of the module the setting is for, so that it is written once. */
static void config_defaults(struct rk_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    struct raft_config raft;
    raft_config_defaults(&raft);
    cfg->election_timeout_min_ms = raft.election_ticks_min * RK_TICK_MS;
    cfg->election_timeout_max_ms = raft.election_ticks_max * RK_TICK_MS;
    cfg->heartbeat_interval_ms = raft.heartbeat_ticks * RK_TICK_MS;
    cfg->max_append_entries = raft.max_entries_per_msg;
    cfg->max_append_bytes = raft.max_bytes_per_msg;
    cfg->max_inflight = raft.max_inflight_msgs;
    cfg->snapshot_chunk_bytes = raft.snapshot_chunk_bytes;
    cfg->snapshot_max_inflight_chunks = raft.max_inflight_chunks;
    cfg->promote_max_lag = raft.promote_max_lag;
    cfg->max_db_bytes = RK_DB_DEFAULT_MAX_MAP_BYTES;
    cfg->snapshot_entries = RK_SNAPSHOT_DEFAULT_ENTRIES;
    cfg->snapshot_bytes = RK_SNAPSHOT_DEFAULT_BYTES;
    cfg->snapshot_trailing_entries = RK_SNAPSHOT_DEFAULT_TRAILING_ENTRIES;
    cfg->log_level = RK_LOG_INFO;
    cfg->log_format = RK_LOG_TEXT;
    cfg->tls_client_auth = RK_TLS_CLIENT_AUTH_REQUIRED;
}

/* Parses all of s as an unsigned integer (decimal, or hex with 0x when hex_ok); the digits
 * end at *end, which may hold a suffix. */
static int parse_uint(const char *s, bool hex_ok, uint64_t *out, const char **end)
{
    int base = 10;
    if (hex_ok && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (!isxdigit((unsigned char)s[0]) || (base == 10 && !isdigit((unsigned char)s[0])))
        return -1;
    errno = 0;
    char *e;
    unsigned long long v = strtoull(s, &e, base);
    if (errno == ERANGE)
        return -1;
    *out = v;
    *end = e;
    return 0;
}

static int parse_number(const char *s, bool hex_ok, uint64_t *out)
{
    const char *end;
    return parse_uint(s, hex_ok, out, &end) == 0 && *end == '\0' ? 0 : -1;
}

static int parse_ms(const char *s, uint64_t *out)
{
    const char *end;
    if (parse_uint(s, false, out, &end) != 0 || *out == 0 || *out > 3600 * 1000)
        return -1;
    return *end == '\0' || strcmp(end, "ms") == 0 ? 0 : -1;
}

static int parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        unsigned shift;
    } units[] = {{"", 0},   {"B", 0},    {"K", 10}, {"KiB", 10},
                 {"M", 20}, {"MiB", 20}, {"G", 30}, {"GiB", 30}};
    const char *end;
    uint64_t v;
    if (parse_uint(s, false, &v, &end) != 0 || v == 0)
        return -1;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (v > (UINT64_MAX >> units[i].shift))
                return -1;
            *out = v << units[i].shift;
            return 0;
        }
    }
    return -1;
}

static int parse_client_auth(const char *s, enum rk_tls_client_auth *out)
{
    static const char *const names[] = {"required", "optional", "none"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum rk_tls_client_auth)i;
            return 0;
        }
    }
    return -1;
}

static bool is_url(const char *s)
{
    const char *sep = strstr(s, "://");
    return sep && sep > s && sep[3] != '\0' && !strpbrk(s, " \t");
}

static const char *type_expectation(enum value_type type)
{
    switch (type) {
    case V_ID:
        return "expected a node id (a positive integer)";
    case V_U64:
    case V_COUNT:
        return "expected a positive integer";
    case V_COUNT0:
        return "expected a whole number (0 or more)";
    case V_STR:
        return "expected a value";
    case V_URL:
        return "expected an address such as tcp://127.0.0.1:7001";
    case V_MS:
        return "expected a number of milliseconds";
    case V_SIZE:
    case V_SIZE64:
        return "expected a size in bytes (e.g. 4096, 64KiB, 1MiB, 8GiB)";
    case V_LEVEL:
        return "expected one of error, warn, info, debug";
    case V_FORMAT:
        return "expected one of text, logfmt, json";
    case V_CLIENT_AUTH:
        return "expected one of required, optional, none";
    case V_BOOL:
        return "expected true or false";
    }
    return "bad value";
}

/* Stores value into the field of spec; returns -1 if the value does not parse. */
static int set_value(struct rk_config *cfg, const struct key_spec *spec, const char *value)
{
    char *field = (char *)cfg + spec->offset;
    uint64_t v = 0;
    int rc = 0;
    switch (spec->type) {
    case V_ID:
    case V_U64:
    case V_COUNT:
    case V_COUNT0:
        rc = parse_number(value, spec->type == V_U64, &v);
        if (rc == 0 && v == 0 && spec->type != V_COUNT0)
            rc = -1;
        if (rc == 0 && (spec->type == V_COUNT || spec->type == V_COUNT0) && v > SIZE_MAX)
            rc = -1;
        if (rc == 0 && (spec->type == V_COUNT || spec->type == V_COUNT0))
            *(size_t *)field = (size_t)v;
        else if (rc == 0)
            *(uint64_t *)field = v;
        return rc;
    case V_STR:
    case V_URL:
        if (spec->type == V_URL && !is_url(value))
            return -1;
        *(char **)field = strdup(value);
        return *(char **)field ? 0 : -1;
    case V_MS:
        rc = parse_ms(value, &v);
        if (rc == 0)
            *(unsigned *)field = (unsigned)v;
        return rc;
    case V_SIZE:
    case V_SIZE64:
        rc = parse_size(value, &v);
        if (rc == 0 && spec->type == V_SIZE && v > SIZE_MAX)
            rc = -1;
        if (rc == 0 && spec->type == V_SIZE)
            *(size_t *)field = (size_t)v;
        else if (rc == 0)
            *(uint64_t *)field = v;
        return rc;
    case V_LEVEL:
        return rk_log_level_parse(value, (enum rk_log_level *)field);
    case V_FORMAT:
        return rk_log_format_parse(value, (enum rk_log_format *)field);
    case V_CLIENT_AUTH:
        return parse_client_auth(value, (enum rk_tls_client_auth *)field);
    case V_BOOL:
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
            return -1;
        *(bool *)field = value[0] == 't';
        return 0;
    }
    return -1;
}

/* The member with this id, added if new; NULL on allocation failure. */
static struct rk_member *member_get(struct parser *p, raft_id id, struct member_lines **lines)
{
    struct rk_config *cfg = p->cfg;
    for (size_t i = 0; i < cfg->n_members; i++) {
        if (cfg->members[i].id == id) {
            *lines = &p->member_lines[i];
            return &cfg->members[i];
        }
    }
    size_t n = cfg->n_members + 1;
    struct rk_member *m = realloc(cfg->members, n * sizeof *m);
    if (!m)
        return NULL;
    cfg->members = m;
    struct member_lines *ml = realloc(p->member_lines, n * sizeof *ml);
    if (!ml)
        return NULL;
    p->member_lines = ml;
    cfg->n_members = n;
    m[n - 1] = (struct rk_member){.id = id};
    ml[n - 1] = (struct member_lines){0};
    *lines = &ml[n - 1];
    return &m[n - 1];
}

/* peer.<id> or client.<id>. Returns 1 if key is not of that form. */
static int set_member_key(struct parser *p, const char *key, const char *value)
{
    bool peer = strncmp(key, "peer.", 5) == 0;
    bool client = strncmp(key, "client.", 7) == 0;
    if (!peer && !client)
        return 1;
    uint64_t id;
    if (parse_number(key + (peer ? 5 : 7), false, &id) != 0 || id == 0)
        return fail_at(p, p->line, key,
                       "the part after the dot must be a node id (a positive "
                       "integer)");
    if (!is_url(value))
        return fail_at(p, p->line, key, "%s, got \"%s\"", type_expectation(V_URL), value);
    struct member_lines *lines;
    struct rk_member *m = member_get(p, id, &lines);
    if (!m)
        return fail_at(p, p->line, key, "out of memory");
    int *line = peer ? &lines->peer : &lines->client;
    if (*line)
        return fail_at(p, p->line, key, "duplicate key (first set on line %d)", *line);
    *line = p->line;
    char **url = peer ? &m->peer_url : &m->client_url;
    *url = strdup(value);
    return *url ? 0 : fail_at(p, p->line, key, "out of memory");
}

static int set_key(struct parser *p, const char *key, const char *value)
{
    int rc = set_member_key(p, key, value);
    if (rc <= 0)
        return rc;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(keys[i].name, key) != 0)
            continue;
        if (p->key_line[i])
            return fail_at(p, p->line, key, "duplicate key (first set on line %d)", p->key_line[i]);
        if (set_value(p->cfg, &keys[i], value) != 0)
            return fail_at(p, p->line, key, "%s, got \"%s\"", type_expectation(keys[i].type),
                           value);
        p->key_line[i] = p->line;
        return 0;
    }
    return fail_at(p, p->line, key, "unknown key");
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* Cuts a comment: '#' at the start of the line or after whitespace. */
static void strip_comment(char *s)
{
    for (char *c = s; (c = strchr(c, '#')); c++) {
        if (c == s || isspace((unsigned char)c[-1])) {
            *c = '\0';
            return;
        }
    }
}

static int parse_line(struct parser *p, char *line)
{
    strip_comment(line);
    char *s = trim(line);
    if (*s == '\0')
        return 0;
    char *eq = strchr(s, '=');
    if (!eq)
        return fail_at(p, p->line, NULL, "expected `key = value`, got \"%s\"", s);
    *eq = '\0';
    char *key = trim(s);
    char *value = trim(eq + 1);
    if (*key == '\0')
        return fail_at(p, p->line, NULL, "missing key before '='");
    if (*value == '\0')
        return fail_at(p, p->line, key, "missing value after '='");
    return set_key(p, key, value);
}

static int key_line(const struct parser *p, const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return p->key_line[i];
    return 0;
}

static int member_cmp(const void *a, const void *b)
{
    raft_id x = ((const struct rk_member *)a)->id, y = ((const struct rk_member *)b)->id;
    return x < y ? -1 : x > y;
}

static int dup_default(char **dst, const char *src)
{
    if (*dst || !src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

/* peer.<id> or client.<id> of member i, and the line that set it. */
static const char *member_address(const struct parser *p, size_t i, bool peer, char *key,
                                  size_t key_len, int *line)
{
    const struct rk_member *m = &p->cfg->members[i];
    snprintf(key, key_len, "%s.%llu", peer ? "peer" : "client", (unsigned long long)m->id);
    *line = peer ? p->member_lines[i].peer : p->member_lines[i].client;
    return peer ? m->peer_url : m->client_url;
}

/* Two members at one address would take each other's messages (or fail to bind). Runs while
 * members and member_lines are still parallel, before check_members sorts the members. */
static int check_addresses(struct parser *p)
{
    size_t n = 2 * p->cfg->n_members;
    for (size_t a = 0; a < n; a++) {
        for (size_t b = a + 1; b < n; b++) {
            char key_a[40], key_b[40];
            int line_a, line_b;
            const char *url_a = member_address(p, a / 2, a % 2, key_a, sizeof key_a, &line_a);
            const char *url_b = member_address(p, b / 2, b % 2, key_b, sizeof key_b, &line_b);
            if (!url_a || !url_b || strcmp(url_a, url_b) != 0)
                continue;
            bool a_first = line_a < line_b;
            return fail_at(p, a_first ? line_b : line_a, a_first ? key_b : key_a,
                           "the same address as %s (line %d): %s", a_first ? key_a : key_b,
                           a_first ? line_a : line_b, url_a);
        }
    }
    return 0;
}

static int check_members(struct parser *p)
{
    struct rk_config *cfg = p->cfg;
    for (size_t i = 0; i < cfg->n_members; i++) {
        if (!cfg->members[i].peer_url) {
            char key[40];
            snprintf(key, sizeof key, "client.%llu", (unsigned long long)cfg->members[i].id);
            return fail_at(p, p->member_lines[i].client, key,
                           "no peer.%llu: every member needs its peer.<id> line",
                           (unsigned long long)cfg->members[i].id);
        }
    }
    int rc = check_addresses(p);
    if (rc != 0)
        return rc;
    const struct rk_member *self = rk_config_member(cfg, cfg->node_id);
    if (!self)
        return fail_at(p, key_line(p, "node_id"), "node_id",
                       "no peer.%llu line: the members (peer.<id> lines) must include this node",
                       (unsigned long long)cfg->node_id);
    if (!cfg->listen_client && !self->client_url)
        return fail_at(p, 0, "listen_client",
                       "required: set client.%llu (this node's client address) or listen_client",
                       (unsigned long long)cfg->node_id);
    if (dup_default(&cfg->listen_peer, self->peer_url) ||
        dup_default(&cfg->listen_client, self->client_url) ||
        dup_default(&cfg->listen_pub, cfg->pub_address))
        return fail_at(p, 0, NULL, "out of memory");
    qsort(cfg->members, cfg->n_members, sizeof cfg->members[0], member_cmp);
    return 0;
}

static int check_timing(struct parser *p)
{
    const struct rk_config *cfg = p->cfg;
    unsigned min = rk_config_ticks(cfg->election_timeout_min_ms);
    unsigned max = rk_config_ticks(cfg->election_timeout_max_ms);
    unsigned hb = rk_config_ticks(cfg->heartbeat_interval_ms);
    if (min >= max)
        return fail_at(p, key_line(p, "election_timeout_min_ms"), "election_timeout_min_ms",
                       "must be less than election_timeout_max_ms (%u) by at least the %u ms tick",
                       cfg->election_timeout_max_ms, RK_TICK_MS);
    if (hb >= min)
        return fail_at(p, key_line(p, "heartbeat_interval_ms"), "heartbeat_interval_ms",
                       "must be less than election_timeout_min_ms (%u)",
                       cfg->election_timeout_min_ms);
    return 0;
}

/* Largest InstallSnapshot chunk: it travels in one message. */
#define MAX_SNAPSHOT_CHUNK_BYTES (64u << 20)

static int check_snapshots(struct parser *p)
{
    const struct rk_config *cfg = p->cfg;
    if (cfg->snapshot_trailing_entries > cfg->snapshot_entries)
        return fail_at(p, key_line(p, "snapshot_trailing_entries"), "snapshot_trailing_entries",
                       "must not be more than snapshot_entries (%zu)", cfg->snapshot_entries);
    if (cfg->snapshot_chunk_bytes > MAX_SNAPSHOT_CHUNK_BYTES)
        return fail_at(p, key_line(p, "snapshot_chunk_bytes"), "snapshot_chunk_bytes",
                       "must be at most 64MiB");
    return 0;
}

/* NNG carries at most 4GiB - 1 bytes in one message (its limit of NNG_OPT_RECVMAXSZ) and
 * LMDB as many in one record. A cas carries two values in one entry, and an AppendEntries
 * max_append_bytes and one more entry: with each at most 1GiB, the largest message stays
 * near 3GiB. */
#define MAX_CARRIED_BYTES ((size_t)1 << 30)

static int check_size(struct parser *p, const char *key, size_t value, size_t max,
                      const char *limit, const char *why)
{
    return value <= max ? 0
                        : fail_at(p, key_line(p, key), key, "must be at most %s: %s", limit, why);
}

static int check_sizes(struct parser *p)
{
    const struct rk_config *cfg = p->cfg;
    char lmdb_key[32];
    snprintf(lmdb_key, sizeof lmdb_key, "%zu", rk_db_max_key_bytes());
    int rc = check_size(p, "max_value_bytes", cfg->max_value_bytes, MAX_CARRIED_BYTES, "1GiB",
                        "a cas carries two values in one message and one log record, and NNG "
                        "and LMDB carry at most 4GiB - 1 bytes in one");
    if (rc == 0)
        rc = check_size(p, "max_append_bytes", cfg->max_append_bytes, MAX_CARRIED_BYTES, "1GiB",
                        "an AppendEntries carries this and one more entry in one message, and "
                        "NNG carries at most 4GiB - 1 bytes in one");
    if (rc == 0)
        rc = check_size(p, "max_key_bytes", cfg->max_key_bytes, rk_db_max_key_bytes(), lmdb_key,
                        "LMDB's key limit");
    return rc;
}

static bool is_tls_url(const char *url)
{
    return strncmp(url, "tls+tcp://", 10) == 0;
}

/* An address whose scheme does not match whether TLS is configured: a tls+tcp:// one
 * without the files could never connect, and a plain one beside them would be a way in
 * without a certificate. */
static int check_tls_url(struct parser *p, bool tls, const char *key, int line, const char *url)
{
    if (!url || is_tls_url(url) == tls)
        return 0;
    return tls ? fail_at(p, line, key,
                         "\"%s\" is not tls+tcp://: with tls_* set, every address must use TLS",
                         url)
               : fail_at(p, line, key,
                         "a tls+tcp:// address needs tls_cert_file, tls_key_file and "
                         "tls_ca_file");
}

static int check_tls_members(struct parser *p, bool tls)
{
    const struct rk_config *cfg = p->cfg;
    for (size_t i = 0; i < cfg->n_members; i++) {
        const struct rk_member *m = &cfg->members[i];
        char key[40];
        snprintf(key, sizeof key, "peer.%llu", (unsigned long long)m->id);
        if (check_tls_url(p, tls, key, p->member_lines[i].peer, m->peer_url) != 0)
            return -1;
        snprintf(key, sizeof key, "client.%llu", (unsigned long long)m->id);
        if (check_tls_url(p, tls, key, p->member_lines[i].client, m->client_url) != 0)
            return -1;
    }
    return 0;
}

/* The TLS files come together, and every address agrees with them. Runs before
 * check_members fills in the listen_* defaults, so that a bad one is named where it is
 * set. Whether the files can be read is checked at start. */
static int check_tls(struct parser *p)
{
    const struct rk_config *cfg = p->cfg;
    static const char *const files[] = {"tls_cert_file", "tls_key_file", "tls_ca_file"};
    int set = 0, first = -1;
    for (int i = 0; i < 3; i++) {
        if (key_line(p, files[i])) {
            set++;
            first = first < 0 ? i : first;
        }
    }
    if (set != 0 && set != 3)
        return fail_at(p, key_line(p, files[first]), files[first],
                       "tls_cert_file, tls_key_file and tls_ca_file must be set together");
    bool tls = set == 3;
    static const char *const addresses[] = {"listen_peer", "listen_client", "listen_pub",
                                            "pub_address"};
    const char *values[] = {cfg->listen_peer, cfg->listen_client, cfg->listen_pub,
                            cfg->pub_address};
    for (size_t i = 0; i < sizeof addresses / sizeof addresses[0]; i++)
        if (check_tls_url(p, tls, addresses[i], key_line(p, addresses[i]), values[i]) != 0)
            return -1;
    return check_tls_members(p, tls);
}

/* Plain HTTP only: the port answers health, status and metrics, and data only when
 * http_gateway asks for it. */
static int check_http(struct parser *p)
{
    const char *url = p->cfg->http_address;
    if (url && strncmp(url, "http://", 7) != 0)
        return fail_at(p, key_line(p, "http_address"), "http_address",
                       "expected an address such as http://127.0.0.1:8080, got \"%s\"", url);
    if (p->cfg->http_gateway && !url)
        return fail_at(p, key_line(p, "http_gateway"), "http_gateway", "needs http_address");
    return 0;
}

/* The gateway's plain HTTP would be a way to the data without the client certificate
 * that the client port requires. Runs once the TLS keys are known to come together. */
static int check_gateway(struct parser *p)
{
    const struct rk_config *cfg = p->cfg;
    if (!cfg->http_gateway || !cfg->tls_ca_file ||
        cfg->tls_client_auth != RK_TLS_CLIENT_AUTH_REQUIRED)
        return 0;
    return fail_at(p, key_line(p, "http_gateway"), "http_gateway",
                   "plain HTTP would bypass tls_client_auth = required: set tls_client_auth "
                   "to optional or none, or leave http_gateway off");
}

static int check_config(struct parser *p)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (keys[i].required && !p->key_line[i])
            return fail_at(p, 0, keys[i].name, "required key missing");
    int rc = check_http(p);
    if (rc == 0)
        rc = check_tls(p);
    if (rc == 0)
        rc = check_gateway(p);
    if (rc == 0)
        rc = check_members(p);
    if (rc == 0)
        rc = check_timing(p);
    if (rc == 0)
        rc = check_sizes(p);
    return rc ? rc : check_snapshots(p);
}

/* A configuration is a few hundred bytes: a larger file is not one. */
#define MAX_FILE_BYTES ((off_t)1 << 20)
#define MAX_LINE_BYTES 4094

static int parse_file(struct parser *p, FILE *f)
{
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&buf, &cap, f)) >= 0) {
        p->line++;
        if ((size_t)len > MAX_LINE_BYTES + 1)
            rc = fail_at(p, p->line, NULL, "line longer than %d bytes", MAX_LINE_BYTES);
        else if (strlen(buf) != (size_t)len)
            rc = fail_at(p, p->line, NULL, "a NUL byte in the line: this is not a text file");
        else
            rc = parse_line(p, buf);
    }
    free(buf);
    if (rc == 0 && ferror(f))
        rc = fail_at(p, 0, NULL, "cannot read: %s", strerror(errno));
    return rc == 0 ? check_config(p) : rc;
}

/* Opened without blocking (a FIFO would wait for a writer) and refused unless a regular file
 * of a configuration's size: /dev/zero would be read for ever. */
static FILE *open_file(struct parser *p)
{
    int fd = open(p->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fail_at(p, 0, NULL, "cannot open: %s", strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        fail_at(p, 0, NULL, "not a regular file");
    } else if (st.st_size > MAX_FILE_BYTES) {
        fail_at(p, 0, NULL, "%lld bytes, more than a configuration's limit of 1MiB",
                (long long)st.st_size);
    } else {
        FILE *f = fdopen(fd, "r");
        if (f)
            return f;
        fail_at(p, 0, NULL, "cannot open: %s", strerror(errno));
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

int rk_config_load(const char *path, rk_config_defaults_fn fsm_defaults, struct rk_config *out,
                   char *err, size_t err_len)
{
    config_defaults(out);
    if (fsm_defaults)
        fsm_defaults(out);
    struct parser p = {.path = path, .cfg = out, .err = err, .err_len = err_len};
    FILE *f = open_file(&p);
    if (!f)
        return -1;
    int rc = parse_file(&p, f);
    fclose(f);
    free(p.member_lines);
    if (rc != 0)
        rk_config_free(out);
    return rc;
}

void rk_config_free(struct rk_config *cfg)
{
    for (size_t i = 0; i < cfg->n_members; i++) {
        free(cfg->members[i].peer_url);
        free(cfg->members[i].client_url);
    }
    free(cfg->members);
    free(cfg->data_dir);
    free(cfg->listen_peer);
    free(cfg->listen_client);
    free(cfg->pub_address);
    free(cfg->http_address);
    free(cfg->listen_pub);
    free(cfg->tls_cert_file);
    free(cfg->tls_key_file);
    free(cfg->tls_ca_file);
    memset(cfg, 0, sizeof *cfg);
}

const struct rk_member *rk_config_member(const struct rk_config *cfg, raft_id id)
{
    for (size_t i = 0; i < cfg->n_members; i++)
        if (cfg->members[i].id == id)
            return &cfg->members[i];
    return NULL;
}

unsigned rk_config_ticks(unsigned ms)
{
    return (ms + RK_TICK_MS - 1) / RK_TICK_MS;
}
