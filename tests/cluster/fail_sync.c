/*
 * A storage fault for cluster tests, loaded into raftd with LD_PRELOAD: fsync and fdatasync
 * fail with EIO in the process whose pid is written in the file named by
 * RAFTKV_TEST_FAIL_SYNC_FILE, from the moment it is written on. LMDB commits with
 * fdatasync, so the node's next synced write fails as a disk that lost a write does. Other
 * processes, and this one before the file names it, sync as usual.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Exported, whatever the build's default visibility: they replace libc's. */
#define EXPORT __attribute__((visibility("default")))

EXPORT int fsync(int fd);
EXPORT int fdatasync(int fd);

static int failing(void)
{
    const char *path = getenv("RAFTKV_TEST_FAIL_SYNC_FILE");
    FILE *f = path ? fopen(path, "r") : NULL;
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return pid == (long)getpid();
}

static int sync_with(const char *name, int fd)
{
    if (failing()) {
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, name);
    return real ? real(fd) : -1;
}

EXPORT int fsync(int fd)
{
    return sync_with("fsync", fd);
}

EXPORT int fdatasync(int fd)
{
    return sync_with("fdatasync", fd);
}
