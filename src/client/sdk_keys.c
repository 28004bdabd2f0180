/* client/sdk_keys.c — single-signer keys (docs/API.md 6, docs/PROTOCOL.md
 * 5.4): import into a verified enclave, sign (the signature is verified
 * against the imported key before it is returned), delete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/sdk_internal.h"
#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/musig.h"
#include "keymeld/single.h"

/* The body of a km_buf holding key_id|id2|u32 len|blob...: the blob. */
static km_err blob_of(const km_buf *cmd, const unsigned char **blob, uint32_t *len) {
    km_cursor c;
    const unsigned char *skip;
    km_cursor_init(&c, cmd->data, cmd->len);
    km_err err = km_cursor_get_view(&c, &skip, 32);
    if (!err) err = km_cursor_get_u32(&c, len);
    if (!err) err = km_cursor_get_view(&c, blob, *len);
    return err;
}

km_err km_sdk_key_import(km_sdk *sdk, const km_uuid *key_id, const km_uuid *user_id,
                         const unsigned char seckey[32], const unsigned char auth_seckey[32],
                         int require_approval, uint32_t *enclave_id) {
    if (enclave_id) *enclave_id = 0;
    if (!sdk) return KM_ERR_ARG;
    if (!key_id || !user_id || !seckey || !auth_seckey)
        return sdk_fail(sdk, KM_ERR_ARG, "key import: NULL argument");
    unsigned char pub[33], auth_x[32], listed[33];
    if (km_single_pubkey(sdk->ctx, pub, seckey) != KM_OK ||
        km_single_xonly_pubkey(sdk->ctx, auth_x, auth_seckey) != KM_OK)
        return sdk_fail(sdk, KM_ERR_INVALID_KEY, "key import: invalid secret key or auth key");
    uint8_t flags = require_approval ? KM_KEY_FLAG_REQUIRE_APPROVAL : 0;

    km_client_response r = {0};
    json_t *body = json_pack("{s:o,s:o}", "key_id", sdk_uuidj(key_id), "user_id", sdk_uuidj(user_id));
    if (!body) return sdk_fail(sdk, KM_ERR_NOMEM, "out of memory");
    km_err err = sdk_call(sdk, "POST", "/api/v1/keys/reserve", body, NULL, &r);
    json_decref(body);
    if (err) return err;
    if (r.status != 200) {
        err = sdk_http_fail(sdk, &r, "key reserve");
        km_client_response_clear(&r);
        return KM_ERR_STATE;
    }
    const json_t *idj = json_object_get(r.json, "enclave_id");
    json_int_t eid = json_integer_value(idj);
    err = (!json_is_integer(idj) || eid < 0 || eid >= (json_int_t)UINT32_MAX ||
           sdk_get_hex_fixed(r.json, "enclave_public_key", listed, 33) != KM_OK)
              ? KM_ERR_STATE
              : KM_OK;
    km_client_response_clear(&r);
    if (err) return sdk_fail(sdk, err, "key reserve: malformed answer");
    const unsigned char *verified = sdk_verified_key(sdk, (uint32_t)eid);
    /* The key goes only to an enclave this handle attested, under the key
     * it attested: a gateway naming another key is refused. */
    if (!verified)
        return sdk_fail(sdk, KM_ERR_STATE, "key import: enclave %u is not verified by this handle",
                        (unsigned)eid);
    if (memcmp(verified, listed, 33))
        return sdk_fail(sdk, KM_ERR_STATE,
                        "key import: the gateway names another key for enclave %u than the attested one",
                        (unsigned)eid);

    unsigned char digest[32];
    uint32_t eid32 = (uint32_t)eid;
    const void *parts[7] = {key_id->b, user_id->b, pub, auth_x, &flags, verified, &eid32};
    const size_t lens[7] = {16, 16, 33, 32, 1, 33, sizeof eid32};
    km_sha256_parts(digest, parts, lens, 7);
    const sdk_body *cached = sdk_body_find(sdk, SDK_BODY_IMPORT, key_id->b, digest);
    if (!cached) {
        km_key_import imp;
        memcpy(imp.seckey, seckey, 32);
        memcpy(imp.auth_pub, auth_x, 32);
        imp.flags = flags;
        km_buf cmd;
        km_buf_init(&cmd);
        err = km_key_import_build(sdk->ctx, verified, key_id, user_id, &imp, &cmd);
        km_wipe(&imp, sizeof imp);
        const unsigned char *blob = NULL;
        uint32_t blen = 0;
        char *text = NULL;
        if (!err) err = blob_of(&cmd, &blob, &blen);
        if (!err) {
            body = json_pack("{s:o,s:o,s:I,s:o,s:o}", "key_id", sdk_uuidj(key_id), "user_id",
                             sdk_uuidj(user_id), "enclave_id", (json_int_t)eid, "blob", sdk_hexj(blob, blen),
                             "auth_key", sdk_hexj(auth_x, 32));
            if (!body || !(text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER))) err = KM_ERR_NOMEM;
            json_decref(body);
        }
        km_buf_free(&cmd);
        if (!err) err = sdk_body_put(sdk, SDK_BODY_IMPORT, key_id->b, digest, text, strlen(text));
        free(text);
        if (err) return sdk_fail(sdk, err, "key import: building the request: %s", km_strerror(err));
        cached = sdk_body_find(sdk, SDK_BODY_IMPORT, key_id->b, digest);
    }
    secp256k1_keypair kp;
    err = sdk_keypair(sdk->ctx, &kp, auth_seckey);
    if (!err) err = sdk_post(sdk, "/api/v1/keys/import", cached->body, cached->len, &kp, &r);
    km_wipe(&kp, sizeof kp);
    if (!err && r.status != 201) err = sdk_http_fail(sdk, &r, "key import");
    if (err == KM_ERR_NOT_FOUND) err = KM_ERR_STATE;
    km_client_response_clear(&r);
    if (err) return err;
    if (enclave_id) *enclave_id = eid32;
    sdk->err[0] = '\0';
    return KM_OK;
}

