/* test_gateway_util.h — what the gateway API tests (test_gateway_api.c,
 * test_gateway_auth.c, test_gateway_openapi.c) share: a raw HTTP/1.1 client
 * over a plain socket and hand-made request signatures.
 *
 * Why not only km_client: the attacker's requests must be byte-exact and
 * arbitrary (a malformed X-KeyMeld-Key, a body changed after signing, a
 * "/../" path that libcurl would squash), and some checks need response
 * headers (Allow, Retry-After, Content-Security-Policy) that km_client does
 * not expose. Every function is static inline so that a file using only some
 * of them compiles without warnings. */
#ifndef KM_TESTS_GATEWAY_TEST_GATEWAY_UTIL_H
#define KM_TESTS_GATEWAY_TEST_GATEWAY_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>

#include "keymeld/aead.h"
#include "keymeld/context.h"
#include "keymeld/hex.h"
#include "keymeld/reqauth.h"
#include "keymeld/uuid.h"

/** One raw response. body is NUL-terminated (not counted); json is the parsed
 *  body when it is JSON (new reference), else NULL. */
typedef struct gwt_resp {
    int status;
    char *head; /* status line and headers, NUL-terminated */
    char *body;
    size_t body_len;
    json_t *json;
} gwt_resp;

static inline void gwt_resp_clear(gwt_resp *r) {
    free(r->head);
    free(r->body);
    if (r->json) json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/** The value of header name (case-insensitive) copied into out, or NULL. */
static inline const char *gwt_header(const gwt_resp *r, const char *name, char *out, size_t cap) {
    size_t nl = strlen(name);
    const char *p = r->head ? strstr(r->head, "\r\n") : NULL;
    while (p && p[2]) {
        p += 2;
        const char *eol = strstr(p, "\r\n");
        if (!eol) eol = p + strlen(p);
        if ((size_t)(eol - p) > nl && !strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vl = (size_t)(eol - v);
            if (vl >= cap) vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
        p = eol;
        if (!*p) break;
    }
    return NULL;
}

/** error.code of an error body, or "" (never NULL). */
static inline const char *gwt_code(const gwt_resp *r) {
    json_t *e = r->json ? json_object_get(r->json, "error") : NULL;
    const char *c = e ? json_string_value(json_object_get(e, "code")) : NULL;
    return c ? c : "";
}

/** error.message of an error body, or "". */
static inline const char *gwt_message(const gwt_resp *r) {
    json_t *e = r->json ? json_object_get(r->json, "error") : NULL;
    const char *c = e ? json_string_value(json_object_get(e, "message")) : NULL;
    return c ? c : "";
}

/** Send request bytes verbatim to 127.0.0.1:port and read the response until
 *  the server closes (the request must say "Connection: close").
 *  Returns 0 with *out filled, -1 on a socket error or a response that is not
 *  HTTP (out then empty). Responses are read up to 8 MiB, 30 s. */
static inline int gwt_raw_bytes(uint16_t port, const void *req, size_t len, gwt_resp *out) {
    memset(out, 0, sizeof *out);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct timeval tv = {30, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    const unsigned char *p = req;
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, p + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break; /* the server may answer early (413) and close: read what it said */
        off += (size_t)w;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return -1;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= (8u << 20)) break;
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + n, cap - n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    int status = 0;
    if (!sep || sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        free(buf);
        return -1;
    }
    size_t hl = (size_t)(sep - buf);
    out->status = status;
    out->head = malloc(hl + 3);
    out->body_len = n - hl - 4;
    out->body = malloc(out->body_len + 1);
    if (!out->head || !out->body) {
        free(buf);
        gwt_resp_clear(out);
        return -1;
    }
    memcpy(out->head, buf, hl);
    memcpy(out->head + hl, "\r\n", 3);
    memcpy(out->body, sep + 4, out->body_len);
    out->body[out->body_len] = '\0';
    free(buf);
    if (out->body_len) out->json = json_loadb(out->body, out->body_len, JSON_REJECT_DUPLICATES, NULL);
    return 0;
}

/** Authentication headers as text; a NULL field is not sent. */
typedef struct gwt_auth {
    const char *key, *ts, *nonce, *sig;
    char key_buf[80], ts_buf[32], nonce_buf[40], sig_buf[136];
} gwt_auth;

/** Sign (method, signed_target, signed_body) at timestamp ts with kp and
 *  fill a (all four headers set, as an honest client would send them).
 *  Returns KM_OK or the signing error. */
static inline km_err gwt_sign(km_ctx *ctx, const secp256k1_keypair *kp, const char *method,
                              const char *target, const void *body, size_t body_len, uint64_t ts,
                              gwt_auth *a) {
    memset(a, 0, sizeof *a);
    km_reqauth_req q;
    memset(&q, 0, sizeof q);
    q.method = method;
    q.method_len = strlen(method);
    q.target = target;
    q.target_len = strlen(target);
    q.body = body;
    q.body_len = body_len;
    q.timestamp = ts;
    km_err err = km_random_bytes(q.nonce, sizeof q.nonce);
    if (err) return err;
    unsigned char sig[64];
    err = km_reqauth_sign(ctx, kp, &q, sig);
    if (err) return err;
    secp256k1_xonly_pubkey xp;
    unsigned char x[32];
    if (!secp256k1_keypair_xonly_pub(km_ctx_secp(ctx), &xp, NULL, kp) ||
        !secp256k1_xonly_pubkey_serialize(km_ctx_secp(ctx), x, &xp))
        return KM_ERR_CRYPTO;
    if (km_hex_encode(a->key_buf, sizeof a->key_buf, x, 32) ||
        km_hex_encode(a->nonce_buf, sizeof a->nonce_buf, q.nonce, 16) ||
        km_hex_encode(a->sig_buf, sizeof a->sig_buf, sig, 64))
        return KM_ERR_ARG;
    snprintf(a->ts_buf, sizeof a->ts_buf, "%llu", (unsigned long long)ts);
    a->key = a->key_buf;
    a->ts = a->ts_buf;
    a->nonce = a->nonce_buf;
    a->sig = a->sig_buf;
    return KM_OK;
}

/** Send one request: method target HTTP/1.1 with the given auth headers
 *  (a may be NULL), a JSON content type when body_len > 0 or the method is
 *  POST, and Content-Length. Returns as gwt_raw_bytes. */
static inline int gwt_raw(uint16_t port, const char *method, const char *target, const gwt_auth *a,
                          const void *body, size_t body_len, gwt_resp *out) {
    memset(out, 0, sizeof *out);
    size_t cap = 2048 + strlen(target) + body_len;
    char *req = malloc(cap);
    if (!req) return -1;
    int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n", method,
                     target, (unsigned)port);
    if (a && a->key) n += snprintf(req + n, cap - (size_t)n, "X-KeyMeld-Key: %s\r\n", a->key);
    if (a && a->ts) n += snprintf(req + n, cap - (size_t)n, "X-KeyMeld-Timestamp: %s\r\n", a->ts);
    if (a && a->nonce) n += snprintf(req + n, cap - (size_t)n, "X-KeyMeld-Nonce: %s\r\n", a->nonce);
    if (a && a->sig) n += snprintf(req + n, cap - (size_t)n, "X-KeyMeld-Signature: %s\r\n", a->sig);
    if (body_len || !strcmp(method, "POST") || !strcmp(method, "DELETE"))
        n += snprintf(req + n, cap - (size_t)n, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                      body_len);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    if (body_len) memcpy(req + n, body, body_len);
    int rc = gwt_raw_bytes(port, req, (size_t)n + body_len, out);
    free(req);
    return rc;
}

/** An honest signed request (kp may be NULL for an unsigned one), body a
 *  NUL-terminated string or NULL. Returns as gwt_raw. */
static inline int gwt_call(km_ctx *ctx, uint16_t port, const char *method, const char *target,
                           const char *body, const secp256k1_keypair *kp, gwt_resp *out) {
    gwt_auth a;
    memset(out, 0, sizeof *out);
    memset(&a, 0, sizeof a);
    size_t bl = body ? strlen(body) : 0;
    if (kp && gwt_sign(ctx, kp, method, target, body, bl, (uint64_t)time(NULL), &a) != KM_OK) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    return gwt_raw(port, method, target, kp ? &a : NULL, body, bl, out);
}

/** A fresh random key pair and its x-only public key. */
static inline km_err gwt_keypair(km_ctx *ctx, secp256k1_keypair *kp, unsigned char x32[32]) {
    unsigned char sec[32];
    for (int tries = 0; tries < 8; tries++) {
        km_err err = km_random_bytes(sec, 32);
        if (err) return err;
        if (secp256k1_keypair_create(km_ctx_secp(ctx), kp, sec)) {
            memset(sec, 0, sizeof sec);
            secp256k1_xonly_pubkey xp;
            if (!secp256k1_keypair_xonly_pub(km_ctx_secp(ctx), &xp, NULL, kp) ||
                !secp256k1_xonly_pubkey_serialize(km_ctx_secp(ctx), x32, &xp))
                return KM_ERR_CRYPTO;
            return KM_OK;
        }
    }
    memset(sec, 0, sizeof sec);
    return KM_ERR_CRYPTO;
}

/** A fresh random (v7) UUID, binary and canonical text. */
static inline km_err gwt_uuid(km_uuid *u, char text[37]) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    km_err err = km_uuid_v7(u, (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
    if (!err) km_uuid_format(text, u);
    return err;
}

/** n bytes as lowercase hex in a malloc'ed string (NULL on failure). */
static inline char *gwt_hex(const unsigned char *p, size_t n) {
    char *s = malloc(2 * n + 1);
    if (s && km_hex_encode(s, 2 * n + 1, p, n) != KM_OK) {
        free(s);
        s = NULL;
    }
    return s;
}

/** Serialise a JSON value compactly (malloc'ed, caller frees). */
static inline char *gwt_dump(const json_t *j) {
    return json_dumps(j, JSON_COMPACT);
}

#endif
