#include "node/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for need more bytes and a NUL; false (oom set) when there is none. */
static bool text_reserve(struct text *t, size_t need)
{
    if (t->oom)
        return false;
    if (t->s && t->len + need < t->cap)
        return true;
    size_t cap = 2 * ((t->cap ? t->cap : 1024) + need + 1);
    char *s = realloc(t->s, cap);
    if (!s) {
        t->oom = true;
        return false;
    }
    t->s = s;
    t->cap = cap;
    return true;
}

void text_put(void *arg, const void *data, size_t len)
{
    struct text *t = arg;
    if (len && text_reserve(t, len)) {
        memcpy(t->s + t->len, data, len);
        t->len += len;
    }
}

void text_add(struct text *t, const char *fmt, ...)
{
    for (int pass = 0; pass < 2 && !t->oom; pass++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        if (!text_reserve(t, (size_t)n))
            return;
    }
}
