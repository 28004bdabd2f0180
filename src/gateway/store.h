/* gateway/store.h — the gateway's durable state (SQLite).
 *
 * The gateway stores only ciphertext (ECIES blobs, sealed results) and public
 * routing data (ids, enclave addresses, pinned enclave public keys). Nothing
 * here can sign or decrypt; a stolen database reveals who signed with whom,
 * never a key.
 *
 * Durability: every function that returns KM_OK for a write has committed it
 * with synchronous=FULL, i.e. fsync'ed the WAL before returning. The HTTP layer
 * answers 2xx only after such a KM_OK, so an acknowledged write survives power
 * loss. (synchronous=NORMAL in WAL mode would only lose the last transactions
 * on power loss, never corrupt; but those lost transactions would be ones a
 * client was told had succeeded — e.g. an approval or a registration — which
 * is exactly the original's bug 19.)
 *
 * Every multi-row write runs in one BEGIN IMMEDIATE transaction; on any error
 * it is rolled back and the database is unchanged. Every statement is prepared
 * with bound parameters.
 *
 * Threads: a km_store handle is used by one thread at a time. Several handles
 * (threads, processes, gateways on one host) may share one file; exclusive
 * driving of a session between them is km_store_claim()'s job.
 *
 * Times are unix seconds supplied by the caller (testable, and one clock per
 * request). Ids are 16-byte UUIDs.
 */
#ifndef KEYMELD_GATEWAY_STORE_H
#define KEYMELD_GATEWAY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/cursor.h"
#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Schema version this code writes. A database with a higher version is refused. */
#define KM_STORE_SCHEMA_VERSION  3
#define KM_STORE_ID_LEN          16
#define KM_STORE_PUBKEY_LEN      33         /**< compressed secp256k1 point */
#define KM_STORE_XONLY_LEN       32         /**< BIP-340 x-only public key */
#define KM_STORE_APPROVAL_LEN    64         /**< BIP-340 signature */
#define KM_STORE_ANY_ENCLAVE     UINT32_MAX /**< km_store_keygen_list: no enclave filter */
#define KM_STORE_FINGERPRINT_LEN 32         /**< SHA-256 */
#define KM_STORE_REASON_MAX      128        /**< failure reasons are truncated to this (incl. NUL) */
#define KM_STORE_OWNER_MAX       64         /**< claim owner names (incl. NUL) */
#define KM_STORE_ADDRESS_MAX     256        /**< enclave addresses (incl. NUL) */
#define KM_STORE_BLOB_MAX        (1u << 24) /**< largest blob accepted (16 MiB) */

typedef struct km_store km_store;

typedef enum km_store_keygen_state {
    KM_KEYGEN_COLLECTING = 0, /**< waiting for registrations */
    KM_KEYGEN_FINALIZING = 1, /**< all registered; enclaves aggregating */
    KM_KEYGEN_COMPLETED = 2,  /**< a wallet: kept until explicitly deleted, never expires */
    KM_KEYGEN_FAILED = 3      /**< terminal, with a reason */
} km_store_keygen_state;

typedef enum km_store_signing_state {
    KM_SIGNING_COLLECTING_APPROVALS = 0,
    KM_SIGNING_NONCES = 1,
    KM_SIGNING_PARTIALS = 2,
    KM_SIGNING_FINALIZING = 3,
    KM_SIGNING_COMPLETED = 4,
    KM_SIGNING_FAILED = 5
} km_store_signing_state;

typedef enum km_store_keysign_state {
    KM_KEYSIGN_PENDING = 0,
    KM_KEYSIGN_COMPLETED = 1,
    KM_KEYSIGN_FAILED = 2
} km_store_keysign_state;

/** Registration flags (km_store_registration_put). Undefined bits are refused. */
#define KM_STORE_REG_REQUIRES_APPROVAL 0x01u /**< signings need this user's approval */
#define KM_STORE_REG_FLAGS_KNOWN       0x01u

/** Which kind of session a claim or a restart listing refers to. */
typedef enum km_store_kind { KM_STORE_KEYGEN = 0, KM_STORE_SIGNING = 1, KM_STORE_KEYSIGN = 2 } km_store_kind;

/** Per-signer round records of a signing session. */
typedef enum km_store_record_kind { KM_RECORD_NONCE = 1, KM_RECORD_PARTIAL = 2 } km_store_record_kind;

/* ---- opening -------------------------------------------------------------- */

