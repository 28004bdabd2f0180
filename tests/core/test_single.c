/* test_single.c — single-signer Schnorr and ECDSA: round trips, the
 * attacker's inputs (tampered signatures, messages, keys; high-S twins;
 * non-strict DER) and invalid secret keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <secp256k1.h>

#include "keymeld/aead.h"
#include "keymeld/context.h"
#include "keymeld/hash.h"
#include "keymeld/secret.h"
#include "keymeld/single.h"
#include "keymeld/taproot.h"

/* The group order n and n/2 (floor), big-endian. */
static const unsigned char ORDER[32] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48,
                                        0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};
static const unsigned char HALF_ORDER[32] = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                             0xff, 0xff, 0xff, 0xff, 0xff, 0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4,
                                             0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0};
static const unsigned char ZERO64[64] = {0};

static km_ctx *g_ctx;

static void random_key(unsigned char sk[32]) {
    do {
        assert_int_equal(km_random_bytes(sk, 32), KM_OK);
    } while (km_single_seckey_check(g_ctx, sk) != KM_OK);
}

static void test_pubkeys(void **state) {
    (void)state;
    unsigned char sk[32] = {0}, pub[33], x[32];
    /* d = 1: the generator, whose x coordinate is well known. */
    static const unsigned char GX[32] = {0x79, 0xbe, 0x66, 0x7e, 0xf9, 0xdc, 0xbb, 0xac, 0x55, 0xa0, 0x62,
                                         0x95, 0xce, 0x87, 0x0b, 0x07, 0x02, 0x9b, 0xfc, 0xdb, 0x2d, 0xce,
                                         0x28, 0xd9, 0x59, 0xf2, 0x81, 0x5b, 0x16, 0xf8, 0x17, 0x98};
    sk[31] = 1;
    assert_int_equal(km_single_pubkey(g_ctx, pub, sk), KM_OK);
    assert_int_equal(pub[0], 0x02);
    assert_memory_equal(pub + 1, GX, 32);
    assert_int_equal(km_single_xonly_pubkey(g_ctx, x, sk), KM_OK);
    assert_memory_equal(x, GX, 32);
    /* n-1 = -1: same x, odd y; x-only drops the parity. */
    memcpy(sk, ORDER, 32);
    sk[31] -= 1;
    assert_int_equal(km_single_pubkey(g_ctx, pub, sk), KM_OK);
    assert_int_equal(pub[0], 0x03);
    assert_memory_equal(pub + 1, GX, 32);
    assert_int_equal(km_single_xonly_pubkey(g_ctx, x, sk), KM_OK);
    assert_memory_equal(x, GX, 32);
    km_wipe(sk, sizeof sk);
}

static void test_invalid_seckeys(void **state) {
    (void)state;
    unsigned char bad[4][32];
    memset(bad[0], 0, 32);     /* zero */
    memcpy(bad[1], ORDER, 32); /* n */
    memcpy(bad[2], ORDER, 32); /* n + 1 */
    bad[2][31] += 1;
    memset(bad[3], 0xff, 32); /* 2^256 - 1 */
    unsigned char msg[32] = {7}, aux[32] = {0}, out[64], pub[33], out32[32];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(km_single_seckey_check(g_ctx, bad[i]), KM_ERR_INVALID_KEY);
        memset(pub, 0xaa, sizeof pub);
        assert_int_equal(km_single_pubkey(g_ctx, pub, bad[i]), KM_ERR_INVALID_KEY);
        assert_memory_equal(pub, ZERO64, 33);
        memset(out32, 0xaa, sizeof out32);
        assert_int_equal(km_single_xonly_pubkey(g_ctx, out32, bad[i]), KM_ERR_INVALID_KEY);
        assert_memory_equal(out32, ZERO64, 32);
        memset(out, 0xaa, sizeof out);
        assert_int_equal(km_single_schnorr_sign(g_ctx, out, msg, 32, bad[i]), KM_ERR_INVALID_KEY);
        assert_memory_equal(out, ZERO64, 64);
        memset(out, 0xaa, sizeof out);
        assert_int_equal(km_single_schnorr_sign_aux(g_ctx, out, msg, 32, bad[i], aux), KM_ERR_INVALID_KEY);
        assert_memory_equal(out, ZERO64, 64);
        memset(out, 0xaa, sizeof out);
        assert_int_equal(km_single_ecdsa_sign(g_ctx, out, msg, bad[i]), KM_ERR_INVALID_KEY);
        assert_memory_equal(out, ZERO64, 64);
        memset(out32, 0xaa, sizeof out32);
        assert_int_equal(km_single_taproot_tweak_seckey(g_ctx, out32, bad[i], NULL), KM_ERR_INVALID_KEY);
        assert_memory_equal(out32, ZERO64, 32);
    }
    /* n - 1 is the largest valid key. */
    unsigned char top[32];
    memcpy(top, ORDER, 32);
    top[31] -= 1;
    assert_int_equal(km_single_seckey_check(g_ctx, top), KM_OK);
}

