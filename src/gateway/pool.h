/* gateway/pool.h — the gateway's persistent, pipelined connections to its enclaves.
 *
 * The pool keeps conns_per_enclave authenticated channels (include/keymeld/channel.h)
 * open to every configured enclave, reconnecting in the background with a
 * doubling, capped, jittered backoff, and lets many threads call enclave
 * commands at once. Each connection has one reader thread that matches
 * responses to waiting callers by request id, so several requests are in
 * flight on one connection; a caller is put on the connection with the fewest
 * requests in flight.
 *
 * Restarts. An enclave that restarts keeps its identity (same public key,
 * unsealed from its state) but loses every in-memory session and key. The
 * pool detects it from INFO's boot id (random per enclave process; a new id
 * on a new connection is a new process, however fast the restart) and then
 * increments the enclave's generation BEFORE the new
 * connection takes any call, and tells the listener. The generation is 0 until
 * the first successful INFO, then 1. Every new connection runs INFO before it
 * takes calls, and a health thread repeats INFO every health_interval_ms over
 * a live connection (to refresh the status; it pings the enclaves one after
 * the other, so a hung enclave delays the others' pings, never their calls).
 *
 * Failures. A call is NEVER re-sent by the pool: when the connection breaks
 * or the timeout passes, the caller gets KM_ERR_IO and does not know whether
 * the enclave executed the command. Enclave commands are idempotent by design
 * (docs/PROTOCOL.md section 5), so the caller may retry; the pool will not do
 * it behind the caller's back. Callers waiting on a connection that breaks
 * fail at once, not at their timeout.
 *
 * Secrets. The gateway credential is copied into locked memory (km_secret)
 * and wiped by km_pool_destroy; it is never logged, nor is any request or
 * response body (status texts hold only km_strerror() messages).
 *
 * Threads: every function except km_pool_create and km_pool_destroy may be
 * called from many threads at once. The pool runs conns_per_enclave threads
 * per enclave, one health thread and one notifier thread.
 */
#ifndef KEYMELD_GATEWAY_POOL_H
#define KEYMELD_GATEWAY_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/context.h"
#include "keymeld/cursor.h"
#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KM_POOL_ADDRESS_MAX 256 /**< enclave address, including the NUL */
#define KM_POOL_MAX_CONNS   64  /**< most connections per enclave */
/** Boot times (now - uptime) closer than this are taken to be one process:
 *  uptime has a resolution of one second and the clocks of gateway and
 *  enclave are read at slightly different moments. */
#define KM_POOL_RESTART_SLACK_MS 2000 /**< tolerance of the boot-time estimate shown in the status */

typedef struct km_pool km_pool;

/** One enclave: its id (chosen by the gateway, unique in the pool), address
 *  ("unix:/path", "tcp:host:port", "vsock:cid:port"; NUL-terminated) and the
 *  33-byte compressed public key pinned from its verified attestation. */
typedef struct km_pool_enclave_cfg {
    uint32_t id;
    char address[KM_POOL_ADDRESS_MAX];
    unsigned char pubkey[33];
} km_pool_enclave_cfg;

/** Tuning. A zero field takes its default. */
typedef struct km_pool_config {
    unsigned conns_per_enclave;              /**< persistent connections per enclave (default 2, max 64) */
    unsigned call_timeout_ms;                /**< per request (default 10000) */
    unsigned health_interval_ms;             /**< INFO ping period (default 2000) */
    unsigned backoff_min_ms, backoff_max_ms; /**< reconnect backoff (defaults 100 and 5000), doubling with
                                                  jitter; min must not exceed max */
} km_pool_config;

/** Create a pool and start connecting to every enclave in the background.
 *
 *  The pool does not fail when enclaves are down: they are connected when they
 *  come up. The gateway credential is copied into locked memory; the caller
 *  remains responsible for wiping its own copy.
 *
 *  Returns: KM_OK; KM_ERR_ARG (NULL pointer, n == 0, an address empty or not
 *           NUL-terminated, a config value out of range); KM_ERR_DUPLICATE (two
 *           enclaves with one id); KM_ERR_INVALID_POINT (a pubkey is not a valid
 *           compressed point); KM_ERR_INVALID_KEY (gateway_seckey invalid);
 *           KM_ERR_NOMEM; KM_ERR_IO (a thread could not be started).
 *  Args:    out: receives the pool (owned by the caller, freed with
 *                km_pool_destroy); NULL on failure.
 *           ctx: context; MUST outlive the pool.
 *  In:      cfg: tuning, or NULL for all defaults (copied).
 *           enclaves: n entries (copied).
 *           gateway_seckey: the 32-byte gateway credential the enclaves trust.
 */
