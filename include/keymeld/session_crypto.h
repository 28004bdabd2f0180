/* keymeld/session_crypto.h — canonical associated data, and the keys and
 * encryption that hang off a keygen's 32-byte session secret.
 *
 * ASSOCIATED DATA (km_ad)
 *
 * Every AEAD blob in KeyMeld (ECIES to an enclave, session data) carries
 * associated data that names what the blob is for, so a blob made for one
 * purpose, keygen or item cannot be replayed as another. That only works if
 * two different tuples can never produce the same bytes, so the AD is built by
 * one canonical encoder, km_ad, and never by string concatenation:
 *
 *     ad     = 0x01 (format version) || field*
 *     field  = kind (1 byte) || length (4 bytes, big-endian) || value
 *     kinds  = 'P' purpose (ASCII, always first, exactly once)
 *              'I' id      (16 bytes: a UUID)
 *              'B' bytes   (any length, may be empty)
 *              'U' u64     (8 bytes, big-endian)
 *
 * Every field is self-delimiting (kind and explicit length), so the encoding
 * is a prefix-free code: a byte string decodes to at most one sequence of
 * typed fields. ("ab","c") and ("a","bc") differ in their length bytes; an
 * index 0x6162636465666768 differs from the bytes "abcdefgh" in its kind.
 *
 * SESSION KEYS
 *
 * From the session secret S (32 uniformly random bytes made by the keygen
 * coordinator) two independent keys are derived with HKDF-SHA256 (RFC 5869,
 * empty salt, which RFC 5869 defines as 32 zero bytes — S is already uniform,
 * so extraction needs no salt; i below is a single byte):
 *
 *     data_key    = HKDF(IKM = S, salt = "", info = "keymeld/session/data/v1", L = 32)
 *     auth_cand_i = HKDF(IKM = S, salt = "", info = "keymeld/session/auth/v1" || i, L = 32)
 *                   for the counter byte i = 0x00, 0x01, ..., 0xff
 *     auth_seckey = the first auth_cand_i that is a valid secp256k1 secret key
 *                   (non-zero and below the group order)
 *     auth_pubkey = the BIP-340 x-only public key of auth_seckey (32 bytes)
 *
 * A candidate is invalid with probability below 2^-127, so in practice i = 0
 * is always used; the counter exists so that the derivation is total and
 * every implementation agrees on what happens in that case.
 *
 * SESSION DATA BLOBS (version 1)
 *
 *     offset 0        1 byte   version, 0x01
 *     offset 1       12 bytes  nonce, random per blob
 *     offset 13       n bytes  ciphertext, AES-256-GCM(data_key, nonce, ad, plaintext)
 *     offset 13+n    16 bytes  GCM tag
 *     total = n + 29 bytes (KM_SESSION_OVERHEAD)
 *
 * The nonce is random because data_key is long-lived (a whole keygen and all
 * its signings): with 96-bit random nonces the collision bound stays far
 * below 2^-32 for fewer than 2^32 blobs per key. The version byte is not in
 * the GCM associated data; only 0x01 is accepted, and a future version MUST
 * derive its key under a new label ("…/data/v2"), so a blob cannot be
 * reinterpreted under another version.
 */
#ifndef KEYMELD_SESSION_CRYPTO_H
#define KEYMELD_SESSION_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <secp256k1.h>
#include <secp256k1_extrakeys.h>

#include "keymeld/context.h"
#include "keymeld/cursor.h"
#include "keymeld/error.h"
#include "keymeld/secret.h"
#include "keymeld/uuid.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Canonical associated data                                                 */
/* ------------------------------------------------------------------------ */

/** Largest encoded AD, in bytes. */
#define KM_AD_MAX 512
/** Longest purpose string, in bytes. */
#define KM_AD_PURPOSE_MAX 64

/** An associated-data string under construction. Read bytes[0..len) once
 *  every add has returned KM_OK. The struct is plain data; no free needed. */
typedef struct km_ad {
    unsigned char bytes[KM_AD_MAX];
    size_t len;
    int failed; /**< set by the first failed call; later adds then fail too */
} km_ad;

