/* gateway/handlers.h — what the HTTP handlers (h_*.c) share: body and path
 * parsing with precise 400 messages, relaying one enclave command with the
 * right HTTP status on failure, and the JSON views of stored sessions.
 *
 * Order of checks in every handler (so that a rejected request changes
 * nothing): body and path syntax (400) -> the resource exists (404) ->
 * signature (401/403) -> state (409) -> enclave (422/503) -> store write ->
 * answer. A 2xx is sent only after the store committed. */
#ifndef KM_GATEWAY_HANDLERS_H
#define KM_GATEWAY_HANDLERS_H

#include <jansson.h>

#include "gateway/auth.h"
#include "gateway/gateway.h"
#include "gateway/json.h"

/** Parse and check a JSON body against fields. Returns 1 with *out (caller
 *  decrefs) or 0 with resp answered 400. */
int km_gw_body(const km_http_request *req, km_http_response *resp, const km_json_field *fields, size_t n,
               json_t **out);

/** Parse path parameter i as a UUID. Returns 1, or 0 with resp answered 400
 *  naming the parameter. */
int km_gw_param_uuid(const km_http_request *req, size_t i, const char *name, unsigned char out[16],
                     km_http_response *resp);

/** Answer resp for a store error (404 not_found / 409 conflict / 409
 *  invalid_state / 503 store_unavailable) with what naming the object. */
void km_gw_store_error(km_http_response *resp, km_err err, const char *what);

/** One enclave command on behalf of a request.
 *  Returns: 1 when the enclave answered KM_OK (reply holds the body);
 *           0 with resp answered otherwise: 503 enclave_unavailable (down,
 *           or its stored sessions are still being restored), 409 conflict
 *           (duplicate), 404 (not_found), 422 enclave_rejected (any other
 *           refusal, with the enclave's error name and detail).
 *  Out: reply: replaced; code: the enclave's status (KM_OK, an error, or
 *       KM_ERR__COUNT when it did not answer); may be NULL. */
int km_gw_enclave(km_gateway *gw, uint32_t enclave_id, uint16_t cmd, const km_buf *body, km_buf *reply,
                  km_err *code, km_http_response *resp);

/** Several enclave commands on behalf of one request, all sent before any
 *  answer is awaited (km_pool_call_all): the enclaves work in parallel.
 *  km_gw_enclave is this with one request.
 *  Returns: 1 when every enclave answered KM_OK (each reqs[i].resp holds its
 *           reply); 0 with resp answered as km_gw_enclave describes for the
 *           first request (in order) that failed; nothing is sent when an
 *           enclave is not ready.
 *  In/Out: reqs: as km_pool_call_all (the caller owns the resp buffers); a
 *          refusal by an enclave process that restarted during the call is
 *          reported as reqs[i].err = KM_ERR_IO (an outage, not an answer). */
int km_gw_enclave_all(km_gateway *gw, km_pool_req *reqs, size_t n, km_http_response *resp);

/** A keygen's participant -> enclave assignment (fixed at creation).
 *  Returns: KM_OK; the store's errors (KM_ERR_NOT_FOUND for no keygen);
 *           KM_ERR_NOMEM. Out: out: *n entries, malloc'ed (NULL when none or
 *           on failure; the caller frees). */
km_err km_gw_assignments(km_store *st, const unsigned char keygen_id[16], km_store_assignment **out,
                         size_t *n);

/** The enclave a participant of a keygen was assigned to.
 *  Returns: KM_OK; KM_ERR_NOT_FOUND (no such keygen or not a participant);
 *           the store's errors. Out: enclave_id (UINT32_MAX on failure). */
km_err km_gw_user_enclave(km_store *st, const unsigned char keygen_id[16], const unsigned char user_id[16],
                          uint32_t *enclave_id);

/** Append u32 len | bytes. Returns KM_OK or KM_ERR_NOMEM. */
km_err km_gw_put_vbytes(km_buf *b, const unsigned char *p, size_t n);

