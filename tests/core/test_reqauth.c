/* test_reqauth.c — canonical request string and digest (independent known
 * answer), BIP-340 sign/verify, every signed field bound, injection of line
 * breaks and other separators refused, time window.
 *
 * The known answers were produced once, independently of this code, with
 * Python 3 hashlib:
 *
 *   body  = b'{"a":1}'
 *   canon = b"KEYMELD-AUTH-V1\nPOST\n/keygen/0190a1b2-c3d4-7abc-8def-0123456789ab/participants?x=1\n"
 *           + sha256(body).hexdigest().encode() + b"\n1767225600\n" + bytes(range(16)).hex().encode()
 *   th = sha256(b"KeyMeld/request").digest(); digest = sha256(th + th + canon).hexdigest()
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <secp256k1_schnorrsig.h>

#include "keymeld/aead.h"
#include "keymeld/hex.h"
#include "keymeld/reqauth.h"
#include "keymeld/session_crypto.h"

static km_ctx *g_ctx;

static const char KAT_TARGET[] = "/keygen/0190a1b2-c3d4-7abc-8def-0123456789ab/participants?x=1";
static const char KAT_BODY[] = "{\"a\":1}";
static const char KAT_CANON[] =
    "KEYMELD-AUTH-V1\nPOST\n/keygen/0190a1b2-c3d4-7abc-8def-0123456789ab/participants?x=1\n"
    "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862\n1767225600\n"
    "000102030405060708090a0b0c0d0e0f";
static const char KAT_DIGEST[] = "ae0344ee430c7723d417409c8fb10d0312cdfe2155896f515b5e72315d79d33c";

static int setup(void **state) {
    (void)state;
    return km_ctx_create(&g_ctx) == KM_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    km_ctx_destroy(g_ctx);
    return 0;
}

static km_reqauth_req kat_req(void) {
    km_reqauth_req r;
    memset(&r, 0, sizeof r);
    r.method = "POST";
    r.method_len = 4;
    r.target = KAT_TARGET;
    r.target_len = strlen(KAT_TARGET);
    r.body = (const unsigned char *)KAT_BODY;
    r.body_len = strlen(KAT_BODY);
    r.timestamp = 1767225600;
    for (int i = 0; i < 16; i++)
        r.nonce[i] = (unsigned char)i;
    return r;
}

static void test_canonical_known_answer(void **state) {
    (void)state;
    km_reqauth_req r = kat_req();
    char buf[KM_REQAUTH_CANONICAL_MAX];
    size_t n = 0;
    assert_int_equal(km_reqauth_canonical(&r, buf, sizeof buf, &n), KM_OK);
    assert_int_equal(n, strlen(KAT_CANON));
    assert_string_equal(buf, KAT_CANON);
    unsigned char d[32], want[32];
    assert_int_equal(km_reqauth_digest(&r, d), KM_OK);
    assert_int_equal(km_hex_decode(want, 32, KAT_DIGEST, 64), KM_OK);
    assert_memory_equal(d, want, 32);

    /* Exactly enough room, and one byte less. */
    assert_int_equal(km_reqauth_canonical(&r, buf, n + 1, &n), KM_OK);
    assert_int_equal(km_reqauth_canonical(&r, buf, n, &n), KM_ERR_BUFFER_SMALL);
    assert_int_equal(n, 0);
    assert_string_equal(buf, "");

    /* Empty body and timestamp 0 have one spelling each. */
    r.body = NULL;
    r.body_len = 0;
    r.timestamp = 0;
    assert_int_equal(km_reqauth_canonical(&r, buf, sizeof buf, &n), KM_OK);
    assert_non_null(strstr(buf, "\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n0\n"));
    /* The largest request still fits KM_REQAUTH_CANONICAL_MAX. */
    static char target[KM_REQAUTH_TARGET_MAX];
    memset(target, 'a', sizeof target);
    target[0] = '/';
    r.method = "ABCDEFGHIJKLMNOP";
    r.method_len = KM_REQAUTH_METHOD_MAX;
    r.target = target;
    r.target_len = sizeof target;
    r.timestamp = UINT64_MAX;
    assert_int_equal(km_reqauth_canonical(&r, buf, sizeof buf, &n), KM_OK);
    assert_int_equal(n, KM_REQAUTH_CANONICAL_MAX - 1);
}

