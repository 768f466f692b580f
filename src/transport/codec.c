/* raft_msg <-> raft.proto Envelope. Encoding borrows the message's buffers; decoding copies
 * into allocations that raft_msg_free releases, so nothing protobuf-c owns escapes. */
#include <stdlib.h>
#include <string.h>

#include "raft.pb-c.h"
#include "transport/codec.h"

/* Everything an Envelope of any type points to, so encoding needs no allocation beyond
 * the entry arrays of an AppendEntries and the member arrays of an InstallSnapshot. */
struct envelope_parts {
    Raftkv__Raft__Envelope env;
    Raftkv__Raft__RequestVote rv;
    Raftkv__Raft__RequestVoteResponse rvr;
    Raftkv__Raft__AppendEntries ae;
    Raftkv__Raft__AppendEntriesResponse aer;
    Raftkv__Raft__InstallSnapshot is;
    Raftkv__Raft__Configuration conf;
    Raftkv__Raft__InstallSnapshotResponse isr;
    Raftkv__Raft__TimeoutNow tn;
    Raftkv__Raft__Entry *entries;
    Raftkv__Raft__Entry **entry_ptrs;
    Raftkv__Raft__Member *members;
    Raftkv__Raft__Member **member_ptrs;
};

static int fill_append(struct envelope_parts *p, const struct raft_append *a, raft_term term)
{
    raftkv__raft__append_entries__init(&p->ae);
    p->env.append_entries = &p->ae;
    p->ae.term = term;
    p->ae.prev_log_index = a->prev_index;
    p->ae.prev_log_term = a->prev_term;
    p->ae.leader_commit = a->commit;
    p->ae.context = a->context;
    if (a->n_entries == 0)
        return RK_CODEC_OK;
    p->entries = calloc(a->n_entries, sizeof *p->entries);
    p->entry_ptrs = calloc(a->n_entries, sizeof *p->entry_ptrs);
    if (!p->entries || !p->entry_ptrs)
        return RK_CODEC_ENOMEM;
    for (size_t i = 0; i < a->n_entries; i++) {
        const struct raft_entry *e = &a->entries[i];
        Raftkv__Raft__Entry *pe = &p->entries[i];
        raftkv__raft__entry__init(pe);
        pe->term = e->term;
        pe->index = e->index;
        pe->type = (Raftkv__Raft__EntryType)e->type;
        pe->data.len = e->len;
        pe->data.data = e->data;
        p->entry_ptrs[i] = pe;
    }
    p->ae.n_entries = a->n_entries;
    p->ae.entries = p->entry_ptrs;
    return RK_CODEC_OK;
}

/* protobuf-c wants char *, though packing only reads; NULL is sent as "" ("unknown"). */
static char *wire_string(const char *s)
{
    return s ? (char *)s : "";
}

static int fill_configuration(struct envelope_parts *p, const struct raft_configuration *conf)
{
    raftkv__raft__configuration__init(&p->conf);
    if (conf->n == 0)
        return RK_CODEC_OK;
    p->members = calloc(conf->n, sizeof *p->members);
    p->member_ptrs = calloc(conf->n, sizeof *p->member_ptrs);
    if (!p->members || !p->member_ptrs)
        return RK_CODEC_ENOMEM;
    for (size_t i = 0; i < conf->n; i++) {
        const struct raft_member *m = &conf->members[i];
        Raftkv__Raft__Member *pm = &p->members[i];
        raftkv__raft__member__init(pm);
        pm->id = m->id;
        pm->learner = m->role == RAFT_LEARNER;
        pm->peer_address = wire_string(m->peer_address);
        pm->client_address = wire_string(m->client_address);
        p->member_ptrs[i] = pm;
    }
    p->conf.n_members = conf->n;
    p->conf.members = p->member_ptrs;
    return RK_CODEC_OK;
}

static int fill_install_snapshot(struct envelope_parts *p, const struct raft_install_snapshot *s,
                                 raft_term term)
{
    raftkv__raft__install_snapshot__init(&p->is);
    p->is.term = term;
    p->is.last_included_index = s->last_index;
    p->is.last_included_term = s->last_term;
    p->is.configuration = &p->conf;
    p->is.offset = s->offset;
    p->is.data.len = s->len;
    p->is.data.data = s->data;
    p->is.done = s->done;
    p->env.install_snapshot = &p->is;
    return fill_configuration(p, &s->conf);
}

