/* test_adaptor.c — MuSig2 adaptor signatures on mainline libsecp256k1.
 *
 * Key aggregation and the five taproot tweak modes go through libkeymeld's
 * musig API (km_musig_key_agg / km_musig_keyagg_tweak, cross-checked against
 * libsecp256k1); nonces and partial signatures are driven with libsecp256k1's
 * musig module directly, so every partial signature is produced by mainline
 * partial_sign and checked by mainline partial_sig_verify. km_adaptor_* enters
 * where the adaptor does: folding T into the aggregate nonce, pre-signature
 * verification, adaptation, extraction and the legacy 65-byte form.
 * test_adaptor_musig.c runs the same flow entirely through km_musig_*.
 *
 * Randomness comes from a seeded generator (SHA-256 in counter mode) so that a
 * failure can be replayed: the seed is printed, and KM_TEST_SEED=<64 hex>
 * replays it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_musig.h>
#include <secp256k1_schnorrsig.h>

#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "keymeld/musig.h"
#include "keymeld/taproot.h"
#include "seeded_rng.h"

/* Random adaptor cases. libsecp256k1 is linked as a prebuilt (uninstrumented)
 * library, so the sanitizer build runs all of them too, within a few seconds. */
#define RANDOM_CASES 1000

/* ---- deterministic randomness ------------------------------------------ */

