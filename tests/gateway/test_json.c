/* test_json.c — strict JSON body validation: every rule with its message,
 * duplicate keys, non-objects, unknown fields, type confusions, ranges, hex
 * case and length, UUID spellings, and the getters after a check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gateway/json.h"

static const km_json_field FIELDS[] = {
    {"keygen_id", KM_JSON_UUID, 1, 0, 0}, {"timeout", KM_JSON_UINT, 0, 1, 3600},
    {"blob", KM_JSON_HEX, 0, 1, 4096},    {"pubkey", KM_JSON_HEX, 0, 33, 33},
    {"items", KM_JSON_ARRAY, 0, 1, 100},  {"name", KM_JSON_STRING, 0, 1, 8},
    {"approve", KM_JSON_BOOL, 0, 0, 0},   {"policy", KM_JSON_OBJECT, 0, 0, 0},
    {"any_hex", KM_JSON_HEX, 0, 0, 0},    {"big", KM_JSON_UINT, 0, 10, 0},
    {"list", KM_JSON_ARRAY, 0, 2, 0},     {"label", KM_JSON_STRING, 0, 0, 0},
};
#define NF (sizeof FIELDS / sizeof FIELDS[0])
#define ID "0190f2a4-7b1c-7d3e-8f00-112233445566"

/* Parse text (must be a valid object) and check it; returns the code and the message. */
static km_err check_text(const char *text, char *msg, size_t msglen) {
    json_t *obj = NULL;
    km_err err = km_json_parse_object((const unsigned char *)text, strlen(text), &obj, msg, msglen);
    if (err != KM_OK) fail_msg("parse failed for %s: %s", text, msg);
    err = km_json_check(obj, FIELDS, NF, msg, msglen);
    json_decref(obj);
    return err;
}

static void want_check(const char *text, const char *message) {
    char msg[200];
    km_err err = check_text(text, msg, sizeof msg);
    if (message == NULL) {
        if (err != KM_OK) fail_msg("%s refused: %s", text, msg);
        assert_string_equal(msg, "");
        return;
    }
    if (err != KM_ERR_PARSE) fail_msg("%s accepted", text);
    if (strcmp(msg, message) != 0) fail_msg("%s: got \"%s\", want \"%s\"", text, msg, message);
}

static void want_parse_fail(const char *text, size_t len, const char *prefix) {
    json_t *obj = (json_t *)(uintptr_t)1;
    char msg[200];
    km_err err = km_json_parse_object((const unsigned char *)text, len, &obj, msg, sizeof msg);
    assert_int_equal(err, KM_ERR_PARSE);
    assert_null(obj);
    if (strncmp(msg, prefix, strlen(prefix)) != 0) fail_msg("message \"%s\" lacks \"%s\"", msg, prefix);
}

static void test_parse_object(void **state) {
    (void)state;
    const char *not_json = "body is not valid JSON: ";
    want_parse_fail("", 0, "body is not valid JSON: empty body");
    want_parse_fail("{", 1, not_json);
    want_parse_fail("{\"a\":1,}", 8, not_json);
    want_parse_fail("{\"a\":1} x", 9, not_json);            /* trailing garbage */
    want_parse_fail("{\"a\":1}{}", 9, not_json);            /* two values */
    want_parse_fail("{\"a\":1,\"a\":2}", 13, not_json);     /* duplicate key */
    want_parse_fail("{\"a\":\"x\\u0000y\"}", 16, not_json); /* NUL in a string */
    want_parse_fail("{\"a\":\"\xff\"}", 8, not_json);       /* invalid UTF-8 */
    want_parse_fail("{\"a\":1}\0", 8, not_json);            /* raw NUL after the object */
    want_parse_fail("[1,2]", 5, "body must be a JSON object");
    want_parse_fail("\"str\"", 5, "body must be a JSON object");
    want_parse_fail("42", 2, "body must be a JSON object");
    want_parse_fail("null", 4, "body must be a JSON object");

    json_t *obj = NULL;
    char msg[64];
    assert_int_equal(
        km_json_parse_object((const unsigned char *)" {\"a\" : [1, {}]}\n", 17, &obj, msg, sizeof msg),
        KM_OK);
    assert_non_null(obj);
    assert_string_equal(msg, "");
    assert_true(json_is_array(json_object_get(obj, "a")));
    json_decref(obj);
    /* No message buffer is fine. */
    assert_int_equal(km_json_parse_object((const unsigned char *)"[]", 2, &obj, NULL, 0), KM_ERR_PARSE);
    assert_int_equal(km_json_parse_object(NULL, 3, &obj, NULL, 0), KM_ERR_ARG);
}

