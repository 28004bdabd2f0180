/* keymeld/client.h — the KeyMeld client SDK: talk to a keymeld-gateway while
 * keeping the trust model honest on the client's side.
 *
 * The gateway is not trusted. The SDK therefore:
 *  - verifies an enclave's attestation document (pinned root, pinned PCRs,
 *    a fresh nonce of its own, the enclave key bound in the document) before
 *    it encrypts anything to that enclave, and refuses keys it did not verify;
 *  - makes the session secret and every id itself;
 *  - opens every result with the session key and checks it before returning
 *    it: the aggregate key is recomputed from the participants' public keys
 *    (and the joining participant's own key must be among them); every
 *    signature is verified against the expected (tweaked) key and message;
 *    every adaptor pre-signature is verified against its adaptor point.
 *
 * Errors: every function returns a km_err (include/keymeld/error.h);
 * km_sdk_last_error() describes the last failure in words (an HTTP error's
 * code and message, or which check failed). The library never prints and
 * never exits.
 *
 * Threads: a km_sdk handle MUST be used by one thread at a time (it owns one
 * HTTP connection and a scratch state); use one handle per thread. A
 * km_sdk_session may be shared between handles only if the caller serialises
 * access to it. The km_ctx passed at creation may be shared (it is
 * thread-safe).
 *
 * Secrets: the session secret, participants' secret keys and auth keys are
 * secrets. The SDK copies what it keeps into locked memory and wipes it on
 * free; km_sdk_session_export returns the session secret in its JSON, which
 * the caller MUST store only in files readable by its owner (mode 0600) and
 * hand to other participants only over a confidential channel.
 */
#ifndef KEYMELD_CLIENT_H
#define KEYMELD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/adaptor.h"
#include "keymeld/context.h"
#include "keymeld/error.h"
#include "keymeld/proto_key.h"
#include "keymeld/proto_keygen.h"
#include "keymeld/proto_sign.h"
#include "keymeld/taproot.h"
#include "keymeld/uuid.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KM_SDK_MAX_PARTICIPANTS 1000
#define KM_SDK_MAX_SUBSETS      200

typedef struct km_sdk km_sdk;
typedef struct km_sdk_session km_sdk_session;

/* ---- connection and trust ---------------------------------------------------- */

/** Create a handle for one gateway.
 *  Returns: KM_OK; KM_ERR_ARG (NULL, URL not http(s)://...); KM_ERR_NOMEM.
 *  Args:    ctx: context (borrowed; must outlive the handle).
 *  Out:     out: the handle (free with km_sdk_free); NULL on failure.
 *  In:      gateway_url: e.g. "http://127.0.0.1:8080" (no trailing slash; copied). */
KM_WARN_UNUSED km_err km_sdk_new(km_sdk **out, km_ctx *ctx, const char *gateway_url);

/** Free a handle (NULL allowed); wipes what it holds. */
void km_sdk_free(km_sdk *sdk);

/** The last failure of this handle in words ("" if none). Valid until the
 *  next call on the handle. Never contains a secret. */
const char *km_sdk_last_error(const km_sdk *sdk);

/** Trust an attestation root for one enclave id (development CAs are per
 *  enclave in local setups) or for every enclave (enclave_id = UINT32_MAX, e.g.
 *  the AWS Nitro root). The root is pinned: it is never taken from the gateway.
 *  Returns: KM_OK; KM_ERR_ARG; KM_ERR_NOMEM.
 *  In: root: PEM or DER bytes (copied). */
KM_WARN_UNUSED km_err km_sdk_trust_root(km_sdk *sdk, uint32_t enclave_id, const unsigned char *root,
                                        size_t root_len);

/** Demand PCR `index` to equal value (32, 48 or 64 bytes) in every document.
 *  A client that pins no PCR accepts any code signed under the root: pin PCR0
 *  (the enclave image; `keymeld-enclave measure` in development).
 *  Returns: KM_OK; KM_ERR_ARG. */
