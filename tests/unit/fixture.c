#include <stdarg.h>
#include <stdlib.h>

#include "fixture.h"

/* Cores live until exit so a failed CHECK (which returns early) leaks nothing under ASan. */
static struct fx *fx_all[1024];
static size_t fx_n_all;

static void fx_free_all(void)
{
    for (size_t i = 0; i < fx_n_all; i++) {
        fx_clear(fx_all[i]);
        raft_free(fx_all[i]->r);
        free(fx_all[i]);
    }
    fx_n_all = 0;
}

static uint32_t fx_random(void *arg, uint32_t bound)
{
    const struct fx *f = arg;
    if (bound == 0)
        return 0;
    return f->longest_timeout ? bound - 1 : 0;
}

static void fx_violate(struct fx *f, const char *fmt, ...)
{
    if (f->violation[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->violation, sizeof f->violation, fmt, ap);
    va_end(ap);
}

static void fx_fill_config(struct fx *f, const struct fx_opts *o, struct raft_member *voters,
                           struct raft_config *cfg)
{
    raft_config_defaults(cfg);
    for (size_t i = 0; i < f->n_voters; i++)
        voters[i] = (struct raft_member){.id = i + 1, .peer_address = "", .client_address = ""};
    cfg->id = f->id;
    cfg->bootstrap = (struct raft_configuration){.n = f->n_voters, .members = voters};
    if (o && o->bootstrap)
        cfg->bootstrap = *o->bootstrap;
    cfg->election_ticks_min = FX_ELECTION_MIN;
    cfg->election_ticks_max = FX_ELECTION_MAX;
    cfg->heartbeat_ticks = FX_HEARTBEAT;
    cfg->random = fx_random;
    cfg->random_arg = f;
    if (!o)
        return;
    cfg->pre_vote = !o->no_pre_vote;
    cfg->check_quorum = !o->no_check_quorum;
    if (o->max_entries_per_msg)
        cfg->max_entries_per_msg = o->max_entries_per_msg;
    if (o->max_bytes_per_msg)
        cfg->max_bytes_per_msg = o->max_bytes_per_msg;
    if (o->max_inflight_msgs)
        cfg->max_inflight_msgs = o->max_inflight_msgs;
    if (o->max_entry_bytes)
        cfg->max_entry_bytes = o->max_entry_bytes;
    if (o->promote_max_lag)
        cfg->promote_max_lag = o->promote_max_lag;
}

struct fx *fx_new(raft_id id, const struct fx_opts *o, int *err)
{
    static const struct fx_opts defaults;
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        abort();
    const struct fx_opts *opts = o ? o : &defaults;
    f->id = id;
    f->n_voters = opts->n_voters ? opts->n_voters : 3;
    f->longest_timeout = opts->longest_timeout;

    struct raft_member voters[16];
    struct raft_config cfg;
    fx_fill_config(f, o, voters, &cfg);

    struct raft_entry entries[FX_MAX_LOG];
    raft_index first = opts->snapshot_index + 1;
    if (first + opts->n_log > FX_MAX_LOG)
        abort();
    f->log[opts->snapshot_index] = opts->snapshot_term;
    for (size_t i = 0; i < opts->n_log; i++) {
        entries[i] = (struct raft_entry){.term = opts->log[i], .index = first + i};
        f->log[first + i] = opts->log[i];
    }
    f->log_last = opts->snapshot_index + opts->n_log;
    f->hs_term = opts->term;
    f->hs_vote = opts->vote;
    f->last_applied = opts->applied;
    struct raft_restore restore = {
        .term = opts->term,
        .vote = opts->vote,
        .snapshot_index = opts->snapshot_index,
        .snapshot_term = opts->snapshot_term,
        .applied = opts->applied,
        .n_entries = opts->n_log,
        .entries = opts->n_log ? entries : NULL,
    };
    if (opts->snapshot_conf)
        restore.snapshot_conf = *opts->snapshot_conf;
    int rc = raft_new(&cfg, o ? &restore : NULL, &f->r);
    if (err)
        *err = rc;
    if (rc != RAFT_OK) {
        free(f);
        return NULL;
    }
    if (fx_n_all == 0)
        atexit(fx_free_all);
    if (fx_n_all == sizeof fx_all / sizeof fx_all[0])
        abort();
    fx_all[fx_n_all++] = f;
    fx_drain(f);
    return f;
}

void fx_clear(struct fx *f)
{
    for (size_t i = 0; i < f->n_out; i++)
        raft_msg_free(&f->out[i].m);
    f->n_out = 0;
}

/* An acknowledgement must not leave before what it acknowledges is durable. */
static void fx_check_ack(struct fx *f, const struct fx_msg *s)
{
    const struct raft_msg *m = &s->m;
    /* A vote binds its term only: once a later term is durable the node can never vote again
     * in the earlier one. */
    bool vote_durable =
        s->durable_term > m->term || (s->durable_term == m->term && s->durable_vote == m->to);
    if (m->type == RAFT_MSG_REQUEST_VOTE_RESP && m->request_vote_resp.granted &&
        !m->request_vote_resp.pre_vote && !vote_durable)
        fx_violate(f, "vote for %" PRIu64 " in term %" PRIu64 " sent before durable (%s)", m->to,
                   m->term, s->after_persist ? "after_persist" : "msgs");
    if (m->type == RAFT_MSG_APPEND_RESP && m->append_resp.success &&
        s->durable_last < m->append_resp.index)
        fx_violate(f, "append ack of index %" PRIu64 " sent with only %" PRIu64 " durable",
                   m->append_resp.index, s->durable_last);
}

static void fx_collect(struct fx *f, const struct raft_msg *msgs, size_t n, bool after_persist)
{
    for (size_t i = 0; i < n; i++) {
        if (f->n_out == FX_MAX_MSGS) {
            fx_violate(f, "fixture outbox full (test forgot fx_clear?)");
            return;
        }
        if (msgs[i].from != f->id)
            fx_violate(f, "message from %" PRIu64 " handed out by node %" PRIu64, msgs[i].from,
                       f->id);
        struct fx_msg *s = &f->out[f->n_out];
        if (raft_msg_copy(&s->m, &msgs[i]) != RAFT_OK)
            abort();
        s->after_persist = after_persist;
        s->durable_term = f->hs_term;
        s->durable_vote = f->hs_vote;
        s->durable_last = f->log_last;
        f->n_out++;
        fx_check_ack(f, s);
    }
}

static void fx_persist_hard_state(struct fx *f, const struct raft_ready *rd)
{
    if (!rd->hard_state_changed)
        return;
    if (rd->term < f->hs_term)
        fx_violate(f, "term went back from %" PRIu64 " to %" PRIu64, f->hs_term, rd->term);
    if (rd->term == f->hs_term && f->hs_vote != 0 && rd->vote != f->hs_vote)
        fx_violate(f, "vote changed from %" PRIu64 " to %" PRIu64 " within term %" PRIu64,
                   f->hs_vote, rd->vote, rd->term);
    f->hs_term = rd->term;
    f->hs_vote = rd->vote;
}

static void fx_persist_entries(struct fx *f, const struct raft_ready *rd)
{
    if (rd->truncate_from) {
        if (rd->truncate_from <= f->last_applied)
            fx_violate(f, "truncate_from %" PRIu64 " removes applied entries", rd->truncate_from);
        if (rd->truncate_from <= f->log_last)
            f->log_last = rd->truncate_from - 1;
        f->last_truncate_from = rd->truncate_from;
    }
    for (size_t i = 0; i < rd->n_entries; i++) {
        const struct raft_entry *e = &rd->entries[i];
        if (e->index > f->log_last + 1)
            fx_violate(f, "entry %" PRIu64 " leaves a gap after %" PRIu64, e->index, f->log_last);
        else if (e->index <= f->log_last)
            fx_violate(f, "entry %" PRIu64 " overwrites a stable entry without truncate_from",
                       e->index);
        if (e->index > 1 && e->index - 1 <= f->log_last && e->term < f->log[e->index - 1])
            fx_violate(f, "entry %" PRIu64 " has a lower term than its predecessor", e->index);
        if (e->term > f->hs_term)
            fx_violate(f, "entry %" PRIu64 " of term %" PRIu64 " above the durable term", e->index,
                       e->term);
        if (e->index > FX_MAX_LOG) {
            fx_violate(f, "fixture log full");
            return;
        }
        f->log[e->index] = e->term;
        f->log_last = e->index;
    }
}

static void fx_apply(struct fx *f, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_committed; i++) {
        const struct raft_entry *e = &rd->committed[i];
        if (e->index != f->last_applied + 1)
            fx_violate(f, "applied %" PRIu64 " after %" PRIu64, e->index, f->last_applied);
        if (e->index > f->log_last || f->log[e->index] != e->term)
            fx_violate(f, "committed entry %" PRIu64 " is not durable locally", e->index);
        if (f->n_applied == FX_MAX_LOG) {
            fx_violate(f, "fixture apply log full");
            return;
        }
        struct fx_applied *a = &f->applied[f->n_applied++];
        *a =
            (struct fx_applied){.index = e->index, .term = e->term, .type = e->type, .len = e->len};
        if (e->len)
            memcpy(a->head, e->data, e->len < sizeof a->head ? e->len : sizeof a->head);
        f->last_applied = e->index;
    }
}

