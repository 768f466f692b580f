/* The safety properties of Raft and the host contract of raft.h, checked as the run goes
 * (see cluster.h for the list). The first violation is kept and recorded in the trace. */
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "cluster_internal.h"

struct lm_slot {
    raft_index index; /* 0: empty */
    raft_term term;
    raft_term prev_term;
    uint64_t hash;
};

struct cluster_lm {
    struct lm_slot *slots;
    size_t cap, n; /* cap is a power of two */
};

/* Keeps the first violation only: later ones are usually its consequences. */
void cluster_fail(struct cluster *c, raft_id node, const char *fmt, ...)
{
    if (c->failed)
        return;
    c->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->violation, sizeof c->violation, fmt, ap);
    va_end(ap);
    trace_event(c, node, EV_VIOLATION, 0, 0, 0, 0, 0);
}

/* ---- Log Matching registry: one record per (index, term) ever persisted ---- */

static size_t lm_home(const struct cluster_lm *lm, raft_index index, raft_term term)
{
    uint64_t h = index * 0x9e3779b97f4a7c15ULL ^ term * 0xc2b2ae3d27d4eb4fULL;
    return (size_t)(h ^ (h >> 29)) & (lm->cap - 1);
}

static struct lm_slot *lm_find(struct cluster_lm *lm, raft_index index, raft_term term)
{
    size_t i = lm_home(lm, index, term);
    while (lm->slots[i].index && !(lm->slots[i].index == index && lm->slots[i].term == term))
        i = (i + 1) & (lm->cap - 1);
    return &lm->slots[i];
}

static void lm_grow(struct cluster_lm *lm)
{
    struct cluster_lm old = *lm;
    lm->cap = old.cap ? old.cap * 2 : 1024;
    lm->slots = calloc(lm->cap, sizeof *lm->slots);
    if (!lm->slots)
        oom();
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].index)
            *lm_find(lm, old.slots[i].index, old.slots[i].term) = old.slots[i];
    free(old.slots);
}

static void lm_check(struct cluster *c, raft_id node, const struct raft_entry *e,
                     raft_term prev_term, uint64_t hash)
{
    struct cluster_lm *lm = c->lm;
    if ((lm->n + 1) * 2 > lm->cap)
        lm_grow(lm);
    struct lm_slot *s = lm_find(lm, e->index, e->term);
    if (!s->index) {
        *s = (struct lm_slot){e->index, e->term, prev_term, hash};
        lm->n++;
        return;
    }
    if (s->prev_term != prev_term || s->hash != hash)
        cluster_fail(c, node,
                     "Log Matching: n%" PRIu64 " persisted entry %" PRIu64 "/t%" PRIu64
                     " with predecessor term %" PRIu64 " and content %016" PRIx64
                     ", but that index/term was persisted elsewhere with predecessor term %" PRIu64
                     " and content %016" PRIx64,
                     node, e->index, e->term, prev_term, hash, s->prev_term, s->hash);
}

/* ---- what a node sends ---- */

/* A successful append response says "my log matches yours up to index", and so does the
 * answer to a snapshot's last chunk: the entry there must be durable and be the one the
 * leader of that term holds (while it still leads). */
static void check_log_ack(struct cluster *c, const struct cluster_node *n, const struct raft_msg *m,
                          raft_index index)
{
    raft_term term = m->term;
    if (index > stored_last(n)) {
        cluster_fail(c, n->id,
                     "%s acknowledged before it was durable: n%" PRIu64 " acks index %" PRIu64
                     " but storage holds up to %" PRIu64,
                     raft_msg_type_name(m->type), n->id, index, stored_last(n));
        return;
    }
    raft_id l = term < c->n_terms ? c->leader_of_term[term] : 0;
    const struct cluster_node *ln = l ? &c->nodes[l] : NULL;
    /* Asked of the core, not of what was last observed: with batching the leader may have
     * stepped down in a step whose ready is still pending. */
    if (index <= n->log_base || !ln || !ln->r || raft_role_of(ln->r) != RAFT_LEADER ||
        raft_term_of(ln->r) != term)
        return;
    raft_term want = raft_term_at(ln->r, index);
    raft_term have = stored_term_at(n, index);
    if (want && want != have)
        cluster_fail(c, n->id,
                     "n%" PRIu64 " acks index %" PRIu64 " to the leader of term %" PRIu64
                     " but stores term %" PRIu64 " there where the leader has term %" PRIu64,
                     n->id, index, term, have, want);
}

