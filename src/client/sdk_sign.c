/* client/sdk_sign.c — signing sessions (docs/API.md 5, docs/PROTOCOL.md
 * 5.3). The batch travels sealed under the session key; the result is
 * returned only after every signature verifies under the key the client
 * computed itself for the item's signer set and tweak, and every adaptor
 * pre-signature verifies against the adaptor point the client asked for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/sdk_internal.h"
#include "keymeld/adaptor.h"
#include "keymeld/hash.h"
#include "keymeld/single.h"

static km_err check_items(km_sdk *sdk, const km_sdk_session *s, const km_sign_item *items, size_t n,
                          km_buf *pt) {
    km_buf_init(pt);
    if (!items) return sdk_fail(sdk, KM_ERR_ARG, "signing: NULL items");
    if (n < 1 || n > KM_MAX_ITEMS) return sdk_fail(sdk, KM_ERR_RANGE, "signing: 1..%d items", KM_MAX_ITEMS);
    for (size_t i = 0; i < n; i++)
        if (items[i].has_subset && sdk_session_subset(s, &items[i].subset_id) < 0)
            return sdk_fail(sdk, KM_ERR_ARG, "signing: item %zu names a subset the session does not have", i);
    km_err err = km_sign_items_encode(items, n, pt);
    if (err == KM_ERR_NOMEM) return sdk_fail(sdk, err, "out of memory");
    if (err) return sdk_fail(sdk, err, "signing: the items are invalid (%s)", km_strerror(err));
    return KM_OK;
}

/* POST the sealed batch to target ("/api/v1/signing", with or without a
 * ?wait); *r gets the answer whatever its status. */
static km_err sign_post(km_sdk *sdk, const km_sdk_session *s, const km_uuid *signing_id,
                        const km_sign_item *items, size_t n, uint32_t timeout_secs, const char *target,
                        km_client_response *r) {
    if (!s || !signing_id) return sdk_fail(sdk, KM_ERR_ARG, "signing: NULL argument");
    if (timeout_secs < 1 || timeout_secs > 2592000)
        return sdk_fail(sdk, KM_ERR_ARG, "signing: timeout_secs must be 1..2592000");
    km_buf pt, sealed;
    km_buf_init(&sealed);
    km_err err = check_items(sdk, s, items, n, &pt);
    if (err) return err;
    /* A repeat of the same batch resends the same sealed bytes: the seal is
     * randomised, and the gateway answers other bytes with 409. */
    unsigned char digest[32];
    const void *parts[2] = {s->keygen_id.b, pt.data};
    const size_t lens[2] = {16, pt.len};
    km_sha256_parts(digest, parts, lens, 2);
    const sdk_body *cached = sdk_body_find(sdk, SDK_BODY_SIGN, signing_id->b, digest);
    char *text = NULL;
    if (!cached) {
        km_ad ad;
        json_t *body = NULL;
        err = km_ad_build(&ad, KM_AD_SIGNING_ITEMS, signing_id, s->keygen_id.b, 16);
        if (!err) err = km_session_seal(s->keys, ad.bytes, ad.len, pt.data, pt.len, &sealed);
        if (!err) {
            body = json_pack("{s:o,s:o,s:o,s:I}", "signing_id", sdk_uuidj(signing_id), "keygen_id",
                             sdk_uuidj(&s->keygen_id), "items", sdk_hexj(sealed.data, sealed.len),
                             "timeout_secs", (json_int_t)timeout_secs);
            if (!body || !(text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER))) err = KM_ERR_NOMEM;
        }
        json_decref(body);
        if (!err) err = sdk_body_put(sdk, SDK_BODY_SIGN, signing_id->b, digest, text, strlen(text));
        if (!err) cached = sdk_body_find(sdk, SDK_BODY_SIGN, signing_id->b, digest);
        if (err) sdk_fail(sdk, err, "signing: building the request: %s", km_strerror(err));
    }
    if (!err) err = sdk_post(sdk, target, cached->body, cached->len, km_session_auth_keypair(s->keys), r);
    if (!err && r->status != 201) err = sdk_http_fail(sdk, r, "signing create");
    if (err == KM_ERR_NOT_FOUND) err = KM_ERR_STATE;
    free(text);
    km_buf_free(&pt);
    km_buf_free(&sealed);
    return err;
}

