/*
 * Names a client's request by its operation, read from the wire: the node names every
 * request it gets, on any node, and unpacking a put would copy its value for nothing.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.pb-c.h"
#include "kv/kv_private.h"

static bool varint(const uint8_t *p, size_t len, size_t *at, uint64_t *out)
{
    *out = 0;
    for (unsigned shift = 0; shift < 64 && *at < len; shift += 7) {
        uint8_t b = p[(*at)++];
        *out |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* Moves past the value of a field of wire type wt. */
static bool skip(const uint8_t *p, size_t len, size_t *at, unsigned wt)
{
    uint64_t n;
    switch (wt) {
    case 0: /* varint */
        return varint(p, len, at, &n);
    case 1: /* fixed64 */
        n = 8;
        break;
    case 2: /* length-delimited */
        if (!varint(p, len, at, &n))
            return false;
        break;
    case 5: /* fixed32 */
        n = 4;
        break;
    default:
        return false;
    }
    if (n > len - *at)
        return false;
    *at += (size_t)n;
    return true;
}

const char *rk_kv_request_name(const uint8_t *req, size_t len)
{
    size_t at = 0;
    while (at < len) {
        uint64_t key;
        if (!varint(req, len, &at, &key) || (key >> 3) > UINT32_MAX)
            return NULL;
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
            &raftkv__kv__request__descriptor, (unsigned)(key >> 3));
        if (f && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
            return f->name;
        if (!skip(req, len, &at, (unsigned)(key & 7)))
            return NULL;
    }
    return NULL;
}
