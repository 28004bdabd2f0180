/* test_enclave_keys.c — single-signer keys against real keymeld-enclave
 * processes.
 *
 * The test plays the clients (key owners, approvers) and the gateway, honest
 * and malicious: a gateway that moves blobs between keys, requests or
 * enclaves, tampers with them, replays stale or reused requests, signs
 * without the owner's approval, deletes without the auth key, or tries to
 * read what is signed. Every attack must be refused and change nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <secp256k1.h>

#include "keymeld/aead.h"
#include "keymeld/ecies.h"
#include "keymeld/hash.h"
#include "keymeld/proto_key.h"
#include "keymeld/single.h"
#include "tests/enclave/harness.h"

enum { KEY_A, KEY_B, KEY_C, N_KEYS }; /* A: no approval; B: approval required; C: cache test */

typedef struct {
    km_uuid id, user;
    unsigned char sec[32], pub33[33], xonly[32];
    unsigned char auth_sec[32], auth_x[32];
    uint8_t flags;
    km_buf import; /* the import body as the gateway stores it */
} test_key;

typedef struct {
    km_ctx *ctx;
    km_test_enclave enc[2];
    km_enclave_conn conn[2];
    test_key keys[N_KEYS];
    uint64_t next_ms; /* for fresh uuids */
} world;

static world W;

/* A distinctive message: if these bytes show up in anything the gateway
 * handles, the gateway could read what is being signed. */
static const char SECRET_MSG[] = "pay 21 BTC to the address only the client knows";

static km_uuid fresh_id(void) {
    km_uuid u;
    assert_int_equal(km_uuid_v7(&u, W.next_ms++), KM_OK);
    return u;
}

static uint64_t now_s(void) {
    return (uint64_t)time(NULL);
}

/* Sends cmd with body to enclave i; returns the enclave's status and copies
 * the response body into out (if given). */
static km_err call(int i, uint16_t cmd, const unsigned char *body, size_t len, km_buf *out) {
    km_msg resp;
    assert_int_equal(km_enclave_conn_call(&W.conn[i], cmd, body, len, &resp), KM_OK);
    if (out) {
        km_buf_free(out);
        assert_int_equal(km_buf_put(out, resp.body, resp.body_len), KM_OK);
    }
    return (km_err)resp.code;
}

static km_err callb(int i, uint16_t cmd, const km_buf *body, km_buf *out) {
    return call(i, cmd, body->data, body->len, out);
}

static uint32_t info_keys(int i) {
    km_buf out;
    km_buf_init(&out);
    assert_int_equal(call(i, KM_CMD_INFO, NULL, 0, &out), KM_OK);
    assert_int_equal(out.len, 2 + 33 + 32 + 12 + 8 + 16); /* ... keys, u64 uptime, boot id */
    const unsigned char *p = out.data + 2 + 33 + 32 + 8;
    uint32_t n = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    km_buf_free(&out);
    return n;
}

static void import_body(int enc, const test_key *k, const unsigned char *seckey, uint8_t flags,
                        const km_uuid *user, km_buf *body) {
    km_key_import imp;
    memcpy(imp.seckey, seckey, 32);
    memcpy(imp.auth_pub, k->auth_x, 32);
    imp.flags = flags;
    km_buf_init(body);
    assert_int_equal(km_key_import_build(W.ctx, W.enc[enc].pub, &k->id, user, &imp, body), KM_OK);
    km_wipe(&imp, sizeof imp);
}

/* KEY_IMPORT body around an arbitrary plaintext, sealed for (key_id, user). */
static void raw_import_body(const km_uuid *key_id, const km_uuid *user, const unsigned char *pt,
                            size_t pt_len, km_buf *body) {
    km_ad ad;
    km_buf blob;
    km_buf_init(&blob);
    km_buf_init(body);
    assert_int_equal(km_key_import_ad(&ad, key_id, user), KM_OK);
    assert_int_equal(km_ecies_seal(W.ctx, W.enc[0].pub, ad.bytes, ad.len, pt, pt_len, &blob), KM_OK);
    assert_int_equal(km_buf_put(body, key_id->b, 16), KM_OK);
    assert_int_equal(km_buf_put(body, user->b, 16), KM_OK);
    assert_int_equal(km_buf_put_u32(body, (uint32_t)blob.len), KM_OK);
    assert_int_equal(km_buf_put(body, blob.data, blob.len), KM_OK);
    km_buf_free(&blob);
}

