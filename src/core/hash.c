/* hash.c — SHA-256/384, BIP-340 tagged hashes and HKDF via OpenSSL libcrypto. */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/sha.h>
#include <string.h>

#include "keymeld/hash.h"

void km_sha256(unsigned char out32[32], const void *data, size_t len) {
    SHA256(data ? data : (const void *)"", len, out32);
}

void km_sha384(unsigned char out48[48], const void *data, size_t len) {
    SHA384(data ? data : (const void *)"", len, out48);
}

void km_sha256_parts(unsigned char out32[32], const void *const *parts, const size_t *lens, size_t n) {
    /* EVP_MD_CTX_new only fails on allocation failure; then the output is
     * zeroed and can match nothing a caller compares it with. */
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < n; i++)
        if (lens[i]) ok = EVP_DigestUpdate(c, parts[i], lens[i]) == 1;
    if (!ok || EVP_DigestFinal_ex(c, out32, NULL) != 1) memset(out32, 0, 32);
    EVP_MD_CTX_free(c);
}

void km_tagged_hash(unsigned char out32[32], const char *tag, const void *msg, size_t len) {
    unsigned char th[32];
    km_sha256(th, tag, strlen(tag));
    const void *parts[3] = {th, th, msg};
    size_t lens[3] = {32, 32, len};
    km_sha256_parts(out32, parts, lens, 3);
}

km_err km_hkdf_sha256(unsigned char *out, size_t out_len, const unsigned char *ikm, size_t ikm_len,
                      const unsigned char *salt, size_t salt_len, const unsigned char *info,
                      size_t info_len) {
    if (out_len == 0 || out_len > 255 * 32) return KM_ERR_ARG;
    km_err err = KM_ERR_CRYPTO;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    if (kctx) {
        OSSL_PARAM params[5], *p = params;
        static unsigned char empty[1];
        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt ? (void *)salt : empty, salt_len);
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info ? (void *)info : empty, info_len);
        *p = OSSL_PARAM_construct_end();
        if (EVP_KDF_derive(kctx, out, out_len, params) == 1) err = KM_OK;
    }
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    if (err) memset(out, 0, out_len);
    return err;
}
