/* fuzz/fuzz_enclave.c — everything an enclave does with the plaintext of a
 * channel record: the envelope (src/core/protocol.c), the command table
 * (src/enclave/dispatch.c) and every command's body decoder and state checks
 * (src/enclave/cmd_*.c), with the decoders of src/core/proto_*.c they call.
 *
 * Input: a sequence of requests, each u16 length | envelope bytes; they run
 * in order against one in-process enclave (fixed key FZ_ENCLAVE_SK, empty
 * tables at the start of every input), so a seed can hold a whole keygen
 * (init, registrations, finalize) or a key's life (import, sign, delete) and
 * the fuzzer mutates single steps of it. Every response must decode. */
#include <stdlib.h>
#include <string.h>

#include "enclave/enclave.h"
#include "fz_util.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static km_enclave *enclave;

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (!enclave) enclave = fz_enclave_new();
    fz_enclave_reset(enclave);
    fz_reader r = {data, size};
    while (r.left) {
        size_t n;
        const uint8_t *p = fz_piece(&r, &n);
        km_msg req;
        if (km_msg_decode(&req, p, n) != KM_OK) continue;
        km_buf out;
        km_buf_init(&out);
        km_enclave_dispatch(enclave, &req, &out);
        km_msg resp;
        if (out.failed || km_msg_decode(&resp, out.data, out.len) != KM_OK || resp.kind != KM_MSG_RESPONSE ||
            resp.request_id != req.request_id)
            abort();
        if (resp.code != KM_OK) {
            char detail[KM_MSG_DETAIL_MAX + 1];
            if (km_msg_error_detail(&resp, detail, sizeof detail) != KM_OK) abort();
        }
        km_buf_free(&out);
    }
    return 0;
}
