/* session_crypto.c — canonical AD, session key derivation, session data blobs
 * (see keymeld/session_crypto.h for the exact formats). */
#include <stdlib.h>
#include <string.h>

#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/session_crypto.h"

/* ---- canonical associated data ------------------------------------------ */

#define AD_FORMAT_VERSION 0x01
#define AD_KIND_PURPOSE   'P'
#define AD_KIND_ID        'I'
#define AD_KIND_BYTES     'B'
#define AD_KIND_U64       'U'

/* A failed AD is emptied so that a caller who ignores the error passes an
 * empty AD, which every sealing function refuses (KM_ERR_ARG), instead of a
 * truncated one that would silently bind less than intended. */
static km_err ad_fail(km_ad *ad, km_err err) {
    memset(ad->bytes, 0, sizeof ad->bytes);
    ad->len = 0;
    ad->failed = 1;
    return err;
}

static km_err ad_field(km_ad *ad, unsigned char kind, const void *p, size_t len) {
    if (ad->failed || ad->len == 0) return ad_fail(ad, KM_ERR_ARG);
    if (len && !p) return ad_fail(ad, KM_ERR_ARG);
    if (len > KM_AD_MAX || 5 + len > KM_AD_MAX - ad->len) return ad_fail(ad, KM_ERR_RANGE);
    unsigned char *w = ad->bytes + ad->len;
    w[0] = kind;
    w[1] = (unsigned char)(len >> 24);
    w[2] = (unsigned char)(len >> 16);
    w[3] = (unsigned char)(len >> 8);
    w[4] = (unsigned char)len;
    if (len) memcpy(w + 5, p, len);
    ad->len += 5 + len;
    return KM_OK;
}

km_err km_ad_init(km_ad *ad, const char *purpose) {
    memset(ad, 0, sizeof *ad);
    size_t n = strnlen(purpose, KM_AD_PURPOSE_MAX + 1);
    if (n == 0 || n > KM_AD_PURPOSE_MAX) return ad_fail(ad, KM_ERR_ARG);
    /* Printable, no spaces: a purpose is an identifier, and refusing control
     * bytes keeps it safe to log and to quote in documentation. */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)purpose[i] < 0x21 || (unsigned char)purpose[i] > 0x7e)
            return ad_fail(ad, KM_ERR_ARG);
    ad->bytes[0] = AD_FORMAT_VERSION;
    ad->len = 1;
    return ad_field(ad, AD_KIND_PURPOSE, purpose, n);
}

km_err km_ad_add_id(km_ad *ad, const km_uuid *id) {
    return ad_field(ad, AD_KIND_ID, id->b, sizeof id->b);
}

km_err km_ad_add_bytes(km_ad *ad, const void *p, size_t len) {
    return ad_field(ad, AD_KIND_BYTES, p, len);
}

km_err km_ad_add_u64(km_ad *ad, uint64_t v) {
    unsigned char be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (unsigned char)(v >> (56 - 8 * i));
    return ad_field(ad, AD_KIND_U64, be, sizeof be);
}

km_err km_ad_build(km_ad *ad, const char *purpose, const km_uuid *id, const void *item, size_t item_len) {
    km_err err = km_ad_init(ad, purpose);
    if (!err) err = km_ad_add_id(ad, id);
    if (!err) err = km_ad_add_bytes(ad, item, item_len);
    return err;
}

km_err km_ad_build_index(km_ad *ad, const char *purpose, const km_uuid *id, uint64_t index) {
    km_err err = km_ad_init(ad, purpose);
    if (!err) err = km_ad_add_id(ad, id);
    if (!err) err = km_ad_add_u64(ad, index);
    return err;
}

/* ---- session keys -------------------------------------------------------- */

static const char LABEL_DATA[] = "keymeld/session/data/v1";
static const char LABEL_AUTH[] = "keymeld/session/auth/v1";

/* Layout of the locked secret: data key, then the secp256k1 keypair (which
 * embeds the auth secret key). */
