/* Configurations as values: copying, checking, and the bytes of a configuration entry.
 *
 * Encoding, version 1 (integers little-endian):
 *
 *     u8 version = 1, u8 member count,
 *     per member: u64 id, u8 role, u8 peer address length, its bytes,
 *                 u8 client address length, its bytes.
 *
 * The bytes arrive from the network inside AppendEntries, so decoding checks every length
 * against what is left and rejects trailing bytes: one configuration has one encoding. */
#include <stdlib.h>
#include <string.h>

#include "raft/core.h"

#define ENCODING_VERSION 1

const char *raft_member_role_name(enum raft_member_role role)
{
    switch (role) {
    case RAFT_VOTER:
        return "voter";
    case RAFT_LEARNER:
        return "learner";
    }
    return "unknown";
}

void raft_configuration_free(struct raft_configuration *conf)
{
    for (size_t i = 0; i < conf->n; i++) {
        free(conf->members[i].peer_address);
        free(conf->members[i].client_address);
    }
    free(conf->members);
    conf->members = NULL;
    conf->n = 0;
}

static char *strdup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

int raft_configuration_copy(struct raft_configuration *dst, const struct raft_configuration *src)
{
    struct raft_configuration copy = {0};
    if (src->n && !src->members)
        return RAFT_EINVAL;
    if (src->n) {
        copy.members = calloc(src->n, sizeof *copy.members);
        if (!copy.members)
            return RAFT_ENOMEM;
    }
    for (size_t i = 0; i < src->n; i++) {
        struct raft_member *m = &copy.members[copy.n++];
        *m = src->members[i];
        m->peer_address = strdup_or_empty(src->members[i].peer_address);
        m->client_address = strdup_or_empty(src->members[i].client_address);
        if (!m->peer_address || !m->client_address) {
            raft_configuration_free(&copy);
            return RAFT_ENOMEM;
        }
    }
    *dst = copy;
    return RAFT_OK;
}

const struct raft_member *raft_configuration_find(const struct raft_configuration *conf, raft_id id)
{
    for (size_t i = 0; i < conf->n; i++)
        if (conf->members[i].id == id)
            return &conf->members[i];
    return NULL;
}

bool raft_configuration_equal(const struct raft_configuration *a,
                              const struct raft_configuration *b)
{
    bool same = a->n == b->n;
    for (size_t i = 0; same && i < a->n; i++) {
        const struct raft_member *x = &a->members[i], *y = &b->members[i];
        same = x->id == y->id && x->role == y->role &&
               strcmp(x->peer_address, y->peer_address) == 0 &&
               strcmp(x->client_address, y->client_address) == 0;
    }
    return same;
}

size_t raft_configuration_voters(const struct raft_configuration *conf)
{
    size_t n = 0;
    for (size_t i = 0; i < conf->n; i++)
        n += conf->members[i].role == RAFT_VOTER;
    return n;
}

static bool address_is_valid(const char *address)
{
    return address && strnlen(address, RAFT_MAX_ADDRESS + 1) <= RAFT_MAX_ADDRESS;
}

bool raft_configuration_is_valid(const struct raft_configuration *conf)
{
    if (conf->n > RAFT_MAX_MEMBERS || (conf->n && !conf->members))
        return false;
    for (size_t i = 0; i < conf->n; i++) {
        const struct raft_member *m = &conf->members[i];
        if (m->id == 0 || (m->role != RAFT_VOTER && m->role != RAFT_LEARNER) ||
            !address_is_valid(m->peer_address) || !address_is_valid(m->client_address))
            return false;
        for (size_t j = 0; j < i; j++)
            if (conf->members[j].id == m->id)
                return false;
    }
    return true;
}

static uint8_t *put_address(uint8_t *p, const char *address)
{
    size_t len = strlen(address);
    *p++ = (uint8_t)len;
    memcpy(p, address, len);
    return p + len;
}

