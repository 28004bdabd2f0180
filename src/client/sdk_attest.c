/* client/sdk_attest.c — verify enclaves before anything is encrypted to
 * them. The gateway relays the attestation document and names the enclave
 * key; neither is believed: the document must chain to a root the caller
 * pinned, carry the pinned PCRs and this call's fresh nonce, be recent, and
 * bind exactly the key the gateway lists (a gateway that substitutes its own
 * key cannot produce a document for it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/sdk_internal.h"
#include "keymeld/aead.h"
#include "keymeld/hex.h"

/* Freshness bounds of a document: two minutes old at most, one minute of
 * clock skew into the future. */
#define SDK_ATTEST_MAX_AGE_MS    120000u
#define SDK_ATTEST_MAX_FUTURE_MS 60000u

static const sdk_root *root_for(const km_sdk *sdk, uint32_t id) {
    const sdk_root *any = NULL;
    for (size_t i = 0; i < sdk->n_roots; i++) {
        if (sdk->roots[i].enclave_id == id) return &sdk->roots[i];
        if (sdk->roots[i].enclave_id == UINT32_MAX) any = &sdk->roots[i];
    }
    return any;
}

static void forget(km_sdk *sdk, uint32_t id) {
    for (size_t i = 0; i < sdk->n_verified; i++)
        if (sdk->verified[i].enclave_id == id) {
            sdk->verified[i] = sdk->verified[--sdk->n_verified];
            return;
        }
}

static km_err remember(km_sdk *sdk, uint32_t id, const unsigned char pub[33]) {
    for (size_t i = 0; i < sdk->n_verified; i++)
        if (sdk->verified[i].enclave_id == id) {
            memcpy(sdk->verified[i].pub, pub, 33);
            return KM_OK;
        }
    sdk_verified *v = realloc(sdk->verified, (sdk->n_verified + 1) * sizeof *v);
    if (!v) return KM_ERR_NOMEM;
    sdk->verified = v;
    v[sdk->n_verified].enclave_id = id;
    memcpy(v[sdk->n_verified].pub, pub, 33);
    sdk->n_verified++;
    return KM_OK;
}

km_err km_sdk_verify_enclave(km_sdk *sdk, uint32_t enclave_id, unsigned char pubkey33[33]) {
    if (pubkey33) memset(pubkey33, 0, 33);
    if (!sdk) return KM_ERR_ARG;
    /* Whatever was verified before no longer counts if this check fails. */
    forget(sdk, enclave_id);
    const sdk_root *root = root_for(sdk, enclave_id);
    if (!root)
        return sdk_fail(sdk, KM_ERR_NOT_FOUND, "enclave %u: no attestation root trusted for it", enclave_id);

    unsigned char nonce[32], listed[33];
    char nonce_hex[65], target[128];
    km_client_response r = {0};
    km_buf doc;
    km_buf_init(&doc);
    km_err err = km_random_bytes(nonce, sizeof nonce);
    if (err) return sdk_fail(sdk, err, "enclave %u: no randomness for the nonce", enclave_id);
    if (km_hex_encode(nonce_hex, sizeof nonce_hex, nonce, sizeof nonce) != KM_OK)
        return sdk_fail(sdk, KM_ERR_ARG, "nonce encoding");
    snprintf(target, sizeof target, "/api/v1/enclaves/%u?nonce=%s", enclave_id, nonce_hex);
    err = sdk_call(sdk, "GET", target, NULL, NULL, &r);
    if (err) goto out;
    if (r.status != 200) {
        err = sdk_http_fail(sdk, &r, "attestation");
        goto out;
    }
    const json_t *idj = json_object_get(r.json, "enclave_id");
    if (!json_is_integer(idj) || json_integer_value(idj) != (json_int_t)enclave_id ||
        sdk_get_hex_fixed(r.json, "public_key", listed, 33) != KM_OK ||
        sdk_get_hex(r.json, "attestation_document", &doc) != KM_OK) {
        err = sdk_fail(sdk, KM_ERR_ATTESTATION,
                       "enclave %u: the gateway's answer lacks the enclave id, key or attestation document",
                       enclave_id);
        goto out;
    }
    km_attest_policy pol = {.now = (uint64_t)time(NULL),
                            .max_age_ms = SDK_ATTEST_MAX_AGE_MS,
                            .max_future_ms = SDK_ATTEST_MAX_FUTURE_MS,
                            .pcrs = sdk->n_pcrs ? sdk->pcrs : NULL,
                            .pcr_count = sdk->n_pcrs,
                            .nonce = nonce,
                            .nonce_len = sizeof nonce,
                            .public_key = listed,
                            .public_key_len = sizeof listed};
    km_attest_reason why = KM_ATTEST_OK;
    err = km_attest_verify(doc.data, doc.len, root->der, root->len, &pol, NULL, &why);
    if (err) {
        err = sdk_fail(sdk, KM_ERR_ATTESTATION, "enclave %u: attestation refused: %s", enclave_id,
                       why == KM_ATTEST_PUBLIC_KEY_MISMATCH
                           ? "the document binds another key than the gateway lists (substituted key)"
                           : km_attest_reason_str(why));
        goto out;
    }
    err = remember(sdk, enclave_id, listed);
    if (err) {
        sdk_fail(sdk, err, "out of memory");
        goto out;
    }
    if (pubkey33) memcpy(pubkey33, listed, 33);
    sdk->err[0] = '\0';
out:
    km_client_response_clear(&r);
    km_buf_free(&doc);
    return err;
}

km_err km_sdk_verify_enclaves(km_sdk *sdk, size_t *n) {
    if (n) *n = 0;
    if (!sdk || !n) return KM_ERR_ARG;
    km_client_response r = {0};
    km_err err = sdk_call(sdk, "GET", "/api/v1/enclaves", NULL, NULL, &r);
    if (err) return err;
    if (r.status != 200) {
        err = sdk_http_fail(sdk, &r, "list enclaves");
        km_client_response_clear(&r);
        return err;
    }
    const json_t *list = json_object_get(r.json, "enclaves");
    if (!json_is_array(list) || json_array_size(list) == 0) {
        km_client_response_clear(&r);
        return sdk_fail(sdk, KM_ERR_STATE, "list enclaves: the gateway lists no enclave");
    }
    size_t count = json_array_size(list);
    uint32_t *ids = calloc(count, sizeof *ids);
    if (!ids) {
        km_client_response_clear(&r);
        return sdk_fail(sdk, KM_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; !err && i < count; i++) {
        const json_t *id = json_object_get(json_array_get(list, i), "enclave_id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= (json_int_t)UINT32_MAX)
            err = sdk_fail(sdk, KM_ERR_PARSE, "list enclaves: malformed enclave id");
        else
            ids[i] = (uint32_t)json_integer_value(id);
    }
    km_client_response_clear(&r);
    /* Verify every one even after a failure, so that the good ones are
     * usable; report the first failure (its text is restored at the end). */
    km_err first = err;
    char first_text[sizeof sdk->err];
    memcpy(first_text, sdk->err, sizeof first_text);
    for (size_t i = 0; !err && i < count; i++) {
        km_err e = km_sdk_verify_enclave(sdk, ids[i], NULL);
        if (!e) (*n)++;
        if (e && !first) {
            first = e;
            memcpy(first_text, sdk->err, sizeof first_text);
        }
    }
    free(ids);
    memcpy(sdk->err, first_text, sizeof first_text);
    return first;
}
