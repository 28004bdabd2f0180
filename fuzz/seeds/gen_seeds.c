/* fuzz/seeds/gen_seeds.c — writes the seed corpora of fuzz/corpus/<target>/.
 *
 * Usage: km_fuzz_seeds OUTDIR  (scripts/fuzz --seeds runs it into fuzz/corpus)
 *
 * Valid inputs are made with the project's own encoders and the fixed test
 * keys of fz_util.h, and the multi-step ones (a whole keygen and signing, a
 * key's life) are played against the same in-process enclave the target
 * uses, so every step of a seed is accepted when the target replays it.
 * A few interesting invalid inputs are added by hand. Ephemeral keys and
 * nonces are random, so two runs write different (equally valid) bytes.
 *
 * Seeds that carry a wall-clock timestamp (KEY_SIGN, KEY_DELETE: the enclave
 * allows 300 s of skew) stop passing that one check after a while; their
 * structure still reaches every decoder. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <secp256k1_extrakeys.h>

#include "enclave/enclave.h"
#include "fz_util.h"
#include "gateway/http.h"
#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/attestation.h"
#include "keymeld/channel.h"
#include "keymeld/ecies.h"
#include "keymeld/hex.h"
#include "keymeld/musig.h"
#include "keymeld/proto_key.h"
#include "keymeld/proto_keygen.h"
#include "keymeld/proto_sign.h"
#include "keymeld/protocol.h"
#include "keymeld/reqauth.h"
#include "keymeld/seal.h"
#include "keymeld/session_crypto.h"
#include "keymeld/single.h"
#include "keymeld/tx.h"

static const char *outdir;

static void die(const char *what) {
    fprintf(stderr, "gen_seeds: %s\n", what);
    exit(1);
}

#define CHECK(x)                                                                                             \
    do {                                                                                                     \
        if ((x) != KM_OK) die(#x);                                                                           \
    } while (0)

static void put(const char *target, const char *name, const void *p, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", outdir, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) die("mkdir");
    snprintf(path, sizeof path, "%s/%s/%s", outdir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) die(path);
}

static void put_str(const char *target, const char *name, const char *s) {
    put(target, name, s, strlen(s));
}

static void put_buf(const char *target, const char *name, const km_buf *b) {
    if (b->failed) die("out of memory");
    put(target, name, b->data, b->len);
}

/* u16 length | bytes (fz_piece). */
static void piece(km_buf *b, const void *p, size_t n) {
    if (n > 0xffff) die("piece too long");
    CHECK(km_buf_put_u16(b, (uint16_t)n));
    if (n) CHECK(km_buf_put(b, p, n));
}

static void piece_str(km_buf *b, const char *s) {
    piece(b, s, strlen(s));
}

static void vbytes(km_buf *b, const void *p, size_t n) {
    CHECK(km_buf_put_u32(b, (uint32_t)n));
    if (n) CHECK(km_buf_put(b, p, n));
}

static void fill(void *p, unsigned char v, size_t n) {
    memset(p, v, n);
}

static void xonly(const unsigned char sk[32], unsigned char out[32]) {
    unsigned char pub[33];
    fz_pub33(sk, pub);
    memcpy(out, pub + 1, 32);
}

/* ---- hex and UUID --------------------------------------------------------- */

static void seeds_hex_uuid(void) {
    static const char *const s[] = {"",
                                    "00",
                                    "deadbeef",
                                    "DEADBEEF",
                                    "0g",
                                    "abc",
                                    "0123456789abcdef0123456789abcdef",
                                    "01890a5d-ac96-774b-bcce-b302099a8057",
                                    "01890A5D-AC96-774B-BCCE-B302099A8057",
                                    "00000000-0000-0000-0000-000000000000",
                                    "01890a5dac96774bbcceb302099a8057",
                                    "{01890a5d-ac96-774b-bcce-b302099a8057}",
                                    "01890a5d-ac96-774b-bcce-b302099a805"};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%02zu", i);
        put_str("fuzz_hex_uuid", name, s[i]);
    }
}

/* ---- transactions ------------------------------------------------------------ */

static void seeds_tx(void) {
    json_error_t jerr;
    json_t *v = json_load_file(KM_FUZZ_VECTORS_DIR "/bip341/wallet-test-vectors.json", 0, &jerr);
    if (!v) die("bip341 vectors");
    const char *hex = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(v, "keyPathSpending"), 0), "given"), "rawUnsignedTx"));
    if (!hex) die("rawUnsignedTx");
    size_t n = strlen(hex) / 2;
    unsigned char *raw = malloc(n);
    if (!raw || km_hex_decode(raw, n, hex, 2 * n) != KM_OK) die("rawUnsignedTx hex");
    put("fuzz_tx", "bip341_unsigned", raw, n);
    /* A segwit one made with the builder: two inputs, one signed. */
    km_tx tx;
    km_tx_init(&tx, 2, 500000);
    unsigned char txid[32], spk[34], sig[64];
    fill(txid, 0xab, 32);
    spk[0] = 0x51;
    spk[1] = 0x20;
    fill(spk + 2, 0xcd, 32);
    fill(sig, 0x5c, 64);
    CHECK(km_tx_add_input(&tx, txid, 0, 0xfffffffd));
    CHECK(km_tx_add_input(&tx, txid, 7, 0xffffffff));
    CHECK(km_tx_add_output(&tx, 50000, spk, sizeof spk));
    CHECK(km_tx_add_output(&tx, 0, NULL, 0));
    CHECK(km_tx_set_witness_sig(&tx, 1, sig, 64));
    km_buf b;
    km_buf_init(&b);
    CHECK(km_tx_serialize(&tx, 1, &b));
    put_buf("fuzz_tx", "segwit", &b);
    b.len = 0;
    CHECK(km_tx_serialize(&tx, 0, &b));
    put_buf("fuzz_tx", "legacy", &b);
    put("fuzz_tx", "truncated", b.data, b.len - 3);
    km_buf_free(&b);
    km_tx_free(&tx);
    free(raw);
    json_decref(v);
}

/* ---- the in-process enclave: requests and what they answer -------------------- */

static km_enclave *enclave;
static uint32_t next_rid = 1;

/* A command no enclave knows (the "invalid" seed); its refusal is expected. */
#define BOGUS_CMD 0x7777

static int cur_step; /* steps in the fuzz_enclave input being built */

static void seq_reset(km_buf *seq) {
    seq->len = 0;
    cur_step = 0;
}

/* Append one step to seq (a fuzz_enclave input) and run it; reply gets the
 * response body. The step as written holds body_written (NULL: body) and asks
 * the target to append the answers of steps a and b (1-based, 0: none); body
 * is what it then runs, as this run does. Returns the response status. */
static km_err call_spliced(km_buf *seq, uint16_t cmd, const km_buf *body, const km_buf *body_written,
                           uint8_t a, uint8_t b, km_buf *reply) {
    km_buf req, out;
    km_buf_init(&req);
    km_buf_init(&out);
    uint32_t rid = next_rid++;
    CHECK(km_msg_put_header(&req, KM_MSG_REQUEST, rid, cmd));
    const km_buf *w = body_written ? body_written : body;
    if (w && w->len) CHECK(km_buf_put(&req, w->data, w->len));
    CHECK(km_buf_put_u8(seq, a));
    CHECK(km_buf_put_u8(seq, b));
    piece(seq, req.data, req.len);
    cur_step++;
    if (body_written) {
        req.len = KM_MSG_HEADER_LEN;
        if (body && body->len) CHECK(km_buf_put(&req, body->data, body->len));
    }
    km_msg m, r;
    CHECK(km_msg_decode(&m, req.data, req.len));
    km_enclave_dispatch(enclave, &m, &out);
    CHECK(km_msg_decode(&r, out.data, out.len));
    if (reply) {
        reply->len = 0;
        if (r.body_len) CHECK(km_buf_put(reply, r.body, r.body_len));
    }
    km_err code = (km_err)r.code;
    if (code != KM_OK && cmd != BOGUS_CMD) {
        char d[300];
        (void)km_msg_error_detail(&r, d, sizeof d);
        fprintf(stderr, "gen_seeds: enclave refused %s: %s (%s)\n", km_cmd_name(cmd), km_err_name(code), d);
    }
    km_buf_free(&req);
    km_buf_free(&out);
    return code;
}

static km_err call(km_buf *seq, uint16_t cmd, const km_buf *body, km_buf *reply) {
    return call_spliced(seq, cmd, body, NULL, 0, 0, reply);
}

#define N_USERS 2