KM_WARN_UNUSED km_err km_sdk_pin_pcr(km_sdk *sdk, unsigned index, const unsigned char *value, size_t len);

/** Fetch a fresh attestation document of an enclave through the gateway
 *  (GET /api/v1/enclaves/{id}?nonce=<32 fresh random bytes>), verify it
 *  (km_attest_verify: the pinned root for that id, the pinned PCRs, this
 *  nonce, age at most 120 s, at most 60 s in the future) and check that the
 *  enclave key the gateway lists is the key bound in the document. On success
 *  the key is remembered as verified for this handle; every later encryption
 *  to that enclave uses it. On failure a key verified earlier for this id is
 *  forgotten (fail closed). Pinning a PCR or replacing a root forgets every
 *  verified key.
 *  Returns: KM_OK; KM_ERR_ATTESTATION (document refused or missing, or the
 *           gateway lists another key: a substituted enclave); KM_ERR_NOT_FOUND
 *           (no root trusted for it, or unknown enclave); KM_ERR_IO (gateway
 *           unreachable); KM_ERR_STATE (the gateway answered an error);
 *           KM_ERR_ARG (sdk NULL).
 *  Out: pubkey33: the verified enclave key, or NULL. */
KM_WARN_UNUSED km_err km_sdk_verify_enclave(km_sdk *sdk, uint32_t enclave_id, unsigned char pubkey33[33]);

/** Verify every enclave the gateway lists (as km_sdk_verify_enclave); a
 *  failure does not stop the others from being verified.
 *  Returns: KM_OK; the first failure of km_sdk_verify_enclave (its text in
 *           km_sdk_last_error); KM_ERR_STATE (the gateway lists none);
 *           KM_ERR_IO; KM_ERR_ARG.
 *  Out: n: how many enclaves were verified (all of them on KM_OK). */
KM_WARN_UNUSED km_err km_sdk_verify_enclaves(km_sdk *sdk, size_t *n);

/* ---- keygen ------------------------------------------------------------------- */

/** What the keygen coordinator decides. */
typedef struct km_sdk_keygen_params {
    size_t n_participants;         /**< 1..KM_SDK_MAX_PARTICIPANTS */
    const km_uuid *user_ids;       /**< n_participants ids, or NULL to make UUIDv7s */
    km_tweak tweak;                /**< default taproot tweak (km_tweak_bip86 for a key-path-only output) */
    size_t n_subsets;              /**< 0..KM_SDK_MAX_SUBSETS */
    const km_subset_def *subsets;  /**< members are participant indices */
    uint32_t timeout_secs;         /**< registration deadline, 1..86400 */
    uint32_t max_signing_sessions; /**< 0 = unlimited */
} km_sdk_keygen_params;

/** Create a keygen session as its coordinator: make the keygen id and the
 *  session secret, assign participants round robin over the VERIFIED
 *  enclaves (km_sdk_verify_enclaves first), encrypt one init blob per enclave
 *  used, and POST /api/v1/keygen signed with the session auth key.
 *  Returns: KM_OK; KM_ERR_STATE (no verified enclave, or the gateway refused:
 *           see km_sdk_last_error); KM_ERR_ARG (NULL, counts or timeout out
 *           of range, repeated user or subset id, subset member out of range
 *           or repeated, malformed tweak); KM_ERR_IO; KM_ERR_NOMEM.
 *  Out: out: the session (free with km_sdk_session_free); NULL on failure. */
KM_WARN_UNUSED km_err km_sdk_keygen_create(km_sdk *sdk, const km_sdk_keygen_params *params,
                                           km_sdk_session **out);

/** The session as JSON (keygen id, session secret, participants, their
 *  enclaves and the enclave keys, tweak, subsets): the invitation that lets a
 *  participant join. CONTAINS THE SESSION SECRET.
 *  Out: json: malloc'ed NUL-terminated string; the caller wipes and frees it. */
