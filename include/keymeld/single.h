/* keymeld/single.h — single-signer signatures: BIP-340 Schnorr and ECDSA.
 *
 * Everything here is a thin, strict layer over libsecp256k1: this module owns
 * no curve arithmetic. Its job is the contract around it — fixed sizes,
 * validated inputs, one error code per failure, secrets wiped on every path
 * out, and no output left half-written when a call fails.
 *
 * Secret keys are passed as 32 raw bytes. Callers that keep a key for longer
 * than one call hold it in a km_secret (secret.h) and pass
 * km_secret_cdata(); every internal copy (keypairs) is wiped here.
 *
 * A 32-byte secret key is valid when it is neither zero nor >= the group
 * order n; anything else is KM_ERR_INVALID_KEY.
 */
#ifndef KEYMELD_SINGLE_H
#define KEYMELD_SINGLE_H

#include <stddef.h>

#include "keymeld/context.h"
#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KM_SINGLE_SECKEY_LEN      32 /**< secret key */
#define KM_SINGLE_PUBKEY_LEN      33 /**< compressed SEC1 public key */
#define KM_SINGLE_XONLY_LEN       32 /**< BIP-340 x-only public key */
#define KM_SINGLE_SCHNORR_SIG_LEN 64 /**< BIP-340 signature */
#define KM_SINGLE_ECDSA_SIG_LEN   64 /**< compact ECDSA r || s, big-endian */
#define KM_SINGLE_ECDSA_DER_MAX   72 /**< longest DER ECDSA signature */

/** Check that 32 bytes are a valid secp256k1 secret key.
 *
 *  Returns: KM_OK if 0 < key < n; KM_ERR_INVALID_KEY otherwise.
 *  Args:    ctx: the libkeymeld context.
 *  In:      seckey: 32 bytes.
 */
KM_WARN_UNUSED km_err km_single_seckey_check(const km_ctx *ctx, const unsigned char seckey[32])
    KM_NONNULL(1, 2);

/** Derive the 33-byte compressed public key of a secret key.
 *
 *  Returns: KM_OK; KM_ERR_INVALID_KEY if seckey is zero or >= n (pub33 zeroed).
 *  Args:    ctx: the libkeymeld context.
 *  Out:     pub33: 33 bytes, 0x02/0x03 || X.
 *  In:      seckey: 32 bytes.
 */
KM_WARN_UNUSED km_err km_single_pubkey(const km_ctx *ctx, unsigned char pub33[33],
                                       const unsigned char seckey[32]) KM_NONNULL(1, 2, 3);

/** Derive the 32-byte BIP-340 x-only public key of a secret key.
 *
 *  The x-only key drops the parity of Y; BIP-340 signing negates the secret
 *  key internally when Y is odd, so the same seckey signs for this key.
 *
 *  Returns: KM_OK; KM_ERR_INVALID_KEY if seckey is zero or >= n (xonly32 zeroed).
 *  Args:    ctx: the libkeymeld context.
 *  Out:     xonly32: 32 bytes.
 *  In:      seckey: 32 bytes.
 */
KM_WARN_UNUSED km_err km_single_xonly_pubkey(const km_ctx *ctx, unsigned char xonly32[32],
                                             const unsigned char seckey[32]) KM_NONNULL(1, 2, 3);

/** Produce a BIP-340 Schnorr signature over a message of any length, with
 *  32 bytes of fresh auxiliary randomness drawn from km_random_bytes.
 *
 *  The aux randomness is a defence in depth against fault and side-channel
 *  attacks on the deterministic nonce; the nonce stays safe even if the RNG
 *  is weak. The signature is verified before it is returned, so a
 *  computation fault cannot leak a signature that exposes the key.
 *
 *  Returns: KM_OK; KM_ERR_INVALID_KEY for a bad seckey; KM_ERR_RANDOM if no
 *           randomness; KM_ERR_CRYPTO if libsecp256k1 fails. On failure sig64
 *           is zeroed.
 *  Args:    ctx: the libkeymeld context.
 *  Out:     sig64: 64 bytes.
 *  In:      msg: msglen bytes (NULL allowed only when msglen is 0). BIP-340
 *           signs messages of any length; protocols normally sign a 32-byte
 *           hash.
 *           seckey: 32 bytes.
 */
