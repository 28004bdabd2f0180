/* test_sighash.c — the transaction codec and BIP-341 signature messages
 * against the official wallet vectors (tests/vectors/bip341/
 * wallet-test-vectors.json), plus malformed-transaction rejection.
 *
 * keyPathSpending, for every input case: the intermediary hashes the vector
 * lists, sigMsg, sigHash, the internal public key, the tweak, the tweaked
 * private key, and the witness signature (BIP-340 with all-zero aux_rand,
 * as the vectors were generated, plus the hash type byte unless DEFAULT).
 * The fully signed transaction in "auxiliary" is reproduced for the inputs
 * the vector signs. scriptPubKey: every output key and scriptPubKey.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "keymeld/context.h"
#include "keymeld/cursor.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "keymeld/secret.h"
#include "keymeld/single.h"
#include "keymeld/taproot.h"
#include "keymeld/tx.h"

#define VECTORS KM_VECTORS_DIR "/bip341/wallet-test-vectors.json"

static km_ctx *g_ctx;
static json_t *g_root;

/* Decode a hex string of any length into fresh memory (freed by caller). */
static unsigned char *unhex(const char *h, size_t *len) {
    size_t n = strlen(h) / 2;
    unsigned char *p = malloc(n ? n : 1);
    assert_non_null(p);
    assert_int_equal(km_hex_decode_var(p, n, len, h, strlen(h)), KM_OK);
    assert_int_equal(*len, n);
    return p;
}

static void unhex32(unsigned char out[32], const char *h) {
    assert_non_null(h);
    assert_int_equal(km_hex_decode(out, 32, h, strlen(h)), KM_OK);
}

static const char *jstr(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void assert_hex_equal(const unsigned char *got, size_t len, const char *want_hex, const char *what,
                             int input) {
    size_t wl;
    unsigned char *want = unhex(want_hex, &wl);
    if (wl != len || memcmp(got, want, len) != 0) {
        char buf[1024];
        size_t shown = len < 400 ? len : 400;
        if (km_hex_encode(buf, sizeof buf, got, shown) != KM_OK) buf[0] = '\0';
        free(want);
        fail_msg("input %d: %s differs: got %s", input, what, buf);
    }
    free(want);
}

/* Spent outputs of a keyPathSpending case; scripts point into *blobs. */
typedef struct spent_set {
    km_tx_spent *spent;
    unsigned char **blobs;
    size_t n;
} spent_set;

static void load_spent(const json_t *utxos, spent_set *s) {
    s->n = json_array_size(utxos);
    s->spent = calloc(s->n, sizeof *s->spent);
    s->blobs = calloc(s->n, sizeof *s->blobs);
    assert_non_null(s->spent);
    assert_non_null(s->blobs);
    for (size_t i = 0; i < s->n; i++) {
        const json_t *u = json_array_get(utxos, i);
        const json_t *amt = json_object_get(u, "amountSats");
        assert_true(json_is_integer(amt));
        s->spent[i].amount = (uint64_t)json_integer_value(amt);
        s->blobs[i] = unhex(jstr(u, "scriptPubKey"), &s->spent[i].script_len);
        s->spent[i].script_pubkey = s->blobs[i];
    }
}

static void free_spent(spent_set *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->blobs[i]);
    free(s->blobs);
    free(s->spent);
}

