/* single.c — single-signer BIP-340 and ECDSA (see keymeld/single.h).
 *
 * Every curve operation is a libsecp256k1 call. What this file adds is the
 * contract: inputs validated into precise error codes, outputs zeroed on
 * failure, keypairs (which embed the secret key) wiped on every path out,
 * and each signature verified before release so a fault during signing
 * cannot hand out a signature that leaks the key.
 */
#include <stdint.h>
#include <string.h>

#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/secret.h"
#include "keymeld/single.h"
#include "keymeld/taproot.h"

km_err km_single_seckey_check(const km_ctx *ctx, const unsigned char seckey[32]) {
    return secp256k1_ec_seckey_verify(km_ctx_secp(ctx), seckey) ? KM_OK : KM_ERR_INVALID_KEY;
}

km_err km_single_pubkey(const km_ctx *ctx, unsigned char pub33[33], const unsigned char seckey[32]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    secp256k1_pubkey pk;
    size_t len = 33;
    memset(pub33, 0, 33);
    if (!secp256k1_ec_pubkey_create(secp, &pk, seckey)) return KM_ERR_INVALID_KEY;
    if (!secp256k1_ec_pubkey_serialize(secp, pub33, &len, &pk, SECP256K1_EC_COMPRESSED) || len != 33) {
        memset(pub33, 0, 33);
        return KM_ERR_CRYPTO;
    }
    return KM_OK;
}

/* Build a keypair, mapping an invalid key to its own code. The caller wipes
 * *kp on every path (it holds the secret key). */
static km_err keypair_from(const secp256k1_context *secp, secp256k1_keypair *kp,
                           const unsigned char seckey[32]) {
    if (!secp256k1_keypair_create(secp, kp, seckey)) return KM_ERR_INVALID_KEY;
    return KM_OK;
}

km_err km_single_xonly_pubkey(const km_ctx *ctx, unsigned char xonly32[32], const unsigned char seckey[32]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    secp256k1_keypair kp;
    secp256k1_xonly_pubkey xpk;
    km_err err = keypair_from(secp, &kp, seckey);
    memset(xonly32, 0, 32);
    if (err == KM_OK) {
        if (!secp256k1_keypair_xonly_pub(secp, &xpk, NULL, &kp) ||
            !secp256k1_xonly_pubkey_serialize(secp, xonly32, &xpk)) {
            memset(xonly32, 0, 32);
            err = KM_ERR_CRYPTO;
        }
    }
    km_wipe(&kp, sizeof kp);
    return err;
}

km_err km_single_schnorr_verify(const km_ctx *ctx, const unsigned char sig64[64], const unsigned char *msg,
                                size_t msglen, const unsigned char xonly32[32]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    secp256k1_xonly_pubkey xpk;
    if (msg == NULL && msglen != 0) return KM_ERR_ARG;
    /* Parsing first keeps "this is not a key" apart from "this is not a
     * signature by this key": the first is a caller or configuration bug. */
    if (!secp256k1_xonly_pubkey_parse(secp, &xpk, xonly32)) return KM_ERR_INVALID_POINT;
    return secp256k1_schnorrsig_verify(secp, sig64, msg, msglen, &xpk) ? KM_OK : KM_ERR_VERIFY;
}

km_err km_single_schnorr_sign_aux(const km_ctx *ctx, unsigned char sig64[64], const unsigned char *msg,
                                  size_t msglen, const unsigned char seckey[32],
                                  const unsigned char aux32[32]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    secp256k1_keypair kp;
    secp256k1_xonly_pubkey xpk;
    secp256k1_schnorrsig_extraparams extra = SECP256K1_SCHNORRSIG_EXTRAPARAMS_INIT;
    km_err err;

    memset(sig64, 0, 64);
    if (msg == NULL && msglen != 0) return KM_ERR_ARG;
    err = keypair_from(secp, &kp, seckey);
    if (err != KM_OK) goto out;
    /* libsecp256k1 only reads ndata; the cast drops a const its API lacks. */
    extra.ndata = (void *)(uintptr_t)aux32;
    if (!secp256k1_schnorrsig_sign_custom(secp, sig64, msg, msglen, &kp, &extra) ||
        !secp256k1_keypair_xonly_pub(secp, &xpk, NULL, &kp) ||
        !secp256k1_schnorrsig_verify(secp, sig64, msg, msglen, &xpk)) {
        memset(sig64, 0, 64);
        err = KM_ERR_CRYPTO;
    }
out:
    km_wipe(&kp, sizeof kp);
    return err;
}