typedef struct world {
    km_uuid keygen_id, users[N_USERS];
    unsigned char seckeys[N_USERS][32], auth_sec[N_USERS][32], auth_x[N_USERS][32];
    uint8_t flags[N_USERS];
    km_buf records[N_USERS];
    km_session *session;
} world;

static void world_init(world *w) {
    memset(w, 0, sizeof *w);
    fill(w->keygen_id.b, 0x4b, 16);
    w->keygen_id.b[6] = 0x70;
    for (int u = 0; u < N_USERS; u++) {
        fill(w->users[u].b, (unsigned char)(0xa0 + u), 16);
        fill(w->seckeys[u], (unsigned char)(0x61 + u), 32);
        fill(w->auth_sec[u], (unsigned char)(0x71 + u), 32);
        xonly(w->auth_sec[u], w->auth_x[u]);
        km_buf_init(&w->records[u]);
    }
    w->flags[0] = KM_FLAG_REQUIRE_APPROVAL;
    CHECK(km_session_derive(fz_ctx(), FZ_SESSION_SECRET, &w->session));
}

static void world_free(world *w) {
    for (int u = 0; u < N_USERS; u++)
        km_buf_free(&w->records[u]);
    km_session_free(w->session);
}

/* The keygen init plaintext (one enclave, both users on it). */
static void keygen_init_pt(world *w, km_buf *pt) {
    km_keygen_init init;
    memset(&init, 0, sizeof init);
    memcpy(init.session_secret, FZ_SESSION_SECRET, 32);
    unsigned char pubs[1][33];
    fz_pub33(FZ_ENCLAVE_SK, pubs[0]);
    uint16_t assign[N_USERS] = {0, 0};
    init.n_enclaves = 1;
    init.enclave_pubs = pubs;
    init.n_participants = N_USERS;
    init.user_ids = w->users;
    init.enclave_index = assign;
    km_tweak_bip86(&init.tweak);
    CHECK(km_keygen_init_encode(&init, pt));
}

/* INIT, REGISTER x N_USERS, FINALIZE. */
static void keygen(world *w, km_buf *seq) {
    km_ctx *ctx = fz_ctx();
    unsigned char epub[33];
    fz_pub33(FZ_ENCLAVE_SK, epub);
    km_buf pt, blob, body, reply;
    km_buf_init(&pt);
    km_buf_init(&blob);
    km_buf_init(&body);
    km_buf_init(&reply);
    keygen_init_pt(w, &pt);
    km_ad ad;
    CHECK(km_ad_build(&ad, KM_AD_KEYGEN_INIT, &w->keygen_id, epub, 33));
    CHECK(km_ecies_seal(ctx, epub, ad.bytes, ad.len, pt.data, pt.len, &blob));
    CHECK(km_buf_put(&body, w->keygen_id.b, 16));
    vbytes(&body, blob.data, blob.len);
    CHECK(call(seq, KM_CMD_KEYGEN_INIT, &body, NULL));
    for (int u = 0; u < N_USERS; u++) {
        km_registration reg;
        unsigned char rp[KM_REGISTRATION_LEN];
        memcpy(reg.session_secret, FZ_SESSION_SECRET, 32);
        memcpy(reg.seckey, w->seckeys[u], 32);
        memcpy(reg.auth_pub, w->auth_x[u], 32);
        reg.flags = w->flags[u];
        km_registration_encode(&reg, rp);
        CHECK(km_ad_build(&ad, KM_AD_REGISTER, &w->keygen_id, w->users[u].b, 16));
        CHECK(km_ecies_seal(ctx, epub, ad.bytes, ad.len, rp, sizeof rp, &blob));
        body.len = 0;
        CHECK(km_buf_put(&body, w->keygen_id.b, 16));
        CHECK(km_buf_put(&body, w->users[u].b, 16));
        vbytes(&body, blob.data, blob.len);
        CHECK(call(seq, KM_CMD_KEYGEN_REGISTER, &body, &w->records[u]));
    }
    body.len = 0;
    CHECK(km_buf_put(&body, w->keygen_id.b, 16));
    CHECK(km_buf_put_u16(&body, N_USERS));
    for (int u = 0; u < N_USERS; u++)
        vbytes(&body, w->records[u].data, w->records[u].len);
    CHECK(call(seq, KM_CMD_KEYGEN_FINALIZE, &body, &reply));
    km_buf_free(&pt);
    km_buf_free(&blob);
    km_buf_free(&body);
    km_buf_free(&reply);
}

static void sign_items(km_sign_item items[2]) {
    memset(items, 0, 2 * sizeof *items);
    fill(items[0].id.b, 0xc1, 16);
    fill(items[0].msg, 0x6d, 32);
    items[0].adaptor = KM_ADAPTOR_NONE;
    fill(items[1].id.b, 0xc2, 16);
    fill(items[1].msg, 0x6e, 32);
    items[1].adaptor = KM_ADAPTOR_SINGLE;
    items[1].n_points = 1;
    unsigned char t[32];
    fill(t, 0x7e, 32);
    fz_pub33(t, items[1].points[0]);
}

/* SIGN_INIT, SIGN_APPROVE (user 0), SIGN_PARTIAL, SIGN_FINALIZE. */
static void signing(world *w, km_buf *seq, km_buf *items_pt_out) {
    km_uuid sid;
    fill(sid.b, 0x53, 16);
    km_sign_item items[2];
    sign_items(items);
    km_buf pt, sealed, body, nonces, partials;
    km_buf_init(&pt);
    km_buf_init(&sealed);
    km_buf_init(&body);
    km_buf_init(&nonces);
    km_buf_init(&partials);
    CHECK(km_sign_items_encode(items, 2, &pt));
    km_ad ad;
    CHECK(km_ad_build(&ad, KM_AD_SIGNING_ITEMS, &sid, w->keygen_id.b, 16));
    CHECK(km_session_seal(w->session, ad.bytes, ad.len, pt.data, pt.len, &sealed));
    CHECK(km_buf_put(&body, w->keygen_id.b, 16));
    CHECK(km_buf_put(&body, sid.b, 16));
    vbytes(&body, sealed.data, sealed.len);
    CHECK(call(seq, KM_CMD_SIGN_INIT, &body, &nonces));
    uint8_t init_step = (uint8_t)cur_step;
    unsigned char digest[32], sig[64];
    km_sign_approval_digest(digest, &sid, &w->keygen_id, pt.data, pt.len);
    CHECK(km_single_schnorr_sign(fz_ctx(), sig, digest, 32, w->auth_sec[0]));
    body.len = 0;
    CHECK(km_buf_put(&body, sid.b, 16));
    CHECK(km_buf_put(&body, w->users[0].b, 16));
    CHECK(km_buf_put(&body, sig, 64));
    CHECK(call(seq, KM_CMD_SIGN_APPROVE, &body, NULL));
    /* The INIT answer is "u16 n | vbytes*n": exactly what PARTIAL takes after the id. */
    km_buf idb;
    km_buf_init(&idb);
    CHECK(km_buf_put(&idb, sid.b, 16));
    body.len = 0;
    CHECK(km_buf_put(&body, sid.b, 16));
    CHECK(km_buf_put(&body, nonces.data, nonces.len));
    CHECK(call_spliced(seq, KM_CMD_SIGN_PARTIAL, &body, &idb, init_step, 0, &partials));
    uint8_t partial_step = (uint8_t)cur_step;
    CHECK(km_buf_put(&body, partials.data, partials.len));
    CHECK(call_spliced(seq, KM_CMD_SIGN_FINALIZE, &body, &idb, init_step, partial_step, NULL));
    km_buf_free(&idb);
    if (items_pt_out) CHECK(km_buf_put(items_pt_out, pt.data, pt.len));
    km_buf_free(&pt);
    km_buf_free(&sealed);
    km_buf_free(&body);
    km_buf_free(&nonces);
    km_buf_free(&partials);
}

