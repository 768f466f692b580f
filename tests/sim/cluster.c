/* The deterministic in-memory cluster and its safety checks (see cluster.h). */
#include "cluster.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Commands proposed through cluster_propose_cmd start with this, so that applying one can
 * be traced back to its proposal. */
static const char CMD_MAGIC[8] = {'R', 'K', 'S', 'I', 'M', 'C', 'M', 'D'};
#define CMD_HEADER 16
#define CMD_MAX_PAD 24

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

/* Test fixture: there is no sensible way to continue a simulation without memory. */
static _Noreturn void oom(void)
{
    fprintf(stderr, "cluster: out of memory\n");
    abort();
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom();
    return q;
}

/* Grows *buf so that it holds at least need elements of size sz. */
static void grow(void **buf, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    *buf = xrealloc(*buf, n * sz);
    *cap = n;
}

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

static bool roll_permille(struct cluster *c, unsigned permille)
{
    return permille > 0 && cluster_rand_below(c, 1000) < permille;
}

/* ---- hashing ---- */

static uint64_t fnv_mix(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t entry_hash(const struct raft_entry *e)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    uint8_t type = (uint8_t)e->type;
    h = fnv_mix(h, &type, 1);
    return fnv_mix(h, e->data, e->len);
}

static uint64_t chain_step(uint64_t chain, uint64_t hash)
{
    return fnv_mix(chain ^ 0x9e3779b97f4a7c15ULL, &hash, sizeof hash);
}

/* ---- the event trace ---- */

static void msg_summary(struct cluster_event *ev, const struct raft_msg *m)
{
    ev->msg.type = m->type;
    ev->msg.from = m->from;
    ev->msg.to = m->to;
    ev->msg.term = m->term;
    switch (m->type) {
    case RAFT_MSG_REQUEST_VOTE:
        ev->msg.x = m->request_vote.last_log_index;
        ev->msg.y = m->request_vote.last_log_term;
        ev->msg.flag1 = m->request_vote.pre_vote;
        break;
    case RAFT_MSG_REQUEST_VOTE_RESP:
        ev->msg.flag1 = m->request_vote_resp.granted;
        ev->msg.flag2 = m->request_vote_resp.pre_vote;
        break;
    case RAFT_MSG_APPEND:
        ev->msg.x = m->append.prev_index;
        ev->msg.y = m->append.prev_term;
        ev->msg.z = m->append.commit;
        ev->msg.w = m->append.n_entries;
        ev->msg.v = m->append.n_entries ? m->append.entries[m->append.n_entries - 1].term : 0;
        break;
    case RAFT_MSG_APPEND_RESP:
        ev->msg.flag1 = m->append_resp.success;
        ev->msg.x = m->append_resp.index;
        ev->msg.y = m->append_resp.conflict_term;
        ev->msg.z = m->append_resp.conflict_index;
        ev->msg.w = m->append_resp.last_index;
        break;
    case RAFT_MSG_INSTALL_SNAPSHOT:
        ev->msg.x = m->install_snapshot.last_index;
        ev->msg.y = m->install_snapshot.last_term;
        ev->msg.z = m->install_snapshot.offset;
        ev->msg.w = m->install_snapshot.len;
        ev->msg.flag1 = m->install_snapshot.done;
        break;
    case RAFT_MSG_INSTALL_SNAPSHOT_RESP:
        ev->msg.x = m->install_snapshot_resp.last_index;
        ev->msg.z = m->install_snapshot_resp.offset;
        ev->msg.flag1 = m->install_snapshot_resp.rejected;
        ev->msg.flag2 = m->install_snapshot_resp.done;
        break;
    }
}

static void print_msg(FILE *out, const struct cluster_event *ev)
{
    fprintf(out, "%s %" PRIu64 "->%" PRIu64 " t=%" PRIu64, raft_msg_type_name(ev->msg.type),
            ev->msg.from, ev->msg.to, ev->msg.term);
    switch (ev->msg.type) {
    case RAFT_MSG_REQUEST_VOTE:
        fprintf(out, "%s last=%" PRIu64 "/t%" PRIu64, ev->msg.flag1 ? " pre" : "", ev->msg.x,
                ev->msg.y);
        break;
    case RAFT_MSG_REQUEST_VOTE_RESP:
        fprintf(out, "%s %s", ev->msg.flag2 ? " pre" : "", ev->msg.flag1 ? "granted" : "rejected");
        break;
    case RAFT_MSG_APPEND:
        fprintf(out, " prev=%" PRIu64 "/t%" PRIu64 " commit=%" PRIu64, ev->msg.x, ev->msg.y,
                ev->msg.z);
        if (ev->msg.w)
            fprintf(out, " entries=%" PRIu64 "..%" PRIu64 " (last t%" PRIu64 ")", ev->msg.x + 1,
                    ev->msg.x + ev->msg.w, ev->msg.v);
        break;
    case RAFT_MSG_APPEND_RESP:
        if (ev->msg.flag1)
            fprintf(out, " ok index=%" PRIu64, ev->msg.x);
        else
            fprintf(out, " reject prev=%" PRIu64 " conflict=t%" PRIu64 "@%" PRIu64 " last=%" PRIu64,
                    ev->msg.x, ev->msg.y, ev->msg.z, ev->msg.w);
        break;
    case RAFT_MSG_INSTALL_SNAPSHOT:
        fprintf(out, " snapshot=%" PRIu64 "/t%" PRIu64 " bytes %" PRIu64 "+%" PRIu64 "%s",
                ev->msg.x, ev->msg.y, ev->msg.z, ev->msg.w, ev->msg.flag1 ? " done" : "");
        break;
    case RAFT_MSG_INSTALL_SNAPSHOT_RESP:
        fprintf(out, " snapshot=%" PRIu64 " offset=%" PRIu64 "%s%s", ev->msg.x, ev->msg.z,
                ev->msg.flag1 ? " rejected" : "", ev->msg.flag2 ? " done" : "");
        break;
    }
}