/** Start an AD with its purpose.
 *
 *  The purpose names what the blob is (e.g. "registration", "session/message").
 *
 *  Returns: KM_OK; KM_ERR_ARG if purpose is empty, longer than
 *           KM_AD_PURPOSE_MAX or contains a byte outside printable ASCII
 *           0x21..0x7e. On failure ad->len is 0 and ad->failed is set.
 *  Out:     ad: overwritten entirely.
 *  In:      purpose: NUL-terminated ASCII.
 */
KM_WARN_UNUSED km_err km_ad_init(km_ad *ad, const char *purpose) KM_NONNULL(1, 2);

/** Append a 16-byte id (keygen id, signing id, user id).
 *
 *  Returns: KM_OK; KM_ERR_RANGE if the AD would exceed KM_AD_MAX; KM_ERR_ARG if
 *           ad was not initialized successfully or an earlier add failed. On
 *           failure ad->len becomes 0 and ad->failed is set (sticky).
 *  In/Out:  ad: an AD started with km_ad_init.
 *  In:      id: the id.
 */
KM_WARN_UNUSED km_err km_ad_add_id(km_ad *ad, const km_uuid *id) KM_NONNULL(1, 2);

/** Append a byte string (item id, public key, ...). Same returns as
 *  km_ad_add_id. In: p: len bytes (NULL allowed when len is 0). */
KM_WARN_UNUSED km_err km_ad_add_bytes(km_ad *ad, const void *p, size_t len) KM_NONNULL(1);

/** Append an unsigned integer (an item index). Same returns as km_ad_add_id. */
KM_WARN_UNUSED km_err km_ad_add_u64(km_ad *ad, uint64_t v) KM_NONNULL(1);

/** Build the common AD (purpose, id, item bytes) in one call.
 *
 *  Returns: as km_ad_init / km_ad_add_*.
 *  Out:     ad: overwritten.
 *  In:      purpose: as km_ad_init; id: the keygen or session id;
 *           item: item_len bytes (NULL allowed when item_len is 0), e.g. a
 *           user id's 16 bytes or an item's id.
 */
KM_WARN_UNUSED km_err km_ad_build(km_ad *ad, const char *purpose, const km_uuid *id, const void *item,
                                  size_t item_len) KM_NONNULL(1, 2, 3);

/** Build the AD (purpose, id, item index). Same returns as km_ad_build. */
KM_WARN_UNUSED km_err km_ad_build_index(km_ad *ad, const char *purpose, const km_uuid *id, uint64_t index)
    KM_NONNULL(1, 2, 3);

/* ------------------------------------------------------------------------ */
/* Session keys                                                              */
/* ------------------------------------------------------------------------ */

#define KM_SESSION_SECRET_LEN 32
#define KM_SESSION_VERSION    0x01
/** Bytes a session blob adds to its plaintext: version, nonce and tag. */
#define KM_SESSION_OVERHEAD 29
/** Largest plaintext a session blob may carry (16 MiB). */
#define KM_SESSION_MAX_PLAINTEXT ((size_t)1 << 24)

/** Keys derived from one session secret; opaque, secrets in locked memory. */
typedef struct km_session km_session;

/** Derive the raw session keys (see the header comment for the exact rule).
 *
 *  Prefer km_session_derive, which keeps the keys in locked memory; this form
 *  exists for known-answer tests and for callers that manage their own memory.
 *  The caller MUST wipe both outputs with km_wipe when done.
 *
 *  Returns: KM_OK; KM_ERR_INVALID_KEY if no counter value yields a valid key
 *           (probability below 2^-32000); KM_ERR_CRYPTO if HKDF fails. On
 *           failure both outputs are zeroed.
 *  Args:    ctx: a libkeymeld context (for the secp256k1 key check).
 *  Out:     data_key32: 32-byte AES-256-GCM session data key.
 *           auth_seckey32: 32-byte secp256k1 secret key of the session auth key.
 *  In:      secret32: the 32-byte session secret.
 */
KM_WARN_UNUSED km_err km_session_derive_raw(const km_ctx *ctx, const unsigned char secret32[32],
                                            unsigned char data_key32[32], unsigned char auth_seckey32[32])
    KM_NONNULL(1, 2, 3, 4);

