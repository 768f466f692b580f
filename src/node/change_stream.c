/*
 * The change stream: what the state machine reports of each applied entry, and every
 * change of leader, published on the node's pub socket (transport.h names the topics).
 * Subscribers may miss messages (NNG pub/sub drops for slow readers); revisions let them
 * notice.
 */
#include "client.pb-c.h"
#include "log/log.h"
#include "node/node_internal.h"
#include "transport/transport.h"

void changes__publish(struct rk_node *n, const struct raftkv_buf *events, size_t count)
{
    if (!n->pub || !n->fsm->ops->event_topic)
        return;
    for (size_t i = 0; i < count; i++)
        if (events[i].len)
            rk_publisher_send(n->pub, n->fsm->ops->event_topic, events[i].data, events[i].len);
}

void changes__leader(struct rk_node *n)
{
    if (n->published_leader == n->view.leader && n->published_term == n->view.term)
        return;
    n->published_leader = n->view.leader;
    n->published_term = n->view.term;
    if (n->view.leader) {
        rk_info("leader is %llu", (unsigned long long)n->view.leader);
        n->metrics.leader_changes++;
    }
    if (!n->pub)
        return;
    Raftkv__Client__LeaderEvent ev = RAFTKV__CLIENT__LEADER_EVENT__INIT;
    ev.term = n->view.term;
    ev.leader_id = n->view.leader;
    uint8_t buf[32];
    size_t len = raftkv__client__leader_event__pack(&ev, buf);
    rk_publisher_send(n->pub, RK_TOPIC_LEADER, buf, len);
}
