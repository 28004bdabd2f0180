/* fuzz/fuzz_reqauth.c — request authentication: the four X-KeyMeld-* headers
 * as the gateway parses them (src/gateway/auth.c km_gw_auth_headers), and
 * the canonical request string and signature check behind them
 * (src/core/reqauth.c).
 *
 * Input: u8 absent-mask | pieces (u16 length-prefixed): key, timestamp,
 * nonce, signature header values, method, target | body (the rest). Bit i of
 * the mask drops header i. The signer allowed to make the call is the x-only
 * key of FZ_GATEWAY_SK, so seeds signed with it (fuzz/seeds/gen_seeds.c)
 * verify; the window is 100 years so they stay fresh, and the replay cache
 * (a real store) refuses a nonce the second time. */
#include <stdlib.h>
#include <string.h>

#include "fz_util.h"
#include "gateway/auth.h"
#include "gateway/handlers.h"
#include "keymeld/reqauth.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static km_gateway *gw;
static unsigned char allowed[2][32];

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (!gw) {
        gw = fz_gateway_new();
        unsigned char pub[33];
        fz_pub33(FZ_GATEWAY_SK, pub);
        memcpy(allowed[0], pub + 1, 32);
        fz_pub33(FZ_SESSION_SECRET, pub);
        memcpy(allowed[1], pub + 1, 32);
    }
    fz_reader r = {data, size};
    uint8_t absent = fz_u8(&r);
    char *s[6];
    for (int i = 0; i < 6; i++) {
        size_t n;
        const uint8_t *p = fz_piece(&r, &n);
        s[i] = fz_strndup(p, n);
    }
    size_t blen;
    const uint8_t *b = fz_rest(&r, &blen);
    char *body = fz_strndup(b, blen);

    /* The canonical string on its own (embedded NULs included). */
    km_reqauth_req rq;
    memset(&rq, 0, sizeof rq);
    rq.method = s[4];
    rq.method_len = strlen(s[4]);
    rq.target = s[5];
    rq.target_len = strlen(s[5]);
    rq.body = (const unsigned char *)body;
    rq.body_len = blen;
    static char canon[KM_REQAUTH_CANONICAL_MAX];
    size_t clen = 0;
    if (km_reqauth_canonical(&rq, canon, sizeof canon, &clen) == KM_OK &&
        (clen >= sizeof canon || canon[clen]))
        abort();

    const char *hdr[4];
    for (int i = 0; i < 4; i++)
        hdr[i] = absent & (1u << i) ? NULL : s[i];
    km_http_request req;
    memset(&req, 0, sizeof req);
    req.method = s[4];
    req.path = req.target = s[5];
    req.body = (const unsigned char *)body;
    req.body_len = blen;
    km_http_response resp;
    memset(&resp, 0, sizeof resp);
    km_store *st = km_gw_store_take(gw);
    size_t which = 99;
    int ok = km_gw_auth_headers(gw, st, &req, hdr, (const unsigned char(*)[32])allowed, 2, &which, &resp);
    km_gw_store_give(gw, st);
    if (ok ? (resp.status != 0 || which > 1) : (resp.status < 400 || !resp.body)) abort();
    free(resp.body);
    free(body);
    for (int i = 0; i < 6; i++)
        free(s[i]);
    return 0;
}
