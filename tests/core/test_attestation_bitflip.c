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
#include "nitro_testutil.h"

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