/* A BIP-340 approval by auth_sec for (key_id, request_id, algo, msg). */
static void approve(const unsigned char auth_sec[32], const km_uuid *key_id, const km_uuid *rid, uint8_t algo,
                    const unsigned char *msg, size_t len, unsigned char sig[64]) {
    unsigned char d[32];
    km_key_approval_digest(d, key_id, rid, algo, msg, len);
    assert_int_equal(km_single_schnorr_sign(W.ctx, sig, d, 32, auth_sec), KM_OK);
}

/* KEY_SIGN body for key k; rk receives a fresh response key. */
static void sign_body(const km_uuid *key_id, const km_uuid *rid, uint8_t algo, const unsigned char *msg,
                      size_t len, uint64_t ts, const unsigned char *approval, unsigned char rk[32],
                      km_buf *body) {
    assert_int_equal(km_random_bytes(rk, 32), KM_OK);
    km_key_sign_req req = {.algo = algo, .timestamp = ts, .msg = msg, .msg_len = len, .response_key = rk};
    km_buf_init(body);
    assert_int_equal(km_key_sign_build(W.ctx, W.enc[0].pub, key_id, rid, &req, approval, body), KM_OK);
}

/* KEY_SIGN body around an arbitrary plaintext (what a hostile client sends). */
static void raw_sign_body(const km_uuid *key_id, const km_uuid *rid, const unsigned char *pt, size_t pt_len,
                          km_buf *body) {
    km_ad ad;
    km_buf blob;
    km_buf_init(&blob);
    km_buf_init(body);
    assert_int_equal(km_key_sign_ad(&ad, key_id, rid), KM_OK);
    assert_int_equal(km_ecies_seal(W.ctx, W.enc[0].pub, ad.bytes, ad.len, pt, pt_len, &blob), KM_OK);
    assert_int_equal(km_buf_put(body, key_id->b, 16), KM_OK);
    assert_int_equal(km_buf_put(body, rid->b, 16), KM_OK);
    assert_int_equal(km_buf_put_u32(body, (uint32_t)blob.len), KM_OK);
    assert_int_equal(km_buf_put(body, blob.data, blob.len), KM_OK);
    assert_int_equal(km_buf_put_u8(body, 0), KM_OK);
    km_buf_free(&blob);
}

/* Opens a result and checks the signature against the client's own key. */
static void check_result(const test_key *k, const km_uuid *rid, uint8_t algo, const unsigned char *msg,
                         size_t len, const unsigned char rk[32], const km_buf *res,
                         unsigned char sig_out[64]) {
    unsigned char sig[64];
    assert_int_equal(km_key_sign_result_open(W.ctx, rk, &k->id, rid, algo, res->data, res->len, sig), KM_OK);
    if (algo == KM_KEY_ALGO_SCHNORR) {
        assert_int_equal(km_single_schnorr_verify(W.ctx, sig, msg, len, k->xonly), KM_OK);
    } else {
        assert_int_equal(len, 32);
        assert_int_equal(km_single_ecdsa_verify(W.ctx, sig, msg, k->pub33), KM_OK);
    }
    /* The gateway sees the result: the signature must not be in it. */
    for (size_t off = 0; off + 64 <= res->len; off++)
        assert_memory_not_equal(res->data + off, sig, 64);
    if (sig_out) memcpy(sig_out, sig, 64);
}

/* Signs (key k, fresh request) and checks; returns through the asserts. */
static void sign_ok(int ki, uint8_t algo, const unsigned char *msg, size_t len, const unsigned char *approval,
                    const km_uuid *rid) {
    test_key *k = &W.keys[ki];
    unsigned char rk[32];
    km_buf body, res;
    km_buf_init(&res);
    sign_body(&k->id, rid, algo, msg, len, now_s(), approval, rk, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, &res), KM_OK);
    check_result(k, rid, algo, msg, len, rk, &res, NULL);
    km_buf_free(&body);
    km_buf_free(&res);
}

static int setup(void **state) {
    (void)state;
    memset(&W, 0, sizeof W);
    W.next_ms = 1700000000000ull;
    if (km_ctx_create(&W.ctx) != KM_OK) return -1;
    for (int i = 0; i < 2; i++) {
        if (km_test_enclave_start(W.ctx, &W.enc[i]) != 0) return -1;
        if (km_test_enclave_connect(W.ctx, &W.enc[i], &W.conn[i]) != KM_OK) return -1;
    }
    for (int i = 0; i < N_KEYS; i++) {
        test_key *k = &W.keys[i];
        if (km_uuid_v7(&k->id, W.next_ms++) || km_uuid_v7(&k->user, W.next_ms++)) return -1;
        km_test_keypair(W.ctx, k->sec, k->pub33, k->xonly);
        km_test_keypair(W.ctx, k->auth_sec, NULL, k->auth_x);
        k->flags = i == KEY_B ? KM_KEY_FLAG_REQUIRE_APPROVAL : 0;
        km_buf_init(&k->import);
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        km_enclave_conn_close(&W.conn[i]);
        km_test_enclave_destroy(&W.enc[i]);
    }
    for (int i = 0; i < N_KEYS; i++) {
        km_buf_free(&W.keys[i].import);
        km_wipe(&W.keys[i], sizeof W.keys[i]);
    }
    km_ctx_destroy(W.ctx);
    return 0;
}

