/* ct_enclave.c — the enclave's command handlers run in process under the
 * constant-time check (see ct_secrets.c): single-signer KEY_IMPORT and
 * KEY_SIGN (src/enclave/cmd_key.c), and a whole MuSig2 keygen and signing
 * batch on two enclaves (cmd_keygen.c, cmd_sign.c) driven by the client and
 * gateway halves of src/cli/rounds.c over an in-process transport.
 *
 * Secrets reach an enclave ECIES-encrypted. The ECIES decryption itself is
 * checked with a secret key in ct_secrets.c; here the enclave keys are left
 * public and the secrets are marked where they appear in the decrypted
 * plaintext (__wrap_km_ecies_open_secret): the secret key of an import, the
 * response key of a sign request, the session secret and participant keys
 * of keygen init and registration plaintexts. From there on everything the
 * handlers do with them is checked: session key derivation, nonce
 * generation, partial signing, sealing, the records they sign, their
 * bookkeeping. The test also checks that the marks landed (the keys the
 * enclaves keep are undefined for memcheck). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/rounds.h"
#include "enclave/enclave.h"
#include "enclave/sessions.h"
#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/ecies.h"
#include "keymeld/proto_key.h"
#include "keymeld/protocol.h"
#include "keymeld/single.h"
#include "tests/ct/ct.h"
#include "tests/enclave/inproc.h"

/* What the next decrypted plaintext holds (single-signer commands). */
static enum { PT_NONE, PT_IMPORT, PT_SIGN } next_pt;

/* Secrets the client side handed out (session secret, participant keys):
 * wherever one appears in a plaintext the enclave decrypts, it is marked. */
#define MAX_NEEDLES 16
static const unsigned char *needles[MAX_NEEDLES];
static size_t n_needles, n_marked;

static void mark_needles(unsigned char *p, size_t n) {
    size_t found[2 * MAX_NEEDLES], n_found = 0;
    for (size_t k = 0; k < n_needles; k++)
        for (size_t off = 0; off + 32 <= n && n_found < 2 * MAX_NEEDLES; off++)
            if (memcmp(p + off, needles[k], 32) == 0) found[n_found++] = off;
    for (size_t i = 0; i < n_found; i++) /* marked after the search, which reads them */
        CT_SECRET(p + found[i], 32);
    n_marked += n_found;
}

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
    } else {
        mark_needles(p, n); /* keygen init and registration plaintexts */
    }
    next_pt = PT_NONE;
    return err;
}

/* Session blobs (participant, nonce and partial-signature records, the
 * batch, the results) carry protocol data every participant sees, sealed
 * only against the gateway; sealed under a key derived from the (secret)
 * session secret, their plaintext would be tainted as a whole. It is
 * declassified where it is opened. Key material never travels in them. */
km_err __real_km_session_open(const km_session *s, const unsigned char *ad, size_t ad_len,
                              const unsigned char *blob, size_t blob_len, unsigned char *pt, size_t pt_cap,
                              size_t *pt_len);
km_err __wrap_km_session_open(const km_session *s, const unsigned char *ad, size_t ad_len,
                              const unsigned char *blob, size_t blob_len, unsigned char *pt, size_t pt_cap,
                              size_t *pt_len);
km_err __wrap_km_session_open(const km_session *s, const unsigned char *ad, size_t ad_len,
                              const unsigned char *blob, size_t blob_len, unsigned char *pt, size_t pt_cap,
                              size_t *pt_len) {
    km_err err = __real_km_session_open(s, ad, ad_len, blob, blob_len, pt, pt_cap, pt_len);
    CT_PUBLIC(&err, sizeof err);
    if (pt && pt_cap) CT_PUBLIC(pt, pt_cap);
    return err;
}

/* In-process transport for src/cli/rounds.c: each call goes through the
 * enclave's dispatcher instead of a socket. What an enclave answers is sent
 * to the gateway, so it is public. */
#define CT_ENCLAVES 2
static km_enclave encl[CT_ENCLAVES];
static km_rounds_world *world;
static uint32_t next_request;

km_err __wrap_km_enclave_conn_call(km_enclave_conn *c, uint16_t cmd, const unsigned char *body, size_t len,
                                   km_msg *resp);
km_err __wrap_km_enclave_conn_call(km_enclave_conn *c, uint16_t cmd, const unsigned char *body, size_t len,
                                   km_msg *resp) {
    int i = (int)(c - world->conn);
    if (i < 0 || i >= CT_ENCLAVES) return KM_ERR_ARG;
    km_err err = inproc_dispatch(&encl[i], ++next_request, cmd, body, len, &c->in);
    if (!err) {
        CT_PUBLIC(c->in.data, c->in.len); /* what leaves the enclave is public */
        err = km_msg_decode(resp, c->in.data, c->in.len);
    }
    return err;
}

static void enclave_init(km_ctx *ctx, km_enclave *e) {
    memset(e, 0, sizeof *e);
    e->ctx = ctx;
    pthread_mutex_init(&e->lock, NULL);
    e->sessions = km_sessions_new();
    e->max_keygens = e->max_signings = 100;
    e->keygen_ttl_s = e->signing_ttl_s = 3600;
    CT_CHECK(e->sessions != NULL);
    CT_CHECK(km_ecies_keygen(ctx, &e->key, e->pub) == KM_OK);
}

