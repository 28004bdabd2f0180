/* attestation_verify.c — the one verifier for Nitro and development
 * attestation documents.
 *
 * Order of work: parse everything strictly (bounded, before any crypto), then
 * authenticate (pinned root, COSE signature, certificate chain), and only
 * then judge the content (freshness, PCRs, nonce, key). Content is never
 * looked at as trustworthy before the signature and chain hold, and nothing
 * partial is returned on failure.
 */
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "core/attestation_internal.h"
#include "core/cose_internal.h"
#include "keymeld/attestation.h"
#include "keymeld/secret.h"

static const char *const reason_text[KM_ATTEST_REASON__COUNT] = {
    [KM_ATTEST_OK] = "ok",
    [KM_ATTEST_MALFORMED] = "document is not a strict CBOR COSE_Sign1",
    [KM_ATTEST_BAD_HEADER] = "COSE header is not exactly alg ES384",
    [KM_ATTEST_BAD_PAYLOAD] = "payload field missing, duplicated, unknown or malformed",
    [KM_ATTEST_BAD_CERT] = "certificate unparsable or leaf key not ECDSA P-384",
    [KM_ATTEST_ROOT_MISMATCH] = "cabundle root differs from the pinned root",
    [KM_ATTEST_CERT_EXPIRED] = "certificate expired at the validation time",
    [KM_ATTEST_CERT_NOT_YET_VALID] = "certificate not yet valid at the validation time",
    [KM_ATTEST_CHAIN_INVALID] = "certificate chain does not verify",
    [KM_ATTEST_BAD_SIGNATURE] = "COSE signature does not verify",
    [KM_ATTEST_STALE] = "document timestamp too old",
    [KM_ATTEST_FUTURE] = "document timestamp in the future",
    [KM_ATTEST_PCR_MISMATCH] = "PCR differs from the expected value",
    [KM_ATTEST_NONCE_MISMATCH] = "nonce differs from the expected value",
    [KM_ATTEST_PUBLIC_KEY_MISMATCH] = "public key differs from the expected value",
    [KM_ATTEST_BAD_ROOT] = "pinned root certificate cannot be parsed",
};

const char *km_attest_reason_str(km_attest_reason reason) {
    if ((unsigned)reason >= KM_ATTEST_REASON__COUNT) return "unknown reason";
    return reason_text[reason];
}

void km_attest_doc_free(km_attest_doc *doc) {
    free(doc);
}

/* ---- payload parsing ------------------------------------------------------ */

enum field {
    F_MODULE_ID,
    F_DIGEST,
    F_TIMESTAMP,
    F_PCRS,
    F_CERTIFICATE,
    F_CABUNDLE,
    F_PUBLIC_KEY,
    F_USER_DATA,
    F_NONCE,
    F__COUNT
};

static const char *const field_name[F__COUNT] = {"module_id",  "digest",      "timestamp",
                                                 "pcrs",       "certificate", "cabundle",
                                                 "public_key", "user_data",   "nonce"};

/* What the payload says, as views into the loaded CBOR (valid while it is). */
typedef struct payload {
    const unsigned char *cert;
    size_t cert_len;
    const unsigned char *bundle[KM_ATTEST_CABUNDLE_MAX];
    size_t bundle_len[KM_ATTEST_CABUNDLE_MAX];
    size_t bundle_count;
} payload;

static int get_bytes(const cbor_item_t *it, const unsigned char **p, size_t *len) {
    if (!cbor_isa_bytestring(it) || !cbor_bytestring_is_definite(it)) return 0;
    *len = cbor_bytestring_length(it);
    *p = cbor_bytestring_handle(it);
    return *len == 0 || *p != NULL;
}

static int text_equals(const cbor_item_t *it, const char *s) {
    size_t n = strlen(s);
    if (!cbor_isa_string(it) || !cbor_string_is_definite(it) || cbor_string_length(it) != n) return 0;
    return n == 0 || memcmp(cbor_string_handle(it), s, n) == 0;
}

/* Optional byte field: a byte string of min..max bytes, or null (= absent). */
static int get_optional(const cbor_item_t *it, size_t min, size_t max, unsigned char *dst, size_t *dst_len,
                        int *has) {
    const unsigned char *p;
    size_t n;
    if (cbor_is_null(it)) return 1;
    if (!get_bytes(it, &p, &n) || n < min || n > max) return 0;
    if (n) memcpy(dst, p, n);
    *dst_len = n;
    *has = 1;
    return 1;
}

