/* ecies.c — ECIES to a secp256k1 key: ECDH (libsecp256k1), HKDF-SHA256 and
 * AES-256-GCM (OpenSSL). The construction and layout are specified in
 * keymeld/ecies.h; this file must stay byte-for-byte faithful to it. */
#include <string.h>

#include <secp256k1_ecdh.h>

#include "keymeld/aead.h"
#include "keymeld/ecies.h"
#include "keymeld/hash.h"

static const char ECIES_LABEL[] = "keymeld/ecies/v1"; /* 16 bytes used, no NUL */
#define LABEL_LEN (sizeof ECIES_LABEL - 1)
#define OFF_E     1
#define OFF_CT    (OFF_E + KM_ECIES_PUBKEY_LEN)
#define OKM_LEN   (KM_AEAD_KEY_LEN + KM_AEAD_NONCE_LEN)

/* How many random candidates to try for the ephemeral key before blaming the
 * RNG: a uniform 32-byte string is invalid with probability ~2^-128, so
 * repeated failures mean the randomness is broken, not unlucky. */
#define EPHEMERAL_TRIES 8

/* secp256k1_ecdh hash function returning the shared point's x-coordinate
 * unchanged (see the header for why x alone). */
static int ecdh_x_only(unsigned char *output, const unsigned char *x32, const unsigned char *y32,
                       void *data) {
    (void)y32;
    (void)data;
    memcpy(output, x32, 32);
    return 1;
}

/* K || N from the scalar and point of one side of the exchange:
 * the sender passes (e, R), the recipient (r, E); both get x(e*r*G). */
static km_err ecies_derive(const km_ctx *ctx, const secp256k1_pubkey *point, const unsigned char scalar[32],
                           const unsigned char e33[33], const unsigned char r33[33],
                           unsigned char okm[OKM_LEN]) {
    unsigned char z[32], info[LABEL_LEN + 2 * KM_ECIES_PUBKEY_LEN];
    km_err err = KM_ERR_CRYPTO;
    memcpy(info, ECIES_LABEL, LABEL_LEN);
    memcpy(info + LABEL_LEN, e33, KM_ECIES_PUBKEY_LEN);
    memcpy(info + LABEL_LEN + KM_ECIES_PUBKEY_LEN, r33, KM_ECIES_PUBKEY_LEN);
    if (secp256k1_ecdh(km_ctx_secp(ctx), z, point, scalar, ecdh_x_only, NULL))
        err = km_hkdf_sha256(okm, OKM_LEN, z, sizeof z, NULL, 0, info, sizeof info);
    km_wipe(z, sizeof z);
    if (err) km_wipe(okm, OKM_LEN);
    return err;
}

static km_err serialize_compressed(const km_ctx *ctx, const secp256k1_pubkey *pk, unsigned char out33[33]) {
    size_t len = KM_ECIES_PUBKEY_LEN;
    if (!secp256k1_ec_pubkey_serialize(km_ctx_secp(ctx), out33, &len, pk, SECP256K1_EC_COMPRESSED) ||
        len != KM_ECIES_PUBKEY_LEN)
        return KM_ERR_CRYPTO;
    return KM_OK;
}

km_err km_ecies_pubkey(const km_ctx *ctx, const unsigned char seckey32[32], unsigned char pub33[33]) {
    secp256k1_pubkey pk;
    if (!secp256k1_ec_pubkey_create(km_ctx_secp(ctx), &pk, seckey32)) {
        memset(pub33, 0, KM_ECIES_PUBKEY_LEN);
        return KM_ERR_INVALID_KEY;
    }
    km_err err = serialize_compressed(ctx, &pk, pub33);
    if (err) memset(pub33, 0, KM_ECIES_PUBKEY_LEN);
    return err;
}

/* A fresh valid secret key from the RNG. */
static km_err random_seckey(const km_ctx *ctx, unsigned char sk[32]) {
    for (int i = 0; i < EPHEMERAL_TRIES; i++) {
        km_err err = km_random_bytes(sk, 32);
        if (err) return err;
        if (secp256k1_ec_seckey_verify(km_ctx_secp(ctx), sk)) return KM_OK;
    }
    km_wipe(sk, 32);
    return KM_ERR_RANDOM;
}

km_err km_ecies_keygen(km_ctx *ctx, km_secret **seckey_out, unsigned char pub33[33]) {
    *seckey_out = NULL;
    memset(pub33, 0, KM_ECIES_PUBKEY_LEN);
    km_secret *sk;
    km_err err = km_secret_new(ctx, KM_ECIES_SECKEY_LEN, &sk);
    if (err) return err;
    err = random_seckey(ctx, km_secret_data(sk));
    if (!err) err = km_ecies_pubkey(ctx, km_secret_cdata(sk), pub33);
    if (err) {
        km_secret_free(sk);
        return err;
    }
    *seckey_out = sk;
    return KM_OK;
}

