/*
 * libFuzzer: an HTTP request to the gateway ("METHOD\nURI\nBODY", as NNG hands it over:
 * tests/fuzz/corpus/gateway) through gateway.c's own parsing and routing, down to the client
 * call it would start, and arbitrary bytes through the JSON of its listings. Beyond no crash:
 * what a request parses to is checked against the README's rules, and the JSON is read back
 * by a strict reader of this file's own, which must find the same bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/gateway.h"
#include "node/gateway_internal.h"

#define MAX_VALUE 64 /* the gateway's max_value_bytes */
#define MAX_KVS 16   /* in a listing made of the body */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static bool same(const void *a, const void *b, size_t len)
{
    return len == 0 || memcmp(a, b, len) == 0;
}

/* ---- independent references ---- */

/* RFC 3629, by its table of well-formed sequences. */
static bool utf8_ok(const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        size_t n = c < 0x80                 ? 1
                   : c >= 0xC2 && c <= 0xDF ? 2
                   : c >= 0xE0 && c <= 0xEF ? 3
                   : c >= 0xF0 && c <= 0xF4 ? 4
                                            : 0;
        if (n == 0 || len - i < n)
            return false;
        uint8_t lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
        uint8_t hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        for (size_t k = 1; k < n; k++, lo = 0x80, hi = 0xBF)
            if (s[i + k] < lo || s[i + k] > hi)
                return false;
        i += n;
    }
    return true;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* A path's %XX escapes decoded into out; false if one is malformed. */
static bool path_decode(const char *s, uint8_t *out, size_t *len)
{
    size_t n = 0;
    for (; *s; s++) {
        if (*s != '%') {
            out[n++] = (uint8_t)*s;
            continue;
        }
        int hi = hex_digit(s[1]), lo = hi < 0 ? -1 : hex_digit(s[2]);
        if (lo < 0)
            return false;
        out[n++] = (uint8_t)(hi << 4 | lo);
        s += 2;
    }
    *len = n;
    return true;
}

/* ---- a request ---- */

static bool in_room(const uint8_t *p, size_t len, const uint8_t *room, size_t room_len)
{
    return len == 0 || (p >= room && p + len <= room + room_len);
}

/* The prefix's end (client.h): the prefix without its trailing 0xff bytes, its last byte
 * one more; none when it is all 0xff bytes. */
static void check_end(const struct gateway_request *r)
{
    size_t n = r->prefix_len;
    while (n > 0 && r->prefix[n - 1] == 0xff)
        n--;
    CHECK(r->end_len == n);
    CHECK(n == 0 || (same(r->end, r->prefix, n - 1) && r->end[n - 1] == r->prefix[n - 1] + 1));
}

static void check_list(const struct rk_http_in *in, const struct gateway_request *r,
                       const uint8_t *room, size_t room_len)
{
    size_t query_len = strlen(in->query);
    CHECK(r->op == GATEWAY_LIST && !r->raw && !r->key_len && !r->value_len);
    CHECK(r->prefix_len <= query_len && r->start_len <= query_len);
    CHECK(in_room(r->prefix, r->prefix_len, room, room_len));
    CHECK(in_room(r->start, r->start_len, room, room_len));
    CHECK(in_room(r->end, r->end_len, room, room_len));
    CHECK(r->start_len >= r->prefix_len && same(r->start, r->prefix, r->prefix_len));
    CHECK(r->has_start || (r->start == r->prefix && r->start_len == r->prefix_len));
    CHECK(r->limit <= RAFTKV_RANGE_MAX_KEYS);
    check_end(r);
}

