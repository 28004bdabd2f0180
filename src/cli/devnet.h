/* devnet.h — local keymeld-enclave processes for development: each gets its
 * own state directory, sealing key, development CA and a gateway credential
 * it trusts. Used by the demo, the enclave benchmark and the enclave tests.
 * Nothing here is fit for production: the CA and sealing key sit next to the
 * process on the same disk. */
#ifndef KM_CLI_DEVNET_H
#define KM_CLI_DEVNET_H

#include <sys/types.h>

#include "keymeld/context.h"
#include "keymeld/error.h"
#include "net/enclave_client.h"

#define KM_DEVNET_MAX_EXTRA 8

/** One local enclave process and what a gateway needs to talk to it. */
typedef struct km_devnet_enclave {
    const char *bin; /* path of the keymeld-enclave binary (borrowed, must outlive the struct) */
    pid_t pid;       /* 0 when not running */
    char dir[256];   /* state directory */
    char addr[300];  /* unix:DIR/enclave.sock */
    unsigned char pub[33];
    unsigned char gw_sec[32], gw_x[32];         /* the gateway credential it trusts */
    const char *extra[KM_DEVNET_MAX_EXTRA + 1]; /* extra `run` arguments (static strings), NULL-terminated */
    int owns_dir;                               /* dir was made by us (temporary): destroy removes it */
} km_devnet_enclave;

/** Prepare a state directory (sealing key, dev CA, gateway credential) and
 *  start an enclave on it; returns once the socket accepts connections.
 *  MUST be paired with km_devnet_destroy (also on failure).
 *  Returns: KM_OK; KM_ERR_ARG (NULL, path too long); KM_ERR_IO (directory,
 *           helper command or start failed); KM_ERR_RANDOM.
 *  Args: ctx: context. t: zeroed and filled.
 *  In: bin: keymeld-enclave path (borrowed). dir: existing directory to use,
 *      or NULL for a fresh /tmp/km-enclave-XXXXXX removed by destroy.
 *      extra: up to 8 extra `run` arguments (static strings), NULL-terminated, or NULL. */
KM_WARN_UNUSED km_err km_devnet_start(km_ctx *ctx, km_devnet_enclave *t, const char *bin, const char *dir,
                                      const char *const *extra);
/** km_devnet_start, but the enclave trusts the given gateway credential
 *  (so that one gateway can drive several local enclaves) instead of a fresh one.
 *  Returns: as km_devnet_start; KM_ERR_INVALID_KEY if gateway_seckey is not a
 *           valid secret key.
 *  In: gateway_seckey: 32 bytes (copied), or NULL for a fresh credential. */
KM_WARN_UNUSED km_err km_devnet_start_shared(km_ctx *ctx, km_devnet_enclave *t, const char *bin,
                                             const char *dir, const char *const *extra,
                                             const unsigned char gateway_seckey[32]);

/** Start again on the same state directory (the identity must survive).
 *  Returns: KM_OK; KM_ERR_STATE if running; KM_ERR_IO. */
KM_WARN_UNUSED km_err km_devnet_restart(km_devnet_enclave *t);
/** SIGTERM and wait. Returns the exit status (0 = clean shutdown; 128+sig
 *  when killed by a signal) or -1 if it was not running. */
int km_devnet_stop(km_devnet_enclave *t);
/** SIGKILL (no chance to clean up) and wait. */
void km_devnet_kill(km_devnet_enclave *t);
/** Stop if running and remove the state directory if it is ours. */
void km_devnet_destroy(km_devnet_enclave *t);
/** Connect as the trusted gateway (channel handshake proves the enclave key).
 *  Returns: what km_enclave_conn_open returns. */
KM_WARN_UNUSED km_err km_devnet_connect(km_ctx *ctx, const km_devnet_enclave *t, km_enclave_conn *c);

/** Run argv (argv[0] an absolute path) to completion with its stdout captured
 *  into out (at most cap-1 bytes, NUL-terminated; cap >= 1); its stderr is
 *  ours. Returns its exit status, or -1 if it could not run or was killed. */
int km_devnet_run_capture(const char *const argv[], char *out, size_t cap);

/** A random valid secp256k1 key pair.
 *  Returns: KM_OK; KM_ERR_RANDOM; KM_ERR_CRYPTO. On failure sec is zeroed.
 *  Out: sec: 32 bytes. pub33: 33-byte compressed, or NULL. x32: x-only, or NULL. */
KM_WARN_UNUSED km_err km_devnet_keypair(km_ctx *ctx, unsigned char sec[32], unsigned char pub33[33],
                                        unsigned char x32[32]);

#endif