static void test_import(void **state) {
    (void)state;
    km_buf body, out;
    km_buf_init(&out);
    assert_int_equal(info_keys(0), 0);
    for (int i = 0; i < N_KEYS; i++) {
        test_key *k = &W.keys[i];
        import_body(0, k, k->sec, k->flags, &k->user, &k->import);
        assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &k->import, &out), KM_OK);
        assert_int_equal(out.len, 0);
        /* A retry, and the same import encrypted afresh, are fine. */
        assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &k->import, NULL), KM_OK);
        import_body(0, k, k->sec, k->flags, &k->user, &body);
        assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &body, NULL), KM_OK);
        km_buf_free(&body);
        /* The gateway never sees the secret key. */
        for (size_t off = 0; off + 32 <= k->import.len; off++)
            assert_memory_not_equal(k->import.data + off, k->sec, 32);
    }
    assert_int_equal(info_keys(0), N_KEYS);

    test_key *a = &W.keys[KEY_A], *b = &W.keys[KEY_B];
    /* An imported key is never replaced: other key, dropped approval flag,
     * other user — all refused under an existing id. */
    unsigned char other_sec[32];
    km_test_keypair(W.ctx, other_sec, NULL, NULL);
    import_body(0, a, other_sec, a->flags, &a->user, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &body, NULL), KM_ERR_DUPLICATE);
    km_buf_free(&body);
    import_body(0, b, b->sec, 0, &b->user, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &body, NULL), KM_ERR_DUPLICATE);
    km_buf_free(&body);
    import_body(0, a, a->sec, a->flags, &b->user, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &body, NULL), KM_ERR_DUPLICATE);
    km_buf_free(&body);

    /* The blob of key A presented under key B's id, or another user: the
     * associated data differs. */
    assert_int_equal(km_buf_put(&body, a->import.data, a->import.len), KM_OK);
    memcpy(body.data, b->id.b, 16);
    assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &body, NULL), KM_ERR_DECRYPT);
    memcpy(body.data, a->id.b, 16);
    memcpy(body.data + 16, b->user.b, 16);
    assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &body, NULL), KM_ERR_DECRYPT);
    km_buf_free(&body);
    /* ... or to another enclave. */
    assert_int_equal(callb(1, KM_CMD_KEY_IMPORT, &a->import, NULL), KM_ERR_DECRYPT);
    assert_int_equal(info_keys(1), 0);

    /* A fresh id with invalid contents. */
    test_key bad = *a;
    km_buf_init(&bad.import);
    bad.id = fresh_id();
    unsigned char zero[32] = {0}, order[32];
    import_body(0, &bad, zero, 0, &bad.user, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &body, NULL), KM_ERR_INVALID_KEY);
    km_buf_free(&body);
    /* n, the group order, is not a secret key either. */
    static const unsigned char N[32] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48,
                                        0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};
    memcpy(order, N, 32);
    import_body(0, &bad, order, 0, &bad.user, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &body, NULL), KM_ERR_INVALID_KEY);
    km_buf_free(&body);
    memset(bad.auth_x, 0xff, 32); /* x >= p: no such point */
    import_body(0, &bad, a->sec, 0, &bad.user, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &body, NULL), KM_ERR_INVALID_POINT);
    km_buf_free(&body);
    /* Plaintexts the honest encoder would not make. */
    unsigned char pt[KM_KEY_IMPORT_LEN + 1];
    pt[0] = 1;
    memcpy(pt + 1, a->sec, 32);
    memcpy(pt + 33, a->auth_x, 32);
    pt[65] = 0x04; /* reserved flag */
    raw_import_body(&bad.id, &bad.user, pt, KM_KEY_IMPORT_LEN, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &body, NULL), KM_ERR_UNSUPPORTED);
    km_buf_free(&body);
    pt[65] = 0;
    pt[0] = 2; /* unknown version */
    raw_import_body(&bad.id, &bad.user, pt, KM_KEY_IMPORT_LEN, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &body, NULL), KM_ERR_UNSUPPORTED);
    km_buf_free(&body);
    pt[0] = 1;
    pt[KM_KEY_IMPORT_LEN] = 0; /* one byte too many */
    raw_import_body(&bad.id, &bad.user, pt, sizeof pt, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &body, NULL), KM_ERR_PARSE);
    km_buf_free(&body);
    km_wipe(pt, sizeof pt);
    /* Tampering anywhere in the blob; truncation and trailing bytes. */
    import_body(0, &bad, a->sec, 0, &bad.user, &body);
    for (size_t pos = 36; pos < body.len; pos += 5) {
        body.data[pos] ^= 0x20;
        assert_int_not_equal(callb(0, KM_CMD_KEY_IMPORT, &body, NULL), KM_OK);
        body.data[pos] ^= 0x20;
    }
    body.len--;
    assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &body, NULL), KM_ERR_PARSE);
    body.len++;
    assert_int_equal(km_buf_put_u8(&body, 0), KM_OK);
    assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &body, NULL), KM_ERR_PARSE);
    km_buf_free(&body);
    /* None of that created a key. */
    assert_int_equal(info_keys(0), N_KEYS);
    km_wipe(&bad, sizeof bad);
    km_buf_free(&out);
}

