/* ct_secrets.c — constant-time check of KeyMeld's own code that touches
 * secrets, run under valgrind memcheck (ctest: ct/ct_secrets).
 *
 * The technique is libsecp256k1's (src/ctime_tests.c): memcheck tracks
 * whether every bit is "defined" and reports a conditional jump, or a memory
 * address, computed from undefined bits. Marking a secret undefined with
 * VALGRIND_MAKE_MEM_UNDEFINED therefore turns every branch on it and every
 * table lookup indexed by it into a memcheck error; running the program under
 * `valgrind --error-exitcode=1` makes such a leak a test failure.
 *
 * Declassification. Some values computed from secrets are public by design:
 * public keys, signatures, public nonces, and whether a secret key is valid
 * (a uniformly random 32-byte string is invalid with probability 2^-128).
 * libsecp256k1's own ctime test marks them defined after each call; here the
 * same is done where they leave libsecp256k1, with linker wrappers
 * (-Wl,--wrap=FUNC, see CMakeLists.txt): __wrap_FUNC calls the real function
 * and marks only its public outputs defined. Everything KeyMeld's code does
 * with the secrets in between (copies, hashing, HKDF, AES-GCM, hex, codecs,
 * comparisons, zero checks, the enclave's single-signer handlers) stays
 * checked. Two more declassification rules: a signature handed to a
 * verification function is public (KeyMeld verifies each signature just
 * before releasing it), and the one-bit verdict of km_ct_equal is public
 * (ct_enclave.c). tests/ct/ct.supp lists the declassification points inside
 * libsecp256k1 and OpenSSL that this build of them cannot mark itself; it
 * has no entry for KeyMeld's own code.
 *
 * Found and fixed with it: km_hex_encode looked up a table by each secret
 * nibble and km_hex_decode branched on each character's class (hex.c);
 * km_adaptor_secret_sum branched on the bytes of the secret partial sum
 * (adaptor.c). --control-leak runs the old hex encoder as the negative
 * control (ctest ct/ct_detects_leak).
 *
 * The program also checks its own results (signatures verify, blobs open to
 * the same bytes), so it cannot pass by doing nothing. Run without valgrind
 * the marks are no-ops and it is an ordinary functional test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <secp256k1.h>
#include <secp256k1_ecdh.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_musig.h>
#include <secp256k1_schnorrsig.h>
#include <valgrind/memcheck.h>

#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/ecies.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "keymeld/musig.h"
#include "keymeld/proto_key.h"
#include "keymeld/proto_keygen.h"
#include "keymeld/seal.h"
#include "keymeld/secret.h"
#include "keymeld/session_crypto.h"
#include "keymeld/single.h"
#include "tests/ct/ct.h"

/* ---- declassification at the libsecp256k1 boundary ------------------------ */

#define PUB(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))

/* Each wrapper: the real call, then its public outputs marked defined. */
int __real_secp256k1_ec_seckey_verify(const secp256k1_context *c, const unsigned char *k);
int __wrap_secp256k1_ec_seckey_verify(const secp256k1_context *c, const unsigned char *k);
int __wrap_secp256k1_ec_seckey_verify(const secp256k1_context *c, const unsigned char *k) {
    int r = __real_secp256k1_ec_seckey_verify(c, k);
    PUB(&r, sizeof r); /* validity of a key */
    return r;
}

int __real_secp256k1_ec_seckey_negate(const secp256k1_context *c, unsigned char *k);
int __wrap_secp256k1_ec_seckey_negate(const secp256k1_context *c, unsigned char *k);
int __wrap_secp256k1_ec_seckey_negate(const secp256k1_context *c, unsigned char *k) {
    int r = __real_secp256k1_ec_seckey_negate(c, k);
    PUB(&r, sizeof r); /* validity of the key; the negated key stays secret */
    return r;
}

int __real_secp256k1_ec_seckey_tweak_add(const secp256k1_context *c, unsigned char *k,
                                         const unsigned char *t);
int __wrap_secp256k1_ec_seckey_tweak_add(const secp256k1_context *c, unsigned char *k,
                                         const unsigned char *t);
int __wrap_secp256k1_ec_seckey_tweak_add(const secp256k1_context *c, unsigned char *k,
                                         const unsigned char *t) {
    int r = __real_secp256k1_ec_seckey_tweak_add(c, k, t);
    PUB(&r, sizeof r); /* fails only for an invalid key or a zero sum (libsecp256k1's ctime test) */
    return r;
}

