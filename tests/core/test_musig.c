/* test_musig.c — km_musig_*: full random sessions for every tweak mode and
 * signer count, and the attacker's paths: tampered partial signatures (the
 * cheater is named), nonce reuse, invalid points, wrong messages, wrong keys,
 * subsets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "keymeld/aead.h"
#include "keymeld/musig.h"

#define MAXS 12

static km_ctx *g_ctx;

static int setup(void **state) {
    (void)state;
    return km_ctx_create(&g_ctx) == KM_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    km_ctx_destroy(g_ctx);
    return 0;
}

static const unsigned char ORDER[32] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48,
                                        0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};

/* 0x02 || x with x = 5: not the x coordinate of any curve point. */
static const unsigned char BAD_POINT[33] = {0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                            0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5};

typedef struct signer {
    unsigned char sk[32];
    unsigned char pk[33];
} signer;

static void make_signers(signer *s, size_t n) {
    const secp256k1_context *secp = km_ctx_secp(g_ctx);
    for (size_t i = 0; i < n; i++) {
        secp256k1_pubkey pk;
        size_t len = 33;
        do
            assert_int_equal(km_random_bytes(s[i].sk, 32), KM_OK);
        while (!secp256k1_ec_seckey_verify(secp, s[i].sk));
        assert_true(secp256k1_ec_pubkey_create(secp, &pk, s[i].sk));
        assert_true(secp256k1_ec_pubkey_serialize(secp, s[i].pk, &len, &pk, SECP256K1_EC_COMPRESSED));
    }
}

static void flat_keys(unsigned char *out, const signer *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        memcpy(out + 33 * i, s[i].pk, 33);
}

static int is_zero(const unsigned char *p, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (p[i]) return 0;
    return 1;
}

static void make_tweak(km_tweak *tw, km_tweak_mode mode) {
    unsigned char d[32];
    assert_int_equal(km_random_bytes(d, 32), KM_OK);
    d[0] &= 0x7f; /* below the group order */
    switch (mode) {
    case KM_TWEAK_NONE:
        km_tweak_none(tw);
        break;
    case KM_TWEAK_BIP86:
        km_tweak_bip86(tw);
        break;
    case KM_TWEAK_BIP341:
        km_tweak_bip341(tw, d);
        break;
    case KM_TWEAK_PLAIN:
        km_tweak_plain(tw, d);
        break;
    case KM_TWEAK_XONLY:
        km_tweak_xonly(tw, d);
        break;
    }
}

/* Every signer aggregates the keys itself, from its own (shuffled) view of
 * the key list: the result must not depend on the order. */
static void agg_for_signer(km_musig_keyagg *ka, const signer *s, size_t n, size_t who, const km_tweak *tw) {
    unsigned char flat[MAXS * 33];
    for (size_t i = 0; i < n; i++)
        memcpy(flat + 33 * i, s[(i + who) % n].pk, 33);
    assert_int_equal(km_musig_key_agg(g_ctx, ka, flat, n, NULL), KM_OK);
    assert_int_equal(km_musig_keyagg_tweak(g_ctx, ka, tw), KM_OK);
}