KM_WARN_UNUSED km_err km_pool_create(km_pool **out, km_ctx *ctx, const km_pool_config *cfg,
                                     const km_pool_enclave_cfg *enclaves, size_t n,
                                     const unsigned char gateway_seckey[32]);

/** Stop the pool: calls in flight fail promptly with KM_ERR_IO (and this
 *  function waits until they have returned), threads are joined, connections
 *  closed, the credential wiped, everything freed.
 *
 *  The caller MUST NOT start new calls (or other pool functions) once destroy
 *  has begun; calls already inside the pool are handled. The listener MUST NOT
 *  call km_pool_destroy. Waits at most about call_timeout_ms for a handshake
 *  in progress (a TCP connect to a silent host waits for the kernel).
 *  In: p: the pool, or NULL (ignored).
 */
void km_pool_destroy(km_pool *p);

/** Send one command to an enclave and wait for its answer.
 *
 *  The call is NEVER re-sent by the pool (see the file comment): on a
 *  transport error the command may or may not have run in the enclave.
 *  Blocks at most about call_timeout_ms.
 *
 *  Returns: KM_OK when the enclave answered: its status (a km_err value) is in
 *           *code and the response body in resp;
 *           KM_ERR_NOT_FOUND: no enclave with this id;
 *           KM_ERR_IO: no connection is up, the connection broke before the
 *           answer, call_timeout_ms passed, or the pool is being destroyed
 *           (see km_pool_status_get's last_error for which);
 *           KM_ERR_ARG: NULL pointer (body may be NULL only when len is 0) or
 *           len above the frame limit; KM_ERR_NOMEM.
 *  Args:    p: the pool.
 *  Out:     code: the enclave's status; 0 unless KM_OK is returned.
 *           resp: replaced by the response body (the error detail when *code is
 *                 not 0); emptied (len 0) on every error return. The caller
 *                 owns it (km_buf_free).
 *  In:      enclave_id: which enclave. cmd: a km_cmd value. body, len: request body.
 */
KM_WARN_UNUSED km_err km_pool_call(km_pool *p, uint32_t enclave_id, uint16_t cmd, const unsigned char *body,
                                   size_t len, uint16_t *code, km_buf *resp);

/** km_pool_call that also says which process answered.
 *
 *  Returns: as km_pool_call.
 *  Out:     generation: on KM_OK, the generation of the enclave process that
 *           answered (the connection's, fixed when it was opened); 0 otherwise.
 *           A caller that must know whether the answer came from the process
 *           holding its state compares it with what it last re-sent. May be NULL.
 */
KM_WARN_UNUSED km_err km_pool_call_gen(km_pool *p, uint32_t enclave_id, uint16_t cmd,
                                       const unsigned char *body, size_t len, uint16_t *code, km_buf *resp,
                                       uint64_t *generation);

/** What the pool knows about one enclave (public data only). */
/** One request of km_pool_call_all. */
typedef struct km_pool_req {
    uint32_t enclave_id;       /**< In */
    uint16_t cmd;              /**< In */
    const unsigned char *body; /**< In: len bytes (NULL if 0) */
    size_t len;                /**< In */
    km_buf *resp;              /**< In/Out: the response body (replaced) */
    uint16_t code;             /**< Out: the enclave's status (when err is KM_OK) */
    km_err err;                /**< Out: as km_pool_call's return value */
} km_pool_req;