static void print_blocked(FILE *out, uint64_t mask)
{
    if (!mask) {
        fprintf(out, " all links up");
        return;
    }
    fprintf(out, " blocked:");
    for (int from = 1; from <= CLUSTER_MAX_NODES; from++)
        for (int to = 1; to <= CLUSTER_MAX_NODES; to++)
            if (mask >> ((from - 1) * CLUSTER_MAX_NODES + (to - 1)) & 1)
                fprintf(out, " %d>%d", from, to);
}

static const char *const DROP_REASONS[] = {"random", "partition", "node down", "discarded"};
static const char *const CRASH_POINTS[] = {"now", "after sending, before persisting",
                                           "after persisting, before acking",
                                           "right after granting a vote"};

static void print_event(const struct cluster *c, const struct cluster_event *ev, FILE *out)
{
    fprintf(out, "[%6" PRIu64 "] n%" PRIu64 " ", ev->tick, ev->node);
    switch (ev->kind) {
    case EV_SEND:
        fprintf(out, "send    ");
        print_msg(out, ev);
        fprintf(out, " arrives@%" PRIu64 "%s", ev->a, ev->b ? " (duplicate)" : "");
        break;
    case EV_DELIVER:
        fprintf(out, "recv    ");
        print_msg(out, ev);
        break;
    case EV_DROP:
        fprintf(out, "drop    ");
        print_msg(out, ev);
        fprintf(out, " (%s)", DROP_REASONS[ev->a]);
        break;
    case EV_PERSIST:
        fprintf(out, "persist term=%" PRIu64 " vote=%" PRIu64 "%s", ev->a, ev->b,
                ev->msg.flag1 ? "" : " (unchanged)");
        if (ev->c)
            fprintf(out, " truncate>=%" PRIu64, ev->c);
        if (ev->e)
            fprintf(out, " append %" PRIu64 "..%" PRIu64, ev->d, ev->e);
        break;
    case EV_APPLY:
        fprintf(out, "apply   %" PRIu64 "..%" PRIu64 " commit=%" PRIu64, ev->a, ev->b, ev->c);
        break;
    case EV_ROLE:
        fprintf(out,
                "role    %s term=%" PRIu64 " leader=%" PRIu64 " last=%" PRIu64 " commit=%" PRIu64,
                raft_role_name((enum raft_role)ev->a), ev->b, ev->c, ev->d, ev->e);
        break;
    case EV_PROPOSE:
        if (ev->d)
            fprintf(out, "propose cmd=%" PRIu64 " refused: %s", ev->a, raft_strerror((int)ev->d));
        else
            fprintf(out, "propose cmd=%" PRIu64 " at %" PRIu64 "/t%" PRIu64, ev->a, ev->b, ev->c);
        break;
    case EV_CRASH:
        fprintf(out, "CRASH   %s", CRASH_POINTS[ev->a]);
        break;
    case EV_RESTART:
        fprintf(out, "RESTART term=%" PRIu64 " vote=%" PRIu64 " last=%" PRIu64 "%s", ev->a, ev->b,
                ev->c, ev->d ? " FAILED" : "");
        break;
    case EV_NET:
        fprintf(out, "net    ");
        print_blocked(out, ev->a);
        break;
    case EV_NOTE:
        fprintf(out, "note    %s %" PRIu64 " %" PRIu64, ev->note, ev->a, ev->b);
        break;
    case EV_VIOLATION:
        fprintf(out, "VIOLATION %s", c->violation);
        break;
    }
    fputc('\n', out);
}

static void ev_push(struct cluster *c, struct cluster_event *ev)
{
    ev->tick = c->now;
    c->ring[c->n_events++ % CLUSTER_RING] = *ev;
    if (c->trace)
        print_event(c, ev, c->trace);
}

static void ev_simple(struct cluster *c, raft_id node, enum cluster_event_kind kind, uint64_t a,
                      uint64_t b, uint64_t cc, uint64_t d, uint64_t e)
{
    struct cluster_event ev = {.node = node, .kind = kind, .a = a, .b = b, .c = cc, .d = d, .e = e};
    ev_push(c, &ev);
}

static void ev_msg(struct cluster *c, enum cluster_event_kind kind, const struct raft_msg *m,
                   uint64_t a, uint64_t b)
{
    struct cluster_event ev = {
        .node = kind == EV_SEND ? m->from : m->to, .kind = kind, .a = a, .b = b};
    msg_summary(&ev, m);
    ev_push(c, &ev);
}

