/* hex.c — strict lowercase hexadecimal.
 *
 * Secret keys and session secrets are written and read as hex (key files,
 * session invitations, the sealing key), so both directions run in time
 * independent of the bytes: no table indexed by a nibble, no branch on a
 * character. The only data-dependent outcome is the verdict (KM_OK or
 * KM_ERR_PARSE), computed without a branch; tests/ct/ct_secrets.c checks it
 * under valgrind with the input marked secret. */
#include <stdint.h>
#include <string.h>

#include "keymeld/hex.h"

/* '0'..'9' for 0..9, 'a'..'f' for 10..15: 39 = 'a' - '0' - 10 is added
 * exactly when 9 - n wraps below zero. */
static char hex_digit(unsigned n) {
    return (char)(n + '0' + (((9u - n) >> 8) & 39u));
}

/* The value of c, or -1 if c is not in [0-9a-f]. For x in [-255, 255],
 * (x >> 8) is -1 when x < 0 and 0 otherwise (arithmetic shift, as gcc and
 * clang do), so each mask is -1 exactly when its range holds. */
static int hex_val(char ch) {
    int c = (unsigned char)ch;
    int d = c - '0', l = c - 'a' + 10;
    int dm = ~((d | (9 - d)) >> 8);
    int lm = ~(((l - 10) | (15 - l)) >> 8);
    int ok = dm | lm;
    return ((d & dm) | (l & lm) | ~ok);
}

km_err km_hex_encode(char *out, size_t out_size, const unsigned char *in, size_t len) {
    if (len > (SIZE_MAX - 1) / 2 || out_size < 2 * len + 1) return KM_ERR_BUFFER_SMALL;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex_digit(in[i] >> 4);
        out[2 * i + 1] = hex_digit(in[i] & 15u);
    }
    out[2 * len] = '\0';
    return KM_OK;
}

/* Decodes n bytes; on a bad character every output byte is zeroed. Returns
 * KM_OK or KM_ERR_PARSE, chosen by a mask rather than a branch. */
static km_err decode(unsigned char *out, const char *hex, size_t n) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_val(hex[2 * i]), lo = hex_val(hex[2 * i + 1]);
        bad |= hi | lo; /* negative once any character was invalid */
        out[i] = (unsigned char)(((unsigned)hi << 4) | ((unsigned)lo & 15u));
    }
    unsigned char keep = (unsigned char)~(bad >> 8); /* 0xff if all valid, else 0 */
    for (size_t i = 0; i < n; i++)
        out[i] &= keep;
    return (km_err)((int)KM_ERR_PARSE & (bad >> 8));
}

km_err km_hex_decode(unsigned char *out, size_t out_len, const char *hex, size_t hex_len) {
    km_err err = KM_ERR_RANGE;
    if (out_len <= SIZE_MAX / 2 && hex_len == 2 * out_len) {
        if (hex) return decode(out, hex, out_len); /* zeroes out itself on failure */
        err = KM_ERR_ARG;
    }
    memset(out, 0, out_len);
    return err;
}

km_err km_hex_decode_var(unsigned char *out, size_t cap, size_t *out_len, const char *hex, size_t hex_len) {
    *out_len = 0;
    if (hex_len % 2 != 0 || hex_len / 2 > cap) return KM_ERR_RANGE;
    if (hex_len && !hex) return KM_ERR_ARG;
    km_err err = decode(out, hex, hex_len / 2);
    /* On failure the whole buffer is zeroed and the length stays 0; the
     * length is public (it is the input's), the verdict is masked. */
    size_t fail = (size_t)0 - (size_t)(err != KM_OK);
    for (size_t i = hex_len / 2; i < cap; i++)
        out[i] &= (unsigned char)~fail;
    *out_len = (hex_len / 2) & ~fail;
    return err;
}
