/* keymeld/proto_keygen.h — the keygen messages (docs/PROTOCOL.md §5.2).
 *
 * Both halves of each message live here (the OpenSSH monitor_wrap model): the
 * client builds the init and registration plaintexts, the enclave parses
 * them; the enclave builds participant records and the result, the client and
 * other enclaves parse them. Decoders validate everything they can without
 * keys: lengths, counts, uniqueness, ranges. Curve validity of points is
 * checked by the consumer through libsecp256k1.
 */
#ifndef KEYMELD_PROTO_KEYGEN_H
#define KEYMELD_PROTO_KEYGEN_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/cursor.h"
#include "keymeld/error.h"
#include "keymeld/taproot.h"
#include "keymeld/uuid.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KM_MAX_PARTICIPANTS 1000
#define KM_MAX_SUBSETS      200
#define KM_MAX_ENCLAVES     64
#define KM_PROTO_VERSION    1

/** Flags of a participant. */
#define KM_FLAG_REQUIRE_APPROVAL 0x01u

/** Associated-data purposes (docs/PROTOCOL.md §4.3). */
#define KM_AD_KEYGEN_INIT   "keymeld/keygen-init/v1"
#define KM_AD_REGISTER      "keymeld/register/v1"
#define KM_AD_PARTICIPANT   "keymeld/participant/v1"
#define KM_AD_KEYGEN_RESULT "keymeld/keygen-result/v1"
/** Tag of the enclave's signature over a participant record. */
#define KM_TAG_PARTICIPANT_RECORD "KeyMeld/participant-record"

typedef struct km_subset_def {
    km_uuid id;
    uint16_t n;        /**< number of members, 1..n_participants */
    uint16_t *members; /**< indices into the participant list, distinct (owned) */
} km_subset_def;

/** What the keygen coordinator tells each enclave (inside ECIES). Contains the
 *  session secret: free with km_keygen_init_free, which wipes it. */
typedef struct km_keygen_init {
    unsigned char session_secret[32];
    uint16_t n_enclaves;
    unsigned char (*enclave_pubs)[33]; /**< the attested keys of the keygen's enclaves (owned) */
    uint16_t n_participants;
    km_uuid *user_ids;       /**< distinct (owned) */
    uint16_t *enclave_index; /**< per participant, < n_enclaves (owned) */
    uint16_t n_subsets;
    km_subset_def *subsets; /**< distinct ids (owned) */
    km_tweak tweak;         /**< default taproot tweak of the keygen */
} km_keygen_init;

/** Serialise an init plaintext:
 *  u8 version | secret[32] | u16 n_enclaves | pub[33]*n | u16 n_participants
 *  | (user_id[16] | u16 enclave_index)*n | u16 n_subsets
 *  | (subset_id[16] | u16 m | u16 index*m)*n_subsets | u8 tweak_mode | tweak_data[32]
 *  Returns: KM_OK; KM_ERR_RANGE / KM_ERR_ARG if the struct violates the limits
 *  that decode enforces; KM_ERR_NOMEM. */
KM_WARN_UNUSED km_err km_keygen_init_encode(const km_keygen_init *in, km_buf *out) KM_NONNULL(1, 2);

/** Parse and validate an init plaintext. On success *out owns allocations and
 *  must be released with km_keygen_init_free; on failure *out is empty.
 *  Returns: KM_OK; KM_ERR_PARSE (structure, trailing bytes); KM_ERR_RANGE
 *  (counts: participants 1..1000, enclaves 1..64, subsets 0..200, indices);
 *  KM_ERR_DUPLICATE (repeated user, subset or subset member); KM_ERR_UNSUPPORTED
 *  (version or tweak mode). */
KM_WARN_UNUSED km_err km_keygen_init_decode(km_keygen_init *out, const unsigned char *p, size_t len)
    KM_NONNULL(1);

/** Wipe and free. NULL-safe; leaves *in empty. */
void km_keygen_init_free(km_keygen_init *in);

/** Index of user in the participant list, or -1. */
int km_keygen_init_find(const km_keygen_init *in, const km_uuid *user) KM_NONNULL(1, 2);

/** A participant's registration (inside ECIES to its enclave).
 *  Layout: u8 version | secret[32] | seckey[32] | auth_pub[32] | u8 flags (98 bytes). */
typedef struct km_registration {
    unsigned char session_secret[32];
    unsigned char seckey[32];
    unsigned char auth_pub[32]; /**< x-only key that signs approvals */
    uint8_t flags;
} km_registration;
#define KM_REGISTRATION_LEN 98

void km_registration_encode(const km_registration *in, unsigned char out[KM_REGISTRATION_LEN])
    KM_NONNULL(1, 2);
/** Returns KM_OK; KM_ERR_PARSE (length); KM_ERR_UNSUPPORTED (version or unknown flag bits). */
KM_WARN_UNUSED km_err km_registration_decode(km_registration *out, const unsigned char *p, size_t len)
    KM_NONNULL(1);

/** Public data of a participant, sealed under the session data key inside a
 *  record. Layout: pubkey[33] | auth_pub[32] | u8 flags (66 bytes). */
#define KM_PARTICIPANT_INFO_LEN 66

/** A participant record as produced by the participant's enclave:
 *  keygen_id[16] | user_id[16] | u16 enclave_index | vbytes sealed_info | sig[64]
 *  sig: BIP-340 by the enclave key over TaggedHash(KM_TAG_PARTICIPANT_RECORD,
 *  everything before sig). Decoded fields point into the input (not owned). */
typedef struct km_participant_record {
    km_uuid keygen_id, user_id;
    uint16_t enclave_index;
    const unsigned char *sealed;
    size_t sealed_len;
    const unsigned char *sig;
    unsigned char digest[32]; /**< the hash sig signs */
} km_participant_record;

/** Parse a record. Returns KM_OK or KM_ERR_PARSE. */
KM_WARN_UNUSED km_err km_participant_record_decode(km_participant_record *out, const unsigned char *p,
                                                   size_t len) KM_NONNULL(1);

/** Keygen result plaintext (sealed under the session data key):
 *  agg_xonly[32] | output_xonly[32] | u8 output_parity | u8 tweak_mode | tweak_data[32]
 *  | u16 n | pubkey[33]*n (participant order) | u16 n_subsets
 *  | (subset_id[16] | agg_xonly[32] | output_xonly[32])*n_subsets */

#ifdef __cplusplus
}
#endif
#endif
