#include <errno.h>

#include "node/queue.h"

int rk_queue_init(struct rk_queue *q)
{
    q->head = NULL;
    q->tail = &q->head;
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return -1;
    /* Ticks are scheduled on the monotonic clock: wall-clock jumps must not stall them. */
    int rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&q->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0)
        return -1;
    if (pthread_mutex_init(&q->mu, NULL) != 0) {
        pthread_cond_destroy(&q->cond);
        return -1;
    }
    return 0;
}

void rk_queue_destroy(struct rk_queue *q)
{
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->mu);
}

void rk_queue_push(struct rk_queue *q, struct rk_queue_item *item)
{
    item->next = NULL;
    pthread_mutex_lock(&q->mu);
    bool was_empty = q->head == NULL;
    *q->tail = item;
    q->tail = &item->next;
    pthread_mutex_unlock(&q->mu);
    if (was_empty)
        pthread_cond_signal(&q->cond);
}

struct rk_queue_item *rk_queue_take_all(struct rk_queue *q, const struct timespec *deadline)
{
    pthread_mutex_lock(&q->mu);
    int rc = 0;
    while (!q->head && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&q->cond, &q->mu, deadline);
    struct rk_queue_item *items = q->head;
    q->head = NULL;
    q->tail = &q->head;
    pthread_mutex_unlock(&q->mu);
    return items;
}
