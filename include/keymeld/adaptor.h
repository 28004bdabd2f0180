/* keymeld/adaptor.h — MuSig2 adaptor signatures on mainline libsecp256k1.
 *
 * Mainline libsecp256k1 (0.6+) deliberately ships no adaptor API. This module
 * reproduces the secp256k1-zkp semantics with public functions only:
 *
 *   1. Every signer folds the adaptor point T into the first aggregate-nonce
 *      point BEFORE calling secp256k1_musig_nonce_process
 *      (km_adaptor_fold_aggnonce), so the nonce coefficient b is hashed over
 *      R1 + T exactly as in zkp. Partial signatures are then produced and
 *      checked with the unmodified mainline partial_sign/partial_sig_verify,
 *      and partial_sig_agg outputs the pre-signature (x(R'), s) where
 *      R' = R1 + T + b*R2 is the nonce of the final signature.
 *   2. The pre-signature is not a valid BIP-340 signature; with the secret t
 *      (T = t*G) it becomes one (km_adaptor_adapt); from the pre-signature and
 *      the completed signature anyone learns t (km_adaptor_extract).
 *
 * Encodings: points are 33-byte compressed SEC1, public keys 32-byte x-only
 * (BIP-340), scalars 32-byte big endian, the aggregate nonce 66 bytes
 * R1 || R2 (33 zero bytes encode the point at infinity, as in BIP-327).
 *
 * Pre-signature equation (x-only key Q with even-y lift P, message m):
 *     e = TaggedHash("BIP0340/challenge", x(R') || x(Q) || m)
 *     X = s*G - e*P
 *     R' has even y:  X + T == lift_x(x(R'))
 *     R' has odd y:   X - T == lift_x(x(R'))
 * (the signers negate their nonce when R' is odd, so X is R or -R, where
 * R = R' - T is the nonce without the adaptor).
 *
 * Adaptor types (KeyMeld's "Single", "And", "Or"):
 *   - Single: one point T, one pre-signature.
 *   - And: T = T1 + ... + Tk (km_adaptor_point_sum), ONE pre-signature; it is
 *     completed with t = t1 + ... + tk (km_adaptor_secret_sum), so every
 *     secret is needed.
 *   - Or: one independent pre-signature PER POINT, each from its own MuSig2
 *     session with FRESH nonces; any one ti completes its own signature.
 *
 * SECURITY: NEVER produce two pre-signatures (or a pre-signature and a
 * signature) from one secret nonce. Two signatures over the same nonces with
 * different adaptor points give the signers' keys away by linear algebra; for
 * "Or" this means one full MuSig2 session (nonce_gen .. partial_sign) per
 * point. libsecp256k1's partial_sign zeroes the secnonce it consumes; never
 * copy a secnonce to work around that.
 *
 * SECURITY: every signer MUST verify every partial signature of an adaptor
 * session (secp256k1_musig_partial_sig_verify) and the aggregate with
 * km_adaptor_presig_verify before handing the pre-signature out: an invalid
 * pre-signature may still adapt to a valid-looking but wrong result, and the
 * adaptor protocol's whole point (the counterparty learns t) depends on it.
 *
 * Legacy 65-byte form: the original (Rust, conduition/musig2) KeyMeld sent
 * adaptor signatures as R33 || s32 with R = R' - T (compressed, with its own
 * parity; 33 zero bytes if R is infinity). conduition hashes b without T, so
 * its partial signatures differ from ours, but the aggregated pre-signature
 * satisfies the same equation, so existing DLC clients can consume our
 * pre-signatures converted with km_adaptor_legacy_from_presig.
 *
 * Thread safety: all functions only read ctx and may run concurrently.
 */
#ifndef KEYMELD_ADAPTOR_H
#define KEYMELD_ADAPTOR_H

#include <stddef.h>

#include <secp256k1_musig.h>

