/* test_client_http.c — the client HTTP layer (src/client/http.c) against a
 * small libmicrohttpd server inside the test that records each request as
 * it arrived (method, raw request target, headers, body bytes) and checks
 * the request signature itself with km_reqauth_verify over exactly what it
 * received. Covered: signed GET and POST, targets sent verbatim, unsigned
 * calls, every forging override (timestamp, nonce, claimed key, omitted,
 * corrupted and replayed signature), JSON and non-JSON responses, error
 * codes, oversize responses, argument checks, connection refused, timeout,
 * one client per thread. Needs no gateway.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "client/http.h"
#include "keymeld/aead.h"
#include "keymeld/hex.h"
#include "keymeld/secret.h"

static km_ctx *g_ctx;

/* ---- the recording server ------------------------------------------------ */

/* One request as the server saw it. Header fields are "" when absent. */
typedef struct rec {
    char method[32];
    char target[KM_REQAUTH_TARGET_MAX + 64];
    int has_key, has_ts, has_nonce, has_sig;
    char key[160], ts[64], nonce[160], sig[300];
    char content_type[160];
    char content_length[32];
    unsigned char body[8192];
    size_t body_len;
    int body_overflow;
    km_err verify; /* the server's own check; KM_ERR_STATE if headers were missing/malformed */
} rec;

typedef struct srv {
    struct MHD_Daemon *d;
    char base[64];
    pthread_mutex_t mu;
    int count; /* requests completed */
    rec last;
    /* what to answer */
    unsigned status;
    const char *reply_type; /* NULL: no Content-Type */
    const char *reply_body;
    size_t reply_len;
} srv;

/* Per request: allocated by the URI logger, which sees the raw target. */
typedef struct conn {
    rec r;
    int started;
} conn;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
    (void)cls;
    (void)c;
    conn *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    snprintf(st->r.target, sizeof st->r.target, "%s", uri);
    return st;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static void copy_hdr(struct MHD_Connection *c, const char *name, char *out, size_t cap, int *has) {
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    if (has) *has = v != NULL;
    snprintf(out, cap, "%s", v ? v : "");
}

/* Strict decimal, no sign, no leading zeros (the canonical form). */
static int parse_u64(const char *s, uint64_t *v) {
    if (!*s || (s[0] == '0' && s[1])) return 0;
    uint64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return 0;
        uint64_t d = (uint64_t)(*s - '0');
        if (x > (UINT64_MAX - d) / 10) return 0;
        x = x * 10 + d;
    }
    *v = x;
    return 1;
}

