/* keymeld/uuid.h — UUIDs (RFC 9562), version 7 generation, strict parsing. */
#ifndef KEYMELD_UUID_H
#define KEYMELD_UUID_H

#include <stdint.h>

#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct km_uuid {
    unsigned char b[16];
} km_uuid;

/** Text length of a UUID without the NUL: 8-4-4-4-12. */
#define KM_UUID_STR_LEN 36

/** Make a UUIDv7: 48-bit Unix time in milliseconds, version 7, variant 10,
 *  74 random bits.
 *  Returns: KM_OK; KM_ERR_RANDOM. In: unix_ms: time to embed (pass the current
 *  time; a parameter so tests are deterministic). */
KM_WARN_UNUSED km_err km_uuid_v7(km_uuid *out, uint64_t unix_ms) KM_NONNULL(1);

/** Parse the canonical lowercase 8-4-4-4-12 form (exactly 36 chars).
 *  Returns: KM_OK; KM_ERR_PARSE on any other spelling (uppercase, braces,
 *  missing dashes) or on the nil UUID; out zeroed on failure. */
KM_WARN_UNUSED km_err km_uuid_parse(km_uuid *out, const char *s, size_t len) KM_NONNULL(1, 2);

/** Format as 36 lowercase characters plus NUL. */
void km_uuid_format(char out[37], const km_uuid *u) KM_NONNULL(1, 2);

/** Version nibble of u (7 for km_uuid_v7 output). */
int km_uuid_version(const km_uuid *u) KM_NONNULL(1);

#ifdef __cplusplus
}
#endif
#endif
