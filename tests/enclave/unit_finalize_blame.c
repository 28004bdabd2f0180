/* unit_finalize_blame.c — SIGN_FINALIZE's blame path (src/enclave/cmd_sign.c,
 * km_cmd_sign_finalize) with two enclaves run in process.
 *
 * When the aggregate of the partial signatures does not verify, the
 * finalising enclave first checks the enclave signatures of the partial
 * records (a forged record is refused as "not signed by its enclave"), then
 * verifies each partial signature to name the participant at fault. The
 * second step can only be reached with a record that its participant's
 * enclave really signed but that carries a wrong partial signature: what a
 * buggy or compromised enclave would send. The real enclave processes keep
 * their keys sealed; here the test holds each enclave's struct (its key in
 * e->key) and signs such records with km_enclave_sign, as that enclave would.
 *
 * The keygen and the honest rounds go through the client and gateway halves
 * of src/cli/rounds.c and the enclave's dispatcher (km_enclave_conn_call is
 * replaced with -Wl,--wrap by an in-process call, as in tests/ct/ct_enclave.c);
 * SIGN_FINALIZE is called on the handler directly so that the test sees the
 * reply's status and detail text.
 *
 * Named unit_*.c, not test_*.c: the tests/enclave/test_*.c glob builds the
 * process-level tests against the harness; this one links the enclave
 * sources (minus main.c) into the test. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/rounds.h"
#include "enclave/enclave.h"
#include "enclave/records.h"
#include "enclave/sessions.h"
#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/ecies.h"
#include "keymeld/hash.h"
#include "keymeld/protocol.h"
#include "keymeld/single.h"
#include "tests/enclave/inproc.h"

#define N_ENCLAVES 2
#define N_USERS    3
#define N_ITEMS    2 /* item 0 regular, item 1 an And adaptor item: one unit each */

static km_ctx *ctx;
static km_enclave encl[N_ENCLAVES];
static km_rounds_world W;
static km_sign_item items[N_ITEMS];
static km_rounds_secrets secrets[N_ITEMS];
static uint32_t next_request;
static uint64_t next_ts = 1700000010000ull;

/* ---- in-process transport for src/cli/rounds.c ------------------------------ */

km_err __wrap_km_enclave_conn_call(km_enclave_conn *c, uint16_t cmd, const unsigned char *body, size_t len,
                                   km_msg *resp);
km_err __wrap_km_enclave_conn_call(km_enclave_conn *c, uint16_t cmd, const unsigned char *body, size_t len,
                                   km_msg *resp) {
    ptrdiff_t i = c - W.conn;
    if (i < 0 || i >= N_ENCLAVES) return KM_ERR_ARG;
    km_err err = inproc_dispatch(&encl[i], ++next_request, cmd, body, len, &c->in);
    return err ? err : km_msg_decode(resp, c->in.data, c->in.len);
}

/* ---- the world: two enclaves, three users, one keygen ------------------------ */

static void enclave_init(km_enclave *e) {
    memset(e, 0, sizeof *e);
    e->ctx = ctx;
    pthread_mutex_init(&e->lock, NULL);
    e->sessions = km_sessions_new();
    assert_non_null(e->sessions);
    e->max_keygens = e->max_signings = 100;
    e->keygen_ttl_s = e->signing_ttl_s = 3600;
    e->started_at = km_enclave_now();
    assert_int_equal(km_ecies_keygen(ctx, &e->key, e->pub), KM_OK);
    km_sha256(e->fingerprint, e->pub, 33);
    km_buf_init(&e->dev_leaf);
    km_buf_init(&e->dev_root);
}

static km_uuid fresh_uuid(void) {
    km_uuid id;
    assert_int_equal(km_uuid_v7(&id, next_ts++), KM_OK);
    return id;
}

/* Three users round robin on two enclaves (users 0 and 2 on enclave 0, user 1
 * on enclave 1), an honest keygen; a regular item and an And adaptor item
 * with two points. */
