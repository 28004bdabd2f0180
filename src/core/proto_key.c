/* proto_key.c — codec of the single-signer messages (keymeld/proto_key.h). */
#include <string.h>

#include "keymeld/ecies.h"
#include "keymeld/hash.h"
#include "keymeld/proto_key.h"
#include "keymeld/secret.h"

/* Rules shared by encode and decode, so neither side can produce what the
 * other refuses. ECDSA signs a digest: anything but 32 bytes would mean the
 * enclave hashing (or truncating) on the client's behalf. */
static km_err check_algo_len(uint8_t algo, size_t msg_len) {
    if (algo != KM_KEY_ALGO_SCHNORR && algo != KM_KEY_ALGO_ECDSA) return KM_ERR_UNSUPPORTED;
    if (msg_len > KM_KEY_MSG_MAX) return KM_ERR_RANGE;
    if (algo == KM_KEY_ALGO_ECDSA && msg_len != 32) return KM_ERR_RANGE;
    return KM_OK;
}

km_err km_key_import_ad(km_ad *ad, const km_uuid *key_id, const km_uuid *user_id) {
    return km_ad_build(ad, KM_AD_KEY_IMPORT, key_id, user_id->b, 16);
}

km_err km_key_sign_ad(km_ad *ad, const km_uuid *key_id, const km_uuid *request_id) {
    return km_ad_build(ad, KM_AD_KEY_SIGN, key_id, request_id->b, 16);
}

km_err km_key_import_encode(const km_key_import *in, unsigned char out[KM_KEY_IMPORT_LEN]) {
    if (in->flags & ~KM_KEY_FLAG_REQUIRE_APPROVAL) {
        memset(out, 0, KM_KEY_IMPORT_LEN);
        return KM_ERR_UNSUPPORTED;
    }
    out[0] = KM_KEY_PROTO_VERSION;
    memcpy(out + 1, in->seckey, 32);
    memcpy(out + 33, in->auth_pub, 32);
    out[65] = in->flags;
    return KM_OK;
}

km_err km_key_import_decode(km_key_import *out, const unsigned char *p, size_t len) {
    memset(out, 0, sizeof *out);
    if (!p || len != KM_KEY_IMPORT_LEN) return KM_ERR_PARSE;
    if (p[0] != KM_KEY_PROTO_VERSION || (p[65] & ~KM_KEY_FLAG_REQUIRE_APPROVAL)) return KM_ERR_UNSUPPORTED;
    memcpy(out->seckey, p + 1, 32);
    memcpy(out->auth_pub, p + 33, 32);
    out->flags = p[65];
    return KM_OK;
}

/* key_id | id2 | vbytes blob: the common head of IMPORT and SIGN bodies. */
static void put_head(km_buf *body, const km_uuid *key_id, const km_uuid *id2, const km_buf *blob) {
    (void)km_buf_put(body, key_id->b, 16);
    (void)km_buf_put(body, id2->b, 16);
    (void)km_buf_put_u32(body, (uint32_t)blob->len);
    (void)km_buf_put(body, blob->data, blob->len); /* km_buf errors are sticky: checked by the caller */
}

static void get_head(km_cursor *c, km_uuid *key_id, km_uuid *id2, const unsigned char **blob,
                     size_t *blob_len) {
    uint32_t n = 0;
    (void)km_cursor_get_bytes(c, key_id->b, 16);
    (void)km_cursor_get_bytes(c, id2->b, 16);
    (void)km_cursor_get_u32(c, &n);
    /* Bound before viewing: the length comes from the gateway. */
    if (n > KM_KEY_BLOB_MAX) c->failed = 1;
    if (km_cursor_get_view(c, blob, n) == KM_OK) *blob_len = n;
}

km_err km_key_import_build(const km_ctx *ctx, const unsigned char enclave_pub33[33], const km_uuid *key_id,
                           const km_uuid *user_id, const km_key_import *key, km_buf *body) {
    unsigned char pt[KM_KEY_IMPORT_LEN];
    km_ad ad;
    km_buf blob;
    km_buf_init(&blob);
    km_buf_free(body);
    km_err err = km_key_import_encode(key, pt);
    if (!err) err = km_key_import_ad(&ad, key_id, user_id);
    if (!err) err = km_ecies_seal(ctx, enclave_pub33, ad.bytes, ad.len, pt, sizeof pt, &blob);
    km_wipe(pt, sizeof pt);
    if (!err) {
        put_head(body, key_id, user_id, &blob);
        if (body->failed) err = KM_ERR_NOMEM;
    }
    km_buf_free(&blob);
    if (err) km_buf_free(body);
    return err;
}

