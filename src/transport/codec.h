/* Encoding of raft_msg as a raft.proto Envelope, the only thing peers exchange. */
#ifndef RAFTKV_CODEC_H
#define RAFTKV_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "raftkv/raft.h"

#define RK_WIRE_VERSION 1

/* Packs msg into a malloc'd buffer; from_address (may be NULL) is the sender's peer
 * address, at most RAFT_MAX_ADDRESS bytes. */
int rk_codec_encode(const struct raft_msg *msg, uint64_t cluster_id, const char *from_address,
                    uint8_t **out, size_t *out_len);

enum rk_codec_err {
    RK_CODEC_OK = 0,
    /* Not a valid Envelope, no message inside, or a snapshot's configuration the core would
     * refuse (raft_configuration_is_valid). */
    RK_CODEC_EMALFORMED,
    RK_CODEC_EVERSION, /* a wire version this node does not speak */
    RK_CODEC_ECLUSTER, /* from another cluster */
    RK_CODEC_ENOMEM,
};

/* Unpacks an Envelope into msg (allocations freed by raft_msg_free), and the sender's
 * address into from_address (RAFT_MAX_ADDRESS + 1 bytes; "" when the envelope has none),
 * unless it is NULL. An address over RAFT_MAX_ADDRESS bytes is malformed. */
int rk_codec_decode(const uint8_t *buf, size_t len, uint64_t cluster_id, struct raft_msg *msg,
                    char *from_address);

#endif
