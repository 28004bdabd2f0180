/* keymeld/musig.h — MuSig2 (BIP-327) multi-signatures over libsecp256k1's musig module.
 *
 * Every value that crosses a process boundary is a fixed-size byte array, so a
 * protocol can carry it as is:
 *
 *   public key (compressed)   33 bytes    KM_MUSIG_PUBKEY_LEN
 *   x-only key                32 bytes    KM_MUSIG_XONLY_LEN
 *   public nonce              66 bytes    KM_MUSIG_PUBNONCE_LEN   (R1 || R2, compressed)
 *   aggregate nonce           66 bytes    KM_MUSIG_AGGNONCE_LEN   (33 zero bytes encode infinity)
 *   partial signature         32 bytes    KM_MUSIG_PSIG_LEN       (scalar s_i, big-endian)
 *   final signature           64 bytes    KM_MUSIG_SIG_LEN        (BIP-340)
 *   message                   32 bytes    KM_MUSIG_MSG_LEN
 *
 * A signing session, for each signer i:
 *   1. km_musig_key_agg over all participants' public keys (order does not
 *      matter: keys are sorted first, BIP-327 KeySort then KeyAgg), then
 *      km_musig_keyagg_tweak once with the session's km_tweak (taproot.h).
 *   2. km_musig_nonce_gen -> secret nonce (kept, locked memory) and public
 *      nonce (sent to everyone).
 *   3. km_musig_nonce_agg over all public nonces -> aggregate nonce. Each
 *      signer SHOULD aggregate the nonces itself (and check its own is among
 *      them) rather than trust a coordinator's aggregate: a bogus aggregate
 *      makes every honest partial signature fail verification and would let
 *      a coordinator blame honest signers.
 *   4. km_musig_session_init(aggnonce, msg, keyagg) -> session.
 *   5. km_musig_partial_sign consumes the secret nonce -> partial signature.
 *   6. km_musig_partial_verify each partial signature (identifies a cheater),
 *      km_musig_partial_agg -> 64-byte signature, km_musig_verify_final
 *      against the output key before releasing it.
 *
 * Thread safety: as km_ctx; the structs here are plain values owned by the
 * caller and must not be modified concurrently.
 */
#ifndef KEYMELD_MUSIG_H
#define KEYMELD_MUSIG_H

#include <stddef.h>

#include <secp256k1.h>
#include <secp256k1_musig.h>

#include "keymeld/context.h"
#include "keymeld/error.h"
#include "keymeld/secret.h"
#include "keymeld/taproot.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KM_MUSIG_PUBKEY_LEN   33
#define KM_MUSIG_XONLY_LEN    32
#define KM_MUSIG_PUBNONCE_LEN 66
#define KM_MUSIG_AGGNONCE_LEN 66
#define KM_MUSIG_PSIG_LEN     32
#define KM_MUSIG_SIG_LEN      64
#define KM_MUSIG_MSG_LEN      32

/** Largest number of keys km_musig_key_agg accepts (and of nonces / partial
 *  signatures the aggregation functions accept). Matches the product's limit
 *  of 1000 participants per keygen. */
#define KM_MUSIG_MAX_SIGNERS 1000

/** An aggregate key, untweaked and (after km_musig_keyagg_tweak) tweaked.
 *
 *  Fields are readable by the caller; only the km_musig_* functions write
 *  them. The struct holds no secret and may be copied.
 */
typedef struct km_musig_keyagg {
    secp256k1_musig_keyagg_cache cache; /**< libsecp256k1 state (includes the tweak) */
    unsigned char agg_xonly[32];        /**< x-only untweaked aggregate key (BIP-327 KeyAgg) */
    unsigned char agg_pubkey[33];       /**< compressed untweaked aggregate key (real y) */
    unsigned char output_xonly[32];     /**< x-only key the final signature verifies under */
    unsigned char output_pubkey[33];    /**< compressed output key (parity in byte 0) */
    int output_parity;                  /**< 1 if the output key has odd y, else 0 */
    km_tweak tweak;                     /**< tweak applied (mode none until tweaked) */
    size_t n_keys;                      /**< number of keys aggregated */
    int tweaked;                        /**< 1 once km_musig_keyagg_tweak succeeded */
    int valid;                          /**< 1 once km_musig_key_agg succeeded */
} km_musig_keyagg;

/** A signing session: the libsecp256k1 session plus a copy of the key
 *  aggregation and the message it was created for, so that signing and
 *  verification cannot be pointed at a different key or message by mistake.
 *  Holds no secret; may be copied. */
