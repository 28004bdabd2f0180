/* test_enclave_signing.c — MuSig2 signing across real enclave processes:
 * regular, per-item tweak, subset and adaptor (Single/And/Or) items in one
 * batch; approvals enforced in the enclave; nonce-reuse and tampering
 * refused; a bad result never leaves an enclave. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <secp256k1_schnorrsig.h>

#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/single.h"
#include "tests/enclave/flows.h"

#define N_USERS 3

static flow_world W;

static int setup(void **state) {
    (void)state;
    if (flow_start(&W, 2, N_USERS) != 0) return -1;
    /* Subset {0, 2}, spanning both enclaves. */
    W.n_subsets = 1;
    W.subsets[0].n = 2;
    W.subset_members[0][0] = 0;
    W.subset_members[0][1] = 2;
    W.subsets[0].members = W.subset_members[0];
    if (km_uuid_v7(&W.subsets[0].id, 77)) return -1;
    W.flags[1] = KM_FLAG_REQUIRE_APPROVAL; /* user 1 must approve every batch */
    return flow_keygen(&W);
}

static int teardown(void **state) {
    (void)state;
    flow_assert_logs_clean(&W);
    flow_stop(&W);
    return 0;
}

static void make_item(km_sign_item *it, const char *msg) {
    memset(it, 0, sizeof *it);
    assert_int_equal(km_uuid_v7(&it->id, 1), KM_OK);
    km_sha256(it->msg, msg, strlen(msg));
}

static void random_secret(unsigned char t[32], unsigned char T[33]) {
    do
        assert_int_equal(km_random_bytes(t, 32), KM_OK);
    while (km_adaptor_point_from_secret(W.ctx, T, t) != KM_OK);
}

static void test_batch_all_modes(void **state) {
    (void)state;
    enum { N = 6 };
    km_sign_item items[N];
    flow_secrets secrets[N];
    make_item(&items[0], "regular, keygen default tweak (bip86)");
    make_item(&items[1], "own x-only tweak");
    items[1].own_tweak = 1;
    unsigned char tw[32];
    km_sha256(tw, "tweak", 5);
    km_tweak_xonly(&items[1].tweak, tw);
    make_item(&items[2], "subset {0,2}");
    items[2].has_subset = 1;
    items[2].subset_id = W.subsets[0].id;
    make_item(&items[3], "single adaptor");
    items[3].adaptor = KM_ADAPTOR_SINGLE;
    items[3].n_points = 1;
    random_secret(secrets[3].t[0], items[3].points[0]);
    make_item(&items[4], "and adaptor");
    items[4].adaptor = KM_ADAPTOR_AND;
    items[4].n_points = 2;
    random_secret(secrets[4].t[0], items[4].points[0]);
    random_secret(secrets[4].t[1], items[4].points[1]);
    make_item(&items[5], "or adaptor on a subset with its own tweak");
    items[5].adaptor = KM_ADAPTOR_OR;
    items[5].n_points = 2;
    items[5].has_subset = 1;
    items[5].subset_id = W.subsets[0].id;
    items[5].own_tweak = 1;
    km_tweak_none(&items[5].tweak);
    random_secret(secrets[5].t[0], items[5].points[0]);
    random_secret(secrets[5].t[1], items[5].points[1]);

    km_uuid sid;
    assert_int_equal(km_uuid_v7(&sid, 2), KM_OK);
    km_buf res;
    assert_int_equal(flow_sign(&W, &sid, items, N, &res), KM_OK);

    /* The client checks every result itself. */
    flow_check_result(&W, items, secrets, N, &res);
    km_buf_free(&res);
}

/* Runs init on both enclaves and returns the nonce records. */
static void init_all(const km_uuid *sid, const km_sign_item *items, size_t n, flow_records *nonces) {
    km_buf body, out;
    km_buf_init(&out);
    km_buf_init(&nonces->list);
    nonces->n = 0;
    flow_sign_init_body(&W, sid, items, n, &body);
    for (int i = 0; i < W.n_enclaves; i++) {
        assert_int_equal(flow_call(&W, i, KM_CMD_SIGN_INIT, &body, &out), KM_OK);
        flow_records_add(nonces, &out);
    }
    km_buf_free(&body);
    km_buf_free(&out);
}

