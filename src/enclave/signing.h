/* signing.h — an enclave's view of one signing session.
 *
 * Lifecycle (each step at most once; a retry with identical input returns the
 * cached answer, different input is refused):
 *   SIGN_INIT     items decrypted, units laid out, nonces generated for the
 *                 local signers -> nonce records
 *   SIGN_APPROVE  approvals of local participants that require them
 *   SIGN_PARTIAL  all nonce records -> aggregate nonces computed here,
 *                 partial signatures of local signers (secret nonces consumed)
 *   SIGN_FINALIZE all nonce and partial records -> every partial verified,
 *                 aggregated, final (pre-)signature verified -> sealed result
 */
#ifndef KM_ENCLAVE_SIGNING_H
#define KM_ENCLAVE_SIGNING_H

#include "enclave/sessions.h"
#include "keymeld/proto_sign.h"

typedef struct km_sign_unit {
    uint32_t item;                 /* index of its item */
    uint16_t variant;              /* Or: which point; else 0 */
    int has_T;                     /* adaptor point present */
    unsigned char T[33];           /* the adaptor point folded into this unit's nonce */
    const km_musig_keyagg *keyagg; /* owned by the keygen or the state's pool */
    uint16_t n_signers;
    const uint16_t *signers; /* participant indices (owned by keygen or state) */
} km_sign_unit;

typedef struct km_signing_state {
    struct km_signing_state *next;
    struct km_signing_state **pprev; /* the pointer that points here */
    km_uuid id, keygen_id;
    uint64_t created_at;     /* km_enclave_now() at SIGN_INIT */
    km_keygen_state *keygen; /* a keygen is never freed while it has signings */
    unsigned char init_digest[32];
    unsigned char approval_digest[32];
    km_sign_item *items;
    size_t n_items;
    km_sign_unit *units;
    size_t n_units;
    uint16_t *all_signers; /* 0..n-1 */
    km_musig_keyagg *pool; /* key aggregations for items with their own tweak */
    size_t n_pool;
    /* Local signers: participants of the keygen registered on this enclave. */
    uint16_t n_local;
    uint16_t *local;                /* participant indices */
    km_secret **secnonces;          /* [unit * n_local + l], NULL if not a signer */
    unsigned char (*pubnonces)[66]; /* same indexing */
    uint8_t *approved;              /* per local signer */
    km_buf init_response;
    int partial_done;
    int partial_failed;             /* nonces spent without a complete answer */
    unsigned char nonce_digest[32]; /* of all aggregate nonces the partials were made for */
    /* SHA-256 of the nonce record list those were gathered from, every
     * record's signature checked: SIGN_FINALIZE given the same list need not
     * check them again. */
    unsigned char nonce_records_digest[32];
    km_buf partial_response;
    int finalized;
    km_buf result;
} km_signing_state;

/** The signing session with this id, or NULL. */
km_signing_state *km_signing_find(km_enclave_sessions *s, const km_uuid *id);
/** Link a new signing session into the table; st->keygen must be set (its
 *  n_signings counts st).
 *  Returns: KM_OK (the table owns st); KM_ERR_NOMEM if the index cannot grow,
 *           KM_ERR_DUPLICATE if its id is taken — then the table is unchanged
 *           and st still belongs to the caller. */
KM_WARN_UNUSED km_err km_signing_add(km_enclave_sessions *s, km_signing_state *st);
/** Free every signing session of a keygen (before the keygen itself goes). */
void km_signing_remove_for_keygen(km_enclave_sessions *s, const km_keygen_state *k);
/** Unlink and free one signing session. Returns 1 if it existed. */
int km_signing_remove(km_enclave_sessions *s, const km_uuid *id);
/** The same for a session known to be in the table (no lookup): st is freed.
 *  Iterating code saves st->next first. */
void km_signing_remove_entry(km_enclave_sessions *s, km_signing_state *st);
/** Free all signing sessions. */
void km_signing_free_all(km_enclave_sessions *s);

#endif
