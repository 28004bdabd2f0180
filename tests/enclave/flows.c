/* flows.c — see flows.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/ecies.h"
#include "keymeld/hex.h"
#include "keymeld/single.h"
#include "tests/enclave/flows.h"

void flow_put_vbytes(km_buf *b, const unsigned char *p, size_t n) {
    assert_int_equal(km_buf_put_u32(b, (uint32_t)n), KM_OK);
    assert_int_equal(km_buf_put(b, p, n), KM_OK);
}

km_err flow_call(flow_world *w, int i, uint16_t cmd, const km_buf *body, km_buf *out) {
    km_msg resp;
    assert_int_equal(
        km_enclave_conn_call(&w->conn[i], cmd, body ? body->data : NULL, body ? body->len : 0, &resp), KM_OK);
    if (out) {
        km_buf_free(out);
        assert_int_equal(km_buf_put(out, resp.body, resp.body_len), KM_OK);
    }
    if (resp.code != KM_OK) {
        char detail[300];
        if (km_msg_error_detail(&resp, detail, sizeof detail) == KM_OK)
            fprintf(stderr, "  enclave %d: %s: %s\n", i, km_err_name((km_err)resp.code), detail);
    }
    return (km_err)resp.code;
}

int flow_start(flow_world *w, int n_enclaves, int n_users) {
    memset(w, 0, sizeof *w);
    if (km_ctx_create(&w->ctx) != KM_OK) return -1;
    w->n_enclaves = n_enclaves;
    w->n_users = n_users;
    for (int i = 0; i < n_enclaves; i++) {
        if (km_test_enclave_start(w->ctx, &w->enc[i]) != 0) return -1;
        if (km_test_enclave_connect(w->ctx, &w->enc[i], &w->conn[i]) != KM_OK) return -1;
    }
    if (km_uuid_v7(&w->keygen_id, 1700000000000ull) || km_random_bytes(w->secret, 32)) return -1;
    if (km_session_derive(w->ctx, w->secret, &w->session) != KM_OK) return -1;
    for (int u = 0; u < n_users; u++) {
        if (km_uuid_v7(&w->users[u], 1700000000000ull + (uint64_t)u)) return -1;
        w->assign[u] = (uint16_t)(u % n_enclaves);
        km_test_keypair(w->ctx, w->seckeys[u], w->pubkeys[u], NULL);
        km_test_keypair(w->ctx, w->auth_sec[u], NULL, w->auth_x[u]);
        km_buf_init(&w->records[u]);
    }
    km_tweak_bip86(&w->tweak);
    return 0;
}

void flow_note_R(flow_world *w, const unsigned char r32[32]) {
    for (size_t i = 0; i < w->n_seen_R; i++)
        assert_memory_not_equal(w->seen_R[i], r32, 32);
    if (w->n_seen_R == w->cap_seen_R) {
        w->cap_seen_R = w->cap_seen_R ? 2 * w->cap_seen_R : 64;
        w->seen_R = realloc(w->seen_R, w->cap_seen_R * 32);
        assert_non_null(w->seen_R);
    }
    memcpy(w->seen_R[w->n_seen_R++], r32, 32);
}

static void assert_not_in(const km_buf *log, const unsigned char *secret, size_t n) {
    char hex[65];
    assert_int_equal(km_hex_encode(hex, sizeof hex, secret, n), KM_OK);
    for (size_t off = 0; off + 2 * n <= log->len; off++)
        assert_memory_not_equal(log->data + off, hex, 2 * n);
    for (size_t off = 0; off + n <= log->len; off++)
        assert_memory_not_equal(log->data + off, secret, n);
}

void flow_assert_logs_clean(flow_world *w) {
    for (int i = 0; i < w->n_enclaves; i++) {
        char path[320];
        snprintf(path, sizeof path, "%s/enclave.log", w->enc[i].dir);
        km_buf log;
        km_buf_init(&log);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        unsigned char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            assert_int_equal(km_buf_put(&log, buf, n), KM_OK);
        fclose(f);
        assert_true(log.len > 0); /* the log exists and was written to */
        assert_not_in(&log, w->secret, 32);
        for (int u = 0; u < w->n_users; u++) {
            assert_not_in(&log, w->seckeys[u], 32);
            assert_not_in(&log, w->auth_sec[u], 32);
        }
        km_buf_free(&log);
    }
}

void flow_stop(flow_world *w) {
    free(w->seen_R);
    for (int i = 0; i < w->n_enclaves; i++) {
        km_enclave_conn_close(&w->conn[i]);
        km_test_enclave_destroy(&w->enc[i]);
    }
    for (int u = 0; u < w->n_users; u++)
        km_buf_free(&w->records[u]);
    km_session_free(w->session);
    km_wipe(w->seckeys, sizeof w->seckeys);
    km_ctx_destroy(w->ctx);
}

