/* channel.c — handshake and record protection of the gateway <-> enclave
 * channel (layout and reasoning in keymeld/channel.h). */
#include <secp256k1_ecdh.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>
#include <string.h>

#include "keymeld/aead.h"
#include "keymeld/channel.h"
#include "keymeld/hash.h"
#include "keymeld/secret.h"

enum { ST_NONE = 0, ST_HELLO_SENT, ST_REPLY_SENT, ST_READY, ST_DEAD };

static const unsigned char hello_magic[4] = {'K', 'M', 'H', '1'};
static const char handshake_tag[] = "KeyMeld/handshake";

void km_channel_clear(km_channel *ch) {
    km_wipe(ch, sizeof *ch);
    ch->state = ST_DEAD;
}

/* A fresh ephemeral key pair: the source of forward secrecy. */
static km_err make_ephemeral(km_ctx *ctx, km_channel *ch) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    secp256k1_pubkey pk;
    size_t len = 33;
    for (int tries = 0; tries < 8; tries++) {
        if (km_random_bytes(ch->eph_sec, 32) != KM_OK) return KM_ERR_RANDOM;
        if (secp256k1_ec_pubkey_create(secp, &pk, ch->eph_sec)) {
            secp256k1_ec_pubkey_serialize(secp, ch->eph_pub, &len, &pk, SECP256K1_EC_COMPRESSED);
            return KM_OK;
        }
    }
    return KM_ERR_RANDOM;
}

static int parse_point(const secp256k1_context *secp, secp256k1_pubkey *pk, const unsigned char p33[33]) {
    return (p33[0] == 0x02 || p33[0] == 0x03) && secp256k1_ec_pubkey_parse(secp, pk, p33, 33);
}

/* Signs a 32-byte transcript hash with BIP-340 and fresh auxiliary randomness. */
static km_err sign_transcript(km_ctx *ctx, const unsigned char seckey[32], const unsigned char th[32],
                              unsigned char sig[64], unsigned char xonly_out[32]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    secp256k1_keypair kp;
    unsigned char aux[32];
    km_err err = KM_ERR_INVALID_KEY;
    if (km_random_bytes(aux, sizeof aux) != KM_OK) return KM_ERR_RANDOM;
    if (secp256k1_keypair_create(secp, &kp, seckey)) {
        err = secp256k1_schnorrsig_sign32(secp, sig, th, &kp, aux) ? KM_OK : KM_ERR_CRYPTO;
        if (!err && xonly_out) {
            secp256k1_xonly_pubkey xo;
            if (!secp256k1_keypair_xonly_pub(secp, &xo, NULL, &kp) ||
                !secp256k1_xonly_pubkey_serialize(secp, xonly_out, &xo))
                err = KM_ERR_CRYPTO;
        }
    }
    km_wipe(&kp, sizeof kp);
    return err;
}

/* Both directions' keys from the ephemeral ECDH, salted with the full transcript. */
static km_err derive_keys(km_ctx *ctx, km_channel *ch) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    secp256k1_pubkey peer;
    unsigned char shared[32], okm[64];
    if (!parse_point(secp, &peer, ch->peer_eph)) return KM_ERR_INVALID_POINT;
    if (!secp256k1_ecdh(secp, shared, &peer, ch->eph_sec, NULL, NULL)) return KM_ERR_CRYPTO;
    static const unsigned char info[] = "keymeld/channel/v1";
    km_err err = km_hkdf_sha256(okm, sizeof okm, shared, sizeof shared, ch->th, 32, info, sizeof info - 1);
    km_wipe(shared, sizeof shared);
    if (err) return err;
    int gw = ch->role == KM_CHANNEL_GATEWAY;
    memcpy(ch->send_key, okm + (gw ? 0 : 32), 32);
    memcpy(ch->recv_key, okm + (gw ? 32 : 0), 32);
    km_wipe(okm, sizeof okm);
    km_wipe(ch->eph_sec, sizeof ch->eph_sec);
    ch->send_ctr = ch->recv_ctr = 0;
    ch->state = ST_READY;
    return KM_OK;
}

km_err km_channel_gateway_hello(km_ctx *ctx, km_channel *ch, unsigned char out_hello[KM_CHANNEL_HELLO_LEN]) {
    memset(ch, 0, sizeof *ch);
    ch->role = KM_CHANNEL_GATEWAY;
    km_err err = make_ephemeral(ctx, ch);
    unsigned char *p = ch->hello;
    memcpy(p, hello_magic, 4);
    p[4] = 0;
    p[5] = KM_CHANNEL_VERSION;
    memcpy(p + 6, ch->eph_pub, 33);
    if (!err) err = km_random_bytes(p + 39, 32);
    if (err) {
        km_channel_clear(ch);
        return err;
    }
    memcpy(out_hello, ch->hello, KM_CHANNEL_HELLO_LEN);
    ch->state = ST_HELLO_SENT;
    return KM_OK;
}