static void test_schnorr_roundtrip_and_tamper(void **state) {
    (void)state;
    unsigned char sk[32], sk2[32], pk[32], pk2[32], sig[64], sig2[64], msg[100];
    random_key(sk);
    random_key(sk2);
    assert_int_equal(km_single_xonly_pubkey(g_ctx, pk, sk), KM_OK);
    assert_int_equal(km_single_xonly_pubkey(g_ctx, pk2, sk2), KM_OK);
    assert_int_equal(km_random_bytes(msg, sizeof msg), KM_OK);

    for (size_t len = 0; len <= sizeof msg; len += 20) {
        const unsigned char *m = len ? msg : NULL;
        assert_int_equal(km_single_schnorr_sign(g_ctx, sig, m, len, sk), KM_OK);
        assert_int_equal(km_single_schnorr_verify(g_ctx, sig, m, len, pk), KM_OK);
        /* Fresh aux randomness: a second signature differs yet verifies. */
        assert_int_equal(km_single_schnorr_sign(g_ctx, sig2, m, len, sk), KM_OK);
        assert_memory_not_equal(sig, sig2, 64);
        assert_int_equal(km_single_schnorr_verify(g_ctx, sig2, m, len, pk), KM_OK);
        /* Wrong key. */
        assert_int_equal(km_single_schnorr_verify(g_ctx, sig, m, len, pk2), KM_ERR_VERIFY);
    }
    /* Every single-bit flip of the signature is rejected. */
    assert_int_equal(km_single_schnorr_sign(g_ctx, sig, msg, 32, sk), KM_OK);
    for (int bit = 0; bit < 512; bit++) {
        memcpy(sig2, sig, 64);
        sig2[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        assert_int_equal(km_single_schnorr_verify(g_ctx, sig2, msg, 32, pk), KM_ERR_VERIFY);
    }
    /* Every single-bit flip of the message is rejected; so is a longer or
     * shorter message with the same prefix. */
    for (int bit = 0; bit < 256; bit++) {
        msg[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        assert_int_equal(km_single_schnorr_verify(g_ctx, sig, msg, 32, pk), KM_ERR_VERIFY);
        msg[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    assert_int_equal(km_single_schnorr_verify(g_ctx, sig, msg, 33, pk), KM_ERR_VERIFY);
    assert_int_equal(km_single_schnorr_verify(g_ctx, sig, msg, 31, pk), KM_ERR_VERIFY);
    assert_int_equal(km_single_schnorr_verify(g_ctx, sig, msg, 32, pk), KM_OK);
    /* A public key bit flip gives another key (or no key at all). */
    for (int bit = 0; bit < 256; bit++) {
        memcpy(pk2, pk, 32);
        pk2[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        km_err e = km_single_schnorr_verify(g_ctx, sig, msg, 32, pk2);
        assert_true(e == KM_ERR_VERIFY || e == KM_ERR_INVALID_POINT);
    }
    /* x >= p is not a key. */
    memset(pk2, 0xff, 32);
    assert_int_equal(km_single_schnorr_verify(g_ctx, sig, msg, 32, pk2), KM_ERR_INVALID_POINT);
    /* NULL message with a length is a caller error, not a verification. */
    assert_int_equal(km_single_schnorr_verify(g_ctx, sig, NULL, 5, pk), KM_ERR_ARG);
    assert_int_equal(km_single_schnorr_sign(g_ctx, sig, NULL, 5, sk), KM_ERR_ARG);
    km_wipe(sk, 32);
    km_wipe(sk2, 32);
}

static void test_schnorr_aux_deterministic(void **state) {
    (void)state;
    unsigned char sk[32], pk[32], aux[32], msg[32], a[64], b[64];
    random_key(sk);
    assert_int_equal(km_single_xonly_pubkey(g_ctx, pk, sk), KM_OK);
    assert_int_equal(km_random_bytes(aux, 32), KM_OK);
    assert_int_equal(km_random_bytes(msg, 32), KM_OK);
    assert_int_equal(km_single_schnorr_sign_aux(g_ctx, a, msg, 32, sk, aux), KM_OK);
    assert_int_equal(km_single_schnorr_sign_aux(g_ctx, b, msg, 32, sk, aux), KM_OK);
    assert_memory_equal(a, b, 64);
    aux[0] ^= 1;
    assert_int_equal(km_single_schnorr_sign_aux(g_ctx, b, msg, 32, sk, aux), KM_OK);
    assert_memory_not_equal(a, b, 64);
    assert_int_equal(km_single_schnorr_verify(g_ctx, b, msg, 32, pk), KM_OK);
    km_wipe(sk, 32);
}

static void test_ecdsa_roundtrip_and_tamper(void **state) {
    (void)state;
    unsigned char sk[32], sk2[32], pub[33], pub2[33], msg[32], sig[64], sig2[64];
    random_key(sk);
    random_key(sk2);
    assert_int_equal(km_single_pubkey(g_ctx, pub, sk), KM_OK);
    assert_int_equal(km_single_pubkey(g_ctx, pub2, sk2), KM_OK);
    for (int i = 0; i < 16; i++) {
        km_sha256(msg, &i, sizeof i);
        assert_int_equal(km_single_ecdsa_sign(g_ctx, sig, msg, sk), KM_OK);
        /* low-S: s <= n/2 (big-endian compare). */
        assert_true(memcmp(sig + 32, HALF_ORDER, 32) <= 0);
        assert_int_equal(km_single_ecdsa_verify(g_ctx, sig, msg, pub), KM_OK);
        assert_int_equal(km_single_ecdsa_verify(g_ctx, sig, msg, pub2), KM_ERR_VERIFY);
        /* RFC 6979: deterministic. */
        assert_int_equal(km_single_ecdsa_sign(g_ctx, sig2, msg, sk), KM_OK);
        assert_memory_equal(sig, sig2, 64);
    }
    for (int bit = 0; bit < 512; bit++) {
        memcpy(sig2, sig, 64);
        sig2[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        assert_int_equal(km_single_ecdsa_verify(g_ctx, sig2, msg, pub), KM_ERR_VERIFY);
    }
    for (int bit = 0; bit < 256; bit++) {
        msg[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        assert_int_equal(km_single_ecdsa_verify(g_ctx, sig, msg, pub), KM_ERR_VERIFY);
        msg[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    /* r = 0, s = 0, r = n, s = n. */
    memcpy(sig2, sig, 64);
    memset(sig2, 0, 32);
    assert_int_equal(km_single_ecdsa_verify(g_ctx, sig2, msg, pub), KM_ERR_VERIFY);
    memcpy(sig2, sig, 64);
    memset(sig2 + 32, 0, 32);
    assert_int_equal(km_single_ecdsa_verify(g_ctx, sig2, msg, pub), KM_ERR_VERIFY);
    memcpy(sig2, ORDER, 32);
    assert_int_equal(km_single_ecdsa_verify(g_ctx, sig2, msg, pub), KM_ERR_VERIFY);
    memcpy(sig2, sig, 32);
    memcpy(sig2 + 32, ORDER, 32);
    assert_int_equal(km_single_ecdsa_verify(g_ctx, sig2, msg, pub), KM_ERR_VERIFY);

    /* Public key encodings: only 33-byte compressed points. */
    memcpy(pub2, pub, 33);
    pub2[0] = 0x04;
    assert_int_equal(km_single_ecdsa_verify(g_ctx, sig, msg, pub2), KM_ERR_INVALID_POINT);
    pub2[0] = 0x06; /* hybrid */
    assert_int_equal(km_single_ecdsa_verify(g_ctx, sig, msg, pub2), KM_ERR_INVALID_POINT);
    memset(pub2, 0xff, 33);
    pub2[0] = 0x02; /* x >= p */
    assert_int_equal(km_single_ecdsa_verify(g_ctx, sig, msg, pub2), KM_ERR_INVALID_POINT);
    /* x = 5 has no square root of x^3 + 7 mod p: not on the curve. */
    memset(pub2, 0, 33);
    pub2[0] = 0x02;
    pub2[32] = 5;
    assert_int_equal(km_single_ecdsa_verify(g_ctx, sig, msg, pub2), KM_ERR_INVALID_POINT);
    km_wipe(sk, 32);
    km_wipe(sk2, 32);
}

static void test_ecdsa_high_s_rejected(void **state) {
    (void)state;
    const secp256k1_context *secp = km_ctx_secp(g_ctx);
    unsigned char sk[32], pub[33], msg[32], sig[64], high[64], der[KM_SINGLE_ECDSA_DER_MAX], back[64];
    size_t der_len = sizeof der;
    random_key(sk);
    assert_int_equal(km_single_pubkey(g_ctx, pub, sk), KM_OK);
    km_sha256(msg, "high-s", 6);
    assert_int_equal(km_single_ecdsa_sign(g_ctx, sig, msg, sk), KM_OK);
    /* The malleated twin (r, n - s); negation done by libsecp256k1. */
    memcpy(high, sig, 64);
    assert_true(secp256k1_ec_seckey_negate(secp, high + 32));
    assert_true(memcmp(high + 32, HALF_ORDER, 32) > 0);
    /* The twin is a mathematically valid signature: normalizing it gives the
     * original back. So its rejection below is the low-S rule at work. */
    secp256k1_ecdsa_signature ps, norm;
    unsigned char normed[64];
    assert_true(secp256k1_ecdsa_signature_parse_compact(secp, &ps, high));
    assert_int_equal(secp256k1_ecdsa_signature_normalize(secp, &norm, &ps), 1);
    assert_true(secp256k1_ecdsa_signature_serialize_compact(secp, normed, &norm));
    assert_memory_equal(normed, sig, 64);

    assert_int_equal(km_single_ecdsa_verify(g_ctx, high, msg, pub), KM_ERR_VERIFY);
    /* DER carries high-S faithfully (an encoding question), verify refuses. */
    assert_int_equal(km_single_ecdsa_to_der(g_ctx, der, &der_len, high), KM_OK);
    assert_int_equal(km_single_ecdsa_from_der(g_ctx, back, der, der_len), KM_OK);
    assert_memory_equal(back, high, 64);
    assert_int_equal(km_single_ecdsa_verify_der(g_ctx, der, der_len, msg, pub), KM_ERR_VERIFY);
    km_wipe(sk, 32);
}

/* Append a DER INTEGER with the given raw content bytes. */
static size_t put_int(unsigned char *p, const unsigned char *v, size_t n) {
    p[0] = 0x02;
    p[1] = (unsigned char)n;
    memcpy(p + 2, v, n);
    return n + 2;
}

/* SEQUENCE { INTEGER r, INTEGER s } with raw contents; returns total length. */
static size_t make_der(unsigned char *out, const unsigned char *r, size_t rn, const unsigned char *s,
                       size_t sn) {
    size_t n = 2;
    n += put_int(out + n, r, rn);
    n += put_int(out + n, s, sn);
    out[0] = 0x30;
    out[1] = (unsigned char)(n - 2);
    return n;
}

static void test_ecdsa_der(void **state) {
    (void)state;
    unsigned char sk[32], pub[33], msg[32], sig[64], back[64];
    unsigned char der[KM_SINGLE_ECDSA_DER_MAX], bad[100];
    size_t der_len;
    random_key(sk);
    assert_int_equal(km_single_pubkey(g_ctx, pub, sk), KM_OK);

    /* Round trips over many signatures (covering 70-, 71- and 72-byte
     * forms as r and s vary in length). */
    for (int i = 0; i < 64; i++) {
        km_sha256(msg, &i, sizeof i);
        assert_int_equal(km_single_ecdsa_sign(g_ctx, sig, msg, sk), KM_OK);
        der_len = sizeof der;
        assert_int_equal(km_single_ecdsa_to_der(g_ctx, der, &der_len, sig), KM_OK);
        assert_true(der_len >= 8 && der_len <= KM_SINGLE_ECDSA_DER_MAX);
        assert_int_equal(der[0], 0x30);
        assert_int_equal(der[1], der_len - 2);
        assert_int_equal(km_single_ecdsa_from_der(g_ctx, back, der, der_len), KM_OK);
        assert_memory_equal(back, sig, 64);
        assert_int_equal(km_single_ecdsa_verify_der(g_ctx, der, der_len, msg, pub), KM_OK);
        /* Truncated at every length, and a trailing byte. */
        for (size_t n = 0; n < der_len; n++) {
            memset(back, 0xaa, 64);
            assert_int_equal(km_single_ecdsa_from_der(g_ctx, back, der, n), KM_ERR_PARSE);
            assert_memory_equal(back, ZERO64, 64);
        }
        memcpy(bad, der, der_len);
        bad[der_len] = 0;
        assert_int_equal(km_single_ecdsa_from_der(g_ctx, back, bad, der_len + 1), KM_ERR_PARSE);
    }
    assert_int_equal(km_single_ecdsa_from_der(g_ctx, back, NULL, 0), KM_ERR_PARSE);

    /* Buffer too small. */
    der_len = 8;
    assert_int_equal(km_single_ecdsa_to_der(g_ctx, der, &der_len, sig), KM_ERR_BUFFER_SMALL);
    assert_int_equal(der_len, 0);

    /* Hand-built encodings of the last signature. r and s here are made
     * positive 33-byte forms when needed. */
    unsigned char r[34], s[34];
    memcpy(r + 1, sig, 32);
    memcpy(s + 1, sig + 32, 32);
    r[0] = s[0] = 0;
    /* Minimal contents: strip leading zeros, keep one if the top bit is set. */
    size_t ro = 0, so = 0;
    while (ro < 32 && r[ro] == 0 && !(r[ro + 1] & 0x80))
        ro++;
    while (so < 32 && s[so] == 0 && !(s[so + 1] & 0x80))
        so++;
    size_t n = make_der(bad, r + ro, 33 - ro, s + so, 33 - so);
    der_len = sizeof der;
    assert_int_equal(km_single_ecdsa_to_der(g_ctx, der, &der_len, sig), KM_OK);
    assert_int_equal(n, der_len);
    assert_memory_equal(bad, der, n); /* the hand-built form is the canonical one */

    /* A superfluous leading zero on r. */
    unsigned char padded[35] = {0};
    memcpy(padded + 1, r + ro, 33 - ro);
    n = make_der(bad, padded, 34 - ro, s + so, 33 - so);
    assert_int_equal(km_single_ecdsa_from_der(g_ctx, back, bad, n), KM_ERR_PARSE);

    /* Negative r: a value with the top bit set and no 0x00 pad. */
    unsigned char neg[32];
    memset(neg, 0x80, 32);
    n = make_der(bad, neg, 32, s + so, 33 - so);
    assert_int_equal(km_single_ecdsa_from_der(g_ctx, back, bad, n), KM_ERR_PARSE);

    /* r = n (out of range), r = 0, s = 0. */
    unsigned char big[33] = {0};
    memcpy(big + 1, ORDER, 32);
    n = make_der(bad, big, 33, s + so, 33 - so);
    assert_int_equal(km_single_ecdsa_from_der(g_ctx, back, bad, n), KM_ERR_PARSE);
    unsigned char zero1 = 0;
    n = make_der(bad, &zero1, 1, s + so, 33 - so);
    assert_int_equal(km_single_ecdsa_from_der(g_ctx, back, bad, n), KM_ERR_PARSE);
    n = make_der(bad, r + ro, 33 - ro, &zero1, 1);
    assert_int_equal(km_single_ecdsa_from_der(g_ctx, back, bad, n), KM_ERR_PARSE);

    /* Wrong outer tag, wrong integer tag, BER long-form length. */
    memcpy(bad, der, der_len);
    bad[0] = 0x31;
    assert_int_equal(km_single_ecdsa_from_der(g_ctx, back, bad, der_len), KM_ERR_PARSE);
    memcpy(bad, der, der_len);
    bad[2] = 0x03;
    assert_int_equal(km_single_ecdsa_from_der(g_ctx, back, bad, der_len), KM_ERR_PARSE);
    bad[0] = 0x30;
    bad[1] = 0x81;
    bad[2] = (unsigned char)(der_len - 2);
    memcpy(bad + 3, der + 2, der_len - 2);
    assert_int_equal(km_single_ecdsa_from_der(g_ctx, back, bad, der_len + 1), KM_ERR_PARSE);
    /* Outer length that disagrees with the content. */
    memcpy(bad, der, der_len);
    bad[1] = (unsigned char)(der[1] - 1);
    assert_int_equal(km_single_ecdsa_from_der(g_ctx, back, bad, der_len), KM_ERR_PARSE);
    /* Over-long input. */
    memset(bad, 0, sizeof bad);
    assert_int_equal(km_single_ecdsa_from_der(g_ctx, back, bad, sizeof bad), KM_ERR_PARSE);
    /* A corrupted-but-well-formed DER signature parses and then fails. */
    memcpy(bad, der, der_len);
    bad[der_len - 1] ^= 1;
    assert_int_equal(km_single_ecdsa_verify_der(g_ctx, bad, der_len, msg, pub), KM_ERR_VERIFY);
    km_wipe(sk, 32);
}

static void test_taproot_keys(void **state) {
    (void)state;
    unsigned char sk[32], tsk[32], internal[32], q[32], qk[32], root[32], msg[32], sig[64];
    int parity = -1;
    random_key(sk);
    assert_int_equal(km_single_xonly_pubkey(g_ctx, internal, sk), KM_OK);
    km_sha256(root, "root", 4);
    km_sha256(msg, "msg", 3);
    for (int with_root = 0; with_root < 2; with_root++) {
        const unsigned char *m = with_root ? root : NULL;
        km_tweak tw;
        if (m)
            km_tweak_bip341(&tw, m);
        else
            km_tweak_bip86(&tw);
        assert_int_equal(km_taproot_output_key(g_ctx, q, &parity, internal, &tw), KM_OK);
        assert_true(parity == 0 || parity == 1);
        assert_memory_not_equal(q, internal, 32);
        assert_int_equal(km_single_taproot_tweak_seckey(g_ctx, tsk, sk, m), KM_OK);
        /* The tweaked secret key is the key of the output key. */
        assert_int_equal(km_single_xonly_pubkey(g_ctx, qk, tsk), KM_OK);
        assert_memory_equal(qk, q, 32);
        assert_int_equal(km_single_schnorr_sign(g_ctx, sig, msg, 32, tsk), KM_OK);
        assert_int_equal(km_single_schnorr_verify(g_ctx, sig, msg, 32, q), KM_OK);
        /* ...and a signature by the internal key does not spend the output. */
        assert_int_equal(km_single_schnorr_sign(g_ctx, sig, msg, 32, sk), KM_OK);
        assert_int_equal(km_single_schnorr_verify(g_ctx, sig, msg, 32, q), KM_ERR_VERIFY);
    }
    /* Root or no root commits to different keys. */
    unsigned char q0[32];
    assert_int_equal(
        km_taproot_output_key(g_ctx, q0, NULL, internal, &(const km_tweak){.mode = KM_TWEAK_BIP86}), KM_OK);
    assert_memory_not_equal(q0, q, 32);
    unsigned char badx[32];
    memset(badx, 0xff, 32);
    km_tweak tw;
    km_tweak_bip341(&tw, root);
    assert_int_equal(km_taproot_output_key(g_ctx, q, &parity, badx, &tw), KM_ERR_INVALID_POINT);
    assert_memory_equal(q, ZERO64, 32);
    km_wipe(sk, 32);
    km_wipe(tsk, 32);
}

static int setup(void **state) {
    (void)state;
    return km_ctx_create(&g_ctx) == KM_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    km_ctx_destroy(g_ctx);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pubkeys),
        cmocka_unit_test(test_invalid_seckeys),
        cmocka_unit_test(test_schnorr_roundtrip_and_tamper),
        cmocka_unit_test(test_schnorr_aux_deterministic),
        cmocka_unit_test(test_ecdsa_roundtrip_and_tamper),
        cmocka_unit_test(test_ecdsa_high_s_rejected),
        cmocka_unit_test(test_ecdsa_der),
        cmocka_unit_test(test_taproot_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
