/* keymeld/attestation.h — enclave attestation documents (AWS Nitro shape).
 *
 * An attestation document is a COSE_Sign1 structure (RFC 9052), CBOR-encoded,
 * signed with ES384 (ECDSA P-384 over SHA-384) by a leaf certificate that
 * chains to a root the client pins. Its payload names the enclave image
 * (PCR measurements), the enclave's public key and a caller-chosen nonce.
 * A client MUST verify a document with km_attest_verify, against the root it
 * trusts and the PCRs it expects, before encrypting anything to the key the
 * document carries: the gateway that relays documents is untrusted.
 *
 * Production documents come from the Nitro Security Module and chain to the
 * AWS Nitro root. Local (development) enclaves use documents of the very same
 * shape made by km_attest_dev_issue under a development CA the operator
 * creates with km_attest_dev_root_create / km_attest_dev_leaf_create; one
 * verifier serves both, and trusting a development root is an explicit
 * choice of the caller.
 *
 * This module does no file I/O: certificates, keys and documents are byte
 * buffers; the caller reads and writes files.
 */
#ifndef KEYMELD_ATTESTATION_H
#define KEYMELD_ATTESTATION_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/cursor.h"
#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest document accepted, in bytes (Nitro documents are about 5 KiB). */
#define KM_ATTEST_MAX_DOC_LEN (64u * 1024u)
/** Number of PCR slots; valid indices are 0..KM_ATTEST_PCR_SLOTS-1. */
#define KM_ATTEST_PCR_SLOTS 32
/** Largest PCR value (PCRs are 32, 48 or 64 bytes; SHA-384 ones are 48). */
#define KM_ATTEST_PCR_MAX_LEN 64
/** Longest module_id, in bytes (without the terminating NUL). */
#define KM_ATTEST_MODULE_ID_MAX 255
/** Size limits of the optional payload fields (AWS Nitro documentation). */
#define KM_ATTEST_PUBLIC_KEY_MAX 1024
#define KM_ATTEST_USER_DATA_MAX  512
#define KM_ATTEST_NONCE_MAX      512
/** Most certificates accepted in the cabundle (root plus intermediates). */
#define KM_ATTEST_CABUNDLE_MAX 8
/** Value of km_attest_policy.max_age_ms that disables the freshness check. */
#define KM_ATTEST_NO_MAX_AGE UINT64_MAX
/** Largest accepted validation time (unix seconds, year 9999): keeps
 *  now * 1000 and time_t conversions exact. */
#define KM_ATTEST_MAX_TIME 253402300799ull

/** Which check a document failed. Values are stable (they may appear in logs
 *  and API errors); only append. */
typedef enum km_attest_reason {
    /** The document passed every check. */
    KM_ATTEST_OK = 0,
    /** Not strict, well-formed CBOR, or not a 4-element COSE_Sign1. */
    KM_ATTEST_MALFORMED = 1,
    /** Protected header not exactly {alg: ES384}, or unprotected header not empty. */
    KM_ATTEST_BAD_HEADER = 2,
    /** A payload field missing, duplicated, unknown, of the wrong type or size. */
    KM_ATTEST_BAD_PAYLOAD = 3,
    /** A certificate is unparsable, or the leaf key is not ECDSA P-384. */
    KM_ATTEST_BAD_CERT = 4,
    /** cabundle[0] is not byte-equal to the pinned root. */
    KM_ATTEST_ROOT_MISMATCH = 5,
    /** A certificate of the chain has expired at the validation time. */
    KM_ATTEST_CERT_EXPIRED = 6,
    /** A certificate of the chain is not yet valid at the validation time. */
    KM_ATTEST_CERT_NOT_YET_VALID = 7,
    /** The chain does not verify (signature, CA flags, order, leaf usage). */
    KM_ATTEST_CHAIN_INVALID = 8,
    /** The COSE signature does not verify under the leaf key. */
    KM_ATTEST_BAD_SIGNATURE = 9,
    /** The timestamp is more than max_age_ms before the validation time. */
    KM_ATTEST_STALE = 10,
    /** The timestamp is more than max_future_ms after the validation time. */
    KM_ATTEST_FUTURE = 11,
    /** An expected PCR is absent or differs. */
    KM_ATTEST_PCR_MISMATCH = 12,
    /** The nonce is absent or differs from the expected one. */
    KM_ATTEST_NONCE_MISMATCH = 13,
    /** public_key is absent or differs from the expected one. */
    KM_ATTEST_PUBLIC_KEY_MISMATCH = 14,
    /** The pinned root given by the caller cannot be parsed. */
    KM_ATTEST_BAD_ROOT = 15,
    /** Number of reasons; not a reason. */
    KM_ATTEST_REASON__COUNT
} km_attest_reason;

