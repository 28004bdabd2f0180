/* rounds.c — see rounds.h. */
#include "cli/rounds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/ecies.h"
#include "keymeld/hex.h"
#include "keymeld/single.h"

/* Evaluate a km_err expression; on failure record what failed and leave
 * through the function's `out` label with err set. */
#define TRY(w, expr, what)                                                                                   \
    do {                                                                                                     \
        err = (expr);                                                                                        \
        if (err != KM_OK) {                                                                                  \
            (w)->detail = (what);                                                                            \
            goto out;                                                                                        \
        }                                                                                                    \
    } while (0)
#define FAIL(w, code, what)                                                                                  \
    do {                                                                                                     \
        err = (code);                                                                                        \
        (w)->detail = (what);                                                                                \
        goto out;                                                                                            \
    } while (0)

km_err km_rounds_put_vbytes(km_buf *b, const unsigned char *p, size_t n) {
    if (n > UINT32_MAX) return KM_ERR_RANGE;
    km_err err = km_buf_put_u32(b, (uint32_t)n);
    if (!err) err = km_buf_put(b, p, n);
    return err;
}

km_err km_rounds_call(km_rounds_world *w, int i, uint16_t cmd, const km_buf *body, km_buf *out,
                      km_err *status) {
    if (i < 0 || i >= w->n_enclaves) return KM_ERR_ARG;
    km_msg resp;
    km_err err =
        km_enclave_conn_call(&w->conn[i], cmd, body ? body->data : NULL, body ? body->len : 0, &resp);
    if (err) {
        w->detail = "enclave call (transport)";
        return err;
    }
    if (out) {
        km_buf_free(out);
        err = km_buf_put(out, resp.body, resp.body_len);
        if (err) {
            w->detail = "copy response";
            return err;
        }
    }
    if (resp.code != KM_OK) {
        char d[300];
        if (km_msg_error_detail(&resp, d, sizeof d) == KM_OK)
            fprintf(stderr, "  enclave %d: %s: %s\n", i, km_err_name((km_err)resp.code), d);
    }
    *status = (km_err)resp.code;
    return KM_OK;
}

/* A call whose refusal is an error of the round. */
static km_err call_ok(km_rounds_world *w, int i, uint16_t cmd, const km_buf *body, km_buf *out) {
    km_err status;
    km_err err = km_rounds_call(w, i, cmd, body, out, &status);
    if (err) return err;
    if (status) w->detail = "enclave refused";
    return status;
}

km_err km_rounds_start(km_rounds_world *w, const char *bin, int n_enclaves, int n_users) {
    if (!w) return KM_ERR_ARG;
    memset(w, 0, sizeof *w);
    if (!bin || n_enclaves < 1 || n_enclaves > KM_ROUNDS_MAX_ENCLAVES || n_users < 1 ||
        n_users > KM_ROUNDS_MAX_USERS) {
        w->detail = "bad arguments";
        return KM_ERR_ARG;
    }
    km_err err;
    for (int u = 0; u < n_users; u++)
        km_buf_init(&w->records[u]);
    w->n_users = n_users;
    TRY(w, km_ctx_create(&w->ctx), "create context");
    for (int i = 0; i < n_enclaves; i++) {
        w->n_enclaves = i + 1; /* so that stop cleans up what was started */
        TRY(w, km_devnet_start(w->ctx, &w->enc[i], bin, NULL, NULL), "start enclave");
        TRY(w, km_devnet_connect(w->ctx, &w->enc[i], &w->conn[i]), "connect to enclave");
    }
    TRY(w, km_uuid_v7(&w->keygen_id, 1700000000000ull), "keygen id");
    TRY(w, km_random_bytes(w->secret, 32), "session secret");
    TRY(w, km_session_derive(w->ctx, w->secret, &w->session), "derive session keys");
    for (int u = 0; u < n_users; u++) {
        TRY(w, km_uuid_v7(&w->users[u], 1700000000000ull + (uint64_t)u), "user id");
        w->assign[u] = (uint16_t)(u % n_enclaves);
        TRY(w, km_devnet_keypair(w->ctx, w->seckeys[u], w->pubkeys[u], NULL), "participant key");
        TRY(w, km_devnet_keypair(w->ctx, w->auth_sec[u], NULL, w->auth_x[u]), "auth key");
    }
    km_tweak_bip86(&w->tweak);
out:
    return err;
}