km_err km_sdk_sign_create(km_sdk *sdk, const km_sdk_session *s, const km_uuid *signing_id,
                          const km_sign_item *items, size_t n, uint32_t timeout_secs) {
    if (!sdk) return KM_ERR_ARG;
    km_client_response r = {0};
    km_err err = sign_post(sdk, s, signing_id, items, n, timeout_secs, "/api/v1/signing", &r);
    if (!err) sdk->err[0] = '\0';
    km_client_response_clear(&r);
    return err;
}

km_err km_sdk_sign_approve(km_sdk *sdk, const km_sdk_session *s, size_t i,
                           const unsigned char auth_seckey[32], const km_uuid *signing_id,
                           const km_sign_item *items, size_t n) {
    if (!sdk) return KM_ERR_ARG;
    if (!s || !auth_seckey || !signing_id) return sdk_fail(sdk, KM_ERR_ARG, "approve: NULL argument");
    if (i >= s->n) return sdk_fail(sdk, KM_ERR_RANGE, "approve: participant %zu of %zu", i, s->n);
    km_buf pt;
    km_err err = check_items(sdk, s, items, n, &pt);
    if (err) return err;
    /* The approval covers exactly these items: the enclave recomputes the
     * digest from the batch it decrypted and refuses any other. */
    unsigned char digest[32], sig[64];
    km_sign_approval_digest(digest, signing_id, &s->keygen_id, pt.data, pt.len);
    km_buf_free(&pt);
    /* Deterministic (BIP-340 with zero auxiliary data: the nonce still
     * depends on the key and the digest): a repeat after a lost answer sends
     * the same signature, which the gateway answers 200 like the first; a
     * fresh signature would be refused 409 as another approval. */
    static const unsigned char zero_aux[32];
    err = km_single_schnorr_sign_aux(sdk->ctx, sig, digest, 32, auth_seckey, zero_aux);
    if (err)
        return sdk_fail(sdk, err == KM_ERR_INVALID_KEY ? KM_ERR_INVALID_KEY : err,
                        "approve: cannot sign (%s)", km_strerror(err));
    char sid[37], uid[37], target[160];
    km_uuid_format(sid, signing_id);
    km_uuid_format(uid, &s->users[i]);
    snprintf(target, sizeof target, "/api/v1/signing/%s/approve/%s", sid, uid);
    json_t *body = json_pack("{s:o}", "signature", sdk_hexj(sig, 64));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) return sdk_fail(sdk, KM_ERR_NOMEM, "out of memory");
    km_client_response r = {0};
    secp256k1_keypair kp;
    err = sdk_keypair(sdk->ctx, &kp, auth_seckey);
    /* Retried through outages like a create: the same bytes each time. */
    if (!err) err = sdk_post(sdk, target, text, strlen(text), &kp, &r);
    km_wipe(&kp, sizeof kp);
    free(text);
    if (!err && r.status != 200) {
        const char *code = km_client_error_code(&r);
        err = sdk_http_fail(sdk, &r, "approve");
        /* The enclave (or the gateway, with the registered auth key) refused
         * the signature over these items. */
        if (r.status == 422 || (code && !strcmp(code, "invalid_approval")))
            err = KM_ERR_VERIFY;
        else if (err == KM_ERR_NOT_FOUND)
            err = KM_ERR_STATE;
    }
    if (!err) sdk->err[0] = '\0';
    km_client_response_clear(&r);
    return err;
}

void km_sdk_sign_result_clear(km_sdk_sign_result *r) {
    if (!r) return;
    free(r->items);
    memset(r, 0, sizeof *r);
}

/* The x-only key item it must verify under: KeyAgg of its signer set (all
 * participants or its subset) with its own tweak or the session's. */
