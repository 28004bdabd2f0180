/* flows.h — the client and gateway halves of keygen and signing for tests: a
 * thin layer over src/cli/rounds.h that fails the test (cmocka) wherever the
 * library reports an error. Tests use them for the honest path and then
 * tamper with individual steps. */
#ifndef KM_TESTS_ENCLAVE_FLOWS_H
#define KM_TESTS_ENCLAVE_FLOWS_H

#include "cli/rounds.h"
#include "tests/enclave/harness.h"

#define FLOW_MAX_ENCLAVES KM_ROUNDS_MAX_ENCLAVES
#define FLOW_MAX_USERS    KM_ROUNDS_MAX_USERS

typedef km_rounds_world flow_world;
typedef km_rounds_records flow_records;
typedef km_rounds_secrets flow_secrets;

/** Record x(R) of a signature; fails the test if it was ever seen before:
 *  a repeated R across sessions would mean a nonce was reused. */
void flow_note_R(flow_world *w, const unsigned char r32[32]);

/** Fails the test if any enclave log is missing or contains a secret of the
 *  world (secret keys, auth keys, the session secret) raw or in hex. */
void flow_assert_logs_clean(flow_world *w);

/** Start n_enclaves enclaves and connect; make n_users users assigned round
 *  robin. Returns 0 or -1. */
int flow_start(flow_world *w, int n_enclaves, int n_users);
/** Stop everything and free. */
void flow_stop(flow_world *w);

/** Call cmd on enclave i (the transport must work); returns the enclave's
 *  status; body copied to out. */
km_err flow_call(flow_world *w, int i, uint16_t cmd, const km_buf *body, km_buf *out);
/** Append u32 len || bytes. */
void flow_put_vbytes(km_buf *b, const unsigned char *p, size_t n);

/** Run the whole keygen honestly (init, register, finalize on every enclave)
 *  and check the result against the client's own aggregation. Returns 0. */
int flow_keygen(flow_world *w);

/** Encrypt a batch for signing_id (client side): the SIGN_INIT body. */
void flow_sign_init_body(flow_world *w, const km_uuid *signing_id, const km_sign_item *items, size_t n,
                         km_buf *body);
/** Approval signature of user u over the batch. */
void flow_approval(flow_world *w, int u, const km_uuid *signing_id, const km_sign_item *items, size_t n,
                   unsigned char sig[64]);

/** Append the records of a response body (u16 n | vbytes*n) to r. */
void flow_records_add(flow_records *r, const km_buf *resp);
/** Body "signing_id | u16 n | records". */
void flow_records_body(const km_uuid *signing_id, const flow_records *r, km_buf *body);

/** The whole honest signing round; returns the first failing enclave status
 *  (local and transport failures fail the test). */
km_err flow_sign(flow_world *w, const km_uuid *signing_id, const km_sign_item *items, size_t n,
                 km_buf *result);

/** The x-only key an item must verify under (client's own computation). */
void flow_expected_key(flow_world *w, const km_sign_item *it, unsigned char out32[32]);

/** Check a signing result as a careful client does (km_rounds_check_result);
 *  any failure fails the test. */
void flow_check_result(flow_world *w, const km_sign_item *items, const flow_secrets *secrets, size_t n,
                       const km_buf *result);

/** Open a sealed signing result with the client's session key. */
km_err flow_open_result(flow_world *w, const km_uuid *signing_id, const km_buf *sealed, km_buf *pt);

#endif
