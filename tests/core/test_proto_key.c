/* test_proto_key.c — the single-signer codec (keymeld/proto_key.h): both
 * halves of every message, their refusals, and the digests the auth key
 * signs.
 *
 * The digest known answers were computed once, independently of this code,
 * with Python 3 hashlib:
 *
 *   th  = lambda tag, m: sha256(sha256(tag)*2 + m)
 *   kid = bytes(range(16)); rid = bytes(range(16, 32))
 *   th(b"KeyMeld/single-approval", kid + rid + b"\x01" + sha256(b"keymeld single-signer test"))
 *   th(b"KeyMeld/single-approval", kid + rid + b"\x02" + sha256(b""))
 *   th(b"KeyMeld/key-delete", kid + (1700000000).to_bytes(8, "big"))
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keymeld/aead.h"
#include "keymeld/ecies.h"
#include "keymeld/hex.h"
#include "keymeld/proto_key.h"

static km_ctx *g_ctx;
static km_secret *g_enc_sec;
static unsigned char g_enc_pub[33];
static km_uuid g_kid, g_rid;

static const char KAT_APPROVAL_SCHNORR[] = "04843e2e8cfb609323ded1144c35f499a756a1b16d21b11bdab665e3331d9b27";
static const char KAT_APPROVAL_ECDSA_EMPTY[] =
    "3bc9a2eef9e5f35e0dd34e6296f52450b92ef1b6b7977f6579c97fa5fac7a62c";
static const char KAT_DELETE[] = "483228ed4b11b0b1ac3e7f1328a78691fd714335043ca33eef77c1f5cafb6221";

static void unhex(unsigned char *out, size_t n, const char *hex) {
    assert_int_equal(km_hex_decode(out, n, hex, strlen(hex)), KM_OK);
}

static int all_zero(const unsigned char *p, size_t n) {
    unsigned char acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

static int setup(void **state) {
    (void)state;
    if (km_ctx_create(&g_ctx) != KM_OK) return -1;
    if (km_ecies_keygen(g_ctx, &g_enc_sec, g_enc_pub) != KM_OK) return -1;
    for (int i = 0; i < 16; i++) {
        g_kid.b[i] = (unsigned char)i;
        g_rid.b[i] = (unsigned char)(16 + i);
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    km_secret_free(g_enc_sec);
    km_ctx_destroy(g_ctx);
    return 0;
}

static void sample_import(km_key_import *k, uint8_t flags) {
    memset(k->seckey, 0x11, 32);
    memset(k->auth_pub, 0x22, 32);
    k->seckey[31] = 0x33;
    k->flags = flags;
}

static void test_import_plaintext(void **state) {
    (void)state;
    km_key_import in, out;
    unsigned char pt[KM_KEY_IMPORT_LEN];
    assert_int_equal(KM_KEY_IMPORT_LEN, 1 + 32 + 32 + 1);
    for (uint8_t flags = 0; flags <= 1; flags++) {
        sample_import(&in, flags);
        /* Every byte is determined by the fields (two encodings into
         * differently pre-filled buffers agree with the hand-built one). */
        unsigned char want[KM_KEY_IMPORT_LEN];
        want[0] = KM_KEY_PROTO_VERSION;
        memcpy(want + 1, in.seckey, 32);
        memcpy(want + 33, in.auth_pub, 32);
        want[65] = flags;
        memset(pt, 0xee, sizeof pt);
        assert_int_equal(km_key_import_encode(&in, pt), KM_OK);
        assert_memory_equal(pt, want, sizeof want);
        memset(pt, 0x00, sizeof pt);
        assert_int_equal(km_key_import_encode(&in, pt), KM_OK);
        assert_memory_equal(pt, want, sizeof want);
        assert_int_equal(km_key_import_decode(&out, pt, sizeof pt), KM_OK);
        assert_memory_equal(&out, &in, sizeof in);
    }
    /* Reserved flag bits are refused on both sides. */
    sample_import(&in, 0x02);
    assert_int_equal(km_key_import_encode(&in, pt), KM_ERR_UNSUPPORTED);
    assert_true(all_zero(pt, sizeof pt));
    sample_import(&in, 0);
    assert_int_equal(km_key_import_encode(&in, pt), KM_OK);
    for (unsigned bit = 1; bit < 8; bit++) {
        pt[65] = (unsigned char)(1u << bit);
        assert_int_equal(km_key_import_decode(&out, pt, sizeof pt), KM_ERR_UNSUPPORTED);
        assert_true(all_zero((unsigned char *)&out, sizeof out));
    }
    pt[65] = 0;
    pt[0] = 2;
    assert_int_equal(km_key_import_decode(&out, pt, sizeof pt), KM_ERR_UNSUPPORTED);
    pt[0] = 0;
    assert_int_equal(km_key_import_decode(&out, pt, sizeof pt), KM_ERR_UNSUPPORTED);
    pt[0] = 1;
    assert_int_equal(km_key_import_decode(&out, pt, sizeof pt - 1), KM_ERR_PARSE);
    unsigned char longer[KM_KEY_IMPORT_LEN + 1];
    memcpy(longer, pt, sizeof pt);
    longer[KM_KEY_IMPORT_LEN] = 0;
    assert_int_equal(km_key_import_decode(&out, longer, sizeof longer), KM_ERR_PARSE);
    assert_int_equal(km_key_import_decode(&out, NULL, 0), KM_ERR_PARSE);
    km_wipe(pt, sizeof pt);
}

