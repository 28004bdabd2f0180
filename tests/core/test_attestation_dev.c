/* test_attestation_dev.c — the development CA and issuer, checked by the
 * verifier: an issued document verifies against the dev root and reports
 * what was attested; every tampering — of each payload field, of the
 * headers, of the signer (a leaf of another CA, an expired or CA leaf, a
 * non-P-384 key) and of the attested values the client expects (PCR0 of the
 * binary, nonce, enclave key, freshness) — is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cbor.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/cose_internal.h"
#include "keymeld/attestation.h"
#include "keymeld/hash.h"

#define T0    1750000000ull /* validation time of these tests */
#define HOUR  3600ull
#define DAY   86400ull
#define TS_MS (T0 * 1000 - 1500) /* document issued 1.5 s before T0 */

typedef struct dev {
    km_attest_dev_cert root, leaf;   /* the CA the client trusts */
    km_attest_dev_cert root2, leaf2; /* another CA */
    km_attest_pcr pcrs[3];
    unsigned char enclave_key[33];
    unsigned char user_data[32];
    unsigned char nonce[32];
} dev;

static const char module_id[] = "dev-enclave-0";
static const unsigned char enclave_binary[] = "pretend this is the enclave executable";

static int setup(void **state) {
    dev *d = calloc(1, sizeof *d);
    if (!d) return -1;
    if (km_attest_dev_root_create("KeyMeld dev root", T0 - DAY, T0 + 365 * DAY, &d->root) ||
        km_attest_dev_leaf_create(d->root.cert_der.data, d->root.cert_der.len, d->root.key_pem.data,
                                  d->root.key_pem.len, "enclave-0", T0 - HOUR, T0 + 3 * HOUR, &d->leaf) ||
        km_attest_dev_root_create("KeyMeld dev root", T0 - DAY, T0 + 365 * DAY, &d->root2) ||
        km_attest_dev_leaf_create(d->root2.cert_pem.data, d->root2.cert_pem.len, d->root2.key_pem.data,
                                  d->root2.key_pem.len, "enclave-0", T0 - HOUR, T0 + 3 * HOUR, &d->leaf2))
        return -1;
    /* development PCR0: SHA-384 of the enclave binary; PCR1/2 zero */
    for (uint32_t i = 0; i < 3; i++) {
        d->pcrs[i].index = i;
        d->pcrs[i].len = 48;
    }
    km_sha384(d->pcrs[0].value, enclave_binary, sizeof enclave_binary - 1);
    d->enclave_key[0] = 0x02;
    for (int i = 1; i < 33; i++)
        d->enclave_key[i] = (unsigned char)(0x40 + i);
    for (int i = 0; i < 32; i++) {
        d->user_data[i] = (unsigned char)(0xa0 + i);
        d->nonce[i] = (unsigned char)(0x10 + 3 * i);
    }
    *state = d;
    return 0;
}

static int teardown(void **state) {
    dev *d = *state;
    km_attest_dev_cert_free(&d->root);
    km_attest_dev_cert_free(&d->leaf);
    km_attest_dev_cert_free(&d->root2);
    km_attest_dev_cert_free(&d->leaf2);
    free(d);
    return 0;
}

static km_attest_dev_params params_for(const dev *d, const km_attest_dev_cert *leaf,
                                       const km_attest_dev_cert *root) {
    km_attest_dev_params p;
    memset(&p, 0, sizeof p);
    p.leaf_key_pem = leaf->key_pem.data;
    p.leaf_key_pem_len = leaf->key_pem.len;
    p.leaf_cert = leaf->cert_der.data;
    p.leaf_cert_len = leaf->cert_der.len;
    p.root_cert = root->cert_der.data;
    p.root_cert_len = root->cert_der.len;
    p.module_id = module_id;
    p.timestamp_ms = TS_MS;
    p.pcrs = d->pcrs;
    p.pcr_count = 3;
    p.public_key = d->enclave_key;
    p.public_key_len = sizeof d->enclave_key;
    p.user_data = d->user_data;
    p.user_data_len = sizeof d->user_data;
    p.nonce = d->nonce;
    p.nonce_len = sizeof d->nonce;
    return p;
}

/* The policy a client uses: time, 5-minute freshness, PCR0 of the binary it
 * built, the nonce it sent, the enclave key it was given. */
static km_attest_policy client_policy(const dev *d) {
    km_attest_policy pol;
    memset(&pol, 0, sizeof pol);
    pol.now = T0;
    pol.max_age_ms = 5 * 60 * 1000;
    pol.pcrs = d->pcrs;
    pol.pcr_count = 1;
    pol.nonce = d->nonce;
    pol.nonce_len = sizeof d->nonce;
    pol.public_key = d->enclave_key;
    pol.public_key_len = sizeof d->enclave_key;
    return pol;
}

static void issue(const km_attest_dev_params *p, km_buf *out) {
    km_buf_init(out);
    assert_int_equal(km_attest_dev_issue(p, out), KM_OK);
    assert_true(out->len > 0);
}