/* KEY_IMPORT, KEY_SIGN (Schnorr, then ECDSA), KEY_DELETE. */
static void key_life(km_buf *seq, km_buf *import_body, km_buf *sign_body) {
    km_ctx *ctx = fz_ctx();
    unsigned char epub[33];
    fz_pub33(FZ_ENCLAVE_SK, epub);
    km_uuid key_id, user_id, rid;
    fill(key_id.b, 0xe1, 16);
    fill(user_id.b, 0xe2, 16);
    fill(rid.b, 0xe3, 16);
    km_key_import imp;
    fill(imp.seckey, 0x81, 32);
    unsigned char auth_sk[32];
    fill(auth_sk, 0x82, 32);
    xonly(auth_sk, imp.auth_pub);
    imp.flags = 0;
    km_buf body;
    km_buf_init(&body);
    CHECK(km_key_import_build(ctx, epub, &key_id, &user_id, &imp, &body));
    CHECK(call(seq, KM_CMD_KEY_IMPORT, &body, NULL));
    if (import_body) CHECK(km_buf_put(import_body, body.data, body.len));
    unsigned char msg[32], rk[32];
    fill(msg, 0x3c, 32);
    fill(rk, 0x3d, 32);
    km_key_sign_req req = {KM_KEY_ALGO_SCHNORR, (uint64_t)time(NULL), msg, 13, rk};
    CHECK(km_key_sign_build(ctx, epub, &key_id, &rid, &req, NULL, &body));
    CHECK(call(seq, KM_CMD_KEY_SIGN, &body, NULL));
    if (sign_body) CHECK(km_buf_put(sign_body, body.data, body.len));
    rid.b[0] ^= 1;
    req.algo = KM_KEY_ALGO_ECDSA;
    req.msg_len = 32;
    CHECK(km_key_sign_build(ctx, epub, &key_id, &rid, &req, NULL, &body));
    CHECK(call(seq, KM_CMD_KEY_SIGN, &body, NULL));
    unsigned char d[32], sig[64], del[KM_KEY_DELETE_LEN];
    uint64_t now = (uint64_t)time(NULL);
    km_key_delete_digest(d, &key_id, now);
    CHECK(km_single_schnorr_sign(ctx, sig, d, 32, auth_sk));
    km_key_delete_encode(del, &key_id, now, sig);
    body.len = 0;
    CHECK(km_buf_put(&body, del, sizeof del));
    CHECK(call(seq, KM_CMD_KEY_DELETE, &body, NULL));
    km_buf_free(&body);
}

static void seeds_enclave_and_codecs(void) {
    enclave = fz_enclave_new();
    km_buf seq, items_pt, import_body, sign_body;
    km_buf_init(&seq);
    km_buf_init(&items_pt);
    km_buf_init(&import_body);
    km_buf_init(&sign_body);
    CHECK(call(&seq, KM_CMD_INFO, NULL, NULL));
    put_buf("fuzz_enclave", "info", &seq);
    world w;
    world_init(&w);

    seq_reset(&seq);
    keygen(&w, &seq);
    put_buf("fuzz_enclave", "keygen", &seq);
    signing(&w, &seq, &items_pt);
    put_buf("fuzz_enclave", "keygen_sign", &seq);
    /* Clearing the session at the end. */
    km_buf body;
    km_buf_init(&body);
    CHECK(km_buf_put_u8(&body, 1)); /* kind: keygen */
    CHECK(km_buf_put(&body, w.keygen_id.b, 16));
    CHECK(call(&seq, KM_CMD_SESSION_CLEAR, &body, NULL));
    put_buf("fuzz_enclave", "keygen_sign_clear", &seq);

    fz_enclave_reset(enclave);
    seq_reset(&seq);
    key_life(&seq, &import_body, &sign_body);
    put_buf("fuzz_enclave", "key_life", &seq);

    /* Invalid: an unknown command, a response where a request belongs, a short header. */
    seq_reset(&seq);
    (void)call(&seq, BOGUS_CMD, NULL, NULL);
    km_buf resp;
    km_buf_init(&resp);
    CHECK(km_msg_put_error(&resp, 9, KM_ERR_STATE, "not now"));
    CHECK(km_buf_put_u16(&seq, 0x0100)); /* splice step 1, then nothing */
    piece(&seq, resp.data, resp.len);
    CHECK(km_buf_put_u16(&seq, 0x0909)); /* splice steps that never ran */
    piece(&seq, "\x01\x00\x00", 3);
    put_buf("fuzz_enclave", "invalid", &seq);

    /* ---- fuzz_envelope: selector | bytes ---- */
    km_buf e;
    km_buf_init(&e);
    CHECK(km_buf_put_u8(&e, 0));
    CHECK(km_buf_put(&e, resp.data, resp.len));
    put_buf("fuzz_envelope", "error_response", &e);
    e.len = 0;
    CHECK(km_buf_put_u8(&e, 0));
    CHECK(km_msg_put_header(&e, KM_MSG_REQUEST, 1, KM_CMD_KEYGEN_INIT));
    CHECK(km_buf_put(&e, w.keygen_id.b, 16));
    put_buf("fuzz_envelope", "request", &e);
    e.len = 0;
    CHECK(km_buf_put_u8(&e, 1));
    keygen_init_pt(&w, &e);
    put_buf("fuzz_envelope", "keygen_init", &e);
    e.len = 0;
    CHECK(km_buf_put_u8(&e, 2));
    km_registration reg;
    memcpy(reg.session_secret, FZ_SESSION_SECRET, 32);
    memcpy(reg.seckey, w.seckeys[0], 32);
    memcpy(reg.auth_pub, w.auth_x[0], 32);
    reg.flags = 1;
    unsigned char rp[KM_REGISTRATION_LEN];
    km_registration_encode(&reg, rp);
    CHECK(km_buf_put(&e, rp, sizeof rp));
    put_buf("fuzz_envelope", "registration", &e);
    e.len = 0;
    CHECK(km_buf_put_u8(&e, 3));
    CHECK(km_buf_put(&e, items_pt.data, items_pt.len));
    put_buf("fuzz_envelope", "sign_items", &e);
    e.len = 0;
    CHECK(km_buf_put_u8(&e, 4));
    CHECK(km_buf_put(&e, w.records[0].data, w.records[0].len));
    put_buf("fuzz_envelope", "participant_record", &e);
    e.len = 0;
    CHECK(km_buf_put_u8(&e, 5));
    km_key_import imp;
    fill(imp.seckey, 0x81, 32);
    fill(imp.auth_pub, 0x79, 32);
    imp.flags = KM_KEY_FLAG_REQUIRE_APPROVAL;
    unsigned char ib[KM_KEY_IMPORT_LEN];
    CHECK(km_key_import_encode(&imp, ib));
    CHECK(km_buf_put(&e, ib, sizeof ib));
    put_buf("fuzz_envelope", "key_import_pt", &e);
    e.len = 0;
    CHECK(km_buf_put_u8(&e, 5));
    unsigned char msg[32], rk[32];
    fill(msg, 0x3c, 32);
    fill(rk, 0x3d, 32);
    km_key_sign_req req = {KM_KEY_ALGO_ECDSA, 1700000000, msg, 32, rk};
    CHECK(km_key_sign_encode(&req, &e));
    put_buf("fuzz_envelope", "key_sign_pt", &e);
    e.len = 0;
    CHECK(km_buf_put_u8(&e, 5));
    CHECK(km_buf_put(&e, import_body.data, import_body.len));
    put_buf("fuzz_envelope", "key_import_body", &e);
    e.len = 0;
    CHECK(km_buf_put_u8(&e, 5));
    CHECK(km_buf_put(&e, sign_body.data, sign_body.len));
    put_buf("fuzz_envelope", "key_sign_body", &e);

    /* ---- fuzz_frame: selector | frames ---- */
    e.len = 0;
    CHECK(km_buf_put_u8(&e, 0));
    CHECK(km_buf_put_u32(&e, (uint32_t)resp.len));
    CHECK(km_buf_put(&e, resp.data, resp.len));
    CHECK(km_buf_put_u32(&e, 7));
    CHECK(km_msg_put_header(&e, KM_MSG_REQUEST, 2, KM_CMD_INFO));
    put_buf("fuzz_frame", "two_frames", &e);
    e.len = 0;
    CHECK(km_buf_put_u8(&e, 1));
    CHECK(km_buf_put_u32(&e, 5000)); /* above the 4096 limit of this selector */
    put_buf("fuzz_frame", "too_long", &e);
    e.len = 0;
    CHECK(km_buf_put_u8(&e, 0));
    CHECK(km_buf_put_u32(&e, 0));
    put_buf("fuzz_frame", "zero_length", &e);
    e.len = 0;
    CHECK(km_buf_put_u8(&e, 0));
    CHECK(km_buf_put_u32(&e, 100));
    CHECK(km_buf_put(&e, "short", 5));
    put_buf("fuzz_frame", "truncated", &e);

    km_buf_free(&e);
    km_buf_free(&resp);
    km_buf_free(&body);
    km_buf_free(&seq);
    km_buf_free(&items_pt);
    km_buf_free(&import_body);
    km_buf_free(&sign_body);
    world_free(&w);
    fz_enclave_free(enclave);
}

/* ---- ECIES, session data, sealed secrets --------------------------------------- */

/* One input of fuzz_ecies / fuzz_sealed: "u8 mode | u8 n | AD or label (n
 * bytes) | blob". */
