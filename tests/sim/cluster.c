/* The deterministic in-memory cluster (see cluster.h): the driver that ties the network,
 * the hosts and the checks together, with its PRNG, its clock and the scenario controls. */
#include <inttypes.h>
#include <string.h>

#include "cluster_internal.h"

/* Commands proposed through cluster_propose_cmd start with this, so that applying one can
 * be traced back to its proposal. */
static const char CMD_MAGIC[8] = {'R', 'K', 'S', 'I', 'M', 'C', 'M', 'D'};
#define CMD_HEADER 16
#define CMD_MAX_PAD 24

/* ---- randomness: xoshiro256** seeded through splitmix64 ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t cluster_rand(struct cluster *c)
{
    uint64_t *s = c->rng;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t cluster_rand_below(struct cluster *c, uint32_t bound)
{
    if (bound == 0)
        return 0;
    return (uint32_t)(((cluster_rand(c) >> 32) * bound) >> 32);
}

static uint32_t core_random(void *arg, uint32_t bound)
{
    return cluster_rand_below(arg, bound);
}

/* ---- time ---- */

void cluster_tick(struct cluster *c)
{
    c->now++;
    net_deliver_due(c, c->now);
    for (size_t i = 1; i <= c->opts.n_nodes; i++) {
        struct cluster_node *n = &c->nodes[i];
        if (!n->r)
            continue;
        raft_tick(n->r);
        host_drain(c, n);
    }
    check_isolated_leaders(c);
}

void cluster_ticks(struct cluster *c, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        cluster_tick(c);
}

/* ---- controls ---- */

bool cluster_is_up(const struct cluster *c, raft_id id)
{
    return node_valid(c, id) && c->nodes[id].r;
}

void cluster_crash(struct cluster *c, raft_id id)
{
    if (cluster_is_up(c, id))
        host_crash(c, &c->nodes[id], CRASH_NONE);
}

void cluster_crash_at(struct cluster *c, raft_id id, enum cluster_crash_point at)
{
    if (cluster_is_up(c, id))
        c->nodes[id].crash_at = at;
}

int cluster_restart(struct cluster *c, raft_id id)
{
    if (!node_valid(c, id) || c->nodes[id].r)
        return RAFT_EINVAL;
    return host_start(c, &c->nodes[id]);
}

void cluster_campaign(struct cluster *c, raft_id id)
{
    if (!cluster_is_up(c, id))
        return;
    raft_campaign(c->nodes[id].r);
    host_drain(c, &c->nodes[id]);
}

void cluster_set_electable(struct cluster *c, raft_id id, bool electable)
{
    if (!node_valid(c, id) || c->nodes[id].unelectable == !electable)
        return;
    c->nodes[id].unelectable = !electable;
    cluster_note(c, electable ? "storage has room" : "storage full", id, 0);
    if (!cluster_is_up(c, id))
        return;
    raft_set_electable(c->nodes[id].r, electable);
    host_drain(c, &c->nodes[id]);
    /* (draining may crash it: a crash point) */
    enum raft_role role = cluster_is_up(c, id) ? raft_role_of(c->nodes[id].r) : RAFT_FOLLOWER;
    if (!electable && role != RAFT_FOLLOWER)
        cluster_fail(c, id, "n%" PRIu64 " is still %s once its storage is full", id,
                     raft_role_name(role));
}

bool cluster_cmd_of(const struct raft_entry *e, uint64_t *cmd)
{
    if (e->type != RAFT_ENTRY_NORMAL || e->len < CMD_HEADER || memcmp(e->data, CMD_MAGIC, 8))
        return false;
    memcpy(cmd, e->data + 8, sizeof *cmd);
    return true;
}

