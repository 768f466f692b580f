/* The in-memory Raft log: entries after the snapshot point, with durability bookkeeping. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "raft/core.h"

int raft__log_init(struct raft_log *l, const struct raft_restore *restore)
{
    memset(l, 0, sizeof *l);
    if (!restore)
        return RAFT_OK;
    l->snapshot_index = restore->snapshot_index;
    l->snapshot_term = restore->snapshot_term;
    for (size_t i = 0; i < restore->n_entries; i++) {
        const struct raft_entry *e = &restore->entries[i];
        if (e->index != raft__log_last_index(l) + 1 || e->term < raft__log_last_term(l)) {
            raft__log_free(l);
            return RAFT_ECORRUPT;
        }
        int rv = raft__log_append(l, e);
        if (rv != RAFT_OK) {
            raft__log_free(l);
            return rv;
        }
    }
    l->stable = raft__log_last_index(l);
    /* Whatever the state machine applied was committed. */
    l->applied = restore->applied > l->snapshot_index ? restore->applied : l->snapshot_index;
    if (l->applied > l->stable) {
        raft__log_free(l);
        return RAFT_ECORRUPT;
    }
    l->commit = l->applied;
    return RAFT_OK;
}

void raft__log_free(struct raft_log *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->entries[i].data);
    free(l->entries);
    l->entries = NULL;
    l->n = l->cap = 0;
}

raft_index raft__log_last_index(const struct raft_log *l)
{
    return l->snapshot_index + l->n;
}

raft_term raft__log_last_term(const struct raft_log *l)
{
    return l->n ? l->entries[l->n - 1].term : l->snapshot_term;
}

const struct raft_entry *raft__log_entry_at(const struct raft_log *l, raft_index index)
{
    if (index <= l->snapshot_index || index > raft__log_last_index(l))
        return NULL;
    return &l->entries[index - l->snapshot_index - 1];
}

raft_term raft__log_term_at(const struct raft_log *l, raft_index index)
{
    if (index == l->snapshot_index)
        return l->snapshot_term;
    const struct raft_entry *e = raft__log_entry_at(l, index);
    return e ? e->term : 0;
}

int raft__log_append(struct raft_log *l, const struct raft_entry *e)
{
    /* Contiguity, and terms only grow along the log: callers check input against both. */
    assert(e->index == raft__log_last_index(l) + 1);
    assert(e->term >= raft__log_last_term(l));
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct raft_entry *grown = realloc(l->entries, cap * sizeof *grown);
        if (!grown)
            return RAFT_ENOMEM;
        l->entries = grown;
        l->cap = cap;
    }
    struct raft_entry copy = *e;
    copy.index = raft__log_last_index(l) + 1;
    copy.data = NULL;
    if (e->len) {
        copy.data = malloc(e->len);
        if (!copy.data)
            return RAFT_ENOMEM;
        memcpy(copy.data, e->data, e->len);
    }
    l->entries[l->n++] = copy;
    return RAFT_OK;
}

void raft__log_truncate(struct raft_log *l, raft_index index)
{
    assert(index > l->commit); /* committed entries are never replaced (Raft §5.4) */
    while (raft__log_last_index(l) >= index && l->n > 0)
        free(l->entries[--l->n].data);
    if (index <= l->stable) {
        l->stable = index - 1;
        if (l->truncate_from == 0 || index < l->truncate_from)
            l->truncate_from = index;
    }
    assert(l->stable <= raft__log_last_index(l));
}

bool raft__log_is_up_to_date(const struct raft_log *l, raft_index last_index, raft_term last_term)
{
    raft_term our_term = raft__log_last_term(l);
    return last_term > our_term || (last_term == our_term && last_index >= raft__log_last_index(l));
}

raft_index raft__log_first_index_of_term_run(const struct raft_log *l, raft_index index)
{
    raft_term term = raft__log_term_at(l, index);
    while (index > l->snapshot_index + 1 && raft__log_term_at(l, index - 1) == term)
        index--;
    return index;
}

raft_index raft__log_last_index_of_term(const struct raft_log *l, raft_term term, raft_index from)
{
    if (from > raft__log_last_index(l))
        from = raft__log_last_index(l);
    for (raft_index i = from; i > l->snapshot_index; i--) {
        raft_term t = raft__log_term_at(l, i);
        if (t == term)
            return i;
        if (t < term)
            break; /* terms only grow along the log */
    }
    return 0;
}

void raft__log_compact(struct raft_log *l, raft_index index)
{
    assert(index <= l->applied); /* only what the snapshot holds leaves memory */
    if (index <= l->snapshot_index)
        return;
    size_t drop = (size_t)(index - l->snapshot_index);
    l->snapshot_term = raft__log_term_at(l, index);
    for (size_t i = 0; i < drop; i++)
        free(l->entries[i].data);
    memmove(l->entries, l->entries + drop, (l->n - drop) * sizeof *l->entries);
    l->n -= drop;
    l->snapshot_index = index;
}

void raft__log_reset(struct raft_log *l, raft_index index, raft_term term)
{
    assert(index > l->commit); /* a snapshot never goes back over committed entries */
    for (size_t i = 0; i < l->n; i++)
        free(l->entries[i].data);
    l->n = 0;
    l->snapshot_index = index;
    l->snapshot_term = term;
    l->stable = l->commit = l->applied = index;
    l->truncate_from = 0; /* the install deletes every entry anyway */
}
