/*
 * The members: the node's address book follows the latest configuration in the log (Raft
 * dissertation §4.1), the member requests of client.proto change it one server at a time,
 * and a stopping leader hands its leadership over (§3.10) before it goes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.pb-c.h"
#include "log/log.h"
#include "node/config.h"
#include "node/node_internal.h"
#include "transport/transport.h"

/* How long a stopping leader waits for its successor, and a transfer for its outcome, in
 * election timeouts. */
#define HAND_OFF_TIMEOUTS 2

int members__bootstrap(struct rk_node *n, struct raft_configuration *conf)
{
    const struct rk_config *cfg = n->cfg;
    *conf = (struct raft_configuration){0};
    if (cfg->join)
        return RAFT_OK;
    conf->members = calloc(cfg->n_members, sizeof *conf->members);
    if (!conf->members)
        return RAFT_ENOMEM;
    for (size_t i = 0; i < cfg->n_members; i++) {
        const struct rk_member *m = &cfg->members[i];
        conf->members[i] = (struct raft_member){
            .id = m->id,
            .role = RAFT_VOTER,
            .peer_address = m->peer_url,
            .client_address = m->client_url ? m->client_url : "",
        };
    }
    conf->n = cfg->n_members;
    return RAFT_OK;
}

/* Adds the members of conf but this node to peers, once per id. */
static void peers_add(struct rk_node *n, const struct raft_configuration *conf,
                      struct rk_peer *peers, size_t *n_peers)
{
    for (size_t i = 0; i < conf->n; i++) {
        const struct raft_member *m = &conf->members[i];
        bool known = m->id == n->cfg->node_id || !m->peer_address[0];
        for (size_t j = 0; j < *n_peers && !known; j++)
            known = peers[j].id == m->id;
        if (!known)
            peers[(*n_peers)++] = (struct rk_peer){m->id, m->peer_address};
    }
}

int members__peers(struct rk_node *n, const struct raft_configuration *latest,
                   struct rk_peer **peers, size_t *n_peers)
{
    const struct rk_config *cfg = n->cfg;
    const struct raft_configuration *committed = &n->committed_conf;
    size_t cap = latest->n + committed->n + n->n_heard + cfg->n_members;
    *n_peers = 0;
    *peers = calloc(cap ? cap : 1, sizeof **peers);
    if (!*peers)
        return RAFT_ENOMEM;
    peers_add(n, latest, *peers, n_peers);
    peers_add(n, committed, *peers, n_peers);
    if (latest->n || committed->n)
        return RAFT_OK;
    /* A joining node knows no configuration yet: the file says where the cluster is, and
     * the leader that contacts it where it is. */
    for (size_t i = 0; i < n->n_heard; i++)
        (*peers)[(*n_peers)++] = (struct rk_peer){n->heard[i].id, n->heard[i].url};
    for (size_t i = 0; i < cfg->n_members; i++) {
        bool known = cfg->members[i].id == cfg->node_id;
        for (size_t j = 0; j < n->n_heard && !known; j++)
            known = n->heard[j].id == cfg->members[i].id;
        if (!known)
            (*peers)[(*n_peers)++] = (struct rk_peer){cfg->members[i].id, cfg->members[i].peer_url};
    }
    return RAFT_OK;
}

static void log_configuration(struct rk_node *n, const struct raft_ready *rd)
{
    char line[512];
    size_t used = 0;
    line[0] = '\0';
    for (size_t i = 0; i < rd->configuration->n && used < sizeof line; i++) {
        const struct raft_member *m = &rd->configuration->members[i];
        int w = snprintf(line + used, sizeof line - used, "%s%" PRIu64 " (%s)", i ? ", " : "",
                         m->id, raft_member_role_name(m->role));
        used += w > 0 ? (size_t)w : 0;
    }
    bool member = raft_configuration_find(rd->configuration, n->cfg->node_id) != NULL;
    rk_info("membership at index %" PRIu64 "%s: %s%s", rd->configuration_index,
            rd->configuration_index > rd->commit ? " (not committed yet)" : "",
            rd->configuration->n ? line : "none known",
            member || !rd->configuration->n ? "" : "; this node is not a member");
}