km_err km_single_schnorr_sign(const km_ctx *ctx, unsigned char sig64[64], const unsigned char *msg,
                              size_t msglen, const unsigned char seckey[32]) {
    unsigned char aux[32];
    km_err err;
    memset(sig64, 0, 64);
    if (km_random_bytes(aux, sizeof aux) != KM_OK) return KM_ERR_RANDOM;
    err = km_single_schnorr_sign_aux(ctx, sig64, msg, msglen, seckey, aux);
    km_wipe(aux, sizeof aux);
    return err;
}

/* Parse a public key accepting only the 33-byte compressed form: libsecp256k1
 * would also take 65-byte uncompressed and hybrid (0x06/0x07) encodings. */
static km_err parse_pub33(const secp256k1_context *secp, secp256k1_pubkey *pk,
                          const unsigned char pub33[33]) {
    if (pub33[0] != 0x02 && pub33[0] != 0x03) return KM_ERR_INVALID_POINT;
    return secp256k1_ec_pubkey_parse(secp, pk, pub33, 33) ? KM_OK : KM_ERR_INVALID_POINT;
}

km_err km_single_ecdsa_sign(const km_ctx *ctx, unsigned char sig64[64], const unsigned char msg32[32],
                            const unsigned char seckey[32]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    secp256k1_ecdsa_signature sig;
    secp256k1_pubkey pk;

    memset(sig64, 0, 64);
    if (!secp256k1_ec_seckey_verify(secp, seckey)) return KM_ERR_INVALID_KEY;
    /* noncefp NULL = RFC 6979; libsecp256k1 always emits low-S. */
    if (!secp256k1_ecdsa_sign(secp, &sig, msg32, seckey, NULL, NULL) ||
        !secp256k1_ec_pubkey_create(secp, &pk, seckey) || !secp256k1_ecdsa_verify(secp, &sig, msg32, &pk) ||
        !secp256k1_ecdsa_signature_serialize_compact(secp, sig64, &sig)) {
        memset(sig64, 0, 64);
        return KM_ERR_CRYPTO;
    }
    return KM_OK;
}

km_err km_single_ecdsa_verify(const km_ctx *ctx, const unsigned char sig64[64], const unsigned char msg32[32],
                              const unsigned char pub33[33]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    secp256k1_ecdsa_signature sig;
    secp256k1_pubkey pk;
    km_err err = parse_pub33(secp, &pk, pub33);
    if (err != KM_OK) return err;
    /* parse_compact refuses r or s >= n; ecdsa_verify refuses zero values and
     * high S, so a malleated twin of a valid signature fails here. */
    if (!secp256k1_ecdsa_signature_parse_compact(secp, &sig, sig64)) return KM_ERR_VERIFY;
    return secp256k1_ecdsa_verify(secp, &sig, msg32, &pk) ? KM_OK : KM_ERR_VERIFY;
}