int __real_secp256k1_ec_pubkey_create(const secp256k1_context *c, secp256k1_pubkey *pk,
                                      const unsigned char *k);
int __wrap_secp256k1_ec_pubkey_create(const secp256k1_context *c, secp256k1_pubkey *pk,
                                      const unsigned char *k);
int __wrap_secp256k1_ec_pubkey_create(const secp256k1_context *c, secp256k1_pubkey *pk,
                                      const unsigned char *k) {
    int r = __real_secp256k1_ec_pubkey_create(c, pk, k);
    PUB(&r, sizeof r);
    PUB(pk, sizeof *pk); /* a public key */
    return r;
}

int __real_secp256k1_keypair_create(const secp256k1_context *c, secp256k1_keypair *kp,
                                    const unsigned char *k);
int __wrap_secp256k1_keypair_create(const secp256k1_context *c, secp256k1_keypair *kp,
                                    const unsigned char *k);
int __wrap_secp256k1_keypair_create(const secp256k1_context *c, secp256k1_keypair *kp,
                                    const unsigned char *k) {
    int r = __real_secp256k1_keypair_create(c, kp, k);
    PUB(&r, sizeof r);
    /* A keypair is secret key (bytes 0..31) then public key (32..95) inside
     * libsecp256k1 (keypair_load in src/modules/extrakeys/main_impl.h); the
     * public half is public. */
    PUB(kp->data + 32, sizeof kp->data - 32);
    return r;
}

int __real_secp256k1_keypair_pub(const secp256k1_context *c, secp256k1_pubkey *pk,
                                 const secp256k1_keypair *kp);
int __wrap_secp256k1_keypair_pub(const secp256k1_context *c, secp256k1_pubkey *pk,
                                 const secp256k1_keypair *kp);
int __wrap_secp256k1_keypair_pub(const secp256k1_context *c, secp256k1_pubkey *pk,
                                 const secp256k1_keypair *kp) {
    int r = __real_secp256k1_keypair_pub(c, pk, kp);
    PUB(&r, sizeof r);
    PUB(pk, sizeof *pk);
    return r;
}

int __real_secp256k1_keypair_xonly_pub(const secp256k1_context *c, secp256k1_xonly_pubkey *pk, int *parity,
                                       const secp256k1_keypair *kp);
int __wrap_secp256k1_keypair_xonly_pub(const secp256k1_context *c, secp256k1_xonly_pubkey *pk, int *parity,
                                       const secp256k1_keypair *kp);
int __wrap_secp256k1_keypair_xonly_pub(const secp256k1_context *c, secp256k1_xonly_pubkey *pk, int *parity,
                                       const secp256k1_keypair *kp) {
    int r = __real_secp256k1_keypair_xonly_pub(c, pk, parity, kp);
    PUB(&r, sizeof r);
    PUB(pk, sizeof *pk);
    if (parity) PUB(parity, sizeof *parity);
    return r;
}

int __real_secp256k1_keypair_xonly_tweak_add(const secp256k1_context *c, secp256k1_keypair *kp,
                                             const unsigned char *t);
int __wrap_secp256k1_keypair_xonly_tweak_add(const secp256k1_context *c, secp256k1_keypair *kp,
                                             const unsigned char *t);
int __wrap_secp256k1_keypair_xonly_tweak_add(const secp256k1_context *c, secp256k1_keypair *kp,
                                             const unsigned char *t) {
    int r = __real_secp256k1_keypair_xonly_tweak_add(c, kp, t);
    PUB(&r, sizeof r);                        /* fails only for a tweak >= n or an infinite result */
    PUB(kp->data + 32, sizeof kp->data - 32); /* the tweaked public key */
    return r;
}

int __real_secp256k1_keypair_sec(const secp256k1_context *c, unsigned char *k, const secp256k1_keypair *kp);
int __wrap_secp256k1_keypair_sec(const secp256k1_context *c, unsigned char *k, const secp256k1_keypair *kp);
int __wrap_secp256k1_keypair_sec(const secp256k1_context *c, unsigned char *k, const secp256k1_keypair *kp) {
    int r = __real_secp256k1_keypair_sec(c, k, kp);
    PUB(&r, sizeof r);
    return r;
}

