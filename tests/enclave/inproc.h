/* inproc.h — the enclave's command table called in process, for tests that
 * hold the enclave structs themselves (tests/ct/ct_enclave.c,
 * tests/enclave/unit_finalize_blame.c). Each replaces km_enclave_conn_call
 * with -Wl,--wrap and answers through this. */
#ifndef KM_TESTS_ENCLAVE_INPROC_H
#define KM_TESTS_ENCLAVE_INPROC_H

#include <stddef.h>
#include <stdint.h>

#include "enclave/enclave.h"

/** Run one request through e's command table, as the enclave's server does
 *  for a decrypted record: request envelope with request_id, dispatch.
 *  Returns: KM_OK with the response envelope in out (replacing its contents;
 *           the caller decodes it, see km_msg_decode); KM_ERR_NOMEM,
 *           KM_ERR_RANGE from building the request.
 *  In:  body: len bytes (NULL if 0). Out: out: initialised by the caller. */
km_err inproc_dispatch(km_enclave *e, uint32_t request_id, uint16_t cmd, const unsigned char *body,
                       size_t len, km_buf *out);

#endif