KM_WARN_UNUSED km_err km_sdk_session_export(const km_sdk_session *s, char **json);

/** Rebuild a session from km_sdk_session_export's JSON (strictly validated:
 *  unknown, missing or repeated fields, bad hex, invalid enclave keys, ids
 *  or indices out of range are refused). The SDK wipes every copy of the
 *  secret it makes; the caller still owns (and wipes) json.
 *  Returns: KM_OK; KM_ERR_PARSE; KM_ERR_ARG (NULL); KM_ERR_NOMEM.
 *  Out: out: the session, NULL on failure. */
KM_WARN_UNUSED km_err km_sdk_session_import(km_ctx *ctx, const char *json, km_sdk_session **out);

/** Free a session (NULL allowed); wipes the session secret. */
void km_sdk_session_free(km_sdk_session *s);

/** The session's keygen id and number of participants; participant i's user
 *  id and enclave. Returns: KM_OK; KM_ERR_RANGE (i too large). */
KM_WARN_UNUSED km_err km_sdk_session_info(const km_sdk_session *s, km_uuid *keygen_id,
                                          size_t *n_participants);
KM_WARN_UNUSED km_err km_sdk_session_participant(const km_sdk_session *s, size_t i, km_uuid *user_id,
                                                 uint32_t *enclave_id);

/** Join as participant i: encrypt the registration (session secret, secret
 *  key, auth public key, approval flag) to the participant's enclave, whose
 *  key this handle MUST have verified (else KM_ERR_STATE), and POST it signed
 *  with the auth key. The secret key is remembered (public part only) so that
 *  km_sdk_keygen_wait checks it is aggregated.
 *  Returns: KM_OK (also when the identical registration was already made
 *           through this handle: the same blob is resent); KM_ERR_STATE
 *           (enclave not verified, the session names another key for it than
 *           the verified one, or refused, e.g. 409 for another registration
 *           of the same participant); KM_ERR_INVALID_KEY; KM_ERR_IO;
 *           KM_ERR_RANGE (i); KM_ERR_ARG.
 *  In: seckey, auth_seckey: 32 bytes each (not kept). */
KM_WARN_UNUSED km_err km_sdk_keygen_join(km_sdk *sdk, km_sdk_session *s, size_t i,
                                         const unsigned char seckey[32], const unsigned char auth_seckey[32],
                                         int require_approval);

/** The checked outcome of a keygen. */
typedef struct km_sdk_keygen_result {
    unsigned char agg_xonly[32];    /**< KeyAgg of the sorted keys, untweaked */
    unsigned char output_xonly[32]; /**< the key signatures verify under (tweaked) */
    int output_parity;
    km_tweak tweak;
    size_t n_participants;
    unsigned char (*pubkeys)[33]; /**< participants' plain keys, participant order (owned) */
    size_t n_subsets;
    km_uuid *subset_ids;                /**< owned */
    unsigned char (*subset_output)[32]; /**< owned: each subset's tweaked key */
} km_sdk_keygen_result;

/** Wait (long poll, no sleep loop) up to timeout_s for the keygen to end,
 *  then open the sealed result and check it: every key listed, aggregation
 *  and tweak recomputed locally, and every participant that joined through
 *  this session object finds its own key at its index.
 *  Returns: KM_OK; KM_ERR_STATE (the keygen failed: reason in
 *           km_sdk_last_error; or the gateway refused); KM_ERR_RANGE
 *           (timeout); KM_ERR_VERIFY (the result is malformed, does not
 *           recompute, or lacks our key: a tampered aggregate);
 *           KM_ERR_DECRYPT (the result does not open under the session key);
 *           KM_ERR_IO.
 *  Out: out: filled on KM_OK (release with km_sdk_keygen_result_clear);
 *       zeroed on failure (nothing of a refused result is returned). */
KM_WARN_UNUSED km_err km_sdk_keygen_wait(km_sdk *sdk, km_sdk_session *s, unsigned timeout_s,
                                         km_sdk_keygen_result *out);
