/* musig.c — MuSig2 (BIP-327) over libsecp256k1's public musig API.
 *
 * Everything here is parsing, bookkeeping and error mapping: every curve
 * operation is a libsecp256k1 call. One hazard shapes the code: libsecp256k1
 * reports misuse (an uninitialised or already consumed secnonce, a keypair
 * that does not match the secnonce) through its illegal-argument callback,
 * which aborts the process by default. An enclave must never be crashable by
 * its input, so each such precondition is checked here first and turned into
 * an error code.
 */
#include <stdlib.h>
#include <string.h>

#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "keymeld/aead.h"
#include "keymeld/musig.h"

/* Layout of the km_secret that holds a secret nonce. The public key and
 * public nonce travel with it so that partial_sign can refuse a mismatched
 * key (instead of tripping libsecp256k1's abort) and verify its own output. */
typedef struct secnonce_blob {
    unsigned char magic[8];
    secp256k1_musig_secnonce sn;
    unsigned char pubkey33[33];
    unsigned char pubnonce66[66];
} secnonce_blob;

static const unsigned char secnonce_magic[8] = {'k', 'm', 'm', 'u', 's', 'n', 'c', '1'};

static int is_zero(const unsigned char *p, size_t len) {
    unsigned char acc = 0;
    for (size_t i = 0; i < len; i++)
        acc |= p[i];
    return acc == 0;
}

km_err km_musig_pubkey_check(const km_ctx *ctx, const unsigned char pubkey33[33]) {
    secp256k1_pubkey pk;
    /* With length 33 only 0x02/0x03 prefixes parse. */
    return secp256k1_ec_pubkey_parse(km_ctx_secp(ctx), &pk, pubkey33, 33) ? KM_OK : KM_ERR_INVALID_POINT;
}

km_err km_musig_pubnonce_check(const km_ctx *ctx, const unsigned char pubnonce66[66]) {
    secp256k1_musig_pubnonce pn;
    return secp256k1_musig_pubnonce_parse(km_ctx_secp(ctx), &pn, pubnonce66) ? KM_OK : KM_ERR_INVALID_POINT;
}

km_err km_musig_aggnonce_check(const km_ctx *ctx, const unsigned char aggnonce66[66]) {
    secp256k1_musig_aggnonce an;
    return secp256k1_musig_aggnonce_parse(km_ctx_secp(ctx), &an, aggnonce66) ? KM_OK : KM_ERR_INVALID_POINT;
}

km_err km_musig_partial_sig_check(const km_ctx *ctx, const unsigned char psig32[32]) {
    secp256k1_musig_partial_sig ps;
    return secp256k1_musig_partial_sig_parse(km_ctx_secp(ctx), &ps, psig32) ? KM_OK : KM_ERR_PARSE;
}

/* Fills the output_* fields of ka from a full public key. */
static km_err set_output(const secp256k1_context *secp, km_musig_keyagg *ka, const secp256k1_pubkey *q) {
    secp256k1_xonly_pubkey qx;
    size_t len = 33;
    int parity = 0;
    if (!secp256k1_ec_pubkey_serialize(secp, ka->output_pubkey, &len, q, SECP256K1_EC_COMPRESSED) ||
        !secp256k1_xonly_pubkey_from_pubkey(secp, &qx, &parity, q) ||
        !secp256k1_xonly_pubkey_serialize(secp, ka->output_xonly, &qx))
        return KM_ERR_CRYPTO;
    ka->output_parity = parity;
    return KM_OK;
}

km_err km_musig_key_agg(const km_ctx *ctx, km_musig_keyagg *out, const unsigned char *pubkeys33, size_t n,
                        size_t *bad_index) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    memset(out, 0, sizeof *out);
    if (n == 0 || n > KM_MUSIG_MAX_SIGNERS) return KM_ERR_RANGE;

    secp256k1_pubkey *keys = calloc(n, sizeof *keys);
    const secp256k1_pubkey **ptrs = calloc(n, sizeof *ptrs);
    km_err err = KM_OK;
    if (!keys || !ptrs) {
        err = KM_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (!secp256k1_ec_pubkey_parse(secp, &keys[i], pubkeys33 + 33 * i, 33)) {
            if (bad_index) *bad_index = i;
            err = KM_ERR_INVALID_POINT;
            goto done;
        }
        ptrs[i] = &keys[i];
    }
    /* KeySort: participants need not agree on an order, only on the set. */
    secp256k1_pubkey agg;
    secp256k1_xonly_pubkey agg_x;
    size_t len = 33;
    if (!secp256k1_ec_pubkey_sort(secp, ptrs, n) ||
        !secp256k1_musig_pubkey_agg(secp, &agg_x, &out->cache, ptrs, n) ||
        !secp256k1_musig_pubkey_get(secp, &agg, &out->cache) ||
        !secp256k1_xonly_pubkey_serialize(secp, out->agg_xonly, &agg_x) ||
        !secp256k1_ec_pubkey_serialize(secp, out->agg_pubkey, &len, &agg, SECP256K1_EC_COMPRESSED)) {
        err = KM_ERR_CRYPTO;
        goto done;
    }
    err = set_output(secp, out, &agg);
    if (err) goto done;
    km_tweak_none(&out->tweak);
    out->n_keys = n;
    out->valid = 1;