static km_attest_reason verify_with(const km_buf *doc, const km_attest_dev_cert *root,
                                    const km_attest_policy *pol) {
    km_attest_doc *out = (km_attest_doc *)&out;
    km_attest_reason why = KM_ATTEST_REASON__COUNT;
    km_err err =
        km_attest_verify(doc->data, doc->len, root->cert_pem.data, root->cert_pem.len, pol, &out, &why);
    if (err) {
        assert_null(out);
        assert_int_not_equal(why, KM_ATTEST_OK);
        assert_int_equal(
            err, (why == KM_ATTEST_MALFORMED || why == KM_ATTEST_BAD_HEADER || why == KM_ATTEST_BAD_PAYLOAD)
                     ? KM_ERR_PARSE
                     : KM_ERR_ATTESTATION);
    } else {
        assert_int_equal(why, KM_ATTEST_OK);
        km_attest_doc_free(out);
    }
    return why;
}

/* ---- tampering helpers (libcbor directly, as an attacker would) ---------- */

typedef struct cose_parts {
    cbor_item_t *outer;
    const unsigned char *prot, *payload, *sig;
    size_t prot_len, payload_len, sig_len;
} cose_parts;

static void split(const km_buf *doc, cose_parts *c) {
    struct cbor_load_result res;
    c->outer = cbor_load(doc->data, doc->len, &res);
    assert_non_null(c->outer);
    assert_int_equal(cbor_array_size(c->outer), 4);
    cbor_item_t **a = cbor_array_handle(c->outer);
    c->prot = cbor_bytestring_handle(a[0]);
    c->prot_len = cbor_bytestring_length(a[0]);
    c->payload = cbor_bytestring_handle(a[2]);
    c->payload_len = cbor_bytestring_length(a[2]);
    c->sig = cbor_bytestring_handle(a[3]);
    c->sig_len = cbor_bytestring_length(a[3]);
}

/* [prot, {}, payload, sig] without signing: the attacker keeps a signature. */
static void assemble(const unsigned char *prot, size_t prot_len, const unsigned char *payload,
                     size_t payload_len, const unsigned char *sig, size_t sig_len, km_buf *out) {
    km_buf_init(out);
    cbor_item_t *arr = cbor_new_definite_array(4);
    assert_non_null(arr);
    assert_true(km_cose_array_put(arr, km_cose_cbor_bytes(prot, prot_len)));
    assert_true(km_cose_array_put(arr, cbor_new_definite_map(0)));
    assert_true(km_cose_array_put(arr, km_cose_cbor_bytes(payload, payload_len)));
    assert_true(km_cose_array_put(arr, km_cose_cbor_bytes(sig, sig_len)));
    assert_int_equal(km_cose_serialize(arr, out), KM_OK);
    cbor_decref(&arr);
}

/* Sign as the legitimate leaf would (an insider with the leaf key, or a
 * buggy enclave): isolates checks that come after the signature. */
static void resign(const km_attest_dev_cert *leaf, const unsigned char *prot, size_t prot_len,
                   const unsigned char *payload, size_t payload_len, km_buf *out) {
    BIO *bio = BIO_new_mem_buf(leaf->key_pem.data, (int)leaf->key_pem.len);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    assert_non_null(key);
    km_buf_init(out);
    assert_int_equal(km_cose_sign1(key, prot, prot_len, payload, payload_len, out), KM_OK);
    EVP_PKEY_free(key);
    BIO_free(bio);
}

enum edit { EDIT_REPLACE, EDIT_REMOVE, EDIT_ADD };

/* Re-encode the payload map with the value of `key` replaced, the entry
 * removed, or an entry (key, value) appended (a duplicate if key exists).
 * value is consumed (may be NULL for EDIT_REMOVE). */
static void edit_payload(const cose_parts *c, const char *key, enum edit how, cbor_item_t *value,
                         km_buf *out) {
    struct cbor_load_result res;
    cbor_item_t *map = cbor_load(c->payload, c->payload_len, &res);
    assert_non_null(map);
    size_t n = cbor_map_size(map);
    struct cbor_pair *pairs = cbor_map_handle(map);
    cbor_item_t *copy = cbor_new_definite_map(how == EDIT_ADD ? n + 1 : how == EDIT_REMOVE ? n - 1 : n);
    assert_non_null(copy);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        int match = cbor_string_length(pairs[i].key) == strlen(key) &&
                    memcmp(cbor_string_handle(pairs[i].key), key, strlen(key)) == 0;
        found |= match;
        if (match && how == EDIT_REMOVE) continue;
        cbor_item_t *v = match && how == EDIT_REPLACE ? value : pairs[i].value;
        assert_true(cbor_map_add(copy, (struct cbor_pair){.key = pairs[i].key, .value = v}));
    }
    if (how == EDIT_ADD)
        assert_true(km_cose_map_put(copy, cbor_build_string(key), cbor_incref(value)));
    else
        assert_true(found);
    km_buf_init(out);
    assert_int_equal(km_cose_serialize(copy, out), KM_OK);
    cbor_decref(&copy);
    cbor_decref(&map);
    if (value) cbor_decref(&value);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_dev_ca_shape(void **state) {
    dev *d = *state;
    assert_memory_equal(d->root.cert_pem.data, "-----BEGIN CERTIFICATE-----", 27);
    assert_memory_equal(d->root.key_pem.data, "-----BEGIN PRIVATE KEY-----", 27);
    assert_memory_equal(d->leaf.key_pem.data, "-----BEGIN PRIVATE KEY-----", 27);
    const unsigned char *p = d->root.cert_der.data;
    X509 *root = d2i_X509(NULL, &p, (long)d->root.cert_der.len);
    p = d->leaf.cert_der.data;
    X509 *leaf = d2i_X509(NULL, &p, (long)d->leaf.cert_der.len);
    assert_non_null(root);
    assert_non_null(leaf);
    assert_true(km_cose_key_is_p384(X509_get0_pubkey(root)));
    assert_true(km_cose_key_is_p384(X509_get0_pubkey(leaf)));
    assert_int_equal(X509_check_ca(root), 1);
    assert_int_equal(X509_check_ca(leaf), 0);
    assert_int_equal(X509_check_issued(root, root), X509_V_OK); /* self-signed */
    assert_int_equal(X509_check_issued(root, leaf), X509_V_OK);
    assert_int_equal(X509_verify(leaf, X509_get0_pubkey(root)), 1);
    assert_int_equal(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA384);
    /* two roots are two keys: the leaf of one does not verify under the other */
    p = d->root2.cert_der.data;
    X509 *root2 = d2i_X509(NULL, &p, (long)d->root2.cert_der.len);
    assert_non_null(root2);
    assert_int_not_equal(X509_verify(leaf, X509_get0_pubkey(root2)), 1);
    X509_free(root2);
    X509_free(leaf);
    X509_free(root);
}

