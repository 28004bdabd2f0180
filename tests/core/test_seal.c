/* test_seal.c — the sealing interface and the local-key backend: independent
 * known answer, round trips, tampering, truncation, wrong label or key,
 * argument checks done by the interface before any backend runs.
 *
 * The known-answer blob was produced once, independently of this code, by
 * Python 3 (hmac/hashlib HKDF-SHA256 with empty salt, pyca/cryptography AESGCM):
 *
 *   key   = hkdf(bytes.fromhex("5a"*32), b"keymeld/seal/key/v1", 32)
 *   nonce = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaab")
 *   blob  = b"\x01" + nonce + AESGCM(key).encrypt(nonce, b"enclave secret key 32 bytes long",
 *                                                 b"keymeld/seal/v1" + b"enclave-key")
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
#include "keymeld/seal.h"

static km_ctx *g_ctx;

static const char KAT_BLOB_HEX[] =
    "01a0a1a2a3a4a5a6a7a8a9aaabc175d621c4eeb922f04ff0349ae8b25abc86b50fe8006a32243011a4"
    "9bb36fae2f51bee27b311e7f48c1dbe191357ddc";
static const char KAT_MSG[] = "enclave secret key 32 bytes long";

static void unhex(unsigned char *out, size_t n, const char *hex) {
    assert_int_equal(km_hex_decode(out, n, hex, strlen(hex)), KM_OK);
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

static km_sealer *new_local(unsigned char fillbyte) {
    unsigned char key[32];
    memset(key, fillbyte, sizeof key);
    km_sealer *s;
    assert_int_equal(km_sealer_local_new(g_ctx, key, &s), KM_OK);
    assert_string_equal(s->ops->name, "local-key");
    return s;
}

static void test_known_answer(void **state) {
    (void)state;
    km_sealer *s = new_local(0x5a);
    unsigned char blob[128];
    size_t bl = strlen(KAT_BLOB_HEX) / 2;
    unhex(blob, bl, KAT_BLOB_HEX);
    km_secret *out;
    assert_int_equal(km_unseal(s, "enclave-key", blob, bl, &out), KM_OK);
    assert_int_equal(km_secret_len(out), 32);
    assert_memory_equal(km_secret_cdata(out), KAT_MSG, 32);
    km_secret_free(out);
    km_sealer_free(s);
}

static void test_roundtrip(void **state) {
    (void)state;
    static const size_t sizes[] = {1, 31, 32, 33, 1000, KM_SEAL_MAX_PLAINTEXT};
    km_sealer *s = new_local(0x11);
    unsigned char pt[KM_SEAL_MAX_PLAINTEXT + 1];
    for (size_t i = 0; i < sizeof pt; i++)
        pt[i] = (unsigned char)(i * 7 + 1);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        km_buf a, b;
        km_buf_init(&a);
        km_buf_init(&b);
        assert_int_equal(km_seal(s, "enclave-key", pt, n, &a), KM_OK);
        assert_int_equal(a.len, n + KM_SEAL_LOCAL_OVERHEAD);
        assert_int_equal(a.data[0], KM_SEAL_FORMAT_LOCAL);
        assert_int_equal(km_seal(s, "enclave-key", pt, n, &b), KM_OK);
        assert_memory_not_equal(a.data + 1, b.data + 1, KM_AEAD_NONCE_LEN); /* random nonce */
        km_secret *out;
        assert_int_equal(km_unseal(s, "enclave-key", a.data, a.len, &out), KM_OK);
        assert_int_equal(km_secret_len(out), n);
        assert_memory_equal(km_secret_cdata(out), pt, n);
        km_secret_free(out);
        km_buf_free(&a);
        km_buf_free(&b);
    }
    /* Sizes outside the sealable range are refused, not truncated. The local
     * sealer is for keys: its output is a km_secret, at most KM_SECRET_MAX. */
    km_buf a;
    km_buf_init(&a);
    assert_int_equal(km_seal(s, "enclave-key", pt, 0, &a), KM_ERR_RANGE);
    assert_int_equal(km_seal(s, "enclave-key", pt, KM_SEAL_MAX_PLAINTEXT + 1, &a), KM_ERR_RANGE);
    assert_null(a.data);
    unsigned char *big = calloc(1, 65536 + KM_SEAL_LOCAL_OVERHEAD);
    assert_non_null(big);
    big[0] = KM_SEAL_FORMAT_LOCAL;
    km_secret *out = (km_secret *)big;
    assert_int_equal(km_unseal(s, "enclave-key", big, 65536 + KM_SEAL_LOCAL_OVERHEAD, &out), KM_ERR_RANGE);
    assert_null(out);
    free(big);
    km_sealer_free(s);
}

static void test_tamper_truncate(void **state) {
    (void)state;
    km_sealer *s = new_local(0x22);
    unsigned char pt[16];
    memset(pt, 0x33, sizeof pt);
    km_buf blob;
    km_buf_init(&blob);
    assert_int_equal(km_seal(s, "enclave-key", pt, sizeof pt, &blob), KM_OK);
    size_t flips = 0;
    for (size_t i = 0; i < blob.len; i++) {
        for (int bit = 0; bit < 8; bit++, flips++) {
            blob.data[i] ^= (unsigned char)(1u << bit);
            km_secret *out = (km_secret *)&flips;
            assert_int_equal(km_unseal(s, "enclave-key", blob.data, blob.len, &out),
                             i == 0 ? KM_ERR_UNSUPPORTED : KM_ERR_DECRYPT);
            assert_null(out);
            blob.data[i] ^= (unsigned char)(1u << bit);
        }
    }
    for (size_t len = 0; len < blob.len; len++) {
        km_secret *out = (km_secret *)&flips;
        assert_int_equal(km_unseal(s, "enclave-key", blob.data, len, &out),
                         len <= KM_SEAL_LOCAL_OVERHEAD ? KM_ERR_PARSE : KM_ERR_DECRYPT);
        assert_null(out);
    }
    printf("seal: %zu bit flips and %zu truncations rejected\n", flips, blob.len);
    km_secret *out;
    assert_int_equal(km_unseal(s, "enclave-key", blob.data, blob.len, &out), KM_OK);
    km_secret_free(out);
    km_buf_free(&blob);
    km_sealer_free(s);
}

