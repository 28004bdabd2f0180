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

#include "keymeld/channel.h"
#include "keymeld/context.h"
#include "keymeld/cursor.h"
#include "keymeld/proto_sign.h"
#include "keymeld/uuid.h"

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

/** A whole channel handshake between the fixed gateway credential and the
 *  fixed enclave key (aborts on failure). Out: g, e: both ends, established
 *  (the caller clears them); hello, reply, auth: the three messages. */
void fz_channel_handshake(km_channel *g, km_channel *e, unsigned char hello[KM_CHANNEL_HELLO_LEN],
                          unsigned char reply[KM_CHANNEL_REPLY_LEN], unsigned char auth[KM_CHANNEL_AUTH_LEN]);

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

/* ---- the client SDK against a fake gateway (fuzz_sdk and its seeds) ------ */

/** The fake wall clock of fuzz_sdk at the start of every input (unix seconds,
 *  2027-01-15): attestation documents issued for it never go stale. */
#define FZ_SDK_NOW 1800000000ull
/** Every byte km_random_bytes gives the SDK inside fuzz_sdk (nonces, session
 *  secret, response keys, UUIDv7 random bits): seeds can predict them. */
#define FZ_SDK_RANDOM 0x42
/** The enclave the scenarios verify and use, and the participant count. */
#define FZ_SDK_ENCLAVE 1u
#define FZ_SDK_N       2u

/** Fixed development attestation CA (public test material: the leaf key
 *  signs the seeds' documents). Valid 2020-01-01 .. 2100-01-01. */
extern const char FZ_DEV_ROOT_PEM[];
extern const char FZ_DEV_LEAF_PEM[];
extern const char FZ_DEV_LEAF_KEY_PEM[];
/** PCR0 that fuzz_sdk pins and the seeds' documents carry. */
extern const unsigned char FZ_SDK_PCR0[48];

/** Participant i's signing key and auth key (fixed; i < 8). */
void fz_sdk_user_sk(size_t i, unsigned char sk[32]);
void fz_sdk_auth_sk(size_t i, unsigned char sk[32]);
/** A fixed id: 16 bytes of tag with the UUIDv7 version and variant bits. */
void fz_sdk_uuid(uint8_t tag, km_uuid *out);
/** The UUIDv7 the SDK makes at fake unix time ms (random bits FZ_SDK_RANDOM). */
void fz_sdk_uuid_v7(uint64_t ms, km_uuid *out);
/** The fixed ids of the scenarios. */
#define FZ_SDK_TAG_KEYGEN  0x10 /* imported session's keygen id */
#define FZ_SDK_TAG_USER    0x20 /* + i: participant i */
#define FZ_SDK_TAG_SIGNING 0x30
#define FZ_SDK_TAG_ITEM    0x31 /* + j: item j */
#define FZ_SDK_TAG_KEY     0x40 /* single-signer key id */
#define FZ_SDK_TAG_KEYUSER 0x41 /* its user id */
#define FZ_SDK_TAG_SUBSET  0x50 /* the subset of the rich session */
/** The rich variant (scenario byte & FZ_SDK_RICH): the session has one
 *  subset (FZ_SDK_TAG_SUBSET: participant 1 alone) and the batch has four
 *  items: plain signed by the subset, Single, Or (two units) and And
 *  adaptors over the points of fz_sdk_adaptor_sk(0) and (1). */
#define FZ_SDK_RICH      0x80
#define FZ_SDK_MAX_ITEMS 4
/** The imported session as km_sdk_session_export writes it: keygen id
 *  FZ_SDK_TAG_KEYGEN, secret FZ_SESSION_SECRET, FZ_SDK_N participants on
 *  enclave FZ_SDK_ENCLAVE (key of FZ_ENCLAVE_SK), bip86 tweak, no subsets.
 *  Returns a malloc'ed string (aborts on failure). */
char *fz_sdk_session_json(int rich);
/** The batch the scenarios sign: two plain items, the second with its own
 *  tweak (none); rich: the four items described at FZ_SDK_RICH. Returns the
 *  item count. */
size_t fz_sdk_items(km_sign_item items[FZ_SDK_MAX_ITEMS], int rich);
/** Adaptor secret k (k < 2) of the rich batch, and its point. */
void fz_sdk_adaptor_sk(size_t k, unsigned char sk[32]);
/** The member list of the rich session's subset (one member: participant 1). */
extern const uint16_t FZ_SDK_SUBSET_MEMBERS[1];
/** The message of the single-signer signatures (32 bytes). */
extern const unsigned char FZ_SDK_MSG[32];

/** One answer of the fake gateway: u8 kind | u16 length | body. The low four
 *  bits of kind pick FZ_SDK_STATUS[kind & 15]; 0 there means no HTTP answer
 *  (index 12: connection failure, 13: time limit, 14: body over the limit);
 *  kind & FZ_SDK_NOT_JSON sends a non-JSON Content-Type. When the input
 *  ends, every further call fails like a refused connection. */
#define FZ_SDK_NOT_JSON 0x40
extern const long FZ_SDK_STATUS[16];
enum {
    FZ_A_200 = 0,
    FZ_A_201,
    FZ_A_202,
    FZ_A_204,
    FZ_A_400,
    FZ_A_401,
    FZ_A_404,
    FZ_A_409,
    FZ_A_422,
    FZ_A_429,
    FZ_A_500,
    FZ_A_503,
    FZ_A_IO,
    FZ_A_TIMEOUT,
    FZ_A_TOO_BIG,
    FZ_A_599
};
/** Append one answer to in (aborts when the body exceeds 65535 bytes). */
void fz_sdk_answer(km_buf *in, uint8_t kind, const char *body, size_t len);

#endif