/* Verify r's signature against key32 (the claimed key if key32 is NULL). */
static km_err verify_rec(const rec *r, const unsigned char *key32) {
    unsigned char key[32], nonce[16], sig[64];
    uint64_t ts;
    if (!r->has_key || !r->has_ts || !r->has_nonce || !r->has_sig) return KM_ERR_STATE;
    if (km_hex_decode(key, 32, r->key, strlen(r->key)) != KM_OK ||
        km_hex_decode(nonce, 16, r->nonce, strlen(r->nonce)) != KM_OK ||
        km_hex_decode(sig, 64, r->sig, strlen(r->sig)) != KM_OK || !parse_u64(r->ts, &ts))
        return KM_ERR_STATE;
    km_reqauth_req q;
    memset(&q, 0, sizeof q);
    q.method = r->method;
    q.method_len = strlen(r->method);
    q.target = r->target;
    q.target_len = strlen(r->target);
    q.body = r->body;
    q.body_len = r->body_len;
    q.timestamp = ts;
    memcpy(q.nonce, nonce, 16);
    return km_reqauth_verify(g_ctx, key32 ? key32 : key, &q, sig);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size,
                                  void **con_cls) {
    (void)url;
    (void)version;
    srv *s = cls;
    conn *st = *con_cls;
    if (!st) return MHD_NO;
    if (!st->started) {
        st->started = 1;
        return MHD_YES;
    }
    if (*upload_size) {
        if (*upload_size > sizeof st->r.body - st->r.body_len)
            st->r.body_overflow = 1;
        else
            memcpy(st->r.body + st->r.body_len, upload, *upload_size);
        st->r.body_len += st->r.body_overflow ? 0 : *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    rec *r = &st->r;
    snprintf(r->method, sizeof r->method, "%s", method);
    copy_hdr(c, KM_CLIENT_HDR_KEY, r->key, sizeof r->key, &r->has_key);
    copy_hdr(c, KM_CLIENT_HDR_TIMESTAMP, r->ts, sizeof r->ts, &r->has_ts);
    copy_hdr(c, KM_CLIENT_HDR_NONCE, r->nonce, sizeof r->nonce, &r->has_nonce);
    copy_hdr(c, KM_CLIENT_HDR_SIGNATURE, r->sig, sizeof r->sig, &r->has_sig);
    copy_hdr(c, "Content-Type", r->content_type, sizeof r->content_type, NULL);
    copy_hdr(c, "Content-Length", r->content_length, sizeof r->content_length, NULL);
    r->verify = verify_rec(r, NULL);

    pthread_mutex_lock(&s->mu);
    s->last = *r;
    s->count++;
    unsigned status = s->status;
    const char *type = s->reply_type, *body = s->reply_body;
    size_t len = s->reply_len;
    pthread_mutex_unlock(&s->mu);

    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    if (type) MHD_add_response_header(resp, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static srv g_srv;

static void srv_reply(unsigned status, const char *type, const char *body) {
    pthread_mutex_lock(&g_srv.mu);
    g_srv.status = status;
    g_srv.reply_type = type;
    g_srv.reply_body = body;
    g_srv.reply_len = strlen(body);
    pthread_mutex_unlock(&g_srv.mu);
}

static rec *srv_last(void) {
    static rec copy;
    pthread_mutex_lock(&g_srv.mu);
    copy = g_srv.last;
    pthread_mutex_unlock(&g_srv.mu);
    return &copy;
}

static int srv_count(void) {
    pthread_mutex_lock(&g_srv.mu);
    int n = g_srv.count;
    pthread_mutex_unlock(&g_srv.mu);
    return n;
}

static int srv_start(void **state) {
    (void)state;
    memset(&g_srv, 0, sizeof g_srv);
    pthread_mutex_init(&g_srv.mu, NULL);
    srv_reply(200, "application/json", "{\"ok\":true}");
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = 0; /* ephemeral */
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_srv.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
                               on_request, &g_srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                               MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED,
                               on_done, NULL, MHD_OPTION_END);
    if (!g_srv.d) return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(g_srv.d, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || info->port == 0) return -1;
    snprintf(g_srv.base, sizeof g_srv.base, "http://127.0.0.1:%u", (unsigned)info->port);
    return 0;
}

static int srv_stop(void **state) {
    (void)state;
    if (g_srv.d) MHD_stop_daemon(g_srv.d);
    g_srv.d = NULL;
    pthread_mutex_destroy(&g_srv.mu);
    return 0;
}

/* ---- helpers ---------------------------------------------------------------- */

static void make_signer(secp256k1_keypair *kp, unsigned char xonly[32]) {
    unsigned char sec[32];
    secp256k1_xonly_pubkey xo;
    do {
        assert_int_equal(km_random_bytes(sec, 32), KM_OK);
    } while (!secp256k1_keypair_create(km_ctx_secp(g_ctx), kp, sec));
    km_wipe(sec, sizeof sec);
    assert_true(secp256k1_keypair_xonly_pub(km_ctx_secp(g_ctx), &xo, NULL, kp));
    assert_true(secp256k1_xonly_pubkey_serialize(km_ctx_secp(g_ctx), xonly, &xo));
}

static km_client *new_client(const char *base) {
    km_client *c = NULL;
    assert_int_equal(km_client_new(&c, g_ctx, base), KM_OK);
    assert_non_null(c);
    return c;
}

static int is_lower_hex(const char *s, size_t n) {
    if (strlen(s) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static void hex_of(char *out, size_t cap, const unsigned char *in, size_t n) {
    assert_int_equal(km_hex_encode(out, cap, in, n), KM_OK);
}

/* The four headers are present, well-formed, name signer_x, and verify. */
static void assert_signed_ok(const rec *r, const unsigned char signer_x[32]) {
    char hx[65];
    assert_true(r->has_key && r->has_ts && r->has_nonce && r->has_sig);
    assert_true(is_lower_hex(r->key, 64));
    assert_true(is_lower_hex(r->nonce, 32));
    assert_true(is_lower_hex(r->sig, 128));
    hex_of(hx, sizeof hx, signer_x, 32);
    assert_string_equal(r->key, hx);
    assert_int_equal(r->verify, KM_OK);
}

/* ---- tests -------------------------------------------------------------- */

static void test_signed_get_with_query(void **state) {
    (void)state;
    secp256k1_keypair kp;
    unsigned char x[32];
    make_signer(&kp, x);
    km_client *c = new_client(g_srv.base);
    km_client_response r = {0};
    const char *target = "/api/v1/keygen/0190f0e0-aaaa-7bbb-8ccc-0123456789ab?wait=30&x=%2F";
    time_t before = time(NULL);
    assert_int_equal(km_client_call(c, "GET", target, NULL, &kp, &r), KM_OK);
    time_t after = time(NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(r.json);
    assert_true(json_is_true(json_object_get(r.json, "ok")));
    assert_int_equal(r.body.len, strlen("{\"ok\":true}"));
    assert_int_equal(r.body.data[r.body.len], 0);

    rec *got = srv_last();
    assert_int_equal(srv_count(), 1);
    assert_string_equal(got->method, "GET");
    assert_string_equal(got->target, target);
    assert_int_equal(got->body_len, 0);
    assert_string_equal(got->content_type, "");
    assert_signed_ok(got, x);
    uint64_t ts;
    assert_true(parse_u64(got->ts, &ts));
    assert_true(ts >= (uint64_t)before && ts <= (uint64_t)after);

    /* last_auth reports what went out. */
    km_client_sent_auth a;
    char hx[129];
    km_client_last_auth(c, &a);
    assert_true(a.present && a.has_signature);
    assert_int_equal(a.timestamp, ts);
    hex_of(hx, sizeof hx, a.nonce, 16);
    assert_string_equal(hx, got->nonce);
    hex_of(hx, sizeof hx, a.signature, 64);
    assert_string_equal(hx, got->sig);
    assert_memory_equal(a.xonly, x, 32);

    /* A wrong key does not verify the same request: the server check is real. */
    unsigned char other[32];
    secp256k1_keypair kp2;
    make_signer(&kp2, other);
    assert_int_equal(verify_rec(got, other), KM_ERR_VERIFY);

    km_client_response_clear(&r);
    assert_null(r.json);
    assert_int_equal(r.status, 0);
    km_client_free(c);
}

static void test_signed_post_json(void **state) {
    (void)state;
    secp256k1_keypair kp;
    unsigned char x[32];
    make_signer(&kp, x);
    km_client *c = new_client(g_srv.base);
    json_t *body = json_pack("{s:s, s:[i,i], s:{s:b}, s:s}", "id", "abc", "list", 1, 2, "nested", "t", 1,
                             "utf8", "caf\xc3\xa9");
    assert_non_null(body);
    char *expect = json_dumps(body, JSON_COMPACT);
    assert_non_null(expect);
    km_client_response r = {0};
    srv_reply(201, "application/json; charset=utf-8", "{\"created\":1}");
    assert_int_equal(km_client_call(c, "POST", "/api/v1/keygen", body, &kp, &r), KM_OK);
    assert_int_equal(r.status, 201);
    assert_non_null(r.json); /* media type parameters are accepted */
    assert_int_equal(json_integer_value(json_object_get(r.json, "created")), 1);

    rec *got = srv_last();
    assert_string_equal(got->method, "POST");
    assert_string_equal(got->target, "/api/v1/keygen");
    assert_string_equal(got->content_type, "application/json");
    assert_int_equal(got->body_len, strlen(expect));
    assert_memory_equal(got->body, expect, got->body_len);
    assert_null(memchr(got->body, ' ', got->body_len)); /* compact */
    assert_signed_ok(got, x);

    /* One byte more or less in the body and the signature fails: the body
     * bytes are really covered. */
    rec t = *got;
    t.body[0] ^= 1;
    assert_int_equal(verify_rec(&t, x), KM_ERR_VERIFY);

    free(expect);
    json_decref(body);
    km_client_response_clear(&r);
    km_client_free(c);
}

static void test_targets_sent_verbatim(void **state) {
    (void)state;
    secp256k1_keypair kp;
    unsigned char x[32];
    make_signer(&kp, x);
    km_client *c = new_client(g_srv.base);
    /* libcurl would normalise some of these if allowed to; the signature is
     * over the target as given, so it must arrive as given. */
    const char *targets[] = {"/a/../b", "/a/./b/",   "//double",          "/p?q=a%20b&r=%7e&r=%7E",
                             "/x?",     "/%2e%2e/y", "/!$&'()*+,;=:@-._~"};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        km_client_response r = {0};
        assert_int_equal(km_client_call(c, "GET", targets[i], NULL, &kp, &r), KM_OK);
        rec *got = srv_last();
        assert_string_equal(got->target, targets[i]);
        assert_signed_ok(got, x);
        km_client_response_clear(&r);
    }
    assert_int_equal(srv_count(), (int)(sizeof targets / sizeof targets[0]));
    km_client_free(c);
}

static void test_unsigned_call(void **state) {
    (void)state;
    km_client *c = new_client(g_srv.base);
    km_client_response r = {0};
    assert_int_equal(km_client_call(c, "GET", "/api/v1/health", NULL, NULL, &r), KM_OK);
    assert_int_equal(r.status, 200);
    rec *got = srv_last();
    assert_false(got->has_key || got->has_ts || got->has_nonce || got->has_sig);
    assert_int_equal(got->verify, KM_ERR_STATE);
    km_client_sent_auth a;
    km_client_last_auth(c, &a);
    assert_false(a.present);
    km_client_response_clear(&r);
    km_client_free(c);
}

static void test_empty_post_and_other_methods(void **state) {
    (void)state;
    secp256k1_keypair kp;
    unsigned char x[32];
    make_signer(&kp, x);
    km_client *c = new_client(g_srv.base);
    km_client_response r = {0};
    assert_int_equal(km_client_call(c, "POST", "/api/v1/keygen/k/approve", NULL, &kp, &r), KM_OK);
    rec *got = srv_last();
    assert_string_equal(got->method, "POST");
    assert_string_equal(got->content_length, "0");
    assert_string_equal(got->content_type, ""); /* libcurl's form type suppressed */
    assert_int_equal(got->body_len, 0);
    assert_signed_ok(got, x);
    km_client_response_clear(&r);

    assert_int_equal(km_client_call(c, "DELETE", "/api/v1/keys/u/k", NULL, &kp, &r), KM_OK);
    got = srv_last();
    assert_string_equal(got->method, "DELETE");
    assert_int_equal(got->body_len, 0);
    assert_signed_ok(got, x);
    km_client_response_clear(&r);

    json_t *b = json_pack("{s:i}", "n", 7);
    assert_int_equal(km_client_call(c, "PUT", "/api/v1/thing", b, &kp, &r), KM_OK);
    got = srv_last();
    assert_string_equal(got->method, "PUT");
    assert_int_equal(got->body_len, strlen("{\"n\":7}"));
    assert_memory_equal(got->body, "{\"n\":7}", got->body_len);
    assert_signed_ok(got, x);
    json_decref(b);
    km_client_response_clear(&r);
    km_client_free(c);
}

static void test_raw_binary_body(void **state) {
    (void)state;
    secp256k1_keypair kp;
    unsigned char x[32];
    make_signer(&kp, x);
    km_client *c = new_client(g_srv.base);
    unsigned char body[3000];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (unsigned char)(i * 7 + (i >> 8)); /* includes NUL bytes */
    km_client_response r = {0};
    assert_int_equal(
        km_client_call_raw(c, "POST", "/raw", body, sizeof body, "application/octet-stream", &kp, NULL, &r),
        KM_OK);
    rec *got = srv_last();
    assert_int_equal(got->body_len, sizeof body);
    assert_memory_equal(got->body, body, sizeof body);
    assert_string_equal(got->content_type, "application/octet-stream");
    assert_signed_ok(got, x);
    km_client_response_clear(&r);
    km_client_free(c);
}

static void test_override_timestamp(void **state) {
    (void)state;
    secp256k1_keypair kp;
    unsigned char x[32];
    make_signer(&kp, x);
    km_client *c = new_client(g_srv.base);
    km_client_auth_override ov;
    memset(&ov, 0, sizeof ov);
    ov.use = 1;
    ov.use_timestamp = 1;
    ov.timestamp = 1000;
    km_client_response r = {0};
    assert_int_equal(km_client_call_raw(c, "GET", "/t", NULL, 0, NULL, &kp, &ov, &r), KM_OK);
    rec *got = srv_last();
    assert_string_equal(got->ts, "1000");
    assert_signed_ok(got, x); /* signed over the chosen time */
    /* The time is covered: the same signature with another time fails. */
    rec t = *got;
    snprintf(t.ts, sizeof t.ts, "1001");
    assert_int_equal(verify_rec(&t, x), KM_ERR_VERIFY);
    km_client_response_clear(&r);

    ov.timestamp = 0; /* zero is spelled "0" */
    assert_int_equal(km_client_call_raw(c, "GET", "/t", NULL, 0, NULL, &kp, &ov, &r), KM_OK);
    assert_string_equal(srv_last()->ts, "0");
    assert_int_equal(srv_last()->verify, KM_OK);
    km_client_response_clear(&r);

    ov.timestamp = UINT64_MAX;
    assert_int_equal(km_client_call_raw(c, "GET", "/t", NULL, 0, NULL, &kp, &ov, &r), KM_OK);
    assert_string_equal(srv_last()->ts, "18446744073709551615");
    assert_int_equal(srv_last()->verify, KM_OK);
    km_client_response_clear(&r);
    km_client_free(c);
}

static void test_override_nonce(void **state) {
    (void)state;
    secp256k1_keypair kp;
    unsigned char x[32];
    make_signer(&kp, x);
    km_client *c = new_client(g_srv.base);
    km_client_auth_override ov;
    memset(&ov, 0, sizeof ov);
    ov.use = 1;
    ov.use_nonce = 1;
    for (int i = 0; i < 16; i++)
        ov.nonce[i] = (unsigned char)(0xa0 + i);
    km_client_response r = {0};
    assert_int_equal(km_client_call_raw(c, "GET", "/n", NULL, 0, NULL, &kp, &ov, &r), KM_OK);
    rec *got = srv_last();
    assert_string_equal(got->nonce, "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
    assert_signed_ok(got, x);
    rec t = *got;
    t.nonce[0] = 'b';
    assert_int_equal(verify_rec(&t, x), KM_ERR_VERIFY);
    km_client_response_clear(&r);

    /* Without the override, nonces are fresh on every call. */
    char seen[2][33];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(km_client_call(c, "GET", "/n", NULL, &kp, &r), KM_OK);
        memcpy(seen[i], srv_last()->nonce, 32);
        seen[i][32] = '\0';
        assert_int_equal(srv_last()->verify, KM_OK);
        km_client_response_clear(&r);
    }
    assert_string_not_equal(seen[0], seen[1]);
    km_client_free(c);
}

static void test_claim_other_key(void **state) {
    (void)state;
    secp256k1_keypair kp, kp2;
    unsigned char x[32], other[32];
    make_signer(&kp, x);
    make_signer(&kp2, other);
    km_client *c = new_client(g_srv.base);
    km_client_auth_override ov;
    memset(&ov, 0, sizeof ov);
    ov.use = 1;
    ov.claim_other_key = 1;
    memcpy(ov.claimed_xonly, other, 32);
    km_client_response r = {0};
    assert_int_equal(km_client_call_raw(c, "GET", "/k", NULL, 0, NULL, &kp, &ov, &r), KM_OK);
    rec *got = srv_last();
    char hx[65];
    hex_of(hx, sizeof hx, other, 32);
    assert_string_equal(got->key, hx);
    assert_int_equal(got->verify, KM_ERR_VERIFY); /* server refuses */
    assert_int_equal(verify_rec(got, x), KM_OK);  /* only the claim is false */
    km_client_response_clear(&r);
    km_client_free(c);
}

static void test_omit_and_corrupt_signature(void **state) {
    (void)state;
    secp256k1_keypair kp;
    unsigned char x[32];
    make_signer(&kp, x);
    km_client *c = new_client(g_srv.base);
    km_client_auth_override ov;
    memset(&ov, 0, sizeof ov);
    ov.use = 1;
    ov.omit_signature = 1;
    km_client_response r = {0};
    assert_int_equal(km_client_call_raw(c, "GET", "/o", NULL, 0, NULL, &kp, &ov, &r), KM_OK);
    rec *got = srv_last();
    assert_true(got->has_key && got->has_ts && got->has_nonce);
    assert_false(got->has_sig);
    assert_int_equal(got->verify, KM_ERR_STATE);
    km_client_sent_auth a;
    km_client_last_auth(c, &a);
    assert_true(a.present);
    assert_false(a.has_signature);
    km_client_response_clear(&r);

    memset(&ov, 0, sizeof ov);
    ov.use = 1;
    ov.corrupt_signature = 1;
    assert_int_equal(km_client_call_raw(c, "GET", "/o", NULL, 0, NULL, &kp, &ov, &r), KM_OK);
    got = srv_last();
    assert_true(got->has_sig);
    assert_true(is_lower_hex(got->sig, 128));
    assert_int_equal(got->verify, KM_ERR_VERIFY);
    km_client_response_clear(&r);

    /* ov.use == 0 means honest, whatever else is set. */
    ov.use = 0;
    assert_int_equal(km_client_call_raw(c, "GET", "/o", NULL, 0, NULL, &kp, &ov, &r), KM_OK);
    assert_signed_ok(srv_last(), x);
    km_client_response_clear(&r);
    km_client_free(c);
}

static void test_replay_exact_headers(void **state) {
    (void)state;
    secp256k1_keypair kp;
    unsigned char x[32];
    make_signer(&kp, x);
    km_client *c = new_client(g_srv.base);
    json_t *b = json_pack("{s:s}", "approve", "yes");
    km_client_response r = {0};
    assert_int_equal(km_client_call(c, "POST", "/api/v1/sign/s/approve", b, &kp, &r), KM_OK);
    rec first = *srv_last();
    km_client_response_clear(&r);
    km_client_sent_auth a;
    km_client_last_auth(c, &a);

    km_client_auth_override ov;
    memset(&ov, 0, sizeof ov);
    ov.use = ov.use_timestamp = ov.use_nonce = ov.use_signature = 1;
    ov.timestamp = a.timestamp;
    memcpy(ov.nonce, a.nonce, 16);
    memcpy(ov.signature, a.signature, 64);
    assert_int_equal(km_client_call_raw(c, "POST", "/api/v1/sign/s/approve", first.body, first.body_len,
                                        "application/json", &kp, &ov, &r),
                     KM_OK);
    rec *again = srv_last();
    assert_string_equal(again->key, first.key);
    assert_string_equal(again->ts, first.ts);
    assert_string_equal(again->nonce, first.nonce);
    assert_string_equal(again->sig, first.sig);
    assert_int_equal(again->verify, KM_OK); /* a byte-identical replay: only the server's cache stops it */
    json_decref(b);
    km_client_response_clear(&r);
    km_client_free(c);
}

static void test_non_json_responses(void **state) {
    (void)state;
    km_client *c = new_client(g_srv.base);
    km_client_response r = {0};
    srv_reply(200, "text/plain", "hello");
    assert_int_equal(km_client_call(c, "GET", "/metrics", NULL, NULL, &r), KM_OK);
    assert_int_equal(r.status, 200);
    assert_null(r.json);
    assert_int_equal(r.body.len, 5);
    assert_string_equal((const char *)r.body.data, "hello");
    assert_null(km_client_error_code(&r));
    km_client_response_clear(&r);

    /* JSON text without a JSON type is not parsed. */
    srv_reply(200, "text/html", "{\"a\":1}");
    assert_int_equal(km_client_call(c, "GET", "/docs", NULL, NULL, &r), KM_OK);
    assert_null(r.json);
    km_client_response_clear(&r);

    /* A JSON type with a broken or ambiguous body: the response arrived, json NULL. */
    const char *bad[] = {"{\"a\":", "{\"a\":1,\"a\":2}", "\"scalar\"", "", "{}trailing"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        srv_reply(500, "application/json", bad[i]);
        assert_int_equal(km_client_call(c, "GET", "/x", NULL, NULL, &r), KM_OK);
        assert_int_equal(r.status, 500);
        assert_null(r.json);
        assert_int_equal(r.body.len, strlen(bad[i]));
        assert_non_null(r.body.data);
        km_client_response_clear(&r);
    }

    /* No Content-Type at all. */
    srv_reply(204, NULL, "");
    assert_int_equal(km_client_call(c, "GET", "/x", NULL, NULL, &r), KM_OK);
    assert_int_equal(r.status, 204);
    assert_null(r.json);
    assert_int_equal(r.body.len, 0);
    km_client_response_clear(&r);
    km_client_free(c);
}

static void test_error_code(void **state) {
    (void)state;
    km_client *c = new_client(g_srv.base);
    km_client_response r = {0};
    srv_reply(404, "application/json", "{\"error\":{\"code\":\"not_found\",\"message\":\"no such keygen\"}}");
    assert_int_equal(km_client_call(c, "GET", "/api/v1/keygen/x", NULL, NULL, &r), KM_OK);
    assert_int_equal(r.status, 404);
    assert_non_null(r.json);
    assert_string_equal(km_client_error_code(&r), "not_found");
    km_client_response_clear(&r);

    const char *not_errors[] = {"{\"error\":\"not_found\"}", "{\"error\":{\"code\":5}}", "{\"error\":{}}",
                                "[{\"error\":{\"code\":\"x\"}}]", "{\"ok\":true}"};
    for (size_t i = 0; i < sizeof not_errors / sizeof not_errors[0]; i++) {
        srv_reply(400, "application/json", not_errors[i]);
        assert_int_equal(km_client_call(c, "GET", "/x", NULL, NULL, &r), KM_OK);
        assert_non_null(r.json);
        assert_null(km_client_error_code(&r));
        km_client_response_clear(&r);
    }
    assert_null(km_client_error_code(NULL));
    assert_null(km_client_error_code(&r));
    km_client_free(c);
}

static void test_response_limit(void **state) {
    (void)state;
    km_client *c = new_client(g_srv.base);
    static char big[5000];
    memset(big, 'z', sizeof big - 1);
    srv_reply(200, "text/plain", big);
    km_client_set_max_response(c, 4096);
    km_client_response r = {0};
    assert_int_equal(km_client_call(c, "GET", "/big", NULL, NULL, &r), KM_ERR_RANGE);
    assert_int_equal(r.status, 0);
    assert_null(r.body.data);
    assert_null(r.json);
    km_client_set_max_response(c, 0); /* default again */
    assert_int_equal(km_client_call(c, "GET", "/big", NULL, NULL, &r), KM_OK);
    assert_int_equal(r.body.len, sizeof big - 1);
    km_client_response_clear(&r);
    km_client_free(c);
}

static void test_bad_arguments(void **state) {
    (void)state;
    secp256k1_keypair kp;
    unsigned char x[32];
    make_signer(&kp, x);
    km_client *c = NULL;
    const char *bad_urls[] = {"",
                              "127.0.0.1:8080",
                              "ftp://127.0.0.1",
                              "http://",
                              "http://127.0.0.1:8080/",
                              "http://127.0.0.1:8080/api?x=1",
                              "http://127.0.0.1#f",
                              "http://user@127.0.0.1",
                              "http://127.0.0.1 :80",
                              "file:///etc/passwd"};
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
        c = (km_client *)1;
        assert_int_equal(km_client_new(&c, g_ctx, bad_urls[i]), KM_ERR_ARG);
        assert_null(c);
    }
    assert_int_equal(km_client_new(&c, NULL, g_srv.base), KM_ERR_ARG);
    assert_int_equal(km_client_new(&c, g_ctx, NULL), KM_ERR_ARG);
    assert_int_equal(km_client_new(NULL, g_ctx, g_srv.base), KM_ERR_ARG);

    c = new_client(g_srv.base);
    km_client_response r = {0};
    const char *bad_methods[] = {"", "get", "G3T", "GET ", "POSTPOSTPOSTPOSTX"};
    for (size_t i = 0; i < sizeof bad_methods / sizeof bad_methods[0]; i++) {
        assert_int_equal(km_client_call(c, bad_methods[i], "/x", NULL, &kp, &r), KM_ERR_ARG);
        assert_int_equal(r.status, 0);
    }
    static char long_target[KM_REQAUTH_TARGET_MAX + 2];
    long_target[0] = '/';
    memset(long_target + 1, 'a', KM_REQAUTH_TARGET_MAX);
    const char *bad_targets[] = {"", "x", "/a b", "/a#frag", "/a\r\nX: y", "/caf\xc3\xa9", long_target};
    for (size_t i = 0; i < sizeof bad_targets / sizeof bad_targets[0]; i++) {
        assert_int_equal(km_client_call(c, "GET", bad_targets[i], NULL, &kp, &r), KM_ERR_ARG);
        assert_int_equal(r.status, 0);
    }
    assert_true(strlen(km_client_last_error(c)) > 0);
    assert_int_equal(km_client_call_raw(c, "POST", "/x", NULL, 3, NULL, NULL, NULL, &r), KM_ERR_ARG);
    assert_int_equal(km_client_call_raw(c, "POST", "/x", (const unsigned char *)"abc", 3,
                                        "text/plain\r\nX-Evil: 1", NULL, NULL, &r),
                     KM_ERR_ARG);
    km_client_auth_override ov;
    memset(&ov, 0, sizeof ov);
    ov.use = 1;
    assert_int_equal(km_client_call_raw(c, "GET", "/x", NULL, 0, NULL, NULL, &ov, &r), KM_ERR_ARG);
    assert_int_equal(km_client_call(NULL, "GET", "/x", NULL, NULL, &r), KM_ERR_ARG);
    assert_int_equal(km_client_call(c, NULL, "/x", NULL, NULL, &r), KM_ERR_ARG);
    assert_int_equal(km_client_call(c, "GET", NULL, NULL, NULL, &r), KM_ERR_ARG);
    assert_int_equal(km_client_call(c, "GET", "/x", NULL, NULL, NULL), KM_ERR_ARG);
    /* Nothing of the above reached the server. */
    assert_int_equal(srv_count(), 0);
    /* A long but legal target is fine. */
    long_target[KM_REQAUTH_TARGET_MAX] = '\0';
    assert_int_equal(km_client_call(c, "GET", long_target, NULL, &kp, &r), KM_OK);
    assert_string_equal(srv_last()->target, long_target);
    assert_int_equal(srv_last()->verify, KM_OK);
    assert_string_equal(km_client_last_error(c), "");
    km_client_response_clear(&r);
    km_client_free(c);
    km_client_free(NULL);
    km_client_response_clear(NULL);
}

/* A loopback port with nothing listening: bind, read the port, close. */
static unsigned free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void test_connection_refused(void **state) {
    (void)state;
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%u", free_port());
    km_client *c = new_client(base);
    secp256k1_keypair kp;
    unsigned char x[32];
    make_signer(&kp, x);
    km_client_response r = {0};
    assert_int_equal(km_client_call(c, "GET", "/api/v1/health", NULL, &kp, &r), KM_ERR_IO);
    assert_int_equal(r.status, 0);
    assert_null(r.body.data);
    assert_null(r.json);
    assert_false(km_client_last_timed_out(c));
    assert_true(strlen(km_client_last_error(c)) > 0);
    km_client_free(c);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_timeout(void **state) {
    (void)state;
    /* A socket that listens but never accepts: the connection completes in
     * the kernel's backlog, the request is buffered, no answer ever comes. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    km_client *c = new_client(base);
    km_client_set_timeout(c, 300);
    km_client_response r = {0};
    double t0 = now_s();
    assert_int_equal(km_client_call(c, "GET", "/api/v1/keygen/x?wait=60", NULL, NULL, &r), KM_ERR_IO);
    double dt = now_s() - t0;
    assert_true(km_client_last_timed_out(c));
    assert_true(dt >= 0.25 && dt < 5.0);
    assert_int_equal(r.status, 0);
    assert_null(r.body.data);
    km_client_free(c);
    close(fd);
}

typedef struct worker {
    const char *base;
    int ok;
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    km_client *c = NULL;
    secp256k1_keypair kp;
    unsigned char sec[32];
    if (km_client_new(&c, g_ctx, w->base) != KM_OK) return NULL;
    do {
        if (km_random_bytes(sec, 32) != KM_OK) goto out;
    } while (!secp256k1_keypair_create(km_ctx_secp(g_ctx), &kp, sec));
    for (int i = 0; i < 20; i++) {
        km_client_response r = {0};
        json_t *b = json_pack("{s:i}", "i", i);
        km_err err = km_client_call(c, "POST", "/w", b, &kp, &r);
        json_decref(b);
        if (err == KM_OK && r.status == 200 && r.json) w->ok++;
        km_client_response_clear(&r);
    }
out:
    km_wipe(sec, sizeof sec);
    km_wipe(&kp, sizeof kp);
    km_client_free(c);
    return NULL;
}

static void test_one_client_per_thread(void **state) {
    (void)state;
    pthread_t th[3];
    worker w[3];
    for (int i = 0; i < 3; i++) {
        w[i].base = g_srv.base;
        w[i].ok = 0;
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].ok, 20);
    }
    assert_int_equal(srv_count(), 60);
}

static void test_timeout_setting_default(void **state) {
    (void)state;
    /* A negative or zero timeout restores the default rather than meaning
     * "forever" or "immediately": the call still works. */
    km_client *c = new_client(g_srv.base);
    km_client_set_timeout(c, 0);
    km_client_response r = {0};
    assert_int_equal(km_client_call(c, "GET", "/x", NULL, NULL, &r), KM_OK);
    km_client_response_clear(&r);
    km_client_set_timeout(c, -5);
    assert_int_equal(km_client_call(c, "GET", "/x", NULL, NULL, &r), KM_OK);
    km_client_response_clear(&r);
    km_client_free(c);
}

#define T(f) cmocka_unit_test_setup_teardown(f, srv_start, srv_stop)

int main(void) {
    if (km_ctx_create(&g_ctx) != KM_OK) return 1;
    const struct CMUnitTest tests[] = {
        T(test_signed_get_with_query),
        T(test_signed_post_json),
        T(test_targets_sent_verbatim),
        T(test_unsigned_call),
        T(test_empty_post_and_other_methods),
        T(test_raw_binary_body),
        T(test_override_timestamp),
        T(test_override_nonce),
        T(test_claim_other_key),
        T(test_omit_and_corrupt_signature),
        T(test_replay_exact_headers),
        T(test_non_json_responses),
        T(test_error_code),
        T(test_response_limit),
        T(test_bad_arguments),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_timeout),
        T(test_one_client_per_thread),
        T(test_timeout_setting_default),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    km_ctx_destroy(g_ctx);
    return rc;
}
