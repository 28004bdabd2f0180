/* test_enclave_keygen.c — keygen against real keymeld-enclave processes.
 *
 * The test plays the clients (coordinator and participants) and the gateway,
 * honest and malicious: a gateway that registers its own key, forges or swaps
 * participant records, replays blobs under other ids, or is not the
 * configured gateway at all. Every attack must be refused and change nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#include "keymeld/aead.h"
#include "keymeld/ecies.h"
#include "keymeld/hash.h"
#include "keymeld/musig.h"
#include "keymeld/proto_keygen.h"
#include "keymeld/session_crypto.h"
#include "tests/enclave/harness.h"

#define N_USERS 3

typedef struct {
    km_ctx *ctx;
    km_test_enclave enc[2];
    km_enclave_conn conn[2];
    km_uuid keygen_id;
    unsigned char secret[32];
    km_uuid users[N_USERS];
    uint16_t assign[N_USERS]; /* enclave index per user */
    unsigned char seckeys[N_USERS][32], pubkeys[N_USERS][33], auth_x[N_USERS][32];
    km_buf records[N_USERS];
} world;

static world W;

static void put_vbytes(km_buf *b, const unsigned char *p, size_t n) {
    assert_int_equal(km_buf_put_u32(b, (uint32_t)n), KM_OK);
    assert_int_equal(km_buf_put(b, p, n), KM_OK);
}

/* Sends cmd with body to enclave i; returns the enclave's status and copies
 * the response body into out (if given). */
static km_err call(int i, uint16_t cmd, const km_buf *body, km_buf *out) {
    km_msg resp;
    assert_int_equal(km_enclave_conn_call(&W.conn[i], cmd, body->data, body->len, &resp), KM_OK);
    if (out) {
        km_buf_free(out);
        assert_int_equal(km_buf_put(out, resp.body, resp.body_len), KM_OK);
    }
    return (km_err)resp.code;
}

static void build_init_plaintext(km_buf *out, const unsigned char secret[32], uint16_t n_users) {
    km_keygen_init init;
    memset(&init, 0, sizeof init);
    memcpy(init.session_secret, secret, 32);
    init.n_enclaves = 2;
    unsigned char pubs[2][33];
    memcpy(pubs[0], W.enc[0].pub, 33);
    memcpy(pubs[1], W.enc[1].pub, 33);
    init.enclave_pubs = pubs;
    init.n_participants = n_users;
    init.user_ids = W.users;
    init.enclave_index = W.assign;
    uint16_t members[2] = {0, 2};
    km_subset_def sub = {.n = 2, .members = members};
    assert_int_equal(km_uuid_v7(&sub.id, 1), KM_OK);
    init.n_subsets = 1;
    init.subsets = &sub;
    km_tweak_bip86(&init.tweak);
    assert_int_equal(km_keygen_init_encode(&init, out), KM_OK);
}

/* KEYGEN_INIT body for enclave i: keygen_id | vbytes ECIES(init). */
static void init_body(int i, const km_buf *pt, const km_uuid *id, km_buf *body) {
    km_ad ad;
    km_buf blob;
    km_buf_init(&blob);
    assert_int_equal(km_ad_build(&ad, KM_AD_KEYGEN_INIT, id, W.enc[i].pub, 33), KM_OK);
    assert_int_equal(km_ecies_seal(W.ctx, W.enc[i].pub, ad.bytes, ad.len, pt->data, pt->len, &blob), KM_OK);
    km_buf_init(body);
    assert_int_equal(km_buf_put(body, id->b, 16), KM_OK);
    put_vbytes(body, blob.data, blob.len);
    km_buf_free(&blob);
}

/* KEYGEN_REGISTER body: user u's registration sealed to enclave i (AD names
 * the keygen and ad_user), announced as user `as_user`. */
