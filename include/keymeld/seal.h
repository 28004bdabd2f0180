/* keymeld/seal.h — sealing secrets for storage outside the enclave.
 *
 * An enclave keeps its secp256k1 key only in memory; to survive a restart it
 * stores the key sealed, i.e. encrypted under a key that only a legitimate
 * enclave can use. Where that key lives is a deployment choice, so sealing is
 * an interface (km_sealer: a table of functions plus opaque state) with one
 * implementation here, the local-key sealer (a 32-byte key the operator keeps
 * in a file), and room for others (AWS KMS with attestation-bound policy)
 * that are implemented outside the core because they need I/O.
 *
 * The core does no I/O: the caller reads the key file and the sealed blob and
 * writes the result; everything here works on buffers.
 *
 * Every seal carries a label naming what is sealed (e.g. "enclave-key"); a
 * blob only unseals under the label it was sealed with, so one sealed secret
 * cannot be substituted for another.
 *
 * LOCAL-KEY BLOB LAYOUT (version 1)
 *
 *     offset 0        1 byte   format, 0x01 (local-key AES-256-GCM)
 *     offset 1       12 bytes  nonce, random per blob
 *     offset 13       n bytes  ciphertext
 *     offset 13+n    16 bytes  GCM tag
 *     total = n + 29 bytes (KM_SEAL_LOCAL_OVERHEAD), 1 <= n <= KM_SEAL_MAX_PLAINTEXT
 *
 *   key = HKDF-SHA256(IKM = operator key (32 bytes), salt = "",
 *                     info = "keymeld/seal/key/v1", L = 32)
 *   ad  = "keymeld/seal/v1" (15 ASCII bytes) || label (its bytes, no NUL)
 *
 *   The operator key is not used directly so that a key file accidentally
 *   reused elsewhere still yields an unrelated AES key. The fixed-length
 *   prefix makes the AD injective in the label. The nonce is random because
 *   the sealing key is long-lived.
 *
 * Other backends MUST start their blobs with a different format byte, so a
 * blob given to the wrong backend fails with KM_ERR_UNSUPPORTED rather than
 * an ambiguous KM_ERR_DECRYPT.
 */
#ifndef KEYMELD_SEAL_H
#define KEYMELD_SEAL_H

#include <stddef.h>

#include "keymeld/context.h"
#include "keymeld/cursor.h"
#include "keymeld/error.h"
#include "keymeld/secret.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KM_SEAL_KEY_LEN        32
#define KM_SEAL_FORMAT_LOCAL   0x01
#define KM_SEAL_LOCAL_OVERHEAD 29
/** Largest secret that may be sealed (it is unsealed into a km_secret). */
#define KM_SEAL_MAX_PLAINTEXT KM_SECRET_MAX
/** Longest label, in bytes. */
#define KM_SEAL_LABEL_MAX 64

/** The functions of one sealing backend. A backend is given only validated
 *  arguments: km_seal/km_unseal check the label, pointers and sizes first. */
typedef struct km_sealer_ops {
    /** Backend name for logs, e.g. "local-key"; static storage. */
    const char *name;
    /** Seal pt_len bytes under label into out (previous contents replaced);
     *  semantics of km_seal. */
    km_err (*seal)(void *state, const char *label, const unsigned char *pt, size_t pt_len, km_buf *out);
    /** Unseal blob under label into a new secret; semantics of km_unseal. */
    km_err (*unseal)(void *state, const char *label, const unsigned char *blob, size_t blob_len,
                     km_secret **out);
    /** Wipe and release state (may be NULL if state needs no release). */
    void (*destroy)(void *state);
} km_sealer_ops;

/** A sealing backend: its functions and its private state. */
typedef struct km_sealer {
    const km_sealer_ops *ops;
    void *state;
} km_sealer;

/** Create the local-key sealer.
 *
 *  The key MUST come from a file readable only by the operator and MUST be
 *  32 uniformly random bytes (e.g. from km_random_bytes when first created).
 *
 *  Returns: KM_OK; KM_ERR_NOMEM.
 *  Args:    ctx: context; it MUST outlive the sealer (the key lives in its
 *           secret pool and unsealed secrets are allocated from it).
 *  Out:     out: the new sealer, freed with km_sealer_free; NULL on failure.
 *  In:      key32: the 32-byte operator key; copied into locked memory, the
 *           caller wipes its own copy.
 */
KM_WARN_UNUSED km_err km_sealer_local_new(km_ctx *ctx, const unsigned char key32[32], km_sealer **out)
    KM_NONNULL(1, 2, 3);

/** Destroy a sealer: calls ops->destroy(state), then wipes the km_sealer and
 *  releases it with free(). Every constructor (km_sealer_local_new, and a
 *  backend's own km_sealer_<name>_new outside the core) MUST therefore
 *  allocate the km_sealer with malloc/calloc. NULL is accepted and ignored. */
void km_sealer_free(km_sealer *s);

/** Seal a secret.
 *
 *  Returns: KM_OK; KM_ERR_ARG if label is empty, longer than
 *           KM_SEAL_LABEL_MAX or not printable ASCII 0x21..0x7e, or pt is
 *           NULL; KM_ERR_RANGE if pt_len is 0 or > KM_SEAL_MAX_PLAINTEXT;
 *           KM_ERR_RANDOM; KM_ERR_NOMEM; KM_ERR_CRYPTO; a backend may also
 *           return KM_ERR_IO. On failure out is empty.
 *  Args:    s: the sealer.
 *  Out:     out: an initialized km_buf; previous contents are wiped and
 *           replaced by the sealed blob.
 *  In:      label: NUL-terminated label; pt: pt_len bytes.
 */
KM_WARN_UNUSED km_err km_seal(const km_sealer *s, const char *label, const unsigned char *pt, size_t pt_len,
                              km_buf *out) KM_NONNULL(1, 2, 5);

/** Unseal a secret.
 *
 *  Returns: KM_OK; KM_ERR_ARG as km_seal (or blob NULL with blob_len > 0);
 *           KM_ERR_PARSE if the blob is too short to hold one byte of
 *           plaintext; KM_ERR_UNSUPPORTED if its format byte is not this
 *           backend's; KM_ERR_RANGE if it is longer than the largest sealed
 *           secret; KM_ERR_DECRYPT if it was altered, sealed under another key
 *           or another label; KM_ERR_NOMEM. On failure *out is NULL.
 *  Args:    s: the sealer.
 *  Out:     out: a new secret with the plaintext, freed with km_secret_free.
 *  In:      label: the label used when sealing; blob: blob_len bytes.
 */
KM_WARN_UNUSED km_err km_unseal(const km_sealer *s, const char *label, const unsigned char *blob,
                                size_t blob_len, km_secret **out) KM_NONNULL(1, 2, 5);

#ifdef __cplusplus
}
#endif
#endif
