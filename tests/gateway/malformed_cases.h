/* malformed_cases.h — the data of tests/gateway/test_gateway_malformed.c:
 * broken JSON bodies, wrong values for each field type, and bad path ids,
 * each with the error code docs/API.md (sections 1 and 2) documents for it.
 *
 * A value is raw JSON text put where a field's value goes, so that spellings
 * jansson would normalise (1.0, -0, 1e400, 2^64) reach the gateway as sent.
 * "code" is the expected error code; the status is 400 for every row here. */
#ifndef KM_TESTS_GATEWAY_MALFORMED_CASES_H
#define KM_TESTS_GATEWAY_MALFORMED_CASES_H

#include <stddef.h>

typedef struct mal_value {
    const char *label; /* short name for the report */
    const char *raw;   /* JSON text of the value */
    const char *code;  /* invalid_field or invalid_json */
} mal_value;

typedef struct mal_body {
    const char *label;
    const char *bytes; /* may hold NULs: len says how many bytes */
    size_t len;        /* 0: strlen(bytes) */
    const char *code;
} mal_body;

#define MAL_F "invalid_field"
#define MAL_J "invalid_json"
#define MAL_U "01963f40-2d5e-7a81-b3c4-d5e6f708192a"

/* Bodies that are not one JSON object (section 1: "the body is not one JSON
 * object (empty, malformed, duplicate key, scalar, trailing data)"). */
static const mal_body MAL_BROKEN[] = {
    {"empty", "", 0, MAL_J},
    {"whitespace only", " \r\n\t ", 0, MAL_J},
    {"truncated object", "{", 0, MAL_J},
    {"truncated key", "{\"keygen_id", 0, MAL_J},
    {"truncated value", "{\"keygen_id\":\"" MAL_U, 0, MAL_J},
    {"truncated after comma", "{\"a\":1,", 0, MAL_J},
    {"trailing garbage", "{}x", 0, MAL_J},
    {"two objects", "{} {}", 0, MAL_J},
    {"trailing NUL", "{}\0", 3, MAL_J},
    {"NUL before object", "\0{}", 3, MAL_J},
    {"raw NUL in key", "{\"a\0b\":1}", 9, MAL_J},
    {"raw NUL in string", "{\"keygen_id\":\"a\0b\"}", 19, MAL_J},
    {"escaped NUL in value", "{\"keygen_id\":\"\\u0000\"}", 0, MAL_J},
    {"escaped NUL in key", "{\"\\u0000\":1}", 0, MAL_J},
    {"invalid UTF-8 0xff", "{\"x\":\"\xff\"}", 0, MAL_J},
    {"invalid UTF-8 continuation alone", "{\"x\":\"\x80\"}", 0, MAL_J},
    {"truncated UTF-8 sequence", "{\"x\":\"\xe2\x82\"}", 0, MAL_J},
    {"overlong '/' (2 bytes)", "{\"x\":\"\xc0\xaf\"}", 0, MAL_J},
    {"overlong '/' (3 bytes)", "{\"x\":\"\xe0\x80\xaf\"}", 0, MAL_J},
    {"overlong NUL (2 bytes)", "{\"x\":\"\xc0\x80\"}", 0, MAL_J},
    {"UTF-8 encoded surrogate", "{\"x\":\"\xed\xa0\x80\"}", 0, MAL_J},
    {"code point above U+10FFFF", "{\"x\":\"\xf4\x90\x80\x80\"}", 0, MAL_J},
    {"5-byte UTF-8", "{\"x\":\"\xf8\x88\x80\x80\x80\"}", 0, MAL_J},
    {"lone high surrogate \\ud800", "{\"x\":\"\\ud800\"}", 0, MAL_J},
    {"lone low surrogate \\udc00", "{\"x\":\"\\udc00\"}", 0, MAL_J},
    {"reversed surrogate pair", "{\"x\":\"\\udc00\\ud800\"}", 0, MAL_J},
    {"high surrogate then letter", "{\"x\":\"\\ud800a\"}", 0, MAL_J},
    {"bad escape", "{\"x\":\"\\q\"}", 0, MAL_J},
    {"short \\u escape", "{\"x\":\"\\u12\"}", 0, MAL_J},
    {"UTF-8 BOM", "\xef\xbb\xbf{}", 0, MAL_J},
    {"UTF-16 BOM", "\xff\xfe{\0}\0", 6, MAL_J},
    {"array", "[]", 0, MAL_J},
    {"string", "\"{}\"", 0, MAL_J},
    {"null", "null", 0, MAL_J},
    {"number", "123", 0, MAL_J},
    {"true", "true", 0, MAL_J},
    {"single quotes", "{'a':1}", 0, MAL_J},
    {"unquoted key", "{a:1}", 0, MAL_J},
    {"trailing comma", "{\"a\":1,}", 0, MAL_J},
    {"comment", "{/*c*/}", 0, MAL_J},
    {"NaN", "{\"timeout_secs\":NaN}", 0, MAL_J},
    {"Infinity", "{\"timeout_secs\":Infinity}", 0, MAL_J},
    {"control character in string", "{\"x\":\"\x01\"}", 0, MAL_J},
    {"raw newline in string", "{\"x\":\"a\nb\"}", 0, MAL_J},
    {"duplicate key", "{\"a\":1,\"a\":1}", 0, MAL_J},
    {"duplicate key by escape", "{\"keygen_id\":1,\"keygen\\u005fid\":1}", 0, MAL_J},
    {"duplicate key nested", "{\"participants\":[{\"user_id\":1,\"user_id\":2}]}", 0, MAL_J},
    {"integer 2^64", "{\"timeout_secs\":18446744073709551616}", 0, MAL_J},
    {"integer 2^63", "{\"timeout_secs\":9223372036854775808}", 0, MAL_J},
    {"integer -2^63-1", "{\"timeout_secs\":-9223372036854775809}", 0, MAL_J},
    {"real 1e400", "{\"timeout_secs\":1e400}", 0, MAL_J},
    {"real -1e400", "{\"timeout_secs\":-1e400}", 0, MAL_J},
    {"leading zero", "{\"timeout_secs\":01}", 0, MAL_J},
    {"plus sign", "{\"timeout_secs\":+1}", 0, MAL_J},
    {"hex number", "{\"timeout_secs\":0x10}", 0, MAL_J},
    {"bare dot", "{\"timeout_secs\":.5}", 0, MAL_J},
    {"trailing dot", "{\"timeout_secs\":1.}", 0, MAL_J},
};
#define MAL_N_BROKEN (sizeof MAL_BROKEN / sizeof MAL_BROKEN[0])