static km_err approve(const km_uuid *sid, int u, const unsigned char sig[64]) {
    km_buf body;
    km_buf_init(&body);
    assert_int_equal(km_buf_put(&body, sid->b, 16), KM_OK);
    assert_int_equal(km_buf_put(&body, W.users[u].b, 16), KM_OK);
    assert_int_equal(km_buf_put(&body, sig, 64), KM_OK);
    km_err e = flow_call(&W, W.assign[u], KM_CMD_SIGN_APPROVE, &body, NULL);
    km_buf_free(&body);
    return e;
}

static void test_approval_enforced_by_enclave(void **state) {
    (void)state;
    km_sign_item item, other;
    make_item(&item, "pay 1 BTC to Alice");
    make_item(&other, "pay 1 BTC to Mallory");
    km_uuid sid;
    assert_int_equal(km_uuid_v7(&sid, 3), KM_OK);
    flow_records nonces;
    init_all(&sid, &item, 1, &nonces);
    km_buf body, out;
    km_buf_init(&out);
    flow_records_body(&sid, &nonces, &body);
    /* User 1 (enclave 1) has not approved: its enclave refuses to sign. */
    assert_int_equal(flow_call(&W, W.assign[1], KM_CMD_SIGN_PARTIAL, &body, NULL), KM_ERR_VERIFY);
    /* An approval of other items, or by another key, is refused. */
    unsigned char sig[64];
    flow_approval(&W, 1, &sid, &other, 1, sig);
    assert_int_equal(approve(&sid, 1, sig), KM_ERR_VERIFY);
    flow_approval(&W, 0, &sid, &item, 1, sig); /* user 0's auth key */
    assert_int_equal(approve(&sid, 1, sig), KM_ERR_VERIFY);
    km_uuid other_sid;
    assert_int_equal(km_uuid_v7(&other_sid, 4), KM_OK);
    flow_approval(&W, 1, &other_sid, &item, 1, sig); /* same items, other session */
    assert_int_equal(approve(&sid, 1, sig), KM_ERR_VERIFY);
    /* Still refused: nothing was signed by the failed attempts. */
    assert_int_equal(flow_call(&W, W.assign[1], KM_CMD_SIGN_PARTIAL, &body, NULL), KM_ERR_VERIFY);
    /* The right approval unlocks it. */
    flow_approval(&W, 1, &sid, &item, 1, sig);
    assert_int_equal(approve(&sid, 1, sig), KM_OK);
    assert_int_equal(flow_call(&W, W.assign[1], KM_CMD_SIGN_PARTIAL, &body, &out), KM_OK);
    km_buf_free(&body);
    km_buf_free(&out);
    km_buf_free(&nonces.list);
}

