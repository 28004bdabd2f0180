/* keymeld/protocol.h — the enclave command envelope (docs/PROTOCOL.md §3, §5).
 *
 * This is the one place where channel plaintext becomes a request or a
 * response and back; the gateway, the enclave and the tests all use it.
 */
#ifndef KEYMELD_PROTOCOL_H
#define KEYMELD_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/cursor.h"
#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Enclave commands (values are wire values; never renumber). */
typedef enum km_cmd {
    KM_CMD_INFO = 0x0001,
    KM_CMD_ATTEST = 0x0002,
    KM_CMD_KEYGEN_INIT = 0x0010,
    KM_CMD_KEYGEN_REGISTER = 0x0011,
    KM_CMD_KEYGEN_FINALIZE = 0x0012,
    KM_CMD_SIGN_INIT = 0x0020,
    KM_CMD_SIGN_APPROVE = 0x0021,
    KM_CMD_SIGN_PARTIAL = 0x0022,
    KM_CMD_SIGN_FINALIZE = 0x0023,
    KM_CMD_KEY_IMPORT = 0x0030,
    KM_CMD_KEY_SIGN = 0x0031,
    KM_CMD_KEY_DELETE = 0x0032,
    KM_CMD_SESSION_CLEAR = 0x0040
} km_cmd;

#define KM_MSG_REQUEST  1
#define KM_MSG_RESPONSE 2
/** Bytes of envelope before the body. */
#define KM_MSG_HEADER_LEN 7
/** Longest error detail carried in a response. */
#define KM_MSG_DETAIL_MAX 256

/** A decoded envelope. body points into the decoded buffer (not owned). */
typedef struct km_msg {
    uint8_t kind;        /**< KM_MSG_REQUEST or KM_MSG_RESPONSE */
    uint32_t request_id; /**< chosen by the gateway, echoed by the enclave */
    uint16_t code;       /**< command (request) or km_err status (response) */
    const unsigned char *body;
    size_t body_len;
} km_msg;

/** Append an envelope header to out; the caller appends the body after it.
 *  Returns: KM_OK; KM_ERR_ARG (bad kind); KM_ERR_NOMEM. */
KM_WARN_UNUSED km_err km_msg_put_header(km_buf *out, uint8_t kind, uint32_t request_id, uint16_t code)
    KM_NONNULL(1);

/** Decode an envelope from len bytes at p.
 *  Returns: KM_OK; KM_ERR_PARSE if shorter than the header or kind is unknown. */
KM_WARN_UNUSED km_err km_msg_decode(km_msg *out, const unsigned char *p, size_t len) KM_NONNULL(1);

/** Append a complete error response (status err, detail text truncated to
 *  KM_MSG_DETAIL_MAX) to out. The detail MUST NOT contain secrets. */
KM_WARN_UNUSED km_err km_msg_put_error(km_buf *out, uint32_t request_id, km_err err, const char *detail)
    KM_NONNULL(1);

/** Read the detail text of an error response body into a NUL-terminated buffer
 *  (out_size >= 1). Returns KM_OK or KM_ERR_PARSE. */
KM_WARN_UNUSED km_err km_msg_error_detail(const km_msg *m, char *out, size_t out_size) KM_NONNULL(1, 2);

/** Name of a command for logs ("keygen_init"), or "unknown". */
const char *km_cmd_name(uint16_t code);

#ifdef __cplusplus
}
#endif
#endif
