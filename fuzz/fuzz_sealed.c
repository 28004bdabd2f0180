/* fuzz/fuzz_sealed.c — session data opening (src/core/session_crypto.c) and
 * sealed secrets at rest (src/core/seal.c).
 *
 * Input: u8 mode | u8 ad_len | ad (for sealed secrets: the label) | blob.
 * Keys are the fixed test keys (session secret FZ_SESSION_SECRET, sealer key
 * FZ_SEAL_KEY), so valid seeds open. mode bit 0 picks the sealer, bit 1 the
 * locked-memory variant of session opening. */
#include <stdlib.h>
#include <string.h>

#include "fz_util.h"
#include "keymeld/seal.h"
#include "keymeld/secret.h"
#include "keymeld/session_crypto.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static km_session *session;
static km_sealer *sealer;

static void init(void) {
    if (km_session_derive(fz_ctx(), FZ_SESSION_SECRET, &session) != KM_OK) abort();
    if (km_sealer_local_new(fz_ctx(), FZ_SEAL_KEY, &sealer) != KM_OK) abort();
}

static void open_sealed(const uint8_t *label, size_t label_len, const uint8_t *blob, size_t blob_len) {
    char *l = fz_strndup(label, label_len);
    km_secret *s = NULL;
    km_err e = km_unseal(sealer, l, blob, blob_len, &s);
    if ((e == KM_OK) != (s != NULL)) abort();
    if (s) {
        km_buf again;
        km_buf_init(&again);
        if (km_seal(sealer, l, km_secret_cdata(s), km_secret_len(s), &again) != KM_OK) abort();
        km_secret *s2 = NULL;
        if (km_unseal(sealer, l, again.data, again.len, &s2) != KM_OK ||
            km_secret_len(s2) != km_secret_len(s) ||
            memcmp(km_secret_cdata(s2), km_secret_cdata(s), km_secret_len(s)))
            abort();
        km_secret_free(s2);
        km_buf_free(&again);
    }
    km_secret_free(s);
    free(l);
}

static void open_session(int secret, const uint8_t *ad, size_t ad_len, const uint8_t *blob, size_t blob_len) {
    if (secret) {
        km_secret *s = NULL;
        km_err e = km_session_open_secret(session, ad, ad_len, blob, blob_len, &s);
        if ((e == KM_OK) != (s != NULL)) abort();
        km_secret_free(s);
        return;
    }
    static unsigned char pt[70000];
    size_t n = 99;
    km_err e = km_session_open(session, ad, ad_len, blob, blob_len, pt, sizeof pt, &n);
    if (e != KM_OK && n != 0) abort();
    if (e == KM_OK && n != blob_len - KM_SESSION_OVERHEAD) abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (!session) init();
    fz_reader r = {data, size};
    uint8_t mode = fz_u8(&r);
    size_t ad_len, blob_len;
    const uint8_t *ad = fz_take(&r, fz_u8(&r), &ad_len);
    const uint8_t *blob = fz_rest(&r, &blob_len);
    if (mode & 1)
        open_sealed(ad, ad_len, blob, blob_len);
    else
        open_session(mode & 2, ad, ad_len, blob, blob_len);
    return 0;
}