/* raft.h: the snapshot replaces the state machine and the log before anything else. */
static void fx_install_snapshot(struct fx *f, const struct raft_ready *rd)
{
    if (!rd->install_snapshot)
        return;
    if (rd->snapshot.index > FX_MAX_LOG) {
        fx_violate(f, "fixture log full");
        return;
    }
    f->log_last = f->last_applied = rd->snapshot.index;
    f->log[rd->snapshot.index] = rd->snapshot.term;
}

static void fx_record_configuration(struct fx *f, const struct raft_ready *rd)
{
    if (!rd->configuration)
        fx_violate(f, "ready without a configuration");
    if (rd->install_snapshot && !rd->snapshot_conf)
        fx_violate(f, "snapshot installed without its configuration");
    if (rd->install_snapshot && rd->snapshot_conf)
        f->installed_conf_n = rd->snapshot_conf->n;
    if (!rd->configuration_changed || !rd->configuration)
        return;
    f->conf_reports++;
    f->conf_index = rd->configuration_index;
    f->conf_n = rd->configuration->n;
}

void fx_drain(struct fx *f)
{
    unsigned rounds = 0;
    while (raft_has_ready(f->r)) {
        if (++rounds > 100) {
            fx_violate(f, "raft_has_ready never becomes false");
            return;
        }
        struct raft_ready rd;
        raft_ready(f->r, &rd);
        f->readies++;
        fx_collect(f, rd.msgs, rd.n_msgs, false);
        fx_persist_hard_state(f, &rd);
        fx_install_snapshot(f, &rd);
        fx_persist_entries(f, &rd);
        fx_collect(f, rd.msgs_after_persist, rd.n_msgs_after_persist, true);
        fx_apply(f, &rd);
        fx_record_configuration(f, &rd);
        for (size_t i = 0; i < rd.n_read_states && f->n_reads < FX_MAX_READS; i++)
            f->reads[f->n_reads++] = rd.read_states[i];
        raft_advance(f->r, &rd);
    }
    if (raft_term_of(f->r) != f->hs_term || raft_vote_of(f->r) != f->hs_vote)
        fx_violate(f, "term/vote %" PRIu64 "/%" PRIu64 " never handed out for persisting",
                   raft_term_of(f->r), raft_vote_of(f->r));
    if (raft_applied_of(f->r) != f->last_applied)
        fx_violate(f, "raft_applied_of %" PRIu64 " but host applied %" PRIu64,
                   raft_applied_of(f->r), f->last_applied);
}

