/* In-memory stable storage: the simulator's and the tests' stand-in for the disk. */
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"

struct mem_storage {
    struct rk_storage base;
    raft_term term;
    raft_id vote;
    raft_index snapshot_index; /* the log starts after an installed snapshot */
    raft_term snapshot_term;
    struct raft_entry *entries; /* entries[i] has index snapshot_index + 1 + i */
    size_t n_entries;
    size_t cap;
};

static void entries_free(struct raft_entry *entries, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(entries[i].data);
}

/* Deep-copies n entries into dst; on failure nothing stays allocated. */
static int entries_copy(struct raft_entry *dst, const struct raft_entry *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dst[i] = src[i];
        if (src[i].len == 0) {
            dst[i].data = NULL;
            continue;
        }
        dst[i].data = malloc(src[i].len);
        if (!dst[i].data) {
            entries_free(dst, i);
            return RAFT_ENOMEM;
        }
        memcpy(dst[i].data, src[i].data, src[i].len);
    }
    return RAFT_OK;
}

static int mem_load(struct rk_storage *s, struct raft_restore *out)
{
    struct mem_storage *m = (struct mem_storage *)s;
    memset(out, 0, sizeof *out);
    out->term = m->term;
    out->vote = m->vote;
    out->snapshot_index = m->snapshot_index;
    out->snapshot_term = m->snapshot_term;
    if (m->n_entries == 0)
        return RAFT_OK;
    struct raft_entry *copy = malloc(m->n_entries * sizeof *copy);
    if (!copy)
        return RAFT_ENOMEM;
    int rc = entries_copy(copy, m->entries, m->n_entries);
    if (rc != RAFT_OK) {
        free(copy);
        return rc;
    }
    out->entries = copy;
    out->n_entries = m->n_entries;
    return RAFT_OK;
}

static int reserve(struct mem_storage *m, size_t need)
{
    if (need <= m->cap)
        return RAFT_OK;
    size_t cap = m->cap ? m->cap : 64;
    while (cap < need)
        cap *= 2;
    struct raft_entry *p = realloc(m->entries, cap * sizeof *p);
    if (!p)
        return RAFT_ENOMEM;
    m->entries = p;
    m->cap = cap;
    return RAFT_OK;
}

/* All checks and allocations happen before the first change, so a failed save leaves the
 * stored state exactly as it was, as a failed disk transaction would. */
static int mem_save(struct rk_storage *s, const struct raft_ready *rd)
{
    struct mem_storage *m = (struct mem_storage *)s;
    /* An installed snapshot replaces the whole log: it becomes the log's starting point. */
    raft_index base = rd->install_snapshot ? rd->snapshot.index : m->snapshot_index;
    size_t keep = rd->install_snapshot ? 0 : m->n_entries;
    if (rd->truncate_from > base && rd->truncate_from <= base + keep)
        keep = rd->truncate_from - base - 1;
    /* A gap or overlap would silently corrupt the log: the core must never ask for one. */
    if (rd->n_entries > 0 && rd->entries[0].index != base + keep + 1)
        return RAFT_ECORRUPT;
    for (size_t i = 1; i < rd->n_entries; i++)
        if (rd->entries[i].index != rd->entries[i - 1].index + 1)
            return RAFT_ECORRUPT;
    int rc = reserve(m, keep + rd->n_entries);
    if (rc != RAFT_OK)
        return rc;
    struct raft_entry *fresh = NULL;
    if (rd->n_entries > 0) {
        fresh = malloc(rd->n_entries * sizeof *fresh);
        if (!fresh)
            return RAFT_ENOMEM;
        rc = entries_copy(fresh, rd->entries, rd->n_entries);
        if (rc != RAFT_OK) {
            free(fresh);
            return rc;
        }
    }
    if (rd->hard_state_changed) {
        m->term = rd->term;
        m->vote = rd->vote;
    }
    if (rd->install_snapshot) {
        m->snapshot_index = rd->snapshot.index;
        m->snapshot_term = rd->snapshot.term;
    }
    entries_free(m->entries + keep, m->n_entries - keep);
    if (fresh)
        memcpy(m->entries + keep, fresh, rd->n_entries * sizeof *fresh);
    free(fresh);
    m->n_entries = keep + rd->n_entries;
    return RAFT_OK;
}

static void mem_close(struct rk_storage *s)
{
    struct mem_storage *m = (struct mem_storage *)s;
    if (!m)
        return;
    entries_free(m->entries, m->n_entries);
    free(m->entries);
    free(m);
}

static const struct rk_storage_ops mem_ops = {
    .load = mem_load,
    .save = mem_save,
    .close = mem_close,
};

int rk_mem_storage_new(struct rk_storage **out)
{
    struct mem_storage *m = calloc(1, sizeof *m);
    *out = NULL;
    if (!m)
        return RAFT_ENOMEM;
    m->base.ops = &mem_ops;
    *out = &m->base;
    return RAFT_OK;
}

void rk_storage_restore_free(struct raft_restore *restore)
{
    /* load hands out const entries to match raft_restore; they were allocated by it. */
    struct raft_entry *entries = (struct raft_entry *)restore->entries;
    if (entries) {
        entries_free(entries, restore->n_entries);
        free(entries);
    }
    raft_configuration_free(&restore->snapshot_conf);
    memset(restore, 0, sizeof *restore);
}
