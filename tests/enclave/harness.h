/* harness.h — runs real keymeld-enclave processes for tests and connects to
 * them as a gateway; a thin layer over src/cli/devnet.h with the test's
 * binary (KM_ENCLAVE_BIN). Every process a test starts is stopped by the test. */
#ifndef KM_TESTS_ENCLAVE_HARNESS_H
#define KM_TESTS_ENCLAVE_HARNESS_H

#include <sys/types.h>

#include "cli/devnet.h"
#include "net/enclave_client.h"

typedef km_devnet_enclave km_test_enclave;

/** Make a temporary state dir, sealing key and gateway credential; start the
 *  enclave and wait until it accepts connections. Returns 0 or -1. */
int km_test_enclave_start(km_ctx *ctx, km_test_enclave *t);
/** The same, with up to 8 extra `run` arguments (NULL-terminated list of
 *  static strings), kept for restarts. */
int km_test_enclave_start_with(km_ctx *ctx, km_test_enclave *t, const char *const *extra);
/** SIGKILL (no chance to clean up), wait. */
void km_test_enclave_kill(km_test_enclave *t);
/** Start again on the same state dir (the identity must survive). Returns 0 or -1. */
int km_test_enclave_restart(km_test_enclave *t);
/** SIGTERM, wait; returns the exit status (0 = clean shutdown). */
int km_test_enclave_stop(km_test_enclave *t);
/** Stop (if running) and remove the state directory. */
void km_test_enclave_destroy(km_test_enclave *t);
/** Connect as the trusted gateway. */
km_err km_test_enclave_connect(km_ctx *ctx, const km_test_enclave *t, km_enclave_conn *c);

/** A random valid secp256k1 key pair (33-byte compressed and x-only views);
 *  aborts if none can be made. */
void km_test_keypair(km_ctx *ctx, unsigned char sec[32], unsigned char pub33[33], unsigned char x32[32]);

#endif
