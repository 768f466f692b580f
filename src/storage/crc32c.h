/* CRC-32C (Castagnoli), the checksum of KV snapshots and of the Raft log's records: detects
 * every burst error up to 32 bits and is the one iSCSI, ext4 and etcd's WAL use. In storage,
 * the lowest layer that needs it. */
#ifndef RAFTKV_STORAGE_CRC32C_H
#define RAFTKV_STORAGE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) with n bytes: rk_crc32c(rk_crc32c(0, a), b) == crc of a then b. */
uint32_t rk_crc32c(uint32_t crc, const void *data, size_t n);

#endif
