/* test_taproot.c — taproot tweak modes: BIP-341 wallet vectors, mode names,
 * input rejection, and agreement between km_musig_keyagg_tweak and the
 * taproot module applied to the aggregate key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <secp256k1.h>
#include <secp256k1_extrakeys.h>

#include "core/musig_testutil.h"
#include "keymeld/aead.h"
#include "keymeld/musig.h"
#include "keymeld/taproot.h"

static km_ctx *g_ctx;

static int is_zero32(const unsigned char *p) {
    for (int i = 0; i < 32; i++)
        if (p[i]) return 0;
    return 1;
}

static void random_pubkeys(unsigned char *pks33, size_t n) {
    const secp256k1_context *secp = km_ctx_secp(g_ctx);
    for (size_t i = 0; i < n; i++) {
        unsigned char sk[32];
        secp256k1_pubkey pk;
        size_t len = 33;
        do
            assert_int_equal(km_random_bytes(sk, 32), KM_OK);
        while (!secp256k1_ec_seckey_verify(secp, sk));
        assert_true(secp256k1_ec_pubkey_create(secp, &pk, sk));
        assert_true(secp256k1_ec_pubkey_serialize(secp, pks33 + 33 * i, &len, &pk, SECP256K1_EC_COMPRESSED));
        km_wipe(sk, 32);
    }
}

static int setup(void **state) {
    (void)state;
    return km_ctx_create(&g_ctx) == KM_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    km_ctx_destroy(g_ctx);
    return 0;
}

/* group order n, big-endian */
static const unsigned char ORDER[32] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48,
                                        0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41};

/* BIP-341 wallet vectors, section scriptPubKey: internal key (+ merkle root)
 * -> tweak, output key, parity, scriptPubKey. */
static void test_bip341_script_pubkey(void **state) {
    (void)state;
    const secp256k1_context *secp = km_ctx_secp(g_ctx);
    json_t *root = tu_load("bip341/wallet-test-vectors.json");
    const json_t *cases = tu_arr(root, "scriptPubKey");
    size_t run = 0, skipped = 0;
    for (size_t i = 0; i < json_array_size(cases); i++) {
        const json_t *c = json_array_get(cases, i);
        const json_t *given = json_object_get(c, "given"), *inter = json_object_get(c, "intermediary"),
                     *exp = json_object_get(c, "expected");
        unsigned char p[32], root32[32], tweak[32], q[32], spk[34], t[32], out[32], myspk[34];
        tu_hex(p, 32, tu_get_str(given, "internalPubkey"));
        tu_hex(tweak, 32, tu_get_str(inter, "tweak"));
        tu_hex(q, 32, tu_get_str(inter, "tweakedPubkey"));
        tu_hex(spk, 34, tu_get_str(exp, "scriptPubKey"));
        const json_t *mr = json_object_get(inter, "merkleRoot");
        km_tweak tw;
        if (json_is_null(mr)) {
            /* No script tree: BIP-86 style commitment to the key alone. */
            assert_true(json_is_null(json_object_get(given, "scriptTree")));
            km_taproot_tweak_hash(t, p, NULL);
            km_tweak_bip86(&tw);
        } else {
            tu_hex(root32, 32, tu_str(mr));
            km_taproot_tweak_hash(t, p, root32);
            km_tweak_bip341(&tw, root32);
        }
        assert_memory_equal(t, tweak, 32);

        int parity = -1;
        assert_int_equal(km_taproot_output_key(g_ctx, out, &parity, p, &tw), KM_OK);
        assert_memory_equal(out, q, 32);
        km_taproot_script_pubkey(myspk, out);
        assert_memory_equal(myspk, spk, 34);

        /* The parity bit is what a script-path spend puts in its control
         * block (leaf version | parity). */
        const json_t *cbs = json_object_get(exp, "scriptPathControlBlocks");
        if (json_is_array(cbs) && json_array_size(cbs) > 0) {
            unsigned char cb[33 + 32 * 128];
            size_t cblen = tu_hex_var(cb, sizeof cb, tu_str(json_array_get(cbs, 0)));
            assert_true(cblen >= 33);
            assert_memory_equal(cb + 1, p, 32); /* the control block carries the internal key */
            assert_int_equal(parity, cb[0] & 1);
        }

        /* Independent check with libsecp256k1's own verifier of x-only tweaks. */
        secp256k1_xonly_pubkey px;
        assert_true(secp256k1_xonly_pubkey_parse(secp, &px, p));
        assert_true(secp256k1_xonly_pubkey_tweak_add_check(secp, q, parity, &px, tweak));

        /* The same output through the xonly mode with the precomputed tweak. */
        km_tweak xt;
        km_tweak_xonly(&xt, tweak);
        int parity2 = -1;
        assert_int_equal(km_taproot_output_key(g_ctx, out, &parity2, p, &xt), KM_OK);
        assert_memory_equal(out, q, 32);
        assert_int_equal(parity2, parity);
        run++;
    }
    printf("bip341 wallet-test-vectors.json scriptPubKey: %zu run, %zu skipped\n", run, skipped);
    assert_int_equal(run, 7);
    json_decref(root);
}