int __real_secp256k1_schnorrsig_sign_custom(const secp256k1_context *c, unsigned char *sig,
                                            const unsigned char *msg, size_t len, const secp256k1_keypair *kp,
                                            secp256k1_schnorrsig_extraparams *ex);
int __wrap_secp256k1_schnorrsig_sign_custom(const secp256k1_context *c, unsigned char *sig,
                                            const unsigned char *msg, size_t len, const secp256k1_keypair *kp,
                                            secp256k1_schnorrsig_extraparams *ex);
int __wrap_secp256k1_schnorrsig_sign_custom(const secp256k1_context *c, unsigned char *sig,
                                            const unsigned char *msg, size_t len, const secp256k1_keypair *kp,
                                            secp256k1_schnorrsig_extraparams *ex) {
    int r = __real_secp256k1_schnorrsig_sign_custom(c, sig, msg, len, kp, ex);
    PUB(&r, sizeof r);
    PUB(sig, 64); /* a signature */
    return r;
}

int __real_secp256k1_schnorrsig_sign32(const secp256k1_context *c, unsigned char *sig,
                                       const unsigned char *msg, const secp256k1_keypair *kp,
                                       const unsigned char *aux);
int __wrap_secp256k1_schnorrsig_sign32(const secp256k1_context *c, unsigned char *sig,
                                       const unsigned char *msg, const secp256k1_keypair *kp,
                                       const unsigned char *aux);
int __wrap_secp256k1_schnorrsig_sign32(const secp256k1_context *c, unsigned char *sig,
                                       const unsigned char *msg, const secp256k1_keypair *kp,
                                       const unsigned char *aux) {
    int r = __real_secp256k1_schnorrsig_sign32(c, sig, msg, kp, aux);
    PUB(&r, sizeof r);
    PUB(sig, 64);
    return r;
}

int __real_secp256k1_ecdsa_sign(const secp256k1_context *c, secp256k1_ecdsa_signature *sig,
                                const unsigned char *msg, const unsigned char *k, secp256k1_nonce_function f,
                                const void *d);
int __wrap_secp256k1_ecdsa_sign(const secp256k1_context *c, secp256k1_ecdsa_signature *sig,
                                const unsigned char *msg, const unsigned char *k, secp256k1_nonce_function f,
                                const void *d);
int __wrap_secp256k1_ecdsa_sign(const secp256k1_context *c, secp256k1_ecdsa_signature *sig,
                                const unsigned char *msg, const unsigned char *k, secp256k1_nonce_function f,
                                const void *d) {
    int r = __real_secp256k1_ecdsa_sign(c, sig, msg, k, f, d);
    PUB(&r, sizeof r);
    PUB(sig, sizeof *sig);
    return r;
}

int __real_secp256k1_ecdh(const secp256k1_context *c, unsigned char *out, const secp256k1_pubkey *pk,
                          const unsigned char *k, secp256k1_ecdh_hash_function f, void *d);
int __wrap_secp256k1_ecdh(const secp256k1_context *c, unsigned char *out, const secp256k1_pubkey *pk,
                          const unsigned char *k, secp256k1_ecdh_hash_function f, void *d);
int __wrap_secp256k1_ecdh(const secp256k1_context *c, unsigned char *out, const secp256k1_pubkey *pk,
                          const unsigned char *k, secp256k1_ecdh_hash_function f, void *d) {
    int r = __real_secp256k1_ecdh(c, out, pk, k, f, d);
    PUB(&r, sizeof r); /* the shared secret in out stays secret */
    return r;
}

/* Verification handles only public values: KeyMeld verifies every
 * signature it releases just before releasing it (km_adaptor_adapt,
 * km_single_*_sign), which is where the signature becomes public. */
int __real_secp256k1_schnorrsig_verify(const secp256k1_context *c, const unsigned char *sig,
                                       const unsigned char *msg, size_t len,
                                       const secp256k1_xonly_pubkey *pk);
int __wrap_secp256k1_schnorrsig_verify(const secp256k1_context *c, const unsigned char *sig,
                                       const unsigned char *msg, size_t len,
                                       const secp256k1_xonly_pubkey *pk);
