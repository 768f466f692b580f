/* Scratch data dirs for the storage and KV tests: made under /tmp, removed afterwards. */
#ifndef RAFTKV_TESTS_TMP_DIR_H
#define RAFTKV_TESTS_TMP_DIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tmp_dir {
    char path[64];
};

static inline bool tmp_dir_make(struct tmp_dir *d)
{
    strcpy(d->path, "/tmp/raftkv-storage-test-XXXXXX");
    return mkdtemp(d->path) != NULL;
}

static inline int tmp_dir_unlink(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline void tmp_dir_remove(struct tmp_dir *d)
{
    nftw(d->path, tmp_dir_unlink, 8, FTW_DEPTH | FTW_PHYS);
}

#endif