static void note_at(struct cluster *c, raft_id node, const char *what, uint64_t a, uint64_t b)
{
    struct cluster_event ev = {.node = node, .kind = EV_NOTE, .note = what, .a = a, .b = b};
    ev_push(c, &ev);
}

void cluster_note(struct cluster *c, const char *what, uint64_t a, uint64_t b)
{
    note_at(c, 0, what, a, b);
}

void cluster_dump_trace(const struct cluster *c, FILE *out, size_t last)
{
    uint64_t kept = c->n_events < CLUSTER_RING ? c->n_events : CLUSTER_RING;
    if (last > kept)
        last = kept;
    for (uint64_t i = c->n_events - last; i < c->n_events; i++)
        print_event(c, &c->ring[i % CLUSTER_RING], out);
}

void cluster_fail(struct cluster *c, raft_id node, const char *fmt, ...)
{
    if (c->failed)
        return;
    c->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->violation, sizeof c->violation, fmt, ap);
    va_end(ap);
    ev_simple(c, node, EV_VIOLATION, 0, 0, 0, 0, 0);
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

/* ---- the network ---- */

/* More in flight than any sane exchange produces: a core amplifying traffic. */
#define STORM_MSGS 200000

static void enqueue(struct cluster *c, const struct raft_msg *m, uint64_t at, bool duplicate)
{
    if (c->n_pending >= STORM_MSGS) {
        cluster_fail(c, m->from,
                     "message storm: %d messages in flight (last: %s from n%" PRIu64 " to n%" PRIu64
                     ")",
                     STORM_MSGS, raft_msg_type_name(m->type), m->from, m->to);
        return;
    }
    grow((void **)&c->pending, &c->cap_pending, c->n_pending + 1, sizeof *c->pending);
    struct cluster_pending *p = &c->pending[c->n_pending];
    if (raft_msg_copy(&p->m, m) != RAFT_OK)
        oom();
    p->at = at;
    p->seq = c->next_seq++;
    c->n_pending++;
    ev_msg(c, EV_SEND, m, at, duplicate);
}

static uint64_t pick_delay(struct cluster *c)
{
    const struct cluster_net *n = &c->net;
    uint64_t d = n->delay_min;
    if (n->delay_max > n->delay_min)
        d += cluster_rand_below(c, n->delay_max - n->delay_min + 1);
    if (roll_permille(c, n->long_delay_permille))
        d += cluster_rand_below(c, n->long_delay_max + 1);
    return d ? d : 1;
}

static raft_index stored_last(const struct cluster_node *n)
{
    return n->log_base + n->log_n;
}

static const struct cluster_logent *stored_at(const struct cluster_node *n, raft_index index)
{
    return index > n->log_base && index <= stored_last(n) ? &n->log[index - n->log_base - 1] : NULL;
}

static raft_term stored_term_at(const struct cluster_node *n, raft_index index)
{
    const struct cluster_logent *e = stored_at(n, index);
    return e ? e->term : index == n->log_base ? n->base_term : 0;
}

/* A successful append response says "my log matches yours up to index": the entry there
 * must be durable and be the one the leader of that term holds (while it still leads). */