static void address_book_follow(struct rk_node *n, const struct raft_configuration *latest)
{
    struct rk_peer *peers;
    size_t n_peers;
    int rc = members__peers(n, latest, &peers, &n_peers);
    if (rc == RAFT_OK)
        rc = rk_transport_set_peers(n->transport, peers, n_peers);
    if (rc != RAFT_OK)
        rk_error("cannot follow the new membership (%d): peers it added stay unreachable until "
                 "the next change or a restart",
                 rc);
    free(peers);
}

void members__heard_from(struct rk_node *n, raft_id id, const char *address)
{
    const struct raft_configuration *latest = raft_configuration_of(n->raft, NULL);
    if (latest->n || n->committed_conf.n || !address[0] || id == 0 || id == n->cfg->node_id)
        return;
    size_t i = 0;
    while (i < n->n_heard && n->heard[i].id != id)
        i++;
    if (i < n->n_heard && strcmp(n->heard[i].url, address) == 0)
        return;
    if (i == RAFT_MAX_MEMBERS)
        return; /* bounded: a joining node hears from a leader or two */
    n->n_heard += i == n->n_heard;
    n->heard[i].id = id;
    snprintf(n->heard[i].url, sizeof n->heard[i].url, "%s", address);
    rk_info("heard from %" PRIu64 " at %s: answering it there until the membership is known",
            (uint64_t)id, address);
    address_book_follow(n, latest);
}

void members__changed(struct rk_node *n, const struct raft_ready *rd)
{
    log_configuration(n, rd);
    address_book_follow(n, rd->configuration);
}

int members__commit_moved(struct rk_node *n)
{
    const struct raft_configuration *at = raft_configuration_at(n->raft, raft_commit_of(n->raft));
    if (!at || raft_configuration_equal(at, &n->committed_conf))
        return RAFT_OK;
    struct raft_configuration copy;
    int rc = raft_configuration_copy(&copy, at);
    if (rc != RAFT_OK)
        return rc;
    raft_configuration_free(&n->committed_conf);
    n->committed_conf = copy;
    if (n->transport)
        address_book_follow(n, raft_configuration_of(n->raft, NULL));
    return RAFT_OK;
}

const char *members__client_address(struct rk_node *n, raft_id id)
{
    const struct raft_member *m = raft_configuration_find(raft_configuration_of(n->raft, NULL), id);
    if (m && m->client_address[0])
        return m->client_address;
    const struct rk_member *f = rk_config_member(n->cfg, id);
    return f ? f->client_url : NULL;
}

bool members__alone(struct rk_node *n)
{
    const struct raft_configuration *conf = raft_configuration_of(n->raft, NULL);
    const struct raft_member *self = raft_configuration_find(conf, n->cfg->node_id);
    return raft_configuration_voters(conf) == 1 && self && self->role == RAFT_VOTER;
}

/* ---- Requests. ---- */

bool members__handles(const Raftkv__Client__Request *req)
{
    return req->body_case == RAFTKV__CLIENT__REQUEST__BODY_MEMBER_LIST ||
           req->body_case == RAFTKV__CLIENT__REQUEST__BODY_MEMBER_CHANGE ||
           req->body_case == RAFTKV__CLIENT__REQUEST__BODY_MOVE_LEADER;
}

