/* test_sdk.c — the client SDK (include/keymeld/client.h) against a real
 * keymeld-gateway over two real keymeld-enclave processes: quickstart,
 * session export/import, batches with adaptors, subsets and tweaks,
 * approvals, single-signer keys; and the attacks the SDK must stop on the
 * client's side: substituted enclave keys and attestations, a tampered
 * aggregate key, tampered signatures and pre-signatures. The tampering is
 * done by a small HTTP proxy inside this test that sits between the SDK and
 * the gateway and rewrites answers (re-sealing results with the session key
 * where the attack needs a well-formed blob). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/devnet.h"
#include "gateway/support_gateway.h"
#include "keymeld/adaptor.h"
#include "keymeld/aead.h"
#include "keymeld/client.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "keymeld/musig.h"
#include "keymeld/session_crypto.h"
#include "keymeld/single.h"

#define WAIT_S 60

static km_gwtest g_t;
static unsigned char g_pcr0[48];
static km_buf g_root[2];

#define CHECK_OK(expr)                                                                                       \
    do {                                                                                                     \
        km_err e_ = (expr);                                                                                  \
        if (e_ != KM_OK)                                                                                     \
            fail_msg("%s:%d: %s -> %s (%s)", __FILE__, __LINE__, #expr, km_err_name(e_), last_err());        \
    } while (0)
#define CHECK_ERR(expr, want)                                                                                \
    do {                                                                                                     \
        km_err e_ = (expr);                                                                                  \
        if (e_ != (want))                                                                                    \
            fail_msg("%s:%d: %s -> %s, expected %s (%s)", __FILE__, __LINE__, #expr, km_err_name(e_),        \
                     km_err_name(want), last_err());                                                         \
    } while (0)

static km_sdk *g_last; /* the handle whose last error a failing check prints */
static const char *last_err(void) {
    return g_last ? km_sdk_last_error(g_last) : "";
}

/* ---- the tampering proxy ---------------------------------------------------------- */

enum tamper {
    T_NONE,
    T_ENCLAVE_KEY,   /* GET /enclaves/1: list enclave 0's key */
    T_KG_SUBST_KEY,  /* keygen result re-sealed with participant 0's key replaced (consistent aggregate) */
    T_KG_WRONG_AGG,  /* keygen result re-sealed with another output key */
    T_KG_FLIP,       /* keygen result ciphertext byte flipped */
    T_SIG_FLIP,      /* signing result re-sealed with a flipped byte in the first unit's s */
    T_SIG_COMPLETED, /* first unit's pre-signature replaced by the completed signature */
    T_NOT_FINAL,     /* a final signing state answered as "nonces" (a gateway that ignores long polls) */
};

typedef struct proxy {
    int lfd;
    uint16_t port;
    char url[64];
    pthread_t th;
    volatile int stop;
    pthread_mutex_t mu;
    enum tamper mode;
    km_session *keys; /* the session key of the attacked session (the attacker knows it) */
    km_uuid keygen_id;
    unsigned char adaptor_secret[32]; /* for T_SIG_COMPLETED */
    unsigned char item_msg[32];
    unsigned char item_key[32];
    int tampered; /* answers rewritten */
} proxy;

static proxy g_px;

static int read_all(int fd, km_buf *b, size_t want_total) {
    unsigned char tmp[16384];
    while (want_total == 0 || b->len < want_total) {
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return want_total == 0 ? 0 : -1;
        if (km_buf_put(b, tmp, (size_t)r) != KM_OK) return -1;
    }
    return 0;
}

/* The end of the header block (after CRLFCRLF), or 0. */
static size_t header_end(const km_buf *b) {
    for (size_t i = 3; i < b->len; i++)
        if (!memcmp(b->data + i - 3, "\r\n\r\n", 4)) return i + 1;
    return 0;
}

static size_t content_length(const char *head, size_t len) {
    const char *p = head;
    while (p < head + len) {
        const char *e = memchr(p, '\n', (size_t)(head + len - p));
        if (!e) break;
        if (!strncasecmp(p, "Content-Length:", 15)) return (size_t)strtoul(p + 15, NULL, 10);
        p = e + 1;
    }
    return 0;
}

/* Copy header lines except those named (the proxy sets them itself). */
static void copy_headers(km_buf *out, const char *head, size_t len) {
    const char *p = (const char *)memchr(head, '\n', len) + 1; /* after the start line */
    while (p < head + len) {
        const char *e = memchr(p, '\n', (size_t)(head + len - p));
        if (!e || e - p <= 1) break;
        if (strncasecmp(p, "Content-Length:", 15) && strncasecmp(p, "Connection:", 11) &&
            strncasecmp(p, "Keep-Alive:", 11) && strncasecmp(p, "Transfer-Encoding:", 18))
            (void)km_buf_put(out, p, (size_t)(e + 1 - p));
        p = e + 1;
    }
}

static int hex_field(json_t *o, const char *name, km_buf *out) {
    const char *s = json_string_value(json_object_get(o, name));
    km_buf_init(out);
    if (!s) return -1;
    size_t n = strlen(s) / 2;
    unsigned char *p = malloc(n + 1);
    size_t got = 0;
    int ok =
        p && km_hex_decode_var(p, n + 1, &got, s, strlen(s)) == KM_OK && km_buf_put(out, p, got) == KM_OK;
    free(p);
    return ok ? 0 : -1;
}

static void set_hex(json_t *o, const char *name, const unsigned char *p, size_t n) {
    char *s = malloc(2 * n + 1);
    assert_non_null(s);
    assert_int_equal(km_hex_encode(s, 2 * n + 1, p, n), KM_OK);
    json_object_set_new(o, name, json_string(s));
    free(s);
}