static void check_append_ack(struct cluster *c, const struct cluster_node *n, raft_term term,
                             raft_index index)
{
    if (index > stored_last(n)) {
        cluster_fail(c, n->id,
                     "append acknowledged before it was durable: n%" PRIu64 " acks index %" PRIu64
                     " but storage holds up to %" PRIu64,
                     n->id, index, stored_last(n));
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

/* A node acknowledges only what is durable: a granted vote and a successful append response
 * promise state that a crash must not lose (raft.h: msgs_after_persist). */
static void check_ack_durable(struct cluster *c, const struct cluster_node *n,
                              const struct raft_msg *m)
{
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
        check_append_ack(c, n, m->term, m->append_resp.index);
}

/* ---- snapshots of the simulated state machine ---- */

#define SNAP_HEADER 24 /* index, term, hash chain */

static void snap_swap(struct cluster_snapshot *a, struct cluster_snapshot *b)
{
    struct cluster_snapshot t = *a;
    *a = *b;
    *b = t;
}

/* The state machine becomes the one in n->snap: on restart, or on installing a snapshot. */
static void sm_restore(struct cluster *c, struct cluster_node *n)
{
    const struct cluster_snapshot *sn = &n->snap;
    raft_index index = 0;
    raft_term term = 0;
    uint64_t chain = 0;
    if (sn->meta.size >= SNAP_HEADER) {
        memcpy(&index, sn->data, 8);
        memcpy(&term, sn->data + 8, 8);
        memcpy(&chain, sn->data + 16, 8);
    }
    if (index != sn->meta.index || term != sn->meta.term) {
        cluster_fail(c, n->id,
                     "snapshot of n%" PRIu64 " says %" PRIu64 "/t%" PRIu64
                     " but its bytes hold %" PRIu64 "/t%" PRIu64,
                     n->id, sn->meta.index, sn->meta.term, index, term);
        return;
    }
    if (index > c->n_committed || c->committed[index - 1].chain != chain ||
        c->committed[index - 1].term != term)
        cluster_fail(c, n->id,
                     "State Machine Safety: n%" PRIu64 " restores a snapshot at %" PRIu64
                     "/t%" PRIu64 " whose state no node applied",
                     n->id, index, term);
    n->applied = index;
    n->sm_hash = chain;
}

/* Snapshots the state machine and compacts the log, as raftd does every so many entries. */
static void node_maybe_compact(struct cluster *c, struct cluster_node *n)
{
    unsigned every = c->opts.snapshot_every;
    if (!every || !n->r || n->applied < n->snap.meta.index + every)
        return;
    struct cluster_snapshot *sn = &n->snap;
    raft_index index = n->applied;
    raft_term term = stored_term_at(n, index);
    size_t size = SNAP_HEADER + cluster_rand_below(c, 320);
    grow((void **)&sn->data, &sn->cap, size, 1);
    memcpy(sn->data, &index, 8);
    memcpy(sn->data + 8, &term, 8);
    memcpy(sn->data + 16, &n->sm_hash, 8);
    for (size_t i = SNAP_HEADER; i < size; i++)
        sn->data[i] = (uint8_t)(n->sm_hash >> (8 * (i % 8)));
    sn->meta = (struct raft_snapshot_meta){index, term, size};
    raft_index to = index > c->opts.compact_margin ? index - c->opts.compact_margin : 0;
    int rc = raft_compact(n->r, &sn->meta, to);
    note_at(c, n->id, "snapshot taken (index, compact to)", index, to);
    if (rc != RAFT_OK)
        cluster_fail(c, n->id,
                     "raft_compact refused n%" PRIu64 "'s snapshot at applied %" PRIu64 "/t%" PRIu64
                     ": %s",
                     n->id, index, term, raft_strerror(rc));
    c->stats_snapshots_taken++;
}

/* An outgoing InstallSnapshot leaves the core without bytes: the host fills them in. */
static bool fill_chunk(struct cluster *c, const struct cluster_node *n, struct raft_msg *m)
{
    struct raft_install_snapshot *is = &m->install_snapshot;
    const struct cluster_snapshot *sn = &n->snap;
    if (sn->meta.index != is->last_index || sn->meta.term != is->last_term ||
        is->offset + is->len > sn->meta.size ||
        is->done != (is->offset + is->len == sn->meta.size)) {
        cluster_fail(c, n->id,
                     "n%" PRIu64 " asked to send bytes %" PRIu64 "+%zu%s of snapshot %" PRIu64
                     "/t%" PRIu64 " but holds %" PRIu64 "/t%" PRIu64 " of %" PRIu64 " bytes",
                     n->id, is->offset, is->len, is->done ? " (done)" : "", is->last_index,
                     is->last_term, sn->meta.index, sn->meta.term, sn->meta.size);
        return false;
    }
    is->data = is->len ? sn->data + is->offset : NULL;
    return true;
}

/* Writes received chunks, in order, into the snapshot being received. */
static void receive_chunks(struct cluster *c, struct cluster_node *n, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_snapshot_chunks; i++) {
        const struct raft_snapshot_chunk *ch = &rd->snapshot_chunks[i];
        struct cluster_snapshot *in = &n->incoming;
        if (ch->offset == 0)
            in->meta = (struct raft_snapshot_meta){ch->index, ch->term, 0};
        if (in->meta.index != ch->index || in->meta.term != ch->term ||
            in->meta.size != ch->offset) {
            cluster_fail(c, n->id,
                         "n%" PRIu64 " handed chunk at %" PRIu64 " of snapshot %" PRIu64
                         "/t%" PRIu64 " after %" PRIu64 " bytes of %" PRIu64 "/t%" PRIu64,
                         n->id, ch->offset, ch->index, ch->term, in->meta.size, in->meta.index,
                         in->meta.term);
            return;
        }
        grow((void **)&in->data, &in->cap, ch->offset + ch->len, 1);
        if (ch->len)
            memcpy(in->data + ch->offset, ch->data, ch->len);
        in->meta.size += ch->len;
        if (ch->done) {
            snap_swap(&n->received, in);
            in->meta = (struct raft_snapshot_meta){0};
        }
    }
}

static void install_snapshot(struct cluster *c, struct cluster_node *n, const struct raft_ready *rd)
{
    const struct raft_snapshot_meta *want = &rd->snapshot;
    const struct raft_snapshot_meta *got = &n->received.meta;
    if (got->index != want->index || got->term != want->term || got->size != want->size) {
        cluster_fail(c, n->id,
                     "n%" PRIu64 " told to install snapshot %" PRIu64 "/t%" PRIu64
                     " but received %" PRIu64 "/t%" PRIu64,
                     n->id, want->index, want->term, got->index, got->term);
        return;
    }
    if (want->index < n->applied)
        cluster_fail(c, n->id,
                     "n%" PRIu64 " installs snapshot %" PRIu64 " below its applied %" PRIu64, n->id,
                     want->index, n->applied);
    snap_swap(&n->snap, &n->received);
    n->received.meta = (struct raft_snapshot_meta){0};
    n->log_base = want->index;
    n->base_term = want->term;
    n->log_n = 0;
    sm_restore(c, n);
    c->stats_snapshots_installed++;
    note_at(c, n->id, "snapshot installed (index, term)", want->index, want->term);
}

static void send_msgs(struct cluster *c, const struct cluster_node *n, const struct raft_msg *msgs,
                      size_t count)
{
    for (size_t i = 0; i < count; i++) {
        struct raft_msg filled = msgs[i];
        const struct raft_msg *m = &filled;
        if (m->type == RAFT_MSG_INSTALL_SNAPSHOT && !fill_chunk(c, n, &filled))
            continue;
        check_ack_durable(c, n, m);
        if (roll_permille(c, c->net.drop_permille)) {
            ev_msg(c, EV_DROP, m, 0, 0);
            c->stats_dropped++;
            continue;
        }
        enqueue(c, m, c->now + pick_delay(c), false);
        if (roll_permille(c, c->net.dup_permille)) {
            enqueue(c, m, c->now + pick_delay(c), true);
            c->stats_duplicated++;
        }
    }
}

/* ---- the host loop of one node ---- */

static void node_crash(struct cluster *c, struct cluster_node *n, enum cluster_crash_point at)
{
    if (n->r)
        raft_free(n->r);
    n->r = NULL;
    n->applied = 0;
    n->sm_hash = 0;
    n->lead_term = 0;
    n->role = RAFT_FOLLOWER;
    n->crash_at = CRASH_NONE;
    n->dirty = false;
    n->crashes++;
    ev_simple(c, n->id, EV_CRASH, at, 0, 0, 0, 0);
}

static void became_leader(struct cluster *c, struct cluster_node *n, raft_term term)
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
    /* Compacted entries live in the snapshot, which was checked when it was taken. */
    raft_index first = raft_first_index_of(n->r);
    for (raft_index i = first > 1 ? first - 1 : 1; i <= c->n_committed; i++) {
        raft_term t = raft_term_at(n->r, i);
        if (t != c->committed[i - 1].term) {
            cluster_fail(c, n->id,
                         "Leader Completeness: n%" PRIu64 " became leader of term %" PRIu64
                         " holding term %" PRIu64 " at index %" PRIu64 ", where term %" PRIu64
                         " was committed",
                         n->id, term, t, i, c->committed[i - 1].term);
            break;
        }
    }
    n->lead_term = term;
    n->lead_last = raft_last_index_of(n->r);
    c->stats_elections_won++;
}