int __wrap_secp256k1_schnorrsig_verify(const secp256k1_context *c, const unsigned char *sig,
                                       const unsigned char *msg, size_t len,
                                       const secp256k1_xonly_pubkey *pk) {
    PUB(sig, 64);
    return __real_secp256k1_schnorrsig_verify(c, sig, msg, len, pk);
}

int __real_secp256k1_musig_nonce_gen(const secp256k1_context *c, secp256k1_musig_secnonce *sn,
                                     secp256k1_musig_pubnonce *pn, unsigned char *rand,
                                     const unsigned char *sk, const secp256k1_pubkey *pk,
                                     const unsigned char *msg, const secp256k1_musig_keyagg_cache *kc,
                                     const unsigned char *extra);
int __wrap_secp256k1_musig_nonce_gen(const secp256k1_context *c, secp256k1_musig_secnonce *sn,
                                     secp256k1_musig_pubnonce *pn, unsigned char *rand,
                                     const unsigned char *sk, const secp256k1_pubkey *pk,
                                     const unsigned char *msg, const secp256k1_musig_keyagg_cache *kc,
                                     const unsigned char *extra);
int __wrap_secp256k1_musig_nonce_gen(const secp256k1_context *c, secp256k1_musig_secnonce *sn,
                                     secp256k1_musig_pubnonce *pn, unsigned char *rand,
                                     const unsigned char *sk, const secp256k1_pubkey *pk,
                                     const unsigned char *msg, const secp256k1_musig_keyagg_cache *kc,
                                     const unsigned char *extra) {
    int r = __real_secp256k1_musig_nonce_gen(c, sn, pn, rand, sk, pk, msg, kc, extra);
    PUB(&r, sizeof r);
    PUB(pn, sizeof *pn); /* the public nonce */
    /* The secnonce is magic[4] | k1 | k2 | public key[64]; libsecp256k1
     * masks all of it with the (secret-derived) success flag, so its public
     * parts are marked public again. k1 || k2 stay secret. */
    PUB(sn->data, 4);
    PUB(sn->data + 68, sizeof sn->data - 68);
    return r;
}

int __real_secp256k1_musig_partial_sign(const secp256k1_context *c, secp256k1_musig_partial_sig *ps,
                                        secp256k1_musig_secnonce *sn, const secp256k1_keypair *kp,
                                        const secp256k1_musig_keyagg_cache *kc,
                                        const secp256k1_musig_session *s);
int __wrap_secp256k1_musig_partial_sign(const secp256k1_context *c, secp256k1_musig_partial_sig *ps,
                                        secp256k1_musig_secnonce *sn, const secp256k1_keypair *kp,
                                        const secp256k1_musig_keyagg_cache *kc,
                                        const secp256k1_musig_session *s);
int __wrap_secp256k1_musig_partial_sign(const secp256k1_context *c, secp256k1_musig_partial_sig *ps,
                                        secp256k1_musig_secnonce *sn, const secp256k1_keypair *kp,
                                        const secp256k1_musig_keyagg_cache *kc,
                                        const secp256k1_musig_session *s) {
    int r = __real_secp256k1_musig_partial_sign(c, ps, sn, kp, kc, s);
    PUB(&r, sizeof r);
    PUB(ps, sizeof *ps); /* a partial signature is sent to the other signers */
    return r;
}

/* ---- the checks ------------------------------------------------------------ */

static int failures;

void ct_fail(const char *what, int line) {
    fprintf(stderr, "ct_secrets: FAILED at line %d: %s\n", line, what);
    failures++;
}

/* A valid random secret key. */
static void fresh_key(km_ctx *ctx, unsigned char k[32]) {
    do
        CT_CHECK(km_random_bytes(k, 32) == KM_OK);
    while (km_single_seckey_check(ctx, k) != KM_OK);
}

