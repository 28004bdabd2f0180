/* reqauth.c — canonical request strings and their BIP-340 signatures
 * (format in keymeld/reqauth.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <secp256k1_schnorrsig.h>

#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "keymeld/reqauth.h"
#include "keymeld/secret.h"

static const char REQAUTH_HEADER[] = "KEYMELD-AUTH-V1";

/* The rules that make the canonical string splittable in one way only. */
static int method_ok(const char *m, size_t n) {
    if (!m || n == 0 || n > KM_REQAUTH_METHOD_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (m[i] < 'A' || m[i] > 'Z') return 0;
    return 1;
}

static int target_ok(const char *t, size_t n) {
    if (!t || n == 0 || n > KM_REQAUTH_TARGET_MAX || t[0] != '/') return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e) return 0;
    return 1;
}

km_err km_reqauth_canonical(const km_reqauth_req *req, char *out, size_t out_size, size_t *out_len) {
    char body_hex[65], nonce_hex[2 * KM_REQAUTH_NONCE_LEN + 1], ts[21];
    unsigned char body_hash[32];
    km_err err = KM_ERR_PARSE;
    *out_len = 0;
    if (out_size) out[0] = '\0';
    if (!method_ok(req->method, req->method_len) || !target_ok(req->target, req->target_len)) return err;
    if (req->body_len && !req->body) return KM_ERR_ARG;

    km_sha256(body_hash, req->body, req->body_len);
    if (km_hex_encode(body_hex, sizeof body_hex, body_hash, sizeof body_hash) ||
        km_hex_encode(nonce_hex, sizeof nonce_hex, req->nonce, sizeof req->nonce))
        return KM_ERR_CRYPTO; /* cannot happen: the buffers are sized exactly */
    int tn = snprintf(ts, sizeof ts, "%" PRIu64, req->timestamp);
    if (tn <= 0 || (size_t)tn >= sizeof ts) return KM_ERR_CRYPTO;

    size_t need = (sizeof REQAUTH_HEADER - 1) + 1 + req->method_len + 1 + req->target_len + 1 + 64 + 1 +
                  (size_t)tn + 1 + 2 * KM_REQAUTH_NONCE_LEN;
    if (need + 1 > out_size) return KM_ERR_BUFFER_SMALL;
    char *w = out;
#define PUT(p, n)                                                                                            \
    do {                                                                                                     \
        memcpy(w, (p), (n));                                                                                 \
        w += (n);                                                                                            \
    } while (0)
    PUT(REQAUTH_HEADER, sizeof REQAUTH_HEADER - 1);
    PUT("\n", 1);
    PUT(req->method, req->method_len);
    PUT("\n", 1);
    PUT(req->target, req->target_len);
    PUT("\n", 1);
    PUT(body_hex, 64);
    PUT("\n", 1);
    PUT(ts, (size_t)tn);
    PUT("\n", 1);
    PUT(nonce_hex, 2 * KM_REQAUTH_NONCE_LEN);
#undef PUT
    *w = '\0';
    *out_len = need;
    return KM_OK;
}

km_err km_reqauth_digest(const km_reqauth_req *req, unsigned char digest32[32]) {
    char buf[KM_REQAUTH_CANONICAL_MAX];
    size_t n;
    km_err err = km_reqauth_canonical(req, buf, sizeof buf, &n);
    if (err) {
        memset(digest32, 0, 32);
        return err;
    }
    km_tagged_hash(digest32, KM_REQAUTH_TAG, buf, n);
    return KM_OK;
}

km_err km_reqauth_sign(const km_ctx *ctx, const secp256k1_keypair *keypair, const km_reqauth_req *req,
                       unsigned char sig64[64]) {
    unsigned char digest[32], aux[32];
    memset(sig64, 0, 64);
    km_err err = km_reqauth_digest(req, digest);
    if (err) return err;
    /* Fresh aux randomness (BIP-340 recommends it) hardens the nonce
     * derivation against fault and side-channel attacks on the auth key. */
    err = km_random_bytes(aux, sizeof aux);
    if (err) return err;
    if (!secp256k1_schnorrsig_sign32(km_ctx_secp(ctx), sig64, digest, keypair, aux)) {
        memset(sig64, 0, 64);
        err = KM_ERR_CRYPTO;
    }
    km_wipe(aux, sizeof aux);
    return err;
}

km_err km_reqauth_verify(const km_ctx *ctx, const unsigned char xonly32[32], const km_reqauth_req *req,
                         const unsigned char sig64[64]) {
    secp256k1_xonly_pubkey pk;
    unsigned char digest[32];
    if (!secp256k1_xonly_pubkey_parse(km_ctx_secp(ctx), &pk, xonly32)) return KM_ERR_INVALID_POINT;
    km_err err = km_reqauth_digest(req, digest);
    if (err) return err;
    if (!secp256k1_schnorrsig_verify(km_ctx_secp(ctx), sig64, digest, sizeof digest, &pk))
        return KM_ERR_VERIFY;
    return KM_OK;
}

km_err km_reqauth_check_time(uint64_t now, uint64_t timestamp, uint64_t window) {
    /* Subtract the smaller from the larger: no unsigned wrap-around. */
    uint64_t skew = now >= timestamp ? now - timestamp : timestamp - now;
    return skew <= window ? KM_OK : KM_ERR_RANGE;
}