static int setup(void **state) {
    (void)state;
    assert_int_equal(km_ctx_create(&ctx), KM_OK);
    memset(&W, 0, sizeof W);
    W.ctx = ctx;
    W.n_enclaves = N_ENCLAVES;
    W.n_users = N_USERS;
    for (int i = 0; i < N_ENCLAVES; i++) {
        enclave_init(&encl[i]);
        memcpy(W.enc[i].pub, encl[i].pub, 33);
        W.conn[i].fd = -1;
        km_buf_init(&W.conn[i].in);
    }
    W.keygen_id = fresh_uuid();
    assert_int_equal(km_random_bytes(W.secret, 32), KM_OK);
    assert_int_equal(km_session_derive(ctx, W.secret, &W.session), KM_OK);
    for (int u = 0; u < N_USERS; u++) {
        km_buf_init(&W.records[u]);
        W.users[u] = fresh_uuid();
        W.assign[u] = (uint16_t)(u % N_ENCLAVES);
        assert_int_equal(km_devnet_keypair(ctx, W.seckeys[u], W.pubkeys[u], NULL), KM_OK);
        assert_int_equal(km_devnet_keypair(ctx, W.auth_sec[u], NULL, W.auth_x[u]), KM_OK);
    }
    km_tweak_bip86(&W.tweak);
    assert_int_equal(km_rounds_keygen(&W), KM_OK);

    memset(items, 0, sizeof items);
    memset(secrets, 0, sizeof secrets);
    for (int i = 0; i < N_ITEMS; i++) {
        items[i].id = fresh_uuid();
        km_sha256(items[i].msg, i ? "adaptor item" : "regular item", 12);
    }
    items[1].adaptor = KM_ADAPTOR_AND;
    items[1].n_points = 2;
    for (int k = 0; k < 2; k++) {
        do
            assert_int_equal(km_random_bytes(secrets[1].t[k], 32), KM_OK);
        while (km_adaptor_point_from_secret(ctx, items[1].points[k], secrets[1].t[k]) != KM_OK);
    }
    for (int i = 0; i < N_ITEMS; i++)
        assert_int_equal(km_sign_item_units(&items[i]), 1);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int u = 0; u < N_USERS; u++)
        km_buf_free(&W.records[u]);
    for (int i = 0; i < N_ENCLAVES; i++) {
        km_buf_free(&W.conn[i].in);
        km_sessions_free(encl[i].sessions);
        km_secret_free(encl[i].key);
        pthread_mutex_destroy(&encl[i].lock);
    }
    km_session_free(W.session);
    free(W.seen_R);
    km_wipe(&W, sizeof W);
    km_wipe(secrets, sizeof secrets);
    km_ctx_destroy(ctx);
    return 0;
}

/* ---- one signing round up to SIGN_PARTIAL ------------------------------------ */

typedef struct round {
    km_uuid sid;
    km_rounds_records nonces;
    km_buf partial[N_USERS]; /* user u's partial record, as its enclave made it */
} round;

/* The user a record is for, or -1. */
static int record_user(const km_uuid *sid, const unsigned char *p, size_t len) {
    km_sign_record rec;
    assert_int_equal(km_sign_record_decode(&rec, KM_TAG_PARTIAL_RECORD, sid, p, len), KM_OK);
    for (int u = 0; u < N_USERS; u++)
        if (!memcmp(rec.user_id.b, W.users[u].b, 16)) return u;
    return -1;
}

/* A fresh signing session: SIGN_INIT and SIGN_PARTIAL on both enclaves, all
 * honest; each user's partial record kept apart. */
