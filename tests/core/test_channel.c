/* test_channel.c — the gateway <-> enclave handshake and records, including
 * the attacker's side: impostor enclaves, unknown gateways, tampered
 * handshakes, replayed / reordered / reflected records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <secp256k1_extrakeys.h>

#include "keymeld/aead.h"
#include "keymeld/channel.h"

typedef struct {
    km_ctx *ctx;
    unsigned char enclave_sec[32], enclave_pub[33];
    unsigned char gateway_sec[32], gateway_x[32];
} fixture;

static void make_key(km_ctx *ctx, unsigned char sec[32], unsigned char pub33[33], unsigned char x32[32]) {
    const secp256k1_context *secp = km_ctx_secp(ctx);
    secp256k1_keypair kp;
    do
        assert_int_equal(km_random_bytes(sec, 32), KM_OK);
    while (!secp256k1_keypair_create(secp, &kp, sec));
    secp256k1_pubkey pk;
    assert_true(secp256k1_keypair_pub(secp, &pk, &kp));
    size_t len = 33;
    if (pub33) assert_true(secp256k1_ec_pubkey_serialize(secp, pub33, &len, &pk, SECP256K1_EC_COMPRESSED));
    secp256k1_xonly_pubkey xo;
    assert_true(secp256k1_keypair_xonly_pub(secp, &xo, NULL, &kp));
    if (x32) assert_true(secp256k1_xonly_pubkey_serialize(secp, x32, &xo));
}

static int setup(void **state) {
    static fixture f;
    if (km_ctx_create(&f.ctx) != KM_OK) return -1;
    make_key(f.ctx, f.enclave_sec, f.enclave_pub, NULL);
    make_key(f.ctx, f.gateway_sec, NULL, f.gateway_x);
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    km_ctx_destroy(f->ctx);
    return 0;
}

/* Runs the whole handshake; returns the first error. */
static km_err handshake(fixture *f, km_channel *gw, km_channel *en, const unsigned char (*allowed)[32],
                        size_t n) {
    unsigned char hello[KM_CHANNEL_HELLO_LEN], reply[KM_CHANNEL_REPLY_LEN], auth[KM_CHANNEL_AUTH_LEN];
    km_err e = km_channel_gateway_hello(f->ctx, gw, hello);
    if (!e) e = km_channel_enclave_reply(f->ctx, en, hello, sizeof hello, f->enclave_sec, reply);
    if (!e)
        e = km_channel_gateway_finish(f->ctx, gw, reply, sizeof reply, f->enclave_pub, f->gateway_sec, auth);
    if (!e) e = km_channel_enclave_finish(f->ctx, en, auth, sizeof auth, allowed, n);
    return e;
}

static void send_recv(km_channel *from, km_channel *to, const char *msg, km_err want) {
    km_buf b;
    km_buf_init(&b);
    assert_int_equal(km_channel_seal(from, (const unsigned char *)msg, strlen(msg), &b), KM_OK);
    assert_int_equal(b.len, strlen(msg) + KM_CHANNEL_OVERHEAD);
    size_t n;
    assert_int_equal(km_channel_open(to, b.data, b.len, &n), want);
    if (want == KM_OK) {
        assert_int_equal(n, strlen(msg));
        assert_memory_equal(b.data, msg, n);
    }
    km_buf_free(&b);
}

static void test_handshake_and_records(void **state) {
    fixture *f = *state;
    km_channel gw, en;
    assert_int_equal(handshake(f, &gw, &en, (const unsigned char(*)[32])f->gateway_x, 1), KM_OK);
    for (int i = 0; i < 10; i++) {
        send_recv(&gw, &en, "request", KM_OK);
        send_recv(&en, &gw, "response", KM_OK);
    }
    send_recv(&gw, &en, "", KM_OK); /* empty records are fine */
    km_channel_clear(&gw);
    km_channel_clear(&en);
}

static void test_impostor_enclave_rejected(void **state) {
    fixture *f = *state;
    /* A process holding another key answers the handshake: the gateway, which
     * pinned the attested key, refuses it. */
    unsigned char other_sec[32], other_pub[33], hello[KM_CHANNEL_HELLO_LEN], reply[KM_CHANNEL_REPLY_LEN],
        auth[KM_CHANNEL_AUTH_LEN];
    make_key(f->ctx, other_sec, other_pub, NULL);
    km_channel gw, en;
    assert_int_equal(km_channel_gateway_hello(f->ctx, &gw, hello), KM_OK);
    assert_int_equal(km_channel_enclave_reply(f->ctx, &en, hello, sizeof hello, other_sec, reply), KM_OK);
    assert_int_equal(
        km_channel_gateway_finish(f->ctx, &gw, reply, sizeof reply, f->enclave_pub, f->gateway_sec, auth),
        KM_ERR_VERIFY);
    /* Claiming the right public key without its secret: the signature fails. */
    assert_int_equal(km_channel_gateway_hello(f->ctx, &gw, hello), KM_OK);
    assert_int_equal(km_channel_enclave_reply(f->ctx, &en, hello, sizeof hello, other_sec, reply), KM_OK);
    memcpy(reply + 36, f->enclave_pub, 33);
    assert_int_equal(
        km_channel_gateway_finish(f->ctx, &gw, reply, sizeof reply, f->enclave_pub, f->gateway_sec, auth),
        KM_ERR_VERIFY);
    km_channel_clear(&en);
}

