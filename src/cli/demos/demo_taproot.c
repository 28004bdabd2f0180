/* demo_taproot.c — a taproot key-path spend: an unsigned transaction spends
 * a P2TR output of the aggregate key, its BIP-341 sighash is signed through
 * KeyMeld, the signature goes into the witness, and the serialized
 * transaction is parsed back and verified the way a node would.
 * Writes OUT/taproot-spend.json for external checkers. */
#include <stdio.h>
#include <string.h>

#include "cli/demos/demos.h"
#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/secret.h"
#include "keymeld/single.h"
#include "keymeld/tx.h"

#define TS_N    3
#define TS_PREV 100000u
#define TS_FEE  500u

int km_demo_taproot_spend(km_demo_env *env) {
    km_demo_party parties[TS_N];
    km_sdk_session *s = NULL;
    km_sdk_keygen_result r;
    km_sdk_sign_result sr;
    memset(&sr, 0, sizeof sr);
    km_tx tx, back;
    km_tx_init(&tx, 2, 0);
    km_tx_init(&back, 0, 0);
    km_buf ser;
    km_buf_init(&ser);
    json_t *j = NULL;
    km_tweak tw;
    km_tweak_bip86(&tw);
    int rc = km_demo_keygen(env, TS_N, &tw, NULL, 0, NULL, parties, &s, &r);
    if (rc) goto out;

    km_demo_step(env, "build the unsigned tx and its BIP-341 sighash");
    unsigned char spk[34], dest_spk[34], dest_sec[32], dest_x[32], prev_txid[32], sighash[32];
    static const char prev_label[] = "keymeld demo taproot-spend: made-up funding transaction";
    km_sha256(prev_txid, prev_label, sizeof prev_label - 1);
    km_err err = km_tx_p2tr_script(env->ctx, spk, r.output_xonly);
    /* The destination is a fresh key of ours: only its validity matters. */
    do
        if (!err) err = km_random_bytes(dest_sec, 32);
    while (!err && km_single_seckey_check(env->ctx, dest_sec) != KM_OK);
    if (!err) err = km_single_xonly_pubkey(env->ctx, dest_x, dest_sec);
    if (!err) km_demo_note(env, "secret_key", dest_sec, 32);
    km_wipe(dest_sec, sizeof dest_sec);
    if (!err) err = km_tx_p2tr_script(env->ctx, dest_spk, dest_x);
    if (!err) err = km_tx_add_input(&tx, prev_txid, 0, 0xfffffffdu);
    if (!err) err = km_tx_add_output(&tx, TS_PREV - TS_FEE, dest_spk, sizeof dest_spk);
    km_tx_spent spent = {.amount = TS_PREV, .script_pubkey = spk, .script_len = sizeof spk};
    if (!err) err = km_tx_taproot_sighash(&tx, &spent, 1, 0, KM_SIGHASH_DEFAULT, NULL, 0, sighash);
    if (err) {
        rc = km_demo_fail(env, "building the transaction", err);
        goto out;
    }
    km_demo_step_done(env);
    char h[200];
    km_tool_hex(h, spk, 34);
    km_tool_say(env->t, "  prevout %u sat, scriptPubKey %s\n", TS_PREV, h);
    km_tool_hex(h, sighash, 32);
    km_tool_say(env->t, "  sighash (SIGHASH_DEFAULT) %s\n", h);

    km_sign_item it;
    memset(&it, 0, sizeof it);
    memcpy(it.msg, sighash, 32);
    if ((err = km_demo_item_id(&it.id)) != KM_OK) {
        rc = km_demo_fail(env, "item id", err);
        goto out;
    }
    km_demo_step(env, "sign the sighash through KeyMeld");
    if ((rc = km_demo_sign(env, env->sdk, s, &it, 1, NULL, parties, TS_N, &sr))) goto out;
    km_demo_step_done(env);
    const unsigned char *sig = sr.items[0].units[0].sig;

    km_demo_step(env, "finish the tx, re-parse it, verify like a node");
    err = km_tx_set_witness_sig(&tx, 0, sig, 64);
    if (!err) err = km_tx_serialize(&tx, 1, &ser);
    if (!err) err = km_tx_parse(&back, ser.data, ser.len);
    if (!err && (back.n_in != 1 || back.in[0].n_witness != 1 || back.in[0].witness[0].len != 64))
        err = KM_ERR_PARSE;
    unsigned char sh2[32];
    if (!err) err = km_tx_taproot_sighash(&back, &spent, 1, 0, KM_SIGHASH_DEFAULT, NULL, 0, sh2);
    /* The key is the one the prevout script commits to, read back from it. */
    if (!err && (memcmp(sh2, sighash, 32) != 0 ||
                 !km_demo_schnorr_ok(env->ctx, back.in[0].witness[0].data, sh2, spk + 2)))
        err = KM_ERR_VERIFY;
    if (err) {
        rc = km_demo_fail(env, "re-parsed transaction check", err);
        goto out;
    }
    km_demo_step_done(env);
    unsigned char txid[32], txid_be[32];
    if ((err = km_tx_txid(&back, txid)) != KM_OK) {
        rc = km_demo_fail(env, "txid", err);
        goto out;
    }
    for (int k = 0; k < 32; k++)
        txid_be[k] = txid[31 - k];
    km_tool_hex(h, txid_be, 32);
    km_tool_say(env->t, "  txid %s (%zu bytes); witness signature verifies: OK\n", h, ser.len);

    json_t *pk = json_array();
    for (size_t i = 0; i < TS_N; i++)
        json_array_append_new(pk, km_demo_hexj(r.pubkeys[i], 33));
    j = json_pack("{s:o, s:[{s:I, s:o}], s:o, s:o, s:o, s:s}", "tx_hex", km_demo_hexj(ser.data, ser.len),
                  "prevouts", "amount_sat", (json_int_t)TS_PREV, "script_pubkey_hex", km_demo_hexj(spk, 34),
                  "participant_pubkeys_hex", pk, "aggregate_pubkey_hex", km_demo_hexj(r.agg_xonly, 32),
                  "output_pubkey_hex", km_demo_hexj(r.output_xonly, 32), "tweak_mode", "bip86");
    if (!j) {
        rc = km_demo_fail(env, "building taproot-spend.json", KM_ERR_NOMEM);
        goto out;
    }
    if ((rc = km_demo_write(env, "taproot-spend.json", j))) goto out;
    if (env->t->out) {
        json_object_set_new(env->t->out, "txid", json_string(h));
        json_object_set(env->t->out, "taproot_spend", j);
    }
out:
    json_decref(j);
    km_wipe(parties, sizeof parties);
    km_buf_free(&ser);
    km_tx_free(&tx);
    km_tx_free(&back);
    km_sdk_sign_result_clear(&sr);
    km_sdk_keygen_result_clear(&r);
    km_sdk_session_free(s);
    return rc;
}
