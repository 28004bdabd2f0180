/* test_session_crypto.c — canonical AD (injectivity), session key derivation
 * (known answers), session data blobs (round trips, tampering, truncation,
 * wrong AD, wrong key).
 *
 * Known-answer values were produced once, independently of this code, by a
 * Python 3 script using only hmac/hashlib for HKDF-SHA256 (RFC 5869, written
 * out by hand) and pyca/cryptography 48 for secp256k1 and AES-GCM:
 *
 *   def hkdf(ikm, info, L):      # empty salt == 32 zero bytes
 *       prk = hmac.new(b"\0"*32, ikm, sha256).digest(); out = t = b""; i = 1
 *       while len(out) < L: t = hmac.new(prk, t+info+bytes([i]), sha256).digest(); out += t; i += 1
 *       return out[:L]
 *   S = bytes(range(0x20, 0x40))
 *   data_key = hkdf(S, b"keymeld/session/data/v1", 32)
 *   auth_sk  = hkdf(S, b"keymeld/session/auth/v1" + b"\x00", 32)
 *   xonly    = compressed(ec.derive_private_key(auth_sk, SECP256K1()).public_key())[1:]
 *   def ad(purpose, fields):     # kind || u32be(len) || value
 *       out = b"\x01" + b"P" + pack(">I", len(purpose)) + purpose
 *       for kind, v in fields: out += kind + pack(">I", len(v)) + v
 *       return out
 *   AD_IDX = ad(b"session/message", [(b"I", keygen_id), (b"U", pack(">Q", 7))])
 *   blob = b"\x01" + nonce + AESGCM(data_key).encrypt(nonce, b"hello session", AD_IDX)
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
#include "keymeld/hex.h"
#include "keymeld/session_crypto.h"

static km_ctx *g_ctx;

static void unhex(unsigned char *out, size_t n, const char *hex) {
    assert_int_equal(km_hex_decode(out, n, hex, strlen(hex)), KM_OK);
}

static const char KEYGEN_ID_HEX[] = "0190a1b2c3d47abc8def0123456789ab";
static const char USER_ID_HEX[] = "0190a1b2c3d47123a456fedcba987654";
static const char AD_REG_HEX[] =
    "01500000000c726567697374726174696f6e49000000100190a1b2c3d47abc8def0123456789ab42"
    "000000100190a1b2c3d47123a456fedcba987654";
static const char AD_IDX_HEX[] =
    "01500000000f73657373696f6e2f6d65737361676549000000100190a1b2c3d47abc8def01234567"
    "89ab55000000080000000000000007";
static const char S_HEX[] = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
static const char DATA_KEY_HEX[] = "b582695b1975567b92d855f0cbdbd2dac16bd35354aa681aca204a009c784b27";
static const char AUTH_SK_HEX[] = "11ff10005e69a3b8415b8d6abb9513219f454c868abf7102b48ff2a3c4be549d";
static const char AUTH_XONLY_HEX[] = "eb745e0c2de2307f3c03313a8307593fd96438c4688e65de3b370667f113c718";
static const char SESSION_BLOB_HEX[] =
    "01000102030405060708090a0bc05392df7421db81aa310db753134fabec7c62f1b8bd3e3b5da6b5a8ef";

static km_uuid id_from_hex(const char *hex) {
    km_uuid u;
    unhex(u.b, 16, hex);
    return u;
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

/* ---- AD ------------------------------------------------------------------ */

static void test_ad_known_answer(void **state) {
    (void)state;
    km_uuid kid = id_from_hex(KEYGEN_ID_HEX), uid = id_from_hex(USER_ID_HEX);
    unsigned char want[KM_AD_MAX];
    km_ad ad;
    assert_int_equal(km_ad_build(&ad, "registration", &kid, uid.b, 16), KM_OK);
    unhex(want, strlen(AD_REG_HEX) / 2, AD_REG_HEX);
    assert_int_equal(ad.len, strlen(AD_REG_HEX) / 2);
    assert_memory_equal(ad.bytes, want, ad.len);
    assert_int_equal(km_ad_build_index(&ad, "session/message", &kid, 7), KM_OK);
    unhex(want, strlen(AD_IDX_HEX) / 2, AD_IDX_HEX);
    assert_int_equal(ad.len, strlen(AD_IDX_HEX) / 2);
    assert_memory_equal(ad.bytes, want, ad.len);
}