static void test_import_body(void **state) {
    (void)state;
    km_key_import in;
    sample_import(&in, 1);
    km_uuid user;
    memset(user.b, 0x77, 16);
    km_buf body;
    km_buf_init(&body);
    assert_int_equal(km_key_import_build(g_ctx, g_enc_pub, &g_kid, &user, &in, &body), KM_OK);
    assert_int_equal(body.len, 16 + 16 + 4 + KM_KEY_IMPORT_LEN + KM_ECIES_OVERHEAD);
    km_key_import_cmd cmd;
    assert_int_equal(km_key_import_parse(&cmd, body.data, body.len), KM_OK);
    assert_memory_equal(cmd.key_id.b, g_kid.b, 16);
    assert_memory_equal(cmd.user_id.b, user.b, 16);
    assert_int_equal(cmd.blob_len, KM_KEY_IMPORT_LEN + KM_ECIES_OVERHEAD);
    /* The enclave opens it under the import AD of this key and user only. */
    km_ad ad;
    unsigned char pt[KM_KEY_IMPORT_LEN + 8];
    size_t pt_len;
    assert_int_equal(km_key_import_ad(&ad, &g_kid, &user), KM_OK);
    assert_int_equal(km_ecies_open(g_ctx, km_secret_cdata(g_enc_sec), ad.bytes, ad.len, cmd.blob,
                                   cmd.blob_len, pt, sizeof pt, &pt_len),
                     KM_OK);
    km_key_import out;
    assert_int_equal(km_key_import_decode(&out, pt, pt_len), KM_OK);
    assert_memory_equal(&out, &in, sizeof in);
    assert_int_equal(km_key_import_ad(&ad, &user, &g_kid), KM_OK);
    assert_int_equal(km_ecies_open(g_ctx, km_secret_cdata(g_enc_sec), ad.bytes, ad.len, cmd.blob,
                                   cmd.blob_len, pt, sizeof pt, &pt_len),
                     KM_ERR_DECRYPT);
    assert_int_equal(km_key_sign_ad(&ad, &g_kid, &user), KM_OK); /* same ids, other purpose */
    assert_int_equal(km_ecies_open(g_ctx, km_secret_cdata(g_enc_sec), ad.bytes, ad.len, cmd.blob,
                                   cmd.blob_len, pt, sizeof pt, &pt_len),
                     KM_ERR_DECRYPT);
    /* The secret key does not appear in clear in the body. */
    for (size_t off = 0; off + 32 <= body.len; off++)
        assert_memory_not_equal(body.data + off, in.seckey, 32);

    /* Structure refusals: every truncation, a trailing byte, an oversized
     * length that is present in full. */
    for (size_t l = 0; l < body.len; l++) {
        assert_int_equal(km_key_import_parse(&cmd, body.data, l), KM_ERR_PARSE);
        assert_true(all_zero((unsigned char *)&cmd, sizeof cmd));
    }
    assert_int_equal(km_buf_put_u8(&body, 0), KM_OK);
    assert_int_equal(km_key_import_parse(&cmd, body.data, body.len), KM_ERR_PARSE);
    km_buf big;
    km_buf_init(&big);
    assert_int_equal(km_buf_put(&big, g_kid.b, 16), KM_OK);
    assert_int_equal(km_buf_put(&big, user.b, 16), KM_OK);
    assert_int_equal(km_buf_put_u32(&big, KM_KEY_BLOB_MAX + 1), KM_OK);
    unsigned char *fill = calloc(1, KM_KEY_BLOB_MAX + 1);
    assert_non_null(fill);
    assert_int_equal(km_buf_put(&big, fill, KM_KEY_BLOB_MAX + 1), KM_OK);
    assert_int_equal(km_key_import_parse(&cmd, big.data, big.len), KM_ERR_PARSE);
    /* ... while exactly the maximum passes the structure check. */
    big.len = 32;
    assert_int_equal(km_buf_put_u32(&big, KM_KEY_BLOB_MAX), KM_OK);
    assert_int_equal(km_buf_put(&big, fill, KM_KEY_BLOB_MAX), KM_OK);
    assert_int_equal(km_key_import_parse(&cmd, big.data, big.len), KM_OK);
    free(fill);
    km_buf_free(&big);

    /* Build refusals leave the body empty. */
    unsigned char bad_pub[33];
    memset(bad_pub, 0, sizeof bad_pub);
    bad_pub[0] = 0x02;
    assert_int_equal(km_key_import_build(g_ctx, bad_pub, &g_kid, &user, &in, &body), KM_ERR_INVALID_POINT);
    assert_int_equal(body.len, 0);
    in.flags = 0x80;
    assert_int_equal(km_key_import_build(g_ctx, g_enc_pub, &g_kid, &user, &in, &body), KM_ERR_UNSUPPORTED);
    assert_int_equal(body.len, 0);
    km_wipe(&in, sizeof in);
    km_buf_free(&body);
}