static void test_wrong_label_and_key(void **state) {
    (void)state;
    km_sealer *s = new_local(0x44), *t = new_local(0x45);
    unsigned char pt[32];
    memset(pt, 0x77, sizeof pt);
    km_buf blob;
    km_buf_init(&blob);
    assert_int_equal(km_seal(s, "enclave-key", pt, sizeof pt, &blob), KM_OK);
    km_secret *out;
    assert_int_equal(km_unseal(s, "enclave-key2", blob.data, blob.len, &out), KM_ERR_DECRYPT);
    assert_int_equal(km_unseal(s, "enclave-ke", blob.data, blob.len, &out), KM_ERR_DECRYPT);
    assert_int_equal(km_unseal(s, "other", blob.data, blob.len, &out), KM_ERR_DECRYPT);
    assert_int_equal(km_unseal(t, "enclave-key", blob.data, blob.len, &out), KM_ERR_DECRYPT);
    assert_null(out);
    /* Bad labels never reach the backend. */
    char longl[KM_SEAL_LABEL_MAX + 2];
    memset(longl, 'l', sizeof longl - 1);
    longl[sizeof longl - 1] = '\0';
    const char *bad[] = {"", "a b", "a\nb", "\x01", longl};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(km_seal(s, bad[i], pt, sizeof pt, &blob), KM_ERR_ARG);
        assert_null(blob.data);
        assert_int_equal(km_unseal(s, bad[i], pt, sizeof pt, &out), KM_ERR_ARG);
    }
    longl[KM_SEAL_LABEL_MAX] = '\0';
    assert_int_equal(km_seal(s, longl, pt, sizeof pt, &blob), KM_OK);
    assert_int_equal(km_unseal(s, longl, blob.data, blob.len, &out), KM_OK);
    km_secret_free(out);
    km_buf_free(&blob);
    km_sealer_free(s);
    km_sealer_free(t);
    km_sealer_free(NULL);
}

/* A second backend plugged in through the same interface: records its calls,
 * and on unseal returns an error while leaving a secret behind, to show that
 * km_unseal cleans up after a misbehaving backend (ASan would report a leak). */
typedef struct mock_state {
    int seals, unseals, destroyed;
} mock_state;

static km_err mock_seal(void *st, const char *label, const unsigned char *pt, size_t pt_len, km_buf *out) {
    mock_state *m = st;
    m->seals++;
    (void)label;
    unsigned char fmt = 0x7f;
    km_err e = km_buf_put(out, &fmt, 1);
    return e ? e : km_buf_put(out, pt, pt_len);
}

static km_err mock_unseal(void *st, const char *label, const unsigned char *blob, size_t blob_len,
                          km_secret **out) {
    mock_state *m = st;
    m->unseals++;
    (void)label;
    (void)blob;
    (void)blob_len;
    km_err e = km_secret_new(g_ctx, 4, out);
    return e ? e : KM_ERR_IO;
}

static void mock_destroy(void *st) {
    ((mock_state *)st)->destroyed++;
}

static void test_interface_dispatch(void **state) {
    (void)state;
    static const km_sealer_ops ops = {"mock", mock_seal, mock_unseal, mock_destroy};
    mock_state m = {0, 0, 0};
    km_sealer *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->ops = &ops;
    s->state = &m;
    unsigned char pt[3] = {1, 2, 3};
    km_buf blob;
    km_buf_init(&blob);
    assert_int_equal(km_seal(s, "x", pt, 3, &blob), KM_OK);
    assert_int_equal(m.seals, 1);
    assert_int_equal(blob.len, 4);
    assert_int_equal(blob.data[0], 0x7f);
    assert_int_equal(km_seal(s, "bad label", pt, 3, &blob), KM_ERR_ARG);
    assert_int_equal(km_seal(s, "x", pt, 0, &blob), KM_ERR_RANGE);
    assert_int_equal(m.seals, 1); /* validation happened before dispatch */
    km_secret *out = (km_secret *)&m;
    assert_int_equal(km_unseal(s, "x", pt, 3, &out), KM_ERR_IO);
    assert_null(out);
    assert_int_equal(m.unseals, 1);
    /* The local backend refuses the mock's blob by its format byte. */
    km_sealer *local = new_local(0x01);
    assert_int_equal(km_seal(s, "x", pt, 3, &blob), KM_OK);
    assert_int_equal(km_unseal(local, "x", blob.data, blob.len, &out), KM_ERR_UNSUPPORTED);
    km_sealer_free(local);
    km_buf_free(&blob);
    km_sealer_free(s);
    assert_int_equal(m.destroyed, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer),       cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_tamper_truncate),    cmocka_unit_test(test_wrong_label_and_key),
        cmocka_unit_test(test_interface_dispatch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