static void test_nonce_records_and_reuse(void **state) {
    (void)state;
    km_sign_item item;
    make_item(&item, "nonce discipline");
    km_uuid sid;
    assert_int_equal(km_uuid_v7(&sid, 5), KM_OK);
    flow_records nonces;
    init_all(&sid, &item, 1, &nonces);
    unsigned char sig[64];
    flow_approval(&W, 1, &sid, &item, 1, sig);
    assert_int_equal(approve(&sid, 1, sig), KM_OK);
    km_buf body, out1, out2;
    km_buf_init(&out1);
    km_buf_init(&out2);
    flow_records_body(&sid, &nonces, &body);
    /* A record altered by the gateway does not verify. */
    for (size_t pos = 20; pos < body.len; pos += 37) {
        body.data[pos] ^= 0x01;
        assert_int_not_equal(flow_call(&W, 0, KM_CMD_SIGN_PARTIAL, &body, NULL), KM_OK);
        body.data[pos] ^= 0x01;
    }
    /* A missing record. */
    flow_records partial_set = nonces;
    partial_set.n = (uint16_t)(nonces.n - 1);
    km_buf short_body;
    flow_records_body(&sid, &partial_set, &short_body);
    /* The count says n-1: one participant has no record (the rest is trailing). */
    assert_int_not_equal(flow_call(&W, 0, KM_CMD_SIGN_PARTIAL, &short_body, NULL), KM_OK);
    km_buf_free(&short_body);
    /* The honest call, then an identical retry: the same partial signatures,
     * not new ones over the same nonce. */
    assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_PARTIAL, &body, &out1), KM_OK);
    assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_PARTIAL, &body, &out2), KM_OK);
    assert_int_equal(out1.len, out2.len);
    assert_memory_equal(out1.data, out2.data, out1.len);
    /* Records of this session replayed into another session are refused. */
    km_uuid sid2;
    assert_int_equal(km_uuid_v7(&sid2, 6), KM_OK);
    flow_records nonces2;
    init_all(&sid2, &item, 1, &nonces2);
    km_buf cross;
    flow_records_body(&sid2, &nonces, &cross);
    assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_PARTIAL, &cross, NULL), KM_ERR_VERIFY);
    km_buf_free(&cross);
    km_buf_free(&nonces2.list);
    /* A second SIGN_INIT with other items under the same id is refused. */
    km_sign_item other;
    make_item(&other, "something else");
    km_buf init2;
    flow_sign_init_body(&W, &sid, &other, 1, &init2);
    assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_INIT, &init2, NULL), KM_ERR_DUPLICATE);
    km_buf_free(&init2);
    km_buf_free(&body);
    km_buf_free(&out1);
    km_buf_free(&out2);
    km_buf_free(&nonces.list);
}

/* Splits a record list (concatenated vbytes) into views; returns the count. */
static size_t split_records(const flow_records *r, const unsigned char **rec, size_t *len, size_t cap) {
    km_cursor c;
    km_cursor_init(&c, r->list.data, r->list.len);
    size_t n = 0;
    while (c.pos < c.len) {
        uint32_t l;
        assert_true(n < cap);
        assert_int_equal(km_cursor_get_u32(&c, &l), KM_OK);
        assert_int_equal(km_cursor_get_view(&c, &rec[n], l), KM_OK);
        len[n++] = l;
    }
    return n;
}

/* "u16 n | vbytes record * n" of the given records, in the given order;
 * index `swap` (if < n) replaced by `with`. */
static void put_list(km_buf *b, const unsigned char **rec, const size_t *len, size_t n, const int *order,
                     size_t swap, const km_buf *with) {
    assert_int_equal(km_buf_put_u16(b, (uint16_t)n), KM_OK);
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)order[i];
        if (k == swap)
            flow_put_vbytes(b, with->data, with->len);
        else
            flow_put_vbytes(b, rec[k], len[k]);
    }
}

/* A record for participant u made by someone who holds the session secret
 * (every participant does) but not u's enclave key: sealed properly, signed
 * with another key. */
static void forge_record(const km_uuid *sid, int u, const char *purpose, const char *tag,
                         const unsigned char *pt, size_t pt_len, km_buf *out) {
    km_ad ad;
    km_buf sealed;
    km_buf_init(&sealed);
    km_buf_init(out);
    unsigned char digest[32], sig[64];
    assert_int_equal(km_ad_build(&ad, purpose, sid, W.users[u].b, 16), KM_OK);
    assert_int_equal(km_session_seal(W.session, ad.bytes, ad.len, pt, pt_len, &sealed), KM_OK);
    assert_int_equal(
        km_sign_record_begin(out, digest, tag, sid, &W.users[u], W.assign[u], sealed.data, sealed.len),
        KM_OK);
    assert_int_equal(km_single_schnorr_sign(W.ctx, sig, digest, 32, W.auth_sec[u]), KM_OK);
    assert_int_equal(km_buf_put(out, sig, 64), KM_OK);
    km_buf_free(&sealed);
}