static void test_check_fields(void **state) {
    (void)state;
    want_check("{\"keygen_id\":\"" ID "\"}", NULL);
    want_check("{\"keygen_id\":\"" ID
               "\",\"timeout\":3600,\"blob\":\"00ff\",\"items\":[1],\"name\":\"\xc3\xa9t\xc3\xa9\","
               "\"approve\":false,\"policy\":{},\"any_hex\":\"\",\"big\":9007199254740993,\"list\":[1,2,3],"
               "\"label\":\"\"}",
               NULL);
    want_check("{}", "missing field 'keygen_id'");
    want_check("{\"keygen_id\":\"" ID "\",\"extra\":1}", "unknown field 'extra'");
    /* An unknown name is quoted only as short printable ASCII. */
    want_check("{\"keygen_id\":\"" ID "\",\"a\\nb\\u00e9\":1}", "unknown field 'a?b?\?'");
    char longname[300];
    memset(longname, 'z', 100);
    longname[100] = '\0';
    char text[512];
    snprintf(text, sizeof text, "{\"%s\":1}", longname);
    char want[128];
    snprintf(want, sizeof want, "unknown field '%.64s...'", longname);
    want_check(text, want);
    /* Unknown fields are reported before missing ones. */
    want_check("{\"x\":1}", "unknown field 'x'");
    /* null is never a value. */
    want_check("{\"keygen_id\":null}", "field 'keygen_id' must be a lowercase UUID (8-4-4-4-12)");
    want_check("{\"keygen_id\":\"" ID "\",\"timeout\":null}", "field 'timeout' must be an unsigned integer");
}

static void test_check_uint(void **state) {
    (void)state;
    const char *bad_type = "field 'timeout' must be an unsigned integer";
    const char *bad_range = "field 'timeout' must be an unsigned integer in 1..3600";
    want_check("{\"keygen_id\":\"" ID "\",\"timeout\":1}", NULL);
    want_check("{\"keygen_id\":\"" ID "\",\"timeout\":0}", bad_range);
    want_check("{\"keygen_id\":\"" ID "\",\"timeout\":3601}", bad_range);
    want_check("{\"keygen_id\":\"" ID "\",\"timeout\":-1}", bad_type);
    want_check("{\"keygen_id\":\"" ID "\",\"timeout\":1.0}", bad_type);
    want_check("{\"keygen_id\":\"" ID "\",\"timeout\":1e2}", bad_type);
    want_check("{\"keygen_id\":\"" ID "\",\"timeout\":true}", bad_type);
    want_check("{\"keygen_id\":\"" ID "\",\"timeout\":\"5\"}", bad_type);
    want_check("{\"keygen_id\":\"" ID "\",\"big\":9}", "field 'big' must be an unsigned integer >= 10");
    want_check("{\"keygen_id\":\"" ID "\",\"big\":9223372036854775807}", NULL);
    /* Beyond int64 jansson refuses the number itself. */
    json_t *obj = NULL;
    char msg[200];
    const char *huge = "{\"big\":18446744073709551616}";
    assert_int_equal(km_json_parse_object((const unsigned char *)huge, strlen(huge), &obj, msg, sizeof msg),
                     KM_ERR_PARSE);
}

static void test_check_hex(void **state) {
    (void)state;
    const char *blob = "field 'blob' must be 1..4096 bytes of lowercase hex";
    want_check("{\"keygen_id\":\"" ID "\",\"blob\":\"0a\"}", NULL);
    want_check("{\"keygen_id\":\"" ID "\",\"blob\":\"0A\"}", blob);  /* uppercase */
    want_check("{\"keygen_id\":\"" ID "\",\"blob\":\"0a1\"}", blob); /* odd length */
    want_check("{\"keygen_id\":\"" ID "\",\"blob\":\"\"}", blob);    /* below min */
    want_check("{\"keygen_id\":\"" ID "\",\"blob\":\"0x0a\"}", blob);
    want_check("{\"keygen_id\":\"" ID "\",\"blob\":\" 0a\"}", blob);
    want_check("{\"keygen_id\":\"" ID "\",\"blob\":\"zz\"}", blob);
    want_check("{\"keygen_id\":\"" ID "\",\"blob\":10}", blob);
    want_check("{\"keygen_id\":\"" ID "\",\"any_hex\":\"ABCD\"}", "field 'any_hex' must be lowercase hex");
    /* Above max: 4097 bytes. */
    size_t n = 2 * 4097;
    char *text = malloc(n + 128);
    assert_non_null(text);
    int off = snprintf(text, n + 128, "{\"keygen_id\":\"" ID "\",\"blob\":\"");
    memset(text + off, 'a', n);
    strcpy(text + off + n, "\"}");
    want_check(text, blob);
    text[off + n - 2] = '"'; /* exactly 4096 bytes */
    text[off + n - 1] = '}';
    text[off + n] = '\0';
    want_check(text, NULL);
    free(text);
    /* Fixed length: one spelling of the range. */
    char pk[200];
    snprintf(pk, sizeof pk, "{\"keygen_id\":\"" ID "\",\"pubkey\":\"02%064d\"}", 0);
    want_check(pk, NULL);
    snprintf(pk, sizeof pk, "{\"keygen_id\":\"" ID "\",\"pubkey\":\"02%062d\"}", 0);
    want_check(pk, "field 'pubkey' must be 33 bytes of lowercase hex");
}