void check_vote_asked(struct cluster_node *n, const struct raft_msg *m)
{
    if (m->type != RAFT_MSG_REQUEST_VOTE || m->from > CLUSTER_MAX_NODES)
        return;
    const struct raft_request_vote *rv = &m->request_vote;
    raft_index last = raft_last_index_of(n->r);
    raft_term last_term = raft_term_at(n->r, last);
    bool up_to_date = rv->last_log_term > last_term ||
                      (rv->last_log_term == last_term && rv->last_log_index >= last);
    /* The slot of this term, or else that of the lowest term, which it replaces. */
    struct cluster_vote_asked *slots = n->asked[m->from][rv->pre_vote], *a = &slots[0];
    for (size_t i = 0; i < CLUSTER_VOTE_TERMS && a->term != m->term; i++)
        if (slots[i].term == m->term || slots[i].term < a->term)
            a = &slots[i];
    if (a->term != m->term)
        *a = (struct cluster_vote_asked){m->term, false};
    a->up_to_date |= up_to_date;
}

/* Raft §5.4.1: a vote, and a pre-vote (dissertation §9.6), goes only to a candidate whose
 * log is at least as up to date as the voter's. */
static void check_vote_granted(struct cluster *c, const struct cluster_node *n,
                               const struct raft_msg *m)
{
    bool pre = m->request_vote_resp.pre_vote;
    const struct cluster_vote_asked *slots = n->asked[m->to][pre];
    for (size_t i = 0; i < CLUSTER_VOTE_TERMS; i++)
        if (slots[i].term == m->term && !slots[i].up_to_date)
            cluster_fail(c, n->id,
                         "n%" PRIu64 " grants its %s for term %" PRIu64 " to n%" PRIu64
                         ", whose log was behind its own",
                         n->id, pre ? "pre-vote" : "vote", m->term, m->to);
}

/* A node acknowledges only what is durable: a granted vote and a successful append response
 * promise state that a crash must not lose (raft.h: msgs_after_persist). */
void check_ack_durable(struct cluster *c, const struct cluster_node *n, const struct raft_msg *m)
{
    if (m->type == RAFT_MSG_REQUEST_VOTE_RESP && m->request_vote_resp.granted)
        check_vote_granted(c, n, m);
    /* A vote is safe once the node can never vote otherwise in that term: it stored the
     * vote, or already a later term. */
    if (m->type == RAFT_MSG_REQUEST_VOTE_RESP && m->request_vote_resp.granted &&
        !m->request_vote_resp.pre_vote && n->hs_term <= m->term &&
        (n->hs_term != m->term || n->hs_vote != m->to))
        cluster_fail(c, n->id,
                     "vote granted before it was durable: n%" PRIu64 " votes for n%" PRIu64
                     " in term %" PRIu64 " but storage holds term %" PRIu64 " vote %" PRIu64,
                     n->id, m->to, m->term, n->hs_term, n->hs_vote);
    if (m->type == RAFT_MSG_APPEND_RESP && m->append_resp.success)
        check_log_ack(c, n, m, m->append_resp.index);
    if (m->type == RAFT_MSG_INSTALL_SNAPSHOT_RESP && m->install_snapshot_resp.done &&
        !m->install_snapshot_resp.rejected)
        check_log_ack(c, n, m, m->install_snapshot_resp.last_index);
}

/* ---- leaders ---- */

