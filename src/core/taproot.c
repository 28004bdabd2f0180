/* taproot.c — taproot tweak modes and BIP-341 output keys (libsecp256k1 extrakeys). */
#include <string.h>

#include <secp256k1_extrakeys.h>

#include "keymeld/hash.h"
#include "keymeld/taproot.h"

static const char *const mode_names[] = {"none", "bip86", "bip341", "plain", "xonly"};
#define N_MODES (sizeof mode_names / sizeof mode_names[0])

void km_tweak_none(km_tweak *t) {
    memset(t, 0, sizeof *t);
    t->mode = KM_TWEAK_NONE;
}

void km_tweak_bip86(km_tweak *t) {
    memset(t, 0, sizeof *t);
    t->mode = KM_TWEAK_BIP86;
}

void km_tweak_bip341(km_tweak *t, const unsigned char merkle_root32[32]) {
    memset(t, 0, sizeof *t);
    t->mode = KM_TWEAK_BIP341;
    memcpy(t->data, merkle_root32, 32);
}

void km_tweak_plain(km_tweak *t, const unsigned char tweak32[32]) {
    memset(t, 0, sizeof *t);
    t->mode = KM_TWEAK_PLAIN;
    memcpy(t->data, tweak32, 32);
}

void km_tweak_xonly(km_tweak *t, const unsigned char tweak32[32]) {
    memset(t, 0, sizeof *t);
    t->mode = KM_TWEAK_XONLY;
    memcpy(t->data, tweak32, 32);
}

int km_tweak_mode_has_data(km_tweak_mode mode) {
    return mode == KM_TWEAK_BIP341 || mode == KM_TWEAK_PLAIN || mode == KM_TWEAK_XONLY;
}

km_err km_tweak_check(const km_tweak *t) {
    /* The enum may hold any int when it comes from a decoder; compare as an
     * unsigned value so negative values are rejected too. */
    if ((unsigned)t->mode >= N_MODES) return KM_ERR_UNSUPPORTED;
    if (!km_tweak_mode_has_data(t->mode)) {
        static const unsigned char zero[32];
        /* One representation per value: stray bytes in an unused field would
         * make two "equal" tweaks hash differently in approval digests. */
        if (memcmp(t->data, zero, 32) != 0) return KM_ERR_ARG;
    }
    return KM_OK;
}

const char *km_tweak_mode_name(km_tweak_mode mode) {
    if ((unsigned)mode >= N_MODES) return NULL;
    return mode_names[mode];
}

km_err km_tweak_mode_parse(km_tweak_mode *mode, const char *name, size_t len) {
    *mode = KM_TWEAK_NONE;
    for (size_t i = 0; i < N_MODES; i++) {
        if (strlen(mode_names[i]) == len && memcmp(mode_names[i], name, len) == 0) {
            *mode = (km_tweak_mode)i;
            return KM_OK;
        }
    }
    return KM_ERR_PARSE;
}

void km_taproot_tweak_hash(unsigned char out32[32], const unsigned char internal_xonly32[32],
                           const unsigned char *merkle_root32) {
    unsigned char buf[64];
    memcpy(buf, internal_xonly32, 32);
    if (merkle_root32) memcpy(buf + 32, merkle_root32, 32);
    km_tagged_hash(out32, "TapTweak", buf, merkle_root32 ? 64 : 32);
}

km_err km_taproot_output_key(const km_ctx *ctx, unsigned char out_xonly32[32], int *parity,
                             const unsigned char internal_xonly32[32], const km_tweak *tweak) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    memset(out_xonly32, 0, 32);
    if (parity) *parity = 0;
    km_err err = km_tweak_check(tweak);
    if (err) return err;

    secp256k1_xonly_pubkey internal;
    if (!secp256k1_xonly_pubkey_parse(secp, &internal, internal_xonly32)) return KM_ERR_INVALID_POINT;
    if (tweak->mode == KM_TWEAK_NONE) {
        /* An x-only key stands for its even-y point. */
        memcpy(out_xonly32, internal_xonly32, 32);
        return KM_OK;
    }

    unsigned char t[32];
    switch (tweak->mode) {
    case KM_TWEAK_BIP86:
        km_taproot_tweak_hash(t, internal_xonly32, NULL);
        break;
    case KM_TWEAK_BIP341:
        km_taproot_tweak_hash(t, internal_xonly32, tweak->data);
        break;
    default: /* plain and xonly coincide for an x-only (even-y) internal key */
        memcpy(t, tweak->data, 32);
        break;
    }

    secp256k1_pubkey q;
    secp256k1_xonly_pubkey qx;
    int par = 0;
    /* Fails for t >= n and for Q = infinity (t = -dlog(P)). */
    if (!secp256k1_xonly_pubkey_tweak_add(secp, &q, &internal, t)) return KM_ERR_RANGE;
    if (!secp256k1_xonly_pubkey_from_pubkey(secp, &qx, &par, &q) ||
        !secp256k1_xonly_pubkey_serialize(secp, out_xonly32, &qx))
        return KM_ERR_CRYPTO;
    if (parity) *parity = par;
    return KM_OK;
}

void km_taproot_script_pubkey(unsigned char spk34[KM_TAPROOT_SPK_LEN],
                              const unsigned char output_xonly32[32]) {
    spk34[0] = 0x51; /* OP_1: segwit version 1 */
    spk34[1] = 0x20; /* push 32 bytes */
    memcpy(spk34 + 2, output_xonly32, 32);
}
