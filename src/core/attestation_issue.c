/* attestation_issue.c — development CA and development attestation documents.
 *
 * Local enclaves have no Nitro Security Module, so they prove themselves with
 * documents of the Nitro shape signed by a CA the operator creates. The
 * verifier treats them exactly like Nitro documents; the only difference is
 * which root the client chose to pin. Everything here produces bytes for the
 * caller to store: no files, no global state.
 */
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "core/attestation_internal.h"
#include "core/cose_internal.h"
#include "keymeld/aead.h"
#include "keymeld/attestation.h"

#define DEV_CN_MAX 64
#define DEV_ORG    "KeyMeld development (not for production)"

void km_attest_dev_cert_free(km_attest_dev_cert *cert) {
    if (!cert) return;
    km_buf_free(&cert->cert_der);
    km_buf_free(&cert->cert_pem);
    km_buf_free(&cert->key_pem); /* wipes the private key */
}

static int valid_name_and_times(const char *cn, uint64_t not_before, uint64_t not_after) {
    size_t n = strlen(cn);
    return n > 0 && n <= DEV_CN_MAX && not_before < not_after && not_after <= KM_ATTEST_MAX_TIME;
}

/* Copy everything written to a memory BIO into out. */
static km_err bio_to_buf(BIO *bio, km_buf *out) {
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n <= 0 || !data) return KM_ERR_CRYPTO;
    return km_buf_put(out, data, (size_t)n);
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    int ok = ext && X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/* A random positive 127-bit serial: unique per certificate without state. */
static km_err set_serial(X509 *cert) {
    unsigned char raw[16];
    km_err err = km_random_bytes(raw, sizeof raw);
    if (err) return err;
    raw[0] = (unsigned char)((raw[0] & 0x7f) | 0x40); /* positive, never zero */
    BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
    int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
    BN_free(bn);
    return ok ? KM_OK : KM_ERR_CRYPTO;
}

/* Make a certificate for subject_key, issued by issuer (NULL: self-signed
 * with subject_key), and write certificate and subject key into out. */
