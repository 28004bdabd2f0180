/* test_adaptor_musig.c — adaptor sessions entirely through libkeymeld's
 * km_musig_* API, the way the enclave will run them: km_musig_nonce_gen
 * (secret nonce in locked memory), km_musig_nonce_agg, km_adaptor_fold_aggnonce,
 * km_musig_session_init on the folded aggregate nonce, km_musig_partial_sign
 * (consumes the nonce, self-verifies), km_musig_partial_verify for every
 * signer, km_musig_partial_agg -> pre-signature.
 *
 * Also shows the two protections an adaptor deployment relies on: a signer
 * that did not fold T is identified by partial verification, and a secret
 * nonce cannot produce a second pre-signature (for another "Or" point).
 *
 * Seeded randomness as in test_adaptor.c (KM_TEST_SEED=<64 hex> replays).
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

#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "keymeld/musig.h"
#include "keymeld/secret.h"
#include "keymeld/taproot.h"
#include "seeded_rng.h"

#define CASES       300
#define MAX_SIGNERS 5

typedef struct {
    size_t n;
    unsigned char sk[MAX_SIGNERS][32];
    unsigned char pk[MAX_SIGNERS][33];
    km_musig_keyagg ka;
} group;

static void make_group(group *g, size_t n, km_tweak_mode mode) {
    unsigned char pks[MAX_SIGNERS * 33], data[32];
    km_tweak tw;
    memset(g, 0, sizeof *g);
    g->n = n;
    for (size_t i = 0; i < n; i++) {
        secp256k1_pubkey p;
        size_t len = 33;
        rnd_scalar(g->sk[i]);
        assert_true(secp256k1_ec_pubkey_create(g_secp, &p, g->sk[i]));
        assert_true(secp256k1_ec_pubkey_serialize(g_secp, g->pk[i], &len, &p, SECP256K1_EC_COMPRESSED));
        memcpy(pks + 33 * i, g->pk[i], 33);
    }
    assert_int_equal(km_musig_key_agg(g_ctx, &g->ka, pks, n, NULL), KM_OK);
    rnd_scalar(data);
    switch (mode) {
    case KM_TWEAK_NONE:
        km_tweak_none(&tw);
        break;
    case KM_TWEAK_BIP86:
        km_tweak_bip86(&tw);
        break;
    case KM_TWEAK_BIP341:
        km_tweak_bip341(&tw, data);
        break;
    case KM_TWEAK_PLAIN:
        km_tweak_plain(&tw, data);
        break;
    case KM_TWEAK_XONLY:
        km_tweak_xonly(&tw, data);
        break;
    }
    assert_int_equal(km_musig_keyagg_tweak(g_ctx, &g->ka, &tw), KM_OK);
}

/* Round 1 of a session: every signer's fresh nonce and the aggregate nonce. */
typedef struct {
    km_secret *sec[MAX_SIGNERS];
    unsigned char pub[MAX_SIGNERS * 66];
    unsigned char agg[66];
} round1;

static void nonces(const group *g, const unsigned char msg[32], round1 *r) {
    for (size_t i = 0; i < g->n; i++)
        assert_int_equal(
            km_musig_nonce_gen(g_ctx, &r->sec[i], r->pub + 66 * i, g->sk[i], g->pk[i], msg, &g->ka, NULL),
            KM_OK);
    assert_int_equal(km_musig_nonce_agg(g_ctx, r->agg, r->pub, g->n, NULL), KM_OK);
}

static void free_round1(const group *g, round1 *r) {
    for (size_t i = 0; i < g->n; i++) {
        km_secret_free(r->sec[i]);
        r->sec[i] = NULL;
    }
}