/** Derive a session's keys from its secret into locked memory.
 *
 *  Returns: KM_OK; KM_ERR_NOMEM; KM_ERR_INVALID_KEY or KM_ERR_CRYPTO as
 *           km_session_derive_raw.
 *  Args:    ctx: context; it MUST outlive the session (secrets come from its pool).
 *  Out:     out: the new session, freed with km_session_free; NULL on failure.
 *  In:      secret32: the 32-byte session secret; the caller still owns and
 *           wipes its copy.
 */
KM_WARN_UNUSED km_err km_session_derive(km_ctx *ctx, const unsigned char secret32[32], km_session **out)
    KM_NONNULL(1, 2, 3);

/** Wipe and free a session. NULL is accepted and ignored. */
void km_session_free(km_session *s);

/** The session auth key's BIP-340 x-only public key.
 *  Out: xonly32: 32 bytes. In: s: a derived session. */
void km_session_auth_pubkey(const km_session *s, unsigned char xonly32[32]) KM_NONNULL(1, 2);

/** The session auth key pair, for km_reqauth_sign and approval signatures.
 *  Returns: a pointer into the session's locked memory, valid until
 *           km_session_free. MUST NOT be copied to unlocked memory. */
const secp256k1_keypair *km_session_auth_keypair(const km_session *s) KM_NONNULL(1);

/** Encrypt session data (layout in the header comment).
 *
 *  The AD MUST be built with km_ad and name the purpose and ids of this blob.
 *
 *  Returns: KM_OK; KM_ERR_ARG if ad_len is 0 (an unbound blob could be
 *           replayed anywhere) or a pointer is NULL with a non-zero length;
 *           KM_ERR_RANGE if pt_len > KM_SESSION_MAX_PLAINTEXT; KM_ERR_RANDOM;
 *           KM_ERR_NOMEM; KM_ERR_CRYPTO. On failure out is empty.
 *  Out:     out: an initialized km_buf; its previous contents are wiped and
 *           replaced by the blob of pt_len + KM_SESSION_OVERHEAD bytes.
 *  In:      s: the session; ad: ad_len bytes; pt: pt_len bytes (NULL allowed
 *           when pt_len is 0).
 */
KM_WARN_UNUSED km_err km_session_seal(const km_session *s, const unsigned char *ad, size_t ad_len,
                                      const unsigned char *pt, size_t pt_len, km_buf *out) KM_NONNULL(1, 6);

/** Decrypt and authenticate session data into a caller buffer.
 *
 *  Returns: KM_OK; KM_ERR_PARSE if blob_len < KM_SESSION_OVERHEAD (or is 0);
 *           KM_ERR_UNSUPPORTED if the version byte is not 0x01;
 *           KM_ERR_RANGE if the plaintext would exceed KM_SESSION_MAX_PLAINTEXT;
 *           KM_ERR_BUFFER_SMALL if pt_cap < blob_len - KM_SESSION_OVERHEAD;
 *           KM_ERR_ARG as km_session_seal; KM_ERR_DECRYPT if the blob was
 *           altered or the key or AD differ. On any failure pt (all pt_cap
 *           bytes) is zeroed and *pt_len is 0: no unauthenticated plaintext
 *           is released.
 *  Out:     pt: pt_cap bytes (NULL allowed when pt_cap is 0); pt_len: the
 *           plaintext length.
 *  In:      s, ad, ad_len as km_session_seal; blob: blob_len bytes.
 */
KM_WARN_UNUSED km_err km_session_open(const km_session *s, const unsigned char *ad, size_t ad_len,
                                      const unsigned char *blob, size_t blob_len, unsigned char *pt,
                                      size_t pt_cap, size_t *pt_len) KM_NONNULL(1, 8);

/** Decrypt and authenticate session data into locked memory.
 *
 *  Returns: as km_session_open, plus KM_ERR_RANGE if the plaintext is empty
 *           or longer than KM_SECRET_MAX, and KM_ERR_NOMEM.
 *  Out:     out: a new secret holding the plaintext, freed with
 *           km_secret_free; NULL on failure.
 */
KM_WARN_UNUSED km_err km_session_open_secret(const km_session *s, const unsigned char *ad, size_t ad_len,
                                             const unsigned char *blob, size_t blob_len, km_secret **out)
    KM_NONNULL(1, 6);

#ifdef __cplusplus
}
#endif
#endif