void km_sdk_keygen_result_clear(km_sdk_keygen_result *r);

/* ---- signing ------------------------------------------------------------------ */

/** Create a signing session: the batch is sealed under the session key and
 *  POSTed (signed with the session auth key). items follow proto_sign.h
 *  (1..KM_MAX_ITEMS; per-item tweak, subset, adaptor type and points).
 *  Returns: KM_OK (also for an identical repeat through this handle: the
 *           sealed bytes of the last 16 creates are remembered and resent,
 *           since the gateway answers other bytes with 409); KM_ERR_STATE
 *           (refused); KM_ERR_ARG / KM_ERR_RANGE (invalid batch, an item
 *           naming a subset the session lacks, timeout_secs 0); KM_ERR_IO. */
KM_WARN_UNUSED km_err km_sdk_sign_create(km_sdk *sdk, const km_sdk_session *s, const km_uuid *signing_id,
                                         const km_sign_item *items, size_t n, uint32_t timeout_secs);

/** Approve a signing session as participant i: sign the approval digest of
 *  exactly these items with the auth key and POST it (signed with the auth
 *  key). The participant's enclave checks it. The approval signature is
 *  deterministic (BIP-340 with zero auxiliary data), so a repeat is the same
 *  request: transport errors and 5xx answers are retried for 20 s, and an
 *  approval repeated after a lost answer is answered like the first.
 *  Returns: KM_OK (also for an identical repeat); KM_ERR_VERIFY (the enclave refused the approval);
 *           KM_ERR_STATE (refused otherwise, e.g. signed by a key that is not
 *           the participant's, or no approval pending); KM_ERR_RANGE (i);
 *           KM_ERR_INVALID_KEY; KM_ERR_ARG; KM_ERR_IO. */
KM_WARN_UNUSED km_err km_sdk_sign_approve(km_sdk *sdk, const km_sdk_session *s, size_t i,
                                          const unsigned char auth_seckey[32], const km_uuid *signing_id,
                                          const km_sign_item *items, size_t n);

/** One signed unit of an item (one per item; one per point for Or adaptors). */
typedef struct km_sdk_unit {
    unsigned char sig[64]; /**< BIP-340 signature, or the pre-signature x(R+T) || s for adaptor units */
    int has_T;
    unsigned char T[33]; /**< the adaptor point this unit is for */
} km_sdk_unit;

typedef struct km_sdk_item_result {
    km_uuid item_id;
    km_adaptor_type adaptor;
    unsigned char key_xonly[32]; /**< the key it verifies under (recomputed locally) */
    uint16_t n_units;
    km_sdk_unit units[KM_MAX_ADAPTOR_POINTS];
} km_sdk_item_result;

typedef struct km_sdk_sign_result {
    size_t n;
    km_sdk_item_result *items; /**< owned, in item order */
} km_sdk_sign_result;

/** Wait (long poll) up to timeout_s for the session to end, open the sealed
 *  result and verify every unit before returning: regular signatures verify
 *  (BIP-340) under the expected key for the item's signer set and tweak, over
 *  the item's message; adaptor pre-signatures verify against their point
 *  (km_adaptor_presig_verify) and do NOT verify as plain signatures; no two
 *  units share a nonce point. The participants' keys come from this
 *  session's checked keygen result, or (an imported session that did not
 *  wait for the keygen) are fetched and checked as km_sdk_keygen_wait does.
 *  Returns: KM_OK; KM_ERR_STATE (failed: the reason, e.g. the participant
 *           whose partial signature was rejected, in km_sdk_last_error);
 *           KM_ERR_RANGE (timeout); KM_ERR_VERIFY (a tampered signature or
 *           pre-signature); KM_ERR_PARSE; KM_ERR_DECRYPT; KM_ERR_IO.
 *  Out: out: filled on KM_OK (release with km_sdk_sign_result_clear); zeroed
 *       on failure. */