static int fill_envelope(struct envelope_parts *p, const struct raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_REQUEST_VOTE:
        raftkv__raft__request_vote__init(&p->rv);
        p->rv.term = m->term;
        p->rv.last_log_index = m->request_vote.last_log_index;
        p->rv.last_log_term = m->request_vote.last_log_term;
        p->rv.pre_vote = m->request_vote.pre_vote;
        p->rv.transfer = m->request_vote.transfer;
        p->env.msg_case = RAFTKV__RAFT__ENVELOPE__MSG_REQUEST_VOTE;
        p->env.request_vote = &p->rv;
        return RK_CODEC_OK;
    case RAFT_MSG_REQUEST_VOTE_RESP:
        raftkv__raft__request_vote_response__init(&p->rvr);
        p->rvr.term = m->term;
        p->rvr.granted = m->request_vote_resp.granted;
        p->rvr.pre_vote = m->request_vote_resp.pre_vote;
        p->env.msg_case = RAFTKV__RAFT__ENVELOPE__MSG_REQUEST_VOTE_RESPONSE;
        p->env.request_vote_response = &p->rvr;
        return RK_CODEC_OK;
    case RAFT_MSG_APPEND:
        p->env.msg_case = RAFTKV__RAFT__ENVELOPE__MSG_APPEND_ENTRIES;
        return fill_append(p, &m->append, m->term);
    case RAFT_MSG_APPEND_RESP:
        raftkv__raft__append_entries_response__init(&p->aer);
        p->aer.term = m->term;
        p->aer.success = m->append_resp.success;
        p->aer.index = m->append_resp.index;
        p->aer.conflict_term = m->append_resp.conflict_term;
        p->aer.conflict_index = m->append_resp.conflict_index;
        p->aer.last_log_index = m->append_resp.last_index;
        p->aer.context = m->append_resp.context;
        p->env.msg_case = RAFTKV__RAFT__ENVELOPE__MSG_APPEND_ENTRIES_RESPONSE;
        p->env.append_entries_response = &p->aer;
        return RK_CODEC_OK;
    case RAFT_MSG_INSTALL_SNAPSHOT:
        p->env.msg_case = RAFTKV__RAFT__ENVELOPE__MSG_INSTALL_SNAPSHOT;
        return fill_install_snapshot(p, &m->install_snapshot, m->term);
    case RAFT_MSG_INSTALL_SNAPSHOT_RESP:
        raftkv__raft__install_snapshot_response__init(&p->isr);
        p->isr.term = m->term;
        p->isr.last_included_index = m->install_snapshot_resp.last_index;
        p->isr.offset = m->install_snapshot_resp.offset;
        p->isr.done = m->install_snapshot_resp.done;
        p->isr.rejected = m->install_snapshot_resp.rejected;
        p->env.msg_case = RAFTKV__RAFT__ENVELOPE__MSG_INSTALL_SNAPSHOT_RESPONSE;
        p->env.install_snapshot_response = &p->isr;
        return RK_CODEC_OK;
    case RAFT_MSG_TIMEOUT_NOW:
        raftkv__raft__timeout_now__init(&p->tn);
        p->tn.term = m->term;
        p->env.msg_case = RAFTKV__RAFT__ENVELOPE__MSG_TIMEOUT_NOW;
        p->env.timeout_now = &p->tn;
        return RK_CODEC_OK;
    }
    return RK_CODEC_EMALFORMED;
}

int rk_codec_encode(const struct raft_msg *msg, uint64_t cluster_id, const char *from_address,
                    uint8_t **out, size_t *out_len)
{
    struct envelope_parts p = {0};
    raftkv__raft__envelope__init(&p.env);
    p.env.version = RK_WIRE_VERSION;
    p.env.cluster_id = cluster_id;
    p.env.from = msg->from;
    p.env.to = msg->to;
    if (from_address)
        p.env.from_address = (char *)from_address;
    int rc = fill_envelope(&p, msg);
    if (rc == RK_CODEC_OK) {
        size_t len = raftkv__raft__envelope__get_packed_size(&p.env);
        /* malloc(0) may return NULL; an Envelope is never empty but stay safe. */
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf) {
            rc = RK_CODEC_ENOMEM;
        } else {
            *out_len = raftkv__raft__envelope__pack(&p.env, buf);
            *out = buf;
        }
    }
    free(p.entries);
    free(p.entry_ptrs);
    free(p.members);
    free(p.member_ptrs);
    return rc;
}