static void round_begin(round *rd) {
    memset(rd, 0, sizeof *rd);
    rd->sid = fresh_uuid();
    km_buf_init(&rd->nonces.list);
    km_rounds_records partials = {0};
    km_buf_init(&partials.list);
    km_buf body, out;
    km_buf_init(&out);
    km_err st;
    assert_int_equal(km_rounds_sign_init_body(&W, &rd->sid, items, N_ITEMS, &body), KM_OK);
    for (int i = 0; i < N_ENCLAVES; i++) {
        assert_int_equal(km_rounds_call(&W, i, KM_CMD_SIGN_INIT, &body, &out, &st), KM_OK);
        assert_int_equal(st, KM_OK);
        assert_int_equal(km_rounds_records_add(&rd->nonces, &out), KM_OK);
    }
    km_buf_free(&body);
    assert_int_equal(rd->nonces.n, N_USERS);
    assert_int_equal(km_rounds_records_body(&rd->sid, &rd->nonces, &body), KM_OK);
    for (int i = 0; i < N_ENCLAVES; i++) {
        assert_int_equal(km_rounds_call(&W, i, KM_CMD_SIGN_PARTIAL, &body, &out, &st), KM_OK);
        assert_int_equal(st, KM_OK);
        assert_int_equal(km_rounds_records_add(&partials, &out), KM_OK);
    }
    km_buf_free(&body);
    km_buf_free(&out);
    assert_int_equal(partials.n, N_USERS);
    km_cursor c;
    km_cursor_init(&c, partials.list.data, partials.list.len);
    for (int i = 0; i < N_USERS; i++) {
        uint32_t len;
        const unsigned char *p;
        assert_int_equal(km_cursor_get_u32(&c, &len), KM_OK);
        assert_int_equal(km_cursor_get_view(&c, &p, len), KM_OK);
        int u = record_user(&rd->sid, p, len);
        assert_true(u >= 0);
        assert_int_equal(rd->partial[u].len, 0); /* one record per user */
        km_buf_init(&rd->partial[u]);
        assert_int_equal(km_buf_put(&rd->partial[u], p, len), KM_OK);
    }
    assert_int_equal(km_cursor_finish(&c), KM_OK);
    km_buf_free(&partials.list);
}

static void round_end(round *rd) {
    km_buf_free(&rd->nonces.list);
    for (int u = 0; u < N_USERS; u++)
        km_buf_free(&rd->partial[u]);
}

/* SIGN_FINALIZE on enclave i, called on the handler: the honest nonce list
 * and each user's partial record, user u's replaced by swap (if non-NULL).
 * r: the handler's reply (caller frees r->body). */
static void finalize(const round *rd, int i, int u, const km_buf *swap, km_reply *r) {
    km_buf body;
    assert_int_equal(km_rounds_records_body(&rd->sid, &rd->nonces, &body), KM_OK);
    assert_int_equal(km_buf_put_u16(&body, N_USERS), KM_OK);
    for (int v = 0; v < N_USERS; v++) {
        const km_buf *rec = v == u && swap ? swap : &rd->partial[v];
        assert_int_equal(km_rounds_put_vbytes(&body, rec->data, rec->len), KM_OK);
    }
    memset(r, 0, sizeof *r);
    km_buf_init(&r->body);
    km_cmd_sign_finalize(&encl[i], body.data, body.len, r);
    km_buf_free(&body);
}

/* User u's partial signatures (one per unit) from its honest record. */
static void open_partials(const round *rd, int u, unsigned char psig[N_ITEMS][32]) {
    km_sign_record rec;
    km_ad ad;
    size_t got = 0;
    assert_int_equal(
        km_sign_record_decode(&rec, KM_TAG_PARTIAL_RECORD, &rd->sid, rd->partial[u].data, rd->partial[u].len),
        KM_OK);
    assert_int_equal(km_ad_build(&ad, KM_AD_PARTIALS, &rd->sid, W.users[u].b, 16), KM_OK);
    assert_int_equal(km_session_open(W.session, ad.bytes, ad.len, rec.sealed, rec.sealed_len, &psig[0][0],
                                     N_ITEMS * 32, &got),
                     KM_OK);
    assert_int_equal(got, N_ITEMS * 32);
}