static void register_body(int i, int u, const unsigned char secret[32], const unsigned char seckey[32],
                          const km_uuid *ad_user, const km_uuid *as_user, km_buf *body) {
    km_registration reg;
    memcpy(reg.session_secret, secret, 32);
    memcpy(reg.seckey, seckey, 32);
    memcpy(reg.auth_pub, W.auth_x[u], 32);
    reg.flags = 0;
    unsigned char pt[KM_REGISTRATION_LEN];
    km_registration_encode(&reg, pt);
    km_ad ad;
    km_buf blob;
    km_buf_init(&blob);
    assert_int_equal(km_ad_build(&ad, KM_AD_REGISTER, &W.keygen_id, ad_user->b, 16), KM_OK);
    assert_int_equal(km_ecies_seal(W.ctx, W.enc[i].pub, ad.bytes, ad.len, pt, sizeof pt, &blob), KM_OK);
    km_wipe(pt, sizeof pt);
    km_buf_init(body);
    assert_int_equal(km_buf_put(body, W.keygen_id.b, 16), KM_OK);
    assert_int_equal(km_buf_put(body, as_user->b, 16), KM_OK);
    put_vbytes(body, blob.data, blob.len);
    km_buf_free(&blob);
}

static void finalize_body(km_buf *body, km_buf *const *recs, int n) {
    km_buf_init(body);
    assert_int_equal(km_buf_put(body, W.keygen_id.b, 16), KM_OK);
    assert_int_equal(km_buf_put_u16(body, (uint16_t)n), KM_OK);
    for (int i = 0; i < n; i++)
        put_vbytes(body, recs[i]->data, recs[i]->len);
}

static int setup(void **state) {
    (void)state;
    memset(&W, 0, sizeof W);
    if (km_ctx_create(&W.ctx) != KM_OK) return -1;
    for (int i = 0; i < 2; i++) {
        if (km_test_enclave_start(W.ctx, &W.enc[i]) != 0) return -1;
        if (km_test_enclave_connect(W.ctx, &W.enc[i], &W.conn[i]) != KM_OK) return -1;
    }
    if (km_uuid_v7(&W.keygen_id, 1700000000000ull) || km_random_bytes(W.secret, 32)) return -1;
    for (int u = 0; u < N_USERS; u++) {
        if (km_uuid_v7(&W.users[u], 1700000000000ull + (uint64_t)u)) return -1;
        W.assign[u] = u == 2 ? 1 : 0; /* users 0,1 on enclave 0; user 2 on enclave 1 */
        unsigned char sec[32];
        km_test_keypair(W.ctx, W.seckeys[u], W.pubkeys[u], NULL);
        km_test_keypair(W.ctx, sec, NULL, W.auth_x[u]);
        km_buf_init(&W.records[u]);
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        km_enclave_conn_close(&W.conn[i]);
        km_test_enclave_destroy(&W.enc[i]);
    }
    for (int u = 0; u < N_USERS; u++)
        km_buf_free(&W.records[u]);
    km_ctx_destroy(W.ctx);
    return 0;
}

static void test_info_and_unknown_gateway(void **state) {
    (void)state;
    km_buf empty, out;
    km_buf_init(&empty);
    km_buf_init(&out);
    assert_int_equal(call(0, KM_CMD_INFO, &empty, &out), KM_OK);
    assert_int_equal(out.len, 2 + 33 + 32 + 12 + 8 + 16);
    assert_memory_equal(out.data + 2, W.enc[0].pub, 33);
    /* The boot id is random per process, never all zero in practice. */
    static const unsigned char zero16[16];
    assert_memory_not_equal(out.data + out.len - 16, zero16, 16);
    unsigned char fp[32];
    km_sha256(fp, W.enc[0].pub, 33);
    assert_memory_equal(out.data + 35, fp, 32);
    /* An unknown command and a malformed body get errors, the connection lives. */
    assert_int_equal(call(0, 0x7777, &empty, NULL), KM_ERR_UNSUPPORTED);
    assert_int_equal(km_buf_put_u8(&empty, 1), KM_OK);
    assert_int_equal(call(0, KM_CMD_INFO, &empty, NULL), KM_ERR_PARSE);
    /* A process without the gateway credential gets nothing. */
    km_enclave_conn stray;
    unsigned char sec[32], x[32];
    km_test_keypair(W.ctx, sec, NULL, x);
    km_err e = km_enclave_conn_open(&stray, W.ctx, W.enc[0].addr, W.enc[0].pub, sec);
    km_msg resp;
    if (e == KM_OK) e = km_enclave_conn_call(&stray, KM_CMD_INFO, NULL, 0, &resp);
    assert_int_not_equal(e, KM_OK);
    km_enclave_conn_close(&stray);
    /* A gateway that expects another enclave key refuses this one. */
    unsigned char other_pub[33];
    km_test_keypair(W.ctx, sec, other_pub, NULL);
    assert_int_equal(km_enclave_conn_open(&stray, W.ctx, W.enc[0].addr, other_pub, W.enc[0].gw_sec),
                     KM_ERR_VERIFY);
    km_buf_free(&empty);
    km_buf_free(&out);
}