KM_WARN_UNUSED km_err km_single_schnorr_sign(const km_ctx *ctx, unsigned char sig64[64],
                                             const unsigned char *msg, size_t msglen,
                                             const unsigned char seckey[32]) KM_NONNULL(1, 2, 5);

/** As km_single_schnorr_sign, with caller-supplied auxiliary randomness.
 *
 *  Deterministic for a given (seckey, msg, aux32); meant for test vectors
 *  and reproducible tests. Production code SHOULD use km_single_schnorr_sign.
 *  BIP-340 keeps the key safe whatever aux32 is (even constant), because the
 *  nonce is derived from the key and message; fresh random aux32 only adds
 *  protection against side channels and faults.
 *
 *  Returns: KM_OK; KM_ERR_INVALID_KEY; KM_ERR_CRYPTO. sig64 zeroed on failure.
 *  In:      aux32: 32 bytes of auxiliary data (not NULL).
 *  Other parameters as km_single_schnorr_sign.
 */
KM_WARN_UNUSED km_err km_single_schnorr_sign_aux(const km_ctx *ctx, unsigned char sig64[64],
                                                 const unsigned char *msg, size_t msglen,
                                                 const unsigned char seckey[32],
                                                 const unsigned char aux32[32]) KM_NONNULL(1, 2, 5, 6);

/** Verify a BIP-340 Schnorr signature.
 *
 *  Returns: KM_OK if valid; KM_ERR_INVALID_POINT if xonly32 is not the
 *           x coordinate of a curve point (including x >= p);
 *           KM_ERR_VERIFY if the signature does not verify (including
 *           r >= p or s >= n).
 *  Args:    ctx: the libkeymeld context.
 *  In:      sig64: 64 bytes; msg: msglen bytes (NULL allowed only when
 *           msglen is 0); xonly32: the signer's 32-byte x-only public key.
 */
KM_WARN_UNUSED km_err km_single_schnorr_verify(const km_ctx *ctx, const unsigned char sig64[64],
                                               const unsigned char *msg, size_t msglen,
                                               const unsigned char xonly32[32]) KM_NONNULL(1, 2, 5);

/** Produce an ECDSA signature over a 32-byte digest, in compact form.
 *
 *  The nonce is RFC 6979 (deterministic: no RNG failure can reuse a nonce)
 *  and the signature is low-S (s <= n/2), the only form that
 *  km_single_ecdsa_verify and Bitcoin's standardness rules accept. The caller
 *  hashes the message; msg32 MUST be the output of a cryptographic hash, never
 *  attacker-chosen raw bytes presented as a digest.
 *
 *  Returns: KM_OK; KM_ERR_INVALID_KEY; KM_ERR_CRYPTO. sig64 zeroed on failure.
 *  Args:    ctx: the libkeymeld context.
 *  Out:     sig64: 64 bytes, r || s big-endian.
 *  In:      msg32: 32-byte digest; seckey: 32 bytes.
 */
KM_WARN_UNUSED km_err km_single_ecdsa_sign(const km_ctx *ctx, unsigned char sig64[64],
                                           const unsigned char msg32[32], const unsigned char seckey[32])
    KM_NONNULL(1, 2, 3, 4);

/** Verify a compact ECDSA signature.
 *
 *  High-S signatures are rejected (they are malleated twins of a low-S one).
 *
 *  Returns: KM_OK if valid; KM_ERR_INVALID_POINT if pub33 is not a valid
 *           compressed public key; KM_ERR_VERIFY if r or s is zero or >= n,
 *           s is high, or the signature does not verify.
 *  Args:    ctx: the libkeymeld context.
 *  In:      sig64: 64 bytes r || s; msg32: 32-byte digest; pub33: 33-byte
 *           compressed public key (uncompressed and hybrid forms are refused:
 *           one encoding per key).
 */