static int parse_module_id(const cbor_item_t *it, km_attest_doc *doc) {
    if (!cbor_isa_string(it) || !cbor_string_is_definite(it)) return 0;
    size_t n = cbor_string_length(it);
    const unsigned char *p = cbor_string_handle(it);
    if (n == 0 || n > KM_ATTEST_MODULE_ID_MAX || !p) return 0;
    /* Printable ASCII only: module ids end up in logs and UIs, where control
     * bytes or invalid UTF-8 could forge lines. */
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] > 0x7e) return 0;
    memcpy(doc->module_id, p, n);
    doc->module_id[n] = '\0';
    return 1;
}

static int parse_pcrs(const cbor_item_t *it, km_attest_doc *doc) {
    if (!cbor_isa_map(it) || !cbor_map_is_definite(it)) return 0;
    size_t n = cbor_map_size(it);
    if (n == 0 || n > KM_ATTEST_PCR_SLOTS) return 0;
    struct cbor_pair *pairs = cbor_map_handle(it);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p;
        size_t len;
        if (!cbor_isa_uint(pairs[i].key)) return 0;
        uint64_t idx = cbor_get_int(pairs[i].key);
        if (idx >= KM_ATTEST_PCR_SLOTS || doc->pcr_len[idx] != 0) return 0; /* range, duplicate */
        if (!get_bytes(pairs[i].value, &p, &len) || (len != 32 && len != 48 && len != 64)) return 0;
        memcpy(doc->pcr[idx], p, len);
        doc->pcr_len[idx] = len;
    }
    return 1;
}

static int parse_cabundle(const cbor_item_t *it, payload *pl) {
    if (!cbor_isa_array(it) || !cbor_array_is_definite(it)) return 0;
    size_t n = cbor_array_size(it);
    if (n == 0 || n > KM_ATTEST_CABUNDLE_MAX) return 0;
    cbor_item_t **items = cbor_array_handle(it);
    for (size_t i = 0; i < n; i++)
        if (!get_bytes(items[i], &pl->bundle[i], &pl->bundle_len[i]) || pl->bundle_len[i] == 0) return 0;
    pl->bundle_count = n;
    return 1;
}

static int parse_field(enum field f, const cbor_item_t *v, km_attest_doc *doc, payload *pl) {
    switch (f) {
    case F_MODULE_ID:
        return parse_module_id(v, doc);
    case F_DIGEST:
        /* The only digest Nitro defines; anything else means PCRs we would
         * compare against values of another hash. */
        if (!text_equals(v, "SHA384")) return 0;
        memcpy(doc->digest, "SHA384", 7);
        return 1;
    case F_TIMESTAMP:
        if (!cbor_isa_uint(v)) return 0;
        doc->timestamp_ms = cbor_get_int(v);
        return 1;
    case F_PCRS:
        return parse_pcrs(v, doc);
    case F_CERTIFICATE:
        return get_bytes(v, &pl->cert, &pl->cert_len) && pl->cert_len > 0;
    case F_CABUNDLE:
        return parse_cabundle(v, pl);
    case F_PUBLIC_KEY:
        return get_optional(v, 1, KM_ATTEST_PUBLIC_KEY_MAX, doc->public_key, &doc->public_key_len,
                            &doc->has_public_key);
    case F_USER_DATA:
        return get_optional(v, 0, KM_ATTEST_USER_DATA_MAX, doc->user_data, &doc->user_data_len,
                            &doc->has_user_data);
    default:
        return get_optional(v, 0, KM_ATTEST_NONCE_MAX, doc->nonce, &doc->nonce_len, &doc->has_nonce);
    }
}

/* The payload map must hold each mandatory field once, optional ones at most
 * once, and nothing else: an unknown field is content nobody checked. */
