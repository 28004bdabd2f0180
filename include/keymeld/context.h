/* keymeld/context.h — the per-process libkeymeld context.
 *
 * A km_ctx carries everything that would otherwise be global: the
 * libsecp256k1 context (randomized against side channels at creation) and the
 * locked-memory pool for secrets (see secret.h). Create one per process.
 *
 * Thread safety: after km_ctx_create returns, a km_ctx may be used from many
 * threads at once by every libkeymeld function that takes it (the secret pool
 * has its own lock; the secp256k1 context is only read).
 */
#ifndef KEYMELD_CONTEXT_H
#define KEYMELD_CONTEXT_H

#include <secp256k1.h>

#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct km_ctx km_ctx;

/** Create a context.
 *
 *  Returns: KM_OK on success; KM_ERR_NOMEM if allocation fails; KM_ERR_RANDOM if
 *           the secp256k1 context cannot be randomized.
 *  Out:     out: receives the new context, owned by the caller, freed with
 *           km_ctx_destroy. Set to NULL on failure.
 */
KM_WARN_UNUSED km_err km_ctx_create(km_ctx **out) KM_NONNULL(1);

/** Destroy a context. Every km_secret allocated from it must already be freed
 *  (remaining ones are wiped and released). NULL is accepted and ignored. */
void km_ctx_destroy(km_ctx *ctx);

/** The libsecp256k1 context inside ctx (signing and verification enabled).
 *  Returns: a pointer owned by ctx, valid until km_ctx_destroy. */
const secp256k1_context *km_ctx_secp(const km_ctx *ctx) KM_NONNULL(1);

#ifdef __cplusplus
}
#endif
#endif