km_err km_rounds_note_R(km_rounds_world *w, const unsigned char r32[32]) {
    for (size_t i = 0; i < w->n_seen_R; i++)
        if (memcmp(w->seen_R[i], r32, 32) == 0) {
            w->detail = "nonce point R repeated";
            return KM_ERR_NONCE_REUSE;
        }
    if (w->n_seen_R == w->cap_seen_R) {
        size_t cap = w->cap_seen_R ? 2 * w->cap_seen_R : 64;
        unsigned char(*p)[32] = realloc(w->seen_R, cap * 32);
        if (!p) {
            w->detail = "out of memory";
            return KM_ERR_NOMEM;
        }
        w->seen_R = p;
        w->cap_seen_R = cap;
    }
    memcpy(w->seen_R[w->n_seen_R++], r32, 32);
    return KM_OK;
}

static int contains(const km_buf *log, const unsigned char *secret, size_t n) {
    char hex[65];
    if (n > 32 || km_hex_encode(hex, sizeof hex, secret, n) != KM_OK) return 1; /* fail closed */
    int found = 0;
    for (size_t off = 0; !found && off + 2 * n <= log->len; off++)
        found = memcmp(log->data + off, hex, 2 * n) == 0;
    for (size_t off = 0; !found && off + n <= log->len; off++)
        found = memcmp(log->data + off, secret, n) == 0;
    km_wipe(hex, sizeof hex);
    return found;
}

km_err km_rounds_logs_clean(km_rounds_world *w) {
    km_err err = KM_OK;
    km_buf log;
    km_buf_init(&log);
    for (int i = 0; i < w->n_enclaves; i++) {
        char path[320];
        snprintf(path, sizeof path, "%s/enclave.log", w->enc[i].dir);
        km_buf_free(&log);
        FILE *f = fopen(path, "rb");
        if (!f) FAIL(w, KM_ERR_IO, "enclave log missing");
        unsigned char buf[4096];
        size_t n;
        while (!err && (n = fread(buf, 1, sizeof buf, f)) > 0)
            err = km_buf_put(&log, buf, n);
        fclose(f);
        if (err) FAIL(w, err, "read enclave log");
        if (log.len == 0) FAIL(w, KM_ERR_IO, "enclave log empty"); /* the log exists and was written to */
        if (contains(&log, w->secret, 32)) FAIL(w, KM_ERR_STATE, "session secret in an enclave log");
        for (int u = 0; u < w->n_users; u++) {
            if (contains(&log, w->seckeys[u], 32)) FAIL(w, KM_ERR_STATE, "secret key in an enclave log");
            if (contains(&log, w->auth_sec[u], 32)) FAIL(w, KM_ERR_STATE, "auth key in an enclave log");
        }
    }
out:
    km_buf_free(&log);
    return err;
}

void km_rounds_stop(km_rounds_world *w) {
    free(w->seen_R);
    w->seen_R = NULL;
    for (int i = 0; i < w->n_enclaves; i++) {
        km_enclave_conn_close(&w->conn[i]);
        km_devnet_destroy(&w->enc[i]);
    }
    for (int u = 0; u < KM_ROUNDS_MAX_USERS; u++)
        km_buf_free(&w->records[u]);
    km_session_free(w->session);
    w->session = NULL;
    km_wipe(w->seckeys, sizeof w->seckeys);
    km_wipe(w->auth_sec, sizeof w->auth_sec);
    km_wipe(w->secret, sizeof w->secret);
    km_ctx_destroy(w->ctx);
    w->ctx = NULL;
}

