/* fuzz/fz_util.c — see fz_util.h. */
#include "fz_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "enclave/enclave.h"
#include "enclave/sessions.h"
#include "gateway/gateway.h"
#include "gateway/handlers.h"
#include "keymeld/adaptor.h"
#include "keymeld/ecies.h"
#include "keymeld/hash.h"
#include "keymeld/hex.h"
#include "keymeld/secret.h"

#define K32(b)                                                                                               \
    { b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b, b }
const unsigned char FZ_ENCLAVE_SK[32] = K32(0x11);
const unsigned char FZ_GATEWAY_SK[32] = K32(0x22);
const unsigned char FZ_SESSION_SECRET[32] = K32(0x33);
const unsigned char FZ_SEAL_KEY[32] = K32(0x44);
const unsigned char FZ_CHANNEL_KEY[32] = K32(0x55);

km_ctx *fz_ctx(void) {
    static km_ctx *ctx;
    if (!ctx && km_ctx_create(&ctx) != KM_OK) {
        fprintf(stderr, "fuzz: cannot create the context\n");
        abort();
    }
    return ctx;
}

void fz_pub33(const unsigned char sk[32], unsigned char out[33]) {
    if (km_ecies_pubkey(fz_ctx(), sk, out) != KM_OK) abort();
}

void fz_channel_handshake(km_channel *g, km_channel *e, unsigned char hello[KM_CHANNEL_HELLO_LEN],
                          unsigned char reply[KM_CHANNEL_REPLY_LEN],
                          unsigned char auth[KM_CHANNEL_AUTH_LEN]) {
    km_ctx *ctx = fz_ctx();
    unsigned char epub[33], gpub[33];
    fz_pub33(FZ_ENCLAVE_SK, epub);
    fz_pub33(FZ_GATEWAY_SK, gpub); /* x-only = compressed without its prefix */
    if (km_channel_gateway_hello(ctx, g, hello) ||
        km_channel_enclave_reply(ctx, e, hello, KM_CHANNEL_HELLO_LEN, FZ_ENCLAVE_SK, reply) ||
        km_channel_gateway_finish(ctx, g, reply, KM_CHANNEL_REPLY_LEN, epub, FZ_GATEWAY_SK, auth) ||
        km_channel_enclave_finish(ctx, e, auth, KM_CHANNEL_AUTH_LEN, (const unsigned char(*)[32])(gpub + 1),
                                  1))
        abort();
}

uint8_t fz_u8(fz_reader *r) {
    if (!r->left) return 0;
    r->left--;
    return *r->p++;
}

uint16_t fz_u16(fz_reader *r) {
    uint16_t hi = fz_u8(r);
    return (uint16_t)(hi << 8 | fz_u8(r));
}

const uint8_t *fz_take(fz_reader *r, size_t n, size_t *got) {
    const uint8_t *p = r->p;
    *got = n < r->left ? n : r->left;
    r->p += *got;
    r->left -= *got;
    return p;
}

const uint8_t *fz_piece(fz_reader *r, size_t *len) {
    size_t n = fz_u16(r);
    return fz_take(r, n, len);
}

const uint8_t *fz_rest(fz_reader *r, size_t *len) {
    return fz_take(r, r->left, len);
}

