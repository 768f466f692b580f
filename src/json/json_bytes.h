/*
 * Byte strings as JSON text (RFC 8259), as raft-kv --json and the HTTP gateway show keys and
 * values: bytes that are UTF-8 as a JSON string, other bytes in base64 with a field that says
 * so:
 *
 *     "name":"text"      or      "name":"<base64>","name_encoding":"base64"
 *
 * The text goes to out->put, in pieces: a growing buffer, or a FILE.
 */
#ifndef RAFTKV_JSON_BYTES_H
#define RAFTKV_JSON_BYTES_H

#include <stdbool.h>
#include <stddef.h>

struct rk_json_out {
    void (*put)(void *arg, const void *data, size_t len); /* appends len bytes */
    void *arg;
};

/* Whether s is well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or code points past
 * U+10FFFF, no truncated sequence). */
bool rk_json_utf8_valid(const void *s, size_t len);
/* s as a JSON string, quotes included: '"', '\\' and the control characters (DEL too) are
 * escaped, every other byte is copied as it is. */
void rk_json_string(const struct rk_json_out *out, const void *s, size_t len);
/* s in base64 (RFC 4648, with padding), quotes included. */
void rk_json_base64(const struct rk_json_out *out, const void *s, size_t len);
/* The field name (ASCII, nothing to escape) with the value s, as above; no comma around it.
 * s may be NULL when len is 0. */
void rk_json_bytes_field(const struct rk_json_out *out, const char *name, const void *s,
                         size_t len);

#endif
