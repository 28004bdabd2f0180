/* nitro_testutil.h — shared by the attestation tests: the real Nitro
 * document and AWS root as a cmocka fixture, and a verify() wrapper that
 * checks the outcome's invariants (out NULL on failure, error class matching
 * the reason). Static functions: include in one test file each. */
#ifndef KM_TESTS_NITRO_TESTUTIL_H
#define KM_TESTS_NITRO_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
