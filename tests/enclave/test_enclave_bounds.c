/* test_enclave_bounds.c — the enclave's limits and its behaviour towards
 * garbage on the wire: session caps, expiry, oversize / truncated / garbage /
 * replayed frames, peers that never finish the handshake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "keymeld/aead.h"
#include "keymeld/ecies.h"
#include "net/net.h"
#include "tests/enclave/flows.h"

static flow_world W;

static const char *const limits[] = {
    "--max-signings", "2", "--signing-ttl", "2", "--keygen-ttl", "2", "--handshake-timeout", "1", NULL};

static int setup(void **state) {
    (void)state;
    /* flow_start with one enclave whose limits are tiny. */
    memset(&W, 0, sizeof W);
    if (km_ctx_create(&W.ctx) != KM_OK) return -1;
    W.n_enclaves = 1;
    W.n_users = 2;
    if (km_test_enclave_start_with(W.ctx, &W.enc[0], limits) != 0) return -1;
    if (km_test_enclave_connect(W.ctx, &W.enc[0], &W.conn[0]) != KM_OK) return -1;
    if (km_uuid_v7(&W.keygen_id, 1) || km_random_bytes(W.secret, 32)) return -1;
    if (km_session_derive(W.ctx, W.secret, &W.session) != KM_OK) return -1;
    for (int u = 0; u < W.n_users; u++) {
        if (km_uuid_v7(&W.users[u], 2 + (uint64_t)u)) return -1;
        km_test_keypair(W.ctx, W.seckeys[u], W.pubkeys[u], NULL);
        km_test_keypair(W.ctx, W.auth_sec[u], NULL, W.auth_x[u]);
        km_buf_init(&W.records[u]);
    }
    km_tweak_none(&W.tweak);
    return flow_keygen(&W);
}

static int teardown(void **state) {
    (void)state;
    flow_stop(&W);
    return 0;
}

static void sleep_s(int s) {
    struct timespec ts = {s, 0};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void test_signing_cap_and_expiry(void **state) {
    (void)state;
    km_sign_item item;
    memset(&item, 0, sizeof item);
    assert_int_equal(km_uuid_v7(&item.id, 1), KM_OK);
    km_uuid sids[3];
    km_buf body;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(km_uuid_v7(&sids[i], 100 + (uint64_t)i), KM_OK);
        flow_sign_init_body(&W, &sids[i], &item, 1, &body);
        /* The third session exceeds --max-signings 2. */
        assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_INIT, &body, NULL), i < 2 ? KM_OK : KM_ERR_RANGE);
        km_buf_free(&body);
    }
    /* After the time to live, the sessions are wiped and room is made. */
    sleep_s(3);
    flow_sign_init_body(&W, &sids[2], &item, 1, &body);
    assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_INIT, &body, NULL), KM_OK);
    km_buf_free(&body);
    flow_records none = {0};
    km_buf_init(&none.list);
    flow_records_body(&sids[0], &none, &body);
    assert_int_equal(flow_call(&W, 0, KM_CMD_SIGN_PARTIAL, &body, NULL), KM_ERR_NOT_FOUND);
    km_buf_free(&body);
    /* A finalised keygen is a wallet: it does not expire. */
    km_uuid sid;
    assert_int_equal(km_uuid_v7(&sid, 200), KM_OK);
    km_buf res;
    sleep_s(3); /* also expires sids[2], making room */
    assert_int_equal(flow_sign(&W, &sid, &item, 1, &res), KM_OK);
    km_buf_free(&res);
}