/* Where a key lives, as the gateway says; the enclave must be verified. */
static km_err key_enclave(km_sdk *sdk, const km_uuid *key_id, const km_uuid *user_id,
                          const secp256k1_keypair *kp, const unsigned char **pub) {
    char uid[37], kid[37], target[128];
    km_uuid_format(uid, user_id);
    km_uuid_format(kid, key_id);
    snprintf(target, sizeof target, "/api/v1/keys/%s/%s", uid, kid);
    km_client_response r = {0};
    km_err err = sdk_call(sdk, "GET", target, NULL, kp, &r);
    if (err) return err;
    if (r.status != 200) {
        err = sdk_http_fail(sdk, &r, "key lookup");
        km_client_response_clear(&r);
        return err;
    }
    const json_t *idj = json_object_get(r.json, "enclave_id");
    json_int_t eid = json_is_integer(idj) ? json_integer_value(idj) : -1;
    km_client_response_clear(&r);
    if (eid < 0 || eid >= (json_int_t)UINT32_MAX)
        return sdk_fail(sdk, KM_ERR_STATE, "key lookup: malformed answer");
    *pub = sdk_verified_key(sdk, (uint32_t)eid);
    if (!*pub)
        return sdk_fail(sdk, KM_ERR_STATE, "key sign: enclave %u is not verified by this handle",
                        (unsigned)eid);
    return KM_OK;
}