static void test_sign_verify(void **state) {
    (void)state;
    unsigned char secret[32], x[32], sig1[64], sig2[64];
    km_session *sess;
    assert_int_equal(km_random_bytes(secret, 32), KM_OK);
    assert_int_equal(km_session_derive(g_ctx, secret, &sess), KM_OK);
    km_session_auth_pubkey(sess, x);
    km_reqauth_req r = kat_req();
    assert_int_equal(km_reqauth_sign(g_ctx, km_session_auth_keypair(sess), &r, sig1), KM_OK);
    assert_int_equal(km_reqauth_sign(g_ctx, km_session_auth_keypair(sess), &r, sig2), KM_OK);
    /* Fresh aux randomness: two signatures of one request differ, both verify. */
    assert_memory_not_equal(sig1, sig2, 64);
    assert_int_equal(km_reqauth_verify(g_ctx, x, &r, sig1), KM_OK);
    assert_int_equal(km_reqauth_verify(g_ctx, x, &r, sig2), KM_OK);

    /* It is a plain BIP-340 signature of the tagged digest. */
    unsigned char d[32];
    secp256k1_xonly_pubkey pk;
    assert_int_equal(km_reqauth_digest(&r, d), KM_OK);
    assert_int_equal(secp256k1_xonly_pubkey_parse(km_ctx_secp(g_ctx), &pk, x), 1);
    assert_int_equal(secp256k1_schnorrsig_verify(km_ctx_secp(g_ctx), sig1, d, 32, &pk), 1);
    km_session_free(sess);
}

/* Change each signed field in turn; every change must break the signature. */
static void test_every_field_bound(void **state) {
    (void)state;
    unsigned char secret[32], x[32], sig[64];
    km_session *sess;
    assert_int_equal(km_random_bytes(secret, 32), KM_OK);
    assert_int_equal(km_session_derive(g_ctx, secret, &sess), KM_OK);
    km_session_auth_pubkey(sess, x);
    const km_reqauth_req good = kat_req();
    assert_int_equal(km_reqauth_sign(g_ctx, km_session_auth_keypair(sess), &good, sig), KM_OK);
    size_t cases = 0;
    km_reqauth_req r;

#define EXPECT_REJECT()                                                                                      \
    do {                                                                                                     \
        assert_int_equal(km_reqauth_verify(g_ctx, x, &r, sig), KM_ERR_VERIFY);                               \
        cases++;                                                                                             \
    } while (0)

    r = good;
    r.method = "PUT";
    r.method_len = 3;
    EXPECT_REJECT();
    r = good;
    r.method = "POSTX";
    r.method_len = 4; /* same bytes, must verify */
    assert_int_equal(km_reqauth_verify(g_ctx, x, &r, sig), KM_OK);
    r.method_len = 5;
    EXPECT_REJECT();

    char target[sizeof KAT_TARGET];
    for (size_t i = 1; i < strlen(KAT_TARGET); i++) { /* every target byte but the leading '/' */
        memcpy(target, KAT_TARGET, sizeof target);
        target[i] = target[i] == 'a' ? 'b' : 'a';
        r = good;
        r.target = target;
        EXPECT_REJECT();
    }
    r = good;
    r.target_len--; /* query shortened */
    EXPECT_REJECT();

    unsigned char body[sizeof KAT_BODY];
    for (size_t i = 0; i < strlen(KAT_BODY); i++) {
        memcpy(body, KAT_BODY, sizeof body);
        body[i] ^= 0x01;
        r = good;
        r.body = body;
        EXPECT_REJECT();
    }
    r = good;
    r.body_len++;
    EXPECT_REJECT();
    r = good;
    r.body = NULL;
    r.body_len = 0;
    EXPECT_REJECT();

    r = good;
    r.timestamp++;
    EXPECT_REJECT();
    r = good;
    r.timestamp--;
    EXPECT_REJECT();

    for (int i = 0; i < KM_REQAUTH_NONCE_LEN; i++) {
        r = good;
        r.nonce[i] ^= 0x80;
        EXPECT_REJECT();
    }

    /* Another key, and every byte of the signature. */
    unsigned char x2[32];
    km_session *other;
    secret[0] ^= 1;
    assert_int_equal(km_session_derive(g_ctx, secret, &other), KM_OK);
    km_session_auth_pubkey(other, x2);
    assert_int_equal(km_reqauth_verify(g_ctx, x2, &good, sig), KM_ERR_VERIFY);
    cases++;
    for (int i = 0; i < 64; i++) {
        sig[i] ^= 0x01;
        assert_int_equal(km_reqauth_verify(g_ctx, x, &good, sig), KM_ERR_VERIFY);
        sig[i] ^= 0x01;
        cases++;
    }
#undef EXPECT_REJECT
    assert_int_equal(km_reqauth_verify(g_ctx, x, &good, sig), KM_OK);
    printf("reqauth: %zu altered requests/keys/signatures rejected\n", cases);
    km_session_free(sess);
    km_session_free(other);
}

