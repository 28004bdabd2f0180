/* fuzz/fz_util.h — what the libFuzzer targets and the seed generator share:
 * one context, the fixed test keys (so that seeds made by fuzz/seeds/gen_seeds.c
 * decrypt and verify inside the targets, and the fuzzer can mutate past the
 * MACs), and a reader that splits a fuzz input into pieces.
 *
 * Nothing here is secret: every key is a public test constant. */
#ifndef KM_FUZZ_UTIL_H
#define KM_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/context.h"

/** The process-wide context (created on first use; aborts if it cannot be). */
km_ctx *fz_ctx(void);

/** Fixed 32-byte test secrets. */
extern const unsigned char FZ_ENCLAVE_SK[32];     /**< the enclave's static key (ECIES recipient) */
extern const unsigned char FZ_GATEWAY_SK[32];     /**< the gateway credential */
extern const unsigned char FZ_SESSION_SECRET[32]; /**< a keygen session secret */
extern const unsigned char FZ_SEAL_KEY[32];       /**< the local sealer's key */
extern const unsigned char FZ_CHANNEL_KEY[32];    /**< channel record key (gateway -> enclave) */

/** Compressed public key of a fixed secret (aborts on failure). */
void fz_pub33(const unsigned char sk[32], unsigned char out[33]);

/** A cursor over the fuzz input that never fails: reads past the end give
 *  zeros / empty pieces. */
typedef struct fz_reader {
    const uint8_t *p;
    size_t left;
} fz_reader;

/** One byte (0 at the end). */
uint8_t fz_u8(fz_reader *r);
/** A big-endian u16 (0 at the end). */
uint16_t fz_u16(fz_reader *r);
/** Up to n bytes; *got receives how many are available (<= n). */
const uint8_t *fz_take(fz_reader *r, size_t n, size_t *got);
/** A piece prefixed by a u16 length (cut at the end of the input). */
const uint8_t *fz_piece(fz_reader *r, size_t *len);
/** The rest of the input. */
const uint8_t *fz_rest(fz_reader *r, size_t *len);
/** A malloc'ed NUL-terminated copy of n bytes (aborts on allocation failure). */
char *fz_strndup(const uint8_t *p, size_t n);

/* ---- an in-process enclave (fuzz_enclave and the seed generator) -------- */
struct km_enclave;

/** A km_enclave with the fixed key FZ_ENCLAVE_SK, FZ_GATEWAY_SK's x-only key
 *  as its one gateway credential, no attestation key and empty session
 *  tables (aborts on failure). Free with fz_enclave_free. */
struct km_enclave *fz_enclave_new(void);
/** Empty the session tables (a fresh enclave for the next input). */
void fz_enclave_reset(struct km_enclave *e);
void fz_enclave_free(struct km_enclave *e);

/* ---- an in-process gateway without enclaves (fuzz_gateway, fuzz_reqauth) -- */
struct km_gateway;

/** A km_gateway whose store is a fresh SQLite file in a temporary directory
 *  (removed at exit), with enclaves 1..3 configured (pinned key: the fixed
 *  enclave key), an HTTP server on an ephemeral 127.0.0.1 port (handlers read
 *  wait sequences from it; it is sent nothing and stopped at exit), and no
 *  enclave pool or coordinator: a handler that got past request checks and
 *  authentication would need those, so the targets only drive what comes
 *  before. Signed requests are accepted with any timestamp within 100 years
 *  (seeds keep working). Aborts on failure. */
struct km_gateway *fz_gateway_new(void);

struct km_http_route;
/** The routes fuzz_gateway drives, in its selector order: every route of
 *  km_gw_routes except the system ones (they need the enclave pool).
 *  Returns their number (<= max); out: pointers into the route table. */
size_t fz_gateway_routes(const struct km_http_route **out, size_t max);

#endif
