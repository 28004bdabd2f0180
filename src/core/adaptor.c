/* adaptor.c — MuSig2 adaptor signatures (secp256k1-zkp semantics) built only
 * from mainline libsecp256k1's public functions.
 *
 * No curve or scalar arithmetic is written here: sums, negations and
 * multiplications of points go through ec_pubkey_combine / _negate /
 * _tweak_mul / _create, scalar sums through ec_seckey_tweak_add / _negate.
 * The only thing these functions cannot represent is the point at infinity
 * (and the scalar zero), which is why a small tagged point type carries it
 * explicitly: several intermediate values here (R1 + T, s*G - e*P, R' - T)
 * may legitimately be infinity and must not be confused with a parse error.
 */
#include <string.h>

#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "keymeld/adaptor.h"
#include "keymeld/hash.h"
#include "keymeld/secret.h"

/* A point that may be infinity. */
typedef struct {
    secp256k1_pubkey pk; /* valid only if !inf */
    int inf;
} km_pt;

static int is_zero32(const unsigned char *b) {
    unsigned char acc = 0;
    for (int i = 0; i < 32; i++)
        acc |= b[i];
    return acc == 0;
}

static int is_zero33(const unsigned char *b) {
    return b[0] == 0 && is_zero32(b + 1);
}

/* Parse a compressed point; 33 zero bytes mean infinity only if allow_inf. */
static int pt_parse(const secp256k1_context *secp, km_pt *out, const unsigned char in33[33], int allow_inf) {
    memset(out, 0, sizeof *out);
    if (is_zero33(in33)) {
        out->inf = 1;
        return allow_inf;
    }
    return secp256k1_ec_pubkey_parse(secp, &out->pk, in33, 33);
}

/* Infinity serializes as 33 zero bytes (BIP-327 aggnonce, conduition MaybePoint). */
static void pt_serialize(const secp256k1_context *secp, unsigned char out33[33], const km_pt *p) {
    size_t len = 33;
    if (p->inf || !secp256k1_ec_pubkey_serialize(secp, out33, &len, &p->pk, SECP256K1_EC_COMPRESSED))
        memset(out33, 0, 33);
}

static void pt_add(const secp256k1_context *secp, km_pt *out, const km_pt *a, const km_pt *b) {
    if (a->inf) {
        *out = *b;
        return;
    }
    if (b->inf) {
        *out = *a;
        return;
    }
    const secp256k1_pubkey *ins[2] = {&a->pk, &b->pk};
    km_pt r;
    memset(&r, 0, sizeof r);
    /* combine fails exactly when the sum is infinity (inputs are valid). */
    if (!secp256k1_ec_pubkey_combine(secp, &r.pk, ins, 2)) r.inf = 1;
    *out = r;
}

static void pt_negate(const secp256k1_context *secp, km_pt *p) {
    if (!p->inf) (void)secp256k1_ec_pubkey_negate(secp, &p->pk); /* returns 1 always */
}

static int pt_equal(const secp256k1_context *secp, const km_pt *a, const km_pt *b) {
    if (a->inf || b->inf) return a->inf == b->inf;
    return secp256k1_ec_pubkey_cmp(secp, &a->pk, &b->pk) == 0;
}

/* Scalar range check for a signature's s: zero is a valid s (BIP-340 only
 * requires s < n), but seckey_verify rejects it, so zero is accepted apart. */
static int s_in_range(const secp256k1_context *secp, const unsigned char s32[32]) {
    return is_zero32(s32) || secp256k1_ec_seckey_verify(secp, s32);
}

/* k*G for a scalar k in [0, n); zero gives infinity. */
static void pt_mul_g(const secp256k1_context *secp, km_pt *out, const unsigned char k32[32]) {
    memset(out, 0, sizeof *out);
    if (is_zero32(k32) || !secp256k1_ec_pubkey_create(secp, &out->pk, k32)) out->inf = 1;
}

/* Lift an x coordinate to the point with even y (BIP-340 lift_x). */
static int lift_x(const secp256k1_context *secp, km_pt *out, const unsigned char x32[32]) {
    unsigned char buf[33];
    buf[0] = 0x02;
    memcpy(buf + 1, x32, 32);
    memset(out, 0, sizeof *out);
    return secp256k1_ec_pubkey_parse(secp, &out->pk, buf, 33);
}