/** Describe a reason. Returns: a static English string, never NULL
 *  ("unknown reason" for values out of range). */
const char *km_attest_reason_str(km_attest_reason reason);

/** One PCR: its index and value. Used both for expectations and for issuing. */
typedef struct km_attest_pcr {
    uint32_t index;                             /**< 0..KM_ATTEST_PCR_SLOTS-1 */
    size_t len;                                 /**< 32, 48 or 64 */
    unsigned char value[KM_ATTEST_PCR_MAX_LEN]; /**< first len bytes are used */
} km_attest_pcr;

/** What the verifier demands of a document besides its signature chain.
 *  A zero-initialised policy has now = 0 and max_age_ms = 0, so it accepts
 *  nothing real: the caller MUST set the time and the freshness bound. */
typedef struct km_attest_policy {
    /** Validation time, unix seconds (<= KM_ATTEST_MAX_TIME). Certificates
     *  must be valid at this time; the timestamp is judged against it. */
    uint64_t now;
    /** The document's timestamp must be at least now*1000 - max_age_ms.
     *  KM_ATTEST_NO_MAX_AGE disables the check (only for archived documents). */
    uint64_t max_age_ms;
    /** Tolerated clock skew: timestamp must be <= now*1000 + max_future_ms. */
    uint64_t max_future_ms;
    /** PCRs that must be present with exactly these values (NULL if pcr_count 0). */
    const km_attest_pcr *pcrs;
    size_t pcr_count;
    /** If non-NULL, the document's nonce must be present and equal these
     *  nonce_len bytes (0..KM_ATTEST_NONCE_MAX). NULL: nonce not checked. */
    const unsigned char *nonce;
    size_t nonce_len;
    /** If non-NULL, the document's public_key must be present and equal these
     *  public_key_len bytes. NULL: public_key not checked. */
    const unsigned char *public_key;
    size_t public_key_len;
} km_attest_policy;

/** The verified content of a document. Allocated by km_attest_verify, freed
 *  with km_attest_doc_free. Optional byte fields that are absent or CBOR null
 *  in the document have has_* == 0 and length 0. */
typedef struct km_attest_doc {
    char module_id[KM_ATTEST_MODULE_ID_MAX + 1]; /**< NUL-terminated, printable ASCII */
    char digest[8];                              /**< always "SHA384" */
    uint64_t timestamp_ms;                       /**< unix time in milliseconds */
    /** pcr_len[i] is 0 when PCR i is absent, else 32, 48 or 64 and pcr[i]
     *  holds the value. */
    size_t pcr_len[KM_ATTEST_PCR_SLOTS];
    unsigned char pcr[KM_ATTEST_PCR_SLOTS][KM_ATTEST_PCR_MAX_LEN];
    int has_public_key;
    size_t public_key_len;
    unsigned char public_key[KM_ATTEST_PUBLIC_KEY_MAX];
    int has_user_data;
    size_t user_data_len;
    unsigned char user_data[KM_ATTEST_USER_DATA_MAX];
    int has_nonce;
    size_t nonce_len;
    unsigned char nonce[KM_ATTEST_NONCE_MAX];
} km_attest_doc;

