/* keymeld/hex.h — strict hexadecimal.
 *
 * Output is always lowercase. Input must be exactly the expected length and
 * consist of [0-9a-f] only: uppercase, whitespace, a "0x" prefix or an odd
 * length is KM_ERR_PARSE. One canonical spelling per value means an id or a
 * key can be compared as text and cannot be smuggled in a second form.
 */
#ifndef KEYMELD_HEX_H
#define KEYMELD_HEX_H

#include <stddef.h>

#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Encode len bytes as 2*len lowercase hex digits plus a NUL.
 *
 *  Returns: KM_OK; KM_ERR_BUFFER_SMALL if out_size < 2*len + 1 (out untouched).
 *  Out:     out: buffer of out_size bytes.
 *  In:      in: len bytes (may be NULL if len is 0).
 */
KM_WARN_UNUSED km_err km_hex_encode(char *out, size_t out_size, const unsigned char *in, size_t len)
    KM_NONNULL(1);

/** Decode exactly out_len bytes from a hex string of exactly 2*out_len chars.
 *
 *  Returns: KM_OK; KM_ERR_RANGE if hex_len != 2*out_len; KM_ERR_PARSE on any
 *           character outside [0-9a-f]. On failure out is zeroed.
 *  Out:     out: out_len bytes.
 *  In:      hex: hex_len characters (need not be NUL-terminated).
 */
KM_WARN_UNUSED km_err km_hex_decode(unsigned char *out, size_t out_len, const char *hex, size_t hex_len)
    KM_NONNULL(1);

/** Decode a hex string of any even length up to 2*cap characters.
 *
 *  Returns: KM_OK; KM_ERR_RANGE if hex_len is odd or exceeds 2*cap; KM_ERR_PARSE
 *           on a bad character.
 *  Out:     out: cap bytes available; *out_len receives the decoded length.
 */
KM_WARN_UNUSED km_err km_hex_decode_var(unsigned char *out, size_t cap, size_t *out_len, const char *hex,
                                        size_t hex_len) KM_NONNULL(1, 3);

#ifdef __cplusplus
}
#endif
#endif
