/* protocol.c — envelope codec of enclave requests and responses. */
#include <string.h>

#include "keymeld/protocol.h"

km_err km_msg_put_header(km_buf *out, uint8_t kind, uint32_t request_id, uint16_t code) {
    if (kind != KM_MSG_REQUEST && kind != KM_MSG_RESPONSE) return KM_ERR_ARG;
    km_err e = km_buf_put_u8(out, kind);
    if (!e) e = km_buf_put_u32(out, request_id);
    if (!e) e = km_buf_put_u16(out, code);
    return e;
}

km_err km_msg_decode(km_msg *out, const unsigned char *p, size_t len) {
    km_cursor c;
    memset(out, 0, sizeof *out);
    km_cursor_init(&c, p, len);
    (void)km_cursor_get_u8(&c, &out->kind);
    (void)km_cursor_get_u32(&c, &out->request_id);
    km_err e = km_cursor_get_u16(&c, &out->code);
    if (e || (out->kind != KM_MSG_REQUEST && out->kind != KM_MSG_RESPONSE)) {
        memset(out, 0, sizeof *out);
        return KM_ERR_PARSE;
    }
    out->body = p + KM_MSG_HEADER_LEN;
    out->body_len = len - KM_MSG_HEADER_LEN;
    return KM_OK;
}

km_err km_msg_put_error(km_buf *out, uint32_t request_id, km_err err, const char *detail) {
    size_t n = detail ? strlen(detail) : 0;
    if (n > KM_MSG_DETAIL_MAX) n = KM_MSG_DETAIL_MAX;
    km_err e = km_msg_put_header(out, KM_MSG_RESPONSE, request_id, (uint16_t)err);
    if (!e) e = km_buf_put_u16(out, (uint16_t)n);
    if (!e && n) e = km_buf_put(out, detail, n);
    return e;
}

km_err km_msg_error_detail(const km_msg *m, char *out, size_t out_size) {
    km_cursor c;
    uint16_t n;
    const unsigned char *v;
    out[0] = '\0';
    km_cursor_init(&c, m->body, m->body_len);
    if (km_cursor_get_u16(&c, &n) || n > KM_MSG_DETAIL_MAX || km_cursor_get_view(&c, &v, n) ||
        km_cursor_finish(&c))
        return KM_ERR_PARSE;
    size_t k = n < out_size - 1 ? n : out_size - 1;
    for (size_t i = 0; i < k; i++) /* printable ASCII only: the text ends up in logs */
        out[i] = (v[i] >= 0x20 && v[i] < 0x7f) ? (char)v[i] : '?';
    out[k] = '\0';
    return KM_OK;
}

const char *km_cmd_name(uint16_t code) {
    switch (code) {
    case KM_CMD_INFO:
        return "info";
    case KM_CMD_ATTEST:
        return "attest";
    case KM_CMD_KEYGEN_INIT:
        return "keygen_init";
    case KM_CMD_KEYGEN_REGISTER:
        return "keygen_register";
    case KM_CMD_KEYGEN_FINALIZE:
        return "keygen_finalize";
    case KM_CMD_SIGN_INIT:
        return "sign_init";
    case KM_CMD_SIGN_APPROVE:
        return "sign_approve";
    case KM_CMD_SIGN_PARTIAL:
        return "sign_partial";
    case KM_CMD_SIGN_FINALIZE:
        return "sign_finalize";
    case KM_CMD_KEY_IMPORT:
        return "key_import";
    case KM_CMD_KEY_SIGN:
        return "key_sign";
    case KM_CMD_KEY_DELETE:
        return "key_delete";
    case KM_CMD_SESSION_CLEAR:
        return "session_clear";
    default:
        return "unknown";
    }
}