static void test_check_uuid(void **state) {
    (void)state;
    const char *bad = "field 'keygen_id' must be a lowercase UUID (8-4-4-4-12)";
    want_check("{\"keygen_id\":\"0190F2A4-7B1C-7D3E-8F00-112233445566\"}", bad); /* uppercase */
    want_check("{\"keygen_id\":\"0190f2a47b1c7d3e8f00112233445566\"}", bad);     /* no dashes */
    want_check("{\"keygen_id\":\"{0190f2a4-7b1c-7d3e-8f00-112233445566}\"}", bad);
    want_check("{\"keygen_id\":\"0190f2a4-7b1c-7d3e-8f00-11223344556\"}", bad);
    want_check("{\"keygen_id\":\"0190f2a4-7b1c-7d3e-8f00-1122334455667\"}", bad);
    want_check("{\"keygen_id\":\"0190f2a4_7b1c-7d3e-8f00-112233445566\"}", bad);
    want_check("{\"keygen_id\":\"00000000-0000-0000-0000-000000000000\"}", bad); /* nil */
    want_check("{\"keygen_id\":16}", bad);
}

static void test_check_other_types(void **state) {
    (void)state;
    want_check("{\"keygen_id\":\"" ID "\",\"items\":[]}", "field 'items' must have 1..100 elements");
    want_check("{\"keygen_id\":\"" ID "\",\"items\":{}}", "field 'items' must be an array");
    want_check("{\"keygen_id\":\"" ID "\",\"list\":[1]}", "field 'list' must have at least 2 elements");
    char text[1024];
    int off = snprintf(text, sizeof text, "{\"keygen_id\":\"" ID "\",\"items\":[");
    for (int i = 0; i < 101; i++)
        off += snprintf(text + off, sizeof text - (size_t)off, i ? ",%d" : "%d", i % 10);
    snprintf(text + off, sizeof text - (size_t)off, "]}");
    want_check(text, "field 'items' must have 1..100 elements");
    want_check("{\"keygen_id\":\"" ID "\",\"name\":\"\"}", "field 'name' must be a string of 1..8 bytes");
    want_check("{\"keygen_id\":\"" ID "\",\"name\":\"123456789\"}",
               "field 'name' must be a string of 1..8 bytes");
    /* Length is in bytes: four 2-byte characters fit, five do not. */
    want_check("{\"keygen_id\":\"" ID "\",\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}", NULL);
    want_check("{\"keygen_id\":\"" ID "\",\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}",
               "field 'name' must be a string of 1..8 bytes");
    want_check("{\"keygen_id\":\"" ID "\",\"name\":7}", "field 'name' must be a string");
    want_check("{\"keygen_id\":\"" ID "\",\"approve\":1}", "field 'approve' must be a boolean");
    want_check("{\"keygen_id\":\"" ID "\",\"approve\":\"true\"}", "field 'approve' must be a boolean");
    want_check("{\"keygen_id\":\"" ID "\",\"policy\":[]}", "field 'policy' must be an object");

    /* A string with an embedded NUL built in code (the parser never yields one). */
    json_t *obj = json_pack("{s:s,s:s%}", "keygen_id", ID, "name", "a\0b", (size_t)3);
    assert_non_null(obj);
    char msg[128];
    assert_int_equal(km_json_check(obj, FIELDS, NF, msg, sizeof msg), KM_ERR_PARSE);
    assert_string_equal(msg, "field 'name' must not contain NUL");
    json_decref(obj);
    /* Not an object, and a message buffer too small (truncated, terminated). */
    json_t *arr = json_array();
    assert_int_equal(km_json_check(arr, FIELDS, NF, msg, sizeof msg), KM_ERR_ARG);
    json_decref(arr);
    obj = json_object();
    char tiny[8];
    assert_int_equal(km_json_check(obj, FIELDS, NF, tiny, sizeof tiny), KM_ERR_PARSE);
    assert_string_equal(tiny, "missing");
    json_decref(obj);
}

