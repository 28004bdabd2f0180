/* client/sdk_keygen.c — create, join and finish a keygen (docs/API.md 4,
 * docs/PROTOCOL.md 5.2). The client encrypts only to enclaves it verified,
 * and accepts the sealed result only after recomputing every key in it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/sdk_internal.h"
#include "keymeld/aead.h"
#include "keymeld/ecies.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "keymeld/musig.h"
#include "keymeld/single.h"

/* ---- create ----------------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static km_err check_params(km_sdk *sdk, const km_sdk_keygen_params *p) {
    if (p->n_participants < 1 || p->n_participants > KM_SDK_MAX_PARTICIPANTS)
        return sdk_fail(sdk, KM_ERR_ARG, "keygen: 1..%d participants", KM_SDK_MAX_PARTICIPANTS);
    if (p->n_subsets > KM_SDK_MAX_SUBSETS || (p->n_subsets && !p->subsets))
        return sdk_fail(sdk, KM_ERR_ARG, "keygen: 0..%d subsets", KM_SDK_MAX_SUBSETS);
    if (p->timeout_secs < 1 || p->timeout_secs > 86400)
        return sdk_fail(sdk, KM_ERR_ARG, "keygen: timeout_secs must be 1..86400");
    if (km_tweak_check(&p->tweak) != KM_OK) return sdk_fail(sdk, KM_ERR_ARG, "keygen: malformed tweak");
    for (size_t i = 0; p->user_ids && i < p->n_participants; i++)
        for (size_t j = 0; j < i; j++)
            if (!memcmp(p->user_ids[i].b, p->user_ids[j].b, 16))
                return sdk_fail(sdk, KM_ERR_ARG, "keygen: user ids %zu and %zu are equal", j, i);
    for (size_t i = 0; i < p->n_subsets; i++) {
        const km_subset_def *d = &p->subsets[i];
        if (d->n < 1 || d->n > p->n_participants || !d->members)
            return sdk_fail(sdk, KM_ERR_ARG, "keygen: subset %zu must have 1..n members", i);
        for (size_t j = 0; j < i; j++)
            if (!memcmp(p->subsets[j].id.b, d->id.b, 16))
                return sdk_fail(sdk, KM_ERR_ARG, "keygen: subsets %zu and %zu share an id", j, i);
        for (uint16_t k = 0; k < d->n; k++) {
            if (d->members[k] >= p->n_participants)
                return sdk_fail(sdk, KM_ERR_ARG, "keygen: subset %zu names participant %u of %zu", i,
                                d->members[k], p->n_participants);
            for (uint16_t j = 0; j < k; j++)
                if (d->members[j] == d->members[k])
                    return sdk_fail(sdk, KM_ERR_ARG, "keygen: subset %zu lists a member twice", i);
        }
    }
    return KM_OK;
}

/* The session object of a new keygen: ids, fresh secret, assignment of
 * participant i to verified enclave i mod used. */
static km_err make_session(km_sdk *sdk, const km_sdk_keygen_params *p, const uint32_t *enc, size_t used,
                           km_sdk_session **out) {
    km_sdk_session *s;
    km_err err = sdk_session_alloc(sdk->ctx, p->n_participants, p->n_subsets, &s);
    if (err) return sdk_fail(sdk, err, "out of memory");
    unsigned char secret[32];
    err = km_uuid_v7(&s->keygen_id, sdk_unix_ms());
    if (!err) err = km_random_bytes(secret, sizeof secret);
    if (!err) err = sdk_session_set_secret(s, secret);
    km_wipe(secret, sizeof secret);
    for (size_t i = 0; !err && i < s->n; i++) {
        if (p->user_ids)
            s->users[i] = p->user_ids[i];
        else
            err = km_uuid_v7(&s->users[i], sdk_unix_ms());
        s->enclave_ids[i] = enc[i % used];
        memcpy(s->enclave_pubs[i], sdk_verified_key(sdk, enc[i % used]), 33);
    }
    s->tweak = p->tweak;
    for (size_t i = 0; !err && i < p->n_subsets; i++) {
        s->subsets[i].id = p->subsets[i].id;
        s->subsets[i].n = p->subsets[i].n;
        s->subsets[i].members = malloc(p->subsets[i].n * sizeof(uint16_t));
        if (!s->subsets[i].members)
            err = KM_ERR_NOMEM;
        else
            memcpy(s->subsets[i].members, p->subsets[i].members, p->subsets[i].n * sizeof(uint16_t));
    }
    if (!err && sdk->url && !(s->gateway_url = strdup(sdk->url))) err = KM_ERR_NOMEM;
    if (err) {
        km_sdk_session_free(s);
        return sdk_fail(sdk, err, "keygen: session setup: %s", km_strerror(err));
    }
    *out = s;
    return KM_OK;
}