static void test_sign_schnorr_and_ecdsa(void **state) {
    (void)state;
    unsigned char big[KM_KEY_MSG_MAX];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i ^ 0x5a);
    const size_t lens[] = {0, 1, 32, 100, KM_KEY_MSG_MAX};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        km_uuid rid = fresh_id();
        sign_ok(KEY_A, KM_KEY_ALGO_SCHNORR, big, lens[i], NULL, &rid);
    }
    unsigned char digest[32];
    km_sha256(digest, SECRET_MSG, strlen(SECRET_MSG));
    km_uuid rid = fresh_id();
    sign_ok(KEY_A, KM_KEY_ALGO_ECDSA, digest, 32, NULL, &rid);

    /* What the gateway sees of a request and its answer: neither the
     * message, nor the response key, nor the signature. */
    test_key *a = &W.keys[KEY_A];
    unsigned char rk[32], sig[64];
    km_buf body, res, again;
    km_buf_init(&res);
    km_buf_init(&again);
    rid = fresh_id();
    uint64_t ts = now_s();
    sign_body(&a->id, &rid, KM_KEY_ALGO_SCHNORR, (const unsigned char *)SECRET_MSG, strlen(SECRET_MSG), ts,
              NULL, rk, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, &res), KM_OK);
    check_result(a, &rid, KM_KEY_ALGO_SCHNORR, (const unsigned char *)SECRET_MSG, strlen(SECRET_MSG), rk,
                 &res, sig);
    const size_t ml = strlen(SECRET_MSG);
    for (size_t off = 0; off + 8 <= body.len; off++)
        for (size_t m = 0; m + 8 <= ml; m += 8)
            assert_memory_not_equal(body.data + off, SECRET_MSG + m, 8);
    for (size_t off = 0; off + 32 <= body.len; off++)
        assert_memory_not_equal(body.data + off, rk, 32);
    for (size_t off = 0; off + 32 <= res.len; off++) {
        assert_memory_not_equal(res.data + off, sig, 32);
        assert_memory_not_equal(res.data + off, sig + 32, 32);
    }

    /* Once per request: the retry gets the very same bytes, nothing new is
     * signed — also when the client re-encrypts the identical request. */
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, &again), KM_OK);
    assert_int_equal(again.len, res.len);
    assert_memory_equal(again.data, res.data, res.len);
    {
        km_key_sign_req req = {.algo = KM_KEY_ALGO_SCHNORR,
                               .timestamp = ts,
                               .msg = (const unsigned char *)SECRET_MSG,
                               .msg_len = ml,
                               .response_key = rk};
        km_buf re;
        km_buf_init(&re);
        assert_int_equal(km_key_sign_build(W.ctx, W.enc[0].pub, &a->id, &rid, &req, NULL, &re), KM_OK);
        assert_memory_not_equal(re.data + 36, body.data + 36, 34); /* a different ECIES blob */
        assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &re, &again), KM_OK);
        assert_memory_equal(again.data, res.data, res.len);
        km_buf_free(&re);
    }
    km_buf_free(&body);
    /* The same request id for another message, another response key or
     * another algorithm: refused. */
    sign_body(&a->id, &rid, KM_KEY_ALGO_SCHNORR, (const unsigned char *)"other", 5, now_s(), NULL, rk, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_DUPLICATE);
    km_buf_free(&body);
    sign_body(&a->id, &rid, KM_KEY_ALGO_SCHNORR, (const unsigned char *)SECRET_MSG, ml, ts, NULL, rk, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_DUPLICATE); /* fresh rk */
    km_buf_free(&body);

    /* ECDSA retry is identical too (the deterministic nonce is not what
     * makes it so: the cached sealed bytes are). */
    rid = fresh_id();
    sign_body(&a->id, &rid, KM_KEY_ALGO_ECDSA, digest, 32, now_s(), NULL, rk, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, &res), KM_OK);
    check_result(a, &rid, KM_KEY_ALGO_ECDSA, digest, 32, rk, &res, NULL);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, &again), KM_OK);
    assert_memory_equal(again.data, res.data, res.len);
    km_buf_free(&body);

    /* An unknown key. */
    km_uuid nobody = fresh_id();
    rid = fresh_id();
    sign_body(&nobody, &rid, KM_KEY_ALGO_SCHNORR, digest, 32, now_s(), NULL, rk, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_NOT_FOUND);
    km_buf_free(&body);
    km_buf_free(&res);
    km_buf_free(&again);
}