void check_new_leader(struct cluster *c, const struct cluster_node *n, raft_term term)
{
    if (term >= c->n_terms) {
        size_t cap = c->n_terms;
        grow((void **)&c->leader_of_term, &cap, term + 1, sizeof *c->leader_of_term);
        memset(c->leader_of_term + c->n_terms, 0, (cap - c->n_terms) * sizeof(raft_id));
        c->n_terms = cap;
    }
    if (c->leader_of_term[term] && c->leader_of_term[term] != n->id)
        cluster_fail(c, n->id,
                     "Election Safety: n%" PRIu64 " and n%" PRIu64 " both leaders of term %" PRIu64,
                     c->leader_of_term[term], n->id, term);
    c->leader_of_term[term] = n->id;
    /* Raft §5.4: an entry committed in a term is in the log of every leader of a later
     * term. A leader of an earlier term may still win after it (delayed votes): it owes
     * nothing. Compacted entries live in the snapshot, checked when it was taken. */
    raft_index first = raft_first_index_of(n->r);
    raft_index upto = c->n_committed < c->n_commit_term ? c->n_committed : c->n_commit_term;
    for (raft_index i = first > 1 ? first - 1 : 1; i <= upto; i++) {
        raft_term t = raft_term_at(n->r, i);
        if (c->commit_term[i - 1] < term && t != c->committed[i - 1].term) {
            cluster_fail(c, n->id,
                         "Leader Completeness: n%" PRIu64 " became leader of term %" PRIu64
                         " holding term %" PRIu64 " at index %" PRIu64 ", where term %" PRIu64
                         " was committed",
                         n->id, term, t, i, c->committed[i - 1].term);
            break;
        }
    }
}

static bool is_voter(const struct raft_configuration *conf, raft_id id)
{
    const struct raft_member *m = raft_configuration_find(conf, id);
    return m && m->role == RAFT_VOTER;
}

/* Whether the entry (index, term) is durable at node id: in its stored log, or under the
 * snapshot it installed (only committed state is ever snapshotted). */
static bool stores(const struct cluster *c, raft_id id, raft_index index, raft_term term)
{
    const struct cluster_node *n = &c->nodes[id];
    return index <= n->log_base || stored_term_at(n, index) == term;
}

/* A leader counts an entry committed once it is durable on a majority of the voters of its
 * latest configuration (§4.1): learners' and non-members' copies never count. Checked
 * against what storage holds, not against the leader's own bookkeeping. A copy cannot
 * vanish between its acknowledgement and the count: only a leader of a later term could
 * truncate it, and every such leader holds it (Leader Completeness). */
static void check_commit_quorum(struct cluster *c, const struct cluster_node *n, raft_index commit)
{
    const struct raft_configuration *conf = raft_configuration_of(n->r, NULL);
    raft_term term = raft_term_at(n->r, commit);
    size_t voters = 0, holding = 0;
    for (size_t i = 0; i < conf->n; i++) {
        if (conf->members[i].role != RAFT_VOTER)
            continue;
        voters++;
        holding +=
            node_valid(c, conf->members[i].id) && stores(c, conf->members[i].id, commit, term);
    }
    if (holding <= voters / 2)
        cluster_fail(c, n->id,
                     "commit quorum: leader n%" PRIu64 " counts %" PRIu64 "/t%" PRIu64
                     " committed but only %zu of the %zu voters of its configuration store it",
                     n->id, commit, term, holding, voters);
}

void check_leader_commit(struct cluster *c, const struct cluster_node *n, raft_term term)
{
    raft_index commit = raft_commit_of(n->r);
    if (commit <= c->n_commit_term)
        return;
    check_commit_quorum(c, n, commit);
    grow((void **)&c->commit_term, &c->cap_commit_term, commit, sizeof *c->commit_term);
    while (c->n_commit_term < commit)
        c->commit_term[c->n_commit_term++] = term;
}

/* Whether the leader n can exchange messages with a majority of the voters of its latest
 * configuration (itself included if it is one of them): the quorum it must keep. */
