/* keymeld/proto_key.h — the single-signer messages (docs/PROTOCOL.md §5.4).
 *
 * One imported key, held by one enclave, signing BIP-340 Schnorr or ECDSA
 * under the same custody rules as the MuSig2 keys: the gateway relays every
 * message but can read neither the key, nor what is signed, nor the
 * signature, and a key flagged "require approval" signs only what its owner's
 * auth key approved.
 *
 * Both halves of each message live here (the OpenSSH monitor_wrap model):
 * the client builds the command bodies (encrypting what is secret to the
 * enclave) and opens the sealed result; the enclave parses the bodies and
 * plaintexts and seals the result. Decoders validate everything they can
 * without keys: lengths, versions, flags, algorithms, ranges, trailing bytes.
 * Curve validity of keys is checked by the consumer through libsecp256k1.
 *
 * COMMANDS (version 1)
 *
 *   KEY_IMPORT (0x0030)  key_id[16] | user_id[16] | vbytes blob
 *       blob = ECIES to the enclave, AD = AD(KM_AD_KEY_IMPORT, key_id, user_id)
 *       plaintext (66 bytes) = u8 version=1 | seckey[32] | auth_pub[32] | u8 flags
 *       response: empty
 *
 *   KEY_SIGN (0x0031)    key_id[16] | request_id[16] | vbytes blob | u8 has_approval
 *                        | approval_sig[64] (only if has_approval = 1)
 *       blob = ECIES to the enclave, AD = AD(KM_AD_KEY_SIGN, key_id, request_id)
 *       plaintext = u8 version=1 | u8 algo | u64 timestamp | u32 msg_len | msg
 *                   | response_key[32]
 *       response: the sealed result, km_session_seal under the session derived
 *       from response_key, AD = AD(KM_AD_KEY_SIGN_RESULT, key_id, request_id),
 *       plaintext = u8 algo | sig[64]
 *
 *   KEY_DELETE (0x0032)  key_id[16] | u64 timestamp | sig[64]    (88 bytes)
 *       sig = BIP-340 by auth_pub over km_key_delete_digest
 *       response: empty
 *
 * AD(...) is km_ad_build (keymeld/session_crypto.h); vbytes is u32 BE length
 * then bytes; all integers big-endian.
 */
#ifndef KEYMELD_PROTO_KEY_H
#define KEYMELD_PROTO_KEY_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/context.h"
#include "keymeld/cursor.h"
#include "keymeld/error.h"
#include "keymeld/session_crypto.h"
#include "keymeld/uuid.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KM_KEY_PROTO_VERSION 1

/** Associated-data purposes. */
#define KM_AD_KEY_IMPORT      "keymeld/key-import/v1"
#define KM_AD_KEY_SIGN        "keymeld/key-sign/v1"
#define KM_AD_KEY_SIGN_RESULT "keymeld/key-sign-result/v1"
/** Tags of the auth key's signatures (BIP-340 tagged hashes). */
#define KM_TAG_SINGLE_APPROVAL "KeyMeld/single-approval"
#define KM_TAG_KEY_DELETE      "KeyMeld/key-delete"

/** Key flags. Bit 0: every KEY_SIGN needs an approval by auth_pub. Other bits
 *  are reserved and refused, so a future flag is never silently ignored. */
#define KM_KEY_FLAG_REQUIRE_APPROVAL 0x01u

/** Signature algorithms. */
#define KM_KEY_ALGO_SCHNORR 1 /**< BIP-340 over the message bytes, 0..KM_KEY_MSG_MAX long */
#define KM_KEY_ALGO_ECDSA   2 /**< ECDSA, low-S compact r||s, over a 32-byte digest */

/** Largest message a KEY_SIGN may carry. */
#define KM_KEY_MSG_MAX 1024
/** Largest ECIES blob in a KEY_IMPORT or KEY_SIGN body. */
#define KM_KEY_BLOB_MAX 4096
/** Allowed clock skew, in seconds, of KEY_SIGN and KEY_DELETE timestamps. */
#define KM_KEY_TIME_WINDOW 300
/** Per key, the enclave remembers the results of this many most recent sign
 *  requests (FIFO) to answer retries and refuse a reused request id. */
#define KM_KEY_SIGN_CACHE 1024

#define KM_KEY_IMPORT_LEN      66 /**< import plaintext: 1 + 32 + 32 + 1 */
#define KM_KEY_SIGN_FIXED_LEN  46 /**< sign plaintext without msg: 1+1+8+4+32 */
#define KM_KEY_SIGN_RESULT_LEN 65 /**< result plaintext: algo | sig[64] */
#define KM_KEY_DELETE_LEN      88 /**< KEY_DELETE body */

