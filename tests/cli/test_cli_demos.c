/* test_cli_demos.c — every demo of the built `keymeld` tool against a real
 * devnet (started and always brought down by the tool itself), each with
 * --json: exit 0, "ok": true, and the files the demos promise, with the
 * exact fields (taproot-spend.json) that external checkers read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_cli_support.h"

static char out_dir[300];

static json_t *run_demo(const char *name, const char *extra1, const char *extra2) {
    json_t *o = NULL;
    const char *args[] = {"demo",  name,     "--devnet", cli_devnet_dir, "--out",
                          out_dir, "--json", extra1,     extra2,         NULL};
    int rc = cli_json_in(NULL, &o, args);
    assert_non_null(o);
    if (rc != 0) fprintf(stderr, "demo %s: exit %d, error %s\n", name, rc, cli_str(o, "error"));
    assert_int_equal(rc, 0);
    assert_true(json_is_true(json_object_get(o, "ok")));
    assert_string_equal(cli_str(o, "demo"), name);
    assert_true(json_array_size(json_object_get(o, "steps")) >= 2);
    return o;
}

static json_t *load(const char *file) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", out_dir, file);
    json_error_t je;
    json_t *v = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    assert_non_null(v);
    return v;
}

static int is_hex(const char *s, size_t bytes) {
    if (!s || strlen(s) != 2 * bytes) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
    return 1;
}

static void test_demo_list(void **state) {
    (void)state;
    json_t *o = NULL;
    const char *args[] = {"demo", "list", "--json", NULL};
    assert_int_equal(cli_json_in(NULL, &o, args), 0);
    assert_non_null(o);
    json_t *l = json_object_get(o, "demos");
    assert_int_equal(json_array_size(l), 7);
    json_decref(o);
}

static void test_quickstart(void **state) {
    (void)state;
    json_t *o = run_demo("quickstart", NULL, NULL);
    assert_true(is_hex(cli_str(o, "signature_hex"), 64));
    assert_true(is_hex(cli_str(o, "output_pubkey_hex"), 32));
    json_decref(o);
}

static void test_taproot_spend(void **state) {
    (void)state;
    json_decref(run_demo("taproot-spend", NULL, NULL));
    json_t *v = load("taproot-spend.json");
    /* Exactly these fields: external tools parse this file. */
    assert_int_equal(json_object_size(v), 6);
    assert_non_null(cli_str(v, "tx_hex"));
    json_t *prev = json_object_get(v, "prevouts");
    assert_int_equal(json_array_size(prev), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(prev, 0), "amount_sat")), 100000);
    const char *spk = cli_str(json_array_get(prev, 0), "script_pubkey_hex");
    assert_true(is_hex(spk, 34));
    assert_int_equal(json_array_size(json_object_get(v, "participant_pubkeys_hex")), 3);
    for (size_t i = 0; i < 3; i++)
        assert_true(
            is_hex(json_string_value(json_array_get(json_object_get(v, "participant_pubkeys_hex"), i)), 33));
    assert_true(is_hex(cli_str(v, "aggregate_pubkey_hex"), 32));
    assert_true(is_hex(cli_str(v, "output_pubkey_hex"), 32));
    assert_string_equal(cli_str(v, "tweak_mode"), "bip86");
    /* The prevout script pays the output key: 5120 || x(Q). */
    assert_memory_equal(spk, "5120", 4);
    assert_string_equal(spk + 4, cli_str(v, "output_pubkey_hex"));
    assert_string_not_equal(cli_str(v, "aggregate_pubkey_hex"), cli_str(v, "output_pubkey_hex"));
    json_decref(v);
}

static void test_adaptors(void **state) {
    (void)state;
    json_decref(run_demo("adaptors", NULL, NULL));
    json_t *v = load("adaptors.json");
    json_t *cases = json_object_get(v, "cases");
    assert_int_equal(json_array_size(cases), 3);
    static const char *names[] = {"single", "and", "or"};
    static const size_t units[] = {1, 1, 3};
    for (size_t c = 0; c < 3; c++) {
        json_t *k = json_array_get(cases, c);
        assert_string_equal(cli_str(k, "case"), names[c]);
        json_t *u = json_object_get(k, "units");
        assert_int_equal(json_array_size(u), units[c]);
        for (size_t i = 0; i < json_array_size(u); i++) {
            json_t *x = json_array_get(u, i);
            assert_true(is_hex(cli_str(x, "presignature_hex"), 64));
            assert_true(is_hex(cli_str(x, "presignature_legacy_hex"), 65));
            assert_true(is_hex(cli_str(x, "signature_hex"), 64));
            assert_true(is_hex(cli_str(x, "secret_hex"), 32));
            assert_true(is_hex(cli_str(x, "adaptor_point_hex"), 33));
            /* A completed signature is not the pre-signature. */
            assert_string_not_equal(cli_str(x, "presignature_hex"), cli_str(x, "signature_hex"));
        }
    }
    json_decref(v);
}

static void test_batch(void **state) {
    (void)state;
    json_t *o = run_demo("batch", NULL, NULL);
    assert_true(json_integer_value(json_object_get(o, "units_verified")) > 100);
    json_decref(o);
}

static void test_dlc(void **state) {
    (void)state;
    json_t *o = run_demo("dlc", NULL, NULL);
    assert_true(is_hex(cli_str(o, "cet_signature_hex"), 64));
    json_decref(o);
}

static void test_single_signer(void **state) {
    (void)state;
    json_t *o = run_demo("single-signer", NULL, NULL);
    assert_true(is_hex(cli_str(o, "schnorr_signature_hex"), 64));
    assert_true(is_hex(cli_str(o, "ecdsa_signature_hex"), 64));
    json_decref(o);
}

static void test_stress(void **state) {
    (void)state;
    json_t *o = run_demo("stress", "--count", "20");
    assert_int_equal(json_integer_value(json_object_get(o, "sessions")), 20);
    assert_true(json_real_value(json_object_get(o, "signatures_per_second")) > 0);
    json_decref(o);
}

static int setup(void **state) {
    (void)state;
    json_t *o = cli_devnet_start();
    if (!o) return -1;
    json_decref(o);
    snprintf(out_dir, sizeof out_dir, "%s/out", cli_devnet_dir);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    cli_devnet_down();
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_list),     cmocka_unit_test(test_quickstart),
        cmocka_unit_test(test_taproot_spend), cmocka_unit_test(test_adaptors),
        cmocka_unit_test(test_batch),         cmocka_unit_test(test_dlc),
        cmocka_unit_test(test_single_signer), cmocka_unit_test(test_stress),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
