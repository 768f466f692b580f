/* What the node takes from its environment (node_internal.h): the time and a random seed.
 * A file of its own so that the host simulator (tests/hostsim) can link a simulated
 * environment in its place, and replay a run from its seed. */
#include <fcntl.h>
#include <unistd.h>

#include "node/node_internal.h"

struct timespec node__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts;
}

uint64_t node__seed(raft_id id)
{
    uint64_t seed = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, &seed, sizeof seed) != (ssize_t)sizeof seed)
            seed = 0;
        close(fd);
    }
    struct timespec ts = node__now();
    seed ^= (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^ (id * 0x9E3779B97F4A7C15ULL);
    return seed ? seed : 1;
}