/* Build every AD over a small alphabet of purposes and typed fields (up to two
 * fields) and check that no two different tuples encode alike. The alphabet
 * is chosen so that naive concatenation WOULD collide: "ab"+"c" = "a"+"bc",
 * the u64 0x6162 has the same low bytes as "ab", ids share prefixes. */
typedef struct field {
    char kind; /* 'B', 'U', 'I' */
    const char *bytes;
    size_t len;
    uint64_t u;
    int id;
} field;

static km_err add_field(km_ad *ad, const field *f, const km_uuid *ids) {
    if (f->kind == 'B') return km_ad_add_bytes(ad, f->bytes, f->len);
    if (f->kind == 'U') return km_ad_add_u64(ad, f->u);
    return km_ad_add_id(ad, &ids[f->id]);
}

static void test_ad_injective(void **state) {
    (void)state;
    static const char *purposes[] = {"a", "ab", "b", "abc", "abP"};
    static const field fields[] = {
        {'B', "", 0, 0, 0},      {'B', "a", 1, 0, 0},       {'B', "b", 1, 0, 0},  {'B', "ab", 2, 0, 0},
        {'B', "c", 1, 0, 0},     {'B', "bc", 2, 0, 0},      {'B', "\0", 1, 0, 0}, {'U', NULL, 0, 0, 0},
        {'U', NULL, 0, 0x61, 0}, {'U', NULL, 0, 0x6162, 0}, {'I', NULL, 0, 0, 0}, {'I', NULL, 0, 0, 1},
    };
    const size_t np = sizeof purposes / sizeof purposes[0], nf = sizeof fields / sizeof fields[0];
    km_uuid ids[2];
    memset(ids[0].b, 0x61, 16);
    memset(ids[1].b, 0x61, 16);
    ids[1].b[15] = 0x62;
    size_t per_purpose = 1 + nf + nf * nf, total = np * per_purpose, k = 0;
    km_ad *all = calloc(total, sizeof *all);
    assert_non_null(all);
    for (size_t p = 0; p < np; p++) {
        for (size_t a = 0; a <= nf; a++) {     /* a == nf: no first field */
            for (size_t b = 0; b <= nf; b++) { /* b == nf: no second field */
                if (a == nf && b != nf) continue;
                km_ad *ad = &all[k++];
                assert_int_equal(km_ad_init(ad, purposes[p]), KM_OK);
                if (a < nf) assert_int_equal(add_field(ad, &fields[a], ids), KM_OK);
                if (b < nf) assert_int_equal(add_field(ad, &fields[b], ids), KM_OK);
            }
        }
    }
    assert_int_equal(k, total);
    size_t pairs = 0;
    for (size_t i = 0; i < total; i++)
        for (size_t j = i + 1; j < total; j++, pairs++)
            assert_false(all[i].len == all[j].len && memcmp(all[i].bytes, all[j].bytes, all[i].len) == 0);
    printf("ad injectivity: %zu encodings, %zu pairs distinct\n", total, pairs);
    free(all);

    /* The example from the specification, spelled out. */
    km_ad x, y;
    km_uuid id = id_from_hex(KEYGEN_ID_HEX);
    assert_int_equal(km_ad_init(&x, "ab"), KM_OK);
    assert_int_equal(km_ad_add_bytes(&x, "c", 1), KM_OK);
    assert_int_equal(km_ad_init(&y, "a"), KM_OK);
    assert_int_equal(km_ad_add_bytes(&y, "bc", 2), KM_OK);
    assert_false(x.len == y.len && memcmp(x.bytes, y.bytes, x.len) == 0);
    assert_int_equal(km_ad_build(&x, "p", &id, "ab", 2), KM_OK);
    assert_int_equal(km_ad_build_index(&y, "p", &id, 0x6162), KM_OK);
    assert_false(x.len == y.len && memcmp(x.bytes, y.bytes, x.len) == 0);
}

