/* Membership changes one server at a time (Raft dissertation chapter 4): which
 * configuration is in effect, per-member state that follows it, and the changes a leader
 * proposes. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "raft/core.h"

const struct raft_configuration *raft__membership_latest(const struct raft *r)
{
    return r->n_confs ? &r->confs[r->n_confs - 1].conf : &r->snap_conf;
}

int raft__membership_slot(const struct raft *r, raft_id id)
{
    const struct raft_configuration *c = raft__membership_latest(r);
    for (size_t i = 0; i < c->n; i++)
        if (c->members[i].id == id)
            return (int)i;
    return -1;
}

bool raft__membership_is_voter(const struct raft *r, raft_id id)
{
    const struct raft_member *m = raft_configuration_find(raft__membership_latest(r), id);
    return m && m->role == RAFT_VOTER;
}

/* Lines progress and votes up with the latest configuration's members. A member that stays
 * keeps its state (and its inflight ring); a newcomer gets a ring left by a departed one. */
static void follow_latest(struct raft *r)
{
    const struct raft_configuration *c = raft__membership_latest(r);
    struct progress old[RAFT_MAX_MEMBERS];
    enum vote_state old_votes[RAFT_MAX_MEMBERS];
    bool taken[RAFT_MAX_MEMBERS] = {false};
    int from[RAFT_MAX_MEMBERS];
    memcpy(old, r->progress, sizeof old);
    memcpy(old_votes, r->votes, sizeof old_votes);
    for (size_t i = 0; i < c->n; i++) {
        from[i] = -1;
        for (size_t j = 0; j < RAFT_MAX_MEMBERS && from[i] < 0; j++)
            if (old[j].id == c->members[i].id && !taken[j]) {
                from[i] = (int)j;
                taken[j] = true;
            }
    }
    size_t spare = 0;
    for (size_t i = 0; i < RAFT_MAX_MEMBERS; i++) {
        if (i < c->n && from[i] >= 0) {
            r->progress[i] = old[from[i]];
            r->votes[i] = old_votes[from[i]];
            continue;
        }
        while (taken[spare])
            spare++;
        taken[spare] = true;
        raft__progress_init(&r->progress[i], i < c->n ? c->members[i].id : 0, old[spare].inflight,
                            r->cfg.max_inflight_msgs);
        r->votes[i] = VOTE_UNKNOWN;
        if (i < c->n && r->role == RAFT_LEADER)
            raft__progress_reset(&r->progress[i], raft__log_last_index(&r->log));
    }
    r->conf_generation++;
}

int raft__membership_init(struct raft *r, const struct raft_configuration *snap_conf)
{
    size_t ring = r->cfg.max_inflight_msgs;
    r->inflight_rings = calloc(RAFT_MAX_MEMBERS * ring, sizeof *r->inflight_rings);
    if (!r->inflight_rings)
        return RAFT_ENOMEM;
    for (size_t i = 0; i < RAFT_MAX_MEMBERS; i++)
        raft__progress_init(&r->progress[i], 0, r->inflight_rings + i * ring, ring);
    int rv = raft_configuration_copy(&r->snap_conf, snap_conf);
    if (rv != RAFT_OK)
        return rv;
    follow_latest(r);
    return RAFT_OK;
}

static void drop_confs_from(struct raft *r, size_t from)
{
    for (size_t i = from; i < r->n_confs; i++)
        raft_configuration_free(&r->confs[i].conf);
    r->n_confs = from;
}

void raft__membership_free(struct raft *r)
{
    drop_confs_from(r, 0);
    free(r->confs);
    raft_configuration_free(&r->snap_conf);
    free(r->inflight_rings);
}

int raft__membership_on_append(struct raft *r, const struct raft_entry *e)
{
    assert(e->type == RAFT_ENTRY_CONFIG);
    if (r->n_confs == r->cap_confs) {
        size_t cap = r->cap_confs ? r->cap_confs * 2 : 4;
        struct conf_entry *grown = realloc(r->confs, cap * sizeof *grown);
        if (!grown)
            return RAFT_ENOMEM;
        r->confs = grown;
        r->cap_confs = cap;
    }
    struct conf_entry *c = &r->confs[r->n_confs];
    c->index = e->index;
    int rv = raft_configuration_decode(e->data, e->len, &c->conf);
    if (rv != RAFT_OK)
        return rv;
    r->n_confs++;
    follow_latest(r);
    return RAFT_OK;
}

