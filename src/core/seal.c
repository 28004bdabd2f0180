/* seal.c — the sealing interface and its local-key backend (see keymeld/seal.h). */
#include <stdlib.h>
#include <string.h>

#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/seal.h"

static const char SEAL_KEY_LABEL[] = "keymeld/seal/key/v1";
static const char SEAL_AD_PREFIX[] = "keymeld/seal/v1";
#define AD_PREFIX_LEN (sizeof SEAL_AD_PREFIX - 1)
#define HDR_LEN       (1 + KM_AEAD_NONCE_LEN)

/* ---- interface ------------------------------------------------------------ */

/* Labels are identifiers: printable, no spaces, bounded, so the AD built from
 * them is short and a label is safe to log. Returns the length or 0. */
static size_t label_len(const char *label) {
    size_t n = strnlen(label, KM_SEAL_LABEL_MAX + 1);
    if (n == 0 || n > KM_SEAL_LABEL_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)label[i] < 0x21 || (unsigned char)label[i] > 0x7e) return 0;
    return n;
}

km_err km_seal(const km_sealer *s, const char *label, const unsigned char *pt, size_t pt_len, km_buf *out) {
    km_buf_free(out);
    if (!s->ops || !s->ops->seal || !label_len(label) || !pt) return KM_ERR_ARG;
    if (pt_len == 0 || pt_len > KM_SEAL_MAX_PLAINTEXT) return KM_ERR_RANGE;
    km_err err = s->ops->seal(s->state, label, pt, pt_len, out);
    if (err) km_buf_free(out);
    return err;
}

km_err km_unseal(const km_sealer *s, const char *label, const unsigned char *blob, size_t blob_len,
                 km_secret **out) {
    *out = NULL;
    if (!s->ops || !s->ops->unseal || !label_len(label) || (blob_len && !blob)) return KM_ERR_ARG;
    km_err err = s->ops->unseal(s->state, label, blob, blob_len, out);
    if (err && *out) {
        km_secret_free(*out);
        *out = NULL;
    }
    return err;
}

void km_sealer_free(km_sealer *s) {
    if (!s) return;
    if (s->ops && s->ops->destroy) s->ops->destroy(s->state);
    km_wipe(s, sizeof *s);
    free(s);
}

/* ---- local-key backend ------------------------------------------------------ */

typedef struct local_state {
    km_ctx *ctx;
    km_secret *key; /* HKDF-derived AES key, not the operator key itself */
} local_state;

/* ad = prefix || label; at most 15 + 64 bytes. */
static size_t local_ad(unsigned char ad[AD_PREFIX_LEN + KM_SEAL_LABEL_MAX], const char *label) {
    size_t n = label_len(label);
    memcpy(ad, SEAL_AD_PREFIX, AD_PREFIX_LEN);
    memcpy(ad + AD_PREFIX_LEN, label, n);
    return AD_PREFIX_LEN + n;
}

static km_err local_seal(void *state, const char *label, const unsigned char *pt, size_t pt_len,
                         km_buf *out) {
    local_state *ls = state;
    unsigned char ad[AD_PREFIX_LEN + KM_SEAL_LABEL_MAX], hdr[HDR_LEN], tag[KM_AEAD_TAG_LEN];
    size_t ad_len = local_ad(ad, label);
    hdr[0] = KM_SEAL_FORMAT_LOCAL;
    km_err err = km_random_bytes(hdr + 1, KM_AEAD_NONCE_LEN);
    if (!err) err = km_buf_put(out, hdr, sizeof hdr);
    if (!err) err = km_buf_put(out, pt, pt_len);
    if (!err)
        err = km_aead_seal(out->data + HDR_LEN, tag, km_secret_cdata(ls->key), hdr + 1, ad, ad_len,
                           out->data + HDR_LEN, pt_len);
    if (!err) err = km_buf_put(out, tag, sizeof tag);
    return err;
}

static km_err local_unseal(void *state, const char *label, const unsigned char *blob, size_t blob_len,
                           km_secret **out) {
    local_state *ls = state;
    unsigned char ad[AD_PREFIX_LEN + KM_SEAL_LABEL_MAX];
    if (blob_len == 0) return KM_ERR_PARSE;
    if (blob[0] != KM_SEAL_FORMAT_LOCAL) return KM_ERR_UNSUPPORTED;
    /* Empty secrets are never sealed, so a blob without plaintext is malformed. */
    if (blob_len <= KM_SEAL_LOCAL_OVERHEAD) return KM_ERR_PARSE;
    size_t n = blob_len - KM_SEAL_LOCAL_OVERHEAD;
    if (n > KM_SEAL_MAX_PLAINTEXT) return KM_ERR_RANGE;
    size_t ad_len = local_ad(ad, label);
    km_err err = km_secret_new(ls->ctx, n, out);
    if (err) return err;
    err = km_aead_open(km_secret_data(*out), km_secret_cdata(ls->key), blob + 1, ad, ad_len, blob + HDR_LEN,
                       n, blob + HDR_LEN + n);
    if (err) {
        km_secret_free(*out);
        *out = NULL;
    }
    return err;
}

static void local_destroy(void *state) {
    local_state *ls = state;
    if (!ls) return;
    km_secret_free(ls->key);
    km_wipe(ls, sizeof *ls);
    free(ls);
}

static const km_sealer_ops LOCAL_OPS = {
    .name = "local-key",
    .seal = local_seal,
    .unseal = local_unseal,
    .destroy = local_destroy,
};

km_err km_sealer_local_new(km_ctx *ctx, const unsigned char key32[32], km_sealer **out) {
    *out = NULL;
    km_sealer *s = calloc(1, sizeof *s);
    local_state *ls = calloc(1, sizeof *ls);
    km_err err = KM_ERR_NOMEM;
    if (!s || !ls) goto fail;
    ls->ctx = ctx;
    err = km_secret_new(ctx, KM_AEAD_KEY_LEN, &ls->key);
    if (err) goto fail;
    err = km_hkdf_sha256(km_secret_data(ls->key), KM_AEAD_KEY_LEN, key32, KM_SEAL_KEY_LEN, NULL, 0,
                         (const unsigned char *)SEAL_KEY_LABEL, sizeof SEAL_KEY_LABEL - 1);
    if (err) goto fail;
    s->ops = &LOCAL_OPS;
    s->state = ls;
    *out = s;
    return KM_OK;
fail:
    local_destroy(ls);
    free(s);
    return err;
}