int fx_step(struct fx *f, const struct raft_msg *m)
{
    int rc = raft_step(f->r, m);
    fx_drain(f);
    return rc;
}

void fx_tick(struct fx *f, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        raft_tick(f->r);
        fx_drain(f);
    }
}

void fx_campaign(struct fx *f)
{
    raft_campaign(f->r);
    fx_drain(f);
}

int fx_propose(struct fx *f, const char *data, raft_index *index)
{
    int rc = raft_propose(f->r, data, strlen(data), index, NULL);
    fx_drain(f);
    return rc;
}

struct raft_msg fx_msg_to(const struct fx *f, enum raft_msg_type type, raft_id from, raft_term term)
{
    return (struct raft_msg){.type = type, .from = from, .to = f->id, .term = term};
}

int fx_vote_req(struct fx *f, raft_id from, raft_term term, raft_index last_index,
                raft_term last_term, bool pre_vote)
{
    struct raft_msg m = fx_msg_to(f, RAFT_MSG_REQUEST_VOTE, from, term);
    m.request_vote = (struct raft_request_vote){last_index, last_term, pre_vote, false};
    return fx_step(f, &m);
}

int fx_vote_resp(struct fx *f, raft_id from, raft_term term, bool granted, bool pre_vote)
{
    struct raft_msg m = fx_msg_to(f, RAFT_MSG_REQUEST_VOTE_RESP, from, term);
    m.request_vote_resp = (struct raft_request_vote_resp){granted, pre_vote};
    return fx_step(f, &m);
}