static void put_sealed_input(const char *target, const char *name, uint8_t mode, const void *ad,
                             size_t ad_len, const km_buf *blob) {
    km_buf in;
    km_buf_init(&in);
    CHECK(km_buf_put_u8(&in, mode));
    CHECK(km_buf_put_u8(&in, (uint8_t)ad_len));
    CHECK(km_buf_put(&in, ad, ad_len));
    CHECK(km_buf_put(&in, blob->data, blob->len));
    put_buf(target, name, &in);
    km_buf_free(&in);
}

static void seeds_crypto(void) {
    km_ctx *ctx = fz_ctx();
    unsigned char epub[33];
    fz_pub33(FZ_ENCLAVE_SK, epub);
    km_uuid id;
    fill(id.b, 0x4b, 16);
    km_ad ad;
    CHECK(km_ad_build(&ad, KM_AD_REGISTER, &id, "0123456789abcdef", 16));
    static const size_t lens[] = {1, 32, 98, 300};
    km_buf blob;
    km_buf_init(&blob);
    unsigned char pt[300];
    fill(pt, 0x70, sizeof pt);
    for (size_t i = 0; i < 4; i++) {
        CHECK(km_ecies_seal(ctx, epub, ad.bytes, ad.len, pt, lens[i], &blob));
        for (uint8_t mode = 0; mode < 3; mode++) {
            char name[32];
            snprintf(name, sizeof name, "pt%zu_mode%u", lens[i], mode);
            put_sealed_input("fuzz_ecies", name, mode, ad.bytes, ad.len, &blob);
        }
    }
    put_sealed_input("fuzz_ecies", "no_ad", 0, "", 0, &blob);

    /* Session data (mode 0 / 2) and sealed secrets (mode 1). */
    km_session *s;
    CHECK(km_session_derive(ctx, FZ_SESSION_SECRET, &s));
    for (size_t i = 0; i < 4; i++) {
        CHECK(km_session_seal(s, ad.bytes, ad.len, pt, lens[i], &blob));
        for (uint8_t mode = 0; mode < 4; mode += 2) {
            char name[32];
            snprintf(name, sizeof name, "session_pt%zu_mode%u", lens[i], mode);
            put_sealed_input("fuzz_sealed", name, mode, ad.bytes, ad.len, &blob);
        }
    }
    km_session_free(s);
    km_sealer *sealer;
    CHECK(km_sealer_local_new(ctx, FZ_SEAL_KEY, &sealer));
    static const char *const labels[] = {"keymeld/enclave-key/v1", "x"};
    for (size_t i = 0; i < 2; i++) {
        CHECK(km_seal(sealer, labels[i], pt, i ? 1 : 32, &blob));
        char name[32];
        snprintf(name, sizeof name, "sealer%zu", i);
        put_sealed_input("fuzz_sealed", name, 1, labels[i], strlen(labels[i]), &blob);
    }
    km_sealer_free(sealer);
    km_buf_free(&blob);
}

/* ---- channel --------------------------------------------------------------------- */

static void seeds_channel(void) {
    km_channel g, e;
    unsigned char hello[KM_CHANNEL_HELLO_LEN], reply[KM_CHANNEL_REPLY_LEN], auth[KM_CHANNEL_AUTH_LEN];
    fz_channel_handshake(&g, &e, hello, reply, auth);
    km_buf b;
    km_buf_init(&b);
    CHECK(km_buf_put_u8(&b, 0));
    piece(&b, hello, sizeof hello);
    piece(&b, auth, sizeof auth);
    put_buf("fuzz_channel", "hello_auth", &b);
    b.len = 0;
    CHECK(km_buf_put_u8(&b, 1));
    piece(&b, reply, sizeof reply);
    put_buf("fuzz_channel", "reply", &b);
    /* Records gateway -> enclave under the fixed key, counters 0, 1, 2. */
    memcpy(g.send_key, FZ_CHANNEL_KEY, 32);
    g.send_ctr = 0;
    b.len = 0;
    CHECK(km_buf_put_u8(&b, 2));
    static const size_t lens[] = {0, 7, 200};
    unsigned char pt[200];
    fill(pt, 0x2a, sizeof pt);
    for (size_t i = 0; i < 3; i++) {
        km_buf rec;
        km_buf_init(&rec);
        CHECK(km_channel_seal(&g, pt, lens[i], &rec));
        piece(&b, rec.data, rec.len);
        km_buf_free(&rec);
    }
    put_buf("fuzz_channel", "records", &b);
    km_channel_clear(&g);
    km_channel_clear(&e);
    km_buf_free(&b);
}

/* ---- gateway configuration ---------------------------------------------------------- */

static void seeds_config(void) {
    char pub[67];
    unsigned char epub[33];
    fz_pub33(FZ_ENCLAVE_SK, epub);
    CHECK(km_hex_encode(pub, sizeof pub, epub, 33));
    char s[2048];
    snprintf(s, sizeof s,
             "{\"listen\": \"127.0.0.1:8080\", \"database\": \"/var/lib/keymeld/gateway.db\",\n"
             " \"gateway_key_file\": \"/etc/keymeld/gateway.key\",\n"
             " \"enclaves\": [{\"id\": 0, \"address\": \"unix:/run/keymeld/enclave0.sock\", \"public_key\": "
             "\"%s\"},\n"
             "              {\"id\": 1, \"address\": \"vsock:16:5000\", \"public_key\": \"%s\"}],\n"
             " \"max_body_bytes\": 4194304, \"max_wait_seconds\": 60}\n",
             pub, pub);
    put_str("fuzz_config", "full", s);
    put_str("fuzz_config", "ipv6", "{\"listen\": \"[::1]:0\", \"instance_name\": \"gw-a\"}");
    put_str("fuzz_config", "unknown_key", "{\"listne\": \"127.0.0.1:1\"}");
    put_str("fuzz_config", "dup_key", "{\"database\": \"a\", \"database\": \"b\"}");
    put_str("fuzz_config", "not_object", "[1, 2]");
    snprintf(
        s, sizeof s,
        "{\"enclaves\": [{\"id\": 4294967295, \"address\": \"tcp:127.0.0.1:7000\", \"public_key\": \"%s\"}],"
        " \"http_threads\": 4, \"coordinator_workers\": 2, \"enclave_timeout_ms\": 1000}",
        pub);
    put_str("fuzz_config", "tcp_enclave", s);
}

/* ---- attestation ------------------------------------------------------------------------ */

static void seeds_attestation(void) {
    FILE *f = fopen(KM_FUZZ_VECTORS_DIR "/nitro/attestation_doc.cose", "rb");
    if (!f) die("nitro document");
    static unsigned char doc[1 << 16];
    size_t n = fread(doc, 1, sizeof doc, f);
    fclose(f);
    put("fuzz_attestation", "nitro", doc, n);
    put("fuzz_attestation", "nitro_truncated", doc, n / 2);
    /* With the optional COSE_Sign1 tag 18 (0xd2) in front, if it had none, or without it. */
    static unsigned char tagged[(1 << 16) + 1];
    if (doc[0] == 0xd2) {
        put("fuzz_attestation", "nitro_untagged", doc + 1, n - 1);
    } else {
        tagged[0] = 0xd2;
        memcpy(tagged + 1, doc, n);
        put("fuzz_attestation", "nitro_tagged", tagged, n + 1);
    }
    put("fuzz_attestation", "empty_array", "\x84\x40\xa0\x40\x40", 5);
}

/* ---- gateway requests ------------------------------------------------------------------ */

static int route_index(const char *method, const char *pattern) {
    const km_http_route *r[64];
    size_t n = fz_gateway_routes(r, 64);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(r[i]->method, method) && !strcmp(r[i]->pattern, pattern)) return (int)i;
    die(pattern);
    return -1;
}

static void gw_seed(const char *name, const char *method, const char *pattern, const char *const *params,
                    const char *body) {
    km_buf b;
    km_buf_init(&b);
    CHECK(km_buf_put_u8(&b, (uint8_t)route_index(method, pattern)));
    for (size_t i = 0; params && params[i]; i++)
        piece_str(&b, params[i]);
    CHECK(km_buf_put(&b, body, strlen(body)));
    put_buf("fuzz_gateway", name, &b);
    km_buf_free(&b);
}

#define UUID_A "01890a5d-ac96-774b-bcce-b302099a8057"
#define UUID_B "01890a5d-ac96-774b-bcce-b302099a8058"
#define HEX32  "1111111111111111111111111111111111111111111111111111111111111111"
#define HEX64  HEX32 HEX32

