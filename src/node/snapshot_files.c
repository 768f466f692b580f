#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"
#include "node/snapshot_files.h"
#include "storage/crc32c.h"
#include "storage/db.h"

#define LOCAL_TMP "local.tmp"
#define INCOMING_TMP "incoming.tmp"
/* The producer buffers the state machine's output: emits may be small. */
#define PRODUCE_BUF_BYTES (1u << 20)

static void snap_path(const struct rk_snapdir *sd, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", sd->dir, name);
}

static void snap_index_path(const struct rk_snapdir *sd, raft_index index, char *out, size_t len)
{
    snprintf(out, len, "%s/%" PRIu64 ".snap", sd->dir, index);
}

static int sync_dir(const struct rk_snapdir *sd)
{
    int fd = open(sd->dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

/* "<digits>.snap" -> its index; 0 for any other name. */
static raft_index snap_name_index(const char *name)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(name, &end, 10);
    return errno == 0 && end != name && strcmp(end, ".snap") == 0 ? (raft_index)v : 0;
}

/* Deletes every snapshot but keep's (0: every snapshot), and with temps the temp files. A
 * node that adopts a snapshot keeps them: the one received from the leader may be half
 * written, and the producer may be writing its own (deleting either under it failed the
 * next write: a follower that took a snapshot of its own during a transfer stopped). */
static void remove_others(const struct rk_snapdir *sd, raft_index keep, bool temps)
{
    DIR *d = opendir(sd->dir);
    if (!d)
        return;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d))) {
        raft_index index = snap_name_index(de->d_name);
        bool tmp = strcmp(de->d_name, LOCAL_TMP) == 0 || strcmp(de->d_name, INCOMING_TMP) == 0;
        if (tmp ? !temps : index == 0 || index == keep)
            continue;
        snap_path(sd, de->d_name, path, sizeof path);
        if (unlink(path) != 0)
            rk_warn("cannot delete %s: %s", path, strerror(errno));
    }
    closedir(d);
}

static void open_latest(struct rk_snapdir *sd, const struct raft_snapshot_meta *stored)
{
    char path[4096];
    snap_index_path(sd, stored->index, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size == stored->size) {
        sd->latest = *stored;
        sd->latest_fd = fd;
        return;
    }
    rk_error("the snapshot at index %" PRIu64 " (%" PRIu64 " bytes) that storage names is %s: "
             "no snapshot to send to followers until a new one is taken",
             stored->index, stored->size, fd < 0 ? strerror(errno) : "of another size");
    if (fd >= 0)
        close(fd);
}

int rk_snap_open_dir(const char *data_dir, const struct raft_snapshot_meta *stored,
                     struct rk_snapdir *sd)
{
    *sd = (struct rk_snapdir){.latest_fd = -1, .incoming_fd = -1};
    size_t len = strlen(data_dir) + sizeof "/snapshots";
    sd->dir = malloc(len);
    if (!sd->dir)
        return ENOMEM;
    snprintf(sd->dir, len, "%s/snapshots", data_dir);
    if (mkdir(sd->dir, 0755) != 0 && errno != EEXIST)
        return errno;
    remove_others(sd, stored->index, true);
    if (stored->index)
        open_latest(sd, stored);
    return 0;
}

void rk_snap_close_dir(struct rk_snapdir *sd)
{
    if (sd->latest_fd >= 0)
        close(sd->latest_fd);
    if (sd->incoming_fd >= 0)
        close(sd->incoming_fd);
    free(sd->dir);
    *sd = (struct rk_snapdir){.latest_fd = -1, .incoming_fd = -1};
}