#define SESSION_KEY_OFF     0
#define SESSION_KEYPAIR_OFF 32
#define SESSION_SECRET_LEN  (32 + sizeof(secp256k1_keypair))

struct km_session {
    km_ctx *ctx;
    km_secret *keys;
    unsigned char xonly[32];
};

km_err km_session_derive_raw(const km_ctx *ctx, const unsigned char secret32[32],
                             unsigned char data_key32[32], unsigned char auth_seckey32[32]) {
    unsigned char info[sizeof LABEL_AUTH]; /* label without NUL, plus the counter byte */
    km_err err = km_hkdf_sha256(data_key32, 32, secret32, 32, NULL, 0, (const unsigned char *)LABEL_DATA,
                                sizeof LABEL_DATA - 1);
    if (err) goto fail;
    memcpy(info, LABEL_AUTH, sizeof LABEL_AUTH - 1);
    err = KM_ERR_INVALID_KEY;
    for (unsigned i = 0; i < 256; i++) {
        info[sizeof LABEL_AUTH - 1] = (unsigned char)i;
        km_err e = km_hkdf_sha256(auth_seckey32, 32, secret32, 32, NULL, 0, info, sizeof info);
        if (e) {
            err = e;
            goto fail;
        }
        if (secp256k1_ec_seckey_verify(km_ctx_secp(ctx), auth_seckey32)) {
            err = KM_OK;
            break;
        }
    }
    if (err) goto fail;
    return KM_OK;
fail:
    km_wipe(data_key32, 32);
    km_wipe(auth_seckey32, 32);
    return err;
}

static secp256k1_keypair *session_keypair(km_secret *keys) {
    return (secp256k1_keypair *)(void *)(km_secret_data(keys) + SESSION_KEYPAIR_OFF);
}

km_err km_session_derive(km_ctx *ctx, const unsigned char secret32[32], km_session **out) {
    *out = NULL;
    unsigned char seckey[32];
    km_session *s = calloc(1, sizeof *s);
    if (!s) return KM_ERR_NOMEM;
    s->ctx = ctx;
    km_err err = km_secret_new(ctx, SESSION_SECRET_LEN, &s->keys);
    if (err) goto fail;
    err = km_session_derive_raw(ctx, secret32, km_secret_data(s->keys) + SESSION_KEY_OFF, seckey);
    if (err) goto fail;
    secp256k1_xonly_pubkey xpk;
    if (!secp256k1_keypair_create(km_ctx_secp(ctx), session_keypair(s->keys), seckey) ||
        !secp256k1_keypair_xonly_pub(km_ctx_secp(ctx), &xpk, NULL, session_keypair(s->keys)) ||
        !secp256k1_xonly_pubkey_serialize(km_ctx_secp(ctx), s->xonly, &xpk)) {
        err = KM_ERR_CRYPTO;
        goto fail;
    }
    km_wipe(seckey, sizeof seckey);
    *out = s;
    return KM_OK;
fail:
    km_wipe(seckey, sizeof seckey);
    km_session_free(s);
    return err;
}

void km_session_free(km_session *s) {
    if (!s) return;
    km_secret_free(s->keys);
    km_wipe(s, sizeof *s);
    free(s);
}

void km_session_auth_pubkey(const km_session *s, unsigned char xonly32[32]) {
    memcpy(xonly32, s->xonly, 32);
}

const secp256k1_keypair *km_session_auth_keypair(const km_session *s) {
    return session_keypair(s->keys);
}

/* ---- session data blobs -------------------------------------------------- */

#define HDR_LEN (1 + KM_AEAD_NONCE_LEN)