/* Looks at the core after each call into it, to see role changes as they happen. */
static void node_observe(struct cluster *c, struct cluster_node *n)
{
    enum raft_role role = raft_role_of(n->r);
    raft_term term = raft_term_of(n->r);
    if (role != n->role || term != n->term)
        ev_simple(c, n->id, EV_ROLE, role, term, raft_leader_of(n->r), raft_last_index_of(n->r),
                  raft_commit_of(n->r));
    n->role = role;
    n->term = term;
    if (role != RAFT_LEADER) {
        n->lead_term = 0;
        return;
    }
    if (n->lead_term != term) {
        became_leader(c, n, term);
        return;
    }
    raft_index last = raft_last_index_of(n->r);
    if (last < n->lead_last)
        cluster_fail(c, n->id,
                     "Leader Append-Only: leader n%" PRIu64 " of term %" PRIu64
                     " shrank its log from %" PRIu64 " to %" PRIu64,
                     n->id, term, n->lead_last, last);
    n->lead_last = last;
}

static void check_hard_state(struct cluster *c, struct cluster_node *n, const struct raft_ready *rd)
{
    if (rd->term < n->hs_term)
        cluster_fail(c, n->id, "persisted term went back from %" PRIu64 " to %" PRIu64, n->hs_term,
                     rd->term);
    else if (rd->term == n->hs_term && n->hs_vote && rd->vote != n->hs_vote)
        cluster_fail(c, n->id,
                     "persisted vote changed within term %" PRIu64 " from n%" PRIu64
                     " to n%" PRIu64,
                     rd->term, n->hs_vote, rd->vote);
    n->hs_term = rd->term;
    n->hs_vote = rd->vote;
}