static uint8_t *copy_bytes(const ProtobufCBinaryData *b, bool *failed)
{
    if (b->len == 0)
        return NULL;
    uint8_t *p = malloc(b->len);
    if (!p)
        *failed = true;
    else
        memcpy(p, b->data, b->len);
    return p;
}

static int decode_append(const Raftkv__Raft__AppendEntries *ae, struct raft_msg *m)
{
    m->term = ae->term;
    m->append.prev_index = ae->prev_log_index;
    m->append.prev_term = ae->prev_log_term;
    m->append.commit = ae->leader_commit;
    m->append.context = ae->context;
    for (size_t i = 0; i < ae->n_entries; i++) {
        Raftkv__Raft__EntryType type = ae->entries[i]->type;
        /* protobuf-c keeps unknown enum values as they came; the core must never see one. */
        if (type != RAFTKV__RAFT__ENTRY_TYPE__ENTRY_NORMAL &&
            type != RAFTKV__RAFT__ENTRY_TYPE__ENTRY_NOOP &&
            type != RAFTKV__RAFT__ENTRY_TYPE__ENTRY_CONFIG)
            return RK_CODEC_EMALFORMED;
    }
    if (ae->n_entries == 0)
        return RK_CODEC_OK;
    m->append.entries = calloc(ae->n_entries, sizeof *m->append.entries);
    if (!m->append.entries)
        return RK_CODEC_ENOMEM;
    bool failed = false;
    for (size_t i = 0; i < ae->n_entries && !failed; i++) {
        const Raftkv__Raft__Entry *pe = ae->entries[i];
        struct raft_entry *e = &m->append.entries[i];
        e->term = pe->term;
        e->index = pe->index;
        e->type = (enum raft_entry_type)pe->type;
        e->data = copy_bytes(&pe->data, &failed);
        e->len = e->data ? pe->data.len : 0;
        m->append.n_entries = i + 1; /* so raft_msg_free releases what was copied so far */
    }
    return failed ? RK_CODEC_ENOMEM : RK_CODEC_OK;
}

/* A copy of a wire string, "" for an absent one: decoded members never hold NULL. */
static char *copy_string(const char *s, bool *failed)
{
    char *p = strdup(s ? s : "");
    if (!p)
        *failed = true;
    return p;
}

/* Copies the members into conf (freeable by raft_configuration_free even when a copy
 * fails), then lets the core's own rules judge them: ids, addresses, size. */
static int decode_configuration(const Raftkv__Raft__Configuration *pc,
                                struct raft_configuration *conf)
{
    if (!pc || pc->n_members == 0)
        return RK_CODEC_OK;
    /* Checked before copying, so that a flood of members costs no more allocations. */
    if (pc->n_members > RAFT_MAX_MEMBERS)
        return RK_CODEC_EMALFORMED;
    conf->members = calloc(pc->n_members, sizeof *conf->members);
    if (!conf->members)
        return RK_CODEC_ENOMEM;
    bool failed = false;
    for (size_t i = 0; i < pc->n_members && !failed; i++) {
        const Raftkv__Raft__Member *pm = pc->members[i];
        struct raft_member *m = &conf->members[i];
        m->id = pm->id;
        m->role = pm->learner ? RAFT_LEARNER : RAFT_VOTER;
        m->peer_address = copy_string(pm->peer_address, &failed);
        m->client_address = copy_string(pm->client_address, &failed);
        conf->n = i + 1;
    }
    if (failed)
        return RK_CODEC_ENOMEM;
    return raft_configuration_is_valid(conf) ? RK_CODEC_OK : RK_CODEC_EMALFORMED;
}

static int decode_install_snapshot(const Raftkv__Raft__InstallSnapshot *is, struct raft_msg *m)
{
    struct raft_install_snapshot *s = &m->install_snapshot;
    m->term = is->term;
    s->last_index = is->last_included_index;
    s->last_term = is->last_included_term;
    s->offset = is->offset;
    s->done = is->done;
    int rc = decode_configuration(is->configuration, &s->conf);
    if (rc != RK_CODEC_OK)
        return rc;
    bool failed = false;
    s->data = copy_bytes(&is->data, &failed);
    s->len = s->data ? is->data.len : 0;
    return failed ? RK_CODEC_ENOMEM : RK_CODEC_OK;
}

