/* keymeld/proto_sign.h — the signing messages (docs/PROTOCOL.md §5.3).
 *
 * A signing session carries a batch of items. Each item becomes one or more
 * *units*, one MuSig2 session each: a regular or Single/And adaptor item is
 * one unit; an Or adaptor item with k points is k units, each with its own
 * nonces, so that no two pre-signatures ever share a nonce.
 *
 * Both halves of every message live here: the client encodes the items and
 * decodes the result; enclaves encode and decode the records they exchange
 * through the (untrusted) gateway.
 */
#ifndef KEYMELD_PROTO_SIGN_H
#define KEYMELD_PROTO_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/cursor.h"
#include "keymeld/error.h"
#include "keymeld/taproot.h"
#include "keymeld/uuid.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KM_MAX_ITEMS          10000
#define KM_MAX_ADAPTOR_POINTS 16

#define KM_AD_SIGNING_ITEMS   "keymeld/signing-items/v1"
#define KM_AD_NONCES          "keymeld/nonces/v1"
#define KM_AD_PARTIALS        "keymeld/partials/v1"
#define KM_AD_SIGNING_RESULT  "keymeld/signing-result/v1"
#define KM_TAG_APPROVAL       "KeyMeld/approval"
#define KM_TAG_NONCE_RECORD   "KeyMeld/nonce-record"
#define KM_TAG_PARTIAL_RECORD "KeyMeld/partial-record"

typedef enum km_adaptor_type {
    KM_ADAPTOR_NONE = 0,
    KM_ADAPTOR_SINGLE = 1, /**< one point T */
    KM_ADAPTOR_AND = 2,    /**< T = sum of the points; all secrets needed */
    KM_ADAPTOR_OR = 3      /**< one pre-signature per point, own nonces each */
} km_adaptor_type;

/** One item of a signing batch. Fixed size on the wire:
 *  item_id[16] | msg[32] | u8 tweak_source | u8 tweak_mode | tweak_data[32]
 *  | u8 has_subset | subset_id[16] | u8 adaptor_type | u16 n_points | point[33]*n_points
 *  tweak_source 0: the keygen's default tweak (mode and data must be zero);
 *  1: this item's own tweak, which replaces the default for this item only. */
typedef struct km_sign_item {
    km_uuid id;
    unsigned char msg[32];
    int own_tweak;
    km_tweak tweak;
    int has_subset;
    km_uuid subset_id;
    km_adaptor_type adaptor;
    uint16_t n_points;
    unsigned char points[KM_MAX_ADAPTOR_POINTS][33];
} km_sign_item;

/** Number of units (MuSig2 sessions) of an item: n_points for Or, else 1. */
unsigned km_sign_item_units(const km_sign_item *it) KM_NONNULL(1);

/** Serialise a batch: u8 version | u32 n | item*n. Returns KM_OK, KM_ERR_RANGE
 *  (n outside 1..KM_MAX_ITEMS or an item breaking the rules decode enforces),
 *  KM_ERR_NOMEM. */
KM_WARN_UNUSED km_err km_sign_items_encode(const km_sign_item *items, size_t n, km_buf *out) KM_NONNULL(1, 3);

/** Parse and validate a batch into a new array (*items_out, free() it).
 *  Structural checks only (points are checked on the curve by the consumer):
 *  distinct item ids; adaptor rules (none: 0 points; single: 1; and: 2..16;
 *  or: 2..16); tweak rules.
 *  Returns: KM_OK; KM_ERR_PARSE; KM_ERR_RANGE; KM_ERR_DUPLICATE; KM_ERR_UNSUPPORTED. */
KM_WARN_UNUSED km_err km_sign_items_decode(km_sign_item **items_out, size_t *n_out, const unsigned char *p,
                                           size_t len) KM_NONNULL(1, 2);

/** The digest a participant signs (BIP-340, auth key) to approve a batch:
 *  TaggedHash(KM_TAG_APPROVAL, signing_id[16] | keygen_id[16] | SHA-256(items plaintext)).
 *  The enclave recomputes it from what it decrypted, so an approval covers
 *  exactly these messages, tweaks, adaptor points and subsets. */
void km_sign_approval_digest(unsigned char out32[32], const km_uuid *signing_id, const km_uuid *keygen_id,
                             const unsigned char *items_pt, size_t items_len) KM_NONNULL(1, 2, 3);

/** A record an enclave publishes for one of its participants (nonces or
 *  partial signatures), relayed by the gateway to other enclaves:
 *  user_id[16] | u16 enclave_index | u32 len | sealed[len] | sig[64]
 *  sig: BIP-340 by the enclave key over
 *  TaggedHash(tag, signing_id[16] | everything before sig).
 *  Decoded pointers refer into the input. */
typedef struct km_sign_record {
    km_uuid user_id;
    uint16_t enclave_index;
    const unsigned char *sealed;
    size_t sealed_len;
    const unsigned char *sig;
    unsigned char digest[32];
} km_sign_record;

/** Parse a record and compute its digest under tag and signing_id.
 *  Returns KM_OK or KM_ERR_PARSE. */
KM_WARN_UNUSED km_err km_sign_record_decode(km_sign_record *out, const char *tag, const km_uuid *signing_id,
                                            const unsigned char *p, size_t len) KM_NONNULL(1, 2, 3);

/** Append the unsigned part of a record to out and compute the digest to sign;
 *  the caller then appends the 64-byte signature. */
KM_WARN_UNUSED km_err km_sign_record_begin(km_buf *out, unsigned char digest32[32], const char *tag,
                                           const km_uuid *signing_id, const km_uuid *user_id,
                                           uint16_t enclave_index, const unsigned char *sealed,
                                           size_t sealed_len) KM_NONNULL(1, 2, 3, 4, 5);

/** Signing result plaintext (sealed under the session data key with
 *  AD(KM_AD_SIGNING_RESULT, signing_id)):
 *  u32 n_items | per item: item_id[16] | u8 adaptor_type | u16 n_units
 *  | per unit: sig[64] (x(R) || s; for adaptor items the pre-signature x(R') || s)
 *    | adaptor point T[33] (33 zero bytes for regular items). */

#ifdef __cplusplus
}
#endif
#endif