/** Several requests at once, typically one per enclave of a signing round:
 *  every request is sent before any answer is awaited, so the enclaves work
 *  in parallel and a step costs the slowest enclave, not the sum. Each
 *  request gets its own outcome in err/code/resp, exactly as km_pool_call
 *  would have given it (including KM_ERR_NOT_FOUND for an unknown enclave);
 *  nothing is re-sent.
 *  Returns: KM_OK when every request has its outcome; KM_ERR_ARG (NULL, a
 *           NULL resp, a body too large: nothing sent); KM_ERR_NOMEM.
 *  Thread-safe like km_pool_call. */
km_err km_pool_call_all(km_pool *p, km_pool_req *reqs, size_t n) KM_WARN_UNUSED;

/** km_pool_call_all that runs the caller's own work while the enclaves
 *  compute: during(arg) is called once, after every request has been sent
 *  and before any answer is awaited (also when nothing could be sent: the
 *  pool is stopping; not when the arguments are refused or memory runs
 *  out, see Returns). The coordinator commits a round's records there.
 *  Returns: as km_pool_call_all; during was called iff the return is KM_OK.
 *  In:      during: may be NULL (then this is km_pool_call_all). arg: passed
 *           to during, owned by the caller. during runs on the calling
 *           thread and must not call into this pool for the same requests. */
km_err km_pool_call_all_during(km_pool *p, km_pool_req *reqs, size_t n, void (*during)(void *arg),
                               void *arg) KM_WARN_UNUSED;

typedef struct km_pool_status {
    uint32_t id;
    int connected;                            /**< 1 if at least one connection is up */
    unsigned char pubkey[33];                 /**< the pinned key */
    unsigned char fingerprint[32];            /**< from the last INFO (zero before the first) */
    uint64_t generation;                      /**< 0 before the first INFO; +1 per detected restart */
    uint64_t uptime_s;                        /**< from the last INFO */
    uint32_t keygens, signing_sessions, keys; /**< from the last INFO */
    uint64_t calls_ok;                        /**< km_pool_call answered (any enclave status) */
    uint64_t calls_failed;                    /**< km_pool_call failed with a transport error */
    uint64_t reconnects;                      /**< connections re-established after their first */
    int64_t last_ok_unix; /**< unix time of the last answer on any connection (0: never) */
    char last_error[128]; /**< last transport error, "" if none (no secrets) */
    uint32_t in_flight;   /**< requests sent or waiting to be sent, not yet answered */
} km_pool_status;

/** Copy the status of one enclave.
 *  Returns: KM_OK; KM_ERR_ARG (NULL); KM_ERR_NOT_FOUND (unknown id; *out zeroed). */
KM_WARN_UNUSED km_err km_pool_status_get(km_pool *p, uint32_t enclave_id, km_pool_status *out);

/** Number of enclaves in the pool (0 for NULL). */
size_t km_pool_count(const km_pool *p);

/** Id of the i-th enclave, in configuration order.
 *  Returns: KM_OK; KM_ERR_ARG (NULL); KM_ERR_RANGE (i >= count; *id = 0). */
KM_WARN_UNUSED km_err km_pool_id_at(const km_pool *p, size_t i, uint32_t *id);

/** Current generation of an enclave: 0 before its first INFO (or for an
 *  unknown id), then 1, +1 per detected restart. Increased before any call
 *  reaches the restarted process. */
uint64_t km_pool_generation(km_pool *p, uint32_t enclave_id);

/** Register (fn non-NULL) or remove (fn NULL) the one listener for enclave
 *  state changes: called with up = 1 when an enclave becomes reachable or its
 *  generation changes, up = 0 when its last connection goes down.
 *
 *  It runs on the pool's notifier thread (one call at a time, in order) with
 *  no pool lock held, so it may call km_pool_call, km_pool_status_get and
 *  friends (never km_pool_destroy); while it runs, later notifications wait.
 *  Notifications are level-triggered: the last call always reflects the
 *  current state, but a down-and-up faster than the listener may be reported
 *  only as its outcome (a restart is never lost: it changes the generation).
 *  No calls are made once km_pool_destroy has begun.
 *  In: fn, arg: callback and its argument (arg is passed through).
 */
void km_pool_set_listener(km_pool *p, void (*fn)(void *arg, uint32_t enclave_id, int up, uint64_t generation),
                          void *arg);

#ifdef __cplusplus
}
#endif
#endif
