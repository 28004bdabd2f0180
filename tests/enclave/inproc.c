/* inproc.c — see inproc.h. */
#include "tests/enclave/inproc.h"

#include "keymeld/protocol.h"

km_err inproc_dispatch(km_enclave *e, uint32_t request_id, uint16_t cmd, const unsigned char *body,
                       size_t len, km_buf *out) {
    km_buf req;
    km_buf_init(&req);
    km_msg m;
    km_err err = km_msg_put_header(&req, KM_MSG_REQUEST, request_id, cmd);
    if (!err && len) err = km_buf_put(&req, body, len);
    if (!err) err = km_msg_decode(&m, req.data, req.len);
    if (!err) {
        km_buf_free(out);
        km_buf_init(out);
        km_enclave_dispatch(e, &m, out);
    }
    km_buf_free(&req);
    return err;
}
