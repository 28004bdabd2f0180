/* bench/crypto.c — the crypto floor of KeyMeld.
 *
 * What a MuSig2 (BIP-327) signing session costs when nothing but libsecp256k1's
 * public API is called: no encoding, no encryption, no I/O, no KeyMeld code.
 * Whatever a real KeyMeld session costs beyond these figures is overhead of
 * our own (ECIES, AES-GCM, JSON, SQLite, vsock) and is reported against them.
 * The same rows are then measured through libkeymeld's km_musig_* wrappers
 * (include/keymeld/musig.h), which take and return wire-format bytes: the
 * difference is what the wrappers cost (parsing points, validation, locked
 * memory for secret nonces, the self-check of each partial signature).
 * Single-key operations and the OpenSSL primitives KeyMeld uses (through
 * libkeymeld's wrappers) are measured too, so that every per-message cost of
 * the protocol can be priced from these tables.
 *
 * Usage: bench_crypto [--quick] [--json FILE]
 *   --quick      tiny iteration counts: checks that everything runs (for CTest),
 *                the figures are not meaningful.
 *   --json FILE  also write the figures and the machine description to FILE.
 *
 * Method: see bench_util.h (calibrated batches, BENCH_RUNS interleaved runs,
 * the minimum is reported). Every timed call's result is checked, and after
 * every run the outputs it left are checked for correctness (the aggregate key
 * is the expected one, the signature verifies, ...), so the figures are those
 * of operations that really worked.
 */
#include <openssl/crypto.h>
#include <secp256k1.h>
#include <secp256k1_ecdh.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_musig.h>
#include <secp256k1_schnorrsig.h>
#include <stdint.h>

#include "bench_util.h"
#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/musig.h"
#include "keymeld/secret.h"

/* ---------------------------------------------------------------------------
 * State. Globals because the timed bodies reach it through a void pointer
 * anyway and a single atexit handler must be able to wipe every secret on
 * every path out (including a failed BENCH_CHECK).
 * ------------------------------------------------------------------------- */

#define MAX_N 32
static const size_t g_ns[] = {2, 3, 5, 10, 32};
#define N_NS (sizeof g_ns / sizeof g_ns[0])

/* One n-of-n MuSig2 setup with a complete, valid reference session, plus the
 * scratch each timed body writes into. */
typedef struct musig_fixture {
    size_t n;
    /* Secrets (wiped on exit and before the fixture is rebuilt). */
    unsigned char seckey[MAX_N][32];
    secp256k1_keypair keypair[MAX_N];
    secp256k1_musig_secnonce secnonce[MAX_N]; /* scratch for nonce_gen / session */
    /* Signer 0's secret nonce of the reference session. partial_sign zeroes
     * the secnonce it consumes, so the sign benchmark signs from a fresh copy
     * each iteration. That re-signs the SAME session with the same nonce,
     * producing the identical partial signature every time, which reveals
     * nothing; signing a different message with it would leak the key. */
    secp256k1_musig_secnonce secnonce0;
    unsigned char secrand[32];
    /* Keys. */
    secp256k1_pubkey pk[MAX_N];
    const secp256k1_pubkey *pk_unsorted[MAX_N]; /* order of generation: random */
    const secp256k1_pubkey *pk_work[MAX_N];
    secp256k1_xonly_pubkey agg_pk;            /* untweaked aggregate */
    secp256k1_musig_keyagg_cache cache_plain; /* untweaked cache */
    unsigned char tweak[32];                  /* BIP-341 key-path tweak of agg_pk */
    secp256k1_musig_keyagg_cache cache;       /* tweaked: used by every session */
    secp256k1_pubkey out_pk;                  /* tweaked output key */
    secp256k1_xonly_pubkey out_xonly;
    /* Reference session. */
    unsigned char msg[32];
    secp256k1_musig_pubnonce pubnonce[MAX_N];
    const secp256k1_musig_pubnonce *pubnonce_ptr[MAX_N];
    secp256k1_musig_aggnonce aggnonce;
    secp256k1_musig_session session;
    secp256k1_musig_partial_sig psig[MAX_N];
    const secp256k1_musig_partial_sig *psig_ptr[MAX_N];
    unsigned char sig[64];
    /* Outputs of the timed bodies, checked after each measurement. */
    secp256k1_xonly_pubkey o_agg_pk;
    secp256k1_musig_keyagg_cache o_cache;
    secp256k1_pubkey o_pk;
    secp256k1_musig_pubnonce o_pubnonce;
    secp256k1_musig_aggnonce o_aggnonce;
    secp256k1_musig_session o_session[MAX_N];
    secp256k1_musig_partial_sig o_psig[MAX_N];
    const secp256k1_musig_partial_sig *o_psig_ptr[MAX_N];
    secp256k1_musig_pubnonce o_pubnonces[MAX_N];
    const secp256k1_musig_pubnonce *o_pubnonce_ptr[MAX_N];
    unsigned char o_sig[64];
} musig_fixture;

/* One AEAD measurement: seal pt[0..len) or open what was sealed. */
typedef struct aead_case {
    size_t len;
    unsigned char nonce[KM_AEAD_NONCE_LEN];
    unsigned char ct[1024], tag[KM_AEAD_TAG_LEN], opened[1024];
} aead_case;

/* Single-key and symmetric operations. */
typedef struct single_fixture {
    /* Secrets. */
    unsigned char seckey[32];
    secp256k1_keypair keypair;
    unsigned char peer_seckey[32];
    unsigned char shared[32];
    unsigned char rnd[32];
    unsigned char aead_key[32];
    unsigned char ikm[32];
    unsigned char okm[32];
    /* Public. */
    secp256k1_pubkey pk, peer_pk, o_pk;
    secp256k1_xonly_pubkey xonly;
    unsigned char msg[32], aux[32];
    unsigned char schnorr_sig[64], o_schnorr_sig[64];
    secp256k1_ecdsa_signature ecdsa_sig, o_ecdsa_sig;
    /* AEAD under one key. Nonces are 4 random bytes || an 8-byte counter
     * shared by every case, so that no (key, nonce) pair is ever used twice,
     * not even in a benchmark. */
    uint64_t counter;
    unsigned char nonce_prefix[4];
    unsigned char pt[1024];
    aead_case seal32, seal1024, open32, open1024;
    unsigned char salt[32], hash[32];
} single_fixture;

/* The same n-of-n setup seen through libkeymeld's km_musig_* wrappers
 * (include/keymeld/musig.h): same keys, message and BIP-86 tweak as its raw
 * fixture, wire-format values (33-byte keys, 66-byte nonces, ...), secret
 * nonces in locked km_secret memory. */
