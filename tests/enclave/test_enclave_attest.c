/* test_enclave_attest.c — the client's check of an enclave before trusting
 * it: a fresh attestation document, chained to the pinned development root,
 * with the expected PCR0 (the enclave binary), the caller's nonce and the
 * same key the channel handshake proved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "keymeld/aead.h"
#include "keymeld/attestation.h"
#include "tests/enclave/harness.h"

static km_ctx *ctx;
static km_test_enclave enc;
static km_enclave_conn conn;

static int setup(void **state) {
    (void)state;
    if (km_ctx_create(&ctx) != KM_OK || km_test_enclave_start(ctx, &enc) != 0) return -1;
    return km_test_enclave_connect(ctx, &enc, &conn) == KM_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    km_enclave_conn_close(&conn);
    km_test_enclave_destroy(&enc);
    km_ctx_destroy(ctx);
    return 0;
}

static void read_all(const char *path, km_buf *out) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        assert_int_equal(km_buf_put(out, buf, n), KM_OK);
    fclose(f);
}

/* What the operator pins: SHA-384 of the enclave binary they built. */
static void binary_pcr0(unsigned char out[48]) {
    km_buf bin;
    km_buf_init(&bin);
    read_all(KM_ENCLAVE_BIN, &bin);
    unsigned int len = 48;
    assert_int_equal(EVP_Digest(bin.data, bin.len, out, &len, EVP_sha384(), NULL), 1);
    km_buf_free(&bin);
}

static km_err attest(const unsigned char *nonce, uint16_t n, km_buf *doc) {
    km_buf body;
    km_buf_init(&body);
    assert_int_equal(km_buf_put_u16(&body, n), KM_OK);
    assert_int_equal(km_buf_put(&body, nonce, n), KM_OK);
    km_msg resp;
    assert_int_equal(km_enclave_conn_call(&conn, KM_CMD_ATTEST, body.data, body.len, &resp), KM_OK);
    km_buf_free(&body);
    if (doc && resp.code == KM_OK) assert_int_equal(km_buf_put(doc, resp.body, resp.body_len), KM_OK);
    return (km_err)resp.code;
}

static void test_attestation_verifies_and_binds(void **state) {
    (void)state;
    unsigned char nonce[32], pcr0[48];
    assert_int_equal(km_random_bytes(nonce, 32), KM_OK);
    binary_pcr0(pcr0);
    km_buf doc, root;
    km_buf_init(&doc);
    km_buf_init(&root);
    assert_int_equal(attest(nonce, 32, &doc), KM_OK);
    char path[400];
    snprintf(path, sizeof path, "%s/ca/root.pem", enc.dir);
    read_all(path, &root);

    km_attest_pcr want = {.index = 0, .len = 48};
    memcpy(want.value, pcr0, 48);
    km_attest_policy pol = {.now = (uint64_t)time(NULL),
                            .max_age_ms = 60000,
                            .max_future_ms = 5000,
                            .pcrs = &want,
                            .pcr_count = 1,
                            .nonce = nonce,
                            .nonce_len = 32,
                            .public_key = enc.pub,
                            .public_key_len = 33};
    km_attest_doc *d = NULL;
    km_attest_reason why;
    assert_int_equal(km_attest_verify(doc.data, doc.len, root.data, root.len, &pol, &d, &why), KM_OK);
    assert_non_null(d);
    km_attest_doc_free(d);

    /* A replayed document (other nonce), another build, another key, another
     * root: each refused. */
    unsigned char other[32];
    assert_int_equal(km_random_bytes(other, 32), KM_OK);
    km_attest_policy p2 = pol;
    p2.nonce = other;
    assert_int_equal(km_attest_verify(doc.data, doc.len, root.data, root.len, &p2, &d, &why),
                     KM_ERR_ATTESTATION);
    assert_null(d);
    km_attest_pcr wrong = want;
    wrong.value[0] ^= 1;
    p2 = pol;
    p2.pcrs = &wrong;
    assert_int_equal(km_attest_verify(doc.data, doc.len, root.data, root.len, &p2, &d, &why),
                     KM_ERR_ATTESTATION);
    unsigned char other_pub[33];
    memcpy(other_pub, enc.pub, 33);
    other_pub[1] ^= 1;
    p2 = pol;
    p2.public_key = other_pub;
    assert_int_equal(km_attest_verify(doc.data, doc.len, root.data, root.len, &p2, &d, &why),
                     KM_ERR_ATTESTATION);
    km_attest_dev_cert other_root;
    memset(&other_root, 0, sizeof other_root);
    assert_int_equal(km_attest_dev_root_create("other", pol.now - 100, pol.now + 1000, &other_root), KM_OK);
    assert_int_not_equal(km_attest_verify(doc.data, doc.len, other_root.cert_der.data,
                                          other_root.cert_der.len, &pol, &d, &why),
                         KM_OK);
    km_attest_dev_cert_free(&other_root);
    /* Stale: judged an hour later. */
    p2 = pol;
    p2.now += 3600;
    assert_int_equal(km_attest_verify(doc.data, doc.len, root.data, root.len, &p2, &d, &why),
                     KM_ERR_ATTESTATION);
    km_buf_free(&doc);
    km_buf_free(&root);
}

static void test_attest_rejects_bad_requests(void **state) {
    (void)state;
    unsigned char big[65] = {0};
    assert_int_equal(attest(big, 65, NULL), KM_ERR_PARSE);
    assert_int_equal(attest(big, 0, NULL), KM_ERR_PARSE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attestation_verifies_and_binds),
        cmocka_unit_test(test_attest_rejects_bad_requests),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