/* §4.1: "a log entry for a configuration change may be removed (if leadership changes);
 * in this case, a server must be prepared to fall back to the previous configuration in
 * its log." */
void raft__membership_on_truncate(struct raft *r, raft_index index)
{
    size_t kept = r->n_confs;
    while (kept && r->confs[kept - 1].index >= index)
        kept--;
    if (kept == r->n_confs)
        return;
    drop_confs_from(r, kept);
    follow_latest(r);
}

int raft__membership_on_install(struct raft *r, const struct raft_configuration *conf)
{
    struct raft_configuration copy;
    int rv = raft_configuration_copy(&copy, conf);
    if (rv != RAFT_OK)
        return rv;
    drop_confs_from(r, 0);
    raft_configuration_free(&r->snap_conf);
    r->snap_conf = copy;
    follow_latest(r);
    return RAFT_OK;
}

/* The latest configuration stays the same one, members in the same order: the per-member
 * state needs no change. */
int raft__membership_on_compact(struct raft *r, raft_index index)
{
    const struct raft_configuration *at = raft_configuration_at(r, index);
    if (!at)
        return RAFT_EINVAL;
    struct raft_configuration copy;
    int rv = raft_configuration_copy(&copy, at);
    if (rv != RAFT_OK)
        return rv;
    size_t folded = 0;
    while (folded < r->n_confs && r->confs[folded].index <= index)
        raft_configuration_free(&r->confs[folded++].conf);
    if (folded) {
        memmove(r->confs, r->confs + folded, (r->n_confs - folded) * sizeof *r->confs);
        r->n_confs -= folded;
    }
    raft_configuration_free(&r->snap_conf);
    r->snap_conf = copy;
    return RAFT_OK;
}

/* §4.2.2: a leader that is not part of the new configuration "steps down (returns to
 * follower state) once the Cnew entry is committed". §3.10: handing the lead over at once
 * spares the cluster an election timeout. */
void raft__membership_on_commit(struct raft *r)
{
    raft_index index;
    const struct raft_configuration *c = raft_configuration_of(r, &index);
    if (r->role != RAFT_LEADER || index > r->log.commit || raft__membership_is_voter(r, r->cfg.id))
        return;
    raft_index last = raft__log_last_index(&r->log);
    for (size_t i = 0; i < c->n; i++)
        if (c->members[i].role == RAFT_VOTER && r->progress[i].match == last) {
            raft__transfer_send_timeout_now(r, c->members[i].id);
            break;
        }
    raft__core_become_follower(r, r->term, 0);
}

const struct raft_configuration *raft_configuration_of(const struct raft *r, raft_index *index)
{
    if (index)
        *index = r->n_confs ? r->confs[r->n_confs - 1].index : r->snapshot.index;
    return raft__membership_latest(r);
}

const struct raft_configuration *raft_configuration_at(const struct raft *r, raft_index index)
{
    if (index < r->snapshot.index || index > raft__log_last_index(&r->log))
        return NULL;
    for (size_t i = r->n_confs; i > 0; i--)
        if (r->confs[i - 1].index <= index)
            return &r->confs[i - 1].conf;
    return &r->snap_conf;
}

static int change_is_allowed(const struct raft *r)
{
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    raft_index index;
    raft_configuration_of(r, &index);
    /* §4.1: one change at a time, each committed before the next. And the fix Diego Ongaro
     * posted to raft-dev in 2015: "a leader may not append a new configuration entry until
     * it has committed an entry from its current term", or changes begun by two leaders of
     * different terms could each reach a disjoint majority. */
    if (r->transferee || index > r->log.commit ||
        raft__log_term_at(&r->log, r->log.commit) != r->term)
        return RAFT_EBUSY;
    return RAFT_OK;
}

