/* test_attestation.c — the verifier against a real AWS Nitro attestation
 * document (tests/vectors/nitro/): accepted at its recorded time against the
 * pinned AWS root with exactly the published PCRs and user_data; rejected on
 * every deviation the vector README lists (time, root, any flipped bit) and
 * on each policy and strictness rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "keymeld/attestation.h"
#include "keymeld/hex.h"
#include "nitro_testutil.h"

#define TIMESTAMP 1657117102484ull /* README: the document's timestamp (ms) */
#define DAY       86400ull

static const char *const pcr_hex[4] = {
    "f8bb0133c427bc49aa39f6811a01077ce9ab7e635fa1f5439c9c8bf99754f8230e41b09426b0e595eebdc4d6ed4bc3b6",
    "bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f",
    "c185515d78cb90a2dc1fa49ea232fb44645acd18652c96dd05a92b9c5dbfa36d61d7c7d9e71d51de38de914cd00214bb",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
};
static const char user_data_hex[] = "a2ec4272c44690b2dc32ed89d4bdd266ec2b0e753dff2f25f08b5d2a15cfe2e6";

static km_attest_pcr pcr_from_hex(uint32_t index, const char *hex) {
    km_attest_pcr p;
    memset(&p, 0, sizeof p);
    p.index = index;
    p.len = strlen(hex) / 2;
    assert_int_equal(km_hex_decode(p.value, p.len, hex, strlen(hex)), KM_OK);
    return p;
}

static void test_accepts_real_document(void **state) {
    fixture *fx = *state;
    km_attest_policy pol = policy_at(T_VALID);
    km_attest_doc *doc = NULL;
    km_attest_reason why;
    assert_int_equal(km_attest_verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol, &doc, &why),
                     KM_OK);
    assert_int_equal(why, KM_ATTEST_OK);
    assert_non_null(doc);
    assert_int_equal(strncmp(doc->module_id, "i-07e25f3bada361dec-enc0181d3", 29), 0);
    assert_string_equal(doc->digest, "SHA384");
    assert_int_equal(doc->timestamp_ms, TIMESTAMP);
    for (uint32_t i = 0; i < 4; i++) {
        km_attest_pcr want = pcr_from_hex(i, pcr_hex[i]);
        assert_int_equal(doc->pcr_len[i], 48);
        assert_memory_equal(doc->pcr[i], want.value, 48);
    }
    size_t npcr = 0;
    for (int i = 0; i < KM_ATTEST_PCR_SLOTS; i++)
        npcr += doc->pcr_len[i] != 0;
    assert_int_equal(npcr, 16); /* the NSM reports PCR0..15 */
    unsigned char ud[32];
    assert_int_equal(km_hex_decode(ud, 32, user_data_hex, 64), KM_OK);
    assert_int_equal(doc->has_user_data, 1);
    assert_int_equal(doc->user_data_len, 32);
    assert_memory_equal(doc->user_data, ud, 32);
    assert_int_equal(doc->has_nonce, 0); /* null in this document */
    assert_int_equal(doc->has_public_key, 1);
    assert_int_equal(doc->public_key_len, 800);
    assert_memory_equal(doc->public_key, "-----BEGIN", 10);
    km_attest_doc_free(doc);

    /* out and reason are optional */
    assert_int_equal(km_attest_verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol, NULL, NULL),
                     KM_OK);
}

static void test_root_in_der(void **state) {
    fixture *fx = *state;
    BIO *bio = BIO_new_mem_buf(fx->root_pem, (int)fx->root_pem_len);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(x);
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    assert_true(n > 0);
    /* SHA-256 fingerprint published by AWS, per the README */
    unsigned char fp[32], want[32];
    unsigned int fplen = 0;
    assert_int_equal(X509_digest(x, EVP_sha256(), fp, &fplen), 1);
    assert_int_equal(
        km_hex_decode(want, 32, "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b", 64),
        KM_OK);
    assert_memory_equal(fp, want, 32);
    km_attest_policy pol = policy_at(T_VALID);
    assert_int_equal(verify(fx->doc, fx->doc_len, der, (size_t)n, &pol), KM_ATTEST_OK);
    /* DER with a trailing byte is not the pinned root: refuse it */
    unsigned char *longer = malloc((size_t)n + 1);
    assert_non_null(longer);
    memcpy(longer, der, (size_t)n);
    longer[n] = 0;
    assert_int_equal(verify(fx->doc, fx->doc_len, longer, (size_t)n + 1, &pol), KM_ATTEST_BAD_ROOT);
    /* garbage root */
    assert_int_equal(verify(fx->doc, fx->doc_len, (const unsigned char *)"-----BEGIN nope", 15, &pol),
                     KM_ATTEST_BAD_ROOT);
    free(longer);
    OPENSSL_free(der);
    X509_free(x);
    BIO_free(bio);
}

