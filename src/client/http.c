/* client/http.c — see http.h. */
#include "client/http.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "keymeld/aead.h"
#include "keymeld/hex.h"
#include "keymeld/secret.h"

struct km_client {
    km_ctx *ctx;
    CURL *curl; /* kept across calls: its connection cache gives keep-alive */
    char *base_url;
    size_t base_len;
    long timeout_ms;
    size_t max_response;
    int timed_out;
    km_client_sent_auth sent;
    char err[CURL_ERROR_SIZE];
};

/* Receives the body of one response, bounded. */
typedef struct sink {
    km_buf *buf;
    size_t max;
    int too_big;
} sink;

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_init_rc = CURLE_FAILED_INIT;

/* curl_global_init is not safe to race with other threads, so it runs once
 * per process, before the first handle exists. It is never undone: other
 * parts of the process may hold handles. */
static void curl_init_once(void) {
    g_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void set_err(km_client *c, const char *msg) {
    snprintf(c->err, sizeof c->err, "%s", msg);
}

/* The base URL is the one part of the request URL the signature does not
 * cover, so it must not be able to carry a path, query or fragment that
 * would shift what the server sees as the target. */
static int base_url_ok(const char *u) {
    size_t n = strlen(u);
    const char *rest;
    if (n == 0 || n > KM_CLIENT_BASE_URL_MAX) return 0;
    if (strncmp(u, "http://", 7) == 0)
        rest = u + 7;
    else if (strncmp(u, "https://", 8) == 0)
        rest = u + 8;
    else
        return 0;
    if (*rest == '\0' || u[n - 1] == '/') return 0;
    for (const char *p = u; *p; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e) return 0;
    if (strpbrk(rest, "?#@\\")) return 0;
    return 1;
}

static int method_ok(const char *m) {
    size_t n = strlen(m);
    if (n == 0 || n > KM_REQAUTH_METHOD_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (m[i] < 'A' || m[i] > 'Z') return 0;
    return 1;
}

/* The reqauth alphabet, minus '#': libcurl strips a fragment before
 * sending, so a target with '#' would be signed in one form and sent in
 * another. */
static int target_ok(const char *t) {
    size_t n = strlen(t);
    if (n == 0 || n > KM_REQAUTH_TARGET_MAX || t[0] != '/') return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e || t[i] == '#') return 0;
    return 1;
}

/* A header value must not end the header line early (CR/LF injection). */
static int header_value_ok(const char *v) {
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 || (unsigned char)*v > 0x7e) return 0;
    return 1;
}

km_err km_client_new(km_client **out, km_ctx *ctx, const char *base_url) {
    if (!out) return KM_ERR_ARG;
    *out = NULL;
    if (!ctx || !base_url || !base_url_ok(base_url)) return KM_ERR_ARG;
    if (pthread_once(&g_curl_once, curl_init_once) != 0 || g_curl_init_rc != CURLE_OK) return KM_ERR_NOMEM;
    km_client *c = calloc(1, sizeof *c);
    if (!c) return KM_ERR_NOMEM;
    c->ctx = ctx;
    c->base_len = strlen(base_url);
    c->base_url = malloc(c->base_len + 1);
    c->curl = curl_easy_init();
    if (!c->base_url || !c->curl) {
        km_client_free(c);
        return KM_ERR_NOMEM;
    }
    memcpy(c->base_url, base_url, c->base_len + 1);
    c->timeout_ms = KM_CLIENT_DEFAULT_TIMEOUT_MS;
    c->max_response = KM_CLIENT_DEFAULT_MAX_RESPONSE;
    *out = c;
    return KM_OK;
}

void km_client_free(km_client *c) {
    if (!c) return;
    if (c->curl) curl_easy_cleanup(c->curl);
    free(c->base_url);
    km_wipe(c, sizeof *c);
    free(c);
}

void km_client_set_timeout(km_client *c, long ms) {
    c->timeout_ms = ms > 0 ? ms : KM_CLIENT_DEFAULT_TIMEOUT_MS;
}

void km_client_set_max_response(km_client *c, size_t bytes) {
    c->max_response = bytes ? bytes : KM_CLIENT_DEFAULT_MAX_RESPONSE;
}

