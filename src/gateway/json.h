/* gateway/json.h — strict validation of JSON request bodies.
 *
 * A handler parses its body with km_json_parse_object, checks it against a
 * table of fields with km_json_check, and only then reads values with the
 * km_json_get_* functions. The check is strict on purpose: unknown fields,
 * wrong types, reals where integers belong, uppercase hex or out-of-range
 * lengths are all refused with a message that names the field, so that a
 * client's mistake (or an attacker's probe) is answered 400 before anything
 * is stored or forwarded to an enclave, and every value has one spelling.
 *
 * Messages are meant for the "message" of a 400 answer; they may quote an
 * unknown field's name (printable ASCII only, cut to 64 bytes).
 */
#ifndef KEYMELD_GATEWAY_JSON_H
#define KEYMELD_GATEWAY_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "keymeld/cursor.h"
#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Type of a field in a km_json_field table. */
typedef enum km_json_type {
    KM_JSON_STRING, /**< string; min..max = length in bytes (valid UTF-8, no NUL) */
    KM_JSON_HEX,    /**< string of lowercase hex, even length; min..max = decoded length in bytes */
    KM_JSON_UUID,   /**< canonical lowercase 8-4-4-4-12 UUID, not the nil UUID; min/max unused */
    KM_JSON_UINT,   /**< JSON integer >= 0 (no reals, no booleans); min..max = value range */
    KM_JSON_BOOL,   /**< true or false; min/max unused */
    KM_JSON_ARRAY,  /**< array; min..max = element count (elements are the handler's to check) */
    KM_JSON_OBJECT  /**< object; min/max unused (members are the handler's to check) */
} km_json_type;

/** One allowed field of an object. For STRING, HEX, UINT and ARRAY the range
 *  min..max is inclusive and max == 0 means "no upper bound". JSON null is
 *  never accepted as a value: a field is either present with its type or
 *  absent. */
typedef struct km_json_field {
    const char *name;
    km_json_type type;
    int required; /**< 1: a missing field is an error */
    uint64_t min, max;
} km_json_field;

/** Parse a request body that must be one JSON object.
 *
 *  Duplicate keys and NUL characters in strings are refused (one meaning per
 *  body), as is anything after the object.
 *  Returns: KM_OK; KM_ERR_PARSE with msg "body is not valid JSON: ..." (also for
 *           an empty body) or "body must be a JSON object"; KM_ERR_ARG if body
 *           is NULL with len > 0.
 *  Out:     out: a new reference on success (caller json_decref's it), NULL on
 *           failure. msg: msglen bytes (may be NULL if msglen is 0), always
 *           NUL-terminated when msglen > 0; "" on success.
 *  In:      body: len bytes (need not be NUL-terminated).
 */
KM_WARN_UNUSED km_err km_json_parse_object(const unsigned char *body, size_t len, json_t **out, char *msg,
                                           size_t msglen) KM_NONNULL(3);

/** Check an object against a field table.
 *
 *  Unknown keys are checked first (in the object's order), then each field of
 *  the table in table order; the first failure is reported.
 *  Returns: KM_OK; KM_ERR_PARSE with a message naming the field, e.g.
 *           "unknown field 'x'", "missing field 'keygen_id'",
 *           "field 'timeout' must be an unsigned integer",
 *           "field 'timeout' must be an unsigned integer in 1..3600",
 *           "field 'blob' must be 1..4096 bytes of lowercase hex",
 *           "field 'items' must have 1..100 elements"; KM_ERR_ARG if obj is not
 *           an object or fields is NULL with n > 0.
 *  Out:     msg: as for km_json_parse_object.
 *  In:      obj: the object. fields: n entries with distinct names.
 */
KM_WARN_UNUSED km_err km_json_check(const json_t *obj, const km_json_field *fields, size_t n, char *msg,
                                    size_t msglen) KM_NONNULL(1);

/** Decode a HEX field (after km_json_check).
 *  Returns: KM_OK; KM_ERR_NOT_FOUND if absent; KM_ERR_PARSE if not lowercase
 *           hex of even length; KM_ERR_NOMEM.
 *  Out:     out: treated as uninitialised (do not pass a buffer holding data:
 *           it would leak); on success it holds the decoded bytes (data NULL
 *           when empty), on failure it is empty. Free with km_buf_free.
 */
KM_WARN_UNUSED km_err km_json_get_hex(const json_t *obj, const char *name, km_buf *out) KM_NONNULL(1, 2, 3);

/** Decode a HEX field of exactly len bytes.
 *  Returns: KM_OK; KM_ERR_NOT_FOUND; KM_ERR_RANGE if its length is not 2*len;
 *           KM_ERR_PARSE on a bad character or a non-string. out zeroed on failure.
 */
KM_WARN_UNUSED km_err km_json_get_hex_fixed(const json_t *obj, const char *name, unsigned char *out,
                                            size_t len) KM_NONNULL(1, 2);

/** Decode a UUID field. Returns: KM_OK; KM_ERR_NOT_FOUND; KM_ERR_PARSE (not the
 *  canonical lowercase form, or the nil UUID). out zeroed on failure. */
KM_WARN_UNUSED km_err km_json_get_uuid(const json_t *obj, const char *name, unsigned char out[16])
    KM_NONNULL(1, 2, 3);

/** Read a UINT field. Returns: KM_OK; KM_ERR_NOT_FOUND; KM_ERR_PARSE if not a
 *  non-negative integer. *out is 0 on failure. */
KM_WARN_UNUSED km_err km_json_get_uint(const json_t *obj, const char *name, uint64_t *out)
    KM_NONNULL(1, 2, 3);

/** Read a BOOL field. Returns: 1 or 0 for true/false; dflt if absent or not a boolean. */
int km_json_get_bool(const json_t *obj, const char *name, int dflt) KM_NONNULL(1, 2);

/** A new JSON string holding p as lowercase hex.
 *  Returns: a new reference, or NULL on allocation failure. In: p: n bytes (may be NULL if n is 0). */
json_t *km_json_hex(const unsigned char *p, size_t n);

/** A new JSON string holding id in canonical lowercase form.
 *  Returns: a new reference, or NULL on allocation failure. */
json_t *km_json_uuid(const unsigned char id[16]) KM_NONNULL(1);

#ifdef __cplusplus
}
#endif
#endif
