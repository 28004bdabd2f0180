/* demo_adaptors.c — adaptor signatures of the three kinds in one session:
 * Single (one point), And (the sum of three points: every secret needed),
 * Or (three points, one pre-signature each with its own nonces: any one
 * secret completes its own). Every pre-signature is verified, converted to
 * the original product's 65-byte form, completed with its secret and the
 * secret extracted back from the completed signature.
 * Writes OUT/adaptors.json. */
#include <stdio.h>
#include <string.h>

#include "cli/demos/demos.h"
#include "keymeld/adaptor.h"
#include "keymeld/hash.h"
#include "keymeld/secret.h"
#include "keymeld/single.h"

#define AD_N   3
#define AD_PTS 3

typedef struct ad_case {
    const char *name;
    km_adaptor_type type;
    size_t n_secrets;
    unsigned char t[AD_PTS][32];
    unsigned char T[AD_PTS][33];
} ad_case;

/* Check one unit: pre-signature valid and not a signature; legacy form;
 * completed with `secret` it verifies; the secret comes back out. */
static km_err check_unit(km_demo_env *env, const unsigned char presig[64], const unsigned char T[33],
                         const unsigned char secret[32], const unsigned char key[32],
                         const unsigned char msg[32], unsigned char legacy[65], unsigned char sig[64]) {
    unsigned char back[32];
    if (km_demo_schnorr_ok(env->ctx, presig, msg, key)) return KM_ERR_VERIFY; /* must not already be one */
    km_err err = km_adaptor_presig_verify(env->ctx, presig, T, key, msg);
    if (!err) err = km_adaptor_legacy_from_presig(env->ctx, legacy, presig, T, key, msg);
    if (!err) err = km_adaptor_legacy_verify(env->ctx, legacy, T, key, msg);
    if (!err) err = km_adaptor_adapt(env->ctx, sig, presig, secret, key, msg);
    if (!err && !km_demo_schnorr_ok(env->ctx, sig, msg, key)) err = KM_ERR_VERIFY;
    if (!err) err = km_adaptor_extract(env->ctx, back, presig, sig, T);
    if (!err && !km_ct_equal(back, secret, 32)) err = KM_ERR_VERIFY;
    km_wipe(back, sizeof back);
    return err;
}

