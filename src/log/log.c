#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log/log.h"

/* Written by the event loop, read by any thread that logs: atomics keep the reads sane. */
static _Atomic int log_level = RK_LOG_INFO;
static _Atomic int log_format = RK_LOG_TEXT;
static _Atomic uint64_t log_node_id;
static _Atomic uint64_t log_term;
static _Atomic(const char *) log_role = "follower";

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const format_names[] = {"text", "logfmt", "json"};

/* A message is cut at MSG_BYTES; a line holds it escaped at worst 6 bytes for 1 (\u00XX). */
#define MSG_BYTES 1024
#define LINE_BYTES (6 * MSG_BYTES + 256)

int rk_log_level_parse(const char *s, enum rk_log_level *out)
{
    for (int i = RK_LOG_ERROR; i <= RK_LOG_DEBUG; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum rk_log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *rk_log_level_name(enum rk_log_level level)
{
    return level <= RK_LOG_DEBUG ? level_names[level] : "?";
}

int rk_log_format_parse(const char *s, enum rk_log_format *out)
{
    for (int i = RK_LOG_TEXT; i <= RK_LOG_JSON; i++) {
        if (strcmp(s, format_names[i]) == 0) {
            *out = (enum rk_log_format)i;
            return 0;
        }
    }
    return -1;
}

void rk_log_set_level(enum rk_log_level level)
{
    log_level = level;
}

void rk_log_set_format(enum rk_log_format format)
{
    log_format = format;
}

bool rk_log_enabled(enum rk_log_level level)
{
    return (int)level <= log_level;
}

void rk_log_set_node(uint64_t id, uint64_t term, const char *role)
{
    log_node_id = id;
    log_term = term;
    log_role = role;
}

/* What one line says, read once so that its fields agree with each other. */
struct event {
    char time[96]; /* room for any int fields, as the compiler checks */
    const char *level;
    unsigned long long node;
    unsigned long long term;
    const char *role;
    const char *msg;
};

struct line {
    char buf[LINE_BYTES];
    size_t len;
};

static void put(struct line *l, const char *s, size_t n)
{
    /* One byte stays free for the newline. */
    if (n > sizeof l->buf - 1 - l->len)
        n = sizeof l->buf - 1 - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_str(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

static void putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct line *l, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(l, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Length of the well-formed UTF-8 sequence at s (of n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    if (s[0] < 0x80)
        return 1;
    else if (s[0] >= 0xc2 && s[0] < 0xe0)
        len = 2;
    else if (s[0] >= 0xe0 && s[0] < 0xf0)
        len = 3;
    else if (s[0] >= 0xf0 && s[0] < 0xf5)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF (RFC 3629). */
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return len;
}

/* Appends s escaped as a JSON string body, or a logfmt quoted one (JSON's escapes too). */
static void put_escaped(struct line *l, const char *s, bool json)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t len = utf8_len(p + i, n - i);
        if (c == '"' || c == '\\')
            putf(l, "\\%c", c);
        else if (c == '\n')
            put_str(l, "\\n");
        else if (c == '\t')
            put_str(l, "\\t");
        else if (c == '\r')
            put_str(l, "\\r");
        else if (c < 0x20 || c == 0x7f)
            putf(l, "\\u%04x", c);
        else if (len == 0 && json)
            put_str(l, "\\ufffd");
        else
            put(l, (const char *)p + i, len ? len : 1);
        i += len ? len : 1;
    }
}

static void put_json_string(struct line *l, const char *key, const char *value)
{
    putf(l, "\"%s\":\"", key);
    put_escaped(l, value, true);
    put_str(l, "\"");
}

static bool logfmt_needs_quotes(const char *s)
{
    if (*s == '\0')
        return true;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '=' || *p == '"' || *p == 0x7f)
            return true;
    return false;
}

static void put_logfmt(struct line *l, const char *key, const char *value)
{
    putf(l, "%s%s=", l->len ? " " : "", key);
    if (!logfmt_needs_quotes(value)) {
        put_str(l, value);
        return;
    }
    put_str(l, "\"");
    put_escaped(l, value, false);
    put_str(l, "\"");
}

static void format_line(struct line *l, const struct event *e, enum rk_log_format format)
{
    char num[24];
    switch (format) {
    case RK_LOG_TEXT:
        putf(l, "%s %-5s node=%llu term=%llu role=%s: ", e->time, e->level, e->node, e->term,
             e->role);
        put_str(l, e->msg);
        break;
    case RK_LOG_LOGFMT:
        put_logfmt(l, "time", e->time);
        put_logfmt(l, "level", e->level);
        snprintf(num, sizeof num, "%llu", e->node);
        put_logfmt(l, "node", num);
        snprintf(num, sizeof num, "%llu", e->term);
        put_logfmt(l, "term", num);
        put_logfmt(l, "role", e->role);
        put_logfmt(l, "msg", e->msg);
        break;
    case RK_LOG_JSON:
        put_str(l, "{");
        put_json_string(l, "time", e->time);
        put_str(l, ",");
        put_json_string(l, "level", e->level);
        putf(l, ",\"node\":%llu,\"term\":%llu,", e->node, e->term);
        put_json_string(l, "role", e->role);
        put_str(l, ",");
        put_json_string(l, "msg", e->msg);
        put_str(l, "}");
        break;
    }
}

void rk_log(enum rk_log_level level, const char *fmt, ...)
{
    if (!rk_log_enabled(level))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char msg[MSG_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct event e = {.level = level_names[level],
                      .node = log_node_id,
                      .term = log_term,
                      .role = log_role,
                      .msg = msg};
    snprintf(e.time, sizeof e.time, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    struct line l = {.len = 0};
    format_line(&l, &e, (enum rk_log_format)log_format);
    l.buf[l.len++] = '\n';
    /* One write per line so that concurrent lines do not interleave. */
    fwrite(l.buf, 1, l.len, stderr);
}