typedef struct wrap_fixture {
    const musig_fixture *raw; /* keys, message, expected keys */
    unsigned char pk33[MAX_N * KM_MUSIG_PUBKEY_LEN];
    km_tweak tweak;
    km_musig_keyagg ka_plain; /* untweaked */
    km_musig_keyagg ka;       /* tweaked: used by every session */
    /* Reference session. secnonce0 is signer 0's secret nonce for it, copied
     * into secnonce[0] before each timed sign, for the reason given at
     * musig_fixture.secnonce0 (the same session is re-signed, nothing else). */
    km_secret *secnonce0;
    km_secret *secnonce[MAX_N];
    km_secret *s_secnonce[MAX_N]; /* the whole-session body's */
    unsigned char pubnonces[MAX_N * KM_MUSIG_PUBNONCE_LEN];
    unsigned char aggnonce[KM_MUSIG_AGGNONCE_LEN];
    km_musig_session session;
    unsigned char psigs[MAX_N * KM_MUSIG_PSIG_LEN];
    unsigned char sig[KM_MUSIG_SIG_LEN];
    /* Outputs of the timed bodies. */
    km_musig_keyagg o_ka;
    unsigned char o_pubnonce[KM_MUSIG_PUBNONCE_LEN];
    unsigned char o_pubnonces[MAX_N * KM_MUSIG_PUBNONCE_LEN];
    unsigned char o_aggnonce[KM_MUSIG_AGGNONCE_LEN];
    km_musig_session o_session[MAX_N];
    unsigned char o_psigs[MAX_N * KM_MUSIG_PSIG_LEN];
    unsigned char o_sig[KM_MUSIG_SIG_LEN];
} wrap_fixture;

static struct {
    secp256k1_context *ctx; /* for the raw floor */
    km_ctx *kctx;           /* for the km_musig_* wrappers */
    musig_fixture fx[N_NS]; /* one per n, all alive: runs are interleaved */
    wrap_fixture wx[N_NS];
    single_fixture sx;
} g;

/* Frees a wrapper fixture's secret nonces (km_secret_free wipes them). */
static void wrap_free(wrap_fixture *w) {
    km_secret_free(w->secnonce0);
    w->secnonce0 = NULL;
    for (size_t i = 0; i < MAX_N; i++) {
        km_secret_free(w->secnonce[i]);
        km_secret_free(w->s_secnonce[i]);
        w->secnonce[i] = w->s_secnonce[i] = NULL;
    }
}

/* Wipes every secret and frees the context. Registered with atexit, so it
 * runs on normal exit and after a failed BENCH_CHECK alike. */
static void cleanup(void) {
    for (size_t j = 0; j < N_NS; j++)
        wrap_free(&g.wx[j]);
    km_wipe(g.wx, sizeof g.wx);
    km_ctx_destroy(g.kctx);
    g.kctx = NULL;
    km_wipe(g.fx, sizeof g.fx);
    km_wipe(&g.sx, sizeof g.sx);
    if (g.ctx) secp256k1_context_destroy(g.ctx);
    g.ctx = NULL;
}

/* A random valid secret key (a random 32-byte string is out of range with
 * probability ~2^-128, but the check costs nothing). */
static void random_seckey(unsigned char key[32]) {
    do
        bench_random(key, 32);
    while (!secp256k1_ec_seckey_verify(g.ctx, key));
}

static int xonly_equal(const secp256k1_xonly_pubkey *a, const secp256k1_xonly_pubkey *b) {
    return secp256k1_xonly_pubkey_cmp(g.ctx, a, b) == 0;
}

static int pubkey_equal(const secp256k1_pubkey *a, const secp256k1_pubkey *b) {
    return secp256k1_ec_pubkey_cmp(g.ctx, a, b) == 0;
}

static int aggnonce_equal(const secp256k1_musig_aggnonce *a, const secp256k1_musig_aggnonce *b) {
    unsigned char sa[66], sb[66];
    BENCH_CHECK(secp256k1_musig_aggnonce_serialize(g.ctx, sa, a) == 1);
    BENCH_CHECK(secp256k1_musig_aggnonce_serialize(g.ctx, sb, b) == 1);
    return memcmp(sa, sb, sizeof sa) == 0;
}

/* ---------------------------------------------------------------------------
 * MuSig2 fixture: n keys, aggregate, BIP-341 tweak, a complete reference
 * session whose final signature verifies.
 * ------------------------------------------------------------------------- */

static void fixture_build(musig_fixture *f, size_t n) {
    km_wipe(f, sizeof *f);
    f->n = n;
    for (size_t i = 0; i < n; i++) {
        random_seckey(f->seckey[i]);
        BENCH_CHECK(secp256k1_keypair_create(g.ctx, &f->keypair[i], f->seckey[i]) == 1);
        BENCH_CHECK(secp256k1_keypair_pub(g.ctx, &f->pk[i], &f->keypair[i]) == 1);
        f->pk_unsorted[i] = &f->pk[i];
    }
    memcpy(f->pk_work, f->pk_unsorted, n * sizeof f->pk_work[0]);
    BENCH_CHECK(secp256k1_ec_pubkey_sort(g.ctx, f->pk_work, n) == 1);
    BENCH_CHECK(secp256k1_musig_pubkey_agg(g.ctx, &f->agg_pk, &f->cache_plain, f->pk_work, n) == 1);

    /* Key-path-only taproot tweak t = hash_TapTweak(x(P)), as a KeyMeld
     * keygen with a default taproot tweak would apply. */
    unsigned char agg_ser[32];
    BENCH_CHECK(secp256k1_xonly_pubkey_serialize(g.ctx, agg_ser, &f->agg_pk) == 1);
    static const unsigned char tag[] = "TapTweak";
    BENCH_CHECK(secp256k1_tagged_sha256(g.ctx, f->tweak, tag, sizeof tag - 1, agg_ser, sizeof agg_ser) == 1);
    f->cache = f->cache_plain;
    BENCH_CHECK(secp256k1_musig_pubkey_xonly_tweak_add(g.ctx, &f->out_pk, &f->cache, f->tweak) == 1);
    BENCH_CHECK(secp256k1_xonly_pubkey_from_pubkey(g.ctx, &f->out_xonly, NULL, &f->out_pk) == 1);

    /* Reference session. */
    bench_random(f->msg, sizeof f->msg);
    for (size_t i = 0; i < n; i++) {
        bench_random(f->secrand, sizeof f->secrand);
        BENCH_CHECK(secp256k1_musig_nonce_gen(g.ctx, &f->secnonce[i], &f->pubnonce[i], f->secrand,
                                              f->seckey[i], &f->pk[i], f->msg, &f->cache, NULL) == 1);
        f->pubnonce_ptr[i] = &f->pubnonce[i];
        f->psig_ptr[i] = &f->psig[i];
        f->o_psig_ptr[i] = &f->o_psig[i];
        f->o_pubnonce_ptr[i] = &f->o_pubnonces[i];
    }
    f->secnonce0 = f->secnonce[0];
    BENCH_CHECK(secp256k1_musig_nonce_agg(g.ctx, &f->aggnonce, f->pubnonce_ptr, n) == 1);
    BENCH_CHECK(secp256k1_musig_nonce_process(g.ctx, &f->session, &f->aggnonce, f->msg, &f->cache) == 1);
    for (size_t i = 0; i < n; i++) {
        BENCH_CHECK(secp256k1_musig_partial_sign(g.ctx, &f->psig[i], &f->secnonce[i], &f->keypair[i],
                                                 &f->cache, &f->session) == 1);
        BENCH_CHECK(secp256k1_musig_partial_sig_verify(g.ctx, &f->psig[i], &f->pubnonce[i], &f->pk[i],
                                                       &f->cache, &f->session) == 1);
    }
    BENCH_CHECK(secp256k1_musig_partial_sig_agg(g.ctx, f->sig, &f->session, f->psig_ptr, n) == 1);
    BENCH_CHECK(secp256k1_schnorrsig_verify(g.ctx, f->sig, f->msg, sizeof f->msg, &f->out_xonly) == 1);
    /* The attacker's path, once: a wrong partial signature must be refused,
     * otherwise the verify figures below would time a check that checks nothing. */
    if (n > 1)
        BENCH_CHECK(secp256k1_musig_partial_sig_verify(g.ctx, &f->psig[1], &f->pubnonce[0], &f->pk[0],
                                                       &f->cache, &f->session) == 0);
}

