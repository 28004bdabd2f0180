/* gateway/gateway.c — shared plumbing of the running gateway: store handles,
 * clocks, wait keys. */
#include "gateway/gateway.h"

#include <string.h>
#include <time.h>

#include "keymeld/hex.h"

km_store *km_gw_store_take(km_gateway *gw) {
    pthread_mutex_lock(&gw->store_lock);
    while (gw->n_free == 0)
        pthread_cond_wait(&gw->store_cond, &gw->store_lock);
    km_store *st = gw->free_stores[--gw->n_free];
    pthread_mutex_unlock(&gw->store_lock);
    return st;
}

void km_gw_store_give(km_gateway *gw, km_store *st) {
    pthread_mutex_lock(&gw->store_lock);
    gw->free_stores[gw->n_free++] = st;
    pthread_cond_signal(&gw->store_cond);
    pthread_mutex_unlock(&gw->store_lock);
}

int64_t km_gw_now(void) {
    return (int64_t)time(NULL);
}

uint64_t km_gw_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The prefix of a kind's wait keys. */
static const char *wait_prefix(km_store_kind kind) {
    static const char *const NAMES[] = {"keygen:", "signing:", "single:"};
    return (unsigned)kind < 3 ? NAMES[kind] : "other:";
}

int km_gw_wait_key_id(const char *key, km_store_kind kind, unsigned char id[16]) {
    const char *p = wait_prefix(kind);
    size_t n = strlen(p);
    return key && strncmp(key, p, n) == 0 && strlen(key + n) == 32 &&
           km_hex_decode(id, 16, key + n, 32) == KM_OK;
}

void km_gw_wait_key(char out[48], km_store_kind kind, const unsigned char id[16]) {
    const char *p = wait_prefix(kind);
    size_t n = 0;
    while (p[n]) {
        out[n] = p[n];
        n++;
    }
    if (km_hex_encode(out + n, 48 - n, id, 16) != KM_OK) out[n] = '\0';
}