/** Open (creating if absent) the store at path and migrate it to
 *  KM_STORE_SCHEMA_VERSION.
 *
 *  Migrations run in order, all inside one transaction: either the database
 *  reaches the current version or it is left untouched.
 *  Returns: KM_OK; KM_ERR_ARG (NULL out/path); KM_ERR_UNSUPPORTED (the file
 *           was written by a newer schema: refusing protects it from this older
 *           code); KM_ERR_IO (cannot open, not a database, WAL unavailable);
 *           KM_ERR_NOMEM.
 *  Out:     out: the handle; NULL on failure.
 *           errmsg: if not NULL, a NUL-terminated explanation on failure
 *           (e.g. "database schema version 7 is newer than supported 1").
 *  In:      path: file name; errmsg_len: size of errmsg (0 allowed).
 */
km_err km_store_open(km_store **out, const char *path, char *errmsg, size_t errmsg_len) KM_WARN_UNUSED;

/** Close the handle; an open transaction (only possible after a crash of the
 *  caller's logic) is rolled back. NULL is allowed. */
void km_store_close(km_store *st);

/** Run PRAGMA integrity_check and foreign_key_check.
 *  Returns: KM_OK if both report nothing; KM_ERR_IO otherwise. */
km_err km_store_integrity_check(km_store *st) KM_WARN_UNUSED;

/** Out: version: the schema version recorded in the file. */
km_err km_store_schema_version(km_store *st, int *version) KM_WARN_UNUSED;

/* ---- enclaves ------------------------------------------------------------- */

typedef struct km_store_enclave {
    uint32_t id;
    char address[KM_STORE_ADDRESS_MAX];
    unsigned char pubkey[KM_STORE_PUBKEY_LEN];
    unsigned char fingerprint[KM_STORE_FINGERPRINT_LEN];
} km_store_enclave;

/** Record an enclave with its pinned public key.
 *
 *  The key is pinned: re-putting the same enclave with the same key is a no-op
 *  success (the address may change: enclaves move), a different key is refused.
 *  Returns: KM_OK; KM_ERR_DUPLICATE (a different key is pinned); KM_ERR_ARG.
 */
km_err km_store_enclave_put(km_store *st, const km_store_enclave *e) KM_WARN_UNUSED;

/** Read an enclave's address and pinned key.
 *  Returns: KM_OK; KM_ERR_NOT_FOUND; KM_ERR_ARG (NULL st/e).
 *  Out:     e: filled; zeroed on failure. */
km_err km_store_enclave_get(km_store *st, uint32_t id, km_store_enclave *e) KM_WARN_UNUSED;

/** Every registered enclave, ordered by id.
 *
 *  The cap/n contract of every listing in this file: if the rows fit
 *  (total <= cap) they are written to out[0..total) and *n = total; if not,
 *  KM_ERR_BUFFER_SMALL with *n = total and out untouched (call again with a
 *  bigger buffer; out may be NULL with cap 0 to ask only for the count). The
 *  count and the rows come from one read snapshot.
 *  Returns: KM_OK; KM_ERR_BUFFER_SMALL; KM_ERR_ARG (NULL st/n, NULL out with cap > 0);
 *           KM_ERR_IO.
 *  Out:     out[0..*n): filled; n: the total (0 on errors other than BUFFER_SMALL).
 *  In:      cap: number of elements out can hold.
 */
km_err km_store_enclave_list(km_store *st, km_store_enclave *out, size_t cap, size_t *n) KM_WARN_UNUSED;

/* ---- keygen sessions ------------------------------------------------------ */

/** One coordinator-encrypted init blob, for one enclave of the session. */
typedef struct km_store_init_blob {
    uint32_t enclave_id;
    const unsigned char *blob;
    size_t blob_len;
} km_store_init_blob;

/** Participant user_id is served by enclave_id. Fixed at creation, never
 *  recomputed (the original lost these on restart: its bug 26). */
typedef struct km_store_assignment {
    unsigned char user_id[KM_STORE_ID_LEN];
    uint32_t enclave_id;
} km_store_assignment;

typedef struct km_store_keygen_new {
    unsigned char id[KM_STORE_ID_LEN];
    int64_t created_at;
    int64_t expires_at;
    const km_store_init_blob *inits; /**< n_inits >= 1, distinct enclave ids */
    size_t n_inits;
    const km_store_assignment *assignments; /**< n_assignments >= 1, distinct users,
                                                 each enclave among the inits */
    size_t n_assignments;
    /** The session's auth public key (BIP-340 x-only): requests about this
     *  session are signed with its secret. Must parse as an x-only key.
     *  Immutable once stored (a trigger refuses any update). */
    unsigned char session_auth_key[KM_STORE_XONLY_LEN];
    uint32_t max_signings; /**< signing sessions allowed on the wallet; 0 = unlimited */
} km_store_keygen_new;