static void check_key(const struct rk_http_in *in, const struct gateway_request *r,
                      const uint8_t *room, size_t room_len, const uint8_t *want, size_t want_len)
{
    bool get = !strcmp(in->method, "GET") || !strcmp(in->method, "HEAD");
    enum gateway_op op = get                             ? GATEWAY_GET
                         : !strcmp(in->method, "PUT")    ? GATEWAY_PUT
                         : !strcmp(in->method, "DELETE") ? GATEWAY_DELETE
                                                         : GATEWAY_LIST;
    CHECK(r->op == op && op != GATEWAY_LIST && (!r->raw || op == GATEWAY_GET));
    CHECK(r->key_len > 0 && r->key_len <= strlen(in->path + 7));
    CHECK(in_room(r->key, r->key_len, room, room_len));
    CHECK(r->key_len == want_len && same(r->key, want, want_len));
    if (op == GATEWAY_PUT)
        CHECK(r->value == in->body && r->value_len == in->body_len && r->value_len <= MAX_VALUE);
    else
        CHECK(!r->value && !r->value_len);
    CHECK(!r->prefix_len && !r->start_len && !r->end_len && !r->limit);
}

/* Parses in as the server does, and checks the answer either way; returns the request
 * (room freed by the caller) or NULL. */
static uint8_t *request(const struct rk_http_in *in, struct gateway_request *r)
{
    if (!rk_gateway_owns(in->path))
        return NULL;
    size_t room_len = gateway__room(in);
    uint8_t *room = malloc(room_len); /* exactly: ASan sees a byte past it */
    uint8_t *key = malloc(strlen(in->path) + 1);
    CHECK(room && key);
    struct gateway_refusal no;
    bool ok = gateway__parse(in, MAX_VALUE, room, r, &no);
    bool is_key = !strncmp(in->path, "/v1/kv/", 7);
    size_t key_len = 0;
    bool key_ok = is_key && path_decode(in->path + 7, key, &key_len) && key_len > 0;
    bool get = !strcmp(in->method, "GET") || !strcmp(in->method, "HEAD");
    if (ok && is_key) {
        check_key(in, r, room, room_len, key, key_len);
    } else if (ok) {
        CHECK(!strcmp(in->path, "/v1/kv"));
        check_list(in, r, room, room_len);
    } else {
        CHECK(no.code && no.why && *no.why);
        CHECK((no.status == 400 && !strcmp(no.code, "INVALID")) ||
              (no.status == 404 && !strcmp(no.code, "NOT_FOUND")) ||
              (no.status == 405 && !strcmp(no.code, "METHOD_NOT_ALLOWED")) ||
              (no.status == 413 && !strcmp(no.code, "INVALID") && in->body_len > MAX_VALUE));
        /* Nothing the README allows is refused. */
        bool key_allowed = key_ok && (get || !strcmp(in->method, "DELETE") ||
                                      (!strcmp(in->method, "PUT") && in->body_len <= MAX_VALUE));
        CHECK(*in->query || !(key_allowed || (get && !strcmp(in->path, "/v1/kv"))));
    }
    free(key);
    if (!ok)
        free(room);
    return ok ? room : NULL;
}

/* ---- a strict reader of JSON (RFC 8259), for the shape of a listing ---- */

struct reader {
    const char *s, *end;
};