static void enclave_free(km_enclave *e) {
    km_sessions_free(e->sessions);
    km_secret_free(e->key);
    pthread_mutex_destroy(&e->lock);
}

/* MuSig2 keygen and a signing batch (a regular item and an And adaptor
 * item) for three participants on two in-process enclaves, driven by the
 * same client and gateway halves the enclave tests use (src/cli/rounds.c).
 * The session secret and the participants' secret keys are secret inside
 * the enclaves (cmd_keygen.c: init, registration, finalize; cmd_sign.c:
 * nonces, partial signatures, finalize). */
static void ct_rounds(km_ctx *ctx) {
    static km_rounds_world w;
    memset(&w, 0, sizeof w);
    world = &w;
    w.ctx = ctx;
    w.n_enclaves = CT_ENCLAVES;
    w.n_users = 3;
    for (int i = 0; i < CT_ENCLAVES; i++) {
        enclave_init(ctx, &encl[i]);
        memcpy(w.enc[i].pub, encl[i].pub, 33);
        w.conn[i].fd = -1;
        km_buf_init(&w.conn[i].in);
    }
    CT_CHECK(km_uuid_v7(&w.keygen_id, 1700000000000ull) == KM_OK);
    CT_CHECK(km_random_bytes(w.secret, 32) == KM_OK);
    CT_CHECK(km_session_derive(ctx, w.secret, &w.session) == KM_OK);
    needles[n_needles++] = w.secret;
    for (int u = 0; u < w.n_users; u++) {
        km_buf_init(&w.records[u]);
        CT_CHECK(km_uuid_v7(&w.users[u], 1700000000000ull + (uint64_t)u) == KM_OK);
        w.assign[u] = (uint16_t)(u % CT_ENCLAVES);
        CT_CHECK(km_devnet_keypair(ctx, w.seckeys[u], w.pubkeys[u], NULL) == KM_OK);
        CT_CHECK(km_devnet_keypair(ctx, w.auth_sec[u], NULL, w.auth_x[u]) == KM_OK);
        needles[n_needles++] = w.seckeys[u];
    }
    km_tweak_bip86(&w.tweak);
    CT_CHECK(km_rounds_keygen(&w) == KM_OK);
    /* The secrets really arrived marked: the session secret in each
     * enclave's init, secret and key in each registration (2 + 3 * 2), and
     * the keys the enclaves keep are undefined for memcheck. */
    CT_CHECK(n_marked >= 8);
    for (int u = 0; u < w.n_users && RUNNING_ON_VALGRIND; u++) {
        km_keygen_state *k = km_sessions_find_keygen(encl[w.assign[u]].sessions, &w.keygen_id);
        CT_CHECK(k && k->locals && k->locals[u] && k->locals[u]->seckey);
        if (!k || !k->locals || !k->locals[u] || !k->locals[u]->seckey) continue;
        unsigned char vbits[32];
        CT_CHECK(VALGRIND_GET_VBITS(km_secret_cdata(k->locals[u]->seckey), vbits, 32) == 1);
        int all = 1;
        for (int b = 0; b < 32; b++)
            all &= vbits[b] == 0xff;
        CT_CHECK(all);
    }

    km_sign_item items[2];
    km_rounds_secrets secrets[2];
    memset(items, 0, sizeof items);
    memset(secrets, 0, sizeof secrets);
    for (int i = 0; i < 2; i++) {
        CT_CHECK(km_uuid_v7(&items[i].id, 1700000001000ull + (uint64_t)i) == KM_OK);
        items[i].msg[0] = (unsigned char)(0x10 + i);
    }
    items[1].adaptor = KM_ADAPTOR_AND;
    items[1].n_points = 2;
    for (int k = 0; k < 2; k++) {
        do
            CT_CHECK(km_random_bytes(secrets[1].t[k], 32) == KM_OK);
        while (km_adaptor_point_from_secret(ctx, items[1].points[k], secrets[1].t[k]) != KM_OK);
    }
    km_uuid sid;
    CT_CHECK(km_uuid_v7(&sid, 1700000002000ull) == KM_OK);
    km_buf result;
    km_err status = KM_ERR_STATE;
    CT_CHECK(km_rounds_sign(&w, &sid, items, 2, &result, &status) == KM_OK);
    CT_CHECK(status == KM_OK);
    CT_CHECK(km_rounds_check_result(&w, items, secrets, 2, &result) == KM_OK);
    km_buf_free(&result);

    for (int u = 0; u < w.n_users; u++)
        km_buf_free(&w.records[u]);
    for (int i = 0; i < CT_ENCLAVES; i++) {
        km_buf_free(&w.conn[i].in);
        enclave_free(&encl[i]);
    }
    km_session_free(w.session);
    free(w.seen_R);
    km_wipe(&w, sizeof w);
    km_wipe(secrets, sizeof secrets);
    n_needles = 0;
    world = NULL;
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

    ct_rounds(ctx);
}
