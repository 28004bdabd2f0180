/* test_sdk_session.c — the client SDK without a gateway: the session JSON
 * (export/import round trip, strict refusal of every malformed variant) and
 * argument checks of the handle. The flows against a live gateway are in
 * test_sdk.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymeld/client.h"

#define KID    "0190f5a2-1b2c-7d3e-8f40-5a6b7c8d9e0f"
#define U0     "0190f5a2-1b2c-7d3e-8f40-000000000001"
#define U1     "0190f5a2-1b2c-7d3e-8f40-000000000002"
#define SUB    "0190f5a2-1b2c-7d3e-8f40-0000000000aa"
#define SECRET "00112233445566778899aabbccddeeff0f1e2d3c4b5a69788796a5b4c3d2e1f0"
#define G1     "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
#define G2     "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"
#define ZERO32 "0000000000000000000000000000000000000000000000000000000000000000"

/* The exact text km_sdk_session_export writes for this session. */
static const char VALID[] =
    "{\"version\":1,\"keygen_id\":\"" KID "\",\"session_secret\":\"" SECRET "\",\"participants\":["
    "{\"user_id\":\"" U0 "\",\"enclave_id\":0,\"enclave_public_key\":\"" G1 "\"},"
    "{\"user_id\":\"" U1 "\",\"enclave_id\":1,\"enclave_public_key\":\"" G2 "\"}],"
    "\"tweak\":{\"mode\":\"bip86\",\"data\":\"" ZERO32 "\"},"
    "\"subsets\":[{\"subset_id\":\"" SUB "\",\"members\":[0,1]}],"
    "\"gateway_url\":\"http://127.0.0.1:1\"}";

static km_ctx *g_ctx;

static int setup(void **state) {
    (void)state;
    return km_ctx_create(&g_ctx) == KM_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    km_ctx_destroy(g_ctx);
    return 0;
}

/* VALID with the first occurrence of `from` replaced by `to` (malloc'ed). */
static char *variant(const char *from, const char *to) {
    const char *at = strstr(VALID, from);
    assert_non_null(at);
    size_t n = strlen(VALID) - strlen(from) + strlen(to);
    char *s = malloc(n + 1);
    assert_non_null(s);
    size_t pre = (size_t)(at - VALID);
    memcpy(s, VALID, pre);
    memcpy(s + pre, to, strlen(to));
    strcpy(s + pre + strlen(to), at + strlen(from));
    return s;
}

static void test_roundtrip(void **state) {
    (void)state;
    km_sdk_session *s = NULL;
    assert_int_equal(km_sdk_session_import(g_ctx, VALID, &s), KM_OK);
    km_uuid kid, u;
    size_t n = 0;
    uint32_t eid = 99;
    assert_int_equal(km_sdk_session_info(s, &kid, &n), KM_OK);
    assert_int_equal(n, 2);
    char text[37];
    km_uuid_format(text, &kid);
    assert_string_equal(text, KID);
    assert_int_equal(km_sdk_session_participant(s, 1, &u, &eid), KM_OK);
    km_uuid_format(text, &u);
    assert_string_equal(text, U1);
    assert_int_equal(eid, 1);
    assert_int_equal(km_sdk_session_participant(s, 2, &u, &eid), KM_ERR_RANGE);
    char *out = NULL;
    assert_int_equal(km_sdk_session_export(s, &out), KM_OK);
    assert_string_equal(out, VALID); /* byte for byte, secret included */
    memset(out, 0, strlen(out));
    free(out);
    km_sdk_session_free(s);

    /* Whitespace is allowed; the secret still travels through. */
    char *spaced = variant("\"session_secret\":\"", "\"session_secret\" :\n \"");
    assert_int_equal(km_sdk_session_import(g_ctx, spaced, &s), KM_OK);
    assert_int_equal(km_sdk_session_export(s, &out), KM_OK);
    assert_string_equal(out, VALID);
    free(out);
    free(spaced);
    km_sdk_session_free(s);

    /* Without the optional gateway_url and with no subsets. */
    char *bare = variant(",\"subsets\":[{\"subset_id\":\"" SUB
                         "\",\"members\":[0,1]}],\"gateway_url\":\"http://127.0.0.1:1\"",
                         ",\"subsets\":[]");
    assert_int_equal(km_sdk_session_import(g_ctx, bare, &s), KM_OK);
    assert_int_equal(km_sdk_session_export(s, &out), KM_OK);
    assert_string_equal(out, bare);
    free(out);
    free(bare);
    km_sdk_session_free(s);
}