km_err km_rounds_keygen(km_rounds_world *w) {
    km_keygen_init init;
    memset(&init, 0, sizeof init);
    memcpy(init.session_secret, w->secret, 32);
    unsigned char pubs[KM_ROUNDS_MAX_ENCLAVES][33];
    for (int i = 0; i < w->n_enclaves; i++)
        memcpy(pubs[i], w->enc[i].pub, 33);
    init.n_enclaves = (uint16_t)w->n_enclaves;
    init.enclave_pubs = pubs;
    init.n_participants = (uint16_t)w->n_users;
    init.user_ids = w->users;
    init.enclave_index = w->assign;
    init.n_subsets = w->n_subsets;
    init.subsets = w->subsets;
    init.tweak = w->tweak;
    km_buf pt, body, blob, out;
    km_buf_init(&pt);
    km_buf_init(&out);
    km_buf_init(&blob);
    km_buf_init(&body);
    unsigned char res[4096];
    unsigned char rp[KM_REGISTRATION_LEN];
    km_registration reg;
    km_err err;
    TRY(w, km_keygen_init_encode(&init, &pt), "encode keygen init");
    for (int i = 0; i < w->n_enclaves; i++) {
        km_ad ad;
        km_buf_free(&blob);
        km_buf_free(&body);
        TRY(w, km_ad_build(&ad, KM_AD_KEYGEN_INIT, &w->keygen_id, w->enc[i].pub, 33), "keygen init AD");
        TRY(w, km_ecies_seal(w->ctx, w->enc[i].pub, ad.bytes, ad.len, pt.data, pt.len, &blob),
            "seal keygen init");
        TRY(w, km_buf_put(&body, w->keygen_id.b, 16), "build body");
        TRY(w, km_rounds_put_vbytes(&body, blob.data, blob.len), "build body");
        TRY(w, call_ok(w, i, KM_CMD_KEYGEN_INIT, &body, NULL), "KEYGEN_INIT");
    }
    for (int u = 0; u < w->n_users; u++) {
        memcpy(reg.session_secret, w->secret, 32);
        memcpy(reg.seckey, w->seckeys[u], 32);
        memcpy(reg.auth_pub, w->auth_x[u], 32);
        reg.flags = w->flags[u];
        km_registration_encode(&reg, rp);
        km_wipe(&reg, sizeof reg);
        km_ad ad;
        int i = w->assign[u];
        km_buf_free(&blob);
        km_buf_free(&body);
        TRY(w, km_ad_build(&ad, KM_AD_REGISTER, &w->keygen_id, w->users[u].b, 16), "register AD");
        TRY(w, km_ecies_seal(w->ctx, w->enc[i].pub, ad.bytes, ad.len, rp, sizeof rp, &blob),
            "seal registration");
        km_wipe(rp, sizeof rp);
        TRY(w, km_buf_put(&body, w->keygen_id.b, 16), "build body");
        TRY(w, km_buf_put(&body, w->users[u].b, 16), "build body");
        TRY(w, km_rounds_put_vbytes(&body, blob.data, blob.len), "build body");
        TRY(w, call_ok(w, i, KM_CMD_KEYGEN_REGISTER, &body, &w->records[u]), "KEYGEN_REGISTER");
    }
    km_buf_free(&body);
    TRY(w, km_buf_put(&body, w->keygen_id.b, 16), "build body");
    TRY(w, km_buf_put_u16(&body, (uint16_t)w->n_users), "build body");
    for (int u = 0; u < w->n_users; u++)
        TRY(w, km_rounds_put_vbytes(&body, w->records[u].data, w->records[u].len), "build body");
    for (int i = 0; i < w->n_enclaves; i++) {
        TRY(w, call_ok(w, i, KM_CMD_KEYGEN_FINALIZE, &body, &out), "KEYGEN_FINALIZE");
        size_t rl;
        km_ad ad;
        TRY(w, km_ad_build(&ad, KM_AD_KEYGEN_RESULT, &w->keygen_id, NULL, 0), "keygen result AD");
        TRY(w, km_session_open(w->session, ad.bytes, ad.len, out.data, out.len, res, sizeof res, &rl),
            "open keygen result");
        if (rl < 64) FAIL(w, KM_ERR_PARSE, "keygen result too short");
        /* The client trusts the aggregate only after recomputing it. */
        size_t bad;
        memset(&w->keyagg, 0, sizeof w->keyagg);
        TRY(w, km_musig_key_agg(w->ctx, &w->keyagg, &w->pubkeys[0][0], (size_t)w->n_users, &bad),
            "client key aggregation");
        TRY(w, km_musig_keyagg_tweak(w->ctx, &w->keyagg, &w->tweak), "client tweak");
        if (memcmp(res, w->keyagg.agg_xonly, 32) != 0)
            FAIL(w, KM_ERR_VERIFY, "enclave aggregate key differs");
        if (memcmp(res + 32, w->keyagg.output_xonly, 32) != 0)
            FAIL(w, KM_ERR_VERIFY, "enclave output key differs");
    }
out:
    km_wipe(&reg, sizeof reg);
    km_wipe(rp, sizeof rp);
    km_wipe(res, sizeof res);
    km_buf_free(&pt);
    km_buf_free(&blob);
    km_buf_free(&body);
    km_buf_free(&out);
    return err;
}