/* Round 2 on the folded aggregate nonce; every partial signature verified. */
static void presign(const group *g, const unsigned char msg[32], const unsigned char T[33], round1 *r,
                    unsigned char presig[64]) {
    unsigned char folded[66], psigs[MAX_SIGNERS * 32];
    km_musig_session s;
    assert_int_equal(km_adaptor_fold_aggnonce(g_ctx, folded, r->agg, T), KM_OK);
    assert_int_equal(km_musig_session_init(g_ctx, &s, folded, msg, &g->ka), KM_OK);
    for (size_t i = 0; i < g->n; i++)
        assert_int_equal(km_musig_partial_sign(g_ctx, psigs + 32 * i, r->sec[i], g->sk[i], &s), KM_OK);
    for (size_t i = 0; i < g->n; i++)
        assert_int_equal(km_musig_partial_verify(g_ctx, &s, psigs + 32 * i, r->pub + 66 * i, g->pk[i]),
                         KM_OK);
    assert_int_equal(km_musig_partial_agg(g_ctx, presig, &s, psigs, g->n, NULL), KM_OK);
}

static void check(const group *g, const unsigned char msg[32], const unsigned char presig[64],
                  const unsigned char T[33], const unsigned char t[32]) {
    unsigned char sig[64], t_out[32], leg[65], back[64];
    const unsigned char *xq = g->ka.output_xonly;
    assert_int_equal(km_musig_verify_final(g_ctx, presig, msg, &g->ka), KM_ERR_VERIFY);
    assert_int_equal(km_adaptor_presig_verify(g_ctx, presig, T, xq, msg), KM_OK);
    assert_int_equal(km_adaptor_legacy_from_presig(g_ctx, leg, presig, T, xq, msg), KM_OK);
    assert_int_equal(km_adaptor_legacy_verify(g_ctx, leg, T, xq, msg), KM_OK);
    assert_int_equal(km_adaptor_legacy_to_presig(g_ctx, back, leg, T, xq, msg), KM_OK);
    assert_memory_equal(back, presig, 64);
    assert_int_equal(km_adaptor_adapt(g_ctx, sig, presig, t, xq, msg), KM_OK);
    assert_int_equal(km_musig_verify_final(g_ctx, sig, msg, &g->ka), KM_OK);
    assert_int_equal(km_adaptor_extract(g_ctx, t_out, presig, sig, T), KM_OK);
    assert_memory_equal(t_out, t, 32);
    km_wipe(t_out, 32);
}

static void test_sessions(void **state) {
    (void)state;
    static const size_t sizes[3] = {2, 3, 5};
    size_t sessions = 0, counts[3] = {0};
    for (size_t c = 0; c < CASES; c++) {
        int type = (int)(c % 3);
        size_t n = sizes[(c / 3) % 3];
        km_tweak_mode mode = (km_tweak_mode)((c / 9) % 5);
        group g;
        unsigned char msg[32];
        make_group(&g, n, mode);
        rnd(msg, 32);
        counts[type]++;
        if (type == 0) { /* Single */
            unsigned char t[32], T[33], presig[64];
            round1 r;
            rnd_adaptor(t, T);
            nonces(&g, msg, &r);
            presign(&g, msg, T, &r, presig);
            free_round1(&g, &r);
            check(&g, msg, presig, T, t);
            sessions++;
        } else if (type == 1) { /* And over 2..3 points */
            size_t m = 2 + c % 2;
            unsigned char ts[3][32], Ts[3][33], t[32], T[33], presig[64];
            const unsigned char *tp[3], *Tp[3];
            round1 r;
            for (size_t i = 0; i < m; i++) {
                rnd_adaptor(ts[i], Ts[i]);
                tp[i] = ts[i];
                Tp[i] = Ts[i];
            }
            assert_int_equal(km_adaptor_point_sum(g_ctx, T, Tp, m), KM_OK);
            assert_int_equal(km_adaptor_secret_sum(g_ctx, t, tp, m), KM_OK);
            nonces(&g, msg, &r);
            presign(&g, msg, T, &r, presig);
            free_round1(&g, &r);
            check(&g, msg, presig, T, t);
            sessions++;
        } else { /* Or: a whole session with fresh nonces per point */
            size_t m = 2 + c % 2;
            for (size_t i = 0; i < m; i++) {
                unsigned char t[32], T[33], presig[64];
                round1 r;
                rnd_adaptor(t, T);
                nonces(&g, msg, &r);
                presign(&g, msg, T, &r, presig);
                free_round1(&g, &r);
                check(&g, msg, presig, T, t);
                sessions++;
            }
        }
    }
    printf("km_musig adaptor cases: %d run, 0 skipped (single %zu, and %zu, or %zu; %zu MuSig2 sessions)\n",
           CASES, counts[0], counts[1], counts[2], sessions);
}