static unsigned rnd_below(unsigned n) {
    unsigned char b[4];
    rnd(b, 4);
    return (unsigned)(((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24) %
                      n);
}

static void rnd_msg(unsigned char msg32[32]) {
    rnd(msg32, 32);
}

/* ---- helpers over libsecp256k1 ------------------------------------------ */

static void ser_pub(unsigned char out33[33], const secp256k1_pubkey *pk) {
    size_t len = 33;
    assert_true(secp256k1_ec_pubkey_serialize(g_secp, out33, &len, pk, SECP256K1_EC_COMPRESSED));
}

static void parse_pub(secp256k1_pubkey *pk, const unsigned char in33[33]) {
    assert_true(secp256k1_ec_pubkey_parse(g_secp, pk, in33, 33));
}

static int bip340_ok(const unsigned char sig64[64], const unsigned char msg32[32],
                     const unsigned char xq[32]) {
    secp256k1_xonly_pubkey q;
    assert_true(secp256k1_xonly_pubkey_parse(g_secp, &q, xq));
    return secp256k1_schnorrsig_verify(g_secp, sig64, msg32, 32, &q);
}

/* ---- a MuSig2 group with a taproot tweak -------------------------------- */

enum { MODE_NONE, MODE_BIP86, MODE_BIP341, MODE_PLAIN, MODE_XONLY, MODE_COUNT };
static const char *const mode_names[MODE_COUNT] = {"none", "bip86", "bip341", "plain", "xonly"};

#define MAX_SIGNERS 5

typedef struct {
    size_t n;
    secp256k1_keypair kp[MAX_SIGNERS];
    secp256k1_pubkey pk[MAX_SIGNERS];
    km_musig_keyagg ka;                 /* libkeymeld's aggregation (h-musig API) */
    secp256k1_musig_keyagg_cache cache; /* = ka.cache, used with libsecp directly */
    unsigned char xq[32];               /* x-only tweaked output key */
} group;

/* Key aggregation and tweak go through km_musig_key_agg / km_musig_keyagg_tweak;
 * the resulting output key is cross-checked against libsecp256k1's own x-only
 * tweak (BIP-341 taproot_output_script) and, for plain/xonly, against the
 * musig tweak functions applied to a fresh cache. */
static void make_group(group *g, size_t n, int mode) {
    unsigned char pks33[MAX_SIGNERS * 33], data[32], tw[32], buf[64];
    km_tweak tweak;
    memset(g, 0, sizeof *g);
    g->n = n;
    for (size_t i = 0; i < n; i++) {
        unsigned char sk[32];
        rnd_scalar(sk);
        assert_true(secp256k1_keypair_create(g_secp, &g->kp[i], sk));
        assert_true(secp256k1_keypair_pub(g_secp, &g->pk[i], &g->kp[i]));
        ser_pub(pks33 + 33 * i, &g->pk[i]);
    }
    assert_int_equal(km_musig_key_agg(g_ctx, &g->ka, pks33, n, NULL), KM_OK);
    switch (mode) {
    case MODE_NONE:
        km_tweak_none(&tweak);
        break;
    case MODE_BIP86:
        km_tweak_bip86(&tweak);
        break;
    case MODE_BIP341:
        rnd(data, 32); /* a random merkle root */
        km_tweak_bip341(&tweak, data);
        break;
    case MODE_PLAIN:
        rnd_scalar(data);
        km_tweak_plain(&tweak, data);
        break;
    case MODE_XONLY:
        rnd_scalar(data);
        km_tweak_xonly(&tweak, data);
        break;
    default:
        fail();
    }
    assert_int_equal(km_musig_keyagg_tweak(g_ctx, &g->ka, &tweak), KM_OK);
    g->cache = g->ka.cache;
    memcpy(g->xq, g->ka.output_xonly, 32);

    /* independent check of the output key */
    const secp256k1_pubkey *pks[MAX_SIGNERS];
    secp256k1_musig_keyagg_cache cache;
    secp256k1_xonly_pubkey agg, xq;
    secp256k1_pubkey q;
    unsigned char agg32[32], q32[32];
    for (size_t i = 0; i < n; i++)
        pks[i] = &g->pk[i];
    assert_true(secp256k1_ec_pubkey_sort(g_secp, pks, n));
    assert_true(secp256k1_musig_pubkey_agg(g_secp, &agg, &cache, pks, n));
    assert_true(secp256k1_xonly_pubkey_serialize(g_secp, agg32, &agg));
    assert_memory_equal(agg32, g->ka.agg_xonly, 32);
    if (mode == MODE_BIP86 || mode == MODE_BIP341) {
        memcpy(buf, agg32, 32);
        memcpy(buf + 32, data, 32);
        km_tagged_hash(tw, "TapTweak", buf, mode == MODE_BIP86 ? 32 : 64);
        assert_true(secp256k1_xonly_pubkey_tweak_add(g_secp, &q, &agg, tw));
    } else if (mode == MODE_PLAIN) {
        assert_true(secp256k1_musig_pubkey_ec_tweak_add(g_secp, &q, &cache, data));
    } else if (mode == MODE_XONLY) {
        assert_true(secp256k1_musig_pubkey_xonly_tweak_add(g_secp, &q, &cache, data));
    } else {
        assert_true(secp256k1_musig_pubkey_get(g_secp, &q, &cache));
    }
    assert_true(secp256k1_xonly_pubkey_from_pubkey(g_secp, &xq, NULL, &q));
    assert_true(secp256k1_xonly_pubkey_serialize(g_secp, q32, &xq));
    assert_memory_equal(q32, g->xq, 32);
}

static size_t g_sessions, g_partials, g_unfolded_checks;

/* One complete MuSig2 adaptor session on FRESH nonces: every signer makes a
 * nonce, the aggregate nonce gets T folded in, each signer signs and every
 * partial signature is verified with the mainline verifier. Out: presig64. */
static void musig_presign(const group *g, const unsigned char msg32[32], const unsigned char T33[33],
                          unsigned char presig64[64]) {
    secp256k1_musig_secnonce sec[MAX_SIGNERS];
    secp256k1_musig_pubnonce pub[MAX_SIGNERS];
    const secp256k1_musig_pubnonce *pubs[MAX_SIGNERS];
    secp256k1_musig_partial_sig ps[MAX_SIGNERS];
    const secp256k1_musig_partial_sig *pss[MAX_SIGNERS];
    secp256k1_musig_aggnonce agg, folded;
    secp256k1_musig_session session;
    unsigned char agg66[66], folded66[66];

    for (size_t i = 0; i < g->n; i++) {
        unsigned char secrand[32], sk[32];
        rnd(secrand, 32);
        assert_true(secp256k1_keypair_sec(g_secp, sk, &g->kp[i]));
        assert_true(secp256k1_musig_nonce_gen(g_secp, &sec[i], &pub[i], secrand, sk, &g->pk[i], msg32,
                                              &g->cache, NULL));
        pubs[i] = &pub[i];
    }
    assert_true(secp256k1_musig_nonce_agg(g_secp, &agg, pubs, g->n));
    /* Both forms of the fold must agree. */
    assert_true(secp256k1_musig_aggnonce_serialize(g_secp, agg66, &agg));
    assert_int_equal(km_adaptor_fold_aggnonce(g_ctx, folded66, agg66, T33), KM_OK);
    assert_int_equal(km_adaptor_fold_musig_aggnonce(g_ctx, &folded, &agg, T33), KM_OK);
    unsigned char check66[66];
    assert_true(secp256k1_musig_aggnonce_serialize(g_secp, check66, &folded));
    assert_memory_equal(check66, folded66, 66);
    assert_memory_equal(folded66 + 33, agg66 + 33, 33); /* R2 untouched */

    assert_true(secp256k1_musig_nonce_process(g_secp, &session, &folded, msg32, &g->cache));
    for (size_t i = 0; i < g->n; i++) {
        assert_true(secp256k1_musig_partial_sign(g_secp, &ps[i], &sec[i], &g->kp[i], &g->cache, &session));
        assert_true(
            secp256k1_musig_partial_sig_verify(g_secp, &ps[i], &pub[i], &g->pk[i], &g->cache, &session));
        pss[i] = &ps[i];
        g_partials++;
    }
    /* A verifier that did not fold T (or folded another point) has another b
     * and R', so it must reject the partial signatures: the adaptor is bound
     * into every partial signature. Checked on a share of sessions. */
    if (g_sessions % 8 == 0) {
        secp256k1_musig_session plain;
        assert_true(secp256k1_musig_nonce_process(g_secp, &plain, &agg, msg32, &g->cache));
        assert_false(
            secp256k1_musig_partial_sig_verify(g_secp, &ps[0], &pub[0], &g->pk[0], &g->cache, &plain));
        g_unfolded_checks++;
    }
    assert_true(secp256k1_musig_partial_sig_agg(g_secp, presig64, &session, pss, g->n));
    g_sessions++;
}

/* ---- the checks every pre-signature must pass ----------------------------- */

static int is_verify_or_point(km_err e) {
    return e == KM_ERR_VERIFY || e == KM_ERR_INVALID_POINT;
}

/* R_alt = -(R + T) - T: the other legacy R whose R + T has the same x as R'.
 * The x-only pre-signature check cannot tell it apart; the legacy check must. */
static void legacy_alt_R(unsigned char out33[33], const unsigned char R33[33], const unsigned char T33[33]) {
    secp256k1_pubkey R, T, sum, negT, alt;
    parse_pub(&R, R33);
    parse_pub(&T, T33);
    const secp256k1_pubkey *a[2] = {&R, &T};
    assert_true(secp256k1_ec_pubkey_combine(g_secp, &sum, a, 2));
    assert_true(secp256k1_ec_pubkey_negate(g_secp, &sum));
    negT = T;
    assert_true(secp256k1_ec_pubkey_negate(g_secp, &negT));
    const secp256k1_pubkey *b[2] = {&sum, &negT};
    assert_true(secp256k1_ec_pubkey_combine(g_secp, &alt, b, 2));
    ser_pub(out33, &alt);
}

static void check_presig(const unsigned char presig[64], const unsigned char T33[33],
                         const unsigned char t[32], const unsigned char xq[32], const unsigned char msg[32]) {
    unsigned char sig[64], t_out[32], bad[64], leg[65], badleg[65], back[64], wrong[32], wrongT[33];
    const unsigned char zero64[64] = {0};

    /* the pre-signature is not a signature */
    assert_false(bip340_ok(presig, msg, xq));
    assert_int_equal(km_adaptor_presig_verify(g_ctx, presig, T33, xq, msg), KM_OK);

    /* legacy 65-byte form round trip */
    assert_int_equal(km_adaptor_legacy_from_presig(g_ctx, leg, presig, T33, xq, msg), KM_OK);
    assert_int_equal(km_adaptor_legacy_verify(g_ctx, leg, T33, xq, msg), KM_OK);
    assert_int_equal(km_adaptor_legacy_to_presig(g_ctx, back, leg, T33, xq, msg), KM_OK);
    assert_memory_equal(back, presig, 64);
    assert_memory_equal(leg + 33, presig + 32, 32);

    /* adapt, verify as BIP-340 under the tweaked key, extract */
    assert_int_equal(km_adaptor_adapt(g_ctx, sig, presig, t, xq, msg), KM_OK);
    assert_true(bip340_ok(sig, msg, xq));
    assert_memory_equal(sig, presig, 32); /* same nonce R' */
    assert_int_equal(km_adaptor_extract(g_ctx, t_out, presig, sig, T33), KM_OK);
    assert_memory_equal(t_out, t, 32);
    /* the legacy client's adapt rule R' = R + tG, s' = s +- t gives the same signature:
     * checked through its equivalent, the adapted nonce's x equals presig's x */
    {
        secp256k1_pubkey R, T, Rp;
        unsigned char rp[33];
        parse_pub(&R, leg);
        parse_pub(&T, T33);
        const secp256k1_pubkey *a[2] = {&R, &T};
        assert_true(secp256k1_ec_pubkey_combine(g_secp, &Rp, a, 2));
        ser_pub(rp, &Rp);
        assert_memory_equal(rp + 1, sig, 32);
    }

    /* attacker paths: tampered s */
    memcpy(bad, presig, 64);
    bad[32 + rnd_below(32)] ^= (unsigned char)(1u << rnd_below(8));
    km_err e = km_adaptor_presig_verify(g_ctx, bad, T33, xq, msg);
    assert_true(e == KM_ERR_VERIFY || e == KM_ERR_RANGE);
    assert_int_not_equal(km_adaptor_adapt(g_ctx, sig, bad, t, xq, msg), KM_OK);
    assert_memory_equal(sig, zero64, 64);
    /* tampered x(R') */
    memcpy(bad, presig, 64);
    bad[rnd_below(32)] ^= (unsigned char)(1u << rnd_below(8));
    assert_true(is_verify_or_point(km_adaptor_presig_verify(g_ctx, bad, T33, xq, msg)));
    assert_true(is_verify_or_point(km_adaptor_adapt(g_ctx, sig, bad, t, xq, msg)));
    /* wrong secret / wrong point / wrong message / wrong key */
    rnd_adaptor(wrong, wrongT);
    assert_int_equal(km_adaptor_adapt(g_ctx, sig, presig, wrong, xq, msg), KM_ERR_VERIFY);
    assert_memory_equal(sig, zero64, 64);
    assert_int_equal(km_adaptor_presig_verify(g_ctx, presig, wrongT, xq, msg), KM_ERR_VERIFY);
    assert_int_equal(km_adaptor_legacy_verify(g_ctx, leg, wrongT, xq, msg), KM_ERR_VERIFY);
    {
        unsigned char msg2[32], xq2[32];
        memcpy(msg2, msg, 32);
        msg2[0] ^= 1;
        assert_int_equal(km_adaptor_presig_verify(g_ctx, presig, T33, xq, msg2), KM_ERR_VERIFY);
        /* another valid x-only key: x(T) is one */
        memcpy(xq2, wrongT + 1, 32);
        assert_int_equal(km_adaptor_presig_verify(g_ctx, presig, T33, xq2, msg), KM_ERR_VERIFY);
    }
    /* extraction with the wrong point, or from a signature on another nonce */
    assert_int_equal(km_adaptor_extract(g_ctx, t_out, presig, sig, wrongT), KM_ERR_VERIFY);
    {
        unsigned char good[64], other[64];
        assert_int_equal(km_adaptor_adapt(g_ctx, good, presig, t, xq, msg), KM_OK);
        memcpy(other, good, 64);
        other[5] ^= 0x10;
        assert_int_equal(km_adaptor_extract(g_ctx, t_out, presig, other, T33), KM_ERR_VERIFY);
        memcpy(other, good, 64);
        other[63] ^= 0x01; /* s' off by one bit: t would be wrong, t*G != T */
        e = km_adaptor_extract(g_ctx, t_out, presig, other, T33);
        assert_true(e == KM_ERR_VERIFY || e == KM_ERR_RANGE);
        assert_memory_equal(t_out, zero64, 32);
    }
    /* legacy form: tampered s, flipped R parity, and the x-twin of R */
    memcpy(badleg, leg, 65);
    badleg[33 + rnd_below(32)] ^= (unsigned char)(1u << rnd_below(8));
    e = km_adaptor_legacy_verify(g_ctx, badleg, T33, xq, msg);
    assert_true(e == KM_ERR_VERIFY || e == KM_ERR_RANGE);
    memcpy(badleg, leg, 65);
    badleg[0] ^= 0x01; /* 02 <-> 03: -R */
    assert_int_equal(km_adaptor_legacy_verify(g_ctx, badleg, T33, xq, msg), KM_ERR_VERIFY);
    memcpy(badleg, leg, 65);
    legacy_alt_R(badleg, leg, T33);
    assert_int_equal(km_adaptor_legacy_verify(g_ctx, badleg, T33, xq, msg), KM_ERR_VERIFY);
    assert_int_equal(km_adaptor_legacy_to_presig(g_ctx, back, badleg, T33, xq, msg), KM_ERR_VERIFY);
    assert_memory_equal(back, zero64, 64);
}

/* ---- the 1,000 random sessions -------------------------------------------- */

enum { TYPE_SINGLE, TYPE_AND, TYPE_OR };

static void test_random_sessions(void **state) {
    (void)state;
    static const size_t sizes[3] = {2, 3, 5};
    size_t per_type[3] = {0}, per_mode[MODE_COUNT] = {0}, per_size[3] = {0};
    size_t presigs = 0;
    g_sessions = g_partials = g_unfolded_checks = 0;

    for (size_t c = 0; c < RANDOM_CASES; c++) {
        int type = (int)(c % 3);
        size_t si = (c / 3) % 3;
        int mode = (int)((c / 9) % MODE_COUNT);
        group g;
        unsigned char msg[32];
        make_group(&g, sizes[si], mode);
        rnd_msg(msg);
        per_type[type]++;
        per_mode[mode]++;
        per_size[si]++;

        if (type == TYPE_SINGLE) {
            unsigned char t[32], T[33], presig[64];
            rnd_adaptor(t, T);
            musig_presign(&g, msg, T, presig);
            check_presig(presig, T, t, g.xq, msg);
            presigs++;
        } else if (type == TYPE_AND) {
            size_t m = 2 + rnd_below(2);
            unsigned char ts[3][32], Ts[3][33], t[32], T[33], Tcheck[33], presig[64], sig[64];
            const unsigned char *tp[3], *Tp[3];
            for (size_t i = 0; i < m; i++) {
                rnd_adaptor(ts[i], Ts[i]);
                tp[i] = ts[i];
                Tp[i] = Ts[i];
            }
            assert_int_equal(km_adaptor_point_sum(g_ctx, T, Tp, m), KM_OK);
            assert_int_equal(km_adaptor_secret_sum(g_ctx, t, tp, m), KM_OK);
            assert_int_equal(km_adaptor_point_from_secret(g_ctx, Tcheck, t), KM_OK);
            assert_memory_equal(Tcheck, T, 33);
            musig_presign(&g, msg, T, presig);
            check_presig(presig, T, t, g.xq, msg); /* extracted secret == the sum */
            /* every secret is needed: each single one and each partial sum fails */
            for (size_t i = 0; i < m; i++) {
                assert_int_equal(km_adaptor_adapt(g_ctx, sig, presig, ts[i], g.xq, msg), KM_ERR_VERIFY);
                assert_int_equal(km_adaptor_presig_verify(g_ctx, presig, Ts[i], g.xq, msg), KM_ERR_VERIFY);
            }
            unsigned char part[32];
            assert_int_equal(km_adaptor_secret_sum(g_ctx, part, tp, m - 1), KM_OK);
            assert_int_equal(km_adaptor_adapt(g_ctx, sig, presig, part, g.xq, msg), KM_ERR_VERIFY);
            presigs++;
        } else {
            /* Or: one independent session (fresh nonces) per point */
            size_t m = 2 + rnd_below(2);
            unsigned char ts[3][32], Ts[3][33], presig[3][64], sig[64];
            for (size_t i = 0; i < m; i++) {
                rnd_adaptor(ts[i], Ts[i]);
                musig_presign(&g, msg, Ts[i], presig[i]);
                check_presig(presig[i], Ts[i], ts[i], g.xq, msg);
                presigs++;
            }
            for (size_t i = 0; i < m; i++)
                for (size_t j = 0; j < m; j++) {
                    if (i == j) continue;
                    /* distinct nonces: no two pre-signatures share R' */
                    assert_memory_not_equal(presig[i], presig[j], 32);
                    assert_int_equal(km_adaptor_presig_verify(g_ctx, presig[i], Ts[j], g.xq, msg),
                                     KM_ERR_VERIFY);
                    assert_int_equal(km_adaptor_adapt(g_ctx, sig, presig[i], ts[j], g.xq, msg),
                                     KM_ERR_VERIFY);
                }
        }
    }
    printf("adaptor random cases: %zu run, 0 skipped\n", (size_t)RANDOM_CASES);
    printf("  types: single %zu, and %zu, or %zu; signers n=2: %zu, n=3: %zu, n=5: %zu\n", per_type[0],
           per_type[1], per_type[2], per_size[0], per_size[1], per_size[2]);
    printf("  tweak modes:");
    for (int i = 0; i < MODE_COUNT; i++)
        printf(" %s %zu", mode_names[i], per_mode[i]);
    printf("\n  MuSig2 sessions %zu, partial sigs verified %zu, pre-signatures checked %zu, "
           "unfolded-verifier rejections %zu\n",
           g_sessions, g_partials, presigs, g_unfolded_checks);
}

/* ---- the original product's semantics, built independently ------------------
 *
 * conduition/musig2's single-signer adaptor signing (sign_solo_adaptor): R =
 * kG, R' = R + T, k negated iff R' is odd, e over x(R'), s = k + e*d, output
 * R || s. It is rebuilt here from libsecp256k1's scalar functions, so the
 * legacy verifier is checked against the algorithm, not against itself. */
static void conduition_style_presign(unsigned char out65[65], const unsigned char d_in[32],
                                     const unsigned char T33[33], const unsigned char msg[32],
                                     unsigned char xonly_out[32]) {
    unsigned char d[32], k[32], e[32], buf[96], rp[33];
    secp256k1_pubkey P, R, T, Rp;
    secp256k1_xonly_pubkey xp;
    memcpy(d, d_in, 32);
    assert_true(secp256k1_ec_pubkey_create(g_secp, &P, d));
    int parity;
    assert_true(secp256k1_xonly_pubkey_from_pubkey(g_secp, &xp, &parity, &P));
    if (parity) assert_true(secp256k1_ec_seckey_negate(g_secp, d));
    assert_true(secp256k1_xonly_pubkey_serialize(g_secp, xonly_out, &xp));
    rnd_scalar(k);
    assert_true(secp256k1_ec_pubkey_create(g_secp, &R, k));
    parse_pub(&T, T33);
    const secp256k1_pubkey *a[2] = {&R, &T};
    assert_true(secp256k1_ec_pubkey_combine(g_secp, &Rp, a, 2));
    ser_pub(rp, &Rp);
    ser_pub(out65, &R);
    if (rp[0] == 0x03) assert_true(secp256k1_ec_seckey_negate(g_secp, k));
    memcpy(buf, rp + 1, 32);
    memcpy(buf + 32, xonly_out, 32);
    memcpy(buf + 64, msg, 32);
    km_tagged_hash(e, "BIP0340/challenge", buf, 96);
    assert_true(secp256k1_ec_seckey_tweak_mul(g_secp, d, e)); /* e*d */
    assert_true(secp256k1_ec_seckey_tweak_add(g_secp, d, k)); /* k + e*d */
    memcpy(out65 + 33, d, 32);
}

static void test_legacy_interop(void **state) {
    (void)state;
    const size_t cases = 100;
    for (size_t c = 0; c < cases; c++) {
        unsigned char d[32], t[32], T[33], msg[32], xq[32], leg[65], presig[64], sig[64], t_out[32], leg2[65];
        rnd_scalar(d);
        rnd_adaptor(t, T);
        rnd_msg(msg);
        conduition_style_presign(leg, d, T, msg, xq);
        assert_int_equal(km_adaptor_legacy_verify(g_ctx, leg, T, xq, msg), KM_OK);
        assert_int_equal(km_adaptor_legacy_to_presig(g_ctx, presig, leg, T, xq, msg), KM_OK);
        check_presig(presig, T, t, xq, msg);
        assert_int_equal(km_adaptor_legacy_from_presig(g_ctx, leg2, presig, T, xq, msg), KM_OK);
        assert_memory_equal(leg2, leg, 65);
        assert_int_equal(km_adaptor_adapt(g_ctx, sig, presig, t, xq, msg), KM_OK);
        assert_int_equal(km_adaptor_extract(g_ctx, t_out, presig, sig, T), KM_OK);
        assert_memory_equal(t_out, t, 32);
    }
    printf("legacy (conduition-style) interop cases: %zu run, 0 skipped\n", cases);
}

/* ---- edge cases of the fold ------------------------------------------------- */

static void test_fold_edges(void **state) {
    (void)state;
    unsigned char t[32], T[33], agg[66], out[66], negT[33];
    const unsigned char zero66[66] = {0};
    secp256k1_pubkey P;
    rnd_adaptor(t, T);

    /* R1 infinity: R1' = T */
    memset(agg, 0, 66);
    unsigned char r2s[32], r2[33];
    rnd_adaptor(r2s, r2);
    memcpy(agg + 33, r2, 33);
    assert_int_equal(km_adaptor_fold_aggnonce(g_ctx, out, agg, T), KM_OK);
    assert_memory_equal(out, T, 33);
    assert_memory_equal(out + 33, r2, 33);
    /* R2 infinity is carried through */
    memcpy(agg, r2, 33);
    memset(agg + 33, 0, 33);
    assert_int_equal(km_adaptor_fold_aggnonce(g_ctx, out, agg, T), KM_OK);
    assert_memory_equal(out + 33, zero66, 33);
    /* R1 = -T: R1' is infinity, encoded as 33 zero bytes; in place (aliasing) */
    parse_pub(&P, T);
    assert_true(secp256k1_ec_pubkey_negate(g_secp, &P));
    ser_pub(negT, &P);
    memcpy(agg, negT, 33);
    memcpy(agg + 33, r2, 33);
    assert_int_equal(km_adaptor_fold_aggnonce(g_ctx, agg, agg, T), KM_OK);
    assert_memory_equal(agg, zero66, 33);
    assert_memory_equal(agg + 33, r2, 33);
    secp256k1_musig_aggnonce an;
    assert_true(secp256k1_musig_aggnonce_parse(g_secp, &an, agg)); /* libsecp accepts it */

    /* invalid inputs: output zeroed */
    memcpy(agg, r2, 33);
    memcpy(agg + 33, r2, 33);
    unsigned char badT[33];
    memcpy(badT, T, 33);
    badT[0] = 0x04;
    memset(out, 0xaa, 66);
    assert_int_equal(km_adaptor_fold_aggnonce(g_ctx, out, agg, badT), KM_ERR_INVALID_POINT);
    assert_memory_equal(out, zero66, 66);
    memset(badT, 0, 33); /* infinity is not an adaptor point */
    assert_int_equal(km_adaptor_fold_aggnonce(g_ctx, out, agg, badT), KM_ERR_INVALID_POINT);
    unsigned char badagg[66];
    memcpy(badagg, agg, 66);
    badagg[33] = 0x05;
    assert_int_equal(km_adaptor_fold_aggnonce(g_ctx, out, badagg, T), KM_ERR_INVALID_POINT);
    memcpy(badagg, agg, 66);
    badagg[0] = 0x00; /* zero prefix but not all zero */
    assert_int_equal(km_adaptor_fold_aggnonce(g_ctx, out, badagg, T), KM_ERR_INVALID_POINT);
    /* an x with no curve point: x = 5 is not on secp256k1 (5^3 + 7 = 132 is a non-residue) */
    unsigned char offcurve[33] = {0x02};
    offcurve[32] = 5;
    assert_false(secp256k1_ec_pubkey_parse(g_secp, &P, offcurve, 33));
    assert_int_equal(km_adaptor_fold_aggnonce(g_ctx, out, agg, offcurve), KM_ERR_INVALID_POINT);
    secp256k1_musig_aggnonce a2;
    assert_true(secp256k1_musig_aggnonce_parse(g_secp, &an, agg));
    assert_int_equal(km_adaptor_fold_musig_aggnonce(g_ctx, &a2, &an, offcurve), KM_ERR_INVALID_POINT);
    assert_int_equal(km_adaptor_fold_musig_aggnonce(g_ctx, &an, &an, T), KM_OK); /* in place */
    assert_true(secp256k1_musig_aggnonce_serialize(g_secp, out, &an));
    assert_int_equal(km_adaptor_fold_aggnonce(g_ctx, agg, agg, T), KM_OK);
    assert_memory_equal(out, agg, 66);
}

/* A whole session where R1 + T is infinity still works end to end (the
 * signers' nonces are unknown to us, so T = -R1 is set after aggregation;
 * nobody knows t, so only verification is checked). */
static void test_fold_infinite_session(void **state) {
    (void)state;
    group g;
    unsigned char msg[32], agg66[66], folded66[66], presig[64], T[33];
    secp256k1_musig_secnonce sec[2];
    secp256k1_musig_pubnonce pub[2];
    const secp256k1_musig_pubnonce *pubs[2] = {&pub[0], &pub[1]};
    secp256k1_musig_partial_sig ps[2];
    const secp256k1_musig_partial_sig *pss[2] = {&ps[0], &ps[1]};
    secp256k1_musig_aggnonce agg, folded;
    secp256k1_musig_session session;
    secp256k1_pubkey R1;
    make_group(&g, 2, MODE_BIP86);
    rnd_msg(msg);
    for (size_t i = 0; i < 2; i++) {
        unsigned char secrand[32];
        rnd(secrand, 32);
        assert_true(secp256k1_musig_nonce_gen(g_secp, &sec[i], &pub[i], secrand, NULL, &g.pk[i], msg,
                                              &g.cache, NULL));
    }
    assert_true(secp256k1_musig_nonce_agg(g_secp, &agg, pubs, 2));
    assert_true(secp256k1_musig_aggnonce_serialize(g_secp, agg66, &agg));
    parse_pub(&R1, agg66);
    assert_true(secp256k1_ec_pubkey_negate(g_secp, &R1));
    ser_pub(T, &R1);
    assert_int_equal(km_adaptor_fold_aggnonce(g_ctx, folded66, agg66, T), KM_OK);
    const unsigned char zero33[33] = {0};
    assert_memory_equal(folded66, zero33, 33);
    assert_true(secp256k1_musig_aggnonce_parse(g_secp, &folded, folded66));
    assert_true(secp256k1_musig_nonce_process(g_secp, &session, &folded, msg, &g.cache));
    for (size_t i = 0; i < 2; i++) {
        assert_true(secp256k1_musig_partial_sign(g_secp, &ps[i], &sec[i], &g.kp[i], &g.cache, &session));
        assert_true(
            secp256k1_musig_partial_sig_verify(g_secp, &ps[i], &pub[i], &g.pk[i], &g.cache, &session));
    }
    assert_true(secp256k1_musig_partial_sig_agg(g_secp, presig, &session, pss, 2));
    assert_false(bip340_ok(presig, msg, g.xq));
    assert_int_equal(km_adaptor_presig_verify(g_ctx, presig, T, g.xq, msg), KM_OK);
    unsigned char leg[65];
    assert_int_equal(km_adaptor_legacy_from_presig(g_ctx, leg, presig, T, g.xq, msg), KM_OK);
    assert_int_equal(km_adaptor_legacy_verify(g_ctx, leg, T, g.xq, msg), KM_OK);
}

/* ---- input validation ---------------------------------------------------------- */

/* n, the group order, big endian */
static const unsigned char ORDER[32] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48,
                                        0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};