/* ---------------------------------------------------------------------------
 * MuSig2 timed bodies. Each performs one operation iters times and checks
 * every result; the matching c_* check runs after every batch on the outputs.
 * ------------------------------------------------------------------------- */

/* Key aggregation as a coordinator does it: sort the received keys (from
 * their original, unsorted order each time, so that the sort does real work),
 * then aggregate. */
static void b_keyagg(void *arg, size_t iters) {
    musig_fixture *f = arg;
    for (size_t it = 0; it < iters; it++) {
        memcpy(f->pk_work, f->pk_unsorted, f->n * sizeof f->pk_work[0]);
        BENCH_CHECK(secp256k1_ec_pubkey_sort(g.ctx, f->pk_work, f->n) == 1);
        BENCH_CHECK(secp256k1_musig_pubkey_agg(g.ctx, &f->o_agg_pk, &f->o_cache, f->pk_work, f->n) == 1);
    }
}
static void c_keyagg(void *arg) {
    musig_fixture *f = arg;
    BENCH_CHECK(xonly_equal(&f->o_agg_pk, &f->agg_pk));
}

/* The tweak mutates the cache, so each iteration starts from the untweaked
 * one (a 197-byte copy, negligible next to the point arithmetic). */
static void b_tweak(void *arg, size_t iters) {
    musig_fixture *f = arg;
    for (size_t it = 0; it < iters; it++) {
        f->o_cache = f->cache_plain;
        BENCH_CHECK(secp256k1_musig_pubkey_xonly_tweak_add(g.ctx, &f->o_pk, &f->o_cache, f->tweak) == 1);
    }
}
static void c_tweak(void *arg) {
    musig_fixture *f = arg;
    BENCH_CHECK(pubkey_equal(&f->o_pk, &f->out_pk));
}

/* Nonce generation as an enclave does it: fresh session randomness from the
 * kernel for every nonce (the getrandom syscall is part of the figure). */
static void b_nonce_gen(void *arg, size_t iters) {
    musig_fixture *f = arg;
    for (size_t it = 0; it < iters; it++) {
        bench_random(f->secrand, sizeof f->secrand);
        BENCH_CHECK(secp256k1_musig_nonce_gen(g.ctx, &f->secnonce[0], &f->o_pubnonce, f->secrand,
                                              f->seckey[0], &f->pk[0], f->msg, &f->cache, NULL) == 1);
    }
}
static void c_nonce_gen(void *arg) {
    musig_fixture *f = arg;
    /* The fresh nonce must differ from the reference one (fresh randomness). */
    unsigned char a[66], b[66];
    BENCH_CHECK(secp256k1_musig_pubnonce_serialize(g.ctx, a, &f->o_pubnonce) == 1);
    BENCH_CHECK(secp256k1_musig_pubnonce_serialize(g.ctx, b, &f->pubnonce[0]) == 1);
    BENCH_CHECK(memcmp(a, b, sizeof a) != 0);
    km_wipe(&f->secnonce[0], sizeof f->secnonce[0]);
}

static void b_nonce_agg(void *arg, size_t iters) {
    musig_fixture *f = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(secp256k1_musig_nonce_agg(g.ctx, &f->o_aggnonce, f->pubnonce_ptr, f->n) == 1);
}
static void c_nonce_agg(void *arg) {
    musig_fixture *f = arg;
    BENCH_CHECK(aggnonce_equal(&f->o_aggnonce, &f->aggnonce));
}

static void b_nonce_process(void *arg, size_t iters) {
    musig_fixture *f = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(secp256k1_musig_nonce_process(g.ctx, &f->o_session[0], &f->aggnonce, f->msg, &f->cache) ==
                    1);
}
static void c_nonce_process(void *arg) {
    musig_fixture *f = arg;
    /* The session is opaque; it is right if a correct partial signature
     * verifies against it. */
    BENCH_CHECK(secp256k1_musig_partial_sig_verify(g.ctx, &f->psig[0], &f->pubnonce[0], &f->pk[0], &f->cache,
                                                   &f->o_session[0]) == 1);
}

/* The 132-byte secnonce copy (see secnonce0) is part of this figure; it costs
 * a few nanoseconds. */
static void b_sign(void *arg, size_t iters) {
    musig_fixture *f = arg;
    for (size_t it = 0; it < iters; it++) {
        f->secnonce[0] = f->secnonce0;
        BENCH_CHECK(secp256k1_musig_partial_sign(g.ctx, &f->o_psig[0], &f->secnonce[0], &f->keypair[0],
                                                 &f->cache, &f->session) == 1);
    }
}
static void c_sign(void *arg) {
    musig_fixture *f = arg;
    BENCH_CHECK(secp256k1_musig_partial_sig_verify(g.ctx, &f->o_psig[0], &f->pubnonce[0], &f->pk[0],
                                                   &f->cache, &f->session) == 1);
}

static void b_psig_verify(void *arg, size_t iters) {
    musig_fixture *f = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(secp256k1_musig_partial_sig_verify(g.ctx, &f->psig[0], &f->pubnonce[0], &f->pk[0],
                                                       &f->cache, &f->session) == 1);
}

static void b_psig_agg(void *arg, size_t iters) {
    musig_fixture *f = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(secp256k1_musig_partial_sig_agg(g.ctx, f->o_sig, &f->session, f->psig_ptr, f->n) == 1);
}
static void c_psig_agg(void *arg) {
    musig_fixture *f = arg;
    BENCH_CHECK(secp256k1_schnorrsig_verify(g.ctx, f->o_sig, f->msg, sizeof f->msg, &f->out_xonly) == 1);
}

static void b_final_verify(void *arg, size_t iters) {
    musig_fixture *f = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(secp256k1_schnorrsig_verify(g.ctx, f->sig, f->msg, sizeof f->msg, &f->out_xonly) == 1);
}

/* A whole session with all n signers in this process: what n enclaves and a
 * coordinator compute together, minus transport. Every signer processes the
 * aggregate nonce itself (as each enclave must), every partial signature is
 * verified (as KeyMeld does to blame a faulty signer), and the final
 * signature is verified against the tweaked key before it is accepted. */
static void b_session(void *arg, size_t iters) {
    musig_fixture *f = arg;
    const size_t n = f->n;
    for (size_t it = 0; it < iters; it++) {
        for (size_t i = 0; i < n; i++) {
            bench_random(f->secrand, sizeof f->secrand);
            BENCH_CHECK(secp256k1_musig_nonce_gen(g.ctx, &f->secnonce[i], &f->o_pubnonces[i], f->secrand,
                                                  f->seckey[i], &f->pk[i], f->msg, &f->cache, NULL) == 1);
        }
        BENCH_CHECK(secp256k1_musig_nonce_agg(g.ctx, &f->o_aggnonce, f->o_pubnonce_ptr, n) == 1);
        for (size_t i = 0; i < n; i++) {
            BENCH_CHECK(secp256k1_musig_nonce_process(g.ctx, &f->o_session[i], &f->o_aggnonce, f->msg,
                                                      &f->cache) == 1);
            BENCH_CHECK(secp256k1_musig_partial_sign(g.ctx, &f->o_psig[i], &f->secnonce[i], &f->keypair[i],
                                                     &f->cache, &f->o_session[i]) == 1);
        }
        for (size_t i = 0; i < n; i++)
            BENCH_CHECK(secp256k1_musig_partial_sig_verify(g.ctx, &f->o_psig[i], &f->o_pubnonces[i],
                                                           &f->pk[i], &f->cache, &f->o_session[0]) == 1);
        BENCH_CHECK(secp256k1_musig_partial_sig_agg(g.ctx, f->o_sig, &f->o_session[0], f->o_psig_ptr, n) ==
                    1);
        BENCH_CHECK(secp256k1_schnorrsig_verify(g.ctx, f->o_sig, f->msg, sizeof f->msg, &f->out_xonly) == 1);
    }
}