static void test_key_path_vectors(void **state) {
    (void)state;
    const json_t *cases = json_object_get(g_root, "keyPathSpending");
    assert_true(json_is_array(cases) && json_array_size(cases) > 0);
    int inputs_run = 0, hashes_checked = 0, skipped = 0, txs = 0;

    for (size_t ci = 0; ci < json_array_size(cases); ci++) {
        const json_t *kc = json_array_get(cases, ci);
        const json_t *given = json_object_get(kc, "given");
        const json_t *inter = json_object_get(kc, "intermediary");
        size_t raw_len;
        unsigned char *raw = unhex(jstr(given, "rawUnsignedTx"), &raw_len);
        km_tx tx, signed_tx;
        km_buf b;
        spent_set ss;

        /* Parse / serialize round trip of the unsigned transaction. */
        assert_int_equal(km_tx_parse(&tx, raw, raw_len), KM_OK);
        km_buf_init(&b);
        assert_int_equal(km_tx_serialize(&tx, 1, &b), KM_OK);
        assert_int_equal(b.len, raw_len);
        assert_memory_equal(b.data, raw, raw_len);
        km_buf_free(&b);
        load_spent(json_object_get(given, "utxosSpent"), &ss);
        assert_int_equal(ss.n, tx.n_in);

        /* Transaction-wide intermediary hashes. */
        km_tx_taproot_hashes h;
        assert_int_equal(km_tx_taproot_hashes_compute(&tx, ss.spent, ss.n, &h), KM_OK);
        struct {
            const char *name;
            const unsigned char *v;
        } hs[] = {{"hashPrevouts", h.prevouts},
                  {"hashAmounts", h.amounts},
                  {"hashScriptPubkeys", h.script_pubkeys},
                  {"hashSequences", h.sequences},
                  {"hashOutputs", h.outputs}};
        for (size_t k = 0; k < 5; k++) {
            const json_t *v = json_object_get(inter, hs[k].name);
            if (!v) {
                printf("case %zu: no %s given; not compared\n", ci, hs[k].name);
                continue;
            }
            assert_hex_equal(hs[k].v, 32, json_string_value(v), hs[k].name, -1);
            hashes_checked++;
        }

        /* The fully signed transaction is rebuilt from our own signatures. */
        assert_int_equal(km_tx_parse(&signed_tx, raw, raw_len), KM_OK);

        const json_t *ins = json_object_get(kc, "inputSpending");
        for (size_t ii = 0; ii < json_array_size(ins); ii++) {
            const json_t *in = json_array_get(ins, ii);
            const json_t *ig = json_object_get(in, "given");
            const json_t *im = json_object_get(in, "intermediary");
            int idx = (int)json_integer_value(json_object_get(ig, "txinIndex"));
            uint8_t hash_type = (uint8_t)json_integer_value(json_object_get(ig, "hashType"));
            const json_t *mr = json_object_get(ig, "merkleRoot");
            unsigned char sk[32], root[32], internal[32], tweak[32], tsk[32], sighash[32], sig[65];
            const unsigned char *rootp = NULL;

            unhex32(sk, jstr(ig, "internalPrivkey"));
            if (json_is_string(mr)) {
                unhex32(root, json_string_value(mr));
                rootp = root;
            } else {
                assert_true(json_is_null(mr));
            }

            /* Keys and tweak. */
            assert_int_equal(km_single_xonly_pubkey(g_ctx, internal, sk), KM_OK);
            assert_hex_equal(internal, 32, jstr(im, "internalPubkey"), "internalPubkey", idx);
            km_taproot_tweak_hash(tweak, internal, rootp);
            assert_hex_equal(tweak, 32, jstr(im, "tweak"), "tweak", idx);
            assert_int_equal(km_single_taproot_tweak_seckey(g_ctx, tsk, sk, rootp), KM_OK);
            assert_hex_equal(tsk, 32, jstr(im, "tweakedPrivkey"), "tweakedPrivkey", idx);
            /* The tweaked key is the one in the spent output's scriptPubKey. */
            unsigned char q[32], spk[34];
            km_tweak tw;
            if (rootp)
                km_tweak_bip341(&tw, rootp);
            else
                km_tweak_bip86(&tw);
            assert_int_equal(km_taproot_output_key(g_ctx, q, NULL, internal, &tw), KM_OK);
            assert_int_equal(km_tx_p2tr_script(g_ctx, spk, q), KM_OK);
            assert_int_equal(ss.spent[idx].script_len, 34);
            assert_memory_equal(ss.spent[idx].script_pubkey, spk, 34);

            /* Signature message and sighash. */
            km_buf_init(&b);
            assert_int_equal(km_tx_taproot_sigmsg(&tx, ss.spent, ss.n, (size_t)idx, hash_type, NULL, 0, &b),
                             KM_OK);
            assert_hex_equal(b.data, b.len, jstr(im, "sigMsg"), "sigMsg", idx);
            km_buf_free(&b);
            assert_int_equal(
                km_tx_taproot_sighash(&tx, ss.spent, ss.n, (size_t)idx, hash_type, NULL, 0, sighash), KM_OK);
            assert_hex_equal(sighash, 32, jstr(im, "sigHash"), "sigHash", idx);

            /* Witness signature: BIP-340 over the sighash with the tweaked
             * key and aux_rand = 32 zero bytes (how the vectors were made;
             * any other aux gives a different, equally valid signature). */
            static const unsigned char zero_aux[32] = {0};
            assert_int_equal(km_single_schnorr_sign_aux(g_ctx, sig, sighash, 32, tsk, zero_aux), KM_OK);
            size_t sig_len = 64;
            if (hash_type != KM_SIGHASH_DEFAULT) sig[sig_len++] = hash_type;
            const json_t *wit = json_object_get(json_object_get(in, "expected"), "witness");
            assert_int_equal(json_array_size(wit), 1);
            assert_hex_equal(sig, sig_len, json_string_value(json_array_get(wit, 0)), "witness", idx);
            assert_int_equal(km_single_schnorr_verify(g_ctx, sig, sighash, 32, q), KM_OK);
            assert_int_equal(km_tx_set_witness_sig(&signed_tx, (size_t)idx, sig, sig_len), KM_OK);
            km_wipe(sk, sizeof sk);
            km_wipe(tsk, sizeof tsk);
            inputs_run++;
        }

        /* auxiliary.fullySignedTx also carries non-taproot witnesses and a
         * scriptSig that this vector does not derive; copy those from it and
         * check that the taproot witnesses we produced sit exactly where the
         * vector has them. */
        const json_t *aux = json_object_get(kc, "auxiliary");
        const json_t *full_hex = aux ? json_object_get(aux, "fullySignedTx") : NULL;
        if (json_is_string(full_hex)) {
            size_t full_len;
            unsigned char *full = unhex(json_string_value(full_hex), &full_len);
            km_tx ref;
            assert_int_equal(km_tx_parse(&ref, full, full_len), KM_OK);
            assert_int_equal(ref.n_in, signed_tx.n_in);
            for (size_t i = 0; i < ref.n_in; i++) {
                if (signed_tx.in[i].n_witness) {
                    assert_int_equal(ref.in[i].n_witness, 1);
                    assert_int_equal(ref.in[i].witness[0].len, signed_tx.in[i].witness[0].len);
                    assert_memory_equal(ref.in[i].witness[0].data, signed_tx.in[i].witness[0].data,
                                        ref.in[i].witness[0].len);
                    continue;
                }
                /* Not signed by a keyPathSpending case: take it from ref. */
                km_tx_in *d = &signed_tx.in[i];
                free(d->script_sig.data);
                d->script_sig = ref.in[i].script_sig;
                ref.in[i].script_sig.data = NULL;
                ref.in[i].script_sig.len = 0;
                d->n_witness = ref.in[i].n_witness;
                d->witness = ref.in[i].witness;
                ref.in[i].witness = NULL;
                ref.in[i].n_witness = 0;
            }
            km_buf_init(&b);
            assert_int_equal(km_tx_serialize(&signed_tx, 1, &b), KM_OK);
            assert_int_equal(b.len, full_len);
            assert_memory_equal(b.data, full, full_len);
            km_buf_free(&b);
            /* Witnesses do not change the txid. */
            unsigned char t1[32], t2[32];
            assert_int_equal(km_tx_txid(&tx, t1), KM_OK);
            assert_int_equal(km_tx_txid(&ref, t2), KM_OK);
            assert_memory_equal(t1, t2, 32);
            km_tx_free(&ref);
            free(full);
            txs++;
        } else {
            printf("case %zu: no auxiliary.fullySignedTx; signed transaction not compared\n", ci);
        }

        km_tx_free(&signed_tx);
        km_tx_free(&tx);
        free_spent(&ss);
        free(raw);
    }
    printf("bip341 keyPathSpending: %d input cases run, %d intermediary hashes compared, %d fully signed tx "
           "compared, skipped %d\n",
           inputs_run, hashes_checked, txs, skipped);
    assert_true(inputs_run > 0);
}