/* The plaintext (opened) of participant u's record. */
static void open_record(const km_uuid *sid, const char *purpose, const char *tag, const unsigned char *rec,
                        size_t len, unsigned char *pt, size_t cap, size_t *pt_len) {
    km_sign_record r;
    km_ad ad;
    assert_int_equal(km_sign_record_decode(&r, tag, sid, rec, len), KM_OK);
    assert_int_equal(km_ad_build(&ad, purpose, sid, r.user_id.b, 16), KM_OK);
    assert_int_equal(km_session_open(W.session, ad.bytes, ad.len, r.sealed, r.sealed_len, pt, cap, pt_len),
                     KM_OK);
}

/* SIGN_FINALIZE checks record signatures only where they matter (the
 * enclave skips what it checked in its own SIGN_PARTIAL, and the partial
 * records' signatures unless the aggregate fails): whatever a forger sends,
 * it gets a refusal or the one valid signature. */
static void test_finalize_records(void **state) {
    (void)state;
    km_sign_item item;
    make_item(&item, "finalize with forged records");
    km_uuid sid;
    assert_int_equal(km_uuid_v7(&sid, 9), KM_OK);
    flow_records nonces, partials;
    init_all(&sid, &item, 1, &nonces);
    unsigned char sig[64];
    flow_approval(&W, 1, &sid, &item, 1, sig);
    assert_int_equal(approve(&sid, 1, sig), KM_OK);
    km_buf body, out;
    km_buf_init(&out);
    km_buf_init(&partials.list);
    partials.n = 0;
    flow_records_body(&sid, &nonces, &body);
    for (int i = 0; i < W.n_enclaves; i++) {
        assert_int_equal(flow_call(&W, i, KM_CMD_SIGN_PARTIAL, &body, &out), KM_OK);
        flow_records_add(&partials, &out);
    }
    km_buf_free(&body);
    const unsigned char *nrec[N_USERS], *prec[N_USERS];
    size_t nlen[N_USERS], plen[N_USERS];
    assert_int_equal(split_records(&nonces, nrec, nlen, N_USERS), N_USERS);
    assert_int_equal(split_records(&partials, prec, plen, N_USERS), N_USERS);
    const int same[N_USERS] = {0, 1, 2}, reversed[N_USERS] = {2, 1, 0};
    /* User 1 is on enclave 1; enclave 0 finalises. */
    size_t u1n = 0, u1p = 0;
    for (size_t i = 0; i < N_USERS; i++) {
        km_sign_record r;
        assert_int_equal(km_sign_record_decode(&r, KM_TAG_NONCE_RECORD, &sid, nrec[i], nlen[i]), KM_OK);
        if (!memcmp(r.user_id.b, W.users[1].b, 16)) u1n = i;
        assert_int_equal(km_sign_record_decode(&r, KM_TAG_PARTIAL_RECORD, &sid, prec[i], plen[i]), KM_OK);
        if (!memcmp(r.user_id.b, W.users[1].b, 16)) u1p = i;
    }
    unsigned char pt[66];
    size_t pt_len;

    /* A forged partial record with another partial signature: the aggregate
     * fails, and the forged record is named. */
    unsigned char bogus[32];
    km_sha256(bogus, "not a partial signature", 23);
    km_buf forged;
    forge_record(&sid, 1, KM_AD_PARTIALS, KM_TAG_PARTIAL_RECORD, bogus, 32, &forged);
    km_buf_init(&body);
    assert_int_equal(km_buf_put(&body, sid.b, 16), KM_OK);
    put_list(&body, nrec, nlen, N_USERS, same, SIZE_MAX, NULL);
    put_list(&body, prec, plen, N_USERS, same, u1p, &forged);
    assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_FINALIZE, &body, NULL), KM_ERR_VERIFY);
    km_buf_free(&body);
    km_buf_free(&forged);

    /* A forged nonce record (user 1's own nonces, signed by another key) in
     * a list other than the one SIGN_PARTIAL checked: checked, refused. */
    open_record(&sid, KM_AD_NONCES, KM_TAG_NONCE_RECORD, nrec[u1n], nlen[u1n], pt, sizeof pt, &pt_len);
    assert_int_equal(pt_len, 66);
    forge_record(&sid, 1, KM_AD_NONCES, KM_TAG_NONCE_RECORD, pt, 66, &forged);
    km_buf_init(&body);
    assert_int_equal(km_buf_put(&body, sid.b, 16), KM_OK);
    put_list(&body, nrec, nlen, N_USERS, same, u1n, &forged);
    put_list(&body, prec, plen, N_USERS, same, SIZE_MAX, NULL);
    assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_FINALIZE, &body, NULL), KM_ERR_VERIFY);
    km_buf_free(&body);
    km_buf_free(&forged);

    /* User 1's genuine partial signature in a forged record: the aggregate
     * verifies, so the answer is the valid signature the enclaves agreed on
     * (the forger learns nothing it could not get by relaying the genuine
     * record). The nonce list in another order is checked afresh and passes. */
    open_record(&sid, KM_AD_PARTIALS, KM_TAG_PARTIAL_RECORD, prec[u1p], plen[u1p], pt, sizeof pt, &pt_len);
    assert_int_equal(pt_len, 32);
    forge_record(&sid, 1, KM_AD_PARTIALS, KM_TAG_PARTIAL_RECORD, pt, 32, &forged);
    km_buf_init(&body);
    assert_int_equal(km_buf_put(&body, sid.b, 16), KM_OK);
    put_list(&body, nrec, nlen, N_USERS, reversed, SIZE_MAX, NULL);
    put_list(&body, prec, plen, N_USERS, same, u1p, &forged);
    assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_FINALIZE, &body, &out), KM_OK);
    km_buf res;
    flow_open_result(&W, &sid, &out, &res);
    flow_check_result(&W, &item, NULL, 1, &res);
    km_buf_free(&res);
    km_buf_free(&body);
    km_buf_free(&forged);
    km_buf_free(&out);
    km_buf_free(&nonces.list);
    km_buf_free(&partials.list);
}