#include "keymeld/context.h"
#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Sizes of the encodings used by this module. */
#define KM_ADAPTOR_POINT_LEN    33 /**< compressed adaptor point T */
#define KM_ADAPTOR_SECRET_LEN   32 /**< adaptor secret t */
#define KM_ADAPTOR_PRESIG_LEN   64 /**< pre-signature x(R') || s */
#define KM_ADAPTOR_LEGACY_LEN   65 /**< original product's R33 || s32, R = R' - T */
#define KM_ADAPTOR_AGGNONCE_LEN 66
/** Upper bound on the number of points/secrets summed for an "And" adaptor. */
#define KM_ADAPTOR_MAX_TERMS 256

/** Fold an adaptor point into a serialized MuSig2 aggregate nonce.
 *
 *  The output replaces the aggregate nonce given to
 *  secp256k1_musig_nonce_process; every signer of the session MUST fold the
 *  same T (otherwise their partial signatures fail verification). Partial
 *  signature verification and aggregation use the folded nonce as well.
 *
 *  Returns: KM_OK; KM_ERR_INVALID_POINT if adaptor33 is not a valid compressed
 *           point or aggnonce66 is not a valid aggregate nonce (each half a
 *           compressed point or 33 zero bytes).
 *  Args:    ctx: libkeymeld context (not NULL).
 *  Out:     out66: 66-byte folded aggregate nonce R1 + T || R2 (R1 + T encoded
 *           as 33 zero bytes if it is infinity), for secp256k1_musig_aggnonce_parse
 *           or km_musig_session_init. Zeroed on failure. May alias aggnonce66.
 *  In:      aggnonce66: 66-byte aggregate nonce (secp256k1_musig_aggnonce_serialize).
 *           adaptor33: adaptor point T, compressed.
 */
KM_WARN_UNUSED km_err km_adaptor_fold_aggnonce(const km_ctx *ctx, unsigned char out66[66],
                                               const unsigned char aggnonce66[66],
                                               const unsigned char adaptor33[33]) KM_NONNULL(1, 2, 3, 4);

/** km_adaptor_fold_aggnonce on libsecp256k1's opaque aggregate-nonce type.
 *
 *  Returns: as km_adaptor_fold_aggnonce.
 *  Args:    ctx: libkeymeld context (not NULL).
 *  Out:     out: folded aggregate nonce, ready for secp256k1_musig_nonce_process.
 *           Zeroed (invalid) on failure. May alias in.
 *  In:      in: a VALID aggregate nonce object, from secp256k1_musig_nonce_agg
 *           or _parse (as with libsecp256k1 itself, an uninitialized object
 *           trips the context's illegal-argument callback, which aborts).
 *           adaptor33: adaptor point T, compressed.
 */
KM_WARN_UNUSED km_err km_adaptor_fold_musig_aggnonce(const km_ctx *ctx, secp256k1_musig_aggnonce *out,
                                                     const secp256k1_musig_aggnonce *in,
                                                     const unsigned char adaptor33[33])
    KM_NONNULL(1, 2, 3, 4);

/** Verify a pre-signature against its adaptor point.
 *
 *  A KM_OK result means: whoever learns t with t*G == T can complete the
 *  pre-signature into a BIP-340 signature of msg32 under xonly_pk32, and that
 *  signature reveals t. A pre-signature never verifies as a BIP-340 signature.
 *
 *  Returns: KM_OK if valid; KM_ERR_VERIFY if the equation does not hold;
 *           KM_ERR_INVALID_POINT if adaptor33 or xonly_pk32 is not a valid
 *           point or x(R') is not the x coordinate of a curve point;
 *           KM_ERR_RANGE if s >= n; KM_ERR_CRYPTO if the challenge hash is
 *           0 or >= n (probability below 2^-127, not reachable on purpose;
 *           the same holds for every function below that verifies).
 *  Args:    ctx: libkeymeld context (not NULL).
 *  In:      presig64: pre-signature x(R') || s.
 *           adaptor33: adaptor point T, compressed.
 *           xonly_pk32: x-only public key (the tweaked aggregate key Q).
 *           msg32: the 32-byte signed message.
 */
