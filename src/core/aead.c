/* aead.c — AES-256-GCM via OpenSSL EVP, randomness via getrandom(2). */
#include <errno.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/random.h>

#include "keymeld/aead.h"

km_err km_random_bytes(void *buf, size_t len) {
    unsigned char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t r = getrandom(p + done, len - done, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            memset(buf, 0, len);
            return KM_ERR_RANDOM;
        }
        done += (size_t)r;
    }
    return KM_OK;
}

/* EVP lengths are int; refuse anything larger rather than truncate. */
#define KM_AEAD_MAX_LEN ((size_t)1 << 30)

km_err km_aead_seal(unsigned char *ct, unsigned char tag[16], const unsigned char key[32],
                    const unsigned char nonce[12], const unsigned char *ad, size_t ad_len,
                    const unsigned char *pt, size_t pt_len) {
    if (ad_len > KM_AEAD_MAX_LEN || pt_len > KM_AEAD_MAX_LEN || (pt_len && (!pt || !ct)) || (ad_len && !ad))
        return KM_ERR_ARG;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl = 0, ok = c != NULL;
    ok = ok && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1;
    ok = ok && EVP_EncryptInit_ex(c, NULL, NULL, key, nonce) == 1;
    if (ok && ad_len) ok = EVP_EncryptUpdate(c, NULL, &outl, ad, (int)ad_len) == 1;
    if (ok && pt_len) ok = EVP_EncryptUpdate(c, ct, &outl, pt, (int)pt_len) == 1;
    ok = ok && EVP_EncryptFinal_ex(c, ct ? ct + pt_len : tag, &outl) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        if (ct && pt_len) memset(ct, 0, pt_len);
        memset(tag, 0, 16);
        return KM_ERR_CRYPTO;
    }
    return KM_OK;
}

km_err km_aead_open(unsigned char *pt, const unsigned char key[32], const unsigned char nonce[12],
                    const unsigned char *ad, size_t ad_len, const unsigned char *ct, size_t ct_len,
                    const unsigned char tag[16]) {
    if (ad_len > KM_AEAD_MAX_LEN || ct_len > KM_AEAD_MAX_LEN || (ct_len && (!pt || !ct)) || (ad_len && !ad))
        return KM_ERR_ARG;
    unsigned char tagcopy[16], fin[16];
    memcpy(tagcopy, tag, 16);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl = 0, ok = c != NULL;
    ok = ok && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1;
    ok = ok && EVP_DecryptInit_ex(c, NULL, NULL, key, nonce) == 1;
    if (ok && ad_len) ok = EVP_DecryptUpdate(c, NULL, &outl, ad, (int)ad_len) == 1;
    if (ok && ct_len) ok = EVP_DecryptUpdate(c, pt, &outl, ct, (int)ct_len) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tagcopy) == 1;
    ok = ok && EVP_DecryptFinal_ex(c, fin, &outl) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        /* GCM decrypts before it authenticates: wipe what was written. */
        if (pt && ct_len) explicit_bzero(pt, ct_len);
        return KM_ERR_DECRYPT;
    }
    return KM_OK;
}
