/* keymeld/ecies.h — public-key encryption to an enclave key (secp256k1).
 *
 * Used to hand secrets (a participant's secret key, the session secret) to
 * one enclave through an untrusted gateway: only the holder of the recipient
 * secret key can open a blob, and the caller's associated data (built with
 * km_ad: purpose, keygen id, user id) is authenticated, so a blob made for one
 * purpose or keygen is refused everywhere else.
 *
 * CONSTRUCTION (version 1)
 *
 *   Inputs: recipient public key R (33-byte compressed SEC1), associated data
 *   AD, plaintext M.
 *
 *   1. e = fresh random secp256k1 secret key; E = e*G, 33-byte compressed.
 *   2. Z = x-coordinate of e*R (32 bytes, big-endian), via secp256k1_ecdh
 *      with a hash function that returns x unchanged. Using only x is the
 *      SEC1 ECDH primitive (the same value OpenSSL and most libraries return);
 *      the y parity adds no secrecy, and both full public keys are bound by
 *      the key derivation below.
 *   3. K || N = HKDF-SHA256(IKM = Z, salt = "" (empty, which RFC 5869
 *                           defines as 32 zero bytes),
 *                           info = "keymeld/ecies/v1" || E || R, L = 44)
 *      with K the first 32 bytes (AES-256 key) and N the last 12 (GCM nonce).
 *      "keymeld/ecies/v1" is the 16 ASCII bytes without a terminator; E and R
 *      are 33 bytes each, so info (82 bytes) parses uniquely. Binding E is
 *      required because Z is only an x-coordinate: E and -E (the same bytes
 *      with prefix 0x02 and 0x03 swapped) give the same Z, so without E in
 *      info that flip would go unnoticed. Binding R ties the key to the
 *      intended recipient.
 *   4. C || T = AES-256-GCM(K, N, aad = AD, M), T the 16-byte tag.
 *
 *   A derived nonce is safe because K is unique per blob: e is fresh for
 *   every message, so (K, N) is never used twice, and nothing is gained by
 *   spending 12 bytes of the blob on a random nonce.
 *
 * BLOB LAYOUT (version 1)
 *
 *     offset 0        1 byte   version, 0x01
 *     offset 1       33 bytes  E, compressed (first byte 0x02 or 0x03)
 *     offset 34       n bytes  C, ciphertext (same length as M)
 *     offset 34+n    16 bytes  T, GCM tag
 *     total = n + 50 bytes (KM_ECIES_OVERHEAD); 0 <= n <= KM_ECIES_MAX_PLAINTEXT
 *
 *   The version byte is not an input to GCM; it is bound through the HKDF
 *   label "keymeld/ecies/v1", and a future version MUST use another label.
 *
 * The associated data MUST NOT be empty (a blob bound to nothing could be
 * replayed anywhere); build it with km_ad from keymeld/session_crypto.h.
 */
#ifndef KEYMELD_ECIES_H
#define KEYMELD_ECIES_H

#include <stddef.h>

#include "keymeld/context.h"
#include "keymeld/cursor.h"
#include "keymeld/error.h"
#include "keymeld/secret.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KM_ECIES_VERSION 0x01
/** Length of a compressed secp256k1 public key. */
#define KM_ECIES_PUBKEY_LEN 33
#define KM_ECIES_SECKEY_LEN 32
/** Bytes a blob adds to its plaintext: version, E and tag. */
#define KM_ECIES_OVERHEAD 50
/** Largest plaintext (16 MiB); larger blobs are refused on both sides. */
#define KM_ECIES_MAX_PLAINTEXT ((size_t)1 << 24)

/** Generate a recipient (enclave) key pair from fresh randomness.
 *
 *  Returns: KM_OK; KM_ERR_RANDOM; KM_ERR_NOMEM; KM_ERR_CRYPTO. On failure
 *           *seckey_out is NULL and pub33 is zeroed.
 *  Args:    ctx: context; it MUST outlive the secret.
 *  Out:     seckey_out: a new 32-byte secret (the secret key), freed with
 *           km_secret_free; pub33: the 33-byte compressed public key.
 */
KM_WARN_UNUSED km_err km_ecies_keygen(km_ctx *ctx, km_secret **seckey_out, unsigned char pub33[33])
    KM_NONNULL(1, 2, 3);

/** Compute the compressed public key of a recipient secret key.
 *
 *  Returns: KM_OK; KM_ERR_INVALID_KEY if seckey32 is zero or >= the group
 *           order (pub33 zeroed).
 *  Out:     pub33: 33 bytes.
 *  In:      seckey32: 32 bytes.
 */