/* The POST /keygen body: one KEYGEN_INIT blob per enclave used. */
static km_err create_body(km_sdk *sdk, const km_sdk_session *s, const uint32_t *enc, size_t used,
                          const km_sdk_keygen_params *p, char **text) {
    *text = NULL;
    km_keygen_init init;
    memset(&init, 0, sizeof init);
    unsigned char(*pubs)[33] = calloc(used, 33);
    uint16_t *index = calloc(s->n, sizeof *index);
    km_buf pt, blob;
    km_buf_init(&pt);
    km_buf_init(&blob);
    unsigned char auth_x[32];
    km_session_auth_pubkey(s->keys, auth_x);
    json_t *parts = json_array(), *inits = json_array();
    json_t *body = json_pack("{s:o,s:o,s:I,s:I}", "keygen_id", sdk_uuidj(&s->keygen_id), "session_auth_key",
                             sdk_hexj(auth_x, 32), "timeout_secs", (json_int_t)p->timeout_secs,
                             "max_signing_sessions", (json_int_t)p->max_signing_sessions);
    km_err err = (pubs && index && parts && inits && body) ? KM_OK : KM_ERR_NOMEM;
    for (size_t e = 0; !err && e < used; e++)
        memcpy(pubs[e], sdk_verified_key(sdk, enc[e]), 33);
    for (size_t i = 0; !err && i < s->n; i++)
        index[i] = (uint16_t)(i % used);
    if (!err) {
        memcpy(init.session_secret, km_secret_cdata(s->secret), 32);
        init.n_enclaves = (uint16_t)used;
        init.enclave_pubs = pubs;
        init.n_participants = (uint16_t)s->n;
        init.user_ids = s->users;
        init.enclave_index = index;
        init.n_subsets = (uint16_t)s->n_subsets;
        init.subsets = s->subsets;
        init.tweak = s->tweak;
        err = km_keygen_init_encode(&init, &pt);
        km_wipe(init.session_secret, 32);
        if (err) sdk_fail(sdk, KM_ERR_ARG, "keygen: the parameters do not encode (%s)", km_strerror(err));
        if (err) err = KM_ERR_ARG;
    }
    for (size_t e = 0; !err && e < used; e++) {
        km_ad ad;
        err = km_ad_build(&ad, KM_AD_KEYGEN_INIT, &s->keygen_id, pubs[e], 33);
        if (!err) err = km_ecies_seal(sdk->ctx, pubs[e], ad.bytes, ad.len, pt.data, pt.len, &blob);
        if (!err && json_array_append_new(inits, json_pack("{s:I,s:o}", "enclave_id", (json_int_t)enc[e],
                                                           "blob", sdk_hexj(blob.data, blob.len))) != 0)
            err = KM_ERR_NOMEM;
    }
    for (size_t i = 0; !err && i < s->n; i++)
        if (json_array_append_new(parts, json_pack("{s:o,s:I}", "user_id", sdk_uuidj(&s->users[i]),
                                                   "enclave_id", (json_int_t)s->enclave_ids[i])) != 0)
            err = KM_ERR_NOMEM;
    if (!err &&
        (json_object_set(body, "participants", parts) || json_object_set(body, "enclave_inits", inits)))
        err = KM_ERR_NOMEM;
    if (!err && !(*text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER))) err = KM_ERR_NOMEM;
    km_buf_free(&pt); /* wipes: it held the session secret */
    km_buf_free(&blob);
    json_decref(parts);
    json_decref(inits);
    json_decref(body);
    free(pubs);
    free(index);
    if (err && err != KM_ERR_ARG) sdk_fail(sdk, err, "keygen: building the request: %s", km_strerror(err));
    return err;
}