/* One full session of n signers under tweak tw, then the attacks. */
static void full_session(const signer *s, size_t n, const km_tweak *tw) {
    const secp256k1_context *secp = km_ctx_secp(g_ctx);
    km_musig_keyagg ka[MAXS];
    for (size_t i = 0; i < n; i++) {
        agg_for_signer(&ka[i], s, n, i, tw);
        assert_memory_equal(ka[i].output_xonly, ka[0].output_xonly, 32);
        assert_memory_equal(ka[i].agg_xonly, ka[0].agg_xonly, 32);
    }
    /* The reported key is what BIP-341 computes from the aggregate. */
    if (tw->mode != KM_TWEAK_PLAIN) {
        unsigned char q[32];
        int parity;
        assert_int_equal(km_taproot_output_key(g_ctx, q, &parity, ka[0].agg_xonly, tw), KM_OK);
        assert_memory_equal(q, ka[0].output_xonly, 32);
    }

    unsigned char msg[32], extra[32];
    assert_int_equal(km_random_bytes(msg, 32), KM_OK);
    assert_int_equal(km_random_bytes(extra, 32), KM_OK);

    km_secret *secnonce[MAXS];
    unsigned char pubnonces[MAXS * 66];
    for (size_t i = 0; i < n; i++) {
        /* Vary the optional inputs: they only add misuse resistance. */
        int full = i % 2 == 0;
        assert_int_equal(km_musig_nonce_gen(g_ctx, &secnonce[i], pubnonces + 66 * i, full ? s[i].sk : NULL,
                                            s[i].pk, full ? msg : NULL, full ? &ka[i] : NULL,
                                            full ? extra : NULL),
                         KM_OK);
        assert_non_null(secnonce[i]);
        assert_int_equal(km_musig_pubnonce_check(g_ctx, pubnonces + 66 * i), KM_OK);
    }

    /* Each signer aggregates the nonces itself (and gets the same). */
    unsigned char aggnonce[66], an2[66];
    assert_int_equal(km_musig_nonce_agg(g_ctx, aggnonce, pubnonces, n, NULL), KM_OK);
    if (n > 1) {
        unsigned char rev[MAXS * 66];
        for (size_t i = 0; i < n; i++)
            memcpy(rev + 66 * i, pubnonces + 66 * (n - 1 - i), 66);
        assert_int_equal(km_musig_nonce_agg(g_ctx, an2, rev, n, NULL), KM_OK);
        assert_memory_equal(an2, aggnonce, 66);
    }

    km_musig_session sess[MAXS];
    unsigned char psigs[MAXS * 32];
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(km_musig_session_init(g_ctx, &sess[i], aggnonce, msg, &ka[i]), KM_OK);
        assert_int_equal(km_musig_partial_sign(g_ctx, psigs + 32 * i, secnonce[i], s[i].sk, &sess[i]), KM_OK);
        assert_int_equal(km_musig_partial_sig_check(g_ctx, psigs + 32 * i), KM_OK);
        /* Nonce reuse: the consumed nonce is refused and nothing is signed. */
        unsigned char again[32];
        memset(again, 0xaa, 32);
        assert_int_equal(km_musig_partial_sign(g_ctx, again, secnonce[i], s[i].sk, &sess[i]),
                         KM_ERR_NONCE_REUSE);
        assert_true(is_zero(again, 32));
        km_secret_free(secnonce[i]);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            assert_int_equal(
                km_musig_partial_verify(g_ctx, &sess[i], psigs + 32 * j, pubnonces + 66 * j, s[j].pk), KM_OK);

    unsigned char sig[64];
    assert_int_equal(km_musig_partial_agg(g_ctx, sig, &sess[0], psigs, n, NULL), KM_OK);
    assert_int_equal(km_musig_verify_final(g_ctx, sig, msg, &ka[0]), KM_OK);
    secp256k1_xonly_pubkey q;
    assert_true(secp256k1_xonly_pubkey_parse(secp, &q, ka[0].output_xonly));
    assert_true(secp256k1_schnorrsig_verify(secp, sig, msg, 32, &q));

    /* Wrong message. */
    unsigned char msg2[32];
    memcpy(msg2, msg, 32);
    msg2[7] ^= 0x01;
    assert_int_equal(km_musig_verify_final(g_ctx, sig, msg2, &ka[0]), KM_ERR_VERIFY);
    /* A tweaked session's signature is not valid for the internal key. */
    if (tw->mode != KM_TWEAK_NONE) {
        secp256k1_xonly_pubkey p;
        assert_true(secp256k1_xonly_pubkey_parse(secp, &p, ka[0].agg_xonly));
        assert_false(secp256k1_schnorrsig_verify(secp, sig, msg, 32, &p));
    }

    /* Tampered partial signature: verification names exactly that signer,
     * and the aggregate does not verify. */
    size_t cheat = n / 2;
    unsigned char bad[MAXS * 32];
    memcpy(bad, psigs, 32 * n);
    bad[32 * cheat + 31] ^= 0x01;
    for (size_t j = 0; j < n; j++)
        assert_int_equal(km_musig_partial_verify(g_ctx, &sess[0], bad + 32 * j, pubnonces + 66 * j, s[j].pk),
                         j == cheat ? KM_ERR_VERIFY : KM_OK);
    assert_int_equal(km_musig_partial_agg(g_ctx, sig, &sess[0], bad, n, NULL), KM_OK);
    assert_int_equal(km_musig_verify_final(g_ctx, sig, msg, &ka[0]), KM_ERR_VERIFY);
    /* A valid partial signature claimed for another signer fails too. */
    if (n > 1)
        assert_int_equal(km_musig_partial_verify(g_ctx, &sess[0], psigs + 32 * cheat,
                                                 pubnonces + 66 * ((cheat + 1) % n), s[(cheat + 1) % n].pk),
                         KM_ERR_VERIFY);
}

