/* client/sdk_internal.h — what the files of the client SDK (sdk*.c) share:
 * the two opaque structures of include/keymeld/client.h and the helpers for
 * HTTP calls, JSON fields, errors and the verified-enclave memory.
 *
 * Nothing here is public API. Every helper that can fail records the reason
 * in the handle (sdk_fail) so that km_sdk_last_error can tell the caller in
 * words; reasons never contain secret material. */
#ifndef KM_CLIENT_SDK_INTERNAL_H
#define KM_CLIENT_SDK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "client/http.h"
#include "keymeld/attestation.h"
#include "keymeld/client.h"
#include "keymeld/musig.h"
#include "keymeld/secret.h"
#include "keymeld/session_crypto.h"

/* Longest single long poll, in seconds: well under the client's 70 s call limit. */
#define SDK_LONG_POLL_MAX_S 30
/* Pause after a transport error or a 5xx before the next attempt (not a
 * poll interval: progress is awaited with long polls). */
#define SDK_RETRY_PAUSE_MS 100
/* How long a create (idempotent, same bytes) is retried after a transport
 * error or a 5xx answer. */
#define SDK_POST_RETRY_MS 20000u
/* Request bodies remembered per handle so that a repeated create sends the
 * same bytes (the gateway answers an identical repeat 201, another 409). */
#define SDK_BODY_CACHE 16

/* What a remembered request body was for. */
enum sdk_body_kind { SDK_BODY_REGISTER = 1, SDK_BODY_SIGN = 2, SDK_BODY_IMPORT = 3 };

typedef struct sdk_root {
    uint32_t enclave_id; /* UINT32_MAX: every enclave */
    unsigned char *der;  /* PEM or DER bytes as given */
    size_t len;
} sdk_root;

typedef struct sdk_verified {
    uint32_t enclave_id;
    unsigned char pub[33];
} sdk_verified;

typedef struct sdk_body {
    int kind; /* 0: empty slot */
    unsigned char id[16];
    unsigned char digest[32]; /* SHA-256 of what the body stands for */
    char *body;
    size_t len;
} sdk_body;

struct km_sdk {
    km_ctx *ctx;
    km_client *client;
    char *url;
    char err[512];
    sdk_root *roots;
    size_t n_roots;
    km_attest_pcr pcrs[KM_ATTEST_PCR_SLOTS];
    size_t n_pcrs;
    sdk_verified *verified;
    size_t n_verified;
    sdk_body bodies[SDK_BODY_CACHE];
    size_t next_body;
};

struct km_sdk_session {
    km_ctx *ctx;
    km_uuid keygen_id;
    km_secret *secret; /* the 32-byte session secret */
    km_session *keys;  /* data key and auth key derived from it */
    size_t n;
    km_uuid *users;
    uint32_t *enclave_ids;
    unsigned char (*enclave_pubs)[33];
    km_tweak tweak;
    size_t n_subsets;
    km_subset_def *subsets; /* members owned */
    char *gateway_url;      /* or NULL */
    /* Participants that joined through this object and their public keys:
     * the keygen result must list exactly these keys at these indices. */
    unsigned char *joined;
    unsigned char (*own_pubs)[33];
    /* The participants' keys of a checked keygen result (have_result). */
    int have_result;
    unsigned char (*pubkeys)[33];
    unsigned char output_xonly[32]; /* their aggregate with the session's tweak (have_result) */
};

/* ---- errors ----------------------------------------------------------------- */