KM_WARN_UNUSED km_err km_adaptor_presig_verify(const km_ctx *ctx, const unsigned char presig64[64],
                                               const unsigned char adaptor33[33],
                                               const unsigned char xonly_pk32[32],
                                               const unsigned char msg32[32]) KM_NONNULL(1, 2, 3, 4, 5);

/** Complete a pre-signature with the adaptor secret into a BIP-340 signature.
 *
 *  The pre-signature is verified against T = t*G first; the completed
 *  signature is checked with secp256k1_schnorrsig_verify before release.
 *
 *  Returns: KM_OK; KM_ERR_INVALID_KEY if secret32 is zero or >= n;
 *           KM_ERR_VERIFY if the pre-signature is not one for t*G (wrong
 *           secret, tampered pre-signature, other key or message);
 *           KM_ERR_INVALID_POINT / KM_ERR_RANGE as km_adaptor_presig_verify.
 *  Args:    ctx: libkeymeld context (not NULL).
 *  Out:     sig64: BIP-340 signature x(R') || s'. Zeroed on failure.
 *  In:      presig64: pre-signature x(R') || s.
 *           secret32: adaptor secret t (secret; not retained, stack copies wiped).
 *           xonly_pk32: x-only public key Q the signature must verify under.
 *           msg32: the 32-byte signed message.
 */
KM_WARN_UNUSED km_err km_adaptor_adapt(const km_ctx *ctx, unsigned char sig64[64],
                                       const unsigned char presig64[64], const unsigned char secret32[32],
                                       const unsigned char xonly_pk32[32], const unsigned char msg32[32])
    KM_NONNULL(1, 2, 3, 4, 5, 6);

/** Extract the adaptor secret from a pre-signature and its completed signature.
 *
 *  t = +-(s' - s); the sign is chosen so that t*G == T, which also proves the
 *  result is the discrete logarithm of T. The caller need not have verified
 *  sig64: a wrong or unrelated signature yields KM_ERR_VERIFY, never a wrong t.
 *
 *  Returns: KM_OK; KM_ERR_VERIFY if sig64 is not the completion of presig64
 *           for T (different nonce, or t*G != T for both signs);
 *           KM_ERR_RANGE if either s is >= n; KM_ERR_INVALID_POINT if
 *           adaptor33 is not a valid point.
 *  Args:    ctx: libkeymeld context (not NULL).
 *  Out:     secret32: adaptor secret t. The caller owns and must wipe it.
 *           Zeroed on failure.
 *  In:      presig64: pre-signature x(R') || s.
 *           sig64: completed BIP-340 signature x(R') || s'.
 *           adaptor33: adaptor point T, compressed.
 */
KM_WARN_UNUSED km_err km_adaptor_extract(const km_ctx *ctx, unsigned char secret32[32],
                                         const unsigned char presig64[64], const unsigned char sig64[64],
                                         const unsigned char adaptor33[33]) KM_NONNULL(1, 2, 3, 4, 5);

/** Adaptor point of a secret: T = t*G.
 *
 *  Returns: KM_OK; KM_ERR_INVALID_KEY if secret32 is zero or >= n.
 *  Args:    ctx: libkeymeld context (not NULL).
 *  Out:     point33: T compressed. Zeroed on failure.
 *  In:      secret32: adaptor secret t.
 */
KM_WARN_UNUSED km_err km_adaptor_point_from_secret(const km_ctx *ctx, unsigned char point33[33],
                                                   const unsigned char secret32[32]) KM_NONNULL(1, 2, 3);

/** Sum of adaptor points, for an "And" adaptor: T = T1 + ... + Tn.
 *
 *  Callers MUST obtain each Ti from a party that proves knowledge of ti, or
 *  accept that a party choosing Tj after seeing the others can cancel them
 *  (Tj = T' - sum of the others) and complete alone.
 *
 *  Returns: KM_OK; KM_ERR_ARG if n is 0 or > KM_ADAPTOR_MAX_TERMS;
 *           KM_ERR_INVALID_POINT if a point is invalid or the sum is infinity.
 *  Args:    ctx: libkeymeld context (not NULL).
 *  Out:     out33: the sum, compressed. Zeroed on failure.
 *  In:      points: n pointers to 33-byte compressed points (none NULL).
 *           n: number of points.
 */
