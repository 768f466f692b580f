/* A growing text, for the bodies of HTTP answers (http_service.c, metrics.c, gateway.c). */
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
/* Appends len bytes (any bytes: a value). arg is the text: the signature of json_bytes.h's
 * rk_json_out.put. */
void text_put(void *arg, const void *data, size_t len);

#endif
