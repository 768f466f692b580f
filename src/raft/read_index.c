/* Linearizable reads without a log write (ReadIndex, Raft dissertation §6.4). */
#include <assert.h>
#include <stdlib.h>

#include "raft/core.h"

static bool committed_in_term(const struct raft *r)
{
    return raft__log_term_at(&r->log, r->log.commit) == r->term;
}

static int grow(void **array, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return RAFT_OK;
    size_t grown_cap = *cap ? *cap * 2 : 16;
    void *grown = realloc(*array, grown_cap * size);
    if (!grown)
        return RAFT_ENOMEM;
    *array = grown;
    *cap = grown_cap;
    return RAFT_OK;
}

int raft_read_index(struct raft *r, uint64_t ctx)
{
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    int rv = grow((void **)&r->reads, &r->cap_reads, r->n_reads, sizeof *r->reads);
    if (rv != RAFT_OK)
        return rv;
    /* A new leader's commit index may lag what its predecessor committed until it commits
     * an entry of its own term (§6.4 step 1): until then the read's index is unknown. */
    r->reads[r->n_reads++] = (struct pending_read){
        .ctx = ctx,
        .index = committed_in_term(r) ? r->log.commit : 0,
        .round = ++r->read_round,
    };
    r->replicate_pending = true; /* the next ready sends the round */
    raft__read_index_confirm(r);
    return RAFT_OK;
}

void raft__read_index_on_commit(struct raft *r)
{
    if (!committed_in_term(r))
        return;
    for (size_t i = 0; i < r->n_reads; i++)
        if (r->reads[i].index == 0)
            r->reads[i].index = r->log.commit;
    raft__read_index_confirm(r);
}

static bool round_confirmed(const struct raft *r, uint64_t round)
{
    const struct raft_configuration *c = raft__membership_latest(r);
    size_t acks = 0;
    for (size_t i = 0; i < c->n; i++)
        acks += c->members[i].role == RAFT_VOTER &&
                (c->members[i].id == r->cfg.id || r->progress[i].round_acked >= round);
    return acks >= raft__core_quorum(r);
}

/* Reads are confirmed in order: rounds and indexes only grow along the list. */
void raft__read_index_confirm(struct raft *r)
{
    size_t done = 0;
    while (done < r->n_reads && r->reads[done].index && round_confirmed(r, r->reads[done].round)) {
        if (grow((void **)&r->read_states, &r->cap_read_states, r->n_read_states,
                 sizeof *r->read_states) != RAFT_OK)
            break; /* retried at the next answer */
        /* The commit index only grows while we lead, and reads end with our leadership. */
        assert(r->reads[done].index <= r->log.commit);
        r->read_states[r->n_read_states++] =
            (struct raft_read_state){.ctx = r->reads[done].ctx, .index = r->reads[done].index};
        done++;
    }
    for (size_t i = done; i < r->n_reads; i++)
        r->reads[i - done] = r->reads[i];
    r->n_reads -= done;
}

void raft__read_index_forget(struct raft *r)
{
    r->n_reads = 0;
}
