/* support_flows.h — the client half of KeyMeld over HTTP: what the SDK does
 * against a running keymeld-gateway (tests/gateway/support_gateway.h).
 *
 * The gateway is untrusted: it relays ECIES blobs and session-sealed data it
 * cannot open. A careful client therefore
 *   1. verifies each enclave's attestation document (fresh nonce, pinned dev
 *      CA root, PCR0 = SHA-384 of the enclave binary, the advertised public
 *      key) before it encrypts anything to that key;
 *   2. makes the session secret itself, derives the session keys from it
 *      (keymeld/session_crypto.h) and signs every keygen/signing call with
 *      the session auth key (the gateway only knows its public half);
 *   3. recomputes the aggregate key from the participants' public keys and
 *      refuses a keygen result that names another key;
 *   4. seals signing items under the session data key and verifies every
 *      returned signature (and pre-signature) under the key it computed.
 * The crypto is the same as src/cli/rounds.c, which does it directly against
 * enclaves; a km_gwflow holds a km_rounds_world (without enclave processes)
 * so those functions are reused as they are.
 *
 * Every call that talks to the gateway returns KM_OK when an HTTP response
 * arrived, whatever its status: the caller judges out->status (tests assert
 * exact statuses and error codes). KM_ERR_IO means no response (gateway down,
 * connection refused, time limit). Only the wait functions go further: they
 * poll until a final state, retrying transport errors and 5xx answers until
 * their deadline, and verify what they return.
 *
 * THREADS: a flow's crypto state may be shared by threads that each use their
 * own km_client (argument c); result checks that record nonce points take the
 * flow's lock. A km_client is used by one thread at a time.
 *
 * SECRETS: the flow holds secret keys and the session secret in ordinary
 * memory (test code), wipes them in km_gwflow_free and never prints them.
 */
#ifndef KM_TESTS_GATEWAY_SUPPORT_FLOWS_H
#define KM_TESTS_GATEWAY_SUPPORT_FLOWS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/rounds.h"
#include "client/http.h"
#include "keymeld/proto_key.h"
#include "support_gateway.h"

/** Most participants / enclaves of one flow (the limits of km_rounds_world). */
#define KM_GWFLOW_MAX_USERS    KM_ROUNDS_MAX_USERS
#define KM_GWFLOW_MAX_ENCLAVES KM_ROUNDS_MAX_ENCLAVES

/** One keygen (and its signing sessions) seen from the client side. */
typedef struct km_gwflow {
    /** Client crypto state: ctx (borrowed from the harness), keygen_id,
     *  secret, session, users, pubkeys, seckeys, auth keys, flags, assign
     *  (init position of each user's enclave), tweak (BIP-86), keyagg (the
     *  client's own aggregation, set by km_gwflow_wait_keygen), seen_R.
     *  w.enc[i].pub is the attested key of init position i; no processes. */
    km_rounds_world w;
    const km_gwtest *t;                           /**< harness (borrowed) */
    km_client *client;                            /**< the flow's own client (c == NULL) */
    int n_enclaves;                               /**< enclaves used: gateway ids 0..n_enclaves-1 */
    uint32_t enclave_ids[KM_GWFLOW_MAX_ENCLAVES]; /**< gateway id of init position i */
    int attested;                                 /**< km_gwflow_attest succeeded */
    int keygen_done;                              /**< km_gwflow_wait_keygen verified the result */
    json_t *create_body;                          /**< the keygen create request, once built */
    json_t *reg_body[KM_GWFLOW_MAX_USERS];        /**< registration requests, once built */
    pthread_mutex_t lock;                         /**< guards w (detail, seen_R) in crypto calls */
    int lock_ok;                                  /**< lock was initialised */
    const char *detail;                           /**< static text of the last failure, or NULL */
} km_gwflow;

