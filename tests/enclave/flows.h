/* flows.h — the client and gateway halves of keygen and signing, driven
 * directly against enclave processes (what the SDK and the gateway's
 * coordinator will do over HTTP). Tests use them for the honest path and
 * then tamper with individual steps. */
#ifndef KM_TESTS_ENCLAVE_FLOWS_H
#define KM_TESTS_ENCLAVE_FLOWS_H

#include "keymeld/musig.h"
#include "keymeld/proto_keygen.h"
#include "keymeld/proto_sign.h"
#include "keymeld/session_crypto.h"
#include "tests/enclave/harness.h"

#define FLOW_MAX_ENCLAVES 4
#define FLOW_MAX_USERS    10

typedef struct flow_world {
    km_ctx *ctx;
    int n_enclaves;
    km_test_enclave enc[FLOW_MAX_ENCLAVES];
    km_enclave_conn conn[FLOW_MAX_ENCLAVES];
    /* keygen */
    km_uuid keygen_id;
    unsigned char secret[32];
    km_session *session; /* client's view of the session keys */
    int n_users;
    km_uuid users[FLOW_MAX_USERS];
    uint16_t assign[FLOW_MAX_USERS];
    uint8_t flags[FLOW_MAX_USERS];
    unsigned char seckeys[FLOW_MAX_USERS][32], pubkeys[FLOW_MAX_USERS][33];
    unsigned char auth_sec[FLOW_MAX_USERS][32], auth_x[FLOW_MAX_USERS][32];
    km_buf records[FLOW_MAX_USERS];
    km_tweak tweak;
    uint16_t n_subsets;
    km_subset_def subsets[2];
    uint16_t subset_members[2][FLOW_MAX_USERS];
    km_musig_keyagg keyagg; /* recomputed by the client from its own data */
    /* Every nonce point x(R) seen in any signature or pre-signature. */
    unsigned char (*seen_R)[32];
    size_t n_seen_R, cap_seen_R;
} flow_world;

/** Record x(R) of a signature; fails the test if it was ever seen before:
 *  a repeated R across sessions would mean a nonce was reused. */
void flow_note_R(flow_world *w, const unsigned char r32[32]);

/** Fails the test if any enclave log contains a secret of the world (secret
 *  keys, auth keys, the session secret) in hex. */
void flow_assert_logs_clean(flow_world *w);

/** Start n_enclaves enclaves and connect; make n_users users assigned round
 *  robin. Returns 0 or -1. */
int flow_start(flow_world *w, int n_enclaves, int n_users);
/** Stop everything and free. */
void flow_stop(flow_world *w);

/** Call cmd on enclave i; returns the enclave's status; body copied to out. */
km_err flow_call(flow_world *w, int i, uint16_t cmd, const km_buf *body, km_buf *out);
/** Append u32 len || bytes. */
void flow_put_vbytes(km_buf *b, const unsigned char *p, size_t n);

/** Run the whole keygen honestly (init, register, finalize on every enclave)
 *  and check the result against the client's own aggregation. Returns 0/-1. */
int flow_keygen(flow_world *w);

/** Encrypt a batch for signing_id (client side): the SIGN_INIT body. */
void flow_sign_init_body(flow_world *w, const km_uuid *signing_id, const km_sign_item *items, size_t n,
                         km_buf *body);
/** Approval signature of user u over the batch. */
void flow_approval(flow_world *w, int u, const km_uuid *signing_id, const km_sign_item *items, size_t n,
                   unsigned char sig[64]);

/** Records collected from enclaves: each is one vbytes-wrapped record. */
typedef struct flow_records {
    uint16_t n;
    km_buf list; /* concatenated vbytes records */
} flow_records;

/** Append the records of a response body (u16 n | vbytes*n) to r. */
void flow_records_add(flow_records *r, const km_buf *resp);
/** Body "signing_id | u16 n | records". */
void flow_records_body(const km_uuid *signing_id, const flow_records *r, km_buf *body);

/** The whole honest signing round: init on every enclave, approvals for users
 *  that require them, partial on every enclave, finalize on enclave 0. The
 *  opened result plaintext goes to result. Returns the first failing status. */
km_err flow_sign(flow_world *w, const km_uuid *signing_id, const km_sign_item *items, size_t n,
                 km_buf *result);

/** The x-only key an item must verify under, computed by the client from
 *  its own knowledge (the participants' public keys, subsets and tweaks). */
void flow_expected_key(flow_world *w, const km_sign_item *it, unsigned char out32[32]);

/** Adaptor secrets of an item, parallel to its points. */
typedef struct flow_secrets {
    unsigned char t[KM_MAX_ADAPTOR_POINTS][32];
} flow_secrets;

/** Check a signing result as a careful client does: every item present in
 *  order; regular signatures verify (libsecp256k1) under the expected key;
 *  pre-signatures do not verify as signatures, verify as pre-signatures,
 *  complete with the secret(s) into valid signatures from which the secret is
 *  extracted back. Every x(R) is noted (flow_note_R). */
void flow_check_result(flow_world *w, const km_sign_item *items, const flow_secrets *secrets, size_t n,
                       const km_buf *result);

/** Open a sealed signing result with the client's session key. */
km_err flow_open_result(flow_world *w, const km_uuid *signing_id, const km_buf *sealed, km_buf *pt);

#endif