/* Rows of the MuSig2 table. check may be NULL when the timed body's own
 * checks (a verification returning 1) already prove correctness. */
typedef struct musig_op {
    const char *key;   /* JSON name */
    const char *label; /* table row */
    bench_fn fn;
    bench_check_fn check;
} musig_op;

enum {
    OP_KEYAGG,
    OP_TWEAK,
    OP_NONCE_GEN,
    OP_NONCE_AGG,
    OP_NONCE_PROCESS,
    OP_SIGN,
    OP_PSIG_VERIFY,
    OP_PSIG_AGG,
    OP_FINAL_VERIFY,
    OP_SESSION,
    N_MUSIG_OPS
};

static const musig_op g_musig_ops[N_MUSIG_OPS] = {
    [OP_KEYAGG] = {"pubkey_sort_agg", "ec_pubkey_sort + musig_pubkey_agg", b_keyagg, c_keyagg},
    [OP_TWEAK] = {"pubkey_xonly_tweak_add", "musig_pubkey_xonly_tweak_add", b_tweak, c_tweak},
    [OP_NONCE_GEN] = {"nonce_gen", "musig_nonce_gen (+ getrandom secrand)", b_nonce_gen, c_nonce_gen},
    [OP_NONCE_AGG] = {"nonce_agg", "musig_nonce_agg", b_nonce_agg, c_nonce_agg},
    [OP_NONCE_PROCESS] = {"nonce_process", "musig_nonce_process", b_nonce_process, c_nonce_process},
    [OP_SIGN] = {"partial_sign", "musig_partial_sign", b_sign, c_sign},
    [OP_PSIG_VERIFY] = {"partial_sig_verify", "musig_partial_sig_verify (one)", b_psig_verify, NULL},
    [OP_PSIG_AGG] = {"partial_sig_agg", "musig_partial_sig_agg", b_psig_agg, c_psig_agg},
    [OP_FINAL_VERIFY] = {"final_verify", "schnorrsig_verify (final)", b_final_verify, NULL},
    [OP_SESSION] = {"session", "whole session, n signers in one process", b_session, NULL},
};

/* ---------------------------------------------------------------------------
 * The same operations through libkeymeld's km_musig_* wrappers. Each row
 * does what the raw row of the same name does, plus whatever the wrapper adds
 * (parsing and serialising wire values, input validation, locked memory for
 * secret nonces, BIP-327's self-verification of a fresh partial signature).
 * ------------------------------------------------------------------------- */

static void wrap_build(wrap_fixture *w, const musig_fixture *f) {
    wrap_free(w);
    km_wipe(w, sizeof *w);
    w->raw = f;
    const size_t n = f->n;
    for (size_t i = 0; i < n; i++) {
        size_t len = KM_MUSIG_PUBKEY_LEN;
        BENCH_CHECK(secp256k1_ec_pubkey_serialize(g.ctx, w->pk33 + i * KM_MUSIG_PUBKEY_LEN, &len, &f->pk[i],
                                                  SECP256K1_EC_COMPRESSED) == 1);
    }
    BENCH_CHECK(km_musig_key_agg(g.kctx, &w->ka_plain, w->pk33, n, NULL) == KM_OK);
    /* BIP-86 is exactly the raw fixture's tweak, TapTweak(x(P)): both
     * benchmarks must sign under the same output key. */
    km_tweak_bip86(&w->tweak);
    w->ka = w->ka_plain;
    BENCH_CHECK(km_musig_keyagg_tweak(g.kctx, &w->ka, &w->tweak) == KM_OK);
    unsigned char expect[32];
    BENCH_CHECK(secp256k1_xonly_pubkey_serialize(g.ctx, expect, &f->out_xonly) == 1);
    BENCH_CHECK(memcmp(expect, w->ka.output_xonly, sizeof expect) == 0);

    for (size_t i = 0; i < n; i++)
        BENCH_CHECK(km_musig_nonce_gen(g.kctx, &w->secnonce[i], w->pubnonces + i * KM_MUSIG_PUBNONCE_LEN,
                                       f->seckey[i], w->pk33 + i * KM_MUSIG_PUBKEY_LEN, f->msg, &w->ka,
                                       NULL) == KM_OK);
    BENCH_CHECK(km_secret_from(g.kctx, km_secret_cdata(w->secnonce[0]), km_secret_len(w->secnonce[0]),
                               &w->secnonce0) == KM_OK);
    BENCH_CHECK(km_musig_nonce_agg(g.kctx, w->aggnonce, w->pubnonces, n, NULL) == KM_OK);
    BENCH_CHECK(km_musig_session_init(g.kctx, &w->session, w->aggnonce, f->msg, &w->ka) == KM_OK);
    for (size_t i = 0; i < n; i++) {
        BENCH_CHECK(km_musig_partial_sign(g.kctx, w->psigs + i * KM_MUSIG_PSIG_LEN, w->secnonce[i],
                                          f->seckey[i], &w->session) == KM_OK);
        BENCH_CHECK(km_musig_partial_verify(g.kctx, &w->session, w->psigs + i * KM_MUSIG_PSIG_LEN,
                                            w->pubnonces + i * KM_MUSIG_PUBNONCE_LEN,
                                            w->pk33 + i * KM_MUSIG_PUBKEY_LEN) == KM_OK);
    }
    /* Signer 0's working nonce stays allocated (consumed) for the sign bench. */
    for (size_t i = 1; i < n; i++) {
        km_secret_free(w->secnonce[i]);
        w->secnonce[i] = NULL;
    }
    BENCH_CHECK(km_musig_partial_agg(g.kctx, w->sig, &w->session, w->psigs, n, NULL) == KM_OK);
    BENCH_CHECK(km_musig_verify_final(g.kctx, w->sig, f->msg, &w->ka) == KM_OK);
    if (n > 1)
        BENCH_CHECK(km_musig_partial_verify(g.kctx, &w->session, w->psigs + KM_MUSIG_PSIG_LEN, w->pubnonces,
                                            w->pk33) == KM_ERR_VERIFY);
}

static void wb_keyagg(void *arg, size_t iters) {
    wrap_fixture *w = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(km_musig_key_agg(g.kctx, &w->o_ka, w->pk33, w->raw->n, NULL) == KM_OK);
}
static void wc_keyagg(void *arg) {
    wrap_fixture *w = arg;
    BENCH_CHECK(memcmp(w->o_ka.agg_xonly, w->ka_plain.agg_xonly, sizeof w->o_ka.agg_xonly) == 0);
}

