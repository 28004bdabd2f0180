/* uuid.c — UUIDv7 generation and strict canonical parsing. */
#include <string.h>

#include "keymeld/aead.h"
#include "keymeld/hex.h"
#include "keymeld/uuid.h"

km_err km_uuid_v7(km_uuid *out, uint64_t unix_ms) {
    if (km_random_bytes(out->b, sizeof out->b) != KM_OK) return KM_ERR_RANDOM;
    for (int i = 0; i < 6; i++)
        out->b[i] = (unsigned char)(unix_ms >> (40 - 8 * i));
    out->b[6] = (unsigned char)(0x70 | (out->b[6] & 0x0f)); /* version 7 */
    out->b[8] = (unsigned char)(0x80 | (out->b[8] & 0x3f)); /* variant 10 */
    return KM_OK;
}

/* Offsets of the five groups in the text form and their byte lengths. */
static const struct {
    unsigned text_off, byte_off, bytes;
} uuid_groups[5] = {{0, 0, 4}, {9, 4, 2}, {14, 6, 2}, {19, 8, 2}, {24, 10, 6}};

km_err km_uuid_parse(km_uuid *out, const char *s, size_t len) {
    memset(out, 0, sizeof *out);
    if (len != KM_UUID_STR_LEN || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
        return KM_ERR_PARSE;
    for (int g = 0; g < 5; g++) {
        if (km_hex_decode(out->b + uuid_groups[g].byte_off, uuid_groups[g].bytes, s + uuid_groups[g].text_off,
                          2u * uuid_groups[g].bytes) != KM_OK) {
            memset(out, 0, sizeof *out);
            return KM_ERR_PARSE;
        }
    }
    static const unsigned char nil[16];
    if (memcmp(out->b, nil, 16) == 0) return KM_ERR_PARSE;
    return KM_OK;
}

void km_uuid_format(char out[37], const km_uuid *u) {
    char hex[33];
    /* 33 bytes always suffice for 16 bytes of input. */
    if (km_hex_encode(hex, sizeof hex, u->b, 16) != KM_OK) hex[0] = '\0';
    char *o = out;
    for (int g = 0; g < 5; g++) {
        memcpy(o, hex + 2 * uuid_groups[g].byte_off, 2u * uuid_groups[g].bytes);
        o += 2u * uuid_groups[g].bytes;
        if (g < 4) *o++ = '-';
    }
    *o = '\0';
}

int km_uuid_version(const km_uuid *u) {
    return u->b[6] >> 4;
}