/** Make a flow: fresh keygen id and session secret (session keys derived),
 *  n_users random participants (secret keys, auth keys) assigned round robin
 *  over the gateway's enclaves 0..n_enclaves-1, BIP-86 default tweak, and a
 *  client for t->base_url. Nothing is sent.
 *  MUST be paired with km_gwflow_free (also on failure).
 *  Returns: KM_OK; KM_ERR_ARG (NULL, n_users not 1..KM_GWFLOW_MAX_USERS,
 *           n_enclaves not 1..min(t->n_enclaves, KM_GWFLOW_MAX_ENCLAVES),
 *           a flag other than 0/KM_FLAG_REQUIRE_APPROVAL); KM_ERR_RANDOM;
 *           KM_ERR_NOMEM; errors of key derivation and km_client_new.
 *  Out: f: zeroed and filled.
 *  In:  t: a started harness (borrowed; MUST outlive f; its ctx is used).
 *       flags: n_users participant flags, or NULL for none. */
KM_WARN_UNUSED km_err km_gwflow_new(km_gwflow *f, const km_gwtest *t, int n_users, int n_enclaves,
                                    const uint8_t *flags);
/** Wipe the secrets, free the session, client and lists. Safe on a zeroed
 *  flow and twice. */
void km_gwflow_free(km_gwflow *f);
/** Replace the flow's own client by a new one for f->t->base_url (after a
 *  gateway restart on another port). Returns: what km_client_new returns. */
KM_WARN_UNUSED km_err km_gwflow_reconnect(km_gwflow *f);

/** Verify the attestation of gateway enclave id as a client does:
 *  GET /api/v1/enclaves/{id}?nonce=<32 fresh bytes>, then km_attest_verify
 *  against the enclave's dev CA root (pinned from the harness, never from
 *  the gateway), PCR0 = SHA-384 of the enclave binary, the nonce, at most
 *  60 s old, and the public key the gateway advertises in "public_key",
 *  which MUST also equal the key the harness started the enclave with.
 *  Returns: KM_OK; KM_ERR_IO (no response, or no binary to hash); KM_ERR_STATE
 *           (status other than 200; *http_status says which); KM_ERR_PARSE
 *           (response shape); KM_ERR_ATTESTATION / KM_ERR_PARSE from
 *           km_attest_verify (the reason is printed); KM_ERR_VERIFY (the
 *           advertised key differs from the harness's).
 *  Args: t: harness; c: client.
 *  Out:  pub33: the verified enclave key (zeroed on failure); http_status: may be NULL.
 *  In:   id: gateway enclave id (harness index). */
KM_WARN_UNUSED km_err km_gwflow_attest_enclave(const km_gwtest *t, km_client *c, uint32_t id,
                                               unsigned char pub33[33], long *http_status);
/** Attest every enclave the flow uses (km_gwflow_attest_enclave) and keep
 *  the verified keys in f->w.enc[i].pub. Required before create_keygen.
 *  Returns: as km_gwflow_attest_enclave. Args: c: client or NULL (flow's). */
KM_WARN_UNUSED km_err km_gwflow_attest(km_gwflow *f, km_client *c);

/** POST /api/v1/keygen signed with the session auth key. The body is
 *  {keygen_id, session_auth_key, timeout_secs, max_signing_sessions,
 *  participants: [{user_id, enclave_id}], enclave_inits: [{enclave_id, blob}]},
 *  each blob the KEYGEN_INIT plaintext (session secret, attested enclave keys,
 *  users with their enclave positions, tweak) ECIES-sealed to one enclave
 *  with AD(keygen-init, keygen_id, enclave_pub). The first call builds the
 *  body and keeps it in f; later calls resend the identical bytes (a create
 *  is idempotent on identical content), ignoring timeout_secs and
 *  max_signing_sessions.
 *  Returns: KM_OK (response in out; 201 expected); KM_ERR_STATE (not
 *           attested); KM_ERR_IO (no response); local errors.
 *  Args: c: client or NULL (flow's). Out: out: MUST be empty. */
KM_WARN_UNUSED km_err km_gwflow_create_keygen(km_gwflow *f, km_client *c, uint32_t timeout_secs,
                                              uint32_t max_signing_sessions, km_client_response *out);