static void test_ad_rejects(void **state) {
    (void)state;
    km_ad ad;
    char longp[KM_AD_PURPOSE_MAX + 2];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    const char *bad[] = {"", "a b", "a\nb", "a\tb", "\x7f", "caf\xc3\xa9", longp};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(km_ad_init(&ad, bad[i]), KM_ERR_ARG);
        assert_int_equal(ad.len, 0);
        assert_true(ad.failed);
        assert_int_equal(km_ad_add_u64(&ad, 1), KM_ERR_ARG); /* sticky */
        assert_int_equal(ad.len, 0);
    }
    longp[KM_AD_PURPOSE_MAX] = '\0'; /* exactly the maximum is fine */
    assert_int_equal(km_ad_init(&ad, longp), KM_OK);

    /* Adding to a never-initialized AD fails instead of producing a
     * purpose-less encoding. */
    memset(&ad, 0, sizeof ad);
    assert_int_equal(km_ad_add_bytes(&ad, "x", 1), KM_ERR_ARG);
    assert_int_equal(km_ad_add_bytes(&ad, NULL, 0), KM_ERR_ARG);

    /* Overflow: RANGE, then the AD is emptied and stays failed. */
    unsigned char big[KM_AD_MAX];
    memset(big, 1, sizeof big);
    assert_int_equal(km_ad_init(&ad, "p"), KM_OK);
    size_t room = KM_AD_MAX - ad.len - 5;
    assert_int_equal(km_ad_add_bytes(&ad, big, room + 1), KM_ERR_RANGE);
    assert_int_equal(ad.len, 0);
    assert_int_equal(km_ad_add_bytes(&ad, big, 1), KM_ERR_ARG);
    assert_int_equal(km_ad_init(&ad, "p"), KM_OK);
    assert_int_equal(km_ad_add_bytes(&ad, big, room), KM_OK); /* exactly full */
    assert_int_equal(ad.len, KM_AD_MAX);
    assert_int_equal(km_ad_add_bytes(&ad, NULL, 0), KM_ERR_RANGE);
    assert_int_equal(km_ad_init(&ad, "p"), KM_OK);
    assert_int_equal(km_ad_add_bytes(&ad, NULL, 3), KM_ERR_ARG);
}

/* ---- session keys ----------------------------------------------------------- */

static void test_session_known_answer(void **state) {
    (void)state;
    unsigned char s[32], dk[32], ak[32], want[32], x[32];
    unhex(s, 32, S_HEX);
    assert_int_equal(km_session_derive_raw(g_ctx, s, dk, ak), KM_OK);
    unhex(want, 32, DATA_KEY_HEX);
    assert_memory_equal(dk, want, 32);
    unhex(want, 32, AUTH_SK_HEX);
    assert_memory_equal(ak, want, 32);

    km_session *sess;
    assert_int_equal(km_session_derive(g_ctx, s, &sess), KM_OK);
    km_session_auth_pubkey(sess, x);
    unhex(want, 32, AUTH_XONLY_HEX);
    assert_memory_equal(x, want, 32);
    unsigned char sec[32];
    assert_int_equal(secp256k1_keypair_sec(km_ctx_secp(g_ctx), sec, km_session_auth_keypair(sess)), 1);
    assert_memory_equal(sec, ak, 32);
    km_wipe(sec, 32);

    /* The session opens a blob sealed independently under the KAT data key. */
    unsigned char blob[64], adb[KM_AD_MAX], pt[64];
    size_t bl = strlen(SESSION_BLOB_HEX) / 2, al = strlen(AD_IDX_HEX) / 2, n = 99;
    unhex(blob, bl, SESSION_BLOB_HEX);
    unhex(adb, al, AD_IDX_HEX);
    assert_int_equal(km_session_open(sess, adb, al, blob, bl, pt, sizeof pt, &n), KM_OK);
    assert_int_equal(n, 13);
    assert_memory_equal(pt, "hello session", 13);
    km_session_free(sess);
    km_wipe(dk, 32);
    km_wipe(ak, 32);
}

