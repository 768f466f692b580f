/*
 * libFuzzer: bytes off the client port. The node's envelope is decoded, and the state
 * machine request inside it (or the input itself, when it is no envelope) goes through
 * the KV store's prepare, as the node does before proposing or reading; a read (a get, a
 * range) is then answered by query, as the node does after its ReadIndex round.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client.pb-c.h"
#include "fuzz_store.h"
#include "kv.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int key_cmp(ProtobufCBinaryData a, ProtobufCBinaryData b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.data, b.data, n) : 0;
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

/* A range's answer holds client keys of the range only, in order, within the limit. */
static void range_check(const Raftkv__Kv__Range *range, struct raftkv_buf answer)
{
    Raftkv__Kv__Response *a = raftkv__kv__response__unpack(NULL, answer.len, answer.data);
    if (!a || a->n_kvs > RK_KV_RANGE_MAX_KEYS || (range->limit && a->n_kvs > range->limit))
        abort();
    for (size_t i = 0; i < a->n_kvs; i++) {
        ProtobufCBinaryData k = a->kvs[i]->key;
        if (!k.len || k.data[0] == 0 || key_cmp(k, range->key) < 0 ||
            (range->range_end.len && key_cmp(k, range->range_end) >= 0) ||
            (i && key_cmp(a->kvs[i - 1]->key, k) >= 0))
            abort();
    }
    raftkv__kv__response__free_unpacked(a, NULL);
}

static void serve(struct rk_kv *kv, const uint8_t *req, size_t len)
{
    struct raftkv_fsm *fsm = &kv->base;
    struct raftkv_prepared p;
    if (fsm->ops->prepare(fsm, req, len, &p) != 0 || p.kind != RAFTKV_PREPARE_READ)
        return;
    struct raftkv_buf answer = {NULL, 0};
    if (fsm->ops->query(fsm, p.read, &answer) != 0)
        abort(); /* a read of a healthy store always has an answer */
    const Raftkv__Kv__Request *r = p.read;
    if (r->op_case == RAFTKV__KV__REQUEST__OP_RANGE)
        range_check(r->range, answer);
    free(answer.data);
    fsm->ops->read_free(fsm, p.read);
}

/* Keys for the reads to find: stored ones, a session's (reserved), and, in the overlay
 * over them, writes and deletes not stored yet. */
static int fill(MDB_txn *txn, void *arg)
{
    static const char *const puts[] = {"a", "b/1", "b/2", "b/3", "\x7f", "\x80x", "\xff\xff"};
    struct rk_kv *kv = arg;
    raft_index index = 0;
    int rc = 0;
    for (size_t i = 0; !rc && i < sizeof puts / sizeof puts[0] + 3; i++) {
        Raftkv__Kv__Put put = RAFTKV__KV__PUT__INIT;
        Raftkv__Kv__Delete del = RAFTKV__KV__DELETE__INIT;
        Raftkv__Kv__RegisterSession reg = RAFTKV__KV__REGISTER_SESSION__INIT;
        Raftkv__Kv__Request req = RAFTKV__KV__REQUEST__INIT;
        size_t n = sizeof puts / sizeof puts[0];
        const char *key = i < n ? puts[i] : i == n ? NULL : "b/2";
        put.key = del.key = (ProtobufCBinaryData){key ? strlen(key) : 0, (uint8_t *)key};
        put.value = put.key;
        if (!key) {
            req.op_case = RAFTKV__KV__REQUEST__OP_REGISTER_SESSION;
            req.register_session = &reg;
        } else if (i > n) {
            req.op_case = RAFTKV__KV__REQUEST__OP_DELETE;
            req.delete_ = &del;
        } else {
            req.op_case = RAFTKV__KV__REQUEST__OP_PUT;
            req.put = &put;
        }
        uint8_t buf[64];
        struct raft_entry e = {.term = 1,
                               .index = ++index,
                               .type = RAFT_ENTRY_NORMAL,
                               .len = raftkv__kv__request__pack(&req, buf),
                               .data = buf};
        struct rk_bytes resp, change;
        rc = rk_kv_apply(kv, txn, &e, &resp, &change);
        rk_bytes_free(&resp);
        rk_bytes_free(&change);
        if (!rc && i == 3)
            rc = rk_kv_persist(kv, txn);
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rk_db *db;
    struct rk_kv *kv = fuzz_store(&db);
    static bool filled;
    if (!filled && rk_db_write(db, fill, kv) != 0)
        abort();
    filled = true;
    Raftkv__Client__Request *env = raftkv__client__request__unpack(NULL, size, data);
    if (env && env->body_case == RAFTKV__CLIENT__REQUEST__BODY_FSM)
        serve(kv, env->fsm.data, env->fsm.len);
    else
        serve(kv, data, size);
    if (env)
        raftkv__client__request__free_unpacked(env, NULL);
    return 0;
}