km_err km_sdk_keygen_create(km_sdk *sdk, const km_sdk_keygen_params *params, km_sdk_session **out) {
    if (out) *out = NULL;
    if (!sdk) return KM_ERR_ARG;
    if (!params || !out) return sdk_fail(sdk, KM_ERR_ARG, "keygen: NULL argument");
    km_err err = check_params(sdk, params);
    if (err) return err;
    if (sdk->n_verified == 0)
        return sdk_fail(sdk, KM_ERR_STATE, "keygen: no verified enclave (call km_sdk_verify_enclaves first)");
    size_t used = sdk->n_verified < params->n_participants ? sdk->n_verified : params->n_participants;
    if (used > KM_MAX_ENCLAVES) used = KM_MAX_ENCLAVES;
    uint32_t *enc = calloc(sdk->n_verified, sizeof *enc);
    if (!enc) return sdk_fail(sdk, KM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < sdk->n_verified; i++)
        enc[i] = sdk->verified[i].enclave_id;
    qsort(enc, sdk->n_verified, sizeof *enc, cmp_u32);

    km_sdk_session *s = NULL;
    char *text = NULL;
    km_client_response r = {0};
    err = make_session(sdk, params, enc, used, &s);
    if (!err) err = create_body(sdk, s, enc, used, params, &text);
    if (!err) err = sdk_post(sdk, "/api/v1/keygen", text, strlen(text), km_session_auth_keypair(s->keys), &r);
    if (!err && r.status != 201) err = sdk_http_fail(sdk, &r, "keygen create");
    if (err == KM_ERR_NOT_FOUND) err = KM_ERR_STATE;
    km_client_response_clear(&r);
    free(text);
    free(enc);
    if (err) {
        km_sdk_session_free(s);
        return err;
    }
    sdk->err[0] = '\0';
    *out = s;
    return KM_OK;
}

/* ---- join ------------------------------------------------------------------------- */

