/* gateway/routes.c — every route of the REST API, in one table. The
 * OpenAPI document (docs/openapi.json) must list exactly these; a test
 * compares the two. */
#include "gateway/handlers.h"

static const km_http_route ROUTES[] = {
    /* keygen */
    {"POST", "/api/v1/keygen", km_h_keygen_create},
    {"GET", "/api/v1/keygen/{keygen_id}", km_h_keygen_get},
    {"DELETE", "/api/v1/keygen/{keygen_id}", km_h_keygen_delete},
    {"GET", "/api/v1/keygen/{keygen_id}/slots", km_h_keygen_slots},
    {"POST", "/api/v1/keygen/{keygen_id}/participants", km_h_keygen_register},
    /* signing */
    {"POST", "/api/v1/signing", km_h_signing_create},
    {"GET", "/api/v1/signing/{signing_id}", km_h_signing_get},
    {"POST", "/api/v1/signing/{signing_id}/approve/{user_id}", km_h_signing_approve},
    /* single-signer keys */
    {"POST", "/api/v1/keys/reserve", km_h_keys_reserve},
    {"POST", "/api/v1/keys/import", km_h_keys_import},
    {"GET", "/api/v1/keys/{user_id}", km_h_keys_list},
    {"GET", "/api/v1/keys/{user_id}/{key_id}", km_h_keys_get},
    {"DELETE", "/api/v1/keys/{user_id}/{key_id}", km_h_keys_delete},
    {"POST", "/api/v1/keys/{user_id}/keygen/{keygen_id}", km_h_keys_from_keygen},
    {"POST", "/api/v1/sign/single", km_h_single_sign},
    {"GET", "/api/v1/sign/single/{request_id}", km_h_single_get},
    /* enclaves and operations */
    {"GET", "/api/v1/enclaves", km_h_enclaves_list},
    {"GET", "/api/v1/enclaves/{enclave_id}", km_h_enclaves_get},
    {"GET", "/api/v1/health", km_h_health},
    {"GET", "/api/v1/health/detail", km_h_health_detail},
    {"GET", "/api/v1/version", km_h_version},
    {"GET", "/api/v1/metrics", km_h_metrics},
    {"GET", "/api/v1/openapi.json", km_h_openapi},
    {"GET", "/api/v1/docs", km_h_docs},
};

const km_http_route *km_gw_routes(size_t *n) {
    *n = sizeof ROUTES / sizeof ROUTES[0];
    return ROUTES;
}