static void test_sign_approval(void **state) {
    (void)state;
    test_key *a = &W.keys[KEY_A], *b = &W.keys[KEY_B];
    const unsigned char *msg = (const unsigned char *)SECRET_MSG;
    size_t ml = strlen(SECRET_MSG);
    unsigned char rk[32], appr[64];
    km_buf body, res;
    km_buf_init(&res);
    km_uuid rid = fresh_id(), rid2 = fresh_id();

    /* Missing. */
    sign_body(&b->id, &rid, KM_KEY_ALGO_SCHNORR, msg, ml, now_s(), NULL, rk, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_VERIFY);
    km_buf_free(&body);
    /* By another key: A's auth key, and B's own signing key. */
    approve(a->auth_sec, &b->id, &rid, KM_KEY_ALGO_SCHNORR, msg, ml, appr);
    sign_body(&b->id, &rid, KM_KEY_ALGO_SCHNORR, msg, ml, now_s(), appr, rk, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_VERIFY);
    km_buf_free(&body);
    approve(b->sec, &b->id, &rid, KM_KEY_ALGO_SCHNORR, msg, ml, appr);
    sign_body(&b->id, &rid, KM_KEY_ALGO_SCHNORR, msg, ml, now_s(), appr, rk, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_VERIFY);
    km_buf_free(&body);
    /* By the right key over something else: another message, another
     * request, another key id, another algorithm. */
    approve(b->auth_sec, &b->id, &rid, KM_KEY_ALGO_SCHNORR, msg, ml - 1, appr);
    sign_body(&b->id, &rid, KM_KEY_ALGO_SCHNORR, msg, ml, now_s(), appr, rk, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_VERIFY);
    km_buf_free(&body);
    approve(b->auth_sec, &b->id, &rid2, KM_KEY_ALGO_SCHNORR, msg, ml, appr);
    sign_body(&b->id, &rid, KM_KEY_ALGO_SCHNORR, msg, ml, now_s(), appr, rk, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_VERIFY);
    km_buf_free(&body);
    approve(b->auth_sec, &a->id, &rid, KM_KEY_ALGO_SCHNORR, msg, ml, appr);
    sign_body(&b->id, &rid, KM_KEY_ALGO_SCHNORR, msg, ml, now_s(), appr, rk, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_VERIFY);
    km_buf_free(&body);
    unsigned char digest[32];
    km_sha256(digest, msg, ml);
    approve(b->auth_sec, &b->id, &rid, KM_KEY_ALGO_SCHNORR, digest, 32, appr);
    sign_body(&b->id, &rid, KM_KEY_ALGO_ECDSA, digest, 32, now_s(), appr, rk, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_VERIFY);
    km_buf_free(&body);
    /* A valid approval moved onto a tampered approval byte. */
    approve(b->auth_sec, &b->id, &rid, KM_KEY_ALGO_SCHNORR, msg, ml, appr);
    sign_body(&b->id, &rid, KM_KEY_ALGO_SCHNORR, msg, ml, now_s(), appr, rk, &body);
    body.data[body.len - 1] ^= 1;
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_VERIFY);
    body.data[body.len - 1] ^= 1;
    /* None of the refusals used up the request id: the approved request
     * now signs. */
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, &res), KM_OK);
    check_result(b, &rid, KM_KEY_ALGO_SCHNORR, msg, ml, rk, &res, NULL);
    km_buf_free(&body);
    /* ECDSA with its own approval. */
    approve(b->auth_sec, &b->id, &rid2, KM_KEY_ALGO_ECDSA, digest, 32, appr);
    sign_ok(KEY_B, KM_KEY_ALGO_ECDSA, digest, 32, appr, &rid2);

    /* A key without the flag signs without approval, but an approval that
     * is given must still verify. */
    km_uuid rid3 = fresh_id();
    approve(b->auth_sec, &a->id, &rid3, KM_KEY_ALGO_SCHNORR, msg, ml, appr);
    sign_body(&a->id, &rid3, KM_KEY_ALGO_SCHNORR, msg, ml, now_s(), appr, rk, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_VERIFY);
    km_buf_free(&body);
    approve(a->auth_sec, &a->id, &rid3, KM_KEY_ALGO_SCHNORR, msg, ml, appr);
    sign_ok(KEY_A, KM_KEY_ALGO_SCHNORR, msg, ml, appr, &rid3);
    km_buf_free(&res);
}