km_err km_sdk_key_sign(km_sdk *sdk, const km_uuid *key_id, const km_uuid *user_id,
                       const unsigned char pubkey33[33], const unsigned char auth_seckey[32], int algo,
                       const unsigned char *msg, size_t msg_len, int with_approval, unsigned timeout_s,
                       unsigned char sig64[64]) {
    if (sig64) memset(sig64, 0, 64);
    if (!sdk) return KM_ERR_ARG;
    if (!key_id || !user_id || !pubkey33 || !auth_seckey || !sig64 || (!msg && msg_len))
        return sdk_fail(sdk, KM_ERR_ARG, "key sign: NULL argument");
    if (algo != KM_KEY_ALGO_SCHNORR && algo != KM_KEY_ALGO_ECDSA)
        return sdk_fail(sdk, KM_ERR_ARG, "key sign: unknown algorithm %d", algo);
    if ((algo == KM_KEY_ALGO_ECDSA && msg_len != 32) || msg_len > KM_KEY_MSG_MAX)
        return sdk_fail(sdk, KM_ERR_RANGE, "key sign: ECDSA signs a 32-byte digest, Schnorr 0..%d bytes",
                        KM_KEY_MSG_MAX);
    if (km_musig_pubkey_check(sdk->ctx, pubkey33) != KM_OK)
        return sdk_fail(sdk, KM_ERR_INVALID_POINT, "key sign: invalid public key");

    secp256k1_keypair kp;
    km_err err = sdk_keypair(sdk->ctx, &kp, auth_seckey);
    if (err) return sdk_fail(sdk, err, "key sign: invalid auth key");
    const unsigned char *enclave_pub = NULL;
    km_uuid request_id;
    unsigned char response_key[32], approval[64], digest[32];
    km_buf cmd, sealed;
    km_buf_init(&cmd);
    km_buf_init(&sealed);
    km_client_response r = {0};
    json_t *body = NULL;
    if ((err = key_enclave(sdk, key_id, user_id, &kp, &enclave_pub)) != KM_OK) goto out;
    err = km_uuid_v7(&request_id, sdk_unix_ms());
    if (!err) err = km_random_bytes(response_key, sizeof response_key);
    if (!err && with_approval) {
        km_key_approval_digest(digest, key_id, &request_id, (uint8_t)algo, msg, msg_len);
        err = km_single_schnorr_sign(sdk->ctx, approval, digest, 32, auth_seckey);
    }
    if (err) {
        sdk_fail(sdk, err, "key sign: %s", km_strerror(err));
        goto out;
    }
    km_key_sign_req req = {.algo = (uint8_t)algo,
                           .timestamp = (uint64_t)time(NULL),
                           .msg = msg,
                           .msg_len = msg_len,
                           .response_key = response_key};
    err = km_key_sign_build(sdk->ctx, enclave_pub, key_id, &request_id, &req, with_approval ? approval : NULL,
                            &cmd);
    const unsigned char *blob = NULL;
    uint32_t blen = 0;
    if (!err) err = blob_of(&cmd, &blob, &blen);
    if (!err) {
        unsigned tmo = timeout_s < 1 ? 1 : timeout_s > 86400 ? 86400 : timeout_s;
        body = json_pack("{s:o,s:o,s:o,s:o,s:I}", "request_id", sdk_uuidj(&request_id), "key_id",
                         sdk_uuidj(key_id), "user_id", sdk_uuidj(user_id), "blob", sdk_hexj(blob, blen),
                         "timeout_secs", (json_int_t)tmo);
        if (!body ||
            (with_approval && json_object_set_new(body, "approval_signature", sdk_hexj(approval, 64))))
            err = KM_ERR_NOMEM;
    }
    if (err) {
        sdk_fail(sdk, err, "key sign: building the request: %s", km_strerror(err));
        goto out;
    }
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text) {
        err = sdk_fail(sdk, KM_ERR_NOMEM, "out of memory");
        goto out;
    }
    err = sdk_post(sdk, "/api/v1/sign/single", text, strlen(text), &kp, &r);
    free(text);
    if (!err && r.status != 202) err = sdk_http_fail(sdk, &r, "key sign");
    if (err) goto out;

    char rid[37], base[128];
    km_uuid_format(rid, &request_id);
    snprintf(base, sizeof base, "/api/v1/sign/single/%s", rid);
    int failed = 0;
    err = sdk_poll(sdk, base, &kp, timeout_s, &r, &failed);
    if (err) goto out;
    if (failed) {
        const char *why = json_string_value(json_object_get(r.json, "reason"));
        err = sdk_fail(sdk, KM_ERR_STATE, "key sign failed: %s", why ? why : "(no reason given)");
        goto out;
    }
    if (sdk_get_hex(r.json, "result", &sealed) != KM_OK) {
        err = sdk_fail(sdk, KM_ERR_PARSE, "key sign completed without a readable result");
        goto out;
    }
    err = km_key_sign_result_open(sdk->ctx, response_key, key_id, &request_id, (uint8_t)algo, sealed.data,
                                  sealed.len, sig64);
    if (err) {
        err = sdk_fail(sdk, err == KM_ERR_PARSE ? KM_ERR_PARSE : KM_ERR_DECRYPT,
                       "key sign: the result does not open with the response key");
        goto out;
    }
    /* Opening proves only that someone who knew the response key made the
     * blob: the signature itself must verify under the key. */
    err = algo == KM_KEY_ALGO_SCHNORR ? km_single_schnorr_verify(sdk->ctx, sig64, msg, msg_len, pubkey33 + 1)
                                      : km_single_ecdsa_verify(sdk->ctx, sig64, msg, pubkey33);
    if (err) err = sdk_fail(sdk, KM_ERR_VERIFY, "key sign: the signature does not verify under the key");
out:
    if (err)
        memset(sig64, 0, 64);
    else
        sdk->err[0] = '\0';
    km_wipe(&kp, sizeof kp);
    km_wipe(response_key, sizeof response_key);
    json_decref(body);
    km_buf_free(&cmd);
    km_buf_free(&sealed);
    km_client_response_clear(&r);
    return err;
}

km_err km_sdk_key_delete(km_sdk *sdk, const km_uuid *key_id, const km_uuid *user_id,
                         const unsigned char auth_seckey[32]) {
    if (!sdk) return KM_ERR_ARG;
    if (!key_id || !user_id || !auth_seckey) return sdk_fail(sdk, KM_ERR_ARG, "key delete: NULL argument");
    uint64_t ts = (uint64_t)time(NULL);
    unsigned char digest[32], sig[64];
    km_key_delete_digest(digest, key_id, ts);
    km_err err = km_single_schnorr_sign(sdk->ctx, sig, digest, 32, auth_seckey);
    if (err) return sdk_fail(sdk, err, "key delete: invalid auth key");
    json_t *body = json_pack("{s:I,s:o}", "timestamp", (json_int_t)ts, "signature", sdk_hexj(sig, 64));
    if (!body) return sdk_fail(sdk, KM_ERR_NOMEM, "out of memory");
    char uid[37], kid[37], target[128];
    km_uuid_format(uid, user_id);
    km_uuid_format(kid, key_id);
    snprintf(target, sizeof target, "/api/v1/keys/%s/%s", uid, kid);
    secp256k1_keypair kp;
    km_client_response r = {0};
    err = sdk_keypair(sdk->ctx, &kp, auth_seckey);
    if (!err) err = sdk_call(sdk, "DELETE", target, body, &kp, &r);
    km_wipe(&kp, sizeof kp);
    json_decref(body);
    if (!err && r.status != 200) err = sdk_http_fail(sdk, &r, "key delete");
    if (!err) sdk->err[0] = '\0';
    km_client_response_clear(&r);
    return err;
}
