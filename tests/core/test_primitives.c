/* test_primitives.c — locked secrets, SHA-256, tagged hashes, HKDF, AES-256-GCM.
 * Known answers come from the RFCs / NIST examples named beside each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "keymeld/secret.h"

static void unhex(unsigned char *out, size_t n, const char *h) {
    assert_int_equal(km_hex_decode(out, n, h, strlen(h)), KM_OK);
}

static void test_secret_pool(void **state) {
    (void)state;
    km_ctx *ctx;
    assert_int_equal(km_ctx_create(&ctx), KM_OK);
    km_secret *s[600];
    /* More than one 64 KiB chunk of 256-byte slots, plus dedicated mappings. */
    for (int i = 0; i < 600; i++) {
        size_t len = (i % 10 == 0) ? 1000 : 32;
        assert_int_equal(km_secret_new(ctx, len, &s[i]), KM_OK);
        assert_int_equal(km_secret_len(s[i]), len);
        const unsigned char *d = km_secret_cdata(s[i]);
        for (size_t j = 0; j < len; j++)
            assert_int_equal(d[j], 0); /* zero-filled */
        memset(km_secret_data(s[i]), i & 0xff, len);
    }
    /* No two secrets overlap: each still holds its own pattern. */
    for (int i = 0; i < 600; i++)
        assert_int_equal(km_secret_cdata(s[i])[0], i & 0xff);
    for (int i = 0; i < 600; i += 2)
        km_secret_free(s[i]);
    /* Freed slots come back wiped. */
    for (int i = 0; i < 600; i += 2) {
        assert_int_equal(km_secret_new(ctx, 32, &s[i]), KM_OK);
        assert_int_equal(km_secret_cdata(s[i])[0], 0);
    }
    for (int i = 0; i < 600; i++)
        km_secret_free(s[i]);
    km_secret *bad = (km_secret *)1;
    assert_int_equal(km_secret_new(ctx, 0, &bad), KM_ERR_ARG);
    assert_null(bad);
    assert_int_equal(km_secret_new(ctx, KM_SECRET_MAX + 1, &bad), KM_ERR_ARG);
    km_secret *c;
    assert_int_equal(km_secret_from(ctx, "abc", 3, &c), KM_OK);
    assert_memory_equal(km_secret_cdata(c), "abc", 3);
    km_secret_free(c);
    km_secret_free(NULL);
    km_ctx_destroy(ctx);
}

static void test_wipe_and_ct_equal(void **state) {
    (void)state;
    unsigned char a[40], b[40];
    memset(a, 7, sizeof a);
    memcpy(b, a, sizeof a);
    assert_true(km_ct_equal(a, b, sizeof a));
    b[39] ^= 1;
    assert_false(km_ct_equal(a, b, sizeof a));
    km_wipe(a, sizeof a);
    for (size_t i = 0; i < sizeof a; i++)
        assert_int_equal(a[i], 0);
}