static void skip_ws(struct reader *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static bool lit(struct reader *p, const char *t)
{
    size_t n = strlen(t);
    skip_ws(p);
    if ((size_t)(p->end - p->s) < n || memcmp(p->s, t, n))
        return false;
    p->s += n;
    return true;
}

static bool number(struct reader *p, uint64_t *v)
{
    skip_ws(p);
    const char *s = p->s;
    *v = 0;
    while (p->s < p->end && *p->s >= '0' && *p->s <= '9') {
        unsigned d = (unsigned)(*p->s++ - '0');
        if (*v > (UINT64_MAX - d) / 10)
            return false;
        *v = *v * 10 + d;
    }
    return p->s > s && (*s != '0' || p->s == s + 1);
}

/* A string into out (room for its length), escapes decoded. The text is UTF-8 already. */
static bool string(struct reader *p, uint8_t *out, size_t *len)
{
    size_t n = 0;
    if (!lit(p, "\""))
        return false;
    while (p->s < p->end && *p->s != '"') {
        uint8_t c = (uint8_t)*p->s++;
        if (c < 0x20)
            return false;
        if (c != '\\') {
            out[n++] = c;
            continue;
        }
        if (p->s == p->end)
            return false;
        const char *esc = strchr("\"\\/bfnrt", *p->s);
        if (esc && *esc) {
            out[n++] = (uint8_t) "\"\\/\b\f\n\r\t"[esc - "\"\\/bfnrt"];
            p->s++;
            continue;
        }
        if (*p->s++ != 'u' || p->end - p->s < 4)
            return false;
        unsigned cp = 0;
        for (int k = 0; k < 4; k++, p->s++) {
            int d = hex_digit(*p->s);
            if (d < 0)
                return false;
            cp = cp << 4 | (unsigned)d;
        }
        if (cp >= 0xD800 && cp <= 0xDFFF)
            return false; /* never written: a surrogate encodes no byte string */
        if (cp < 0x80) {
            out[n++] = (uint8_t)cp;
        } else if (cp < 0x800) {
            out[n++] = (uint8_t)(0xC0 | cp >> 6);
            out[n++] = (uint8_t)(0x80 | (cp & 63));
        } else {
            out[n++] = (uint8_t)(0xE0 | cp >> 12);
            out[n++] = (uint8_t)(0x80 | ((cp >> 6) & 63));
            out[n++] = (uint8_t)(0x80 | (cp & 63));
        }
    }
    if (p->s == p->end)
        return false;
    p->s++;
    *len = n;
    return true;
}

/* RFC 4648 base64, padded and canonical (unused bits zero), into out. */
static bool base64(const uint8_t *s, size_t len, uint8_t *out, size_t *out_len)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    if (len % 4)
        return false;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            const char *d = s[i + k] ? memchr(digits, s[i + k], 64) : NULL;
            if (s[i + k] == '=' && i + 4 == len && k >= 2 && (k == 3 || s[i + 3] == '='))
                pad++;
            else if (!d || pad)
                return false;
            v = v << 6 | (uint32_t)(d ? d - digits : 0);
        }
        if ((pad == 1 && (v & 0xFF)) || (pad == 2 && (v & 0xFFFF)))
            return false;
        for (int k = 0; k < 3 - pad; k++)
            out[n++] = (uint8_t)(v >> (16 - 8 * k));
    }
    *out_len = n;
    return true;
}

static bool name_is(struct reader *p, const char *name, uint8_t *buf)
{
    size_t len;
    return string(p, buf, &len) && len == strlen(name) && same(buf, name, len) && lit(p, ":");
}

/* "name":"text" of the bytes want when they are UTF-8, else "name":"<base64>" and
 * "name_encoding":"base64". buf: room for the text. */
static bool bytes_field(struct reader *p, const char *name, const uint8_t *want, size_t want_len,
                        uint8_t *buf)
{
    size_t len, got_len;
    if (!name_is(p, name, buf) || !string(p, buf, &len))
        return false;
    char encoding[40];
    strcpy(encoding, name);
    strcat(encoding, "_encoding");
    struct reader after = *p;
    uint8_t *got = buf + len;
    if (lit(p, ",") && name_is(p, encoding, got)) {
        if (!string(p, got, &got_len) || got_len != 6 || !same(got, "base64", 6) ||
            utf8_ok(want, want_len) || !base64(buf, len, got, &got_len))
            return false;
    } else {
        *p = after;
        got = buf;
        got_len = len;
        if (!utf8_ok(want, want_len))
            return false;
    }
    return got_len == want_len && same(got, want, want_len);
}

static bool number_field(struct reader *p, const char *name, uint64_t want, uint8_t *buf)
{
    uint64_t v;
    return name_is(p, name, buf) && number(p, &v) && v == want;
}