int flow_keygen(flow_world *w) {
    km_keygen_init init;
    memset(&init, 0, sizeof init);
    memcpy(init.session_secret, w->secret, 32);
    unsigned char pubs[FLOW_MAX_ENCLAVES][33];
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
    if (km_keygen_init_encode(&init, &pt) != KM_OK) return -1;
    for (int i = 0; i < w->n_enclaves; i++) {
        km_ad ad;
        km_buf_init(&blob);
        km_buf_init(&body);
        assert_int_equal(km_ad_build(&ad, KM_AD_KEYGEN_INIT, &w->keygen_id, w->enc[i].pub, 33), KM_OK);
        assert_int_equal(km_ecies_seal(w->ctx, w->enc[i].pub, ad.bytes, ad.len, pt.data, pt.len, &blob),
                         KM_OK);
        assert_int_equal(km_buf_put(&body, w->keygen_id.b, 16), KM_OK);
        flow_put_vbytes(&body, blob.data, blob.len);
        assert_int_equal(flow_call(w, i, KM_CMD_KEYGEN_INIT, &body, NULL), KM_OK);
        km_buf_free(&blob);
        km_buf_free(&body);
    }
    km_buf_free(&pt);
    for (int u = 0; u < w->n_users; u++) {
        km_registration reg;
        memcpy(reg.session_secret, w->secret, 32);
        memcpy(reg.seckey, w->seckeys[u], 32);
        memcpy(reg.auth_pub, w->auth_x[u], 32);
        reg.flags = w->flags[u];
        unsigned char rp[KM_REGISTRATION_LEN];
        km_registration_encode(&reg, rp);
        km_wipe(&reg, sizeof reg);
        km_ad ad;
        int i = w->assign[u];
        km_buf_init(&blob);
        km_buf_init(&body);
        assert_int_equal(km_ad_build(&ad, KM_AD_REGISTER, &w->keygen_id, w->users[u].b, 16), KM_OK);
        assert_int_equal(km_ecies_seal(w->ctx, w->enc[i].pub, ad.bytes, ad.len, rp, sizeof rp, &blob), KM_OK);
        km_wipe(rp, sizeof rp);
        assert_int_equal(km_buf_put(&body, w->keygen_id.b, 16), KM_OK);
        assert_int_equal(km_buf_put(&body, w->users[u].b, 16), KM_OK);
        flow_put_vbytes(&body, blob.data, blob.len);
        assert_int_equal(flow_call(w, i, KM_CMD_KEYGEN_REGISTER, &body, &w->records[u]), KM_OK);
        km_buf_free(&blob);
        km_buf_free(&body);
    }
    km_buf_init(&body);
    assert_int_equal(km_buf_put(&body, w->keygen_id.b, 16), KM_OK);
    assert_int_equal(km_buf_put_u16(&body, (uint16_t)w->n_users), KM_OK);
    for (int u = 0; u < w->n_users; u++)
        flow_put_vbytes(&body, w->records[u].data, w->records[u].len);
    for (int i = 0; i < w->n_enclaves; i++) {
        assert_int_equal(flow_call(w, i, KM_CMD_KEYGEN_FINALIZE, &body, &out), KM_OK);
        unsigned char res[4096];
        size_t rl;
        km_ad ad;
        assert_int_equal(km_ad_build(&ad, KM_AD_KEYGEN_RESULT, &w->keygen_id, NULL, 0), KM_OK);
        assert_int_equal(
            km_session_open(w->session, ad.bytes, ad.len, out.data, out.len, res, sizeof res, &rl), KM_OK);
        /* The client trusts the aggregate only after recomputing it. */
        size_t bad;
        memset(&w->keyagg, 0, sizeof w->keyagg);
        assert_int_equal(km_musig_key_agg(w->ctx, &w->keyagg, &w->pubkeys[0][0], (size_t)w->n_users, &bad),
                         KM_OK);
        assert_int_equal(km_musig_keyagg_tweak(w->ctx, &w->keyagg, &w->tweak), KM_OK);
        assert_memory_equal(res, w->keyagg.agg_xonly, 32);
        assert_memory_equal(res + 32, w->keyagg.output_xonly, 32);
    }
    km_buf_free(&body);
    km_buf_free(&out);
    return 0;
}

static void items_plaintext(const km_sign_item *items, size_t n, km_buf *pt) {
    km_buf_init(pt);
    assert_int_equal(km_sign_items_encode(items, n, pt), KM_OK);
}