/** Prepare a long poll if the request asked for ?wait=SECONDS (0..max) and
 *  the state is not final. With ?until=final a resumed request whose state
 *  changed but is not final waits again (up to its first deadline); with
 *  ?until=change (the default) any change is answered. Call with the
 *  sequence read before loading state.
 *  The wait counts against the signing key km_gw_auth left in
 *  resp->wait_owner (max_waiters_per_key); over a waiter cap the HTTP layer
 *  answers 503 server_busy or 429 too_many_waiters instead of waiting.
 *  Returns: 1 if resp is now a wait (the handler must return), 0 to answer
 *           now, -1 with resp answered 400 (bad wait or until value). */
int km_gw_maybe_wait(km_gateway *gw, const km_http_request *req, km_http_response *resp, const char *key,
                     uint64_t seq, int final);

/** 1 if the request target's query names parameter `name` at all (even with
 *  a value km_http_query could not decode), else 0. */
int km_gw_query_named(const km_http_request *req, const char *name);

/** Check the ?wait= and ?until= parameters (before anything else, so that a
 *  bad value costs the client no nonce). Returns 1 if absent or valid, 0 with resp
 *  answered 400. */
int km_gw_wait_valid(km_gateway *gw, const km_http_request *req, km_http_response *resp);

/** The ?wait= value in seconds (0 when absent).
 *  Returns: 1 with *seconds set; 0 with resp answered 400 (malformed, or
 *           above max_wait_seconds). */
int km_gw_wait_seconds(const km_gateway *gw, const km_http_request *req, km_http_response *resp,
                       unsigned long *seconds);

/** JSON views (new references, NULL on allocation failure). */
json_t *km_gw_keygen_json(km_store *st, const km_store_keygen *kg);
json_t *km_gw_signing_json(km_store *st, const km_store_signing *s);
const char *km_gw_keygen_state_name(km_store_keygen_state s);
const char *km_gw_signing_state_name(km_store_signing_state s);

/* Handlers, by file. */
void km_h_keygen_create(void *app, const km_http_request *req, km_http_response *resp);
void km_h_keygen_get(void *app, const km_http_request *req, km_http_response *resp);
void km_h_keygen_delete(void *app, const km_http_request *req, km_http_response *resp);
void km_h_keygen_slots(void *app, const km_http_request *req, km_http_response *resp);
void km_h_keygen_register(void *app, const km_http_request *req, km_http_response *resp);
void km_h_signing_create(void *app, const km_http_request *req, km_http_response *resp);
void km_h_signing_get(void *app, const km_http_request *req, km_http_response *resp);
void km_h_signing_approve(void *app, const km_http_request *req, km_http_response *resp);
void km_h_keys_reserve(void *app, const km_http_request *req, km_http_response *resp);
void km_h_keys_import(void *app, const km_http_request *req, km_http_response *resp);
void km_h_keys_from_keygen(void *app, const km_http_request *req, km_http_response *resp);
void km_h_keys_list(void *app, const km_http_request *req, km_http_response *resp);
void km_h_keys_get(void *app, const km_http_request *req, km_http_response *resp);
void km_h_keys_delete(void *app, const km_http_request *req, km_http_response *resp);
void km_h_single_sign(void *app, const km_http_request *req, km_http_response *resp);
void km_h_single_get(void *app, const km_http_request *req, km_http_response *resp);
void km_h_enclaves_list(void *app, const km_http_request *req, km_http_response *resp);
void km_h_enclaves_get(void *app, const km_http_request *req, km_http_response *resp);
void km_h_health(void *app, const km_http_request *req, km_http_response *resp);
void km_h_health_detail(void *app, const km_http_request *req, km_http_response *resp);
void km_h_version(void *app, const km_http_request *req, km_http_response *resp);
void km_h_metrics(void *app, const km_http_request *req, km_http_response *resp);
void km_h_openapi(void *app, const km_http_request *req, km_http_response *resp);
void km_h_docs(void *app, const km_http_request *req, km_http_response *resp);

#endif