static void test_gateway_sees_no_message(void **state) {
    (void)state;
    km_sign_item item;
    make_item(&item, "secret payment");
    km_uuid sid;
    assert_int_equal(km_uuid_v7(&sid, 8), KM_OK);
    km_buf body;
    flow_sign_init_body(&W, &sid, &item, 1, &body);
    for (size_t off = 0; off + 32 <= body.len; off++)
        assert_memory_not_equal(body.data + off, item.msg, 32);
    /* Items sealed under another session's key do not open. */
    unsigned char other_secret[32];
    assert_int_equal(km_random_bytes(other_secret, 32), KM_OK);
    km_session *real = W.session;
    assert_int_equal(km_session_derive(W.ctx, other_secret, &W.session), KM_OK);
    km_buf forged;
    flow_sign_init_body(&W, &sid, &item, 1, &forged);
    km_session_free(W.session);
    W.session = real;
    assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_INIT, &forged, NULL), KM_ERR_DECRYPT);
    km_buf_free(&forged);
    km_buf_free(&body);
}

static void test_unknown_subset_and_bad_points(void **state) {
    (void)state;
    km_sign_item item;
    make_item(&item, "x");
    item.has_subset = 1;
    assert_int_equal(km_uuid_v7(&item.subset_id, 9), KM_OK);
    km_uuid sid;
    assert_int_equal(km_uuid_v7(&sid, 10), KM_OK);
    km_buf body;
    flow_sign_init_body(&W, &sid, &item, 1, &body);
    assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_INIT, &body, NULL), KM_ERR_NOT_FOUND);
    km_buf_free(&body);
    make_item(&item, "y");
    item.adaptor = KM_ADAPTOR_SINGLE;
    item.n_points = 1;
    memset(item.points[0], 0xff, 33); /* not a point */
    item.points[0][0] = 0x02;
    assert_int_equal(km_uuid_v7(&sid, 11), KM_OK);
    flow_sign_init_body(&W, &sid, &item, 1, &body);
    assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_INIT, &body, NULL), KM_ERR_INVALID_POINT);
    km_buf_free(&body);
}

