/* identity.h — the enclave's long-lived key pair, persisted only sealed. */
#ifndef KM_ENCLAVE_IDENTITY_H
#define KM_ENCLAVE_IDENTITY_H

#include "enclave/enclave.h"
#include "keymeld/seal.h"

/** Loads the enclave key from DIR/enclave-key.sealed, or generates one and
 *  writes it there sealed (atomically, mode 0600) if the file does not exist.
 *  A file that exists but does not unseal is an error, never a reason to make
 *  a new key: the enclave's identity must not silently change.
 *  Fills e->key, e->pub and e->fingerprint. Returns KM_OK or an error;
 *  *detail receives a static description of what failed. */
km_err km_identity_load_or_create(km_enclave *e, const km_sealer *sealer, const char *state_dir,
                                  const char **detail);

/** Reads a 32-byte key file (raw 32 bytes or 64 lowercase hex characters and an
 *  optional newline) that must not be readable by group or others.
 *  Returns KM_OK with the key in *out (a locked secret), or an error and a
 *  static *detail. */
km_err km_read_key_file(km_ctx *ctx, const char *path, km_secret **out, const char **detail);

#endif