km_err km_sdk_keygen_join(km_sdk *sdk, km_sdk_session *s, size_t i, const unsigned char seckey[32],
                          const unsigned char auth_seckey[32], int require_approval) {
    if (!sdk) return KM_ERR_ARG;
    if (!s || !seckey || !auth_seckey) return sdk_fail(sdk, KM_ERR_ARG, "join: NULL argument");
    if (i >= s->n) return sdk_fail(sdk, KM_ERR_RANGE, "join: participant %zu of %zu", i, s->n);
    const unsigned char *verified = sdk_verified_key(sdk, s->enclave_ids[i]);
    /* The invitation names the enclave key; only a key this handle verified
     * itself, and the same one, may receive the participant's secret key. */
    if (!verified)
        return sdk_fail(sdk, KM_ERR_STATE, "join: enclave %u is not verified by this handle",
                        s->enclave_ids[i]);
    if (memcmp(verified, s->enclave_pubs[i], 33))
        return sdk_fail(sdk, KM_ERR_STATE,
                        "join: the session names another key for enclave %u than the attested one",
                        s->enclave_ids[i]);
    unsigned char pub[33], auth_x[32];
    if (km_single_pubkey(sdk->ctx, pub, seckey) != KM_OK ||
        km_single_xonly_pubkey(sdk->ctx, auth_x, auth_seckey) != KM_OK)
        return sdk_fail(sdk, KM_ERR_INVALID_KEY, "join: invalid secret key or auth key");
    uint8_t flags = require_approval ? KM_FLAG_REQUIRE_APPROVAL : 0;

    /* What this registration stands for; an identical repeat resends the
     * same blob (the gateway compares blobs). */
    unsigned char digest[32];
    const void *parts[6] = {s->keygen_id.b, s->users[i].b, pub, auth_x, &flags, s->enclave_pubs[i]};
    const size_t lens[6] = {16, 16, 33, 32, 1, 33};
    km_sha256_parts(digest, parts, lens, 6);

    char kid[37], target[128];
    km_uuid_format(kid, &s->keygen_id);
    snprintf(target, sizeof target, "/api/v1/keygen/%s/participants", kid);
    km_client_response r = {0};
    secp256k1_keypair kp;
    char *text = NULL;
    km_err err = KM_OK;
    const sdk_body *cached = sdk_body_find(sdk, SDK_BODY_REGISTER, s->users[i].b, digest);
    if (!cached) {
        km_registration reg;
        unsigned char rp[KM_REGISTRATION_LEN];
        memcpy(reg.session_secret, km_secret_cdata(s->secret), 32);
        memcpy(reg.seckey, seckey, 32);
        memcpy(reg.auth_pub, auth_x, 32);
        reg.flags = flags;
        km_registration_encode(&reg, rp);
        km_wipe(&reg, sizeof reg);
        km_ad ad;
        km_buf blob;
        km_buf_init(&blob);
        err = km_ad_build(&ad, KM_AD_REGISTER, &s->keygen_id, s->users[i].b, 16);
        if (!err) err = km_ecies_seal(sdk->ctx, s->enclave_pubs[i], ad.bytes, ad.len, rp, sizeof rp, &blob);
        km_wipe(rp, sizeof rp);
        json_t *body = NULL;
        if (!err) {
            body = json_pack("{s:o,s:o,s:o,s:b}", "user_id", sdk_uuidj(&s->users[i]), "blob",
                             sdk_hexj(blob.data, blob.len), "auth_key", sdk_hexj(auth_x, 32),
                             "require_approval", flags ? 1 : 0);
            if (!body || !(text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER))) err = KM_ERR_NOMEM;
        }
        json_decref(body);
        km_buf_free(&blob);
        if (!err) err = sdk_body_put(sdk, SDK_BODY_REGISTER, s->users[i].b, digest, text, strlen(text));
        if (err) {
            free(text);
            return sdk_fail(sdk, err, "join: building the registration: %s", km_strerror(err));
        }
        cached = sdk_body_find(sdk, SDK_BODY_REGISTER, s->users[i].b, digest);
    }
    /* Signed by the participant's own auth key: the gateway learns that the
     * registrant holds the key that will sign its approvals. */
    err = sdk_keypair(sdk->ctx, &kp, auth_seckey);
    if (!err) err = sdk_post(sdk, target, cached->body, cached->len, &kp, &r);
    km_wipe(&kp, sizeof kp);
    free(text);
    if (!err && r.status != 201) err = sdk_http_fail(sdk, &r, "join");
    if (err == KM_ERR_NOT_FOUND) err = KM_ERR_STATE;
    km_client_response_clear(&r);
    if (err) return err;
    s->joined[i] = 1;
    memcpy(s->own_pubs[i], pub, 33);
    sdk->err[0] = '\0';
    return KM_OK;
}

/* ---- wait and check ------------------------------------------------------------------ */

void km_sdk_keygen_result_clear(km_sdk_keygen_result *r) {
    if (!r) return;
    free(r->pubkeys);
    free(r->subset_ids);
    free(r->subset_output);
    memset(r, 0, sizeof *r);
}