static void ct_single(km_ctx *ctx) {
    unsigned char sk[32], pub33[33], x[32], sig[64], msg[32] = {1}, aux[32] = {2}, tw[32];
    fresh_key(ctx, sk);
    CT_SECRET(sk, 32);
    CT_CHECK(km_single_seckey_check(ctx, sk) == KM_OK);
    CT_CHECK(km_single_pubkey(ctx, pub33, sk) == KM_OK);
    CT_CHECK(km_single_xonly_pubkey(ctx, x, sk) == KM_OK);
    CT_CHECK(km_single_schnorr_sign_aux(ctx, sig, msg, sizeof msg, sk, aux) == KM_OK);
    CT_CHECK(km_single_schnorr_verify(ctx, sig, msg, sizeof msg, x) == KM_OK);
    CT_CHECK(km_single_schnorr_sign(ctx, sig, msg, sizeof msg, sk) == KM_OK);
    CT_CHECK(km_single_ecdsa_sign(ctx, sig, msg, sk) == KM_OK);
    CT_CHECK(km_single_ecdsa_verify(ctx, sig, msg, pub33) == KM_OK);
    CT_CHECK(km_single_taproot_tweak_seckey(ctx, tw, sk, NULL) == KM_OK);
    km_wipe(sk, sizeof sk);
    km_wipe(tw, sizeof tw);
}

/* The secret scalars k1 || k2 of a secret nonce from km_musig_nonce_gen:
 * the km_secret holds magic[8] then libsecp256k1's secnonce, which is
 * magic[4] | k1[32] | k2[32] | public key[64] (src/core/musig.c
 * secnonce_blob; libsecp256k1 src/modules/musig/session_impl.h
 * secp256k1_musig_secnonce_save). The rest is public. */
static void secret_nonce(km_secret *sn) {
    CT_SECRET(km_secret_data(sn) + 8 + 4, 64);
}

static void ct_musig(km_ctx *ctx) {
    unsigned char sk[2][32], pk[2][33], pn[2][66], agg[66], psig[2][32], sig[64], msg[32] = {3};
    km_secret *sn[2];
    km_musig_keyagg ka;
    km_musig_session s;
    km_tweak tw;
    km_tweak_bip86(&tw);
    for (int i = 0; i < 2; i++) {
        fresh_key(ctx, sk[i]);
        CT_CHECK(km_single_pubkey(ctx, pk[i], sk[i]) == KM_OK);
    }
    CT_CHECK(km_musig_key_agg(ctx, &ka, &pk[0][0], 2, NULL) == KM_OK);
    CT_CHECK(km_musig_keyagg_tweak(ctx, &ka, &tw) == KM_OK);
    for (int i = 0; i < 2; i++) {
        CT_SECRET(sk[i], 32);
        CT_CHECK(km_musig_nonce_gen(ctx, &sn[i], pn[i], sk[i], pk[i], msg, &ka, NULL) == KM_OK);
        secret_nonce(sn[i]);
    }
    CT_CHECK(km_musig_nonce_agg(ctx, agg, &pn[0][0], 2, NULL) == KM_OK);
    CT_CHECK(km_musig_session_init(ctx, &s, agg, msg, &ka) == KM_OK);
    for (int i = 0; i < 2; i++) {
        CT_CHECK(km_musig_partial_sign(ctx, psig[i], sn[i], sk[i], &s) == KM_OK);
        /* A consumed nonce is refused, also when it is secret. */
        CT_CHECK(km_musig_partial_sign(ctx, psig[i], sn[i], sk[i], &s) == KM_ERR_NONCE_REUSE);
        CT_CHECK(km_musig_partial_sign(ctx, psig[i], sn[i], sk[i], &s) == KM_ERR_NONCE_REUSE);
        km_secret_free(sn[i]);
    }
    /* Regenerated: psig was zeroed by the refused calls above. */
    for (int i = 0; i < 2; i++)
        CT_CHECK(km_musig_nonce_gen(ctx, &sn[i], pn[i], sk[i], pk[i], msg, &ka, NULL) == KM_OK);
    CT_CHECK(km_musig_nonce_agg(ctx, agg, &pn[0][0], 2, NULL) == KM_OK);
    CT_CHECK(km_musig_session_init(ctx, &s, agg, msg, &ka) == KM_OK);
    for (int i = 0; i < 2; i++) {
        secret_nonce(sn[i]);
        CT_CHECK(km_musig_partial_sign(ctx, psig[i], sn[i], sk[i], &s) == KM_OK);
        km_secret_free(sn[i]);
    }
    CT_CHECK(km_musig_partial_agg(ctx, sig, &s, &psig[0][0], 2, NULL) == KM_OK);
    CT_CHECK(km_musig_verify_final(ctx, sig, msg, &ka) == KM_OK);
    km_wipe(sk, sizeof sk);
}