/** Verify an attestation document and return its content.
 *
 *  Checks, all of which must pass: strict CBOR (definite lengths, shortest
 *  encodings, no trailing bytes, no floats or tags except an optional outer
 *  COSE_Sign1 tag 18); a 4-element COSE_Sign1 whose protected header is
 *  exactly {1: -35} (ES384) and whose unprotected header is empty; a payload
 *  map holding exactly the Nitro fields (module_id, digest "SHA384",
 *  timestamp, pcrs, certificate, cabundle, and optional public_key,
 *  user_data, nonce), none duplicated, none unknown; cabundle[0] byte-equal
 *  to the pinned root; the chain root -> cabundle[1..] -> certificate valid
 *  at policy->now with the pinned root as the only trust anchor, built in
 *  exactly that order; the ES384 signature over the COSE Sig_structure under
 *  the leaf's P-384 key; then the freshness bounds and the expected PCRs,
 *  nonce and public key of the policy.
 *
 *  The caller MUST pin the root itself (never take it from the document or
 *  the gateway) and MUST check the PCRs it relies on, either through policy
 *  or in the returned content.
 *
 *  Returns: KM_OK if every check passed;
 *           KM_ERR_PARSE if the document is malformed (reason MALFORMED,
 *             BAD_HEADER or BAD_PAYLOAD);
 *           KM_ERR_ATTESTATION if it fails any other check (reason names
 *             which; an unparsable certificate is BAD_CERT);
 *           KM_ERR_ARG for a bad argument: NULL doc/root/policy, doc_len 0 or
 *             above KM_ATTEST_MAX_DOC_LEN, now above KM_ATTEST_MAX_TIME, an
 *             invalid expected PCR (index >= 32, length not 32/48/64, NULL
 *             array with a count), an expected nonce longer than
 *             KM_ATTEST_NONCE_MAX, an expected public key of 0 or more than
 *             KM_ATTEST_PUBLIC_KEY_MAX bytes (reason KM_ATTEST_OK for all
 *             these), or a pinned root that cannot be parsed (reason
 *             BAD_ROOT);
 *           KM_ERR_NOMEM / KM_ERR_CRYPTO on allocation or OpenSSL failure
 *             (reason: the check being made).
 *  Out:     out: if non-NULL, on KM_OK receives a newly allocated document
 *             the caller frees with km_attest_doc_free; set to NULL on any
 *             failure (nothing partial escapes).
 *           reason: if non-NULL, receives KM_ATTEST_OK or the failed check.
 *  In:      doc: doc_len bytes, the COSE_Sign1 document (tag 18 optional).
 *           root: root_len bytes, the pinned root certificate, DER or PEM.
 *           policy: validation time, freshness and expected values.
 */
KM_WARN_UNUSED km_err km_attest_verify(const unsigned char *doc, size_t doc_len, const unsigned char *root,
                                       size_t root_len, const km_attest_policy *policy, km_attest_doc **out,
                                       km_attest_reason *reason);

/** Free a document returned by km_attest_verify. NULL is accepted. */
void km_attest_doc_free(km_attest_doc *doc);

/* ---- development CA and issuer (local enclaves) --------------------------- */

/** A certificate made by the development CA: the certificate in DER and PEM
 *  and its private key as unencrypted PKCS#8 PEM. key_pem is a SECRET: write
 *  it only to a file readable by the enclave operator; km_attest_dev_cert_free
 *  wipes it. Initialise with all-zero bytes (= {0}) or a previous free. */
typedef struct km_attest_dev_cert {
    km_buf cert_der;
    km_buf cert_pem;
    km_buf key_pem;
} km_attest_dev_cert;

/** Wipe and free the buffers of a development certificate; the structure is
 *  empty afterwards. NULL is accepted. */
void km_attest_dev_cert_free(km_attest_dev_cert *cert);

/** Create a development root CA: a fresh P-384 key and a self-signed
 *  certificate (CA:TRUE, keyCertSign) signed with ECDSA-SHA384.
 *
 *  A development root MUST NOT be trusted for production enclaves: anyone
 *  holding its key can attest any PCRs.
 *
 *  Returns: KM_OK; KM_ERR_ARG if common_name is empty or longer than 64
 *           bytes, or not_before >= not_after, or a time exceeds
 *           KM_ATTEST_MAX_TIME; KM_ERR_NOMEM / KM_ERR_CRYPTO / KM_ERR_RANDOM
 *           on failure. On failure out is empty.
 *  Out:     out: the root certificate and its key (owned by the caller,
 *           freed with km_attest_dev_cert_free). Its previous content is
 *           discarded without being freed: pass an empty structure.
 *  In:      common_name: NUL-terminated subject CN.
 *           not_before, not_after: validity period, unix seconds.
 */