void flow_sign_init_body(flow_world *w, const km_uuid *signing_id, const km_sign_item *items, size_t n,
                         km_buf *body) {
    km_buf pt, sealed;
    km_ad ad;
    items_plaintext(items, n, &pt);
    km_buf_init(&sealed);
    assert_int_equal(km_ad_build(&ad, KM_AD_SIGNING_ITEMS, signing_id, w->keygen_id.b, 16), KM_OK);
    assert_int_equal(km_session_seal(w->session, ad.bytes, ad.len, pt.data, pt.len, &sealed), KM_OK);
    km_buf_init(body);
    assert_int_equal(km_buf_put(body, w->keygen_id.b, 16), KM_OK);
    assert_int_equal(km_buf_put(body, signing_id->b, 16), KM_OK);
    flow_put_vbytes(body, sealed.data, sealed.len);
    km_buf_free(&pt);
    km_buf_free(&sealed);
}

void flow_approval(flow_world *w, int u, const km_uuid *signing_id, const km_sign_item *items, size_t n,
                   unsigned char sig[64]) {
    km_buf pt;
    items_plaintext(items, n, &pt);
    unsigned char digest[32], aux[32];
    km_sign_approval_digest(digest, signing_id, &w->keygen_id, pt.data, pt.len);
    km_buf_free(&pt);
    secp256k1_keypair kp;
    assert_int_equal(km_random_bytes(aux, 32), KM_OK);
    assert_true(secp256k1_keypair_create(km_ctx_secp(w->ctx), &kp, w->auth_sec[u]));
    assert_true(secp256k1_schnorrsig_sign32(km_ctx_secp(w->ctx), sig, digest, &kp, aux));
}

void flow_records_add(flow_records *r, const km_buf *resp) {
    km_cursor c;
    uint16_t n;
    km_cursor_init(&c, resp->data, resp->len);
    assert_int_equal(km_cursor_get_u16(&c, &n), KM_OK);
    for (uint16_t i = 0; i < n; i++) {
        uint32_t len;
        const unsigned char *p;
        assert_int_equal(km_cursor_get_u32(&c, &len), KM_OK);
        assert_int_equal(km_cursor_get_view(&c, &p, len), KM_OK);
        flow_put_vbytes(&r->list, p, len);
        r->n++;
    }
    assert_int_equal(km_cursor_finish(&c), KM_OK);
}

void flow_records_body(const km_uuid *signing_id, const flow_records *r, km_buf *body) {
    km_buf_init(body);
    assert_int_equal(km_buf_put(body, signing_id->b, 16), KM_OK);
    assert_int_equal(km_buf_put_u16(body, r->n), KM_OK);
    assert_int_equal(km_buf_put(body, r->list.data, r->list.len), KM_OK);
}

km_err flow_open_result(flow_world *w, const km_uuid *signing_id, const km_buf *sealed, km_buf *pt) {
    km_ad ad;
    assert_int_equal(km_ad_build(&ad, KM_AD_SIGNING_RESULT, signing_id, NULL, 0), KM_OK);
    km_buf_init(pt);
    unsigned char zero = 0;
    for (size_t i = 0; i < sealed->len; i++)
        assert_int_equal(km_buf_put(pt, &zero, 1), KM_OK);
    size_t got = 0;
    km_err err =
        km_session_open(w->session, ad.bytes, ad.len, sealed->data, sealed->len, pt->data, pt->len, &got);
    pt->len = got;
    return err;
}

void flow_expected_key(flow_world *w, const km_sign_item *it, unsigned char out32[32]) {
    unsigned char keys[FLOW_MAX_USERS][33];
    size_t n = 0, bad;
    const km_subset_def *sub = NULL;
    for (uint16_t s = 0; it->has_subset && s < w->n_subsets; s++)
        if (memcmp(w->subsets[s].id.b, it->subset_id.b, 16) == 0) sub = &w->subsets[s];
    assert_true(!it->has_subset || sub);
    if (sub)
        for (uint16_t i = 0; i < sub->n; i++)
            memcpy(keys[n++], w->pubkeys[sub->members[i]], 33);
    else
        for (int u = 0; u < w->n_users; u++)
            memcpy(keys[n++], w->pubkeys[u], 33);
    km_musig_keyagg ka;
    assert_int_equal(km_musig_key_agg(w->ctx, &ka, &keys[0][0], n, &bad), KM_OK);
    assert_int_equal(km_musig_keyagg_tweak(w->ctx, &ka, it->own_tweak ? &it->tweak : &w->tweak), KM_OK);
    memcpy(out32, ka.output_xonly, 32);
}