static void test_sha256_and_tagged(void **state) {
    (void)state;
    unsigned char h[32], want[32];
    km_sha256(h, "abc", 3); /* FIPS 180-2 example */
    unhex(want, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_memory_equal(h, want, 32);
    const void *parts[2] = {"a", "bc"};
    size_t lens[2] = {1, 2};
    km_sha256_parts(h, parts, lens, 2);
    assert_memory_equal(h, want, 32);
    /* Tagged hash = SHA256(SHA256(tag)||SHA256(tag)||msg), checked against a
     * direct computation of the definition. */
    unsigned char th[32], buf[67], direct[32], tagged[32];
    km_sha256(th, "BIP0340/challenge", 17);
    memcpy(buf, th, 32);
    memcpy(buf + 32, th, 32);
    memcpy(buf + 64, "xyz", 3);
    km_sha256(direct, buf, sizeof buf);
    km_tagged_hash(tagged, "BIP0340/challenge", "xyz", 3);
    assert_memory_equal(direct, tagged, 32);
    unsigned char h384[48], want384[48];
    km_sha384(h384, "abc", 3); /* FIPS 180-2 example */
    unhex(want384, 48,
          "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7");
    assert_memory_equal(h384, want384, 48);
}

static void test_hkdf_rfc5869(void **state) {
    (void)state;
    /* RFC 5869 test case 1. */
    unsigned char ikm[22], salt[13], info[10], okm[42], want[42];
    memset(ikm, 0x0b, sizeof ikm);
    unhex(salt, 13, "000102030405060708090a0b0c");
    unhex(info, 10, "f0f1f2f3f4f5f6f7f8f9");
    unhex(want, 42, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
    assert_int_equal(km_hkdf_sha256(okm, 42, ikm, 22, salt, 13, info, 10), KM_OK);
    assert_memory_equal(okm, want, 42);
    /* RFC 5869 test case 3: no salt, no info. */
    unsigned char want3[42];
    unhex(want3, 42, "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
    assert_int_equal(km_hkdf_sha256(okm, 42, ikm, 22, NULL, 0, NULL, 0), KM_OK);
    assert_memory_equal(okm, want3, 42);
    assert_int_equal(km_hkdf_sha256(okm, 0, ikm, 22, NULL, 0, NULL, 0), KM_ERR_ARG);
}

static void test_aead_kat(void **state) {
    (void)state;
    /* NIST GCM test case 16 (McGrew & Viega), AES-256 with 20 bytes of AD. */
    unsigned char key[32], iv[12], pt[60], ad[20], ct[60], tag[16], want_ct[60], want_tag[16], back[60];
    unhex(key, 32, "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
    unhex(iv, 12, "cafebabefacedbaddecaf888");
    unhex(pt, 60,
          "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525"
          "b16aedf5aa0de657ba637b39");
    unhex(ad, 20, "feedfacedeadbeeffeedfacedeadbeefabaddad2");
    unhex(want_ct, 60,
          "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838"
          "c5f61e6393ba7a0abcc9f662");
    unhex(want_tag, 16, "76fc6ece0f4e1768cddf8853bb2d551b");
    assert_int_equal(km_aead_seal(ct, tag, key, iv, ad, 20, pt, 60), KM_OK);
    assert_memory_equal(ct, want_ct, 60);
    assert_memory_equal(tag, want_tag, 16);
    assert_int_equal(km_aead_open(back, key, iv, ad, 20, ct, 60, tag), KM_OK);
    assert_memory_equal(back, pt, 60);
}

static void test_aead_tamper(void **state) {
    (void)state;
    unsigned char key[32], iv[12], ad[8] = "purpose", pt[48], ct[48], tag[16], out[48];
    assert_int_equal(km_random_bytes(key, 32), KM_OK);
    assert_int_equal(km_random_bytes(iv, 12), KM_OK);
    memset(pt, 0x5a, sizeof pt);
    assert_int_equal(km_aead_seal(ct, tag, key, iv, ad, 8, pt, 48), KM_OK);
    const unsigned char zero[48] = {0};
    /* Every single-bit flip of ciphertext, tag, AD, nonce and key is refused
     * and releases no plaintext. */
    for (size_t i = 0; i < 48 * 8; i++) {
        ct[i / 8] ^= (unsigned char)(1u << (i % 8));
        memset(out, 0xee, sizeof out);
        assert_int_equal(km_aead_open(out, key, iv, ad, 8, ct, 48, tag), KM_ERR_DECRYPT);
        assert_memory_equal(out, zero, 48);
        ct[i / 8] ^= (unsigned char)(1u << (i % 8));
    }
    unsigned char *fields[4] = {tag, ad, iv, key};
    size_t sizes[4] = {16, 8, 12, 32};
    for (int f = 0; f < 4; f++) {
        for (size_t i = 0; i < sizes[f]; i++) {
            fields[f][i] ^= 0x01;
            assert_int_equal(km_aead_open(out, key, iv, ad, 8, ct, 48, tag), KM_ERR_DECRYPT);
            fields[f][i] ^= 0x01;
        }
    }
    /* Truncated ciphertext and missing AD fail too. */
    assert_int_equal(km_aead_open(out, key, iv, ad, 8, ct, 47, tag), KM_ERR_DECRYPT);
    assert_int_equal(km_aead_open(out, key, iv, NULL, 0, ct, 48, tag), KM_ERR_DECRYPT);
    assert_int_equal(km_aead_open(out, key, iv, ad, 8, ct, 48, tag), KM_OK);
    assert_memory_equal(out, pt, 48);
}

static void test_random_differs(void **state) {
    (void)state;
    unsigned char a[32], b[32];
    assert_int_equal(km_random_bytes(a, 32), KM_OK);
    assert_int_equal(km_random_bytes(b, 32), KM_OK);
    assert_memory_not_equal(a, b, 32);
}

static void test_error_names(void **state) {
    (void)state;
    for (int e = 0; e < KM_ERR__COUNT; e++) {
        assert_non_null(km_strerror((km_err)e));
        assert_non_null(km_err_name((km_err)e));
        assert_true(strlen(km_err_name((km_err)e)) > 0); /* every code has a name */
    }
    assert_string_equal(km_err_name(KM_ERR_INVALID_POINT), "invalid_point");
    assert_string_equal(km_strerror((km_err)999), "unknown error");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_pool),       cmocka_unit_test(test_wipe_and_ct_equal),
        cmocka_unit_test(test_sha256_and_tagged), cmocka_unit_test(test_hkdf_rfc5869),
        cmocka_unit_test(test_aead_kat),          cmocka_unit_test(test_aead_tamper),
        cmocka_unit_test(test_random_differs),    cmocka_unit_test(test_error_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
