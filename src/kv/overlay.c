#define _GNU_SOURCE /* twalk_r, tdestroy */
#include "kv/overlay.h"

#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

/* One change of the open batch, as needed to undo it. */
struct rk_overlay_undo {
    bool clear;
    struct rk_overlay_rec *old; /* set: the key's previous record, NULL if it had none */
    struct rk_overlay_rec *new; /* set: the record that replaced it */
    void *old_root;             /* clear: the tree before */
    size_t old_count;
    size_t old_bytes;
};

static size_t rec_bytes(const struct rk_overlay_rec *r)
{
    return r ? sizeof *r + r->key_len + r->value_len : 0;
}

static int rec_cmp(const void *a, const void *b)
{
    const struct rk_overlay_rec *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = n ? memcmp(x->key, y->key, n) : 0;
    if (c)
        return c;
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

const struct rk_overlay_rec *rk_overlay_get(const struct rk_overlay *ov, const void *key,
                                            size_t key_len)
{
    struct rk_overlay_rec probe = {.key = (uint8_t *)key, .key_len = key_len};
    void *const *slot = tfind(&probe, &ov->root, rec_cmp);
    return slot ? *slot : NULL;
}

void rk_overlay_begin(struct rk_overlay *ov, uint64_t applied)
{
    if (!ov->in_batch) {
        ov->in_batch = true;
        ov->batch_applied = applied;
    }
}

static int undo_push(struct rk_overlay *ov, struct rk_overlay_undo u)
{
    if (ov->n_undo == ov->cap_undo) {
        size_t cap = ov->cap_undo ? 2 * ov->cap_undo : 64;
        struct rk_overlay_undo *p = realloc(ov->undo, cap * sizeof *p);
        if (!p)
            return ENOMEM;
        ov->undo = p;
        ov->cap_undo = cap;
    }
    ov->undo[ov->n_undo++] = u;
    return 0;
}

static struct rk_overlay_rec *rec_new(const void *key, size_t key_len, bool deleted,
                                      uint64_t create, uint64_t mod, const void *value,
                                      size_t value_len)
{
    struct rk_overlay_rec *r = malloc(sizeof *r + key_len + value_len);
    if (!r)
        return NULL;
    *r =
        (struct rk_overlay_rec){deleted, create, mod, key_len, value_len, (uint8_t *)(r + 1), NULL};
    memcpy(r->key, key, key_len);
    if (value_len) {
        r->value = r->key + key_len;
        memcpy(r->value, value, value_len);
    }
    return r;
}

int rk_overlay_set(struct rk_overlay *ov, const void *key, size_t key_len, bool deleted,
                   uint64_t create, uint64_t mod, const void *value, size_t value_len)
{
    struct rk_overlay_rec *r = rec_new(key, key_len, deleted, create, mod, value, value_len);
    /* Room for the undo record first: once the tree changed, nothing may fail. */
    if (!r || undo_push(ov, (struct rk_overlay_undo){0}) != 0) {
        free(r);
        return ENOMEM;
    }
    void **slot = tsearch(r, &ov->root, rec_cmp);
    if (!slot) {
        ov->n_undo--;
        free(r);
        return ENOMEM;
    }
    struct rk_overlay_rec *old = *slot == r ? NULL : *slot;
    *slot = r;
    if (!old)
        ov->count++;
    ov->bytes += rec_bytes(r) - rec_bytes(old);
    ov->undo[ov->n_undo - 1] = (struct rk_overlay_undo){.old = old, .new = r};
    return 0;
}

struct each {
    int (*fn)(void *arg, const struct rk_overlay_rec *r);
    void *arg;
    int rc;
    struct rk_overlay_rec from, to; /* to.key_len 0: no upper bound */
};

static void each_visit(const void *node, VISIT which, void *arg)
{
    struct each *e = arg;
    const struct rk_overlay_rec *r = *(struct rk_overlay_rec *const *)node;
    if (e->rc || (which != postorder && which != leaf) || rec_cmp(r, &e->from) < 0 ||
        (e->to.key_len && rec_cmp(r, &e->to) >= 0))
        return;
    e->rc = e->fn(e->arg, r);
}

int rk_overlay_range(const struct rk_overlay *ov, const void *from, size_t from_len, const void *to,
                     size_t to_len, int (*fn)(void *arg, const struct rk_overlay_rec *r), void *arg)
{
    struct each e = {fn,
                     arg,
                     0,
                     {.key = (uint8_t *)from, .key_len = from_len},
                     {.key = (uint8_t *)to, .key_len = to_len}};
    twalk_r(ov->root, each_visit, &e);
    return e.rc;
}

int rk_overlay_each(const struct rk_overlay *ov,
                    int (*fn)(void *arg, const struct rk_overlay_rec *r), void *arg)
{
    return rk_overlay_range(ov, NULL, 0, NULL, 0, fn, arg);
}

int rk_overlay_clear(struct rk_overlay *ov)
{
    if (!ov->root)
        return 0;
    if (undo_push(ov, (struct rk_overlay_undo){.clear = true,
                                               .old_root = ov->root,
                                               .old_count = ov->count,
                                               .old_bytes = ov->bytes}) != 0)
        return ENOMEM;
    ov->root = NULL;
    ov->count = 0;
    ov->bytes = 0;
    return 0;
}

static void undo_one(struct rk_overlay *ov, const struct rk_overlay_undo *u)
{
    if (u->clear) {
        tdestroy(ov->root, free); /* empty: later changes were undone first */
        ov->root = u->old_root;
        ov->count = u->old_count;
        ov->bytes = u->old_bytes;
        return;
    }
    ov->bytes -= rec_bytes(u->new) - rec_bytes(u->old);
    if (u->old) {
        void **slot = tfind(u->new, &ov->root, rec_cmp);
        *slot = u->old;
    } else {
        tdelete(u->new, &ov->root, rec_cmp);
        ov->count--;
    }
    free(u->new);
}

static void keep_one(const struct rk_overlay_undo *u)
{
    if (u->clear)
        tdestroy(u->old_root, free);
    else
        free(u->old);
}

void rk_overlay_end(struct rk_overlay *ov, bool committed, uint64_t *applied)
{
    if (!ov->in_batch)
        return;
    if (committed) {
        for (size_t i = 0; i < ov->n_undo; i++)
            keep_one(&ov->undo[i]);
    } else {
        for (size_t i = ov->n_undo; i-- > 0;)
            undo_one(ov, &ov->undo[i]);
        *applied = ov->batch_applied;
    }
    ov->n_undo = 0;
    ov->in_batch = false;
}

void rk_overlay_free(struct rk_overlay *ov)
{
    uint64_t ignored = 0;
    rk_overlay_end(ov, true, &ignored);
    tdestroy(ov->root, free);
    free(ov->undo);
    *ov = (struct rk_overlay){0};
}