static void test_session_deterministic_and_separated(void **state) {
    (void)state;
    unsigned char s[32], dk1[32], ak1[32], dk2[32], ak2[32];
    assert_int_equal(km_random_bytes(s, 32), KM_OK);
    assert_int_equal(km_session_derive_raw(g_ctx, s, dk1, ak1), KM_OK);
    assert_int_equal(km_session_derive_raw(g_ctx, s, dk2, ak2), KM_OK);
    assert_memory_equal(dk1, dk2, 32);
    assert_memory_equal(ak1, ak2, 32);
    /* Distinct labels: the data key and the auth key are unrelated. */
    assert_memory_not_equal(dk1, ak1, 32);
    assert_memory_not_equal(dk1, s, 32);
    s[31] ^= 1;
    assert_int_equal(km_session_derive_raw(g_ctx, s, dk2, ak2), KM_OK);
    assert_memory_not_equal(dk1, dk2, 32);
    assert_memory_not_equal(ak1, ak2, 32);

    km_session *a, *b;
    unsigned char xa[32], xb[32];
    s[31] ^= 1;
    assert_int_equal(km_session_derive(g_ctx, s, &a), KM_OK);
    assert_int_equal(km_session_derive(g_ctx, s, &b), KM_OK);
    km_session_auth_pubkey(a, xa);
    km_session_auth_pubkey(b, xb);
    assert_memory_equal(xa, xb, 32);
    km_session_free(a);
    km_session_free(b);
    km_session_free(NULL);
}

/* ---- session blobs ------------------------------------------------------------ */

static km_session *new_session(void) {
    unsigned char s[32];
    km_session *sess;
    assert_int_equal(km_random_bytes(s, 32), KM_OK);
    assert_int_equal(km_session_derive(g_ctx, s, &sess), KM_OK);
    km_wipe(s, 32);
    return sess;
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 131u + seed);
}

static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static void test_session_roundtrip(void **state) {
    (void)state;
    static const size_t sizes[] = {0, 1, 31, 32, 33, 1000, 65536};
    km_session *sess = new_session();
    km_uuid id = id_from_hex(KEYGEN_ID_HEX);
    km_ad ad;
    assert_int_equal(km_ad_build_index(&ad, "session/message", &id, 3), KM_OK);
    unsigned char *pt = malloc(65536), *back = malloc(65536);
    assert_non_null(pt);
    assert_non_null(back);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i], got = 99;
        km_buf blob, blob2;
        km_buf_init(&blob);
        km_buf_init(&blob2);
        fill(pt, n, (unsigned)i);
        assert_int_equal(km_session_seal(sess, ad.bytes, ad.len, n ? pt : NULL, n, &blob), KM_OK);
        assert_int_equal(blob.len, n + KM_SESSION_OVERHEAD);
        assert_int_equal(blob.data[0], KM_SESSION_VERSION);
        /* Random nonce: sealing twice gives different blobs. */
        assert_int_equal(km_session_seal(sess, ad.bytes, ad.len, n ? pt : NULL, n, &blob2), KM_OK);
        assert_memory_not_equal(blob.data + 1, blob2.data + 1, KM_AEAD_NONCE_LEN);
        assert_int_equal(km_session_open(sess, ad.bytes, ad.len, blob.data, blob.len, back, 65536, &got),
                         KM_OK);
        assert_int_equal(got, n);
        if (n) assert_memory_equal(back, pt, n);
        km_secret *sec = NULL;
        km_err e = km_session_open_secret(sess, ad.bytes, ad.len, blob2.data, blob2.len, &sec);
        if (n == 0 || n > KM_SECRET_MAX) {
            assert_int_equal(e, KM_ERR_RANGE);
            assert_null(sec);
        } else {
            assert_int_equal(e, KM_OK);
            assert_int_equal(km_secret_len(sec), n);
            assert_memory_equal(km_secret_cdata(sec), pt, n);
            km_secret_free(sec);
        }
        km_buf_free(&blob);
        km_buf_free(&blob2);
    }
    free(pt);
    free(back);
    km_session_free(sess);
}

