/* test_encoding.c — hex, UUID and cursor: strict parsing, round trips, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keymeld/cursor.h"
#include "keymeld/hex.h"
#include "keymeld/uuid.h"

static void test_hex_roundtrip(void **state) {
    (void)state;
    unsigned char in[256], out[256];
    char text[513];
    for (int i = 0; i < 256; i++)
        in[i] = (unsigned char)i;
    assert_int_equal(km_hex_encode(text, sizeof text, in, 256), KM_OK);
    assert_int_equal(strlen(text), 512);
    assert_string_equal(text + 500, "fafbfcfdfeff");
    assert_int_equal(km_hex_decode(out, 256, text, 512), KM_OK);
    assert_memory_equal(in, out, 256);
}

static void test_hex_rejects(void **state) {
    (void)state;
    unsigned char out[4] = {1, 2, 3, 4};
    const unsigned char zero[4] = {0};
    assert_int_equal(km_hex_decode(out, 2, "ABCD", 4), KM_ERR_PARSE); /* uppercase */
    assert_memory_equal(out, zero, 2);
    assert_int_equal(km_hex_decode(out, 2, "abc", 3), KM_ERR_RANGE);    /* odd */
    assert_int_equal(km_hex_decode(out, 2, "abcdef", 6), KM_ERR_RANGE); /* too long */
    assert_int_equal(km_hex_decode(out, 2, "0xab", 4), KM_ERR_PARSE);   /* prefix */
    assert_int_equal(km_hex_decode(out, 2, "ab d", 4), KM_ERR_PARSE);   /* space */
    assert_int_equal(km_hex_decode(out, 2, "ab\0d", 4), KM_ERR_PARSE);  /* NUL */
    assert_int_equal(km_hex_decode(out, 0, "", 0), KM_OK);              /* empty is fine */
    size_t n = 99;
    assert_int_equal(km_hex_decode_var(out, 4, &n, "0011223344", 10), KM_ERR_RANGE);
    assert_int_equal(n, 0);
    assert_int_equal(km_hex_decode_var(out, 4, &n, "00112233", 8), KM_OK);
    assert_int_equal(n, 4);
    assert_int_equal(km_hex_decode_var(out, 4, &n, "0g", 2), KM_ERR_PARSE);
    char small[4];
    assert_int_equal(km_hex_encode(small, sizeof small, zero, 2), KM_ERR_BUFFER_SMALL);
}

static void test_uuid_v7(void **state) {
    (void)state;
    km_uuid a, b, p;
    char s[37];
    uint64_t ms = 0x0190a1b2c3d4ull;
    assert_int_equal(km_uuid_v7(&a, ms), KM_OK);
    assert_int_equal(km_uuid_v7(&b, ms), KM_OK);
    assert_int_equal(km_uuid_version(&a), 7);
    assert_int_equal(a.b[8] & 0xc0, 0x80);
    assert_memory_not_equal(a.b, b.b, 16); /* random part differs */
    km_uuid_format(s, &a);
    assert_int_equal(strlen(s), 36);
    assert_memory_equal(s, "0190a1b2-c3d4-7", 15);
    assert_int_equal(km_uuid_parse(&p, s, 36), KM_OK);
    assert_memory_equal(p.b, a.b, 16);
}

static void test_uuid_rejects(void **state) {
    (void)state;
    km_uuid u;
    const char *bad[] = {
        "0190A1B2-C3D4-7abc-8def-0123456789ab",   /* uppercase */
        "0190a1b2c3d47abc8def0123456789ab",       /* no dashes */
        "{0190a1b2-c3d4-7abc-8def-0123456789ab}", /* braces */
        "0190a1b2-c3d4-7abc-8def-0123456789a",    /* short */
        "0190a1b2-c3d4-7abc-8def_0123456789ab",   /* wrong separator */
        "00000000-0000-0000-0000-000000000000",   /* nil */
        "0190a1b2-c3d4-7abc-8def-0123456789ag",   /* bad digit */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(km_uuid_parse(&u, bad[i], strlen(bad[i])), KM_ERR_PARSE);
    assert_int_equal(km_uuid_parse(&u, "0190a1b2-c3d4-7abc-8def-0123456789ab", 36), KM_OK);
}

static void test_cursor_bounds(void **state) {
    (void)state;
    const unsigned char data[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};
    km_cursor c;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    unsigned char out[8];
    km_cursor_init(&c, data, sizeof data);
    assert_int_equal(km_cursor_get_u8(&c, &u8), KM_OK);
    assert_int_equal(u8, 1);
    assert_int_equal(km_cursor_get_u16(&c, &u16), KM_OK);
    assert_int_equal(u16, 0x0203);
    assert_int_equal(km_cursor_get_u32(&c, &u32), KM_OK);
    assert_int_equal(u32, 0x04050607u);
    assert_int_equal(km_cursor_finish(&c), KM_OK);
    /* Reading past the end fails, poisons the cursor, and finish reports it. */
    km_cursor_init(&c, data, sizeof data);
    assert_int_equal(km_cursor_get_bytes(&c, out, 8), KM_ERR_PARSE);
    assert_int_equal(km_cursor_get_u8(&c, &u8), KM_ERR_PARSE);
    assert_int_equal(km_cursor_remaining(&c), 0);
    assert_int_equal(km_cursor_finish(&c), KM_ERR_PARSE);
    /* Trailing bytes are an error. */
    km_cursor_init(&c, data, sizeof data);
    assert_int_equal(km_cursor_get_bytes(&c, out, 6), KM_OK);
    assert_int_equal(km_cursor_finish(&c), KM_ERR_PARSE);
}

static void test_buf_writer(void **state) {
    (void)state;
    km_buf b;
    km_buf_init(&b);
    for (int i = 0; i < 100; i++)
        assert_int_equal(km_buf_put_u32(&b, (uint32_t)i), KM_OK);
    assert_int_equal(b.len, 400);
    km_cursor c;
    km_cursor_init(&c, b.data, b.len);
    for (uint32_t i = 0; i < 100; i++) {
        uint32_t v;
        assert_int_equal(km_cursor_get_u32(&c, &v), KM_OK);
        assert_int_equal(v, i);
    }
    assert_int_equal(km_cursor_finish(&c), KM_OK);
    km_buf_free(&b);
    assert_null(b.data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_roundtrip), cmocka_unit_test(test_hex_rejects),
        cmocka_unit_test(test_uuid_v7),       cmocka_unit_test(test_uuid_rejects),
        cmocka_unit_test(test_cursor_bounds), cmocka_unit_test(test_buf_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
