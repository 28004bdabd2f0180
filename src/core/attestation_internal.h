/* attestation_internal.h — certificate and key loading shared by the
 * attestation verifier and the development issuer. */
#ifndef KEYMELD_ATTESTATION_INTERNAL_H
#define KEYMELD_ATTESTATION_INTERNAL_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>

#include "keymeld/cursor.h"
#include "keymeld/error.h"

/** Parse one X.509 certificate, PEM (if the input starts with "-----BEGIN")
 *  or DER (which must span exactly len bytes). Returns NULL if it cannot be
 *  parsed. The OpenSSL error queue is left empty. */
X509 *km_attest_x509_parse(const unsigned char *p, size_t len);

/** Parse a private key PEM (PKCS#8 or traditional, unencrypted; an encrypted
 *  key is refused rather than prompting for a passphrase). Returns NULL on
 *  failure. The caller frees with EVP_PKEY_free. */
EVP_PKEY *km_attest_key_parse_pem(const unsigned char *p, size_t len);

/** Append the DER encoding of cert to out. Returns KM_OK, KM_ERR_NOMEM or
 *  KM_ERR_CRYPTO. */
KM_WARN_UNUSED km_err km_attest_x509_der(X509 *cert, km_buf *out);

#endif