static void node_persist(struct cluster *c, struct cluster_node *n, const struct raft_ready *rd)
{
    if (n->lead_term && rd->truncate_from && rd->truncate_from <= stored_last(n))
        cluster_fail(c, n->id,
                     "Leader Append-Only: leader n%" PRIu64 " truncates its log at %" PRIu64, n->id,
                     rd->truncate_from);
    int rc = n->st->ops->save(n->st, rd);
    if (rc != RAFT_OK) {
        cluster_fail(c, n->id,
                     "storage refused the ready of n%" PRIu64 " (%s): truncate_from=%" PRIu64
                     " first entry=%" PRIu64 " stored last=%" PRIu64,
                     n->id, raft_strerror(rc), rd->truncate_from,
                     rd->n_entries ? rd->entries[0].index : 0, stored_last(n));
        return;
    }
    receive_chunks(c, n, rd);
    if (rd->install_snapshot)
        install_snapshot(c, n, rd);
    if (rd->hard_state_changed)
        check_hard_state(c, n, rd);
    if (rd->truncate_from > n->log_base && rd->truncate_from <= stored_last(n)) {
        n->log_n = rd->truncate_from - n->log_base - 1;
        c->stats_truncations++;
    }
    grow((void **)&n->log, &n->log_cap, n->log_n + rd->n_entries, sizeof *n->log);
    for (size_t i = 0; i < rd->n_entries; i++) {
        const struct raft_entry *e = &rd->entries[i];
        if (e->term > n->hs_term)
            cluster_fail(c, n->id,
                         "n%" PRIu64 " persisted entry %" PRIu64 "/t%" PRIu64
                         " from beyond its term %" PRIu64,
                         n->id, e->index, e->term, n->hs_term);
        raft_term prev = stored_term_at(n, e->index - 1);
        uint64_t h = entry_hash(e);
        lm_check(c, n->id, e, prev, h);
        n->log[n->log_n++] = (struct cluster_logent){e->term, h};
    }
    if (rd->hard_state_changed || rd->truncate_from || rd->n_entries) {
        struct cluster_event ev = {.node = n->id,
                                   .kind = EV_PERSIST,
                                   .a = n->hs_term,
                                   .b = n->hs_vote,
                                   .c = rd->truncate_from};
        ev.msg.flag1 = rd->hard_state_changed;
        if (rd->n_entries) {
            ev.d = rd->entries[0].index;
            ev.e = rd->entries[rd->n_entries - 1].index;
        }
        ev_push(c, &ev);
    }
}

static void check_command(struct cluster *c, raft_id node, const struct raft_entry *e)
{
    if (e->type != RAFT_ENTRY_NORMAL || e->len < CMD_HEADER || memcmp(e->data, CMD_MAGIC, 8))
        return;
    uint64_t cmd;
    memcpy(&cmd, e->data + 8, sizeof cmd);
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
}

static void node_apply(struct cluster *c, struct cluster_node *n, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_committed; i++) {
        const struct raft_entry *e = &rd->committed[i];
        uint64_t h = entry_hash(e);
        if (e->index != n->applied + 1) {
            cluster_fail(c, n->id, "n%" PRIu64 " applied index %" PRIu64 " after %" PRIu64, n->id,
                         e->index, n->applied);
            return;
        }
        const struct cluster_logent *se = stored_at(n, e->index);
        if (!se || se->term != e->term || se->hash != h)
            cluster_fail(c, n->id,
                         "n%" PRIu64 " applied %" PRIu64 "/t%" PRIu64
                         " which its storage does not hold (stored last %" PRIu64 ")",
                         n->id, e->index, e->term, stored_last(n));
        apply_global(c, n->id, e, h);
        n->applied = e->index;
        n->sm_hash = chain_step(n->sm_hash, h);
    }
    if (rd->n_committed)
        ev_simple(c, n->id, EV_APPLY, rd->committed[0].index, n->applied, rd->commit, 0, 0);
}

static void check_reads(struct cluster *c, struct cluster_node *n, const struct raft_ready *rd)
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
        note_at(c, n->id, "read confirmed (ctx, index)", rs->ctx, rs->index);
    }
}

static bool granted_vote(const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_msgs_after_persist; i++) {
        const struct raft_msg *m = &rd->msgs_after_persist[i];
        if (m->type == RAFT_MSG_REQUEST_VOTE_RESP && m->request_vote_resp.granted &&
            !m->request_vote_resp.pre_vote)
            return true;
    }
    return false;
}

/* Runs the host loop of raft.h until the core has no more work. */
static void node_drain(struct cluster *c, struct cluster_node *n)
{
    n->dirty = false;
    if (!n->r)
        return;
    node_observe(c, n);
    for (int rounds = 0; raft_has_ready(n->r); rounds++) {
        if (rounds == 1000) {
            cluster_fail(c, n->id, "n%" PRIu64 " keeps reporting work after 1000 readies", n->id);
            return;
        }
        struct raft_ready rd;
        raft_ready(n->r, &rd);
        send_msgs(c, n, rd.msgs, rd.n_msgs);
        if (n->crash_at == CRASH_BEFORE_PERSIST) {
            node_crash(c, n, CRASH_BEFORE_PERSIST);
            return;
        }
        node_persist(c, n, &rd);
        if (n->crash_at == CRASH_AFTER_PERSIST) {
            node_crash(c, n, CRASH_AFTER_PERSIST);
            return;
        }
        send_msgs(c, n, rd.msgs_after_persist, rd.n_msgs_after_persist);
        if (granted_vote(&rd) && roll_permille(c, c->vote_crash_permille)) {
            node_crash(c, n, CRASH_AFTER_VOTE);
            return;
        }
        node_apply(c, n, &rd);
        check_reads(c, n, &rd);
        raft_advance(n->r, &rd);
        node_observe(c, n);
        node_maybe_compact(c, n);
    }
}

/* ---- delivery ---- */