/** POST /api/v1/keygen/{id}/participants for participant u, signed with
 *  the participant's own auth key (proving it holds the key that will sign
 *  its approvals): {user_id, blob, auth_key, require_approval}, blob =
 *  ECIES of the 98-byte registration plaintext (session secret, secret key,
 *  auth key, flags) to the user's attested enclave with AD(register,
 *  keygen_id, user_id). Built once and kept in f; later calls resend it.
 *  Returns: KM_OK (response in out; 201 expected); KM_ERR_ARG (u); KM_ERR_STATE
 *           (not attested); KM_ERR_IO; local errors. */
KM_WARN_UNUSED km_err km_gwflow_register(km_gwflow *f, km_client *c, int u, km_client_response *out);
/** Poll GET /api/v1/keygen/{id}?wait=N (signed by the session key) until the
 *  keygen is completed or failed, or `seconds` passed; transport errors and
 *  5xx are retried. On completion open the result (AD keygen-result) and
 *  check: the listed public keys are exactly the participants' in order, and
 *  agg/output keys equal the client's own KeyAgg + tweak (kept in f->w.keyagg).
 *  Returns: KM_OK (completed and checked); KM_ERR_STATE (failed: out->status
 *           is 200 and out->json has the reason; or another 4xx answer);
 *           KM_ERR_NOT_FOUND (404); KM_ERR_RANGE (not final in time);
 *           KM_ERR_IO (no answer at the deadline); KM_ERR_DECRYPT / KM_ERR_PARSE /
 *           KM_ERR_VERIFY (the result is not what the client computed).
 *  Out: out: MUST be empty; the last response. */
KM_WARN_UNUSED km_err km_gwflow_wait_keygen(km_gwflow *f, km_client *c, unsigned seconds,
                                            km_client_response *out);
/** Attest, create, register everyone, wait and check (the whole keygen).
 *  Returns: KM_OK, or the first failure (a non-2xx answer is KM_ERR_STATE,
 *  with the status and body printed). */
KM_WARN_UNUSED km_err km_gwflow_keygen(km_gwflow *f, unsigned seconds);

/** Build the POST /api/v1/signing body: {signing_id, keygen_id, items,
 *  timeout_secs}, items = the batch sealed under the session data key with
 *  AD(signing-items, signing_id, keygen_id) (as km_rounds_sign_init_body).
 *  Keep it to resend identical bytes (creates are idempotent).
 *  Returns: KM_OK; local errors. Out: body: new JSON object (caller decrefs), NULL on failure. */
KM_WARN_UNUSED km_err km_gwflow_sign_body(km_gwflow *f, const km_uuid *signing_id, const km_sign_item *items,
                                          size_t n, uint32_t timeout_secs, json_t **body);
/** POST /api/v1/signing with body (from km_gwflow_sign_body, borrowed),
 *  signed with the session key. Returns: KM_OK (response in out; 201
 *  expected); KM_ERR_IO. */
KM_WARN_UNUSED km_err km_gwflow_sign_post(km_gwflow *f, km_client *c, const json_t *body,
                                          km_client_response *out);
/** km_gwflow_sign_body then km_gwflow_sign_post. Returns: as those. */
KM_WARN_UNUSED km_err km_gwflow_sign_create(km_gwflow *f, km_client *c, const km_uuid *signing_id,
                                            const km_sign_item *items, size_t n, uint32_t timeout_secs,
                                            km_client_response *out);
/** POST /api/v1/signing/{sid}/approve/{uid} {signature: sig64} signed with
 *  participant u's auth key. Returns: KM_OK (response in out); KM_ERR_ARG; KM_ERR_IO. */
KM_WARN_UNUSED km_err km_gwflow_approve_sig(km_gwflow *f, km_client *c, int u, const km_uuid *signing_id,
                                            const unsigned char sig64[64], km_client_response *out);
