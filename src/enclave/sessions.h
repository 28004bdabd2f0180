/* sessions.h — the enclave's in-memory tables: keygens, signing sessions,
 * imported keys. Everything reachable from km_enclave_sessions is guarded by
 * km_enclave.lock; secrets inside live in km_secret (locked memory).
 *
 * Each table is a doubly linked list (for iteration: expiry, free-all, the
 * signings of a keygen) plus an id index (id_index.h) for lookups, so that
 * finding, adding or removing one entry does not walk thousands of held
 * wallets or signing sessions. An entry is in both or in neither. */
#ifndef KM_ENCLAVE_SESSIONS_H
#define KM_ENCLAVE_SESSIONS_H

#include <stdint.h>

#include "enclave/id_index.h"
#include "keymeld/cursor.h"
#include "keymeld/musig.h"
#include "keymeld/proto_keygen.h"
#include "keymeld/secret.h"
#include "keymeld/session_crypto.h"

typedef struct km_enclave_counts {
    uint32_t keygens, signings, keys;
} km_enclave_counts;

/** A participant whose key this enclave holds. */
typedef struct km_local_participant {
    km_secret *seckey; /* 32 bytes */
    unsigned char pubkey[33];
    unsigned char auth_pub[32];
    uint8_t flags;
    unsigned char reg_digest[32]; /* SHA-256 of the registration plaintext: idempotency */
    km_buf record;                /* the participant record we issued (returned on retry) */
} km_local_participant;

typedef struct km_keygen_state {
    struct km_keygen_state *next;
    struct km_keygen_state **pprev; /* the pointer that points here (list head or previous next) */
    km_uuid id;
    uint64_t created_at;           /* km_enclave_now() at init */
    unsigned char init_digest[32]; /* SHA-256 of the init plaintext: a re-init must match */
    km_keygen_init init;           /* session_secret field is wiped; the secret lives in `secret` */
    km_secret *secret;             /* the session secret (32 bytes) */
    km_session *session;           /* keys derived from it */
    int my_index;                  /* this enclave's index in init.enclave_pubs */
    uint32_t n_signings;           /* signing sessions that point here (km_signing_add) */
    km_local_participant **locals; /* per participant; NULL unless registered here */
    /* After KEYGEN_FINALIZE: */
    int finalized;
    unsigned char finalize_digest[32];
    unsigned char (*pubkeys)[33]; /* all participants, init order */
    unsigned char (*auth_pubs)[32];
    uint8_t *flags;
    km_musig_keyagg keyagg;          /* full set, default tweak applied */
    km_musig_keyagg *subset_keyaggs; /* per subset, default tweak applied */
    km_buf result;                   /* sealed result returned to every caller */
} km_keygen_state;

/* ---- imported single-signer keys (KEY_IMPORT / KEY_SIGN / KEY_DELETE) ---- */

struct km_enclave_sessions;

/** A sign request this key answered: a retry with the same plaintext gets
 *  the same bytes, the same request id with another plaintext is refused. */
typedef struct km_key_sign_done {
    km_uuid request_id;
    unsigned char digest[32]; /* SHA-256 of the sign plaintext */
    km_buf result;            /* the sealed result that was returned */
} km_key_sign_done;

/** One imported key. */
typedef struct km_key_state {
    struct km_key_state *next;
    struct km_key_state **pprev; /* the pointer that points here */
    km_uuid id, user_id;
    unsigned char import_digest[32]; /* SHA-256 of user_id | import plaintext: a re-import must match */
    km_secret *seckey;               /* 32 bytes */
    unsigned char auth_pub[32];      /* x-only: signs approvals and the deletion */
    uint8_t flags;                   /* KM_KEY_FLAG_* */
    km_key_sign_done *done;          /* ring of up to KM_KEY_SIGN_CACHE entries */
    size_t n_done, cap_done;         /* entries in use / allocated (grows to KM_KEY_SIGN_CACHE) */
    size_t next_done;                /* once full: the oldest entry, overwritten next */
} km_key_state;

/** The key with this id, or NULL. */
km_key_state *km_sessions_find_key(struct km_enclave_sessions *s, const km_uuid *id);
/** Link a new key into the table.
 *  Returns: KM_OK (the table owns k); KM_ERR_NOMEM if the index cannot grow,
 *           KM_ERR_DUPLICATE if its id is taken — then the table is unchanged
 *           and k still belongs to the caller.
 *  In/Out:  s: the table; k: a key not in any table, its id set. */
KM_WARN_UNUSED km_err km_sessions_add_key(struct km_enclave_sessions *s, km_key_state *k);
/** Unlink, wipe and free a key. Returns 1 if it existed. */
int km_sessions_remove_key(struct km_enclave_sessions *s, const km_uuid *id);
/** Wipe and free one key state. NULL-safe. */
void km_key_state_free(km_key_state *k);

/* ---- end of imported keys ---- */

struct km_signing_state; /* enclave/signing.h */

typedef struct km_enclave_sessions {
    km_keygen_state *keygens;
    struct km_signing_state *signings;
    km_key_state *keys; /* imported single-signer keys */
    km_enclave_counts counts;
    km_id_index keygen_index, signing_index, key_index; /* by id, same entries as the lists */
} km_enclave_sessions;

/** An empty table (with fresh random index keys), or NULL if out of memory.
 *  Free it with km_sessions_free. */
km_enclave_sessions *km_sessions_new(void);
/** Wipe and free every session and key. NULL is ignored. */
void km_sessions_free(km_enclave_sessions *s);
/** Current counts. */
void km_sessions_count(const km_enclave_sessions *s, km_enclave_counts *out);

/** The keygen with this id, or NULL. */
km_keygen_state *km_sessions_find_keygen(km_enclave_sessions *s, const km_uuid *id);
/** Link a new keygen into the table.
 *  Returns: KM_OK (the table owns k); KM_ERR_NOMEM if the index cannot grow,
 *           KM_ERR_DUPLICATE if its id is taken — then the table is unchanged
 *           and k still belongs to the caller.
 *  In/Out:  s: the table; k: a keygen not in any table, its id set. */
KM_WARN_UNUSED km_err km_sessions_add_keygen(km_enclave_sessions *s, km_keygen_state *k);
/** Unlink and free a keygen (wiping its secrets) and its signing sessions.
 *  Returns 1 if it existed. */
int km_sessions_remove_keygen(km_enclave_sessions *s, const km_uuid *id);
/** The same for a keygen known to be in the table (no lookup): k is freed.
 *  Iterating code saves k->next first. */
void km_sessions_remove_keygen_entry(km_enclave_sessions *s, km_keygen_state *k);
/** Wipe and free one keygen state. NULL-safe. */
void km_keygen_state_free(km_keygen_state *k);

#endif