static void test_import_refuses(void **state) {
    (void)state;
    static const struct {
        const char *from, *to, *why;
    } cases[] = {
        {"\"version\":1", "\"version\":2", "unknown version"},
        {"\"version\":1,", "", "version missing"},
        {"\"tweak\":", "\"extra\":1,\"tweak\":", "unknown top-level field"},
        {"\"enclave_id\":0,", "\"enclave_id\":0,\"x\":1,", "unknown participant field"},
        {"\"mode\":\"bip86\",", "\"mode\":\"bip86\",\"y\":0,", "unknown tweak field"},
        {"\"members\":[0,1]", "\"members\":[0,1],\"z\":[]", "unknown subset field"},
        {SECRET, "00112233445566778899AABBCCDDEEFF0F1E2D3C4B5A69788796A5B4C3D2E1F0", "uppercase secret"},
        {SECRET, "00112233445566778899aabbccddeeff0f1e2d3c4b5a69788796a5b4c3d2e1", "short secret"},
        {SECRET, "00112233445566778899aabbccddeeff0f1e2d3c4b5a69788796a5b4c3d2e1f000", "long secret"},
        {SECRET, "0x112233445566778899aabbccddeeff0f1e2d3c4b5a69788796a5b4c3d2e1f0",
         "bad hex digit in secret"},
        {"\"session_secret\":\"" SECRET "\",", "", "secret missing"},
        {"\"session_secret\":\"" SECRET "\",",
         "\"session_secret\":\"" SECRET "\",\"session_secret\":\"" SECRET "\",", "secret twice"},
        {"\"session_secret\"", "\"session\\u005fsecret\"", "escaped key name (read differently)"},
        {"\"session_secret\":\"" SECRET "\"", "\"session_secret\":1", "secret not a string"},
        {G1, "02ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "enclave key not a point"},
        {G1, "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f817", "enclave key short"},
        {"\"mode\":\"bip86\"", "\"mode\":\"bip87\"", "unknown tweak mode"},
        {"\"data\":\"" ZERO32 "\"", "\"data\":\"" SECRET "\"", "bip86 tweak with data"},
        {",\"data\":\"" ZERO32 "\"", "", "tweak data missing"},
        {"\"members\":[0,1]", "\"members\":[0,2]", "subset member out of range"},
        {"\"members\":[0,1]", "\"members\":[1,1]", "subset member twice"},
        {"\"members\":[0,1]", "\"members\":[]", "empty subset"},
        {"\"members\":[0,1]", "\"members\":[0,-1]", "negative member"},
        {"\"user_id\":\"" U1 "\"", "\"user_id\":\"" U0 "\"", "user listed twice"},
        {"\"enclave_id\":1", "\"enclave_id\":0", "one enclave id with two keys"},
        {"\"enclave_id\":1", "\"enclave_id\":-1", "negative enclave id"},
        {"\"enclave_id\":1", "\"enclave_id\":4294967295", "enclave id out of range"},
        {"\"enclave_id\":1", "\"enclave_id\":1.0", "enclave id not an integer"},
        {"\"enclave_id\":1", "\"enclave_id\":\"1\"", "enclave id as a string"},
        {KID, "00000000-0000-0000-0000-000000000000", "nil keygen id"},
        {KID, "0190F5A2-1B2C-7D3E-8F40-5A6B7C8D9E0F", "uppercase keygen id"},
        {KID, "0190f5a2-1b2c-7d3e-8f40-5a6b7c8d9e0", "short keygen id"},
        {"http://127.0.0.1:1", "ftp://127.0.0.1:1", "gateway url not http(s)"},
        {"\"tweak\":{\"mode\":\"bip86\",\"data\":\"" ZERO32 "\"},", "", "tweak missing"},
        {"\"subsets\":[{\"subset_id\":\"" SUB "\",\"members\":[0,1]}]", "\"subsets\":{}",
         "subsets not an array"},
        {"\"version\":1,", "\"version\":1,\"version\":1,", "duplicate key"},
        {"\"gateway_url\":\"http://127.0.0.1:1\"}", "\"gateway_url\":\"http://127.0.0.1:1\"} x",
         "trailing data"},
        {"{\"version\"", "[{\"version\"", "not an object"},
    };
    size_t run = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = variant(cases[i].from, cases[i].to);
        km_sdk_session *s = (km_sdk_session *)0x1;
        km_err err = km_sdk_session_import(g_ctx, text, &s);
        if (err != KM_ERR_PARSE)
            fail_msg("case '%s': expected parse error, got %s", cases[i].why, km_err_name(err));
        assert_null(s);
        free(text);
        run++;
    }
    /* Participants empty. */
    char *p0 = variant("\"participants\":[", "\"participants\":[],\"x\":[");
    km_sdk_session *s = NULL;
    assert_int_equal(km_sdk_session_import(g_ctx, p0, &s), KM_ERR_PARSE);
    free(p0);
    run++;
    assert_int_equal(km_sdk_session_import(g_ctx, "", &s), KM_ERR_PARSE);
    assert_int_equal(km_sdk_session_import(g_ctx, "{}", &s), KM_ERR_PARSE);
    assert_int_equal(km_sdk_session_import(NULL, VALID, &s), KM_ERR_ARG);
    assert_int_equal(km_sdk_session_import(g_ctx, NULL, &s), KM_ERR_ARG);
    printf("session import: %zu malformed variants refused, 0 skipped\n", run + 2);
}