static void test_sign_attacks(void **state) {
    (void)state;
    test_key *a = &W.keys[KEY_A], *c = &W.keys[KEY_C];
    unsigned char rk[32], digest[32];
    km_sha256(digest, "x", 1);
    km_buf body;
    km_uuid rid = fresh_id(), rid2 = fresh_id();

    /* The request for key A replayed under key C's id, under another
     * request id, or to another enclave. */
    sign_body(&a->id, &rid, KM_KEY_ALGO_SCHNORR, digest, 32, now_s(), NULL, rk, &body);
    memcpy(body.data, c->id.b, 16);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_DECRYPT);
    memcpy(body.data, a->id.b, 16);
    memcpy(body.data + 16, rid2.b, 16);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_DECRYPT);
    memcpy(body.data + 16, rid.b, 16);
    assert_int_equal(callb(1, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_DECRYPT);
    /* Tampered anywhere in the blob. */
    for (size_t pos = 36; pos < body.len - 1; pos += 3) {
        body.data[pos] ^= 0x01;
        assert_int_not_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_OK);
        body.data[pos] ^= 0x01;
    }
    /* Malformed bodies. */
    body.len--;
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_PARSE);
    body.data[body.len] = 2; /* has_approval neither 0 nor 1 */
    body.len++;
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_PARSE);
    body.data[body.len - 1] = 0;
    assert_int_equal(km_buf_put_u8(&body, 0), KM_OK);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_PARSE);
    body.len--;
    /* After all that, the untouched request still signs (nothing was used up). */
    km_buf res;
    km_buf_init(&res);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, &res), KM_OK);
    check_result(a, &rid, KM_KEY_ALGO_SCHNORR, digest, 32, rk, &res, NULL);
    km_buf_free(&body);
    km_buf_free(&res);

    /* Stale and future timestamps. */
    uint64_t now = now_s();
    const uint64_t bad_ts[] = {now - KM_KEY_TIME_WINDOW - 5, now + KM_KEY_TIME_WINDOW + 5, 0, UINT64_MAX};
    for (size_t i = 0; i < sizeof bad_ts / sizeof bad_ts[0]; i++) {
        rid = fresh_id();
        sign_body(&a->id, &rid, KM_KEY_ALGO_SCHNORR, digest, 32, bad_ts[i], NULL, rk, &body);
        assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_RANGE);
        km_buf_free(&body);
    }
    rid = fresh_id();
    sign_body(&a->id, &rid, KM_KEY_ALGO_SCHNORR, digest, 32, now - KM_KEY_TIME_WINDOW + 30, NULL, rk, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_OK);
    km_buf_free(&body);

    /* Plaintexts the honest encoder refuses to make. */
    unsigned char pt[KM_KEY_SIGN_FIXED_LEN + KM_KEY_MSG_MAX + 1];
    memset(pt, 0x33, sizeof pt);
    pt[0] = 1;
    pt[1] = KM_KEY_ALGO_SCHNORR;
    for (int i = 0; i < 8; i++)
        pt[2 + i] = (unsigned char)(now >> (56 - 8 * i));
    uint32_t big = KM_KEY_MSG_MAX + 1;
    pt[10] = 0;
    pt[11] = 0;
    pt[12] = (unsigned char)(big >> 8);
    pt[13] = (unsigned char)big;
    rid = fresh_id();
    raw_sign_body(&a->id, &rid, pt, 14 + big + 32, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_RANGE);
    km_buf_free(&body);
    pt[1] = KM_KEY_ALGO_ECDSA; /* ECDSA over 31 bytes: not a digest */
    pt[12] = 0;
    pt[13] = 31;
    raw_sign_body(&a->id, &rid, pt, 14 + 31 + 32, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_RANGE);
    km_buf_free(&body);
    pt[1] = 3; /* unknown algorithm */
    pt[13] = 32;
    raw_sign_body(&a->id, &rid, pt, 14 + 32 + 32, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_UNSUPPORTED);
    km_buf_free(&body);
    pt[1] = KM_KEY_ALGO_ECDSA;
    raw_sign_body(&a->id, &rid, pt, 14 + 32 + 31, &body); /* response key cut short */
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_PARSE);
    km_buf_free(&body);
}