/* A partial record for user u carrying psig, sealed under the session key,
 * claiming enclave index `claimed` and signed with enclave `signer`'s own key
 * (km_enclave_sign on its struct: what that enclave would do). */
static void make_record(const round *rd, int u, unsigned char psig[N_ITEMS][32], uint16_t claimed, int signer,
                        km_buf *out) {
    km_ad ad;
    km_buf sealed;
    km_buf_init(&sealed);
    km_buf_init(out);
    unsigned char digest[32], sig[64];
    assert_int_equal(km_ad_build(&ad, KM_AD_PARTIALS, &rd->sid, W.users[u].b, 16), KM_OK);
    assert_int_equal(km_session_seal(W.session, ad.bytes, ad.len, &psig[0][0], N_ITEMS * 32, &sealed), KM_OK);
    assert_int_equal(km_sign_record_begin(out, digest, KM_TAG_PARTIAL_RECORD, &rd->sid, &W.users[u], claimed,
                                          sealed.data, sealed.len),
                     KM_OK);
    assert_int_equal(km_enclave_sign(&encl[signer], digest, sig), KM_OK);
    assert_int_equal(km_buf_put(out, sig, 64), KM_OK);
    km_buf_free(&sealed);
}

/* Ways to spoil one partial signature of a record. */
enum spoil { FLIP_BIT, OTHER_SCALAR, OTHERS_PARTIAL, NOT_A_SCALAR };

/* User u's honest partial signatures with the one of `unit` spoiled:
 * one bit flipped, replaced by another valid scalar, replaced by the
 * (genuine) partial signature of another user `other` for that unit, or
 * replaced by 32 bytes that are no scalar at all (all 0xff, above the group
 * order: the aggregation itself fails, not only its verification). */
static void spoiled_partials(const round *rd, int u, size_t unit, enum spoil how, int other,
                             unsigned char psig[N_ITEMS][32]) {
    open_partials(rd, u, psig);
    unsigned char honest[32];
    memcpy(honest, psig[unit], 32);
    if (how == FLIP_BIT) {
        psig[unit][31] ^= 0x01;
    } else if (how == OTHER_SCALAR) {
        do
            assert_int_equal(km_random_bytes(psig[unit], 32), KM_OK);
        while (km_single_seckey_check(ctx, psig[unit]) != KM_OK);
    } else if (how == NOT_A_SCALAR) {
        memset(psig[unit], 0xff, 32);
    } else {
        unsigned char theirs[N_ITEMS][32];
        open_partials(rd, other, theirs);
        memcpy(psig[unit], theirs[unit], 32);
    }
    assert_memory_not_equal(psig[unit], honest, 32);
}

/* The detail naming user u as the signer of an invalid partial signature. */
static void blame_detail(int u, char *out, size_t cap) {
    char uid[37];
    km_uuid_format(uid, &W.users[u]);
    snprintf(out, cap, "sign_finalize: invalid partial signature from participant %s", uid);
}

/* The detail with which enclave i refuses user u's record as forged (u's
 * index in the keygen as that enclave holds it). */
static void forged_detail(int i, int u, char *out, size_t cap) {
    km_keygen_state *k = km_sessions_find_keygen(encl[i].sessions, &W.keygen_id);
    assert_non_null(k);
    int p = km_keygen_init_find(&k->init, &W.users[u]);
    assert_true(p >= 0);
    snprintf(out, cap, "%s: record of participant %d is not signed by its enclave", KM_TAG_PARTIAL_RECORD, p);
}

/* Finalize on enclave i with user u's record replaced by bad: refused with
 * KM_ERR_VERIFY and exactly the detail `want`, no body. */
static void expect_refusal(const round *rd, int i, int u, const km_buf *bad, const char *want) {
    km_reply r;
    finalize(rd, i, u, bad, &r);
    assert_int_equal(r.err, KM_ERR_VERIFY);
    assert_string_equal(r.detail, want);
    assert_int_equal(r.body.len, 0);
    km_buf_free(&r.body);
}

