/* flows.c — see flows.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "keymeld/aead.h"
#include "keymeld/ecies.h"
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

void flow_stop(flow_world *w) {
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