/* Appends next as a configuration entry: the leader uses it from now on (§4.1). */
static int propose_change(struct raft *r, const struct raft_member *members, size_t n,
                          raft_index *index, raft_term *term)
{
    struct raft_configuration next = {.n = n, .members = (struct raft_member *)members};
    uint8_t *buf;
    size_t len;
    int rv = raft_configuration_encode(&next, &buf, &len);
    if (rv != RAFT_OK)
        return rv;
    raft_index at;
    rv = raft__replication_propose(r, RAFT_ENTRY_CONFIG, buf, len, &at);
    free(buf);
    if (rv != RAFT_OK)
        return rv;
    r->stats.configuration_changes++;
    if (index)
        *index = at;
    if (term)
        *term = r->term;
    return RAFT_OK;
}

int raft_add_learner(struct raft *r, const struct raft_member *m, raft_index *index,
                     raft_term *term)
{
    int rv = change_is_allowed(r);
    if (rv != RAFT_OK)
        return rv;
    const struct raft_configuration *c = raft__membership_latest(r);
    if (!m || m->id == 0 || c->n == RAFT_MAX_MEMBERS)
        return RAFT_EINVAL;
    if (raft_configuration_find(c, m->id))
        return RAFT_EEXIST;
    struct raft_member members[RAFT_MAX_MEMBERS];
    memcpy(members, c->members, c->n * sizeof *members);
    members[c->n] = (struct raft_member){
        .id = m->id,
        .role = RAFT_LEARNER,
        .peer_address = m->peer_address ? m->peer_address : "",
        .client_address = m->client_address ? m->client_address : "",
    };
    return propose_change(r, members, c->n + 1, index, term);
}

int raft_promote(struct raft *r, raft_id id, raft_index *index, raft_term *term)
{
    int rv = change_is_allowed(r);
    if (rv != RAFT_OK)
        return rv;
    const struct raft_configuration *c = raft__membership_latest(r);
    int slot = raft__membership_slot(r, id);
    if (slot < 0)
        return RAFT_ENOTFOUND;
    if (c->members[slot].role == RAFT_VOTER)
        return RAFT_EEXIST;
    /* §4.2.1: a server added with an empty log would leave the cluster unavailable while
     * it catches up; it votes only once it is close. */
    raft_index last = raft__log_last_index(&r->log);
    if (last > r->cfg.promote_max_lag && r->progress[slot].match < last - r->cfg.promote_max_lag)
        return RAFT_EBEHIND;
    struct raft_member members[RAFT_MAX_MEMBERS];
    memcpy(members, c->members, c->n * sizeof *members);
    members[slot].role = RAFT_VOTER;
    return propose_change(r, members, c->n, index, term);
}

int raft_remove(struct raft *r, raft_id id, raft_index *index, raft_term *term)
{
    int rv = change_is_allowed(r);
    if (rv != RAFT_OK)
        return rv;
    const struct raft_configuration *c = raft__membership_latest(r);
    int slot = raft__membership_slot(r, id);
    if (slot < 0)
        return RAFT_ENOTFOUND;
    /* Without a voter no quorum exists, and nothing could ever commit again. */
    if (c->members[slot].role == RAFT_VOTER && raft_configuration_voters(c) == 1)
        return RAFT_EINVAL;
    struct raft_member members[RAFT_MAX_MEMBERS];
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        if ((int)i != slot)
            members[n++] = c->members[i];
    return propose_change(r, members, n, index, term);
}

int raft_member_progress_of(const struct raft *r, raft_id id, struct raft_member_progress *out)
{
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    int slot = raft__membership_slot(r, id);
    if (slot < 0)
        return RAFT_ENOTFOUND;
    const struct progress *pr = &r->progress[slot];
    if (id == r->cfg.id) {
        *out = (struct raft_member_progress){
            .match = r->log.stable,
            .next = raft__log_last_index(&r->log) + 1,
            .recent_active = true,
        };
        return RAFT_OK;
    }
    *out = (struct raft_member_progress){
        .match = pr->match,
        .next = pr->next,
        .recent_active = pr->recent_active,
        .snapshot = pr->state == PROGRESS_SNAPSHOT,
    };
    return RAFT_OK;
}