static km_err make_cert(const char *cn, uint64_t not_before, uint64_t not_after, EVP_PKEY *subject_key,
                        X509 *issuer, EVP_PKEY *issuer_key, km_attest_dev_cert *out) {
    km_err err = KM_ERR_CRYPTO;
    X509 *cert = X509_new();
    X509_NAME *name = X509_NAME_new();
    BIO *pem = BIO_new(BIO_s_mem());
    /* Secure-memory BIO: its buffer is cleansed when freed, so the PEM form
     * of the private key leaves no copy behind in the heap. */
    BIO *key = BIO_new(BIO_s_secmem());
    int ca = issuer == NULL;
    if (!cert || !name || !pem || !key) {
        err = KM_ERR_NOMEM;
        goto done;
    }
    if (X509_set_version(cert, X509_VERSION_3) != 1) goto done;
    if ((err = set_serial(cert))) goto done;
    err = KM_ERR_CRYPTO;
    if (!ASN1_TIME_set(X509_getm_notBefore(cert), (time_t)not_before) ||
        !ASN1_TIME_set(X509_getm_notAfter(cert), (time_t)not_after))
        goto done;
    if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)DEV_ORG, -1, -1, 0) !=
            1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1 ||
        X509_set_subject_name(cert, name) != 1 ||
        X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name) != 1 ||
        X509_set_pubkey(cert, subject_key) != 1)
        goto done;
    X509 *iss = issuer ? issuer : cert;
    if (!add_ext(cert, iss, NID_basic_constraints, ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE") ||
        !add_ext(cert, iss, NID_key_usage,
                 ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature") ||
        !add_ext(cert, iss, NID_subject_key_identifier, "hash") ||
        (!ca && !add_ext(cert, iss, NID_authority_key_identifier, "keyid:always")))
        goto done;
    if (X509_sign(cert, issuer ? issuer_key : subject_key, EVP_sha384()) <= 0) goto done;
    if (PEM_write_bio_X509(pem, cert) != 1 ||
        PEM_write_bio_PrivateKey(key, subject_key, NULL, NULL, 0, NULL, NULL) != 1)
        goto done;
    if ((err = km_attest_x509_der(cert, &out->cert_der)) || (err = bio_to_buf(pem, &out->cert_pem)) ||
        (err = bio_to_buf(key, &out->key_pem)))
        goto done;
    err = KM_OK;
done:
    if (err) km_attest_dev_cert_free(out);
    BIO_free(key);
    BIO_free(pem);
    X509_NAME_free(name);
    X509_free(cert);
    ERR_clear_error();
    return err;
}

km_err km_attest_dev_root_create(const char *common_name, uint64_t not_before, uint64_t not_after,
                                 km_attest_dev_cert *out) {
    memset(out, 0, sizeof *out);
    if (!valid_name_and_times(common_name, not_before, not_after)) return KM_ERR_ARG;
    EVP_PKEY *key = EVP_EC_gen("secp384r1");
    if (!key) {
        ERR_clear_error();
        return KM_ERR_CRYPTO;
    }
    km_err err = make_cert(common_name, not_before, not_after, key, NULL, NULL, out);
    EVP_PKEY_free(key);
    return err;
}

km_err km_attest_dev_leaf_create(const unsigned char *root_cert, size_t root_cert_len,
                                 const unsigned char *root_key_pem, size_t root_key_pem_len,
                                 const char *common_name, uint64_t not_before, uint64_t not_after,
                                 km_attest_dev_cert *out) {
    memset(out, 0, sizeof *out);
    if (!valid_name_and_times(common_name, not_before, not_after)) return KM_ERR_ARG;
    km_err err = KM_ERR_ARG;
    EVP_PKEY *leaf_key = NULL;
    X509 *root = km_attest_x509_parse(root_cert, root_cert_len);
    EVP_PKEY *root_key = km_attest_key_parse_pem(root_key_pem, root_key_pem_len);
    if (!root || !root_key || !km_cose_key_is_p384(root_key) || X509_check_private_key(root, root_key) != 1)
        goto done;
    err = KM_ERR_CRYPTO;
    if (!(leaf_key = EVP_EC_gen("secp384r1"))) goto done;
    err = make_cert(common_name, not_before, not_after, leaf_key, root, root_key, out);
done:
    EVP_PKEY_free(leaf_key);
    EVP_PKEY_free(root_key);
    X509_free(root);
    ERR_clear_error();
    return err;
}

/* ---- documents ------------------------------------------------------------ */

static int valid_params(const km_attest_dev_params *p) {
    if (!p->leaf_key_pem || !p->leaf_cert || !p->root_cert || !p->module_id) return 0;
    size_t n = strlen(p->module_id);
    if (n == 0 || n > KM_ATTEST_MODULE_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p->module_id[i] < 0x20 || (unsigned char)p->module_id[i] > 0x7e) return 0;
    if (!p->pcrs || p->pcr_count == 0 || p->pcr_count > KM_ATTEST_PCR_SLOTS) return 0;
    uint32_t seen = 0;
    for (size_t i = 0; i < p->pcr_count; i++) {
        const km_attest_pcr *e = &p->pcrs[i];
        if (e->index >= KM_ATTEST_PCR_SLOTS || (seen >> e->index) & 1u) return 0;
        if (e->len != 32 && e->len != 48 && e->len != 64) return 0;
        seen |= 1u << e->index;
    }
    if (p->public_key && (p->public_key_len == 0 || p->public_key_len > KM_ATTEST_PUBLIC_KEY_MAX)) return 0;
    if (p->user_data && p->user_data_len > KM_ATTEST_USER_DATA_MAX) return 0;
    if (p->nonce && p->nonce_len > KM_ATTEST_NONCE_MAX) return 0;
    return 1;
}

static cbor_item_t *optional_bytes(const unsigned char *p, size_t len) {
    return p ? km_cose_cbor_bytes(p, len) : cbor_new_null();
}

/* The payload map, fields in the order the Nitro NSM writes them and PCRs
 * by ascending index, so a development document reads like a real one. */
static km_err build_payload(const km_attest_dev_params *p, const km_buf *leaf_der, const km_buf *root_der,
                            km_buf *out) {
    cbor_item_t *map = cbor_new_definite_map(9);
    cbor_item_t *pcrs = cbor_new_definite_map(p->pcr_count);
    cbor_item_t *bundle = cbor_new_definite_array(1);
    int ok = map && pcrs && bundle;
    for (uint32_t idx = 0; ok && idx < KM_ATTEST_PCR_SLOTS; idx++)
        for (size_t i = 0; ok && i < p->pcr_count; i++)
            if (p->pcrs[i].index == idx)
                ok = km_cose_map_put(pcrs, km_cose_cbor_uint(idx),
                                     km_cose_cbor_bytes(p->pcrs[i].value, p->pcrs[i].len));
    ok = ok && km_cose_array_put(bundle, km_cose_cbor_bytes(root_der->data, root_der->len));
    ok = ok &&
         km_cose_map_put(map, cbor_build_string("module_id"),
                         cbor_build_stringn(p->module_id, strlen(p->module_id))) &&
         km_cose_map_put(map, cbor_build_string("digest"), cbor_build_string("SHA384")) &&
         km_cose_map_put(map, cbor_build_string("timestamp"), km_cose_cbor_uint(p->timestamp_ms)) &&
         km_cose_map_put(map, cbor_build_string("pcrs"), cbor_incref(pcrs));
    ok = ok && km_cose_map_put(map, cbor_build_string("certificate"),
                               km_cose_cbor_bytes(leaf_der->data, leaf_der->len));
    ok = ok && km_cose_map_put(map, cbor_build_string("cabundle"), cbor_incref(bundle));
    ok = ok &&
         km_cose_map_put(map, cbor_build_string("public_key"),
                         optional_bytes(p->public_key, p->public_key_len)) &&
         km_cose_map_put(map, cbor_build_string("user_data"),
                         optional_bytes(p->user_data, p->user_data_len)) &&
         km_cose_map_put(map, cbor_build_string("nonce"), optional_bytes(p->nonce, p->nonce_len));
    km_err err = ok ? km_cose_serialize(map, out) : KM_ERR_NOMEM;
    if (bundle) cbor_decref(&bundle);
    if (pcrs) cbor_decref(&pcrs);
    if (map) cbor_decref(&map);
    return err;
}

km_err km_attest_dev_issue(const km_attest_dev_params *params, km_buf *out) {
    if (out->len != 0 || out->failed || !valid_params(params)) return KM_ERR_ARG;
    km_err err = KM_ERR_ARG;
    km_buf leaf_der, root_der, payload, doc;
    km_buf_init(&leaf_der);
    km_buf_init(&root_der);
    km_buf_init(&payload);
    km_buf_init(&doc);
    X509 *leaf = km_attest_x509_parse(params->leaf_cert, params->leaf_cert_len);
    X509 *root = km_attest_x509_parse(params->root_cert, params->root_cert_len);
    EVP_PKEY *key = km_attest_key_parse_pem(params->leaf_key_pem, params->leaf_key_pem_len);
    if (!leaf || !root || !key || !km_cose_key_is_p384(key) || X509_check_private_key(leaf, key) != 1)
        goto done;
    if ((err = km_attest_x509_der(leaf, &leaf_der)) || (err = km_attest_x509_der(root, &root_der))) goto done;
    if ((err = build_payload(params, &leaf_der, &root_der, &payload))) goto done;
    if ((err = km_cose_sign1(key, km_cose_es384_protected, sizeof km_cose_es384_protected, payload.data,
                             payload.len, &doc)))
        goto done;
    *out = doc;
    km_buf_init(&doc);
done:
    km_buf_free(&doc);
    km_buf_free(&payload);
    km_buf_free(&root_der);
    km_buf_free(&leaf_der);
    EVP_PKEY_free(key);
    X509_free(root);
    X509_free(leaf);
    ERR_clear_error();
    return err;
}