/** A keygen as read back. Owns its buffers: release with km_store_keygen_clear. */
typedef struct km_store_keygen {
    unsigned char id[KM_STORE_ID_LEN];
    km_store_keygen_state state;
    char reason[KM_STORE_REASON_MAX]; /**< "" unless failed */
    int64_t created_at;
    int64_t expires_at; /**< 0 when completed: wallets do not expire */
    km_buf result;      /**< the sealed result; empty unless completed */
    /** As created. All zero for a keygen created under schema v1: not a valid
     *  x-only key, so no request can authenticate against it (fails closed). */
    unsigned char session_auth_key[KM_STORE_XONLY_LEN];
    uint32_t max_signings; /**< 0 = unlimited (also for v1 keygens) */
} km_store_keygen;

/** Create a keygen session in state collecting, with its init blobs and its
 *  participant assignment, in one transaction.
 *
 *  Idempotent: the same id with the same content (times, blobs, assignment,
 *  session auth key, max_signings) returns KM_OK without writing; the same id
 *  with other content is refused.
 *  Returns: KM_OK; KM_ERR_DUPLICATE; KM_ERR_NOT_FOUND (an enclave id is not
 *           registered); KM_ERR_ARG (empty/duplicate lists, an assignment to an
 *           enclave without an init blob, expires_at <= created_at, blob too big,
 *           session_auth_key not a valid x-only public key).
 */
km_err km_store_keygen_create(km_store *st, const km_store_keygen_new *kg) KM_WARN_UNUSED;

/** Read a keygen.
 *  Returns: KM_OK; KM_ERR_NOT_FOUND; KM_ERR_ARG.
 *  Out: out: filled; on failure zeroed (buffers empty). Call km_store_keygen_clear after. */
km_err km_store_keygen_get(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                           km_store_keygen *out) KM_WARN_UNUSED;
void km_store_keygen_clear(km_store_keygen *kg);

/** Move a keygen to a new state.
 *
 *  Legal: collecting -> finalizing; collecting|finalizing -> failed (reason
 *  required, non-empty). Completion carries the result and goes through
 *  km_store_keygen_complete. Setting the current state again is a no-op success
 *  (retries are safe). Anything else leaves the row unchanged.
 *  Returns: KM_OK; KM_ERR_STATE (illegal); KM_ERR_NOT_FOUND; KM_ERR_ARG.
 */
km_err km_store_keygen_set_state(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                 km_store_keygen_state to, const char *reason, int64_t now) KM_WARN_UNUSED;

/** finalizing -> completed, storing the sealed result and clearing expires_at.
 *  Repeating with the same result is a no-op success; a different result is
 *  KM_ERR_DUPLICATE. Returns also KM_ERR_STATE, KM_ERR_NOT_FOUND, KM_ERR_ARG. */
km_err km_store_keygen_complete(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                const unsigned char *result, size_t result_len, int64_t now) KM_WARN_UNUSED;

/** Out: blob: the init blob for enclave_id (replaced). Returns KM_OK or KM_ERR_NOT_FOUND. */
km_err km_store_keygen_init_get(km_store *st, const unsigned char id[KM_STORE_ID_LEN], uint32_t enclave_id,
                                km_buf *blob) KM_WARN_UNUSED;

/** The assignment, ordered by user id.
 *  Out: out[0..*n): filled; *n = total count. If cap < total, KM_ERR_BUFFER_SMALL
 *       with *n = total and out untouched. */
km_err km_store_keygen_assignments(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                   km_store_assignment *out, size_t cap, size_t *n) KM_WARN_UNUSED;

/** Keygens that have an init blob for enclave_id (any keygen if
 *  KM_STORE_ANY_ENCLAVE) and whose state is in states, ordered by created_at
 *  then id.
 *
 *  For an enclave that restarted (and lost its memory): the gateway re-sends
 *  the init, registrations and finalize of its collecting, finalizing and
 *  completed keygens.
 *  Returns: KM_OK; KM_ERR_BUFFER_SMALL; KM_ERR_ARG (NULL st/n, NULL ids with
 *           cap > 0, states 0 or with bits other than (1u << km_store_keygen_state)).
 *  Out:     ids[0..*n): keygen ids; n: total (cap/n contract of km_store_enclave_list).
 *  In:      enclave_id: filter or KM_STORE_ANY_ENCLAVE; states: bitmask of
 *           (1u << KM_KEYGEN_...); cap: elements ids can hold.
 */
km_err km_store_keygen_list(km_store *st, uint32_t enclave_id, uint32_t states,
                            unsigned char (*ids)[KM_STORE_ID_LEN], size_t cap, size_t *n) KM_WARN_UNUSED;