static void test_issue_and_verify(void **state) {
    dev *d = *state;
    km_attest_dev_params p = params_for(d, &d->leaf, &d->root);
    km_buf doc;
    issue(&p, &doc);
    km_attest_policy pol = client_policy(d);
    km_attest_doc *out = NULL;
    km_attest_reason why;
    assert_int_equal(
        km_attest_verify(doc.data, doc.len, d->root.cert_der.data, d->root.cert_der.len, &pol, &out, &why),
        KM_OK);
    assert_string_equal(out->module_id, module_id);
    assert_string_equal(out->digest, "SHA384");
    assert_int_equal(out->timestamp_ms, TS_MS);
    for (int i = 0; i < KM_ATTEST_PCR_SLOTS; i++)
        assert_int_equal(out->pcr_len[i], i < 3 ? 48 : 0);
    for (int i = 0; i < 3; i++)
        assert_memory_equal(out->pcr[i], d->pcrs[i].value, 48);
    assert_true(out->has_public_key && out->public_key_len == 33);
    assert_memory_equal(out->public_key, d->enclave_key, 33);
    assert_true(out->has_user_data && out->user_data_len == 32);
    assert_memory_equal(out->user_data, d->user_data, 32);
    assert_true(out->has_nonce && out->nonce_len == 32);
    assert_memory_equal(out->nonce, d->nonce, 32);
    km_attest_doc_free(out);
    /* the same against the root in PEM; and tag 18 is accepted too */
    assert_int_equal(verify_with(&doc, &d->root, &pol), KM_ATTEST_OK);
    km_buf_free(&doc);

    /* PEM certificates in, optional fields null and empty */
    p.leaf_cert = d->leaf.cert_pem.data;
    p.leaf_cert_len = d->leaf.cert_pem.len;
    p.root_cert = d->root.cert_pem.data;
    p.root_cert_len = d->root.cert_pem.len;
    p.public_key = NULL;
    p.user_data = d->user_data;
    p.user_data_len = 0;
    p.nonce = NULL;
    issue(&p, &doc);
    assert_int_equal(
        km_attest_verify(doc.data, doc.len, d->root.cert_der.data, d->root.cert_der.len, &pol, &out, &why),
        KM_ERR_ATTESTATION); /* the client expects a nonce */
    assert_int_equal(why, KM_ATTEST_NONCE_MISMATCH);
    pol.nonce = NULL;
    assert_int_equal(verify_with(&doc, &d->root, &pol), KM_ATTEST_PUBLIC_KEY_MISMATCH);
    pol.public_key = NULL;
    assert_int_equal(
        km_attest_verify(doc.data, doc.len, d->root.cert_der.data, d->root.cert_der.len, &pol, &out, &why),
        KM_OK);
    assert_int_equal(out->has_public_key, 0);
    assert_int_equal(out->has_nonce, 0);
    assert_int_equal(out->has_user_data, 1);
    assert_int_equal(out->user_data_len, 0);
    km_attest_doc_free(out);
    km_buf_free(&doc);
}

