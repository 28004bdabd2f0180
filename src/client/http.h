/* client/http.h — signed HTTP requests to keymeld-gateway.
 *
 * The HTTP layer of the client SDK: one handle (km_client) per gateway,
 * calls that send a JSON body and return the status, the raw body and the
 * parsed JSON, and request authentication as include/keymeld/reqauth.h
 * defines it. A signed request carries four headers:
 *
 *     X-KeyMeld-Key:       64 lowercase hex, the signer's x-only BIP-340 key
 *     X-KeyMeld-Timestamp: unix seconds, decimal
 *     X-KeyMeld-Nonce:     32 lowercase hex, 16 fresh random bytes
 *     X-KeyMeld-Signature: 128 lowercase hex, km_reqauth_sign over the
 *                          method, the exact request target, the body,
 *                          the timestamp and the nonce
 *
 * The signature is only as good as the match between what was signed and
 * what went on the wire, so this layer signs the very bytes it hands to
 * libcurl, and keeps libcurl from rewriting the target (no dot-segment
 * squashing, no fragments, HTTP/1.1 only, no redirects followed).
 *
 * THREADS: a km_client MUST be used by one thread at a time (like a curl easy
 * handle, which it wraps). Different km_clients may be used concurrently
 * from different threads, sharing one km_ctx.
 *
 * PROXIES: the client ignores the http_proxy/https_proxy environment: a
 * gateway is reached directly at the URL given.
 *
 * SECRETS: the signer's secret key is used only to sign; nothing is logged.
 * Request bodies are wiped from the client's memory after sending.
 */
#ifndef KM_CLIENT_HTTP_H
#define KM_CLIENT_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>

#include "keymeld/context.h"
#include "keymeld/cursor.h"
#include "keymeld/error.h"
#include "keymeld/reqauth.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Default time limit of one call, in milliseconds: long polls on the
 *  gateway wait up to 60 s, so a call must be allowed somewhat longer. */
#define KM_CLIENT_DEFAULT_TIMEOUT_MS 70000L
/** Default limit on a response body, in bytes. */
#define KM_CLIENT_DEFAULT_MAX_RESPONSE (16u * 1024u * 1024u)
/** Longest accepted base URL, in bytes (without the NUL). */
#define KM_CLIENT_BASE_URL_MAX 1024

/** Header names of request authentication. */
#define KM_CLIENT_HDR_KEY       "X-KeyMeld-Key"
#define KM_CLIENT_HDR_TIMESTAMP "X-KeyMeld-Timestamp"
#define KM_CLIENT_HDR_NONCE     "X-KeyMeld-Nonce"
#define KM_CLIENT_HDR_SIGNATURE "X-KeyMeld-Signature"

typedef struct km_client km_client;

/** What a call returned. Zero-initialise (or km_client_response_clear)
 *  before passing to a call; release with km_client_response_clear. */
typedef struct km_client_response {
    /** HTTP status code (200, 404, ...); 0 when no response arrived. */
    long status;
    /** The body exactly as received. When a response arrived, body.data is
     *  non-NULL and followed by one NUL byte not counted in body.len, so a
     *  text body can be used as a C string. */
    km_buf body;
    /** The parsed body (new reference owned by the response) when the
     *  response's Content-Type is application/json and the body is one JSON
     *  object or array without duplicate keys; NULL otherwise. */
    json_t *json;
} km_client_response;

/** Deviations from an honest signed request, for tests that forge requests
 *  (never for production use). Zero-initialise, set use = 1 and the fields
 *  wanted; each field left zero keeps the honest behaviour. */
typedef struct km_client_auth_override {
    int use;                                   /**< 0: ignore this struct */
    int use_timestamp;                         /**< send and sign timestamp instead of now */
    uint64_t timestamp;                        /**< with use_timestamp */
    int use_nonce;                             /**< send and sign nonce instead of fresh random bytes */
    unsigned char nonce[KM_REQAUTH_NONCE_LEN]; /**< with use_nonce */
    int claim_other_key;             /**< send claimed_xonly as the key (signature still by signer) */
    unsigned char claimed_xonly[32]; /**< with claim_other_key */
    int omit_signature;              /**< send no X-KeyMeld-Signature header */
    int corrupt_signature;           /**< flip one bit of the signature */
    int use_signature;               /**< send signature verbatim instead of signing (replay) */
    unsigned char signature[KM_REQAUTH_SIG_LEN]; /**< with use_signature */
} km_client_auth_override;

/** The authentication headers of the last call, as sent. */
typedef struct km_client_sent_auth {
    int present;                                 /**< 0: the last call was unsigned or not sent */
    unsigned char xonly[32];                     /**< X-KeyMeld-Key */
    uint64_t timestamp;                          /**< X-KeyMeld-Timestamp */
    unsigned char nonce[KM_REQAUTH_NONCE_LEN];   /**< X-KeyMeld-Nonce */
    int has_signature;                           /**< 0 if the signature header was omitted */
    unsigned char signature[KM_REQAUTH_SIG_LEN]; /**< X-KeyMeld-Signature */
} km_client_sent_auth;