static void seeds_gateway(void) {
    const char *one[] = {UUID_A, NULL}, *two[] = {UUID_A, UUID_B, NULL}, *bad[] = {"not-a-uuid", NULL};
    gw_seed("keygen_create", "POST", "/api/v1/keygen", NULL,
            "{\"keygen_id\":\"" UUID_A "\",\"session_auth_key\":\"" HEX32 "\",\"timeout_secs\":3600,"
            "\"max_signing_sessions\":10,\"participants\":[{\"user_id\":\"" UUID_A "\",\"enclave_id\":1},"
            "{\"user_id\":\"" UUID_B
            "\",\"enclave_id\":2}],\"enclave_inits\":[{\"enclave_id\":1,\"blob\":\"0102\"},"
            "{\"enclave_id\":2,\"blob\":\"0304\"}]}");
    gw_seed("keygen_create_dup_enclave", "POST", "/api/v1/keygen", NULL,
            "{\"keygen_id\":\"" UUID_A "\",\"session_auth_key\":\"" HEX32 "\",\"timeout_secs\":1,"
            "\"participants\":[{\"user_id\":\"" UUID_A "\",\"enclave_id\":1}],"
            "\"enclave_inits\":[{\"enclave_id\":1,\"blob\":\"01\"},{\"enclave_id\":1,\"blob\":\"02\"}]}");
    gw_seed("keygen_register", "POST", "/api/v1/keygen/{keygen_id}/participants", one,
            "{\"user_id\":\"" UUID_B "\",\"blob\":\"00ff\",\"auth_key\":\"" HEX32
            "\",\"require_approval\":true}");
    gw_seed("keygen_get", "GET", "/api/v1/keygen/{keygen_id}", one, "");
    gw_seed("signing_get", "GET", "/api/v1/signing/{signing_id}", one, "");
    gw_seed("single_get", "GET", "/api/v1/sign/single/{request_id}", one, "");
    gw_seed("keygen_delete", "DELETE", "/api/v1/keygen/{keygen_id}", one, "");
    gw_seed("keygen_slots_bad_path", "GET", "/api/v1/keygen/{keygen_id}/slots", bad, "");
    gw_seed("signing_create", "POST", "/api/v1/signing", NULL,
            "{\"signing_id\":\"" UUID_B "\",\"keygen_id\":\"" UUID_A
            "\",\"items\":\"0001\",\"timeout_secs\":60}");
    gw_seed("signing_approve", "POST", "/api/v1/signing/{signing_id}/approve/{user_id}", two,
            "{\"signature\":\"" HEX64 "\"}");
    gw_seed("keys_reserve", "POST", "/api/v1/keys/reserve", NULL,
            "{\"key_id\":\"" UUID_A "\",\"user_id\":\"" UUID_B "\"}");
    gw_seed("keys_import", "POST", "/api/v1/keys/import", NULL,
            "{\"key_id\":\"" UUID_A "\",\"user_id\":\"" UUID_B "\",\"enclave_id\":3,\"blob\":\"abcd\","
            "\"auth_key\":\"" HEX32 "\"}");
    gw_seed("keys_list", "GET", "/api/v1/keys/{user_id}", one, "");
    gw_seed("keys_get", "GET", "/api/v1/keys/{user_id}/{key_id}", two, "");
    gw_seed("keys_delete", "DELETE", "/api/v1/keys/{user_id}/{key_id}", two,
            "{\"timestamp\":1700000000,\"signature\":\"" HEX64 "\"}");
    gw_seed("keys_from_keygen", "POST", "/api/v1/keys/{user_id}/keygen/{keygen_id}", two,
            "{\"key_id\":\"" UUID_A "\",\"blob\":\"ff\"}");
    gw_seed("single_sign", "POST", "/api/v1/sign/single", NULL,
            "{\"request_id\":\"" UUID_A "\",\"key_id\":\"" UUID_B "\",\"user_id\":\"" UUID_A
            "\",\"blob\":\"01\","
            "\"approval_signature\":\"" HEX64 "\",\"timeout_secs\":30}");
    gw_seed("invalid_json", "POST", "/api/v1/signing", NULL, "{\"signing_id\": ");
    gw_seed("uppercase_hex", "POST", "/api/v1/keys/reserve", NULL,
            "{\"key_id\":\"01890A5D-AC96-774B-BCCE-B302099A8057\",\"user_id\":\"" UUID_B "\"}");
    gw_seed("real_number", "POST", "/api/v1/signing", NULL,
            "{\"signing_id\":\"" UUID_B "\",\"keygen_id\":\"" UUID_A
            "\",\"items\":\"00\",\"timeout_secs\":1.5}");
}

/* ---- signed requests ------------------------------------------------------------------ */

static void auth_seed(const char *name, uint8_t absent, const char *method, const char *target,
                      const char *body, int corrupt) {
    km_ctx *ctx = fz_ctx();
    km_reqauth_req r;
    memset(&r, 0, sizeof r);
    r.method = method;
    r.method_len = strlen(method);
    r.target = target;
    r.target_len = strlen(target);
    r.body = (const unsigned char *)body;
    r.body_len = strlen(body);
    r.timestamp = (uint64_t)time(NULL);
    CHECK(km_random_bytes(r.nonce, sizeof r.nonce));
    secp256k1_keypair kp;
    if (!secp256k1_keypair_create(km_ctx_secp(ctx), &kp, FZ_GATEWAY_SK)) die("keypair");
    unsigned char sig[64];
    CHECK(km_reqauth_sign(ctx, &kp, &r, sig));
    if (corrupt) sig[5] ^= 1;
    char key[65], ts[24], nonce[33], sighex[129];
    unsigned char x[32];
    xonly(FZ_GATEWAY_SK, x);
    CHECK(km_hex_encode(key, sizeof key, x, 32));
    snprintf(ts, sizeof ts, "%llu", (unsigned long long)r.timestamp);
    CHECK(km_hex_encode(nonce, sizeof nonce, r.nonce, 16));
    CHECK(km_hex_encode(sighex, sizeof sighex, sig, 64));
    km_buf b;
    km_buf_init(&b);
    CHECK(km_buf_put_u8(&b, absent));
    piece_str(&b, key);
    piece_str(&b, ts);
    piece_str(&b, nonce);
    piece_str(&b, sighex);
    piece_str(&b, method);
    piece_str(&b, target);
    CHECK(km_buf_put(&b, body, strlen(body)));
    put_buf("fuzz_reqauth", name, &b);
    km_buf_free(&b);
}

static void seeds_reqauth(void) {
    auth_seed("post_signed", 0, "POST", "/api/v1/keygen", "{\"a\":1}", 0);
    auth_seed("get_query_signed", 0, "GET", "/api/v1/signing/" UUID_A "?wait=30", "", 0);
    auth_seed("bad_signature", 0, "DELETE", "/api/v1/keys/" UUID_A "/" UUID_B, "{}", 1);
    auth_seed("missing_nonce", 1u << 2, "POST", "/api/v1/sign/single", "", 0);
}

/* ---- the client SDK against a fake gateway (fuzz_sdk) ------------------------- */

/* Answers that follow honest exchanges, for the scenarios of fuzz/fuzz_sdk.c
 * (its SC_* order): attestation documents issued by the fixed development CA
 * for the SDK's predictable nonce at the fake time, keygen and signing
 * results sealed under the session secret the SDK uses (FZ_SESSION_SECRET
 * for the imported session, FZ_SDK_RANDOM bytes for a coordinator's) with
 * real MuSig2 signatures, and single-key results sealed under the response
 * key the SDK makes. Variants add 429/5xx retries, error objects, failures,
 * tampered, truncated and non-JSON bodies. */
enum {
    SDK_VERIFY_ALL,
    SDK_COORDINATOR,
    SDK_IMPORTED,
    SDK_IMPORTED_NO_WAIT,
    SDK_SINGLE_KEY,
    SDK_APPROVE,
    SDK_SESSION_JSON
};

/* Forgeries a party that knows the session secret could seal (the SDK must
 * refuse both): another key for participant 1 in the keygen result (the
 * aggregate recomputes), or item 0 signed over another message. */
enum { SDK_HONEST, SDK_EVIL_KEY, SDK_EVIL_SIG };
static int sdk_evil;
/* Seeds of the rich variant (FZ_SDK_RICH): subset and adaptor items. */
static int sdk_rich;

static void sdk_hex(char *out, size_t cap, const unsigned char *p, size_t n) {
    CHECK(km_hex_encode(out, cap, p, n));
}

static void sdk_put_json(km_buf *in, uint8_t kind, json_t *o) {
    if (!o) die("json");
    char *t = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!t) die("json_dumps");
    fz_sdk_answer(in, kind, t, strlen(t));
    free(t);
    json_decref(o);
}