static void test_policy_mismatches(void **state) {
    dev *d = *state;
    km_attest_dev_params p = params_for(d, &d->leaf, &d->root);
    km_buf doc;
    issue(&p, &doc);
    km_attest_policy pol = client_policy(d);

    /* a different enclave binary */
    km_attest_pcr other = d->pcrs[0];
    static const unsigned char patched[] = "pretend this is the enclave executablE";
    km_sha384(other.value, patched, sizeof patched - 1);
    pol.pcrs = &other;
    assert_int_equal(verify_with(&doc, &d->root, &pol), KM_ATTEST_PCR_MISMATCH);
    pol = client_policy(d);

    /* the nonce the client sent differs (replayed document) */
    unsigned char nonce[32];
    memcpy(nonce, d->nonce, 32);
    nonce[31] ^= 1;
    pol.nonce = nonce;
    assert_int_equal(verify_with(&doc, &d->root, &pol), KM_ATTEST_NONCE_MISMATCH);
    pol = client_policy(d);

    /* the key the gateway claims for this enclave differs */
    unsigned char key[33];
    memcpy(key, d->enclave_key, 33);
    key[0] = 0x03;
    pol.public_key = key;
    assert_int_equal(verify_with(&doc, &d->root, &pol), KM_ATTEST_PUBLIC_KEY_MISMATCH);
    pol = client_policy(d);

    /* stale: max age 1 s, document 1.5 s old; from the future: 10 s skew */
    pol.max_age_ms = 1000;
    assert_int_equal(verify_with(&doc, &d->root, &pol), KM_ATTEST_STALE);
    pol.max_age_ms = 1500;
    assert_int_equal(verify_with(&doc, &d->root, &pol), KM_ATTEST_OK);
    pol = client_policy(d);
    pol.now = T0 - 10;
    assert_int_equal(verify_with(&doc, &d->root, &pol), KM_ATTEST_FUTURE);
    pol.max_future_ms = 8500;
    assert_int_equal(verify_with(&doc, &d->root, &pol), KM_ATTEST_OK);
    km_buf_free(&doc);

    /* the enclave's own stale document, minutes old */
    p.timestamp_ms = (T0 - 600) * 1000;
    issue(&p, &doc);
    pol = client_policy(d);
    assert_int_equal(verify_with(&doc, &d->root, &pol), KM_ATTEST_STALE);
    km_buf_free(&doc);
}

static void test_wrong_signers(void **state) {
    dev *d = *state;
    km_attest_policy pol = client_policy(d);
    km_buf doc;

    /* a leaf of another CA, the trusted root placed in the cabundle */
    km_attest_dev_params p = params_for(d, &d->leaf2, &d->root);
    issue(&p, &doc);
    assert_int_equal(verify_with(&doc, &d->root, &pol), KM_ATTEST_CHAIN_INVALID);
    km_buf_free(&doc);
    /* the same with its own root: not the pinned one */
    p = params_for(d, &d->leaf2, &d->root2);
    issue(&p, &doc);
    assert_int_equal(verify_with(&doc, &d->root, &pol), KM_ATTEST_ROOT_MISMATCH);
    assert_int_equal(verify_with(&doc, &d->root2, &pol), KM_ATTEST_OK); /* only its own root accepts it */
    km_buf_free(&doc);

    /* the root signing documents itself: a CA is not a document signer */
    p = params_for(d, &d->root, &d->root);
    issue(&p, &doc);
    assert_int_equal(verify_with(&doc, &d->root, &pol), KM_ATTEST_CHAIN_INVALID);
    km_buf_free(&doc);

    /* leaves outside their validity at T0 */
    km_attest_dev_cert old, young, leaf_long;
    assert_int_equal(km_attest_dev_leaf_create(d->root.cert_der.data, d->root.cert_der.len,
                                               d->root.key_pem.data, d->root.key_pem.len, "old", T0 - 3 * DAY,
                                               T0 - 2 * DAY, &old),
                     KM_OK);
    assert_int_equal(km_attest_dev_leaf_create(d->root.cert_der.data, d->root.cert_der.len,
                                               d->root.key_pem.data, d->root.key_pem.len, "young", T0 + HOUR,
                                               T0 + DAY, &young),
                     KM_OK);
    p = params_for(d, &old, &d->root);
    issue(&p, &doc);
    assert_int_equal(verify_with(&doc, &d->root, &pol), KM_ATTEST_CERT_EXPIRED);
    km_buf_free(&doc);
    p = params_for(d, &young, &d->root);
    issue(&p, &doc);
    assert_int_equal(verify_with(&doc, &d->root, &pol), KM_ATTEST_CERT_NOT_YET_VALID);
    km_buf_free(&doc);

    /* an expired root */
    km_attest_dev_cert old_root;
    assert_int_equal(km_attest_dev_root_create("old root", T0 - 10 * DAY, T0 - DAY, &old_root), KM_OK);
    assert_int_equal(km_attest_dev_leaf_create(old_root.cert_der.data, old_root.cert_der.len,
                                               old_root.key_pem.data, old_root.key_pem.len, "leaf", T0 - HOUR,
                                               T0 + HOUR, &leaf_long),
                     KM_OK);
    p = params_for(d, &leaf_long, &old_root);
    issue(&p, &doc);
    assert_int_equal(verify_with(&doc, &old_root, &pol), KM_ATTEST_CERT_EXPIRED);
    km_buf_free(&doc);
    km_attest_dev_cert_free(&leaf_long);
    km_attest_dev_cert_free(&old_root);
    km_attest_dev_cert_free(&young);
    km_attest_dev_cert_free(&old);
}

/* A P-256 leaf issued by the trusted root signs with ES256-sized keys; the
 * verifier must not accept any key but P-384 for ES384. */