static uint32_t info_count(int i, int which) {
    km_buf out;
    km_buf_init(&out);
    assert_int_equal(flow_call(&W, i, KM_CMD_INFO, NULL, &out), KM_OK);
    const unsigned char *p = out.data + 2 + 33 + 32 + 4 * which;
    uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    km_buf_free(&out);
    return v;
}

static km_err clear(int i, uint8_t kind, const km_uuid *id) {
    km_buf body;
    km_buf_init(&body);
    assert_int_equal(km_buf_put_u8(&body, kind), KM_OK);
    assert_int_equal(km_buf_put(&body, id->b, 16), KM_OK);
    km_err e = flow_call(&W, i, KM_CMD_SESSION_CLEAR, &body, NULL);
    km_buf_free(&body);
    return e;
}

/* An enclave restart loses its nonces: the interrupted session cannot
 * continue (and never signs with a nonce twice); after the gateway replays the
 * keygen, a new signing session with new nonces succeeds. */
static void test_restart_mid_session_then_new_session(void **state) {
    (void)state;
    km_sign_item item;
    make_item(&item, "interrupted");
    km_uuid sid;
    assert_int_equal(km_uuid_v7(&sid, 20), KM_OK);
    flow_records nonces;
    init_all(&sid, &item, 1, &nonces);
    km_enclave_conn_close(&W.conn[1]);
    km_test_enclave_kill(&W.enc[1]); /* kill -9: no chance to clean up */
    assert_int_equal(km_test_enclave_restart(&W.enc[1]), 0);
    assert_int_equal(km_test_enclave_connect(W.ctx, &W.enc[1], &W.conn[1]), KM_OK);
    km_buf body;
    flow_records_body(&sid, &nonces, &body);
    assert_int_equal(flow_call(&W, 1, KM_CMD_SIGN_PARTIAL, &body, NULL), KM_ERR_NOT_FOUND);
    km_buf_free(&body);
    km_buf_free(&nonces.list);
    /* Replay of the stored keygen blobs (the gateway's restore). */
    assert_int_equal(flow_keygen(&W), 0);
    km_uuid sid2;
    assert_int_equal(km_uuid_v7(&sid2, 21), KM_OK);
    km_buf res;
    assert_int_equal(flow_sign(&W, &sid2, &item, 1, &res), KM_OK);
    unsigned char Q[32];
    flow_expected_key(&W, &item, Q);
    assert_int_equal(km_single_schnorr_verify(W.ctx, res.data + 4 + 16 + 1 + 2, item.msg, 32, Q), KM_OK);
    flow_note_R(&W, res.data + 4 + 16 + 1 + 2);
    km_buf_free(&res);
}

/* "signing_id | u16 n | nonce records | u16 m | partial records". */
static void finalize_body(const km_uuid *sid, const flow_records *nonces, const flow_records *partials,
                          km_buf *body) {
    km_buf_init(body);
    assert_int_equal(km_buf_put(body, sid->b, 16), KM_OK);
    assert_int_equal(km_buf_put_u16(body, nonces->n), KM_OK);
    assert_int_equal(km_buf_put(body, nonces->list.data, nonces->list.len), KM_OK);
    assert_int_equal(km_buf_put_u16(body, partials->n), KM_OK);
    assert_int_equal(km_buf_put(body, partials->list.data, partials->list.len), KM_OK);
}

/* One whole round of a session up to its partial records. */
static void round_to_partials(const km_uuid *sid, const km_sign_item *item, flow_records *nonces,
                              flow_records *partials) {
    init_all(sid, item, 1, nonces);
    unsigned char sig[64];
    flow_approval(&W, 1, sid, item, 1, sig);
    assert_int_equal(approve(sid, 1, sig), KM_OK);
    km_buf body, out;
    km_buf_init(&out);
    km_buf_init(&partials->list);
    partials->n = 0;
    flow_records_body(sid, nonces, &body);
    for (int i = 0; i < W.n_enclaves; i++) {
        assert_int_equal(flow_call(&W, i, KM_CMD_SIGN_PARTIAL, &body, &out), KM_OK);
        flow_records_add(partials, &out);
    }
    km_buf_free(&body);
    km_buf_free(&out);
}