static void test_rejects_outside_validity(void **state) {
    fixture *fx = *state;
    km_attest_policy later = policy_at(T_VALID + DAY), earlier = policy_at(T_VALID - DAY);
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &later),
                     KM_ATTEST_CERT_EXPIRED);
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &earlier),
                     KM_ATTEST_CERT_NOT_YET_VALID);
    /* leaf validity: notBefore 2022-07-06 14:18:19 (1657117099) is the first
     * valid second; at notAfter 17:18:22 (1657127902) OpenSSL already counts
     * the certificate as expired. */
    km_attest_policy first = policy_at(1657117099), before = policy_at(1657117098);
    km_attest_policy last = policy_at(1657127901), after = policy_at(1657127902);
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &before),
                     KM_ATTEST_CERT_NOT_YET_VALID);
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &after),
                     KM_ATTEST_CERT_EXPIRED);
    /* at 14:18:19 the timestamp (14:18:22.484) is still ahead: allow the skew */
    first.max_future_ms = 4000;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &first), KM_ATTEST_OK);
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &last), KM_ATTEST_OK);
}

static void test_rejects_other_root(void **state) {
    fixture *fx = *state;
    /* A fresh self-signed P-384 root, made with OpenSSL directly so this
     * test does not depend on the development issuer. */
    EVP_PKEY *key = EVP_EC_gen("secp384r1");
    X509 *x = X509_new();
    assert_non_null(key);
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
    assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), 1500000000));
    assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), 2500000000));
    X509_NAME *name = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)"aws.nitro-enclaves", -1, -1, 0),
                     1);
    assert_int_equal(X509_set_issuer_name(x, name), 1);
    assert_int_equal(X509_set_pubkey(x, key), 1);
    assert_true(X509_sign(x, key, EVP_sha384()) > 0);
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    assert_true(n > 0);
    km_attest_policy pol = policy_at(T_VALID);
    assert_int_equal(verify(fx->doc, fx->doc_len, der, (size_t)n, &pol), KM_ATTEST_ROOT_MISMATCH);
    OPENSSL_free(der);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void test_cose_tag(void **state) {
    fixture *fx = *state;
    km_attest_policy pol = policy_at(T_VALID);
    unsigned char *doc = malloc(fx->doc_len + 2);
    assert_non_null(doc);
    /* tag 18 (COSE_Sign1) in shortest form is accepted */
    doc[0] = 0xd2;
    memcpy(doc + 1, fx->doc, fx->doc_len);
    assert_int_equal(verify(doc, fx->doc_len + 1, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_OK);
    /* tag 17 (COSE_Mac0), tag 18 twice, tag 18 in a longer form: refused */
    doc[0] = 0xd1;
    assert_int_equal(verify(doc, fx->doc_len + 1, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_MALFORMED);
    doc[0] = 0xd2;
    doc[1] = 0xd2;
    memcpy(doc + 2, fx->doc, fx->doc_len);
    assert_int_equal(verify(doc, fx->doc_len + 2, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_MALFORMED);
    doc[0] = 0xd8;
    doc[1] = 0x12;
    assert_int_equal(verify(doc, fx->doc_len + 2, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_MALFORMED);
    free(doc);
}

/* Re-encodings of the unsigned framing: same signed bytes, different
 * document. A strict verifier accepts exactly one encoding. */
static void test_rejects_unsigned_reencodings(void **state) {
    fixture *fx = *state;
    km_attest_policy pol = policy_at(T_VALID);
    const unsigned char *d = fx->doc;
    size_t n = fx->doc_len;
    /* layout: 84 | 44 a1013822 | a0 | 59 1404 <5124> | 58 60 <96> */
    assert_int_equal(d[0], 0x84);
    assert_int_equal(d[6], 0xa0);
    assert_int_equal(d[7], 0x59);
    assert_int_equal(d[n - 98], 0x58);
    assert_int_equal(d[n - 97], 0x60);
    unsigned char *v = malloc(n + 16);
    assert_non_null(v);

    /* indefinite-length outer array: 9f ... ff */
    v[0] = 0x9f;
    memcpy(v + 1, d + 1, n - 1);
    v[n] = 0xff;
    assert_int_equal(verify(v, n + 1, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_MALFORMED);

    /* signature length in a longer form: 59 0060 */
    memcpy(v, d, n - 98);
    v[n - 98] = 0x59;
    v[n - 97] = 0x00;
    v[n - 96] = 0x60;
    memcpy(v + n - 95, d + n - 96, 96);
    assert_int_equal(verify(v, n + 1, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_MALFORMED);

    /* array length in a longer form: 98 04 */
    v[0] = 0x98;
    v[1] = 0x04;
    memcpy(v + 2, d + 1, n - 1);
    assert_int_equal(verify(v, n + 1, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_MALFORMED);

    /* a parameter in the unprotected header: {4: h'01'} (kid) */
    memcpy(v, d, 6);
    static const unsigned char kid[] = {0xa1, 0x04, 0x41, 0x01};
    memcpy(v + 6, kid, sizeof kid);
    memcpy(v + 10, d + 7, n - 7);
    assert_int_equal(verify(v, n + 3, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_BAD_HEADER);

    /* signature 95 and 97 bytes long */
    memcpy(v, d, n - 97);
    v[n - 97] = 0x5f;
    memcpy(v + n - 96, d + n - 96, 95);
    assert_int_equal(verify(v, n - 1, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_BAD_SIGNATURE);
    v[n - 97] = 0x61;
    memcpy(v + n - 96, d + n - 96, 96);
    v[n] = 0x00;
    assert_int_equal(verify(v, n + 1, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_BAD_SIGNATURE);

    /* r and s swapped; r or s zeroed */
    memcpy(v, d, n);
    memcpy(v + n - 96, d + n - 48, 48);
    memcpy(v + n - 48, d + n - 96, 48);
    assert_int_equal(verify(v, n, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_BAD_SIGNATURE);
    memcpy(v, d, n);
    memset(v + n - 96, 0, 48);
    assert_int_equal(verify(v, n, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_BAD_SIGNATURE);
    memcpy(v, d, n);
    memset(v + n - 48, 0, 48);
    assert_int_equal(verify(v, n, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_BAD_SIGNATURE);
    free(v);
}

static void test_expected_pcrs(void **state) {
    fixture *fx = *state;
    km_attest_pcr want[4];
    for (uint32_t i = 0; i < 4; i++)
        want[i] = pcr_from_hex(i, pcr_hex[i]);
    km_attest_policy pol = policy_at(T_VALID);
    pol.pcrs = want;
    pol.pcr_count = 4;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_OK);
    /* each PCR, one bit off */
    for (size_t i = 0; i < 4; i++) {
        want[i].value[47] ^= 0x01;
        assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol),
                         KM_ATTEST_PCR_MISMATCH);
        want[i].value[47] ^= 0x01;
    }
    /* right value under another index; right prefix with another length */
    km_attest_pcr other = want[0];
    other.index = 1;
    pol.pcrs = &other;
    pol.pcr_count = 1;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol),
                     KM_ATTEST_PCR_MISMATCH);
    other = want[0];
    other.len = 32;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol),
                     KM_ATTEST_PCR_MISMATCH);
    /* a PCR the document does not have (16..31) */
    other = want[3];
    other.index = 20;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol),
                     KM_ATTEST_PCR_MISMATCH);
    /* invalid expectations are the caller's error */
    other.index = 32;
    assert_int_equal(km_attest_verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol, NULL, NULL),
                     KM_ERR_ARG);
    other.index = 0;
    other.len = 47;
    assert_int_equal(km_attest_verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol, NULL, NULL),
                     KM_ERR_ARG);
    pol.pcrs = NULL;
    assert_int_equal(km_attest_verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol, NULL, NULL),
                     KM_ERR_ARG);
}

static void test_expected_nonce_and_key(void **state) {
    fixture *fx = *state;
    km_attest_policy pol = policy_at(T_VALID);
    unsigned char nonce[32] = {1};
    /* the document carries no nonce: any expected nonce, even empty, fails */
    pol.nonce = nonce;
    pol.nonce_len = sizeof nonce;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol),
                     KM_ATTEST_NONCE_MISMATCH);
    pol.nonce_len = 0;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol),
                     KM_ATTEST_NONCE_MISMATCH);
    pol.nonce_len = KM_ATTEST_NONCE_MAX + 1;
    assert_int_equal(km_attest_verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol, NULL, NULL),
                     KM_ERR_ARG);
    pol = policy_at(T_VALID);

    /* the expected public key: its own is accepted, one byte off is not */
    km_attest_doc *doc = NULL;
    assert_int_equal(km_attest_verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol, &doc, NULL),
                     KM_OK);
    unsigned char key[KM_ATTEST_PUBLIC_KEY_MAX];
    size_t key_len = doc->public_key_len;
    memcpy(key, doc->public_key, key_len);
    km_attest_doc_free(doc);
    pol.public_key = key;
    pol.public_key_len = key_len;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_OK);
    key[key_len / 2] ^= 0x20;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol),
                     KM_ATTEST_PUBLIC_KEY_MISMATCH);
    key[key_len / 2] ^= 0x20;
    pol.public_key_len = key_len - 1;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol),
                     KM_ATTEST_PUBLIC_KEY_MISMATCH);
}

