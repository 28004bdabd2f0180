/* records.c — what every handler that exchanges records with other enclaves
 * needs: reading length-prefixed fields, signing with this enclave's key, and
 * checking that a record was signed by the enclave a participant belongs to. */
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "enclave/records.h"
#include "keymeld/aead.h"

int km_get_vbytes(km_cursor *c, const unsigned char **p, size_t *len, size_t max) {
    uint32_t n;
    if (km_cursor_get_u32(c, &n) != KM_OK || n > max) return 0;
    *len = n;
    return km_cursor_get_view(c, p, n) == KM_OK;
}

km_err km_enclave_sign(km_enclave *e, const unsigned char digest[32], unsigned char sig[64]) {
    const secp256k1_context *secp = km_ctx_secp(e->ctx);
    secp256k1_keypair kp;
    unsigned char aux[32];
    km_err err = km_random_bytes(aux, 32);
    if (!err && !secp256k1_keypair_create(secp, &kp, km_secret_cdata(e->key))) err = KM_ERR_INVALID_KEY;
    if (!err && !secp256k1_schnorrsig_sign32(secp, sig, digest, &kp, aux)) err = KM_ERR_CRYPTO;
    km_wipe(&kp, sizeof kp);
    return err;
}

int km_record_signed_by(km_enclave *e, const km_keygen_state *k, int participant, uint16_t claimed_index,
                        const unsigned char sig[64], const unsigned char digest[32]) {
    const secp256k1_context *secp = km_ctx_secp(e->ctx);
    uint16_t ei = k->init.enclave_index[participant];
    secp256k1_pubkey epk;
    secp256k1_xonly_pubkey ex;
    return claimed_index == ei && secp256k1_ec_pubkey_parse(secp, &epk, k->init.enclave_pubs[ei], 33) &&
           secp256k1_xonly_pubkey_from_pubkey(secp, &ex, NULL, &epk) &&
           secp256k1_schnorrsig_verify(secp, sig, digest, 32, &ex);
}