static void ct_adaptor(km_ctx *ctx) {
    unsigned char t[3][32], T[3][33], sum[32], back[32];
    for (int i = 0; i < 3; i++) {
        fresh_key(ctx, t[i]);
        CT_SECRET(t[i], 32);
        CT_CHECK(km_adaptor_point_from_secret(ctx, T[i], t[i]) == KM_OK);
    }
    const unsigned char *secs[3] = {t[0], t[1], t[2]};
    CT_CHECK(km_adaptor_secret_sum(ctx, sum, secs, 3) == KM_OK);

    /* A pre-signature under a single key: sign with nonce R' = R + T the way
     * the signers do, here with a MuSig2 session of one signer. */
    unsigned char sk[32], pk[33], pn[66], agg[66], psig[32], presig[64], sig[64], msg[32] = {4};
    km_secret *sn;
    km_musig_keyagg ka;
    km_musig_session s;
    fresh_key(ctx, sk);
    CT_CHECK(km_single_pubkey(ctx, pk, sk) == KM_OK);
    CT_CHECK(km_musig_key_agg(ctx, &ka, pk, 1, NULL) == KM_OK);
    CT_CHECK(km_musig_nonce_gen(ctx, &sn, pn, sk, pk, msg, &ka, NULL) == KM_OK);
    CT_CHECK(km_musig_nonce_agg(ctx, agg, pn, 1, NULL) == KM_OK);
    CT_CHECK(km_adaptor_fold_aggnonce(ctx, agg, agg, T[0]) == KM_OK);
    CT_CHECK(km_musig_session_init(ctx, &s, agg, msg, &ka) == KM_OK);
    CT_CHECK(km_musig_partial_sign(ctx, psig, sn, sk, &s) == KM_OK);
    km_secret_free(sn);
    CT_CHECK(km_musig_partial_agg(ctx, presig, &s, psig, 1, NULL) == KM_OK);
    CT_CHECK(km_adaptor_presig_verify(ctx, presig, T[0], ka.output_xonly, msg) == KM_OK);
    CT_CHECK(km_adaptor_adapt(ctx, sig, presig, t[0], ka.output_xonly, msg) == KM_OK);
    CT_PUBLIC(sig, sizeof sig); /* the completed signature is published */
    CT_CHECK(km_single_schnorr_verify(ctx, sig, msg, 32, ka.output_xonly) == KM_OK);
    CT_CHECK(km_adaptor_extract(ctx, back, presig, sig, T[0]) == KM_OK);
    CT_CHECK(km_ct_equal(back, t[0], 32));
    km_wipe(t, sizeof t);
    km_wipe(sum, sizeof sum);
    km_wipe(sk, sizeof sk);
}

static void ct_symmetric(void) {
    unsigned char key[32], nonce[12] = {5}, ad[8] = {6}, pt[100], ct[100], tag[16], back[100], h[32];
    CT_CHECK(km_random_bytes(key, 32) == KM_OK);
    CT_CHECK(km_random_bytes(pt, sizeof pt) == KM_OK);
    CT_SECRET(key, 32);
    CT_SECRET(pt, sizeof pt);
    /* Hashes and HKDF of secrets. */
    km_sha256(h, pt, sizeof pt);
    km_sha384(back, pt, sizeof pt);
    km_tagged_hash(h, "KeyMeld/ct", pt, sizeof pt);
    const void *parts[2] = {key, pt};
    const size_t lens[2] = {32, sizeof pt};
    km_sha256_parts(h, parts, lens, 2);
    CT_CHECK(km_hkdf_sha256(back, 64, key, 32, NULL, 0, ad, sizeof ad) == KM_OK);
    /* AES-256-GCM with a secret key and a secret plaintext. */
    CT_CHECK(km_aead_seal(ct, tag, key, nonce, ad, sizeof ad, pt, sizeof pt) == KM_OK);
    CT_PUBLIC(ct, sizeof ct); /* ciphertext and tag are sent */
    CT_PUBLIC(tag, sizeof tag);
    CT_CHECK(km_aead_open(back, key, nonce, ad, sizeof ad, ct, sizeof ct, tag) == KM_OK);
    CT_CHECK(km_ct_equal(back, pt, sizeof pt));
    tag[0] ^= 1;
    CT_CHECK(km_aead_open(back, key, nonce, ad, sizeof ad, ct, sizeof ct, tag) == KM_ERR_DECRYPT);
    /* Equality of secrets in constant time. */
    memcpy(back, pt, sizeof pt);
    CT_CHECK(km_ct_equal(back, pt, sizeof pt));
    /* Hex of a secret (key files, session invitations). */
    char hex[65];
    unsigned char dec[32];
    CT_CHECK(km_hex_encode(hex, sizeof hex, key, 32) == KM_OK);
    CT_CHECK(km_hex_decode(dec, 32, hex, 64) == KM_OK);
    CT_CHECK(km_ct_equal(dec, key, 32));
    size_t n = 0;
    CT_CHECK(km_hex_decode_var(dec, sizeof dec, &n, hex, 64) == KM_OK);
    km_wipe(key, sizeof key);
    km_wipe(pt, sizeof pt);
    km_wipe(dec, sizeof dec);
    km_wipe(hex, sizeof hex);
}

