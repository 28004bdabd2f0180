/* gateway/http.h — the gateway's HTTP server: routing, bodies, long polls.
 *
 * A thin layer over libmicrohttpd. It owns everything that is HTTP and nothing
 * that is KeyMeld: it matches a request to a route, delivers the whole body (or
 * refuses it with 413 before reading it), calls one handler and sends back what
 * the handler answered. JSON parsing of bodies is the handler's job
 * (gateway/json.h); this layer only moves bytes.
 *
 * Every response carries `Cache-Control: no-store` (answers hold session state
 * and must not be replayed from a cache) and `X-Content-Type-Options: nosniff`.
 * Errors the layer produces itself are JSON `{"error":{"code":..,"message":..}}`
 * like the handlers' (not_found, method_not_allowed, body_too_large, server_busy,
 * too_many_waiters, internal).
 *
 * Long polls. A handler that has nothing new to say may ask to wait instead of
 * answering: it reads the key's sequence number with km_http_wait_seq() BEFORE
 * it looks at the state, and if the state is not what the client waits for, it
 * returns status 0 with wait_key, wait_seq and a deadline. Whoever changes the
 * state afterwards calls km_http_notify(key). The server compares wait_seq with
 * the key's current sequence under the same lock that notify takes, so a change
 * that happened between the handler's look and its return is never lost: the
 * handler is then run again at once. A waiting request holds no thread: its
 * connection is suspended in libmicrohttpd and resumed by notify, by the
 * deadline or by km_http_stop(). On resumption the handler runs again with
 * resumed = 1 and must answer with the current state (a second wait is a 500).
 * Waiters are capped: with max_waiters requests parked, another wait is
 * answered 503 "server_busy"; with max_waiters_per_owner parked for the same
 * wait_owner, 429 "too_many_waiters"; both with Retry-After: 1. The handler
 * is not run again in that case (the client was not answered).
 *
 * Requests are parsed strictly (libmicrohttpd's STRICT_FOR_CLIENT: e.g. an
 * HTTP/1.1 request without Host is refused). Malformed requests, oversized
 * request lines or headers (over the 64 KiB per-connection memory) are
 * answered by libmicrohttpd itself, without JSON body or Cache-Control.
 *
 * Threads: handlers run concurrently on libmicrohttpd's pool threads, and each
 * request is handled by one thread at a time. km_http_wait_seq and
 * km_http_notify may be called from any thread, including from handlers.
 */
#ifndef KEYMELD_GATEWAY_HTTP_H
#define KEYMELD_GATEWAY_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "keymeld/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most {param} segments a route pattern may have. */
#define KM_HTTP_MAX_PARAMS 4

/** Longest wait_key accepted (bytes, without the NUL); a longer one is a 500. */
#define KM_HTTP_WAIT_KEY_MAX 255

/** The running server (opaque). */
typedef struct km_http_server km_http_server;

/** One request as a handler sees it. Everything it points to is owned by the
 *  server and valid only during the handler call; copy what must outlive it. */
typedef struct km_http_request {
    const char *method;        /**< "GET", "POST", "DELETE", ... as sent (case-sensitive) */
    const char *path;          /**< the path as received (not percent-decoded), without the query */
    const char *target;        /**< the exact request target: path plus "?query" if any, byte-exact as
                                    on the request line (request signatures cover it) */
    const unsigned char *body; /**< the whole body, NUL-terminated (NUL not counted); never NULL */
    size_t body_len;           /**< body length in bytes (0 when there was none) */
    const char *params[KM_HTTP_MAX_PARAMS]; /**< the {param} segments of the matched pattern, in
                                                 order, as received (not percent-decoded) */
    size_t n_params;                        /**< number of params set */
    int resumed;                            /**< 1 when the handler runs again after a wait, else 0 */
    uint64_t wait_until_ms; /**< when resumed: the deadline the handler asked for (CLOCK_MONOTONIC ms,
                                 see km_http_now_ms); a resumed handler may wait again, up to this
                                 deadline and never beyond it; 0 when not resumed */
    const char *wait_key;   /**< when resumed: the key the request waited on (owned by the server,
                                 valid during the call); NULL when not resumed */
    void *opaque;           /**< internal; do not touch */
} km_http_request;