km_err km_channel_enclave_reply(km_ctx *ctx, km_channel *ch, const unsigned char *hello, size_t hello_len,
                                const unsigned char enclave_seckey[32],
                                unsigned char out_reply[KM_CHANNEL_REPLY_LEN]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    memset(ch, 0, sizeof *ch);
    ch->role = KM_CHANNEL_ENCLAVE;
    km_err err = KM_OK;
    secp256k1_pubkey pk;
    size_t len = 33;
    if (hello_len != KM_CHANNEL_HELLO_LEN || memcmp(hello, hello_magic, 4) != 0)
        err = KM_ERR_PARSE;
    else if (hello[4] != 0 || hello[5] != KM_CHANNEL_VERSION)
        err = KM_ERR_UNSUPPORTED;
    else if (!parse_point(secp, &pk, hello + 6))
        err = KM_ERR_INVALID_POINT;
    else if (!secp256k1_ec_pubkey_create(secp, &pk, enclave_seckey))
        err = KM_ERR_INVALID_KEY;
    if (!err) err = make_ephemeral(ctx, ch);
    unsigned char *r = out_reply;
    if (!err) {
        memcpy(ch->hello, hello, KM_CHANNEL_HELLO_LEN);
        memcpy(ch->peer_eph, hello + 6, 33);
        secp256k1_ec_pubkey_serialize(secp, ch->enclave_pub, &len, &pk, SECP256K1_EC_COMPRESSED);
        r[0] = 0x02;
        r[1] = 0;
        r[2] = KM_CHANNEL_VERSION;
        memcpy(r + 3, ch->eph_pub, 33);
        memcpy(r + 36, ch->enclave_pub, 33);
        err = km_random_bytes(r + 69, 32);
    }
    if (!err) {
        unsigned char transcript[KM_CHANNEL_HELLO_LEN + KM_CHANNEL_REPLY_LEN - 64];
        memcpy(transcript, hello, KM_CHANNEL_HELLO_LEN);
        memcpy(transcript + KM_CHANNEL_HELLO_LEN, r, KM_CHANNEL_REPLY_LEN - 64);
        km_tagged_hash(ch->th, handshake_tag, transcript, sizeof transcript);
        err = sign_transcript(ctx, enclave_seckey, ch->th, r + 101, NULL);
    }
    if (!err) {
        /* Kept for th2, which is completed with gateway_pub when AUTH arrives. */
        memcpy(ch->sig_e, r + 101, 64);
        ch->state = ST_REPLY_SENT;
        return KM_OK;
    }
    km_channel_clear(ch);
    memset(out_reply, 0, KM_CHANNEL_REPLY_LEN);
    return err;
}

/* th2 = TaggedHash(tag, th1 || sig_e || gateway_pub). */
static void transcript2(unsigned char out[32], const unsigned char th1[32], const unsigned char sig_e[64],
                        const unsigned char gateway_pub[32]) {
    unsigned char buf[128];
    memcpy(buf, th1, 32);
    memcpy(buf + 32, sig_e, 64);
    memcpy(buf + 96, gateway_pub, 32);
    km_tagged_hash(out, handshake_tag, buf, sizeof buf);
}

km_err km_channel_gateway_finish(km_ctx *ctx, km_channel *ch, const unsigned char *reply, size_t reply_len,
                                 const unsigned char expected_enclave_pub[33],
                                 const unsigned char gateway_seckey[32],
                                 unsigned char out_auth[KM_CHANNEL_AUTH_LEN]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    km_err err = KM_OK;
    secp256k1_pubkey pk;
    secp256k1_xonly_pubkey enclave_x;
    memset(out_auth, 0, KM_CHANNEL_AUTH_LEN);
    if (ch->state != ST_HELLO_SENT || ch->role != KM_CHANNEL_GATEWAY)
        err = KM_ERR_STATE;
    else if (reply_len != KM_CHANNEL_REPLY_LEN || reply[0] != 0x02)
        err = KM_ERR_PARSE;
    else if (reply[1] != 0 || reply[2] != KM_CHANNEL_VERSION)
        err = KM_ERR_UNSUPPORTED;
    else if (!parse_point(secp, &pk, reply + 3) || !parse_point(secp, &pk, reply + 36))
        err = KM_ERR_INVALID_POINT;
    else if (!km_ct_equal(reply + 36, expected_enclave_pub, 33))
        err = KM_ERR_VERIFY; /* not the attested enclave */
    if (!err) {
        unsigned char transcript[KM_CHANNEL_HELLO_LEN + KM_CHANNEL_REPLY_LEN - 64];
        memcpy(transcript, ch->hello, KM_CHANNEL_HELLO_LEN);
        memcpy(transcript + KM_CHANNEL_HELLO_LEN, reply, KM_CHANNEL_REPLY_LEN - 64);
        km_tagged_hash(ch->th, handshake_tag, transcript, sizeof transcript);
        if (!secp256k1_xonly_pubkey_from_pubkey(secp, &enclave_x, NULL, &pk) ||
            !secp256k1_schnorrsig_verify(secp, reply + 101, ch->th, 32, &enclave_x))
            err = KM_ERR_VERIFY;
    }
    if (!err) {
        memcpy(ch->enclave_pub, reply + 36, 33);
        memcpy(ch->peer_eph, reply + 3, 33);
        unsigned char th2[32], gw_x[32];
        secp256k1_keypair kp;
        if (!secp256k1_keypair_create(secp, &kp, gateway_seckey)) err = KM_ERR_INVALID_KEY;
        secp256k1_xonly_pubkey xo;
        if (!err && (!secp256k1_keypair_xonly_pub(secp, &xo, NULL, &kp) ||
                     !secp256k1_xonly_pubkey_serialize(secp, gw_x, &xo)))
            err = KM_ERR_CRYPTO;
        km_wipe(&kp, sizeof kp);
        if (!err) {
            transcript2(th2, ch->th, reply + 101, gw_x);
            out_auth[0] = 0x03;
            memcpy(out_auth + 1, gw_x, 32);
            err = sign_transcript(ctx, gateway_seckey, th2, out_auth + 33, NULL);
        }
        if (!err) {
            memcpy(ch->th, th2, 32);
            memcpy(ch->gateway_pub, gw_x, 32);
            err = derive_keys(ctx, ch);
        }
    }
    if (err) {
        km_channel_clear(ch);
        memset(out_auth, 0, KM_CHANNEL_AUTH_LEN);
    }
    return err;
}