static km_err blob_seal(const unsigned char key[32], const unsigned char *ad, size_t ad_len,
                        const unsigned char *pt, size_t pt_len, km_buf *out) {
    km_buf_free(out);
    if (ad_len == 0 || !ad || (pt_len && !pt)) return KM_ERR_ARG;
    if (pt_len > KM_SESSION_MAX_PLAINTEXT) return KM_ERR_RANGE;
    unsigned char hdr[HDR_LEN], tag[KM_AEAD_TAG_LEN];
    hdr[0] = KM_SESSION_VERSION;
    km_err err = km_random_bytes(hdr + 1, KM_AEAD_NONCE_LEN);
    if (err) return err;
    /* Copy the plaintext into the output and encrypt it in place: the buffer
     * is wiped on free, so the transient plaintext never outlives the call. */
    err = km_buf_put(out, hdr, sizeof hdr);
    if (!err) err = km_buf_put(out, pt, pt_len);
    if (!err)
        err = km_aead_seal(out->data + HDR_LEN, tag, key, hdr + 1, ad, ad_len, out->data + HDR_LEN, pt_len);
    if (!err) err = km_buf_put(out, tag, sizeof tag);
    if (err) km_buf_free(out);
    return err;
}

/* Validate the framing and report the plaintext length, without decrypting. */
static km_err blob_check(const unsigned char *ad, size_t ad_len, const unsigned char *blob, size_t blob_len,
                         size_t *pt_len) {
    *pt_len = 0;
    if (ad_len == 0 || !ad || (blob_len && !blob)) return KM_ERR_ARG;
    if (blob_len == 0) return KM_ERR_PARSE;
    /* Version first: a future version may have another length. */
    if (blob[0] != KM_SESSION_VERSION) return KM_ERR_UNSUPPORTED;
    if (blob_len < KM_SESSION_OVERHEAD) return KM_ERR_PARSE;
    if (blob_len - KM_SESSION_OVERHEAD > KM_SESSION_MAX_PLAINTEXT) return KM_ERR_RANGE;
    *pt_len = blob_len - KM_SESSION_OVERHEAD;
    return KM_OK;
}

static km_err blob_open(const unsigned char key[32], const unsigned char *ad, size_t ad_len,
                        const unsigned char *blob, size_t n, unsigned char *pt) {
    return km_aead_open(pt, key, blob + 1, ad, ad_len, blob + HDR_LEN, n, blob + HDR_LEN + n);
}

km_err km_session_seal(const km_session *s, const unsigned char *ad, size_t ad_len, const unsigned char *pt,
                       size_t pt_len, km_buf *out) {
    return blob_seal(km_secret_cdata(s->keys) + SESSION_KEY_OFF, ad, ad_len, pt, pt_len, out);
}

km_err km_session_open(const km_session *s, const unsigned char *ad, size_t ad_len, const unsigned char *blob,
                       size_t blob_len, unsigned char *pt, size_t pt_cap, size_t *pt_len) {
    size_t n;
    km_err err = KM_ERR_ARG;
    *pt_len = 0;
    if (pt_cap && !pt) goto out;
    err = blob_check(ad, ad_len, blob, blob_len, &n);
    if (err) goto out;
    if (pt_cap < n) {
        err = KM_ERR_BUFFER_SMALL;
        goto out;
    }
    err = blob_open(km_secret_cdata(s->keys) + SESSION_KEY_OFF, ad, ad_len, blob, n, pt);
    if (!err) *pt_len = n;
out:
    if (err && pt) km_wipe(pt, pt_cap);
    return err;
}

km_err km_session_open_secret(const km_session *s, const unsigned char *ad, size_t ad_len,
                              const unsigned char *blob, size_t blob_len, km_secret **out) {
    size_t n;
    *out = NULL;
    km_err err = blob_check(ad, ad_len, blob, blob_len, &n);
    if (err) return err;
    if (n == 0 || n > KM_SECRET_MAX) return KM_ERR_RANGE;
    err = km_secret_new(s->ctx, n, out);
    if (err) return err;
    err = blob_open(km_secret_cdata(s->keys) + SESSION_KEY_OFF, ad, ad_len, blob, n, km_secret_data(*out));
    if (err) {
        km_secret_free(*out);
        *out = NULL;
    }
    return err;
}
