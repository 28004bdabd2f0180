/* cose.c — strict CBOR scanning and COSE_Sign1 with ES384 (RFC 9052).
 *
 * libcbor does the CBOR building and loading, OpenSSL the ECDSA. This file
 * adds what neither gives: a bounded pre-scan that rejects everything a
 * strict verifier must refuse before libcbor allocates anything, the
 * Sig_structure, and the conversion between COSE's raw r || s signatures and
 * the DER ECDSA-Sig-Value OpenSSL speaks.
 */
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

#include "core/cose_internal.h"

const unsigned char km_cose_es384_protected[4] = {0xa1, 0x01, 0x38, 0x22};

/* ---- strict pre-scan ------------------------------------------------------ */

/* Read one item head: major type and argument, in shortest form only.
 * Shortest form matters because the outer COSE array, the unprotected header
 * and the signature's length prefix are not covered by the signature: a
 * longer encoding would be a second byte string meaning the same document. */
static km_err scan_head(km_cursor *c, unsigned *major, unsigned *ai, uint64_t *arg) {
    uint8_t ib;
    if (km_cursor_get_u8(c, &ib)) return KM_ERR_PARSE;
    *major = ib >> 5;
    *ai = ib & 0x1f;
    if (*ai < 24) {
        *arg = *ai;
        return KM_OK;
    }
    if (*ai == 24) {
        uint8_t v;
        if (km_cursor_get_u8(c, &v) || v < 24) return KM_ERR_PARSE;
        *arg = v;
    } else if (*ai == 25) {
        uint16_t v;
        if (km_cursor_get_u16(c, &v) || v <= 0xff) return KM_ERR_PARSE;
        *arg = v;
    } else if (*ai == 26) {
        uint32_t v;
        if (km_cursor_get_u32(c, &v) || v <= 0xffff) return KM_ERR_PARSE;
        *arg = v;
    } else if (*ai == 27) {
        uint64_t v;
        if (km_cursor_get_u64(c, &v) || v <= 0xffffffffu) return KM_ERR_PARSE;
        *arg = v;
    } else {
        return KM_ERR_PARSE; /* 28..30 reserved, 31 indefinite length */
    }
    return KM_OK;
}

static km_err scan_item(km_cursor *c, unsigned depth) {
    unsigned major, ai;
    uint64_t arg;
    const unsigned char *view;
    if (depth > KM_COSE_MAX_DEPTH) return KM_ERR_PARSE;
    if (scan_head(c, &major, &ai, &arg)) return KM_ERR_PARSE;
    size_t left = km_cursor_remaining(c);
    switch (major) {
    case 0: /* unsigned integer */
    case 1: /* negative integer */
        return KM_OK;
    case 2: /* byte string */
    case 3: /* text string */
        if (arg > left) return KM_ERR_PARSE;
        return km_cursor_get_view(c, &view, (size_t)arg);
    case 4: /* array: every element takes at least one byte */
        if (arg > left) return KM_ERR_PARSE;
        for (uint64_t i = 0; i < arg; i++)
            if (scan_item(c, depth + 1)) return KM_ERR_PARSE;
        return KM_OK;
    case 5: /* map: every pair takes at least two bytes */
        if (arg > left / 2) return KM_ERR_PARSE;
        for (uint64_t i = 0; i < 2 * arg; i++)
            if (scan_item(c, depth + 1)) return KM_ERR_PARSE;
        return KM_OK;
    case 6: /* tags carry meaning we do not interpret: refuse them */
        return KM_ERR_PARSE;
    default: /* 7: only false, true and null; no floats, undefined, simple */
        return (ai >= 20 && ai <= 22) ? KM_OK : KM_ERR_PARSE;
    }
}

km_err km_cose_cbor_check(const unsigned char *p, size_t len) {
    if (!p || len == 0) return KM_ERR_PARSE;
    km_cursor c;
    km_cursor_init(&c, p, len);
    if (scan_item(&c, 0)) return KM_ERR_PARSE;
    return km_cursor_finish(&c);
}

km_err km_cose_cbor_load(const unsigned char *p, size_t len, cbor_item_t **out) {
    *out = NULL;
    if (km_cose_cbor_check(p, len)) return KM_ERR_PARSE;
    struct cbor_load_result res;
    memset(&res, 0, sizeof res);
    cbor_item_t *item = cbor_load(p, len, &res);
    if (!item) return res.error.code == CBOR_ERR_MEMERROR ? KM_ERR_NOMEM : KM_ERR_PARSE;
    if (res.error.code != CBOR_ERR_NONE || res.read != len) {
        cbor_decref(&item);
        return KM_ERR_PARSE;
    }
    *out = item;
    return KM_OK;
}

/* ---- building ------------------------------------------------------------- */

cbor_item_t *km_cose_cbor_uint(uint64_t v) {
    if (v <= UINT8_MAX) return cbor_build_uint8((uint8_t)v);
    if (v <= UINT16_MAX) return cbor_build_uint16((uint16_t)v);
    if (v <= UINT32_MAX) return cbor_build_uint32((uint32_t)v);
    return cbor_build_uint64(v);
}

cbor_item_t *km_cose_cbor_bytes(const unsigned char *p, size_t len) {
    /* libcbor memcpy's from the handle even for length 0: never hand it NULL. */
    static const unsigned char none[1];
    return cbor_build_bytestring(len ? p : none, len);
}

int km_cose_array_put(cbor_item_t *array, cbor_item_t *item) {
    if (!item) return 0;
    int ok = cbor_array_push(array, item); /* takes its own reference */
    cbor_decref(&item);
    return ok;
}