/* A signer that skips the fold (or folds another point) signs for another
 * nonce coefficient and R'; partial verification on the folded session names
 * it, so the coordinator never aggregates a pre-signature it cannot adapt. */
static void test_unfolded_signer_blamed(void **state) {
    (void)state;
    group g;
    round1 r;
    unsigned char msg[32], t[32], T[33], folded[66], psig_ok[32], psig_bad[32];
    km_musig_session good, plain;
    make_group(&g, 3, KM_TWEAK_BIP86);
    rnd(msg, 32);
    rnd_adaptor(t, T);
    nonces(&g, msg, &r);
    assert_int_equal(km_adaptor_fold_aggnonce(g_ctx, folded, r.agg, T), KM_OK);
    assert_int_equal(km_musig_session_init(g_ctx, &good, folded, msg, &g.ka), KM_OK);
    assert_int_equal(km_musig_session_init(g_ctx, &plain, r.agg, msg, &g.ka), KM_OK);
    assert_int_equal(km_musig_partial_sign(g_ctx, psig_ok, r.sec[0], g.sk[0], &good), KM_OK);
    assert_int_equal(km_musig_partial_sign(g_ctx, psig_bad, r.sec[1], g.sk[1], &plain), KM_OK);
    assert_int_equal(km_musig_partial_verify(g_ctx, &good, psig_ok, r.pub, g.pk[0]), KM_OK);
    assert_int_equal(km_musig_partial_verify(g_ctx, &good, psig_bad, r.pub + 66, g.pk[1]), KM_ERR_VERIFY);
    free_round1(&g, &r);
}

/* "Or" MUST NOT reuse a nonce for the second point: two pre-signatures on one
 * nonce with different T reveal the key. The secret nonce is consumed by the
 * first partial signature, so the second attempt signs nothing. */
static void test_or_nonce_not_reusable(void **state) {
    (void)state;
    group g;
    round1 r;
    unsigned char msg[32], t1[32], T1[33], t2[32], T2[33], f1[66], f2[66], p1[32], p2[32];
    const unsigned char zero[32] = {0};
    km_musig_session s1, s2;
    make_group(&g, 2, KM_TWEAK_NONE);
    rnd(msg, 32);
    rnd_adaptor(t1, T1);
    rnd_adaptor(t2, T2);
    nonces(&g, msg, &r);
    assert_int_equal(km_adaptor_fold_aggnonce(g_ctx, f1, r.agg, T1), KM_OK);
    assert_int_equal(km_adaptor_fold_aggnonce(g_ctx, f2, r.agg, T2), KM_OK);
    assert_int_equal(km_musig_session_init(g_ctx, &s1, f1, msg, &g.ka), KM_OK);
    assert_int_equal(km_musig_session_init(g_ctx, &s2, f2, msg, &g.ka), KM_OK);
    assert_int_equal(km_musig_partial_sign(g_ctx, p1, r.sec[0], g.sk[0], &s1), KM_OK);
    memset(p2, 0xaa, 32);
    assert_int_equal(km_musig_partial_sign(g_ctx, p2, r.sec[0], g.sk[0], &s2), KM_ERR_NONCE_REUSE);
    assert_memory_equal(p2, zero, 32);
    free_round1(&g, &r);
}

static int setup(void **state) {
    (void)state;
    return seeded_setup("test_adaptor_musig");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unfolded_signer_blamed),
        cmocka_unit_test(test_or_nonce_not_reusable),
        cmocka_unit_test(test_sessions),
    };
    return cmocka_run_group_tests(tests, setup, seeded_teardown);
}
