/*
 * The log of every layer of a node (node, transport, storage, KV store): one line per event
 * on stderr, with the time, the level, and the node's id, term and role, so the lines of
 * several nodes can be interleaved and read. The client library and the Raft core never log.
 *
 * Formats (one line each, written with a single call so concurrent lines do not interleave):
 *   text    2026-01-02T03:04:05.678Z info  node=1 term=3 role=leader: stopping
 *   logfmt  time=2026-01-02T03:04:05.678Z level=info node=1 term=3 role=leader msg=stopping
 *   json    {"time":"2026-01-02T03:04:05.678Z","level":"info","node":1,"term":3,
 *            "role":"leader","msg":"stopping"}
 * logfmt quotes a value holding a space, '=', '"' or a control character (with \" \\ \n \t
 * escapes); json escapes as RFC 8259 requires and replaces bytes that are not UTF-8 by U+FFFD.
 */
#ifndef RAFTKV_LOG_H
#define RAFTKV_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum rk_log_level {
    RK_LOG_ERROR,
    RK_LOG_WARN,
    RK_LOG_INFO,
    RK_LOG_DEBUG,
};

enum rk_log_format {
    RK_LOG_TEXT,
    RK_LOG_LOGFMT,
    RK_LOG_JSON,
};

/* Parses "error", "warn", "info" or "debug". Returns 0 on success. */
int rk_log_level_parse(const char *s, enum rk_log_level *out);
const char *rk_log_level_name(enum rk_log_level level);
/* Parses "text", "logfmt" or "json". Returns 0 on success. */
int rk_log_format_parse(const char *s, enum rk_log_format *out);

void rk_log_set_level(enum rk_log_level level);
void rk_log_set_format(enum rk_log_format format);
bool rk_log_enabled(enum rk_log_level level);
/* What each line says about the node; role is a static string. */
void rk_log_set_node(uint64_t id, uint64_t term, const char *role);

void rk_log(enum rk_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define rk_error(...) rk_log(RK_LOG_ERROR, __VA_ARGS__)
#define rk_warn(...) rk_log(RK_LOG_WARN, __VA_ARGS__)
#define rk_info(...) rk_log(RK_LOG_INFO, __VA_ARGS__)
#define rk_debug(...)                                                                              \
    do {                                                                                           \
        if (rk_log_enabled(RK_LOG_DEBUG))                                                          \
            rk_log(RK_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