/* The subset of MAL_BROKEN sent to every endpoint with a body (all of it
 * goes to POST /keygen). Indexes into MAL_BROKEN. */
static const size_t MAL_BROKEN_EVERYWHERE[] = {0, 2, 6, 9, 12, 14, 18, 23, 29, 31, 44};
#define MAL_N_BROKEN_EVERYWHERE (sizeof MAL_BROKEN_EVERYWHERE / sizeof MAL_BROKEN_EVERYWHERE[0])

/* Wrong values for a UUID field. */
static const mal_value MAL_BAD_UUID[] = {
    {"number", "123", MAL_F},
    {"true", "true", MAL_F},
    {"null", "null", MAL_F},
    {"array", "[]", MAL_F},
    {"object", "{}", MAL_F},
    {"empty string", "\"\"", MAL_F},
    {"uppercase", "\"01963F40-2D5E-7A81-B3C4-D5E6F708192A\"", MAL_F},
    {"nil UUID", "\"00000000-0000-0000-0000-000000000000\"", MAL_F},
    {"no dashes", "\"01963f402d5e7a81b3c4d5e6f708192a\"", MAL_F},
    {"braces", "\"{" MAL_U "}\"", MAL_F},
    {"35 characters", "\"01963f40-2d5e-7a81-b3c4-d5e6f708192\"", MAL_F},
    {"37 characters", "\"" MAL_U "0\"", MAL_F},
    {"urn prefix", "\"urn:uuid:" MAL_U "\"", MAL_F},
    {"leading space", "\" " MAL_U "\"", MAL_F},
    {"trailing newline", "\"" MAL_U "\\n\"", MAL_F},
    {"underscores", "\"01963f40_2d5e_7a81_b3c4_d5e6f708192a\"", MAL_F},
    {"non-hex digit", "\"g1963f40-2d5e-7a81-b3c4-d5e6f708192a\"", MAL_F},
    {"fullwidth digit",
     "\"\xef\xbc\x90"
     "1963f40-2d5e-7a81-b3c4-d5e6f708192a\"",
     MAL_F},
    {"zero-width space", "\"01963f40\xe2\x80\x8b-2d5e-7a81-b3c4-d5e6f708192a\"", MAL_F},
    {"escaped NUL", "\"" MAL_U "\\u0000\"", MAL_J},
};