static void test_session_tamper_every_bit(void **state) {
    (void)state;
    km_session *sess = new_session();
    km_uuid id = id_from_hex(KEYGEN_ID_HEX);
    km_ad ad;
    assert_int_equal(km_ad_build_index(&ad, "session/message", &id, 0), KM_OK);
    unsigned char pt[8] = "secret!", out[8];
    km_buf blob;
    km_buf_init(&blob);
    assert_int_equal(km_session_seal(sess, ad.bytes, ad.len, pt, sizeof pt, &blob), KM_OK);
    size_t cases = 0;
    for (size_t i = 0; i < blob.len; i++) {
        for (int bit = 0; bit < 8; bit++, cases++) {
            blob.data[i] ^= (unsigned char)(1u << bit);
            size_t got = 99;
            memset(out, 0xaa, sizeof out);
            km_err e = km_session_open(sess, ad.bytes, ad.len, blob.data, blob.len, out, sizeof out, &got);
            assert_int_equal(e, i == 0 ? KM_ERR_UNSUPPORTED : KM_ERR_DECRYPT);
            assert_true(all_zero(out, sizeof out));
            assert_int_equal(got, 0);
            km_secret *sec = (km_secret *)&got; /* must be overwritten with NULL */
            assert_int_not_equal(km_session_open_secret(sess, ad.bytes, ad.len, blob.data, blob.len, &sec),
                                 KM_OK);
            assert_null(sec);
            blob.data[i] ^= (unsigned char)(1u << bit);
        }
    }
    printf("session tamper: %zu single-bit flips rejected\n", cases);
    size_t got;
    assert_int_equal(km_session_open(sess, ad.bytes, ad.len, blob.data, blob.len, out, sizeof out, &got),
                     KM_OK);
    km_buf_free(&blob);
    km_session_free(sess);
}

static void test_session_truncate_extend(void **state) {
    (void)state;
    km_session *sess = new_session();
    km_uuid id = id_from_hex(KEYGEN_ID_HEX);
    km_ad ad;
    assert_int_equal(km_ad_build_index(&ad, "session/message", &id, 0), KM_OK);
    unsigned char pt[20], out[64];
    fill(pt, sizeof pt, 7);
    km_buf blob;
    km_buf_init(&blob);
    assert_int_equal(km_session_seal(sess, ad.bytes, ad.len, pt, sizeof pt, &blob), KM_OK);
    for (size_t len = 0; len < blob.len; len++) {
        size_t got = 99;
        memset(out, 0xaa, sizeof out);
        km_err e = km_session_open(sess, ad.bytes, ad.len, blob.data, len, out, sizeof out, &got);
        assert_int_equal(e, len < KM_SESSION_OVERHEAD ? KM_ERR_PARSE : KM_ERR_DECRYPT);
        assert_true(all_zero(out, sizeof out));
        assert_int_equal(got, 0);
    }
    /* One extra byte is not ignored. */
    unsigned char ext[64];
    memcpy(ext, blob.data, blob.len);
    ext[blob.len] = 0;
    size_t got;
    assert_int_equal(km_session_open(sess, ad.bytes, ad.len, ext, blob.len + 1, out, sizeof out, &got),
                     KM_ERR_DECRYPT);
    /* A too-small output buffer is refused before anything is decrypted. */
    memset(out, 0xaa, sizeof out);
    assert_int_equal(km_session_open(sess, ad.bytes, ad.len, blob.data, blob.len, out, sizeof pt - 1, &got),
                     KM_ERR_BUFFER_SMALL);
    assert_true(all_zero(out, sizeof pt - 1));
    assert_int_equal(km_session_open(sess, ad.bytes, ad.len, NULL, 0, NULL, 0, &got), KM_ERR_PARSE);
    km_buf_free(&blob);
    km_session_free(sess);
}

