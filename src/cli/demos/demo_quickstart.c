/* demo_quickstart.c — the shortest complete flow: three participants make a
 * BIP-86 key, one message is signed and the signature checked. */
#include <stdio.h>
#include <string.h>

#include "cli/demos/demos.h"
#include "keymeld/hash.h"
#include "keymeld/secret.h"

#define QS_N 3

const km_demo km_demos[] = {
    {"quickstart", "3 participants, BIP-86 keygen, one signature verified", km_demo_quickstart},
    {"taproot-spend", "sign a taproot key-path spend; write taproot-spend.json", km_demo_taproot_spend},
    {"adaptors", "Single, And and Or adaptor signatures: verify, adapt, extract", km_demo_adaptors},
    {"batch", "100 items mixing tweaks, subsets and adaptors in one session", km_demo_batch},
    {"dlc", "2-party DLC: funding signature and Or-adaptor contract executions", km_demo_dlc},
    {"single-signer", "import a key; BIP-340 and ECDSA with approval; delete", km_demo_single_signer},
    {"stress", "N concurrent signing sessions (--count, --threads)", km_demo_stress},
    {NULL, NULL, NULL}};

int km_demo_quickstart(km_demo_env *env) {
    km_demo_party parties[QS_N];
    km_sdk_session *s = NULL;
    km_sdk_keygen_result r;
    km_sdk_sign_result sr;
    memset(&sr, 0, sizeof sr);
    km_tweak tw;
    km_tweak_bip86(&tw);
    int rc = km_demo_keygen(env, QS_N, &tw, NULL, 0, NULL, parties, &s, &r);
    if (rc) goto out;
    char agg[65], outk[65];
    km_tool_hex(agg, r.agg_xonly, 32);
    km_tool_hex(outk, r.output_xonly, 32);
    km_tool_say(env->t, "  aggregate key %s\n  output key    %s (BIP-86)\n", agg, outk);

    static const char text[] = "KeyMeld quickstart: three signers, one key";
    km_sign_item it;
    memset(&it, 0, sizeof it);
    km_sha256(it.msg, text, sizeof text - 1);
    km_demo_note(env, "message", text, sizeof text - 1);
    km_err err = km_demo_item_id(&it.id);
    if (err) {
        rc = km_demo_fail(env, "item id", err);
        goto out;
    }
    km_demo_step(env, "sign SHA-256(message) with all three");
    if ((rc = km_demo_sign(env, env->sdk, s, &it, 1, NULL, parties, QS_N, &sr))) goto out;
    km_demo_step_done(env);
    /* Independent check: libsecp256k1 against the key we recomputed. */
    if (memcmp(sr.items[0].key_xonly, r.output_xonly, 32) != 0 ||
        !km_demo_schnorr_ok(env->ctx, sr.items[0].units[0].sig, it.msg, r.output_xonly)) {
        rc = km_demo_fail(env, "signature check (libsecp256k1)", KM_ERR_VERIFY);
        goto out;
    }
    char sig[129];
    km_tool_hex(sig, sr.items[0].units[0].sig, 64);
    km_tool_say(env->t,
                "  message   \"%s\"\n  signature %s\n  verified with libsecp256k1 under the output key: OK\n",
                text, sig);
    if (env->t->out) {
        json_object_set_new(env->t->out, "output_pubkey_hex", km_demo_hexj(r.output_xonly, 32));
        json_object_set_new(env->t->out, "signature_hex", km_demo_hexj(sr.items[0].units[0].sig, 64));
    }
out:
    km_wipe(parties, sizeof parties);
    km_sdk_sign_result_clear(&sr);
    km_sdk_keygen_result_clear(&r);
    km_sdk_session_free(s);
    return rc;
}
