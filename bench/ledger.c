#include "ledger.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ledger_init(struct ledger *l, uint64_t n_keys)
{
    memset(l, 0, sizeof *l);
    l->n_keys = n_keys;
    l->keys = calloc(n_keys, sizeof *l->keys);
    if (!l->keys)
        return ENOMEM;
    for (size_t i = 0; i < LEDGER_STRIPES; i++)
        pthread_mutex_init(&l->stripes[i], NULL);
    pthread_mutex_init(&l->unknown_mu, NULL);
    atomic_init(&l->next_write, 1);
    return 0;
}

void ledger_free(struct ledger *l)
{
    if (!l->keys)
        return;
    for (size_t i = 0; i < LEDGER_STRIPES; i++)
        pthread_mutex_destroy(&l->stripes[i]);
    pthread_mutex_destroy(&l->unknown_mu);
    free(l->keys);
    free(l->unknown);
    l->keys = NULL;
}

uint64_t ledger_next_write(struct ledger *l)
{
    return atomic_fetch_add_explicit(&l->next_write, 1, memory_order_relaxed);
}

void ledger_value(uint64_t write, char *value, size_t size)
{
    char id[LEDGER_ID_BYTES + 1];
    snprintf(id, sizeof id, "%016" PRIx64, write);
    memcpy(value, id, LEDGER_ID_BYTES);
    for (size_t i = LEDGER_ID_BYTES; i < size; i++)
        value[i] = (char)('a' + (write + i) % 26);
}

static pthread_mutex_t *stripe(struct ledger *l, uint64_t key)
{
    return &l->stripes[key % LEDGER_STRIPES];
}

uint64_t ledger_last(struct ledger *l, uint64_t key)
{
    pthread_mutex_lock(stripe(l, key));
    uint64_t w = l->keys[key].write;
    pthread_mutex_unlock(stripe(l, key));
    return w;
}

void ledger_acked(struct ledger *l, uint64_t key, uint64_t write, uint64_t rev)
{
    pthread_mutex_lock(stripe(l, key));
    /* Acknowledgements of concurrent writes to one key arrive in any order. */
    if (rev > l->keys[key].rev) {
        l->keys[key].rev = rev;
        l->keys[key].write = write;
    }
    pthread_mutex_unlock(stripe(l, key));
}

int ledger_unknown(struct ledger *l, uint64_t key, uint64_t write)
{
    int rv = 0;
    pthread_mutex_lock(&l->unknown_mu);
    if (l->n_unknown == l->cap_unknown) {
        size_t cap = l->cap_unknown ? 2 * l->cap_unknown : 64;
        struct ledger_unknown *u = realloc(l->unknown, cap * sizeof *u);
        if (u) {
            l->unknown = u;
            l->cap_unknown = cap;
        }
    }
    if (l->n_unknown < l->cap_unknown)
        l->unknown[l->n_unknown++] = (struct ledger_unknown){key, write};
    else
        rv = ENOMEM;
    pthread_mutex_unlock(&l->unknown_mu);
    if (rv == 0) {
        pthread_mutex_lock(stripe(l, key));
        l->keys[key].unknown++;
        pthread_mutex_unlock(stripe(l, key));
    }
    return rv;
}

static int cmp_unknown(const void *a, const void *b)
{
    const struct ledger_unknown *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->write < y->write ? -1 : x->write > y->write;
}

void ledger_seal(struct ledger *l)
{
    if (l->n_unknown)
        qsort(l->unknown, l->n_unknown, sizeof *l->unknown, cmp_unknown);
}

bool ledger_touched(const struct ledger *l, uint64_t key)
{
    return l->keys[key].rev || l->keys[key].unknown;
}

static bool is_unknown_write(const struct ledger *l, uint64_t key, uint64_t write)
{
    struct ledger_unknown probe = {key, write};
    return l->n_unknown &&
           bsearch(&probe, l->unknown, l->n_unknown, sizeof probe, cmp_unknown) != NULL;
}

/* The write id at the head of a value, 0 if it has none. */
static uint64_t value_write(const uint8_t *value, size_t len)
{
    char id[LEDGER_ID_BYTES + 1];
    if (len < LEDGER_ID_BYTES)
        return 0;
    memcpy(id, value, LEDGER_ID_BYTES);
    id[LEDGER_ID_BYTES] = '\0';
    char *end;
    uint64_t w = strtoull(id, &end, 16);
    return *end ? 0 : w;
}

enum ledger_verdict ledger_judge(const struct ledger *l, uint64_t key, bool found,
                                 const uint8_t *value, size_t len, uint64_t mod_rev)
{
    const struct ledger_key *k = &l->keys[key];
    if (!found)
        return k->rev ? LEDGER_LOST : LEDGER_ABSENT;
    uint64_t w = value_write(value, len);
    if (mod_rev < k->rev)
        return LEDGER_LOST;
    if (mod_rev == k->rev)
        return w == k->write ? LEDGER_INTACT : LEDGER_LOST;
    return w && is_unknown_write(l, key, w) ? LEDGER_UNKNOWN_APPLIED : LEDGER_UNEXPECTED;
}
