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
#include "keymeld/aead.h"
#include "keymeld/channel.h"
#include "keymeld/ecies.h"
#include "keymeld/hex.h"
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

static void seeds_crypto(void) {
    km_ctx *ctx = fz_ctx();
    unsigned char epub[33];
    fz_pub33(FZ_ENCLAVE_SK, epub);
    km_uuid id;
    fill(id.b, 0x4b, 16);
    km_ad ad;
    CHECK(km_ad_build(&ad, KM_AD_REGISTER, &id, "0123456789abcdef", 16));
    static const size_t lens[] = {1, 32, 98, 300};
    km_buf blob, in;
    km_buf_init(&blob);
    km_buf_init(&in);
    unsigned char pt[300];
    fill(pt, 0x70, sizeof pt);
    for (size_t i = 0; i < 4; i++) {
        CHECK(km_ecies_seal(ctx, epub, ad.bytes, ad.len, pt, lens[i], &blob));
        for (uint8_t mode = 0; mode < 3; mode++) {
            in.len = 0;
            CHECK(km_buf_put_u8(&in, mode));
            CHECK(km_buf_put_u8(&in, (uint8_t)ad.len));
            CHECK(km_buf_put(&in, ad.bytes, ad.len));
            CHECK(km_buf_put(&in, blob.data, blob.len));
            char name[32];
            snprintf(name, sizeof name, "pt%zu_mode%u", lens[i], mode);
            put_buf("fuzz_ecies", name, &in);
        }
    }
    in.len = 0;
    CHECK(km_buf_put_u8(&in, 0));
    CHECK(km_buf_put_u8(&in, 0));
    CHECK(km_buf_put(&in, blob.data, blob.len));
    put_buf("fuzz_ecies", "no_ad", &in);

    /* Session data (mode 0 / 2) and sealed secrets (mode 1). */
    km_session *s;
    CHECK(km_session_derive(ctx, FZ_SESSION_SECRET, &s));
    for (size_t i = 0; i < 4; i++) {
        CHECK(km_session_seal(s, ad.bytes, ad.len, pt, lens[i], &blob));
        for (uint8_t mode = 0; mode < 4; mode += 2) {
            in.len = 0;
            CHECK(km_buf_put_u8(&in, mode));
            CHECK(km_buf_put_u8(&in, (uint8_t)ad.len));
            CHECK(km_buf_put(&in, ad.bytes, ad.len));
            CHECK(km_buf_put(&in, blob.data, blob.len));
            char name[32];
            snprintf(name, sizeof name, "session_pt%zu_mode%u", lens[i], mode);
            put_buf("fuzz_sealed", name, &in);
        }
    }
    km_session_free(s);
    km_sealer *sealer;
    CHECK(km_sealer_local_new(ctx, FZ_SEAL_KEY, &sealer));
    static const char *const labels[] = {"keymeld/enclave-key/v1", "x"};
    for (size_t i = 0; i < 2; i++) {
        CHECK(km_seal(sealer, labels[i], pt, i ? 1 : 32, &blob));
        in.len = 0;
        CHECK(km_buf_put_u8(&in, 1));
        CHECK(km_buf_put_u8(&in, (uint8_t)strlen(labels[i])));
        CHECK(km_buf_put(&in, labels[i], strlen(labels[i])));
        CHECK(km_buf_put(&in, blob.data, blob.len));
        char name[32];
        snprintf(name, sizeof name, "sealer%zu", i);
        put_buf("fuzz_sealed", name, &in);
    }
    km_sealer_free(sealer);
    km_buf_free(&blob);
    km_buf_free(&in);
}

/* ---- channel --------------------------------------------------------------------- */

static void seeds_channel(void) {
    km_ctx *ctx = fz_ctx();
    km_channel g, e;
    unsigned char hello[KM_CHANNEL_HELLO_LEN], reply[KM_CHANNEL_REPLY_LEN], auth[KM_CHANNEL_AUTH_LEN];
    unsigned char epub[33], gx[32];
    fz_pub33(FZ_ENCLAVE_SK, epub);
    xonly(FZ_GATEWAY_SK, gx);
    CHECK(km_channel_gateway_hello(ctx, &g, hello));
    CHECK(km_channel_enclave_reply(ctx, &e, hello, sizeof hello, FZ_ENCLAVE_SK, reply));
    CHECK(km_channel_gateway_finish(ctx, &g, reply, sizeof reply, epub, FZ_GATEWAY_SK, auth));
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
    return 0;
}