km_err sdk_agg_of(const km_ctx *ctx, const unsigned char (*keys)[33], const uint16_t *members, size_t n,
                  const km_tweak *tweak, km_musig_keyagg *ka) {
    unsigned char(*sel)[33] = members ? malloc(n * 33) : NULL;
    if (members && !sel) return KM_ERR_NOMEM;
    for (size_t i = 0; members && i < n; i++)
        memcpy(sel[i], keys[members[i]], 33);
    size_t bad;
    km_err err = km_musig_key_agg(ctx, ka, members ? &sel[0][0] : &keys[0][0], n, &bad);
    if (!err) err = km_musig_keyagg_tweak(ctx, ka, tweak);
    free(sel);
    return err;
}

/* Check an opened result against what this session knows. Fills out. */
static km_err check_result(km_sdk *sdk, const km_sdk_session *s, const unsigned char *res, size_t len,
                           km_sdk_keygen_result *out) {
    km_cursor c;
    unsigned char agg[32], output[32], tdata[32];
    uint8_t parity, mode;
    uint16_t n, ns;
    km_cursor_init(&c, res, len);
    (void)km_cursor_get_bytes(&c, agg, 32);
    (void)km_cursor_get_bytes(&c, output, 32);
    (void)km_cursor_get_u8(&c, &parity);
    (void)km_cursor_get_u8(&c, &mode);
    (void)km_cursor_get_bytes(&c, tdata, 32);
    if (km_cursor_get_u16(&c, &n) != KM_OK || n != s->n)
        return sdk_fail(sdk, KM_ERR_VERIFY, "keygen result: malformed or another participant count");
    if (mode != (uint8_t)s->tweak.mode || memcmp(tdata, s->tweak.data, 32))
        return sdk_fail(sdk, KM_ERR_VERIFY, "keygen result: another tweak than the session's");
    out->n_participants = n;
    out->pubkeys = calloc(n, 33);
    if (!out->pubkeys) return sdk_fail(sdk, KM_ERR_NOMEM, "out of memory");
    for (uint16_t i = 0; i < n; i++) {
        if (km_cursor_get_bytes(&c, out->pubkeys[i], 33) != KM_OK ||
            km_musig_pubkey_check(sdk->ctx, out->pubkeys[i]) != KM_OK)
            return sdk_fail(sdk, KM_ERR_VERIFY, "keygen result: participant %u's key is malformed", i);
        /* A key substituted for ours would let someone else sign for us. */
        if (s->joined[i] && memcmp(out->pubkeys[i], s->own_pubs[i], 33))
            return sdk_fail(sdk, KM_ERR_VERIFY,
                            "keygen result: participant %u's key is not the one it joined with", i);
    }
    if (km_cursor_get_u16(&c, &ns) != KM_OK || ns != s->n_subsets)
        return sdk_fail(sdk, KM_ERR_VERIFY, "keygen result: another subset count");
    km_musig_keyagg ka;
    km_err err = sdk_agg_of(sdk->ctx, (const unsigned char(*)[33])out->pubkeys, NULL, n, &s->tweak, &ka);
    if (err)
        return sdk_fail(sdk, KM_ERR_VERIFY, "keygen result: the keys do not aggregate (%s)",
                        km_strerror(err));
    if (memcmp(agg, ka.agg_xonly, 32) || memcmp(output, ka.output_xonly, 32) || parity != ka.output_parity)
        return sdk_fail(sdk, KM_ERR_VERIFY,
                        "keygen result: the aggregate key does not recompute from the keys");
    memcpy(out->agg_xonly, agg, 32);
    memcpy(out->output_xonly, output, 32);
    out->output_parity = parity;
    out->tweak = s->tweak;
    out->n_subsets = ns;
    if (ns) {
        out->subset_ids = calloc(ns, sizeof *out->subset_ids);
        out->subset_output = calloc(ns, 32);
        if (!out->subset_ids || !out->subset_output) return sdk_fail(sdk, KM_ERR_NOMEM, "out of memory");
    }
    for (uint16_t k = 0; k < ns; k++) {
        km_uuid id;
        unsigned char sagg[32], sout[32];
        (void)km_cursor_get_bytes(&c, id.b, 16);
        (void)km_cursor_get_bytes(&c, sagg, 32);
        if (km_cursor_get_bytes(&c, sout, 32) != KM_OK || memcmp(id.b, s->subsets[k].id.b, 16))
            return sdk_fail(sdk, KM_ERR_VERIFY, "keygen result: subset %u malformed or another id", k);
        err = sdk_agg_of(sdk->ctx, (const unsigned char(*)[33])out->pubkeys, s->subsets[k].members,
                         s->subsets[k].n, &s->tweak, &ka);
        if (err || memcmp(sagg, ka.agg_xonly, 32) || memcmp(sout, ka.output_xonly, 32))
            return sdk_fail(sdk, KM_ERR_VERIFY, "keygen result: subset %u's key does not recompute", k);
        out->subset_ids[k] = id;
        memcpy(out->subset_output[k], sout, 32);
    }
    if (km_cursor_finish(&c) != KM_OK) return sdk_fail(sdk, KM_ERR_VERIFY, "keygen result: trailing bytes");
    return KM_OK;
}