/* Open, change and re-seal a sealed result. Returns 1 if changed. */
static int reseal(proxy *px, json_t *o, const km_uuid *id, const char *purpose,
                  int (*edit)(proxy *, km_buf *)) {
    km_buf sealed, pt, again;
    km_buf_init(&pt);
    km_buf_init(&again);
    if (hex_field(o, "result", &sealed)) return 0;
    km_ad ad;
    size_t got = 0;
    int changed = 0;
    assert_int_equal(km_ad_build(&ad, purpose, id, NULL, 0), KM_OK);
    unsigned char *buf = malloc(sealed.len);
    assert_non_null(buf);
    if (km_session_open(px->keys, ad.bytes, ad.len, sealed.data, sealed.len, buf, sealed.len, &got) ==
        KM_OK) {
        assert_int_equal(km_buf_put(&pt, buf, got), KM_OK);
        if (edit(px, &pt)) {
            assert_int_equal(km_session_seal(px->keys, ad.bytes, ad.len, pt.data, pt.len, &again), KM_OK);
            set_hex(o, "result", again.data, again.len);
            changed = 1;
        }
    }
    free(buf);
    km_buf_free(&sealed);
    km_buf_free(&pt);
    km_buf_free(&again);
    return changed;
}

/* Keygen result layout: agg 32 | output 32 | parity 1 | mode 1 | data 32 | u16 n | keys. */
static int edit_subst_key(proxy *px, km_buf *pt) {
    (void)px;
    size_t n = ((size_t)pt->data[98] << 8) | pt->data[99];
    unsigned char sk[32];
    assert_int_equal(km_devnet_keypair(g_t.ctx, sk, pt->data + 100, NULL), KM_OK);
    km_musig_keyagg ka;
    size_t bad;
    km_tweak tw;
    tw.mode = (km_tweak_mode)pt->data[65];
    memcpy(tw.data, pt->data + 66, 32);
    assert_int_equal(km_musig_key_agg(g_t.ctx, &ka, pt->data + 100, n, &bad), KM_OK);
    assert_int_equal(km_musig_keyagg_tweak(g_t.ctx, &ka, &tw), KM_OK);
    memcpy(pt->data, ka.agg_xonly, 32);
    memcpy(pt->data + 32, ka.output_xonly, 32);
    pt->data[64] = (unsigned char)ka.output_parity;
    return 1;
}

static int edit_wrong_agg(proxy *px, km_buf *pt) {
    (void)px;
    pt->data[40] ^= 0x01;
    return 1;
}

/* Signing result: u32 n | id 16 | type 1 | u16 units | sig 64 | T 33 ... */
static int edit_sig_flip(proxy *px, km_buf *pt) {
    (void)px;
    pt->data[4 + 16 + 1 + 2 + 63] ^= 0x01;
    return 1;
}

static int edit_sig_completed(proxy *px, km_buf *pt) {
    unsigned char *sig = pt->data + 4 + 16 + 1 + 2, full[64];
    assert_int_equal(km_adaptor_adapt(g_t.ctx, full, sig, px->adaptor_secret, px->item_key, px->item_msg),
                     KM_OK);
    memcpy(sig, full, 64);
    return 1;
}

/* Rewrite an answer according to the proxy's mode. Returns 1 if changed. */
static int tamper(proxy *px, const char *target, json_t *o) {
    const char *st = json_string_value(json_object_get(o, "status"));
    int done = st && !strcmp(st, "completed") && json_is_string(json_object_get(o, "result"));
    switch (px->mode) {
    case T_ENCLAVE_KEY:
        if (strncmp(target, "/api/v1/enclaves/1?", 19)) return 0;
        set_hex(o, "public_key", g_t.enc[0].pub, 33);
        return 1;
    case T_KG_SUBST_KEY:
    case T_KG_WRONG_AGG:
    case T_KG_FLIP:
        if (strncmp(target, "/api/v1/keygen/", 15) || strstr(target, "/participants") || !done) return 0;
        if (px->mode == T_KG_FLIP) {
            km_buf b;
            if (hex_field(o, "result", &b)) return 0;
            b.data[b.len / 2] ^= 0x20;
            set_hex(o, "result", b.data, b.len);
            km_buf_free(&b);
            return 1;
        }
        return reseal(px, o, &px->keygen_id, KM_AD_KEYGEN_RESULT,
                      px->mode == T_KG_SUBST_KEY ? edit_subst_key : edit_wrong_agg);
    case T_SIG_FLIP:
    case T_SIG_COMPLETED: {
        if (strncmp(target, "/api/v1/signing/", 16) || !done) return 0;
        const char *sid = json_string_value(json_object_get(o, "signing_id"));
        km_uuid id;
        if (!sid || km_uuid_parse(&id, sid, strlen(sid)) != KM_OK) return 0;
        return reseal(px, o, &id, KM_AD_SIGNING_RESULT,
                      px->mode == T_SIG_FLIP ? edit_sig_flip : edit_sig_completed);
    }
    case T_NOT_FINAL:
        if (strncmp(target, "/api/v1/signing/", 16) || !done) return 0;
        json_object_set_new(o, "status", json_string("nonces"));
        json_object_del(o, "result");
        return 1;
    default:
        return 0;
    }
}

/* One request: read it, forward it (Connection: close), rewrite the answer,
 * send it back and close. */
