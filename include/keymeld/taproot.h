/* keymeld/taproot.h — taproot tweak modes and BIP-341 output keys.
 *
 * A km_tweak says how a signing key is turned into the key that appears
 * on-chain. Five modes exist:
 *
 *   mode     data          tweak scalar t                     output key Q
 *   none     (zero)        —                                  Q = P
 *   bip86    (zero)        t = TapTweak(x(P))                 Q = lift_x(x(P)) + t·G
 *   bip341   merkle root   t = TapTweak(x(P) || root)         Q = lift_x(x(P)) + t·G
 *   plain    t (32 bytes)  t                                  Q = P + t·G        (P with its real y)
 *   xonly    t (32 bytes)  t                                  Q = lift_x(x(P)) + t·G
 *
 * where TapTweak is the BIP-340 tagged hash with tag "TapTweak" and lift_x
 * picks the point with even y. The rule for every mode: the key reported is
 * exactly what BIP-341 computes (taproot_output_script), i.e. for bip86 and
 * bip341 the internal key is taken x-only (even y) before t·G is added, and
 * the reported x-only output key is x(Q) with Q's y parity alongside. For a
 * MuSig2 aggregate P (see musig.h) the same formulas apply to the aggregate;
 * "plain" is the only mode that uses the aggregate's real y coordinate (BIP-327
 * plain tweak), so for a single x-only internal key plain and xonly coincide.
 *
 * Encoding rule: a km_tweak has one valid representation per value. The data
 * bytes of modes that carry no data (none, bip86) MUST be zero; km_tweak_check
 * rejects anything else. Use the km_tweak_* constructors.
 */
#ifndef KEYMELD_TAPROOT_H
#define KEYMELD_TAPROOT_H

#include <stddef.h>

#include "keymeld/context.h"
#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Taproot tweak modes. Values are stable (they may travel in the protocol). */
typedef enum km_tweak_mode {
    KM_TWEAK_NONE = 0,   /**< no tweak: the output key is the (aggregate) key itself */
    KM_TWEAK_BIP86 = 1,  /**< key-path only, no script tree: t = TapTweak(x(P)) */
    KM_TWEAK_BIP341 = 2, /**< with a script tree: t = TapTweak(x(P) || merkle_root) */
    KM_TWEAK_PLAIN = 3,  /**< BIP-327 plain ("EC") tweak: Q = P + t·G */
    KM_TWEAK_XONLY = 4   /**< BIP-327 x-only tweak: Q = lift_x(x(P)) + t·G */
} km_tweak_mode;

/** A tweak: a mode and its 32 data bytes (merkle root for bip341, the tweak
 *  scalar big-endian for plain/xonly, all zero for none/bip86). */
typedef struct km_tweak {
    km_tweak_mode mode;
    unsigned char data[32];
} km_tweak;

/** Length of a P2TR scriptPubKey: OP_1 (0x51), push 32 (0x20), x(Q). */
#define KM_TAPROOT_SPK_LEN 34

/** Make a tweak of mode none / bip86 (data zeroed).
 *  Out: t: the tweak. */
void km_tweak_none(km_tweak *t) KM_NONNULL(1);
void km_tweak_bip86(km_tweak *t) KM_NONNULL(1);

/** Make a bip341 tweak committing to a script tree.
 *  Out: t: the tweak.
 *  In:  merkle_root32: the 32-byte BIP-341 merkle root of the script tree. */
void km_tweak_bip341(km_tweak *t, const unsigned char merkle_root32[32]) KM_NONNULL(1, 2);

/** Make a plain / x-only tweak from a 32-byte big-endian scalar. The scalar is
 *  checked (< group order) only when applied.
 *  Out: t: the tweak.
 *  In:  tweak32: the tweak scalar. */
void km_tweak_plain(km_tweak *t, const unsigned char tweak32[32]) KM_NONNULL(1, 2);
void km_tweak_xonly(km_tweak *t, const unsigned char tweak32[32]) KM_NONNULL(1, 2);