static void test_keygen_init(void **state) {
    (void)state;
    km_buf pt, body;
    km_buf_init(&pt);
    build_init_plaintext(&pt, W.secret, N_USERS);
    for (int i = 0; i < 2; i++) {
        init_body(i, &pt, &W.keygen_id, &body);
        assert_int_equal(call(i, KM_CMD_KEYGEN_INIT, &body, NULL), KM_OK);
        assert_int_equal(call(i, KM_CMD_KEYGEN_INIT, &body, NULL), KM_OK); /* retry is fine */
        km_buf_free(&body);
    }
    /* The init of enclave 0 replayed to enclave 1 does not open there. */
    init_body(0, &pt, &W.keygen_id, &body);
    assert_int_equal(call(1, KM_CMD_KEYGEN_INIT, &body, NULL), KM_ERR_DECRYPT);
    km_buf_free(&body);
    /* A second, different init for the same keygen (another secret) is refused. */
    unsigned char other[32];
    assert_int_equal(km_random_bytes(other, 32), KM_OK);
    km_buf pt2;
    km_buf_init(&pt2);
    build_init_plaintext(&pt2, other, N_USERS);
    init_body(0, &pt2, &W.keygen_id, &body);
    assert_int_equal(call(0, KM_CMD_KEYGEN_INIT, &body, NULL), KM_ERR_DUPLICATE);
    km_buf_free(&body);
    /* Tampering with the blob. */
    init_body(0, &pt, &W.keygen_id, &body);
    body.data[body.len - 5] ^= 1;
    assert_int_equal(call(0, KM_CMD_KEYGEN_INIT, &body, NULL), KM_ERR_DECRYPT);
    km_buf_free(&body);
    km_buf_free(&pt);
    km_buf_free(&pt2);
}

static void test_keygen_register_attacks(void **state) {
    (void)state;
    km_buf body, out;
    km_buf_init(&out);
    /* The gateway does not know the session secret: its own key is refused. */
    unsigned char wrong[32], gw_sec[32], gw_pub[33];
    assert_int_equal(km_random_bytes(wrong, 32), KM_OK);
    km_test_keypair(W.ctx, gw_sec, gw_pub, NULL);
    register_body(0, 0, wrong, gw_sec, &W.users[0], &W.users[0], &body);
    assert_int_equal(call(0, KM_CMD_KEYGEN_REGISTER, &body, NULL), KM_ERR_VERIFY);
    km_buf_free(&body);
    /* A user not in the keygen. */
    km_uuid stranger;
    assert_int_equal(km_uuid_v7(&stranger, 5), KM_OK);
    register_body(0, 0, W.secret, gw_sec, &stranger, &stranger, &body);
    assert_int_equal(call(0, KM_CMD_KEYGEN_REGISTER, &body, NULL), KM_ERR_NOT_FOUND);
    km_buf_free(&body);
    /* A user assigned to the other enclave. */
    register_body(0, 2, W.secret, W.seckeys[2], &W.users[2], &W.users[2], &body);
    assert_int_equal(call(0, KM_CMD_KEYGEN_REGISTER, &body, NULL), KM_ERR_STATE);
    km_buf_free(&body);
    /* User 0's blob presented as user 1's: the associated data differs. */
    register_body(0, 0, W.secret, W.seckeys[0], &W.users[0], &W.users[1], &body);
    assert_int_equal(call(0, KM_CMD_KEYGEN_REGISTER, &body, NULL), KM_ERR_DECRYPT);
    km_buf_free(&body);
    /* Invalid secret key (zero). */
    unsigned char zero[32] = {0};
    register_body(0, 0, W.secret, zero, &W.users[0], &W.users[0], &body);
    assert_int_equal(call(0, KM_CMD_KEYGEN_REGISTER, &body, NULL), KM_ERR_INVALID_KEY);
    km_buf_free(&body);
    /* Truncated body. */
    register_body(0, 0, W.secret, W.seckeys[0], &W.users[0], &W.users[0], &body);
    body.len -= 1;
    assert_int_equal(call(0, KM_CMD_KEYGEN_REGISTER, &body, NULL), KM_ERR_PARSE);
    km_buf_free(&body);
    km_buf_free(&out);
}