/** Delete a keygen and everything that references it — init blobs,
 *  assignments, registrations, its signing sessions with their records and
 *  approvals — in one transaction, in any state.
 *
 *  Completed keygens are wallets: nothing else (no expiry, no purge) ever
 *  removes them; this is the only way, and it is irreversible: the caller
 *  MUST have authorised it. Single-signer keys naming the keygen as their
 *  origin are kept (their origin is a record, not a reference).
 *  Returns: KM_OK; KM_ERR_NOT_FOUND (no such keygen: nothing written); KM_ERR_ARG.
 */
km_err km_store_keygen_delete(km_store *st, const unsigned char id[KM_STORE_ID_LEN]) KM_WARN_UNUSED;

/* ---- registrations -------------------------------------------------------- */

/** Store a participant's ECIES registration blob, auth key and flags (and,
 *  if known, the participant record the enclave returned; else NULL/0).
 *
 *  Only while the keygen is collecting; only for an assigned user. Idempotent
 *  on equal blob, auth key and flags (the record is not compared: it may be
 *  set later); any difference for the same user is KM_ERR_DUPLICATE. The auth
 *  key and flags are immutable once stored.
 *  Returns: KM_OK; KM_ERR_STATE; KM_ERR_NOT_FOUND (keygen or assignment
 *           missing); KM_ERR_DUPLICATE; KM_ERR_ARG (also: auth_key not a valid
 *           x-only key, flags with bits outside KM_STORE_REG_FLAGS_KNOWN).
 *  In:      auth_key: the participant's BIP-340 x-only auth public key (32 bytes);
 *           flags: KM_STORE_REG_REQUIRES_APPROVAL or 0.
 */
km_err km_store_registration_put(km_store *st, const unsigned char keygen_id[KM_STORE_ID_LEN],
                                 const unsigned char user_id[KM_STORE_ID_LEN], const unsigned char *blob,
                                 size_t blob_len, const unsigned char *record, size_t record_len,
                                 const unsigned char auth_key[KM_STORE_XONLY_LEN], uint8_t flags,
                                 int64_t now) KM_WARN_UNUSED;

/** Set the participant record (once; equal repeat is OK, different is KM_ERR_DUPLICATE). */
km_err km_store_registration_set_record(km_store *st, const unsigned char keygen_id[KM_STORE_ID_LEN],
                                        const unsigned char user_id[KM_STORE_ID_LEN],
                                        const unsigned char *record, size_t record_len) KM_WARN_UNUSED;

/** Out: blob, record (either may be NULL to skip; record empty if not yet set).
 *  Returns KM_OK or KM_ERR_NOT_FOUND. */
km_err km_store_registration_get(km_store *st, const unsigned char keygen_id[KM_STORE_ID_LEN],
                                 const unsigned char user_id[KM_STORE_ID_LEN], km_buf *blob,
                                 km_buf *record) KM_WARN_UNUSED;

/** A registered participant's auth key and flags.
 *  Returns: KM_OK; KM_ERR_NOT_FOUND (not registered, or no such keygen); KM_ERR_ARG.
 *  Out:     auth_key: 32 bytes (all zero for a v1 registration: fails closed);
 *           flags: registration flags. Both zeroed on failure; neither may be NULL.
 */
km_err km_store_registration_info(km_store *st, const unsigned char keygen_id[KM_STORE_ID_LEN],
                                  const unsigned char user_id[KM_STORE_ID_LEN],
                                  unsigned char auth_key[KM_STORE_XONLY_LEN], uint8_t *flags) KM_WARN_UNUSED;

/** Registered user ids in user-id order; same cap/n contract as
 *  km_store_keygen_assignments. */
km_err km_store_registration_list(km_store *st, const unsigned char keygen_id[KM_STORE_ID_LEN],
                                  unsigned char (*users)[KM_STORE_ID_LEN], size_t cap,
                                  size_t *n) KM_WARN_UNUSED;

/* ---- signing sessions ----------------------------------------------------- */

typedef struct km_store_signing_new {
    unsigned char id[KM_STORE_ID_LEN];
    unsigned char keygen_id[KM_STORE_ID_LEN];
    int64_t created_at;
    int64_t expires_at;
    const unsigned char *items; /**< the encoded signing items (opaque here) */
    size_t items_len;
    int needs_approvals; /**< 0: start in nonces; 1: in collecting_approvals */
    unsigned max_active; /**< 0: no cap; else refuse while the keygen has this many sessions not final */
} km_store_signing_new;

typedef struct km_store_signing {
    unsigned char id[KM_STORE_ID_LEN];
    unsigned char keygen_id[KM_STORE_ID_LEN];
    km_store_signing_state state;
    char reason[KM_STORE_REASON_MAX];
    int64_t created_at;
    int64_t expires_at; /**< 0 when completed */
    km_buf items;
    km_buf result; /**< sealed result; empty unless completed */
} km_store_signing;

