/* fuzz/fuzz_frame.c — the frame reader of the enclave channel transport
 * (src/net/net.c km_net_read_frame) and the envelope of every frame.
 *
 * Input: u8 limit selector (0xff: KM_FRAME_MAX, else 4096 or 65536) | the byte stream a peer sends. The
 * stream goes through a real pipe (inputs are far below the pipe's capacity) and frames are read until the
 * reader refuses or the stream ends. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keymeld/protocol.h"
#include "net/net.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size < 1 || size > 60000) return 0;
    /* The real limit now and then; a small one otherwise (a large announced
     * length is allocated before its bytes arrive, which is slow under ASan). */
    size_t max = data[0] == 0xff ? KM_FRAME_MAX : data[0] & 1 ? 4096 : 65536;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) abort();
    size_t off = 1;
    while (off < size) {
        ssize_t w = write(fds[1], data + off, size - off);
        if (w <= 0) abort();
        off += (size_t)w;
    }
    close(fds[1]);
    km_buf frame;
    km_buf_init(&frame);
    size_t consumed = 0;
    while (km_net_read_frame(fds[0], &frame, max) == KM_OK) {
        if (frame.len == 0 || frame.len > max) abort();
        consumed += 4 + frame.len;
        if (consumed > size - 1) abort();
        km_msg m;
        if (km_msg_decode(&m, frame.data, frame.len) == KM_OK) {
            char detail[64];
            (void)km_msg_error_detail(&m, detail, sizeof detail);
        }
    }
    km_buf_free(&frame);
    close(fds[0]);
    return 0;
}
