/* enclave_client.h — the gateway's side of one enclave connection:
 * connect, handshake, send requests, receive responses (synchronously; the
 * gateway's pool runs one of these per connection). */
#ifndef KM_NET_ENCLAVE_CLIENT_H
#define KM_NET_ENCLAVE_CLIENT_H

#include <stdint.h>

#include "keymeld/channel.h"
#include "keymeld/context.h"
#include "keymeld/protocol.h"

typedef struct km_enclave_conn {
    km_ctx *ctx;
    int fd;
    km_channel ch;
    uint32_t next_id;
    km_buf in; /* last received frame (response bodies point into it) */
    km_buf out;
} km_enclave_conn;

/** Connect to addr and run the handshake, pinning enclave_pub and proving the
 *  gateway credential. Returns KM_OK or the error (connection closed). */
km_err km_enclave_conn_open(km_enclave_conn *c, km_ctx *ctx, const char *addr,
                            const unsigned char enclave_pub[33], const unsigned char gateway_seckey[32]);

/** km_enclave_conn_open with a bound on the handshake: every socket read and
 *  write of the handshake gives up after timeout_ms (0: no bound, as
 *  km_enclave_conn_open). The bound stays set on the socket afterwards;
 *  change it with km_enclave_conn_set_timeouts. The connect itself is not
 *  bounded (a Unix or vsock peer refuses at once; a silent TCP host waits for
 *  the kernel's SYN timeout). */
km_err km_enclave_conn_open_timeout(km_enclave_conn *c, km_ctx *ctx, const char *addr,
                                    const unsigned char enclave_pub[33],
                                    const unsigned char gateway_seckey[32], unsigned timeout_ms);

/** Bound each blocking socket read / write of an open connection to recv_ms /
 *  send_ms milliseconds (0: wait for ever). An expired bound fails the read or
 *  write with KM_ERR_IO; the stream is then unusable and must be closed.
 *  Returns: KM_OK; KM_ERR_STATE (closed); KM_ERR_IO. */
km_err km_enclave_conn_set_timeouts(km_enclave_conn *c, unsigned recv_ms, unsigned send_ms);

/** Send one request and wait for its response. On KM_OK, *resp describes the
 *  response (its body is valid until the next call); the enclave's status is
 *  resp->code. A transport or channel failure returns an error and closes. */
km_err km_enclave_conn_call(km_enclave_conn *c, uint16_t cmd, const unsigned char *body, size_t len,
                            km_msg *resp);

/** Send raw bytes as one encrypted record (tests use this to send malformed
 *  envelopes). */
km_err km_enclave_conn_send_raw(km_enclave_conn *c, const unsigned char *pt, size_t len);
/** Receive one record into *resp. */
km_err km_enclave_conn_recv(km_enclave_conn *c, km_msg *resp);

/** Close and wipe. */
void km_enclave_conn_close(km_enclave_conn *c);

#endif