/* X = s*G - e*P with e = BIP-340 challenge over (rx, x(P), msg). This is the
 * nonce a BIP-340 verifier reconstructs; for a pre-signature it is +-R
 * instead of R' = R + T. The caller has range-checked s and lifted P. */
static km_err challenge_point(const secp256k1_context *secp, km_pt *X, const unsigned char rx32[32],
                              const unsigned char s32[32], const km_pt *P, const unsigned char xonly_pk32[32],
                              const unsigned char msg32[32]) {
    unsigned char buf[96], e[32];
    memcpy(buf, rx32, 32);
    memcpy(buf + 32, xonly_pk32, 32);
    memcpy(buf + 64, msg32, 32);
    km_tagged_hash(e, "BIP0340/challenge", buf, sizeof buf);
    /* tweak_mul takes e only in [1, n). A hash >= n (or 0) has probability
     * below 2^-127 and cannot be aimed at without breaking SHA-256, so
     * refusing such an input (instead of reducing mod n by hand) costs nothing. */
    if (!secp256k1_ec_seckey_verify(secp, e)) return KM_ERR_CRYPTO;
    km_pt eP = *P;
    if (!secp256k1_ec_pubkey_tweak_mul(secp, &eP.pk, e)) return KM_ERR_CRYPTO;
    pt_negate(secp, &eP);
    km_pt sG;
    pt_mul_g(secp, &sG, s32);
    pt_add(secp, X, &sG, &eP);
    return KM_OK;
}

/* The pre-signature check. On KM_OK, *odd is the y parity of R' and *X is
 * s*G - e*P (= R if R' is even, -R if odd, where R = R' - T).
 *
 * Derivation: the signers negate their nonce when R' has odd y, so
 * s = (+-k) + e*d with d*G = P (even y), i.e. X = +-R.
 *   R' even: R' = lift_x(x(R')) = L and X = R = R' - T, so X + T == L.
 *   R' odd:  R' = -L and X = -R = -(R' - T) = L + T, so X - T == L.
 * Both cannot hold at once (that would need T = -T, i.e. T = infinity). */
static km_err presig_check(const secp256k1_context *secp, const unsigned char presig64[64], const km_pt *T,
                           const unsigned char xonly_pk32[32], const unsigned char msg32[32], int *odd,
                           km_pt *X) {
    km_pt P, L;
    if (!lift_x(secp, &P, xonly_pk32)) return KM_ERR_INVALID_POINT;
    if (!lift_x(secp, &L, presig64)) return KM_ERR_INVALID_POINT;
    if (!s_in_range(secp, presig64 + 32)) return KM_ERR_RANGE;
    km_err err = challenge_point(secp, X, presig64, presig64 + 32, &P, xonly_pk32, msg32);
    if (err) return err;
    km_pt sum, diff, negT = *T;
    pt_negate(secp, &negT);
    pt_add(secp, &sum, X, T);
    pt_add(secp, &diff, X, &negT);
    if (pt_equal(secp, &sum, &L)) {
        *odd = 0;
        return KM_OK;
    }
    if (pt_equal(secp, &diff, &L)) {
        *odd = 1;
        return KM_OK;
    }
    return KM_ERR_VERIFY;
}

km_err km_adaptor_fold_aggnonce(const km_ctx *ctx, unsigned char out66[66],
                                const unsigned char aggnonce66[66], const unsigned char adaptor33[33]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    km_pt r1, r2, t;
    unsigned char res[66];
    if (!pt_parse(secp, &r1, aggnonce66, 1) || !pt_parse(secp, &r2, aggnonce66 + 33, 1) ||
        !pt_parse(secp, &t, adaptor33, 0)) {
        memset(out66, 0, 66);
        return KM_ERR_INVALID_POINT;
    }
    /* zkp adds T to R1 before b = H(R1 || R2 || Q || m) is computed, so b
     * commits to T; folding here, before nonce_process, reproduces that. If
     * R1 = -T the sum is infinity, encoded as zeros like any infinite half. */
    pt_add(secp, &r1, &r1, &t);
    pt_serialize(secp, res, &r1);
    memcpy(res + 33, aggnonce66 + 33, 33);
    memcpy(out66, res, 66);
    return KM_OK;
}

