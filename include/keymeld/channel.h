/* keymeld/channel.h — the authenticated, encrypted gateway <-> enclave channel.
 *
 * A three-message handshake, then AES-256-GCM frames. No I/O happens here:
 * the functions turn received bytes into bytes to send, so both sides and the
 * tests share one implementation (the transport lives in the processes).
 *
 *   gateway -> enclave  HELLO        'K''M''H''1' | version u16 | eph_g[33] | nonce_g[32]
 *   enclave -> gateway  HELLO_REPLY  0x02 | version u16 | eph_e[33] | enclave_pub[33] | nonce_e[32] |
 * sig_e[64] gateway -> enclave  AUTH         0x03 | gateway_pub[32] | sig_g[64]
 *
 *   th1   = TaggedHash("KeyMeld/handshake", HELLO || HELLO_REPLY without sig_e)
 *   sig_e = BIP-340 signature by the enclave's static key over th1
 *   th2   = TaggedHash("KeyMeld/handshake", th1 || sig_e || gateway_pub)
 *   sig_g = BIP-340 signature by the operator's gateway credential over th2
 *   keys  = HKDF-SHA256(ikm = ECDH(eph_g, eph_e), salt = th2, info = "keymeld/channel/v1", 64)
 *           first 32 bytes: gateway->enclave key, last 32: enclave->gateway key
 *
 * sig_e proves possession of the attested enclave key (the gateway pins it),
 * so the channel is bound to the attested enclave; sig_g proves possession of
 * the gateway credential the operator configured in the enclave, so a stray
 * local process cannot drive an enclave. Ephemeral ECDH gives forward secrecy.
 *
 * Encrypted record: ciphertext || tag[16]; nonce = 0x00000000 || counter u64
 * (big-endian, one counter per direction, starting at 0); associated data =
 * "KMC1" || direction byte ('G' gateway->enclave, 'E' enclave->gateway) ||
 * counter u64. A dropped, replayed, reordered or reflected record fails to
 * authenticate and the channel is dead from then on.
 *
 * Thread safety: a km_channel is not thread-safe; serialise calls per channel
 * (sending and receiving directions may be used by two threads if each
 * direction is used by one thread only).
 */
#ifndef KEYMELD_CHANNEL_H
#define KEYMELD_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "keymeld/context.h"
#include "keymeld/cursor.h"
#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KM_CHANNEL_VERSION   1
#define KM_CHANNEL_HELLO_LEN (4 + 2 + 33 + 32)
#define KM_CHANNEL_REPLY_LEN (1 + 2 + 33 + 33 + 32 + 64)
#define KM_CHANNEL_AUTH_LEN  (1 + 32 + 64)
/** Bytes an encrypted record adds to its plaintext. */
#define KM_CHANNEL_OVERHEAD 16

typedef enum km_channel_role { KM_CHANNEL_GATEWAY = 1, KM_CHANNEL_ENCLAVE = 2 } km_channel_role;

/** Channel state. Treat as opaque; the layout is public only so it can live on
 *  the stack. Holds secret keys: always end with km_channel_clear. */
typedef struct km_channel {
    km_channel_role role;
    int state; /* internal handshake state */
    unsigned char eph_sec[32];
    unsigned char eph_pub[33];
    unsigned char hello[KM_CHANNEL_HELLO_LEN];
    unsigned char th[32];    /* transcript hash so far */
    unsigned char sig_e[64]; /* enclave: its own transcript signature, for th2 */
    unsigned char peer_eph[33];
    unsigned char enclave_pub[33]; /* enclave static key (compressed) */
    unsigned char gateway_pub[32]; /* authenticated gateway credential (x-only) */
    unsigned char send_key[32], recv_key[32];
    uint64_t send_ctr, recv_ctr;
} km_channel;

/** Gateway: start a handshake.
 *
 *  Returns: KM_OK; KM_ERR_RANDOM. On failure ch is cleared.
 *  Args:    ctx: context. ch: channel to initialise (any prior content ignored).
 *  Out:     out_hello: KM_CHANNEL_HELLO_LEN bytes to send.
 */