static bool reaches_majority(const struct cluster *c, const struct cluster_node *n)
{
    const struct raft_configuration *conf = raft_configuration_of(n->r, NULL);
    size_t reached = 0, voters = 0;
    for (size_t i = 0; i < conf->n; i++) {
        raft_id p = conf->members[i].id;
        if (conf->members[i].role != RAFT_VOTER)
            continue;
        voters++;
        reached +=
            p == n->id || (cluster_is_up(c, p) && !c->blocked[n->id][p] && !c->blocked[p][n->id]);
    }
    return reached > voters / 2;
}

bool cluster_may_campaign(const struct raft *r, raft_id id)
{
    raft_index at;
    const struct raft_configuration *latest = raft_configuration_of(r, &at);
    return is_voter(latest, id) ||
           (at > raft_commit_of(r) && at > 0 && is_voter(raft_configuration_at(r, at - 1), id));
}

void check_campaigner(struct cluster *c, const struct cluster_node *n)
{
    if (!cluster_may_campaign(n->r, n->id))
        cluster_fail(c, n->id,
                     "n%" PRIu64 " is %s in term %" PRIu64
                     " but its latest configuration does not name it a voter, nor removes it",
                     n->id, raft_role_name(raft_role_of(n->r)), raft_term_of(n->r));
}

void check_leader_configuration(struct cluster *c, struct cluster_node *n)
{
    raft_index at, commit = raft_commit_of(n->r);
    const struct raft_configuration *conf = raft_configuration_of(n->r, &at);
    /* §4.2.2: a leader its configuration no longer names a voter leads only until that
     * configuration commits. */
    if (at <= commit && !is_voter(conf, n->id))
        cluster_fail(c, n->id,
                     "n%" PRIu64 " still leads term %" PRIu64
                     " though its configuration at %" PRIu64 " is committed (%" PRIu64
                     ") and does not name it a voter",
                     n->id, raft_term_of(n->r), at, commit);
    if (at == n->lead_conf)
        return;
    n->lead_conf = at;
    /* §4.1: one change at a time. Each leader appends a configuration only once its previous
     * one is committed, so no log of any leader holds two beyond what the cluster has
     * committed (a new leader may not know yet that the first of them is). */
    for (raft_index i = c->n_commit_term + 1; i < at; i++) {
        const struct raft_entry *e = raft_entry_at(n->r, i);
        if (e && e->type == RAFT_ENTRY_CONFIG) {
            cluster_fail(c, n->id,
                         "leader n%" PRIu64 " of term %" PRIu64 " holds configurations at %" PRIu64
                         " and %" PRIu64 " beyond the cluster's commit %zu",
                         n->id, raft_term_of(n->r), i, at, c->n_commit_term);
            return;
        }
    }
}

void check_isolated_leaders(struct cluster *c)
{
    /* A peer's answer sent before the isolation may still arrive this late; then one
     * check-quorum round (the minimum election timeout) runs out without an answer, and
     * the next ends it; an election timeout of slack for rounds cut short by a restart. */
    uint64_t in_flight = c->net.delay_max + c->net.long_delay_max;
    uint64_t bound =
        in_flight + 2 * (uint64_t)c->opts.election_ticks_min + c->opts.election_ticks_max;
    for (raft_id id = 1; id <= c->opts.n_nodes; id++) {
        struct cluster_node *n = &c->nodes[id];
        if (!n->r || raft_role_of(n->r) != RAFT_LEADER || reaches_majority(c, n)) {
            n->isolated_since = 0;
            continue;
        }
        if (!n->isolated_since)
            n->isolated_since = c->now;
        if (c->opts.check_quorum && c->now - n->isolated_since > bound)
            cluster_fail(c, id,
                         "check-quorum: n%" PRIu64 " still leads term %" PRIu64 " %" PRIu64
                         " ticks after it last reached a majority",
                         id, raft_term_of(n->r), c->now - n->isolated_since);
    }
}

void check_leader_log(struct cluster *c, const struct cluster_node *n, raft_index last)
{
    if (last < n->lead_last)
        cluster_fail(c, n->id,
                     "Leader Append-Only: leader n%" PRIu64 " of term %" PRIu64
                     " shrank its log from %" PRIu64 " to %" PRIu64,
                     n->id, n->lead_term, n->lead_last, last);
}

