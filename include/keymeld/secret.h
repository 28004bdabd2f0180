/* keymeld/secret.h — memory for secrets.
 *
 * A km_secret is an opaque handle on bytes that live in locked pages
 * (mlock: never swapped; MADV_DONTDUMP: never in a core dump) and are wiped
 * when freed. Being a distinct opaque type, a secret cannot be passed to
 * printf or memcpy'd by accident: the bytes are reached only through
 * km_secret_data(). Use it for secret keys, nonces, session secrets and
 * derived keys. Plain stack copies made for a call MUST be wiped with
 * km_wipe() on every path out.
 */
#ifndef KEYMELD_SECRET_H
#define KEYMELD_SECRET_H

#include <stddef.h>

#include "keymeld/context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct km_secret km_secret;

/** Largest secret that may be allocated, in bytes. */
#define KM_SECRET_MAX 4096

/** Allocate a zero-filled secret of len bytes in locked memory.
 *
 *  Returns: KM_OK; KM_ERR_ARG if len is 0 or > KM_SECRET_MAX; KM_ERR_NOMEM if
 *           memory cannot be obtained or locked (a secret is never placed in
 *           unlocked memory).
 *  Args:    ctx: the context whose pool serves the allocation.
 *  In:      len: size in bytes.
 *  Out:     out: the new secret, owned by the caller, freed with km_secret_free;
 *           NULL on failure.
 */
KM_WARN_UNUSED km_err km_secret_new(km_ctx *ctx, size_t len, km_secret **out) KM_NONNULL(1, 3);

/** Allocate a secret holding a copy of len bytes at src. Same returns as
 *  km_secret_new. The caller remains responsible for wiping src. */
KM_WARN_UNUSED km_err km_secret_from(km_ctx *ctx, const void *src, size_t len, km_secret **out)
    KM_NONNULL(1, 2, 4);

/** The secret's bytes (read/write), valid until km_secret_free. */
unsigned char *km_secret_data(km_secret *s) KM_NONNULL(1);
/** Read-only view of the secret's bytes. */
const unsigned char *km_secret_cdata(const km_secret *s) KM_NONNULL(1);
/** Length in bytes. */
size_t km_secret_len(const km_secret *s) KM_NONNULL(1);

/** Wipe and release a secret. NULL is accepted and ignored. */
void km_secret_free(km_secret *s);

/** Overwrite len bytes at p with zeros in a way the compiler cannot elide.
 *  NULL with len 0 is accepted. */
void km_wipe(void *p, size_t len);

/** Compare two byte strings in time independent of their content.
 *  Returns: 1 if equal, 0 otherwise. */
int km_ct_equal(const void *a, const void *b, size_t len);

#ifdef __cplusplus
}
#endif
#endif
