/* cose_internal.h — strict CBOR and COSE_Sign1/ES384 helpers shared by the
 * attestation verifier and the development issuer. Not part of the public
 * API: the layout of CBOR items and OpenSSL keys stays inside libkeymeld. */
#ifndef KEYMELD_COSE_INTERNAL_H
#define KEYMELD_COSE_INTERNAL_H

#include <cbor.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "keymeld/cursor.h"
#include "keymeld/error.h"

/** COSE algorithm identifier of ES384 (ECDSA P-384 with SHA-384). */
#define KM_COSE_ALG_ES384 (-35)
/** COSE header label of "alg". */
#define KM_COSE_LABEL_ALG 1
/** Size of a raw ES384 signature: r || s, 48 bytes each. */
#define KM_COSE_ES384_SIG_LEN 96
/** Deepest nesting accepted by km_cose_cbor_check (Nitro needs 3). */
#define KM_COSE_MAX_DEPTH 8

/** Check that p[0..len) is exactly one strict CBOR item: definite lengths
 *  only, shortest-form heads, no tags, no floats or simple values other than
 *  false/true/null, nesting at most KM_COSE_MAX_DEPTH, and no trailing bytes.
 *  It also bounds every declared count by the bytes left, so libcbor never
 *  allocates more than the input justifies.
 *  Returns: KM_OK or KM_ERR_PARSE. */
KM_WARN_UNUSED km_err km_cose_cbor_check(const unsigned char *p, size_t len);

/** km_cose_cbor_check, then cbor_load of exactly len bytes.
 *  Returns: KM_OK (*out owned by caller, cbor_decref); KM_ERR_PARSE;
 *           KM_ERR_NOMEM. *out is NULL on failure. */
KM_WARN_UNUSED km_err km_cose_cbor_load(const unsigned char *p, size_t len, cbor_item_t **out);

/** Build an unsigned integer in its shortest encoding (libcbor keeps the width
 *  it was built with). Returns NULL on allocation failure. */
cbor_item_t *km_cose_cbor_uint(uint64_t v);
/** Build a byte string copying len bytes (p may be NULL when len is 0). */
cbor_item_t *km_cose_cbor_bytes(const unsigned char *p, size_t len);
/** Append item to a definite array and drop the caller's reference, also when
 *  item is NULL or the push fails. Returns 1 on success, 0 on failure. */
int km_cose_array_put(cbor_item_t *array, cbor_item_t *item);
/** Add key -> value to a definite map and drop the caller's references
 *  (also on failure / NULL). Returns 1 on success, 0 on failure. */
int km_cose_map_put(cbor_item_t *map, cbor_item_t *key, cbor_item_t *value);
/** Serialize item and append the bytes to out.
 *  Returns: KM_OK; KM_ERR_NOMEM. */
KM_WARN_UNUSED km_err km_cose_serialize(const cbor_item_t *item, km_buf *out);

/** The COSE Sig_structure of a COSE_Sign1 with empty external_aad:
 *  ["Signature1", protected, h'', payload], CBOR-encoded, appended to out.
 *  Returns: KM_OK; KM_ERR_NOMEM. */
KM_WARN_UNUSED km_err km_cose_sig_structure(const unsigned char *prot, size_t prot_len,
                                            const unsigned char *payload, size_t payload_len, km_buf *out);

/** Raw ES384 signature (r || s) of SHA-384(tbs) under a P-384 private key.
 *  Returns: KM_OK; KM_ERR_ARG if key is not P-384; KM_ERR_CRYPTO (sig zeroed). */
KM_WARN_UNUSED km_err km_cose_es384_sign(EVP_PKEY *key, const unsigned char *tbs, size_t tbs_len,
                                         unsigned char sig[KM_COSE_ES384_SIG_LEN]);

/** Verify a raw ES384 signature (sig_len MUST be 96) over SHA-384(tbs).
 *  Returns: KM_OK; KM_ERR_VERIFY if it does not verify, has the wrong length
 *           or r/s out of range; KM_ERR_ARG if key is not P-384;
 *           KM_ERR_NOMEM / KM_ERR_CRYPTO. */
KM_WARN_UNUSED km_err km_cose_es384_verify(EVP_PKEY *key, const unsigned char *tbs, size_t tbs_len,
                                           const unsigned char *sig, size_t sig_len);

/** Encode and sign a COSE_Sign1 (untagged, as the Nitro NSM emits it):
 *  [prot, {}, payload, signature] with the signature computed over the
 *  Sig_structure by key. prot is used as given (so tests can also sign
 *  headers the verifier must refuse). Appends to out.
 *  Returns: KM_OK; errors of km_cose_es384_sign; KM_ERR_NOMEM. */
KM_WARN_UNUSED km_err km_cose_sign1(EVP_PKEY *key, const unsigned char *prot, size_t prot_len,
                                    const unsigned char *payload, size_t payload_len, km_buf *out);

/** Encoded protected header {1: -35} (alg ES384), the only one accepted. */
extern const unsigned char km_cose_es384_protected[4];

/** Returns 1 if key is an EC key on P-384 (secp384r1), else 0. */
int km_cose_key_is_p384(const EVP_PKEY *key);

#endif