KM_WARN_UNUSED km_err km_sdk_sign_wait(km_sdk *sdk, const km_sdk_session *s, const km_uuid *signing_id,
                                       const km_sign_item *items, size_t n, unsigned timeout_s,
                                       km_sdk_sign_result *out);

/** Create a signing session and wait for its result in one request
 *  (POST /api/v1/signing?wait=&until=final): km_sdk_sign_create followed by
 *  km_sdk_sign_wait, one HTTP round trip shorter, with the same checks of
 *  the batch and of the result. A session not final when the first long
 *  poll ends is then waited for as km_sdk_sign_wait does, up to wait_s in
 *  all. Safe to repeat with the same signing_id and items.
 *  Returns: as km_sdk_sign_create, then as km_sdk_sign_wait.
 *  Out: out: filled on KM_OK (release with km_sdk_sign_result_clear); zeroed
 *       on failure. */
KM_WARN_UNUSED km_err km_sdk_sign(km_sdk *sdk, const km_sdk_session *s, const km_uuid *signing_id,
                                  const km_sign_item *items, size_t n, uint32_t timeout_secs, unsigned wait_s,
                                  km_sdk_sign_result *out);
void km_sdk_sign_result_clear(km_sdk_sign_result *r);

/* ---- single-signer keys ---------------------------------------------------------- */

/** Import a key into the enclave the gateway assigns (POST /keys/reserve),
 *  which this handle MUST have verified; the import is signed by the auth key.
 *  Returns: KM_OK (also for an identical repeat through this handle);
 *           KM_ERR_STATE (enclave not verified, the gateway names another key
 *           for it, or refused); KM_ERR_INVALID_KEY; KM_ERR_ARG; KM_ERR_IO.
 *  Out: enclave_id: where the key lives (may be NULL). */
KM_WARN_UNUSED km_err km_sdk_key_import(km_sdk *sdk, const km_uuid *key_id, const km_uuid *user_id,
                                        const unsigned char seckey[32], const unsigned char auth_seckey[32],
                                        int require_approval, uint32_t *enclave_id);

/** Sign with an imported key: KM_KEY_ALGO_SCHNORR (BIP-340 over msg, 0..1024
 *  bytes) or KM_KEY_ALGO_ECDSA (msg is a 32-byte digest; proto_key.h); with_approval adds the
 *  approval signature by the auth key. The result is opened with a one-time
 *  response key and verified against pubkey33 before it is returned.
 *  The key's enclave (GET /keys/{user}/{key}) MUST be verified by this handle.
 *  Returns: KM_OK; KM_ERR_STATE (refused/failed, e.g. a missing approval,
 *           or the enclave not verified); KM_ERR_NOT_FOUND (no such key);
 *           KM_ERR_VERIFY (the signature does not verify: refused);
 *           KM_ERR_DECRYPT / KM_ERR_PARSE (the result does not open);
 *           KM_ERR_RANGE (timeout, or msg_len); KM_ERR_INVALID_POINT
 *           (pubkey33); KM_ERR_ARG; KM_ERR_IO.
 *  Out: sig64: BIP-340 signature, or compact ECDSA r||s (low-S); zeroed on failure. */
KM_WARN_UNUSED km_err km_sdk_key_sign(km_sdk *sdk, const km_uuid *key_id, const km_uuid *user_id,
                                      const unsigned char pubkey33[33], const unsigned char auth_seckey[32],
                                      int algo, const unsigned char *msg, size_t msg_len, int with_approval,
                                      unsigned timeout_s, unsigned char sig64[64]);

/** Delete an imported key (the enclave checks the deletion signature).
 *  Returns: KM_OK; KM_ERR_NOT_FOUND; KM_ERR_STATE; KM_ERR_IO. */
KM_WARN_UNUSED km_err km_sdk_key_delete(km_sdk *sdk, const km_uuid *key_id, const km_uuid *user_id,
                                        const unsigned char auth_seckey[32]);

#ifdef __cplusplus
}
#endif
#endif