KM_WARN_UNUSED km_err km_attest_dev_root_create(const char *common_name, uint64_t not_before,
                                                uint64_t not_after, km_attest_dev_cert *out) KM_NONNULL(1, 4);

/** Create a development leaf (document signing) certificate: a fresh P-384
 *  key and a certificate (CA:FALSE, digitalSignature) issued by the root.
 *
 *  Returns: KM_OK; KM_ERR_ARG as km_attest_dev_root_create, or if the root
 *           certificate or key cannot be parsed, the key does not belong to
 *           the certificate, or it is not a P-384 key; other errors as above.
 *  Out:     out: as km_attest_dev_root_create.
 *  In:      root_cert: root_cert_len bytes, the root certificate, DER or PEM.
 *           root_key_pem: root_key_pem_len bytes, the root's private key PEM.
 *           common_name, not_before, not_after: as km_attest_dev_root_create.
 */
KM_WARN_UNUSED km_err km_attest_dev_leaf_create(const unsigned char *root_cert, size_t root_cert_len,
                                                const unsigned char *root_key_pem, size_t root_key_pem_len,
                                                const char *common_name, uint64_t not_before,
                                                uint64_t not_after, km_attest_dev_cert *out)
    KM_NONNULL(1, 3, 5, 8);

/** What a development document attests. */
typedef struct km_attest_dev_params {
    const unsigned char *leaf_key_pem; /**< the leaf's private key PEM (secret) */
    size_t leaf_key_pem_len;
    const unsigned char *leaf_cert; /**< leaf certificate, DER or PEM */
    size_t leaf_cert_len;
    const unsigned char *root_cert; /**< root certificate, DER or PEM; becomes cabundle[0] */
    size_t root_cert_len;
    const char *module_id; /**< NUL-terminated, 1..255 printable ASCII bytes */
    uint64_t timestamp_ms; /**< unix time in milliseconds */
    /** 1..KM_ATTEST_PCR_SLOTS PCRs with distinct indices. In development
     *  mode PCR0 is SHA-384 of the enclave binary, computed by the caller. */
    const km_attest_pcr *pcrs;
    size_t pcr_count;
    const unsigned char *public_key; /**< NULL: encoded as null; else 1..1024 bytes */
    size_t public_key_len;
    const unsigned char *user_data; /**< NULL: null; else 0..512 bytes */
    size_t user_data_len;
    const unsigned char *nonce; /**< NULL: null; else 0..512 bytes */
    size_t nonce_len;
} km_attest_dev_params;

/** Issue a development attestation document: a COSE_Sign1 of the Nitro shape,
 *  protected header {alg: ES384}, signed by the leaf key, with
 *  cabundle = [root]. The output is what km_attest_verify accepts against
 *  that root (given a valid chain at the validation time).
 *
 *  The issuer does not check that the leaf chains to the root or is valid
 *  at timestamp_ms — the verifier does; it only checks that the key belongs
 *  to the leaf certificate.
 *
 *  Returns: KM_OK; KM_ERR_ARG for a NULL required field, a field out of its
 *           size range, duplicate or invalid PCRs, an unparsable certificate
 *           or key, a key that is not P-384 or not the leaf's;
 *           KM_ERR_NOMEM / KM_ERR_CRYPTO on failure.
 *  Out:     out: an initialised km_buf (km_buf_init) that must be empty; on
 *           KM_OK it holds the document (free with km_buf_free); on failure
 *           it stays empty.
 *  In:      params: what to attest (see km_attest_dev_params).
 */
KM_WARN_UNUSED km_err km_attest_dev_issue(const km_attest_dev_params *params, km_buf *out) KM_NONNULL(1, 2);

#ifdef __cplusplus
}
#endif
#endif
