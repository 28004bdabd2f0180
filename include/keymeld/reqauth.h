/* keymeld/reqauth.h — BIP-340 signatures over HTTP requests.
 *
 * A client proves possession of an auth key (the session auth key, or a
 * participant's auth key) by signing a canonical description of the request.
 * The signature covers the method, the full request target (path and query),
 * the body, a timestamp and a random nonce, so it cannot be moved to another
 * endpoint, another body or another time. The verifier additionally enforces
 * a time window (km_reqauth_check_time) and remembers nonces for that window
 * (a persisted replay cache, outside the core), which together make every
 * signed request usable once.
 *
 * CANONICAL STRING (version 1): six lines joined by LF (0x0a), with no LF
 * after the last one and no other whitespace:
 *
 *     KEYMELD-AUTH-V1
 *     <method>      1..16 bytes, uppercase ASCII letters A-Z ("POST")
 *     <target>      1..KM_REQAUTH_TARGET_MAX bytes, first byte '/', every
 *                   byte in 0x21..0x7e: the request target exactly as on the
 *                   request line, query included ("/keygen/abc?x=1")
 *     <body-hash>   64 lowercase hex digits, SHA-256 of the exact body bytes
 *                   (an empty body hashes to e3b0c442...b855)
 *     <timestamp>   unix time in seconds, decimal, no sign, no leading zeros
 *                   ("0" for zero)
 *     <nonce>       32 lowercase hex digits: 16 random bytes chosen by the
 *                   client for this request
 *
 * Because method and target cannot contain LF (nor any control byte or
 * space) and every other line has a fixed alphabet, the string splits into
 * its six fields in exactly one way: no two different requests share a
 * canonical string.
 *
 *     digest    = TaggedHash("KeyMeld/request", canonical string)  (BIP-340 tagged hash)
 *     signature = BIP-340 Schnorr signature (64 bytes) of digest
 *
 * The tag keeps these signatures from ever being valid as a signature over
 * any other KeyMeld or Bitcoin message.
 */
#ifndef KEYMELD_REQAUTH_H
#define KEYMELD_REQAUTH_H

#include <stddef.h>
#include <stdint.h>

#include <secp256k1.h>
#include <secp256k1_extrakeys.h>

#include "keymeld/context.h"
#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KM_REQAUTH_TAG        "KeyMeld/request"
#define KM_REQAUTH_METHOD_MAX 16
#define KM_REQAUTH_TARGET_MAX 4096
#define KM_REQAUTH_NONCE_LEN  16
#define KM_REQAUTH_SIG_LEN    64
/** Upper bound of a canonical string including its NUL:
 *  16 + 16 + 4096 + 64 + 20 + 32 + 5 LF + NUL. */
#define KM_REQAUTH_CANONICAL_MAX (15 + KM_REQAUTH_METHOD_MAX + KM_REQAUTH_TARGET_MAX + 64 + 20 + 32 + 5 + 1)

/** The signed fields of one request. Strings need not be NUL-terminated;
 *  none of the pointers is owned. */
typedef struct km_reqauth_req {
    const char *method; /**< method_len bytes, e.g. "POST" */
    size_t method_len;
    const char *target; /**< target_len bytes: path with query */
    size_t target_len;
    const unsigned char *body; /**< body_len bytes; NULL allowed when body_len is 0 */
    size_t body_len;
    uint64_t timestamp;                        /**< unix seconds */
    unsigned char nonce[KM_REQAUTH_NONCE_LEN]; /**< fresh random per request */
} km_reqauth_req;

/** Build the canonical string of a request.
 *
 *  Returns: KM_OK; KM_ERR_PARSE if method or target break the rules above
 *           (LF, CR, space, control bytes, lowercase method, target not
 *           starting with '/', empty or too long); KM_ERR_ARG if body is NULL
 *           with body_len > 0; KM_ERR_BUFFER_SMALL if out_size is too small
 *           (KM_REQAUTH_CANONICAL_MAX always suffices). On failure out is an
 *           empty string (if out_size > 0) and *out_len is 0.
 *  Out:     out: out_size bytes, receives the string and a NUL;
 *           out_len: its length without the NUL.
 *  In:      req: the request.
 */
KM_WARN_UNUSED km_err km_reqauth_canonical(const km_reqauth_req *req, char *out, size_t out_size,
                                           size_t *out_len) KM_NONNULL(1, 2, 4);

/** The 32-byte digest that is signed: TaggedHash("KeyMeld/request", canonical).
 *
 *  Returns: KM_OK; KM_ERR_PARSE or KM_ERR_ARG as km_reqauth_canonical
 *           (digest32 zeroed).
 *  Out:     digest32: 32 bytes.
 *  In:      req: the request.
 */
KM_WARN_UNUSED km_err km_reqauth_digest(const km_reqauth_req *req, unsigned char digest32[32])
    KM_NONNULL(1, 2);

/** Sign a request with BIP-340 (fresh auxiliary randomness per signature).
 *
 *  Returns: KM_OK; KM_ERR_PARSE / KM_ERR_ARG as km_reqauth_canonical;
 *           KM_ERR_RANDOM; KM_ERR_CRYPTO if libsecp256k1 fails (e.g. an
 *           invalid keypair). On failure sig64 is zeroed.
 *  Args:    ctx: context.
 *  Out:     sig64: the 64-byte signature.
 *  In:      keypair: the signer's auth key pair (e.g. km_session_auth_keypair);
 *           req: the request; its nonce MUST be fresh random bytes.
 */
KM_WARN_UNUSED km_err km_reqauth_sign(const km_ctx *ctx, const secp256k1_keypair *keypair,
                                      const km_reqauth_req *req, unsigned char sig64[64])
    KM_NONNULL(1, 2, 3, 4);

/** Verify a request signature against an x-only public key.
 *
 *  This checks the signature only; the caller MUST also apply
 *  km_reqauth_check_time and its replay cache of (key, nonce).
 *
 *  Returns: KM_OK if valid; KM_ERR_INVALID_POINT if xonly32 is not a valid
 *           x-only key; KM_ERR_PARSE / KM_ERR_ARG as km_reqauth_canonical;
 *           KM_ERR_VERIFY if the signature does not match this key and
 *           exactly these fields.
 *  Args:    ctx: context.
 *  In:      xonly32: 32-byte BIP-340 public key; req: the request as
 *           received; sig64: the 64-byte signature.
 */
KM_WARN_UNUSED km_err km_reqauth_verify(const km_ctx *ctx, const unsigned char xonly32[32],
                                        const km_reqauth_req *req, const unsigned char sig64[64])
    KM_NONNULL(1, 2, 3, 4);

/** Check that a request timestamp is within window seconds of now, on
 *  either side (clocks drift both ways; a far-future timestamp would let a
 *  captured request outlive the replay cache).
 *
 *  Returns: KM_OK if |now - timestamp| <= window; KM_ERR_RANGE otherwise.
 *  In:      now: the verifier's unix time in seconds; timestamp: from the
 *           request; window: allowed skew in seconds.
 */
KM_WARN_UNUSED km_err km_reqauth_check_time(uint64_t now, uint64_t timestamp, uint64_t window);

#ifdef __cplusplus
}
#endif
#endif