/* ------------------------------------------------------------------------ */
/* KEY_IMPORT                                                                */
/* ------------------------------------------------------------------------ */

/** An import plaintext. Holds a secret key: wipe it (km_wipe) after use. */
typedef struct km_key_import {
    unsigned char seckey[32];   /**< the key to import (valid secp256k1 secret key) */
    unsigned char auth_pub[32]; /**< x-only key that signs approvals and the deletion */
    uint8_t flags;              /**< KM_KEY_FLAG_* */
} km_key_import;

/** The AD of an import blob: AD(KM_AD_KEY_IMPORT, key_id, user_id[16]).
 *
 *  Returns: KM_OK (or an error from km_ad_build, which cannot happen for these
 *           fixed sizes).
 *  Out:     ad: overwritten.
 *  In:      key_id, user_id: 16-byte ids.
 */
KM_WARN_UNUSED km_err km_key_import_ad(km_ad *ad, const km_uuid *key_id, const km_uuid *user_id)
    KM_NONNULL(1, 2, 3);

/** Serialise an import plaintext (layout in the header comment).
 *
 *  MUST: the caller wipes out after use (it holds the secret key).
 *  Returns: KM_OK; KM_ERR_UNSUPPORTED if flags has reserved bits set (out zeroed).
 *  Out:     out: KM_KEY_IMPORT_LEN bytes.
 *  In:      in: the import.
 */
KM_WARN_UNUSED km_err km_key_import_encode(const km_key_import *in, unsigned char out[KM_KEY_IMPORT_LEN])
    KM_NONNULL(1, 2);

/** Parse an import plaintext.
 *
 *  The key's validity (seckey in range, auth_pub on the curve) is the
 *  caller's check. MUST: out is a secret; the enclave decodes into locked
 *  memory.
 *  Returns: KM_OK; KM_ERR_PARSE (length); KM_ERR_UNSUPPORTED (version or
 *           reserved flag bits). On failure out is zeroed.
 *  Out:     out: the import.
 *  In:      p: len bytes (NULL allowed when len is 0).
 */
KM_WARN_UNUSED km_err km_key_import_decode(km_key_import *out, const unsigned char *p, size_t len)
    KM_NONNULL(1);

/** Client: build a whole KEY_IMPORT body, encrypting the import to the
 *  enclave.
 *
 *  MUST: enclave_pub33 is the enclave's attested key. The body does not
 *  expire: the gateway stores it and replays it to restore the key after an
 *  enclave restart.
 *  Returns: KM_OK; KM_ERR_UNSUPPORTED (flags); KM_ERR_INVALID_POINT
 *           (enclave_pub33); KM_ERR_RANDOM; KM_ERR_NOMEM; KM_ERR_CRYPTO. On
 *           failure body is empty. No copy of the secret key is left behind.
 *  Args:    ctx: context.
 *  Out:     body: an initialized km_buf; previous contents are replaced.
 *  In:      enclave_pub33: 33-byte compressed key; key_id, user_id: ids;
 *           key: the import.
 */
KM_WARN_UNUSED km_err km_key_import_build(const km_ctx *ctx, const unsigned char enclave_pub33[33],
                                          const km_uuid *key_id, const km_uuid *user_id,
                                          const km_key_import *key, km_buf *body)
    KM_NONNULL(1, 2, 3, 4, 5, 6);

/** A parsed KEY_IMPORT body; blob points into the body (not owned). */
typedef struct km_key_import_cmd {
    km_uuid key_id, user_id;
    const unsigned char *blob;
    size_t blob_len;
} km_key_import_cmd;

/** Enclave: parse a KEY_IMPORT body.
 *
 *  Returns: KM_OK; KM_ERR_PARSE (short, blob longer than KM_KEY_BLOB_MAX,
 *           trailing bytes). On failure out is zeroed.
 *  Out:     out: fields; blob valid as long as body.
 *  In:      body: len bytes (NULL allowed when len is 0).
 */
KM_WARN_UNUSED km_err km_key_import_parse(km_key_import_cmd *out, const unsigned char *body, size_t len)
    KM_NONNULL(1);

/* ------------------------------------------------------------------------ */
/* KEY_SIGN                                                                  */
/* ------------------------------------------------------------------------ */

/** A sign plaintext. When decoded, msg and response_key point into the
 *  decoded input (not owned). response_key is a secret: whoever knows it
 *  reads the signature. */