static void test_script_pubkey_vectors(void **state) {
    (void)state;
    const json_t *cases = json_object_get(g_root, "scriptPubKey");
    int run = 0;
    assert_true(json_is_array(cases));
    for (size_t i = 0; i < json_array_size(cases); i++) {
        const json_t *c = json_array_get(cases, i);
        const json_t *g = json_object_get(c, "given");
        const json_t *im = json_object_get(c, "intermediary");
        const json_t *ex = json_object_get(c, "expected");
        unsigned char internal[32], root[32], tweak[32], q[32], spk[34];
        const unsigned char *rootp = NULL;
        unhex32(internal, jstr(g, "internalPubkey"));
        const json_t *mr = json_object_get(im, "merkleRoot");
        if (json_is_string(mr)) {
            unhex32(root, json_string_value(mr));
            rootp = root;
        }
        /* The merkle root itself comes from the script tree (script-path
         * construction, not in this module); the vector states it. */
        km_taproot_tweak_hash(tweak, internal, rootp);
        assert_hex_equal(tweak, 32, jstr(im, "tweak"), "tweak", (int)i);
        km_tweak tw;
        if (rootp)
            km_tweak_bip341(&tw, rootp);
        else
            km_tweak_bip86(&tw);
        assert_int_equal(km_taproot_output_key(g_ctx, q, NULL, internal, &tw), KM_OK);
        assert_hex_equal(q, 32, jstr(im, "tweakedPubkey"), "tweakedPubkey", (int)i);
        assert_int_equal(km_tx_p2tr_script(g_ctx, spk, q), KM_OK);
        assert_hex_equal(spk, 34, jstr(ex, "scriptPubKey"), "scriptPubKey", (int)i);
        run++;
    }
    printf("bip341 scriptPubKey: %d cases run (tweak, output key, scriptPubKey; the merkle root is taken "
           "from the vector, the bech32m address is not checked), skipped 0\n",
           run);
    assert_true(run > 0);
}