static void wb_tweak(void *arg, size_t iters) {
    wrap_fixture *w = arg;
    for (size_t it = 0; it < iters; it++) {
        w->o_ka = w->ka_plain;
        BENCH_CHECK(km_musig_keyagg_tweak(g.kctx, &w->o_ka, &w->tweak) == KM_OK);
    }
}
static void wc_tweak(void *arg) {
    wrap_fixture *w = arg;
    BENCH_CHECK(memcmp(w->o_ka.output_xonly, w->ka.output_xonly, sizeof w->ka.output_xonly) == 0);
}

/* Includes allocating and freeing the km_secret that holds the nonce, as
 * every real nonce pays it. */
static void wb_nonce_gen(void *arg, size_t iters) {
    wrap_fixture *w = arg;
    for (size_t it = 0; it < iters; it++) {
        km_secret *sn = NULL;
        BENCH_CHECK(km_musig_nonce_gen(g.kctx, &sn, w->o_pubnonce, w->raw->seckey[0], w->pk33, w->raw->msg,
                                       &w->ka, NULL) == KM_OK);
        km_secret_free(sn);
    }
}
static void wc_nonce_gen(void *arg) {
    wrap_fixture *w = arg;
    BENCH_CHECK(memcmp(w->o_pubnonce, w->pubnonces, KM_MUSIG_PUBNONCE_LEN) != 0);
}

static void wb_nonce_agg(void *arg, size_t iters) {
    wrap_fixture *w = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(km_musig_nonce_agg(g.kctx, w->o_aggnonce, w->pubnonces, w->raw->n, NULL) == KM_OK);
}
static void wc_nonce_agg(void *arg) {
    wrap_fixture *w = arg;
    BENCH_CHECK(memcmp(w->o_aggnonce, w->aggnonce, sizeof w->aggnonce) == 0);
}

static void wb_session_init(void *arg, size_t iters) {
    wrap_fixture *w = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(km_musig_session_init(g.kctx, &w->o_session[0], w->aggnonce, w->raw->msg, &w->ka) ==
                    KM_OK);
}
static void wc_session_init(void *arg) {
    wrap_fixture *w = arg;
    BENCH_CHECK(km_musig_partial_verify(g.kctx, &w->o_session[0], w->psigs, w->pubnonces, w->pk33) == KM_OK);
}

static void wb_sign(void *arg, size_t iters) {
    wrap_fixture *w = arg;
    const size_t len = km_secret_len(w->secnonce0);
    for (size_t it = 0; it < iters; it++) {
        memcpy(km_secret_data(w->secnonce[0]), km_secret_cdata(w->secnonce0), len);
        BENCH_CHECK(km_musig_partial_sign(g.kctx, w->o_psigs, w->secnonce[0], w->raw->seckey[0],
                                          &w->session) == KM_OK);
    }
}
static void wc_sign(void *arg) {
    wrap_fixture *w = arg;
    BENCH_CHECK(km_musig_partial_verify(g.kctx, &w->session, w->o_psigs, w->pubnonces, w->pk33) == KM_OK);
    /* The consumed nonce must refuse a second signature. */
    BENCH_CHECK(km_musig_partial_sign(g.kctx, w->o_psigs, w->secnonce[0], w->raw->seckey[0], &w->session) ==
                KM_ERR_NONCE_REUSE);
}

static void wb_psig_verify(void *arg, size_t iters) {
    wrap_fixture *w = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(km_musig_partial_verify(g.kctx, &w->session, w->psigs, w->pubnonces, w->pk33) == KM_OK);
}

static void wb_psig_agg(void *arg, size_t iters) {
    wrap_fixture *w = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(km_musig_partial_agg(g.kctx, w->o_sig, &w->session, w->psigs, w->raw->n, NULL) == KM_OK);
}
static void wc_psig_agg(void *arg) {
    wrap_fixture *w = arg;
    BENCH_CHECK(km_musig_verify_final(g.kctx, w->o_sig, w->raw->msg, &w->ka) == KM_OK);
}

static void wb_final_verify(void *arg, size_t iters) {
    wrap_fixture *w = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(km_musig_verify_final(g.kctx, w->sig, w->raw->msg, &w->ka) == KM_OK);
}

/* The whole session of b_session, through the wrappers. */
static void wb_session(void *arg, size_t iters) {
    wrap_fixture *w = arg;
    const musig_fixture *f = w->raw;
    const size_t n = f->n;
    for (size_t it = 0; it < iters; it++) {
        for (size_t i = 0; i < n; i++)
            BENCH_CHECK(km_musig_nonce_gen(g.kctx, &w->s_secnonce[i],
                                           w->o_pubnonces + i * KM_MUSIG_PUBNONCE_LEN, f->seckey[i],
                                           w->pk33 + i * KM_MUSIG_PUBKEY_LEN, f->msg, &w->ka, NULL) == KM_OK);
        BENCH_CHECK(km_musig_nonce_agg(g.kctx, w->o_aggnonce, w->o_pubnonces, n, NULL) == KM_OK);
        for (size_t i = 0; i < n; i++) {
            BENCH_CHECK(km_musig_session_init(g.kctx, &w->o_session[i], w->o_aggnonce, f->msg, &w->ka) ==
                        KM_OK);
            BENCH_CHECK(km_musig_partial_sign(g.kctx, w->o_psigs + i * KM_MUSIG_PSIG_LEN, w->s_secnonce[i],
                                              f->seckey[i], &w->o_session[i]) == KM_OK);
            /* Freed as soon as consumed, as an enclave does. */
            km_secret_free(w->s_secnonce[i]);
            w->s_secnonce[i] = NULL;
        }
        for (size_t i = 0; i < n; i++)
            BENCH_CHECK(km_musig_partial_verify(g.kctx, &w->o_session[0], w->o_psigs + i * KM_MUSIG_PSIG_LEN,
                                                w->o_pubnonces + i * KM_MUSIG_PUBNONCE_LEN,
                                                w->pk33 + i * KM_MUSIG_PUBKEY_LEN) == KM_OK);
        BENCH_CHECK(km_musig_partial_agg(g.kctx, w->o_sig, &w->o_session[0], w->o_psigs, n, NULL) == KM_OK);
        BENCH_CHECK(km_musig_verify_final(g.kctx, w->o_sig, f->msg, &w->ka) == KM_OK);
    }
}

static const musig_op g_wrap_ops[N_MUSIG_OPS] = {
    [OP_KEYAGG] = {"km_musig_key_agg", "km_musig_key_agg (33-byte keys)", wb_keyagg, wc_keyagg},
    [OP_TWEAK] = {"km_musig_keyagg_tweak", "km_musig_keyagg_tweak (bip86)", wb_tweak, wc_tweak},
    [OP_NONCE_GEN] = {"km_musig_nonce_gen", "km_musig_nonce_gen (+ km_secret)", wb_nonce_gen, wc_nonce_gen},
    [OP_NONCE_AGG] = {"km_musig_nonce_agg", "km_musig_nonce_agg", wb_nonce_agg, wc_nonce_agg},
    [OP_NONCE_PROCESS] = {"km_musig_session_init", "km_musig_session_init", wb_session_init, wc_session_init},
    [OP_SIGN] = {"km_musig_partial_sign", "km_musig_partial_sign (self-verifies)", wb_sign, wc_sign},
    [OP_PSIG_VERIFY] = {"km_musig_partial_verify", "km_musig_partial_verify (one)", wb_psig_verify, NULL},
    [OP_PSIG_AGG] = {"km_musig_partial_agg", "km_musig_partial_agg", wb_psig_agg, wc_psig_agg},
    [OP_FINAL_VERIFY] = {"km_musig_verify_final", "km_musig_verify_final", wb_final_verify, NULL},
    [OP_SESSION] = {"km_session", "whole session via km_musig_*", wb_session, NULL},
};