/** Check that a tweak is well formed.
 *
 *  Returns: KM_OK; KM_ERR_UNSUPPORTED if mode is not one of the five modes;
 *           KM_ERR_ARG if mode is none or bip86 and data is not all zero.
 *  In:      t: the tweak.
 */
KM_WARN_UNUSED km_err km_tweak_check(const km_tweak *t) KM_NONNULL(1);

/** Stable lowercase name of a mode, for JSON and logs: "none", "bip86",
 *  "bip341", "plain", "xonly".
 *  Returns: a static string; NULL if mode is not a valid km_tweak_mode. */
const char *km_tweak_mode_name(km_tweak_mode mode);

/** Parse a mode name (exactly one of the names above, case-sensitive).
 *
 *  Returns: KM_OK; KM_ERR_PARSE on any other text (*mode set to KM_TWEAK_NONE,
 *           which the caller MUST NOT use after a failure).
 *  Out:     mode: the parsed mode.
 *  In:      name: len characters (need not be NUL-terminated; NUL inside is
 *           an error).
 */
KM_WARN_UNUSED km_err km_tweak_mode_parse(km_tweak_mode *mode, const char *name, size_t len) KM_NONNULL(1, 2);

/** Whether a mode carries 32 data bytes (bip341, plain, xonly).
 *  Returns: 1 if so, 0 otherwise (including invalid modes). */
int km_tweak_mode_has_data(km_tweak_mode mode);

/** BIP-341 TapTweak hash: TaggedHash("TapTweak", internal_xonly32 || merkle_root32),
 *  or TaggedHash("TapTweak", internal_xonly32) when merkle_root32 is NULL
 *  (BIP-86, no script tree).
 *
 *  Out: out32: the 32-byte tweak (not yet checked against the group order).
 *  In:  internal_xonly32: the 32-byte x-only internal key.
 *       merkle_root32: the 32-byte merkle root, or NULL for none.
 */
void km_taproot_tweak_hash(unsigned char out32[32], const unsigned char internal_xonly32[32],
                           const unsigned char *merkle_root32) KM_NONNULL(1, 2);

/** Compute the output key for a single x-only internal key under a tweak mode
 *  (BIP-341 taproot_output_script semantics; see the table at the top).
 *
 *  The internal key is x-only, so it is lifted to even y first; therefore
 *  plain and xonly give the same result here. For a MuSig2 aggregate use
 *  km_musig_keyagg_tweak, which applies plain to the real aggregate point.
 *
 *  Returns: KM_OK; KM_ERR_INVALID_POINT if internal_xonly32 is not the x
 *           coordinate of a curve point; KM_ERR_UNSUPPORTED / KM_ERR_ARG as
 *           km_tweak_check; KM_ERR_RANGE if the tweak scalar is >= the group
 *           order or the result is the point at infinity. On failure
 *           out_xonly32 is zeroed and *parity is 0.
 *  Args:    ctx: a libkeymeld context.
 *  Out:     out_xonly32: x(Q), 32 bytes.
 *           parity: receives 1 if Q has odd y, 0 if even (NULL allowed).
 *  In:      internal_xonly32: the 32-byte x-only internal key P.
 *           tweak: the mode and its data.
 */
KM_WARN_UNUSED km_err km_taproot_output_key(const km_ctx *ctx, unsigned char out_xonly32[32], int *parity,
                                            const unsigned char internal_xonly32[32], const km_tweak *tweak)
    KM_NONNULL(1, 2, 4, 5);

/** The P2TR scriptPubKey of an x-only output key: 0x51 0x20 || x(Q).
 *  Out: spk34: 34 bytes.
 *  In:  output_xonly32: x(Q). (Not validated: it is only copied.) */
void km_taproot_script_pubkey(unsigned char spk34[KM_TAPROOT_SPK_LEN], const unsigned char output_xonly32[32])
    KM_NONNULL(1, 2);

#ifdef __cplusplus
}
#endif
#endif