static km_err expected_key(km_sdk *sdk, const km_sdk_session *s, const unsigned char (*keys)[33],
                           const unsigned char full_xonly[32], const km_sign_item *it,
                           unsigned char out32[32]) {
    if (!it->has_subset && !it->own_tweak) {
        memcpy(out32, full_xonly, 32);
        return KM_OK;
    }
    int sub = it->has_subset ? sdk_session_subset(s, &it->subset_id) : -1;
    if (it->has_subset && sub < 0)
        return sdk_fail(sdk, KM_ERR_PARSE, "signing: item names an unknown subset");
    km_musig_keyagg ka;
    km_err err = sdk_agg_of(sdk->ctx, keys, sub < 0 ? NULL : s->subsets[sub].members,
                            sub < 0 ? s->n : s->subsets[sub].n, it->own_tweak ? &it->tweak : &s->tweak, &ka);
    if (err)
        return sdk_fail(sdk, KM_ERR_VERIFY, "signing: the item's key does not aggregate (%s)",
                        km_strerror(err));
    memcpy(out32, ka.output_xonly, 32);
    return KM_OK;
}

static int cmp32(const void *a, const void *b) {
    return memcmp(a, b, 32);
}

/* Check an opened result unit by unit against the items. */
static km_err check_result(km_sdk *sdk, const km_sdk_session *s, const unsigned char (*keys)[33],
                           const km_sign_item *items, size_t n, const unsigned char *res, size_t len,
                           km_sdk_sign_result *out) {
    static const unsigned char no_T[33];
    km_musig_keyagg full;
    km_cursor c;
    uint32_t count;
    size_t n_R = 0, cap_R = 0;
    unsigned char(*Rs)[32] = NULL;
    /* The whole group's key: checked when the keygen result was (kept in the
     * session), or computed now from keys fetched for an imported session. */
    const unsigned char *full_xonly = s->output_xonly;
    km_err err = KM_OK;
    if (!s->have_result || keys != (const unsigned char(*)[33])s->pubkeys) {
        err = sdk_agg_of(sdk->ctx, keys, NULL, s->n, &s->tweak, &full);
        full_xonly = full.output_xonly;
    }
    if (err) return sdk_fail(sdk, KM_ERR_VERIFY, "signing: the session's keys do not aggregate");
    for (size_t i = 0; i < n; i++)
        cap_R += km_sign_item_units(&items[i]);
    Rs = calloc(cap_R, 32);
    out->items = calloc(n, sizeof *out->items);
    if (!Rs || !out->items) {
        free(Rs);
        return sdk_fail(sdk, KM_ERR_NOMEM, "out of memory");
    }
    out->n = n;
    km_cursor_init(&c, res, len);
    if (km_cursor_get_u32(&c, &count) != KM_OK || count != n) {
        err = sdk_fail(sdk, KM_ERR_PARSE, "signing result: another item count");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const km_sign_item *it = &items[i];
        km_sdk_item_result *ir = &out->items[i];
        uint8_t type = 0;
        uint16_t units = 0;
        (void)km_cursor_get_bytes(&c, ir->item_id.b, 16);
        (void)km_cursor_get_u8(&c, &type);
        if (km_cursor_get_u16(&c, &units) != KM_OK || memcmp(ir->item_id.b, it->id.b, 16) ||
            type != it->adaptor || units != km_sign_item_units(it)) {
            err =
                sdk_fail(sdk, KM_ERR_PARSE, "signing result: item %zu has another id, type or unit count", i);
            goto out;
        }
        ir->adaptor = it->adaptor;
        ir->n_units = units;
        if ((err = expected_key(sdk, s, keys, full_xonly, it, ir->key_xonly)) != KM_OK) goto out;
        unsigned char and_T[33];
        if (it->adaptor == KM_ADAPTOR_AND) {
            const unsigned char *pts[KM_MAX_ADAPTOR_POINTS];
            for (uint16_t p = 0; p < it->n_points; p++)
                pts[p] = it->points[p];
            if (km_adaptor_point_sum(sdk->ctx, and_T, pts, it->n_points) != KM_OK) {
                err = sdk_fail(sdk, KM_ERR_VERIFY, "signing: item %zu's adaptor points sum to nothing", i);
                goto out;
            }
        }
        for (uint16_t v = 0; v < units; v++) {
            km_sdk_unit *u = &ir->units[v];
            unsigned char T[33];
            (void)km_cursor_get_bytes(&c, u->sig, 64);
            if (km_cursor_get_bytes(&c, T, 33) != KM_OK) {
                err = sdk_fail(sdk, KM_ERR_PARSE, "signing result: truncated");
                goto out;
            }
            memcpy(Rs[n_R++], u->sig, 32);
            km_err plain = km_single_schnorr_verify(sdk->ctx, u->sig, it->msg, 32, ir->key_xonly);
            if (it->adaptor == KM_ADAPTOR_NONE) {
                if (memcmp(T, no_T, 33)) {
                    err = sdk_fail(sdk, KM_ERR_PARSE,
                                   "signing result: item %zu: adaptor point on a plain item", i);
                    goto out;
                }
                if (plain != KM_OK) {
                    err = sdk_fail(sdk, KM_ERR_VERIFY,
                                   "signing result: item %zu: the signature does not verify", i);
                    goto out;
                }
                continue;
            }
            const unsigned char *want = it->adaptor == KM_ADAPTOR_AND  ? and_T
                                        : it->adaptor == KM_ADAPTOR_OR ? it->points[v]
                                                                       : it->points[0];
            if (memcmp(T, want, 33)) {
                err = sdk_fail(sdk, KM_ERR_VERIFY,
                               "signing result: item %zu unit %u is for another adaptor point", i, v);
                goto out;
            }
            /* A pre-signature that is already a valid signature would let the
             * counterparty take it without revealing the adaptor secret. */
            if (plain != KM_ERR_VERIFY ||
                km_adaptor_presig_verify(sdk->ctx, u->sig, T, ir->key_xonly, it->msg) != KM_OK) {
                err = sdk_fail(sdk, KM_ERR_VERIFY,
                               "signing result: item %zu unit %u: the pre-signature does not verify", i, v);
                goto out;
            }
            u->has_T = 1;
            memcpy(u->T, T, 33);
        }
    }
    if (km_cursor_finish(&c) != KM_OK) {
        err = sdk_fail(sdk, KM_ERR_PARSE, "signing result: trailing bytes");
        goto out;
    }
    /* Two units with one nonce point would reveal the participants' keys. */
    qsort(Rs, n_R, 32, cmp32);
    for (size_t k = 1; k < n_R; k++)
        if (!memcmp(Rs[k - 1], Rs[k], 32)) {
            err = sdk_fail(sdk, KM_ERR_VERIFY, "signing result: two units share a nonce point");
            goto out;
        }
out:
    free(Rs);
    return err;
}