void flow_check_result(flow_world *w, const km_sign_item *items, const flow_secrets *secrets, size_t n,
                       const km_buf *result) {
    km_cursor c;
    uint32_t count;
    km_cursor_init(&c, result->data, result->len);
    assert_int_equal(km_cursor_get_u32(&c, &count), KM_OK);
    assert_int_equal(count, n);
    for (size_t i = 0; i < n; i++) {
        const km_sign_item *it = &items[i];
        km_uuid id;
        uint8_t type;
        uint16_t units;
        assert_int_equal(km_cursor_get_bytes(&c, id.b, 16), KM_OK);
        assert_memory_equal(id.b, it->id.b, 16);
        assert_int_equal(km_cursor_get_u8(&c, &type), KM_OK);
        assert_int_equal(type, it->adaptor);
        assert_int_equal(km_cursor_get_u16(&c, &units), KM_OK);
        assert_int_equal(units, km_sign_item_units(it));
        unsigned char Q[32];
        flow_expected_key(w, it, Q);
        for (uint16_t v = 0; v < units; v++) {
            unsigned char sig[64], T[33], final[64], t[32], back[32];
            assert_int_equal(km_cursor_get_bytes(&c, sig, 64), KM_OK);
            assert_int_equal(km_cursor_get_bytes(&c, T, 33), KM_OK);
            flow_note_R(w, sig);
            if (type == KM_ADAPTOR_NONE) {
                assert_int_equal(km_single_schnorr_verify(w->ctx, sig, it->msg, 32, Q), KM_OK);
                continue;
            }
            assert_int_equal(km_single_schnorr_verify(w->ctx, sig, it->msg, 32, Q), KM_ERR_VERIFY);
            assert_int_equal(km_adaptor_presig_verify(w->ctx, sig, T, Q, it->msg), KM_OK);
            if (type == KM_ADAPTOR_AND) {
                const unsigned char *ss[KM_MAX_ADAPTOR_POINTS];
                for (uint16_t p = 0; p < it->n_points; p++)
                    ss[p] = secrets[i].t[p];
                assert_int_equal(km_adaptor_secret_sum(w->ctx, t, ss, it->n_points), KM_OK);
            } else {
                memcpy(t, secrets[i].t[type == KM_ADAPTOR_OR ? v : 0], 32);
            }
            assert_int_equal(km_adaptor_adapt(w->ctx, final, sig, t, Q, it->msg), KM_OK);
            assert_int_equal(km_single_schnorr_verify(w->ctx, final, it->msg, 32, Q), KM_OK);
            assert_int_equal(km_adaptor_extract(w->ctx, back, sig, final, T), KM_OK);
            assert_memory_equal(back, t, 32);
        }
    }
    assert_int_equal(km_cursor_finish(&c), KM_OK);
}

km_err flow_sign(flow_world *w, const km_uuid *signing_id, const km_sign_item *items, size_t n,
                 km_buf *result) {
    km_buf body, out;
    km_buf_init(&out);
    flow_records nonces = {0}, partials = {0};
    km_buf_init(&nonces.list);
    km_buf_init(&partials.list);
    flow_sign_init_body(w, signing_id, items, n, &body);
    km_err err = KM_OK;
    for (int i = 0; !err && i < w->n_enclaves; i++) {
        err = flow_call(w, i, KM_CMD_SIGN_INIT, &body, &out);
        if (!err) flow_records_add(&nonces, &out);
    }
    km_buf_free(&body);
    for (int u = 0; !err && u < w->n_users; u++) {
        if (!(w->flags[u] & KM_FLAG_REQUIRE_APPROVAL)) continue;
        unsigned char sig[64];
        flow_approval(w, u, signing_id, items, n, sig);
        km_buf_init(&body);
        assert_int_equal(km_buf_put(&body, signing_id->b, 16), KM_OK);
        assert_int_equal(km_buf_put(&body, w->users[u].b, 16), KM_OK);
        assert_int_equal(km_buf_put(&body, sig, 64), KM_OK);
        err = flow_call(w, w->assign[u], KM_CMD_SIGN_APPROVE, &body, NULL);
        km_buf_free(&body);
    }
    flow_records_body(signing_id, &nonces, &body);
    for (int i = 0; !err && i < w->n_enclaves; i++) {
        err = flow_call(w, i, KM_CMD_SIGN_PARTIAL, &body, &out);
        if (!err) flow_records_add(&partials, &out);
    }
    km_buf_free(&body);
    if (!err) {
        flow_records_body(signing_id, &nonces, &body);
        assert_int_equal(km_buf_put_u16(&body, partials.n), KM_OK);
        assert_int_equal(km_buf_put(&body, partials.list.data, partials.list.len), KM_OK);
        err = flow_call(w, 0, KM_CMD_SIGN_FINALIZE, &body, &out);
        km_buf_free(&body);
    }
    if (!err) err = flow_open_result(w, signing_id, &out, result);
    km_buf_free(&out);
    km_buf_free(&nonces.list);
    km_buf_free(&partials.list);
    return err;
}
