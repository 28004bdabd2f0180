/* test_attestation_bitflip.c — the real AWS Nitro attestation document with
 * any single bit changed, truncated or extended must be refused. A separate
 * executable from test_attestation.c because it runs one ECDSA P-384
 * verification per byte (5,232) and so dominates the suite's time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keymeld/attestation.h"

#define T_VALID 1657117192ull /* README: a time at which the chain is valid */

typedef struct fixture {
    unsigned char *doc;
    size_t doc_len;
    unsigned char *root_pem;
    size_t root_pem_len;
} fixture;

static unsigned char *read_file(const char *name, size_t *len) {
    char path[512];
    snprintf(path, sizeof path, "%s/nitro/%s", KM_VECTORS_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = malloc(1 << 16);
    *len = buf ? fread(buf, 1, 1 << 16, f) : 0;
    fclose(f);
    return buf;
}

static int setup(void **state) {
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    fx->doc = read_file("attestation_doc.cose", &fx->doc_len);
    fx->root_pem = read_file("aws_nitro_root_g1.pem", &fx->root_pem_len);
    if (!fx->doc || !fx->root_pem || fx->doc_len != 5232) {
        printf("nitro vector files missing or wrong size\n");
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    free(fx->doc);
    free(fx->root_pem);
    free(fx);
    return 0;
}

static km_attest_policy policy_at(uint64_t now) {
    km_attest_policy p;
    memset(&p, 0, sizeof p);
    p.now = now;
    p.max_age_ms = KM_ATTEST_NO_MAX_AGE;
    return p;
}

/* Verify and check the outcome: on failure out must be NULL and the error
 * code must match the reason's class. */
static km_attest_reason verify(const unsigned char *doc, size_t len, const unsigned char *root,
                               size_t root_len, const km_attest_policy *pol) {
    km_attest_doc *out = (km_attest_doc *)&out; /* poison: must be overwritten */
    km_attest_reason why = KM_ATTEST_REASON__COUNT;
    km_err err = km_attest_verify(doc, len, root, root_len, pol, &out, &why);
    if (err == KM_OK) {
        assert_int_equal(why, KM_ATTEST_OK);
        assert_non_null(out);
        km_attest_doc_free(out);
    } else {
        assert_null(out);
        assert_int_not_equal(why, KM_ATTEST_OK);
        if (why == KM_ATTEST_MALFORMED || why == KM_ATTEST_BAD_HEADER || why == KM_ATTEST_BAD_PAYLOAD)
            assert_int_equal(err, KM_ERR_PARSE);
        else if (why == KM_ATTEST_BAD_ROOT)
            assert_int_equal(err, KM_ERR_ARG);
        else
            assert_int_equal(err, KM_ERR_ATTESTATION);
    }
    return why;
}

/* Every byte of the document matters: the outer framing through strict
 * parsing, the protected header and payload through the signature, the
 * signature itself through ECDSA. Flip one bit (a different bit per
 * position) at every position; every variant must be refused. */
static void test_rejects_every_bit_flip(void **state) {
    fixture *fx = *state;
    km_attest_policy pol = policy_at(T_VALID);
    unsigned char *doc = malloc(fx->doc_len);
    assert_non_null(doc);
    memcpy(doc, fx->doc, fx->doc_len);
    size_t count[KM_ATTEST_REASON__COUNT] = {0};
    /* the unmodified document is accepted: every rejection below is due to the flip */
    assert_int_equal(verify(doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_OK);
    for (size_t i = 0; i < fx->doc_len; i++) {
        unsigned char bit = (unsigned char)(1u << (i % 8));
        doc[i] ^= bit;
        km_attest_reason why = verify(doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol);
        if (why == KM_ATTEST_OK) printf("accepted with byte %zu ^ 0x%02x\n", i, bit);
        assert_int_not_equal(why, KM_ATTEST_OK);
        count[why]++;
        doc[i] ^= bit;
    }
    printf("bit flips: %zu positions, all rejected:\n", fx->doc_len);
    for (int r = 0; r < KM_ATTEST_REASON__COUNT; r++)
        if (count[r]) printf("  %-55s %zu\n", km_attest_reason_str((km_attest_reason)r), count[r]);
    /* the signature and the signed payload dominate */
    assert_true(count[KM_ATTEST_BAD_SIGNATURE] > 4000);
    free(doc);
}

static void test_rejects_truncation_and_trailing(void **state) {
    fixture *fx = *state;
    km_attest_policy pol = policy_at(T_VALID);
    assert_int_equal(verify(fx->doc, fx->doc_len, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_OK);
    for (size_t n = 1; n < fx->doc_len; n++)
        assert_int_not_equal(verify(fx->doc, n, fx->root_pem, fx->root_pem_len, &pol), KM_ATTEST_OK);
    unsigned char *doc = malloc(fx->doc_len + 4);
    assert_non_null(doc);
    memcpy(doc, fx->doc, fx->doc_len);
    static const unsigned char extra[] = {0x00, 0xa0, 0xf6, 0x40};
    for (size_t i = 0; i < sizeof extra; i++) {
        doc[fx->doc_len] = extra[i];
        assert_int_equal(verify(doc, fx->doc_len + 1, fx->root_pem, fx->root_pem_len, &pol),
                         KM_ATTEST_MALFORMED);
    }
    free(doc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejects_every_bit_flip),
        cmocka_unit_test(test_rejects_truncation_and_trailing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