/** Create a client for one gateway.
 *
 *  Returns: KM_OK; KM_ERR_ARG if an argument is NULL or base_url is not an
 *           http:// or https:// URL of at most KM_CLIENT_BASE_URL_MAX
 *           printable bytes without a trailing slash, query, fragment or
 *           user info; KM_ERR_NOMEM. On failure *out is NULL.
 *  Args:    ctx: context (borrowed; MUST outlive the client).
 *  Out:     out: the new client, freed with km_client_free.
 *  In:      base_url: e.g. "http://127.0.0.1:8080" (copied); a request
 *           target "/api/v1/health" is appended to it verbatim.
 */
KM_WARN_UNUSED km_err km_client_new(km_client **out, km_ctx *ctx, const char *base_url);

/** Free a client and close its connections. NULL is accepted. */
void km_client_free(km_client *c);

/** Set the time limit of each later call (connect + request + response).
 *  Args: c: client (not NULL). In: ms: milliseconds; a value <= 0 restores
 *  KM_CLIENT_DEFAULT_TIMEOUT_MS. */
void km_client_set_timeout(km_client *c, long ms) KM_NONNULL(1);

/** Set the largest response body a later call accepts (a larger one ends
 *  the call with KM_ERR_RANGE). Args: c: client. In: bytes: 0 restores
 *  KM_CLIENT_DEFAULT_MAX_RESPONSE. */
void km_client_set_max_response(km_client *c, size_t bytes) KM_NONNULL(1);

/** Release what a response holds; it is then empty (status 0) and may be
 *  reused. NULL is accepted. */
void km_client_response_clear(km_client_response *r);

/** Send one request with an optional JSON body, optionally signed.
 *
 *  The body is serialised compactly and sent with Content-Type
 *  application/json; those exact bytes are signed. POST, PUT and PATCH
 *  without a body send an empty body (Content-Length: 0).
 *
 *  Returns: KM_OK when an HTTP response arrived, whatever its status;
 *           KM_ERR_ARG for NULL c/method/target/out, a method that is not
 *           1..16 letters A-Z, a target that does not start with '/', is
 *           longer than KM_REQAUTH_TARGET_MAX or holds a byte outside
 *           0x21..0x7e or a '#', or a body jansson cannot serialise;
 *           KM_ERR_NOMEM; KM_ERR_RANDOM (no nonce); KM_ERR_CRYPTO (signer
 *           is not a valid key pair); KM_ERR_IO when no response arrived
 *           (connection refused or reset, timeout: see
 *           km_client_last_timed_out and km_client_last_error);
 *           KM_ERR_RANGE if the response body exceeds the limit.
 *           On any error out is empty (status 0, no body, json NULL).
 *  Args:    c: client, used by this thread only for the duration.
 *  Out:     out: MUST be empty (zeroed or cleared); receives the response.
 *  In:      method: "GET", "POST", ... target: path and query, e.g.
 *           "/api/v1/keygen/ID?wait=30", sent and signed verbatim.
 *           body: JSON value (borrowed) or NULL for no body.
 *           signer: auth key pair (borrowed) or NULL for an unsigned call.
 */
KM_WARN_UNUSED km_err km_client_call(km_client *c, const char *method, const char *target, const json_t *body,
                                     const secp256k1_keypair *signer, km_client_response *out);

/** Send one request with raw body bytes: the low-level form of
 *  km_client_call, which tests use to forge requests.
 *
 *  Returns: as km_client_call; also KM_ERR_ARG if body is NULL with len > 0,
 *           content_type holds a byte outside 0x20..0x7e, or ov->use is set
 *           while signer is NULL.
 *  Args:    c: client.
 *  Out:     out: as km_client_call.
 *  In:      method, target: as km_client_call.
 *           body: len bytes sent verbatim (NULL allowed when len is 0); a
 *           body is sent (with Content-Length) when len > 0 or the method is
 *           POST, PUT or PATCH.
 *           content_type: Content-Type header value, or NULL for none.
 *           signer: as km_client_call.
 *           ov: deviations from honest signing (see km_client_auth_override)
 *           or NULL.
 */
KM_WARN_UNUSED km_err km_client_call_raw(km_client *c, const char *method, const char *target,
                                         const unsigned char *body, size_t len, const char *content_type,
                                         const secp256k1_keypair *signer, const km_client_auth_override *ov,
                                         km_client_response *out);

/** The error code of an error response.
 *
 *  Returns: error.code of a body {"error": {"code": "...", ...}} (a string
 *           owned by r->json, valid until r is cleared), or NULL when r is
 *           NULL, has no JSON or does not have that shape.
 */
const char *km_client_error_code(const km_client_response *r);

/** Detail of the last failed call (libcurl's message, or a short reason for
 *  an argument error), for logs and tests; "" after a successful call.
 *  Returns: a NUL-terminated string owned by c, valid until the next call. */
const char *km_client_last_error(const km_client *c) KM_NONNULL(1);

/** Returns: 1 if the last call failed because its time limit passed (a long
 *  poll may simply be retried), 0 otherwise. */
int km_client_last_timed_out(const km_client *c) KM_NONNULL(1);

/** Copy the authentication headers of the last call as sent (for replay
 *  tests). Out: out: filled; out->present is 0 after an unsigned call or a
 *  call that failed before sending. Args: c: client. */
void km_client_last_auth(const km_client *c, km_client_sent_auth *out) KM_NONNULL(1, 2);

#ifdef __cplusplus
}
#endif
#endif
