/* gateway/embedded.h — files compiled into the gateway (generated at build
 * time by cmake/embed.cmake from docs/openapi.json and src/gateway/docs.html),
 * so that a running gateway needs no files besides its configuration. */
#ifndef KM_GATEWAY_EMBEDDED_H
#define KM_GATEWAY_EMBEDDED_H

#include <stddef.h>

extern const unsigned char km_gw_openapi_json[];
extern const size_t km_gw_openapi_json_len;
extern const unsigned char km_gw_docs_html[];
extern const size_t km_gw_docs_html_len;

#endif