static void test_unknown_gateway_rejected(void **state) {
    fixture *f = *state;
    unsigned char other_x[32], sec[32];
    make_key(f->ctx, sec, NULL, other_x);
    km_channel gw, en;
    /* The enclave only accepts the configured credential. */
    assert_int_equal(handshake(f, &gw, &en, (const unsigned char(*)[32])other_x, 1), KM_ERR_VERIFY);
    assert_int_equal(handshake(f, &gw, &en, NULL, 0), KM_ERR_VERIFY);
    /* And a channel that failed cannot be used. */
    km_buf b;
    km_buf_init(&b);
    assert_int_equal(km_channel_seal(&en, (const unsigned char *)"x", 1, &b), KM_ERR_STATE);
    km_buf_free(&b);
    km_channel_clear(&gw);
}

static void test_tampered_handshake(void **state) {
    fixture *f = *state;
    unsigned char hello[KM_CHANNEL_HELLO_LEN], reply[KM_CHANNEL_REPLY_LEN], auth[KM_CHANNEL_AUTH_LEN];
    km_channel gw, en;
    /* Every byte of HELLO_REPLY except the enclave nonce is checked directly;
     * the nonce is covered by the signature. Flip each byte: always refused. */
    for (size_t i = 0; i < KM_CHANNEL_REPLY_LEN; i++) {
        assert_int_equal(km_channel_gateway_hello(f->ctx, &gw, hello), KM_OK);
        assert_int_equal(km_channel_enclave_reply(f->ctx, &en, hello, sizeof hello, f->enclave_sec, reply),
                         KM_OK);
        reply[i] ^= 0x01;
        assert_int_not_equal(
            km_channel_gateway_finish(f->ctx, &gw, reply, sizeof reply, f->enclave_pub, f->gateway_sec, auth),
            KM_OK);
        km_channel_clear(&en);
    }
    /* Every byte of AUTH. */
    for (size_t i = 0; i < KM_CHANNEL_AUTH_LEN; i++) {
        assert_int_equal(km_channel_gateway_hello(f->ctx, &gw, hello), KM_OK);
        assert_int_equal(km_channel_enclave_reply(f->ctx, &en, hello, sizeof hello, f->enclave_sec, reply),
                         KM_OK);
        assert_int_equal(
            km_channel_gateway_finish(f->ctx, &gw, reply, sizeof reply, f->enclave_pub, f->gateway_sec, auth),
            KM_OK);
        auth[i] ^= 0x01;
        assert_int_not_equal(km_channel_enclave_finish(f->ctx, &en, auth, sizeof auth,
                                                       (const unsigned char(*)[32])f->gateway_x, 1),
                             KM_OK);
        km_channel_clear(&gw);
    }
    /* A HELLO altered in transit changes th1: the gateway's AUTH no longer
     * matches what the enclave signed... the enclave refuses AUTH. */
    for (size_t i = 39; i < KM_CHANNEL_HELLO_LEN; i++) { /* nonce bytes: only the transcript notices */
        assert_int_equal(km_channel_gateway_hello(f->ctx, &gw, hello), KM_OK);
        hello[i] ^= 0x01;
        assert_int_equal(km_channel_enclave_reply(f->ctx, &en, hello, sizeof hello, f->enclave_sec, reply),
                         KM_OK);
        assert_int_equal(
            km_channel_gateway_finish(f->ctx, &gw, reply, sizeof reply, f->enclave_pub, f->gateway_sec, auth),
            KM_ERR_VERIFY);
        km_channel_clear(&en);
    }
    /* Wrong magic, version, lengths. */
    assert_int_equal(km_channel_gateway_hello(f->ctx, &gw, hello), KM_OK);
    hello[0] = 'X';
    assert_int_equal(km_channel_enclave_reply(f->ctx, &en, hello, sizeof hello, f->enclave_sec, reply),
                     KM_ERR_PARSE);
    hello[0] = 'K';
    hello[5] = 9;
    assert_int_equal(km_channel_enclave_reply(f->ctx, &en, hello, sizeof hello, f->enclave_sec, reply),
                     KM_ERR_UNSUPPORTED);
    hello[5] = KM_CHANNEL_VERSION;
    assert_int_equal(km_channel_enclave_reply(f->ctx, &en, hello, sizeof hello - 1, f->enclave_sec, reply),
                     KM_ERR_PARSE);
    hello[6] = 0x05; /* not a compressed point */
    assert_int_equal(km_channel_enclave_reply(f->ctx, &en, hello, sizeof hello, f->enclave_sec, reply),
                     KM_ERR_INVALID_POINT);
    km_channel_clear(&gw);
}

