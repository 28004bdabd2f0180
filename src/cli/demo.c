/* demo.c — keymeld-demo: a taproot key-path spend signed by three
 * participants whose keys live in two local enclave processes.
 *
 * The client side checks everything it can before and after trusting an
 * enclave: each enclave's attestation (dev root, PCR0 = the binary, a fresh
 * nonce, the enclave key) before anything is sealed to it; the aggregate key
 * recomputed from the participants' own public keys; every signature checked
 * with libsecp256k1 against the output key. Any mismatch exits non-zero. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "cli/rounds.h"
#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/attestation.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "keymeld/protocol.h"
#include "keymeld/single.h"
#include "keymeld/tx.h"

#define N_ENCLAVES 2
#define N_USERS    3
#define PREV_SAT   100000u
#define FEE_SAT    500u

static int fail(km_rounds_world *w, const char *step, km_err err) {
    fprintf(stderr, "keymeld-demo: FAILED at %s: %s%s%s\n", step, km_err_name(err),
            w && w->detail ? " — " : "", w && w->detail ? w->detail : "");
    return 1;
}

static int read_file(const char *path, km_buf *out) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    unsigned char buf[8192];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(buf, 1, sizeof buf, f)) > 0)
        rc = km_buf_put(out, buf, n) == KM_OK ? 0 : -1;
    if (ferror(f)) rc = -1;
    fclose(f);
    return rc;
}

static void hex(char *out, size_t cap, const unsigned char *p, size_t n) {
    if (km_hex_encode(out, cap, p, n) != KM_OK) snprintf(out, cap, "(too long)");
}

/* Ask enclave i for a document bound to a fresh nonce and verify it before
 * anything is sealed to that enclave's key. */
static km_err attest_enclave(km_rounds_world *w, int i, const unsigned char pcr0[48]) {
    unsigned char nonce[32];
    km_buf body, doc, root;
    km_buf_init(&body);
    km_buf_init(&doc);
    km_buf_init(&root);
    km_attest_doc *d = NULL;
    km_attest_reason why = 0;
    km_err status = KM_OK;
    km_err err = km_random_bytes(nonce, 32);
    if (!err) err = km_buf_put_u16(&body, 32);
    if (!err) err = km_buf_put(&body, nonce, 32);
    if (!err) err = km_rounds_call(w, i, KM_CMD_ATTEST, &body, &doc, &status);
    if (!err && status) {
        err = status;
        w->detail = "enclave refused ATTEST";
    }
    char path[400];
    snprintf(path, sizeof path, "%s/ca/root.pem", w->enc[i].dir);
    if (!err && read_file(path, &root) != 0) {
        err = KM_ERR_IO;
        w->detail = "cannot read the dev CA root";
    }
    if (!err) {
        km_attest_pcr want = {.index = 0, .len = 48};
        memcpy(want.value, pcr0, 48);
        km_attest_policy pol = {.now = (uint64_t)time(NULL),
                                .max_age_ms = 60000,
                                .max_future_ms = 5000,
                                .pcrs = &want,
                                .pcr_count = 1,
                                .nonce = nonce,
                                .nonce_len = 32,
                                .public_key = w->enc[i].pub,
                                .public_key_len = 33};
        err = km_attest_verify(doc.data, doc.len, root.data, root.len, &pol, &d, &why);
        if (err) {
            fprintf(stderr, "  attestation of enclave %d refused: %s\n", i, km_attest_reason_str(why));
            w->detail = "attestation refused";
        }
    }
    if (!err) {
        char pub[67];
        hex(pub, sizeof pub, w->enc[i].pub, 33);
        printf("  enclave %d: attestation OK (dev root, PCR0 = SHA-384 of the binary, fresh nonce, key %s)\n",
               i, pub);
    }
    km_attest_doc_free(d);
    km_buf_free(&body);
    km_buf_free(&doc);
    km_buf_free(&root);
    return err;
}

/* The signatures of a one-item result: u32 1 | id | type | u16 units | (sig | T)*units. */
static km_err result_first_sig(const km_buf *res, unsigned char sig[64], unsigned char T[33]) {
    km_cursor c;
    uint32_t n;
    uint8_t type;
    uint16_t units;
    unsigned char id[16];
    km_cursor_init(&c, res->data, res->len);
    km_err err = km_cursor_get_u32(&c, &n);
    if (!err && n != 1) err = KM_ERR_PARSE;
    if (!err) err = km_cursor_get_bytes(&c, id, 16);
    if (!err) err = km_cursor_get_u8(&c, &type);
    if (!err) err = km_cursor_get_u16(&c, &units);
    if (!err && units != 1) err = KM_ERR_PARSE;
    if (!err) err = km_cursor_get_bytes(&c, sig, 64);
    if (!err) err = km_cursor_get_bytes(&c, T, 33);
    if (!err) err = km_cursor_finish(&c);
    return err;
}