int cluster_propose_cmd(struct cluster *c, raft_id id, uint64_t *cmd)
{
    uint8_t buf[CMD_HEADER + CMD_MAX_PAD];
    uint64_t number = c->n_proposals;
    size_t len = CMD_HEADER + cluster_rand_below(c, CMD_MAX_PAD + 1);
    memcpy(buf, CMD_MAGIC, 8);
    memcpy(buf + 8, &number, sizeof number);
    for (size_t i = CMD_HEADER; i < len; i++)
        buf[i] = (uint8_t)cluster_rand(c);
    raft_index index = 0;
    raft_term term = 0;
    int rc = cluster_is_up(c, id) ? raft_propose(c->nodes[id].r, buf, len, &index, &term)
                                  : RAFT_ENOTLEADER;
    trace_event(c, id, EV_PROPOSE, number, index, term, (uint64_t)rc, 0);
    if (rc != RAFT_OK)
        return rc;
    grow((void **)&c->proposals, &c->cap_proposals, c->n_proposals + 1, sizeof *c->proposals);
    c->proposals[c->n_proposals++] = (struct cluster_proposal){id, index, term, 0};
    if (cmd)
        *cmd = number;
    host_drain(c, &c->nodes[id]);
    return RAFT_OK;
}

int cluster_read(struct cluster *c, raft_id id, uint64_t *ctx)
{
    uint64_t number = c->n_reads;
    int rc = cluster_is_up(c, id) ? raft_read_index(c->nodes[id].r, number) : RAFT_ENOTLEADER;
    trace_note(c, id, rc ? "read refused (ctx, err)" : "read asked (ctx, min index)", number,
               rc ? (uint64_t)rc : c->n_committed);
    if (rc != RAFT_OK)
        return rc;
    grow((void **)&c->reads, &c->cap_reads, c->n_reads + 1, sizeof *c->reads);
    c->reads[c->n_reads++] = (struct cluster_read){id, c->n_committed, 0};
    if (ctx)
        *ctx = number;
    host_drain(c, &c->nodes[id]);
    return RAFT_OK;
}

const char *cluster_change_name(enum cluster_change op)
{
    static const char *const names[CHANGE_KINDS] = {"add", "promote", "remove", "transfer"};
    return op < CHANGE_KINDS ? names[op] : "?";
}

/* raft.h: a change is refused with EBUSY exactly while another is uncommitted, before the
 * leader has committed an entry of its own term, or during a transfer; a transfer exactly
 * while another is under way. */
static bool change_busy(struct raft *r, enum cluster_change op)
{
    if (op == CHANGE_TRANSFER || raft_transferee_of(r))
        return raft_transferee_of(r) != 0;
    raft_index conf_index, commit = raft_commit_of(r);
    raft_configuration_of(r, &conf_index);
    return conf_index > commit || raft_term_at(r, commit) != raft_term_of(r);
}

static int change_call(struct cluster *c, struct raft *r, enum cluster_change op, raft_id id)
{
    struct raft_member m = {id, RAFT_LEARNER, c->addresses[id], c->addresses[id]};
    switch (op) {
    case CHANGE_ADD:
        return raft_add_learner(r, &m, NULL, NULL);
    case CHANGE_PROMOTE:
        return raft_promote(r, id, NULL, NULL);
    case CHANGE_REMOVE:
        return raft_remove(r, id, NULL, NULL);
    default:
        return raft_transfer_leadership(r, id);
    }
}