static void test_full_sessions(void **state) {
    (void)state;
    const size_t counts[] = {1, 2, 3, 5, 10};
    for (int m = 0; m < 5; m++) {
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            signer s[MAXS];
            km_tweak tw;
            make_signers(s, counts[c]);
            make_tweak(&tw, (km_tweak_mode)m);
            full_session(s, counts[c], &tw);
        }
    }
}

static void test_key_agg_inputs(void **state) {
    (void)state;
    signer s[4];
    make_signers(s, 4);
    unsigned char flat[5 * 33];
    flat_keys(flat, s, 4);
    km_musig_keyagg ka;
    size_t bad = 99;
    assert_int_equal(km_musig_key_agg(g_ctx, &ka, flat, 0, &bad), KM_ERR_RANGE);
    assert_int_equal(km_musig_key_agg(g_ctx, &ka, flat, KM_MUSIG_MAX_SIGNERS + 1, &bad), KM_ERR_RANGE);
    assert_int_equal(bad, 99);

    /* Invalid points at index 2: not on the curve, bad prefix, x >= p, infinity. */
    unsigned char bads[4][33];
    memcpy(bads[0], BAD_POINT, 33);
    memcpy(bads[1], s[0].pk, 33);
    bads[1][0] = 0x04;
    memset(bads[2], 0xff, 33);
    bads[2][0] = 0x02;
    memset(bads[3], 0, 33);
    for (int b = 0; b < 4; b++) {
        memcpy(flat + 66, bads[b], 33);
        memset(&ka, 0x5a, sizeof ka);
        bad = 99;
        assert_int_equal(km_musig_key_agg(g_ctx, &ka, flat, 4, &bad), KM_ERR_INVALID_POINT);
        assert_int_equal(bad, 2);
        assert_int_equal(ka.valid, 0);
        assert_true(is_zero((const unsigned char *)&ka, sizeof ka));
        assert_int_equal(km_musig_pubkey_check(g_ctx, bads[b]), KM_ERR_INVALID_POINT);
    }
    assert_int_equal(km_musig_pubkey_check(g_ctx, s[0].pk), KM_OK);

    /* Order does not matter (KeySort); duplicates are allowed (BIP-327). */
    km_musig_keyagg a, b2;
    flat_keys(flat, s, 4);
    assert_int_equal(km_musig_key_agg(g_ctx, &a, flat, 4, NULL), KM_OK);
    unsigned char rev[4 * 33];
    for (int i = 0; i < 4; i++)
        memcpy(rev + 33 * i, s[3 - i].pk, 33);
    assert_int_equal(km_musig_key_agg(g_ctx, &b2, rev, 4, NULL), KM_OK);
    assert_memory_equal(&a, &b2, sizeof a);
    memcpy(flat + 4 * 33, s[0].pk, 33);
    assert_int_equal(km_musig_key_agg(g_ctx, &b2, flat, 5, NULL), KM_OK);
    assert_memory_not_equal(a.agg_xonly, b2.agg_xonly, 32);
}

/* The key of a subset differs from the full set's; a subset session's
 * signature verifies under the subset key only. */
