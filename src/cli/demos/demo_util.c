/* demo_util.c — shared steps of the demos: timing, keygen, signing, and
 * the independent checks (libsecp256k1 and the core library directly, not
 * the SDK's own checks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "cli/demos/demos.h"
#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/musig.h"
#include "keymeld/secret.h"
#include "keymeld/single.h"

void km_demo_step(km_demo_env *env, const char *name) {
    env->step_name = name;
    env->step_t0 = km_tool_now_ms();
}

void km_demo_step_done(km_demo_env *env) {
    double ms = km_tool_now_ms() - env->step_t0;
    km_tool_say(env->t, "  %-56s %7.0f ms\n", env->step_name, ms);
    if (env->steps)
        json_array_append_new(env->steps, json_pack("{s:s, s:f}", "step", env->step_name, "ms", ms));
}

void km_demo_note(km_demo_env *env, const char *kind, const void *p, size_t n) {
    if (!env->secrets) return;
    json_t *h = km_demo_hexj(p, n);
    if (h) json_array_append_new(env->secrets, json_pack("{s:s, s:o}", "kind", kind, "hex", h));
}

/* The session secret of s, read back through the SDK's export (the only way
 * out of the SDK, made for invitations); for --secrets-out only. */
static void note_session_secret(km_demo_env *env, const km_sdk_session *s) {
    char *text = NULL;
    if (!env->secrets || km_sdk_session_export(s, &text) != KM_OK) return;
    json_t *j = json_loads(text, 0, NULL);
    const char *hex = json_string_value(json_object_get(j, "session_secret"));
    unsigned char sec[32];
    if (hex && km_tool_unhex(sec, 32, hex) == KM_OK) km_demo_note(env, "session_secret", sec, 32);
    km_wipe(sec, sizeof sec);
    json_decref(j);
    km_wipe(text, strlen(text));
    free(text);
}

int km_demo_fail(km_demo_env *env, const char *what, km_err err) {
    const char *detail = env->sdk ? km_sdk_last_error(env->sdk) : "";
    return km_tool_fail_remote(env->t, err, what, detail, 1);
}

km_err km_demo_item_id(km_uuid *id) {
    return km_uuid_v7(id, km_tool_unix_ms());
}

json_t *km_demo_hexj(const unsigned char *p, size_t n) {
    char *h = malloc(2 * n + 1);
    if (!h) return NULL;
    km_tool_hex(h, p, n);
    json_t *j = json_string(h);
    free(h);
    return j;
}

int km_demo_schnorr_ok(km_ctx *ctx, const unsigned char sig[64], const unsigned char msg32[32],
                       const unsigned char xonly[32]) {
    secp256k1_xonly_pubkey q;
    return secp256k1_xonly_pubkey_parse(km_ctx_secp(ctx), &q, xonly) &&
           secp256k1_schnorrsig_verify(km_ctx_secp(ctx), sig, msg32, 32, &q);
}

km_err km_demo_adaptor_secret(km_ctx *ctx, unsigned char t32[32], unsigned char T33[33]) {
    km_err err;
    do {
        if ((err = km_random_bytes(t32, 32)) != KM_OK) return err;
    } while (km_adaptor_point_from_secret(ctx, T33, t32) != KM_OK);
    return KM_OK;
}

km_err km_demo_expected_key(km_ctx *ctx, const km_demo_party *parties, size_t n_parties,
                            const km_tweak *keygen_tweak, const km_subset_def *subsets, size_t n_subsets,
                            const km_sign_item *it, unsigned char out32[32]) {
    unsigned char *keys = malloc(n_parties * 33);
    if (!keys) return KM_ERR_NOMEM;
    size_t n = 0;
    km_err err = KM_OK;
    if (it->has_subset) {
        const km_subset_def *d = NULL;
        for (size_t i = 0; i < n_subsets; i++)
            if (!memcmp(subsets[i].id.b, it->subset_id.b, 16)) d = &subsets[i];
        if (!d) err = KM_ERR_NOT_FOUND;
        for (uint16_t k = 0; !err && k < d->n; k++) {
            if (d->members[k] >= n_parties) {
                err = KM_ERR_RANGE;
                break;
            }
            memcpy(keys + 33 * n++, parties[d->members[k]].pub33, 33);
        }
    } else {
        for (size_t i = 0; i < n_parties; i++)
            memcpy(keys + 33 * n++, parties[i].pub33, 33);
    }
    km_musig_keyagg ka;
    if (!err) err = km_musig_key_agg(ctx, &ka, keys, n, NULL);
    if (!err) err = km_musig_keyagg_tweak(ctx, &ka, it->own_tweak ? &it->tweak : keygen_tweak);
    if (!err) memcpy(out32, ka.output_xonly, 32);
    free(keys);
    return err;
}