/* A round lost half-way (the gateway cleared the session everywhere and
 * started again with fresh nonces): the first run's records, authentic and
 * complete, no longer finalize; the new run's do. */
static void test_finalize_refuses_earlier_run(void **state) {
    (void)state;
    km_sign_item item;
    make_item(&item, "restarted round");
    km_uuid sid;
    assert_int_equal(km_uuid_v7(&sid, 40), KM_OK);
    flow_records n1, p1, n2, p2;
    round_to_partials(&sid, &item, &n1, &p1);
    for (int i = 0; i < W.n_enclaves; i++)
        assert_int_equal(clear(i, 2, &sid), KM_OK);
    round_to_partials(&sid, &item, &n2, &p2);
    km_buf body, out;
    km_buf_init(&out);
    finalize_body(&sid, &n1, &p1, &body);
    for (int i = 0; i < W.n_enclaves; i++)
        assert_int_equal(flow_call(&W, i, KM_CMD_SIGN_FINALIZE, &body, NULL), KM_ERR_VERIFY);
    km_buf_free(&body);
    /* Mixed: the new nonces with the old partials do not verify either. */
    finalize_body(&sid, &n2, &p1, &body);
    assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_FINALIZE, &body, NULL), KM_ERR_VERIFY);
    km_buf_free(&body);
    finalize_body(&sid, &n2, &p2, &body);
    assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_FINALIZE, &body, &out), KM_OK);
    km_buf res;
    flow_open_result(&W, &sid, &out, &res);
    flow_check_result(&W, &item, NULL, 1, &res);
    km_buf_free(&res);
    km_buf_free(&body);
    km_buf_free(&out);
    km_buf_free(&n1.list);
    km_buf_free(&p1.list);
    km_buf_free(&n2.list);
    km_buf_free(&p2.list);
}

static void test_session_clear(void **state) {
    (void)state;
    km_sign_item item;
    make_item(&item, "to be cleared");
    km_uuid sid;
    assert_int_equal(km_uuid_v7(&sid, 30), KM_OK);
    flow_records nonces;
    init_all(&sid, &item, 1, &nonces);
    uint32_t before = info_count(0, 1);
    assert_int_equal(clear(0, 2, &sid), KM_OK);
    assert_int_equal(info_count(0, 1), before - 1);
    assert_int_equal(clear(0, 2, &sid), KM_ERR_NOT_FOUND);
    km_buf body;
    flow_records_body(&sid, &nonces, &body);
    assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_PARTIAL, &body, NULL), KM_ERR_NOT_FOUND);
    km_buf_free(&body);
    km_buf_free(&nonces.list);
    /* Clearing the keygen takes its signing sessions with it. */
    assert_int_equal(clear(0, 1, &W.keygen_id), KM_OK);
    assert_int_equal(info_count(0, 0), 0);
    assert_int_equal(info_count(0, 1), 0);
    km_uuid sid2;
    assert_int_equal(km_uuid_v7(&sid2, 31), KM_OK);
    flow_sign_init_body(&W, &sid2, &item, 1, &body);
    assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_INIT, &body, NULL), KM_ERR_NOT_FOUND);
    km_buf_free(&body);
    km_buf bad;
    km_buf_init(&bad);
    assert_int_equal(km_buf_put_u8(&bad, 3), KM_OK);
    assert_int_equal(km_buf_put(&bad, sid.b, 16), KM_OK);
    assert_int_equal(flow_call(&W, 0, KM_CMD_SESSION_CLEAR, &bad, NULL), KM_ERR_PARSE);
    km_buf_free(&bad);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_all_modes),
        cmocka_unit_test(test_approval_enforced_by_enclave),
        cmocka_unit_test(test_nonce_records_and_reuse),
        cmocka_unit_test(test_finalize_records),
        cmocka_unit_test(test_gateway_sees_no_message),
        cmocka_unit_test(test_unknown_subset_and_bad_points),
        cmocka_unit_test(test_restart_mid_session_then_new_session),
        cmocka_unit_test(test_finalize_refuses_earlier_run),
        cmocka_unit_test(test_session_clear),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
