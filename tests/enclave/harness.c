/* harness.c — see harness.h. */
#include "tests/enclave/harness.h"

#include <stdlib.h>

void km_test_keypair(km_ctx *ctx, unsigned char sec[32], unsigned char pub33[33], unsigned char x32[32]) {
    if (km_devnet_keypair(ctx, sec, pub33, x32) != KM_OK) abort();
}

int km_test_enclave_start(km_ctx *ctx, km_test_enclave *t) {
    return km_test_enclave_start_with(ctx, t, NULL);
}

int km_test_enclave_start_with(km_ctx *ctx, km_test_enclave *t, const char *const *extra) {
    return km_devnet_start(ctx, t, KM_ENCLAVE_BIN, NULL, extra) == KM_OK ? 0 : -1;
}

int km_test_enclave_restart(km_test_enclave *t) {
    return km_devnet_restart(t) == KM_OK ? 0 : -1;
}

int km_test_enclave_stop(km_test_enclave *t) {
    return km_devnet_stop(t);
}

void km_test_enclave_kill(km_test_enclave *t) {
    km_devnet_kill(t);
}

void km_test_enclave_destroy(km_test_enclave *t) {
    km_devnet_destroy(t);
}

km_err km_test_enclave_connect(km_ctx *ctx, const km_test_enclave *t, km_enclave_conn *c) {
    return km_devnet_connect(ctx, t, c);
}
