/*
 * libFuzzer: a snapshot stream as a follower receives it, restored into the KV store
 * inside a batch transaction. A malformed stream must be refused (RK_KV_ESNAPSHOT) and
 * leave the store as it was; nothing may crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input {
    struct rk_kv *kv;
    const uint8_t *data;
    size_t size, pos;
};

static int read_input(void *arg, void *buf, size_t cap, size_t *n)
{
    struct input *in = arg;
    size_t left = in->size - in->pos;
    *n = left < cap ? left : cap;
    memcpy(buf, in->data + in->pos, *n);
    in->pos += *n;
    return 0;
}

static int restore(MDB_txn *txn, void *arg)
{
    struct input *in = arg;
    in->pos = 0; /* a rerun after the map grew reads from the start */
    /* The index the stream must name: its own header's, when it has one, so that
     * well-formed inputs get past the header check. */
    raft_index index = in->size >= 24 ? rk_db_decode_u64(in->data + 16) : 1;
    return rk_kv_restore(in->kv, txn, index ? index : 1, read_input, in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rk_db *db;
    struct input in = {.kv = fuzz_store(&db), .data = data, .size = size};
    rk_db_write(db, restore, &in);
    return 0;
}