void km_client_response_clear(km_client_response *r) {
    if (!r) return;
    json_decref(r->json);
    km_buf_free(&r->body);
    memset(r, 0, sizeof *r);
}

const char *km_client_last_error(const km_client *c) {
    return c->err;
}

int km_client_last_timed_out(const km_client *c) {
    return c->timed_out;
}

void km_client_last_auth(const km_client *c, km_client_sent_auth *out) {
    *out = c->sent;
}

const char *km_client_error_code(const km_client_response *r) {
    if (!r || !json_is_object(r->json)) return NULL;
    json_t *e = json_object_get(r->json, "error");
    if (!json_is_object(e)) return NULL;
    return json_string_value(json_object_get(e, "code"));
}

static size_t on_body(char *p, size_t size, size_t n, void *user) {
    sink *s = user;
    size_t len = size * n;
    if (len > s->max - s->buf->len) {
        s->too_big = 1;
        return 0; /* makes libcurl abort the transfer */
    }
    if (km_buf_put(s->buf, p, len) != KM_OK) return 0;
    return len;
}

/* "application/json", "application/json; charset=utf-8", any case. */
static int is_json_type(const char *ct) {
    static const char want[] = "application/json";
    if (!ct) return 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = sizeof want - 1;
    if (strncasecmp(ct, want, n) != 0) return 0;
    char next = ct[n];
    return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

static km_err from_curl(km_client *c, CURLcode rc, const sink *s) {
    if (!c->err[0]) set_err(c, curl_easy_strerror(rc));
    switch (rc) {
    case CURLE_OUT_OF_MEMORY:
        return KM_ERR_NOMEM;
    case CURLE_WRITE_ERROR:
        return s->too_big ? KM_ERR_RANGE : KM_ERR_NOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return KM_ERR_ARG;
    case CURLE_OPERATION_TIMEDOUT:
        c->timed_out = 1;
        return KM_ERR_IO;
    default:
        return KM_ERR_IO;
    }
}

/* Adds the four authentication headers to *hdrs and records them in c->sent. */
static km_err add_auth(km_client *c, struct curl_slist **hdrs, const char *method, const char *target,
                       const unsigned char *body, size_t len, const secp256k1_keypair *signer,
                       const km_client_auth_override *ov) {
    const secp256k1_context *secp = km_ctx_secp(c->ctx);
    km_client_sent_auth a;
    memset(&a, 0, sizeof a);
    a.present = 1;

    secp256k1_xonly_pubkey xo;
    if (!secp256k1_keypair_xonly_pub(secp, &xo, NULL, signer) ||
        !secp256k1_xonly_pubkey_serialize(secp, a.xonly, &xo))
        return KM_ERR_CRYPTO;
    if (ov && ov->claim_other_key) memcpy(a.xonly, ov->claimed_xonly, 32);

    if (ov && ov->use_timestamp) {
        a.timestamp = ov->timestamp;
    } else {
        time_t now = time(NULL);
        if (now < 0) return KM_ERR_IO;
        a.timestamp = (uint64_t)now;
    }
    if (ov && ov->use_nonce)
        memcpy(a.nonce, ov->nonce, sizeof a.nonce);
    else if (km_random_bytes(a.nonce, sizeof a.nonce) != KM_OK)
        return KM_ERR_RANDOM;

    if (!(ov && ov->omit_signature)) {
        a.has_signature = 1;
        if (ov && ov->use_signature) {
            memcpy(a.signature, ov->signature, sizeof a.signature);
        } else {
            km_reqauth_req req;
            memset(&req, 0, sizeof req);
            req.method = method;
            req.method_len = strlen(method);
            req.target = target;
            req.target_len = strlen(target);
            req.body = body;
            req.body_len = len;
            req.timestamp = a.timestamp;
            memcpy(req.nonce, a.nonce, sizeof req.nonce);
            km_err err = km_reqauth_sign(c->ctx, signer, &req, a.signature);
            if (err) return err;
        }
        /* One bit in s: the signature stays well-formed but cannot verify. */
        if (ov && ov->corrupt_signature) a.signature[40] ^= 0x01;
    }

    char line[64 + 2 * KM_REQAUTH_SIG_LEN];
    char hex[2 * KM_REQAUTH_SIG_LEN + 1];
    struct curl_slist *h = *hdrs, *t;
#define KM_APPEND(...)                                                                                       \
    do {                                                                                                     \
        snprintf(line, sizeof line, __VA_ARGS__);                                                            \
        if (!(t = curl_slist_append(h, line))) return KM_ERR_NOMEM;                                          \
        h = t;                                                                                               \
        *hdrs = h;                                                                                           \
    } while (0)
    if (km_hex_encode(hex, sizeof hex, a.xonly, 32) != KM_OK) return KM_ERR_CRYPTO;
    KM_APPEND("%s: %s", KM_CLIENT_HDR_KEY, hex);
    KM_APPEND("%s: %llu", KM_CLIENT_HDR_TIMESTAMP, (unsigned long long)a.timestamp);
    if (km_hex_encode(hex, sizeof hex, a.nonce, sizeof a.nonce) != KM_OK) return KM_ERR_CRYPTO;
    KM_APPEND("%s: %s", KM_CLIENT_HDR_NONCE, hex);
    if (a.has_signature) {
        if (km_hex_encode(hex, sizeof hex, a.signature, sizeof a.signature) != KM_OK) return KM_ERR_CRYPTO;
        KM_APPEND("%s: %s", KM_CLIENT_HDR_SIGNATURE, hex);
    }
#undef KM_APPEND
    c->sent = a;
    return KM_OK;
}

static int method_has_body(const char *m) {
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
}

/* Everything of one transfer that must be released on every path. */
typedef struct call_state {
    struct curl_slist *hdrs;
    char *url;
} call_state;

static km_err perform(km_client *c, const char *method, const char *target, const unsigned char *body,
                      size_t len, const char *content_type, const secp256k1_keypair *signer,
                      const km_client_auth_override *ov, km_client_response *out, call_state *st) {
    CURL *h = c->curl;
    size_t tlen = strlen(target);
    st->url = malloc(c->base_len + tlen + 1);
    if (!st->url) return KM_ERR_NOMEM;
    memcpy(st->url, c->base_url, c->base_len);
    memcpy(st->url + c->base_len, target, tlen + 1);

    struct curl_slist *t;
    /* libcurl adds "Expect: 100-continue" to larger bodies (an extra round
     * trip) and a form Content-Type to every POSTFIELDS body; neither is ours. */
    if (!(t = curl_slist_append(st->hdrs, "Expect:"))) return KM_ERR_NOMEM;
    st->hdrs = t;
    if (!(t = curl_slist_append(st->hdrs, "Accept: application/json"))) return KM_ERR_NOMEM;
    st->hdrs = t;
    char ct[256];
    if (content_type)
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
    else
        snprintf(ct, sizeof ct, "Content-Type:");
    if (!(t = curl_slist_append(st->hdrs, ct))) return KM_ERR_NOMEM;
    st->hdrs = t;
    if (signer) {
        km_err err = add_auth(c, &st->hdrs, method, target, body, len, signer, ov);
        if (err) return err;
    }

    sink s = {&out->body, c->max_response, 0};
    curl_easy_reset(h); /* options of the previous call must not leak into this one */
    CURLcode rc = CURLE_OK;
#define KM_SET(opt, val)                                                                                     \
    do {                                                                                                     \
        if (rc == CURLE_OK) rc = curl_easy_setopt(h, opt, val);                                              \
    } while (0)
    KM_SET(CURLOPT_URL, st->url);
    KM_SET(CURLOPT_ERRORBUFFER, c->err);
    /* The target is signed as given; libcurl would otherwise squash "/../". */
    KM_SET(CURLOPT_PATH_AS_IS, 1L);
    KM_SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    KM_SET(CURLOPT_PROTOCOLS_STR, "http,https");
    KM_SET(CURLOPT_FOLLOWLOCATION, 0L);
    KM_SET(CURLOPT_PROXY, "");
    KM_SET(CURLOPT_NOSIGNAL, 1L); /* no SIGALRM games: safe in threaded programs */
    KM_SET(CURLOPT_TIMEOUT_MS, c->timeout_ms);
    KM_SET(CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms);
    KM_SET(CURLOPT_HTTPHEADER, st->hdrs);
    KM_SET(CURLOPT_WRITEFUNCTION, on_body);
    KM_SET(CURLOPT_WRITEDATA, &s);
    if (len > 0 || method_has_body(method)) {
        /* POSTFIELDS with an explicit size: the bytes go out verbatim (no
         * strlen, no copy), the very bytes that were signed. */
        KM_SET(CURLOPT_POSTFIELDS, len ? (const char *)body : "");
        KM_SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        KM_SET(CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "HEAD") == 0) {
        KM_SET(CURLOPT_NOBODY, 1L);
    } else {
        KM_SET(CURLOPT_HTTPGET, 1L);
        if (strcmp(method, "GET") != 0) KM_SET(CURLOPT_CUSTOMREQUEST, method);
    }
#undef KM_SET
    if (rc != CURLE_OK) {
        set_err(c, curl_easy_strerror(rc));
        return rc == CURLE_OUT_OF_MEMORY ? KM_ERR_NOMEM : KM_ERR_ARG;
    }

    rc = curl_easy_perform(h);
    /* The error buffer and the body pointer belong to this call only. */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    if (rc != CURLE_OK) return from_curl(c, rc, &s);

    long status = 0;
    char *type = NULL;
    if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
        curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &type) != CURLE_OK) {
        set_err(c, "cannot read response information");
        return KM_ERR_IO;
    }
    if (km_buf_put(&out->body, "", 1) != KM_OK) return KM_ERR_NOMEM;
    out->body.len--; /* the NUL terminates, it is not part of the body */
    out->status = status;
    if (is_json_type(type) && out->body.len > 0) {
        json_error_t jerr;
        out->json = json_loadb((const char *)out->body.data, out->body.len, JSON_REJECT_DUPLICATES, &jerr);
    }
    return KM_OK;
}