/* BIP-341 wallet vectors, section keyPathSpending: the tweak and the output
 * key must match the tweaked private key the vector gives. */
static void test_bip341_key_path(void **state) {
    (void)state;
    const secp256k1_context *secp = km_ctx_secp(g_ctx);
    json_t *root = tu_load("bip341/wallet-test-vectors.json");
    const json_t *kps = tu_arr(root, "keyPathSpending");
    size_t run = 0;
    for (size_t k = 0; k < json_array_size(kps); k++) {
        const json_t *inputs = tu_arr(json_array_get(kps, k), "inputSpending");
        for (size_t i = 0; i < json_array_size(inputs); i++) {
            const json_t *c = json_array_get(inputs, i);
            const json_t *given = json_object_get(c, "given"), *inter = json_object_get(c, "intermediary");
            unsigned char sk[32], p[32], tweak[32], tsk[32], root32[32], t[32], out[32], x[32];
            tu_hex(sk, 32, tu_get_str(given, "internalPrivkey"));
            tu_hex(p, 32, tu_get_str(inter, "internalPubkey"));
            tu_hex(tweak, 32, tu_get_str(inter, "tweak"));
            tu_hex(tsk, 32, tu_get_str(inter, "tweakedPrivkey"));
            const json_t *mr = json_object_get(given, "merkleRoot");
            km_tweak tw;
            if (json_is_null(mr)) {
                km_taproot_tweak_hash(t, p, NULL);
                km_tweak_bip86(&tw);
            } else {
                tu_hex(root32, 32, tu_str(mr));
                km_taproot_tweak_hash(t, p, root32);
                km_tweak_bip341(&tw, root32);
            }
            assert_memory_equal(t, tweak, 32);

            /* The internal private key belongs to the internal key. */
            secp256k1_keypair kp;
            secp256k1_xonly_pubkey xp;
            assert_true(secp256k1_keypair_create(secp, &kp, sk));
            assert_true(secp256k1_keypair_xonly_pub(secp, &xp, NULL, &kp));
            assert_true(secp256k1_xonly_pubkey_serialize(secp, x, &xp));
            assert_memory_equal(x, p, 32);

            /* Output key = the key of the tweaked private key. */
            int parity;
            assert_int_equal(km_taproot_output_key(g_ctx, out, &parity, p, &tw), KM_OK);
            secp256k1_keypair tkp;
            int tparity;
            assert_true(secp256k1_keypair_create(secp, &tkp, tsk));
            assert_true(secp256k1_keypair_xonly_pub(secp, &xp, &tparity, &tkp));
            assert_true(secp256k1_xonly_pubkey_serialize(secp, x, &xp));
            assert_memory_equal(out, x, 32);
            assert_int_equal(parity, tparity);
            run++;
        }
    }
    printf("bip341 wallet-test-vectors.json keyPathSpending (keys only): %zu run, 0 skipped\n", run);
    assert_int_equal(run, 7);
    json_decref(root);
}

static void test_mode_names(void **state) {
    (void)state;
    const char *names[] = {"none", "bip86", "bip341", "plain", "xonly"};
    for (int m = 0; m < 5; m++) {
        assert_string_equal(km_tweak_mode_name((km_tweak_mode)m), names[m]);
        km_tweak_mode got = KM_TWEAK_XONLY;
        assert_int_equal(km_tweak_mode_parse(&got, names[m], strlen(names[m])), KM_OK);
        assert_int_equal(got, m);
    }
    assert_null(km_tweak_mode_name((km_tweak_mode)5));
    assert_null(km_tweak_mode_name((km_tweak_mode)-1));
    const char *bad[] = {"", "NONE", "bip8", "bip860", "x-only", " none", "unspendable_taproot"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        km_tweak_mode got = KM_TWEAK_XONLY;
        assert_int_equal(km_tweak_mode_parse(&got, bad[i], strlen(bad[i])), KM_ERR_PARSE);
        assert_int_equal(got, KM_TWEAK_NONE);
    }
    km_tweak_mode got;
    assert_int_equal(km_tweak_mode_parse(&got, "none\0", 5), KM_ERR_PARSE); /* embedded NUL */
    assert_int_equal(km_tweak_mode_parse(&got, "bip86", 4), KM_ERR_PARSE);  /* truncated */
    assert_int_equal(km_tweak_mode_has_data(KM_TWEAK_NONE), 0);
    assert_int_equal(km_tweak_mode_has_data(KM_TWEAK_BIP86), 0);
    assert_int_equal(km_tweak_mode_has_data(KM_TWEAK_BIP341), 1);
    assert_int_equal(km_tweak_mode_has_data(KM_TWEAK_PLAIN), 1);
    assert_int_equal(km_tweak_mode_has_data(KM_TWEAK_XONLY), 1);
    assert_int_equal(km_tweak_mode_has_data((km_tweak_mode)7), 0);
}

