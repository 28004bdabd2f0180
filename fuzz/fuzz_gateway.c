/* fuzz/fuzz_gateway.c — JSON request decoding of every gateway endpoint that
 * takes a body or path parameters (src/gateway/json.c, handlers.c, h_*.c).
 *
 * The real handlers of the route table run on an in-process gateway with an
 * empty SQLite store and no enclaves (fz_gateway_new). Every handler checks
 * body and path before anything else (handlers.h: 400 -> 404 -> 401 ...), and
 * without headers authentication then refuses, so each input exercises the
 * whole decoding of one endpoint and nothing is ever written. The system
 * routes (they need the enclave pool) take no body and are left out. The
 * query string is not fuzzed here (km_http_query needs a live connection).
 *
 * Input: u8 route selector | one u16-length-prefixed piece per {param} of
 * the route | the body (the rest). Every answer must be a complete HTTP
 * answer: a status and a JSON object body, an error object for every 4xx;
 * only the unsigned /keys/reserve may answer 2xx. */
#include <stdlib.h>
#include <string.h>

#include "fz_util.h"
#include "gateway/handlers.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static km_gateway *gw;
static const km_http_route *routes[64];
static size_t n_routes;

static void init(void) {
    gw = fz_gateway_new();
    n_routes = fz_gateway_routes(routes, 64);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (!gw) init();
    fz_reader r = {data, size};
    const km_http_route *rt = routes[fz_u8(&r) % n_routes];
    km_http_request req;
    memset(&req, 0, sizeof req);
    req.method = rt->method;
    req.path = req.target = rt->pattern;
    char *params[KM_HTTP_MAX_PARAMS] = {0};
    for (const char *p = rt->pattern; (p = strchr(p, '{')) != NULL && req.n_params < KM_HTTP_MAX_PARAMS;
         p++) {
        size_t n;
        const uint8_t *v = fz_piece(&r, &n);
        params[req.n_params] = fz_strndup(v, n);
        req.params[req.n_params] = params[req.n_params];
        req.n_params++;
    }
    size_t blen;
    const uint8_t *b = fz_rest(&r, &blen);
    char *body = fz_strndup(b, blen); /* the server NUL-terminates bodies */
    req.body = (const unsigned char *)body;
    req.body_len = blen;
    km_http_response resp;
    memset(&resp, 0, sizeof resp);
    rt->handler(gw, &req, &resp);
    if (resp.status < 200 || resp.status > 599) abort();
    /* Nothing but /keys/reserve (unsigned by design: it stores nothing) can
     * succeed without a signature. */
    if (resp.status < 300 && rt->handler != km_h_keys_reserve) abort();
    if (resp.status < 500 && (!resp.body || !resp.body_len)) abort();
    if (resp.body) {
        json_error_t jerr;
        json_t *j = json_loadb(resp.body, resp.body_len, 0, &jerr);
        if (!json_is_object(j) || (resp.status >= 400 && !json_is_object(json_object_get(j, "error"))))
            abort();
        json_decref(j);
    }
    free(resp.body);
    free(body);
    for (size_t i = 0; i < req.n_params; i++)
        free(params[i]);
    return 0;
}