static void ct_seal_ecies_session(km_ctx *ctx) {
    unsigned char op[32], pt[64], out[64], sk[32], pub[33], ad[4] = {7};
    CT_CHECK(km_random_bytes(op, 32) == KM_OK);
    CT_CHECK(km_random_bytes(pt, sizeof pt) == KM_OK);
    CT_SECRET(op, 32);
    CT_SECRET(pt, sizeof pt);

    /* Sealing at rest (the enclave's identity and the sealing key file). */
    km_sealer *sl = NULL;
    km_buf blob;
    km_buf_init(&blob);
    km_secret *back = NULL;
    CT_CHECK(km_sealer_local_new(ctx, op, &sl) == KM_OK);
    CT_CHECK(km_seal(sl, "ct-label", pt, sizeof pt, &blob) == KM_OK);
    CT_PUBLIC(blob.data, blob.len);
    CT_CHECK(km_unseal(sl, "ct-label", blob.data, blob.len, &back) == KM_OK);
    CT_CHECK(back && km_ct_equal(km_secret_cdata(back), pt, sizeof pt));
    km_secret_free(back);
    km_sealer_free(sl);

    /* ECIES to an enclave key: the sender's plaintext and the recipient's key are secret. */
    fresh_key(ctx, sk);
    CT_SECRET(sk, 32);
    CT_CHECK(km_ecies_pubkey(ctx, sk, pub) == KM_OK);
    CT_CHECK(km_ecies_seal(ctx, pub, ad, sizeof ad, pt, sizeof pt, &blob) == KM_OK);
    CT_PUBLIC(blob.data, blob.len);
    size_t n = 0;
    CT_CHECK(km_ecies_open(ctx, sk, ad, sizeof ad, blob.data, blob.len, out, sizeof out, &n) == KM_OK);
    CT_CHECK(n == sizeof pt && km_ct_equal(out, pt, sizeof pt));
    CT_CHECK(km_ecies_open_secret(ctx, sk, ad, sizeof ad, blob.data, blob.len, &back) == KM_OK);
    CT_CHECK(back && km_ct_equal(km_secret_cdata(back), pt, sizeof pt));
    km_secret_free(back);
    km_secret *eph = NULL;
    CT_CHECK(km_ecies_keygen(ctx, &eph, pub) == KM_OK);
    km_secret_free(eph);

    /* Session keys from the session secret; session data blobs. */
    unsigned char secret[32], dk[32], ak[32];
    CT_CHECK(km_random_bytes(secret, 32) == KM_OK);
    CT_SECRET(secret, 32);
    CT_CHECK(km_session_derive_raw(ctx, secret, dk, ak) == KM_OK);
    km_session *s = NULL;
    CT_CHECK(km_session_derive(ctx, secret, &s) == KM_OK);
    km_ad a;
    km_uuid id;
    memset(&id, 9, sizeof id);
    CT_CHECK(km_ad_build(&a, "ct-purpose", &id, NULL, 0) == KM_OK);
    CT_CHECK(km_session_seal(s, a.bytes, a.len, pt, sizeof pt, &blob) == KM_OK);
    CT_PUBLIC(blob.data, blob.len);
    CT_CHECK(km_session_open(s, a.bytes, a.len, blob.data, blob.len, out, sizeof out, &n) == KM_OK);
    CT_CHECK(n == sizeof pt && km_ct_equal(out, pt, sizeof pt));
    CT_CHECK(km_session_open_secret(s, a.bytes, a.len, blob.data, blob.len, &back) == KM_OK);
    km_secret_free(back);
    km_session_free(s);
    km_buf_free(&blob);
    km_wipe(op, sizeof op);
    km_wipe(pt, sizeof pt);
    km_wipe(sk, sizeof sk);
    km_wipe(secret, sizeof secret);
    km_wipe(dk, sizeof dk);
    km_wipe(ak, sizeof ak);
    km_wipe(out, sizeof out);
}