/* A sign plaintext with fields at their extremes must decode to itself. */
static void sign_roundtrip(uint8_t algo, size_t msg_len) {
    unsigned char msg[KM_KEY_MSG_MAX], rk[32];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (unsigned char)(i * 7 + 3);
    memset(rk, 0xa5, sizeof rk);
    km_key_sign_req in = {
        .algo = algo, .timestamp = 0x0102030405060708ull, .msg = msg, .msg_len = msg_len, .response_key = rk};
    km_buf pt;
    km_buf_init(&pt);
    assert_int_equal(km_key_sign_encode(&in, &pt), KM_OK);
    assert_int_equal(pt.len, KM_KEY_SIGN_FIXED_LEN + msg_len);
    /* The exact layout: version | algo | u64 | u32 | msg | response_key. */
    static const unsigned char head[10] = {1, 0, 1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(pt.data[0], KM_KEY_PROTO_VERSION);
    assert_int_equal(pt.data[1], algo);
    assert_memory_equal(pt.data + 2, head + 2, 8);
    assert_int_equal(((size_t)pt.data[10] << 24) | ((size_t)pt.data[11] << 16) | ((size_t)pt.data[12] << 8) |
                         pt.data[13],
                     msg_len);
    if (msg_len) assert_memory_equal(pt.data + 14, msg, msg_len);
    assert_memory_equal(pt.data + 14 + msg_len, rk, 32);
    km_key_sign_req out;
    assert_int_equal(km_key_sign_decode(&out, pt.data, pt.len), KM_OK);
    assert_int_equal(out.algo, algo);
    assert_int_equal(out.timestamp, in.timestamp);
    assert_int_equal(out.msg_len, msg_len);
    if (msg_len) assert_memory_equal(out.msg, msg, msg_len);
    assert_memory_equal(out.response_key, rk, 32);
    assert_ptr_equal(out.response_key, pt.data + pt.len - 32); /* views into the input */
    km_buf_free(&pt);
}

static void test_sign_plaintext(void **state) {
    (void)state;
    sign_roundtrip(KM_KEY_ALGO_SCHNORR, 0);
    sign_roundtrip(KM_KEY_ALGO_SCHNORR, 1);
    sign_roundtrip(KM_KEY_ALGO_SCHNORR, 32);
    sign_roundtrip(KM_KEY_ALGO_SCHNORR, KM_KEY_MSG_MAX);
    sign_roundtrip(KM_KEY_ALGO_ECDSA, 32);

    unsigned char msg[KM_KEY_MSG_MAX + 1], rk[32];
    memset(msg, 0x5c, sizeof msg);
    memset(rk, 0x3c, sizeof rk);
    km_key_sign_req in = {.algo = KM_KEY_ALGO_SCHNORR, .timestamp = 1, .msg = msg, .response_key = rk};
    km_buf pt;
    km_buf_init(&pt);
    /* Encode refusals append nothing. */
    in.msg_len = KM_KEY_MSG_MAX + 1;
    assert_int_equal(km_key_sign_encode(&in, &pt), KM_ERR_RANGE);
    in.algo = KM_KEY_ALGO_ECDSA;
    in.msg_len = 31;
    assert_int_equal(km_key_sign_encode(&in, &pt), KM_ERR_RANGE);
    in.msg_len = 33;
    assert_int_equal(km_key_sign_encode(&in, &pt), KM_ERR_RANGE);
    in.algo = 0;
    in.msg_len = 32;
    assert_int_equal(km_key_sign_encode(&in, &pt), KM_ERR_UNSUPPORTED);
    in.algo = 3;
    assert_int_equal(km_key_sign_encode(&in, &pt), KM_ERR_UNSUPPORTED);
    in.algo = KM_KEY_ALGO_SCHNORR;
    in.msg = NULL;
    assert_int_equal(km_key_sign_encode(&in, &pt), KM_ERR_ARG);
    in.msg = msg;
    in.response_key = NULL;
    assert_int_equal(km_key_sign_encode(&in, &pt), KM_ERR_ARG);
    assert_int_equal(pt.len, 0);

    /* Decode refusals, on a hand-built plaintext so the decoder is tested
     * against what a hostile sender can produce, not only against encode. */
    km_key_sign_req out;
    unsigned char raw[KM_KEY_SIGN_FIXED_LEN + KM_KEY_MSG_MAX + 2];
    size_t n;
#define BUILD(ver, algo_, mlen_claim, mlen_real)                                                             \
    do {                                                                                                     \
        raw[0] = (ver);                                                                                      \
        raw[1] = (algo_);                                                                                    \
        memset(raw + 2, 0, 8);                                                                               \
        raw[10] = (unsigned char)((uint32_t)(mlen_claim) >> 24);                                             \
        raw[11] = (unsigned char)((uint32_t)(mlen_claim) >> 16);                                             \
        raw[12] = (unsigned char)((uint32_t)(mlen_claim) >> 8);                                              \
        raw[13] = (unsigned char)(mlen_claim);                                                               \
        memset(raw + 14, 0x42, (mlen_real) + 32);                                                            \
        n = 14 + (mlen_real) + 32;                                                                           \
    } while (0)
    BUILD(1, KM_KEY_ALGO_SCHNORR, 5, 5);
    assert_int_equal(km_key_sign_decode(&out, raw, n), KM_OK);
    assert_int_equal(km_key_sign_decode(&out, raw, n - 1), KM_ERR_PARSE); /* short response key */
    assert_true(all_zero((unsigned char *)&out, sizeof out));
    raw[n] = 0;
    assert_int_equal(km_key_sign_decode(&out, raw, n + 1), KM_ERR_PARSE); /* trailing byte */
    BUILD(1, KM_KEY_ALGO_SCHNORR, 6, 5);                                  /* claims more than present */
    assert_int_equal(km_key_sign_decode(&out, raw, n), KM_ERR_PARSE);
    BUILD(1, KM_KEY_ALGO_SCHNORR, 0xffffffffu, 5);
    assert_int_equal(km_key_sign_decode(&out, raw, n), KM_ERR_RANGE);
    BUILD(1, KM_KEY_ALGO_SCHNORR, KM_KEY_MSG_MAX + 1, KM_KEY_MSG_MAX + 1);
    assert_int_equal(km_key_sign_decode(&out, raw, n), KM_ERR_RANGE);
    BUILD(1, KM_KEY_ALGO_ECDSA, 31, 31);
    assert_int_equal(km_key_sign_decode(&out, raw, n), KM_ERR_RANGE);
    BUILD(1, KM_KEY_ALGO_ECDSA, 32, 32);
    assert_int_equal(km_key_sign_decode(&out, raw, n), KM_OK);
    BUILD(2, KM_KEY_ALGO_ECDSA, 32, 32);
    assert_int_equal(km_key_sign_decode(&out, raw, n), KM_ERR_UNSUPPORTED);
    BUILD(1, 0, 32, 32);
    assert_int_equal(km_key_sign_decode(&out, raw, n), KM_ERR_UNSUPPORTED);
    BUILD(1, 3, 32, 32);
    assert_int_equal(km_key_sign_decode(&out, raw, n), KM_ERR_UNSUPPORTED);
#undef BUILD
    for (size_t l = 0; l < 14; l++)
        assert_int_equal(km_key_sign_decode(&out, raw, l), KM_ERR_PARSE);
    assert_int_equal(km_key_sign_decode(&out, NULL, 0), KM_ERR_PARSE);
    km_buf_free(&pt);
}

static void test_sign_body(void **state) {
    (void)state;
    unsigned char msg[32], rk[32], appr[64];
    memset(msg, 0x61, sizeof msg);
    memset(rk, 0x62, sizeof rk);
    memset(appr, 0x63, sizeof appr);
    km_key_sign_req req = {
        .algo = KM_KEY_ALGO_ECDSA, .timestamp = 99, .msg = msg, .msg_len = 32, .response_key = rk};
    km_buf body;
    km_buf_init(&body);
    for (int with = 0; with <= 1; with++) {
        assert_int_equal(km_key_sign_build(g_ctx, g_enc_pub, &g_kid, &g_rid, &req, with ? appr : NULL, &body),
                         KM_OK);
        size_t blob_len = KM_KEY_SIGN_FIXED_LEN + 32 + KM_ECIES_OVERHEAD;
        assert_int_equal(body.len, 16 + 16 + 4 + blob_len + 1 + (with ? 64 : 0));
        km_key_sign_cmd cmd;
        assert_int_equal(km_key_sign_parse(&cmd, body.data, body.len), KM_OK);
        assert_memory_equal(cmd.key_id.b, g_kid.b, 16);
        assert_memory_equal(cmd.request_id.b, g_rid.b, 16);
        assert_int_equal(cmd.blob_len, blob_len);
        if (with) {
            assert_non_null(cmd.approval_sig);
            assert_memory_equal(cmd.approval_sig, appr, 64);
        } else {
            assert_null(cmd.approval_sig);
        }
        /* Neither the message nor the response key is visible. */
        for (size_t off = 0; off + 32 <= body.len; off++) {
            assert_memory_not_equal(body.data + off, msg, 32);
            assert_memory_not_equal(body.data + off, rk, 32);
        }
        km_ad ad;
        km_secret *pt = NULL;
        assert_int_equal(km_key_sign_ad(&ad, &g_kid, &g_rid), KM_OK);
        assert_int_equal(km_ecies_open_secret(g_ctx, km_secret_cdata(g_enc_sec), ad.bytes, ad.len, cmd.blob,
                                              cmd.blob_len, &pt),
                         KM_OK);
        km_key_sign_req out;
        assert_int_equal(km_key_sign_decode(&out, km_secret_cdata(pt), km_secret_len(pt)), KM_OK);
        assert_int_equal(out.algo, KM_KEY_ALGO_ECDSA);
        assert_int_equal(out.timestamp, 99);
        assert_memory_equal(out.msg, msg, 32);
        assert_memory_equal(out.response_key, rk, 32);
        km_secret_free(pt);
        /* Under the swapped ids it does not open. */
        assert_int_equal(km_key_sign_ad(&ad, &g_rid, &g_kid), KM_OK);
        assert_int_equal(km_ecies_open_secret(g_ctx, km_secret_cdata(g_enc_sec), ad.bytes, ad.len, cmd.blob,
                                              cmd.blob_len, &pt),
                         KM_ERR_DECRYPT);
        assert_null(pt);
        for (size_t l = 0; l < body.len; l++)
            assert_int_equal(km_key_sign_parse(&cmd, body.data, l), KM_ERR_PARSE);
        size_t flag_at = 36 + blob_len;
        unsigned char saved = body.data[flag_at];
        body.data[flag_at] = 2; /* neither 0 nor 1 */
        assert_int_equal(km_key_sign_parse(&cmd, body.data, body.len), KM_ERR_PARSE);
        body.data[flag_at] = (unsigned char)(1 - saved); /* flag disagrees with what follows */
        assert_int_equal(km_key_sign_parse(&cmd, body.data, body.len), KM_ERR_PARSE);
        body.data[flag_at] = saved;
        assert_int_equal(km_buf_put_u8(&body, 0), KM_OK);
        assert_int_equal(km_key_sign_parse(&cmd, body.data, body.len), KM_ERR_PARSE);
        assert_true(all_zero((unsigned char *)&cmd, sizeof cmd));
    }
    /* A refused request leaves no body. */
    req.msg_len = 33;
    assert_int_equal(km_key_sign_build(g_ctx, g_enc_pub, &g_kid, &g_rid, &req, NULL, &body), KM_ERR_RANGE);
    assert_int_equal(body.len, 0);
    km_buf_free(&body);
}

static void test_result(void **state) {
    (void)state;
    unsigned char rk[32], sig[64], got[64];
    assert_int_equal(km_random_bytes(rk, 32), KM_OK);
    assert_int_equal(km_random_bytes(sig, 64), KM_OK);
    km_buf blob;
    km_buf_init(&blob);
    assert_int_equal(km_key_sign_result_seal(g_ctx, rk, &g_kid, &g_rid, KM_KEY_ALGO_SCHNORR, sig, &blob),
                     KM_OK);
    assert_int_equal(blob.len, KM_KEY_SIGN_RESULT_LEN + KM_SESSION_OVERHEAD);
    for (size_t off = 0; off + 64 <= blob.len; off++)
        assert_memory_not_equal(blob.data + off, sig, 64);
    assert_int_equal(
        km_key_sign_result_open(g_ctx, rk, &g_kid, &g_rid, KM_KEY_ALGO_SCHNORR, blob.data, blob.len, got),
        KM_OK);
    assert_memory_equal(got, sig, 64);
    /* Another response key, key id or request id: does not open, sig zeroed. */
    unsigned char rk2[32];
    memcpy(rk2, rk, 32);
    rk2[0] ^= 1;
    memset(got, 0xff, 64);
    assert_int_equal(
        km_key_sign_result_open(g_ctx, rk2, &g_kid, &g_rid, KM_KEY_ALGO_SCHNORR, blob.data, blob.len, got),
        KM_ERR_DECRYPT);
    assert_true(all_zero(got, 64));
    assert_int_equal(
        km_key_sign_result_open(g_ctx, rk, &g_rid, &g_kid, KM_KEY_ALGO_SCHNORR, blob.data, blob.len, got),
        KM_ERR_DECRYPT);
    assert_int_equal(
        km_key_sign_result_open(g_ctx, rk, &g_kid, &g_kid, KM_KEY_ALGO_SCHNORR, blob.data, blob.len, got),
        KM_ERR_DECRYPT);
    /* An answer for another algorithm than asked is refused. */
    memset(got, 0xff, 64);
    assert_int_equal(
        km_key_sign_result_open(g_ctx, rk, &g_kid, &g_rid, KM_KEY_ALGO_ECDSA, blob.data, blob.len, got),
        KM_ERR_PARSE);
    assert_true(all_zero(got, 64));
    /* Every single-bit change anywhere is refused. */
    for (size_t i = 0; i < blob.len; i++) {
        blob.data[i] ^= 0x08;
        assert_int_not_equal(
            km_key_sign_result_open(g_ctx, rk, &g_kid, &g_rid, KM_KEY_ALGO_SCHNORR, blob.data, blob.len, got),
            KM_OK);
        blob.data[i] ^= 0x08;
    }
    assert_int_equal(
        km_key_sign_result_open(g_ctx, rk, &g_kid, &g_rid, KM_KEY_ALGO_SCHNORR, blob.data, blob.len - 1, got),
        KM_ERR_PARSE);
    assert_int_equal(km_key_sign_result_open(g_ctx, rk, &g_kid, &g_rid, KM_KEY_ALGO_SCHNORR, NULL, 0, got),
                     KM_ERR_PARSE);
    assert_int_equal(km_key_sign_result_seal(g_ctx, rk, &g_kid, &g_rid, 3, sig, &blob), KM_ERR_UNSUPPORTED);
    assert_int_equal(blob.len, 0);
    km_buf_free(&blob);
}

static void test_digests(void **state) {
    (void)state;
    unsigned char want[32], d[32], d2[32];
    static const char msg[] = "keymeld single-signer test";
    unhex(want, 32, KAT_APPROVAL_SCHNORR);
    km_key_approval_digest(d, &g_kid, &g_rid, KM_KEY_ALGO_SCHNORR, (const unsigned char *)msg, strlen(msg));
    assert_memory_equal(d, want, 32);
    unhex(want, 32, KAT_APPROVAL_ECDSA_EMPTY);
    km_key_approval_digest(d2, &g_kid, &g_rid, KM_KEY_ALGO_ECDSA, NULL, 0);
    assert_memory_equal(d2, want, 32);
    /* Each field is bound: changing any one changes the digest. */
    km_key_approval_digest(d2, &g_rid, &g_rid, KM_KEY_ALGO_SCHNORR, (const unsigned char *)msg, strlen(msg));
    assert_memory_not_equal(d, d2, 32);
    km_key_approval_digest(d2, &g_kid, &g_kid, KM_KEY_ALGO_SCHNORR, (const unsigned char *)msg, strlen(msg));
    assert_memory_not_equal(d, d2, 32);
    km_key_approval_digest(d2, &g_kid, &g_rid, KM_KEY_ALGO_ECDSA, (const unsigned char *)msg, strlen(msg));
    assert_memory_not_equal(d, d2, 32);
    km_key_approval_digest(d2, &g_kid, &g_rid, KM_KEY_ALGO_SCHNORR, (const unsigned char *)msg,
                           strlen(msg) - 1);
    assert_memory_not_equal(d, d2, 32);

    unhex(want, 32, KAT_DELETE);
    km_key_delete_digest(d, &g_kid, 1700000000ull);
    assert_memory_equal(d, want, 32);
    km_key_delete_digest(d2, &g_kid, 1700000001ull);
    assert_memory_not_equal(d, d2, 32);
}

static void test_delete_body(void **state) {
    (void)state;
    unsigned char sig[64], body[KM_KEY_DELETE_LEN + 1], want[32];
    for (int i = 0; i < 64; i++)
        sig[i] = (unsigned char)(200 - i);
    km_key_delete_encode(body, &g_kid, 1700000000ull, sig);
    km_key_delete_cmd cmd;
    assert_int_equal(km_key_delete_parse(&cmd, body, KM_KEY_DELETE_LEN), KM_OK);
    assert_memory_equal(cmd.key_id.b, g_kid.b, 16);
    assert_int_equal(cmd.timestamp, 1700000000ull);
    assert_memory_equal(cmd.sig, sig, 64);
    unhex(want, 32, KAT_DELETE);
    assert_memory_equal(cmd.digest, want, 32);
    for (size_t l = 0; l < KM_KEY_DELETE_LEN; l++) {
        assert_int_equal(km_key_delete_parse(&cmd, body, l), KM_ERR_PARSE);
        assert_true(all_zero((unsigned char *)&cmd, sizeof cmd));
    }
    body[KM_KEY_DELETE_LEN] = 0;
    assert_int_equal(km_key_delete_parse(&cmd, body, sizeof body), KM_ERR_PARSE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_plaintext), cmocka_unit_test(test_import_body),
        cmocka_unit_test(test_sign_plaintext),   cmocka_unit_test(test_sign_body),
        cmocka_unit_test(test_result),           cmocka_unit_test(test_digests),
        cmocka_unit_test(test_delete_body),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
