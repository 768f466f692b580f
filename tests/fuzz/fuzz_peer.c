/*
 * libFuzzer: bytes off the peer port, through the codec, into a Raft core. Whatever decodes
 * is stepped into a fresh three-voter core holding a short log, and the core is run
 * through one ready: nothing may crash, assert or leak (the core refuses what is malformed).
 */
#include <stddef.h>
#include <stdint.h>

#include "raftkv/raft.h"
#include "transport/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct raft *core_with_log(void)
{
    static char unknown[] = "";
    static struct raft_member members[] = {
        {.id = 1, .role = RAFT_VOTER, .peer_address = unknown, .client_address = unknown},
        {.id = 2, .role = RAFT_VOTER, .peer_address = unknown, .client_address = unknown},
        {.id = 3, .role = RAFT_VOTER, .peer_address = unknown, .client_address = unknown},
    };
    static const struct raft_entry entries[] = {
        {.term = 1, .index = 1, .type = RAFT_ENTRY_NORMAL},
        {.term = 1, .index = 2, .type = RAFT_ENTRY_NORMAL},
        {.term = 2, .index = 3, .type = RAFT_ENTRY_NORMAL},
    };
    struct raft_config cfg;
    raft_config_defaults(&cfg);
    cfg.id = 1;
    cfg.bootstrap = (struct raft_configuration){.n = 3, .members = members};
    struct raft_restore rs = {.term = 2, .vote = 2, .n_entries = 3, .entries = entries};
    struct raft *r = NULL;
    return raft_new(&cfg, &rs, &r) == RAFT_OK ? r : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct raft_msg msg;
    if (rk_codec_decode(data, size, 1, &msg, NULL) != RK_CODEC_OK)
        return 0;
    struct raft *r = core_with_log();
    if (r) {
        raft_step(r, &msg);
        struct raft_ready rd;
        raft_ready(r, &rd);
        raft_advance(r, &rd);
        raft_free(r);
    }
    raft_msg_free(&msg);
    return 0;
}