km_err km_rounds_sign_init_body(km_rounds_world *w, const km_uuid *signing_id, const km_sign_item *items,
                                size_t n, km_buf *body) {
    km_buf pt, sealed;
    km_ad ad;
    km_buf_init(&pt);
    km_buf_init(&sealed);
    km_buf_init(body);
    km_err err;
    TRY(w, km_sign_items_encode(items, n, &pt), "encode items");
    TRY(w, km_ad_build(&ad, KM_AD_SIGNING_ITEMS, signing_id, w->keygen_id.b, 16), "items AD");
    TRY(w, km_session_seal(w->session, ad.bytes, ad.len, pt.data, pt.len, &sealed), "seal items");
    TRY(w, km_buf_put(body, w->keygen_id.b, 16), "build body");
    TRY(w, km_buf_put(body, signing_id->b, 16), "build body");
    TRY(w, km_rounds_put_vbytes(body, sealed.data, sealed.len), "build body");
out:
    km_buf_free(&pt);
    km_buf_free(&sealed);
    return err;
}

km_err km_rounds_approval(km_rounds_world *w, int u, const km_uuid *signing_id, const km_sign_item *items,
                          size_t n, unsigned char sig[64]) {
    km_buf pt;
    km_buf_init(&pt);
    unsigned char digest[32], aux[32];
    secp256k1_keypair kp;
    memset(&kp, 0, sizeof kp);
    km_err err;
    if (u < 0 || u >= w->n_users) FAIL(w, KM_ERR_ARG, "no such user");
    TRY(w, km_sign_items_encode(items, n, &pt), "encode items");
    km_sign_approval_digest(digest, signing_id, &w->keygen_id, pt.data, pt.len);
    TRY(w, km_random_bytes(aux, 32), "randomness");
    if (!secp256k1_keypair_create(km_ctx_secp(w->ctx), &kp, w->auth_sec[u]))
        FAIL(w, KM_ERR_INVALID_KEY, "auth keypair");
    if (!secp256k1_schnorrsig_sign32(km_ctx_secp(w->ctx), sig, digest, &kp, aux))
        FAIL(w, KM_ERR_CRYPTO, "approval signature");
out:
    km_wipe(&kp, sizeof kp);
    km_buf_free(&pt);
    return err;
}

km_err km_rounds_records_add(km_rounds_records *r, const km_buf *resp) {
    km_cursor c;
    uint16_t n;
    km_cursor_init(&c, resp->data, resp->len);
    km_err err = km_cursor_get_u16(&c, &n);
    for (uint16_t i = 0; !err && i < n; i++) {
        uint32_t len;
        const unsigned char *p;
        err = km_cursor_get_u32(&c, &len);
        if (!err) err = km_cursor_get_view(&c, &p, len);
        if (!err) err = km_rounds_put_vbytes(&r->list, p, len);
        if (!err && r->n == UINT16_MAX) err = KM_ERR_RANGE;
        if (!err) r->n++;
    }
    if (!err) err = km_cursor_finish(&c);
    return err;
}

km_err km_rounds_records_body(const km_uuid *signing_id, const km_rounds_records *r, km_buf *body) {
    km_buf_init(body);
    km_err err = km_buf_put(body, signing_id->b, 16);
    if (!err) err = km_buf_put_u16(body, r->n);
    if (!err) err = km_buf_put(body, r->list.data, r->list.len);
    return err;
}