km_err km_channel_enclave_finish(km_ctx *ctx, km_channel *ch, const unsigned char *auth, size_t auth_len,
                                 const unsigned char (*allowed)[32], size_t n_allowed) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    km_err err = KM_OK;
    if (ch->state != ST_REPLY_SENT || ch->role != KM_CHANNEL_ENCLAVE)
        err = KM_ERR_STATE;
    else if (auth_len != KM_CHANNEL_AUTH_LEN || auth[0] != 0x03)
        err = KM_ERR_PARSE;
    if (!err) {
        int ok = 0;
        for (size_t i = 0; i < n_allowed; i++)
            ok |= km_ct_equal(allowed[i], auth + 1, 32);
        secp256k1_xonly_pubkey gx;
        unsigned char th2[32];
        transcript2(th2, ch->th, ch->sig_e, auth + 1);
        if (!ok || !secp256k1_xonly_pubkey_parse(secp, &gx, auth + 1) ||
            !secp256k1_schnorrsig_verify(secp, auth + 33, th2, 32, &gx))
            err = KM_ERR_VERIFY;
        if (!err) {
            memcpy(ch->th, th2, 32);
            memcpy(ch->gateway_pub, auth + 1, 32);
            err = derive_keys(ctx, ch);
        }
    }
    if (err) km_channel_clear(ch);
    return err;
}

static void record_params(unsigned char nonce[12], unsigned char ad[13], char dir, uint64_t ctr) {
    memset(nonce, 0, 12);
    memcpy(ad, "KMC1", 4);
    ad[4] = (unsigned char)dir;
    for (int i = 0; i < 8; i++) {
        nonce[4 + i] = (unsigned char)(ctr >> (56 - 8 * i));
        ad[5 + i] = nonce[4 + i];
    }
}

km_err km_channel_seal(km_channel *ch, const unsigned char *pt, size_t len, km_buf *out) {
    if (ch->state != ST_READY || ch->send_ctr == UINT64_MAX) return KM_ERR_STATE;
    unsigned char nonce[12], ad[13], tag[16];
    record_params(nonce, ad, ch->role == KM_CHANNEL_GATEWAY ? 'G' : 'E', ch->send_ctr);
    size_t start = out->len;
    /* Reserve room, then encrypt into the buffer directly. */
    static const unsigned char zeros[256];
    for (size_t left = len; left > 0;) {
        size_t n = left < sizeof zeros ? left : sizeof zeros;
        if (km_buf_put(out, zeros, n) != KM_OK) return KM_ERR_NOMEM;
        left -= n;
    }
    km_err err =
        km_aead_seal(out->data ? out->data + start : NULL, tag, ch->send_key, nonce, ad, sizeof ad, pt, len);
    if (!err) err = km_buf_put(out, tag, 16);
    if (err) {
        out->len = start;
        return err;
    }
    ch->send_ctr++;
    return KM_OK;
}

km_err km_channel_open(km_channel *ch, unsigned char *rec, size_t len, size_t *pt_len) {
    *pt_len = 0;
    if (ch->state != ST_READY) return KM_ERR_STATE;
    if (len < KM_CHANNEL_OVERHEAD) {
        km_channel_clear(ch);
        return KM_ERR_PARSE;
    }
    unsigned char nonce[12], ad[13];
    record_params(nonce, ad, ch->role == KM_CHANNEL_GATEWAY ? 'E' : 'G', ch->recv_ctr);
    size_t n = len - KM_CHANNEL_OVERHEAD;
    if (km_aead_open(rec, ch->recv_key, nonce, ad, sizeof ad, rec, n, rec + n) != KM_OK) {
        km_channel_clear(ch);
        return KM_ERR_DECRYPT;
    }
    ch->recv_ctr++;
    *pt_len = n;
    return KM_OK;
}
