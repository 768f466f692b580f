/* Messages and names: the parts of the core's API that hold no state. */
#include <stdlib.h>
#include <string.h>

#include "raftkv/raft.h"

const char *raft_strerror(int err)
{
    switch (err) {
    case RAFT_OK:
        return "ok";
    case RAFT_ENOMEM:
        return "out of memory";
    case RAFT_EINVAL:
        return "invalid argument";
    case RAFT_ENOTLEADER:
        return "not the leader";
    case RAFT_ETOOBIG:
        return "proposal too large";
    case RAFT_ECORRUPT:
        return "inconsistent restored state";
    case RAFT_ERANGE:
        return "term out of range";
    case RAFT_ECONFLICT:
        return "contradicts committed history or this node's own messages";
    case RAFT_EBUSY:
        return "a membership change or leadership transfer is under way";
    case RAFT_EEXIST:
        return "member exists";
    case RAFT_ENOTFOUND:
        return "no such member";
    case RAFT_EBEHIND:
        return "learner too far behind the leader's log";
    }
    return "unknown error";
}

const char *raft_role_name(enum raft_role role)
{
    switch (role) {
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_PRE_CANDIDATE:
        return "pre-candidate";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    }
    return "unknown";
}

const char *raft_msg_type_name(enum raft_msg_type type)
{
    switch (type) {
    case RAFT_MSG_REQUEST_VOTE:
        return "RequestVote";
    case RAFT_MSG_REQUEST_VOTE_RESP:
        return "RequestVoteResponse";
    case RAFT_MSG_APPEND:
        return "AppendEntries";
    case RAFT_MSG_APPEND_RESP:
        return "AppendEntriesResponse";
    case RAFT_MSG_INSTALL_SNAPSHOT:
        return "InstallSnapshot";
    case RAFT_MSG_INSTALL_SNAPSHOT_RESP:
        return "InstallSnapshotResponse";
    case RAFT_MSG_TIMEOUT_NOW:
        return "TimeoutNow";
    }
    return "unknown";
}

static void *memdup_or_null(const void *src, size_t len, bool *failed)
{
    if (len == 0)
        return NULL;
    void *p = malloc(len);
    if (!p)
        *failed = true;
    else
        memcpy(p, src, len);
    return p;
}

int raft_msg_copy(struct raft_msg *dst, const struct raft_msg *src)
{
    bool failed = false;
    *dst = *src;
    if (src->type == RAFT_MSG_APPEND) {
        const struct raft_append *a = &src->append;
        dst->append.entries =
            memdup_or_null(a->entries, a->n_entries * sizeof *a->entries, &failed);
        if (failed)
            dst->append.n_entries = 0;
        for (size_t i = 0; i < dst->append.n_entries; i++) {
            dst->append.entries[i].data =
                memdup_or_null(a->entries[i].data, a->entries[i].len, &failed);
            if (failed) {
                dst->append.n_entries = i; /* raft_msg_free releases only the copies made */
                break;
            }
        }
    } else if (src->type == RAFT_MSG_INSTALL_SNAPSHOT) {
        const struct raft_install_snapshot *s = &src->install_snapshot;
        /* A chunk the core asks the host to fill has no data yet. */
        dst->install_snapshot.data = s->data ? memdup_or_null(s->data, s->len, &failed) : NULL;
        if (raft_configuration_copy(&dst->install_snapshot.conf, &s->conf) != RAFT_OK) {
            dst->install_snapshot.conf = (struct raft_configuration){0};
            failed = true;
        }
    }
    if (failed) {
        raft_msg_free(dst);
        return RAFT_ENOMEM;
    }
    return RAFT_OK;
}

void raft_msg_free(struct raft_msg *msg)
{
    if (msg->type == RAFT_MSG_APPEND) {
        for (size_t i = 0; i < msg->append.n_entries; i++)
            free(msg->append.entries[i].data);
        free(msg->append.entries);
        msg->append.entries = NULL;
        msg->append.n_entries = 0;
    } else if (msg->type == RAFT_MSG_INSTALL_SNAPSHOT) {
        raft_configuration_free(&msg->install_snapshot.conf);
        free(msg->install_snapshot.data);
        msg->install_snapshot.data = NULL;
    }
}