km_err km_adaptor_fold_musig_aggnonce(const km_ctx *ctx, secp256k1_musig_aggnonce *out,
                                      const secp256k1_musig_aggnonce *in, const unsigned char adaptor33[33]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    unsigned char buf[66];
    if (!secp256k1_musig_aggnonce_serialize(secp, buf, in)) {
        memset(out, 0, sizeof *out);
        return KM_ERR_INVALID_POINT;
    }
    km_err err = km_adaptor_fold_aggnonce(ctx, buf, buf, adaptor33);
    if (!err && !secp256k1_musig_aggnonce_parse(secp, out, buf)) err = KM_ERR_CRYPTO;
    if (err) memset(out, 0, sizeof *out);
    return err;
}

km_err km_adaptor_presig_verify(const km_ctx *ctx, const unsigned char presig64[64],
                                const unsigned char adaptor33[33], const unsigned char xonly_pk32[32],
                                const unsigned char msg32[32]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    km_pt T, X;
    int odd;
    if (!pt_parse(secp, &T, adaptor33, 0)) return KM_ERR_INVALID_POINT;
    return presig_check(secp, presig64, &T, xonly_pk32, msg32, &odd, &X);
}

km_err km_adaptor_adapt(const km_ctx *ctx, unsigned char sig64[64], const unsigned char presig64[64],
                        const unsigned char secret32[32], const unsigned char xonly_pk32[32],
                        const unsigned char msg32[32]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    unsigned char t[32], sig[64];
    km_pt T, X;
    secp256k1_xonly_pubkey q;
    int odd = 0;
    km_err err = KM_OK;
    memcpy(t, secret32, 32);
    if (!secp256k1_ec_seckey_verify(secp, t)) {
        err = KM_ERR_INVALID_KEY;
        goto out;
    }
    memset(&T, 0, sizeof T);
    if (!secp256k1_ec_pubkey_create(secp, &T.pk, t)) {
        err = KM_ERR_CRYPTO;
        goto out;
    }
    /* Verifying against t*G both rejects a wrong secret and tells the nonce
     * parity, which fixes the sign: the signers used -k when R' was odd, so
     * the completed s' = s - t there and s + t otherwise. */
    err = presig_check(secp, presig64, &T, xonly_pk32, msg32, &odd, &X);
    if (err) goto out;
    if (odd && !secp256k1_ec_seckey_negate(secp, t)) {
        err = KM_ERR_CRYPTO;
        goto out;
    }
    memcpy(sig, presig64, 32);
    memcpy(sig + 32, t, 32);
    /* s is < n (checked); a zero result (s = -+t) would need a forged
     * pre-signature that passed the check above, so it is a library fault. */
    if (!secp256k1_ec_seckey_tweak_add(secp, sig + 32, presig64 + 32)) {
        err = KM_ERR_CRYPTO;
        goto out;
    }
    /* Never release a signature that does not verify: this is the check an
     * outside BIP-340 verifier will apply. */
    if (!secp256k1_xonly_pubkey_parse(secp, &q, xonly_pk32) ||
        !secp256k1_schnorrsig_verify(secp, sig, msg32, 32, &q)) {
        err = KM_ERR_VERIFY;
        goto out;
    }
    memcpy(sig64, sig, 64);
out:
    km_wipe(t, sizeof t);
    if (err) memset(sig64, 0, 64);
    return err;
}

/* out = a - b for scalars in [0, n). Returns 0 if the difference is zero. */
static int scalar_sub(const secp256k1_context *secp, unsigned char out32[32], const unsigned char a32[32],
                      const unsigned char b32[32]) {
    unsigned char nb[32];
    int ok = 1;
    if (is_zero32(b32)) {
        memcpy(out32, a32, 32);
    } else {
        memcpy(nb, b32, 32);
        ok = secp256k1_ec_seckey_negate(secp, nb);
        if (ok && is_zero32(a32)) {
            memcpy(out32, nb, 32);
        } else if (ok) {
            memcpy(out32, a32, 32);
            ok = secp256k1_ec_seckey_tweak_add(secp, out32, nb); /* 0 iff a == b */
        }
    }
    km_wipe(nb, sizeof nb);
    if (!ok || is_zero32(out32)) {
        km_wipe(out32, 32);
        return 0;
    }
    return 1;
}

