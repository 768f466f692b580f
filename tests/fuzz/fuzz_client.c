/*
 * libFuzzer: bytes off the client port. The node's envelope is decoded, and the state
 * machine request inside it (or the input itself, when it is no envelope) goes through
 * the KV store's prepare, as the node does before proposing or reading; a read (a get, a
 * range) is then answered by query, as the node does after its ReadIndex round.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "client.pb-c.h"
#include "fuzz_store.h"
#include "kv.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void serve(struct rk_kv *kv, const uint8_t *req, size_t len)
{
    struct raftkv_fsm *fsm = &kv->base;
    struct raftkv_prepared p;
    if (fsm->ops->prepare(fsm, req, len, &p) != 0 || p.kind != RAFTKV_PREPARE_READ)
        return;
    struct raftkv_buf answer = {NULL, 0};
    if (fsm->ops->query(fsm, p.read, &answer) != 0)
        abort(); /* a read of a healthy store always has an answer */
    free(answer.data);
    fsm->ops->read_free(fsm, p.read);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rk_db *db;
    struct rk_kv *kv = fuzz_store(&db);
    Raftkv__Client__Request *env = raftkv__client__request__unpack(NULL, size, data);
    if (env && env->body_case == RAFTKV__CLIENT__REQUEST__BODY_FSM)
        serve(kv, env->fsm.data, env->fsm.len);
    else
        serve(kv, data, size);
    if (env)
        raftkv__client__request__free_unpacked(env, NULL);
    return 0;
}