KM_WARN_UNUSED km_err km_channel_gateway_hello(km_ctx *ctx, km_channel *ch,
                                               unsigned char out_hello[KM_CHANNEL_HELLO_LEN])
    KM_NONNULL(1, 2, 3);

/** Enclave: answer a HELLO.
 *
 *  Returns: KM_OK; KM_ERR_PARSE (wrong length or magic); KM_ERR_UNSUPPORTED
 *           (version); KM_ERR_INVALID_POINT (bad ephemeral key); KM_ERR_RANDOM.
 *  Args:    ctx: context. ch: channel to initialise.
 *  In:      hello, hello_len: the received HELLO. enclave_seckey: 32-byte enclave
 *           static secret key (read only; not retained).
 *  Out:     out_reply: KM_CHANNEL_REPLY_LEN bytes to send.
 */
KM_WARN_UNUSED km_err km_channel_enclave_reply(km_ctx *ctx, km_channel *ch, const unsigned char *hello,
                                               size_t hello_len, const unsigned char enclave_seckey[32],
                                               unsigned char out_reply[KM_CHANNEL_REPLY_LEN])
    KM_NONNULL(1, 2, 3, 5, 6);

/** Gateway: check HELLO_REPLY, authenticate, derive the channel keys.
 *
 *  The enclave's static key MUST be the one the operator pinned from a verified
 *  attestation document: a mismatch is KM_ERR_VERIFY.
 *
 *  Returns: KM_OK (channel established); KM_ERR_PARSE; KM_ERR_UNSUPPORTED;
 *           KM_ERR_INVALID_POINT; KM_ERR_VERIFY (wrong enclave key or bad sig_e);
 *           KM_ERR_STATE if gateway_hello was not called. On failure ch is cleared.
 *  In:      reply, reply_len: received HELLO_REPLY. expected_enclave_pub: 33 bytes.
 *           gateway_seckey: 32-byte gateway credential secret key.
 *  Out:     out_auth: KM_CHANNEL_AUTH_LEN bytes to send.
 */
KM_WARN_UNUSED km_err km_channel_gateway_finish(km_ctx *ctx, km_channel *ch, const unsigned char *reply,
                                                size_t reply_len,
                                                const unsigned char expected_enclave_pub[33],
                                                const unsigned char gateway_seckey[32],
                                                unsigned char out_auth[KM_CHANNEL_AUTH_LEN])
    KM_NONNULL(1, 2, 3, 5, 6, 7);

/** Enclave: check AUTH against the operator-configured gateway credentials.
 *
 *  Returns: KM_OK (channel established); KM_ERR_PARSE; KM_ERR_VERIFY (credential
 *           not allowed or bad signature); KM_ERR_STATE. On failure ch is cleared.
 *  In:      auth, auth_len: received AUTH. allowed: n_allowed x-only 32-byte keys
 *           (may be NULL when n_allowed is 0: then every gateway is refused).
 */
KM_WARN_UNUSED km_err km_channel_enclave_finish(km_ctx *ctx, km_channel *ch, const unsigned char *auth,
                                                size_t auth_len, const unsigned char (*allowed)[32],
                                                size_t n_allowed) KM_NONNULL(1, 2, 3);

/** Encrypt one record. Appends len + KM_CHANNEL_OVERHEAD bytes to out.
 *  Returns: KM_OK; KM_ERR_STATE (not established); KM_ERR_NOMEM; KM_ERR_CRYPTO. */
KM_WARN_UNUSED km_err km_channel_seal(km_channel *ch, const unsigned char *pt, size_t len, km_buf *out)
    KM_NONNULL(1, 4);

/** Decrypt one record in place.
 *  Returns: KM_OK with *pt_len = len - 16; KM_ERR_DECRYPT on any tampering,
 *  replay or reordering (the channel is then dead: every later call fails);
 *  KM_ERR_PARSE if len < 16; KM_ERR_STATE. */
KM_WARN_UNUSED km_err km_channel_open(km_channel *ch, unsigned char *rec, size_t len, size_t *pt_len)
    KM_NONNULL(1, 2, 4);

/** Wipe all keys and state. */
void km_channel_clear(km_channel *ch);

#ifdef __cplusplus
}
#endif
#endif
