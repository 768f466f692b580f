/* The defaults written for people (README's configuration table, deploy/node.conf.example)
 * are the compiled ones: each documented value goes through the real parser and must give
 * the same config as a file that sets nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/config.h"
#include "raftd_kv.h"
#include "test.h"

/* Every setting with a default; each must be documented in both places. */
#define TUNABLES(X)                                                                                \
    X(election_timeout_min_ms)                                                                     \
    X(election_timeout_max_ms)                                                                     \
    X(heartbeat_interval_ms)                                                                       \
    X(max_append_entries)                                                                          \
    X(max_append_bytes)                                                                            \
    X(max_inflight)                                                                                \
    X(max_key_bytes)                                                                               \
    X(max_value_bytes)                                                                             \
    X(max_db_bytes)                                                                                \
    X(kv_persist_entries)                                                                          \
    X(kv_persist_bytes)                                                                            \
    X(snapshot_entries)                                                                            \
    X(snapshot_bytes)                                                                              \
    X(snapshot_trailing_entries)                                                                   \
    X(snapshot_chunk_bytes)                                                                        \
    X(snapshot_max_inflight_chunks)                                                                \
    X(promote_max_lag)                                                                             \
    X(log_level)                                                                                   \
    X(log_format)                                                                                  \
    X(join)                                                                                        \
    X(http_gateway)                                                                                \
    X(tls_client_auth)

#define NAME(f) #f,
static const char *const tunables[] = {TUNABLES(NAME)};
#define N_TUNABLES (sizeof tunables / sizeof tunables[0])

#define BASE                                                                                       \
    "node_id = 1\n"                                                                                \
    "cluster_id = 1\n"                                                                             \
    "data_dir = /tmp/x\n"                                                                          \
    "peer.1 = tcp://127.0.0.1:7001\n"                                                              \
    "client.1 = tcp://127.0.0.1:7101\n"

/* README rows whose default is not a value. */
static const char *const NO_VALUE[] = {"required", "—", "none"};

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    (void)n;
    fclose(f);
    return buf;
}

/* Loads text as a config file; prints the parser's message on failure. */
static int load_text(const char *text, struct rk_config *cfg)
{
    char dir[] = "/tmp/raftkv-docs-XXXXXX", path[64], err[512];
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/node.conf", dir);
    FILE *f = fopen(path, "w");
    int rc = f && fputs(text, f) >= 0 ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    if (rc == 0)
        rc = rk_config_load(path, raftd_kv.config_defaults, cfg, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "  %s\n", err);
    unlink(path);
    rmdir(dir);
    return rc;
}

/* Field by field: every tunable of cfg equals the compiled default. */
static bool same_as_defaults(const struct rk_config *cfg, const char *where)
{
    struct rk_config def;
    if (load_text(BASE, &def) != 0)
        return false;
    bool same = true;
#define COMPARE(f)                                                                                 \
    if ((unsigned long long)cfg->f != (unsigned long long)def.f) {                                 \
        fprintf(stderr, "  %s: %s is %llu, the compiled default %llu\n", where, #f,                \
                (unsigned long long)cfg->f, (unsigned long long)def.f);                            \
        same = false;                                                                              \
    }
    TUNABLES(COMPARE)
#undef COMPARE
    rk_config_free(&def);
    return same;
}

static int tunable_index(const char *key)
{
    for (size_t i = 0; i < N_TUNABLES; i++)
        if (strcmp(tunables[i], key) == 0)
            return (int)i;
    return -1;
}

static bool all_tunables_seen(const bool *seen, const char *where)
{
    bool all = true;
    for (size_t i = 0; i < N_TUNABLES; i++) {
        if (!seen[i]) {
            fprintf(stderr, "  %s: no default documented for %s\n", where, tunables[i]);
            all = false;
        }
    }
    return all;
}

static char *trim(char *s)
{
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == ' ')
        s[--n] = '\0';
    return s;
}

/* One row of the README table ("| `a`, `b` | 1, 2 | meaning |"): appends "a = 1\nb = 2\n"
 * to conf for a row with values, and marks its keys. */