/** The honest approval of participant u (km_rounds_approval: BIP-340 by its
 *  auth key over km_sign_approval_digest of exactly these items) sent with
 *  km_gwflow_approve_sig. Returns: as km_gwflow_approve_sig; local errors. */
KM_WARN_UNUSED km_err km_gwflow_approve(km_gwflow *f, km_client *c, int u, const km_uuid *signing_id,
                                        const km_sign_item *items, size_t n, km_client_response *out);
/** Poll GET /api/v1/signing/{sid}?wait=N (session key) until completed or
 *  failed or `seconds` passed (transport errors and 5xx retried), then open
 *  the sealed result (AD signing-result) into plaintext. The caller checks
 *  it with km_gwflow_check_result.
 *  Returns: KM_OK (completed, opened); KM_ERR_STATE (failed: out->status is
 *           200 and out->json has the reason; or another 4xx answer);
 *           KM_ERR_NOT_FOUND (404); KM_ERR_RANGE (not final in time); KM_ERR_IO;
 *           KM_ERR_DECRYPT / KM_ERR_PARSE (the result does not open).
 *  Out: out: MUST be empty; the last response. plaintext: initialised;
 *       the opened result (empty unless KM_OK). */
KM_WARN_UNUSED km_err km_gwflow_wait_signing(km_gwflow *f, km_client *c, const km_uuid *signing_id,
                                             unsigned seconds, km_client_response *out, km_buf *plaintext);
/** Check an opened signing result (km_rounds_check_result under f->lock):
 *  every signature verifies under the client's expected key, pre-signatures
 *  adapt and extract, every x(R) is new to this flow (recorded in w.seen_R).
 *  Returns: KM_OK; KM_ERR_PARSE; KM_ERR_VERIFY; KM_ERR_NONCE_REUSE; ... (f->detail says what).
 *  In: secrets: parallel to items, or NULL when no item has adaptor points. */
KM_WARN_UNUSED km_err km_gwflow_check_result(km_gwflow *f, const km_sign_item *items,
                                             const km_rounds_secrets *secrets, size_t n,
                                             const km_buf *plaintext);

/** Does the gateway log or any enclave log contain one of the flow's secrets
 *  (session secret, its derived data and auth keys, participants' secret and
 *  auth keys), raw or as lower/upper-case hex?
 *  Returns: KM_OK (clean); KM_ERR_STATE (a secret found; f->detail says
 *  which); KM_ERR_IO (a log cannot be read). */
KM_WARN_UNUSED km_err km_gwflow_logs_clean(km_gwflow *f);

/** Does the gateway log or any enclave log of t contain these n (<= 32)
 *  secret bytes, raw or as lower/upper-case hex?
 *  Returns: 1 yes (also for n > 32: fail closed), 0 no, -1 a log cannot be read. */
int km_gwflow_secret_in_logs(const km_gwtest *t, const unsigned char *secret, size_t n);

/* ---- single-signer keys ------------------------------------------------- */

/** A single-signer key as its owner knows it. */
typedef struct km_gwflow_key {
    km_uuid key_id, user_id;
    unsigned char seckey[32], pub33[33], xonly[32]; /* the key (secret!) and its public forms */
    unsigned char auth_sec[32], auth_x[32];         /* the owner's auth key (secret!) */
    uint32_t enclave_id;                            /* from /keys/reserve */
    unsigned char enclave_pub[33];                  /* attested key of that enclave */
} km_gwflow_key;

/** A fresh random key, auth key and ids. Returns: KM_OK; KM_ERR_RANDOM; KM_ERR_CRYPTO.
 *  Out: k: filled. Wipe with km_gwflow_key_wipe. */