static void test_sign_cache_is_bounded(void **state) {
    (void)state;
    /* The first request drops out of the cache after KM_KEY_SIGN_CACHE
     * newer ones (the memory an attacker can make a key hold is bounded);
     * newer ones are still answered from it. */
    test_key *c = &W.keys[KEY_C];
    unsigned char digest[32], rk0[32], rk1[32], rk[32];
    km_sha256(digest, "cache", 5);
    km_uuid rid0 = fresh_id(), rid1 = fresh_id();
    km_buf b0, b1, r0, r1, body, again;
    km_buf_init(&r0);
    km_buf_init(&r1);
    km_buf_init(&again);
    sign_body(&c->id, &rid0, KM_KEY_ALGO_ECDSA, digest, 32, now_s(), NULL, rk0, &b0);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &b0, &r0), KM_OK);
    sign_body(&c->id, &rid1, KM_KEY_ALGO_ECDSA, digest, 32, now_s(), NULL, rk1, &b1);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &b1, &r1), KM_OK);
    for (int i = 0; i < KM_KEY_SIGN_CACHE - 1; i++) {
        km_uuid rid = fresh_id();
        sign_body(&c->id, &rid, KM_KEY_ALGO_ECDSA, digest, 32, now_s(), NULL, rk, &body);
        assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_OK);
        km_buf_free(&body);
    }
    /* rid1 is the oldest kept entry: same bytes. */
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &b1, &again), KM_OK);
    assert_int_equal(again.len, r1.len);
    assert_memory_equal(again.data, r1.data, r1.len);
    /* rid0 was evicted: answered afresh (a new sealing of a valid signature). */
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &b0, &again), KM_OK);
    assert_memory_not_equal(again.data, r0.data, r0.len);
    check_result(c, &rid0, KM_KEY_ALGO_ECDSA, digest, 32, rk0, &again, NULL);
    km_buf_free(&b0);
    km_buf_free(&b1);
    km_buf_free(&r0);
    km_buf_free(&r1);
    km_buf_free(&again);
}

static void delete_body(const test_key *k, const unsigned char auth_sec[32], uint64_t ts, uint64_t signed_ts,
                        unsigned char body[KM_KEY_DELETE_LEN]) {
    unsigned char d[32], sig[64];
    km_key_delete_digest(d, &k->id, signed_ts);
    assert_int_equal(km_single_schnorr_sign(W.ctx, sig, d, 32, auth_sec), KM_OK);
    km_key_delete_encode(body, &k->id, ts, sig);
}