static void test_handle_args(void **state) {
    (void)state;
    km_sdk *sdk = NULL;
    assert_int_equal(km_sdk_new(&sdk, g_ctx, "ftp://127.0.0.1:1"), KM_ERR_ARG);
    assert_null(sdk);
    assert_int_equal(km_sdk_new(&sdk, g_ctx, "http://127.0.0.1:1/"), KM_ERR_ARG);
    assert_int_equal(km_sdk_new(&sdk, NULL, "http://127.0.0.1:1"), KM_ERR_ARG);
    assert_int_equal(km_sdk_new(&sdk, g_ctx, "http://127.0.0.1:1"), KM_OK);
    assert_string_equal(km_sdk_last_error(sdk), "");
    unsigned char v[48] = {1};
    assert_int_equal(km_sdk_pin_pcr(sdk, 0, v, 47), KM_ERR_ARG);
    assert_int_equal(km_sdk_pin_pcr(sdk, 32, v, 48), KM_ERR_ARG);
    assert_int_equal(km_sdk_pin_pcr(sdk, 0, v, 48), KM_OK);
    assert_int_equal(km_sdk_trust_root(sdk, 0, NULL, 10), KM_ERR_ARG);
    assert_int_equal(km_sdk_trust_root(sdk, 0, v, 0), KM_ERR_ARG);
    /* No root pinned: refused before anything is asked of the gateway. */
    unsigned char pub[33] = {7};
    assert_int_equal(km_sdk_verify_enclave(sdk, 3, pub), KM_ERR_NOT_FOUND);
    assert_non_null(strstr(km_sdk_last_error(sdk), "no attestation root"));
    static const unsigned char zero[33];
    assert_memory_equal(pub, zero, 33);
    /* A root but no gateway there: an I/O error, nothing verified. */
    assert_int_equal(km_sdk_trust_root(sdk, UINT32_MAX, v, sizeof v), KM_OK);
    assert_int_equal(km_sdk_verify_enclave(sdk, 3, pub), KM_ERR_IO);
    /* Nothing verified: a keygen refuses to encrypt to anyone. */
    km_sdk_keygen_params p;
    memset(&p, 0, sizeof p);
    p.n_participants = 2;
    km_tweak_bip86(&p.tweak);
    p.timeout_secs = 60;
    km_sdk_session *s = (km_sdk_session *)0x1;
    assert_int_equal(km_sdk_keygen_create(sdk, &p, &s), KM_ERR_STATE);
    assert_null(s);
    p.timeout_secs = 0;
    assert_int_equal(km_sdk_keygen_create(sdk, &p, &s), KM_ERR_ARG);
    /* Joining an imported session: the enclave is not verified here. */
    assert_int_equal(km_sdk_session_import(g_ctx, VALID, &s), KM_OK);
    unsigned char sk[32], ak[32];
    memset(sk, 0x11, 32);
    memset(ak, 0x22, 32);
    assert_int_equal(km_sdk_keygen_join(sdk, s, 0, sk, ak, 0), KM_ERR_STATE);
    assert_int_equal(km_sdk_keygen_join(sdk, s, 2, sk, ak, 0), KM_ERR_RANGE);
    km_sdk_session_free(s);
    km_sdk_free(sdk);
    km_sdk_free(NULL);
    km_sdk_session_free(NULL);
    km_sdk_keygen_result_clear(NULL);
    km_sdk_sign_result_clear(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_import_refuses),
        cmocka_unit_test(test_handle_args),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