/* pread/pwrite of exactly len bytes. */
static int io_exact(int fd, bool write, void *buf, size_t len, uint64_t offset)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = write ? pwrite(fd, p, len, (off_t)offset) : pread(fd, p, len, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO; /* a short file */
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

int rk_snap_read(struct rk_snapdir *sd, raft_index index, uint64_t offset, void *buf, size_t len)
{
    if (sd->latest.index != index || sd->latest_fd < 0 || offset + len > sd->latest.size)
        return ENOENT;
    return io_exact(sd->latest_fd, false, buf, len, offset);
}

int rk_snap_write_chunk(struct rk_snapdir *sd, const struct raft_snapshot_chunk *c)
{
    if (c->offset == 0 || sd->incoming_fd < 0 || sd->incoming_index != c->index) {
        /* The core hands chunks in order from offset 0: anything else has nothing to
         * continue. */
        if (c->offset != 0)
            return EINVAL;
        if (sd->incoming_fd >= 0)
            close(sd->incoming_fd);
        char path[4096];
        snap_path(sd, INCOMING_TMP, path, sizeof path);
        sd->incoming_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (sd->incoming_fd < 0)
            return errno;
        sd->incoming_index = c->index;
    }
    return io_exact(sd->incoming_fd, true, (void *)c->data, c->len, c->offset);
}

int rk_snap_sync_incoming(struct rk_snapdir *sd)
{
    return sd->incoming_fd < 0 || fdatasync(sd->incoming_fd) == 0 ? 0 : errno;
}

int rk_snap_publish(struct rk_snapdir *sd, bool incoming, raft_index index, int *fd)
{
    char from[4096], to[4096];
    snap_path(sd, incoming ? INCOMING_TMP : LOCAL_TMP, from, sizeof from);
    snap_index_path(sd, index, to, sizeof to);
    *fd = -1;
    if (rename(from, to) != 0)
        return errno;
    int rc = sync_dir(sd);
    if (rc == 0 && (*fd = open(to, O_RDONLY | O_CLOEXEC)) < 0)
        rc = errno;
    if (incoming && sd->incoming_fd >= 0) {
        close(sd->incoming_fd);
        sd->incoming_fd = -1;
    }
    return rc;
}

void rk_snap_adopt(struct rk_snapdir *sd, const struct raft_snapshot_meta *meta, int fd)
{
    if (sd->latest_fd >= 0)
        close(sd->latest_fd);
    sd->latest = *meta;
    sd->latest_fd = fd;
    remove_others(sd, meta->index, false);
}

void rk_snap_discard(struct rk_snapdir *sd, bool incoming, raft_index index, int fd)
{
    char path[4096];
    if (index)
        snap_index_path(sd, index, path, sizeof path);
    else
        snap_path(sd, incoming ? INCOMING_TMP : LOCAL_TMP, path, sizeof path);
    if (fd >= 0)
        close(fd);
    if ((index == 0 || index != sd->latest.index) && unlink(path) != 0 && errno != ENOENT)
        rk_warn("cannot delete %s: %s", path, strerror(errno));
}

void rk_snap_forget_latest(struct rk_snapdir *sd)
{
    raft_index index = sd->latest.index;
    int fd = sd->latest_fd;
    sd->latest = (struct raft_snapshot_meta){0};
    sd->latest_fd = -1;
    rk_snap_discard(sd, false, index, fd);
}

int rk_snap_read_fn(void *arg, void *buf, size_t cap, size_t *n)
{
    struct rk_snap_reader *r = arg;
    uint64_t end = r->size >= RK_SNAP_TRAILER_BYTES ? r->size - RK_SNAP_TRAILER_BYTES : 0;
    size_t want = end - r->offset < cap ? (size_t)(end - r->offset) : cap;
    *n = 0;
    if (want == 0)
        return 0;
    int rc = io_exact(r->fd, false, buf, want, r->offset);
    if (rc == 0) {
        r->offset += want;
        *n = want;
    }
    return rc;
}

static void trailer_encode(uint8_t t[RK_SNAP_TRAILER_BYTES], uint32_t crc, uint64_t len)
{
    memcpy(t, "RKSC", 4);
    for (int i = 0; i < 4; i++)
        t[4 + i] = (uint8_t)(crc >> (24 - 8 * i));
    rk_db_encode_u64(t + 8, len);
}

int rk_snap_verify(int fd, uint64_t size, char *why, size_t why_len)
{
    enum { BUF = 1 << 20 };
    if (size < RK_SNAP_TRAILER_BYTES) {
        snprintf(why, why_len, "%" PRIu64 " bytes: too short for its trailer", size);
        return EBADMSG;
    }
    uint8_t *buf = malloc(BUF);
    if (!buf)
        return ENOMEM;
    uint64_t len = size - RK_SNAP_TRAILER_BYTES;
    uint32_t crc = 0;
    int rc = 0;
    for (uint64_t at = 0; rc == 0 && at < len; at += BUF) {
        size_t n = len - at < BUF ? (size_t)(len - at) : BUF;
        rc = io_exact(fd, false, buf, n, at);
        crc = rc == 0 ? rk_crc32c(crc, buf, n) : crc;
    }
    uint8_t want[RK_SNAP_TRAILER_BYTES], got[RK_SNAP_TRAILER_BYTES];
    trailer_encode(want, crc, len);
    if (rc == 0)
        rc = io_exact(fd, false, got, sizeof got, len);
    free(buf);
    if (rc == 0 && memcmp(want, got, sizeof want) != 0) {
        snprintf(why, why_len,
                 "its bytes do not match its trailer (CRC-32C over %" PRIu64 " bytes)", len);
        rc = EBADMSG;
    }
    return rc;
}

/* ---- The producer thread. ---- */

static int job_flush(struct rk_snap_job *job)
{
    int rc = io_exact(job->fd, true, job->buf, job->buf_len, job->size);
    job->crc = rk_crc32c(job->crc, job->buf, job->buf_len);
    job->size += job->buf_len;
    job->buf_len = 0;
    return rc;
}

static int job_emit(void *arg, const void *data, size_t len)
{
    struct rk_snap_job *job = arg;
    const uint8_t *p = data;
    while (len) {
        if (atomic_load(&job->cancel))
            return ECANCELED;
        size_t n = PRODUCE_BUF_BYTES - job->buf_len < len ? PRODUCE_BUF_BYTES - job->buf_len : len;
        memcpy(job->buf + job->buf_len, p, n);
        job->buf_len += n;
        p += n;
        len -= n;
        int rc = job->buf_len == PRODUCE_BUF_BYTES ? job_flush(job) : 0;
        if (rc) {
            job->rc = rc; /* remembered: the state machine only sees that emit failed */
            return rc;
        }
    }
    return 0;
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void *job_main(void *arg)
{
    struct rk_snap_job *job = arg;
    uint64_t start = mono_us();
    int rc = job->fsm->ops->snapshot(job->fsm, job_emit, job, &job->index);
    if (job->rc) {
        job->errno_failed = true; /* the file failed, not the state machine */
        rc = job->rc;
    }
    if (rc == 0 && job->buf_len)
        job->errno_failed = (rc = job_flush(job)) != 0;
    uint8_t trailer[RK_SNAP_TRAILER_BYTES];
    trailer_encode(trailer, job->crc, job->size);
    if (rc == 0)
        job->errno_failed = (rc = io_exact(job->fd, true, trailer, sizeof trailer, job->size)) != 0;
    job->size += sizeof trailer;
    if (rc == 0 && fdatasync(job->fd) != 0)
        job->errno_failed = (rc = errno) != 0;
    close(job->fd);
    job->fd = -1;
    job->rc = rc;
    job->elapsed_us = mono_us() - start;
    job->done(job->done_arg);
    return NULL;
}

int rk_snap_produce_start(struct rk_snapdir *sd, struct rk_snap_job *job, struct raftkv_fsm *fsm,
                          void (*done)(void *arg), void *done_arg)
{
    *job = (struct rk_snap_job){.fsm = fsm, .done = done, .done_arg = done_arg};
    atomic_init(&job->cancel, false);
    char path[4096];
    snap_path(sd, LOCAL_TMP, path, sizeof path);
    job->buf = malloc(PRODUCE_BUF_BYTES);
    if (!job->buf)
        return ENOMEM;
    job->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = job->fd < 0 ? errno : pthread_create(&job->thread, NULL, job_main, job);
    if (rc != 0) {
        if (job->fd >= 0)
            close(job->fd);
        free(job->buf);
        job->buf = NULL;
    }
    return rc;
}

void rk_snap_produce_join(struct rk_snap_job *job)
{
    pthread_join(job->thread, NULL);
    free(job->buf);
    job->buf = NULL;
}