/* Open and check a final answer (*r: the session's JSON, completed or
 * failed) of signing_id. */
static km_err sign_finish(km_sdk *sdk, const km_sdk_session *s, const km_uuid *signing_id,
                          const km_sign_item *items, size_t n, unsigned timeout_s,
                          const km_client_response *r, km_sdk_sign_result *out) {
    km_sdk_keygen_result kg;
    memset(&kg, 0, sizeof kg);
    km_buf sealed;
    km_buf_init(&sealed);
    unsigned char *res = NULL;
    km_err err = KM_OK;
    const char *status = json_string_value(json_object_get(r->json, "status"));
    if (status && !strcmp(status, "failed")) {
        const char *why = json_string_value(json_object_get(r->json, "reason"));
        err = sdk_fail(sdk, KM_ERR_STATE, "signing failed: %s", why ? why : "(no reason given)");
        goto out;
    }
    if (sdk_get_hex(r->json, "result", &sealed) != KM_OK) {
        err = sdk_fail(sdk, KM_ERR_PARSE, "signing completed without a readable result");
        goto out;
    }
    res = malloc(sealed.len);
    if (!res) {
        err = sdk_fail(sdk, KM_ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t rl = 0;
    km_ad ad;
    err = km_ad_build(&ad, KM_AD_SIGNING_RESULT, signing_id, NULL, 0);
    if (!err) err = km_session_open(s->keys, ad.bytes, ad.len, sealed.data, sealed.len, res, sealed.len, &rl);
    if (err) {
        err = sdk_fail(sdk, KM_ERR_DECRYPT, "signing result does not open under the session key (tampered)");
        goto out;
    }
    /* The participants' keys: from this session's checked keygen result,
     * or fetched and checked now (an imported session has none yet). */
    const unsigned char(*keys)[33] = (const unsigned char(*)[33])s->pubkeys;
    if (!s->have_result) {
        if ((err = sdk_keygen_result(sdk, s, timeout_s ? timeout_s : 1, &kg)) != KM_OK) goto out;
        keys = (const unsigned char(*)[33])kg.pubkeys;
    }
    err = check_result(sdk, s, keys, items, n, res, rl, out);
out:
    km_sdk_keygen_result_clear(&kg);
    km_buf_free(&sealed);
    free(res);
    return err;
}

/* The end of a call that returns a result: nothing of it is kept on failure,
 * the error text is cleared on success; the answer is released. */
static km_err sign_done(km_sdk *sdk, km_err err, km_sdk_sign_result *out, km_client_response *r) {
    if (err)
        km_sdk_sign_result_clear(out);
    else
        sdk->err[0] = '\0';
    km_client_response_clear(r);
    return err;
}

km_err km_sdk_sign_wait(km_sdk *sdk, const km_sdk_session *s, const km_uuid *signing_id,
                        const km_sign_item *items, size_t n, unsigned timeout_s, km_sdk_sign_result *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!sdk) return KM_ERR_ARG;
    if (!s || !signing_id || !out) return sdk_fail(sdk, KM_ERR_ARG, "sign_wait: NULL argument");
    km_buf pt;
    km_err err = check_items(sdk, s, items, n, &pt);
    km_buf_free(&pt);
    if (err) return err;
    char id[37], base[128];
    km_uuid_format(id, signing_id);
    snprintf(base, sizeof base, "/api/v1/signing/%s", id);
    km_client_response r = {0};
    int failed = 0;
    err = sdk_poll(sdk, base, km_session_auth_keypair(s->keys), timeout_s, &r, &failed);
    if (err == KM_ERR_NOT_FOUND) err = KM_ERR_STATE;
    if (!err) err = sign_finish(sdk, s, signing_id, items, n, timeout_s, &r, out);
    return sign_done(sdk, err, out, &r);
}

km_err km_sdk_sign(km_sdk *sdk, const km_sdk_session *s, const km_uuid *signing_id, const km_sign_item *items,
                   size_t n, uint32_t timeout_secs, unsigned wait_s, km_sdk_sign_result *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!sdk) return KM_ERR_ARG;
    if (!out) return sdk_fail(sdk, KM_ERR_ARG, "sign: NULL argument");
    uint64_t deadline = sdk_now_ms() + (uint64_t)wait_s * 1000u;
    char target[64];
    snprintf(target, sizeof target, "/api/v1/signing?wait=%u&until=final",
             wait_s > SDK_LONG_POLL_MAX_S ? SDK_LONG_POLL_MAX_S : wait_s);
    km_client_response r = {0};
    km_err err = sign_post(sdk, s, signing_id, items, n, timeout_secs, target, &r);
    const char *status = err ? NULL : json_string_value(json_object_get(r.json, "status"));
    if (err) {
        /* refused: the reason is recorded */
    } else if (status && (!strcmp(status, "completed") || !strcmp(status, "failed"))) {
        err = sign_finish(sdk, s, signing_id, items, n, wait_s, &r, out);
    } else {
        uint64_t now = sdk_now_ms();
        unsigned left = now < deadline ? (unsigned)((deadline - now + 999) / 1000u) : 0;
        km_client_response_clear(&r);
        return km_sdk_sign_wait(sdk, s, signing_id, items, n, left, out);
    }
    return sign_done(sdk, err, out, &r);
}
