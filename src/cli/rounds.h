/* rounds.h — the client and gateway halves of keygen and signing, driven
 * directly against enclave processes (what the SDK and the gateway's
 * coordinator do over HTTP). Used by the demo, the enclave benchmark and the
 * enclave tests (which then tamper with individual steps).
 *
 * Every function returns km_err; on failure w->detail names the failing step
 * (a static string, never secret material). */
#ifndef KM_CLI_ROUNDS_H
#define KM_CLI_ROUNDS_H

#include "cli/devnet.h"
#include "keymeld/musig.h"
#include "keymeld/proto_keygen.h"
#include "keymeld/proto_sign.h"
#include "keymeld/session_crypto.h"

#define KM_ROUNDS_MAX_ENCLAVES 4
#define KM_ROUNDS_MAX_USERS    10

/** A set of enclaves, a set of participants and one keygen session. */
typedef struct km_rounds_world {
    km_ctx *ctx;
    int n_enclaves;
    km_devnet_enclave enc[KM_ROUNDS_MAX_ENCLAVES];
    km_enclave_conn conn[KM_ROUNDS_MAX_ENCLAVES];
    /* keygen */
    km_uuid keygen_id;
    unsigned char secret[32];
    km_session *session; /* client's view of the session keys */
    int n_users;
    km_uuid users[KM_ROUNDS_MAX_USERS];
    uint16_t assign[KM_ROUNDS_MAX_USERS];
    uint8_t flags[KM_ROUNDS_MAX_USERS];
    unsigned char seckeys[KM_ROUNDS_MAX_USERS][32], pubkeys[KM_ROUNDS_MAX_USERS][33];
    unsigned char auth_sec[KM_ROUNDS_MAX_USERS][32], auth_x[KM_ROUNDS_MAX_USERS][32];
    km_buf records[KM_ROUNDS_MAX_USERS];
    km_tweak tweak;
    uint16_t n_subsets;
    km_subset_def subsets[2];
    uint16_t subset_members[2][KM_ROUNDS_MAX_USERS];
    km_musig_keyagg keyagg; /* recomputed by the client from its own data */
    /* Every nonce point x(R) seen in any signature or pre-signature. */
    unsigned char (*seen_R)[32];
    size_t n_seen_R, cap_seen_R;
    const char *detail; /* static description of the last failure, or NULL */
} km_rounds_world;

/** Start n_enclaves local enclaves (fresh temporary directories) and connect;
 *  make n_users random participants assigned round robin; BIP-86 keygen
 *  tweak. MUST be paired with km_rounds_stop, also on failure.
 *  Returns: KM_OK; KM_ERR_ARG (counts out of range, NULL); errors of
 *           km_devnet_start / connect / randomness.
 *  Args: w: zeroed and filled. In: bin: keymeld-enclave path (borrowed). */
KM_WARN_UNUSED km_err km_rounds_start(km_rounds_world *w, const char *bin, int n_enclaves, int n_users);
/** Close connections, stop the enclaves, remove their directories, wipe and free. */
void km_rounds_stop(km_rounds_world *w);

/** Call cmd on enclave i.
 *  Returns: KM_OK when a response arrived (its code is in *status), else the
 *           transport error. Out: out: the response body (replaces contents), or NULL.
 *  In: body may be NULL (empty). */
KM_WARN_UNUSED km_err km_rounds_call(km_rounds_world *w, int i, uint16_t cmd, const km_buf *body, km_buf *out,
                                     km_err *status);
/** Append u32 len || bytes. Returns: KM_OK; KM_ERR_NOMEM; KM_ERR_RANGE. */
KM_WARN_UNUSED km_err km_rounds_put_vbytes(km_buf *b, const unsigned char *p, size_t n);

/** Record x(R) of a signature.
 *  Returns: KM_OK; KM_ERR_NONCE_REUSE if it was seen before (a repeated R
 *           across sessions would mean a nonce was reused); KM_ERR_NOMEM. */
KM_WARN_UNUSED km_err km_rounds_note_R(km_rounds_world *w, const unsigned char r32[32]);
/** Check that no enclave log contains a secret of the world (secret keys,
 *  auth keys, the session secret) raw or in hex, and that each log exists.
 *  Returns: KM_OK; KM_ERR_IO (log missing or empty); KM_ERR_STATE (a secret leaked). */