static void test_keygen_register_and_finalize(void **state) {
    (void)state;
    km_buf body, out;
    km_buf_init(&out);
    for (int u = 0; u < N_USERS; u++) {
        int i = W.assign[u];
        register_body(i, u, W.secret, W.seckeys[u], &W.users[u], &W.users[u], &body);
        assert_int_equal(call(i, KM_CMD_KEYGEN_REGISTER, &body, &W.records[u]), KM_OK);
        /* Retrying the same registration returns the same record. */
        assert_int_equal(call(i, KM_CMD_KEYGEN_REGISTER, &body, &out), KM_OK);
        assert_int_equal(out.len, W.records[u].len);
        assert_memory_equal(out.data, W.records[u].data, out.len);
        km_buf_free(&body);
    }
    /* A registered key is never replaced. */
    unsigned char sec[32], pub[33];
    km_test_keypair(W.ctx, sec, pub, NULL);
    register_body(0, 0, W.secret, sec, &W.users[0], &W.users[0], &body);
    assert_int_equal(call(0, KM_CMD_KEYGEN_REGISTER, &body, NULL), KM_ERR_DUPLICATE);
    km_buf_free(&body);
    /* The gateway sees no public key in a record. */
    for (int u = 0; u < N_USERS; u++)
        for (size_t off = 0; off + 33 <= W.records[u].len; off++)
            assert_memory_not_equal(W.records[u].data + off, W.pubkeys[u], 33);

    km_buf *recs[N_USERS] = {&W.records[0], &W.records[1], &W.records[2]};
    /* Missing, duplicated and forged records are refused. */
    finalize_body(&body, recs, N_USERS - 1);
    assert_int_equal(call(0, KM_CMD_KEYGEN_FINALIZE, &body, NULL), KM_ERR_STATE);
    km_buf_free(&body);
    km_buf *dup[N_USERS] = {&W.records[0], &W.records[0], &W.records[2]};
    finalize_body(&body, dup, N_USERS);
    assert_int_equal(call(0, KM_CMD_KEYGEN_FINALIZE, &body, NULL), KM_ERR_DUPLICATE);
    km_buf_free(&body);
    /* A participant who knows the session secret forges user 2's record with
     * its own key: it cannot sign as enclave 1. */
    km_buf forged;
    km_buf_init(&forged);
    {
        km_session *s;
        assert_int_equal(km_session_derive(W.ctx, W.secret, &s), KM_OK);
        unsigned char info[KM_PARTICIPANT_INFO_LEN];
        memcpy(info, pub, 33);
        memcpy(info + 33, W.auth_x[2], 32);
        info[65] = 0;
        km_ad ad;
        km_buf sealed;
        km_buf_init(&sealed);
        assert_int_equal(km_ad_build(&ad, KM_AD_PARTICIPANT, &W.keygen_id, W.users[2].b, 16), KM_OK);
        assert_int_equal(km_session_seal(s, ad.bytes, ad.len, info, sizeof info, &sealed), KM_OK);
        assert_int_equal(km_buf_put(&forged, W.keygen_id.b, 16), KM_OK);
        assert_int_equal(km_buf_put(&forged, W.users[2].b, 16), KM_OK);
        assert_int_equal(km_buf_put_u16(&forged, 1), KM_OK);
        put_vbytes(&forged, sealed.data, sealed.len);
        unsigned char digest[32], sig[64], aux[32] = {0};
        km_tagged_hash(digest, KM_TAG_PARTICIPANT_RECORD, forged.data, forged.len);
        secp256k1_keypair kp;
        assert_true(secp256k1_keypair_create(km_ctx_secp(W.ctx), &kp, sec));
        assert_true(secp256k1_schnorrsig_sign32(km_ctx_secp(W.ctx), sig, digest, &kp, aux));
        assert_int_equal(km_buf_put(&forged, sig, 64), KM_OK);
        km_buf_free(&sealed);
        km_session_free(s);
    }
    km_buf *bad[N_USERS] = {&W.records[0], &W.records[1], &forged};
    finalize_body(&body, bad, N_USERS);
    assert_int_equal(call(0, KM_CMD_KEYGEN_FINALIZE, &body, NULL), KM_ERR_VERIFY);
    km_buf_free(&body);
    km_buf_free(&forged);
    /* A record with one bit flipped anywhere is refused. */
    for (size_t pos = 0; pos < W.records[1].len; pos += 7) {
        W.records[1].data[pos] ^= 0x10;
        finalize_body(&body, recs, N_USERS);
        assert_int_not_equal(call(0, KM_CMD_KEYGEN_FINALIZE, &body, NULL), KM_OK);
        km_buf_free(&body);
        W.records[1].data[pos] ^= 0x10;
    }

    /* The honest finalisation, on both enclaves, in different record orders. */
    km_buf res0, res1;
    km_buf_init(&res0);
    km_buf_init(&res1);
    finalize_body(&body, recs, N_USERS);
    assert_int_equal(call(0, KM_CMD_KEYGEN_FINALIZE, &body, &res0), KM_OK);
    assert_int_equal(call(0, KM_CMD_KEYGEN_FINALIZE, &body, &out), KM_OK); /* idempotent */
    assert_int_equal(out.len, res0.len);
    assert_memory_equal(out.data, res0.data, out.len);
    km_buf_free(&body);
    km_buf *rev[N_USERS] = {&W.records[2], &W.records[0], &W.records[1]};
    finalize_body(&body, rev, N_USERS);
    assert_int_equal(call(1, KM_CMD_KEYGEN_FINALIZE, &body, &res1), KM_OK);
    km_buf_free(&body);

    /* The client opens both results and recomputes the aggregate itself. */
    km_session *s;
    assert_int_equal(km_session_derive(W.ctx, W.secret, &s), KM_OK);
    km_ad ad;
    assert_int_equal(km_ad_build(&ad, KM_AD_KEYGEN_RESULT, &W.keygen_id, NULL, 0), KM_OK);
    unsigned char r0[512], r1[512];
    size_t l0, l1;
    assert_int_equal(km_session_open(s, ad.bytes, ad.len, res0.data, res0.len, r0, sizeof r0, &l0), KM_OK);
    assert_int_equal(km_session_open(s, ad.bytes, ad.len, res1.data, res1.len, r1, sizeof r1, &l1), KM_OK);
    assert_int_equal(l0, l1);
    assert_memory_equal(r0, r1, l0);
    km_musig_keyagg ka;
    size_t badi;
    km_tweak t;
    km_tweak_bip86(&t);
    assert_int_equal(km_musig_key_agg(W.ctx, &ka, &W.pubkeys[0][0], N_USERS, &badi), KM_OK);
    assert_int_equal(km_musig_keyagg_tweak(W.ctx, &ka, &t), KM_OK);
    assert_memory_equal(r0, ka.agg_xonly, 32);
    assert_memory_equal(r0 + 32, ka.output_xonly, 32);
    assert_int_equal(r0[65], KM_TWEAK_BIP86);
    assert_int_equal((r0[98] << 8) | r0[99], N_USERS);
    assert_memory_equal(r0 + 100, W.pubkeys, N_USERS * 33);
    /* Subset {0, 2}. */
    size_t off = 100 + N_USERS * 33;
    assert_int_equal((r0[off] << 8) | r0[off + 1], 1);
    unsigned char sub[2][33];
    memcpy(sub[0], W.pubkeys[0], 33);
    memcpy(sub[1], W.pubkeys[2], 33);
    km_musig_keyagg ks;
    assert_int_equal(km_musig_key_agg(W.ctx, &ks, &sub[0][0], 2, &badi), KM_OK);
    assert_int_equal(km_musig_keyagg_tweak(W.ctx, &ks, &t), KM_OK);
    assert_memory_equal(r0 + off + 2 + 16, ks.agg_xonly, 32);
    assert_memory_equal(r0 + off + 2 + 48, ks.output_xonly, 32);
    /* And registration after finalisation of a user already registered still
     * returns its record; the keygen cannot be changed any more. */
    register_body(0, 0, W.secret, sec, &W.users[0], &W.users[0], &body);
    assert_int_equal(call(0, KM_CMD_KEYGEN_REGISTER, &body, NULL), KM_ERR_DUPLICATE);
    km_buf_free(&body);
    km_session_free(s);
    km_buf_free(&res0);
    km_buf_free(&res1);
    km_buf_free(&out);
}

