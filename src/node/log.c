#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "node/log.h"

/* Written by the event loop, read by any thread that logs: atomics keep the reads sane. */
static _Atomic int log_level = RK_LOG_INFO;
static _Atomic uint64_t log_node_id;
static _Atomic uint64_t log_term;
static _Atomic(const char *) log_role = "follower";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

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

void rk_log_set_level(enum rk_log_level level)
{
    log_level = level;
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

void rk_log(enum rk_log_level level, const char *fmt, ...)
{
    if (!rk_log_enabled(level))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One fprintf per line so that concurrent lines do not interleave. */
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s node=%llu term=%llu role=%s: %s\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, level_names[level], (unsigned long long)log_node_id,
            (unsigned long long)log_term, log_role, msg);
}
