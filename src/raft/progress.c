/* The leader's per-follower replication state: probe / replicate, and the in-flight window. */
#include <assert.h>
#include <string.h>

#include "raft/core.h"

void raft__progress_init(struct progress *pr, raft_id id, raft_index *inflight, size_t max_inflight)
{
    memset(pr, 0, sizeof *pr);
    pr->id = id;
    pr->inflight = inflight;
    pr->inflight_cap = max_inflight;
}

void raft__progress_reset(struct progress *pr, raft_index last_index)
{
    pr->match = 0;
    pr->match_at_heartbeat = 0;
    pr->round_sent = pr->round_acked = 0;
    pr->recent_active = true; /* a new leader gives everyone an election timeout to answer */
    raft__progress_become_probe(pr, last_index + 1);
}

void raft__progress_become_probe(struct progress *pr, raft_index next)
{
    pr->state = PROGRESS_PROBE;
    pr->next = next > pr->match ? next : pr->match + 1;
    pr->probe_sent = false;
    pr->inflight_start = pr->inflight_count = 0;
}

void raft__progress_become_replicate(struct progress *pr)
{
    pr->state = PROGRESS_REPLICATE;
    pr->next = pr->match + 1;
    pr->probe_sent = false;
    pr->inflight_start = pr->inflight_count = 0;
}

bool raft__progress_is_paused(const struct progress *pr)
{
    if (pr->state == PROGRESS_PROBE)
        return pr->probe_sent;
    return pr->inflight_count == pr->inflight_cap;
}

void raft__progress_on_sent(struct progress *pr, raft_index last_sent)
{
    if (pr->state == PROGRESS_PROBE) {
        pr->probe_sent = true;
        return;
    }
    if (last_sent < pr->next)
        return; /* nothing new was in it */
    pr->next = last_sent + 1;
    assert(pr->inflight_count < pr->inflight_cap); /* nothing is sent while paused */
    pr->inflight[(pr->inflight_start + pr->inflight_count) % pr->inflight_cap] = last_sent;
    pr->inflight_count++;
}

bool raft__progress_on_ack(struct progress *pr, raft_index index)
{
    while (pr->inflight_count && pr->inflight[pr->inflight_start] <= index) {
        pr->inflight_start = (pr->inflight_start + 1) % pr->inflight_cap;
        pr->inflight_count--;
    }
    if (index <= pr->match)
        return false;
    pr->match = index;
    if (pr->next <= index)
        pr->next = index + 1;
    return true;
}