/* Record why the last call failed; returns err. */
km_err sdk_fail(km_sdk *sdk, km_err err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Record an HTTP error answer: "what: HTTP 409 conflict: message". Returns
 * KM_ERR_NOT_FOUND for 404, else KM_ERR_STATE. */
km_err sdk_http_fail(km_sdk *sdk, const km_client_response *r, const char *what);

/* ---- time ----------------------------------------------------------------------- */

uint64_t sdk_now_ms(void);  /* monotonic */
uint64_t sdk_unix_ms(void); /* wall clock */
void sdk_sleep_ms(unsigned ms);

/* ---- JSON ------------------------------------------------------------------------ */

/* New JSON strings (NULL on allocation failure). */
json_t *sdk_hexj(const unsigned char *p, size_t n);
json_t *sdk_uuidj(const km_uuid *u);
/* Decode the hex string field name of o into a new buffer (initialised
 * here). Returns KM_OK; KM_ERR_PARSE (absent, not a string, bad hex);
 * KM_ERR_NOMEM. */
KM_WARN_UNUSED km_err sdk_get_hex(const json_t *o, const char *name, km_buf *out);
/* Exactly n bytes of hex in field name. Returns KM_OK or KM_ERR_PARSE. */
KM_WARN_UNUSED km_err sdk_get_hex_fixed(const json_t *o, const char *name, unsigned char *out, size_t n);

/* ---- HTTP ------------------------------------------------------------------------ */

/* One call through the handle's client (out cleared first). KM_ERR_IO is
 * recorded with the transport's reason. */
KM_WARN_UNUSED km_err sdk_call(km_sdk *sdk, const char *method, const char *target, const json_t *body,
                               const secp256k1_keypair *signer, km_client_response *out);
/* POST these exact body bytes (JSON), signed, retrying transport errors and
 * 5xx answers for SDK_POST_RETRY_MS (each retry signed afresh; the bytes are
 * the same, so an arrived first attempt makes the retry an identical repeat).
 * Returns KM_OK with the last answer in out, or KM_ERR_IO. */
KM_WARN_UNUSED km_err sdk_post(km_sdk *sdk, const char *target, const char *body, size_t len,
                               const secp256k1_keypair *signer, km_client_response *out);
/* Long-poll GET base?wait=N (signed) until the "status" field is
 * "completed" or "failed" or timeout_s passed; transport errors and 5xx
 * answers are retried until then. Returns KM_OK (out holds the final
 * answer; *failed says which); KM_ERR_RANGE (deadline: not final);
 * KM_ERR_IO (deadline: no answer); KM_ERR_NOT_FOUND (404); KM_ERR_STATE
 * (another answer). */
KM_WARN_UNUSED km_err sdk_poll(km_sdk *sdk, const char *base, const secp256k1_keypair *signer,
                               unsigned timeout_s, km_client_response *out, int *failed);

/* ---- remembered bodies ----------------------------------------------------------- */

/* The body remembered for (kind, id, digest), or NULL. */
const sdk_body *sdk_body_find(const km_sdk *sdk, int kind, const unsigned char id[16],
                              const unsigned char digest[32]);
/* Remember a body (copied; the oldest entry goes). Returns KM_OK or KM_ERR_NOMEM. */
KM_WARN_UNUSED km_err sdk_body_put(km_sdk *sdk, int kind, const unsigned char id[16],
                                   const unsigned char digest[32], const char *body, size_t len);

/* ---- trust ----------------------------------------------------------------------- */

/* The verified key of an enclave, or NULL when this handle did not verify it. */
const unsigned char *sdk_verified_key(const km_sdk *sdk, uint32_t enclave_id);

/* ---- keys ------------------------------------------------------------------------ */

/* A key pair from a secret key (the caller wipes kp). Returns KM_OK or
 * KM_ERR_INVALID_KEY. */
KM_WARN_UNUSED km_err sdk_keypair(const km_ctx *ctx, secp256k1_keypair *kp, const unsigned char sec[32]);

/* ---- sessions -------------------------------------------------------------------- */

/* An empty session for n participants (arrays allocated and zeroed, no
 * secret yet). Returns KM_OK or KM_ERR_NOMEM; *out NULL on failure. */
KM_WARN_UNUSED km_err sdk_session_alloc(km_ctx *ctx, size_t n, size_t n_subsets, km_sdk_session **out);
/* Set the session secret (copied into locked memory) and derive its keys. */
KM_WARN_UNUSED km_err sdk_session_set_secret(km_sdk_session *s, const unsigned char secret32[32]);
/* The index of a subset id in the session, or -1. */
int sdk_session_subset(const km_sdk_session *s, const km_uuid *id);

/* KeyAgg + tweak over keys[members[0..n)] (members NULL: keys[0..n)). */
KM_WARN_UNUSED km_err sdk_agg_of(const km_ctx *ctx, const unsigned char (*keys)[33], const uint16_t *members,
                                 size_t n, const km_tweak *tweak, km_musig_keyagg *ka);

/* Fetch the completed keygen's result and check it (keygen_wait without
 * touching s). Out: out filled on KM_OK. */
KM_WARN_UNUSED km_err sdk_keygen_result(km_sdk *sdk, const km_sdk_session *s, unsigned timeout_s,
                                        km_sdk_keygen_result *out);

#endif
