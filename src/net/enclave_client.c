/* enclave_client.c — gateway side of an enclave connection. */
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "net/enclave_client.h"
#include "net/net.h"

km_err km_enclave_conn_open(km_enclave_conn *c, km_ctx *ctx, const char *addr,
                            const unsigned char enclave_pub[33], const unsigned char gateway_seckey[32]) {
    return km_enclave_conn_open_timeout(c, ctx, addr, enclave_pub, gateway_seckey, 0);
}

km_err km_enclave_conn_set_timeouts(km_enclave_conn *c, unsigned recv_ms, unsigned send_ms) {
    if (c->fd < 0) return KM_ERR_STATE;
    struct timeval rt = {(time_t)(recv_ms / 1000), (suseconds_t)(recv_ms % 1000) * 1000};
    struct timeval st = {(time_t)(send_ms / 1000), (suseconds_t)(send_ms % 1000) * 1000};
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof rt) != 0 ||
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &st, sizeof st) != 0)
        return KM_ERR_IO;
    return KM_OK;
}

km_err km_enclave_conn_open_timeout(km_enclave_conn *c, km_ctx *ctx, const char *addr,
                                    const unsigned char enclave_pub[33],
                                    const unsigned char gateway_seckey[32], unsigned timeout_ms) {
    memset(c, 0, sizeof *c);
    c->ctx = ctx;
    c->next_id = 1;
    km_buf_init(&c->in);
    km_buf_init(&c->out);
    km_err err;
    c->fd = km_net_connect(addr, &err);
    if (c->fd < 0) return err;
    /* A peer that accepts but never answers must not hold the caller for ever. */
    err = timeout_ms ? km_enclave_conn_set_timeouts(c, timeout_ms, timeout_ms) : KM_OK;
    unsigned char hello[KM_CHANNEL_HELLO_LEN], auth[KM_CHANNEL_AUTH_LEN];
    if (!err) err = km_channel_gateway_hello(ctx, &c->ch, hello);
    if (!err) err = km_net_write_frame(c->fd, hello, sizeof hello);
    if (!err) err = km_net_read_frame(c->fd, &c->in, 1024);
    if (!err)
        err =
            km_channel_gateway_finish(ctx, &c->ch, c->in.data, c->in.len, enclave_pub, gateway_seckey, auth);
    if (!err) err = km_net_write_frame(c->fd, auth, sizeof auth);
    if (err) km_enclave_conn_close(c);
    return err;
}

km_err km_enclave_conn_send_raw(km_enclave_conn *c, const unsigned char *pt, size_t len) {
    if (c->fd < 0) return KM_ERR_STATE;
    c->out.len = 0;
    km_err err = km_channel_seal(&c->ch, pt, len, &c->out);
    if (!err) err = km_net_write_frame(c->fd, c->out.data, c->out.len);
    return err;
}

km_err km_enclave_conn_recv(km_enclave_conn *c, km_msg *resp) {
    size_t n;
    if (c->fd < 0) return KM_ERR_STATE;
    km_err err = km_net_read_frame(c->fd, &c->in, KM_FRAME_MAX);
    if (!err) err = km_channel_open(&c->ch, c->in.data, c->in.len, &n);
    if (!err) err = km_msg_decode(resp, c->in.data, n);
    if (!err && resp->kind != KM_MSG_RESPONSE) err = KM_ERR_PARSE;
    return err;
}

km_err km_enclave_conn_call(km_enclave_conn *c, uint16_t cmd, const unsigned char *body, size_t len,
                            km_msg *resp) {
    km_buf req;
    km_buf_init(&req);
    uint32_t id = c->next_id++;
    km_err err = km_msg_put_header(&req, KM_MSG_REQUEST, id, cmd);
    if (!err && len) err = km_buf_put(&req, body, len);
    if (!err) err = km_enclave_conn_send_raw(c, req.data, req.len);
    km_buf_free(&req);
    if (!err) err = km_enclave_conn_recv(c, resp);
    if (!err && resp->request_id != id) err = KM_ERR_PARSE;
    if (err) km_enclave_conn_close(c);
    return err;
}

void km_enclave_conn_close(km_enclave_conn *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    km_channel_clear(&c->ch);
    km_buf_free(&c->in);
    km_buf_free(&c->out);
}