KM_WARN_UNUSED km_err km_ecies_pubkey(const km_ctx *ctx, const unsigned char seckey32[32],
                                      unsigned char pub33[33]) KM_NONNULL(1, 2, 3);

/** Encrypt pt to the holder of the secret key behind recipient_pub33.
 *
 *  The caller MUST have verified that recipient_pub33 is the attested
 *  enclave key before calling (see attestation); this function cannot know.
 *
 *  Returns: KM_OK; KM_ERR_INVALID_POINT if recipient_pub33 is not a valid
 *           compressed point; KM_ERR_ARG if ad_len is 0 or a pointer is NULL
 *           with a non-zero length; KM_ERR_RANGE if pt_len >
 *           KM_ECIES_MAX_PLAINTEXT; KM_ERR_RANDOM; KM_ERR_NOMEM;
 *           KM_ERR_CRYPTO. On failure out is empty.
 *  Args:    ctx: context.
 *  Out:     out: an initialized km_buf; its previous contents are wiped and
 *           replaced by the blob of pt_len + KM_ECIES_OVERHEAD bytes.
 *  In:      recipient_pub33: 33-byte compressed public key;
 *           ad: ad_len bytes of associated data (km_ad bytes);
 *           pt: pt_len bytes (NULL allowed when pt_len is 0).
 */
KM_WARN_UNUSED km_err km_ecies_seal(const km_ctx *ctx, const unsigned char recipient_pub33[33],
                                    const unsigned char *ad, size_t ad_len, const unsigned char *pt,
                                    size_t pt_len, km_buf *out) KM_NONNULL(1, 2, 7);

/** Decrypt and authenticate a blob into a caller buffer.
 *
 *  Checks run in this order: arguments and the recipient key; the framing
 *  (empty blob, version byte, length, ephemeral point); the output size; only
 *  then the ECDH and authenticated decryption.
 *
 *  Returns: KM_OK; KM_ERR_ARG if ad_len is 0 or a pointer is NULL with a
 *           non-zero length; KM_ERR_INVALID_KEY if recipient_seckey32 is not
 *           a valid secret key; KM_ERR_PARSE if blob_len is 0 or below
 *           KM_ECIES_OVERHEAD; KM_ERR_UNSUPPORTED if the version byte is not
 *           0x01; KM_ERR_RANGE if the plaintext would exceed
 *           KM_ECIES_MAX_PLAINTEXT; KM_ERR_INVALID_POINT if E is not a valid
 *           compressed point; KM_ERR_BUFFER_SMALL if pt_cap < blob_len -
 *           KM_ECIES_OVERHEAD; KM_ERR_DECRYPT if the blob was altered, or was
 *           made for another key or another AD. On any failure all pt_cap
 *           bytes of pt are zeroed and *pt_len is 0.
 *  Args:    ctx: context.
 *  Out:     pt: pt_cap bytes (NULL allowed when pt_cap is 0); pt_len: the
 *           plaintext length (blob_len - KM_ECIES_OVERHEAD).
 *  In:      recipient_seckey32: the 32-byte recipient secret key;
 *           ad: ad_len bytes, the same AD the sender used;
 *           blob: blob_len bytes.
 */
KM_WARN_UNUSED km_err km_ecies_open(const km_ctx *ctx, const unsigned char recipient_seckey32[32],
                                    const unsigned char *ad, size_t ad_len, const unsigned char *blob,
                                    size_t blob_len, unsigned char *pt, size_t pt_cap, size_t *pt_len)
    KM_NONNULL(1, 2, 9);

/** Decrypt and authenticate a blob into locked memory (for secret payloads).
 *
 *  Returns: as km_ecies_open, plus KM_ERR_RANGE if the plaintext is empty or
 *           longer than KM_SECRET_MAX, and KM_ERR_NOMEM. On failure *out is NULL.
 *  Args:    ctx: context; it MUST outlive the secret.
 *  Out:     out: a new secret with the plaintext, freed with km_secret_free.
 *  In:      as km_ecies_open.
 */
KM_WARN_UNUSED km_err km_ecies_open_secret(km_ctx *ctx, const unsigned char recipient_seckey32[32],
                                           const unsigned char *ad, size_t ad_len, const unsigned char *blob,
                                           size_t blob_len, km_secret **out) KM_NONNULL(1, 2, 7);

#ifdef __cplusplus
}
#endif
#endif