KM_WARN_UNUSED km_err km_adaptor_point_sum(const km_ctx *ctx, unsigned char out33[33],
                                           const unsigned char *const *points, size_t n) KM_NONNULL(1, 2, 3);

/** Sum of adaptor secrets, for an "And" adaptor: t = t1 + ... + tn mod n.
 *
 *  Returns: KM_OK; KM_ERR_ARG if n is 0 or > KM_ADAPTOR_MAX_TERMS;
 *           KM_ERR_INVALID_KEY if a secret is zero or >= n, or the sum is zero.
 *  Args:    ctx: libkeymeld context (not NULL).
 *  Out:     out32: the summed secret; the caller owns and must wipe it.
 *           Zeroed on failure. May alias secrets[0].
 *  In:      secrets: n pointers to 32-byte secrets (none NULL).
 *           n: number of secrets.
 */
KM_WARN_UNUSED km_err km_adaptor_secret_sum(const km_ctx *ctx, unsigned char out32[32],
                                            const unsigned char *const *secrets, size_t n)
    KM_NONNULL(1, 2, 3);

/** Convert a pre-signature to the original product's 65-byte form R || s.
 *
 *  The pre-signature is verified first (the conversion needs the parity of R',
 *  which only the verification equation reveals).
 *
 *  Returns: KM_OK; otherwise the error of km_adaptor_presig_verify.
 *  Args:    ctx: libkeymeld context (not NULL).
 *  Out:     out65: R33 || s32 with R = R' - T. Zeroed on failure.
 *  In:      presig64, adaptor33, xonly_pk32, msg32: as km_adaptor_presig_verify.
 */
KM_WARN_UNUSED km_err km_adaptor_legacy_from_presig(const km_ctx *ctx, unsigned char out65[65],
                                                    const unsigned char presig64[64],
                                                    const unsigned char adaptor33[33],
                                                    const unsigned char xonly_pk32[32],
                                                    const unsigned char msg32[32])
    KM_NONNULL(1, 2, 3, 4, 5, 6);

/** Convert the original product's 65-byte form R || s to a pre-signature
 *  x(R + T) || s, verifying it.
 *
 *  Returns: KM_OK; KM_ERR_INVALID_POINT if R (not 33 zero bytes), T or the key
 *           is invalid; KM_ERR_RANGE if s >= n; KM_ERR_VERIFY if R + T is
 *           infinity or the equation does not hold.
 *  Args:    ctx: libkeymeld context (not NULL).
 *  Out:     presig64: x(R') || s. Zeroed on failure.
 *  In:      legacy65: R33 || s32.
 *           adaptor33, xonly_pk32, msg32: as km_adaptor_presig_verify.
 */
KM_WARN_UNUSED km_err km_adaptor_legacy_to_presig(const km_ctx *ctx, unsigned char presig64[64],
                                                  const unsigned char legacy65[65],
                                                  const unsigned char adaptor33[33],
                                                  const unsigned char xonly_pk32[32],
                                                  const unsigned char msg32[32]) KM_NONNULL(1, 2, 3, 4, 5, 6);

/** Verify the original product's 65-byte adaptor signature R || s:
 *  s*G == (R + T has even y ? R : -R) + e*P, e over x(R + T).
 *
 *  Returns: as km_adaptor_legacy_to_presig.
 *  Args:    ctx: libkeymeld context (not NULL).
 *  In:      legacy65: R33 || s32; adaptor33, xonly_pk32, msg32: as
 *           km_adaptor_presig_verify.
 */
KM_WARN_UNUSED km_err km_adaptor_legacy_verify(const km_ctx *ctx, const unsigned char legacy65[65],
                                               const unsigned char adaptor33[33],
                                               const unsigned char xonly_pk32[32],
                                               const unsigned char msg32[32]) KM_NONNULL(1, 2, 3, 4, 5);

#ifdef __cplusplus
}
#endif
#endif