int km_cose_map_put(cbor_item_t *map, cbor_item_t *key, cbor_item_t *value) {
    int ok = 0;
    if (key && value) ok = cbor_map_add(map, (struct cbor_pair){.key = key, .value = value});
    if (key) cbor_decref(&key);
    if (value) cbor_decref(&value);
    return ok;
}

km_err km_cose_serialize(const cbor_item_t *item, km_buf *out) {
    unsigned char *buf = NULL;
    size_t cap = 0;
    size_t n = cbor_serialize_alloc(item, &buf, &cap);
    km_err err = n ? km_buf_put(out, buf, n) : KM_ERR_NOMEM;
    free(buf);
    return err;
}

km_err km_cose_sig_structure(const unsigned char *prot, size_t prot_len, const unsigned char *payload,
                             size_t payload_len, km_buf *out) {
    cbor_item_t *arr = cbor_new_definite_array(4);
    if (!arr) return KM_ERR_NOMEM;
    int ok = km_cose_array_put(arr, cbor_build_string("Signature1")) &&
             km_cose_array_put(arr, km_cose_cbor_bytes(prot, prot_len)) &&
             km_cose_array_put(arr, km_cose_cbor_bytes(NULL, 0)) && /* external_aad */
             km_cose_array_put(arr, km_cose_cbor_bytes(payload, payload_len));
    km_err err = ok ? km_cose_serialize(arr, out) : KM_ERR_NOMEM;
    cbor_decref(&arr);
    return err;
}

/* ---- ES384 ---------------------------------------------------------------- */

int km_cose_key_is_p384(const EVP_PKEY *key) {
    char name[32];
    size_t len = 0;
    if (!key || !EVP_PKEY_is_a(key, "EC")) return 0;
    if (EVP_PKEY_get_group_name(key, name, sizeof name, &len) != 1) return 0;
    return strcmp(name, "secp384r1") == 0;
}

km_err km_cose_es384_sign(EVP_PKEY *key, const unsigned char *tbs, size_t tbs_len,
                          unsigned char sig[KM_COSE_ES384_SIG_LEN]) {
    memset(sig, 0, KM_COSE_ES384_SIG_LEN);
    if (!km_cose_key_is_p384(key)) return KM_ERR_ARG;
    km_err err = KM_ERR_CRYPTO;
    unsigned char der[160];
    size_t der_len = sizeof der;
    ECDSA_SIG *es = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md && EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, key) == 1 &&
        EVP_DigestSign(md, der, &der_len, tbs, tbs_len) == 1) {
        const unsigned char *p = der;
        es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
        const BIGNUM *r = NULL, *s = NULL;
        if (es) ECDSA_SIG_get0(es, &r, &s);
        if (r && s && BN_bn2binpad(r, sig, 48) == 48 && BN_bn2binpad(s, sig + 48, 48) == 48) err = KM_OK;
    }
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(md);
    if (err) {
        memset(sig, 0, KM_COSE_ES384_SIG_LEN);
        ERR_clear_error();
    }
    return err;
}

km_err km_cose_es384_verify(EVP_PKEY *key, const unsigned char *tbs, size_t tbs_len, const unsigned char *sig,
                            size_t sig_len) {
    if (!km_cose_key_is_p384(key)) return KM_ERR_ARG;
    /* COSE fixes the raw form at exactly 2 * 48 bytes; any other length is
     * not an ES384 signature, whatever a lenient decoder might make of it. */
    if (!sig || sig_len != KM_COSE_ES384_SIG_LEN) return KM_ERR_VERIFY;
    km_err err = KM_ERR_NOMEM;
    unsigned char *der = NULL;
    EVP_MD_CTX *md = NULL;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 48, NULL);
    BIGNUM *s = BN_bin2bn(sig + 48, 48, NULL);
    if (!es || !r || !s) goto done;
    if (ECDSA_SIG_set0(es, r, s) != 1) goto done;
    r = s = NULL; /* owned by es now */
    int der_len = i2d_ECDSA_SIG(es, &der);
    if (der_len <= 0) goto done;
    md = EVP_MD_CTX_new();
    if (!md) goto done;
    err = KM_ERR_CRYPTO;
    if (EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, key) != 1) goto done;
    /* 0 is a bad signature, a negative value a malformed one (r or s zero or
     * out of range): both mean "not signed by this key". */
    err = EVP_DigestVerify(md, der, (size_t)der_len, tbs, tbs_len) == 1 ? KM_OK : KM_ERR_VERIFY;
done:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return err;
}

km_err km_cose_sign1(EVP_PKEY *key, const unsigned char *prot, size_t prot_len, const unsigned char *payload,
                     size_t payload_len, km_buf *out) {
    km_buf tbs;
    km_buf_init(&tbs);
    unsigned char sig[KM_COSE_ES384_SIG_LEN];
    km_err err = km_cose_sig_structure(prot, prot_len, payload, payload_len, &tbs);
    if (!err) err = km_cose_es384_sign(key, tbs.data, tbs.len, sig);
    km_buf_free(&tbs);
    if (err) return err;
    cbor_item_t *arr = cbor_new_definite_array(4);
    cbor_item_t *unprot = cbor_new_definite_map(0);
    int ok = arr && unprot && km_cose_array_put(arr, km_cose_cbor_bytes(prot, prot_len));
    ok = ok && cbor_array_push(arr, unprot);
    ok = ok && km_cose_array_put(arr, km_cose_cbor_bytes(payload, payload_len)) &&
         km_cose_array_put(arr, km_cose_cbor_bytes(sig, sizeof sig));
    err = ok ? km_cose_serialize(arr, out) : KM_ERR_NOMEM;
    if (unprot) cbor_decref(&unprot);
    if (arr) cbor_decref(&arr);
    return err;
}