static void test_leaf_not_p384(void **state) {
    dev *d = *state;
    BIO *bio = BIO_new_mem_buf(d->root.key_pem.data, (int)d->root.key_pem.len);
    EVP_PKEY *root_key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    const unsigned char *q = d->root.cert_der.data;
    X509 *root = d2i_X509(NULL, &q, (long)d->root.cert_der.len);
    EVP_PKEY *key = EVP_EC_gen("prime256v1");
    X509 *x = X509_new();
    assert_non_null(root_key);
    assert_non_null(root);
    assert_non_null(key);
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 7), 1);
    assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(T0 - HOUR)));
    assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(T0 + HOUR)));
    assert_int_equal(X509_set_subject_name(x, X509_get_subject_name(root)), 1);
    assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(root)), 1);
    assert_int_equal(X509_set_pubkey(x, key), 1);
    assert_true(X509_sign(x, root_key, EVP_sha384()) > 0);
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    assert_true(n > 0);

    /* the issuer refuses the key */
    BIO *kb = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL), 1);
    char *kpem = NULL;
    long klen = BIO_get_mem_data(kb, &kpem);
    km_attest_dev_params p = params_for(d, &d->leaf, &d->root);
    p.leaf_key_pem = (const unsigned char *)kpem;
    p.leaf_key_pem_len = (size_t)klen;
    p.leaf_cert = der;
    p.leaf_cert_len = (size_t)n;
    km_buf doc;
    km_buf_init(&doc);
    assert_int_equal(km_attest_dev_issue(&p, &doc), KM_ERR_ARG);
    assert_int_equal(doc.len, 0);

    /* a document carrying that leaf (signed by the real leaf): BAD_CERT */
    p = params_for(d, &d->leaf, &d->root);
    issue(&p, &doc);
    cose_parts c;
    split(&doc, &c);
    km_buf payload, forged;
    edit_payload(&c, "certificate", EDIT_REPLACE, km_cose_cbor_bytes(der, (size_t)n), &payload);
    resign(&d->leaf, c.prot, c.prot_len, payload.data, payload.len, &forged);
    km_attest_policy pol = client_policy(d);
    assert_int_equal(verify_with(&forged, &d->root, &pol), KM_ATTEST_BAD_CERT);
    km_buf_free(&forged);
    km_buf_free(&payload);
    cbor_decref(&c.outer);
    km_buf_free(&doc);
    BIO_free(kb);
    OPENSSL_free(der);
    X509_free(x);
    EVP_PKEY_free(key);
    X509_free(root);
    EVP_PKEY_free(root_key);
    BIO_free(bio);
}

/* Each payload field changed under the original signature: the signature
 * no longer verifies (or, for the cabundle, the root differs). */
