/* test_enclave_rounds.c — the library the tests, the demo and the enclave
 * benchmark share (src/cli/rounds, src/cli/devnet) must REPORT failures, not
 * only pass the honest path: a tampered result, a wrong adaptor secret, a
 * repeated nonce point, a secret in an enclave log, an aggregate key the
 * client cannot reproduce, bad arguments. Each is an error code here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "tests/enclave/flows.h"

/* Offsets in the result of one regular item: u32 n | id | type | u16 units | sig | T. */
#define OFF_ID  4
#define OFF_SIG (4 + 16 + 1 + 2)

static flow_world W;

static int setup(void **state) {
    (void)state;
    if (flow_start(&W, 2, 3) != 0) return -1;
    return flow_keygen(&W);
}

static int teardown(void **state) {
    (void)state;
    flow_stop(&W);
    return 0;
}

static void make_item(km_sign_item *it, uint64_t ms, const char *text) {
    memset(it, 0, sizeof *it);
    assert_int_equal(km_uuid_v7(&it->id, ms), KM_OK);
    km_sha256(it->msg, text, strlen(text));
}

/* Honest result of one item, with R not yet noted. */
static void sign_one(const km_sign_item *it, uint64_t sid_ms, km_buf *res) {
    km_uuid sid;
    assert_int_equal(km_uuid_v7(&sid, sid_ms), KM_OK);
    km_err status = KM_ERR_STATE;
    assert_int_equal(km_rounds_sign(&W, &sid, it, 1, res, &status), KM_OK);
    assert_int_equal(status, KM_OK);
}

static km_err check_copy(const km_sign_item *it, const flow_secrets *sec, const km_buf *res, size_t at,
                         unsigned char flip, int extra_byte) {
    km_buf copy;
    km_buf_init(&copy);
    assert_int_equal(km_buf_put(&copy, res->data, res->len), KM_OK);
    if (flip) copy.data[at] ^= flip;
    if (extra_byte) assert_int_equal(km_buf_put_u8(&copy, 0), KM_OK);
    W.n_seen_R = 0; /* each check judges one result on its own */
    W.detail = NULL;
    km_err err = km_rounds_check_result(&W, it, sec, 1, &copy);
    if (err) printf("  refused as %s: %s\n", km_err_name(err), W.detail);
    km_buf_free(&copy);
    return err;
}

static void test_tampered_results_are_refused(void **state) {
    (void)state;
    km_sign_item it;
    make_item(&it, 100, "rounds: regular item");
    km_buf res;
    sign_one(&it, 200, &res);
    assert_int_equal(check_copy(&it, NULL, &res, 0, 0, 0), KM_OK);
    assert_int_equal(check_copy(&it, NULL, &res, OFF_SIG + 40, 1, 0), KM_ERR_VERIFY); /* s */
    assert_int_equal(check_copy(&it, NULL, &res, OFF_SIG + 5, 1, 0), KM_ERR_VERIFY);  /* R */
    assert_int_equal(check_copy(&it, NULL, &res, OFF_ID + 3, 1, 0), KM_ERR_PARSE);    /* other item */
    assert_int_equal(check_copy(&it, NULL, &res, 3, 1, 0), KM_ERR_PARSE);             /* count */
    assert_int_equal(check_copy(&it, NULL, &res, 0, 0, 1), KM_ERR_PARSE);             /* trailing */
    /* The same signature judged for another message. */
    km_sign_item other = it;
    other.msg[0] ^= 1;
    assert_int_equal(check_copy(&other, NULL, &res, 0, 0, 0), KM_ERR_VERIFY);
    /* The same signature judged against another tweak (another key). */
    other = it;
    other.own_tweak = 1;
    km_tweak_none(&other.tweak);
    assert_int_equal(check_copy(&other, NULL, &res, 0, 0, 0), KM_ERR_VERIFY);
    km_buf_free(&res);
}

static void test_repeated_R_is_reported(void **state) {
    (void)state;
    km_sign_item it;
    make_item(&it, 300, "rounds: nonce");
    km_buf res;
    sign_one(&it, 400, &res);
    W.n_seen_R = 0;
    assert_int_equal(km_rounds_check_result(&W, &it, NULL, 1, &res), KM_OK);
    /* The same result seen twice is exactly what a reused nonce looks like. */
    assert_int_equal(km_rounds_check_result(&W, &it, NULL, 1, &res), KM_ERR_NONCE_REUSE);
    unsigned char r[32];
    assert_int_equal(km_random_bytes(r, 32), KM_OK);
    assert_int_equal(km_rounds_note_R(&W, r), KM_OK);
    assert_int_equal(km_rounds_note_R(&W, r), KM_ERR_NONCE_REUSE);
    km_buf_free(&res);
}