/* Wrong values for any hex field (lengths are added by the test). */
static const mal_value MAL_BAD_HEX[] = {
    {"number", "1", MAL_F},
    {"null", "null", MAL_F},
    {"true", "true", MAL_F},
    {"array", "[]", MAL_F},
    {"object", "{}", MAL_F},
    {"empty string", "\"\"", MAL_F},
    {"odd length", "\"0\"", MAL_F},
    {"non-hex", "\"zz\"", MAL_F},
    {"uppercase", "\"AB\"", MAL_F},
    {"mixed case", "\"aB\"", MAL_F},
    {"0x prefix", "\"0x00\"", MAL_F},
    {"leading space", "\" 00\"", MAL_F},
    {"trailing space", "\"00 \"", MAL_F},
    {"non-ASCII",
     "\"\xc3\xa9"
     "0\"",
     MAL_F},
};

/* Wrong values for an unsigned integer field (range rows are added by the
 * test from each field's limits). */
static const mal_value MAL_BAD_UINT[] = {
    {"string", "\"5\"", MAL_F},
    {"real 5.0", "5.0", MAL_F},
    {"real 1.5", "1.5", MAL_F},
    {"exponent 1e3", "1e3", MAL_F},
    {"exponent 1E3", "1E3", MAL_F},
    {"negative", "-1", MAL_F},
    {"true", "true", MAL_F},
    {"null", "null", MAL_F},
    {"array", "[]", MAL_F},
    {"object", "{}", MAL_F},
    {"underflowing real 1e-400", "1e-400", MAL_F},
    {"2^64", "18446744073709551616", MAL_J},
    {"2^63", "9223372036854775808", MAL_J},
    {"1e400", "1e400", MAL_J},
    {"leading zero", "01", MAL_J},
    {"plus sign", "+1", MAL_J},
};

/* Wrong values for a boolean field. */
static const mal_value MAL_BAD_BOOL[] = {
    {"string true", "\"true\"", MAL_F},
    {"string false", "\"false\"", MAL_F},
    {"one", "1", MAL_F},
    {"zero", "0", MAL_F},
    {"null", "null", MAL_F},
    {"array", "[]", MAL_F},
    {"object", "{}", MAL_F},
    {"capitalised True", "True", MAL_J},
};

/* Wrong values for an array-of-objects field. */
static const mal_value MAL_BAD_ARRAY[] = {
    {"object", "{}", MAL_F},
    {"string", "\"[]\"", MAL_F},
    {"null", "null", MAL_F},
    {"number", "1", MAL_F},
    {"empty array", "[]", MAL_F},
    {"element number", "[1]", MAL_F},
    {"element string", "[\"x\"]", MAL_F},
    {"element null", "[null]", MAL_F},
    {"element array", "[[]]", MAL_F},
    {"element empty object", "[{}]", MAL_F},
    {"unterminated", "[{}", MAL_J},
};

/* Bad ids in a path segment where a UUID is expected: 400 invalid_path.
 * Raw request-target bytes (not percent-decoded by the gateway). */
static const char *const MAL_BAD_PATH_UUID[] = {
    "01963F40-2D5E-7A81-B3C4-D5E6F708192A",
    "00000000-0000-0000-0000-000000000000",
    "01963f402d5e7a81b3c4d5e6f708192a",
    "01963f40-2d5e-7a81-b3c4-d5e6f708192",
    MAL_U "0",
    "%7B" MAL_U "%7D",
    "%30"
    "1963f40-2d5e-7a81-b3c4-d5e6f708192a",
    "\xc3\xa9"
    "1963f40-2d5e-7a81-b3c4-d5e6f708192a",
    "null",
    "-1",
};
#define MAL_N_BAD_PATH_UUID (sizeof MAL_BAD_PATH_UUID / sizeof MAL_BAD_PATH_UUID[0])

/* Bad enclave ids in /api/v1/enclaves/{enclave_id}: 400 invalid_path. */
static const char *const MAL_BAD_ENCLAVE_ID[] = {
    "01", "-1", "+1", "4294967296", "99999999999999999999999", "1.0", "0x1", "1a", "%31", "1e0",
};

/* Bad ?wait= values on the three long-poll routes: 400 invalid_query
 * (the tests run the gateway with max_wait_seconds = 2). */
static const char *const MAL_BAD_WAIT[] = {
    "wait=-1", "wait=99999",  "wait=abc",        "wait=",    "wait",         "wait=%zz",  "wait=1e1",
    "wait=+1", "wait=%2B1",   "wait=0x1",        "wait=1.5", "wait=0000001", "wait=%201", "wait=1%00",
    "wait=3",  "wait=999999", "wait=abc&wait=1",
};

/* Bad ?nonce= values on /api/v1/enclaves/{id}: 400 invalid_query. */
static const char *const MAL_BAD_NONCE[] = {
    "nonce=", "nonce", "nonce=zz", "nonce=0", "nonce=AB", "nonce=%zz", "nonce=0x00", "nonce=%00",
};

#endif