static int decode_body(const Raftkv__Raft__Envelope *env, struct raft_msg *m)
{
    switch (env->msg_case) {
    case RAFTKV__RAFT__ENVELOPE__MSG_REQUEST_VOTE:
        m->type = RAFT_MSG_REQUEST_VOTE;
        m->term = env->request_vote->term;
        m->request_vote.last_log_index = env->request_vote->last_log_index;
        m->request_vote.last_log_term = env->request_vote->last_log_term;
        m->request_vote.pre_vote = env->request_vote->pre_vote;
        m->request_vote.transfer = env->request_vote->transfer;
        return RK_CODEC_OK;
    case RAFTKV__RAFT__ENVELOPE__MSG_REQUEST_VOTE_RESPONSE:
        m->type = RAFT_MSG_REQUEST_VOTE_RESP;
        m->term = env->request_vote_response->term;
        m->request_vote_resp.granted = env->request_vote_response->granted;
        m->request_vote_resp.pre_vote = env->request_vote_response->pre_vote;
        return RK_CODEC_OK;
    case RAFTKV__RAFT__ENVELOPE__MSG_APPEND_ENTRIES:
        m->type = RAFT_MSG_APPEND;
        return decode_append(env->append_entries, m);
    case RAFTKV__RAFT__ENVELOPE__MSG_APPEND_ENTRIES_RESPONSE: {
        const Raftkv__Raft__AppendEntriesResponse *r = env->append_entries_response;
        m->type = RAFT_MSG_APPEND_RESP;
        m->term = r->term;
        m->append_resp.success = r->success;
        m->append_resp.index = r->index;
        m->append_resp.conflict_term = r->conflict_term;
        m->append_resp.conflict_index = r->conflict_index;
        m->append_resp.last_index = r->last_log_index;
        m->append_resp.context = r->context;
        return RK_CODEC_OK;
    }
    case RAFTKV__RAFT__ENVELOPE__MSG_INSTALL_SNAPSHOT:
        m->type = RAFT_MSG_INSTALL_SNAPSHOT;
        return decode_install_snapshot(env->install_snapshot, m);
    case RAFTKV__RAFT__ENVELOPE__MSG_INSTALL_SNAPSHOT_RESPONSE: {
        const Raftkv__Raft__InstallSnapshotResponse *r = env->install_snapshot_response;
        m->type = RAFT_MSG_INSTALL_SNAPSHOT_RESP;
        m->term = r->term;
        m->install_snapshot_resp.last_index = r->last_included_index;
        m->install_snapshot_resp.offset = r->offset;
        m->install_snapshot_resp.done = r->done;
        m->install_snapshot_resp.rejected = r->rejected;
        return RK_CODEC_OK;
    }
    case RAFTKV__RAFT__ENVELOPE__MSG_TIMEOUT_NOW:
        m->type = RAFT_MSG_TIMEOUT_NOW;
        m->term = env->timeout_now->term;
        return RK_CODEC_OK;
    default:
        return RK_CODEC_EMALFORMED;
    }
}

int rk_codec_decode(const uint8_t *buf, size_t len, uint64_t cluster_id, struct raft_msg *msg,
                    char *from_address)
{
    /* protobuf-c reports allocation failure and bad input alike as NULL. */
    Raftkv__Raft__Envelope *env = raftkv__raft__envelope__unpack(NULL, len, buf);
    if (!env)
        return RK_CODEC_EMALFORMED;
    int rc = RK_CODEC_OK;
    if (env->version != RK_WIRE_VERSION)
        rc = RK_CODEC_EVERSION;
    else if (env->cluster_id != cluster_id)
        rc = RK_CODEC_ECLUSTER;
    else if (strlen(env->from_address) > RAFT_MAX_ADDRESS)
        rc = RK_CODEC_EMALFORMED;
    if (rc == RK_CODEC_OK && from_address)
        strcpy(from_address, env->from_address);
    if (rc == RK_CODEC_OK) {
        memset(msg, 0, sizeof *msg);
        msg->from = env->from;
        msg->to = env->to;
        rc = decode_body(env, msg);
        if (rc != RK_CODEC_OK) {
            raft_msg_free(msg);
            memset(msg, 0, sizeof *msg);
        }
    }
    raftkv__raft__envelope__free_unpacked(env, NULL);
    return rc;
}
