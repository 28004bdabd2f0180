/* ct_enclave.c — the enclave's single-signer handlers (src/enclave/cmd_key.c)
 * run in process under the constant-time check (see ct_secrets.c).
 *
 * An imported key and a sign request arrive ECIES-encrypted. Decrypting under
 * a secret enclave key taints every byte of the plaintext, public fields
 * (auth key, flags, message, timestamp) included, so the secret fields are
 * marked where they appear instead: __wrap_km_ecies_open_secret (linked with
 * -Wl,--wrap=km_ecies_open_secret; the ECIES decryption itself is checked
 * with a secret key in ct_secrets.c) marks the secret key of an import
 * plaintext, and the response key of a sign plaintext, undefined. The key
 * the enclave stored is secret from then on: signing with it, sealing the
 * signature to the response key, and the handlers' own bookkeeping around
 * them (copies, digests, idempotency checks) are what is checked. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "enclave/enclave.h"
#include "enclave/sessions.h"
#include "keymeld/aead.h"
#include "keymeld/ecies.h"
#include "keymeld/proto_key.h"
#include "keymeld/single.h"
#include "tests/ct/ct.h"

/* What the next decrypted plaintext holds. */
static enum { PT_NONE, PT_IMPORT, PT_SIGN } next_pt;

km_err __real_km_ecies_open_secret(km_ctx *ctx, const unsigned char *sk, const unsigned char *ad,
                                   size_t ad_len, const unsigned char *blob, size_t blob_len,
                                   km_secret **out);
km_err __wrap_km_ecies_open_secret(km_ctx *ctx, const unsigned char *sk, const unsigned char *ad,
                                   size_t ad_len, const unsigned char *blob, size_t blob_len,
                                   km_secret **out);
km_err __wrap_km_ecies_open_secret(km_ctx *ctx, const unsigned char *sk, const unsigned char *ad,
                                   size_t ad_len, const unsigned char *blob, size_t blob_len,
                                   km_secret **out) {
    km_err err = __real_km_ecies_open_secret(ctx, sk, ad, ad_len, blob, blob_len, out);
    if (err) return err;
    unsigned char *p = km_secret_data(*out);
    size_t n = km_secret_len(*out);
    if (next_pt == PT_IMPORT && n == KM_KEY_IMPORT_LEN) {
        CT_SECRET(p + 1, 32); /* version | seckey[32] | auth_pub[32] | flags */
    } else if (next_pt == PT_SIGN) {
        km_key_sign_req req;
        if (km_key_sign_decode(&req, p, n) == KM_OK) CT_SECRET(req.response_key, 32);
    }
    next_pt = PT_NONE;
    return err;
}

/* km_ct_equal compares in constant time (its loop runs here, checked) and
 * returns the verdict its caller acts on, like OpenSSL's CRYPTO_memcmp:
 * only that one bit is declassified. The enclave uses it to tell a retry
 * from a different request under the same id (KEY_IMPORT, KEY_SIGN), an
 * answer the reply makes public anyway. */
int __real_km_ct_equal(const void *a, const void *b, size_t len);
int __wrap_km_ct_equal(const void *a, const void *b, size_t len);
int __wrap_km_ct_equal(const void *a, const void *b, size_t len) {
    int r = __real_km_ct_equal(a, b, len);
    CT_PUBLIC(&r, sizeof r);
    return r;
}

static void run(km_enclave *e, km_cmd_handler h, const km_buf *body, km_reply *r) {
    memset(r, 0, sizeof *r);
    km_buf_init(&r->body);
    h(e, body->data, body->len, r);
}