int fx_append(struct fx *f, raft_id from, raft_term term, raft_index prev_index,
              raft_term prev_term, raft_index commit, const raft_term *terms, size_t n)
{
    struct raft_entry entries[FX_MAX_LOG];
    for (size_t i = 0; i < n; i++)
        entries[i] = (struct raft_entry){.term = terms[i], .index = prev_index + 1 + i};
    struct raft_msg m = fx_msg_to(f, RAFT_MSG_APPEND, from, term);
    m.append = (struct raft_append){.prev_index = prev_index,
                                    .prev_term = prev_term,
                                    .commit = commit,
                                    .n_entries = n,
                                    .entries = n ? entries : NULL};
    return fx_step(f, &m);
}

int fx_append_ok(struct fx *f, raft_id from, raft_index index)
{
    struct raft_msg m = fx_msg_to(f, RAFT_MSG_APPEND_RESP, from, raft_term_of(f->r));
    m.append_resp = (struct raft_append_resp){.success = true, .index = index, .last_index = index};
    return fx_step(f, &m);
}

int fx_append_reject(struct fx *f, raft_id from, raft_index rejected_prev, raft_term conflict_term,
                     raft_index conflict_index, raft_index last_index)
{
    struct raft_msg m = fx_msg_to(f, RAFT_MSG_APPEND_RESP, from, raft_term_of(f->r));
    m.append_resp = (struct raft_append_resp){.success = false,
                                              .index = rejected_prev,
                                              .conflict_term = conflict_term,
                                              .conflict_index = conflict_index,
                                              .last_index = last_index};
    return fx_step(f, &m);
}

bool fx_elect(struct fx *f)
{
    fx_campaign(f);
    for (raft_id p = 1; p <= f->n_voters && raft_role_of(f->r) == RAFT_PRE_CANDIDATE; p++)
        if (p != f->id)
            fx_vote_resp(f, p, raft_term_of(f->r) + 1, true, true);
    for (raft_id p = 1; p <= f->n_voters && raft_role_of(f->r) == RAFT_CANDIDATE; p++)
        if (p != f->id)
            fx_vote_resp(f, p, raft_term_of(f->r), true, false);
    return raft_role_of(f->r) == RAFT_LEADER;
}

void fx_ack_all(struct fx *f)
{
    for (raft_id p = 1; p <= f->n_voters; p++)
        if (p != f->id)
            fx_append_ok(f, p, raft_last_index_of(f->r));
}

static bool fx_matches(const struct fx_msg *s, raft_id to, enum raft_msg_type type)
{
    return s->m.type == type && (to == 0 || s->m.to == to);
}

struct raft_stats fx_stats(const struct fx *f)
{
    struct raft_stats st;
    raft_stats_of(f->r, &st);
    return st;
}

size_t fx_count(const struct fx *f, raft_id to, enum raft_msg_type type)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_out; i++)
        n += fx_matches(&f->out[i], to, type);
    return n;
}

size_t fx_count_appends_with_entries(const struct fx *f, raft_id to)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_out; i++)
        n += fx_matches(&f->out[i], to, RAFT_MSG_APPEND) && f->out[i].m.append.n_entries > 0;
    return n;
}

const struct fx_msg *fx_nth(const struct fx *f, raft_id to, enum raft_msg_type type, size_t nth)
{
    for (size_t i = 0; i < f->n_out; i++)
        if (fx_matches(&f->out[i], to, type) && nth-- == 0)
            return &f->out[i];
    return NULL;
}

const struct fx_msg *fx_last(const struct fx *f, raft_id to, enum raft_msg_type type)
{
    size_t n = fx_count(f, to, type);
    return n ? fx_nth(f, to, type, n - 1) : NULL;
}

/* Raft §5.3 receiver rules, with the conflict hint of raft.h. */
struct raft_msg fx_model_append(struct fx_model *m, const struct raft_msg *a)
{
    struct raft_msg r = {.type = RAFT_MSG_APPEND_RESP, .from = m->id, .to = a->from};
    const struct raft_append *ap = &a->append;
    r.append_resp.index = ap->prev_index;
    if (a->term >= m->term)
        m->term = a->term;
    r.term = m->term;
    if (a->term < m->term) {
        r.append_resp.last_index = m->last;
        return r;
    }
    if (ap->prev_index > m->last) {
        r.append_resp.conflict_index = m->last + 1;
    } else if (ap->prev_index > 0 && m->log[ap->prev_index] != ap->prev_term) {
        raft_term t = m->log[ap->prev_index];
        raft_index i = ap->prev_index;
        while (i > 1 && m->log[i - 1] == t)
            i--;
        r.append_resp.conflict_term = t;
        r.append_resp.conflict_index = i;
    } else {
        for (size_t k = 0; k < ap->n_entries; k++) {
            const struct raft_entry *e = &ap->entries[k];
            if (e->index <= m->last && m->log[e->index] != e->term)
                m->last = e->index - 1;
            if (e->index > m->last && e->index <= FX_MAX_LOG) {
                m->log[e->index] = e->term;
                m->last = e->index;
            }
        }
        r.append_resp.success = true;
        r.append_resp.index = ap->prev_index + ap->n_entries;
    }
    r.append_resp.last_index = m->last;
    return r;
}