/* ---------------------------------------------------------------------------
 * Single-key operations (libsecp256k1) and symmetric ones (OpenSSL through
 * libkeymeld).
 * ------------------------------------------------------------------------- */

static void next_aead_nonce(unsigned char nonce[KM_AEAD_NONCE_LEN]) {
    single_fixture *s = &g.sx;
    s->counter++;
    memcpy(nonce, s->nonce_prefix, sizeof s->nonce_prefix);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] = (unsigned char)(s->counter >> (8 * i));
}

static void aead_case_init(aead_case *c, size_t len) {
    c->len = len;
    next_aead_nonce(c->nonce);
    BENCH_CHECK(km_aead_seal(c->ct, c->tag, g.sx.aead_key, c->nonce, NULL, 0, g.sx.pt, len) == KM_OK);
}

static void single_build(void) {
    single_fixture *s = &g.sx;
    km_wipe(s, sizeof *s);
    random_seckey(s->seckey);
    random_seckey(s->peer_seckey);
    BENCH_CHECK(secp256k1_keypair_create(g.ctx, &s->keypair, s->seckey) == 1);
    BENCH_CHECK(secp256k1_ec_pubkey_create(g.ctx, &s->pk, s->seckey) == 1);
    BENCH_CHECK(secp256k1_ec_pubkey_create(g.ctx, &s->peer_pk, s->peer_seckey) == 1);
    BENCH_CHECK(secp256k1_keypair_xonly_pub(g.ctx, &s->xonly, NULL, &s->keypair) == 1);
    bench_random(s->msg, sizeof s->msg);
    bench_random(s->aux, sizeof s->aux);
    BENCH_CHECK(secp256k1_schnorrsig_sign32(g.ctx, s->schnorr_sig, s->msg, &s->keypair, s->aux) == 1);
    BENCH_CHECK(secp256k1_ecdsa_sign(g.ctx, &s->ecdsa_sig, s->msg, s->seckey, NULL, NULL) == 1);
    bench_random(s->aead_key, sizeof s->aead_key);
    bench_random(s->nonce_prefix, sizeof s->nonce_prefix);
    bench_random(s->pt, sizeof s->pt);
    aead_case_init(&s->seal32, 32);
    aead_case_init(&s->seal1024, 1024);
    aead_case_init(&s->open32, 32);
    aead_case_init(&s->open1024, 1024);
    bench_random(s->ikm, sizeof s->ikm);
    bench_random(s->salt, sizeof s->salt);
}

static void b_getrandom(void *arg, size_t iters) {
    single_fixture *s = arg;
    for (size_t it = 0; it < iters; it++)
        bench_random(s->rnd, sizeof s->rnd);
}

static void b_pubkey_create(void *arg, size_t iters) {
    single_fixture *s = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(secp256k1_ec_pubkey_create(g.ctx, &s->o_pk, s->seckey) == 1);
}
static void c_pubkey_create(void *arg) {
    single_fixture *s = arg;
    BENCH_CHECK(pubkey_equal(&s->o_pk, &s->pk));
}

static void b_schnorr_sign(void *arg, size_t iters) {
    single_fixture *s = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(secp256k1_schnorrsig_sign32(g.ctx, s->o_schnorr_sig, s->msg, &s->keypair, s->aux) == 1);
}
static void c_schnorr_sign(void *arg) {
    single_fixture *s = arg;
    BENCH_CHECK(secp256k1_schnorrsig_verify(g.ctx, s->o_schnorr_sig, s->msg, sizeof s->msg, &s->xonly) == 1);
}

static void b_schnorr_verify(void *arg, size_t iters) {
    single_fixture *s = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(secp256k1_schnorrsig_verify(g.ctx, s->schnorr_sig, s->msg, sizeof s->msg, &s->xonly) ==
                    1);
}

static void b_ecdsa_sign(void *arg, size_t iters) {
    single_fixture *s = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(secp256k1_ecdsa_sign(g.ctx, &s->o_ecdsa_sig, s->msg, s->seckey, NULL, NULL) == 1);
}
static void c_ecdsa_sign(void *arg) {
    single_fixture *s = arg;
    BENCH_CHECK(secp256k1_ecdsa_verify(g.ctx, &s->o_ecdsa_sig, s->msg, &s->pk) == 1);
}

static void b_ecdsa_verify(void *arg, size_t iters) {
    single_fixture *s = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(secp256k1_ecdsa_verify(g.ctx, &s->ecdsa_sig, s->msg, &s->pk) == 1);
}

static void b_ecdh(void *arg, size_t iters) {
    single_fixture *s = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(secp256k1_ecdh(g.ctx, s->shared, &s->peer_pk, s->seckey, NULL, NULL) == 1);
}
static void c_ecdh(void *arg) {
    single_fixture *s = arg;
    /* Diffie-Hellman agrees from the other side. */
    unsigned char other[32];
    BENCH_CHECK(secp256k1_ecdh(g.ctx, other, &s->pk, s->peer_seckey, NULL, NULL) == 1);
    int same = km_ct_equal(other, s->shared, sizeof other);
    km_wipe(other, sizeof other);
    BENCH_CHECK(same);
}

/* arg: an aead_case; key and plaintext are the single fixture's. */
static void b_aead_seal(void *arg, size_t iters) {
    aead_case *c = arg;
    for (size_t it = 0; it < iters; it++) {
        next_aead_nonce(c->nonce);
        BENCH_CHECK(km_aead_seal(c->ct, c->tag, g.sx.aead_key, c->nonce, NULL, 0, g.sx.pt, c->len) == KM_OK);
    }
}
static void c_aead_seal(void *arg) {
    aead_case *c = arg;
    BENCH_CHECK(km_aead_open(c->opened, g.sx.aead_key, c->nonce, NULL, 0, c->ct, c->len, c->tag) == KM_OK);
    BENCH_CHECK(memcmp(c->opened, g.sx.pt, c->len) == 0);
}

static void b_aead_open(void *arg, size_t iters) {
    aead_case *c = arg;
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(km_aead_open(c->opened, g.sx.aead_key, c->nonce, NULL, 0, c->ct, c->len, c->tag) ==
                    KM_OK);
}
static void c_aead_open(void *arg) {
    aead_case *c = arg;
    BENCH_CHECK(memcmp(c->opened, g.sx.pt, c->len) == 0);
    /* The attacker's path: a flipped ciphertext bit must not authenticate. */
    c->ct[0] ^= 1;
    BENCH_CHECK(km_aead_open(c->opened, g.sx.aead_key, c->nonce, NULL, 0, c->ct, c->len, c->tag) ==
                KM_ERR_DECRYPT);
    c->ct[0] ^= 1;
}

static void b_hkdf(void *arg, size_t iters) {
    single_fixture *s = arg;
    static const unsigned char info[] = "keymeld bench hkdf";
    for (size_t it = 0; it < iters; it++)
        BENCH_CHECK(km_hkdf_sha256(s->okm, sizeof s->okm, s->ikm, sizeof s->ikm, s->salt, sizeof s->salt,
                                   info, sizeof info - 1) == KM_OK);
}

