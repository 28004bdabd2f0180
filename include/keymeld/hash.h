/* keymeld/hash.h — hashes and key derivation (OpenSSL libcrypto underneath). */
#ifndef KEYMELD_HASH_H
#define KEYMELD_HASH_H

#include <stddef.h>

#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** SHA-256 of len bytes. Out: out32 (32 bytes). In: data (NULL allowed when len is 0). */
void km_sha256(unsigned char out32[32], const void *data, size_t len) KM_NONNULL(1);

/** SHA-384 of len bytes. Out: out48 (48 bytes). */
void km_sha384(unsigned char out48[48], const void *data, size_t len) KM_NONNULL(1);

/** SHA-256 over several byte strings concatenated; parts[i] has lens[i] bytes. */
void km_sha256_parts(unsigned char out32[32], const void *const *parts, const size_t *lens, size_t n)
    KM_NONNULL(1);

/** BIP-340 tagged hash: SHA256(SHA256(tag) || SHA256(tag) || msg).
 *  In: tag: NUL-terminated ASCII tag, e.g. "BIP0340/challenge". */
void km_tagged_hash(unsigned char out32[32], const char *tag, const void *msg, size_t len) KM_NONNULL(1, 2);

/** HKDF-SHA256 (RFC 5869), extract then expand.
 *
 *  Returns: KM_OK; KM_ERR_ARG if out_len is 0 or > 255*32; KM_ERR_CRYPTO if
 *           OpenSSL fails (out is zeroed).
 *  Out:     out: out_len bytes of key material.
 *  In:      ikm: input key material; salt (may be NULL/0); info (may be NULL/0).
 */
KM_WARN_UNUSED km_err km_hkdf_sha256(unsigned char *out, size_t out_len, const unsigned char *ikm,
                                     size_t ikm_len, const unsigned char *salt, size_t salt_len,
                                     const unsigned char *info, size_t info_len) KM_NONNULL(1, 3);

#ifdef __cplusplus
}
#endif
#endif