typedef struct km_key_sign_req {
    uint8_t algo;       /**< KM_KEY_ALGO_* */
    uint64_t timestamp; /**< unix seconds; the enclave allows KM_KEY_TIME_WINDOW of skew */
    const unsigned char *msg;
    size_t msg_len;                    /**< 0..KM_KEY_MSG_MAX (Schnorr), exactly 32 (ECDSA) */
    const unsigned char *response_key; /**< 32 random bytes chosen by the client */
} km_key_sign_req;

/** The AD of a sign blob: AD(KM_AD_KEY_SIGN, key_id, request_id[16]).
 *  Returns, Out, In: as km_key_import_ad. */
KM_WARN_UNUSED km_err km_key_sign_ad(km_ad *ad, const km_uuid *key_id, const km_uuid *request_id)
    KM_NONNULL(1, 2, 3);

/** Serialise a sign plaintext.
 *
 *  MUST: the caller wipes out (it holds response_key) and frees it.
 *  Returns: KM_OK; KM_ERR_UNSUPPORTED (algo); KM_ERR_RANGE (msg_len above
 *           KM_KEY_MSG_MAX, or not 32 for ECDSA); KM_ERR_ARG (msg NULL with
 *           msg_len > 0, or response_key NULL); KM_ERR_NOMEM. A refused
 *           request appends nothing; on KM_ERR_NOMEM out->failed is set.
 *  Out:     out: an initialized km_buf; the plaintext is appended.
 *  In:      in: the request.
 */
KM_WARN_UNUSED km_err km_key_sign_encode(const km_key_sign_req *in, km_buf *out) KM_NONNULL(1, 2);

/** Parse a sign plaintext.
 *
 *  Returns: KM_OK; KM_ERR_PARSE (structure, trailing bytes); KM_ERR_UNSUPPORTED
 *           (version, algo); KM_ERR_RANGE (msg_len above KM_KEY_MSG_MAX, or
 *           not 32 for ECDSA). On failure out is zeroed.
 *  Out:     out: fields; msg and response_key point into p.
 *  In:      p: len bytes (NULL allowed when len is 0).
 */
KM_WARN_UNUSED km_err km_key_sign_decode(km_key_sign_req *out, const unsigned char *p, size_t len)
    KM_NONNULL(1);

/** The digest an approval signs:
 *  TaggedHash(KM_TAG_SINGLE_APPROVAL, key_id[16] | request_id[16] | u8 algo | SHA-256(msg)[32]).
 *  The approval is a BIP-340 signature over these 32 bytes by the key's
 *  auth_pub (km_single_schnorr_sign with msglen 32). It names the key, the
 *  request and the exact message, so it cannot be moved to any of them.
 *
 *  Out: digest32: 32 bytes.
 *  In:  key_id, request_id: ids; algo: KM_KEY_ALGO_*; msg: msg_len bytes
 *       (NULL allowed when msg_len is 0).
 */
void km_key_approval_digest(unsigned char digest32[32], const km_uuid *key_id, const km_uuid *request_id,
                            uint8_t algo, const unsigned char *msg, size_t msg_len) KM_NONNULL(1, 2, 3);

/** Client: build a whole KEY_SIGN body, encrypting the request to the enclave.
 *
 *  MUST: enclave_pub33 is the enclave's attested key; request_id is fresh per
 *  signature wanted (the enclave answers a repeated id only with the first
 *  result); response_key is fresh random and kept by the client to open the
 *  result.
 *  Returns: KM_OK; errors of km_key_sign_encode; KM_ERR_INVALID_POINT
 *           (enclave_pub33); KM_ERR_RANDOM; KM_ERR_CRYPTO. On failure body is
 *           empty.
 *  Args:    ctx: context.
 *  Out:     body: an initialized km_buf; previous contents are replaced.
 *  In:      enclave_pub33; key_id; request_id; req: the request;
 *           approval_sig64: 64 bytes, or NULL for no approval.
 */
KM_WARN_UNUSED km_err km_key_sign_build(const km_ctx *ctx, const unsigned char enclave_pub33[33],
                                        const km_uuid *key_id, const km_uuid *request_id,
                                        const km_key_sign_req *req, const unsigned char *approval_sig64,
                                        km_buf *body) KM_NONNULL(1, 2, 3, 4, 5, 7);

/** A parsed KEY_SIGN body; pointers into the body (not owned). */
typedef struct km_key_sign_cmd {
    km_uuid key_id, request_id;
    const unsigned char *blob;
    size_t blob_len;
    const unsigned char *approval_sig; /**< 64 bytes, or NULL when has_approval = 0 */
} km_key_sign_cmd;