static void test_validation(void **state) {
    (void)state;
    group g;
    unsigned char msg[32], t[32], T[33], presig[64], bad[64], sig[64], out[32], leg[65], badleg[65];
    const unsigned char zero[66] = {0};
    make_group(&g, 3, MODE_XONLY);
    rnd_msg(msg);
    rnd_adaptor(t, T);
    musig_presign(&g, msg, T, presig);
    assert_int_equal(km_adaptor_presig_verify(g_ctx, presig, T, g.xq, msg), KM_OK);

    /* s = n and s = 2^256 - 1: out of range */
    memcpy(bad, presig, 32);
    memcpy(bad + 32, ORDER, 32);
    assert_int_equal(km_adaptor_presig_verify(g_ctx, bad, T, g.xq, msg), KM_ERR_RANGE);
    assert_int_equal(km_adaptor_adapt(g_ctx, sig, bad, t, g.xq, msg), KM_ERR_RANGE);
    memset(bad + 32, 0xff, 32);
    assert_int_equal(km_adaptor_presig_verify(g_ctx, bad, T, g.xq, msg), KM_ERR_RANGE);
    /* s = 0 is in range, just wrong */
    memset(bad + 32, 0, 32);
    assert_int_equal(km_adaptor_presig_verify(g_ctx, bad, T, g.xq, msg), KM_ERR_VERIFY);
    /* x(R') = p (not a field element) and an x with no point */
    memcpy(bad, presig, 64);
    memset(bad, 0xff, 32);
    bad[27] = 0xfe;
    bad[28] = 0xff;
    bad[29] = 0xff;
    bad[30] = 0xfc;
    bad[31] = 0x2f;
    assert_int_equal(km_adaptor_presig_verify(g_ctx, bad, T, g.xq, msg), KM_ERR_INVALID_POINT);
    memset(bad, 0, 32);
    bad[31] = 5;
    assert_int_equal(km_adaptor_presig_verify(g_ctx, bad, T, g.xq, msg), KM_ERR_INVALID_POINT);
    /* invalid key, invalid T */
    unsigned char xbad[32] = {0};
    xbad[31] = 5;
    assert_int_equal(km_adaptor_presig_verify(g_ctx, presig, T, xbad, msg), KM_ERR_INVALID_POINT);
    assert_int_equal(km_adaptor_adapt(g_ctx, sig, presig, t, xbad, msg), KM_ERR_INVALID_POINT);
    unsigned char Tbad[33];
    memset(Tbad, 0, 33);
    assert_int_equal(km_adaptor_presig_verify(g_ctx, presig, Tbad, g.xq, msg), KM_ERR_INVALID_POINT);
    memcpy(Tbad, T, 33);
    Tbad[0] = 0x04;
    assert_int_equal(km_adaptor_presig_verify(g_ctx, presig, Tbad, g.xq, msg), KM_ERR_INVALID_POINT);
    Tbad[0] = 0x06;
    assert_int_equal(km_adaptor_extract(g_ctx, out, presig, presig, Tbad), KM_ERR_INVALID_POINT);

    /* secrets: zero, n, > n */
    unsigned char s0[32] = {0};
    memset(sig, 0xaa, 64);
    assert_int_equal(km_adaptor_adapt(g_ctx, sig, presig, s0, g.xq, msg), KM_ERR_INVALID_KEY);
    assert_memory_equal(sig, zero, 64);
    assert_int_equal(km_adaptor_adapt(g_ctx, sig, presig, ORDER, g.xq, msg), KM_ERR_INVALID_KEY);
    unsigned char pt[33];
    memset(pt, 0xaa, 33);
    assert_int_equal(km_adaptor_point_from_secret(g_ctx, pt, s0), KM_ERR_INVALID_KEY);
    assert_memory_equal(pt, zero, 33);
    assert_int_equal(km_adaptor_point_from_secret(g_ctx, pt, ORDER), KM_ERR_INVALID_KEY);

    /* extract: s' out of range, s' == s (difference zero), output zeroed */
    assert_int_equal(km_adaptor_adapt(g_ctx, sig, presig, t, g.xq, msg), KM_OK);
    memcpy(bad, sig, 32);
    memcpy(bad + 32, ORDER, 32);
    memset(out, 0xaa, 32);
    assert_int_equal(km_adaptor_extract(g_ctx, out, presig, bad, T), KM_ERR_RANGE);
    assert_memory_equal(out, zero, 32);
    assert_int_equal(km_adaptor_extract(g_ctx, out, bad, sig, T), KM_ERR_RANGE);
    assert_int_equal(km_adaptor_extract(g_ctx, out, presig, presig, T), KM_ERR_VERIFY);
    assert_int_equal(km_adaptor_extract(g_ctx, out, presig, sig, T), KM_OK);
    assert_memory_equal(out, t, 32);

    /* legacy: R invalid, s >= n, R = infinity (accepted encoding, wrong value) */
    assert_int_equal(km_adaptor_legacy_from_presig(g_ctx, leg, presig, T, g.xq, msg), KM_OK);
    memcpy(badleg, leg, 65);
    badleg[0] = 0x05;
    assert_int_equal(km_adaptor_legacy_verify(g_ctx, badleg, T, g.xq, msg), KM_ERR_INVALID_POINT);
    memcpy(badleg, leg, 65);
    memcpy(badleg + 33, ORDER, 32);
    assert_int_equal(km_adaptor_legacy_verify(g_ctx, badleg, T, g.xq, msg), KM_ERR_RANGE);
    memcpy(badleg, leg, 65);
    memset(badleg, 0, 33);
    assert_int_equal(km_adaptor_legacy_verify(g_ctx, badleg, T, g.xq, msg), KM_ERR_VERIFY);
    memset(leg, 0xaa, 65);
    assert_int_equal(km_adaptor_legacy_from_presig(g_ctx, leg, presig, Tbad, g.xq, msg),
                     KM_ERR_INVALID_POINT);
    assert_memory_equal(leg, zero, 65);
    /* R = -T: R + T is infinity */
    {
        secp256k1_pubkey P;
        parse_pub(&P, T);
        assert_true(secp256k1_ec_pubkey_negate(g_secp, &P));
        ser_pub(badleg, &P);
        memcpy(badleg + 33, presig + 32, 32);
        assert_int_equal(km_adaptor_legacy_verify(g_ctx, badleg, T, g.xq, msg), KM_ERR_VERIFY);
    }
}