typedef struct km_musig_session {
    secp256k1_musig_session session; /**< libsecp256k1 state */
    km_musig_keyagg keyagg;          /**< copy of the key aggregation used */
    unsigned char msg[32];           /**< the message being signed */
    unsigned char aggnonce[66];      /**< the aggregate nonce the session was built from */
    int valid;                       /**< 1 once km_musig_session_init succeeded */
} km_musig_session;

/** Check that 33 bytes are a valid compressed public key (0x02/0x03 || x on the curve).
 *  Returns: KM_OK; KM_ERR_INVALID_POINT otherwise.
 *  Args: ctx: a context.  In: pubkey33: 33 bytes. */
KM_WARN_UNUSED km_err km_musig_pubkey_check(const km_ctx *ctx, const unsigned char pubkey33[33])
    KM_NONNULL(1, 2);

/** Check that 66 bytes are a valid public nonce (two valid compressed points).
 *  Returns: KM_OK; KM_ERR_INVALID_POINT otherwise.
 *  Args: ctx: a context.  In: pubnonce66: 66 bytes. */
KM_WARN_UNUSED km_err km_musig_pubnonce_check(const km_ctx *ctx, const unsigned char pubnonce66[66])
    KM_NONNULL(1, 2);

/** Check that 66 bytes are a valid aggregate nonce (each half a valid
 *  compressed point or 33 zero bytes for infinity).
 *  Returns: KM_OK; KM_ERR_INVALID_POINT otherwise.
 *  Args: ctx: a context.  In: aggnonce66: 66 bytes. */
KM_WARN_UNUSED km_err km_musig_aggnonce_check(const km_ctx *ctx, const unsigned char aggnonce66[66])
    KM_NONNULL(1, 2);

/** Check that 32 bytes are a valid partial signature (a scalar below the group order).
 *  Returns: KM_OK; KM_ERR_PARSE otherwise.
 *  Args: ctx: a context.  In: psig32: 32 bytes. */
KM_WARN_UNUSED km_err km_musig_partial_sig_check(const km_ctx *ctx, const unsigned char psig32[32])
    KM_NONNULL(1, 2);

/** Aggregate public keys (BIP-327 KeySort, then KeyAgg).
 *
 *  The keys are sorted (secp256k1_ec_pubkey_sort) before aggregation, so any
 *  order of the same multiset gives the same key. Duplicate keys are allowed,
 *  as BIP-327 allows them; a caller that needs distinct participants MUST
 *  check that itself. The key of a subset of participants is simply
 *  km_musig_key_agg over that subset's keys; it differs from the full set's.
 *
 *  Returns: KM_OK; KM_ERR_RANGE if n is 0 or > KM_MUSIG_MAX_SIGNERS;
 *           KM_ERR_INVALID_POINT if a key is not a valid compressed point
 *           (its index, in the caller's order, goes to *bad_index);
 *           KM_ERR_NOMEM; KM_ERR_CRYPTO if libsecp256k1 fails unexpectedly.
 *           On failure *out is zeroed (valid = 0).
 *  Args:    ctx: a context.
 *  Out:     out: the aggregation, untweaked (output key = aggregate key).
 *           bad_index: receives the index of the invalid key (NULL allowed;
 *           untouched unless KM_ERR_INVALID_POINT).
 *  In:      pubkeys33: n consecutive 33-byte compressed keys (n*33 bytes).
 *           n: number of keys.
 */
KM_WARN_UNUSED km_err km_musig_key_agg(const km_ctx *ctx, km_musig_keyagg *out,
                                       const unsigned char *pubkeys33, size_t n, size_t *bad_index)
    KM_NONNULL(1, 2, 3);

/** Apply a taproot tweak to an aggregation (see taproot.h for the modes).
 *
 *  MUST be called at most once per aggregation, and before nonces are
 *  generated with it: the tweak is bound into the keyagg cache that signing
 *  uses. KM_TWEAK_NONE also counts as the one call. bip86/bip341 tweak the
 *  x-only aggregate with TapTweak(agg_xonly [|| root]) exactly as BIP-341
 *  computes an output key; plain adds t·G to the real aggregate point;
 *  xonly adds t·G to the even-y aggregate.
 *
 *  Returns: KM_OK; KM_ERR_STATE if ka is not a valid aggregation or was
 *           already tweaked; KM_ERR_UNSUPPORTED / KM_ERR_ARG as
 *           km_tweak_check; KM_ERR_RANGE if the tweak scalar is >= the group
 *           order or the result is infinity. On failure *ka is unchanged.
 *  Args:    ctx: a context.
 *  In/Out:  ka: the aggregation; on success output_* and tweak are updated.
 *  In:      tweak: the tweak.
 */
