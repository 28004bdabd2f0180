/* test_gateway_flows.c — whole KeyMeld flows over HTTP: a real
 * keymeld-gateway over three real keymeld-enclave processes on loopback,
 * driven by the client half in support_flows.[ch] exactly as the SDK does
 * (attestation first, session-key signed calls, client-side verification of
 * every key and signature the untrusted gateway hands back).
 *
 * One harness serves every test (starting enclaves is the slow part); each
 * test makes its own keygen. The last test searches every log for every
 * secret the tests used. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keymeld/aead.h"
#include "keymeld/attestation.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "keymeld/single.h"
#include "support_flows.h"
#include "support_gateway.h"

#define N_ENCLAVES 3
#define WAIT_S     60 /* bound of every wait for a final state */

static km_gwtest g_t;

/* Fail the test with the expression and the error's name. */
#define CHECK_OK(expr)                                                                                       \
    do {                                                                                                     \
        km_err e_ = (expr);                                                                                  \
        if (e_ != KM_OK) fail_msg("%s:%d: %s -> %s", __FILE__, __LINE__, #expr, km_err_name(e_));            \
    } while (0)
/* Fail unless response r has status want (printing it otherwise). */
#define EXPECT_STATUS(r, want)                                                                               \
    do {                                                                                                     \
        if ((r).status != (want)) {                                                                          \
            km_gwflow_print(#r, &(r));                                                                       \
            fail_msg("%s:%d: expected HTTP %d", __FILE__, __LINE__, (int)(want));                            \
        }                                                                                                    \
    } while (0)

static int group_setup(void **state) {
    (void)state;
    km_err err = km_gwtest_start(&g_t, N_ENCLAVES, NULL);
    if (err) fprintf(stderr, "harness start: %s\n", km_strerror(err));
    return err ? -1 : 0;
}

static int group_teardown(void **state) {
    (void)state;
    km_gwtest_stop(&g_t);
    return 0;
}

/* The first signature of a one-item result: u32 1 | id | type | u16 units | sig | T. */
static void first_sig(const km_buf *pt, unsigned char sig[64]) {
    assert_true(pt->len >= 4 + 16 + 1 + 2 + 64 + 33);
    memcpy(sig, pt->data + 23, 64);
}

/* Sign one regular item and check it; returns the milliseconds from create
 * to the fetched completed result. */
static uint64_t sign_one(km_gwflow *f, km_client *c) {
    km_sign_item it;
    km_uuid sid;
    km_client_response r = {0};
    km_buf pt;
    CHECK_OK(km_gwflow_item(&it));
    CHECK_OK(km_uuid_v7(&sid, (uint64_t)time(NULL) * 1000u));
    uint64_t t0 = km_gwflow_now_ms();
    CHECK_OK(km_gwflow_sign_create(f, c, &sid, &it, 1, 300, &r));
    EXPECT_STATUS(r, 201);
    km_err err = km_gwflow_wait_signing(f, c, &sid, WAIT_S, &r, &pt);
    uint64_t dt = km_gwflow_now_ms() - t0;
    if (err) km_gwflow_print("signing", &r);
    CHECK_OK(err);
    CHECK_OK(km_gwflow_check_result(f, &it, NULL, 1, &pt));
    /* Independently of the result checker: BIP-340 under the tweaked
     * aggregate key the client computed itself. */
    unsigned char sig[64];
    first_sig(&pt, sig);
    assert_int_equal(km_single_schnorr_verify(f->w.ctx, sig, it.msg, 32, f->w.keyagg.output_xonly), KM_OK);
    unsigned char other[32];
    memcpy(other, it.msg, 32);
    other[0] ^= 1;
    assert_int_equal(km_single_schnorr_verify(f->w.ctx, sig, other, 32, f->w.keyagg.output_xonly),
                     KM_ERR_VERIFY);
    km_buf_free(&pt);
    km_client_response_clear(&r);
    return dt;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A client that trusts the gateway would be fooled by a document made for
 * someone else: the checks the flow relies on each catch one substitution.
 * Fetch enclave 0's document for nonce A and verify it as if it were fresh
 * for nonce B, as enclave 1's, and under enclave 1's root. */
static void attestation_substitutions(void) {
    km_client *c;
    km_client_response r = {0};
    CHECK_OK(km_gwtest_client(&g_t, &c));
    unsigned char nonce[32], other_nonce[32];
    char hex[65], target[128];
    CHECK_OK(km_random_bytes(nonce, 32));
    CHECK_OK(km_random_bytes(other_nonce, 32));
    CHECK_OK(km_hex_encode(hex, sizeof hex, nonce, 32));
    snprintf(target, sizeof target, "/api/v1/enclaves/0?nonce=%s", hex);
    CHECK_OK(km_client_call(c, "GET", target, NULL, NULL, &r));
    EXPECT_STATUS(r, 200);
    const char *dh = km_gwflow_str(&r, "attestation_document");
    assert_non_null(dh);
    size_t hl = strlen(dh), dl = 0;
    unsigned char *doc = malloc(hl / 2 + 1);
    assert_non_null(doc);
    CHECK_OK(km_hex_decode_var(doc, hl / 2 + 1, &dl, dh, hl));
    km_buf root0, root1;
    CHECK_OK(km_gwtest_ca_root(&g_t, 0, &root0));
    CHECK_OK(km_gwtest_ca_root(&g_t, 1, &root1));
    km_attest_policy pol = {.now = (uint64_t)time(NULL),
                            .max_age_ms = 60000,
                            .max_future_ms = 5000,
                            .nonce = nonce,
                            .nonce_len = 32,
                            .public_key = g_t.enc[0].pub,
                            .public_key_len = 33};
    km_attest_reason why;
    assert_int_equal(km_attest_verify(doc, dl, root0.data, root0.len, &pol, NULL, &why), KM_OK);
    km_attest_policy p2 = pol;
    p2.nonce = other_nonce; /* a replayed document */
    assert_int_equal(km_attest_verify(doc, dl, root0.data, root0.len, &p2, NULL, &why), KM_ERR_ATTESTATION);
    assert_int_equal(why, KM_ATTEST_NONCE_MISMATCH);
    p2 = pol;
    p2.public_key = g_t.enc[1].pub; /* enclave 0's document passed off as enclave 1's */
    assert_int_equal(km_attest_verify(doc, dl, root0.data, root0.len, &p2, NULL, &why), KM_ERR_ATTESTATION);
    assert_int_equal(why, KM_ATTEST_PUBLIC_KEY_MISMATCH);
    assert_int_equal(km_attest_verify(doc, dl, root1.data, root1.len, &pol, NULL, &why), KM_ERR_ATTESTATION);
    assert_int_equal(why, KM_ATTEST_ROOT_MISMATCH);
    km_buf_free(&root0);
    km_buf_free(&root1);
    free(doc);
    km_client_response_clear(&r);
    km_client_free(c);
}

/* 1. Three participants on two enclaves: attestation, keygen, one BIP-86
 *    signing, a batch with an adaptor item, and the latency of a session. */
static void test_three_on_two(void **state) {
    (void)state;
    km_gwflow f;
    CHECK_OK(km_gwflow_new(&f, &g_t, 3, 2, NULL));
    CHECK_OK(km_gwflow_attest(&f, NULL));
    for (int i = 0; i < 2; i++)
        assert_memory_equal(f.w.enc[i].pub, g_t.enc[i].pub, 33);
    attestation_substitutions();
    CHECK_OK(km_gwflow_keygen(&f, WAIT_S));
    assert_true(f.keygen_done);
    /* The gateway's status view of the finished keygen. */
    km_client_response r = {0};
    CHECK_OK(km_gwflow_wait_keygen(&f, NULL, 1, &r));
    assert_int_equal(json_integer_value(json_object_get(r.json, "participants_expected")), 3);
    assert_int_equal(json_integer_value(json_object_get(r.json, "participants_registered")), 3);
    /* Only the session key reads the keygen: a participant's auth key is
     * authentic but not allowed (403); an unsigned read is refused (401). */
    char id[37], target[128];
    km_uuid_format(id, &f.w.keygen_id);
    snprintf(target, sizeof target, "/api/v1/keygen/%s", id);
    secp256k1_keypair kp;
    assert_true(secp256k1_keypair_create(km_ctx_secp(f.w.ctx), &kp, f.w.auth_sec[0]));
    km_client_response_clear(&r);
    CHECK_OK(km_client_call(f.client, "GET", target, NULL, &kp, &r));
    EXPECT_STATUS(r, 403);
    km_wipe(&kp, sizeof kp);
    km_client_response_clear(&r);
    CHECK_OK(km_client_call(f.client, "GET", target, NULL, NULL, &r));
    EXPECT_STATUS(r, 401);
    km_client_response_clear(&r);

    (void)sign_one(&f, NULL);

    /* A batch: three regular items and a single-point adaptor item. */
    km_sign_item items[4];
    km_rounds_secrets sec[4];
    memset(sec, 0, sizeof sec);
    for (int i = 0; i < 3; i++)
        CHECK_OK(km_gwflow_item(&items[i]));
    CHECK_OK(km_gwflow_adaptor_item(f.w.ctx, &items[3], sec[3].t[0]));
    km_uuid sid;
    km_buf pt;
    CHECK_OK(km_uuid_v7(&sid, (uint64_t)time(NULL) * 1000u));
    CHECK_OK(km_gwflow_sign_create(&f, NULL, &sid, items, 4, 300, &r));
    EXPECT_STATUS(r, 201);
    CHECK_OK(km_gwflow_wait_signing(&f, NULL, &sid, WAIT_S, &r, &pt));
    CHECK_OK(km_gwflow_check_result(&f, items, sec, 4, &pt));
    /* The result is bound to its session: it does not open as another. */
    km_uuid other;
    km_buf pt2;
    km_buf sealed;
    km_buf_init(&sealed);
    const char *hex = km_gwflow_str(&r, "result");
    assert_non_null(hex);
    size_t hl = strlen(hex);
    unsigned char *raw = malloc(hl / 2);
    assert_non_null(raw);
    size_t rawlen = 0;
    CHECK_OK(km_hex_decode_var(raw, hl / 2, &rawlen, hex, hl));
    CHECK_OK(km_buf_put(&sealed, raw, rawlen));
    free(raw);
    CHECK_OK(km_uuid_v7(&other, 1));
    assert_int_equal(km_rounds_open_result(&f.w, &other, &sealed, &pt2), KM_ERR_DECRYPT);
    km_buf_free(&pt2);
    km_buf_free(&sealed);
    km_buf_free(&pt);
    km_client_response_clear(&r);
    printf("  batch of 4 items (1 adaptor) completed and verified\n");

    /* Latency of a whole 3-party single-item session: create -> completed
     * result fetched through the long poll. Printed, never asserted. */
    enum { RUNS = 20 };
    uint64_t ms[RUNS];
    for (int i = 0; i < RUNS; i++)
        ms[i] = sign_one(&f, NULL);
    qsort(ms, RUNS, sizeof ms[0], cmp_u64);
    printf("LATENCY 3-party 1-item: %llu ms (median of %d; min %llu, max %llu)\n",
           (unsigned long long)ms[RUNS / 2], RUNS, (unsigned long long)ms[0],
           (unsigned long long)ms[RUNS - 1]);
    assert_int_equal(f.w.n_seen_R, 1 + 4 + RUNS);
    CHECK_OK(km_gwflow_logs_clean(&f));
    km_gwflow_free(&f);
}

/* Is uuid u (as a string) in JSON array a? */
static int in_array(const json_t *a, const km_uuid *u) {
    char s[37];
    km_uuid_format(s, u);
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!strcmp(json_string_value(json_array_get(a, i)) ? json_string_value(json_array_get(a, i)) : "",
                    s))
            return 1;
    return 0;
}

/* 2. A participant that requires approval: the session waits; a wrong
 *    approval is refused and leaves nothing; the right one completes it. */
static void test_approvals(void **state) {
    (void)state;
    km_gwflow f;
    uint8_t flags[3] = {0, KM_FLAG_REQUIRE_APPROVAL, 0};
    CHECK_OK(km_gwflow_new(&f, &g_t, 3, 2, flags));
    CHECK_OK(km_gwflow_keygen(&f, WAIT_S));
    km_sign_item it, other;
    km_uuid sid;
    km_client_response r = {0};
    km_buf pt;
    CHECK_OK(km_gwflow_item(&it));
    CHECK_OK(km_gwflow_item(&other));
    CHECK_OK(km_uuid_v7(&sid, (uint64_t)time(NULL) * 1000u));
    CHECK_OK(km_gwflow_sign_create(&f, NULL, &sid, &it, 1, 300, &r));
    EXPECT_STATUS(r, 201);
    assert_string_equal(km_gwflow_str(&r, "status"), "collecting_approvals");
    /* It stays there: a bounded wait ends without a final state. */
    assert_int_equal(km_gwflow_wait_signing(&f, NULL, &sid, 2, &r, &pt), KM_ERR_RANGE);
    km_buf_free(&pt);
    assert_string_equal(km_gwflow_str(&r, "status"), "collecting_approvals");
    json_t *req = json_object_get(r.json, "approvals_required"),
           *got = json_object_get(r.json, "approvals_received");
    assert_int_equal(json_array_size(req), 1);
    assert_true(in_array(req, &f.w.users[1]));
    assert_int_equal(json_array_size(got), 0);

    /* A real signature by the right auth key, but over other items. */
    unsigned char wrong[64];
    CHECK_OK(km_rounds_approval(&f.w, 1, &sid, &other, 1, wrong));
    CHECK_OK(km_gwflow_approve_sig(&f, NULL, 1, &sid, wrong, &r));
    EXPECT_STATUS(r, 400);
    assert_string_equal(km_client_error_code(&r), "invalid_approval");
    /* Garbage is refused the same way. */
    memset(wrong, 0x5a, sizeof wrong);
    CHECK_OK(km_gwflow_approve_sig(&f, NULL, 1, &sid, wrong, &r));
    EXPECT_STATUS(r, 400);
    assert_string_equal(km_client_error_code(&r), "invalid_approval");
    /* Nothing was stored: still waiting, no approval received. */
    assert_int_equal(km_gwflow_wait_signing(&f, NULL, &sid, 1, &r, &pt), KM_ERR_RANGE);
    km_buf_free(&pt);
    assert_string_equal(km_gwflow_str(&r, "status"), "collecting_approvals");
    assert_int_equal(json_array_size(json_object_get(r.json, "approvals_received")), 0);

    /* The right approval completes the session. */
    CHECK_OK(km_gwflow_approve(&f, NULL, 1, &sid, &it, 1, &r));
    EXPECT_STATUS(r, 200);
    assert_true(in_array(json_object_get(r.json, "approvals_received"), &f.w.users[1]));
    km_err err = km_gwflow_wait_signing(&f, NULL, &sid, WAIT_S, &r, &pt);
    if (err) km_gwflow_print("signing", &r);
    CHECK_OK(err);
    CHECK_OK(km_gwflow_check_result(&f, &it, NULL, 1, &pt));
    km_buf_free(&pt);
    /* Another approval by the same participant (a fresh BIP-340 signature
     * differs through its random aux) is a conflict, not a replacement. */
    CHECK_OK(km_gwflow_approve(&f, NULL, 1, &sid, &it, 1, &r));
    EXPECT_STATUS(r, 409);
    km_client_response_clear(&r);
    CHECK_OK(km_gwflow_logs_clean(&f));
    km_gwflow_free(&f);
}

/* 3. Five participants over three enclaves. */
static void test_five_on_three(void **state) {
    (void)state;
    km_gwflow f;
    CHECK_OK(km_gwflow_new(&f, &g_t, 5, 3, NULL));
    CHECK_OK(km_gwflow_keygen(&f, WAIT_S));
    (void)sign_one(&f, NULL);
    CHECK_OK(km_gwflow_logs_clean(&f));
    km_gwflow_free(&f);
}

/* 4. 100 signing sessions in flight at once, from several client threads. */
enum { N_INFLIGHT = 100, N_THREADS = 4 };

typedef struct inflight {
    km_gwflow *f;
    int from, to;
    km_sign_item items[N_INFLIGHT];
    km_uuid sids[N_INFLIGHT];
    km_buf pts[N_INFLIGHT];
    int created[N_INFLIGHT], done[N_INFLIGHT];
    pthread_barrier_t *barrier;
} inflight;

typedef struct inflight_arg {
    inflight *s;
    int from, to;
} inflight_arg;

static void *inflight_thread(void *p) {
    inflight_arg *a = p;
    inflight *s = a->s;
    km_client *c = NULL;
    km_client_response r = {0};
    if (km_gwtest_client(&g_t, &c) != KM_OK) c = NULL;
    for (int i = a->from; c && i < a->to; i++)
        s->created[i] =
            km_gwflow_sign_create(s->f, c, &s->sids[i], &s->items[i], 1, 300, &r) == KM_OK && r.status == 201;
    /* Every session exists before anyone waits: all are in flight at once. */
    pthread_barrier_wait(s->barrier);
    for (int i = a->from; c && i < a->to; i++) {
        km_err err = km_gwflow_wait_signing(s->f, c, &s->sids[i], WAIT_S * 2, &r, &s->pts[i]);
        s->done[i] = err == KM_OK;
        if (err) {
            fprintf(stderr, "session %d: %s\n", i, km_err_name(err));
            km_gwflow_print("  status", &r);
        }
    }
    km_client_response_clear(&r);
    km_client_free(c);
    return NULL;
}

static void test_hundred_in_flight(void **state) {
    (void)state;
    km_gwflow f;
    CHECK_OK(km_gwflow_new(&f, &g_t, 3, 2, NULL));
    CHECK_OK(km_gwflow_keygen(&f, WAIT_S));
    inflight *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->f = &f;
    pthread_barrier_t barrier;
    assert_int_equal(pthread_barrier_init(&barrier, NULL, N_THREADS), 0);
    s->barrier = &barrier;
    for (int i = 0; i < N_INFLIGHT; i++) {
        CHECK_OK(km_gwflow_item(&s->items[i]));
        CHECK_OK(km_uuid_v7(&s->sids[i], (uint64_t)time(NULL) * 1000u));
        km_buf_init(&s->pts[i]);
    }
    pthread_t th[N_THREADS];
    inflight_arg args[N_THREADS];
    uint64_t t0 = km_gwflow_now_ms();
    for (int k = 0; k < N_THREADS; k++) {
        args[k] = (inflight_arg){s, k * N_INFLIGHT / N_THREADS, (k + 1) * N_INFLIGHT / N_THREADS};
        assert_int_equal(pthread_create(&th[k], NULL, inflight_thread, &args[k]), 0);
    }
    for (int k = 0; k < N_THREADS; k++)
        pthread_join(th[k], NULL);
    uint64_t dt = km_gwflow_now_ms() - t0;
    pthread_barrier_destroy(&barrier);
    int created = 0, done = 0;
    for (int i = 0; i < N_INFLIGHT; i++) {
        created += s->created[i];
        done += s->done[i];
    }
    printf("  %d sessions created, %d completed in %llu ms (%d client threads)\n", created, done,
           (unsigned long long)dt, N_THREADS);
    assert_int_equal(created, N_INFLIGHT);
    assert_int_equal(done, N_INFLIGHT);
    /* Every signature verifies and every x(R) is distinct (the checker
     * refuses a repeated one). */
    for (int i = 0; i < N_INFLIGHT; i++) {
        CHECK_OK(km_gwflow_check_result(&f, &s->items[i], NULL, 1, &s->pts[i]));
        km_buf_free(&s->pts[i]);
    }
    assert_int_equal(f.w.n_seen_R, N_INFLIGHT);
    free(s);
    km_gwflow_free(&f);
}

/* Wait until the gateway reports enclave id ready again (bounded). */
static void wait_enclave_ready(km_client *c, unsigned id, unsigned seconds) {
    char target[64];
    snprintf(target, sizeof target, "/api/v1/enclaves/%u", id);
    uint64_t deadline = km_gwflow_now_ms() + seconds * 1000u;
    km_client_response r = {0};
    while (km_gwflow_now_ms() < deadline) {
        km_client_response_clear(&r);
        if (km_client_call(c, "GET", target, NULL, NULL, &r) == KM_OK && r.status == 200 &&
            json_is_true(json_object_get(r.json, "ready"))) {
            km_client_response_clear(&r);
            return;
        }
        usleep(50 * 1000);
    }
    km_gwflow_print("enclave", &r);
    km_client_response_clear(&r);
    fail_msg("enclave %u not ready after %u s", id, seconds);
}

/* 5. An enclave killed (-9) and restarted after keygen: the gateway restores
 *    it from stored blobs; signing works again, and a session created while
 *    it is down completes once it is back. */
static void test_enclave_restart(void **state) {
    (void)state;
    km_gwflow f;
    CHECK_OK(km_gwflow_new(&f, &g_t, 3, 2, NULL));
    CHECK_OK(km_gwflow_keygen(&f, WAIT_S));
    (void)sign_one(&f, NULL);

    km_devnet_kill(&g_t.enc[1]);
    CHECK_OK(km_devnet_restart(&g_t.enc[1]));
    uint64_t dt = sign_one(&f, NULL);
    printf("  signing after a restart of enclave 1: %llu ms\n", (unsigned long long)dt);

    km_devnet_kill(&g_t.enc[1]);
    km_sign_item it;
    km_uuid sid;
    km_client_response r = {0};
    km_buf pt;
    CHECK_OK(km_gwflow_item(&it));
    CHECK_OK(km_uuid_v7(&sid, (uint64_t)time(NULL) * 1000u));
    CHECK_OK(km_gwflow_sign_create(&f, NULL, &sid, &it, 1, 300, &r));
    EXPECT_STATUS(r, 201);
    /* While the enclave is down the session cannot finish. */
    assert_int_equal(km_gwflow_wait_signing(&f, NULL, &sid, 2, &r, &pt), KM_ERR_RANGE);
    km_buf_free(&pt);
    CHECK_OK(km_devnet_restart(&g_t.enc[1]));
    km_err err = km_gwflow_wait_signing(&f, NULL, &sid, WAIT_S, &r, &pt);
    if (err) km_gwflow_print("signing", &r);
    CHECK_OK(err);
    CHECK_OK(km_gwflow_check_result(&f, &it, NULL, 1, &pt));
    km_buf_free(&pt);
    wait_enclave_ready(f.client, 1, WAIT_S);
    km_client_response_clear(&r);
    km_gwflow_free(&f);
}

/* 6. Single-signer: import, Schnorr and ECDSA signatures verified, delete;
 *    signing with a deleted key is a 404. */
static void test_single_signer(void **state) {
    (void)state;
    km_ctx *ctx = g_t.ctx;
    km_client *c;
    CHECK_OK(km_gwtest_client(&g_t, &c));
    km_gwflow_key k;
    km_client_response r = {0};
    CHECK_OK(km_gwflow_key_new(ctx, &k));
    CHECK_OK(km_gwflow_key_import(&g_t, c, &k, &r));
    EXPECT_STATUS(r, 201);
    /* The same key id imported again with another blob (ECIES is fresh each
     * time) is a conflict: a stored key is never replaced. */
    CHECK_OK(km_gwflow_key_import(&g_t, c, &k, &r));
    EXPECT_STATUS(r, 409);
    unsigned char rk[32], sig[64];
    static const unsigned char msg[] = "KeyMeld single-signer message of any length";
    km_uuid rid;
    CHECK_OK(km_uuid_v7(&rid, (uint64_t)time(NULL) * 1000u));
    CHECK_OK(km_gwflow_key_sign(ctx, c, &k, &rid, KM_KEY_ALGO_SCHNORR, msg, sizeof msg - 1, rk, &r));
    EXPECT_STATUS(r, 202);
    km_err err =
        km_gwflow_key_wait(ctx, c, &k, &rid, KM_KEY_ALGO_SCHNORR, msg, sizeof msg - 1, rk, WAIT_S, &r, sig);
    if (err) km_gwflow_print("single sign", &r);
    CHECK_OK(err);
    assert_int_equal(km_single_schnorr_verify(ctx, sig, msg, sizeof msg - 1, k.xonly), KM_OK);

    unsigned char digest[32];
    km_sha256(digest, msg, sizeof msg - 1);
    CHECK_OK(km_uuid_v7(&rid, (uint64_t)time(NULL) * 1000u));
    CHECK_OK(km_gwflow_key_sign(ctx, c, &k, &rid, KM_KEY_ALGO_ECDSA, digest, 32, rk, &r));
    EXPECT_STATUS(r, 202);
    err = km_gwflow_key_wait(ctx, c, &k, &rid, KM_KEY_ALGO_ECDSA, digest, 32, rk, WAIT_S, &r, sig);
    if (err) km_gwflow_print("single sign", &r);
    CHECK_OK(err);
    assert_int_equal(km_single_ecdsa_verify(ctx, sig, digest, k.pub33), KM_OK);
    /* The result opens only with the response key the client chose. */
    const char *hex = km_gwflow_str(&r, "result");
    assert_non_null(hex);
    unsigned char blob[256], wrong_rk[32], sig2[64];
    size_t bl = 0;
    CHECK_OK(km_hex_decode_var(blob, sizeof blob, &bl, hex, strlen(hex)));
    memcpy(wrong_rk, rk, 32);
    wrong_rk[0] ^= 1;
    assert_int_equal(
        km_key_sign_result_open(ctx, wrong_rk, &k.key_id, &rid, KM_KEY_ALGO_ECDSA, blob, bl, sig2),
        KM_ERR_DECRYPT);

    CHECK_OK(km_gwflow_key_delete(ctx, c, &k, &r));
    EXPECT_STATUS(r, 200);
    CHECK_OK(km_uuid_v7(&rid, (uint64_t)time(NULL) * 1000u));
    CHECK_OK(km_gwflow_key_sign(ctx, c, &k, &rid, KM_KEY_ALGO_SCHNORR, msg, sizeof msg - 1, rk, &r));
    EXPECT_STATUS(r, 404);
    /* Its secrets never reached a log. */
    assert_int_equal(km_gwflow_secret_in_logs(&g_t, k.seckey, 32), 0);
    assert_int_equal(km_gwflow_secret_in_logs(&g_t, k.auth_sec, 32), 0);
    assert_int_equal(km_gwflow_secret_in_logs(&g_t, rk, 32), 0);
    km_gwflow_key_wipe(&k);
    km_client_response_clear(&r);
    km_client_free(c);
}

/* 7. Logs: after a full flow with approvals over three enclaves, neither
 *    the gateway's log nor any enclave's holds a secret of it (the earlier
 *    tests checked theirs too). */
static void test_logs_clean(void **state) {
    (void)state;
    km_gwflow f;
    uint8_t flags[3] = {KM_FLAG_REQUIRE_APPROVAL, 0, 0};
    CHECK_OK(km_gwflow_new(&f, &g_t, 3, 3, flags));
    CHECK_OK(km_gwflow_keygen(&f, WAIT_S));
    km_sign_item it;
    km_uuid sid;
    km_client_response r = {0};
    km_buf pt;
    CHECK_OK(km_gwflow_item(&it));
    CHECK_OK(km_uuid_v7(&sid, (uint64_t)time(NULL) * 1000u));
    CHECK_OK(km_gwflow_sign_create(&f, NULL, &sid, &it, 1, 300, &r));
    EXPECT_STATUS(r, 201);
    CHECK_OK(km_gwflow_approve(&f, NULL, 0, &sid, &it, 1, &r));
    EXPECT_STATUS(r, 200);
    CHECK_OK(km_gwflow_wait_signing(&f, NULL, &sid, WAIT_S, &r, &pt));
    CHECK_OK(km_gwflow_check_result(&f, &it, NULL, 1, &pt));
    km_buf_free(&pt);
    km_client_response_clear(&r);
    km_err err = km_gwflow_logs_clean(&f);
    if (err) fprintf(stderr, "leaked: %s\n", f.detail ? f.detail : "?");
    CHECK_OK(err);
    /* The logs exist and are searched: each holds its process's banner. */
    assert_int_equal(km_gwtest_log_contains(&g_t, "keymeld-gateway", 15), 1);
    for (int i = 0; i < N_ENCLAVES; i++)
        assert_int_equal(km_gwtest_enclave_log_contains(&g_t, i, "keymeld-enclave", 15), 1);
    km_gwflow_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_on_two),    cmocka_unit_test(test_approvals),
        cmocka_unit_test(test_five_on_three),   cmocka_unit_test(test_hundred_in_flight),
        cmocka_unit_test(test_enclave_restart), cmocka_unit_test(test_single_signer),
        cmocka_unit_test(test_logs_clean),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
