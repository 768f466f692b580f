/* raftd: one member of a raftkv cluster, with the key-value store as its state machine. */
#include "raftd_kv.h"

int main(int argc, char **argv)
{
    return rk_daemon_main(argc, argv, "raftd", &raftd_kv);
}