char *fz_strndup(const uint8_t *p, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

struct km_enclave *fz_enclave_new(void) {
    km_enclave *e = calloc(1, sizeof *e);
    if (!e) abort();
    e->ctx = fz_ctx();
    if (km_secret_from(e->ctx, FZ_ENCLAVE_SK, 32, &e->key) != KM_OK) abort();
    fz_pub33(FZ_ENCLAVE_SK, e->pub);
    km_sha256(e->fingerprint, e->pub, 33);
    unsigned char gpub[33];
    fz_pub33(FZ_GATEWAY_SK, gpub);
    e->gateways = calloc(1, 32);
    if (!e->gateways) abort();
    memcpy(e->gateways[0], gpub + 1, 32);
    e->n_gateways = 1;
    e->max_keygens = 16;
    e->max_signings = 16;
    e->keygen_ttl_s = 3600;
    e->signing_ttl_s = 3600;
    e->started_at = km_enclave_now();
    memset(e->boot_id, 0xb0, sizeof e->boot_id);
    km_buf_init(&e->dev_leaf);
    km_buf_init(&e->dev_root);
    pthread_mutex_init(&e->lock, NULL);
    e->sessions = km_sessions_new();
    if (!e->sessions) abort();
    return e;
}

void fz_enclave_reset(struct km_enclave *e) {
    km_sessions_free(e->sessions);
    e->sessions = km_sessions_new();
    if (!e->sessions) abort();
}

void fz_enclave_free(struct km_enclave *e) {
    if (!e) return;
    km_sessions_free(e->sessions);
    km_secret_free(e->key);
    free(e->gateways);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

static char gw_dir[64], gw_db[96];

static km_http_server *gw_http;

static void gateway_cleanup(void) {
    km_http_stop(gw_http); /* NULL-safe */
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s%s", gw_db, suffix[i]);
        unlink(p);
    }
    rmdir(gw_dir);
}

struct km_gateway *fz_gateway_new(void) {
    km_gateway *gw = calloc(1, sizeof *gw);
    if (!gw) abort();
    gw->ctx = fz_ctx();
    km_gw_config_defaults(&gw->cfg);
    gw->cfg.auth_window_seconds = 100u * 366u * 86400u;
    gw->cfg.n_enclaves = 3;
    for (uint32_t i = 0; i < 3; i++) {
        gw->cfg.enclaves[i].id = i + 1;
        snprintf(gw->cfg.enclaves[i].address, sizeof gw->cfg.enclaves[i].address, "unix:/nonexistent/%u", i);
        fz_pub33(FZ_ENCLAVE_SK, gw->cfg.enclaves[i].pubkey);
    }
    snprintf(gw->owner, sizeof gw->owner, "fuzz");
    if (km_ratelimit_new(&gw->rate, gw->cfg.rate_per_key_per_second, gw->cfg.rate_burst_per_key,
                         gw->cfg.rate_limit_max_keys) != KM_OK)
        abort();
    snprintf(gw_dir, sizeof gw_dir, "/tmp/km-fuzz-XXXXXX");
    if (!mkdtemp(gw_dir)) abort();
    snprintf(gw_db, sizeof gw_db, "%s/gateway.db", gw_dir);
    atexit(gateway_cleanup);
    char msg[256];
    km_store *st = NULL;
    if (km_store_open(&st, gw_db, msg, sizeof msg) != KM_OK) {
        fprintf(stderr, "fuzz: cannot open the store: %s\n", msg);
        abort();
    }
    /* Handlers read wait sequences from the server before anything else;
     * it listens on an ephemeral loopback port and is never sent a request. */
    km_http_config hc;
    memset(&hc, 0, sizeof hc);
    hc.listen_host = "127.0.0.1";
    hc.max_body = 1u << 20;
    hc.threads = 1;
    hc.max_connections = 4;
    hc.connection_timeout_s = 5;
    size_t n_routes;
    const km_http_route *routes = km_gw_routes(&n_routes);
    if (km_http_start(&gw_http, &hc, routes, n_routes, gw) != KM_OK) abort();
    gw->http = gw_http;
    pthread_mutex_init(&gw->store_lock, NULL);
    pthread_cond_init(&gw->store_cond, NULL);
    gw->stores = calloc(1, sizeof *gw->stores);
    gw->free_stores = calloc(1, sizeof *gw->free_stores);
    if (!gw->stores || !gw->free_stores) abort();
    gw->stores[0] = gw->free_stores[0] = st;
    gw->n_stores = gw->n_free = 1;
    return gw;
}

size_t fz_gateway_routes(const struct km_http_route **out, size_t max) {
    size_t n, k = 0;
    const km_http_route *all = km_gw_routes(&n);
    for (size_t i = 0; i < n && k < max; i++) {
        km_http_handler h = all[i].handler;
        if (!strncmp(all[i].pattern, "/api/v1/enclaves", 16) ||
            !strncmp(all[i].pattern, "/api/v1/health", 14) || h == km_h_version || h == km_h_metrics ||
            h == km_h_openapi || h == km_h_docs)
            continue;
        out[k++] = &all[i];
    }
    return k;
}

/* ---- the client SDK against a fake gateway (fuzz_sdk) ------------------------- */

const char FZ_DEV_ROOT_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIICJzCCAa6gAwIBAgIQap+/X+ZP54rZ3qElu9YaeTAKBggqhkjOPQQDAzBTMTEw\n"
                               "LwYDVQQKDChLZXlNZWxkIGRldmVsb3BtZW50IChub3QgZm9yIHByb2R1Y3Rpb24p\n"
                               "MR4wHAYDVQQDDBVrZXltZWxkIGZ1enogZGV2IHJvb3QwIBcNMjAwMTAxMDAwMDAw\n"
                               "WhgPMjEwMDAxMDEwMDAwMDBaMFMxMTAvBgNVBAoMKEtleU1lbGQgZGV2ZWxvcG1l\n"
                               "bnQgKG5vdCBmb3IgcHJvZHVjdGlvbikxHjAcBgNVBAMMFWtleW1lbGQgZnV6eiBk\n"
                               "ZXYgcm9vdDB2MBAGByqGSM49AgEGBSuBBAAiA2IABLde4qz0bVbE9N6ZqV9r25uH\n"
                               "iMEkj0/QUYocpGY7BYt3PH6lFjiz8es3X3O/u1MjqA+gl/EpLtKk8T1JNyRG/8jH\n"
                               "dGhFA4Zs+d431VotW9gULC2An/y/kRhkvdnVyOzfC6NFMEMwEgYDVR0TAQH/BAgw\n"
                               "BgEB/wIBADAOBgNVHQ8BAf8EBAMCAQYwHQYDVR0OBBYEFFoAQfa3scM096pbVqH+\n"
                               "g9zLkUkyMAoGCCqGSM49BAMDA2cAMGQCMDaPHNPCO/N8fby8RtiIukbvI9omwKHR\n"
                               "DoERedGrhEFtbuzf/3GfwAMk/oS1eiYP2gIwd9VOdpgv1QQnFUNqLBmJ2+TVnX4v\n"
                               "rCWhSkJKwsD6KSMlQ9TaRCkUohuZD8ImSCC2\n"
                               "-----END CERTIFICATE-----\n";
const char FZ_DEV_LEAF_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIICQjCCAcmgAwIBAgIQSC1VBktCdNRFrl6+H99NXzAKBggqhkjOPQQDAzBTMTEw\n"
                               "LwYDVQQKDChLZXlNZWxkIGRldmVsb3BtZW50IChub3QgZm9yIHByb2R1Y3Rpb24p\n"
                               "MR4wHAYDVQQDDBVrZXltZWxkIGZ1enogZGV2IHJvb3QwIBcNMjAwMTAxMDAwMDAw\n"
                               "WhgPMjEwMDAxMDEwMDAwMDBaMFMxMTAvBgNVBAoMKEtleU1lbGQgZGV2ZWxvcG1l\n"
                               "bnQgKG5vdCBmb3IgcHJvZHVjdGlvbikxHjAcBgNVBAMMFWtleW1lbGQgZnV6eiBk\n"
                               "ZXYgbGVhZjB2MBAGByqGSM49AgEGBSuBBAAiA2IABOcszIb28hl8ik8ypB5VCuq+\n"
                               "gKG24vUr9h+92shYKmz+x+XVZj9yi52SfWV4H1o9vZ4UlUGH/tKIK6gTZixfqCOW\n"
                               "372ecuyiow9rzLrVZGQhmb8b704xLCwyCaMwMaz3SqNgMF4wDAYDVR0TAQH/BAIw\n"
                               "ADAOBgNVHQ8BAf8EBAMCB4AwHQYDVR0OBBYEFMnqAE8lsD7HqEjH/8wUap9Kd0NU\n"
                               "MB8GA1UdIwQYMBaAFFoAQfa3scM096pbVqH+g9zLkUkyMAoGCCqGSM49BAMDA2cA\n"
                               "MGQCMAcfwGM3JlB0Z1gL3gCR4T3yPZa23og5hj6jP6Krp1KzRuLe7Qrx7Hf9W6yz\n"
                               "jkBOxAIwD6rP/bfT7G0gctmi52fr92YAz+L+AO/LMJUZ/AbHSpRLWHyWmo1XLXSa\n"
                               "+sxgDBOE\n"
                               "-----END CERTIFICATE-----\n";
const char FZ_DEV_LEAF_KEY_PEM[] = "-----BEGIN PRIVATE KEY-----\n"
                                   "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDD+IP4hgc3nHrfUfuDl\n"
                                   "ueTGk6fxYfS/Z9iiCoKvLU6zgDqQ8ZJ2Niq3QhPBCSg67FqhZANiAATnLMyG9vIZ\n"
                                   "fIpPMqQeVQrqvoChtuL1K/YfvdrIWCps/sfl1WY/coudkn1leB9aPb2eFJVBh/7S\n"
                                   "iCuoE2YsX6gjlt+9nnLsoqMPa8y61WRkIZm/G+9OMSwsMgmjMDGs90o=\n"
                                   "-----END PRIVATE KEY-----\n";

const unsigned char FZ_SDK_PCR0[48] = {
    0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70,
    0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70,
    0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70, 0x70};
const unsigned char FZ_SDK_MSG[32] = K32(0x6d);
const uint16_t FZ_SDK_SUBSET_MEMBERS[1] = {1};
const long FZ_SDK_STATUS[16] = {200, 201, 202, 204, 400, 401, 404, 409, 422, 429, 500, 503, 0, 0, 0, 599};

void fz_sdk_user_sk(size_t i, unsigned char sk[32]) {
    memset(sk, 0x61 + (int)(i & 7), 32);
}

void fz_sdk_auth_sk(size_t i, unsigned char sk[32]) {
    memset(sk, 0x71 + (int)(i & 7), 32);
}

void fz_sdk_uuid(uint8_t tag, km_uuid *out) {
    memset(out->b, tag, sizeof out->b);
    out->b[6] = (unsigned char)(0x70 | (tag & 0x0f));
    out->b[8] = (unsigned char)(0x80 | (tag & 0x3f));
}

void fz_sdk_uuid_v7(uint64_t ms, km_uuid *out) {
    memset(out->b, FZ_SDK_RANDOM, sizeof out->b);
    for (int i = 0; i < 6; i++)
        out->b[i] = (unsigned char)(ms >> (40 - 8 * i));
    out->b[6] = (unsigned char)(0x70 | (out->b[6] & 0x0f));
    out->b[8] = (unsigned char)(0x80 | (out->b[8] & 0x3f));
}

char *fz_sdk_session_json(int rich) {
    char kid[37], uid[37], secret[65], epub[67], part[256];
    km_uuid u;
    unsigned char pub[33];
    fz_pub33(FZ_ENCLAVE_SK, pub);
    if (km_hex_encode(secret, sizeof secret, FZ_SESSION_SECRET, 32) != KM_OK ||
        km_hex_encode(epub, sizeof epub, pub, 33) != KM_OK)
        abort();
    fz_sdk_uuid(FZ_SDK_TAG_KEYGEN, &u);
    km_uuid_format(kid, &u);
    char *out = malloc(2048);
    if (!out) abort();
    snprintf(out, 2048, "{\"version\":1,\"keygen_id\":\"%s\",\"session_secret\":\"%s\",\"participants\":[",
             kid, secret);
    for (size_t i = 0; i < FZ_SDK_N; i++) {
        fz_sdk_uuid((uint8_t)(FZ_SDK_TAG_USER + i), &u);
        km_uuid_format(uid, &u);
        snprintf(part, sizeof part, "%s{\"user_id\":\"%s\",\"enclave_id\":%u,\"enclave_public_key\":\"%s\"}",
                 i ? "," : "", uid, FZ_SDK_ENCLAVE, epub);
        strcat(out, part);
    }
    strcat(out,
           "],\"tweak\":{\"mode\":\"bip86\",\"data\":\"0000000000000000000000000000000000000000000000000000"
           "000000000000\"},\"subsets\":[");
    if (rich) {
        fz_sdk_uuid(FZ_SDK_TAG_SUBSET, &u);
        km_uuid_format(uid, &u);
        snprintf(part, sizeof part, "{\"subset_id\":\"%s\",\"members\":[%u]}", uid, FZ_SDK_SUBSET_MEMBERS[0]);
        strcat(out, part);
    }
    strcat(out, "]}");
    return out;
}

void fz_sdk_adaptor_sk(size_t k, unsigned char sk[32]) {
    memset(sk, 0x51 + (int)(k & 1), 32);
}

size_t fz_sdk_items(km_sign_item items[FZ_SDK_MAX_ITEMS], int rich) {
    size_t n = rich ? 4 : 2;
    memset(items, 0, FZ_SDK_MAX_ITEMS * sizeof *items);
    for (size_t j = 0; j < n; j++) {
        fz_sdk_uuid((uint8_t)(FZ_SDK_TAG_ITEM + j), &items[j].id);
        memset(items[j].msg, 0xa0 + (int)j, 32);
        items[j].adaptor = KM_ADAPTOR_NONE;
    }
    if (!rich) {
        items[1].own_tweak = 1;
        km_tweak_none(&items[1].tweak);
        return n;
    }
    unsigned char t[32], T[2][33];
    for (size_t k = 0; k < 2; k++) {
        fz_sdk_adaptor_sk(k, t);
        if (km_adaptor_point_from_secret(fz_ctx(), T[k], t) != KM_OK) abort();
    }
    items[0].has_subset = 1;
    fz_sdk_uuid(FZ_SDK_TAG_SUBSET, &items[0].subset_id);
    items[1].adaptor = KM_ADAPTOR_SINGLE;
    items[1].n_points = 1;
    memcpy(items[1].points[0], T[0], 33);
    items[2].adaptor = KM_ADAPTOR_OR;
    items[3].adaptor = KM_ADAPTOR_AND;
    for (size_t j = 2; j < 4; j++) {
        items[j].n_points = 2;
        memcpy(items[j].points[0], T[0], 33);
        memcpy(items[j].points[1], T[1], 33);
    }
    return n;
}

void fz_sdk_answer(km_buf *in, uint8_t kind, const char *body, size_t len) {
    if (len > 0xffff || km_buf_put_u8(in, kind) != KM_OK || km_buf_put_u16(in, (uint16_t)len) != KM_OK ||
        (len && km_buf_put(in, body, len) != KM_OK))
        abort();
}
