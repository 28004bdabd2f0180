/* gateway/auth.h — checking signed requests (DESIGN section 3).
 *
 * A mutating or private call carries four headers (docs/API.md
 * "Authentication"): the signer's x-only key, a timestamp, a nonce and a
 * BIP-340 signature over the canonical request (include/keymeld/reqauth.h).
 * The handler says which keys may sign this particular call (the session auth
 * key, a participant's auth key, a key owner's auth key); the gateway checks
 * the key is one of them, the timestamp is inside the window, the signature,
 * and finally that the (key, nonce) pair was never seen: the replay cache is
 * in the store, so a replay is refused even after a gateway restart. */
#ifndef KM_GATEWAY_AUTH_H
#define KM_GATEWAY_AUTH_H

#include "gateway/gateway.h"

#define KM_GW_HDR_KEY       "X-KeyMeld-Key"
#define KM_GW_HDR_TIMESTAMP "X-KeyMeld-Timestamp"
#define KM_GW_HDR_NONCE     "X-KeyMeld-Nonce"
#define KM_GW_HDR_SIGNATURE "X-KeyMeld-Signature"

/** Check the request's signature.
 *
 *  Every request whose signature verifies spends a token of its key's
 *  rate bucket (gw->rate), whether the key may make this call or not.
 *  Returns: 1 if the request is authentic, fresh, never seen, and signed by
 *           one of the allowed keys (*signer_index says which), with
 *           resp->wait_owner set to the key's id (a long poll of this request
 *           counts against the key's max_waiters_per_key); 0 otherwise,
 *           with resp answered: 401 auth_missing / auth_malformed /
 *           auth_expired / auth_invalid / auth_replayed, 429 rate_limited
 *           (the key's bucket is empty; Retry-After: 1), 403 auth_forbidden
 *           (valid signature by a key that may not make this call), 500/503
 *           if the replay cache cannot be written.
 *  In:      allowed: n_allowed x-only keys (n_allowed >= 1).
 *  Out:     signer_index: may be NULL. */
int km_gw_auth(km_gateway *gw, km_store *st, const km_http_request *req, const unsigned char (*allowed)[32],
               size_t n_allowed, size_t *signer_index, km_http_response *resp);

/** km_gw_auth with the four header values given instead of read from the
 *  connection (km_gw_auth calls it; the fuzz target fuzz/fuzz_reqauth.c
 *  feeds it arbitrary headers).
 *  km_gw_auth itself first refuses a header sent more than once.
 *  In:      hdr: the values of X-KeyMeld-Key, -Timestamp, -Nonce and
 *           -Signature, in that order, each NUL-terminated or NULL when the
 *           header is absent. Everything else as km_gw_auth. */
int km_gw_auth_headers(km_gateway *gw, km_store *st, const km_http_request *req, const char *const hdr[4],
                       const unsigned char (*allowed)[32], size_t n_allowed, size_t *signer_index,
                       km_http_response *resp);

#endif