static void test_subset(void **state) {
    (void)state;
    signer s[5];
    make_signers(s, 5);
    unsigned char flat[5 * 33];
    flat_keys(flat, s, 5);
    km_musig_keyagg full, sub;
    km_tweak tw;
    km_tweak_bip86(&tw);
    assert_int_equal(km_musig_key_agg(g_ctx, &full, flat, 5, NULL), KM_OK);
    assert_int_equal(km_musig_keyagg_tweak(g_ctx, &full, &tw), KM_OK);
    /* subset {1, 3} */
    signer ss[2] = {s[1], s[3]};
    unsigned char sflat[2 * 33];
    flat_keys(sflat, ss, 2);
    assert_int_equal(km_musig_key_agg(g_ctx, &sub, sflat, 2, NULL), KM_OK);
    assert_int_equal(km_musig_keyagg_tweak(g_ctx, &sub, &tw), KM_OK);
    assert_memory_not_equal(full.agg_xonly, sub.agg_xonly, 32);
    assert_memory_not_equal(full.output_xonly, sub.output_xonly, 32);

    unsigned char msg[32], pn[2 * 66], an[66], ps[2 * 32], sig[64];
    km_secret *sn[2];
    km_musig_session sess;
    assert_int_equal(km_random_bytes(msg, 32), KM_OK);
    for (int i = 0; i < 2; i++)
        assert_int_equal(km_musig_nonce_gen(g_ctx, &sn[i], pn + 66 * i, ss[i].sk, ss[i].pk, msg, &sub, NULL),
                         KM_OK);
    assert_int_equal(km_musig_nonce_agg(g_ctx, an, pn, 2, NULL), KM_OK);
    assert_int_equal(km_musig_session_init(g_ctx, &sess, an, msg, &sub), KM_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(km_musig_partial_sign(g_ctx, ps + 32 * i, sn[i], ss[i].sk, &sess), KM_OK);
        km_secret_free(sn[i]);
    }
    assert_int_equal(km_musig_partial_agg(g_ctx, sig, &sess, ps, 2, NULL), KM_OK);
    assert_int_equal(km_musig_verify_final(g_ctx, sig, msg, &sub), KM_OK);
    assert_int_equal(km_musig_verify_final(g_ctx, sig, msg, &full), KM_ERR_VERIFY);
}

/* Duplicate keys (one party holding two slots) still sign correctly. */
static void test_duplicate_keys_sign(void **state) {
    (void)state;
    signer s[2];
    make_signers(s, 2);
    signer slots[3] = {s[0], s[0], s[1]};
    unsigned char flat[3 * 33], msg[32], pn[3 * 66], an[66], ps[3 * 32], sig[64];
    flat_keys(flat, slots, 3);
    km_musig_keyagg ka;
    km_tweak tw;
    km_tweak_none(&tw);
    assert_int_equal(km_musig_key_agg(g_ctx, &ka, flat, 3, NULL), KM_OK);
    assert_int_equal(km_musig_keyagg_tweak(g_ctx, &ka, &tw), KM_OK);
    assert_int_equal(km_random_bytes(msg, 32), KM_OK);
    km_secret *sn[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            km_musig_nonce_gen(g_ctx, &sn[i], pn + 66 * i, slots[i].sk, slots[i].pk, msg, &ka, NULL), KM_OK);
    assert_int_equal(km_musig_nonce_agg(g_ctx, an, pn, 3, NULL), KM_OK);
    km_musig_session sess;
    assert_int_equal(km_musig_session_init(g_ctx, &sess, an, msg, &ka), KM_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(km_musig_partial_sign(g_ctx, ps + 32 * i, sn[i], slots[i].sk, &sess), KM_OK);
        assert_int_equal(km_musig_partial_verify(g_ctx, &sess, ps + 32 * i, pn + 66 * i, slots[i].pk), KM_OK);
        km_secret_free(sn[i]);
    }
    assert_int_equal(km_musig_partial_agg(g_ctx, sig, &sess, ps, 3, NULL), KM_OK);
    assert_int_equal(km_musig_verify_final(g_ctx, sig, msg, &ka), KM_OK);
}

