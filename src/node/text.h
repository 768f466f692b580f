/* A growing text, for the bodies of HTTP answers (http_service.c, metrics.c). */
#ifndef RAFTKV_NODE_TEXT_H
#define RAFTKV_NODE_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* On allocation failure it stays short and says so (oom). Zero-initialise; free s. */
struct text {
    char *s;
    size_t len, cap;
    bool oom;
};

__attribute__((format(printf, 2, 3))) void text_add(struct text *t, const char *fmt, ...);

#endif
