/* gateway/gateway.h — the running gateway: what handlers and the coordinator
 * share. Nothing here is secret except the gateway credential inside the
 * pool (which only lets the gateway talk to enclaves, never sign).
 *
 * Threads: libmicrohttpd's pool runs the handlers, the coordinator runs its
 * workers and one timer thread, the enclave pool runs its own. SQLite handles
 * are not shared between threads: each user takes one from km_gw_store_take
 * and gives it back. */
#ifndef KM_GATEWAY_GATEWAY_H
#define KM_GATEWAY_GATEWAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "gateway/config.h"
#include "gateway/http.h"
#include "gateway/pool.h"
#include "gateway/ratelimit.h"
#include "gateway/store.h"
#include "keymeld/context.h"

#define KM_GW_VERSION "0.1.0"

typedef struct km_coord km_coord;

/** Counters exported by /metrics. */
typedef struct km_gw_metrics {
    atomic_ullong auth_failures;
    atomic_ullong sessions_completed[3]; /**< keygen, signing, keysign */
    atomic_ullong sessions_failed[3];
    atomic_ullong signing_latency_us_sum; /**< created -> completed, completed signings */
    atomic_ullong signing_latency_count;
    atomic_ullong round_restarts;   /**< signing rounds restarted after an enclave restart */
    atomic_ullong enclave_restores; /**< stored blobs re-sent after an enclave (re)connect */
} km_gw_metrics;

typedef struct km_gateway {
    km_ctx *ctx;
    km_gw_config cfg;
    km_pool *pool;
    km_http_server *http;
    km_coord *coord;
    km_ratelimit *rate;             /**< per-key request rate (always set; limiting may be disabled) */
    char owner[KM_STORE_OWNER_MAX]; /**< lease owner name (config instance_name, host:port or random) */
    int64_t started_at;
    km_gw_metrics metrics;
    /* store handles */
    pthread_mutex_t store_lock;
    pthread_cond_t store_cond;
    km_store **stores;
    size_t n_stores, n_free;
    km_store **free_stores;
} km_gateway;

/** Take a store handle (waits until one is free). Never NULL. */
km_store *km_gw_store_take(km_gateway *gw);
/** Give a handle back. */
void km_gw_store_give(km_gateway *gw, km_store *st);

/** Unix time in seconds / CLOCK_MONOTONIC in milliseconds. */
int64_t km_gw_now(void);
uint64_t km_gw_mono_ms(void);

/** The wait key of a session ("keygen:<32 hex>", ...), for km_http_notify. */
void km_gw_wait_key(char out[48], km_store_kind kind, const unsigned char id[16]);

/** The session id of a wait key of this kind (the inverse of km_gw_wait_key).
 *  Returns: 1 and id set; 0 if key is NULL or not such a key. */
int km_gw_wait_key_id(const char *key, km_store_kind kind, unsigned char id[16]);

/** The route table (for the server and for the OpenAPI test). */
const km_http_route *km_gw_routes(size_t *n);

/* ---- coordinator (coordinator.c) ------------------------------------------ */

/** Start the workers and the timer; every non-terminal session in the store is
 *  queued (a restarted gateway carries on where it stopped).
 *  Returns: KM_OK; KM_ERR_NOMEM; KM_ERR_IO (thread creation). */
KM_WARN_UNUSED km_err km_coord_start(km_gateway *gw);
/** Queue a session to be advanced (thread-safe; duplicates are merged). */
void km_coord_kick(km_gateway *gw, km_store_kind kind, const unsigned char id[16]);
/** Stop and join the workers (sessions stay in the store and resume at the
 *  next start). Kicks after this are ignored. */
void km_coord_stop(km_gateway *gw);
/** Free the coordinator (after km_coord_stop and after the HTTP server, whose
 *  handlers may still kick, has stopped). */
void km_coord_free(km_gateway *gw);
/** 1 when every stored blob has been re-sent to the enclave's current process
 *  (after a gateway start or an enclave restart), 0 while that is pending. */
int km_coord_enclave_ready(km_gateway *gw, uint32_t enclave_id);

#endif