int km_demo_keygen(km_demo_env *env, size_t n, const km_tweak *tweak, const km_subset_def *subsets,
                   size_t n_subsets, const int *approval, km_demo_party *parties, km_sdk_session **s,
                   km_sdk_keygen_result *r) {
    *s = NULL;
    memset(r, 0, sizeof *r);
    km_err err = KM_OK;
    for (size_t i = 0; !err && i < n; i++) {
        do
            err = km_random_bytes(parties[i].sec, 32);
        while (!err && km_single_seckey_check(env->ctx, parties[i].sec) != KM_OK);
        do
            if (!err) err = km_random_bytes(parties[i].auth_sec, 32);
        while (!err && km_single_seckey_check(env->ctx, parties[i].auth_sec) != KM_OK);
        if (!err) err = km_single_pubkey(env->ctx, parties[i].pub33, parties[i].sec);
        if (!err) km_demo_note(env, "secret_key", parties[i].sec, 32);
        if (!err) km_demo_note(env, "auth_key", parties[i].auth_sec, 32);
    }
    if (err) return km_demo_fail(env, "making participant keys", err);
    km_sdk_keygen_params p;
    memset(&p, 0, sizeof p);
    p.n_participants = n;
    p.tweak = *tweak;
    p.n_subsets = n_subsets;
    p.subsets = subsets;
    p.timeout_secs = 600;
    km_demo_step(env, "keygen: create (coordinator)");
    if ((err = km_sdk_keygen_create(env->sdk, &p, s)) != KM_OK)
        return km_demo_fail(env, "keygen create", err);
    note_session_secret(env, *s);
    km_demo_step_done(env);
    km_demo_step(env, "keygen: every participant joins through its enclave");
    for (size_t i = 0; i < n; i++) {
        err =
            km_sdk_keygen_join(env->sdk, *s, i, parties[i].sec, parties[i].auth_sec, approval && approval[i]);
        if (err) return km_demo_fail(env, "keygen join", err);
    }
    km_demo_step_done(env);
    km_demo_step(env, "keygen: wait for the result (checked by the SDK)");
    km_spinner *sp = km_spinner_start(env->t, "keygen");
    err = km_sdk_keygen_wait(env->sdk, *s, env->t->timeout_s, r);
    km_spinner_stop(sp);
    if (err) return km_demo_fail(env, "keygen wait", err);
    km_demo_step_done(env);
    /* Independently of the SDK: our keys at our indices, and the aggregate
     * recomputed from them with the core library. */
    if (r->n_participants != n) return km_demo_fail(env, "keygen result: participant count", KM_ERR_VERIFY);
    for (size_t i = 0; i < n; i++)
        if (memcmp(r->pubkeys[i], parties[i].pub33, 33) != 0)
            return km_demo_fail(env, "keygen result: a participant's key", KM_ERR_VERIFY);
    unsigned char *keys = malloc(n * 33);
    if (!keys) return km_demo_fail(env, "keygen check", KM_ERR_NOMEM);
    for (size_t i = 0; i < n; i++)
        memcpy(keys + 33 * i, parties[i].pub33, 33);
    km_musig_keyagg ka;
    err = km_musig_key_agg(env->ctx, &ka, keys, n, NULL);
    free(keys);
    if (!err) err = km_musig_keyagg_tweak(env->ctx, &ka, tweak);
    if (!err && (memcmp(ka.agg_xonly, r->agg_xonly, 32) || memcmp(ka.output_xonly, r->output_xonly, 32)))
        err = KM_ERR_VERIFY;
    if (err) return km_demo_fail(env, "keygen result: aggregate recomputed here", err);
    return 0;
}

int km_demo_sign(km_demo_env *env, km_sdk *sdk, km_sdk_session *s, const km_sign_item *items, size_t n,
                 const int *approval, const km_demo_party *parties, size_t n_parties, km_sdk_sign_result *r) {
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < n; i++)
        km_demo_note(env, "message", items[i].msg, 32);
    km_uuid sid;
    km_err err = km_uuid_v7(&sid, km_tool_unix_ms());
    if (!err) err = km_sdk_sign_create(sdk, s, &sid, items, n, 600);
    if (err) return km_tool_fail_remote(env->t, err, "sign create", km_sdk_last_error(sdk), 0);
    for (size_t i = 0; approval && i < n_parties; i++) {
        if (!approval[i]) continue;
        if ((err = km_sdk_sign_approve(sdk, s, i, parties[i].auth_sec, &sid, items, n)) != KM_OK)
            return km_tool_fail_remote(env->t, err, "sign approve", km_sdk_last_error(sdk), 0);
    }
    if ((err = km_sdk_sign_wait(sdk, s, &sid, items, n, env->t->timeout_s, r)) != KM_OK)
        return km_tool_fail_remote(env->t, err, "sign wait", km_sdk_last_error(sdk), 1);
    if (r->n != n) return km_tool_fail(env->t, KM_ERR_VERIFY, "sign result: item count", NULL);
    for (size_t i = 0; i < n; i++)
        if (memcmp(r->items[i].item_id.b, items[i].id.b, 16) != 0 ||
            r->items[i].n_units != km_sign_item_units(&items[i]))
            return km_tool_fail(env->t, KM_ERR_VERIFY, "sign result: item order or units", NULL);
    return 0;
}

int km_demo_write(km_demo_env *env, const char *name, json_t *v) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", env->out_dir, name);
    km_err err = km_tool_write_json(path, v, 0644);
    if (err) return km_tool_fail(env->t, err, "writing", path);
    km_tool_say(env->t, "  wrote %s\n", path);
    return 0;
}