km_err km_key_import_parse(km_key_import_cmd *out, const unsigned char *body, size_t len) {
    km_cursor c;
    memset(out, 0, sizeof *out);
    km_cursor_init(&c, body, len);
    get_head(&c, &out->key_id, &out->user_id, &out->blob, &out->blob_len);
    if (km_cursor_finish(&c) != KM_OK) {
        memset(out, 0, sizeof *out);
        return KM_ERR_PARSE;
    }
    return KM_OK;
}

km_err km_key_sign_encode(const km_key_sign_req *in, km_buf *out) {
    km_err err = check_algo_len(in->algo, in->msg_len);
    if (err) return err;
    if ((!in->msg && in->msg_len) || !in->response_key) return KM_ERR_ARG;
    (void)km_buf_put_u8(out, KM_KEY_PROTO_VERSION);
    (void)km_buf_put_u8(out, in->algo);
    (void)km_buf_put_u64(out, in->timestamp);
    (void)km_buf_put_u32(out, (uint32_t)in->msg_len);
    (void)km_buf_put(out, in->msg, in->msg_len);
    return km_buf_put(out, in->response_key, 32);
}

km_err km_key_sign_decode(km_key_sign_req *out, const unsigned char *p, size_t len) {
    km_cursor c;
    uint8_t version = 0;
    uint32_t n = 0;
    memset(out, 0, sizeof *out);
    km_cursor_init(&c, p, len);
    (void)km_cursor_get_u8(&c, &version);
    (void)km_cursor_get_u8(&c, &out->algo);
    (void)km_cursor_get_u64(&c, &out->timestamp);
    (void)km_cursor_get_u32(&c, &n);
    km_err err = KM_ERR_PARSE;
    if (c.failed) goto fail;
    if (version != KM_KEY_PROTO_VERSION) {
        err = KM_ERR_UNSUPPORTED;
        goto fail;
    }
    err = check_algo_len(out->algo, n);
    if (err) goto fail;
    err = KM_ERR_PARSE;
    (void)km_cursor_get_view(&c, &out->msg, n);
    (void)km_cursor_get_view(&c, &out->response_key, 32);
    if (km_cursor_finish(&c) != KM_OK) goto fail;
    out->msg_len = n;
    return KM_OK;
fail:
    memset(out, 0, sizeof *out);
    return err;
}

void km_key_approval_digest(unsigned char digest32[32], const km_uuid *key_id, const km_uuid *request_id,
                            uint8_t algo, const unsigned char *msg, size_t msg_len) {
    unsigned char m[16 + 16 + 1 + 32];
    memcpy(m, key_id->b, 16);
    memcpy(m + 16, request_id->b, 16);
    m[32] = algo;
    /* The message is hashed first so the approval has a fixed size whatever
     * is signed, and an approver's device can show the hash it approves. */
    km_sha256(m + 33, msg_len ? msg : (const unsigned char *)"", msg_len);
    km_tagged_hash(digest32, KM_TAG_SINGLE_APPROVAL, m, sizeof m);
}

km_err km_key_sign_build(const km_ctx *ctx, const unsigned char enclave_pub33[33], const km_uuid *key_id,
                         const km_uuid *request_id, const km_key_sign_req *req,
                         const unsigned char *approval_sig64, km_buf *body) {
    km_ad ad;
    km_buf pt, blob;
    km_buf_init(&pt);
    km_buf_init(&blob);
    km_buf_free(body);
    km_err err = km_key_sign_encode(req, &pt);
    if (!err) err = km_key_sign_ad(&ad, key_id, request_id);
    if (!err) err = km_ecies_seal(ctx, enclave_pub33, ad.bytes, ad.len, pt.data, pt.len, &blob);
    km_buf_free(&pt); /* wipes the response key and the message */
    if (!err) {
        put_head(body, key_id, request_id, &blob);
        (void)km_buf_put_u8(body, approval_sig64 ? 1 : 0);
        if (approval_sig64) (void)km_buf_put(body, approval_sig64, 64);
        if (body->failed) err = KM_ERR_NOMEM;
    }
    km_buf_free(&blob);
    if (err) km_buf_free(body);
    return err;
}