static void ct_codecs(km_ctx *ctx) {
    /* The registration (session secret + secret key) and the single-signer
     * import, encoded by the client and decoded by the enclave. */
    km_registration reg, reg2;
    unsigned char buf[KM_REGISTRATION_LEN];
    memset(&reg, 0, sizeof reg);
    fresh_key(ctx, reg.seckey);
    CT_CHECK(km_random_bytes(reg.session_secret, 32) == KM_OK);
    CT_SECRET(reg.seckey, 32);
    CT_SECRET(reg.session_secret, 32);
    km_registration_encode(&reg, buf);
    CT_CHECK(km_registration_decode(&reg2, buf, sizeof buf) == KM_OK);
    CT_CHECK(km_ct_equal(reg2.seckey, reg.seckey, 32));

    km_key_import imp, imp2;
    unsigned char ib[KM_KEY_IMPORT_LEN], epub[33], esk[32];
    memset(&imp, 0, sizeof imp);
    fresh_key(ctx, imp.seckey);
    CT_SECRET(imp.seckey, 32);
    CT_CHECK(km_key_import_encode(&imp, ib) == KM_OK);
    CT_CHECK(km_key_import_decode(&imp2, ib, sizeof ib) == KM_OK);
    fresh_key(ctx, esk);
    CT_CHECK(km_ecies_pubkey(ctx, esk, epub) == KM_OK);
    km_uuid kid, uid;
    memset(&kid, 1, sizeof kid);
    memset(&uid, 2, sizeof uid);
    km_buf body;
    km_buf_init(&body);
    CT_CHECK(km_key_import_build(ctx, epub, &kid, &uid, &imp, &body) == KM_OK);
    km_buf_free(&body);
    km_wipe(&reg, sizeof reg);
    km_wipe(&reg2, sizeof reg2);
    km_wipe(&imp, sizeof imp);
    km_wipe(&imp2, sizeof imp2);
    km_wipe(buf, sizeof buf);
    km_wipe(ib, sizeof ib);
}

/* Negative control (ctest ct/ct_detects_leak): the hex encoder KeyMeld had
 * before this check found it, a table indexed by each secret nibble, plus a
 * branch on a secret byte. Under valgrind both must be reported. */
static int control_leak(void) {
    static const char digits[] = "0123456789abcdef";
    unsigned char k[32];
    char hex[65];
    if (km_random_bytes(k, sizeof k) != KM_OK) return 2;
    CT_SECRET(k, sizeof k);
    for (size_t i = 0; i < sizeof k; i++) {
        hex[2 * i] = digits[k[i] >> 4];
        hex[2 * i + 1] = digits[k[i] & 15];
    }
    hex[64] = '\0';
    int odd = 0;
    if (k[0] & 1) odd = 1;
    CT_PUBLIC(hex, sizeof hex);
    printf("ct_secrets: control ran (%d, %zu)\n", odd, strlen(hex));
    km_wipe(k, sizeof k);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--control-leak")) return control_leak();
    km_ctx *ctx = NULL;
    if (km_ctx_create(&ctx) != KM_OK) return 2;
    ct_single(ctx);
    ct_musig(ctx);
    ct_adaptor(ctx);
    ct_symmetric();
    ct_seal_ecies_session(ctx);
    ct_codecs(ctx);
    ct_enclave(ctx);
    km_ctx_destroy(ctx);
    if (failures) {
        fprintf(stderr, "ct_secrets: %d check(s) failed\n", failures);
        return 1;
    }
    printf("ct_secrets: all checks passed (%s valgrind)\n", RUNNING_ON_VALGRIND ? "under" : "NOT under");
    return 0;
}