km_err km_single_ecdsa_to_der(const km_ctx *ctx, unsigned char *der, size_t *der_len,
                              const unsigned char sig64[64]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    secp256k1_ecdsa_signature sig;
    unsigned char tmp[KM_SINGLE_ECDSA_DER_MAX];
    size_t n = sizeof tmp;
    size_t cap = *der_len;

    *der_len = 0;
    /* A value >= n would make parse_compact fail; refuse rather than encode
     * something other than what the caller holds. */
    if (!secp256k1_ecdsa_signature_parse_compact(secp, &sig, sig64)) return KM_ERR_RANGE;
    if (!secp256k1_ecdsa_signature_serialize_der(secp, tmp, &n, &sig)) return KM_ERR_CRYPTO;
    if (n > cap) return KM_ERR_BUFFER_SMALL;
    memcpy(der, tmp, n);
    *der_len = n;
    return KM_OK;
}

km_err km_single_ecdsa_from_der(const km_ctx *ctx, unsigned char sig64[64], const unsigned char *der,
                                size_t der_len) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    secp256k1_ecdsa_signature sig;
    unsigned char again[KM_SINGLE_ECDSA_DER_MAX];
    size_t n = sizeof again;

    memset(sig64, 0, 64);
    if (der == NULL || der_len == 0 || der_len > KM_SINGLE_ECDSA_DER_MAX) return KM_ERR_PARSE;
    if (!secp256k1_ecdsa_signature_parse_der(secp, &sig, der, der_len)) return KM_ERR_PARSE;
    /* parse_der is already strict DER, but our acceptance rule should not
     * rest on a library's leniency choices: encoding again and demanding the
     * same bytes pins exactly one DER form per (r, s). */
    if (!secp256k1_ecdsa_signature_serialize_der(secp, again, &n, &sig) || n != der_len ||
        memcmp(again, der, n) != 0)
        return KM_ERR_PARSE;
    if (!secp256k1_ecdsa_signature_serialize_compact(secp, sig64, &sig)) {
        memset(sig64, 0, 64);
        return KM_ERR_CRYPTO;
    }
    /* parse_der maps an out-of-range r or s (>= n) to zero instead of
     * failing, and r = 0 or s = 0 round-trip through DER; none is a
     * signature. */
    static const unsigned char zero[32] = {0};
    if (memcmp(sig64, zero, 32) == 0 || memcmp(sig64 + 32, zero, 32) == 0) {
        memset(sig64, 0, 64);
        return KM_ERR_PARSE;
    }
    return KM_OK;
}

km_err km_single_ecdsa_verify_der(const km_ctx *ctx, const unsigned char *der, size_t der_len,
                                  const unsigned char msg32[32], const unsigned char pub33[33]) {
    unsigned char sig64[64];
    km_err err = km_single_ecdsa_from_der(ctx, sig64, der, der_len);
    if (err != KM_OK) return err;
    return km_single_ecdsa_verify(ctx, sig64, msg32, pub33);
}

km_err km_single_taproot_tweak_seckey(const km_ctx *ctx, unsigned char out_seckey[32],
                                      const unsigned char seckey[32], const unsigned char *merkle_root32) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    secp256k1_keypair kp;
    secp256k1_xonly_pubkey xpk;
    unsigned char internal[32], t[32];
    km_err err;

    memset(out_seckey, 0, 32);
    err = keypair_from(secp, &kp, seckey);
    if (err != KM_OK) goto out;
    if (!secp256k1_keypair_xonly_pub(secp, &xpk, NULL, &kp) ||
        !secp256k1_xonly_pubkey_serialize(secp, internal, &xpk)) {
        err = KM_ERR_CRYPTO;
        goto out;
    }
    km_taproot_tweak_hash(t, internal, merkle_root32); /* t >= n is refused by the tweak below */
    /* keypair_xonly_tweak_add negates the key first when its point has odd
     * Y, which is exactly BIP-341's taproot_tweak_seckey. */
    if (!secp256k1_keypair_xonly_tweak_add(secp, &kp, t)) {
        err = KM_ERR_RANGE;
        goto out;
    }
    if (!secp256k1_keypair_sec(secp, out_seckey, &kp)) {
        memset(out_seckey, 0, 32);
        err = KM_ERR_CRYPTO;
    }
out:
    km_wipe(&kp, sizeof kp);
    return err;
}