static void test_restart_keeps_identity_and_replay_restores(void **state) {
    (void)state;
    unsigned char pub_before[33];
    memcpy(pub_before, W.enc[1].pub, 33);
    km_enclave_conn_close(&W.conn[1]);
    assert_int_equal(km_test_enclave_stop(&W.enc[1]), 0); /* clean SIGTERM shutdown */
    assert_int_equal(km_test_enclave_restart(&W.enc[1]), 0);
    assert_memory_equal(W.enc[1].pub, pub_before, 33); /* same sealed identity */
    assert_int_equal(km_test_enclave_connect(W.ctx, &W.enc[1], &W.conn[1]), KM_OK);
    /* State was in memory only: the gateway replays what it stored. */
    km_buf body, pt, out;
    km_buf_init(&out);
    km_buf *recs[N_USERS] = {&W.records[0], &W.records[1], &W.records[2]};
    finalize_body(&body, recs, N_USERS);
    assert_int_equal(call(1, KM_CMD_KEYGEN_FINALIZE, &body, NULL), KM_ERR_NOT_FOUND);
    km_buf_free(&body);
    km_buf_init(&pt);
    build_init_plaintext(&pt, W.secret, N_USERS);
    init_body(1, &pt, &W.keygen_id, &body);
    assert_int_equal(call(1, KM_CMD_KEYGEN_INIT, &body, NULL), KM_OK);
    km_buf_free(&body);
    km_buf_free(&pt);
    /* The participant record issued before the restart still verifies: the
     * enclave key is the same. (The re-registration issues a new sealing.) */
    register_body(1, 2, W.secret, W.seckeys[2], &W.users[2], &W.users[2], &body);
    assert_int_equal(call(1, KM_CMD_KEYGEN_REGISTER, &body, NULL), KM_OK);
    km_buf_free(&body);
    finalize_body(&body, recs, N_USERS);
    assert_int_equal(call(1, KM_CMD_KEYGEN_FINALIZE, &body, &out), KM_OK);
    km_buf_free(&body);
    km_buf_free(&out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info_and_unknown_gateway),
        cmocka_unit_test(test_keygen_init),
        cmocka_unit_test(test_keygen_register_attacks),
        cmocka_unit_test(test_keygen_register_and_finalize),
        cmocka_unit_test(test_restart_keeps_identity_and_replay_restores),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