static void test_unfinished_keygen_expires(void **state) {
    (void)state;
    flow_world saved = W;
    /* A second keygen that never completes. */
    assert_int_equal(km_uuid_v7(&W.keygen_id, 300), KM_OK);
    km_keygen_init init;
    memset(&init, 0, sizeof init);
    memcpy(init.session_secret, W.secret, 32);
    init.n_enclaves = 1;
    init.enclave_pubs = &W.enc[0].pub;
    init.n_participants = 1;
    init.user_ids = W.users;
    uint16_t idx = 0;
    init.enclave_index = &idx;
    km_buf pt, blob, body;
    km_buf_init(&pt);
    km_buf_init(&blob);
    km_buf_init(&body);
    assert_int_equal(km_keygen_init_encode(&init, &pt), KM_OK);
    km_ad ad;
    assert_int_equal(km_ad_build(&ad, KM_AD_KEYGEN_INIT, &W.keygen_id, W.enc[0].pub, 33), KM_OK);
    assert_int_equal(km_ecies_seal(W.ctx, W.enc[0].pub, ad.bytes, ad.len, pt.data, pt.len, &blob), KM_OK);
    assert_int_equal(km_buf_put(&body, W.keygen_id.b, 16), KM_OK);
    flow_put_vbytes(&body, blob.data, blob.len);
    assert_int_equal(flow_call(&W, 0, KM_CMD_KEYGEN_INIT, &body, NULL), KM_OK);
    sleep_s(3);
    /* Gone: finalising it now finds nothing. */
    km_buf fin;
    km_buf_init(&fin);
    assert_int_equal(km_buf_put(&fin, W.keygen_id.b, 16), KM_OK);
    assert_int_equal(km_buf_put_u16(&fin, 1), KM_OK);
    flow_put_vbytes(&fin, (const unsigned char *)"x", 1);
    assert_int_equal(flow_call(&W, 0, KM_CMD_KEYGEN_FINALIZE, &fin, NULL), KM_ERR_NOT_FOUND);
    km_buf_free(&fin);
    km_buf_free(&pt);
    km_buf_free(&blob);
    km_buf_free(&body);
    W.keygen_id = saved.keygen_id;
}

/* Raw bytes on a fresh socket: none of them gets an answer. */
static void expect_silence_and_close(const unsigned char *p, size_t n) {
    km_err err;
    int fd = km_net_connect(W.enc[0].addr, &err);
    assert_true(fd >= 0);
    if (n) assert_int_equal(write(fd, p, n), (ssize_t)n);
    km_buf in;
    km_buf_init(&in);
    /* The enclave closes (or times out the handshake) without sending a byte. */
    assert_int_not_equal(km_net_read_frame(fd, &in, 1024), KM_OK);
    assert_int_equal(in.len, 0);
    km_buf_free(&in);
    close(fd);
}

static void test_garbage_before_handshake(void **state) {
    (void)state;
    const unsigned char oversize[4] = {0xff, 0xff, 0xff, 0xff};
    expect_silence_and_close(oversize, 4);
    const unsigned char zero_len[4] = {0, 0, 0, 0};
    expect_silence_and_close(zero_len, 4);
    unsigned char garbage[75];
    garbage[0] = 0;
    garbage[1] = 0;
    garbage[2] = 0;
    garbage[3] = 71;
    assert_int_equal(km_random_bytes(garbage + 4, 71), KM_OK);
    expect_silence_and_close(garbage, sizeof garbage);
    /* A peer that sends nothing at all is cut off by the handshake timeout. */
    expect_silence_and_close(NULL, 0);
    /* The enclave is still serving. */
    assert_int_equal(flow_call(&W, 0, KM_CMD_INFO, NULL, NULL), KM_OK);
}

/* Many requests in flight on one connection: each response carries the id of
 * its request. */