void check_leader_truncation(struct cluster *c, const struct cluster_node *n,
                             const struct raft_ready *rd)
{
    if (n->lead_term && rd->truncate_from && rd->truncate_from <= stored_last(n))
        cluster_fail(c, n->id,
                     "Leader Append-Only: leader n%" PRIu64 " truncates its log at %" PRIu64, n->id,
                     rd->truncate_from);
}

/* ---- persisting ---- */

void check_hard_state(struct cluster *c, const struct cluster_node *n, const struct raft_ready *rd)
{
    if (rd->term < n->hs_term)
        cluster_fail(c, n->id, "persisted term went back from %" PRIu64 " to %" PRIu64, n->hs_term,
                     rd->term);
    else if (rd->term == n->hs_term && n->hs_vote && rd->vote != n->hs_vote)
        cluster_fail(c, n->id,
                     "persisted vote changed within term %" PRIu64 " from n%" PRIu64
                     " to n%" PRIu64,
                     rd->term, n->hs_vote, rd->vote);
}

void check_persisted_entry(struct cluster *c, const struct cluster_node *n,
                           const struct raft_entry *e, raft_term prev_term, uint64_t hash)
{
    if (e->term > n->hs_term)
        cluster_fail(c, n->id,
                     "n%" PRIu64 " persisted entry %" PRIu64 "/t%" PRIu64
                     " from beyond its term %" PRIu64,
                     n->id, e->index, e->term, n->hs_term);
    lm_check(c, n->id, e, prev_term, hash);
}

/* ---- applying and reading ---- */

static void check_command(struct cluster *c, raft_id node, const struct raft_entry *e)
{
    uint64_t cmd;
    if (!cluster_cmd_of(e, &cmd))
        return;
    if (cmd >= c->n_proposals) {
        cluster_fail(c, node, "applied command %" PRIu64 " that was never proposed", cmd);
        return;
    }
    struct cluster_proposal *p = &c->proposals[cmd];
    if (p->index != e->index || p->term != e->term)
        cluster_fail(c, node,
                     "command %" PRIu64 " proposed at %" PRIu64 "/t%" PRIu64 " applied at %" PRIu64
                     "/t%" PRIu64,
                     cmd, p->index, p->term, e->index, e->term);
    p->applied_at = e->index;
}

/* The entry at index as applied first anywhere; every later application must match it. */
static void apply_global(struct cluster *c, raft_id node, const struct raft_entry *e, uint64_t h)
{
    if (e->index <= c->n_committed) {
        const struct cluster_committed *g = &c->committed[e->index - 1];
        if (g->term != e->term || g->type != e->type || g->len != e->len ||
            (e->len && memcmp(g->data, e->data, e->len)))
            cluster_fail(c, node,
                         "State Machine Safety: n%" PRIu64 " applied %" PRIu64 "/t%" PRIu64
                         " but another node applied %" PRIu64 "/t%" PRIu64 " with other content",
                         node, e->index, e->term, e->index, g->term);
        return;
    }
    grow((void **)&c->committed, &c->cap_committed, c->n_committed + 1, sizeof *c->committed);
    struct cluster_committed *g = &c->committed[c->n_committed];
    uint64_t prev = c->n_committed ? c->committed[c->n_committed - 1].chain : 0;
    *g = (struct cluster_committed){e->term, e->type, e->len, NULL, chain_step(prev, h)};
    if (e->len) {
        g->data = xrealloc(NULL, e->len);
        memcpy(g->data, e->data, e->len);
    }
    c->n_committed++;
    check_command(c, node, e);
    if (e->type == RAFT_ENTRY_CONFIG) {
        struct raft_configuration conf;
        if (raft_configuration_decode(e->data, e->len, &conf) != RAFT_OK) {
            cluster_fail(c, node, "committed configuration entry %" PRIu64 " does not decode",
                         e->index);
            return;
        }
        raft_configuration_free(&c->committed_conf);
        c->committed_conf = conf;
        c->stats_confs_committed++;
    }
}

