/*
 * rk_db_open's steps around the LMDB files of a data dir: the process lock, the node marker
 * (RK_DB_MARKER_FILE), and the checks that a marked dir still holds its data.mdb whole. Each
 * returns an rk_db_err and records why in db (rk_db_fail).
 */
#ifndef RAFTKV_STORAGE_DATA_DIR_H
#define RAFTKV_STORAGE_DATA_DIR_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/db.h"

/* The identity a marker holds; found is false without a marker. */
struct data_dir_marker {
    bool found;
    uint64_t cluster_id;
    uint64_t node_id;
};

/* Takes the lock file, RK_DB_ELOCKED if another holder has it; *fd holds it (-1 if the
 * file could not be opened) and is closed to release it. */
int data_dir__lock(struct rk_db *db, const char *dir, int *fd);
int data_dir__read_marker(struct rk_db *db, const char *dir, struct data_dir_marker *m);
/* RK_DB_EIDENTITY when the marker names another cluster or node. */
int data_dir__check_marker(struct rk_db *db, const char *dir, const struct data_dir_marker *m,
                           const struct rk_db_options *opts);
/* Before LMDB opens it: a data.mdb missing or empty is new without a marker, lost with one. */
int data_dir__check_data_file(struct rk_db *db, const char *dir, const struct data_dir_marker *m,
                              enum rk_db_dir_state *state);
/* After LMDB opened it, before any transaction: data.mdb must reach its last used page. */
int data_dir__check_size(struct rk_db *db, const char *dir);
/* Refuses a data.mdb that lost the node's state (RK_DB_ECORRUPT), saying what to do. */
int data_dir__refuse_lost(struct rk_db *db, const char *dir, const char *problem);
/* Writes the marker durably (file and directory synced). */
int data_dir__mark(struct rk_db *db, const char *dir, const struct rk_db_options *opts);

#endif