/** Create a signing session for a completed keygen. Idempotent like
 *  km_store_keygen_create.
 *
 *  The keygen's max_signings quota and the cap s->max_active on its
 *  sessions in progress are enforced here, in the creating transaction, so
 *  two gateways (or two requests) racing on the last allowed session cannot
 *  both get it. An identical retry of an existing session is KM_OK and does
 *  not count again.
 *  Returns: KM_OK; KM_ERR_DUPLICATE; KM_ERR_NOT_FOUND (no such keygen);
 *           KM_ERR_STATE (keygen not completed); KM_ERR_RANGE (quota used up:
 *           km_store_signing_count(keygen) == max_signings != 0, or
 *           max_active sessions are not final; km_store_signing_active_count
 *           tells which); KM_ERR_ARG. */
km_err km_store_signing_create(km_store *st, const km_store_signing_new *s) KM_WARN_UNUSED;
/** Read a signing session.
 *  Returns: KM_OK; KM_ERR_NOT_FOUND; KM_ERR_ARG.
 *  Out: out: filled; zeroed on failure. Call km_store_signing_clear after. */
km_err km_store_signing_get(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                            km_store_signing *out) KM_WARN_UNUSED;
void km_store_signing_clear(km_store_signing *s);

/** Number of signing sessions ever created for a keygen (the quota counter).
 *
 *  A persistent counter, not a count of rows: it never decreases, so the
 *  quota holds even if old sessions are removed some day.
 *  Returns: KM_OK; KM_ERR_NOT_FOUND (no such keygen); KM_ERR_ARG.
 *  Out:     n: the count; 0 on failure.
 */
km_err km_store_signing_count(km_store *st, const unsigned char keygen_id[KM_STORE_ID_LEN],
                              size_t *n) KM_WARN_UNUSED;

/** Number of a keygen's signing sessions that are not final (collecting
 *  approvals, nonces, partials, finalizing), counted up to limit.
 *
 *  Cost: proportional to the result (a partial index of active sessions),
 *  not to the keygen's history. A read on its own; km_store_signing_create
 *  runs it inside its transaction to enforce a cap.
 *  Returns: KM_OK; KM_ERR_ARG; KM_ERR_IO. A keygen that does not exist
 *           has 0.
 *  Out:     n: min(count, limit); 0 on failure.
 */
km_err km_store_signing_active_count(km_store *st, const unsigned char keygen_id[KM_STORE_ID_LEN],
                                     size_t limit, size_t *n) KM_WARN_UNUSED;

/** Move a signing session.
 *
 *  Legal: collecting_approvals -> nonces -> partials -> finalizing; partials|
 *  finalizing -> nonces (an enclave restarted: the nonce round starts over, so
 *  the stored nonce and partial records are deleted in the same transaction —
 *  a partial signature must never be combined with nonces of another round);
 *  any non-terminal -> failed (reason required). Same state again: no-op.
 *  Returns: KM_OK; KM_ERR_STATE; KM_ERR_NOT_FOUND; KM_ERR_ARG. */
km_err km_store_signing_set_state(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                  km_store_signing_state to, const char *reason, int64_t now) KM_WARN_UNUSED;

/** Start the nonce round again: from nonces, partials or finalizing back to
 *  nonces, deleting every stored nonce and partial record of the session in
 *  the same transaction (the coordinator does this after an enclave lost the
 *  round, once it has cleared the session on every enclave).
 *  Returns: KM_OK; KM_ERR_STATE (collecting approvals, or terminal);
 *           KM_ERR_NOT_FOUND; KM_ERR_ARG. */
km_err km_store_signing_restart_round(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                      int64_t now) KM_WARN_UNUSED;

/** finalizing -> completed with the sealed result (same contract as km_store_keygen_complete). */
km_err km_store_signing_complete(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                 const unsigned char *result, size_t result_len, int64_t now) KM_WARN_UNUSED;

/** Store one signer's nonce (state nonces) or partial (state partials) record.
 *  Idempotent on equal blob; different blob -> KM_ERR_DUPLICATE; wrong state ->
 *  KM_ERR_STATE. */
km_err km_store_signing_put_record(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                   km_store_record_kind kind, const unsigned char user_id[KM_STORE_ID_LEN],
                                   const unsigned char *blob, size_t blob_len) KM_WARN_UNUSED;

/** One stored record. blob is owned; free with km_store_records_clear. */
typedef struct km_store_record {
    unsigned char user_id[KM_STORE_ID_LEN];
    km_buf blob;
} km_store_record;

/** Records of one kind in user-id order; cap/n contract as km_store_keygen_assignments.
 *  Out: out[0..cap) are (re)initialised empty first, so they MUST NOT hold
 *       buffers the caller still owns; on KM_OK release out[0..*n) with
 *       km_store_records_clear. On any error nothing is left allocated. */