km_err km_rounds_open_result(km_rounds_world *w, const km_uuid *signing_id, const km_buf *sealed,
                             km_buf *pt) {
    km_ad ad;
    km_buf_init(pt);
    km_err err;
    TRY(w, km_ad_build(&ad, KM_AD_SIGNING_RESULT, signing_id, NULL, 0), "result AD");
    static const unsigned char zero[256];
    for (size_t left = sealed->len; left > 0;) {
        size_t k = left < sizeof zero ? left : sizeof zero;
        TRY(w, km_buf_put(pt, zero, k), "result buffer");
        left -= k;
    }
    size_t got = 0;
    err = km_session_open(w->session, ad.bytes, ad.len, sealed->data, sealed->len, pt->data, pt->len, &got);
    pt->len = err ? 0 : got;
    if (err) w->detail = "open signing result";
out:
    return err;
}

km_err km_rounds_expected_key(km_rounds_world *w, const km_sign_item *it, unsigned char out32[32]) {
    unsigned char keys[KM_ROUNDS_MAX_USERS][33];
    size_t n = 0, bad;
    const km_subset_def *sub = NULL;
    km_err err;
    for (uint16_t s = 0; it->has_subset && s < w->n_subsets; s++)
        if (memcmp(w->subsets[s].id.b, it->subset_id.b, 16) == 0) sub = &w->subsets[s];
    if (it->has_subset && !sub) FAIL(w, KM_ERR_NOT_FOUND, "item names an unknown subset");
    if (sub) {
        if (sub->n > KM_ROUNDS_MAX_USERS) FAIL(w, KM_ERR_RANGE, "subset too large");
        for (uint16_t i = 0; i < sub->n; i++) {
            if (sub->members[i] >= w->n_users) FAIL(w, KM_ERR_RANGE, "subset member out of range");
            memcpy(keys[n++], w->pubkeys[sub->members[i]], 33);
        }
    } else {
        for (int u = 0; u < w->n_users; u++)
            memcpy(keys[n++], w->pubkeys[u], 33);
    }
    km_musig_keyagg ka;
    TRY(w, km_musig_key_agg(w->ctx, &ka, &keys[0][0], n, &bad), "expected key aggregation");
    TRY(w, km_musig_keyagg_tweak(w->ctx, &ka, it->own_tweak ? &it->tweak : &w->tweak), "expected key tweak");
    memcpy(out32, ka.output_xonly, 32);
out:
    return err;
}

km_err km_rounds_check_result(km_rounds_world *w, const km_sign_item *items, const km_rounds_secrets *secrets,
                              size_t n, const km_buf *result) {
    km_cursor c;
    uint32_t count;
    unsigned char t[32];
    km_err err;
    km_cursor_init(&c, result->data, result->len);
    TRY(w, km_cursor_get_u32(&c, &count), "result count");
    if (count != n) FAIL(w, KM_ERR_PARSE, "result has another item count");
    for (size_t i = 0; i < n; i++) {
        const km_sign_item *it = &items[i];
        km_uuid id;
        uint8_t type;
        uint16_t units;
        TRY(w, km_cursor_get_bytes(&c, id.b, 16), "result item id");
        if (memcmp(id.b, it->id.b, 16) != 0) FAIL(w, KM_ERR_PARSE, "result item id differs");
        TRY(w, km_cursor_get_u8(&c, &type), "result item type");
        if (type != it->adaptor) FAIL(w, KM_ERR_PARSE, "result item type differs");
        TRY(w, km_cursor_get_u16(&c, &units), "result item units");
        if (units != km_sign_item_units(it)) FAIL(w, KM_ERR_PARSE, "result item unit count differs");
        if (type != KM_ADAPTOR_NONE && !secrets) FAIL(w, KM_ERR_ARG, "adaptor item without secrets");
        unsigned char Q[32];
        TRY(w, km_rounds_expected_key(w, it, Q), w->detail);
        for (uint16_t v = 0; v < units; v++) {
            unsigned char sig[64], T[33], final[64], back[32];
            TRY(w, km_cursor_get_bytes(&c, sig, 64), "result signature");
            TRY(w, km_cursor_get_bytes(&c, T, 33), "result adaptor point");
            TRY(w, km_rounds_note_R(w, sig), w->detail);
            if (type == KM_ADAPTOR_NONE) {
                TRY(w, km_single_schnorr_verify(w->ctx, sig, it->msg, 32, Q), "signature does not verify");
                continue;
            }
            if (km_single_schnorr_verify(w->ctx, sig, it->msg, 32, Q) != KM_ERR_VERIFY)
                FAIL(w, KM_ERR_VERIFY, "pre-signature verifies as a signature");
            TRY(w, km_adaptor_presig_verify(w->ctx, sig, T, Q, it->msg), "pre-signature does not verify");
            if (type == KM_ADAPTOR_AND) {
                const unsigned char *ss[KM_MAX_ADAPTOR_POINTS];
                for (uint16_t p = 0; p < it->n_points; p++)
                    ss[p] = secrets[i].t[p];
                TRY(w, km_adaptor_secret_sum(w->ctx, t, ss, it->n_points), "adaptor secret sum");
            } else {
                memcpy(t, secrets[i].t[type == KM_ADAPTOR_OR ? v : 0], 32);
            }
            TRY(w, km_adaptor_adapt(w->ctx, final, sig, t, Q, it->msg), "adapt");
            TRY(w, km_single_schnorr_verify(w->ctx, final, it->msg, 32, Q),
                "adapted signature does not verify");
            TRY(w, km_adaptor_extract(w->ctx, back, sig, final, T), "extract");
            if (!km_ct_equal(back, t, 32)) FAIL(w, KM_ERR_VERIFY, "extracted secret differs");
            km_wipe(back, sizeof back);
        }
    }
    TRY(w, km_cursor_finish(&c), "trailing bytes in result");
out:
    km_wipe(t, sizeof t);
    return err;
}