void members__fill(struct rk_node *n, const struct raft_configuration *conf,
                   Raftkv__Client__Member *members, Raftkv__Client__Member **ptrs)
{
    for (size_t i = 0; i < conf->n; i++) {
        const struct raft_member *m = &conf->members[i];
        struct raft_member_progress pr = {0};
        bool known = raft_member_progress_of(n->raft, m->id, &pr) == RAFT_OK;
        Raftkv__Client__Member mm = RAFTKV__CLIENT__MEMBER__INIT;
        mm.id = m->id;
        mm.role = (char *)raft_member_role_name(m->role);
        mm.peer_address = m->peer_address;
        mm.client_address = m->client_address;
        mm.match_index = pr.match;
        mm.healthy = known && (m->id == n->cfg->node_id || pr.recent_active);
        members[i] = mm;
        ptrs[i] = &members[i];
    }
}

void members__reply_list(struct rk_node *n, struct rk_client_call *call)
{
    raft_index conf_index;
    const struct raft_configuration *conf = raft_configuration_of(n->raft, &conf_index);
    Raftkv__Client__Member *members = calloc(conf->n ? conf->n : 1, sizeof *members);
    Raftkv__Client__Member **ptrs = calloc(conf->n ? conf->n : 1, sizeof *ptrs);
    if (!members || !ptrs) {
        free(members);
        free(ptrs);
        clients__reply_error(n, call, RAFTKV__CLIENT__CODE__UNAVAILABLE, "out of memory");
        return;
    }
    members__fill(n, conf, members, ptrs);
    Raftkv__Client__MemberList list = RAFTKV__CLIENT__MEMBER_LIST__INIT;
    list.leader_id = raft_leader_of(n->raft);
    list.term = raft_term_of(n->raft);
    list.n_members = conf->n;
    list.members = ptrs;
    list.configuration_index = conf_index;
    list.committed = conf_index <= raft_commit_of(n->raft);
    list.last_log_index = raft_last_index_of(n->raft);
    Raftkv__Client__Response resp = RAFTKV__CLIENT__RESPONSE__INIT;
    resp.members = &list;
    clients__reply(n, call, &resp);
    free(members);
    free(ptrs);
}

/* A refusal from the core, as the client protocol says it: retry, or a request that cannot
 * succeed as it is. */
static void reply_refused(struct rk_node *n, struct rk_client_call *call, int rc)
{
    static const char *const why[] = {
        [RAFT_EBUSY] = "another membership change or a leadership transfer is under way, or "
                       "the new leader has not committed an entry yet: retry",
        [RAFT_EEXIST] = "a member with this id exists (or it is a voter already)",
        [RAFT_ENOTFOUND] = "no member with this id (or it is not a voter)",
        [RAFT_EBEHIND] = "the learner is too far behind the leader's log to be promoted yet: "
                         "retry once it has caught up (raft-kv member list)",
        [RAFT_EINVAL] = "refused: it would leave no voter, names this node, or an address is "
                        "too long",
    };
    if (rc == RAFT_ENOTLEADER) {
        clients__reply_not_leader(n, call);
        return;
    }
    bool retry = rc == RAFT_EBUSY || rc == RAFT_ENOMEM;
    const char *text =
        rc >= 0 && (size_t)rc < sizeof why / sizeof why[0] && why[rc] ? why[rc] : raft_strerror(rc);
    clients__reply_error(
        n, call, retry ? RAFTKV__CLIENT__CODE__UNAVAILABLE : RAFTKV__CLIENT__CODE__INVALID, text);
}

static void change(struct rk_node *n, struct rk_client_call *call,
                   const Raftkv__Client__MemberChangeRequest *c)
{
    raft_index index;
    raft_term term;
    int rc;
    switch (c->kind) {
    case RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__ADD_LEARNER: {
        struct raft_member m = {c->id, RAFT_LEARNER, c->peer_address, c->client_address};
        rc = c->peer_address[0] ? raft_add_learner(n->raft, &m, &index, &term) : RAFT_EINVAL;
        break;
    }
    case RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__PROMOTE:
        rc = raft_promote(n->raft, c->id, &index, &term);
        break;
    case RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__REMOVE:
        rc = raft_remove(n->raft, c->id, &index, &term);
        break;
    default:
        clients__reply_error(n, call, RAFTKV__CLIENT__CODE__INVALID, "unknown membership change");
        return;
    }
    if (rc != RAFT_OK) {
        reply_refused(n, call, rc);
        return;
    }
    rk_info("membership change proposed at index %" PRIu64 ": %s %" PRIu64, index,
            c->kind == RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__ADD_LEARNER ? "add learner"
            : c->kind == RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__PROMOTE   ? "promote"
                                                                                : "remove",
            (uint64_t)c->id);
    clients__await(n, index, term, call, true);
}

