/* fuzz/fuzz_enclave.c — everything an enclave does with the plaintext of a
 * channel record: the envelope (src/core/protocol.c), the command table
 * (src/enclave/dispatch.c) and every command's body decoder and state checks
 * (src/enclave/cmd_*.c), with the decoders of src/core/proto_*.c they call.
 *
 * Input: a sequence of at most 16 steps, each u8 a | u8 b | u16 length |
 * envelope bytes. Before a step runs, the bodies of the successful answers
 * of steps a and b (1-based; 0: none) are appended to its envelope: that is
 * how a seed hands an enclave's fresh nonce records back to it (SIGN_PARTIAL
 * takes SIGN_INIT's answer, SIGN_FINALIZE both). The steps run in order
 * against one in-process enclave (fixed key FZ_ENCLAVE_SK, empty tables at
 * the start of every input), so a seed holds a whole keygen and signing or a
 * key's life (import, sign, delete) and the fuzzer mutates single steps of
 * it. Every response must decode and answer the right request id.
 * KM_FUZZ_VERBOSE=1 prints each step's command and answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/enclave.h"
#include "fz_util.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static km_enclave *enclave;
static int verbose = -1; /* KM_FUZZ_VERBOSE=1: print each request's command and answer (to check seeds) */

#define MAX_STEPS 16

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (!enclave) enclave = fz_enclave_new();
    if (verbose < 0) verbose = getenv("KM_FUZZ_VERBOSE") != NULL;
    fz_enclave_reset(enclave);
    fz_reader r = {data, size};
    km_buf bodies[MAX_STEPS]; /* response bodies of the steps so far */
    size_t steps = 0;
    while (r.left && steps < MAX_STEPS) {
        uint8_t a = fz_u8(&r), b = fz_u8(&r);
        size_t n;
        const uint8_t *p = fz_piece(&r, &n);
        km_buf in;
        km_buf_init(&in);
        if (n && km_buf_put(&in, p, n) != KM_OK) abort();
        /* Splice earlier answers (1-based step numbers; 0 or a later step: nothing). */
        if (a && a <= steps && bodies[a - 1].len && km_buf_put(&in, bodies[a - 1].data, bodies[a - 1].len))
            abort();
        if (b && b <= steps && bodies[b - 1].len && km_buf_put(&in, bodies[b - 1].data, bodies[b - 1].len))
            abort();
        km_buf_init(&bodies[steps]);
        km_msg req;
        if (km_msg_decode(&req, in.data, in.len) == KM_OK) {
            km_buf out;
            km_buf_init(&out);
            km_enclave_dispatch(enclave, &req, &out);
            km_msg resp;
            if (out.failed || km_msg_decode(&resp, out.data, out.len) != KM_OK ||
                resp.kind != KM_MSG_RESPONSE || resp.request_id != req.request_id)
                abort();
            char detail[KM_MSG_DETAIL_MAX + 1] = "";
            if (resp.code != KM_OK && km_msg_error_detail(&resp, detail, sizeof detail) != KM_OK) abort();
            if (resp.code == KM_OK && resp.body_len && km_buf_put(&bodies[steps], resp.body, resp.body_len))
                abort();
            if (verbose)
                fprintf(stderr, "%s -> %s %s\n", km_cmd_name(req.code), km_err_name((km_err)resp.code),
                        detail);
            km_buf_free(&out);
        }
        km_buf_free(&in);
        steps++;
    }
    for (size_t i = 0; i < steps; i++)
        km_buf_free(&bodies[i]);
    return 0;
}
