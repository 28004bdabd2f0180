/* client/sdk.c — the SDK handle: connection, pinned trust, errors, and the
 * HTTP helpers the other sdk_*.c files share (see sdk_internal.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/sdk_internal.h"
#include "keymeld/hex.h"

/* ---- errors ----------------------------------------------------------------- */

km_err sdk_fail(km_sdk *sdk, km_err err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sdk->err, sizeof sdk->err, fmt, ap);
    va_end(ap);
    return err;
}

km_err sdk_http_fail(km_sdk *sdk, const km_client_response *r, const char *what) {
    const char *code = km_client_error_code(r);
    const char *msg = NULL;
    if (code) msg = json_string_value(json_object_get(json_object_get(r->json, "error"), "message"));
    sdk_fail(sdk, KM_OK, "%s: HTTP %ld %s%s%s", what, r->status, code ? code : "(no error code)",
             msg ? ": " : "", msg ? msg : "");
    return r->status == 404 ? KM_ERR_NOT_FOUND : KM_ERR_STATE;
}

/* ---- time ----------------------------------------------------------------------- */

uint64_t sdk_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t sdk_unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void sdk_sleep_ms(unsigned ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- JSON ------------------------------------------------------------------------ */

json_t *sdk_hexj(const unsigned char *p, size_t n) {
    char *s = malloc(2 * n + 1);
    if (!s) return NULL;
    json_t *j = km_hex_encode(s, 2 * n + 1, p, n) == KM_OK ? json_string(s) : NULL;
    free(s);
    return j;
}

json_t *sdk_uuidj(const km_uuid *u) {
    char s[37];
    km_uuid_format(s, u);
    return json_string(s);
}

km_err sdk_get_hex(const json_t *o, const char *name, km_buf *out) {
    km_buf_init(out);
    const json_t *v = json_object_get(o, name);
    const char *s = json_string_value(v);
    if (!s) return KM_ERR_PARSE;
    size_t n = json_string_length(v);
    if (n == 0 || n % 2) return KM_ERR_PARSE;
    unsigned char *p = malloc(n / 2);
    if (!p) return KM_ERR_NOMEM;
    size_t got = 0;
    km_err err = km_hex_decode_var(p, n / 2, &got, s, n);
    if (err) err = KM_ERR_PARSE;
    if (!err) err = km_buf_put(out, p, got);
    free(p);
    if (err) km_buf_free(out);
    return err;
}

km_err sdk_get_hex_fixed(const json_t *o, const char *name, unsigned char *out, size_t n) {
    const json_t *v = json_object_get(o, name);
    const char *s = json_string_value(v);
    if (!s || km_hex_decode(out, n, s, json_string_length(v)) != KM_OK) {
        memset(out, 0, n);
        return KM_ERR_PARSE;
    }
    return KM_OK;
}

/* ---- HTTP ------------------------------------------------------------------------ */

km_err sdk_call(km_sdk *sdk, const char *method, const char *target, const json_t *body,
                const secp256k1_keypair *signer, km_client_response *out) {
    km_client_response_clear(out);
    km_err err = km_client_call(sdk->client, method, target, body, signer, out);
    if (err == KM_ERR_IO)
        sdk_fail(sdk, err, "%s %s: no answer from the gateway (%s)", method, target,
                 km_client_last_error(sdk->client));
    else if (err)
        sdk_fail(sdk, err, "%s %s: %s", method, target, km_strerror(err));
    return err;
}

km_err sdk_post(km_sdk *sdk, const char *target, const char *body, size_t len,
                const secp256k1_keypair *signer, km_client_response *out) {
    uint64_t deadline = sdk_now_ms() + SDK_POST_RETRY_MS;
    for (;;) {
        km_client_response_clear(out);
        km_err err = km_client_call_raw(sdk->client, "POST", target, (const unsigned char *)body, len,
                                        "application/json", signer, NULL, out);
        /* 5xx and 429 (a rate or waiter cap: Retry-After 1) are worth another try. */
        int transient = err == KM_ERR_IO || (!err && (out->status >= 500 || out->status == 429));
        if (!transient || sdk_now_ms() >= deadline) {
            if (err == KM_ERR_IO)
                return sdk_fail(sdk, err, "POST %s: no answer from the gateway (%s)", target,
                                km_client_last_error(sdk->client));
            if (err) return sdk_fail(sdk, err, "POST %s: %s", target, km_strerror(err));
            return KM_OK;
        }
        sdk_sleep_ms(out->status == 503 || out->status == 429 ? 500 : SDK_RETRY_PAUSE_MS);
    }
}

km_err sdk_poll(km_sdk *sdk, const char *base, const secp256k1_keypair *signer, unsigned timeout_s,
                km_client_response *out, int *failed) {
    uint64_t deadline = sdk_now_ms() + (uint64_t)timeout_s * 1000u;
    km_err last = KM_ERR_IO;
    *failed = 0;
    for (int first = 1;; first = 0) {
        uint64_t now = sdk_now_ms();
        if (!first && now >= deadline) {
            if (last == KM_ERR_RANGE)
                return sdk_fail(sdk, last, "GET %s: not final after %u s", base, timeout_s);
            return last; /* the reason of the last transport error is recorded */
        }
        uint64_t left_s = now < deadline ? (deadline - now) / 1000u : 0;
        unsigned wait_s = left_s > SDK_LONG_POLL_MAX_S ? SDK_LONG_POLL_MAX_S : (unsigned)left_s;
        char target[256];
        snprintf(target, sizeof target, "%s?wait=%u&until=final", base, wait_s);
        uint64_t sent = sdk_now_ms();
        km_err err = sdk_call(sdk, "GET", target, NULL, signer, out);
        if (err == KM_ERR_IO || (!err && (out->status >= 500 || out->status == 429))) {
            if (!err) sdk_http_fail(sdk, out, "status");
            last = err ? KM_ERR_IO : KM_ERR_RANGE;
            if (sdk_now_ms() < deadline) sdk_sleep_ms(SDK_RETRY_PAUSE_MS);
            continue;
        }
        if (err) return err;
        if (out->status != 200) return sdk_http_fail(sdk, out, "status");
        last = KM_ERR_RANGE;
        const char *st = json_string_value(json_object_get(out->json, "status"));
        if (st && !strcmp(st, "completed")) return KM_OK;
        if (st && !strcmp(st, "failed")) {
            *failed = 1;
            return KM_OK;
        }
        /* Not final before the wait was over (under a second was left, or
         * the gateway does not hold long polls): pause rather than spin
         * until the deadline. An honest gateway answers ?until=final early
         * only with the final state. */
        uint64_t took = sdk_now_ms() - sent;
        if ((wait_s == 0 || took < (uint64_t)wait_s * 1000u) && sdk_now_ms() < deadline)
            sdk_sleep_ms(SDK_RETRY_PAUSE_MS);
    }
}

/* ---- remembered bodies ----------------------------------------------------------- */

const sdk_body *sdk_body_find(const km_sdk *sdk, int kind, const unsigned char id[16],
                              const unsigned char digest[32]) {
    for (size_t i = 0; i < SDK_BODY_CACHE; i++) {
        const sdk_body *b = &sdk->bodies[i];
        if (b->kind == kind && !memcmp(b->id, id, 16) && !memcmp(b->digest, digest, 32)) return b;
    }
    return NULL;
}

static void body_clear(sdk_body *b) {
    if (b->body) km_wipe(b->body, b->len);
    free(b->body);
    memset(b, 0, sizeof *b);
}

km_err sdk_body_put(km_sdk *sdk, int kind, const unsigned char id[16], const unsigned char digest[32],
                    const char *body, size_t len) {
    char *copy = malloc(len + 1);
    if (!copy) return KM_ERR_NOMEM;
    memcpy(copy, body, len);
    copy[len] = '\0';
    sdk_body *b = &sdk->bodies[sdk->next_body];
    sdk->next_body = (sdk->next_body + 1) % SDK_BODY_CACHE;
    body_clear(b);
    b->kind = kind;
    memcpy(b->id, id, 16);
    memcpy(b->digest, digest, 32);
    b->body = copy;
    b->len = len;
    return KM_OK;
}

/* ---- keys ------------------------------------------------------------------------ */

km_err sdk_keypair(const km_ctx *ctx, secp256k1_keypair *kp, const unsigned char sec[32]) {
    if (secp256k1_keypair_create(km_ctx_secp(ctx), kp, sec)) return KM_OK;
    km_wipe(kp, sizeof *kp);
    return KM_ERR_INVALID_KEY;
}

/* ---- the handle ------------------------------------------------------------------- */

km_err km_sdk_new(km_sdk **out, km_ctx *ctx, const char *gateway_url) {
    if (!out) return KM_ERR_ARG;
    *out = NULL;
    if (!ctx || !gateway_url) return KM_ERR_ARG;
    km_sdk *sdk = calloc(1, sizeof *sdk);
    if (!sdk) return KM_ERR_NOMEM;
    sdk->ctx = ctx;
    km_err err = km_client_new(&sdk->client, ctx, gateway_url);
    if (!err) {
        sdk->url = strdup(gateway_url);
        if (!sdk->url) err = KM_ERR_NOMEM;
    }
    if (err) {
        km_sdk_free(sdk);
        return err;
    }
    *out = sdk;
    return KM_OK;
}

void km_sdk_free(km_sdk *sdk) {
    if (!sdk) return;
    km_client_free(sdk->client);
    free(sdk->url);
    for (size_t i = 0; i < sdk->n_roots; i++)
        free(sdk->roots[i].der);
    free(sdk->roots);
    free(sdk->verified);
    for (size_t i = 0; i < SDK_BODY_CACHE; i++)
        body_clear(&sdk->bodies[i]);
    km_wipe(sdk, sizeof *sdk);
    free(sdk);
}

const char *km_sdk_last_error(const km_sdk *sdk) {
    return sdk ? sdk->err : "";
}

km_err km_sdk_trust_root(km_sdk *sdk, uint32_t enclave_id, const unsigned char *root, size_t root_len) {
    if (!sdk) return KM_ERR_ARG;
    if (!root || root_len == 0 || root_len > KM_ATTEST_MAX_DOC_LEN)
        return sdk_fail(sdk, KM_ERR_ARG, "trust_root: empty or oversized root");
    unsigned char *copy = malloc(root_len);
    if (!copy) return sdk_fail(sdk, KM_ERR_NOMEM, "trust_root: out of memory");
    memcpy(copy, root, root_len);
    for (size_t i = 0; i < sdk->n_roots; i++)
        if (sdk->roots[i].enclave_id == enclave_id) {
            /* What was verified under the replaced root is verified no more. */
            sdk->n_verified = 0;
            free(sdk->roots[i].der);
            sdk->roots[i].der = copy;
            sdk->roots[i].len = root_len;
            return KM_OK;
        }
    sdk_root *r = realloc(sdk->roots, (sdk->n_roots + 1) * sizeof *r);
    if (!r) {
        free(copy);
        return sdk_fail(sdk, KM_ERR_NOMEM, "trust_root: out of memory");
    }
    sdk->roots = r;
    r[sdk->n_roots].enclave_id = enclave_id;
    r[sdk->n_roots].der = copy;
    r[sdk->n_roots].len = root_len;
    sdk->n_roots++;
    return KM_OK;
}

km_err km_sdk_pin_pcr(km_sdk *sdk, unsigned index, const unsigned char *value, size_t len) {
    if (!sdk) return KM_ERR_ARG;
    if (index >= KM_ATTEST_PCR_SLOTS || !value || (len != 32 && len != 48 && len != 64))
        return sdk_fail(sdk, KM_ERR_ARG, "pin_pcr: index must be < %d and the value 32, 48 or 64 bytes",
                        KM_ATTEST_PCR_SLOTS);
    size_t i = 0;
    while (i < sdk->n_pcrs && sdk->pcrs[i].index != index)
        i++;
    if (i == sdk->n_pcrs) sdk->n_pcrs++;
    /* A changed expectation invalidates what was verified under the old one. */
    sdk->n_verified = 0;
    memset(&sdk->pcrs[i], 0, sizeof sdk->pcrs[i]);
    sdk->pcrs[i].index = index;
    sdk->pcrs[i].len = len;
    memcpy(sdk->pcrs[i].value, value, len);
    return KM_OK;
}

const unsigned char *sdk_verified_key(const km_sdk *sdk, uint32_t enclave_id) {
    for (size_t i = 0; i < sdk->n_verified; i++)
        if (sdk->verified[i].enclave_id == enclave_id) return sdk->verified[i].pub;
    return NULL;
}
