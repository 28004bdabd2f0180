/* keymeld/error.h — the one error type of libkeymeld.
 *
 * Every fallible function of libkeymeld returns a km_err. KM_OK is zero, so
 * `if (err) ...` reads naturally. km_strerror() is the only place where an
 * error becomes text; callers never build their own messages from codes.
 */
#ifndef KEYMELD_ERROR_H
#define KEYMELD_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KM_WARN_UNUSED  __attribute__((warn_unused_result))
#define KM_NONNULL(...) __attribute__((nonnull(__VA_ARGS__)))
#else
#define KM_WARN_UNUSED
#define KM_NONNULL(...)
#endif

/** Error codes. Values are stable: they travel in the enclave protocol and in
 *  logs, so never renumber; only append. */
typedef enum km_err {
    KM_OK = 0,
    KM_ERR_ARG = 1,           /**< caller passed an invalid argument (NULL, bad size) */
    KM_ERR_NOMEM = 2,         /**< allocation or memory locking failed */
    KM_ERR_PARSE = 3,         /**< malformed encoding (hex, uuid, structure) */
    KM_ERR_RANGE = 4,         /**< a length or value is outside its allowed range */
    KM_ERR_INVALID_KEY = 5,   /**< secret key zero or >= group order */
    KM_ERR_INVALID_POINT = 6, /**< public key / point not on the curve or not canonical */
    KM_ERR_VERIFY = 7,        /**< a signature or proof did not verify */
    KM_ERR_DECRYPT = 8,       /**< AEAD authentication failed: ciphertext, key or AD wrong */
    KM_ERR_CRYPTO = 9,        /**< the underlying crypto library failed unexpectedly */
    KM_ERR_RANDOM = 10,       /**< no randomness could be obtained */
    KM_ERR_BUFFER_SMALL = 11, /**< output buffer too small */
    KM_ERR_STATE = 12,        /**< operation not allowed in the current state */
    KM_ERR_NONCE_REUSE = 13,  /**< a one-shot secret nonce was already consumed */
    KM_ERR_UNSUPPORTED = 14,  /**< version or mode not supported */
    KM_ERR_IO = 15,           /**< operating system I/O error */
    KM_ERR_NOT_FOUND = 16,    /**< the named object does not exist */
    KM_ERR_DUPLICATE = 17,    /**< the object already exists (with different content) */
    KM_ERR_ATTESTATION = 18,  /**< an attestation document failed verification */
    KM_ERR__COUNT             /**< number of codes; not an error */
} km_err;

/** Describe an error code.
 *
 *  Returns: a static, NUL-terminated English description; never NULL. Unknown
 *           codes yield "unknown error". The string is owned by the library.
 *  In:      err: any value.
 */
const char *km_strerror(km_err err);

/** Stable snake_case name of an error code (for JSON and logs), e.g.
 *  "invalid_point". Returns: a static string, never NULL. */
const char *km_err_name(km_err err);

#ifdef __cplusplus
}
#endif
#endif