static json_t *sdk_hexj(const unsigned char *p, size_t n) {
    char *h = malloc(2 * n + 1);
    if (!h) die("out of memory");
    sdk_hex(h, 2 * n + 1, p, n);
    json_t *j = json_string(h);
    free(h);
    return j;
}

static json_t *sdk_uuidj(const km_uuid *u) {
    char t[37];
    km_uuid_format(t, u);
    return json_string(t);
}

static void sdk_error(km_buf *in, uint8_t kind, const char *code, const char *msg) {
    sdk_put_json(in, kind, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

/* GET /enclaves/1?nonce=...: a document for the SDK's nonce at the fake time. */
static void sdk_attest(km_buf *in) {
    unsigned char pub[33], nonce[32];
    fz_pub33(FZ_ENCLAVE_SK, pub);
    fill(nonce, FZ_SDK_RANDOM, sizeof nonce);
    km_attest_pcr pcr;
    memset(&pcr, 0, sizeof pcr);
    pcr.index = 0;
    pcr.len = sizeof FZ_SDK_PCR0;
    memcpy(pcr.value, FZ_SDK_PCR0, sizeof FZ_SDK_PCR0);
    km_attest_dev_params p = {.leaf_key_pem = (const unsigned char *)FZ_DEV_LEAF_KEY_PEM,
                              .leaf_key_pem_len = strlen(FZ_DEV_LEAF_KEY_PEM),
                              .leaf_cert = (const unsigned char *)FZ_DEV_LEAF_PEM,
                              .leaf_cert_len = strlen(FZ_DEV_LEAF_PEM),
                              .root_cert = (const unsigned char *)FZ_DEV_ROOT_PEM,
                              .root_cert_len = strlen(FZ_DEV_ROOT_PEM),
                              .module_id = "fuzz-sdk-enclave",
                              .timestamp_ms = FZ_SDK_NOW * 1000u,
                              .pcrs = &pcr,
                              .pcr_count = 1,
                              .public_key = pub,
                              .public_key_len = sizeof pub,
                              .nonce = nonce,
                              .nonce_len = sizeof nonce};
    km_buf doc;
    km_buf_init(&doc);
    CHECK(km_attest_dev_issue(&p, &doc));
    sdk_put_json(in, FZ_A_200,
                 json_pack("{s:i,s:o,s:o,s:s}", "enclave_id", (int)FZ_SDK_ENCLAVE, "public_key",
                           sdk_hexj(pub, 33), "attestation_document", sdk_hexj(doc.data, doc.len), "status",
                           "up"));
    km_buf_free(&doc);
}

static void sdk_pubs(unsigned char pubs[FZ_SDK_N][33], int evil) {
    for (size_t i = 0; i < FZ_SDK_N; i++) {
        unsigned char sk[32];
        fz_sdk_user_sk(i, sk);
        if (evil && i == 1) fill(sk, 0x69, 32);
        fz_pub33(sk, pubs[i]);
    }
}

/* KeyAgg + tweak of the participants members[0..n) (members NULL: all). */
static void sdk_keyagg(const km_tweak *tw, const uint16_t *members, size_t n, int evil, km_musig_keyagg *ka) {
    unsigned char all[FZ_SDK_N][33], pubs[FZ_SDK_N][33];
    sdk_pubs(all, evil);
    if (!members) n = FZ_SDK_N;
    for (size_t i = 0; i < n; i++)
        memcpy(pubs[i], all[members ? members[i] : i], 33);
    CHECK(km_musig_key_agg(fz_ctx(), ka, &pubs[0][0], n, NULL));
    CHECK(km_musig_keyagg_tweak(fz_ctx(), ka, tw));
}

static void sdk_seal(const unsigned char secret[32], const char *purpose, const km_uuid *id, const km_buf *pt,
                     km_buf *sealed) {
    km_session *sess = NULL;
    km_ad ad;
    CHECK(km_session_derive(fz_ctx(), secret, &sess));
    CHECK(km_ad_build(&ad, purpose, id, NULL, 0));
    CHECK(km_session_seal(sess, ad.bytes, ad.len, pt->data, pt->len, sealed));
    km_session_free(sess);
}

/* The sealed keygen result of the fixed participants under a bip86 tweak. */
static void sdk_keygen_result(const unsigned char secret[32], const km_uuid *kid, km_buf *sealed) {
    km_tweak tw;
    km_tweak_bip86(&tw);
    int evil = sdk_evil == SDK_EVIL_KEY;
    unsigned char pubs[FZ_SDK_N][33];
    sdk_pubs(pubs, evil);
    km_musig_keyagg ka;
    sdk_keyagg(&tw, NULL, 0, evil, &ka);
    km_buf pt;
    km_buf_init(&pt);
    CHECK(km_buf_put(&pt, ka.agg_xonly, 32));
    CHECK(km_buf_put(&pt, ka.output_xonly, 32));
    CHECK(km_buf_put_u8(&pt, (uint8_t)ka.output_parity));
    CHECK(km_buf_put_u8(&pt, (uint8_t)tw.mode));
    CHECK(km_buf_put(&pt, tw.data, 32));
    CHECK(km_buf_put_u16(&pt, FZ_SDK_N));
    CHECK(km_buf_put(&pt, pubs, sizeof pubs));
    CHECK(km_buf_put_u16(&pt, sdk_rich ? 1 : 0));
    if (sdk_rich) {
        km_uuid sub;
        fz_sdk_uuid(FZ_SDK_TAG_SUBSET, &sub);
        sdk_keyagg(&tw, FZ_SDK_SUBSET_MEMBERS, 1, evil, &ka);
        CHECK(km_buf_put(&pt, sub.b, 16));
        CHECK(km_buf_put(&pt, ka.agg_xonly, 32));
        CHECK(km_buf_put(&pt, ka.output_xonly, 32));
    }
    sdk_seal(secret, KM_AD_KEYGEN_RESULT, kid, &pt, sealed);
    km_buf_free(&pt);
}

static void sdk_keygen_answer(km_buf *in, const unsigned char secret[32], const km_uuid *kid, int tamper) {
    km_buf sealed;
    km_buf_init(&sealed);
    sdk_keygen_result(secret, kid, &sealed);
    if (tamper) sealed.data[sealed.len / 2] ^= 1;
    sdk_put_json(in, FZ_A_200,
                 json_pack("{s:o,s:s,s:n,s:i,s:i,s:i,s:i,s:o}", "keygen_id", sdk_uuidj(kid), "status",
                           "completed", "reason", "created_at", 1799999990, "expires_at", 0,
                           "participants_expected", FZ_SDK_N, "participants_registered", FZ_SDK_N, "result",
                           sdk_hexj(sealed.data, sealed.len)));
    km_buf_free(&sealed);
}

/* A real MuSig2 signature of the participants members[0..n) (NULL: all)
 * over msg; with T (not NULL) a pre-signature for that adaptor point. */
static void sdk_musig(const km_tweak *tw, const uint16_t *members, size_t n, const unsigned char *T,
                      const unsigned char msg[32], unsigned char sig[64]) {
    km_musig_keyagg ka;
    sdk_keyagg(tw, members, n, 0, &ka);
    if (!members) n = FZ_SDK_N;
    unsigned char all[FZ_SDK_N][33], pn[FZ_SDK_N][66], agg[66], ps[FZ_SDK_N][32], sk[32];
    km_secret *sn[FZ_SDK_N];
    sdk_pubs(all, 0);
    for (size_t i = 0; i < n; i++) {
        size_t who = members ? members[i] : i;
        fz_sdk_user_sk(who, sk);
        CHECK(km_musig_nonce_gen(fz_ctx(), &sn[i], pn[i], sk, all[who], msg, &ka, NULL));
    }
    CHECK(km_musig_nonce_agg(fz_ctx(), agg, &pn[0][0], n, NULL));
    if (T) CHECK(km_adaptor_fold_aggnonce(fz_ctx(), agg, agg, T));
    km_musig_session ms;
    CHECK(km_musig_session_init(fz_ctx(), &ms, agg, msg, &ka));
    for (size_t i = 0; i < n; i++) {
        fz_sdk_user_sk(members ? members[i] : i, sk);
        CHECK(km_musig_partial_sign(fz_ctx(), ps[i], sn[i], sk, &ms));
        km_secret_free(sn[i]);
    }
    CHECK(km_musig_partial_agg(fz_ctx(), sig, &ms, &ps[0][0], n, NULL));
    if (T)
        CHECK(km_adaptor_presig_verify(fz_ctx(), sig, T, ka.output_xonly, msg));
    else
        CHECK(km_musig_verify_final(fz_ctx(), sig, msg, &ka));
}

/* A signing answer (status 200 or 201) of the fixed batch, completed. */
static void sdk_sign_answer(km_buf *in, uint8_t kind, const unsigned char secret[32], const km_uuid *kid,
                            int tamper) {
    km_sign_item items[FZ_SDK_MAX_ITEMS];
    size_t n = fz_sdk_items(items, sdk_rich);
    km_tweak bip86;
    km_tweak_bip86(&bip86);
    km_buf pt, sealed;
    km_buf_init(&pt);
    km_buf_init(&sealed);
    CHECK(km_buf_put_u32(&pt, (uint32_t)n));
    for (size_t j = 0; j < n; j++) {
        const km_sign_item *it = &items[j];
        unsigned units = km_sign_item_units(it);
        unsigned char msg[32];
        memcpy(msg, it->msg, 32);
        if (sdk_evil == SDK_EVIL_SIG && j == 0) msg[0] ^= 1;
        CHECK(km_buf_put(&pt, it->id.b, 16));
        CHECK(km_buf_put_u8(&pt, (uint8_t)it->adaptor));
        CHECK(km_buf_put_u16(&pt, (uint16_t)units));
        for (unsigned v = 0; v < units; v++) {
            unsigned char sig[64], T[33] = {0};
            if (it->adaptor == KM_ADAPTOR_AND) {
                const unsigned char *pts[2] = {it->points[0], it->points[1]};
                CHECK(km_adaptor_point_sum(fz_ctx(), T, pts, 2));
            } else if (it->adaptor != KM_ADAPTOR_NONE) {
                memcpy(T, it->points[it->adaptor == KM_ADAPTOR_OR ? v : 0], 33);
            }
            sdk_musig(it->own_tweak ? &it->tweak : &bip86, it->has_subset ? FZ_SDK_SUBSET_MEMBERS : NULL, 1,
                      it->adaptor == KM_ADAPTOR_NONE ? NULL : T, msg, sig);
            CHECK(km_buf_put(&pt, sig, 64));
            CHECK(km_buf_put(&pt, T, 33));
        }
    }
    km_uuid sid;
    fz_sdk_uuid(FZ_SDK_TAG_SIGNING, &sid);
    sdk_seal(secret, KM_AD_SIGNING_RESULT, &sid, &pt, &sealed);
    if (tamper) sealed.data[sealed.len - 1] ^= 1;
    sdk_put_json(in, kind,
                 json_pack("{s:o,s:o,s:s,s:n,s:i,s:i,s:[],s:[],s:o}", "signing_id", sdk_uuidj(&sid),
                           "keygen_id", sdk_uuidj(kid), "status", "completed", "reason", "created_at",
                           1799999995, "expires_at", 0, "approvals_required", "approvals_received", "result",
                           sdk_hexj(sealed.data, sealed.len)));
    km_buf_free(&pt);
    km_buf_free(&sealed);
}

static void sdk_status(km_buf *in, uint8_t kind, const char *idname, const km_uuid *id, const char *status,
                       const char *reason) {
    sdk_put_json(in, kind,
                 json_pack("{s:o,s:s,s:s?,s:i,s:i,s:n}", idname, sdk_uuidj(id), "status", status, "reason",
                           reason, "created_at", 1799999990, "expires_at", 1800000600, "result"));
}

static void sdk_seed(const char *name, uint8_t scenario, const km_buf *answers) {
    km_buf in;
    km_buf_init(&in);
    CHECK(km_buf_put_u8(&in, scenario));
    if (answers->len) CHECK(km_buf_put(&in, answers->data, answers->len));
    put_buf("fuzz_sdk", name, &in);
    km_buf_free(&in);
}

/* The whole coordinator flow; variant 1 adds retries and a pending poll. */
static void sdk_coordinator(km_buf *in, int variant) {
    unsigned char secret[32];
    fill(secret, FZ_SDK_RANDOM, 32);
    km_uuid kid, uid;
    fz_sdk_uuid_v7(FZ_SDK_NOW * 1000u, &kid);
    sdk_attest(in);
    if (variant) {
        sdk_error(in, FZ_A_429, "rate_limited", "request rate used up");
        sdk_error(in, FZ_A_503, "enclave_unavailable", "enclave 1 is down");
        fz_sdk_answer(in, FZ_A_IO, "", 0);
    }
    sdk_status(in, FZ_A_201, "keygen_id", &kid, "collecting", NULL);
    for (size_t i = 0; i < FZ_SDK_N; i++) {
        fz_sdk_uuid((uint8_t)(FZ_SDK_TAG_USER + i), &uid);
        sdk_put_json(in, FZ_A_201,
                     json_pack("{s:o,s:o,s:i}", "keygen_id", sdk_uuidj(&kid), "user_id", sdk_uuidj(&uid),
                               "enclave_id", (int)FZ_SDK_ENCLAVE));
    }
    if (variant) {
        sdk_error(in, FZ_A_500, "internal", "oops");
        sdk_status(in, FZ_A_200, "keygen_id", &kid, "collecting", NULL);
    }
    sdk_keygen_answer(in, secret, &kid, 0);
    sdk_sign_answer(in, FZ_A_201, secret, &kid, 0);
}

/* The imported session's flow (join, wait, create, wait). */
static void sdk_imported(km_buf *in, int variant) {
    km_uuid kid, uid, sid;
    fz_sdk_uuid(FZ_SDK_TAG_KEYGEN, &kid);
    fz_sdk_uuid(FZ_SDK_TAG_SIGNING, &sid);
    sdk_attest(in);
    for (size_t i = 0; i < FZ_SDK_N; i++) {
        fz_sdk_uuid((uint8_t)(FZ_SDK_TAG_USER + i), &uid);
        sdk_put_json(in, FZ_A_201,
                     json_pack("{s:o,s:o,s:i}", "keygen_id", sdk_uuidj(&kid), "user_id", sdk_uuidj(&uid),
                               "enclave_id", (int)FZ_SDK_ENCLAVE));
    }
    sdk_keygen_answer(in, FZ_SESSION_SECRET, &kid, variant == 2);
    sdk_status(in, FZ_A_201, "signing_id", &sid, "collecting_nonces", NULL);
    if (variant == 1)
        sdk_status(in, FZ_A_200, "signing_id", &sid, "failed", "sign_finalize: invalid partial signature");
    sdk_sign_answer(in, FZ_A_200, FZ_SESSION_SECRET, &kid, variant == 3);
}

/* A completed single-key answer: the signature sealed under the SDK's
 * response key for the request id it makes at the fake time. */
static void sdk_key_result(km_buf *in, int algo) {
    km_uuid kid, rid;
    fz_sdk_uuid(FZ_SDK_TAG_KEY, &kid);
    fz_sdk_uuid_v7(FZ_SDK_NOW * 1000u, &rid);
    unsigned char sk[32], rk[32], sig[64];
    fz_sdk_user_sk(4, sk);
    fill(rk, FZ_SDK_RANDOM, 32);
    if (algo == KM_KEY_ALGO_SCHNORR)
        CHECK(km_single_schnorr_sign(fz_ctx(), sig, FZ_SDK_MSG, sizeof FZ_SDK_MSG, sk));
    else
        CHECK(km_single_ecdsa_sign(fz_ctx(), sig, FZ_SDK_MSG, sk));
    km_buf sealed;
    km_buf_init(&sealed);
    CHECK(km_key_sign_result_seal(fz_ctx(), rk, &kid, &rid, (uint8_t)algo, sig, &sealed));
    sdk_status(in, FZ_A_202, "request_id", &rid, "pending", NULL);
    sdk_put_json(in, FZ_A_200,
                 json_pack("{s:o,s:o,s:s,s:n,s:i,s:i,s:o}", "request_id", sdk_uuidj(&rid), "key_id",
                           sdk_uuidj(&kid), "status", "completed", "reason", "created_at", 1800000000,
                           "expires_at", 0, "result", sdk_hexj(sealed.data, sealed.len)));
    km_buf_free(&sealed);
}

static void sdk_single_key(km_buf *in, int variant) {
    km_uuid kid, uid;
    fz_sdk_uuid(FZ_SDK_TAG_KEY, &kid);
    fz_sdk_uuid(FZ_SDK_TAG_KEYUSER, &uid);
    unsigned char pub[33], ak[32], ax[32];
    fz_pub33(FZ_ENCLAVE_SK, pub);
    fz_sdk_auth_sk(4, ak);
    xonly(ak, ax);
    sdk_attest(in);
    sdk_put_json(in, FZ_A_200,
                 json_pack("{s:o,s:o,s:i,s:o}", "key_id", sdk_uuidj(&kid), "user_id", sdk_uuidj(&uid),
                           "enclave_id", (int)FZ_SDK_ENCLAVE, "enclave_public_key", sdk_hexj(pub, 33)));
    if (variant) sdk_error(in, FZ_A_409, "conflict", "key id already used");
    sdk_put_json(in, FZ_A_201,
                 json_pack("{s:o,s:o,s:i,s:i,s:o,s:s,s:n}", "key_id", sdk_uuidj(&kid), "user_id",
                           sdk_uuidj(&uid), "enclave_id", (int)FZ_SDK_ENCLAVE, "created_at", 1800000000,
                           "auth_key", sdk_hexj(ax, 32), "status", "active", "origin_keygen_id"));
    for (int algo = KM_KEY_ALGO_SCHNORR; algo <= KM_KEY_ALGO_ECDSA; algo++) {
        sdk_put_json(in, FZ_A_200,
                     json_pack("{s:o,s:o,s:i,s:s}", "key_id", sdk_uuidj(&kid), "user_id", sdk_uuidj(&uid),
                               "enclave_id", (int)FZ_SDK_ENCLAVE, "status", "active"));
        sdk_key_result(in, algo);
    }
    sdk_put_json(in, FZ_A_200, json_pack("{s:o,s:s}", "key_id", sdk_uuidj(&kid), "status", "deleted"));
}

static void seeds_sdk(void) {
    km_buf in;
    km_buf_init(&in);
    unsigned char pub[33];
    fz_pub33(FZ_ENCLAVE_SK, pub);
    km_uuid kid;
    fz_sdk_uuid(FZ_SDK_TAG_KEYGEN, &kid);

    sdk_put_json(&in, FZ_A_200,
                 json_pack("{s:[{s:i,s:o,s:s}]}", "enclaves", "enclave_id", (int)FZ_SDK_ENCLAVE, "public_key",
                           sdk_hexj(pub, 33), "status", "up"));
    sdk_attest(&in);
    sdk_seed("verify_all", SDK_VERIFY_ALL, &in);
    in.len = 0;
    sdk_put_json(&in, FZ_A_200,
                 json_pack("{s:[{s:i},{s:i},{s:s}]}", "enclaves", "enclave_id", 1, "enclave_id", 2,
                           "enclave_id", "three"));
    sdk_error(&in, FZ_A_404, "not_found", "no such enclave");
    sdk_seed("verify_all_bad_list", SDK_VERIFY_ALL, &in);

    for (int v = 0; v < 2; v++) {
        in.len = 0;
        sdk_coordinator(&in, v);
        sdk_seed(v ? "coordinator_retries" : "coordinator", SDK_COORDINATOR, &in);
    }
    static const char *const imported[] = {"imported", "imported_failed_first", "imported_tampered_keygen",
                                           "imported_tampered_sign"};
    for (int v = 0; v < 4; v++) {
        in.len = 0;
        sdk_imported(&in, v);
        sdk_seed(imported[v], SDK_IMPORTED, &in);
    }
    sdk_evil = SDK_EVIL_KEY;
    in.len = 0;
    sdk_imported(&in, 0);
    sdk_seed("imported_substituted_key", SDK_IMPORTED, &in);
    sdk_evil = SDK_EVIL_SIG;
    in.len = 0;
    sdk_imported(&in, 0);
    sdk_seed("imported_wrong_signature", SDK_IMPORTED, &in);
    sdk_evil = SDK_HONEST;
    /* The rich session and batch: subset and adaptors. */
    sdk_rich = 1;
    in.len = 0;
    sdk_coordinator(&in, 0);
    sdk_seed("rich_coordinator", SDK_COORDINATOR | FZ_SDK_RICH, &in);
    in.len = 0;
    sdk_imported(&in, 0);
    sdk_seed("rich_imported", SDK_IMPORTED | FZ_SDK_RICH, &in);
    sdk_rich = 0;

    /* Session invitations: the fixed ones, and refused spellings. */
    for (int rich = 0; rich < 2; rich++) {
        char *json = fz_sdk_session_json(rich);
        in.len = 0;
        CHECK(km_buf_put(&in, json, strlen(json)));
        sdk_seed(rich ? "session_rich" : "session", SDK_SESSION_JSON, &in);
        free(json);
    }
    static const char *const bad_sessions[] = {
        "{\"version\":1,\"session_secret\":\"00\",\"session_secret\":\"11\"}",
        "{\"a\":{\"session_secret\":\""
        "0000000000000000000000000000000000000000000000000000000000000000"
        "\"}}",
        "{\"session_secret\" : "
        "\"zz00000000000000000000000000000000000000000000000000000000000000\",\"x\":[]}",
        "{\"version\":1,\"keygen_id\":\"0\",\"participants\":[],\"tweak\":{},\"subsets\":[],"
        "\"gateway_url\":\"ftp://"
        "x\",\"session_secret\":\"1111111111111111111111111111111111111111111111111111111111111111\"}",
    };
    for (size_t i = 0; i < sizeof bad_sessions / sizeof *bad_sessions; i++) {
        char name[32];
        snprintf(name, sizeof name, "session_bad_%zu", i);
        in.len = 0;
        CHECK(km_buf_put(&in, bad_sessions[i], strlen(bad_sessions[i])));
        sdk_seed(name, SDK_SESSION_JSON, &in);
    }
    in.len = 0;
    sdk_sign_answer(&in, FZ_A_201, FZ_SESSION_SECRET, &kid, 0);
    sdk_keygen_answer(&in, FZ_SESSION_SECRET, &kid, 0);
    sdk_seed("imported_no_wait", SDK_IMPORTED_NO_WAIT, &in);
    for (int v = 0; v < 2; v++) {
        in.len = 0;
        sdk_single_key(&in, v);
        sdk_seed(v ? "single_key_conflict" : "single_key", SDK_SINGLE_KEY, &in);
    }
    in.len = 0;
    km_uuid sid;
    fz_sdk_uuid(FZ_SDK_TAG_SIGNING, &sid);
    sdk_put_json(&in, FZ_A_200, json_pack("{s:b}", "approved", 1));
    sdk_status(&in, FZ_A_201, "signing_id", &sid, "collecting_approvals", NULL);
    sdk_sign_answer(&in, FZ_A_200, FZ_SESSION_SECRET, &kid, 0);
    sdk_keygen_answer(&in, FZ_SESSION_SECRET, &kid, 0);
    sdk_seed("approve", SDK_APPROVE, &in);
    in.len = 0;
    sdk_error(&in, FZ_A_422, "invalid_approval", "the enclave refused the approval");
    sdk_error(&in, FZ_A_404, "not_found", "no such signing session");
    sdk_seed("approve_refused", SDK_APPROVE, &in);

    /* Broken bodies where a completed answer is expected. */
    static const char truncated[] = "{\"keygen_id\":\"0\",\"status\":\"completed\",\"result\":\"01c9";
    in.len = 0;
    fz_sdk_answer(&in, FZ_A_200, truncated, sizeof truncated - 1);
    fz_sdk_answer(&in, FZ_A_200 | FZ_SDK_NOT_JSON, "{\"status\":\"completed\"}", 22);
    fz_sdk_answer(&in, FZ_A_200, "{\"status\":\"completed\",\"status\":\"failed\"}", 41);
    fz_sdk_answer(&in, FZ_A_200, "[\"completed\"]", 13);
    fz_sdk_answer(&in, FZ_A_200, "\xff\xfe garbage", 10);
    fz_sdk_answer(&in, FZ_A_200, "{\"status\":\"completed\",\"result\":\"0\"}", 36);
    fz_sdk_answer(&in, FZ_A_TOO_BIG, "", 0);
    fz_sdk_answer(&in, FZ_A_TIMEOUT, "", 0);
    fz_sdk_answer(&in, FZ_A_599, "", 0);
    sdk_seed("broken_bodies", SDK_IMPORTED_NO_WAIT, &in);
    in.len = 0;
    sdk_status(&in, FZ_A_201, "signing_id", &kid, "failed", "sign_finalize: invalid partial signature");
    sdk_status(&in, FZ_A_200, "keygen_id", &kid, "failed", NULL);
    sdk_seed("failed", SDK_IMPORTED_NO_WAIT, &in);
    km_buf_free(&in);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    seeds_hex_uuid();
    seeds_tx();
    seeds_enclave_and_codecs();
    seeds_crypto();
    seeds_channel();
    seeds_config();
    seeds_attestation();
    seeds_gateway();
    seeds_reqauth();
    seeds_sdk();
    return 0;
}