KM_WARN_UNUSED km_err km_musig_keyagg_tweak(const km_ctx *ctx, km_musig_keyagg *ka, const km_tweak *tweak)
    KM_NONNULL(1, 2, 3);

/** Generate a fresh nonce pair for one signing session.
 *
 *  The session randomness is 32 fresh bytes from km_random_bytes, wiped after
 *  use, so two calls never produce the same nonce. seckey32, msg32, keyagg and
 *  extra32 are mixed in for misuse resistance when known. The secret nonce
 *  MUST be used for at most one km_musig_partial_sign (which wipes it); it
 *  MUST NOT be copied out of its km_secret: reusing a secret nonce with two
 *  different sessions reveals the secret key.
 *
 *  Returns: KM_OK; KM_ERR_INVALID_POINT if pubkey33 is invalid;
 *           KM_ERR_INVALID_KEY if seckey32 is zero or >= the group order;
 *           KM_ERR_ARG if seckey32 does not belong to pubkey33;
 *           KM_ERR_STATE if keyagg is given but not valid; KM_ERR_RANDOM;
 *           KM_ERR_NOMEM. On failure *secnonce_out is NULL and pubnonce66 is
 *           zeroed.
 *  Args:    ctx: a context (its locked pool holds the secret nonce).
 *  Out:     secnonce_out: receives a new km_secret (opaque content: the
 *           libsecp256k1 secnonce plus the signer's public key and public
 *           nonce), owned by the caller and freed with km_secret_free.
 *           pubnonce66: the 66-byte public nonce.
 *  In:      seckey32: the signer's 32-byte secret key if known (NULL allowed).
 *           pubkey33: the signer's 33-byte compressed public key.
 *           msg32: the 32-byte message if already known (NULL allowed).
 *           keyagg: the (tweaked) aggregation if already known (NULL allowed).
 *           extra32: 32 bytes of context, e.g. a hash of session and item ids
 *           (NULL allowed).
 */
KM_WARN_UNUSED km_err km_musig_nonce_gen(km_ctx *ctx, km_secret **secnonce_out, unsigned char pubnonce66[66],
                                         const unsigned char *seckey32, const unsigned char pubkey33[33],
                                         const unsigned char *msg32, const km_musig_keyagg *keyagg,
                                         const unsigned char *extra32) KM_NONNULL(1, 2, 3, 5);

/** Aggregate public nonces (BIP-327 NonceAgg). Order does not matter.
 *
 *  Returns: KM_OK; KM_ERR_RANGE if n is 0 or > KM_MUSIG_MAX_SIGNERS;
 *           KM_ERR_INVALID_POINT if a public nonce is invalid (index to
 *           *bad_index); KM_ERR_NOMEM. On failure aggnonce66 is zeroed.
 *  Args:    ctx: a context.
 *  Out:     aggnonce66: the 66-byte aggregate nonce.
 *           bad_index: receives the index of the invalid nonce (NULL allowed).
 *  In:      pubnonces66: n consecutive 66-byte public nonces.
 *           n: number of nonces.
 */
KM_WARN_UNUSED km_err km_musig_nonce_agg(const km_ctx *ctx, unsigned char aggnonce66[66],
                                         const unsigned char *pubnonces66, size_t n, size_t *bad_index)
    KM_NONNULL(1, 2, 3);

/** Start a signing session from the aggregate nonce, message and aggregation.
 *
 *  The aggregation is copied into the session: later changes to *keyagg do
 *  not affect it.
 *
 *  Returns: KM_OK; KM_ERR_STATE if keyagg is not valid; KM_ERR_INVALID_POINT
 *           if aggnonce66 is invalid; KM_ERR_CRYPTO if libsecp256k1 fails
 *           unexpectedly. On failure *out is zeroed (valid = 0).
 *  Args:    ctx: a context.
 *  Out:     out: the session.
 *  In:      aggnonce66: the 66-byte aggregate nonce.
 *           msg32: the 32-byte message.
 *           keyagg: the (tweaked) aggregation.
 */
KM_WARN_UNUSED km_err km_musig_session_init(const km_ctx *ctx, km_musig_session *out,
                                            const unsigned char aggnonce66[66], const unsigned char msg32[32],
                                            const km_musig_keyagg *keyagg) KM_NONNULL(1, 2, 3, 4, 5);