static bool listing_is(struct reader *p, const struct raftkv_range_result *res, uint8_t *buf)
{
    if (!lit(p, "{") || !number_field(p, "revision", res->revision, buf) || !lit(p, ",") ||
        !name_is(p, "kvs", buf) || !lit(p, "["))
        return false;
    for (size_t i = 0; i < res->count; i++) {
        const struct raftkv_kv *kv = &res->kvs[i];
        if ((i && !lit(p, ",")) || !lit(p, "{") ||
            !bytes_field(p, "key", kv->key, kv->key_len, buf) || !lit(p, ",") ||
            !bytes_field(p, "value", kv->value, kv->value_len, buf) || !lit(p, ",") ||
            !number_field(p, "create_revision", kv->create_revision, buf) || !lit(p, ",") ||
            !number_field(p, "mod_revision", kv->mod_revision, buf) || !lit(p, "}"))
            return false;
    }
    if (!lit(p, "]") || !lit(p, ",") || !name_is(p, "more", buf) ||
        !lit(p, res->more ? "true" : "false"))
        return false;
    if (res->more && res->count) {
        const struct raftkv_kv *last = &res->kvs[res->count - 1];
        uint8_t *next = malloc(last->key_len + 1);
        CHECK(next);
        memcpy(next, last->key, last->key_len);
        next[last->key_len] = 0;
        bool ok = lit(p, ",") && bytes_field(p, "next", next, last->key_len + 1, buf);
        free(next);
        if (!ok)
            return false;
    }
    if (!lit(p, "}"))
        return false;
    skip_ws(p);
    return p->s == p->end;
}

static void check_listing(const struct raftkv_range_result *res)
{
    struct text b = {0};
    gateway__json_list(&b, res);
    CHECK(!b.oom && utf8_ok((const uint8_t *)b.s, b.len));
    uint8_t *buf = malloc(2 * b.len); /* a string and its decoded base64 */
    CHECK(buf);
    struct reader p = {b.s, b.s + b.len};
    CHECK(listing_is(&p, res, buf));
    free(buf);
    free(b.s);
}

/* A listing's key and value as the client library gives them (client.h): the key never
 * empty, the value NULL when empty. */
static void add(struct raftkv_range_result *res, const uint8_t *key, size_t key_len,
                const uint8_t *value, size_t value_len, uint64_t revision)
{
    if (key_len)
        res->kvs[res->count++] =
            (struct raftkv_kv){(uint8_t *)key, key_len,  (uint8_t *)(value_len ? value : NULL),
                               value_len,      revision, revision * 0x9E3779B97F4A7C15u};
}

/* A listing of the body's bytes, in pieces (a length byte, then that many bytes: a key,
 * then a value, ...), and of what the request parsed to. */
static void listing(const uint8_t *body, size_t len, const struct gateway_request *r, size_t seed)
{
    struct raftkv_kv kvs[MAX_KVS + 3];
    struct raftkv_range_result res = {
        .kvs = kvs, .more = seed & 1, .revision = seed * 0x9E3779B97F4A7C15u};
    const uint8_t *piece[2] = {NULL, NULL};
    size_t piece_len[2] = {0, 0};
    for (size_t at = 0, k = 0; at < len && res.count < MAX_KVS; k ^= 1) {
        size_t want = body[at++];
        piece_len[k] = want < len - at ? want : len - at;
        piece[k] = body + at;
        at += piece_len[k];
        if (k == 1 || at == len)
            add(&res, piece[0], piece_len[0], piece[1], k ? piece_len[1] : 0, seed + at);
    }
    if (r && r->key_len)
        add(&res, r->key, r->key_len, body, len, 1);
    if (r && r->op == GATEWAY_LIST) {
        add(&res, r->prefix, r->prefix_len, NULL, 0, 0);
        add(&res, r->start, r->start_len, r->end, r->end_len, UINT64_MAX);
    }
    if (!res.count)
        res.kvs = NULL;
    check_listing(&res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* NNG's strings end at a NUL; the body is bytes. */
    char *text = malloc(size + 1);
    CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0';
    char *uri = memchr(text, '\n', size),
         *body = uri ? memchr(uri + 1, '\n', size - (size_t)(uri + 1 - text)) : NULL;
    if (!body) {
        free(text);
        return 0;
    }
    *uri++ = '\0';
    *body++ = '\0';
    /* http_server.c's split: the path, and the query after the '?' before any '#' */
    uri[strcspn(uri, "#")] = '\0';
    char *q = strchr(uri, '?');
    if (q)
        *q++ = '\0';
    size_t body_len = size - (size_t)(body - text);
    struct rk_http_in in = {text, uri, q ? q : "", (const uint8_t *)body, body_len};
    struct gateway_request r;
    uint8_t *room = request(&in, &r);
    listing(in.body, body_len, room ? &r : NULL, size);
    free(room);
    free(text);
    return 0;
}
