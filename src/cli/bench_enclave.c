/* bench_enclave.c — keymeld-bench-enclave: what a signing round costs when
 * it goes through real enclave processes (sockets, channel encryption,
 * session sealing, batch encoding, the gateway's record shuffling), next to
 * the in-process crypto floor for the same work measured in the same run.
 *
 * Shapes: 3 participants on 2 enclaves, and 3 participants on 1 enclave.
 * Batches of 1, 10, 100, 1000 regular items (keygen default BIP-86 tweak).
 * A figure is the minimum wall time over 3 rounds (1 with --quick): a
 * disturbance on a shared machine only ever adds time. Every round's result
 * is checked (not timed) like a careful client does: each signature verified
 * with libsecp256k1 under the client's own expected key, no R ever repeated.
 *
 * The floor (n = 3, per item, the share of ONE participant at one enclave):
 *   nonce_gen + nonce_agg(3) + nonce_process + partial_sign
 *   + 3 x partial_sig_verify + final BIP-340 verify,
 * straight on libsecp256k1. An enclave holding k participants does the
 * nonce_gen + partial_sign part k times, so the ratio is an upper bound on
 * the overhead of the process boundary, not a pure measure of it. The
 * second floor ("round") is the whole n = 3 round of one item in one process,
 * every participant's work included: its ratio is the cost of the processes,
 * sockets, encryption and encodings themselves. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_musig.h>
#include <secp256k1_schnorrsig.h>

#include "cli/rounds.h"
#include "keymeld/aead.h"
#include "keymeld/hash.h"
#include "keymeld/secret.h"

#define RUNS 3

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

__attribute__((noreturn)) static void die(const char *what, km_err err, const km_rounds_world *w) {
    fprintf(stderr, "keymeld-bench-enclave: %s: %s%s%s\n", what, km_err_name(err), w && w->detail ? ": " : "",
            w && w->detail ? w->detail : "");
    exit(EXIT_FAILURE);
}

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) die(#cond, KM_ERR_CRYPTO, NULL);                                                        \
    } while (0)

/* ---- in-process floor ------------------------------------------------------ */

typedef struct floor_fx {
    const secp256k1_context *ctx;
    unsigned char sec[3][32];
    secp256k1_keypair kp[3];
    secp256k1_pubkey pk[3];
    secp256k1_musig_keyagg_cache cache;
    secp256k1_musig_pubnonce other[2]; /* signers 1 and 2: fixed, never signed with */
    unsigned char msg[32];
    /* A valid BIP-340 signature to verify (same cost as the aggregate's). */
    secp256k1_xonly_pubkey vk;
    unsigned char vsig[64];
    secp256k1_xonly_pubkey out_x; /* the tweaked aggregate key */
} floor_fx;

static void floor_setup(floor_fx *f, const secp256k1_context *ctx) {
    memset(f, 0, sizeof *f);
    f->ctx = ctx;
    const secp256k1_pubkey *pks[3];
    for (int i = 0; i < 3; i++) {
        do
            CHECK(km_random_bytes(f->sec[i], 32) == KM_OK);
        while (!secp256k1_keypair_create(ctx, &f->kp[i], f->sec[i]));
        CHECK(secp256k1_keypair_pub(ctx, &f->pk[i], &f->kp[i]));
        pks[i] = &f->pk[i];
    }
    secp256k1_xonly_pubkey agg;
    CHECK(secp256k1_musig_pubkey_agg(ctx, &agg, &f->cache, pks, 3));
    unsigned char aggx[32], tweak[32];
    CHECK(secp256k1_xonly_pubkey_serialize(ctx, aggx, &agg));
    CHECK(secp256k1_tagged_sha256(ctx, tweak, (const unsigned char *)"TapTweak", 8, aggx, 32));
    secp256k1_pubkey out;
    CHECK(secp256k1_musig_pubkey_xonly_tweak_add(ctx, &out, &f->cache, tweak));
    CHECK(secp256k1_xonly_pubkey_from_pubkey(ctx, &f->out_x, NULL, &out));
    CHECK(km_random_bytes(f->msg, 32) == KM_OK);
    for (int i = 0; i < 2; i++) {
        secp256k1_musig_secnonce sn;
        unsigned char rand[32];
        CHECK(km_random_bytes(rand, 32) == KM_OK);
        CHECK(secp256k1_musig_nonce_gen(ctx, &sn, &f->other[i], rand, f->sec[i + 1], &f->pk[i + 1], f->msg,
                                        &f->cache, NULL));
        km_wipe(&sn, sizeof sn);
    }
    unsigned char aux[32];
    CHECK(km_random_bytes(aux, 32) == KM_OK);
    CHECK(secp256k1_keypair_xonly_pub(ctx, &f->vk, NULL, &f->kp[0]));
    CHECK(secp256k1_schnorrsig_sign32(ctx, f->vsig, f->msg, &f->kp[0], aux));
}