km_err km_ecies_seal(const km_ctx *ctx, const unsigned char recipient_pub33[33], const unsigned char *ad,
                     size_t ad_len, const unsigned char *pt, size_t pt_len, km_buf *out) {
    unsigned char e[32], e33[33], okm[OKM_LEN], tag[KM_AEAD_TAG_LEN];
    secp256k1_pubkey r_pk, e_pk;
    km_buf_free(out);
    if (ad_len == 0 || !ad || (pt_len && !pt)) return KM_ERR_ARG;
    if (pt_len > KM_ECIES_MAX_PLAINTEXT) return KM_ERR_RANGE;
    /* A 33-byte parse accepts only the compressed form with x < p, so the
     * bytes fed to HKDF below are the one canonical encoding of R. */
    if (!secp256k1_ec_pubkey_parse(km_ctx_secp(ctx), &r_pk, recipient_pub33, KM_ECIES_PUBKEY_LEN))
        return KM_ERR_INVALID_POINT;

    km_err err = random_seckey(ctx, e);
    if (err) goto done;
    err = KM_ERR_CRYPTO;
    if (!secp256k1_ec_pubkey_create(km_ctx_secp(ctx), &e_pk, e)) goto done;
    err = serialize_compressed(ctx, &e_pk, e33);
    if (!err) err = ecies_derive(ctx, &r_pk, e, e33, recipient_pub33, okm);
    if (err) goto done;

    const unsigned char version = KM_ECIES_VERSION;
    err = km_buf_put(out, &version, 1);
    if (!err) err = km_buf_put(out, e33, sizeof e33);
    /* Encrypt in place inside the output buffer (wiped on free), so no
     * separate plaintext copy is left behind. */
    if (!err) err = km_buf_put(out, pt, pt_len);
    if (!err)
        err = km_aead_seal(out->data + OFF_CT, tag, okm, okm + KM_AEAD_KEY_LEN, ad, ad_len,
                           out->data + OFF_CT, pt_len);
    if (!err) err = km_buf_put(out, tag, sizeof tag);
done:
    km_wipe(e, sizeof e);
    km_wipe(okm, sizeof okm);
    if (err) km_buf_free(out);
    return err;
}

/* Validate everything that can be checked without the shared secret and
 * parse E. On success *n is the plaintext length. */
static km_err open_parse(const km_ctx *ctx, const unsigned char seckey[32], const unsigned char *ad,
                         size_t ad_len, const unsigned char *blob, size_t blob_len, secp256k1_pubkey *e_pk,
                         size_t *n) {
    *n = 0;
    if (ad_len == 0 || !ad || (blob_len && !blob)) return KM_ERR_ARG;
    if (!secp256k1_ec_seckey_verify(km_ctx_secp(ctx), seckey)) return KM_ERR_INVALID_KEY;
    if (blob_len == 0) return KM_ERR_PARSE;
    /* Version before length: another version may be laid out differently. */
    if (blob[0] != KM_ECIES_VERSION) return KM_ERR_UNSUPPORTED;
    if (blob_len < KM_ECIES_OVERHEAD) return KM_ERR_PARSE;
    if (blob_len - KM_ECIES_OVERHEAD > KM_ECIES_MAX_PLAINTEXT) return KM_ERR_RANGE;
    if (!secp256k1_ec_pubkey_parse(km_ctx_secp(ctx), e_pk, blob + OFF_E, KM_ECIES_PUBKEY_LEN))
        return KM_ERR_INVALID_POINT;
    *n = blob_len - KM_ECIES_OVERHEAD;
    return KM_OK;
}

/* Derive and authenticate-decrypt n bytes into pt. */
static km_err open_decrypt(const km_ctx *ctx, const unsigned char seckey[32], const unsigned char *ad,
                           size_t ad_len, const unsigned char *blob, const secp256k1_pubkey *e_pk, size_t n,
                           unsigned char *pt) {
    unsigned char r33[33], okm[OKM_LEN];
    km_err err = km_ecies_pubkey(ctx, seckey, r33);
    if (!err) err = ecies_derive(ctx, e_pk, seckey, blob + OFF_E, r33, okm);
    if (!err)
        err = km_aead_open(pt, okm, okm + KM_AEAD_KEY_LEN, ad, ad_len, blob + OFF_CT, n, blob + OFF_CT + n);
    km_wipe(okm, sizeof okm);
    return err;
}

km_err km_ecies_open(const km_ctx *ctx, const unsigned char recipient_seckey32[32], const unsigned char *ad,
                     size_t ad_len, const unsigned char *blob, size_t blob_len, unsigned char *pt,
                     size_t pt_cap, size_t *pt_len) {
    secp256k1_pubkey e_pk;
    size_t n = 0;
    km_err err = KM_ERR_ARG;
    *pt_len = 0;
    if (pt_cap && !pt) goto out;
    err = open_parse(ctx, recipient_seckey32, ad, ad_len, blob, blob_len, &e_pk, &n);
    if (err) goto out;
    if (pt_cap < n) {
        err = KM_ERR_BUFFER_SMALL;
        goto out;
    }
    err = open_decrypt(ctx, recipient_seckey32, ad, ad_len, blob, &e_pk, n, pt);
    if (!err) *pt_len = n;
out:
    if (err && pt) km_wipe(pt, pt_cap);
    return err;
}

km_err km_ecies_open_secret(km_ctx *ctx, const unsigned char recipient_seckey32[32], const unsigned char *ad,
                            size_t ad_len, const unsigned char *blob, size_t blob_len, km_secret **out) {
    secp256k1_pubkey e_pk;
    size_t n;
    *out = NULL;
    km_err err = open_parse(ctx, recipient_seckey32, ad, ad_len, blob, blob_len, &e_pk, &n);
    if (err) return err;
    if (n == 0 || n > KM_SECRET_MAX) return KM_ERR_RANGE;
    err = km_secret_new(ctx, n, out);
    if (err) return err;
    err = open_decrypt(ctx, recipient_seckey32, ad, ad_len, blob, &e_pk, n, km_secret_data(*out));
    if (err) {
        km_secret_free(*out);
        *out = NULL;
    }
    return err;
}