/** Enclave: parse a KEY_SIGN body.
 *
 *  Returns: KM_OK; KM_ERR_PARSE (short, blob longer than KM_KEY_BLOB_MAX,
 *           has_approval other than 0 or 1, trailing bytes). On failure out is
 *           zeroed.
 *  Out:     out: fields, valid as long as body.
 *  In:      body: len bytes (NULL allowed when len is 0).
 */
KM_WARN_UNUSED km_err km_key_sign_parse(km_key_sign_cmd *out, const unsigned char *body, size_t len)
    KM_NONNULL(1);

/** Enclave: seal a signature for the client who chose response_key.
 *
 *  Returns: KM_OK; KM_ERR_UNSUPPORTED (algo); KM_ERR_NOMEM; KM_ERR_RANDOM;
 *           KM_ERR_CRYPTO. On failure out is empty.
 *  Args:    ctx: context (the derived session lives in its locked pool).
 *  Out:     out: an initialized km_buf; replaced by the blob
 *           (KM_KEY_SIGN_RESULT_LEN + KM_SESSION_OVERHEAD bytes).
 *  In:      response_key32: 32 bytes from the request; key_id, request_id:
 *           the request's ids; algo: KM_KEY_ALGO_*; sig64: the signature.
 */
KM_WARN_UNUSED km_err km_key_sign_result_seal(km_ctx *ctx, const unsigned char response_key32[32],
                                              const km_uuid *key_id, const km_uuid *request_id, uint8_t algo,
                                              const unsigned char sig64[64], km_buf *out)
    KM_NONNULL(1, 2, 3, 4, 6, 7);

/** Client: open the KEY_SIGN response.
 *
 *  MUST: the client still verifies the signature against the key it
 *  imported (km_single_schnorr_verify / km_single_ecdsa_verify): opening
 *  proves only that someone knowing response_key made the blob.
 *  Returns: KM_OK; KM_ERR_DECRYPT (altered, or another key, request or
 *           response key); KM_ERR_PARSE (wrong size, or an algo other than
 *           the one asked); other errors of km_session_open. On failure
 *           sig64 is zeroed.
 *  Args:    ctx: context.
 *  Out:     sig64: the 64-byte signature (BIP-340, or compact ECDSA r||s).
 *  In:      response_key32: the key the client put in the request; key_id,
 *           request_id: the request's ids; algo: the algorithm requested;
 *           blob: blob_len bytes (NULL allowed when blob_len is 0).
 */
KM_WARN_UNUSED km_err km_key_sign_result_open(km_ctx *ctx, const unsigned char response_key32[32],
                                              const km_uuid *key_id, const km_uuid *request_id, uint8_t algo,
                                              const unsigned char *blob, size_t blob_len,
                                              unsigned char sig64[64]) KM_NONNULL(1, 2, 3, 4, 8);

/* ------------------------------------------------------------------------ */
/* KEY_DELETE                                                                */
/* ------------------------------------------------------------------------ */

/** The digest a deletion signs:
 *  TaggedHash(KM_TAG_KEY_DELETE, key_id[16] | u64 timestamp).
 *  Out: digest32. In: key_id; timestamp: unix seconds. */
void km_key_delete_digest(unsigned char digest32[32], const km_uuid *key_id, uint64_t timestamp)
    KM_NONNULL(1, 2);

/** Client: build a KEY_DELETE body from a signature by the auth key over
 *  km_key_delete_digest(key_id, timestamp).
 *  Out: body: KM_KEY_DELETE_LEN bytes. In: key_id; timestamp; sig64. */
void km_key_delete_encode(unsigned char body[KM_KEY_DELETE_LEN], const km_uuid *key_id, uint64_t timestamp,
                          const unsigned char sig64[64]) KM_NONNULL(1, 2, 4);

/** A parsed KEY_DELETE body; sig points into the body. */
typedef struct km_key_delete_cmd {
    km_uuid key_id;
    uint64_t timestamp;
    const unsigned char *sig;
    unsigned char digest[32]; /**< km_key_delete_digest of the fields: what sig must sign */
} km_key_delete_cmd;

/** Enclave: parse a KEY_DELETE body. The signature is the caller's check.
 *  Returns: KM_OK; KM_ERR_PARSE (length other than KM_KEY_DELETE_LEN). On
 *           failure out is zeroed.
 *  Out: out. In: body: len bytes (NULL allowed when len is 0). */
KM_WARN_UNUSED km_err km_key_delete_parse(km_key_delete_cmd *out, const unsigned char *body, size_t len)
    KM_NONNULL(1);

#ifdef __cplusplus
}
#endif
#endif
