/* A KV store in a temporary directory for the fuzz harnesses, opened once per process. */
#ifndef RAFTKV_FUZZ_STORE_H
#define RAFTKV_FUZZ_STORE_H

#include <stdio.h>
#include <stdlib.h>

#include "kv/kv_private.h"
#include "storage/tmp_dir.h"

static struct tmp_dir fuzz_store_dir;

static inline void fuzz_store_remove(void)
{
    tmp_dir_remove(&fuzz_store_dir);
}

static inline struct rk_kv *fuzz_store(struct rk_db **db_out)
{
    struct tmp_dir *dir = &fuzz_store_dir;
    static struct rk_db *db;
    static struct rk_kv *kv;
    if (!kv) {
        struct rk_db_options o = {.cluster_id = 1, .node_id = 1};
        if (!tmp_dir_make(dir))
            abort();
        atexit(fuzz_store_remove);
        o.path = dir->path;
        if (rk_db_open(&o, &db) != 0 || rk_kv_open(db, NULL, &kv) != 0) {
            fprintf(stderr, "cannot open the store in %s\n", dir->path);
            abort();
        }
    }
    *db_out = db;
    return kv;
}

#endif