/* Finalize honestly on enclave i: KM_OK, and the sealed result opens under
 * the client's session key. sealed, pt: the result bytes and their plaintext
 * (initialised here; caller frees). */
static void expect_success_pt(const round *rd, int i, km_buf *sealed, km_buf *pt) {
    km_reply r;
    finalize(rd, i, -1, NULL, &r);
    assert_int_equal(r.err, KM_OK);
    assert_string_equal(r.detail, "");
    assert_int_equal(km_rounds_open_result(&W, &rd->sid, &r.body, pt), KM_OK);
    *sealed = r.body;
}

/* As expect_success_pt, and the plaintext passes the client's checks (each
 * x(R) is noted, so one session's result is checked once). */
static void expect_success(const round *rd, int i, km_buf *sealed) {
    km_buf pt;
    expect_success_pt(rd, i, sealed, &pt);
    assert_int_equal(km_rounds_check_result(&W, items, secrets, N_ITEMS, &pt), KM_OK);
    km_buf_free(&pt);
}

/* Bad partial signatures of user u (each spoiling, in each unit), in records
 * properly signed by u's own enclave: finalize on enclave i names u. */
static void expect_blame_each(const round *rd, int i, int u) {
    const int other = (u + 1) % N_USERS;
    char want[160];
    blame_detail(u, want, sizeof want);
    for (size_t unit = 0; unit < N_ITEMS; unit++) {
        for (int how = FLIP_BIT; how <= NOT_A_SCALAR; how++) {
            unsigned char psig[N_ITEMS][32];
            km_buf bad;
            spoiled_partials(rd, u, unit, (enum spoil)how, other, psig);
            make_record(rd, u, psig, W.assign[u], W.assign[u], &bad);
            expect_refusal(rd, i, u, &bad, want);
            km_buf_free(&bad);
        }
    }
}

/* ---- the cases -------------------------------------------------------------- */

/* a) The honest round finalises on either enclave; the result opens and
 *    verifies (a regular signature and an adaptor pre-signature), and both
 *    enclaves produce the same signatures. */
static void test_honest(void **state) {
    (void)state;
    round rd;
    round_begin(&rd);
    km_buf res0, res1, pt0, pt1;
    expect_success_pt(&rd, 0, &res0, &pt0);
    assert_int_equal(km_rounds_check_result(&W, items, secrets, N_ITEMS, &pt0), KM_OK);
    expect_success_pt(&rd, 1, &res1, &pt1);
    assert_int_equal(pt1.len, pt0.len);
    assert_memory_equal(pt1.data, pt0.data, pt0.len);
    km_buf_free(&pt0);
    km_buf_free(&pt1);
    km_buf_free(&res0);
    km_buf_free(&res1);
    round_end(&rd);
    /* And the whole round as src/cli/rounds.c runs it over the dispatcher. */
    km_uuid sid = fresh_uuid();
    km_buf result;
    km_err status = KM_ERR_STATE;
    assert_int_equal(km_rounds_sign(&W, &sid, items, N_ITEMS, &result, &status), KM_OK);
    assert_int_equal(status, KM_OK);
    assert_int_equal(km_rounds_check_result(&W, items, secrets, N_ITEMS, &result), KM_OK);
    km_buf_free(&result);
}

/* b) A bad partial signature of user 1 (on enclave 1) in a record enclave 1
 *    signed: enclave 0 refuses and names user 1. Then the honest records
 *    still finalise. */
static void test_blame_remote(void **state) {
    (void)state;
    round rd;
    round_begin(&rd);
    expect_blame_each(&rd, 0, 1);
    km_buf res;
    expect_success(&rd, 0, &res);
    km_buf_free(&res);
    round_end(&rd);
}

/* c) The finalising enclave's own participant: its record altered and
 *    re-signed with its own key (no longer byte for byte its own, so the
 *    signature is checked, and passes) names that participant; on enclave 0
 *    for user 2 and user 0, on enclave 1 for user 1. */