static void test_record_attacks(void **state) {
    fixture *f = *state;
    km_channel gw, en;
    km_buf r1, r2;
    size_t n;
    /* Replay: the same record twice. */
    assert_int_equal(handshake(f, &gw, &en, (const unsigned char(*)[32])f->gateway_x, 1), KM_OK);
    km_buf_init(&r1);
    assert_int_equal(km_channel_seal(&gw, (const unsigned char *)"sign item 1", 11, &r1), KM_OK);
    unsigned char copy[64];
    memcpy(copy, r1.data, r1.len);
    assert_int_equal(km_channel_open(&en, r1.data, r1.len, &n), KM_OK);
    assert_int_equal(km_channel_open(&en, copy, r1.len, &n), KM_ERR_DECRYPT);
    km_buf_free(&r1);
    /* Reorder: second record first. */
    assert_int_equal(handshake(f, &gw, &en, (const unsigned char(*)[32])f->gateway_x, 1), KM_OK);
    km_buf_init(&r1);
    km_buf_init(&r2);
    assert_int_equal(km_channel_seal(&gw, (const unsigned char *)"a", 1, &r1), KM_OK);
    assert_int_equal(km_channel_seal(&gw, (const unsigned char *)"b", 1, &r2), KM_OK);
    assert_int_equal(km_channel_open(&en, r2.data, r2.len, &n), KM_ERR_DECRYPT);
    /* Dead after a failure, even for the right record. */
    assert_int_equal(km_channel_open(&en, r1.data, r1.len, &n), KM_ERR_STATE);
    km_buf_free(&r1);
    km_buf_free(&r2);
    /* Reflection: a record sent back to its sender. */
    assert_int_equal(handshake(f, &gw, &en, (const unsigned char(*)[32])f->gateway_x, 1), KM_OK);
    km_buf_init(&r1);
    assert_int_equal(km_channel_seal(&gw, (const unsigned char *)"ping", 4, &r1), KM_OK);
    assert_int_equal(km_channel_open(&gw, r1.data, r1.len, &n), KM_ERR_DECRYPT);
    km_buf_free(&r1);
    /* Every bit of a record. */
    for (size_t bit = 0; bit < (5 + KM_CHANNEL_OVERHEAD) * 8; bit++) {
        assert_int_equal(handshake(f, &gw, &en, (const unsigned char(*)[32])f->gateway_x, 1), KM_OK);
        km_buf_init(&r1);
        assert_int_equal(km_channel_seal(&en, (const unsigned char *)"hello", 5, &r1), KM_OK);
        r1.data[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        assert_int_equal(km_channel_open(&gw, r1.data, r1.len, &n), KM_ERR_DECRYPT);
        km_buf_free(&r1);
        km_channel_clear(&en);
    }
    /* Truncated below the tag size. */
    assert_int_equal(handshake(f, &gw, &en, (const unsigned char(*)[32])f->gateway_x, 1), KM_OK);
    unsigned char shortrec[8] = {0};
    assert_int_equal(km_channel_open(&en, shortrec, sizeof shortrec, &n), KM_ERR_PARSE);
    km_channel_clear(&gw);
}

static void test_sessions_have_distinct_keys(void **state) {
    fixture *f = *state;
    km_channel g1, e1, g2, e2;
    assert_int_equal(handshake(f, &g1, &e1, (const unsigned char(*)[32])f->gateway_x, 1), KM_OK);
    assert_int_equal(handshake(f, &g2, &e2, (const unsigned char(*)[32])f->gateway_x, 1), KM_OK);
    assert_memory_not_equal(g1.send_key, g2.send_key, 32);
    assert_memory_equal(g1.send_key, e1.recv_key, 32);
    assert_memory_equal(g1.recv_key, e1.send_key, 32);
    assert_memory_not_equal(g1.send_key, g1.recv_key, 32);
    /* A record of one connection is worthless on another. */
    send_recv(&g1, &e2, "cross", KM_ERR_DECRYPT);
    km_channel_clear(&g1);
    km_channel_clear(&e1);
    km_channel_clear(&g2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_records),    cmocka_unit_test(test_impostor_enclave_rejected),
        cmocka_unit_test(test_unknown_gateway_rejected), cmocka_unit_test(test_tampered_handshake),
        cmocka_unit_test(test_record_attacks),           cmocka_unit_test(test_sessions_have_distinct_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