static void test_injection_and_malformed(void **state) {
    (void)state;
    static const struct {
        const char *method, *target;
    } bad[] = {
        {"POST\n", "/a"},
        {"PO\nST", "/a"},
        {"POST", "/a\nb"},
        {"POST", "/a\r\nX-Other: 1"},
        {"POST", "/a b"},
        {"POST", "/a\tb"},
        {"POST", "/a\x7f"},
        {"POST", "/caf\xc3\xa9"},
        {"post", "/a"},
        {"POST ", "/a"},
        {"", "/a"},
        {"POST", ""},
        {"POST", "a"},
        {"POST", "http://host/a"},
        {"ABCDEFGHIJKLMNOPQ", "/a"},
    };
    unsigned char secret[32], x[32], sig[64], zero[64] = {0}, d[32];
    km_session *sess;
    assert_int_equal(km_random_bytes(secret, 32), KM_OK);
    assert_int_equal(km_session_derive(g_ctx, secret, &sess), KM_OK);
    km_session_auth_pubkey(sess, x);
    char buf[KM_REQAUTH_CANONICAL_MAX];
    size_t n;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        km_reqauth_req r = kat_req();
        r.method = bad[i].method;
        r.method_len = strlen(bad[i].method);
        r.target = bad[i].target;
        r.target_len = strlen(bad[i].target);
        assert_int_equal(km_reqauth_canonical(&r, buf, sizeof buf, &n), KM_ERR_PARSE);
        assert_int_equal(n, 0);
        assert_int_equal(km_reqauth_digest(&r, d), KM_ERR_PARSE);
        assert_memory_equal(d, zero, 32);
        memset(sig, 0xaa, 64);
        assert_int_equal(km_reqauth_sign(g_ctx, km_session_auth_keypair(sess), &r, sig), KM_ERR_PARSE);
        assert_memory_equal(sig, zero, 64);
        assert_int_equal(km_reqauth_verify(g_ctx, x, &r, sig), KM_ERR_PARSE);
    }
    /* A NUL inside the target (lengths are explicit, so it would otherwise
     * hide the rest of the target from a C-string comparison). */
    km_reqauth_req r = kat_req();
    r.target = "/a\0b";
    r.target_len = 4;
    assert_int_equal(km_reqauth_canonical(&r, buf, sizeof buf, &n), KM_ERR_PARSE);
    /* Over-long target. */
    static char target[KM_REQAUTH_TARGET_MAX + 1];
    memset(target, 'a', sizeof target);
    target[0] = '/';
    r.target = target;
    r.target_len = sizeof target;
    assert_int_equal(km_reqauth_canonical(&r, buf, sizeof buf, &n), KM_ERR_PARSE);
    r = kat_req();
    r.body = NULL;
    assert_int_equal(km_reqauth_canonical(&r, buf, sizeof buf, &n), KM_ERR_ARG);

    /* Invalid x-only key: x >= p. */
    unsigned char badx[32];
    memset(badx, 0xff, 32);
    r = kat_req();
    assert_int_equal(km_reqauth_sign(g_ctx, km_session_auth_keypair(sess), &r, sig), KM_OK);
    assert_int_equal(km_reqauth_verify(g_ctx, badx, &r, sig), KM_ERR_INVALID_POINT);
    km_session_free(sess);
}

static void test_time_window(void **state) {
    (void)state;
    assert_int_equal(km_reqauth_check_time(1000, 1000, 0), KM_OK);
    assert_int_equal(km_reqauth_check_time(1000, 1001, 0), KM_ERR_RANGE);
    assert_int_equal(km_reqauth_check_time(1000, 700, 300), KM_OK);
    assert_int_equal(km_reqauth_check_time(1000, 699, 300), KM_ERR_RANGE);
    assert_int_equal(km_reqauth_check_time(1000, 1300, 300), KM_OK);
    assert_int_equal(km_reqauth_check_time(1000, 1301, 300), KM_ERR_RANGE); /* the future is bounded too */
    /* No wrap-around at the extremes. */
    assert_int_equal(km_reqauth_check_time(0, UINT64_MAX, 300), KM_ERR_RANGE);
    assert_int_equal(km_reqauth_check_time(UINT64_MAX, 0, 300), KM_ERR_RANGE);
    assert_int_equal(km_reqauth_check_time(UINT64_MAX, UINT64_MAX - 300, 300), KM_OK);
    assert_int_equal(km_reqauth_check_time(0, UINT64_MAX, UINT64_MAX), KM_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_known_answer),
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_every_field_bound),
        cmocka_unit_test(test_injection_and_malformed),
        cmocka_unit_test(test_time_window),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