static void test_nonce_gen_inputs(void **state) {
    (void)state;
    signer s[2];
    make_signers(s, 2);
    km_secret *sn = (km_secret *)&sn; /* must be reset to NULL on failure */
    unsigned char pn[66], pn2[66];
    unsigned char zero_sk[32] = {0};

    memset(pn, 0xaa, 66);
    assert_int_equal(km_musig_nonce_gen(g_ctx, &sn, pn, NULL, BAD_POINT, NULL, NULL, NULL),
                     KM_ERR_INVALID_POINT);
    assert_null(sn);
    assert_true(is_zero(pn, 66));
    assert_int_equal(km_musig_nonce_gen(g_ctx, &sn, pn, zero_sk, s[0].pk, NULL, NULL, NULL),
                     KM_ERR_INVALID_KEY);
    assert_null(sn);
    assert_int_equal(km_musig_nonce_gen(g_ctx, &sn, pn, ORDER, s[0].pk, NULL, NULL, NULL),
                     KM_ERR_INVALID_KEY);
    /* secret key of signer 1 with public key of signer 0 */
    assert_int_equal(km_musig_nonce_gen(g_ctx, &sn, pn, s[1].sk, s[0].pk, NULL, NULL, NULL), KM_ERR_ARG);
    assert_null(sn);
    km_musig_keyagg invalid;
    memset(&invalid, 0, sizeof invalid);
    assert_int_equal(km_musig_nonce_gen(g_ctx, &sn, pn, NULL, s[0].pk, NULL, &invalid, NULL), KM_ERR_STATE);
    assert_null(sn);

    /* Same inputs twice: fresh randomness gives different nonces. */
    km_secret *a, *b;
    unsigned char msg[32] = {1};
    assert_int_equal(km_musig_nonce_gen(g_ctx, &a, pn, s[0].sk, s[0].pk, msg, NULL, NULL), KM_OK);
    assert_int_equal(km_musig_nonce_gen(g_ctx, &b, pn2, s[0].sk, s[0].pk, msg, NULL, NULL), KM_OK);
    assert_memory_not_equal(pn, pn2, 66);
    km_secret_free(a);
    km_secret_free(b);
}

static void test_nonce_agg_inputs(void **state) {
    (void)state;
    signer s[3];
    make_signers(s, 3);
    unsigned char pns[3 * 66], an[66];
    km_secret *sn[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(km_musig_nonce_gen(g_ctx, &sn[i], pns + 66 * i, NULL, s[i].pk, NULL, NULL, NULL),
                         KM_OK);
        km_secret_free(sn[i]);
    }
    size_t bad = 99;
    assert_int_equal(km_musig_nonce_agg(g_ctx, an, pns, 0, &bad), KM_ERR_RANGE);
    assert_int_equal(km_musig_nonce_agg(g_ctx, an, pns, KM_MUSIG_MAX_SIGNERS + 1, &bad), KM_ERR_RANGE);
    /* second half of nonce 1 is not a point */
    memcpy(pns + 66 + 33, BAD_POINT, 33);
    memset(an, 0xaa, 66);
    assert_int_equal(km_musig_nonce_agg(g_ctx, an, pns, 3, &bad), KM_ERR_INVALID_POINT);
    assert_int_equal(bad, 1);
    assert_true(is_zero(an, 66));
    assert_int_equal(km_musig_pubnonce_check(g_ctx, pns + 66), KM_ERR_INVALID_POINT);
    /* a public nonce may not encode infinity (33 zero bytes) */
    memset(pns + 66, 0, 33);
    assert_int_equal(km_musig_pubnonce_check(g_ctx, pns + 66), KM_ERR_INVALID_POINT);
    /* an aggregate nonce may, but only as 33 zero bytes */
    unsigned char agg_inf[66] = {0};
    assert_int_equal(km_musig_aggnonce_check(g_ctx, agg_inf), KM_OK);
    agg_inf[0] = 0x02;
    assert_int_equal(km_musig_aggnonce_check(g_ctx, agg_inf), KM_ERR_INVALID_POINT);
    agg_inf[0] = 0x04;
    assert_int_equal(km_musig_aggnonce_check(g_ctx, agg_inf), KM_ERR_INVALID_POINT);
}