static void test_pipelined_requests(void **state) {
    (void)state;
    km_enclave_conn c;
    km_msg resp;
    assert_int_equal(km_test_enclave_connect(W.ctx, &W.enc[0], &c), KM_OK);
    const uint32_t ids[5] = {7, 100000, 3, 42, 0xfffffffe};
    const uint16_t cmds[5] = {KM_CMD_INFO, 0x7777, KM_CMD_INFO, KM_CMD_SESSION_CLEAR, KM_CMD_INFO};
    for (int i = 0; i < 5; i++) {
        km_buf req;
        km_buf_init(&req);
        assert_int_equal(km_msg_put_header(&req, KM_MSG_REQUEST, ids[i], cmds[i]), KM_OK);
        assert_int_equal(km_enclave_conn_send_raw(&c, req.data, req.len), KM_OK);
        km_buf_free(&req);
    }
    const km_err want[5] = {KM_OK, KM_ERR_UNSUPPORTED, KM_OK, KM_ERR_PARSE, KM_OK};
    int seen[5] = {0};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(km_enclave_conn_recv(&c, &resp), KM_OK);
        int j = 0;
        while (j < 5 && ids[j] != resp.request_id)
            j++;
        assert_true(j < 5);
        assert_false(seen[j]);
        seen[j] = 1;
        assert_int_equal(resp.code, want[j]);
    }
    km_enclave_conn_close(&c);
}

static void test_frames_after_handshake(void **state) {
    (void)state;
    km_enclave_conn c;
    km_msg resp;
    /* A malformed envelope (too short) gets an error response; the
     * connection stays usable. */
    assert_int_equal(km_test_enclave_connect(W.ctx, &W.enc[0], &c), KM_OK);
    unsigned char shortmsg[3] = {1, 0, 0};
    assert_int_equal(km_enclave_conn_send_raw(&c, shortmsg, sizeof shortmsg), KM_OK);
    assert_int_equal(km_enclave_conn_recv(&c, &resp), KM_OK);
    assert_int_equal(resp.code, KM_ERR_PARSE);
    assert_int_equal(km_enclave_conn_call(&c, KM_CMD_INFO, NULL, 0, &resp), KM_OK);
    assert_int_equal(resp.code, KM_OK);
    /* A record replayed on the wire: the enclave drops the connection. */
    km_buf req;
    km_buf_init(&req);
    assert_int_equal(km_msg_put_header(&req, KM_MSG_REQUEST, 99, KM_CMD_INFO), KM_OK);
    c.out.len = 0;
    assert_int_equal(km_channel_seal(&c.ch, req.data, req.len, &c.out), KM_OK);
    assert_int_equal(km_net_write_frame(c.fd, c.out.data, c.out.len), KM_OK);
    assert_int_equal(km_enclave_conn_recv(&c, &resp), KM_OK);
    assert_int_equal(km_net_write_frame(c.fd, c.out.data, c.out.len), KM_OK); /* the same bytes again */
    assert_int_not_equal(km_enclave_conn_recv(&c, &resp), KM_OK);
    km_enclave_conn_close(&c);
    /* A garbage record: dropped. */
    assert_int_equal(km_test_enclave_connect(W.ctx, &W.enc[0], &c), KM_OK);
    unsigned char junk[40];
    assert_int_equal(km_random_bytes(junk, sizeof junk), KM_OK);
    assert_int_equal(km_net_write_frame(c.fd, junk, sizeof junk), KM_OK);
    assert_int_not_equal(km_enclave_conn_recv(&c, &resp), KM_OK);
    km_enclave_conn_close(&c);
    /* An announced frame above the limit: dropped before any allocation. */
    assert_int_equal(km_test_enclave_connect(W.ctx, &W.enc[0], &c), KM_OK);
    const unsigned char huge[4] = {0x7f, 0xff, 0xff, 0xff};
    assert_int_equal(write(c.fd, huge, 4), 4);
    assert_int_not_equal(km_enclave_conn_recv(&c, &resp), KM_OK);
    km_enclave_conn_close(&c);
    km_buf_free(&req);
    assert_int_equal(flow_call(&W, 0, KM_CMD_INFO, NULL, NULL), KM_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_garbage_before_handshake), cmocka_unit_test(test_frames_after_handshake),
        cmocka_unit_test(test_pipelined_requests),       cmocka_unit_test(test_unfinished_keygen_expires),
        cmocka_unit_test(test_signing_cap_and_expiry),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
