/* keymeld/aead.h — AES-256-GCM and randomness (OpenSSL libcrypto / getrandom). */
#ifndef KEYMELD_AEAD_H
#define KEYMELD_AEAD_H

#include <stddef.h>

#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KM_AEAD_KEY_LEN   32
#define KM_AEAD_NONCE_LEN 12
#define KM_AEAD_TAG_LEN   16

/** Fill buf with len cryptographically secure random bytes (getrandom(2)).
 *  Returns: KM_OK; KM_ERR_RANDOM if the kernel cannot supply them (buf zeroed). */
KM_WARN_UNUSED km_err km_random_bytes(void *buf, size_t len) KM_NONNULL(1);

/** AES-256-GCM encryption.
 *
 *  The caller MUST never use the same (key, nonce) twice; use a random nonce
 *  from km_random_bytes for each call with a long-lived key.
 *
 *  Returns: KM_OK; KM_ERR_CRYPTO on an OpenSSL failure (ct and tag zeroed).
 *  Out:     ct: pt_len bytes (may equal pt for in-place); tag: 16 bytes.
 *  In:      key: 32 bytes; nonce: 12 bytes; ad: ad_len bytes of associated data
 *           (NULL allowed when 0); pt: pt_len bytes (NULL allowed when 0).
 */
KM_WARN_UNUSED km_err km_aead_seal(unsigned char *ct, unsigned char tag[16], const unsigned char key[32],
                                   const unsigned char nonce[12], const unsigned char *ad, size_t ad_len,
                                   const unsigned char *pt, size_t pt_len) KM_NONNULL(2, 3, 4);

/** AES-256-GCM decryption and authentication.
 *
 *  Returns: KM_OK; KM_ERR_DECRYPT if the tag does not authenticate ct and ad
 *           under key and nonce — then pt is zeroed, no plaintext escapes.
 *  Out:     pt: ct_len bytes.
 *  In:      as km_aead_seal.
 */
KM_WARN_UNUSED km_err km_aead_open(unsigned char *pt, const unsigned char key[32],
                                   const unsigned char nonce[12], const unsigned char *ad, size_t ad_len,
                                   const unsigned char *ct, size_t ct_len, const unsigned char tag[16])
    KM_NONNULL(2, 3, 8);

#ifdef __cplusplus
}
#endif
#endif