size_t fx_deliver(struct fx *f, struct fx_model *m, struct fx_sent *sent, size_t *n_sent,
                  size_t max_sent)
{
    static struct raft_msg resp[FX_MAX_MSGS];
    size_t n = 0, kept = 0;
    for (size_t i = 0; i < f->n_out; i++) {
        struct fx_msg *s = &f->out[i];
        if (s->m.type != RAFT_MSG_APPEND || s->m.to != m->id) {
            f->out[kept++] = *s;
            continue;
        }
        resp[n] = fx_model_append(m, &s->m);
        if (sent && *n_sent < max_sent)
            sent[(*n_sent)++] = (struct fx_sent){s->m.append.prev_index, s->m.append.n_entries,
                                                 resp[n].append_resp.success};
        raft_msg_free(&s->m);
        n++;
    }
    f->n_out = kept;
    for (size_t i = 0; i < n; i++)
        fx_step(f, &resp[i]);
    return n;
}

bool fx_model_matches(const struct fx *f, const struct fx_model *m)
{
    if (m->last != raft_last_index_of(f->r))
        return false;
    for (raft_index i = 1; i <= m->last; i++)
        if (m->log[i] != raft_term_at(f->r, i))
            return false;
    return true;
}

int fx_append_entries(struct fx *f, raft_id from, raft_term term, raft_index prev_index,
                      raft_term prev_term, raft_index commit, const struct raft_entry *entries,
                      size_t n)
{
    struct raft_msg m = fx_msg_to(f, RAFT_MSG_APPEND, from, term);
    m.append = (struct raft_append){.prev_index = prev_index,
                                    .prev_term = prev_term,
                                    .commit = commit,
                                    .n_entries = n,
                                    .entries = (struct raft_entry *)entries};
    return fx_step(f, &m);
}

const struct raft_configuration *fx_conf(struct fx_conf *b, const char *spec)
{
    size_t n = 0;
    for (const char *p = spec; *p;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        bool learner = *p == 'l';
        p += learner;
        char *end;
        raft_id id = strtoull(p, &end, 10);
        p = end;
        snprintf(b->addresses[n][0], sizeof b->addresses[n][0], "p%" PRIu64, id);
        snprintf(b->addresses[n][1], sizeof b->addresses[n][1], "c%" PRIu64, id);
        b->members[n] = (struct raft_member){.id = id,
                                             .role = learner ? RAFT_LEARNER : RAFT_VOTER,
                                             .peer_address = b->addresses[n][0],
                                             .client_address = b->addresses[n][1]};
        n++;
    }
    b->conf = (struct raft_configuration){.n = n, .members = b->members};
    return &b->conf;
}

struct raft_entry fx_conf_entry(raft_term term, raft_index index, const char *spec, uint8_t *buf,
                                size_t cap)
{
    struct fx_conf b;
    uint8_t *data;
    size_t len;
    if (raft_configuration_encode(fx_conf(&b, spec), &data, &len) != RAFT_OK || len > cap)
        abort();
    memcpy(buf, data, len);
    free(data);
    return (struct raft_entry){
        .term = term, .index = index, .type = RAFT_ENTRY_CONFIG, .len = len, .data = buf};
}

bool fx_conf_is(const struct fx *f, const char *spec)
{
    struct fx_conf b;
    const struct raft_configuration *want = fx_conf(&b, spec);
    const struct raft_configuration *have = raft_configuration_of(f->r, NULL);
    if (want->n != have->n)
        return false;
    for (size_t i = 0; i < want->n; i++)
        if (want->members[i].id != have->members[i].id ||
            want->members[i].role != have->members[i].role)
            return false;
    return true;
}

struct fx *fx_leader_of_three(void)
{
    struct fx *f = fx_new(1, &(struct fx_opts){.term = 1}, NULL);
    if (!f || !fx_elect(f))
        return NULL;
    fx_ack_all(f);
    fx_clear(f);
    return f;
}