km_err km_key_sign_parse(km_key_sign_cmd *out, const unsigned char *body, size_t len) {
    km_cursor c;
    uint8_t has = 0;
    memset(out, 0, sizeof *out);
    km_cursor_init(&c, body, len);
    get_head(&c, &out->key_id, &out->request_id, &out->blob, &out->blob_len);
    (void)km_cursor_get_u8(&c, &has);
    if (has > 1) c.failed = 1; /* one encoding per body */
    if (has == 1) (void)km_cursor_get_view(&c, &out->approval_sig, 64);
    if (km_cursor_finish(&c) != KM_OK) {
        memset(out, 0, sizeof *out);
        return KM_ERR_PARSE;
    }
    return KM_OK;
}

static km_err result_ad(km_ad *ad, const km_uuid *key_id, const km_uuid *request_id) {
    return km_ad_build(ad, KM_AD_KEY_SIGN_RESULT, key_id, request_id->b, 16);
}

km_err km_key_sign_result_seal(km_ctx *ctx, const unsigned char response_key32[32], const km_uuid *key_id,
                               const km_uuid *request_id, uint8_t algo, const unsigned char sig64[64],
                               km_buf *out) {
    km_buf_free(out);
    if (algo != KM_KEY_ALGO_SCHNORR && algo != KM_KEY_ALGO_ECDSA) return KM_ERR_UNSUPPORTED;
    unsigned char pt[KM_KEY_SIGN_RESULT_LEN];
    pt[0] = algo;
    memcpy(pt + 1, sig64, 64);
    km_ad ad;
    km_session *s = NULL;
    km_err err = result_ad(&ad, key_id, request_id);
    if (!err) err = km_session_derive(ctx, response_key32, &s);
    if (!err) err = km_session_seal(s, ad.bytes, ad.len, pt, sizeof pt, out);
    km_session_free(s);
    km_wipe(pt, sizeof pt);
    return err;
}

km_err km_key_sign_result_open(km_ctx *ctx, const unsigned char response_key32[32], const km_uuid *key_id,
                               const km_uuid *request_id, uint8_t algo, const unsigned char *blob,
                               size_t blob_len, unsigned char sig64[64]) {
    memset(sig64, 0, 64);
    if (!blob || blob_len != KM_KEY_SIGN_RESULT_LEN + KM_SESSION_OVERHEAD) return KM_ERR_PARSE;
    unsigned char pt[KM_KEY_SIGN_RESULT_LEN];
    size_t pt_len = 0;
    km_ad ad;
    km_session *s = NULL;
    km_err err = result_ad(&ad, key_id, request_id);
    if (!err) err = km_session_derive(ctx, response_key32, &s);
    if (!err) err = km_session_open(s, ad.bytes, ad.len, blob, blob_len, pt, sizeof pt, &pt_len);
    km_session_free(s);
    if (!err && (pt_len != sizeof pt || pt[0] != algo)) err = KM_ERR_PARSE;
    if (!err) memcpy(sig64, pt + 1, 64);
    km_wipe(pt, sizeof pt);
    return err;
}

void km_key_delete_digest(unsigned char digest32[32], const km_uuid *key_id, uint64_t timestamp) {
    unsigned char m[24];
    memcpy(m, key_id->b, 16);
    for (int i = 0; i < 8; i++)
        m[16 + i] = (unsigned char)(timestamp >> (56 - 8 * i));
    km_tagged_hash(digest32, KM_TAG_KEY_DELETE, m, sizeof m);
}

void km_key_delete_encode(unsigned char body[KM_KEY_DELETE_LEN], const km_uuid *key_id, uint64_t timestamp,
                          const unsigned char sig64[64]) {
    memcpy(body, key_id->b, 16);
    for (int i = 0; i < 8; i++)
        body[16 + i] = (unsigned char)(timestamp >> (56 - 8 * i));
    memcpy(body + 24, sig64, 64);
}

km_err km_key_delete_parse(km_key_delete_cmd *out, const unsigned char *body, size_t len) {
    km_cursor c;
    memset(out, 0, sizeof *out);
    km_cursor_init(&c, body, len);
    (void)km_cursor_get_bytes(&c, out->key_id.b, 16);
    (void)km_cursor_get_u64(&c, &out->timestamp);
    (void)km_cursor_get_view(&c, &out->sig, 64);
    if (km_cursor_finish(&c) != KM_OK) {
        memset(out, 0, sizeof *out);
        return KM_ERR_PARSE;
    }
    km_key_delete_digest(out->digest, &out->key_id, out->timestamp);
    return KM_OK;
}