static void move_leader(struct rk_node *n, struct rk_client_call *call, raft_id target)
{
    if (n->moving) {
        reply_refused(n, call, RAFT_EBUSY);
        return;
    }
    int rc = raft_transfer_leadership(n->raft, target);
    if (rc != RAFT_OK) {
        reply_refused(n, call, rc);
        return;
    }
    n->moving = call;
    n->moving_to = raft_transferee_of(n->raft);
    n->moving_deadline = node__now();
    node__add_ms(&n->moving_deadline, HAND_OFF_TIMEOUTS * n->cfg->election_timeout_max_ms);
    rk_info("transferring the leadership to %" PRIu64, (uint64_t)n->moving_to);
}

void members__handle(struct rk_node *n, struct rk_client_call *call,
                     const Raftkv__Client__Request *req)
{
    if (raft_role_of(n->raft) != RAFT_LEADER) {
        clients__reply_not_leader(n, call);
        return;
    }
    if (req->body_case == RAFTKV__CLIENT__REQUEST__BODY_MEMBER_LIST)
        members__reply_list(n, call);
    else if (n->held || n->refusing_full)
        clients__reply_error(n, call, RAFTKV__CLIENT__CODE__UNAVAILABLE, "storage full");
    else if (req->body_case == RAFTKV__CLIENT__REQUEST__BODY_MEMBER_CHANGE)
        change(n, call, req->member_change);
    else
        move_leader(n, call, req->move_leader->id);
}

void members__transfer_check(struct rk_node *n)
{
    if (!n->moving)
        return;
    bool leads = raft_role_of(n->raft) == RAFT_LEADER;
    raft_id leader = raft_leader_of(n->raft);
    struct timespec now = node__now();
    /* Under way; or stepped down for the target's election, whose winner it learns from
     * the first append. */
    if ((leads && raft_transferee_of(n->raft)) ||
        (!leads && !leader && !node__reached(&now, &n->moving_deadline)))
        return;
    if (!leads && leader == n->moving_to) {
        members__reply_list(n, n->moving);
    } else {
        rk_info("the leadership transfer to %" PRIu64 " failed", (uint64_t)n->moving_to);
        clients__reply_error(n, n->moving, RAFTKV__CLIENT__CODE__UNAVAILABLE,
                             leads ? "the transfer was abandoned: the target did not win an "
                                     "election in time; retry"
                                   : "the leadership did not go to the target; retry");
    }
    n->moving = NULL;
}

void members__hand_off(struct rk_node *n)
{
    if (n->fatal || n->held || raft_role_of(n->raft) != RAFT_LEADER ||
        raft_transfer_leadership(n->raft, 0) != RAFT_OK)
        return;
    raft_id target = raft_transferee_of(n->raft);
    rk_info("stopping: handing the leadership to %" PRIu64 " first", (uint64_t)target);
    struct timespec deadline = node__now();
    node__add_ms(&deadline, HAND_OFF_TIMEOUTS * n->cfg->election_timeout_max_ms);
    for (;;) {
        loop__turn(n, true);
        struct timespec now = node__now();
        if (n->fatal || raft_role_of(n->raft) != RAFT_LEADER || node__reached(&now, &deadline))
            break;
    }
    if (raft_role_of(n->raft) == RAFT_LEADER)
        rk_warn("stopping while still the leader: %" PRIu64 " did not take over in time",
                (uint64_t)target);
}