/** Produce this signer's partial signature, consuming the secret nonce.
 *
 *  After the call — success or failure — the secret nonce is wiped; a second
 *  call with it returns KM_ERR_NONCE_REUSE and signs nothing. (The one
 *  exception: a km_secret that is not a secret nonce at all is refused with
 *  KM_ERR_ARG and left untouched.) The partial signature is verified before
 *  it is returned (BIP-327 Sign does so), which catches faults that could
 *  otherwise leak the key.
 *
 *  Returns: KM_OK; KM_ERR_NONCE_REUSE if the secret nonce was already used;
 *           KM_ERR_ARG if secnonce is not a km_musig_nonce_gen secret or
 *           seckey32 is not the key the nonce was generated for;
 *           KM_ERR_INVALID_KEY if seckey32 is zero or >= the group order;
 *           KM_ERR_STATE if session is not valid; KM_ERR_CRYPTO if signing
 *           or the self-check fails (the self-check also fails when the
 *           signer's key is not one of the session's aggregated keys). On
 *           failure psig32 is zeroed.
 *  Args:    ctx: a context.
 *  Out:     psig32: the 32-byte partial signature.
 *  In/Out:  secnonce: the secret nonce from km_musig_nonce_gen (wiped).
 *  In:      seckey32: the signer's 32-byte secret key.
 *           session: the session (its keyagg must include the signer's key).
 */
KM_WARN_UNUSED km_err km_musig_partial_sign(const km_ctx *ctx, unsigned char psig32[32], km_secret *secnonce,
                                            const unsigned char seckey32[32], const km_musig_session *session)
    KM_NONNULL(1, 2, 3, 4, 5);

/** Verify one signer's partial signature (BIP-327 PartialSigVerify).
 *
 *  pubnonce66 and pubkey33 MUST be the ones that signer contributed to the
 *  aggregate nonce and key; a failure then proves that this signer cheated.
 *
 *  Returns: KM_OK if valid; KM_ERR_VERIFY if it does not verify;
 *           KM_ERR_PARSE if psig32 is not a scalar below the group order;
 *           KM_ERR_INVALID_POINT if pubnonce66 or pubkey33 is invalid;
 *           KM_ERR_STATE if session is not valid.
 *  Args:    ctx: a context.
 *  In:      session: the session.
 *           psig32: the 32-byte partial signature.
 *           pubnonce66: the signer's 66-byte public nonce.
 *           pubkey33: the signer's 33-byte public key.
 */
KM_WARN_UNUSED km_err km_musig_partial_verify(const km_ctx *ctx, const km_musig_session *session,
                                              const unsigned char psig32[32],
                                              const unsigned char pubnonce66[66],
                                              const unsigned char pubkey33[33]) KM_NONNULL(1, 2, 3, 4, 5);

/** Aggregate partial signatures into a BIP-340 signature (BIP-327 PartialSigAgg).
 *
 *  Does NOT verify anything: verify every partial signature first (to blame
 *  a cheater) and the result with km_musig_verify_final (before release).
 *
 *  Returns: KM_OK; KM_ERR_RANGE if n is 0 or > KM_MUSIG_MAX_SIGNERS;
 *           KM_ERR_PARSE if a partial signature is not a valid scalar (index
 *           to *bad_index); KM_ERR_STATE if session is not valid;
 *           KM_ERR_NOMEM. On failure sig64 is zeroed.
 *  Args:    ctx: a context.
 *  Out:     sig64: the 64-byte signature.
 *           bad_index: index of the invalid partial signature (NULL allowed).
 *  In:      session: the session.
 *           psigs32: n consecutive 32-byte partial signatures.
 *           n: their number.
 */
KM_WARN_UNUSED km_err km_musig_partial_agg(const km_ctx *ctx, unsigned char sig64[64],
                                           const km_musig_session *session, const unsigned char *psigs32,
                                           size_t n, size_t *bad_index) KM_NONNULL(1, 2, 3, 4);

/** Verify a final signature as BIP-340 under the aggregation's output
 *  (tweaked) x-only key.
 *
 *  Returns: KM_OK if valid; KM_ERR_VERIFY otherwise; KM_ERR_STATE if keyagg
 *           is not valid.
 *  Args:    ctx: a context.
 *  In:      sig64: the 64-byte signature.
 *           msg32: the 32-byte message.
 *           keyagg: the aggregation (its output_xonly is the key).
 */
KM_WARN_UNUSED km_err km_musig_verify_final(const km_ctx *ctx, const unsigned char sig64[64],
                                            const unsigned char msg32[32], const km_musig_keyagg *keyagg)
    KM_NONNULL(1, 2, 3, 4);

#ifdef __cplusplus
}
#endif
#endif