static int pending_cmp(const void *a, const void *b)
{
    const struct cluster_pending *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool node_valid(const struct cluster *c, raft_id id)
{
    return id >= 1 && id <= c->opts.n_nodes;
}

static void deliver_one(struct cluster *c, const struct raft_msg *m, uint64_t seq)
{
    if (!node_valid(c, m->to) || !node_valid(c, m->from) || c->blocked[m->from][m->to]) {
        ev_msg(c, EV_DROP, m, 1, 0);
        c->stats_dropped++;
        return;
    }
    struct cluster_node *n = &c->nodes[m->to];
    if (!n->r) {
        ev_msg(c, EV_DROP, m, 2, 0);
        c->stats_dropped++;
        return;
    }
    ev_msg(c, EV_DELIVER, m, 0, 0);
    c->stats_delivered++;
    if (seq < c->last_seq[m->from][m->to])
        c->stats_reordered++;
    else
        c->last_seq[m->from][m->to] = seq;
    raft_step(n->r, m);
    node_observe(c, n); /* every leader is seen, even one that lasts a single step */
    if (roll_permille(c, c->batch_permille))
        n->dirty = true;
    else
        node_drain(c, n);
}

/* Delivers every message due by upto, in order of arrival time. */
static size_t deliver_due(struct cluster *c, uint64_t upto)
{
    size_t n_due = 0, kept = 0;
    for (size_t i = 0; i < c->n_pending; i++) {
        if (c->pending[i].at <= upto) {
            grow((void **)&c->due, &c->cap_due, n_due + 1, sizeof *c->due);
            c->due[n_due++] = c->pending[i];
        } else {
            c->pending[kept++] = c->pending[i];
        }
    }
    c->n_pending = kept;
    if (n_due > 1)
        qsort(c->due, n_due, sizeof *c->due, pending_cmp);
    for (size_t i = 0; i < n_due; i++) {
        deliver_one(c, &c->due[i].m, c->due[i].seq);
        raft_msg_free(&c->due[i].m);
    }
    for (size_t i = 1; i <= c->opts.n_nodes; i++)
        if (c->nodes[i].dirty)
            node_drain(c, &c->nodes[i]);
    return n_due;
}

void cluster_tick(struct cluster *c)
{
    c->now++;
    deliver_due(c, c->now);
    for (size_t i = 1; i <= c->opts.n_nodes; i++) {
        struct cluster_node *n = &c->nodes[i];
        if (!n->r)
            continue;
        raft_tick(n->r);
        node_drain(c, n);
    }
}

void cluster_ticks(struct cluster *c, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        cluster_tick(c);
}

size_t cluster_deliver_all(struct cluster *c)
{
    size_t total = 0;
    /* Delivery without ticks cannot loop forever (only ticks start new exchanges), but a
     * faulty core could ping-pong; the bound keeps a test from hanging on it. */
    for (int round = 0; round < 10000 && c->n_pending; round++)
        total += deliver_due(c, UINT64_MAX);
    return total;
}

void cluster_drop_all(struct cluster *c)
{
    for (size_t i = 0; i < c->n_pending; i++) {
        ev_msg(c, EV_DROP, &c->pending[i].m, 3, 0);
        raft_msg_free(&c->pending[i].m);
    }
    c->n_pending = 0;
}

/* ---- controls ---- */

static void net_event(struct cluster *c)
{
    uint64_t mask = 0;
    for (size_t f = 1; f <= c->opts.n_nodes; f++)
        for (size_t t = 1; t <= c->opts.n_nodes; t++)
            if (c->blocked[f][t])
                mask |= 1ULL << ((f - 1) * CLUSTER_MAX_NODES + (t - 1));
    ev_simple(c, 0, EV_NET, mask, 0, 0, 0, 0);
}

void cluster_partition(struct cluster *c, const raft_id *side, size_t n)
{
    bool in[CLUSTER_MAX_NODES + 1] = {false};
    for (size_t i = 0; i < n; i++)
        if (node_valid(c, side[i]))
            in[side[i]] = true;
    for (size_t f = 1; f <= c->opts.n_nodes; f++)
        for (size_t t = 1; t <= c->opts.n_nodes; t++)
            if (in[f] != in[t])
                c->blocked[f][t] = true;
    net_event(c);
}

void cluster_block(struct cluster *c, raft_id from, raft_id to)
{
    if (node_valid(c, from) && node_valid(c, to))
        c->blocked[from][to] = true;
    net_event(c);
}

void cluster_heal(struct cluster *c)
{
    memset(c->blocked, 0, sizeof c->blocked);
    net_event(c);
}

bool cluster_is_up(const struct cluster *c, raft_id id)
{
    return node_valid(c, id) && c->nodes[id].r;
}

void cluster_crash(struct cluster *c, raft_id id)
{
    if (cluster_is_up(c, id))
        node_crash(c, &c->nodes[id], CRASH_NONE);
}

void cluster_crash_at(struct cluster *c, raft_id id, enum cluster_crash_point at)
{
    if (cluster_is_up(c, id))
        c->nodes[id].crash_at = at;
}

/* Storage must give back exactly what was saved: anything else would make every later
 * check meaningless. */
static void check_restore(struct cluster *c, const struct cluster_node *n,
                          const struct raft_restore *rs)
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

static int node_start(struct cluster *c, struct cluster_node *n)
{
    struct raft_restore rs;
    int rc = n->st->ops->load(n->st, &rs);
    if (rc != RAFT_OK)
        return rc;
    check_restore(c, n, &rs);
    /* The state machine comes back from the host's latest snapshot, if any. */
    rs.snapshot = n->snap.meta;
    rs.applied = n->snap.meta.index;
    if (rs.applied)
        sm_restore(c, n);
    struct raft_config cfg = c->cfg;
    cfg.id = n->id;
    rc = raft_new(&cfg, &rs, &n->r);
    ev_simple(c, n->id, EV_RESTART, rs.term, rs.vote, rs.n_entries, rc, 0);
    rk_storage_restore_free(&rs);
    if (rc != RAFT_OK) {
        n->r = NULL;
        cluster_fail(c, n->id, "raft_new refused the restored state of n%" PRIu64 ": %s", n->id,
                     raft_strerror(rc));
        return rc;
    }
    n->role = RAFT_FOLLOWER;
    n->term = raft_term_of(n->r);
    node_drain(c, n);
    return RAFT_OK;
}

int cluster_restart(struct cluster *c, raft_id id)
{
    if (!node_valid(c, id) || c->nodes[id].r)
        return RAFT_EINVAL;
    return node_start(c, &c->nodes[id]);
}

void cluster_campaign(struct cluster *c, raft_id id)
{
    if (!cluster_is_up(c, id))
        return;
    raft_campaign(c->nodes[id].r);
    node_drain(c, &c->nodes[id]);
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
    ev_simple(c, id, EV_PROPOSE, number, index, term, (uint64_t)rc, 0);
    if (rc != RAFT_OK)
        return rc;
    grow((void **)&c->proposals, &c->cap_proposals, c->n_proposals + 1, sizeof *c->proposals);
    c->proposals[c->n_proposals++] = (struct cluster_proposal){id, index, term, 0};
    if (cmd)
        *cmd = number;
    node_drain(c, &c->nodes[id]);
    return RAFT_OK;
}

int cluster_read(struct cluster *c, raft_id id, uint64_t *ctx)
{
    uint64_t number = c->n_reads;
    int rc = cluster_is_up(c, id) ? raft_read_index(c->nodes[id].r, number) : RAFT_ENOTLEADER;
    note_at(c, id, rc ? "read refused (ctx, err)" : "read asked (ctx, min index)", number,
            rc ? (uint64_t)rc : c->n_committed);
    if (rc != RAFT_OK)
        return rc;
    grow((void **)&c->reads, &c->cap_reads, c->n_reads + 1, sizeof *c->reads);
    c->reads[c->n_reads++] = (struct cluster_read){id, c->n_committed, 0};
    if (ctx)
        *ctx = number;
    node_drain(c, &c->nodes[id]);
    return RAFT_OK;
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

raft_id cluster_stable_leader(const struct cluster *c)
{
    raft_id l = cluster_leader(c);
    if (!l)
        return 0;
    raft_term term = raft_term_of(c->nodes[l].r);
    for (size_t i = 1; i <= c->opts.n_nodes; i++) {
        const struct cluster_node *n = &c->nodes[i];
        if (n->r && (raft_term_of(n->r) != term || raft_leader_of(n->r) != l))
            return 0;
    }
    return l;
}

bool cluster_converged(const struct cluster *c)
{
    uint64_t chain = c->n_committed ? c->committed[c->n_committed - 1].chain : 0;
    for (size_t i = 1; i <= c->opts.n_nodes; i++) {
        const struct cluster_node *n = &c->nodes[i];
        if (n->r && (n->applied != c->n_committed || n->sm_hash != chain))
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
    if (opts->n_nodes < 1 || opts->n_nodes > CLUSTER_MAX_NODES)
        return RAFT_EINVAL;
    struct cluster *c = calloc(1, sizeof *c);
    struct cluster_lm *lm = calloc(1, sizeof *lm);
    if (!c || !lm) {
        free(c);
        free(lm);
        return RAFT_ENOMEM;
    }
    c->lm = lm;
    lm_grow(lm);
    c->opts = *opts;
    uint64_t x = opts->seed;
    for (int i = 0; i < 4; i++)
        c->rng[i] = splitmix64(&x);
    c->net = (struct cluster_net){.delay_min = 1, .delay_max = 1};
    for (size_t i = 0; i < opts->n_nodes; i++)
        c->voters[i] = i + 1;
    raft_config_defaults(&c->cfg);
    c->cfg.n_voters = opts->n_nodes;
    c->cfg.voters = c->voters;
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
        int rc = rk_mem_storage_new(&n->st);
        if (rc == RAFT_OK)
            rc = node_start(c, n);
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
    }
    c->trace = NULL;
    cluster_drop_all(c);
    free(c->pending);
    free(c->due);
    free(c->leader_of_term);
    for (size_t i = 0; i < c->n_committed; i++)
        free(c->committed[i].data);
    free(c->committed);
    free(c->proposals);
    free(c->reads);
    free(c->lm->slots);
    free(c->lm);
    free(c);
}