static void test_output_key_rejects(void **state) {
    (void)state;
    unsigned char p[32], out[32], bad_x[32] = {0};
    /* x = 5 is not on the curve (BIP-327 key_agg vector "Invalid public key"). */
    bad_x[31] = 5;
    tu_hex(p, 32, "d6889cb081036e0faefa3a35157ad71086b123b2b144b649798b494c300a961d");
    km_tweak t;
    int parity = 7;

    km_tweak_bip86(&t);
    memset(out, 0xaa, 32);
    assert_int_equal(km_taproot_output_key(g_ctx, out, &parity, bad_x, &t), KM_ERR_INVALID_POINT);
    assert_true(is_zero32(out) && parity == 0);

    km_tweak_xonly(&t, ORDER); /* t = n is out of range */
    memset(out, 0xaa, 32);
    parity = 7;
    assert_int_equal(km_taproot_output_key(g_ctx, out, &parity, p, &t), KM_ERR_RANGE);
    assert_true(is_zero32(out) && parity == 0);

    km_tweak_bip86(&t);
    t.data[5] = 1; /* stray data in a data-less mode */
    assert_int_equal(km_tweak_check(&t), KM_ERR_ARG);
    assert_int_equal(km_taproot_output_key(g_ctx, out, NULL, p, &t), KM_ERR_ARG);

    km_tweak_none(&t);
    t.mode = (km_tweak_mode)9;
    assert_int_equal(km_tweak_check(&t), KM_ERR_UNSUPPORTED);
    assert_int_equal(km_taproot_output_key(g_ctx, out, NULL, p, &t), KM_ERR_UNSUPPORTED);

    /* none: the output is the internal key itself. */
    km_tweak_none(&t);
    assert_int_equal(km_taproot_output_key(g_ctx, out, &parity, p, &t), KM_OK);
    assert_memory_equal(out, p, 32);
    assert_int_equal(parity, 0);

    unsigned char spk[34];
    km_taproot_script_pubkey(spk, p);
    assert_int_equal(spk[0], 0x51);
    assert_int_equal(spk[1], 0x20);
    assert_memory_equal(spk + 2, p, 32);
}

/* km_musig_keyagg_tweak must report, for every mode, what the taproot module
 * (BIP-341) computes from the aggregate key; plain uses the real aggregate
 * point (so it differs from xonly exactly when the aggregate has odd y). */