static void test_sums(void **state) {
    (void)state;
    unsigned char t1[32], t2[32], t3[32], T1[33], T2[33], T3[33], neg1[32], negT1[33], out[33], sum[32];
    const unsigned char zero[33] = {0};
    rnd_adaptor(t1, T1);
    rnd_adaptor(t2, T2);
    rnd_adaptor(t3, T3);
    memcpy(neg1, t1, 32);
    assert_true(secp256k1_ec_seckey_negate(g_secp, neg1));
    assert_int_equal(km_adaptor_point_from_secret(g_ctx, negT1, neg1), KM_OK);

    const unsigned char *pts[3] = {T1, T2, T3};
    const unsigned char *secs[3] = {t1, t2, t3};
    unsigned char Tsum[33], check[33];
    assert_int_equal(km_adaptor_point_sum(g_ctx, Tsum, pts, 3), KM_OK);
    assert_int_equal(km_adaptor_secret_sum(g_ctx, sum, secs, 3), KM_OK);
    assert_int_equal(km_adaptor_point_from_secret(g_ctx, check, sum), KM_OK);
    assert_memory_equal(check, Tsum, 33);
    /* single term is the identity */
    assert_int_equal(km_adaptor_point_sum(g_ctx, out, pts, 1), KM_OK);
    assert_memory_equal(out, T1, 33);

    /* cancelling terms */
    const unsigned char *cancel_pts[2] = {T1, negT1};
    memset(out, 0xaa, 33);
    assert_int_equal(km_adaptor_point_sum(g_ctx, out, cancel_pts, 2), KM_ERR_INVALID_POINT);
    assert_memory_equal(out, zero, 33);
    const unsigned char *cancel_secs[2] = {t1, neg1};
    assert_int_equal(km_adaptor_secret_sum(g_ctx, sum, cancel_secs, 2), KM_ERR_INVALID_KEY);
    assert_memory_equal(sum, zero, 32);
    /* a partial sum passing through zero: t1 + (-t1) + t2 = t2 */
    const unsigned char *through_secs[3] = {t1, neg1, t2};
    assert_int_equal(km_adaptor_secret_sum(g_ctx, sum, through_secs, 3), KM_OK);
    assert_memory_equal(sum, t2, 32);
    const unsigned char *through_pts[3] = {T1, negT1, T2};
    assert_int_equal(km_adaptor_point_sum(g_ctx, out, through_pts, 3), KM_OK);
    assert_memory_equal(out, T2, 33);

    /* bad counts and bad terms */
    assert_int_equal(km_adaptor_point_sum(g_ctx, out, pts, 0), KM_ERR_ARG);
    assert_int_equal(km_adaptor_secret_sum(g_ctx, sum, secs, 0), KM_ERR_ARG);
    assert_int_equal(km_adaptor_point_sum(g_ctx, out, pts, KM_ADAPTOR_MAX_TERMS + 1), KM_ERR_ARG);
    assert_int_equal(km_adaptor_secret_sum(g_ctx, sum, secs, KM_ADAPTOR_MAX_TERMS + 1), KM_ERR_ARG);
    const unsigned char zs[32] = {0};
    const unsigned char *bad_secs[2] = {t1, zs};
    assert_int_equal(km_adaptor_secret_sum(g_ctx, sum, bad_secs, 2), KM_ERR_INVALID_KEY);
    bad_secs[1] = ORDER;
    assert_int_equal(km_adaptor_secret_sum(g_ctx, sum, bad_secs, 2), KM_ERR_INVALID_KEY);
    const unsigned char *bad_pts[2] = {T1, zero};
    assert_int_equal(km_adaptor_point_sum(g_ctx, out, bad_pts, 2), KM_ERR_INVALID_POINT);

    /* output may alias the first secret */
    unsigned char a[32];
    memcpy(a, t1, 32);
    const unsigned char *alias_secs[3] = {a, t2, t3};
    assert_int_equal(km_adaptor_secret_sum(g_ctx, a, alias_secs, 3), KM_OK);
    assert_int_equal(km_adaptor_point_from_secret(g_ctx, check, a), KM_OK);
    assert_memory_equal(check, Tsum, 33);

    /* the maximum number of terms is accepted */
    const unsigned char *many_pts[KM_ADAPTOR_MAX_TERMS];
    const unsigned char *many_secs[KM_ADAPTOR_MAX_TERMS];
    for (size_t i = 0; i < KM_ADAPTOR_MAX_TERMS; i++) {
        many_pts[i] = (i % 2) ? T1 : T2;
        many_secs[i] = (i % 2) ? t1 : t2;
    }
    assert_int_equal(km_adaptor_point_sum(g_ctx, out, many_pts, KM_ADAPTOR_MAX_TERMS), KM_OK);
    assert_int_equal(km_adaptor_secret_sum(g_ctx, sum, many_secs, KM_ADAPTOR_MAX_TERMS), KM_OK);
    assert_int_equal(km_adaptor_point_from_secret(g_ctx, check, sum), KM_OK);
    assert_memory_equal(check, out, 33);
}

/* ---- setup ---------------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    return seeded_setup("test_adaptor");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_edges),     cmocka_unit_test(test_fold_infinite_session),
        cmocka_unit_test(test_validation),     cmocka_unit_test(test_sums),
        cmocka_unit_test(test_legacy_interop), cmocka_unit_test(test_random_sessions),
    };
    return cmocka_run_group_tests(tests, setup, seeded_teardown);
}
