/* gateway/auth.c — see auth.h. */
#include "gateway/auth.h"
#include "gateway/handlers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "keymeld/hex.h"
#include "keymeld/reqauth.h"

static int deny(km_gateway *gw, km_http_response *resp, int status, const char *code, const char *what) {
    atomic_fetch_add(&gw->metrics.auth_failures, 1);
    km_http_error(resp, status, code, "%s", what);
    return 0;
}

static int parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s || strlen(s) > 20 || (s[0] == '0' && s[1])) return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int km_gw_auth(km_gateway *gw, km_store *st, const km_http_request *req, const unsigned char (*allowed)[32],
               size_t n_allowed, size_t *signer_index, km_http_response *resp) {
    const char *const hdr[4] = {km_http_header(req, KM_GW_HDR_KEY), km_http_header(req, KM_GW_HDR_TIMESTAMP),
                                km_http_header(req, KM_GW_HDR_NONCE),
                                km_http_header(req, KM_GW_HDR_SIGNATURE)};
    /* One value each: with two, a proxy or a log may read another one than
     * the gateway (which would take the first). A missing one is answered
     * auth_missing by km_gw_auth_headers. */
    if (hdr[0] && hdr[1] && hdr[2] && hdr[3] &&
        (km_http_header_count(req, KM_GW_HDR_KEY) != 1 ||
         km_http_header_count(req, KM_GW_HDR_TIMESTAMP) != 1 ||
         km_http_header_count(req, KM_GW_HDR_NONCE) != 1 ||
         km_http_header_count(req, KM_GW_HDR_SIGNATURE) != 1))
        return deny(gw, resp, 401, "auth_malformed", "each X-KeyMeld-* header must be sent exactly once");
    return km_gw_auth_headers(gw, st, req, hdr, allowed, n_allowed, signer_index, resp);
}

int km_gw_auth_headers(km_gateway *gw, km_store *st, const km_http_request *req, const char *const hdr[4],
                       const unsigned char (*allowed)[32], size_t n_allowed, size_t *signer_index,
                       km_http_response *resp) {
    const char *hkey = hdr[0], *hts = hdr[1], *hnonce = hdr[2], *hsig = hdr[3];
    if (!hkey || !hts || !hnonce || !hsig)
        return deny(
            gw, resp, 401, "auth_missing",
            "this call must be signed: headers X-KeyMeld-Key, X-KeyMeld-Timestamp, X-KeyMeld-Nonce and "
            "X-KeyMeld-Signature are required");
    unsigned char key[32], sig[64];
    km_reqauth_req r;
    memset(&r, 0, sizeof r);
    if (strlen(hkey) != 64 || km_hex_decode(key, 32, hkey, 64))
        return deny(gw, resp, 401, "auth_malformed", "X-KeyMeld-Key must be 64 lowercase hex digits");
    if (strlen(hnonce) != 32 || km_hex_decode(r.nonce, 16, hnonce, 32))
        return deny(gw, resp, 401, "auth_malformed", "X-KeyMeld-Nonce must be 32 lowercase hex digits");
    if (strlen(hsig) != 128 || km_hex_decode(sig, 64, hsig, 128))
        return deny(gw, resp, 401, "auth_malformed", "X-KeyMeld-Signature must be 128 lowercase hex digits");
    if (parse_u64(hts, &r.timestamp))
        return deny(gw, resp, 401, "auth_malformed", "X-KeyMeld-Timestamp must be unix seconds in decimal");

    size_t which = n_allowed;
    for (size_t i = 0; i < n_allowed; i++)
        if (!memcmp(allowed[i], key, 32)) {
            which = i;
            break;
        }
    int64_t now = km_gw_now();
    if (km_reqauth_check_time((uint64_t)now, r.timestamp, gw->cfg.auth_window_seconds))
        return deny(gw, resp, 401, "auth_expired",
                    "X-KeyMeld-Timestamp is outside the allowed window (check the client's clock)");
    r.method = req->method;
    r.method_len = strlen(req->method);
    r.target = req->target;
    r.target_len = strlen(req->target);
    r.body = req->body;
    r.body_len = req->body_len;
    km_err err = km_reqauth_verify(gw->ctx, key, &r, sig);
    if (err) return deny(gw, resp, 401, "auth_invalid", "the request signature does not verify");
    /* The key is proven now, and only now may it be counted: a rate keyed by
     * an unverified header would let anyone spend another key's tokens or
     * fill the table with ids of their choosing. Checked before the replay
     * cache, so a flood costs no database write. The refill is a whole
     * number of tokens per second, so a token is back within 1 s. */
    if (!km_ratelimit_take(gw->rate, key, km_gw_mono_ms(), NULL)) {
        km_http_error(resp, 429, "rate_limited",
                      "too many requests signed by this key (limit %u per second, burst %u); retry later",
                      gw->cfg.rate_per_key_per_second, gw->cfg.rate_burst_per_key);
        resp->extra_header_name = "Retry-After";
        resp->extra_header_value = "1";
        return 0;
    }
    /* Only a valid signature may enter the replay cache, so nobody can fill it
     * with junk; and only after it is recorded (durably) is the request acted on. */
    if (which == n_allowed) return deny(gw, resp, 403, "auth_forbidden", "this key may not make this call");
    unsigned char pk33[33];
    pk33[0] = 0x02;
    memcpy(pk33 + 1, key, 32);
    int64_t window = (int64_t)gw->cfg.auth_window_seconds;
    /* The nonce is committed without its own disk sync: a request that then
     * changes anything does so in a durable commit, which puts this earlier
     * entry of the same log on disk first. So an executed request's nonce is
     * always on disk by the time it is answered 2xx; only a request that
     * changed nothing can lose its entry, and only to a power cut. */
    err = km_store_replay_insert_relaxed(st, pk33, r.nonce, sizeof r.nonce, now,
                                         (int64_t)r.timestamp + window + 1);
    if (err == KM_ERR_DUPLICATE)
        return deny(gw, resp, 401, "auth_replayed",
                    "this signed request was already used (nonce seen before)");
    if (err) {
        km_gw_store_error(resp, err, "the replay cache");
        return 0;
    }
    if (signer_index) *signer_index = which;
    resp->wait_owner = km_ratelimit_owner(gw->rate, key); /* a long poll counts against this key */
    return 1;
}