static void test_wrong_adaptor_secret_is_refused(void **state) {
    (void)state;
    km_sign_item it;
    make_item(&it, 500, "rounds: adaptor");
    flow_secrets sec, wrong;
    it.adaptor = KM_ADAPTOR_SINGLE;
    it.n_points = 1;
    do
        assert_int_equal(km_random_bytes(sec.t[0], 32), KM_OK);
    while (km_adaptor_point_from_secret(W.ctx, it.points[0], sec.t[0]) != KM_OK);
    km_buf res;
    sign_one(&it, 600, &res);
    assert_int_equal(check_copy(&it, &sec, &res, 0, 0, 0), KM_OK);
    wrong = sec;
    wrong.t[0][31] ^= 1;
    assert_int_equal(check_copy(&it, &wrong, &res, 0, 0, 0), KM_ERR_VERIFY);
    assert_int_equal(check_copy(&it, NULL, &res, 0, 0, 0), KM_ERR_ARG);
    km_buf_free(&res);
}

static void test_secret_in_log_is_reported(void **state) {
    (void)state;
    assert_int_equal(km_rounds_logs_clean(&W), KM_OK);
    char path[320], hex[65];
    snprintf(path, sizeof path, "%s/enclave.log", W.enc[1].dir);
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    assert_int_equal(km_hex_encode(hex, sizeof hex, W.auth_sec[2], 32), KM_OK);
    fprintf(f, "leak %s\n", hex);
    fclose(f);
    assert_int_equal(km_rounds_logs_clean(&W), KM_ERR_STATE);
    /* Remove the planted line again so teardown leaves a clean state. */
    assert_int_equal(truncate(path, 0), 0);
    assert_int_equal(km_rounds_logs_clean(&W), KM_ERR_IO); /* an empty log is not evidence of anything */
}

static void test_keygen_mismatch_and_bad_arguments(void **state) {
    (void)state;
    static flow_world w;
    assert_int_equal(km_rounds_start(&w, KM_ENCLAVE_BIN, 0, 2), KM_ERR_ARG);
    km_rounds_stop(&w);
    assert_int_equal(km_rounds_start(&w, KM_ENCLAVE_BIN, 1, KM_ROUNDS_MAX_USERS + 1), KM_ERR_ARG);
    km_rounds_stop(&w);
    assert_int_equal(km_rounds_start(&w, "/nonexistent/keymeld-enclave", 1, 2), KM_ERR_IO);
    km_rounds_stop(&w);
    /* The client believes participant 0 has another key than the one it
     * registered: the enclaves' aggregate cannot match its own. */
    assert_int_equal(flow_start(&w, 1, 2), 0);
    unsigned char sec[32];
    km_test_keypair(w.ctx, sec, w.pubkeys[0], NULL);
    assert_int_equal(km_rounds_keygen(&w), KM_ERR_VERIFY);
    printf("  keygen refused: %s\n", w.detail);
    /* The devnet refuses to restart a running enclave. */
    assert_int_equal(km_devnet_restart(&w.enc[0]), KM_ERR_STATE);
    flow_stop(&w);
}

static void test_devnet_keeps_a_given_directory(void **state) {
    (void)state;
    char dir[] = "/tmp/km-devnet-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    km_ctx *ctx;
    assert_int_equal(km_ctx_create(&ctx), KM_OK);
    km_devnet_enclave e;
    assert_int_equal(km_devnet_start(ctx, &e, KM_ENCLAVE_BIN, dir, NULL), KM_OK);
    assert_int_equal(e.owns_dir, 0);
    assert_int_equal(km_devnet_stop(&e), 0);
    km_devnet_destroy(&e);
    struct stat st;
    char p[300];
    snprintf(p, sizeof p, "%s/sealing.key", dir);
    assert_int_equal(stat(p, &st), 0); /* the caller's identity survives */
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    km_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tampered_results_are_refused),
        cmocka_unit_test(test_repeated_R_is_reported),
        cmocka_unit_test(test_wrong_adaptor_secret_is_refused),
        cmocka_unit_test(test_secret_in_log_is_reported),
        cmocka_unit_test(test_keygen_mismatch_and_bad_arguments),
        cmocka_unit_test(test_devnet_keeps_a_given_directory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