static void test_session_wrong_ad_and_key(void **state) {
    (void)state;
    km_session *sess = new_session(), *other = new_session();
    km_uuid id = id_from_hex(KEYGEN_ID_HEX), id2 = id;
    id2.b[15] ^= 1;
    km_ad ad, wrong[4];
    assert_int_equal(km_ad_build_index(&ad, "session/message", &id, 5), KM_OK);
    assert_int_equal(km_ad_build_index(&wrong[0], "session/tweak", &id, 5), KM_OK);    /* purpose */
    assert_int_equal(km_ad_build_index(&wrong[1], "session/message", &id2, 5), KM_OK); /* id */
    assert_int_equal(km_ad_build_index(&wrong[2], "session/message", &id, 6), KM_OK);  /* index */
    assert_int_equal(km_ad_build(&wrong[3], "session/message", &id, "\0\0\0\0\0\0\0\5", 8), KM_OK); /* kind */
    unsigned char pt[32], out[32];
    fill(pt, sizeof pt, 1);
    km_buf blob;
    km_buf_init(&blob);
    assert_int_equal(km_session_seal(sess, ad.bytes, ad.len, pt, sizeof pt, &blob), KM_OK);
    size_t got;
    for (int i = 0; i < 4; i++) {
        memset(out, 0xaa, sizeof out);
        assert_int_equal(
            km_session_open(sess, wrong[i].bytes, wrong[i].len, blob.data, blob.len, out, sizeof out, &got),
            KM_ERR_DECRYPT);
        assert_true(all_zero(out, sizeof out));
    }
    memset(out, 0xaa, sizeof out);
    assert_int_equal(km_session_open(other, ad.bytes, ad.len, blob.data, blob.len, out, sizeof out, &got),
                     KM_ERR_DECRYPT);
    assert_true(all_zero(out, sizeof out));
    /* Empty AD is refused on both sides: a blob must name what it is. */
    assert_int_equal(km_session_open(sess, ad.bytes, 0, blob.data, blob.len, out, sizeof out, &got),
                     KM_ERR_ARG);
    assert_int_equal(km_session_seal(sess, ad.bytes, 0, pt, sizeof pt, &blob), KM_ERR_ARG);
    assert_int_equal(blob.len, 0);
    assert_null(blob.data);
    km_ad failed;
    assert_int_not_equal(km_ad_init(&failed, "bad purpose"), KM_OK);
    assert_int_equal(km_session_seal(sess, failed.bytes, failed.len, pt, sizeof pt, &blob), KM_ERR_ARG);
    /* Oversized plaintext. */
    unsigned char *huge = malloc(KM_SESSION_MAX_PLAINTEXT + 1);
    assert_non_null(huge);
    assert_int_equal(km_session_seal(sess, ad.bytes, ad.len, huge, KM_SESSION_MAX_PLAINTEXT + 1, &blob),
                     KM_ERR_RANGE);
    free(huge);
    km_buf_free(&blob);
    km_session_free(sess);
    km_session_free(other);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ad_known_answer),
        cmocka_unit_test(test_ad_injective),
        cmocka_unit_test(test_ad_rejects),
        cmocka_unit_test(test_session_known_answer),
        cmocka_unit_test(test_session_deterministic_and_separated),
        cmocka_unit_test(test_session_roundtrip),
        cmocka_unit_test(test_session_tamper_every_bit),
        cmocka_unit_test(test_session_truncate_extend),
        cmocka_unit_test(test_session_wrong_ad_and_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
