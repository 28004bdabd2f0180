/* fuzz/fuzz_ecies.c — opening ECIES blobs (src/core/ecies.c), as an enclave
 * does with every init, registration, import and sign blob.
 *
 * Input: u8 mode | u8 ad_len | ad | blob. The recipient is the fixed test
 * enclave key, so seeds sealed to it (fuzz/seeds/gen_seeds.c) open, and the
 * fuzzer mutates from there. mode bit 0: open into locked memory
 * (km_ecies_open_secret) instead of a caller buffer; bit 1: a buffer one
 * byte short. */
#include <stdlib.h>
#include <string.h>

#include "fz_util.h"
#include "keymeld/ecies.h"
#include "keymeld/secret.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    fz_reader r = {data, size};
    uint8_t mode = fz_u8(&r);
    size_t ad_len, blob_len;
    const uint8_t *ad = fz_take(&r, fz_u8(&r), &ad_len);
    const uint8_t *blob = fz_rest(&r, &blob_len);
    km_ctx *ctx = fz_ctx();
    if (mode & 1) {
        km_secret *s = NULL;
        km_err e = km_ecies_open_secret(ctx, FZ_ENCLAVE_SK, ad, ad_len, blob, blob_len, &s);
        if ((e == KM_OK) != (s != NULL)) abort();
        if (s && km_secret_len(s) != blob_len - KM_ECIES_OVERHEAD) abort();
        km_secret_free(s);
        return 0;
    }
    size_t cap = blob_len > KM_ECIES_OVERHEAD ? blob_len - KM_ECIES_OVERHEAD : 0;
    if (mode & 2 && cap) cap--;
    unsigned char *pt = malloc(cap ? cap : 1);
    if (!pt) abort();
    size_t pt_len = 99;
    km_err e = km_ecies_open(ctx, FZ_ENCLAVE_SK, ad, ad_len, blob, blob_len, pt, cap, &pt_len);
    if (e == KM_OK) {
        if (pt_len != blob_len - KM_ECIES_OVERHEAD) abort();
        /* Sealing the plaintext again must open again (fresh ephemeral key). */
        unsigned char pub[33];
        fz_pub33(FZ_ENCLAVE_SK, pub);
        km_buf b;
        km_buf_init(&b);
        if (km_ecies_seal(ctx, pub, ad, ad_len, pt, pt_len, &b) != KM_OK || b.len != blob_len) abort();
        size_t n2;
        if (km_ecies_open(ctx, FZ_ENCLAVE_SK, ad, ad_len, b.data, b.len, pt, cap, &n2) != KM_OK ||
            n2 != pt_len)
            abort();
        km_buf_free(&b);
    } else {
        if (pt_len != 0) abort();
        for (size_t i = 0; i < cap; i++)
            if (pt[i]) abort(); /* nothing unauthenticated is released */
    }
    free(pt);
    return 0;
}
