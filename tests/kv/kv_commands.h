/* Packed kv.proto requests for the KV tests, and snapshots in memory. */
#ifndef RAFTKV_TESTS_KV_COMMANDS_H
#define RAFTKV_TESTS_KV_COMMANDS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.pb-c.h"
#include "kv/kv_private.h"

#define B(s) ((ProtobufCBinaryData){strlen(s), (uint8_t *)(s)})

/* A packed kv.proto Request with one op: what a client sends and an entry holds. */
static inline struct rk_bytes pack_request(const ProtobufCMessage *m)
{
    struct rk_bytes b = {NULL, protobuf_c_message_get_packed_size(m)};
    b.data = malloc(b.len ? b.len : 1);
    protobuf_c_message_pack(m, b.data);
    return b;
}

static inline struct rk_bytes cmd_put(const char *key, const char *value)
{
    Raftkv__Kv__Put put = RAFTKV__KV__PUT__INIT;
    Raftkv__Kv__Request c = RAFTKV__KV__REQUEST__INIT;
    put.key = B(key);
    put.value = B(value);
    c.op_case = RAFTKV__KV__REQUEST__OP_PUT;
    c.put = &put;
    return pack_request(&c.base);
}

static inline struct rk_bytes cmd_get(const char *key)
{
    Raftkv__Kv__Get get = RAFTKV__KV__GET__INIT;
    Raftkv__Kv__Request c = RAFTKV__KV__REQUEST__INIT;
    get.key = B(key);
    c.op_case = RAFTKV__KV__REQUEST__OP_GET;
    c.get = &get;
    return pack_request(&c.base);
}

static inline struct rk_bytes cmd_delete(const char *key)
{
    Raftkv__Kv__Delete del = RAFTKV__KV__DELETE__INIT;
    Raftkv__Kv__Request c = RAFTKV__KV__REQUEST__INIT;
    del.key = B(key);
    c.op_case = RAFTKV__KV__REQUEST__OP_DELETE;
    c.delete_ = &del;
    return pack_request(&c.base);
}

/* expected == NULL means expect_absent. */
static inline struct rk_bytes cmd_cas(const char *key, const char *expected, const char *new_value)
{
    Raftkv__Kv__CompareAndSwap cas = RAFTKV__KV__COMPARE_AND_SWAP__INIT;
    Raftkv__Kv__Request c = RAFTKV__KV__REQUEST__INIT;
    cas.key = B(key);
    cas.expect_absent = expected == NULL;
    cas.expected = B(expected ? expected : "");
    cas.new_value = B(new_value);
    c.op_case = RAFTKV__KV__REQUEST__OP_CAS;
    c.cas = &cas;
    return pack_request(&c.base);
}

static inline struct rk_bytes cmd_register_nonce(uint64_t nonce)
{
    Raftkv__Kv__RegisterSession reg = RAFTKV__KV__REGISTER_SESSION__INIT;
    reg.nonce = nonce;
    Raftkv__Kv__Request c = RAFTKV__KV__REQUEST__INIT;
    c.op_case = RAFTKV__KV__REQUEST__OP_REGISTER_SESSION;
    c.register_session = &reg;
    return pack_request(&c.base);
}

static inline struct rk_bytes cmd_register(void)
{
    return cmd_register_nonce(0);
}

/* cmd (consumed) as write `sequence` of session, which has every write before
 * first_incomplete answered. */
static inline struct rk_bytes in_session(struct rk_bytes cmd, uint64_t session, uint64_t sequence,
                                         uint64_t first_incomplete)
{
    Raftkv__Kv__Request *c = raftkv__kv__request__unpack(NULL, cmd.len, cmd.data);
    free(cmd.data);
    c->session = session;
    c->sequence = sequence;
    c->first_incomplete = first_incomplete;
    struct rk_bytes b = pack_request(&c->base);
    raftkv__kv__request__free_unpacked(c, NULL);
    return b;
}