int cluster_change(struct cluster *c, raft_id at, enum cluster_change op, raft_id id)
{
    if (!node_valid(c, id) && !(op == CHANGE_TRANSFER && id == 0))
        return RAFT_EINVAL;
    struct raft *r = cluster_is_up(c, at) ? c->nodes[at].r : NULL;
    bool leads = r && raft_role_of(r) == RAFT_LEADER;
    bool busy = leads && change_busy(r, op);
    int rc = r ? change_call(c, r, op, id) : RAFT_ENOTLEADER;
    trace_note(c, at, cluster_change_name(op), id, (uint64_t)rc);
    switch (rc) {
    case RAFT_OK:
        c->stats_changes_accepted[op]++;
        if (op == CHANGE_ADD)
            c->nodes[id].added = true;
        break;
    case RAFT_EBUSY:
    case RAFT_EBEHIND:
    case RAFT_EEXIST:
    case RAFT_ENOTFOUND:
    case RAFT_EINVAL:
    case RAFT_ENOTLEADER:
        c->stats_changes_refused[op]++;
        break;
    default:
        cluster_fail(c, at, "%s of n%" PRIu64 " at n%" PRIu64 " failed: %s",
                     cluster_change_name(op), id, at, raft_strerror(rc));
    }
    if (leads && busy != (rc == RAFT_EBUSY) && (rc == RAFT_OK || rc == RAFT_EBUSY))
        cluster_fail(c, at,
                     "leader n%" PRIu64 " %s a %s of n%" PRIu64 " (commit %" PRIu64 "/t%" PRIu64
                     ", term %" PRIu64 ")",
                     at,
                     busy ? "accepted, with a change uncommitted, nothing of its term committed "
                            "or a transfer under way,"
                          : "refused as busy, with none of raft.h's reasons,",
                     cluster_change_name(op), id, raft_commit_of(r),
                     raft_term_at(r, raft_commit_of(r)), raft_term_of(r));
    if (r)
        host_drain(c, &c->nodes[at]);
    return rc;
}

bool cluster_cmd_applied(const struct cluster *c, uint64_t cmd)
{
    return cmd < c->n_proposals && c->proposals[cmd].applied_at;
}

/* ---- queries ---- */

raft_id cluster_leader(const struct cluster *c)
{
    raft_id best = 0;
    raft_term best_term = 0;
    for (size_t i = 1; i <= c->opts.n_nodes; i++) {
        const struct cluster_node *n = &c->nodes[i];
        if (n->r && raft_role_of(n->r) == RAFT_LEADER && raft_term_of(n->r) >= best_term) {
            best = n->id;
            best_term = raft_term_of(n->r);
        }
    }
    return best;
}

bool cluster_is_member(const struct cluster *c, raft_id id)
{
    raft_id l = cluster_leader(c);
    const struct raft_configuration *conf =
        l ? raft_configuration_of(c->nodes[l].r, NULL) : &c->committed_conf;
    return raft_configuration_find(conf, id) != NULL;
}

raft_id cluster_stable_leader(const struct cluster *c)
{
    raft_id l = cluster_leader(c);
    if (!l)
        return 0;
    raft_term term = raft_term_of(c->nodes[l].r);
    for (size_t i = 1; i <= c->opts.n_nodes; i++) {
        const struct cluster_node *n = &c->nodes[i];
        if (n->r && cluster_is_member(c, n->id) &&
            (raft_term_of(n->r) != term || raft_leader_of(n->r) != l))
            return 0;
    }
    return l;
}

bool cluster_converged(const struct cluster *c)
{
    uint64_t chain = c->n_committed ? c->committed[c->n_committed - 1].chain : 0;
    for (size_t i = 1; i <= c->opts.n_nodes; i++) {
        const struct cluster_node *n = &c->nodes[i];
        if (n->r && cluster_is_member(c, n->id) &&
            (n->applied != c->n_committed || n->sm_hash != chain))
            return false;
    }
    return true;
}

bool cluster_run_until(struct cluster *c, bool (*pred)(const struct cluster *c), unsigned max_ticks)
{
    for (unsigned i = 0; i < max_ticks; i++) {
        if (pred(c))
            return true;
        cluster_tick(c);
    }
    return pred(c);
}

raft_term cluster_stored_term(const struct cluster *c, raft_id id, raft_index index)
{
    return node_valid(c, id) ? stored_term_at(&c->nodes[id], index) : 0;
}

raft_index cluster_stored_last(const struct cluster *c, raft_id id)
{
    return node_valid(c, id) ? stored_last(&c->nodes[id]) : 0;
}

/* ---- life cycle ---- */