void ct_enclave(km_ctx *ctx) {
    km_enclave e;
    memset(&e, 0, sizeof e);
    e.ctx = ctx;
    pthread_mutex_init(&e.lock, NULL);
    e.sessions = km_sessions_new();
    CT_CHECK(e.sessions != NULL);
    CT_CHECK(km_ecies_keygen(ctx, &e.key, e.pub) == KM_OK);

    /* The client: a key with an auth key, approval required. */
    km_key_import imp;
    unsigned char auth_sec[32], xonly[32];
    memset(&imp, 0, sizeof imp);
    do
        CT_CHECK(km_random_bytes(imp.seckey, 32) == KM_OK);
    while (km_single_seckey_check(ctx, imp.seckey) != KM_OK);
    do
        CT_CHECK(km_random_bytes(auth_sec, 32) == KM_OK);
    while (km_single_seckey_check(ctx, auth_sec) != KM_OK);
    CT_CHECK(km_single_xonly_pubkey(ctx, imp.auth_pub, auth_sec) == KM_OK);
    CT_CHECK(km_single_xonly_pubkey(ctx, xonly, imp.seckey) == KM_OK);
    imp.flags = KM_KEY_FLAG_REQUIRE_APPROVAL;
    km_uuid key_id, user_id, req_id;
    CT_CHECK(km_random_bytes(&key_id, sizeof key_id) == KM_OK);
    CT_CHECK(km_random_bytes(&user_id, sizeof user_id) == KM_OK);
    CT_CHECK(km_random_bytes(&req_id, sizeof req_id) == KM_OK);

    km_buf body;
    km_buf_init(&body);
    km_reply r;
    CT_CHECK(km_key_import_build(ctx, e.pub, &key_id, &user_id, &imp, &body) == KM_OK);
    next_pt = PT_IMPORT;
    run(&e, km_cmd_key_import, &body, &r);
    CT_CHECK(r.err == KM_OK);
    km_buf_free(&r.body);
    /* The same import again is accepted (idempotent restore). */
    next_pt = PT_IMPORT;
    run(&e, km_cmd_key_import, &body, &r);
    CT_CHECK(r.err == KM_OK);
    km_buf_free(&r.body);

    /* Sign, approved by the auth key; the signature comes back sealed. */
    unsigned char msg[32] = {0x42}, response_key[32], approval[32], asig[64], sig[64];
    CT_CHECK(km_random_bytes(response_key, 32) == KM_OK);
    for (int algo = KM_KEY_ALGO_SCHNORR; algo <= KM_KEY_ALGO_ECDSA; algo++) {
        CT_CHECK(km_random_bytes(&req_id, sizeof req_id) == KM_OK);
        km_key_sign_req req = {.algo = (uint8_t)algo,
                               .timestamp = (uint64_t)time(NULL),
                               .msg = msg,
                               .msg_len = sizeof msg,
                               .response_key = response_key};
        km_key_approval_digest(approval, &key_id, &req_id, req.algo, msg, sizeof msg);
        CT_CHECK(km_single_schnorr_sign(ctx, asig, approval, 32, auth_sec) == KM_OK);
        CT_CHECK(km_key_sign_build(ctx, e.pub, &key_id, &req_id, &req, asig, &body) == KM_OK);
        next_pt = PT_SIGN;
        run(&e, km_cmd_key_sign, &body, &r);
        CT_CHECK(r.err == KM_OK);
        CT_PUBLIC(r.body.data, r.body.len); /* sent to the client */
        CT_CHECK(km_key_sign_result_open(ctx, response_key, &key_id, &req_id, req.algo, r.body.data,
                                         r.body.len, sig) == KM_OK);
        if (algo == KM_KEY_ALGO_SCHNORR)
            CT_CHECK(km_single_schnorr_verify(ctx, sig, msg, sizeof msg, xonly) == KM_OK);
        km_buf_free(&r.body);
        /* A retry of the same request gets the same sealed answer. */
        next_pt = PT_SIGN;
        run(&e, km_cmd_key_sign, &body, &r);
        CT_CHECK(r.err == KM_OK);
        km_buf_free(&r.body);
    }
    km_buf_free(&body);
    km_wipe(&imp, sizeof imp);
    km_wipe(auth_sec, sizeof auth_sec);
    km_wipe(response_key, sizeof response_key);
    km_sessions_free(e.sessions);
    km_secret_free(e.key);
    pthread_mutex_destroy(&e.lock);
}