static void b_sha256(void *arg, size_t iters) {
    single_fixture *s = arg;
    for (size_t it = 0; it < iters; it++)
        km_sha256(s->hash, s->pt, 64);
}

typedef struct single_op {
    const char *key;
    const char *label;
    bench_fn fn;
    bench_check_fn check;
    void *arg; /* NULL: the single fixture */
} single_op;

static const single_op g_single_ops[] = {
    {"getrandom_32", "getrandom(2), 32 bytes", b_getrandom, NULL, NULL},
    {"ec_pubkey_create", "ec_pubkey_create", b_pubkey_create, c_pubkey_create, NULL},
    {"schnorrsig_sign32", "schnorrsig_sign32", b_schnorr_sign, c_schnorr_sign, NULL},
    {"schnorrsig_verify", "schnorrsig_verify", b_schnorr_verify, NULL, NULL},
    {"ecdsa_sign", "ecdsa_sign", b_ecdsa_sign, c_ecdsa_sign, NULL},
    {"ecdsa_verify", "ecdsa_verify", b_ecdsa_verify, NULL, NULL},
    {"ecdh", "ecdh (SHA-256 of the shared point)", b_ecdh, c_ecdh, NULL},
    {"aead_seal_32", "km_aead_seal, 32 bytes (AES-256-GCM)", b_aead_seal, c_aead_seal, &g.sx.seal32},
    {"aead_open_32", "km_aead_open, 32 bytes", b_aead_open, c_aead_open, &g.sx.open32},
    {"aead_seal_1024", "km_aead_seal, 1024 bytes", b_aead_seal, c_aead_seal, &g.sx.seal1024},
    {"aead_open_1024", "km_aead_open, 1024 bytes", b_aead_open, c_aead_open, &g.sx.open1024},
    {"hkdf_sha256_32", "km_hkdf_sha256, 32-byte output", b_hkdf, NULL, NULL},
    {"sha256_64", "km_sha256, 64 bytes", b_sha256, NULL, NULL},
};
#define N_SINGLE_OPS (sizeof g_single_ops / sizeof g_single_ops[0])
/* Rows from this index on are OpenSSL through libkeymeld (printed apart). */
#define FIRST_OPENSSL_OP 7

/* ---------------------------------------------------------------------------
 * Results and output.
 * ------------------------------------------------------------------------- */

static bench_result g_musig_res[N_MUSIG_OPS][N_NS];
static bench_result g_wrap_res[N_MUSIG_OPS][N_NS];
static bench_result g_single_res[N_SINGLE_OPS];

static size_t n_index(size_t n) {
    for (size_t j = 0; j < N_NS; j++)
        if (g_ns[j] == n) return j;
    bench_die(__FILE__, __LINE__, "n not measured");
}

/* Per batch item at one enclave (n = 3, verifying every partial): the crypto
 * an enclave performs for one message of a batch, assuming it checks every
 * co-signer's partial signature and the final signature. */
static double batch_item_us(void) {
    size_t j = n_index(3);
    return g_musig_res[OP_NONCE_GEN][j].us + g_musig_res[OP_NONCE_PROCESS][j].us +
           g_musig_res[OP_SIGN][j].us + 3.0 * g_musig_res[OP_PSIG_VERIFY][j].us +
           g_musig_res[OP_FINAL_VERIFY][j].us;
}

static int build_sanitized(void) {
#if defined(__SANITIZE_ADDRESS__)
    return 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return 1;
#else
    return 0;
#endif
#else
    return 0;
#endif
}

static int build_optimized(void) {
#ifdef __OPTIMIZE__
    return 1;
#else
    return 0;
#endif
}

#define LABEL_W 42

/* Wrapper whole session over raw whole session, minus one, in percent. */
static double session_overhead_pct(size_t j) {
    return (g_wrap_res[OP_SESSION][j].us / g_musig_res[OP_SESSION][j].us - 1.0) * 100.0;
}

static void print_musig_table(const char *title, const musig_op *ops, bench_result res[][N_NS]) {
    char buf[32];
    printf("\n%s\n%-*s", title, LABEL_W, "operation");
    for (size_t j = 0; j < N_NS; j++) {
        snprintf(buf, sizeof buf, "n=%zu", g_ns[j]);
        printf(" %11s", buf);
    }
    printf("\n");
    for (size_t op = 0; op < N_MUSIG_OPS; op++) {
        printf("%-*s", LABEL_W, ops[op].label);
        for (size_t j = 0; j < N_NS; j++)
            printf(" %11s", bench_fmt_us(buf, sizeof buf, res[op][j].us));
        printf("\n");
    }
}

static void print_tables(const bench_machine *m, int quick) {
    char buf[32];
    printf("KeyMeld crypto floor: microseconds per operation, min of %d runs\n", BENCH_RUNS);
    printf("cpu: %s (%ld online)\nkernel: %s\nopenssl: %s\nload average (1 min) at start: %s, at end: %s\n",
           m->cpu, m->cores, m->kernel, OpenSSL_version(OPENSSL_VERSION), m->load_start, m->load_end);
    printf("CPU share during the timed runs: %.0f%%\n", bench_cpu_share());
    if (bench_cpu_share() < 95.0)
        printf("NOTE: the machine was busy (CPU share below 95%%): figures are inflated; rerun when idle\n");
    if (quick) printf("NOTE: --quick run, iteration counts are tiny: figures are NOT meaningful\n");
    if (build_sanitized() || !build_optimized())
        printf("NOTE: sanitized or unoptimised build: figures are NOT the floor (use scripts/bench)\n");

    print_musig_table("MuSig2 via libsecp256k1's public API: the floor (us)", g_musig_ops, g_musig_res);
    printf("(whole session = n x nonce_gen, nonce_agg, n x (nonce_process + partial_sign),\n"
           " n x partial_sig_verify, partial_sig_agg, final schnorrsig_verify)\n");

    double item = batch_item_us();
    printf("\nper batch item at one enclave (n=3, verifying every partial): %.1f us\n", item);
    printf("  = nonce_gen + nonce_process + partial_sign + 3 x partial_sig_verify + final verify;"
           " a 100-item batch: %.1f ms\n",
           item * 100.0 / 1000.0);

    print_musig_table("MuSig2 via libkeymeld's km_musig_* wrappers, same rows (us)", g_wrap_ops, g_wrap_res);
    printf("%-*s", LABEL_W, "whole session: wrapper overhead vs floor");
    for (size_t j = 0; j < N_NS; j++) {
        snprintf(buf, sizeof buf, "%+.0f%%", session_overhead_pct(j));
        printf(" %11s", buf);
    }
    printf("\n");

    printf("\nsingle-key operations, libsecp256k1 (us)\n");
    for (size_t i = 0; i < FIRST_OPENSSL_OP; i++)
        printf("%-*s %11s\n", LABEL_W, g_single_ops[i].label,
               bench_fmt_us(buf, sizeof buf, g_single_res[i].us));
    printf("\nOpenSSL through libkeymeld (us)\n");
    for (size_t i = FIRST_OPENSSL_OP; i < N_SINGLE_OPS; i++)
        printf("%-*s %11s\n", LABEL_W, g_single_ops[i].label,
               bench_fmt_us(buf, sizeof buf, g_single_res[i].us));
}