void cluster_opts_defaults(struct cluster_opts *o)
{
    *o = (struct cluster_opts){
        .n_nodes = 3,
        .seed = 1,
        .election_ticks_min = 10,
        .election_ticks_max = 20,
        .heartbeat_ticks = 2,
        .pre_vote = true,
        .check_quorum = true,
        .max_entries_per_msg = 8,
        .max_inflight_msgs = 8,
    };
}

int cluster_new(const struct cluster_opts *opts, struct cluster **out)
{
    *out = NULL;
    if (opts->n_nodes < 1 || opts->n_nodes > CLUSTER_MAX_NODES || opts->n_spares >= opts->n_nodes)
        return RAFT_EINVAL;
    struct cluster *c = calloc(1, sizeof *c);
    if (!c)
        return RAFT_ENOMEM;
    if (check_init(c) != RAFT_OK) {
        free(c);
        return RAFT_ENOMEM;
    }
    c->opts = *opts;
    uint64_t x = opts->seed;
    for (int i = 0; i < 4; i++)
        c->rng[i] = splitmix64(&x);
    c->net = (struct cluster_net){.delay_min = 1, .delay_max = 1};
    raft_config_defaults(&c->cfg);
    /* Addresses are opaque to the core; the simulated network routes by id alone. */
    for (raft_id id = 1; id <= opts->n_nodes; id++)
        snprintf(c->addresses[id], sizeof c->addresses[id], "sim://%" PRIu64, id);
    c->cfg.bootstrap.n = opts->n_nodes - opts->n_spares;
    c->cfg.bootstrap.members = c->boot_members;
    for (size_t i = 0; i < c->cfg.bootstrap.n; i++)
        c->boot_members[i] =
            (struct raft_member){i + 1, RAFT_VOTER, c->addresses[i + 1], c->addresses[i + 1]};
    if (raft_configuration_copy(&c->committed_conf, &c->cfg.bootstrap) != RAFT_OK) {
        cluster_free(c);
        return RAFT_ENOMEM;
    }
    c->cfg.election_ticks_min = opts->election_ticks_min;
    c->cfg.election_ticks_max = opts->election_ticks_max;
    c->cfg.heartbeat_ticks = opts->heartbeat_ticks;
    c->cfg.pre_vote = opts->pre_vote;
    c->cfg.check_quorum = opts->check_quorum;
    c->cfg.max_entries_per_msg = opts->max_entries_per_msg;
    c->cfg.max_inflight_msgs = opts->max_inflight_msgs;
    if (opts->snapshot_chunk_bytes)
        c->cfg.snapshot_chunk_bytes = opts->snapshot_chunk_bytes;
    if (opts->max_inflight_chunks)
        c->cfg.max_inflight_chunks = opts->max_inflight_chunks;
    c->cfg.random = core_random;
    c->cfg.random_arg = c;
    for (size_t i = 1; i <= opts->n_nodes; i++) {
        struct cluster_node *n = &c->nodes[i];
        n->id = i;
        n->joins = i > c->cfg.bootstrap.n;
        int rc = rk_mem_storage_new(&n->st);
        if (rc == RAFT_OK)
            rc = host_start(c, n);
        if (rc != RAFT_OK) {
            cluster_free(c);
            return rc;
        }
    }
    *out = c;
    return RAFT_OK;
}

void cluster_free(struct cluster *c)
{
    if (!c)
        return;
    for (size_t i = 1; i <= c->opts.n_nodes; i++) {
        struct cluster_node *n = &c->nodes[i];
        if (n->r)
            raft_free(n->r);
        if (n->st)
            n->st->ops->close(n->st);
        free(n->log);
        free(n->snap.data);
        free(n->incoming.data);
        free(n->received.data);
        raft_configuration_free(&n->snap_conf);
    }
    c->trace = NULL;
    cluster_drop_all(c);
    free(c->pending);
    free(c->due);
    check_free(c);
    free(c->proposals);
    free(c->reads);
    free(c);
}
