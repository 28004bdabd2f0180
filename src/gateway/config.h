/* gateway/config.h — keymeld-gateway's configuration: one JSON file, then
 * environment variables, then command-line flags (each overrides the one
 * before). Loading validates everything, so that `--check-config` and a real
 * start reject exactly the same files. docs/OPERATIONS.md lists every key. */
#ifndef KM_GATEWAY_CONFIG_H
#define KM_GATEWAY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/error.h"

#define KM_GW_MAX_ENCLAVES 64
#define KM_GW_PATH_MAX     512

typedef struct km_gw_enclave_cfg {
    uint32_t id;
    char address[256];        /**< "unix:/path", "tcp:host:port" or "vsock:cid:port" */
    unsigned char pubkey[33]; /**< pinned enclave key (compressed) */
} km_gw_enclave_cfg;

typedef struct km_gw_config {
    char listen_host[64]; /**< "127.0.0.1" */
    uint16_t listen_port; /**< 0: ephemeral */
    char database[KM_GW_PATH_MAX];
    char gateway_key_file[KM_GW_PATH_MAX];
    char instance_name[48]; /**< lease owner name; "" = "<hostname>:<port>" (random when the port is 0) */
    size_t n_enclaves;
    km_gw_enclave_cfg enclaves[KM_GW_MAX_ENCLAVES];
    /* limits */
    size_t max_body_bytes;        /**< larger request bodies get 413 */
    size_t max_body_bytes_total;  /**< request bodies buffered at once, all connections; over it 503 */
    unsigned max_wait_seconds;    /**< cap of ?wait= (long poll) */
    unsigned auth_window_seconds; /**< allowed clock skew of signed requests */
    unsigned max_participants;    /**< per keygen */
    unsigned max_timeout_seconds; /**< largest session timeout a client may ask for */
    unsigned max_active_sessions_per_keygen; /**< signing sessions not yet completed/failed; 0 = no cap */
    /* per-key request rate (token bucket per key whose signature verified) */
    unsigned rate_per_key_per_second; /**< refill; 0 disables rate limiting */
    unsigned rate_burst_per_key;      /**< bucket size */
    unsigned rate_limit_max_keys;     /**< buckets kept (least recently used reused) */
    /* long polls */
    unsigned max_waiters;         /**< parked long polls in total; 0 = 7/8 of http_max_connections */
    unsigned max_waiters_per_key; /**< parked long polls per signing key; 0 = no per-key cap */
    /* threads */
    unsigned http_threads;
    unsigned http_max_connections;
    unsigned coordinator_workers;
    /* enclave pool */
    unsigned enclave_connections; /**< per enclave */
    unsigned enclave_timeout_ms;
    unsigned retry_max_ms; /**< cap of the coordinator's retry backoff */
} km_gw_config;

/** Fill cfg with the defaults (no enclaves, no database). */
void km_gw_config_defaults(km_gw_config *cfg);

/** Apply a JSON configuration file on top of cfg.
 *
 *  Unknown keys, wrong types and out-of-range values are errors (a typo in a
 *  custody service's configuration must not be silently ignored).
 *  Returns: KM_OK; KM_ERR_IO (unreadable); KM_ERR_PARSE (invalid, with msg
 *           naming the key).
 *  Out:     msg: a NUL-terminated explanation on failure (msg_len > 0).
 */
KM_WARN_UNUSED km_err km_gw_config_load_file(km_gw_config *cfg, const char *path, char *msg, size_t msg_len);

/** Apply KEYMELD_LISTEN, KEYMELD_DATABASE, KEYMELD_GATEWAY_KEY_FILE from the
 *  environment. Returns: KM_OK; KM_ERR_PARSE (msg says which). */
KM_WARN_UNUSED km_err km_gw_config_load_env(km_gw_config *cfg, char *msg, size_t msg_len);

/** Parse "HOST:PORT" (IPv4 or [IPv6]) into cfg's listen fields.
 *  Returns: KM_OK; KM_ERR_PARSE. */
KM_WARN_UNUSED km_err km_gw_config_set_listen(km_gw_config *cfg, const char *hostport);

/** Final checks: a database path, a key file, at least one enclave, distinct
 *  ids, limits consistent (max_waiters <= http_max_connections).
 *  Returns: KM_OK; KM_ERR_PARSE with msg. */
KM_WARN_UNUSED km_err km_gw_config_validate(const km_gw_config *cfg, char *msg, size_t msg_len);

/** The effective cap of parked long polls: max_waiters, or 7/8 of
 *  http_max_connections when it is 0 (so that a flood of waiters always
 *  leaves connections for other requests). Returns: the cap (>= 1). */
unsigned km_gw_config_max_waiters(const km_gw_config *cfg);

/** Read the gateway credential: 64 hex characters and an optional newline,
 *  in a file that only its owner may read (mode 0600 or stricter).
 *  Returns: KM_OK; KM_ERR_IO (unreadable); KM_ERR_STATE (group/other may
 *           read it); KM_ERR_PARSE; KM_ERR_INVALID_KEY.
 *  Out:     seckey: 32 bytes, zeroed on failure. */
KM_WARN_UNUSED km_err km_gw_config_read_key(const char *path, unsigned char seckey[32], char *msg,
                                            size_t msg_len);

#endif