/** A handler's answer. The server zeroes it before each handler call. */
typedef struct km_http_response {
    int status;               /**< HTTP status; 0 = not answered (then see wait_key) */
    const char *content_type; /**< static string; NULL = "application/json" */
    char *body;               /**< malloc'ed (free() compatible), taken over by the server; may be NULL */
    size_t body_len;          /**< bytes of body to send */
    const char *extra_header_name;  /**< one optional header (static strings), e.g. "Retry-After"; */
    const char *extra_header_value; /**< both must be set for the header to be sent */
    /* Long poll: a handler that wants to wait leaves status 0 and sets these. */
    const char *wait_key;   /**< key to wait on, e.g. "signing:<hex id>"; copied by the server after the
                                 handler returned, so it must outlive the handler: point it at
                                 wait_key_buf (or at static storage) */
    char wait_key_buf[64];  /**< storage for a wait key that lives as long as the response */
    uint64_t wait_seq;      /**< km_http_wait_seq(server, wait_key) read BEFORE looking at the state */
    uint64_t wait_until_ms; /**< CLOCK_MONOTONIC deadline in ms (see km_http_now_ms) */
    uint64_t wait_owner;    /**< who waits (e.g. a hash of the signing key), counted against
                                 max_waiters_per_owner; 0 = nobody in particular (not counted) */
    int wait_final_only;    /**< 1: resumed only by km_http_notify_change(.., final = 1) (or the
                                 deadline), not by changes that are not final */
} km_http_response;

/** A route handler.
 *
 *  MUST NOT block for long: it runs on one of a few pool threads; waiting is
 *  done by returning status 0 with wait_key (see above), never by sleeping.
 *  Args:    app: the pointer given to km_http_start.
 *  In:      req: the request (never NULL).
 *  Out:     resp: zeroed on entry; the handler sets status and body (e.g. with
 *                 km_http_json / km_http_error) or asks to wait. Answering
 *                 status 0 without wait_key is answered 500 "internal".
 */
typedef void (*km_http_handler)(void *app, const km_http_request *req, km_http_response *resp);

/** One entry of the routing table. The table and its strings must outlive the server. */
typedef struct km_http_route {
    const char *method;  /**< exact method, e.g. "GET" */
    const char *pattern; /**< e.g. "/api/v1/keygen/{id}/participants": literal segments match
                              exactly; a {name} segment matches one non-empty segment (no '/') */
    km_http_handler handler;
} km_http_route;

/** Server configuration. */
typedef struct km_http_config {
    const char *listen_host;        /**< IPv4 dotted ("127.0.0.1", "0.0.0.0") or IPv6 ("::1", "::") */
    uint16_t port;                  /**< 0 = ephemeral (then km_http_port tells) */
    size_t max_body;                /**< largest body accepted, bytes (>= 1) */
    unsigned threads;               /**< libmicrohttpd pool threads, 1..256 */
    unsigned max_connections;       /**< concurrent connections (waiters included), 1..2^20; a
                                         connection above it is closed right after accept */
    unsigned connection_timeout_s;  /**< idle timeout of a connection; 0 = none (not for production) */
    unsigned max_waiters;           /**< parked long polls in total; 0 or above max_connections =
                                         max_connections */
    unsigned max_waiters_per_owner; /**< parked long polls per wait_owner; 0 = no such cap */
    size_t max_body_total;          /**< bytes of request bodies buffered at once over all
                                         connections (>= max_body); 0 = no such cap */
} km_http_config;

