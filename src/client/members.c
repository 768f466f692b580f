/* The membership calls (client.h, "Membership"): requests answered by the leader with a
 * MemberList, turned into raftkv_members. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/call.h"
#include "raftkv/client.h"

void raftkv_members_free(struct raftkv_members *m)
{
    if (!m)
        return;
    free(m->members);
    m->members = NULL;
    m->n = 0;
}

static void member_fill(const Raftkv__Client__Member *m, struct raftkv_member *out)
{
    out->id = m->id;
    snprintf(out->role, sizeof out->role, "%s", m->role ? m->role : "");
    snprintf(out->peer_address, sizeof out->peer_address, "%s",
             m->peer_address ? m->peer_address : "");
    snprintf(out->client_address, sizeof out->client_address, "%s",
             m->client_address ? m->client_address : "");
    out->match_index = m->match_index;
    out->healthy = m->healthy;
}

static int members_fill(const Raftkv__Client__MemberList *l, struct raftkv_members *out)
{
    out->leader_id = l->leader_id;
    out->term = l->term;
    out->configuration_index = l->configuration_index;
    out->committed = l->committed;
    out->last_log_index = l->last_log_index;
    out->members = calloc(l->n_members ? l->n_members : 1, sizeof *out->members);
    if (!out->members)
        return RAFTKV_ENOMEM;
    out->n = l->n_members;
    for (size_t i = 0; i < l->n_members; i++)
        member_fill(l->members[i], &out->members[i]);
    return RAFTKV_OK;
}

/* The status of a finished call, with out filled from its answer. A refusal of a change
 * that an earlier, unanswered attempt may have made is no refusal of the change itself. */
static int members_answer(const struct rk_call_result *r, bool change, struct raftkv_members *out)
{
    snprintf(out->error, sizeof out->error, "%s", r->error);
    const Raftkv__Client__MemberList *l = r->resp ? r->resp->members : NULL;
    if (l && members_fill(l, out) != RAFTKV_OK)
        return RAFTKV_ENOMEM;
    if (r->status == RAFTKV_INVALID && change && r->answer_lost) {
        snprintf(out->error, sizeof out->error,
                 "outcome unknown: an earlier attempt got no answer and may have taken effect; "
                 "the retry was refused: %.120s",
                 r->error);
        return RAFTKV_UNAVAILABLE;
    }
    if (r->status == RAFTKV_OK && !l) {
        snprintf(out->error, sizeof out->error, "malformed answer: no member list");
        return RAFTKV_EINTERNAL;
    }
    return r->status;
}

/* Runs one membership request (retrying, to the leader) and fills out, which may be NULL,
 * from its answer. */
static int members_request(struct raftkv_client *c, const Raftkv__Client__Request *req,
                           struct raftkv_members *out)
{
    struct raftkv_members discard;
    if (!out)
        out = &discard;
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t len;
    struct rk_call *call = NULL;
    int rv = rk_request_pack(req, &buf, &len);
    if (rv == RAFTKV_OK)
        rv = rk_call_run(c, buf, len, RK_ANY_ENDPOINT, &call);
    if (rv == RAFTKV_OK) {
        bool change = req->body_case != RAFTKV__CLIENT__REQUEST__BODY_MEMBER_LIST;
        rv = members_answer(rk_call_result(call), change, out);
    }
    rk_call_free(call);
    if (out == &discard)
        raftkv_members_free(out);
    return rv;
}

/* Refuses bad arguments before anything is sent, saying why in out (if any). */
static int members_usage(struct raftkv_members *out, const char *why)
{
    if (out) {
        memset(out, 0, sizeof *out);
        snprintf(out->error, sizeof out->error, "%s", why);
    }
    return RAFTKV_EUSAGE;
}

static bool address_ok(const char *a)
{
    return a && a[0] && strlen(a) <= RAFTKV_MAX_ADDRESS;
}

static int member_change(struct raftkv_client *c, Raftkv__Client__MemberChangeRequest *change,
                         struct raftkv_members *out)
{
    if (!c || !change->id)
        return members_usage(out, "the member id must be positive");
    Raftkv__Client__Request req = RAFTKV__CLIENT__REQUEST__INIT;
    req.body_case = RAFTKV__CLIENT__REQUEST__BODY_MEMBER_CHANGE;
    req.member_change = change;
    return members_request(c, &req, out);
}

int raftkv_member_list(struct raftkv_client *c, struct raftkv_members *out)
{
    if (!c)
        return members_usage(out, "no client");
    Raftkv__Client__MemberListRequest list = RAFTKV__CLIENT__MEMBER_LIST_REQUEST__INIT;
    Raftkv__Client__Request req = RAFTKV__CLIENT__REQUEST__INIT;
    req.body_case = RAFTKV__CLIENT__REQUEST__BODY_MEMBER_LIST;
    req.member_list = &list;
    return members_request(c, &req, out);
}

int raftkv_member_add_learner(struct raftkv_client *c, uint64_t id, const char *peer_address,
                              const char *client_address, struct raftkv_members *out)
{
    if (!address_ok(peer_address) || !address_ok(client_address))
        return members_usage(out, "a member's addresses must be non-empty, of at most 255 bytes");
    Raftkv__Client__MemberChangeRequest change = RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__INIT;
    change.kind = RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__ADD_LEARNER;
    change.id = id;
    change.peer_address = (char *)peer_address;
    change.client_address = (char *)client_address;
    return member_change(c, &change, out);
}

int raftkv_member_promote(struct raftkv_client *c, uint64_t id, struct raftkv_members *out)
{
    Raftkv__Client__MemberChangeRequest change = RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__INIT;
    change.kind = RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__PROMOTE;
    change.id = id;
    return member_change(c, &change, out);
}

int raftkv_member_remove(struct raftkv_client *c, uint64_t id, struct raftkv_members *out)
{
    Raftkv__Client__MemberChangeRequest change = RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__INIT;
    change.kind = RAFTKV__CLIENT__MEMBER_CHANGE_REQUEST__KIND__REMOVE;
    change.id = id;
    return member_change(c, &change, out);
}

int raftkv_move_leader(struct raftkv_client *c, uint64_t id, struct raftkv_members *out)
{
    if (!c)
        return members_usage(out, "no client");
    Raftkv__Client__MoveLeaderRequest move = RAFTKV__CLIENT__MOVE_LEADER_REQUEST__INIT;
    move.id = id;
    Raftkv__Client__Request req = RAFTKV__CLIENT__REQUEST__INIT;
    req.body_case = RAFTKV__CLIENT__REQUEST__BODY_MOVE_LEADER;
    req.move_leader = &move;
    return members_request(c, &req, out);
}