km_err km_store_signing_records(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                km_store_record_kind kind, km_store_record *out, size_t cap,
                                size_t *n) KM_WARN_UNUSED;
void km_store_records_clear(km_store_record *recs, size_t n);

/** Store a whole round's records and advance the session, in ONE
 *  transaction: nonce records in state nonces, then nonces -> partials;
 *  partial records in state partials, then partials -> finalizing. A round's
 *  outcome is thus either entirely on disk (with the state that says so) or
 *  not at all, and the round costs one fsync instead of one per record.
 *  Repeating it after the commit (a retry) finds the next state and equal
 *  records: KM_OK, nothing written.
 *  Returns: KM_OK; KM_ERR_DUPLICATE (a record differs from a stored one: the
 *           enclave produced another round; nothing written); KM_ERR_STATE
 *           (any other state); KM_ERR_NOT_FOUND; KM_ERR_ARG (empty blob, NULL).
 *  In: recs: n records (user_id and blob; blob not taken over). */
km_err km_store_signing_put_records(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                    km_store_record_kind kind, const km_store_record *recs, size_t n,
                                    int64_t now) KM_WARN_UNUSED;

/* ---- approvals ------------------------------------------------------------ */

/** Store a user's approval signature (only in collecting_approvals; the caller
 *  has verified it). Idempotent on equal signature; another signature is
 *  KM_ERR_DUPLICATE.
 *  Returns: KM_OK; KM_ERR_STATE; KM_ERR_NOT_FOUND; KM_ERR_DUPLICATE;
 *           KM_ERR_ARG (sig_len != KM_STORE_APPROVAL_LEN). */
km_err km_store_approval_put(km_store *st, const unsigned char signing_id[KM_STORE_ID_LEN],
                             const unsigned char user_id[KM_STORE_ID_LEN], const unsigned char *sig,
                             size_t sig_len, int64_t now) KM_WARN_UNUSED;
/** Out: sig (may be NULL to test presence). Returns KM_OK or KM_ERR_NOT_FOUND. */
km_err km_store_approval_get(km_store *st, const unsigned char signing_id[KM_STORE_ID_LEN],
                             const unsigned char user_id[KM_STORE_ID_LEN], km_buf *sig) KM_WARN_UNUSED;
/** Out: n: number of approvals stored for the session (0 if none or unknown id). */
km_err km_store_approval_count(km_store *st, const unsigned char signing_id[KM_STORE_ID_LEN],
                               size_t *n) KM_WARN_UNUSED;

/** The approvals of a signing session in user-id order (the coordinator
 *  relays them to the enclaves, which verify them again).
 *  Returns: KM_OK; KM_ERR_BUFFER_SMALL; KM_ERR_NOT_FOUND (no such session);
 *           KM_ERR_ARG (NULL users/sigs with cap > 0); KM_ERR_IO (a stored
 *           signature is not 64 bytes).
 *  Out:     users[i], sigs[i] for i < *n: user id and its 64-byte signature;
 *           n: total (cap/n contract of km_store_enclave_list).
 */
km_err km_store_approval_list(km_store *st, const unsigned char signing_id[KM_STORE_ID_LEN],
                              unsigned char (*users)[KM_STORE_ID_LEN],
                              unsigned char (*sigs)[KM_STORE_APPROVAL_LEN], size_t cap,
                              size_t *n) KM_WARN_UNUSED;

/* ---- single-signer keys and their sign requests --------------------------- */

typedef struct km_store_key {
    unsigned char key_id[KM_STORE_ID_LEN];
    unsigned char user_id[KM_STORE_ID_LEN];
    uint32_t enclave_id;
    int64_t created_at;
    km_buf import_blob; /**< owned on output; ignored on input (see put) */
    /** The owner's BIP-340 x-only auth public key; all zero for a v1 key (fails closed). */
    unsigned char auth_key[KM_STORE_XONLY_LEN];
    int has_origin;                               /**< 1 if origin_keygen is set, else 0 */
    unsigned char origin_keygen[KM_STORE_ID_LEN]; /**< the keygen the key came from; zero if none */
} km_store_key;

/** Store an imported key (ECIES blob to its enclave).
 *
 *  Idempotent: equal user, enclave, blob, auth key and origin is KM_OK
 *  without writing (created_at is not compared: a retry reads a new clock);
 *  any difference is KM_ERR_DUPLICATE. The origin keygen is provenance only:
 *  it need not exist and the key outlives it.
 *  Returns: KM_OK; KM_ERR_DUPLICATE; KM_ERR_NOT_FOUND (enclave not registered);
 *           KM_ERR_ARG (NULL/empty/too big blob, auth_key not a valid x-only
 *           key, has_origin not 0 or 1).
 *  In:      k: key_id, user_id, enclave_id, created_at, auth_key, has_origin,
 *           origin_keygen (ignored unless has_origin); k->import_blob is ignored.
 *           blob, blob_len: the import blob. */