static void test_getters(void **state) {
    (void)state;
    char pk[200];
    snprintf(pk, sizeof pk,
             "{\"keygen_id\":\"" ID
             "\",\"timeout\":60,\"blob\":\"00ff10\",\"pubkey\":\"02%064d\",\"approve\":true,"
             "\"any_hex\":\"\",\"name\":\"x\"}",
             7);
    json_t *obj = NULL;
    char msg[128];
    assert_int_equal(km_json_parse_object((const unsigned char *)pk, strlen(pk), &obj, msg, sizeof msg),
                     KM_OK);
    assert_int_equal(km_json_check(obj, FIELDS, NF, msg, sizeof msg), KM_OK);

    unsigned char id[16];
    assert_int_equal(km_json_get_uuid(obj, "keygen_id", id), KM_OK);
    static const unsigned char want_id[16] = {0x01, 0x90, 0xf2, 0xa4, 0x7b, 0x1c, 0x7d, 0x3e,
                                              0x8f, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
    assert_memory_equal(id, want_id, 16);
    json_t *back = km_json_uuid(id);
    assert_string_equal(json_string_value(back), ID);
    json_decref(back);
    assert_int_equal(km_json_get_uuid(obj, "missing", id), KM_ERR_NOT_FOUND);
    assert_int_equal(km_json_get_uuid(obj, "blob", id), KM_ERR_PARSE);
    static const unsigned char zero16[16] = {0};
    assert_memory_equal(id, zero16, 16);

    uint64_t v = 99;
    assert_int_equal(km_json_get_uint(obj, "timeout", &v), KM_OK);
    assert_int_equal(v, 60);
    assert_int_equal(km_json_get_uint(obj, "name", &v), KM_ERR_PARSE);
    assert_int_equal(v, 0);
    assert_int_equal(km_json_get_uint(obj, "nope", &v), KM_ERR_NOT_FOUND);

    km_buf b;
    assert_int_equal(km_json_get_hex(obj, "blob", &b), KM_OK);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "\x00\xff\x10", 3);
    km_buf_free(&b);
    assert_int_equal(km_json_get_hex(obj, "any_hex", &b), KM_OK);
    assert_int_equal(b.len, 0);
    km_buf_free(&b);
    assert_int_equal(km_json_get_hex(obj, "nope", &b), KM_ERR_NOT_FOUND);
    assert_int_equal(b.len, 0);
    assert_int_equal(km_json_get_hex(obj, "timeout", &b), KM_ERR_PARSE);

    unsigned char key[33];
    assert_int_equal(km_json_get_hex_fixed(obj, "pubkey", key, 33), KM_OK);
    assert_int_equal(key[0], 0x02);
    assert_int_equal(key[32], 0x07);
    assert_int_equal(km_json_get_hex_fixed(obj, "pubkey", key, 32), KM_ERR_RANGE);
    static const unsigned char zero33[33] = {0};
    assert_memory_equal(key, zero33, 32);
    assert_int_equal(km_json_get_hex_fixed(obj, "nope", key, 33), KM_ERR_NOT_FOUND);

    assert_int_equal(km_json_get_bool(obj, "approve", 0), 1);
    assert_int_equal(km_json_get_bool(obj, "nope", 1), 1);
    assert_int_equal(km_json_get_bool(obj, "timeout", 0), 0); /* not a boolean: the default */
    json_decref(obj);

    /* Uppercase hex is refused by the getters too (they need not follow a check). */
    obj = json_pack("{s:s,s:s}", "h", "0A", "u", "0190F2A4-7B1C-7D3E-8F00-112233445566");
    assert_int_equal(km_json_get_hex(obj, "h", &b), KM_ERR_PARSE);
    assert_null(b.data);
    unsigned char one;
    assert_int_equal(km_json_get_hex_fixed(obj, "h", &one, 1), KM_ERR_PARSE);
    assert_int_equal(km_json_get_uuid(obj, "u", id), KM_ERR_PARSE);
    json_decref(obj);

    json_t *h = km_json_hex((const unsigned char *)"\x00\xab\xff", 3);
    assert_string_equal(json_string_value(h), "00abff");
    json_decref(h);
    h = km_json_hex(NULL, 0);
    assert_string_equal(json_string_value(h), "");
    json_decref(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_object), cmocka_unit_test(test_check_fields),
        cmocka_unit_test(test_check_uint),   cmocka_unit_test(test_check_hex),
        cmocka_unit_test(test_check_uuid),   cmocka_unit_test(test_check_other_types),
        cmocka_unit_test(test_getters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