static void test_musig_modes_match_taproot(void **state) {
    (void)state;
    const secp256k1_context *secp = km_ctx_secp(g_ctx);
    int seen_parity[2] = {0, 0};
    for (int trial = 0; trial < 64 && !(seen_parity[0] && seen_parity[1] && trial >= 8); trial++) {
        unsigned char pks[3 * 33], root32[32], t32[32], exp[32];
        random_pubkeys(pks, 3);
        assert_int_equal(km_random_bytes(root32, 32), KM_OK);
        assert_int_equal(km_random_bytes(t32, 32), KM_OK);
        t32[0] &= 0x7f; /* keep it below n */
        km_musig_keyagg ka0;
        assert_int_equal(km_musig_key_agg(g_ctx, &ka0, pks, 3, NULL), KM_OK);
        int agg_parity = ka0.agg_pubkey[0] == 0x03;
        seen_parity[agg_parity] = 1;
        assert_memory_equal(ka0.agg_xonly, ka0.agg_pubkey + 1, 32);
        assert_memory_equal(ka0.output_xonly, ka0.agg_xonly, 32);
        assert_int_equal(ka0.tweaked, 0);

        km_tweak tw[5];
        km_tweak_none(&tw[0]);
        km_tweak_bip86(&tw[1]);
        km_tweak_bip341(&tw[2], root32);
        km_tweak_plain(&tw[3], t32);
        km_tweak_xonly(&tw[4], t32);
        unsigned char outs[5][33];
        for (int m = 0; m < 5; m++) {
            km_musig_keyagg ka = ka0;
            assert_int_equal(km_musig_keyagg_tweak(g_ctx, &ka, &tw[m]), KM_OK);
            assert_int_equal(ka.tweaked, 1);
            assert_int_equal(ka.tweak.mode, tw[m].mode);
            assert_memory_equal(ka.tweak.data, tw[m].data, 32);
            assert_int_equal(ka.output_pubkey[0], ka.output_parity ? 0x03 : 0x02);
            assert_memory_equal(ka.output_pubkey + 1, ka.output_xonly, 32);
            memcpy(outs[m], ka.output_pubkey, 33);
            if (m == 3) {
                /* plain: Q = P + t*G with the aggregate's real y. */
                secp256k1_pubkey q;
                unsigned char ser[33];
                size_t len = 33;
                assert_true(secp256k1_ec_pubkey_parse(secp, &q, ka0.agg_pubkey, 33));
                assert_true(secp256k1_ec_pubkey_tweak_add(secp, &q, t32));
                assert_true(secp256k1_ec_pubkey_serialize(secp, ser, &len, &q, SECP256K1_EC_COMPRESSED));
                assert_memory_equal(ka.output_pubkey, ser, 33);
            } else {
                int parity = -1;
                assert_int_equal(km_taproot_output_key(g_ctx, exp, &parity, ka0.agg_xonly, &tw[m]), KM_OK);
                assert_memory_equal(ka.output_xonly, exp, 32);
                if (m != 0) assert_int_equal(ka.output_parity, parity);
            }
            /* Once only: a second tweak is a state error and changes nothing. */
            km_musig_keyagg before = ka;
            assert_int_equal(km_musig_keyagg_tweak(g_ctx, &ka, &tw[0]), KM_ERR_STATE);
            assert_memory_equal(&before, &ka, sizeof ka);
        }
        /* plain and xonly agree iff the aggregate has even y. */
        if (agg_parity)
            assert_memory_not_equal(outs[3], outs[4], 33);
        else
            assert_memory_equal(outs[3], outs[4], 33);
        /* Every tweaking mode moves the key. */
        for (int m = 1; m < 5; m++)
            assert_memory_not_equal(outs[m] + 1, ka0.agg_xonly, 32);
    }
    assert_true(seen_parity[0] && seen_parity[1]);
}

static void test_musig_tweak_rejects(void **state) {
    (void)state;
    unsigned char pks[2 * 33];
    random_pubkeys(pks, 2);
    km_musig_keyagg ka, before;
    assert_int_equal(km_musig_key_agg(g_ctx, &ka, pks, 2, NULL), KM_OK);
    before = ka;
    km_tweak t;
    km_tweak_plain(&t, ORDER);
    assert_int_equal(km_musig_keyagg_tweak(g_ctx, &ka, &t), KM_ERR_RANGE);
    assert_memory_equal(&ka, &before, sizeof ka);
    km_tweak_xonly(&t, ORDER);
    assert_int_equal(km_musig_keyagg_tweak(g_ctx, &ka, &t), KM_ERR_RANGE);
    assert_memory_equal(&ka, &before, sizeof ka);
    km_tweak_bip86(&t);
    t.data[0] = 1;
    assert_int_equal(km_musig_keyagg_tweak(g_ctx, &ka, &t), KM_ERR_ARG);
    t.mode = (km_tweak_mode)42;
    assert_int_equal(km_musig_keyagg_tweak(g_ctx, &ka, &t), KM_ERR_UNSUPPORTED);
    assert_memory_equal(&ka, &before, sizeof ka);
    /* After all those refusals the one allowed tweak still works. */
    km_tweak_bip86(&t);
    assert_int_equal(km_musig_keyagg_tweak(g_ctx, &ka, &t), KM_OK);
    /* An aggregation that never succeeded cannot be tweaked. */
    km_musig_keyagg empty;
    memset(&empty, 0, sizeof empty);
    assert_int_equal(km_musig_keyagg_tweak(g_ctx, &empty, &t), KM_ERR_STATE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bip341_script_pubkey),
        cmocka_unit_test(test_bip341_key_path),
        cmocka_unit_test(test_mode_names),
        cmocka_unit_test(test_output_key_rejects),
        cmocka_unit_test(test_musig_modes_match_taproot),
        cmocka_unit_test(test_musig_tweak_rejects),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