static km_attest_reason parse_payload(const cbor_item_t *map, km_attest_doc *doc, payload *pl) {
    if (!cbor_isa_map(map) || !cbor_map_is_definite(map)) return KM_ATTEST_BAD_PAYLOAD;
    size_t n = cbor_map_size(map);
    struct cbor_pair *pairs = cbor_map_handle(map);
    unsigned seen = 0;
    for (size_t i = 0; i < n; i++) {
        enum field f = F__COUNT;
        for (int k = 0; k < F__COUNT && f == F__COUNT; k++)
            if (text_equals(pairs[i].key, field_name[k])) f = (enum field)k;
        if (f == F__COUNT || (seen & (1u << f))) return KM_ATTEST_BAD_PAYLOAD;
        seen |= 1u << f;
        if (!parse_field(f, pairs[i].value, doc, pl)) return KM_ATTEST_BAD_PAYLOAD;
    }
    const unsigned mandatory = (1u << F_MODULE_ID) | (1u << F_DIGEST) | (1u << F_TIMESTAMP) | (1u << F_PCRS) |
                               (1u << F_CERTIFICATE) | (1u << F_CABUNDLE);
    return (seen & mandatory) == mandatory ? KM_ATTEST_OK : KM_ATTEST_BAD_PAYLOAD;
}

/* Protected header: exactly {1: -35}. Extra parameters (crit, kid, ...) are
 * refused rather than ignored: a "crit" we skip would be a check we skip. */
static km_attest_reason check_protected(const unsigned char *p, size_t len, km_err *err) {
    cbor_item_t *h = NULL;
    *err = km_cose_cbor_load(p, len, &h);
    if (*err) return KM_ATTEST_BAD_HEADER;
    km_attest_reason r = KM_ATTEST_BAD_HEADER;
    if (cbor_isa_map(h) && cbor_map_is_definite(h) && cbor_map_size(h) == 1) {
        struct cbor_pair *pr = cbor_map_handle(h);
        if (cbor_isa_uint(pr[0].key) && cbor_get_int(pr[0].key) == KM_COSE_LABEL_ALG &&
            cbor_isa_negint(pr[0].value) && cbor_get_int(pr[0].value) == (uint64_t)(-1 - KM_COSE_ALG_ES384))
            r = KM_ATTEST_OK;
    }
    cbor_decref(&h);
    return r;
}

/* ---- certificate chain ---------------------------------------------------- */

static km_attest_reason map_x509_error(int e) {
    switch (e) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return KM_ATTEST_CERT_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return KM_ATTEST_CERT_NOT_YET_VALID;
    default:
        return KM_ATTEST_CHAIN_INVALID;
    }
}

/* Verify root -> bundle[1..] -> leaf at time now, the pinned root being the
 * only trust anchor, and demand that OpenSSL built exactly that chain: no
 * skipped or reordered bundle entries, so what was signed is what was used. */
static km_attest_reason verify_chain(X509 *root, X509 *leaf, const payload *pl, uint64_t now, km_err *err) {
    km_attest_reason r = KM_ATTEST_CHAIN_INVALID;
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *inter = sk_X509_new_null();
    *err = KM_ERR_NOMEM;
    if (!store || !ctx || !inter || X509_STORE_add_cert(store, root) != 1) goto done;
    for (size_t i = 1; i < pl->bundle_count; i++) {
        X509 *x = km_attest_x509_parse(pl->bundle[i], pl->bundle_len[i]);
        if (!x) {
            *err = KM_OK;
            r = KM_ATTEST_BAD_CERT;
            goto done;
        }
        if (!sk_X509_push(inter, x)) {
            X509_free(x);
            goto done;
        }
    }
    if (X509_STORE_CTX_init(ctx, store, leaf, inter) != 1) goto done;
    *err = KM_OK;
    X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_time(vp, (time_t)now);
    X509_VERIFY_PARAM_set_depth(vp, KM_ATTEST_CABUNDLE_MAX);
    /* Not X509_V_FLAG_X509_STRICT: real Nitro leaves carry no Authority Key
     * Identifier, which strict mode demands. Signatures, validity, CA flags
     * and path length are checked either way. */
    if (X509_verify_cert(ctx) != 1) {
        r = map_x509_error(X509_STORE_CTX_get_error(ctx));
        goto done;
    }
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
    size_t n = pl->bundle_count; /* leaf + (n - 1) intermediates + root */
    if (!chain || (size_t)sk_X509_num(chain) != n + 1) goto done;
    if (X509_cmp(sk_X509_value(chain, 0), leaf) != 0) goto done;
    for (size_t k = 1; k < n; k++)
        if (X509_cmp(sk_X509_value(chain, (int)k), sk_X509_value(inter, (int)(n - 1 - k))) != 0) goto done;
    if (X509_cmp(sk_X509_value(chain, (int)n), root) != 0) goto done;
    /* The leaf signs documents; it must not be a CA, and if it restricts its
     * key usage, digitalSignature must be allowed. */
    if (X509_check_ca(leaf) != 0 || !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE)) goto done;
    r = KM_ATTEST_OK;