/** Start a server listening on cfg's address with the given routes.
 *
 *  Routing: the path (raw, before any percent-decoding) is matched against the
 *  patterns; the query string is ignored. A path that matches no pattern is 404
 *  "not_found"; one that matches only under other methods is 405
 *  "method_not_allowed" with an Allow header listing them. A path that contains
 *  "..", "//", '\\', a NUL, "%2f", "%2e", "%5c" or "%00" (any case), or that does
 *  not start with '/', is 404 without calling any handler (see km_http_path_safe).
 *  Bodies: a Content-Length above max_body is answered 413 "body_too_large"
 *  before the body is read; a chunked body is counted as it arrives, and once
 *  it exceeds max_body the rest is discarded and the request answered 413 when
 *  the upload ends (after 2 * max_body + 64 KiB of discarded data the
 *  connection is closed without an answer). The handler never sees a partial
 *  body. All body buffers together are held to max_body_total: a request whose
 *  declared body does not fit is answered 503 "server_busy" (Retry-After: 1)
 *  before its body is read; a chunked one that stops fitting is discarded and
 *  answered 503 when its upload ends.
 *
 *  Returns: KM_OK; KM_ERR_ARG for a bad config or route table (NULL strings,
 *           pattern not starting with '/', empty segment, malformed {param},
 *           more than KM_HTTP_MAX_PARAMS params, unknown host syntax, threads or
 *           max_connections out of range); KM_ERR_IO if the daemon cannot start
 *           (e.g. the port is taken); KM_ERR_NOMEM.
 *  Out:     out: the server on success, NULL on failure. It is set before the
 *           server accepts its first connection, so handlers may reach the
 *           server through it (a request can be handled before this returns).
 *  In:      cfg: configuration (copied). routes: n_routes entries (n_routes may
 *           be 0); the array and its strings must stay valid until km_http_stop.
 *           app: passed to every handler; may be NULL.
 */
KM_WARN_UNUSED km_err km_http_start(km_http_server **out, const km_http_config *cfg,
                                    const km_http_route *routes, size_t n_routes, void *app) KM_NONNULL(1, 2);

/** The TCP port the server listens on.
 *
 *  Returns: the bound port (the one the kernel chose when cfg->port was 0).
 *  In:      s: a running server.
 */
uint16_t km_http_port(const km_http_server *s) KM_NONNULL(1);

/** Current sequence number of a wait key.
 *
 *  A handler MUST read it BEFORE it looks at the state it may wait on, and
 *  pass it back as wait_seq; read afterwards, a change in between is lost and
 *  the client waits until the deadline.
 *  Keys are hashed into a fixed table of counters, so two keys may share one:
 *  that only causes a spurious re-run of a waiter, never a missed one.
 *  Returns: the sequence (starts at 0, increases at least by one per
 *           km_http_notify of this key).
 *  In:      s: a running server. key: NUL-terminated key.
 */
uint64_t km_http_wait_seq(km_http_server *s, const char *key) KM_NONNULL(1, 2);

/** Signal that the state behind key changed.
 *
 *  Bumps the key's sequence and resumes every request waiting on exactly this
 *  key (their handlers run again on the pool threads, not in this call).
 *  Thread-safe, may be called from handlers; never blocks on I/O. Call it
 *  AFTER the change is visible to handlers (e.g. committed to the store).
 *  MUST NOT be called once km_http_stop(s) has begun.
 *  In:      s: a running server. key: NUL-terminated key.
 */
void km_http_notify(km_http_server *s, const char *key) KM_NONNULL(1, 2);

/** km_http_notify, saying whether the new state is final: a change that is
 *  not (final = 0) bumps the sequence but leaves parked requests that wait
 *  for the final state only (wait_final_only) parked, so they are not run
 *  again for nothing. km_http_notify(s, key) is km_http_notify_change(s, key, 1).
 *  In:      s: a running server. key: NUL-terminated key. final: 1 or 0. */
void km_http_notify_change(km_http_server *s, const char *key, int final) KM_NONNULL(1, 2);

/** Number of requests currently parked in a wait (for metrics and tests).
 *  Returns: the count at the time of the call. In: s: a running server. */
size_t km_http_waiting(km_http_server *s) KM_NONNULL(1);