/* The unsigned transaction of the first keyPathSpending case. */
static unsigned char *vector_tx(size_t *len) {
    const json_t *kc = json_array_get(json_object_get(g_root, "keyPathSpending"), 0);
    return unhex(jstr(json_object_get(kc, "given"), "rawUnsignedTx"), len);
}

static void expect_parse_fail(const unsigned char *p, size_t n) {
    km_tx tx;
    assert_int_equal(km_tx_parse(&tx, p, n), KM_ERR_PARSE);
    assert_int_equal(tx.n_in, 0);
    assert_null(tx.in);
    assert_int_equal(tx.n_out, 0);
    assert_null(tx.out);
}

static void test_malformed(void **state) {
    (void)state;
    size_t len, full_len;
    unsigned char *raw = vector_tx(&len);
    const json_t *kc = json_array_get(json_object_get(g_root, "keyPathSpending"), 0);
    unsigned char *full = unhex(jstr(json_object_get(kc, "auxiliary"), "fullySignedTx"), &full_len);
    unsigned char *buf = malloc(full_len + 16);
    assert_non_null(buf);
    int cases = 0;

    /* Truncated at every length, legacy and segwit form; one trailing byte. */
    for (size_t n = 0; n < len; n++, cases++)
        expect_parse_fail(raw, n);
    for (size_t n = 0; n < full_len; n++, cases++)
        expect_parse_fail(full, n);
    memcpy(buf, raw, len);
    buf[len] = 0;
    expect_parse_fail(buf, len + 1);
    memcpy(buf, full, full_len);
    buf[full_len] = 0;
    expect_parse_fail(buf, full_len + 1);
    expect_parse_fail(NULL, 5);
    cases += 3;

    /* Non-canonical CompactSize: the input count 9 spelled 0xfd 09 00. */
    assert_int_equal(raw[4], 9);
    memcpy(buf, raw, 4);
    buf[4] = 0xfd;
    buf[5] = 9;
    buf[6] = 0;
    memcpy(buf + 7, raw + 5, len - 5);
    expect_parse_fail(buf, len + 2);
    /* ...and as 0xfe 09 00 00 00 and 0xff 09 00.. */
    buf[4] = 0xfe;
    memset(buf + 5, 0, 4);
    buf[5] = 9;
    memcpy(buf + 9, raw + 5, len - 5);
    expect_parse_fail(buf, len + 4);
    buf[4] = 0xff;
    memset(buf + 5, 0, 8);
    buf[5] = 9;
    memcpy(buf + 13, raw + 5, len - 5);
    expect_parse_fail(buf, len + 8);
    cases += 3;

    /* Huge counts: inputs, outputs, script length, witness items. */
    static const unsigned char huge_in[] = {1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    expect_parse_fail(huge_in, sizeof huge_in);
    static const unsigned char huge_in2[] = {1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0x7f};
    expect_parse_fail(huge_in2, sizeof huge_in2);
    /* A count just over what the remaining bytes could hold. */
    memcpy(buf, raw, len);
    buf[4] = 10;
    expect_parse_fail(buf, len);
    /* Output count (at the byte after the last input) set huge. */
    km_tx tx;
    assert_int_equal(km_tx_parse(&tx, raw, len), KM_OK);
    size_t out_count_pos = 4 + 1 + tx.n_in * 41; /* all scriptSigs are empty here */
    assert_int_equal(raw[out_count_pos], tx.n_out);
    memcpy(buf, raw, len);
    buf[out_count_pos] = 0xfe;
    expect_parse_fail(buf, len);
    /* First output's script length claims more than remains. */
    memcpy(buf, raw, len);
    buf[out_count_pos + 1 + 8] = 0xfc;
    expect_parse_fail(buf, len);
    cases += 5;

    /* Zero inputs (legacy: unreadable as anything but a marker) and zero
     * outputs. */
    static const unsigned char no_in[] = {2, 0, 0, 0, 0x00, 0x00, 0, 0, 0, 0};
    expect_parse_fail(no_in, sizeof no_in);
    memcpy(buf, raw, len);
    buf[out_count_pos] = 0;
    memcpy(buf + out_count_pos + 1, raw + len - 4, 4);
    expect_parse_fail(buf, out_count_pos + 5);
    cases += 2;

    /* Segwit: flag other than 1; marker with all witnesses empty. */
    memcpy(buf, full, full_len);
    assert_int_equal(buf[4], 0);
    assert_int_equal(buf[5], 1);
    buf[5] = 2;
    expect_parse_fail(buf, full_len);
    buf[0] = raw[0];
    memcpy(buf, raw, 4);
    buf[4] = 0;
    buf[5] = 1;
    memcpy(buf + 6, raw + 4, len - 8);
    for (size_t i = 0; i < tx.n_in; i++)
        buf[6 + len - 8 + i] = 0; /* empty witness per input */
    memcpy(buf + 6 + len - 8 + tx.n_in, raw + len - 4, 4);
    expect_parse_fail(buf, len + 2 + tx.n_in);
    cases += 2;
    /* ...the same with one non-empty witness is fine (control for the above). */
    buf[6 + len - 8] = 1;
    memmove(buf + 6 + len - 8 + 2, buf + 6 + len - 8 + 1, tx.n_in - 1 + 4);
    buf[6 + len - 8 + 1] = 0;
    {
        km_tx ok;
        assert_int_equal(km_tx_parse(&ok, buf, len + 3 + tx.n_in), KM_OK);
        assert_int_equal(ok.in[0].n_witness, 1);
        assert_int_equal(ok.in[0].witness[0].len, 0);
        km_tx_free(&ok);
    }

    /* Output amount above 21M BTC. */
    memcpy(buf, raw, len);
    memset(buf + out_count_pos + 1, 0xff, 8);
    expect_parse_fail(buf, len);
    cases++;

    /* Oversized input (length check before reading). */
    expect_parse_fail(raw, (size_t)KM_TX_MAX_SIZE + 1);
    cases++;

    km_tx_free(&tx);
    free(buf);
    free(full);
    free(raw);
    printf("malformed transactions: %d rejected with KM_ERR_PARSE\n", cases);
}

static void test_sigmsg_args(void **state) {
    (void)state;
    size_t len;
    unsigned char *raw = vector_tx(&len);
    const json_t *kc = json_array_get(json_object_get(g_root, "keyPathSpending"), 0);
    km_tx tx;
    spent_set ss;
    unsigned char h1[32], h2[32];
    km_buf b;
    assert_int_equal(km_tx_parse(&tx, raw, len), KM_OK);
    load_spent(json_object_get(json_object_get(kc, "given"), "utxosSpent"), &ss);

    /* Undefined hash types. */
    const uint8_t bad_types[] = {0x04, 0x80, 0x84, 0x41, 0xff, 0x10};
    for (size_t i = 0; i < sizeof bad_types; i++) {
        memset(h1, 0xaa, 32);
        assert_int_equal(km_tx_taproot_sighash(&tx, ss.spent, ss.n, 0, bad_types[i], NULL, 0, h1),
                         KM_ERR_ARG);
        for (int k = 0; k < 32; k++)
            assert_int_equal(h1[k], 0);
    }
    /* Wrong number of spent outputs; index out of range; SINGLE without a
     * matching output (the tx has 2 outputs). */
    assert_int_equal(km_tx_taproot_sighash(&tx, ss.spent, ss.n - 1, 0, 0, NULL, 0, h1), KM_ERR_ARG);
    assert_int_equal(km_tx_taproot_sighash(&tx, NULL, 0, 0, 0, NULL, 0, h1), KM_ERR_ARG);
    assert_int_equal(km_tx_taproot_sighash(&tx, ss.spent, ss.n, tx.n_in, 0, NULL, 0, h1), KM_ERR_RANGE);
    assert_int_equal(tx.n_out, 2);
    assert_int_equal(km_tx_taproot_sighash(&tx, ss.spent, ss.n, 2, KM_SIGHASH_SINGLE, NULL, 0, h1),
                     KM_ERR_RANGE);
    assert_int_equal(km_tx_taproot_sighash(&tx, ss.spent, ss.n, 2, 0x83, NULL, 0, h1), KM_ERR_RANGE);
    assert_int_equal(km_tx_taproot_sighash(&tx, ss.spent, ss.n, 1, KM_SIGHASH_SINGLE, NULL, 0, h1), KM_OK);
    /* Amount above 21M BTC in a spent output. */
    uint64_t keep = ss.spent[3].amount;
    ss.spent[3].amount = KM_TX_MAX_MONEY + 1;
    assert_int_equal(km_tx_taproot_sighash(&tx, ss.spent, ss.n, 0, 0, NULL, 0, h1), KM_ERR_RANGE);
    ss.spent[3].amount = keep;

    /* Every committed datum changes the sighash: a spent amount or script
     * of another input (DEFAULT commits to all), and not under
     * ANYONECANPAY|NONE for another input. */
    assert_int_equal(km_tx_taproot_sighash(&tx, ss.spent, ss.n, 0, 0, NULL, 0, h1), KM_OK);
    ss.spent[5].amount += 1;
    assert_int_equal(km_tx_taproot_sighash(&tx, ss.spent, ss.n, 0, 0, NULL, 0, h2), KM_OK);
    assert_memory_not_equal(h1, h2, 32);
    assert_int_equal(km_tx_taproot_sighash(&tx, ss.spent, ss.n, 0, 0x82, NULL, 0, h1), KM_OK);
    ss.spent[5].amount -= 1;
    assert_int_equal(km_tx_taproot_sighash(&tx, ss.spent, ss.n, 0, 0x82, NULL, 0, h2), KM_OK);
    assert_memory_equal(h1, h2, 32);

    /* Annex: must start with 0x50 and be non-empty; it sets spend_type bit 0
     * and appends sha256(compact_size(annex) || annex) after the input data. */
    const unsigned char annex[] = {0x50, 0x01, 0x02};
    const unsigned char bad_annex[] = {0x51, 0x01};
    assert_int_equal(km_tx_taproot_sighash(&tx, ss.spent, ss.n, 0, 0, bad_annex, 2, h1), KM_ERR_ARG);
    assert_int_equal(km_tx_taproot_sighash(&tx, ss.spent, ss.n, 0, 0, annex, 0, h1), KM_ERR_ARG);
    assert_int_equal(km_tx_taproot_sighash(&tx, ss.spent, ss.n, 0, 0, NULL, 3, h1), KM_ERR_ARG);
    km_buf plain, with;
    km_buf_init(&plain);
    km_buf_init(&with);
    assert_int_equal(km_tx_taproot_sigmsg(&tx, ss.spent, ss.n, 0, 0, NULL, 0, &plain), KM_OK);
    assert_int_equal(km_tx_taproot_sigmsg(&tx, ss.spent, ss.n, 0, 0, annex, sizeof annex, &with), KM_OK);
    /* DEFAULT: epoch, type, version, locktime, 5 hashes, spend_type, index. */
    size_t st = 1 + 1 + 4 + 4 + 5 * 32;
    assert_int_equal(plain.len, st + 1 + 4);
    assert_int_equal(with.len, plain.len + 32);
    assert_memory_equal(with.data, plain.data, st);
    assert_int_equal(plain.data[st], 0);
    assert_int_equal(with.data[st], 1);
    assert_memory_equal(with.data + st + 1, plain.data + st + 1, 4);
    unsigned char sha_annex[32], pre[4] = {3, 0x50, 0x01, 0x02};
    km_sha256(sha_annex, pre, sizeof pre);
    assert_memory_equal(with.data + st + 5, sha_annex, 32);
    km_buf_free(&plain);
    km_buf_free(&with);

    /* A failing call appends nothing. */
    km_buf_init(&b);
    assert_int_equal(km_buf_put_u8(&b, 0x77), KM_OK);
    assert_int_equal(km_tx_taproot_sigmsg(&tx, ss.spent, ss.n, 0, 0x04, NULL, 0, &b), KM_ERR_ARG);
    assert_int_equal(b.len, 1);
    km_buf_free(&b);

    free_spent(&ss);
    km_tx_free(&tx);
    free(raw);
}

static void test_build_and_witness(void **state) {
    (void)state;
    km_tx tx;
    unsigned char txid[32], prev[32], sk[32] = {0}, q[32], spk[34], sig[65];
    km_sha256(prev, "prev", 4);
    sk[31] = 3;
    assert_int_equal(
        km_taproot_output_key(g_ctx, q, NULL,
                              (const unsigned char[32]){0xf9, 0x30, 0x8a, 0x01, 0x92, 0x58, 0xc3, 0x10,
                                                        0x49, 0x34, 0x4f, 0x85, 0xf8, 0x9d, 0x52, 0x29,
                                                        0xb5, 0x31, 0xc8, 0x45, 0x83, 0x6f, 0x99, 0xb0,
                                                        0x86, 0x01, 0xf1, 0x13, 0xbc, 0xe0, 0x36, 0xf9},
                              &(const km_tweak){.mode = KM_TWEAK_BIP86}),
        KM_OK);
    assert_int_equal(km_tx_p2tr_script(g_ctx, spk, q), KM_OK);
    assert_int_equal(spk[0], 0x51);
    assert_int_equal(spk[1], 0x20);
    unsigned char badq[32];
    memset(badq, 0xff, 32);
    memset(spk, 0xaa, 34);
    assert_int_equal(km_tx_p2tr_script(g_ctx, spk, badq), KM_ERR_INVALID_POINT);
    for (int i = 0; i < 34; i++)
        assert_int_equal(spk[i], 0);
    assert_int_equal(km_tx_p2tr_script(g_ctx, spk, q), KM_OK);

    km_tx_init(&tx, 2, 0);
    assert_int_equal(km_tx_add_input(&tx, prev, 1, 0xfffffffd), KM_OK);
    assert_int_equal(km_tx_add_output(&tx, 90000, spk, 34), KM_OK);
    assert_int_equal(km_tx_add_output(&tx, KM_TX_MAX_MONEY + 1, spk, 34), KM_ERR_RANGE);
    assert_int_equal(tx.n_out, 1);
    assert_int_equal(km_tx_txid(&tx, txid), KM_OK);

    /* Sign the key-path spend, put the signature in, round-trip. */
    km_tx_spent spent = {100000, spk, 34};
    unsigned char tsk[32], sighash[32];
    assert_int_equal(km_single_taproot_tweak_seckey(g_ctx, tsk, sk, NULL), KM_OK);
    assert_int_equal(km_tx_taproot_sighash(&tx, &spent, 1, 0, KM_SIGHASH_DEFAULT, NULL, 0, sighash), KM_OK);
    assert_int_equal(km_single_schnorr_sign(g_ctx, sig, sighash, 32, tsk), KM_OK);
    assert_int_equal(km_single_schnorr_verify(g_ctx, sig, sighash, 32, q), KM_OK);
    km_wipe(tsk, 32);

    /* Bad witness signatures: lengths, 65 bytes with type 0 or undefined. */
    assert_int_equal(km_tx_set_witness_sig(&tx, 0, sig, 63), KM_ERR_ARG);
    assert_int_equal(km_tx_set_witness_sig(&tx, 0, sig, 66), KM_ERR_ARG);
    sig[64] = 0x00;
    assert_int_equal(km_tx_set_witness_sig(&tx, 0, sig, 65), KM_ERR_ARG);
    sig[64] = 0x84;
    assert_int_equal(km_tx_set_witness_sig(&tx, 0, sig, 65), KM_ERR_ARG);
    assert_int_equal(km_tx_set_witness_sig(&tx, 1, sig, 64), KM_ERR_RANGE);
    assert_int_equal(tx.in[0].n_witness, 0);
    sig[64] = 0x81;
    assert_int_equal(km_tx_set_witness_sig(&tx, 0, sig, 65), KM_OK);
    assert_int_equal(km_tx_set_witness_sig(&tx, 0, sig, 64), KM_OK); /* replaces */
    assert_int_equal(tx.in[0].n_witness, 1);
    assert_int_equal(tx.in[0].witness[0].len, 64);

    km_buf b;
    km_buf_init(&b);
    assert_int_equal(km_tx_serialize(&tx, 1, &b), KM_OK);
    /* version, marker, flag, 1 input (41), 1 output (8+1+34), witness (1+1+64), locktime */
    assert_int_equal(b.len, 4 + 2 + 1 + 41 + 1 + 43 + 66 + 4);
    km_tx back;
    assert_int_equal(km_tx_parse(&back, b.data, b.len), KM_OK);
    unsigned char txid2[32];
    assert_int_equal(km_tx_txid(&back, txid2), KM_OK);
    assert_memory_equal(txid, txid2, 32); /* the witness is not in the txid */
    assert_memory_equal(back.in[0].witness[0].data, sig, 64);
    size_t w;
    assert_int_equal(km_tx_weight(&back, &w), KM_OK);
    assert_int_equal(w, (b.len - 2 - 66) * 4 + 2 + 66);
    km_buf_free(&b);
    km_tx_free(&back);
    km_tx_free(&tx);
    km_tx_free(&tx); /* idempotent */
}

static int setup(void **state) {
    (void)state;
    json_error_t jerr;
    if (km_ctx_create(&g_ctx) != KM_OK) return -1;
    g_root = json_load_file(VECTORS, 0, &jerr);
    if (!g_root) {
        printf("cannot load %s: %s\n", VECTORS, jerr.text);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    json_decref(g_root);
    km_ctx_destroy(g_ctx);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_path_vectors),  cmocka_unit_test(test_script_pubkey_vectors),
        cmocka_unit_test(test_malformed),         cmocka_unit_test(test_sigmsg_args),
        cmocka_unit_test(test_build_and_witness),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