km_err km_adaptor_extract(const km_ctx *ctx, unsigned char secret32[32], const unsigned char presig64[64],
                          const unsigned char sig64[64], const unsigned char adaptor33[33]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    unsigned char t[32];
    km_pt T, cand;
    km_err err = KM_ERR_VERIFY;
    memset(t, 0, sizeof t);
    if (!pt_parse(secp, &T, adaptor33, 0)) {
        err = KM_ERR_INVALID_POINT;
        goto out;
    }
    if (!s_in_range(secp, presig64 + 32) || !s_in_range(secp, sig64 + 32)) {
        err = KM_ERR_RANGE;
        goto out;
    }
    /* A completion keeps the nonce; a signature with another R is unrelated
     * and its s difference means nothing. */
    if (memcmp(presig64, sig64, 32) != 0) goto out;
    if (!scalar_sub(secp, t, sig64 + 32, presig64 + 32)) goto out;
    /* The sign of t depends on R''s parity, which we do not need to know:
     * only one of +-t has t*G == T, and that equality is the proof. */
    pt_mul_g(secp, &cand, t);
    if (!pt_equal(secp, &cand, &T)) {
        if (!secp256k1_ec_seckey_negate(secp, t)) goto out;
        pt_mul_g(secp, &cand, t);
        if (!pt_equal(secp, &cand, &T)) goto out;
    }
    memcpy(secret32, t, 32);
    err = KM_OK;
out:
    km_wipe(t, sizeof t);
    if (err) km_wipe(secret32, 32);
    return err;
}

km_err km_adaptor_point_from_secret(const km_ctx *ctx, unsigned char point33[33],
                                    const unsigned char secret32[32]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    km_pt T;
    memset(&T, 0, sizeof T);
    if (!secp256k1_ec_seckey_verify(secp, secret32) || !secp256k1_ec_pubkey_create(secp, &T.pk, secret32)) {
        memset(point33, 0, 33);
        return KM_ERR_INVALID_KEY;
    }
    pt_serialize(secp, point33, &T);
    return KM_OK;
}

km_err km_adaptor_point_sum(const km_ctx *ctx, unsigned char out33[33], const unsigned char *const *points,
                            size_t n) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    secp256k1_pubkey pks[KM_ADAPTOR_MAX_TERMS];
    const secp256k1_pubkey *ins[KM_ADAPTOR_MAX_TERMS];
    km_pt sum;
    memset(&sum, 0, sizeof sum);
    if (n == 0 || n > KM_ADAPTOR_MAX_TERMS) {
        memset(out33, 0, 33);
        return KM_ERR_ARG;
    }
    for (size_t i = 0; i < n; i++) {
        if (!secp256k1_ec_pubkey_parse(secp, &pks[i], points[i], 33)) {
            memset(out33, 0, 33);
            return KM_ERR_INVALID_POINT;
        }
        ins[i] = &pks[i];
    }
    /* An infinite sum (points cancelling) would be an adaptor with the known
     * secret 0: refuse it rather than sign something anybody can complete. */
    if (!secp256k1_ec_pubkey_combine(secp, &sum.pk, ins, n)) {
        memset(out33, 0, 33);
        return KM_ERR_INVALID_POINT;
    }
    pt_serialize(secp, out33, &sum);
    return KM_OK;
}