static void test_delete(void **state) {
    (void)state;
    test_key *a = &W.keys[KEY_A], *b = &W.keys[KEY_B];
    unsigned char body[KM_KEY_DELETE_LEN + 1];
    uint64_t now = now_s();
    uint32_t before = info_keys(0);
    /* Signed by another key (A's auth key, B's own signing key). */
    delete_body(b, a->auth_sec, now, now, body);
    assert_int_equal(call(0, KM_CMD_KEY_DELETE, body, KM_KEY_DELETE_LEN, NULL), KM_ERR_VERIFY);
    delete_body(b, b->sec, now, now, body);
    assert_int_equal(call(0, KM_CMD_KEY_DELETE, body, KM_KEY_DELETE_LEN, NULL), KM_ERR_VERIFY);
    /* Signed for another time than the body says; A's deletion sent for B. */
    delete_body(b, b->auth_sec, now, now - 1, body);
    assert_int_equal(call(0, KM_CMD_KEY_DELETE, body, KM_KEY_DELETE_LEN, NULL), KM_ERR_VERIFY);
    delete_body(a, a->auth_sec, now, now, body);
    memcpy(body, b->id.b, 16);
    assert_int_equal(call(0, KM_CMD_KEY_DELETE, body, KM_KEY_DELETE_LEN, NULL), KM_ERR_VERIFY);
    /* Properly signed but stale or from the future. */
    delete_body(b, b->auth_sec, now - KM_KEY_TIME_WINDOW - 5, now - KM_KEY_TIME_WINDOW - 5, body);
    assert_int_equal(call(0, KM_CMD_KEY_DELETE, body, KM_KEY_DELETE_LEN, NULL), KM_ERR_RANGE);
    delete_body(b, b->auth_sec, now + KM_KEY_TIME_WINDOW + 5, now + KM_KEY_TIME_WINDOW + 5, body);
    assert_int_equal(call(0, KM_CMD_KEY_DELETE, body, KM_KEY_DELETE_LEN, NULL), KM_ERR_RANGE);
    /* Malformed. */
    delete_body(b, b->auth_sec, now, now, body);
    assert_int_equal(call(0, KM_CMD_KEY_DELETE, body, KM_KEY_DELETE_LEN - 1, NULL), KM_ERR_PARSE);
    body[KM_KEY_DELETE_LEN] = 0;
    assert_int_equal(call(0, KM_CMD_KEY_DELETE, body, KM_KEY_DELETE_LEN + 1, NULL), KM_ERR_PARSE);
    /* Nothing changed: B is there and still signs (with its approval). */
    assert_int_equal(info_keys(0), before);
    unsigned char digest[32], appr[64];
    km_sha256(digest, "still here", 10);
    km_uuid rid = fresh_id();
    approve(b->auth_sec, &b->id, &rid, KM_KEY_ALGO_SCHNORR, digest, 32, appr);
    sign_ok(KEY_B, KM_KEY_ALGO_SCHNORR, digest, 32, appr, &rid);

    /* The owner deletes B. */
    delete_body(b, b->auth_sec, now, now, body);
    assert_int_equal(call(0, KM_CMD_KEY_DELETE, body, KM_KEY_DELETE_LEN, NULL), KM_OK);
    assert_int_equal(info_keys(0), before - 1);
    unsigned char rk[32];
    km_buf sb;
    rid = fresh_id();
    approve(b->auth_sec, &b->id, &rid, KM_KEY_ALGO_SCHNORR, digest, 32, appr);
    sign_body(&b->id, &rid, KM_KEY_ALGO_SCHNORR, digest, 32, now_s(), appr, rk, &sb);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &sb, NULL), KM_ERR_NOT_FOUND);
    km_buf_free(&sb);
    assert_int_equal(call(0, KM_CMD_KEY_DELETE, body, KM_KEY_DELETE_LEN, NULL), KM_ERR_NOT_FOUND);
    /* A unknown key id. */
    test_key ghost = *a;
    ghost.id = fresh_id();
    delete_body(&ghost, a->auth_sec, now, now, body);
    assert_int_equal(call(0, KM_CMD_KEY_DELETE, body, KM_KEY_DELETE_LEN, NULL), KM_ERR_NOT_FOUND);
    km_wipe(&ghost, sizeof ghost);
    /* A is untouched. */
    rid = fresh_id();
    sign_ok(KEY_A, KM_KEY_ALGO_SCHNORR, digest, 32, NULL, &rid);
}

static void test_restart_and_restore(void **state) {
    (void)state;
    test_key *a = &W.keys[KEY_A];
    km_enclave_conn_close(&W.conn[0]);
    assert_int_equal(km_test_enclave_stop(&W.enc[0]), 0);
    assert_int_equal(km_test_enclave_restart(&W.enc[0]), 0);
    assert_int_equal(km_test_enclave_connect(W.ctx, &W.enc[0], &W.conn[0]), KM_OK);
    /* Keys lived in memory only. */
    assert_int_equal(info_keys(0), 0);
    unsigned char digest[32], rk[32];
    km_sha256(digest, "after restart", 13);
    km_uuid rid = fresh_id();
    km_buf body, res;
    km_buf_init(&res);
    sign_body(&a->id, &rid, KM_KEY_ALGO_SCHNORR, digest, 32, now_s(), NULL, rk, &body);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, NULL), KM_ERR_NOT_FOUND);
    /* The gateway replays the import body it stored at the first import
     * (the very same bytes): the same key signs again. */
    assert_int_equal(callb(0, KM_CMD_KEY_IMPORT, &a->import, NULL), KM_OK);
    assert_int_equal(info_keys(0), 1);
    assert_int_equal(callb(0, KM_CMD_KEY_SIGN, &body, &res), KM_OK);
    check_result(a, &rid, KM_KEY_ALGO_SCHNORR, digest, 32, rk, &res, NULL);
    km_buf_free(&body);
    rid = fresh_id();
    sign_ok(KEY_A, KM_KEY_ALGO_ECDSA, digest, 32, NULL, &rid);
    km_buf_free(&res);
}

/* Both enclaves shut down cleanly with keys, caches and a restored key in
 * memory: wiping them must not crash (in the sanitizer build a memory error
 * there fails the exit status; leaks are not checked, the enclave leaves
 * through _exit). */
static void test_clean_shutdown(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        km_enclave_conn_close(&W.conn[i]);
        assert_int_equal(km_test_enclave_stop(&W.enc[i]), 0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import),
        cmocka_unit_test(test_sign_schnorr_and_ecdsa),
        cmocka_unit_test(test_sign_approval),
        cmocka_unit_test(test_sign_attacks),
        cmocka_unit_test(test_sign_cache_is_bounded),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_restart_and_restore),
        cmocka_unit_test(test_clean_shutdown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