/* Session state and every refusal of partial_sign / verify / agg. */
static void test_session_inputs(void **state) {
    (void)state;
    signer s[3], outsider;
    make_signers(s, 3);
    make_signers(&outsider, 1);
    unsigned char flat[3 * 33], msg[32], pns[3 * 66], an[66], ps[32], psigs[3 * 32], sig[64];
    flat_keys(flat, s, 3);
    km_musig_keyagg ka, invalid;
    memset(&invalid, 0, sizeof invalid);
    assert_int_equal(km_musig_key_agg(g_ctx, &ka, flat, 3, NULL), KM_OK);
    assert_int_equal(km_random_bytes(msg, 32), KM_OK);
    km_secret *sn[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(km_musig_nonce_gen(g_ctx, &sn[i], pns + 66 * i, s[i].sk, s[i].pk, msg, &ka, NULL),
                         KM_OK);
    assert_int_equal(km_musig_nonce_agg(g_ctx, an, pns, 3, NULL), KM_OK);

    km_musig_session sess, bad_sess;
    /* invalid aggnonce / keyagg */
    unsigned char bad_an[66];
    memcpy(bad_an, an, 66);
    bad_an[0] = 0x05;
    memset(&bad_sess, 0x5a, sizeof bad_sess);
    assert_int_equal(km_musig_session_init(g_ctx, &bad_sess, bad_an, msg, &ka), KM_ERR_INVALID_POINT);
    assert_int_equal(bad_sess.valid, 0);
    memcpy(bad_an + 33, BAD_POINT, 33);
    bad_an[0] = an[0];
    assert_int_equal(km_musig_session_init(g_ctx, &bad_sess, bad_an, msg, &ka), KM_ERR_INVALID_POINT);
    assert_int_equal(km_musig_session_init(g_ctx, &bad_sess, an, msg, &invalid), KM_ERR_STATE);
    assert_int_equal(km_musig_verify_final(g_ctx, sig, msg, &invalid), KM_ERR_STATE);
    assert_int_equal(km_musig_session_init(g_ctx, &sess, an, msg, &ka), KM_OK);

    /* A foreign km_secret is not a nonce: refused, left untouched. */
    km_secret *foreign;
    unsigned char junk[32];
    assert_int_equal(km_random_bytes(junk, 32), KM_OK);
    assert_int_equal(km_secret_from(g_ctx, junk, 32, &foreign), KM_OK);
    assert_int_equal(km_musig_partial_sign(g_ctx, ps, foreign, s[0].sk, &sess), KM_ERR_ARG);
    assert_memory_equal(km_secret_cdata(foreign), junk, 32);
    km_secret_free(foreign);

    /* Invalid session: refused, and the nonce is gone all the same. */
    memset(&bad_sess, 0, sizeof bad_sess);
    assert_int_equal(km_musig_partial_sign(g_ctx, ps, sn[0], s[0].sk, &bad_sess), KM_ERR_STATE);
    assert_int_equal(km_musig_partial_sign(g_ctx, ps, sn[0], s[0].sk, &sess), KM_ERR_NONCE_REUSE);
    /* Wrong secret key for the nonce: refused (no abort), nonce gone. */
    memset(ps, 0xaa, 32);
    assert_int_equal(km_musig_partial_sign(g_ctx, ps, sn[1], s[2].sk, &sess), KM_ERR_ARG);
    assert_true(is_zero(ps, 32));
    assert_int_equal(km_musig_partial_sign(g_ctx, ps, sn[1], s[1].sk, &sess), KM_ERR_NONCE_REUSE);
    /* Invalid secret key. */
    unsigned char zero_sk[32] = {0};
    assert_int_equal(km_musig_partial_sign(g_ctx, ps, sn[2], zero_sk, &sess), KM_ERR_INVALID_KEY);
    assert_int_equal(km_musig_partial_sign(g_ctx, ps, sn[2], s[2].sk, &sess), KM_ERR_NONCE_REUSE);
    for (int i = 0; i < 3; i++)
        km_secret_free(sn[i]);

    /* Fresh round to get valid partial signatures for the verify checks. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(km_musig_nonce_gen(g_ctx, &sn[i], pns + 66 * i, s[i].sk, s[i].pk, msg, &ka, NULL),
                         KM_OK);
    assert_int_equal(km_musig_nonce_agg(g_ctx, an, pns, 3, NULL), KM_OK);
    assert_int_equal(km_musig_session_init(g_ctx, &sess, an, msg, &ka), KM_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(km_musig_partial_sign(g_ctx, psigs + 32 * i, sn[i], s[i].sk, &sess), KM_OK);
        km_secret_free(sn[i]);
    }
    unsigned char bad_pn[66];
    memcpy(bad_pn, pns, 66);
    bad_pn[33] = 0x04;
    assert_int_equal(km_musig_partial_verify(g_ctx, &sess, psigs, pns, s[0].pk), KM_OK);
    assert_int_equal(km_musig_partial_verify(g_ctx, &sess, psigs, bad_pn, s[0].pk), KM_ERR_INVALID_POINT);
    assert_int_equal(km_musig_partial_verify(g_ctx, &sess, psigs, pns, BAD_POINT), KM_ERR_INVALID_POINT);
    assert_int_equal(km_musig_partial_verify(g_ctx, &sess, ORDER, pns, s[0].pk), KM_ERR_PARSE);
    assert_int_equal(km_musig_partial_verify(g_ctx, &bad_sess, psigs, pns, s[0].pk), KM_ERR_STATE);
    assert_int_equal(km_musig_partial_sig_check(g_ctx, ORDER), KM_ERR_PARSE);
    /* signature on another message: a session for msg2 rejects it */
    km_musig_session sess2;
    unsigned char msg2[32];
    memcpy(msg2, msg, 32);
    msg2[0] ^= 0x80;
    assert_int_equal(km_musig_session_init(g_ctx, &sess2, an, msg2, &ka), KM_OK);
    assert_int_equal(km_musig_partial_verify(g_ctx, &sess2, psigs, pns, s[0].pk), KM_ERR_VERIFY);

    /* Aggregation: range and parse errors name the culprit. */
    size_t bad = 99;
    assert_int_equal(km_musig_partial_agg(g_ctx, sig, &sess, psigs, 0, &bad), KM_ERR_RANGE);
    assert_int_equal(km_musig_partial_agg(g_ctx, sig, &bad_sess, psigs, 3, &bad), KM_ERR_STATE);
    unsigned char tampered[3 * 32];
    memcpy(tampered, psigs, sizeof tampered);
    memcpy(tampered + 64, ORDER, 32);
    memset(sig, 0xaa, 64);
    assert_int_equal(km_musig_partial_agg(g_ctx, sig, &sess, tampered, 3, &bad), KM_ERR_PARSE);
    assert_int_equal(bad, 2);
    assert_true(is_zero(sig, 64));
    /* A missing partial signature gives an invalid signature. */
    assert_int_equal(km_musig_partial_agg(g_ctx, sig, &sess, psigs, 2, NULL), KM_OK);
    assert_int_equal(km_musig_verify_final(g_ctx, sig, msg, &ka), KM_ERR_VERIFY);
    assert_int_equal(km_musig_partial_agg(g_ctx, sig, &sess, psigs, 3, NULL), KM_OK);
    assert_int_equal(km_musig_verify_final(g_ctx, sig, msg, &ka), KM_OK);
    /* A signer whose key is not in the aggregation (BIP-327 sign_error
     * "pubkey not in list", not checked by partial_sign: see musig.h): its
     * partial signature is consistent for its own key, but substituted for a
     * member's it makes the final signature invalid. */
    km_secret *osn;
    unsigned char opn[66], ops[32];
    assert_int_equal(km_musig_nonce_gen(g_ctx, &osn, opn, outsider.sk, outsider.pk, msg, NULL, NULL), KM_OK);
    assert_int_equal(km_musig_partial_sign(g_ctx, ops, osn, outsider.sk, &sess), KM_OK);
    unsigned char again[32];
    assert_int_equal(km_musig_partial_sign(g_ctx, again, osn, outsider.sk, &sess), KM_ERR_NONCE_REUSE);
    km_secret_free(osn);
    memcpy(tampered, psigs, sizeof tampered);
    memcpy(tampered + 64, ops, 32);
    assert_int_equal(km_musig_partial_verify(g_ctx, &sess, ops, opn, outsider.pk), KM_OK);
    assert_int_equal(km_musig_partial_verify(g_ctx, &sess, ops, pns + 132, s[2].pk), KM_ERR_VERIFY);
    unsigned char osig[64];
    assert_int_equal(km_musig_partial_agg(g_ctx, osig, &sess, tampered, 3, NULL), KM_OK);
    assert_int_equal(km_musig_verify_final(g_ctx, osig, msg, &ka), KM_ERR_VERIFY);

    /* A flipped bit anywhere in the final signature is rejected. */
    for (int byte = 0; byte < 64; byte += 9) {
        sig[byte] ^= 0x10;
        assert_int_equal(km_musig_verify_final(g_ctx, sig, msg, &ka), KM_ERR_VERIFY);
        sig[byte] ^= 0x10;
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_sessions),    cmocka_unit_test(test_key_agg_inputs),
        cmocka_unit_test(test_subset),           cmocka_unit_test(test_duplicate_keys_sign),
        cmocka_unit_test(test_nonce_gen_inputs), cmocka_unit_test(test_nonce_agg_inputs),
        cmocka_unit_test(test_session_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
