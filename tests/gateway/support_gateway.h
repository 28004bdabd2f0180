/* support_gateway.h — the harness of the gateway integration tests: real
 * keymeld-enclave processes (src/cli/devnet.h) and a real keymeld-gateway
 * process (KM_GATEWAY_BIN) on loopback, all trusting one gateway credential,
 * in one temporary directory that km_gwtest_stop removes.
 *
 * The gateway runs as
 *     keymeld-gateway --config DIR/gateway.json --ready-file DIR/ready
 * with the config
 *     {"listen": "127.0.0.1:0", "database": "DIR/gateway.db",
 *      "gateway_key_file": "DIR/gateway.key",
 *      "enclaves": [{"id": i, "address": "unix:...", "public_key": "<66 hex>"}, ...]}
 * (plus the caller's extra keys), gateway.key holding the credential secret
 * as 64 hex digits and a newline (mode 0600). The gateway writes its port and
 * a newline to the ready file (atomically) once it listens; its stdout and
 * stderr go to DIR/gateway.log, kept until km_gwtest_stop so that a test can
 * search it for leaked secrets.
 *
 * The gateway dies with the thread that started it (PR_SET_PDEATHSIG), so a
 * crashed test leaves nothing running: start and restart it from the main
 * thread (or a thread that outlives it). Set KM_GWTEST_KEEP=1 in the
 * environment to keep the directory (logs, database) after a run.
 */
#ifndef KM_TESTS_GATEWAY_SUPPORT_GATEWAY_H
#define KM_TESTS_GATEWAY_SUPPORT_GATEWAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cli/devnet.h"
#include "client/http.h"
#include "keymeld/context.h"
#include "keymeld/cursor.h"
#include "keymeld/error.h"

#define KM_GWTEST_MAX_ENCLAVES 8

typedef struct km_gwtest {
    km_ctx *ctx;    /* the test's context: borrowed if set before start, else made and owned */
    int owns_ctx;   /* ctx was made by km_gwtest_start */
    int n_enclaves; /* enclaves 0..n-1 are (or were) started; enclave id i is enc[i] */
    km_devnet_enclave enc[KM_GWTEST_MAX_ENCLAVES];
    unsigned char gw_sec[32]; /* the gateway credential every enclave trusts */
    unsigned char gw_x[32];   /* its x-only public key */
    char dir[256];            /* the temporary directory */
    char db_path[300];
    char config_path[300];
    char key_path[300];
    char ready_path[300];
    char log_path[300];
    pid_t gw_pid;      /* 0 when the gateway is not running */
    uint16_t port;     /* the port of the last successful gateway start */
    char base_url[64]; /* "http://127.0.0.1:PORT" */
} km_gwtest;

/** Start n_enclaves enclaves and a gateway over them; returns once the
 *  gateway is ready (see km_gwtest_gateway_start).
 *  MUST be paired with km_gwtest_stop, also on failure.
 *  Returns: KM_OK; KM_ERR_ARG (t NULL, n_enclaves not 1..8); KM_ERR_PARSE if
 *           extra_config_json is not a JSON object; KM_ERR_IO (directory,
 *           file, enclave or gateway start failed; the gateway log is printed
 *           to stderr); KM_ERR_RANDOM; KM_ERR_NOMEM.
 *  In/Out: t: t->ctx is used if non-NULL (borrowed), else a context is made;
 *          every other field is overwritten.
 *  In: extra_config_json: a JSON object whose keys replace or add to the
 *      config's top level, or NULL. */
KM_WARN_UNUSED km_err km_gwtest_start(km_gwtest *t, int n_enclaves, const char *extra_config_json);

/** Rewrite the gateway config (the default one merged with extra_config_json)
 *  for the next km_gwtest_gateway_start. Returns: as km_gwtest_start. */
KM_WARN_UNUSED km_err km_gwtest_write_config(km_gwtest *t, const char *extra_config_json);

/** Start the gateway process on the same database and config and wait (up to
 *  20 s, polling every 10 ms) until its ready file names the port; fills
 *  t->port and t->base_url. With "listen" on port 0 a restarted gateway may
 *  listen on another port: make new clients after a restart.
 *  Returns: KM_OK; KM_ERR_STATE if it is running; KM_ERR_IO if it could not
 *           be started, exited early or was not ready in time (it is then
 *           killed; its log is printed to stderr). */
KM_WARN_UNUSED km_err km_gwtest_gateway_start(km_gwtest *t);

/** SIGKILL the gateway (no chance to clean up) and wait for it. */
void km_gwtest_gateway_kill(km_gwtest *t);

/** SIGTERM the gateway and wait for it (SIGKILL after 15 s).
 *  Returns: its exit status (0 = clean shutdown), 128+signal if a signal
 *  ended it, -1 if it was not running. */
int km_gwtest_gateway_stop(km_gwtest *t);

/** Stop the gateway and every enclave, remove the directory (unless
 *  KM_GWTEST_KEEP is set; gateway.key is removed even then), wipe the
 *  credential, destroy an owned context (t->ctx NULL; a borrowed one stays).
 *  Safe on a zeroed struct, twice, and after a failed start; t can then be
 *  started again. */
void km_gwtest_stop(km_gwtest *t);

/** The development CA root certificate (PEM) of enclave i, to pin when
 *  verifying its attestation documents with km_attest_verify.
 *  Returns: KM_OK; KM_ERR_ARG (i out of range); KM_ERR_IO; KM_ERR_NOMEM.
 *  Out: out: an empty km_buf (km_buf_init); receives the file, freed by the
 *  caller with km_buf_free. On failure it is empty. */
KM_WARN_UNUSED km_err km_gwtest_ca_root(const km_gwtest *t, int i, km_buf *out);

/** A client for the running gateway (t->base_url), freed by the caller with
 *  km_client_free. Returns: what km_client_new returns. */
KM_WARN_UNUSED km_err km_gwtest_client(const km_gwtest *t, km_client **out);

/** Does the gateway log contain these bytes?
 *  Returns: 1 yes, 0 no, -1 if the log cannot be read. */
int km_gwtest_log_contains(const km_gwtest *t, const void *needle, size_t len);

/** The same for the log of enclave i. Returns: 1, 0, or -1 (also for a bad i). */
int km_gwtest_enclave_log_contains(const km_gwtest *t, int i, const void *needle, size_t len);

#endif