static void write_json_musig(FILE *f, const musig_op *ops, bench_result res[][N_NS]) {
    for (size_t op = 0; op < N_MUSIG_OPS; op++) {
        for (size_t j = 0; j < N_NS; j++) {
            fprintf(f, "    {\"op\": ");
            bench_json_string(f, ops[op].key);
            fprintf(f, ", \"n\": %zu, ", g_ns[j]);
            bench_json_result(f, &res[op][j]);
            fprintf(f, "}%s\n", op + 1 == N_MUSIG_OPS && j + 1 == N_NS ? "" : ",");
        }
    }
}

/* Writes the JSON report to f (opened before measuring, so that a bad path
 * fails at once rather than after the whole run) and closes it. */
static void write_json(FILE *f, const char *path, const bench_machine *m, int quick) {
    fprintf(f, "{\n  \"benchmark\": \"keymeld crypto floor\",\n");
    fprintf(f, "  \"unit\": \"microseconds per operation, min of %d runs\",\n", BENCH_RUNS);
    fprintf(f, "  \"quick\": %s,\n", quick ? "true" : "false");
    fprintf(f, "  \"cpu_share_pct\": %.2f,\n", bench_cpu_share());
    fprintf(f, "  \"build\": {\"optimized\": %s, \"sanitized\": %s},\n", build_optimized() ? "true" : "false",
            build_sanitized() ? "true" : "false");
    fprintf(f, "  \"machine\": {\"cpu\": ");
    bench_json_string(f, m->cpu);
    fprintf(f, ", \"cores\": %ld, \"kernel\": ", m->cores);
    bench_json_string(f, m->kernel);
    fprintf(f, ", \"loadavg_start\": ");
    bench_json_string(f, m->load_start);
    fprintf(f, ", \"loadavg_end\": ");
    bench_json_string(f, m->load_end);
    fprintf(f, "},\n  \"openssl\": ");
    bench_json_string(f, OpenSSL_version(OPENSSL_VERSION));
    fprintf(f, ",\n  \"ns\": [");
    for (size_t j = 0; j < N_NS; j++)
        fprintf(f, "%s%zu", j ? ", " : "", g_ns[j]);
    fprintf(f, "],\n  \"musig\": [\n");
    write_json_musig(f, g_musig_ops, g_musig_res);
    fprintf(f, "  ],\n  \"musig_km\": [\n");
    write_json_musig(f, g_wrap_ops, g_wrap_res);
    fprintf(f, "  ],\n  \"single\": [\n");
    for (size_t i = 0; i < N_SINGLE_OPS; i++) {
        fprintf(f, "    {\"op\": ");
        bench_json_string(f, g_single_ops[i].key);
        fprintf(f, ", \"library\": \"%s\", ", i < FIRST_OPENSSL_OP ? "libsecp256k1" : "libkeymeld/openssl");
        bench_json_result(f, &g_single_res[i]);
        fprintf(f, "}%s\n", i + 1 == N_SINGLE_OPS ? "" : ",");
    }
    fprintf(f, "  ],\n  \"derived\": {\"batch_item_n3_us\": %.4f, \"batch_100_items_ms\": %.4f, ",
            batch_item_us(), batch_item_us() * 100.0 / 1000.0);
    fprintf(f, "\"km_session_overhead_pct\": [");
    for (size_t j = 0; j < N_NS; j++)
        fprintf(f, "%s%.2f", j ? ", " : "", session_overhead_pct(j));
    fprintf(f, "]}\n}\n");
    int failed = ferror(f);
    if (fclose(f) != 0) failed = 1;
    if (failed) {
        fprintf(stderr, "bench: error writing %s\n", path);
        exit(EXIT_FAILURE);
    }
}

static void usage(FILE *out) {
    fprintf(out, "usage: bench_crypto [--quick] [--json FILE]\n"
                 "  --quick      tiny iteration counts (smoke test; figures not meaningful)\n"
                 "  --json FILE  also write the figures and machine info as JSON to FILE\n");
}

int main(int argc, char **argv) {
    int quick = 0;
    const char *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json_path = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }

    /* Default: ~0.1 s per run, 3 runs, for 113 figures, plus calibration: about 45 s on one
     * core. Quick: one-iteration calibration, 0.1 ms runs. */
    const bench_config cfg = quick ? (bench_config){.calib_s = 0.0, .target_s = 1e-4}
                                   : (bench_config){.calib_s = 0.02, .target_s = 0.10};

    FILE *json = NULL;
    if (json_path && !(json = fopen(json_path, "w"))) {
        fprintf(stderr, "bench: cannot write %s: %s\n", json_path, strerror(errno));
        return EXIT_FAILURE;
    }

    BENCH_CHECK(atexit(cleanup) == 0);
    g.ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    BENCH_CHECK(g.ctx != NULL);
    /* Randomize the context as libkeymeld does (blinding against side
     * channels), so that signing costs what it costs in production. */
    unsigned char seed[32];
    bench_random(seed, sizeof seed);
    int randomized = secp256k1_context_randomize(g.ctx, seed);
    km_wipe(seed, sizeof seed);
    BENCH_CHECK(randomized == 1);
    BENCH_CHECK(km_ctx_create(&g.kctx) == KM_OK);

    bench_machine m;
    bench_machine_info(&m);

    /* Every figure is one job; bench_run_jobs interleaves their runs. */
    static bench_job jobs[2 * N_NS * N_MUSIG_OPS + N_SINGLE_OPS];
    static char names[2 * N_NS * N_MUSIG_OPS][64];
    size_t n_jobs = 0;
    for (size_t j = 0; j < N_NS; j++) {
        fixture_build(&g.fx[j], g_ns[j]);
        for (size_t op = 0; op < N_MUSIG_OPS; op++) {
            snprintf(names[n_jobs], sizeof names[n_jobs], "n=%zu %s", g_ns[j], g_musig_ops[op].key);
            jobs[n_jobs] = (bench_job){names[n_jobs], g_musig_ops[op].fn, g_musig_ops[op].check, &g.fx[j],
                                       &g_musig_res[op][j]};
            n_jobs++;
        }
        wrap_build(&g.wx[j], &g.fx[j]);
        for (size_t op = 0; op < N_MUSIG_OPS; op++) {
            snprintf(names[n_jobs], sizeof names[n_jobs], "n=%zu %s", g_ns[j], g_wrap_ops[op].key);
            jobs[n_jobs] = (bench_job){names[n_jobs], g_wrap_ops[op].fn, g_wrap_ops[op].check, &g.wx[j],
                                       &g_wrap_res[op][j]};
            n_jobs++;
        }
    }
    single_build();
    for (size_t i = 0; i < N_SINGLE_OPS; i++) {
        void *arg = g_single_ops[i].arg ? g_single_ops[i].arg : &g.sx;
        jobs[n_jobs++] = (bench_job){g_single_ops[i].key, g_single_ops[i].fn, g_single_ops[i].check, arg,
                                     &g_single_res[i]};
    }
    /* Progress on a terminal only: in CTest or CI logs it is noise. */
    bench_run_jobs(&cfg, jobs, n_jobs, isatty(STDERR_FILENO));

    bench_loadavg(m.load_end, sizeof m.load_end);
    print_tables(&m, quick);
    if (json) write_json(json, json_path, &m, quick);
    return 0; /* cleanup() wipes the secrets */
}