static void test_every_field_tampered(void **state) {
    dev *d = *state;
    km_attest_dev_params p = params_for(d, &d->leaf, &d->root);
    km_buf doc;
    issue(&p, &doc);
    cose_parts c;
    split(&doc, &c);
    km_attest_policy pol = client_policy(d);
    unsigned char pcr0[48];
    memcpy(pcr0, d->pcrs[0].value, 48);
    pcr0[0] ^= 0x80;
    cbor_item_t *pcrs = cbor_new_definite_map(3);
    assert_non_null(pcrs);
    for (uint8_t i = 0; i < 3; i++)
        assert_true(km_cose_map_put(pcrs, cbor_build_uint8(i),
                                    km_cose_cbor_bytes(i == 0 ? pcr0 : d->pcrs[i].value, 48)));
    cbor_item_t *bundle = cbor_new_definite_array(1);
    assert_non_null(bundle);
    assert_true(km_cose_array_put(bundle, km_cose_cbor_bytes(d->root2.cert_der.data, d->root2.cert_der.len)));
    unsigned char key[33];
    memcpy(key, d->enclave_key, 33);
    key[32] ^= 1;
    struct {
        const char *field;
        cbor_item_t *value;
        km_attest_reason want;
    } cases[] = {
        {"module_id", cbor_build_string("dev-enclave-1"), KM_ATTEST_BAD_SIGNATURE},
        {"digest", cbor_build_string("SHA384"), KM_ATTEST_OK}, /* same value: control */
        {"timestamp", km_cose_cbor_uint(TS_MS + 1), KM_ATTEST_BAD_SIGNATURE},
        {"pcrs", pcrs, KM_ATTEST_BAD_SIGNATURE},
        {"certificate", km_cose_cbor_bytes(d->leaf2.cert_der.data, d->leaf2.cert_der.len),
         KM_ATTEST_BAD_SIGNATURE},
        {"cabundle", bundle, KM_ATTEST_ROOT_MISMATCH},
        {"public_key", km_cose_cbor_bytes(key, 33), KM_ATTEST_BAD_SIGNATURE},
        {"user_data", km_cose_cbor_bytes(d->nonce, 32), KM_ATTEST_BAD_SIGNATURE},
        {"nonce", km_cose_cbor_bytes(d->user_data, 32), KM_ATTEST_BAD_SIGNATURE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        km_buf payload, forged;
        edit_payload(&c, cases[i].field, EDIT_REPLACE, cases[i].value, &payload);
        assemble(c.prot, c.prot_len, payload.data, payload.len, c.sig, c.sig_len, &forged);
        km_attest_reason why = verify_with(&forged, &d->root, &pol);
        if (why != cases[i].want) printf("field %s: %s\n", cases[i].field, km_attest_reason_str(why));
        assert_int_equal(why, cases[i].want);
        km_buf_free(&forged);
        km_buf_free(&payload);
    }
    /* the signature bound to another document (same leaf, other payload) */
    km_buf other, forged;
    p.nonce = d->user_data;
    issue(&p, &other);
    cose_parts c2;
    split(&other, &c2);
    assemble(c.prot, c.prot_len, c.payload, c.payload_len, c2.sig, c2.sig_len, &forged);
    assert_int_equal(verify_with(&forged, &d->root, &pol), KM_ATTEST_BAD_SIGNATURE);
    km_buf_free(&forged);
    /* untouched reassembly still verifies: the helpers change only what they say */
    assemble(c.prot, c.prot_len, c.payload, c.payload_len, c.sig, c.sig_len, &forged);
    assert_int_equal(forged.len, doc.len);
    assert_memory_equal(forged.data, doc.data, doc.len);
    assert_int_equal(verify_with(&forged, &d->root, &pol), KM_ATTEST_OK);
    km_buf_free(&forged);
    cbor_decref(&c2.outer);
    km_buf_free(&other);
    cbor_decref(&c.outer);
    km_buf_free(&doc);
}

/* Payloads the legitimate leaf signed but that break the format: the
 * verifier's parsing rules hold even for authentic documents. */
static void test_malformed_signed_payloads(void **state) {
    dev *d = *state;
    km_attest_dev_params p = params_for(d, &d->leaf, &d->root);
    km_buf doc;
    issue(&p, &doc);
    cose_parts c;
    split(&doc, &c);
    km_attest_policy pol = client_policy(d);
    pol.pcr_count = 0;
    pol.nonce = NULL;
    pol.public_key = NULL;
    static const char *const fields[] = {"module_id", "digest",     "timestamp", "pcrs", "certificate",
                                         "cabundle",  "public_key", "user_data", "nonce"};
    static const unsigned char zeros[KM_ATTEST_PUBLIC_KEY_MAX + 1];
    size_t run = 0;
    /* mandatory fields removed; optional ones removed are fine */
    for (size_t i = 0; i < 9; i++) {
        km_buf payload, forged;
        edit_payload(&c, fields[i], EDIT_REMOVE, NULL, &payload);
        resign(&d->leaf, c.prot, c.prot_len, payload.data, payload.len, &forged);
        assert_int_equal(verify_with(&forged, &d->root, &pol), i < 6 ? KM_ATTEST_BAD_PAYLOAD : KM_ATTEST_OK);
        km_buf_free(&forged);
        km_buf_free(&payload);
        run++;
    }
    /* every field duplicated (same value), and an unknown field */
    for (size_t i = 0; i <= 9; i++) {
        km_buf payload, forged;
        const char *f = i < 9 ? fields[i] : "debug";
        edit_payload(&c, f, EDIT_ADD, cbor_new_null(), &payload);
        resign(&d->leaf, c.prot, c.prot_len, payload.data, payload.len, &forged);
        assert_int_equal(verify_with(&forged, &d->root, &pol), KM_ATTEST_BAD_PAYLOAD);
        km_buf_free(&forged);
        km_buf_free(&payload);
        run++;
    }
    /* wrong types and sizes */
    cbor_item_t *pcr_big_index = cbor_new_definite_map(1);
    assert_true(km_cose_map_put(pcr_big_index, cbor_build_uint8(32), km_cose_cbor_bytes(zeros, 48)));
    cbor_item_t *pcr_short = cbor_new_definite_map(1);
    assert_true(km_cose_map_put(pcr_short, cbor_build_uint8(0), km_cose_cbor_bytes(zeros, 47)));
    cbor_item_t *pcr_text_key = cbor_new_definite_map(1);
    assert_true(km_cose_map_put(pcr_text_key, cbor_build_string("0"), km_cose_cbor_bytes(zeros, 48)));
    cbor_item_t *pcr_empty = cbor_new_definite_map(0);
    cbor_item_t *pcr_dup = cbor_new_definite_map(2);
    assert_true(km_cose_map_put(pcr_dup, cbor_build_uint8(0), km_cose_cbor_bytes(zeros, 48)));
    assert_true(km_cose_map_put(pcr_dup, cbor_build_uint8(0), km_cose_cbor_bytes(zeros, 48)));
    cbor_item_t *bundle_empty = cbor_new_definite_array(0);
    cbor_item_t *bundle_text = cbor_new_definite_array(1);
    assert_true(km_cose_array_put(bundle_text, cbor_build_string("root")));
    cbor_item_t *neg_ts = cbor_build_negint8(0);
    struct {
        const char *field;
        cbor_item_t *value;
        km_attest_reason want;
    } cases[] = {
        {"module_id", km_cose_cbor_bytes((const unsigned char *)"dev", 3), KM_ATTEST_BAD_PAYLOAD},
        {"module_id", cbor_build_string(""), KM_ATTEST_BAD_PAYLOAD},
        {"module_id", cbor_build_string("dev\nenclave"), KM_ATTEST_BAD_PAYLOAD},
        {"digest", cbor_build_string("SHA256"), KM_ATTEST_BAD_PAYLOAD},
        {"digest", cbor_build_string("sha384"), KM_ATTEST_BAD_PAYLOAD},
        {"timestamp", neg_ts, KM_ATTEST_BAD_PAYLOAD},
        {"timestamp", cbor_build_string("1750000000000"), KM_ATTEST_BAD_PAYLOAD},
        {"pcrs", pcr_big_index, KM_ATTEST_BAD_PAYLOAD},
        {"pcrs", pcr_short, KM_ATTEST_BAD_PAYLOAD},
        {"pcrs", pcr_text_key, KM_ATTEST_BAD_PAYLOAD},
        {"pcrs", pcr_empty, KM_ATTEST_BAD_PAYLOAD},
        {"pcrs", pcr_dup, KM_ATTEST_BAD_PAYLOAD},
        {"certificate", cbor_new_null(), KM_ATTEST_BAD_PAYLOAD},
        {"certificate", km_cose_cbor_bytes(zeros, 0), KM_ATTEST_BAD_PAYLOAD},
        {"certificate", km_cose_cbor_bytes(zeros, 100), KM_ATTEST_BAD_CERT},
        {"cabundle", bundle_empty, KM_ATTEST_BAD_PAYLOAD},
        {"cabundle", bundle_text, KM_ATTEST_BAD_PAYLOAD},
        {"cabundle", km_cose_cbor_bytes(d->root.cert_der.data, d->root.cert_der.len), KM_ATTEST_BAD_PAYLOAD},
        {"public_key", km_cose_cbor_bytes(zeros, 0), KM_ATTEST_BAD_PAYLOAD},
        {"public_key", km_cose_cbor_bytes(zeros, KM_ATTEST_PUBLIC_KEY_MAX + 1), KM_ATTEST_BAD_PAYLOAD},
        {"public_key", cbor_build_string("02ab"), KM_ATTEST_BAD_PAYLOAD},
        {"user_data", km_cose_cbor_bytes(zeros, KM_ATTEST_USER_DATA_MAX + 1), KM_ATTEST_BAD_PAYLOAD},
        {"nonce", km_cose_cbor_bytes(zeros, KM_ATTEST_NONCE_MAX + 1), KM_ATTEST_BAD_PAYLOAD},
        {"nonce", cbor_build_bool(false), KM_ATTEST_BAD_PAYLOAD},
        {"nonce", km_cose_cbor_bytes(zeros, KM_ATTEST_NONCE_MAX), KM_ATTEST_OK}, /* limit itself is fine */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        km_buf payload, forged;
        assert_non_null(cases[i].value);
        edit_payload(&c, cases[i].field, EDIT_REPLACE, cases[i].value, &payload);
        resign(&d->leaf, c.prot, c.prot_len, payload.data, payload.len, &forged);
        km_attest_reason why = verify_with(&forged, &d->root, &pol);
        if (why != cases[i].want) printf("case %zu (%s): %s\n", i, cases[i].field, km_attest_reason_str(why));
        assert_int_equal(why, cases[i].want);
        km_buf_free(&forged);
        km_buf_free(&payload);
        run++;
    }
    /* the payload not a map; a float; an indefinite-length payload map */
    static const unsigned char not_map[] = {0x80};
    static const unsigned char a_float[] = {0xfa, 0x3f, 0x80, 0x00, 0x00};
    static const unsigned char indefinite[] = {0xbf, 0xff};
    const unsigned char *const raw[] = {not_map, a_float, indefinite};
    const size_t raw_len[] = {sizeof not_map, sizeof a_float, sizeof indefinite};
    for (size_t i = 0; i < 3; i++) {
        km_buf forged;
        resign(&d->leaf, c.prot, c.prot_len, raw[i], raw_len[i], &forged);
        assert_int_equal(verify_with(&forged, &d->root, &pol), KM_ATTEST_BAD_PAYLOAD);
        km_buf_free(&forged);
        run++;
    }
    printf("signed malformed payloads: %zu cases run\n", run);
    cbor_decref(&c.outer);
    km_buf_free(&doc);
}

static void test_protected_header_variants(void **state) {
    dev *d = *state;
    km_attest_dev_params p = params_for(d, &d->leaf, &d->root);
    km_buf doc;
    issue(&p, &doc);
    cose_parts c;
    split(&doc, &c);
    km_attest_policy pol = client_policy(d);
    static const unsigned char es256[] = {0xa1, 0x01, 0x26};       /* {1: -7} */
    static const unsigned char es512[] = {0xa1, 0x01, 0x38, 0x23}; /* {1: -36} */
    static const unsigned char text_alg[] = {0xa1, 0x01, 0x65, 'E', 'S', '3', '8', '4'};
    static const unsigned char empty[] = {0xa0};                                    /* {} */
    static const unsigned char crit[] = {0xa2, 0x01, 0x38, 0x22, 0x02, 0x81, 0x01}; /* + crit */
    static const unsigned char kid[] = {0xa2, 0x01, 0x38, 0x22, 0x04, 0x41, 0x00};  /* + kid */
    static const unsigned char dup[] = {0xa2, 0x01, 0x38, 0x22, 0x01, 0x38, 0x22};  /* alg twice */
    static const unsigned char long_alg[] = {0xa1, 0x01, 0x39, 0x00, 0x22};         /* -35 long form */
    static const unsigned char array[] = {0x82, 0x01, 0x38, 0x22};
    const unsigned char *const hdr[] = {es256, es512, text_alg, empty, crit, kid, dup, long_alg, array};
    const size_t hdr_len[] = {sizeof es256, sizeof es512, sizeof text_alg, sizeof empty, sizeof crit,
                              sizeof kid,   sizeof dup,   sizeof long_alg, sizeof array};
    for (size_t i = 0; i < sizeof hdr / sizeof hdr[0]; i++) {
        km_buf forged;
        resign(&d->leaf, hdr[i], hdr_len[i], c.payload, c.payload_len, &forged);
        assert_int_equal(verify_with(&forged, &d->root, &pol), KM_ATTEST_BAD_HEADER);
        km_buf_free(&forged);
    }
    /* the empty protected header as a zero-length string */
    km_buf forged;
    resign(&d->leaf, empty, 0, c.payload, c.payload_len, &forged);
    assert_int_equal(verify_with(&forged, &d->root, &pol), KM_ATTEST_BAD_HEADER);
    km_buf_free(&forged);
    /* re-signing the original header verifies: the loop tests only headers */
    resign(&d->leaf, c.prot, c.prot_len, c.payload, c.payload_len, &forged);
    assert_int_equal(verify_with(&forged, &d->root, &pol), KM_ATTEST_OK);
    km_buf_free(&forged);
    cbor_decref(&c.outer);
    km_buf_free(&doc);
}

static void test_dev_bad_arguments(void **state) {
    dev *d = *state;
    km_attest_dev_cert out;
    assert_int_equal(km_attest_dev_root_create("", T0, T0 + DAY, &out), KM_ERR_ARG);
    assert_null(out.cert_der.data);
    assert_int_equal(km_attest_dev_root_create("x", T0, T0, &out), KM_ERR_ARG);
    assert_int_equal(km_attest_dev_root_create("x", T0, KM_ATTEST_MAX_TIME + 1, &out), KM_ERR_ARG);
    char longname[80];
    memset(longname, 'a', sizeof longname - 1);
    longname[79] = 0;
    assert_int_equal(km_attest_dev_root_create(longname, T0, T0 + DAY, &out), KM_ERR_ARG);
    /* leaf: key of another root, garbage root */
    assert_int_equal(km_attest_dev_leaf_create(d->root.cert_der.data, d->root.cert_der.len,
                                               d->root2.key_pem.data, d->root2.key_pem.len, "x", T0, T0 + DAY,
                                               &out),
                     KM_ERR_ARG);
    assert_null(out.key_pem.data);
    assert_int_equal(km_attest_dev_leaf_create((const unsigned char *)"junk", 4, d->root.key_pem.data,
                                               d->root.key_pem.len, "x", T0, T0 + DAY, &out),
                     KM_ERR_ARG);

    km_buf doc;
    km_buf_init(&doc);
    km_attest_dev_params p = params_for(d, &d->leaf, &d->root);
    p.leaf_key_pem = d->leaf2.key_pem.data; /* key not the leaf's */
    p.leaf_key_pem_len = d->leaf2.key_pem.len;
    assert_int_equal(km_attest_dev_issue(&p, &doc), KM_ERR_ARG);
    p = params_for(d, &d->leaf, &d->root);
    p.module_id = "";
    assert_int_equal(km_attest_dev_issue(&p, &doc), KM_ERR_ARG);
    p = params_for(d, &d->leaf, &d->root);
    p.pcr_count = 0;
    assert_int_equal(km_attest_dev_issue(&p, &doc), KM_ERR_ARG);
    km_attest_pcr dup[2] = {d->pcrs[0], d->pcrs[0]};
    p.pcrs = dup;
    p.pcr_count = 2;
    assert_int_equal(km_attest_dev_issue(&p, &doc), KM_ERR_ARG);
    p = params_for(d, &d->leaf, &d->root);
    p.nonce_len = KM_ATTEST_NONCE_MAX + 1;
    assert_int_equal(km_attest_dev_issue(&p, &doc), KM_ERR_ARG);
    p = params_for(d, &d->leaf, &d->root);
    p.public_key_len = 0;
    assert_int_equal(km_attest_dev_issue(&p, &doc), KM_ERR_ARG);
    assert_int_equal(doc.len, 0);
    assert_null(doc.data);
    /* a non-empty output buffer is refused rather than appended to */
    p = params_for(d, &d->leaf, &d->root);
    assert_int_equal(km_buf_put(&doc, "x", 1), KM_OK);
    assert_int_equal(km_attest_dev_issue(&p, &doc), KM_ERR_ARG);
    assert_int_equal(doc.len, 1);
    km_buf_free(&doc);
    km_attest_dev_cert_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dev_ca_shape),
        cmocka_unit_test(test_issue_and_verify),
        cmocka_unit_test(test_policy_mismatches),
        cmocka_unit_test(test_wrong_signers),
        cmocka_unit_test(test_leaf_not_p384),
        cmocka_unit_test(test_every_field_tampered),
        cmocka_unit_test(test_malformed_signed_payloads),
        cmocka_unit_test(test_protected_header_variants),
        cmocka_unit_test(test_dev_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
