/*
 * libFuzzer: a node config file, loaded with raftd's parser and the KV store's defaults.
 * Every input is refused with a message or loaded; nothing may crash, hang or leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "node/config.h"
#include "raftd_kv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[] = "/tmp/raftkv-fuzz-config-XXXXXX";

static void remove_file(void)
{
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    if (fd < 0 && ((fd = mkstemp(path)) < 0 || atexit(remove_file) != 0))
        abort();
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    struct rk_config cfg;
    char err[512];
    if (rk_config_load(path, raftd_kv.config_defaults, &cfg, err, sizeof err) == 0)
        rk_config_free(&cfg);
    return 0;
}
