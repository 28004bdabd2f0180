/* demo_batch.c — one signing session of 100 items mixing every kind of
 * item: the keygen's default tweak and per-item tweaks (none, xonly, plain,
 * bip341), the full signer set and two subsets, plain signatures and
 * Single/Or adaptor pre-signatures. The key of every item is recomputed
 * here from the participants' public keys and every unit checked with
 * libsecp256k1 / the adaptor module. */
#include <stdio.h>
#include <string.h>

#include "cli/demos/demos.h"
#include "keymeld/adaptor.h"
#include "keymeld/hash.h"
#include "keymeld/secret.h"

#define B_N     4
#define B_ITEMS 100

int km_demo_batch(km_demo_env *env) {
    km_demo_party parties[B_N];
    km_sdk_session *s = NULL;
    km_sdk_keygen_result r;
    km_sdk_sign_result sr;
    memset(&sr, 0, sizeof sr);
    static km_sign_item items[B_ITEMS];
    static unsigned char secrets[B_ITEMS][2][32];
    memset(items, 0, sizeof items);
    uint16_t m0[] = {0, 1}, m1[] = {1, 2, 3};
    km_subset_def subsets[2];
    memset(subsets, 0, sizeof subsets);
    subsets[0].n = 2;
    subsets[0].members = m0;
    subsets[1].n = 3;
    subsets[1].members = m1;
    km_err err = km_demo_item_id(&subsets[0].id);
    if (!err) err = km_demo_item_id(&subsets[1].id);
    if (err) return km_demo_fail(env, "subset ids", err);
    km_tweak tw;
    km_tweak_bip86(&tw);
    int rc = km_demo_keygen(env, B_N, &tw, subsets, 2, NULL, parties, &s, &r);
    if (rc) goto out;
    /* The subsets' keys too, recomputed here. */
    if (r.n_subsets != 2) {
        rc = km_demo_fail(env, "keygen result: subsets", KM_ERR_VERIFY);
        goto out;
    }
    for (size_t k = 0; k < 2; k++) {
        km_sign_item probe;
        memset(&probe, 0, sizeof probe);
        probe.has_subset = 1;
        probe.subset_id = r.subset_ids[k];
        unsigned char want[32];
        err = km_demo_expected_key(env->ctx, parties, B_N, &tw, subsets, 2, &probe, want);
        if (!err && memcmp(want, r.subset_output[k], 32) != 0) err = KM_ERR_VERIFY;
        if (err) {
            rc = km_demo_fail(env, "keygen result: a subset key", err);
            goto out;
        }
    }

    size_t n_kind[4] = {0}; /* plain, single, or, subset */
    for (size_t i = 0; i < B_ITEMS && !err; i++) {
        km_sign_item *it = &items[i];
        char label[64];
        snprintf(label, sizeof label, "keymeld demo batch item %zu", i);
        km_sha256(it->msg, label, strlen(label));
        if (i % 3) {
            it->has_subset = 1;
            it->subset_id = subsets[i % 3 - 1].id;
            n_kind[3]++;
        }
        unsigned char data[32];
        snprintf(label, sizeof label, "keymeld demo batch tweak %zu", i);
        km_sha256(data, label, strlen(label));
        switch (i % 5) {
        case 1:
            it->own_tweak = 1;
            km_tweak_none(&it->tweak);
            break;
        case 2:
            it->own_tweak = 1;
            km_tweak_xonly(&it->tweak, data);
            break;
        case 3:
            it->own_tweak = 1;
            km_tweak_plain(&it->tweak, data);
            break;
        case 4:
            it->own_tweak = 1;
            km_tweak_bip341(&it->tweak, data);
            break;
        default:
            break; /* the keygen's BIP-86 */
        }
        if (i % 7 == 0) {
            it->adaptor = KM_ADAPTOR_SINGLE;
            it->n_points = 1;
            n_kind[1]++;
        } else if (i % 13 == 5) {
            it->adaptor = KM_ADAPTOR_OR;
            it->n_points = 2;
            n_kind[2]++;
        } else {
            n_kind[0]++;
        }
        for (uint16_t k = 0; !err && k < it->n_points; k++)
            err = km_demo_adaptor_secret(env->ctx, secrets[i][k], it->points[k]);
        if (!err) err = km_demo_item_id(&it->id);
    }
    if (err) {
        rc = km_demo_fail(env, "building the items", err);
        goto out;
    }
    km_tool_say(env->t,
                "  %d items: %zu plain, %zu Single adaptor, %zu Or adaptor; %zu on a subset; tweaks: "
                "default bip86, none, xonly, plain, bip341\n",
                B_ITEMS, n_kind[0], n_kind[1], n_kind[2], n_kind[3]);
    km_demo_step(env, "sign the batch (one session)");
    km_spinner *sp = km_spinner_start(env->t, "signing 100 items");
    rc = km_demo_sign(env, env->sdk, s, items, B_ITEMS, NULL, parties, B_N, &sr);
    km_spinner_stop(sp);
    if (rc) goto out;
    km_demo_step_done(env);

    km_demo_step(env, "recompute every item's key and check every unit");
    size_t units = 0;
    for (size_t i = 0; i < B_ITEMS && !err; i++) {
        const km_sign_item *it = &items[i];
        const km_sdk_item_result *ir = &sr.items[i];
        unsigned char want[32];
        err = km_demo_expected_key(env->ctx, parties, B_N, &tw, subsets, 2, it, want);
        if (!err && memcmp(want, ir->key_xonly, 32) != 0) err = KM_ERR_VERIFY;
        for (uint16_t u = 0; !err && u < ir->n_units; u++) {
            units++;
            if (it->adaptor == KM_ADAPTOR_NONE) {
                if (!km_demo_schnorr_ok(env->ctx, ir->units[u].sig, it->msg, want)) err = KM_ERR_VERIFY;
                continue;
            }
            unsigned char sig[64];
            err = km_adaptor_presig_verify(env->ctx, ir->units[u].sig, it->points[u], want, it->msg);
            if (!err) err = km_adaptor_adapt(env->ctx, sig, ir->units[u].sig, secrets[i][u], want, it->msg);
            if (!err && !km_demo_schnorr_ok(env->ctx, sig, it->msg, want)) err = KM_ERR_VERIFY;
        }
        if (err) {
            char what[64];
            snprintf(what, sizeof what, "check of item %zu", i);
            rc = km_demo_fail(env, what, err);
            goto out;
        }
    }
    km_demo_step_done(env);
    km_tool_say(env->t, "  %zu units verified against independently recomputed keys\n", units);
    if (env->t->out) json_object_set_new(env->t->out, "units_verified", json_integer((json_int_t)units));
out:
    km_wipe(secrets, sizeof secrets);
    km_wipe(parties, sizeof parties);
    km_sdk_sign_result_clear(&sr);
    km_sdk_keygen_result_clear(&r);
    km_sdk_session_free(s);
    return rc;
}