static void proxy_one(proxy *px, int cfd) {
    km_buf req, up, resp, out;
    km_buf_init(&req);
    km_buf_init(&up);
    km_buf_init(&resp);
    km_buf_init(&out);
    unsigned char tmp[8192];
    size_t he = 0;
    while (!(he = header_end(&req))) {
        ssize_t r = read(cfd, tmp, sizeof tmp);
        if (r <= 0) goto done;
        (void)km_buf_put(&req, tmp, (size_t)r);
    }
    size_t cl = content_length((const char *)req.data, he);
    if (read_all(cfd, &req, he + cl)) goto done;
    char target[512] = "";
    const char *sp = memchr(req.data, ' ', he);
    /* The request is not NUL-terminated: take the target up to the next
     * space within the header (sscanf would read past the received bytes). */
    const char *te = sp ? memchr(sp + 1, ' ', he - (size_t)(sp + 1 - (const char *)req.data)) : NULL;
    if (te && (size_t)(te - sp - 1) < sizeof target) {
        memcpy(target, sp + 1, (size_t)(te - sp - 1));
        target[te - sp - 1] = '\0';
    }
    const char *eol = memchr(req.data, '\n', he);
    (void)km_buf_put(&up, req.data, (size_t)(eol + 1 - (const char *)req.data));
    copy_headers(&up, (const char *)req.data, he);
    char line[64];
    snprintf(line, sizeof line, "Content-Length: %zu\r\nConnection: close\r\n\r\n", cl);
    (void)km_buf_put(&up, line, strlen(line));
    (void)km_buf_put(&up, req.data + he, cl);

    int ufd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(g_t.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ufd < 0 || connect(ufd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (ufd >= 0) close(ufd);
        goto done;
    }
    (void)!write(ufd, up.data, up.len);
    (void)read_all(ufd, &resp, 0);
    close(ufd);
    size_t rhe = header_end(&resp);
    if (!rhe) goto done;
    const char *body = (const char *)resp.data + rhe;
    size_t blen = resp.len - rhe;
    char *newbody = NULL;
    json_t *o = json_loadb(body, blen, 0, NULL);
    pthread_mutex_lock(&px->mu);
    if (o && tamper(px, target, o)) {
        newbody = json_dumps(o, JSON_COMPACT);
        px->tampered++;
    }
    pthread_mutex_unlock(&px->mu);
    json_decref(o);
    if (newbody) {
        body = newbody;
        blen = strlen(newbody);
    }
    eol = memchr(resp.data, '\n', rhe);
    (void)km_buf_put(&out, resp.data, (size_t)(eol + 1 - (const char *)resp.data));
    copy_headers(&out, (const char *)resp.data, rhe);
    snprintf(line, sizeof line, "Content-Length: %zu\r\nConnection: close\r\n\r\n", blen);
    (void)km_buf_put(&out, line, strlen(line));
    (void)km_buf_put(&out, body, blen);
    (void)!write(cfd, out.data, out.len);
    free(newbody);
done:
    close(cfd);
    km_buf_free(&req);
    km_buf_free(&up);
    km_buf_free(&resp);
    km_buf_free(&out);
}

static void *proxy_main(void *arg) {
    proxy *px = arg;
    while (!px->stop) {
        struct pollfd p = {.fd = px->lfd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0) continue;
        int cfd = accept4(px->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd >= 0) proxy_one(px, cfd);
    }
    return NULL;
}

static void proxy_start(proxy *px) {
    memset(px, 0, sizeof *px);
    px->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(px->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    assert_int_equal(bind(px->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(px->lfd, 16), 0);
    assert_int_equal(getsockname(px->lfd, (struct sockaddr *)&a, &al), 0);
    px->port = ntohs(a.sin_port);
    snprintf(px->url, sizeof px->url, "http://127.0.0.1:%u", px->port);
    pthread_mutex_init(&px->mu, NULL);
    assert_int_equal(pthread_create(&px->th, NULL, proxy_main, px), 0);
}

static void proxy_stop(proxy *px) {
    px->stop = 1;
    pthread_join(px->th, NULL);
    close(px->lfd);
    pthread_mutex_destroy(&px->mu);
    km_session_free(px->keys);
    px->keys = NULL;
}

static void proxy_mode(proxy *px, enum tamper m) {
    pthread_mutex_lock(&px->mu);
    px->mode = m;
    px->tampered = 0;
    pthread_mutex_unlock(&px->mu);
}

static int proxy_tampered(proxy *px) {
    pthread_mutex_lock(&px->mu);
    int n = px->tampered;
    pthread_mutex_unlock(&px->mu);
    return n;
}

/* ---- harness ----------------------------------------------------------------------- */

static int group_setup(void **state) {
    (void)state;
    km_err err = km_gwtest_start(&g_t, 2, NULL);
    if (err) {
        fprintf(stderr, "harness start: %s\n", km_strerror(err));
        return -1;
    }
    /* PCR0 of a development enclave: SHA-384 of its binary. */
    FILE *f = fopen(KM_ENCLAVE_BIN, "rb");
    if (!f) return -1;
    km_buf bin;
    km_buf_init(&bin);
    unsigned char chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (km_buf_put(&bin, chunk, r) != KM_OK) break;
    fclose(f);
    km_sha384(g_pcr0, bin.data, bin.len);
    km_buf_free(&bin);
    for (int i = 0; i < 2; i++)
        if (km_gwtest_ca_root(&g_t, i, &g_root[i]) != KM_OK) return -1;
    proxy_start(&g_px);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    proxy_stop(&g_px);
    km_buf_free(&g_root[0]);
    km_buf_free(&g_root[1]);
    km_gwtest_stop(&g_t);
    return 0;
}

/* A handle for url trusting each enclave's own dev root and PCR0; with
 * verify, every enclave is verified. */
static km_sdk *new_sdk(const char *url, int verify) {
    km_sdk *sdk = NULL;
    CHECK_OK(km_sdk_new(&sdk, g_t.ctx, url));
    g_last = sdk;
    for (uint32_t i = 0; i < 2; i++)
        CHECK_OK(km_sdk_trust_root(sdk, i, g_root[i].data, g_root[i].len));
    CHECK_OK(km_sdk_pin_pcr(sdk, 0, g_pcr0, 48));
    if (verify) {
        size_t n = 0;
        CHECK_OK(km_sdk_verify_enclaves(sdk, &n));
        assert_int_equal(n, 2);
    }
    return sdk;
}

typedef struct party {
    unsigned char sk[32], pub[33], auth[32];
} party;

static void parties(party *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        CHECK_OK(km_devnet_keypair(g_t.ctx, p[i].sk, p[i].pub, NULL));
        CHECK_OK(km_devnet_keypair(g_t.ctx, p[i].auth, NULL, NULL));
    }
}

static void wipe_parties(party *p, size_t n) {
    km_wipe(p, n * sizeof *p);
}

/* Create a keygen of n participants (coordinator handle sdk) and join all. */
static km_sdk_session *keygen_all(km_sdk *sdk, party *p, size_t n, const km_subset_def *subs, size_t ns,
                                  const uint8_t *approval) {
    km_sdk_keygen_params kp;
    memset(&kp, 0, sizeof kp);
    kp.n_participants = n;
    km_tweak_bip86(&kp.tweak);
    kp.n_subsets = ns;
    kp.subsets = subs;
    kp.timeout_secs = 600;
    km_sdk_session *s = NULL;
    CHECK_OK(km_sdk_keygen_create(sdk, &kp, &s));
    parties(p, n);
    for (size_t i = 0; i < n; i++)
        CHECK_OK(km_sdk_keygen_join(sdk, s, i, p[i].sk, p[i].auth, approval ? approval[i] : 0));
    return s;
}

static void item(km_sign_item *it) {
    memset(it, 0, sizeof *it);
    CHECK_OK(km_uuid_v7(&it->id, (uint64_t)time(NULL) * 1000u));
    CHECK_OK(km_random_bytes(it->msg, 32));
}

static km_uuid new_id(void) {
    km_uuid u;
    CHECK_OK(km_uuid_v7(&u, (uint64_t)time(NULL) * 1000u));
    return u;
}

/* ---- flows --------------------------------------------------------------------------- */

static void test_quickstart(void **state) {
    (void)state;
    km_sdk *sdk = new_sdk(g_t.base_url, 1);
    party p[3];
    km_sdk_session *s = keygen_all(sdk, p, 3, NULL, 0, NULL);
    km_sdk_keygen_result kg;
    CHECK_OK(km_sdk_keygen_wait(sdk, s, WAIT_S, &kg));
    /* The key is what BIP-327 + BIP-86 give for these three keys. */
    unsigned char keys[3][33];
    for (int i = 0; i < 3; i++)
        memcpy(keys[i], p[i].pub, 33);
    km_musig_keyagg ka;
    km_tweak tw;
    km_tweak_bip86(&tw);
    size_t bad;
    CHECK_OK(km_musig_key_agg(g_t.ctx, &ka, &keys[0][0], 3, &bad));
    CHECK_OK(km_musig_keyagg_tweak(g_t.ctx, &ka, &tw));
    assert_memory_equal(kg.output_xonly, ka.output_xonly, 32);
    assert_memory_equal(kg.agg_xonly, ka.agg_xonly, 32);
    assert_int_equal(kg.n_participants, 3);
    assert_memory_equal(kg.pubkeys[2], p[2].pub, 33);

    km_sign_item it;
    item(&it);
    km_uuid sid = new_id();
    CHECK_OK(km_sdk_sign_create(sdk, s, &sid, &it, 1, 600));
    CHECK_OK(km_sdk_sign_create(sdk, s, &sid, &it, 1, 600)); /* an identical repeat */
    km_sdk_sign_result res;
    CHECK_OK(km_sdk_sign_wait(sdk, s, &sid, &it, 1, WAIT_S, &res));
    assert_int_equal(res.n, 1);
    assert_int_equal(res.items[0].n_units, 1);
    assert_memory_equal(res.items[0].key_xonly, kg.output_xonly, 32);
    CHECK_OK(km_single_schnorr_verify(g_t.ctx, res.items[0].units[0].sig, it.msg, 32, kg.output_xonly));
    /* Another batch under the same signing id is refused by the gateway. */
    km_sign_item other;
    item(&other);
    CHECK_ERR(km_sdk_sign_create(sdk, s, &sid, &other, 1, 600), KM_ERR_STATE);
    assert_non_null(strstr(km_sdk_last_error(sdk), "409"));
    /* Waiting with the wrong items: the result does not match them. */
    km_sdk_sign_result res2;
    CHECK_ERR(km_sdk_sign_wait(sdk, s, &sid, &other, 1, WAIT_S, &res2), KM_ERR_PARSE);
    assert_null(res2.items);
    km_sdk_sign_result_clear(&res);
    /* Create and wait in one request: the verified signature comes back with
     * the 201; a repeat returns the same signature. */
    km_uuid sid3 = new_id();
    CHECK_OK(km_sdk_sign(sdk, s, &sid3, &it, 1, 600, WAIT_S, &res));
    CHECK_OK(km_single_schnorr_verify(g_t.ctx, res.items[0].units[0].sig, it.msg, 32, kg.output_xonly));
    CHECK_OK(km_sdk_sign(sdk, s, &sid3, &it, 1, 600, WAIT_S, &res2));
    assert_memory_equal(res2.items[0].units[0].sig, res.items[0].units[0].sig, 64);
    km_sdk_sign_result_clear(&res2);
    km_sdk_sign_result_clear(&res);
    km_sdk_keygen_result_clear(&kg);
    wipe_parties(p, 3);
    km_sdk_session_free(s);
    km_sdk_free(sdk);
}

static void test_export_import(void **state) {
    (void)state;
    km_sdk *coord = new_sdk(g_t.base_url, 1);
    km_sdk_keygen_params kp;
    memset(&kp, 0, sizeof kp);
    kp.n_participants = 2;
    km_tweak_bip86(&kp.tweak);
    kp.timeout_secs = 600;
    km_sdk_session *s = NULL;
    CHECK_OK(km_sdk_keygen_create(coord, &kp, &s));
    char *json = NULL;
    CHECK_OK(km_sdk_session_export(s, &json));

    /* The second participant: its own handle, its own verification, the
     * imported invitation. */
    km_sdk *other = new_sdk(g_t.base_url, 1);
    km_sdk_session *s2 = NULL;
    CHECK_OK(km_sdk_session_import(g_t.ctx, json, &s2));
    char *again = NULL;
    CHECK_OK(km_sdk_session_export(s2, &again));
    assert_string_equal(again, json);
    party p[2];
    parties(p, 2);
    g_last = coord;
    CHECK_OK(km_sdk_keygen_join(coord, s, 0, p[0].sk, p[0].auth, 0));
    g_last = other;
    CHECK_OK(km_sdk_keygen_join(other, s2, 1, p[1].sk, p[1].auth, 0));
    CHECK_OK(km_sdk_keygen_join(other, s2, 1, p[1].sk, p[1].auth, 0)); /* identical repeat */
    /* A different registration for the same participant is refused. */
    CHECK_ERR(km_sdk_keygen_join(other, s2, 1, p[0].sk, p[1].auth, 0), KM_ERR_STATE);
    km_sdk_keygen_result k1, k2;
    CHECK_OK(km_sdk_keygen_wait(other, s2, WAIT_S, &k2));
    g_last = coord;
    CHECK_OK(km_sdk_keygen_wait(coord, s, WAIT_S, &k1));
    assert_memory_equal(k1.output_xonly, k2.output_xonly, 32);

    /* Sign from the imported copy; wait from a fresh import that has never
     * seen the keygen result (it fetches and checks it itself). */
    km_sign_item it;
    item(&it);
    km_uuid sid = new_id();
    g_last = other;
    CHECK_OK(km_sdk_sign_create(other, s2, &sid, &it, 1, 600));
    km_sdk_session *s3 = NULL;
    CHECK_OK(km_sdk_session_import(g_t.ctx, json, &s3));
    km_sdk_sign_result res;
    CHECK_OK(km_sdk_sign_wait(other, s3, &sid, &it, 1, WAIT_S, &res));
    CHECK_OK(km_single_schnorr_verify(g_t.ctx, res.items[0].units[0].sig, it.msg, 32, k1.output_xonly));
    km_sdk_sign_result_clear(&res);

    /* The session secret reached no log, neither raw nor as hex. */
    {
        json_t *o = json_loads(json, 0, NULL);
        assert_non_null(o);
        const char *hex = json_string_value(json_object_get(o, "session_secret"));
        unsigned char raw[32];
        CHECK_OK(km_hex_decode(raw, 32, hex, 64));
        assert_int_equal(km_gwtest_log_contains(&g_t, hex, 64), 0);
        assert_int_equal(km_gwtest_log_contains(&g_t, raw, 32), 0);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(km_gwtest_enclave_log_contains(&g_t, i, hex, 64), 0);
            assert_int_equal(km_gwtest_enclave_log_contains(&g_t, i, raw, 32), 0);
        }
        km_wipe(raw, sizeof raw);
        json_decref(o);
    }
    km_wipe(json, strlen(json));
    km_wipe(again, strlen(again));
    free(json);
    free(again);
    km_sdk_keygen_result_clear(&k1);
    km_sdk_keygen_result_clear(&k2);
    wipe_parties(p, 2);
    km_sdk_session_free(s);
    km_sdk_session_free(s2);
    km_sdk_session_free(s3);
    km_sdk_free(coord);
    km_sdk_free(other);
}

static void test_batch(void **state) {
    (void)state;
    km_sdk *sdk = new_sdk(g_t.base_url, 1);
    uint16_t members[2] = {0, 2};
    km_subset_def sub = {.n = 2, .members = members};
    sub.id = new_id();
    party p[3];
    km_sdk_session *s = keygen_all(sdk, p, 3, &sub, 1, NULL);
    km_sdk_keygen_result kg;
    CHECK_OK(km_sdk_keygen_wait(sdk, s, WAIT_S, &kg));
    assert_int_equal(kg.n_subsets, 1);
    assert_memory_equal(kg.subset_ids[0].b, sub.id.b, 16);

    enum { N = 6 };
    km_sign_item it[N];
    unsigned char t[N][3][32];
    for (int i = 0; i < N; i++)
        item(&it[i]);
    /* 1: own x-only tweak; 2: the subset; 3: Single; 4: And (2); 5: Or (3). */
    unsigned char scalar[32] = {0};
    scalar[31] = 7;
    it[1].own_tweak = 1;
    km_tweak_xonly(&it[1].tweak, scalar);
    it[2].has_subset = 1;
    it[2].subset_id = sub.id;
    const km_adaptor_type types[3] = {KM_ADAPTOR_SINGLE, KM_ADAPTOR_AND, KM_ADAPTOR_OR};
    const uint16_t npts[3] = {1, 2, 3};
    for (int k = 0; k < 3; k++) {
        km_sign_item *x = &it[3 + k];
        x->adaptor = types[k];
        x->n_points = npts[k];
        for (uint16_t q = 0; q < npts[k]; q++) {
            CHECK_OK(km_devnet_keypair(g_t.ctx, t[3 + k][q], NULL, NULL));
            CHECK_OK(km_adaptor_point_from_secret(g_t.ctx, x->points[q], t[3 + k][q]));
        }
    }
    it[4].has_subset = 1; /* an adaptor on the subset too */
    it[4].subset_id = sub.id;
    km_uuid sid = new_id();
    CHECK_OK(km_sdk_sign_create(sdk, s, &sid, it, N, 600));
    km_sdk_sign_result res;
    CHECK_OK(km_sdk_sign_wait(sdk, s, &sid, it, N, WAIT_S, &res));
    assert_int_equal(res.n, N);
    /* Independent checks of what the SDK returned. */
    assert_memory_equal(res.items[0].key_xonly, kg.output_xonly, 32);
    assert_memory_not_equal(res.items[1].key_xonly, kg.output_xonly, 32);
    assert_memory_equal(res.items[2].key_xonly, kg.subset_output[0], 32);
    assert_memory_equal(res.items[4].key_xonly, kg.subset_output[0], 32);
    for (int i = 0; i < 3; i++)
        CHECK_OK(km_single_schnorr_verify(g_t.ctx, res.items[i].units[0].sig, it[i].msg, 32,
                                          res.items[i].key_xonly));
    for (int k = 0; k < 3; k++) {
        const km_sdk_item_result *ir = &res.items[3 + k];
        assert_int_equal(ir->adaptor, types[k]);
        assert_int_equal(ir->n_units, types[k] == KM_ADAPTOR_OR ? 3 : 1);
        for (uint16_t v = 0; v < ir->n_units; v++) {
            unsigned char tt[32], full[64], back[32];
            if (types[k] == KM_ADAPTOR_AND) {
                const unsigned char *ss[2] = {t[4][0], t[4][1]};
                CHECK_OK(km_adaptor_secret_sum(g_t.ctx, tt, ss, 2));
            } else {
                memcpy(tt, t[3 + k][types[k] == KM_ADAPTOR_OR ? v : 0], 32);
            }
            assert_true(ir->units[v].has_T);
            CHECK_ERR(km_single_schnorr_verify(g_t.ctx, ir->units[v].sig, it[3 + k].msg, 32, ir->key_xonly),
                      KM_ERR_VERIFY);
            CHECK_OK(km_adaptor_adapt(g_t.ctx, full, ir->units[v].sig, tt, ir->key_xonly, it[3 + k].msg));
            CHECK_OK(km_single_schnorr_verify(g_t.ctx, full, it[3 + k].msg, 32, ir->key_xonly));
            CHECK_OK(km_adaptor_extract(g_t.ctx, back, ir->units[v].sig, full, ir->units[v].T));
            assert_memory_equal(back, tt, 32);
        }
    }
    /* An item naming a subset the session does not have: refused locally. */
    km_sign_item bad = it[0];
    bad.has_subset = 1;
    bad.subset_id = new_id();
    km_uuid sid2 = new_id();
    CHECK_ERR(km_sdk_sign_create(sdk, s, &sid2, &bad, 1, 600), KM_ERR_ARG);
    CHECK_ERR(km_sdk_sign_create(sdk, s, &sid2, it, 0, 600), KM_ERR_RANGE);
    km_sdk_sign_result_clear(&res);
    km_sdk_keygen_result_clear(&kg);
    km_wipe(t, sizeof t);
    wipe_parties(p, 3);
    km_sdk_session_free(s);
    km_sdk_free(sdk);
}

static void test_approvals(void **state) {
    (void)state;
    km_sdk *sdk = new_sdk(g_t.base_url, 1);
    const uint8_t approval[2] = {0, 1};
    party p[2];
    km_sdk_session *s = keygen_all(sdk, p, 2, NULL, 0, approval);
    km_sdk_keygen_result kg;
    CHECK_OK(km_sdk_keygen_wait(sdk, s, WAIT_S, &kg));
    km_sign_item it, other;
    item(&it);
    item(&other);
    km_uuid sid = new_id();
    CHECK_OK(km_sdk_sign_create(sdk, s, &sid, &it, 1, 600));
    /* Without the approval the session waits: a short wait times out. */
    km_sdk_sign_result res;
    CHECK_ERR(km_sdk_sign_wait(sdk, s, &sid, &it, 1, 2, &res), KM_ERR_RANGE);
    /* An approval of other items is refused by the enclave. */
    CHECK_ERR(km_sdk_sign_approve(sdk, s, 1, p[1].auth, &sid, &other, 1), KM_ERR_VERIFY);
    /* An approval signed by another participant's auth key: refused. */
    CHECK_ERR(km_sdk_sign_approve(sdk, s, 1, p[0].auth, &sid, &it, 1), KM_ERR_STATE);
    CHECK_OK(km_sdk_sign_approve(sdk, s, 1, p[1].auth, &sid, &it, 1));
    /* A repeat (a client whose answer was lost) is the same approval, not a
     * conflicting one (found by keymeld-chaos: it was answered 409). */
    CHECK_OK(km_sdk_sign_approve(sdk, s, 1, p[1].auth, &sid, &it, 1));
    CHECK_OK(km_sdk_sign_wait(sdk, s, &sid, &it, 1, WAIT_S, &res));
    CHECK_OK(km_single_schnorr_verify(g_t.ctx, res.items[0].units[0].sig, it.msg, 32, kg.output_xonly));
    km_sdk_sign_result_clear(&res);
    /* Create-and-wait (POST ?wait&until=final): without the approval the
     * create is answered (stored, on disk) when the wait ends, and the
     * session goes on; a repeat after the approval returns the result. */
    km_uuid sid2 = new_id();
    CHECK_ERR(km_sdk_sign(sdk, s, &sid2, &it, 1, 600, 2, &res), KM_ERR_RANGE);
    CHECK_OK(km_sdk_sign_approve(sdk, s, 1, p[1].auth, &sid2, &it, 1));
    CHECK_OK(km_sdk_sign(sdk, s, &sid2, &it, 1, 600, WAIT_S, &res));
    CHECK_OK(km_single_schnorr_verify(g_t.ctx, res.items[0].units[0].sig, it.msg, 32, kg.output_xonly));
    km_sdk_sign_result_clear(&res);
    km_sdk_keygen_result_clear(&kg);
    wipe_parties(p, 2);
    km_sdk_session_free(s);
    km_sdk_free(sdk);
}

static void test_single_keys(void **state) {
    (void)state;
    km_sdk *sdk = new_sdk(g_t.base_url, 1);
    party k;
    parties(&k, 1);
    km_uuid kid = new_id(), uid = new_id();
    uint32_t eid = 99;
    CHECK_OK(km_sdk_key_import(sdk, &kid, &uid, k.sk, k.auth, 1, &eid));
    assert_true(eid < 2);
    CHECK_OK(km_sdk_key_import(sdk, &kid, &uid, k.sk, k.auth, 1, &eid)); /* identical repeat */
    unsigned char sig[64], msg[100], digest[32];
    CHECK_OK(km_random_bytes(msg, sizeof msg));
    km_sha256(digest, msg, sizeof msg);
    CHECK_OK(km_sdk_key_sign(sdk, &kid, &uid, k.pub, k.auth, KM_KEY_ALGO_SCHNORR, msg, sizeof msg, 1, WAIT_S,
                             sig));
    CHECK_OK(km_single_schnorr_verify(g_t.ctx, sig, msg, sizeof msg, k.pub + 1));
    CHECK_OK(km_sdk_key_sign(sdk, &kid, &uid, k.pub, k.auth, KM_KEY_ALGO_ECDSA, digest, 32, 1, WAIT_S, sig));
    CHECK_OK(km_single_ecdsa_verify(g_t.ctx, sig, digest, k.pub));
    /* The key requires approval: without it the enclave refuses. */
    CHECK_ERR(
        km_sdk_key_sign(sdk, &kid, &uid, k.pub, k.auth, KM_KEY_ALGO_SCHNORR, msg, sizeof msg, 0, WAIT_S, sig),
        KM_ERR_STATE);
    static const unsigned char zero[64];
    assert_memory_equal(sig, zero, 64);
    /* A caller naming another public key: the real signature does not
     * verify under it and is not returned. */
    party wrong;
    parties(&wrong, 1);
    CHECK_ERR(
        km_sdk_key_sign(sdk, &kid, &uid, wrong.pub, k.auth, KM_KEY_ALGO_SCHNORR, msg, 32, 1, WAIT_S, sig),
        KM_ERR_VERIFY);
    assert_memory_equal(sig, zero, 64);
    CHECK_ERR(km_sdk_key_sign(sdk, &kid, &uid, k.pub, k.auth, KM_KEY_ALGO_ECDSA, msg, 31, 1, WAIT_S, sig),
              KM_ERR_RANGE);
    CHECK_OK(km_sdk_key_delete(sdk, &kid, &uid, k.auth));
    CHECK_ERR(km_sdk_key_delete(sdk, &kid, &uid, k.auth), KM_ERR_NOT_FOUND);
    CHECK_ERR(km_sdk_key_sign(sdk, &kid, &uid, k.pub, k.auth, KM_KEY_ALGO_SCHNORR, msg, 32, 1, WAIT_S, sig),
              KM_ERR_NOT_FOUND);
    wipe_parties(&k, 1);
    wipe_parties(&wrong, 1);
    km_sdk_free(sdk);
}

/* ---- attacks ------------------------------------------------------------------------- */

static void test_attack_enclave_substitution(void **state) {
    (void)state;
    /* An honest coordinator's invitation: participant 1 is on enclave 1. */
    km_sdk *honest = new_sdk(g_t.base_url, 1);
    km_sdk_keygen_params kp;
    memset(&kp, 0, sizeof kp);
    kp.n_participants = 2;
    km_tweak_bip86(&kp.tweak);
    kp.timeout_secs = 600;
    km_sdk_session *s = NULL;
    CHECK_OK(km_sdk_keygen_create(honest, &kp, &s));
    uint32_t e1 = 0;
    CHECK_OK(km_sdk_session_participant(s, 1, NULL, &e1));
    assert_int_equal(e1, 1);
    party p[2];
    parties(p, 2);

    /* (a) The document of enclave 1 does not chain to the root pinned for
     * it (enclave 0's root): refused, nothing encrypted to enclave 1. */
    km_sdk *a = NULL;
    CHECK_OK(km_sdk_new(&a, g_t.ctx, g_t.base_url));
    g_last = a;
    CHECK_OK(km_sdk_trust_root(a, 0, g_root[0].data, g_root[0].len));
    CHECK_OK(km_sdk_trust_root(a, 1, g_root[0].data, g_root[0].len));
    CHECK_OK(km_sdk_pin_pcr(a, 0, g_pcr0, 48));
    unsigned char pub[33];
    CHECK_ERR(km_sdk_verify_enclave(a, 1, pub), KM_ERR_ATTESTATION);
    size_t n = 0;
    CHECK_ERR(km_sdk_verify_enclaves(a, &n), KM_ERR_ATTESTATION);
    assert_int_equal(n, 1);
    CHECK_ERR(km_sdk_keygen_join(a, s, 1, p[1].sk, p[1].auth, 0), KM_ERR_STATE);

    /* (b) A wrong PCR0 (another enclave image): nothing verifies, and a
     * keygen refuses to encrypt to anyone. */
    km_sdk *b = new_sdk(g_t.base_url, 0);
    g_last = b;
    unsigned char other_pcr[48];
    memcpy(other_pcr, g_pcr0, 48);
    other_pcr[0] ^= 1;
    CHECK_OK(km_sdk_pin_pcr(b, 0, other_pcr, 48));
    CHECK_ERR(km_sdk_verify_enclaves(b, &n), KM_ERR_ATTESTATION);
    assert_int_equal(n, 0);
    assert_non_null(strstr(km_sdk_last_error(b), "PCR"));
    km_sdk_session *s2 = (km_sdk_session *)0x1;
    CHECK_ERR(km_sdk_keygen_create(b, &kp, &s2), KM_ERR_STATE);
    assert_null(s2);
    CHECK_ERR(km_sdk_keygen_join(b, s, 0, p[0].sk, p[0].auth, 0), KM_ERR_STATE);

    /* (c) The gateway lists enclave 0's key for enclave 1 (a substituted
     * key): the document binds the real key, so the check fails, and a key
     * verified earlier is forgotten. */
    km_sdk *c = new_sdk(g_px.url, 1);
    g_last = c;
    proxy_mode(&g_px, T_ENCLAVE_KEY);
    CHECK_ERR(km_sdk_verify_enclave(c, 1, pub), KM_ERR_ATTESTATION);
    assert_true(proxy_tampered(&g_px) >= 1);
    assert_non_null(strstr(km_sdk_last_error(c), "substituted"));
    CHECK_ERR(km_sdk_keygen_join(c, s, 1, p[1].sk, p[1].auth, 0), KM_ERR_STATE);
    proxy_mode(&g_px, T_NONE);
    CHECK_OK(km_sdk_verify_enclave(c, 1, pub));
    assert_memory_equal(pub, g_t.enc[1].pub, 33);

    /* (d) No root pinned at all for an enclave. */
    km_sdk *d = NULL;
    CHECK_OK(km_sdk_new(&d, g_t.ctx, g_t.base_url));
    CHECK_ERR(km_sdk_verify_enclave(d, 0, pub), KM_ERR_NOT_FOUND);
    /* A root for every enclave (the Nitro-style global pin) that is not
     * theirs: refused too. */
    CHECK_OK(km_sdk_trust_root(d, UINT32_MAX, g_root[1].data, g_root[1].len));
    CHECK_ERR(km_sdk_verify_enclave(d, 0, pub), KM_ERR_ATTESTATION);
    CHECK_OK(km_sdk_verify_enclave(d, 1, pub));

    wipe_parties(p, 2);
    km_sdk_session_free(s);
    km_sdk_free(honest);
    km_sdk_free(a);
    km_sdk_free(b);
    km_sdk_free(c);
    km_sdk_free(d);
}

/* The session key of s, as an attacker who holds the invitation has it. */
static km_session *session_keys_of(const km_sdk_session *s) {
    char *json = NULL;
    CHECK_OK(km_sdk_session_export(s, &json));
    json_t *o = json_loads(json, 0, NULL);
    assert_non_null(o);
    unsigned char secret[32];
    CHECK_OK(km_hex_decode(secret, 32, json_string_value(json_object_get(o, "session_secret")), 64));
    km_session *keys = NULL;
    CHECK_OK(km_session_derive(g_t.ctx, secret, &keys));
    km_wipe(secret, sizeof secret);
    json_decref(o);
    km_wipe(json, strlen(json));
    free(json);
    return keys;
}

static void test_attack_tampered_aggregate(void **state) {
    (void)state;
    km_sdk *sdk = new_sdk(g_px.url, 1);
    party p[2];
    km_sdk_session *s = keygen_all(sdk, p, 2, NULL, 0, NULL);
    pthread_mutex_lock(&g_px.mu);
    km_session_free(g_px.keys);
    g_px.keys = session_keys_of(s);
    CHECK_OK(km_sdk_session_info(s, &g_px.keygen_id, NULL));
    pthread_mutex_unlock(&g_px.mu);

    km_sdk_keygen_result kg;
    static const enum tamper modes[3] = {T_KG_SUBST_KEY, T_KG_WRONG_AGG, T_KG_FLIP};
    static const km_err want[3] = {KM_ERR_VERIFY, KM_ERR_VERIFY, KM_ERR_DECRYPT};
    for (int m = 0; m < 3; m++) {
        proxy_mode(&g_px, modes[m]);
        memset(&kg, 0xa5, sizeof kg);
        CHECK_ERR(km_sdk_keygen_wait(sdk, s, WAIT_S, &kg), want[m]);
        assert_true(proxy_tampered(&g_px) >= 1);
        /* Nothing of the refused result is handed out. */
        assert_null(kg.pubkeys);
        assert_int_equal(kg.n_participants, 0);
        static const unsigned char zero[32];
        assert_memory_equal(kg.output_xonly, zero, 32);
    }
    /* The honest answer is still accepted. */
    proxy_mode(&g_px, T_NONE);
    CHECK_OK(km_sdk_keygen_wait(sdk, s, WAIT_S, &kg));
    km_sdk_keygen_result_clear(&kg);
    wipe_parties(p, 2);
    km_sdk_session_free(s);
    km_sdk_free(sdk);
}

static void test_attack_tampered_signature(void **state) {
    (void)state;
    km_sdk *sdk = new_sdk(g_px.url, 1);
    party p[2];
    km_sdk_session *s = keygen_all(sdk, p, 2, NULL, 0, NULL);
    km_sdk_keygen_result kg;
    CHECK_OK(km_sdk_keygen_wait(sdk, s, WAIT_S, &kg));
    pthread_mutex_lock(&g_px.mu);
    km_session_free(g_px.keys);
    g_px.keys = session_keys_of(s);
    pthread_mutex_unlock(&g_px.mu);

    /* A regular signature with one flipped byte. */
    km_sign_item it;
    item(&it);
    km_uuid sid = new_id();
    CHECK_OK(km_sdk_sign_create(sdk, s, &sid, &it, 1, 600));
    km_sdk_sign_result res;
    proxy_mode(&g_px, T_SIG_FLIP);
    CHECK_ERR(km_sdk_sign_wait(sdk, s, &sid, &it, 1, WAIT_S, &res), KM_ERR_VERIFY);
    assert_true(proxy_tampered(&g_px) >= 1);
    assert_null(res.items);
    proxy_mode(&g_px, T_NONE);
    CHECK_OK(km_sdk_sign_wait(sdk, s, &sid, &it, 1, WAIT_S, &res));
    km_sdk_sign_result_clear(&res);

    /* A gateway that answers every long poll at once with a state that is
     * not final: the client paces itself (a pause after each early answer)
     * instead of sending requests in a tight loop until its deadline. */
    proxy_mode(&g_px, T_NOT_FINAL);
    CHECK_ERR(km_sdk_sign_wait(sdk, s, &sid, &it, 1, 2, &res), KM_ERR_RANGE);
    int polls = proxy_tampered(&g_px);
    assert_true(polls >= 2);
    assert_true(polls <= 2000 / 100 + 5);
    proxy_mode(&g_px, T_NONE);

    /* An adaptor pre-signature with one flipped byte; then the pre-signature
     * replaced by the completed signature (which would let the counterparty
     * take the payment without revealing the adaptor secret). */
    km_sign_item ad;
    item(&ad);
    unsigned char t[32];
    CHECK_OK(km_devnet_keypair(g_t.ctx, t, NULL, NULL));
    ad.adaptor = KM_ADAPTOR_SINGLE;
    ad.n_points = 1;
    CHECK_OK(km_adaptor_point_from_secret(g_t.ctx, ad.points[0], t));
    km_uuid sid2 = new_id();
    CHECK_OK(km_sdk_sign_create(sdk, s, &sid2, &ad, 1, 600));
    pthread_mutex_lock(&g_px.mu);
    memcpy(g_px.adaptor_secret, t, 32);
    memcpy(g_px.item_msg, ad.msg, 32);
    memcpy(g_px.item_key, kg.output_xonly, 32);
    pthread_mutex_unlock(&g_px.mu);
    proxy_mode(&g_px, T_SIG_FLIP);
    CHECK_ERR(km_sdk_sign_wait(sdk, s, &sid2, &ad, 1, WAIT_S, &res), KM_ERR_VERIFY);
    assert_true(proxy_tampered(&g_px) >= 1);
    proxy_mode(&g_px, T_SIG_COMPLETED);
    CHECK_ERR(km_sdk_sign_wait(sdk, s, &sid2, &ad, 1, WAIT_S, &res), KM_ERR_VERIFY);
    assert_true(proxy_tampered(&g_px) >= 1);
    assert_null(res.items);
    proxy_mode(&g_px, T_NONE);
    CHECK_OK(km_sdk_sign_wait(sdk, s, &sid2, &ad, 1, WAIT_S, &res));
    assert_true(res.items[0].units[0].has_T);
    km_sdk_sign_result_clear(&res);
    km_wipe(t, sizeof t);
    pthread_mutex_lock(&g_px.mu);
    km_wipe(g_px.adaptor_secret, 32);
    pthread_mutex_unlock(&g_px.mu);
    km_sdk_keygen_result_clear(&kg);
    wipe_parties(p, 2);
    km_sdk_session_free(s);
    km_sdk_free(sdk);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quickstart),
        cmocka_unit_test(test_export_import),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_approvals),
        cmocka_unit_test(test_single_keys),
        cmocka_unit_test(test_attack_enclave_substitution),
        cmocka_unit_test(test_attack_tampered_aggregate),
        cmocka_unit_test(test_attack_tampered_signature),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
