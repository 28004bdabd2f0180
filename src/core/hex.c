/* hex.c — strict lowercase hexadecimal. */
#include <stdint.h>
#include <string.h>

#include "keymeld/hex.h"

static int hex_val(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

km_err km_hex_encode(char *out, size_t out_size, const unsigned char *in, size_t len) {
    static const char digits[] = "0123456789abcdef";
    if (len > (SIZE_MAX - 1) / 2 || out_size < 2 * len + 1) return KM_ERR_BUFFER_SMALL;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
    return KM_OK;
}

static km_err decode(unsigned char *out, const char *hex, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int hi = hex_val(hex[2 * i]), lo = hex_val(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return KM_ERR_PARSE;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return KM_OK;
}

km_err km_hex_decode(unsigned char *out, size_t out_len, const char *hex, size_t hex_len) {
    km_err err = KM_ERR_RANGE;
    if (out_len <= SIZE_MAX / 2 && hex_len == 2 * out_len) err = hex ? decode(out, hex, out_len) : KM_ERR_ARG;
    if (err) memset(out, 0, out_len);
    return err;
}

km_err km_hex_decode_var(unsigned char *out, size_t cap, size_t *out_len, const char *hex, size_t hex_len) {
    *out_len = 0;
    if (hex_len % 2 != 0 || hex_len / 2 > cap) return KM_ERR_RANGE;
    if (hex_len && !hex) return KM_ERR_ARG;
    km_err err = decode(out, hex, hex_len / 2);
    if (err) {
        memset(out, 0, cap);
        return err;
    }
    *out_len = hex_len / 2;
    return KM_OK;
}
