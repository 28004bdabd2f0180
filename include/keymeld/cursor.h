/* keymeld/cursor.h — bounded reading and growable writing of bytes.
 *
 * Every byte that arrives from outside (enclave frames, files, blobs) is read
 * through a km_cursor: each get checks the remaining length first and fails
 * with KM_ERR_PARSE instead of reading past the end; after a failure the
 * cursor is poisoned and every later get fails too, so a parser can do a run
 * of gets and check once. km_buf is the matching writer.
 */
#ifndef KEYMELD_CURSOR_H
#define KEYMELD_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct km_cursor {
    const unsigned char *p; /**< start of the input (not owned) */
    size_t len;             /**< total length */
    size_t pos;             /**< next byte to read */
    int failed;             /**< set by the first failed get */
} km_cursor;

/** Start reading len bytes at p (p may be NULL when len is 0). */
void km_cursor_init(km_cursor *c, const void *p, size_t len) KM_NONNULL(1);
/** Bytes left to read (0 once failed). */
size_t km_cursor_remaining(const km_cursor *c) KM_NONNULL(1);
/** Read one byte / a big-endian u16 / u32 / u64. Returns KM_OK or KM_ERR_PARSE. */
km_err km_cursor_get_u8(km_cursor *c, uint8_t *v) KM_NONNULL(1, 2);
km_err km_cursor_get_u16(km_cursor *c, uint16_t *v) KM_NONNULL(1, 2);
km_err km_cursor_get_u32(km_cursor *c, uint32_t *v) KM_NONNULL(1, 2);
km_err km_cursor_get_u64(km_cursor *c, uint64_t *v) KM_NONNULL(1, 2);
/** Copy n bytes out. Returns KM_OK or KM_ERR_PARSE (out zeroed). */
km_err km_cursor_get_bytes(km_cursor *c, void *out, size_t n) KM_NONNULL(1);
/** Point *out at the next n bytes without copying (valid as long as the input). */
km_err km_cursor_get_view(km_cursor *c, const unsigned char **out, size_t n) KM_NONNULL(1, 2);
/** Returns KM_OK if all input was consumed and nothing failed, else KM_ERR_PARSE
 *  (trailing bytes are an error: one encoding per value). */
km_err km_cursor_finish(const km_cursor *c) KM_NONNULL(1);

typedef struct km_buf {
    unsigned char *data; /**< owned; NULL while empty */
    size_t len;
    size_t cap;
    int failed; /**< set when an append could not allocate */
} km_buf;

/** An empty buffer (no allocation). */
void km_buf_init(km_buf *b) KM_NONNULL(1);
/** Append bytes / big-endian integers. Returns KM_OK or KM_ERR_NOMEM (sticky). */
km_err km_buf_put(km_buf *b, const void *p, size_t n) KM_NONNULL(1);
km_err km_buf_put_u8(km_buf *b, uint8_t v) KM_NONNULL(1);
km_err km_buf_put_u16(km_buf *b, uint16_t v) KM_NONNULL(1);
km_err km_buf_put_u32(km_buf *b, uint32_t v) KM_NONNULL(1);
km_err km_buf_put_u64(km_buf *b, uint64_t v) KM_NONNULL(1);
/** Wipe and free the contents; the buffer is empty again. */
void km_buf_free(km_buf *b);

#ifdef __cplusplus
}
#endif
#endif