int km_demo_adaptors(km_demo_env *env) {
    km_demo_party parties[AD_N];
    km_sdk_session *s = NULL;
    km_sdk_keygen_result r;
    km_sdk_sign_result sr;
    memset(&sr, 0, sizeof sr);
    ad_case cases[3] = {{"single", KM_ADAPTOR_SINGLE, 1, {{0}}, {{0}}},
                        {"and", KM_ADAPTOR_AND, AD_PTS, {{0}}, {{0}}},
                        {"or", KM_ADAPTOR_OR, AD_PTS, {{0}}, {{0}}}};
    km_sign_item items[3];
    memset(items, 0, sizeof items);
    json_t *doc = json_array();
    km_tweak tw;
    km_tweak_bip86(&tw);
    int rc = km_demo_keygen(env, AD_N, &tw, NULL, 0, NULL, parties, &s, &r);
    if (rc) goto out;

    km_err err = KM_OK;
    for (size_t c = 0; !err && c < 3; c++) {
        char label[64];
        snprintf(label, sizeof label, "keymeld demo adaptors: %s", cases[c].name);
        km_sha256(items[c].msg, label, strlen(label));
        items[c].adaptor = cases[c].type;
        items[c].n_points = (uint16_t)cases[c].n_secrets;
        for (size_t k = 0; !err && k < cases[c].n_secrets; k++) {
            err = km_demo_adaptor_secret(env->ctx, cases[c].t[k], cases[c].T[k]);
            if (!err) km_demo_note(env, "adaptor_secret", cases[c].t[k], 32);
            memcpy(items[c].points[k], cases[c].T[k], 33);
        }
        if (!err) err = km_demo_item_id(&items[c].id);
    }
    if (err) {
        rc = km_demo_fail(env, "adaptor secrets", err);
        goto out;
    }
    km_demo_step(env, "pre-sign Single, And (3 points) and Or (3 points)");
    if ((rc = km_demo_sign(env, env->sdk, s, items, 3, NULL, parties, AD_N, &sr))) goto out;
    km_demo_step_done(env);

    km_demo_step(env, "verify, convert, adapt and extract every unit");
    for (size_t c = 0; c < 3 && !rc; c++) {
        const km_sdk_item_result *ir = &sr.items[c];
        ad_case *k = &cases[c];
        if (ir->adaptor != k->type || memcmp(ir->key_xonly, r.output_xonly, 32) != 0) {
            rc = km_demo_fail(env, "adaptor result: type or key", KM_ERR_VERIFY);
            break;
        }
        /* And: one pre-signature for T1+T2+T3, completed by t1+t2+t3. */
        unsigned char sumT[33], sumt[32];
        const unsigned char *pts[AD_PTS], *secs[AD_PTS];
        for (size_t i = 0; i < k->n_secrets; i++) {
            pts[i] = k->T[i];
            secs[i] = k->t[i];
        }
        err = km_adaptor_point_sum(env->ctx, sumT, pts, k->n_secrets);
        if (!err) err = km_adaptor_secret_sum(env->ctx, sumt, secs, k->n_secrets);
        json_t *units = json_array();
        for (uint16_t u = 0; !err && u < ir->n_units; u++) {
            const unsigned char *T = k->type == KM_ADAPTOR_OR ? k->T[u] : sumT;
            const unsigned char *sec = k->type == KM_ADAPTOR_OR ? k->t[u] : sumt;
            unsigned char legacy[65], sig[64];
            if (!ir->units[u].has_T || memcmp(ir->units[u].T, T, 33) != 0) {
                err = KM_ERR_VERIFY;
                break;
            }
            err = check_unit(env, ir->units[u].sig, T, sec, r.output_xonly, items[c].msg, legacy, sig);
            /* The attacker's path: another point's secret must not complete it. */
            if (!err && k->type == KM_ADAPTOR_OR) {
                unsigned char bad[64];
                if (km_adaptor_adapt(env->ctx, bad, ir->units[u].sig, k->t[(u + 1) % AD_PTS], r.output_xonly,
                                     items[c].msg) != KM_ERR_VERIFY)
                    err = KM_ERR_VERIFY;
            }
            if (!err)
                json_array_append_new(
                    units, json_pack("{s:o, s:o, s:o, s:o, s:o}", "adaptor_point_hex", km_demo_hexj(T, 33),
                                     "presignature_hex", km_demo_hexj(ir->units[u].sig, 64),
                                     "presignature_legacy_hex", km_demo_hexj(legacy, 65), "secret_hex",
                                     km_demo_hexj(sec, 32), "signature_hex", km_demo_hexj(sig, 64)));
        }
        if (!err && ir->n_units != (k->type == KM_ADAPTOR_OR ? AD_PTS : 1)) err = KM_ERR_VERIFY;
        json_t *pj = json_array(), *sj = json_array();
        for (size_t i = 0; i < k->n_secrets; i++) {
            json_array_append_new(pj, km_demo_hexj(k->T[i], 33));
            json_array_append_new(sj, km_demo_hexj(k->t[i], 32));
        }
        km_wipe(sumt, sizeof sumt);
        json_array_append_new(doc, json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}", "case", k->name,
                                             "output_pubkey_hex", km_demo_hexj(r.output_xonly, 32),
                                             "message_hex", km_demo_hexj(items[c].msg, 32),
                                             "adaptor_points_hex", pj, "secrets_hex", sj, "units", units));
        if (err) {
            char what[80];
            snprintf(what, sizeof what, "%s adaptor checks", k->name);
            rc = km_demo_fail(env, what, err);
            break;
        }
        km_tool_say(env->t,
                    "  %-6s %u pre-signature%s: verified, legacy 65-byte form verified, adapted (BIP-340 OK),"
                    " secret extracted\n",
                    k->name, ir->n_units, ir->n_units == 1 ? "" : "s");
    }
    if (rc) goto out;
    km_demo_step_done(env);
    json_t *file = json_pack("{s:O}", "cases", doc);
    rc = file ? km_demo_write(env, "adaptors.json", file) : km_demo_fail(env, "adaptors.json", KM_ERR_NOMEM);
    json_decref(file);
    if (!rc && env->t->out) json_object_set(env->t->out, "cases", doc);
out:
    json_decref(doc);
    km_wipe(cases, sizeof cases);
    km_wipe(parties, sizeof parties);
    km_sdk_sign_result_clear(&sr);
    km_sdk_keygen_result_clear(&r);
    km_sdk_session_free(s);
    return rc;
}