static inline struct rk_bytes cmd_range(ProtobufCBinaryData key, ProtobufCBinaryData end,
                                        uint64_t limit)
{
    Raftkv__Kv__Range range = RAFTKV__KV__RANGE__INIT;
    Raftkv__Kv__Request c = RAFTKV__KV__REQUEST__INIT;
    range.key = key;
    range.range_end = end;
    range.limit = limit;
    c.op_case = RAFTKV__KV__REQUEST__OP_RANGE;
    c.range = &range;
    return pack_request(&c.base);
}

/* A read (cmd, consumed) as the node serves it: prepare, then query. NULL when prepare did
 * not make it a read or query failed. */
static inline Raftkv__Kv__Response *fsm_read(struct raftkv_fsm *fsm, struct rk_bytes cmd)
{
    struct raftkv_prepared p;
    int rc = fsm->ops->prepare(fsm, cmd.data, cmd.len, &p);
    free(cmd.data);
    if (rc || p.kind != RAFTKV_PREPARE_READ)
        return NULL;
    struct raftkv_buf out = {NULL, 0};
    rc = fsm->ops->query(fsm, p.read, &out);
    fsm->ops->read_free(fsm, p.read);
    Raftkv__Kv__Response *resp = rc ? NULL : raftkv__kv__response__unpack(NULL, out.len, out.data);
    free(out.data);
    return resp;
}

/* A range's answer as text, "key=value@create/mod ..." then " +more" when more is set,
 * into buf (printable keys and values assumed); "(no answer)" for NULL. Frees resp. */
static inline const char *range_text(Raftkv__Kv__Response *resp, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    if (!resp)
        return "(no answer)";
    for (size_t i = 0; i < resp->n_kvs && n < size; i++) {
        const Raftkv__Kv__KeyValue *kv = resp->kvs[i];
        n += (size_t)snprintf(buf + n, size - n, "%s%.*s=%.*s@%llu/%llu", i ? " " : "",
                              (int)kv->key.len, (const char *)kv->key.data, (int)kv->value.len,
                              (const char *)kv->value.data, (unsigned long long)kv->create_revision,
                              (unsigned long long)kv->mod_revision);
    }
    if (resp->more && n < size)
        snprintf(buf + n, size - n, " +more");
    raftkv__kv__response__free_unpacked(resp, NULL);
    return buf;
}

/* What the node does for a store in its environment: tells it how each batch ended (fsm.h,
 * batch_end), so that an aborted batch is undone. */
static inline void kv_batch_end_cb(void *kv, bool committed)
{
    rk_kv_batch_end(kv, committed);
}

static inline void fsm_batch_end_cb(void *fsm, bool committed)
{
    struct raftkv_fsm *f = fsm;
    f->ops->batch_end(f, committed);
}

static inline bool bytes_eq(ProtobufCBinaryData b, const char *s)
{
    return b.len == strlen(s) && (b.len == 0 || memcmp(b.data, s, b.len) == 0);
}

/* A snapshot in memory: membuf_emit appends, membuf_read reads from pos. */
struct membuf {
    uint8_t *data;
    size_t len, cap;
    size_t pos; /* read position */
};

static inline int membuf_emit(void *arg, const void *data, size_t len)
{
    struct membuf *m = arg;
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + len)
            cap *= 2;
        uint8_t *d = realloc(m->data, cap);
        if (!d)
            return -1;
        m->data = d;
        m->cap = cap;
    }
    memcpy(m->data + m->len, data, len);
    m->len += len;
    return 0;
}

/* Hands out at most 1000 bytes a call, so reads cross every boundary of the format. */
static inline int membuf_read(void *arg, void *buf, size_t cap, size_t *n)
{
    struct membuf *m = arg;
    size_t left = m->len - m->pos;
    *n = left < cap ? left : cap;
    if (*n > 1000)
        *n = 1000;
    memcpy(buf, m->data + m->pos, *n);
    m->pos += *n;
    return 0;
}

#endif