done:
    sk_X509_pop_free(inter, X509_free);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    return r;
}

/* ---- policy --------------------------------------------------------------- */

static int policy_valid(const km_attest_policy *pol) {
    if (pol->now > KM_ATTEST_MAX_TIME) return 0;
    if (pol->pcr_count > 0 && !pol->pcrs) return 0;
    if (pol->pcr_count > KM_ATTEST_PCR_SLOTS) return 0;
    for (size_t i = 0; i < pol->pcr_count; i++) {
        const km_attest_pcr *e = &pol->pcrs[i];
        if (e->index >= KM_ATTEST_PCR_SLOTS || (e->len != 32 && e->len != 48 && e->len != 64)) return 0;
    }
    if (pol->nonce && pol->nonce_len > KM_ATTEST_NONCE_MAX) return 0;
    if (pol->public_key && (pol->public_key_len == 0 || pol->public_key_len > KM_ATTEST_PUBLIC_KEY_MAX))
        return 0;
    return 1;
}

static km_attest_reason check_policy(const km_attest_doc *doc, const km_attest_policy *pol) {
    uint64_t now_ms = pol->now * 1000u; /* exact: now <= KM_ATTEST_MAX_TIME */
    if (doc->timestamp_ms > now_ms) {
        if (doc->timestamp_ms - now_ms > pol->max_future_ms) return KM_ATTEST_FUTURE;
    } else if (pol->max_age_ms != KM_ATTEST_NO_MAX_AGE && now_ms - doc->timestamp_ms > pol->max_age_ms) {
        return KM_ATTEST_STALE;
    }
    for (size_t i = 0; i < pol->pcr_count; i++) {
        const km_attest_pcr *e = &pol->pcrs[i];
        if (doc->pcr_len[e->index] != e->len || memcmp(doc->pcr[e->index], e->value, e->len) != 0)
            return KM_ATTEST_PCR_MISMATCH;
    }
    if (pol->nonce && (!doc->has_nonce || doc->nonce_len != pol->nonce_len ||
                       !km_ct_equal(doc->nonce, pol->nonce, pol->nonce_len)))
        return KM_ATTEST_NONCE_MISMATCH;
    if (pol->public_key && (!doc->has_public_key || doc->public_key_len != pol->public_key_len ||
                            memcmp(doc->public_key, pol->public_key, pol->public_key_len) != 0))
        return KM_ATTEST_PUBLIC_KEY_MISMATCH;
    return KM_ATTEST_OK;
}

/* ---- the verifier --------------------------------------------------------- */

static km_err err_for(km_attest_reason r) {
    switch (r) {
    case KM_ATTEST_OK:
        return KM_OK;
    case KM_ATTEST_MALFORMED:
    case KM_ATTEST_BAD_HEADER:
    case KM_ATTEST_BAD_PAYLOAD:
        return KM_ERR_PARSE;
    case KM_ATTEST_BAD_ROOT:
        return KM_ERR_ARG;
    default:
        return KM_ERR_ATTESTATION;
    }
}

/* Everything acquired during one verification, released in one place. */
typedef struct verify_state {
    cbor_item_t *outer;
    cbor_item_t *body;
    X509 *root;
    X509 *leaf;
    EVP_PKEY *leaf_key; /* borrowed from leaf */
    km_buf root_der;
    km_buf tbs;
    km_attest_doc *doc;
    payload pl;
} verify_state;

/* Returns the reason; *err is set only for failures that are not a verdict
 * on the document (allocation, OpenSSL internals). */