KM_WARN_UNUSED km_err km_gwflow_key_new(km_ctx *ctx, km_gwflow_key *k);
/** Wipe a key's secrets. */
void km_gwflow_key_wipe(km_gwflow_key *k);
/** POST /keys/reserve, attest the enclave named (which MUST advertise the
 *  same key as reserve), then POST /keys/import {key_id, user_id,
 *  enclave_id, blob, auth_key} signed by the auth key, blob = ECIES KEY_IMPORT
 *  plaintext (no approval flag) with AD(key-import, key_id, user_id).
 *  Returns: KM_OK (import response in out; 201 expected); KM_ERR_STATE
 *           (reserve did not answer 200, printed); KM_ERR_VERIFY (reserve
 *           named a key other than the attested one); attestation errors; KM_ERR_IO.
 *  Out: out: MUST be empty. */
KM_WARN_UNUSED km_err km_gwflow_key_import(const km_gwtest *t, km_client *c, km_gwflow_key *k,
                                           km_client_response *out);
/** POST /sign/single {request_id, key_id, user_id, blob} signed by the auth
 *  key; blob = ECIES KEY_SIGN plaintext (algo, now, msg, response_key) with
 *  AD(key-sign, key_id, request_id).
 *  Returns: KM_OK (response in out; 202 expected); KM_ERR_RANGE (msg length
 *           for algo); KM_ERR_IO; local errors.
 *  Out: out: MUST be empty; response_key32: fresh random, keep it to open the result.
 *  In:  request_id: fresh per signature; algo: KM_KEY_ALGO_*; msg: msg_len bytes
 *       (32 for ECDSA). */
KM_WARN_UNUSED km_err km_gwflow_key_sign(km_ctx *ctx, km_client *c, const km_gwflow_key *k,
                                         const km_uuid *request_id, uint8_t algo, const unsigned char *msg,
                                         size_t msg_len, unsigned char response_key32[32],
                                         km_client_response *out);
/** Poll GET /sign/single/{rid}?wait=N (auth key) until completed or failed
 *  or `seconds` passed, open the result with response_key32 and verify the
 *  signature (BIP-340 under the key's x-only key, or low-S ECDSA under pub33).
 *  Returns: KM_OK (sig64 verified); KM_ERR_STATE (failed, or another 4xx);
 *           KM_ERR_NOT_FOUND (404); KM_ERR_RANGE (timeout); KM_ERR_IO; KM_ERR_DECRYPT / KM_ERR_PARSE /
 * KM_ERR_VERIFY. Out: out: MUST be empty; sig64: the signature (zeroed unless KM_OK). */
KM_WARN_UNUSED km_err km_gwflow_key_wait(km_ctx *ctx, km_client *c, const km_gwflow_key *k,
                                         const km_uuid *request_id, uint8_t algo, const unsigned char *msg,
                                         size_t msg_len, const unsigned char response_key32[32],
                                         unsigned seconds, km_client_response *out, unsigned char sig64[64]);
/** DELETE /keys/{uid}/{kid} {timestamp, signature}, signature = BIP-340 by
 *  the auth key over km_key_delete_digest(key_id, now); the request is also
 *  signed by the auth key. Returns: KM_OK (response in out; 200 expected); KM_ERR_IO. */
KM_WARN_UNUSED km_err km_gwflow_key_delete(km_ctx *ctx, km_client *c, const km_gwflow_key *k,
                                           km_client_response *out);

/* ---- small helpers shared by the tests ----------------------------------- */

/** A regular item: fresh id, random 32-byte message, default tweak.
 *  Returns: KM_OK; KM_ERR_RANDOM. */
KM_WARN_UNUSED km_err km_gwflow_item(km_sign_item *it);
/** A single-point adaptor item with a fresh secret (kept in *secret).
 *  Returns: KM_OK; KM_ERR_RANDOM; KM_ERR_CRYPTO. */
KM_WARN_UNUSED km_err km_gwflow_adaptor_item(km_ctx *ctx, km_sign_item *it, unsigned char secret32[32]);
/** Monotonic milliseconds. */
uint64_t km_gwflow_now_ms(void);
/** Print a response (status and body) after a label, for failing tests. */
void km_gwflow_print(const char *label, const km_client_response *r);
/** The string field name of r->json, or NULL. */
const char *km_gwflow_str(const km_client_response *r, const char *name);

#endif