int raft_configuration_encode(const struct raft_configuration *conf, uint8_t **buf, size_t *len)
{
    if (!raft_configuration_is_valid(conf))
        return RAFT_EINVAL;
    size_t size = 2;
    for (size_t i = 0; i < conf->n; i++)
        size += 8 + 1 + 2 + strlen(conf->members[i].peer_address) +
                strlen(conf->members[i].client_address);
    uint8_t *p = malloc(size);
    if (!p)
        return RAFT_ENOMEM;
    *buf = p;
    *p++ = ENCODING_VERSION;
    *p++ = (uint8_t)conf->n;
    for (size_t i = 0; i < conf->n; i++) {
        const struct raft_member *m = &conf->members[i];
        for (unsigned b = 0; b < 8; b++)
            *p++ = (uint8_t)(m->id >> (8 * b));
        *p++ = (uint8_t)m->role;
        p = put_address(p, m->peer_address);
        p = put_address(p, m->client_address);
    }
    *len = size;
    return RAFT_OK;
}

/* A cursor over untrusted bytes: every read checks what is left first. */
struct reader {
    const uint8_t *p;
    size_t left;
};

static bool read_bytes(struct reader *rd, void *out, size_t n)
{
    if (rd->left < n)
        return false;
    memcpy(out, rd->p, n);
    rd->p += n;
    rd->left -= n;
    return true;
}

static bool read_u8(struct reader *rd, uint8_t *out)
{
    return read_bytes(rd, out, 1);
}

/* An address holds no NUL: it could not round-trip through a C string. */
static bool read_address(struct reader *rd, char *out)
{
    uint8_t len;
    if (!read_u8(rd, &len) || !read_bytes(rd, out, len) || memchr(out, 0, len))
        return false;
    out[len] = '\0';
    return true;
}

static bool read_member(struct reader *rd, struct raft_member *m, char *peer, char *client)
{
    uint8_t id[8], role;
    if (!read_bytes(rd, id, sizeof id) || !read_u8(rd, &role) || !read_address(rd, peer) ||
        !read_address(rd, client))
        return false;
    m->id = 0;
    for (unsigned b = 0; b < 8; b++)
        m->id |= (raft_id)id[b] << (8 * b);
    m->role = role;
    m->peer_address = peer;
    m->client_address = client;
    return true;
}

/* Parses buf into conf whose members array has room for RAFT_MAX_MEMBERS; the addresses
 * point into the caller's scratch. Nothing is allocated, so checking costs no memory. */
static bool parse(const uint8_t *buf, size_t len, struct raft_configuration *conf,
                  char (*addresses)[2][RAFT_MAX_ADDRESS + 1])
{
    struct reader rd = {buf, len};
    uint8_t version, n;
    if (!buf || !read_u8(&rd, &version) || version != ENCODING_VERSION || !read_u8(&rd, &n) ||
        n > RAFT_MAX_MEMBERS)
        return false;
    for (conf->n = 0; conf->n < n; conf->n++)
        if (!read_member(&rd, &conf->members[conf->n], addresses[conf->n][0],
                         addresses[conf->n][1]))
            return false;
    return rd.left == 0 && raft_configuration_is_valid(conf);
}

struct parsed {
    struct raft_member members[RAFT_MAX_MEMBERS];
    char addresses[RAFT_MAX_MEMBERS][2][RAFT_MAX_ADDRESS + 1];
};

int raft_configuration_decode(const uint8_t *buf, size_t len, struct raft_configuration *conf)
{
    struct parsed *scratch = malloc(sizeof *scratch);
    if (!scratch)
        return RAFT_ENOMEM;
    struct raft_configuration view = {.members = scratch->members};
    int rv = parse(buf, len, &view, scratch->addresses) ? raft_configuration_copy(conf, &view)
                                                        : RAFT_EINVAL;
    free(scratch);
    return rv;
}

bool raft__configuration_is_encoding(const uint8_t *buf, size_t len)
{
    struct parsed *scratch = malloc(sizeof *scratch);
    struct raft_configuration view = {.members = scratch ? scratch->members : NULL};
    /* Without memory to check it, the entry is refused like a malformed one: the leader
     * resends it. */
    bool ok = scratch && parse(buf, len, &view, scratch->addresses);
    free(scratch);
    return ok;
}
