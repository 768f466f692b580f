/*
 * libFuzzer: bytes off the client port. The node's envelope is decoded, and the state
 * machine request inside it (or the input itself, when it is no envelope) goes through
 * the KV store's prepare, as the node does before proposing or reading.
 */
#include <stddef.h>
#include <stdint.h>

#include "client.pb-c.h"
#include "fuzz_store.h"
#include "kv.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void prepare(struct rk_kv *kv, const uint8_t *req, size_t len)
{
    struct raftkv_prepared p;
    if (rk_kv_prepare(kv, req, len, &p) == 0 && p.kind == RAFTKV_PREPARE_READ)
        raftkv__kv__request__free_unpacked(p.read, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rk_db *db;
    struct rk_kv *kv = fuzz_store(&db);
    Raftkv__Client__Request *env = raftkv__client__request__unpack(NULL, size, data);
    if (env && env->body_case == RAFTKV__CLIENT__REQUEST__BODY_FSM)
        prepare(kv, env->fsm.data, env->fsm.len);
    else
        prepare(kv, data, size);
    if (env)
        raftkv__client__request__free_unpacked(env, NULL);
    return 0;
}