km_err km_rounds_sign(km_rounds_world *w, const km_uuid *signing_id, const km_sign_item *items, size_t n,
                      km_buf *result, km_err *status) {
    km_buf body, out;
    km_buf_init(&out);
    km_buf_init(&body);
    km_buf_init(result);
    km_rounds_records nonces = {0}, partials = {0};
    km_buf_init(&nonces.list);
    km_buf_init(&partials.list);
    km_err st = KM_OK, err;
    TRY(w, km_rounds_sign_init_body(w, signing_id, items, n, &body), w->detail);
    for (int i = 0; !st && i < w->n_enclaves; i++) {
        TRY(w, km_rounds_call(w, i, KM_CMD_SIGN_INIT, &body, &out, &st), w->detail);
        if (!st) TRY(w, km_rounds_records_add(&nonces, &out), "malformed SIGN_INIT response");
    }
    km_buf_free(&body);
    for (int u = 0; !st && u < w->n_users; u++) {
        if (!(w->flags[u] & KM_FLAG_REQUIRE_APPROVAL)) continue;
        unsigned char sig[64];
        TRY(w, km_rounds_approval(w, u, signing_id, items, n, sig), w->detail);
        km_buf_free(&body);
        TRY(w, km_buf_put(&body, signing_id->b, 16), "build body");
        TRY(w, km_buf_put(&body, w->users[u].b, 16), "build body");
        TRY(w, km_buf_put(&body, sig, 64), "build body");
        TRY(w, km_rounds_call(w, w->assign[u], KM_CMD_SIGN_APPROVE, &body, NULL, &st), w->detail);
    }
    km_buf_free(&body);
    if (!st) {
        TRY(w, km_rounds_records_body(signing_id, &nonces, &body), "build body");
        for (int i = 0; !st && i < w->n_enclaves; i++) {
            TRY(w, km_rounds_call(w, i, KM_CMD_SIGN_PARTIAL, &body, &out, &st), w->detail);
            if (!st) TRY(w, km_rounds_records_add(&partials, &out), "malformed SIGN_PARTIAL response");
        }
        km_buf_free(&body);
    }
    if (!st) {
        TRY(w, km_rounds_records_body(signing_id, &nonces, &body), "build body");
        TRY(w, km_buf_put_u16(&body, partials.n), "build body");
        TRY(w, km_buf_put(&body, partials.list.data, partials.list.len), "build body");
        TRY(w, km_rounds_call(w, 0, KM_CMD_SIGN_FINALIZE, &body, &out, &st), w->detail);
    }
    if (!st) {
        km_buf_free(result);
        st = km_rounds_open_result(w, signing_id, &out, result);
    }
    if (st && !w->detail) w->detail = "enclave refused";
out:
    *status = st;
    km_buf_free(&body);
    km_buf_free(&out);
    km_buf_free(&nonces.list);
    km_buf_free(&partials.list);
    return err;
}