bool check_apply(struct cluster *c, const struct cluster_node *n, const struct raft_entry *e,
                 uint64_t hash)
{
    if (e->index != n->applied + 1) {
        cluster_fail(c, n->id, "n%" PRIu64 " applied index %" PRIu64 " after %" PRIu64, n->id,
                     e->index, n->applied);
        return false;
    }
    const struct cluster_logent *se = stored_at(n, e->index);
    if (!se || se->term != e->term || se->hash != hash)
        cluster_fail(c, n->id,
                     "n%" PRIu64 " applied %" PRIu64 "/t%" PRIu64
                     " which its storage does not hold (stored last %" PRIu64 ")",
                     n->id, e->index, e->term, stored_last(n));
    apply_global(c, n->id, e, hash);
    return true;
}

void check_reads(struct cluster *c, const struct cluster_node *n, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_read_states; i++) {
        const struct raft_read_state *rs = &rd->read_states[i];
        struct cluster_read *rq = rs->ctx < c->n_reads ? &c->reads[rs->ctx] : NULL;
        if (!rq || rq->node != n->id || rq->index) {
            cluster_fail(c, n->id, "n%" PRIu64 " answered read %" PRIu64 " it was not asked", n->id,
                         rs->ctx);
            continue;
        }
        if (rs->index < rq->min_index)
            cluster_fail(c, n->id,
                         "Linearizability: n%" PRIu64 " answered read %" PRIu64 " at index %" PRIu64
                         " but %" PRIu64 " was committed before the read was asked",
                         n->id, rs->ctx, rs->index, rq->min_index);
        rq->index = rs->index;
        trace_note(c, n->id, "read confirmed (ctx, index)", rs->ctx, rs->index);
    }
}

/* ---- restarts ---- */

/* Storage must give back exactly what was saved: anything else would make every later
 * check meaningless. */
void check_restore(struct cluster *c, const struct cluster_node *n, const struct raft_restore *rs)
{
    bool ok = rs->term == n->hs_term && rs->vote == n->hs_vote && rs->n_entries == n->log_n &&
              rs->snapshot_index == n->log_base && rs->snapshot_term == n->base_term;
    for (size_t i = 0; ok && i < rs->n_entries; i++)
        ok = rs->entries[i].index == n->log_base + 1 + i && rs->entries[i].term == n->log[i].term &&
             entry_hash(&rs->entries[i]) == n->log[i].hash;
    if (!ok)
        cluster_fail(c, n->id, "storage of n%" PRIu64 " gave back something other than was saved",
                     n->id);
}

bool check_snapshot_state(struct cluster *c, const struct cluster_node *n, raft_index index,
                          raft_term term, uint64_t chain)
{
    const struct raft_snapshot_meta *meta = &n->snap.meta;
    if (index != meta->index || term != meta->term) {
        cluster_fail(c, n->id,
                     "snapshot of n%" PRIu64 " says %" PRIu64 "/t%" PRIu64
                     " but its bytes hold %" PRIu64 "/t%" PRIu64,
                     n->id, meta->index, meta->term, index, term);
        return false;
    }
    if (index > c->n_committed || c->committed[index - 1].chain != chain ||
        c->committed[index - 1].term != term)
        cluster_fail(c, n->id,
                     "State Machine Safety: n%" PRIu64 " restores a snapshot at %" PRIu64
                     "/t%" PRIu64 " whose state no node applied",
                     n->id, index, term);
    return true;
}

/* ---- life cycle of the history the checks keep ---- */

int check_init(struct cluster *c)
{
    c->lm = calloc(1, sizeof *c->lm);
    if (!c->lm)
        return RAFT_ENOMEM;
    lm_grow(c->lm);
    return RAFT_OK;
}

void check_free(struct cluster *c)
{
    free(c->leader_of_term);
    for (size_t i = 0; i < c->n_committed; i++)
        free(c->committed[i].data);
    free(c->committed);
    free(c->commit_term);
    raft_configuration_free(&c->committed_conf);
    if (c->lm)
        free(c->lm->slots);
    free(c->lm);
}