done:
    free(keys);
    free(ptrs);
    if (err) memset(out, 0, sizeof *out);
    return err;
}

km_err km_musig_keyagg_tweak(const km_ctx *ctx, km_musig_keyagg *ka, const km_tweak *tweak) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    if (!ka->valid || ka->tweaked) return KM_ERR_STATE;
    km_err err = km_tweak_check(tweak);
    if (err) return err;

    /* Work on a copy so that a rejected tweak leaves *ka exactly as it was. */
    km_musig_keyagg next = *ka;
    secp256k1_pubkey q;
    unsigned char t[32];
    int ok = 1;
    switch (tweak->mode) {
    case KM_TWEAK_NONE:
        ok = secp256k1_musig_pubkey_get(secp, &q, &next.cache);
        break;
    case KM_TWEAK_BIP86:
        /* BIP-341 commits to the x-only internal key, which is exactly the
         * untweaked aggregate's x coordinate. */
        km_taproot_tweak_hash(t, ka->agg_xonly, NULL);
        ok = secp256k1_musig_pubkey_xonly_tweak_add(secp, &q, &next.cache, t);
        break;
    case KM_TWEAK_BIP341:
        km_taproot_tweak_hash(t, ka->agg_xonly, tweak->data);
        ok = secp256k1_musig_pubkey_xonly_tweak_add(secp, &q, &next.cache, t);
        break;
    case KM_TWEAK_PLAIN:
        ok = secp256k1_musig_pubkey_ec_tweak_add(secp, &q, &next.cache, tweak->data);
        break;
    case KM_TWEAK_XONLY:
        ok = secp256k1_musig_pubkey_xonly_tweak_add(secp, &q, &next.cache, tweak->data);
        break;
    }
    /* The tweak functions fail only for t >= n or an infinite result. */
    if (!ok) return tweak->mode == KM_TWEAK_NONE ? KM_ERR_CRYPTO : KM_ERR_RANGE;
    err = set_output(secp, &next, &q);
    if (err) return err;
    next.tweak = *tweak;
    next.tweaked = 1;
    *ka = next;
    return KM_OK;
}

km_err km_musig_nonce_gen(km_ctx *ctx, km_secret **secnonce_out, unsigned char pubnonce66[66],
                          const unsigned char *seckey32, const unsigned char pubkey33[33],
                          const unsigned char *msg32, const km_musig_keyagg *keyagg,
                          const unsigned char *extra32) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    *secnonce_out = NULL;
    memset(pubnonce66, 0, 66);

    secp256k1_pubkey pk;
    if (!secp256k1_ec_pubkey_parse(secp, &pk, pubkey33, 33)) return KM_ERR_INVALID_POINT;
    if (keyagg && !keyagg->valid) return KM_ERR_STATE;
    if (seckey32) {
        if (!secp256k1_ec_seckey_verify(secp, seckey32)) return KM_ERR_INVALID_KEY;
        /* A nonce bound to another key could never be used: partial_sign
         * would refuse it. Catch the mix-up here, where it happens. */
        secp256k1_pubkey derived;
        unsigned char ser[33];
        size_t len = 33;
        if (!secp256k1_ec_pubkey_create(secp, &derived, seckey32) ||
            !secp256k1_ec_pubkey_serialize(secp, ser, &len, &derived, SECP256K1_EC_COMPRESSED))
            return KM_ERR_CRYPTO;
        if (memcmp(ser, pubkey33, 33) != 0) return KM_ERR_ARG;
    }

    km_secret *s = NULL;
    km_err err = km_secret_new(ctx, sizeof(secnonce_blob), &s);
    if (err) return err;
    secnonce_blob *b = (secnonce_blob *)km_secret_data(s);
    memcpy(b->magic, secnonce_magic, sizeof secnonce_magic);
    memcpy(b->pubkey33, pubkey33, 33);

    unsigned char secrand[32];
    secp256k1_musig_pubnonce pn;
    err = km_random_bytes(secrand, sizeof secrand);
    if (!err && !secp256k1_musig_nonce_gen(secp, &b->sn, &pn, secrand, seckey32, &pk, msg32,
                                           keyagg ? &keyagg->cache : NULL, extra32))
        err = KM_ERR_RANDOM; /* only an all-zero secrand is refused once the inputs passed the checks above */
    km_wipe(secrand, sizeof secrand);
    if (!err && !secp256k1_musig_pubnonce_serialize(secp, b->pubnonce66, &pn)) err = KM_ERR_CRYPTO;
    if (err) {
        km_secret_free(s);
        memset(pubnonce66, 0, 66);
        return err;
    }
    memcpy(pubnonce66, b->pubnonce66, 66);
    *secnonce_out = s;
    return KM_OK;
}

