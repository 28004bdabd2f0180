/* fuzz/fuzz_channel.c — the gateway <-> enclave channel (src/core/channel.c):
 * the handshake messages each side parses, and record opening.
 *
 * Input: u8 mode | pieces (u16 length-prefixed).
 *   mode 0: enclave side: piece 1 is a HELLO (km_channel_enclave_reply), piece
 *           2 an AUTH (km_channel_enclave_finish, fixed gateway credential
 *           allowed).
 *   mode 1: gateway side: a real HELLO is made, piece 1 is the HELLO_REPLY
 *           (km_channel_gateway_finish, pinned fixed enclave key).
 *   mode 2: records: an established enclave-side channel whose receive key
 *           is the fixed FZ_CHANNEL_KEY opens every piece in turn, so
 *           seeds sealed with that key (counter 0, 1, ...) authenticate.
 * An established channel is made once, by a real in-process handshake with
 * the fixed keys; mode 2 starts from a copy of it. */
#include <stdlib.h>
#include <string.h>

#include "fz_util.h"
#include "keymeld/channel.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static km_channel ready; /* enclave side, established */

static void init(void) {
    km_channel g, e;
    unsigned char hello[KM_CHANNEL_HELLO_LEN], reply[KM_CHANNEL_REPLY_LEN], auth[KM_CHANNEL_AUTH_LEN];
    fz_channel_handshake(&g, &e, hello, reply, auth);
    km_channel_clear(&g);
    ready = e;
    memcpy(ready.recv_key, FZ_CHANNEL_KEY, 32);
    ready.recv_ctr = 0;
}

static void enclave_side(fz_reader *r) {
    km_ctx *ctx = fz_ctx();
    unsigned char reply[KM_CHANNEL_REPLY_LEN], gx[32], pub[33];
    size_t n;
    const uint8_t *hello = fz_piece(r, &n);
    km_channel ch;
    if (km_channel_enclave_reply(ctx, &ch, hello, n, FZ_ENCLAVE_SK, reply) != KM_OK) return;
    fz_pub33(FZ_GATEWAY_SK, pub);
    memcpy(gx, pub + 1, 32);
    const uint8_t *auth = fz_piece(r, &n);
    if (km_channel_enclave_finish(ctx, &ch, auth, n, (const unsigned char(*)[32])gx, 1) == KM_OK) abort();
    km_channel_clear(&ch); /* a fuzzed AUTH cannot sign th2 (fresh ephemeral key) */
}

static void gateway_side(fz_reader *r) {
    km_ctx *ctx = fz_ctx();
    unsigned char hello[KM_CHANNEL_HELLO_LEN], auth[KM_CHANNEL_AUTH_LEN], epub[33];
    km_channel ch;
    if (km_channel_gateway_hello(ctx, &ch, hello) != KM_OK) abort();
    fz_pub33(FZ_ENCLAVE_SK, epub);
    size_t n;
    const uint8_t *reply = fz_piece(r, &n);
    (void)km_channel_gateway_finish(ctx, &ch, reply, n, epub, FZ_GATEWAY_SK, auth);
    km_channel_clear(&ch);
}

static void records(fz_reader *r) {
    km_channel ch = ready;
    int dead = 0;
    while (r->left) {
        size_t n;
        const uint8_t *p = fz_piece(r, &n);
        unsigned char *rec = malloc(n ? n : 1);
        if (!rec) abort();
        if (n) memcpy(rec, p, n);
        size_t pt_len = 0;
        km_err e = km_channel_open(&ch, rec, n, &pt_len);
        if (e == KM_OK && (dead || pt_len != n - KM_CHANNEL_OVERHEAD)) abort();
        if (e == KM_ERR_DECRYPT) dead = 1;
        free(rec);
    }
    km_channel_clear(&ch);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (ready.state == 0) init();
    fz_reader r = {data, size};
    switch (fz_u8(&r) % 3) {
    case 0:
        enclave_side(&r);
        break;
    case 1:
        gateway_side(&r);
        break;
    default:
        records(&r);
        break;
    }
    return 0;
}
