/* demo_dlc.c — a two-party discreet log contract: the parties' joint key
 * signs the funding transaction, and for each oracle outcome a contract
 * execution transaction (CET) is pre-signed with an Or adaptor over the
 * attestation points of two oracles (either oracle's attestation unlocks
 * it). The CETs are signed by the subset {Alice, Bob} (the full set given
 * as a subset, the shape a larger contract with arbiters would use). Then
 * one oracle attests one outcome: exactly that CET completes, no other. */
#include <stdio.h>
#include <string.h>

#include "cli/demos/demos.h"
#include "keymeld/adaptor.h"
#include "keymeld/hash.h"
#include "keymeld/secret.h"

#define D_OUTCOMES 3
#define D_ORACLES  2

int km_demo_dlc(km_demo_env *env) {
    km_demo_party parties[2];
    km_sdk_session *s = NULL;
    km_sdk_keygen_result r;
    km_sdk_sign_result sr;
    memset(&sr, 0, sizeof sr);
    static const char *outcomes[D_OUTCOMES] = {"BTC/USD < 50k", "50k <= BTC/USD < 100k", "BTC/USD >= 100k"};
    unsigned char att[D_ORACLES][D_OUTCOMES][32], att_pt[D_ORACLES][D_OUTCOMES][33];
    km_sign_item items[1 + D_OUTCOMES];
    memset(items, 0, sizeof items);
    uint16_t both[] = {0, 1};
    km_subset_def sub = {.n = 2, .members = both};
    km_err err = km_demo_item_id(&sub.id);
    if (err) return km_demo_fail(env, "subset id", err);
    km_tweak tw;
    km_tweak_bip86(&tw);
    int rc = km_demo_keygen(env, 2, &tw, &sub, 1, NULL, parties, &s, &r);
    if (rc) goto out;

    /* Oracle attestation points (the oracles' would-be signatures' s*G);
     * the secrets stay with the "oracles" until one attests. */
    for (int o = 0; o < D_ORACLES && !err; o++)
        for (int k = 0; k < D_OUTCOMES && !err; k++)
            err = km_demo_adaptor_secret(env->ctx, att[o][k], att_pt[o][k]);
    static const char fund[] = "keymeld demo dlc: funding transaction sighash";
    km_sha256(items[0].msg, fund, sizeof fund - 1);
    if (!err) err = km_demo_item_id(&items[0].id);
    for (int k = 0; k < D_OUTCOMES && !err; k++) {
        km_sign_item *it = &items[1 + k];
        char label[96];
        snprintf(label, sizeof label, "keymeld demo dlc: CET for outcome '%s'", outcomes[k]);
        km_sha256(it->msg, label, strlen(label));
        it->has_subset = 1;
        it->subset_id = sub.id;
        it->adaptor = KM_ADAPTOR_OR;
        it->n_points = D_ORACLES;
        for (int o = 0; o < D_ORACLES; o++)
            memcpy(it->points[o], att_pt[o][k], 33);
        err = km_demo_item_id(&it->id);
    }
    if (err) {
        rc = km_demo_fail(env, "building the contract", err);
        goto out;
    }
    km_demo_step(env, "sign funding + pre-sign 3 CETs (Or over 2 oracles)");
    if ((rc = km_demo_sign(env, env->sdk, s, items, 1 + D_OUTCOMES, NULL, parties, 2, &sr))) goto out;
    km_demo_step_done(env);

    km_demo_step(env, "check funding signature and every CET pre-signature");
    if (!km_demo_schnorr_ok(env->ctx, sr.items[0].units[0].sig, items[0].msg, r.output_xonly)) {
        rc = km_demo_fail(env, "funding signature", KM_ERR_VERIFY);
        goto out;
    }
    unsigned char cet_key[32];
    if ((err = km_demo_expected_key(env->ctx, parties, 2, &tw, &sub, 1, &items[1], cet_key)) != KM_OK) {
        rc = km_demo_fail(env, "CET key", err);
        goto out;
    }
    for (int k = 0; k < D_OUTCOMES && !err; k++) {
        const km_sdk_item_result *ir = &sr.items[1 + k];
        if (ir->n_units != D_ORACLES || memcmp(ir->key_xonly, cet_key, 32) != 0) err = KM_ERR_VERIFY;
        for (int o = 0; o < D_ORACLES && !err; o++)
            err =
                km_adaptor_presig_verify(env->ctx, ir->units[o].sig, att_pt[o][k], cet_key, items[1 + k].msg);
    }
    if (err) {
        rc = km_demo_fail(env, "CET pre-signatures", err);
        goto out;
    }
    km_demo_step_done(env);

    /* Oracle 1 attests outcome 1: its secret completes CET 1 (unit 1) and
     * nothing else; the counterparty learns the attestation from the chain. */
    km_demo_step(env, "oracle 1 attests outcome 1: complete that CET only");
    const int won = 1, oracle = 1;
    unsigned char sig[64], back[32], junk[64];
    err = km_adaptor_adapt(env->ctx, sig, sr.items[1 + won].units[oracle].sig, att[oracle][won], cet_key,
                           items[1 + won].msg);
    if (!err && !km_demo_schnorr_ok(env->ctx, sig, items[1 + won].msg, cet_key)) err = KM_ERR_VERIFY;
    if (!err)
        err =
            km_adaptor_extract(env->ctx, back, sr.items[1 + won].units[oracle].sig, sig, att_pt[oracle][won]);
    if (!err && !km_ct_equal(back, att[oracle][won], 32)) err = KM_ERR_VERIFY;
    for (int k = 0; k < D_OUTCOMES && !err; k++) {
        if (k == won) continue;
        for (int o = 0; o < D_ORACLES && !err; o++)
            if (km_adaptor_adapt(env->ctx, junk, sr.items[1 + k].units[o].sig, att[oracle][won], cet_key,
                                 items[1 + k].msg) != KM_ERR_VERIFY)
                err = KM_ERR_VERIFY;
    }
    km_wipe(back, sizeof back);
    if (err) {
        rc = km_demo_fail(env, "executing the contract", err);
        goto out;
    }
    km_demo_step_done(env);
    char h[129];
    km_tool_hex(h, r.output_xonly, 32);
    km_tool_say(env->t, "  funding signed by Alice+Bob under their joint key %s\n", h);
    km_tool_hex(h, sig, 64);
    km_tool_say(env->t, "  outcome '%s' attested by oracle %d: CET signature %s\n", outcomes[won], oracle, h);
    km_tool_say(env->t, "  the attestation secret was extracted back; it completes no other CET: OK\n");
    if (env->t->out) {
        json_object_set_new(env->t->out, "outcome", json_string(outcomes[won]));
        json_object_set_new(env->t->out, "cet_signature_hex", json_string(h));
    }
out:
    km_wipe(att, sizeof att);
    km_wipe(parties, sizeof parties);
    km_sdk_sign_result_clear(&sr);
    km_sdk_keygen_result_clear(&r);
    km_sdk_session_free(s);
    return rc;
}