km_err km_musig_nonce_agg(const km_ctx *ctx, unsigned char aggnonce66[66], const unsigned char *pubnonces66,
                          size_t n, size_t *bad_index) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    memset(aggnonce66, 0, 66);
    if (n == 0 || n > KM_MUSIG_MAX_SIGNERS) return KM_ERR_RANGE;

    secp256k1_musig_pubnonce *pns = calloc(n, sizeof *pns);
    const secp256k1_musig_pubnonce **ptrs = calloc(n, sizeof *ptrs);
    km_err err = KM_OK;
    if (!pns || !ptrs) {
        err = KM_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (!secp256k1_musig_pubnonce_parse(secp, &pns[i], pubnonces66 + 66 * i)) {
            if (bad_index) *bad_index = i;
            err = KM_ERR_INVALID_POINT;
            goto done;
        }
        ptrs[i] = &pns[i];
    }
    secp256k1_musig_aggnonce an;
    if (!secp256k1_musig_nonce_agg(secp, &an, ptrs, n) ||
        !secp256k1_musig_aggnonce_serialize(secp, aggnonce66, &an))
        err = KM_ERR_CRYPTO;
done:
    free(pns);
    free(ptrs);
    if (err) memset(aggnonce66, 0, 66);
    return err;
}

km_err km_musig_session_init(const km_ctx *ctx, km_musig_session *out, const unsigned char aggnonce66[66],
                             const unsigned char msg32[32], const km_musig_keyagg *keyagg) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    memset(out, 0, sizeof *out);
    if (!keyagg->valid) return KM_ERR_STATE;
    secp256k1_musig_aggnonce an;
    if (!secp256k1_musig_aggnonce_parse(secp, &an, aggnonce66)) return KM_ERR_INVALID_POINT;
    if (!secp256k1_musig_nonce_process(secp, &out->session, &an, msg32, &keyagg->cache)) {
        memset(out, 0, sizeof *out);
        return KM_ERR_CRYPTO;
    }
    out->keyagg = *keyagg;
    memcpy(out->msg, msg32, 32);
    memcpy(out->aggnonce, aggnonce66, 66);
    out->valid = 1;
    return KM_OK;
}