static bool readme_row(char *row, char *conf, size_t conf_len, bool *seen)
{
    char *col_save;
    char *keys = strtok_r(row + 1, "|", &col_save), *defaults = strtok_r(NULL, "|", &col_save);
    if (!keys || !defaults)
        return false;
    defaults = trim(defaults);
    /* A tunable's default is a value, even one that reads like another cell ("required"). */
    char first[64] = "";
    bool tunable = sscanf(keys, " `%63[^`]`", first) == 1 && tunable_index(first) >= 0;
    for (size_t i = 0; i < sizeof NO_VALUE / sizeof NO_VALUE[0] && !tunable; i++)
        if (strcmp(defaults, NO_VALUE[i]) == 0)
            return true;
    if (strncmp(defaults, "own ", 4) == 0) /* listen_*: another key's value */
        return true;
    char *key_save, *value_save;
    char *value = strtok_r(defaults, ",", &value_save);
    for (char *k = strtok_r(keys, "`", &key_save); k; k = strtok_r(NULL, "`", &key_save)) {
        if (strspn(k, " ,") == strlen(k))
            continue; /* between two `keys` */
        if (!value) {
            fprintf(stderr, "  README: no default for %s\n", k);
            return false;
        }
        int t = tunable_index(k);
        if (t < 0) {
            fprintf(stderr, "  README: %s has a default but is not checked here\n", k);
            return false;
        }
        seen[t] = true;
        size_t used = strlen(conf);
        snprintf(conf + used, conf_len - used, "%s = %s\n", k, trim(value));
        value = strtok_r(NULL, ",", &value_save);
    }
    if (value)
        fprintf(stderr, "  README: more defaults than keys in \"%s\"\n", keys);
    return value == NULL;
}

TEST(readme_table_gives_the_compiled_defaults)
{
    char *readme = read_file(RAFTKV_SOURCE_DIR "/README.md");
    CHECK(readme);
    char conf[8192] = BASE;
    bool seen[N_TUNABLES] = {false}, rows_ok = true;
    char *table = strstr(readme, "\n| key | default | meaning |\n|---|---|---|\n");
    char *row = table ? strchr(table + 1, '\n') + 1 : NULL;
    row = row ? strchr(row, '\n') + 1 : NULL;
    while (row && *row == '|' && rows_ok) {
        char *end = strchr(row, '\n');
        if (end)
            *end = '\0';
        rows_ok = readme_row(row, conf, sizeof conf, seen);
        row = end ? end + 1 : NULL;
    }
    free(readme);
    CHECK(table && rows_ok);
    CHECK(all_tunables_seen(seen, "README"));
    struct rk_config cfg;
    CHECK_EQ(load_text(conf, &cfg), 0);
    bool same = same_as_defaults(&cfg, "README");
    rk_config_free(&cfg);
    CHECK(same);
}

TEST(example_config_gives_the_compiled_defaults)
{
    char *example = read_file(RAFTKV_SOURCE_DIR "/deploy/node.conf.example");
    CHECK(example);
    /* Each tunable must be set there, not left out (which would also load its default). */
    bool seen[N_TUNABLES] = {false};
    for (char *line = example; *line;) {
        size_t klen = strcspn(line, " =\n");
        for (size_t i = 0; i < N_TUNABLES; i++)
            if (strlen(tunables[i]) == klen && strncmp(line, tunables[i], klen) == 0)
                seen[i] = true;
        line += strcspn(line, "\n");
        line += *line == '\n';
    }
    free(example);
    CHECK(all_tunables_seen(seen, "node.conf.example"));
    struct rk_config cfg;
    char err[512];
    int rc = rk_config_load(RAFTKV_SOURCE_DIR "/deploy/node.conf.example", raftd_kv.config_defaults,
                            &cfg, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "  %s\n", err);
    CHECK_EQ(rc, 0);
    bool same = same_as_defaults(&cfg, "node.conf.example");
    rk_config_free(&cfg);
    CHECK(same);
}

TEST_MAIN(TEST_REF(readme_table_gives_the_compiled_defaults),
          TEST_REF(example_config_gives_the_compiled_defaults))
