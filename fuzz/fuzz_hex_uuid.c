/* fuzz/fuzz_hex_uuid.c — hex and UUID parsing (src/core/hex.c, uuid.c).
 *
 * Input: arbitrary text. Checks beyond "no crash": whatever parses must
 * encode back to exactly the input (one spelling per value). */
#include <stdlib.h>
#include <string.h>

#include "keymeld/hex.h"
#include "keymeld/uuid.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    const char *s = (const char *)data;
    unsigned char out[256];
    size_t n = 0;
    if (km_hex_decode_var(out, sizeof out, &n, s, size) == KM_OK) {
        char back[2 * sizeof out + 1];
        if (km_hex_encode(back, sizeof back, out, n) != KM_OK || 2 * n != size || memcmp(back, s, size))
            abort();
    }
    if (size % 2 == 0 && size / 2 <= sizeof out) {
        km_err e = km_hex_decode(out, size / 2, s, size);
        if (e == KM_OK) {
            char back[2 * sizeof out + 1];
            if (km_hex_encode(back, sizeof back, out, size / 2) != KM_OK || memcmp(back, s, size)) abort();
        }
    }
    km_uuid u;
    if (km_uuid_parse(&u, s, size) == KM_OK) {
        char back[37];
        km_uuid_format(back, &u);
        if (size != 36 || memcmp(back, s, 36)) abort();
        (void)km_uuid_version(&u);
    }
    return 0;
}