km_err km_store_key_put(km_store *st, const km_store_key *k, const unsigned char *blob,
                        size_t blob_len) KM_WARN_UNUSED;
/** Returns: KM_OK; KM_ERR_NOT_FOUND.
 *  Out: out: filled, import_blob owned by the caller (km_buf_free); zeroed on failure. */
km_err km_store_key_get(km_store *st, const unsigned char key_id[KM_STORE_ID_LEN],
                        km_store_key *out) KM_WARN_UNUSED;
/** Delete a key and its sign requests. Returns KM_OK or KM_ERR_NOT_FOUND. */
km_err km_store_key_delete(km_store *st, const unsigned char key_id[KM_STORE_ID_LEN]) KM_WARN_UNUSED;

/** A user's keys, ordered by created_at then key_id.
 *  Returns: KM_OK; KM_ERR_BUFFER_SMALL; KM_ERR_ARG (NULL st/user_id/n, NULL out with cap > 0).
 *  Out:     out[0..*n): every field but import_blob, which is left empty (owns
 *           nothing; km_buf_free is harmless); n: total (cap/n contract of
 *           km_store_enclave_list). An unknown user has no keys: KM_OK, *n = 0.
 */
km_err km_store_key_list_by_user(km_store *st, const unsigned char user_id[KM_STORE_ID_LEN],
                                 km_store_key *out, size_t cap, size_t *n) KM_WARN_UNUSED;

/** Ids of the keys held by an enclave, ordered by created_at then key_id
 *  (to re-import them after the enclave restarted).
 *  Returns: KM_OK; KM_ERR_BUFFER_SMALL; KM_ERR_ARG.
 *  Out:     key_ids[0..*n); n: total (cap/n contract of km_store_enclave_list).
 */
km_err km_store_key_list_by_enclave(km_store *st, uint32_t enclave_id,
                                    unsigned char (*key_ids)[KM_STORE_ID_LEN], size_t cap,
                                    size_t *n) KM_WARN_UNUSED;

/** Create a pending sign request for a key. Idempotent on equal content. */
km_err km_store_keysign_create(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                               const unsigned char key_id[KM_STORE_ID_LEN], const unsigned char *request,
                               size_t request_len, int64_t created_at, int64_t expires_at) KM_WARN_UNUSED;
/** Read a sign request.
 *  Returns: KM_OK; KM_ERR_NOT_FOUND; KM_ERR_ARG.
 *  Out: state; reason: KM_STORE_REASON_MAX bytes or NULL ("" unless failed);
 *       result: replaced by the sealed signature (empty unless completed), or NULL. */
km_err km_store_keysign_get(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                            km_store_keysign_state *state, char *reason, km_buf *result) KM_WARN_UNUSED;
/** The stored request of a key sign request, for the coordinator to send.
 *  Returns: KM_OK; KM_ERR_NOT_FOUND; KM_ERR_ARG (NULL st/id).
 *  Out:     each may be NULL to skip. key_id: 16 bytes; request: replaced by the
 *           request body; created_at; expires_at (0 once completed). On failure
 *           key_id is zeroed, request emptied, the times 0.
 */
km_err km_store_keysign_get_request(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                                    unsigned char key_id[KM_STORE_ID_LEN], km_buf *request,
                                    int64_t *created_at, int64_t *expires_at) KM_WARN_UNUSED;

/** pending -> completed (result != NULL: repeat with the same result is a no-op,
 *  another is KM_ERR_DUPLICATE) or pending -> failed (result NULL, reason
 *  required; failing a failed request again is a no-op).
 *  Returns: KM_OK; KM_ERR_STATE (already completed/failed the other way);
 *           KM_ERR_NOT_FOUND; KM_ERR_ARG. */
km_err km_store_keysign_finish(km_store *st, const unsigned char id[KM_STORE_ID_LEN],
                               const unsigned char *result, size_t result_len, const char *reason,
                               int64_t now) KM_WARN_UNUSED;

/* ---- request-replay cache ------------------------------------------------- */

/** Remember (auth_pubkey, nonce) until expires_at.
 *  Returns: KM_OK (first sight); KM_ERR_DUPLICATE (replay: refuse the request);
 *           KM_ERR_ARG (nonce empty or > 64 bytes). */
km_err km_store_replay_insert(km_store *st, const unsigned char auth_pubkey[KM_STORE_PUBKEY_LEN],
                              const unsigned char *nonce, size_t nonce_len, int64_t seen_at,
                              int64_t expires_at) KM_WARN_UNUSED;