km_err km_adaptor_secret_sum(const km_ctx *ctx, unsigned char out32[32], const unsigned char *const *secrets,
                             size_t n) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    unsigned char acc[32];
    km_err err = KM_OK;
    memset(acc, 0, sizeof acc);
    if (n == 0 || n > KM_ADAPTOR_MAX_TERMS) {
        err = KM_ERR_ARG;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (!secp256k1_ec_seckey_verify(secp, secrets[i])) {
            err = KM_ERR_INVALID_KEY;
            goto out;
        }
    /* acc may pass through zero (t1 + t2 = 0) and leave it again; tweak_add
     * cannot hold zero, so a zero partial sum is tracked in acc_zero. The
     * flag changes only on tweak_add's verdict (the sum is zero), never by
     * looking at the secret bytes: no branch depends on the secrets' values
     * (tests/ct/ct_secrets.c). */
    int acc_zero = 1;
    for (size_t i = 0; i < n; i++) {
        if (acc_zero) {
            memcpy(acc, secrets[i], 32);
            acc_zero = 0;
        } else if (!secp256k1_ec_seckey_tweak_add(secp, acc, secrets[i])) {
            km_wipe(acc, sizeof acc);
            acc_zero = 1;
        }
    }
    if (acc_zero) {
        err = KM_ERR_INVALID_KEY;
        goto out;
    }
    memcpy(out32, acc, 32);
out:
    km_wipe(acc, sizeof acc);
    if (err) km_wipe(out32, 32);
    return err;
}

km_err km_adaptor_legacy_from_presig(const km_ctx *ctx, unsigned char out65[65],
                                     const unsigned char presig64[64], const unsigned char adaptor33[33],
                                     const unsigned char xonly_pk32[32], const unsigned char msg32[32]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    unsigned char res[65];
    km_pt T, X;
    int odd = 0;
    km_err err = KM_ERR_INVALID_POINT;
    if (pt_parse(secp, &T, adaptor33, 0)) err = presig_check(secp, presig64, &T, xonly_pk32, msg32, &odd, &X);
    if (err) {
        memset(out65, 0, 65);
        return err;
    }
    /* X = R when R' is even, -R when odd (see presig_check). */
    if (odd) pt_negate(secp, &X);
    pt_serialize(secp, res, &X);
    memcpy(res + 33, presig64 + 32, 32);
    memcpy(out65, res, 65);
    return KM_OK;
}

/* The legacy equation s*G == (R' even ? R : -R) + e*P with R' = R + T. It
 * carries the full point R, so it is checked as such: the x-only
 * pre-signature check alone would also accept an R of -R' - T. */
static km_err legacy_check(const secp256k1_context *secp, unsigned char presig64[64],
                           const unsigned char legacy65[65], const unsigned char adaptor33[33],
                           const unsigned char xonly_pk32[32], const unsigned char msg32[32]) {
    km_pt R, T, P, Rp, X;
    unsigned char rp[33];
    if (!pt_parse(secp, &R, legacy65, 1) || !pt_parse(secp, &T, adaptor33, 0) ||
        !lift_x(secp, &P, xonly_pk32))
        return KM_ERR_INVALID_POINT;
    if (!s_in_range(secp, legacy65 + 33)) return KM_ERR_RANGE;
    pt_add(secp, &Rp, &R, &T);
    if (Rp.inf) return KM_ERR_VERIFY;
    pt_serialize(secp, rp, &Rp);
    km_err err = challenge_point(secp, &X, rp + 1, legacy65 + 33, &P, xonly_pk32, msg32);
    if (err) return err;
    if (rp[0] == 0x03) pt_negate(secp, &R);
    if (!pt_equal(secp, &X, &R)) return KM_ERR_VERIFY;
    memcpy(presig64, rp + 1, 32);
    memcpy(presig64 + 32, legacy65 + 33, 32);
    return KM_OK;
}

km_err km_adaptor_legacy_to_presig(const km_ctx *ctx, unsigned char presig64[64],
                                   const unsigned char legacy65[65], const unsigned char adaptor33[33],
                                   const unsigned char xonly_pk32[32], const unsigned char msg32[32]) {
    unsigned char res[64];
    km_err err = legacy_check(km_ctx_secp(ctx), res, legacy65, adaptor33, xonly_pk32, msg32);
    if (err)
        memset(presig64, 0, 64);
    else
        memcpy(presig64, res, 64);
    return err;
}

km_err km_adaptor_legacy_verify(const km_ctx *ctx, const unsigned char legacy65[65],
                                const unsigned char adaptor33[33], const unsigned char xonly_pk32[32],
                                const unsigned char msg32[32]) {
    unsigned char res[64];
    return legacy_check(km_ctx_secp(ctx), res, legacy65, adaptor33, xonly_pk32, msg32);
}
