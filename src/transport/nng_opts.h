/* Settings shared by the transport's NNG sockets. Internal to src/transport. */
#ifndef RAFTKV_NNG_OPTS_H
#define RAFTKV_NNG_OPTS_H

#include <stddef.h>

#include <nng/nng.h>

#include "raftkv/raft.h"

#define RK_DEFAULT_MAX_MSG_BYTES ((size_t)64 << 20)

/* The limit NNG_OPT_RECVMAXSZ is set to: max_msg_bytes, or the default when it is 0. */
static inline size_t rk_nng_max_msg_bytes(size_t max_msg_bytes)
{
    return max_msg_bytes ? max_msg_bytes : RK_DEFAULT_MAX_MSG_BYTES;
}

/* An NNG error as the raft_err the transport API returns. */
static inline int rk_nng_err(int nng_rv)
{
    return nng_rv == 0 ? RAFT_OK : nng_rv == NNG_ENOMEM ? RAFT_ENOMEM : RAFT_EINVAL;
}

#endif