/** Connections closed at accept because max_connections were open, since
 *  the server started (for metrics and tests). In: s: a running server. */
uint64_t km_http_refused(km_http_server *s) KM_NONNULL(1);

/** Responses this server has queued since it started, by status class:
 *  out[1] 1xx ... out[5] 5xx (out[0] is unused, 0). Errors that libmicrohttpd
 *  answers by itself (malformed requests) are not counted.
 *  In: s: a running server. Out: out: 6 counters. */
void km_http_counts(km_http_server *s, uint64_t out[6]) KM_NONNULL(1, 2);

/** Stop the server and free it.
 *
 *  Every waiting request is resumed first and gets its handler's answer (the
 *  handler runs with resumed = 1); the call waits up to 5 s for these answers
 *  to be sent, then stops libmicrohttpd (closing all connections) and frees
 *  everything. MUST NOT be called from a handler. s may be NULL (no-op).
 */
void km_http_stop(km_http_server *s);

/** Look up a request header, by name case-insensitively.
 *
 *  Returns: the value (valid during the handler call), NULL if absent or if req
 *           was not made by the server (opaque NULL).
 *  In:      req: the handler's request. name: NUL-terminated header name.
 */
const char *km_http_header(const km_http_request *req, const char *name) KM_NONNULL(1, 2);

/** How many times a request header appears, by name case-insensitively (so
 *  that a caller can refuse an ambiguous duplicate: km_http_header returns
 *  only the first).
 *  Returns: the count; 0 if absent or if req was not made by the server.
 *  In:      req: the handler's request. name: NUL-terminated header name. */
size_t km_http_header_count(const km_http_request *req, const char *name) KM_NONNULL(1, 2);

/** Look up a query parameter, decoded (percent-escapes, '+' as space).
 *
 *  Only the first 32 well-formed pairs of the query are considered.
 *  Returns: the value of the first `name=value` (or "" for a bare `name`) whose
 *           decoded name equals name; NULL if absent, if its encoding is
 *           invalid (a bad %xx or a %00), or if req was not made by the server.
 *           Valid during the handler call.
 *  In:      req: the handler's request. name: the decoded name to look for.
 */
const char *km_http_query(const km_http_request *req, const char *name) KM_NONNULL(1, 2);

/** Answer with a JSON value, compact.
 *
 *  Any body already in resp is freed first, so answering twice does not leak.
 *  Out:     resp: status, body (malloc'ed) and body_len set; content_type reset
 *                 to the JSON default. If obj is NULL (e.g. a failed json_pack)
 *                 or cannot be serialised, the answer becomes 500 "internal".
 *  In:      status: HTTP status. obj: stolen (decref'ed in every case); may be NULL.
 */
void km_http_json(km_http_response *resp, int status, json_t *obj) KM_NONNULL(1);

/** Answer with {"error":{"code":code,"message":msg}}.
 *
 *  The message is printf-formatted and cut to 511 bytes; bytes that would make
 *  it invalid UTF-8 (client input, or a cut character) become '?'. It MUST NOT
 *  contain secrets: it goes to the client verbatim.
 *  Out:     resp: status and body set (any previous body freed); on allocation
 *                 failure the status is set and the body is empty.
 *  In:      status: HTTP status. code: snake_case code, e.g. "invalid_request".
 *           fmt: printf format and its arguments.
 */
void km_http_error(km_http_response *resp, int status, const char *code, const char *fmt, ...)
    KM_NONNULL(1, 3, 4) __attribute__((format(printf, 4, 5)));

/** Whether a raw request path is acceptable (the rules of km_http_start).
 *
 *  Returns: 1 if safe; 0 if it must be answered 404 (also for NULL or empty).
 *  In:      path: len bytes, not percent-decoded.
 */
int km_http_path_safe(const char *path, size_t len);

/** The clock of wait_until_ms.
 *  Returns: CLOCK_MONOTONIC now, in milliseconds. */
uint64_t km_http_now_ms(void);

#ifdef __cplusplus
}
#endif
#endif