km_err sdk_keygen_result(km_sdk *sdk, const km_sdk_session *s, unsigned timeout_s,
                         km_sdk_keygen_result *out) {
    memset(out, 0, sizeof *out);
    char id[37], base[128];
    km_uuid_format(id, &s->keygen_id);
    snprintf(base, sizeof base, "/api/v1/keygen/%s", id);
    km_client_response r = {0};
    km_buf sealed;
    km_buf_init(&sealed);
    unsigned char *res = NULL;
    int failed = 0;
    km_err err = sdk_poll(sdk, base, km_session_auth_keypair(s->keys), timeout_s, &r, &failed);
    if (err == KM_ERR_NOT_FOUND) err = KM_ERR_STATE;
    if (err) goto out;
    if (failed) {
        const char *why = json_string_value(json_object_get(r.json, "reason"));
        err = sdk_fail(sdk, KM_ERR_STATE, "keygen failed: %s", why ? why : "(no reason given)");
        goto out;
    }
    if (sdk_get_hex(r.json, "result", &sealed) != KM_OK) {
        err = sdk_fail(sdk, KM_ERR_VERIFY, "keygen completed without a readable result");
        goto out;
    }
    res = malloc(sealed.len);
    if (!res) {
        err = sdk_fail(sdk, KM_ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t rl = 0;
    km_ad ad;
    err = km_ad_build(&ad, KM_AD_KEYGEN_RESULT, &s->keygen_id, NULL, 0);
    if (!err) err = km_session_open(s->keys, ad.bytes, ad.len, sealed.data, sealed.len, res, sealed.len, &rl);
    if (err) {
        err = sdk_fail(sdk, KM_ERR_DECRYPT, "keygen result does not open under the session key (tampered)");
        goto out;
    }
    err = check_result(sdk, s, res, rl, out);
out:
    if (err) km_sdk_keygen_result_clear(out);
    km_client_response_clear(&r);
    km_buf_free(&sealed);
    free(res);
    return err;
}

km_err km_sdk_keygen_wait(km_sdk *sdk, km_sdk_session *s, unsigned timeout_s, km_sdk_keygen_result *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!sdk) return KM_ERR_ARG;
    if (!s || !out) return sdk_fail(sdk, KM_ERR_ARG, "keygen_wait: NULL argument");
    km_err err = sdk_keygen_result(sdk, s, timeout_s, out);
    if (err) return err;
    memcpy(s->pubkeys, out->pubkeys, s->n * 33);
    memcpy(s->output_xonly, out->output_xonly, 32); /* recomputed and checked by sdk_keygen_result */
    s->have_result = 1;
    sdk->err[0] = '\0';
    return KM_OK;
}