km_err km_client_call_raw(km_client *c, const char *method, const char *target, const unsigned char *body,
                          size_t len, const char *content_type, const secp256k1_keypair *signer,
                          const km_client_auth_override *ov, km_client_response *out) {
    if (!out) return KM_ERR_ARG;
    memset(out, 0, sizeof *out);
    if (!c) return KM_ERR_ARG;
    c->err[0] = '\0';
    c->timed_out = 0;
    memset(&c->sent, 0, sizeof c->sent);
    if (ov && !ov->use) ov = NULL;
    if (!method || !method_ok(method)) {
        set_err(c, "method must be 1..16 letters A-Z");
        return KM_ERR_ARG;
    }
    if (!target || !target_ok(target)) {
        set_err(c, "target must start with '/' and hold only bytes 0x21..0x7e other than '#'");
        return KM_ERR_ARG;
    }
    if ((!body && len > 0) ||
        (content_type && (!header_value_ok(content_type) || strlen(content_type) > 200)) || (ov && !signer)) {
        set_err(c, "invalid body, content type or override");
        return KM_ERR_ARG;
    }

    call_state st = {NULL, NULL};
    km_err err = perform(c, method, target, body, len, content_type, signer, ov, out, &st);
    curl_slist_free_all(st.hdrs);
    free(st.url);
    if (err) {
        km_client_response_clear(out);
        /* A request that was never sent carries no headers worth replaying. */
        if (c->sent.present && err != KM_ERR_IO && err != KM_ERR_RANGE) memset(&c->sent, 0, sizeof c->sent);
    }
    return err;
}

km_err km_client_call(km_client *c, const char *method, const char *target, const json_t *body,
                      const secp256k1_keypair *signer, km_client_response *out) {
    if (!out) return KM_ERR_ARG;
    memset(out, 0, sizeof *out);
    if (!c) return KM_ERR_ARG;
    if (!body) return km_client_call_raw(c, method, target, NULL, 0, NULL, signer, NULL, out);

    /* Serialised into memory we own so it can be wiped after sending. */
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    size_t n = json_dumpb(body, NULL, 0, flags);
    if (n == 0) {
        set_err(c, "body cannot be serialised as JSON");
        return KM_ERR_ARG;
    }
    char *buf = malloc(n);
    if (!buf) return KM_ERR_NOMEM;
    km_err err;
    if (json_dumpb(body, buf, n, flags) != n) {
        set_err(c, "body cannot be serialised as JSON");
        err = KM_ERR_ARG;
    } else {
        err = km_client_call_raw(c, method, target, (const unsigned char *)buf, n, "application/json", signer,
                                 NULL, out);
    }
    km_wipe(buf, n);
    free(buf);
    return err;
}