/* One item's work for signer 0, every result checked. */
static void floor_item(floor_fx *f) {
    secp256k1_musig_secnonce sn;
    secp256k1_musig_pubnonce pn;
    secp256k1_musig_aggnonce an;
    secp256k1_musig_session session;
    secp256k1_musig_partial_sig psig;
    unsigned char rand[32];
    CHECK(km_random_bytes(rand, 32) == KM_OK);
    CHECK(secp256k1_musig_nonce_gen(f->ctx, &sn, &pn, rand, f->sec[0], &f->pk[0], f->msg, &f->cache, NULL));
    const secp256k1_musig_pubnonce *pns[3] = {&pn, &f->other[0], &f->other[1]};
    CHECK(secp256k1_musig_nonce_agg(f->ctx, &an, pns, 3));
    CHECK(secp256k1_musig_nonce_process(f->ctx, &session, &an, f->msg, &f->cache));
    CHECK(secp256k1_musig_partial_sign(f->ctx, &psig, &sn, &f->kp[0], &f->cache, &session));
    /* Three partial verifications (the enclave checks every participant's;
     * verifying signer 0's three times costs the same). */
    for (int k = 0; k < 3; k++)
        CHECK(secp256k1_musig_partial_sig_verify(f->ctx, &psig, &pn, &f->pk[0], &f->cache, &session));
    CHECK(secp256k1_schnorrsig_verify(f->ctx, f->vsig, f->msg, 32, &f->vk));
}

/* One item's whole round for all three participants in one process: what
 * the enclaves and the gateway do together, without processes, sockets or
 * encryption. The aggregate signature is verified under the output key. */
static void floor_round(floor_fx *f) {
    secp256k1_musig_secnonce sn[3];
    secp256k1_musig_pubnonce pn[3];
    secp256k1_musig_aggnonce an;
    secp256k1_musig_session session;
    secp256k1_musig_partial_sig psig[3];
    const secp256k1_musig_pubnonce *pns[3] = {&pn[0], &pn[1], &pn[2]};
    const secp256k1_musig_partial_sig *ps[3] = {&psig[0], &psig[1], &psig[2]};
    unsigned char rand[32], sig[64];
    for (int i = 0; i < 3; i++) {
        CHECK(km_random_bytes(rand, 32) == KM_OK);
        CHECK(secp256k1_musig_nonce_gen(f->ctx, &sn[i], &pn[i], rand, f->sec[i], &f->pk[i], f->msg, &f->cache,
                                        NULL));
    }
    CHECK(secp256k1_musig_nonce_agg(f->ctx, &an, pns, 3));
    CHECK(secp256k1_musig_nonce_process(f->ctx, &session, &an, f->msg, &f->cache));
    for (int i = 0; i < 3; i++)
        CHECK(secp256k1_musig_partial_sign(f->ctx, &psig[i], &sn[i], &f->kp[i], &f->cache, &session));
    for (int i = 0; i < 3; i++)
        CHECK(secp256k1_musig_partial_sig_verify(f->ctx, &psig[i], &pn[i], &f->pk[i], &f->cache, &session));
    CHECK(secp256k1_musig_partial_sig_agg(f->ctx, sig, &session, ps, 3));
    CHECK(secp256k1_schnorrsig_verify(f->ctx, sig, f->msg, 32, &f->out_x));
}

static double floor_us_per_item(floor_fx *f, void (*fn)(floor_fx *), int iters) {
    for (int i = 0; i < iters / 4 + 1; i++) /* warm-up */
        fn(f);
    double best = 1e30;
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_s();
        for (int i = 0; i < iters; i++)
            fn(f);
        double us = (now_s() - t0) * 1e6 / iters;
        if (us < best) best = us;
    }
    return best;
}

/* ---- rounds through the enclaves ---------------------------------------------- */

static uint64_t g_id_ms = 1800000000000ull;

static double enclave_batch_s(km_rounds_world *w, size_t n, int runs) {
    km_sign_item *items = calloc(n, sizeof *items);
    if (!items) die("out of memory", KM_ERR_NOMEM, NULL);
    double best = 1e30;
    for (int r = 0; r < runs; r++) {
        for (size_t i = 0; i < n; i++) {
            memset(&items[i], 0, sizeof items[i]);
            if (km_uuid_v7(&items[i].id, g_id_ms++) != KM_OK) die("uuid", KM_ERR_RANDOM, NULL);
            if (km_random_bytes(items[i].msg, 32) != KM_OK) die("random", KM_ERR_RANDOM, NULL);
        }
        km_uuid sid;
        if (km_uuid_v7(&sid, g_id_ms++) != KM_OK) die("uuid", KM_ERR_RANDOM, NULL);
        km_buf res;
        km_err status = KM_OK;
        double t0 = now_s();
        km_err err = km_rounds_sign(w, &sid, items, n, &res, &status);
        double dt = now_s() - t0;
        if (err) die("signing round", err, w);
        if (status) die("signing round refused", status, w);
        err = km_rounds_check_result(w, items, NULL, n, &res);
        km_buf_free(&res);
        if (err) die("result check", err, w);
        if (dt < best) best = dt;
    }
    free(items);
    return best;
}