static void test_blame_local(void **state) {
    (void)state;
    round rd;
    round_begin(&rd);
    expect_blame_each(&rd, 0, 2);
    expect_blame_each(&rd, 0, 0);
    expect_blame_each(&rd, 1, 1);
    km_buf res;
    expect_success(&rd, 1, &res);
    km_buf_free(&res);
    round_end(&rd);
}

/* d) A bad partial signature in a record signed by the wrong enclave: refused
 *    as forged (the record check comes before the blame), whether it claims
 *    the participant's enclave or the signer's own index. */
static void test_forged_record(void **state) {
    (void)state;
    round rd;
    round_begin(&rd);
    char want[160];
    unsigned char psig[N_ITEMS][32];
    km_buf bad;
    for (int u = 0; u < N_USERS; u++) {
        int wrong = 1 - W.assign[u];
        for (int i = 0; i < N_ENCLAVES; i++) {
            forged_detail(i, u, want, sizeof want);
            for (size_t unit = 0; unit < N_ITEMS; unit++) {
                spoiled_partials(&rd, u, unit, FLIP_BIT, 0, psig);
                make_record(&rd, u, psig, W.assign[u], wrong, &bad);
                expect_refusal(&rd, i, u, &bad, want);
                km_buf_free(&bad);
                make_record(&rd, u, psig, (uint16_t)wrong, wrong, &bad);
                expect_refusal(&rd, i, u, &bad, want);
                km_buf_free(&bad);
            }
        }
    }
    /* The genuine partial signatures in a record signed by the wrong enclave:
     * the aggregate verifies, so there is nothing to blame and the result is
     * the valid signature (as over real processes, test_finalize_records). */
    open_partials(&rd, 1, psig);
    make_record(&rd, 1, psig, W.assign[1], 1 - W.assign[1], &bad);
    km_reply r;
    finalize(&rd, 0, 1, &bad, &r);
    assert_int_equal(r.err, KM_OK);
    km_buf pt;
    assert_int_equal(km_rounds_open_result(&W, &rd.sid, &r.body, &pt), KM_OK);
    assert_int_equal(km_rounds_check_result(&W, items, secrets, N_ITEMS, &pt), KM_OK);
    km_buf_free(&pt);
    km_buf_free(&r.body);
    km_buf_free(&bad);
    round_end(&rd);
}

/* e) A refused finalize changes nothing: the honest records then finalise,
 *    and a second honest finalize returns the same sealed bytes (the first
 *    success is final). */
static void test_refusal_then_success(void **state) {
    (void)state;
    round rd;
    round_begin(&rd);
    char want[160];
    unsigned char psig[N_ITEMS][32];
    km_buf bad;
    blame_detail(1, want, sizeof want);
    spoiled_partials(&rd, 1, 1, OTHER_SCALAR, 0, psig);
    make_record(&rd, 1, psig, W.assign[1], W.assign[1], &bad);
    expect_refusal(&rd, 0, 1, &bad, want);
    forged_detail(0, 1, want, sizeof want);
    km_buf forged;
    make_record(&rd, 1, psig, W.assign[1], 0, &forged);
    expect_refusal(&rd, 0, 1, &forged, want);
    km_buf first;
    expect_success(&rd, 0, &first);
    km_reply r;
    finalize(&rd, 0, -1, NULL, &r);
    assert_int_equal(r.err, KM_OK);
    assert_int_equal(r.body.len, first.len);
    assert_memory_equal(r.body.data, first.data, first.len);
    km_buf_free(&r.body);
    km_buf_free(&first);
    km_buf_free(&bad);
    km_buf_free(&forged);
    round_end(&rd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_honest),
        cmocka_unit_test(test_blame_remote),
        cmocka_unit_test(test_blame_local),
        cmocka_unit_test(test_forged_record),
        cmocka_unit_test(test_refusal_then_success),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