KM_WARN_UNUSED km_err km_rounds_logs_clean(km_rounds_world *w);

/** Run the whole keygen honestly (init, register, finalize on every enclave)
 *  and check each enclave's result against the client's own aggregation
 *  (stored in w->keyagg). Returns: KM_OK; KM_ERR_VERIFY (an enclave reported
 *  another key); an enclave's refusal; local errors. */
KM_WARN_UNUSED km_err km_rounds_keygen(km_rounds_world *w);

/** The SIGN_INIT body: the batch sealed under the session key for signing_id.
 *  Out: body: initialised and filled (caller frees, also on failure). */
KM_WARN_UNUSED km_err km_rounds_sign_init_body(km_rounds_world *w, const km_uuid *signing_id,
                                               const km_sign_item *items, size_t n, km_buf *body);
/** Approval signature (BIP-340, auth key of user u) over the batch. */
KM_WARN_UNUSED km_err km_rounds_approval(km_rounds_world *w, int u, const km_uuid *signing_id,
                                         const km_sign_item *items, size_t n, unsigned char sig[64]);

/** Records collected from enclaves: each is one vbytes-wrapped record. */
typedef struct km_rounds_records {
    uint16_t n;
    km_buf list; /* concatenated vbytes records */
} km_rounds_records;

/** Append the records of a response body (u16 n | vbytes*n) to r.
 *  Returns: KM_OK; KM_ERR_PARSE (malformed body); KM_ERR_RANGE; KM_ERR_NOMEM. */
KM_WARN_UNUSED km_err km_rounds_records_add(km_rounds_records *r, const km_buf *resp);
/** Body "signing_id | u16 n | records". Out: body: initialised and filled. */
KM_WARN_UNUSED km_err km_rounds_records_body(const km_uuid *signing_id, const km_rounds_records *r,
                                             km_buf *body);

/** The whole honest signing round: init on every enclave, approvals for users
 *  that require them, partial on every enclave, finalize on enclave 0; the
 *  opened result plaintext goes to result (initialised by this call).
 *  Returns: KM_OK when the round ran, the first enclave refusal (or a failed
 *           result opening) in *status; else a local or transport error. */
KM_WARN_UNUSED km_err km_rounds_sign(km_rounds_world *w, const km_uuid *signing_id, const km_sign_item *items,
                                     size_t n, km_buf *result, km_err *status);

/** The x-only key an item must verify under, computed by the client from its
 *  own knowledge (participants' public keys, subsets and tweaks).
 *  Returns: KM_OK; KM_ERR_NOT_FOUND (unknown subset); key aggregation errors. */
KM_WARN_UNUSED km_err km_rounds_expected_key(km_rounds_world *w, const km_sign_item *it,
                                             unsigned char out32[32]);

/** Adaptor secrets of an item, parallel to its points. */
typedef struct km_rounds_secrets {
    unsigned char t[KM_MAX_ADAPTOR_POINTS][32];
} km_rounds_secrets;

/** Check a signing result as a careful client does: every item present in
 *  order; regular signatures verify (libsecp256k1) under the expected key;
 *  pre-signatures do not verify as signatures, verify as pre-signatures,
 *  complete with the secret(s) into valid signatures from which the secret is
 *  extracted back. Every x(R) is noted (km_rounds_note_R).
 *  Returns: KM_OK; KM_ERR_PARSE (result malformed or not matching the items);
 *           KM_ERR_VERIFY; KM_ERR_NONCE_REUSE; other errors of the steps.
 *  In: secrets: parallel to items; may be NULL if no item has an adaptor. */
KM_WARN_UNUSED km_err km_rounds_check_result(km_rounds_world *w, const km_sign_item *items,
                                             const km_rounds_secrets *secrets, size_t n,
                                             const km_buf *result);

/** Open a sealed signing result with the client's session key.
 *  Out: pt: initialised; the plaintext. Returns: KM_OK; KM_ERR_DECRYPT; ... */
KM_WARN_UNUSED km_err km_rounds_open_result(km_rounds_world *w, const km_uuid *signing_id,
                                            const km_buf *sealed, km_buf *pt);

#endif