static void test_freshness(void **state) {
    fixture *fx = *state;
    /* the document is 89.516 s old at T_VALID */
    km_attest_policy pol = policy_at(T_VALID);
    pol.max_age_ms = 89516;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_OK);
    pol.max_age_ms = 89515;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_STALE);
    pol.max_age_ms = 60000;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_STALE);
    /* a zero policy (forgot to set the bound) accepts nothing old */
    pol.max_age_ms = 0;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_STALE);
    /* 0.484 s before the timestamp, the document is from the future */
    pol = policy_at(TIMESTAMP / 1000);
    pol.max_age_ms = 0;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_FUTURE);
    pol.max_future_ms = 483;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_FUTURE);
    pol.max_future_ms = 484;
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_OK);
}

static void test_bad_arguments(void **state) {
    fixture *fx = *state;
    km_attest_policy pol = policy_at(T_VALID);
    km_attest_doc *out = (km_attest_doc *)&out;
    km_attest_reason why = KM_ATTEST_REASON__COUNT;
    assert_int_equal(km_attest_verify(NULL, 10, fx->root_pem, fx->root_pem_len, &pol, &out, &why),
                     KM_ERR_ARG);
    assert_null(out);
    assert_int_equal(why, KM_ATTEST_OK);
    assert_int_equal(km_attest_verify(fx->doc, 0, fx->root_pem, fx->root_pem_len, &pol, &out, &why),
                     KM_ERR_ARG);
    assert_int_equal(km_attest_verify(fx->doc, KM_ATTEST_MAX_DOC_LEN + 1, fx->root_pem, fx->root_pem_len,
                                      &pol, &out, &why),
                     KM_ERR_ARG);
    assert_int_equal(km_attest_verify(fx->doc, fx->doc_len, NULL, 0, &pol, &out, &why), KM_ERR_ARG);
    assert_int_equal(km_attest_verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, NULL, &out, &why),
                     KM_ERR_ARG);
    pol.now = KM_ATTEST_MAX_TIME + 1;
    assert_int_equal(km_attest_verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol, &out, &why),
                     KM_ERR_ARG);
    assert_null(out);
    for (int r = 0; r <= KM_ATTEST_REASON__COUNT; r++)
        assert_non_null(km_attest_reason_str((km_attest_reason)r));
    assert_string_equal(km_attest_reason_str(KM_ATTEST_REASON__COUNT), "unknown reason");
    km_attest_doc_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_real_document),
        cmocka_unit_test(test_root_in_der),
        cmocka_unit_test(test_rejects_outside_validity),
        cmocka_unit_test(test_rejects_other_root),
        cmocka_unit_test(test_cose_tag),
        cmocka_unit_test(test_rejects_unsigned_reencodings),
        cmocka_unit_test(test_expected_pcrs),
        cmocka_unit_test(test_expected_nonce_and_key),
        cmocka_unit_test(test_freshness),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