/** km_store_replay_insert without waiting for the disk (synchronous=NORMAL
 *  for this one commit). The entry reaches the disk with the next durable
 *  commit of any handle on this file, before that commit (the WAL is
 *  ordered). So if the request's effect is then written durably to the same
 *  database, the nonce is on disk by the time the effect is; only a request
 *  that changed nothing can lose its entry, and only to a power cut. Same
 *  returns as km_store_replay_insert. */
km_err km_store_replay_insert_relaxed(km_store *st, const unsigned char auth_pubkey[KM_STORE_PUBKEY_LEN],
                                      const unsigned char *nonce, size_t nonce_len, int64_t seen_at,
                                      int64_t expires_at) KM_WARN_UNUSED;
/** Delete entries with expires_at <= now. Out: removed (may be NULL). */
km_err km_store_replay_purge(km_store *st, int64_t now, size_t *removed) KM_WARN_UNUSED;

/* ---- statistics ------------------------------------------------------------ */

/** Row counts for metrics and health checks. */
typedef struct km_store_stats {
    size_t keygens[4];  /**< per km_store_keygen_state */
    size_t signings[6]; /**< per km_store_signing_state */
    size_t keysigns[3]; /**< per km_store_keysign_state */
    size_t keys;
    size_t replay_entries; /**< including expired ones not yet purged */
    int64_t db_bytes;      /**< page_count * page_size of the main file's snapshot */
} km_store_stats;

/** Read the statistics, all from one read snapshot.
 *
 *  (Named _get because the type already has the name km_store_stats.)
 *  Returns: KM_OK; KM_ERR_ARG; KM_ERR_IO (also: a row with an unknown state).
 *  Out:     out: filled; zeroed on failure.
 */
km_err km_store_stats_get(km_store *st, km_store_stats *out) KM_WARN_UNUSED;

/** Make this handle's commits durable (1: synchronous=FULL, the default:
 *  KM_OK means on disk) or not (0: synchronous=NORMAL in WAL mode: the commit
 *  is in the log and reaches the disk with the next durable commit of any
 *  handle, in order; only a power cut can lose it, never corrupt the file).
 *  For writes whose loss is harmless because they are redone (the
 *  coordinator's leases and intermediate round records); anything a client is
 *  told about MUST be written durably. Restoring durability failing makes the
 *  handle refuse every later write.
 *  Returns: KM_OK; KM_ERR_IO; KM_ERR_ARG. */
km_err km_store_set_durable(km_store *st, int durable) KM_WARN_UNUSED;

/** Put every earlier commit of every handle on disk: one durable commit that
 *  always writes (a counter row), so the log is synced even when nothing
 *  else changed. For answering a client after relaxed commits.
 *  Returns: KM_OK (on disk); KM_ERR_IO; KM_ERR_ARG. */
km_err km_store_sync(km_store *st) KM_WARN_UNUSED;

/* ---- restart, expiry, leases ---------------------------------------------- */

typedef struct km_store_session_ref {
    km_store_kind kind;
    unsigned char id[KM_STORE_ID_LEN];
    int state; /**< the kind's state enum */
} km_store_session_ref;

/** Every non-terminal session of every kind (keygens, signings, key sign
 *  requests), for a restarting gateway; cap/n contract as above. */
km_err km_store_list_nonterminal(km_store *st, km_store_session_ref *out, size_t cap,
                                 size_t *n) KM_WARN_UNUSED;

/** Mark every non-terminal session with expires_at <= now as failed with
 *  reason "expired", in one transaction. Completed keygens have no expiry and
 *  are never touched; nothing is deleted. Out: n_failed (may be NULL). */
km_err km_store_expire(km_store *st, int64_t now, size_t *n_failed) KM_WARN_UNUSED;

/** Claim a non-terminal session for owner until lease_until: an atomic
 *  compare-and-set that succeeds if the session is unclaimed, already claimed
 *  by owner (renewal), or its lease ended (lease_until <= now).
 *  Several gateways on one database thus never drive one session at once.
 *  Returns: KM_OK; KM_ERR_STATE (held by another owner, or session terminal);
 *           KM_ERR_NOT_FOUND; KM_ERR_ARG (owner empty/too long, lease_until <= now). */
km_err km_store_claim(km_store *st, km_store_kind kind, const unsigned char id[KM_STORE_ID_LEN],
                      const char *owner, int64_t now, int64_t lease_until) KM_WARN_UNUSED;
/** Give up owner's claim (no-op if not held by owner). */
km_err km_store_release(km_store *st, km_store_kind kind, const unsigned char id[KM_STORE_ID_LEN],
                        const char *owner) KM_WARN_UNUSED;

#ifdef __cplusplus
}
#endif
#endif
