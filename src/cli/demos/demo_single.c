/* demo_single.c — a single-signer key held by an enclave: import it with
 * "approval required", sign BIP-340 and ECDSA with the auth key's approval,
 * see a request without approval refused, delete the key and see it gone. */
#include <stdio.h>
#include <string.h>

#include "cli/demos/demos.h"
#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/proto_key.h"
#include "keymeld/secret.h"
#include "keymeld/single.h"

int km_demo_single_signer(km_demo_env *env) {
    km_tool_key k;
    km_uuid key_id;
    unsigned char xonly[32], sig[64];
    uint32_t enc = 0;
    int rc = 0;
    km_err err = km_tool_key_generate(env->ctx, &k);
    if (!err) err = km_single_xonly_pubkey(env->ctx, xonly, k.sec);
    if (!err) err = km_demo_item_id(&key_id);
    if (err) {
        km_wipe(&k, sizeof k);
        return km_demo_fail(env, "making the key", err);
    }
    km_demo_note(env, "secret_key", k.sec, 32);
    km_demo_note(env, "auth_key", k.auth_sec, 32);
    km_demo_step(env, "import the key (approval required)");
    err = km_sdk_key_import(env->sdk, &key_id, &k.user_id, k.sec, k.auth_sec, 1, &enc);
    if (err) {
        rc = km_demo_fail(env, "import", err);
        goto out;
    }
    km_demo_step_done(env);
    char pub[67];
    km_tool_hex(pub, k.pub33, 33);
    km_tool_say(env->t, "  key %s now lives in enclave %u\n", pub, enc);

    static const char text[] = "keymeld demo single-signer: BIP-340 over these bytes";
    km_demo_note(env, "message", text, sizeof text - 1);
    km_demo_step(env, "BIP-340 signature, approved by the auth key");
    err = km_sdk_key_sign(env->sdk, &key_id, &k.user_id, k.pub33, k.auth_sec, KM_KEY_ALGO_SCHNORR,
                          (const unsigned char *)text, sizeof text - 1, 1, env->t->timeout_s, sig);
    if (!err)
        err = km_single_schnorr_verify(env->ctx, sig, (const unsigned char *)text, sizeof text - 1, xonly);
    if (err) {
        rc = km_demo_fail(env, "BIP-340 signing", err);
        goto out;
    }
    km_demo_step_done(env);
    char h[129];
    km_tool_hex(h, sig, 64);
    km_tool_say(env->t, "  BIP-340 %s (verified)\n", h);
    if (env->t->out) json_object_set_new(env->t->out, "schnorr_signature_hex", json_string(h));

    unsigned char digest[32];
    km_sha256(digest, text, sizeof text - 1);
    km_demo_note(env, "message", digest, 32);
    km_demo_step(env, "ECDSA signature over a digest, approved");
    err = km_sdk_key_sign(env->sdk, &key_id, &k.user_id, k.pub33, k.auth_sec, KM_KEY_ALGO_ECDSA, digest, 32,
                          1, env->t->timeout_s, sig);
    if (!err) err = km_single_ecdsa_verify(env->ctx, sig, digest, k.pub33);
    if (err) {
        rc = km_demo_fail(env, "ECDSA signing", err);
        goto out;
    }
    km_demo_step_done(env);
    km_tool_hex(h, sig, 64);
    km_tool_say(env->t, "  ECDSA   %s (low-S, verified)\n", h);
    if (env->t->out) json_object_set_new(env->t->out, "ecdsa_signature_hex", json_string(h));

    km_demo_step(env, "a request without approval is refused");
    err = km_sdk_key_sign(env->sdk, &key_id, &k.user_id, k.pub33, k.auth_sec, KM_KEY_ALGO_SCHNORR, digest, 32,
                          0, env->t->timeout_s, sig);
    if (err == KM_OK) {
        rc = km_demo_fail(env, "unapproved request was signed", KM_ERR_STATE);
        goto out;
    }
    km_demo_step_done(env);
    km_tool_say(env->t, "  refused: %s\n", km_err_name(err));

    km_demo_step(env, "delete the key; signing with it fails");
    err = km_sdk_key_delete(env->sdk, &key_id, &k.user_id, k.auth_sec);
    if (err) {
        rc = km_demo_fail(env, "delete", err);
        goto out;
    }
    err = km_sdk_key_sign(env->sdk, &key_id, &k.user_id, k.pub33, k.auth_sec, KM_KEY_ALGO_SCHNORR, digest, 32,
                          1, env->t->timeout_s, sig);
    if (err == KM_OK) {
        rc = km_demo_fail(env, "a deleted key still signed", KM_ERR_STATE);
        goto out;
    }
    km_demo_step_done(env);
    km_tool_say(env->t, "  after delete: %s\n", km_err_name(err));
out:
    km_wipe(&k, sizeof k);
    return rc;
}