static int write_json(const char *dir, const char *tx_hex, const unsigned char spk[34], km_rounds_world *w) {
    char path[4096];
    snprintf(path, sizeof path, "%s/taproot-spend.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "keymeld-demo: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    char h[200];
    fprintf(f, "{\n  \"tx_hex\": \"%s\",\n", tx_hex);
    hex(h, sizeof h, spk, 34);
    fprintf(f, "  \"prevouts\": [{\"amount_sat\": %u, \"script_pubkey_hex\": \"%s\"}],\n", PREV_SAT, h);
    fprintf(f, "  \"participant_pubkeys_hex\": [");
    for (int u = 0; u < w->n_users; u++) {
        hex(h, sizeof h, w->pubkeys[u], 33);
        fprintf(f, "%s\"%s\"", u ? ", " : "", h);
    }
    fprintf(f, "],\n");
    hex(h, sizeof h, w->keyagg.agg_xonly, 32);
    fprintf(f, "  \"aggregate_pubkey_hex\": \"%s\",\n", h);
    hex(h, sizeof h, w->keyagg.output_xonly, 32);
    fprintf(f, "  \"output_pubkey_hex\": \"%s\",\n", h);
    fprintf(f, "  \"tweak_mode\": \"bip86\"\n}\n");
    int rc = ferror(f) ? -1 : 0;
    if (fclose(f) != 0) rc = -1;
    if (rc == 0) printf("  wrote %s\n", path);
    return rc;
}

static int run(km_rounds_world *w, const char *bin, const char *out_dir) {
    km_err err, status = KM_OK;
    char h[4096];
    km_buf bin_bytes, res, ser;
    km_buf_init(&bin_bytes);
    km_buf_init(&res);
    km_buf_init(&ser);
    km_tx tx;
    km_tx_init(&tx, 2, 0);
    int rc = 1;

    printf("== 1. start %d local enclaves (dev CA, temporary state dirs)\n", N_ENCLAVES);
    err = km_rounds_start(w, bin, N_ENCLAVES, N_USERS);
    if (err) return fail(w, "start enclaves", err);
    for (int i = 0; i < N_ENCLAVES; i++)
        printf("  enclave %d: pid %d, %s\n", i, (int)w->enc[i].pid, w->enc[i].addr);

    printf("== 2. verify attestations before sealing anything to the enclaves\n");
    unsigned char pcr0[48];
    if (read_file(bin, &bin_bytes) != 0) {
        fprintf(stderr, "keymeld-demo: cannot read %s\n", bin);
        goto done;
    }
    km_sha384(pcr0, bin_bytes.data, bin_bytes.len);
    hex(h, sizeof h, pcr0, 48);
    printf("  expected PCR0 = SHA-384(%s) = %s\n", bin, h);
    for (int i = 0; i < N_ENCLAVES; i++)
        if ((err = attest_enclave(w, i, pcr0)) != KM_OK) {
            fail(w, "attestation", err);
            goto done;
        }

    printf("== 3. keygen: %d participants, BIP-86 tweak\n", N_USERS);
    for (int u = 0; u < N_USERS; u++) {
        hex(h, sizeof h, w->pubkeys[u], 33);
        printf("  participant %d (enclave %d): %s\n", u, w->assign[u], h);
    }
    if ((err = km_rounds_keygen(w)) != KM_OK) {
        fail(w, "keygen", err);
        goto done;
    }
    hex(h, sizeof h, w->keyagg.agg_xonly, 32);
    printf("  aggregate key (x-only, untweaked): %s   (every enclave agrees, recomputed by the client)\n", h);
    hex(h, sizeof h, w->keyagg.output_xonly, 32);
    printf("  output key (BIP-86 tweaked):      %s\n", h);

    printf("== 4. unsigned transaction spending the P2TR output\n");
    unsigned char spk[34], dest_spk[34], dest_sec[32], dest_x[32], prev_txid[32], sighash[32], txid[32];
    km_sha256(prev_txid, "keymeld-demo made-up previous transaction", 41);
    if ((err = km_tx_p2tr_script(w->ctx, spk, w->keyagg.output_xonly)) ||
        (err = km_devnet_keypair(w->ctx, dest_sec, NULL, dest_x)) ||
        (err = km_tx_p2tr_script(w->ctx, dest_spk, dest_x)) ||
        (err = km_tx_add_input(&tx, prev_txid, 0, 0xfffffffdu)) ||
        (err = km_tx_add_output(&tx, PREV_SAT - FEE_SAT, dest_spk, sizeof dest_spk))) {
        km_wipe(dest_sec, sizeof dest_sec);
        fail(w, "build transaction", err);
        goto done;
    }
    km_wipe(dest_sec, sizeof dest_sec); /* the destination only needs to be a valid key */
    km_tx_spent spent = {.amount = PREV_SAT, .script_pubkey = spk, .script_len = sizeof spk};
    hex(h, sizeof h, spk, 34);
    printf("  prevout: %u sat, scriptPubKey %s\n", PREV_SAT, h);
    hex(h, sizeof h, dest_spk, 34);
    printf("  output:  %u sat to %s (fee %u sat)\n", PREV_SAT - FEE_SAT, h, FEE_SAT);
    if ((err = km_tx_taproot_sighash(&tx, &spent, 1, 0, KM_SIGHASH_DEFAULT, NULL, 0, sighash))) {
        fail(w, "sighash", err);
        goto done;
    }
    hex(h, sizeof h, sighash, 32);
    printf("  BIP-341 key-path sighash (SIGHASH_DEFAULT): %s\n", h);

    printf("== 5. sign the sighash through the enclaves\n");
    km_sign_item item;
    memset(&item, 0, sizeof item);
    km_uuid sid;
    if ((err = km_uuid_v7(&item.id, (uint64_t)time(NULL) * 1000)) ||
        (err = km_uuid_v7(&sid, (uint64_t)time(NULL) * 1000))) {
        fail(w, "ids", err);
        goto done;
    }
    memcpy(item.msg, sighash, 32);
    if ((err = km_rounds_sign(w, &sid, &item, 1, &res, &status)) || (err = status)) {
        fail(w, "signing", err);
        goto done;
    }
    if ((err = km_rounds_check_result(w, &item, NULL, 1, &res))) {
        fail(w, "signing result check", err);
        goto done;
    }
    unsigned char sig[64], T[33];
    if ((err = result_first_sig(&res, sig, T))) {
        fail(w, "signing result", err);
        goto done;
    }
    /* Independently of the library's checks: libsecp256k1 directly. */
    secp256k1_xonly_pubkey Q;
    if (!secp256k1_xonly_pubkey_parse(km_ctx_secp(w->ctx), &Q, w->keyagg.output_xonly) ||
        !secp256k1_schnorrsig_verify(km_ctx_secp(w->ctx), sig, sighash, 32, &Q)) {
        fail(w, "signature verification (libsecp256k1)", KM_ERR_VERIFY);
        goto done;
    }
    hex(h, sizeof h, sig, 64);
    printf("  signature: %s\n  verified with libsecp256k1 against the output key: OK\n", h);
    if ((err = km_tx_set_witness_sig(&tx, 0, sig, 64)) || (err = km_tx_serialize(&tx, 1, &ser)) ||
        (err = km_tx_txid(&tx, txid))) {
        fail(w, "finish transaction", err);
        goto done;
    }
    unsigned char txid_be[32];
    for (int k = 0; k < 32; k++)
        txid_be[k] = txid[31 - k];
    char tx_hex[2 * 4096 + 1];
    if (ser.len > 4096) {
        fail(w, "transaction too large", KM_ERR_RANGE);
        goto done;
    }
    hex(tx_hex, sizeof tx_hex, ser.data, ser.len);
    hex(h, sizeof h, txid_be, 32);
    printf("  txid: %s\n  signed tx: %s\n", h, tx_hex);
    /* What a node would do: parse the bytes we publish, take the signature
     * from the witness, recompute the sighash from the parsed transaction. */
    {
        km_tx back;
        km_tx_init(&back, 0, 0);
        unsigned char sh2[32];
        err = km_tx_parse(&back, ser.data, ser.len);
        if (!err && (back.n_in != 1 || back.in[0].n_witness != 1 || back.in[0].witness[0].len != 64))
            err = KM_ERR_PARSE;
        if (!err) err = km_tx_taproot_sighash(&back, &spent, 1, 0, KM_SIGHASH_DEFAULT, NULL, 0, sh2);
        if (!err &&
            (memcmp(sh2, sighash, 32) != 0 ||
             !secp256k1_schnorrsig_verify(km_ctx_secp(w->ctx), back.in[0].witness[0].data, sh2, 32, &Q)))
            err = KM_ERR_VERIFY;
        km_tx_free(&back);
        if (err) {
            fail(w, "re-parsed transaction check", err);
            goto done;
        }
        printf("  re-parsed: witness signature verifies against the recomputed sighash: OK\n");
    }

    printf("== 6. an adaptor signature (Single): pre-sign, adapt, extract\n");
    km_sign_item ad;
    memset(&ad, 0, sizeof ad);
    km_rounds_secrets sec;
    memset(&sec, 0, sizeof sec);
    ad.adaptor = KM_ADAPTOR_SINGLE;
    ad.n_points = 1;
    km_sha256(ad.msg, "keymeld-demo adaptor message", 28);
    do
        err = km_random_bytes(sec.t[0], 32);
    while (!err && km_adaptor_point_from_secret(w->ctx, ad.points[0], sec.t[0]) != KM_OK);
    if (!err) err = km_uuid_v7(&ad.id, (uint64_t)time(NULL) * 1000);
    if (!err) err = km_uuid_v7(&sid, (uint64_t)time(NULL) * 1000);
    km_buf_free(&res);
    if (!err) {
        err = km_rounds_sign(w, &sid, &ad, 1, &res, &status);
        if (!err) err = status;
    }
    if (err) {
        km_wipe(&sec, sizeof sec);
        fail(w, "adaptor signing", err);
        goto done;
    }
    unsigned char final[64], back[32];
    err = result_first_sig(&res, sig, T);
    if (!err && memcmp(T, ad.points[0], 33) != 0) err = KM_ERR_VERIFY;
    if (!err && km_single_schnorr_verify(w->ctx, sig, ad.msg, 32, w->keyagg.output_xonly) != KM_ERR_VERIFY)
        err = KM_ERR_VERIFY; /* a pre-signature must not already be a signature */
    if (!err) err = km_adaptor_presig_verify(w->ctx, sig, T, w->keyagg.output_xonly, ad.msg);
    if (!err) err = km_adaptor_adapt(w->ctx, final, sig, sec.t[0], w->keyagg.output_xonly, ad.msg);
    if (!err && !secp256k1_schnorrsig_verify(km_ctx_secp(w->ctx), final, ad.msg, 32, &Q)) err = KM_ERR_VERIFY;
    if (!err) err = km_adaptor_extract(w->ctx, back, sig, final, T);
    if (!err && !km_ct_equal(back, sec.t[0], 32)) err = KM_ERR_VERIFY;
    km_wipe(back, sizeof back);
    /* The library's full client check as well (notes R, re-derives everything). */
    if (!err) err = km_rounds_check_result(w, &ad, &sec, 1, &res);
    km_wipe(&sec, sizeof sec);
    if (err) {
        fail(w, "adaptor checks", err);
        goto done;
    }
    hex(h, sizeof h, T, 33);
    printf("  adaptor point T: %s\n", h);
    printf("  pre-signature verifies, is not a signature; adapted with t it verifies (libsecp256k1);\n"
           "  t extracted back from (pre-signature, signature): OK\n");

    printf("== 7. enclave logs hold no secret of this run\n");
    if ((err = km_rounds_logs_clean(w))) {
        fail(w, "log check", err);
        goto done;
    }
    printf("  OK\n");
    if (write_json(out_dir, tx_hex, spk, w) != 0) goto done;
    rc = 0;
done:
    km_tx_free(&tx);
    km_buf_free(&bin_bytes);
    km_buf_free(&res);
    km_buf_free(&ser);
    return rc;
}

static void usage(void) {
    fprintf(stderr, "usage: keymeld-demo [--enclave-bin PATH] [--out DIR]\n");
}

int main(int argc, char **argv) {
    /* Output piped into a closed reader (`| head`) must not kill us before
     * the enclaves are stopped: writes fail with EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);
    const char *bin = NULL, *out_dir = ".";
    char self_bin[4096];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--enclave-bin") == 0 && i + 1 < argc)
            bin = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out_dir = argv[++i];
        else {
            usage();
            return 2;
        }
    }
    if (!bin) {
        /* keymeld-enclave is built next to keymeld-demo. */
        ssize_t n = readlink("/proc/self/exe", self_bin, sizeof self_bin - 32);
        if (n <= 0) {
            fprintf(stderr, "keymeld-demo: cannot find myself; use --enclave-bin\n");
            return 2;
        }
        self_bin[n] = '\0';
        char *slash = strrchr(self_bin, '/');
        if (!slash) return 2;
        strcpy(slash + 1, "keymeld-enclave");
        bin = self_bin;
    }
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "keymeld-demo: %s is not executable; use --enclave-bin\n", bin);
        return 2;
    }
    km_rounds_world w;
    int rc = run(&w, bin, out_dir);
    km_rounds_stop(&w); /* also on failure: no enclave outlives the demo */
    printf(rc == 0 ? "== done: all checks passed\n" : "== FAILED\n");
    return rc;
}
