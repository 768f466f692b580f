/* Byte strings as JSON text (json_bytes.h). */
#include "json/json_bytes.h"

#include <stdint.h>
#include <string.h>

bool rk_json_utf8_valid(const void *data, size_t len)
{
    const uint8_t *s = data;
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1, cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2, cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3, cp = c & 0x07;
        } else {
            return false; /* a continuation byte first, 0xC0-0xC1 (overlong), or past U+10FFFF */
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

void rk_json_string(const struct rk_json_out *out, const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *s = len ? data : (const uint8_t *)"";
    out->put(out->arg, "\"", 1);
    size_t run = 0; /* bytes to copy as they are, not yet put: most of a value is one run */
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (c >= 0x20 && c != 0x7F && c != '"' && c != '\\') {
            run++;
            continue;
        }
        out->put(out->arg, s + i - run, run);
        run = 0;
        char esc[6] = {'\\', (char)c};
        size_t n = 2;
        if (c == '\n' || c == '\r' || c == '\t') {
            esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        } else if (c != '"' && c != '\\') {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        out->put(out->arg, esc, n);
    }
    out->put(out->arg, s + len - run, run);
    out->put(out->arg, "\"", 1);
}

void rk_json_base64(const struct rk_json_out *out, const void *data, size_t len)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *s = data;
    char text[256]; /* put a chunk at a time, not 4 bytes */
    size_t n = 0;
    out->put(out->arg, "\"", 1);
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < len)
            v |= s[i + 2];
        text[n++] = digits[v >> 18];
        text[n++] = digits[(v >> 12) & 63];
        text[n++] = i + 1 < len ? digits[(v >> 6) & 63] : '=';
        text[n++] = i + 2 < len ? digits[v & 63] : '=';
        if (n == sizeof text) {
            out->put(out->arg, text, n);
            n = 0;
        }
    }
    out->put(out->arg, text, n);
    out->put(out->arg, "\"", 1);
}

static void put_str(const struct rk_json_out *out, const char *s)
{
    out->put(out->arg, s, strlen(s));
}

void rk_json_bytes_field(const struct rk_json_out *out, const char *name, const void *s, size_t len)
{
    bool text = rk_json_utf8_valid(s, len);
    put_str(out, "\"");
    put_str(out, name);
    put_str(out, "\":");
    if (text) {
        rk_json_string(out, s, len);
        return;
    }
    rk_json_base64(out, s, len);
    put_str(out, ",\"");
    put_str(out, name);
    put_str(out, "_encoding\":\"base64\"");
}
