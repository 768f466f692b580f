/*
 * The node's event queue: NNG threads push, the event loop takes everything queued at once.
 * Items are intrusive: embed a struct rk_queue_item as the first member of an event.
 */
#ifndef RAFTKV_NODE_QUEUE_H
#define RAFTKV_NODE_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

struct rk_queue_item {
    struct rk_queue_item *next;
};

struct rk_queue {
    pthread_mutex_t mu;
    pthread_cond_t cond; /* waits on CLOCK_MONOTONIC */
    struct rk_queue_item *head;
    struct rk_queue_item **tail;
};

int rk_queue_init(struct rk_queue *q);
void rk_queue_destroy(struct rk_queue *q);
void rk_queue_push(struct rk_queue *q, struct rk_queue_item *item);
/* Waits until something is queued or the CLOCK_MONOTONIC deadline passes, then takes every
 * queued item, oldest first (NULL if none). */
struct rk_queue_item *rk_queue_take_all(struct rk_queue *q, const struct timespec *deadline);

#endif
