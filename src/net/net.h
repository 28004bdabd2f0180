/* net.h — sockets and frames shared by the enclave and the gateway.
 *
 * Addresses are written "tcp:HOST:PORT", "unix:PATH" or "vsock:CID:PORT".
 * A frame is u32 big-endian length || payload (docs/PROTOCOL.md section 2);
 * lengths of 0 or above the caller's limit are refused before anything is
 * allocated, so a peer cannot make us reserve memory it never sends.
 */
#ifndef KM_NET_NET_H
#define KM_NET_NET_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/cursor.h"
#include "keymeld/error.h"

/** Largest frame payload on the enclave channel. */
#define KM_FRAME_MAX (16u * 1024u * 1024u)

/** Open a listening socket on addr (SO_REUSEADDR for TCP; an existing Unix
 *  socket file is replaced). Returns the fd, or -1 with *err set
 *  (KM_ERR_PARSE for a malformed address, KM_ERR_IO otherwise). */
int km_net_listen(const char *addr, km_err *err);

/** Connect to addr. Returns the fd or -1 with *err set. */
int km_net_connect(const char *addr, km_err *err);

/** Read one frame into out (replacing its contents).
 *  Returns: KM_OK; KM_ERR_IO on EOF or error; KM_ERR_RANGE if the announced
 *  length is 0 or above max (the connection must then be closed). */
km_err km_net_read_frame(int fd, km_buf *out, size_t max);

/** Write one frame (length prefix + payload), handling short writes.
 *  Returns: KM_OK; KM_ERR_RANGE if len is 0 or above KM_FRAME_MAX; KM_ERR_IO. */
km_err km_net_write_frame(int fd, const unsigned char *p, size_t len);

#endif