KM_WARN_UNUSED km_err km_single_ecdsa_verify(const km_ctx *ctx, const unsigned char sig64[64],
                                             const unsigned char msg32[32], const unsigned char pub33[33])
    KM_NONNULL(1, 2, 3, 4);

/** Encode a compact ECDSA signature in strict DER.
 *
 *  Returns: KM_OK; KM_ERR_BUFFER_SMALL if *der_len is too small (der
 *           untouched); KM_ERR_CRYPTO if libsecp256k1 fails.
 *  Args:    ctx: the libkeymeld context.
 *  Out:     der: *der_len bytes available (KM_SINGLE_ECDSA_DER_MAX always
 *           suffices).
 *  In/Out:  der_len: in: capacity of der; out: bytes written (0 on failure).
 *  In:      sig64: 64 bytes r || s with r, s < n (a value >= n encodes as 0).
 */
KM_WARN_UNUSED km_err km_single_ecdsa_to_der(const km_ctx *ctx, unsigned char *der, size_t *der_len,
                                             const unsigned char sig64[64]) KM_NONNULL(1, 2, 3, 4);

/** Decode a strict-DER ECDSA signature into compact form.
 *
 *  Only the unique DER encoding of (r, s) with 0 < r, s < n is accepted:
 *  BER length forms, superfluous zero bytes, negative integers, trailing
 *  bytes and out-of-range values are all KM_ERR_PARSE. High-S is a valid
 *  encoding and passes here; km_single_ecdsa_verify refuses it.
 *
 *  Returns: KM_OK; KM_ERR_PARSE (sig64 zeroed).
 *  Args:    ctx: the libkeymeld context.
 *  Out:     sig64: 64 bytes r || s.
 *  In:      der: der_len bytes (NULL allowed when der_len is 0).
 */
KM_WARN_UNUSED km_err km_single_ecdsa_from_der(const km_ctx *ctx, unsigned char sig64[64],
                                               const unsigned char *der, size_t der_len) KM_NONNULL(1, 2);

/** Verify a DER ECDSA signature: km_single_ecdsa_from_der then
 *  km_single_ecdsa_verify.
 *
 *  Returns: KM_OK; KM_ERR_PARSE for a non-strict or malformed encoding;
 *           otherwise as km_single_ecdsa_verify.
 */
KM_WARN_UNUSED km_err km_single_ecdsa_verify_der(const km_ctx *ctx, const unsigned char *der, size_t der_len,
                                                 const unsigned char msg32[32], const unsigned char pub33[33])
    KM_NONNULL(1, 4, 5);

/** The secret key that signs for the BIP-341 output key of seckey's x-only
 *  public key: d' = (d or n-d, whichever has an even-Y point) + t, with
 *  t = km_taproot_tweak_hash(x(P), merkle_root) (keymeld/taproot.h, which also
 *  computes the matching output key).
 *
 *  Signing a key-path spend with seckey directly would be a signature for the
 *  internal key, which the output does not commit to; this is the key to
 *  pass to km_single_schnorr_sign for such a spend.
 *
 *  Returns: KM_OK; KM_ERR_INVALID_KEY for a bad seckey; KM_ERR_RANGE if the
 *           tweak or the result is invalid (negligible). out_seckey zeroed
 *           on failure.
 *  Args:    ctx: the libkeymeld context.
 *  Out:     out_seckey: 32 bytes; a secret: the caller wipes it.
 *  In:      seckey: 32 bytes; merkle_root32: 32 bytes or NULL (no script tree).
 */
KM_WARN_UNUSED km_err km_single_taproot_tweak_seckey(const km_ctx *ctx, unsigned char out_seckey[32],
                                                     const unsigned char seckey[32],
                                                     const unsigned char *merkle_root32) KM_NONNULL(1, 2, 3);

#ifdef __cplusplus
}
#endif
#endif