static void usage(void) {
    fprintf(stderr, "usage: keymeld-bench-enclave [--quick] [--enclave-bin PATH]\n");
}

int main(int argc, char **argv) {
    /* Output piped into a closed reader (`| head`) must not kill us before
     * the enclaves are stopped: writes fail with EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);
    int quick = 0;
    const char *bin = NULL;
    char self_bin[4096];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--enclave-bin") == 0 && i + 1 < argc)
            bin = argv[++i];
        else {
            usage();
            return 2;
        }
    }
    if (!bin) {
        ssize_t n = readlink("/proc/self/exe", self_bin, sizeof self_bin - 32);
        char *slash = n > 0 ? (self_bin[n] = '\0', strrchr(self_bin, '/')) : NULL;
        if (!slash) {
            fprintf(stderr, "keymeld-bench-enclave: cannot find myself; use --enclave-bin\n");
            return 2;
        }
        strcpy(slash + 1, "keymeld-enclave");
        bin = self_bin;
    }
    static const size_t full_sizes[] = {1, 10, 100, 1000};
    static const size_t quick_sizes[] = {1, 10};
    const size_t *sizes = quick ? quick_sizes : full_sizes;
    size_t n_sizes = quick ? 2 : 4;
    int runs = quick ? 1 : RUNS;
    static const struct { int enclaves, users; } shapes[] = {{2, 3}, {1, 3}};

    km_ctx *ctx;
    if (km_ctx_create(&ctx) != KM_OK) die("context", KM_ERR_NOMEM, NULL);
    floor_fx fx;
    floor_setup(&fx, km_ctx_secp(ctx));
    double floor_us = floor_us_per_item(&fx, floor_item, quick ? 50 : 2000);
    double round_us = floor_us_per_item(&fx, floor_round, quick ? 20 : 1000);
    km_wipe(&fx, sizeof fx);
    km_ctx_destroy(ctx);

    printf("keymeld-bench-enclave%s: signing rounds through local keymeld-enclave processes\n",
           quick ? " (--quick: figures are rough)" : "");
    printf(
        "wall time per batch = min of %d rounds (init, partial, finalize, result opened; checks not timed)\n",
        runs);
    printf("floor = in-process libsecp256k1, n=3, one participant's share of one item:\n"
           "        nonce_gen + nonce_agg + nonce_process + partial_sign + 3 partial_verify + verify = %.1f "
           "us\n",
           floor_us);
    printf("round floor = the whole n=3 round of one item in one process (3 nonce_gen, nonce_agg,\n"
           "        nonce_process, 3 partial_sign, 3 partial_verify, partial_sig_agg, verify) = %.1f us\n\n",
           round_us);
    printf("%-22s %6s %12s %10s %9s %7s %9s %7s\n", "shape", "items", "batch (ms)", "us/item", "floor us",
           "ratio", "round us", "ratio");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        km_rounds_world w;
        km_err err = km_rounds_start(&w, bin, shapes[s].enclaves, shapes[s].users);
        if (!err) err = km_rounds_keygen(&w);
        if (err) {
            fprintf(stderr, "keymeld-bench-enclave: setup: %s: %s\n", km_err_name(err), w.detail);
            km_rounds_stop(&w);
            return 1;
        }
        char label[64];
        snprintf(label, sizeof label, "%d users / %d enclave%s", shapes[s].users, shapes[s].enclaves,
                 shapes[s].enclaves > 1 ? "s" : "");
        (void)enclave_batch_s(&w, 1, 1); /* warm-up: connections, caches */
        for (size_t k = 0; k < n_sizes; k++) {
            double t = enclave_batch_s(&w, sizes[k], runs);
            double per = t * 1e6 / (double)sizes[k];
            printf("%-22s %6zu %12.3f %10.1f %9.1f %6.1fx %9.1f %6.1fx\n", label, sizes[k], t * 1e3, per,
                   floor_us, per / floor_us, round_us, per / round_us);
            fflush(stdout);
        }
        err = km_rounds_logs_clean(&w);
        km_rounds_stop(&w);
        if (err) die("enclave log check", err, NULL);
    }
    return 0;
}
