/* attestation_x509.c — loading certificates and keys from caller buffers. */
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <string.h>

#include "core/attestation_internal.h"

X509 *km_attest_x509_parse(const unsigned char *p, size_t len) {
    static const char pem_begin[] = "-----BEGIN";
    X509 *x = NULL;
    if (!p || len == 0 || len > INT_MAX) return NULL;
    if (len >= sizeof pem_begin - 1 && memcmp(p, pem_begin, sizeof pem_begin - 1) == 0) {
        BIO *bio = BIO_new_mem_buf(p, (int)len);
        if (bio) x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);
    } else {
        const unsigned char *q = p;
        x = d2i_X509(NULL, &q, (long)len);
        /* Trailing bytes would let two different byte strings name one
         * certificate; the pinned-root comparison relies on one encoding. */
        if (x && q != p + len) {
            X509_free(x);
            x = NULL;
        }
    }
    ERR_clear_error();
    return x;
}

/* Never prompt on a terminal for a passphrase: the library has no user. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

EVP_PKEY *km_attest_key_parse_pem(const unsigned char *p, size_t len) {
    EVP_PKEY *key = NULL;
    if (!p || len == 0 || len > INT_MAX) return NULL;
    /* A read-only memory BIO reads the caller's buffer in place: the secret
     * is not copied into memory we could not wipe. */
    BIO *bio = BIO_new_mem_buf(p, (int)len);
    if (bio) key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    ERR_clear_error();
    return key;
}

km_err km_attest_x509_der(X509 *cert, km_buf *out) {
    unsigned char *der = NULL;
    int n = i2d_X509(cert, &der);
    if (n <= 0) {
        ERR_clear_error();
        return KM_ERR_CRYPTO;
    }
    km_err err = km_buf_put(out, der, (size_t)n);
    OPENSSL_free(der);
    return err;
}