static km_attest_reason verify_doc(verify_state *st, const unsigned char *doc, size_t doc_len,
                                   const km_attest_policy *pol, km_err *err) {
    km_attest_reason r;
    *err = KM_OK;
    /* An optional COSE_Sign1 tag (18, one byte 0xd2 in shortest form); the
     * strict scan refuses every other tag. */
    if (doc[0] == 0xd2) {
        doc++;
        doc_len--;
    }
    km_err e = km_cose_cbor_load(doc, doc_len, &st->outer);
    if (e) {
        if (e == KM_ERR_NOMEM) *err = e;
        return KM_ATTEST_MALFORMED;
    }
    if (!cbor_isa_array(st->outer) || !cbor_array_is_definite(st->outer) || cbor_array_size(st->outer) != 4)
        return KM_ATTEST_MALFORMED;
    cbor_item_t **parts = cbor_array_handle(st->outer);
    const unsigned char *prot, *body, *sig;
    size_t prot_len, body_len, sig_len;
    if (!get_bytes(parts[0], &prot, &prot_len) || !cbor_isa_map(parts[1]) ||
        !get_bytes(parts[2], &body, &body_len) || !get_bytes(parts[3], &sig, &sig_len))
        return KM_ATTEST_MALFORMED;
    /* Unprotected parameters are not signed: accept none rather than risk a
     * caller reading one. */
    if (cbor_map_size(parts[1]) != 0) return KM_ATTEST_BAD_HEADER;
    r = check_protected(prot, prot_len, &e);
    if (e == KM_ERR_NOMEM) *err = e;
    if (r) return r;
    e = km_cose_cbor_load(body, body_len, &st->body);
    if (e) {
        if (e == KM_ERR_NOMEM) *err = e;
        return KM_ATTEST_BAD_PAYLOAD;
    }
    r = parse_payload(st->body, st->doc, &st->pl);
    if (r) return r;

    /* Authenticate. Cheap checks first: a forged document should cost one
     * memcmp or one ECDSA verification, not a chain build. */
    st->leaf = km_attest_x509_parse(st->pl.cert, st->pl.cert_len);
    if (!st->leaf) return KM_ATTEST_BAD_CERT;
    st->leaf_key = X509_get0_pubkey(st->leaf);
    if (!km_cose_key_is_p384(st->leaf_key)) return KM_ATTEST_BAD_CERT;
    if (st->pl.bundle_len[0] != st->root_der.len ||
        memcmp(st->pl.bundle[0], st->root_der.data, st->root_der.len) != 0)
        return KM_ATTEST_ROOT_MISMATCH;
    if ((*err = km_cose_sig_structure(prot, prot_len, body, body_len, &st->tbs))) return KM_ATTEST_MALFORMED;
    e = km_cose_es384_verify(st->leaf_key, st->tbs.data, st->tbs.len, sig, sig_len);
    if (e == KM_ERR_VERIFY) return KM_ATTEST_BAD_SIGNATURE;
    if (e) {
        *err = e;
        return KM_ATTEST_BAD_SIGNATURE;
    }
    r = verify_chain(st->root, st->leaf, &st->pl, pol->now, err);
    if (r || *err) return r;

    /* Authentic; now judge the content against the caller's expectations. */
    return check_policy(st->doc, pol);
}

km_err km_attest_verify(const unsigned char *doc, size_t doc_len, const unsigned char *root, size_t root_len,
                        const km_attest_policy *policy, km_attest_doc **out, km_attest_reason *reason) {
    if (out) *out = NULL;
    if (reason) *reason = KM_ATTEST_OK;
    if (!doc || doc_len == 0 || doc_len > KM_ATTEST_MAX_DOC_LEN || !root || !policy || !policy_valid(policy))
        return KM_ERR_ARG;

    verify_state st;
    memset(&st, 0, sizeof st);
    km_buf_init(&st.root_der);
    km_buf_init(&st.tbs);
    km_err err = KM_OK;
    km_attest_reason r;
    st.root = km_attest_x509_parse(root, root_len);
    if (!st.root) {
        r = KM_ATTEST_BAD_ROOT;
    } else if ((err = km_attest_x509_der(st.root, &st.root_der))) {
        r = KM_ATTEST_BAD_ROOT;
    } else if (!(st.doc = calloc(1, sizeof *st.doc))) {
        err = KM_ERR_NOMEM;
        r = KM_ATTEST_MALFORMED;
    } else {
        r = verify_doc(&st, doc, doc_len, policy, &err);
    }
    if (!err) err = err_for(r);
    if (err == KM_OK && out) {
        *out = st.doc;
        st.doc = NULL;
    }
    if (reason) *reason = r;
    free(st.doc);
    km_buf_free(&st.tbs);
    km_buf_free(&st.root_der);
    X509_free(st.leaf);
    X509_free(st.root);
    if (st.body) cbor_decref(&st.body);
    if (st.outer) cbor_decref(&st.outer);
    return err;
}
