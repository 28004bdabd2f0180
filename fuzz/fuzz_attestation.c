/* fuzz/fuzz_attestation.c — the attestation document parser and verifier
 * (src/core/attestation_verify.c, cose.c, attestation_x509.c).
 *
 * Input: a COSE_Sign1 document. It is verified against the real AWS Nitro
 * root (tests/vectors/nitro, embedded below by path at build time through
 * KM_FUZZ_NITRO_ROOT) at a time when the real document's chain is valid, so
 * the seed corpus (the real document and mutants) reaches the certificate
 * chain and signature checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymeld/attestation.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* A time at which the real document's chain is valid (tests/vectors/nitro/README.md). */
#define T_VALID 1657117192ull

static unsigned char root[8192];
static size_t root_len;

static void load_root(void) {
    FILE *f = fopen(KM_FUZZ_NITRO_ROOT, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_attestation: cannot read %s\n", KM_FUZZ_NITRO_ROOT);
        abort();
    }
    root_len = fread(root, 1, sizeof root, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (!root_len) load_root();
    km_attest_policy pol;
    memset(&pol, 0, sizeof pol);
    pol.now = T_VALID;
    pol.max_age_ms = KM_ATTEST_NO_MAX_AGE;
    km_attest_doc *doc = NULL;
    km_attest_reason why = KM_ATTEST_OK;
    km_err e = km_attest_verify(data, size, root, root_len, &pol, &doc, &why);
    if ((e == KM_OK) != (doc != NULL)) abort();
    if (doc) {
        if (strlen(doc->module_id) > KM_ATTEST_MODULE_ID_MAX) abort();
        /* Same document with a policy that demands its own values back. */
        pol.max_age_ms = 0;
        pol.nonce = doc->has_nonce ? doc->nonce : NULL;
        pol.nonce_len = doc->nonce_len;
        km_attest_doc *again = NULL;
        (void)km_attest_verify(data, size, root, root_len, &pol, &again, &why);
        km_attest_doc_free(again);
    }
    (void)km_attest_reason_str(why);
    km_attest_doc_free(doc);
    return 0;
}