km_err km_musig_partial_sign(const km_ctx *ctx, unsigned char psig32[32], km_secret *secnonce,
                             const unsigned char seckey32[32], const km_musig_session *session) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    memset(psig32, 0, 32);
    if (km_secret_len(secnonce) != sizeof(secnonce_blob)) return KM_ERR_ARG;
    secnonce_blob *b = (secnonce_blob *)km_secret_data(secnonce);
    if (memcmp(b->magic, secnonce_magic, sizeof secnonce_magic) != 0) return KM_ERR_ARG;
    /* A consumed nonce is all zero (we wipe it below, libsecp256k1 wipes it
     * too). Handing it to libsecp256k1 would abort the process instead of
     * failing, so refuse it here. */
    if (is_zero(b->sn.data, sizeof b->sn.data)) return KM_ERR_NONCE_REUSE;

    /* From here on every path wipes the nonce: a failed attempt must not
     * leave a nonce behind that a retry could use with other inputs. */
    unsigned char pubkey33[33], pubnonce66[66];
    memcpy(pubkey33, b->pubkey33, 33);
    memcpy(pubnonce66, b->pubnonce66, 66);

    km_err err = KM_OK;
    secp256k1_keypair kp;
    secp256k1_pubkey kp_pub;
    secp256k1_musig_partial_sig ps;
    unsigned char ser[33];
    size_t len = 33;
    if (!session->valid) {
        err = KM_ERR_STATE;
    } else if (!secp256k1_keypair_create(secp, &kp, seckey32)) {
        err = KM_ERR_INVALID_KEY;
    } else if (!secp256k1_keypair_pub(secp, &kp_pub, &kp) ||
               !secp256k1_ec_pubkey_serialize(secp, ser, &len, &kp_pub, SECP256K1_EC_COMPRESSED)) {
        err = KM_ERR_CRYPTO;
    } else if (memcmp(ser, pubkey33, 33) != 0) {
        /* libsecp256k1 would treat this as an illegal argument and abort. */
        err = KM_ERR_ARG;
    } else if (!secp256k1_musig_partial_sign(secp, &ps, &b->sn, &kp, &session->keyagg.cache,
                                             &session->session)) {
        err = KM_ERR_CRYPTO;
    }
    km_wipe(&kp, sizeof kp);
    km_wipe(&b->sn, sizeof b->sn);
    km_wipe(b->pubkey33, sizeof b->pubkey33);
    km_wipe(b->pubnonce66, sizeof b->pubnonce66);
    if (err) return err;

    /* BIP-327 Sign verifies its own output: a fault during signing (glitch,
     * bit flip) could otherwise publish a value that leaks the key. This also
     * fails when the signer's key is not part of the session's aggregation. */
    secp256k1_musig_pubnonce pn;
    if (!secp256k1_musig_partial_sig_serialize(secp, psig32, &ps) ||
        !secp256k1_musig_pubnonce_parse(secp, &pn, pubnonce66) ||
        !secp256k1_musig_partial_sig_verify(secp, &ps, &pn, &kp_pub, &session->keyagg.cache,
                                            &session->session)) {
        memset(psig32, 0, 32);
        return KM_ERR_CRYPTO;
    }
    return KM_OK;
}

km_err km_musig_partial_verify(const km_ctx *ctx, const km_musig_session *session,
                               const unsigned char psig32[32], const unsigned char pubnonce66[66],
                               const unsigned char pubkey33[33]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    if (!session->valid) return KM_ERR_STATE;
    secp256k1_musig_partial_sig ps;
    secp256k1_musig_pubnonce pn;
    secp256k1_pubkey pk;
    if (!secp256k1_musig_partial_sig_parse(secp, &ps, psig32)) return KM_ERR_PARSE;
    if (!secp256k1_musig_pubnonce_parse(secp, &pn, pubnonce66)) return KM_ERR_INVALID_POINT;
    if (!secp256k1_ec_pubkey_parse(secp, &pk, pubkey33, 33)) return KM_ERR_INVALID_POINT;
    if (!secp256k1_musig_partial_sig_verify(secp, &ps, &pn, &pk, &session->keyagg.cache, &session->session))
        return KM_ERR_VERIFY;
    return KM_OK;
}

km_err km_musig_partial_agg(const km_ctx *ctx, unsigned char sig64[64], const km_musig_session *session,
                            const unsigned char *psigs32, size_t n, size_t *bad_index) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    memset(sig64, 0, 64);
    if (!session->valid) return KM_ERR_STATE;
    if (n == 0 || n > KM_MUSIG_MAX_SIGNERS) return KM_ERR_RANGE;

    secp256k1_musig_partial_sig *ps = calloc(n, sizeof *ps);
    const secp256k1_musig_partial_sig **ptrs = calloc(n, sizeof *ptrs);
    km_err err = KM_OK;
    if (!ps || !ptrs) {
        err = KM_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (!secp256k1_musig_partial_sig_parse(secp, &ps[i], psigs32 + 32 * i)) {
            if (bad_index) *bad_index = i;
            err = KM_ERR_PARSE;
            goto done;
        }
        ptrs[i] = &ps[i];
    }
    if (!secp256k1_musig_partial_sig_agg(secp, sig64, &session->session, ptrs, n)) err = KM_ERR_CRYPTO;
done:
    free(ps);
    free(ptrs);
    if (err) memset(sig64, 0, 64);
    return err;
}

km_err km_musig_verify_final(const km_ctx *ctx, const unsigned char sig64[64], const unsigned char msg32[32],
                             const km_musig_keyagg *keyagg) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    if (!keyagg->valid) return KM_ERR_STATE;
    secp256k1_xonly_pubkey q;
    if (!secp256k1_xonly_pubkey_parse(secp, &q, keyagg->output_xonly)) return KM_ERR_STATE;
    return secp256k1_schnorrsig_verify(secp, sig64, msg32, 32, &q) ? KM_OK : KM_ERR_VERIFY;
}
