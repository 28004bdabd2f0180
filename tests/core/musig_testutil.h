/* musig_testutil.h — helpers for the MuSig2 / taproot vector tests (JSON + hex).
 * Include after <cmocka.h>. */
#ifndef KM_TESTS_MUSIG_TESTUTIL_H
#define KM_TESTS_MUSIG_TESTUTIL_H

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keymeld/hex.h"

/* Decode vector hex (which is uppercase in the BIPs) into exactly len bytes;
 * the strict decoder of libkeymeld only takes lowercase. */
static inline void tu_hex(unsigned char *out, size_t len, const char *hex) {
    size_t n = strlen(hex);
    char *lower = malloc(n + 1);
    assert_non_null(lower);
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)tolower((unsigned char)hex[i]);
    assert_int_equal(km_hex_decode(out, len, lower, n), KM_OK);
    free(lower);
}

/* Decode hex of any length up to cap bytes; returns the length. */
static inline size_t tu_hex_var(unsigned char *out, size_t cap, const char *hex) {
    size_t n = strlen(hex), got = 0;
    char *lower = malloc(n + 1);
    assert_non_null(lower);
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)tolower((unsigned char)hex[i]);
    assert_int_equal(km_hex_decode_var(out, cap, &got, lower, n), KM_OK);
    free(lower);
    return got;
}

static inline json_t *tu_load(const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", KM_VECTORS_DIR, rel);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) fprintf(stderr, "cannot load %s: %s (line %d)\n", path, jerr.text, jerr.line);
    assert_non_null(root);
    return root;
}

/* String member / array element that must exist. */
static inline const char *tu_str(const json_t *v) {
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static inline const char *tu_get_str(const json_t *obj, const char *key) {
    return tu_str(json_object_get(obj, key));
}

static inline size_t tu_idx(const json_t *arr, size_t i) {
    const json_t *v = json_array_get(arr, i);
    assert_true(json_is_integer(v));
    json_int_t x = json_integer_value(v);
    assert_true(x >= 0);
    return (size_t)x;
}

static inline const json_t *tu_arr(const json_t *obj, const char *key) {
    const json_t *a = json_object_get(obj, key);
    assert_true(json_is_array(a));
    return a;
}

#endif
