/*
 * kv_put_get: the smallest useful program on raftkv's client library. It opens a client
 * on the cluster's client addresses, puts KEY = VALUE, reads KEY back and prints its value.
 *
 *   kv_put_get KEY VALUE ENDPOINT...      e.g. kv_put_get greeting hello tcp://127.0.0.1:7101
 *
 * Built against an installed raftkv only (README, "Installing"):
 *   cc -o kv_put_get kv_put_get.c $(pkg-config --cflags --libs raftkv)
 * or with CMake: this directory's CMakeLists.txt (find_package(raftkv)).
 */
#include <stdio.h>
#include <string.h>

#include <raftkv/client.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s KEY VALUE ENDPOINT...\n", argv[0]);
        return 2;
    }
    const char *key = argv[1];
    const char *value = argv[2];

    /* Every option left 0 takes its default; only the endpoints are required. Give all the
     * nodes: the library finds the leader among them by itself. */
    struct raftkv_client_options opts;
    raftkv_client_options_defaults(&opts);
    opts.endpoints = (const char *const *)&argv[3];
    opts.n_endpoints = (size_t)(argc - 3);
    opts.timeout_ms = 10000; /* per operation, retries included (a cluster may be electing) */

    struct raftkv_client *client;
    int rc = raftkv_client_open(&opts, &client);
    if (rc != RAFTKV_OK) {
        fprintf(stderr, "open: %s\n", raftkv_status_str(rc));
        return 1;
    }

    /* A result is filled by every operation; a failure's reason is in res.error. Keys and
     * values are bytes, not strings: their lengths are explicit. */
    struct raftkv_result res = {0};
    rc = raftkv_put(client, key, strlen(key), value, strlen(value), &res);
    if (rc != RAFTKV_OK) {
        /* UNAVAILABLE means the outcome is unknown: the write may still be applied (once). */
        fprintf(stderr, "put: %s: %s\n", raftkv_status_str(rc), res.error);
        raftkv_client_close(client);
        return 1;
    }
    fprintf(stderr, "put %s at revision %llu\n", key, (unsigned long long)res.revision);
    raftkv_result_free(&res); /* before the result is used again */

    /* A linearizable read: it sees the put above, or a later write. */
    rc = raftkv_get(client, key, strlen(key), &res);
    if (rc != RAFTKV_OK) {
        fprintf(stderr, "get: %s: %s\n", raftkv_status_str(rc), res.error);
        raftkv_client_close(client);
        return 1;
    }
    if (res.value_len > 0) /* an empty value has no buffer: value is NULL */
        fwrite(res.value, 1, res.value_len, stdout);
    putchar('\n');
    raftkv_result_free(&res);

    raftkv_client_close(client);
    return 0;
}
